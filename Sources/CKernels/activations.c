// Elementwise activations of the encoder, compiled for AVX2+FMA and for any target, chosen at
// run time.
#include "alloy_kernels.h"
#include "v8.h"

/// erf per lane: the rational minimax form of XLA and Eigen (`generic_fast_erf_float`),
/// x·P(x²)/Q(x²) on x clamped to [−4, 4] (erf(4) = 1 in float), |error| < 2·10⁻⁷.
INLINE v8 verf(v8 x) {
    x = __builtin_elementwise_min(__builtin_elementwise_max(x, splat(-4.0f)), splat(4.0f));
    v8 x2 = x * x;
    v8 p = x2 * splat(-2.72614225801306e-10f) + splat(2.77068142495902e-08f);
    p = p * x2 + splat(-2.10102402082508e-06f);
    p = p * x2 + splat(-5.69250639462346e-05f);
    p = p * x2 + splat(-7.34990630326855e-04f);
    p = p * x2 + splat(-2.95459980854025e-03f);
    p = p * x2 + splat(-1.60960333262415e-02f);
    p = p * x;
    v8 q = x2 * splat(-1.45660718464996e-05f) + splat(-2.13374055278905e-04f);
    q = q * x2 + splat(-1.68282697438203e-03f);
    q = q * x2 + splat(-7.37332916720468e-03f);
    q = q * x2 + splat(-1.42647390514189e-02f);
    return p / q;
}

INLINE void gelu_impl(float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8 v = load(x + i);
        store(x + i, v * splat(0.5f) * (splat(1.0f) + verf(v * splat(0.70710678118654752f))));
    }
    if (i < n) {  // the tail through one zero-padded vector
        float t[8] = {0};
        for (size_t j = i; j < n; j++) t[j - i] = x[j];
        v8 v = load(t);
        store(t, v * splat(0.5f) * (splat(1.0f) + verf(v * splat(0.70710678118654752f))));
        for (size_t j = i; j < n; j++) x[j] = t[j - i];
    }
}

__attribute__((target("avx2,fma")))
static void gelu_avx2(float *x, size_t n) { gelu_impl(x, n); }

void alloy_gelu_portable(float *x, size_t n) { gelu_impl(x, n); }

void alloy_gelu(float *x, size_t n) {
#if defined(__x86_64__) || defined(__i386__)
    if (alloy_kernels_have_avx2()) { gelu_avx2(x, n); return; }
#endif
    alloy_gelu_portable(x, n);
}
