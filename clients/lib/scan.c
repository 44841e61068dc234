/* scan.c: scan input readers, output lines and resume (see scan.h). */
#include "scan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sg_chat.h"
#include "sg_engine.h"

#define MAX_COLUMNS 4096

struct sg_scan_reader {
    FILE *f;
    sg_scan_format format;
    char *field;
    char *response_field;
    char *id_field;
    long line;           /* physical lines consumed so far */
    long long offset;
    int eof;
    char errmsg[256];
    /* CSV */
    size_t n_cols;
    long col_text;
    long col_response;
    long col_id;
    char **cols;         /* one record's fields */
    size_t *col_lens;
    size_t *col_caps;
    /* JSONL / text */
    char *lbuf;
    size_t lcap;
    /* opts.extra_fields, copied; for CSV the header columns that carry one */
    char **extra;
    size_t n_extra;
    struct extra_col *extra_cols;
    size_t n_extra_cols;
};

/* A CSV column carried into sg_scan_item.extra: field `field`, or its sub-key `key`. */
struct extra_col {
    long col;
    size_t field;
    char *key;           /* NULL: the column is the field itself */
};

sg_scan_format sg_scan_format_of(const char *path)
{
    size_t n = strlen(path);

    if (n >= 4 && strcmp(path + n - 4, ".csv") == 0)
        return SG_SCAN_CSV;
    if (n >= 4 && strcmp(path + n - 4, ".txt") == 0)
        return SG_SCAN_TEXT;
    return SG_SCAN_JSONL;
}

int sg_scan_format_parse(const char *name, sg_scan_format *out)
{
    if (!strcmp(name, "jsonl") || !strcmp(name, "json") || !strcmp(name, "ndjson"))
        *out = SG_SCAN_JSONL;
    else if (!strcmp(name, "csv"))
        *out = SG_SCAN_CSV;
    else if (!strcmp(name, "text") || !strcmp(name, "txt"))
        *out = SG_SCAN_TEXT;
    else
        return -1;
    return 0;
}

void sg_scan_item_clear(sg_scan_item *it)
{
    free(it->id);
    free(it->text);
    free(it->response);
    free(it->error);
    json_decref(it->extra);
    memset(it, 0, sizeof *it);
}

/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF) without a NUL
 * byte (the texts are C strings from here on). */
static int utf8_valid(const char *s, size_t n)
{
    return memchr(s, '\0', n) == NULL && sg_utf8_valid(s, n, NULL);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int item_error(sg_scan_item *it, long line, const char *fmt, ...)
{
    char msg[300];
    char full[340];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "line %ld: %s", line, msg);
    free(it->text);
    free(it->response);
    it->text = NULL;
    it->response = NULL;
    it->error = strdup(full);
    return it->error ? 0 : -1;
}

static char *line_id(long line)
{
    char buf[32];

    snprintf(buf, sizeof buf, "%ld", line);
    return strdup(buf);
}

static int set_id_string(sg_scan_item *it, const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);

    if (!j)
        return -1;
    free(it->id);
    it->id = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(j);
    return it->id ? 0 : -1;
}

void sg_scan_reader_free(sg_scan_reader *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_cols; i++)
        free(r->cols[i]);
    free(r->cols);
    free(r->col_lens);
    free(r->col_caps);
    free(r->field);
    free(r->response_field);
    free(r->id_field);
    free(r->lbuf);
    for (size_t i = 0; i < r->n_extra; i++)
        free(r->extra[i]);
    free(r->extra);
    for (size_t i = 0; i < r->n_extra_cols; i++)
        free(r->extra_cols[i].key);
    free(r->extra_cols);
    free(r);
}

const char *sg_scan_reader_errmsg(const sg_scan_reader *r)
{
    return r->errmsg;
}

long long sg_scan_reader_offset(const sg_scan_reader *r)
{
    return r->offset;
}

static int rgetc(sg_scan_reader *r)
{
    int c = getc(r->f);

    if (c != EOF)
        r->offset++;
    return c;
}

/*
 * CSV: read one record into r->cols. Returns the number of fields (>= 1), 0 at EOF, -1 on
 * read error/OOM, -2 on bad quoting (the rest of the physical line is skipped; *msg set).
 * *start receives the record's first line.
 */
static int csv_record(sg_scan_reader *r, size_t max_cols, long *start, const char **msg)
{
    size_t nf = 0;
    int c;
    int in_q = 0;
    int was_q = 0;   /* the current field was quoted and its closing quote seen */
    int any = 0;

    *start = r->line + 1;
    for (size_t i = 0; i < max_cols; i++)
        r->col_lens[i] = 0;
    for (;;) {
        c = rgetc(r);
        if (c == EOF) {
            if (ferror(r->f)) {
                snprintf(r->errmsg, sizeof r->errmsg, "read error: %s", strerror(errno));
                return -1;
            }
            r->eof = 1;
            if (in_q) {
                r->line++;
                *msg = "unterminated quoted field at the end of the input";
                return -2;
            }
            if (!any)
                return 0;
            r->line++;
            return (int)(nf + 1);
        }
        if (!any && !in_q && (c == '\n' || c == '\r')) {
            /* A blank line between records is skipped. */
            if (c == '\n') {
                r->line++;
                *start = r->line + 1;
            }
            continue;
        }
        any = 1;
        if (in_q) {
            if (c == '"') {
                int d = rgetc(r);

                if (d == '"') {
                    c = '"';
                } else {
                    in_q = 0;
                    was_q = 1;
                    if (d != EOF) {
                        ungetc(d, r->f);
                        r->offset--;
                    }
                    continue;
                }
            } else if (c == '\n') {
                r->line++;
            }
        } else if (c == ',') {
            nf++;
            was_q = 0;
            if (nf >= max_cols) {
                /* Too many fields: keep counting, store nothing. */
                nf = max_cols;
            }
            continue;
        } else if (c == '\n' || c == '\r') {
            if (c == '\r') {
                int d = rgetc(r);

                if (d != '\n' && d != EOF) {
                    ungetc(d, r->f);
                    r->offset--;
                }
            }
            r->line++;
            return (int)(nf + 1);
        } else if (c == '"') {
            if (r->col_lens[nf < max_cols ? nf : 0] == 0 && !was_q && nf < max_cols) {
                in_q = 1;
                continue;
            }
            *msg = was_q ? "unexpected character after a closing quote"
                         : "a quote inside an unquoted field";
            goto bad;
        } else if (was_q) {
            *msg = "unexpected character after a closing quote";
            goto bad;
        }
        if (nf < max_cols) {
            size_t i = nf;

            if (r->col_lens[i] + 2 > r->col_caps[i]) {
                size_t nc = r->col_caps[i] ? r->col_caps[i] * 2 : 64;
                char *nb = realloc(r->cols[i], nc);

                if (!nb) {
                    snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
                    return -1;
                }
                r->cols[i] = nb;
                r->col_caps[i] = nc;
            }
            r->cols[i][r->col_lens[i]++] = (char)c;
            r->cols[i][r->col_lens[i]] = '\0';
        }
    }
bad:
    /* Skip the rest of the physical line. */
    while ((c = rgetc(r)) != EOF && c != '\n')
        ;
    r->line++;
    if (c == EOF)
        r->eof = 1;
    return -2;
}

static int csv_alloc(sg_scan_reader *r, size_t n)
{
    r->cols = calloc(n, sizeof *r->cols);
    r->col_lens = calloc(n, sizeof *r->col_lens);
    r->col_caps = calloc(n, sizeof *r->col_caps);
    r->n_cols = n;
    return r->cols && r->col_lens && r->col_caps ? 0 : -1;
}

/* The header columns (r->cols, n of them) named FIELD or FIELD.KEY for an extra field. */
static int csv_extra_columns(sg_scan_reader *r, int n)
{
    if (r->n_extra == 0)
        return 0;
    r->extra_cols = calloc((size_t)n, sizeof *r->extra_cols);
    if (!r->extra_cols)
        return -1;
    for (int i = 0; i < n; i++) {
        const char *name = r->col_lens[i] ? r->cols[i] : "";

        for (size_t k = 0; k < r->n_extra; k++) {
            size_t fl = strlen(r->extra[k]);
            struct extra_col *ec = &r->extra_cols[r->n_extra_cols];

            if (strncmp(name, r->extra[k], fl) != 0 || (name[fl] && name[fl] != '.'))
                continue;
            if (name[fl] == '.' && !name[fl + 1])
                continue;
            ec->col = i;
            ec->field = k;
            if (name[fl] == '.') {
                ec->key = strdup(name + fl + 1);
                if (!ec->key)
                    return -1;
            }
            r->n_extra_cols++;
            break;
        }
    }
    return 0;
}

static int csv_header(sg_scan_reader *r, char *err, size_t errlen)
{
    long start;
    const char *msg = NULL;
    int n;

    if (csv_alloc(r, MAX_COLUMNS) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    n = csv_record(r, MAX_COLUMNS, &start, &msg);
    if (n == 0) {
        snprintf(err, errlen, "CSV input has no header row");
        return -1;
    }
    if (n < 0) {
        snprintf(err, errlen, "CSV header (line %ld): %s", start, n == -2 ? msg : r->errmsg);
        return -1;
    }
    if ((size_t)n > MAX_COLUMNS) {
        snprintf(err, errlen, "CSV header has more than %d columns", MAX_COLUMNS);
        return -1;
    }
    r->col_text = r->col_response = r->col_id = -1;
    for (int i = 0; i < n; i++) {
        const char *name = r->col_lens[i] ? r->cols[i] : "";

        if (r->col_text < 0 && strcmp(name, r->field) == 0)
            r->col_text = i;
        if (r->response_field && r->col_response < 0 && strcmp(name, r->response_field) == 0)
            r->col_response = i;
        if (r->col_id < 0 && strcmp(name, r->id_field) == 0)
            r->col_id = i;
    }
    if (csv_extra_columns(r, n) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (r->col_text < 0) {
        snprintf(err, errlen, "CSV header (line %ld) has no column '%s'", start, r->field);
        return -1;
    }
    if (r->response_field && r->col_response < 0) {
        snprintf(err, errlen, "CSV header (line %ld) has no column '%s'", start,
                 r->response_field);
        return -1;
    }
    /* From now on a record has exactly n columns: keep the buffers, remember n. */
    r->n_cols = MAX_COLUMNS;
    r->lcap = (size_t)n; /* number of header columns */
    return 0;
}

int sg_scan_reader_new(sg_scan_reader **out, FILE *f, const sg_scan_opts *opts, char *err,
                       size_t errlen)
{
    sg_scan_reader *r = calloc(1, sizeof *r);

    *out = NULL;
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->f = f;
    r->format = opts->format;
    r->field = strdup(opts->field ? opts->field : "text");
    r->id_field = strdup(opts->id_field ? opts->id_field : "id");
    r->response_field = opts->response_field ? strdup(opts->response_field) : NULL;
    if (!r->field || !r->id_field || (opts->response_field && !r->response_field)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (const char *const *e = opts->extra_fields; e && *e; e++)
        r->n_extra++;
    if (r->n_extra) {
        r->extra = calloc(r->n_extra, sizeof *r->extra);
        if (!r->extra) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < r->n_extra; i++) {
            r->extra[i] = strdup(opts->extra_fields[i]);
            if (!r->extra[i]) {
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
        }
    }
    if (r->format == SG_SCAN_CSV && csv_header(r, err, errlen) < 0)
        goto fail;
    *out = r;
    return 0;
fail:
    sg_scan_reader_free(r);
    return -1;
}

/*
 * Column `col` (named `name`) of the current CSV record, starting on line `start`: *s and *len.
 * Returns 0, or, when it is not valid UTF-8 (or holds a NUL), what next_csv() returns for that
 * item: 1 with the item's error set, -1 if even that failed.
 */
static int csv_col(sg_scan_reader *r, sg_scan_item *it, long start, long col, const char *name,
                   const char **s, size_t *len)
{
    *len = r->col_lens[col];
    *s = *len ? r->cols[col] : "";
    if (!utf8_valid(*s, *len))
        return item_error(it, start, "column '%s' is not valid UTF-8 (or holds a NUL byte)",
                          name) < 0
                   ? -1
                   : 1;
    return 0;
}

/* The extra columns of the current CSV record into it->extra. As next_csv() returns. */
static int csv_carry(sg_scan_reader *r, sg_scan_item *it, long start)
{
    for (size_t i = 0; i < r->n_extra_cols; i++) {
        const struct extra_col *ec = &r->extra_cols[i];
        size_t len = r->col_lens[ec->col];
        json_t *v = json_stringn(len ? r->cols[ec->col] : "", len);
        json_t *sub;

        if (!v || memchr(json_string_value(v), '\0', len)) {
            json_decref(v);
            return item_error(it, start, "column '%s%s%s' is not valid UTF-8 (or holds a NUL "
                              "byte)", r->extra[ec->field], ec->key ? "." : "",
                              ec->key ? ec->key : "") < 0 ? -1 : 1;
        }
        if (!it->extra)
            it->extra = json_object();
        if (!it->extra) {
            json_decref(v);
            goto oom;
        }
        if (!ec->key) {
            json_object_set_new(it->extra, r->extra[ec->field], v);
            continue;
        }
        sub = json_object_get(it->extra, r->extra[ec->field]);
        if (!json_is_object(sub)) {
            sub = json_object();
            if (!sub || json_object_set_new(it->extra, r->extra[ec->field], sub) < 0) {
                json_decref(v);
                goto oom;
            }
        }
        if (json_object_set_new(sub, ec->key, v) < 0)
            goto oom;
    }
    return 1;
oom:
    snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
    return -1;
}

static int next_csv(sg_scan_reader *r, sg_scan_item *it)
{
    long start;
    const char *msg = NULL;
    int n = csv_record(r, r->n_cols, &start, &msg);
    size_t want = r->lcap;
    const char *s;
    size_t len;
    int rc;

    if (n == 0)
        return 0;
    if (n == -1)
        return -1;
    it->line = start;
    it->id = line_id(start);
    if (!it->id)
        goto oom;
    if (n == -2)
        return item_error(it, start, "CSV: %s", msg) < 0 ? -1 : 1;
    if ((size_t)n != want)
        return item_error(it, start, "CSV: %d fields, the header has %zu", n, want) < 0 ? -1 : 1;
    if (r->col_id >= 0) {
        rc = csv_col(r, it, start, r->col_id, r->id_field, &s, &len);
        if (rc != 0)
            return rc;
        if (set_id_string(it, s, len) < 0)
            goto oom;
    }
    rc = csv_col(r, it, start, r->col_text, r->field, &s, &len);
    if (rc != 0)
        return rc;
    it->text = strndup(s, len);
    it->text_len = len;
    if (!it->text)
        goto oom;
    if (r->col_response >= 0) {
        rc = csv_col(r, it, start, r->col_response, r->response_field, &s, &len);
        if (rc != 0)
            return rc;
        it->response = strndup(s, len);
        it->response_len = len;
        if (!it->response)
            goto oom;
    }
    return csv_carry(r, it, start);
oom:
    snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
    return -1;
}

/* One physical line into r->lbuf without its "\n" / "\r\n". 1, 0 at EOF, -1 on error. */
static int read_line(sg_scan_reader *r, size_t *len)
{
    ssize_t n;

    errno = 0;
    n = getline(&r->lbuf, &r->lcap, r->f);
    if (n < 0) {
        if (ferror(r->f)) {
            snprintf(r->errmsg, sizeof r->errmsg, "read error: %s", strerror(errno));
            return -1;
        }
        return 0;
    }
    r->offset += n;
    r->line++;
    if (n > 0 && r->lbuf[n - 1] == '\n')
        n--;
    if (n > 0 && r->lbuf[n - 1] == '\r')
        n--;
    r->lbuf[n] = '\0';
    *len = (size_t)n;
    return 1;
}

static int next_text(sg_scan_reader *r, sg_scan_item *it)
{
    size_t n;
    int rc = read_line(r, &n);

    if (rc <= 0)
        return rc;
    it->line = r->line;
    it->id = line_id(r->line);
    if (!it->id)
        goto oom;
    if (memchr(r->lbuf, '\0', n))
        return item_error(it, r->line, "the line contains a NUL byte") < 0 ? -1 : 1;
    if (!utf8_valid(r->lbuf, n))
        return item_error(it, r->line, "the line is not valid UTF-8") < 0 ? -1 : 1;
    it->text = strndup(r->lbuf, n);
    it->text_len = n;
    if (!it->text)
        goto oom;
    return 1;
oom:
    snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
    return -1;
}

/*
 * A record with "messages" (a chat conversation) instead of the text field: mapped as the
 * daemon maps it (sg_chat.h) into the item's text and response. 1, or -1 when out of memory.
 */
static int item_messages(sg_scan_reader *r, sg_scan_item *it, const json_t *msgs)
{
    sg_chat_input c;
    char err[512];
    int has_response;

    if (sg_chat_map(msgs, "", &c, err, sizeof err) < 0)
        return item_error(it, r->line, "%s", err) < 0 ? -1 : 1;
    if (memchr(c.text, '\0', c.text_len) ||
        (c.response && memchr(c.response, '\0', c.response_len))) {
        sg_chat_input_free(&c);
        return item_error(it, r->line, "'messages' contains a NUL character") < 0 ? -1 : 1;
    }
    it->text = strndup(c.text, c.text_len);
    it->text_len = c.text_len;
    has_response = c.response != NULL;
    if (has_response) {
        it->response = strndup(c.response, c.response_len);
        it->response_len = c.response_len;
    }
    sg_chat_input_free(&c);
    if (it->text == NULL || (has_response && it->response == NULL)) {
        snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
        return -1;
    }
    return 1;
}

static int next_jsonl(sg_scan_reader *r, sg_scan_item *it)
{
    size_t n;
    int rc;
    json_t *obj = NULL;
    json_t *v;
    json_error_t je;
    size_t i;

    /* Blank lines are not records. */
    for (;;) {
        rc = read_line(r, &n);
        if (rc <= 0)
            return rc;
        for (i = 0; i < n; i++)
            if (r->lbuf[i] != ' ' && r->lbuf[i] != '\t')
                break;
        if (i < n)
            break;
    }
    it->line = r->line;
    it->id = line_id(r->line);
    if (!it->id)
        goto oom;
    obj = json_loadb(r->lbuf, n, JSON_DECODE_ANY, &je);
    if (!obj) {
        rc = item_error(it, r->line, "invalid JSON at column %d: %s", je.column, je.text);
        return rc < 0 ? -1 : 1;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        return item_error(it, r->line, "not a JSON object") < 0 ? -1 : 1;
    }
    v = json_object_get(obj, r->id_field);
    if (v && !json_is_null(v)) {
        if (json_is_object(v) || json_is_array(v)) {
            json_decref(obj);
            return item_error(it, r->line, "\"%s\" must be a string or a number", r->id_field) < 0
                       ? -1
                       : 1;
        }
        free(it->id);
        it->id = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (!it->id)
            goto oom;
    }
    v = json_object_get(obj, r->field);
    if (!v && json_object_get(obj, "messages") != NULL) {
        rc = item_messages(r, it, json_object_get(obj, "messages"));
        json_decref(obj);
        return rc;
    }
    if (!v) {
        json_decref(obj);
        return item_error(it, r->line, "missing field \"%s\"", r->field) < 0 ? -1 : 1;
    }
    if (!json_is_string(v)) {
        json_decref(obj);
        return item_error(it, r->line, "field \"%s\" is not a string", r->field) < 0 ? -1 : 1;
    }
    it->text_len = json_string_length(v);
    it->text = malloc(it->text_len + 1);
    if (!it->text)
        goto oom;
    memcpy(it->text, json_string_value(v), it->text_len + 1);
    if (memchr(it->text, '\0', it->text_len)) {
        json_decref(obj);
        return item_error(it, r->line, "field \"%s\" contains a NUL character", r->field) < 0
                   ? -1
                   : 1;
    }
    if (r->response_field) {
        v = json_object_get(obj, r->response_field);
        if (!v || !json_is_string(v)) {
            json_decref(obj);
            return item_error(it, r->line, "field \"%s\" is %s", r->response_field,
                              v ? "not a string" : "missing") < 0
                       ? -1
                       : 1;
        }
        if (memchr(json_string_value(v), '\0', json_string_length(v))) {
            json_decref(obj);
            return item_error(it, r->line, "field \"%s\" contains a NUL character",
                              r->response_field) < 0
                       ? -1
                       : 1;
        }
        it->response_len = json_string_length(v);
        it->response = malloc(it->response_len + 1);
        if (!it->response)
            goto oom;
        memcpy(it->response, json_string_value(v), it->response_len + 1);
    }
    for (size_t k = 0; k < r->n_extra; k++) {
        v = json_object_get(obj, r->extra[k]);
        if (!v)
            continue;
        if (!it->extra)
            it->extra = json_object();
        if (!it->extra || json_object_set(it->extra, r->extra[k], v) < 0)
            goto oom;
    }
    json_decref(obj);
    return 1;
oom:
    json_decref(obj);
    snprintf(r->errmsg, sizeof r->errmsg, "out of memory");
    return -1;
}

int sg_scan_reader_next(sg_scan_reader *r, sg_scan_item *it)
{
    sg_scan_item_clear(it);
    if (r->eof)
        return 0;
    switch (r->format) {
    case SG_SCAN_CSV:
        return next_csv(r, it);
    case SG_SCAN_TEXT:
        return next_text(r, it);
    default:
        return next_jsonl(r, it);
    }
}

char *sg_scan_result_line(const char *id_json, const json_t *results, const char *msg)
{
    json_t *id = json_loads(id_json, JSON_DECODE_ANY, NULL);
    json_t *root = json_object();
    json_t *arr = NULL;
    char *s = NULL;
    char *line = NULL;
    size_t i;
    size_t n;
    int flagged = 0;

    if (!id || !root)
        goto out;
    json_object_set_new(root, "id", id);
    id = NULL;
    if (msg) {
        json_object_set_new(root, "error", json_string(msg));
    } else {
        json_t *r;

        arr = json_array();
        if (!arr)
            goto out;
        json_array_foreach(results, i, r) {
            json_t *e = json_object();

            if (!e)
                goto out;
            if (json_is_true(json_object_get(r, "violation")))
                flagged = 1;
            json_object_set(e, "policy", json_object_get(r, "policy"));
            json_object_set(e, "probability", json_object_get(r, "probability"));
            json_object_set(e, "violation", json_object_get(r, "violation"));
            json_array_append_new(arr, e);
        }
        json_object_set_new(root, "flagged", json_boolean(flagged));
        json_object_set_new(root, "results", arr);
        arr = NULL;
    }
    s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    if (!s)
        goto out;
    n = strlen(s);
    line = malloc(n + 2);
    if (line) {
        memcpy(line, s, n);
        line[n] = '\n';
        line[n + 1] = '\0';
    }
out:
    free(s);
    json_decref(arr);
    json_decref(id);
    json_decref(root);
    return line;
}

int sg_scan_resume(int fd, long long *lines)
{
    struct stat st;
    char buf[65536];
    off_t pos = 0;
    off_t last_nl = -1;
    long long count = 0;

    *lines = 0;
    if (fstat(fd, &st) < 0)
        return -errno;
    while (pos < st.st_size) {
        ssize_t n = pread(fd, buf, sizeof buf, pos);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                count++;
                last_nl = pos + i;
            }
        }
        pos += n;
    }
    if (last_nl + 1 != st.st_size && ftruncate(fd, last_nl + 1) < 0)
        return -errno;
    if (lseek(fd, last_nl + 1, SEEK_SET) < 0)
        return -errno;
    *lines = count;
    return 0;
}

int sg_scan_write_line(int fd, const char *line, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, line, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        line += w;
        n -= (size_t)w;
    }
    return 0;
}
