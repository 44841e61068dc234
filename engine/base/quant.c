/*
 * quant.c: dequantization of ggml's Q8_0, Q4_0, Q4_K, Q5_K and Q6_K blocks (layouts in quant.h).
 * The arithmetic is done in float in the same order as ggml's reference dequantizers, so the
 * values are bit-identical to what llama.cpp computes from the same bytes.
 */
#include "quant.h"

#include <string.h>

#include "tensor.h"

/* Little-endian f16 at p (no alignment assumed). */
static float ld_f16(const uint8_t *p)
{
    return sg_f16_to_f32((uint16_t)(p[0] | (p[1] << 8)));
}

/* x[i] = d * q[i] */
void sg_dequant_q8_0(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;

    for (int64_t i = 0; i < nb; i++, b += SG_Q8_0_BYTES, dst += SG_Q8_0_BLOCK) {
        const float d = ld_f16(b);
        const int8_t *q = (const int8_t *)(b + 2);

        for (int j = 0; j < SG_Q8_0_BLOCK; j++)
            dst[j] = (float)q[j] * d;
    }
}

/* x[j] = d * (lo(qs[j]) - 8), x[j + 16] = d * (hi(qs[j]) - 8) */
void sg_dequant_q4_0(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;

    for (int64_t i = 0; i < nb; i++, b += SG_Q4_0_BYTES, dst += SG_Q4_0_BLOCK) {
        const float d = ld_f16(b);
        const uint8_t *qs = b + 2;

        for (int j = 0; j < SG_Q4_0_BLOCK / 2; j++) {
            dst[j] = (float)((qs[j] & 0x0F) - 8) * d;
            dst[j + SG_Q4_0_BLOCK / 2] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

/*
 * The 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes `s`:
 *   j < 4:  sc = s[j] & 63,                          m = s[j + 4] & 63
 *   j >= 4: sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4,  m = (s[j + 4] >> 4) | (s[j] >> 6) << 4
 * i.e. bytes 0..3 hold the low six bits of scales 0..3, bytes 4..7 those of mins 0..3, bytes
 * 8..11 the low nibbles of scales 4..7 (low half) and mins 4..7 (high half), and the top two
 * bits of bytes 0..3 / 4..7 carry the high bits of scales / mins 4..7.
 */
static void q4k_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/*
 * The factors of sub-blocks 2j and 2j + 1 of a Q4_K/Q5_K block with super-scales d and dmin:
 * *d1 = d * sc[2j], *m1 = dmin * m[2j], *d2 = d * sc[2j + 1], *m2 = dmin * m[2j + 1].
 */
static void q4k_pair(const uint8_t *scales, int j, float d, float dmin, float *d1, float *m1,
                     float *d2, float *m2)
{
    uint8_t sc, m;

    q4k_scale_min(2 * j, scales, &sc, &m);
    *d1 = d * sc;
    *m1 = dmin * m;
    q4k_scale_min(2 * j + 1, scales, &sc, &m);
    *d2 = d * sc;
    *m2 = dmin * m;
}

/* x = (d * sc[j]) * q - dmin * m[j], sub-block j of 32 values */
void sg_dequant_q4_k(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;

    for (int64_t i = 0; i < nb; i++, b += SG_Q4_K_BYTES) {
        const float d = ld_f16(b);
        const float dmin = ld_f16(b + 2);
        const uint8_t *scales = b + 4;
        const uint8_t *q = b + 16;

        /* Each 32 bytes of qs carry two sub-blocks: low nibbles first, then high nibbles. */
        for (int j = 0; j < SG_QK_K / 64; j++, q += 32) {
            float d1, m1, d2, m2;

            q4k_pair(scales, j, d, dmin, &d1, &m1, &d2, &m2);
            for (int l = 0; l < 32; l++)
                *dst++ = d1 * (float)(q[l] & 0x0F) - m1;
            for (int l = 0; l < 32; l++)
                *dst++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

/* x = (d * sc[j]) * (q + 16 * bit j of qh[l]) - dmin * m[j], sub-block j of 32 values */
void sg_dequant_q5_k(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;

    for (int64_t i = 0; i < nb; i++, b += SG_Q5_K_BYTES) {
        const float d = ld_f16(b);
        const float dmin = ld_f16(b + 2);
        const uint8_t *scales = b + 4;
        const uint8_t *qh = b + 16;
        const uint8_t *q = b + 48;

        for (int j = 0; j < SG_QK_K / 64; j++, q += 32) {
            const uint8_t lo_bit = (uint8_t)(1u << (2 * j));
            const uint8_t hi_bit = (uint8_t)(2u << (2 * j));
            float d1, m1, d2, m2;

            q4k_pair(scales, j, d, dmin, &d1, &m1, &d2, &m2);
            for (int l = 0; l < 32; l++)
                *dst++ = d1 * (float)((q[l] & 0x0F) + (qh[l] & lo_bit ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++)
                *dst++ = d2 * (float)((q[l] >> 4) + (qh[l] & hi_bit ? 16 : 0)) - m2;
        }
    }
}

/*
 * x = (d * scales[k]) * (q - 32). Each half of 128 values uses 64 bytes of ql, 32 of qh and 8
 * scales; for l = 0..31 of a half:
 *   value l      : low nibble of ql[l]       | bits 0-1 of qh[l] << 4,  scale (l / 16)
 *   value l + 32 : low nibble of ql[l + 32]  | bits 2-3 of qh[l] << 4,  scale (l / 16) + 2
 *   value l + 64 : high nibble of ql[l]      | bits 4-5 of qh[l] << 4,  scale (l / 16) + 4
 *   value l + 96 : high nibble of ql[l + 32] | bits 6-7 of qh[l] << 4,  scale (l / 16) + 6
 */
void sg_dequant_q6_k(const void *src, float *dst, int64_t nb)
{
    const uint8_t *b = src;

    for (int64_t i = 0; i < nb; i++, b += SG_Q6_K_BYTES) {
        const uint8_t *ql = b;
        const uint8_t *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        const float d = ld_f16(b + 208);

        for (int half = 0; half < 2; half++, ql += 64, qh += 32, sc += 8, dst += 128) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;

                dst[l] = d * (float)sc[is] * (float)q1;
                dst[l + 32] = d * (float)sc[is + 2] * (float)q2;
                dst[l + 64] = d * (float)sc[is + 4] * (float)q3;
                dst[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}
