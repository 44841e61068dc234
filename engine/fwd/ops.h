#ifndef SG_OPS_H
#define SG_OPS_H
/*
 * ops.h (internal to engine/): the element-wise kernels of the Gemma forward pass, in f32.
 * Each quotes its reference formula (Hugging Face Gemma2 modelling code) above it in ops.c.
 * None allocates; `out` may equal `x` where noted.
 */

#include <stddef.h>

/*
 * RMSNorm of one row: out[i] = x[i] / sqrt(mean(x^2) + eps) * g[i], where g is the already
 * offset gain (1 + w for Hugging Face weights; GGUF stores 1 + w itself). out may equal x.
 */
void sg_rmsnorm(float *out, const float *x, const float *g, size_t n, float eps);

/*
 * NeoX ("half-split") rotary embedding of one head vector x[head_dim] in place: element i pairs
 * with i + head_dim/2 and turns by angle pos * theta^(-2i/head_dim), given as cos_t[i], sin_t[i]
 * (head_dim/2 values each, from sg_rope_table).
 */
void sg_rope(float *x, size_t head_dim, const float *cos_t, const float *sin_t);

/* cos_t[i], sin_t[i] = cos, sin(pos * theta^(-2i/head_dim)) for i < head_dim/2, in double. */
void sg_rope_table(float *cos_t, float *sin_t, size_t head_dim, double pos, double theta);

/* Softmax of x[n] in place, subtracting the max first; n >= 1. */
void sg_softmax(float *x, size_t n);

/*
 * y[i] = tanh(x[i]), 8 lanes at a time (vmath.h: within 4 ulp of tanhf, +-1 past |x| 9.5, NaN
 * kept); AVX2 where the CPU has it, else the portable build of the same code (same bits).
 * y may equal x.
 */
void sg_tanh_n(float *y, const float *x, size_t n);
/* sg_tanh_n on the portable path whatever the CPU (for tests). */
void sg_tanh_n_portable(float *y, const float *x, size_t n);
/* y[i] = exp(x[i]) (vmath.h: within 2 ulp of expf; 0 below -87.34, -inf included). */
void sg_exp_n(float *y, const float *x, size_t n);

/* GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), sg_tanh_n's tanh. */
float sg_gelu_tanh(float x);

/*
 * out[i] = gelu_tanh(gate[i]) * up[i] (the gated MLP's middle) in one vectorised pass, equal
 * to sg_gelu_tanh(gate[i]) * up[i]; out may equal gate or up.
 */
void sg_gelu_mul(float *out, const float *gate, const float *up, size_t n);

/* Soft-cap in place: x = cap * tanh(x / cap) (sg_tanh_n's tanh); cap <= 0 leaves x unchanged. */
void sg_softcap(float *x, size_t n, float cap);

/* sum a[i] * b[i] in f32 with fixed-order partial sums (deterministic, vectorisable). */
float sg_dot(const float *a, const float *b, size_t n);

/* y[i] += a * x[i]. */
void sg_axpy(float *y, float a, const float *x, size_t n);

#endif /* SG_OPS_H */
