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
#include "sg_moderate.h"
#include "sg_moderate_json.h"

int ctl_scan(int argc, char **argv);

const char ctl_scan_help[] = "score a JSONL/CSV/text data set, resumable (daemon or in-process)";

#define MAX_NAMED 256
#define MAX_CONCURRENCY 256
#define MAX_RETRIES 100

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shieldctl scan --in FILE --out FILE [--format jsonl|csv|text]\n"
            "                      [--field text] [--response-field F] [--id-field id]\n"
            "                      [--policy NAME]... [--model PATH [--policies DIR]\n"
            "                      [--threads N] [--precision P] | --socket PATH | --url URL]\n"
            "                      [--concurrency N] [--shard I/N] [--timeout MS]\n"
            "\n"
            "Score every item of --in (\"-\": stdin) and write one JSONL line per item, in input\n"
            "order, to --out:\n"
            "  {\"id\": ..., \"flagged\": ..., \"results\": [{\"policy\", \"probability\", "
            "\"violation\"}, ...]}\n"
            "or {\"id\": ..., \"error\": \"line N: ...\"} for an item that cannot be scored.\n"
            "Input: JSONL (objects with --field, default \"text\"), CSV with a header row, or\n"
            "plain text (one item per line); chosen by the extension (.csv, .txt) or --format.\n"
            "The id is the --id-field value (default \"id\"), else the line number.\n"
            "Running again with the same --out continues where the last run stopped.\n"
            "\n"
            "  --model PATH        in-process, no daemon (all cores; --threads N to limit)\n"
            "  --socket/--url      the daemon (default: $SHIELDD_SOCKET, $SHIELDD_URL,\n"
            "                      /run/shieldd/shieldd.sock)\n"
            "  --concurrency N     requests in flight to the daemon (default 4)\n"
            "  --shard I/N         only every N-th item, starting with item I (0-based)\n"
            "  --timeout MS        per request to the daemon (default 120000)\n");
}

struct slot {
    sg_scan_item item;
    char *line;          /* the output line */
    json_t *results;     /* for the summary; NULL for an error */
    long long tokens;
};

struct scan {
    /* settings */
    const char *endpoint;    /* daemon mode */
    int concurrency;
    int timeout_ms;
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
        snprintf(buf, sizeof buf, "line %ld: %s", sl->item.line, msg);
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
    for (int attempt = 0;; attempt++) {
        int e = sg_client_request(c, "POST", "/v1/classify", txt, strlen(txt), &r);

        if (e < 0) {
            set_fatal(s, sg_client_errmsg(c));
            sg_client_response_free(&r);
            goto out;
        }
        if (r.status == 503 && attempt < MAX_RETRIES) {
            /* Queue full: back off as the daemon asks (at least 50 ms), then retry. */
            long ms = r.retry_after > 0 ? r.retry_after * 1000L : 50L * (attempt + 1);
            struct timespec ts;

            if (ms > 2000)
                ms = 2000;
            ts.tv_sec = ms / 1000;
            ts.tv_nsec = (ms % 1000) * 1000000L;
            sg_client_response_free(&r);
            nanosleep(&ts, NULL);
            continue;
        }
        break;
    }
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

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
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

static int parse_shard(const char *s, long *i, long *n)
{
    char *end;

    errno = 0;
    *i = strtol(s, &end, 10);
    if (errno || end == s || *end != '/')
        return -1;
    s = end + 1;
    *n = strtol(s, &end, 10);
    if (errno || end == s || *end || *n < 1 || *i < 0 || *i >= *n)
        return -1;
    return 0;
}

int ctl_scan(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"in", required_argument, NULL, 'i'},
        {"out", required_argument, NULL, 'o'},
        {"format", required_argument, NULL, 'F'},
        {"field", required_argument, NULL, 'f'},
        {"response-field", required_argument, NULL, 'r'},
        {"id-field", required_argument, NULL, 'I'},
        {"policy", required_argument, NULL, 'p'},
        {"policies", required_argument, NULL, 'P'},
        {"model", required_argument, NULL, 'm'},
        {"threads", required_argument, NULL, 't'},
        {"precision", required_argument, NULL, 'x'},
        {"socket", required_argument, NULL, 'S'},
        {"url", required_argument, NULL, 'U'},
        {"concurrency", required_argument, NULL, 'c'},
        {"shard", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *in_path = NULL;
    const char *out_path = NULL;
    const char *format = NULL;
    const char *model_path = NULL;
    const char *dir = "policies";
    const char *sock = NULL;
    const char *url = NULL;
    const char *named[MAX_NAMED];
    sg_scan_opts so;
    sg_model_opts mo = sg_model_opts_default();
    sg_moderate_opts mopts = sg_moderate_opts_default();
    struct scan s;
    struct summary sm;
    sg_scan_reader *rd = NULL;
    FILE *in = NULL;
    int out_fd = -1;
    long shard_i = 0;
    long shard_n = 1;
    long long done_lines = 0;
    long long index = 0;     /* items read from the input, all shards */
    long long selected = 0;  /* items of this shard seen */
    long long in_size = 0;
    int tty = isatty(2);
    int eof = 0;
    int status = 1;
    int opt;
    double t0;
    double last_sync;
    double last_bar = 0;
    char err[1024];
    size_t window = 0;

    memset(&so, 0, sizeof so);
    memset(&s, 0, sizeof s);
    memset(&sm, 0, sizeof sm);
    s.concurrency = 4;
    s.timeout_ms = 120000;
    s.named = named;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'i':
            in_path = optarg;
            break;
        case 'o':
            out_path = optarg;
            break;
        case 'F':
            format = optarg;
            break;
        case 'f':
            so.field = optarg;
            break;
        case 'r':
            so.response_field = optarg;
            break;
        case 'I':
            so.id_field = optarg;
            break;
        case 'p':
            if (s.n_named == MAX_NAMED) {
                fprintf(stderr, "shieldctl scan: more than %d --policy\n", MAX_NAMED);
                return 2;
            }
            named[s.n_named++] = optarg;
            break;
        case 'P':
            dir = optarg;
            break;
        case 'm':
            model_path = optarg;
            break;
        case 't':
            if (ctl_parse_int("scan", "--threads", optarg, 0, 4096, &mo.n_threads) < 0)
                return 2;
            break;
        case 'x':
            if (sg_precision_parse(optarg, &mo.precision) != SG_OK) {
                fprintf(stderr, "shieldctl scan: --precision wants f32, bf16 or int8\n");
                return 2;
            }
            break;
        case 'S':
            sock = optarg;
            break;
        case 'U':
            url = optarg;
            break;
        case 'c':
            if (ctl_parse_int("scan", "--concurrency", optarg, 1, MAX_CONCURRENCY,
                              &s.concurrency) < 0)
                return 2;
            break;
        case 's':
            if (parse_shard(optarg, &shard_i, &shard_n) < 0) {
                fprintf(stderr, "shieldctl scan: --shard wants I/N with 0 <= I < N, not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'T':
            if (ctl_parse_int("scan", "--timeout", optarg, 1, INT_MAX, &s.timeout_ms) < 0)
                return 2;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || !in_path || !out_path) {
        fprintf(stderr, "shieldctl scan: --in FILE and --out FILE are required\n");
        usage(stderr);
        return 2;
    }
    if (model_path && (sock || url)) {
        fprintf(stderr, "shieldctl scan: --model runs in-process; it does not go with --socket "
                        "or --url\n");
        return 2;
    }
    so.format = sg_scan_format_of(in_path);
    if (format && sg_scan_format_parse(format, &so.format) < 0) {
        fprintf(stderr, "shieldctl scan: --format wants jsonl, csv or text, not '%s'\n", format);
        return 2;
    }
    if (strcmp(out_path, "-") == 0) {
        fprintf(stderr, "shieldctl scan: --out must be a file (it is how a scan resumes)\n");
        return 2;
    }
    if (!model_path) {
        s.endpoint = ctl_endpoint("scan", sock, url);
        if (!s.endpoint)
            return 2;
    }
    pthread_mutex_init(&s.lock, NULL);

    /* Input, then output (so that a wrong --in does not create an empty --out). */
    if (strcmp(in_path, "-") == 0) {
        in = stdin;
    } else {
        struct stat st;

        in = fopen(in_path, "rb");
        if (!in) {
            fprintf(stderr, "shieldctl scan: %s: %s\n", in_path, strerror(errno));
            goto out;
        }
        if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode))
            in_size = st.st_size;
    }
    if (sg_scan_reader_new(&rd, in, &so, err, sizeof err) < 0) {
        fprintf(stderr, "shieldctl scan: %s: %s\n", in_path, err);
        goto out;
    }
    out_fd = open(out_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (out_fd < 0) {
        fprintf(stderr, "shieldctl scan: %s: %s\n", out_path, strerror(errno));
        goto out;
    }
    {
        int e = sg_scan_resume(out_fd, &done_lines);

        if (e < 0) {
            fprintf(stderr, "shieldctl scan: %s: %s\n", out_path, strerror(-e));
            goto out;
        }
    }
    if (model_path) {
        if (ctl_load("scan", dir, model_path, &mo, &mopts, &s.set, &s.model, &s.mod) < 0)
            goto out;
    }
    window = model_path ? 64 : (size_t)s.concurrency * 16;
    s.slots = calloc(window, sizeof *s.slots);
    if (!s.slots) {
        fprintf(stderr, "shieldctl scan: out of memory\n");
        goto out;
    }
    if (done_lines > 0 && tty)
        fprintf(stderr, "shieldctl scan: resuming after %lld items already in %s\n", done_lines,
                out_path);
    t0 = now_s();
    last_sync = t0;
    while (!eof) {
        /* Fill the window with this shard's items not yet in the output. */
        s.n_slots = 0;
        while (s.n_slots < window) {
            struct slot *sl = &s.slots[s.n_slots];
            int rc = sg_scan_reader_next(rd, &sl->item);

            if (rc < 0) {
                fprintf(stderr, "shieldctl scan: %s: %s\n", in_path, sg_scan_reader_errmsg(rd));
                goto out;
            }
            if (rc == 0) {
                eof = 1;
                break;
            }
            if (index++ % shard_n != shard_i)
                continue;
            if (selected++ < done_lines) {
                sm.skipped++;
                continue;
            }
            s.n_slots++;
        }
        if (s.n_slots == 0)
            break;
        if (run_window(&s) < 0) {
            /* Keep the finished prefix of the window: it is in order. */
            for (size_t k = 0; k < s.n_slots && s.slots[k].line; k++) {
                if (sg_scan_write_line(out_fd, s.slots[k].line, strlen(s.slots[k].line)) < 0)
                    break;
            }
            if (tty)
                fputc('\n', stderr);
            fprintf(stderr, "shieldctl scan: %s\n", s.fatal_msg);
            fsync(out_fd);
            goto out;
        }
        for (size_t k = 0; k < s.n_slots; k++) {
            struct slot *sl = &s.slots[k];
            int e = sg_scan_write_line(out_fd, sl->line, strlen(sl->line));

            if (e < 0) {
                fprintf(stderr, "shieldctl scan: %s: %s\n", out_path, strerror(-e));
                goto out;
            }
            sm.items++;
            sm.tokens += sl->tokens;
            if (sl->results)
                count_result(&sm, sl->results);
            else
                sm.errors++;
            json_decref(sl->results);
            sl->results = NULL;
            free(sl->line);
            sl->line = NULL;
            sg_scan_item_clear(&sl->item);
        }
        if (now_s() - last_sync >= 1.0) {
            fsync(out_fd);
            last_sync = now_s();
        }
        if (tty && now_s() - last_bar >= 0.2) {
            progress(sm.items, sg_scan_reader_offset(rd), in_size, t0, 0);
            last_bar = now_s();
        }
    }
    if (fsync(out_fd) < 0 && errno != EINVAL) {
        fprintf(stderr, "shieldctl scan: %s: fsync: %s\n", out_path, strerror(errno));
        goto out;
    }
    if (tty)
        progress(sm.items, in_size, in_size, t0, 1);
    {
        double el = now_s() - t0;

        fprintf(stderr, "scan: %lld items (%lld resumed from %s), %lld errors, %.1f items/s, "
                        "%.0f tokens/s\n",
                sm.items, sm.skipped, out_path, sm.errors, el > 0 ? sm.items / el : 0.0,
                el > 0 ? sm.tokens / el : 0.0);
        for (size_t k = 0; k < sm.n_names; k++)
            fprintf(stderr, "  %-20s %lld flagged\n", sm.names[k], sm.flagged[k]);
    }
    status = 0;
out:
    if (s.slots) {
        for (size_t k = 0; k < window; k++) {
            sg_scan_item_clear(&s.slots[k].item);
            free(s.slots[k].line);
            json_decref(s.slots[k].results);
        }
        free(s.slots);
    }
    for (size_t k = 0; k < sm.n_names; k++)
        free(sm.names[k]);
    free(sm.names);
    free(sm.flagged);
    if (out_fd >= 0)
        close(out_fd);
    sg_scan_reader_free(rd);
    if (in && in != stdin)
        fclose(in);
    sg_moderator_free(s.mod);
    sg_model_close(s.model);
    sg_policy_set_free(s.set);
    pthread_mutex_destroy(&s.lock);
    return status;
}
