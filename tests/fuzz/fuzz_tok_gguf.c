/*
 * fuzz_tok_gguf.c: the GGUF tokenizer loader (tokenizer.ggml.* metadata) on arbitrary bytes.
 * Whatever loads is exercised as in fuzz_tok_json.c.
 */
#include <stdint.h>
#include <stdlib.h>

#include "sg_engine.h"
#include "sg_tok.h"
#include "tok_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_tok_exercise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sg_tok *t = NULL;
    char err[256];

    if (tok_load_gguf_mem(&t, data, size, "fuzz.gguf", err, sizeof err) == 0) {
        tok_fuzz_exercise(t);
        sg_tok_free(t);
    }
    return 0;
}
