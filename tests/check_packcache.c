/*
 * check_packcache.c: the packed-weight cache (engine/mm/packcache.h): a miss writes the file and a
 * hit maps it with bit-identical logits; corrupt, truncated and mismatched files are rejected
 * and rebuilt; a changed model gets a new file; processes share one file and build it once when
 * they start together; an unusable folder only costs the cache.
 *
 * The model is a copy of tests/fixtures/tiny-a/hf_bf16 in a temporary folder (so that its files
 * can be touched), at BF16 precision: on an AVX2 machine every layer matrix runs avx2-bf16 (or
 * dnnl-bf16 on AVX-512 BF16 machines, which the cache leaves alone: those tests then check that
 * no file is written).
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "fastmm.h"
#include "lib/engine_fixtures.h"
#include "model.h"
#include "packcache.h"
#include "sg_engine.h"

Suite *packcache_suite(void);

static const char *const model_files[] = {
    "config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.model",
    "tokenizer_config.json",
};

static void copy_model(const char *dir)
{
    char from[4096];
    char to[4200];

    for (size_t i = 0; i < sizeof model_files / sizeof *model_files; i++) {
        char rel[256];

        snprintf(rel, sizeof rel, "tiny-a/hf_bf16/%s", model_files[i]);
        fx_path(from, sizeof from, rel);
        snprintf(to, sizeof to, "%s/%s", dir, model_files[i]);
        fx_copy(from, to);
    }
}

static sg_model *open_model_prec(const char *dir, const char *cache, sg_precision prec,
                                 int *mapped);

/* Open the model with `cache` (NULL: none); *mapped = layer matrices mapped from the cache. */
static sg_model *open_model(const char *dir, const char *cache, int *mapped)
{
    return open_model_prec(dir, cache, SG_PREC_BF16, mapped);
}

static sg_model *open_model_prec(const char *dir, const char *cache, sg_precision prec,
                                 int *mapped)
{
    sg_model_opts mo = sg_model_opts_default();
    sg_model *m = NULL;
    char err[1024];
    int rc;

    mo.n_threads = 1;
    mo.precision = prec;
    mo.pack_cache = cache;
    rc = sg_model_open(&m, dir, &mo, err, sizeof err);
    ck_assert_msg(rc == SG_OK, "open %s: %s", dir, err);
    if (mapped != NULL) {
        *mapped = 0;
        for (int l = 0; l < m->info.n_layer; l++)
            for (int i = 0; i < SG_LM_COUNT; i++)
                *mapped += sg_mat_mapped(m->layers[l].mat[i]);
    }
    return m;
}

/* The whole vocabulary's logits at the last position of the fixture prompt (caller frees). */
static float *logits(sg_model *m)
{
    int32_t ids[64];
    size_t n = fx_prompt_ids(ids, 64);
    size_t nv = (size_t)sg_model_get_info(m)->n_vocab;
    float *out = malloc(nv * sizeof *out);
    sg_ctx_opts co = sg_ctx_opts_default();
    sg_logits_req rq = {NULL, 0, 0, out};
    sg_ctx *c = NULL;

    ck_assert_ptr_nonnull(out);
    co.n_ctx = 64;
    ck_assert_int_eq(sg_ctx_new(&c, m, &co, NULL, 0), SG_OK);
    ck_assert_msg(sg_ctx_append(c, ids, n, &rq) == SG_OK, "%s", sg_ctx_errmsg(c));
    sg_ctx_free(c);
    return out;
}

/*
 * The layer matrices that a fast kernel runs: every fast kernel is cached (avx2-* and the
 * oneDNN ones), only the portable path is not (mm/packcache.h). So on a miss and on a hit
 * exactly these are mapped from the file, whichever kernels this CPU runs.
 */
static int fast_mats(const sg_model *m)
{
    int n = 0;

    for (int l = 0; l < m->info.n_layer; l++)
        for (int i = 0; i < SG_LM_COUNT; i++)
            n += strcmp(sg_mat_kernel(m->layers[l].mat[i]), "portable-f32") != 0;
    return n;
}

/* Does this machine run any layer matrix with a (cached) fast kernel at this precision? */
static int cached(const sg_model *m)
{
    return fast_mats(m) > 0;
}

/* The one .sgpack file in `dir` into path (asserts there is exactly `want` of them). */
static void pack_file(const char *dir, char *path, size_t cap, int want)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    path[0] = '\0';
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);

        ck_assert_msg(strstr(de->d_name, ".sgpack.") == NULL, "temporary file left: %s",
                      de->d_name);
        if (l > 7 && strcmp(de->d_name + l - 7, ".sgpack") == 0) {
            snprintf(path, cap, "%s/%s", dir, de->d_name);
            n++;
        }
    }
    closedir(d);
    ck_assert_int_eq(n, want);
}

static void assert_same(const float *a, const float *b, size_t n)
{
    ck_assert_msg(memcmp(a, b, n * sizeof *a) == 0, "logits differ");
}

START_TEST(miss_write_hit_identical)
{
    char dir[4096], cache[4096], file[4400];
    sg_model *m;
    float *ref, *z;
    int mapped;
    size_t nv;

    fx_tmpdir(dir, sizeof dir);
    fx_tmpdir(cache, sizeof cache);
    copy_model(dir);
    m = open_model(dir, NULL, &mapped);
    ck_assert_int_eq(mapped, 0);
    nv = (size_t)m->info.n_vocab;
    ref = logits(m);
    if (!cached(m)) {
        sg_model_close(m);
        m = open_model(dir, cache, &mapped);
        ck_assert_int_eq(mapped, 0);
        pack_file(cache, file, sizeof file, 0);
        goto out;
    }
    sg_model_close(m);

    /* Miss: written, then this process maps it too. */
    m = open_model(dir, cache, &mapped);
    pack_file(cache, file, sizeof file, 1);
    ck_assert_int_eq(mapped, fast_mats(m));
    z = logits(m);
    assert_same(ref, z, nv);
    free(z);
    sg_model_close(m);

    /* Hit. */
    m = open_model(dir, cache, &mapped);
    pack_file(cache, file, sizeof file, 1);
    ck_assert_int_eq(mapped, fast_mats(m));
    z = logits(m);
    assert_same(ref, z, nv);
    free(z);

    /* A context at another precision gets its own file (f32: the same kernel, exact). */
    {
        sg_ctx_opts co = sg_ctx_opts_default();
        sg_ctx *c = NULL;

        co.precision = SG_PREC_F32;
        co.n_ctx = 16;
        ck_assert_int_eq(sg_ctx_new(&c, m, &co, NULL, 0), SG_OK);
        sg_ctx_free(c);
        pack_file(cache, file, sizeof file, 2);
    }
out:
    sg_model_close(m);
    free(ref);
    fx_rmdir(dir);
    fx_rmdir(cache);
}
END_TEST

/* int8 (oneDNN's blocked layout, stored with its memory descriptors, scales, compensations):
 * miss, then hit, with bit-identical logits. */
START_TEST(int8_miss_hit_identical)
{
    char dir[4096], cache[4096], file[4400];
    sg_model *m;
    float *ref, *z;
    int mapped;
    size_t nv;

    fx_tmpdir(dir, sizeof dir);
    fx_tmpdir(cache, sizeof cache);
    copy_model(dir);
    m = open_model_prec(dir, NULL, SG_PREC_INT8, &mapped);
    nv = (size_t)m->info.n_vocab;
    ref = logits(m);
    if (strcmp(sg_model_kernel(m), "dnnl-u8s8") != 0)
        goto out; /* no oneDNN int8 here (no JIT allowed?): nothing is cached */
    sg_model_close(m);
    m = open_model_prec(dir, cache, SG_PREC_INT8, &mapped);
    ck_assert_int_eq(mapped, fast_mats(m)); /* written, then mapped */
    pack_file(cache, file, sizeof file, 1);
    z = logits(m);
    assert_same(ref, z, nv);
    free(z);
    sg_model_close(m);
    m = open_model_prec(dir, cache, SG_PREC_INT8, &mapped);
    ck_assert_int_eq(mapped, fast_mats(m));
    z = logits(m);
    assert_same(ref, z, nv);
    free(z);
out:
    sg_model_close(m);
    free(ref);
    fx_rmdir(dir);
    fx_rmdir(cache);
}
END_TEST

/* Damage the file with `how`, reload: identical logits, warned, file rebuilt valid. */
static void damage_and_reload(int how)
{
    char dir[4096], cache[4096], file[4400];
    sg_model *m;
    float *ref, *z;
    int mapped;
    size_t nv;
    struct stat st;

    fx_tmpdir(dir, sizeof dir);
    fx_tmpdir(cache, sizeof cache);
    copy_model(dir);
    m = open_model(dir, cache, &mapped);
    nv = (size_t)m->info.n_vocab;
    ref = logits(m);
    if (!cached(m))
        goto out;
    sg_model_close(m);
    pack_file(cache, file, sizeof file, 1);
    ck_assert_int_eq(stat(file, &st), 0);
    {
        size_t len;
        unsigned char *b = fx_read(file, &len);

        switch (how) {
        case 0: /* a flipped bit in the packed data (the last page) */
            b[len - 100] ^= 0x10;
            break;
        case 1: /* truncated */
            len = len / 2;
            break;
        case 2: /* a flipped bit in the table */
            b[64 + 600] ^= 1;
            break;
        case 3: /* not a cache file at all */
            memset(b, 'x', 64);
            break;
        case 4: /* empty */
            len = 0;
            break;
        default: /* a flipped bit in the header's recorded file size */
            b[40] ^= 4;
            break;
        }
        fx_write(file, b, len);
        free(b);
    }
    m = open_model(dir, cache, &mapped);
    ck_assert_int_eq(mapped, fast_mats(m));
    z = logits(m);
    assert_same(ref, z, nv);
    free(z);
    sg_model_close(m);
    {
        ino_t damaged = st.st_ino; /* fx_write rewrote the file in place */

        ck_assert_int_eq(stat(file, &st) == 0 && st.st_size > 0, 1);
        ck_assert_msg(st.st_ino != damaged, "damage %d: the file was not rebuilt", how);
    }
    /* The rebuilt file is valid: the next load maps it without rebuilding. */
    {
        struct stat st2;

        m = open_model(dir, cache, &mapped);
        ck_assert_int_eq(mapped, fast_mats(m));
        ck_assert_int_eq(stat(file, &st2), 0);
        ck_assert_int_eq(st2.st_ino, st.st_ino);
    }
out:
    sg_model_close(m);
    free(ref);
    fx_rmdir(dir);
    fx_rmdir(cache);
}

START_TEST(damaged_files_are_rebuilt)
{
    damage_and_reload(_i);
}
END_TEST

/* A file under another key's name (a copied file, or a hash collision) is rejected. */
START_TEST(mismatched_key_rejected)
{
    char cache[4096], path_a[4400], path_b[4400];
    char err[512];
    sg_packcache *pc = NULL;
    sg_tensor t;
    uint16_t data[64];
    const void *p;

    fx_tmpdir(cache, sizeof cache);
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "w");
    t.dtype = SG_DT_BF16;
    t.ndim = 2;
    t.shape[0] = 4;
    t.shape[1] = 16;
    for (int i = 0; i < 64; i++)
        data[i] = (uint16_t)(i * 7);
    t.data = data;
    t.nbytes = sizeof data;

    ck_assert_int_eq(sg_packcache_open(&pc, cache, "m", "key A\n", err, sizeof err), SG_OK);
    ck_assert_int_eq(sg_packcache_is_hit(pc), 0);
    ck_assert_int_eq(sg_packcache_note(pc, &t, "avx2-bf16", data, sizeof data), SG_OK);
    ck_assert_int_eq(sg_packcache_commit(pc, err, sizeof err), SG_OK);
    snprintf(path_a, sizeof path_a, "%s", sg_packcache_path(pc));
    sg_packcache_unref(pc);

    /* Key A hits, with the same bytes; another shape or kernel does not. */
    ck_assert_int_eq(sg_packcache_open(&pc, cache, "m", "key A\n", err, sizeof err), SG_OK);
    ck_assert_int_eq(sg_packcache_is_hit(pc), 1);
    p = sg_packcache_find(pc, &t, "avx2-bf16", sizeof data);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(memcmp(p, data, sizeof data), 0);
    ck_assert_ptr_null(sg_packcache_find(pc, &t, "avx2-f32", sizeof data));
    ck_assert_ptr_null(sg_packcache_find(pc, &t, "avx2-bf16", sizeof data * 2));
    data[0] ^= 1; /* the tensor's bytes changed: its sample hash differs */
    ck_assert_ptr_null(sg_packcache_find(pc, &t, "avx2-bf16", sizeof data));
    data[0] ^= 1;
    sg_packcache_unref(pc); /* the reference find took */
    sg_packcache_unref(pc);

    /* Key B at file A's bytes: rejected (a miss), and B's own file is then written. */
    ck_assert_int_eq(sg_packcache_open(&pc, cache, "m", "key B\n", err, sizeof err), SG_OK);
    snprintf(path_b, sizeof path_b, "%s", sg_packcache_path(pc));
    sg_packcache_unref(pc);
    ck_assert_str_ne(path_a, path_b);
    fx_copy(path_a, path_b);
    ck_assert_int_eq(sg_packcache_open(&pc, cache, "m", "key B\n", err, sizeof err), SG_OK);
    ck_assert_int_eq(sg_packcache_is_hit(pc), 0);
    ck_assert_int_eq(sg_packcache_note(pc, &t, "avx2-f32", data, sizeof data), SG_OK);
    ck_assert_int_eq(sg_packcache_commit(pc, err, sizeof err), SG_OK);
    sg_packcache_unref(pc);
    ck_assert_int_eq(sg_packcache_open(&pc, cache, "m", "key B\n", err, sizeof err), SG_OK);
    ck_assert_int_eq(sg_packcache_is_hit(pc), 1);
    ck_assert_ptr_null(sg_packcache_find(pc, &t, "avx2-bf16", sizeof data));
    p = sg_packcache_find(pc, &t, "avx2-f32", sizeof data);
    ck_assert_ptr_nonnull(p);
    sg_packcache_unref(pc);
    sg_packcache_unref(pc);
    fx_rmdir(cache);
}
END_TEST

/* The key names the model's files with size and mtime: a touched model gets a new file. */
START_TEST(changed_model_new_key)
{
    char dir[4096], cache[4096], file[4400], st_path[4200];
    char k1[8192], k2[8192], err[512];
    struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};

    fx_tmpdir(dir, sizeof dir);
    fx_tmpdir(cache, sizeof cache);
    copy_model(dir);
    ck_assert_int_eq(sg_model_pack_key(dir, SG_PREC_BF16, k1, sizeof k1, err, sizeof err), SG_OK);
    ck_assert_ptr_nonnull(strstr(k1, "model.safetensors"));
    ck_assert_ptr_nonnull(strstr(k1, "config.json"));
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    ck_assert_int_eq(utimensat(AT_FDCWD, st_path, ts, 0), 0);
    ck_assert_int_eq(sg_model_pack_key(dir, SG_PREC_BF16, k2, sizeof k2, err, sizeof err), SG_OK);
    ck_assert_str_ne(k1, k2);
    ck_assert_int_eq(sg_model_pack_key(dir, SG_PREC_INT8, k1, sizeof k1, err, sizeof err), SG_OK);
    ck_assert_str_ne(k1, k2);
    ck_assert_int_eq(sg_model_pack_key(st_path, SG_PREC_BF16, k1, sizeof k1, err, sizeof err),
                     SG_OK);
    ck_assert_ptr_nonnull(strstr(k1, "config.json"));
    ck_assert_int_eq(sg_model_pack_key("/nonexistent/model", SG_PREC_BF16, k1, sizeof k1, err,
                                      sizeof err), SG_EIO);
    ck_assert_int_eq(sg_model_pack_key(dir, SG_PREC_BF16, k1, 40, err, sizeof err), SG_ERANGE);
    {
        int mapped;
        sg_model *m = open_model(dir, cache, &mapped);

        if (cached(m)) {
            sg_model_close(m);
            ck_assert_int_eq(utimensat(AT_FDCWD, st_path, NULL, 0), 0);
            m = open_model(dir, cache, &mapped);
            ck_assert_int_eq(mapped, fast_mats(m));
            pack_file(cache, file, sizeof file, 2);
        }
        sg_model_close(m);
    }
    fx_rmdir(dir);
    fx_rmdir(cache);
}
END_TEST

/* Processes starting at once on an empty cache: all load, one file is built, all agree. */
START_TEST(processes_share_one_file)
{
    char dir[4096], cache[4096], file[4400];
    sg_model *m;
    float *ref;
    size_t nv;
    pid_t pid[3];
    int mapped;

    fx_tmpdir(dir, sizeof dir);
    fx_tmpdir(cache, sizeof cache);
    copy_model(dir);
    m = open_model(dir, NULL, NULL);
    ref = logits(m);
    nv = (size_t)m->info.n_vocab;
    if (!cached(m))
        goto out;
    sg_model_close(m);
    m = NULL;
    for (int i = 0; i < 3; i++) {
        pid[i] = fork();
        ck_assert_int_ge(pid[i], 0);
        if (pid[i] == 0) {
            sg_model *cm = open_model(dir, cache, &mapped);
            float *z = logits(cm);
            int ok = mapped == fast_mats(cm) && memcmp(z, ref, nv * sizeof *z) == 0;

            /* Freed: under `make valgrind` the child's own leak check sets its exit status. */
            free(z);
            sg_model_close(cm);
            _exit(ok ? 0 : 1);
        }
    }
    for (int i = 0; i < 3; i++) {
        int status;

        ck_assert_int_eq(waitpid(pid[i], &status, 0), pid[i]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child %d failed", i);
    }
    pack_file(cache, file, sizeof file, 1);
    /* Two models in one process share the same mapped file too. */
    {
        int m1, m2;
        sg_model *a = open_model(dir, cache, &m1);
        sg_model *b = open_model(dir, cache, &m2);
        float *z = logits(b);

        ck_assert_int_eq(m1, fast_mats(a));
        ck_assert_int_eq(m2, fast_mats(b));
        assert_same(ref, z, nv);
        free(z);
        sg_model_close(a);
        sg_model_close(b);
    }
out:
    sg_model_close(m);
    free(ref);
    fx_rmdir(dir);
    fx_rmdir(cache);
}
END_TEST

/* A cache "folder" that is a file: the model still loads (a warning), unmapped. */
START_TEST(unusable_folder_only_costs_the_cache)
{
    char dir[4096], cache[4096], notdir[4200];
    sg_model *m;
    int mapped;
    char err[256];
    sg_packcache *pc = NULL;

    fx_tmpdir(dir, sizeof dir);
    fx_tmpdir(cache, sizeof cache);
    copy_model(dir);
    snprintf(notdir, sizeof notdir, "%s/file", cache);
    fx_put(cache, "file", "x");
    m = open_model(dir, notdir, &mapped);
    ck_assert_int_eq(mapped, 0);
    sg_model_close(m);
    ck_assert_int_eq(sg_packcache_open(&pc, notdir, "m", "k", err, sizeof err), SG_EIO);
    ck_assert_ptr_nonnull(strstr(err, notdir));
    ck_assert_int_eq(sg_packcache_open(&pc, "", "m", "k", err, sizeof err), SG_EINVAL);
    /* "" means no cache. */
    m = open_model(dir, "", &mapped);
    ck_assert_int_eq(mapped, 0);
    sg_model_close(m);
    fx_rmdir(dir);
    fx_rmdir(cache);
}
END_TEST

START_TEST(hash_sensitivity)
{
    unsigned char b[1000];

    for (size_t i = 0; i < sizeof b; i++)
        b[i] = (unsigned char)(i * 31);
    uint64_t h = sg_packcache_hash(b, sizeof b, 1);
    ck_assert_uint_eq(h, sg_packcache_hash(b, sizeof b, 1));
    ck_assert_uint_ne(h, sg_packcache_hash(b, sizeof b, 2));
    ck_assert_uint_ne(h, sg_packcache_hash(b, sizeof b - 1, 1));
    for (size_t i = 0; i < sizeof b; i += 97) {
        b[i] ^= 0x80;
        ck_assert_uint_ne(h, sg_packcache_hash(b, sizeof b, 1));
        b[i] ^= 0x80;
    }
}
END_TEST

/* The daemon's pack_cache key: default auto, a folder from the file or --pack-cache, no "". */
START_TEST(daemon_config_key)
{
    struct shieldd_config c;
    struct shieldd_cmdline cl;
    char err[256];
    char *argv[] = {"shieldd", "--pack-cache", "/var/cache/sg", NULL};

    shieldd_defaults(&c);
    ck_assert_str_eq(c.pack_cache, "auto");
    ck_assert_int_eq(config_set(&c, "pack_cache", "off", err, sizeof err), 0);
    ck_assert_str_eq(c.pack_cache, "off");
    ck_assert_int_eq(config_set(&c, "pack_cache", "", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "pack_cache"));
    ck_assert_int_eq(config_parse_args(&cl, 3, argv, err, sizeof err), 0);
    ck_assert_int_eq(config_apply_args(&c, &cl, err, sizeof err), 0);
    ck_assert_str_eq(c.pack_cache, "/var/cache/sg");
    config_free(&c);
}
END_TEST

Suite *packcache_suite(void)
{
    Suite *s = suite_create("packcache");
    TCase *tc = tcase_create("packcache");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, miss_write_hit_identical);
    tcase_add_test(tc, int8_miss_hit_identical);
    tcase_add_loop_test(tc, damaged_files_are_rebuilt, 0, 6);
    tcase_add_test(tc, mismatched_key_rejected);
    tcase_add_test(tc, changed_model_new_key);
    tcase_add_test(tc, processes_share_one_file);
    tcase_add_test(tc, unusable_folder_only_costs_the_cache);
    tcase_add_test(tc, hash_sensitivity);
    tcase_add_test(tc, daemon_config_key);
    suite_add_tcase(s, tc);
    return s;
}
