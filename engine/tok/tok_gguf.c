/*
 * tok_gguf.c: load the tokenizer from GGUF metadata (tokenizer.ggml.*), as llama.cpp's
 * converter writes it for Gemma: tokenizer.ggml.model "llama" (SentencePiece BPE), tokens,
 * scores, token_type (SentencePiece types), bos/eos/unknown ids, add_space_prefix. The file is
 * read with the engine's GGUF reader (gguf.h), which bounds-checks everything.
 *
 * llama.cpp's converter stores added tokens that tokenizer_config.json flags special (and those
 * that look special: <mask>, <unusedN>, ...) as CONTROL, and the others as USER_DEFINED with
 * U+2581 turned back into ' '. So here CONTROL and UNKNOWN are the special tokens, and a
 * USER_DEFINED piece gets its U+2581 back before it is matched in the normalized text.
 */
#include "tok_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "sg_engine.h"

/* An optional integer/bool key: absent keeps *v. */
static int opt_i32(const sg_gguf *g, const char *key, int64_t *v, char *err, size_t errlen)
{
    int32_t x;
    int rc = sg_gguf_get_i32(g, key, &x, err, errlen);

    if (rc == SG_EINVAL)
        return SG_OK;
    if (rc == SG_OK)
        *v = x;
    return rc;
}

static int opt_bool(const sg_gguf *g, const char *key, int *v, char *err, size_t errlen)
{
    int rc = sg_gguf_get_bool(g, key, v, err, errlen);

    return rc == SG_EINVAL ? SG_OK : rc;
}

int tok_load_gguf_handle(struct sg_tok **out, const sg_gguf *g, char *err, size_t errlen)
{
    const char *name = sg_gguf_name(g);
    char model[32] = "";
    struct tok_spm_opts o;
    struct tok_spm_piece *pieces = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    char *pool = NULL;
    size_t n = 0, ns = 0, nt = 0, pool_n = 0;
    sg_gguf_type et;
    int rc;

    *out = NULL;
    memset(&o, 0, sizeof o);
    o.unk_id = -1;
    o.bos_id = -1;
    o.eos_id = -1;
    o.escape_ws = 1;
    rc = sg_gguf_get_strz(g, "tokenizer.ggml.model", model, sizeof model, err, errlen);
    if (rc == SG_EINVAL)
        return sg_errf(err, errlen, SG_EFORMAT, NULL, "%s: no tokenizer.ggml.model", name);
    if (rc != SG_OK)
        return rc;
    if (strcmp(model, "llama") != 0)
        return sg_errf(err, errlen, SG_EUNSUPPORTED, NULL,
                       "%s: tokenizer.ggml.model '%s' is not 'llama' (SentencePiece)", name,
                       model);
    if (sg_gguf_find_key(g, "tokenizer.ggml.precompiled_charsmap") >= 0)
        return sg_errf(err, errlen, SG_EUNSUPPORTED, NULL,
                       "%s: tokenizer.ggml.precompiled_charsmap is not supported", name);
    rc = sg_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, err, errlen);
    if (rc == SG_EINVAL)
        return sg_errf(err, errlen, SG_EFORMAT, NULL, "%s: no tokenizer.ggml.tokens", name);
    if (rc != SG_OK)
        return rc;
    if (et != SG_GGUF_STRING || n == 0 || n > (1u << 24))
        return sg_errf(err, errlen, SG_EFORMAT, NULL,
                       "%s: tokenizer.ggml.tokens: expected 1..16777216 strings", name);
    if ((rc = opt_i32(g, "tokenizer.ggml.bos_token_id", &o.bos_id, err, errlen)) != SG_OK ||
        (rc = opt_i32(g, "tokenizer.ggml.eos_token_id", &o.eos_id, err, errlen)) != SG_OK ||
        (rc = opt_i32(g, "tokenizer.ggml.unknown_token_id", &o.unk_id, err, errlen)) != SG_OK ||
        (rc = opt_bool(g, "tokenizer.ggml.add_space_prefix", &o.add_dummy_prefix, err,
                       errlen)) != SG_OK ||
        (rc = opt_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &o.remove_extra_ws, err,
                       errlen)) != SG_OK)
        return rc;
    pieces = calloc(n, sizeof *pieces);
    scores = calloc(n, sizeof *scores);
    types = malloc(n * sizeof *types);
    if (!pieces || !scores || !types) {
        rc = sg_errf(err, errlen, SG_ENOMEM, NULL, "%s: out of memory", name);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        types[i] = SPT_NORMAL;
    rc = sg_gguf_get_arr_f32(g, "tokenizer.ggml.scores", scores, n, &ns, err, errlen);
    if (rc == SG_EINVAL)
        ns = n; /* absent: all 0 */
    else if (rc != SG_OK && rc != SG_ERANGE)
        goto done;
    rc = sg_gguf_get_arr_i32(g, "tokenizer.ggml.token_type", types, n, &nt, err, errlen);
    if (rc == SG_EINVAL)
        nt = n;
    else if (rc != SG_OK && rc != SG_ERANGE)
        goto done;
    if (ns != n || nt != n) {
        rc = sg_errf(err, errlen, SG_EFORMAT, NULL,
                     "%s: tokens (%zu), scores (%zu) and token_type (%zu) differ in length",
                     name, n, ns, nt);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        struct tok_spm_piece *p = &pieces[i];

        rc = sg_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &p->s, &p->n, err, errlen);
        if (rc != SG_OK)
            goto done;
        p->score = scores[i];
        if (types[i] < SPT_NORMAL || types[i] > SPT_BYTE) {
            rc = sg_errf(err, errlen, SG_EFORMAT, NULL, "%s: token %zu has unknown type %ld", name,
                         i, (long)types[i]);
            goto done;
        }
        p->type = types[i];
        if (p->type == SPT_BYTE)
            o.byte_fallback = 1;
        if (p->type == SPT_USER && memchr(p->s, ' ', p->n))
            pool_n += 3 * p->n;
    }
    if (pool_n) {
        /* undo the converter's U+2581 -> ' ' in user-defined pieces */
        char *q;

        pool = malloc(pool_n);
        if (!pool) {
            rc = sg_errf(err, errlen, SG_ENOMEM, NULL, "%s: out of memory", name);
            goto done;
        }
        q = pool;
        for (size_t i = 0; i < n; i++) {
            struct tok_spm_piece *p = &pieces[i];
            char *start = q;

            if (p->type != SPT_USER || !memchr(p->s, ' ', p->n))
                continue;
            for (size_t k = 0; k < p->n; k++) {
                if (p->s[k] == ' ') {
                    memcpy(q, "\xe2\x96\x81", 3);
                    q += 3;
                } else {
                    *q++ = p->s[k];
                }
            }
            p->s = start;
            p->n = (size_t)(q - start);
        }
    }
    o.turn_markers_special = 0; /* the converter already typed them CONTROL */
    rc = tok_build_spm(out, pieces, n, &o, NULL, 0, name, err, errlen);
    if (rc == SG_OK)
        snprintf((*out)->source, sizeof(*out)->source, "gguf");
done:
    free(pool);
    free(pieces);
    free(scores);
    free(types);
    return rc;
}

int tok_load_gguf_mem(struct sg_tok **out, const uint8_t *buf, size_t n, const char *name,
                      char *err, size_t errlen)
{
    sg_gguf *g = NULL;
    int rc;

    *out = NULL;
    rc = sg_gguf_open_mem(&g, buf, n, name, err, errlen);
    if (rc != SG_OK)
        return rc;
    rc = tok_load_gguf_handle(out, g, err, errlen);
    sg_gguf_close(g);
    return rc;
}

int tok_load_gguf(struct sg_tok **out, const char *path, char *err, size_t errlen)
{
    sg_gguf *g = NULL;
    int rc;

    *out = NULL;
    rc = sg_gguf_open(&g, path, err, errlen);
    if (rc != SG_OK)
        return rc;
    rc = tok_load_gguf_handle(out, g, err, errlen);
    sg_gguf_close(g);
    return rc;
}
