#ifndef SG_CTL_BENCH_STREAM_H
#define SG_CTL_BENCH_STREAM_H
/*
 * bench_stream.h: the streaming scenario of `shieldctl bench --stream`: conversations whose
 * reply is checked every few tokens as it streams, interleaved, with the engine's prefix cache
 * on and off. (Not named ctl_*.c: the Makefile turns those into subcommands.)
 */

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sg_engine.h"
#include "sg_moderate.h"
#include "sg_policy.h"
#include "sg_tok.h"

#define BENCH_STREAM_MAX_CONVS 4

typedef struct bench_stream_opts {
    int user_tokens;  /* the user's message (64) */
    int reply_tokens; /* the whole reply (320) */
    int every;        /* tokens between checks (32); the last check is at the end */
    int convs[BENCH_STREAM_MAX_CONVS]; /* conversation counts to run (1 and 8) */
    int n_convs;
    long cache_tokens; /* the prefix cache holds this many tokens' blocks; 0: the default */
} bench_stream_opts;

/*
 * Run the scenario on `model` against the four policies `names` of `set`: for each count of
 * conversations, once with a prefix cache (the default size, or cache_tokens tokens) and once
 * without. Progress and
 * the table go to stderr/stdout; with as_json, one JSON object to stdout. Returns 0, or -1
 * after printing "shieldctl bench: MESSAGE".
 */
int bench_stream(sg_model *model, const sg_policy_set *set, const char *const *names,
                 size_t n_names, const bench_stream_opts *o, int as_json);

/* A message of about `tokens` tokens (the model's tokenizer, user mode) into buf (capacity
 * cap), different for each seed; ids (capacity ids_cap) is scratch. 0 or -1 (ctl_bench.c). */
int bench_message(const sg_tok *tok, uint32_t seed, size_t tokens, char *buf, size_t cap,
                  int32_t *ids, size_t ids_cap);

#endif /* SG_CTL_BENCH_STREAM_H */
