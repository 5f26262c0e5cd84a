// GELU and LayerNorm written once over a vector type, included by activations.c once per
// vector width with these macros defined (then undefined):
//   V (the vector type), VL (its lanes), VLOAD, VSTORE, VSPLAT, SUF (the functions' suffix).
// Every function is INLINE: it takes the instruction set of the target function it is
// inlined into. Private to CKernels.
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

/// erf per lane: the rational minimax form of XLA and Eigen (`generic_fast_erf_float`),
/// x·P(x²)/Q(x²) on x clamped to [−4, 4] (erf(4) = 1 in float), |error| < 2·10⁻⁷.
INLINE V CAT(verf_, SUF)(V x) {
    x = __builtin_elementwise_min(__builtin_elementwise_max(x, VSPLAT(-4.0f)), VSPLAT(4.0f));
    V x2 = x * x;
    V p = x2 * VSPLAT(-2.72614225801306e-10f) + VSPLAT(2.77068142495902e-08f);
    p = p * x2 + VSPLAT(-2.10102402082508e-06f);
    p = p * x2 + VSPLAT(-5.69250639462346e-05f);
    p = p * x2 + VSPLAT(-7.34990630326855e-04f);
    p = p * x2 + VSPLAT(-2.95459980854025e-03f);
    p = p * x2 + VSPLAT(-1.60960333262415e-02f);
    p = p * x;
    V q = x2 * VSPLAT(-1.45660718464996e-05f) + VSPLAT(-2.13374055278905e-04f);
    q = q * x2 + VSPLAT(-1.68282697438203e-03f);
    q = q * x2 + VSPLAT(-7.37332916720468e-03f);
    q = q * x2 + VSPLAT(-1.42647390514189e-02f);
    return p / q;
}

INLINE V CAT(vgelu_, SUF)(V v) {
    return v * VSPLAT(0.5f) * (VSPLAT(1.0f) + CAT(verf_, SUF)(v * VSPLAT(0.70710678118654752f)));
}

INLINE void CAT(gelu_, SUF)(float *x, size_t n) {
    size_t i = 0;
    for (; i + VL <= n; i += VL) VSTORE(x + i, CAT(vgelu_, SUF)(VLOAD(x + i)));
    if (i < n) {  // the tail through one zero-padded vector
        float t[VL] = {0};
        for (size_t j = i; j < n; j++) t[j - i] = x[j];
        VSTORE(t, CAT(vgelu_, SUF)(VLOAD(t)));
        for (size_t j = i; j < n; j++) x[j] = t[j - i];
    }
}

INLINE float CAT(hsum_, SUF)(V v) {
    float s = 0;
    for (int i = 0; i < VL; i++) s += v[i];
    return s;
}

/// One row: x += residual (when given), then (x − μ)·(σ² + eps)^(−½)·γ + β, μ and σ² in two
/// passes over the row (lanes, then the tail), as the Swift kernel it replaces.
INLINE void CAT(layer_norm_row_, SUF)(float *x, int w, const float *res, const float *gamma, const float *beta,
                                      float eps) {
    int i = 0;
    if (res) {
        for (; i + VL <= w; i += VL) VSTORE(x + i, VLOAD(x + i) + VLOAD(res + i));
        for (; i < w; i++) x[i] += res[i];
    }
    V s = VSPLAT(0);
    for (i = 0; i + VL <= w; i += VL) s += VLOAD(x + i);
    float sum = CAT(hsum_, SUF)(s);
    for (; i < w; i++) sum += x[i];
    float mean = sum / (float)w;
    V m = VSPLAT(mean), q = VSPLAT(0);
    for (i = 0; i + VL <= w; i += VL) {
        V d = VLOAD(x + i) - m;
        q += d * d;
    }
    float var = CAT(hsum_, SUF)(q);
    for (; i < w; i++) var += (x[i] - mean) * (x[i] - mean);
    float inv = 1.0f / __builtin_sqrtf(var / (float)w + eps);
    V iv = VSPLAT(inv);
    for (i = 0; i + VL <= w; i += VL) VSTORE(x + i, (VLOAD(x + i) - m) * iv * VLOAD(gamma + i) + VLOAD(beta + i));
    for (; i < w; i++) x[i] = (x[i] - mean) * inv * gamma[i] + beta[i];
}

#undef CAT
#undef CAT_
