import CKernels
import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// The matrix-multiply front: row-major single-precision GEMM through OpenBLAS.
///
/// C = alpha · op(A) · op(B) + beta · C, with op(X) = X or Xᵀ. A is m×k after op, B is k×n
/// after op, C is m×n; leading dimensions are row strides.
public enum GEMM {
    /// OpenBLAS runs single-threaded: Alloy splits work over the cores itself, so
    /// OpenBLAS's own worker threads never spin against Alloy's parallel loops (measured: ~12%
    /// of an encoder pass went to their `sched_yield` when both pools were active).
    ///
    /// Its pool is also stopped (`blas_thread_shutdown_`, looked up at run time: builds of
    /// OpenBLAS without threads lack it). OpenBLAS starts the pool when the library loads, and
    /// each idle worker spins on `sched_yield` for 2^28 cycles (about 0.1 s) before it sleeps:
    /// without this, the first 0.1 s of every process ran on one core (perf: a merge of three
    /// MiniLM experts spent 15% of its samples in that spin).
    static let singleThreaded: Void = {
        openblas_set_num_threads(1)
        if let shutdown = dlsym(nil, "blas_thread_shutdown_") {
            _ = unsafeBitCast(shutdown, to: (@convention(c) () -> Int32).self)()
        }
    }()

    /// Puts OpenBLAS on the calling thread and stops its worker threads; call it first thing in
    /// a process (the executables do), before any parallel work.
    public static func quietThreads() { _ = singleThreaded }

    public static func sgemm(
        transA: Bool = false, transB: Bool = false,
        m: Int, n: Int, k: Int,
        alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        _ = singleThreaded
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k),
                    alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }
}

/// A linear layer's weight W (n×k, PyTorch's out × in) packed once for `linear`: strips of 16
/// output rows stored k-major (CKernels' `alloy_pack_weights`), one layout for every
/// instruction-set path. The packed values are owned, or a view of a mapped packed-weight cache
/// file (`PackedLinear.init(mapped:)`).
///
/// `@unchecked Sendable`: the packed copy is written once in `init` and only read afterwards.
public final class PackedWeights: @unchecked Sendable {
    public let n: Int, k: Int
    let values: UnsafePointer<Float>
    /// The mapping `values` points into, or nil when `values` is owned.
    private let mapping: AnyObject?

    /// Packs `w` (n×k row-major), the strips split over the cores when each core gets at least
    /// 64 Ki values (a LoRA factor packs on the calling thread: waking a worker costs more).
    public convenience init(_ w: UnsafePointer<Float>, n: Int, k: Int) {
        let values = UnsafeMutablePointer<Float>.allocate(capacity: alloy_packed_size(Int32(n), Int32(k)))
        let strips = (n + 15) / 16
        let box = UnsafeSendableBox((w, values))
        Parallel.forChunks(count: strips, minChunk: max(8, (1 << 16) / max(16 * k, 1))) { r in
            let (w, out) = box.value
            let rows = min(n, r.upperBound * 16) - r.lowerBound * 16
            alloy_pack_weights(w + r.lowerBound * 16 * k, Int32(rows), Int32(k), out + r.lowerBound * 16 * k)
        }
        self.init(n: n, k: k, values: values, mapping: nil)
    }

    init(n: Int, k: Int, values: UnsafePointer<Float>, mapping: AnyObject?) {
        self.n = n; self.k = k; self.values = values; self.mapping = mapping
    }

    deinit { if mapping == nil { UnsafeMutablePointer(mutating: values).deallocate() } }

    /// Bytes of each buffer a packed n×k weight holds (`PackedLinear.parts` order).
    static func partSizes(n: Int, k: Int) -> [Int] { [alloy_packed_size(Int32(n), Int32(k)) * MemoryLayout<Float>.stride] }

    /// Packs `w` into `parts` (sized by `partSizes`) on the calling thread.
    static func pack(_ w: UnsafePointer<Float>, n: Int, k: Int, into parts: [UnsafeMutableRawPointer]) {
        alloy_pack_weights(w, Int32(n), Int32(k), parts[0].assumingMemoryBound(to: Float.self))
    }

    /// y[0..<m] = x[0..<m] Wᵀ + bias (y += … when `accumulate`) on the calling thread (x: m×k,
    /// row stride ldx; y: m×n, row stride ldy), on the path `Kernels.isa` (or `isa`, lowered to
    /// what the CPU supports): a 12×32 register block with AVX-512, 6×16 with AVX2 and portably.
    ///
    /// `columns` (output channels, starting at a multiple of 16: a strip) limits the product to
    /// those columns of y; each is computed exactly as in the whole product.
    public func linear(x: UnsafePointer<Float>, ldx: Int, bias: UnsafePointer<Float>?, y: UnsafeMutablePointer<Float>,
                       ldy: Int, m: Int, accumulate: Bool = false, columns: Range<Int>? = nil, isa: Kernels.ISA? = nil) {
        let c = Self.strips(columns, n: n)
        alloy_linear_packed_isa(x, Int32(ldx), values + c.lowerBound * k, bias.map { $0 + c.lowerBound }, y + c.lowerBound, Int32(ldy),
                                Int32(m), Int32(c.count), Int32(k), accumulate ? 1 : 0, (isa ?? Kernels.isa).rawValue)
    }

    /// `columns`, or all n; a range that does not start on a strip or leaves 0..<n is a caller's
    /// bug (the forward pass derives it from n), not input.
    static func strips(_ columns: Range<Int>?, n: Int) -> Range<Int> {
        guard let columns else { return 0..<n }
        precondition(columns.lowerBound % 16 == 0 && columns.lowerBound >= 0 && columns.upperBound <= n, "columns \(columns) of \(n): not whole strips")
        return columns
    }
}
