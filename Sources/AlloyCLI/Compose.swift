import ArgumentParser
import Composition
import Encoder
import Evaluation
import Foundation

/// The options `fusion` and `sweep` share: the base, the experts, the tasks and the protocol.
struct TableOptions: ParsableArguments {
    @Option(help: "Base model (folder or store entry).") var model: String
    @Option(help: "Comma-separated LoRA experts (store entries or folders with card.json); their heads score the seen tasks.") var experts: String
    @Option(help: "Comma-separated seen tasks (scored with their expert's head).") var seen: String
    @Option(help: "Comma-separated held-out tasks (scored with a k-shot probe).") var heldOut: String
    @Option(help: "Test examples per task (seeded subsample; 0 = all).") var limit = 0
    @Option(help: "Probe shots per label (≥ 1).") var shots = 16
    @Option(help: "Probe seeds (≥ 1).") var seeds = 3
    @Option(help: "Directory of task folders.") var tasksDir = ".assets/tasks"
    @OptionGroup var storeOptions: StoreOptions

    func validate() throws {
        try Check.names(experts, "--experts")
        try Check.names(seen, "--seen")
        try Check.names(heldOut, "--held-out")
        try Check.atLeast(limit, 0, "--limit")
        try Check.atLeast(shots, 1, "--shots")
        try Check.atLeast(seeds, 1, "--seeds")
    }

    var settings: FusionSettings {
        var s = FusionSettings(seen: seen.commaList, heldOut: heldOut.commaList)
        s.limit = limit > 0 ? limit : nil
        s.shots = shots; s.seeds = seeds
        return s
    }

    /// The encoder, the experts and a workbench over them, with progress bars on a terminal.
    func workbench() throws -> (Workshop, Workbench) {
        let shop = try Workshop(model: model, locator: storeOptions.locator, packCache: .user())
        let bench = try shop.workbench(experts: experts.commaList, tasksDir: tasksDir, settings: settings)
        let progress = StageProgress()
        bench.progress = { progress.update($0, $1, $2) }
        return (shop, bench)
    }

    /// The table's rows as text, aligned.
    static func render(_ table: FusionTable) -> String {
        var t = TextTable(table.header, align: [.left] + table.header.dropFirst().map { _ in .right })
        for c in table.cells { t.add(c) }
        return t.render()
    }
}

struct Compose: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compose experts for a task: learned weights (LoraHub-style CMA-ES on a few labelled examples) or retrieval (ELM); prints a recipe for `alloy merge` / `alloy eval --compose`.")

    @Option(help: "Base model (folder or store entry).") var model: String
    @Option(help: "Comma-separated LoRA experts (store entries or folders with card.json).") var experts: String
    @Option(help: "The task to compose for (a folder under --tasks-dir).") var task: String
    @Option(help: "learned or retrieval.") var method: Composer.Method = .learned
    @Option(help: "Labelled training examples per label for --method learned (≥ 1).") var shots = 5
    @Option(help: "Objective evaluations for CMA-ES (≥ 1).") var budget = 40
    @Option(help: "L1 penalty on the weights (≥ 0).") var l1 = 0.05
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Directory of task folders.") var tasksDir = ".assets/tasks"
    @Option(help: "Write the recipe here (default: standard output).") var out: String?
    @Flag(help: "Print {\"recipe\": …} as JSON.") var json = false
    @OptionGroup var storeOptions: StoreOptions

    struct Report: Encodable { let task: String; let method: String; let recipe: String; let out: String? }

    func validate() throws {
        try Check.names(experts, "--experts")
        try Check.atLeast(shots, 1, "--shots")
        try Check.atLeast(budget, 1, "--budget")
        guard l1 >= 0, l1.isFinite else { throw ValidationError("--l1 must be a finite number ≥ 0 (got \(l1))") }
    }

    func run() throws {
        let shop = try Workshop(model: model, locator: storeOptions.locator, packCache: .user())
        let bench = try shop.workbench(experts: experts.commaList, tasksDir: tasksDir)
        let progress = StageProgress()
        bench.progress = { progress.update($0, $1, $2) }
        let recipe = try Composer.composeRecipe(bench, base: model, task: task, method: method, shots: shots, budget: budget, l1: l1, seed: seed)
        if let out { try recipe.write(toFile: out, atomically: true, encoding: .utf8); Console.note("wrote \(out)") }
        if json { return try Console.printJSON(Report(task: task, method: method.rawValue, recipe: recipe, out: out)) }
        if out == nil { Console.print(recipe, terminator: "") }
    }
}

struct Fusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The FusionBench-style table: base, each expert, merges and compositions on seen tasks (expert heads) and held-out tasks (k-shot probe); writes Markdown, JSON and an SVG plot.")

    @OptionGroup var table: TableOptions
    @Option(name: .customLong("row"), help: "NAME=SPEC: a row from a recipe (.yaml), a store entry, or ref@w,ref@w. Repeat.") var rows: [String] = []
    @Option(help: "Shots per label for the learned composition (≥ 1).") var composeShots = 5
    @Option(help: "CMA-ES evaluations per task (≥ 1).") var budget = 30
    @Option(help: "L1 penalty for the learned composition (≥ 0).") var l1 = 0.05
    @Flag(inversion: .prefixedNo, help: "Add the learned-composition row.") var learned = true
    @Flag(inversion: .prefixedNo, help: "Add the retrieval row.") var retrieval = true
    @Option(help: "Write results.md, results.json and results.svg here.") var out: String?
    @Flag(help: "Print JSON instead of the table.") var json = false

    func validate() throws {
        for r in rows where (r.firstIndex(of: "=") ?? r.startIndex) == r.startIndex { throw ValidationError("--row wants NAME=SPEC, got \(r)") }
        try Check.atLeast(composeShots, 1, "--compose-shots")
        try Check.atLeast(budget, 1, "--budget")
        guard l1 >= 0, l1.isFinite else { throw ValidationError("--l1 must be a finite number ≥ 0 (got \(l1))") }
    }

    func run() throws {
        let (shop, bench) = try table.workbench()
        var settings = table.settings
        settings.learned = learned; settings.retrieval = retrieval
        settings.composeShots = composeShots; settings.budget = budget; settings.l1 = l1
        let result = try shop.fusion(bench, model: table.model, experts: table.experts, rows: rows, settings: settings) { name, spec in
            Console.note("preparing \(name) (\(spec))")
        }
        if let out { try write(result, to: out) }
        if json { return Console.print(try result.json()) }
        Console.print(TableOptions.render(result))
        for r in result.rows where !r.details.isEmpty {
            Console.print("\n\(r.name):")
            for task in result.seen + result.heldOut { if let d = r.details[task] { Console.print("  \(task): \(d)") } }
        }
        Console.print(String(format: "\n%.0f s; seen tasks: accuracy with the task's expert head; held-out: %d-shot probe, mean±std over %d seeds", result.seconds, table.shots, table.seeds))
        if let out { Console.print("wrote \(out)/results.md, results.json, results.svg") }
    }

    func write(_ result: FusionTable, to out: String) throws {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try result.markdown().write(toFile: out + "/results.md", atomically: true, encoding: .utf8)
        try result.json().write(toFile: out + "/results.json", atomically: true, encoding: .utf8)
        try result.svg().write(toFile: out + "/results.svg", atomically: true, encoding: .utf8)
    }
}

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sweep one merge parameter (λ for task arithmetic, density for TIES, …) of a recipe; table of seen and held-out accuracy per value, with Markdown, JSON and an SVG line plot.")

    @Argument(help: "The recipe (.yaml); its models may be store entries.") var recipe: String
    @Option(help: "The parameter to sweep (e.g. lambda, density).") var param: String
    @Option(help: "Comma-separated values.") var values: String
    @OptionGroup var table: TableOptions
    @Option(help: "Write <name>.md, .json and .svg here.") var out: String?
    @Option(help: "File name stem for --out (default: sweep-<method>-<param>).") var name: String?
    @Flag(help: "Print the table as JSON.") var json = false

    var xs: [Double] { values.split(separator: ",").compactMap { Double($0) } }

    func validate() throws {
        let parts = values.split(separator: ",", omittingEmptySubsequences: false)
        guard !values.isEmpty, parts.allSatisfy({ Double($0)?.isFinite == true }) else {
            throw ValidationError("--values wants numbers, e.g. 0.1,0.3,0.5 (got \"\(values)\")")
        }
    }

    func run() throws {
        let (shop, bench) = try table.workbench()
        let sweep = try shop.sweep(bench, recipe: recipe, param: param, values: xs, settings: table.settings) { x in
            Console.note("merging with \(param) = \(x)")
        }
        if json { Console.print(try sweep.table.json()) } else { Console.print(TableOptions.render(sweep.table)) }
        if let out {
            let stem = "\(out)/\(name ?? "sweep-\(sweep.method)-\(param)")"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try sweep.table.markdown().write(toFile: stem + ".md", atomically: true, encoding: .utf8)
            try sweep.table.json().write(toFile: stem + ".json", atomically: true, encoding: .utf8)
            try sweep.svg().write(toFile: stem + ".svg", atomically: true, encoding: .utf8)
            if json { Console.note("wrote \(stem).md, .json, .svg") } else { Console.print("wrote \(stem).md, .json, .svg") }
        }
    }
}
