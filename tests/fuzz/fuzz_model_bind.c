/*
 * fuzz_model_bind.c: binding a safetensors file's tensors to the shapes a config.json implies
 * (engine/model.c: bind_all behind sg_model_open), on arbitrary pairs of files. The input is
 * config.json, a NUL byte, then the safetensors header (the JSON that maps names to dtypes,
 * shapes and data offsets); the target writes both to a private folder, the header with its
 * 8-byte length and as many zero data bytes as its largest "data_offsets" end asks for (at
 * most 4 MiB), and opens the folder as a model (one thread, no tokenizer, no pack cache). A
 * model that opens must report the configuration's dimensions; one that does not must say
 * why. Seeds: tests/fuzz/seeds/fuzz_model_bind/ (the tiny-a fixture, split this way).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sg_engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_DATA (4u << 20)

static char dir[64];

static void quiet(sg_log_level level, const char *msg, void *ud)
{
    (void)level;
    (void)msg;
    (void)ud;
}

/* The largest end offset named in the header (a scan, not a parse: the engine parses). */
static size_t data_size(const char *h, size_t n)
{
    size_t max = 0;
    const char *end = h + n;

    for (const char *p = h; p < end;) {
        const char *q = memchr(p, 'd', (size_t)(end - p));
        unsigned long long a, b;

        if (q == NULL)
            break;
        p = q + 1;
        if ((size_t)(end - q) > 14 && memcmp(q, "data_offsets\"", 13) == 0) {
            char tmp[80];
            size_t k = (size_t)(end - q) < sizeof tmp - 1 ? (size_t)(end - q) : sizeof tmp - 1;

            memcpy(tmp, q, k);
            tmp[k] = '\0';
            if (sscanf(tmp, "data_offsets\" : [ %llu , %llu", &a, &b) == 2 ||
                sscanf(tmp, "data_offsets\":[%llu,%llu", &a, &b) == 2)
                if (b > max && b <= MAX_DATA)
                    max = (size_t)b;
        }
    }
    return max;
}

static int write_file(const char *name, const void *a, size_t na, const void *b, size_t nb,
                      size_t zeros)
{
    char path[128];
    FILE *f;
    int ok;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    ok = fwrite(a, 1, na, f) == na && (nb == 0 || fwrite(b, 1, nb, f) == nb);
    for (size_t i = 0; ok && i < zeros; i++)
        ok = fputc(0, f) != EOF;
    return fclose(f) == 0 && ok ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    sg_model_opts mo = sg_model_opts_default();
    sg_model *m = NULL;
    uint8_t len8[8];
    size_t hn;
    char err[512];

    if (dir[0] == '\0') {
        snprintf(dir, sizeof dir, "/tmp/fuzz_model_bind.XXXXXX");
        if (mkdtemp(dir) == NULL)
            abort();
        sg_engine_set_log(quiet, NULL);
    }
    if (nul == NULL || size > (1u << 20))
        return 0;
    hn = size - (size_t)(nul + 1 - data);
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)hn >> (8 * i));
    if (write_file("config.json", data, (size_t)(nul - data), NULL, 0, 0) < 0 ||
        write_file("model.safetensors", len8, 8, nul + 1, hn,
                   data_size((const char *)nul + 1, hn)) < 0)
        return 0;
    mo.n_threads = 1;
    mo.load_tokenizer = 0;
    err[0] = '\0';
    if (sg_model_open(&m, dir, &mo, err, sizeof err) == SG_OK) {
        const sg_model_info *info = sg_model_get_info(m);

        if (info->n_layer <= 0 || info->d_model <= 0 || info->n_vocab <= 0)
            abort();
        sg_model_close(m);
        return 0;
    }
    if (getenv("FUZZ_PRINT") != NULL) /* to see why a seed is refused */
        fprintf(stderr, "fuzz_model_bind: %s\n", err);
    if (err[0] == '\0' || memchr(err, '\0', sizeof err) == NULL)
        abort(); /* a refusal must say why */
    return 0;
}
