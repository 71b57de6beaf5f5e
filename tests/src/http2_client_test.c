/*
 * Tests for src/http2_client.c: the upstream HTTP/2 codec on one end of a socketpair, a plain
 * nghttp2 server (http2_test_peer.h) on the other, both in this test's h2o loop, with a fake
 * router (lg_upstream_callbacks_t recording every event) and a fake pool (the owner callbacks).
 * The peer answers by path:
 *   /echo        200, the request body echoed, request trailers answered with trailers
 *   /hold        nothing until the test acts
 *   /refuse      RST_STREAM REFUSED_STREAM
 *   /badstatus   a response head with ":status: abc"
 *   /bigheaders  a response head with 101 fields
 *   /continue    100, then 200 with a body
 *   /big         200 and 2 MB
 *   /trailers    200, 10 bytes, trailers
 * One more test runs the codec against the nghttpd binary (--echo-upload --trailer) over loopback.
 *
 * Covered: concurrent streams, a 10 MB echo through 16 KiB windows both ways with request-side
 * watermarks, trailers both ways (also without a body), GOAWAY making streams above its last id
 * fail retriably (request_sent 0) and the connection close once the rest finished, REFUSED_STREAM,
 * server RST_STREAM, bad :status, response header limits, 1xx skipped, the server's
 * MAX_CONCURRENT_STREAMS with on_capacity, read_disable closing the window, close() and server
 * disconnect resetting streams, graceful shutdown, router resets (before and after the request
 * was sent).
 */
#include "http2_client.h"
#include "lg_test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http2_test_peer.h"

static h2o_evloop_t *loop;
static h2o_timeout_t zero_to;
static tp_peer_t peer;
static lg_client_conn_t *conn;

/* ---- the fake pool (owner) ------------------------------------------------------------------- */

static int capacity_calls, closed_calls;

static void owner_on_capacity(void *ctx, lg_client_conn_t *c)
{
    ++capacity_calls;
}

static void owner_on_closed(void *ctx, lg_client_conn_t *c)
{
    ++closed_calls;
    conn = NULL;
}

static const lg_client_conn_owner_t owner = {owner_on_capacity, owner_on_closed};

/* ---- the fake router ------------------------------------------------------------------------- */

typedef struct st_req_t {
    h2o_mem_pool_t pool;
    lg_upstream_stream_t *us;
    int got_headers, status, headers_end;
    char head[1024];
    size_t body;
    uint64_t seed;
    int check, body_bad;
    int end, got_trailers;
    char trailers[512];
    int reset, request_sent;
    lg_reset_reason_t reason;
    int above, below;
    int disable_on_headers;
    int released;
} req_t;

#define MAX_REQS 64
static req_t *reqs[MAX_REQS];
static size_t n_reqs;

static void r_on_headers(void *ctx, lg_response_head_t *head, int end_stream)
{
    req_t *r = ctx;
    r->got_headers = 1;
    r->status = head->status;
    r->headers_end = end_stream;
    if (end_stream)
        r->end = 1;
    for (size_t i = 0; i < head->headers.size; ++i) {
        size_t l = strlen(r->head);
        snprintf(r->head + l, sizeof(r->head) - l, "%.*s: %.*s\n", (int)head->headers.entries[i].name.len,
                 head->headers.entries[i].name.base, (int)head->headers.entries[i].value.len,
                 head->headers.entries[i].value.base);
    }
    if (r->disable_on_headers)
        r->us->ops->read_disable(r->us, 1);
}

static void r_on_data(void *ctx, const void *data, size_t len, int end_stream)
{
    req_t *r = ctx;
    if (r->check && !r->body_bad)
        for (size_t i = 0; i < len; ++i)
            if (((const uint8_t *)data)[i] != tp_byte(r->seed, r->body + i)) {
                r->body_bad = 1;
                break;
            }
    r->body += len;
    if (end_stream)
        r->end = 1;
}

static void r_on_trailers(void *ctx, lg_headers_t *t)
{
    req_t *r = ctx;
    r->got_trailers = 1;
    r->end = 1;
    for (size_t i = 0; i < t->size; ++i) {
        size_t l = strlen(r->trailers);
        snprintf(r->trailers + l, sizeof(r->trailers) - l, "%.*s: %.*s\n", (int)t->entries[i].name.len,
                 t->entries[i].name.base, (int)t->entries[i].value.len, t->entries[i].value.base);
    }
}

static void r_on_reset(void *ctx, lg_reset_reason_t reason, int request_sent)
{
    req_t *r = ctx;
    r->reset = 1;
    r->reason = reason;
    r->request_sent = request_sent;
}

static void r_on_watermark(void *ctx, int above)
{
    req_t *r = ctx;
    if (above)
        ++r->above;
    else
        ++r->below;
}

static const lg_upstream_callbacks_t router_cbs = {r_on_headers, r_on_data, r_on_trailers, r_on_reset, r_on_watermark};

static req_t *new_req(void)
{
    req_t *r = calloc(1, sizeof(*r));
    h2o_mem_init_pool(&r->pool);
    reqs[n_reqs++] = r;
    r->us = conn->ops->new_stream(conn, &r->pool, &router_cbs, r);
    return r;
}

/* Sends a request: `body_len` pattern bytes (seed `seed`) in two halves, optional trailers. */
static req_t *send_req(const char *method, const char *path, size_t body_len, uint64_t seed, int trailers)
{
    req_t *r = new_req();
    if (r->us == NULL)
        return r;
    lg_request_head_t head;
    memset(&head, 0, sizeof(head));
    head.method = h2o_iovec_init(method, strlen(method));
    head.scheme = h2o_iovec_init(H2O_STRLIT("http"));
    head.authority = h2o_iovec_init(H2O_STRLIT("upstream.local"));
    head.path = h2o_iovec_init(path, strlen(path));
    head.version = LG_HTTP_11;
    head.content_length = -1;
    lg_headers_add(&r->pool, &head.headers, LG_LIT("x-test"), LG_LIT("1"));
    /* connection-specific fields an HTTP/1.1 client may have sent */
    lg_headers_add(&r->pool, &head.headers, LG_LIT("connection"), LG_LIT("keep-alive"));
    lg_headers_add(&r->pool, &head.headers, LG_LIT("transfer-encoding"), LG_LIT("chunked"));
    lg_headers_add(&r->pool, &head.headers, LG_LIT("te"), LG_LIT("gzip"));
    lg_headers_add(&r->pool, &head.headers, LG_LIT("host"), LG_LIT("upstream.local"));
    int end = body_len == 0 && !trailers;
    r->us->ops->encode_headers(r->us, &head, end);
    if (body_len != 0) {
        uint8_t *b = malloc(body_len);
        for (size_t i = 0; i < body_len; ++i)
            b[i] = tp_byte(seed, i);
        r->us->ops->encode_data(r->us, b, body_len / 2, 0);
        r->us->ops->encode_data(r->us, b + body_len / 2, body_len - body_len / 2, !trailers);
        free(b);
    }
    if (trailers) {
        lg_headers_t *t = h2o_mem_alloc_pool(&r->pool, sizeof(*t));
        memset(t, 0, sizeof(*t));
        lg_headers_add(&r->pool, t, LG_LIT("x-req-trailer"), LG_LIT("1"));
        r->us->ops->encode_trailers(r->us, t);
    }
    return r;
}

/* Whether every request ended (response complete or reset). */
static int all_ended(req_t **r, int n)
{
    for (int i = 0; i < n; ++i)
        if (!r[i]->end && !r[i]->reset)
            return 0;
    return 1;
}

static void release(req_t *r)
{
    if (!r->released && r->us != NULL) {
        r->released = 1;
        r->us->ops->release(r->us);
    }
}

/* ---- the peer's answers ---------------------------------------------------------------------- */

static int path_is(tp_stream_t *s, const char *p)
{
    return strcmp(s->path, p) == 0;
}

static void peer_on_request(tp_peer_t *p, tp_stream_t *s, int end_stream)
{
    static const uint8_t st200[] = "200";
    if (path_is(s, "/echo")) {
        s->respond_trailers_on_request_trailers = 1;
        tp_respond_echo(p, s, NULL, 0);
    } else if (path_is(s, "/refuse")) {
        nghttp2_submit_rst_stream(p->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_REFUSED_STREAM);
    } else if (path_is(s, "/badstatus")) {
        nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"abc", 7, 3, 0}};
        nghttp2_submit_response(p->session, s->id, nv, 1, NULL);
    } else if (path_is(s, "/bigheaders")) {
        static char names[101][16];
        nghttp2_nv nv[102];
        nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)st200, 7, 3, 0};
        for (int i = 0; i < 101; ++i) {
            snprintf(names[i], sizeof(names[i]), "x-h%d", i);
            nv[i + 1] = (nghttp2_nv){(uint8_t *)names[i], (uint8_t *)"v", strlen(names[i]), 1, 0};
        }
        nghttp2_submit_response(p->session, s->id, nv, 102, NULL);
    } else if (path_is(s, "/continue")) {
        nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"100", 7, 3, 0}};
        nghttp2_submit_headers(p->session, NGHTTP2_FLAG_NONE, s->id, NULL, nv, 1, NULL);
        tp_respond(p, s, "200", 1000, 11);
    } else if (path_is(s, "/big")) {
        tp_respond(p, s, "200", 2 * 1024 * 1024, 5);
    } else if (path_is(s, "/trailers")) {
        static const uint8_t n[] = "grpc-status", v[] = "0";
        s->send_trailers[0] = (nghttp2_nv){(uint8_t *)n, (uint8_t *)v, sizeof(n) - 1, sizeof(v) - 1, 0};
        s->n_send_trailers = 1;
        tp_respond(p, s, "200", 10, 12);
    }
}

/* ---- per-test setup -------------------------------------------------------------------------- */

static lg_http2_client_settings_t defaults(void)
{
    lg_http2_client_settings_t s;
    lg_http2_client_settings_init(&s);
    s.zero_timeout = &zero_to;
    return s;
}

static void start(const lg_http2_client_settings_t *s, const nghttp2_settings_entry *iv, size_t niv)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    capacity_calls = closed_calls = 0;
    conn = lg_http2_client_conn_new(h2o_evloop_socket_create(loop, sv[0], 0), s, &owner, NULL);
    tp_init(&peer, loop, sv[1], 1, iv, niv);
    peer.on_request = peer_on_request;
    /* the server's SETTINGS are in (the codec reports capacity on them) */
    TP_WAIT(loop, capacity_calls != 0, 5000);
}

static void finish_test(void)
{
    for (size_t i = 0; i < n_reqs; ++i)
        if (!reqs[i]->reset)
            release(reqs[i]);
    if (conn != NULL)
        conn->ops->close(conn);
    LG_EXPECT(conn == NULL);
    LG_EXPECT_INT(closed_calls, 1);
    tp_free(&peer);
    for (size_t i = 0; i < n_reqs; ++i) {
        h2o_mem_clear_pool(&reqs[i]->pool);
        free(reqs[i]);
    }
    n_reqs = 0;
    h2o_evloop_run(loop, 0);
}

/* ---- tests ----------------------------------------------------------------------------------- */

LG_TEST(test_concurrent_streams)
{
    lg_http2_client_settings_t s = defaults();
    start(&s, NULL, 0);
    req_t *r[10];
    for (int i = 0; i < 10; ++i) {
        r[i] = i % 2 == 0 ? send_req("POST", "/echo", 300000 + (size_t)i, (uint64_t)i, 0) : send_req("GET", "/big", 0, 0, 0);
        r[i]->check = 1;
        r[i]->seed = i % 2 == 0 ? (uint64_t)i : 5;
    }
    LG_EXPECT_INT(conn->ops->active_streams(conn), 10);
    TP_WAIT(loop, all_ended(r, 10), 10000);
    for (int i = 0; i < 10; ++i) {
        LG_EXPECT_INT(r[i]->status, 200);
        LG_EXPECT_INT(r[i]->body, i % 2 == 0 ? 300000 + (size_t)i : 2 * 1024 * 1024);
        LG_EXPECT(!r[i]->body_bad);
        LG_EXPECT(!r[i]->reset);
        release(r[i]);
    }
    /* what the server saw: pseudo-headers right, connection-specific fields gone */
    tp_stream_t *ps = tp_stream(&peer, 1);
    LG_EXPECT_STR(ps->method, "POST");
    LG_EXPECT_STR(ps->path, "/echo");
    LG_EXPECT_STR(ps->authority, "upstream.local");
    LG_EXPECT_CONTAINS(ps->head, "x-test: 1");
    LG_EXPECT(strstr(ps->head, "connection") == NULL);
    LG_EXPECT(strstr(ps->head, "transfer-encoding") == NULL);
    LG_EXPECT(strstr(ps->head, "te:") == NULL);
    LG_EXPECT(strstr(ps->head, "host") == NULL);
    TP_WAIT(loop, conn->ops->active_streams(conn) == 0, 5000);
    LG_EXPECT_INT(conn->ops->active_streams(conn), 0);
    finish_test();
}

LG_TEST(test_echo_10mb_small_windows)
{
    lg_http2_client_settings_t s = defaults();
    s.initial_stream_window_size = 16384;
    s.initial_connection_window_size = 65535;
    /* the server's receive window is small too */
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 16384}};
    start(&s, iv, 1);
    size_t len = 10 * 1024 * 1024;
    req_t *r = send_req("POST", "/echo", len, 21, 0);
    r->check = 1;
    r->seed = 21;
    LG_EXPECT_INT(r->above, 0); /* never from inside the op */
    TP_WAIT(loop, r->end, 60000);
    LG_EXPECT(r->end);
    LG_EXPECT_INT(r->status, 200);
    LG_EXPECT_INT(r->body, len);
    LG_EXPECT(!r->body_bad);
    LG_EXPECT_INT(tp_stream(&peer, 1)->body_len, len);
    /* 10 MB queued at once: above the 1 MiB watermark, then below once sent */
    LG_EXPECT_INT(r->above, 1);
    LG_EXPECT_INT(r->below, 1);
    release(r);
    finish_test();
}

LG_TEST(test_trailers_both_ways)
{
    lg_http2_client_settings_t s = defaults();
    start(&s, NULL, 0);
    req_t *a = send_req("POST", "/echo", 50000, 1, 1);
    a->check = 1;
    a->seed = 1;
    req_t *b = send_req("POST", "/echo", 0, 2, 1); /* trailers, no body */
    req_t *c = send_req("GET", "/trailers", 0, 0, 0);
    c->check = 1;
    c->seed = 12;
    TP_WAIT(loop, a->end && b->end && c->end, 5000);
    LG_EXPECT(a->got_trailers);
    LG_EXPECT_CONTAINS(a->trailers, "x-echo-trailers: yes");
    LG_EXPECT_INT(a->body, 50000);
    LG_EXPECT(!a->body_bad);
    LG_EXPECT_CONTAINS(tp_stream(&peer, 1)->trailers, "x-req-trailer: 1");
    LG_EXPECT(b->got_trailers);
    LG_EXPECT_INT(b->body, 0);
    LG_EXPECT_CONTAINS(tp_stream(&peer, 3)->trailers, "x-req-trailer: 1");
    LG_EXPECT_INT(tp_stream(&peer, 3)->body_len, 0);
    LG_EXPECT(c->got_trailers);
    LG_EXPECT_CONTAINS(c->trailers, "grpc-status: 0");
    LG_EXPECT_INT(c->body, 10);
    LG_EXPECT(!c->body_bad);
    finish_test();
}

LG_TEST(test_goaway_makes_later_streams_retriable)
{
    lg_http2_client_settings_t s = defaults();
    start(&s, NULL, 0);
    req_t *r[3];
    for (int i = 0; i < 3; ++i)
        r[i] = send_req("GET", "/hold", 0, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, 5)->got_head, 5000);
    nghttp2_submit_goaway(peer.session, NGHTTP2_FLAG_NONE, 1, NGHTTP2_NO_ERROR, NULL, 0);
    tp_respond(&peer, tp_stream(&peer, 1), "200", 100, 3);
    tp_flush(&peer);
    TP_WAIT(loop, r[0]->end && r[1]->reset && r[2]->reset, 5000);
    LG_EXPECT_INT(r[0]->status, 200);
    LG_EXPECT_INT(r[0]->body, 100);
    for (int i = 1; i < 3; ++i) {
        LG_EXPECT(r[i]->reset);
        LG_EXPECT_INT(r[i]->reason, LG_RESET_REMOTE_RESET);
        LG_EXPECT_INT(r[i]->request_sent, 0);
    }
    /* the connection ends once nothing is left on it */
    TP_WAIT(loop, closed_calls == 1, 5000);
    LG_EXPECT_INT(closed_calls, 1);
    LG_EXPECT(conn == NULL);
    for (int i = 0; i < 3; ++i)
        release(r[i]); /* after the end: harmless */
    finish_test();
}

LG_TEST(test_goaway_blocks_new_streams)
{
    lg_http2_client_settings_t s = defaults();
    start(&s, NULL, 0);
    req_t *a = send_req("GET", "/hold", 0, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, 1)->got_head, 5000);
    nghttp2_submit_goaway(peer.session, NGHTTP2_FLAG_NONE, 1, NGHTTP2_NO_ERROR, NULL, 0);
    tp_flush(&peer);
    TP_WAIT(loop, !conn->ops->can_accept_stream(conn), 5000);
    LG_EXPECT(!conn->ops->can_accept_stream(conn));
    req_t *b = new_req();
    LG_EXPECT(b->us == NULL);
    tp_respond(&peer, tp_stream(&peer, 1), "204", 0, 0);
    tp_flush(&peer);
    TP_WAIT(loop, a->end && closed_calls == 1, 5000);
    LG_EXPECT_INT(a->status, 204);
    LG_EXPECT(a->headers_end);
    finish_test();
}

LG_TEST(test_server_resets)
{
    lg_http2_client_settings_t s = defaults();
    start(&s, NULL, 0);
    req_t *a = send_req("GET", "/refuse", 0, 0, 0);
    req_t *b = send_req("POST", "/hold", 1000, 0, 0);
    TP_WAIT(loop, a->reset && tp_stream(&peer, 3)->end_received, 5000);
    LG_EXPECT(a->reset);
    LG_EXPECT_INT(a->reason, LG_RESET_REMOTE_RESET);
    LG_EXPECT_INT(a->request_sent, 0);
    nghttp2_submit_rst_stream(peer.session, NGHTTP2_FLAG_NONE, 3, NGHTTP2_INTERNAL_ERROR);
    tp_flush(&peer);
    TP_WAIT(loop, b->reset, 5000);
    LG_EXPECT(b->reset);
    LG_EXPECT_INT(b->reason, LG_RESET_REMOTE_RESET);
    LG_EXPECT_INT(b->request_sent, 1);
    /* on_capacity followed each stream's end */
    TP_WAIT(loop, capacity_calls >= 3, 5000);
    LG_EXPECT(capacity_calls >= 3);
    finish_test();
}

LG_TEST(test_bad_response_heads)
{
    lg_http2_client_settings_t s = defaults();
    start(&s, NULL, 0);
    req_t *a = send_req("GET", "/badstatus", 0, 0, 0);
    req_t *b = send_req("GET", "/bigheaders", 0, 0, 0);
    req_t *c = send_req("GET", "/continue", 0, 0, 0);
    c->check = 1;
    c->seed = 11;
    TP_WAIT(loop, a->reset && b->reset && c->end, 5000);
    LG_EXPECT(a->reset && !a->got_headers);
    LG_EXPECT_INT(a->reason, LG_RESET_PROTOCOL_ERROR);
    LG_EXPECT_INT(a->request_sent, 1);
    LG_EXPECT(b->reset && !b->got_headers);
    LG_EXPECT_INT(b->reason, LG_RESET_OVERFLOW);
    LG_EXPECT_INT(c->status, 200); /* the 100 was not reported */
    LG_EXPECT_INT(c->body, 1000);
    LG_EXPECT(!c->body_bad);
    /* the connection survives both */
    req_t *d = send_req("GET", "/trailers", 0, 0, 0);
    TP_WAIT(loop, d->end, 5000);
    LG_EXPECT_INT(d->status, 200);
    finish_test();
}

LG_TEST(test_max_concurrent_streams)
{
    lg_http2_client_settings_t s = defaults();
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 2}};
    start(&s, iv, 1);
    req_t *a = send_req("GET", "/hold", 0, 0, 0);
    LG_EXPECT(conn->ops->can_accept_stream(conn));
    req_t *b = send_req("GET", "/hold", 0, 0, 0);
    LG_EXPECT(!conn->ops->can_accept_stream(conn));
    req_t *c = new_req();
    LG_EXPECT(c->us == NULL);
    TP_WAIT(loop, tp_stream(&peer, 3)->got_head, 5000);
    int before = capacity_calls;
    tp_respond(&peer, tp_stream(&peer, 1), "200", 0, 0);
    tp_flush(&peer);
    TP_WAIT(loop, a->end && capacity_calls > before, 5000);
    LG_EXPECT(capacity_calls > before);
    LG_EXPECT(conn->ops->can_accept_stream(conn));
    LG_EXPECT_INT(conn->ops->active_streams(conn), 1);
    (void)b;
    finish_test();
}

LG_TEST(test_read_disable_closes_window)
{
    lg_http2_client_settings_t s = defaults();
    s.initial_stream_window_size = 65535;
    start(&s, NULL, 0);
    req_t *r = send_req("GET", "/big", 0, 0, 0);
    r->disable_on_headers = 1;
    r->check = 1;
    r->seed = 5;
    TP_WAIT(loop, r->got_headers && nghttp2_session_get_stream_remote_window_size(peer.session, 1) == 0, 5000);
    LG_EXPECT_INT(nghttp2_session_get_stream_remote_window_size(peer.session, 1), 0);
    for (int i = 0; i < 5; ++i)
        h2o_evloop_run(loop, 10);
    LG_EXPECT_INT(r->body, 0);
    r->us->ops->read_disable(r->us, 0);
    LG_EXPECT_INT(r->body, 0); /* delivered later, never inside the op */
    TP_WAIT(loop, r->end, 10000);
    LG_EXPECT_INT(r->body, 2 * 1024 * 1024);
    LG_EXPECT(!r->body_bad);
    finish_test();
}

LG_TEST(test_close_resets_streams)
{
    lg_http2_client_settings_t s = defaults();
    start(&s, NULL, 0);
    req_t *a = send_req("GET", "/hold", 0, 0, 0);
    req_t *b = send_req("POST", "/hold", 10, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, 3)->end_received, 5000);
    conn->ops->close(conn);
    /* synchronous: */
    LG_EXPECT_INT(closed_calls, 1);
    LG_EXPECT(a->reset && b->reset);
    LG_EXPECT_INT(a->reason, LG_RESET_CONNECTION_CLOSED);
    LG_EXPECT_INT(a->request_sent, 1);
    finish_test();
}

LG_TEST(test_server_disconnect)
{
    lg_http2_client_settings_t s = defaults();
    start(&s, NULL, 0);
    req_t *a = send_req("GET", "/hold", 0, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, 1)->got_head, 5000);
    h2o_socket_close(peer.sock);
    peer.sock = NULL;
    TP_WAIT(loop, a->reset && closed_calls == 1, 5000);
    LG_EXPECT_INT(a->reason, LG_RESET_CONNECTION_CLOSED);
    LG_EXPECT_INT(a->request_sent, 1);
    finish_test();
}

LG_TEST(test_graceful_shutdown)
{
    lg_http2_client_settings_t s = defaults();
    start(&s, NULL, 0);
    req_t *a = send_req("GET", "/hold", 0, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, 1)->got_head, 5000);
    conn->ops->shutdown(conn);
    LG_EXPECT(!conn->ops->can_accept_stream(conn));
    for (int i = 0; i < 5; ++i)
        h2o_evloop_run(loop, 10);
    LG_EXPECT(!peer.goaway);
    LG_EXPECT_INT(closed_calls, 0);
    tp_respond(&peer, tp_stream(&peer, 1), "200", 10, 0);
    tp_flush(&peer);
    TP_WAIT(loop, a->end && closed_calls == 1 && peer.goaway, 5000);
    LG_EXPECT(a->end && !a->reset);
    LG_EXPECT(peer.goaway);
    LG_EXPECT_INT(peer.goaway_code, NGHTTP2_NO_ERROR);
    LG_EXPECT_INT(closed_calls, 1);
    finish_test();
}

LG_TEST(test_router_reset)
{
    lg_http2_client_settings_t s = defaults();
    start(&s, NULL, 0);
    /* reset before anything was submitted */
    req_t *a = new_req();
    a->us->ops->reset(a->us);
    a->reset = 1; /* the router's own doing: no callback expected */
    /* reset mid-request */
    req_t *b = send_req("POST", "/hold", 0, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, 1)->got_head, 5000);
    b->us->ops->reset(b->us);
    b->reset = 1;
    TP_WAIT(loop, tp_stream(&peer, 1)->rst_received, 5000);
    LG_EXPECT_INT(tp_stream(&peer, 1)->rst_code, NGHTTP2_CANCEL);
    TP_WAIT(loop, conn->ops->active_streams(conn) == 0, 5000);
    LG_EXPECT_INT(conn->ops->active_streams(conn), 0);
    LG_EXPECT(conn->ops->can_accept_stream(conn));
    finish_test();
}

/* ---- against nghttpd -------------------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

LG_TEST(test_interop_nghttpd)
{
    if (access("/usr/sbin/nghttpd", X_OK) != 0) {
        printf("skipped test_interop_nghttpd: /usr/sbin/nghttpd not installed (apt-get install nghttp2-server)\n");
        return;
    }
    char dir[] = "/tmp/lg-h2c-XXXXXX";
    LG_EXPECT(mkdtemp(dir) != NULL);
    char file[256];
    snprintf(file, sizeof(file), "%s/file", dir);
    FILE *f = fopen(file, "wb");
    for (size_t i = 0; i < 200000; ++i)
        fputc(tp_byte(77, i), f);
    fclose(f);
    int port = free_port();
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl("/usr/sbin/nghttpd", "nghttpd", "--no-tls", "--echo-upload", "-a", "127.0.0.1", "-d", dir,
              "--trailer", "x-upstream-trailer: yes", port_s, (char *)NULL);
        _exit(127);
    }
    /* connect once it listens (bounded) */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = -1;
    uint64_t deadline = tp_now_ms() + 5000;
    while (tp_now_ms() < deadline) {
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            break;
        close(fd);
        fd = -1;
        struct timeval tv = {0, 20000};
        select(0, NULL, NULL, NULL, &tv); /* nghttpd gives no readiness signal: retry the connect */
    }
    LG_EXPECT(fd >= 0);
    if (fd >= 0) {
        lg_http2_client_settings_t s = defaults();
        capacity_calls = closed_calls = 0;
        conn = lg_http2_client_conn_new(h2o_evloop_socket_create(loop, fd, 0), &s, &owner, NULL);
        req_t *r[10];
        for (int i = 0; i < 10; ++i) {
            r[i] = i % 2 == 0 ? send_req("POST", "/echo", 1000000 + (size_t)i, (uint64_t)i, 0) : send_req("GET", "/file", 0, 0, 0);
            r[i]->check = 1;
            r[i]->seed = i % 2 == 0 ? (uint64_t)i : 77;
        }
        TP_WAIT(loop, all_ended(r, 10), 20000);
        for (int i = 0; i < 10; ++i) {
            LG_EXPECT_INT(r[i]->status, 200);
            LG_EXPECT_INT(r[i]->body, i % 2 == 0 ? 1000000 + (size_t)i : 200000);
            LG_EXPECT(!r[i]->body_bad);
            LG_EXPECT(r[i]->got_trailers);
            LG_EXPECT_CONTAINS(r[i]->trailers, "x-upstream-trailer: yes");
            release(r[i]);
        }
        conn->ops->shutdown(conn);
        TP_WAIT(loop, closed_calls == 1, 5000);
        LG_EXPECT_INT(closed_calls, 1);
        for (size_t i = 0; i < n_reqs; ++i) {
            h2o_mem_clear_pool(&reqs[i]->pool);
            free(reqs[i]);
        }
        n_reqs = 0;
        h2o_evloop_run(loop, 0);
    }
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    unlink(file);
    rmdir(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    loop = h2o_evloop_create();
    h2o_timeout_init(loop, &zero_to, 0);

    LG_RUN(test_concurrent_streams);
    LG_RUN(test_echo_10mb_small_windows);
    LG_RUN(test_trailers_both_ways);
    LG_RUN(test_goaway_makes_later_streams_retriable);
    LG_RUN(test_goaway_blocks_new_streams);
    LG_RUN(test_server_resets);
    LG_RUN(test_bad_response_heads);
    LG_RUN(test_max_concurrent_streams);
    LG_RUN(test_read_disable_closes_window);
    LG_RUN(test_close_resets_streams);
    LG_RUN(test_server_disconnect);
    LG_RUN(test_graceful_shutdown);
    LG_RUN(test_router_reset);
    LG_RUN(test_interop_nghttpd);

    h2o_timeout_dispose(loop, &zero_to);
    h2o_evloop_destroy(loop);
    return LG_TEST_END();
}
