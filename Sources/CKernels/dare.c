// DARE keep masks: a counter-based generator evaluated eight entries at a time.
#include "alloy_merge.h"
#include "isa.h"

typedef uint64_t u64x8 __attribute__((vector_size(64)));
#define INLINE static inline __attribute__((always_inline))

INLINE uint64_t finalise(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

INLINE size_t dare_impl(uint64_t key, int64_t start, size_t count, uint64_t threshold, uint8_t *mask) {
    const uint64_t phi = 0x9E3779B97F4A7C15ULL;
    size_t ones = 0, j = 0;
    const u64x8 lane = {0, 1, 2, 3, 4, 5, 6, 7};
    for (; j + 8 <= count; j += 8) {
        u64x8 z = key + ((uint64_t)start + j + lane) * phi;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        z ^= z >> 31;
        u64x8 keep = (z >> 40) < threshold;  // all ones or zero per lane
        for (int l = 0; l < 8; l++) { uint8_t k = (uint8_t)(keep[l] & 1); mask[j + l] = k; ones += k; }
    }
    for (; j < count; j++) {
        uint8_t k = (finalise(key + ((uint64_t)start + j) * phi) >> 40) < threshold;
        mask[j] = k; ones += k;
    }
    return ones;
}

size_t alloy_dare_mask_portable(uint64_t key, int64_t start, size_t count, uint64_t threshold, uint8_t *mask) {
    return dare_impl(key, start, count, threshold, mask);
}

#if ALLOY_X86
TARGET_AVX512
static size_t dare_avx512(uint64_t key, int64_t start, size_t count, uint64_t threshold, uint8_t *mask) {
    return dare_impl(key, start, count, threshold, mask);
}

TARGET_AVX2
static size_t dare_avx2(uint64_t key, int64_t start, size_t count, uint64_t threshold, uint8_t *mask) {
    return dare_impl(key, start, count, threshold, mask);
}
#endif

size_t alloy_dare_mask(uint64_t key, int64_t start, size_t count, uint64_t threshold, uint8_t *mask) {
#if ALLOY_X86
    switch (alloy_kernels_isa()) {  // cpuid once, or ALLOY_ISA
    case ALLOY_ISA_AVX512: return dare_avx512(key, start, count, threshold, mask);
    case ALLOY_ISA_AVX2: return dare_avx2(key, start, count, threshold, mask);
    default: break;
    }
#endif
    return alloy_dare_mask_portable(key, start, count, threshold, mask);
}
