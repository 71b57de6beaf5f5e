/*
 * remote_jwks per worker: what each provider's JWKS fetch brought, when it expires, the fetch in
 * flight and the streams waiting for it. A config is immutable and shared by every worker, so the
 * mutable part lives here, one cache per (worker, jwt_authn config), registered as worker-local
 * state and retaining the snapshot that holds the config (so the key cannot be freed and reused).
 *
 * Without async_fetch (Envoy's default) the first request that needs a provider's keys starts the
 * fetch and waits; requests arriving meanwhile wait on the same fetch. Keys are good for
 * cache_duration; past it the next request fetches again. A failed fetch fails the requests that
 * waited for it (stale keys are not used, as Envoy).
 *
 * With async_fetch the worker fetches when it takes the snapshot (legate has no main-thread
 * fetch: each worker fetches for itself, as Envoy's per-thread JWKS caches do), refreshes after
 * cache_duration and, after a failure, after failed_refetch_duration. Keys never expire: stale ones
 * serve until a fetch replaces them. A request waits only while no keys have ever arrived and the
 * first fetch is still under way; fast_listener is accepted but listeners never wait for a fetch.
 *
 * retry_policy retries a fetch that failed to connect, was reset or got a 5xx, num_retries times,
 * base_interval doubling up to max_interval between attempts (Envoy jitters the wait; legate does
 * not, since each distinct duration costs the worker a timeout bucket). Each attempt has the full
 * http_uri.timeout.
 *
 * Not for: verifying tokens (filter.c), parsing keys (jwks.c). Worker thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "async_client.h"
#include "filters/jwt_authn/jwt_authn.h"
#include "log.h"
#include "snapshot.h"
#include "worker.h"
#include "xalloc.h"

/* A JWKS document larger than this is a failed fetch, not a reason to buffer without bound. */
#define MAX_JWKS_BYTES (1024 * 1024)

typedef struct st_provider_cache_t {
    lg_jwks_cache_t *owner;
    const lg_jwt_provider_t *provider; /* NULL for a provider with local keys */
    lg_jwks_t *keys;                   /* the last good fetch; NULL before one */
    uint64_t expires_at;               /* loop time (ms) */
    int in_fetch;                      /* from the first attempt to the result, back-off included */
    int fetched_once;                  /* a fetch has ended, well or not */
    int failing;                       /* the last fetch failed: the next failures log quietly */
    uint32_t attempt;                  /* retries spent by the fetch in flight */
    lg_async_request_t *call;
    h2o_timeout_entry_t timer; /* retry back-off, or the async refresh */
    h2o_linklist_t waiters;    /* lg_jwks_waiter_t.link */
} provider_cache_t;

struct st_lg_jwks_cache_t {
    lg_worker_local_t super;
    lg_worker_t *worker;
    const lg_jwt_authn_config_t *cfg;
    provider_cache_t *providers; /* parallel to cfg->providers */
    int stale;                   /* the worker moved on to another snapshot: freed once idle */
};

static void fetch_send(provider_cache_t *pc);

static int cache_idle(const lg_jwks_cache_t *c)
{
    for (size_t i = 0; i < c->cfg->n_providers; ++i)
        if (c->providers[i].in_fetch || !h2o_linklist_is_empty(&c->providers[i].waiters))
            return 0;
    return 1;
}

/* Ends everything in flight; waiters still queued (their streams end with the worker) are dropped. */
static void cache_free(lg_jwks_cache_t *c)
{
    if (h2o_linklist_is_linked(&c->super._link))
        h2o_linklist_unlink(&c->super._link);
    for (size_t i = 0; i < c->cfg->n_providers; ++i) {
        provider_cache_t *pc = &c->providers[i];
        if (pc->call != NULL)
            lg_async_cancel(pc->call);
        if (h2o_timeout_is_linked(&pc->timer))
            h2o_timeout_unlink(&pc->timer);
        while (!h2o_linklist_is_empty(&pc->waiters))
            h2o_linklist_unlink(pc->waiters.next);
        if (pc->keys != NULL) {
            lg_jwks_dispose(pc->keys);
            free(pc->keys);
        }
    }
    free(c->providers);
    lg_snapshot_release(c->super.snapshot);
    free(c);
}

static void cache_on_snapshot(lg_worker_local_t *l, const lg_snapshot_t *current)
{
    lg_jwks_cache_t *c = H2O_STRUCT_FROM_MEMBER(lg_jwks_cache_t, super, l);
    if (l->snapshot == current)
        return;
    c->stale = 1;
    /* No more refreshes for a config the worker no longer serves new connections with. */
    for (size_t i = 0; i < c->cfg->n_providers; ++i)
        if (!c->providers[i].in_fetch && h2o_timeout_is_linked(&c->providers[i].timer))
            h2o_timeout_unlink(&c->providers[i].timer);
    if (cache_idle(c))
        cache_free(c);
}

static void cache_dispose(lg_worker_local_t *l)
{
    cache_free(H2O_STRUCT_FROM_MEMBER(lg_jwks_cache_t, super, l));
}

static void arm_timer(provider_cache_t *pc, uint64_t ms)
{
    lg_worker_t *w = pc->owner->worker;
    if (h2o_timeout_is_linked(&pc->timer))
        h2o_timeout_unlink(&pc->timer);
    h2o_timeout_link(w->loop, lg_worker_timeout(w, ms), &pc->timer);
}

static void fetch_start(provider_cache_t *pc)
{
    pc->in_fetch = 1;
    pc->attempt = 0;
    if (h2o_timeout_is_linked(&pc->timer))
        h2o_timeout_unlink(&pc->timer);
    fetch_send(pc);
}

static void wake_waiters(provider_cache_t *pc)
{
    h2o_linklist_t woken;
    h2o_linklist_init_anchor(&woken);
    h2o_linklist_insert_list(&woken, &pc->waiters);
    while (!h2o_linklist_is_empty(&woken)) {
        lg_jwks_waiter_t *wt = H2O_STRUCT_FROM_MEMBER(lg_jwks_waiter_t, link, woken.next);
        h2o_linklist_unlink(&wt->link);
        wt->cb(wt);
    }
}

/* The fetch ended for good: `keys` (owned, may be NULL) replaces the cached ones when set. */
static void fetch_done(provider_cache_t *pc, lg_jwks_t *keys, const char *why)
{
    lg_jwks_cache_t *c = pc->owner;
    const lg_jwt_remote_t *r = &pc->provider->remote;
    lg_worker_t *w = c->worker;
    pc->in_fetch = 0;
    pc->fetched_once = 1;
    if (keys != NULL) {
        if (pc->keys != NULL) {
            lg_jwks_dispose(pc->keys);
            free(pc->keys);
        }
        pc->keys = keys;
        pc->expires_at = h2o_now(w->loop) + r->cache_duration_ms;
        lg_stats_inc(w->stats, c->cfg->stats.jwks_fetch_success);
        if (pc->failing)
            lg_info(jwt, "jwt_authn provider %s: fetching JWKS from %s works again", pc->provider->name, r->uri);
        pc->failing = 0;
    } else {
        /* Logged once per run of failures (async refetches repeat every failed_refetch_duration);
         * jwks_fetch_failed counts every one. */
        lg_stats_inc(w->stats, c->cfg->stats.jwks_fetch_failed);
        lg_log(jwt, pc->failing ? LG_LOG_DEBUG : LG_LOG_WARN,
               "jwt_authn provider %s: fetching JWKS from %s (cluster %s) failed: %s%s", pc->provider->name, r->uri,
               r->cluster, why, pc->keys != NULL && r->async_fetch ? "; keeping the previous keys" : "");
        pc->failing = 1;
    }
    if (r->async_fetch && !c->stale)
        arm_timer(pc, keys != NULL ? r->cache_duration_ms : r->failed_refetch_ms);
    wake_waiters(pc);
    if (c->stale && cache_idle(c))
        cache_free(c);
}

/* Envoy's retry_on for JWKS fetches: 5xx, gateway-error, connect-failure, reset. */
static int retriable(const lg_async_response_t *resp, const char *error)
{
    if (resp != NULL)
        return resp->head->status >= 500;
    return strcmp(error, "connection_failure") == 0 || strcmp(error, "reset") == 0 ||
           strcmp(error, "no_healthy_upstream") == 0;
}

static void on_response(void *ctx, const lg_async_response_t *resp, const char *error)
{
    provider_cache_t *pc = ctx;
    const lg_jwt_remote_t *r = &pc->provider->remote;
    char why[160];
    pc->call = NULL;
    if (resp != NULL && resp->head->status == 200) {
        lg_jwks_t *keys = lg_xcalloc(1, sizeof(*keys));
        long bad_key;
        lg_jwt_status_t st = lg_jwks_parse(keys, resp->body, resp->body_len, &bad_key);
        if (st == LG_JWT_OK) {
            fetch_done(pc, keys, NULL);
            return;
        }
        lg_jwks_dispose(keys);
        free(keys);
        snprintf(why, sizeof(why), "%s", lg_jwt_status_text(st));
        fetch_done(pc, NULL, why); /* a bad document is not retried: it would come back the same */
        return;
    }
    if (resp != NULL)
        snprintf(why, sizeof(why), "status %d", resp->head->status);
    else
        snprintf(why, sizeof(why), "%s", error);
    if (pc->attempt < r->num_retries && retriable(resp, error)) {
        uint64_t wait = r->backoff_base_ms;
        for (uint32_t i = 0; i < pc->attempt && wait < r->backoff_max_ms; ++i)
            wait *= 2;
        ++pc->attempt;
        arm_timer(pc, wait < r->backoff_max_ms ? wait : r->backoff_max_ms);
        return;
    }
    fetch_done(pc, NULL, why);
}

static void fetch_send(provider_cache_t *pc)
{
    const lg_jwt_remote_t *r = &pc->provider->remote;
    lg_request_head_t head = {.method = h2o_iovec_init(H2O_STRLIT("GET")),
                              .scheme = r->https ? h2o_iovec_init(H2O_STRLIT("https")) : h2o_iovec_init(H2O_STRLIT("http")),
                              .authority = h2o_iovec_init(r->authority, strlen(r->authority)),
                              .path = h2o_iovec_init(r->path, strlen(r->path)),
                              .version = LG_HTTP_11,
                              .content_length = 0};
    pc->call = lg_async_http_send(pc->owner->worker, r->cluster, &head, NULL, 0, r->timeout_ms, MAX_JWKS_BYTES,
                                  on_response, pc);
}

/* The timer: a retry of the fetch in flight, or the async refresh. */
static void on_timer(h2o_timeout_entry_t *entry)
{
    provider_cache_t *pc = H2O_STRUCT_FROM_MEMBER(provider_cache_t, timer, entry);
    if (pc->in_fetch)
        fetch_send(pc);
    else
        fetch_start(pc);
}

lg_jwks_cache_t *lg_jwks_cache_get(lg_worker_t *w, const lg_jwt_authn_config_t *cfg, lg_snapshot_t *snapshot)
{
    lg_worker_local_t *l = lg_worker_local_find(w, cfg);
    if (l != NULL)
        return H2O_STRUCT_FROM_MEMBER(lg_jwks_cache_t, super, l);
    lg_jwks_cache_t *c = lg_xcalloc(1, sizeof(*c));
    c->super.key = cfg;
    c->super.snapshot = lg_snapshot_retain(snapshot);
    c->super.on_snapshot = cache_on_snapshot;
    c->super.dispose = cache_dispose;
    c->worker = w;
    c->cfg = cfg;
    c->stale = snapshot != w->snapshot;
    c->providers = lg_xcalloc(cfg->n_providers, sizeof(*c->providers));
    for (size_t i = 0; i < cfg->n_providers; ++i) {
        provider_cache_t *pc = &c->providers[i];
        pc->owner = c;
        pc->provider = cfg->providers[i].is_remote ? &cfg->providers[i] : NULL;
        pc->timer.cb = on_timer;
        h2o_linklist_init_anchor(&pc->waiters);
    }
    lg_worker_local_add(w, &c->super);
    return c;
}

void lg_jwks_cache_warm(const void *config, lg_worker_t *w, lg_snapshot_t *snapshot)
{
    const lg_jwt_authn_config_t *cfg = config;
    lg_jwks_cache_t *c = NULL;
    for (size_t i = 0; i < cfg->n_providers; ++i) {
        const lg_jwt_provider_t *p = &cfg->providers[i];
        if (!p->is_remote || !p->remote.async_fetch)
            continue;
        if (c == NULL)
            c = lg_jwks_cache_get(w, cfg, snapshot);
        provider_cache_t *pc = &c->providers[i];
        if (!pc->in_fetch && !pc->fetched_once)
            fetch_start(pc);
    }
}

const lg_jwks_t *lg_jwks_cache_keys(lg_jwks_cache_t *c, const lg_jwt_provider_t *p, lg_jwks_waiter_t *waiter,
                                    int *waiting)
{
    provider_cache_t *pc = &c->providers[p->index];
    *waiting = 0;
    if (pc->keys != NULL && (p->remote.async_fetch || h2o_now(c->worker->loop) < pc->expires_at))
        return pc->keys;
    if (waiter == NULL)
        return NULL;
    if (!pc->in_fetch) {
        /* async_fetch: a failed fetch is retried on its own schedule, not by requests. */
        if (p->remote.async_fetch && pc->fetched_once)
            return NULL;
        fetch_start(pc);
    }
    h2o_linklist_insert(&pc->waiters, &waiter->link);
    *waiting = 1;
    return NULL;
}

void lg_jwks_waiter_cancel(lg_jwks_waiter_t *w)
{
    if (h2o_linklist_is_linked(&w->link))
        h2o_linklist_unlink(&w->link);
}
