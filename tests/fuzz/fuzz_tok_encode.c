/*
 * fuzz_tok_encode.c: encoding arbitrary bytes with tiny-a's tokenizer (loaded once from
 * tests/fixtures/tiny-a/tokenizer.model; run from the repository root, as `make fuzz` does).
 * The first input byte picks the mode and where to cut the rest into segments. Checked:
 * no crash or out-of-bounds read (ASan), user text never yields a special id, segments with
 * one mode give the same ids as the whole text, and decode(encode(x)) == x for valid UTF-8
 * without U+2581.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sg_engine.h"
#include "sg_tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sg_tok *tok;

static int valid_utf8_no_2581(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3
                 : c >= 0xF0 && c < 0xF5 ? 4 : 0;

        if (k == 0 || i + k > n)
            return 0;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F) ||
            (c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F))
            return 0;
        if (k == 3 && c == 0xE2 && s[i + 1] == 0x96 && s[i + 2] == 0x81)
            return 0;
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int32_t *ids, *ids2;
    size_t n = 0, n2 = 0, cut, len;
    sg_tok_mode mode;
    char *text;
    const char *s;

    if (!tok) {
        char err[256];

        if (sg_tok_open(&tok, "tests/fixtures/tiny-a/tokenizer.model", err, sizeof err) != 0) {
            fprintf(stderr, "fuzz_tok_encode: %s\n", err);
            abort();
        }
    }
    if (size == 0)
        return 0;
    mode = (data[0] & 1) ? SG_TOK_TEMPLATE : SG_TOK_USER;
    s = (const char *)data + 1;
    len = size - 1;
    cut = len ? (size_t)(data[0] >> 1) % (len + 1) : 0;
    ids = malloc((len + 2) * sizeof *ids);
    ids2 = malloc((len + 2) * sizeof *ids2);
    if (!ids || !ids2)
        abort();
    if (sg_tok_encode(tok, s, len, mode, ids, len + 2, &n) != 0)
        abort();
    for (size_t i = 0; mode == SG_TOK_USER && i < n; i++)
        if (sg_tok_is_special(tok, ids[i]))
            abort();
    {
        sg_tok_seg segs[2] = {{s, cut, mode}, {s + cut, len - cut, mode}};

        if (sg_tok_encode_segs(tok, segs, 2, ids2, len + 2, &n2) != 0 || n2 != n ||
            memcmp(ids, ids2, n * sizeof *ids) != 0)
            abort();
    }
    text = malloc(4 * len + 16);
    if (!text)
        abort();
    if (sg_tok_decode(tok, ids, n, text, 4 * len + 16, &n2) != 0)
        abort();
    if (valid_utf8_no_2581(data + 1, len) && (n2 != len || memcmp(text, s, len) != 0))
        abort();
    free(text);
    free(ids);
    free(ids2);
    return 0;
}
