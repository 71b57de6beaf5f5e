/*
 * The HTTP connection manager: see conn_manager.h.
 *
 * Filter iteration follows Envoy's FilterManager. Decoding runs filters 0..n-1, encoding n-1..0.
 * A filter that stops on headers holds the chain at its index: with STOP_ITERATION it still sees
 * body data (and its CONTINUE on data releases the headers), with STOP_ALL_* data is held in the
 * stream before reaching it. Held data and trailers go on from the next filter when the stopped
 * filter calls continue. A stream ends when its response is complete; the request side is then
 * released to the codec whatever state it is in (HTTP/2 resets it, HTTP/1.1 closes).
 */
#include "conn_manager.h"
#include "access_log.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "path_normalize.h"
#include "route_table.h"
#include "worker.h"

#define DEFAULT_BUFFER_LIMIT (1024 * 1024)

static void stream_maybe_destroy(lg_stream_t *s);
static uint64_t now_mono_ns(void);
static void codec_encode_headers(lg_stream_t *s);
static void decode_headers_from(lg_stream_t *s, size_t start);
static void decode_data_from(lg_stream_t *s, size_t start, const char *data, size_t len, int end_stream);
static void decode_trailers_from(lg_stream_t *s, size_t start);
static void encode_headers_from(lg_stream_t *s, size_t start);
static void encode_data_from(lg_stream_t *s, size_t start, const char *data, size_t len, int end_stream);
static void encode_trailers_from(lg_stream_t *s, size_t start);

/* ------------------------------------------------------------------------------------------- */
/* Stats                                                                                       */
/* ------------------------------------------------------------------------------------------- */

#define HCM_STATS(X)                                                                               \
    X(downstream_cx_total, COUNTER) X(downstream_cx_active, GAUGE) X(downstream_cx_http1_total, COUNTER) \
    X(downstream_cx_http2_total, COUNTER) X(downstream_cx_ssl_total, COUNTER)                      \
    X(downstream_rq_total, COUNTER) X(downstream_rq_active, GAUGE)                                 \
    X(downstream_rq_http1_total, COUNTER) X(downstream_rq_http2_total, COUNTER)                    \
    X(downstream_rq_1xx, COUNTER) X(downstream_rq_2xx, COUNTER) X(downstream_rq_3xx, COUNTER)      \
    X(downstream_rq_4xx, COUNTER) X(downstream_rq_5xx, COUNTER) X(downstream_rq_completed, COUNTER) \
    X(downstream_rq_timeout, COUNTER) X(downstream_rq_idle_timeout, COUNTER)                       \
    X(downstream_rq_rx_reset, COUNTER) X(downstream_rq_tx_reset, COUNTER)                          \
    X(downstream_cx_protocol_error, COUNTER) X(no_route, COUNTER) X(rq_direct_response, COUNTER)   \
    X(downstream_rq_too_large, COUNTER) X(downstream_cx_max_duration_reached, COUNTER)         \
    X(downstream_rq_time, HISTOGRAM)

const lg_hcm_stats_t *lg_hcm_stats_for(const char *stat_prefix)
{
    lg_hcm_stats_t *st = malloc(sizeof(*st));
    if (st == NULL)
        lg_fatal("out of memory");
#define LG_X(name, type) st->name = lg_stats_registerf(LG_STAT_##type, "http.%s." #name, stat_prefix);
    HCM_STATS(LG_X)
#undef LG_X
    return st;
}

static lg_stats_cells_t *cells(lg_stream_t *s)
{
    return s->conn->worker->stats;
}

/* ------------------------------------------------------------------------------------------- */
/* Connections                                                                                 */
/* ------------------------------------------------------------------------------------------- */

/* max_connection_duration: the connection is drained like at shutdown (GOAWAY / Connection: close). */
static void on_max_duration(h2o_timeout_entry_t *e)
{
    lg_hcm_conn_t *c = H2O_STRUCT_FROM_MEMBER(lg_hcm_conn_t, duration_timer, e);
    lg_stats_inc(c->worker->stats, c->config->stats->downstream_cx_max_duration_reached);
    lg_hcm_conn_shutdown(c);
}

lg_hcm_conn_t *lg_hcm_conn_new(lg_worker_t *worker, lg_snapshot_t *snapshot, const lg_listener_t *listener,
                               const lg_filter_chain_t *chain, h2o_socket_t *sock, lg_http_version_t protocol,
                               int tls)
{
    lg_hcm_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        lg_fatal("out of memory");
    c->worker = worker;
    c->snapshot = lg_snapshot_retain(snapshot);
    c->listener = listener;
    c->chain = chain;
    c->config = chain->hcm;
    c->sock = sock;
    c->protocol = protocol;
    c->tls = tls;
    h2o_linklist_init_anchor(&c->streams);
    h2o_linklist_insert(&worker->connections, &c->worker_link);
    ++worker->active_connections;
    h2o_socket_getpeername(sock, (struct sockaddr *)&c->remote);
    h2o_socket_getsockname(sock, (struct sockaddr *)&c->local);
    const lg_hcm_stats_t *st = c->config->stats;
    lg_stats_inc(worker->stats, st->downstream_cx_total);
    lg_stats_inc(worker->stats, st->downstream_cx_active);
    lg_stats_inc(worker->stats, protocol == LG_HTTP_2 ? st->downstream_cx_http2_total : st->downstream_cx_http1_total);
    if (tls)
        lg_stats_inc(worker->stats, st->downstream_cx_ssl_total);
    lg_stats_inc(worker->stats, listener->stat_cx_total);
    lg_stats_inc(worker->stats, listener->stat_cx_active);
    c->start_mono_ns = now_mono_ns();
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        c->start_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    }
    c->duration_timer.cb = on_max_duration;
    if (c->config->max_connection_duration_ms != 0)
        h2o_timeout_link(worker->loop, lg_worker_timeout(worker, c->config->max_connection_duration_ms),
                         &c->duration_timer);
    return c;
}

void lg_hcm_conn_shutdown(lg_hcm_conn_t *conn)
{
    if (conn->codec_shutdown != NULL && !conn->closed)
        conn->codec_shutdown(conn->codec);
}

void lg_hcm_conn_closed(lg_hcm_conn_t *conn)
{
    /* The codec reset or released every stream before this; any left are reset now. */
    while (!h2o_linklist_is_empty(&conn->streams)) {
        lg_stream_t *s = H2O_STRUCT_FROM_MEMBER(lg_stream_t, link, conn->streams.next);
        lg_hcm_on_reset(s, LG_RESET_CONNECTION_CLOSED);
    }
    conn->closed = 1;
    h2o_timeout_unlink(&conn->duration_timer);
    if (conn->listener->n_access_logs != 0) {
        /* Listener-level access logs: one line per connection, with no request in it. */
        lg_stream_info_t info = {.downstream_remote = conn->remote, .downstream_local = conn->local,
                                 .downstream_tls = conn->tls, .protocol = conn->protocol,
                                 .start_ms = conn->start_ms, .start_mono_ns = conn->start_mono_ns};
        for (size_t i = 0; i < conn->listener->n_access_logs; ++i)
            lg_access_log_emit(conn->listener->access_logs[i], conn->worker->id, &info, NULL, NULL, NULL);
    }
    while (conn->filter_states != NULL) {
        lg_hcm_filter_state_t *fs = conn->filter_states;
        conn->filter_states = fs->next;
        free(fs);
    }
    lg_stats_dec(conn->worker->stats, conn->config->stats->downstream_cx_active);
    lg_stats_dec(conn->worker->stats, conn->listener->stat_cx_active);
    h2o_linklist_unlink(&conn->worker_link);
    --conn->worker->active_connections;
    lg_snapshot_release(conn->snapshot);
    free(conn);
}

/* ------------------------------------------------------------------------------------------- */
/* Streams                                                                                     */
/* ------------------------------------------------------------------------------------------- */

static uint64_t now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_idle_timeout(h2o_timeout_entry_t *e)
{
    lg_stream_t *s = H2O_STRUCT_FROM_MEMBER(lg_stream_t, idle_timer, e);
    lg_stats_inc(cells(s), s->stats->downstream_rq_idle_timeout);
    lg_stream_info_set_flag(&s->info, LG_RF_STREAM_IDLE_TIMEOUT);
    lg_stream_send_local_reply(s, 408, "stream timeout", NULL, "stream_idle_timeout");
}

static void on_request_timeout(h2o_timeout_entry_t *e)
{
    lg_stream_t *s = H2O_STRUCT_FROM_MEMBER(lg_stream_t, request_timer, e);
    lg_stats_inc(cells(s), s->stats->downstream_rq_timeout);
    lg_stream_send_local_reply(s, 408, "request timeout", NULL, "request_overall_timeout");
}

static void touch_idle_timer(lg_stream_t *s)
{
    if (s->conn->config->stream_idle_timeout_ms == 0 || s->destroyed || s->response_complete)
        return;
    h2o_timeout_unlink(&s->idle_timer);
    h2o_timeout_link(s->conn->worker->loop, lg_worker_timeout(s->conn->worker, s->conn->config->stream_idle_timeout_ms),
                     &s->idle_timer);
}

lg_stream_t *lg_hcm_stream_new(lg_hcm_conn_t *conn, lg_server_stream_t *cs)
{
    lg_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        lg_fatal("out of memory");
    s->conn = conn;
    s->codec = cs;
    cs->hcm = s;
    s->stats = conn->config->stats;
    h2o_mem_init_pool(&s->pool);
    h2o_linklist_insert(&conn->streams, &s->link);
    ++conn->n_streams;
    s->dec_stop = SIZE_MAX;
    s->enc_stop = SIZE_MAX;
    s->enc_body_from = SIZE_MAX;
    s->dec_trailers_stop = SIZE_MAX;
    s->buffer_limit = conn->listener->per_connection_buffer_limit ? conn->listener->per_connection_buffer_limit
                                                                  : DEFAULT_BUFFER_LIMIT;
    s->idle_timer.cb = on_idle_timeout;
    s->request_timer.cb = on_request_timeout;
    s->info.downstream_remote = conn->remote;
    s->info.downstream_local = conn->local;
    s->info.downstream_tls = conn->tls;
    s->info.protocol = conn->protocol;
    s->info.start_ms = (uint64_t)time(NULL) * 1000;
    s->info.start_mono_ns = now_mono_ns();
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s->info.start_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    }

    /* The filter chain, with zeroed per-stream state from the pool. */
    const lg_hcm_config_t *cfg = conn->config;
    s->filters = h2o_mem_alloc_pool(&s->pool, sizeof(lg_filter_t) * (cfg->n_filters ? cfg->n_filters : 1));
    for (size_t i = 0; i < cfg->n_filters; ++i) {
        lg_filter_t *f = &s->filters[s->n_filters];
        const lg_filter_factory_entry_t *fe = &cfg->filters[i];
        if (fe->ops == NULL)
            continue; /* an optional filter legate does not have */
        memset(f, 0, sizeof(*f)); /* the pool's memory is not zeroed */
        f->ops = fe->ops;
        f->name = fe->name;
        f->config = fe->config;
        f->stream = s;
        f->index = (unsigned)s->n_filters;
        f->disabled_by_default = fe->disabled && !fe->ops->terminal;
        if (fe->ops->state_size != 0) {
            f->state = h2o_mem_alloc_pool(&s->pool, fe->ops->state_size);
            memset(f->state, 0, fe->ops->state_size);
        }
        ++s->n_filters;
    }
    lg_stats_inc(cells(s), s->stats->downstream_rq_total);
    lg_stats_inc(cells(s), s->stats->downstream_rq_active);
    lg_stats_inc(cells(s), conn->protocol == LG_HTTP_2 ? s->stats->downstream_rq_http2_total
                                                       : s->stats->downstream_rq_http1_total);
    touch_idle_timer(s);
    if (cfg->request_timeout_ms != 0)
        h2o_timeout_link(conn->worker->loop, lg_worker_timeout(conn->worker, cfg->request_timeout_ms),
                         &s->request_timer);
    for (size_t i = 0; i < s->n_filters; ++i)
        if (s->filters[i].ops->on_create != NULL)
            s->filters[i].ops->on_create(&s->filters[i]);
    return s;
}

h2o_mem_pool_t *lg_stream_pool(lg_stream_t *s)
{
    return &s->pool;
}

static void count_response(lg_stream_t *s, int status)
{
    lg_stat_id_t id = status < 200 ? s->stats->downstream_rq_1xx
                      : status < 300 ? s->stats->downstream_rq_2xx
                      : status < 400 ? s->stats->downstream_rq_3xx
                      : status < 500 ? s->stats->downstream_rq_4xx
                                     : s->stats->downstream_rq_5xx;
    lg_stats_inc(cells(s), id);
}

static void stream_destroy(lg_stream_t *s)
{
    s->destroyed = 1;
    for (size_t i = 0; i < s->conn->config->n_access_logs; ++i)
        lg_access_log_emit(s->conn->config->access_logs[i], s->conn->worker->id, &s->info, s->request, s->response,
                           s->enc_trailers);
    h2o_timeout_unlink(&s->idle_timer);
    h2o_timeout_unlink(&s->request_timer);
    for (size_t i = 0; i < s->n_filters; ++i)
        if (s->filters[i].ops->on_destroy != NULL)
            s->filters[i].ops->on_destroy(&s->filters[i]);
    if (s->dec_buf != NULL)
        h2o_buffer_dispose(&s->dec_buf);
    if (s->enc_buf != NULL)
        h2o_buffer_dispose(&s->enc_buf);
    h2o_linklist_unlink(&s->link);
    --s->conn->n_streams;
    lg_stats_dec(cells(s), s->stats->downstream_rq_active);
    lg_stats_record(cells(s), s->stats->downstream_rq_time, (now_mono_ns() - s->info.start_mono_ns) / 1000000);
    lg_server_stream_t *cs = s->codec;
    s->codec = NULL;
    h2o_mem_clear_pool(&s->pool);
    free(s);
    if (cs != NULL)
        cs->ops->release(cs);
}

/* Destroys the stream once its response is complete, unless a caller up the stack still uses it. */
#define REQUEST_LINGER_MS 1000

static void on_linger_timeout(h2o_timeout_entry_t *e)
{
    lg_stream_t *s = H2O_STRUCT_FROM_MEMBER(lg_stream_t, idle_timer, e);
    s->request_complete = 1; /* stop waiting: the codec resets what is left */
    stream_maybe_destroy(s);
}

/*
 * Destroys the stream once its response is complete, unless a caller up the stack still uses it.
 * On HTTP/2 a response that finished before its request (an early local reply) waits up to
 * REQUEST_LINGER_MS for the rest of the request, read and dropped: resetting the stream at once is
 * allowed (NO_ERROR) but some clients report it as a failure of the response they already have.
 */
static void stream_maybe_destroy(lg_stream_t *s)
{
    if (s->in_callback != 0 || s->destroyed || !s->response_complete)
        return;
    if (!s->request_complete && s->conn->protocol == LG_HTTP_2 && !s->codec_reset) {
        if (!h2o_timeout_is_linked(&s->idle_timer) || s->idle_timer.cb != on_linger_timeout) {
            h2o_timeout_unlink(&s->idle_timer);
            s->idle_timer.cb = on_linger_timeout;
            h2o_timeout_link(s->conn->worker->loop, lg_worker_timeout(s->conn->worker, REQUEST_LINGER_MS),
                             &s->idle_timer);
        }
        return;
    }
    lg_stats_inc(cells(s), s->stats->downstream_rq_completed);
    stream_destroy(s);
}

void lg_hcm_on_reset(lg_stream_t *s, lg_reset_reason_t reason)
{
    if (s->destroyed)
        return;
    lg_stats_inc(cells(s), s->stats->downstream_rq_rx_reset);
    if (!s->response_complete)
        lg_stream_info_set_flag(&s->info, LG_RF_DOWNSTREAM_CONNECTION_TERMINATION);
    /* The codec is done with this stream: it hears only the release from us now. */
    s->codec_reset = 1;
    stream_destroy(s);
}

/* ------------------------------------------------------------------------------------------- */
/* Request head processing (before filters)                                                    */
/* ------------------------------------------------------------------------------------------- */

static void generate_request_id(lg_stream_t *s, h2o_iovec_t *out)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = lg_worker_random(s->conn->worker), b = lg_worker_random(s->conn->worker);
    /* UUID v4: version nibble 4, variant bits 10; 8-4-4-4-12 hex digits. */
    a = (a & ~0xf000ull) | 0x4000ull;
    b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;
    char *buf = h2o_mem_alloc_pool(&s->pool, 37), *p = buf;
    for (int i = 60; i >= 0; i -= 4) {
        *p++ = hex[(a >> i) & 15];
        if (i == 32 || i == 16)
            *p++ = '-';
    }
    *p++ = '-';
    for (int i = 60; i >= 0; i -= 4) {
        *p++ = hex[(b >> i) & 15];
        if (i == 48)
            *p++ = '-';
    }
    *p = '\0';
    *out = h2o_iovec_init(buf, 36);
}

/*
 * Path normalization before routing, as Envoy's connection manager does it. Returns 0, or -1 when
 * the request was answered (400 for a path that cannot be normalized or has a forbidden escaped
 * slash, 307 to the unescaped path).
 */
static int normalize_request_path(lg_stream_t *s, lg_request_head_t *req)
{
    const lg_hcm_config_t *cfg = s->conn->config;
    enum { KEEP = 1, REJECT = 2, UNESCAPE_AND_REDIRECT = 3, UNESCAPE_AND_FORWARD = 4 };
    int action = cfg->path_with_escaped_slashes_action;
    if (action >= REJECT && lg_path_has_escaped_slash(req->path)) {
        if (action == REJECT) {
            lg_stream_send_local_reply(s, 400, NULL, NULL, "path_normalization_failed");
            return -1;
        }
        req->path = lg_path_unescape_slashes(req->path, &s->pool);
        if (action == UNESCAPE_AND_REDIRECT) {
            lg_response_head_t *r = h2o_mem_alloc_pool(&s->pool, sizeof(*r));
            memset(r, 0, sizeof(*r));
            r->status = 307;
            lg_headers_add(&s->pool, &r->headers, LG_LIT("location"), req->path);
            lg_headers_add(&s->pool, &r->headers, LG_LIT("content-length"), LG_LIT("0"));
            s->response = r;
            s->response_started = 1;
            s->local_reply_sent = 1;
            s->enc_end_stream = 1;
            s->info.response_code_details = "path_escaped_slashes_redirected";
            codec_encode_headers(s);
            s->response_complete = 1;
            return -1;
        }
    }
    if ((cfg->normalize_path || cfg->merge_slashes) && req->path.len != 0 && req->path.base[0] == '/') {
        h2o_iovec_t out;
        if (lg_path_normalize(req->path, cfg->normalize_path, cfg->merge_slashes, &s->pool, &out) != 0) {
            lg_stream_send_local_reply(s, 400, NULL, NULL, "path_normalization_failed");
            return -1;
        }
        req->path = out;
    }
    return 0;
}

/* Envoy's request header handling in the connection manager (mutateRequestHeaders). */
static void prepare_request_headers(lg_stream_t *s, lg_request_head_t *req)
{
    const lg_hcm_config_t *cfg = s->conn->config;
    /* No client is internal unless internal_address_config says so (Envoy's default since 1.33,
     * and legate does not read that option yet): clients may not steer legate through x-envoy-*. */
    int internal = 0;
    {
        for (size_t i = 0; i < req->headers.size;) {
            h2o_iovec_t n = req->headers.entries[i].name;
            if (n.len > 8 && memcmp(n.base, "x-envoy-", 8) == 0) {
                req->headers.entries[i] = req->headers.entries[--req->headers.size];
                continue;
            }
            ++i;
        }
    }
    if (cfg->use_remote_address) {
        char ip[64];
        lg_sockaddr_to_string(&s->conn->remote, ip, sizeof(ip), 0);
        if (!cfg->skip_xff_append) {
            const h2o_iovec_t *xff = lg_headers_get(&req->headers, "x-forwarded-for", 15);
            if (xff != NULL) {
                size_t len = xff->len + 1 + strlen(ip);
                char *v = h2o_mem_alloc_pool(&s->pool, len + 1);
                snprintf(v, len + 1, "%.*s,%s", (int)xff->len, xff->base, ip);
                lg_headers_set(&s->pool, &req->headers, LG_LIT("x-forwarded-for"), h2o_iovec_init(v, len));
            } else {
                lg_headers_add_copy(&s->pool, &req->headers, "x-forwarded-for", 15, ip, strlen(ip));
            }
        }
        lg_headers_set(&s->pool, &req->headers, LG_LIT("x-forwarded-proto"),
                       s->conn->tls ? LG_LIT("https") : LG_LIT("http"));
    } else if (lg_headers_get(&req->headers, "x-forwarded-proto", 17) == NULL) {
        lg_headers_add(&s->pool, &req->headers, LG_LIT("x-forwarded-proto"),
                       s->conn->tls ? LG_LIT("https") : LG_LIT("http"));
    }
    const h2o_iovec_t *rid = lg_headers_get(&req->headers, "x-request-id", 12);
    int keep = rid != NULL && (cfg->preserve_external_request_id || !cfg->use_remote_address || internal);
    if (cfg->generate_request_id && !keep) {
        h2o_iovec_t id;
        generate_request_id(s, &id);
        lg_headers_set(&s->pool, &req->headers, LG_LIT("x-request-id"), id);
        s->info.request_id = id;
    } else if (rid != NULL) {
        s->info.request_id = *rid;
    }
}

/* ------------------------------------------------------------------------------------------- */
/* Decoding                                                                                    */
/* ------------------------------------------------------------------------------------------- */

void lg_hcm_on_headers(lg_stream_t *s, lg_request_head_t *head, int end_stream)
{
    s->request = head;
    s->info.protocol = head->version;
    if (end_stream) {
        s->request_complete = 1;
        s->dec_end_stream = 1;
        s->info.request_end_ns = now_mono_ns();
        h2o_timeout_unlink(&s->request_timer);
    }
    touch_idle_timer(s);
    ++s->in_callback;
    if (normalize_request_path(s, head) == 0) {
        prepare_request_headers(s, head);
        decode_headers_from(s, 0);
    }
    --s->in_callback;
    stream_maybe_destroy(s);
}

void lg_hcm_on_data(lg_stream_t *s, const void *data, size_t len, int end_stream)
{
    if (s->destroyed)
        return;
    if (s->response_complete || s->local_reply_sent) {
        /* Answered already: the rest of the request is read and dropped. */
        if (end_stream) {
            s->request_complete = 1;
            stream_maybe_destroy(s);
        }
        return;
    }
    s->info.bytes_received += len;
    if (end_stream) {
        s->request_complete = 1;
        s->dec_end_stream = 1;
        s->info.request_end_ns = now_mono_ns();
        h2o_timeout_unlink(&s->request_timer);
    }
    touch_idle_timer(s);
    ++s->in_callback;
    decode_data_from(s, 0, data, len, end_stream);
    --s->in_callback;
    stream_maybe_destroy(s);
}

void lg_hcm_on_trailers(lg_stream_t *s, lg_headers_t *trailers)
{
    if (s->destroyed)
        return;
    if (s->response_complete || s->local_reply_sent) {
        s->request_complete = 1;
        stream_maybe_destroy(s);
        return;
    }
    s->request_complete = 1;
    s->dec_end_stream = 1;
    s->info.request_end_ns = now_mono_ns();
    h2o_timeout_unlink(&s->request_timer);
    s->dec_trailers = trailers;
    ++s->in_callback;
    decode_trailers_from(s, 0);
    --s->in_callback;
    stream_maybe_destroy(s);
}

void lg_hcm_on_protocol_error(lg_stream_t *s, int status, const char *details)
{
    lg_stats_inc(cells(s), s->stats->downstream_cx_protocol_error);
    lg_stream_info_set_flag(&s->info, LG_RF_DOWNSTREAM_PROTOCOL_ERROR);
    if (status == 413 || status == 431)
        lg_stats_inc(cells(s), s->stats->downstream_rq_too_large);
    lg_stream_send_local_reply(s, status, NULL, NULL, details);
}

void lg_hcm_on_watermark(lg_stream_t *s, int above)
{
    /* The response producer (the router) pauses its upstream while the client cannot keep up. */
    for (size_t i = 0; i < s->n_filters && !s->destroyed; ++i)
        if (s->filters[i].ops->on_downstream_watermark != NULL)
            s->filters[i].ops->on_downstream_watermark(&s->filters[i], above);
}

static void buffer_append(h2o_buffer_t **buf, const char *data, size_t len)
{
    if (*buf == NULL)
        h2o_buffer_init(buf, &h2o_socket_buffer_prototype);
    if (len == 0)
        return;
    h2o_iovec_t r = h2o_buffer_reserve(buf, len);
    if (r.base == NULL)
        lg_fatal("out of memory");
    memcpy(r.base, data, len);
    (*buf)->size += len;
}

/*
 * Envoy resolves the route before the chain runs and turns filters off on it: a filter disabled in
 * http_filters runs only where a route's FilterConfig says `disabled: false`, and one a route
 * disables does not run there. A skipped filter sees no hook of this stream.
 */
static void decide_skips(lg_stream_t *s)
{
    const lg_route_t *r = s->n_filters != 0 ? lg_filter_route(&s->filters[0]) : NULL;
    for (size_t i = 0; i < s->n_filters; ++i) {
        lg_filter_t *f = &s->filters[i];
        if (f->ops->terminal)
            continue;
        int d = r != NULL ? lg_route_filter_disabled(r, f->name) : -1;
        f->skip = d == 1 || (d == -1 && f->disabled_by_default);
    }
}

static void decode_headers_from(lg_stream_t *s, size_t start)
{
    if (start == 0)
        decide_skips(s);
    for (size_t i = start; i < s->n_filters; ++i) {
        lg_filter_t *f = &s->filters[i];
        if (f->skip || f->ops->decode_headers == NULL)
            continue;
        int end = s->dec_end_stream && s->dec_buf == NULL && s->dec_trailers == NULL;
        lg_filter_headers_status_t st = f->ops->decode_headers(f, s->request, end);
        if (s->destroyed || s->local_reply_sent)
            return;
        if (st != LG_FILTER_HEADERS_CONTINUE) {
            s->dec_stop = i;
            s->dec_stop_all = st != LG_FILTER_HEADERS_STOP_ITERATION;
            return;
        }
    }
    s->dec_headers_done = 1;
}

static void decode_data_from(lg_stream_t *s, size_t start, const char *data, size_t len, int end_stream)
{
    for (size_t i = start; i < s->n_filters; ++i) {
        lg_filter_t *f = &s->filters[i];
        if (s->dec_stop != SIZE_MAX && (i > s->dec_stop || (i == s->dec_stop && s->dec_stop_all))) {
            if (s->dec_buf != NULL && s->dec_buf->size + len > s->buffer_limit) {
                if (!s->response_started) {
                    lg_stats_inc(cells(s), s->stats->downstream_rq_too_large);
                    lg_stream_send_local_reply(s, 413, "Payload Too Large", NULL, "request_payload_too_large");
                }
                return;
            }
            buffer_append(&s->dec_buf, data, len);
            return;
        }
        if (f->skip || f->ops->decode_data == NULL)
            continue;
        lg_data_t d = {data, len};
        lg_filter_data_status_t st = f->ops->decode_data(f, &d, end_stream);
        if (s->destroyed || s->local_reply_sent)
            return;
        data = d.base;
        len = d.len;
        if (st == LG_FILTER_DATA_CONTINUE) {
            if (i == s->dec_stop) {
                /* STOP_ITERATION on headers released by CONTINUE on data. */
                s->dec_stop = SIZE_MAX;
                decode_headers_from(s, i + 1);
                if (s->destroyed || s->local_reply_sent || s->dec_stop != SIZE_MAX) {
                    if (!s->destroyed && !s->local_reply_sent)
                        buffer_append(&s->dec_buf, data, len);
                    return;
                }
            }
            continue;
        }
        if (st == LG_FILTER_DATA_STOP_NO_BUFFER)
            return;
        /* STOP_BUFFER / STOP_WATERMARK: held here until the filter continues. */
        s->dec_stop = i;
        s->dec_stop_all = 0;
        buffer_append(&s->dec_buf, data, len);
        return;
    }
}

static void decode_trailers_from(lg_stream_t *s, size_t start)
{
    for (size_t i = start; i < s->n_filters; ++i) {
        lg_filter_t *f = &s->filters[i];
        /* Held for continue past a stopped filter; the stopped filter itself still sees trailers
         * unless it stopped everything (STOP_ALL_*), as with data. */
        if (s->dec_stop != SIZE_MAX && (i > s->dec_stop || (i == s->dec_stop && s->dec_stop_all)))
            return;
        if (f->skip || f->ops->decode_trailers == NULL)
            continue;
        lg_filter_trailers_status_t st = f->ops->decode_trailers(f, s->dec_trailers);
        if (s->destroyed || s->local_reply_sent)
            return;
        if (st == LG_FILTER_TRAILERS_STOP) {
            s->dec_trailers_stop = i;
            return;
        }
    }
}

void lg_filter_continue_decoding(lg_filter_t *f)
{
    lg_stream_t *s = f->stream;
    if (s->destroyed || s->local_reply_sent)
        return;
    ++s->in_callback;
    size_t next = f->index + 1;
    if (s->dec_trailers_stop == f->index) {
        s->dec_trailers_stop = SIZE_MAX;
        decode_trailers_from(s, next);
    } else if (s->dec_stop == f->index) {
        s->dec_stop = SIZE_MAX;
        if (!s->dec_headers_done)
            decode_headers_from(s, next);
        /* Held data and trailers go on from the next filter; one that stops again holds them
         * anew (decode_*_from know the stop rules). */
        if (!s->destroyed && !s->local_reply_sent && s->dec_buf != NULL) {
            h2o_buffer_t *held = s->dec_buf;
            s->dec_buf = NULL;
            int end = s->dec_end_stream && s->dec_trailers == NULL;
            decode_data_from(s, next, held->bytes, held->size, end);
            h2o_buffer_dispose(&held);
        }
        if (!s->destroyed && !s->local_reply_sent && s->dec_trailers != NULL)
            decode_trailers_from(s, next);
    }
    --s->in_callback;
    stream_maybe_destroy(s);
}

/* ------------------------------------------------------------------------------------------- */
/* Encoding                                                                                    */
/* ------------------------------------------------------------------------------------------- */

static void codec_encode_headers(lg_stream_t *s)
{
    lg_response_head_t *r = s->response;
    const lg_hcm_config_t *cfg = s->conn->config;
    /* server header, as Envoy's server_header_transformation says */
    if (cfg->server_header_transformation == 0 ||
        (cfg->server_header_transformation == 1 && lg_headers_get(&r->headers, "server", 6) == NULL))
        lg_headers_set(&s->pool, &r->headers, LG_LIT("server"),
                       h2o_iovec_init(cfg->server_name, strlen(cfg->server_name)));
    /* always_set_request_id_in_response: the request's id (received or generated), as Envoy. */
    if (cfg->always_set_request_id_in_response && s->info.request_id.len != 0)
        lg_headers_set(&s->pool, &r->headers, LG_LIT("x-request-id"), s->info.request_id);
    s->info.response_code = r->status;
    if (r->status >= 200)
        count_response(s, r->status);
    int end = s->enc_end_stream && s->enc_buf == NULL && s->enc_trailers == NULL && !s->enc_data_pending;
    if (s->codec != NULL && !s->codec_reset)
        s->codec->ops->encode_headers(s->codec, r, end);
    if (end)
        s->response_complete = 1;
}

static void encode_headers_from(lg_stream_t *s, size_t start)
{
    for (size_t i = start; i-- > 0;) {
        lg_filter_t *f = &s->filters[i];
        if (f->skip || f->ops->encode_headers == NULL)
            continue;
        int end = s->enc_end_stream && s->enc_buf == NULL && s->enc_trailers == NULL && !s->enc_data_pending;
        lg_filter_headers_status_t st = f->ops->encode_headers(f, s->response, end);
        if (s->destroyed)
            return;
        if (st != LG_FILTER_HEADERS_CONTINUE) {
            s->enc_stop = i;
            s->enc_stop_all = st != LG_FILTER_HEADERS_STOP_ITERATION;
            /* A body given by lg_filter_set_encoded_body is held here now, as any data would be. */
            s->enc_body_from = SIZE_MAX;
            return;
        }
    }
    s->enc_headers_done = 1;
    codec_encode_headers(s);
    if (s->enc_body_from != SIZE_MAX && !s->destroyed && s->enc_buf != NULL) {
        h2o_buffer_t *body = s->enc_buf;
        size_t from = s->enc_body_from;
        s->enc_buf = NULL;
        s->enc_body_from = SIZE_MAX;
        encode_data_from(s, from, body->bytes, body->size, s->enc_end_stream && s->enc_trailers == NULL);
        h2o_buffer_dispose(&body);
    }
}

static void encode_data_from(lg_stream_t *s, size_t start, const char *data, size_t len, int end_stream)
{
    for (size_t i = start; i-- > 0;) {
        lg_filter_t *f = &s->filters[i];
        if (s->enc_stop != SIZE_MAX && (i < s->enc_stop || (i == s->enc_stop && s->enc_stop_all))) {
            buffer_append(&s->enc_buf, data, len);
            return;
        }
        if (f->skip || f->ops->encode_data == NULL)
            continue;
        lg_data_t d = {data, len};
        lg_filter_data_status_t st = f->ops->encode_data(f, &d, end_stream);
        if (s->destroyed)
            return;
        data = d.base;
        len = d.len;
        if (st == LG_FILTER_DATA_CONTINUE) {
            if (i == s->enc_stop) {
                s->enc_stop = SIZE_MAX;
                /* the held head goes on ahead of this data: it does not end the stream */
                s->enc_data_pending = len != 0;
                encode_headers_from(s, i);
                s->enc_data_pending = 0;
                if (s->destroyed || s->enc_stop != SIZE_MAX) {
                    if (!s->destroyed)
                        buffer_append(&s->enc_buf, data, len);
                    return;
                }
            }
            continue;
        }
        if (st == LG_FILTER_DATA_STOP_NO_BUFFER)
            return;
        s->enc_stop = i;
        s->enc_stop_all = 0;
        buffer_append(&s->enc_buf, data, len);
        return;
    }
    s->info.bytes_sent += len;
    if (s->codec != NULL && !s->codec_reset)
        s->codec->ops->encode_data(s->codec, data, len, end_stream);
    if (end_stream)
        s->response_complete = 1;
}

static void encode_trailers_from(lg_stream_t *s, size_t start)
{
    for (size_t i = start; i-- > 0;) {
        lg_filter_t *f = &s->filters[i];
        if (s->enc_stop != SIZE_MAX && (i < s->enc_stop || (i == s->enc_stop && s->enc_stop_all)))
            return;
        if (f->skip || f->ops->encode_trailers == NULL)
            continue;
        if (f->ops->encode_trailers(f, s->enc_trailers) == LG_FILTER_TRAILERS_STOP) {
            s->enc_stop = i;
            s->enc_stop_all = 1;
            return;
        }
        if (s->destroyed)
            return;
    }
    if (s->codec != NULL && !s->codec_reset)
        s->codec->ops->encode_trailers(s->codec, s->enc_trailers);
    s->response_complete = 1;
}

void lg_filter_encode_headers(lg_filter_t *f, lg_response_head_t *head, int end_stream)
{
    lg_stream_t *s = f->stream;
    if (s->destroyed)
        return;
    if (head->status >= 100 && head->status < 200) {
        /* 1xx go straight to the codec (100-continue is answered by the codec itself). */
        return;
    }
    s->response = head;
    s->response_started = 1;
    s->enc_end_stream = end_stream;
    touch_idle_timer(s);
    ++s->in_callback;
    encode_headers_from(s, s->n_filters);
    --s->in_callback;
    stream_maybe_destroy(s);
}

void lg_filter_encode_data(lg_filter_t *f, const void *data, size_t len, int end_stream)
{
    lg_stream_t *s = f->stream;
    if (s->destroyed)
        return;
    if (end_stream)
        s->enc_end_stream = 1;
    touch_idle_timer(s);
    ++s->in_callback;
    encode_data_from(s, s->n_filters, data, len, end_stream);
    --s->in_callback;
    stream_maybe_destroy(s);
}

void lg_filter_encode_trailers(lg_filter_t *f, lg_headers_t *trailers)
{
    lg_stream_t *s = f->stream;
    if (s->destroyed)
        return;
    s->enc_end_stream = 1;
    s->enc_trailers = trailers;
    ++s->in_callback;
    encode_trailers_from(s, s->n_filters);
    --s->in_callback;
    stream_maybe_destroy(s);
}

void lg_filter_continue_encoding(lg_filter_t *f)
{
    lg_stream_t *s = f->stream;
    if (s->destroyed || s->enc_stop != f->index)
        return;
    ++s->in_callback;
    s->enc_stop = SIZE_MAX;
    if (!s->enc_headers_done)
        encode_headers_from(s, f->index);
    if (!s->destroyed && s->enc_buf != NULL) {
        h2o_buffer_t *held = s->enc_buf;
        s->enc_buf = NULL;
        int end = s->enc_end_stream && s->enc_trailers == NULL;
        encode_data_from(s, f->index, held->bytes, held->size, end);
        h2o_buffer_dispose(&held);
    }
    if (!s->destroyed && s->enc_trailers != NULL && !s->response_complete)
        encode_trailers_from(s, f->index);
    --s->in_callback;
    stream_maybe_destroy(s);
}

void lg_filter_add_encoded_data(lg_filter_t *f, const void *data, size_t len)
{
    lg_stream_t *s = f->stream;
    if (s->destroyed || len == 0)
        return;
    /* The trailers this filter is handling follow once its hook returns; the data goes first. */
    ++s->in_callback;
    encode_data_from(s, f->index, data, len, 0);
    --s->in_callback;
}

void lg_filter_set_encoded_body(lg_filter_t *f, const void *data, size_t len)
{
    lg_stream_t *s = f->stream;
    if (s->destroyed || len == 0 || s->enc_headers_done)
        return;
    /* Held in enc_buf, the response's head no longer ends the stream for the filters after this one
     * and the codec; encode_headers_from sends it on once the head reached the codec. */
    buffer_append(&s->enc_buf, data, len);
    s->enc_body_from = f->index;
}

void lg_filter_add_decoded_data(lg_filter_t *f, const void *data, size_t len)
{
    lg_stream_t *s = f->stream;
    if (s->destroyed || s->local_reply_sent || len == 0)
        return;
    ++s->in_callback;
    decode_data_from(s, f->index + 1, data, len, 0);
    --s->in_callback;
}

void lg_filter_read_disable(lg_filter_t *f, int disable)
{
    lg_stream_t *s = f->stream;
    if (s->codec != NULL && !s->codec_reset && !s->destroyed)
        s->codec->ops->read_disable(s->codec, disable);
}

/* ------------------------------------------------------------------------------------------- */
/* Local replies                                                                               */
/* ------------------------------------------------------------------------------------------- */

static int is_grpc_request(const lg_request_head_t *req)
{
    if (req == NULL)
        return 0;
    const h2o_iovec_t *ct = lg_headers_get(&req->headers, "content-type", 12);
    return ct != NULL && ct->len >= 16 && strncasecmp(ct->base, "application/grpc", 16) == 0 &&
           (ct->len == 16 || ct->base[16] == '+' || ct->base[16] == ';');
}

/* Envoy's HTTP -> gRPC status mapping for local replies (Grpc::Utility::httpToGrpcStatus). */
static int http_to_grpc_status(int status)
{
    switch (status) {
    case 400: return 13; /* INTERNAL */
    case 401: return 16; /* UNAUTHENTICATED */
    case 403: return 7;  /* PERMISSION_DENIED */
    case 404: return 12; /* UNIMPLEMENTED */
    case 429:
    case 502:
    case 503:
    case 504: return 14; /* UNAVAILABLE */
    default: return 2;   /* UNKNOWN */
    }
}

static const char *default_body(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
    }
}

static void send_local_reply(lg_stream_t *s, const lg_local_reply_t *reply)
{
    int status = reply->status;
    const char *body = reply->body, *flag = reply->flag, *details = reply->details;
    if (s->destroyed || s->local_reply_sent)
        return;
    if (flag != NULL) {
        int fl = lg_response_flag_parse(flag);
        if (fl >= 0)
            lg_stream_info_set_flag(&s->info, (lg_response_flag_t)fl);
    }
    s->info.response_code_details = details;
    s->local_reply_sent = 1;
    if (s->response_started) {
        /* Too late for a reply: the client already has a status line. */
        lg_stats_inc(cells(s), s->stats->downstream_rq_tx_reset);
        if (s->codec != NULL && !s->codec_reset) {
            s->codec_reset = 1;
            s->codec->ops->reset(s->codec);
        }
        s->response_complete = 1;
        stream_maybe_destroy(s);
        return;
    }
    if (body == NULL)
        body = default_body(status);
    lg_response_head_t *r = h2o_mem_alloc_pool(&s->pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    if (reply->headers != NULL)
        lg_headers_copy(&s->pool, &r->headers, reply->headers);
    s->response = r;
    s->response_started = 1;
    size_t blen = strlen(body);
    if (is_grpc_request(s->request)) {
        /* Trailers-only gRPC response: status 200, grpc-status and grpc-message in the head. */
        char code[16];
        snprintf(code, sizeof(code), "%d", reply->grpc_status >= 0 ? reply->grpc_status : http_to_grpc_status(status));
        r->status = 200;
        r->content_length = -1;
        lg_headers_add(&s->pool, &r->headers, LG_LIT("content-type"), LG_LIT("application/grpc"));
        lg_headers_add_copy(&s->pool, &r->headers, "grpc-status", 11, code, strlen(code));
        if (blen != 0)
            lg_headers_add_copy(&s->pool, &r->headers, "grpc-message", 12, body, blen);
        s->enc_end_stream = 1;
        codec_encode_headers(s);
        s->response_complete = 1;
    } else {
        char len[24];
        snprintf(len, sizeof(len), "%zu", blen);
        r->status = status;
        r->content_length = (int64_t)blen;
        if (blen != 0)
            lg_headers_add(&s->pool, &r->headers, LG_LIT("content-type"), LG_LIT("text/plain"));
        lg_headers_add_copy(&s->pool, &r->headers, "content-length", 14, len, strlen(len));
        s->enc_end_stream = blen == 0;
        codec_encode_headers(s);
        if (blen != 0 && s->codec != NULL && !s->codec_reset)
            s->codec->ops->encode_data(s->codec, body, blen, 1);
        s->info.bytes_sent += blen;
        s->response_complete = 1;
    }
    stream_maybe_destroy(s);
}

void lg_stream_send_local_reply(lg_stream_t *s, int status, const char *body, const char *flag, const char *details)
{
    lg_local_reply_t reply = {.status = status, .body = body, .flag = flag, .details = details, .grpc_status = -1};
    send_local_reply(s, &reply);
}

void lg_filter_send_local_reply_ex(lg_filter_t *f, const lg_local_reply_t *reply)
{
    send_local_reply(f->stream, reply);
}

void lg_filter_send_local_reply(lg_filter_t *f, int status, const char *body, const char *flag, const char *details)
{
    lg_stream_send_local_reply(f->stream, status, body, flag, details);
}

/* ------------------------------------------------------------------------------------------- */
/* Filter accessors                                                                            */
/* ------------------------------------------------------------------------------------------- */

h2o_mem_pool_t *lg_filter_pool(lg_filter_t *f)
{
    return &f->stream->pool;
}

lg_request_head_t *lg_filter_request(lg_filter_t *f)
{
    return f->stream->request;
}

const lg_route_t *lg_filter_route(lg_filter_t *f)
{
    lg_stream_t *s = f->stream;
    if (!s->route_resolved) {
        s->route_resolved = 1;
        const lg_hcm_config_t *cfg = s->conn->config;
        if (cfg->route_table != NULL && s->request != NULL) {
            unsigned flags = (cfg->strip_any_host_port ? LG_ROUTE_STRIP_ANY_HOST_PORT : 0) |
                             (cfg->strip_matching_host_port ? LG_ROUTE_STRIP_MATCHING_HOST_PORT : 0);
            uint16_t port = s->conn->local.ss_family == AF_INET6
                                ? ntohs(((const struct sockaddr_in6 *)&s->conn->local)->sin6_port)
                                : ntohs(((const struct sockaddr_in *)&s->conn->local)->sin_port);
            lg_route_input_t in = {.req = s->request, .pool = &s->pool, .random = lg_worker_random(s->conn->worker),
                                   .flags = flags, .listener_port = port};
            s->route = lg_route_table_match(cfg->route_table, &in, &s->vhost);
        }
    }
    return s->route;
}

void lg_filter_clear_route(lg_filter_t *f)
{
    f->stream->route_resolved = 0;
    f->stream->route = NULL;
    f->stream->vhost = NULL;
}

const lg_cluster_t *lg_filter_route_cluster(lg_filter_t *f)
{
    const lg_route_t *r = lg_filter_route(f);
    if (r == NULL || r->action != LG_ROUTE_ACTION_ROUTE)
        return NULL;
    h2o_iovec_t name = lg_route_cluster_name(r, NULL, f->stream->request);
    return name.len != 0 ? lg_snapshot_find_cluster(f->stream->conn->snapshot, name.base, name.len) : NULL;
}

const void *lg_filter_per_route_config(lg_filter_t *f)
{
    lg_stream_t *s = f->stream;
    const lg_route_t *r = lg_filter_route(f);
    const lg_filter_route_config_t *rc = r != NULL ? lg_route_per_filter_config(r, s->weighted_cluster, f->name) : NULL;
    return rc != NULL && rc->ops == f->ops ? rc->config : NULL;
}

size_t lg_filter_per_route_configs(lg_filter_t *f, const void *out[4])
{
    const lg_route_t *r = lg_filter_route(f);
    const void *all[4];
    size_t n = r != NULL ? lg_route_per_filter_configs(r, f->stream->weighted_cluster, f->name, all) : 0, m = 0;
    for (size_t i = 0; i < n; ++i) {
        const lg_filter_route_config_t *rc = all[i];
        if (rc->ops == f->ops)
            out[m++] = rc->config;
    }
    return m;
}

void *lg_filter_connection_state(lg_filter_t *f, const void *key, size_t size)
{
    lg_hcm_conn_t *conn = f->stream->conn;
    for (lg_hcm_filter_state_t *fs = conn->filter_states; fs != NULL; fs = fs->next)
        if (fs->key == key)
            return fs->data;
    lg_hcm_filter_state_t *fs = calloc(1, offsetof(lg_hcm_filter_state_t, data) + size);
    if (fs == NULL)
        lg_fatal("out of memory");
    fs->key = key;
    fs->next = conn->filter_states;
    conn->filter_states = fs;
    return fs->data;
}

lg_worker_t *lg_filter_worker(lg_filter_t *f)
{
    return f->stream->conn->worker;
}

const lg_snapshot_t *lg_filter_snapshot(lg_filter_t *f)
{
    return f->stream->conn->snapshot;
}

lg_stream_info_t *lg_filter_stream_info(lg_filter_t *f)
{
    return &f->stream->info;
}
