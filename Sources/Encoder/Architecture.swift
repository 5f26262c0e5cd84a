/// Weight-name templates of the supported encoders, as data. `{i}` stands for the layer index.
/// Loading is strict: every tensor of a checkpoint must be named here (or be an ignorable
/// buffer), every required name must be present, and shapes must match the config.
public struct Architecture: Sendable {
    public let name: String
    /// `model_type` values in config.json that select this architecture.
    public let modelTypes: [String]
    /// Prefixes that checkpoints of task models put before the encoder's names.
    public let prefixes: [String]
    public let wordEmbeddings: String
    public let positionEmbeddings: String
    public let tokenTypeEmbeddings: String?
    public let embeddingNorm: String
    /// Per layer, relative to `layerPrefix`.
    public let layerPrefix: String
    public let query: String, key: String, value: String, attentionOutput: String, attentionNorm: String
    public let intermediate: String, output: String, outputNorm: String
    public let pooler: String?
    /// Tensor names that may be present and are not weights (buffers).
    public let ignorable: [String]
    /// Position ids start here (RoBERTa: padding index + 1).
    public let positionOffset: Int

    public static let bert = Architecture(
        name: "bert", modelTypes: ["bert"], prefixes: ["bert."],
        wordEmbeddings: "embeddings.word_embeddings", positionEmbeddings: "embeddings.position_embeddings",
        tokenTypeEmbeddings: "embeddings.token_type_embeddings", embeddingNorm: "embeddings.LayerNorm",
        layerPrefix: "encoder.layer.{i}.", query: "attention.self.query", key: "attention.self.key", value: "attention.self.value",
        attentionOutput: "attention.output.dense", attentionNorm: "attention.output.LayerNorm",
        intermediate: "intermediate.dense", output: "output.dense", outputNorm: "output.LayerNorm",
        pooler: "pooler.dense", ignorable: ["embeddings.position_ids"], positionOffset: 0)

    public static let roberta = Architecture(
        name: "roberta", modelTypes: ["roberta", "xlm-roberta"], prefixes: ["roberta."],
        wordEmbeddings: bert.wordEmbeddings, positionEmbeddings: bert.positionEmbeddings,
        tokenTypeEmbeddings: bert.tokenTypeEmbeddings, embeddingNorm: bert.embeddingNorm,
        layerPrefix: bert.layerPrefix, query: bert.query, key: bert.key, value: bert.value,
        attentionOutput: bert.attentionOutput, attentionNorm: bert.attentionNorm,
        intermediate: bert.intermediate, output: bert.output, outputNorm: bert.outputNorm,
        pooler: "pooler.dense", ignorable: ["embeddings.position_ids"], positionOffset: 2)

    public static let distilbert = Architecture(
        name: "distilbert", modelTypes: ["distilbert"], prefixes: ["distilbert."],
        wordEmbeddings: "embeddings.word_embeddings", positionEmbeddings: "embeddings.position_embeddings",
        tokenTypeEmbeddings: nil, embeddingNorm: "embeddings.LayerNorm",
        layerPrefix: "transformer.layer.{i}.", query: "attention.q_lin", key: "attention.k_lin", value: "attention.v_lin",
        attentionOutput: "attention.out_lin", attentionNorm: "sa_layer_norm",
        intermediate: "ffn.lin1", output: "ffn.lin2", outputNorm: "output_layer_norm",
        pooler: nil, ignorable: ["embeddings.position_ids"], positionOffset: 0)

    public static let all: [Architecture] = [bert, roberta, distilbert]

    public static func named(modelType: String?, architectures: [String]?) -> Architecture? {
        if let t = modelType?.lowercased() { return all.first { $0.modelTypes.contains(t) } }
        if let a = architectures?.first?.lowercased() { return all.first { a.hasPrefix($0.name) } }
        return nil
    }

    /// The linear layers of one encoder layer, in the order the forward pass uses them.
    public enum Linear: Int, CaseIterable, Sendable { case query, key, value, attentionOutput, intermediate, output }

    public func path(_ l: Linear, layer i: Int) -> String {
        let p = layerPrefix.replacingOccurrences(of: "{i}", with: String(i))
        switch l {
        case .query: return p + query
        case .key: return p + key
        case .value: return p + value
        case .attentionOutput: return p + attentionOutput
        case .intermediate: return p + intermediate
        case .output: return p + output
        }
    }

    /// Strips a task-model prefix (`bert.`), mapping a checkpoint name to this table's names.
    public func canonical(_ name: String) -> String {
        for p in prefixes where name.hasPrefix(p) { return String(name.dropFirst(p.count)) }
        return name
    }
}
