/*
 * ctl_logits.c: `shieldctl logits`, the engine's logits for a list of token ids, for checking
 * it against other implementations. Always f32 precision.
 *
 *   shieldctl logits --model PATH --ids 2,4,1379 [--ids-file F] [--all-positions] [--threads N]
 *                    [--verbose]
 *
 * Output: one line per vocabulary id, `ID VALUE` (%.9g), for the last position; with
 * --all-positions, a line `position P` before each position's block. --verbose writes the
 * engine's log (which keys of the model's configuration took their defaults, what was ignored)
 * and the hyper-parameters the forward pass runs with to stderr.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int ctl_logits(int argc, char **argv);
extern const char ctl_logits_help[];

const char ctl_logits_help[] = "print the model's logits for token ids (checks the engine)";

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shieldctl logits --model PATH (--ids ID,ID,... | --ids-file FILE)\n"
            "                        [--all-positions] [--threads N] [--verbose]\n"
            "\n"
            "Runs the token ids through the model in f32 and prints the logits of the last\n"
            "position, one line `ID VALUE` per vocabulary id (with --all-positions, every\n"
            "position, each block after a line `position P`).\n"
            "PATH: a Hugging Face model folder, a .safetensors file (config.json beside it) or\n"
            "a .gguf file. FILE holds ids separated by commas and/or whitespace.\n"
            "--verbose: the engine's log (keys that took their defaults, parts ignored) and\n"
            "the hyper-parameters the forward pass runs with, on stderr.\n");
}

/* Append the ids in `text` (separated by commas/whitespace) to *ids. 0 or -1 with a message. */
static int parse_ids(const char *text, const char *where, int32_t **ids, size_t *n, size_t *cap)
{
    const char *p = text;

    for (;;) {
        while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            return 0;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno != 0 || v < 0 || v > INT32_MAX ||
            (*end && *end != ',' && *end != ' ' && *end != '\t' && *end != '\n' &&
             *end != '\r')) {
            fprintf(stderr, "shieldctl logits: %s: expected token ids (non-negative integers "
                    "separated by commas), found '%.20s'\n", where, p);
            return -1;
        }
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            int32_t *g = realloc(*ids, nc * sizeof *g);
            if (!g) {
                fprintf(stderr, "shieldctl logits: out of memory\n");
                return -1;
            }
            *ids = g;
            *cap = nc;
        }
        (*ids)[(*n)++] = (int32_t)v;
        p = end;
    }
}

/* --verbose: every engine log line to stderr. */
static void log_stderr(sg_log_level level, const char *msg, void *ud)
{
    static const char *const names[] = {"error", "warning", "info", "debug"};

    (void)ud;
    fprintf(stderr, "%s: %s\n", (unsigned)level < 4 ? names[level] : "log", msg);
}

/* --verbose: what the forward pass runs with. */
static void print_info(const sg_model_info *i)
{
    int n_sliding = 0;

    fprintf(stderr,
            "model: arch %s%s, format %s, name %s\n"
            "  vocab %d, d_model %d, layers %d, heads %d / kv %d x head_dim %d, ffn %d, ctx %d\n"
            "  rms_eps %g, query_scale %.9g, attn_softcap %g, final_softcap %g, qk_norm %d\n"
            "  rope full layers: theta %g, linear factor %g; sliding layers: theta %g, factor %g\n"
            "  sliding_window %d, layers (S sliding, F full): ",
            i->arch, i->multimodal ? " (multimodal checkpoint: language model)" : "", i->format,
            i->name, i->n_vocab, i->d_model, i->n_layer, i->n_head, i->n_kv_head, i->head_dim,
            i->d_ff, i->n_ctx, (double)i->rms_eps, (double)i->query_scale,
            (double)i->attn_softcap, (double)i->final_softcap, i->qk_norm, (double)i->rope_theta,
            (double)i->rope_scale, (double)i->rope_local_theta, (double)i->rope_local_scale,
            i->sliding_window);
    for (int l = 0; l < i->n_layer && l < SG_MAX_LAYERS; l++) {
        fputc(i->layer_sliding[l] ? 'S' : 'F', stderr);
        n_sliding += i->layer_sliding[l];
    }
    fprintf(stderr, " (%d sliding)\n  bos %d, eos %d\n", n_sliding, i->bos_id, i->eos_id);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len;
    int rc;

    if (!f) {
        fprintf(stderr, "shieldctl logits: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    rc = ctl_read_stream(f, &buf, &len);
    fclose(f);
    if (rc == SG_ENOMEM)
        fprintf(stderr, "shieldctl logits: out of memory\n");
    else if (rc < 0)
        fprintf(stderr, "shieldctl logits: %s: read error\n", path);
    return buf;
}

int ctl_logits(int argc, char **argv)
{
    const char *model = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    size_t cap = 0;
    int all = 0;
    int threads = 0;
    int verbose = 0;
    int status = 1;
    sg_model *m = NULL;
    sg_ctx *c = NULL;
    float *out = NULL;
    char err[1024];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--all-positions") == 0) {
            all = 1;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            verbose = 1;
        } else if (i + 1 < argc && strcmp(a, "--model") == 0) {
            model = argv[++i];
        } else if (i + 1 < argc && strcmp(a, "--ids") == 0) {
            if (parse_ids(argv[++i], "--ids", &ids, &n, &cap) != 0)
                goto done;
        } else if (i + 1 < argc && strcmp(a, "--ids-file") == 0) {
            char *text = read_file(argv[++i]);
            if (!text)
                goto done;
            int rc = parse_ids(text, argv[i], &ids, &n, &cap);
            free(text);
            if (rc != 0)
                goto done;
        } else if (i + 1 < argc && strcmp(a, "--threads") == 0) {
            if (ctl_parse_int("logits", "--threads", argv[++i], 0, 1024, &threads) < 0)
                goto done;
        } else {
            fprintf(stderr, "shieldctl logits: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            status = 2;
            goto done;
        }
    }
    if (!model || n == 0) {
        fprintf(stderr, "shieldctl logits: %s\n",
                !model ? "--model PATH is required" : "no token ids given (--ids or --ids-file)");
        usage(stderr);
        status = 2;
        goto done;
    }

    if (verbose)
        sg_engine_set_log(log_stderr, NULL);
    sg_model_opts mo = sg_model_opts_default();
    mo.precision = SG_PREC_F32;
    mo.n_threads = threads;
    mo.load_tokenizer = 0;
    int rc = sg_model_open(&m, model, &mo, err, sizeof err);
    if (rc != SG_OK) {
        fprintf(stderr, "shieldctl logits: %s (%s)\n", err, sg_engine_strerror(rc));
        goto done;
    }
    const sg_model_info *info = sg_model_get_info(m);
    if (verbose)
        print_info(info);
    if (n > (size_t)info->n_ctx) {
        fprintf(stderr, "shieldctl logits: %zu ids, the model takes at most %d\n", n,
                info->n_ctx);
        goto done;
    }
    sg_ctx_opts co = sg_ctx_opts_default();
    co.n_ctx = (int)n;
    co.max_branch_tokens = 1;
    co.max_branches = 1;
    rc = sg_ctx_new(&c, m, &co, err, sizeof err);
    if (rc != SG_OK) {
        fprintf(stderr, "shieldctl logits: cannot create a context: %s\n", err);
        goto done;
    }
    size_t rows = all ? n : 1;
    size_t v = (size_t)info->n_vocab;
    out = malloc(rows * v * sizeof *out);
    if (!out) {
        fprintf(stderr, "shieldctl logits: out of memory\n");
        goto done;
    }
    sg_logits_req rq = {NULL, 0, all, out};
    rc = sg_ctx_append(c, ids, n, &rq);
    if (rc != SG_OK) {
        fprintf(stderr, "shieldctl logits: %s (%s)\n", sg_ctx_errmsg(c), sg_engine_strerror(rc));
        goto done;
    }
    for (size_t r = 0; r < rows; r++) {
        if (all)
            printf("position %zu\n", r);
        for (size_t i = 0; i < v; i++)
            printf("%zu %.9g\n", i, (double)out[r * v + i]);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "shieldctl logits: write error: %s\n", strerror(errno));
        goto done;
    }
    status = 0;
done:
    free(out);
    sg_ctx_free(c);
    sg_model_close(m);
    free(ids);
    return status;
}
