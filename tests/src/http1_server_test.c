/*
 * Tests for src/http1_server.c: the downstream HTTP/1.1 codec over loopback, driven by real
 * clients (curl, and raw sockets writing exact bytes from a client thread) against a fake
 * connection manager defined here (lg_hcm_* and lg_stream_pool), which records every event and
 * answers in the way each test asks.
 *
 * Covered: keep-alive, pipelining of several requests in one write (answered in order, one at a
 * time), chunked bodies both ways with trailers, 100-continue (also while reading is disabled),
 * HTTP/1.0 (close-delimited and keep-alive), absolute-form targets, request-smuggling inputs
 * (rejected with Envoy's status and details, nothing after them parsed, connection closed),
 * HEAD/204/304 framing, hop-by-hop fields, a 50 MB upload with read_disable backpressure and a
 * 20 MB download with watermarks (both with bounded buffering), pipelined input held without
 * bound checks, peer close mid-request and mid-response, drain, idle timeout.
 */
#include "http1_server.h"
#include "lg_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------
 * The loop, the listener.
 * ------------------------------------------------------------------------------------------- */

static h2o_evloop_t *loop;
static h2o_timeout_t zero_to, idle_to, tick_to, linger_to;
static lg_http1_settings_t settings;
static h2o_socket_t *listener;
static int port;
static int accepted, closed;
static h2o_socket_t *last_sock; /* the accepted socket of the last connection, while open */
static lg_http1_server_conn_t *last_codec;
static int small_rcvbuf;
static const char *prefill; /* bytes put in sock->input before the codec takes the socket */

struct st_lg_hcm_conn_t {
    int id;
};
static struct st_lg_hcm_conn_t hcm_conns[256];

static uint64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* Runs the loop until pred() holds; false after 20 s (a hang fails the test, never blocks). */
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

static void on_accept(h2o_socket_t *l, const char *err)
{
    if (err != NULL)
        return;
    for (int i = 0; i < 16; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(l);
        if (sock == NULL)
            break;
        if (small_rcvbuf) {
            int sz = 64 * 1024;
            setsockopt(h2o_socket_get_fd(sock), SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        }
        if (prefill != NULL) {
            /* as if a TLS handshake had already decrypted these bytes */
            h2o_iovec_t r = h2o_buffer_reserve(&sock->input, strlen(prefill));
            memcpy(r.base, prefill, strlen(prefill));
            sock->input->size += strlen(prefill);
        }
        last_sock = sock;
        lg_hcm_conn_t *hc = &hcm_conns[accepted % 256];
        hc->id = accepted++;
        last_codec = lg_http1_server_conn_new(sock, hc, &settings);
    }
}

static void start_listener(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        perror("listen");
        exit(1);
    }
    port = ntohs(sin.sin_port);
    listener = h2o_evloop_socket_create(loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(listener, on_accept);
}

/* ---------------------------------------------------------------------------------------------
 * The fake connection manager.
 * ------------------------------------------------------------------------------------------- */

typedef enum { RESP_AT_END, RESP_AT_HEADERS, RESP_MANUAL } resp_when_t;
typedef enum { KIND_CL, KIND_CHUNKED, KIND_CHUNKED_TRAILERS, KIND_NO_BODY, KIND_BIG } resp_kind_t;

static struct {
    resp_when_t when;
    resp_kind_t kind;
    bool disable_at_headers;  /* read_disable(1) in on_headers, re-enabled by a timer */
    size_t disable_every;     /* read_disable(1) every so many body bytes, re-enabled by a timer */
    bool pattern_body;        /* check the body against the pattern instead of keeping it */
    uint64_t big_response;    /* KIND_BIG: pattern bytes to send */
} B;

struct st_lg_stream_t {
    h2o_mem_pool_t pool;
    lg_server_stream_t *codec;
    lg_hcm_conn_t *conn;
    lg_request_head_t *head;
    int headers_end_stream;
    char *body;
    size_t body_len;
    uint64_t body_total;
    bool pattern_bad;
    lg_headers_t *trailers;
    bool request_complete, response_started, response_complete, released;
    int reset_reason; /* 0: none */
    int proto_status;
    const char *proto_details;
    int wm_up, wm_down;
    bool wm_above, disabled;
    int disable_cycles;
    uint64_t resp_sent;
    size_t max_buffered;
    size_t next_disable;
    h2o_timeout_entry_t tick;
};

#define MAX_STREAMS 512
static lg_stream_t *streams[MAX_STREAMS];
static int n_streams, active, max_active;
static size_t max_input; /* the most request bytes seen held in the socket's input */

static void note_input(void)
{
    if (last_sock != NULL && last_sock->input->size > max_input)
        max_input = last_sock->input->size;
}

static unsigned char pattern_at(uint64_t i)
{
    return (unsigned char)(i % 251);
}

static const char *pattern_chunk(uint64_t off, size_t len)
{
    static char buf[256 * 1024 + 256];
    static bool ready;
    if (!ready) {
        for (size_t i = 0; i < sizeof(buf); ++i)
            buf[i] = (char)pattern_at(i);
        ready = true;
    }
    (void)len;
    return buf + off % 251;
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
    h->entries[h->size].name = h2o_strdup(pool, name, SIZE_MAX);
    h->entries[h->size].value = h2o_strdup(pool, value, SIZE_MAX);
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

static void maybe_release(lg_stream_t *s)
{
    if (s->request_complete && s->response_complete && !s->released) {
        s->released = true;
        --active;
        s->codec->ops->release(s->codec);
    }
}

/* One chunk per loop pass, as an upstream would deliver it; stops while above the watermark. */
static void pump(lg_stream_t *s)
{
    if (s->wm_above || s->resp_sent >= B.big_response || s->released)
        return;
    uint64_t left = B.big_response - s->resp_sent;
    size_t n = left > 256 * 1024 ? 256 * 1024 : (size_t)left;
    const char *p = pattern_chunk(s->resp_sent, n);
    s->resp_sent += n;
    bool end = s->resp_sent == B.big_response;
    if (end)
        s->response_complete = true;
    s->codec->ops->encode_data(s->codec, p, n, end);
    size_t b = s->codec->ops->buffered(s->codec);
    if (b > s->max_buffered)
        s->max_buffered = b;
    if (end)
        maybe_release(s);
    else if (!h2o_timeout_is_linked(&s->tick))
        h2o_timeout_link(loop, &zero_to, &s->tick);
}

/* The answer: status from a "/sNNN" path, body "echo:<path>:<request body>". */
static void respond(lg_stream_t *s)
{
    if (s->response_started || s->released)
        return;
    s->response_started = true;
    lg_response_head_t *h = h2o_mem_alloc_pool(&s->pool, sizeof(*h));
    memset(h, 0, sizeof(*h));
    h->status = 200;
    h->content_length = -1;
    h2o_iovec_t path = s->head->path;
    if (path.len >= 5 && path.base[1] == 's')
        h->status = atoi(path.base + 2);
    hdr_add(&s->pool, &h->headers, "x-test", "1");
    hdr_add(&s->pool, &h->headers, "keep-alive", "timeout=5"); /* hop-by-hop: never sent */
    hdr_add(&s->pool, &h->headers, "connection", "x-foo");
    char *body = h2o_mem_alloc_pool(&s->pool, path.len + s->body_len + 8);
    size_t blen = (size_t)sprintf(body, "echo:%.*s:", (int)path.len, path.base);
    if (s->body_len)
        memcpy(body + blen, s->body, s->body_len);
    blen += s->body_len;

    lg_server_stream_t *c = s->codec;
    switch (B.kind) {
    case KIND_CL:
        h->content_length = (int64_t)blen;
        s->response_complete = true;
        c->ops->encode_headers(c, h, 0);
        c->ops->encode_data(c, body, blen, 1);
        break;
    case KIND_CHUNKED:
        s->response_complete = true;
        c->ops->encode_headers(c, h, 0);
        c->ops->encode_data(c, body, blen, 0);
        c->ops->encode_data(c, "", 0, 1);
        break;
    case KIND_CHUNKED_TRAILERS: {
        lg_headers_t *t = h2o_mem_alloc_pool(&s->pool, sizeof(*t));
        memset(t, 0, sizeof(*t));
        hdr_add(&s->pool, t, "x-r", "done");
        s->response_complete = true;
        c->ops->encode_headers(c, h, 0);
        c->ops->encode_data(c, body, blen, 0);
        c->ops->encode_trailers(c, t);
        break;
    }
    case KIND_NO_BODY:
        s->response_complete = true;
        c->ops->encode_headers(c, h, 1);
        break;
    case KIND_BIG:
        h->content_length = (int64_t)B.big_response;
        c->ops->encode_headers(c, h, 0);
        pump(s);
        return;
    }
    maybe_release(s);
}

static void on_tick(h2o_timeout_entry_t *e)
{
    lg_stream_t *s = H2O_STRUCT_FROM_MEMBER(lg_stream_t, tick, e);
    note_input();
    if (B.kind == KIND_BIG) {
        pump(s);
        return;
    }
    if (s->disabled && !s->released) {
        s->disabled = false;
        s->codec->ops->read_disable(s->codec, 0);
    }
}

static void request_done(lg_stream_t *s)
{
    s->request_complete = true;
    if (B.when == RESP_AT_END)
        respond(s);
    else
        maybe_release(s);
}

lg_stream_t *lg_hcm_stream_new(lg_hcm_conn_t *conn, lg_server_stream_t *cs)
{
    lg_stream_t *s = calloc(1, sizeof(*s));
    h2o_mem_init_pool(&s->pool);
    s->codec = cs;
    s->conn = conn;
    s->tick.cb = on_tick;
    s->next_disable = B.disable_every;
    cs->hcm = s;
    if (n_streams < MAX_STREAMS)
        streams[n_streams++] = s;
    if (++active > max_active)
        max_active = active;
    return s;
}

h2o_mem_pool_t *lg_stream_pool(lg_stream_t *s)
{
    return &s->pool;
}

void lg_hcm_on_headers(lg_stream_t *s, lg_request_head_t *head, int end_stream)
{
    s->head = head;
    s->headers_end_stream = end_stream;
    if (B.disable_at_headers && !end_stream) {
        s->disabled = true;
        s->codec->ops->read_disable(s->codec, 1);
        h2o_timeout_link(loop, &tick_to, &s->tick);
    }
    if (B.when == RESP_AT_HEADERS)
        respond(s);
    if (end_stream)
        request_done(s);
}

void lg_hcm_on_data(lg_stream_t *s, const void *data, size_t len, int end_stream)
{
    note_input();
    if (B.pattern_body) {
        const unsigned char *p = data;
        for (size_t i = 0; i < len; ++i)
            if (p[i] != pattern_at(s->body_total + i)) {
                s->pattern_bad = true;
                break;
            }
    } else if (len > 0) {
        s->body = realloc(s->body, s->body_len + len);
        memcpy(s->body + s->body_len, data, len);
        s->body_len += len;
    }
    s->body_total += len;
    if (B.disable_every && s->body_total >= s->next_disable && !end_stream && !s->disabled) {
        s->next_disable += B.disable_every;
        s->disabled = true;
        ++s->disable_cycles;
        s->codec->ops->read_disable(s->codec, 1);
        h2o_timeout_link(loop, &tick_to, &s->tick);
    }
    if (end_stream)
        request_done(s);
}

void lg_hcm_on_trailers(lg_stream_t *s, lg_headers_t *trailers)
{
    s->trailers = trailers;
    request_done(s);
}

void lg_hcm_on_protocol_error(lg_stream_t *s, int status, const char *details)
{
    s->proto_status = status;
    s->proto_details = details;
    s->request_complete = true;
    if (s->response_started) {
        s->released = true;
        --active;
        s->codec->ops->reset(s->codec);
        s->codec->ops->release(s->codec);
        return;
    }
    s->response_started = true;
    s->response_complete = true;
    lg_response_head_t *h = h2o_mem_alloc_pool(&s->pool, sizeof(*h));
    memset(h, 0, sizeof(*h));
    h->status = status;
    h->content_length = 3;
    s->codec->ops->encode_headers(s->codec, h, 0);
    s->codec->ops->encode_data(s->codec, "bad", 3, 1);
    maybe_release(s);
}

void lg_hcm_on_reset(lg_stream_t *s, lg_reset_reason_t reason)
{
    s->reset_reason = (int)reason;
    if (!s->released) {
        s->released = true;
        --active;
        s->codec->ops->release(s->codec);
    }
}

void lg_hcm_on_watermark(lg_stream_t *s, int above)
{
    s->wm_above = above != 0;
    if (above) {
        ++s->wm_up;
    } else {
        ++s->wm_down;
        if (B.kind == KIND_BIG)
            pump(s);
    }
}

void lg_hcm_conn_closed(lg_hcm_conn_t *conn)
{
    (void)conn;
    ++closed;
    last_sock = NULL;
    last_codec = NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Clients: a thread doing blocking socket I/O with a script, or running curl.
 * ------------------------------------------------------------------------------------------- */

typedef struct st_client_t {
    const char *send1;
    size_t send1_len;
    const char *wait_for; /* then send2 */
    const char *send2;
    size_t send2_len;
    uint64_t big_body;       /* pattern bytes written after send1 */
    const char *until;       /* stop reading once this was seen `until_count` times */
    int until_count;
    bool close_after_send;   /* close at once after sending (mid-request close) */
    bool close_after_until;  /* close right after `until` (mid-response close) */
    uint64_t big_response;   /* read this many body bytes after the head, checking the pattern */
    bool resp_pattern_bad;
    uint64_t resp_body_got;
    const char *curl_args;   /* run curl with these args instead (%d = port) */
    char *resp;
    size_t resp_len, resp_cap;
    bool eof;
    atomic_bool done;
    pthread_t th;
} client_t;

static int notify_pipe[2];
static h2o_socket_t *notify_sock;
static void on_notify(h2o_socket_t *sock, const char *err)
{
    h2o_buffer_consume(&sock->input, sock->input->size);
}

static void client_keep(client_t *c, const char *p, size_t n)
{
    if (c->resp_len + n + 1 > c->resp_cap) {
        c->resp_cap = (c->resp_len + n + 1) * 2;
        c->resp = realloc(c->resp, c->resp_cap);
    }
    memcpy(c->resp + c->resp_len, p, n);
    c->resp_len += n;
    c->resp[c->resp_len] = '\0';
}

static int count_in(const char *hay, size_t len, const char *needle)
{
    int n = 0;
    size_t nl = strlen(needle);
    for (size_t i = 0; i + nl <= len; ++i)
        if (memcmp(hay + i, needle, nl) == 0)
            ++n;
    return n;
}

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

static void *client_main(void *arg)
{
    client_t *c = arg;
    char buf[65536];

    if (c->curl_args != NULL) {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), c->curl_args, port, port, port);
        FILE *f = popen(cmd, "r");
        size_t n;
        while (f != NULL && (n = fread(buf, 1, sizeof(buf), f)) > 0)
            client_keep(c, buf, n);
        if (f != NULL)
            pclose(f);
        goto Done;
    }

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 15};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
        goto Close;
    if (c->send1 != NULL && !send_all(fd, c->send1, c->send1_len))
        goto Close;
    for (uint64_t off = 0; off < c->big_body;) {
        size_t n = c->big_body - off > 65536 ? 65536 : (size_t)(c->big_body - off);
        for (size_t i = 0; i < n; ++i)
            buf[i] = (char)pattern_at(off + i);
        if (!send_all(fd, buf, n))
            goto Close;
        off += n;
    }
    if (c->close_after_send)
        goto Close;
    bool sent2 = c->send2 == NULL;
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r == 0)
            c->eof = true;
        if (r <= 0)
            break;
        if (c->big_response > 0) {
            /* keep the head, check the body against the pattern */
            size_t i = 0;
            if (strstr(c->resp ? c->resp : "", "\r\n\r\n") == NULL) {
                client_keep(c, buf, (size_t)r);
                char *e = strstr(c->resp, "\r\n\r\n");
                if (e == NULL)
                    continue;
                size_t head_len = (size_t)(e + 4 - c->resp);
                i = (size_t)r - (c->resp_len - head_len);
                c->resp_len = head_len;
                c->resp[head_len] = '\0';
            }
            for (; i < (size_t)r; ++i)
                if ((unsigned char)buf[i] != pattern_at(c->resp_body_got++))
                    c->resp_pattern_bad = true;
            if (c->resp_body_got >= c->big_response)
                break;
            continue;
        }
        client_keep(c, buf, (size_t)r);
        if (!sent2 && strstr(c->resp, c->wait_for) != NULL) {
            sent2 = true;
            if (!send_all(fd, c->send2, c->send2_len))
                break;
        }
        if (c->until != NULL && count_in(c->resp, c->resp_len, c->until) >= c->until_count) {
            if (c->close_after_until)
                break;
            if (c->send2 == NULL || sent2)
                break;
        }
    }
Close:
    close(fd);
Done:
    atomic_store(&c->done, true);
    ssize_t w = write(notify_pipe[1], "x", 1);
    (void)w;
    return NULL;
}

static client_t *cur_client;
static bool client_done(void)
{
    return atomic_load(&cur_client->done);
}
/* Every connection the server accepted is closed, and there was one: a client that connected,
 * sent and closed before the loop ran the accept must not pass as "nothing open". */
static bool all_closed(void)
{
    return accepted > 0 && closed == accepted;
}
static bool client_done_and_closed(void)
{
    return client_done() && all_closed();
}

static void client_start(client_t *c)
{
    atomic_store(&c->done, false);
    cur_client = c;
    pthread_create(&c->th, NULL, client_main, c);
}

static void client_finish(client_t *c)
{
    pthread_join(c->th, NULL);
    free(c->resp);
    c->resp = NULL;
}

/* Runs one scripted client to its end and until every connection closed. */
static void run_client(client_t *c)
{
    client_start(c);
    LG_EXPECT(run_until(client_done));
    pthread_join(c->th, NULL);
    LG_EXPECT(run_until(all_closed));
}

static void reset_state(void)
{
    for (int i = 0; i < n_streams; ++i) {
        h2o_timeout_unlink(&streams[i]->tick);
        h2o_mem_clear_pool(&streams[i]->pool);
        free(streams[i]->body);
        free(streams[i]);
    }
    n_streams = active = max_active = 0;
    max_input = 0;
    accepted = closed = 0;
    small_rcvbuf = 0;
    prefill = NULL;
    memset(&B, 0, sizeof(B));
    lg_http1_settings_init(&settings);
    settings.zero_timeout = &zero_to;
    settings.idle_timeout = &idle_to;
    settings.delayed_close_timeout = &linger_to;
}

#define SEND(c, lit) ((c)->send1 = (lit), (c)->send1_len = sizeof(lit) - 1)

/* ---------------------------------------------------------------------------------------------
 * Tests.
 * ------------------------------------------------------------------------------------------- */

LG_TEST(test_keepalive_curl)
{
    reset_state();
    client_t c = {.curl_args = "curl -s --http1.1 http://127.0.0.1:%d/a http://127.0.0.1:%d/b"};
    run_client(&c);
    LG_EXPECT_STR(c.resp, "echo:/a:echo:/b:");
    LG_EXPECT_INT(accepted, 1);
    LG_EXPECT_INT(n_streams, 2);
    LG_EXPECT_INT(max_active, 1);
    if (n_streams == 2) {
        lg_request_head_t *h = streams[1]->head;
        LG_EXPECT(iov_is(h->method, "GET") && iov_is(h->path, "/b") && iov_is(h->scheme, "http"));
        LG_EXPECT(h->version == LG_HTTP_11);
        LG_EXPECT(hdr_get(&h->headers, "user-agent") != NULL);
        LG_EXPECT(hdr_get(&h->headers, "host") == NULL); /* it is the authority */
        char auth[64];
        snprintf(auth, sizeof(auth), "127.0.0.1:%d", port);
        LG_EXPECT(iov_is(h->authority, auth));
    }
    client_finish(&c);
}

LG_TEST(test_pipelining)
{
    reset_state();
    client_t c = {.until = "echo:/3:", .until_count = 1};
    SEND(&c, "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
             "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
             "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n");
    run_client(&c);
    LG_EXPECT_INT(accepted, 1);
    LG_EXPECT_INT(n_streams, 3);
    LG_EXPECT_INT(max_active, 1);
    LG_EXPECT_INT(count_in(c.resp, c.resp_len, "HTTP/1.1 200 OK\r\n"), 3);
    const char *p1 = strstr(c.resp, "echo:/1:"), *p2 = strstr(c.resp, "echo:/2:hello"),
               *p3 = strstr(c.resp, "echo:/3:");
    LG_EXPECT(p1 != NULL && p2 != NULL && p3 != NULL && p1 < p2 && p2 < p3);
    LG_EXPECT(strstr(c.resp, "x-test: 1\r\n") != NULL);
    LG_EXPECT(strstr(c.resp, "keep-alive") == NULL);
    LG_EXPECT(strstr(c.resp, "x-foo") == NULL);
    LG_EXPECT(strstr(c.resp, "content-length: 13\r\n") != NULL);
    LG_EXPECT(strstr(c.resp, "connection: close") == NULL);
    if (n_streams == 3) {
        LG_EXPECT_INT(streams[0]->headers_end_stream, 1);
        LG_EXPECT_INT(streams[1]->headers_end_stream, 0);
        LG_EXPECT_INT(streams[1]->head->content_length, 5);
    }
    client_finish(&c);
}

LG_TEST(test_input_before_codec)
{
    /* Bytes already in sock->input when the codec takes the socket are served without waiting
     * for more to arrive. */
    reset_state();
    prefill = "GET /pre HTTP/1.1\r\nHost: a\r\n\r\n";
    client_t c = {.until = "echo:/pre:", .until_count = 1};
    run_client(&c);
    LG_EXPECT(c.resp != NULL && strncmp(c.resp, "HTTP/1.1 200 OK\r\n", 17) == 0);
    LG_EXPECT_INT(n_streams, 1);
    client_finish(&c);
}

LG_TEST(test_chunked_both_ways)
{
    reset_state();
    B.kind = KIND_CHUNKED_TRAILERS;
    client_t c = {.until = "0\r\nx-r: done\r\n\r\n", .until_count = 1};
    SEND(&c, "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
             "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: v\r\n\r\n");
    run_client(&c);
    LG_EXPECT_INT(n_streams, 1);
    if (n_streams == 1) {
        lg_stream_t *s = streams[0];
        LG_EXPECT_INT(s->head->content_length, -1);
        LG_EXPECT(hdr_get(&s->head->headers, "transfer-encoding") == NULL);
        LG_EXPECT_INT(s->body_len, 11);
        LG_EXPECT(s->body != NULL && memcmp(s->body, "hello world", 11) == 0);
        LG_EXPECT(s->trailers != NULL && s->trailers->size == 1 &&
                  iov_is(s->trailers->entries[0].name, "x-t") &&
                  iov_is(s->trailers->entries[0].value, "v"));
    }
    LG_EXPECT(strstr(c.resp, "transfer-encoding: chunked\r\n") != NULL);
    LG_EXPECT(strstr(c.resp, "\r\n\r\n14\r\necho:/up:hello world\r\n0\r\nx-r: done\r\n\r\n") != NULL);
    client_finish(&c);

    /* chunked without trailers ends with an empty data event */
    reset_state();
    B.kind = KIND_CHUNKED;
    client_t d = {.until = "\r\n0\r\n\r\n", .until_count = 1};
    SEND(&d, "POST /n HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    run_client(&d);
    LG_EXPECT(strstr(d.resp, "\r\n\r\nb\r\necho:/n:abc\r\n0\r\n\r\n") != NULL);
    LG_EXPECT(n_streams == 1 && streams[0]->trailers == NULL && streams[0]->body_len == 3);
    client_finish(&d);
}

LG_TEST(test_expect_continue)
{
    reset_state();
    client_t c = {.wait_for = "HTTP/1.1 100 Continue\r\n\r\n", .send2 = "hello", .send2_len = 5,
                  .until = "echo:/e:hello", .until_count = 1};
    SEND(&c, "PUT /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    run_client(&c);
    LG_EXPECT(strncmp(c.resp, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 42) == 0);
    LG_EXPECT(n_streams == 1 && hdr_get(&streams[0]->head->headers, "expect") == NULL);
    client_finish(&c);

    /* The manager disables reading in on_headers: the 100 waits until it reads again. */
    reset_state();
    B.disable_at_headers = true;
    client_t d = {.wait_for = "HTTP/1.1 100 Continue\r\n\r\n", .send2 = "hello", .send2_len = 5,
                  .until = "echo:/e:hello", .until_count = 1};
    SEND(&d, "PUT /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    run_client(&d);
    LG_EXPECT(strncmp(d.resp, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 42) == 0);
    client_finish(&d);

    /* A final answer before the body: no 100, and the connection is not reused. */
    reset_state();
    B.when = RESP_AT_HEADERS;
    client_t e = {.until = "echo:/e:", .until_count = 1};
    SEND(&e, "PUT /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    run_client(&e);
    LG_EXPECT(strncmp(e.resp, "HTTP/1.1 200 OK\r\n", 17) == 0);
    LG_EXPECT(strstr(e.resp, "100 Continue") == NULL);
    LG_EXPECT(n_streams == 1 && streams[0]->reset_reason == LG_RESET_CONNECTION_CLOSED);
    client_finish(&e);
}

LG_TEST(test_http10)
{
    /* No length: the body ends with the close. */
    reset_state();
    settings.accept_http_10 = true;
    B.kind = KIND_CHUNKED;
    client_t c = {0};
    SEND(&c, "GET /x HTTP/1.0\r\n\r\n");
    run_client(&c);
    LG_EXPECT(c.eof);
    LG_EXPECT(strncmp(c.resp, "HTTP/1.0 200 OK\r\n", 17) == 0); /* answered in its own version */
    LG_EXPECT(strstr(c.resp, "connection: close\r\n") != NULL);
    LG_EXPECT(strstr(c.resp, "transfer-encoding") == NULL);
    LG_EXPECT(strstr(c.resp, "\r\n\r\necho:/x:") != NULL);
    if (n_streams == 1) {
        LG_EXPECT(streams[0]->head->version == LG_HTTP_10);
        LG_EXPECT_INT(streams[0]->head->authority.len, 0);
    }
    client_finish(&c);

    /* keep-alive asked for and a length known: the connection carries the next request */
    reset_state();
    settings.accept_http_10 = true;
    client_t d = {0};
    SEND(&d, "GET /k1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /k2 HTTP/1.0\r\n\r\n");
    run_client(&d);
    LG_EXPECT(d.eof);
    LG_EXPECT_INT(n_streams, 2);
    LG_EXPECT_INT(accepted, 1);
    const char *k2 = strstr(d.resp, "echo:/k1:HTTP");
    LG_EXPECT(strstr(d.resp, "connection: keep-alive\r\n") != NULL && k2 != NULL &&
              strstr(k2, "connection: close\r\n") != NULL && strstr(k2, "echo:/k2:") != NULL);
    client_finish(&d);

    /* HTTP/1.0 refused (Envoy's default) */
    reset_state();
    client_t e = {0};
    SEND(&e, "GET / HTTP/1.0\r\n\r\n");
    run_client(&e);
    LG_EXPECT(strncmp(e.resp, "HTTP/1.1 426 Upgrade Required\r\n", 31) == 0);
    LG_EXPECT(n_streams == 1 && streams[0]->proto_status == 426);
    client_finish(&e);
}

LG_TEST(test_absolute_form)
{
    reset_state();
    client_t c = {.until = "echo:/?x:", .until_count = 1};
    SEND(&c, "GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"
             "GET HTTP://a.b?x HTTP/1.1\r\nHost: a.b\r\n\r\n");
    run_client(&c);
    LG_EXPECT_INT(n_streams, 2);
    if (n_streams == 2) {
        LG_EXPECT(iov_is(streams[0]->head->authority, "example.com:8080"));
        LG_EXPECT(iov_is(streams[0]->head->path, "/p?q=1"));
        LG_EXPECT(hdr_get(&streams[0]->head->headers, "host") == NULL);
        LG_EXPECT(iov_is(streams[1]->head->authority, "a.b"));
        LG_EXPECT(iov_is(streams[1]->head->path, "/?x"));
    }
    client_finish(&c);

    reset_state();
    settings.allow_absolute_url = false;
    client_t d = {0};
    SEND(&d, "GET http://a/p HTTP/1.1\r\nHost: a\r\n\r\n");
    run_client(&d);
    LG_EXPECT(strncmp(d.resp, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    LG_EXPECT(n_streams == 1 && streams[0]->proto_details != NULL &&
              strcmp(streams[0]->proto_details, "http1.invalid_url") == 0);
    client_finish(&d);
}

struct smuggle_case {
    const char *name, *input;
    int status;
    const char *details;
    bool head_delivered; /* the error is in the body, after the head went to the manager */
};

LG_TEST(test_smuggling_rejected)
{
    static char many[8192], big[70000];
    strcpy(many, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < 101; ++i)
        sprintf(many + strlen(many), "x-h%d: v\r\n", i);
    strcat(many, "\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n");
    strcpy(big, "GET / HTTP/1.1\r\nHost: a\r\nx-big: ");
    memset(big + strlen(big), 'a', 62 * 1024);
    strcat(big, "\r\n\r\n");

    const struct smuggle_case cases[] = {
        {"cl+te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
         400, "http1.content_length_and_chunked_not_allowed", false},
        {"te+cl", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n"
                  "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
         400, "http1.content_length_and_chunked_not_allowed", false},
        {"two cl", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
                   "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
         400, "http1.codec_error", false},
        {"cl list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nGET /admin HTTP/1.1\r\n\r\n",
         400, "http1.codec_error", false},
        {"te gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\nGET /admin HTTP/1.1\r\n\r\n",
         501, "http1.invalid_transfer_encoding", false},
        {"te chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
                             "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
         400, "http1.invalid_transfer_encoding", false},
        {"chunk 0x5", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "0x5\r\nhello\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
         400, "http1.codec_error", true},
        {"chunk 0_2e", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "0_2e\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
         400, "http1.codec_error", true},
        {"chunk bare lf", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\nhello\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
         400, "http1.codec_error", true},
        {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
         400, "http1.codec_error", false},
        {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
         400, "http1.codec_error", false},
        {"bare cr", "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
         400, "http1.codec_error", false},
        {"no host", "GET / HTTP/1.1\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n", 400,
         "missing_host_header", false},
        {"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
         400, "http.invalid_authority", false},
        {"101 headers", many, 431, "http1.too_many_headers", false},
        {"62 KiB head", big, 431, "http1.headers_too_large", false},
        {"http/1.1 target space", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "http1.codec_error",
         false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        const struct smuggle_case *k = &cases[i];
        reset_state();
        client_t c = {.send1 = k->input, .send1_len = strlen(k->input)};
        run_client(&c);
        char want[64];
        snprintf(want, sizeof(want), "HTTP/1.1 %d ", k->status);
        if (c.resp == NULL || strncmp(c.resp, want, strlen(want)) != 0 ||
            strstr(c.resp, "connection: close\r\n") == NULL || !c.eof || n_streams != 1 ||
            streams[0]->proto_status != k->status || streams[0]->proto_details == NULL ||
            strcmp(streams[0]->proto_details, k->details) != 0 ||
            (streams[0]->head != NULL) != k->head_delivered) {
            fprintf(stderr, "case '%s': got %s / streams %d / %s\n", k->name,
                    c.resp ? c.resp : "(nothing)", n_streams,
                    n_streams ? (streams[0]->proto_details ? streams[0]->proto_details : "-") : "-");
            LG_EXPECT(0);
        }
        client_finish(&c);
    }
}

LG_TEST(test_response_framing)
{
    /* HEAD: the length is announced, no body follows, the connection goes on. 204 and 304: no
     * body either; 204 says no length. */
    reset_state();
    client_t c = {.until = "echo:/g:", .until_count = 1};
    SEND(&c, "HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n"
             "GET /s204 HTTP/1.1\r\nHost: a\r\n\r\n"
             "GET /s304 HTTP/1.1\r\nHost: a\r\n\r\n"
             "GET /g HTTP/1.1\r\nHost: a\r\n\r\n");
    run_client(&c);
    LG_EXPECT_INT(n_streams, 4);
    const char *want = "HTTP/1.1 200 OK\r\nx-test: 1\r\ncontent-length: 8\r\n\r\n"
                       "HTTP/1.1 204 No Content\r\nx-test: 1\r\n\r\n"
                       "HTTP/1.1 304 Not Modified\r\nx-test: 1\r\ncontent-length: 11\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nx-test: 1\r\ncontent-length: 8\r\n\r\necho:/g:";
    LG_EXPECT_STR(c.resp, want);
    client_finish(&c);

    /* Chunked when the length is unknown; content-length: 0 for a head-only answer. */
    reset_state();
    B.kind = KIND_NO_BODY;
    client_t d = {.until = "\r\n\r\n", .until_count = 1};
    SEND(&d, "GET /e HTTP/1.1\r\nHost: a\r\n\r\n");
    run_client(&d);
    LG_EXPECT_STR(d.resp, "HTTP/1.1 200 OK\r\nx-test: 1\r\ncontent-length: 0\r\n\r\n");
    client_finish(&d);
}

LG_TEST(test_large_upload_backpressure)
{
    const uint64_t total = 50ull * 1024 * 1024;
    reset_state();
    small_rcvbuf = 1;
    B.pattern_body = true;
    B.disable_every = 4 * 1024 * 1024;
    client_t c = {.big_body = total, .until = "echo:/big:", .until_count = 1};
    SEND(&c, "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 52428800\r\n\r\n");
    run_client(&c);
    LG_EXPECT_INT(n_streams, 1);
    if (n_streams == 1) {
        lg_stream_t *s = streams[0];
        LG_EXPECT(s->body_total == total);
        LG_EXPECT(!s->pattern_bad);
        LG_EXPECT(s->request_complete);
        LG_EXPECT(s->disable_cycles >= 10);
    }
    /* held input: the hold limit plus what one read of the socket brings */
    LG_EXPECT(max_input > 0 && max_input <= 64 * 1024 + 512 * 1024);
    LG_EXPECT(strstr(c.resp ? c.resp : "", "echo:/big:") != NULL);
    client_finish(&c);
}

LG_TEST(test_early_response_delayed_close)
{
    /* Answered at the head while 5 MB of body are still coming: the rest is read and dropped
     * until the client closes, so the close never becomes a reset that loses the response. */
    reset_state();
    B.when = RESP_AT_HEADERS;
    client_t c = {.big_body = 5 * 1024 * 1024, .until = "echo:/x:", .until_count = 1};
    SEND(&c, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5242880\r\n\r\n");
    run_client(&c);
    LG_EXPECT(c.resp != NULL && strncmp(c.resp, "HTTP/1.1 200 OK\r\n", 17) == 0);
    LG_EXPECT(strstr(c.resp ? c.resp : "", "connection: close\r\n") == NULL);
    LG_EXPECT(strstr(c.resp ? c.resp : "", "echo:/x:") != NULL);
    LG_EXPECT(n_streams == 1 && streams[0]->reset_reason == LG_RESET_CONNECTION_CLOSED);
    LG_EXPECT(n_streams == 1 && streams[0]->body_total < 5 * 1024 * 1024);
    client_finish(&c);
}

LG_TEST(test_large_download_watermarks)
{
    const uint64_t total = 20ull * 1024 * 1024;
    reset_state();
    B.kind = KIND_BIG;
    B.big_response = total;
    client_t c = {.big_response = total};
    SEND(&c, "GET /dl HTTP/1.1\r\nHost: a\r\n\r\n");
    run_client(&c);
    LG_EXPECT(c.resp_body_got == total);
    LG_EXPECT(!c.resp_pattern_bad);
    LG_EXPECT(strstr(c.resp ? c.resp : "", "content-length: 20971520\r\n") != NULL);
    if (n_streams == 1) {
        lg_stream_t *s = streams[0];
        LG_EXPECT(s->wm_up >= 1 && s->wm_down >= 1);
        LG_EXPECT(s->max_buffered <= settings.high_watermark + 512 * 1024);
        LG_EXPECT(s->resp_sent == total);
    }
    client_finish(&c);
}

static bool reading_stopped(void)
{
    return n_streams == 1 && last_sock != NULL && !h2o_socket_is_reading(last_sock);
}

static bool first_head_seen(void)
{
    return n_streams == 1 && streams[0]->head != NULL;
}

LG_TEST(test_pipelined_input_bounded)
{
    /* 256 pipelined requests of 8 KiB while the first is not answered: reading stops. */
    reset_state();
    small_rcvbuf = 1;
    B.when = RESP_MANUAL;
    static char reqs[256 * 8300];
    size_t len = 0;
    char pad[8192];
    memset(pad, 'p', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    for (int i = 0; i < 256; ++i)
        len += (size_t)sprintf(reqs + len, "GET /%d HTTP/1.1\r\nHost: a\r\nx-pad: %s\r\n\r\n", i, pad);
    client_t c = {.send1 = reqs, .send1_len = len, .until = "echo:/255:", .until_count = 1};
    client_start(&c);
    /* The client blocks in send() once the buffers are full; the server has stopped reading. */
    bool stopped = run_until(reading_stopped);
    LG_EXPECT(stopped);
    note_input();
    LG_EXPECT(max_input <= 64 * 1024 + 512 * 1024);
    LG_EXPECT(!client_done());
    /* answer everything from now on */
    B.when = RESP_AT_END;
    if (n_streams == 1)
        respond(streams[0]);
    LG_EXPECT(run_until(client_done));
    pthread_join(c.th, NULL);
    LG_EXPECT(run_until(all_closed));
    LG_EXPECT_INT(n_streams, 256);
    LG_EXPECT_INT(max_active, 1);
    LG_EXPECT(max_input <= 64 * 1024 + 512 * 1024);
    free(c.resp);
}

LG_TEST(test_peer_close)
{
    /* mid-request: the body never completes */
    reset_state();
    client_t c = {.close_after_send = true};
    SEND(&c, "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789");
    run_client(&c);
    LG_EXPECT(n_streams == 1 && streams[0]->reset_reason == LG_RESET_CONNECTION_CLOSED);
    LG_EXPECT(n_streams == 1 && streams[0]->body_total == 10);
    client_finish(&c);

    /* mid-response: the head is out, the body never ends */
    reset_state();
    B.when = RESP_MANUAL;
    client_t d = {.until = "\r\n\r\n", .until_count = 1, .close_after_until = true};
    SEND(&d, "GET /m HTTP/1.1\r\nHost: a\r\n\r\n");
    client_start(&d);
    LG_EXPECT(run_until(first_head_seen));
    if (n_streams == 1) {
        lg_stream_t *s = streams[0];
        lg_response_head_t *h = h2o_mem_alloc_pool(&s->pool, sizeof(*h));
        memset(h, 0, sizeof(*h));
        h->status = 200;
        h->content_length = -1;
        s->response_started = true;
        s->codec->ops->encode_headers(s->codec, h, 0);
        s->codec->ops->encode_data(s->codec, "part", 4, 0);
    }
    LG_EXPECT(run_until(client_done_and_closed));
    pthread_join(d.th, NULL);
    LG_EXPECT(n_streams == 1 && streams[0]->reset_reason == LG_RESET_CONNECTION_CLOSED);
    client_finish(&d);
}

LG_TEST(test_drain_and_idle)
{
    /* drain with a request in progress: its response says close, then the connection goes */
    reset_state();
    B.when = RESP_MANUAL;
    client_t c = {0};
    SEND(&c, "GET /d HTTP/1.1\r\nHost: a\r\n\r\nGET /never HTTP/1.1\r\nHost: a\r\n\r\n");
    client_start(&c);
    LG_EXPECT(run_until(first_head_seen));
    if (last_codec != NULL)
        lg_http1_server_conn_shutdown(last_codec);
    if (n_streams == 1)
        respond(streams[0]);
    LG_EXPECT(run_until(client_done_and_closed));
    pthread_join(c.th, NULL);
    LG_EXPECT(c.eof);
    LG_EXPECT_INT(n_streams, 1);
    LG_EXPECT(strstr(c.resp ? c.resp : "", "connection: close\r\n") != NULL);
    LG_EXPECT(strstr(c.resp ? c.resp : "", "echo:/d:") != NULL);
    client_finish(&c);

    /* close now: the request in progress is reset, the connection goes */
    reset_state();
    B.when = RESP_MANUAL;
    client_t e = {0};
    SEND(&e, "GET /c HTTP/1.1\r\nHost: a\r\n\r\n");
    client_start(&e);
    LG_EXPECT(run_until(first_head_seen));
    if (last_codec != NULL)
        lg_http1_server_conn_close(last_codec);
    LG_EXPECT(n_streams == 1 && streams[0]->reset_reason == 0); /* not from inside the call */
    LG_EXPECT(run_until(client_done_and_closed));
    pthread_join(e.th, NULL);
    LG_EXPECT(e.eof && e.resp_len == 0);
    LG_EXPECT(n_streams == 1 && streams[0]->reset_reason == LG_RESET_LOCAL);
    client_finish(&e);

    /* an idle connection with half a head is closed by the idle timeout, without a stream */
    reset_state();
    client_t d = {0};
    SEND(&d, "GET / HTTP/1.1\r\nHo");
    run_client(&d);
    LG_EXPECT(d.eof);
    LG_EXPECT_INT(d.resp_len, 0);
    LG_EXPECT_INT(n_streams, 0);
    LG_EXPECT_INT(closed, 1);
    client_finish(&d);
}

LG_TEST(test_curl_chunked_upload_and_continue)
{
    /* curl sends a chunked body with its own Expect: 100-continue handling */
    reset_state();
    client_t c = {.curl_args = "head -c 300000 /dev/zero | curl -s --http1.1 -H 'Transfer-Encoding: chunked' "
                               "-H 'Expect: 100-continue' --data-binary @- http://127.0.0.1:%d/c "
                               "-o /dev/null -w '%%{http_code} %%{size_upload}'"};
    run_client(&c);
    LG_EXPECT(c.resp != NULL && strncmp(c.resp, "200 ", 4) == 0);
    LG_EXPECT(n_streams == 1 && streams[0]->body_total == 300000 &&
              streams[0]->head->content_length == -1);
    client_finish(&c);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    loop = h2o_evloop_create();
    h2o_timeout_init(loop, &zero_to, 0);
    h2o_timeout_init(loop, &idle_to, 300);
    h2o_timeout_init(loop, &tick_to, 5);
    h2o_timeout_init(loop, &linger_to, 1000);
    if (pipe(notify_pipe) != 0)
        return 1;
    notify_sock = h2o_evloop_socket_create(loop, notify_pipe[0], 0);
    h2o_socket_read_start(notify_sock, on_notify);
    start_listener();

    LG_RUN(test_keepalive_curl);
    LG_RUN(test_pipelining);
    LG_RUN(test_input_before_codec);
    LG_RUN(test_chunked_both_ways);
    LG_RUN(test_expect_continue);
    LG_RUN(test_http10);
    LG_RUN(test_absolute_form);
    LG_RUN(test_smuggling_rejected);
    LG_RUN(test_response_framing);
    LG_RUN(test_large_upload_backpressure);
    LG_RUN(test_early_response_delayed_close);
    LG_RUN(test_large_download_watermarks);
    LG_RUN(test_pipelined_input_bounded);
    LG_RUN(test_peer_close);
    LG_RUN(test_drain_and_idle);
    LG_RUN(test_curl_chunked_upload_and_continue);

    reset_state();
    h2o_socket_read_stop(listener);
    h2o_socket_close(listener);
    h2o_socket_read_stop(notify_sock);
    h2o_socket_close(notify_sock);
    close(notify_pipe[1]);
    h2o_evloop_run(loop, 0);
    h2o_timeout_dispose(loop, &zero_to);
    h2o_timeout_dispose(loop, &idle_to);
    h2o_timeout_dispose(loop, &tick_to);
    h2o_timeout_dispose(loop, &linger_to);
    h2o_evloop_destroy(loop);
    return LG_TEST_END();
}
