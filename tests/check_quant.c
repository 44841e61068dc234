/*
 * check_quant.c: ggml block dequantization. Each test builds blocks from chosen quants and
 * scales with its own packing code (written from the layout description, in the opposite
 * direction of the library's unpacking), then checks the library against the plain formula
 * x = d * scale * q (- dmin * min); a few literal blocks are decoded by hand as well.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "sg_engine.h"
#include "tensor.h"

Suite *quant_suite(void);

static uint32_t rng(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void put_f16(uint8_t *p, float f)
{
    uint16_t h = sg_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

START_TEST(test_q8_0_literal)
{
    uint8_t b[2 * SG_Q8_0_BYTES];
    float out[64];

    b[0] = 0x00; /* d = 1.0 (0x3C00) */
    b[1] = 0x3C;
    for (int i = 0; i < 32; i++)
        b[2 + i] = (uint8_t)(int8_t)(i - 16);
    b[34] = 0x00; /* d = -0.5 (0xB800) */
    b[35] = 0xB8;
    for (int i = 0; i < 32; i++)
        b[36 + i] = (uint8_t)(i == 0 ? 0x80 : i == 1 ? 0x7F : 0);
    sg_dequant_row(SG_DT_Q8_0, b, out, 64);
    for (int i = 0; i < 32; i++)
        ck_assert(out[i] == (float)(i - 16));
    ck_assert(out[32] == 64.0f);   /* -128 * -0.5 */
    ck_assert(out[33] == -63.5f);  /* 127 * -0.5 */
    ck_assert(out[40] == 0.0f);
}
END_TEST

START_TEST(test_q8_0_random)
{
    enum { NB = 7 };
    uint8_t b[NB * SG_Q8_0_BYTES + 1];
    float out[NB * 32];
    int8_t q[NB][32];
    float d[NB];
    uint32_t s = 99;

    /* at an odd address: blocks are byte-packed in files */
    uint8_t *p = b + 1;
    for (int k = 0; k < NB; k++) {
        d[k] = sg_f16_to_f32(sg_f32_to_f16((float)(rng(&s) % 2000) / 1000.0f - 1.0f));
        put_f16(p + k * SG_Q8_0_BYTES, d[k]);
        for (int i = 0; i < 32; i++) {
            q[k][i] = (int8_t)(rng(&s) & 0xFF);
            p[k * SG_Q8_0_BYTES + 2 + i] = (uint8_t)q[k][i];
        }
    }
    sg_dequant_q8_0(p, out, NB);
    for (int k = 0; k < NB; k++)
        for (int i = 0; i < 32; i++)
            ck_assert(out[k * 32 + i] == (float)((double)d[k] * q[k][i]));
}
END_TEST

START_TEST(test_q4_0_literal)
{
    uint8_t b[SG_Q4_0_BYTES];
    float out[32];

    memset(b, 0x88, sizeof b); /* every quant 8: value 0 */
    b[0] = 0x00;               /* d = 0.5 (0x3800) */
    b[1] = 0x38;
    b[2] = 0x1F;  /* element 0: low nibble F -> (15-8)*0.5; element 16: high nibble 1 -> -3.5 */
    b[17] = 0x0A; /* element 15: 10 -> 1.0; element 31: 0 -> -4.0 */
    sg_dequant_row(SG_DT_Q4_0, b, out, 32);
    ck_assert(out[0] == 3.5f);
    ck_assert(out[16] == -3.5f);
    ck_assert(out[15] == 1.0f);
    ck_assert(out[31] == -4.0f);
    for (int i = 1; i < 15; i++)
        ck_assert(out[i] == 0.0f && out[16 + i] == 0.0f);
}
END_TEST

START_TEST(test_q4_0_random)
{
    enum { NB = 5 };
    uint8_t b[NB * SG_Q4_0_BYTES];
    float out[NB * 32];
    int q[NB][32];
    float d[NB];
    uint32_t s = 7;

    for (int k = 0; k < NB; k++) {
        uint8_t *blk = b + k * SG_Q4_0_BYTES;
        d[k] = sg_f16_to_f32(sg_f32_to_f16((float)(rng(&s) % 1000) / 300.0f));
        put_f16(blk, d[k]);
        for (int i = 0; i < 32; i++)
            q[k][i] = (int)(rng(&s) % 16);
        /* byte j holds element j (low nibble) and element j + 16 (high nibble) */
        for (int j = 0; j < 16; j++)
            blk[2 + j] = (uint8_t)(q[k][j] | q[k][j + 16] << 4);
    }
    sg_dequant_q4_0(b, out, NB);
    for (int k = 0; k < NB; k++)
        for (int i = 0; i < 32; i++)
            ck_assert(out[k * 32 + i] == (float)((double)d[k] * (q[k][i] - 8)));
}
END_TEST

/*
 * Pack eight 6-bit scales and mins the way the Q4_K layout describes: bytes 0..3 and 4..7 hold
 * the low six bits of scales 0..3 and mins 0..3 plus, in their top two bits, bits 4..5 of
 * scales 4..7 and mins 4..7; bytes 8..11 hold bits 0..3 of scale 4+j (low nibble) and of
 * min 4+j (high nibble).
 */
static void pack_q4k_scales(uint8_t out[12], const int sc[8], const int m[8])
{
    for (int j = 0; j < 4; j++) {
        out[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) & 3) << 6);
        out[j + 4] = (uint8_t)((m[j] & 63) | ((m[j + 4] >> 4) & 3) << 6);
        out[j + 8] = (uint8_t)((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
}

/*
 * The literal Q4_K/Q5_K tests' block header in a zeroed block: d = 1.0, dmin = 0.5, and
 *   sc0 = 0x41 & 63 = 1;  m0 = 0x82 & 63 = 2;
 *   sc4 = (0x32 & 15) | (0x41 >> 6) << 4 = 2 | 16 = 18;
 *   m4 = (0x32 >> 4) | (0x82 >> 6) << 4 = 3 | 32 = 35  (all other scales and mins 0).
 */
static void literal_k45_header(uint8_t *b, size_t size)
{
    memset(b, 0, size);
    b[0] = 0x00; /* d = 1.0 */
    b[1] = 0x3C;
    b[2] = 0x00; /* dmin = 0.5 */
    b[3] = 0x38;
    b[4 + 0] = 0x41;
    b[4 + 4] = 0x82;
    b[4 + 8] = 0x32;
}

START_TEST(test_q4_k_literal)
{
    uint8_t b[SG_Q4_K_BYTES];
    float out[256];

    literal_k45_header(b, sizeof b);
    b[16 + 0] = 0x57;  /* element 0 = 1*1*7 - 0.5*2 = 6; element 32 (sub-block 1: sc 0, m 0) = 0 */
    b[16 + 64] = 0x09; /* element 128 (sub-block 4, low nibble) = 18*9 - 0.5*35 = 144.5 */
    b[16 + 65] = 0xF0; /* element 129 = 18*0 - 17.5; element 161 (sub-block 5) = 0 */
    sg_dequant_row(SG_DT_Q4_K, b, out, 256);
    ck_assert(out[0] == 6.0f);
    ck_assert(out[1] == -1.0f);
    ck_assert(out[32] == 0.0f);
    ck_assert(out[128] == 144.5f);
    ck_assert(out[129] == -17.5f);
    ck_assert(out[161] == 0.0f);
    ck_assert(out[64] == 0.0f); /* sub-block 2: scale and min 0 */
}
END_TEST

/*
 * Q4_K (bits 4) or Q5_K (bits 5) on three blocks of random d, dmin, 6-bit scales and mins (the
 * scale of sub-block sc_max and the min of m_max forced to 63, so that every bit of the packing
 * is exercised) and random quants, against d * sc[j] * q - dmin * m[j].
 */
static void check_k45_random(int bits, uint32_t s, int sc_max, int m_max)
{
    enum { NB = 3 };
    const size_t bytes = bits == 4 ? SG_Q4_K_BYTES : SG_Q5_K_BYTES;
    const int qs = bits == 4 ? 16 : 48; /* the low nibbles; Q5_K's qh is at byte 16 */
    uint8_t b[NB * SG_Q5_K_BYTES];
    float out[NB * 256];
    int q[NB][256], sc[NB][8], m[NB][8];
    float d[NB], dmin[NB];

    memset(b, 0, sizeof b);
    for (int k = 0; k < NB; k++) {
        uint8_t *blk = b + k * bytes;
        d[k] = sg_f16_to_f32(sg_f32_to_f16((float)(rng(&s) % 1000 + 1) / 7000.0f));
        dmin[k] = sg_f16_to_f32(sg_f32_to_f16((float)(rng(&s) % 1000) / 9000.0f));
        put_f16(blk, d[k]);
        put_f16(blk + 2, dmin[k]);
        for (int j = 0; j < 8; j++) {
            sc[k][j] = (int)(rng(&s) % 64);
            m[k][j] = (int)(rng(&s) % 64);
        }
        sc[k][sc_max] = 63;
        m[k][m_max] = 63;
        pack_q4k_scales(blk + 4, sc[k], m[k]);
        for (int i = 0; i < 256; i++)
            q[k][i] = (int)(rng(&s) % (1u << bits));
        if (bits == 5)
            q[k][3] = 31;
        /* element i: sub-block j = i / 32, l = i % 32; pair p = j / 2 owns qs[32p .. 32p + 31]:
         * even j takes the low nibbles, odd j the high nibbles; Q5_K's fifth bit is bit j of
         * qh[l] (byte 16 + l) */
        for (int i = 0; i < 256; i++) {
            int j = i / 32, l = i % 32;
            uint8_t *byte = &blk[qs + 32 * (j / 2) + l];
            int lo = q[k][i] & 15;
            if (j % 2 == 0)
                *byte = (uint8_t)((*byte & 0xF0) | lo);
            else
                *byte = (uint8_t)((*byte & 0x0F) | lo << 4);
            if (q[k][i] & 16)
                blk[16 + l] = (uint8_t)(blk[16 + l] | 1 << j);
        }
    }
    if (bits == 4)
        sg_dequant_q4_k(b, out, NB);
    else
        sg_dequant_q5_k(b, out, NB);
    for (int k = 0; k < NB; k++)
        for (int i = 0; i < 256; i++) {
            int j = i / 32;
            double want = (double)d[k] * sc[k][j] * q[k][i] - (double)dmin[k] * m[k][j];
            ck_assert_msg(fabs(out[k * 256 + i] - want) <= 1e-6 * (1 + fabs(want)),
                          "Q%d_K block %d element %d: %g, want %g", bits, k, i,
                          (double)out[k * 256 + i], want);
        }
}

START_TEST(test_q4_k_random)
{
    check_k45_random(4, 2024, 7, 6);
}
END_TEST

START_TEST(test_q5_k_literal)
{
    uint8_t b[SG_Q5_K_BYTES];
    float out[256];

    literal_k45_header(b, sizeof b); /* sc0 = 1, m0 = 2, sc4 = 18, m4 = 35 */
    b[16 + 0] = 0x01 | 0x10; /* qh[0]: bit 0 (sub-block 0) and bit 4 (sub-block 4) */
    b[16 + 1] = 0x02;        /* qh[1]: bit 1 (sub-block 1, which has scale 0) */
    b[48 + 0] = 0x57;        /* qs[0]: element 0 = 1 * (7 + 16) - 0.5 * 2 = 22 */
    b[48 + 1] = 0x03;        /* element 1 = 1 * 3 - 1 = 2 */
    b[48 + 64] = 0x09;       /* element 128 = 18 * (9 + 16) - 0.5 * 35 = 432.5 */
    sg_dequant_row(SG_DT_Q5_K, b, out, 256);
    ck_assert(out[0] == 22.0f);
    ck_assert(out[1] == 2.0f);
    ck_assert(out[2] == -1.0f);
    ck_assert(out[32] == 0.0f);
    ck_assert(out[33] == 0.0f);
    ck_assert(out[128] == 432.5f);
    ck_assert(out[129] == -17.5f);
}
END_TEST

START_TEST(test_q5_k_random)
{
    check_k45_random(5, 555, 5, 7);
}
END_TEST

START_TEST(test_q6_k_literal)
{
    uint8_t b[SG_Q6_K_BYTES];
    float out[256];

    memset(b, 0, sizeof b);
    int8_t *scales = (int8_t *)(b + 192);
    b[208] = 0x00; /* d = 0.25 (0x3400), stored last */
    b[209] = 0x34;
    scales[0] = 2;
    scales[2] = -3;
    scales[4] = 1;
    scales[6] = -1;
    scales[8] = 4;
    b[0] = 0xA5;       /* ql[0] */
    b[32] = 0x0C;      /* ql[32] */
    b[128] = 0xE4;     /* qh[0] = 11 10 01 00 */
    /* element 0: 5 | 0 << 4 = 5 -> 0.25 * 2 * (5 - 32) = -13.5
     * element 32: 12 | 1 << 4 = 28 -> 0.25 * -3 * -4 = 3
     * element 64: 10 | 2 << 4 = 42 -> 0.25 * 1 * 10 = 2.5
     * element 96: 0 | 3 << 4 = 48 -> 0.25 * -1 * 16 = -4 */
    b[64] = 0x03;      /* ql[64]: element 128 (second half), low nibble 3 */
    b[128 + 32] = 0x02; /* qh[32] bits 0-1 = 2 -> q = 3 | 32 = 35 -> 0.25 * 4 * 3 = 3 */
    sg_dequant_row(SG_DT_Q6_K, b, out, 256);
    ck_assert(out[0] == -13.5f);
    ck_assert(out[32] == 3.0f);
    ck_assert(out[64] == 2.5f);
    ck_assert(out[96] == -4.0f);
    ck_assert(out[128] == 3.0f);
    ck_assert(out[1] == 0.25f * 2 * -32);
    ck_assert(out[16] == 0.0f); /* scale 1 is 0 */
}
END_TEST

START_TEST(test_q6_k_random)
{
    enum { NB = 3 };
    uint8_t b[NB * SG_Q6_K_BYTES];
    float out[NB * 256];
    int q[NB][256], sc[NB][16];
    float d[NB];
    uint32_t s = 31337;

    memset(b, 0, sizeof b);
    for (int k = 0; k < NB; k++) {
        uint8_t *blk = b + k * SG_Q6_K_BYTES;
        d[k] = sg_f16_to_f32(sg_f32_to_f16((float)(rng(&s) % 1000 + 1) / 50000.0f));
        put_f16(blk + 208, d[k]);
        for (int j = 0; j < 16; j++) {
            sc[k][j] = (int)(int8_t)(rng(&s) & 0xFF);
            blk[192 + j] = (uint8_t)(int8_t)sc[k][j];
        }
        for (int i = 0; i < 256; i++)
            q[k][i] = (int)(rng(&s) % 64);
        q[k][5] = 63;
        q[k][200] = 0;
        /* element i: half h = i / 128 (64 bytes of ql, 32 of qh each); within it, quarter
         * r = (i % 128) / 32 and l = i % 32. The low four bits go to ql[64h + l] (r = 0, 2) or
         * ql[64h + 32 + l] (r = 1, 3), low nibble for r < 2 and high nibble otherwise; the
         * high two bits go to qh[32h + l] at bit 2r. */
        for (int i = 0; i < 256; i++) {
            int h = i / 128, r = (i % 128) / 32, l = i % 32;
            uint8_t *ql = &blk[64 * h + (r % 2) * 32 + l];
            uint8_t *qh = &blk[128 + 32 * h + l];
            int lo = q[k][i] & 15, hi = q[k][i] >> 4;
            if (r < 2)
                *ql = (uint8_t)((*ql & 0xF0) | lo);
            else
                *ql = (uint8_t)((*ql & 0x0F) | lo << 4);
            *qh = (uint8_t)(*qh | hi << (2 * r));
        }
    }
    sg_dequant_q6_k(b, out, NB);
    for (int k = 0; k < NB; k++)
        for (int i = 0; i < 256; i++) {
            double want = (double)d[k] * sc[k][i / 16] * (q[k][i] - 32);
            ck_assert_msg(fabs(out[k * 256 + i] - want) <= 1e-6 * (1 + fabs(want)),
                          "block %d element %d: %g, want %g", k, i, (double)out[k * 256 + i],
                          want);
        }
}
END_TEST

Suite *quant_suite(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_q8_0_literal);
    tcase_add_test(tc, test_q8_0_random);
    tcase_add_test(tc, test_q4_0_literal);
    tcase_add_test(tc, test_q4_0_random);
    tcase_add_test(tc, test_q4_k_literal);
    tcase_add_test(tc, test_q4_k_random);
    tcase_add_test(tc, test_q5_k_literal);
    tcase_add_test(tc, test_q5_k_random);
    tcase_add_test(tc, test_q6_k_literal);
    tcase_add_test(tc, test_q6_k_random);
    suite_add_tcase(s, tc);
    return s;
}
