/*
 * The in-loop async client: see async_client.h.
 *
 * A request owns a memory pool (its head and the response head live there), copies of the
 * request body and of the response body, and two timer entries: the overall timeout and the 0 ms
 * deferral through which every ending is delivered, so the callback never runs inside the caller's
 * stack. Ending: the timers are unlinked, the pool wait cancelled, the upstream stream released
 * (both directions complete) or reset, then the callback runs and the request is freed.
 */
#include "async_client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "upstream_pool.h"
#include "worker.h"
#include "xalloc.h"

struct st_lg_async_request_t {
    lg_worker_t *w;
    h2o_mem_pool_t pool;
    lg_request_head_t head;
    char *req_body;
    size_t req_len;
    lg_pool_request_t *pool_req;
    lg_upstream_stream_t *up;
    lg_response_head_t *resp;
    h2o_buffer_t *resp_body;
    lg_headers_t *trailers;
    size_t max_resp;
    h2o_timeout_entry_t timer, defer;
    const char *error;
    unsigned sent_end : 1, resp_end : 1, ending : 1;
    lg_async_http_cb cb;
    void *ctx;
    /* gRPC unary calls */
    lg_async_grpc_cb gcb;
    void *gctx;
};

static void request_free(lg_async_request_t *r)
{
    h2o_timeout_unlink(&r->timer);
    h2o_timeout_unlink(&r->defer);
    if (r->pool_req != NULL)
        lg_pool_request_cancel(r->pool_req);
    if (r->up != NULL) {
        if (r->sent_end && r->resp_end)
            r->up->ops->release(r->up);
        else
            r->up->ops->reset(r->up);
    }
    if (r->resp_body != NULL)
        h2o_buffer_dispose(&r->resp_body);
    free(r->req_body);
    h2o_mem_clear_pool(&r->pool);
    free(r);
}

static void on_defer(h2o_timeout_entry_t *e)
{
    lg_async_request_t *r = H2O_STRUCT_FROM_MEMBER(lg_async_request_t, defer, e);
    /* The upstream side is given back first: the callback may start another request on it. */
    if (r->pool_req != NULL) {
        lg_pool_request_cancel(r->pool_req);
        r->pool_req = NULL;
    }
    if (r->up != NULL) {
        if (r->sent_end && r->resp_end)
            r->up->ops->release(r->up);
        else
            r->up->ops->reset(r->up);
        r->up = NULL;
    }
    if (r->error == NULL && r->resp != NULL) {
        lg_async_response_t resp = {r->resp, r->resp_body != NULL ? r->resp_body->bytes : "",
                                    r->resp_body != NULL ? r->resp_body->size : 0, r->trailers};
        r->cb(r->ctx, &resp, NULL);
    } else {
        r->cb(r->ctx, NULL, r->error != NULL ? r->error : "reset");
    }
    request_free(r);
}

/* Ends the request with `error` (NULL: the response is complete); the callback follows from the loop. */
static void finish(lg_async_request_t *r, const char *error)
{
    if (r->ending)
        return;
    r->ending = 1;
    r->error = error;
    h2o_timeout_unlink(&r->timer);
    h2o_timeout_link(r->w->loop, lg_worker_timeout(r->w, 0), &r->defer);
}

static void on_timeout(h2o_timeout_entry_t *e)
{
    finish(H2O_STRUCT_FROM_MEMBER(lg_async_request_t, timer, e), "timeout");
}

/* ---- upstream stream events ------------------------------------------------------------------- */

static void on_headers(void *ctx, lg_response_head_t *head, int end_stream)
{
    lg_async_request_t *r = ctx;
    r->resp = head;
    if (end_stream) {
        r->resp_end = 1;
        finish(r, NULL);
    }
}

static void on_data(void *ctx, const void *data, size_t len, int end_stream)
{
    lg_async_request_t *r = ctx;
    if (r->ending)
        return;
    if (len != 0) {
        if (r->resp_body == NULL)
            h2o_buffer_init(&r->resp_body, &h2o_socket_buffer_prototype);
        if (r->resp_body->size + len > r->max_resp) {
            finish(r, "response_too_large");
            return;
        }
        h2o_iovec_t dst = h2o_buffer_reserve(&r->resp_body, len);
        if (dst.base == NULL)
            lg_fatal("out of memory");
        memcpy(dst.base, data, len);
        r->resp_body->size += len;
    }
    if (end_stream) {
        r->resp_end = 1;
        finish(r, NULL);
    }
}

static void on_trailers(void *ctx, lg_headers_t *trailers)
{
    lg_async_request_t *r = ctx;
    if (r->ending)
        return;
    r->trailers = h2o_mem_alloc_pool(&r->pool, sizeof(*r->trailers));
    memset(r->trailers, 0, sizeof(*r->trailers));
    lg_headers_copy(&r->pool, r->trailers, trailers);
    r->resp_end = 1;
    finish(r, NULL);
}

static void on_reset(void *ctx, lg_reset_reason_t reason, int request_sent)
{
    lg_async_request_t *r = ctx;
    lg_upstream_stream_t *up = r->up;
    r->up = NULL;
    if (up != NULL)
        up->ops->release(up); /* after a reset only the release may follow */
    finish(r, "reset");
}

static void on_watermark(void *ctx, int above)
{
    /* The whole request is handed over at once: nothing to pause. */
}

static const lg_upstream_callbacks_t upstream_cbs = {on_headers, on_data, on_trailers, on_reset, on_watermark};

static void on_pool_ready(void *ctx, lg_upstream_stream_t *stream, const lg_host_t *host)
{
    lg_async_request_t *r = ctx;
    r->pool_req = NULL;
    r->up = stream;
    int end = r->req_len == 0;
    stream->ops->encode_headers(stream, &r->head, end);
    if (!end)
        stream->ops->encode_data(stream, r->req_body, r->req_len, 1);
    r->sent_end = 1;
}

static void on_pool_failure(void *ctx, lg_reset_reason_t reason, const char *details)
{
    lg_async_request_t *r = ctx;
    r->pool_req = NULL;
    finish(r, reason == LG_RESET_OVERFLOW ? "overflow" : "connection_failure");
}

static const lg_pool_callbacks_t pool_cbs = {on_pool_ready, on_pool_failure};

/* ---- HTTP -------------------------------------------------------------------------------------- */

lg_async_request_t *lg_async_http_send(lg_worker_t *w, const char *cluster, const lg_request_head_t *head,
                                       const void *body, size_t body_len, uint64_t timeout_ms,
                                       size_t max_response_bytes, lg_async_http_cb cb, void *ctx)
{
    lg_async_request_t *r = lg_xcalloc(1, sizeof(*r));
    r->w = w;
    r->cb = cb;
    r->ctx = ctx;
    r->max_resp = max_response_bytes;
    r->timer.cb = on_timeout;
    r->defer.cb = on_defer;
    h2o_mem_init_pool(&r->pool);
    r->head = *head;
    memset(&r->head.headers, 0, sizeof(r->head.headers));
    lg_headers_copy(&r->pool, &r->head.headers, &head->headers);
    r->head.method = h2o_strdup(&r->pool, head->method.base, head->method.len);
    r->head.scheme = h2o_strdup(&r->pool, head->scheme.base, head->scheme.len);
    r->head.authority = h2o_strdup(&r->pool, head->authority.base, head->authority.len);
    r->head.path = h2o_strdup(&r->pool, head->path.base, head->path.len);
    r->head.content_length = (int64_t)body_len;
    if (body_len != 0) {
        r->req_body = malloc(body_len);
        if (r->req_body == NULL)
            lg_fatal("out of memory");
        memcpy(r->req_body, body, body_len);
        r->req_len = body_len;
    }
    const lg_cluster_t *c = w->snapshot != NULL ? lg_snapshot_find_cluster(w->snapshot, cluster, strlen(cluster)) : NULL;
    lg_cluster_state_t *cs = c != NULL ? lg_worker_cluster_state(w, c) : NULL;
    if (cs == NULL) {
        finish(r, "cluster_not_found");
        return r;
    }
    const lg_host_t *host = lg_cluster_pick_host(cs, NULL);
    if (host == NULL) {
        lg_stats_inc(w->stats, c->stats->upstream_cx_none_healthy);
        finish(r, "no_healthy_upstream");
        return r;
    }
    if (timeout_ms != 0)
        h2o_timeout_link(w->loop, lg_worker_timeout(w, timeout_ms), &r->timer);
    r->pool_req = lg_conn_pool_new_stream(cs, host, &r->pool, &upstream_cbs, &pool_cbs, r);
    return r;
}

void lg_async_cancel(lg_async_request_t *r)
{
    request_free(r);
}

/* ---- gRPC unary -------------------------------------------------------------------------------- */

static int header_int(const lg_headers_t *h, const char *name, int dflt)
{
    const h2o_iovec_t *v = h != NULL ? lg_headers_get(h, name, strlen(name)) : NULL;
    if (v == NULL || v->len == 0 || v->len > 9)
        return dflt;
    int n = 0;
    for (size_t i = 0; i < v->len; ++i) {
        if (v->base[i] < '0' || v->base[i] > '9')
            return dflt;
        n = n * 10 + (v->base[i] - '0');
    }
    return n;
}

static void on_grpc_response(void *ctx, const lg_async_response_t *resp, const char *error)
{
    lg_async_request_t *r = ctx; /* still alive: the callback runs before the request is freed */
    if (resp == NULL) {
        r->gcb(r->gctx, -1, NULL, 0, error);
        return;
    }
    /* grpc-status from the trailers, or from the head of a trailers-only response */
    int status = header_int(resp->trailers, "grpc-status", -1);
    if (status < 0)
        status = header_int(&resp->head->headers, "grpc-status", -1);
    if (resp->head->status != 200 || status < 0) {
        r->gcb(r->gctx, -1, NULL, 0, "bad_response");
        return;
    }
    if (status != 0) {
        r->gcb(r->gctx, status, NULL, 0, NULL);
        return;
    }
    const uint8_t *b = (const uint8_t *)resp->body;
    if (resp->body_len < 5 || b[0] != 0) { /* compressed messages are never asked for */
        r->gcb(r->gctx, -1, NULL, 0, "bad_response");
        return;
    }
    uint32_t len = (uint32_t)b[1] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 8 | b[4];
    if (len != resp->body_len - 5) {
        r->gcb(r->gctx, -1, NULL, 0, "bad_response");
        return;
    }
    r->gcb(r->gctx, 0, b + 5, len, NULL);
}

#define GRPC_MAX_RESPONSE (4u << 20)

lg_async_request_t *lg_async_grpc_unary(lg_worker_t *w, const char *cluster, const char *authority,
                                        const char *path, const ProtobufCMessage *request, uint64_t timeout_ms,
                                        lg_async_grpc_cb cb, void *ctx)
{
    size_t n = protobuf_c_message_get_packed_size(request);
    uint8_t *frame = lg_xcalloc(1, 5 + n);
    frame[1] = (uint8_t)(n >> 24);
    frame[2] = (uint8_t)(n >> 16);
    frame[3] = (uint8_t)(n >> 8);
    frame[4] = (uint8_t)n;
    protobuf_c_message_pack(request, frame + 5);
    h2o_mem_pool_t tmp;
    h2o_mem_init_pool(&tmp);
    lg_request_head_t head = {.method = h2o_iovec_init(H2O_STRLIT("POST")),
                              .scheme = h2o_iovec_init(H2O_STRLIT("http")),
                              .path = h2o_iovec_init(path, strlen(path)),
                              .version = LG_HTTP_2};
    const char *auth = authority != NULL ? authority : cluster;
    head.authority = h2o_iovec_init(auth, strlen(auth));
    lg_headers_add(&tmp, &head.headers, h2o_iovec_init(H2O_STRLIT("content-type")),
                   h2o_iovec_init(H2O_STRLIT("application/grpc")));
    lg_headers_add(&tmp, &head.headers, h2o_iovec_init(H2O_STRLIT("te")), h2o_iovec_init(H2O_STRLIT("trailers")));
    if (timeout_ms != 0) {
        char t[32];
        int tl = snprintf(t, sizeof(t), "%" PRIu64 "m", timeout_ms);
        lg_headers_add_copy(&tmp, &head.headers, "grpc-timeout", 12, t, (size_t)tl);
    }
    lg_async_request_t *r = lg_async_http_send(w, cluster, &head, frame, 5 + n, timeout_ms, GRPC_MAX_RESPONSE,
                                               on_grpc_response, NULL);
    r->ctx = r;
    r->gcb = cb;
    r->gctx = ctx;
    h2o_mem_clear_pool(&tmp);
    free(frame);
    return r;
}
