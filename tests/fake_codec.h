/*
 * A fake downstream codec stream for unit tests that drive the connection manager: it records
 * what would reach the client (the response head, body bytes, end flags, trailers, reset,
 * release) instead of writing it. Header-only; the body buffer grows with what arrives and is
 * freed by fake_codec_dispose. Also the connection and request head such a test needs.
 */
#ifndef LG_TESTS_FAKE_CODEC_H
#define LG_TESTS_FAKE_CODEC_H

#include <stdlib.h>
#include <string.h>

#include "conn_manager.h"
#include "worker.h"

typedef struct st_fake_codec_t {
    lg_server_stream_t super;
    lg_response_head_t head; /* shallow copy: strings live in the stream's pool */
    int status, head_end, data_end, trailers, reset, released;
    char *body;
    size_t body_len;
    char grpc_status[8];
    char extra[64]; /* the x-extra response header, copied (the head's strings die with the stream) */
} fake_codec_t;

static void fc_encode_headers(lg_server_stream_t *s, const lg_response_head_t *head, int end_stream)
{
    fake_codec_t *c = (fake_codec_t *)s;
    c->head = *head;
    c->status = head->status;
    c->head_end = end_stream;
    const h2o_iovec_t *g = lg_headers_get(&head->headers, "grpc-status", 11);
    if (g != NULL && g->len < sizeof(c->grpc_status))
        memcpy(c->grpc_status, g->base, g->len);
    const h2o_iovec_t *x = lg_headers_get(&head->headers, "x-extra", 7);
    if (x != NULL && x->len < sizeof(c->extra))
        memcpy(c->extra, x->base, x->len);
}
static void fc_encode_data(lg_server_stream_t *s, const void *data, size_t len, int end_stream)
{
    fake_codec_t *c = (fake_codec_t *)s;
    char *b = realloc(c->body, c->body_len + len + 1);
    if (b == NULL)
        abort();
    c->body = b;
    memcpy(c->body + c->body_len, data, len);
    c->body_len += len;
    c->data_end = end_stream;
}
static void fc_encode_trailers(lg_server_stream_t *s, const lg_headers_t *t)
{
    ((fake_codec_t *)s)->trailers = 1;
}
static void fc_reset(lg_server_stream_t *s)
{
    ((fake_codec_t *)s)->reset = 1;
}
static void fc_read_disable(lg_server_stream_t *s, int d)
{
}
static size_t fc_buffered(lg_server_stream_t *s)
{
    return 0;
}
static void fc_release(lg_server_stream_t *s)
{
    ((fake_codec_t *)s)->released = 1;
}
static const lg_server_stream_ops_t fc_ops = {fc_encode_headers, fc_encode_data, fc_encode_trailers, fc_reset,
                                              fc_read_disable, fc_buffered, fc_release};

/** Readies fc to be given to lg_hcm_stream_new. */
static inline void fake_codec_init(fake_codec_t *fc)
{
    memset(fc, 0, sizeof(*fc));
    fc->super.ops = &fc_ops;
}

static inline void fake_codec_dispose(fake_codec_t *fc)
{
    free(fc->body);
    fc->body = NULL;
}

/** A connection with what lg_hcm_stream_new reads; the caller free()s it. */
static inline lg_hcm_conn_t *fake_conn_new(struct st_lg_worker_t *w, lg_snapshot_t *snap, const lg_listener_t *l,
                                           const lg_filter_chain_t *chain, const lg_hcm_config_t *cfg)
{
    lg_hcm_conn_t *conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        abort();
    conn->worker = w;
    conn->snapshot = snap;
    conn->listener = l;
    conn->chain = chain;
    conn->config = cfg;
    h2o_linklist_init_anchor(&conn->streams);
    return conn;
}

/* What a test program's fake connections share: the worker, the connection manager config (its
 * filters set by the test), the listener, the chain and one snapshot reference. */
typedef struct st_fake_hcm_t {
    lg_worker_t worker;
    lg_hcm_config_t config;
    lg_listener_t listener;
    lg_filter_chain_t chain;
    lg_snapshot_t snapshot;
} fake_hcm_t;

/** Readies h: an event loop, stats cells, the HCM stats and the snapshot reference. */
static inline void fake_hcm_init(fake_hcm_t *h)
{
    h->worker.loop = h2o_evloop_create();
    h->worker.stats = lg_stats_cells_new();
    h2o_linklist_init_anchor(&h->worker.connections);
    h->worker.rng = 42;
    h->config.stats = lg_hcm_stats_for("test");
    h->config.server_name = "envoy";
    atomic_init(&h->snapshot.refcnt, 1);
}

static inline void fake_hcm_dispose(fake_hcm_t *h)
{
    free((void *)h->config.stats);
    free(h->worker.stats);
    h2o_evloop_destroy(h->worker.loop);
}

/** A connection of h (free() it) whose streams run `n` filters of `entries`. */
static inline lg_hcm_conn_t *fake_hcm_conn(fake_hcm_t *h, lg_filter_factory_entry_t *entries, size_t n)
{
    h->config.filters = entries;
    h->config.n_filters = n;
    return fake_conn_new(&h->worker, &h->snapshot, &h->listener, &h->chain, &h->config);
}

/** A request head for "<method> / HTTP/1.1" to host x, with no length yet, in the stream's pool. */
static inline lg_request_head_t *fake_request(lg_stream_t *s, const char *method)
{
    lg_request_head_t *req = h2o_mem_alloc_pool(lg_stream_pool(s), sizeof(*req));
    memset(req, 0, sizeof(*req));
    req->method = h2o_iovec_init(method, strlen(method));
    req->path = LG_LIT("/");
    req->authority = LG_LIT("x");
    req->version = LG_HTTP_11;
    req->content_length = -1;
    return req;
}

#endif
