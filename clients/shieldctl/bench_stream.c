/*
 * bench_stream.c: `shieldctl bench --stream` (bench_stream.h). A conversation is a user message
 * of user_tokens tokens and a reply of reply_tokens tokens, checked (sg_moderate, prompt-
 * response mode, four policies) after every `every` tokens of the reply and at its end, as a
 * gateway filtering a streamed reply would. N conversations are interleaved: check k of every
 * conversation, then check k + 1 of every conversation. Each run uses a fresh moderator, with
 * a prefix cache of the default size for the model, or without one (the moderator then reuses
 * only the last request's prefix, as before the cache).
 *
 * Reported per run: the computed tokens and the time of the first check of a conversation and
 * of the later ones (mean), the totals, and the cache's figures. Also the floor of any exact
 * check: the tokens after the reply in the four prompts (the common template tail once, then
 * each policy's own suffix), counted by tokenizing the rendered prompts' tails.
 */
#include "bench_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CHECKS 256
#define TEXT_CAP 65536
#define IDS_CAP 16384

typedef struct conv {
    char user[TEXT_CAP / 8];
    char *reply;               /* malloc'd, TEXT_CAP */
    size_t cut[MAX_CHECKS];    /* bytes of the reply at each check */
    size_t ntok[MAX_CHECKS];   /* its tokens then */
    int n_checks;
} conv;

typedef struct run_result {
    int n_conv, cache;
    double first_tokens, first_ms, later_tokens, later_ms; /* means */
    double later_new;          /* mean new reply tokens per later check */
    size_t total_tokens, checks;
    double total_s;
    sg_prefix_cache_stats st;
} run_result;

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int fail(const char *msg)
{
    fprintf(stderr, "shieldctl bench: %s\n", msg);
    return -1;
}

/* Cut points of c->reply: the shortest prefix ending at a space or the end with at least
 * k * every tokens, for k = 1, 2, ...; the last check is the whole reply. */
static int cut_reply(const sg_tok *tok, conv *c, int every, int32_t *ids)
{
    const size_t len = strlen(c->reply);
    size_t n = 0;
    int k = 1;

    c->n_checks = 0;
    for (size_t p = 1; p <= len && c->n_checks < MAX_CHECKS; p++) {
        if (p < len && c->reply[p] != ' ')
            continue;
        if (sg_tok_encode(tok, c->reply, p, SG_TOK_USER, ids, IDS_CAP, &n) != SG_OK)
            return -1;
        if (n >= (size_t)k * (size_t)every || p == len) {
            c->cut[c->n_checks] = p;
            c->ntok[c->n_checks++] = n;
            k++;
        }
    }
    return c->n_checks > 0 ? 0 : -1;
}

/* The floor of an exact check: tokens after the reply in the prompts of `names` (the common
 * part once). -1 on failure. */
static long suffix_floor(const sg_tok *tok, const sg_policy_set *set, const char *const *names,
                         size_t n_names, const conv *c)
{
    int32_t *tails[8];
    size_t tl[8];
    size_t lcp = 0, sum = 0;
    long out = -1;

    if (n_names > 8)
        return -1;
    memset(tails, 0, sizeof tails);
    for (size_t i = 0; i < n_names; i++) {
        char *prompt = NULL;
        const char *end;
        const char *p;

        if (sg_moderate_render(set, sg_policy_find(set, names[i]), c->user, c->reply,
                               &prompt) != SG_OK)
            goto done;
        for (end = NULL, p = prompt; (p = strstr(p, c->reply)) != NULL; p++)
            end = p + strlen(c->reply);
        tails[i] = malloc(IDS_CAP * sizeof *tails[i]);
        if (end == NULL || tails[i] == NULL ||
            sg_tok_encode(tok, end, strlen(end), SG_TOK_TEMPLATE, tails[i], IDS_CAP, &tl[i]) !=
                SG_OK) {
            free(prompt);
            goto done;
        }
        free(prompt);
    }
    while (n_names > 0 && lcp < tl[0]) {
        size_t i = 1;

        while (i < n_names && lcp < tl[i] && tails[i][lcp] == tails[0][lcp])
            i++;
        if (i < n_names)
            break;
        lcp++;
    }
    for (size_t i = 0; i < n_names; i++)
        sum += tl[i] - lcp;
    out = (long)(lcp + sum);
done:
    for (size_t i = 0; i < n_names; i++)
        free(tails[i]);
    return out;
}

/* One run: n_conv conversations interleaved, with a fresh cache (cache = 1) or none. */
static int run_one(sg_model *model, const sg_policy_set *set, const char *const *names,
                   size_t n_names, conv *cv, int n_conv, size_t cache_bytes, run_result *rr)
{
    const int cache = cache_bytes > 0;
    sg_prefix_cache *pc = NULL;
    sg_moderator *mod = NULL;
    sg_moderate_opts mo = sg_moderate_opts_default();
    char err[512];
    size_t n_first = 0, n_later = 0;
    const double t_run = now();
    int rc = -1;

    memset(rr, 0, sizeof *rr);
    rr->n_conv = n_conv;
    rr->cache = cache;
    if (cache && sg_prefix_cache_new(&pc, model, -1, cache_bytes, err, sizeof err) != SG_OK)
        return fail(err);
    mo.prefix_cache = pc;
    if (sg_moderator_new(&mod, model, &mo, err, sizeof err) != SG_OK) {
        sg_prefix_cache_free(pc);
        return fail(err);
    }
    for (int k = 0; k < cv[0].n_checks; k++)
        for (int c = 0; c < n_conv; c++) {
            sg_moderate_req rq;
            sg_moderate_result res;
            double t0 = now(), dt;

            if (k >= cv[c].n_checks)
                continue;
            memset(&rq, 0, sizeof rq);
            rq.text = cv[c].user;
            rq.response = cv[c].reply;
            rq.response_len = cv[c].cut[k];
            rq.policies = names;
            rq.n_policies = n_names;
            if (sg_moderate(mod, set, &rq, &res) != SG_OK) {
                snprintf(err, sizeof err, "stream check: %s", sg_moderator_errmsg(mod));
                fail(err);
                goto out;
            }
            dt = now() - t0;
            rr->total_tokens += res.computed_tokens;
            rr->checks++;
            if (k == 0) {
                rr->first_tokens += (double)res.computed_tokens;
                rr->first_ms += dt * 1e3;
                n_first++;
            } else {
                rr->later_tokens += (double)res.computed_tokens;
                rr->later_ms += dt * 1e3;
                rr->later_new += (double)(cv[c].ntok[k] - cv[c].ntok[k - 1]);
                n_later++;
            }
            sg_moderate_result_free(&res);
        }
    rr->total_s = now() - t_run;
    if (n_first) {
        rr->first_tokens /= (double)n_first;
        rr->first_ms /= (double)n_first;
    }
    if (n_later) {
        rr->later_tokens /= (double)n_later;
        rr->later_ms /= (double)n_later;
        rr->later_new /= (double)n_later;
    }
    if (pc)
        sg_prefix_cache_get_stats(pc, &rr->st);
    rc = 0;
out:
    sg_moderator_free(mod);
    sg_prefix_cache_free(pc);
    return rc;
}

static json_t *run_json(const run_result *r)
{
    json_t *o = json_pack("{s:i, s:b, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:f}", "conversations",
                          r->n_conv, "cache", r->cache, "first_check_computed", r->first_tokens,
                          "first_check_ms", r->first_ms, "later_check_computed", r->later_tokens,
                          "later_check_ms", r->later_ms, "later_check_new_tokens", r->later_new,
                          "checks", (json_int_t)r->checks, "total_computed",
                          (json_int_t)r->total_tokens, "total_s", r->total_s);

    if (o && r->cache)
        json_object_set_new(o, "prefix_cache",
                            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "capacity_bytes",
                                      (json_int_t)r->st.capacity_bytes, "bytes",
                                      (json_int_t)r->st.bytes, "tokens", (json_int_t)r->st.tokens,
                                      "hits", (json_int_t)r->st.hits, "misses",
                                      (json_int_t)r->st.misses, "evictions",
                                      (json_int_t)r->st.evictions));
    return o;
}

static int make_convs(const sg_tok *tok, const bench_stream_opts *o, conv *cv, int n,
                      int32_t *ids)
{
    for (int c = 0; c < n; c++) {
        cv[c].reply = malloc(TEXT_CAP);
        if (cv[c].reply == NULL)
            return fail("out of memory");
        if (bench_message(tok, 1000u + (uint32_t)c, (size_t)o->user_tokens, cv[c].user,
                          sizeof cv[c].user, ids, IDS_CAP) < 0 ||
            bench_message(tok, 5000u + (uint32_t)c, (size_t)o->reply_tokens, cv[c].reply,
                          TEXT_CAP, ids, IDS_CAP) < 0 ||
            cut_reply(tok, &cv[c], o->every, ids) < 0)
            return fail("cannot build the conversations' texts");
    }
    return 0;
}

int bench_stream(sg_model *model, const sg_policy_set *set, const char *const *names,
                 size_t n_names, const bench_stream_opts *o, int as_json)
{
    const sg_tok *tok = sg_model_tok(model);
    int max_conv = 0;
    conv *cv;
    int32_t *ids = malloc(IDS_CAP * sizeof *ids);
    run_result rr[2 * BENCH_STREAM_MAX_CONVS];
    long floor_tokens;
    size_t cache_bytes = sg_prefix_cache_default_bytes(model);
    int rc = -1;

    for (int i = 0; i < o->n_convs; i++)
        max_conv = o->convs[i] > max_conv ? o->convs[i] : max_conv;
    cv = calloc((size_t)max_conv, sizeof *cv);
    if (tok == NULL || cv == NULL || ids == NULL) {
        free(cv);
        free(ids);
        return fail(tok == NULL ? "the model has no tokenizer" : "out of memory");
    }
    if (make_convs(tok, o, cv, max_conv, ids) < 0)
        goto out;
    floor_tokens = suffix_floor(tok, set, names, n_names, &cv[0]);
    if (o->cache_tokens > 0) /* the default is 6144 tokens' blocks: scale it */
        cache_bytes = cache_bytes / 6144 * (size_t)o->cache_tokens;
    for (int i = 0; i < o->n_convs; i++)
        for (int cache = 1; cache >= 0; cache--) {
            run_result *r = &rr[2 * i + (1 - cache)];

            if (run_one(model, set, names, n_names, cv, o->convs[i], cache ? cache_bytes : 0,
                        r) < 0)
                goto out;
            fprintf(stderr, "bench: stream %d conversation(s), cache %s: %.1f tokens and %.1f ms "
                    "per later check\n", r->n_conv, cache ? "on" : "off", r->later_tokens,
                    r->later_ms);
        }
    if (as_json) {
        json_t *root = json_pack("{s:i, s:i, s:i, s:i, s:I, s:I}", "user_tokens",
                                 o->user_tokens, "reply_tokens", o->reply_tokens, "every",
                                 o->every, "policies", (int)n_names, "suffix_tokens",
                                 (json_int_t)floor_tokens, "cache_bytes",
                                 (json_int_t)cache_bytes);
        json_t *runs = json_array();
        json_t *top;

        for (int i = 0; i < 2 * o->n_convs; i++)
            json_array_append_new(runs, run_json(&rr[i]));
        json_object_set_new(root, "runs", runs);
        top = json_pack("{s:o}", "stream", root); /* steals root */
        if (top == NULL || json_dumpf(top, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6)) != 0)
            fprintf(stderr, "shieldctl bench: cannot write the JSON\n");
        putchar('\n');
        json_decref(top);
    } else {
        printf("stream     %d-token message, %d-token reply checked every %d tokens, %zu "
               "policies; suffixes after the reply: %ld tokens; cache %zu bytes\n",
               o->user_tokens, o->reply_tokens, o->every, n_names, floor_tokens, cache_bytes);
        for (int i = 0; i < 2 * o->n_convs; i++)
            printf("stream     %d conv, cache %-3s: first check %.0f tokens %.1f ms; later "
                   "checks %.1f tokens (%.1f new) %.1f ms; total %zu tokens %.2f s; "
                   "evictions %llu\n", rr[i].n_conv, rr[i].cache ? "on" : "off",
                   rr[i].first_tokens, rr[i].first_ms, rr[i].later_tokens, rr[i].later_new,
                   rr[i].later_ms, rr[i].total_tokens, rr[i].total_s,
                   (unsigned long long)rr[i].st.evictions);
    }
    rc = 0;
out:
    for (int c = 0; c < max_conv; c++)
        free(cv[c].reply);
    free(cv);
    free(ids);
    return rc;
}
