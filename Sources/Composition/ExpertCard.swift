import Encoder
import Evaluation
import Foundation

/// The card.json of a shipped expert (Adapters/<task>/card.json): its task, labels and the
/// accuracies measured when it was trained. Unknown fields are ignored.
public struct ExpertCard: Decodable, Sendable {
    public struct Accuracy: Decodable, Sendable { public let test: Double? }
    public struct Kind: Decodable, Sendable { public let accuracy: Accuracy? }

    public let task: String
    public let labels: [String]?
    /// The k-shot probe on the base encoder, measured when the expert was trained.
    public let probeTestAccuracy: Double?
    public let lora: Kind?
    public let sparse: Kind?

    enum CodingKeys: String, CodingKey { case task, labels, lora, sparse, probeTestAccuracy = "probe_test_accuracy" }

    /// Reads the card at `path`.
    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw CompositionError.badCard(path: path, reason: "cannot read") }
        do { self = try JSONDecoder().decode(ExpertCard.self, from: data) } catch let e as DecodingError {
            throw CompositionError.badCard(path: path, reason: Self.reason(e))
        }
    }

    /// What is wrong with a card, in a user's words.
    static func reason(_ e: DecodingError) -> String {
        func field(_ path: [CodingKey]) -> String { path.map(\.stringValue).joined(separator: ".") }
        switch e {
        case .keyNotFound(let k, let c): return "missing field \"\(field(c.codingPath + [k]))\" (an expert card needs at least \"task\")"
        case .typeMismatch(let t, let c), .valueNotFound(let t, let c): return "field \"\(field(c.codingPath))\" is not a \(t == String.self ? "string" : t == Double.self ? "number" : "\(t)")"
        case .dataCorrupted(let c): return c.codingPath.isEmpty ? "not valid JSON" : "field \"\(field(c.codingPath))\": \(c.debugDescription)"
        @unknown default: return "not an expert card"
        }
    }

    /// The card in `dir` or beside it (its parent folder), nil when there is none.
    public static func near(_ dir: String) throws -> ExpertCard? {
        for candidate in [dir, (dir as NSString).deletingLastPathComponent] {
            let p = ((candidate.isEmpty ? "." : candidate) as NSString).appendingPathComponent("card.json")
            if FileManager.default.fileExists(atPath: p) { return try ExpertCard(path: p) }
        }
        return nil
    }

    /// The test accuracy the card records for the expert of `kind` ("lora" or "sparse").
    public func testAccuracy(_ kind: String) -> Double? {
        (kind == "lora" ? lora : kind == "sparse" ? sparse : nil)?.accuracy?.test
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
            let card = try ExpertCard(path: "\(dir)/\(task)/card.json")
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
