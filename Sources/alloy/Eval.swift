import ArgumentParser
import Composition
import Foundation
import Encoder
import Evaluation

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

    @Option(help: "Probe shots per label, comma-separated (e.g. 8,16,32).")
    var shots = "16"

    @Option(help: "Probe seeds.")
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

    func run() throws {
        let (encoder, set, loras) = try options.load()
        var variantSet = set
        if let compose {
            let extra = try Workshop(storeOptions: options.storeOptions, encoder: encoder).variant(name: "composed", spec: compose).adapters
            variantSet.loras += extra.loras
            for (name, t) in extra.patched {
                if let mine = variantSet.patched[name] {
                    // Both patched: sum the deltas over the base.
                    var a = try mine.floats(); let b = try t.floats(), base = try encoder.model.weights[name]!.floats()
                    for i in a.indices { a[i] += b[i] - base[i] }
                    variantSet.patched[name] = try .init(a, shape: t.shape)
                } else { variantSet.patched[name] = t }
            }
        }
        let variant = Variant(name: compose ?? (options.adapters.isEmpty ? "base" : options.adapters.joined(separator: "+")), adapters: variantSet)
        let names = tasks.split(separator: ",").map(String.init)
        var experts: [Expert] = []
        if proto == .head {
            var adapterHeads = loras.compactMap(\.head)
            for spec in options.adapters {
                let path = try options.storeOptions.resolve(try parseAdapterArgument(spec).path)
                if FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("head.safetensors")) {
                    adapterHeads.append(try ClassificationHead.load(path: path, model: encoder.model))
                }
            }
            for t in names {
                let task = t.hasSuffix(".jsonl") ? t : t
                let h: ClassificationHead
                if let head { h = try ClassificationHead.load(path: try options.storeOptions.resolve(head), model: encoder.model) }
                else if adapterHeads.count == 1 { h = adapterHeads[0] }
                else {
                    let lora = "\(expertsDir)/\(t)/lora"
                    guard FileManager.default.fileExists(atPath: lora) else {
                        throw ValidationError("no head for task \(t): pass --head, one adapter with a head, or ship an expert in \(expertsDir)/\(t)/lora")
                    }
                    h = try ClassificationHead.load(path: lora, model: encoder.model)
                }
                experts.append(Expert(name: "head", task: task, adapter: LoRAAdapter(name: "head", layers: [:], head: h)))
            }
        }
        let bench = Workbench(encoder: encoder, tasksDir: tasksDir, experts: experts)
        bench.limit = limit > 0 ? limit : nil
        bench.seeds = seeds
        bench.batchSize = options.batchSize
        let progress = StageProgress()
        bench.progress = { progress.update($0, $1, $2) }
        var results: [Score] = []
        for t in names {
            if proto == .probe {
                for k in shots.split(separator: ",").compactMap({ Int($0) }) {
                    bench.shots = k
                    results.append(try bench.evaluate(variant, task: t, proto: .probe))
                }
            } else {
                results.append(try bench.evaluate(variant, task: t, proto: proto))
            }
        }
        if let plot {
            try Chart.bars(title: "\(variant.name): \(proto.rawValue)", results.map { s in
                (s.note.map { "\(s.task) (\($0.split(separator: " ")[0]))" } ?? s.task, s.accuracy, s.ci[0], s.ci[1])
            }).write(toFile: plot, atomically: true, encoding: .utf8)
        }
        if json {
            print(Console.json(results.map { s -> [String: Any] in
                var o: [String: Any] = ["task": s.task, "protocol": s.proto.rawValue, "accuracy": s.accuracy, "macro_f1": s.macroF1,
                                        "accuracy_ci95": s.ci, "n": s.n]
                if s.proto == .probe { o["std"] = s.std; o["shots"] = s.note ?? "" }
                return o
            }))
            return
        }
        var table = TextTable(["task", "protocol", "n", "accuracy", "95% CI", "macro-F1"], align: [.left, .left, .right, .right, .left, .right])
        for s in results {
            table.add([s.task, s.note.map { "probe \($0)" } ?? s.proto.rawValue, String(s.n),
                       s.proto == .probe ? String(format: "%.2f ± %.2f", 100 * s.accuracy, 100 * s.std) : String(format: "%.2f", 100 * s.accuracy),
                       String(format: "[%.2f, %.2f]", 100 * s.ci[0], 100 * s.ci[1]), String(format: "%.2f", 100 * s.macroF1)])
        }
        print(table.render())
        if let plot { Console.note("wrote \(plot)") }
    }
}
