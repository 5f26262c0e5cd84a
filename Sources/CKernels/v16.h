// Sixteen-float vectors for the AVX-512 paths (clang/GCC vector extensions), used only inside
// `TARGET_AVX512` functions, where they are one zmm register. Private to CKernels.
#ifndef ALLOY_V16_H
#define ALLOY_V16_H
#include "v8.h"

typedef float v16 __attribute__((vector_size(64)));
typedef float v16u __attribute__((vector_size(64), aligned(4)));  // for unaligned loads and stores
typedef int i16 __attribute__((vector_size(64)));

INLINE v16 load16(const float *p) { return *(const v16u *)p; }
INLINE void store16(float *p, v16 x) { *(v16u *)p = x; }
INLINE v16 splat16(float x) { return (v16){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
#endif
