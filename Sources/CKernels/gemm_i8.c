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
// few levels): each row's largest-magnitude entry is split out, the rest quantised over their
// own range (found in the same pass as the row's extremes: its two largest and two smallest
// values), and the split-out entry multiplied exactly (by the quantised weights) afterwards. Per row, not per column as LLM.int8: a sequence's result never depends on the
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

/// A row's two largest and two smallest values (a value present twice counts twice); ±inf
/// where the row has fewer than two.
typedef struct { float max1, max2, min1, min2; } Extremes;

static inline void extremes_add(Extremes *e, float v) {
    e->max2 = fmaxf(e->max2, fminf(e->max1, v)); e->max1 = fmaxf(e->max1, v);
    e->min2 = fminf(e->min2, fmaxf(e->min1, v)); e->min1 = fminf(e->min1, v);
}

#if ALLOY_X86
/// `row_extremes`, 16 lanes at a time (each lane's two largest and smallest), then the lanes'.
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
static Extremes row_extremes_avx512(const float *row, int k) {
    __m512 mx1 = _mm512_set1_ps(-INFINITY), mx2 = mx1, mn1 = _mm512_set1_ps(INFINITY), mn2 = mn1;
    int p = 0;
    for (; p + 16 <= k; p += 16) {
        __m512 v = _mm512_loadu_ps(row + p);
        mx2 = _mm512_max_ps(mx2, _mm512_min_ps(mx1, v)); mx1 = _mm512_max_ps(mx1, v);
        mn2 = _mm512_min_ps(mn2, _mm512_max_ps(mn1, v)); mn1 = _mm512_min_ps(mn1, v);
    }
    float l[4][16];
    _mm512_storeu_ps(l[0], mx1); _mm512_storeu_ps(l[1], mx2); _mm512_storeu_ps(l[2], mn1); _mm512_storeu_ps(l[3], mn2);
    Extremes e = { -INFINITY, -INFINITY, INFINITY, INFINITY };
    for (int c = 0; c < 16; c++) {
        e.max2 = fmaxf(e.max2, fminf(e.max1, l[0][c])); e.max1 = fmaxf(e.max1, l[0][c]); e.max2 = fmaxf(e.max2, l[1][c]);
        e.min2 = fminf(e.min2, fmaxf(e.min1, l[2][c])); e.min1 = fminf(e.min1, l[2][c]); e.min2 = fminf(e.min2, l[3][c]);
    }
    for (; p < k; p++) extremes_add(&e, row[p]);
    return e;
}

/// The first index whose magnitude is `m` (-1 when none: NaNs), 16 lanes at a time.
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
static int first_with_magnitude_avx512(const float *v, int k, float m) {
    __m512 vm = _mm512_set1_ps(m);
    int p = 0;
    for (; p + 16 <= k; p += 16) {
        __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(v + p)), vm, _CMP_EQ_OQ);
        if (hit) return p + __builtin_ctz(hit);
    }
    for (; p < k; p++) if (fabsf(v[p]) == m) return p;
    return -1;
}

/// One row quantised with the parameters of range [lo, hi], 16 values at a time (VCVTPS2DQ
/// rounds to nearest even as nearbyintf does; the sums are clamped to 0…255 before VPMOVDB
/// keeps their low byte).
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
static void quantize_row_avx512(const float *row, int k, float lo, float hi, uint8_t *q, float *xscale, int32_t *xzero) {
    float inv = row_params(lo, hi, xscale, xzero);
    __m512 vi = _mm512_set1_ps(inv);
    __m512i zero = _mm512_set1_epi32(*xzero), lowest = _mm512_setzero_si512(), highest = _mm512_set1_epi32(255);
    int p = 0;
    for (; p + 16 <= k; p += 16) {
        __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(row + p), vi)), zero);
        v = _mm512_min_epi32(_mm512_max_epi32(v, lowest), highest);
        _mm_storeu_si128((__m128i *)(q + p), _mm512_cvtepi32_epi8(v));
    }
    for (; p < k; p++) q[p] = quantize_u8(row[p], inv, *xzero);
}

#endif

static Extremes row_extremes(const float *row, int k, int isa) {
#if ALLOY_X86
    if (isa >= ALLOY_ISA_AVX512) return row_extremes_avx512(row, k);
#endif
    (void)isa;
    Extremes e = { -INFINITY, -INFINITY, INFINITY, INFINITY };
    for (int p = 0; p < k; p++) extremes_add(&e, row[p]);
    return e;
}

static int first_with_magnitude(const float *v, int k, float m, int isa) {
#if ALLOY_X86
    if (isa >= ALLOY_ISA_AVX512) return first_with_magnitude_avx512(v, k, m);
#endif
    (void)isa;
    for (int p = 0; p < k; p++) if (fabsf(v[p]) == m) return p;
    return -1;
}

static void quantize_row(const float *row, int k, float lo, float hi, uint8_t *q, float *xscale, int32_t *xzero, int isa) {
#if ALLOY_X86
    if (isa >= ALLOY_ISA_AVX512) { quantize_row_avx512(row, k, lo, hi, q, xscale, xzero); return; }
#endif
    (void)isa;
    float inv = row_params(lo, hi, xscale, xzero);
    for (int p = 0; p < k; p++) q[p] = quantize_u8(row[p], inv, *xzero);
}

void alloy_quantize_rows_u8(const float *x, int ldx, int m, int k, uint8_t *xq, float *xscale, int32_t *xzero,
                            int32_t *oidx, float *oval, int isa) {
    size_t ldq = alloy_quantized_row_bytes(k);
    isa = alloy_isa_clamp(isa);
    for (int i = 0; i < m; i++) {
        const float *row = x + (size_t)i * ldx;
        uint8_t *q = xq + (size_t)i * ldq;
        Extremes e = row_extremes(row, k, isa);
        float lo = e.min1, hi = e.max1;
        int at = -1;
        if (oidx && k > 0) {
            // The entry of largest magnitude (lowest index among equals) leaves the range: the
            // rest spans [min, second largest] when it is the maximum, [second smallest, max]
            // when it is the minimum. A row of NaNs splits nothing out (index 0, value 0).
            at = first_with_magnitude(row, k, fmaxf(e.max1, -e.min1), isa);
            oidx[i] = at < 0 ? 0 : at;
            oval[i] = at < 0 ? 0 : row[at];
            if (at >= 0 && row[at] > 0) hi = e.max2;
            else if (at >= 0 && row[at] < 0) lo = e.min2;
        }
        // ±inf (a row of one entry, split out) widens to 0 in row_params: an all-zero row.
        quantize_row(row, k, isfinite(lo) ? lo : 0, isfinite(hi) ? hi : 0, q, xscale + i, xzero + i, isa);
        if (at >= 0) q[at] = (uint8_t)xzero[i];  // adds nothing: the exact product comes after
        for (size_t p = (size_t)k; p < ldq; p++) q[p] = (uint8_t)xzero[i];
    }
}

/// One output value from its int32 sum: s_x·s_w·(acc − z_x·Σw) + bias (a row's split-out entry
/// v at column j adds v·s_w·w_q[j] after).
static inline float rescale(int32_t acc, int32_t colsum, float xs, int32_t xz, float ws, float bias) {
    return xs * ws * (float)(acc - xz * colsum) + bias;
}

static void linear_i8_portable(const uint8_t *xq, const float *xscale, const int32_t *xzero, const int32_t *oidx, const float *oval,
                               const int8_t *packed, const float *scale, const int32_t *colsum, const float *bias, float *y, int ldy,
                               int m, int n, int k, int accumulate) {
    int kq = quads(k);
    size_t ldq = (size_t)kq * 4;
    for (int i = 0; i < m; i++) {
        const uint8_t *xr = xq + (size_t)i * ldq;
        int32_t out = oidx ? oidx[i] : 0;
        float ov = oidx && out >= 0 && out < k ? oval[i] : 0;
        for (int j = 0; j < n; j++) {
            const int8_t *wq = packed + ((size_t)(j / NR8) * kq * NR8 + j % NR8) * 4;
            int32_t acc = 0;
            for (int p = 0; p < kq; p++) {
                const int8_t *w4 = wq + (size_t)p * NR8 * 4;
                const uint8_t *x4 = xr + (size_t)p * 4;
                acc += x4[0] * w4[0] + x4[1] * w4[1] + x4[2] * w4[2] + x4[3] * w4[3];
            }
            float v = rescale(acc, colsum[j], xscale[i], xzero[i], scale[j], bias ? bias[j] : 0);
            if (ov != 0) v += ov * scale[j] * (float)wq[(size_t)(out / 4) * NR8 * 4 + out % 4];
            y[(size_t)i * ldy + j] = accumulate ? y[(size_t)i * ldy + j] + v : v;
        }
    }
}

#if ALLOY_X86
#define TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma")))

/// Rows r0..r0+rows (≤ 12) × the `width` (1 or 2) strips from strip s.
TARGET_VNNI
static inline void block_vnni(const uint8_t *xq, size_t ldq, const float *xscale, const int32_t *xzero, const int32_t *oidx, const float *oval,
                              const int8_t *packed, const float *scale, const int32_t *colsum, const float *bias, float *y, int ldy,
                              int n, int kq, int rows, int s, int width, int accumulate) {
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
        const int8_t *wh = h == 0 ? w0 : w1;
        for (int r = 0; r < rows; r++) {
            __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][h], _mm512_mullo_epi32(cs, _mm512_set1_epi32(xzero[r]))));
            v = _mm512_fmadd_ps(v, _mm512_mul_ps(ws, _mm512_set1_ps(xscale[r])), bv);
            int32_t j = oidx ? oidx[r] : 0;
            if (oidx && oval[r] != 0 && j >= 0 && j < kq * 4) {
                // The split-out entry: its channel's weights are byte j % 4 of each lane of the
                // strip's quad j / 4 (just streamed, so in cache), sign-extended.
                __m512i quad = _mm512_loadu_si512(wh + (size_t)(j / 4) * 64);
                __m512i w = _mm512_srai_epi32(_mm512_sll_epi32(quad, _mm_cvtsi32_si128(24 - 8 * (j % 4))), 24);
                v = _mm512_fmadd_ps(_mm512_mul_ps(ws, _mm512_set1_ps(oval[r])), _mm512_cvtepi32_ps(w), v);
            }
            float *out = y + (size_t)r * ldy + col;
            if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, out));
            _mm512_mask_storeu_ps(out, mask, v);
        }
    }
}

TARGET_VNNI
static void linear_i8_vnni(const uint8_t *xq, const float *xscale, const int32_t *xzero, const int32_t *oidx, const float *oval,
                           const int8_t *packed, const float *scale, const int32_t *colsum, const float *bias, float *y, int ldy,
                           int m, int n, int k, int accumulate) {
    int kq = quads(k), strips = (n + NR8 - 1) / NR8;
    size_t ldq = (size_t)kq * 4;
    for (int i0 = 0; i0 < m; i0 += MC8) {
        int i1 = m - i0 < MC8 ? m : i0 + MC8;
        for (int s = 0; s < strips; s += 2) {
            int width = strips - s >= 2 ? 2 : 1;
            for (int i = i0; i < i1; i += MR8) {
                int rows = i1 - i < MR8 ? i1 - i : MR8;
                block_vnni(xq + (size_t)i * ldq, ldq, xscale + i, xzero + i, oidx ? oidx + i : NULL, oval ? oval + i : NULL,
                           packed, scale, colsum, bias, y + (size_t)i * ldy, ldy, n, kq, rows, s, width, accumulate);
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

void alloy_linear_i8_isa(const uint8_t *xq, const float *xscale, const int32_t *xzero, const int32_t *oidx, const float *oval,
                         const int8_t *packed, const float *scale, const int32_t *colsum, const float *bias, float *y, int ldy,
                         int m, int n, int k, int accumulate, int isa) {
    if (m <= 0 || n <= 0) return;
#if ALLOY_X86
    if (alloy_isa_clamp(isa) >= ALLOY_ISA_AVX512 && alloy_kernels_have_vnni()) {
        linear_i8_vnni(xq, xscale, xzero, oidx, oval, packed, scale, colsum, bias, y, ldy, m, n, k, accumulate);
        return;
    }
#endif
    (void)isa;
    linear_i8_portable(xq, xscale, xzero, oidx, oval, packed, scale, colsum, bias, y, ldy, m, n, k, accumulate);
}
