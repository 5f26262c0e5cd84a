/// Weight-name templates of the supported encoders, as data. `{i}` stands for the layer index.
/// Loading is strict: every tensor of a checkpoint must be named here (or be an ignorable
/// buffer, a sequence-classification head tensor, or a known pre-training head left over),
/// every required name must be present, and shapes must match the config.
public struct Architecture: Sendable {
    /// How an encoder layer is wired; the one structural switch of the forward pass.
    public enum Structure: Sendable {
        /// BERT's post-norm layer: Add & Norm after attention and after the GELU MLP (BERT,
        /// RoBERTa, DistilBERT, MPNet, ELECTRA).
        case postNorm
        /// ModernBERT's pre-norm layer (Warner et al. 2024, https://arxiv.org/abs/2412.13663):
        /// fused QKV with RoPE, GeGLU MLP, alternating global and sliding-window attention, a final norm.
        case preNormGeGLU
    }

    public let name: String
    /// `model_type` values in config.json that select this architecture.
    public let modelTypes: [String]
    /// Prefixes that checkpoints of task models put before the encoder's names.
    public let prefixes: [String]
    public let structure: Structure
    public let wordEmbeddings: String
    /// The absolute position table; nil when positions are rotary (ModernBERT).
    public let positionEmbeddings: String?
    public let tokenTypeEmbeddings: String?
    public let embeddingNorm: String
    /// ELECTRA: the Linear from `embedding_size` to `hidden_size` (present when they differ).
    public let embeddingProjection: String?
    /// MPNet: the relative-position bias table (buckets × heads), shared by all layers.
    public let relativeAttentionBias: String?
    /// Per layer, relative to `layerPrefix`. With `.preNormGeGLU`, `query` names the fused
    /// QKV projection (and `key`, `value` the same), `intermediate` the GeGLU input (2·FFN wide).
    public let layerPrefix: String
    public let query: String, key: String, value: String, attentionOutput: String, attentionNorm: String
    public let intermediate: String, output: String, outputNorm: String
    /// ModernBERT: the norm after the last layer.
    public let finalNorm: String?
    public let pooler: String?
    /// Tensor names that may be present and are not weights (non-persistent buffers that
    /// transformers before 5 saved: `embeddings.position_ids`, `embeddings.token_type_ids`).
    public let ignorable: [String]
    /// Prefixes (canonical names) of the tensors of the family's `*ForSequenceClassification`
    /// head: `bind` collects them into `EncoderModel.headTensors` instead of refusing them.
    public let headPrefixes: [String]
    /// Prefixes of task heads that Alloy does not run (masked-LM, pre-training heads): skipped.
    public let leftoverPrefixes: [String]
    /// Position ids start here (RoBERTa: padding index + 1).
    public let positionOffset: Int

    public init(name: String, modelTypes: [String], prefixes: [String], structure: Structure = .postNorm,
                wordEmbeddings: String = "embeddings.word_embeddings", positionEmbeddings: String? = "embeddings.position_embeddings",
                tokenTypeEmbeddings: String? = "embeddings.token_type_embeddings", embeddingNorm: String = "embeddings.LayerNorm",
                embeddingProjection: String? = nil, relativeAttentionBias: String? = nil,
                layerPrefix: String = "encoder.layer.{i}.", query: String = "attention.self.query", key: String = "attention.self.key",
                value: String = "attention.self.value", attentionOutput: String = "attention.output.dense",
                attentionNorm: String = "attention.output.LayerNorm", intermediate: String = "intermediate.dense",
                output: String = "output.dense", outputNorm: String = "output.LayerNorm", finalNorm: String? = nil,
                pooler: String? = "pooler.dense", headPrefixes: [String], leftoverPrefixes: [String] = [], positionOffset: Int = 0) {
        self.name = name; self.modelTypes = modelTypes; self.prefixes = prefixes; self.structure = structure
        self.wordEmbeddings = wordEmbeddings; self.positionEmbeddings = positionEmbeddings
        self.tokenTypeEmbeddings = tokenTypeEmbeddings; self.embeddingNorm = embeddingNorm
        self.embeddingProjection = embeddingProjection; self.relativeAttentionBias = relativeAttentionBias
        self.layerPrefix = layerPrefix; self.query = query; self.key = key; self.value = value
        self.attentionOutput = attentionOutput; self.attentionNorm = attentionNorm
        self.intermediate = intermediate; self.output = output; self.outputNorm = outputNorm; self.finalNorm = finalNorm
        self.pooler = pooler; self.ignorable = ["embeddings.position_ids", "embeddings.token_type_ids"]
        self.headPrefixes = headPrefixes; self.leftoverPrefixes = leftoverPrefixes; self.positionOffset = positionOffset
    }

    /// transformers' `modeling_bert.py`.
    public static let bert = Architecture(
        name: "bert", modelTypes: ["bert"], prefixes: ["bert."],
        headPrefixes: ["classifier.", "pooler."], leftoverPrefixes: ["cls.predictions.", "cls.seq_relationship."])

    /// `modeling_roberta.py` / `modeling_xlm_roberta.py` (the same layers; XLM-R checkpoints
    /// keep the `roberta.` prefix).
    public static let roberta = Architecture(
        name: "roberta", modelTypes: ["roberta", "xlm-roberta"], prefixes: ["roberta."],
        headPrefixes: ["classifier.dense.", "classifier.out_proj."], leftoverPrefixes: ["lm_head."], positionOffset: 2)

    /// `modeling_distilbert.py`.
    public static let distilbert = Architecture(
        name: "distilbert", modelTypes: ["distilbert"], prefixes: ["distilbert."],
        tokenTypeEmbeddings: nil, layerPrefix: "transformer.layer.{i}.", query: "attention.q_lin", key: "attention.k_lin",
        value: "attention.v_lin", attentionOutput: "attention.out_lin", attentionNorm: "sa_layer_norm",
        intermediate: "ffn.lin1", output: "ffn.lin2", outputNorm: "output_layer_norm", pooler: nil,
        headPrefixes: ["pre_classifier.", "classifier."], leftoverPrefixes: ["vocab_transform.", "vocab_layer_norm.", "vocab_projector."])

    /// `modeling_mpnet.py` (Song et al. 2020, https://arxiv.org/abs/2004.09297): positions after
    /// the padding index like RoBERTa, no token types, a relative-position bias on every layer.
    public static let mpnet = Architecture(
        name: "mpnet", modelTypes: ["mpnet"], prefixes: ["mpnet."], tokenTypeEmbeddings: nil,
        relativeAttentionBias: "encoder.relative_attention_bias",
        query: "attention.attn.q", key: "attention.attn.k", value: "attention.attn.v", attentionOutput: "attention.attn.o",
        attentionNorm: "attention.LayerNorm",
        headPrefixes: ["classifier.dense.", "classifier.out_proj."], leftoverPrefixes: ["lm_head."], positionOffset: 2)

    /// `modeling_electra.py` (Clark et al. 2020, https://arxiv.org/abs/2003.10555): the
    /// discriminator; BERT's layers after embeddings of `embedding_size`, projected when it differs.
    public static let electra = Architecture(
        name: "electra", modelTypes: ["electra"], prefixes: ["electra."], embeddingProjection: "embeddings_project", pooler: nil,
        headPrefixes: ["classifier.dense.", "classifier.out_proj."],
        leftoverPrefixes: ["discriminator_predictions.", "generator_predictions.", "generator_lm_head."])

    /// `modeling_modernbert.py` (Warner et al. 2024, https://arxiv.org/abs/2412.13663).
    public static let modernbert = Architecture(
        name: "modernbert", modelTypes: ["modernbert"], prefixes: ["model."], structure: .preNormGeGLU,
        wordEmbeddings: "embeddings.tok_embeddings", positionEmbeddings: nil, tokenTypeEmbeddings: nil, embeddingNorm: "embeddings.norm",
        layerPrefix: "layers.{i}.", query: "attn.Wqkv", key: "attn.Wqkv", value: "attn.Wqkv", attentionOutput: "attn.Wo",
        attentionNorm: "attn_norm", intermediate: "mlp.Wi", output: "mlp.Wo", outputNorm: "mlp_norm", finalNorm: "final_norm",
        pooler: nil, headPrefixes: ["head.dense.", "head.norm.", "classifier."], leftoverPrefixes: ["decoder."])

    public static let all: [Architecture] = [bert, roberta, distilbert, mpnet, electra, modernbert]

    public static func named(modelType: String?, architectures: [String]?) -> Architecture? {
        if let t = modelType?.lowercased() { return all.first { $0.modelTypes.contains(t) } }
        if let a = architectures?.first?.lowercased() {
            return all.first { $0.modelTypes.contains { a.hasPrefix($0.replacingOccurrences(of: "-", with: "")) } }
        }
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
