/*
 * fuzz_shieldd_yaml.c: shieldd's YAML configuration loader (daemon/config.c) on arbitrary
 * bytes. Accepted files must leave a configuration within the key table's ranges; rejected
 * ones must say where ("name:line:column: ..." or "name: ...").
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../daemon/config.c"
#include "../../daemon/log.c" /* fail_msg */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct shieldd_config c;
    char err[512];

    shieldd_defaults(&c);
    err[0] = '\0';
    if (config_load_string(&c, "fuzz.yaml", (const char *)data, size, err, sizeof err) == 0) {
        if (c.n_listen > SHIELDD_MAX_LISTEN || c.queue_depth < 1 || c.max_inputs < 1 ||
            c.max_body_bytes < 64 || c.socket_mode < 0 || c.socket_mode > 0777 ||
            !(c.request_timeout > 0) || c.model == NULL || c.policies == NULL)
            abort();
        for (size_t i = 0; i < c.n_listen; i++)
            if (strncmp(c.listen[i], "unix:", 5) != 0 && strncmp(c.listen[i], "tcp:", 4) != 0)
                abort();
    } else if (strncmp(err, "fuzz.yaml", 9) != 0) {
        abort();
    }
    config_free(&c);
    return 0;
}
