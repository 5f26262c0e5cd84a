// X·Wᵀ + bias with weights packed once: the encoder's linear layers.
//
// AVX2 and portable: a 6×16 register block (12 accumulators of 8 floats, two B vectors, one
// broadcast: 15 of AVX2's 16 registers); X is read in place, in blocks of 96 rows × 384
// (144 KiB, in L2), and each packed 16-column strip of W (384 × 16, 24 KiB) stays in L1 across
// a block's 6-row micro-blocks. One C source, compiled for AVX2+FMA and for any target.
//
// AVX-512: a 12×32 register block over two adjacent strips (24 accumulators of 16 floats, two
// B vectors, one broadcast, of 32 registers), ragged edges by masked loads and stores; the
// same packing. All chosen at run time (isa.c).
#include "isa.h"
#include "v8.h"
#include <stdlib.h>
#include <string.h>
#if ALLOY_X86
#include <immintrin.h>
#endif

enum { MR = 6, NR = 16, KC = 384, MC = 96 };

size_t alloy_packed_size(int n, int k) { return (size_t)((n + NR - 1) / NR) * NR * (size_t)k; }

void alloy_pack_weights(const float *w, int n, int k, float *packed) {
    int strips = (n + NR - 1) / NR;
    for (int s = 0; s < strips; s++) {
        float *dst = packed + (size_t)s * NR * k;
        for (int j = 0; j < NR; j++) {
            int row = s * NR + j;
            if (row < n) {
                const float *src = w + (size_t)row * k;
                for (int p = 0; p < k; p++) dst[(size_t)p * NR + j] = src[p];
            } else {
                for (int p = 0; p < k; p++) dst[(size_t)p * NR + j] = 0;
            }
        }
    }
}

/// c[r][0..<cols] (= or +=) Σ_p a[r][p]·b[p][0..<16] (+ bias) for r < rows ≤ 6, p < kc.
INLINE void kernel(const float *a, int lda, const float *b, int kc, float *c, int ldc, int rows, int cols,
                   const float *bias, int add_c) {
    const float *a0 = a, *a1 = rows > 1 ? a + lda : a, *a2 = rows > 2 ? a + 2 * (size_t)lda : a;
    const float *a3 = rows > 3 ? a + 3 * (size_t)lda : a, *a4 = rows > 4 ? a + 4 * (size_t)lda : a;
    const float *a5 = rows > 5 ? a + 5 * (size_t)lda : a;
    v8 c00 = splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    v8 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    _Pragma("clang loop unroll_count(4)")
    for (int p = 0; p < kc; p++) {
        v8 b0 = load(b + (size_t)p * NR), b1 = load(b + (size_t)p * NR + 8);
        v8 x;
        x = splat(a0[p]); c00 += x * b0; c01 += x * b1;
        x = splat(a1[p]); c10 += x * b0; c11 += x * b1;
        x = splat(a2[p]); c20 += x * b0; c21 += x * b1;
        x = splat(a3[p]); c30 += x * b0; c31 += x * b1;
        x = splat(a4[p]); c40 += x * b0; c41 += x * b1;
        x = splat(a5[p]); c50 += x * b0; c51 += x * b1;
    }
    v8 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (int r = 0; r < rows; r++) {
        float *row = c + (size_t)r * ldc;
        if (cols == NR) {
            v8 lo = acc[r][0], hi = acc[r][1];
            if (add_c) { lo += load(row); hi += load(row + 8); }
            if (bias) { lo += load(bias); hi += load(bias + 8); }
            store(row, lo); store(row + 8, hi);
        } else {
            float t[NR];
            store(t, acc[r][0]); store(t + 8, acc[r][1]);
            for (int j = 0; j < cols; j++) row[j] = t[j] + (add_c ? row[j] : 0) + (bias ? bias[j] : 0);
        }
    }
}

/// Loops, outer to inner: row blocks of MC, k-blocks of KC (the MC×KC block of X, 144 KiB, and
/// the block's rows of Y stay in L2 while the k-blocks accumulate), 16-column strips of W (KC×16,
/// 24 KiB, in L1), 6-row micro-blocks.
INLINE void linear_impl(const float *x, int ldx, const float *packed, const float *bias, float *y, int ldy,
                        int m, int n, int k, int accumulate) {
    int strips = (n + NR - 1) / NR;
    for (int i0 = 0; i0 < m; i0 += MC) {
        int i1 = m - i0 < MC ? m : i0 + MC;
        for (int p0 = 0; p0 < k; p0 += KC) {
            int kc = k - p0 < KC ? k - p0 : KC;
            for (int s = 0; s < strips; s++) {
                const float *b = packed + (size_t)s * NR * k + (size_t)p0 * NR;
                int cols = n - s * NR < NR ? n - s * NR : NR;
                const float *bs = bias && p0 == 0 ? bias + s * NR : 0;
                for (int i = i0; i < i1; i += MR) {
                    int rows = i1 - i < MR ? i1 - i : MR;
                    kernel(x + (size_t)i * ldx + p0, ldx, b, kc, y + (size_t)i * ldy + s * NR, ldy, rows, cols, bs,
                           p0 > 0 || accumulate);
                }
            }
        }
    }
}

#if ALLOY_X86
TARGET_AVX2
static void linear_avx2(const float *x, int ldx, const float *packed, const float *bias, float *y, int ldy,
                        int m, int n, int k, int accumulate) {
    linear_impl(x, ldx, packed, bias, y, ldy, m, n, k, accumulate);
}

#ifndef MR5
#define MR5 12  /* rows of the AVX-512 register block */
#endif
#ifndef KC5
#define KC5 384  /* depth of its k-blocks */
#endif
#ifndef MC5
#define MC5 96  /* rows of its row blocks */
#endif

/// The lanes of a 16-column strip that hold columns below `cols` (≥ 1).
TARGET_AVX512 INLINE __mmask16 lanes(int cols) { return cols >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1); }

/// c[r][0..<cols] (= or +=) Σ_p a[r][p]·B[p][0..<16·ns] (+ bias) for r < rows ≤ mr, p < kc, where
/// B is `ns` (1 or 2) packed strips starting at b0 and b1; mr and ns are constants after
/// inlining, so the accumulators live in registers.
TARGET_AVX512 INLINE void kernel512(const int mr, const int ns, const float *a, int lda, const float *b0,
                                    const float *b1, int kc, float *c, int ldc, int rows, int cols,
                                    const float *bias, int add_c) {
    const float *ar[MR5];
    __m512 acc[MR5][2];
    _Pragma("clang loop unroll(full)")
    for (int r = 0; r < mr; r++) {
        ar[r] = r < rows ? a + (size_t)r * lda : a;  // rows past the end recompute row 0, unstored
        acc[r][0] = _mm512_setzero_ps();
        acc[r][1] = _mm512_setzero_ps();
    }
    for (int p = 0; p < kc; p++) {
        __m512 B0 = _mm512_loadu_ps(b0 + (size_t)p * 16);
        __m512 B1 = ns > 1 ? _mm512_loadu_ps(b1 + (size_t)p * 16) : B0;
        _Pragma("clang loop unroll(full)")
        for (int r = 0; r < mr; r++) {
            __m512 x = _mm512_set1_ps(ar[r][p]);
            acc[r][0] = _mm512_fmadd_ps(x, B0, acc[r][0]);
            if (ns > 1) acc[r][1] = _mm512_fmadd_ps(x, B1, acc[r][1]);
        }
    }
    __mmask16 m0 = lanes(cols), m1 = ns > 1 && cols > 16 ? lanes(cols - 16) : 0;
    __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    __m512 bias1 = bias && m1 ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    _Pragma("clang loop unroll(full)")
    for (int r = 0; r < mr; r++) {
        if (r >= rows) continue;
        float *row = c + (size_t)r * ldc;
        __m512 v0 = _mm512_add_ps(acc[r][0], bias0);
        if (add_c) v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
        _mm512_mask_storeu_ps(row, m0, v0);
        if (ns > 1 && m1) {
            __m512 v1 = _mm512_add_ps(acc[r][1], bias1);
            if (add_c) v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row + 16));
            _mm512_mask_storeu_ps(row + 16, m1, v1);
        }
    }
}

/// `rows` rows of X (row stride ldx) times the k-block at p0 (kc deep) of W's strip s (and
/// s + 1 when ns = 2) into Y: 12-row micro-blocks, the last rows by 6-row ones (the encoder's
/// row blocks are multiples of 6).
TARGET_AVX512 INLINE void rows512(const int ns, const float *x, int ldx, const float *packed, const float *bias,
                                  float *y, int ldy, int n, int k, int rows, int p0, int kc, int s, int add_c) {
    const float *b0 = packed + (size_t)s * 16 * k + (size_t)p0 * 16, *b1 = b0 + (size_t)16 * k;
    int cols = n - s * 16 < 16 * ns ? n - s * 16 : 16 * ns;
    const float *bs = bias && p0 == 0 ? bias + s * 16 : 0;
    float *ys = y + s * 16;
    int i = 0;
    for (; i + MR5 <= rows; i += MR5)
        kernel512(MR5, ns, x + (size_t)i * ldx, ldx, b0, b1, kc, ys + (size_t)i * ldy, ldy, MR5, cols, bs, add_c);
    for (; i < rows; i += 6)
        kernel512(6, ns, x + (size_t)i * ldx, ldx, b0, b1, kc, ys + (size_t)i * ldy, ldy, rows - i < 6 ? rows - i : 6,
                  cols, bs, add_c);
}

/// Loops as in `linear_impl`, over pairs of strips (a last odd strip alone). When X's row
/// stride is a multiple of 4 KiB (k = 1024, 2048, 3072, … for a dense X), each MC×KC block of X
/// is first copied to rows KC floats apart: at such strides a micro-block's 12 rows fall into
/// one L1 set (8 ways on Zen 4) and evict each other. Measured on Zen 4: 89 → 100 GFLOP/s at
/// k = 3072; at k = 1536 (rows in two sets) the copy cost 3–7%, so it is not made there.
TARGET_AVX512
static void linear_avx512(const float *x, int ldx, const float *packed, const float *bias, float *y, int ldy,
                          int m, int n, int k, int accumulate) {
    int strips = (n + 15) / 16;
    int aliasing = (size_t)ldx * sizeof(float) % 4096 == 0 && m > MR5;
    float *copy = aliasing ? aligned_alloc(64, sizeof(float) * MC5 * KC5) : 0;  // NULL: read X in place
    for (int i0 = 0; i0 < m; i0 += MC5) {
        int i1 = m - i0 < MC5 ? m : i0 + MC5;
        for (int p0 = 0; p0 < k; p0 += KC5) {
            int kc = k - p0 < KC5 ? k - p0 : KC5, add_c = p0 > 0 || accumulate;
            const float *xb = x + (size_t)i0 * ldx + p0;
            int ld = ldx;
            if (copy) {
                for (int i = 0; i < i1 - i0; i++) memcpy(copy + (size_t)i * KC5, xb + (size_t)i * ldx, sizeof(float) * kc);
                xb = copy, ld = KC5;
            }
            float *yb = y + (size_t)i0 * ldy;
            int s = 0;
            for (; s + 2 <= strips; s += 2) rows512(2, xb, ld, packed, bias, yb, ldy, n, k, i1 - i0, p0, kc, s, add_c);
            if (s < strips) rows512(1, xb, ld, packed, bias, yb, ldy, n, k, i1 - i0, p0, kc, s, add_c);
        }
    }
    free(copy);
}
#endif

static void linear_portable(const float *x, int ldx, const float *packed, const float *bias, float *y, int ldy,
                            int m, int n, int k, int accumulate) {
    linear_impl(x, ldx, packed, bias, y, ldy, m, n, k, accumulate);
}

void alloy_linear_packed_isa(const float *x, int ldx, const float *packed, const float *bias, float *y, int ldy,
                             int m, int n, int k, int accumulate, int isa) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {  // an empty product: the bias alone
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) y[(size_t)i * ldy + j] = (accumulate ? y[(size_t)i * ldy + j] : 0) + (bias ? bias[j] : 0);
        return;
    }
    switch (alloy_isa_clamp(isa)) {
#if ALLOY_X86
    case ALLOY_ISA_AVX512: linear_avx512(x, ldx, packed, bias, y, ldy, m, n, k, accumulate); return;
    case ALLOY_ISA_AVX2: linear_avx2(x, ldx, packed, bias, y, ldy, m, n, k, accumulate); return;
#endif
    default: linear_portable(x, ldx, packed, bias, y, ldy, m, n, k, accumulate);
    }
}

void alloy_linear_packed(const float *x, int ldx, const float *packed, const float *bias, float *y, int ldy,
                         int m, int n, int k, int accumulate) {
    alloy_linear_packed_isa(x, ldx, packed, bias, y, ldy, m, n, k, accumulate, alloy_kernels_isa());
}

// The FMA peak of one core, for benchmarks: 12 independent chains of fused multiply-adds
// (enough to cover the FMA latency on two pipes), `iters` times each.
INLINE float fma_chains_v8(long iters, float seed) {
    v8 a[12], b = splat(0.999f), c = splat(1e-3f);
    for (int i = 0; i < 12; i++) a[i] = splat((float)i + seed);  // unknown starts: nothing folds
    for (long it = 0; it < iters; it++) {
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < 12; i++) a[i] = a[i] * b + c;
    }
    float s = 0;
    for (int i = 0; i < 12; i++) s += a[i][0];
    return s;
}

#if ALLOY_X86
TARGET_AVX2 static float fma_avx2(long iters, float seed) { return fma_chains_v8(iters, seed); }

TARGET_AVX512 static float fma_avx512(long iters, float seed) {
    __m512 a[12], b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i + seed);
    for (long it = 0; it < iters; it++) {
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    }
    float s = 0;
    for (int i = 0; i < 12; i++) s += _mm512_reduce_add_ps(a[i]);
    return s;
}
#endif

double alloy_fma_flops_isa(long iters, int isa, float *sink) {
    float s, seed = sink ? *sink : 0;
    double lanes = 8;
    switch (alloy_isa_clamp(isa)) {
#if ALLOY_X86
    case ALLOY_ISA_AVX512: s = fma_avx512(iters, seed); lanes = 16; break;
    case ALLOY_ISA_AVX2: s = fma_avx2(iters, seed); break;
#endif
    default: s = fma_chains_v8(iters, seed);  // portable: no FMA, a multiply and an add
    }
    if (sink) *sink = s;
    return (double)iters * 12 * lanes * 2;
}
