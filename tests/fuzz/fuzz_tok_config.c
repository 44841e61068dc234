/*
 * fuzz_tok_config.c: the tokenizer_config.json specials parser (tok_json_config_specials in
 * engine/tok_json.c) on arbitrary bytes, reached as the SentencePiece loader reaches it: the
 * fixture tokenizer.model (tests/fixtures/tiny-a, read once from the working directory or
 * $SG_TOP) with the input as the tokenizer_config.json beside it. A tokenizer that loads is
 * exercised as in the other tokenizer targets (user text never yields a special id, decode
 * works). Seeds: tests/fuzz/seeds/fuzz_tok_config/.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sg_engine.h"
#include "sg_tok.h"
#include "tok_load.h"

#include "fuzz_tok_exercise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *model;
static size_t model_len;

static void read_model(void)
{
    char path[4096];
    const char *top = getenv("SG_TOP");
    FILE *f;
    long n;

    snprintf(path, sizeof path, "%s/tests/fixtures/tiny-a/tokenizer.model", top ? top : ".");
    f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (model = malloc((size_t)n)) == NULL ||
        fread(model, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "fuzz_tok_config: cannot read %s (run from the repository root)\n",
                path);
        abort();
    }
    model_len = (size_t)n;
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sg_tok *t = NULL;
    char err[256];

    if (model == NULL)
        read_model();
    err[0] = '\0';
    if (tok_load_spm_mem(&t, model, model_len, "tokenizer.model", (const char *)data, size, err,
                         sizeof err) == 0) {
        tok_fuzz_exercise(t);
        sg_tok_free(t);
    } else if (err[0] == '\0') {
        abort(); /* a failure must say why */
    }
    return 0;
}
