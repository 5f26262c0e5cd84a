import CKernels

/// A linear layer's weight quantised to int8 per output channel and packed once, for
/// `--precision int8`: dynamic quantisation (Jacob et al. 2018), weights symmetric per channel,
/// activations per row at run time, int32 sums, AVX-512 VNNI where the CPU has it
/// (CKernels `alloy_linear_i8_isa`; portable integer code elsewhere).
///
/// Activations are asymmetric: each row's own range [min, max] (widened to hold 0) in 255 steps
/// with a zero point, as ONNX's DynamicQuantizeLinear. Symmetric ±max|x| rows wasted half their
/// levels on the encoder's skewed rows — GELU outputs (≥ −0.17) and LayerNorm outputs whose few
/// outlier channels (large γ, β; Kovaleva et al. 2021, "BERT Busters") sit on one side — and cost
/// all-mpnet-base-v2 a sentence at cosine 0.979 to f32; asymmetric rows keep every one ≥ 0.995.
/// The zero point costs one multiply per output: z·Σ_k w_q, with Σ_k w_q stored at packing.
///
/// Outliers: each row's entry of largest magnitude is split out before the row is quantised (it
/// would set the row's range: a LayerNorm output's outlier channels leave the other entries a
/// few levels) and multiplied by the quantised weights in float afterwards — LLM.int8's
/// decomposition (Dettmers et al. 2022), per row so that a sequence's result does not depend on
/// its batch. Measured on MiniLM (200 movie reviews, a PyTorch emulation of this arithmetic):
/// the pooled embedding's mean 1 − cos to f32 goes 0.00135 → 0.00062, of which the weights'
/// rounding alone is 0.00048; splitting two entries per row gave 0.00058 at twice the cost.
///
/// Stored state (all written in `init`): `values` (⌈n/16⌉·16 × ⌈k/4⌉·4 int8, VNNI layout),
/// `scale` (⌈n/16⌉·16 floats, per channel), `colsum` (⌈n/16⌉·16 int32, Σ_k w_q per channel).
///
/// `@unchecked Sendable`: the packed copy is written once in `init` and only read afterwards.
public final class Int8PackedWeights: @unchecked Sendable {
    public let n: Int, k: Int
    let values: UnsafePointer<Int8>
    let scale: UnsafePointer<Float>
    let colsum: UnsafePointer<Int32>
    /// The mapping the buffers point into, or nil when they are owned.
    private let mapping: AnyObject?

    /// Quantises and packs `w` (n×k row-major, PyTorch's out × in).
    public convenience init(_ w: UnsafePointer<Float>, n: Int, k: Int) {
        let parts = Self.partSizes(n: n, k: k).map { UnsafeMutableRawPointer.allocate(byteCount: $0, alignment: 64) }
        Self.pack(w, n: n, k: k, into: parts)
        self.init(n: n, k: k, parts: parts.map { UnsafeRawPointer($0) }, mapping: nil)
    }

    /// A view of `parts` (laid out as `partSizes` says), kept alive by `mapping`; owned when nil.
    init(n: Int, k: Int, parts: [UnsafeRawPointer], mapping: AnyObject?) {
        self.n = n; self.k = k; self.mapping = mapping
        values = parts[0].assumingMemoryBound(to: Int8.self)
        scale = parts[1].assumingMemoryBound(to: Float.self)
        colsum = parts[2].assumingMemoryBound(to: Int32.self)
    }

    deinit {
        guard mapping == nil else { return }
        for p in [UnsafeRawPointer(values), UnsafeRawPointer(scale), UnsafeRawPointer(colsum)] { UnsafeMutableRawPointer(mutating: p).deallocate() }
    }

    /// Bytes of each buffer a packed n×k weight holds: values, per-channel scales, per-channel
    /// sums of the quantised values.
    static func partSizes(n: Int, k: Int) -> [Int] {
        let channels = alloy_packed_i8_channels(Int32(n))
        return [alloy_packed_i8_size(Int32(n), Int32(k)), channels * MemoryLayout<Float>.stride, channels * MemoryLayout<Int32>.stride]
    }

    /// Quantises and packs `w` into `parts` (sized by `partSizes`) on the calling thread.
    static func pack(_ w: UnsafePointer<Float>, n: Int, k: Int, into parts: [UnsafeMutableRawPointer]) {
        alloy_pack_weights_i8(w, Int32(n), Int32(k), parts[0].assumingMemoryBound(to: Int8.self),
                              parts[1].assumingMemoryBound(to: Float.self), parts[2].assumingMemoryBound(to: Int32.self))
    }

    /// Whether this CPU runs the VNNI kernel (else the portable integer path, much slower).
    public static var accelerated: Bool { alloy_kernels_have_vnni() != 0 }

    /// y[0..<m] = x[0..<m] Wᵀ + bias (y += … when `accumulate`) on the calling thread: x's rows
    /// are quantised (per row) into scratch, then multiplied in integers.
    public func linear(x: UnsafePointer<Float>, ldx: Int, bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>,
                       ldy: Int, m: Int, accumulate: Bool = false, columns: Range<Int>? = nil, isa: Kernels.ISA? = nil) {
        guard m > 0 else { return }
        let c = PackedWeights.strips(columns, n: n)
        let rowBytes = alloy_quantized_row_bytes(Int32(k))
        let xq = UnsafeMutablePointer<UInt8>.allocate(capacity: m * rowBytes)
        let xs = UnsafeMutablePointer<Float>.allocate(capacity: m)
        let xz = UnsafeMutablePointer<Int32>.allocate(capacity: m)
        let oi = UnsafeMutablePointer<Int32>.allocate(capacity: m)
        let ov = UnsafeMutablePointer<Float>.allocate(capacity: m)
        defer { xq.deallocate(); xs.deallocate(); xz.deallocate(); oi.deallocate(); ov.deallocate() }
        let path = (isa ?? Kernels.isa).rawValue
        alloy_quantize_rows_u8(x, Int32(ldx), Int32(m), Int32(k), xq, xs, xz, oi, ov, path)
        alloy_linear_i8_isa(xq, xs, xz, oi, ov, values + c.lowerBound * rowBytes, scale + c.lowerBound, colsum + c.lowerBound,
                            bias.map { $0 + c.lowerBound }, y + c.lowerBound, Int32(ldy), Int32(m), Int32(c.count), Int32(k), accumulate ? 1 : 0, path)
    }
}
