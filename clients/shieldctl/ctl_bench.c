/*
 * ctl_bench.c: `shieldctl bench`: the engine's speed on one model, in-process:
 *
 *   load       sg_model_open (mapping, repacking weights for the precision's kernels)
 *   prefill    tokens/s of one sg_ctx_append of N tokens (default 64, 128 and 512) into an empty
 *              context, with the "Yes"/"No" logits of the last position, as a classification
 *              computes them; best and median of --reps runs
 *   classify   latency of sg_moderate on a ~64-token message against four policies (hate,
 *              harassment, sexual, dangerous when the set has them), the moderator warm (its
 *              template preamble cached), a different message each run; the prompt and
 *              computed token counts
 *   tokenizer  MB/s of sg_tok_encode (user mode) over 1 MB of varied English text
 *   memory     peak resident set (getrusage) and resident set after load (/proc/self/statm)
 *
 * --json prints one JSON object (see usage()) instead of the table. --stream runs only the
 * streaming scenario instead (bench_stream.c).
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bench_stream.h"
#include "common.h"

int ctl_bench(int argc, char **argv);

const char ctl_bench_help[] = "measure load time, prefill tokens/s, classification latency, RSS";

#define MAX_LENS 16
#define MAX_REPS 100
#define TOK_BYTES (1u << 20)

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shieldctl bench --model PATH [--threads N] [--tokens N,...] [--reps R]\n"
            "                       [--precision f32|bf16|int8] [--policies DIR] [--json]\n"
            "                       [--pack-cache DIR]\n"
            "\n"
            "Measure the engine on PATH: load time, prefill tokens/s per prompt length (best\n"
            "and median of R runs), a 4-policy classification of a 64-token message, the\n"
            "tokenizer's MB/s, and the peak resident set.\n"
            "\n"
            "  --threads N        compute threads (default: all cores)\n"
            "  --tokens LIST      prompt lengths for prefill (default 64,128,512)\n"
            "  --reps R           runs per measurement (default 3)\n"
            "  --precision P      f32, bf16 or int8 (default: bf16)\n"
            "  --policies DIR     policy directory for the classification (default: policies)\n"
            "  --pack-cache DIR    map the packed weights from a cache file in DIR, written by\n"
            "                     the first load (default: none, repack at every load)\n"
            "  --no-classify      skip the classification (no policy directory needed)\n"
            "  --json             one JSON object: {\"prefill_tokens_per_s\": {\"64\": x, ...},\n"
            "                     \"prefill_tokens_per_s_median\": {...},\n"
            "                     \"prefill_gflop\": {...}\n"
            "                     (FLOPs computed: the last layer runs q, o, attention and\n"
            "                     the MLP for the last row only), \"prefill_gflop_per_s\",\n"
            "                     \"prefill_gflop_per_cpu_s\" (per CPU-second of all threads),\n"
            "                     \"classify_4_policies_ms\" (warm: preamble cached, best),\n"
            "                     \"classify_4_policies_ms_median\", \"classify_cold_ms\" (a new\n"
            "                     moderator: nothing cached), \"classify_message_tokens\",\n"
            "                     \"classify_prompt_tokens\", \"classify_computed_tokens\",\n"
            "                     \"classify_probabilities\" (first warm message, per policy),\n"
            "                     \"tokenizer_mb_per_s\", \"load_s\", \"rss_mb\", \"rss_after_load_mb\",\n"
            "                     \"model\", \"d_model\", \"n_layer\", \"precision\", \"kernel\",\n"
            "                     \"threads\"}\n"
            "  --stream           only the streaming scenario: conversations whose reply is\n"
            "                     checked every --stream-every tokens as it streams, 4 policies,\n"
            "                     interleaved, with the prefix cache (default size) on and off\n"
            "  --stream-user N    tokens of the user's message (default 64)\n"
            "  --stream-reply N   tokens of the reply (default 320)\n"
            "  --stream-every N   tokens between checks (default 32; one more at the end)\n"
            "  --stream-convs L   conversation counts, e.g. 1,8 (default; at most 4 counts)\n"
            "  --stream-cache-tokens N  the prefix cache's size in tokens of the model\n"
            "                     (default 6144, the daemon's prefix_cache_bytes: auto)\n");
}

/* CPU seconds of the whole process, all threads (on a shared machine, work per CPU-second is
 * what the neighbours' load does not change). */
static double cpu_now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a;
    const double y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Best (minimum) and median of n times; sorts t. */
static void best_median(double *t, int n, double *best, double *median)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    *best = t[0];
    *median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static double rss_now_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0;
    long resident = 0;

    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = 0;
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static double rss_peak_mb(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_maxrss / 1024.0; /* KiB on Linux */
}

static int parse_lens(const char *s, int *lens, int *n)
{
    *n = 0;
    while (*s) {
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || end == s || v < 1 || v > 1000000 || *n == MAX_LENS ||
            (*end != ',' && *end != '\0'))
            return -1;
        lens[(*n)++] = (int)v;
        s = *end == ',' ? end + 1 : end;
    }
    return *n > 0 ? 0 : -1;
}

/* Deterministic pseudo-random words, so every run tokenizes the same varied text. */
static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static const char *const words[] = {
    "the",     "people",   "message", "friend", "never",  "would",   "think",    "about",
    "policy",  "content",  "weather", "today",  "really", "strange", "market",   "prices",
    "because", "everyone", "wants",   "to",     "know",   "why",     "children", "learn",
    "quickly", "running",  "through", "forest", "river",  "bright",  "history",  "science",
    "I",       "you",      "we",      "can't",  "won't",  "is",      "was",      "and",
    "or",      "but",      "maybe",   "2024",   "42",     "café",    "naïve",    "(really?)",
};

/* Append a sentence of random words to buf (capacity cap); returns the new length. */
static size_t add_sentence(char *buf, size_t len, size_t cap, uint32_t *s)
{
    const int nw = 6 + (int)(next_rand(s) % 10);

    for (int w = 0; w < nw; w++) {
        const char *word = words[next_rand(s) % (sizeof words / sizeof words[0])];
        int k = snprintf(buf + len, cap - len, "%s%s", w ? " " : "", word);

        if (k < 0 || (size_t)k >= cap - len)
            return len;
        len += (size_t)k;
    }
    if (len + 3 < cap) {
        buf[len++] = next_rand(s) % 4 ? '.' : '?';
        buf[len++] = next_rand(s) % 5 ? ' ' : '\n';
        buf[len] = '\0';
    }
    return len;
}

/* A message of about `tokens` tokens (by the model's tokenizer) into buf; run-specific. */
static int make_message(const sg_tok *tok, uint32_t seed, size_t tokens, char *buf, size_t cap,
                        int32_t *ids, size_t ids_cap)
{
    uint32_t s = seed * 2654435761u + 1;
    size_t len = 0;
    size_t n = 0;

    buf[0] = '\0';
    while (n < tokens) {
        size_t before = len;

        len = add_sentence(buf, len, cap, &s);
        if (len == before)
            return -1;
        if (sg_tok_encode(tok, buf, len, SG_TOK_USER, ids, ids_cap, &n) != SG_OK)
            return -1;
    }
    /* Trim back word by word to the target. */
    while (n > tokens && len > 0) {
        while (len > 0 && buf[len - 1] != ' ')
            len--;
        while (len > 0 && buf[len - 1] == ' ')
            len--;
        buf[len] = '\0';
        if (sg_tok_encode(tok, buf, len, SG_TOK_USER, ids, ids_cap, &n) != SG_OK)
            return -1;
    }
    return len > 0 ? 0 : -1;
}

/*
 * The FLOPs a prefill of n tokens computes, as the engine computes them (2 per multiply-add):
 * every layer's k and v projections for all n rows; q, o, attention and the MLP for all rows
 * but in the last layer, where only the row whose logits are asked for runs them (the others
 * feed nothing that is read); attention over the keys each row sees (the sliding window on
 * the model's sliding layers), scores and weighted values; the LM head's dots of the `n_ids`
 * ids asked for.
 * The embedding lookup and the element-wise work are not counted.
 */
static double prefill_flops(const sg_model_info *in, int n, int n_ids)
{
    const double d = in->d_model, q = (double)in->n_head * in->head_dim;
    const double kv = (double)in->n_kv_head * in->head_dim;
    const double per_row_kv = 2.0 * d * 2.0 * kv;
    const double per_row_rest = 2.0 * (d * q + q * d + 3.0 * d * in->d_ff);
    double f = 0;

    for (int l = 0; l < in->n_layer; l++) {
        const int last = l == in->n_layer - 1;
        const int sliding = in->layer_sliding[l] && in->sliding_window > 0;

        f += n * per_row_kv + (last ? 1 : n) * per_row_rest;
        for (int p = last ? n - 1 : 0; p < n; p++) {
            const int keys = sliding && p + 1 > in->sliding_window ? in->sliding_window : p + 1;

            f += 2.0 * 2.0 * q * keys;
        }
    }
    return f + 2.0 * d * n_ids;
}

int bench_message(const sg_tok *tok, uint32_t seed, size_t tokens, char *buf, size_t cap,
                  int32_t *ids, size_t ids_cap)
{
    return make_message(tok, seed, tokens, buf, cap, ids, ids_cap);
}

/* The four policies of the classification (hate, harassment, sexual, dangerous when the set
 * has them, else the first others) into names; returns how many. */
static size_t pick_four(const sg_policy_set *set, const char *names[4])
{
    static const char *const four[] = {"hate", "harassment", "sexual", "dangerous"};
    size_t n_names = 0;

    for (size_t i = 0; i < 4; i++)
        if (sg_policy_find(set, four[i]) != NULL)
            names[n_names++] = four[i];
    for (size_t i = 0; n_names < 4 && i < sg_policy_count(set); i++) {
        const char *nm = sg_policy_at(set, i)->name;
        int dup = 0;

        for (size_t j = 0; j < n_names; j++)
            dup |= strcmp(names[j], nm) == 0;
        if (!dup)
            names[n_names++] = nm;
    }
    return n_names;
}

/* "--stream-*" options into *so. 1 if `a` was one (its value consumed: *i advanced), 0 if
 * not, -1 after a message for a bad value. */
static int stream_option(const char *a, const char *v, int *i, bench_stream_opts *so)
{
    int *dst = NULL;

    if (v == NULL)
        return 0;
    if (strcmp(a, "--stream-convs") == 0) {
        if (parse_lens(v, so->convs, &so->n_convs) < 0 || so->n_convs > BENCH_STREAM_MAX_CONVS) {
            fprintf(stderr, "shieldctl bench: --stream-convs: expected counts like 1,8 (at "
                            "most %d), found '%s'\n", BENCH_STREAM_MAX_CONVS, v);
            return -1;
        }
        (*i)++;
        return 1;
    }
    if (strcmp(a, "--stream-user") == 0)
        dst = &so->user_tokens;
    else if (strcmp(a, "--stream-reply") == 0)
        dst = &so->reply_tokens;
    else if (strcmp(a, "--stream-every") == 0)
        dst = &so->every;
    else if (strcmp(a, "--stream-cache-tokens") == 0) {
        int t;

        if (ctl_parse_int("bench", a, v, 16, 1 << 24, &t) < 0)
            return -1;
        so->cache_tokens = t;
        (*i)++;
        return 1;
    }
    if (dst == NULL)
        return 0;
    if (ctl_parse_int("bench", a, v, 1, 8192, dst) < 0)
        return -1;
    (*i)++;
    return 1;
}

/* What the command line asks for. */
typedef struct bench_args {
    const char *model_path;
    const char *dir; /* policy directory */
    int lens[MAX_LENS];
    int n_lens;
    int max_len; /* the longest of lens */
    int reps;
    int as_json;
    int classify;
    int stream;
    bench_stream_opts so;
    sg_model_opts mo;
} bench_args;

/* What was measured. */
typedef struct bench_result {
    double load_s;
    double rss_load;
    double pf_best[MAX_LENS];
    double pf_cpu[MAX_LENS]; /* least CPU seconds of a run */
    double pf_med[MAX_LENS];
    double cl_best, cl_med, cl_first;
    size_t cl_prompt, cl_computed, cl_msg_tokens;
    double cl_p[4];
    size_t cl_np;
    double tok_mbs;
} bench_result;

/* One option with a value (`v`, argv[*i + 1], or NULL) into *a: 1 if `o` was one (*i advanced),
 * 0 if not, -1 after a message for a bad value. */
static int value_option(const char *o, const char *v, int *i, bench_args *a)
{
    if (v == NULL)
        return 0;
    if (strcmp(o, "--model") == 0) {
        a->model_path = v;
    } else if (strcmp(o, "--pack-cache") == 0) {
        a->mo.pack_cache = v;
    } else if (strcmp(o, "--policies") == 0) {
        a->dir = v;
    } else if (strcmp(o, "--threads") == 0) {
        char *end;
        long t = strtol(v, &end, 10);

        if (*end || end == v || t < 0 || t > 1024) {
            fprintf(stderr, "shieldctl bench: --threads: expected 0..1024, found '%s'\n", v);
            return -1;
        }
        a->mo.n_threads = (int)t;
    } else if (strcmp(o, "--reps") == 0) {
        char *end;
        long r = strtol(v, &end, 10);

        if (*end || end == v || r < 1 || r > MAX_REPS) {
            fprintf(stderr, "shieldctl bench: --reps: expected 1..%d, found '%s'\n", MAX_REPS, v);
            return -1;
        }
        a->reps = (int)r;
    } else if (strcmp(o, "--tokens") == 0) {
        if (parse_lens(v, a->lens, &a->n_lens) < 0) {
            fprintf(stderr, "shieldctl bench: --tokens: expected lengths like 64,128,512 "
                            "(at most %d), found '%s'\n", MAX_LENS, v);
            return -1;
        }
    } else if (strcmp(o, "--precision") == 0) {
        if (sg_precision_parse(v, &a->mo.precision) != SG_OK) {
            fprintf(stderr, "shieldctl bench: --precision: expected f32, bf16 or int8, "
                            "found '%s'\n", v);
            return -1;
        }
    } else {
        return 0;
    }
    (*i)++;
    return 1;
}

/* The command line into *a. -1 to go on, else the exit status (0 after --help). */
static int parse_args(int argc, char **argv, bench_args *a)
{
    static const bench_args defaults = {
        NULL, "policies", {64, 128, 512}, 3, 0, 3, 0, 1, 0, {64, 320, 32, {1, 8}, 2, 0}, {0}};
    int rc;

    *a = defaults;
    a->mo = sg_model_opts_default();
    a->mo.precision = SG_PREC_BF16;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(o, "-h") == 0 || strcmp(o, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(o, "--json") == 0) {
            a->as_json = 1;
        } else if (strcmp(o, "--no-classify") == 0) {
            a->classify = 0;
        } else if (strcmp(o, "--stream") == 0) {
            a->stream = 1;
        } else if ((rc = stream_option(o, v, &i, &a->so)) != 0 ||
                   (rc = value_option(o, v, &i, a)) != 0) {
            if (rc < 0)
                return 2;
        } else {
            fprintf(stderr, "shieldctl bench: unknown option or missing value: %s\n", o);
            usage(stderr);
            return 2;
        }
    }
    if (a->model_path == NULL) {
        fprintf(stderr, "shieldctl bench: --model PATH is required\n");
        usage(stderr);
        return 2;
    }
    for (int i = 0; i < a->n_lens; i++)
        if (a->lens[i] > a->max_len)
            a->max_len = a->lens[i];
    return -1;
}

/* Prefill: BOS then deterministic ids spread over the vocabulary (past the added tokens), each
 * length of a->lens appended a->reps times to an emptied context. 0 or -1 with a message. */
static int run_prefill(sg_model *model, const bench_args *a, bench_result *res)
{
    const sg_model_info *info = sg_model_get_info(model);
    sg_ctx_opts co = sg_ctx_opts_default();
    sg_ctx *ctx = NULL;
    int32_t *ids;
    int32_t want[2] = {3553, 1294};
    float z[2];
    sg_logits_req rq = {want, 2, 0, z};
    uint32_t s = 12345;
    char err[1024];
    int rc;

    if (info->n_vocab <= 3553) {
        want[0] = info->n_vocab - 1;
        want[1] = 0;
    }
    co.n_ctx = a->max_len;
    rc = sg_ctx_new(&ctx, model, &co, err, sizeof err);
    ids = malloc((size_t)a->max_len * sizeof *ids);
    if (rc < 0 || ids == NULL) {
        fprintf(stderr, "shieldctl bench: cannot create a %d-token context (%s)\n", a->max_len,
                rc < 0 ? err : "out of memory");
        goto fail;
    }
    ids[0] = info->bos_id >= 0 && info->bos_id < info->n_vocab ? info->bos_id : 0;
    for (int i = 1; i < a->max_len; i++) {
        const uint32_t lo = info->n_vocab > 1000 ? 300 : 0;

        ids[i] = (int32_t)(lo + next_rand(&s) % (uint32_t)(info->n_vocab - (int)lo));
    }
    for (int l = 0; l < a->n_lens; l++) {
        double t[MAX_REPS];

        res->pf_cpu[l] = 1e300;
        for (int r = 0; r < a->reps; r++) {
            double t0, c0;

            sg_ctx_truncate(ctx, 0);
            t0 = now();
            c0 = cpu_now();
            rc = sg_ctx_append(ctx, ids, (size_t)a->lens[l], &rq);
            t[r] = now() - t0;
            if (cpu_now() - c0 < res->pf_cpu[l])
                res->pf_cpu[l] = cpu_now() - c0;
            if (rc < 0) {
                fprintf(stderr, "shieldctl bench: prefill of %d tokens: %s\n", a->lens[l],
                        sg_ctx_errmsg(ctx));
                goto fail;
            }
        }
        best_median(t, a->reps, &res->pf_best[l], &res->pf_med[l]);
        if (!a->as_json)
            fprintf(stderr, "bench: prefill %d tokens: best %.1f tokens/s\n", a->lens[l],
                    a->lens[l] / res->pf_best[l]);
    }
    free(ids);
    sg_ctx_free(ctx);
    return 0;
fail:
    free(ids);
    sg_ctx_free(ctx);
    return -1;
}

/* One classification of `text` by `mod`: the time into *secs; the result into *res (the
 * caller frees it). 0 or -1 with a message. */
static int classify_once(sg_moderator *mod, const sg_policy_set *set, const char *const *names,
                         size_t n_names, const char *text, sg_moderate_result *res, double *secs)
{
    sg_moderate_req req;
    double t0;

    memset(&req, 0, sizeof req);
    memset(res, 0, sizeof *res);
    req.text = text;
    req.policies = names;
    req.n_policies = n_names;
    t0 = now();
    if (sg_moderate(mod, set, &req, res) < 0) {
        fprintf(stderr, "shieldctl bench: classify: %s\n", sg_moderator_errmsg(mod));
        return -1;
    }
    *secs = now() - t0;
    return 0;
}

/* Classification: 4 policies, a 64-token message, warm moderator, new message each run. Run 0
 * is cold (the template preamble is computed); then a->reps warm runs. 0 or -1 with a message. */
static int run_classify(sg_model *model, const sg_policy_set *set, const bench_args *a,
                        bench_result *res)
{
    const sg_tok *tok = sg_model_tok(model);
    const char *names[4];
    size_t n_names = pick_four(set, names);
    sg_moderate_opts opts = sg_moderate_opts_default();
    sg_moderator *mod = NULL;
    double t[MAX_REPS];
    const size_t cap = 4096;
    char *text = NULL;
    int32_t *tids = NULL;
    char err[1024];
    int status = -1;
    int rc;

    opts.precision = -1;
    rc = sg_moderator_new(&mod, model, &opts, err, sizeof err);
    text = malloc(cap);
    tids = malloc(1024 * sizeof *tids);
    if (rc < 0 || text == NULL || tids == NULL) {
        fprintf(stderr, "shieldctl bench: %s\n", rc < 0 ? err : "out of memory");
        goto out;
    }
    for (int r = 0; r <= a->reps; r++) {
        sg_moderate_result mr;
        double secs = 0;

        if (make_message(tok, (uint32_t)r + 1, 64, text, cap, tids, 1024) < 0) {
            fprintf(stderr, "shieldctl bench: cannot build a 64-token message\n");
            goto out;
        }
        if (classify_once(mod, set, names, n_names, text, &mr, &secs) < 0)
            goto out;
        if (r == 0) {
            res->cl_first = secs;
        } else {
            t[r - 1] = secs;
            if (r == 1) { /* the same message at every precision: compare P */
                for (res->cl_np = 0; res->cl_np < mr.n_scores && res->cl_np < 4; res->cl_np++)
                    res->cl_p[res->cl_np] = mr.scores[res->cl_np].probability;
            }
            res->cl_prompt = mr.prompt_tokens;
            res->cl_computed = mr.computed_tokens;
            sg_tok_encode(tok, text, strlen(text), SG_TOK_USER, tids, 1024, &res->cl_msg_tokens);
        }
        sg_moderate_result_free(&mr);
    }
    best_median(t, a->reps, &res->cl_best, &res->cl_med);
    status = 0;
out:
    free(text);
    free(tids);
    sg_moderator_free(mod);
    return status;
}

/* Tokenizer throughput over 1 MB of text into res->tok_mbs (0 if encoding failed). 0, or -1
 * with a message. */
static int run_tokenizer(const sg_tok *tok, int reps, bench_result *res)
{
    char *big = malloc(TOK_BYTES + 256);
    int32_t *bids = malloc((TOK_BYTES + 256) * sizeof *bids);
    uint32_t s = 99;
    size_t len = 0;
    size_t n = 0;
    double t[MAX_REPS];
    double best, med;
    int rc = SG_OK;

    if (big == NULL || bids == NULL) {
        free(big);
        free(bids);
        fprintf(stderr, "shieldctl bench: out of memory\n");
        return -1;
    }
    while (len < TOK_BYTES)
        len = add_sentence(big, len, TOK_BYTES + 256, &s);
    for (int r = 0; r < reps; r++) {
        const double t0 = now();

        rc = sg_tok_encode(tok, big, len, SG_TOK_USER, bids, TOK_BYTES + 256, &n);
        t[r] = now() - t0;
    }
    best_median(t, reps, &best, &med);
    res->tok_mbs = rc == SG_OK ? (double)len / best / 1e6 : 0;
    free(big);
    free(bids);
    return 0;
}

/* The prefill figures of every length into o: tokens/s best and median, GFLOP, GFLOP/s and
 * GFLOP per CPU-second. */
static void json_prefill(json_t *o, const sg_model_info *info, const bench_args *a,
                         const bench_result *res)
{
    json_t *pf = json_object();
    json_t *pm = json_object();
    json_t *gf = json_object();
    json_t *gs = json_object();
    json_t *gc = json_object();

    for (int l = 0; l < a->n_lens; l++) {
        const double gflop = prefill_flops(info, a->lens[l], 2) / 1e9;
        char key[16];

        snprintf(key, sizeof key, "%d", a->lens[l]);
        json_object_set_new(pf, key, json_real(a->lens[l] / res->pf_best[l]));
        json_object_set_new(pm, key, json_real(a->lens[l] / res->pf_med[l]));
        json_object_set_new(gf, key, json_real(gflop));
        json_object_set_new(gs, key, json_real(gflop / res->pf_best[l]));
        json_object_set_new(gc, key, json_real(gflop / res->pf_cpu[l]));
    }
    json_object_set_new(o, "prefill_tokens_per_s", pf);
    json_object_set_new(o, "prefill_tokens_per_s_median", pm);
    json_object_set_new(o, "prefill_gflop", gf);
    json_object_set_new(o, "prefill_gflop_per_s", gs);
    json_object_set_new(o, "prefill_gflop_per_cpu_s", gc);
}

/* The classification figures into o. */
static void json_classify(json_t *o, const bench_result *res)
{
    json_t *pa = json_array();

    json_object_set_new(o, "classify_4_policies_ms", json_real(res->cl_best * 1e3));
    json_object_set_new(o, "classify_4_policies_ms_median", json_real(res->cl_med * 1e3));
    json_object_set_new(o, "classify_cold_ms", json_real(res->cl_first * 1e3));
    json_object_set_new(o, "classify_message_tokens", json_integer((json_int_t)res->cl_msg_tokens));
    json_object_set_new(o, "classify_prompt_tokens", json_integer((json_int_t)res->cl_prompt));
    json_object_set_new(o, "classify_computed_tokens", json_integer((json_int_t)res->cl_computed));
    for (size_t i = 0; i < res->cl_np; i++)
        json_array_append_new(pa, json_real(res->cl_p[i]));
    json_object_set_new(o, "classify_probabilities", pa);
}

/* The results as one JSON object on stdout (see usage()). */
static void print_json(sg_model *model, const bench_args *a, const bench_result *res)
{
    const sg_model_info *info = sg_model_get_info(model);
    const int has_tok = sg_model_tok(model) != NULL;
    json_t *o = json_object();

    json_object_set_new(o, "model", json_string(info->name));
    json_object_set_new(o, "d_model", json_integer(info->d_model));
    json_object_set_new(o, "n_layer", json_integer(info->n_layer));
    json_object_set_new(o, "precision", json_string(sg_precision_name(a->mo.precision)));
    json_object_set_new(o, "kernel", json_string(sg_model_kernel(model)));
    json_object_set_new(o, "threads", json_integer(a->mo.n_threads));
    json_object_set_new(o, "load_s", json_real(res->load_s));
    json_prefill(o, info, a, res);
    if (a->classify && has_tok)
        json_classify(o, res);
    if (has_tok)
        json_object_set_new(o, "tokenizer_mb_per_s", json_real(res->tok_mbs));
    json_object_set_new(o, "rss_after_load_mb", json_real(res->rss_load));
    json_object_set_new(o, "rss_mb", json_real(rss_peak_mb()));
    if (json_dumpf(o, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6)) != 0)
        fprintf(stderr, "shieldctl bench: cannot write the JSON\n");
    putchar('\n');
    json_decref(o);
}

/* The results as a table on stdout. */
static void print_table(sg_model *model, const bench_args *a, const bench_result *res)
{
    const sg_model_info *info = sg_model_get_info(model);
    const int has_tok = sg_model_tok(model) != NULL;

    printf("model      %s (%s, %d layers, d_model %d), precision %s (kernel %s), "
           "threads %d\n",
           info->name, info->format, info->n_layer, info->d_model,
           sg_precision_name(a->mo.precision), sg_model_kernel(model), a->mo.n_threads);
    printf("load       %.2f s\n", res->load_s);
    for (int l = 0; l < a->n_lens; l++)
        printf("prefill    %5d tokens: %8.1f tokens/s best, %8.1f median (of %d); "
               "%.1f GFLOP computed, %.1f GFLOP/s\n",
               a->lens[l], a->lens[l] / res->pf_best[l], a->lens[l] / res->pf_med[l], a->reps,
               prefill_flops(info, a->lens[l], 2) / 1e9,
               prefill_flops(info, a->lens[l], 2) / 1e9 / res->pf_best[l]);
    if (a->classify && has_tok)
        printf("classify   4 policies, %zu-token message: %.1f ms best, %.1f median, "
               "%.1f cold; %zu prompt tokens, %zu computed\n",
               res->cl_msg_tokens, res->cl_best * 1e3, res->cl_med * 1e3, res->cl_first * 1e3,
               res->cl_prompt, res->cl_computed);
    if (has_tok)
        printf("tokenizer  %.1f MB/s\n", res->tok_mbs);
    printf("memory     %.0f MB resident after load, %.0f MB peak\n", res->rss_load,
           rss_peak_mb());
}

/* The measurements on a loaded model: prefill, classification, tokenizer, then the report.
 * 0 or -1 with a message. */
static int run_all(sg_model *model, const sg_policy_set *set, const bench_args *a,
                   bench_result *res)
{
    const sg_model_info *info = sg_model_get_info(model);
    const sg_tok *tok = sg_model_tok(model);

    if (a->max_len > info->n_ctx) {
        fprintf(stderr, "shieldctl bench: --tokens %d is beyond the model's context (%d)\n",
                a->max_len, info->n_ctx);
        return -1;
    }
    if (run_prefill(model, a, res) < 0)
        return -1;
    if (a->classify && tok != NULL && run_classify(model, set, a, res) < 0)
        return -1;
    if (tok != NULL && run_tokenizer(tok, a->reps, res) < 0)
        return -1;
    if (a->as_json)
        print_json(model, a, res);
    else
        print_table(model, a, res);
    return 0;
}

int ctl_bench(int argc, char **argv)
{
    bench_args a;
    bench_result res;
    sg_model *model = NULL;
    sg_policy_set *set = NULL;
    int status = 1;
    int rc = parse_args(argc, argv, &a);

    if (rc >= 0)
        return rc;
    memset(&res, 0, sizeof res);
    if ((a.classify || a.stream) &&
        ctl_load("bench", a.dir, NULL, NULL, NULL, &set, NULL, NULL) < 0)
        goto out;
    {
        const double t0 = now();

        rc = ctl_load("bench", NULL, a.model_path, &a.mo, NULL, NULL, &model, NULL);
        res.load_s = now() - t0;
    }
    if (rc < 0)
        goto out;
    res.rss_load = rss_now_mb();
    if (a.stream) {
        const char *names[4];
        size_t n_names = pick_four(set, names);

        status = bench_stream(model, set, names, n_names, &a.so, a.as_json) < 0;
        goto out;
    }
    status = run_all(model, set, &a, &res) < 0;
out:
    sg_model_close(model);
    sg_policy_set_free(set);
    return status;
}
