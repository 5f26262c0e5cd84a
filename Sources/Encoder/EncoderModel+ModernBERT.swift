import Foundation
import Tensors

/// ModernBERT's forward pass (transformers' `modeling_modernbert.py`; Warner et al. 2024,
/// https://arxiv.org/abs/2412.13663) on the packed rows, with the same kernels and LoRA
/// handling as the post-norm families: token embeddings + norm; per layer
/// x += Wo(attention(RoPE(Wqkv(attn_norm(x))))) — `attn_norm` the identity in layer 0 — with
/// global attention every `global_attn_every_n_layers` layers and a window of
/// ±local_attention/2 tokens otherwise, then x += Wo(gelu(a) · g) for [a, g] = Wi(mlp_norm(x));
/// a final norm.
extension EncoderModel {
    func preNormLayers(_ seqs: [[Int32]], offsets: [Int], adapters: AdapterSet, groups: Groups) -> [Float] {
        let T = offsets.last ?? 0, H = hidden, F = config.intermediateSize, a = architecture
        var x = [Float](repeating: 0, count: T * H)
        embed(seqs, offsets: offsets, into: &x, adapters: adapters, groups: groups)
        let lengths = (0..<(offsets.count - 1)).map { offsets[$0 + 1] - offsets[$0] }
        let window = slidingWindow(lengths: lengths)
        let maxL = lengths.max() ?? 0
        let rope = (global: RotaryTable(theta: config.ropeTheta(global: true), headDim: H / heads, positions: maxL),
                    local: RotaryTable(theta: config.ropeTheta(global: false), headDim: H / heads, positions: maxL))
        var normed = x, qkv = [Float](repeating: 0, count: T * 3 * H)
        var q = x, k = x, v = x, ctx = x, tmp = x
        var wi = [Float](repeating: 0, count: T * 2 * F), gated = [Float](repeating: 0, count: T * F)
        for l in 0..<layers {
            let global = config.isGlobalAttentionLayer(l)
            let prefix = a.layerPrefix.replacingOccurrences(of: "{i}", with: String(l))
            if l == 0 { normed = x } else { layerNorm(x, into: &normed, norm: prefix + a.attentionNorm, adapters: adapters) }
            linear(.query, layer: l, normed, rows: T, into: &qkv, adapters, groups)
            splitRotating(qkv, offsets: offsets, rope: global ? rope.global : rope.local, q: &q, k: &k, v: &v)
            attention(q, k, v, offsets: offsets, bias: global ? nil : window, into: &ctx)
            x.withUnsafeBufferPointer { residual in
                linear(.attentionOutput, layer: l, ctx, rows: T, into: &tmp, adapters, groups, then: .residual(residual.nonEmptyBase))
            }
            swap(&x, &tmp)
            layerNorm(x, into: &normed, norm: prefix + a.outputNorm, adapters: adapters)
            linear(.intermediate, layer: l, normed, rows: T, into: &wi, adapters, groups)
            geglu(wi, rows: T, width: F, into: &gated)
            x.withUnsafeBufferPointer { residual in
                linear(.output, layer: l, gated, rows: T, into: &tmp, adapters, groups, then: .residual(residual.nonEmptyBase))
            }
            swap(&x, &tmp)
        }
        if let fn = a.finalNorm {
            tmp = x
            layerNorm(tmp, into: &x, norm: fn, adapters: adapters)
        }
        return x
    }

    /// y = LayerNorm(x) with the named norm (β zero when it has none), rows split over the cores.
    func layerNorm(_ x: [Float], into y: inout [Float], norm name: String, adapters: AdapterSet) {
        let H = hidden, T = x.count / max(1, H)
        let (gamma, beta) = normParameters(name, adapters)
        y.withUnsafeMutableBufferPointer { yb in
            x.withUnsafeBufferPointer { xb in yb.nonEmptyBase.update(from: xb.nonEmptyBase, count: T * H) }
            let box = UnsafeSendableBox((yb.nonEmptyBase, gamma, beta))
            Parallel.forChunks(count: T, minChunk: 64) { r in
                let (yp, gamma, beta) = box.value
                Kernels.layerNorm(yp + r.lowerBound * H, rows: r.count, width: H, gamma: gamma, beta: beta, eps: eps)
            }
        }
    }

    /// GeGLU: out[t, c] = gelu(wi[t, c]) · wi[t, F + c] (`ModernBertMLP`: `input, gate = Wi(x).chunk(2)`).
    func geglu(_ wi: [Float], rows T: Int, width F: Int, into out: inout [Float]) {
        out.withUnsafeMutableBufferPointer { ob in
            wi.withUnsafeBufferPointer { wb in
                let box = UnsafeSendableBox((ob.nonEmptyBase, wb.nonEmptyBase))
                Parallel.forChunks(count: T, minChunk: 16) { r in
                    let (op, wp) = box.value
                    for t in r {
                        let o = op + t * F, w = wp + t * 2 * F
                        o.update(from: w, count: F)
                        Kernels.gelu(o, count: F)
                        for c in 0..<F { o[c] *= w[F + c] }
                    }
                }
            }
        }
    }

    /// Splits the fused QKV rows ([q | k | v], heads contiguous in each) into q, k, v and rotates
    /// q and k by their position in the sequence (RoPE, Su et al. 2021, https://arxiv.org/abs/2104.09864,
    /// in transformers' rotate-half layout: dimension c pairs with c + d/2).
    func splitRotating(_ qkv: [Float], offsets: [Int], rope: RotaryTable, q: inout [Float], k: inout [Float], v: inout [Float]) {
        let H = hidden, nh = heads, d = H / nh, half = d / 2
        q.withUnsafeMutableBufferPointer { qb in k.withUnsafeMutableBufferPointer { kb in v.withUnsafeMutableBufferPointer { vb in
            qkv.withUnsafeBufferPointer { src in
                let box = UnsafeSendableBox((qb.nonEmptyBase, kb.nonEmptyBase, vb.nonEmptyBase, src.nonEmptyBase))
                Parallel.forEach(count: offsets.count - 1) { s in
                    let (qp, kp, vp, sp) = box.value
                    for t in offsets[s]..<offsets[s + 1] {
                        let pos = t - offsets[s], row = sp + t * 3 * H
                        let at = pos * half
                        (vp + t * H).update(from: row + 2 * H, count: H)
                        for part in 0..<2 {
                            let from = row + part * H, dst = (part == 0 ? qp : kp) + t * H
                            for h in 0..<nh {
                                let x = from + h * d, y = dst + h * d
                                for c in 0..<half {
                                    let a = x[c], b = x[c + half], cos = rope.cosines[at + c], sin = rope.sines[at + c]
                                    y[c] = a * cos - b * sin
                                    y[c + half] = b * cos + a * sin
                                }
                            }
                        }
                    }
                }
            }
        } } }
    }

    /// ModernBERT's local attention as a bias of j − i: 0 for |j − i| ≤ local_attention/2, −∞
    /// beyond (`sliding_window_bidirectional_overlay` in transformers' masking_utils).
    func slidingWindow(lengths: [Int]) -> ScoreBias {
        let reach = (config.localAttention ?? 128) / 2
        let bias = ScoreBias(lengths: lengths, heads: 1, perHead: false)
        for (s, L) in lengths.enumerated() where L > 0 {
            let v = bias.values(sequence: s, head: 0, length: L)
            for r in (1 - L)..<L where abs(r) > reach { v[r + L - 1] = -.infinity }
        }
        return bias
    }
}

/// cos and sin of RoPE's angles pos · θ^(−2i/d) for i < d/2, per position (transformers'
/// `compute_default_rope_parameters`: float32 inverse frequencies, float32 products).
struct RotaryTable: Sendable {
    let half: Int
    /// cos and sin of position p's angles at p · half + i.
    let cosines: [Float], sines: [Float]

    init(theta: Double, headDim d: Int, positions: Int) {
        half = d / 2
        let inv = (0..<half).map { i in 1 / Float(pow(theta, Double(2 * i) / Double(d))) }
        var c = [Float](repeating: 1, count: max(1, positions * half)), s = [Float](repeating: 0, count: max(1, positions * half))
        for p in 0..<positions {
            for i in 0..<half {
                let angle = Double(Float(p) * inv[i])
                c[p * half + i] = Float(Foundation.cos(angle)); s[p * half + i] = Float(Foundation.sin(angle))
            }
        }
        cosines = c; sines = s
    }
}
