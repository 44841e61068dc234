/*
 * ctl_scan.c: `shieldctl scan`: score a data set (JSONL, CSV, plain text) against the policies,
 * through the daemon (--concurrency requests in flight) or in-process (--model), into a JSONL
 * file with one line per input item, in input order. Resumable.
 *
 * Order and resumption: items are read in windows; every item of a window is scored (by
 * `concurrency` threads with a connection each, or by the one in-process moderator), then the
 * window's lines are written in input order, each with one write(2) of the whole line; the
 * output is fsync'd at least once a second and at the end. On start, the existing output is cut
 * back to its last '\n' (a line torn by kill -9 goes), its complete lines are counted, and that
 * many items of the (sharded) input are skipped. So after any interruption the file holds a
 * prefix of the answer, and running the same command again completes it: every id exactly
 * once, in order.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "remote.h"
#include "scan.h"
#include "scan_inputs.h"
#include "scan_meta.h"
#include "scan_opts.h"
#include "scan_shard.h"
#include "sg_moderate.h"
#include "sg_moderate_json.h"

int ctl_scan(int argc, char **argv);

const char ctl_scan_help[] = "score a JSONL/CSV/text data set, resumable (daemon or in-process)";

#define MAX_NAMED 256
#define MAX_CONCURRENCY 256
#define MAX_RETRIES 100
#define MAX_INPUTS 4096

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shieldctl scan --in FILE... --out FILE [--format jsonl|csv|text]\n"
            "                      [--field text] [--response-field F] [--id-field id]\n"
            "                      [--policy NAME]... [--model PATH [--policies DIR]\n"
            "                      [--threads N] [--precision P] [--pack-cache DIR]\n"
            "                      | --socket PATH | --url URL]\n"
            "                      [--concurrency N] [--timeout MS] [--retry-for S]\n"
            "                      [--shard I/N | --shard auto [--shards N]] [--shard-by file]\n"
            "\n"
            "Score every item of the inputs (\"-\": stdin) and write one JSONL line per item, in\n"
            "input order, to --out:\n"
            "  {\"id\": ..., \"flagged\": ..., \"results\": [{\"policy\", \"probability\", "
            "\"violation\"}, ...]}\n"
            "or {\"id\": ..., \"error\": \"line N: ...\"} for an item that cannot be scored.\n"
            "Input: JSONL (objects with --field, default \"text\"), CSV with a header row, or\n"
            "plain text (one item per line); chosen by the extension (.csv, .txt) or --format.\n"
            "--in repeats, and a quoted glob ('data/*.jsonl') reads the files in sorted order.\n"
            "The id is the --id-field value (default \"id\"), else the line number.\n"
            "OUT.meta.json records the inputs, settings and shard: running again with the same\n"
            "--out continues where the last run stopped, and refuses an output of another scan.\n"
            "\n"
            "  --model PATH        in-process, no daemon (all cores; --threads N to limit)\n"
            "  --pack-cache DIR    with --model: share the packed weights through a cache file\n"
            "                      in DIR (tasks on one node then hold one copy)\n"
            "  --socket/--url      the daemon (default: $SHIELDD_SOCKET, $SHIELDD_URL,\n"
            "                      /run/shieldd/shieldd.sock)\n"
            "  --concurrency N     requests in flight to the daemon (default 4)\n"
            "  --timeout MS        per request to the daemon (default 120000)\n"
            "  --retry-for S       retry an unreachable daemon (and 502/504) for S seconds\n"
            "                      before giving up (default: 60 once it has answered, else 0)\n"
            "  --shard I/N         only every N-th item, starting with item I (0-based)\n"
            "  --shard auto        I/N from a Slurm job array (SLURM_ARRAY_TASK_ID and _COUNT or\n"
            "                      _MIN/_MAX) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)\n"
            "  --shards N          the shard count for --shard auto (else $SHIELDCTL_SHARDS;\n"
            "                      required for Kubernetes); the index is then the task id\n"
            "  --shard-by file     shard whole input files (file k goes to shard k mod N)\n"
            "  --output-without-sidecar adopt\n"
            "                      resume an --out that has no OUT.meta.json (written by hand\n"
            "                      or an older shieldctl) by counting its lines, unchecked, and\n"
            "                      write no sidecar for it (default: refuse)\n"
            "`shieldctl merge` puts the shard outputs back together.\n");
}

struct slot {
    sg_scan_item item;
    const char *file;    /* the input it came from, when there are several; borrowed */
    char *line;          /* the output line */
    json_t *results;     /* for the summary; NULL for an error */
    long long tokens;
};

struct scan {
    /* settings */
    const char *endpoint;    /* daemon mode */
    int concurrency;
    int timeout_ms;
    long retry_for_ms;       /* keep retrying an unreachable daemon this long; -1: 60 s once
                              * the daemon answered, 0 before (a wrong endpoint fails fast) */
    int answered;            /* the daemon sent a reply in this run */
    const char *const *named;
    size_t n_named;
    /* in-process */
    sg_model *model;
    sg_policy_set *set;
    sg_moderator *mod;
    const char *model_name;
    /* the current window */
    struct slot *slots;
    size_t n_slots;
    size_t next;             /* next slot to take */
    pthread_mutex_t lock;
    long long retries;       /* requests sent again (503, no daemon, proxy errors) */
    int fatal;               /* a worker hit a transport error: stop */
    char fatal_msg[1100];
};

static void set_fatal(struct scan *s, const char *msg)
{
    pthread_mutex_lock(&s->lock);
    if (!s->fatal) {
        s->fatal = 1;
        snprintf(s->fatal_msg, sizeof s->fatal_msg, "%s", msg);
    }
    pthread_mutex_unlock(&s->lock);
}

static struct slot *take(struct scan *s)
{
    struct slot *sl = NULL;

    pthread_mutex_lock(&s->lock);
    if (!s->fatal && s->next < s->n_slots)
        sl = &s->slots[s->next++];
    pthread_mutex_unlock(&s->lock);
    return sl;
}

/* The error line for an item; "line N: msg" unless msg already says where. */
static int error_line(struct slot *sl, const char *msg)
{
    char buf[1200];

    if (sl->item.error) {
        sl->line = sg_scan_result_line(sl->item.id, NULL, sl->item.error);
    } else {
        snprintf(buf, sizeof buf, "%s%sline %ld: %s", sl->file ? sl->file : "",
                 sl->file ? ": " : "", sl->item.line, msg);
        sl->line = sg_scan_result_line(sl->item.id, NULL, buf);
    }
    return sl->line ? 0 : -1;
}

static json_t *request_body(const struct scan *s, const sg_scan_item *it)
{
    json_t *b = json_object();

    if (!b)
        return NULL;
    json_object_set_new(b, "text", json_stringn(it->text, it->text_len));
    if (it->response)
        json_object_set_new(b, "response", json_stringn(it->response, it->response_len));
    if (s->n_named) {
        json_t *arr = json_array();

        for (size_t i = 0; i < s->n_named; i++)
            json_array_append_new(arr, json_string(s->named[i]));
        json_object_set_new(b, "policies", arr);
    }
    return b;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

static void count_retry(struct scan *s)
{
    pthread_mutex_lock(&s->lock);
    s->retries++;
    pthread_mutex_unlock(&s->lock);
}

/*
 * POST `txt` to /v1/classify into *r, retrying what a restart or a failover looks like: no
 * connection, a connection closed or timed out before the reply, 502 and 504 from a proxy, for
 * at most retry_for_ms from the first such failure; 503 (queue full, or a proxy with no server
 * up) up to MAX_RETRIES times as Retry-After asks. Classification has no side effects, so
 * sending an item twice is harmless. 0 with *r (any status), or -1 after set_fatal.
 */
static int send_retrying(struct scan *s, sg_client *c, const char *txt, sg_client_response *r)
{
    double first_fail = 0;
    long backoff = 50;
    long limit;
    int stop;
    char msg[1100];

    for (int attempt = 0;; attempt++) {
        int e = sg_client_request(c, "POST", "/v1/classify", txt, strlen(txt), r);
        int transient = e == SG_CLIENT_ECONNECT || e == SG_CLIENT_EIO ||
                        e == SG_CLIENT_ETIMEDOUT || (e == 0 && (r->status == 502 ||
                                                                r->status == 504));

        if (e == 0 && r->status == 503 && attempt < MAX_RETRIES) {
            /* Queue full: back off as the daemon asks (at least 50 ms), then retry. */
            long ms = r->retry_after > 0 ? r->retry_after * 1000L : 50L * (attempt + 1);

            sg_client_response_free(r);
            count_retry(s);
            sleep_ms(ms > 2000 ? 2000 : ms);
            continue;
        }
        pthread_mutex_lock(&s->lock);
        if (e == 0)
            s->answered = 1;
        limit = s->retry_for_ms >= 0 ? s->retry_for_ms : s->answered ? 60000 : 0;
        stop = s->fatal;
        pthread_mutex_unlock(&s->lock);
        if (!transient)
            break;
        if (first_fail == 0)
            first_fail = now_s();
        if ((now_s() - first_fail) * 1000.0 >= (double)limit || stop) {
            if (e < 0 && limit == 0)
                snprintf(msg, sizeof msg, "%s", sg_client_errmsg(c));
            else if (e < 0)
                snprintf(msg, sizeof msg, "%s (gave up after retrying for %ld s)",
                         sg_client_errmsg(c), limit / 1000);
            else
                snprintf(msg, sizeof msg, "%s: HTTP %d (gave up after retrying for %ld s)",
                         s->endpoint, r->status, limit / 1000);
            set_fatal(s, msg);
            sg_client_response_free(r);
            return -1;
        }
        sg_client_response_free(r);
        count_retry(s);
        sleep_ms(backoff);
        backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
    }
    return 0;
}

/* One item through the daemon. 0, or -1 after set_fatal. */
static int score_remote(struct scan *s, sg_client *c, struct slot *sl)
{
    json_t *body = request_body(s, &sl->item);
    char *txt = body ? json_dumps(body, JSON_COMPACT) : NULL;
    sg_client_response r;
    json_t *j = NULL;
    char msg[1100];
    int rc = -1;

    json_decref(body);
    if (!txt) {
        set_fatal(s, "out of memory");
        return -1;
    }
    if (send_retrying(s, c, txt, &r) < 0)
        goto out;
    j = json_loadb(r.body, r.body_len, 0, NULL);
    if (r.status == 200 && j && json_is_array(json_object_get(j, "results"))) {
        sl->results = json_incref(json_object_get(j, "results"));
        sl->tokens = json_integer_value(json_object_get(json_object_get(j, "usage"),
                                                        "prompt_tokens"));
        sl->line = sg_scan_result_line(sl->item.id, sl->results, NULL);
        rc = sl->line ? 0 : -1;
    } else if (r.status >= 400 && r.status < 500 && j && ctl_error_message(j)) {
        /* The daemon refused this item (too long, unknown policy, ...): its own words. */
        rc = error_line(sl, ctl_error_message(j));
    } else {
        snprintf(msg, sizeof msg, "%s: HTTP %d: %.*s", s->endpoint, r.status,
                 (int)(r.body_len > 300 ? 300 : r.body_len), r.body);
        if (j && ctl_error_message(j))
            snprintf(msg, sizeof msg, "%s: HTTP %d: %s", s->endpoint, r.status,
                     ctl_error_message(j));
        set_fatal(s, msg);
    }
    if (rc < 0 && !s->fatal)
        set_fatal(s, "out of memory");
    sg_client_response_free(&r);
out:
    json_decref(j);
    free(txt);
    return rc;
}

static void *remote_worker(void *arg)
{
    struct scan *s = arg;
    sg_client *c = NULL;
    sg_client_opts o = sg_client_opts_default();
    char err[512];
    struct slot *sl;

    o.timeout_ms = s->timeout_ms;
    if (sg_client_new(&c, s->endpoint, &o, err, sizeof err) < 0) {
        set_fatal(s, err);
        return NULL;
    }
    while ((sl = take(s)) != NULL) {
        if (sl->item.error) {
            if (error_line(sl, NULL) < 0)
                set_fatal(s, "out of memory");
            continue;
        }
        if (score_remote(s, c, sl) < 0)
            break;
    }
    sg_client_free(c);
    return NULL;
}

static void *local_worker(void *arg)
{
    struct scan *s = arg;
    struct slot *sl;

    while ((sl = take(s)) != NULL) {
        sg_moderate_req req;
        sg_moderate_result res;
        json_t *j;
        int rc;

        if (sl->item.error) {
            if (error_line(sl, NULL) < 0)
                set_fatal(s, "out of memory");
            continue;
        }
        memset(&req, 0, sizeof req);
        memset(&res, 0, sizeof res);
        req.text = sl->item.text;
        req.text_len = sl->item.text_len;
        req.response = sl->item.response;
        req.response_len = sl->item.response_len;
        req.policies = s->n_named ? s->named : NULL;
        req.n_policies = s->n_named;
        rc = sg_moderate(s->mod, s->set, &req, &res);
        if (rc < 0) {
            if (error_line(sl, sg_moderator_errmsg(s->mod)) < 0)
                set_fatal(s, "out of memory");
            continue;
        }
        j = sg_moderate_result_json(NULL, &res);
        sl->tokens = (long long)res.prompt_tokens;
        sg_moderate_result_free(&res);
        if (j) {
            sl->results = json_incref(json_object_get(j, "results"));
            sl->line = sg_scan_result_line(sl->item.id, sl->results, NULL);
        }
        json_decref(j);
        if (!sl->line)
            set_fatal(s, "out of memory");
    }
    return NULL;
}

/* Score the window: concurrency threads (daemon) or the calling thread (in-process). */
static int run_window(struct scan *s)
{
    pthread_t th[MAX_CONCURRENCY];
    int n = 0;

    s->next = 0;
    if (s->mod) {
        local_worker(s);
    } else {
        int want = s->concurrency < (int)s->n_slots ? s->concurrency : (int)s->n_slots;

        for (n = 0; n < want; n++)
            if (pthread_create(&th[n], NULL, remote_worker, s) != 0)
                break;
        if (n == 0)
            remote_worker(s);
        for (int i = 0; i < n; i++)
            pthread_join(th[i], NULL);
    }
    return s->fatal ? -1 : 0;
}

struct summary {
    long long items;
    long long errors;
    long long tokens;
    long long skipped;
    char **names;
    long long *flagged;
    size_t n_names;
    size_t cap;
};

static void count_result(struct summary *sm, const json_t *results)
{
    const json_t *r;
    size_t i;

    json_array_foreach(results, i, r) {
        const char *name = json_string_value(json_object_get(r, "policy"));
        size_t k;

        if (!name)
            continue;
        for (k = 0; k < sm->n_names; k++)
            if (strcmp(sm->names[k], name) == 0)
                break;
        if (k == sm->n_names) {
            if (sm->n_names == sm->cap) {
                size_t nc = sm->cap ? sm->cap * 2 : 16;
                char **nn = realloc(sm->names, nc * sizeof *nn);
                long long *nf;

                if (!nn)
                    continue;
                sm->names = nn;
                nf = realloc(sm->flagged, nc * sizeof *nf);
                if (!nf)
                    continue;
                sm->flagged = nf;
                sm->cap = nc;
            }
            sm->names[k] = strdup(name);
            if (!sm->names[k])
                continue;
            sm->flagged[k] = 0;
            sm->n_names++;
        }
        if (json_is_true(json_object_get(r, "violation")))
            sm->flagged[k]++;
    }
}


static void progress(long long done, long long off, long long size, double t0, int final)
{
    double el = now_s() - t0;
    double rate = el > 0 ? done / el : 0;
    char eta[32] = "--:--";

    if (size > 0) {
        double frac = (double)off / (double)size;
        int w = 30;
        int filled = (int)(frac * w);

        if (frac > 0 && el > 0) {
            long left = (long)(el / frac - el);

            snprintf(eta, sizeof eta, "%ld:%02ld", left / 60, left % 60);
        }
        fprintf(stderr, "\r[%.*s%*s] %3d%% %lld items %.1f/s ETA %s ", filled,
                "##############################", w - filled, "", (int)(frac * 100), done, rate,
                eta);
    } else {
        fprintf(stderr, "\r%lld items %.1f/s ", done, rate);
    }
    if (final)
        fputc('\n', stderr);
}

/* What one `shieldctl scan` run reads, writes and where it stands. */
struct job {
    const char *names[MAX_INPUTS]; /* --in, as given */
    size_t n_names;
    sg_scan_paths in;              /* expanded */
    const char *out_path;
    const char *format;            /* --format or NULL: by extension */
    sg_scan_opts so;
    const char *model_path;
    const char *dir;
    const char *sock;
    const char *url;
    sg_model_opts mo;
    sg_moderate_opts mopts;
    const char *shard_arg;
    long shards;                   /* --shards N, 0 if not given */
    int by_file;                   /* --shard-by file */
    int adopt;                     /* --output-without-sidecar adopt */
    int adopted;                   /* it did: this run writes no sidecar either */
    sg_scan_shard shard;
    json_t *meta;                  /* the sidecar being written */
    json_t *file_items;            /* items per input file (null: not this shard's file) */
    int out_fd;
    long long done_lines;          /* complete lines already in the output */
    /* the input being read */
    size_t cur;                    /* index into in.v */
    FILE *f;
    sg_scan_reader *rd;
    long long cur_items;
    long long index;               /* items read, all shards (item mode) */
    long long selected;            /* items of this shard seen */
    long long in_size;             /* bytes of all regular inputs, for progress */
    long long off_done;            /* bytes of the inputs already read */
};

/* Parse argv into *j and *s. 0, 1 (--help printed) or -1 (message printed). */
static int parse_args(int argc, char **argv, struct job *j, struct scan *s)
{
    static const struct option longopts[] = {
        CTL_SCAN_LONGOPTS, /* the ones eval passes on, too */
        {"pack-cache", required_argument, NULL, 'C'},
        {"shard", required_argument, NULL, 's'},
        {"shards", required_argument, NULL, 'N'},
        {"shard-by", required_argument, NULL, 'B'},
        {"retry-for", required_argument, NULL, 'R'},
        {"output-without-sidecar", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    int n;

    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'i':
            if (j->n_names == MAX_INPUTS) {
                fprintf(stderr, "shieldctl scan: more than %d --in\n", MAX_INPUTS);
                return -1;
            }
            j->names[j->n_names++] = optarg;
            break;
        case 'o':
            j->out_path = optarg;
            break;
        case 'F':
            j->format = optarg;
            break;
        case 'f':
            j->so.field = optarg;
            break;
        case 'r':
            j->so.response_field = optarg;
            break;
        case 'I':
            j->so.id_field = optarg;
            break;
        case 'p':
            if (s->n_named == MAX_NAMED) {
                fprintf(stderr, "shieldctl scan: more than %d --policy\n", MAX_NAMED);
                return -1;
            }
            ((const char **)s->named)[s->n_named++] = optarg;
            break;
        case 'P':
            j->dir = optarg;
            break;
        case 'm':
            j->model_path = optarg;
            break;
        case 't':
            if (ctl_parse_int("scan", "--threads", optarg, 0, 4096, &j->mo.n_threads) < 0)
                return -1;
            break;
        case 'x':
            if (sg_precision_parse(optarg, &j->mo.precision) != SG_OK) {
                fprintf(stderr, "shieldctl scan: --precision wants f32, bf16 or int8\n");
                return -1;
            }
            break;
        case 'C':
            j->mo.pack_cache = optarg;
            break;
        case 'S':
            j->sock = optarg;
            break;
        case 'U':
            j->url = optarg;
            break;
        case 'c':
            if (ctl_parse_int("scan", "--concurrency", optarg, 1, MAX_CONCURRENCY,
                              &s->concurrency) < 0)
                return -1;
            break;
        case 's':
            j->shard_arg = optarg;
            break;
        case 'N':
            if (ctl_parse_int("scan", "--shards", optarg, 1, (int)SG_SCAN_MAX_SHARDS, &n) < 0)
                return -1;
            j->shards = n;
            break;
        case 'B':
            if (strcmp(optarg, "item") && strcmp(optarg, "file")) {
                fprintf(stderr, "shieldctl scan: --shard-by wants item or file, not '%s'\n",
                        optarg);
                return -1;
            }
            j->by_file = strcmp(optarg, "file") == 0;
            break;
        case 'T':
            if (ctl_parse_int("scan", "--timeout", optarg, 1, INT_MAX, &s->timeout_ms) < 0)
                return -1;
            break;
        case 'R':
            if (ctl_parse_int("scan", "--retry-for", optarg, 0, 86400, &n) < 0)
                return -1;
            s->retry_for_ms = n * 1000L;
            break;
        case 'W':
            if (strcmp(optarg, "refuse") && strcmp(optarg, "adopt")) {
                fprintf(stderr, "shieldctl scan: --output-without-sidecar wants refuse or "
                                "adopt, not '%s'\n",
                        optarg);
                return -1;
            }
            j->adopt = strcmp(optarg, "adopt") == 0;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc || !j->n_names || !j->out_path) {
        fprintf(stderr, "shieldctl scan: --in FILE and --out FILE are required\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

/* The checks that need all the options. 0, or -1 (message printed). */
static int check_args(struct job *j, struct scan *s)
{
    char err[512];
    sg_scan_format fmt;

    if (j->model_path && (j->sock || j->url)) {
        fprintf(stderr, "shieldctl scan: --model runs in-process; it does not go with --socket "
                        "or --url\n");
        return -1;
    }
    if (j->format && sg_scan_format_parse(j->format, &fmt) < 0) {
        fprintf(stderr, "shieldctl scan: --format wants jsonl, csv or text, not '%s'\n",
                j->format);
        return -1;
    }
    if (strcmp(j->out_path, "-") == 0) {
        fprintf(stderr, "shieldctl scan: --out must be a file (it is how a scan resumes)\n");
        return -1;
    }
    if (sg_scan_shard_resolve(j->shard_arg, j->shards, &j->shard, err, sizeof err) < 0) {
        fprintf(stderr, "shieldctl scan: %s\n", err);
        return -1;
    }
    if (sg_scan_paths_expand(j->names, j->n_names, &j->in, err, sizeof err) < 0) {
        fprintf(stderr, "shieldctl scan: --in: %s\n", err);
        return -1;
    }
    for (size_t k = 0; k < j->in.n; k++) {
        if (strcmp(j->in.v[k], "-") == 0 && j->in.n > 1) {
            fprintf(stderr, "shieldctl scan: --in - (standard input) must be the only input\n");
            return -1;
        }
    }
    if (!j->model_path) {
        s->endpoint = ctl_endpoint("scan", j->sock, j->url);
        if (!s->endpoint)
            return -1;
    }
    return 0;
}

/* The sidecar this run writes: shard, input identities, settings. 0, or -1 (printed). */
static int build_meta(struct job *j, const struct scan *s)
{
    json_t *inputs = json_array();
    json_t *settings;
    json_t *pol = json_array();
    char err[512];

    for (size_t k = 0; inputs && k < j->in.n; k++) {
        json_t *id = sg_scan_input_identity(j->in.v[k], err, sizeof err);

        if (!id) {
            fprintf(stderr, "shieldctl scan: %s\n", err);
            json_decref(inputs);
            json_decref(pol);
            return -1;
        }
        json_array_append_new(inputs, id);
    }
    for (size_t k = 0; pol && k < s->n_named; k++)
        json_array_append_new(pol, json_string(s->named[k]));
    settings = json_pack("{s:s?,s:s,s:s?,s:s,s:o?}", "format", j->format, "field",
                         j->so.field ? j->so.field : "text", "response_field",
                         j->so.response_field, "id_field", j->so.id_field ? j->so.id_field : "id",
                         "policies", pol);
    j->meta = inputs && settings ? sg_scan_meta_new(&j->shard, j->by_file ? "file" : "item",
                                                    inputs, settings)
                                 : NULL;
    j->file_items = json_array();
    for (size_t k = 0; j->file_items && k < j->in.n; k++)
        json_array_append_new(j->file_items, json_null());
    if (!j->meta || !j->file_items) {
        fprintf(stderr, "shieldctl scan: out of memory\n");
        return -1;
    }
    return 0;
}

/*
 * Open --out and resume: an existing non-empty output must have a sidecar with the same
 * identity as this run. Then cut a torn line, count the complete ones, and write the sidecar
 * (incomplete) before any new line. 0, or -1 (printed).
 */
static int open_output(struct job *j)
{
    json_t *have = NULL;
    char err[1024];
    struct stat st;
    int e;

    j->out_fd = open(j->out_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (j->out_fd < 0 || fstat(j->out_fd, &st) < 0) {
        fprintf(stderr, "shieldctl scan: %s: %s\n", j->out_path, strerror(errno));
        return -1;
    }
    e = sg_scan_meta_load(j->out_path, &have, err, sizeof err);
    if (e < 0) {
        fprintf(stderr, "shieldctl scan: %s\n", err);
        return -1;
    }
    if (e == 1 && st.st_size > 0 && j->adopt) {
        /* Whoever asked vouches for the lines (eval checks their ids); a sidecar written now
         * would claim an identity nobody checked. */
        j->adopted = 1;
    } else if (e == 1 && st.st_size > 0) {
        fprintf(stderr, "shieldctl scan: %s holds %lld bytes but has no %s.meta.json, so it "
                        "cannot be resumed (was it written by another scan?): give a new --out "
                        "or remove it\n",
                j->out_path, (long long)st.st_size, j->out_path);
        return -1;
    }
    if (e == 0 && sg_scan_meta_same(have, j->meta, err, sizeof err) < 0) {
        fprintf(stderr, "shieldctl scan: %s belongs to another scan: %s; give a new --out or "
                        "remove it and %s.meta.json\n",
                j->out_path, err, j->out_path);
        json_decref(have);
        return -1;
    }
    json_decref(have);
    e = sg_scan_resume(j->out_fd, &j->done_lines);
    if (e < 0) {
        fprintf(stderr, "shieldctl scan: %s: %s\n", j->out_path, strerror(-e));
        return -1;
    }
    if (!j->adopted && sg_scan_meta_save(j->out_path, j->meta, err, sizeof err) < 0) {
        fprintf(stderr, "shieldctl scan: %s\n", err);
        return -1;
    }
    return 0;
}

/* Close the current input; record its item count. */
static void close_input(struct job *j)
{
    if (!j->rd)
        return;
    json_array_set_new(j->file_items, j->cur, json_integer(j->cur_items));
    j->off_done += sg_scan_reader_offset(j->rd);
    sg_scan_reader_free(j->rd);
    j->rd = NULL;
    if (j->f && j->f != stdin)
        fclose(j->f);
    j->f = NULL;
    j->cur++;
}

/* Open the next input of this shard. 1 when one is open, 0 at the end, -1 (printed). */
static int open_input(struct job *j)
{
    char err[1024];

    while (j->cur < j->in.n && j->by_file && !sg_scan_shard_has(&j->shard, (long long)j->cur))
        j->cur++;
    if (j->cur == j->in.n)
        return 0;
    const char *p = j->in.v[j->cur];

    j->so.format = sg_scan_format_of(p);
    if (j->format)
        sg_scan_format_parse(j->format, &j->so.format);
    j->f = strcmp(p, "-") == 0 ? stdin : fopen(p, "rb");
    if (!j->f) {
        fprintf(stderr, "shieldctl scan: %s: %s\n", p, strerror(errno));
        return -1;
    }
    j->cur_items = 0;
    if (sg_scan_reader_new(&j->rd, j->f, &j->so, err, sizeof err) < 0) {
        fprintf(stderr, "shieldctl scan: %s: %s\n", p, err);
        if (j->f != stdin)
            fclose(j->f);
        j->f = NULL;
        return -1;
    }
    return 1;
}

/* With several inputs, an item's message names its file: "a.jsonl: line 7: ...". */
static int name_file(struct job *j, sg_scan_item *it)
{
    char *m;
    size_t n;

    if (j->in.n < 2 || !it->error)
        return 0;
    n = strlen(j->in.v[j->cur]) + strlen(it->error) + 3;
    m = malloc(n);
    if (!m)
        return -1;
    snprintf(m, n, "%s: %s", j->in.v[j->cur], it->error);
    free(it->error);
    it->error = m;
    return 0;
}

/*
 * Fill the window with this shard's next items not yet in the output. Returns 1 with at least
 * one item, 0 at the end of the inputs, -1 (printed).
 */
static int fill_window(struct job *j, struct scan *s, size_t window, struct summary *sm)
{
    s->n_slots = 0;
    while (s->n_slots < window) {
        struct slot *sl = &s->slots[s->n_slots];
        int rc = j->rd ? 1 : open_input(j);

        if (rc <= 0) {
            if (rc < 0)
                return -1;
            break;
        }
        rc = sg_scan_reader_next(j->rd, &sl->item);
        if (rc < 0) {
            fprintf(stderr, "shieldctl scan: %s: %s\n", j->in.v[j->cur],
                    sg_scan_reader_errmsg(j->rd));
            return -1;
        }
        if (rc == 0) {
            close_input(j);
            continue;
        }
        j->cur_items++;
        if (!j->by_file && !sg_scan_shard_has(&j->shard, j->index++))
            continue;
        if (j->selected++ < j->done_lines) {
            sm->skipped++;
            continue;
        }
        sl->file = j->in.n > 1 ? j->in.v[j->cur] : NULL;
        if (name_file(j, &sl->item) < 0) {
            fprintf(stderr, "shieldctl scan: out of memory\n");
            return -1;
        }
        s->n_slots++;
    }
    return s->n_slots > 0;
}

/* Write the window's lines in input order and count them. 0, or -1 (printed). */
static int write_window(struct job *j, struct scan *s, struct summary *sm)
{
    for (size_t k = 0; k < s->n_slots; k++) {
        struct slot *sl = &s->slots[k];
        int e = sg_scan_write_line(j->out_fd, sl->line, strlen(sl->line));

        if (e < 0) {
            fprintf(stderr, "shieldctl scan: %s: write: %s (the output keeps its complete lines: "
                            "run the same command again to resume)\n",
                    j->out_path, strerror(-e));
            return -1;
        }
        sm->items++;
        sm->tokens += sl->tokens;
        if (sl->results)
            count_result(sm, sl->results);
        else
            sm->errors++;
        json_decref(sl->results);
        sl->results = NULL;
        free(sl->line);
        sl->line = NULL;
        sg_scan_item_clear(&sl->item);
    }
    return 0;
}

/* A worker failed: keep the finished prefix of the window (it is in order), say why. */
static void keep_prefix(struct job *j, struct scan *s, int tty)
{
    for (size_t k = 0; k < s->n_slots && s->slots[k].line; k++) {
        if (sg_scan_write_line(j->out_fd, s->slots[k].line, strlen(s->slots[k].line)) < 0)
            break;
    }
    if (tty)
        fputc('\n', stderr);
    fprintf(stderr, "shieldctl scan: %s\n", s->fatal_msg);
    fsync(j->out_fd);
}

/* fsync the output, then mark the sidecar complete with the counts. 0, or -1 (printed). */
static int finish(struct job *j, long long lines)
{
    char err[1024];
    int e = 0;

    if (fsync(j->out_fd) < 0 && errno != EINVAL) {
        fprintf(stderr, "shieldctl scan: %s: fsync: %s (run the same command again to "
                        "resume)\n",
                j->out_path, strerror(errno));
        return -1;
    }
    e |= json_object_set_new(j->meta, "complete", json_true());
    e |= json_object_set_new(j->meta, "lines", json_integer(lines));
    if (!j->by_file)
        e |= json_object_set_new(j->meta, "total", json_integer(j->index));
    e |= json_object_set(j->meta, "file_items", j->file_items);
    if (e) {
        fprintf(stderr, "shieldctl scan: out of memory\n");
        return -1;
    }
    if (!j->adopted && sg_scan_meta_save(j->out_path, j->meta, err, sizeof err) < 0) {
        fprintf(stderr, "shieldctl scan: %s (the output is complete: run the same command "
                        "again to mark it so)\n",
                err);
        return -1;
    }
    return 0;
}

static void print_summary(const struct job *j, const struct summary *sm, double t0,
                          long long retries)
{
    double el = now_s() - t0;

    fprintf(stderr, "scan: %lld items (%lld resumed from %s), %lld errors, %.1f items/s, "
                    "%.0f tokens/s, %lld retries\n",
            sm->items, sm->skipped, j->out_path, sm->errors, el > 0 ? sm->items / el : 0.0,
            el > 0 ? sm->tokens / el : 0.0, retries);
    for (size_t k = 0; k < sm->n_names; k++)
        fprintf(stderr, "  %-20s %lld flagged\n", sm->names[k], sm->flagged[k]);
}

/* Score every window of the inputs into the output. 0, or -1 (printed). */
static int scan_all(struct job *j, struct scan *s, size_t window, struct summary *sm)
{
    int tty = isatty(2);
    double t0 = now_s();
    double last_sync = t0;
    double last_bar = 0;
    int rc;

    for (size_t k = 0; k < j->in.n; k++) {
        struct stat st;

        if (strcmp(j->in.v[k], "-") && stat(j->in.v[k], &st) == 0 && S_ISREG(st.st_mode))
            j->in_size += st.st_size;
    }
    if (j->done_lines > 0 && tty)
        fprintf(stderr, "shieldctl scan: resuming after %lld items already in %s\n",
                j->done_lines, j->out_path);
    while ((rc = fill_window(j, s, window, sm)) > 0) {
        if (run_window(s) < 0) {
            keep_prefix(j, s, tty);
            return -1;
        }
        if (write_window(j, s, sm) < 0)
            return -1;
        if (now_s() - last_sync >= 1.0) {
            if (fsync(j->out_fd) < 0 && errno != EINVAL) {
                fprintf(stderr, "shieldctl scan: %s: fsync: %s (run the same command again "
                                "to resume)\n",
                        j->out_path, strerror(errno));
                return -1;
            }
            last_sync = now_s();
        }
        if (tty && now_s() - last_bar >= 0.2) {
            progress(sm->items, j->off_done + (j->rd ? sg_scan_reader_offset(j->rd) : 0),
                     j->in_size, t0, 0);
            last_bar = now_s();
        }
    }
    if (rc < 0 || finish(j, j->done_lines + sm->items) < 0)
        return -1;
    if (tty)
        progress(sm->items, j->in_size, j->in_size, t0, 1);
    print_summary(j, sm, t0, s->retries);
    return 0;
}

static void job_free(struct job *j, struct scan *s, size_t window, struct summary *sm)
{
    if (s->slots) {
        for (size_t k = 0; k < window; k++) {
            sg_scan_item_clear(&s->slots[k].item);
            free(s->slots[k].line);
            json_decref(s->slots[k].results);
        }
        free(s->slots);
    }
    for (size_t k = 0; k < sm->n_names; k++)
        free(sm->names[k]);
    free(sm->names);
    free(sm->flagged);
    if (j->out_fd >= 0)
        close(j->out_fd);
    sg_scan_reader_free(j->rd);
    if (j->f && j->f != stdin)
        fclose(j->f);
    json_decref(j->meta);
    json_decref(j->file_items);
    sg_scan_paths_free(&j->in);
    sg_moderator_free(s->mod);
    sg_model_close(s->model);
    sg_policy_set_free(s->set);
    pthread_mutex_destroy(&s->lock);
}

int ctl_scan(int argc, char **argv)
{
    const char *named[MAX_NAMED];
    struct job j;
    struct scan s;
    struct summary sm;
    size_t window = 0;
    int status = 1;
    int rc;

    memset(&j, 0, sizeof j);
    memset(&s, 0, sizeof s);
    memset(&sm, 0, sizeof sm);
    j.dir = "policies";
    j.mo = sg_model_opts_default();
    j.mopts = sg_moderate_opts_default();
    j.out_fd = -1;
    s.concurrency = 4;
    s.timeout_ms = 120000;
    s.retry_for_ms = -1;
    s.named = named;
    rc = parse_args(argc, argv, &j, &s);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    pthread_mutex_init(&s.lock, NULL);
    if (check_args(&j, &s) < 0) {
        status = 2;
        goto out;
    }
    /* Inputs first (so that a wrong --in does not create an empty --out), then the output. */
    if (build_meta(&j, &s) < 0 || open_input(&j) < 0 || open_output(&j) < 0)
        goto out;
    if (j.model_path &&
        ctl_load("scan", j.dir, j.model_path, &j.mo, &j.mopts, &s.set, &s.model, &s.mod) < 0)
        goto out;
    window = j.model_path ? 64 : (size_t)s.concurrency * 16;
    s.slots = calloc(window, sizeof *s.slots);
    if (!s.slots) {
        fprintf(stderr, "shieldctl scan: out of memory\n");
        goto out;
    }
    if (scan_all(&j, &s, window, &sm) == 0)
        status = 0;
out:
    job_free(&j, &s, window, &sm);
    return status;
}
