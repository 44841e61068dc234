#ifndef SG_ENGINE_H
#define SG_ENGINE_H
/*
 * sg_engine.h: the shieldd transformer core (Gemma 2), as a library.
 *
 * Usage (error handling elided):
 *
 *     sg_model *m;
 *     char err[512];
 *     sg_model_opts mo = sg_model_opts_default();      // f32, all cores
 *     sg_model_open(&m, "/models/shieldgemma-2b", &mo, err, sizeof err);
 *     const sg_tok *tok = sg_model_tok(m);              // tokenizer from the same path
 *     sg_ctx *c;
 *     sg_ctx_opts co = sg_ctx_opts_default();
 *     sg_ctx_new(&c, m, &co, err, sizeof err);
 *     int32_t want[2] = {3553, 1294};                   // "Yes", "No"
 *     float z[2];
 *     sg_logits_req rq = {want, 2, 0, z};
 *     sg_ctx_append(c, ids, n, &rq);                    // prefill; z = logits at the last position
 *     sg_ctx_free(c);
 *     sg_model_close(m);
 *
 * The engine has no sockets, no YAML and no process state. Every fallible call returns an int:
 * SG_OK (0) or a negative sg_err; sg_engine_strerror() names the code, and the handle (or a
 * caller buffer, for constructors) carries the detailed message.
 *
 * The library never exits and never prints: it logs through the hook set with
 * sg_engine_set_log() (default: stderr for warnings and errors).
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sg_err {
    SG_OK = 0,
    SG_ENOMEM = -1,       /* allocation failed */
    SG_EIO = -2,          /* open/read/mmap failed */
    SG_EFORMAT = -3,      /* a file is malformed */
    SG_ESHAPE = -4,       /* a tensor's shape does not match the configuration */
    SG_EUNSUPPORTED = -5, /* valid, but not something this engine handles */
    SG_EINVAL = -6,       /* a bad argument from the caller */
    SG_ERANGE = -7,       /* over a limit: context length, capacity, count */
    SG_ECOMPUTE = -8,     /* a compute kernel failed at run time (e.g. oneDNN); no result */
    SG_ERR_COUNT = 9
} sg_err;

/* Static description of an error code; never NULL. */
const char *sg_engine_strerror(int err);

/*
 * The one error formatter of the engine and of the policies library built on it (base/err.c).
 * Write "WHERE: message" (just "message" when `where` is NULL) into err (capacity errlen; err
 * may be NULL or errlen 0: nothing is written) and return `code`, so that a failure reads
 * `return sg_errf(err, errlen, SG_EFORMAT, file, "key '%s': ...", key);`.
 */
int sg_errf(char *err, size_t errlen, int code, const char *where, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* The same with a va_list, for functions that write into their own handle's message. */
int sg_verrf(char *err, size_t errlen, int code, const char *where, const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 0)))
#endif
    ;

/*
 * The one reader of small whole files (base/file.c), for the engine (config.json, safetensors
 * indexes, tokenizer files; weight files are mapped) and the policies library (policy files).
 * Read the regular file `path` of at most `max` bytes into a malloc'd, NUL-terminated buffer
 * (*buf, caller frees; *len bytes without the NUL). SG_OK; SG_EIO (cannot open, not a regular
 * file, read error), SG_ERANGE (over `max`), SG_ENOMEM; `err` names the file and the cause.
 */
int sg_read_file(const char *path, size_t max, char **buf, size_t *len, char *err,
                 size_t errlen);

typedef enum sg_log_level {
    SG_LOG_ERROR = 0,
    SG_LOG_WARN = 1,
    SG_LOG_INFO = 2,
    SG_LOG_DEBUG = 3,
    SG_LOG_LEVEL_COUNT
} sg_log_level;

typedef void (*sg_log_fn)(sg_log_level level, const char *msg, void *ud);

/*
 * Route the libraries' log lines (engine and policies) to `fn` (NULL restores the default,
 * which writes warnings and errors to stderr). Set it once, before other threads use the
 * libraries: like ggml_log_set, it is the one process-wide setting of the library.
 */
void sg_engine_set_log(sg_log_fn fn, void *ud);

/* Internal: log a printf-style line through the hook. */
void sg_log(sg_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;


/* ---- Models ---------------------------------------------------------------------------- */

typedef struct sg_model sg_model;
typedef struct sg_tok sg_tok; /* see sg_tok.h */

typedef enum sg_precision {
    SG_PREC_F32 = 0,  /* the reference: matches HF Gemma2ForCausalLM in float32 */
    SG_PREC_BF16 = 1, /* bf16 weights and products, f32 accumulation and element-wise work */
    SG_PREC_INT8 = 2, /* int8 weights (per-row/per-block scales), int8 activations per token */
    SG_PREC_COUNT
} sg_precision;

typedef struct sg_model_opts {
    int n_threads;          /* 0: all online cores */
    sg_precision precision; /* compute precision of the matrix products */
    int load_tokenizer;     /* 1 (default): also load the tokenizer found at the same path */
    /*
     * Packed-weight cache folder (copied; NULL or "" (default): no cache). The fast avx2
     * kernels' repacked weights are written there once, to one file per model + precision +
     * kernel layouts + CPU features, and later loads map that file read-only and shared
     * instead of repacking: faster loads, and processes serving the same model share the
     * pages. A missing, stale, truncated or corrupt file is ignored (a warning is logged) and
     * rebuilt; a folder that cannot be created or written only costs the cache (warning).
     */
    const char *pack_cache;
} sg_model_opts;

sg_model_opts sg_model_opts_default(void);

/* Hyper-parameters, from config.json or GGUF metadata (defaults as llama.cpp where absent). */
/* The most layers a model may have (config.json and GGUF are checked against it). */
#define SG_MAX_LAYERS 1024

typedef struct sg_model_info {
    char arch[32];          /* "gemma2", "gemma" or "gemma3" (Gemma 3 text, multimodal included) */
    char format[32];        /* "safetensors", "gguf" */
    char name[128];         /* a display name: the folder or file name, or general.name */
    int n_vocab;
    int d_model;            /* hidden_size */
    int n_layer;
    int n_head;
    int n_kv_head;
    int head_dim;
    int d_ff;               /* intermediate_size */
    int n_ctx;              /* max_position_embeddings */
    int sliding_window;     /* keys visible from a sliding layer, self included */
    float rope_theta;       /* RoPE base of the full-attention layers */
    float rope_scale;       /* their linear RoPE scaling factor (positions / factor; 1: none) */
    float rope_local_theta; /* RoPE base of the sliding layers (Gemma 3: rope_local_base_freq) */
    float rope_local_scale; /* their linear factor (Gemma 3: 1) */
    int qk_norm;            /* Gemma 3: each query and key head RMSNorm-ed (1 + w) before RoPE */
    int multimodal;         /* the language model of a Gemma3ForConditionalGeneration file */
    unsigned char layer_sliding[SG_MAX_LAYERS]; /* 1: layer l sees sliding_window keys */
    float rms_eps;
    float query_scale;      /* query_pre_attn_scalar^-0.5 */
    float attn_softcap;     /* 0: none */
    float final_softcap;    /* 0: none */
    float embed_scale;      /* sqrt(d_model) */
    int bos_id;
    int eos_id;
} sg_model_info;

/*
 * Open the model at `path`: a Hugging Face folder (config.json + model.safetensors, or shards
 * with model.safetensors.index.json; tokenizer.json and/or tokenizer.model), a single
 * .safetensors file (config.json beside it), or a GGUF file. Weights are mmapped read-only.
 * On failure returns a negative sg_err and writes a message naming the file, the tensor or key,
 * what was expected and what was found into `err` (capacity `errlen`). The caller owns *out and
 * releases it with sg_model_close(). The model is read-only after open and may be shared by
 * contexts on several threads.
 */
int sg_model_open(sg_model **out, const char *path, const sg_model_opts *opts, char *err,
                  size_t errlen);
/* Release a model (NULL is fine). Every sg_ctx of it must be freed first. */
void sg_model_close(sg_model *m);
/* Borrowed; valid until sg_model_close(). */
const sg_model_info *sg_model_get_info(const sg_model *m);
/*
 * The kernel that runs the model's matrix products at its precision (sg_model_opts): e.g.
 * "avx2-bf16", "dnnl-u8s8", "dnnl-bf16", or "portable-f32". A bf16/int8 precision that has no
 * kernel here (this CPU lacks the instructions, or the process may not create executable
 * memory for oneDNN's JIT, as under systemd's MemoryDenyWriteExecute=yes) falls back to the
 * fastest f32 kernel, and sg_model_open logs a warning. When the layers differ, the kernel of
 * the most matrices. Static string.
 */
const char *sg_model_kernel(const sg_model *m);
/* "f32", "bf16" or "int8". Static string ("?" for a value outside sg_precision). */
const char *sg_precision_name(sg_precision p);
/* The precision named "f32", "bf16" or "int8" (exactly) into *out: SG_OK, else SG_EINVAL
 * (*out unchanged). The one parser of these names, for configs and command lines. */
int sg_precision_parse(const char *name, sg_precision *out);
/* The tokenizer loaded with the model, or NULL if none was found or asked for. Borrowed. */
const sg_tok *sg_model_tok(const sg_model *m);

/* ---- Text ---------------------------------------------------------------------------------- */

/*
 * Check that s[0..len) is well-formed UTF-8 (no overlong forms, no surrogates, nothing above
 * U+10FFFF, no truncated sequence). Returns 1 if it is; else 0 and, if `bad` is not NULL, the
 * byte offset of the first invalid sequence in *bad. The one validator of the project.
 */
int sg_utf8_valid(const char *s, size_t len, size_t *bad);

/* The largest n <= len such that s[0..n) ends on a character boundary of valid UTF-8 `s`. */
size_t sg_utf8_floor(const char *s, size_t len);

/* ---- Contexts: KV cache, prefill, shared-prefix branches ---------------------------------- */

typedef struct sg_ctx sg_ctx;

typedef struct sg_ctx_opts {
    int n_ctx;        /* capacity of the trunk in tokens; 0: the model's n_ctx */
    int max_branches; /* branches evaluated at once by sg_ctx_branches(); 0: 16 */
    int max_branch_tokens; /* tokens of all branches together in one call; 0: 4096 */
    int precision;    /* -1: the model's; else an sg_precision for this context */
} sg_ctx_opts;

sg_ctx_opts sg_ctx_opts_default(void);

/*
 * Logits wanted from an evaluation. `ids` lists vocabulary ids (n_ids of them); n_ids == 0 asks
 * for the whole vocabulary. With all_positions = 0 one row is written (the last position); with
 * 1, one row per appended token. `out` receives rows x (n_ids or n_vocab) floats, row-major.
 * Logits are final: soft-capped as the model's config says.
 */
typedef struct sg_logits_req {
    const int32_t *ids;
    size_t n_ids;
    int all_positions;
    float *out;
} sg_logits_req;

/* A context owns the KV cache and scratch for one sequence (the trunk) and its branches.
 * Allocates everything once; nothing is allocated per token. Not thread-safe: one per thread.
 * `opts` NULL: the defaults. SG_OK; SG_EINVAL (bad option), SG_ENOMEM, or the error of
 * preparing the matrices at another precision; `err` (capacity errlen, may be NULL) says why. */
int sg_ctx_new(sg_ctx **out, sg_model *m, const sg_ctx_opts *opts, char *err, size_t errlen);
void sg_ctx_free(sg_ctx *c);
/* The message of the last failure on this context. Never NULL. */
const char *sg_ctx_errmsg(const sg_ctx *c);

/* The branch limits of `c` (its sg_ctx_opts with the defaults resolved): at most
 * *max_branches branches and *max_branch_tokens tokens in all per sg_ctx_branches() call. */
void sg_ctx_branch_limits(const sg_ctx *c, size_t *max_branches, size_t *max_branch_tokens);

/* Tokens in the trunk and their count. Borrowed; valid until the next call on `c`. */
size_t sg_ctx_len(const sg_ctx *c);
const int32_t *sg_ctx_tokens(const sg_ctx *c);
/* Keep the first n trunk tokens and drop the rest (n <= len). Used to reuse a cached prefix. */
int sg_ctx_truncate(sg_ctx *c, size_t n);

/*
 * Append `n` tokens to the trunk (prefill at positions len..len+n-1) and, if `req` is not
 * NULL, compute the logits it asks for. SG_ERANGE if the trunk would exceed n_ctx; SG_EINVAL
 * for a token id outside the vocabulary; SG_ECOMPUTE if a compute kernel failed at run time
 * (req->out is then undefined). On failure the trunk is as before the call.
 */
int sg_ctx_append(sg_ctx *c, const int32_t *ids, size_t n, const sg_logits_req *req);

/*
 * Evaluate `n_branches` continuations of the trunk as one batch: branch b is tokens[b][0..n[b])
 * at positions len..len+n[b]-1, attending to the trunk and to itself only. The trunk is not
 * changed. req->all_positions must be 0; req->out receives one row per branch (the logits at
 * its last token). Every n[b] must be >= 1. SG_ERANGE beyond max_branches branches or
 * max_branch_tokens tokens in all; SG_EINVAL for an empty branch or an id outside the vocabulary;
 * SG_ECOMPUTE if a compute kernel failed at run time (req->out is then undefined).
 * With the portable f32 kernels a branch's logits are bit-identical to appending its tokens to
 * the trunk in a fresh context.
 */
int sg_ctx_branches(sg_ctx *c, const int32_t *const *tokens, const size_t *n, size_t n_branches,
                    const sg_logits_req *req);

/* Tokens run through the model by this context since it was created (for usage reports). */
uint64_t sg_ctx_computed_tokens(const sg_ctx *c);

/* ---- Prefix cache: key/value rows of many prefixes, shared by contexts -------------------- */

/*
 * A prefix cache holds the key/value rows of many token prefixes at once (a radix tree over
 * token ids, in blocks of SG_PREFIX_BLOCK_TOKENS tokens), for any number of contexts of one
 * model and precision, on any threads (it locks inside). Blocks are allocated once, at
 * creation, within the byte bound (lazily backed by the OS); when full, the least recently
 * used leaf block goes. Rows are stored as the contexts compute them (f32), so a prefix
 * loaded from the cache gives bit-identical results to computing it.
 */
typedef struct sg_prefix_cache sg_prefix_cache;

#define SG_PREFIX_BLOCK_TOKENS 16

typedef struct sg_prefix_cache_stats {
    size_t bytes;          /* held now: blocks in use x block_bytes (<= capacity_bytes) */
    size_t capacity_bytes; /* all blocks x block_bytes: the largest multiple <= the bound */
    size_t block_bytes;    /* a block: its rows (every layer's keys and values), token ids and
                              bookkeeping */
    size_t block_tokens;
    size_t tokens;         /* tokens held (a block may be partly filled) */
    uint64_t hits;         /* lookups the cache extended beyond what the context held */
    uint64_t misses;       /* lookups it did not */
    uint64_t evictions;    /* blocks evicted */
    uint64_t cached_tokens; /* tokens loaded from the cache into contexts */
} sg_prefix_cache_stats;

/* The default bound for `m`: the rows of 6144 tokens (about 1.3 GB for a Gemma 2 2B). */
size_t sg_prefix_cache_default_bytes(const sg_model *m);

/*
 * A cache of at most `max_bytes` for contexts of model `m` (borrowed; it must outlive the
 * cache) computing at `precision` (-1: the model's). SG_EINVAL (with a message in err) when
 * max_bytes holds not even one block; SG_ENOMEM. The caller owns *out (sg_prefix_cache_free).
 */
int sg_prefix_cache_new(sg_prefix_cache **out, const sg_model *m, int precision,
                        size_t max_bytes, char *err, size_t errlen);
/* Free a cache (NULL is fine); no context may be using it. */
void sg_prefix_cache_free(sg_prefix_cache *pc);
/* A consistent snapshot of the figures. */
void sg_prefix_cache_get_stats(sg_prefix_cache *pc, sg_prefix_cache_stats *out);

/*
 * Make the trunk of `c` hold exactly ids[0..n): keep what it already holds of them, load the
 * longest further prefix the cache `pc` holds (NULL: no cache), compute the rest, and store the
 * trunk's new rows in the cache. *reused (may be NULL) receives the tokens not computed. On
 * failure (the errors of sg_ctx_append; SG_EINVAL for a cache of another model or precision)
 * the trunk holds a prefix of ids and nothing of this call is stored in the cache.
 */
int sg_ctx_sync_prefix(sg_ctx *c, sg_prefix_cache *pc, const int32_t *ids, size_t n,
                       size_t *reused);

#endif /* SG_ENGINE_H */
