/*
 * Tests for src/http1_client.c: the upstream HTTP/1.1 codec against a tiny origin on loopback (a
 * thread with a blocking socket that reads each request up to a marker, keeps the exact bytes it
 * got, and writes scripted response bytes), with a fake router and a fake pool that record every
 * callback.
 *
 * Covered: the request bytes (origin-form, host from the authority, hop-by-hop fields dropped,
 * Content-Length and chunked framing, trailers), responses framed by Content-Length, chunked
 * coding with trailers, the close, and none for HEAD/204/304; 1xx skipped; connection reuse and
 * on_capacity; garbage -> PROTOCOL_ERROR; a close before the response is complete ->
 * CONNECTION_CLOSED with request_sent, including the keep-alive race (reused, nothing written:
 * request_sent 0); max_requests_per_connection; `connection: close` and HTTP/1.0 responses;
 * leftover bytes; reset by the router; close() and shutdown(); request watermarks; a 20 MB
 * response with read_disable backpressure and bounded buffering.
 */
#include "http1_client.h"
#include "lg_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static h2o_evloop_t *loop;
static h2o_timeout_t zero_to, tick_to;
static lg_http1_client_settings_t cs;

static uint64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static bool run_until(bool (*pred)(void))
{
    uint64_t deadline = now_ms() + 20000;
    while (!pred()) {
        if (now_ms() > deadline)
            return false;
        h2o_evloop_run(loop, 100);
    }
    return true;
}

static unsigned char pattern_at(uint64_t i)
{
    return (unsigned char)(i % 251);
}

/* ---------------------------------------------------------------------------------------------
 * The origin.
 * ------------------------------------------------------------------------------------------- */

typedef struct st_exchange_t {
    const char *until;    /* read the request up to and including this */
    const char *response; /* then send this (NULL: nothing) */
    bool close_after;     /* then close the connection (the next exchange accepts a new one) */
    uint64_t big_body;    /* send "HTTP/1.1 200 OK" with this many pattern bytes */
} exchange_t;

typedef struct st_origin_t {
    int lfd, port;
    exchange_t script[8];
    int n;
    char received[1 << 17];
    size_t received_len;
    int connections;
    atomic_bool done;
    pthread_t th;
} origin_t;

#define EX(u, r) ((exchange_t){.until = (u), .response = (r)})
#define EX_CLOSE(u, r) ((exchange_t){.until = (u), .response = (r), .close_after = true})
#define EX_BIG(u, n) ((exchange_t){.until = (u), .big_body = (n)})

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static int origin_accept(origin_t *o)
{
    int fd = accept(o->lfd, NULL, NULL);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 15};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ++o->connections;
    return fd;
}

static void *origin_main(void *arg)
{
    origin_t *o = arg;
    size_t mark = 0;
    char buf[65536];
    int fd = origin_accept(o);
    for (int i = 0; i < o->n && fd >= 0; ++i) {
        const exchange_t *x = &o->script[i];
        char *hit;
        while (o->received[o->received_len] = '\0',
               (hit = strstr(o->received + mark, x->until)) == NULL) {
            ssize_t r = recv(fd, buf, sizeof(buf), 0);
            if (r <= 0)
                goto End;
            if (o->received_len + (size_t)r >= sizeof(o->received) - 1) {
                /* a large body: keep only a tail to find the marker in */
                size_t keep = 1024 < o->received_len ? 1024 : o->received_len;
                memmove(o->received, o->received + o->received_len - keep, keep);
                o->received_len = keep;
                mark = 0;
            }
            memcpy(o->received + o->received_len, buf, (size_t)r);
            o->received_len += (size_t)r;
        }
        mark = (size_t)(hit - o->received) + strlen(x->until);
        if (x->response != NULL && !send_all(fd, x->response, strlen(x->response)))
            goto End;
        if (x->big_body > 0) {
            int n = snprintf(buf, sizeof(buf), "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n\r\n",
                             (unsigned long long)x->big_body);
            if (!send_all(fd, buf, (size_t)n))
                goto End;
            for (uint64_t off = 0; off < x->big_body;) {
                size_t k = x->big_body - off > sizeof(buf) ? sizeof(buf) : (size_t)(x->big_body - off);
                for (size_t j = 0; j < k; ++j)
                    buf[j] = (char)pattern_at(off + j);
                if (!send_all(fd, buf, k))
                    goto End;
                off += k;
            }
        }
        if (x->close_after) {
            close(fd);
            fd = i + 1 < o->n ? origin_accept(o) : -1;
        }
    }
    /* keep the connection until the codec closes it */
    while (fd >= 0) {
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r <= 0)
            break;
        if (o->received_len + (size_t)r < sizeof(o->received) - 1) {
            memcpy(o->received + o->received_len, buf, (size_t)r);
            o->received_len += (size_t)r;
        }
    }
End:
    if (fd >= 0)
        close(fd);
    o->received[o->received_len] = '\0';
    atomic_store(&o->done, true);
    return NULL;
}

static origin_t *origin;

static void origin_start(origin_t *o)
{
    int on = 1;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    o->lfd = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(o->lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(o->lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(o->lfd, 8) != 0 ||
        getsockname(o->lfd, (struct sockaddr *)&sin, &len) != 0) {
        perror("origin");
        exit(1);
    }
    o->port = ntohs(sin.sin_port);
    atomic_store(&o->done, false);
    origin = o;
    pthread_create(&o->th, NULL, origin_main, o);
}

static bool origin_done(void)
{
    return atomic_load(&origin->done);
}

static void origin_finish(origin_t *o)
{
    LG_EXPECT(run_until(origin_done));
    pthread_join(o->th, NULL);
    close(o->lfd);
}

/* ---------------------------------------------------------------------------------------------
 * The fake pool and router.
 * ------------------------------------------------------------------------------------------- */

static lg_client_conn_t *conn;
static int capacity_count, closed_count;
static void (*on_capacity_hook)(void);

static void pool_on_capacity(void *ctx, lg_client_conn_t *c)
{
    LG_EXPECT(c == conn);
    ++capacity_count;
    if (on_capacity_hook != NULL)
        on_capacity_hook();
}

static void pool_on_closed(void *ctx, lg_client_conn_t *c)
{
    LG_EXPECT(c == conn);
    ++closed_count;
    conn = NULL;
}

static const lg_client_conn_owner_t owner = {pool_on_capacity, pool_on_closed};

typedef struct st_rq_t {
    h2o_mem_pool_t pool;
    lg_upstream_stream_t *s;
    lg_response_head_t *head;
    int headers_end;
    char *body;
    size_t body_len;
    uint64_t body_total;
    bool pattern_bad, end, release_at_end, disable_at_headers;
    lg_headers_t *trailers;
    int reset_reason, reset_sent, resets;
    int wm_up, wm_down;
    int events_after_end;
    size_t disable_every, next_disable;
    int disable_cycles;
    bool disabled;
    h2o_timeout_entry_t tick;
} rq_t;

static size_t max_input;
static h2o_socket_t *csock;

static void rq_on_headers(void *ctx, lg_response_head_t *head, int end_stream)
{
    rq_t *r = ctx;
    r->events_after_end += r->end;
    r->head = head;
    r->headers_end = end_stream;
    r->end = end_stream;
    if (r->disable_at_headers)
        r->s->ops->read_disable(r->s, 1);
    if (end_stream && r->release_at_end)
        r->s->ops->release(r->s);
}

static void rq_on_data(void *ctx, const void *data, size_t len, int end_stream)
{
    rq_t *r = ctx;
    r->events_after_end += r->end;
    if (csock != NULL && conn != NULL && csock->input->size > max_input)
        max_input = csock->input->size;
    if (r->disable_every) {
        const unsigned char *p = data;
        for (size_t i = 0; i < len; ++i)
            if (p[i] != pattern_at(r->body_total + i))
                r->pattern_bad = true;
    } else if (len > 0) {
        r->body = realloc(r->body, r->body_len + len + 1);
        memcpy(r->body + r->body_len, data, len);
        r->body_len += len;
        r->body[r->body_len] = '\0';
    }
    r->body_total += len;
    r->end = end_stream;
    if (r->disable_every && r->body_total >= r->next_disable && !end_stream && !r->disabled) {
        r->next_disable += r->disable_every;
        r->disabled = true;
        ++r->disable_cycles;
        r->s->ops->read_disable(r->s, 1);
        h2o_timeout_link(loop, &tick_to, &r->tick);
    }
    if (end_stream && r->release_at_end)
        r->s->ops->release(r->s);
}

static void rq_on_trailers(void *ctx, lg_headers_t *trailers)
{
    rq_t *r = ctx;
    r->events_after_end += r->end;
    r->trailers = trailers;
    r->end = true;
    if (r->release_at_end)
        r->s->ops->release(r->s);
}

static void rq_on_reset(void *ctx, lg_reset_reason_t reason, int request_sent)
{
    rq_t *r = ctx;
    r->events_after_end += r->end;
    r->reset_reason = (int)reason;
    r->reset_sent = request_sent;
    ++r->resets;
}

static void rq_on_watermark(void *ctx, int above)
{
    rq_t *r = ctx;
    if (above)
        ++r->wm_up;
    else
        ++r->wm_down;
}

static void rq_tick(h2o_timeout_entry_t *e)
{
    rq_t *r = H2O_STRUCT_FROM_MEMBER(rq_t, tick, e);
    if (csock != NULL && conn != NULL && csock->input->size > max_input)
        max_input = csock->input->size;
    r->disabled = false;
    r->s->ops->read_disable(r->s, 0);
}

static const lg_upstream_callbacks_t rq_cb = {rq_on_headers, rq_on_data, rq_on_trailers, rq_on_reset,
                                              rq_on_watermark};

static rq_t *rq_new(void)
{
    rq_t *r = calloc(1, sizeof(*r));
    h2o_mem_init_pool(&r->pool);
    r->tick.cb = rq_tick;
    return r;
}

static void rq_free(rq_t *r)
{
    h2o_timeout_unlink(&r->tick);
    h2o_mem_clear_pool(&r->pool);
    free(r->body);
    free(r);
}

static bool rq_open(rq_t *r)
{
    r->s = conn->ops->new_stream(conn, &r->pool, &rq_cb, r);
    return r->s != NULL;
}

static lg_request_head_t *req_head(rq_t *r, const char *method, const char *path, int64_t cl)
{
    lg_request_head_t *h = h2o_mem_alloc_pool(&r->pool, sizeof(*h));
    memset(h, 0, sizeof(*h));
    h->method = h2o_iovec_init(method, strlen(method));
    h->path = h2o_iovec_init(path, strlen(path));
    h->authority = LG_LIT("example.com");
    h->scheme = LG_LIT("http");
    h->version = LG_HTTP_11;
    h->content_length = cl;
    return h;
}

static void hdr_add(h2o_mem_pool_t *pool, lg_headers_t *h, const char *name, const char *value)
{
    if (h->size == h->capacity) {
        size_t cap = h->capacity ? h->capacity * 2 : 8;
        lg_header_t *e = h2o_mem_alloc_pool(pool, sizeof(*e) * cap);
        if (h->size)
            memcpy(e, h->entries, sizeof(*e) * h->size);
        h->entries = e;
        h->capacity = cap;
    }
    h->entries[h->size].name = h2o_iovec_init(name, strlen(name));
    h->entries[h->size].value = h2o_iovec_init(value, strlen(value));
    ++h->size;
}

static const h2o_iovec_t *hdr_get(const lg_headers_t *h, const char *name)
{
    for (size_t i = 0; i < h->size; ++i)
        if (h->entries[i].name.len == strlen(name) &&
            memcmp(h->entries[i].name.base, name, h->entries[i].name.len) == 0)
            return &h->entries[i].value;
    return NULL;
}

static bool iov_is(h2o_iovec_t v, const char *s)
{
    return v.len == strlen(s) && memcmp(v.base, s, v.len) == 0;
}

/* ---------------------------------------------------------------------------------------------
 * Connecting.
 * ------------------------------------------------------------------------------------------- */

static void on_connect(h2o_socket_t *sock, const char *err)
{
    if (err != NULL) {
        fprintf(stderr, "connect: %s\n", err);
        h2o_socket_close(sock);
        return;
    }
    csock = sock;
    conn = lg_http1_client_conn_new(sock, &cs, &owner, NULL);
}

static bool connected(void)
{
    return conn != NULL;
}

static bool conn_closed(void)
{
    return conn == NULL;
}

static uint32_t next_max_requests;

static void setup(origin_t *o)
{
    lg_http1_client_settings_init(&cs);
    cs.zero_timeout = &zero_to;
    cs.max_requests_per_connection = next_max_requests;
    next_max_requests = 0;
    capacity_count = closed_count = 0;
    on_capacity_hook = NULL;
    max_input = 0;
    origin_start(o);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    h2o_socket_connect(loop, (struct sockaddr *)&sin, sizeof(sin), on_connect);
    LG_EXPECT(run_until(connected));
}

static rq_t *cur;
static bool cur_ended(void)
{
    return cur->end || cur->resets > 0;
}
static bool cur_has_head(void)
{
    return cur->head != NULL || cur->resets > 0;
}
static int want_capacity;
static bool capacity_reached(void)
{
    return capacity_count >= want_capacity || conn == NULL;
}

static bool wait_end(rq_t *r)
{
    cur = r;
    return run_until(cur_ended);
}

/* ---------------------------------------------------------------------------------------------
 * Tests.
 * ------------------------------------------------------------------------------------------- */

LG_TEST(test_reuse_cl_and_chunked)
{
    origin_t o = {.n = 3};
    o.script[0] = EX("\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\n"
                                           "Connection: keep-alive, x-hop\r\nX-Hop: 1\r\n\r\nhello");
    o.script[1] = EX("hello", "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                                        "4\r\nwxyz\r\n3;x=y\r\n123\r\n0\r\nX-Trailer: yes\r\n\r\n");
    o.script[2] = EX("0\r\nx-t: 1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    setup(&o);

    /* GET, hop-by-hop fields of the request dropped */
    rq_t *r1 = rq_new();
    LG_EXPECT(rq_open(r1));
    LG_EXPECT_INT(conn->ops->active_streams(conn), 1);
    LG_EXPECT(!conn->ops->can_accept_stream(conn));
    lg_request_head_t *h = req_head(r1, "GET", "/a?b=1", -1);
    hdr_add(&r1->pool, &h->headers, "x-a", "1");
    hdr_add(&r1->pool, &h->headers, "connection", "keep-alive");
    hdr_add(&r1->pool, &h->headers, "te", "trailers");
    hdr_add(&r1->pool, &h->headers, "upgrade", "h2c");
    hdr_add(&r1->pool, &h->headers, "host", "wrong");
    r1->s->ops->encode_headers(r1->s, h, 1);
    LG_EXPECT(wait_end(r1));
    LG_EXPECT(r1->head != NULL && r1->head->status == 200 && r1->head->content_length == 5);
    LG_EXPECT(r1->body_len == 5 && memcmp(r1->body, "hello", 5) == 0);
    LG_EXPECT(r1->head != NULL && hdr_get(&r1->head->headers, "x-up") != NULL);
    LG_EXPECT(r1->head != NULL && hdr_get(&r1->head->headers, "connection") == NULL);
    LG_EXPECT(r1->head != NULL && hdr_get(&r1->head->headers, "x-hop") == NULL);
    LG_EXPECT(r1->head != NULL && hdr_get(&r1->head->headers, "content-length") != NULL);
    r1->s->ops->release(r1->s);
    want_capacity = 1;
    LG_EXPECT(run_until(capacity_reached));
    LG_EXPECT_INT(capacity_count, 1);
    LG_EXPECT(conn != NULL && conn->ops->can_accept_stream(conn));

    /* POST with a Content-Length body in two pieces; chunked response with trailers */
    rq_t *r2 = rq_new();
    LG_EXPECT(rq_open(r2));
    r2->s->ops->encode_headers(r2->s, req_head(r2, "POST", "/b", 5), 0);
    r2->s->ops->encode_data(r2->s, "hel", 3, 0);
    r2->s->ops->encode_data(r2->s, "lo", 2, 1);
    LG_EXPECT(wait_end(r2));
    LG_EXPECT(r2->head != NULL && r2->head->status == 201 && r2->head->content_length == -1);
    LG_EXPECT(r2->head != NULL && hdr_get(&r2->head->headers, "transfer-encoding") == NULL);
    LG_EXPECT(r2->body_len == 7 && memcmp(r2->body, "wxyz123", 7) == 0);
    LG_EXPECT(r2->trailers != NULL && r2->trailers->size == 1 &&
              iov_is(r2->trailers->entries[0].name, "x-trailer") &&
              iov_is(r2->trailers->entries[0].value, "yes"));
    r2->s->ops->release(r2->s);
    want_capacity = 2;
    LG_EXPECT(run_until(capacity_reached));

    /* chunked request with trailers (unknown length) */
    rq_t *r3 = rq_new();
    LG_EXPECT(rq_open(r3));
    r3->s->ops->encode_headers(r3->s, req_head(r3, "PUT", "/c", -1), 0);
    r3->s->ops->encode_data(r3->s, "abc", 3, 0);
    lg_headers_t *t = h2o_mem_alloc_pool(&r3->pool, sizeof(*t));
    memset(t, 0, sizeof(*t));
    hdr_add(&r3->pool, t, "x-t", "1");
    hdr_add(&r3->pool, t, "bad", "a\r\nx: y"); /* cannot be written: dropped */
    r3->s->ops->encode_trailers(r3->s, t);
    LG_EXPECT(wait_end(r3));
    LG_EXPECT(r3->body_len == 2 && memcmp(r3->body, "ok", 2) == 0);
    r3->s->ops->release(r3->s);
    want_capacity = 3;
    LG_EXPECT(run_until(capacity_reached));

    conn->ops->close(conn); /* synchronous: on_closed before it returns */
    LG_EXPECT_INT(closed_count, 1);
    LG_EXPECT(conn == NULL);
    origin_finish(&o);
    LG_EXPECT_INT(o.connections, 1);
    LG_EXPECT_STR(o.received, "GET /a?b=1 HTTP/1.1\r\nhost: example.com\r\nx-a: 1\r\n\r\n"
                              "POST /b HTTP/1.1\r\nhost: example.com\r\ncontent-length: 5\r\n\r\nhello"
                              "PUT /c HTTP/1.1\r\nhost: example.com\r\ntransfer-encoding: chunked\r\n\r\n"
                              "3\r\nabc\r\n0\r\nx-t: 1\r\n\r\n");
    rq_free(r1);
    rq_free(r2);
    rq_free(r3);
}

LG_TEST(test_no_body_responses)
{
    origin_t o = {.n = 4};
    o.script[0] = EX("\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
    o.script[1] = EX("\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n");
    o.script[2] = EX("\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n");
    o.script[3] = EX("\r\n\r\n", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                                           "Link: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    setup(&o);
    const char *methods[] = {"HEAD", "GET", "GET", "POST"};
    const int statuses[] = {200, 204, 304, 200};
    for (int i = 0; i < 4; ++i) {
        rq_t *r = rq_new();
        LG_EXPECT(rq_open(r));
        r->s->ops->encode_headers(r->s, req_head(r, methods[i], "/x", -1), 1);
        LG_EXPECT(wait_end(r));
        LG_EXPECT(r->head != NULL && r->head->status == statuses[i]);
        LG_EXPECT_INT(r->headers_end, i < 3);
        if (i == 0)
            LG_EXPECT(r->head != NULL && r->head->content_length == 100);
        if (i == 3)
            LG_EXPECT(r->body_len == 2 && r->resets == 0);
        r->s->ops->release(r->s);
        want_capacity = i + 1;
        LG_EXPECT(run_until(capacity_reached));
        LG_EXPECT_INT(capacity_count, i + 1);
        rq_free(r);
    }
    conn->ops->close(conn);
    origin_finish(&o);
    LG_EXPECT_INT(o.connections, 1);
    /* a POST without body says so */
    LG_EXPECT(strstr(o.received, "POST /x HTTP/1.1\r\nhost: example.com\r\ncontent-length: 0\r\n\r\n") != NULL);
}

LG_TEST(test_close_delimited_and_http10)
{
    origin_t o = {.n = 2};
    o.script[0] = EX_CLOSE("\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\nuntil the close");
    o.script[1] = EX("\r\n\r\n", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
    setup(&o);
    rq_t *r = rq_new();
    r->release_at_end = true;
    LG_EXPECT(rq_open(r));
    r->s->ops->encode_headers(r->s, req_head(r, "GET", "/", -1), 1);
    LG_EXPECT(wait_end(r));
    LG_EXPECT(r->head != NULL && r->head->content_length == -1 && r->headers_end == 0);
    LG_EXPECT(r->body_len == 15 && memcmp(r->body, "until the close", 15) == 0);
    LG_EXPECT(r->resets == 0);
    LG_EXPECT(run_until(conn_closed));
    LG_EXPECT_INT(capacity_count, 0);
    rq_free(r);

    /* HTTP/1.0 answer: complete, but the connection is not reused */
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o.port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    h2o_socket_connect(loop, (struct sockaddr *)&sin, sizeof(sin), on_connect);
    LG_EXPECT(run_until(connected));
    r = rq_new();
    LG_EXPECT(rq_open(r));
    r->s->ops->encode_headers(r->s, req_head(r, "GET", "/", -1), 1);
    LG_EXPECT(wait_end(r));
    LG_EXPECT(r->body_len == 2 && r->resets == 0);
    r->s->ops->release(r->s);
    LG_EXPECT(run_until(conn_closed));
    LG_EXPECT_INT(capacity_count, 0);
    LG_EXPECT_INT(closed_count, 2);
    origin_finish(&o);
    rq_free(r);
}

static bool reading_stopped(void)
{
    return conn == NULL || !h2o_socket_is_reading(csock);
}

LG_TEST(test_eof_while_read_disabled)
{
    /* A close-delimited body held while the router does not read, then the close: the held
     * bytes are still delivered, and the close ends the body instead of failing the stream. */
    origin_t o = {.n = 1};
    o.script[0] = EX_CLOSE("\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n0123456789");
    setup(&o);
    rq_t *r = rq_new();
    r->disable_at_headers = true;
    LG_EXPECT(rq_open(r));
    r->s->ops->encode_headers(r->s, req_head(r, "GET", "/", -1), 1);
    cur = r;
    LG_EXPECT(run_until(cur_has_head));
    LG_EXPECT(run_until(origin_done));
    LG_EXPECT(run_until(reading_stopped)); /* the close was seen */
    LG_EXPECT(conn != NULL && !r->end && r->resets == 0);
    r->s->ops->read_disable(r->s, 0);
    LG_EXPECT(wait_end(r));
    LG_EXPECT(r->body_len == 10 && r->resets == 0 && r->end);
    r->s->ops->release(r->s);
    LG_EXPECT(run_until(conn_closed));
    origin_finish(&o);
    rq_free(r);
}

struct bad_case {
    const char *name, *response;
    bool head_first; /* the head is delivered before the error */
};

LG_TEST(test_garbage_is_protocol_error)
{
    const struct bad_case cases[] = {
        {"status", "HTTP/1.1 2OO OK\r\n\r\n", false},
        {"junk", "garbage\r\n\r\n", false},
        {"cl+te", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
        {"obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", false},
        {"te gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false},
        {"chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", true},
        {"101", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        origin_t o = {.n = 1};
        o.script[0] = EX("\r\n\r\n", cases[i].response);
        setup(&o);
        rq_t *r = rq_new();
        LG_EXPECT(rq_open(r));
        r->s->ops->encode_headers(r->s, req_head(r, "GET", "/", -1), 1);
        LG_EXPECT(wait_end(r));
        LG_EXPECT(run_until(conn_closed));
        if (r->resets != 1 || r->reset_reason != LG_RESET_PROTOCOL_ERROR || r->reset_sent != 1 ||
            (r->head != NULL) != cases[i].head_first || closed_count != 1) {
            fprintf(stderr, "case %s: resets %d reason %d sent %d head %d\n", cases[i].name,
                    r->resets, r->reset_reason, r->reset_sent, r->head != NULL);
            LG_EXPECT(0);
        }
        r->s->ops->release(r->s); /* only release may follow a reset */
        origin_finish(&o);
        rq_free(r);
    }
}

LG_TEST(test_early_close)
{
    /* closed after reading the request, without a response (fresh connection: sent) */
    origin_t o = {.n = 1};
    o.script[0] = EX_CLOSE("\r\n\r\n", NULL);
    setup(&o);
    rq_t *r = rq_new();
    LG_EXPECT(rq_open(r));
    r->s->ops->encode_headers(r->s, req_head(r, "GET", "/", -1), 1);
    LG_EXPECT(wait_end(r));
    LG_EXPECT(r->resets == 1 && r->reset_reason == LG_RESET_CONNECTION_CLOSED && r->reset_sent == 1);
    LG_EXPECT(run_until(conn_closed));
    r->s->ops->release(r->s);
    origin_finish(&o);
    rq_free(r);

    /* closed in the middle of a Content-Length body */
    origin_t p = {.n = 1};
    p.script[0] = EX_CLOSE("\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345");
    setup(&p);
    r = rq_new();
    LG_EXPECT(rq_open(r));
    r->s->ops->encode_headers(r->s, req_head(r, "GET", "/", -1), 1);
    LG_EXPECT(wait_end(r));
    LG_EXPECT(r->head != NULL && r->body_len == 5);
    LG_EXPECT(r->resets == 1 && r->reset_reason == LG_RESET_CONNECTION_CLOSED && r->reset_sent == 1);
    LG_EXPECT(run_until(conn_closed));
    r->s->ops->release(r->s);
    origin_finish(&p);
    rq_free(r);
}

static rq_t *race_r2;
static void open_second(void)
{
    race_r2 = rq_new();
    LG_EXPECT(rq_open(race_r2)); /* the router has not written it yet */
}

LG_TEST(test_keepalive_race)
{
    /* The origin closes its side right after a complete keep-alive response; the next stream on
     * the reused connection has written nothing when the close is seen: request_sent = 0. */
    origin_t o = {.n = 1};
    o.script[0] = EX_CLOSE("\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    setup(&o);
    on_capacity_hook = open_second;
    rq_t *r1 = rq_new();
    r1->release_at_end = true;
    LG_EXPECT(rq_open(r1));
    r1->s->ops->encode_headers(r1->s, req_head(r1, "GET", "/", -1), 1);
    LG_EXPECT(wait_end(r1));
    want_capacity = 1;
    LG_EXPECT(run_until(capacity_reached));
    LG_EXPECT(race_r2 != NULL);
    if (race_r2 != NULL) {
        LG_EXPECT(wait_end(race_r2));
        LG_EXPECT(race_r2->resets == 1 && race_r2->reset_reason == LG_RESET_CONNECTION_CLOSED &&
                  race_r2->reset_sent == 0);
        /* writing after the reset does nothing; release frees it */
        race_r2->s->ops->encode_headers(race_r2->s, req_head(race_r2, "GET", "/", -1), 1);
        race_r2->s->ops->release(race_r2->s);
        rq_free(race_r2);
        race_r2 = NULL;
    }
    LG_EXPECT(run_until(conn_closed));
    origin_finish(&o);
    rq_free(r1);
}

LG_TEST(test_connection_limits)
{
    /* max_requests_per_connection = 1: the request says close, no capacity afterwards */
    origin_t p = {.n = 1};
    p.script[0] = EX("\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    next_max_requests = 1;
    setup(&p);
    rq_t *r = rq_new();
    LG_EXPECT(rq_open(r));
    r->s->ops->encode_headers(r->s, req_head(r, "GET", "/", -1), 1);
    LG_EXPECT(wait_end(r));
    r->s->ops->release(r->s);
    LG_EXPECT(run_until(conn_closed));
    LG_EXPECT_INT(capacity_count, 0);
    origin_finish(&p);
    LG_EXPECT(strstr(p.received, "connection: close\r\n") != NULL);
    rq_free(r);

    /* the response says close */
    origin_t q = {.n = 1};
    q.script[0] = EX("\r\n\r\n", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
    setup(&q);
    r = rq_new();
    LG_EXPECT(rq_open(r));
    r->s->ops->encode_headers(r->s, req_head(r, "GET", "/", -1), 1);
    LG_EXPECT(wait_end(r));
    LG_EXPECT(r->resets == 0 && r->body_len == 2);
    r->s->ops->release(r->s);
    LG_EXPECT(run_until(conn_closed));
    LG_EXPECT_INT(capacity_count, 0);
    origin_finish(&q);
    rq_free(r);

    /* bytes after the response: the connection is not reused */
    origin_t x = {.n = 1};
    x.script[0] = EX("\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA");
    setup(&x);
    r = rq_new();
    LG_EXPECT(rq_open(r));
    r->s->ops->encode_headers(r->s, req_head(r, "GET", "/", -1), 1);
    LG_EXPECT(wait_end(r));
    LG_EXPECT(r->resets == 0 && r->body_len == 2);
    r->s->ops->release(r->s);
    LG_EXPECT(run_until(conn_closed));
    LG_EXPECT_INT(capacity_count, 0);
    origin_finish(&x);
    rq_free(r);

    /* shutdown of an idle connection closes it from the loop */
    origin_t y = {.n = 0};
    setup(&y);
    conn->ops->shutdown(conn);
    LG_EXPECT(conn != NULL && !conn->ops->can_accept_stream(conn));
    LG_EXPECT(run_until(conn_closed));
    LG_EXPECT_INT(closed_count, 1);
    origin_finish(&y);
}

LG_TEST(test_reset_and_close)
{
    /* the router resets after the head: nothing more is delivered, the connection goes */
    origin_t o = {.n = 1};
    o.script[0] = EX("\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
    setup(&o);
    rq_t *r = rq_new();
    LG_EXPECT(rq_open(r));
    r->s->ops->encode_headers(r->s, req_head(r, "GET", "/", -1), 1);
    cur = r;
    LG_EXPECT(run_until(cur_has_head));
    r->s->ops->reset(r->s);
    LG_EXPECT(run_until(conn_closed));
    LG_EXPECT(r->resets == 0);
    origin_finish(&o);
    rq_free(r);

    /* close() with a stream waiting for its response: on_reset(LOCAL), then on_closed */
    origin_t p = {.n = 1};
    p.script[0] = EX("\r\n\r\n", NULL);
    setup(&p);
    r = rq_new();
    LG_EXPECT(rq_open(r));
    r->s->ops->encode_headers(r->s, req_head(r, "GET", "/", -1), 1);
    conn->ops->close(conn);
    LG_EXPECT(r->resets == 1 && r->reset_reason == LG_RESET_LOCAL);
    LG_EXPECT_INT(closed_count, 1);
    r->s->ops->release(r->s);
    origin_finish(&p);
    rq_free(r);
}

LG_TEST(test_request_watermarks)
{
    static char body[3 * 1024 * 1024];
    memset(body, 'b', sizeof(body));
    origin_t o = {.n = 1};
    o.script[0] = EX("bbbb\r\n0\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    setup(&o);
    int sz = 64 * 1024; /* so that the 3 MB take many writes */
    setsockopt(h2o_socket_get_fd(csock), SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    rq_t *r = rq_new();
    LG_EXPECT(rq_open(r));
    r->s->ops->encode_headers(r->s, req_head(r, "POST", "/", -1), 0);
    r->s->ops->encode_data(r->s, body, sizeof(body), 0);
    r->s->ops->encode_data(r->s, "", 0, 1);
    LG_EXPECT(wait_end(r));
    LG_EXPECT(r->wm_up == 1 && r->wm_down == 1);
    r->s->ops->release(r->s);
    conn->ops->close(conn);
    origin_finish(&o);
    rq_free(r);
}

LG_TEST(test_large_response_backpressure)
{
    const uint64_t total = 20ull * 1024 * 1024;
    origin_t o = {.n = 1};
    o.script[0] = EX_BIG("\r\n\r\n", total);
    setup(&o);
    int sz = 64 * 1024;
    setsockopt(h2o_socket_get_fd(csock), SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    rq_t *r = rq_new();
    r->disable_every = 2 * 1024 * 1024;
    r->next_disable = r->disable_every;
    LG_EXPECT(rq_open(r));
    r->s->ops->encode_headers(r->s, req_head(r, "GET", "/big", -1), 1);
    LG_EXPECT(wait_end(r));
    LG_EXPECT(r->body_total == total && !r->pattern_bad && r->resets == 0);
    LG_EXPECT(r->disable_cycles >= 5);
    LG_EXPECT(max_input > 0 && max_input <= 64 * 1024 + 512 * 1024);
    r->s->ops->release(r->s);
    conn->ops->close(conn);
    origin_finish(&o);
    rq_free(r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    loop = h2o_evloop_create();
    h2o_timeout_init(loop, &zero_to, 0);
    h2o_timeout_init(loop, &tick_to, 5);

    LG_RUN(test_reuse_cl_and_chunked);
    LG_RUN(test_no_body_responses);
    LG_RUN(test_close_delimited_and_http10);
    LG_RUN(test_eof_while_read_disabled);
    LG_RUN(test_garbage_is_protocol_error);
    LG_RUN(test_early_close);
    LG_RUN(test_keepalive_race);
    LG_RUN(test_connection_limits);
    LG_RUN(test_reset_and_close);
    LG_RUN(test_request_watermarks);
    LG_RUN(test_large_response_backpressure);

    h2o_evloop_run(loop, 0);
    h2o_timeout_dispose(loop, &zero_to);
    h2o_timeout_dispose(loop, &tick_to);
    h2o_evloop_destroy(loop);
    return LG_TEST_END();
}
