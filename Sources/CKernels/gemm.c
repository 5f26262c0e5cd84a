// X·Wᵀ + bias with weights packed once: the encoder's linear layers. A 6×16 register block
// (12 accumulators of 8 floats, two B vectors, one broadcast: 15 of AVX2's 16 registers);
// X is read in place, in blocks of 96 rows × 384 (144 KiB, in L2), and each packed 16-column
// strip of W (384 × 16, 24 KiB) stays in L1 across a block's 6-row micro-blocks. One C source,
// compiled for AVX2+FMA and for any target, chosen at run time.
#include "alloy_kernels.h"
#include "v8.h"

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

__attribute__((target("avx2,fma")))
static void linear_avx2(const float *x, int ldx, const float *packed, const float *bias, float *y, int ldy,
                        int m, int n, int k, int accumulate) {
    linear_impl(x, ldx, packed, bias, y, ldy, m, n, k, accumulate);
}

void alloy_linear_packed_portable(const float *x, int ldx, const float *packed, const float *bias, float *y,
                                  int ldy, int m, int n, int k, int accumulate) {
    linear_impl(x, ldx, packed, bias, y, ldy, m, n, k, accumulate);
}

void alloy_linear_packed(const float *x, int ldx, const float *packed, const float *bias, float *y, int ldy,
                         int m, int n, int k, int accumulate) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {  // an empty product: the bias alone
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) y[(size_t)i * ldy + j] = (accumulate ? y[(size_t)i * ldy + j] : 0) + (bias ? bias[j] : 0);
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    if (alloy_kernels_have_avx2()) { linear_avx2(x, ldx, packed, bias, y, ldy, m, n, k, accumulate); return; }
#endif
    alloy_linear_packed_portable(x, ldx, packed, bias, y, ldy, m, n, k, accumulate);
}
