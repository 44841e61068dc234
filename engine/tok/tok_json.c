/*
 * tok_json.c: load a Hugging Face tokenizer.json (model type BPE with merges) into the
 * tokenizer tables. A small purpose-built JSON reader rather than a DOM: the Gemma file is
 * 17 MB with 256000 vocabulary entries and 580604 merges, and it must load in well under a
 * second.
 *
 * Supported (anything else is refused with SG_EUNSUPPORTED and the offending field):
 *   normalizer: null, Replace(String " " -> "\u2581"), or a Sequence of that;
 *   pre_tokenizer: null (Gemma: the whole normalized text is one BPE word), or Gemma 3's
 *          Split on String " " (not inverted) after the normalizer has replaced every ' ' by
 *          U+2581: there is then no ' ' left to split on, so it is the same one word;
 *   model: BPE with vocab, merges ("a b" strings or ["a", "b"] pairs), byte_fallback,
 *          fuse_unk, unk_token, ignore_merges false, no dropout, no subword prefix/suffix;
 *   added_tokens: id, content, special, normalized; lstrip/rstrip/single_word must be false.
 * The decoder and post_processor are not read: decoding is Gemma's (U+2581 -> ' ', byte
 * fallback, fuse) and BOS is added by the caller (sg_tok_bos).
 */
#include "tok_load.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sg_engine.h"

struct js {
    const char *start, *p, *end;
    const char *name;
    char *err;
    size_t errlen;
    char *buf; /* decoded string scratch */
    size_t cap;
    size_t n;
};

static int js_error(struct js *j, int code, const char *what)
{
    size_t line = 1;

    for (const char *q = j->start; q < j->p && q < j->end; q++)
        if (*q == '\n')
            line++;
    return sg_errf(j->err, j->errlen, code, NULL, "%s: line %zu (byte %zu): %s", j->name, line,
                   (size_t)(j->p - j->start), what);
}

static void ws(struct js *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int expect(struct js *j, char c)
{
    char msg[32];

    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return SG_OK;
    }
    snprintf(msg, sizeof msg, "expected '%c'", c);
    return js_error(j, SG_EFORMAT, msg);
}

/* 1 and consume it if the next non-blank character is c. */
static int peek_eat(struct js *j, char c)
{
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

/*
 * Room for `need` elements of `size` bytes in the malloc'd array `p` of *cap elements: the
 * capacity doubles, from `first`, until it holds them. Returns the (possibly moved) array with
 * *cap updated, or NULL when out of memory (then `p` and *cap are unchanged).
 */
static void *grow(void *p, size_t *cap, size_t need, size_t size, size_t first)
{
    size_t c = *cap ? *cap : first;

    if (need <= *cap)
        return p;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return NULL;
        c *= 2;
    }
    if (c > SIZE_MAX / size)
        return NULL;
    p = realloc(p, c * size);
    if (p)
        *cap = c;
    return p;
}

/* A growing array of fixed-size elements (owned: free(v.p)). */
struct vec {
    void *p;
    size_t n, cap;
};

/* Append the `size` bytes at `elem` to v, its capacity doubling from `first`. SG_OK/SG_ENOMEM. */
static int vec_push(struct vec *v, const void *elem, size_t size, size_t first)
{
    char *p = grow(v->p, &v->cap, v->n + 1, size, first);

    if (!p)
        return SG_ENOMEM;
    memcpy(p + v->n * size, elem, size);
    v->p = p;
    v->n++;
    return SG_OK;
}

/* Room for `m` more bytes in j->buf. */
static int buf_reserve(struct js *j, size_t m)
{
    char *b = grow(j->buf, &j->cap, j->n + m, 1, 256);

    if (!b)
        return SG_ENOMEM;
    j->buf = b;
    return SG_OK;
}

static int put_byte(struct js *j, char c)
{
    if (buf_reserve(j, 1) != SG_OK)
        return SG_ENOMEM;
    j->buf[j->n++] = c;
    return SG_OK;
}

static int put_utf8(struct js *j, uint32_t cp)
{
    char b[4];
    int n;

    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12);
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | cp >> 18);
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    for (int i = 0; i < n; i++)
        if (put_byte(j, b[i]) != SG_OK)
            return SG_ENOMEM;
    return SG_OK;
}

static int hex4(struct js *j, uint32_t *v)
{
    *v = 0;
    if (j->end - j->p < 4)
        return js_error(j, SG_EFORMAT, "truncated \\u escape");
    for (int i = 0; i < 4; i++) {
        char c = j->p[i];
        uint32_t d;

        if (c >= '0' && c <= '9')
            d = (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (uint32_t)(c - 'A' + 10);
        else
            return js_error(j, SG_EFORMAT, "bad \\u escape");
        *v = *v * 16 + d;
    }
    j->p += 4;
    return SG_OK;
}

/* Parse a string into j->buf[0..j->n) (not NUL-terminated). */
static int js_string(struct js *j)
{
    int rc;

    j->n = 0;
    ws(j);
    if (j->p >= j->end || *j->p != '"')
        return js_error(j, SG_EFORMAT, "expected a string");
    j->p++;
    for (;;) {
        const char *q = j->p;

        /* copy the run up to the next quote or backslash in one go */
        while (q < j->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20)
            q++;
        if (q > j->p) {
            size_t m = (size_t)(q - j->p);

            if (buf_reserve(j, m) != SG_OK)
                return SG_ENOMEM;
            memcpy(j->buf + j->n, j->p, m);
            j->n += m;
            j->p = q;
        }
        if (j->p >= j->end)
            return js_error(j, SG_EFORMAT, "unterminated string");
        if (*j->p == '"') {
            j->p++;
            return SG_OK;
        }
        if ((unsigned char)*j->p < 0x20)
            return js_error(j, SG_EFORMAT, "control character in a string");
        /* backslash */
        j->p++;
        if (j->p >= j->end)
            return js_error(j, SG_EFORMAT, "unterminated string");
        switch (*j->p++) {
        case '"': rc = put_byte(j, '"'); break;
        case '\\': rc = put_byte(j, '\\'); break;
        case '/': rc = put_byte(j, '/'); break;
        case 'b': rc = put_byte(j, '\b'); break;
        case 'f': rc = put_byte(j, '\f'); break;
        case 'n': rc = put_byte(j, '\n'); break;
        case 'r': rc = put_byte(j, '\r'); break;
        case 't': rc = put_byte(j, '\t'); break;
        case 'u': {
            uint32_t cp, lo;

            rc = hex4(j, &cp);
            if (rc != SG_OK)
                return rc;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return js_error(j, SG_EFORMAT, "lone low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
                    return js_error(j, SG_EFORMAT, "lone high surrogate in \\u escape");
                j->p += 2;
                rc = hex4(j, &lo);
                if (rc != SG_OK)
                    return rc;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return js_error(j, SG_EFORMAT, "bad surrogate pair in \\u escape");
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            rc = put_utf8(j, cp);
            break;
        }
        default:
            j->p--;
            return js_error(j, SG_EFORMAT, "bad escape in a string");
        }
        if (rc != SG_OK)
            return js_error(j, SG_ENOMEM, "out of memory");
    }
}

/* Skip a string without decoding it. */
static int skip_string(struct js *j)
{
    ws(j);
    if (j->p >= j->end || *j->p != '"')
        return js_error(j, SG_EFORMAT, "expected a string");
    for (j->p++; j->p < j->end; j->p++) {
        if (*j->p == '\\') {
            j->p++;
            continue;
        }
        if (*j->p == '"') {
            j->p++;
            return SG_OK;
        }
    }
    return js_error(j, SG_EFORMAT, "unterminated string");
}

static int js_skip_depth(struct js *j, int depth)
{
    int rc;

    ws(j);
    if (j->p >= j->end)
        return js_error(j, SG_EFORMAT, "unexpected end of file");
    if (depth > 64)
        return js_error(j, SG_EFORMAT, "nesting deeper than 64");
    switch (*j->p) {
    case '"':
        return skip_string(j);
    case '{':
        j->p++;
        if (peek_eat(j, '}'))
            return SG_OK;
        for (;;) {
            rc = skip_string(j);
            if (rc == SG_OK)
                rc = expect(j, ':');
            if (rc == SG_OK)
                rc = js_skip_depth(j, depth + 1);
            if (rc != SG_OK)
                return rc;
            if (peek_eat(j, '}'))
                return SG_OK;
            rc = expect(j, ',');
            if (rc != SG_OK)
                return rc;
        }
    case '[':
        j->p++;
        if (peek_eat(j, ']'))
            return SG_OK;
        for (;;) {
            rc = js_skip_depth(j, depth + 1);
            if (rc != SG_OK)
                return rc;
            if (peek_eat(j, ']'))
                return SG_OK;
            rc = expect(j, ',');
            if (rc != SG_OK)
                return rc;
        }
    default: {
        const char *q = j->p;

        while (q < j->end && (*q == '-' || *q == '+' || *q == '.' || (*q >= '0' && *q <= '9') ||
                              (*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z')))
            q++;
        if (q == j->p)
            return js_error(j, SG_EFORMAT, "expected a JSON value");
        j->p = q;
        return SG_OK;
    }
    }
}

static int js_skip(struct js *j)
{
    return js_skip_depth(j, 0);
}

static int is_word(struct js *j, const char *w)
{
    size_t n = strlen(w);

    ws(j);
    if ((size_t)(j->end - j->p) >= n && memcmp(j->p, w, n) == 0) {
        j->p += n;
        return 1;
    }
    return 0;
}

static int js_bool(struct js *j, int *v)
{
    if (is_word(j, "true")) {
        *v = 1;
        return SG_OK;
    }
    if (is_word(j, "false") || is_word(j, "null")) {
        *v = 0;
        return SG_OK;
    }
    return js_error(j, SG_EFORMAT, "expected true or false");
}

static int js_int(struct js *j, long long *v)
{
    long long x = 0;
    int neg = 0, digits = 0;

    ws(j);
    if (j->p < j->end && *j->p == '-') {
        neg = 1;
        j->p++;
    }
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (x > (1ll << 40))
            return js_error(j, SG_EFORMAT, "integer too large");
        x = x * 10 + (*j->p - '0');
        j->p++;
        digits++;
    }
    if (!digits || (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')))
        return js_error(j, SG_EFORMAT, "expected an integer");
    *v = neg ? -x : x;
    return SG_OK;
}

static int key_is(const struct js *j, const char *k)
{
    return j->n == strlen(k) && memcmp(j->buf, k, j->n) == 0;
}

/* Iterate an object: call with *first = 1; returns 1 with the key in j->buf and the parser
 * before the value, 0 at the end, negative on error. */
static int obj_next(struct js *j, int *first)
{
    int rc;

    if (*first) {
        rc = expect(j, '{');
        if (rc != SG_OK)
            return rc;
        *first = 0;
        if (peek_eat(j, '}'))
            return 0;
    } else {
        if (peek_eat(j, '}'))
            return 0;
        rc = expect(j, ',');
        if (rc != SG_OK)
            return rc;
    }
    rc = js_string(j);
    if (rc == SG_OK)
        rc = expect(j, ':');
    return rc == SG_OK ? 1 : rc;
}

/* Same for arrays: returns 1 before each element, 0 at the end. */
static int arr_next(struct js *j, int *first)
{
    int rc;

    if (*first) {
        rc = expect(j, '[');
        if (rc != SG_OK)
            return rc;
        *first = 0;
        return peek_eat(j, ']') ? 0 : 1;
    }
    if (peek_eat(j, ']'))
        return 0;
    rc = expect(j, ',');
    return rc == SG_OK ? 1 : rc;
}

/* ---- The tokenizer.json structure ---------------------------------------------------------- */

struct added {
    int32_t id;
    uint32_t off, len; /* content in the pool */
    int special, normalized;
};

struct vent {
    int32_t id;
    uint32_t off, len;
};

struct pool {
    char *s;
    size_t n, cap;
};

static int pool_add(struct pool *p, const char *s, size_t n, uint32_t *off)
{
    if (p->n + n > p->cap) {
        size_t cap = (p->cap + n) * 2;
        char *b;

        if (cap > UINT32_MAX)
            return SG_ERANGE;
        b = realloc(p->s, cap);
        if (!b)
            return SG_ENOMEM;
        p->s = b;
        p->cap = cap;
    }
    memcpy(p->s + p->n, s, n);
    *off = (uint32_t)p->n;
    p->n += n;
    return SG_OK;
}

struct spans {
    const char *added, *normalizer, *pre_tokenizer, *model;
    const char *vocab, *merges;
    int byte_fallback, fuse_unk, ignore_merges;
    char unk[64];
    int has_unk;
};

/* Normalizer: null, Replace ' ' -> U+2581, or a Sequence of such. */
static int parse_normalizer(struct js *j, struct tok_opts *o, int depth)
{
    int first = 1, r, rc;
    char type[32] = "";
    int replace_ok = 0, seen_pattern = 0, seen_content = 0;

    if (is_word(j, "null"))
        return SG_OK;
    if (depth > 4)
        return js_error(j, SG_EUNSUPPORTED, "normalizer nested too deeply");
    while ((r = obj_next(j, &first)) == 1) {
        if (key_is(j, "type")) {
            rc = js_string(j);
            if (rc != SG_OK)
                return rc;
            snprintf(type, sizeof type, "%.*s", (int)(j->n < 31 ? j->n : 31), j->buf);
        } else if (key_is(j, "normalizers")) {
            int f2 = 1, r2;

            while ((r2 = arr_next(j, &f2)) == 1) {
                rc = parse_normalizer(j, o, depth + 1);
                if (rc != SG_OK)
                    return rc;
            }
            if (r2 < 0)
                return r2;
        } else if (key_is(j, "pattern")) {
            int f2 = 1, r2;

            while ((r2 = obj_next(j, &f2)) == 1) {
                int is_string = key_is(j, "String");

                rc = js_string(j);
                if (rc != SG_OK)
                    return rc;
                if (!is_string || j->n != 1 || j->buf[0] != ' ')
                    return js_error(j, SG_EUNSUPPORTED,
                                    "normalizer Replace: only the pattern String \" \" is supported");
                seen_pattern = 1;
            }
            if (r2 < 0)
                return r2;
        } else if (key_is(j, "content")) {
            rc = js_string(j);
            if (rc != SG_OK)
                return rc;
            if (j->n != 3 || memcmp(j->buf, "\xe2\x96\x81", 3) != 0)
                return js_error(j, SG_EUNSUPPORTED,
                                "normalizer Replace: only the content \"\\u2581\" is supported");
            seen_content = 1;
        } else {
            rc = js_skip(j);
            if (rc != SG_OK)
                return rc;
        }
    }
    if (r < 0)
        return r;
    if (strcmp(type, "Sequence") == 0)
        return SG_OK;
    if (strcmp(type, "Replace") == 0) {
        replace_ok = seen_pattern && seen_content;
        if (!replace_ok)
            return js_error(j, SG_EUNSUPPORTED, "normalizer Replace without pattern or content");
        o->escape_spaces = 1;
        return SG_OK;
    }
    return js_error(j, SG_EUNSUPPORTED, "normalizer type not supported (Gemma uses Replace)");
}

/* Pre-tokenizer: null, or Split(String " ", invert false), a no-op once the normalizer has
 * escaped the spaces (`escaped`): HF splits the normalized text, which holds no ' '. */
static int parse_pre_tokenizer(struct js *j, int escaped)
{
    int first = 1, r, rc;
    int split = 0, space = 0, inverted = 0;

    if (is_word(j, "null"))
        return SG_OK;
    while ((r = obj_next(j, &first)) == 1) {
        if (key_is(j, "type")) {
            if ((rc = js_string(j)) != SG_OK)
                return rc;
            split = j->n == 5 && memcmp(j->buf, "Split", 5) == 0;
        } else if (key_is(j, "pattern")) {
            int f2 = 1, r2;

            while ((r2 = obj_next(j, &f2)) == 1) {
                int is_string = key_is(j, "String");

                if ((rc = js_string(j)) != SG_OK)
                    return rc;
                space = is_string && j->n == 1 && j->buf[0] == ' ';
            }
            if (r2 < 0)
                return r2;
        } else if (key_is(j, "invert")) {
            inverted = is_word(j, "true");
            if (!inverted && !is_word(j, "false"))
                return js_error(j, SG_EFORMAT, "pre_tokenizer Split: invert must be true or false");
        } else if ((rc = js_skip(j)) != SG_OK) {
            return rc;
        }
    }
    if (r < 0)
        return r;
    if (!split || !space || inverted || !escaped)
        return js_error(j, SG_EUNSUPPORTED,
                        "pre_tokenizer is not supported (supported: none, or Gemma 3's Split on "
                        "String \" \" after a normalizer that replaces ' ' by U+2581)");
    return SG_OK;
}

static int parse_model(struct js *j, struct spans *sp)
{
    int first = 1, r, rc;
    int is_bpe = 0;

    while ((r = obj_next(j, &first)) == 1) {
        if (key_is(j, "type")) {
            rc = js_string(j);
            if (rc != SG_OK)
                return rc;
            if (!key_is(j, "BPE"))
                return js_error(j, SG_EUNSUPPORTED, "model type is not BPE");
            is_bpe = 1;
        } else if (key_is(j, "vocab")) {
            ws(j);
            sp->vocab = j->p;
            rc = js_skip(j);
            if (rc != SG_OK)
                return rc;
        } else if (key_is(j, "merges")) {
            ws(j);
            sp->merges = j->p;
            rc = js_skip(j);
            if (rc != SG_OK)
                return rc;
        } else if (key_is(j, "byte_fallback")) {
            rc = js_bool(j, &sp->byte_fallback);
            if (rc != SG_OK)
                return rc;
        } else if (key_is(j, "fuse_unk")) {
            rc = js_bool(j, &sp->fuse_unk);
            if (rc != SG_OK)
                return rc;
        } else if (key_is(j, "ignore_merges")) {
            rc = js_bool(j, &sp->ignore_merges);
            if (rc != SG_OK)
                return rc;
            if (sp->ignore_merges)
                return js_error(j, SG_EUNSUPPORTED, "model.ignore_merges true is not supported");
        } else if (key_is(j, "unk_token")) {
            if (is_word(j, "null"))
                continue;
            rc = js_string(j);
            if (rc != SG_OK)
                return rc;
            if (j->n >= sizeof sp->unk)
                return js_error(j, SG_EUNSUPPORTED, "model.unk_token too long");
            memcpy(sp->unk, j->buf, j->n);
            sp->unk[j->n] = '\0';
            sp->has_unk = 1;
        } else if (key_is(j, "dropout")) {
            ws(j);
            if (!is_word(j, "null") && !is_word(j, "0.0") && !is_word(j, "0"))
                return js_error(j, SG_EUNSUPPORTED, "BPE dropout is not supported");
        } else if (key_is(j, "continuing_subword_prefix") || key_is(j, "end_of_word_suffix")) {
            if (is_word(j, "null"))
                continue;
            rc = js_string(j);
            if (rc != SG_OK)
                return rc;
            if (j->n != 0)
                return js_error(j, SG_EUNSUPPORTED, "BPE subword prefix/suffix not supported");
        } else {
            rc = js_skip(j);
            if (rc != SG_OK)
                return rc;
        }
    }
    if (r < 0)
        return r;
    if (!is_bpe)
        return js_error(j, SG_EUNSUPPORTED, "model has no \"type\": \"BPE\"");
    if (!sp->vocab || !sp->merges)
        return js_error(j, SG_EFORMAT, "model without vocab or merges");
    return SG_OK;
}

static int parse_added(struct js *j, struct pool *pool, struct added **out, size_t *n_out)
{
    int first = 1, r, rc;
    struct vec a = {NULL, 0, 0};

    while ((r = arr_next(j, &first)) == 1) {
        int f2 = 1, r2;
        struct added cur = {-1, 0, 0, 0, 0};
        int has_content = 0;

        while ((r2 = obj_next(j, &f2)) == 1) {
            if (key_is(j, "id")) {
                long long v;

                rc = js_int(j, &v);
                if (rc != SG_OK)
                    goto fail;
                if (v < 0 || v >= (1 << 24)) {
                    rc = js_error(j, SG_EFORMAT, "added token id out of range");
                    goto fail;
                }
                cur.id = (int32_t)v;
            } else if (key_is(j, "content")) {
                rc = js_string(j);
                if (rc == SG_OK)
                    rc = pool_add(pool, j->buf, j->n, &cur.off);
                if (rc != SG_OK)
                    goto fail;
                cur.len = (uint32_t)j->n;
                has_content = 1;
            } else if (key_is(j, "special")) {
                rc = js_bool(j, &cur.special);
                if (rc != SG_OK)
                    goto fail;
            } else if (key_is(j, "normalized")) {
                rc = js_bool(j, &cur.normalized);
                if (rc != SG_OK)
                    goto fail;
            } else if (key_is(j, "lstrip") || key_is(j, "rstrip") || key_is(j, "single_word")) {
                int v;
                char what[64];

                snprintf(what, sizeof what, "added token flag %.*s true is not supported",
                         (int)(j->n < 20 ? j->n : 20), j->buf);
                rc = js_bool(j, &v);
                if (rc != SG_OK)
                    goto fail;
                if (v) {
                    rc = js_error(j, SG_EUNSUPPORTED, what);
                    goto fail;
                }
            } else {
                rc = js_skip(j);
                if (rc != SG_OK)
                    goto fail;
            }
        }
        if (r2 < 0) {
            rc = r2;
            goto fail;
        }
        if (cur.id < 0 || !has_content || cur.len == 0) {
            rc = js_error(j, SG_EFORMAT, "added token without id or content");
            goto fail;
        }
        rc = vec_push(&a, &cur, sizeof cur, 64);
        if (rc != SG_OK)
            goto fail;
    }
    if (r < 0) {
        rc = r;
        goto fail;
    }
    *out = a.p;
    *n_out = a.n;
    return SG_OK;
fail:
    free(a.p);
    return rc;
}

static int parse_vocab(struct js *j, struct pool *pool, struct vent **out, size_t *n_out)
{
    int first = 1, r, rc;
    struct vec v = {NULL, 0, 0};

    while ((r = obj_next(j, &first)) == 1) {
        long long id;
        struct vent cur;

        rc = pool_add(pool, j->buf, j->n, &cur.off);
        if (rc != SG_OK)
            goto fail;
        cur.len = (uint32_t)j->n;
        rc = js_int(j, &id);
        if (rc != SG_OK)
            goto fail;
        if (id < 0 || id >= (1 << 24)) {
            rc = js_error(j, SG_EFORMAT, "vocab id out of range");
            goto fail;
        }
        cur.id = (int32_t)id;
        rc = vec_push(&v, &cur, sizeof cur, 65536);
        if (rc != SG_OK)
            goto fail;
    }
    if (r < 0) {
        rc = r;
        goto fail;
    }
    *out = v.p;
    *n_out = v.n;
    return SG_OK;
fail:
    free(v.p);
    return rc;
}

/* Resolve the merge "a b" (a in buf[0..na), b after) to ids and add it. */
static int add_merge_str(struct js *j, struct sg_tok *t, const char *a, size_t na, const char *b,
                         size_t nb, int32_t rank, char **cat, size_t *catcap)
{
    int32_t ia = tok_lookup(t, a, na), ib = tok_lookup(t, b, nb), ic;

    if (na + nb > *catcap) {
        size_t c2 = (na + nb) * 2;
        char *p = realloc(*cat, c2);

        if (!p)
            return SG_ENOMEM;
        *cat = p;
        *catcap = c2;
    }
    memcpy(*cat, a, na);
    memcpy(*cat + na, b, nb);
    ic = tok_lookup(t, *cat, na + nb);
    if (ia < 0 || ib < 0 || ic < 0) {
        char msg[160];

        snprintf(msg, sizeof msg, "merge %ld (\"%.*s\" + \"%.*s\") uses a piece not in the vocab",
                 (long)rank, (int)(na > 40 ? 40 : na), a, (int)(nb > 40 ? 40 : nb), b);
        return js_error(j, SG_EFORMAT, msg);
    }
    if (tok_add_merge(t, ia, ib, rank, ic) != SG_OK)
        return SG_ENOMEM;
    return SG_OK;
}

static int parse_merges(struct js *j, struct sg_tok *t)
{
    int first = 1, r, rc = SG_OK;
    int32_t rank = 0;
    char *cat = NULL, *left = NULL;
    size_t catcap = 0, leftcap = 0;

    while ((r = arr_next(j, &first)) == 1) {
        ws(j);
        if (j->p < j->end && *j->p == '[') {
            /* ["a", "b"] */
            size_t na;

            j->p++;
            rc = js_string(j);
            if (rc != SG_OK)
                break;
            if (j->n > leftcap) {
                char *p = realloc(left, j->n * 2);

                if (!p) {
                    rc = SG_ENOMEM;
                    break;
                }
                left = p;
                leftcap = j->n * 2;
            }
            memcpy(left, j->buf, j->n);
            na = j->n;
            rc = expect(j, ',');
            if (rc == SG_OK)
                rc = js_string(j);
            if (rc == SG_OK)
                rc = expect(j, ']');
            if (rc == SG_OK)
                rc = add_merge_str(j, t, left, na, j->buf, j->n, rank, &cat, &catcap);
        } else {
            /* "a b": exactly one space */
            const char *sp;

            rc = js_string(j);
            if (rc != SG_OK)
                break;
            sp = memchr(j->buf, ' ', j->n);
            if (!sp || memchr(sp + 1, ' ', j->n - (size_t)(sp - j->buf) - 1)) {
                rc = js_error(j, SG_EFORMAT, "a merge is not two pieces separated by a space");
                break;
            }
            rc = add_merge_str(j, t, j->buf, (size_t)(sp - j->buf), sp + 1,
                               j->n - (size_t)(sp - j->buf) - 1, rank, &cat, &catcap);
        }
        if (rc != SG_OK)
            break;
        rank++;
    }
    if (rc == SG_OK && r < 0)
        rc = r;
    free(cat);
    free(left);
    return rc;
}

/* Pass 1 over tokenizer.json: find its parts (into sp), check that there is no pre-tokenizer,
 * read the normalizer (into opts) and the model's options. */
static int find_parts(struct js *j, struct spans *sp, struct tok_opts *opts)
{
    int first = 1, r, rc = SG_OK;

    while ((r = obj_next(j, &first)) == 1) {
        const char **slot = NULL;

        if (key_is(j, "added_tokens"))
            slot = &sp->added;
        else if (key_is(j, "normalizer"))
            slot = &sp->normalizer;
        else if (key_is(j, "pre_tokenizer"))
            slot = &sp->pre_tokenizer;
        else if (key_is(j, "model"))
            slot = &sp->model;
        ws(j);
        if (slot)
            *slot = j->p;
        rc = js_skip(j);
        if (rc != SG_OK)
            return rc;
    }
    if (r < 0)
        return r;
    ws(j);
    if (j->p != j->end)
        return js_error(j, SG_EFORMAT, "trailing characters after the JSON object");
    if (!sp->model)
        return sg_errf(j->err, j->errlen, SG_EFORMAT, NULL, "%s: no \"model\"", j->name);
    if (sp->normalizer) {
        j->p = sp->normalizer;
        rc = parse_normalizer(j, opts, 0);
        if (rc != SG_OK)
            return rc;
    }
    if (sp->pre_tokenizer) {
        j->p = sp->pre_tokenizer;
        rc = parse_pre_tokenizer(j, opts->escape_spaces);
        if (rc != SG_OK)
            return rc;
    }
    j->p = sp->model;
    rc = parse_model(j, sp);
    if (rc != SG_OK)
        return rc;
    opts->byte_fallback = sp->byte_fallback;
    opts->fuse_unk = sp->fuse_unk;
    return SG_OK;
}

int tok_load_json_mem(struct sg_tok **out, const char *buf, size_t n, const char *name, char *err,
                      size_t errlen)
{
    struct js j = {buf, buf, buf + n, name, err, errlen, NULL, 0, 0};
    struct spans sp;
    struct pool pool = {NULL, 0, 0};
    struct added *added = NULL;
    struct vent *vocab = NULL;
    size_t n_added = 0, n_vocab_ent = 0;
    struct sg_tok *t = NULL;
    struct tok_opts opts;
    int rc = SG_OK;
    int32_t max_id = -1;

    *out = NULL;
    memset(&sp, 0, sizeof sp);
    sp.fuse_unk = 0;
    memset(&opts, 0, sizeof opts);

    /* Pass 1: find the parts. */
    rc = find_parts(&j, &sp, &opts);
    if (rc != SG_OK)
        goto fail;

    /* Pass 2: vocab and added tokens give the pieces. */
    j.p = sp.vocab;
    rc = parse_vocab(&j, &pool, &vocab, &n_vocab_ent);
    if (rc != SG_OK)
        goto fail;
    if (sp.added) {
        j.p = sp.added;
        rc = parse_added(&j, &pool, &added, &n_added);
        if (rc != SG_OK)
            goto fail;
    }
    for (size_t i = 0; i < n_vocab_ent; i++)
        if (vocab[i].id > max_id)
            max_id = vocab[i].id;
    for (size_t i = 0; i < n_added; i++)
        if (added[i].id > max_id)
            max_id = added[i].id;
    if (max_id < 0) {
        rc = sg_errf(err, errlen, SG_EFORMAT, NULL, "%s: empty vocabulary", name);
        goto fail;
    }
    t = tok_new(max_id + 1);
    if (!t) {
        rc = sg_errf(err, errlen, SG_ENOMEM, NULL, "%s: out of memory", name);
        goto fail;
    }
    t->opts = opts;
    snprintf(t->source, sizeof t->source, "tokenizer.json");
    for (size_t i = 0; i < n_vocab_ent; i++) {
        rc = tok_set_piece(t, vocab[i].id, pool.s + vocab[i].off, vocab[i].len, 0.0f, 0, err,
                           errlen);
        if (rc != SG_OK)
            goto fail_named;
    }
    for (size_t i = 0; i < n_added; i++) {
        int32_t id = added[i].id;

        if (t->flags[id] & TOKF_SET) {
            if (t->len[id] != added[i].len ||
                memcmp(t->str + t->off[id], pool.s + added[i].off, added[i].len) != 0) {
                rc = sg_errf(err, errlen, SG_EFORMAT, NULL,
                             "%s: added token %ld differs from the vocab's piece", name,
                             (long)id);
                goto fail;
            }
            continue;
        }
        rc = tok_set_piece(t, id, pool.s + added[i].off, added[i].len, 0.0f, 0, err, errlen);
        if (rc != SG_OK)
            goto fail_named;
    }
    rc = tok_index(t, err, errlen);
    if (rc != SG_OK)
        goto fail_named;

    /* Pass 3: merges and added-token flags. */
    rc = tok_reserve_merges(t, 590000);
    if (rc != SG_OK)
        goto fail;
    j.p = sp.merges;
    rc = parse_merges(&j, t);
    if (rc != SG_OK)
        goto fail;
    for (size_t i = 0; i < n_added; i++) {
        rc = tok_add_added(t, added[i].id, added[i].special, added[i].normalized);
        if (rc != SG_OK) {
            rc = sg_errf(err, errlen, SG_EFORMAT, NULL, "%s: bad added token %ld", name,
                         (long)added[i].id);
            goto fail;
        }
        if (added[i].special)
            t->flags[added[i].id] |= TOKF_NOCHAR;
    }
    if (sp.has_unk) {
        t->unk = tok_lookup(t, sp.unk, strlen(sp.unk));
        if (t->unk < 0) {
            rc = sg_errf(err, errlen, SG_EFORMAT, NULL, "%s: unk_token '%s' is not in the vocab",
                         name, sp.unk);
            goto fail;
        }
    }
    t->bos = tok_lookup(t, "<bos>", 5);
    t->eos = tok_lookup(t, "<eos>", 5);
    rc = tok_finish(t, err, errlen);
    if (rc != SG_OK)
        goto fail_named;
    free(added);
    free(vocab);
    free(pool.s);
    free(j.buf);
    *out = t;
    return SG_OK;
fail_named:
    /* prefix the builder's message with the file name */
    if (err && errlen > 0) {
        char tmp[512];

        snprintf(tmp, sizeof tmp, "%s", err);
        snprintf(err, errlen, "%s: %s", name, tmp);
    }
fail:
    if (rc == SG_ENOMEM && err && errlen > 0 && err[0] == '\0')
        snprintf(err, errlen, "%s: out of memory", name);
    sg_tok_free(t);
    free(added);
    free(vocab);
    free(pool.s);
    free(j.buf);
    return rc;
}

int tok_load_json(struct sg_tok **out, const char *path, char *err, size_t errlen)
{
    char *buf;
    size_t n;
    int rc;

    *out = NULL;
    rc = sg_read_file(path, TOK_FILE_MAX, &buf, &n, err, errlen);
    if (rc != SG_OK)
        return rc;
    rc = tok_load_json_mem(out, buf, n, path, err, errlen);
    free(buf);
    return rc;
}

/* Mark as special the pieces a tokenizer_config.json names: added_tokens_decoder entries with
 * "special": true and the additional_special_tokens list. Unknown pieces are ignored (the
 * config may name tokens the model lacks). */
static int mark_special(struct sg_tok *t, const char *s, size_t n)
{
    int32_t id = tok_lookup(t, s, n);

    if (id >= 0)
        t->flags[id] |= TOKF_SPECIAL;
    return SG_OK;
}

int tok_json_config_specials(struct sg_tok *t, const char *buf, size_t n, const char *name,
                             char *err, size_t errlen)
{
    struct js j = {buf, buf, buf + n, name, err, errlen, NULL, 0, 0};
    int first = 1, r, rc = SG_OK;

    while ((r = obj_next(&j, &first)) == 1) {
        if (key_is(&j, "added_tokens_decoder")) {
            int f2 = 1, r2;

            while ((r2 = obj_next(&j, &f2)) == 1) {
                int f3 = 1, r3, special = 0;
                char *content = NULL;
                size_t clen = 0;

                while ((r3 = obj_next(&j, &f3)) == 1) {
                    if (key_is(&j, "content")) {
                        rc = js_string(&j);
                        if (rc != SG_OK)
                            break;
                        free(content);
                        content = malloc(j.n + 1);
                        if (!content) {
                            rc = SG_ENOMEM;
                            break;
                        }
                        memcpy(content, j.buf, j.n);
                        clen = j.n;
                    } else if (key_is(&j, "special")) {
                        rc = js_bool(&j, &special);
                        if (rc != SG_OK)
                            break;
                    } else {
                        rc = js_skip(&j);
                        if (rc != SG_OK)
                            break;
                    }
                }
                if (rc == SG_OK && r3 < 0)
                    rc = r3;
                if (rc == SG_OK && special && content)
                    rc = mark_special(t, content, clen);
                free(content);
                if (rc != SG_OK)
                    goto done;
            }
            if (r2 < 0) {
                rc = r2;
                goto done;
            }
        } else if (key_is(&j, "additional_special_tokens")) {
            int f2 = 1, r2;

            while ((r2 = arr_next(&j, &f2)) == 1) {
                ws(&j);
                if (j.p < j.end && *j.p == '"') {
                    rc = js_string(&j);
                    if (rc == SG_OK)
                        rc = mark_special(t, j.buf, j.n);
                } else {
                    int f3 = 1, r3;

                    while ((r3 = obj_next(&j, &f3)) == 1) {
                        if (key_is(&j, "content")) {
                            rc = js_string(&j);
                            if (rc == SG_OK)
                                rc = mark_special(t, j.buf, j.n);
                        } else {
                            rc = js_skip(&j);
                        }
                        if (rc != SG_OK)
                            break;
                    }
                    if (rc == SG_OK && r3 < 0)
                        rc = r3;
                }
                if (rc != SG_OK)
                    goto done;
            }
            if (r2 < 0) {
                rc = r2;
                goto done;
            }
        } else {
            rc = js_skip(&j);
            if (rc != SG_OK)
                goto done;
        }
    }
    if (r < 0)
        rc = r;
done:
    free(j.buf);
    return rc;
}
