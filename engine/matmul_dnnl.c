/*
 * matmul_dnnl.c: the int8 (and, where the CPU has bf16 dot products, the bf16) matrix products
 * through oneDNN's C API (libdnnl, Debian's oneDNN 2.6; see fastmm.h for the kernel table).
 *
 * int8, y[m, N] = x[m, K] W^T:
 *   weights   q[j, k] = round(w[j, k] / s_w[j]),  s_w[j] = max_k |w[j, k]| / QMAX   (per row)
 *   tokens    u[i, k] = round(x[i, k] / s_x[i]) + 128,  s_x[i] = max_k |x[i, k]| / 127
 *   product   y[i, j] = s_x[i] * (s_w[j] * sum_k u[i, k] q[j, k] - 128 s_w[j] colsum[j])
 * oneDNN computes the u8 x s8 -> s32 product and multiplies by s_w (output scales per column);
 * this file quantizes x and applies s_x and the zero-point term (colsum[j] = sum_k q[j, k]).
 * QMAX is 127 on CPUs with VNNI; without VNNI oneDNN's AVX2 kernel sums pairs of u8 x s8
 * products in saturating 16-bit lanes (vpmaddubsw), so weights keep 7 bits (QMAX 63) and a pair
 * stays below 2 * 255 * 64 < 32768.
 *
 * bf16 (only when oneDNN has a bf16 matmul for this CPU: AVX-512 BF16 or AMX): weights are
 * reordered once into oneDNN's blocked bf16 layout; x is rounded to bf16 per call; dst is f32.
 *
 * Threads: Debian's libdnnl runs on OpenMP (libgomp). Before each product the calling thread
 * sets its OpenMP thread count to the pool's (omp_set_num_threads, found in the already loaded
 * libgomp with dlsym, so that nothing else links OpenMP), so `--threads N` holds for oneDNN too.
 */
#include "fastmm.h"

#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dnnl.h>

#include "tensor.h"

#define STACK_CHUNK (128 * 1024) /* bytes of quantized x when the pool has no scratch */

struct sg_dnnl_mat {
    int64_t n;
    int64_t k;
    int int8;                  /* 1: u8s8, 0: bf16 */
    dnnl_engine_t engine;
    dnnl_primitive_t prim;     /* matmul with runtime M */
    dnnl_memory_desc_t wmd;    /* the weights in oneDNN's chosen layout */
    void *wdata;               /* owned: the reordered weights */
    size_t wbytes;
    float *scale;              /* int8: s_w[N] */
    float *comp;               /* int8: 128 * s_w[j] * colsum[j], [N] */
};

/* ---- OpenMP thread count --------------------------------------------------------------------- */

typedef void (*omp_set_fn)(int);

static pthread_once_t omp_once = PTHREAD_ONCE_INIT;
static omp_set_fn omp_set; /* written once under pthread_once, then only read */

static void omp_find(void)
{
    /* libgomp is already loaded (libdnnl needs it): RTLD_NOLOAD only finds it. */
    void *h = dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD);

    if (h != NULL) {
        union {
            void *p;
            omp_set_fn f;
        } u;
        u.p = dlsym(h, "omp_set_num_threads");
        omp_set = u.f;
    }
}

static void set_threads(int n)
{
    pthread_once(&omp_once, omp_find);
    if (omp_set != NULL && n > 0)
        omp_set(n);
}

/* ---- Creation --------------------------------------------------------------------------------- */

static int fail(int rc, char *err, size_t errlen, const char *name, const char *what,
                dnnl_status_t st)
{
    snprintf(err, errlen, "%s: oneDNN %s failed (status %d)", name, what, (int)st);
    return rc;
}

/* 1 if the CPU has VNNI (AVX-512 VNNI or AVX-VNNI), so int8 pairs cannot saturate. */
static int have_vnni(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni");
#else
    return 0;
#endif
}

/*
 * Build the matmul primitive (src runtime M x K, weights K x N in format any, dst f32 M x N),
 * and reorder `wsrc` (plain, K x N viewed as W^T, i.e. tag ba over [K, N]) into its layout.
 */
static int build(struct sg_dnnl_mat *d, const char *name, dnnl_data_type_t sdt,
                 dnnl_data_type_t wdt, const void *wsrc, char *err, size_t errlen)
{
    dnnl_memory_desc_t src, wany, wplain, dst;
    dnnl_dims_t sdims = {DNNL_RUNTIME_DIM_VAL, d->k};
    dnnl_dims_t wdims = {d->k, d->n};
    dnnl_dims_t ddims = {DNNL_RUNTIME_DIM_VAL, d->n};
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t mfrom = NULL, mto = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_status_t st;
    int rc = SG_EUNSUPPORTED;

    st = dnnl_engine_create(&d->engine, dnnl_cpu, 0);
    if (st != dnnl_success)
        return fail(SG_EUNSUPPORTED, err, errlen, name, "engine creation", st);
    if (dnnl_memory_desc_init_by_tag(&src, 2, sdims, sdt, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&wany, 2, wdims, wdt, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&wplain, 2, wdims, wdt, dnnl_ba) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&dst, 2, ddims, dnnl_f32, dnnl_ab) != dnnl_success) {
        snprintf(err, errlen, "%s: oneDNN memory descriptors refused", name);
        goto out;
    }
    st = dnnl_matmul_desc_init(&md, &src, &wany, NULL, &dst);
    if (st != dnnl_success) {
        fail(0, err, errlen, name, "matmul descriptor", st);
        goto out;
    }
    if (dnnl_primitive_attr_create(&attr) != dnnl_success)
        goto out;
    if (d->int8) {
        st = dnnl_primitive_attr_set_output_scales(attr, d->n, 1 << 1, d->scale);
        if (st != dnnl_success) {
            fail(0, err, errlen, name, "output scales", st);
            goto out;
        }
    }
    st = dnnl_primitive_desc_create(&pd, &md, attr, d->engine, NULL);
    if (st != dnnl_success) {
        fail(0, err, errlen, name, d->int8 ? "u8s8 matmul" : "bf16 matmul (no bf16 on this CPU?)",
             st);
        goto out;
    }
    d->wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    d->wbytes = dnnl_memory_desc_get_size(&d->wmd);
    d->wdata = aligned_alloc(64, (d->wbytes + 63) / 64 * 64);
    if (d->wdata == NULL) {
        snprintf(err, errlen, "%s: out of memory for %zu bytes of weights", name, d->wbytes);
        rc = SG_ENOMEM;
        goto out;
    }
    st = dnnl_primitive_create(&d->prim, pd);
    if (st != dnnl_success) {
        fail(0, err, errlen, name, "primitive creation", st);
        goto out;
    }
    /* Reorder the plain weights into the primitive's layout, once. */
    if (dnnl_reorder_primitive_desc_create(&rpd, &wplain, d->engine, &d->wmd, d->engine, NULL) !=
            dnnl_success ||
        dnnl_primitive_create(&reorder, rpd) != dnnl_success ||
        dnnl_memory_create(&mfrom, &wplain, d->engine, (void *)(uintptr_t)wsrc) != dnnl_success ||
        dnnl_memory_create(&mto, &d->wmd, d->engine, d->wdata) != dnnl_success ||
        dnnl_stream_create(&stream, d->engine, dnnl_stream_default_flags) != dnnl_success) {
        snprintf(err, errlen, "%s: oneDNN weight reorder failed", name);
        goto out;
    }
    {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, mfrom}, {DNNL_ARG_TO, mto}};

        if (dnnl_primitive_execute(reorder, stream, 2, args) != dnnl_success ||
            dnnl_stream_wait(stream) != dnnl_success) {
            snprintf(err, errlen, "%s: oneDNN weight reorder failed", name);
            goto out;
        }
    }
    rc = SG_OK;
out:
    if (stream != NULL)
        dnnl_stream_destroy(stream);
    if (mfrom != NULL)
        dnnl_memory_destroy(mfrom);
    if (mto != NULL)
        dnnl_memory_destroy(mto);
    if (reorder != NULL)
        dnnl_primitive_destroy(reorder);
    if (rpd != NULL)
        dnnl_primitive_desc_destroy(rpd);
    if (pd != NULL)
        dnnl_primitive_desc_destroy(pd);
    if (attr != NULL)
        dnnl_primitive_attr_destroy(attr);
    return rc;
}

void sg_dnnl_free(struct sg_dnnl_mat *d)
{
    if (d == NULL)
        return;
    if (d->prim != NULL)
        dnnl_primitive_destroy(d->prim);
    if (d->engine != NULL)
        dnnl_engine_destroy(d->engine);
    free(d->wdata);
    free(d->scale);
    free(d->comp);
    free(d);
}

int sg_dnnl_new(struct sg_dnnl_mat **out, const sg_tensor *w, sg_precision prec, char *err,
                size_t errlen)
{
    const int64_t n = w->shape[0];
    const int64_t k = w->shape[1];
    struct sg_dnnl_mat *d;
    size_t row_bytes;
    float *row = NULL;
    void *plain = NULL;
    int rc;

    *out = NULL;
    if (prec != SG_PREC_INT8 && prec != SG_PREC_BF16) {
        snprintf(err, errlen, "%s: oneDNN kernels are for int8 and bf16 only", w->name);
        return SG_EUNSUPPORTED;
    }
    if (sg_dtype_bytes(w->dtype, k, &row_bytes) != SG_OK) {
        snprintf(err, errlen, "%s: rows of %lld elements are not whole %s blocks", w->name,
                 (long long)k, sg_dtype_name(w->dtype));
        return SG_ESHAPE;
    }
    d = calloc(1, sizeof *d);
    row = malloc((size_t)k * sizeof *row);
    /* W^T plain: element (k, j) at j * K + k, i.e. W's own row-major [N, K] bytes (tag ba). */
    plain = malloc((size_t)n * (size_t)k * (prec == SG_PREC_INT8 ? 1 : 2));
    if (d == NULL || row == NULL || plain == NULL) {
        snprintf(err, errlen, "%s: out of memory", w->name);
        rc = SG_ENOMEM;
        goto fail;
    }
    d->n = n;
    d->k = k;
    d->int8 = prec == SG_PREC_INT8;
    if (d->int8) {
        const float qmax = have_vnni() ? 127.0f : 63.0f;

        d->scale = malloc((size_t)n * sizeof *d->scale);
        d->comp = malloc((size_t)n * sizeof *d->comp);
        if (d->scale == NULL || d->comp == NULL) {
            snprintf(err, errlen, "%s: out of memory", w->name);
            rc = SG_ENOMEM;
            goto fail;
        }
        for (int64_t j = 0; j < n; j++) {
            int8_t *q = (int8_t *)plain + j * k;
            float amax = 0.0f;
            float inv;
            int64_t colsum = 0;

            sg_dequant_row(w->dtype, (const uint8_t *)w->data + (size_t)j * row_bytes, row, k);
            for (int64_t i = 0; i < k; i++)
                amax = fmaxf(amax, fabsf(row[i]));
            d->scale[j] = amax > 0.0f ? amax / qmax : 1.0f;
            inv = amax > 0.0f ? qmax / amax : 0.0f;
            for (int64_t i = 0; i < k; i++) {
                const long v = lrintf(row[i] * inv);
                q[i] = (int8_t)(v > (long)qmax ? (long)qmax : v < -(long)qmax ? -(long)qmax : v);
                colsum += q[i];
            }
            d->comp[j] = 128.0f * d->scale[j] * (float)colsum;
        }
        rc = build(d, w->name, dnnl_u8, dnnl_s8, plain, err, errlen);
    } else {
        for (int64_t j = 0; j < n; j++) {
            uint16_t *h = (uint16_t *)plain + j * k;

            sg_dequant_row(w->dtype, (const uint8_t *)w->data + (size_t)j * row_bytes, row, k);
            for (int64_t i = 0; i < k; i++)
                h[i] = sg_f32_to_bf16(row[i]);
        }
        rc = build(d, w->name, dnnl_bf16, dnnl_bf16, plain, err, errlen);
    }
    if (rc != SG_OK)
        goto fail;
    free(row);
    free(plain);
    *out = d;
    return SG_OK;
fail:
    free(row);
    free(plain);
    sg_dnnl_free(d);
    return rc;
}

size_t sg_dnnl_bytes(const struct sg_dnnl_mat *d)
{
    return d->wbytes + (d->int8 ? 2 * (size_t)d->n * sizeof(float) : 0);
}

/* ---- Products --------------------------------------------------------------------------------- */

/* Quantize rows of x: u[i, k] = round(x / s) + 128, s[i] = max|x[i, :]| / 127. */
static void quantize_rows(const float *x, size_t m, size_t k, uint8_t *u, float *s)
{
    for (size_t i = 0; i < m; i++) {
        const float *xi = x + i * k;
        uint8_t *ui = u + i * k;
        float amax = 0.0f;
        float inv;

        for (size_t j = 0; j < k; j++)
            amax = fmaxf(amax, fabsf(xi[j]));
        s[i] = amax / 127.0f;
        inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (size_t j = 0; j < k; j++)
            ui[j] = (uint8_t)(lrintf(xi[j] * inv) + 128);
    }
}

/* Run the primitive on m rows: src (u8 or bf16) -> y (f32). Returns a dnnl status. */
static dnnl_status_t run(const struct sg_dnnl_mat *d, const void *src, size_t m, float *y)
{
    dnnl_memory_desc_t smd, dmd;
    dnnl_dims_t sdims = {(dnnl_dim_t)m, d->k};
    dnnl_dims_t ddims = {(dnnl_dim_t)m, d->n};
    dnnl_memory_t ms = NULL, mw = NULL, md = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_status_t st;

    st = dnnl_memory_desc_init_by_tag(&smd, 2, sdims, d->int8 ? dnnl_u8 : dnnl_bf16, dnnl_ab);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&dmd, 2, ddims, dnnl_f32, dnnl_ab);
    if (st == dnnl_success)
        st = dnnl_memory_create(&ms, &smd, d->engine, (void *)(uintptr_t)src);
    if (st == dnnl_success)
        st = dnnl_memory_create(&mw, &d->wmd, d->engine, d->wdata);
    if (st == dnnl_success)
        st = dnnl_memory_create(&md, &dmd, d->engine, y);
    if (st == dnnl_success)
        st = dnnl_stream_create(&stream, d->engine, dnnl_stream_default_flags);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[3] = {
            {DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};

        st = dnnl_primitive_execute(d->prim, stream, 3, args);
        if (st == dnnl_success)
            st = dnnl_stream_wait(stream);
    }
    if (stream != NULL)
        dnnl_stream_destroy(stream);
    if (ms != NULL)
        dnnl_memory_destroy(ms);
    if (mw != NULL)
        dnnl_memory_destroy(mw);
    if (md != NULL)
        dnnl_memory_destroy(md);
    return st;
}

int sg_dnnl_mul(const struct sg_dnnl_mat *d, const float *x, size_t m, float *y, sg_pool *pool)
{
    const size_t k = (size_t)d->k;
    const size_t n = (size_t)d->n;
    const size_t esize = d->int8 ? 1 : 2;
    _Alignas(64) unsigned char stack[STACK_CHUNK];
    float sx[STACK_CHUNK / 64];
    unsigned char *buf = stack;
    size_t cap = sizeof stack;
    size_t chunk;

    set_threads(sg_pool_n_threads(pool));
    if (pool != NULL) {
        size_t bytes = 0;
        void *s = sg_pool_scratch(pool, 0, &bytes);

        if (s != NULL && bytes > cap) {
            buf = s;
            cap = bytes;
        }
    }
    chunk = cap / (k * esize);
    if (chunk > sizeof sx / sizeof sx[0])
        chunk = sizeof sx / sizeof sx[0];
    if (chunk == 0)
        return SG_ERANGE; /* K beyond 128 K elements: refused at creation, never here */
    for (size_t i0 = 0; i0 < m; i0 += chunk) {
        const size_t mc = m - i0 < chunk ? m - i0 : chunk;
        float *yc = y + i0 * n;

        if (d->int8) {
            quantize_rows(x + i0 * k, mc, k, buf, sx);
        } else {
            uint16_t *h = (uint16_t *)(void *)buf;

            for (size_t i = 0; i < mc * k; i++)
                h[i] = sg_f32_to_bf16(x[i0 * k + i]);
        }
        if (run(d, buf, mc, yc) != dnnl_success)
            return SG_EUNSUPPORTED;
        if (d->int8) {
            for (size_t i = 0; i < mc; i++) {
                float *yi = yc + i * n;
                const float s = sx[i];

                for (size_t j = 0; j < n; j++)
                    yi[j] = s * (yi[j] - d->comp[j]);
            }
        }
    }
    return SG_OK;
}
