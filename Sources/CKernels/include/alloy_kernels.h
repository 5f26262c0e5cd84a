#ifndef ALLOY_KERNELS_H
#define ALLOY_KERNELS_H
#include <stddef.h>

/// Floats of scratch that `alloy_attention_head` needs for a sequence of `length` tokens and
/// heads of width `head_dim`.
size_t alloy_attention_scratch(int length, int head_dim);

/// Scaled dot-product attention of one (sequence, head), single-threaded:
/// ctx_i = Σ_j softmax_j(scale · q_i · k_j) · v_j for i, j < length (Vaswani et al. 2017).
///
/// `q`, `k`, `v` and `ctx` point at the head's first column in the sequence's first row; rows
/// are `stride` floats apart. `scratch` holds `alloy_attention_scratch(length, head_dim)`
/// floats. Uses AVX2+FMA when the CPU has them, portable C otherwise.
void alloy_attention_head(const float *q, const float *k, const float *v, float *ctx,
                          int length, int head_dim, int stride, float scale, float *scratch);

/// The portable path of `alloy_attention_head`, whatever the CPU (for tests).
void alloy_attention_head_portable(const float *q, const float *k, const float *v, float *ctx,
                                   int length, int head_dim, int stride, float scale, float *scratch);

/// Floats that `alloy_pack_weights` writes for an n×k weight: ⌈n/16⌉·16·k.
size_t alloy_packed_size(int n, int k);

/// Packs W (n×k, row-major: PyTorch's Linear layout, out × in) for `alloy_linear_packed`:
/// strips of 16 output rows, each stored k-major (w[16s+j][p] at strip s, offset 16p+j), the
/// last strip zero-padded.
void alloy_pack_weights(const float *w, int n, int k, float *packed);

/// Y = X·Wᵀ + bias (Y += … when `accumulate`) for m rows, single-threaded: X is m×k (row
/// stride ldx), Y m×n (row stride ldy), W packed by `alloy_pack_weights`, bias n floats or NULL. Register-blocked 6×16
/// micro-kernel over k-blocks of 384 (Goto & van de Geijn 2008, "Anatomy of high-performance
/// matrix multiplication"); callers split the rows over cores.
void alloy_linear_packed(const float *x, int ldx, const float *packed, const float *bias, float *y, int ldy,
                         int m, int n, int k, int accumulate);

/// The portable path of `alloy_linear_packed`, whatever the CPU (for tests).
void alloy_linear_packed_portable(const float *x, int ldx, const float *packed, const float *bias, float *y,
                                  int ldy, int m, int n, int k, int accumulate);

/// In place GELU, the exact (erf) form BERT uses: x·½(1 + erf(x/√2)), single-threaded; erf by
/// XLA/Eigen's rational approximation (|error| < 2·10⁻⁷).
void alloy_gelu(float *x, size_t n);

/// The portable path of `alloy_gelu`, whatever the CPU (for tests).
void alloy_gelu_portable(float *x, size_t n);

/// 1 when the kernels run their AVX2+FMA paths on this CPU.
int alloy_kernels_have_avx2(void);
#endif
