import Foundation
import Formats
import Tensors

/// One small fully connected layer applied to pooled vectors: y = act(W x + b), then an
/// optional LayerNorm. The building block of classification heads (transformers'
/// `*ClassificationHead`, BERT's pooler) and of sentence-transformers' `Dense` modules.
public struct DenseLayer: Sendable {
    public enum Activation: String, Sendable {
        case identity, tanh, relu, gelu, sigmoid

        /// transformers' `hidden_act` / `classifier_activation` names and sentence-transformers'
        /// `activation_function` class paths (`torch.nn.modules.activation.Tanh`, …).
        public init?(name: String) {
            switch name.split(separator: ".").last.map(String.init)?.lowercased() ?? "" {
            case "identity", "linear", "none": self = .identity
            case "tanh": self = .tanh
            case "relu": self = .relu
            case "gelu": self = .gelu
            case "sigmoid": self = .sigmoid
            default: return nil
            }
        }
    }

    /// out × in, F32.
    public let weight: Tensor
    /// out, F32, or nil for a layer without bias.
    public let bias: Tensor?
    public let activation: Activation
    /// LayerNorm after the activation (ModernBERT's head): γ, optional β, ε.
    public let norm: (gamma: [Float], beta: [Float]?, eps: Float)?

    public var inputs: Int { weight.shape.dims[1] }
    public var outputs: Int { weight.shape.dims[0] }

    /// Checks the shapes; `source` and `name` name the file and tensor in errors.
    public init(weight: Tensor, bias: Tensor?, activation: Activation, norm: (gamma: [Float], beta: [Float]?, eps: Float)? = nil,
                source: String, name: String) throws {
        guard weight.shape.rank == 2, weight.shape.dims.allSatisfy({ $0 > 0 }) else {
            throw EncoderError.head(path: source, reason: "tensor \"\(name).weight\" has shape \(weight.shape); expected a matrix (outputs × inputs)")
        }
        let out = weight.shape.dims[0]
        if let bias, bias.shape.dims != [out] {
            throw EncoderError.shapeMismatch(source: source, tensor: name + ".bias", expected: [out], found: bias.shape.dims)
        }
        if let norm, norm.gamma.count != out || (norm.beta.map { $0.count != out } ?? false) {
            throw EncoderError.head(path: source, reason: "the LayerNorm after \"\(name)\" does not have \(out) entries")
        }
        self.weight = try weight.converted(to: .f32)
        self.bias = try bias?.converted(to: .f32)
        self.activation = activation
        self.norm = norm
    }

    /// act(W x + b) (then LayerNorm). `x.count == inputs` is the caller's contract: the loaders
    /// check every layer's width against what feeds it.
    public func apply(_ x: [Float]) -> [Float] {
        let k = inputs, n = outputs
        precondition(x.count == k, "a vector of \(x.count) for a layer of \(k) inputs")
        let w = weight.rawBytes.bindMemory(to: Float.self)
        let b = bias?.rawBytes.bindMemory(to: Float.self)
        var y = [Float](repeating: 0, count: n)
        x.withUnsafeBufferPointer { xb in
            for o in 0..<n {
                y[o] = Kernels.dot(w.nonEmptyBase + o * k, xb.nonEmptyBase, count: k) + (b?[o] ?? 0)
            }
        }
        switch activation {
        case .identity: break
        case .tanh: for i in y.indices { y[i] = Foundation.tanh(y[i]) }
        case .relu: for i in y.indices { y[i] = Swift.max(0, y[i]) }
        case .sigmoid: for i in y.indices { y[i] = 1 / (1 + Foundation.exp(-y[i])) }
        case .gelu: for i in y.indices { y[i] = 0.5 * y[i] * (1 + Foundation.erf(y[i] / Float(2).squareRoot())) }
        }
        if let norm {
            let mean = y.reduce(0, +) / Float(n)
            let variance = y.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(n)
            let inv = 1 / (variance + norm.eps).squareRoot()
            for i in y.indices { y[i] = (y[i] - mean) * inv * norm.gamma[i] + (norm.beta?[i] ?? 0) }
        }
        return y
    }
}

extension DenseLayer {
    /// A sentence-transformers `Dense` module folder: `config.json` (`in_features`,
    /// `out_features`, `bias`, `activation_function`) and its weights (`linear.weight`,
    /// `linear.bias`) in model.safetensors (or whatever `WeightSource` reads).
    public static func sentenceTransformers(directory: String) throws -> DenseLayer {
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw EncoderError.missingFile(path: configPath, hint: "a sentence-transformers Dense module needs its config.json")
        }
        let config: JSONValue
        do { config = try data.withUnsafeBytes { try JSONValue.parse($0, maxDepth: 8) } } catch {
            throw ConfigError.invalid(path: configPath, reason: "not valid JSON (\(error))")
        }
        func int(_ key: String) throws -> Int {
            guard case .integer(let v)? = config[key], v > 0, v <= 1 << 16 else {
                throw ConfigError.invalid(path: configPath, reason: "field \"\(key)\" must be an integer in 1…65536")
            }
            return v
        }
        let inputs = try int("in_features"), outputs = try int("out_features")
        var activation = Activation.tanh   // sentence-transformers' default
        switch config["activation_function"] {
        case nil, .null?: break
        case .string(let name)?:
            guard let a = Activation(name: name) else {
                throw ConfigError.invalid(path: configPath, reason: "field \"activation_function\": \(name) is not supported (Identity, Tanh, ReLU, GELU, Sigmoid)")
            }
            activation = a
        default: throw ConfigError.invalid(path: configPath, reason: "field \"activation_function\" must be a string")
        }
        var hasBias = true
        switch config["bias"] {
        case nil, .null?: break
        case .bool(let b)?: hasBias = b
        default: throw ConfigError.invalid(path: configPath, reason: "field \"bias\" must be a boolean")
        }
        let weights = try WeightSource(path: directory)
        guard weights.info("linear.weight") != nil else { throw EncoderError.missingTensor(model: directory, tensor: "linear.weight") }
        let w = try weights.tensor("linear.weight")
        guard w.shape.dims == [outputs, inputs] else {
            throw EncoderError.shapeMismatch(source: directory, tensor: "linear.weight", expected: [outputs, inputs], found: w.shape.dims)
        }
        var b: Tensor? = nil
        if hasBias {
            guard weights.info("linear.bias") != nil else { throw EncoderError.missingTensor(model: directory, tensor: "linear.bias") }
            b = try weights.tensor("linear.bias")
        }
        return try DenseLayer(weight: w, bias: b, activation: activation, source: directory, name: "linear")
    }
}
