#ifndef ALLOY_KERNELS_H
#define ALLOY_KERNELS_H
#include <stddef.h>

// Every kernel has a portable path (any target; SSE2 on x86-64) and, on x86, AVX2+FMA and
// AVX-512 (F, BW, DQ, VL) paths compiled into the same binary. The plain entry points run the
// path `alloy_kernels_isa()` chose; the `_isa` ones run the path asked for, lowered to the best
// this CPU supports (so they never execute an instruction the CPU lacks).

/// The instruction-set paths, in increasing order.
enum { ALLOY_ISA_PORTABLE = 0, ALLOY_ISA_AVX2 = 1, ALLOY_ISA_AVX512 = 2 };

/// The best path this CPU (and OS) supports, from cpuid, computed once.
int alloy_kernels_isa_supported(void);

/// The path the plain entry points run, decided once: the best supported, or the one named by
/// the environment variable ALLOY_ISA (`portable`, `avx2`, `avx512`) when that is lower. A name
/// above what the CPU supports gives the best supported; an unknown name is ignored.
int alloy_kernels_isa(void);

/// For benchmarks: makes `isa` (lowered to what the CPU supports) the path of the plain entry
/// points from now on, replacing the choice `alloy_kernels_isa` made. Calls already running
/// finish on their path; every path computes the same function, so a change while other threads
/// run kernels changes speed, not results beyond rounding.
void alloy_kernels_set_isa(int isa);

/// The choice `alloy_kernels_isa` makes for the value `requested` of ALLOY_ISA (NULL when
/// unset): that path when the CPU supports it, the best supported otherwise.
int alloy_kernels_isa_choose(const char *requested);

/// "portable", "avx2" or "avx512".
const char *alloy_kernels_isa_name(int isa);

/// The path named "portable", "avx2" or "avx512"; −1 for any other string or NULL.
int alloy_kernels_isa_from_name(const char *name);

/// 1 when `alloy_kernels_isa()` is AVX2 or above.
int alloy_kernels_have_avx2(void);

/// Floats of scratch that `alloy_attention_head` needs for a sequence of `length` tokens and
/// heads of width `head_dim`.
size_t alloy_attention_scratch(int length, int head_dim);

/// Scaled dot-product attention of one (sequence, head), single-threaded:
/// ctx_i = Σ_j softmax_j(scale · q_i · k_j) · v_j for i, j < length (Vaswani et al. 2017).
///
/// `q`, `k`, `v` and `ctx` point at the head's first column in the sequence's first row; rows
/// are `stride` floats apart. `scratch` holds `alloy_attention_scratch(length, head_dim)`
/// floats.
void alloy_attention_head(const float *q, const float *k, const float *v, float *ctx,
                          int length, int head_dim, int stride, float scale, float *scratch);

/// `alloy_attention_head` on the path `isa` (lowered to what the CPU supports).
void alloy_attention_head_isa(const float *q, const float *k, const float *v, float *ctx,
                              int length, int head_dim, int stride, float scale, float *scratch, int isa);

/// `alloy_attention_head_isa` with an additive score bias: scores (i, j) become
/// scale · q_i · k_j + bias[i·bias_step + j] before the softmax (MPNet's relative-position bias,
/// Song et al. 2020; a sliding-window mask as −∞ outside the window, ModernBERT). Row-major L×L:
/// bias_step = length; a bias of j − i only: 2·length − 1 values v[r + length − 1] for r = j − i,
/// passed as `v + length − 1` with bias_step = −1. `bias` NULL: none (same as without).
void alloy_attention_head_bias_isa(const float *q, const float *k, const float *v, float *ctx,
                                   int length, int head_dim, int stride, float scale,
                                   const float *bias, ptrdiff_t bias_step, float *scratch, int isa);

/// Floats that `alloy_pack_weights` writes for an n×k weight: ⌈n/16⌉·16·k.
size_t alloy_packed_size(int n, int k);

/// Packs W (n×k, row-major: PyTorch's Linear layout, out × in) for `alloy_linear_packed`:
/// strips of 16 output rows, each stored k-major (w[16s+j][p] at strip s, offset 16p+j), the
/// last strip zero-padded. The same packing serves every path.
void alloy_pack_weights(const float *w, int n, int k, float *packed);

/// Y = X·Wᵀ + bias (Y += … when `accumulate`) for m rows, single-threaded: X is m×k (row
/// stride ldx), Y m×n (row stride ldy), W packed by `alloy_pack_weights`, bias n floats or
/// NULL. Register-blocked micro-kernels (6×16 for AVX2 and portable, 12×32 for AVX-512) over
/// k-blocks of 384 (Goto & van de Geijn 2008, "Anatomy of high-performance matrix
/// multiplication"); callers split the rows over cores.
void alloy_linear_packed(const float *x, int ldx, const float *packed, const float *bias, float *y, int ldy,
                         int m, int n, int k, int accumulate);

/// `alloy_linear_packed` on the path `isa` (lowered to what the CPU supports).
void alloy_linear_packed_isa(const float *x, int ldx, const float *packed, const float *bias, float *y,
                             int ldy, int m, int n, int k, int accumulate, int isa);

/// For benchmarks: runs `iters` rounds of 12 independent vector multiply-adds on the path `isa`
/// (fused on AVX2 and AVX-512) and returns the floating-point operations done. `sink`, when
/// not NULL, seeds the chains and receives their result, so the work is not optimised away.
/// Timing it gives one core's peak for that path.
double alloy_fma_flops_isa(long iters, int isa, float *sink);

/// In place GELU, the exact (erf) form BERT uses: x·½(1 + erf(x/√2)), single-threaded; erf by
/// XLA/Eigen's rational approximation (|error| < 2·10⁻⁷).
void alloy_gelu(float *x, size_t n);

/// `alloy_gelu` on the path `isa` (lowered to what the CPU supports).
void alloy_gelu_isa(float *x, size_t n, int isa);

/// In place LayerNorm of `rows` rows of `width` floats, single-threaded: each row x (after
/// x += residual's row when `residual` is not NULL; same layout) becomes
/// (x − μ)/√(σ² + eps) · gamma + beta, with μ and σ² the row's mean and (biased) variance,
/// computed in two passes.
void alloy_layer_norm(float *x, int rows, int width, const float *residual, const float *gamma,
                      const float *beta, float eps);

/// `alloy_layer_norm` on the path `isa` (lowered to what the CPU supports).
void alloy_layer_norm_isa(float *x, int rows, int width, const float *residual, const float *gamma,
                          const float *beta, float eps, int isa);
#endif
