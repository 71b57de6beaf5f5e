/*
 * The router filter's per-request work: see router.h.
 *
 * The request head goes upstream as soon as the pool has a stream; body bytes that arrive before
 * then are held (reading from the client pauses past the cluster's buffer limit) and sent after the
 * head. The route timeout starts when the client's request is complete, as in Envoy. The response
 * is passed to the encode chain as it arrives; the client's pace pauses the upstream through
 * watermarks, so no body is ever held whole.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "codec.h"
#include "envoy/extensions/filters/http/router/v3/router.pb-c.h"
#include "filters/router/router.h"
#include "hash_policy.h"
#include "header_formatter.h"
#include "log.h"
#include "route_table.h"
#include "snapshot.h"
#include "stream_info.h"
#include "upstream_pool.h"
#include "worker.h"

typedef struct st_router_state_t {
    lg_filter_t *f;
    const lg_router_config_t *config;
    const lg_route_t *route;
    const lg_weighted_cluster_t *wc;
    const lg_cluster_t *cluster;
    lg_cluster_state_t *cs;
    lg_lb_context_t lb_ctx; /* the request's hash for RING_HASH / MAGLEV */
    lg_pool_request_t *pool_req;
    lg_upstream_stream_t *up;
    lg_request_head_t *req;
    h2o_buffer_t *body;
    lg_headers_t *trailers;
    int req_end, req_sent_end, resp_started, resp_end, finished, read_disabled;
    uint64_t upstream_start_ns;
    uint64_t timeout_ms;
    h2o_timeout_entry_t timer;
    /* retries (the route's retry_policy): the request as sent so far is kept to send again */
    const lg_retry_policy_t *retry;
    uint32_t attempts;        /* upstream attempts started */
    h2o_buffer_t *sent_body;  /* everything sent upstream, for another attempt; NULL: no retry possible */
    int retries_disabled;
    h2o_timeout_entry_t retry_timer, try_timer;
} router_state_t;

static void start_attempt(router_state_t *st);

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static lg_stats_cells_t *cells(router_state_t *st)
{
    return lg_filter_worker(st->f)->stats;
}

static void local_reply(router_state_t *st, int status, const char *body, const char *flag, const char *details)
{
    st->finished = 1;
    lg_filter_send_local_reply(st->f, status, body, flag, details);
}

/* The upstream response is complete: upstream_rq_completed, and upstream_rq_time (ms since this
 * attempt's upstream request started). */
static void count_completed(router_state_t *st)
{
    lg_stats_inc(cells(st), st->cluster->stats->upstream_rq_completed);
    lg_stats_record(cells(st), st->cluster->stats->upstream_rq_time, (now_ns() - st->upstream_start_ns) / 1000000);
}

/* Ends the upstream side: released when both directions completed, reset otherwise. */
static void upstream_done(router_state_t *st)
{
    lg_upstream_stream_t *up = st->up;
    if (up == NULL)
        return;
    st->up = NULL;
    if (st->resp_end && st->req_sent_end)
        up->ops->release(up);
    else
        up->ops->reset(up);
}

static void start_timer(router_state_t *st)
{
    if (st->timeout_ms == 0 || h2o_timeout_is_linked(&st->timer) || st->finished)
        return;
    lg_worker_t *w = lg_filter_worker(st->f);
    h2o_timeout_link(w->loop, lg_worker_timeout(w, st->timeout_ms), &st->timer);
}

/* ------------------------------------------------------------------------------------------- */
/* Retries                                                                                     */
/* ------------------------------------------------------------------------------------------- */

#define RETRY_BODY_LIMIT (1024 * 1024)

static void keep_sent(router_state_t *st, const void *data, size_t len)
{
    if (st->retry == NULL || st->retries_disabled || len == 0)
        return;
    if ((st->sent_body != NULL ? st->sent_body->size : 0) + len > RETRY_BODY_LIMIT) {
        /* Too much to replay: this request is not retried (Envoy's buffer limit rule). */
        st->retries_disabled = 1;
        if (st->sent_body != NULL)
            h2o_buffer_dispose(&st->sent_body);
        return;
    }
    if (st->sent_body == NULL)
        h2o_buffer_init(&st->sent_body, &h2o_socket_buffer_prototype);
    h2o_iovec_t r = h2o_buffer_reserve(&st->sent_body, len);
    if (r.base == NULL)
        lg_fatal("out of memory");
    memcpy(r.base, data, len);
    st->sent_body->size += len;
}

/* Whether the failure `why` may be retried: retry_on covers it, attempts remain, the request can
 * be sent again. `why` is a set of LG_RETRY_ON_* bits describing what happened. */
static int can_retry(router_state_t *st, uint32_t why)
{
    if (st->retry == NULL || st->retries_disabled || st->finished || st->resp_started)
        return 0;
    if ((st->retry->retry_on & why) == 0)
        return 0;
    if (st->attempts > st->retry->num_retries) {
        return 0;
    }
    return 1;
}

static void on_retry_timer(h2o_timeout_entry_t *e)
{
    router_state_t *st = H2O_STRUCT_FROM_MEMBER(router_state_t, retry_timer, e);
    start_attempt(st);
}

/* Schedules the next attempt after Envoy's jittered exponential back-off (25 ms base, 10x max). */
static void schedule_retry(router_state_t *st)
{
    lg_worker_t *w = lg_filter_worker(st->f);
    lg_stats_inc(w->stats, st->cluster->stats->upstream_rq_retry);
    uint64_t base = st->retry->base_interval_ms ? st->retry->base_interval_ms : 25;
    uint64_t max = st->retry->max_interval_ms ? st->retry->max_interval_ms : base * 10;
    uint64_t ceiling = base << (st->attempts - 1 < 10 ? st->attempts - 1 : 10);
    if (ceiling > max)
        ceiling = max;
    uint64_t delay = lg_worker_random(w) % (ceiling + 1);
    /* Coarse buckets keep the number of distinct timeout lists small (h2o's are fixed-duration). */
    delay = delay < 5 ? 5 : (delay + 4) / 5 * 5;
    st->retry_timer.cb = on_retry_timer;
    h2o_timeout_link(w->loop, lg_worker_timeout(w, delay), &st->retry_timer);
}

/* The reply once no retry is left, for a failure before the response started. */
static void fail_before_response(router_state_t *st, int status, const char *flag, const char *why)
{
    char body[200];
    if (st->attempts > 1) {
        snprintf(body, sizeof(body),
                 "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: %s",
                 why);
        if (st->retry != NULL && st->attempts > st->retry->num_retries)
            flag = "URX";
    } else {
        snprintf(body, sizeof(body), "upstream connect error or disconnect/reset before headers. reset reason: %s",
                 why);
    }
    local_reply(st, status, body, flag, "upstream_reset_before_response_started");
}

/* gRPC status in a (trailers-only) response head, -1 when none. */
static int grpc_status_of(const lg_response_head_t *head)
{
    const h2o_iovec_t *g = lg_headers_get(&head->headers, "grpc-status", 11);
    if (g == NULL || g->len == 0 || g->len > 2)
        return -1;
    int v = 0;
    for (size_t i = 0; i < g->len; ++i) {
        if (g->base[i] < '0' || g->base[i] > '9')
            return -1;
        v = v * 10 + (g->base[i] - '0');
    }
    return v;
}

static uint32_t response_retry_reasons(router_state_t *st, const lg_response_head_t *head)
{
    uint32_t why = 0;
    int s = head->status;
    if (s >= 500)
        why |= LG_RETRY_ON_5XX;
    if (s == 502 || s == 503 || s == 504)
        why |= LG_RETRY_ON_GATEWAY_ERROR;
    if (s == 409)
        why |= LG_RETRY_ON_RETRIABLE_4XX;
    for (size_t i = 0; st->retry != NULL && i < st->retry->n_retriable_status_codes; ++i)
        if ((int)st->retry->retriable_status_codes[i] == s)
            why |= LG_RETRY_ON_RETRIABLE_STATUS_CODES;
    switch (grpc_status_of(head)) {
    case 1: why |= LG_RETRY_ON_GRPC_CANCELLED; break;
    case 4: why |= LG_RETRY_ON_GRPC_DEADLINE_EXCEEDED; break;
    case 8: why |= LG_RETRY_ON_GRPC_RESOURCE_EXHAUSTED; break;
    case 13: why |= LG_RETRY_ON_GRPC_INTERNAL; break;
    case 14: why |= LG_RETRY_ON_GRPC_UNAVAILABLE; break;
    default: break;
    }
    return why;
}

/* ------------------------------------------------------------------------------------------- */
/* Upstream events                                                                             */
/* ------------------------------------------------------------------------------------------- */

static void on_upstream_headers(void *ctx, lg_response_head_t *head, int end_stream)
{
    router_state_t *st = ctx;
    h2o_timeout_unlink(&st->try_timer);
    if (can_retry(st, response_retry_reasons(st, head))) {
        /* This answer is not passed on: the upstream stream is dropped and the request tried again. */
        lg_upstream_stream_t *up = st->up;
        st->up = NULL;
        if (end_stream && st->req_sent_end)
            up->ops->release(up);
        else
            up->ops->reset(up);
        schedule_retry(st);
        return;
    }
    if (st->attempts > 1)
        lg_stats_inc(cells(st), st->cluster->stats->upstream_rq_retry_success);
    if (st->retry != NULL && st->attempts > st->retry->num_retries && head->status >= 500)
        lg_stream_info_set_flag(lg_filter_stream_info(st->f), LG_RF_UPSTREAM_RETRY_LIMIT_EXCEEDED);
    st->resp_started = 1;
    st->resp_end = end_stream;
    lg_filter_stream_info(st->f)->upstream_response_start_ns = now_ns();
    const lg_cluster_stats_t *cst = st->cluster->stats;
    int s = head->status;
    lg_stats_inc(cells(st), s < 200   ? cst->upstream_rq_1xx
                            : s < 300 ? cst->upstream_rq_2xx
                            : s < 400 ? cst->upstream_rq_3xx
                            : s < 500 ? cst->upstream_rq_4xx
                                      : cst->upstream_rq_5xx);
    int code = lg_stats_code_index(s);
    if (code >= 0)
        lg_stats_inc(cells(st), cst->upstream_rq_code[code]);
    h2o_mem_pool_t *pool = lg_filter_pool(st->f);
    if (!st->config->suppress_envoy_headers) {
        char v[24];
        size_t vl = lg_u64_to_dec(v, (now_ns() - st->upstream_start_ns) / 1000000);
        lg_headers_add_copy(pool, &head->headers, "x-envoy-upstream-service-time", 29, v, vl);
    }
    if (st->route->vhost != NULL && st->route->vhost->include_attempt_count_in_response) {
        char v[24];
        size_t vl = lg_u64_to_dec(v, st->attempts);
        lg_headers_remove(&head->headers, "x-envoy-attempt-count", 21);
        lg_headers_add_copy(pool, &head->headers, "x-envoy-attempt-count", 21, v, vl);
    }
    lg_format_context_t fctx = {lg_filter_stream_info(st->f), st->req, head};
    lg_route_apply_response_mutations(st->route, st->wc, head, &fctx, pool);
    if (end_stream) {
        h2o_timeout_unlink(&st->timer);
        count_completed(st);
        upstream_done(st);
    }
    lg_filter_encode_headers(st->f, head, end_stream);
}

static void on_upstream_data(void *ctx, const void *data, size_t len, int end_stream)
{
    router_state_t *st = ctx;
    if (end_stream) {
        st->resp_end = 1;
        h2o_timeout_unlink(&st->timer);
        count_completed(st);
        upstream_done(st);
    }
    lg_filter_encode_data(st->f, data, len, end_stream);
}

static void on_upstream_trailers(void *ctx, lg_headers_t *trailers)
{
    router_state_t *st = ctx;
    st->resp_end = 1;
    h2o_timeout_unlink(&st->timer);
    count_completed(st);
    upstream_done(st);
    lg_filter_encode_trailers(st->f, trailers);
}

static int64_t parse_grpc_timeout(const h2o_iovec_t *v);

/* Whether the request is a gRPC call whose grpc-timeout has run out since it arrived. */
static int grpc_deadline_passed(router_state_t *st)
{
    const h2o_iovec_t *ct = lg_headers_get(&st->req->headers, "content-type", 12);
    if (ct == NULL || ct->len < 16 || strncasecmp(ct->base, "application/grpc", 16) != 0)
        return 0;
    int64_t ms = parse_grpc_timeout(lg_headers_get(&st->req->headers, "grpc-timeout", 12));
    if (ms < 0)
        return 0;
    uint64_t elapsed_ms = (now_ns() - lg_filter_stream_info(st->f)->start_mono_ns) / 1000000;
    return elapsed_ms >= (uint64_t)ms;
}

static void on_upstream_reset(void *ctx, lg_reset_reason_t reason, int request_sent)
{
    router_state_t *st = ctx;
    lg_upstream_stream_t *up = st->up;
    st->up = NULL;
    if (up != NULL)
        up->ops->release(up); /* after a reset only the release may follow */
    h2o_timeout_unlink(&st->try_timer);
    lg_stats_inc(cells(st), st->cluster->stats->upstream_rq_rx_reset);
    if (!st->resp_started) {
        uint32_t why = LG_RETRY_ON_5XX | LG_RETRY_ON_GATEWAY_ERROR | LG_RETRY_ON_RESET;
        if (reason == LG_RESET_REMOTE_RESET && !request_sent)
            why |= LG_RETRY_ON_REFUSED_STREAM;
        if (!request_sent)
            why |= LG_RETRY_ON_RESET_BEFORE_REQUEST;
        if (can_retry(st, why)) {
            schedule_retry(st);
            return;
        }
    }
    h2o_timeout_unlink(&st->timer);
    const char *flag = "UC", *why = "connection termination";
    int status = 503;
    switch (reason) {
    case LG_RESET_REMOTE_RESET:
        flag = "UR";
        why = "remote reset";
        break;
    case LG_RESET_PROTOCOL_ERROR:
        flag = "UPE";
        why = "protocol error";
        status = 502;
        break;
    case LG_RESET_OVERFLOW:
        flag = "UO";
        why = "overflow";
        break;
    default:
        break;
    }
    if (st->resp_started) {
        local_reply(st, status, NULL, flag, "upstream_reset_after_response_started");
        return;
    }
    if (reason == LG_RESET_REMOTE_RESET && grpc_deadline_passed(st)) {
        /* A gRPC server resets a call whose deadline passed (grpc-go sends RST_STREAM CANCEL): the
         * deadline ended it, so the caller gets DEADLINE_EXCEEDED, not UNAVAILABLE, whichever of
         * the reset and its own timer comes first. */
        st->finished = 1;
        lg_local_reply_t reply = {.status = 504, .body = "upstream request timeout", .flag = "UT",
                                  .details = "upstream_response_timeout", .grpc_status = 4};
        lg_filter_send_local_reply_ex(st->f, &reply);
        return;
    }
    fail_before_response(st, status, flag, why);
}

static void on_upstream_watermark(void *ctx, int above)
{
    router_state_t *st = ctx;
    /* The upstream cannot take the request body as fast as the client sends it. */
    lg_filter_read_disable(st->f, above);
}

static const lg_upstream_callbacks_t upstream_callbacks = {on_upstream_headers, on_upstream_data,
                                                           on_upstream_trailers, on_upstream_reset,
                                                           on_upstream_watermark};

/* ------------------------------------------------------------------------------------------- */
/* Pool events                                                                                 */
/* ------------------------------------------------------------------------------------------- */

static void on_pool_ready(void *ctx, lg_upstream_stream_t *stream, const lg_host_t *host)
{
    router_state_t *st = ctx;
    st->pool_req = NULL;
    st->up = stream;
    lg_stream_info_t *info = lg_filter_stream_info(st->f);
    info->upstream_host = host->addr;
    st->upstream_start_ns = now_ns();
    info->upstream_request_start_ns = st->upstream_start_ns;
    info->attempt_count = st->attempts;
    /* The virtual host's include_request_attempt_count: x-envoy-attempt-count on every attempt. */
    if (st->route->vhost != NULL && st->route->vhost->include_request_attempt_count) {
        char v[24];
        size_t vl = lg_u64_to_dec(v, st->attempts);
        lg_headers_remove(&st->req->headers, "x-envoy-attempt-count", 21);
        lg_headers_add_copy(lg_filter_pool(st->f), &st->req->headers, "x-envoy-attempt-count", 21, v, vl);
    }
    size_t pending = st->body != NULL ? st->body->size : 0;
    size_t resend = st->sent_body != NULL ? st->sent_body->size : 0;
    int end = st->req_end && pending == 0 && resend == 0 && st->trailers == NULL;
    stream->ops->encode_headers(stream, st->req, end);
    if (end)
        st->req_sent_end = 1;
    if (st->up != NULL && st->sent_body != NULL && st->sent_body->size != 0) {
        /* Another attempt: what the previous ones sent goes first. */
        int dend = st->req_end && pending == 0 && st->trailers == NULL;
        stream->ops->encode_data(stream, st->sent_body->bytes, st->sent_body->size, dend);
        if (dend)
            st->req_sent_end = 1;
    }
    if (st->up != NULL && pending != 0) {
        int dend = st->req_end && st->trailers == NULL;
        keep_sent(st, st->body->bytes, st->body->size);
        stream->ops->encode_data(stream, st->body->bytes, st->body->size, dend);
        if (dend)
            st->req_sent_end = 1;
    }
    if (st->body != NULL)
        h2o_buffer_dispose(&st->body);
    if (st->up != NULL && st->trailers != NULL) {
        stream->ops->encode_trailers(stream, st->trailers);
        st->req_sent_end = 1;
    }
    if (st->read_disabled) {
        st->read_disabled = 0;
        lg_filter_read_disable(st->f, 0);
    }
    if (st->retry != NULL && st->retry->per_try_timeout_ms != 0 && st->up != NULL) {
        lg_worker_t *w = lg_filter_worker(st->f);
        h2o_timeout_link(w->loop, lg_worker_timeout(w, st->retry->per_try_timeout_ms), &st->try_timer);
    }
}

/* A try took longer than per_try_timeout: another one if the policy allows, else 504 UT. */
static void on_try_timeout(h2o_timeout_entry_t *e)
{
    router_state_t *st = H2O_STRUCT_FROM_MEMBER(router_state_t, try_timer, e);
    lg_stats_inc(cells(st), st->cluster->stats->upstream_rq_per_try_timeout);
    upstream_done(st);
    if (can_retry(st, LG_RETRY_ON_5XX | LG_RETRY_ON_GATEWAY_ERROR | LG_RETRY_ON_RESET)) {
        schedule_retry(st);
        return;
    }
    h2o_timeout_unlink(&st->timer);
    local_reply(st, 504, "upstream request timeout", "UT", "upstream_per_try_timeout");
}

static void on_pool_failure(void *ctx, lg_reset_reason_t reason, const char *details)
{
    router_state_t *st = ctx;
    st->pool_req = NULL;
    h2o_timeout_unlink(&st->try_timer);
    if (reason != LG_RESET_OVERFLOW &&
        can_retry(st, LG_RETRY_ON_5XX | LG_RETRY_ON_GATEWAY_ERROR | LG_RETRY_ON_RESET | LG_RETRY_ON_CONNECT_FAILURE |
                          LG_RETRY_ON_RESET_BEFORE_REQUEST)) {
        schedule_retry(st);
        return;
    }
    h2o_timeout_unlink(&st->timer);
    const char *flag = "UF", *why = "connection failure";
    if (reason == LG_RESET_OVERFLOW) {
        flag = "UO";
        why = "overflow";
    } else if (reason == LG_RESET_CONNECT_TIMEOUT) {
        why = "connection timeout";
    }
    char tls_why[160];
    if (reason == LG_RESET_TLS_FAILURE) {
        snprintf(tls_why, sizeof(tls_why), "connection failure, transport failure reason: %s",
                 details != NULL ? details : "TLS error");
        why = tls_why;
    }
    fail_before_response(st, 503, flag, why);
}

static const lg_pool_callbacks_t pool_callbacks = {on_pool_ready, on_pool_failure};

static void on_timeout(h2o_timeout_entry_t *e)
{
    router_state_t *st = H2O_STRUCT_FROM_MEMBER(router_state_t, timer, e);
    lg_stats_inc(cells(st), st->cluster->stats->upstream_rq_timeout);
    h2o_timeout_unlink(&st->retry_timer);
    h2o_timeout_unlink(&st->try_timer);
    if (st->pool_req != NULL) {
        lg_pool_request_cancel(st->pool_req);
        st->pool_req = NULL;
    }
    upstream_done(st);
    local_reply(st, 504, "upstream request timeout", "UT", "upstream_response_timeout");
}

/* ------------------------------------------------------------------------------------------- */
/* Decoding                                                                                    */
/* ------------------------------------------------------------------------------------------- */

/* grpc-timeout: "<digits><unit>" with H M S m u n units, as the gRPC spec writes it. */
static int64_t parse_grpc_timeout(const h2o_iovec_t *v)
{
    if (v == NULL || v->len < 2 || v->len > 9)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i + 1 < v->len; ++i) {
        if (v->base[i] < '0' || v->base[i] > '9')
            return -1;
        n = n * 10 + (v->base[i] - '0');
    }
    switch (v->base[v->len - 1]) {
    case 'H': return n * 3600000;
    case 'M': return n * 60000;
    case 'S': return n * 1000;
    case 'm': return n;
    case 'u': return n / 1000;
    case 'n': return n / 1000000;
    default: return -1;
    }
}

static int64_t parse_ms(const h2o_iovec_t *v)
{
    if (v == NULL || v->len == 0 || v->len > 18)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < v->len; ++i) {
        if (v->base[i] < '0' || v->base[i] > '9')
            return -1;
        n = n * 10 + (v->base[i] - '0');
    }
    return n;
}

/* The route timeout, as Envoy derives it from the route, x-envoy-upstream-rq-timeout-ms and grpc-timeout. */
static void compute_timeout(router_state_t *st, lg_request_head_t *req, h2o_mem_pool_t *pool)
{
    const lg_route_t *r = st->route;
    int64_t t = (int64_t)r->timeout_ms;
    int64_t hdr = parse_ms(lg_headers_get(&req->headers, "x-envoy-upstream-rq-timeout-ms", 30));
    if (hdr >= 0)
        t = hdr;
    lg_headers_remove(&req->headers, "x-envoy-upstream-rq-timeout-ms", 30);
    int64_t max = r->grpc_timeout_header_max_ms >= 0 ? r->grpc_timeout_header_max_ms : r->max_grpc_timeout_ms;
    if (max >= 0) {
        int64_t g = parse_grpc_timeout(lg_headers_get(&req->headers, "grpc-timeout", 12));
        if (g >= 0) {
            if (max > 0 && g > max)
                g = max;
            int64_t off = r->grpc_timeout_header_offset_ms >= 0 ? r->grpc_timeout_header_offset_ms
                                                                 : (r->grpc_timeout_offset_ms > 0 ? r->grpc_timeout_offset_ms : 0);
            t = g > off ? g - off : g;
        } else {
            t = max > 0 ? max : 0; /* no grpc-timeout: max_stream_duration's max, 0 = none */
        }
    }
    st->timeout_ms = t > 0 ? (uint64_t)t : 0;
    if (st->timeout_ms != 0 && !st->config->suppress_envoy_headers) {
        char *v = h2o_mem_alloc_pool(pool, 24);
        size_t vl = lg_u64_to_dec(v, st->timeout_ms);
        lg_headers_set(pool, &req->headers, LG_LIT("x-envoy-expected-rq-timeout-ms"), h2o_iovec_init(v, vl));
    }
}

static void answer_direct(router_state_t *st, lg_request_head_t *req)
{
    h2o_mem_pool_t *pool = lg_filter_pool(st->f);
    const lg_route_t *r = st->route;
    lg_response_head_t *resp = h2o_mem_alloc_pool(pool, sizeof(*resp));
    memset(resp, 0, sizeof(*resp));
    st->finished = 1;
    if (r->action == LG_ROUTE_ACTION_REDIRECT) {
        resp->status = r->redirect.response_code;
        resp->content_length = 0;
        lg_headers_add(pool, &resp->headers, LG_LIT("location"), lg_route_redirect_location(r, req, pool));
        lg_headers_add(pool, &resp->headers, LG_LIT("content-length"), LG_LIT("0"));
    } else {
        char len[24];
        snprintf(len, sizeof(len), "%zu", r->direct_body.len);
        resp->status = r->direct_status;
        resp->content_length = (int64_t)r->direct_body.len;
        if (r->direct_body.len != 0)
            lg_headers_add(pool, &resp->headers, LG_LIT("content-type"), LG_LIT("text/plain"));
        lg_headers_add_copy(pool, &resp->headers, "content-length", 14, len, strlen(len));
    }
    lg_format_context_t fctx = {lg_filter_stream_info(st->f), req, resp};
    lg_route_apply_response_mutations(r, NULL, resp, &fctx, pool);
    int has_body = r->action == LG_ROUTE_ACTION_DIRECT_RESPONSE && r->direct_body.len != 0;
    lg_filter_encode_headers(st->f, resp, !has_body);
    if (has_body)
        lg_filter_encode_data(st->f, r->direct_body.base, r->direct_body.len, 1);
}

static lg_filter_headers_status_t decode_headers(lg_filter_t *f, lg_request_head_t *req, int end_stream)
{
    router_state_t *st = f->state;
    st->f = f;
    st->config = f->config;
    st->req = req;
    st->req_end = end_stream;
    st->timer.cb = on_timeout;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    lg_worker_t *w = lg_filter_worker(f);

    st->route = lg_filter_route(f);
    if (st->route == NULL) {
        local_reply(st, 404, "", "NR", "route_not_found");
        return LG_FILTER_HEADERS_STOP_ITERATION;
    }
    if (st->route->action != LG_ROUTE_ACTION_ROUTE) {
        answer_direct(st, req);
        return LG_FILTER_HEADERS_STOP_ITERATION;
    }
    st->wc = lg_route_pick_weighted_cluster(st->route, req, lg_worker_random(w));
    h2o_iovec_t name = lg_route_cluster_name(st->route, st->wc, req);
    const lg_snapshot_t *snap = lg_filter_snapshot(f);
    st->cluster = name.len != 0 ? lg_snapshot_find_cluster(snap, name.base, name.len) : NULL;
    if (st->cluster == NULL) {
        local_reply(st, st->route->cluster_not_found_code, "", "NC", "cluster_not_found");
        return LG_FILTER_HEADERS_STOP_ITERATION;
    }
    lg_stream_info_t *info = lg_filter_stream_info(f);
    info->upstream_cluster = st->cluster->name;
    info->route_name = st->route->name.base;
    st->cs = lg_worker_cluster_state(w, st->cluster);
    /* The hash is computed only for the policies that use it, before any rewrite of the request,
     * as Envoy computes it from the headers the router received. */
    if (st->cluster->lb_policy == LG_LB_RING_HASH || st->cluster->lb_policy == LG_LB_MAGLEV)
        st->lb_ctx.has_hash = lg_hash_policy_generate(st->route->hash_policies, st->route->n_hash_policies, req,
                                                      &info->downstream_remote, pool, &st->lb_ctx.hash);
    const lg_host_t *host = st->cs != NULL ? lg_cluster_pick_host(st->cs, &st->lb_ctx) : NULL;
    if (host == NULL) {
        lg_stats_inc(w->stats, st->cluster->stats->upstream_cx_none_healthy);
        local_reply(st, 503, "no healthy upstream", "UH", "no_healthy_upstream");
        return LG_FILTER_HEADERS_STOP_ITERATION;
    }
    lg_format_context_t fctx = {info, req, NULL};
    lg_route_finalize_request(st->route, st->wc, req, &fctx, pool, 0);
    if (st->route->host_rewrite == LG_HOST_REWRITE_AUTO && host->hostname != NULL)
        lg_route_set_authority(st->route, req, h2o_iovec_init(host->hostname, strlen(host->hostname)), pool);
    compute_timeout(st, req, pool);
    if (end_stream)
        start_timer(st);
    st->retry = st->route->retry_policy;
    st->try_timer.cb = on_try_timeout;
    ++st->attempts;
    st->pool_req = lg_conn_pool_new_stream(st->cs, host, pool, &upstream_callbacks, &pool_callbacks, st);
    return LG_FILTER_HEADERS_STOP_ITERATION;
}

/* Another attempt at the request, on a host picked anew. */
static void start_attempt(router_state_t *st)
{
    if (st->finished)
        return;
    st->req_sent_end = 0;
    const lg_host_t *host = lg_cluster_pick_host(st->cs, &st->lb_ctx);
    if (host == NULL) {
        local_reply(st, 503, "no healthy upstream", "UH", "no_healthy_upstream");
        return;
    }
    ++st->attempts;
    st->pool_req = lg_conn_pool_new_stream(st->cs, host, lg_filter_pool(st->f), &upstream_callbacks,
                                           &pool_callbacks, st);
}

static lg_filter_data_status_t decode_data(lg_filter_t *f, lg_data_t *data, int end_stream)
{
    router_state_t *st = f->state;
    if (st->finished)
        return LG_FILTER_DATA_STOP_NO_BUFFER;
    if (end_stream) {
        st->req_end = 1;
        start_timer(st);
    }
    if (st->up != NULL) {
        keep_sent(st, data->base, data->len);
        st->up->ops->encode_data(st->up, data->base, data->len, end_stream);
        if (end_stream)
            st->req_sent_end = 1;
        return LG_FILTER_DATA_STOP_NO_BUFFER;
    }
    if (st->body == NULL)
        h2o_buffer_init(&st->body, &h2o_socket_buffer_prototype);
    if (data->len != 0) {
        h2o_iovec_t r = h2o_buffer_reserve(&st->body, data->len);
        if (r.base == NULL)
            lg_fatal("out of memory");
        memcpy(r.base, data->base, data->len);
        st->body->size += data->len;
    }
    if (!st->read_disabled && st->cluster != NULL && st->body->size > st->cluster->per_connection_buffer_limit) {
        st->read_disabled = 1;
        lg_filter_read_disable(f, 1);
    }
    return LG_FILTER_DATA_STOP_NO_BUFFER;
}

static lg_filter_trailers_status_t decode_trailers(lg_filter_t *f, lg_headers_t *trailers)
{
    router_state_t *st = f->state;
    if (st->finished)
        return LG_FILTER_TRAILERS_STOP;
    st->req_end = 1;
    start_timer(st);
    st->trailers = trailers; /* kept for another attempt too */
    if (st->up != NULL) {
        st->up->ops->encode_trailers(st->up, trailers);
        st->req_sent_end = 1;
    }
    return LG_FILTER_TRAILERS_STOP;
}

static void on_destroy(lg_filter_t *f)
{
    router_state_t *st = f->state;
    if (st->f == NULL)
        return; /* never saw the request */
    h2o_timeout_unlink(&st->timer);
    h2o_timeout_unlink(&st->retry_timer);
    h2o_timeout_unlink(&st->try_timer);
    if (st->pool_req != NULL) {
        lg_pool_request_cancel(st->pool_req);
        st->pool_req = NULL;
    }
    upstream_done(st);
    if (st->body != NULL)
        h2o_buffer_dispose(&st->body);
    if (st->sent_body != NULL)
        h2o_buffer_dispose(&st->sent_body);
}

static void on_downstream_watermark(lg_filter_t *f, int above)
{
    router_state_t *st = f->state;
    lg_debug(router, "downstream %s its watermark: %s the upstream", above ? "above" : "below",
             above ? "pausing" : "resuming");
    if (st->up != NULL)
        st->up->ops->read_disable(st->up, above);
}

const lg_http_filter_ops_t lg_router_ops = {
    .name = "envoy.filters.http.router",
    .config_descriptor = &envoy__extensions__filters__http__router__v3__router__descriptor,
    .terminal = 1,
    .create_config = lg_router_create_config,
    .destroy_config = lg_router_destroy_config,
    .state_size = sizeof(router_state_t),
    .decode_headers = decode_headers,
    .decode_data = decode_data,
    .decode_trailers = decode_trailers,
    .on_destroy = on_destroy,
    .on_downstream_watermark = on_downstream_watermark,
};
