#ifndef SG_VMATH_H
#define SG_VMATH_H
/*
 * vmath.h (internal to engine/): exp and tanh on 8 floats at a time, written with the GCC/clang
 * vector extension so that the same source compiles to SSE2 in a portable function and to AVX2
 * in a function marked __attribute__((target("avx2,fma"))) that inlines it. No multiply-add
 * is fused (GCC in ISO C mode does not contract; for clang the pragma below says so), so both
 * compilations give the same bits for the same input: results do not depend on which path a
 * CPU takes.
 *
 * Accuracy (tests/check_ops.c measures it over a dense range):
 *   sg_v8_exp   within 2 ulp of expf for x in [-87.3, 88.7]; 0 below (including -inf, so a
 *               masked score exp(-inf - max) is exactly 0), +inf above, NaN stays NaN.
 *   sg_v8_tanh  within 4 ulp of tanhf everywhere; +-1 for |x| >= 9.5 and +-inf, NaN stays
 *               NaN, the sign of zero is kept.
 * Algorithms: Cephes expf (range reduction by ln 2 split in two constants, degree-5
 * polynomial, 2^n built in the exponent bits) and Cephes tanhf (odd polynomial below 0.625,
 * 1 - 2 / (exp(2|x|) + 1) above).
 */

#include <stdint.h>

/*
 * Every function here is always inlined, so no 32-byte vector really crosses a call; still,
 * GCC notes an ABI change for any 32-byte vector parameter of a function compiled without AVX
 * (a note that no pragma silences), so vectors go in through pointers or macros.
 */
/* Clang contracts a * b + c into an FMA by default where the target has one; not here. */
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpsabi"
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

typedef float sg_v8f __attribute__((vector_size(32)));
typedef int32_t sg_v8i __attribute__((vector_size(32)));

#define SG_VINLINE static inline __attribute__((always_inline))

/* All lanes a. */
SG_VINLINE sg_v8f sg_v8_splat(float a)
{
    sg_v8f v = {a, a, a, a, a, a, a, a};

    return v;
}

/* Lane i: m[i] ? a[i] : b[i], where each m[i] is 0 or -1 (a vector comparison's result). */
#define sg_v8_sel(m, a, b) ((sg_v8f)(((m) & (sg_v8i)(a)) | (~(m) & (sg_v8i)(b))))

/* exp(x) lane by lane (see the header comment for range and accuracy). */
SG_VINLINE sg_v8f sg_v8_exp(const sg_v8f *px)
{
    const sg_v8f x = *px;
    const float hi = 88.3762626647949f;
    const float lo = -87.3365447504019f;
    const sg_v8f round = sg_v8_splat(12582912.0f); /* 1.5 * 2^23: adding it rounds to integer */
    sg_v8f xc = sg_v8_sel(x > hi, sg_v8_splat(hi), x);
    sg_v8f n, r, y;
    sg_v8i e;

    xc = sg_v8_sel(xc < lo, sg_v8_splat(lo), xc);
    /* n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 = C1 - C2, C1 exact). */
    n = (xc * 1.44269504088896341f + round) - round;
    r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    y = sg_v8_splat(1.9875691500e-4f);
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * (r * r) + r + 1.0f;
    /* 2^n for n in [-126, 127]: the biased exponent in place. */
    e = (__builtin_convertvector(n, sg_v8i) + 127) << 23;
    y = y * (sg_v8f)e;
    y = sg_v8_sel(x < lo, sg_v8_splat(0.0f), y);
    y = sg_v8_sel(x > hi, sg_v8_splat(__builtin_inff()), y);
    return sg_v8_sel(x != x, x, y);
}

/* tanh(x) lane by lane (see the header comment for accuracy and special values). */
SG_VINLINE sg_v8f sg_v8_tanh(const sg_v8f *px)
{
    const sg_v8f x = *px;
    const sg_v8i sign = (sg_v8i)x & INT32_MIN;
    const sg_v8f a = (sg_v8f)((sg_v8i)x & 0x7fffffff);
    const sg_v8f z = a * a;
    sg_v8f p, small, big, ac, e;

    /* |x| < 0.625: tanh x = x + x^3 P(x^2). */
    p = sg_v8_splat(-5.70498872745e-3f);
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    small = a + a * z * p;
    /* Otherwise 1 - 2 / (exp(2|x|) + 1); past 9.5 that is 1 in f32, so clamp (no overflow). */
    ac = sg_v8_sel(a > 9.5f, sg_v8_splat(9.5f), a);
    ac = ac + ac;
    e = sg_v8_exp(&ac);
    big = 1.0f - 2.0f / (e + 1.0f);
    p = sg_v8_sel(a < 0.625f, small, big);
    return (sg_v8f)((sg_v8i)p | sign);
}

#endif /* SG_VMATH_H */
