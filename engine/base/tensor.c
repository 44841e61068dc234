/* tensor.c: dtypes, row conversion to f32, and the weight set's lookup and release. */
#include "tensor.h"

#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "quant.h"

static const struct {
    const char *name;
    int64_t block;
    size_t block_bytes;
} dtypes[SG_DT_COUNT] = {
    [SG_DT_F32] = {"F32", 1, 4},
    [SG_DT_F16] = {"F16", 1, 2},
    [SG_DT_BF16] = {"BF16", 1, 2},
    [SG_DT_Q8_0] = {"Q8_0", SG_Q8_0_BLOCK, SG_Q8_0_BYTES},
    [SG_DT_Q4_0] = {"Q4_0", SG_Q4_0_BLOCK, SG_Q4_0_BYTES},
    [SG_DT_Q4_K] = {"Q4_K", SG_QK_K, SG_Q4_K_BYTES},
    [SG_DT_Q6_K] = {"Q6_K", SG_QK_K, SG_Q6_K_BYTES},
    [SG_DT_Q5_K] = {"Q5_K", SG_QK_K, SG_Q5_K_BYTES},
};

static int dtype_ok(sg_dtype dt)
{
    return (int)dt >= 0 && dt < SG_DT_COUNT;
}

const char *sg_dtype_name(sg_dtype dt)
{
    return dtype_ok(dt) ? dtypes[dt].name : "?";
}

int64_t sg_dtype_block(sg_dtype dt)
{
    return dtype_ok(dt) ? dtypes[dt].block : 0;
}

size_t sg_dtype_block_bytes(sg_dtype dt)
{
    return dtype_ok(dt) ? dtypes[dt].block_bytes : 0;
}

/* Also SG_EINVAL for a dtype out of range or a negative count. */
int sg_dtype_bytes(sg_dtype dt, int64_t n, size_t *bytes)
{
    if (!dtype_ok(dt) || n < 0)
        return SG_EINVAL;
    if (n % dtypes[dt].block != 0)
        return SG_ESHAPE;
    uint64_t blocks = (uint64_t)(n / dtypes[dt].block);
    if (blocks > SIZE_MAX / dtypes[dt].block_bytes)
        return SG_ERANGE;
    *bytes = (size_t)blocks * dtypes[dt].block_bytes;
    return SG_OK;
}

int64_t sg_tensor_nelem(const sg_tensor *t)
{
    int64_t n = 1;

    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

void sg_dequant_row(sg_dtype dt, const void *src, float *dst, int64_t n)
{
    const uint8_t *p = src;

    switch (dt) {
    case SG_DT_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case SG_DT_F16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = sg_f16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        break;
    case SG_DT_BF16:
        for (int64_t i = 0; i < n; i++)
            dst[i] = sg_bf16_to_f32((uint16_t)(p[2 * i] | (p[2 * i + 1] << 8)));
        break;
    case SG_DT_Q8_0:
        sg_dequant_q8_0(src, dst, n / SG_Q8_0_BLOCK);
        break;
    case SG_DT_Q4_0:
        sg_dequant_q4_0(src, dst, n / SG_Q4_0_BLOCK);
        break;
    case SG_DT_Q4_K:
        sg_dequant_q4_k(src, dst, n / SG_QK_K);
        break;
    case SG_DT_Q5_K:
        sg_dequant_q5_k(src, dst, n / SG_QK_K);
        break;
    case SG_DT_Q6_K:
        sg_dequant_q6_k(src, dst, n / SG_QK_K);
        break;
    default:
        break;
    }
}

static float bits_to_f32(uint32_t u)
{
    float f;

    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f)
{
    uint32_t u;

    memcpy(&u, &f, sizeof u);
    return u;
}

/* binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
float sg_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t man = h & 0x3FF;

    if (exp == 0x1F) /* inf or NaN (payload kept) */
        return bits_to_f32(sign | 0x7F800000u | (man << 13));
    if (exp == 0) {
        if (man == 0)
            return bits_to_f32(sign);
        /* Subnormal: man * 2^-24, normalised into an f32 (always representable). */
        exp = 127 - 15 + 1;
        while (!(man & 0x400)) {
            man <<= 1;
            exp--;
        }
        man &= 0x3FF;
        return bits_to_f32(sign | (exp << 23) | (man << 13));
    }
    return bits_to_f32(sign | ((exp + 127 - 15) << 23) | (man << 13));
}

float sg_bf16_to_f32(uint16_t b)
{
    return bits_to_f32((uint32_t)b << 16);
}

uint16_t sg_f32_to_bf16(float f)
{
    uint32_t u = f32_to_bits(f);

    if ((u & 0x7FFFFFFFu) > 0x7F800000u) /* NaN: keep the sign, force a quiet mantissa bit */
        return (uint16_t)((u >> 16) | 0x40);
    /* Round to nearest, ties to even: add 0x7FFF plus the lowest kept bit. Overflow of the
     * largest finite values rounds into the exponent and gives infinity, as it should. */
    u += 0x7FFFu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* Round to nearest even, overflow to infinity, gradual underflow to subnormals and zero. */
uint16_t sg_f32_to_f16(float f)
{
    const uint32_t u = f32_to_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    const int32_t exp = (int32_t)((u >> 23) & 0xFF);
    uint32_t man = u & 0x7FFFFF;

    if (exp == 0xFF) /* inf, or NaN kept quiet */
        return (uint16_t)(sign | 0x7C00 | (man ? 0x200 | (man >> 13) : 0));
    int32_t e = exp - 127 + 15; /* biased f16 exponent */
    if (e >= 0x1F)
        return (uint16_t)(sign | 0x7C00);
    if (e <= 0) {
        /* Subnormal or zero: the value is (1.man) * 2^(exp-127); as an f16 subnormal its
         * mantissa is that times 2^24, i.e. (man | 1<<23) >> (14 - e), rounded. */
        if (e < -10)
            return sign; /* below half the smallest subnormal: rounds to zero */
        man |= 0x800000;
        const int shift = 14 - e;
        uint32_t q = man >> shift;
        const uint32_t rem = man & ((1u << shift) - 1);
        const uint32_t halfway = 1u << (shift - 1);
        if (rem > halfway || (rem == halfway && (q & 1)))
            q++; /* may carry into the smallest normal: still the right encoding */
        return (uint16_t)(sign | q);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13);
    const uint32_t rem = man & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++; /* a carry into the exponent is correct, up to infinity */
    return (uint16_t)(sign | h);
}

const sg_tensor *sg_weights_find(const sg_weights *w, const char *name)
{
    if (!w || !name)
        return NULL;
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return &w->tensors[i];
    return NULL;
}

void sg_weights_free(sg_weights *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_maps; i++)
        if (w->maps && w->maps[i] && w->map_sizes)
            munmap(w->maps[i], w->map_sizes[i]);
    free(w->maps);
    free(w->map_sizes);
    free(w->tensors);
    if (w->gguf != NULL && w->close_gguf != NULL)
        w->close_gguf(w->gguf);
    memset(w, 0, sizeof *w);
}
