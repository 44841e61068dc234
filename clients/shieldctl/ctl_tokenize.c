/*
 * ctl_tokenize.c: `shieldctl tokenize --model PATH [--special] [--no-bos] [--jsonl]
 * (TEXT | --file F | -)`: print token ids, separated by single spaces, on one line, BOS first
 * unless --no-bos. Without --special the text is user text (special tokens are never
 * recognised); with it, template text. --jsonl: every input line is a JSON string, and one
 * line of ids is printed per input line, in order.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int ctl_tokenize(int argc, char **argv);
extern const char ctl_tokenize_help[];

const char ctl_tokenize_help[] = "print the token ids of a text (--model PATH, --special)";

static void usage(FILE *f)
{
    fprintf(f, "usage: shieldctl tokenize --model PATH [--special] [--no-bos] [--jsonl] "
               "(TEXT | --file F | -)\n"
               "  --model PATH  model folder, tokenizer.json, tokenizer.model or .gguf\n"
               "  --special     template text: special tokens such as <start_of_turn> are parsed\n"
               "                (default: user text, where they are ordinary text)\n"
               "  --no-bos      do not put the BOS id first\n"
               "  --jsonl       each input line is a JSON string; one line of ids per line\n"
               "  --file F      read the text from F ('-' reads standard input)\n");
}

struct ids {
    int32_t *v;
    size_t cap;
};

/* Room for at least `need` ids in ids->v. SG_OK or SG_ENOMEM. */
static int ids_reserve(struct ids *ids, size_t need)
{
    int32_t *p;

    if (ids->cap >= need)
        return SG_OK;
    p = realloc(ids->v, need * sizeof *p);
    if (!p)
        return SG_ENOMEM;
    ids->v = p;
    ids->cap = need;
    return SG_OK;
}

/* Encode and print one line of ids. */
static int print_ids(const sg_tok *tok, struct ids *ids, const char *text, size_t len,
                     sg_tok_mode mode, int bos, FILE *out)
{
    size_t n = 0;
    int rc;

    if (ids_reserve(ids, len + 8) != SG_OK)
        return SG_ENOMEM;
    rc = sg_tok_encode(tok, text, len, mode, ids->v, ids->cap, &n);
    if (rc == SG_ERANGE) {
        if (ids_reserve(ids, n + 8) != SG_OK)
            return SG_ENOMEM;
        rc = sg_tok_encode(tok, text, len, mode, ids->v, ids->cap, &n);
    }
    if (rc != SG_OK)
        return rc;
    if (bos && sg_tok_bos(tok) >= 0)
        fprintf(out, "%ld%s", (long)sg_tok_bos(tok), n ? " " : "");
    for (size_t i = 0; i < n; i++)
        fprintf(out, i + 1 < n ? "%ld " : "%ld", (long)ids->v[i]);
    fputc('\n', out);
    return SG_OK;
}

int ctl_tokenize(int argc, char **argv)
{
    const char *model = NULL, *file = NULL, *text = NULL;
    int special = 0, bos = 1, jsonl = 0, status = 1;
    sg_tok *tok = NULL;
    char *buf = NULL;
    size_t len = 0;
    struct ids ids = {NULL, 0};
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc) {
            file = argv[++i];
        } else if (strcmp(argv[i], "--special") == 0) {
            special = 1;
        } else if (strcmp(argv[i], "--no-bos") == 0) {
            bos = 0;
        } else if (strcmp(argv[i], "--jsonl") == 0) {
            jsonl = 1;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "-") == 0) {
            file = "-";
        } else if (strcmp(argv[i], "--") == 0 && i + 1 < argc && !text) {
            text = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "shieldctl tokenize: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!text) {
            text = argv[i];
        } else {
            fprintf(stderr, "shieldctl tokenize: more than one TEXT\n");
            usage(stderr);
            return 2;
        }
    }
    if (!model || (!text && !file) || (text && file)) {
        usage(stderr);
        return 2;
    }
    if (file) {
        FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");

        if (!f) {
            fprintf(stderr, "shieldctl tokenize: %s: %s\n", file, strerror(errno));
            return 1;
        }
        rc = ctl_read_stream(f, &buf, &len);
        if (f != stdin)
            fclose(f);
        if (rc < 0) {
            fprintf(stderr, "shieldctl tokenize: %s: read error\n", file);
            return 1;
        }
    } else {
        len = strlen(text);
        buf = malloc(len + 1);
        if (!buf)
            return 1;
        memcpy(buf, text, len + 1);
    }
    if (ctl_tok_open("tokenize", model, &tok) < 0)
        goto done;
    if (!jsonl) {
        rc = print_ids(tok, &ids, buf, len, special ? SG_TOK_TEMPLATE : SG_TOK_USER, bos, stdout);
        if (rc != SG_OK) {
            fprintf(stderr, "shieldctl tokenize: %s\n", sg_engine_strerror(rc));
            goto done;
        }
    } else {
        size_t line = 0;

        for (size_t i = 0; i < len;) {
            const char *nl = memchr(buf + i, '\n', len - i);
            size_t end = nl ? (size_t)(nl - buf) : len;
            json_error_t jerr;
            json_t *s;

            line++;
            s = json_loadb(buf + i, end - i, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
            if (!s || !json_is_string(s)) {
                fprintf(stderr, "shieldctl tokenize: line %zu: not a JSON string%s%s\n", line,
                        s ? "" : ": ", s ? "" : jerr.text);
                json_decref(s);
                goto done;
            }
            rc = print_ids(tok, &ids, json_string_value(s), json_string_length(s),
                           special ? SG_TOK_TEMPLATE : SG_TOK_USER, bos, stdout);
            json_decref(s);
            if (rc != SG_OK) {
                fprintf(stderr, "shieldctl tokenize: line %zu: %s\n", line,
                        sg_engine_strerror(rc));
                goto done;
            }
            i = end + 1;
        }
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "shieldctl tokenize: write error\n");
        goto done;
    }
    status = 0;
done:
    free(ids.v);
    free(buf);
    sg_tok_free(tok);
    return status;
}
