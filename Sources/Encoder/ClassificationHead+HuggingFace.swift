import Foundation
import Formats
import Tensors

extension ClassificationHead {
    /// Where transformers' `*ForSequenceClassification` models keep their head, per family (the
    /// head classes of `modeling_bert.py`, `modeling_roberta.py`, … computed exactly as there,
    /// dropout aside). Tensor names are relative to the checkpoint's root; `dense` may also sit
    /// under the family's model prefix (BERT's pooler: `bert.pooler.dense`).
    public struct Layout: Sendable {
        public let modelTypes: [String]
        /// The layer before the output projection, and its activation.
        public let dense: String
        public let activation: DenseLayer.Activation
        /// A LayerNorm after the activation (ModernBERT's `head.norm`).
        public let norm: String?
        public let output: String
        /// The pooled token: the first for every family but ModernBERT with
        /// `classifier_pooling: mean`.
        public let pooling: Pooling
        /// Whether config.json's `classifier_pooling` and `classifier_activation` apply (ModernBERT).
        public var configurable: Bool { norm != nil }

        public static let all: [Layout] = [
            // BertForSequenceClassification: tanh(pooler(h[CLS])) → classifier.
            Layout(modelTypes: ["bert"], dense: "pooler.dense", activation: .tanh, norm: nil, output: "classifier", pooling: .cls),
            // RobertaClassificationHead (also XLM-R, CamemBERT, MPNet): dense → tanh → out_proj on <s>.
            Layout(modelTypes: ["roberta", "xlm-roberta", "camembert", "mpnet"], dense: "classifier.dense", activation: .tanh, norm: nil,
                   output: "classifier.out_proj", pooling: .cls),
            // ElectraClassificationHead: dense → GELU → out_proj on [CLS].
            Layout(modelTypes: ["electra"], dense: "classifier.dense", activation: .gelu, norm: nil, output: "classifier.out_proj", pooling: .cls),
            // DistilBertForSequenceClassification: pre_classifier → ReLU → classifier.
            Layout(modelTypes: ["distilbert"], dense: "pre_classifier", activation: .relu, norm: nil, output: "classifier", pooling: .cls),
            // ModernBertForSequenceClassification: head.dense → act → head.norm → classifier.
            Layout(modelTypes: ["modernbert"], dense: "head.dense", activation: .gelu, norm: "head.norm", output: "classifier", pooling: .cls),
        ]

        public static func named(_ modelType: String) -> Layout? { all.first { $0.modelTypes.contains(modelType.lowercased()) } }

        /// Every tensor name of this head (weights and biases) that may occur in a checkpoint.
        public var tensorNames: [String] {
            ([dense, output] + (norm.map { [$0] } ?? [])).flatMap { [$0 + ".weight", $0 + ".bias"] }
        }
    }

    /// Whether `directory` holds a transformers sequence-classification checkpoint
    /// (`config.json` whose `architectures` name a `…ForSequenceClassification` class).
    public static func isTransformersClassifier(_ directory: String) -> Bool {
        guard let c = try? TransformersHeadConfig(directory: directory) else { return false }
        return c.isClassifier
    }

    /// The head layout of the transformers classifier in `directory`; nil when it is none.
    public static func transformersLayout(directory: String) throws -> Layout? {
        guard FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent("config.json")) else { return nil }
        let config = try TransformersHeadConfig(directory: directory)
        return config.isClassifier ? Layout.named(config.modelType) : nil
    }

    /// The head of a transformers `*ForSequenceClassification` checkpoint in `directory`: its
    /// tensors from the checkpoint, labels from `id2label`, softmax or sigmoid from
    /// `problem_type`, and the token limit from tokenizer_config.json's `model_max_length`.
    public static func transformers(directory: String) throws -> ClassificationHead {
        let config = try TransformersHeadConfig(directory: directory)
        guard config.isClassifier else {
            throw EncoderError.head(path: config.path, reason: "field \"architectures\" names \(config.architecture ?? "nothing"), not a …ForSequenceClassification model")
        }
        // A store checkout keeps the head apart from the delta, in head.safetensors.
        let headFile = (directory as NSString).appendingPathComponent("head.safetensors")
        let weights = try WeightSource(path: FileManager.default.fileExists(atPath: headFile) ? headFile : directory)
        var head = try Self.transformers(config: config, tensors: { name in
            for candidate in [name] + config.prefixes.map({ $0 + name }) where weights.info(candidate) != nil {
                return try weights.tensor(candidate)
            }
            return nil
        }, source: directory)
        head.maxLength = try SentenceEncoder.Settings.tokenizerMaxLength(directory: directory)
        return head
    }

    /// A head of `config`'s layout from `tensors` (by canonical name; nil when absent).
    static func transformers(config: TransformersHeadConfig, tensors: (String) throws -> Tensor?, source: String) throws -> ClassificationHead {
        guard let layout = Layout.named(config.modelType) else {
            throw EncoderError.head(path: config.path, reason: "field \"model_type\" is \"\(config.modelType)\"; classification heads are known for \(Layout.all.flatMap(\.modelTypes).joined(separator: ", "))")
        }
        func required(_ name: String) throws -> Tensor {
            guard let t = try tensors(name) else { throw EncoderError.missingTensor(model: source, tensor: name) }
            return t
        }
        var norm: (gamma: [Float], beta: [Float]?, eps: Float)? = nil
        if let n = layout.norm {
            norm = (try required(n + ".weight").floats(), try tensors(n + ".bias")?.floats(), config.normEps)
        }
        // Every head's Linear layers have biases but ModernBERT's dense (`classifier_bias`).
        let denseBias = layout.configurable ? try tensors(layout.dense + ".bias") : try required(layout.dense + ".bias")
        let dense = try DenseLayer(weight: required(layout.dense + ".weight"), bias: denseBias,
                                   activation: layout.configurable ? config.activation ?? layout.activation : layout.activation, norm: norm, source: source, name: layout.dense)
        let output = try DenseLayer(weight: required(layout.output + ".weight"), bias: required(layout.output + ".bias"),
                                    activation: .identity, source: source, name: layout.output)
        if let labels = config.labels, labels.count != output.outputs {
            throw EncoderError.head(path: config.path, reason: "field \"id2label\" names \(labels.count) labels but tensor \"\(layout.output).weight\" has \(output.outputs) outputs")
        }
        guard dense.outputs == output.inputs else {
            throw EncoderError.shapeMismatch(source: source, tensor: layout.output + ".weight", expected: [output.outputs, dense.outputs], found: output.weight.shape.dims)
        }
        return try ClassificationHead(pooling: layout.configurable ? config.pooling ?? layout.pooling : layout.pooling, layers: [dense], output: output,
                                      labels: config.labels ?? [], problem: config.problem, layout: config.modelType)
    }
}

extension ClassificationHead {
    /// Whether a PEFT folder's saved head is a transformers `…ForSequenceClassification` head
    /// (PEFT's SEQ_CLS over a transformers model) rather than Alloy's linear head on mean-pooled
    /// states (its experts record `auto_mapping.base_model_class: MeanPoolClassifier` and
    /// `head.pooling: mean` in their card).
    static func isTransformersPEFTHead(_ peft: PEFTAdapter, card: ExpertCard?) -> Bool {
        if card?.head?.pooling == "mean" { return false }
        if let c = peft.baseModelClass { return c.hasSuffix("ForSequenceClassification") }
        return peft.taskType == "SEQ_CLS"
    }

    /// The head of a PEFT SEQ_CLS adapter over `model` (PEFT's `modules_to_save` hold the
    /// classifier; what they do not hold — BERT's pooler — is the base's, with the adapter's
    /// LoRA update when it has one). Labels: `labels`, else the base's `id2label`; softmax or
    /// sigmoid as the base's config says; the token limit from the adapter's `card`, else the base's.
    static func peft(_ peft: PEFTAdapter, layers: [String: LoRAWeights], model: EncoderModel, labels: [String], card: ExpertCard?) throws -> ClassificationHead {
        let baseConfig = try? TransformersHeadConfig(directory: model.directory)
        let modelType = model.config.modelType ?? ""
        func tensor(_ name: String) throws -> Tensor? {
            for alias in TensorNames.aliases(name) {
                if let t = peft.savedTensors[alias] { return t }
            }
            let canonical = model.architecture.canonical(name)
            guard let base = model.weights[canonical] else { return nil }
            let module = String(canonical.dropLast(".weight".count))
            guard canonical.hasSuffix(".weight"), let lora = layers[module] else { return base }
            // W + s·B·A, as PEFT's merged layer computes it.
            var w = try base.floats()
            let a = try lora.a.floats(), b = try lora.b.floats()
            let (out, inp, r) = (base.shape.dims[0], base.shape.dims[1], lora.rank)
            for o in 0..<out { for i in 0..<inp {
                var sum: Float = 0
                for k in 0..<r { sum += b[o * r + k] * a[k * inp + i] }
                w[o * inp + i] += lora.scale * sum
            } }
            return try Tensor(w, shape: base.shape)
        }
        let config = TransformersHeadConfig(path: peft.directory, modelType: modelType, architecture: nil,
                                            labels: labels.isEmpty ? baseConfig?.labels : labels, problem: baseConfig?.problem ?? .singleLabel,
                                            pooling: baseConfig?.pooling, activation: baseConfig?.activation, normEps: baseConfig?.normEps ?? 1e-5)
        var head = try transformers(config: config, tensors: tensor, source: peft.directory)
        guard head.inputWidth == model.hidden else {
            throw EncoderError.head(path: peft.directory, reason: "the head takes vectors of \(head.inputWidth), the encoder's hidden size is \(model.hidden)")
        }
        head.maxLength = try card?.head?.maxLength ?? SentenceEncoder.Settings.tokenizerMaxLength(directory: model.directory)
        return head
    }
}

/// The fields of a transformers config.json that a classification head needs, read leniently
/// (everything but the head is `HFConfig`'s business) and checked strictly.
struct TransformersHeadConfig {
    let path: String
    let modelType: String
    let architecture: String?
    /// Labels by id, from `id2label` (nil when absent).
    let labels: [String]?
    let problem: ClassificationHead.Problem
    /// ModernBERT's `classifier_pooling` and `classifier_activation`, its `norm_eps`.
    let pooling: Pooling?
    let activation: DenseLayer.Activation?
    let normEps: Float
    /// Task-model prefixes a checkpoint may put before the encoder's names (BERT's pooler).
    let prefixes = ["bert.", "roberta.", "distilbert.", "electra.", "mpnet.", "model."]

    var isClassifier: Bool { architecture?.hasSuffix("ForSequenceClassification") ?? false }

    init(path: String, modelType: String, architecture: String?, labels: [String]?, problem: ClassificationHead.Problem,
         pooling: Pooling?, activation: DenseLayer.Activation?, normEps: Float) {
        self.path = path; self.modelType = modelType; self.architecture = architecture; self.labels = labels
        self.problem = problem; self.pooling = pooling; self.activation = activation; self.normEps = normEps
    }

    init(directory: String) throws {
        path = (directory as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EncoderError.missingFile(path: path, hint: "a transformers checkpoint needs config.json")
        }
        guard data.count <= 1 << 22 else { throw ConfigError.invalid(path: path, reason: "\(data.count) bytes; too large for config.json") }
        let json: JSONValue
        do { json = try data.withUnsafeBytes { try JSONValue.parse($0, maxDepth: 32) } } catch {
            throw ConfigError.invalid(path: path, reason: "not valid JSON (\(error))")
        }
        let path = path
        func string(_ key: String) throws -> String? {
            switch json[key] {
            case nil, .null?: return nil
            case .string(let s)?: return s
            default: throw ConfigError.invalid(path: path, reason: "field \"\(key)\" must be a string")
            }
        }
        modelType = try string("model_type") ?? ""
        if case .array(let a)? = json["architectures"], case .string(let s)? = a.first { architecture = s } else { architecture = nil }
        switch json["id2label"] {
        case nil, .null?: labels = nil
        case .object(let entries)?:
            guard entries.count <= 1 << 16 else { throw ConfigError.invalid(path: path, reason: "field \"id2label\" has \(entries.count) entries") }
            var byID = [String?](repeating: nil, count: entries.count)
            for (k, v) in entries {
                guard let i = Int(k), i >= 0, i < entries.count, byID[i] == nil, case .string(let label) = v else {
                    throw ConfigError.invalid(path: path, reason: "field \"id2label\" must map the ids 0…\(entries.count - 1) to label names; entry \"\(k)\" does not")
                }
                byID[i] = label
            }
            labels = byID.compactMap { $0 }
        default: throw ConfigError.invalid(path: path, reason: "field \"id2label\" must be an object")
        }
        if case .integer(let n)? = json["num_labels"], let labels, n != labels.count {
            throw ConfigError.invalid(path: path, reason: "field \"num_labels\" is \(n) but \"id2label\" names \(labels.count) labels")
        }
        if let p = try string("problem_type") {
            guard let problem = ClassificationHead.Problem(rawValue: p) else {
                throw ConfigError.invalid(path: path, reason: "field \"problem_type\" is \"\(p)\"; expected single_label_classification, multi_label_classification or regression")
            }
            self.problem = problem
        } else {
            problem = (labels?.count ?? 2) == 1 ? .regression : .singleLabel   // transformers' inference when unset
        }
        switch try string("classifier_pooling") {
        case nil: pooling = nil
        case "cls"?: pooling = .cls
        case "mean"?: pooling = .mean
        case let other?: throw ConfigError.invalid(path: path, reason: "field \"classifier_pooling\" is \"\(other)\"; expected cls or mean")
        }
        if let a = try string("classifier_activation") {
            guard let act = DenseLayer.Activation(name: a) else {
                throw ConfigError.invalid(path: path, reason: "field \"classifier_activation\" is \"\(a)\"; supported: gelu, tanh, relu, sigmoid, linear")
            }
            activation = act
        } else {
            activation = nil
        }
        switch json["norm_eps"] {
        case .number(let e)? where e.isFinite && e > 0 && e < 1: normEps = Float(e)
        case nil, .null?: normEps = 1e-5
        default: throw ConfigError.invalid(path: path, reason: "field \"norm_eps\" must be a small positive number")
        }
    }
}
