// Eight-float vectors for the kernels (clang/GCC vector extensions): one source compiles to
// AVX2+FMA inside `__attribute__((target("avx2,fma")))` functions and to SSE2 (or NEON)
// elsewhere. Private to CKernels.
#ifndef ALLOY_V8_H
#define ALLOY_V8_H
// The helpers are always inlined, so their AVX-sized arguments never cross a call boundary.
#pragma clang diagnostic ignored "-Wpsabi"

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));  // for unaligned loads and stores
typedef int i8 __attribute__((vector_size(32)));

#define INLINE static inline __attribute__((always_inline))

INLINE v8 load(const float *p) { return *(const v8u *)p; }
INLINE void store(float *p, v8 x) { *(v8u *)p = x; }
INLINE v8 splat(float x) { return (v8){x, x, x, x, x, x, x, x}; }
#endif
