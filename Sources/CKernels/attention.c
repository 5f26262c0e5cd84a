// Attention for short sequences without GEMM calls: per (sequence, head) the keys are
// transposed into a d×L block, scores of two query rows at a time are accumulated by
// broadcast-FMA over that block, softmaxed row by row, and multiplied into V by
// broadcast-FMA over V's rows. One C source over 8-float vectors, compiled for baseline x86-64
// / any target and for AVX2+FMA; the AVX-512 path runs the same algorithm over 16-float vectors
// for head widths that are multiples of 16 (the 8-lane code, compiled for AVX-512, otherwise).
// Chosen at run time (isa.c).
//
// An optional additive score bias (MPNet's relative-position bias, a sliding-window mask) is added
// to each row of scores after scaling: row i's bias is `bias + i·bias_step`, L floats, so one
// pointer serves a row-major L×L matrix (step L) or a bias that depends only on j − i (a vector of
// 2L − 1 values indexed from its middle, step −1) without materialising L×L per head.
#include "isa.h"
#include "v8.h"
#include <math.h>

INLINE v8 vmax(v8 a, v8 b) { return __builtin_elementwise_max(a, b); }

/// eˣ per lane for x ≤ 0 (softmax inputs after subtracting the maximum), Cephes expf
/// polynomial (≈ 2 ulp); x clamped below at −87.3; rounds with the 1.5·2²³ trick so baseline
/// SSE2 needs no rounding instruction.
INLINE v8 vexp_nonpositive(v8 x) {
    x = vmax(x, splat(-87.3f));
    const v8 magic = splat(12582912.0f);
    v8 t = x * splat(1.44269504088896341f) + magic;
    v8 n = t - magic;
    v8 r = x - n * splat(0.693359375f);
    r = r - n * splat(-2.12194440e-4f);
    v8 y = splat(1.9875691500e-4f);
    y = y * r + splat(1.3981999507e-3f);
    y = y * r + splat(8.3334519073e-3f);
    y = y * r + splat(4.1665795894e-2f);
    y = y * r + splat(1.6666665459e-1f);
    y = y * r + splat(5.0000001201e-1f);
    y = y * r * r + r + splat(1.0f);
    i8 e = ((i8)t - (i8)magic + 127) << 23;
    return y * (v8)e;
}

INLINE int round8(int n) { return (n + 7) & ~7; }

/// s[j] += b[j] for j < n (unaligned loads; the lanes past n are left alone: the softmax masks them).
INLINE void add_bias(float *s, const float *b, int n) {
    int j = 0;
    for (; j + 8 <= n; j += 8) store(s + j, load(s + j) + load(b + j));
    for (; j < n; j++) s[j] += b[j];
}

size_t alloy_attention_scratch(int length, int head_dim) {
    size_t lp = (size_t)((length + 15) & ~15);  // rows padded to 16 for the AVX-512 path
    return lp * (size_t)head_dim + 2 * lp;
}

/// Scores of query rows q0, q1 against the transposed keys kt (d × lp), times `scale`.
INLINE void scores2(const float *q0, const float *q1, const float *kt, int lp, int d, float scale,
                    float *s0, float *s1) {
    int j = 0;
    for (; j + 32 <= lp; j += 32) {
        v8 a0 = splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int c = 0; c < d; c++) {
            const float *row = kt + (size_t)c * lp + j;
            v8 k0 = load(row), k1 = load(row + 8), k2 = load(row + 16), k3 = load(row + 24);
            v8 x = splat(q0[c]), y = splat(q1[c]);
            a0 += x * k0; a1 += x * k1; a2 += x * k2; a3 += x * k3;
            b0 += y * k0; b1 += y * k1; b2 += y * k2; b3 += y * k3;
        }
        v8 sc = splat(scale);
        store(s0 + j, a0 * sc); store(s0 + j + 8, a1 * sc); store(s0 + j + 16, a2 * sc); store(s0 + j + 24, a3 * sc);
        store(s1 + j, b0 * sc); store(s1 + j + 8, b1 * sc); store(s1 + j + 16, b2 * sc); store(s1 + j + 24, b3 * sc);
    }
    for (; j < lp; j += 8) {
        v8 a0 = splat(0), a1 = a0, b0 = a0, b1 = a0;
        int c = 0;
        for (; c + 2 <= d; c += 2) {
            v8 k0 = load(kt + (size_t)c * lp + j), k1 = load(kt + (size_t)(c + 1) * lp + j);
            a0 += splat(q0[c]) * k0; a1 += splat(q0[c + 1]) * k1;
            b0 += splat(q1[c]) * k0; b1 += splat(q1[c + 1]) * k1;
        }
        for (; c < d; c++) {
            v8 k0 = load(kt + (size_t)c * lp + j);
            a0 += splat(q0[c]) * k0; b0 += splat(q1[c]) * k0;
        }
        store(s0 + j, (a0 + a1) * splat(scale));
        store(s1 + j, (b0 + b1) * splat(scale));
    }
}

/// In place e^(s − max) over s[0..<n) (s holds a multiple of 8 floats); returns 1/Σ. Lanes
/// past n become 0 and add nothing.
INLINE float softmax_unnormalised(float *s, int n) {
    int lp = round8(n);
    for (int j = n; j < lp; j++) s[j] = -INFINITY;
    v8 m = load(s);
    for (int j = 8; j < lp; j += 8) m = vmax(m, load(s + j));
    float mx = m[0];
    for (int i = 1; i < 8; i++) mx = m[i] > mx ? m[i] : mx;
    v8 sum = splat(0), mm = splat(mx);
    for (int j = 0; j < lp; j += 8) {
        store(s + j, vexp_nonpositive(load(s + j) - mm));
        if (j + 8 > n) for (int t = n; t < lp; t++) s[t] = 0;
        sum += load(s + j);
    }
    float total = 0;
    for (int i = 0; i < 8; i++) total += sum[i];
    return 1.0f / total;
}

/// ctx rows of two queries: Σ_j p_j · v_j, times the softmax normaliser.
INLINE void context2(const float *p0, const float *p1, float n0, float n1, const float *v, int L, int d,
                     int stride, float *c0, float *c1) {
    int col = 0;
    for (; col + 32 <= d; col += 32) {
        v8 a0 = splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int j = 0; j < L; j++) {
            const float *row = v + (size_t)j * stride + col;
            v8 v0 = load(row), v1 = load(row + 8), v2 = load(row + 16), v3 = load(row + 24);
            v8 x = splat(p0[j]), y = splat(p1[j]);
            a0 += x * v0; a1 += x * v1; a2 += x * v2; a3 += x * v3;
            b0 += y * v0; b1 += y * v1; b2 += y * v2; b3 += y * v3;
        }
        v8 s = splat(n0), t = splat(n1);
        store(c0 + col, a0 * s); store(c0 + col + 8, a1 * s); store(c0 + col + 16, a2 * s); store(c0 + col + 24, a3 * s);
        store(c1 + col, b0 * t); store(c1 + col + 8, b1 * t); store(c1 + col + 16, b2 * t); store(c1 + col + 24, b3 * t);
    }
    for (; col + 8 <= d; col += 8) {
        v8 a0 = splat(0), a1 = a0, b0 = a0, b1 = a0;
        int j = 0;
        for (; j + 2 <= L; j += 2) {
            v8 v0 = load(v + (size_t)j * stride + col), v1 = load(v + (size_t)(j + 1) * stride + col);
            a0 += splat(p0[j]) * v0; a1 += splat(p0[j + 1]) * v1;
            b0 += splat(p1[j]) * v0; b1 += splat(p1[j + 1]) * v1;
        }
        if (j < L) {
            v8 v0 = load(v + (size_t)j * stride + col);
            a0 += splat(p0[j]) * v0; b0 += splat(p1[j]) * v0;
        }
        store(c0 + col, (a0 + a1) * splat(n0));
        store(c1 + col, (b0 + b1) * splat(n1));
    }
}

/// kt (d × lp) = the d×L transpose of the keys, in 8×8 register blocks (L's last L mod 8 rows
/// one by one: reading 8 would run past the sequence).
INLINE void transpose_keys(const float *k, int L, int d, int stride, float *kt, int lp) {
    int j = 0;
    for (; j + 8 <= L; j += 8) {
        for (int c = 0; c < d; c += 8) {
            const float *src = k + (size_t)j * stride + c;
            v8 r0 = load(src), r1 = load(src + stride), r2 = load(src + 2 * (size_t)stride), r3 = load(src + 3 * (size_t)stride);
            v8 r4 = load(src + 4 * (size_t)stride), r5 = load(src + 5 * (size_t)stride), r6 = load(src + 6 * (size_t)stride);
            v8 r7 = load(src + 7 * (size_t)stride);
            v8 t0 = __builtin_shufflevector(r0, r1, 0, 8, 1, 9, 4, 12, 5, 13);
            v8 t1 = __builtin_shufflevector(r0, r1, 2, 10, 3, 11, 6, 14, 7, 15);
            v8 t2 = __builtin_shufflevector(r2, r3, 0, 8, 1, 9, 4, 12, 5, 13);
            v8 t3 = __builtin_shufflevector(r2, r3, 2, 10, 3, 11, 6, 14, 7, 15);
            v8 t4 = __builtin_shufflevector(r4, r5, 0, 8, 1, 9, 4, 12, 5, 13);
            v8 t5 = __builtin_shufflevector(r4, r5, 2, 10, 3, 11, 6, 14, 7, 15);
            v8 t6 = __builtin_shufflevector(r6, r7, 0, 8, 1, 9, 4, 12, 5, 13);
            v8 t7 = __builtin_shufflevector(r6, r7, 2, 10, 3, 11, 6, 14, 7, 15);
            v8 u0 = __builtin_shufflevector(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13);
            v8 u1 = __builtin_shufflevector(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
            v8 u2 = __builtin_shufflevector(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13);
            v8 u3 = __builtin_shufflevector(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
            v8 u4 = __builtin_shufflevector(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);
            v8 u5 = __builtin_shufflevector(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
            v8 u6 = __builtin_shufflevector(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);
            v8 u7 = __builtin_shufflevector(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
            float *dst = kt + (size_t)c * lp + j;
            store(dst, __builtin_shufflevector(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11));
            store(dst + lp, __builtin_shufflevector(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11));
            store(dst + 2 * (size_t)lp, __builtin_shufflevector(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11));
            store(dst + 3 * (size_t)lp, __builtin_shufflevector(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11));
            store(dst + 4 * (size_t)lp, __builtin_shufflevector(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15));
            store(dst + 5 * (size_t)lp, __builtin_shufflevector(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15));
            store(dst + 6 * (size_t)lp, __builtin_shufflevector(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15));
            store(dst + 7 * (size_t)lp, __builtin_shufflevector(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15));
        }
    }
    for (; j < L; j++) {
        const float *kj = k + (size_t)j * stride;
        for (int c = 0; c < d; c++) kt[(size_t)c * lp + j] = kj[c];
    }
}

/// Any head width: plain loops (widths that are not multiples of 8).
static void attention_scalar(const float *q, const float *k, const float *v, float *ctx, int L, int d,
                             int stride, float scale, const float *bias, ptrdiff_t bias_step, float *s) {
    for (int i = 0; i < L; i++) {
        const float *qi = q + (size_t)i * stride;
        const float *bi = bias ? bias + (ptrdiff_t)i * bias_step : NULL;
        float mx = -INFINITY;
        for (int j = 0; j < L; j++) {
            const float *kj = k + (size_t)j * stride;
            float dot = 0;
            for (int c = 0; c < d; c++) dot += qi[c] * kj[c];
            s[j] = dot * scale + (bi ? bi[j] : 0.0f);
            mx = s[j] > mx ? s[j] : mx;
        }
        float sum = 0;
        for (int j = 0; j < L; j++) { s[j] = expf(s[j] - mx); sum += s[j]; }
        float *ci = ctx + (size_t)i * stride;
        for (int c = 0; c < d; c++) ci[c] = 0;
        for (int j = 0; j < L; j++) {
            const float *vj = v + (size_t)j * stride;
            for (int c = 0; c < d; c++) ci[c] += s[j] * vj[c];
        }
        for (int c = 0; c < d; c++) ci[c] /= sum;
    }
}

INLINE void attention_impl(const float *q, const float *k, const float *v, float *ctx, int L, int d,
                           int stride, float scale, const float *bias, ptrdiff_t bias_step, float *scratch) {
    if (L <= 0) return;
    if (d % 8 != 0) { attention_scalar(q, k, v, ctx, L, d, stride, scale, bias, bias_step, scratch); return; }
    int lp = round8(L);
    float *kt = scratch, *s0 = scratch + (size_t)lp * d, *s1 = s0 + lp;
    transpose_keys(k, L, d, stride, kt, lp);
    for (int c = 0; c < d; c++) for (int j = L; j < lp; j++) kt[(size_t)c * lp + j] = 0;
    for (int i = 0; i < L; i += 2) {
        int i1 = i + 1 < L ? i + 1 : i;  // an odd last row is computed twice, written once more
        const float *q0 = q + (size_t)i * stride, *q1 = q + (size_t)i1 * stride;
        scores2(q0, q1, kt, lp, d, scale, s0, s1);
        if (bias) { add_bias(s0, bias + (ptrdiff_t)i * bias_step, L); add_bias(s1, bias + (ptrdiff_t)i1 * bias_step, L); }
        float n0 = softmax_unnormalised(s0, L), n1 = softmax_unnormalised(s1, L);
        context2(s0, s1, n0, n1, v, L, d, stride, ctx + (size_t)i * stride, ctx + (size_t)i1 * stride);
    }
}


// ---- AVX-512: the same algorithm over 16-float vectors, for head widths that are multiples of 16.
#include "v16.h"

INLINE int round16(int n) { return (n + 15) & ~15; }

/// `vexp_nonpositive` over 16 lanes.
INLINE v16 vexp16_nonpositive(v16 x) {
    x = __builtin_elementwise_max(x, splat16(-87.3f));
    const v16 magic = splat16(12582912.0f);
    v16 t = x * splat16(1.44269504088896341f) + magic;
    v16 n = t - magic;
    v16 r = x - n * splat16(0.693359375f);
    r = r - n * splat16(-2.12194440e-4f);
    v16 y = splat16(1.9875691500e-4f);
    y = y * r + splat16(1.3981999507e-3f);
    y = y * r + splat16(8.3334519073e-3f);
    y = y * r + splat16(4.1665795894e-2f);
    y = y * r + splat16(1.6666665459e-1f);
    y = y * r + splat16(5.0000001201e-1f);
    y = y * r * r + r + splat16(1.0f);
    i16 e = ((i16)t - (i16)magic + 127) << 23;
    return y * (v16)e;
}

/// `scores2` over 16 lanes: lp a multiple of 16; 64 keys (8 accumulators) at a time.
INLINE void scores2_v16(const float *q0, const float *q1, const float *kt, int lp, int d, float scale,
                        float *s0, float *s1) {
    int j = 0;
    v16 sc = splat16(scale);
    for (; j + 64 <= lp; j += 64) {
        v16 a0 = splat16(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int c = 0; c < d; c++) {
            const float *row = kt + (size_t)c * lp + j;
            v16 k0 = load16(row), k1 = load16(row + 16), k2 = load16(row + 32), k3 = load16(row + 48);
            v16 x = splat16(q0[c]), y = splat16(q1[c]);
            a0 += x * k0; a1 += x * k1; a2 += x * k2; a3 += x * k3;
            b0 += y * k0; b1 += y * k1; b2 += y * k2; b3 += y * k3;
        }
        store16(s0 + j, a0 * sc); store16(s0 + j + 16, a1 * sc); store16(s0 + j + 32, a2 * sc); store16(s0 + j + 48, a3 * sc);
        store16(s1 + j, b0 * sc); store16(s1 + j + 16, b1 * sc); store16(s1 + j + 32, b2 * sc); store16(s1 + j + 48, b3 * sc);
    }
    for (; j < lp; j += 16) {
        v16 a0 = splat16(0), a1 = a0, b0 = a0, b1 = a0;
        for (int c = 0; c < d; c += 2) {  // d is even
            v16 k0 = load16(kt + (size_t)c * lp + j), k1 = load16(kt + (size_t)(c + 1) * lp + j);
            a0 += splat16(q0[c]) * k0; a1 += splat16(q0[c + 1]) * k1;
            b0 += splat16(q1[c]) * k0; b1 += splat16(q1[c + 1]) * k1;
        }
        store16(s0 + j, (a0 + a1) * sc);
        store16(s1 + j, (b0 + b1) * sc);
    }
}

/// `softmax_unnormalised` over 16 lanes (s holds a multiple of 16 floats).
INLINE float softmax_unnormalised_v16(float *s, int n) {
    int lp = round16(n);
    for (int j = n; j < lp; j++) s[j] = -INFINITY;
    v16 m = load16(s);
    for (int j = 16; j < lp; j += 16) m = __builtin_elementwise_max(m, load16(s + j));
    float mx = m[0];
    for (int i = 1; i < 16; i++) mx = m[i] > mx ? m[i] : mx;
    v16 sum = splat16(0), mm = splat16(mx);
    for (int j = 0; j < lp; j += 16) {
        store16(s + j, vexp16_nonpositive(load16(s + j) - mm));
        if (j + 16 > n) for (int t = n; t < lp; t++) s[t] = 0;
        sum += load16(s + j);
    }
    float total = 0;
    for (int i = 0; i < 16; i++) total += sum[i];
    return 1.0f / total;
}

/// `context2` over 16 lanes, d a multiple of 16: 32 columns of both rows with the keys taken
/// two at a time (8 accumulators), then 16.
INLINE void context2_v16(const float *p0, const float *p1, float n0, float n1, const float *v, int L, int d,
                         int stride, float *c0, float *c1) {
    int col = 0;
    for (; col + 32 <= d; col += 32) {
        v16 a0 = splat16(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        int j = 0;
        for (; j + 2 <= L; j += 2) {
            const float *r0 = v + (size_t)j * stride + col, *r1 = r0 + stride;
            v16 v00 = load16(r0), v01 = load16(r0 + 16), v10 = load16(r1), v11 = load16(r1 + 16);
            v16 x0 = splat16(p0[j]), x1 = splat16(p0[j + 1]), y0 = splat16(p1[j]), y1 = splat16(p1[j + 1]);
            a0 += x0 * v00; a1 += x0 * v01; a2 += x1 * v10; a3 += x1 * v11;
            b0 += y0 * v00; b1 += y0 * v01; b2 += y1 * v10; b3 += y1 * v11;
        }
        if (j < L) {
            const float *r0 = v + (size_t)j * stride + col;
            v16 v00 = load16(r0), v01 = load16(r0 + 16);
            v16 x0 = splat16(p0[j]), y0 = splat16(p1[j]);
            a0 += x0 * v00; a1 += x0 * v01; b0 += y0 * v00; b1 += y0 * v01;
        }
        v16 s = splat16(n0), t = splat16(n1);
        store16(c0 + col, (a0 + a2) * s); store16(c0 + col + 16, (a1 + a3) * s);
        store16(c1 + col, (b0 + b2) * t); store16(c1 + col + 16, (b1 + b3) * t);
    }
    for (; col < d; col += 16) {
        v16 a0 = splat16(0), a1 = a0, b0 = a0, b1 = a0;
        int j = 0;
        for (; j + 2 <= L; j += 2) {
            v16 v0 = load16(v + (size_t)j * stride + col), v1 = load16(v + (size_t)(j + 1) * stride + col);
            a0 += splat16(p0[j]) * v0; a1 += splat16(p0[j + 1]) * v1;
            b0 += splat16(p1[j]) * v0; b1 += splat16(p1[j + 1]) * v1;
        }
        if (j < L) {
            v16 v0 = load16(v + (size_t)j * stride + col);
            a0 += splat16(p0[j]) * v0; b0 += splat16(p1[j]) * v0;
        }
        store16(c0 + col, (a0 + a1) * splat16(n0));
        store16(c1 + col, (b0 + b1) * splat16(n1));
    }
}

/// `attention_impl` over 16 lanes for head widths that are multiples of 16 (the keys are still
/// transposed in 8×8 blocks, into rows padded to 16); other widths go to the 8-lane code.
INLINE void attention_impl_v16(const float *q, const float *k, const float *v, float *ctx, int L, int d,
                               int stride, float scale, const float *bias, ptrdiff_t bias_step, float *scratch) {
    if (L <= 0) return;
    if (d % 16 != 0) { attention_impl(q, k, v, ctx, L, d, stride, scale, bias, bias_step, scratch); return; }
    int lp = round16(L);
    float *kt = scratch, *s0 = scratch + (size_t)lp * d, *s1 = s0 + lp;
    transpose_keys(k, L, d, stride, kt, lp);
    for (int c = 0; c < d; c++) for (int j = L; j < lp; j++) kt[(size_t)c * lp + j] = 0;
    for (int i = 0; i < L; i += 2) {
        int i1 = i + 1 < L ? i + 1 : i;  // an odd last row is computed twice, written once more
        const float *q0 = q + (size_t)i * stride, *q1 = q + (size_t)i1 * stride;
        scores2_v16(q0, q1, kt, lp, d, scale, s0, s1);
        if (bias) { add_bias(s0, bias + (ptrdiff_t)i * bias_step, L); add_bias(s1, bias + (ptrdiff_t)i1 * bias_step, L); }
        float n0 = softmax_unnormalised_v16(s0, L), n1 = softmax_unnormalised_v16(s1, L);
        context2_v16(s0, s1, n0, n1, v, L, d, stride, ctx + (size_t)i * stride, ctx + (size_t)i1 * stride);
    }
}

#define ATTENTION_PARAMS const float *q, const float *k, const float *v, float *ctx, int L, int d, int stride, \
                         float scale, const float *bias, ptrdiff_t bias_step, float *scratch
#define ATTENTION_ARGS q, k, v, ctx, L, d, stride, scale, bias, bias_step, scratch

#if ALLOY_X86
TARGET_AVX2
static void attention_avx2(ATTENTION_PARAMS) { attention_impl(ATTENTION_ARGS); }

TARGET_AVX512
static void attention_avx512(ATTENTION_PARAMS) { attention_impl_v16(ATTENTION_ARGS); }
#endif

static void attention_portable(ATTENTION_PARAMS) { attention_impl(ATTENTION_ARGS); }

void alloy_attention_head_bias_isa(const float *q, const float *k, const float *v, float *ctx, int L, int d,
                                   int stride, float scale, const float *bias, ptrdiff_t bias_step, float *scratch,
                                   int isa) {
    switch (alloy_isa_clamp(isa)) {
#if ALLOY_X86
    case ALLOY_ISA_AVX512: attention_avx512(ATTENTION_ARGS); return;
    case ALLOY_ISA_AVX2: attention_avx2(ATTENTION_ARGS); return;
#endif
    default: attention_portable(ATTENTION_ARGS);
    }
}

void alloy_attention_head_isa(const float *q, const float *k, const float *v, float *ctx, int length, int head_dim,
                              int stride, float scale, float *scratch, int isa) {
    alloy_attention_head_bias_isa(q, k, v, ctx, length, head_dim, stride, scale, NULL, 0, scratch, isa);
}

void alloy_attention_head(const float *q, const float *k, const float *v, float *ctx, int length, int head_dim,
                          int stride, float scale, float *scratch) {
    alloy_attention_head_bias_isa(q, k, v, ctx, length, head_dim, stride, scale, NULL, 0, scratch, alloy_kernels_isa());
}
