import ArgumentParser
import Foundation
import Encoder
import Evaluation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate the (adapted) encoder on task splits with a classification head: accuracy, macro-F1, 95% bootstrap CI.",
        discussion: "Heads: --head if given, else the head shipped with the adapter, else the task's expert head in --experts (Adapters/<task>/lora).")

    @OptionGroup var options: EncoderOptions

    @Option(help: "Comma-separated task names (under --tasks-dir) or JSONL paths.")
    var tasks: String

    @Option(help: "Split to score: train, dev or test.")
    var split = "test"

    @Option(help: "Directory of task folders.")
    var tasksDir = ".assets/tasks"

    @Option(help: "Head for every task (head.safetensors, a folder with one, or a PEFT folder).")
    var head: String?

    @Option(help: "Directory of shipped experts, for per-task heads.")
    var experts = "Adapters"

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let (encoder, set, loras) = try options.load()
        var adapterHeads = loras.compactMap(\.head)
        for spec in options.adapters {
            let path = try parseAdapterArgument(spec).path
            if FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("head.safetensors")) {
                adapterHeads.append(try ClassificationHead.load(path: path, model: encoder.model))
            }
        }
        var results: [(String, Metrics)] = []
        for t in tasks.split(separator: ",").map(String.init) {
            let path = t.hasSuffix(".jsonl") ? t : "\(tasksDir)/\(t)/\(split).jsonl"
            let name = t.hasSuffix(".jsonl") ? ((t as NSString).lastPathComponent as NSString).deletingPathExtension : t
            let h: ClassificationHead
            if let head { h = try ClassificationHead.load(path: head, model: encoder.model) }
            else if adapterHeads.count == 1 { h = adapterHeads[0] }
            else {
                let lora = "\(experts)/\(name)/lora"
                guard FileManager.default.fileExists(atPath: lora) else {
                    throw ValidationError("no head for task \(name): pass --head, one adapter with a head, or ship an expert in \(experts)/\(name)/lora")
                }
                h = try ClassificationHead.load(path: lora, model: encoder.model)
            }
            let data = try TaskData(path: path, name: name, allowed: h.labels)
            let progress = Progress(total: data.texts.count, label: name)
            results.append((name, try HeadEvaluation.run(encoder: encoder, adapters: set, head: h, task: data,
                                                         batchSize: options.batchSize, progress: progress.update)))
        }
        if json {
            let obj = results.map { ["task": $0.0, "accuracy": $0.1.accuracy, "macro_f1": $0.1.macroF1, "accuracy_ci95": $0.1.accuracyCI, "n": $0.1.count] as [String: Any] }
            print(Console.json(obj))
            return
        }
        var table = TextTable(["task", "n", "accuracy", "95% CI", "macro-F1"], align: [.left, .right, .right, .left, .right])
        for (name, m) in results {
            table.add([name, String(m.count), String(format: "%.2f", 100 * m.accuracy),
                       String(format: "[%.2f, %.2f]", 100 * m.accuracyCI[0], 100 * m.accuracyCI[1]), String(format: "%.2f", 100 * m.macroF1)])
        }
        print(table.render())
    }
}
