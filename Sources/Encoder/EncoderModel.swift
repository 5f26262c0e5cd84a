import Foundation
import Formats
import Synchronization
import Tensors

/// A BERT-family encoder whose weights are views of a memory-mapped checkpoint. The base file
/// is never rewritten: adapters patch copies of only the tensors they touch (`AdapterSet`).
public final class EncoderModel: Sendable {
    public let directory: String
    public let config: HFConfig
    public let architecture: Architecture
    /// Canonical tensor name → F32 tensor (mapped for F32 checkpoints, converted otherwise).
    public let weights: [String: Tensor]
    public let eps: Float
    /// Tensor-name prefixes per layer: linear paths by `Architecture.Linear.rawValue`, then
    /// the attention and output LayerNorms (built once; the forward pass looks them up).
    let layerPaths: [(linear: [String], attentionNorm: String, outputNorm: String)]
    private let source: WeightSource
    /// Base linear weights packed for the forward pass, on first use.
    private let packed = Mutex<[String: PackedWeights]>([:])
    private let cachedHash = Mutex<String?>(nil)

    public var hidden: Int { config.hiddenSize }
    public var heads: Int { config.numAttentionHeads }
    public var layers: Int { config.numHiddenLayers }
    /// The longest sequence (special tokens included) the position table holds: RoBERTa-style
    /// models start positions after the padding index, so they hold `positionOffset` fewer.
    public var maxTokens: Int { config.maxPositionEmbeddings - architecture.positionOffset }

    /// Loads `config.json` and the weights in `directory`, strictly.
    public init(directory: String) throws {
        self.directory = directory
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw EncoderError.missingFile(path: configPath, hint: "a model directory needs config.json (Hugging Face format)")
        }
        config = try HFConfig.load(path: configPath)
        guard let arch = Architecture.named(modelType: config.modelType, architectures: config.architectures) else {
            throw EncoderError.unknownArchitecture(path: configPath, found: config.modelType ?? config.architectures?.first ?? "none")
        }
        architecture = arch
        guard config.maxPositionEmbeddings - arch.positionOffset >= 3 else {
            throw EncoderError.invalidConfig(path: configPath, reason: "max_position_embeddings \(config.maxPositionEmbeddings) leaves no room for a sentence (\(arch.name) needs at least \(arch.positionOffset + 3))")
        }
        guard config.numAttentionHeads > 0, config.hiddenSize % config.numAttentionHeads == 0 else {
            throw EncoderError.invalidConfig(path: configPath, reason: "hidden_size \(config.hiddenSize) is not a multiple of num_attention_heads \(config.numAttentionHeads)")
        }
        eps = Float(config.layerNormEps ?? 1e-12)
        source = try WeightSource(path: directory)
        weights = try Self.bind(source, config: config, arch: arch, name: directory)
        layerPaths = (0..<config.numHiddenLayers).map { l in
            let prefix = arch.layerPrefix.replacingOccurrences(of: "{i}", with: String(l))
            return (Architecture.Linear.allCases.map { arch.path($0, layer: l) }, prefix + arch.attentionNorm, prefix + arch.outputNorm)
        }
    }

    /// The base weight `name` (a linear layer's n×k) packed for `PackedWeights.linear`; packed
    /// once, on first use, and kept.
    func packedBase(_ name: String) -> PackedWeights {
        packed.withLock { cache in
            if let p = cache[name] { return p }
            let dims = weights[name]?.shape.dims ?? []
            let p = PackedWeights(weight(name), n: dims[0], k: dims[1])  // `weight` holds the invariant: a bound 2-D linear weight
            cache[name] = p
            return p
        }
    }

    /// The content hash of the base's checkpoint (docs/FORMAT.md), computed once on demand:
    /// deltas record it and are refused on another base.
    public func contentHash() throws -> String {
        try cachedHash.withLock { cached in
            if let h = cached { return h }
            let h = try AlloyFile.contentHash(of: source)
            cached = h
            return h
        }
    }

    /// The expected shape of every weight, by canonical name.
    static func expectedShapes(_ c: HFConfig, _ a: Architecture) -> [String: [Int]] {
        let h = c.hiddenSize, f = c.intermediateSize
        var s: [String: [Int]] = [
            a.wordEmbeddings + ".weight": [c.vocabSize, h],
            a.positionEmbeddings + ".weight": [c.maxPositionEmbeddings, h],
            a.embeddingNorm + ".weight": [h], a.embeddingNorm + ".bias": [h],
        ]
        if let t = a.tokenTypeEmbeddings { s[t + ".weight"] = [c.typeVocabSize ?? 2, h] }
        for i in 0..<c.numHiddenLayers {
            for l in Architecture.Linear.allCases {
                let (out, inp) = l == .intermediate ? (f, h) : l == .output ? (h, f) : (h, h)
                s[a.path(l, layer: i) + ".weight"] = [out, inp]
                s[a.path(l, layer: i) + ".bias"] = [out]
            }
            let p = a.layerPrefix.replacingOccurrences(of: "{i}", with: String(i))
            for n in [a.attentionNorm, a.outputNorm] { s[p + n + ".weight"] = [h]; s[p + n + ".bias"] = [h] }
        }
        return s
    }

    static func bind(_ source: WeightSource, config: HFConfig, arch: Architecture, name: String) throws -> [String: Tensor] {
        let expected = expectedShapes(config, arch)
        var optional: [String: [Int]] = [:]
        if let p = arch.pooler { optional[p + ".weight"] = [config.hiddenSize, config.hiddenSize]; optional[p + ".bias"] = [config.hiddenSize] }
        var out: [String: Tensor] = [:]
        for n in source.names {
            let c = arch.canonical(n)
            if arch.ignorable.contains(c) { continue }
            guard let shape = expected[c] ?? optional[c] else { throw EncoderError.unexpectedTensor(model: name, tensor: n) }
            let t = try source.tensor(n)
            guard t.shape.dims == shape else { throw EncoderError.shapeMismatch(source: name, tensor: n, expected: shape, found: t.shape.dims) }
            out[c] = t.dtype == .f32 ? t : try t.converted(to: .f32)
        }
        for n in expected.keys.sorted() where out[n] == nil { throw EncoderError.missingTensor(model: name, tensor: n) }
        return out
    }

    /// A bound weight by canonical name; callers pass names of `expectedShapes` (built from
    /// the architecture table), all present after `bind` checked them: an invariant, not input.
    func weight(_ name: String) -> UnsafePointer<Float> {
        weights[name]!.rawBytes.nonEmptyBase.assumingMemoryBound(to: Float.self)
    }
}
