import COpenBLAS

/// The matrix-multiply front: row-major single-precision GEMM through OpenBLAS.
///
/// C = alpha · op(A) · op(B) + beta · C, with op(X) = X or Xᵀ. A is m×k after op, B is k×n
/// after op, C is m×n; leading dimensions are row strides.
public enum GEMM {
    /// Sets OpenBLAS's own thread count (1 while Alloy's parallel-for runs many small GEMMs).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

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
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k),
                    alpha, a, blasint(lda), b, blasint(ldb),
                    beta, c, blasint(ldc))
    }
}
