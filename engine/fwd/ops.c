/*
 * ops.c: element-wise kernels of the Gemma 2 forward pass (see ops.h). Reference formulas are
 * from Hugging Face transformers' modeling_gemma2.py, float32 eager path.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

#include "cpu.h"
#include "vmath.h"

#define LANES 16

/*
 * The element-wise loops below run 8 floats at a time (vmath.h). Each has one body, inlined
 * into an AVX2 function and into a portable one; the AVX2 one is taken when the CPU has it
 * (checked at every call with the one probe, base/cpu.h, which is cheap). Both
 * give the same bits (vmath.h), so the choice only changes the speed.
 */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SG_OPS_AVX2 1
#define SG_AVX2 __attribute__((target("avx2,fma")))
#else
#define SG_OPS_AVX2 0
#endif

static int have_avx2(void)
{
    return SG_OPS_AVX2 && sg_cpu_has(SG_CPU_AVX2_FMA);
}

/* Load up to 8 floats (n < 8: the rest 0) and store the first n lanes back. */
SG_VINLINE sg_v8f load_part(const float *x, size_t n)
{
    sg_v8f v = sg_v8_splat(0.0f);

    memcpy(&v, x, n * sizeof *x);
    return v;
}

SG_VINLINE void store_part(float *y, const sg_v8f *v, size_t n)
{
    memcpy(y, v, n * sizeof *y);
}

/* The 8-lane steps of the loops below; `cap` only for SOFTCAP. */
enum ew_op { EW_TANH, EW_EXP, EW_SOFTCAP, EW_GELU_MUL };

SG_VINLINE sg_v8f gelu8(const sg_v8f *pg)
{
    const float k = 0.7978845608028654f; /* sqrt(2 / pi) */
    const sg_v8f g = *pg;
    const sg_v8f t = k * (g + 0.044715f * g * g * g);

    return 0.5f * g * (1.0f + sg_v8_tanh(&t));
}

/* One 8-lane step of `op` on v (w: the `up` lanes, GELU_MUL only). */
SG_VINLINE sg_v8f ew_step(enum ew_op op, sg_v8f v, const sg_v8f *w, float cap)
{
    if (op == EW_TANH)
        return sg_v8_tanh(&v);
    if (op == EW_EXP)
        return sg_v8_exp(&v);
    if (op == EW_SOFTCAP) {
        v = v / cap;
        return cap * sg_v8_tanh(&v);
    }
    return gelu8(&v) * *w;
}

SG_VINLINE void ew_body(enum ew_op op, float *y, const float *x, const float *u, size_t n,
                        float cap)
{
    size_t i = 0;
    sg_v8f v;
    sg_v8f w = sg_v8_splat(0.0f);

    for (; i + 8 <= n; i += 8) {
        memcpy(&v, x + i, sizeof v);
        if (op == EW_GELU_MUL)
            memcpy(&w, u + i, sizeof w);
        v = ew_step(op, v, &w, cap);
        memcpy(y + i, &v, sizeof v);
    }
    if (i < n) {
        v = load_part(x + i, n - i);
        if (op == EW_GELU_MUL)
            w = load_part(u + i, n - i);
        v = ew_step(op, v, &w, cap);
        store_part(y + i, &v, n - i);
    }
}

#if SG_OPS_AVX2
SG_AVX2 static void ew_avx2(enum ew_op op, float *y, const float *x, const float *u, size_t n,
                            float cap)
{
    ew_body(op, y, x, u, n, cap);
}
#endif

static void ew_portable(enum ew_op op, float *y, const float *x, const float *u, size_t n,
                        float cap)
{
    ew_body(op, y, x, u, n, cap);
}

static void ew_run(enum ew_op op, float *y, const float *x, const float *u, size_t n, float cap)
{
#if SG_OPS_AVX2
    if (have_avx2()) {
        ew_avx2(op, y, x, u, n, cap);
        return;
    }
#endif
    ew_portable(op, y, x, u, n, cap);
}

void sg_tanh_n(float *y, const float *x, size_t n)
{
    ew_run(EW_TANH, y, x, NULL, n, 0.0f);
}

void sg_tanh_n_portable(float *y, const float *x, size_t n)
{
    ew_portable(EW_TANH, y, x, NULL, n, 0.0f);
}

void sg_exp_n(float *y, const float *x, size_t n)
{
    ew_run(EW_EXP, y, x, NULL, n, 0.0f);
}

/*
 * Gemma2RMSNorm:
 *     x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + weight.float())
 * The mean is accumulated in double (closer to the exact value than any f32 order).
 */
void sg_rmsnorm(float *out, const float *x, const float *g, size_t n, float eps)
{
    double ss = 0.0;

    for (size_t i = 0; i < n; i++)
        ss += (double)x[i] * (double)x[i];
    float r = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (size_t i = 0; i < n; i++)
        out[i] = x[i] * r * g[i];
}

/*
 * rotate_half / apply_rotary_pos_emb:
 *     inv_freq[i] = theta ** (-(2i) / head_dim)
 *     q_embed = q * cos + rotate_half(q) * sin, rotate_half(x) = cat(-x[half:], x[:half])
 * i.e. for i < half: (x_i, x_{i+half}) -> (x_i cos - x_{i+half} sin, x_{i+half} cos + x_i sin).
 */
void sg_rope_table(float *cos_t, float *sin_t, size_t head_dim, double pos, double theta)
{
    size_t half = head_dim / 2;

    for (size_t i = 0; i < half; i++) {
        double inv_freq = pow(theta, -(double)(2 * i) / (double)head_dim);
        double a = pos * inv_freq;
        cos_t[i] = (float)cos(a);
        sin_t[i] = (float)sin(a);
    }
}

void sg_rope(float *x, size_t head_dim, const float *cos_t, const float *sin_t)
{
    size_t half = head_dim / 2;

    for (size_t i = 0; i < half; i++) {
        float x0 = x[i];
        float x1 = x[i + half];
        x[i] = x0 * cos_t[i] - x1 * sin_t[i];
        x[i + half] = x1 * cos_t[i] + x0 * sin_t[i];
    }
}

/* softmax(x)_i = exp(x_i - max x) / sum_j exp(x_j - max x), in f32 (the sum in double). */
void sg_softmax(float *x, size_t n)
{
    float mx = x[0];
    double sum = 0.0;

    for (size_t i = 1; i < n; i++)
        if (x[i] > mx)
            mx = x[i];
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++)
        x[i] *= inv;
}

/* gelu_pytorch_tanh: 0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3))). */
float sg_gelu_tanh(float x)
{
    sg_v8f v = sg_v8_splat(x);

    return gelu8(&v)[0];
}

/*
 * Gemma2MLP: down_proj(act_fn(gate_proj(x)) * up_proj(x)); this is the middle product, in one
 * pass over gate and up, 8 lanes at a time.
 */
void sg_gelu_mul(float *out, const float *gate, const float *up, size_t n)
{
    ew_run(EW_GELU_MUL, out, gate, up, n, 0.0f);
}

/*
 * Attention and final logit soft-capping:
 *     x = x / cap; x = torch.tanh(x); x = x * cap
 */
void sg_softcap(float *x, size_t n, float cap)
{
    if (cap <= 0.0f)
        return;
    ew_run(EW_SOFTCAP, x, x, NULL, n, cap);
}

/* sum_i a[i] b[i] with LANES independent partial sums combined pairwise, then the tail. */
float sg_dot(const float *a, const float *b, size_t n)
{
    float acc[LANES] = {0};
    float tail = 0.0f;
    size_t i = 0;

    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            acc[l] += a[i + l] * b[i + l];
    for (; i < n; i++)
        tail += a[i] * b[i];
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++)
            acc[l] += acc[l + w];
    return acc[0] + tail;
}

/* y += a x */
void sg_axpy(float *y, float a, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}
