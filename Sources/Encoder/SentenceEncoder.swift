import Foundation
import Formats
import Tensors

/// An encoder with its tokenizer and pooling, as sentence-transformers configures them:
/// `modules.json` (Pooling, Normalize), `1_Pooling/config.json`, and `max_seq_length` from
/// `sentence_bert_config.json` (256 for all-MiniLM-L6-v2, not tokenizer.json's 128).
public final class SentenceEncoder: @unchecked Sendable {
    public let model: EncoderModel
    public let tokenizer: any TextTokenizer
    public let maxLength: Int
    public let normalize: Bool
    public let meanPooling: Bool

    public init(directory: String) throws {
        model = try EncoderModel(directory: directory)
        tokenizer = try TokenizerFile.load(path: (directory as NSString).appendingPathComponent("tokenizer.json"))
        let settings = try Settings(directory: directory, maxTokens: model.maxTokens)
        maxLength = settings.maxLength
        normalize = settings.normalize
        meanPooling = settings.meanPooling
    }

    /// The sentence-transformers configuration of a model folder. Each file is optional; one
    /// that exists but is not valid JSON of the expected form is an error naming it and the field.
    public struct Settings: Equatable, Sendable {
        /// Token limit: `max_seq_length`, at most the model's `maxTokens` (its position table).
        public let maxLength: Int
        /// Whether modules.json ends with a Normalize module.
        public let normalize: Bool
        /// Mean pooling unless `1_Pooling/config.json` asks for the CLS token.
        public let meanPooling: Bool

        public init(directory: String, maxTokens: Int) throws {
            func json(_ rel: String) throws -> (path: String, value: JSONValue)? {
                let p = (directory as NSString).appendingPathComponent(rel)
                guard let data = FileManager.default.contents(atPath: p) else { return nil }
                guard data.count <= 1 << 20 else { throw ConfigError.invalid(path: p, reason: "\(data.count) bytes; too large for a configuration file") }
                do { return (p, try data.withUnsafeBytes { try JSONValue.parse($0, maxDepth: 16) }) } catch {
                    throw ConfigError.invalid(path: p, reason: "not valid JSON (\(error))")
                }
            }
            var normalize = false
            if case let (p, modules)? = try json("modules.json") {
                guard case .array(let list) = modules else { throw ConfigError.invalid(path: p, reason: "must be an array of modules") }
                for (i, m) in list.enumerated() {
                    guard case .object = m else { throw ConfigError.invalid(path: p, reason: "module \(i) is not an object") }
                    if case .string(let t)? = m["type"], t.hasSuffix("Normalize") { normalize = true }
                }
            }
            self.normalize = normalize
            var mean = true
            if case let (p, pooling)? = try json("1_Pooling/config.json") {
                guard case .object = pooling else { throw ConfigError.invalid(path: p, reason: "must be a JSON object") }
                switch pooling["pooling_mode_cls_token"] {
                case nil, .null?: break
                case .bool(let b)?: mean = !b
                default: throw ConfigError.invalid(path: p, reason: "field \"pooling_mode_cls_token\" must be a boolean")
                }
            }
            meanPooling = mean
            var limit = maxTokens
            if case let (p, st)? = try json("sentence_bert_config.json") {
                guard case .object = st else { throw ConfigError.invalid(path: p, reason: "must be a JSON object") }
                switch st["max_seq_length"] {
                case nil, .null?: break
                case .integer(let m)?:
                    // Two tokens go to [CLS] and [SEP]; a limit must leave room for text.
                    guard m > 2 else { throw ConfigError.invalid(path: p, reason: "field \"max_seq_length\" = \(m) must be at least 3") }
                    limit = min(m, maxTokens)
                default: throw ConfigError.invalid(path: p, reason: "field \"max_seq_length\" must be an integer")
                }
            }
            maxLength = limit
        }
    }

    public func tokenize(_ texts: [String], maxLength: Int? = nil) -> [[Int32]] {
        let limit = min(maxLength ?? self.maxLength, model.maxTokens)
        var ids = [[Int32]](repeating: [], count: texts.count)
        ids.withUnsafeMutableBufferPointer { out in
            let box = UnsafeSendableBox(out)
            Parallel.forChunks(count: texts.count, minChunk: 32) { range in
                for i in range { box.value[i] = tokenizer.encode(texts[i], maxLength: limit) }
            }
        }
        return ids
    }

    /// Pooled vectors for `texts`, in batches of `batchSize` sequences of similar length.
    /// `normalized` nil follows modules.json; heads use the unnormalised mean. `maxLength`
    /// overrides the configured token limit (a head's training limit).
    public func encode(_ texts: [String], adapters: AdapterSet = AdapterSet(), normalized: Bool? = nil, maxLength: Int? = nil,
                       batchSize: Int = 32, progress: ((Int) -> Void)? = nil) -> [[Float]] {
        let ids = tokenize(texts, maxLength: maxLength)
        let order = ids.indices.sorted { (ids[$0].count, $0) < (ids[$1].count, $1) }
        var out = [[Float]](repeating: [], count: texts.count)
        var done = 0
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let chunk = Array(order[start..<min(order.count, start + batchSize)])
            let h = model.hiddenStates(chunk.map { ids[$0] }, adapters: adapters)
            let pooled = meanPooling ? model.meanPool(h, normalize: normalized ?? normalize) : clsPool(h, normalize: normalized ?? normalize)
            for (k, i) in chunk.enumerated() { out[i] = pooled[k] }
            done += chunk.count
            progress?(done)
        }
        return out
    }

    func clsPool(_ h: HiddenStates, normalize: Bool) -> [[Float]] {
        (0..<h.count).map { s in
            var v = Array(h.values[(h.offsets[s] * h.width)..<((h.offsets[s] + 1) * h.width)])
            if normalize { let n = max(1e-12, v.reduce(0) { $0 + $1 * $1 }.squareRoot()); v = v.map { $0 / n } }
            return v
        }
    }
}
