/*
 * fuzz_tok_spm.c: the SentencePiece tokenizer.model loader on arbitrary bytes (the input's
 * first half-byte decides whether a small tokenizer_config.json goes with it). Whatever loads
 * is exercised as in fuzz_tok_json.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sg_engine.h"
#include "sg_tok.h"
#include "tok_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char config[] =
    "{\"added_tokens_decoder\":{\"4\":{\"content\":\"<start_of_turn>\",\"special\":true}},"
    "\"additional_special_tokens\":[\"<end_of_turn>\",{\"content\":\"<mask>\"}]}";

#include "fuzz_tok_exercise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sg_tok *t = NULL;
    char err[256];
    int with_config = size > 0 && (data[size - 1] & 1);

    if (tok_load_spm_mem(&t, data, size, "fuzz.model", with_config ? config : NULL,
                         with_config ? strlen(config) : 0, err, sizeof err) == 0) {
        tok_fuzz_exercise(t);
        sg_tok_free(t);
    }
    return 0;
}
