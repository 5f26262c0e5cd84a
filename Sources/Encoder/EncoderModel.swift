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
    /// The tensors of a `*ForSequenceClassification` head found in the checkpoint (canonical
    /// names under `Architecture.headPrefixes`, e.g. `classifier.out_proj.weight`), F32; empty
    /// for a bare encoder. Not used by the forward pass.
    public let headTensors: [String: Tensor]
    public let eps: Float
    /// Zeros (hidden or embedding width, the wider): the β of norms that have no bias (ModernBERT's `norm_bias: false`).
    let zeroRow: Tensor
    /// Tensor-name prefixes per layer: linear paths by `Architecture.Linear.rawValue`, then
    /// the attention and output LayerNorms (built once; the forward pass looks them up).
    let layerPaths: [(linear: [String], attentionNorm: String, outputNorm: String)]
    private let source: WeightSource
    /// The arithmetic of the linear layers (`--precision`); the rest of the pass is f32.
    public let precision: Precision
    /// Where packed base weights are kept between processes (nil: packed in memory each run).
    public let packCache: PackedWeightCache?
    /// Base linear weights packed for the forward pass at `precision`: mapped from `packCache`
    /// on first use, or packed in memory one by one on first use.
    private let packed = Mutex<(layers: [String: PackedLinear], cacheTried: Bool)>(([:], false))
    private let cachedHash = Mutex<String?>(nil)

    public var hidden: Int { config.hiddenSize }
    public var heads: Int { config.numAttentionHeads }
    public var layers: Int { config.numHiddenLayers }
    /// The longest sequence (special tokens included) the position table holds: RoBERTa-style
    /// models start positions after the padding index, so they hold `positionOffset` fewer.
    public var maxTokens: Int { config.maxPositionEmbeddings - architecture.positionOffset }
    /// The width of the embedding tables: ELECTRA's `embedding_size`, else `hidden_size`.
    public var embeddingWidth: Int { architecture.embeddingProjection == nil ? hidden : (config.embeddingSize ?? hidden) }

    /// Loads `config.json` and the weights in `directory`, strictly; linear layers run at
    /// `precision`, their packed weights kept in `packCache` when given.
    public init(directory: String, precision: Precision = .f32, packCache: PackedWeightCache? = nil) throws {
        self.directory = directory
        self.precision = precision
        self.packCache = packCache
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
        try Self.checkFamily(config, arch, path: configPath)
        eps = Float(config.normEpsilon ?? (arch.structure == .preNormGeGLU ? 1e-5 : 1e-12))
        let widest = max(config.hiddenSize, config.embeddingSize ?? 0)
        zeroRow = try Tensor([Float](repeating: 0, count: widest), shape: Shape([widest]))
        source = try WeightSource(path: directory)
        (weights, headTensors) = try Self.bind(source, config: config, arch: arch, name: directory)
        layerPaths = (0..<config.numHiddenLayers).map { l in
            let prefix = arch.layerPrefix.replacingOccurrences(of: "{i}", with: String(l))
            return (Architecture.Linear.allCases.map { arch.path($0, layer: l) }, prefix + arch.attentionNorm, prefix + arch.outputNorm)
        }
    }

    /// The base weight `name` (a linear layer's n×k) packed at `precision`. The first call maps
    /// every base linear from `packCache` (packing them into it on a miss); without a usable
    /// cache each weight is packed in memory on first use. Kept for the model's life.
    func packedBase(_ name: String) -> PackedLinear {
        packed.withLock { state in
            if !state.cacheTried {
                state.cacheTried = true
                if let cache = packCache, let found = cache.packed(baseLinears(), key: {
                    try cache.contentHash(files: source.files.map(\.path), compute: contentHash)
                }, precision: precision) {
                    state.layers = found
                }
            }
            if let p = state.layers[name] { return p }
            let dims = weights[name]?.shape.dims ?? []
            let p = PackedLinear(weight(name), n: dims[0], k: dims[1], precision: precision)  // `weight` holds the invariant: a bound 2-D linear weight
            state.layers[name] = p
            return p
        }
    }

    /// Every base weight the forward pass multiplies by through `packedBase`, in name order.
    func baseLinears() -> [PackedWeightCache.Layer] {
        var names = Set(layerPaths.flatMap(\.linear))
        if let p = architecture.embeddingProjection { names.insert(p) }
        return names.map { $0 + ".weight" }.sorted().compactMap { name in
            guard let t = weights[name], t.shape.dims.count == 2 else { return nil }
            return .init(name: name, n: t.shape.dims[0], k: t.shape.dims[1], values: weight(name))
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

    /// Family-specific config checks (config.json's fields that the forward pass relies on).
    static func checkFamily(_ c: HFConfig, _ a: Architecture, path: String) throws {
        if a.relativeAttentionBias != nil, (c.relativeAttentionNumBuckets ?? 32) < Self.mpnetBuckets {
            // transformers computes buckets with 32 whatever the config says (MPNetEncoder.compute_position_bias).
            throw EncoderError.invalidConfig(path: path, reason: "relative_attention_num_buckets \(c.relativeAttentionNumBuckets ?? 0) is below the 32 buckets MPNet's bias uses")
        }
        if a.structure == .preNormGeGLU {
            let d = c.hiddenSize / max(1, c.numAttentionHeads)
            guard d % 2 == 0 else { throw EncoderError.invalidConfig(path: path, reason: "head width \(d) is odd; RoPE needs pairs") }
            let act = (c.hiddenActivation ?? c.hiddenAct ?? "gelu").lowercased()
            guard act == "gelu" else { throw EncoderError.invalidConfig(path: path, reason: "hidden_activation \"\(act)\" is not supported (gelu only)") }
        }
    }

    /// The expected shape of every weight, by canonical name.
    static func expectedShapes(_ c: HFConfig, _ a: Architecture) -> [String: [Int]] {
        let h = c.hiddenSize, f = c.intermediateSize
        if a.structure == .preNormGeGLU { return expectedPreNormShapes(c, a) }
        let e = a.embeddingProjection == nil ? h : (c.embeddingSize ?? h)
        var s: [String: [Int]] = [
            a.wordEmbeddings + ".weight": [c.vocabSize, e],
            a.embeddingNorm + ".weight": [e], a.embeddingNorm + ".bias": [e],
        ]
        if let p = a.positionEmbeddings { s[p + ".weight"] = [c.maxPositionEmbeddings, e] }
        if let t = a.tokenTypeEmbeddings { s[t + ".weight"] = [c.typeVocabSize ?? 2, e] }
        if let p = a.embeddingProjection, e != h { s[p + ".weight"] = [h, e]; s[p + ".bias"] = [h] }
        if let r = a.relativeAttentionBias { s[r + ".weight"] = [c.relativeAttentionNumBuckets ?? 32, c.numAttentionHeads] }
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

    /// ModernBERT's shapes: fused QKV (3h × h), GeGLU input (2f × h); biases and norm biases
    /// only when `attention_bias` / `mlp_bias` / `norm_bias` say so; no attention norm in layer 0.
    static func expectedPreNormShapes(_ c: HFConfig, _ a: Architecture) -> [String: [Int]] {
        let h = c.hiddenSize, f = c.intermediateSize
        var s: [String: [Int]] = [a.wordEmbeddings + ".weight": [c.vocabSize, h]]
        func norm(_ n: String) { s[n + ".weight"] = [h]; if c.normBias == true { s[n + ".bias"] = [h] } }
        func linear(_ n: String, _ out: Int, _ inp: Int, bias: Bool) { s[n + ".weight"] = [out, inp]; if bias { s[n + ".bias"] = [out] } }
        norm(a.embeddingNorm)
        if let fn = a.finalNorm { norm(fn) }
        for i in 0..<c.numHiddenLayers {
            let p = a.layerPrefix.replacingOccurrences(of: "{i}", with: String(i))
            if i > 0 { norm(p + a.attentionNorm) }
            norm(p + a.outputNorm)
            linear(a.path(.query, layer: i), 3 * h, h, bias: c.attentionBias == true)
            linear(a.path(.attentionOutput, layer: i), h, h, bias: c.attentionBias == true)
            linear(a.path(.intermediate, layer: i), 2 * f, h, bias: c.mlpBias == true)
            linear(a.path(.output, layer: i), h, f, bias: c.mlpBias == true)
        }
        return s
    }

    /// Binds every tensor of `source` by canonical name: encoder weights (checked against the
    /// expected shapes), sequence-classification head tensors (`headPrefixes`, returned apart),
    /// buffers and known pre-training heads (skipped); anything else is refused, naming it.
    static func bind(_ source: WeightSource, config: HFConfig, arch: Architecture, name: String) throws -> (weights: [String: Tensor], head: [String: Tensor]) {
        let expected = expectedShapes(config, arch)
        var optional: [String: [Int]] = [:]
        if let p = arch.pooler { optional[p + ".weight"] = [config.hiddenSize, config.hiddenSize]; optional[p + ".bias"] = [config.hiddenSize] }
        var out: [String: Tensor] = [:], head: [String: Tensor] = [:]
        for n in source.names {
            let c = arch.canonical(n)
            if arch.ignorable.contains(c) { continue }
            let isHead = arch.headPrefixes.contains { c.hasPrefix($0) }
            guard let shape = expected[c] ?? optional[c] else {
                if isHead {
                    let t = try source.tensor(n)
                    head[c] = t.dtype == .f32 ? t : try t.converted(to: .f32)
                    continue
                }
                if arch.leftoverPrefixes.contains(where: { c.hasPrefix($0) }) { continue }
                throw EncoderError.unexpectedTensor(model: name, tensor: n)
            }
            let t = try source.tensor(n)
            guard t.shape.dims == shape else { throw EncoderError.shapeMismatch(source: name, tensor: n, expected: shape, found: t.shape.dims) }
            out[c] = t.dtype == .f32 ? t : try t.converted(to: .f32)
            if isHead { head[c] = out[c] }  // BERT's pooler: an encoder weight and part of the head
        }
        for n in expected.keys.sorted() where out[n] == nil { throw EncoderError.missingTensor(model: name, tensor: n) }
        return (out, head)
    }

    /// A bound weight by canonical name; callers pass names of `expectedShapes` (built from
    /// the architecture table), all present after `bind` checked them: an invariant, not input.
    func weight(_ name: String) -> UnsafePointer<Float> {
        weights[name]!.rawBytes.nonEmptyBase.assumingMemoryBound(to: Float.self)
    }

    /// The number of relative-position buckets MPNet's bias uses: transformers'
    /// `MPNetEncoder.compute_position_bias` passes 32 whatever the config says.
    static let mpnetBuckets = 32
}
