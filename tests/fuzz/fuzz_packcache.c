/*
 * fuzz_packcache.c: the packed-weight cache reader (engine/mm/packcache.c) on arbitrary file
 * bytes. Each input is written as the cache file of a fixed key and opened: a file that passes
 * validation is then looked up (a 4 x 16 bf16 weight "w" for "avx2-bf16") and the found bytes
 * read, so that an entry pointing outside the file shows up under ASan. Seeds:
 * tests/fuzz/seeds/fuzz_packcache/ (a valid file holding that weight, written by this API).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "packcache.h"
#include "sg_engine.h"
#include "tensor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEY "fuzz key\n"

static char dir[64];
static char path[4200];

static void quiet(sg_log_level level, const char *msg, void *ud)
{
    (void)level;
    (void)msg;
    (void)ud;
}

/* The weight the seed holds: 4 x 16 bf16 values i * 7. */
static void weight(sg_tensor *t, uint16_t *w)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "w");
    t->dtype = SG_DT_BF16;
    t->ndim = 2;
    t->shape[0] = 4;
    t->shape[1] = 16;
    for (int i = 0; i < 64; i++)
        w[i] = (uint16_t)(i * 7);
    t->data = w;
    t->nbytes = 64 * sizeof *w;
}

static int setup(void)
{
    sg_packcache *pc = NULL;
    char err[256];

    sg_engine_set_log(quiet, NULL);
    snprintf(dir, sizeof dir, "/tmp/fuzz-packcache-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    if (sg_packcache_open(&pc, dir, "f", KEY, err, sizeof err) != SG_OK)
        return -1;
    snprintf(path, sizeof path, "%s", sg_packcache_path(pc));
    if (getenv("FUZZ_PACKCACHE_SEED") != NULL) { /* write the seed instead of fuzzing */
        sg_tensor t;
        uint16_t w[64];

        weight(&t, w);
        sg_packcache_note(pc, &t, "avx2-bf16", w, sizeof w);
        sg_packcache_commit(pc, err, sizeof err);
        printf("%s\n", path);
        exit(0);
    }
    sg_packcache_commit(pc, err, sizeof err); /* nothing noted: releases the lock */
    sg_packcache_unref(pc);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    sg_packcache *pc = NULL;
    char err[256];
    FILE *f;

    if (!ready) {
        if (setup() != 0)
            abort();
        ready = 1;
    }
    f = fopen(path, "wb");
    if (f == NULL)
        abort();
    if (size > 0 && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    if (sg_packcache_open(&pc, dir, "f", KEY, err, sizeof err) != SG_OK)
        abort(); /* the folder is fine: a bad file is a miss, never an error */
    if (sg_packcache_is_hit(pc)) {
        sg_tensor t;
        uint16_t w[64];
        const uint8_t *p;

        weight(&t, w);
        p = sg_packcache_find(pc, &t, "avx2-bf16", sizeof w);
        if (p != NULL) {
            volatile unsigned sink = 0;

            for (size_t i = 0; i < sizeof w; i++)
                sink += p[i];
            (void)sink;
            sg_packcache_unref(pc);
        }
    }
    sg_packcache_commit(pc, err, sizeof err);
    sg_packcache_unref(pc);
    return 0;
}
