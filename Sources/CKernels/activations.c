// Elementwise kernels of the encoder: GELU and LayerNorm, written once (lanes_impl.h) and
// compiled for 8-float vectors (portable: SSE2 on baseline x86-64; AVX2+FMA) and 16-float
// vectors (AVX-512), chosen at run time (isa.c).
#include "isa.h"
#include "v8.h"
#include "v16.h"

#define V v8
#define VL 8
#define VLOAD load
#define VSTORE store
#define VSPLAT splat
#define SUF v8
#include "lanes_impl.h"
#undef V
#undef VL
#undef VLOAD
#undef VSTORE
#undef VSPLAT
#undef SUF

#define V v16
#define VL 16
#define VLOAD load16
#define VSTORE store16
#define VSPLAT splat16
#define SUF v16
#include "lanes_impl.h"
#undef V
#undef VL
#undef VLOAD
#undef VSTORE
#undef VSPLAT
#undef SUF

static void gelu_portable(float *x, size_t n) { gelu_v8(x, n); }

static void layer_norm_portable(float *x, int rows, int w, const float *res, const float *gamma, const float *beta,
                                float eps) {
    for (int r = 0; r < rows; r++)
        layer_norm_row_v8(x + (size_t)r * w, w, res ? res + (size_t)r * w : 0, gamma, beta, eps);
}

#if ALLOY_X86
TARGET_AVX2 static void gelu_avx2(float *x, size_t n) { gelu_v8(x, n); }
TARGET_AVX512 static void gelu_avx512(float *x, size_t n) { gelu_v16(x, n); }

TARGET_AVX2
static void layer_norm_avx2(float *x, int rows, int w, const float *res, const float *gamma, const float *beta,
                            float eps) {
    for (int r = 0; r < rows; r++)
        layer_norm_row_v8(x + (size_t)r * w, w, res ? res + (size_t)r * w : 0, gamma, beta, eps);
}

TARGET_AVX512
static void layer_norm_avx512(float *x, int rows, int w, const float *res, const float *gamma, const float *beta,
                              float eps) {
    for (int r = 0; r < rows; r++)
        layer_norm_row_v16(x + (size_t)r * w, w, res ? res + (size_t)r * w : 0, gamma, beta, eps);
}
#endif

void alloy_gelu_isa(float *x, size_t n, int isa) {
    switch (alloy_isa_clamp(isa)) {
#if ALLOY_X86
    case ALLOY_ISA_AVX512: gelu_avx512(x, n); return;
    case ALLOY_ISA_AVX2: gelu_avx2(x, n); return;
#endif
    default: gelu_portable(x, n);
    }
}

void alloy_gelu(float *x, size_t n) { alloy_gelu_isa(x, n, alloy_kernels_isa()); }

void alloy_layer_norm_isa(float *x, int rows, int width, const float *residual, const float *gamma,
                          const float *beta, float eps, int isa) {
    if (rows <= 0 || width <= 0) return;
    switch (alloy_isa_clamp(isa)) {
#if ALLOY_X86
    case ALLOY_ISA_AVX512: layer_norm_avx512(x, rows, width, residual, gamma, beta, eps); return;
    case ALLOY_ISA_AVX2: layer_norm_avx2(x, rows, width, residual, gamma, beta, eps); return;
#endif
    default: layer_norm_portable(x, rows, width, residual, gamma, beta, eps);
    }
}

void alloy_layer_norm(float *x, int rows, int width, const float *residual, const float *gamma,
                      const float *beta, float eps) {
    alloy_layer_norm_isa(x, rows, width, residual, gamma, beta, eps, alloy_kernels_isa());
}
