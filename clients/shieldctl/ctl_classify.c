/*
 * ctl_classify.c: `shieldctl classify`: classify a text (and optionally a model response)
 * against the policies, in-process: load the model and the policy directory, run the same
 * moderation module as the daemon, print the JSON of POST /v1/classify or a table.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "remote.h"
#include "sg_moderate.h"
#include "sg_moderate_json.h"

int ctl_classify(int argc, char **argv);

const char ctl_classify_help[] = "classify a text against the policies (in-process or daemon)";

#define MAX_NAMED 256

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shieldctl classify --model PATH [--policies DIR] [--policy NAME]...\n"
            "                          [--response TEXT] [--json] [--truncate] [--max-tokens N]\n"
            "                          [--threads N] [--precision P] [--temperature T]\n"
            "                          [--smoothing A] TEXT|-\n"
            "       shieldctl classify [--socket PATH | --url URL] [--policy NAME]...\n"
            "                          [--response TEXT] [--json] TEXT|-\n"
            "\n"
            "Classify TEXT (\"-\": read it from stdin, bytes as they are) against every enabled\n"
            "policy, or the ones named with --policy, and print P(violation) per policy.\n"
            "Without --model, ask the daemon: --socket, --url, else $SHIELDD_SOCKET, $SHIELDD_URL,\n"
            "else /run/shieldd/shieldd.sock; its errors are printed as it wrote them.\n"
            "\n"
            "  --model PATH       model folder (Hugging Face), .safetensors or .gguf\n"
            "  --socket PATH      the daemon's Unix socket\n"
            "  --url URL          the daemon's http://HOST:PORT\n"
            "  --policies DIR     policy directory (default: policies)\n"
            "  --policy NAME      evaluate this policy (repeatable; default: all enabled)\n"
            "  --response TEXT    classify this model response to TEXT (prompt-response mode)\n"
            "  --json             print the JSON reply of the daemon's POST /v1/classify\n"
            "  --truncate         cut a too-long input to fit instead of failing\n"
            "  --max-tokens N     limit per rendered prompt (default: the model's context)\n"
            "  --threads N        compute threads (default: all cores)\n"
            "  --precision P      f32 (the reference), bf16 or int8 matrix products\n"
            "  --temperature T    P = (e^(zYes/T) + a) / (e^(zYes/T) + e^(zNo/T) + 2a); T = 1\n"
            "  --smoothing A      ... and a = 0 by default\n");
}

/* Ask the daemon at --socket `sock` / --url `url`. Returns the exit status. */
static int classify_remote(const char *sock, const char *url, const char *text, size_t text_len,
                           const char *response, const char *const *named, size_t n_named,
                           int as_json)
{
    sg_client *c = NULL;
    json_t *body = NULL;
    json_t *reply = NULL;
    int status = ctl_connect("classify", sock, url, 0, &c, NULL);

    if (status)
        return status;
    status = 1;
    body = json_object();
    if (!body || json_object_set_new(body, "text", json_stringn(text, text_len)) < 0) {
        fprintf(stderr, "shieldctl classify: the text is not valid UTF-8\n");
        goto out;
    }
    if (response && json_object_set_new(body, "response", json_string(response)) < 0) {
        fprintf(stderr, "shieldctl classify: the response is not valid UTF-8\n");
        goto out;
    }
    if (n_named) {
        json_t *arr = json_array();

        for (size_t i = 0; i < n_named; i++)
            json_array_append_new(arr, json_string(named[i]));
        json_object_set_new(body, "policies", arr);
    }
    if (ctl_remote_json("classify", c, "POST", "/v1/classify", body, &reply, NULL) < 0)
        goto out;
    if (ctl_print_classify(stdout, reply, as_json) < 0) {
        fprintf(stderr, "shieldctl classify: the daemon's reply has no \"results\"\n");
        goto out;
    }
    status = 0;
out:
    json_decref(reply);
    json_decref(body);
    sg_client_free(c);
    return status;
}

/* What the command line asks for. */
struct classify_args {
    const char *model_path;
    const char *sock;
    const char *url;
    int local_only; /* an option that only the in-process mode takes was given */
    const char *dir;
    const char *named[MAX_NAMED];
    size_t n_named;
    const char *response;
    int as_json;
    sg_model_opts mo;
    sg_moderate_opts opts;
};

/* One option `c` with `arg` into *a. Returns -1 to go on, else the exit status (2 on a bad
 * value, 0 after --help). */
static int parse_opt(struct classify_args *a, int c, const char *arg)
{
    switch (c) {
    case 'm':
        a->model_path = arg;
        return -1;
    case 'P':
        a->local_only = 1;
        a->dir = arg;
        return -1;
    case 'p':
        if (a->n_named == MAX_NAMED) {
            fprintf(stderr, "shieldctl classify: more than %d --policy\n", MAX_NAMED);
            return 2;
        }
        a->named[a->n_named++] = arg;
        return -1;
    case 'r':
        a->response = arg;
        return -1;
    case 'j':
        a->as_json = 1;
        return -1;
    case 'T':
        a->local_only = 1;
        a->opts.truncate = 1;
        return -1;
    case 'n':
        a->local_only = 1;
        if (ctl_parse_int("classify", "--max-tokens", arg, 1, INT_MAX, &a->opts.max_tokens) < 0)
            return 2;
        return -1;
    case 't':
        a->local_only = 1;
        if (ctl_parse_int("classify", "--threads", arg, 0, INT_MAX, &a->mo.n_threads) < 0)
            return 2;
        return -1;
    case 'k':
        a->local_only = 1;
        if (ctl_parse_double("classify", "--temperature", arg, &a->opts.temperature) < 0)
            return 2;
        return -1;
    case 'a':
        a->local_only = 1;
        if (ctl_parse_double("classify", "--smoothing", arg, &a->opts.smoothing) < 0)
            return 2;
        return -1;
    case 'x':
        a->local_only = 1;
        if (sg_precision_parse(arg, &a->mo.precision) != SG_OK) {
            fprintf(stderr, "shieldctl classify: --precision wants f32, bf16 or int8, not "
                            "'%s'\n", arg);
            return 2;
        }
        return -1;
    case 'S':
        a->sock = arg;
        return -1;
    case 'U':
        a->url = arg;
        return -1;
    case 'h':
        usage(stdout);
        return 0;
    default:
        usage(stderr);
        return 2;
    }
}

/* The command line into *a (argv[optind] is the TEXT argument afterwards). Returns -1 to go
 * on, else the exit status. */
static int parse_args(int argc, char **argv, struct classify_args *a)
{
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'},
        {"policies", required_argument, NULL, 'P'},
        {"policy", required_argument, NULL, 'p'},
        {"response", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},
        {"truncate", no_argument, NULL, 'T'},
        {"max-tokens", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'},
        {"temperature", required_argument, NULL, 'k'},
        {"smoothing", required_argument, NULL, 'a'},
        {"precision", required_argument, NULL, 'x'},
        {"socket", required_argument, NULL, 'S'},
        {"url", required_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(a, 0, sizeof *a);
    a->dir = "policies";
    a->mo = sg_model_opts_default();
    a->opts = sg_moderate_opts_default();
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int status = parse_opt(a, c, optarg);

        if (status >= 0)
            return status;
    }
    if (optind != argc - 1) {
        fprintf(stderr, "shieldctl classify: expected one TEXT (or -)\n");
        usage(stderr);
        return 2;
    }
    if (a->model_path && (a->sock || a->url)) {
        fprintf(stderr, "shieldctl classify: --model runs in-process; it does not go with "
                        "--socket or --url\n");
        return 2;
    }
    if (!a->model_path && a->local_only) {
        fprintf(stderr, "shieldctl classify: --policies, --truncate, --max-tokens, --threads, "
                        "--precision, --temperature and --smoothing need --model (the daemon "
                        "has its own settings)\n");
        return 2;
    }
    return -1;
}

/* Classify in-process with the model at a->model_path. Returns the exit status. */
static int classify_local(struct classify_args *a, const char *text, size_t text_len)
{
    sg_policy_set *set = NULL;
    sg_model *model = NULL;
    sg_moderator *mod = NULL;
    sg_moderate_req req;
    sg_moderate_result res;
    json_t *reply = NULL;
    int status = 1;

    memset(&res, 0, sizeof res);
    if (ctl_load("classify", a->dir, a->model_path, &a->mo, &a->opts, &set, &model, &mod) < 0)
        goto out;
    memset(&req, 0, sizeof req);
    req.text = text;
    req.text_len = text_len;
    req.response = a->response;
    req.response_len = a->response ? strlen(a->response) : 0;
    req.policies = a->n_named ? a->named : NULL;
    req.n_policies = a->n_named;
    if (sg_moderate(mod, set, &req, &res) < 0) {
        fprintf(stderr, "shieldctl classify: %s\n", sg_moderator_errmsg(mod));
        goto out;
    }
    reply = sg_moderate_result_json(sg_model_get_info(model)->name, &res);
    if (!reply || ctl_print_classify(stdout, reply, a->as_json) < 0) {
        fprintf(stderr, "shieldctl classify: out of memory\n");
        goto out;
    }
    status = 0;

out:
    json_decref(reply);
    sg_moderate_result_free(&res);
    sg_moderator_free(mod);
    sg_model_close(model);
    sg_policy_set_free(set);
    return status;
}

int ctl_classify(int argc, char **argv)
{
    struct classify_args a;
    char *text = NULL;
    size_t text_len = 0;
    int status = parse_args(argc, argv, &a);

    if (status >= 0)
        return status;
    if (ctl_read_text(argv[optind], &text, &text_len) < 0)
        return 1;
    if (a.model_path)
        status = classify_local(&a, text, text_len);
    else
        status = classify_remote(a.sock, a.url, text, text_len, a.response, a.named, a.n_named,
                                 a.as_json);
    free(text);
    return status;
}
