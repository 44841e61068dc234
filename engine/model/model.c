/*
 * model.c: open a model (Hugging Face folder, single .safetensors, or GGUF), bind its tensors
 * to the layers of a Gemma 2 (or Gemma 1) network, check every shape against the
 * hyper-parameters, and prepare the matrices (see model.h and sg_engine.h).
 */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_gemma.h"
#include "hf_config.h"
#include "packcache.h"
#include "safetensors.h"
#include "sg_tok.h"

sg_model_opts sg_model_opts_default(void)
{
    sg_model_opts o = {0, SG_PREC_F32, 1, NULL};
    return o;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* dir + "/" + name into a fresh string (NULL on overflow of `cap`). */
static int join(char *buf, size_t cap, const char *dir, const char *name)
{
    size_t dl = strlen(dir);

    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    int n = snprintf(buf, cap, "%.*s/%s", (int)dl, dir, name);
    return n >= 0 && (size_t)n < cap;
}

/* The last path component without trailing slashes, for sg_model_info.name. */
static void base_name(char *out, size_t cap, const char *path)
{
    size_t len = strlen(path);

    while (len > 1 && path[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    snprintf(out, cap, "%.*s", (int)(len - start), path + start);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t a = strlen(s);
    size_t b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void shape_str(char *buf, size_t cap, const int64_t *shape, int ndim)
{
    size_t off = 0;

    off += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%lld", i ? ", " : "",
                                (long long)shape[i]);
    if (off < cap)
        snprintf(buf + off, cap - off, "]");
}

/* Find `name` and check its shape is exactly `shape` (ndim entries). */
static int bind(const sg_model *m, const char *src, const char *name, int ndim, int64_t d0,
                int64_t d1, const sg_tensor **out, char *err, size_t errlen)
{
    const sg_tensor *t = sg_weights_find(&m->w, name);
    int64_t want[2] = {d0, d1};
    char ws[64];
    char fs[96];

    if (!t) {
        snprintf(err, errlen, "%s: missing tensor '%s'", src, name);
        return SG_EFORMAT;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        ok = t->shape[i] == want[i];
    if (!ok) {
        shape_str(ws, sizeof ws, want, ndim);
        shape_str(fs, sizeof fs, t->shape, t->ndim);
        snprintf(err, errlen, "%s: tensor '%s': expected shape %s (from the model's "
                 "configuration), found %s", src, name, ws, fs);
        return SG_ESHAPE;
    }
    *out = t;
    return SG_OK;
}

/* Convert a norm weight [d_model] to the f32 gain (1 + w), adding 1 only if the file stores w. */
static void make_gain(const sg_model *m, const sg_tensor *t, float *gain)
{
    int64_t n = t->shape[0];

    sg_dequant_row(t->dtype, t->data, gain, n);
    if (!m->w.norm_plus_one)
        for (int64_t i = 0; i < n; i++)
            gain[i] += 1.0f;
}

static const char *const mat_names[SG_LM_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

/* Bind every tensor of the network and convert the norm gains. */
static int bind_all(sg_model *m, const char *src, char *err, size_t errlen)
{
    const sg_model_info *hp = &m->info;
    const int64_t d = hp->d_model;
    const int64_t qd = (int64_t)hp->n_head * hp->head_dim;
    const int64_t kvd = (int64_t)hp->n_kv_head * hp->head_dim;
    const int64_t ff = hp->d_ff;
    const int64_t mat_shape[SG_LM_COUNT][2] = {
        {qd, d}, {kvd, d}, {kvd, d}, {d, qd}, {ff, d}, {ff, d}, {d, ff},
    };
    static const char *const norms2[SG_LN_COUNT] = {
        "input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
        "post_feedforward_layernorm", "self_attn.q_norm", "self_attn.k_norm",
    };
    /* Gemma 1: post_attention_layernorm is the norm before the MLP. */
    static const char *const norms1[SG_LN_COUNT] = {
        "input_layernorm", NULL, "post_attention_layernorm", NULL, NULL, NULL,
    };
    const char *const *norms = m->post_norms ? norms2 : norms1;
    const char *pre = m->prefix;
    char name[SG_TENSOR_NAME_MAX];
    const sg_tensor *t;
    /* every gain gets a slot of the larger of d_model and head_dim */
    const int64_t slot = d > hp->head_dim ? d : hp->head_dim;
    size_t n_gains = ((size_t)hp->n_layer * SG_LN_COUNT + 1) * (size_t)slot;
    float *g;
    int rc;

    snprintf(name, sizeof name, "%sembed_tokens.weight", pre);
    rc = bind(m, src, name, 2, hp->n_vocab, d, &m->embed, err, errlen);
    if (rc != SG_OK)
        return rc;
    m->gains = calloc(n_gains, sizeof *m->gains);
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->gains || !m->layers) {
        snprintf(err, errlen, "%s: out of memory", src);
        return SG_ENOMEM;
    }
    g = m->gains;
    for (int l = 0; l < hp->n_layer; l++) {
        sg_layer *L = &m->layers[l];
        for (int i = 0; i < SG_LM_COUNT; i++) {
            snprintf(name, sizeof name, "%slayers.%d.%s.weight", pre, l, mat_names[i]);
            rc = bind(m, src, name, 2, mat_shape[i][0], mat_shape[i][1], &L->t[i], err, errlen);
            if (rc != SG_OK)
                return rc;
        }
        for (int i = 0; i < SG_LN_COUNT; i++) {
            const int qk = i == SG_LN_Q || i == SG_LN_K;

            if (!norms[i] || (qk && !hp->qk_norm))
                continue;
            snprintf(name, sizeof name, "%slayers.%d.%s.weight", pre, l, norms[i]);
            rc = bind(m, src, name, 1, qk ? hp->head_dim : d, 0, &t, err, errlen);
            if (rc != SG_OK)
                return rc;
            make_gain(m, t, g);
            L->norm[i] = g;
            g += slot;
        }
    }
    snprintf(name, sizeof name, "%snorm.weight", pre);
    rc = bind(m, src, name, 1, d, 0, &t, err, errlen);
    if (rc != SG_OK)
        return rc;
    make_gain(m, t, g);
    m->final_norm = g;
    return SG_OK;
}

/*
 * Drop the pages of a weight's view from this process's resident set once its sg_mat holds a
 * repacked copy: the mapping is read-only and file-backed, so the pages stay in the page cache
 * (shared with other processes) and come back on the next touch. Only whole pages inside the
 * tensor are released, never a neighbour's.
 */
static void release_view(const sg_model *m, const sg_tensor *t)
{
    const long page = sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)t->data;
    uintptr_t b = a + t->nbytes;

    if (page <= 0)
        return;
    for (size_t i = 0; i <= m->w.n_maps; i++) {
        /* The safetensors files' mappings, then a GGUF file's (kept by its reader). */
        size_t size = 0;
        const void *map = i < m->w.n_maps ? m->w.maps[i]
                          : m->w.gguf != NULL ? sg_gguf_mapping(m->w.gguf, &size)
                                              : NULL;
        const uintptr_t lo = (uintptr_t)map;

        if (i < m->w.n_maps)
            size = m->w.map_sizes[i];
        if (map != NULL && a >= lo && b <= lo + size) {
            a = (a + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
            b = b / (uintptr_t)page * (uintptr_t)page;
            if (b > a)
                madvise((void *)a, b - a, MADV_DONTNEED);
            return;
        }
    }
}

/* Prepare every matrix, with the pack cache `pc` (NULL: none). */
static int prepare(const sg_model *m, sg_precision prec, sg_packcache *pc, sg_layer *layers_out,
                   sg_mat **embed_out, char *err, size_t errlen)
{
    int rc;

    *embed_out = NULL;
    for (int l = 0; l < m->info.n_layer; l++) {
        layers_out[l] = m->layers[l];
        memset(layers_out[l].mat, 0, sizeof layers_out[l].mat);
    }
    for (int l = 0; l < m->info.n_layer; l++) {
        for (int i = 0; i < SG_LM_COUNT; i++) {
            rc = sg_mat_new_cached(&layers_out[l].mat[i], layers_out[l].t[i], prec, pc, err,
                                   errlen);
            if (rc != SG_OK)
                goto fail;
            if (sg_mat_repacked(layers_out[l].mat[i]))
                release_view(m, layers_out[l].t[i]);
        }
    }
    rc = sg_mat_new(embed_out, m->embed, prec, err, errlen);
    if (rc != SG_OK)
        goto fail;
    return SG_OK;
fail:
    sg_model_free_mats(layers_out, m->info.n_layer, *embed_out);
    *embed_out = NULL;
    return rc;
}

/* Open the pack cache of `m` at `prec`; NULL when there is none (off, or a warned failure). */
static sg_packcache *open_pack_cache(const sg_model *m, sg_precision prec)
{
    char key[16384];
    char name[160];
    char msg[512];
    sg_packcache *pc = NULL;
    int rc;

    if (m->pack_cache == NULL)
        return NULL;
    rc = sg_model_pack_key(m->path, prec, key, sizeof key, msg, sizeof msg);
    if (rc == SG_OK) {
        snprintf(name, sizeof name, "%s-%s", m->info.name, sg_precision_name(prec));
        rc = sg_packcache_open(&pc, m->pack_cache, name, key, msg, sizeof msg);
    }
    if (rc != SG_OK) {
        sg_log(SG_LOG_WARN, "%s (loading without the pack cache)", msg);
        return NULL;
    }
    return pc;
}

int sg_model_prepare_mats(const sg_model *m, sg_precision prec, sg_layer *layers_out,
                          sg_mat **embed_out, char *err, size_t errlen)
{
    sg_packcache *pc = open_pack_cache(m, prec);
    char msg[512];
    int rc;

    rc = prepare(m, prec, pc, layers_out, embed_out, err, errlen);
    if (rc != SG_OK || pc == NULL)
        goto done;
    if (sg_packcache_is_hit(pc)) {
        sg_log(SG_LOG_INFO, "pack cache %s: mapped %zu packed weights", sg_packcache_path(pc),
               sg_packcache_count(pc));
        goto done;
    }
    if (sg_packcache_count(pc) == 0) { /* no avx2 kernel ran: nothing to cache */
        sg_packcache_commit(pc, msg, sizeof msg);
        goto done;
    }
    if (sg_packcache_commit(pc, msg, sizeof msg) != SG_OK) {
        sg_log(SG_LOG_WARN, "%s (running on the private repacked weights)", msg);
        goto done;
    }
    /* Swap the private copies for the file just written, one matrix at a time (so that the
     * resident set never holds both), so that this process shares its pages with the next
     * ones. A matrix that cannot be swapped keeps its private copy. */
    for (int l = 0; l < m->info.n_layer && sg_packcache_is_hit(pc); l++) {
        for (int i = 0; i < SG_LM_COUNT; i++) {
            sg_mat *nm = NULL;

            if (!sg_mat_repacked(layers_out[l].mat[i]) ||
                sg_mat_new_cached(&nm, layers_out[l].t[i], prec, pc, msg, sizeof msg) != SG_OK)
                continue;
            if (sg_mat_mapped(nm)) {
                sg_mat_free(layers_out[l].mat[i]);
                layers_out[l].mat[i] = nm;
            } else {
                sg_mat_free(nm);
            }
        }
    }
done:
    sg_packcache_unref(pc);
    return rc;
}

const char *sg_model_tally_kernels(const sg_layer *layers, int n_layer, sg_precision prec)
{
    /* Kernel names are static strings: a handful of distinct pointers. */
    enum { MAX_KINDS = 8 };
    const char *name[MAX_KINDS];
    int count[MAX_KINDS], kinds = 0, total = 0, fallback = 0, best = 0;
    char list[256] = "";
    size_t used = 0;

    for (int l = 0; l < n_layer; l++) {
        for (int i = 0; i < SG_LM_COUNT; i++) {
            const char *k = sg_mat_kernel(layers[l].mat[i]);
            int j = 0;

            while (j < kinds && strcmp(name[j], k) != 0)
                j++;
            if (j == kinds && kinds < MAX_KINDS) {
                name[kinds] = k;
                count[kinds++] = 0;
            }
            if (j < kinds)
                count[j]++;
            total++;
            fallback += sg_mat_precision(layers[l].mat[i]) != prec;
        }
    }
    for (int j = 0; j < kinds; j++) {
        if (count[j] > count[best])
            best = j;
        if (used < sizeof list) {
            int w = snprintf(list + used, sizeof list - used, "%s%s x %d", j ? ", " : "",
                             name[j], count[j]);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    sg_log(SG_LOG_INFO, "precision %s: kernels %s", sg_precision_name(prec), list);
    if (fallback > 0)
        sg_log(SG_LOG_WARN,
               "precision %s: %d of %d matrices have no %s kernel here and are computed in f32 "
               "(this CPU lacks the instructions, or the process may not create executable "
               "memory for oneDNN's JIT, e.g. a systemd unit with MemoryDenyWriteExecute=yes)",
               sg_precision_name(prec), fallback, total, sg_precision_name(prec));
    return kinds ? name[best] : "portable-f32";
}

const char *sg_model_kernel(const sg_model *m)
{
    return m->kernel;
}

void sg_model_free_mats(sg_layer *layers, int n_layer, sg_mat *embed)
{
    if (layers) {
        for (int l = 0; l < n_layer; l++) {
            for (int i = 0; i < SG_LM_COUNT; i++) {
                sg_mat_free(layers[l].mat[i]);
                layers[l].mat[i] = NULL;
            }
        }
    }
    sg_mat_free(embed);
}

/*
 * Where the language model's tensors are: "model." (Gemma*ForCausalLM, GGUF), or in a Gemma 3
 * multimodal file "model.language_model." (transformers >= 4.52) or "language_model.model."
 * (the layout first published). The vision tower and projector are left unread, and said so.
 */
static void find_prefix(sg_model *m)
{
    static const char *const prefixes[] = {"model.", "model.language_model.",
                                           "language_model.model."};
    char name[SG_TENSOR_NAME_MAX];
    size_t other = 0;

    m->prefix = prefixes[0];
    if (!m->info.multimodal)
        return;
    m->prefix = prefixes[1]; /* what a missing tensor is then reported under */
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        snprintf(name, sizeof name, "%sembed_tokens.weight", prefixes[i]);
        if (sg_weights_find(&m->w, name)) {
            m->prefix = prefixes[i];
            break;
        }
    }
    for (size_t i = 0; i < m->w.n_tensors; i++)
        if (strncmp(m->w.tensors[i].name, m->prefix, strlen(m->prefix)) != 0 &&
            strstr(m->w.tensors[i].name, "lm_head.") == NULL)
            other++;
    sg_log(SG_LOG_INFO, "%s: Gemma 3 multimodal checkpoint: the language model's tensors are "
           "under '%s'; %zu tensors of the vision tower and projector are ignored",
           m->path, m->prefix, other);
}

/* Is `path` a GGUF file (by its magic)? */
static int is_gguf(const char *path)
{
    unsigned char magic[4];
    FILE *f = fopen(path, "rb");
    int yes = 0;

    if (!f)
        return 0;
    yes = fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
    fclose(f);
    return yes;
}

/* Load safetensors weights and config.json for a folder or a single .safetensors file. */
static int load_safetensors(sg_model *m, const char *path, int is_dir, char *err, size_t errlen)
{
    char cfg[4096];
    char file[4096];
    int rc;

    if (is_dir) {
        if (!join(cfg, sizeof cfg, path, "config.json")) {
            snprintf(err, errlen, "%s: path too long", path);
            return SG_EINVAL;
        }
    } else {
        const char *slash = strrchr(path, '/');
        int dl = slash ? (int)(slash - path) : 1;
        if (snprintf(cfg, sizeof cfg, "%.*s/config.json", dl, slash ? path : ".") >=
            (int)sizeof cfg) {
            snprintf(err, errlen, "%s: path too long", path);
            return SG_EINVAL;
        }
    }
    if (!file_exists(cfg)) {
        snprintf(err, errlen, "%s: missing config.json (expected %s beside the weights)", path,
                 cfg);
        return SG_EIO;
    }
    rc = sg_config_load(cfg, &m->w.info, err, errlen);
    if (rc != SG_OK)
        return rc;

    if (!is_dir)
        return sg_st_load(path, &m->w, err, errlen);
    if (!join(file, sizeof file, path, "model.safetensors.index.json")) {
        snprintf(err, errlen, "%s: path too long", path);
        return SG_EINVAL;
    }
    if (file_exists(file))
        return sg_st_load_index(file, &m->w, err, errlen);
    join(file, sizeof file, path, "model.safetensors");
    if (file_exists(file))
        return sg_st_load(file, &m->w, err, errlen);
    snprintf(err, errlen, "%s: no model.safetensors or model.safetensors.index.json in the "
             "folder", path);
    return SG_EIO;
}

/*
 * The tokenizer's pieces must fit the model's vocabulary, except special tokens past its end:
 * Gemma 3's tokenizer.json carries <image_soft_token> = 262144 while the 1B's vocab_size is
 * 262144. Those are kept (they are never the answer pieces; a prompt that produces one is
 * refused by the context, naming the id) and logged.
 */
static int check_tok_vocab(const sg_model *m, const char *src, char *err, size_t errlen)
{
    const size_t n = sg_tok_n_vocab(m->tok);
    const int32_t v = m->info.n_vocab;

    for (size_t id = (size_t)v; id < n; id++) {
        if (!sg_tok_is_special(m->tok, (int32_t)id)) {
            snprintf(err, errlen, "%s: the tokenizer has %zu pieces, expected at most the "
                     "model's vocab_size %d (piece %zu '%.40s' is not a special token)",
                     src, n, (int)v, id, sg_tok_piece(m->tok, (int32_t)id));
            return SG_EFORMAT;
        }
    }
    if (n > (size_t)v)
        sg_log(SG_LOG_INFO, "%s: the tokenizer has %zu pieces, the model %d: the special "
               "token(s) from id %d ('%.40s') are outside the model and refused if a prompt "
               "produces them", src, n, (int)v, (int)v, sg_tok_piece(m->tok, v));
    return SG_OK;
}

/*
 * The tokenizer at the same path: a folder's tokenizer.json or tokenizer.model, the files beside
 * a single .safetensors, or a GGUF's metadata. A folder without tokenizer files is fine (no
 * tokenizer); a tokenizer that is there but broken, or bigger than the model's vocabulary, is an
 * error.
 */
static int load_tokenizer(sg_model *m, const char *path, int is_dir, char *err, size_t errlen)
{
    char dir[4096];
    char a[4200];
    char b[4200];
    char sub[1024];
    const char *src = path;
    int rc;

    if (strcmp(m->info.format, "gguf") != 0) {
        if (is_dir) {
            snprintf(dir, sizeof dir, "%s", path);
        } else {
            const char *slash = strrchr(path, '/');
            snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1,
                     slash ? path : ".");
        }
        join(a, sizeof a, dir, "tokenizer.json");
        join(b, sizeof b, dir, "tokenizer.model");
        if (!file_exists(a) && !file_exists(b)) {
            sg_log(SG_LOG_INFO, "%s: no tokenizer.json or tokenizer.model; no tokenizer", dir);
            return SG_OK;
        }
        src = dir;
    } else if (sg_gguf_find_key(m->w.gguf, "tokenizer.ggml.tokens") < 0) {
        sg_log(SG_LOG_INFO, "%s: no tokenizer.ggml.tokens in the GGUF; no tokenizer", path);
        return SG_OK;
    }
    rc = sg_tok_open(&m->tok, src, sub, sizeof sub);
    if (rc != SG_OK) {
        snprintf(err, errlen, "%s", sub);
        return rc;
    }
    return check_tok_vocab(m, src, err, errlen);
}

int sg_model_open(sg_model **out, const char *path, const sg_model_opts *opts, char *err,
                  size_t errlen)
{
    sg_model *m;
    struct stat st;
    int rc;

    *out = NULL;
    if (!path || !*path) {
        snprintf(err, errlen, "no model path given");
        return SG_EINVAL;
    }
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return SG_EIO;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "%s: out of memory", path);
        return SG_ENOMEM;
    }
    m->opts = opts ? *opts : sg_model_opts_default();
    if (m->opts.precision < 0 || m->opts.precision >= SG_PREC_COUNT) {
        snprintf(err, errlen, "unknown precision %d", (int)m->opts.precision);
        rc = SG_EINVAL;
        goto fail;
    }
    m->path = strdup(path);
    if (m->opts.pack_cache != NULL && m->opts.pack_cache[0] == '\0')
        m->opts.pack_cache = NULL;
    if (m->opts.pack_cache != NULL)
        m->pack_cache = strdup(m->opts.pack_cache);
    if (m->path == NULL || (m->opts.pack_cache != NULL && m->pack_cache == NULL)) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = SG_ENOMEM;
        goto fail;
    }
    m->opts.pack_cache = m->pack_cache;

    if (S_ISDIR(st.st_mode)) {
        rc = load_safetensors(m, path, 1, err, errlen);
        snprintf(m->w.info.format, sizeof m->w.info.format, "safetensors");
    } else if (is_gguf(path)) {
        rc = sg_gguf_load(path, &m->w, err, errlen);
    } else if (has_suffix(path, ".safetensors")) {
        rc = load_safetensors(m, path, 0, err, errlen);
        snprintf(m->w.info.format, sizeof m->w.info.format, "safetensors");
    } else {
        snprintf(err, errlen, "%s: expected a model folder, a .safetensors file or a GGUF file",
                 path);
        rc = SG_EINVAL;
    }
    if (rc != SG_OK)
        goto fail;
    if (m->w.info.name[0] == '\0') {
        char full[4096];
        /* A folder's name says more than "model.safetensors". */
        if (!S_ISDIR(st.st_mode) && has_suffix(path, "/model.safetensors")) {
            snprintf(full, sizeof full, "%.*s", (int)(strlen(path) - strlen("/model.safetensors")),
                     path);
            base_name(m->w.info.name, sizeof m->w.info.name, full);
        } else {
            base_name(m->w.info.name, sizeof m->w.info.name, path);
        }
    }
    m->info = m->w.info;
    m->post_norms = strcmp(m->info.arch, "gemma") != 0;
    find_prefix(m);

    rc = bind_all(m, path, err, errlen);
    if (rc != SG_OK)
        goto fail;
    {
        sg_layer *tmp = m->layers;
        rc = sg_model_prepare_mats(m, m->opts.precision, tmp, &m->embed_mat, err, errlen);
        if (rc != SG_OK)
            goto fail;
        m->kernel = sg_model_tally_kernels(m->layers, m->info.n_layer, m->opts.precision);
    }
    if (m->opts.load_tokenizer) {
        rc = load_tokenizer(m, path, S_ISDIR(st.st_mode), err, errlen);
        if (rc != SG_OK)
            goto fail;
    }
    sg_log(SG_LOG_INFO, "%s: %s model, %d layers, d_model %d, vocab %d, %zu tensors", path,
           m->info.arch, m->info.n_layer, m->info.d_model, m->info.n_vocab, m->w.n_tensors);
    *out = m;
    return SG_OK;
fail:
    sg_model_close(m);
    return rc;
}

void sg_model_close(sg_model *m)
{
    if (!m)
        return;
    if (m->layers)
        sg_model_free_mats(m->layers, m->info.n_layer, m->embed_mat);
    free(m->layers);
    free(m->gains);
    sg_weights_free(&m->w);
    sg_tok_free(m->tok);
    free(m->path);
    free(m->pack_cache);
    free(m);
}

const sg_model_info *sg_model_get_info(const sg_model *m)
{
    return &m->info;
}

const sg_tok *sg_model_tok(const sg_model *m)
{
    return m->tok;
}
