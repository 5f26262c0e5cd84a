import Foundation

/// An expert card (`card.json`, Adapters/<task>/card.json): what an expert was trained for,
/// its labels, its head's conventions, and the accuracies its training recorded.
///
/// The one reader of card.json: every field is optional (a card may record only some) but
/// typed, unknown fields are ignored, and `load` rejects a wrong type or an out-of-range value
/// with an error naming the file and the field.
public struct ExpertCard: Codable, Equatable, Sendable {
    /// The task the expert was trained for (the folder name under Tasks/).
    public var task: String?
    /// Class labels, in the head's output order.
    public var labels: [String]?
    /// The base model's name, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    public var base: String?
    /// Content hash of the base's weights (`base_sha256`).
    public var baseSHA256: String?
    public var head: Head?
    /// Training seed.
    public var seed: Int?
    /// Test accuracy of a logistic-regression probe on the base's embeddings.
    public var probeTestAccuracy: Double?
    /// The LoRA expert's record.
    public var lora: Variant<LoRASettings>?
    /// The sparse (diff-pruned) expert's record.
    public var sparse: Variant<SparseSettings>?

    enum CodingKeys: String, CodingKey {
        case task, labels, base, head, seed, lora, sparse
        case baseSHA256 = "base_sha256"
        case probeTestAccuracy = "probe_test_accuracy"
    }

    /// How the classification head reads the encoder.
    public struct Head: Codable, Equatable, Sendable {
        /// `mean` (the only pooling Alloy's heads use).
        public var pooling: String?
        /// A prose description of the head's input.
        public var input: String?
        /// The token limit the head was trained with.
        public var maxLength: Int?

        enum CodingKeys: String, CodingKey {
            case pooling, input
            case maxLength = "max_length"
        }

        public init(pooling: String? = nil, input: String? = nil, maxLength: Int? = nil) {
            self.pooling = pooling; self.input = input; self.maxLength = maxLength
        }
    }

    /// Accuracies recorded for one split set.
    public struct Accuracy: Codable, Equatable, Sendable {
        public var dev: Double?
        public var test: Double?
        public var trainSeconds: Double?
        /// The full fine-tune a sparse expert was pruned from.
        public var fullFinetune: Split?

        enum CodingKeys: String, CodingKey {
            case dev, test
            case trainSeconds = "train_seconds"
            case fullFinetune = "full_finetune"
        }

        public init(dev: Double? = nil, test: Double? = nil, trainSeconds: Double? = nil, fullFinetune: Split? = nil) {
            self.dev = dev; self.test = test; self.trainSeconds = trainSeconds; self.fullFinetune = fullFinetune
        }
    }

    /// Dev and test accuracy.
    public struct Split: Codable, Equatable, Sendable {
        public var dev: Double?
        public var test: Double?
        public init(dev: Double? = nil, test: Double? = nil) { self.dev = dev; self.test = test }
    }

    /// One expert variant (`lora` or `sparse`): its accuracy and training settings.
    public struct Variant<Settings: Codable & Equatable & Sendable>: Codable, Equatable, Sendable {
        public var accuracy: Accuracy?
        public var settings: Settings?
        public init(accuracy: Accuracy? = nil, settings: Settings? = nil) { self.accuracy = accuracy; self.settings = settings }
    }

    /// How a LoRA expert was trained.
    public struct LoRASettings: Codable, Equatable, Sendable {
        public var r: Int?
        public var loraAlpha: Double?
        public var loraDropout: Double?
        public var targetModules: [String]?
        public var lr: Double?
        public var batchSize: Int?
        public var optimizer: String?
        public var epochs: Int?

        enum CodingKeys: String, CodingKey {
            case r, lr, optimizer, epochs
            case loraAlpha = "lora_alpha"
            case loraDropout = "lora_dropout"
            case targetModules = "target_modules"
            case batchSize = "batch_size"
        }
    }

    /// How a sparse (diff-pruned) expert was trained.
    public struct SparseSettings: Codable, Equatable, Sendable {
        public var density: Double?
        public var keptEntries: Int?
        public var tensorsTouched: Int?
        public var fullLr: Double?
        public var fullEpochs: Int?
        public var retuneLr: Double?
        public var retuneHeadLr: Double?
        public var retuneEpochs: Int?
        public var batchSize: Int?
        /// The stored values' dtype, e.g. `F16`.
        public var values: String?

        enum CodingKeys: String, CodingKey {
            case density, values
            case keptEntries = "kept_entries"
            case tensorsTouched = "tensors_touched"
            case fullLr = "full_lr"
            case fullEpochs = "full_epochs"
            case retuneLr = "retune_lr"
            case retuneHeadLr = "retune_head_lr"
            case retuneEpochs = "retune_epochs"
            case batchSize = "batch_size"
        }
    }

    public init(task: String? = nil, labels: [String]? = nil, base: String? = nil, baseSHA256: String? = nil, head: Head? = nil,
                seed: Int? = nil, probeTestAccuracy: Double? = nil, lora: Variant<LoRASettings>? = nil, sparse: Variant<SparseSettings>? = nil) {
        self.task = task; self.labels = labels; self.base = base; self.baseSHA256 = baseSHA256; self.head = head
        self.seed = seed; self.probeTestAccuracy = probeTestAccuracy; self.lora = lora; self.sparse = sparse
    }

    /// The largest card.json a reader accepts (shipped cards are about 1.5 KB).
    public static let maxFileBytes = 1 << 20
    /// The largest `head.max_length` a card may record.
    public static let maxTokenLimit = 1 << 20

    /// Reads and checks the card at `path`.
    public static func load(path: String) throws -> ExpertCard {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ExpertCardError(path: path, field: nil, reason: "cannot read the file (\(error.localizedDescription))")
        }
        return try decode(data, path: path)
    }

    /// Decodes and checks card bytes; `path` names the card in errors.
    public static func decode(_ data: Data, path: String) throws -> ExpertCard {
        guard data.count <= maxFileBytes else {
            throw ExpertCardError(path: path, field: nil, reason: "\(data.count) bytes; a card holds at most \(maxFileBytes)")
        }
        // Parsed strictly first (depth-limited, no duplicate keys), then decoded by type.
        let json: JSONValue
        do { json = try data.withUnsafeBytes { try JSONValue.parse($0, maxDepth: 16) } } catch {
            throw ExpertCardError(path: path, field: nil, reason: "not valid JSON (\(error))")
        }
        guard case .object = json else { throw ExpertCardError(path: path, field: nil, reason: "a card is a JSON object") }
        let card: ExpertCard
        do { card = try JSONDecoder().decode(ExpertCard.self, from: data) } catch let e as DecodingError {
            throw ExpertCardError(path: path, decoding: e)
        } catch {
            throw ExpertCardError(path: path, field: nil, reason: "\(error)")
        }
        try card.validate(path: path)
        return card
    }

    /// Checks the values Alloy computes with: labels and the head's token limit.
    public func validate(path: String) throws {
        if let labels {
            guard !labels.isEmpty else { throw ExpertCardError(path: path, field: "labels", reason: "is empty") }
            var seen = Set<String>()
            for (i, l) in labels.enumerated() {
                guard !l.isEmpty else { throw ExpertCardError(path: path, field: "labels[\(i)]", reason: "is empty") }
                guard seen.insert(l).inserted else { throw ExpertCardError(path: path, field: "labels[\(i)]", reason: "\"\(l)\" appears twice") }
            }
        }
        if let m = head?.maxLength, !(m > 2 && m <= Self.maxTokenLimit) {
            throw ExpertCardError(path: path, field: "head.max_length", reason: "\(m) is outside 3…\(Self.maxTokenLimit)")
        }
        if let task, task.isEmpty || task.contains("/") {
            throw ExpertCardError(path: path, field: "task", reason: "\"\(task)\" is not a task folder name")
        }
    }

    /// The card in `dir`, or else in its parent (Adapters/<task>/<kind> reads Adapters/<task>/card.json);
    /// nil when neither has one. A card that exists but is invalid is an error, not skipped.
    public static func near(_ dir: String) throws -> ExpertCard? {
        for d in [dir, (dir as NSString).deletingLastPathComponent] {
            let p = (d as NSString).appendingPathComponent("card.json")
            if FileManager.default.fileExists(atPath: p) { return try load(path: p) }
        }
        return nil
    }

    /// The card as pretty-printed JSON with sorted keys.
    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try e.encode(self)
    }
}

/// A card.json that cannot be used: names the file and, where there is one, the field.
public struct ExpertCardError: Error, Equatable, CustomStringConvertible {
    public let path: String
    public let field: String?
    public let reason: String

    public init(path: String, field: String?, reason: String) {
        self.path = path; self.field = field; self.reason = reason
    }

    init(path: String, decoding e: DecodingError) {
        func name(_ p: [CodingKey]) -> String {
            p.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
                .replacingOccurrences(of: ".[", with: "[")
        }
        switch e {
        case let .typeMismatch(t, ctx): self.init(path: path, field: name(ctx.codingPath), reason: "must be \(Self.describe(t))")
        case let .valueNotFound(t, ctx): self.init(path: path, field: name(ctx.codingPath), reason: "must be \(Self.describe(t)), not null")
        case let .keyNotFound(k, ctx): self.init(path: path, field: name(ctx.codingPath + [k]), reason: "is missing")
        case let .dataCorrupted(ctx): self.init(path: path, field: ctx.codingPath.isEmpty ? nil : name(ctx.codingPath), reason: ctx.debugDescription)
        @unknown default: self.init(path: path, field: nil, reason: "\(e)")
        }
    }

    static func describe(_ t: Any.Type) -> String {
        switch t {
        case is String.Type: return "a string"
        case is Int.Type: return "an integer"
        case is Double.Type: return "a number"
        case is [String].Type: return "an array of strings"
        case is [Any].Type: return "an array"
        case is [String: Any].Type: return "an object"
        default: return "an object of the card's form"
        }
    }

    public var description: String {
        field.map { "\(path): field \"\($0)\" \(reason)" } ?? "\(path): \(reason)"
    }
}
