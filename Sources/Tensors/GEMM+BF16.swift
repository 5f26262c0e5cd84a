import CKernels

/// A linear layer's weight rounded to bfloat16 and packed once, for `--precision bf16`:
/// activations rounded per row at run time, products summed in f32 — AVX-512 BF16
/// (`VDPBF16PS`) where the CPU has it (CKernels `alloy_linear_bf16_isa`), the same arithmetic
/// portably elsewhere.
///
/// `@unchecked Sendable`: the packed copy is written once in `init` and only read afterwards.
public final class BF16PackedWeights: @unchecked Sendable {
    public let n: Int, k: Int
    let values: UnsafePointer<UInt16>
    /// The mapping `values` points into, or nil when `values` is owned.
    private let mapping: AnyObject?

    /// Rounds and packs `w` (n×k row-major, PyTorch's out × in).
    public convenience init(_ w: UnsafePointer<Float>, n: Int, k: Int) {
        let values = UnsafeMutablePointer<UInt16>.allocate(capacity: alloy_packed_bf16_size(Int32(n), Int32(k)))
        alloy_pack_weights_bf16(w, Int32(n), Int32(k), values)
        self.init(n: n, k: k, values: values, mapping: nil)
    }

    init(n: Int, k: Int, values: UnsafePointer<UInt16>, mapping: AnyObject?) {
        self.n = n; self.k = k; self.values = values; self.mapping = mapping
    }

    deinit { if mapping == nil { UnsafeMutablePointer(mutating: values).deallocate() } }

    /// Bytes of each buffer a packed n×k weight holds (`PackedLinear.parts` order).
    static func partSizes(n: Int, k: Int) -> [Int] { [alloy_packed_bf16_size(Int32(n), Int32(k)) * MemoryLayout<UInt16>.stride] }

    /// Rounds and packs `w` into `parts` (sized by `partSizes`) on the calling thread.
    static func pack(_ w: UnsafePointer<Float>, n: Int, k: Int, into parts: [UnsafeMutableRawPointer]) {
        alloy_pack_weights_bf16(w, Int32(n), Int32(k), parts[0].assumingMemoryBound(to: UInt16.self))
    }

    /// Whether this CPU runs the AVX-512 BF16 kernel (else the portable path, much slower).
    public static var accelerated: Bool { alloy_kernels_have_bf16() != 0 }

    /// y[0..<m] = x[0..<m] Wᵀ + bias (y += … when `accumulate`) on the calling thread.
    public func linear(x: UnsafePointer<Float>, ldx: Int, bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>,
                       ldy: Int, m: Int, accumulate: Bool = false, columns: Range<Int>? = nil, isa: Kernels.ISA? = nil) {
        guard m > 0 else { return }
        let c = PackedWeights.strips(columns, n: n)
        let row = alloy_bf16_row_values(Int32(k))
        let xb = UnsafeMutablePointer<UInt16>.allocate(capacity: m * row)
        defer { xb.deallocate() }
        alloy_round_rows_bf16(x, Int32(ldx), Int32(m), Int32(k), xb)
        alloy_linear_bf16_isa(xb, values + c.lowerBound * row, bias.map { $0 + c.lowerBound }, y + c.lowerBound, Int32(ldy), Int32(m),
                              Int32(c.count), Int32(k), accumulate ? 1 : 0, (isa ?? Kernels.isa).rawValue)
    }
}
