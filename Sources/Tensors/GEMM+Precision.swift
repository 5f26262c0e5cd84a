/// The arithmetic of the encoder's linear layers (`--precision`): f32 (exact to float
/// rounding), bf16 weights and activations with f32 sums, or int8 dynamic quantisation. Every
/// other part of the forward pass (attention, GELU, LayerNorm, LoRA updates) stays f32.
public enum Precision: String, CaseIterable, Sendable, CustomStringConvertible {
    case f32, bf16, int8
    public var description: String { rawValue }

    /// Whether this CPU has the instructions that make the precision fast (AVX-512 BF16, VNNI);
    /// without them it runs a portable path that computes the same values, slowly.
    public var accelerated: Bool {
        switch self {
        case .f32: return true
        case .bf16: return BF16PackedWeights.accelerated
        case .int8: return Int8PackedWeights.accelerated
        }
    }
}

/// A linear layer's weight packed once for one precision.
public enum PackedLinear: Sendable {
    case f32(PackedWeights)
    case bf16(BF16PackedWeights)
    case int8(Int8PackedWeights)

    /// Packs `w` (n×k row-major, out × in) for `precision`.
    public init(_ w: UnsafePointer<Float>, n: Int, k: Int, precision: Precision) {
        switch precision {
        case .f32: self = .f32(PackedWeights(w, n: n, k: k))
        case .bf16: self = .bf16(BF16PackedWeights(w, n: n, k: k))
        case .int8: self = .int8(Int8PackedWeights(w, n: n, k: k))
        }
    }

    /// The precision the weight is packed for.
    public var precision: Precision {
        switch self { case .f32: return .f32; case .bf16: return .bf16; case .int8: return .int8 }
    }

    /// Bytes of each buffer a weight of n×k packed for `precision` holds, in `parts` order
    /// (one for f32 and bf16; values, scales and channel sums for int8).
    public static func partSizes(_ precision: Precision, n: Int, k: Int) -> [Int] {
        switch precision {
        case .f32: return PackedWeights.partSizes(n: n, k: k)
        case .bf16: return BF16PackedWeights.partSizes(n: n, k: k)
        case .int8: return Int8PackedWeights.partSizes(n: n, k: k)
        }
    }

    /// Packs `w` (n×k row-major) for `precision` into caller-owned `parts` (sized by
    /// `partSizes`, each aligned to 4 bytes), on the calling thread: how a packed-weight cache
    /// file is filled in place.
    public static func pack(_ w: UnsafePointer<Float>, n: Int, k: Int, precision: Precision, into parts: [UnsafeMutableRawPointer]) {
        switch precision {
        case .f32: PackedWeights.pack(w, n: n, k: k, into: parts)
        case .bf16: BF16PackedWeights.pack(w, n: n, k: k, into: parts)
        case .int8: Int8PackedWeights.pack(w, n: n, k: k, into: parts)
        }
    }

    /// A packed weight read in place from `parts` (as `pack` wrote them), which `mapping` keeps
    /// alive; the caller has checked their sizes against `partSizes` and their alignment.
    public init(mapped parts: [UnsafeRawPointer], precision: Precision, n: Int, k: Int, mapping: AnyObject) {
        switch precision {
        case .f32: self = .f32(PackedWeights(n: n, k: k, values: parts[0].assumingMemoryBound(to: Float.self), mapping: mapping))
        case .bf16: self = .bf16(BF16PackedWeights(n: n, k: k, values: parts[0].assumingMemoryBound(to: UInt16.self), mapping: mapping))
        case .int8: self = .int8(Int8PackedWeights(n: n, k: k, parts: parts, mapping: mapping))
        }
    }

    public var n: Int {
        switch self { case .f32(let p): return p.n; case .bf16(let p): return p.n; case .int8(let p): return p.n }
    }
    public var k: Int {
        switch self { case .f32(let p): return p.k; case .bf16(let p): return p.k; case .int8(let p): return p.k }
    }

    /// y[0..<m] = x[0..<m] Wᵀ + bias (y += … when `accumulate`) on the calling thread; only
    /// `columns` of y (whole 16-channel strips) when given, each as in the whole product.
    public func linear(x: UnsafePointer<Float>, ldx: Int, bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>,
                       ldy: Int, m: Int, accumulate: Bool = false, columns: Range<Int>? = nil) {
        switch self {
        case .f32(let p): p.linear(x: x, ldx: ldx, bias: bias, y: y, ldy: ldy, m: m, accumulate: accumulate, columns: columns)
        case .bf16(let p): p.linear(x: x, ldx: ldx, bias: bias, y: y, ldy: ldy, m: m, accumulate: accumulate, columns: columns)
        case .int8(let p): p.linear(x: x, ldx: ldx, bias: bias, y: y, ldy: ldy, m: m, accumulate: accumulate, columns: columns)
        }
    }
}
