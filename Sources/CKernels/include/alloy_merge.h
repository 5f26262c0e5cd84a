#ifndef ALLOY_MERGE_H
#define ALLOY_MERGE_H
#include <stddef.h>
#include <stdint.h>

/// DARE's keep mask (Yu et al. 2024, "Language Models are Super Mario",
/// https://arxiv.org/abs/2311.03099) for entries start..<start+count of one (seed, model, tensor)
/// stream `key`: mask[i] = 1 when the counter-based uniform u(key, start + i) < density, with
/// u = (SplitMix64 finaliser of key + index·φ) >> 40, i.e. 24 bits, compared as an integer with
/// `threshold` = ⌈density·2²⁴⌉. Returns the number of ones. The same bits on every ISA and thread
/// count; AVX-512 (8 lanes of 64-bit multiplies), AVX2 or portable C: the path
/// `alloy_kernels_isa` chose (cpuid, or ALLOY_ISA).
size_t alloy_dare_mask(uint64_t key, int64_t start, size_t count, uint64_t threshold, uint8_t *mask);

/// The portable path of `alloy_dare_mask`, whatever the CPU (for tests).
size_t alloy_dare_mask_portable(uint64_t key, int64_t start, size_t count, uint64_t threshold, uint8_t *mask);

/// One streaming pass of TIES / breadcrumbs threshold selection over entries 0..<count of
/// a = |m − b| (F32): counts the entries whose bit pattern is below `lo` into *below and copies
/// those with bits − lo ≤ `span` (unsigned: the bracket [lo, lo + span] of bit patterns, which
/// orders like the magnitudes, NaN above ∞) to `found`, in index order, while they fit in
/// `capacity`. Returns how many are in the bracket, which may exceed `capacity` (then `found`
/// holds the first `capacity` and the caller scans again with room for all). AVX-512 (16 lanes,
/// compress) or portable C: the path `alloy_kernels_isa` chose; the same results on each.
size_t alloy_bracket_scan(const float *m, const float *b, size_t count, uint32_t lo, uint32_t span,
                          size_t *below, float *found, size_t capacity);

/// The portable path of `alloy_bracket_scan`, whatever the CPU (for tests).
size_t alloy_bracket_scan_portable(const float *m, const float *b, size_t count, uint32_t lo, uint32_t span,
                                   size_t *below, float *found, size_t capacity);

/// TIES / breadcrumbs trimming of one model's τ over n entries: dst[j] = (m[j] − b[j])·scale·weight
/// where lo < |m[j] − b[j]| < hi, else +0. Returns how many are kept; *boundary is 1 when an
/// entry's magnitude equals lo or hi (ties the caller decides in index order), else 0.
size_t alloy_trim_band(const float *m, const float *b, size_t n, float lo, float hi, float scale, float weight,
                       float *dst, int *boundary);
/// `alloy_trim_band` on the path `isa` (lowered to what the CPU supports).
size_t alloy_trim_band_isa(const float *m, const float *b, size_t n, float lo, float hi, float scale, float weight,
                           float *dst, int *boundary, int isa);

/// One model's weighted τ over n entries, dst[j] = (m[j] − b[j])·scale·weight, kept where
/// mask[j] is 1 and +0 where it is 0 (DARE's mask), or everywhere when `mask` is NULL.
void alloy_trim_mask(const float *m, const float *b, size_t n, float scale, float weight, const uint8_t *mask, float *dst);
/// `alloy_trim_mask` on the path `isa` (lowered to what the CPU supports).
void alloy_trim_mask_isa(const float *m, const float *b, size_t n, float scale, float weight, const uint8_t *mask,
                         float *dst, int isa);

/// DARE's rescaling sums over n entries (mergekit `rescaled_masked_tensor`): *before = Σ|m − b|
/// and *after = the same over the entries where mask[j] is 1 (all when `mask` is NULL), in
/// double, as eight interleaved running sums added in lane order: the same bits on every path.
void alloy_l1_sums(const float *m, const float *b, size_t n, const uint8_t *mask, double *before, double *after);
/// `alloy_l1_sums` on the path `isa` (lowered to what the CPU supports).
void alloy_l1_sums_isa(const float *m, const float *b, size_t n, const uint8_t *mask, double *before, double *after, int isa);

/// The mix of generalized task arithmetic (mergekit `generalized_task_arithmetic.py`) over n
/// entries: the models' weighted, trimmed τ are rows of `dw`, `stride` floats apart. Their
/// sum t; with `consensus` (TIES) the sign t ≥ 0 is elected (a NaN sum elects −) and the agreeing
/// entries and their `weights` are summed (a zero weight sum becomes 1), else the sum over
/// `divisor`; then out = b + mixed [÷ weights when `normalize`] · lambda. Summed in model order,
/// without contraction: the same bits on every path. `scratch` holds 3·n floats.
void alloy_gta_mix(const float *dw, size_t stride, size_t models, const float *weights, const float *b, size_t n,
                   int consensus, float divisor, int normalize, float lambda, float *out, float *scratch);
/// `alloy_gta_mix` on the path `isa` (lowered to what the CPU supports).
void alloy_gta_mix_isa(const float *dw, size_t stride, size_t models, const float *weights, const float *b, size_t n,
                       int consensus, float divisor, int normalize, float lambda, float *out, float *scratch, int isa);
#endif
