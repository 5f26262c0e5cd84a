import ArgumentParser
import Foundation
import Encoder
import Evaluation

struct Experts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List shipped experts (Adapters/<task>/card.json); with --eval, score each on its own task in Alloy next to the accuracy its card records.")

    @Option(help: "Directory of experts.")
    var dir = "Adapters"

    @Option(help: "Base model directory (for --eval).")
    var model = ".assets/minilm"

    @Option(help: "Directory of task folders (for --eval).")
    var tasksDir = ".assets/tasks"

    @Flag(help: "Evaluate every expert on its task's test split.")
    var eval = false

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let tasks = try FileManager.default.contentsOfDirectory(atPath: dir).sorted().filter {
            FileManager.default.fileExists(atPath: "\(dir)/\($0)/card.json")
        }
        guard !tasks.isEmpty else { throw ValidationError("no experts with card.json in \(dir)") }
        let encoder = eval ? try SentenceEncoder(directory: model) : nil
        var rows: [[String: Any]] = []
        for task in tasks {
            let card = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(dir)/\(task)/card.json"))) as! [String: Any]
            for kind in ["lora", "sparse"] {
                let path = "\(dir)/\(task)/\(kind)"
                guard FileManager.default.fileExists(atPath: path), let info = card[kind] as? [String: Any],
                      let acc = (info["accuracy"] as? [String: Any])?["test"] as? Double else { continue }
                let size = (try? FileManager.default.subpathsOfDirectory(atPath: path).reduce(0) { s, f in
                    s + ((try? FileManager.default.attributesOfItem(atPath: "\(path)/\(f)")[.size] as? Int) ?? 0)
                }) ?? 0
                var row: [String: Any] = ["task": task, "kind": kind, "bytes": size, "card_test_accuracy": acc,
                                          "probe_test_accuracy": card["probe_test_accuracy"] as? Double ?? .nan]
                if let encoder {
                    var set = AdapterSet()
                    let lora = try set.add(path: path, scale: 1, model: encoder.model, labels: ClassificationHead.labels(near: path))
                    let head = try lora?.head ?? ClassificationHead.load(path: path, model: encoder.model)
                    let data = try TaskData(path: "\(tasksDir)/\(task)/test.jsonl", name: task, allowed: head.labels)
                    let progress = Progress(total: data.texts.count, label: "\(task) \(kind)")
                    let m = try HeadEvaluation.run(encoder: encoder, adapters: set, head: head, task: data, progress: progress.update)
                    row["alloy_test_accuracy"] = m.accuracy
                    row["alloy_ci95"] = m.accuracyCI
                    row["macro_f1"] = m.macroF1
                }
                rows.append(row)
            }
        }
        if json { print(Console.json(rows)); return }
        var headers = ["task", "expert", "size", "probe (base)", "card (PyTorch)"]
        if eval { headers += ["Alloy", "Alloy − card", "95% CI"] }
        var table = TextTable(headers, align: [.left, .left] + headers.dropFirst(2).map { _ in .right })
        for r in rows {
            var cells = [r["task"] as! String, r["kind"] as! String, Fmt.bytes(r["bytes"] as! Int),
                         String(format: "%.2f", 100 * (r["probe_test_accuracy"] as! Double)), String(format: "%.2f", 100 * (r["card_test_accuracy"] as! Double))]
            if let a = r["alloy_test_accuracy"] as? Double, let ci = r["alloy_ci95"] as? [Double] {
                cells += [String(format: "%.2f", 100 * a), String(format: "%+.2f", 100 * (a - (r["card_test_accuracy"] as! Double))),
                          String(format: "[%.1f, %.1f]", 100 * ci[0], 100 * ci[1])]
            }
            table.add(cells)
        }
        print(table.render())
    }
}
