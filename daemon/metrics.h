#ifndef SG_DAEMON_METRICS_H
#define SG_DAEMON_METRICS_H
/*
 * metrics.h: counters kept by the event loop and their Prometheus text rendering (GET
 * /metrics). Single-threaded: the loop records; figures owned by other parts (the queue, the
 * cache, connections) are passed in at render time.
 */

#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "route.h"
#include "scheduler.h"
#include "sg_engine.h"

struct evbuffer;

#define METRICS_LAT_BUCKETS 15
#define METRICS_MAX_KEYS 256  /* distinct API key names counted (more share the last) */
#define METRICS_KEY_NAME 64   /* bytes of a key name, NUL included */
#define METRICS_ERR_REASONS 9 /* model failures by sg_err: [0] other, [i] = code -i */

/* What one caller (an API key's name) asked for. */
struct metrics_key {
    char name[METRICS_KEY_NAME];
    uint64_t requests;        /* requests authenticated with the key, every endpoint */
    uint64_t prompt_tokens;   /* tokens of its rendered prompts */
    uint64_t computed_tokens; /* tokens run through the model for it */
};

struct metrics {
    uint64_t requests[EP_COUNT][500];                 /* by endpoint and status 100..599 */
    uint64_t lat_hist[EP_COUNT][METRICS_LAT_BUCKETS]; /* cumulative: <= le[i] */
    double lat_sum[EP_COUNT];
    uint64_t lat_count[EP_COUNT];
    uint64_t inputs;          /* inputs classified by the model */
    uint64_t prompt_tokens;   /* tokens of rendered prompts */
    uint64_t computed_tokens; /* tokens run through the model */
    uint64_t connections_total;
    uint64_t connections_rejected;
    uint64_t connections_shed; /* idle or silent ones closed at the limit to admit another */
    uint64_t reloads_ok, reloads_failed;
    uint64_t cancelled;                         /* requests whose client left before the reply */
    uint64_t timeouts;                          /* 504s */
    uint64_t queue_full;                        /* 503s for a full queue */
    uint64_t model_errors[METRICS_ERR_REASONS]; /* 500s: the engine failed at run time */
    uint64_t unauthorized;                      /* 401s: no or a wrong API key */
    uint64_t forbidden; /* 403s: a local peer outside allow_uids / allow_gids */
    struct metrics_key keys[METRICS_MAX_KEYS];
    size_t n_keys;
};

/* The extra figures of one rendering, owned by other modules. */
struct metrics_view {
    struct sched_stats sched;
    struct cache_stats cache;
    int cache_enabled;
    sg_prefix_cache_stats prefix; /* the engine's prefix cache */
    int prefix_enabled;
    size_t connections; /* open now */
    int ready;
    const char *model_name, *model_arch, *model_format, *precision, *kernel;
    size_t n_policies;
    double started; /* unix time the daemon started */
};

void metrics_init(struct metrics *m);
/* Count a finished request: endpoint, HTTP status, seconds from arrival to reply. */
void metrics_request(struct metrics *m, enum api_endpoint ep, int status, double seconds);
/* Count a model failure (a negative sg_err of sg_moderate) under its reason label. */
void metrics_model_error(struct metrics *m, int err);
/* The counters of the key named `name`, added on first use (the last slot is shared once
 * METRICS_MAX_KEYS names were seen). Its index is stable for the daemon's life. */
size_t metrics_key_slot(struct metrics *m, const char *name);
/* Append the Prometheus text exposition (format 0.0.4) to `out`. Returns 0 or -1 (no memory). */
int metrics_render(const struct metrics *m, const struct metrics_view *v, struct evbuffer *out);

#endif /* SG_DAEMON_METRICS_H */
