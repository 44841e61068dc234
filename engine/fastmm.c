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

static int new_avx2(sg_fastmat *f, const sg_tensor *w, int bf16, sg_packcache *pc, char *err,
                    size_t errlen)
{
    const size_t want = (size_t)((f->n + SG_AVX2_PANEL - 1) / SG_AVX2_PANEL) * SG_AVX2_PANEL *
                        (size_t)f->k * (bf16 ? 2 : 4);
    int rc;

    f->kind = bf16 ? K_AVX2_BF16 : K_AVX2_F32;
    if (pc != NULL && sg_packcache_is_hit(pc)) {
        const void *p = sg_packcache_find(pc, w, kind_names[f->kind], want);

        if (p != NULL) {
            /* Read-only shared pages: the kernels only ever read panels. */
            f->panels = (void *)(uintptr_t)p;
            f->bytes = want;
            f->pc = pc;
            return SG_OK;
        }
    }
    rc = sg_avx2_pack(w, bf16, &f->panels, &f->bytes, err, errlen);
    if (rc == SG_OK && pc != NULL && !sg_packcache_is_hit(pc) &&
        sg_packcache_note(pc, w, kind_names[f->kind], f->panels, f->bytes) != SG_OK)
        sg_log(SG_LOG_WARN, "%s: out of memory noting it for the pack cache", w->name);
    return rc;
}

static int new_dnnl(sg_fastmat *f, const sg_tensor *w, sg_precision prec, sg_packcache *pc,
                    char *err, size_t errlen)
{
    int rc = sg_dnnl_new_cached(&f->dnnl, w, prec, pc, err, errlen);

    if (rc == SG_OK) {
        f->kind = prec == SG_PREC_INT8 ? K_DNNL_U8S8 : K_DNNL_BF16;
        f->bytes = sg_dnnl_bytes(f->dnnl);
    }
    return rc;
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
    return f->pc != NULL || (f->dnnl != NULL && sg_dnnl_mapped(f->dnnl));
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

void sg_fastmat_mul(const sg_fastmat *f, const float *x, size_t m, float *y, sg_pool *pool)
{
    if (m == 0)
        return;
    switch (f->kind) {
    case K_AVX2_F32:
    case K_AVX2_BF16:
        sg_avx2_mul(f->panels, f->kind == K_AVX2_BF16, f->n, f->k, x, m, y, pool);
        break;
    case K_DNNL_BF16:
    case K_DNNL_U8S8:
        /* oneDNN failing to run a primitive it created means it could not allocate its
         * scratchpad or handles; sg_mat_mul cannot fail, so y is zeroed and it is logged. */
        if (sg_dnnl_mul(f->dnnl, x, m, y, pool) != SG_OK) {
            for (size_t i = 0; i < m * (size_t)f->n; i++)
                y[i] = 0.0f;
            sg_log(SG_LOG_ERROR, "oneDNN %s matmul [%lld, %lld] failed to run",
                   kind_names[f->kind], (long long)f->n, (long long)f->k);
        }
        break;
    }
}
