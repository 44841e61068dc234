#ifndef SG_HF_CONFIG_H
#define SG_HF_CONFIG_H
/*
 * hf_config.h (internal to engine/): Hugging Face config.json -> sg_model_info.
 *
 * Accepted: model_type "gemma3_text" (Gemma 3), "gemma3" (the multimodal Gemma 3: its
 * text_config is read, the vision tower ignored), "gemma2" (Gemma 2) and "gemma" (Gemma 1 as a
 * configuration: no soft-caps, no post-norms, no sliding window). An absent key takes the
 * default of the family's Hugging Face configuration class, logged at info level. Every key is
 * type- and range-checked; an error names the file, the key, what was expected and what was
 * found:
 *     config.json: key 'num_key_value_heads': expected a positive integer dividing
 *     num_attention_heads (4), found 3
 */

#include <stddef.h>

#include "sg_engine.h"

/*
 * Parse config.json text `json` (`len` bytes, need not be NUL-terminated) into *info. `fname`
 * names the file in messages. info->format and info->name are left for the caller. Returns
 * SG_OK, SG_EFORMAT (bad JSON, missing key, wrong type or range) or SG_EUNSUPPORTED (a valid
 * configuration this engine does not run, e.g. another model_type), with a message in `err`.
 */
int sg_config_parse(const char *json, size_t len, const char *fname, sg_model_info *info,
                    char *err, size_t errlen);

/* Read and parse the config.json at `path` (SG_EIO if it cannot be read). */
int sg_config_load(const char *path, sg_model_info *info, char *err, size_t errlen);

#endif /* SG_HF_CONFIG_H */
