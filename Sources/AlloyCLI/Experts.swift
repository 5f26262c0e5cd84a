import ArgumentParser
import Composition
import Encoder
import Foundation
import Tensors

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

    @Option(help: "Arithmetic of the encoder's linear layers for --eval: f32, bf16 or int8.")
    var precision: Precision = .f32

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    struct Row: Encodable {
        let task: String, kind: String, bytes: Int
        let cardTestAccuracy: JSONNumber?, probeTestAccuracy: JSONNumber?
        var alloyTestAccuracy: JSONNumber? = nil, alloyCI95: [JSONNumber]? = nil, macroF1: JSONNumber? = nil
        enum CodingKeys: String, CodingKey {
            case task, kind, bytes, cardTestAccuracy = "card_test_accuracy", probeTestAccuracy = "probe_test_accuracy"
            case alloyTestAccuracy = "alloy_test_accuracy", alloyCI95 = "alloy_ci95", macroF1 = "macro_f1"
        }
    }

    func run() throws {
        let experts = try ShippedExpert.list(dir: dir)
        let encoder = eval ? try SentenceEncoder(directory: model, precision: precision, packCache: .user()) : nil
        let stages = StageProgress()
        var rows: [(Row, card: Double?, alloy: Double?, ci: [Double])] = []
        for e in experts {
            let card = e.card.testAccuracy(e.kind)
            var row = Row(task: e.task, kind: e.kind, bytes: e.bytes, cardTestAccuracy: card.map(JSONNumber.init),
                          probeTestAccuracy: e.card.probeTestAccuracy.map(JSONNumber.init))
            var alloy: Double?, ci: [Double] = []
            if let encoder {
                let m = try e.evaluate(encoder: encoder, tasksDir: tasksDir, progress: { stages.update("\(e.task) \(e.kind)", $0, $1) })
                alloy = m.accuracy; ci = m.accuracyCI
                row.alloyTestAccuracy = JSONNumber(m.accuracy); row.alloyCI95 = m.accuracyCI.map(JSONNumber.init); row.macroF1 = JSONNumber(m.macroF1)
            }
            rows.append((row, card, alloy, ci))
        }
        if json { return try Console.printJSON(rows.map(\.0)) }
        var headers = ["task", "expert", "size", "probe (base)", "card (PyTorch)"]
        if eval { headers += ["Alloy", "Alloy − card", "95% CI"] }
        var table = TextTable(headers, align: [.left, .left] + headers.dropFirst(2).map { _ in .right })
        for (r, card, alloy, ci) in rows {
            var cells = [r.task, r.kind, Fmt.bytes(r.bytes), r.probeTestAccuracy.map { Fmt.percent($0.value) } ?? "—", card.map { Fmt.percent($0) } ?? "—"]
            if let alloy {
                cells += [Fmt.percent(alloy), card.map { String(format: "%+.2f", 100 * (alloy - $0)) } ?? "—",
                          ci.count == 2 ? String(format: "[%.1f, %.1f]", 100 * ci[0], 100 * ci[1]) : "—"]
            }
            table.add(cells)
        }
        Console.print(table.render())
    }
}
