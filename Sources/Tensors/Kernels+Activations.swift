import CKernels

/// Activation, normalisation and attention kernels for the encoder: GELU, LayerNorm and
/// attention in CKernels (portable, AVX2 and AVX-512 paths), `exp` and softmax over
/// `SIMD8<Float>` here.
///
/// `exp` is written for baseline x86-64 (SSE2): no rounding instructions, so it rounds with the
/// 1.5·2²³ magic-number trick instead of `rounded()` (which would become libm calls per lane).
extension Kernels {
    @inline(__always) static func bits(_ x: SIMD8<Float>) -> SIMD8<UInt32> { unsafeBitCast(x, to: SIMD8<UInt32>.self) }
    @inline(__always) static func float(_ b: SIMD8<UInt32>) -> SIMD8<Float> { unsafeBitCast(b, to: SIMD8<Float>.self) }

    /// eˣ per lane (Cephes `expf` polynomial, ≈ 2 ulp), inputs clamped to [−87.3, 88.7].
    @inline(__always)
    public static func exp(_ x0: SIMD8<Float>) -> SIMD8<Float> {
        var x = x0
        x.replace(with: -87.3, where: x .< -87.3)
        x.replace(with: 88.7, where: x .> 88.7)
        let magic = SIMD8<Float>(repeating: 12582912)  // 1.5 · 2^23
        let t = x * 1.44269504088896341 + magic
        let n = t - magic                               // round(x · log2 e)
        var r = x - n * 0.693359375
        r = r - n * -2.12194440e-4
        var y = SIMD8<Float>(repeating: 1.9875691500e-4)
        y = y * r + 1.3981999507e-3
        y = y * r + 8.3334519073e-3
        y = y * r + 4.1665795894e-2
        y = y * r + 1.6666665459e-1
        y = y * r + 5.0000001201e-1
        y = y * r * r + r + 1
        let e = (bits(t) &- bits(magic)) &+ 127
        return y * float(e &<< 23)
    }

    /// In place GELU, the exact (erf) form used by BERT: x · ½(1 + erf(x/√2)), on the calling
    /// thread (the encoder applies it per core, on rows its GEMM just wrote). erf is XLA/Eigen's
    /// rational form (CKernels `alloy_gelu`), on the path `Kernels.isa` (or `isa`, lowered to
    /// what the CPU supports).
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count n: Int, isa: ISA? = nil) {
        guard n > 0 else { return }
        alloy_gelu_isa(x, n, (isa ?? Kernels.isa).rawValue)
    }

    /// Scaled dot-product attention of one (sequence, head) on the calling thread:
    /// ctxᵢ = Σⱼ softmaxⱼ(scale · qᵢ·kⱼ) vⱼ (Vaswani et al. 2017, https://arxiv.org/abs/1706.03762).
    /// Pointers address the head's first column of the sequence's first row; rows are `stride`
    /// floats apart. On the path `Kernels.isa` (or `isa`, lowered to what the CPU supports).
    ///
    /// `bias`, when given, is added to the scaled scores before the softmax: score (i, j) gets
    /// `bias[i · biasRowStep + j]` — a row-major L×L matrix with `biasRowStep` = L, or a bias of
    /// j − i only (MPNet's relative-position bias, Song et al. 2020, https://arxiv.org/abs/2004.09297;
    /// a sliding window as −∞ outside it) as the middle of 2L − 1 values with `biasRowStep` = −1.
    public static func attentionHead(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                     context: UnsafeMutablePointer<Float>, length: Int, headDim: Int, stride: Int, scale: Float,
                                     bias: UnsafePointer<Float>? = nil, biasRowStep: Int = 0, isa: ISA? = nil) {
        guard length > 0 else { return }
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: alloy_attention_scratch(Int32(length), Int32(headDim)))
        defer { scratch.deallocate() }
        alloy_attention_head_bias_isa(q, k, v, context, Int32(length), Int32(headDim), Int32(stride), scale, bias, biasRowStep,
                                      scratch, (isa ?? Kernels.isa).rawValue)
    }

    /// Whether the kernels run an AVX2+FMA (or AVX-512) path.
    public static var attentionUsesAVX2: Bool { Kernels.isa >= .avx2 }

    /// In place LayerNorm of `rows` rows of width `w`: (x − μ)/√(σ² + ε) · γ + β, after adding
    /// `residual` (same layout) when given; on the calling thread (CKernels `alloy_layer_norm`),
    /// on the path `Kernels.isa` (or `isa`, lowered to what the CPU supports).
    public static func layerNorm(_ x: UnsafeMutablePointer<Float>, rows: Int, width w: Int, residual: UnsafePointer<Float>? = nil,
                                 gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float, isa: ISA? = nil) {
        guard rows > 0, w > 0 else { return }
        alloy_layer_norm_isa(x, Int32(rows), Int32(w), residual, gamma, beta, eps, (isa ?? Kernels.isa).rawValue)
    }

    /// In place softmax of one row of `n` values (single thread).
    public static func softmaxRow(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        var m = -Float.infinity
        for i in 0..<n { m = max(m, x[i]) }
        let m8 = SIMD8<Float>(repeating: m)
        var s8 = SIMD8<Float>(repeating: 0)
        var i = 0
        while i + 8 <= n {
            let e = exp(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) - m8)
            UnsafeMutableRawPointer(x + i).storeBytes(of: e, as: SIMD8<Float>.self)
            s8 += e
            i += 8
        }
        var sum = s8.sum()
        while i < n {
            var lanes = SIMD8<Float>(repeating: -Float.infinity)
            lanes[0] = x[i] - m
            x[i] = exp(lanes)[0]
            sum += x[i]
            i += 1
        }
        let inv = 1 / sum
        for j in 0..<n { x[j] *= inv }
    }
}
