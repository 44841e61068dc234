/*
 * fastmm.c: chooses and runs the fast matrix-product kernel of a weight (see fastmm.h).
 *
 * Choice, by precision (the first that this CPU and oneDNN can run):
 *   F32    avx2-bf16 for BF16 weights (exact), avx2-f32 for F32 weights; other dtypes (F16,
 *          GGUF quantized) stay on the portable exact path, which converts them on the fly.
 *   BF16   dnnl-bf16 (AVX-512 BF16 / AMX), else avx2-bf16 (weights rounded to bf16 once).
 *   INT8   dnnl-u8s8.
 * The tied embedding (the LM head) and any vocabulary-sized weight (N >= 65536) are left to the
 * portable path: the forward pass reads two rows of it through sg_mat_mul_rows, which must give
 * the same values as sg_mat_mul's full rows, and repacking would copy 1.2 GB (2B) for nothing.
 */
#include "fastmm.h"

#include "packcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAST_ROWS 65536
#define MAX_FAST_COLS 49152 /* a bf16 row must fit matmul_dnnl.c's 128 KB stack chunk */

typedef enum kind {
    K_AVX2_F32,
    K_AVX2_BF16,
    K_DNNL_BF16,
    K_DNNL_U8S8,
} kind;

static const char *const kind_names[] = {"avx2-f32", "avx2-bf16", "dnnl-bf16", "dnnl-u8s8"};

struct sg_fastmat {
    kind kind;
    int64_t n;
    int64_t k;
    void *panels; /* avx2-*: owned, or into pc's mapping */
    size_t bytes;
    sg_packcache *pc; /* non-NULL: panels are in this cache file (a reference held) */
    struct sg_dnnl_mat *dnnl; /* dnnl-*: owned */
};

/*
 * The one place the pack cache is consulted. cache_find: the cached bytes of `w` for `kernel`
 * when a hit cache has exactly `bytes` of them (f then holds the reference to pc that
 * sg_packcache_find took); cache_note: on a miss, remember the bytes just packed for commit.
 */
static const void *cache_find(sg_fastmat *f, sg_packcache *pc, const sg_tensor *w, size_t bytes)
{
    const void *p;

    if (pc == NULL || !sg_packcache_is_hit(pc))
        return NULL;
    p = sg_packcache_find(pc, w, kind_names[f->kind], bytes);
    if (p != NULL)
        f->pc = pc;
    return p;
}

static void cache_drop(sg_fastmat *f)
{
    sg_packcache_unref(f->pc);
    f->pc = NULL;
}

static void cache_note(const sg_fastmat *f, sg_packcache *pc, const sg_tensor *w,
                       const void *data, size_t bytes)
{
    if (pc != NULL && !sg_packcache_is_hit(pc) &&
        sg_packcache_note(pc, w, kind_names[f->kind], data, bytes) != SG_OK)
        sg_log(SG_LOG_WARN, "%s: out of memory noting it for the pack cache", w->name);
}

static int new_avx2(sg_fastmat *f, const sg_tensor *w, int bf16, sg_packcache *pc, char *err,
                    size_t errlen)
{
    const size_t want = (size_t)((f->n + SG_AVX2_PANEL - 1) / SG_AVX2_PANEL) * SG_AVX2_PANEL *
                        (size_t)f->k * (bf16 ? 2 : 4);
    const void *p;
    int rc;

    f->kind = bf16 ? K_AVX2_BF16 : K_AVX2_F32;
    if ((p = cache_find(f, pc, w, want)) != NULL) {
        /* Read-only shared pages: the kernels only ever read panels. */
        f->panels = (void *)(uintptr_t)p;
        f->bytes = want;
        return SG_OK;
    }
    rc = sg_avx2_pack(w, bf16, &f->panels, &f->bytes, err, errlen);
    if (rc == SG_OK)
        cache_note(f, pc, w, f->panels, f->bytes);
    return rc;
}

static int new_dnnl(sg_fastmat *f, const sg_tensor *w, sg_precision prec, sg_packcache *pc,
                    char *err, size_t errlen)
{
    const void *p;
    int rc = sg_dnnl_plan(&f->dnnl, w, prec, err, errlen);

    if (rc != SG_OK)
        return rc;
    f->kind = prec == SG_PREC_INT8 ? K_DNNL_U8S8 : K_DNNL_BF16;
    p = cache_find(f, pc, w, sg_dnnl_blob_bytes(f->dnnl));
    if (p != NULL && !sg_dnnl_adopt(f->dnnl, p)) {
        sg_log(SG_LOG_WARN, "pack cache %s: %s: oneDNN chose another weight layout than the "
               "cached one; reordering it", sg_packcache_path(pc), w->name);
        cache_drop(f);
        p = NULL;
    }
    if (p == NULL) {
        rc = sg_dnnl_pack(f->dnnl, w, err, errlen);
        if (rc != SG_OK) {
            sg_dnnl_free(f->dnnl);
            f->dnnl = NULL;
            return rc;
        }
        cache_note(f, pc, w, sg_dnnl_blob(f->dnnl), sg_dnnl_blob_bytes(f->dnnl));
    }
    f->bytes = sg_dnnl_bytes(f->dnnl);
    return SG_OK;
}

void sg_fastmm_layouts(char *buf, size_t cap)
{
    char avx2[128], dnnl[256];

    sg_avx2_layout(avx2, sizeof avx2);
    sg_dnnl_layout(dnnl, sizeof dnnl);
    snprintf(buf, cap, "%s\n%s\n", avx2, dnnl);
}

int sg_fastmat_new(sg_fastmat **out, const sg_tensor *w, sg_precision prec, char *err,
                   size_t errlen)
{
    return sg_fastmat_new_cached(out, w, prec, NULL, err, errlen);
}

int sg_fastmat_new_cached(sg_fastmat **out, const sg_tensor *w, sg_precision prec,
                          sg_packcache *pc, char *err, size_t errlen)
{
    sg_fastmat *f;
    int rc = SG_EUNSUPPORTED;

    *out = NULL;
    if (w->ndim != 2 || w->shape[0] <= 0 || w->shape[1] <= 0) {
        snprintf(err, errlen, "%s: expected a 2-D weight [out, in]", w->name);
        return SG_ESHAPE;
    }
    if (w->shape[0] >= MAX_FAST_ROWS || w->shape[1] > MAX_FAST_COLS ||
        strstr(w->name, "embed_tokens") != NULL) {
        snprintf(err, errlen, "%s: [%lld, %lld] is left to the portable path", w->name,
                 (long long)w->shape[0], (long long)w->shape[1]);
        return SG_EUNSUPPORTED;
    }
    f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(err, errlen, "%s: out of memory", w->name);
        return SG_ENOMEM;
    }
    f->n = w->shape[0];
    f->k = w->shape[1];
    switch (prec) {
    case SG_PREC_F32:
        if (!sg_avx2_available())
            snprintf(err, errlen, "%s: this CPU has no AVX2+FMA", w->name);
        else if (w->dtype == SG_DT_BF16 || w->dtype == SG_DT_F32)
            rc = new_avx2(f, w, w->dtype == SG_DT_BF16, pc, err, errlen);
        else
            snprintf(err, errlen, "%s: %s weights at f32 stay on the exact portable path",
                     w->name, sg_dtype_name(w->dtype));
        break;
    case SG_PREC_BF16:
        rc = new_dnnl(f, w, prec, pc, err, errlen);
        if (rc == SG_EUNSUPPORTED && sg_avx2_available())
            rc = new_avx2(f, w, 1, pc, err, errlen);
        break;
    case SG_PREC_INT8:
        rc = new_dnnl(f, w, prec, pc, err, errlen);
        break;
    default:
        snprintf(err, errlen, "%s: unknown precision %d", w->name, (int)prec);
        rc = SG_EINVAL;
        break;
    }
    if (rc != SG_OK) {
        sg_fastmat_free(f);
        return rc;
    }
    *out = f;
    return SG_OK;
}

void sg_fastmat_free(sg_fastmat *f)
{
    if (f == NULL)
        return;
    if (f->pc != NULL)
        sg_packcache_unref(f->pc);
    else
        free(f->panels);
    sg_dnnl_free(f->dnnl);
    free(f);
}

const char *sg_fastmat_kernel(const sg_fastmat *f)
{
    return kind_names[f->kind];
}

int sg_fastmat_mapped(const sg_fastmat *f)
{
    return f->pc != NULL;
}

size_t sg_fastmat_bytes(const sg_fastmat *f)
{
    return f->bytes;
}

int sg_fastmat_mul_rows(const sg_fastmat *f, const int32_t *rows, size_t n_rows, const float *x,
                        size_t m, float *y, sg_pool *pool)
{
    (void)pool; /* a handful of rows (the LM head's "Yes" and "No"): one thread is enough */
    if (f->kind != K_AVX2_F32 && f->kind != K_AVX2_BF16)
        return SG_EUNSUPPORTED;
    sg_avx2_mul_rows(f->panels, f->kind == K_AVX2_BF16, f->n, f->k, rows, n_rows, x, m, y);
    return SG_OK;
}

size_t sg_fastmat_scratch(const sg_fastmat *f, size_t m)
{
    return f->dnnl != NULL ? sg_dnnl_scratch(f->dnnl, m) : 0;
}

int sg_fastmat_mul(const sg_fastmat *f, const float *x, size_t m, float *y, sg_pool *pool)
{
    if (m == 0)
        return SG_OK;
    switch (f->kind) {
    case K_AVX2_F32:
    case K_AVX2_BF16:
        sg_avx2_mul(f->panels, f->kind == K_AVX2_BF16, f->n, f->k, x, m, y, pool);
        return SG_OK;
    case K_DNNL_BF16:
    case K_DNNL_U8S8:
        /* oneDNN failing to run a primitive it created means it could not allocate its
         * scratchpad or handles: the product has no result, and the caller must not use y. */
        if (sg_dnnl_mul(f->dnnl, x, m, y, pool) != SG_OK) {
            sg_log(SG_LOG_ERROR, "oneDNN %s matmul [%lld, %lld] failed to run",
                   kind_names[f->kind], (long long)f->n, (long long)f->k);
            return SG_ECOMPUTE;
        }
        return SG_OK;
    }
    return SG_ECOMPUTE;
}
