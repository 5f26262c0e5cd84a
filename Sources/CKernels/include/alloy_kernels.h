#ifndef ALLOY_KERNELS_H
#define ALLOY_KERNELS_H
#include <stddef.h>
#include <stdint.h>

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

/// A spin-wait hint (x86 PAUSE; nothing elsewhere): for threads polling a flag another core sets.
void alloy_cpu_relax(void);

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

/// Bytes `alloy_pack_weights_i8` writes for an n×k weight: ⌈n/16⌉·16 channels × ⌈k/4⌉·4.
size_t alloy_packed_i8_size(int n, int k);
/// Channels (entries of `scale` and `colsum`) for n outputs: n rounded up to 16.
size_t alloy_packed_i8_channels(int n);
/// Bytes of one quantised activation row of k values: k rounded up to 4.
size_t alloy_quantized_row_bytes(int k);

/// Quantises W (n×k, out × in) per output channel to int8 (symmetric, scale = max|w|/127,
/// round to nearest even) and packs it for `alloy_linear_i8_isa`; writes each channel's scale
/// and the sum of its quantised values (`alloy_packed_i8_channels(n)` entries each).
void alloy_pack_weights_i8(const float *w, int n, int k, int8_t *packed, float *scale, int32_t *colsum);

/// Quantises m rows of X (k values, row stride ldx) per row, asymmetrically (ONNX
/// DynamicQuantizeLinear): with [lo, hi] the row's range widened to hold 0, scale = (hi − lo)/255,
/// zero point z = round(−lo/scale), values clamp(round(x/scale) + z, 0, 255) as u8, rows
/// `alloy_quantized_row_bytes(k)` apart (padding z); writes each row's scale and z.
///
/// With `oidx` and `oval` (one each per row), each row's entry of largest magnitude (lowest
/// index among equals) is split out first: its index and value are written there, it leaves
/// the row's range and quantises to z (adding nothing to the integer sums), and
/// `alloy_linear_i8_isa` adds its exact product by the quantised weights. AVX-512 when `isa`
/// allows and the CPU has it (as every `_isa` entry point here), else portable.
void alloy_quantize_rows_u8(const float *x, int ldx, int m, int k, uint8_t *xq, float *xscale, int32_t *xzero,
                            int32_t *oidx, float *oval, int isa);

/// Y = X·Wᵀ + bias (Y += … when `accumulate`) from quantised rows and int8-packed weights, plus
/// each row's split-out entry times its weights when `oidx`/`oval` are given (else NULL);
/// single-threaded; AVX-512 VNNI when `isa` allows and the CPU has it, else portable.
void alloy_linear_i8_isa(const uint8_t *xq, const float *xscale, const int32_t *xzero, const int32_t *oidx, const float *oval,
                         const int8_t *packed, const float *scale, const int32_t *colsum, const float *bias, float *y, int ldy,
                         int m, int n, int k, int accumulate, int isa);

/// 1 when the CPU runs the AVX-512 VNNI integer kernel (and the AVX-512 path is supported).
int alloy_kernels_have_vnni(void);

/// uint16 values `alloy_pack_weights_bf16` writes for an n×k weight: ⌈n/16⌉·16 × ⌈k/2⌉·2.
size_t alloy_packed_bf16_size(int n, int k);
/// uint16 values of one bf16 activation row of k values: k rounded up to 2.
size_t alloy_bf16_row_values(int k);

/// Rounds W (n×k, out × in) to bfloat16 (nearest even) and packs it for `alloy_linear_bf16_isa`.
void alloy_pack_weights_bf16(const float *w, int n, int k, uint16_t *packed);

/// Rounds m rows of X (k values, row stride ldx) to bfloat16, rows `alloy_bf16_row_values(k)` apart.
void alloy_round_rows_bf16(const float *x, int ldx, int m, int k, uint16_t *xb);

/// Y = X·Wᵀ + bias (Y += … when `accumulate`) from bf16 rows and bf16-packed weights with f32
/// sums, single-threaded; AVX-512 BF16 when `isa` allows and the CPU has it, else portable.
void alloy_linear_bf16_isa(const uint16_t *xb, const uint16_t *packed, const float *bias, float *y, int ldy,
                           int m, int n, int k, int accumulate, int isa);

/// 1 when the CPU runs the AVX-512 BF16 kernel (and the AVX-512 path is supported).
int alloy_kernels_have_bf16(void);

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
