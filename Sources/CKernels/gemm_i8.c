// Y = X·Wᵀ + bias in 8-bit integers: weights quantised once per output channel (symmetric,
// int8), activations per row at run time (asymmetric u8: the row's own range and zero point,
// all 256 levels, as ONNX's DynamicQuantizeLinear), int32 accumulation, one float rescale per
// output — dynamic quantisation as ONNX Runtime's `quantize_dynamic` and PyTorch's
// `quantize_dynamic` do it (Jacob et al. 2018, "Quantization and training of neural networks
// for efficient integer-arithmetic-only inference", eq. 7: the zero point comes out of the
// integer sum as z_x·Σ_k w_q).
//
// Packing: strips of 16 output channels; within a strip, k in quads of 4 bytes per channel
// (64 bytes per quad: channel c's bytes k..k+3 at 4c), the layout of AVX-512 VNNI's VPDPBUSD
// (u8 × s8 → s32, four products per lane, no intermediate saturation). Because row i of X is
// stored shifted by its zero point z_i, the kernel subtracts z_i·Σ_k w_q, with Σ_k w_q per
// channel precomputed at packing.
//
// Outliers (after LLM.int8, Dettmers et al. 2022, "8-bit Matrix Multiplication for Transformers
// at Scale": a few activation entries of large magnitude set the row's scale and leave the rest
// few levels): each row's largest-magnitude entries are split out, the rest quantised over
// their own range, and the split-out entries multiplied exactly (by the quantised weights)
// afterwards. Per row, not per column as LLM.int8: a sequence's result never depends on the
// other sequences of its batch.
//
// AVX-512 VNNI: a 12×32 register block (24 accumulators, two weight vectors, one broadcast).
// Elsewhere a portable path computes the same integers (slower: it is the fallback).
#include "isa.h"
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if ALLOY_X86
#include <immintrin.h>
#endif

enum { NR8 = 16, MR8 = 12, MC8 = 96 };

static inline int quads(int k) { return (k + 3) / 4; }

size_t alloy_packed_i8_size(int n, int k) { return (size_t)((n + NR8 - 1) / NR8) * NR8 * (size_t)quads(k) * 4; }
size_t alloy_packed_i8_channels(int n) { return (size_t)((n + NR8 - 1) / NR8) * NR8; }
size_t alloy_quantized_row_bytes(int k) { return (size_t)quads(k) * 4; }

void alloy_pack_weights_i8(const float *w, int n, int k, int8_t *packed, float *scale, int32_t *colsum) {
    int strips = (n + NR8 - 1) / NR8, kq = quads(k);
    memset(packed, 0, alloy_packed_i8_size(n, k));
    for (int j = 0; j < strips * NR8; j++) { scale[j] = 0; colsum[j] = 0; }
    for (int j = 0; j < n; j++) {
        const float *row = w + (size_t)j * k;
        float amax = 0;
        for (int p = 0; p < k; p++) amax = fmaxf(amax, fabsf(row[p]));
        float s = amax / 127.0f, inv = amax > 0 ? 127.0f / amax : 0;
        scale[j] = s;
        int s0 = j / NR8, c = j % NR8;
        int32_t sum = 0;
        for (int p = 0; p < k; p++) {
            float q = nearbyintf(row[p] * inv);
            int8_t v = (int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
            packed[(((size_t)s0 * kq + p / 4) * NR8 + c) * 4 + p % 4] = v;
            sum += v;
        }
        colsum[j] = sum;
    }
}

/// A row's asymmetric u8 parameters from its range [lo, hi] widened to hold 0, as ONNX's
/// DynamicQuantizeLinear defines them: scale = (hi − lo)/255, zero point = round(−lo/scale) in
/// 0…255 (0 itself exactly representable). Returns 1/scale (0 for an all-zero row).
static inline float row_params(float lo, float hi, float *xscale, int32_t *xzero) {
    lo = fminf(lo, 0); hi = fmaxf(hi, 0);
    float s = (hi - lo) / 255.0f;
    if (!(s > 0)) { *xscale = 0; *xzero = 0; return 0; }
    float z = nearbyintf(-lo / s);
    *xscale = s; *xzero = (int32_t)(z < 0 ? 0 : z > 255 ? 255 : z);
    return 1.0f / s;
}

static inline uint8_t quantize_u8(float x, float inv, int32_t zero) {
    float q = nearbyintf(x * inv) + (float)zero;
    return (uint8_t)(q < 0 ? 0 : q > 255 ? 255 : q);
}

#if ALLOY_X86
/// `alloy_quantize_rows_u8` for one row, 16 values at a time (VCVTPS2DQ rounds to nearest even
/// as nearbyintf does; the sums are clamped to 0…255 before VPMOVDB keeps their low byte).
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
static void quantize_row_avx512(const float *row, int k, uint8_t *q, float *xscale, int32_t *xzero) {
    __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
    int p = 0;
    for (; p + 16 <= k; p += 16) {
        __m512 v = _mm512_loadu_ps(row + p);
        lo = _mm512_min_ps(lo, v); hi = _mm512_max_ps(hi, v);
    }
    float l = _mm512_reduce_min_ps(lo), h = _mm512_reduce_max_ps(hi);
    for (; p < k; p++) { l = fminf(l, row[p]); h = fmaxf(h, row[p]); }
    float inv = row_params(l, h, xscale, xzero);
    __m512 vi = _mm512_set1_ps(inv);
    __m512i zero = _mm512_set1_epi32(*xzero), lowest = _mm512_setzero_si512(), highest = _mm512_set1_epi32(255);
    for (p = 0; p + 16 <= k; p += 16) {
        __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(row + p), vi)), zero);
        v = _mm512_min_epi32(_mm512_max_epi32(v, lowest), highest);
        _mm_storeu_si128((__m128i *)(q + p), _mm512_cvtepi32_epi8(v));
    }
    for (; p < k; p++) q[p] = quantize_u8(row[p], inv, *xzero);
}

/// `first_largest`, 16 at a time: the largest magnitude, then the first lane holding it.
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
static int first_largest_avx512(const float *v, int k) {
    __m512 mx = _mm512_setzero_ps();
    int p = 0;
    for (; p + 16 <= k; p += 16) mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(v + p)));
    float m = _mm512_reduce_max_ps(mx);
    for (; p < k; p++) m = fmaxf(m, fabsf(v[p]));
    __m512 vm = _mm512_set1_ps(m);
    for (p = 0; p + 16 <= k; p += 16) {
        __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(v + p)), vm, _CMP_EQ_OQ);
        if (hit) return p + __builtin_ctz(hit);
    }
    for (; p < k; p++) if (fabsf(v[p]) == m) return p;
    return -1;
}

/// `alloy_i8_add_outliers` for one entry: y[c] += v · scale[c] · W_q[c, j], 16 channels per
/// step from the one 64-byte block of each strip that holds column j (byte j % 4 of each lane).
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
static void add_column_avx512(const int8_t *packed, const float *scale, int n, int kq, int j, float v, float *y) {
    const int8_t *col = packed + (size_t)(j / 4) * NR8 * 4;
    __m512 vv = _mm512_set1_ps(v);
    int left = 24 - 8 * (j % 4), c = 0;
    for (; c + NR8 <= n; c += NR8) {
        __m512i block = _mm512_loadu_si512((const void *)(col + (size_t)(c / NR8) * kq * NR8 * 4));
        __m512i w = _mm512_srai_epi32(_mm512_sll_epi32(block, _mm_cvtsi32_si128(left)), 24);
        __m512 prod = _mm512_mul_ps(_mm512_mul_ps(vv, _mm512_loadu_ps(scale + c)), _mm512_cvtepi32_ps(w));
        _mm512_storeu_ps(y + c, _mm512_add_ps(_mm512_loadu_ps(y + c), prod));
    }
    for (; c < n; c++) y[c] += v * scale[c] * (float)col[((size_t)(c / NR8) * kq * NR8 + c % NR8) * 4 + j % 4];
}
#endif

/// The index of the first entry of `v` (k > 0) with the largest magnitude; -1 when none
/// compares (NaNs).
static int first_largest(const float *v, int k, int isa) {
#if ALLOY_X86
    if (isa >= ALLOY_ISA_AVX512) return first_largest_avx512(v, k);
#endif
    (void)isa;
    float m = -1;
    int at = -1;
    for (int p = 0; p < k; p++) { float a = fabsf(v[p]); if (a > m) { m = a; at = p; } }
    return at;
}

static void quantize_row(const float *row, int k, uint8_t *q, float *xscale, int32_t *xzero, int isa) {
#if ALLOY_X86
    if (isa >= ALLOY_ISA_AVX512) { quantize_row_avx512(row, k, q, xscale, xzero); return; }
#endif
    (void)isa;
    float lo = 0, hi = 0;
    for (int p = 0; p < k; p++) { lo = fminf(lo, row[p]); hi = fmaxf(hi, row[p]); }
    float inv = row_params(lo, hi, xscale, xzero);
    for (int p = 0; p < k; p++) q[p] = quantize_u8(row[p], inv, *xzero);
}

void alloy_quantize_rows_u8(const float *x, int ldx, int m, int k, uint8_t *xq, float *xscale, int32_t *xzero,
                            int nout, int32_t *oidx, float *oval, int isa) {
    size_t ldq = alloy_quantized_row_bytes(k);
    isa = alloy_isa_clamp(isa);
    if (nout > k) nout = k;
    // A row with its split-out entries set to 0 (a scratch copy; nothing when nout is 0).
    float *copy = nout > 0 && k > 0 ? malloc((size_t)k * sizeof(float)) : NULL;
    if (nout > 0 && k > 0 && !copy) nout = 0;  // out of memory: quantise whole rows, as without the split
    for (int i = 0; i < m; i++) {
        const float *row = x + (size_t)i * ldx;
        uint8_t *q = xq + (size_t)i * ldq;
        if (nout > 0) {
            // The largest magnitude first (lowest index among equals), each set to 0 in the copy
            // once taken; a row of NaNs splits nothing out (index 0, value 0).
            memcpy(copy, row, (size_t)k * sizeof(float));
            for (int o = 0; o < nout; o++) {
                int at = first_largest(copy, k, isa);
                oidx[(size_t)i * nout + o] = at < 0 ? 0 : at;
                oval[(size_t)i * nout + o] = at < 0 ? 0 : copy[at];
                if (at >= 0) copy[at] = 0;
            }
            row = copy;
        }
        quantize_row(row, k, q, xscale + i, xzero + i, isa);
        for (size_t p = (size_t)k; p < ldq; p++) q[p] = (uint8_t)xzero[i];
    }
    free(copy);
}

void alloy_i8_add_outliers(const int8_t *packed, const float *scale, int n, int k, int m, int nout, const int32_t *oidx,
                           const float *oval, float *y, int ldy, int isa) {
    if (nout > k) nout = k;
    isa = alloy_isa_clamp(isa);
    int kq = quads(k);
    for (int i = 0; i < m; i++) {
        float *yr = y + (size_t)i * ldy;
        for (int o = 0; o < nout; o++) {
            int32_t j = oidx[(size_t)i * nout + o];
            float v = oval[(size_t)i * nout + o];
            if (v == 0 || j < 0 || j >= k) continue;
#if ALLOY_X86
            if (isa >= ALLOY_ISA_AVX512) { add_column_avx512(packed, scale, n, kq, j, v, yr); continue; }
#endif
            // Channel c's byte j sits at ((strip·kq + j/4)·16 + c%16)·4 + j%4.
            const int8_t *col = packed + (size_t)(j / 4) * NR8 * 4 + j % 4;
            for (int c = 0; c < n; c++) {
                int8_t w = col[((size_t)(c / NR8) * kq * NR8 + c % NR8) * 4];
                yr[c] += v * scale[c] * (float)w;
            }
        }
    }
}

/// One output value from its int32 sum: s_x·s_w·(acc − z_x·Σw) + bias.
static inline float rescale(int32_t acc, int32_t colsum, float xs, int32_t xz, float ws, float bias) {
    return xs * ws * (float)(acc - xz * colsum) + bias;
}

static void linear_i8_portable(const uint8_t *xq, const float *xscale, const int32_t *xzero, const int8_t *packed, const float *scale,
                               const int32_t *colsum, const float *bias, float *y, int ldy, int m, int n, int k, int accumulate) {
    int kq = quads(k);
    size_t ldq = (size_t)kq * 4;
    for (int i = 0; i < m; i++) {
        const uint8_t *xr = xq + (size_t)i * ldq;
        for (int j = 0; j < n; j++) {
            const int8_t *wq = packed + ((size_t)(j / NR8) * kq * NR8 + j % NR8) * 4;
            int32_t acc = 0;
            for (int p = 0; p < kq; p++) {
                const int8_t *w4 = wq + (size_t)p * NR8 * 4;
                const uint8_t *x4 = xr + (size_t)p * 4;
                acc += x4[0] * w4[0] + x4[1] * w4[1] + x4[2] * w4[2] + x4[3] * w4[3];
            }
            float v = rescale(acc, colsum[j], xscale[i], xzero[i], scale[j], bias ? bias[j] : 0);
            y[(size_t)i * ldy + j] = accumulate ? y[(size_t)i * ldy + j] + v : v;
        }
    }
}

#if ALLOY_X86
#define TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")))

/// Rows r0..r0+rows (≤ 12) × the `width` (1 or 2) strips from strip s.
TARGET_VNNI
static inline void block_vnni(const uint8_t *xq, size_t ldq, const float *xscale, const int32_t *xzero, const int8_t *packed, const float *scale,
                              const int32_t *colsum, const float *bias, float *y, int ldy, int n, int kq,
                              int rows, int s, int width, int accumulate) {
    __m512i acc[MR8][2];
    for (int r = 0; r < MR8; r++) { acc[r][0] = _mm512_setzero_si512(); acc[r][1] = _mm512_setzero_si512(); }
    const int8_t *w0 = packed + (size_t)s * kq * 64, *w1 = width > 1 ? w0 + (size_t)kq * 64 : w0;
    const uint8_t *xr[MR8];
    for (int r = 0; r < MR8; r++) xr[r] = xq + (size_t)(r < rows ? r : 0) * ldq;
    for (int p = 0; p < kq; p++) {
        __m512i b0 = _mm512_loadu_si512(w0 + (size_t)p * 64), b1 = _mm512_loadu_si512(w1 + (size_t)p * 64);
        _Pragma("clang loop unroll(full)")
        for (int r = 0; r < MR8; r++) {
            int32_t four;
            memcpy(&four, xr[r] + (size_t)p * 4, 4);
            __m512i a = _mm512_set1_epi32(four);
            acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], a, b0);
            acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], a, b1);
        }
    }
    for (int h = 0; h < width; h++) {
        int col = (s + h) * NR8;
        int valid = n - col < NR8 ? n - col : NR8;
        __mmask16 mask = (__mmask16)((1u << valid) - 1);
        __m512i cs = _mm512_loadu_si512(colsum + col);
        __m512 ws = _mm512_loadu_ps(scale + col);
        __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + col) : _mm512_setzero_ps();
        for (int r = 0; r < rows; r++) {
            __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][h], _mm512_mullo_epi32(cs, _mm512_set1_epi32(xzero[r]))));
            v = _mm512_fmadd_ps(v, _mm512_mul_ps(ws, _mm512_set1_ps(xscale[r])), bv);
            float *out = y + (size_t)r * ldy + col;
            if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, out));
            _mm512_mask_storeu_ps(out, mask, v);
        }
    }
}

TARGET_VNNI
static void linear_i8_vnni(const uint8_t *xq, const float *xscale, const int32_t *xzero, const int8_t *packed, const float *scale,
                           const int32_t *colsum, const float *bias, float *y, int ldy, int m, int n, int k, int accumulate) {
    int kq = quads(k), strips = (n + NR8 - 1) / NR8;
    size_t ldq = (size_t)kq * 4;
    for (int i0 = 0; i0 < m; i0 += MC8) {
        int i1 = m - i0 < MC8 ? m : i0 + MC8;
        for (int s = 0; s < strips; s += 2) {
            int width = strips - s >= 2 ? 2 : 1;
            for (int i = i0; i < i1; i += MR8) {
                int rows = i1 - i < MR8 ? i1 - i : MR8;
                block_vnni(xq + (size_t)i * ldq, ldq, xscale + i, xzero + i, packed, scale, colsum, bias, y + (size_t)i * ldy, ldy, n, kq,
                           rows, s, width, accumulate);
            }
        }
    }
}
#endif

int alloy_kernels_have_vnni(void) {
#if ALLOY_X86
    static int have = -1;
    int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
    if (h < 0) {
        __builtin_cpu_init();
        h = alloy_kernels_isa_supported() >= ALLOY_ISA_AVX512 && __builtin_cpu_supports("avx512vnni");
        __atomic_store_n(&have, h, __ATOMIC_RELAXED);
    }
    return h;
#else
    return 0;
#endif
}

void alloy_linear_i8_isa(const uint8_t *xq, const float *xscale, const int32_t *xzero, const int8_t *packed, const float *scale,
                         const int32_t *colsum, const float *bias, float *y, int ldy, int m, int n, int k, int accumulate, int isa) {
    if (m <= 0 || n <= 0) return;
#if ALLOY_X86
    if (alloy_isa_clamp(isa) >= ALLOY_ISA_AVX512 && alloy_kernels_have_vnni()) {
        linear_i8_vnni(xq, xscale, xzero, packed, scale, colsum, bias, y, ldy, m, n, k, accumulate);
        return;
    }
#endif
    (void)isa;
    linear_i8_portable(xq, xscale, xzero, packed, scale, colsum, bias, y, ldy, m, n, k, accumulate);
}
