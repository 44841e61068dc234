/* check_tensor.c: dtypes, half/bfloat16 conversions, row conversion, the weight set. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "sg_engine.h"
#include "tensor.h"

Suite *tensor_suite(void);

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

START_TEST(test_dtype_table)
{
    size_t b = 0;

    ck_assert_str_eq(sg_dtype_name(SG_DT_F32), "F32");
    ck_assert_str_eq(sg_dtype_name(SG_DT_BF16), "BF16");
    ck_assert_str_eq(sg_dtype_name(SG_DT_Q4_K), "Q4_K");
    ck_assert_str_eq(sg_dtype_name(SG_DT_Q6_K), "Q6_K");
    ck_assert_str_eq(sg_dtype_name(SG_DT_COUNT), "?");
    ck_assert_str_eq(sg_dtype_name((sg_dtype)-1), "?");
    ck_assert_int_eq(sg_dtype_block(SG_DT_F16), 1);
    ck_assert_int_eq(sg_dtype_block(SG_DT_Q8_0), 32);
    ck_assert_int_eq(sg_dtype_block(SG_DT_Q4_0), 32);
    ck_assert_int_eq(sg_dtype_block(SG_DT_Q4_K), 256);
    ck_assert_int_eq(sg_dtype_block(SG_DT_COUNT), 0);
    ck_assert_uint_eq(sg_dtype_block_bytes(SG_DT_Q8_0), 34);
    ck_assert_uint_eq(sg_dtype_block_bytes(SG_DT_Q4_0), 18);
    ck_assert_uint_eq(sg_dtype_block_bytes(SG_DT_Q4_K), 144);
    ck_assert_uint_eq(sg_dtype_block_bytes(SG_DT_Q6_K), 210);
    ck_assert_uint_eq(sg_dtype_block_bytes(SG_DT_Q5_K), 176);
    ck_assert_str_eq(sg_dtype_name(SG_DT_Q5_K), "Q5_K");
    ck_assert_int_eq(sg_dtype_block(SG_DT_Q5_K), 256);
    ck_assert_uint_eq(sg_dtype_block_bytes(SG_DT_COUNT), 0);

    ck_assert_int_eq(sg_dtype_bytes(SG_DT_F32, 10, &b), SG_OK);
    ck_assert_uint_eq(b, 40);
    ck_assert_int_eq(sg_dtype_bytes(SG_DT_BF16, 0, &b), SG_OK);
    ck_assert_uint_eq(b, 0);
    ck_assert_int_eq(sg_dtype_bytes(SG_DT_Q4_K, 512, &b), SG_OK);
    ck_assert_uint_eq(b, 288);
    ck_assert_int_eq(sg_dtype_bytes(SG_DT_Q6_K, 256 * 3, &b), SG_OK);
    ck_assert_uint_eq(b, 630);
    ck_assert_int_eq(sg_dtype_bytes(SG_DT_Q8_0, 64, &b), SG_OK);
    ck_assert_uint_eq(b, 68);
    b = 7;
    ck_assert_int_eq(sg_dtype_bytes(SG_DT_Q4_K, 100, &b), SG_ESHAPE);
    ck_assert_int_eq(sg_dtype_bytes(SG_DT_Q4_0, 33, &b), SG_ESHAPE);
    ck_assert_uint_eq(b, 7);
    ck_assert_int_eq(sg_dtype_bytes(SG_DT_F32, INT64_MAX, &b), SG_ERANGE);
    ck_assert_int_eq(sg_dtype_bytes(SG_DT_F16, INT64_MAX, &b), SG_OK); /* 2^64 - 2 fits */
    ck_assert_uint_eq(b, (size_t)INT64_MAX * 2);
    ck_assert_int_eq(sg_dtype_bytes(SG_DT_Q8_0, INT64_MAX - INT64_MAX % 32, &b), SG_OK);
    ck_assert_uint_eq(b, ((size_t)1 << 58) * 34 - 34);
    ck_assert_int_eq(sg_dtype_bytes(SG_DT_F32, -4, &b), SG_EINVAL);
    ck_assert_int_eq(sg_dtype_bytes(SG_DT_COUNT, 4, &b), SG_EINVAL);
}
END_TEST

START_TEST(test_nelem)
{
    sg_tensor t = {.ndim = 3, .shape = {2, 3, 5}};
    ck_assert_int_eq(sg_tensor_nelem(&t), 30);
    t.ndim = 0;
    ck_assert_int_eq(sg_tensor_nelem(&t), 1);
}
END_TEST

/* Independent decoding of binary16 in double arithmetic. */
static double half_ref(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

START_TEST(test_f16_decode_all)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = sg_f16_to_f32((uint16_t)h);
        int e = (h >> 10) & 31;

        if (e == 31) {
            if (h & 1023)
                ck_assert(isnan(f));
            else
                ck_assert(isinf(f) && (signbit(f) != 0) == ((h >> 15) != 0));
            continue;
        }
        ck_assert_msg((double)f == half_ref((uint16_t)h), "h=%04x", h);
        ck_assert((signbit(f) != 0) == ((h >> 15) != 0));
        /* and back, exactly */
        ck_assert_uint_eq(sg_f32_to_f16(f), h);
    }
}
END_TEST

START_TEST(test_f16_encode_rounding)
{
    ck_assert_uint_eq(sg_f32_to_f16(1.0f), 0x3C00);
    ck_assert_uint_eq(sg_f32_to_f16(-2.0f), 0xC000);
    ck_assert_uint_eq(sg_f32_to_f16(65504.0f), 0x7BFF);
    ck_assert_uint_eq(sg_f32_to_f16(65519.0f), 0x7BFF);
    ck_assert_uint_eq(sg_f32_to_f16(65520.0f), 0x7C00); /* tie, rounds to even = infinity */
    ck_assert_uint_eq(sg_f32_to_f16(1e10f), 0x7C00);
    ck_assert_uint_eq(sg_f32_to_f16(-INFINITY), 0xFC00);
    ck_assert_uint_eq(sg_f32_to_f16(1.0f + 0x1p-11f), 0x3C00);     /* tie to even (down) */
    ck_assert_uint_eq(sg_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3C02); /* tie to even (up) */
    ck_assert_uint_eq(sg_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3C01);
    ck_assert_uint_eq(sg_f32_to_f16(0x1p-24f), 0x0001);
    ck_assert_uint_eq(sg_f32_to_f16(0x1p-25f), 0x0000);         /* tie to even: zero */
    ck_assert_uint_eq(sg_f32_to_f16(0x1.8p-25f), 0x0001);
    ck_assert_uint_eq(sg_f32_to_f16(3 * 0x1p-25f), 0x0002);     /* 1.5 ulp: tie to even 2 */
    ck_assert_uint_eq(sg_f32_to_f16(0x1p-30f), 0x0000);
    ck_assert_uint_eq(sg_f32_to_f16(-0x1p-30f), 0x8000);
    ck_assert_uint_eq(sg_f32_to_f16(0x1.ffcp-15f), 0x0400);     /* rounds up into a normal */
    ck_assert_uint_eq(sg_f32_to_f16(u2f(1)), 0x0000);           /* f32 subnormal */
    uint16_t n = sg_f32_to_f16(NAN);
    ck_assert((n & 0x7C00) == 0x7C00 && (n & 0x3FF) != 0);

    /* Random values: the result is a nearest half (ties aside, checked above). */
    uint32_t s = 12345;
    for (int i = 0; i < 200000; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        /* exponents around the f16 range */
        float f = u2f((s & 0x807FFFFF) | ((uint32_t)(100 + (s >> 8) % 45) << 23));
        uint16_t h = sg_f32_to_f16(f);
        double err = fabs(half_ref(h) - (double)f);
        if ((h & 0x7C00) == 0x7C00) {
            ck_assert(fabs((double)f) >= 65520.0);
            continue;
        }
        for (int d = -1; d <= 1; d += 2) {
            uint16_t o = (uint16_t)(h + d);
            if ((o & 0x7C00) == 0x7C00 || ((o ^ h) & 0x8000))
                continue;
            ck_assert_msg(err <= fabs(half_ref(o) - (double)f), "f=%a h=%04x", (double)f, h);
        }
    }
}
END_TEST

START_TEST(test_bf16)
{
    ck_assert(sg_bf16_to_f32(0x3F80) == 1.0f);
    ck_assert(sg_bf16_to_f32(0xC040) == -3.0f);
    ck_assert(isinf(sg_bf16_to_f32(0x7F80)));
    ck_assert(isnan(sg_bf16_to_f32(0x7FC0)));
    ck_assert_uint_eq(sg_f32_to_bf16(1.0f), 0x3F80);
    ck_assert_uint_eq(sg_f32_to_bf16(u2f(0x3F808000)), 0x3F80); /* tie, even stays */
    ck_assert_uint_eq(sg_f32_to_bf16(u2f(0x3F818000)), 0x3F82); /* tie, odd rounds up */
    ck_assert_uint_eq(sg_f32_to_bf16(u2f(0x3F808001)), 0x3F81);
    ck_assert_uint_eq(sg_f32_to_bf16(u2f(0x3F807FFF)), 0x3F80);
    ck_assert_uint_eq(sg_f32_to_bf16(u2f(0xBF818000)), 0xBF82);
    ck_assert_uint_eq(sg_f32_to_bf16(u2f(0x7F7FFFFF)), 0x7F80); /* FLT_MAX rounds to inf */
    ck_assert_uint_eq(sg_f32_to_bf16(INFINITY), 0x7F80);
    uint16_t n = sg_f32_to_bf16(u2f(0x7F800001)); /* a NaN whose payload is all in the low half */
    ck_assert(isnan(sg_bf16_to_f32(n)));
    n = sg_f32_to_bf16(u2f(0xFFC00000));
    ck_assert(isnan(sg_bf16_to_f32(n)) && (n & 0x8000));
    /* every bf16 value round-trips */
    for (uint32_t b = 0; b < 65536; b++) {
        if ((b & 0x7F80) == 0x7F80 && (b & 0x7F))
            continue;
        ck_assert_uint_eq(sg_f32_to_bf16(sg_bf16_to_f32((uint16_t)b)), b);
        ck_assert_uint_eq(f2u(sg_bf16_to_f32((uint16_t)b)), b << 16);
    }
}
END_TEST

START_TEST(test_dequant_row_plain)
{
    /* Unaligned little-endian sources. */
    uint8_t buf[1 + 4 * 4];
    float out[4];
    const float want[4] = {1.0f, -0.5f, 65504.0f, 0x1p-24f};
    uint8_t *p = buf + 1;

    for (int i = 0; i < 4; i++) {
        uint16_t h = sg_f32_to_f16(want[i]);
        p[2 * i] = (uint8_t)h;
        p[2 * i + 1] = (uint8_t)(h >> 8);
    }
    sg_dequant_row(SG_DT_F16, p, out, 4);
    for (int i = 0; i < 4; i++)
        ck_assert(out[i] == want[i]);

    const uint16_t bf[3] = {0x3F80, 0xC0A0, 0x0001};
    for (int i = 0; i < 3; i++) {
        p[2 * i] = (uint8_t)bf[i];
        p[2 * i + 1] = (uint8_t)(bf[i] >> 8);
    }
    sg_dequant_row(SG_DT_BF16, p, out, 3);
    ck_assert(out[0] == 1.0f && out[1] == -5.0f && out[2] == u2f(0x00010000));

    memcpy(p, want, sizeof want);
    sg_dequant_row(SG_DT_F32, p, out, 4);
    ck_assert(memcmp(out, want, sizeof want) == 0);
}
END_TEST

START_TEST(test_weights_find_free)
{
    sg_weights w;
    size_t page = 4096;

    memset(&w, 0, sizeof w);
    sg_weights_free(NULL);
    sg_weights_free(&w); /* empty is fine */

    w.tensors = calloc(2, sizeof *w.tensors);
    ck_assert_ptr_nonnull(w.tensors);
    w.n_tensors = 2;
    strcpy(w.tensors[0].name, "model.norm.weight");
    strcpy(w.tensors[1].name, "model.embed_tokens.weight");
    w.maps = calloc(1, sizeof *w.maps);
    w.map_sizes = calloc(1, sizeof *w.map_sizes);
    ck_assert(w.maps && w.map_sizes);
    w.maps[0] = mmap(NULL, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(w.maps[0] != MAP_FAILED);
    w.map_sizes[0] = page;
    w.n_maps = 1;

    ck_assert_ptr_eq(sg_weights_find(&w, "model.embed_tokens.weight"), &w.tensors[1]);
    ck_assert_ptr_eq(sg_weights_find(&w, "model.norm.weight"), &w.tensors[0]);
    ck_assert_ptr_null(sg_weights_find(&w, "model.norm"));
    ck_assert_ptr_null(sg_weights_find(NULL, "x"));
    sg_weights_free(&w);
    ck_assert_ptr_null(w.tensors);
    ck_assert_ptr_null(w.maps);
    ck_assert_uint_eq(w.n_tensors, 0);
    ck_assert_uint_eq(w.n_maps, 0);
    sg_weights_free(&w); /* twice is harmless once zeroed */
}
END_TEST

Suite *tensor_suite(void)
{
    Suite *s = suite_create("tensor");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_dtype_table);
    tcase_add_test(tc, test_nelem);
    tcase_add_test(tc, test_f16_decode_all);
    tcase_add_test(tc, test_f16_encode_rounding);
    tcase_add_test(tc, test_bf16);
    tcase_add_test(tc, test_dequant_row_plain);
    tcase_add_test(tc, test_weights_find_free);
    suite_add_tcase(s, tc);
    return s;
}
