/*
 * main.c: shieldd. Owns the one struct shieldd: reads the configuration (file, then flags),
 * loads the policies and the model, opens the listeners (or takes systemd's), starts the
 * worker, and runs the libevent loop. Signals are libevent events, so nothing runs in signal
 * context: SIGHUP reloads the policies (a broken set keeps the old one), SIGTERM/SIGINT stop
 * accepting, let in-flight requests finish within drain_timeout, and exit 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#ifdef SG_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "api.h"
#include "auth.h"
#include "config.h"
#include "crash.h"
#include "log.h"
#include "shieldd.h"

#define MAX_ROUND_JOBS 256

/* sd_notify when running under systemd (NOTIFY_SOCKET); a no-op otherwise. */
#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void
notify(const char *fmt, ...)
{
#ifdef SG_HAVE_SYSTEMD
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sd_notify(0, buf);
#else
    (void)fmt;
#endif
}

static int load_policies(struct shieldd *sd, struct pset **out, char *err, size_t errlen)
{
    struct pset *p = calloc(1, sizeof *p);
    int rc;

    *out = NULL;
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rc = sg_policy_set_load(&p->set, sd->cfg.policies, err, errlen);
    if (rc < 0) {
        free(p);
        return -1;
    }
    if (sg_policy_count(p->set) == 0) {
        snprintf(err, errlen, "%s: no policies", sd->cfg.policies);
        sg_policy_set_free(p->set);
        free(p);
        return -1;
    }
    p->refs = 1;
    p->gen = ++sd->next_gen;
    *out = p;
    return 0;
}

/*
 * The packed-weight cache folder of pack_cache: the value itself, "auto": the first folder of
 * $CACHE_DIRECTORY (systemd's CacheDirectory=shieldd; elsewhere no cache, so that test and ad
 * hoc runs leave nothing behind), or NULL for "off".
 */
static const char *pack_cache_dir(const struct shieldd_config *cfg, char *buf, size_t cap)
{
    const char *v = cfg->pack_cache;

    if (strcmp(v, "off") == 0)
        return NULL;
    if (strcmp(v, "auto") == 0) {
        const char *env = getenv("CACHE_DIRECTORY");
        size_t n;

        if (env == NULL || env[0] == '\0')
            return NULL;
        n = strcspn(env, ":"); /* several CacheDirectory= folders are ':'-separated */
        if (n >= cap)
            return NULL;
        memcpy(buf, env, n);
        buf[n] = '\0';
        return buf;
    }
    return v;
}

static int load_model(struct shieldd *sd, char *err, size_t errlen)
{
    sg_model_opts mo = sg_model_opts_default();
    sg_moderate_opts o = sg_moderate_opts_default();
    char pack_dir[4096];

    mo.n_threads = sd->cfg.threads;
    if (sg_precision_parse(sd->cfg.precision, &mo.precision) != SG_OK)
        mo.precision = SG_PREC_F32; /* not reached: config.c accepts only these names */
    mo.load_tokenizer = 1;
    mo.pack_cache = pack_cache_dir(&sd->cfg, pack_dir, sizeof pack_dir);
    if (mo.pack_cache != NULL)
        sg_log(SG_LOG_INFO, "packed-weight cache: %s", mo.pack_cache);
    if (sg_model_open(&sd->model, sd->cfg.model, &mo, err, errlen) < 0)
        return -1;
    sd->info = sg_model_get_info(sd->model);
    if (sg_model_tok(sd->model) == NULL) {
        snprintf(err, errlen, "%s: no tokenizer found beside the model", sd->cfg.model);
        return -1;
    }
    o.max_tokens = sd->cfg.max_tokens;
    o.truncate = sd->cfg.truncate;
    if (sd->cfg.prefix_cache_bytes != 0) {
        size_t bytes = sd->cfg.prefix_cache_bytes < 0 ? sg_prefix_cache_default_bytes(sd->model)
                                                      : (size_t)sd->cfg.prefix_cache_bytes;
        char msg[512];

        if (sg_prefix_cache_new(&sd->prefix, sd->model, -1, bytes, msg, sizeof msg) < 0) {
            snprintf(err, errlen, "prefix_cache_bytes: %s", msg);
            return -1;
        }
        o.prefix_cache = sd->prefix;
        sg_log(SG_LOG_INFO, "prefix cache: %zu bytes", bytes);
    }
    if (sg_moderator_new(&sd->mod, sd->model, &o, err, errlen) < 0)
        return -1;
    return 0;
}

/* SIGHUP, the API keys: a broken file keeps the old keys. */
static void reload_keys(struct shieldd *sd)
{
    struct keyring *k;
    char err[1024];

    if (sd->keys == NULL)
        return;
    if (keyring_load(&k, sd->cfg.api_keys, err, sizeof err) < 0) {
        log_warnx("SIGHUP: api_keys reload failed, keeping the %zu loaded keys: %s",
                  keyring_count(sd->keys), err);
        return;
    }
    keyring_free(sd->keys);
    sd->keys = k;
    log_info("SIGHUP: reloaded %zu API keys from %s", keyring_count(k), sd->cfg.api_keys);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct shieldd *sd = arg;
    struct pset *p;
    char err[1024];

    (void)sig;
    (void)what;
    reload_keys(sd);
    notify("RELOADING=1\nSTATUS=reloading policies from %s", sd->cfg.policies);
    if (load_policies(sd, &p, err, sizeof err) < 0) {
        sd->metrics.reloads_failed++;
        log_warnx("SIGHUP: policy reload failed, keeping the %zu loaded policies: %s",
                  sg_policy_count(sd->pset->set), err);
        notify("READY=1\nSTATUS=serving; the last policy reload failed: %.200s", err);
        return;
    }
    /* Cached results borrow the set's policies: clear them before the set can go. */
    if (sd->cache)
        cache_clear(sd->cache);
    pset_unref(sd->pset);
    sd->pset = p;
    sd->metrics.reloads_ok++;
    log_info("SIGHUP: reloaded %zu policies from %s", sg_policy_count(p->set), sd->cfg.policies);
    notify("READY=1\nSTATUS=serving %zu policies", sg_policy_count(p->set));
}

static void on_drained(void *arg)
{
    struct shieldd *sd = arg;

    log_info("drained: every connection is closed");
    event_base_loopexit(sd->base, NULL);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct shieldd *sd = arg;

    (void)fd;
    (void)what;
    log_warnx("drain_timeout (%gs) passed with %zu connections open; exiting",
              sd->cfg.drain_timeout, http_server_connections(sd->http));
    event_base_loopexit(sd->base, NULL);
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
    struct shieldd *sd = arg;
    struct timeval tv;

    (void)what;
    if (sd->draining) {
        log_warnx("signal %d again: exiting now", (int)sig);
        event_base_loopbreak(sd->base);
        return;
    }
    sd->draining = 1;
    log_info("signal %d: no longer accepting; finishing in-flight requests (at most %gs)", (int)sig,
             sd->cfg.drain_timeout);
    notify("STOPPING=1\nSTATUS=draining");
    tv.tv_sec = (time_t)sd->cfg.drain_timeout;
    tv.tv_usec = (suseconds_t)((sd->cfg.drain_timeout - (double)tv.tv_sec) * 1e6);
    evtimer_add(sd->ev_drain, &tv);
    http_server_drain(sd->http, on_drained, sd);
}

static int open_listeners(struct shieldd *sd, char *err, size_t errlen)
{
    int n = listen_systemd(sd->listeners, SHIELDD_MAX_LISTEN, err, errlen);

    if (n < 0)
        return -1;
    if (n > 0) {
        sd->n_listeners = (size_t)n;
        log_info("socket activation: %d sockets from systemd (the 'listen' setting is ignored)", n);
        for (size_t i = 0; i < sd->n_listeners && sd->cfg.socket_perms_set; i++)
            if (sd->listeners[i].unix_path[0] != '\0' &&
                listen_set_perms(sd->listeners[i].unix_path, sd->cfg.socket_mode,
                                 sd->cfg.socket_group, err, errlen) < 0)
                return -1;
    } else {
        for (size_t i = 0; i < sd->cfg.n_listen; i++) {
            if (listen_open(&sd->listeners[i], sd->cfg.listen[i], sd->cfg.socket_mode,
                            sd->cfg.socket_group, err, errlen) < 0)
                return -1;
            sd->n_listeners = i + 1;
        }
    }
    for (size_t i = 0; i < sd->n_listeners; i++)
        if (sd->keys == NULL && !sd->cfg.allow_unauthenticated_tcp &&
            auth_socket_is_public(sd->listeners[i].fd)) {
            snprintf(err, errlen,
                     "%s: refusing to serve a non-loopback TCP listener without api_keys "
                     "(anyone on the network could use it); set api_keys, listen on "
                     "127.0.0.1 or a Unix socket, or set allow_unauthenticated_tcp: true",
                     sd->listeners[i].name);
            return -1;
        }
    for (size_t i = 0; i < sd->n_listeners; i++) {
        if (http_server_listen_fd(sd->http, sd->listeners[i].fd, sd->listeners[i].kind) < 0) {
            snprintf(err, errlen, "%s: %s", sd->listeners[i].name, strerror(errno));
            return -1;
        }
        sd->listeners[i].fd = -1; /* the server owns it now */
        log_info("listening on %s", sd->listeners[i].name);
    }
    return 0;
}

static void shutdown_all(struct shieldd *sd)
{
    /* The server first: requests still waiting are aborted (queued jobs withdrawn), then the
     * worker finishes its round and is joined. */
    http_server_free(sd->http);
    sd->http = NULL;
    sched_free(sd->sched);
    sd->sched = NULL;
    for (size_t i = 0; i < sd->n_listeners; i++) {
        if (sd->listeners[i].fd >= 0)
            close(sd->listeners[i].fd);
        listen_cleanup(&sd->listeners[i]);
    }
    sg_moderator_free(sd->mod);
    sg_prefix_cache_free(sd->prefix);
    sg_model_close(sd->model);
    cache_free(sd->cache);
    pset_unref(sd->pset);
    keyring_free(sd->keys);
    free(sd->allow_uids);
    free(sd->allow_gids);
    if (sd->ev_hup)
        event_free(sd->ev_hup);
    if (sd->ev_term)
        event_free(sd->ev_term);
    if (sd->ev_int)
        event_free(sd->ev_int);
    if (sd->ev_drain)
        event_free(sd->ev_drain);
    if (sd->base)
        event_base_free(sd->base);
    config_free(&sd->cfg);
}

/* The API keys and the peer allow lists. Returns 0 or -1 with a message. */
static int load_access(struct shieldd *sd, char *err, size_t errlen)
{
    if (sd->cfg.api_keys[0] != '\0' &&
        keyring_load(&sd->keys, sd->cfg.api_keys, err, errlen) < 0)
        return -1;
    if (auth_parse_ids(sd->cfg.allow_uids, 0, &sd->allow_uids, &sd->n_allow_uids, err, errlen) <
            0 ||
        auth_parse_ids(sd->cfg.allow_gids, 1, &sd->allow_gids, &sd->n_allow_gids, err, errlen) <
            0)
        return -1;
    return 0;
}

/* -n: load everything once, print what is wrong or "configuration OK". */
static int check_config(struct shieldd *sd)
{
    char err[1024];
    int bad = 0;

    if (load_policies(sd, &sd->pset, err, sizeof err) < 0) {
        fprintf(stderr, "shieldd: policies: %s\n", err);
        bad = 1;
    }
    if (load_access(sd, err, sizeof err) < 0) {
        fprintf(stderr, "shieldd: %s\n", err);
        bad = 1;
    }
    if (load_model(sd, err, sizeof err) < 0) {
        fprintf(stderr, "shieldd: model: %s\n", err);
        bad = 1;
    }
    keyring_free(sd->keys);
    free(sd->allow_uids);
    free(sd->allow_gids);
    sg_moderator_free(sd->mod);
    sg_prefix_cache_free(sd->prefix);
    sg_model_close(sd->model);
    pset_unref(sd->pset);
    config_free(&sd->cfg);
    if (bad)
        return 1;
    printf("configuration OK\n");
    return 0;
}

int main(int argc, char **argv)
{
    struct shieldd sd;
    struct shieldd_cmdline cl;
    char err[1024];

    memset(&sd, 0, sizeof sd);
    shieldd_defaults(&sd.cfg);
    if (config_parse_args(&cl, argc, argv, err, sizeof err) < 0) {
        fprintf(stderr, "shieldd: %s\n", err);
        config_free(&sd.cfg);
        return 1;
    }
    if (cl.help) {
        config_usage(stdout);
        config_free(&sd.cfg);
        return 0;
    }
    if ((cl.config_file != NULL &&
         config_load_file(&sd.cfg, cl.config_file, err, sizeof err) < 0) ||
        config_apply_args(&sd.cfg, &cl, err, sizeof err) < 0) {
        fprintf(stderr, "shieldd: %s\n", err);
        config_free(&sd.cfg);
        return 1;
    }
    if (sd.cfg.model[0] == '\0') {
        fprintf(stderr, "shieldd: no model: set 'model' in the configuration or pass -m PATH\n");
        config_free(&sd.cfg);
        return 1;
    }
    log_init(sd.cfg.verbose, cl.foreground ? 0 : -1);
    if (cl.check_only)
        return check_config(&sd);

    signal(SIGPIPE, SIG_IGN);
    crash_install(!cl.foreground && getenv("JOURNAL_STREAM") != NULL);
    if (evthread_use_pthreads() < 0)
        fatalx("libevent: no pthreads support");
    sd.base = event_base_new();
    if (sd.base == NULL)
        fatalx("libevent: event_base_new failed");
    sd.started = (double)time(NULL);
    metrics_init(&sd.metrics);
    sd.ev_hup = evsignal_new(sd.base, SIGHUP, on_hup, &sd);
    sd.ev_term = evsignal_new(sd.base, SIGTERM, on_term, &sd);
    sd.ev_int = evsignal_new(sd.base, SIGINT, on_term, &sd);
    sd.ev_drain = evtimer_new(sd.base, on_drain_timeout, &sd);
    if (sd.ev_hup == NULL || sd.ev_term == NULL || sd.ev_int == NULL || sd.ev_drain == NULL ||
        evsignal_add(sd.ev_hup, NULL) < 0 || evsignal_add(sd.ev_term, NULL) < 0 ||
        evsignal_add(sd.ev_int, NULL) < 0)
        fatalx("libevent: cannot set up signal events");

    if (load_access(&sd, err, sizeof err) < 0)
        fatalx("%s", err);
    if (sd.keys != NULL)
        log_info("api_keys: %zu keys from %s", keyring_count(sd.keys), sd.cfg.api_keys);
    notify("STATUS=loading policies from %s", sd.cfg.policies);
    if (load_policies(&sd, &sd.pset, err, sizeof err) < 0)
        fatalx("policies: %s", err);
    notify("STATUS=loading the model %s", sd.cfg.model);
    if (load_model(&sd, err, sizeof err) < 0)
        fatalx("model: %s", err);
    if (sd.cfg.cache && sd.cfg.cache_bytes > 0) {
        sd.cache = cache_new((size_t)sd.cfg.cache_bytes, sd.cfg.cache_ttl);
        if (sd.cache == NULL)
            fatalx("out of memory");
    }
    if (sched_new(&sd.sched, sd.base, (size_t)sd.cfg.queue_depth, MAX_ROUND_JOBS,
                  (size_t)sd.cfg.batch_tokens, api_run_round, &sd) < 0)
        fatal("scheduler: cannot start its worker thread (out of memory or of threads?)");
    {
        struct http_server_opts ho;

        memset(&ho, 0, sizeof ho);
        ho.max_header_bytes = (size_t)sd.cfg.max_header_bytes;
        ho.max_body_bytes = (size_t)sd.cfg.max_body_bytes;
        ho.read_timeout = sd.cfg.read_timeout;
        ho.idle_timeout = sd.cfg.idle_timeout;
        ho.write_timeout = 30;
        ho.max_connections = (size_t)sd.cfg.max_connections;
        ho.retry_after = sd.cfg.retry_after;
        sd.http = http_server_new(sd.base, &ho, api_handle, &sd);
        if (sd.http == NULL)
            fatalx("out of memory");
    }
    if (open_listeners(&sd, err, sizeof err) < 0) {
        log_warnx("%s", err);
        shutdown_all(&sd);
        return 1;
    }
    sd.ready = 1;
    log_info("ready: model %s (%s, %s, %d layers, %s on %s), %zu policies from %s",
             sd.info->name, sd.info->arch, sd.info->format, sd.info->n_layer, sd.cfg.precision,
             sg_model_kernel(sd.model), sg_policy_count(sd.pset->set), sd.cfg.policies);
    notify("READY=1\nSTATUS=serving %zu policies with %s", sg_policy_count(sd.pset->set),
           sd.info->name);
    if (event_base_dispatch(sd.base) < 0)
        log_warnx("event loop failed");
    shutdown_all(&sd);
    log_info("exiting");
    return 0;
}
