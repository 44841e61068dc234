#ifndef SG_DAEMON_SHIELDD_H
#define SG_DAEMON_SHIELDD_H
/*
 * shieldd.h: the daemon's one state object. main.c owns the single instance and passes it to
 * the modules (libevent user_data); nothing else in daemon/ is process state.
 */

#include <stddef.h>

#include "cache.h"
#include "config.h"
#include "http.h"
#include "listen.h"
#include "metrics.h"
#include "scheduler.h"
#include "sg_engine.h"
#include "sg_moderate.h"
#include "sg_policy.h"

/* A loaded policy set with a reference count (loop thread only): requests hold the set they
 * were validated against, so a reload never frees a set in use. `gen` changes with each load
 * and is part of the cache key (thresholds and prompts may have changed). */
struct pset {
    sg_policy_set *set;
    unsigned refs;
    unsigned long gen;
};

struct shieldd {
    struct shieldd_config cfg;
    struct event_base *base;
    struct http_server *http;
    struct sched *sched;
    struct cache *cache;               /* NULL: caching off */
    struct keyring *keys;              /* NULL: no api_keys, no authentication */
    unsigned *allow_uids, *allow_gids; /* Unix socket peers allowed (none: everyone) */
    size_t n_allow_uids, n_allow_gids;
    struct metrics metrics;
    struct pset *pset; /* the current set */
    unsigned long next_gen;
    sg_model *model;
    const sg_model_info *info;
    sg_moderator *mod; /* used by the worker thread only */
    sg_prefix_cache *prefix; /* the moderator's prefix cache; NULL: off */
    struct listener listeners[SHIELDD_MAX_LISTEN];
    size_t n_listeners;
    int ready;                  /* model loaded, serving */
    int draining;               /* SIGTERM received */
    double started;             /* unix time */
    unsigned long long next_id; /* for moderation ids */
    struct event *ev_hup, *ev_term, *ev_int, *ev_drain;
};

/* Take / drop a reference to a policy set; the last drop frees it. */
struct pset *pset_ref(struct pset *p);
void pset_unref(struct pset *p);

#endif /* SG_DAEMON_SHIELDD_H */
