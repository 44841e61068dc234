/*
 * metrics.c: counters and the Prometheus text format. Label values we print come from fixed
 * tables, the model's info and policy names, escaped per the exposition format.
 */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

static const double lat_le[METRICS_LAT_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

/* The reason labels of model failures, by -sg_err (0: a code this table does not know; 8 is
 * SG_ECOMPUTE, a compute kernel failing at run time). */
static const char *const err_reasons[METRICS_ERR_REASONS] = {
    "other",       "out_of_memory", "io",    "format", "shape",
    "unsupported", "invalid",       "range", "compute"};

void metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof *m);
}

void metrics_model_error(struct metrics *m, int err)
{
    int i = -err;

    if (i <= 0 || i >= METRICS_ERR_REASONS)
        i = 0;
    m->model_errors[i]++;
}

size_t metrics_key_slot(struct metrics *m, const char *name)
{
    for (size_t i = 0; i < m->n_keys; i++)
        if (strcmp(m->keys[i].name, name) == 0)
            return i;
    if (m->n_keys == METRICS_MAX_KEYS)
        return METRICS_MAX_KEYS - 1;
    snprintf(m->keys[m->n_keys].name, METRICS_KEY_NAME, "%s", name);
    return m->n_keys++;
}

void metrics_request(struct metrics *m, enum api_endpoint ep, int status, double seconds)
{
    if (ep < 0 || ep >= EP_COUNT)
        ep = EP_OTHER;
    if (status >= 100 && status <= 599)
        m->requests[ep][status - 100]++;
    if (seconds < 0)
        seconds = 0;
    for (int i = 0; i < METRICS_LAT_BUCKETS; i++)
        if (seconds <= lat_le[i])
            m->lat_hist[ep][i]++;
    m->lat_sum[ep] += seconds;
    m->lat_count[ep]++;
}

/* Append `s` as a label value: backslash, quote and newline escaped. */
static void label(struct evbuffer *out, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\')
            evbuffer_add(out, "\\\\", 2);
        else if (*s == '"')
            evbuffer_add(out, "\\\"", 2);
        else if (*s == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, s, 1);
    }
}

static void counter(struct evbuffer *out, const char *name, const char *help, uint64_t v)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                        (unsigned long long)v);
}

static void gauge(struct evbuffer *out, const char *name, const char *help, double v)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name,
                        v);
}

/* The per-key series (label = the key's name from the api_keys file, never the key). */
static void render_keys(const struct metrics *m, struct evbuffer *out)
{
    static const char *const what[3][2] = {
        {"shieldd_key_requests_total", "Requests by API key name."},
        {"shieldd_key_prompt_tokens_total", "Prompt tokens by API key name."},
        {"shieldd_key_computed_tokens_total", "Tokens run through the model by API key name."}};

    if (m->n_keys == 0)
        return;
    for (int w = 0; w < 3; w++) {
        evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n", what[w][0], what[w][1],
                            what[w][0]);
        for (size_t i = 0; i < m->n_keys; i++) {
            const struct metrics_key *k = &m->keys[i];
            uint64_t v = w == 0 ? k->requests : w == 1 ? k->prompt_tokens : k->computed_tokens;

            evbuffer_add_printf(out, "%s{key=\"", what[w][0]);
            label(out, k->name);
            evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)v);
        }
    }
}

int metrics_render(const struct metrics *m, const struct metrics_view *v, struct evbuffer *out)
{
    size_t before = evbuffer_get_length(out);
    unsigned lim;

    evbuffer_add_printf(out, "# HELP shieldd_requests_total HTTP requests by endpoint and "
                             "status.\n# TYPE shieldd_requests_total counter\n");
    for (int e = 0; e < EP_COUNT; e++)
        for (int s = 0; s < 500; s++)
            if (m->requests[e][s] > 0)
                evbuffer_add_printf(out,
                                    "shieldd_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n",
                                    route_name((enum api_endpoint)e), s + 100,
                                    (unsigned long long)m->requests[e][s]);

    evbuffer_add_printf(out, "# HELP shieldd_request_duration_seconds Time from a request's "
                             "arrival to its reply.\n"
                             "# TYPE shieldd_request_duration_seconds histogram\n");
    for (int e = 0; e < EP_COUNT; e++) {
        if (m->lat_count[e] == 0)
            continue;
        for (int i = 0; i < METRICS_LAT_BUCKETS; i++)
            evbuffer_add_printf(out,
                                "shieldd_request_duration_seconds_bucket{endpoint=\"%s\","
                                "le=\"%g\"} %llu\n",
                                route_name((enum api_endpoint)e), lat_le[i],
                                (unsigned long long)m->lat_hist[e][i]);
        evbuffer_add_printf(out,
                            "shieldd_request_duration_seconds_bucket{endpoint=\"%s\",le=\"+Inf\"}"
                            " %llu\n",
                            route_name((enum api_endpoint)e), (unsigned long long)m->lat_count[e]);
        evbuffer_add_printf(out, "shieldd_request_duration_seconds_sum{endpoint=\"%s\"} %.9g\n",
                            route_name((enum api_endpoint)e), m->lat_sum[e]);
        evbuffer_add_printf(out, "shieldd_request_duration_seconds_count{endpoint=\"%s\"} %llu\n",
                            route_name((enum api_endpoint)e), (unsigned long long)m->lat_count[e]);
    }

    counter(out, "shieldd_inputs_total", "Inputs classified by the model.", m->inputs);
    counter(out, "shieldd_prompt_tokens_total", "Tokens of the rendered prompts.",
            m->prompt_tokens);
    counter(out, "shieldd_computed_tokens_total",
            "Tokens run through the model (shared prefixes counted once).", m->computed_tokens);
    gauge(out, "shieldd_queue_depth", "Requests waiting for the worker.", (double)v->sched.depth);
    gauge(out, "shieldd_running_requests", "Requests in the worker round being run.",
          (double)v->sched.running);
    counter(out, "shieldd_queue_full_total", "Requests refused with 503 (queue full).",
            m->queue_full);
    counter(out, "shieldd_timeouts_total", "Requests answered 504 (deadline).", m->timeouts);
    counter(out, "shieldd_cancelled_total", "Requests whose client left before the reply.",
            m->cancelled);
    counter(out, "shieldd_unauthorized_total", "Requests refused with 401 (no or a wrong API key).",
            m->unauthorized);
    counter(out, "shieldd_forbidden_total",
            "Requests refused with 403 (a local peer outside allow_uids / allow_gids).",
            m->forbidden);
    evbuffer_add_printf(out, "# HELP shieldd_model_errors_total Requests answered 500 because "
                             "the model failed at run time, by reason.\n"
                             "# TYPE shieldd_model_errors_total counter\n");
    for (int r = 0; r < METRICS_ERR_REASONS; r++)
        evbuffer_add_printf(out, "shieldd_model_errors_total{reason=\"%s\"} %llu\n", err_reasons[r],
                            (unsigned long long)m->model_errors[r]);
    render_keys(m, out);
    counter(out, "shieldd_expired_in_queue_total", "Requests whose deadline passed in the queue.",
            v->sched.expired);

    evbuffer_add_printf(out, "# HELP shieldd_batch_size Requests per worker round (run one after another).\n"
                             "# TYPE shieldd_batch_size histogram\n");
    lim = 1;
    for (int b = 0; b < SCHED_ROUND_BUCKETS - 1; b++, lim *= 2)
        evbuffer_add_printf(out, "shieldd_batch_size_bucket{le=\"%u\"} %llu\n", lim,
                            (unsigned long long)v->sched.round_hist[b]);
    evbuffer_add_printf(out, "shieldd_batch_size_bucket{le=\"+Inf\"} %llu\n",
                        (unsigned long long)v->sched.rounds);
    evbuffer_add_printf(out, "shieldd_batch_size_sum %llu\nshieldd_batch_size_count %llu\n",
                        (unsigned long long)v->sched.jobs_run,
                        (unsigned long long)v->sched.rounds);

    gauge(out, "shieldd_cache_enabled", "1 if the result cache is on.", v->cache_enabled);
    counter(out, "shieldd_cache_hits_total", "Result cache hits.", v->cache.hits);
    counter(out, "shieldd_cache_misses_total", "Result cache misses.", v->cache.misses);
    counter(out, "shieldd_cache_evictions_total", "Result cache evictions (size).",
            v->cache.evictions);
    gauge(out, "shieldd_cache_entries", "Entries in the result cache.", (double)v->cache.entries);
    gauge(out, "shieldd_cache_bytes", "Bytes in the result cache.", (double)v->cache.bytes);

    gauge(out, "shieldd_prefix_cache_enabled", "1 if the engine's prefix cache is on.",
          v->prefix_enabled);
    gauge(out, "shieldd_prefix_cache_bytes",
          "Bytes held by the prefix cache (blocks in use x block size).", (double)v->prefix.bytes);
    gauge(out, "shieldd_prefix_cache_capacity_bytes",
          "Bytes of all the prefix cache's blocks (<= prefix_cache_bytes).",
          (double)v->prefix.capacity_bytes);
    gauge(out, "shieldd_prefix_cache_block_bytes",
          "Bytes of one prefix cache block (16 tokens' rows, ids and bookkeeping).",
          (double)v->prefix.block_bytes);
    gauge(out, "shieldd_prefix_cache_tokens", "Tokens whose key/value rows the prefix cache "
          "holds.", (double)v->prefix.tokens);
    counter(out, "shieldd_prefix_cache_hits_total",
            "Prefix lookups the cache extended beyond the worker's own trunk.", v->prefix.hits);
    counter(out, "shieldd_prefix_cache_misses_total", "Prefix lookups it did not.",
            v->prefix.misses);
    counter(out, "shieldd_prefix_cache_evictions_total", "Prefix cache blocks evicted (LRU).",
            v->prefix.evictions);
    counter(out, "shieldd_prefix_cache_cached_tokens_total",
            "Tokens loaded from the prefix cache instead of computed.", v->prefix.cached_tokens);

    gauge(out, "shieldd_connections", "Open client connections.", (double)v->connections);
    counter(out, "shieldd_connections_total", "Client connections accepted.", m->connections_total);
    counter(out, "shieldd_connections_rejected_total",
            "Connections refused over the connection limit.", m->connections_rejected);
    counter(out, "shieldd_connections_shed_total",
            "Idle or silent connections closed at the connection limit to admit another.",
            m->connections_shed);
    counter(out, "shieldd_policy_reloads_total", "Successful policy reloads (SIGHUP).",
            m->reloads_ok);
    counter(out, "shieldd_policy_reload_failures_total",
            "Failed policy reloads (the old set kept).", m->reloads_failed);
    gauge(out, "shieldd_policies", "Policies loaded.", (double)v->n_policies);
    gauge(out, "shieldd_ready", "1 when the model is loaded and requests are served.", v->ready);
    gauge(out, "shieldd_start_time_seconds", "Unix time the daemon started.", v->started);

    evbuffer_add_printf(out, "# HELP shieldd_model_info The loaded model.\n"
                             "# TYPE shieldd_model_info gauge\nshieldd_model_info{name=\"");
    label(out, v->model_name);
    evbuffer_add_printf(out, "\",arch=\"");
    label(out, v->model_arch);
    evbuffer_add_printf(out, "\",format=\"");
    label(out, v->model_format);
    evbuffer_add_printf(out, "\",precision=\"");
    label(out, v->precision);
    evbuffer_add_printf(out, "\",kernel=\"");
    label(out, v->kernel);
    evbuffer_add_printf(out, "\"} 1\n");
    return evbuffer_get_length(out) > before ? 0 : -1;
}
