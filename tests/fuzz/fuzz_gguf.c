/*
 * fuzz_gguf.c: the GGUF reader and the Gemma loader on arbitrary bytes. Whatever the parser
 * accepts is then read through every accessor (metadata of each type, every string of every
 * array, the first row of each tensor) so that a bounds check missed at parse time shows up
 * under ASan. Seeds: tests/fuzz/seeds/fuzz_gguf/ (tools/gguf_quantize.py seeds).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gguf_gemma.h"
#include "sg_engine.h"
#include "tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch_metadata(const sg_gguf *g)
{
    char err[256], buf[64];
    size_t n = sg_gguf_n_kv(g);

    for (size_t i = 0; i < n; i++) {
        const char *key = sg_gguf_key(g, i);
        const char *s;
        size_t len, cnt;
        uint32_t u32;
        int32_t i32, iv[16];
        uint64_t u64;
        float f, fv[16];
        int b;
        sg_gguf_type et;
        volatile unsigned sink = 0;

        (void)sg_gguf_get_u32(g, key, &u32, err, sizeof err);
        (void)sg_gguf_get_i32(g, key, &i32, err, sizeof err);
        (void)sg_gguf_get_u64(g, key, &u64, err, sizeof err);
        (void)sg_gguf_get_f32(g, key, &f, err, sizeof err);
        (void)sg_gguf_get_bool(g, key, &b, err, sizeof err);
        (void)sg_gguf_get_strz(g, key, buf, sizeof buf, err, sizeof err);
        if (sg_gguf_get_str(g, key, &s, &len, err, sizeof err) == SG_OK)
            for (size_t k = 0; k < len; k++)
                sink += (unsigned char)s[k];
        if (sg_gguf_get_arr(g, key, &et, &cnt, err, sizeof err) == SG_OK) {
            (void)sg_gguf_get_arr_f32(g, key, fv, 16, &cnt, err, sizeof err);
            (void)sg_gguf_get_arr_i32(g, key, iv, 16, &cnt, err, sizeof err);
            for (size_t k = 0; k < cnt && k < 4096; k++)
                if (sg_gguf_get_arr_str(g, key, k, &s, &len, err, sizeof err) == SG_OK && len)
                    sink += (unsigned char)s[0] + (unsigned char)s[len - 1];
        }
        (void)sink;
    }
}

static void touch_tensors(const sg_gguf *g)
{
    static float row[4096];

    for (size_t i = 0; i < sg_gguf_n_tensors(g); i++) {
        const sg_gguf_tensor *t = sg_gguf_tensor_at(g, i);

        if (t->dtype < 0 || t->ne[0] > 4096)
            continue;
        sg_dequant_row((sg_dtype)t->dtype, t->data, row, (int64_t)t->ne[0]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sg_gguf *g;
    sg_weights w;
    char err[256];

    if (sg_gguf_open_mem(&g, data, size, "fuzz.gguf", err, sizeof err) != SG_OK)
        return 0;
    touch_metadata(g);
    touch_tensors(g);
    memset(&w, 0, sizeof w);
    if (sg_gguf_load_from(g, &w, err, sizeof err) == SG_OK)
        sg_weights_free(&w); /* closes g */
    else
        sg_gguf_close(g);
    return 0;
}
