import Foundation

/// The fields of a Hugging Face `config.json` that a BERT-family encoder needs: BERT, RoBERTa,
/// XLM-RoBERTa, DistilBERT, MPNet, ELECTRA and ModernBERT (field names as transformers'
/// configuration classes write them; the family-specific ones optional).
public struct HFConfig: Codable, Equatable, Sendable {
    public var architectures: [String]?
    public var modelType: String?
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    public var hiddenAct: String?
    public var layerNormEps: Double?
    public var vocabSize: Int
    public var maxPositionEmbeddings: Int
    public var typeVocabSize: Int?
    public var padTokenId: Int?
    public var id2label: [String: String]?
    public var label2id: [String: Int]?
    /// ELECTRA: the width of the embeddings when it differs from `hidden_size` (then
    /// `embeddings_project` maps them to the hidden width).
    public var embeddingSize: Int?
    /// MPNet: rows of the relative-position bias table (`encoder.relative_attention_bias`).
    public var relativeAttentionNumBuckets: Int?
    /// ModernBERT: `hidden_activation` (it has no `hidden_act`), `norm_eps` (no
    /// `layer_norm_eps`), whether the norms and linear layers have biases.
    public var hiddenActivation: String?
    public var normEps: Double?
    public var normBias: Bool?
    public var attentionBias: Bool?
    public var mlpBias: Bool?
    /// ModernBERT: the sliding window of local layers in tokens (a token sees ±local_attention/2),
    /// one global layer every `global_attn_every_n_layers` (layer 0 global), RoPE bases; or,
    /// as transformers 5 writes them, `layer_types` and `rope_parameters` per layer type.
    public var localAttention: Int?
    public var globalAttnEveryNLayers: Int?
    public var globalRopeTheta: Double?
    public var localRopeTheta: Double?
    public var layerTypes: [String]?
    public var ropeParameters: RopeParameters?

    enum CodingKeys: String, CodingKey {
        case architectures
        case modelType = "model_type"
        case hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case intermediateSize = "intermediate_size"
        case hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps"
        case vocabSize = "vocab_size"
        case maxPositionEmbeddings = "max_position_embeddings"
        case typeVocabSize = "type_vocab_size"
        case padTokenId = "pad_token_id"
        case id2label
        case label2id
        case embeddingSize = "embedding_size"
        case relativeAttentionNumBuckets = "relative_attention_num_buckets"
        case hiddenActivation = "hidden_activation"
        case normEps = "norm_eps"
        case normBias = "norm_bias"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case localAttention = "local_attention"
        case globalAttnEveryNLayers = "global_attn_every_n_layers"
        case globalRopeTheta = "global_rope_theta"
        case localRopeTheta = "local_rope_theta"
        case layerTypes = "layer_types"
        case ropeParameters = "rope_parameters"
    }

    /// `rope_parameters`: per layer type (`full_attention`, `sliding_attention`) a `rope_type` and
    /// `rope_theta` (transformers 5), or one set for every layer. Anything else reads as empty.
    public struct RopeParameters: Codable, Equatable, Sendable {
        public struct Entry: Codable, Equatable, Sendable {
            public var ropeTheta: Double?
            public var ropeType: String?
            enum CodingKeys: String, CodingKey { case ropeTheta = "rope_theta", ropeType = "rope_type" }
        }
        public var byLayerType: [String: Entry]
        public var shared: Entry?

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let d = try? c.decode([String: Entry].self) { byLayerType = d; shared = nil }
            else { byLayerType = [:]; shared = try? c.decode(Entry.self) }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            if let shared { try c.encode(shared) } else { try c.encode(byLayerType) }
        }
    }

    /// The LayerNorm epsilon: `layer_norm_eps`, else ModernBERT's `norm_eps`.
    public var normEpsilon: Double? { layerNormEps ?? normEps }

    /// ModernBERT: whether layer `l` attends globally — `layer_types` when given, else every
    /// `global_attn_every_n_layers`-th layer from 0 (default 3, as transformers).
    public func isGlobalAttentionLayer(_ l: Int) -> Bool {
        if let t = layerTypes, l < t.count { return t[l] != "sliding_attention" }
        return l % max(1, globalAttnEveryNLayers ?? 3) == 0
    }

    /// ModernBERT: the RoPE base of global or local layers — `rope_parameters` per layer type,
    /// else `global_rope_theta` / `local_rope_theta`, else transformers' defaults (160000, 10000).
    public func ropeTheta(global: Bool) -> Double {
        let entry = ropeParameters?.byLayerType[global ? "full_attention" : "sliding_attention"] ?? ropeParameters?.shared
        return entry?.ropeTheta ?? (global ? globalRopeTheta : localRopeTheta) ?? (global ? 160_000 : 10_000)
    }

    public init(hiddenSize: Int, numHiddenLayers: Int, numAttentionHeads: Int, intermediateSize: Int,
                vocabSize: Int, maxPositionEmbeddings: Int, typeVocabSize: Int? = 2,
                modelType: String? = "bert", architectures: [String]? = ["BertModel"],
                hiddenAct: String? = "gelu", layerNormEps: Double? = 1e-12) {
        self.hiddenSize = hiddenSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.intermediateSize = intermediateSize
        self.vocabSize = vocabSize
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.typeVocabSize = typeVocabSize
        self.modelType = modelType
        self.architectures = architectures
        self.hiddenAct = hiddenAct
        self.layerNormEps = layerNormEps
    }

    /// Reads and checks `config.json`; errors name the file and the missing or bad field.
    public static func load(path: String) throws -> HFConfig {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ConfigError.unreadable(path: path, reason: error.localizedDescription)
        }
        let config: HFConfig
        do { config = try JSONDecoder().decode(HFConfig.self, from: withAliases(data)) } catch let DecodingError.keyNotFound(key, _) {
            throw ConfigError.invalid(path: path, reason: "missing field \"\(key.stringValue)\"")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw ConfigError.invalid(path: path, reason: "field \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type")
        } catch {
            throw ConfigError.invalid(path: path, reason: "not valid JSON")
        }
        try config.validate(path: path)
        return config
    }

    /// transformers' `attribute_map` names that some configuration classes write instead of the
    /// common ones (DistilBERT: `dim`, `n_layers`, `n_heads`, `hidden_dim`).
    static let aliases = [("hidden_size", "dim"), ("num_hidden_layers", "n_layers"), ("num_attention_heads", "n_heads"),
                          ("intermediate_size", "hidden_dim")]

    /// `data` with each missing common field copied from its alias when that is present; the
    /// bytes unchanged otherwise (or when they are not a JSON object: decoding reports that).
    static func withAliases(_ data: Data) -> Data {
        guard var obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return data }
        var changed = false
        for (name, alias) in aliases where obj[name] == nil {
            if let v = obj[alias] { obj[name] = v; changed = true }
        }
        guard changed, let out = try? JSONSerialization.data(withJSONObject: obj) else { return data }
        return out
    }

    func validate(path: String) throws {
        // Caps well above every BERT-family model (the largest: 48 layers, hidden 4096, a 250k
        // vocabulary), low enough that a hostile config cannot make loading build millions of
        // expected tensor names or huge shapes before the weights are checked.
        for (name, v, cap) in [("hidden_size", hiddenSize, 1 << 16), ("num_hidden_layers", numHiddenLayers, 1024),
                               ("num_attention_heads", numAttentionHeads, 1024), ("intermediate_size", intermediateSize, 1 << 18),
                               ("vocab_size", vocabSize, 1 << 22), ("max_position_embeddings", maxPositionEmbeddings, 1 << 20)] {
            guard v > 0, v <= cap else { throw ConfigError.invalid(path: path, reason: "\(name) = \(v) is outside 1…\(cap)") }
        }
        if let t = typeVocabSize, !(0...1024).contains(t) {
            throw ConfigError.invalid(path: path, reason: "type_vocab_size = \(t) is outside 0…1024")
        }
        for (name, e) in [("layer_norm_eps", layerNormEps), ("norm_eps", normEps)] {
            if let e, !(e.isFinite && e >= 0 && e < 1) {
                throw ConfigError.invalid(path: path, reason: "\(name) = \(e) is not a small non-negative number")
            }
        }
        for (name, v, range) in [("embedding_size", embeddingSize, 1...(1 << 16)), ("relative_attention_num_buckets", relativeAttentionNumBuckets, 1...4096),
                                 ("local_attention", localAttention, 0...(1 << 20)), ("global_attn_every_n_layers", globalAttnEveryNLayers, 1...1024)] {
            if let v, !range.contains(v) { throw ConfigError.invalid(path: path, reason: "\(name) = \(v) is outside \(range.lowerBound)…\(range.upperBound)") }
        }
        var thetas = [("global_rope_theta", globalRopeTheta), ("local_rope_theta", localRopeTheta)]
        for (k, e) in (ropeParameters?.byLayerType ?? [:]).sorted(by: { $0.key < $1.key }) { thetas.append(("rope_parameters.\(k).rope_theta", e.ropeTheta)) }
        thetas.append(("rope_parameters.rope_theta", ropeParameters?.shared?.ropeTheta))
        for (name, t) in thetas {
            if let t, !(t.isFinite && t > 1 && t <= 1e12) { throw ConfigError.invalid(path: path, reason: "\(name) = \(t) is outside (1, 10¹²]") }
        }
        for (k, e) in (ropeParameters?.byLayerType ?? [:]).sorted(by: { $0.key < $1.key }) {
            if let t = e.ropeType, t != "default" { throw ConfigError.invalid(path: path, reason: "rope_parameters.\(k).rope_type \"\(t)\" is not supported (only \"default\")") }
        }
        if let t = ropeParameters?.shared?.ropeType, t != "default" {
            throw ConfigError.invalid(path: path, reason: "rope_parameters.rope_type \"\(t)\" is not supported (only \"default\")")
        }
        if let types = layerTypes {
            guard types.count == numHiddenLayers else {
                throw ConfigError.invalid(path: path, reason: "layer_types has \(types.count) entries for \(numHiddenLayers) layers")
            }
            if let bad = types.first(where: { $0 != "full_attention" && $0 != "sliding_attention" }) {
                throw ConfigError.invalid(path: path, reason: "layer_types: unknown layer type \"\(bad)\" (full_attention or sliding_attention)")
            }
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw ConfigError.invalid(path: path, reason: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
    }

    /// A one-line summary, e.g. "bert (BertModel): 6 layers, hidden 384, 12 heads, FFN 1536, vocab 30522".
    public var summary: String {
        "\(modelType ?? "?") (\((architectures ?? []).joined(separator: ", "))): \(numHiddenLayers) layers, hidden \(hiddenSize), \(numAttentionHeads) heads, FFN \(intermediateSize), vocab \(vocabSize), act \(hiddenAct ?? hiddenActivation ?? "?")"
    }
}

public enum ConfigError: Error, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case invalid(path: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(p, r): return "\(p): cannot read (\(r))"
        case let .invalid(p, r): return "\(p): \(r)"
        }
    }
}
