import COpenBLAS

/// Thin SVD of a row-major m×n matrix through LAPACK `sgesvd` (OpenBLAS): A = U·diag(S)·Vh with
/// U m×k, Vh k×n, k = min(m, n), singular values descending.
public enum SVD {
    public struct Result {
        public let u: [Float]   // m×k row-major
        public let s: [Float]   // k
        public let vh: [Float]  // k×n row-major
        public let k: Int
    }

    public static func thin(_ a: [Float], rows m: Int, cols n: Int) -> Result? {
        // API contract: callers pass an m×n matrix they built (never sizes read from a file).
        precondition(a.count == m * n)
        let k = min(m, n)
        guard k > 0 else { return Result(u: [], s: [], vh: [], k: 0) }
        // Row-major A is column-major Aᵀ (n×m): Aᵀ = U'·S·V'ᵀ, so A's U is V' and A's Vh is U'ᵀ.
        var x = a, s = [Float](repeating: 0, count: k)
        var uT = [Float](repeating: 0, count: n * k), vtT = [Float](repeating: 0, count: k * m)
        var mm = Int32(n), nn = Int32(m), lda = Int32(n), ldu = Int32(n), ldvt = Int32(k), info: Int32 = 0
        var lwork: Int32 = -1, query: Float = 0
        var job: CChar = CChar(UInt8(ascii: "S"))
        sgesvd_(&job, &job, &mm, &nn, &x, &lda, &s, &uT, &ldu, &vtT, &ldvt, &query, &lwork, &info)
        guard info == 0 else { return nil }
        lwork = Int32(query)
        var work = [Float](repeating: 0, count: Int(lwork))
        sgesvd_(&job, &job, &mm, &nn, &x, &lda, &s, &uT, &ldu, &vtT, &ldvt, &work, &lwork, &info)
        guard info == 0 else { return nil }
        // vtT (k×m column-major) read row-major is U_A (m×k); uT (n×k column-major) read row-major is Vh_A (k×n).
        return Result(u: vtT, s: s, vh: uT, k: k)
    }
}
