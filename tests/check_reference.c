/*
 * check_reference.c: the engine against a naive float64 forward pass written here from the
 * formulas of docs/ENGINE.md ("Numerics contract"), for configurations the goldens do not cover:
 * Gemma 1 (multi-query attention, no soft-caps, no post-norms, no sliding window) and Gemma 2
 * with GQA groups of 4 and an odd layer count. The reference is first checked against the
 * tiny-a goldens so that it is known to be right.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/engine_fixtures.h"
#include "safetensors.h"
#include "sg_engine.h"

Suite *reference_suite(void);

struct ref_cfg {
    int gemma2;
    int vocab, d, ff, layers, heads, kv, hd, window;
    double qscale, attn_cap, final_cap, eps, theta;
};

/* Weights as f32 arrays, looked up by Hugging Face name. */
struct ref_w {
    const char *names[64];
    float *data[64];
    int n;
};

/* "model.layers.<layer>.<suffix>", or `suffix` itself when layer < 0. */
static const float *W(const struct ref_w *w, const char *suffix, int layer)
{
    char name[128];

    if (layer < 0)
        snprintf(name, sizeof name, "%s", suffix);
    else
        snprintf(name, sizeof name, "model.layers.%d.%s", layer, suffix);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->names[i], name) == 0)
            return w->data[i];
    ck_abort_msg("reference: no tensor %s", name);
    return NULL;
}

static void rms(double *out, const double *x, const float *w, int n, double eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / n + eps);
    for (int i = 0; i < n; i++)
        out[i] = x[i] * r * (1.0 + w[i]);
}

/* y[rows] = M[rows, cols] x[cols] */
static void mv(double *y, const float *m, const double *x, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        double a = 0;
        for (int c = 0; c < cols; c++)
            a += (double)m[(size_t)r * cols + c] * x[c];
        y[r] = a;
    }
}

static void rope(double *v, int hd, int pos, double theta)
{
    for (int i = 0; i < hd / 2; i++) {
        double a = pos * pow(theta, -2.0 * i / hd);
        double x0 = v[i], x1 = v[i + hd / 2];
        v[i] = x0 * cos(a) - x1 * sin(a);
        v[i + hd / 2] = x1 * cos(a) + x0 * sin(a);
    }
}

/* Logits of every position: out[n][vocab]. */
static void ref_forward(const struct ref_cfg *c, const struct ref_w *w, const int32_t *ids, int n,
                        double *out)
{
    const int d = c->d, hd = c->hd, qd = c->heads * hd, kvd = c->kv * hd;
    double *x = calloc((size_t)n * d, sizeof *x);
    double *K = calloc((size_t)c->layers * n * kvd, sizeof *K);
    double *V = calloc((size_t)c->layers * n * kvd, sizeof *V);
    double *h = malloc(sizeof(double) * (size_t)(d + qd + 2 * kvd + qd + d + 3 * c->ff + n));
    double *q = h + d, *k = q + qd, *v = k + kvd, *att = v + kvd, *o = att + qd, *g = o + d,
           *u = g + c->ff, *t = u + c->ff, *s = t + c->ff;
    const float *E = W(w, "model.embed_tokens.weight", -1);

    for (int i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            x[(size_t)i * d + j] = E[(size_t)ids[i] * d + j] * sqrt((double)d);
    for (int l = 0; l < c->layers; l++) {
        double *Kl = K + (size_t)l * n * kvd, *Vl = V + (size_t)l * n * kvd;
        int sliding = c->gemma2 && l % 2 == 0;
        for (int i = 0; i < n; i++) {
            double *xi = x + (size_t)i * d;
            rms(h, xi, W(w, "input_layernorm.weight", l), d, c->eps);
            mv(q, W(w, "self_attn.q_proj.weight", l), h, qd, d);
            mv(Kl + (size_t)i * kvd, W(w, "self_attn.k_proj.weight", l), h, kvd,
               d);
            mv(Vl + (size_t)i * kvd, W(w, "self_attn.v_proj.weight", l), h, kvd,
               d);
            for (int hh = 0; hh < c->heads; hh++)
                rope(q + hh * hd, hd, i, c->theta);
            for (int hh = 0; hh < c->kv; hh++)
                rope(Kl + (size_t)i * kvd + hh * hd, hd, i, c->theta);
            for (int hh = 0; hh < c->heads; hh++) {
                int kh = hh / (c->heads / c->kv);
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j <= i; j++) {
                    double a = 0;
                    for (int e = 0; e < hd; e++)
                        a += q[hh * hd + e] * Kl[(size_t)j * kvd + kh * hd + e];
                    a *= c->qscale;
                    if (c->attn_cap > 0)
                        a = c->attn_cap * tanh(a / c->attn_cap);
                    if (sliding && i - j >= c->window)
                        a = -INFINITY;
                    s[j] = a;
                    if (a > mx)
                        mx = a;
                }
                for (int j = 0; j <= i; j++) {
                    s[j] = exp(s[j] - mx);
                    sum += s[j];
                }
                for (int e = 0; e < hd; e++) {
                    double a = 0;
                    for (int j = 0; j <= i; j++)
                        a += s[j] / sum * Vl[(size_t)j * kvd + kh * hd + e];
                    att[hh * hd + e] = a;
                }
            }
            mv(o, W(w, "self_attn.o_proj.weight", l), att, d, qd);
            if (c->gemma2)
                rms(o, o, W(w, "post_attention_layernorm.weight", l), d, c->eps);
            for (int e = 0; e < d; e++)
                xi[e] += o[e];
            rms(h, xi,
                W(w, c->gemma2 ? "pre_feedforward_layernorm.weight"
                               : "post_attention_layernorm.weight",
                  l),
                d, c->eps);
            mv(g, W(w, "mlp.gate_proj.weight", l), h, c->ff, d);
            mv(u, W(w, "mlp.up_proj.weight", l), h, c->ff, d);
            for (int e = 0; e < c->ff; e++) {
                double z = g[e];
                t[e] = 0.5 * z * (1 + tanh(sqrt(2 / M_PI) * (z + 0.044715 * z * z * z))) * u[e];
            }
            mv(o, W(w, "mlp.down_proj.weight", l), t, d, c->ff);
            if (c->gemma2)
                rms(o, o, W(w, "post_feedforward_layernorm.weight", l), d,
                    c->eps);
            for (int e = 0; e < d; e++)
                xi[e] += o[e];
        }
    }
    for (int i = 0; i < n; i++) {
        rms(h, x + (size_t)i * d, W(w, "model.norm.weight", -1), d, c->eps);
        mv(out + (size_t)i * c->vocab, E, h, c->vocab, d);
        if (c->final_cap > 0)
            for (int j = 0; j < c->vocab; j++)
                out[(size_t)i * c->vocab + j] =
                    c->final_cap * tanh(out[(size_t)i * c->vocab + j] / c->final_cap);
    }
    free(x);
    free(K);
    free(V);
    free(h);
}

/* Engine logits of every position for `path`. */
static float *engine_logits(const char *path, const int32_t *ids, int n, int vocab)
{
    sg_model *m = NULL;
    sg_ctx *c = NULL;
    char err[1024];
    sg_model_opts mo = sg_model_opts_default();
    mo.n_threads = 2;
    mo.load_tokenizer = 0;
    ck_assert_msg(sg_model_open(&m, path, &mo, err, sizeof err) == SG_OK, "%s", err);
    sg_ctx_opts co = sg_ctx_opts_default();
    co.n_ctx = n;
    ck_assert_int_eq(sg_ctx_new(&c, m, &co, NULL, 0), SG_OK);
    float *out = malloc((size_t)n * vocab * sizeof *out);
    sg_logits_req rq = {NULL, 0, 1, out};
    ck_assert_int_eq(sg_ctx_append(c, ids, (size_t)n, &rq), SG_OK);
    sg_ctx_free(c);
    sg_model_close(m);
    return out;
}

START_TEST(test_reference_matches_goldens)
{
    char path[4096];
    size_t len, nt, np, nv;
    unsigned char *file;
    sg_tensor *ts;
    char err[256];
    struct ref_w w = {{0}, {0}, 0};
    struct ref_cfg c = {1, 4096, 64, 128, 2, 4, 2, 16, 8, 0.25, 50, 30, 1e-6, 10000};
    int32_t ids[64];
    int n = (int)fx_prompt_ids(ids, 64);

    fx_path(path, sizeof path, "tiny-a/hf_f32/model.safetensors");
    file = fx_read(path, &len);
    ck_assert_int_eq(sg_st_parse(file, len, path, &ts, &nt, err, sizeof err), SG_OK);
    for (size_t i = 0; i < nt; i++) {
        w.names[w.n] = ts[i].name;
        w.data[w.n] = malloc(ts[i].nbytes);
        memcpy(w.data[w.n], ts[i].data, ts[i].nbytes);
        w.n++;
    }
    double *gold = fx_golden("tiny-a/ref_f64_all.txt", &np, &nv);
    double *out = malloc((size_t)n * 4096 * sizeof *out);
    ref_forward(&c, &w, ids, n, out);
    double mx = 0;
    for (size_t i = 0; i < (size_t)n * 4096; i++)
        mx = fmax(mx, fabs(out[i] - gold[i]));
    ck_assert_msg(mx < 1e-6, "the test's reference differs from the goldens by %g", mx);
    for (int i = 0; i < w.n; i++)
        free(w.data[i]);
    free(out);
    free(gold);
    free(ts);
    free(file);
}
END_TEST

/* Write random F32 weights for `c` (and config.json) into `dir`; fill `w` with them. */
static void write_model(const char *dir, const struct ref_cfg *c, struct ref_w *w)
{
    const int d = c->d, qd = c->heads * c->hd, kvd = c->kv * c->hd;
    struct {
        const char *fmt;
        int r, cols;
    } spec[] = {
        {"input_layernorm.weight", d, 0},
        {"self_attn.q_proj.weight", qd, d},
        {"self_attn.k_proj.weight", kvd, d},
        {"self_attn.v_proj.weight", kvd, d},
        {"self_attn.o_proj.weight", d, qd},
        {"post_attention_layernorm.weight", d, 0},
        {"pre_feedforward_layernorm.weight", d, 0},
        {"post_feedforward_layernorm.weight", d, 0},
        {"mlp.gate_proj.weight", c->ff, d},
        {"mlp.up_proj.weight", c->ff, d},
        {"mlp.down_proj.weight", d, c->ff},
    };
    json_t *hdr = json_object();
    size_t off = 0;
    uint32_t s = 12345;
    float *blob = NULL;
    static char names[64][96];

    w->n = 0;
    for (int t = -1; t <= c->layers * 11; t++) {
        int rows, cols;
        const char *name;
        if (t == -1) {
            snprintf(names[w->n], 96, "model.embed_tokens.weight");
            rows = c->vocab;
            cols = d;
        } else if (t == c->layers * 11) {
            snprintf(names[w->n], 96, "model.norm.weight");
            rows = d;
            cols = 0;
        } else {
            int l = t / 11, k = t % 11;
            if (!c->gemma2 && (k == 6 || k == 7))
                continue; /* Gemma 1 has no pre/post feed-forward norms */
            snprintf(names[w->n], 96, "model.layers.%d.%s", l, spec[k].fmt);
            rows = spec[k].r;
            cols = spec[k].cols;
        }
        name = names[w->n];
        size_t cnt = (size_t)rows * (cols ? cols : 1);
        float *a = malloc(cnt * sizeof *a);
        float scale = cols ? 1.0f / sqrtf((float)cols) * 1.5f : 0.3f;
        for (size_t i = 0; i < cnt; i++) {
            s = s * 1103515245u + 12345u;
            a[i] = scale * ((float)((s >> 9) & 0xFFFF) / 32768.0f - 1.0f);
        }
        w->names[w->n] = name;
        w->data[w->n] = a;
        w->n++;
        json_t *shape = cols ? json_pack("[i,i]", rows, cols) : json_pack("[i]", rows);
        json_object_set_new(hdr, name,
                            json_pack("{s:s,s:o,s:[I,I]}", "dtype", "F32", "shape", shape,
                                      "data_offsets", (json_int_t)off,
                                      (json_int_t)(off + cnt * 4)));
        blob = realloc(blob, off + cnt * 4);
        memcpy((char *)blob + off, a, cnt * 4);
        off += cnt * 4;
    }
    char path[2048];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    fx_st_write(path, hdr, blob, off);
    free(blob);
    json_decref(hdr);

    json_t *cfg = json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:i}", "model_type",
                            c->gemma2 ? "gemma2" : "gemma", "vocab_size", c->vocab,
                            "hidden_size", d, "intermediate_size", c->ff, "num_hidden_layers",
                            c->layers, "num_attention_heads", c->heads, "num_key_value_heads",
                            c->kv, "head_dim", c->hd, "rms_norm_eps", c->eps, "rope_theta",
                            c->theta, "max_position_embeddings", 512);
    if (c->gemma2) {
        json_object_set_new(cfg, "sliding_window", json_integer(c->window));
        json_object_set_new(cfg, "query_pre_attn_scalar", json_real(1.0 / (c->qscale * c->qscale)));
        json_object_set_new(cfg, "attn_logit_softcapping", json_real(c->attn_cap));
        json_object_set_new(cfg, "final_logit_softcapping", json_real(c->final_cap));
    } else {
        json_object_set_new(cfg, "hidden_act", json_string("gelu"));
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_assert_int_eq(json_dump_file(cfg, path, 0), 0);
    json_decref(cfg);
}

static void check_config(const struct ref_cfg *c)
{
    char dir[1024];
    struct ref_w w;
    enum { N = 23 };
    int32_t ids[N];
    uint32_t s = 99;

    for (int i = 0; i < N; i++) {
        s = s * 1103515245u + 12345u;
        ids[i] = i == 0 ? 2 : (int32_t)((s >> 10) % (uint32_t)c->vocab);
    }
    fx_tmpdir(dir, sizeof dir);
    write_model(dir, c, &w);
    double *ref = malloc((size_t)N * c->vocab * sizeof *ref);
    ref_forward(c, &w, ids, N, ref);
    float *got = engine_logits(dir, ids, N, c->vocab);
    double mx = 0;
    for (size_t i = 0; i < (size_t)N * c->vocab; i++)
        mx = fmax(mx, fabs(got[i] - ref[i]));
    printf("reference %s (%d heads, %d kv): max |err| %.3g\n", c->gemma2 ? "gemma2" : "gemma",
           c->heads, c->kv, mx);
    ck_assert_msg(mx < 1e-4, "engine vs reference: %g", mx);
    for (int i = 0; i < w.n; i++)
        free(w.data[i]);
    free(ref);
    free(got);
    fx_rmdir(dir);
}

START_TEST(test_gemma1_mqa)
{
    /* Gemma 1: MQA (one KV head), scale head_dim^-0.5, no caps, no post-norms, no window. */
    struct ref_cfg c = {0, 512, 48, 96, 3, 4, 1, 16, 0, 0.25, 0, 0, 1e-6, 10000};
    check_config(&c);
}
END_TEST

START_TEST(test_gemma2_gqa4)
{
    /* Gemma 2 with groups of 4 query heads per KV head, a small window, strong caps. */
    struct ref_cfg c = {1, 300, 32, 64, 3, 8, 2, 8, 5, 1.0 / sqrt(12.0), 5, 3, 1e-6, 500};
    check_config(&c);
}
END_TEST

Suite *reference_suite(void)
{
    Suite *s = suite_create("reference");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reference_matches_goldens);
    tcase_add_test(tc, test_gemma1_mqa);
    tcase_add_test(tc, test_gemma2_gqa4);
    suite_add_tcase(s, tc);
    return s;
}
