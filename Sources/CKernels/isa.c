// Which instruction-set path the kernels run: the best the CPU supports (cpuid, once), or a
// lower one requested through the ALLOY_ISA environment variable.
#include "isa.h"
#include <stdlib.h>
#include <string.h>

/// Written once per thread at worst, always with the same value; −1 until computed.
static int supported_isa = -1, chosen_isa = -1;

int alloy_kernels_isa_supported(void) {
    int s = __atomic_load_n(&supported_isa, __ATOMIC_RELAXED);
    if (s >= 0) return s;
    s = ALLOY_ISA_PORTABLE;
#if ALLOY_X86
    __builtin_cpu_init();
    // compiler-rt and libgcc report AVX and AVX-512 features only when the OS saves their
    // register state (XGETBV), so a kernel without that support is never sent down these paths.
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        s = ALLOY_ISA_AVX2;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
            s = ALLOY_ISA_AVX512;
    }
#endif
    __atomic_store_n(&supported_isa, s, __ATOMIC_RELAXED);
    return s;
}

int alloy_kernels_isa_from_name(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "portable") == 0) return ALLOY_ISA_PORTABLE;
    if (strcmp(name, "avx2") == 0) return ALLOY_ISA_AVX2;
    if (strcmp(name, "avx512") == 0) return ALLOY_ISA_AVX512;
    return -1;
}

const char *alloy_kernels_isa_name(int isa) {
    switch (isa) {
    case ALLOY_ISA_AVX2: return "avx2";
    case ALLOY_ISA_AVX512: return "avx512";
    default: return "portable";
    }
}

int alloy_kernels_isa_choose(const char *requested) {
    int best = alloy_kernels_isa_supported(), r = alloy_kernels_isa_from_name(requested);
    return r >= 0 && r < best ? r : best;
}

int alloy_kernels_isa(void) {
    int c = __atomic_load_n(&chosen_isa, __ATOMIC_RELAXED);
    if (c >= 0) return c;
    c = alloy_kernels_isa_choose(getenv("ALLOY_ISA"));
    __atomic_store_n(&chosen_isa, c, __ATOMIC_RELAXED);
    return c;
}

void alloy_kernels_set_isa(int isa) {
    __atomic_store_n(&chosen_isa, alloy_isa_clamp(isa), __ATOMIC_RELAXED);
}

int alloy_kernels_have_avx2(void) { return alloy_kernels_isa() >= ALLOY_ISA_AVX2; }

void alloy_cpu_relax(void) {
#if ALLOY_X86
    __builtin_ia32_pause();
#endif
}
