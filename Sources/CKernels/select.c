// TIES / breadcrumbs threshold selection: the streaming pass that counts magnitudes below a
// bracket and collects those inside it (MagnitudeSelect.orders).
#include "alloy_merge.h"
#include "isa.h"
#include <string.h>
#if ALLOY_X86
#include <immintrin.h>
#endif

#define INLINE static inline __attribute__((always_inline))

INLINE uint32_t magnitude_bits(float m, float b) {
    float d = m - b;
    uint32_t u;
    memcpy(&u, &d, 4);
    return u & 0x7FFFFFFFu;
}

size_t alloy_bracket_scan_portable(const float *m, const float *b, size_t count, uint32_t lo, uint32_t span,
                                   size_t *below, float *found, size_t capacity) {
    size_t n = 0, less = 0;
    for (size_t j = 0; j < count; j++) {
        uint32_t a = magnitude_bits(m[j], b[j]);
        less += a < lo;
        if (a - lo <= span) {
            if (n < capacity) memcpy(found + n, &a, 4);
            n++;
        }
    }
    *below = less;
    return n;
}

#if ALLOY_X86
/// 16 entries a step: the bracket's lanes compressed into a register and stored whole (a
/// compress straight to memory is microcoded and slow on Zen 4) while 16 more fit, then lane
/// by lane up to `capacity`.
TARGET_AVX512
static size_t scan_avx512(const float *m, const float *b, size_t count, uint32_t lo, uint32_t span,
                          size_t *below, float *found, size_t capacity) {
    const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF), vlo = _mm512_set1_epi32((int)lo), vspan = _mm512_set1_epi32((int)span);
    size_t n = 0, less = 0, j = 0;
    for (; j + 16 <= count; j += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(m + j), _mm512_loadu_ps(b + j));
        __m512i a = _mm512_and_si512(_mm512_castps_si512(d), abs_mask);
        less += (size_t)__builtin_popcount(_mm512_cmplt_epu32_mask(a, vlo));
        __mmask16 in = _mm512_cmple_epu32_mask(_mm512_sub_epi32(a, vlo), vspan);
        if (in) {
            if (n + 16 <= capacity) _mm512_storeu_si512(found + n, _mm512_maskz_compress_epi32(in, a));
            else if (n < capacity) {  // the last few that fit, one by one
                uint32_t lanes[16];
                _mm512_storeu_si512(lanes, a);
                size_t k = n;
                for (int l = 0; l < 16 && k < capacity; l++) if (in >> l & 1) memcpy(found + k++, lanes + l, 4);
            }
            n += (size_t)__builtin_popcount(in);
        }
    }
    size_t tail_below = 0;
    size_t tail = alloy_bracket_scan_portable(m + j, b + j, count - j, lo, span, &tail_below,
                                              found + (n < capacity ? n : capacity), n < capacity ? capacity - n : 0);
    *below = less + tail_below;
    return n + tail;
}
#endif

size_t alloy_bracket_scan(const float *m, const float *b, size_t count, uint32_t lo, uint32_t span,
                          size_t *below, float *found, size_t capacity) {
#if ALLOY_X86
    if (alloy_kernels_isa() == ALLOY_ISA_AVX512) return scan_avx512(m, b, count, lo, span, below, found, capacity);
#endif
    return alloy_bracket_scan_portable(m, b, count, lo, span, below, found, capacity);
}
