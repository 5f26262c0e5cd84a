// Y = X·Wᵀ + bias in bfloat16 with float accumulation: weights rounded to bf16 once, each
// activation row rounded at run time, products summed in f32 — AVX-512 BF16's VDPBF16PS
// (two bf16 products per f32 lane) where the CPU has it (Intel Cooper Lake and later, AMD
// Zen 4); the portable path computes the same sums from the same rounded values.
//
// Packing: strips of 16 output channels; within a strip, k in pairs (channel c's values k, k+1
// at 2c), 64 bytes per pair: VDPBF16PS's layout. Rounding: to nearest even, as PyTorch's
// `.to(torch.bfloat16)` (NaN kept quiet).
#include "isa.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if ALLOY_X86
#include <immintrin.h>
#endif

enum { NRB = 16, MRB = 12, MCB = 96 };

static inline int pairs(int k) { return (k + 1) / 2; }

static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static inline float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

size_t alloy_packed_bf16_size(int n, int k) { return (size_t)((n + NRB - 1) / NRB) * NRB * (size_t)pairs(k) * 2; }
size_t alloy_bf16_row_values(int k) { return (size_t)pairs(k) * 2; }

void alloy_pack_weights_bf16(const float *w, int n, int k, uint16_t *packed) {
    int kp = pairs(k);
    memset(packed, 0, alloy_packed_bf16_size(n, k) * sizeof(uint16_t));
    for (int j = 0; j < n; j++) {
        const float *row = w + (size_t)j * k;
        int s = j / NRB, c = j % NRB;
        for (int p = 0; p < k; p++) packed[(((size_t)s * kp + p / 2) * NRB + c) * 2 + p % 2] = to_bf16(row[p]);
    }
}

#if ALLOY_X86
/// `alloy_round_rows_bf16` for one row, 16 values at a time (VCVTNEPS2BF16: nearest even).
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16")))
static void round_row_avx512(const float *row, int k, uint16_t *out) {
    int p = 0;
    for (; p + 16 <= k; p += 16) _mm256_storeu_si256((__m256i *)(out + p), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(row + p)));
    for (; p < k; p++) out[p] = to_bf16(row[p]);
}
#endif

void alloy_round_rows_bf16(const float *x, int ldx, int m, int k, uint16_t *xb) {
    size_t ld = alloy_bf16_row_values(k);
#if ALLOY_X86
    if (alloy_kernels_have_bf16()) {
        for (int i = 0; i < m; i++) {
            round_row_avx512(x + (size_t)i * ldx, k, xb + (size_t)i * ld);
            for (size_t p = (size_t)k; p < ld; p++) xb[(size_t)i * ld + p] = 0;
        }
        return;
    }
#endif
    for (int i = 0; i < m; i++) {
        const float *row = x + (size_t)i * ldx;
        uint16_t *out = xb + (size_t)i * ld;
        for (int p = 0; p < k; p++) out[p] = to_bf16(row[p]);
        for (size_t p = (size_t)k; p < ld; p++) out[p] = 0;
    }
}

static void linear_bf16_portable(const uint16_t *xb, const uint16_t *packed, const float *bias, float *y, int ldy,
                                 int m, int n, int k, int accumulate) {
    int kp = pairs(k);
    size_t ld = (size_t)kp * 2;
    for (int i = 0; i < m; i++) {
        const uint16_t *xr = xb + (size_t)i * ld;
        for (int j = 0; j < n; j++) {
            const uint16_t *wq = packed + ((size_t)(j / NRB) * kp * NRB + j % NRB) * 2;
            float acc = 0;
            for (int p = 0; p < kp; p++) {
                const uint16_t *w2 = wq + (size_t)p * NRB * 2;
                acc += from_bf16(xr[2 * p]) * from_bf16(w2[0]) + from_bf16(xr[2 * p + 1]) * from_bf16(w2[1]);
            }
            float v = acc + (bias ? bias[j] : 0);
            y[(size_t)i * ldy + j] = accumulate ? y[(size_t)i * ldy + j] + v : v;
        }
    }
}

#if ALLOY_X86
#define TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")))

TARGET_BF16
static inline void block_bf16(const uint16_t *xb, size_t ld, const uint16_t *packed, const float *bias, float *y, int ldy,
                              int n, int kp, int rows, int s, int width, int accumulate) {
    __m512 acc[MRB][2];
    for (int r = 0; r < MRB; r++) { acc[r][0] = _mm512_setzero_ps(); acc[r][1] = _mm512_setzero_ps(); }
    const uint16_t *w0 = packed + (size_t)s * kp * 32, *w1 = width > 1 ? w0 + (size_t)kp * 32 : w0;
    const uint16_t *xr[MRB];
    for (int r = 0; r < MRB; r++) xr[r] = xb + (size_t)(r < rows ? r : 0) * ld;
    for (int p = 0; p < kp; p++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(w0 + (size_t)p * 32), b1 = (__m512bh)_mm512_loadu_si512(w1 + (size_t)p * 32);
        _Pragma("clang loop unroll(full)")
        for (int r = 0; r < MRB; r++) {
            int32_t two;
            memcpy(&two, xr[r] + (size_t)p * 2, 4);
            __m512bh a = (__m512bh)_mm512_set1_epi32(two);
            acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
            acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
        }
    }
    for (int h = 0; h < width; h++) {
        int col = (s + h) * NRB;
        int valid = n - col < NRB ? n - col : NRB;
        __mmask16 mask = (__mmask16)((1u << valid) - 1);
        __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + col) : _mm512_setzero_ps();
        for (int r = 0; r < rows; r++) {
            __m512 v = _mm512_add_ps(acc[r][h], bv);
            float *out = y + (size_t)r * ldy + col;
            if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, out));
            _mm512_mask_storeu_ps(out, mask, v);
        }
    }
}

TARGET_BF16
static void linear_bf16_avx512(const uint16_t *xb, const uint16_t *packed, const float *bias, float *y, int ldy,
                               int m, int n, int k, int accumulate) {
    int kp = pairs(k), strips = (n + NRB - 1) / NRB;
    size_t ld = (size_t)kp * 2;
    for (int i0 = 0; i0 < m; i0 += MCB) {
        int i1 = m - i0 < MCB ? m : i0 + MCB;
        for (int s = 0; s < strips; s += 2) {
            int width = strips - s >= 2 ? 2 : 1;
            for (int i = i0; i < i1; i += MRB) {
                int rows = i1 - i < MRB ? i1 - i : MRB;
                block_bf16(xb + (size_t)i * ld, ld, packed, bias, y + (size_t)i * ldy, ldy, n, kp, rows, s, width, accumulate);
            }
        }
    }
}
#endif

int alloy_kernels_have_bf16(void) {
#if ALLOY_X86
    static int have = -1;
    int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
    if (h < 0) {
        __builtin_cpu_init();
        h = alloy_kernels_isa_supported() >= ALLOY_ISA_AVX512 && __builtin_cpu_supports("avx512bf16");
        __atomic_store_n(&have, h, __ATOMIC_RELAXED);
    }
    return h;
#else
    return 0;
#endif
}

void alloy_linear_bf16_isa(const uint16_t *xb, const uint16_t *packed, const float *bias, float *y, int ldy,
                           int m, int n, int k, int accumulate, int isa) {
    if (m <= 0 || n <= 0) return;
#if ALLOY_X86
    if (alloy_isa_clamp(isa) >= ALLOY_ISA_AVX512 && alloy_kernels_have_bf16()) {
        linear_bf16_avx512(xb, packed, bias, y, ldy, m, n, k, accumulate);
        return;
    }
#endif
    (void)isa;
    linear_bf16_portable(xb, packed, bias, y, ldy, m, n, k, accumulate);
}
