/*
 * tok_spm.c: load a SentencePiece tokenizer.model (a serialized ModelProto) into the tokenizer
 * tables, with SentencePiece's BPE semantics expressed as merges:
 *   - the pair (a, b) merges when the piece a+b exists (NORMAL, USER_DEFINED or UNUSED types,
 *     SentencePiece's `pieces_`), with priority the score of a+b (highest first), leftmost on
 *     ties: bpe_model.cc's agenda, which the shared BPE loop in tok.c reproduces exactly
 *     because the rank depends only on the merged piece;
 *   - USER_DEFINED pieces are matched in the normalized text before BPE (SentencePiece's
 *     prefix matcher), CONTROL and UNKNOWN pieces are special added tokens (template mode
 *     only), BYTE pieces are the byte fallback.
 * Special user-defined pieces: those flagged special in a tokenizer_config.json next to the
 * model (added_tokens_decoder, additional_special_tokens); without one, Gemma's turn markers
 * <start_of_turn> and <end_of_turn>. Special ones are matched on the raw text, like the HF
 * tokenizer does for its added tokens.
 *
 * Refused (SG_EUNSUPPORTED): model types other than BPE, a precompiled normalization charsmap
 * (nmt_nfkc and friends), treat_whitespace_as_suffix.
 */
#include "tok_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sg_engine.h"


struct pb {
    const uint8_t *p, *end;
};

static int pb_varint(struct pb *b, uint64_t *v)
{
    uint64_t x = 0;

    for (int s = 0; s < 64; s += 7) {
        uint8_t c;

        if (b->p >= b->end)
            return -1;
        c = *b->p++;
        x |= (uint64_t)(c & 0x7F) << s;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* One field of a message: its number, wire type, and the varint/fixed value or the bytes. */
struct pb_field {
    uint32_t f;          /* field number */
    int w;               /* wire type */
    uint64_t v;          /* value (wire types 0, 1, 5), or the length (2) */
    const uint8_t *data; /* the bytes (wire type 2), else NULL */
    size_t len;          /* their length, else 0 */
};

/* Read the next field of `b` into *fv. Returns 0, or -1 if it is malformed or truncated. */
static int pb_field(struct pb *b, struct pb_field *fv)
{
    uint64_t key;

    if (pb_varint(b, &key) != 0)
        return -1;
    fv->f = (uint32_t)(key >> 3);
    fv->w = (int)(key & 7);
    fv->data = NULL;
    fv->len = 0;
    switch (fv->w) {
    case 0:
        return pb_varint(b, &fv->v);
    case 1:
        if (b->end - b->p < 8)
            return -1;
        memcpy(&fv->v, b->p, 8);
        b->p += 8;
        return 0;
    case 5: {
        uint32_t x;

        if (b->end - b->p < 4)
            return -1;
        memcpy(&x, b->p, 4);
        fv->v = x;
        b->p += 4;
        return 0;
    }
    case 2:
        if (pb_varint(b, &fv->v) != 0 || fv->v > (uint64_t)(b->end - b->p))
            return -1;
        fv->data = b->p;
        fv->len = (size_t)fv->v;
        b->p += fv->len;
        return 0;
    default:
        return -1; /* groups (3, 4) and reserved types are not used by sentencepiece */
    }
}

struct spm {
    struct tok_spm_piece *pieces;
    size_t n, cap;
    int model_type;
    int byte_fallback;
    int treat_ws_suffix;
    int64_t unk_id, bos_id, eos_id, pad_id;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
    size_t charsmap_len;
    char normalizer_name[32];
};

static int parse_piece(const uint8_t *d, size_t n, struct tok_spm_piece *out)
{
    struct pb b = {d, d + n};
    struct pb_field fv;

    out->s = NULL;
    out->n = 0;
    out->score = 0.0f;
    out->type = SPT_NORMAL;
    while (b.p < b.end) {
        if (pb_field(&b, &fv) != 0)
            return -1;
        if (fv.f == 1 && fv.w == 2) {
            out->s = (const char *)fv.data;
            out->n = fv.len;
        } else if (fv.f == 2 && fv.w == 5) {
            uint32_t x = (uint32_t)fv.v;

            memcpy(&out->score, &x, 4);
        } else if (fv.f == 3 && fv.w == 0) {
            out->type = (int)fv.v;
        }
    }
    return out->s ? 0 : -1;
}

static int parse_trainer(const uint8_t *d, size_t n, struct spm *m)
{
    struct pb b = {d, d + n};
    struct pb_field fv;

    while (b.p < b.end) {
        if (pb_field(&b, &fv) != 0)
            return -1;
        if (fv.w != 0)
            continue;
        switch (fv.f) {
        case 3: m->model_type = (int)fv.v; break;
        case 24: m->treat_ws_suffix = fv.v != 0; break;
        case 35: m->byte_fallback = fv.v != 0; break;
        case 40: m->unk_id = (int32_t)fv.v; break;
        case 41: m->bos_id = (int32_t)fv.v; break;
        case 42: m->eos_id = (int32_t)fv.v; break;
        case 43: m->pad_id = (int32_t)fv.v; break;
        default: break;
        }
    }
    return 0;
}

static int parse_normalizer_spec(const uint8_t *d, size_t n, struct spm *m)
{
    struct pb b = {d, d + n};
    struct pb_field fv;

    while (b.p < b.end) {
        if (pb_field(&b, &fv) != 0)
            return -1;
        if (fv.f == 1 && fv.w == 2)
            snprintf(m->normalizer_name, sizeof m->normalizer_name, "%.*s",
                     (int)(fv.len < 31 ? fv.len : 31), (const char *)fv.data);
        else if (fv.f == 2 && fv.w == 2)
            m->charsmap_len = fv.len;
        else if (fv.f == 3 && fv.w == 0)
            m->add_dummy_prefix = fv.v != 0;
        else if (fv.f == 4 && fv.w == 0)
            m->remove_extra_ws = fv.v != 0;
        else if (fv.f == 5 && fv.w == 0)
            m->escape_ws = fv.v != 0;
    }
    return 0;
}

struct rank_ent {
    float score;
    int32_t id;
};

static int cmp_rank(const void *a, const void *b)
{
    const struct rank_ent *x = a, *y = b;

    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int mergeable(int type)
{
    return type == SPT_NORMAL || type == SPT_USER || type == SPT_UNUSED;
}

int tok_load_spm_mem(struct sg_tok **out, const uint8_t *buf, size_t n, const char *name,
                     const char *config_json, size_t config_len, char *err, size_t errlen)
{
    struct spm m;
    struct pb b = {buf, buf + n};
    struct pb_field fv;
    int rc;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    memset(&m, 0, sizeof m);
    m.model_type = 1; /* UNIGRAM is the protobuf default */
    m.unk_id = 0;
    m.bos_id = 1;
    m.eos_id = 2;
    m.pad_id = -1;
    m.add_dummy_prefix = 1;
    m.remove_extra_ws = 1;
    m.escape_ws = 1;

    while (b.p < b.end) {
        if (pb_field(&b, &fv) != 0) {
            rc = sg_errf(err, errlen, SG_EFORMAT, NULL, "%s: byte %zu: malformed protobuf", name,
                         (size_t)(b.p - buf));
            goto fail;
        }
        if (fv.w != 2)
            continue;
        if (fv.f == 1) {
            if (m.n == m.cap) {
                size_t cap = m.cap ? m.cap * 2 : 1024;
                struct tok_spm_piece *p = realloc(m.pieces, cap * sizeof *p);

                if (!p) {
                    rc = sg_errf(err, errlen, SG_ENOMEM, NULL, "%s: out of memory", name);
                    goto fail;
                }
                m.pieces = p;
                m.cap = cap;
            }
            if (parse_piece(fv.data, fv.len, &m.pieces[m.n]) != 0) {
                rc = sg_errf(err, errlen, SG_EFORMAT, NULL, "%s: piece %zu is malformed", name,
                             m.n);
                goto fail;
            }
            if (m.pieces[m.n].type < SPT_NORMAL || m.pieces[m.n].type > SPT_BYTE) {
                rc = sg_errf(err, errlen, SG_EFORMAT, NULL, "%s: piece %zu has unknown type %d",
                             name, m.n, m.pieces[m.n].type);
                goto fail;
            }
            m.n++;
        } else if (fv.f == 2) {
            if (parse_trainer(fv.data, fv.len, &m) != 0) {
                rc = sg_errf(err, errlen, SG_EFORMAT, NULL, "%s: malformed trainer_spec", name);
                goto fail;
            }
        } else if (fv.f == 3) {
            if (parse_normalizer_spec(fv.data, fv.len, &m) != 0) {
                rc = sg_errf(err, errlen, SG_EFORMAT, NULL, "%s: malformed normalizer_spec", name);
                goto fail;
            }
        }
    }
    if (m.n == 0 || m.n > (1u << 24)) {
        rc = sg_errf(err, errlen, SG_EFORMAT, NULL, "%s: %zu pieces (not a SentencePiece model?)",
                     name, m.n);
        goto fail;
    }
    if (m.model_type != 2) {
        rc = sg_errf(err, errlen, SG_EUNSUPPORTED, NULL,
                     "%s: model_type %d is not BPE (2); only SentencePiece BPE is supported",
                     name, m.model_type);
        goto fail;
    }
    if (m.charsmap_len > 0) {
        rc = sg_errf(err, errlen, SG_EUNSUPPORTED, NULL,
                     "%s: normalizer '%s' uses a precompiled charsmap; only identity is supported",
                     name, m.normalizer_name);
        goto fail;
    }
    if (m.treat_ws_suffix) {
        rc = sg_errf(err, errlen, SG_EUNSUPPORTED, NULL,
                     "%s: treat_whitespace_as_suffix is not supported", name);
        goto fail;
    }

    {
        struct tok_spm_opts o;

        o.byte_fallback = m.byte_fallback;
        o.add_dummy_prefix = m.add_dummy_prefix;
        o.remove_extra_ws = m.remove_extra_ws;
        o.escape_ws = m.escape_ws;
        o.unk_id = m.unk_id;
        o.bos_id = m.bos_id;
        o.eos_id = m.eos_id;
        o.turn_markers_special = 1;
        rc = tok_build_spm(out, m.pieces, m.n, &o, config_json, config_len, name, err, errlen);
    }
fail:
    free(m.pieces);
    return rc;
}

/* Build a tokenizer from SentencePiece pieces (shared with the GGUF loader). */
int tok_build_spm(struct sg_tok **out, const struct tok_spm_piece *pieces, size_t n,
                  const struct tok_spm_opts *o, const char *config_json, size_t config_len,
                  const char *name, char *err, size_t errlen)
{
    struct sg_tok *t = NULL;
    struct rank_ent *ranks = NULL;
    int32_t *rank_of = NULL;
    int rc;
    struct {
        const struct tok_spm_piece *pieces;
        size_t n;
    } m = {pieces, n};

    *out = NULL;
    t = tok_new((int32_t)m.n);
    if (!t) {
        rc = sg_errf(err, errlen, SG_ENOMEM, NULL, "%s: out of memory", name);
        goto fail;
    }
    snprintf(t->source, sizeof t->source, "tokenizer.model");
    t->opts.escape_spaces = o->escape_ws;
    t->opts.add_dummy_prefix = o->add_dummy_prefix;
    t->opts.remove_extra_ws = o->remove_extra_ws;
    t->opts.byte_fallback = o->byte_fallback;
    t->opts.fuse_unk = 1;
    for (size_t i = 0; i < m.n; i++) {
        const struct tok_spm_piece *p = &m.pieces[i];
        unsigned fl = 0;

        if (p->type == SPT_CONTROL || p->type == SPT_UNKNOWN)
            fl = TOKF_NOCHAR;
        else if (p->type == SPT_BYTE)
            fl = TOKF_BYTE | TOKF_NOCHAR;
        else if (p->type == SPT_UNUSED)
            fl = TOKF_UNUSED;
        rc = tok_set_piece(t, (int32_t)i, (const char *)p->s, p->n, p->score, fl, err, errlen);
        if (rc != SG_OK)
            goto fail;
    }
    rc = tok_index(t, err, errlen);
    if (rc != SG_OK)
        goto fail;
    /* tok_index marks <0xXX> spellings as bytes; SentencePiece only trusts the BYTE type. */
    for (size_t i = 0; i < m.n; i++)
        if (m.pieces[i].type != SPT_BYTE)
            t->flags[i] &= (uint8_t)~TOKF_BYTE;
    for (int c = 0; c < 256; c++)
        if (t->byte_id[c] >= 0 && m.pieces[t->byte_id[c]].type != SPT_BYTE)
            t->byte_id[c] = -1;

    /* Specials: control and unknown pieces; user-defined ones named by the config. */
    for (size_t i = 0; i < m.n; i++) {
        int type = m.pieces[i].type;

        if (type == SPT_CONTROL || type == SPT_UNKNOWN)
            t->flags[i] |= TOKF_SPECIAL;
    }
    if (config_json) {
        rc = tok_json_config_specials(t, config_json, config_len, "tokenizer_config.json", err,
                                      errlen);
        if (rc != SG_OK)
            goto fail;
    } else if (o->turn_markers_special) {
        static const char *const turn[] = {"<start_of_turn>", "<end_of_turn>"};

        for (size_t k = 0; k < 2; k++) {
            int32_t id = tok_lookup(t, turn[k], strlen(turn[k]));

            if (id >= 0)
                t->flags[id] |= TOKF_SPECIAL;
        }
    }
    for (size_t i = 0; i < m.n; i++) {
        int type = m.pieces[i].type;
        int special = (t->flags[i] & TOKF_SPECIAL) != 0;

        if (type == SPT_CONTROL || type == SPT_UNKNOWN || type == SPT_USER || special) {
            /* Specials split on the raw text (HF's added tokens); plain user-defined pieces on
             * the normalized text (SentencePiece's prefix matcher). */
            rc = tok_add_added(t, (int32_t)i, special, !special && type == SPT_USER);
            if (rc != SG_OK) {
                rc = sg_errf(err, errlen, SG_EFORMAT, NULL, "%s: piece %zu is empty", name, i);
                goto fail;
            }
            if (special)
                t->flags[i] |= TOKF_NOCHAR;
        }
    }

    /* Merges: every split of a mergeable piece into two mergeable pieces, ranked by score. */
    ranks = malloc(m.n * sizeof *ranks);
    rank_of = malloc(m.n * sizeof *rank_of);
    if (!ranks || !rank_of) {
        rc = sg_errf(err, errlen, SG_ENOMEM, NULL, "%s: out of memory", name);
        goto fail;
    }
    for (size_t i = 0; i < m.n; i++) {
        ranks[i].score = m.pieces[i].score;
        ranks[i].id = (int32_t)i;
    }
    qsort(ranks, m.n, sizeof *ranks, cmp_rank);
    for (size_t i = 0, r = 0; i < m.n; i++) {
        if (i > 0 && ranks[i].score != ranks[i - 1].score)
            r = i;
        rank_of[ranks[i].id] = (int32_t)r;
    }
    for (size_t i = 0; i < m.n; i++) {
        const struct tok_spm_piece *p = &m.pieces[i];

        if (!mergeable(p->type) || (t->flags[i] & TOKF_SPECIAL))
            continue;
        for (size_t k = 1; k < p->n; k++) {
            int32_t a, c;

            if ((p->s[k] & 0xC0) == 0x80)
                continue; /* split only between characters */
            a = tok_lookup(t, (const char *)p->s, k);
            if (a < 0 || !mergeable(m.pieces[a].type) || (t->flags[a] & TOKF_SPECIAL))
                continue;
            c = tok_lookup(t, (const char *)p->s + k, p->n - k);
            if (c < 0 || !mergeable(m.pieces[c].type) || (t->flags[c] & TOKF_SPECIAL))
                continue;
            if (tok_add_merge(t, a, c, rank_of[i], (int32_t)i) != SG_OK) {
                rc = sg_errf(err, errlen, SG_ENOMEM, NULL, "%s: out of memory", name);
                goto fail;
            }
        }
    }
    if (o->unk_id >= 0 && o->unk_id < (int64_t)m.n)
        t->unk = (int32_t)o->unk_id;
    if (o->bos_id >= 0 && o->bos_id < (int64_t)m.n)
        t->bos = (int32_t)o->bos_id;
    if (o->eos_id >= 0 && o->eos_id < (int64_t)m.n)
        t->eos = (int32_t)o->eos_id;
    rc = tok_finish(t, err, errlen);
    if (rc != SG_OK)
        goto fail;
    free(ranks);
    free(rank_of);
    *out = t;
    return SG_OK;
fail:
    free(ranks);
    free(rank_of);
    sg_tok_free(t);
    return rc;
}

int tok_load_spm(struct sg_tok **out, const char *path, char *err, size_t errlen)
{
    char *buf = NULL, *cfg = NULL;
    size_t n, cfg_n = 0;
    char cpath[4096];
    const char *slash;
    int rc;

    *out = NULL;
    rc = sg_read_file(path, TOK_FILE_MAX, &buf, &n, err, errlen);
    if (rc != SG_OK)
        return rc;
    /* tokenizer_config.json beside the model names the special user-defined pieces. */
    slash = strrchr(path, '/');
    if ((size_t)snprintf(cpath, sizeof cpath, "%.*stokenizer_config.json",
                         slash ? (int)(slash - path + 1) : 0, path) < sizeof cpath) {
        char e2[8];

        if (sg_read_file(cpath, TOK_FILE_MAX, &cfg, &cfg_n, e2, sizeof e2) != SG_OK)
            cfg = NULL;
    }
    rc = tok_load_spm_mem(out, (const uint8_t *)buf, n, path, cfg, cfg_n, err, errlen);
    free(buf);
    free(cfg);
    return rc;
}
