/* cpu.c: the one CPU feature probe (see cpu.h). */
#include "cpu.h"

int sg_cpu_has(sg_cpu_feature f)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    switch (f) {
    case SG_CPU_AVX2_FMA:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case SG_CPU_AVX512_VNNI:
        return __builtin_cpu_supports("avx512vnni");
    default:
        return 0;
    }
#else
    (void)f;
    return 0;
#endif
}
