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
#include "sched.h"
#include "sg_engine.h"

struct evbuffer;

enum metrics_endpoint {
    EP_CLASSIFY = 0,
    EP_MODERATIONS,
    EP_POLICIES,
    EP_HEALTHZ,
    EP_READYZ,
    EP_METRICS,
    EP_OTHER,
    EP_COUNT
};

#define METRICS_LAT_BUCKETS 15

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
    uint64_t reloads_ok, reloads_failed;
    uint64_t cancelled;  /* requests whose client left before the reply */
    uint64_t timeouts;   /* 504s */
    uint64_t queue_full; /* 503s for a full queue */
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
/* The endpoint label of a request path. */
enum metrics_endpoint metrics_endpoint_of(const char *path);
const char *metrics_endpoint_name(enum metrics_endpoint ep);
/* Count a finished request: endpoint, HTTP status, seconds from arrival to reply. */
void metrics_request(struct metrics *m, enum metrics_endpoint ep, int status, double seconds);
/* Append the Prometheus text exposition (format 0.0.4) to `out`. Returns 0 or -1 (no memory). */
int metrics_render(const struct metrics *m, const struct metrics_view *v, struct evbuffer *out);

#endif /* SG_DAEMON_METRICS_H */
