/*
 * check_daemon_json.c: the daemon's small pure pieces: sg_moderate_result_json (the shared
 * /v1/classify object), the JSON error body, status texts and error types, endpoint labels,
 * and the Prometheus rendering of the metrics.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "http.h"
#include "metrics.h"
#include "sg_moderate_json.h"

Suite *daemon_json_suite(void);

START_TEST(result_json)
{
    sg_policy hate = {.name = "hate", .threshold = 0.5};
    sg_policy sex = {.name = "sexual", .threshold = 0.25};
    sg_policy_score scores[2] = {{&hate, 0.125, 0, 0.5}, {&sex, 0.75, 1, 0.25}};
    sg_moderate_result res = {scores, 2, 1, 412, 300, 0, 0, 0, 100};
    json_t *o = sg_moderate_result_json("shieldgemma-2b", &res);
    char *s;

    ck_assert_ptr_nonnull(o);
    s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    ck_assert_str_eq(s, "{\"model\":\"shieldgemma-2b\",\"results\":[{\"policy\":\"hate\","
                        "\"probability\":0.125,\"violation\":false,\"threshold\":0.5},"
                        "{\"policy\":\"sexual\",\"probability\":0.75,\"violation\":true,"
                        "\"threshold\":0.25}],\"flagged\":true,\"usage\":{\"prompt_tokens\":412,"
                        "\"computed_tokens\":300,\"cached_tokens\":100}}");
    free(s);
    json_decref(o);
    /* Without a model (batch items) and with truncation. */
    res.truncated = 1;
    res.n_scores = 0;
    o = sg_moderate_result_json(NULL, &res);
    s = json_dumps(o, JSON_COMPACT);
    ck_assert_str_eq(s, "{\"results\":[],\"flagged\":true,\"usage\":{\"prompt_tokens\":412,"
                        "\"computed_tokens\":300,\"cached_tokens\":100},\"truncated\":true}");
    free(s);
    json_decref(o);
    ck_assert_ptr_null(sg_moderate_result_json("m", NULL));
}
END_TEST

START_TEST(error_json)
{
    char *s = http_error_json("invalid_request_error", "bad \"quote\"\n");

    ck_assert_str_eq(s, "{\"error\":{\"type\":\"invalid_request_error\",\"message\":"
                        "\"bad \\\"quote\\\"\\n\"}}");
    free(s);
    /* A message that is not UTF-8 (it may quote client bytes) still gives valid JSON. */
    s = http_error_json("x", "\xff\xfe");
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(strstr(s, "not representable"));
    free(s);
    ck_assert_str_eq(http_status_text(413), "Content Too Large");
    ck_assert_str_eq(http_status_text(431), "Request Header Fields Too Large");
    ck_assert_str_eq(http_error_type(400), "invalid_request_error");
    ck_assert_str_eq(http_error_type(503), "overloaded_error");
    ck_assert_str_eq(http_error_type(504), "timeout_error");
    ck_assert_str_eq(http_error_type(599), "server_error");
}
END_TEST

START_TEST(metrics_text)
{
    struct metrics m;
    struct metrics_view v;
    struct evbuffer *b = evbuffer_new();
    char *text;
    size_t n;

    metrics_init(&m);
    ck_assert_int_eq(route_find("/v1/classify")->ep, EP_CLASSIFY);
    ck_assert_ptr_null(route_find("/v1/classify/"));
    ck_assert_int_eq(route_find("/healthz")->open, 1);
    ck_assert_int_eq(route_find("/v1/check/chat/completions")->post, 1);
    ck_assert_int_eq(route_find("/v1/check/chat/completions/v1/chat/completions")->ep,
                     EP_CHECK_CHAT);
    ck_assert_ptr_null(route_find("/v1/check/chat/completionsX"));
    ck_assert_ptr_null(route_find("/v1/classify/x"));
    ck_assert_str_eq(route_name(EP_READYZ), "/readyz");
    ck_assert_str_eq(route_name(EP_OTHER), "other");
    metrics_model_error(&m, -1);
    metrics_model_error(&m, -99);
    m.keys[metrics_key_slot(&m, "alice")].requests += 2;
    ck_assert_int_eq((int)metrics_key_slot(&m, "bob"), 1);
    ck_assert_int_eq((int)metrics_key_slot(&m, "alice"), 0);
    metrics_request(&m, EP_CLASSIFY, 200, 0.003);
    metrics_request(&m, EP_CLASSIFY, 200, 0.2);
    metrics_request(&m, EP_CLASSIFY, 413, 0.0001);
    metrics_request(&m, EP_OTHER, 404, 0.0);
    m.computed_tokens = 1234;
    memset(&v, 0, sizeof v);
    v.sched.depth = 3;
    v.sched.rounds = 2;
    v.sched.jobs_run = 5;
    v.sched.round_hist[0] = 1;
    v.cache.hits = 7;
    v.model_name = "my \"model\"";
    v.model_arch = "gemma2";
    v.model_format = "gguf";
    v.precision = "bf16";
    v.kernel = "avx2-bf16";
    ck_assert_int_eq(metrics_render(&m, &v, b), 0);
    n = evbuffer_get_length(b);
    text = malloc(n + 1);
    evbuffer_remove(b, text, n);
    text[n] = '\0';
    ck_assert_ptr_nonnull(strstr(text, "shieldd_requests_total{endpoint=\"/v1/classify\","
                                       "status=\"200\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "shieldd_requests_total{endpoint=\"/v1/classify\","
                                       "status=\"413\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "shieldd_request_duration_seconds_bucket{endpoint="
                                       "\"/v1/classify\",le=\"0.005\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "shieldd_request_duration_seconds_bucket{endpoint="
                                       "\"/v1/classify\",le=\"+Inf\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "shieldd_computed_tokens_total 1234\n"));
    ck_assert_ptr_nonnull(strstr(text, "shieldd_queue_depth 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "shieldd_batch_size_count 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "shieldd_batch_size_sum 5\n"));
    ck_assert_ptr_nonnull(strstr(text, "shieldd_cache_hits_total 7\n"));
    ck_assert_ptr_nonnull(strstr(text, "shieldd_model_info{name=\"my \\\"model\\\"\","
                                       "arch=\"gemma2\",format=\"gguf\",precision=\"bf16\","
                                       "kernel=\"avx2-bf16\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "shieldd_model_errors_total{reason=\"out_of_memory\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "shieldd_model_errors_total{reason=\"other\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "shieldd_key_requests_total{key=\"alice\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "shieldd_key_requests_total{key=\"bob\"} 0\n"));
    /* No series for endpoints never called. */
    ck_assert_ptr_null(strstr(text, "endpoint=\"/readyz\""));
    free(text);
    evbuffer_free(b);
}
END_TEST

Suite *daemon_json_suite(void)
{
    Suite *s = suite_create("daemon_json");
    TCase *tc = tcase_create("daemon_json");

    tcase_add_test(tc, result_json);
    tcase_add_test(tc, error_json);
    tcase_add_test(tc, metrics_text);
    suite_add_tcase(s, tc);
    return s;
}
