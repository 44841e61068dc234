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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dnnl.h>

#include "cpu.h"
#include "tensor.h"

#define STACK_CHUNK (128 * 1024) /* bytes of quantized x when the pool has no scratch */

#define CHUNK_COLS 256 /* output columns per oneDNN call; the unit of work of a pool task */

struct sg_dnnl_mat {
    int64_t n;
    int64_t k;
    int int8;                   /* 1: u8s8, 0: bf16 */
    dnnl_engine_t engine;
    int64_t nc;                 /* columns per chunk (the last may have fewer) */
    size_t n_chunks;
    dnnl_primitive_t prim[2];   /* matmuls with runtime M: [0] nc columns, [1] the tail */
    dnnl_memory_desc_t wmd[2];  /* their weights, in the layout oneDNN chose */
    size_t wstride;             /* bytes from one chunk's weights to the next */
    void *wdata;                /* every chunk's reordered weights, in blob */
    size_t wbytes;
    float *scale;               /* int8: s_w[N], in blob */
    float *comp;                /* int8: 128 * colsum[j] (in units of s_w[j]), [N], in blob */
    void *blob;                 /* header, scale, comp, wdata: owned, or borrowed (adopted) */
    int borrowed;               /* 1: blob is someone else's bytes (a pack cache mapping) */
};

/*
 * A weight's bytes, as one blob (what the pack cache stores): this header (the weights'
 * memory descriptors, so that a cached layout is used only when oneDNN picks the very same
 * one), then s_w and comp (int8), then the reordered weights; each part 64-byte aligned.
 */
#define BLOB_MAGIC 0x31424f4c424e4e44ull /* "DNNBLOB1" */
struct blob_hdr {
    uint64_t magic;
    uint64_t n_md;
    dnnl_memory_desc_t wmd[2];
};

static size_t align64(size_t x)
{
    return (x + 63) / 64 * 64;
}

static size_t blob_scales_off(void)
{
    return align64(sizeof(struct blob_hdr));
}

static size_t blob_data_off(const struct sg_dnnl_mat *d)
{
    return blob_scales_off() + (d->int8 ? align64(2 * (size_t)d->n * sizeof(float)) : 0);
}

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
    return sg_cpu_has(SG_CPU_AVX512_VNNI);
}

/* Create the matmul primitive for `cols` output columns (src runtime M x K, weights K x cols in
 * format any, dst f32 M x cols with a runtime row stride, so that a chunk writes straight into
 * its columns of y) and its weights descriptor. */
static int make_prim(struct sg_dnnl_mat *d, int64_t cols, dnnl_data_type_t sdt,
                     dnnl_data_type_t wdt, dnnl_primitive_t *prim, dnnl_memory_desc_t *wmd,
                     const char *name, char *err, size_t errlen)
{
    dnnl_memory_desc_t src, wany, dst;
    dnnl_dims_t sdims = {DNNL_RUNTIME_DIM_VAL, d->k};
    dnnl_dims_t wdims = {d->k, cols};
    dnnl_dims_t ddims = {DNNL_RUNTIME_DIM_VAL, cols};
    dnnl_dims_t dstrides = {DNNL_RUNTIME_DIM_VAL, 1};
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st;

    if (dnnl_memory_desc_init_by_tag(&src, 2, sdims, sdt, dnnl_ab) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&wany, 2, wdims, wdt, dnnl_format_tag_any) != dnnl_success ||
        dnnl_memory_desc_init_by_strides(&dst, 2, ddims, dnnl_f32, dstrides) != dnnl_success) {
        snprintf(err, errlen, "%s: oneDNN memory descriptors refused", name);
        return SG_EUNSUPPORTED;
    }
    st = dnnl_matmul_desc_init(&md, &src, &wany, NULL, &dst);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&pd, &md, NULL, d->engine, NULL);
    if (st != dnnl_success)
        return fail(SG_EUNSUPPORTED, err, errlen, name,
                    d->int8 ? "u8s8 matmul" : "bf16 matmul (no bf16 on this CPU?)", st);
    *wmd = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    st = dnnl_primitive_create(prim, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success)
        return fail(SG_EUNSUPPORTED, err, errlen, name, "primitive creation", st);
    return SG_OK;
}

/* Reorder the plain weights of columns j0..j0+cols (W^T, tag ba: column j at j*K) into `to`. */
static int reorder_chunk(struct sg_dnnl_mat *d, dnnl_data_type_t wdt, const void *plain,
                         int64_t j0, int64_t cols, const dnnl_memory_desc_t *wmd, void *to,
                         dnnl_stream_t stream)
{
    const size_t esize = d->int8 ? 1 : 2;
    dnnl_dims_t wdims = {d->k, cols};
    dnnl_memory_desc_t wplain;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t mfrom = NULL, mto = NULL;
    dnnl_status_t st;

    st = dnnl_memory_desc_init_by_tag(&wplain, 2, wdims, wdt, dnnl_ba);
    if (st == dnnl_success)
        st = dnnl_reorder_primitive_desc_create(&rpd, &wplain, d->engine, wmd, d->engine, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&reorder, rpd);
    if (st == dnnl_success)
        st = dnnl_memory_create(&mfrom, &wplain, d->engine,
                                (void *)((uintptr_t)plain + (size_t)(j0 * d->k) * esize));
    if (st == dnnl_success)
        st = dnnl_memory_create(&mto, wmd, d->engine, to);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, mfrom}, {DNNL_ARG_TO, mto}};

        st = dnnl_primitive_execute(reorder, stream, 2, args);
        if (st == dnnl_success)
            st = dnnl_stream_wait(stream);
    }
    if (mfrom != NULL)
        dnnl_memory_destroy(mfrom);
    if (mto != NULL)
        dnnl_memory_destroy(mto);
    if (reorder != NULL)
        dnnl_primitive_destroy(reorder);
    if (rpd != NULL)
        dnnl_primitive_desc_destroy(rpd);
    return st == dnnl_success ? SG_OK : SG_EUNSUPPORTED;
}

/* Create the engine and the primitives, and size the reordered weights (d->wstride, wbytes). */
static int make_prims(struct sg_dnnl_mat *d, const char *name, dnnl_data_type_t sdt,
                      dnnl_data_type_t wdt, char *err, size_t errlen)
{
    const int64_t tail = d->n % d->nc;
    size_t full_bytes;
    size_t tail_bytes = 0;
    int rc;

    if (dnnl_engine_create(&d->engine, dnnl_cpu, 0) != dnnl_success) {
        snprintf(err, errlen, "%s: oneDNN has no CPU engine", name);
        return SG_EUNSUPPORTED;
    }
    set_threads(1);
    rc = make_prim(d, d->nc, sdt, wdt, &d->prim[0], &d->wmd[0], name, err, errlen);
    if (rc == SG_OK && tail > 0)
        rc = make_prim(d, tail, sdt, wdt, &d->prim[1], &d->wmd[1], name, err, errlen);
    if (rc != SG_OK)
        return rc;
    full_bytes = dnnl_memory_desc_get_size(&d->wmd[0]);
    if (tail > 0)
        tail_bytes = dnnl_memory_desc_get_size(&d->wmd[1]);
    d->wstride = (full_bytes + 63) / 64 * 64;
    d->wbytes = d->wstride * (size_t)(d->n / d->nc) + (tail_bytes + 63) / 64 * 64;
    return SG_OK;
}

/* Reorder `plain` (W^T, plain) chunk by chunk into d->wdata. */
static int reorder_all(struct sg_dnnl_mat *d, const char *name, dnnl_data_type_t wdt,
                       const void *plain, char *err, size_t errlen)
{
    const int64_t tail = d->n % d->nc;
    dnnl_stream_t stream = NULL;
    int rc = SG_OK;

    if (dnnl_stream_create(&stream, d->engine, dnnl_stream_default_flags) != dnnl_success) {
        snprintf(err, errlen, "%s: oneDNN stream creation failed", name);
        return SG_EUNSUPPORTED;
    }
    for (size_t c = 0; c < d->n_chunks && rc == SG_OK; c++) {
        const int64_t j0 = (int64_t)c * d->nc;
        const int is_tail = j0 + d->nc > d->n;

        rc = reorder_chunk(d, wdt, plain, j0, is_tail ? tail : d->nc, &d->wmd[is_tail],
                           (char *)d->wdata + c * d->wstride, stream);
        if (rc != SG_OK)
            snprintf(err, errlen, "%s: oneDNN weight reorder failed", name);
    }
    dnnl_stream_destroy(stream);
    return rc;
}

/* Point d's weights, scales and compensations into the blob at `b`. */
static void use_blob(struct sg_dnnl_mat *d, void *b)
{
    d->blob = b;
    d->wdata = (char *)b + blob_data_off(d);
    if (d->int8) {
        d->scale = (float *)(void *)((char *)b + blob_scales_off());
        d->comp = d->scale + d->n;
    }
}

int sg_dnnl_adopt(struct sg_dnnl_mat *d, const void *blob)
{
    const size_t n_md = d->n % d->nc ? 2 : 1;
    struct blob_hdr h;
    int ok;

    memcpy(&h, blob, sizeof h);
    ok = h.magic == BLOB_MAGIC && h.n_md == n_md;
    for (size_t i = 0; ok && i < n_md; i++)
        ok = dnnl_memory_desc_equal(&h.wmd[i], &d->wmd[i]);
    if (!ok)
        return 0;
    if (!d->borrowed)
        free(d->blob);
    use_blob(d, (void *)(uintptr_t)blob);
    d->borrowed = 1;
    return 1;
}

/* 1 if oneDNN can create a bf16 matmul here (AVX-512 BF16, AMX): a cheap probe before
 * converting a whole weight. */
static int bf16_supported(void)
{
    struct sg_dnnl_mat probe;
    dnnl_primitive_t prim = NULL;
    dnnl_memory_desc_t wmd;
    char err[128];
    int ok;

    memset(&probe, 0, sizeof probe);
    probe.n = 16;
    probe.k = 64;
    if (dnnl_engine_create(&probe.engine, dnnl_cpu, 0) != dnnl_success)
        return 0;
    ok = make_prim(&probe, 16, dnnl_bf16, dnnl_bf16, &prim, &wmd, "probe", err, sizeof err) ==
         SG_OK;
    if (prim != NULL)
        dnnl_primitive_destroy(prim);
    dnnl_engine_destroy(probe.engine);
    return ok;
}

void sg_dnnl_free(struct sg_dnnl_mat *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i < 2; i++)
        if (d->prim[i] != NULL)
            dnnl_primitive_destroy(d->prim[i]);
    if (d->engine != NULL)
        dnnl_engine_destroy(d->engine);
    if (!d->borrowed)
        free(d->blob);
    free(d);
}

int sg_dnnl_plan(struct sg_dnnl_mat **out, const sg_tensor *w, sg_precision prec, char *err,
                 size_t errlen)
{
    const int64_t n = w->shape[0];
    const int64_t k = w->shape[1];
    struct sg_dnnl_mat *d;
    size_t row_bytes;
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
    if (prec == SG_PREC_BF16 && !bf16_supported()) {
        snprintf(err, errlen, "%s: oneDNN has no bf16 matmul on this CPU", w->name);
        return SG_EUNSUPPORTED;
    }
    d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(err, errlen, "%s: out of memory", w->name);
        return SG_ENOMEM;
    }
    d->n = n;
    d->k = k;
    d->int8 = prec == SG_PREC_INT8;
    d->nc = n < CHUNK_COLS ? n : CHUNK_COLS;
    d->n_chunks = (size_t)((n + d->nc - 1) / d->nc);
    rc = make_prims(d, w->name, d->int8 ? dnnl_u8 : dnnl_bf16, d->int8 ? dnnl_s8 : dnnl_bf16,
                    err, errlen);
    if (rc != SG_OK) {
        sg_dnnl_free(d);
        return rc;
    }
    *out = d;
    return SG_OK;
}

size_t sg_dnnl_blob_bytes(const struct sg_dnnl_mat *d)
{
    return blob_data_off(d) + d->wbytes;
}

const void *sg_dnnl_blob(const struct sg_dnnl_mat *d)
{
    return d->blob;
}

/* Quantize W's rows to int8 (one scale per row, round half away from zero) into `plain`
 * ([N, K] row-major), filling d's scales and compensations; `row` holds K floats. */
static void quantize_rows(struct sg_dnnl_mat *d, const sg_tensor *w, size_t row_bytes,
                          float *row, int8_t *plain)
{
    const float qmax = have_vnni() ? 127.0f : 63.0f;
    const int64_t k = d->k;

    for (int64_t j = 0; j < d->n; j++) {
        int8_t *q = plain + j * k;
        float amax = 0.0f;
        float inv;
        int64_t colsum = 0;

        sg_dequant_row(w->dtype, (const uint8_t *)w->data + (size_t)j * row_bytes, row, k);
        for (int64_t i = 0; i < k; i++)
            amax = fmaxf(amax, fabsf(row[i]));
        d->scale[j] = amax > 0.0f ? amax / qmax : 1.0f;
        inv = amax > 0.0f ? qmax / amax : 0.0f;
        for (int64_t i = 0; i < k; i++) {
            /* |row * inv| <= qmax: round half away from zero, inline (no libm call). */
            const float v = row[i] * inv;
            int qi = (int)(v + (v >= 0.0f ? 0.5f : -0.5f));

            qi = qi > (int)qmax ? (int)qmax : qi < -(int)qmax ? -(int)qmax : qi;
            q[i] = (int8_t)qi;
            colsum += qi;
        }
        d->comp[j] = 128.0f * (float)colsum;
    }
}

int sg_dnnl_pack(struct sg_dnnl_mat *d, const sg_tensor *w, char *err, size_t errlen)
{
    const int64_t n = d->n;
    const int64_t k = d->k;
    size_t row_bytes = 0;
    float *row = malloc((size_t)k * sizeof *row);
    /* W^T plain: element (k, j) at j * K + k, i.e. W's own row-major [N, K] bytes (tag ba). */
    void *plain = malloc((size_t)n * (size_t)k * (d->int8 ? 1 : 2));
    void *blob = aligned_alloc(64, sg_dnnl_blob_bytes(d));
    struct blob_hdr h;
    int rc;

    (void)sg_dtype_bytes(w->dtype, k, &row_bytes); /* checked by sg_dnnl_plan */
    if (row == NULL || plain == NULL || blob == NULL) {
        snprintf(err, errlen, "%s: out of memory for %zu bytes of weights", w->name,
                 sg_dnnl_blob_bytes(d));
        free(blob);
        rc = SG_ENOMEM;
        goto out;
    }
    memset(&h, 0, sizeof h);
    h.magic = BLOB_MAGIC;
    h.n_md = d->n % d->nc ? 2 : 1;
    memcpy(h.wmd, d->wmd, h.n_md * sizeof *h.wmd);
    memset(blob, 0, blob_data_off(d));
    memcpy(blob, &h, sizeof h);
    if (!d->borrowed)
        free(d->blob);
    d->borrowed = 0;
    use_blob(d, blob);
    if (d->int8) {
        quantize_rows(d, w, row_bytes, row, plain);
        rc = reorder_all(d, w->name, dnnl_s8, plain, err, errlen);
    } else {
        for (int64_t j = 0; j < n; j++) {
            uint16_t *hw = (uint16_t *)plain + j * k;

            sg_dequant_row(w->dtype, (const uint8_t *)w->data + (size_t)j * row_bytes, row, k);
            for (int64_t i = 0; i < k; i++)
                hw[i] = sg_f32_to_bf16(row[i]);
        }
        rc = reorder_all(d, w->name, dnnl_bf16, plain, err, errlen);
    }
out:
    free(row);
    free(plain);
    return rc;
}

int sg_dnnl_new(struct sg_dnnl_mat **out, const sg_tensor *w, sg_precision prec, char *err,
                size_t errlen)
{
    int rc = sg_dnnl_plan(out, w, prec, err, errlen);

    if (rc == SG_OK && (rc = sg_dnnl_pack(*out, w, err, errlen)) != SG_OK) {
        sg_dnnl_free(*out);
        *out = NULL;
    }
    return rc;
}

void sg_dnnl_layout(char *buf, size_t cap)
{
    const dnnl_version_t *v = dnnl_version();

    snprintf(buf, cap, "onednn %d.%d.%d %s cpu-runtime %u vnni %d", v->major, v->minor, v->patch,
             v->hash != NULL ? v->hash : "?", v->cpu_runtime, have_vnni());
}

size_t sg_dnnl_bytes(const struct sg_dnnl_mat *d)
{
    return d->wbytes + (d->int8 ? 2 * (size_t)d->n * sizeof(float) : 0);
}

/* ---- Products --------------------------------------------------------------------------------- */

size_t sg_dnnl_scratch(const struct sg_dnnl_mat *d, size_t m)
{
    /* Quantized (u8) or rounded (bf16) rows of x, then the row scales. */
    return m * (size_t)d->k * (d->int8 ? 1 : 2) + m * sizeof(float) + 64;
}

struct quant_job {
    const struct sg_dnnl_mat *d;
    const float *x;
    size_t m;
    void *buf;  /* [m, K] u8 or bf16 */
    float *sx;  /* [m] */
};

/* Rows of x to u8, u = round(x / s) + 128 with s = max|x| / 127 (int8), or to bf16. */
static void quant_task(void *arg, size_t i, int thread)
{
    const struct quant_job *q = arg;
    const size_t k = (size_t)q->d->k;
    const float *xi = q->x + i * k;

    (void)thread;
    if (q->d->int8) {
        uint8_t *ui = (uint8_t *)q->buf + i * k;
        float amax = 0.0f;
        float inv;

        for (size_t j = 0; j < k; j++)
            amax = fmaxf(amax, fabsf(xi[j]));
        q->sx[i] = amax / 127.0f;
        inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        /* x * inv is within [-127, 127]: adding 128.5 and truncating rounds half up. */
        for (size_t j = 0; j < k; j++)
            ui[j] = (uint8_t)(int)(xi[j] * inv + 128.5f);
    } else {
        uint16_t *hi = (uint16_t *)q->buf + i * k;

        for (size_t j = 0; j < k; j++)
            hi[j] = sg_f32_to_bf16(xi[j]);
    }
}

struct mm_job {
    const struct sg_dnnl_mat *d;
    const void *buf;
    const float *sx;
    size_t m;
    size_t rows_per_task; /* rows of x per task: m, or a block of them (mm_row_blocks) */
    float *y;
    atomic_int failed; /* set by a task whose oneDNN call failed */
};

/*
 * Row blocks per chunk of columns, so that a product's tasks (chunk, row block) share out
 * evenly: the fewest blocks for which the threads' last round of tasks is at least 95% full
 * (or the best found), in blocks of at least 32 rows. 1 wherever the chunks alone balance:
 * k and v of the 2B shape have 4 chunks, fine for 2 threads, while at 32 threads 28 would
 * idle; o and down have 9, which leave one of 2 threads idle a ninth of their time.
 * docs/BENCHMARKS.md ("Threads") and tools/partition_sim.py show the balance for 1..64 threads.
 */
static size_t mm_row_blocks(size_t n_chunks, size_t m, int threads)
{
    const size_t t = threads > 0 ? (size_t)threads : 1;
    const size_t max_rb = m / 32 > 0 ? m / 32 : 1;
    size_t best = 1;
    double best_loss = 1e9;

    for (size_t rb = 1; rb <= max_rb && rb <= 64; rb++) {
        const size_t tasks = n_chunks * rb;
        const double loss = (double)((tasks + t - 1) / t * t) / (double)tasks; /* >= 1 */

        if (loss < best_loss - 1e-9) {
            best = rb;
            best_loss = loss;
        }
        if (loss <= 1.0 / 0.95)
            break;
    }
    return best;
}

/* One chunk of columns (and block of rows) on this thread: oneDNN (single-threaded here), then
 * the scales. Task t is chunk t % n_chunks of row block t / n_chunks. */
static void mm_task(void *arg, size_t t, int thread)
{
    struct mm_job *j = arg;
    const struct sg_dnnl_mat *d = j->d;
    const size_t c = t % d->n_chunks;
    const size_t r0 = t / d->n_chunks * j->rows_per_task;
    const size_t m = j->m - r0 < j->rows_per_task ? j->m - r0 : j->rows_per_task;
    const int64_t j0 = (int64_t)c * d->nc;
    const int is_tail = j0 + d->nc > d->n;
    const int64_t cols = is_tail ? d->n - j0 : d->nc;
    const unsigned char *src =
        (const unsigned char *)j->buf + r0 * (size_t)d->k * (d->int8 ? 1 : 2);
    const float *sx = j->sx + r0;
    dnnl_memory_desc_t smd, dmd;
    dnnl_dims_t sdims = {(dnnl_dim_t)m, d->k};
    dnnl_dims_t ddims = {(dnnl_dim_t)m, cols};
    dnnl_dims_t dstrides = {d->n, 1};
    dnnl_memory_t ms = NULL, mw = NULL, md = NULL;
    dnnl_stream_t stream = NULL;
    dnnl_status_t st;
    float *yc = j->y + r0 * (size_t)d->n + j0;

    (void)thread;
    set_threads(1);
    st = dnnl_memory_desc_init_by_tag(&smd, 2, sdims, d->int8 ? dnnl_u8 : dnnl_bf16, dnnl_ab);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_strides(&dmd, 2, ddims, dnnl_f32, dstrides);
    if (st == dnnl_success)
        st = dnnl_memory_create(&ms, &smd, d->engine, (void *)(uintptr_t)src);
    if (st == dnnl_success)
        st = dnnl_memory_create(&mw, &d->wmd[is_tail], d->engine,
                                (char *)d->wdata + c * d->wstride);
    if (st == dnnl_success)
        st = dnnl_memory_create(&md, &dmd, d->engine, yc);
    if (st == dnnl_success)
        st = dnnl_stream_create(&stream, d->engine, dnnl_stream_default_flags);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[3] = {
            {DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}};

        st = dnnl_primitive_execute(d->prim[is_tail], stream, 3, args);
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
    if (st != dnnl_success) {
        atomic_store(&j->failed, 1);
        return;
    }
    if (d->int8) {
        /* y = s_x[i] * s_w[j] * (acc - 128 colsum[j]): acc and 128 colsum are integers below
         * 2^31, their difference is exact in f32 up to 2^24 and rounded once beyond. */
        const float *sw = d->scale + j0;
        const float *cp = d->comp + j0;

        for (size_t i = 0; i < m; i++) {
            float *yi = yc + i * (size_t)d->n;
            const float s = sx[i];

            for (int64_t l = 0; l < cols; l++)
                yi[l] = (yi[l] - cp[l]) * (s * sw[l]);
        }
    }
}

int sg_dnnl_mul(const struct sg_dnnl_mat *d, const float *x, size_t m, float *y, sg_pool *pool)
{
    const size_t k = (size_t)d->k;
    const size_t per_row = k * (d->int8 ? 1 : 2) + sizeof(float);
    _Alignas(64) unsigned char stack[STACK_CHUNK];
    unsigned char *buf = stack;
    size_t cap = sizeof stack;
    size_t chunk;

    if (pool != NULL) {
        size_t bytes = 0;
        void *s = sg_pool_scratch(pool, 0, &bytes);

        if (s != NULL && bytes > cap) {
            buf = s;
            cap = bytes;
        }
    }
    chunk = (cap - 64) / per_row;
    if (chunk == 0)
        return SG_ERANGE; /* K beyond the stack chunk: refused at creation, never here */
    for (size_t i0 = 0; i0 < m; i0 += chunk) {
        const size_t mc = m - i0 < chunk ? m - i0 : chunk;
        float *sx = (float *)(void *)(buf + (mc * k * (d->int8 ? 1 : 2) + 63) / 64 * 64);
        struct quant_job q = {d, x + i0 * k, mc, buf, sx};
        const size_t rb = mm_row_blocks(d->n_chunks, mc, sg_pool_n_threads(pool));
        struct mm_job j = {d, buf, sx, mc, (mc + rb - 1) / rb, y + i0 * (size_t)d->n, 0};

        atomic_init(&j.failed, 0);

        sg_pool_run(pool, quant_task, &q, mc);
        sg_pool_run(pool, mm_task, &j,
                    d->n_chunks * ((mc + j.rows_per_task - 1) / j.rows_per_task));
        if (atomic_load(&j.failed))
            return SG_ECOMPUTE;
    }
    return SG_OK;
}
