/*
 * Tests for src/http2_server.c: the downstream HTTP/2 codec on one end of a socketpair, a plain
 * nghttp2 client (http2_test_peer.h) on the other, both in this test's h2o loop, and a fake
 * connection manager defined here (lg_hcm_*, lg_stream_pool), which records every event and
 * answers by request path:
 *   /echo            200, the request body echoed as it arrives, request trailers answered with
 *                    response trailers; reading paused while the response is above its watermark
 *   /hold            nothing until the test acts
 *   /pause           reading disabled at once; the test re-enables it; 200 at the end
 *   /big             200 and 8 MB at once, released when the watermark drops
 *   /small           204 with END_STREAM on the head
 *   /trailers-only   200 head, then trailers, no body
 *
 * Covered: 50 concurrent streams answered out of order; a 10 MB echo through 16 KiB / 4 KiB
 * windows (flow control both ways, read_disable, watermarks, bounded buffering); watermarks of an
 * 8 MB response; trailers both ways and trailers without a body;
 * client RST_STREAM reaching lg_hcm_on_reset; GOAWAY on shutdown (last stream id, later streams
 * ignored, close when the last stream ends); read_disable closing the window; header count, header
 * bytes and trailer limits (stream reset, connection kept); malformed requests (connection error
 * by default, stream error when configured); content-length mismatch; cookie joining and
 * :authority; peer close mid-stream; an early response while the request body still flows
 * (RST_STREAM NO_ERROR, window given back); bytes the caller read before handing the socket over
 * (the h2c preface); and the flood limits: PING acks queued past 1000 without the
 * client reading, outbound frame queue, rapid reset (premature resets -> GOAWAY
 * ENHANCE_YOUR_CALM), empty DATA frames, WINDOW_UPDATE and PRIORITY budgets.
 */
#include "http2_server.h"
#include "lg_test.h"

#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http2_test_peer.h"

/* ---- the fake connection manager ------------------------------------------------------------- */

struct st_lg_hcm_conn_t {
    int closed;
};

struct st_lg_stream_t {
    lg_server_stream_t *cs;
    h2o_mem_pool_t pool;
    lg_request_head_t *req;
    char path[64];
    size_t body;
    int request_ended, trailers_seen;
    char trailer_text[512];
    int reset;
    lg_reset_reason_t reason;
    int released;
    int above_events, below_events;
    size_t max_buffered;
};

#define MAX_FAKES 4096
static struct st_lg_stream_t *fakes[MAX_FAKES];
static size_t n_fakes, open_fakes, max_open_fakes;
static struct st_lg_hcm_conn_t hconn;

static h2o_evloop_t *loop;
static h2o_timeout_t zero_to;
static lg_http2_server_conn_t *server;
static tp_peer_t peer;
static lg_http2_stats_t stats;

static uint64_t stat_value(lg_stat_id_t id)
{
    return atomic_load(&stats.cells->cells[id]);
}

static void finish(lg_stream_t *s)
{
    if (s->released)
        return;
    s->released = 1;
    --open_fakes;
    s->cs->ops->release(s->cs);
}

static void note_buffered(lg_stream_t *s)
{
    size_t b = s->cs->ops->buffered(s->cs);
    if (b > s->max_buffered)
        s->max_buffered = b;
}

static int path_is(lg_stream_t *s, const char *p)
{
    return strcmp(s->path, p) == 0;
}

static lg_response_head_t *response(lg_stream_t *s, int status)
{
    lg_response_head_t *r = h2o_mem_alloc_pool(&s->pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->status = status;
    r->content_length = -1;
    lg_headers_add(&s->pool, &r->headers, LG_LIT("x-served-by"), LG_LIT("fake-hcm"));
    /* connection-specific fields must never reach the wire */
    lg_headers_add(&s->pool, &r->headers, LG_LIT("connection"), LG_LIT("keep-alive"));
    return r;
}

lg_stream_t *lg_hcm_stream_new(lg_hcm_conn_t *conn, lg_server_stream_t *cs)
{
    lg_stream_t *s = calloc(1, sizeof(*s));
    s->cs = cs;
    cs->hcm = s;
    h2o_mem_init_pool(&s->pool);
    if (n_fakes < MAX_FAKES)
        fakes[n_fakes++] = s;
    if (++open_fakes > max_open_fakes)
        max_open_fakes = open_fakes;
    return s;
}

h2o_mem_pool_t *lg_stream_pool(lg_stream_t *s)
{
    return &s->pool;
}

void lg_hcm_on_headers(lg_stream_t *s, lg_request_head_t *head, int end_stream)
{
    s->req = head;
    snprintf(s->path, sizeof(s->path), "%.*s", (int)head->path.len, head->path.base);
    if (end_stream)
        s->request_ended = 1;
    if (path_is(s, "/echo")) {
        s->cs->ops->encode_headers(s->cs, response(s, 200), 0);
        if (end_stream) {
            s->cs->ops->encode_data(s->cs, "", 0, 1);
            finish(s);
        }
    } else if (path_is(s, "/hold")) {
    } else if (path_is(s, "/pause")) {
        s->cs->ops->read_disable(s->cs, 1);
    } else if (path_is(s, "/big")) {
        size_t n = 8 * 1024 * 1024;
        uint8_t *b = malloc(n);
        for (size_t i = 0; i < n; ++i)
            b[i] = tp_byte(42, i);
        s->cs->ops->encode_headers(s->cs, response(s, 200), 0);
        s->cs->ops->encode_data(s->cs, b, n, 1);
        free(b);
        /* released once the watermark drops (lg_hcm_on_watermark) */
    } else if (path_is(s, "/small")) {
        s->cs->ops->encode_headers(s->cs, response(s, 204), 1);
        finish(s);
    } else if (path_is(s, "/trailers-only")) {
        s->cs->ops->encode_headers(s->cs, response(s, 200), 0);
        lg_headers_t *t = h2o_mem_alloc_pool(&s->pool, sizeof(*t));
        memset(t, 0, sizeof(*t));
        lg_headers_add(&s->pool, t, LG_LIT("grpc-status"), LG_LIT("0"));
        s->cs->ops->encode_trailers(s->cs, t);
        finish(s);
    } else {
        s->cs->ops->encode_headers(s->cs, response(s, 404), 1);
        finish(s);
    }
}

void lg_hcm_on_data(lg_stream_t *s, const void *data, size_t len, int end_stream)
{
    s->body += len;
    if (end_stream)
        s->request_ended = 1;
    if (path_is(s, "/echo")) {
        s->cs->ops->encode_data(s->cs, data, len, end_stream);
        note_buffered(s);
        if (end_stream)
            finish(s);
    } else if (path_is(s, "/pause") && end_stream) {
        s->cs->ops->encode_headers(s->cs, response(s, 200), 1);
        finish(s);
    }
}

void lg_hcm_on_trailers(lg_stream_t *s, lg_headers_t *trailers)
{
    s->trailers_seen = 1;
    s->request_ended = 1;
    for (size_t i = 0; i < trailers->size; ++i) {
        size_t l = strlen(s->trailer_text);
        snprintf(s->trailer_text + l, sizeof(s->trailer_text) - l, "%.*s: %.*s\n", (int)trailers->entries[i].name.len,
                 trailers->entries[i].name.base, (int)trailers->entries[i].value.len, trailers->entries[i].value.base);
    }
    if (path_is(s, "/echo")) {
        lg_headers_t *t = h2o_mem_alloc_pool(&s->pool, sizeof(*t));
        memset(t, 0, sizeof(*t));
        lg_headers_add(&s->pool, t, LG_LIT("x-resp-trailer"), LG_LIT("ok"));
        s->cs->ops->encode_trailers(s->cs, t);
        finish(s);
    }
}

void lg_hcm_on_protocol_error(lg_stream_t *s, int status, const char *details)
{
}

void lg_hcm_on_reset(lg_stream_t *s, lg_reset_reason_t reason)
{
    s->reset = 1;
    s->reason = reason;
    finish(s);
}

void lg_hcm_on_watermark(lg_stream_t *s, int above)
{
    if (above)
        ++s->above_events;
    else
        ++s->below_events;
    s->cs->ops->read_disable(s->cs, above);
    if (!above && path_is(s, "/big"))
        finish(s);
}

void lg_hcm_conn_closed(lg_hcm_conn_t *conn)
{
    conn->closed = 1;
    for (size_t i = 0; i < n_fakes; ++i)
        if (!fakes[i]->released && !fakes[i]->reset) {
            fakes[i]->reset = 1;
            fakes[i]->reason = LG_RESET_CONNECTION_CLOSED;
            finish(fakes[i]);
        }
}

static lg_stream_t *fake_by_path(const char *path, size_t nth)
{
    for (size_t i = 0; i < n_fakes; ++i)
        if (path_is(fakes[i], path) && nth-- == 0)
            return fakes[i];
    return NULL;
}

/* ---- per-test setup -------------------------------------------------------------------------- */

static lg_http2_settings_t defaults(void)
{
    lg_http2_settings_t s;
    lg_http2_settings_init(&s);
    s.zero_timeout = &zero_to;
    return s;
}

/* `server_sndbuf`: a small send buffer on the codec's end makes its writes block when the peer
 * stops reading. */
static void start(const lg_http2_settings_t *s, const nghttp2_settings_entry *iv, size_t niv, int server_sndbuf)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    if (server_sndbuf != 0)
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &server_sndbuf, sizeof(server_sndbuf));
    memset(&hconn, 0, sizeof(hconn));
    server = lg_http2_server_conn_new(h2o_evloop_socket_create(loop, sv[0], 0), &hconn, s);
    lg_http2_server_conn_set_stats(server, &stats);
    tp_init(&peer, loop, sv[1], 0, iv, niv);
}

static void finish_test(void)
{
    if (!hconn.closed)
        lg_http2_server_conn_close(server);
    LG_EXPECT(hconn.closed);
    tp_free(&peer);
    for (size_t i = 0; i < n_fakes; ++i) {
        LG_EXPECT(fakes[i]->released);
        h2o_mem_clear_pool(&fakes[i]->pool);
        free(fakes[i]);
    }
    n_fakes = open_fakes = max_open_fakes = 0;
    memset(stats.cells, 0, sizeof(*stats.cells));
    /* let h2o free the closed sockets */
    h2o_evloop_run(loop, 0);
}

static const nghttp2_nv trailer_nv[] = {{(uint8_t *)"x-req-trailer", (uint8_t *)"1", 13, 1, 0}};

static int count_closed(const int32_t *ids, int n)
{
    int c = 0;
    for (int i = 0; i < n; ++i)
        c += tp_stream(&peer, ids[i])->closed;
    return c;
}

/* ---- tests ----------------------------------------------------------------------------------- */

LG_TEST(test_concurrent_streams)
{
    lg_http2_settings_t s = defaults();
    start(&s, NULL, 0, 0);
    /* 50 requests held open at once, then answered in reverse order, each with its own body */
    int32_t ids[50];
    for (int i = 0; i < 50; ++i)
        ids[i] = tp_request(&peer, "POST", "/hold", NULL, 0, 1000 + i, (uint64_t)i, NULL, 0, 0);
    TP_WAIT(loop, n_fakes == 50 && fakes[49]->request_ended, 10000);
    LG_EXPECT_INT(n_fakes, 50);
    LG_EXPECT_INT(open_fakes, 50);
    LG_EXPECT_INT(lg_http2_server_conn_active_streams(server), 50);
    for (int i = 49; i >= 0; --i) {
        lg_stream_t *f = fakes[i];
        LG_EXPECT_INT(f->body, 1000 + i);
        size_t n = 2000 + (size_t)i;
        uint8_t *b = malloc(n);
        for (size_t k = 0; k < n; ++k)
            b[k] = tp_byte(100 + (uint64_t)i, k);
        f->cs->ops->encode_headers(f->cs, response(f, 200), 0);
        f->cs->ops->encode_data(f->cs, b, n / 2, 0);
        f->cs->ops->encode_data(f->cs, b + n / 2, n - n / 2, 1);
        free(b);
        finish(f);
    }
    for (int i = 0; i < 50; ++i) {
        tp_stream_t *st = tp_stream(&peer, ids[i]);
        st->check_body = 1;
        st->expect_seed = 100 + (uint64_t)i;
    }
    TP_WAIT(loop, count_closed(ids, 50) == 50, 10000);
    LG_EXPECT_INT(count_closed(ids, 50), 50);
    for (int i = 0; i < 50; ++i) {
        tp_stream_t *st = tp_stream(&peer, ids[i]);
        LG_EXPECT_INT(st->status, 200);
        LG_EXPECT_INT(st->body_len, 2000 + i);
        LG_EXPECT(!st->body_bad);
        LG_EXPECT(strstr(st->head, "x-served-by: fake-hcm") != NULL);
        LG_EXPECT(strstr(st->head, "connection") == NULL);
    }
    LG_EXPECT_INT(lg_http2_server_conn_active_streams(server), 0);
    finish_test();
}

LG_TEST(test_echo_10mb_small_windows)
{
    /* 16 KiB receive window on our side, 4 KiB on the client's: the response drains slower than
     * the request arrives, so the echo must pause reading on the watermark to stay bounded. */
    lg_http2_settings_t s = defaults();
    s.initial_stream_window_size = 16384;
    s.initial_connection_window_size = 65535;
    s.stream_buffer_high_watermark = 64 * 1024;
    s.stream_buffer_low_watermark = 16 * 1024;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4096}};
    start(&s, iv, 1, 0);
    size_t len = 10 * 1024 * 1024;
    int32_t id = tp_request(&peer, "POST", "/echo", NULL, 0, len, 7, NULL, 0, 1);
    tp_stream_t *st = tp_stream(&peer, id);
    TP_WAIT(loop, st->closed, 60000);
    LG_EXPECT(st->closed);
    LG_EXPECT_INT(st->status, 200);
    LG_EXPECT_INT(st->body_len, len);
    LG_EXPECT(!st->body_bad);
    lg_stream_t *f = fake_by_path("/echo", 0);
    LG_EXPECT(f != NULL);
    if (f != NULL) {
        LG_EXPECT_INT(f->body, len);
        LG_EXPECT(f->above_events > 0);
        LG_EXPECT(f->above_events - f->below_events <= 1); /* every pause but a last one was lifted */
        /* the high watermark plus what was in flight when it was crossed */
        LG_EXPECT(f->max_buffered <= s.stream_buffer_high_watermark + 2 * s.initial_stream_window_size);
    }
    finish_test();
}

LG_TEST(test_response_watermarks)
{
    /* 8 MB encoded at once: above the 1 MiB watermark at once, below once the client read it */
    lg_http2_settings_t s = defaults();
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (1u << 31) - 1}};
    start(&s, iv, 1, 0);
    nghttp2_session_set_local_window_size(peer.session, NGHTTP2_FLAG_NONE, 0, (1 << 30));
    int32_t id = tp_request(&peer, "GET", "/big", NULL, 0, 0, 0, NULL, 0, 0);
    tp_stream_t *st = tp_stream(&peer, id);
    st->check_body = 1;
    st->expect_seed = 42;
    TP_WAIT(loop, st->closed && fake_by_path("/big", 0) != NULL && fake_by_path("/big", 0)->released, 20000);
    LG_EXPECT_INT(st->body_len, 8 * 1024 * 1024);
    LG_EXPECT(!st->body_bad);
    lg_stream_t *f = fake_by_path("/big", 0);
    LG_EXPECT(f != NULL);
    if (f != NULL) {
        LG_EXPECT_INT(f->above_events, 1);
        LG_EXPECT_INT(f->below_events, 1);
        LG_EXPECT(!f->reset);
    }
    finish_test();
}

LG_TEST(test_trailers_both_ways)
{
    lg_http2_settings_t s = defaults();
    start(&s, NULL, 0, 0);
    /* body + trailers */
    int32_t a = tp_request(&peer, "POST", "/echo", NULL, 0, 100000, 3, trailer_nv, 1, 1);
    /* trailers without a body: HEADERS, then HEADERS with END_STREAM */
    int32_t b = tp_request(&peer, "POST", "/echo", NULL, 0, 0, 4, trailer_nv, 1, 1);
    TP_WAIT(loop, tp_stream(&peer, a)->closed && tp_stream(&peer, b)->closed, 10000);
    tp_stream_t *sa = tp_stream(&peer, a), *sb = tp_stream(&peer, b);
    LG_EXPECT_INT(sa->status, 200);
    LG_EXPECT_INT(sa->body_len, 100000);
    LG_EXPECT(!sa->body_bad);
    LG_EXPECT(sa->got_trailers);
    LG_EXPECT_CONTAINS(sa->trailers, "x-resp-trailer: ok");
    LG_EXPECT(sb->got_trailers);
    LG_EXPECT_INT(sb->body_len, 0);
    for (size_t i = 0; i < 2; ++i) {
        lg_stream_t *f = fake_by_path("/echo", i);
        LG_EXPECT(f != NULL && f->trailers_seen);
        if (f != NULL)
            LG_EXPECT_CONTAINS(f->trailer_text, "x-req-trailer: 1");
    }
    /* response trailers right after the head, no DATA frame at all */
    int data_before = peer.frames[NGHTTP2_DATA];
    int32_t c = tp_request(&peer, "GET", "/trailers-only", NULL, 0, 0, 0, NULL, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, c)->closed, 10000);
    tp_stream_t *sc = tp_stream(&peer, c);
    LG_EXPECT_INT(sc->status, 200);
    LG_EXPECT(sc->got_trailers);
    LG_EXPECT_CONTAINS(sc->trailers, "grpc-status: 0");
    LG_EXPECT_INT(peer.frames[NGHTTP2_DATA], data_before);
    LG_EXPECT_INT(sc->close_code, NGHTTP2_NO_ERROR);
    finish_test();
}

LG_TEST(test_client_reset_reaches_hcm)
{
    lg_http2_settings_t s = defaults();
    start(&s, NULL, 0, 0);
    int32_t id = tp_open_stream(&peer, "/hold");
    static const uint8_t some[100];
    tp_raw_frame(&peer, NGHTTP2_DATA, 0, id, some, sizeof(some));
    TP_WAIT(loop, fake_by_path("/hold", 0) != NULL && fake_by_path("/hold", 0)->body == sizeof(some), 5000);
    lg_stream_t *f = fake_by_path("/hold", 0);
    LG_EXPECT(f != NULL);
    nghttp2_submit_rst_stream(peer.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    tp_flush(&peer);
    TP_WAIT(loop, f != NULL && f->reset, 5000);
    LG_EXPECT(f != NULL && f->reset);
    if (f != NULL)
        LG_EXPECT_INT(f->reason, LG_RESET_REMOTE_RESET);
    LG_EXPECT_INT(stat_value(stats.rx_reset), 1);
    /* the connection goes on */
    int32_t ok = tp_request(&peer, "GET", "/small", NULL, 0, 0, 0, NULL, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, ok)->closed, 5000);
    LG_EXPECT_INT(tp_stream(&peer, ok)->status, 204);
    finish_test();
}

LG_TEST(test_goaway_on_shutdown)
{
    lg_http2_settings_t s = defaults();
    start(&s, NULL, 0, 0);
    int32_t a = tp_request(&peer, "GET", "/hold", NULL, 0, 0, 0, NULL, 0, 0);
    TP_WAIT(loop, fake_by_path("/hold", 0) != NULL, 5000);
    lg_stream_t *f = fake_by_path("/hold", 0);
    LG_EXPECT(f != NULL);
    lg_http2_server_conn_shutdown(server);
    /* a request already on its way when the GOAWAY leaves: never processed */
    int32_t b = tp_request(&peer, "GET", "/small", NULL, 0, 0, 0, NULL, 0, 0);
    TP_WAIT(loop, peer.goaway, 5000);
    LG_EXPECT(peer.goaway);
    LG_EXPECT_INT(peer.goaway_last_id, a);
    LG_EXPECT_INT(peer.goaway_code, NGHTTP2_NO_ERROR);
    LG_EXPECT_INT(stat_value(stats.goaway_sent), 1);
    TP_WAIT(loop, tp_stream(&peer, b)->closed, 5000);
    LG_EXPECT_INT(tp_stream(&peer, b)->close_code, NGHTTP2_REFUSED_STREAM);
    LG_EXPECT_INT(n_fakes, 1);
    LG_EXPECT(!hconn.closed); /* stream `a` still runs */
    LG_EXPECT_INT(lg_http2_server_conn_active_streams(server), 1);
    if (f != NULL) {
        f->cs->ops->encode_headers(f->cs, response(f, 200), 1);
        finish(f);
    }
    TP_WAIT(loop, hconn.closed && peer.eof, 5000);
    LG_EXPECT_INT(tp_stream(&peer, a)->status, 200);
    LG_EXPECT(hconn.closed);
    LG_EXPECT(peer.eof);
    finish_test();
}

LG_TEST(test_read_disable_closes_window)
{
    lg_http2_settings_t s = defaults();
    s.initial_stream_window_size = 65535;
    start(&s, NULL, 0, 0);
    size_t len = 1024 * 1024;
    int32_t id = tp_request(&peer, "POST", "/pause", NULL, 0, len, 9, NULL, 0, 0);
    TP_WAIT(loop, fake_by_path("/pause", 0) != NULL && nghttp2_session_get_stream_remote_window_size(peer.session, id) == 0,
            5000);
    lg_stream_t *f = fake_by_path("/pause", 0);
    LG_EXPECT(f != NULL);
    LG_EXPECT_INT(nghttp2_session_get_stream_remote_window_size(peer.session, id), 0);
    /* a few more loop turns: still nothing delivered, nothing more sent */
    for (int i = 0; i < 5; ++i)
        h2o_evloop_run(loop, 10);
    if (f != NULL) {
        LG_EXPECT_INT(f->body, 0);
        f->cs->ops->read_disable(f->cs, 0);
        LG_EXPECT_INT(f->body, 0); /* delivered later, never inside the op */
    }
    TP_WAIT(loop, tp_stream(&peer, id)->closed, 10000);
    LG_EXPECT_INT(tp_stream(&peer, id)->status, 200);
    if (f != NULL)
        LG_EXPECT_INT(f->body, len);
    finish_test();
}

static nghttp2_nv *many_fields(size_t n, size_t value_len)
{
    nghttp2_nv *nv = calloc(n, sizeof(*nv));
    static char names[128][32];
    static char value[16384];
    memset(value, 'v', sizeof(value));
    for (size_t i = 0; i < n; ++i) {
        snprintf(names[i], sizeof(names[i]), "x-f%u", (unsigned)(i & 127));
        nv[i] = (nghttp2_nv){(uint8_t *)names[i], (uint8_t *)value, strlen(names[i]), value_len, 0};
    }
    return nv;
}

LG_TEST(test_header_limits_reset_stream)
{
    lg_http2_settings_t s = defaults();
    start(&s, NULL, 0, 0);
    /* 4 pseudo-headers + 97 fields = 101 > 100 */
    nghttp2_nv *nv = many_fields(97, 1);
    int32_t a = tp_request(&peer, "GET", "/small", nv, 97, 0, 0, NULL, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, a)->closed, 5000);
    LG_EXPECT(tp_stream(&peer, a)->rst_received);
    LG_EXPECT_INT(tp_stream(&peer, a)->rst_code, NGHTTP2_PROTOCOL_ERROR);
    free(nv);
    /* 10 x 7 KiB = 70 KiB > 60 KiB */
    nv = many_fields(10, 7 * 1024);
    int32_t b = tp_request(&peer, "GET", "/small", nv, 10, 0, 0, NULL, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, b)->closed, 5000);
    LG_EXPECT(tp_stream(&peer, b)->rst_received);
    LG_EXPECT_INT(n_fakes, 0); /* neither reached the manager */
    /* trailers over the limit: the manager's stream is reset */
    free(nv);
    int32_t d = tp_open_stream(&peer, "/hold");
    TP_WAIT(loop, fake_by_path("/hold", 0) != NULL, 5000);
    nv = many_fields(101, 1);
    nghttp2_submit_trailer(peer.session, d, nv, 101);
    tp_flush(&peer);
    free(nv);
    lg_stream_t *f = fake_by_path("/hold", 0);
    TP_WAIT(loop, f != NULL && f->reset, 5000);
    LG_EXPECT(f != NULL && f->reset);
    if (f != NULL) {
        LG_EXPECT_INT(f->reason, LG_RESET_OVERFLOW);
        LG_EXPECT(!f->trailers_seen);
    }
    TP_WAIT(loop, tp_stream(&peer, d)->closed, 5000);
    LG_EXPECT_INT(tp_stream(&peer, d)->rst_code, NGHTTP2_PROTOCOL_ERROR);
    LG_EXPECT_INT(stat_value(stats.header_overflow), 3);
    /* the connection survives all of it */
    int32_t e = tp_request(&peer, "GET", "/small", NULL, 0, 0, 0, NULL, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, e)->closed, 5000);
    LG_EXPECT_INT(tp_stream(&peer, e)->status, 204);
    LG_EXPECT(!peer.goaway);
    finish_test();
}

LG_TEST(test_malformed_request)
{
    static const nghttp2_nv bad[] = {{(uint8_t *)"connection", (uint8_t *)"keep-alive", 10, 10, 0}};
    /* Envoy's default: a connection error */
    lg_http2_settings_t s = defaults();
    start(&s, NULL, 0, 0);
    tp_request(&peer, "GET", "/small", bad, 1, 0, 0, NULL, 0, 0);
    TP_WAIT(loop, peer.goaway && hconn.closed, 5000);
    LG_EXPECT(peer.goaway);
    LG_EXPECT_INT(peer.goaway_code, NGHTTP2_PROTOCOL_ERROR);
    LG_EXPECT(hconn.closed);
    LG_EXPECT_INT(n_fakes, 0);
    LG_EXPECT_INT(stat_value(stats.rx_messaging_error), 1);
    finish_test();

    /* override_stream_error_on_invalid_http_message: the stream only */
    s.stream_error_on_invalid_http_message = 1;
    start(&s, NULL, 0, 0);
    int32_t a = tp_request(&peer, "GET", "/small", bad, 1, 0, 0, NULL, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, a)->closed, 5000);
    LG_EXPECT_INT(tp_stream(&peer, a)->rst_code, NGHTTP2_PROTOCOL_ERROR);
    /* content-length 5 with 10 bytes: reset, the manager hears it */
    static const nghttp2_nv cl[] = {{(uint8_t *)"content-length", (uint8_t *)"5", 14, 1, 0}};
    int32_t b = tp_request(&peer, "POST", "/hold", cl, 1, 10, 0, NULL, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, b)->closed, 5000);
    LG_EXPECT_INT(tp_stream(&peer, b)->rst_code, NGHTTP2_PROTOCOL_ERROR);
    lg_stream_t *f = fake_by_path("/hold", 0);
    LG_EXPECT(f != NULL && f->reset);
    if (f != NULL) {
        LG_EXPECT_INT(f->reason, LG_RESET_PROTOCOL_ERROR);
        LG_EXPECT_INT(f->req->content_length, 5);
    }
    int32_t c = tp_request(&peer, "GET", "/small", NULL, 0, 0, 0, NULL, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, c)->closed, 5000);
    LG_EXPECT_INT(tp_stream(&peer, c)->status, 204);
    LG_EXPECT(!peer.goaway);
    finish_test();
}

LG_TEST(test_cookies_and_authority)
{
    static const nghttp2_nv f[] = {{(uint8_t *)"cookie", (uint8_t *)"a=1", 6, 3, 0},
                                   {(uint8_t *)"x-other", (uint8_t *)"z", 7, 1, 0},
                                   {(uint8_t *)"cookie", (uint8_t *)"b=2", 6, 3, 0},
                                   {(uint8_t *)"host", (uint8_t *)"test.local", 4, 10, 0}};
    lg_http2_settings_t s = defaults();
    start(&s, NULL, 0, 0);
    int32_t id = tp_request(&peer, "GET", "/small", f, 4, 0, 0, NULL, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, id)->closed, 5000);
    lg_stream_t *fk = fake_by_path("/small", 0);
    LG_EXPECT(fk != NULL);
    if (fk != NULL) {
        lg_request_head_t *r = fk->req;
        LG_EXPECT(r->method.len == 3 && memcmp(r->method.base, "GET", 3) == 0);
        LG_EXPECT(r->scheme.len == 4 && memcmp(r->scheme.base, "http", 4) == 0);
        LG_EXPECT(r->authority.len == 10 && memcmp(r->authority.base, "test.local", 10) == 0);
        LG_EXPECT_INT(r->version, LG_HTTP_2);
        LG_EXPECT_INT(r->content_length, -1);
        const h2o_iovec_t *c = lg_headers_get(&r->headers, "cookie", 6);
        LG_EXPECT(c != NULL && c->len == 8 && memcmp(c->base, "a=1; b=2", 8) == 0);
        LG_EXPECT(lg_headers_get(&r->headers, "host", 4) == NULL);
        LG_EXPECT(lg_headers_get(&r->headers, "x-other", 7) != NULL);
        LG_EXPECT_INT(r->headers.size, 2);
    }
    finish_test();
}

LG_TEST(test_peer_close_mid_stream)
{
    lg_http2_settings_t s = defaults();
    start(&s, NULL, 0, 0);
    tp_open_stream(&peer, "/hold");
    TP_WAIT(loop, fake_by_path("/hold", 0) != NULL, 5000);
    h2o_socket_close(peer.sock);
    peer.sock = NULL;
    TP_WAIT(loop, hconn.closed, 5000);
    lg_stream_t *f = fake_by_path("/hold", 0);
    LG_EXPECT(f != NULL && f->reset);
    if (f != NULL)
        LG_EXPECT_INT(f->reason, LG_RESET_CONNECTION_CLOSED);
    finish_test();
}

/* Starts /big with a peer that never reads: the codec's writes block. */
LG_TEST(test_early_response_stops_request)
{
    /* /small answers 204 at once and the manager lets go while most of 2 MB is still to come
     * (the 256 KiB window holds the rest back) */
    lg_http2_settings_t s = defaults();
    start(&s, NULL, 0, 0);
    int32_t a = tp_request(&peer, "POST", "/small", NULL, 0, 2 * 1024 * 1024, 1, NULL, 0, 0);
    TP_WAIT(loop, tp_stream(&peer, a)->closed, 5000);
    tp_stream_t *sa = tp_stream(&peer, a);
    LG_EXPECT_INT(sa->status, 204);
    LG_EXPECT(sa->rst_received);
    LG_EXPECT_INT(sa->rst_code, NGHTTP2_NO_ERROR);
    LG_EXPECT(fake_by_path("/small", 0) != NULL && fake_by_path("/small", 0)->body == 0);
    /* the dropped bytes were given back: the connection window still carries a large body */
    int32_t b = tp_request(&peer, "POST", "/echo", NULL, 0, 3 * 1024 * 1024, 2, NULL, 0, 1);
    TP_WAIT(loop, tp_stream(&peer, b)->closed, 10000);
    LG_EXPECT_INT(tp_stream(&peer, b)->body_len, 3 * 1024 * 1024);
    LG_EXPECT(!tp_stream(&peer, b)->body_bad);
    finish_test();
}

static size_t preread_want;
static void on_preread(h2o_socket_t *sock, const char *err)
{
    if (err == NULL && sock->input->size >= preread_want)
        h2o_socket_read_stop(sock);
}

LG_TEST(test_input_already_read)
{
    /* The caller sniffed the h2c preface (and more) before handing the socket over. */
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        abort();
    memset(&hconn, 0, sizeof(hconn));
    h2o_socket_t *ss = h2o_evloop_socket_create(loop, sv[0], 0);
    tp_init(&peer, loop, sv[1], 0, NULL, 0);
    int32_t id = tp_request(&peer, "POST", "/echo", NULL, 0, 1000, 5, NULL, 0, 1);
    preread_want = 24 + 9 + 9 + 9; /* preface, SETTINGS, HEADERS and DATA frame headers at least */
    h2o_socket_read_start(ss, on_preread);
    TP_WAIT(loop, ss->input->size >= preread_want, 5000);
    h2o_socket_read_stop(ss);
    LG_EXPECT(ss->input->size >= preread_want);
    lg_http2_settings_t s = defaults();
    server = lg_http2_server_conn_new(ss, &hconn, &s);
    lg_http2_server_conn_set_stats(server, &stats);
    LG_EXPECT_INT(n_fakes, 0); /* nothing inside the call */
    TP_WAIT(loop, tp_stream(&peer, id)->closed, 5000);
    LG_EXPECT_INT(tp_stream(&peer, id)->status, 200);
    LG_EXPECT_INT(tp_stream(&peer, id)->body_len, 1000);
    LG_EXPECT(!tp_stream(&peer, id)->body_bad);
    finish_test();
}

static void block_server_writes(void)
{
    nghttp2_session_set_local_window_size(peer.session, NGHTTP2_FLAG_NONE, 0, (1 << 30));
    tp_request(&peer, "GET", "/big", NULL, 0, 0, 0, NULL, 0, 0);
    tp_set_reading(&peer, 0);
    /* once nghttp2 took response bytes, a write is in flight that cannot complete */
    TP_WAIT(loop, fake_by_path("/big", 0) != NULL && fake_by_path("/big", 0)->above_events == 1 &&
                      peer.out->size == 0 && !peer.writing,
            5000);
    for (int i = 0; i < 10; ++i)
        h2o_evloop_run(loop, 1);
}

LG_TEST(test_ping_flood_without_reading)
{
    lg_http2_settings_t s = defaults();
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (1u << 31) - 1}};
    start(&s, iv, 1, 4096);
    block_server_writes();
    LG_EXPECT(!hconn.closed);
    for (int i = 0; i < 2000; ++i)
        nghttp2_submit_ping(peer.session, NGHTTP2_FLAG_NONE, NULL);
    tp_flush(&peer);
    TP_WAIT(loop, hconn.closed, 5000);
    LG_EXPECT(hconn.closed);
    LG_EXPECT_INT(stat_value(stats.outbound_control_flood), 1);
    finish_test();
}

LG_TEST(test_outbound_frame_flood)
{
    lg_http2_settings_t s = defaults();
    s.max_outbound_frames = 50;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (1u << 31) - 1}};
    start(&s, iv, 1, 4096);
    block_server_writes();
    for (int i = 0; i < 80; ++i)
        tp_request(&peer, "GET", "/small", NULL, 0, 0, 0, NULL, 0, 0);
    TP_WAIT(loop, hconn.closed, 5000);
    LG_EXPECT(hconn.closed);
    LG_EXPECT_INT(stat_value(stats.outbound_flood), 1);
    finish_test();
}

LG_TEST(test_rapid_reset_goaway)
{
    lg_http2_settings_t s = defaults();
    start(&s, NULL, 0, 0);
    TP_WAIT(loop, peer.frames[NGHTTP2_SETTINGS] != 0, 5000);
    for (int i = 0; i < 400; ++i) {
        int32_t id = tp_request(&peer, "GET", "/hold", NULL, 0, 0, 0, NULL, 0, 0);
        nghttp2_submit_rst_stream(peer.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        tp_flush(&peer);
    }
    TP_WAIT(loop, peer.goaway && hconn.closed && peer.eof, 10000);
    LG_EXPECT(peer.goaway);
    LG_EXPECT_INT(peer.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
    LG_EXPECT(hconn.closed);
    LG_EXPECT(peer.eof);
    LG_EXPECT(n_fakes >= 250 && n_fakes < 300); /* the work stopped at the limit */
    LG_EXPECT_INT(stat_value(stats.downstream_rq_too_many_premature_resets), 1);
    finish_test();
}

LG_TEST(test_inbound_frame_budgets)
{
    /* two empty DATA frames without END_STREAM */
    lg_http2_settings_t s = defaults();
    start(&s, NULL, 0, 0);
    int32_t id = tp_open_stream(&peer, "/hold");
    TP_WAIT(loop, fake_by_path("/hold", 0) != NULL, 5000);
    tp_raw_frame(&peer, NGHTTP2_DATA, 0, id, NULL, 0);
    tp_raw_frame(&peer, NGHTTP2_DATA, 0, id, NULL, 0);
    TP_WAIT(loop, hconn.closed, 5000);
    LG_EXPECT(hconn.closed);
    LG_EXPECT_INT(stat_value(stats.inbound_empty_frames_flood), 1);
    lg_stream_t *f = fake_by_path("/hold", 0);
    LG_EXPECT(f != NULL && f->reset);
    if (f != NULL)
        LG_EXPECT_INT(f->reason, LG_RESET_OVERFLOW);
    finish_test();

    /* WINDOW_UPDATE: one stream, no DATA sent: 5 + 2 * 1 = 7 allowed */
    start(&s, NULL, 0, 0);
    tp_open_stream(&peer, "/hold");
    TP_WAIT(loop, fake_by_path("/hold", 0) != NULL, 5000);
    static const uint8_t one[4] = {0, 0, 0, 1};
    for (int i = 0; i < 7; ++i)
        tp_raw_frame(&peer, NGHTTP2_WINDOW_UPDATE, 0, 0, one, 4);
    for (int i = 0; i < 5; ++i)
        h2o_evloop_run(loop, 10);
    LG_EXPECT(!hconn.closed);
    tp_raw_frame(&peer, NGHTTP2_WINDOW_UPDATE, 0, 0, one, 4);
    TP_WAIT(loop, hconn.closed, 5000);
    LG_EXPECT(hconn.closed);
    LG_EXPECT_INT(stat_value(stats.inbound_window_update_frames_flood), 1);
    finish_test();

    /* PRIORITY: 100 per stream (+1); no stream open: the 101st closes */
    start(&s, NULL, 0, 0);
    static const uint8_t prio[5] = {0, 0, 0, 0, 15};
    for (int i = 0; i < 101; ++i)
        tp_raw_frame(&peer, NGHTTP2_PRIORITY, 0, 3 + 2 * i, prio, 5);
    TP_WAIT(loop, hconn.closed, 5000);
    LG_EXPECT(hconn.closed);
    LG_EXPECT_INT(stat_value(stats.inbound_priority_frames_flood), 1);
    finish_test();
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    loop = h2o_evloop_create();
    h2o_timeout_init(loop, &zero_to, 0);
    stats.cells = lg_stats_cells_new();
#define LG_X(name) stats.name = lg_stats_register("http2." #name, LG_STAT_COUNTER);
    LG_HTTP2_STATS(LG_X)
#undef LG_X

    LG_RUN(test_concurrent_streams);
    LG_RUN(test_echo_10mb_small_windows);
    LG_RUN(test_response_watermarks);
    LG_RUN(test_trailers_both_ways);
    LG_RUN(test_client_reset_reaches_hcm);
    LG_RUN(test_goaway_on_shutdown);
    LG_RUN(test_read_disable_closes_window);
    LG_RUN(test_header_limits_reset_stream);
    LG_RUN(test_malformed_request);
    LG_RUN(test_cookies_and_authority);
    LG_RUN(test_peer_close_mid_stream);
    LG_RUN(test_early_response_stops_request);
    LG_RUN(test_input_already_read);
    LG_RUN(test_ping_flood_without_reading);
    LG_RUN(test_outbound_frame_flood);
    LG_RUN(test_rapid_reset_goaway);
    LG_RUN(test_inbound_frame_budgets);

    h2o_timeout_dispose(loop, &zero_to);
    h2o_evloop_destroy(loop);
    free(stats.cells);
    return LG_TEST_END();
}
