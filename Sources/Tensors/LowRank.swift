/// A low-rank update as a dense matrix — the one place Alloy computes s·B·A (LoRA, Hu et al.
/// 2022, https://arxiv.org/abs/2106.09685: W' = W + s·B·A with B: n×r, A: r×k).
public enum LowRank {
    /// w += scale·B·A, all row-major F32: `w` n×k, `b` n×r, `a` r×k.
    public static func add(into w: UnsafeMutablePointer<Float>, b: UnsafePointer<Float>, a: UnsafePointer<Float>,
                           rows n: Int, cols k: Int, rank r: Int, scale: Float) {
        GEMM.sgemm(m: n, n: k, k: r, alpha: scale, a: b, lda: r, b: a, ldb: k, beta: 1, c: w, ldc: k)
    }

    /// scale·B·A as a new n×k matrix.
    public static func dense(b: UnsafePointer<Float>, a: UnsafePointer<Float>, rows n: Int, cols k: Int, rank r: Int, scale: Float) -> [Float] {
        var d = [Float](repeating: 0, count: n * k)
        d.withUnsafeMutableBufferPointer { if let p = $0.baseAddress { add(into: p, b: b, a: a, rows: n, cols: k, rank: r, scale: scale) } }
        return d
    }
}
