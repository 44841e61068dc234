#ifndef SG_CPU_H
#define SG_CPU_H
/*
 * cpu.h (internal to engine/): the one CPU feature probe. Kernels ask it which instructions
 * this CPU runs; on anything but x86-64 with GCC or clang every feature reads as absent (the
 * portable paths then run). Cheap enough to ask at every call (__builtin_cpu_supports reads a
 * word libgcc fills at start-up).
 */

typedef enum sg_cpu_feature {
    SG_CPU_AVX2_FMA = 0, /* AVX2 and FMA: the avx2 matrix, attention and element-wise kernels */
    SG_CPU_AVX512_VNNI,  /* AVX-512 VNNI: oneDNN's int8 products cannot saturate */
    SG_CPU_FEATURE_COUNT
} sg_cpu_feature;

/* 1 if this CPU has `f`, else 0. */
int sg_cpu_has(sg_cpu_feature f);

#endif /* SG_CPU_H */
