/*
 * tok_encode.c: Gemma's SentencePiece-BPE encoding over the tables of tok_table.h: added-token
 * matching, BPE, and decoding. Behaviour is documented in docs/TOKENIZER.md.
 *
 * Encoding, as Hugging Face tokenizers does it for Gemma:
 *   1. Added tokens are split out of the raw text, leftmost-longest (HF's Aho-Corasick with
 *      MatchKind::LeftmostLongest). Special ones only count inside SG_TOK_TEMPLATE text.
 *   2. The text between them is normalized (' ' -> U+2581) and, if the tokenizer has added
 *      tokens flagged `normalized`, split again by those.
 *   3. Each remaining piece is one BPE word: characters (or their <0xXX> bytes when the
 *      character has no piece), then merges by rank, leftmost on ties, with HF's exact
 *      priority-queue semantics (BPE::merge_word in tokenizers/src/models/bpe/word.rs).
 */
#include "tok_table.h"

#include <stdlib.h>
#include <string.h>

#include "sg_engine.h"

/* ---- Encoding ----------------------------------------------------------------------------- */

struct sym {
    int32_t id;
    int32_t prev;
    int32_t next;
    uint32_t len; /* bytes; 0 = merged away */
};

struct pair {
    int32_t rank;
    int32_t pos;
    int32_t id;
};

struct wc_slot {
    uint64_t hash;
    uint32_t off, len;   /* word bytes in wc_bytes */
    uint32_t ids, n_ids; /* ids in wc_ids; n_ids 0 = empty slot */
};

struct enc {
    const struct sg_tok *t;
    const char *text; /* the raw text, segments concatenated */
    size_t n;
    const sg_tok_seg *segs;
    size_t n_segs;
    size_t *seg_start;  /* (n_segs + 1) offsets of the segments in text */
    int all_template;   /* every byte is template text */
    int all_user;       /* no byte is template text */
    int32_t *ids;
    size_t cap;
    size_t count;
    char *norm;         /* normalized text of one chunk */
    size_t norm_cap;
    struct sym *sym;
    size_t sym_cap;
    struct pair *heap;
    size_t heap_cap;
    int32_t *wbuf;      /* (sym_cap) ids of one word */
    struct wc_slot *wc; /* word cache, NULL for short texts */
    uint32_t wc_mask;
    size_t wc_used;
    char *wc_bytes;
    size_t wc_bytes_n, wc_bytes_cap;
    int32_t *wc_ids;
    size_t wc_ids_n, wc_ids_cap;
};

static inline void emit(struct enc *e, int32_t id)
{
    if (e->count < e->cap)
        e->ids[e->count] = id;
    e->count++;
}

/* 1 if text[a..b) lies wholly in template segments. */
static int in_template(const struct enc *e, size_t a, size_t b)
{
    size_t lo = 0, hi = e->n_segs;

    if (e->all_template)
        return 1;
    if (e->all_user)
        return 0;
    /* the last segment whose start <= a and that is not empty at a */
    while (lo + 1 < hi) {
        size_t mid = (lo + hi) / 2;

        if (e->seg_start[mid] <= a)
            lo = mid;
        else
            hi = mid;
    }
    for (size_t s = lo; s < e->n_segs && e->seg_start[s] < b; s++) {
        if (e->seg_start[s + 1] <= a)
            continue;
        if (e->segs[s].mode != SG_TOK_TEMPLATE)
            return 0;
    }
    return 1;
}

/* Longest added token of `tr` starting at s[i] (n bytes in all) that is allowed; returns its
 * length and sets *id, or 0. Specials are allowed only if `allow` says so for their range. */
static size_t trie_match(const struct enc *e, const struct tok_trie *tr, const char *s, size_t n,
                         size_t i, size_t raw_base, int raw, int chunk_template, int32_t *id)
{
    int32_t node = tr->root[(uint8_t)s[i]];
    size_t best = 0;

    for (size_t j = i; node >= 0;) {
        int32_t tid = tr->nodes[node].id;

        if (tid >= 0) {
            int ok = 1;

            if (e->t->flags[tid] & TOKF_SPECIAL)
                ok = raw ? in_template(e, raw_base + i, raw_base + j + 1) : chunk_template;
            if (ok) {
                best = j + 1 - i;
                *id = tid;
            }
        }
        if (++j >= n)
            break;
        node = tr->nodes[node].child;
        while (node >= 0 && tr->nodes[node].byte != (uint8_t)s[j])
            node = tr->nodes[node].sibling;
    }
    return best;
}

static inline int pair_less(const struct pair *a, const struct pair *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(struct pair *h, size_t *n, struct pair p)
{
    size_t i = (*n)++;

    while (i > 0) {
        size_t up = (i - 1) / 2;

        if (!pair_less(&p, &h[up]))
            break;
        h[i] = h[up];
        i = up;
    }
    h[i] = p;
}

static struct pair heap_pop(struct pair *h, size_t *n)
{
    struct pair top = h[0], last = h[--(*n)];
    size_t i = 0, m = *n;

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= m)
            break;
        if (c + 1 < m && pair_less(&h[c + 1], &h[c]))
            c++;
        if (!pair_less(&h[c], &last))
            break;
        h[i] = h[c];
        i = c;
    }
    if (m > 0)
        h[i] = last;
    return top;
}

/* A merge result usable here: specials only in all-template text. */
static inline const struct tok_merge *merge_ok(const struct sg_tok *t, int32_t a, int32_t b,
                                               int allow_special)
{
    const struct tok_merge *m = tok_merge_find(t, a, b);

    if (m && !allow_special && (t->flags[m->id] & TOKF_SPECIAL))
        return NULL;
    return m;
}

/* BPE over one word s[0..n) (normalized text): writes its ids to out (room for n) and returns
 * their count. */
static size_t bpe_word(struct enc *e, const char *s, size_t n, int allow_special, int32_t *out)
{
    const struct sg_tok *t = e->t;
    struct sym *sym = e->sym;
    struct pair *heap = e->heap;
    size_t ns = 0, nh = 0;
    int32_t unk_len = 0; /* pending fused <unk> bytes */

    if (n == 0)
        return 0;
    /* 1. Characters to symbols (HF BPE::merge_word). */
    for (size_t i = 0; i < n;) {
        const unsigned char *p = (const unsigned char *)s + i;
        size_t k = sg_utf8_char_len(p, n - i);
        int32_t id = -1;
        int valid = k > 0;

        if (!valid) {
            k = 1; /* one invalid byte: it is its own character (docs/TOKENIZER.md) */
        } else if (k == 1) {
            id = t->ascii_id[p[0]];
        } else {
            id = tok_lookup(t, (const char *)p, k);
            if (id >= 0 && (t->flags[id] & TOKF_NOCHAR))
                id = -1;
        }
        if (id >= 0 && !allow_special && (t->flags[id] & TOKF_SPECIAL))
            id = -1;
        if (id < 0 && t->opts.byte_fallback) {
            int all = 1;

            for (size_t b = 0; b < k; b++)
                if (t->byte_id[p[b]] < 0 ||
                    (!allow_special && (t->flags[t->byte_id[p[b]]] & TOKF_SPECIAL)))
                    all = 0;
            if (all) {
                if (unk_len) {
                    sym[ns] = (struct sym){t->unk, (int32_t)ns - 1, (int32_t)ns + 1,
                                           (uint32_t)unk_len};
                    ns++;
                    unk_len = 0;
                }
                for (size_t b = 0; b < k; b++) {
                    sym[ns] = (struct sym){t->byte_id[p[b]], (int32_t)ns - 1, (int32_t)ns + 1, 1};
                    ns++;
                }
                i += k;
                continue;
            }
        }
        if (id < 0) {
            /* No piece and no byte pieces: <unk> (fused with a preceding one if fuse_unk). */
            if (t->unk >= 0) {
                if (unk_len && !t->opts.fuse_unk) {
                    sym[ns] = (struct sym){t->unk, (int32_t)ns - 1, (int32_t)ns + 1,
                                           (uint32_t)unk_len};
                    ns++;
                    unk_len = 0;
                }
                unk_len += (int32_t)k;
            }
            i += k;
            continue;
        }
        if (unk_len) {
            sym[ns] = (struct sym){t->unk, (int32_t)ns - 1, (int32_t)ns + 1, (uint32_t)unk_len};
            ns++;
            unk_len = 0;
        }
        sym[ns] = (struct sym){id, (int32_t)ns - 1, (int32_t)ns + 1, (uint32_t)k};
        ns++;
        i += k;
    }
    if (unk_len) {
        sym[ns] = (struct sym){t->unk, (int32_t)ns - 1, (int32_t)ns + 1, (uint32_t)unk_len};
        ns++;
    }
    if (ns == 0)
        return 0;
    sym[ns - 1].next = -1;

    /* 2. Merges: lowest rank first, leftmost on ties; stale entries are dropped exactly as HF's
     * Word::merge_all does (the pair now at pos must still map to the same new id). */
    for (size_t i = 0; i + 1 < ns; i++) {
        const struct tok_merge *m = merge_ok(t, sym[i].id, sym[i + 1].id, allow_special);

        if (m)
            heap_push(heap, &nh, (struct pair){m->rank, (int32_t)i, m->id});
    }
    while (nh > 0) {
        struct pair top = heap_pop(heap, &nh);
        struct sym *l = &sym[top.pos];
        const struct tok_merge *m;
        int32_t r;

        if (l->len == 0 || l->next < 0)
            continue;
        r = l->next;
        m = merge_ok(t, l->id, sym[r].id, allow_special);
        if (!m || m->id != top.id)
            continue;
        l->id = top.id;
        l->len += sym[r].len;
        l->next = sym[r].next;
        sym[r].len = 0;
        if (l->next >= 0)
            sym[l->next].prev = top.pos;
        if (l->prev >= 0) {
            m = merge_ok(t, sym[l->prev].id, l->id, allow_special);
            if (m)
                heap_push(heap, &nh, (struct pair){m->rank, l->prev, m->id});
        }
        if (l->next >= 0) {
            m = merge_ok(t, l->id, sym[l->next].id, allow_special);
            if (m)
                heap_push(heap, &nh, (struct pair){m->rank, top.pos, m->id});
        }
    }
    ns = 0;
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        out[ns++] = sym[i].id;
    return ns;
}

/* Word cache, per call: English repeats its words, and a cached word costs one hash probe
 * instead of a BPE run whose merge-table lookups miss the CPU caches. Keyed by the word's
 * bytes and whether specials are allowed. */
#define WC_MAX_WORD 64

static uint64_t word_hash(const char *s, size_t n, int allow_special)
{
    return tok_hash_bytes(s, n) * 2 + (uint64_t)(allow_special != 0);
}

static void bpe_cached(struct enc *e, const char *s, size_t n, int allow_special)
{
    struct wc_slot *slot = NULL;
    uint64_t h = 0;
    size_t k;

    if (n == 0)
        return;
    if (e->wc && n <= WC_MAX_WORD) {
        uint32_t i;

        h = word_hash(s, n, allow_special);
        i = (uint32_t)h & e->wc_mask;
        for (;;) {
            struct wc_slot *c = &e->wc[i];

            if (c->n_ids == 0) {
                slot = c;
                break;
            }
            if (c->hash == h && c->len == n && memcmp(e->wc_bytes + c->off, s, n) == 0) {
                for (uint32_t j = 0; j < c->n_ids; j++)
                    emit(e, e->wc_ids[c->ids + j]);
                return;
            }
            i = (i + 1) & e->wc_mask;
        }
    }
    k = bpe_word(e, s, n, allow_special, e->wbuf);
    for (size_t j = 0; j < k; j++)
        emit(e, e->wbuf[j]);
    /* remember it while the pools have room and the table is under 3/4 full */
    if (slot && k > 0 && e->wc_used * 4 < ((size_t)e->wc_mask + 1) * 3 &&
        e->wc_bytes_n + n <= e->wc_bytes_cap && e->wc_ids_n + k <= e->wc_ids_cap) {
        memcpy(e->wc_bytes + e->wc_bytes_n, s, n);
        memcpy(e->wc_ids + e->wc_ids_n, e->wbuf, k * sizeof *e->wbuf);
        slot->hash = h;
        slot->off = (uint32_t)e->wc_bytes_n;
        slot->len = (uint32_t)n;
        slot->ids = (uint32_t)e->wc_ids_n;
        slot->n_ids = (uint32_t)k;
        e->wc_bytes_n += n;
        e->wc_ids_n += k;
        e->wc_used++;
    }
}

/* BPE over normalized text. When no piece has U+2581 after another character (Gemma: none
 * of the 256000 does), no symbol can ever span the point before a U+2581 that follows another
 * character, so the word splits there into independent words with the same result: merges
 * never cross the split, and HF's merge order only matters between adjacent symbols. Small
 * words keep the priority queue in cache. */
static void bpe_text(struct enc *e, const char *s, size_t n, int allow_special)
{
    size_t start = 0;

    if (!e->t->ws_split) {
        bpe_cached(e, s, n, allow_special);
        return;
    }
    for (size_t i = 3; i + 3 <= n; i++) {
        if (s[i] == '\xe2' && s[i + 1] == '\x96' && s[i + 2] == '\x81' &&
            !(s[i - 3] == '\xe2' && s[i - 2] == '\x96' && s[i - 1] == '\x81')) {
            bpe_cached(e, s + start, i - start, allow_special);
            start = i;
            i += 2;
        }
    }
    bpe_cached(e, s + start, n - start, allow_special);
}

/* Normalize raw[0..n) into e->norm; returns the normalized length. `at_start`: the chunk begins
 * the whole text (SentencePiece's dummy prefix goes there). */
static size_t normalize(struct enc *e, const char *raw, size_t n, int at_start)
{
    const struct tok_opts *o = &e->t->opts;
    char *out = e->norm;
    size_t m = 0;
    int prev_space = 0;

    if (o->remove_extra_ws) {
        while (n > 0 && *raw == ' ') {
            raw++;
            n--;
        }
        while (n > 0 && raw[n - 1] == ' ')
            n--;
    }
    if (n > 0 && at_start && o->add_dummy_prefix) {
        memcpy(out, "\xe2\x96\x81", 3);
        m = 3;
    }
    for (size_t i = 0; i < n; i++) {
        char c = raw[i];

        if (c == ' ') {
            if (o->remove_extra_ws && prev_space)
                continue;
            prev_space = 1;
            if (o->escape_spaces) {
                memcpy(out + m, "\xe2\x96\x81", 3);
                m += 3;
                continue;
            }
        } else {
            prev_space = 0;
        }
        out[m++] = c;
    }
    return m;
}

/* The text between two raw-text added tokens: normalize, split by normalized added tokens,
 * then BPE. */
static void encode_chunk(struct enc *e, size_t a, size_t b)
{
    const struct sg_tok *t = e->t;
    int chunk_template = in_template(e, a, b);
    size_t n, start = 0;

    if (a == b)
        return;
    n = normalize(e, e->text + a, b - a, a == 0);
    if (t->norm_trie.n > 1) {
        for (size_t i = 0; i < n;) {
            int32_t id = -1;
            size_t len = 0;

            if (t->norm_trie.root[(uint8_t)e->norm[i]] >= 0)
                len = trie_match(e, &t->norm_trie, e->norm, n, i, 0, 0, chunk_template, &id);
            if (len == 0) {
                i++;
                continue;
            }
            bpe_text(e, e->norm + start, i - start, chunk_template);
            emit(e, id);
            i += len;
            start = i;
        }
    }
    bpe_text(e, e->norm + start, n - start, chunk_template);
}

int sg_tok_encode_segs(const sg_tok *t, const sg_tok_seg *segs, size_t n_segs, int32_t *ids,
                       size_t cap, size_t *n)
{
    struct enc e;
    char *joined = NULL;
    size_t total = 0, chunk = 0;
    int rc = SG_OK;

    if (n)
        *n = 0;
    if (!t || !n || (n_segs > 0 && !segs) || (cap > 0 && !ids))
        return SG_EINVAL;
    memset(&e, 0, sizeof e);
    e.t = t;
    e.segs = segs;
    e.n_segs = n_segs;
    e.ids = ids;
    e.cap = cap;
    e.all_template = 1;
    e.all_user = 1;
    for (size_t i = 0; i < n_segs; i++) {
        if (segs[i].len > 0 && !segs[i].text)
            return SG_EINVAL;
        if (segs[i].mode != SG_TOK_USER && segs[i].mode != SG_TOK_TEMPLATE)
            return SG_EINVAL;
        if (segs[i].len > ((size_t)1 << 30) || total + segs[i].len > ((size_t)1 << 30))
            return SG_ERANGE;
        total += segs[i].len;
        if (segs[i].len > 0) {
            if (segs[i].mode == SG_TOK_TEMPLATE)
                e.all_user = 0;
            else
                e.all_template = 0;
        }
    }
    if (total == 0)
        return SG_OK;
    e.seg_start = malloc((n_segs + 1) * sizeof *e.seg_start);
    if (!e.seg_start)
        return SG_ENOMEM;
    e.seg_start[0] = 0;
    for (size_t i = 0; i < n_segs; i++)
        e.seg_start[i + 1] = e.seg_start[i] + segs[i].len;
    if (n_segs == 1) {
        e.text = segs[0].text;
    } else {
        joined = malloc(total);
        if (!joined) {
            rc = SG_ENOMEM;
            goto done;
        }
        for (size_t i = 0; i < n_segs; i++)
            if (segs[i].len)
                memcpy(joined + e.seg_start[i], segs[i].text, segs[i].len);
        e.text = joined;
    }
    e.n = total;
    /* Work space, once per call: normalization grows a space to 3 bytes (+3 for a dummy
     * prefix); a word has at most one symbol per normalized byte and the queue holds at most
     * 3 entries per symbol. */
    e.norm_cap = 3 * total + 3;
    e.sym_cap = e.norm_cap;
    e.heap_cap = 3 * e.sym_cap;
    e.norm = malloc(e.norm_cap);
    e.sym = malloc(e.sym_cap * sizeof *e.sym);
    e.heap = malloc(e.heap_cap * sizeof *e.heap);
    e.wbuf = malloc(e.sym_cap * sizeof *e.wbuf);
    if (!e.norm || !e.sym || !e.heap || !e.wbuf) {
        rc = SG_ENOMEM;
        goto done;
    }
    if (total >= 256) {
        /* about one word per 6 bytes of text; bounded so a huge text costs at most ~3 MB */
        size_t slots = 64;

        while (slots < total / 3 && slots < (1u << 16))
            slots *= 2;
        e.wc = calloc(slots, sizeof *e.wc);
        e.wc_bytes_cap = slots * 12;
        e.wc_ids_cap = slots * 4;
        e.wc_bytes = malloc(e.wc_bytes_cap);
        e.wc_ids = malloc(e.wc_ids_cap * sizeof *e.wc_ids);
        if (!e.wc || !e.wc_bytes || !e.wc_ids) {
            rc = SG_ENOMEM;
            goto done;
        }
        e.wc_mask = (uint32_t)(slots - 1);
    }

    /* Pass 1: added tokens in the raw text, leftmost-longest. */
    for (size_t i = 0; i < total;) {
        int32_t id = -1;
        size_t len = 0;

        if (t->raw_trie.root[(uint8_t)e.text[i]] >= 0)
            len = trie_match(&e, &t->raw_trie, e.text, total, i, 0, 1, 0, &id);
        if (len == 0) {
            i++;
            continue;
        }
        encode_chunk(&e, chunk, i);
        emit(&e, id);
        i += len;
        chunk = i;
    }
    encode_chunk(&e, chunk, total);
    *n = e.count;
    if (e.count > cap)
        rc = SG_ERANGE;
done:
    free(e.norm);
    free(e.sym);
    free(e.heap);
    free(e.wbuf);
    free(e.wc);
    free(e.wc_bytes);
    free(e.wc_ids);
    free(e.seg_start);
    free(joined);
    return rc;
}

int sg_tok_encode(const sg_tok *t, const char *text, size_t len, sg_tok_mode mode, int32_t *ids,
                  size_t cap, size_t *n)
{
    sg_tok_seg seg = {text, len, mode};

    return sg_tok_encode_segs(t, &seg, 1, ids, cap, n);
}

/* ---- Decoding ----------------------------------------------------------------------------- */

struct out {
    char *buf;
    size_t cap;
    size_t len;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;

        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

int sg_tok_decode(const sg_tok *t, const int32_t *ids, size_t n, char *buf, size_t cap,
                  size_t *len)
{
    struct out o = {buf, cap > 0 ? cap - 1 : 0, 0};
    unsigned char *bytes = NULL;

    if (len)
        *len = 0;
    if (!t || !len || (n > 0 && !ids) || (cap > 0 && !buf))
        return SG_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return SG_EINVAL;
    for (size_t i = 0; i < n;) {
        int32_t id = ids[i];
        const char *s = t->str + t->off[id];
        size_t m = t->len[id];

        if (t->flags[id] & TOKF_BYTE) {
            /* A run of byte pieces: its bytes if they form valid UTF-8, else one U+FFFD per
             * byte (HF's ByteFallback decoder). */
            size_t j = i, k = 0, ok = 1;

            while (j < n && (t->flags[ids[j]] & TOKF_BYTE))
                j++;
            if (!bytes) {
                bytes = malloc(n);
                if (!bytes)
                    return SG_ENOMEM;
            }
            for (size_t q = i; q < j; q++) {
                const char *p = t->str + t->off[ids[q]];

                bytes[k++] = (unsigned char)(tok_hexval(p[3]) * 16 + tok_hexval(p[4]));
            }
            for (size_t q = 0; q < k;) {
                size_t l = sg_utf8_char_len(bytes + q, k - q);

                if (l == 0) {
                    ok = 0;
                    break;
                }
                q += l;
            }
            if (ok)
                put(&o, (const char *)bytes, k);
            else
                for (size_t q = 0; q < k; q++)
                    put(&o, "\xef\xbf\xbd", 3);
            i = j;
            continue;
        }
        for (size_t q = 0; q < m;) {
            if (q + 3 <= m && memcmp(s + q, "\xe2\x96\x81", 3) == 0) {
                put(&o, " ", 1);
                q += 3;
            } else {
                put(&o, s + q, 1);
                q++;
            }
        }
        i++;
    }
    free(bytes);
    if (cap > 0)
        buf[o.len < o.cap ? o.len : o.cap] = '\0';
    *len = o.len;
    return o.len > o.cap ? SG_ERANGE : SG_OK;
}
