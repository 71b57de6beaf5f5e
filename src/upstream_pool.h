/*
 * Upstream connection pools and load balancing, per worker (DESIGN §4): for each cluster of the
 * worker's snapshot an lg_cluster_state_t holds the load balancer's cursor and, per host, the
 * connections to it (HTTP/1.1: one stream each, reused with keep-alive; HTTP/2: multiplexed).
 *
 * A request asks its cluster state for a host (lg_cluster_pick_host), then the pool for a stream on
 * that host (lg_conn_pool_new_stream). The pool answers at once when a connection has room, or
 * later, after connecting (and the TLS handshake), through lg_pool_callbacks_t: on_ready with the
 * stream, or on_failure with the reason (connect failure, timeout, overflow). Envoy's model:
 * onPoolReady / onPoolFailure. Worker thread only.
 */
#ifndef LG_UPSTREAM_POOL_H
#define LG_UPSTREAM_POOL_H

#include "client_conn.h"
#include "codec.h"
#include "load_balancer.h"
#include "snapshot.h"
#include "stats.h"

struct st_lg_worker_t;
typedef struct st_lg_cluster_state_t lg_cluster_state_t;
typedef struct st_lg_pool_request_t lg_pool_request_t;

typedef struct st_lg_pool_callbacks_t {
    /** A stream is open on a connection to the host; the request can be written to it now. */
    void (*on_ready)(void *ctx, lg_upstream_stream_t *stream, const lg_host_t *host);
    /** No stream could be had: LG_RESET_CONNECT_FAILURE, _CONNECT_TIMEOUT, _OVERFLOW, _TLS_FAILURE. */
    void (*on_failure)(void *ctx, lg_reset_reason_t reason, const char *details);
} lg_pool_callbacks_t;

/* Stats of one cluster (cluster.<name>.*), registered when the snapshot is built. */
typedef struct st_lg_cluster_stats_t {
    lg_stat_id_t upstream_cx_total, upstream_cx_active, upstream_cx_http1_total, upstream_cx_http2_total,
        upstream_cx_connect_fail, upstream_cx_connect_timeout, upstream_cx_destroy,
        upstream_cx_overflow, upstream_rq_total, upstream_rq_active, upstream_rq_pending_total,
        upstream_rq_pending_active, upstream_rq_pending_overflow, upstream_rq_pending_failure_eject,
        upstream_rq_timeout, upstream_rq_per_try_timeout, upstream_rq_rx_reset, upstream_rq_tx_reset,
        upstream_rq_retry, upstream_rq_retry_success, upstream_rq_retry_overflow, upstream_rq_completed,
        upstream_rq_1xx, upstream_rq_2xx, upstream_rq_3xx, upstream_rq_4xx, upstream_rq_5xx,
        upstream_cx_none_healthy, membership_total, membership_healthy, lb_healthy_panic,
        upstream_rq_time; /* histogram (ms) */
    lg_stat_id_t upstream_rq_code[LG_STATS_N_CODES]; /* upstream_rq_<code> for lg_stats_codes */
    /* the global rate-limit filter's verdicts for requests routed to this cluster (ratelimit.*) */
    lg_stat_id_t ratelimit_ok, ratelimit_over_limit, ratelimit_error, ratelimit_failure_mode_allowed;
    /* the ext_authz filter's verdicts for requests routed to this cluster (ext_authz.*) */
    lg_stat_id_t ext_authz_ok, ext_authz_denied, ext_authz_error, ext_authz_failure_mode_allowed, ext_authz_disabled;
} lg_cluster_stats_t;

/** Registers the stats of cluster `name` (main thread). */
const lg_cluster_stats_t *lg_cluster_stats_for(const char *name);

/** The worker's state for cluster `c`, replacing `old` (same cluster name) when given: when both
 * have the same settings (config_hash), the connections and waiting requests of hosts that stay
 * move over; the rest of `old` is closed and freed. */
lg_cluster_state_t *lg_cluster_state_update(struct st_lg_worker_t *w, lg_cluster_state_t *old, const lg_cluster_t *c);
/** Closes the cluster's connections (streams in flight are reset) and frees the state. */
void lg_cluster_state_free(lg_cluster_state_t *cs);

/**
 * Picks a host with the cluster's load balancer; NULL when the cluster has none. `ctx` carries the
 * request's hash for RING_HASH and MAGLEV (NULL or no hash: a random host, as Envoy).
 */
const lg_host_t *lg_cluster_pick_host(lg_cluster_state_t *cs, const lg_lb_context_t *ctx);

/**
 * Asks for a stream to `host`. Either calls cb->on_ready / on_failure before returning (and then
 * returns NULL), or returns a handle for the wait, which the caller may cancel.
 * `stream_cb`/`ctx` become the stream's callbacks; `mem` is the pool response heads go into.
 */
lg_pool_request_t *lg_conn_pool_new_stream(lg_cluster_state_t *cs, const lg_host_t *host, h2o_mem_pool_t *mem,
                                           const lg_upstream_callbacks_t *stream_cb,
                                           const lg_pool_callbacks_t *cb, void *ctx);
/** Gives up a pending request: no callback follows. */
void lg_pool_request_cancel(lg_pool_request_t *r);

/** The cluster's stats and counters cell block for the router. */
const lg_cluster_t *lg_cluster_state_cluster(const lg_cluster_state_t *cs);

#endif
