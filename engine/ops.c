/*
 * ops.c: element-wise kernels of the Gemma 2 forward pass (see ops.h). Reference formulas are
 * from Hugging Face transformers' modeling_gemma2.py, float32 eager path.
 */
#include "ops.h"

#include <math.h>

#define LANES 16

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
    const float k = 0.7978845608028654f; /* sqrt(2 / pi) */

    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

/* Gemma2MLP: down_proj(act_fn(gate_proj(x)) * up_proj(x)); this is the middle product. */
void sg_gelu_mul(float *out, const float *gate, const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = sg_gelu_tanh(gate[i]) * up[i];
}

/*
 * Attention and final logit soft-capping:
 *     x = x / cap; x = torch.tanh(x); x = x * cap
 */
void sg_softcap(float *x, size_t n, float cap)
{
    if (cap <= 0.0f)
        return;
    for (size_t i = 0; i < n; i++)
        x[i] = cap * tanhf(x[i] / cap);
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
