import ArgumentParser
import Composition
import Encoder
import Evaluation
import Foundation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate the base, adapted or composed encoder on tasks: accuracy, macro-F1, 95% bootstrap CI; protocols head, probe (k-shot) and zero-shot.",
        discussion: "head: --head if given, else the head of the adapter, else the task's expert head (--experts-dir/<task>/lora). probe: k-shot logistic regression on embeddings, mean ± std over seeds. zero-shot: nearest label description (Tasks/zero-shot.json).")

    @OptionGroup var options: EncoderOptions

    @Option(help: "A composition: a recipe (.yaml; merged in memory) or REF@W,REF@W (store entries or adapter paths, weighted).")
    var compose: String?

    @Option(help: "Comma-separated task names (under --tasks-dir) or JSONL paths.")
    var tasks: String

    @Option(name: .customLong("protocol"), help: "head, probe or zero-shot.")
    var proto: EvalProtocol = .head

    @Option(help: "Probe shots per label (each ≥ 1), comma-separated (e.g. 8,16,32).")
    var shots = "16"

    @Option(help: "Probe seeds (≥ 1).")
    var seeds = 5

    @Option(help: "Test examples per task (seeded subsample; 0 = all).")
    var limit = 0

    @Option(help: "Directory of task folders.")
    var tasksDir = ".assets/tasks"

    @Option(help: "Head for every task (head.safetensors, a folder with one, or a PEFT folder).")
    var head: String?

    @Option(help: "Directory of shipped experts, for per-task heads.")
    var expertsDir = "Adapters"

    @Option(help: "Write a bar chart (SVG) of accuracy with 95% intervals.")
    var plot: String?

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    struct Row: Encodable {
        let task: String, proto: String, accuracy: JSONNumber, macroF1: JSONNumber, ci: [JSONNumber], n: Int
        let std: JSONNumber?, shots: String?
        enum CodingKeys: String, CodingKey { case task, accuracy, n, std, shots, proto = "protocol", macroF1 = "macro_f1", ci = "accuracy_ci95" }
    }

    var shotList: [Int] { shots.split(separator: ",").compactMap { Int($0) } }

    func validate() throws {
        try Check.names(tasks, "--tasks")
        let parts = shots.split(separator: ",", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.allSatisfy({ (Int($0) ?? 0) >= 1 }) else {
            throw ValidationError("--shots wants shots per label, each at least 1, comma-separated (got \"\(shots)\")")
        }
        try Check.atLeast(seeds, 1, "--seeds")
        try Check.atLeast(limit, 0, "--limit")
        if let compose, !compose.hasSuffix(".yaml"), !compose.hasSuffix(".yml"), compose != "base" {
            do { _ = try AdapterSpec.list(compose) } catch { throw ValidationError("--compose \(error)") }
        }
    }

    func run() throws {
        let (shop, adapters) = try options.load()
        let set = try compose.map { try shop.composed(adapters.set, with: $0) } ?? adapters.set
        let variant = Variant(name: compose ?? (options.adapters.isEmpty ? "base" : options.adapters.joined(separator: "+")), adapters: set)
        let names = tasks.commaList
        let experts = proto == .head ? try shop.taskHeads(names, explicit: head, adapters: adapters, expertsDir: expertsDir) : []
        let bench = Workbench(encoder: shop.encoder, tasksDir: tasksDir, experts: experts)
        bench.limit = limit > 0 ? limit : nil
        bench.seeds = seeds
        bench.batchSize = options.batchSize
        let progress = StageProgress()
        bench.progress = { progress.update($0, $1, $2) }
        let results = try bench.evaluate(variant, tasks: names, proto: proto, shots: shotList)
        if let plot {
            try Chart.bars(title: "\(variant.name): \(proto.rawValue)", results.map { s in
                (s.note.map { "\(s.task) (\($0.split(separator: " ").first ?? ""))" } ?? s.task, s.accuracy, s.ci.first ?? .nan, s.ci.last ?? .nan)
            }).write(toFile: plot, atomically: true, encoding: .utf8)
        }
        if json {
            return try Console.printJSON(results.map { s in
                Row(task: s.task, proto: s.proto.rawValue, accuracy: JSONNumber(s.accuracy), macroF1: JSONNumber(s.macroF1), ci: s.ci.map(JSONNumber.init),
                    n: s.n, std: s.proto == .probe ? JSONNumber(s.std) : nil, shots: s.proto == .probe ? (s.note ?? "") : nil)
            })
        }
        var table = TextTable(["task", "protocol", "n", "accuracy", "95% CI", "macro-F1"], align: [.left, .left, .right, .right, .left, .right])
        for s in results {
            let ci = s.ci.count == 2 ? "[\(Fmt.percent(s.ci[0])), \(Fmt.percent(s.ci[1]))]" : "—"
            table.add([s.task, s.note.map { "probe \($0)" } ?? s.proto.rawValue, String(s.n),
                       s.proto == .probe ? "\(Fmt.percent(s.accuracy)) ± \(Fmt.percent(s.std))" : Fmt.percent(s.accuracy), ci, Fmt.percent(s.macroF1)])
        }
        Console.print(table.render())
        if let plot { Console.note("wrote \(plot)") }
    }
}
