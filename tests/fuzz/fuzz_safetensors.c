/*
 * fuzz_safetensors.c: libFuzzer target for the safetensors header parser (sg_st_parse) and the
 * shard index parser (sg_st_parse_index) on arbitrary bytes. Every accepted tensor must lie
 * inside the input, and its byte count must match its shape and dtype.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sg_tensor *ts = NULL;
    size_t n = 0;
    char err[512];

    if (sg_st_parse(data, size, "fuzz.safetensors", &ts, &n, err, sizeof err) == SG_OK) {
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = ts[i].data;
            size_t need = 0;
            if (p < data || p + ts[i].nbytes > data + size)
                abort();
            if (sg_dtype_bytes(ts[i].dtype, sg_tensor_nelem(&ts[i]), &need) != SG_OK ||
                need != ts[i].nbytes)
                abort();
            /* Touch the bytes: ASan catches any read outside the input. */
            volatile uint8_t sink = 0;
            for (size_t k = 0; k < ts[i].nbytes; k++)
                sink ^= p[k];
            (void)sink;
        }
        free(ts);
    } else if (memchr(err, '\0', sizeof err) == NULL) {
        abort(); /* the message must be terminated */
    }

    char **shards = NULL;
    size_t ns = 0;
    if (sg_st_parse_index((const char *)data, size, "fuzz.index.json", &shards, &ns, err,
                          sizeof err) == SG_OK) {
        for (size_t i = 0; i < ns; i++) {
            if (strchr(shards[i], '/') || strcmp(shards[i], "..") == 0)
                abort();
            free(shards[i]);
        }
        free(shards);
    }
    return 0;
}
