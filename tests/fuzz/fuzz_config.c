/*
 * fuzz_config.c: libFuzzer target for the config.json parser (sg_config_parse). Whatever it
 * accepts must satisfy the invariants the forward pass relies on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sg_model_info mi;
    char err[512];

    if (sg_config_parse((const char *)data, size, "config.json", &mi, err, sizeof err) == SG_OK) {
        if (mi.n_vocab < 1 || mi.d_model < 1 || mi.n_layer < 1 || mi.n_head < 1 ||
            mi.n_kv_head < 1 || mi.n_head % mi.n_kv_head != 0 || mi.head_dim < 2 ||
            mi.head_dim % 2 != 0 || mi.d_ff < 1 || mi.n_ctx < 1 || mi.sliding_window < 0 ||
            !(mi.rms_eps > 0) || !(mi.rope_theta > 0) || !(mi.query_scale > 0) ||
            !(mi.attn_softcap >= 0) || !(mi.final_softcap >= 0) || mi.bos_id < 0 ||
            mi.bos_id >= mi.n_vocab || mi.eos_id < 0 || mi.eos_id >= mi.n_vocab)
            abort();
        if (strcmp(mi.arch, "gemma2") != 0 && strcmp(mi.arch, "gemma") != 0)
            abort();
    } else if (memchr(err, '\0', sizeof err) == NULL) {
        abort();
    }
    return 0;
}
