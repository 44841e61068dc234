#ifndef SG_SCAN_H
#define SG_SCAN_H
/*
 * scan.h: the pure parts of `shieldctl scan`, in the client library so that unit tests link
 * them: input readers (JSONL, CSV with a header row, plain text), the output line, and the
 * resume step (drop a torn last line, count the complete ones).
 *
 * Input items carry a 1-based record number `line` (the physical line where the record starts)
 * and an id as JSON text: the --id-field value (any JSON scalar for JSONL, a string for CSV),
 * else the line number. A record that cannot be used (malformed JSON, a missing or non-string
 * field, a CSV row with the wrong number of columns, bad quoting, invalid UTF-8) is still an
 * item, with `error` set, so that the output keeps one line per input item.
 */

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

typedef enum sg_scan_format {
    SG_SCAN_JSONL = 0,
    SG_SCAN_CSV,
    SG_SCAN_TEXT,
    SG_SCAN_FORMAT_COUNT,
} sg_scan_format;

/* The format for a file name: *.csv -> CSV, *.txt -> text, anything else (and "-") JSONL. */
sg_scan_format sg_scan_format_of(const char *path);
/* "jsonl"/"json"/"ndjson", "csv", "text"/"txt" -> 0 and *out; -1 otherwise. */
int sg_scan_format_parse(const char *name, sg_scan_format *out);

typedef struct sg_scan_opts {
    sg_scan_format format;
    const char *field;          /* default "text" */
    const char *response_field; /* NULL: prompt-only */
    const char *id_field;       /* default "id"; absent in a record: the line number */
    /*
     * Fields carried along untouched into sg_scan_item.extra (a NULL-terminated list, or NULL),
     * e.g. the labels of `shieldctl eval`. JSONL: the field's JSON value. CSV: the text of the
     * column named FIELD, and the columns named FIELD.KEY as an object {"KEY": text, ...}.
     */
    const char *const *extra_fields;
} sg_scan_opts;

typedef struct sg_scan_item {
    long line;          /* where the record starts, 1-based */
    char *id;           /* JSON text of the id, malloc'd */
    char *text;         /* malloc'd, NUL-terminated; NULL when error */
    size_t text_len;
    char *response;     /* malloc'd or NULL */
    size_t response_len;
    char *error;        /* malloc'd message ("line 7: ...") or NULL */
    json_t *extra;      /* opts.extra_fields present in the record, an object (owned), or NULL */
} sg_scan_item;

void sg_scan_item_clear(sg_scan_item *it);

typedef struct sg_scan_reader sg_scan_reader;

/*
 * A reader over `f` (borrowed; not closed). Strings in opts are copied. For CSV the header row
 * is read here: a missing header or a header without `field` fails with a message in err.
 * Returns 0 and *out (free with sg_scan_reader_free), or -1.
 */
int sg_scan_reader_new(sg_scan_reader **out, FILE *f, const sg_scan_opts *opts, char *err,
                       size_t errlen);
void sg_scan_reader_free(sg_scan_reader *r);

/*
 * The next item into *it (cleared first; the caller clears it after use). Returns 1 with an
 * item (possibly carrying `error`), 0 at the end of input, -1 on a read error or out of memory
 * (message in sg_scan_reader_errmsg).
 */
int sg_scan_reader_next(sg_scan_reader *r, sg_scan_item *it);
const char *sg_scan_reader_errmsg(const sg_scan_reader *r);
/* Bytes consumed so far (for progress). */
long long sg_scan_reader_offset(const sg_scan_reader *r);

/*
 * The output line for an item, '\n'-terminated, malloc'd (caller frees), NULL when out of
 * memory: {"id":ID,"flagged":B,"results":[{"policy":..,"probability":..,"violation":..},...]}
 * from the "results" array of a /v1/classify reply (daemon or sg_moderate_result_json),
 * or {"id":ID,"error":MSG} when msg is not NULL. Probabilities print with 17 digits, so the
 * daemon's JSON and the in-process doubles give the same bytes.
 */
char *sg_scan_result_line(const char *id_json, const json_t *results, const char *msg);

/*
 * Resume: make `fd` (the output, opened read-write) end at its last '\n' (truncating a torn
 * partial line) and count its complete lines into *lines. Leaves the offset at the end.
 * Returns 0 or -errno.
 */
int sg_scan_resume(int fd, long long *lines);

/*
 * Write all of line (n bytes) with write(2), retrying short writes. Returns 0 or -errno.
 */
int sg_scan_write_line(int fd, const char *line, size_t n);

#endif /* SG_SCAN_H */
