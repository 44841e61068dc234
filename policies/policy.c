/*
 * policy.c: load and validate a directory of policy files and the prompt template (YAML, with
 * libyaml's document API), and render prompts as parts.
 *
 * Directory layout: template.yaml holds the two prompt templates and the answer pieces; every
 * other *.yaml (or *.yml) file not starting with '.' is one policy. Files are read in name
 * order, which is the order of the set. Every error names "file:line:column" (1-based; the
 * column counts characters, as libyaml does).
 */
#include "sg_policy.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "sg_engine.h"


#define TEMPLATE_FILE "template.yaml"
#define MAX_FILE_BYTES (1u << 20) /* a policy file is a few hundred bytes */
#define MAX_POLICIES 1024
#define MAX_NAME 64
#define MAX_FLOW_OPENERS 1000 /* libyaml slows down quadratically with flow nesting */

/* A template, split at its placeholders. */
typedef struct tmpl {
    char *text;                           /* the whole template, owned */
    sg_prompt_part parts[SG_PROMPT_MAX_PARTS]; /* TEMPLATE parts point into text */
    int n_parts;
} tmpl;

struct sg_policy_set {
    sg_policy *policies; /* n, strings owned */
    size_t n;
    tmpl tmpl[SG_MODE_COUNT];
    char *answer_yes;
    char *answer_no;
    char *description;
    char *dir;
    char *template_file;
};

static const char *const err_names[SG_POLICY_ERR_COUNT] = {
    "success",
    "out of memory",
    "cannot read policy file or directory",
    "YAML syntax error",
    "invalid policy file",
    "invalid argument",
};

const char *sg_policy_strerror(int err)
{
    if (err > 0 || -err >= SG_POLICY_ERR_COUNT)
        return "unknown error";
    return err_names[-err];
}

/* ---- Error reporting ------------------------------------------------------------------------ */

typedef struct loader {
    const char *path; /* the file being read, for messages */
    const char *buf;  /* its bytes (for offset -> line:column) */
    size_t len;
    char *err;
    size_t errlen;
} loader;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail(loader *L, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sg_verrf(L->err, L->errlen, code, NULL, fmt, ap);
    va_end(ap);
    return code;
}

/* "path:line:col: message", with a libyaml mark (0-based). */
#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int fail_at(loader *L, yaml_mark_t m, int code, const char *fmt, ...)
{
    char where[4200];
    va_list ap;

    snprintf(where, sizeof where, "%s:%zu:%zu", L->path, m.line + 1, m.column + 1);
    va_start(ap, fmt);
    sg_verrf(L->err, L->errlen, code, where, fmt, ap);
    va_end(ap);
    return code;
}

/* The mark (line, column in characters) of byte `off` of the file. */
static yaml_mark_t mark_of_offset(const loader *L, size_t off)
{
    yaml_mark_t m = {0, 0, 0};

    for (size_t i = 0; i < off && i < L->len; i++) {
        unsigned char c = (unsigned char)L->buf[i];

        if (c == '\n') {
            m.line++;
            m.column = 0;
        } else if ((c & 0xC0) != 0x80) {
            m.column++;
        }
    }
    m.index = off;
    return m;
}

/* ---- Small helpers --------------------------------------------------------------------------- */

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *join_path(const char *dir, const char *name)
{
    size_t a = strlen(dir);
    size_t b = strlen(name);
    char *p = malloc(a + b + 2);

    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* Read a whole file (at most MAX_FILE_BYTES) into a malloc'd buffer. */
static int read_file(loader *L, char **out, size_t *len)
{
    char msg[512];
    int rc = sg_read_file(L->path, MAX_FILE_BYTES, out, len, msg, sizeof msg);

    switch (rc) {
    case SG_OK:
        return SG_POLICY_OK;
    case SG_ENOMEM:
        return fail(L, SG_POLICY_ENOMEM, "%s", msg);
    case SG_ERANGE:
        return fail(L, SG_POLICY_EINVALID, "%s", msg);
    default:
        return fail(L, SG_POLICY_EIO, "%s", msg);
    }
}

/* ---- YAML nodes ------------------------------------------------------------------------------ */

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

/* A string value: any scalar style; valid UTF-8, no NUL (a "\0" escape). */
static int get_string(loader *L, const yaml_node_t *n, const char *key, const char **s,
                      size_t *len)
{
    const char *v;
    size_t vl;
    size_t bad;

    if (n->type != YAML_SCALAR_NODE)
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID, "'%s' must be a string, not %s", key,
                       node_kind(n));
    v = (const char *)n->data.scalar.value;
    vl = n->data.scalar.length;
    if (memchr(v, '\0', vl))
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID, "'%s' contains a NUL character",
                       key);
    if (!sg_utf8_valid(v, vl, &bad))
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID,
                       "'%s' is not valid UTF-8 (byte %zu of the value)", key, bad);
    *s = v;
    *len = vl;
    return SG_POLICY_OK;
}

/* A non-empty string on one line with no leading or trailing whitespace. */
static int get_line(loader *L, const yaml_node_t *n, const char *key, const char **s, size_t *len)
{
    int rc = get_string(L, n, key, s, len);

    if (rc < 0)
        return rc;
    if (*len == 0)
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID, "'%s' is empty", key);
    if (memchr(*s, '\n', *len) || memchr(*s, '\r', *len))
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID, "'%s' must be a single line", key);
    return SG_POLICY_OK;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int get_guideline(loader *L, const yaml_node_t *n, const char *key, char **out)
{
    const char *s;
    size_t len;
    int rc = get_string(L, n, key, &s, &len);

    if (rc < 0)
        return rc;
    if (len == 0)
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID, "guideline '%s' is empty", key);
    if (len >= 2 && s[0] == '*' && s[1] == ' ')
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID,
                       "guideline '%s' starts with \"* \": the template already puts \"* \" "
                       "before it", key);
    if (is_space(s[0]))
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID,
                       "guideline '%s' starts with whitespace", key);
    if (is_space(s[len - 1]))
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID,
                       "guideline '%s' ends with whitespace (a YAML '|' or '>' block keeps the "
                       "final newline: use '|-' or '>-')", key);
    *out = dupn(s, len);
    if (!*out)
        return fail(L, SG_POLICY_ENOMEM, "%s: out of memory", L->path);
    return SG_POLICY_OK;
}

static int get_threshold(loader *L, const yaml_node_t *n, double *out)
{
    const char *v;
    char buf[64];
    char *end;
    double t;
    size_t len;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID,
                       "'threshold' must be a number in [0, 1]");
    v = (const char *)n->data.scalar.value;
    len = n->data.scalar.length;
    if (len == 0 || len >= sizeof buf || strspn(v, "0123456789.eE+-") != len)
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID,
                       "'threshold' must be a number in [0, 1], not '%.40s'", v);
    memcpy(buf, v, len + 1);
    errno = 0;
    t = strtod(buf, &end);
    if (end != buf + len || errno == ERANGE || !isfinite(t))
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID,
                       "'threshold' must be a number in [0, 1], not '%s'", buf);
    if (t < 0.0 || t > 1.0)
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID,
                       "threshold %s is outside [0, 1]", buf);
    *out = t;
    return SG_POLICY_OK;
}

static int get_bool(loader *L, const yaml_node_t *n, const char *key, int *out)
{
    static const char *const yes[] = {"true", "True", "TRUE"};
    static const char *const no[] = {"false", "False", "FALSE"};
    const char *v;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID, "'%s' must be true or false", key);
    v = (const char *)n->data.scalar.value;
    for (int i = 0; i < 3; i++) {
        if (strcmp(v, yes[i]) == 0) {
            *out = 1;
            return SG_POLICY_OK;
        }
        if (strcmp(v, no[i]) == 0) {
            *out = 0;
            return SG_POLICY_OK;
        }
    }
    return fail_at(L, n->start_mark, SG_POLICY_EINVALID,
                   "'%s' must be true or false, not '%.40s'", key, v);
}

/*
 * Walk a mapping whose keys must be among `keys` (n_keys of them), each at most once. vals[i]
 * receives the value node of keys[i] (NULL if absent) and kmarks[i] the key's mark. Every key
 * is required unless `optional` says otherwise (bit i).
 */
static int walk_mapping_opt(loader *L, yaml_document_t *doc, const yaml_node_t *map,
                            const char *what, const char *const *keys, int n_keys, int n_required,
                            yaml_node_t **vals, yaml_mark_t *kmarks)
{
    char list[256];
    size_t off = 0;

    list[0] = '\0';
    for (int i = 0; i < n_keys; i++) {
        int w = snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "", keys[i]);

        if (w > 0 && (size_t)w < sizeof list - off)
            off += (size_t)w;
        vals[i] = NULL;
    }
    if (map->type != YAML_MAPPING_NODE)
        return fail_at(L, map->start_mark, SG_POLICY_EINVALID,
                       "%s must be a mapping with the keys %s, not %s", what, list,
                       node_kind(map));
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        int found = -1;

        if (!k || !v)
            return fail_at(L, map->start_mark, SG_POLICY_EINVALID, "malformed mapping");
        if (k->type != YAML_SCALAR_NODE)
            return fail_at(L, k->start_mark, SG_POLICY_EINVALID, "a key must be a string");
        for (int i = 0; i < n_keys; i++)
            if (strcmp((const char *)k->data.scalar.value, keys[i]) == 0 &&
                strlen(keys[i]) == k->data.scalar.length)
                found = i;
        if (found < 0)
            return fail_at(L, k->start_mark, SG_POLICY_EINVALID,
                           "unknown key '%.60s' in %s (expected: %s)",
                           (const char *)k->data.scalar.value, what, list);
        if (vals[found])
            return fail_at(L, k->start_mark, SG_POLICY_EINVALID,
                           "duplicate key '%s' (first at line %zu)", keys[found],
                           kmarks[found].line + 1);
        vals[found] = v;
        kmarks[found] = k->start_mark;
    }
    for (int i = 0; i < n_required; i++)
        if (!vals[i])
            return fail_at(L, map->start_mark, SG_POLICY_EINVALID, "missing key '%s' in %s",
                           keys[i], what);
    return SG_POLICY_OK;
}

/* A mapping with exactly the keys `keys` (every one required). */
static int walk_mapping(loader *L, yaml_document_t *doc, const yaml_node_t *map, const char *what,
                        const char *const *keys, int n_keys, yaml_node_t **vals,
                        yaml_mark_t *kmarks)
{
    return walk_mapping_opt(L, doc, map, what, keys, n_keys, n_keys, vals, kmarks);
}

/*
 * Parse the file L->path into *doc (exactly one document with a root node). On failure the
 * document is not initialised.
 */
static int load_yaml(loader *L, yaml_document_t *doc)
{
    yaml_parser_t parser;
    yaml_document_t extra;
    size_t bad;
    int rc;

    /* Check UTF-8 first so that the error has a line and a column (libyaml's reader only
     * knows the byte offset). */
    if (!sg_utf8_valid(L->buf, L->len, &bad))
        return fail_at(L, mark_of_offset(L, bad), SG_POLICY_ESYNTAX,
                       "invalid UTF-8 (byte 0x%02x)", (unsigned char)L->buf[bad]);
    /* libyaml's scanner takes quadratic time in the depth of nested flow collections ("[[[[",
     * 32000 deep: 11 s). A policy file needs a handful at most, so bound their number. */
    {
        size_t openers = 0;

        for (size_t i = 0; i < L->len; i++) {
            if (L->buf[i] != '[' && L->buf[i] != '{')
                continue;
            if (++openers > MAX_FLOW_OPENERS)
                return fail_at(L, mark_of_offset(L, i), SG_POLICY_ESYNTAX,
                               "more than %d '[' and '{' in one file", MAX_FLOW_OPENERS);
        }
    }
    if (!yaml_parser_initialize(&parser))
        return fail(L, SG_POLICY_ENOMEM, "%s: out of memory", L->path);
    yaml_parser_set_input_string(&parser, (const unsigned char *)L->buf, L->len);
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    if (!yaml_parser_load(&parser, doc))
        goto syntax;
    if (!yaml_document_get_root_node(doc)) {
        yaml_document_delete(doc);
        yaml_parser_delete(&parser);
        return fail(L, SG_POLICY_EINVALID, "%s:1:1: the file is empty", L->path);
    }
    if (!yaml_parser_load(&parser, &extra)) {
        yaml_document_delete(doc);
        goto syntax;
    }
    if (yaml_document_get_root_node(&extra)) {
        yaml_mark_t m = extra.start_mark;

        yaml_document_delete(&extra);
        yaml_document_delete(doc);
        yaml_parser_delete(&parser);
        return fail_at(L, m, SG_POLICY_EINVALID, "a second YAML document (one per file)");
    }
    yaml_document_delete(&extra);
    yaml_parser_delete(&parser);
    return SG_POLICY_OK;

syntax:
    if (parser.error == YAML_MEMORY_ERROR) {
        rc = fail(L, SG_POLICY_ENOMEM, "%s: out of memory", L->path);
    } else if (parser.error == YAML_READER_ERROR) {
        rc = fail_at(L, mark_of_offset(L, parser.problem_offset), SG_POLICY_ESYNTAX, "%s",
                     parser.problem ? parser.problem : "unreadable input");
    } else if (parser.context && strstr(parser.context, "simple key") != NULL) {
        /* A key without its ':' is found missing only on the next line: report the key's. */
        rc = fail_at(L, parser.context_mark, SG_POLICY_ESYNTAX, "%s %s",
                     parser.problem ? parser.problem : "syntax error", parser.context);
    } else if (parser.context) {
        rc = fail_at(L, parser.problem_mark, SG_POLICY_ESYNTAX, "%s %s (line %zu)",
                     parser.problem ? parser.problem : "syntax error", parser.context,
                     parser.context_mark.line + 1);
    } else {
        rc = fail_at(L, parser.problem_mark, SG_POLICY_ESYNTAX, "%s",
                     parser.problem ? parser.problem : "syntax error");
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* ---- Policies -------------------------------------------------------------------------------- */

static void policy_clear(sg_policy *p)
{
    free((char *)p->name);
    free((char *)p->title);
    free((char *)p->description);
    free((char *)p->guideline[SG_MODE_PROMPT]);
    free((char *)p->guideline[SG_MODE_RESPONSE]);
    free((char *)p->file);
    for (size_t i = 0; i < p->n_openai_categories; i++)
        free((char *)p->openai_categories[i]);
    free((void *)p->openai_categories);
    memset(p, 0, sizeof *p);
}

static int valid_name(const char *s, size_t len)
{
    if (len == 0 || len > MAX_NAME)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

enum { P_NAME, P_TITLE, P_DESC, P_GUIDE, P_THRESH, P_ENABLED, P_OPENAI, P_COUNT };
#define P_REQUIRED P_OPENAI /* the keys before it are required */
static const char *const policy_keys[P_COUNT] = {
    "name", "title", "description", "guideline", "threshold", "enabled", "openai_categories",
};

/* OpenAI's moderation categories (omni-moderation), the names openai_categories may use. */
static const char *const openai_names[] = {
    "harassment",        "harassment/threatening", "hate",           "hate/threatening",
    "illicit",           "illicit/violent",        "self-harm",      "self-harm/intent",
    "self-harm/instructions", "sexual",            "sexual/minors",  "violence",
    "violence/graphic",
};

/* openai_categories: a sequence of OpenAI category names, each once. */
static int get_openai(loader *L, yaml_document_t *doc, const yaml_node_t *n, sg_policy *p)
{
    const char **names;
    size_t cnt = 0, cap;

    if (n == NULL)
        return SG_POLICY_OK;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_at(L, n->start_mark, SG_POLICY_EINVALID,
                       "'openai_categories' must be a list of OpenAI category names, not %s",
                       node_kind(n));
    cap = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    names = calloc(cap + 1, sizeof *names);
    if (names == NULL)
        return fail(L, SG_POLICY_ENOMEM, "%s: out of memory", L->path);
    p->openai_categories = names;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *e = yaml_document_get_node(doc, *it);
        const char *v = e && e->type == YAML_SCALAR_NODE ? (const char *)e->data.scalar.value : "";
        int known = 0;

        for (size_t i = 0; i < sizeof openai_names / sizeof openai_names[0]; i++)
            known |= strcmp(v, openai_names[i]) == 0;
        if (!known)
            return fail_at(L, e ? e->start_mark : n->start_mark, SG_POLICY_EINVALID,
                           "unknown OpenAI category '%.40s' in 'openai_categories' (harassment, "
                           "harassment/threatening, hate, hate/threatening, illicit, "
                           "illicit/violent, self-harm, self-harm/intent, self-harm/instructions, "
                           "sexual, sexual/minors, violence, violence/graphic)",
                           v);
        for (size_t i = 0; i < cnt; i++)
            if (strcmp(names[i], v) == 0)
                return fail_at(L, e->start_mark, SG_POLICY_EINVALID,
                               "'%s' is listed twice in 'openai_categories'", v);
        names[cnt] = strdup(v);
        if (names[cnt] == NULL)
            return fail(L, SG_POLICY_ENOMEM, "%s: out of memory", L->path);
        p->n_openai_categories = ++cnt;
    }
    return SG_POLICY_OK;
}
static const char *const guide_keys[SG_MODE_COUNT] = {"prompt", "response"};

/* Fill *p (zeroed) from the document; *name_mark receives the mark of the name's value. */
static int policy_from_doc(loader *L, yaml_document_t *doc, sg_policy *p, yaml_mark_t *name_mark)
{
    yaml_node_t *v[P_COUNT];
    yaml_node_t *g[SG_MODE_COUNT];
    yaml_mark_t km[P_COUNT];
    yaml_mark_t gm[SG_MODE_COUNT];
    const char *s;
    size_t len;
    int rc;

    rc = walk_mapping_opt(L, doc, yaml_document_get_root_node(doc), "a policy", policy_keys,
                          P_COUNT, P_REQUIRED, v, km);
    if (rc < 0)
        return rc;

    rc = get_string(L, v[P_NAME], "name", &s, &len);
    if (rc < 0)
        return rc;
    if (!valid_name(s, len))
        return fail_at(L, v[P_NAME]->start_mark, SG_POLICY_EINVALID,
                       "invalid policy name '%.64s': use 1 to %d of a-z, 0-9, '_' and '-'", s,
                       MAX_NAME);
    *name_mark = v[P_NAME]->start_mark;
    p->name = dupn(s, len);
    if (!p->name)
        goto nomem;

    rc = get_line(L, v[P_TITLE], "title", &s, &len);
    if (rc < 0)
        return rc;
    p->title = dupn(s, len);
    if (!p->title)
        goto nomem;

    rc = get_string(L, v[P_DESC], "description", &s, &len);
    if (rc < 0)
        return rc;
    p->description = dupn(s, len);
    if (!p->description)
        goto nomem;

    rc = walk_mapping(L, doc, v[P_GUIDE], "'guideline'", guide_keys, SG_MODE_COUNT, g, gm);
    if (rc < 0)
        return rc;
    for (int m = 0; m < SG_MODE_COUNT; m++) {
        char *gl = NULL;

        rc = get_guideline(L, g[m], guide_keys[m], &gl);
        if (rc < 0)
            return rc;
        p->guideline[m] = gl;
    }

    rc = get_threshold(L, v[P_THRESH], &p->threshold);
    if (rc < 0)
        return rc;
    rc = get_bool(L, v[P_ENABLED], "enabled", &p->enabled);
    if (rc < 0)
        return rc;
    return get_openai(L, doc, v[P_OPENAI], p);

nomem:
    return fail(L, SG_POLICY_ENOMEM, "%s: out of memory", L->path);
}

/* ---- The template ---------------------------------------------------------------------------- */

static const struct {
    const char *text;
    sg_prompt_slot slot;
} placeholders[] = {
    {"{USER}", SG_SLOT_USER},
    {"{RESPONSE}", SG_SLOT_RESPONSE},
    {"{GUIDELINE}", SG_SLOT_GUIDELINE},
};

/* Split template `t->text` at its placeholders; mode says which ones it must hold. */
static int split_template(loader *L, const yaml_node_t *node, const char *key, sg_prompt_mode mode,
                          tmpl *t)
{
    const char *s = t->text;
    const char *lit = s;
    int seen[SG_SLOT_COUNT] = {0};

    t->n_parts = 0;
    while (*s) {
        int which = -1;
        size_t plen = 0;

        if (*s != '{') {
            s++;
            continue;
        }
        for (int i = 0; i < 3; i++) {
            size_t n = strlen(placeholders[i].text);

            if (strncmp(s, placeholders[i].text, n) == 0) {
                which = i;
                plen = n;
            }
        }
        if (which < 0) {
            /* A literal '{' is fine, but "{WORD}" looks like a misspelt placeholder. */
            size_t n = 1;

            while ((s[n] >= 'A' && s[n] <= 'Z') || s[n] == '_')
                n++;
            if (n > 1 && s[n] == '}')
                return fail_at(L, node->start_mark, SG_POLICY_EINVALID,
                               "'%s': unknown placeholder %.*s (known: {USER}, {RESPONSE}, "
                               "{GUIDELINE})", key, (int)(n + 1), s);
            s++;
            continue;
        }
        {
            sg_prompt_slot slot = placeholders[which].slot;

            if (seen[slot])
                return fail_at(L, node->start_mark, SG_POLICY_EINVALID,
                               "'%s': placeholder %s appears twice", key, placeholders[which].text);
            if (slot == SG_SLOT_RESPONSE && mode == SG_MODE_PROMPT)
                return fail_at(L, node->start_mark, SG_POLICY_EINVALID,
                               "'%s': {RESPONSE} belongs in the response template only", key);
            seen[slot] = 1;
            if (s > lit) {
                t->parts[t->n_parts].slot = SG_SLOT_TEMPLATE;
                t->parts[t->n_parts].text = lit;
                t->parts[t->n_parts].len = (size_t)(s - lit);
                t->n_parts++;
            }
            t->parts[t->n_parts].slot = slot;
            t->parts[t->n_parts].text = NULL;
            t->parts[t->n_parts].len = 0;
            t->n_parts++;
            s += plen;
            lit = s;
        }
    }
    if (s > lit) {
        t->parts[t->n_parts].slot = SG_SLOT_TEMPLATE;
        t->parts[t->n_parts].text = lit;
        t->parts[t->n_parts].len = (size_t)(s - lit);
        t->n_parts++;
    }
    if (!seen[SG_SLOT_USER])
        return fail_at(L, node->start_mark, SG_POLICY_EINVALID, "'%s' has no {USER} placeholder",
                       key);
    if (!seen[SG_SLOT_GUIDELINE])
        return fail_at(L, node->start_mark, SG_POLICY_EINVALID,
                       "'%s' has no {GUIDELINE} placeholder", key);
    if (mode == SG_MODE_RESPONSE && !seen[SG_SLOT_RESPONSE])
        return fail_at(L, node->start_mark, SG_POLICY_EINVALID,
                       "'%s' has no {RESPONSE} placeholder", key);
    return SG_POLICY_OK;
}

enum { T_DESC, T_PROMPT, T_RESPONSE, T_YES, T_NO, T_COUNT };
static const char *const template_keys[T_COUNT] = {
    "description", "prompt", "response", "answer_yes", "answer_no",
};

static int template_from_doc(loader *L, yaml_document_t *doc, sg_policy_set *set)
{
    yaml_node_t *v[T_COUNT];
    yaml_mark_t km[T_COUNT];
    const char *s;
    size_t len;
    int rc;

    rc = walk_mapping(L, doc, yaml_document_get_root_node(doc), "the template", template_keys,
                      T_COUNT, v, km);
    if (rc < 0)
        return rc;
    rc = get_string(L, v[T_DESC], "description", &s, &len);
    if (rc < 0)
        return rc;
    set->description = dupn(s, len);
    if (!set->description)
        goto nomem;
    for (int m = 0; m < SG_MODE_COUNT; m++) {
        yaml_node_t *n = v[m == SG_MODE_PROMPT ? T_PROMPT : T_RESPONSE];
        const char *key = template_keys[m == SG_MODE_PROMPT ? T_PROMPT : T_RESPONSE];

        rc = get_string(L, n, key, &s, &len);
        if (rc < 0)
            return rc;
        set->tmpl[m].text = dupn(s, len);
        if (!set->tmpl[m].text)
            goto nomem;
        rc = split_template(L, n, key, (sg_prompt_mode)m, &set->tmpl[m]);
        if (rc < 0)
            return rc;
    }
    rc = get_line(L, v[T_YES], "answer_yes", &s, &len);
    if (rc < 0)
        return rc;
    set->answer_yes = dupn(s, len);
    if (!set->answer_yes)
        goto nomem;
    rc = get_line(L, v[T_NO], "answer_no", &s, &len);
    if (rc < 0)
        return rc;
    set->answer_no = dupn(s, len);
    if (!set->answer_no)
        goto nomem;
    if (strcmp(set->answer_yes, set->answer_no) == 0)
        return fail_at(L, v[T_NO]->start_mark, SG_POLICY_EINVALID,
                       "'answer_no' equals 'answer_yes'");
    return SG_POLICY_OK;

nomem:
    return fail(L, SG_POLICY_ENOMEM, "%s: out of memory", L->path);
}

/* ---- Loading a directory --------------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s);
    size_t b = strlen(suf);

    return a > b && strcmp(s + a - b, suf) == 0;
}

/* The sorted names of the *.yaml / *.yml files in `dir` (not starting with '.'). */
static int list_dir(loader *L, const char *dir, char ***out, size_t *n_out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;
    size_t cap = 0;

    if (!d)
        return fail(L, SG_POLICY_EIO, "%s: cannot open policy directory: %s", dir,
                    strerror(errno));
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (!has_suffix(e->d_name, ".yaml") && !has_suffix(e->d_name, ".yml"))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **nn = realloc(names, nc * sizeof *nn);

            if (!nn)
                goto nomem;
            names = nn;
            cap = nc;
        }
        names[n] = strdup(e->d_name);
        if (!names[n])
            goto nomem;
        n++;
        if (n > MAX_POLICIES + 1) {
            closedir(d);
            for (size_t i = 0; i < n; i++)
                free(names[i]);
            free(names);
            return fail(L, SG_POLICY_EINVALID, "%s: more than %d policy files", dir,
                        MAX_POLICIES);
        }
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof *names, cmp_names);
    *out = names;
    *n_out = n;
    return SG_POLICY_OK;

nomem:
    closedir(d);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return fail(L, SG_POLICY_ENOMEM, "%s: out of memory", dir);
}

/* Load one file: the template (is_template) or a policy into set->policies[set->n]. */
static int load_file(loader *L, sg_policy_set *set, int is_template, yaml_mark_t *name_mark)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    yaml_document_t doc;
    int rc;

    if (stat(L->path, &st) != 0)
        return fail(L, SG_POLICY_EIO, "%s: %s", L->path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail(L, SG_POLICY_EIO, "%s: not a regular file", L->path);
    rc = read_file(L, &buf, &len);
    if (rc < 0)
        return rc;
    L->buf = buf;
    L->len = len;
    rc = load_yaml(L, &doc);
    if (rc < 0)
        goto out;
    if (is_template) {
        rc = template_from_doc(L, &doc, set);
    } else {
        sg_policy *p = &set->policies[set->n];

        memset(p, 0, sizeof *p);
        rc = policy_from_doc(L, &doc, p, name_mark);
        if (rc == SG_POLICY_OK) {
            p->file = strdup(L->path);
            if (!p->file)
                rc = fail(L, SG_POLICY_ENOMEM, "%s: out of memory", L->path);
        }
        if (rc < 0)
            policy_clear(p);
        else
            set->n++;
    }
    yaml_document_delete(&doc);
out:
    L->buf = NULL;
    L->len = 0;
    free(buf);
    return rc;
}

int sg_policy_set_load(sg_policy_set **out, const char *dir, char *err, size_t errlen)
{
    loader L = {NULL, NULL, 0, err, errlen};
    sg_policy_set *set = NULL;
    char **names = NULL;
    size_t n_names = 0;
    yaml_mark_t *marks = NULL;
    char *path = NULL;
    int have_template = 0;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    if (!out || !dir)
        return fail(&L, SG_POLICY_EINVAL, "sg_policy_set_load: NULL argument");
    *out = NULL;
    rc = list_dir(&L, dir, &names, &n_names);
    if (rc < 0)
        return rc;

    set = calloc(1, sizeof *set);
    if (!set)
        goto nomem;
    set->policies = calloc(n_names ? n_names : 1, sizeof *set->policies);
    marks = calloc(n_names ? n_names : 1, sizeof *marks);
    set->dir = strdup(dir);
    if (!set->policies || !marks || !set->dir)
        goto nomem;

    for (size_t i = 0; i < n_names; i++) {
        int is_template = strcmp(names[i], TEMPLATE_FILE) == 0;

        path = join_path(dir, names[i]);
        if (!path)
            goto nomem;
        L.path = path;
        rc = load_file(&L, set, is_template, &marks[set->n]);
        if (rc < 0)
            goto fail;
        if (is_template) {
            have_template = 1;
            set->template_file = path;
            path = NULL;
        } else {
            /* Names are unique in the set: report the later file, pointing at the first. */
            const sg_policy *p = &set->policies[set->n - 1];

            for (size_t j = 0; j + 1 < set->n; j++) {
                if (strcmp(set->policies[j].name, p->name) == 0) {
                    rc = fail_at(&L, marks[set->n - 1], SG_POLICY_EINVALID,
                                 "duplicate policy name '%s' (also in %s:%zu:%zu)", p->name,
                                 set->policies[j].file, marks[j].line + 1, marks[j].column + 1);
                    goto fail;
                }
            }
            free(path);
            path = NULL;
        }
    }
    if (!have_template) {
        rc = fail(&L, SG_POLICY_EINVALID, "%s: no %s (the prompt templates)", dir, TEMPLATE_FILE);
        goto fail;
    }
    if (set->n == 0) {
        rc = fail(&L, SG_POLICY_EINVALID, "%s: no policy files (*.yaml besides %s)", dir,
                  TEMPLATE_FILE);
        goto fail;
    }
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    free(marks);
    *out = set;
    return SG_POLICY_OK;

nomem:
    rc = fail(&L, SG_POLICY_ENOMEM, "%s: out of memory", dir);
fail:
    free(path);
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    free(marks);
    sg_policy_set_free(set);
    return rc;
}

void sg_policy_set_free(sg_policy_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        policy_clear(&set->policies[i]);
    free(set->policies);
    for (int m = 0; m < SG_MODE_COUNT; m++)
        free(set->tmpl[m].text);
    free(set->answer_yes);
    free(set->answer_no);
    free(set->description);
    free(set->dir);
    free(set->template_file);
    free(set);
}

size_t sg_policy_count(const sg_policy_set *set)
{
    return set ? set->n : 0;
}

const sg_policy *sg_policy_at(const sg_policy_set *set, size_t i)
{
    if (!set || i >= set->n)
        return NULL;
    return &set->policies[i];
}

const sg_policy *sg_policy_find(const sg_policy_set *set, const char *name)
{
    if (!set || !name)
        return NULL;
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->policies[i].name, name) == 0)
            return &set->policies[i];
    return NULL;
}

const char *sg_policy_answer_yes(const sg_policy_set *set)
{
    return set ? set->answer_yes : NULL;
}

const char *sg_policy_answer_no(const sg_policy_set *set)
{
    return set ? set->answer_no : NULL;
}

const char *sg_policy_set_dir(const sg_policy_set *set)
{
    return set ? set->dir : NULL;
}

const char *sg_policy_template_file(const sg_policy_set *set)
{
    return set ? set->template_file : NULL;
}

/* ---- Rendering ------------------------------------------------------------------------------- */

int sg_policy_render(const sg_policy_set *set, const sg_policy *policy, sg_prompt_mode mode,
                     const char *user, size_t user_len, const char *response,
                     size_t response_len, sg_prompt_part *parts)
{
    const tmpl *t;
    int n = 0;

    if (!set || !policy || !parts || (!user && user_len) || mode < 0 || mode >= SG_MODE_COUNT)
        return SG_POLICY_EINVAL;
    if ((mode == SG_MODE_RESPONSE) != (response != NULL))
        return SG_POLICY_EINVAL;
    t = &set->tmpl[mode];
    for (int i = 0; i < t->n_parts; i++) {
        sg_prompt_part p = t->parts[i];

        switch (p.slot) {
        case SG_SLOT_USER:
            p.text = user;
            p.len = user_len;
            break;
        case SG_SLOT_RESPONSE:
            p.text = response;
            p.len = response_len;
            break;
        case SG_SLOT_GUIDELINE:
            p.text = policy->guideline[mode];
            p.len = strlen(p.text);
            break;
        default:
            break;
        }
        if (p.len > 0)
            parts[n++] = p;
    }
    return n;
}
