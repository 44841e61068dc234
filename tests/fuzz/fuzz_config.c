/*
 * fuzz_config.c: libFuzzer target for the config.json parser (sg_config_parse): Gemma 1, 2 and
 * 3 (text, multimodal text_config, rope_scaling / rope_parameters, layer_types /
 * sliding_window_pattern; seeds in tests/fuzz/seeds/fuzz_config). Whatever it accepts must
 * satisfy the invariants the forward pass relies on.
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
        const int gemma3 = strcmp(mi.arch, "gemma3") == 0;
        int n_sliding = 0;

        if (!gemma3 && strcmp(mi.arch, "gemma2") != 0 && strcmp(mi.arch, "gemma") != 0)
            abort();
        /* RoPE of both layer kinds, the layer pattern, the Gemma 3 only flags */
        if (!(mi.rope_scale > 0) || !(mi.rope_local_theta > 0) || !(mi.rope_local_scale > 0) ||
            mi.n_layer > SG_MAX_LAYERS || (mi.qk_norm && !gemma3) || (mi.multimodal && !gemma3) ||
            (!gemma3 && (mi.rope_local_theta != mi.rope_theta ||
                         mi.rope_local_scale != mi.rope_scale)))
            abort();
        for (int l = 0; l < SG_MAX_LAYERS; l++) {
            if (mi.layer_sliding[l] > 1 || (l >= mi.n_layer && mi.layer_sliding[l]))
                abort();
            n_sliding += mi.layer_sliding[l];
        }
        if (n_sliding > 0 && mi.sliding_window < 1)
            abort();
    } else if (memchr(err, '\0', sizeof err) == NULL) {
        abort();
    }
    return 0;
}
