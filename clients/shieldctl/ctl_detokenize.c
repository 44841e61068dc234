/*
 * ctl_detokenize.c: `shieldctl detokenize --model PATH [--json] ID...`: print the text of
 * token ids (byte-fallback pieces reassembled, U+2581 as ' '), followed by a newline.
 * --json prints it as one JSON string instead, which keeps control characters and a
 * trailing newline visible. `--jsonl` reads standard input instead: each line a JSON array of
 * ids, each answered by one line holding the text as a JSON string.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int ctl_detokenize(int argc, char **argv);
extern const char ctl_detokenize_help[];

const char ctl_detokenize_help[] = "print the text of token ids (--model PATH ID...)";

static void usage(FILE *f)
{
    fprintf(f, "usage: shieldctl detokenize --model PATH [--json] ID...\n"
               "       shieldctl detokenize --model PATH --jsonl < LINES\n"
               "  --model PATH  model folder, tokenizer.json, tokenizer.model or .gguf\n"
               "  --json        print the text as a JSON string\n"
               "  --jsonl       read JSON arrays of ids, one per line, from standard input;\n"
               "                print one JSON string per line\n");
}

/* Decode ids into a malloc'ed string (*text, *len); SG_EINVAL names the bad id in stderr. */
static int decode(const sg_tok *tok, const int32_t *ids, size_t n, char **text, size_t *len)
{
    int rc;

    *text = NULL;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= sg_tok_n_vocab(tok)) {
            fprintf(stderr, "shieldctl detokenize: id %ld is outside the vocabulary (0..%zu)\n",
                    (long)ids[i], sg_tok_n_vocab(tok) - 1);
            return SG_EINVAL;
        }
    }
    rc = sg_tok_decode(tok, ids, n, NULL, 0, len);
    if (rc != SG_OK && rc != SG_ERANGE)
        return rc;
    *text = malloc(*len + 1);
    if (!*text)
        return SG_ENOMEM;
    rc = sg_tok_decode(tok, ids, n, *text, *len + 1, len);
    if (rc != SG_OK) {
        free(*text);
        *text = NULL;
    }
    return rc;
}

/* Print text as a JSON string line; -1 if it is not valid UTF-8. */
static int print_json(const char *text, size_t len)
{
    json_t *s = json_stringn(text, len);
    char *dump = s ? json_dumps(s, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;

    json_decref(s);
    if (!dump) {
        fprintf(stderr, "shieldctl detokenize: the text is not valid UTF-8\n");
        return -1;
    }
    printf("%s\n", dump);
    free(dump);
    return 0;
}

/* --jsonl: one JSON array of ids per input line. */
static int run_jsonl(const sg_tok *tok, FILE *in)
{
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t got;
    int status = 0;

    while ((got = getline(&line, &cap, in)) >= 0) {
        json_error_t jerr;
        json_t *a = json_loadb(line, (size_t)got, 0, &jerr);
        int32_t *ids = NULL;
        size_t n, len;
        char *text = NULL;

        lineno++;
        if (!a || !json_is_array(a)) {
            fprintf(stderr, "shieldctl detokenize: line %zu: not a JSON array\n", lineno);
            json_decref(a);
            status = 1;
            break;
        }
        n = json_array_size(a);
        ids = malloc((n ? n : 1) * sizeof *ids);
        for (size_t i = 0; ids && i < n; i++) {
            json_t *v = json_array_get(a, i);

            ids[i] = json_is_integer(v) && json_integer_value(v) >= 0 &&
                             json_integer_value(v) <= INT32_MAX
                         ? (int32_t)json_integer_value(v)
                         : -1;
        }
        json_decref(a);
        if (!ids || decode(tok, ids, n, &text, &len) != SG_OK || print_json(text, len) != 0) {
            fprintf(stderr, "shieldctl detokenize: line %zu: cannot decode\n", lineno);
            status = 1;
        }
        free(ids);
        free(text);
        if (status)
            break;
    }
    free(line);
    return status;
}

static int parse_id(const char *s, int32_t *id)
{
    char *end;
    long v;

    if (!*s)
        return -1;
    v = strtol(s, &end, 10);
    if (*end || v < 0 || v > INT32_MAX)
        return -1;
    *id = (int32_t)v;
    return 0;
}

int ctl_detokenize(int argc, char **argv)
{
    const char *model = NULL;
    int32_t *ids = NULL;
    size_t n = 0, len = 0;
    int json = 0, jsonl = 0, status = 1, rc;
    char *text = NULL;
    sg_tok *tok = NULL;

    ids = malloc((size_t)(argc > 0 ? argc : 1) * sizeof *ids);
    if (!ids)
        return 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--jsonl") == 0) {
            jsonl = 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            free(ids);
            return 0;
        } else if (parse_id(argv[i], &ids[n]) == 0) {
            n++;
        } else {
            fprintf(stderr, "shieldctl detokenize: '%s' is not a token id\n", argv[i]);
            usage(stderr);
            free(ids);
            return 2;
        }
    }
    if (!model) {
        usage(stderr);
        free(ids);
        return 2;
    }
    if (ctl_tok_open("detokenize", model, &tok) < 0)
        goto done;
    if (jsonl) {
        if (run_jsonl(tok, stdin) != 0)
            goto done;
    } else {
        rc = decode(tok, ids, n, &text, &len);
        if (rc != SG_OK) {
            if (rc != SG_EINVAL)
                fprintf(stderr, "shieldctl detokenize: %s\n", sg_engine_strerror(rc));
            goto done;
        }
        if (json) {
            if (print_json(text, len) != 0)
                goto done;
        } else {
            fwrite(text, 1, len, stdout);
            fputc('\n', stdout);
        }
    }
    if (fflush(stdout) != 0)
        goto done;
    status = 0;
done:
    free(text);
    free(ids);
    sg_tok_free(tok);
    return status;
}
