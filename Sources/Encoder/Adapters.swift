import Foundation
import Synchronization
import Tensors

/// One low-rank update of a linear layer (Hu et al. 2022, https://arxiv.org/abs/2106.09685):
/// W' = W + scale · B·A with A: r×in, B: out×r, applied unmerged as y += scale·(x Aᵀ) Bᵀ.
public struct LoRAWeights: Sendable {
    public let a: Tensor
    public let b: Tensor
    public let scale: Float
    public var rank: Int { a.shape.dims[0] }
    /// A and B packed for the encoder's linear kernel (x Aᵀ, then t Bᵀ), once per adapter.
    let packedA: PackedWeights, packedB: PackedWeights

    /// API contract: the PEFT loader (`LoRAAdapter(peft:for:)`) converts both factors to F32
    /// and checks their shapes against the base before building one; input cannot reach this.
    public init(a: Tensor, b: Tensor, scale: Float) {
        precondition(a.dtype == .f32 && b.dtype == .f32 && a.shape.dims[0] == b.shape.dims[1])
        self.a = a; self.b = b; self.scale = scale
        packedA = PackedWeights(a.rawBytes.nonEmptyBase.assumingMemoryBound(to: Float.self), n: a.shape.dims[0], k: a.shape.dims[1])
        packedB = PackedWeights(b.rawBytes.nonEmptyBase.assumingMemoryBound(to: Float.self), n: b.shape.dims[0], k: b.shape.dims[1])
    }

    /// Adds the update as a dense matrix, w += scale·B·A, to the out×in row-major `w` (merging
    /// the adapter into a copy of the weight).
    public func add(into w: UnsafeMutablePointer<Float>) {
        LowRank.add(into: w, b: b.rawBytes.bindMemory(to: Float.self).nonEmptyBase, a: a.rawBytes.bindMemory(to: Float.self).nonEmptyBase,
                    rows: b.shape.dims[0], cols: a.shape.dims[1], rank: rank, scale: scale)
    }
}

/// A LoRA adapter: low-rank updates by canonical linear path (e.g.
/// `encoder.layer.0.attention.self.query`), plus an optional classification head.
public final class LoRAAdapter: Sendable {
    public let name: String
    public let layers: [String: LoRAWeights]
    public let head: ClassificationHead?

    public init(name: String, layers: [String: LoRAWeights], head: ClassificationHead?) {
        self.name = name
        self.layers = layers
        self.head = head
    }
}

/// The adapters active for a forward pass. `patched` replaces base weights (dense task vectors
/// applied with λ, sparse deltas scattered into copies of only the tensors they touch); `loras`
/// stay unmerged, each with its own scale. Swapping an `AdapterSet` never touches the base.
public struct AdapterSet: Sendable {
    public var patched: [String: Tensor] = [:] { didSet { packed = PackedCache() } }
    public var loras: [(adapter: LoRAAdapter, scale: Float)] = []
    /// `patched` weights packed for the linear kernel on first use; a new, empty cache whenever
    /// `patched` changes (copies of a set share it until then).
    var packed = PackedCache()
    public init() {}
}

/// Packed forms of an `AdapterSet`'s patched weights, filled by forward passes (any thread).
final class PackedCache: Sendable {
    private let entries = Mutex<[String: PackedLinear]>([:])

    /// `w` is a patched linear weight (F32, out × in; `AdapterSet` checked its shape), packed at
    /// the model's `precision` (one model per set: the first packing is kept).
    func weights(_ name: String, _ w: Tensor, precision: Precision) -> PackedLinear {
        entries.withLock { cache in
            if let p = cache[name] { return p }
            let p = PackedLinear(w.rawBytes.bindMemory(to: Float.self).nonEmptyBase, n: w.shape.dims[0], k: w.shape.dims[1], precision: precision)
            cache[name] = p
            return p
        }
    }
}
