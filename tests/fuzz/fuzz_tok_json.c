/*
 * fuzz_tok_json.c: the tokenizer.json loader on arbitrary bytes. Whatever loads is then used:
 * every piece read back, a short text encoded in both modes and decoded.
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

    if (tok_load_json_mem(&t, (const char *)data, size, "fuzz.json", err, sizeof err) == 0) {
        tok_fuzz_exercise(t);
        sg_tok_free(t);
    }
    return 0;
}
