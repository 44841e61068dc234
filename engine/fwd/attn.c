/*
 * attn.c: Gemma attention as blocked products over the KV cache (see attn.h for the contract
 * and the determinism argument). Reference: Hugging Face Gemma2Attention, eager path:
 *
 *     attn_weights = torch.matmul(query, key.transpose(2, 3)) * self.scaling
 *     attn_weights = attn_weights / softcap; attn_weights = torch.tanh(attn_weights) * softcap
 *     attn_weights = attn_weights + causal_mask          (sliding layers: also the window)
 *     attn_weights = softmax(attn_weights, dim=-1, dtype=torch.float32)
 *     attn_output = torch.matmul(attn_weights, value)
 *
 * A block is up to QW query vectors (rows x heads of one GQA group, consecutive rows of one
 * segment). Its keys are the union of what its rows see: trunk slots T0..trunk_len-1, then
 * segment slots seg_slot+L0..seg_slot+L1, numbered 0..nk-1 in position order. Each query
 * vector sees one contiguous range lo..hi of those numbers (a window cuts the front, causality
 * the back), so its mask is two comparisons.
 *
 *   Qt[d][a]  = q_a[d]                               [head_dim][QW], zero past the block
 *   St[k][a]  = softcap(scale * sum_d K_k[d] Qt[d][a]) or -inf outside lo_a..hi_a
 *   St[k][a]  = exp(St[k][a] - max_k St[k][a]),  sum_a = sum_k St[k][a] (double, k in order)
 *   out_a[d]  = (sum_k St[k][a] V_k[d]) * (1 / sum_a)
 */
#include "attn.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "sg_engine.h"
#include "vmath.h"

#define QW 16 /* query vectors per block: the lanes of a score row */
#define KR 6  /* keys per score tile */
#define AR 6  /* query vectors per value tile */
#define KB 32 /* keys per value block (32 x head_dim floats stay in L2 across tiles) */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SG_ATTN_AVX2 1
#include <immintrin.h>
#define SG_AVX2 __attribute__((target("avx2,fma")))
#else
#define SG_ATTN_AVX2 0
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define SG_UNROLL _Pragma("GCC unroll 8")
#elif defined(__clang__)
#define SG_UNROLL _Pragma("unroll")
#else
#define SG_UNROLL
#endif

struct block {
    size_t r0; /* first row of the block's run (rows sharing trunk_len and seg_slot) */
    size_t a0; /* first query vector, counted from r0: a = (row - r0) * group + head in group */
    size_t na; /* query vectors, 1..QW */
};

struct sg_attn_plan {
    sg_attn_shape s;
    size_t group;       /* query heads per KV head */
    size_t max_rows;
    size_t max_keys;
    int n_threads;
    int avx2;
    float *scores;      /* [n_threads][max_keys][QW] */
    float *qt;          /* [n_threads][head_dim][QW] */
    struct block *blocks;
    size_t max_blocks;
};

struct job {
    const sg_attn_plan *p;
    const sg_attn_row *rows;
    const float *q;
    size_t q_stride;
    const float *k;
    const float *v;
    size_t kv_stride;
    size_t window;
    float *out;
    size_t out_stride;
    size_t n_blocks;
};

/* ---- Micro-kernels: portable ------------------------------------------------------------- */

/* St[i][l] = sum_d kp[i][d] Qt[d][l] for i < r keys, all QW lanes, d in order. */
static void score_tile_port(const float *const *kp, size_t r, const float *qt, size_t hd,
                            float *st)
{
    for (size_t i = 0; i < r; i++) {
        float acc[QW] = {0};

        for (size_t d = 0; d < hd; d++) {
            const float kd = kp[i][d];

            for (int l = 0; l < QW; l++)
                acc[l] += kd * qt[d * QW + l];
        }
        memcpy(st + i * QW, acc, sizeof acc);
    }
}

/* o[a][d] += sum_k p[k][a] vp[k][d] for a < na, k < nk in order. */
static void value_tile_port(const float *const *vp, size_t nk, const float *p, float *const *o,
                            size_t na, size_t hd)
{
    for (size_t k = 0; k < nk; k++)
        for (size_t a = 0; a < na; a++) {
            const float w = p[k * QW + a];
            float *oa = o[a];

            for (size_t d = 0; d < hd; d++)
                oa[d] += w * vp[k][d];
        }
}

/* ---- Micro-kernels: AVX2 + FMA ----------------------------------------------------------- */

#if SG_ATTN_AVX2
/* R keys x (8 NV) lanes: per d, NV loads of Qt and R broadcasts feed R NV FMAs. */
SG_AVX2 static inline __attribute__((always_inline)) void
score_avx2_rn(const float *const *kp, const float *qt, size_t hd, float *st, const int R,
              const int NV)
{
    __m256 acc[KR][2];

    SG_UNROLL
    for (int i = 0; i < R; i++) {
        acc[i][0] = _mm256_setzero_ps();
        acc[i][1] = _mm256_setzero_ps();
    }
    for (size_t d = 0; d < hd; d++) {
        const __m256 q0 = _mm256_loadu_ps(qt + d * QW);
        const __m256 q1 = NV == 2 ? _mm256_loadu_ps(qt + d * QW + 8) : q0;

        SG_UNROLL
        for (int i = 0; i < R; i++) {
            const __m256 kb = _mm256_broadcast_ss(kp[i] + d);

            acc[i][0] = _mm256_fmadd_ps(kb, q0, acc[i][0]);
            if (NV == 2)
                acc[i][1] = _mm256_fmadd_ps(kb, q1, acc[i][1]);
        }
    }
    SG_UNROLL
    for (int i = 0; i < R; i++) {
        _mm256_storeu_ps(st + i * QW, acc[i][0]);
        if (NV == 2)
            _mm256_storeu_ps(st + i * QW + 8, acc[i][1]);
    }
}

SG_AVX2 static void score_tile_avx2(const float *const *kp, size_t r, const float *qt, size_t hd,
                                    size_t nv, float *st)
{
#define SG_SCORE_CASE(R)                                                                   \
    case R:                                                                                \
        if (nv == 2)                                                                       \
            score_avx2_rn(kp, qt, hd, st, R, 2);                                           \
        else                                                                               \
            score_avx2_rn(kp, qt, hd, st, R, 1);                                           \
        break;
    switch (r) {
    SG_SCORE_CASE(1)
    SG_SCORE_CASE(2)
    SG_SCORE_CASE(3)
    SG_SCORE_CASE(4)
    SG_SCORE_CASE(5)
    SG_SCORE_CASE(6)
    default:
        break;
    }
#undef SG_SCORE_CASE
}

/* R query vectors x (8 DW) values: per key, DW loads of V and R broadcasts of p. */
SG_AVX2 static inline __attribute__((always_inline)) void
value_avx2_rd(const float *const *vp, size_t nk, const float *p, float *const *o, size_t d,
              const int R, const int DW)
{
    __m256 acc[AR][2];

    SG_UNROLL
    for (int a = 0; a < R; a++) {
        acc[a][0] = _mm256_loadu_ps(o[a] + d);
        acc[a][1] = DW == 2 ? _mm256_loadu_ps(o[a] + d + 8) : acc[a][0];
    }
    for (size_t k = 0; k < nk; k++) {
        const __m256 v0 = _mm256_loadu_ps(vp[k] + d);
        const __m256 v1 = DW == 2 ? _mm256_loadu_ps(vp[k] + d + 8) : v0;

        SG_UNROLL
        for (int a = 0; a < R; a++) {
            const __m256 w = _mm256_broadcast_ss(p + k * QW + a);

            acc[a][0] = _mm256_fmadd_ps(w, v0, acc[a][0]);
            if (DW == 2)
                acc[a][1] = _mm256_fmadd_ps(w, v1, acc[a][1]);
        }
    }
    SG_UNROLL
    for (int a = 0; a < R; a++) {
        _mm256_storeu_ps(o[a] + d, acc[a][0]);
        if (DW == 2)
            _mm256_storeu_ps(o[a] + d + 8, acc[a][1]);
    }
}

/* head_dim % 8 == 0 (the plan checks it). */
SG_AVX2 static void value_tile_avx2(const float *const *vp, size_t nk, const float *p,
                                    float *const *o, size_t na, size_t hd)
{
    size_t d = 0;

#define SG_VALUE_CASE(R, DW)                                                               \
    case R:                                                                                \
        value_avx2_rd(vp, nk, p, o, d, R, DW);                                             \
        break;
    for (; d + 16 <= hd; d += 16) {
        switch (na) {
        SG_VALUE_CASE(1, 2)
        SG_VALUE_CASE(2, 2)
        SG_VALUE_CASE(3, 2)
        SG_VALUE_CASE(4, 2)
        SG_VALUE_CASE(5, 2)
        SG_VALUE_CASE(6, 2)
        default:
            break;
        }
    }
    if (d < hd) {
        switch (na) {
        SG_VALUE_CASE(1, 1)
        SG_VALUE_CASE(2, 1)
        SG_VALUE_CASE(3, 1)
        SG_VALUE_CASE(4, 1)
        SG_VALUE_CASE(5, 1)
        SG_VALUE_CASE(6, 1)
        default:
            break;
        }
    }
#undef SG_VALUE_CASE
}
#endif /* SG_ATTN_AVX2 */

/* ---- One block --------------------------------------------------------------------------- */

/* st[k][lane] = exp(st[k][lane] - mx[lane]) for nk keys of nv vectors of 8 lanes, and
 * sum[lane] += each, keys in position order (inlined into block_body, like it). */
static inline __attribute__((always_inline)) void exp_and_sum(float *st, size_t nk, size_t nv,
                                                              const sg_v8f mx[2], double *sum)
{
    for (size_t kk = 0; kk < nk; kk++)
        for (size_t v = 0; v < nv; v++) {
            float *sp = st + kk * QW + v * 8;
            sg_v8f s;

            memcpy(&s, sp, sizeof s);
            s = s - mx[v];
            s = sg_v8_exp(&s);
            memcpy(sp, &s, sizeof s);
            for (int l = 0; l < 8; l++)
                sum[v * 8 + l] += (double)sp[l];
        }
}

/*
 * The task body, inlined into an AVX2 function (avx2 = 1: AVX2 micro-kernels, the
 * element-wise steps compiled for AVX2) and a portable one. vmath.h keeps the element-wise
 * steps bit-identical between the two; only the micro-kernels round differently.
 */
static inline __attribute__((always_inline)) void block_body(const struct job *j, size_t task,
                                                             int thread, int avx2)
{
    const sg_attn_plan *p = j->p;
    const size_t hd = p->s.head_dim;
    const size_t grp = p->group;
    const size_t g = task / j->n_blocks;
    const struct block *bl = &p->blocks[task % j->n_blocks];
    const size_t na = bl->na;
    const size_t nv = na > 8 ? 2 : 1;
    const sg_attn_row *first = &j->rows[bl->r0];
    const size_t trunk_len = first->trunk_len;
    const size_t seg_slot = first->seg_slot;
    const float scale = p->s.scale;
    const float cap = p->s.softcap;
    float *st = p->scores + (size_t)thread * p->max_keys * QW;
    float *qt = p->qt + (size_t)thread * hd * QW;
    const float *qp[QW];
    float *op[QW];
    size_t t0[QW], l0[QW], loc[QW];
    int32_t lo[QW], hi[QW];
    size_t tmin = trunk_len, lmin = SIZE_MAX, lmax = 0;

    for (size_t i = 0; i < na; i++) {
        const size_t a = bl->a0 + i;
        const size_t r = bl->r0 + a / grp;
        const size_t h = g * grp + a % grp;
        const sg_attn_row *row = &j->rows[r];

        qp[i] = j->q + r * j->q_stride + h * hd;
        op[i] = j->out + r * j->out_stride + h * hd;
        t0[i] = 0;
        l0[i] = 0;
        loc[i] = row->local;
        if (j->window && row->pos + 1 > j->window) {
            /* Keys at positions >= pos - window + 1 are visible (i - j < window). */
            const size_t min_pos = row->pos + 1 - j->window;

            t0[i] = min_pos < trunk_len ? min_pos : trunk_len;
            l0[i] = min_pos > trunk_len ? min_pos - trunk_len : 0;
        }
        tmin = t0[i] < tmin ? t0[i] : tmin;
        lmin = l0[i] < lmin ? l0[i] : lmin;
        lmax = loc[i] > lmax ? loc[i] : lmax;
    }
    const size_t nt = trunk_len - tmin;
    const size_t nk = nt + (lmax - lmin) + 1;
    for (size_t i = 0; i < QW; i++) {
        if (i < na) {
            lo[i] = (int32_t)(t0[i] < trunk_len ? t0[i] - tmin : nt + l0[i] - lmin);
            hi[i] = (int32_t)(nt + loc[i] - lmin);
        } else {
            lo[i] = 0;
            hi[i] = (int32_t)(nk - 1);
        }
    }
#define KEY_SLOT(kk) ((kk) < nt ? tmin + (kk) : seg_slot + lmin + ((kk) - nt))

    /* Qt: the block's queries, transposed, zero in unused lanes. */
    for (size_t d = 0; d < hd; d++)
        for (size_t i = 0; i < QW; i++)
            qt[d * QW + i] = i < na ? qp[i][d] : 0.0f;

    /* Scores, then scale, soft-cap, mask and the running max, QW lanes per key. */
    sg_v8f mx[2] = {sg_v8_splat(-__builtin_inff()), sg_v8_splat(-__builtin_inff())};
    sg_v8i lov[2], hiv[2];
    memcpy(lov, lo, sizeof lov);
    memcpy(hiv, hi, sizeof hiv);
    for (size_t kt = 0; kt < nk; kt += KR) {
        const size_t r = nk - kt < KR ? nk - kt : KR;
        const float *kp[KR];

        for (size_t i = 0; i < r; i++)
            kp[i] = j->k + KEY_SLOT(kt + i) * j->kv_stride + g * hd;
#if SG_ATTN_AVX2
        if (avx2)
            score_tile_avx2(kp, r, qt, hd, nv, st + kt * QW);
        else
#endif
            score_tile_port(kp, r, qt, hd, st + kt * QW);
        for (size_t i = 0; i < r; i++) {
            const int32_t kk = (int32_t)(kt + i);
            const sg_v8i kv = {kk, kk, kk, kk, kk, kk, kk, kk};

            for (size_t v = 0; v < nv; v++) {
                float *sp = st + (kt + i) * QW + v * 8;
                sg_v8f s;

                memcpy(&s, sp, sizeof s);
                s = s * scale;
                if (cap > 0.0f) {
                    s = s / cap;
                    s = cap * sg_v8_tanh(&s);
                }
                s = sg_v8_sel((kv < lov[v]) | (kv > hiv[v]), sg_v8_splat(-__builtin_inff()), s);
                mx[v] = sg_v8_sel(s > mx[v], s, mx[v]);
                memcpy(sp, &s, sizeof s);
            }
        }
    }

    /* exp(s - max) and its sum per query vector, keys in position order. */
    double sum[QW] = {0};
    exp_and_sum(st, nk, nv, mx, sum);

    /* out = sum_k e_k v_k, keys in blocks of KB, then / sum. */
    for (size_t i = 0; i < na; i++)
        memset(op[i], 0, hd * sizeof *op[i]);
    for (size_t kb = 0; kb < nk; kb += KB) {
        const size_t ke = nk - kb < KB ? nk : kb + KB;
        const float *vp[KB];

        for (size_t kk = kb; kk < ke; kk++)
            vp[kk - kb] = j->v + KEY_SLOT(kk) * j->kv_stride + g * hd;
        for (size_t a = 0; a < na; a += AR) {
            const size_t ar = na - a < AR ? na - a : AR;
            size_t klo = ke, khi = kb;

            /* Only the keys some of these query vectors see (the others weigh 0). */
            for (size_t i = a; i < a + ar; i++) {
                klo = (size_t)lo[i] < klo ? (size_t)lo[i] : klo;
                khi = (size_t)hi[i] + 1 > khi ? (size_t)hi[i] + 1 : khi;
            }
            klo = klo < kb ? kb : klo;
            khi = khi > ke ? ke : khi;
            if (klo >= khi)
                continue;
#if SG_ATTN_AVX2
            if (avx2)
                value_tile_avx2(vp + (klo - kb), khi - klo, st + klo * QW + a, op + a, ar, hd);
            else
#endif
                value_tile_port(vp + (klo - kb), khi - klo, st + klo * QW + a, op + a, ar, hd);
        }
    }
    for (size_t i = 0; i < na; i++) {
        const float inv = (float)(1.0 / sum[i]);

        for (size_t d = 0; d < hd; d++)
            op[i][d] *= inv;
    }
#undef KEY_SLOT
}

#if SG_ATTN_AVX2
SG_AVX2 static void task_avx2(void *arg, size_t task, int thread)
{
    block_body(arg, task, thread, 1);
}
#endif

static void task_port(void *arg, size_t task, int thread)
{
    block_body(arg, task, thread, 0);
}

/* ---- Plan -------------------------------------------------------------------------------- */

static int cpu_avx2(void)
{
    return SG_ATTN_AVX2 && sg_cpu_has(SG_CPU_AVX2_FMA);
}

int sg_attn_plan_new(sg_attn_plan **out, const sg_attn_shape *shape, size_t max_rows,
                     size_t max_keys, int n_threads, sg_attn_kernel kernel)
{
    sg_attn_plan *p;

    *out = NULL;
    if (!shape || shape->head_dim == 0 || shape->n_head == 0 || shape->n_kv_head == 0 ||
        shape->n_head % shape->n_kv_head != 0 || max_rows == 0 || max_keys == 0 ||
        max_keys > INT32_MAX || n_threads < 1 || kernel < 0 || kernel >= SG_ATTN_KERNEL_COUNT)
        return SG_EINVAL;
    p = calloc(1, sizeof *p);
    if (!p)
        return SG_ENOMEM;
    p->s = *shape;
    p->group = shape->n_head / shape->n_kv_head;
    p->max_rows = max_rows;
    p->max_keys = max_keys;
    p->n_threads = n_threads;
    p->avx2 = kernel == SG_ATTN_AUTO && shape->head_dim % 8 == 0 && cpu_avx2();
    /* A run of r rows has ceil(r group / QW) blocks, at most r group / QW + 1. */
    p->max_blocks = max_rows * (p->group / QW + 2);
    p->blocks = calloc(p->max_blocks, sizeof *p->blocks);
    /* calloc maps big blocks lazily: a thread's scores cost memory once a pass uses them. */
    p->scores = calloc((size_t)n_threads * max_keys * QW, sizeof *p->scores);
    p->qt = calloc((size_t)n_threads * shape->head_dim * QW, sizeof *p->qt);
    if (!p->blocks || !p->scores || !p->qt) {
        sg_attn_plan_free(p);
        return SG_ENOMEM;
    }
    *out = p;
    return SG_OK;
}

void sg_attn_plan_free(sg_attn_plan *p)
{
    if (!p)
        return;
    free(p->blocks);
    free(p->scores);
    free(p->qt);
    free(p);
}

const char *sg_attn_plan_kernel(const sg_attn_plan *p)
{
    return p->avx2 ? "avx2" : "portable";
}

void sg_attn_run(sg_attn_plan *p, const sg_attn_row *rows, size_t m, const float *q,
                 size_t q_stride, const float *k, const float *v, size_t kv_stride,
                 size_t window, float *out, size_t out_stride, sg_pool *pool)
{
    struct job j = {p, rows, q, q_stride, k, v, kv_stride, window, out, out_stride, 0};
    size_t nb = 0;

    if (m == 0)
        return;
    /* The plan's scratch (blocks, scores) is sized for max_rows rows: nothing is allocated here,
     * and a caller that passes more is a programmer error. */
    assert(m <= p->max_rows);
    /* Runs of rows of one segment, cut into blocks of QW query vectors. */
    for (size_t r0 = 0, r1; r0 < m; r0 = r1) {
        size_t total;

        for (r1 = r0 + 1; r1 < m; r1++)
            if (rows[r1].trunk_len != rows[r0].trunk_len || rows[r1].seg_slot != rows[r0].seg_slot)
                break;
        total = (r1 - r0) * p->group;
        for (size_t a0 = 0; a0 < total; a0 += QW) {
            p->blocks[nb].r0 = r0;
            p->blocks[nb].a0 = a0;
            p->blocks[nb].na = total - a0 < QW ? total - a0 : QW;
            nb++;
        }
    }
    j.n_blocks = nb;
#if SG_ATTN_AVX2
    if (p->avx2) {
        sg_pool_run(pool, task_avx2, &j, nb * p->s.n_kv_head);
        return;
    }
#endif
    sg_pool_run(pool, task_port, &j, nb * p->s.n_kv_head);
}
