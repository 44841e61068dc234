/*
 * check_scan.c: the scan input readers (JSONL, CSV, text), the output line and resume.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scan.h"
#include "scan_inputs.h"
#include "scan_meta.h"
#include "scan_shard.h"

Suite *scan_suite(void);

/* Read all items of `data` in `fmt`; returns the count, items in out[] (cleared by caller). */
static int read_all(const char *data, sg_scan_format fmt, const char *field, const char *resp,
                    sg_scan_item *out, int cap, char *err, size_t errlen)
{
    FILE *f = fmemopen((void *)data, strlen(data), "r");
    sg_scan_reader *r = NULL;
    sg_scan_opts o;
    int n = 0;

    memset(&o, 0, sizeof o);
    o.format = fmt;
    o.field = field;
    o.response_field = resp;
    ck_assert_ptr_nonnull(f);
    if (strlen(data) == 0) {
        fclose(f);
        f = fopen("/dev/null", "r");
    }
    if (sg_scan_reader_new(&r, f, &o, err, errlen) < 0) {
        fclose(f);
        return -1;
    }
    for (;;) {
        sg_scan_item it;
        int rc;

        memset(&it, 0, sizeof it);
        rc = sg_scan_reader_next(r, &it);
        ck_assert_int_ge(rc, 0);
        if (rc == 0)
            break;
        ck_assert_int_lt(n, cap);
        out[n++] = it;
    }
    sg_scan_reader_free(r);
    fclose(f);
    return n;
}

static void clear_all(sg_scan_item *it, int n)
{
    for (int i = 0; i < n; i++)
        sg_scan_item_clear(&it[i]);
}

START_TEST(jsonl_basic_and_errors)
{
    const char *data = "{\"id\": \"a\", \"text\": \"hello\", \"resp\": \"r1\"}\n"
                       "\n"
                       "{\"text\": \"no id\", \"resp\": \"r2\"}\r\n"
                       "{not json\n"
                       "[1, 2]\n"
                       "{\"id\": 7, \"other\": 1}\n"
                       "{\"id\": 8, \"text\": 42}\n"
                       "{\"id\": 9.5, \"text\": \"x\"}\n"
                       "{\"id\": {\"a\": 1}, \"text\": \"x\"}\n"
                       "{\"text\": \"no newline at end\", \"resp\": \"r\"}";
    sg_scan_item it[16];
    char err[256];
    int n = read_all(data, SG_SCAN_JSONL, NULL, NULL, it, 16, err, sizeof err);

    ck_assert_int_eq(n, 9);
    ck_assert_str_eq(it[0].id, "\"a\"");
    ck_assert_str_eq(it[0].text, "hello");
    ck_assert_int_eq(it[0].line, 1);
    ck_assert_ptr_null(it[0].response);
    ck_assert_str_eq(it[1].id, "3"); /* blank line 2 skipped; id = line number */
    ck_assert_str_eq(it[1].text, "no id");
    ck_assert_ptr_nonnull(it[2].error);
    ck_assert_ptr_nonnull(strstr(it[2].error, "line 4: invalid JSON"));
    ck_assert_str_eq(it[2].id, "4");
    ck_assert_str_eq(it[3].error, "line 5: not a JSON object");
    ck_assert_str_eq(it[4].id, "7");
    ck_assert_str_eq(it[4].error, "line 6: missing field \"text\"");
    ck_assert_str_eq(it[5].error, "line 7: field \"text\" is not a string");
    ck_assert_str_eq(it[6].id, "9.5");
    ck_assert_ptr_null(it[6].error);
    ck_assert_ptr_nonnull(strstr(it[7].error, "must be a string or a number"));
    ck_assert_str_eq(it[8].text, "no newline at end");
    ck_assert_int_eq(it[8].line, 10);
    clear_all(it, n);

    /* Response field required when asked for. */
    n = read_all(data, SG_SCAN_JSONL, "text", "resp", it, 16, err, sizeof err);
    ck_assert_int_eq(n, 9);
    ck_assert_str_eq(it[0].response, "r1");
    ck_assert_str_eq(it[1].response, "r2");
    ck_assert_str_eq(it[6].error, "line 8: field \"resp\" is missing");
    clear_all(it, n);
}
END_TEST

/* A "messages" conversation instead of the text field, mapped as the daemon maps it. */
START_TEST(jsonl_messages)
{
    const char *data =
        "{\"id\": 1, \"messages\": [{\"role\": \"system\", \"content\": \"sys\"}, "
        "{\"role\": \"user\", \"content\": \"question\"}]}\n"
        "{\"id\": 2, \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", "
        "\"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}]}, {\"role\": \"assistant\", "
        "\"content\": \"reply\"}]}\n"
        "{\"id\": 3, \"messages\": [{\"role\": \"assistant\", \"content\": \"alone\"}]}\n"
        "{\"id\": 4, \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": "
        "\"image_url\"}]}]}\n"
        "{\"id\": 5, \"text\": \"plain\", \"messages\": []}\n";
    sg_scan_item it[8];
    char err[256];
    int n = read_all(data, SG_SCAN_JSONL, NULL, NULL, it, 8, err, sizeof err);

    ck_assert_int_eq(n, 5);
    ck_assert_str_eq(it[0].text, "question");
    ck_assert_ptr_null(it[0].response);
    ck_assert_str_eq(it[1].text, "a\nb");
    ck_assert_str_eq(it[1].response, "reply");
    ck_assert_ptr_nonnull(strstr(it[2].error, "line 3: 'messages' has no user turn"));
    ck_assert_ptr_nonnull(strstr(it[3].error, "only text parts"));
    ck_assert_str_eq(it[4].text, "plain"); /* the text field wins */
    clear_all(it, n);
}
END_TEST

START_TEST(jsonl_custom_field_unicode)
{
    const char *data = "{\"msg\": \"caf\\u00e9 \\n two lines\"}\n";
    sg_scan_item it[2];
    char err[256];
    int n = read_all(data, SG_SCAN_JSONL, "msg", NULL, it, 2, err, sizeof err);

    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(it[0].text, "caf\xc3\xa9 \n two lines");
    ck_assert_uint_eq(it[0].text_len, strlen("caf\xc3\xa9 \n two lines"));
    clear_all(it, n);
}
END_TEST

START_TEST(empty_inputs)
{
    sg_scan_item it[2];
    char err[256];

    ck_assert_int_eq(read_all("", SG_SCAN_JSONL, NULL, NULL, it, 2, err, sizeof err), 0);
    ck_assert_int_eq(read_all("", SG_SCAN_TEXT, NULL, NULL, it, 2, err, sizeof err), 0);
    ck_assert_int_eq(read_all("\n  \n", SG_SCAN_JSONL, NULL, NULL, it, 2, err, sizeof err), 0);
    /* CSV needs a header. */
    ck_assert_int_eq(read_all("", SG_SCAN_CSV, NULL, NULL, it, 2, err, sizeof err), -1);
    ck_assert_str_eq(err, "CSV input has no header row");
    /* A header only: no items. */
    ck_assert_int_eq(read_all("id,text\n", SG_SCAN_CSV, NULL, NULL, it, 2, err, sizeof err), 0);
}
END_TEST

START_TEST(csv_quoting)
{
    const char *data = "id,text,resp\r\n"
                       "a,plain,r\r\n"
                       "b,\"with, comma\",r\n"
                       "c,\"quote \"\"inside\"\"\",r\n"
                       "d,\"two\nlines\r\nthree\",r\n"
                       "\n"
                       "e,,\"\"\n"
                       "f,bad\"quote,r\n"
                       "g,\"closed\"junk,r\n"
                       "h,too,many,fields\n"
                       "i,few\n"
                       "j,last,\"end\"";
    sg_scan_item it[16];
    char err[256];
    int n = read_all(data, SG_SCAN_CSV, "text", "resp", it, 16, err, sizeof err);

    ck_assert_int_eq(n, 10);
    ck_assert_str_eq(it[0].id, "\"a\"");
    ck_assert_str_eq(it[0].text, "plain");
    ck_assert_str_eq(it[0].response, "r");
    ck_assert_int_eq(it[0].line, 2);
    ck_assert_str_eq(it[1].text, "with, comma");
    ck_assert_str_eq(it[2].text, "quote \"inside\"");
    ck_assert_str_eq(it[3].text, "two\nlines\r\nthree");
    ck_assert_int_eq(it[3].line, 5);
    ck_assert_str_eq(it[4].id, "\"e\"");
    ck_assert_int_eq(it[4].line, 9); /* lines 5-7 are d, 8 is blank */
    ck_assert_str_eq(it[4].text, "");
    ck_assert_str_eq(it[4].response, "");
    ck_assert_str_eq(it[5].error, "line 10: CSV: a quote inside an unquoted field");
    ck_assert_str_eq(it[5].id, "10");
    ck_assert_str_eq(it[6].error, "line 11: CSV: unexpected character after a closing quote");
    ck_assert_str_eq(it[7].error, "line 12: CSV: 4 fields, the header has 3");
    ck_assert_str_eq(it[8].error, "line 13: CSV: 2 fields, the header has 3");
    ck_assert_str_eq(it[9].text, "last");
    ck_assert_str_eq(it[9].response, "end");
    clear_all(it, n);
}
END_TEST

START_TEST(csv_header_errors)
{
    sg_scan_item it[4];
    char err[256];
    int n;

    ck_assert_int_eq(read_all("id,body\nx,y\n", SG_SCAN_CSV, NULL, NULL, it, 4, err, sizeof err),
                     -1);
    ck_assert_str_eq(err, "CSV header (line 1) has no column 'text'");
    ck_assert_int_eq(read_all("text\nx\n", SG_SCAN_CSV, NULL, "resp", it, 4, err, sizeof err), -1);
    ck_assert_str_eq(err, "CSV header (line 1) has no column 'resp'");
    /* Unterminated quote at the end: one error item, not a crash or a hang. */
    n = read_all("text\n\"open\n", SG_SCAN_CSV, NULL, NULL, it, 4, err, sizeof err);
    ck_assert_int_eq(n, 1);
    ck_assert_ptr_nonnull(strstr(it[0].error, "unterminated quoted field"));
    clear_all(it, n);
    /* No id column: the line number. */
    n = read_all("text\nhello\n", SG_SCAN_CSV, NULL, NULL, it, 4, err, sizeof err);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(it[0].id, "2");
    clear_all(it, n);
    /* Invalid UTF-8 in a CSV field. */
    n = read_all("text\n\xff\xfe\n", SG_SCAN_CSV, NULL, NULL, it, 4, err, sizeof err);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(it[0].error, 
                     "line 2: column 'text' is not valid UTF-8 (or holds a NUL byte)");
    clear_all(it, n);
    /* A NUL byte in a field (found by fuzz_scan). */
    {
        static const char nul[] = "id,text\n1,a\0b\n2,ok\n";
        FILE *f = fmemopen((void *)nul, sizeof nul - 1, "r");
        sg_scan_reader *r = NULL;
        sg_scan_opts o;
        sg_scan_item x;

        memset(&o, 0, sizeof o);
        memset(&x, 0, sizeof x);
        o.format = SG_SCAN_CSV;
        ck_assert_int_eq(sg_scan_reader_new(&r, f, &o, err, sizeof err), 0);
        ck_assert_int_eq(sg_scan_reader_next(r, &x), 1);
        ck_assert_ptr_nonnull(strstr(x.error, "line 2: column 'text'"));
        ck_assert_int_eq(sg_scan_reader_next(r, &x), 1);
        ck_assert_str_eq(x.text, "ok");
        sg_scan_item_clear(&x);
        sg_scan_reader_free(r);
        fclose(f);
    }
}
END_TEST

START_TEST(text_lines)
{
    const char *data = "first\r\n\nthird \xe2\x82\xac\nbad \xc0\xaf\nlast";
    sg_scan_item it[8];
    char err[256];
    int n = read_all(data, SG_SCAN_TEXT, NULL, NULL, it, 8, err, sizeof err);

    ck_assert_int_eq(n, 5);
    ck_assert_str_eq(it[0].text, "first");
    ck_assert_str_eq(it[0].id, "1");
    ck_assert_str_eq(it[1].text, ""); /* an empty line is an item (its error comes later) */
    ck_assert_str_eq(it[2].text, "third \xe2\x82\xac");
    ck_assert_str_eq(it[3].error, "line 4: the line is not valid UTF-8");
    ck_assert_str_eq(it[4].id, "5");
    clear_all(it, n);
}
END_TEST

START_TEST(formats)
{
    sg_scan_format f;

    ck_assert_int_eq(sg_scan_format_of("a.csv"), SG_SCAN_CSV);
    ck_assert_int_eq(sg_scan_format_of("a.txt"), SG_SCAN_TEXT);
    ck_assert_int_eq(sg_scan_format_of("a.jsonl"), SG_SCAN_JSONL);
    ck_assert_int_eq(sg_scan_format_of("-"), SG_SCAN_JSONL);
    ck_assert_int_eq(sg_scan_format_parse("csv", &f), 0);
    ck_assert_int_eq(f, SG_SCAN_CSV);
    ck_assert_int_eq(sg_scan_format_parse("xml", &f), -1);
}
END_TEST

START_TEST(result_lines)
{
    json_t *res = json_loads("[{\"policy\":\"hate\",\"probability\":0.30223200580883575,"
                             "\"violation\":false,\"threshold\":0.5},"
                             "{\"policy\":\"sexual\",\"probability\":0.75,\"violation\":true,"
                             "\"threshold\":0.5}]",
                             0, NULL);
    char *l;

    ck_assert_ptr_nonnull(res);
    l = sg_scan_result_line("\"x\"", res, NULL);
    ck_assert_str_eq(l, "{\"id\":\"x\",\"flagged\":true,\"results\":[{\"policy\":\"hate\","
                        "\"probability\":0.30223200580883575,\"violation\":false},"
                        "{\"policy\":\"sexual\",\"probability\":0.75,\"violation\":true}]}\n");
    free(l);
    l = sg_scan_result_line("12", NULL, "line 12: bad");
    ck_assert_str_eq(l, "{\"id\":12,\"error\":\"line 12: bad\"}\n");
    free(l);
    json_decref(res);
}
END_TEST

START_TEST(resume_truncates_partial_line)
{
    char path[] = "/tmp/check_scan_XXXXXX";
    int fd = mkstemp(path);
    long long lines = -1;
    char buf[64];
    ssize_t n;

    ck_assert_int_ge(fd, 0);
    unlink(path);
    /* Empty file. */
    ck_assert_int_eq(sg_scan_resume(fd, &lines), 0);
    ck_assert_int_eq(lines, 0);
    /* Two complete lines and a torn third. */
    ck_assert_int_eq(sg_scan_write_line(fd, "{\"id\":1}\n{\"id\":2}\n{\"id\":", 25), 0);
    ck_assert_int_eq(sg_scan_resume(fd, &lines), 0);
    ck_assert_int_eq(lines, 2);
    ck_assert_int_eq(lseek(fd, 0, SEEK_END), 18);
    ck_assert_int_eq(sg_scan_write_line(fd, "{\"id\":3}\n", 9), 0);
    n = pread(fd, buf, sizeof buf, 0);
    ck_assert_int_eq(n, 27);
    ck_assert_int_eq(memcmp(buf, "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n", 27), 0);
    /* Only a torn line: truncated to nothing. */
    ck_assert_int_eq(ftruncate(fd, 0), 0);
    ck_assert_int_eq(pwrite(fd, "{\"id", 4, 0), 4);
    ck_assert_int_eq(sg_scan_resume(fd, &lines), 0);
    ck_assert_int_eq(lines, 0);
    ck_assert_int_eq(lseek(fd, 0, SEEK_END), 0);
    close(fd);
}
END_TEST

/* --- shards, the output sidecar and input lists (scan_shard.h, scan_meta.h, scan_inputs.h) --- */

static void clear_sched_env(void)
{
    static const char *const vars[] = {"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT",
                                       "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX",
                                       "SLURM_ARRAY_TASK_STEP", "JOB_COMPLETION_INDEX",
                                       "SHIELDCTL_SHARDS"};

    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
}

/* Resolve and expect I/N; or expect a failure whose message holds `msg`. */
static void want_shard(const char *arg, long shards, long i, long n, const char *msg)
{
    sg_scan_shard sh;
    char err[512] = "";
    int rc = sg_scan_shard_resolve(arg, shards, &sh, err, sizeof err);

    if (msg) {
        ck_assert_msg(rc == -1, "%s: accepted as %ld/%ld", arg ? arg : "(null)", sh.index,
                      sh.count);
        ck_assert_msg(strstr(err, msg) != NULL, "'%s' lacks '%s'", err, msg);
        return;
    }
    ck_assert_msg(rc == 0, "%s: %s", arg ? arg : "(null)", err);
    ck_assert_int_eq(sh.index, i);
    ck_assert_int_eq(sh.count, n);
}

START_TEST(shard_plain)
{
    sg_scan_shard sh;
    char err[256];

    clear_sched_env();
    want_shard(NULL, 0, 0, 1, NULL);
    want_shard("0/1", 0, 0, 1, NULL);
    want_shard("3/4", 0, 3, 4, NULL);
    want_shard("4/4", 0, 0, 0, "--shard wants I/N");
    want_shard("-1/4", 0, 0, 0, "--shard wants I/N");
    want_shard("1/0", 0, 0, 0, "--shard wants I/N");
    want_shard("1/x", 0, 0, 0, "not '1/x'");
    want_shard("1/4 ", 0, 0, 0, "--shard wants");
    want_shard("1/4", 4, 0, 0, "--shards goes with --shard auto");
    want_shard(NULL, 4, 0, 0, "--shards goes with --shard auto");
    ck_assert_int_eq(sg_scan_shard_resolve("2/3", 0, &sh, err, sizeof err), 0);
    ck_assert(!sg_scan_shard_has(&sh, 0) && !sg_scan_shard_has(&sh, 1));
    ck_assert(sg_scan_shard_has(&sh, 2) && sg_scan_shard_has(&sh, 5));
}
END_TEST

START_TEST(shard_auto_slurm)
{
    clear_sched_env();
    want_shard("auto", 0, 0, 0, "neither SLURM_ARRAY_TASK_ID");
    setenv("SLURM_ARRAY_TASK_ID", "2", 1);
    want_shard("auto", 0, 0, 0, "give --shards N");
    setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
    want_shard("auto", 0, 2, 4, NULL);
    /* MIN/MAX win over the count (an array 1-4 is 0-based shards 0..3). */
    setenv("SLURM_ARRAY_TASK_MIN", "1", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "4", 1);
    want_shard("auto", 0, 1, 4, NULL);
    /* --array=0-6:2 (4 tasks: 0 2 4 6) */
    setenv("SLURM_ARRAY_TASK_MIN", "0", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "6", 1);
    setenv("SLURM_ARRAY_TASK_STEP", "2", 1);
    setenv("SLURM_ARRAY_TASK_ID", "4", 1);
    want_shard("auto", 0, 2, 4, NULL);
    setenv("SLURM_ARRAY_TASK_ID", "3", 1);
    want_shard("auto", 0, 0, 0, "not in the array 0-6:2");
    unsetenv("SLURM_ARRAY_TASK_STEP");
    /* --array=0,3,7: three tasks over 0-7 */
    setenv("SLURM_ARRAY_TASK_COUNT", "3", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "7", 1);
    want_shard("auto", 0, 0, 0, "sparse Slurm array");
    /* Resubmitting task 2 alone (--array=2) keeps shard 2/4 only with a fixed count. */
    setenv("SLURM_ARRAY_TASK_ID", "2", 1);
    setenv("SLURM_ARRAY_TASK_COUNT", "1", 1);
    setenv("SLURM_ARRAY_TASK_MIN", "2", 1);
    setenv("SLURM_ARRAY_TASK_MAX", "2", 1);
    want_shard("auto", 0, 0, 1, NULL);
    want_shard("auto", 4, 2, 4, NULL);
    setenv("SHIELDCTL_SHARDS", "4", 1);
    want_shard("auto", 0, 2, 4, NULL);
    want_shard("auto", 8, 2, 8, NULL); /* --shards beats the variable */
    setenv("SLURM_ARRAY_TASK_ID", "4", 1);
    want_shard("auto", 0, 0, 0, "SLURM_ARRAY_TASK_ID=4 is not below the shard count 4");
    setenv("SLURM_ARRAY_TASK_ID", "two", 1);
    want_shard("auto", 0, 0, 0, "SLURM_ARRAY_TASK_ID='two' is not a number");
    setenv("SHIELDCTL_SHARDS", "0", 1);
    want_shard("auto", 0, 0, 0, "SHIELDCTL_SHARDS='0' is not a number from 1");
}
END_TEST

START_TEST(shard_auto_kubernetes)
{
    clear_sched_env();
    setenv("JOB_COMPLETION_INDEX", "3", 1);
    want_shard("auto", 0, 0, 0, "--shards N or SHIELDCTL_SHARDS");
    want_shard("auto", 5, 3, 5, NULL);
    want_shard("auto", 3, 0, 0, "JOB_COMPLETION_INDEX=3 is not below the shard count 3");
    setenv("SHIELDCTL_SHARDS", "4", 1);
    want_shard("auto", 0, 3, 4, NULL);
    setenv("JOB_COMPLETION_INDEX", "", 1);
    want_shard("auto", 0, 0, 0, "JOB_COMPLETION_INDEX='' is not a number");
    setenv("JOB_COMPLETION_INDEX", "1", 1);
    setenv("SLURM_ARRAY_TASK_ID", "1", 1);
    want_shard("auto", 0, 0, 0, "both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX");
}
END_TEST

static char *tmp_dir(void)
{
    char tmpl[] = "/tmp/check_scan_XXXXXX";
    char *d = mkdtemp(tmpl);

    ck_assert_ptr_nonnull(d);
    return strdup(d);
}

/* Remove the flat folder made by tmp_dir() and free its name. */
static void rm_dir(char *d)
{
    DIR *dh = opendir(d);
    struct dirent *e;
    char p[512];

    while (dh && (e = readdir(dh)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", d, e->d_name);
            unlink(p);
        }
    }
    if (dh)
        closedir(dh);
    rmdir(d);
    free(d);
}

static void put(const char *dir, const char *name, const char *data)
{
    char p[512];
    FILE *f;

    snprintf(p, sizeof p, "%s/%s", dir, name);
    f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(data, f);
    fclose(f);
}

static json_t *meta_for(const char *dir, const char *input, long i, long n, const char *field)
{
    char p[512], err[256];
    sg_scan_shard sh = {.index = i, .count = n};
    json_t *inputs = json_array();
    json_t *id;

    snprintf(p, sizeof p, "%s/%s", dir, input);
    id = sg_scan_input_identity(p, err, sizeof err);
    ck_assert_msg(id != NULL, "%s", err);
    json_array_append_new(inputs, id);
    return sg_scan_meta_new(&sh, "item", inputs, json_pack("{ss}", "field", field));
}

START_TEST(meta_roundtrip_and_mismatch)
{
    char *d = tmp_dir();
    char out[512], err[512];
    json_t *a, *b, *got;

    put(d, "in.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n");
    snprintf(out, sizeof out, "%s/out.jsonl", d);
    ck_assert_int_eq(sg_scan_meta_load(out, &got, err, sizeof err), 1); /* none yet */
    a = meta_for(d, "in.jsonl", 1, 4, "text");
    ck_assert_int_eq(sg_scan_meta_save(out, a, err, sizeof err), 0);
    ck_assert_int_eq(sg_scan_meta_load(out, &got, err, sizeof err), 0);
    ck_assert_int_eq(sg_scan_meta_same(got, a, err, sizeof err), 0);
    ck_assert(json_equal(got, a));
    json_decref(got);
    /* Another shard of the same input. */
    b = meta_for(d, "in.jsonl", 2, 4, "text");
    ck_assert_int_eq(sg_scan_meta_same(a, b, err, sizeof err), -1);
    ck_assert_str_eq(err, "it holds shard 1/4, this is shard 2/4");
    json_decref(b);
    /* Another field. */
    b = meta_for(d, "in.jsonl", 1, 4, "body");
    ck_assert_int_eq(sg_scan_meta_same(a, b, err, sizeof err), -1);
    ck_assert_str_eq(err, "it was scanned with field \"text\", this scan has \"body\"");
    json_decref(b);
    /* The same size, one byte changed: the fingerprint tells. */
    put(d, "in.jsonl", "{\"text\": \"a\"}\n{\"text\": \"c\"}\n");
    b = meta_for(d, "in.jsonl", 1, 4, "text");
    ck_assert_int_eq(sg_scan_meta_same(a, b, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "input 1 differs") != NULL, "%s", err);
    json_decref(b);
    /* The same bytes under another name: the same input. */
    put(d, "copy.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n");
    b = meta_for(d, "copy.jsonl", 1, 4, "text");
    ck_assert_int_eq(sg_scan_meta_same(a, b, err, sizeof err), 0);
    json_decref(b);
    json_decref(a);
    /* Not a sidecar, not JSON. */
    put(d, "out.jsonl.meta.json", "{\"hello\": 1}\n");
    ck_assert_int_eq(sg_scan_meta_load(out, &got, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "not a shieldctl scan sidecar") != NULL, "%s", err);
    put(d, "out.jsonl.meta.json", "{\"shieldctl_scan\": 1,");
    ck_assert_int_eq(sg_scan_meta_load(out, &got, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "out.jsonl.meta.json:1:") != NULL, "%s", err);
    /* An input that is not there. */
    snprintf(out, sizeof out, "%s/nope.jsonl", d);
    ck_assert_ptr_null(sg_scan_input_identity(out, err, sizeof err));
    ck_assert_msg(strstr(err, "nope.jsonl: No such file") != NULL, "%s", err);
    rm_dir(d);
}
END_TEST

START_TEST(input_globs)
{
    char *d = tmp_dir();
    char pat[512], plain[512], err[512];
    const char *names[3];
    sg_scan_paths p;

    put(d, "b.jsonl", "");
    put(d, "a.jsonl", "");
    put(d, "c.txt", "");
    snprintf(pat, sizeof pat, "%s/*.jsonl", d);
    snprintf(plain, sizeof plain, "%s/c.txt", d);
    names[0] = plain;
    names[1] = pat;
    names[2] = "-";
    ck_assert_int_eq(sg_scan_paths_expand(names, 3, &p, err, sizeof err), 0);
    ck_assert_uint_eq(p.n, 4);
    ck_assert_str_eq(p.v[0], plain);
    ck_assert_ptr_nonnull(strstr(p.v[1], "/a.jsonl"));
    ck_assert_ptr_nonnull(strstr(p.v[2], "/b.jsonl"));
    ck_assert_str_eq(p.v[3], "-");
    sg_scan_paths_free(&p);
    snprintf(pat, sizeof pat, "%s/*.csv", d);
    names[0] = pat;
    ck_assert_int_eq(sg_scan_paths_expand(names, 1, &p, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "no file matches") && strstr(err, "*.csv"), "%s", err);
    ck_assert_uint_eq(p.n, 0);
    rm_dir(d);
}
END_TEST

/* The extra-fields hook (the labels of `shieldctl eval`): JSONL values, CSV columns. */
START_TEST(extra_fields)
{
    static const char *const extra[] = {"label", "labels", NULL};
    static const char jsonl[] = "{\"text\": \"a\", \"label\": 1, \"labels\": {\"hate\": true}}\n"
                                "{\"text\": \"b\"}\n";
    static const char csv[] = "text,labels.hate,labels.sexual,label,other\n"
                              "x,1,0,true,z\n";
    sg_scan_opts o;
    sg_scan_reader *r = NULL;
    sg_scan_item it;
    char err[256];
    FILE *f;
    char *s;

    memset(&o, 0, sizeof o);
    memset(&it, 0, sizeof it);
    o.extra_fields = extra;
    f = fmemopen((void *)jsonl, strlen(jsonl), "r");
    ck_assert_int_eq(sg_scan_reader_new(&r, f, &o, err, sizeof err), 0);
    ck_assert_int_eq(sg_scan_reader_next(r, &it), 1);
    ck_assert_ptr_nonnull(it.extra);
    s = json_dumps(it.extra, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_str_eq(s, "{\"label\":1,\"labels\":{\"hate\":true}}");
    free(s);
    ck_assert_int_eq(sg_scan_reader_next(r, &it), 1);
    ck_assert_ptr_null(it.extra);
    ck_assert_int_eq(sg_scan_reader_next(r, &it), 0);
    sg_scan_item_clear(&it);
    sg_scan_reader_free(r);
    fclose(f);

    o.format = SG_SCAN_CSV;
    f = fmemopen((void *)csv, strlen(csv), "r");
    ck_assert_int_eq(sg_scan_reader_new(&r, f, &o, err, sizeof err), 0);
    ck_assert_int_eq(sg_scan_reader_next(r, &it), 1);
    ck_assert_ptr_null(it.error);
    s = json_dumps(it.extra, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_str_eq(s, "{\"label\":\"true\",\"labels\":{\"hate\":\"1\",\"sexual\":\"0\"}}");
    free(s);
    sg_scan_item_clear(&it);
    sg_scan_reader_free(r);
    fclose(f);
}
END_TEST

Suite *scan_suite(void)
{
    Suite *s = suite_create("scan");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, jsonl_basic_and_errors);
    tcase_add_test(tc, jsonl_custom_field_unicode);
    tcase_add_test(tc, jsonl_messages);
    tcase_add_test(tc, empty_inputs);
    tcase_add_test(tc, csv_quoting);
    tcase_add_test(tc, csv_header_errors);
    tcase_add_test(tc, text_lines);
    tcase_add_test(tc, formats);
    tcase_add_test(tc, result_lines);
    tcase_add_test(tc, resume_truncates_partial_line);
    tcase_add_test(tc, extra_fields);
    suite_add_tcase(s, tc);
    tc = tcase_create("shard");
    tcase_add_test(tc, shard_plain);
    tcase_add_test(tc, shard_auto_slurm);
    tcase_add_test(tc, shard_auto_kubernetes);
    tcase_add_test(tc, meta_roundtrip_and_mismatch);
    tcase_add_test(tc, input_globs);
    suite_add_tcase(s, tc);
    return s;
}
