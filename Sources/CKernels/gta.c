// The merge pass of generalized task arithmetic (TIES, DARE, task arithmetic): the band trim
// of one model's τ and the sign election and mix across models, per block of entries. Written
// once as plain loops, compiled per instruction set (AVX-512, AVX2, portable), where the
// compiler vectorises them; floating-point contraction is off, so every path rounds like the
// scalar definition (and like the Swift loops these replace).
#pragma STDC FP_CONTRACT OFF
#include "alloy_merge.h"
#include "isa.h"
#include <string.h>
#if ALLOY_X86
#include <immintrin.h>
#endif

#define INLINE static inline __attribute__((always_inline))

INLINE float keep_or_zero(float x, int keep) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u &= (uint32_t)-keep;
    memcpy(&x, &u, 4);
    return x;
}

INLINE size_t trim_band_impl(const float *m, const float *b, size_t n, float lo, float hi, float scale, float weight,
                             float *dst, int *boundary) {
    uint32_t inside = 0, at = 0;
    for (size_t j = 0; j < n; j++) {
        float d = m[j] - b[j], a = __builtin_fabsf(d);
        int k = (a > lo) & (a < hi);
        dst[j] = keep_or_zero(d * scale * weight, k);
        inside += (uint32_t)k;
        at |= (uint32_t)((a == lo) | (a == hi));
    }
    *boundary = at != 0;
    return inside;
}

INLINE void trim_mask_impl(const float *m, const float *b, size_t n, float scale, float weight, const uint8_t *mask,
                           float *dst) {
    if (!mask) {
        for (size_t j = 0; j < n; j++) dst[j] = (m[j] - b[j]) * scale * weight;
        return;
    }
    for (size_t j = 0; j < n; j++) dst[j] = keep_or_zero((m[j] - b[j]) * scale * weight, mask[j]);
}

/// Eight running sums (entry j into sum j mod 8, each in index order), added up in lane order
/// at the end, then the tail: the same bits whether the lanes are one vector or eight scalars.
INLINE void l1_impl(const float *m, const float *b, size_t n, const uint8_t *mask, double *before, double *after) {
    double sb[8] = {0}, sa[8] = {0};
    size_t j = 0;
    // The mask test outside the loops, so that each vectorises (8 doubles per vector): with it
    // inside, the compiler left the loop scalar (one element at a time, vcvtss2sd).
    if (mask) {
        for (; j + 8 <= n; j += 8)
            for (int l = 0; l < 8; l++) {
                float d = __builtin_fabsf(m[j + l] - b[j + l]);
                sb[l] += (double)d;
                sa[l] += (double)keep_or_zero(d, mask[j + l]);
            }
    } else {
        for (; j + 8 <= n; j += 8)
            for (int l = 0; l < 8; l++) sb[l] += (double)__builtin_fabsf(m[j + l] - b[j + l]);
        for (int l = 0; l < 8; l++) sa[l] = sb[l];
    }
    double tb = 0, ta = 0;
    for (int l = 0; l < 8; l++) { tb += sb[l]; ta += sa[l]; }
    for (; j < n; j++) {
        float d = __builtin_fabsf(m[j] - b[j]);
        tb += (double)d;
        ta += (double)(mask ? keep_or_zero(d, mask[j]) : d);
    }
    *before = tb; *after = ta;
}

INLINE void mix_impl(const float *dw, size_t stride, size_t models, const float *weights, const float *b, size_t n,
                     int consensus, float divisor, int normalize, float lambda, float *out, float *scratch) {
    float *t = scratch, *mx = scratch + n, *dv = scratch + 2 * n;
    for (size_t j = 0; j < n; j++) t[j] = 0;
    for (size_t i = 0; i < models; i++) {
        const float *src = dw + i * stride;
        for (size_t j = 0; j < n; j++) t[j] += src[j];
    }
    if (consensus) {
        for (size_t j = 0; j < n; j++) { mx[j] = 0; dv[j] = 0; }
        for (size_t i = 0; i < models; i++) {
            const float *src = dw + i * stride;
            float wi = weights[i];
            for (size_t j = 0; j < n; j++) {
                float v = src[j];
                int positive = t[j] >= 0;  // the elected sign (a NaN total elects −)
                int agrees = (positive & (v > 0)) | (!positive & (v < 0));
                mx[j] += keep_or_zero(v, agrees);
                dv[j] += keep_or_zero(wi, agrees);
            }
        }
        for (size_t j = 0; j < n; j++) dv[j] = dv[j] == 0 ? 1 : dv[j];
    } else {
        for (size_t j = 0; j < n; j++) { mx[j] = t[j]; dv[j] = divisor; }
    }
    if (normalize) {
        if (lambda != 1) for (size_t j = 0; j < n; j++) out[j] = b[j] + (mx[j] / dv[j]) * lambda;
        else for (size_t j = 0; j < n; j++) out[j] = b[j] + mx[j] / dv[j];
    } else {
        if (lambda != 1) for (size_t j = 0; j < n; j++) out[j] = b[j] + mx[j] * lambda;
        else for (size_t j = 0; j < n; j++) out[j] = b[j] + mx[j];
    }
}

#if ALLOY_X86
TARGET_AVX512 static size_t trim_band_avx512(const float *m, const float *b, size_t n, float lo, float hi, float scale,
                                             float weight, float *dst, int *boundary) {
    return trim_band_impl(m, b, n, lo, hi, scale, weight, dst, boundary);
}
TARGET_AVX2 static size_t trim_band_avx2(const float *m, const float *b, size_t n, float lo, float hi, float scale,
                                         float weight, float *dst, int *boundary) {
    return trim_band_impl(m, b, n, lo, hi, scale, weight, dst, boundary);
}
TARGET_AVX512 static void trim_mask_avx512(const float *m, const float *b, size_t n, float scale, float weight,
                                           const uint8_t *mask, float *dst) {
    trim_mask_impl(m, b, n, scale, weight, mask, dst);
}
TARGET_AVX2 static void trim_mask_avx2(const float *m, const float *b, size_t n, float scale, float weight,
                                       const uint8_t *mask, float *dst) {
    trim_mask_impl(m, b, n, scale, weight, mask, dst);
}
/// `l1_impl` in intrinsics (the compiler vectorised it two doubles at a time): the same eight
/// lane sums (entry j into sum j mod 8, in index order), added up the same way, so the same bits.
TARGET_AVX512 static void l1_avx512(const float *m, const float *b, size_t n, const uint8_t *mask, double *before, double *after) {
    __m512d sb = _mm512_setzero_pd(), sa = _mm512_setzero_pd();
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    size_t j = 0;
    if (mask) {
        for (; j + 8 <= n; j += 8) {
            __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_loadu_ps(m + j), _mm256_loadu_ps(b + j)), magnitude);
            sb = _mm512_add_pd(sb, _mm512_cvtps_pd(d));
            long long eight;
            memcpy(&eight, mask + j, 8);
            // keep_or_zero: the bits of d and −keep (keep a 0/1 byte widened to 32 bits).
            __m256i keep = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(eight)));
            sa = _mm512_add_pd(sa, _mm512_cvtps_pd(_mm256_and_ps(d, _mm256_castsi256_ps(keep))));
        }
    } else {
        for (; j + 8 <= n; j += 8)
            sb = _mm512_add_pd(sb, _mm512_cvtps_pd(_mm256_and_ps(_mm256_sub_ps(_mm256_loadu_ps(m + j), _mm256_loadu_ps(b + j)), magnitude)));
        sa = sb;
    }
    double lb[8], la[8], tb = 0, ta = 0;
    _mm512_storeu_pd(lb, sb); _mm512_storeu_pd(la, sa);
    for (int l = 0; l < 8; l++) { tb += lb[l]; ta += la[l]; }
    for (; j < n; j++) {
        float d = __builtin_fabsf(m[j] - b[j]);
        tb += (double)d;
        ta += (double)(mask ? keep_or_zero(d, mask[j]) : d);
    }
    *before = tb; *after = ta;
}
TARGET_AVX2 static void l1_avx2(const float *m, const float *b, size_t n, const uint8_t *mask, double *before, double *after) {
    l1_impl(m, b, n, mask, before, after);
}
TARGET_AVX512 static void mix_avx512(const float *dw, size_t stride, size_t models, const float *weights, const float *b,
                                     size_t n, int consensus, float divisor, int normalize, float lambda, float *out,
                                     float *scratch) {
    mix_impl(dw, stride, models, weights, b, n, consensus, divisor, normalize, lambda, out, scratch);
}
TARGET_AVX2 static void mix_avx2(const float *dw, size_t stride, size_t models, const float *weights, const float *b,
                                 size_t n, int consensus, float divisor, int normalize, float lambda, float *out,
                                 float *scratch) {
    mix_impl(dw, stride, models, weights, b, n, consensus, divisor, normalize, lambda, out, scratch);
}
#endif

size_t alloy_trim_band_isa(const float *m, const float *b, size_t n, float lo, float hi, float scale, float weight,
                           float *dst, int *boundary, int isa) {
#if ALLOY_X86
    switch (alloy_isa_clamp(isa)) {
    case ALLOY_ISA_AVX512: return trim_band_avx512(m, b, n, lo, hi, scale, weight, dst, boundary);
    case ALLOY_ISA_AVX2: return trim_band_avx2(m, b, n, lo, hi, scale, weight, dst, boundary);
    default: break;
    }
#else
    (void)isa;
#endif
    return trim_band_impl(m, b, n, lo, hi, scale, weight, dst, boundary);
}

size_t alloy_trim_band(const float *m, const float *b, size_t n, float lo, float hi, float scale, float weight,
                       float *dst, int *boundary) {
    return alloy_trim_band_isa(m, b, n, lo, hi, scale, weight, dst, boundary, alloy_kernels_isa());
}

void alloy_trim_mask_isa(const float *m, const float *b, size_t n, float scale, float weight, const uint8_t *mask,
                         float *dst, int isa) {
#if ALLOY_X86
    switch (alloy_isa_clamp(isa)) {
    case ALLOY_ISA_AVX512: trim_mask_avx512(m, b, n, scale, weight, mask, dst); return;
    case ALLOY_ISA_AVX2: trim_mask_avx2(m, b, n, scale, weight, mask, dst); return;
    default: break;
    }
#else
    (void)isa;
#endif
    trim_mask_impl(m, b, n, scale, weight, mask, dst);
}

void alloy_trim_mask(const float *m, const float *b, size_t n, float scale, float weight, const uint8_t *mask, float *dst) {
    alloy_trim_mask_isa(m, b, n, scale, weight, mask, dst, alloy_kernels_isa());
}

void alloy_l1_sums_isa(const float *m, const float *b, size_t n, const uint8_t *mask, double *before, double *after, int isa) {
#if ALLOY_X86
    switch (alloy_isa_clamp(isa)) {
    case ALLOY_ISA_AVX512: l1_avx512(m, b, n, mask, before, after); return;
    case ALLOY_ISA_AVX2: l1_avx2(m, b, n, mask, before, after); return;
    default: break;
    }
#else
    (void)isa;
#endif
    l1_impl(m, b, n, mask, before, after);
}

void alloy_l1_sums(const float *m, const float *b, size_t n, const uint8_t *mask, double *before, double *after) {
    alloy_l1_sums_isa(m, b, n, mask, before, after, alloy_kernels_isa());
}

void alloy_gta_mix_isa(const float *dw, size_t stride, size_t models, const float *weights, const float *b, size_t n,
                       int consensus, float divisor, int normalize, float lambda, float *out, float *scratch, int isa) {
#if ALLOY_X86
    switch (alloy_isa_clamp(isa)) {
    case ALLOY_ISA_AVX512: mix_avx512(dw, stride, models, weights, b, n, consensus, divisor, normalize, lambda, out, scratch); return;
    case ALLOY_ISA_AVX2: mix_avx2(dw, stride, models, weights, b, n, consensus, divisor, normalize, lambda, out, scratch); return;
    default: break;
    }
#else
    (void)isa;
#endif
    mix_impl(dw, stride, models, weights, b, n, consensus, divisor, normalize, lambda, out, scratch);
}

void alloy_gta_mix(const float *dw, size_t stride, size_t models, const float *weights, const float *b, size_t n,
                   int consensus, float divisor, int normalize, float lambda, float *out, float *scratch) {
    alloy_gta_mix_isa(dw, stride, models, weights, b, n, consensus, divisor, normalize, lambda, out, scratch, alloy_kernels_isa());
}
