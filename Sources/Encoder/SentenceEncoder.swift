import Foundation
import Formats
import Tensors

/// An encoder with its tokenizer and the sentence-transformers modules after it, as
/// `modules.json` lists them: `Pooling` (`1_Pooling/config.json`), `Dense` layers, `Normalize`;
/// and `max_seq_length` from `sentence_bert_config.json` (256 for all-MiniLM-L6-v2, not
/// tokenizer.json's 128). A plain transformers folder gets mean pooling and no normalisation.
public final class SentenceEncoder: @unchecked Sendable {
    public let model: EncoderModel
    public let tokenizer: any TextTokenizer
    public let maxLength: Int
    public let normalize: Bool
    public let pooling: Pooling
    /// sentence-transformers `Dense` modules, applied after pooling, in order.
    public let dense: [DenseLayer]

    /// Loads the folder; the encoder's linear layers run at `precision`, their packed weights
    /// kept in `packCache` when given.
    public init(directory: String, precision: Precision = .f32, packCache: PackedWeightCache? = nil) throws {
        model = try EncoderModel(directory: directory, precision: precision, packCache: packCache)
        tokenizer = try TokenizerFile.load(path: (directory as NSString).appendingPathComponent("tokenizer.json"))
        let settings = try Settings(directory: directory, maxTokens: model.maxTokens)
        maxLength = settings.maxLength
        normalize = settings.normalize
        pooling = settings.pooling
        let hidden = model.hidden
        var width = settings.pooling.width(hidden: hidden)
        dense = try settings.denseModules.map { dir in
            let layer = try DenseLayer.sentenceTransformers(directory: dir)
            guard layer.inputs == width else {
                throw EncoderError.head(path: dir, reason: "the Dense module takes \(layer.inputs) inputs but receives \(width) (pooling \(settings.pooling) of width \(hidden))")
            }
            width = layer.outputs
            return layer
        }
    }

    /// Width of the sentence embeddings.
    public var dimension: Int { dense.last?.outputs ?? pooling.width(hidden: model.hidden) }

    /// The sentence-transformers configuration of a model folder. Each file is optional; one
    /// that exists but is not valid JSON of the expected form is an error naming it and the field.
    public struct Settings: Equatable, Sendable {
        /// Token limit: `max_seq_length`, at most the model's `maxTokens` (its position table).
        public let maxLength: Int
        /// Whether modules.json has a Normalize module.
        public let normalize: Bool
        /// `1_Pooling/config.json`'s modes (mean when there is none).
        public let pooling: Pooling
        /// Folders of the `Dense` modules, in modules.json's order.
        public let denseModules: [String]

        public init(directory: String, maxTokens: Int) throws {
            func json(_ rel: String) throws -> (path: String, value: JSONValue)? {
                let p = (directory as NSString).appendingPathComponent(rel)
                guard let data = FileManager.default.contents(atPath: p) else { return nil }
                guard data.count <= 1 << 20 else { throw ConfigError.invalid(path: p, reason: "\(data.count) bytes; too large for a configuration file") }
                do { return (p, try data.withUnsafeBytes { try JSONValue.parse($0, maxDepth: 16) }) } catch {
                    throw ConfigError.invalid(path: p, reason: "not valid JSON (\(error))")
                }
            }
            var normalize = false, dense: [String] = [], poolingDir = "1_Pooling", sawNormalize = false
            if case let (p, modules)? = try json("modules.json") {
                guard case .array(let list) = modules else { throw ConfigError.invalid(path: p, reason: "must be an array of modules") }
                for (i, m) in list.enumerated() {
                    guard case .object = m, case .string(let type)? = m["type"] else {
                        throw ConfigError.invalid(path: p, reason: "module \(i) is not an object with a \"type\"")
                    }
                    let kind = type.split(separator: ".").last.map(String.init) ?? type
                    var path = ""
                    switch m["path"] {
                    case nil, .null?: break
                    case .string(let s)?:
                        guard !s.contains(".."), !s.hasPrefix("/") else { throw ConfigError.invalid(path: p, reason: "module \(i) has path \"\(s)\" outside the model folder") }
                        path = s
                    default: throw ConfigError.invalid(path: p, reason: "module \(i): field \"path\" must be a string")
                    }
                    switch kind {
                    case "Transformer": break
                    case "Pooling": poolingDir = path
                    case "Dense":
                        guard !sawNormalize else { throw ConfigError.invalid(path: p, reason: "module \(i): a Dense module after Normalize is not supported") }
                        dense.append((directory as NSString).appendingPathComponent(path))
                    case "Normalize": normalize = true; sawNormalize = true
                    default:
                        throw ConfigError.invalid(path: p, reason: "module \(i) is a \(kind) (\(type)); supported: Transformer, Pooling, Dense, Normalize")
                    }
                }
            }
            self.normalize = normalize
            denseModules = dense
            pooling = try json((poolingDir as NSString).appendingPathComponent("config.json")).map { try Self.pooling($0.path, $0.value) } ?? .mean
            var limit: Int? = nil
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
            // sentence-transformers' fallback (and where version 6 keeps max_seq_length).
            maxLength = try limit ?? Self.tokenizerMaxLength(directory: directory).map { min($0, maxTokens) } ?? maxTokens
        }

        /// `model_max_length` of tokenizer_config.json in `directory`, when it is a real limit
        /// (transformers writes ~1e30 for "none").
        static func tokenizerMaxLength(directory: String) throws -> Int? {
            let p = (directory as NSString).appendingPathComponent("tokenizer_config.json")
            guard let data = FileManager.default.contents(atPath: p) else { return nil }
            guard data.count <= 1 << 22 else { throw ConfigError.invalid(path: p, reason: "\(data.count) bytes; too large for a configuration file") }
            let json: JSONValue
            do { json = try data.withUnsafeBytes { try JSONValue.parse($0, maxDepth: 32) } } catch {
                throw ConfigError.invalid(path: p, reason: "not valid JSON (\(error))")
            }
            if case .integer(let n)? = json["model_max_length"], n >= 3, n <= 1 << 20 { return n }
            return nil
        }

        /// A Pooling config: sentence-transformers 6's `pooling_mode` (a name or a list), or the
        /// legacy `pooling_mode_*` flags.
        static func pooling(_ p: String, _ config: JSONValue) throws -> Pooling {
            guard case .object = config else { throw ConfigError.invalid(path: p, reason: "must be a JSON object") }
            func mode(_ name: String) throws -> Pooling.Mode {
                guard let m = Pooling.Mode(rawValue: name == "mean_sqrt_len" ? "mean_sqrt_len_tokens" : name) else {
                    throw ConfigError.invalid(path: p, reason: "field \"pooling_mode\": unknown mode \"\(name)\" (known: \(Pooling.Mode.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                return m
            }
            switch config["pooling_mode"] {
            case .string(let s)?: return Pooling([try mode(s)])
            case .array(let list)?:
                return Pooling(try list.map { v in
                    guard case .string(let s) = v else { throw ConfigError.invalid(path: p, reason: "field \"pooling_mode\" must list mode names") }
                    return try mode(s)
                })
            case nil, .null?: break
            default: throw ConfigError.invalid(path: p, reason: "field \"pooling_mode\" must be a string or a list of strings")
            }
            let legacy: [(String, Pooling.Mode)] = [("pooling_mode_cls_token", .cls), ("pooling_mode_max_tokens", .max),
                                                   ("pooling_mode_mean_tokens", .mean), ("pooling_mode_mean_sqrt_len_tokens", .meanSqrtLen),
                                                   ("pooling_mode_weightedmean_tokens", .weightedMean), ("pooling_mode_lasttoken", .lastToken)]
            var modes: [Pooling.Mode] = []
            for (key, m) in legacy {
                switch config[key] {
                case nil, .null?, .bool(false)?: break
                case .bool(true)?: modes.append(m)
                default: throw ConfigError.invalid(path: p, reason: "field \"\(key)\" must be a boolean")
                }
            }
            return Pooling(modes)
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

    /// Sentence vectors for `texts`, in batches of `batchSize` sequences of similar length:
    /// pooled as configured (or as `pooling` says), through the Dense modules, then normalised
    /// (`normalized` nil follows modules.json). Heads pass their own pooling and get the raw
    /// pooled states (no Dense, no normalisation). `maxLength` overrides the configured token
    /// limit (a head's training limit).
    public func encode(_ texts: [String], adapters: AdapterSet = AdapterSet(), normalized: Bool? = nil, maxLength: Int? = nil,
                       pooling: Pooling? = nil, batchSize: Int = 32, progress: ((Int) -> Void)? = nil) -> [[Float]] {
        let ids = tokenize(texts, maxLength: maxLength)
        let order = ids.indices.sorted { (ids[$0].count, $0) < (ids[$1].count, $1) }
        var out = [[Float]](repeating: [], count: texts.count)
        var done = 0
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let chunk = Array(order[start..<min(order.count, start + batchSize)])
            let h = model.hiddenStates(chunk.map { ids[$0] }, adapters: adapters)
            for (k, i) in chunk.enumerated() {
                out[i] = pooling.map { $0.pool(h, sequence: k) } ?? sentenceVector(h, sequence: k, normalized: normalized)
            }
            done += chunk.count
            progress?(done)
        }
        return out
    }

    /// Sequence `s`'s sentence embedding: pooling, Dense modules, normalisation (`normalized`
    /// nil follows modules.json).
    public func sentenceVector(_ h: HiddenStates, sequence s: Int, normalized: Bool? = nil) -> [Float] {
        var v = pooling.pool(h, sequence: s)
        for layer in dense { v = layer.apply(v) }
        return normalized ?? normalize ? Pooling.normalized(v) : v
    }
}
