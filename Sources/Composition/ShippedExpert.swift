import Encoder
import Evaluation
import Formats
import Foundation

extension ExpertCard {
    /// The test accuracy the card records for the expert of `kind` ("lora" or "sparse").
    public func testAccuracy(_ kind: String) -> Double? {
        (kind == "lora" ? lora?.accuracy : kind == "sparse" ? sparse?.accuracy : nil)?.test
    }
}

/// One shipped expert folder: `dir/<task>/<kind>` with its card's figures.
public struct ShippedExpert: Sendable {
    public let task: String
    /// "lora" or "sparse".
    public let kind: String
    public let path: String
    /// Bytes on disk of the folder.
    public let bytes: Int
    public let card: ExpertCard

    /// Every expert under `dir` whose card records a test accuracy, by task then kind.
    public static func list(dir: String) throws -> [ShippedExpert] {
        let fm = FileManager.default
        let tasks = (try? fm.contentsOfDirectory(atPath: dir))?.sorted().filter { fm.fileExists(atPath: "\(dir)/\($0)/card.json") } ?? []
        guard !tasks.isEmpty else { throw CompositionError.noExperts(dir: dir) }
        var out: [ShippedExpert] = []
        for task in tasks {
            let card = try ExpertCard.load(path: "\(dir)/\(task)/card.json")
            for kind in ["lora", "sparse"] {
                let path = "\(dir)/\(task)/\(kind)"
                guard fm.fileExists(atPath: path), card.testAccuracy(kind) != nil else { continue }
                let size = (try? fm.subpathsOfDirectory(atPath: path))?.reduce(0) { s, f in
                    s + (((try? fm.attributesOfItem(atPath: "\(path)/\(f)"))?[.size] as? Int) ?? 0)
                } ?? 0
                out.append(ShippedExpert(task: task, kind: kind, path: path, bytes: size, card: card))
            }
        }
        return out
    }

    /// Scores the expert (its adapter and head) on its task's test split in `tasksDir`;
    /// `progress` gets (texts done, texts).
    public func evaluate(encoder: SentenceEncoder, tasksDir: String, progress: ((Int, Int) -> Void)? = nil) throws -> Metrics {
        var set = AdapterSet()
        let lora = try set.add(path: path, scale: 1, model: encoder.model, labels: ClassificationHead.labels(near: path))
        let head = try lora?.head ?? ClassificationHead.load(path: path, model: encoder.model)
        let data = try TaskData(path: "\(tasksDir)/\(task)/test.jsonl", name: task, allowed: head.labels)
        let total = data.texts.count
        return try HeadEvaluation.run(encoder: encoder, adapters: set, head: head, task: data, progress: progress.map { p in { p($0, total) } })
    }
}
