/*
 * fuzz_packcache.c: the packed-weight cache reader (engine/mm/packcache.c) on arbitrary file
 * bytes. Each input is written as the cache file of a fixed key and opened: a file that passes
 * validation is then looked up (a 4 x 16 bf16 weight "w" for "avx2-bf16") and the found bytes
 * read, so that an entry pointing outside the file shows up under ASan. Before it is written,
 * a mutated input gets its checksums recomputed (fix_sums: the file size, each entry's data
 * hash where the entry lies in the input, then the header checksum), so that mutations reach
 * the entry checks behind them instead of stopping at a checksum mismatch; an input whose
 * header sets bit 0 of its reserved word is written as it is. Seeds:
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

/* The file format's fields (engine/packcache.c: struct pc_header, struct pc_entry, PC_SEED). */
#define PC_SEED 0x5347504b43414348ull
#define H_KEY_LEN 12
#define H_N_ENTRIES 16
#define H_TABLE_OFF 24
#define H_FILE_SIZE 40
#define H_CHECKSUM 48
#define H_RESERVED 56
#define H_SIZE 64
#define E_SIZE 192
#define E_OFFSET 160
#define E_BYTES 168
#define E_HASH 176

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return v;
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static void fix_sums(uint8_t *b, size_t size)
{
    uint32_t key_len;
    uint64_t n, table, sum;

    if (size < H_SIZE || (get64(b + H_RESERVED) & 1))
        return;
    memcpy(&key_len, b + H_KEY_LEN, 4);
    n = get64(b + H_N_ENTRIES);
    table = get64(b + H_TABLE_OFF);
    put64(b + H_FILE_SIZE, size);
    if (key_len > size - H_SIZE || table > size || n > (size - table) / E_SIZE)
        return;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t *e = b + table + i * E_SIZE;
        uint64_t off = get64(e + E_OFFSET), bytes = get64(e + E_BYTES);

        if (off <= size && bytes <= size - off)
            put64(e + E_HASH, sg_packcache_hash(b + off, bytes, PC_SEED));
    }
    put64(b + H_CHECKSUM, 0);
    sum = sg_packcache_hash(b, H_SIZE, PC_SEED);
    sum = sg_packcache_hash(b + H_SIZE, key_len, sum);
    sum = sg_packcache_hash(b + table, n * E_SIZE, sum);
    put64(b + H_CHECKSUM, sum);
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
    {
        uint8_t *copy = malloc(size + 1);

        if (copy == NULL)
            return 0;
        memcpy(copy, data, size);
        fix_sums(copy, size);
        f = fopen(path, "wb");
        if (f == NULL || (size > 0 && fwrite(copy, 1, size, f) != size))
            abort();
        fclose(f);
        free(copy);
    }
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
