/*
 * check_policy.c: the policy loader (every validation error with its file:line:column), the
 * shipped policies, and byte-exact rendering of both modes for every shipped policy against
 * tests/fixtures/render/ (made from the model card's prompts independently of the YAML files:
 * tests/fixtures/render/README.md).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/engine_fixtures.h"
#include "sg_moderate.h"
#include "sg_policy.h"

Suite *policy_suite(void);

/* A fresh directory holding a copy of the shipped template.yaml (unless `with_template` is 0). */
static char tmpdir[256];

static const char *new_dir(int with_template)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sg-policy-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    if (with_template) {
        char *t = fx_slurp("policies/template.yaml", NULL);

        fx_put(tmpdir, "template.yaml", t);
        free(t);
    }
    return tmpdir;
}

static void rm_dir(const char *dir)
{
    char cmd[512];

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char good_policy[] = "name: demo\n"
                                  "title: Demo\n"
                                  "description: a test policy\n"
                                  "guideline:\n"
                                  "  prompt: '\"No Demo\": The prompt shall not be a demo.'\n"
                                  "  response: '\"No Demo\": The chatbot shall not demo.'\n"
                                  "threshold: 0.25\n"
                                  "enabled: true\n";

/* Load `dir`; expect failure `code` with a message that starts with "<dir>/<file>:<pos>: " and
 * contains `needle`. */
static void expect_error(const char *dir, int code, const char *file_pos, const char *needle)
{
    sg_policy_set *set = (sg_policy_set *)0x1;
    char err[512];
    char want[600];
    int rc = sg_policy_set_load(&set, dir, err, sizeof err);

    ck_assert_msg(rc == code, "expected %d (%s), got %d: %s", code, sg_policy_strerror(code), rc,
                  err);
    ck_assert_ptr_null(set);
    snprintf(want, sizeof want, "%s/%s ", dir, file_pos);
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "message '%s' does not start with '%s'",
                  err, want);
    ck_assert_msg(strstr(err, needle) != NULL, "message '%s' lacks '%s'", err, needle);
}

/* One policy file `text` next to the shipped template must fail at `pos` with `needle`. */
static void expect_policy_error(const char *text, int code, const char *pos, const char *needle)
{
    const char *dir = new_dir(1);
    char fp[64];

    fx_put(dir, "p.yaml", text);
    snprintf(fp, sizeof fp, "p.yaml:%s", pos);
    expect_error(dir, code, fp, needle);
    rm_dir(dir);
}

/* Load the shipped policies/ folder, whose path goes into `path`. */
static sg_policy_set *load_shipped(char *path, size_t cap)
{
    char err[512] = "";
    sg_policy_set *set = NULL;

    snprintf(path, cap, "%s/policies", fx_top());
    ck_assert_msg(sg_policy_set_load(&set, path, err, sizeof err) == SG_POLICY_OK, "%s", err);
    return set;
}

START_TEST(shipped_set)
{
    char path[1024];
    sg_policy_set *set = NULL;
    static const char *const names[] = {"dangerous", "harassment", "hate",
                                        "obscenity", "sexual",     "violence"};
    static const int enabled[] = {1, 1, 1, 0, 1, 0};

    set = load_shipped(path, sizeof path);
    ck_assert_uint_eq(sg_policy_count(set), 6);
    for (size_t i = 0; i < 6; i++) {
        const sg_policy *p = sg_policy_at(set, i);

        ck_assert_str_eq(p->name, names[i]);
        ck_assert_int_eq(p->enabled, enabled[i]);
        ck_assert(p->threshold == 0.5);
        ck_assert(strlen(p->title) > 0);
        ck_assert(strlen(p->description) > 0);
        ck_assert_ptr_eq(sg_policy_find(set, names[i]), p);
        ck_assert_ptr_nonnull(strstr(p->file, names[i]));
    }
    ck_assert_ptr_null(sg_policy_at(set, 6));
    ck_assert_ptr_null(sg_policy_find(set, "nope"));
    ck_assert_str_eq(sg_policy_answer_yes(set), "Yes");
    ck_assert_str_eq(sg_policy_answer_no(set), "No");
    ck_assert_str_eq(sg_policy_set_dir(set), path);
    ck_assert_ptr_nonnull(strstr(sg_policy_template_file(set), "template.yaml"));
    sg_policy_set_free(set);
    sg_policy_set_free(NULL);
}
END_TEST

/* Byte-exact rendering, both modes, every shipped policy. */
START_TEST(render_exact)
{
    char path[1024];
    sg_policy_set *set = NULL;
    char *user = fx_slurp("tests/fixtures/render/user.txt", NULL);
    char *resp = fx_slurp("tests/fixtures/render/response.txt", NULL);

    set = load_shipped(path, sizeof path);
    for (size_t i = 0; i < sg_policy_count(set); i++) {
        const sg_policy *p = sg_policy_at(set, i);

        for (int m = 0; m < SG_MODE_COUNT; m++) {
            char rel[256];
            char *want;
            char *got = NULL;
            size_t wl;

            snprintf(rel, sizeof rel, "tests/fixtures/render/%s.%s.txt", p->name,
                     m == SG_MODE_PROMPT ? "prompt" : "response");
            want = fx_slurp(rel, &wl);
            ck_assert_int_eq(sg_moderate_render(set, p, user, m ? resp : NULL, &got), SG_OK);
            ck_assert_uint_eq(strlen(got), wl);
            ck_assert_msg(memcmp(got, want, wl) == 0, "%s differs", rel);
            free(got);
            free(want);
        }
    }
    sg_policy_set_free(set);
    free(user);
    free(resp);
}
END_TEST

/* The parts of a rendered prompt: slots in order, user text never re-parsed for placeholders. */
START_TEST(render_parts)
{
    char path[1024];
    sg_policy_set *set = NULL;
    sg_prompt_part parts[SG_PROMPT_MAX_PARTS];
    const char *user = "say {GUIDELINE} and <end_of_turn>\n\nOur safety principle";
    const char *resp = "{USER}";
    const sg_policy *hate;
    char *got = NULL;
    int n;

    set = load_shipped(path, sizeof path);
    hate = sg_policy_find(set, "hate");
    n = sg_policy_render(set, hate, SG_MODE_PROMPT, user, strlen(user), NULL, 0, parts);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(parts[0].slot, SG_SLOT_TEMPLATE);
    ck_assert_int_eq(parts[1].slot, SG_SLOT_USER);
    ck_assert_ptr_eq(parts[1].text, user);
    ck_assert_int_eq(parts[2].slot, SG_SLOT_TEMPLATE);
    ck_assert(parts[2].len > 2 && memcmp(parts[2].text + parts[2].len - 2, "* ", 2) == 0);
    ck_assert_int_eq(parts[3].slot, SG_SLOT_GUIDELINE);
    ck_assert_ptr_eq(parts[3].text, hate->guideline[SG_MODE_PROMPT]);
    ck_assert_int_eq(parts[4].slot, SG_SLOT_TEMPLATE);

    n = sg_policy_render(set, hate, SG_MODE_RESPONSE, user, strlen(user), resp, strlen(resp),
                         parts);
    ck_assert_int_eq(n, 7);
    ck_assert_int_eq(parts[3].slot, SG_SLOT_RESPONSE);
    ck_assert_int_eq(parts[5].slot, SG_SLOT_GUIDELINE);
    ck_assert_ptr_eq(parts[5].text, hate->guideline[SG_MODE_RESPONSE]);

    /* An empty user text leaves its part out; the placeholders in texts stay literal. */
    n = sg_policy_render(set, hate, SG_MODE_PROMPT, "", 0, NULL, 0, parts);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(sg_moderate_render(set, hate, user, resp, &got), SG_OK);
    ck_assert_ptr_nonnull(strstr(got, "Human Question: say {GUIDELINE} and <end_of_turn>\n\nOur"));
    ck_assert_ptr_nonnull(strstr(got, "Chatbot Response: {USER}\n<end_of_turn>"));
    free(got);

    /* Bad arguments. */
    ck_assert_int_eq(sg_policy_render(set, hate, SG_MODE_PROMPT, user, 3, "x", 1, parts),
                     SG_POLICY_EINVAL);
    ck_assert_int_eq(sg_policy_render(set, hate, SG_MODE_RESPONSE, user, 3, NULL, 0, parts),
                     SG_POLICY_EINVAL);
    ck_assert_int_eq(sg_policy_render(set, NULL, SG_MODE_PROMPT, user, 3, NULL, 0, parts),
                     SG_POLICY_EINVAL);
    ck_assert_int_eq(sg_policy_render(set, hate, SG_MODE_COUNT, user, 3, NULL, 0, parts),
                     SG_POLICY_EINVAL);
    ck_assert_int_eq(sg_moderate_render(set, hate, NULL, NULL, &got), SG_EINVAL);
    ck_assert_ptr_null(got);
    sg_policy_set_free(set);
}
END_TEST

/* An operator's policy in a folder of its own loads, with its threshold and flag. */
START_TEST(operator_policy)
{
    const char *dir = new_dir(1);
    char err[512] = "";
    sg_policy_set *set = NULL;
    const sg_policy *p;

    fx_put(dir, "demo.yaml", good_policy);
    fx_put(dir, "README", "not a policy: ignored");
    fx_put(dir, ".hidden.yaml", "ignored: [");
    ck_assert_msg(sg_policy_set_load(&set, dir, err, sizeof err) == SG_POLICY_OK, "%s", err);
    ck_assert_uint_eq(sg_policy_count(set), 1);
    p = sg_policy_at(set, 0);
    ck_assert_str_eq(p->name, "demo");
    ck_assert(p->threshold == 0.25);
    ck_assert_int_eq(p->enabled, 1);
    ck_assert_str_eq(p->guideline[SG_MODE_PROMPT], "\"No Demo\": The prompt shall not be a demo.");
    sg_policy_set_free(set);
    rm_dir(dir);
}
END_TEST

/* openai_categories: optional; the shipped mapping; only OpenAI's names, each once. */
START_TEST(openai_categories)
{
    char path[1024], buf[1024];
    sg_policy_set *set = load_shipped(path, sizeof path);
    const sg_policy *d = sg_policy_find(set, "dangerous");

    ck_assert_uint_eq(d->n_openai_categories, 2);
    ck_assert_str_eq(d->openai_categories[0], "illicit");
    ck_assert_str_eq(d->openai_categories[1], "illicit/violent");
    ck_assert_uint_eq(sg_policy_find(set, "hate")->n_openai_categories, 1);
    ck_assert_uint_eq(sg_policy_find(set, "obscenity")->n_openai_categories, 0);
    sg_policy_set_free(set);
    snprintf(buf, sizeof buf, "%sopenai_categories: [hate, selfharm]\n", good_policy);
    expect_policy_error(buf, SG_POLICY_EINVALID, "9:27:", "unknown OpenAI category 'selfharm'");
    snprintf(buf, sizeof buf, "%sopenai_categories: [hate, hate]\n", good_policy);
    expect_policy_error(buf, SG_POLICY_EINVALID, "9:27:", "'hate' is listed twice");
    snprintf(buf, sizeof buf, "%sopenai_categories: hate\n", good_policy);
    expect_policy_error(buf, SG_POLICY_EINVALID, "9:20:", "must be a list of OpenAI category names");
}
END_TEST

START_TEST(err_unknown_key)
{
    expect_policy_error("name: demo\ncolour: red\n", SG_POLICY_EINVALID, "2:1:",
                        "unknown key 'colour'");
}
END_TEST

START_TEST(err_missing_key)
{
    expect_policy_error("name: demo\ntitle: Demo\ndescription: d\n"
                        "guideline:\n  prompt: a\n  response: b\nenabled: true\n",
                        SG_POLICY_EINVALID, "1:1:", "missing key 'threshold'");
    expect_policy_error("name: demo\ntitle: Demo\ndescription: d\n"
                        "guideline:\n  prompt: a\nthreshold: 0.5\nenabled: true\n",
                        SG_POLICY_EINVALID, "5:3:", "missing key 'response'");
}
END_TEST

START_TEST(err_duplicate_key)
{
    expect_policy_error("name: demo\ntitle: Demo\nname: other\n", SG_POLICY_EINVALID, "3:1:",
                        "duplicate key 'name' (first at line 1)");
}
END_TEST

START_TEST(err_duplicate_name)
{
    const char *dir = new_dir(1);
    char want[256];

    fx_put(dir, "a.yaml", good_policy);
    fx_put(dir, "b.yaml", good_policy);
    snprintf(want, sizeof want, "duplicate policy name 'demo' (also in %s/a.yaml:1:7)", dir);
    expect_error(dir, SG_POLICY_EINVALID, "b.yaml:1:7:", want);
    rm_dir(dir);
}
END_TEST

START_TEST(err_guideline_star)
{
    expect_policy_error("name: demo\ntitle: Demo\ndescription: d\nguideline:\n"
                        "  prompt: '* \"No Demo\": no.'\n  response: b\n"
                        "threshold: 0.5\nenabled: true\n",
                        SG_POLICY_EINVALID, "5:11:", "starts with \"* \"");
    /* A '|' block keeps its final newline, which would change the prompt. */
    expect_policy_error("name: demo\ntitle: Demo\ndescription: d\nguideline:\n"
                        "  prompt: a\n  response: |\n    b\nthreshold: 0.5\nenabled: true\n",
                        SG_POLICY_EINVALID, "6:13:", "ends with whitespace");
    expect_policy_error("name: demo\ntitle: Demo\ndescription: d\nguideline:\n"
                        "  prompt: ''\n  response: b\nthreshold: 0.5\nenabled: true\n",
                        SG_POLICY_EINVALID, "5:11:", "is empty");
    expect_policy_error("name: demo\ntitle: Demo\ndescription: d\nguideline:\n"
                        "  prompt: \"a\\0b\"\n  response: b\nthreshold: 0.5\nenabled: true\n",
                        SG_POLICY_EINVALID, "5:11:", "NUL");
    expect_policy_error("name: demo\ntitle: Demo\ndescription: d\nguideline: [a, b]\n"
                        "threshold: 0.5\nenabled: true\n",
                        SG_POLICY_EINVALID, "4:12:", "must be a mapping");
}
END_TEST

START_TEST(err_threshold)
{
    static const char *const bad[] = {"1.5", "-0.1", "abc", "'0.5'", "nan", "1e999", "0x1p-1"};
    static const char *const why[] = {"outside [0, 1]", "outside [0, 1]", "must be a number",
                                      "must be a number", "must be a number", "must be a number",
                                      "must be a number"};

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[512];

        snprintf(text, sizeof text,
                 "name: demo\ntitle: Demo\ndescription: d\nguideline:\n"
                 "  prompt: a\n  response: b\nthreshold: %s\nenabled: true\n",
                 bad[i]);
        expect_policy_error(text, SG_POLICY_EINVALID, "7:12:", why[i]);
    }
    expect_policy_error("name: demo\ntitle: Demo\ndescription: d\nguideline:\n"
                        "  prompt: a\n  response: b\nthreshold: 1\nenabled: maybe\n",
                        SG_POLICY_EINVALID, "8:10:", "must be true or false");
}
END_TEST

START_TEST(err_name)
{
    static const char rest[] = "description: d\nguideline:\n  prompt: a\n  response: b\n"
                               "threshold: 0.5\nenabled: true\n";
    char text[512];

    snprintf(text, sizeof text, "name: Bad Name\ntitle: T\n%s", rest);
    expect_policy_error(text, SG_POLICY_EINVALID, "1:7:", "invalid policy name");
    snprintf(text, sizeof text, "name: [x]\ntitle: T\n%s", rest);
    expect_policy_error(text, SG_POLICY_EINVALID, "1:7:", "must be a string");
    snprintf(text, sizeof text, "name: demo\ntitle: \"two\\nlines\"\n%s", rest);
    expect_policy_error(text, SG_POLICY_EINVALID, "2:8:", "single line");
}
END_TEST

START_TEST(err_utf8)
{
    expect_policy_error("name: demo\ntitle: D\xc3\xa9mo\ndescription: caf\xc3\x28\n",
                        SG_POLICY_ESYNTAX, "3:17:", "invalid UTF-8");
    /* Overlong encoding and a surrogate. */
    expect_policy_error("name: \xc0\xaf\n", SG_POLICY_ESYNTAX, "1:7:", "invalid UTF-8");
    expect_policy_error("# \xed\xa0\x80\n", SG_POLICY_ESYNTAX, "1:3:", "invalid UTF-8");
}
END_TEST

START_TEST(err_syntax)
{
    expect_policy_error("name: demo\ntitle: \"unclosed\n", SG_POLICY_ESYNTAX, "3:1:",
                        "end of stream");
    expect_policy_error("name: demo\n  title: x\n", SG_POLICY_ESYNTAX, "2:8:", "");
    /* A key without ':' on line 2 is reported on line 2, where libyaml's context starts. */
    expect_policy_error("name: demo\ntitle x\nenabled: true\n", SG_POLICY_ESYNTAX, "2:1:",
                        "could not find expected ':'");
    expect_policy_error("", SG_POLICY_EINVALID, "1:1:", "empty");
    expect_policy_error("- a\n- b\n", SG_POLICY_EINVALID, "1:1:", "must be a mapping");
    expect_policy_error("name: demo\n---\nname: x\n", SG_POLICY_EINVALID, "2:1:",
                        "second YAML document");
    expect_policy_error("? [a]\n: b\n", SG_POLICY_EINVALID, "1:3:", "key must be a string");
    expect_policy_error("name: demo\x01\n", SG_POLICY_ESYNTAX, "1:11:", "control characters");
    /* Deeply nested flow collections (quadratic in libyaml) are refused up front. */
    {
        char *deep = malloc(2 * 40000 + 16);

        ck_assert_ptr_nonnull(deep);
        strcpy(deep, "name: ");
        memset(deep + 6, '[', 40000);
        memset(deep + 6 + 40000, ']', 40000);
        strcpy(deep + 6 + 80000, "\n");
        expect_policy_error(deep, SG_POLICY_ESYNTAX, "1:1007:", "more than 1000 '[' and '{'");
        free(deep);
    }
}
END_TEST

/* A template broken in each way; `field` replaces one key of a good template. */
static void expect_template_error(const char *prompt, const char *response, const char *pos,
                                  const char *needle)
{
    const char *dir = new_dir(0);
    char text[2048];
    char fp[64];

    snprintf(text, sizeof text,
             "description: t\nprompt: \"%s\"\nresponse: \"%s\"\nanswer_yes: Yes\n"
             "answer_no: No\n",
             prompt, response);
    fx_put(dir, "template.yaml", text);
    fx_put(dir, "demo.yaml", good_policy);
    snprintf(fp, sizeof fp, "template.yaml:%s", pos);
    expect_error(dir, SG_POLICY_EINVALID, fp, needle);
    rm_dir(dir);
}

START_TEST(err_template)
{
    const char *good_p = "Q: {USER}\\n* {GUIDELINE}\\n";
    const char *good_r = "Q: {USER}\\nA: {RESPONSE}\\n* {GUIDELINE}\\n";

    expect_template_error("Q: {USER}\\n* \\n", good_r, "2:9:", "no {GUIDELINE} placeholder");
    expect_template_error("Q: \\n* {GUIDELINE}\\n", good_r, "2:9:", "no {USER} placeholder");
    expect_template_error(good_p, "Q: {USER}\\n* {GUIDELINE}", "3:11:",
                          "no {RESPONSE} placeholder");
    expect_template_error("Q: {USER} {RESPONSE} {GUIDELINE}", good_r, "2:9:",
                          "{RESPONSE} belongs in the response template only");
    expect_template_error("Q: {USER} {GUIDLINE} {GUIDELINE}", good_r, "2:9:",
                          "unknown placeholder {GUIDLINE}");
    expect_template_error("Q: {USER} {USER} {GUIDELINE}", good_r, "2:9:", "appears twice");

    /* Unknown and missing keys, equal answers. */
    {
        const char *dir = new_dir(0);

        fx_put(dir, "template.yaml", "description: t\nprompt: \"{USER}{GUIDELINE}\"\n"
                                       "response: \"{USER}{RESPONSE}{GUIDELINE}\"\n"
                                       "answer_yes: Yes\nanswer_no: Yes\n");
        fx_put(dir, "demo.yaml", good_policy);
        expect_error(dir, SG_POLICY_EINVALID, "template.yaml:5:12:", "equals");
        fx_put(dir, "template.yaml", "description: t\nprompt: \"{USER}{GUIDELINE}\"\n"
                                       "answer_yes: Yes\nanswer_no: No\n");
        expect_error(dir, SG_POLICY_EINVALID, "template.yaml:1:1:", "missing key 'response'");
        fx_put(dir, "template.yaml", "description: t\nsystem: x\n");
        expect_error(dir, SG_POLICY_EINVALID, "template.yaml:2:1:", "unknown key 'system'");
        rm_dir(dir);
    }
}
END_TEST

START_TEST(err_directory)
{
    sg_policy_set *set = NULL;
    char err[512];
    const char *dir;

    ck_assert_int_eq(sg_policy_set_load(&set, "/nonexistent/policies", err, sizeof err),
                     SG_POLICY_EIO);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/policies: cannot open"));

    dir = new_dir(0);
    fx_put(dir, "demo.yaml", good_policy);
    ck_assert_int_eq(sg_policy_set_load(&set, dir, err, sizeof err), SG_POLICY_EINVALID);
    ck_assert_ptr_nonnull(strstr(err, "no template.yaml"));
    rm_dir(dir);

    dir = new_dir(1);
    ck_assert_int_eq(sg_policy_set_load(&set, dir, err, sizeof err), SG_POLICY_EINVALID);
    ck_assert_ptr_nonnull(strstr(err, "no policy files"));
    rm_dir(dir);

    /* Files are read by the engine's reader (sg_read_file): at most 1 MiB, regular files only. */
    dir = new_dir(1);
    {
        size_t big = (1u << 20) + 1;
        char *text = malloc(big + 1);

        ck_assert_ptr_nonnull(text);
        memset(text, '#', big);
        text[big] = '\0';
        fx_put(dir, "big.yaml", text);
        free(text);
    }
    ck_assert_int_eq(sg_policy_set_load(&set, dir, err, sizeof err), SG_POLICY_EINVALID);
    ck_assert_msg(strstr(err, "big.yaml: 1048577 bytes, more than the 1048576 accepted"), "%s",
                  err);
    rm_dir(dir);

    ck_assert_int_eq(sg_policy_set_load(NULL, ".", err, sizeof err), SG_POLICY_EINVAL);
    ck_assert_str_eq(sg_policy_strerror(SG_POLICY_ESYNTAX), "YAML syntax error");
    ck_assert_str_eq(sg_policy_strerror(42), "unknown error");
}
END_TEST

Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("load");

    tcase_add_test(tc, shipped_set);
    tcase_add_test(tc, render_exact);
    tcase_add_test(tc, render_parts);
    tcase_add_test(tc, operator_policy);
    tcase_add_test(tc, openai_categories);
    tcase_add_test(tc, err_unknown_key);
    tcase_add_test(tc, err_missing_key);
    tcase_add_test(tc, err_duplicate_key);
    tcase_add_test(tc, err_duplicate_name);
    tcase_add_test(tc, err_guideline_star);
    tcase_add_test(tc, err_threshold);
    tcase_add_test(tc, err_name);
    tcase_add_test(tc, err_utf8);
    tcase_add_test(tc, err_syntax);
    tcase_add_test(tc, err_template);
    tcase_add_test(tc, err_directory);
    suite_add_tcase(s, tc);
    return s;
}
