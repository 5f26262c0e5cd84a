import COpenBLAS

/// The matrix-multiply front: row-major single-precision GEMM through OpenBLAS.
///
/// C = alpha · op(A) · op(B) + beta · C, with op(X) = X or Xᵀ. A is m×k after op, B is k×n
/// after op, C is m×n; leading dimensions are row strides.
public enum GEMM {
    /// OpenBLAS runs single-threaded: Alloy splits work over the cores itself (`parallel`), so
    /// OpenBLAS's own worker threads never spin against Alloy's parallel loops (measured: ~12%
    /// of an encoder pass went to their `sched_yield` when both pools were active).
    static let singleThreaded: Void = { openblas_set_num_threads(1) }()

    /// `sgemm` with the rows of C (and A) split over the cores; A must not be transposed.
    public static func parallel(
        transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let box = UnsafeSendableBox((a, b, c))
        Parallel.forChunks(count: m, minChunk: 64) { r in
            let (a, b, c) = box.value
            sgemm(transB: transB, m: r.count, n: n, k: k, alpha: alpha, a: a + r.lowerBound * lda, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c + r.lowerBound * ldc, ldc: ldc)
        }
    }

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
