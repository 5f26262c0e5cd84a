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
#endif
