import Foundation

/// The fields of a Hugging Face `config.json` that a BERT-family encoder needs.
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
        do { config = try JSONDecoder().decode(HFConfig.self, from: data) } catch let DecodingError.keyNotFound(key, _) {
            throw ConfigError.invalid(path: path, reason: "missing field \"\(key.stringValue)\"")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw ConfigError.invalid(path: path, reason: "field \"\(ctx.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type")
        } catch {
            throw ConfigError.invalid(path: path, reason: "not valid JSON")
        }
        try config.validate(path: path)
        return config
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
        if let e = layerNormEps, !(e.isFinite && e >= 0 && e < 1) {
            throw ConfigError.invalid(path: path, reason: "layer_norm_eps = \(e) is not a small non-negative number")
        }
        guard hiddenSize % numAttentionHeads == 0 else {
            throw ConfigError.invalid(path: path, reason: "hidden_size \(hiddenSize) is not a multiple of num_attention_heads \(numAttentionHeads)")
        }
    }

    /// A one-line summary, e.g. "bert (BertModel): 6 layers, hidden 384, 12 heads, FFN 1536, vocab 30522".
    public var summary: String {
        "\(modelType ?? "?") (\((architectures ?? []).joined(separator: ", "))): \(numHiddenLayers) layers, hidden \(hiddenSize), \(numAttentionHeads) heads, FFN \(intermediateSize), vocab \(vocabSize), act \(hiddenAct ?? "?")"
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
