// Instruction-set selection shared by the kernels. Private to CKernels.
#ifndef ALLOY_ISA_H
#define ALLOY_ISA_H
#include "alloy_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#define ALLOY_X86 1
/// The attributes of the AVX2 and AVX-512 paths: each is a function compiled for its
/// instruction set inside a package built for baseline x86-64, called only when cpuid says the
/// CPU (and the OS, for the AVX-512 state) supports it.
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
#else
#define ALLOY_X86 0
#endif

/// `isa` lowered to the best path this CPU runs that is not above it (ALLOY_ISA_PORTABLE for
/// anything unknown below, the CPU's best for anything above).
static inline int alloy_isa_clamp(int isa) {
    int best = alloy_kernels_isa_supported();
    if (isa > best) return best;
    return isa < ALLOY_ISA_PORTABLE ? ALLOY_ISA_PORTABLE : isa;
}
#endif
