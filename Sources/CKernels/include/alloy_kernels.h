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

/// 1 when `alloy_attention_head` runs its AVX2+FMA path on this CPU.
int alloy_kernels_have_avx2(void);
#endif
