import ArgumentParser
import Composition
import Encoder
import Evaluation
import Foundation
import Merging
import Store

/// Loads experts and builds encoder variants from the command line's specs.
struct Workshop {
    let storeOptions: StoreOptions
    let encoder: SentenceEncoder

    /// `--experts a,b,…`: store entries or PEFT folders with a card naming the task.
    func experts(_ list: String) throws -> [Expert] {
        try list.split(separator: ",").map(String.init).map { spec in
            let path = try storeOptions.resolve(spec)
            guard let a = try AdapterSet().adding(path: path, model: encoder.model) else {
                throw ValidationError("expert \(spec) is not a LoRA adapter (compositions weight LoRA experts)")
            }
            let card = (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/card.json")))) as? [String: Any]
                ?? (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: (path as NSString).deletingLastPathComponent + "/card.json")))) as? [String: Any]
            guard let task = card?["task"] as? String else { throw ValidationError("expert \(spec): no card.json with a task beside it") }
            return Expert(name: spec, task: task, adapter: a)
        }
    }

    /// A variant from SPEC: a recipe (.yaml, merged in memory), `ref@w,ref@w` (LoRAs/deltas
    /// summed with weights), or one store entry / adapter path.
    func variant(name: String, spec: String) throws -> Variant {
        var set = AdapterSet()
        if spec.hasSuffix(".yaml") || spec.hasSuffix(".yml") {
            return try variant(name: name, recipe: try recipe(spec))
        } else if spec != "base" {
            for part in spec.split(separator: ",").map(String.init) {
                let (ref, w) = try parseAdapterArgument(part)
                try set.add(path: try storeOptions.resolve(ref), scale: w, model: encoder.model, labels: [])
            }
        }
        return Variant(name: name, adapters: set)
    }
}

extension Workshop {
    /// The encoder, the experts and a workbench over them, with progress bars on a terminal.
    static func open(model: String, experts: String, tasksDir: String, storeOptions: StoreOptions) throws -> (Workshop, Workbench) {
        let encoder = try SentenceEncoder(directory: try storeOptions.resolve(model))
        let shop = Workshop(storeOptions: storeOptions, encoder: encoder)
        let bench = Workbench(encoder: encoder, tasksDir: tasksDir, experts: try shop.experts(experts))
        let progress = StageProgress()
        bench.progress = { progress.update($0, $1, $2) }
        return (shop, bench)
    }

    /// A recipe whose models may be store entries (materialised once in the store's cache).
    func recipe(_ path: String) throws -> Recipe {
        try Recipe(path: path) { ref in
            let s = try storeOptions.open()
            return try s.materialize(try s.resolve(ref))
        }
    }

    /// The recipe merged in memory, applied to the base as a dense delta.
    func variant(name: String, recipe: Recipe) throws -> Variant {
        let (tensors, _) = try Merger.merge(recipe)
        var set = AdapterSet()
        try set.add(weights: tensors, scale: 1, model: encoder.model, source: recipe.path)
        return Variant(name: name, adapters: set)
    }
}

extension AdapterSet {
    /// The LoRA adapter at `path` (labels from its card), or nil for other adapter kinds.
    func adding(path: String, model: EncoderModel) throws -> LoRAAdapter? {
        var copy = self
        return try copy.add(path: path, scale: 1, model: model, labels: ClassificationHead.labels(near: path))
    }
}

/// Shows per-stage progress on a terminal.
final class StageProgress: @unchecked Sendable {
    var bars: [String: Progress] = [:]
    func update(_ label: String, _ done: Int, _ total: Int) {
        if bars[label] == nil { bars[label] = Progress(total: total, label: label) }
        bars[label]!.update(done)
    }
}

/// The options `fusion` and `sweep` share: the base, the experts, the tasks and the protocol.
struct TableOptions: ParsableArguments {
    @Option(help: "Base model (folder or store entry).") var model: String
    @Option(help: "Comma-separated LoRA experts (store entries or folders with card.json); their heads score the seen tasks.") var experts: String
    @Option(help: "Comma-separated seen tasks (scored with their expert's head).") var seen: String
    @Option(help: "Comma-separated held-out tasks (scored with a k-shot probe).") var heldOut: String
    @Option(help: "Test examples per task (seeded subsample; 0 = all).") var limit = 0
    @Option(help: "Probe shots per label.") var shots = 16
    @Option(help: "Probe seeds.") var seeds = 3
    @Option(help: "Directory of task folders.") var tasksDir = ".assets/tasks"
    @OptionGroup var storeOptions: StoreOptions

    var seenTasks: [String] { seen.split(separator: ",").map(String.init) }
    var heldOutTasks: [String] { heldOut.split(separator: ",").map(String.init) }

    func workbench() throws -> (Workshop, Workbench) {
        let (shop, bench) = try Workshop.open(model: model, experts: experts, tasksDir: tasksDir, storeOptions: storeOptions)
        bench.limit = limit > 0 ? limit : nil
        bench.shots = shots; bench.seeds = seeds
        return (shop, bench)
    }

    /// The table's rows as text, aligned.
    static func render(_ table: FusionTable) -> String {
        var t = TextTable(table.header, align: [.left] + table.header.dropFirst().map { _ in .right })
        for c in table.cells { t.add(c) }
        return t.render()
    }
}

extension EvalProtocol: ExpressibleByArgument {}

struct Compose: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compose experts for a task: learned weights (LoraHub-style CMA-ES on a few labelled examples) or retrieval (ELM); prints a recipe for `alloy merge` / `alloy eval --compose`.")

    @Option(help: "Base model (folder or store entry).") var model: String
    @Option(help: "Comma-separated LoRA experts (store entries or folders with card.json).") var experts: String
    @Option(help: "The task to compose for (a folder under --tasks-dir).") var task: String
    @Option(help: "learned or retrieval.") var method = "learned"
    @Option(help: "Labelled training examples per label for --method learned.") var shots = 5
    @Option(help: "Objective evaluations for CMA-ES.") var budget = 40
    @Option(help: "L1 penalty on the weights.") var l1 = 0.05
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Directory of task folders.") var tasksDir = ".assets/tasks"
    @Option(help: "Write the recipe here (default: standard output).") var out: String?
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        let (_, bench) = try Workshop.open(model: model, experts: experts, tasksDir: tasksDir, storeOptions: storeOptions)
        let names = bench.experts.map(\.name)
        let recipe: String
        switch method {
        case "learned":
            let l = try Composer.learn(bench, task: task, shots: shots, budget: budget, l1: l1, seed: seed)
            recipe = Composer.recipe(base: model, experts: names, weights: l.weights, comment: """
                alloy compose --method learned --task \(task): CMA-ES, \(l.evaluations) evaluations, \(l.examples) training examples (\(shots)/label), L1 \(l1), seed \(seed)
                objective \(bench.expert(for: task)?.head != nil ? "head cross-entropy" : "leave-one-out prototype cross-entropy") + L1 = \(String(format: "%.4f", l.loss))
                """)
        case "retrieval":
            let ranked = try Composer.retrieve(bench, task: task)
            recipe = Composer.recipe(base: model, experts: names, weights: names.map { $0 == ranked[0].expert ? 1 : 0 }, comment: """
                alloy compose --method retrieval --task \(task): votes of 32 unlabelled inputs for the expert owning their nearest training input (base encoder)
                \(ranked.map { "\($0.expert) \(String(format: "%.4f", $0.score))" }.joined(separator: ", "))
                """)
        default:
            throw ValidationError("--method is learned or retrieval")
        }
        if let out { try recipe.write(toFile: out, atomically: true, encoding: .utf8); Console.note("wrote \(out)") } else { print(recipe, terminator: "") }
    }
}

struct Fusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The FusionBench-style table: base, each expert, merges and compositions on seen tasks (expert heads) and held-out tasks (k-shot probe); writes Markdown, JSON and an SVG plot.")

    @OptionGroup var table: TableOptions
    @Option(name: .customLong("row"), help: "NAME=SPEC: a row from a recipe (.yaml), a store entry, or ref@w,ref@w. Repeat.") var rows: [String] = []
    @Option(help: "Shots per label for the learned composition.") var composeShots = 5
    @Option(help: "CMA-ES evaluations per task.") var budget = 30
    @Option(help: "L1 penalty for the learned composition.") var l1 = 0.05
    @Flag(inversion: .prefixedNo, help: "Add the learned-composition row.") var learned = true
    @Flag(inversion: .prefixedNo, help: "Add the retrieval row.") var retrieval = true
    @Option(help: "Write results.md, results.json and results.svg here.") var out: String?
    @Flag(help: "Print JSON instead of the table.") var json = false

    func run() throws {
        let (shop, bench) = try table.workbench()
        var variants: [(String, String, Variant)] = [("base", "base", Variant(name: "base"))]
        for e in bench.experts {
            var set = AdapterSet(); set.loras = [(e.adapter, 1)]
            variants.append((e.name, "expert", Variant(name: e.name, adapters: set)))
        }
        for r in rows {
            guard let eq = r.firstIndex(of: "=") else { throw ValidationError("--row wants NAME=SPEC, got \(r)") }
            let name = String(r[..<eq]), spec = String(r[r.index(after: eq)...])
            Console.note("preparing \(name) (\(spec))")
            variants.append((name, "merge", try shop.variant(name: name, spec: spec)))
        }
        let settings = ["model": table.model, "experts": table.experts, "limit": table.limit > 0 ? String(table.limit) : "all",
                        "probe": "\(table.shots)-shot × \(table.seeds) seeds, StandardScaler + LogisticRegression(C=1)",
                        "learned": "CMA-ES, budget \(budget) evaluations (whole generations only), \(composeShots) shots/label, L1 \(l1)·mean|w|", "retrieval": "top-1 by votes of 32 queries' nearest training inputs (100 per expert)"]
        let result = try FusionTable.run(bench, seen: table.seenTasks, heldOut: table.heldOutTasks, variants: variants, learned: learned, retrieval: retrieval,
                                         composeShots: composeShots, budget: budget, l1: l1, settings: settings)
        if let out {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try result.markdown().write(toFile: out + "/results.md", atomically: true, encoding: .utf8)
            try result.json().write(toFile: out + "/results.json", atomically: true, encoding: .utf8)
            try result.svg().write(toFile: out + "/results.svg", atomically: true, encoding: .utf8)
        }
        if json { print(try result.json()); return }
        print(TableOptions.render(result))
        for r in result.rows where !r.details.isEmpty {
            print("\n\(r.name):")
            for task in result.seen + result.heldOut { if let d = r.details[task] { print("  \(task): \(d)") } }
        }
        print(String(format: "\n%.0f s; seen tasks: accuracy with the task's expert head; held-out: %d-shot probe, mean±std over %d seeds", result.seconds, table.shots, table.seeds))
        if let out { print("wrote \(out)/results.md, results.json, results.svg") }
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

    func run() throws {
        let (shop, bench) = try table.workbench()
        let r = try shop.recipe(recipe)
        let xs = values.split(separator: ",").compactMap { Double($0) }
        guard !xs.isEmpty else { throw ValidationError("--values wants numbers, e.g. 0.1,0.3,0.5") }
        var variants: [(String, String, Variant)] = []
        for x in xs {
            Console.note("merging with \(param) = \(x)")
            variants.append(("\(param) = \(x)", "sweep", try shop.variant(name: "\(param)=\(x)", recipe: try r.overriding(param, with: x))))
        }
        let result = try FusionTable.run(bench, seen: table.seenTasks, heldOut: table.heldOutTasks, variants: variants, learned: false, retrieval: false,
                                         composeShots: 0, budget: 0, l1: 0,
                                         settings: ["recipe": recipe, "method": r.method.name, "param": param,
                                                    "limit": table.limit > 0 ? String(table.limit) : "all", "probe": "\(table.shots)-shot × \(table.seeds) seeds"])
        print(TableOptions.render(result))
        if let out {
            let stem = "\(out)/\(name ?? "sweep-\(r.method.name)-\(param)")"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try result.markdown().write(toFile: stem + ".md", atomically: true, encoding: .utf8)
            try result.json().write(toFile: stem + ".json", atomically: true, encoding: .utf8)
            let seenLine = zip(xs, result.rows).compactMap { x, row in row.seenAverage.map { (x, $0) } }
            let heldLine = zip(xs, result.rows).compactMap { x, row in row.heldOutAverage.map { (x, $0) } }
            try Chart.lines(title: "\(r.method.name): accuracy vs \(param)", xLabel: param,
                            [("seen avg (heads)", seenLine), ("held-out avg (probe)", heldLine)]).write(toFile: stem + ".svg", atomically: true, encoding: .utf8)
            print("wrote \(stem).md, .json, .svg")
        }
    }
}
