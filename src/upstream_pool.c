/*
 * Upstream connection pools and load balancers: see upstream_pool.h.
 *
 * Per host: a list of connections (each an lg_client_conn_t from the HTTP/1.1 or HTTP/2 client
 * codec), a count of connections being set up, and a queue of requests waiting for room. A request
 * takes the first connection with room; failing that it waits, and a new connection is started when
 * the ones being set up will not be enough. A failed connect fails the waiting requests it was
 * meant for. Idle connections close after the cluster's idle timeout.
 */
#include "upstream_pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <h2o/linklist.h>
#include <h2o/socket.h>

#include "http1_client.h"
#include "http2_client.h"
#include "log.h"
#include "tls_context.h"
#include "worker.h"

typedef struct st_host_pool_t host_pool_t;

typedef struct st_pool_conn_t {
    host_pool_t *hp;
    /* The snapshot current when the connection was started: what it may still use of its
     * cluster (the TLS context of a handshake in flight) lives as long as the connection, even
     * after the pool moved to a new snapshot's cluster with the same settings. */
    lg_snapshot_t *pin;
    h2o_linklist_t link;
    lg_client_conn_t *conn;          /* NULL while connecting */
    h2o_socket_t *sock;              /* while connecting */
    h2o_timeout_entry_t timer;       /* connect timeout, then idle timeout */
    lg_tls_conn_t tls;
} pool_conn_t;

struct st_lg_pool_request_t {
    host_pool_t *hp;
    h2o_linklist_t link;
    h2o_mem_pool_t *mem;
    const lg_upstream_callbacks_t *stream_cb;
    const lg_pool_callbacks_t *cb;
    void *ctx;
};

struct st_host_pool_t {
    lg_cluster_state_t *cs;
    const lg_host_t *host;
    h2o_linklist_t conns;      /* pool_conn_t with a codec */
    h2o_linklist_t connecting; /* pool_conn_t still connecting */
    size_t n_connecting;
    h2o_linklist_t pending;    /* lg_pool_request_t */
    size_t n_pending;
};

struct st_lg_cluster_state_t {
    lg_worker_t *worker;
    const lg_cluster_t *cluster;
    host_pool_t *hosts;
    size_t n_hosts;
    lg_lb_state_t lb; /* this worker's load balancer cursors */
    size_t n_connections;
};

#define CLUSTER_STATS(X)                                                                           \
    X(upstream_cx_total, COUNTER) X(upstream_cx_active, GAUGE) X(upstream_cx_http1_total, COUNTER) \
    X(upstream_cx_http2_total, COUNTER) X(upstream_cx_connect_fail, COUNTER)                       \
    X(upstream_cx_connect_timeout, COUNTER) X(upstream_cx_destroy, COUNTER)                        \
    X(upstream_cx_overflow, COUNTER) X(upstream_rq_total, COUNTER) X(upstream_rq_active, GAUGE)    \
    X(upstream_rq_pending_total, COUNTER) X(upstream_rq_pending_active, GAUGE)                     \
    X(upstream_rq_pending_overflow, COUNTER) X(upstream_rq_pending_failure_eject, COUNTER)         \
    X(upstream_rq_timeout, COUNTER) X(upstream_rq_per_try_timeout, COUNTER)                        \
    X(upstream_rq_rx_reset, COUNTER) X(upstream_rq_tx_reset, COUNTER) X(upstream_rq_retry, COUNTER) \
    X(upstream_rq_retry_success, COUNTER) X(upstream_rq_retry_overflow, COUNTER)                   \
    X(upstream_rq_completed, COUNTER) X(upstream_rq_1xx, COUNTER) X(upstream_rq_2xx, COUNTER)      \
    X(upstream_rq_3xx, COUNTER) X(upstream_rq_4xx, COUNTER) X(upstream_rq_5xx, COUNTER)            \
    X(upstream_cx_none_healthy, COUNTER) X(membership_total, GAUGE) X(membership_healthy, GAUGE)   \
    X(lb_healthy_panic, COUNTER) X(upstream_rq_time, HISTOGRAM)

const lg_cluster_stats_t *lg_cluster_stats_for(const char *name)
{
    lg_cluster_stats_t *st = malloc(sizeof(*st));
    if (st == NULL)
        lg_fatal("out of memory");
#define LG_X(n, type) st->n = lg_stats_registerf(LG_STAT_##type, "cluster.%s." #n, name);
    CLUSTER_STATS(LG_X)
#undef LG_X
    for (int i = 0; i < LG_STATS_N_CODES; ++i)
        st->upstream_rq_code[i] = lg_stats_registerf(LG_STAT_COUNTER, "cluster.%s.upstream_rq_%d", name, lg_stats_codes[i]);
    st->ratelimit_ok = lg_stats_registerf(LG_STAT_COUNTER, "cluster.%s.ratelimit.ok", name);
    st->ratelimit_over_limit = lg_stats_registerf(LG_STAT_COUNTER, "cluster.%s.ratelimit.over_limit", name);
    st->ratelimit_error = lg_stats_registerf(LG_STAT_COUNTER, "cluster.%s.ratelimit.error", name);
    st->ratelimit_failure_mode_allowed =
        lg_stats_registerf(LG_STAT_COUNTER, "cluster.%s.ratelimit.failure_mode_allowed", name);
    st->ext_authz_ok = lg_stats_registerf(LG_STAT_COUNTER, "cluster.%s.ext_authz.ok", name);
    st->ext_authz_denied = lg_stats_registerf(LG_STAT_COUNTER, "cluster.%s.ext_authz.denied", name);
    st->ext_authz_error = lg_stats_registerf(LG_STAT_COUNTER, "cluster.%s.ext_authz.error", name);
    st->ext_authz_failure_mode_allowed =
        lg_stats_registerf(LG_STAT_COUNTER, "cluster.%s.ext_authz.failure_mode_allowed", name);
    st->ext_authz_disabled = lg_stats_registerf(LG_STAT_COUNTER, "cluster.%s.ext_authz.disabled", name);
    return st;
}

static lg_stats_cells_t *cells(host_pool_t *hp)
{
    return hp->cs->worker->stats;
}

static const lg_cluster_stats_t *stats(host_pool_t *hp)
{
    return hp->cs->cluster->stats;
}

/* ------------------------------------------------------------------------------------------- */
/* Cluster state and load balancing                                                            */
/* ------------------------------------------------------------------------------------------- */

static int same_address(const lg_host_t *a, const lg_host_t *b)
{
    return a->addrlen == b->addrlen && memcmp(&a->addr, &b->addr, a->addrlen) == 0;
}

/* Moves the connections and waiting requests of `from` (a pool of the previous state) to `to`,
 * a pool for the same address in a cluster with the same settings. */
static void move_pool(host_pool_t *to, host_pool_t *from)
{
    for (h2o_linklist_t *l = from->conns.next; l != &from->conns; l = l->next)
        H2O_STRUCT_FROM_MEMBER(pool_conn_t, link, l)->hp = to;
    for (h2o_linklist_t *l = from->connecting.next; l != &from->connecting; l = l->next)
        H2O_STRUCT_FROM_MEMBER(pool_conn_t, link, l)->hp = to;
    for (h2o_linklist_t *l = from->pending.next; l != &from->pending; l = l->next)
        H2O_STRUCT_FROM_MEMBER(lg_pool_request_t, link, l)->hp = to;
    size_t n = from->n_connecting;
    for (h2o_linklist_t *l = from->conns.next; l != &from->conns; l = l->next)
        ++n;
    h2o_linklist_insert_list(&to->conns, &from->conns);
    h2o_linklist_insert_list(&to->connecting, &from->connecting);
    h2o_linklist_insert_list(&to->pending, &from->pending);
    to->n_connecting = from->n_connecting;
    to->n_pending = from->n_pending;
    from->n_connecting = from->n_pending = 0;
    to->cs->n_connections += n;
    from->cs->n_connections -= n;
}

lg_cluster_state_t *lg_cluster_state_update(lg_worker_t *w, lg_cluster_state_t *old, const lg_cluster_t *c)
{
    lg_cluster_state_t *cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        lg_fatal("out of memory");
    cs->worker = w;
    cs->cluster = c;
    cs->n_hosts = c->n_hosts;
    cs->hosts = calloc(c->n_hosts ? c->n_hosts : 1, sizeof(*cs->hosts));
    if (cs->hosts == NULL)
        lg_fatal("out of memory");
    lg_lb_state_init(&cs->lb, c);
    /* Same settings (only the host set may differ, as after an EDS or DNS update): the pools of
     * the hosts that stay keep their connections and requests; only removed hosts' close. */
    int keep = old != NULL && old->cluster->config_hash == c->config_hash;
    for (size_t i = 0; i < c->n_hosts; ++i) {
        host_pool_t *hp = &cs->hosts[i];
        hp->cs = cs;
        hp->host = c->hosts[i];
        h2o_linklist_init_anchor(&hp->conns);
        h2o_linklist_init_anchor(&hp->connecting);
        h2o_linklist_init_anchor(&hp->pending);
        for (size_t j = 0; keep && j < old->n_hosts; ++j) {
            host_pool_t *from = &old->hosts[j];
            if (same_address(from->host, hp->host) &&
                (!h2o_linklist_is_empty(&from->conns) || !h2o_linklist_is_empty(&from->connecting) ||
                 !h2o_linklist_is_empty(&from->pending))) {
                move_pool(hp, from);
                break;
            }
        }
    }
    if (old != NULL)
        lg_cluster_state_free(old);
    return cs;
}

const lg_cluster_t *lg_cluster_state_cluster(const lg_cluster_state_t *cs)
{
    return cs->cluster;
}

static uint64_t lb_random(void *ctx)
{
    lg_cluster_state_t *cs = ctx;
    return lg_worker_random(cs->worker);
}

/* Streams open on the host's connections from this worker: Envoy's rq_active, which counts
 * requests attached to a connection and not those waiting for one. */
static uint32_t lb_active_requests(void *ctx, const lg_host_t *host)
{
    lg_cluster_state_t *cs = ctx;
    host_pool_t *hp = &cs->hosts[host->index];
    uint32_t n = 0;
    for (h2o_linklist_t *l = hp->conns.next; l != &hp->conns; l = l->next) {
        lg_client_conn_t *conn = H2O_STRUCT_FROM_MEMBER(pool_conn_t, link, l)->conn;
        n += (uint32_t)conn->ops->active_streams(conn);
    }
    return n;
}

const lg_host_t *lg_cluster_pick_host(lg_cluster_state_t *cs, const lg_lb_context_t *ctx)
{
    lg_lb_env_t env = {lb_random, lb_active_requests, cs};
    return lg_lb_pick(cs->cluster, &cs->lb, &env, ctx);
}

/* ------------------------------------------------------------------------------------------- */
/* Connections                                                                                 */
/* ------------------------------------------------------------------------------------------- */

static void serve_pending(host_pool_t *hp);
static void maybe_connect(host_pool_t *hp);

static void fail_request(lg_pool_request_t *r, lg_reset_reason_t reason, const char *details)
{
    host_pool_t *hp = r->hp;
    h2o_linklist_unlink(&r->link);
    --hp->n_pending;
    lg_stats_dec(cells(hp), stats(hp)->upstream_rq_pending_active);
    const lg_pool_callbacks_t *cb = r->cb;
    void *ctx = r->ctx;
    free(r);
    cb->on_failure(ctx, reason, details);
}

static void free_pool_conn(pool_conn_t *pc)
{
    h2o_timeout_unlink(&pc->timer);
    if (h2o_linklist_is_linked(&pc->link))
        h2o_linklist_unlink(&pc->link);
    lg_snapshot_release(pc->pin);
    free(pc);
}

static void on_conn_closed(void *owner_ctx, lg_client_conn_t *c)
{
    pool_conn_t *pc = owner_ctx;
    host_pool_t *hp = pc->hp;
    lg_stats_dec(cells(hp), stats(hp)->upstream_cx_active);
    lg_stats_inc(cells(hp), stats(hp)->upstream_cx_destroy);
    --hp->cs->n_connections;
    free_pool_conn(pc);
    /* Requests still waiting need a connection of their own now. */
    maybe_connect(hp);
}

static void on_idle_timeout(h2o_timeout_entry_t *e)
{
    pool_conn_t *pc = H2O_STRUCT_FROM_MEMBER(pool_conn_t, timer, e);
    pc->conn->ops->close(pc->conn); /* calls on_conn_closed */
}

static void on_conn_capacity(void *owner_ctx, lg_client_conn_t *c)
{
    pool_conn_t *pc = owner_ctx;
    host_pool_t *hp = pc->hp;
    serve_pending(hp);
    if (pc->conn != NULL && pc->conn->ops->active_streams(pc->conn) == 0 && !h2o_timeout_is_linked(&pc->timer)) {
        uint64_t ms = hp->cs->cluster->idle_timeout_ms;
        if (ms != 0)
            h2o_timeout_link(hp->cs->worker->loop, lg_worker_timeout(hp->cs->worker, ms), &pc->timer);
    }
}

static const lg_client_conn_owner_t conn_owner = {on_conn_capacity, on_conn_closed};

/* The last step of setting a connection up: wrap the socket in the cluster's codec. */
static void conn_established(pool_conn_t *pc, int h2)
{
    host_pool_t *hp = pc->hp;
    const lg_cluster_t *c = hp->cs->cluster;
    h2o_socket_t *sock = pc->sock;
    pc->sock = NULL;
    h2o_timeout_unlink(&pc->timer);
    pc->timer.cb = on_idle_timeout;
    h2o_linklist_unlink(&pc->link);
    --hp->n_connecting;
    if (h2) {
        lg_http2_client_settings_t s;
        lg_http2_client_settings_init(&s);
        s.zero_timeout = lg_worker_timeout(hp->cs->worker, 0);
        if (c->h2_initial_stream_window)
            s.initial_stream_window_size = c->h2_initial_stream_window;
        if (c->h2_initial_connection_window)
            s.initial_connection_window_size = c->h2_initial_connection_window;
        pc->conn = lg_http2_client_conn_new(sock, &s, &conn_owner, pc);
        lg_stats_inc(cells(hp), stats(hp)->upstream_cx_http2_total);
    } else {
        lg_http1_client_settings_t s;
        lg_http1_client_settings_init(&s);
        s.max_requests_per_connection = c->max_requests_per_connection;
        s.zero_timeout = lg_worker_timeout(hp->cs->worker, 0);
        s.high_watermark = c->per_connection_buffer_limit;
        s.low_watermark = c->per_connection_buffer_limit / 2;
        pc->conn = lg_http1_client_conn_new(sock, &s, &conn_owner, pc);
        lg_stats_inc(cells(hp), stats(hp)->upstream_cx_http1_total);
    }
    h2o_linklist_insert(&hp->conns, &pc->link);
    serve_pending(hp);
}

/* A connect attempt failed: the requests it was for fail with it, as in Envoy's pools. */
static void conn_failed(pool_conn_t *pc, lg_reset_reason_t reason, const char *details)
{
    host_pool_t *hp = pc->hp;
    if (pc->sock != NULL) {
        h2o_socket_close(pc->sock);
        pc->sock = NULL;
    }
    --hp->n_connecting;
    --hp->cs->n_connections;
    lg_stats_dec(cells(hp), stats(hp)->upstream_cx_active);
    lg_stats_inc(cells(hp), reason == LG_RESET_CONNECT_TIMEOUT ? stats(hp)->upstream_cx_connect_timeout
                                                               : stats(hp)->upstream_cx_connect_fail);
    free_pool_conn(pc);
    int multiplexed = hp->cs->cluster->protocol == LG_UPSTREAM_HTTP2;
    /* Waiting requests beyond what the remaining attempts can carry fail now. */
    while (hp->n_pending > 0 && (multiplexed ? hp->n_connecting == 0 : hp->n_pending > hp->n_connecting)) {
        lg_pool_request_t *r = H2O_STRUCT_FROM_MEMBER(lg_pool_request_t, link, hp->pending.next);
        fail_request(r, reason, details);
    }
}

static void on_connect_timeout(h2o_timeout_entry_t *e)
{
    pool_conn_t *pc = H2O_STRUCT_FROM_MEMBER(pool_conn_t, timer, e);
    conn_failed(pc, LG_RESET_CONNECT_TIMEOUT, "connection timeout");
}

static void on_connect_failed_now(h2o_timeout_entry_t *e)
{
    pool_conn_t *pc = H2O_STRUCT_FROM_MEMBER(pool_conn_t, timer, e);
    conn_failed(pc, LG_RESET_CONNECT_FAILURE, "connection failure");
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    pool_conn_t *pc = sock->data;
    if (err != NULL) {
        conn_failed(pc, LG_RESET_TLS_FAILURE, err);
        return;
    }
    h2o_iovec_t alpn = h2o_socket_ssl_get_selected_protocol(sock);
    int h2 = pc->hp->cs->cluster->protocol == LG_UPSTREAM_HTTP2 ||
             (alpn.len == 2 && memcmp(alpn.base, "h2", 2) == 0);
    conn_established(pc, h2);
}

static void on_connect(h2o_socket_t *sock, const char *err)
{
    pool_conn_t *pc = sock->data;
    if (err != NULL) {
        conn_failed(pc, LG_RESET_CONNECT_FAILURE, "connection failure");
        return;
    }
    const lg_cluster_t *c = pc->hp->cs->cluster;
    if (c->tls != NULL) {
        lg_tls_client_handshake(sock, c->tls, c->sni, &pc->tls, on_handshake);
        return;
    }
    conn_established(pc, c->protocol == LG_UPSTREAM_HTTP2);
}

static void start_connect(host_pool_t *hp)
{
    lg_cluster_state_t *cs = hp->cs;
    pool_conn_t *pc = calloc(1, sizeof(*pc));
    if (pc == NULL)
        lg_fatal("out of memory");
    pc->hp = hp;
    pc->pin = lg_snapshot_retain(cs->worker->snapshot);
    pc->timer.cb = on_connect_timeout;
    ++hp->n_connecting;
    ++cs->n_connections;
    h2o_linklist_insert(&hp->connecting, &pc->link);
    lg_stats_inc(cells(hp), stats(hp)->upstream_cx_total);
    lg_stats_inc(cells(hp), stats(hp)->upstream_cx_active);
    pc->sock = h2o_socket_connect(cs->worker->loop, (struct sockaddr *)&hp->host->addr, hp->host->addrlen, on_connect);
    if (pc->sock == NULL) {
        /* Failed at once (e.g. no route to the address): report it from the loop, not from inside
         * the caller, which still holds the request it is queueing. */
        pc->timer.cb = on_connect_failed_now;
        h2o_timeout_link(cs->worker->loop, lg_worker_timeout(cs->worker, 0), &pc->timer);
        return;
    }
    pc->sock->data = pc;
    lg_socket_bound_reads(pc->sock);
    h2o_timeout_link(cs->worker->loop, lg_worker_timeout(cs->worker, cs->cluster->connect_timeout_ms), &pc->timer);
}

static void maybe_connect(host_pool_t *hp)
{
    const lg_cluster_t *c = hp->cs->cluster;
    int multiplexed = c->protocol == LG_UPSTREAM_HTTP2;
    size_t wanted = multiplexed ? (hp->n_pending > 0 && hp->n_connecting == 0) : hp->n_pending;
    while (hp->n_connecting < wanted) {
        if (hp->cs->n_connections >= c->circuit_breakers.max_connections) {
            lg_stats_inc(cells(hp), stats(hp)->upstream_cx_overflow);
            break;
        }
        start_connect(hp);
    }
}

static pool_conn_t *conn_with_room(host_pool_t *hp)
{
    for (h2o_linklist_t *l = hp->conns.next; l != &hp->conns; l = l->next) {
        pool_conn_t *pc = H2O_STRUCT_FROM_MEMBER(pool_conn_t, link, l);
        if (pc->conn->ops->can_accept_stream(pc->conn))
            return pc;
    }
    return NULL;
}

static lg_upstream_stream_t *open_stream(pool_conn_t *pc, h2o_mem_pool_t *mem, const lg_upstream_callbacks_t *scb,
                                         void *ctx)
{
    h2o_timeout_unlink(&pc->timer); /* no longer idle */
    lg_stats_inc(cells(pc->hp), stats(pc->hp)->upstream_rq_total);
    return pc->conn->ops->new_stream(pc->conn, mem, scb, ctx);
}

static void serve_pending(host_pool_t *hp)
{
    pool_conn_t *pc;
    while (hp->n_pending > 0 && (pc = conn_with_room(hp)) != NULL) {
        lg_pool_request_t *r = H2O_STRUCT_FROM_MEMBER(lg_pool_request_t, link, hp->pending.next);
        h2o_linklist_unlink(&r->link);
        --hp->n_pending;
        lg_stats_dec(cells(hp), stats(hp)->upstream_rq_pending_active);
        lg_upstream_stream_t *st = open_stream(pc, r->mem, r->stream_cb, r->ctx);
        const lg_pool_callbacks_t *cb = r->cb;
        void *ctx = r->ctx;
        free(r);
        if (st == NULL)
            cb->on_failure(ctx, LG_RESET_CONNECTION_CLOSED, "connection refused a stream");
        else
            cb->on_ready(ctx, st, hp->host);
    }
}

lg_pool_request_t *lg_conn_pool_new_stream(lg_cluster_state_t *cs, const lg_host_t *host, h2o_mem_pool_t *mem,
                                           const lg_upstream_callbacks_t *stream_cb, const lg_pool_callbacks_t *cb,
                                           void *ctx)
{
    host_pool_t *hp = &cs->hosts[host->index];
    pool_conn_t *pc = conn_with_room(hp);
    if (pc != NULL) {
        lg_upstream_stream_t *st = open_stream(pc, mem, stream_cb, ctx);
        if (st != NULL) {
            cb->on_ready(ctx, st, host);
            return NULL;
        }
    }
    if (hp->n_pending >= cs->cluster->circuit_breakers.max_pending_requests) {
        lg_stats_inc(cells(hp), stats(hp)->upstream_rq_pending_overflow);
        cb->on_failure(ctx, LG_RESET_OVERFLOW, "pending request overflow");
        return NULL;
    }
    lg_pool_request_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        lg_fatal("out of memory");
    r->hp = hp;
    r->mem = mem;
    r->stream_cb = stream_cb;
    r->cb = cb;
    r->ctx = ctx;
    h2o_linklist_insert(&hp->pending, &r->link);
    ++hp->n_pending;
    lg_stats_inc(cells(hp), stats(hp)->upstream_rq_pending_total);
    lg_stats_inc(cells(hp), stats(hp)->upstream_rq_pending_active);
    maybe_connect(hp);
    if (hp->n_connecting == 0 && conn_with_room(hp) == NULL && h2o_linklist_is_linked(&r->link)) {
        /* No connection coming (the connection limit): fail now rather than wait forever. */
        fail_request(r, LG_RESET_OVERFLOW, "upstream connection overflow");
        return NULL;
    }
    return h2o_linklist_is_linked(&r->link) ? r : NULL;
}

void lg_pool_request_cancel(lg_pool_request_t *r)
{
    host_pool_t *hp = r->hp;
    h2o_linklist_unlink(&r->link);
    --hp->n_pending;
    lg_stats_dec(cells(hp), stats(hp)->upstream_rq_pending_active);
    free(r);
}

void lg_cluster_state_free(lg_cluster_state_t *cs)
{
    for (size_t i = 0; i < cs->n_hosts; ++i) {
        host_pool_t *hp = &cs->hosts[i];
        while (hp->n_pending > 0) {
            lg_pool_request_t *r = H2O_STRUCT_FROM_MEMBER(lg_pool_request_t, link, hp->pending.next);
            fail_request(r, LG_RESET_CONNECTION_CLOSED, "cluster removed");
        }
        while (!h2o_linklist_is_empty(&hp->connecting)) {
            pool_conn_t *pc = H2O_STRUCT_FROM_MEMBER(pool_conn_t, link, hp->connecting.next);
            conn_failed(pc, LG_RESET_CONNECTION_CLOSED, "cluster removed");
        }
        while (!h2o_linklist_is_empty(&hp->conns)) {
            pool_conn_t *pc = H2O_STRUCT_FROM_MEMBER(pool_conn_t, link, hp->conns.next);
            pc->conn->ops->close(pc->conn); /* on_conn_closed unlinks and frees pc */
        }
    }
    free(cs->hosts);
    lg_lb_state_dispose(&cs->lb);
    free(cs);
}
