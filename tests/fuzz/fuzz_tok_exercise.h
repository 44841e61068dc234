/* fuzz_tok_exercise.h: what the tokenizer loader fuzz targets do with a tokenizer that loaded:
 * read every piece back, encode a short text in both modes (user text must never yield a
 * special id) and decode the ids. Included by fuzz_tok_{json,spm,gguf}.c. */
#ifndef SG_FUZZ_TOK_EXERCISE_H
#define SG_FUZZ_TOK_EXERCISE_H

#include <stdlib.h>

#include "sg_tok.h"
#include "tok_table.h" /* the unknown-token id */

static void tok_fuzz_exercise(const sg_tok *t)
{
    static const char text[] = "a b\n\n<eot> \xe2\x96\x81\xff\xc3\xa9<bos><start_of_turn>x  y";
    int32_t ids[256];
    char buf[1024];
    size_t n = 0, len;
    volatile size_t sink = 0;

    for (size_t i = 0; i < sg_tok_n_vocab(t); i++) {
        const char *p = sg_tok_piece(t, (int32_t)i);

        if (!p)
            abort();
        sink += (unsigned char)p[0] + (size_t)sg_tok_is_special(t, (int32_t)i);
    }
    for (int m = 0; m < 2; m++) {
        if (sg_tok_encode(t, text, sizeof text - 1, (sg_tok_mode)m, ids, 256, &n) != 0)
            abort();
        /* The unknown-token id is the one special a user text may yield, whatever its spelling
         * (a file may call it anything: the first long run found one named "u<nk>"). */
        for (size_t i = 0; m == SG_TOK_USER && i < n; i++)
            if (sg_tok_is_special(t, ids[i]) && ids[i] != t->unk)
                abort();
        if (sg_tok_decode(t, ids, n, buf, sizeof buf, &len) != 0 && len < sizeof buf)
            abort();
    }
    (void)sink;
}

#endif
