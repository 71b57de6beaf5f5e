/*
 * The other end of the HTTP/2 codec tests: a plain nghttp2 session (client or server role) on an
 * h2o socket in the test's own loop, recording every frame it receives per stream. It sends
 * request or response bodies from a deterministic byte pattern (so 10 MB need no storage and every
 * byte is checked on arrival), echoes bodies back in server role, and can write raw frame bytes
 * for the flood and malformed-input cases nghttp2 would refuse to produce.
 *
 * Not for: anything but tests/src/http2_*_test.c.
 */
#ifndef LG_HTTP2_TEST_PEER_H
#define LG_HTTP2_TEST_PEER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <h2o/socket.h>
#include <nghttp2/nghttp2.h>

#define TP_FN static __attribute__((unused))
#define TP_MAX_STREAMS 2048

static uint64_t tp_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* Runs the loop until `cond` holds or `ms` passed (a hang fails the test instead of blocking). */
#define TP_WAIT(loop, cond, ms)                                                                    \
    do {                                                                                           \
        uint64_t tp_deadline_ = tp_now_ms() + (ms);                                                \
        while (!(cond) && tp_now_ms() < tp_deadline_)                                              \
            h2o_evloop_run((loop), 10);                                                            \
    } while (0)

static inline uint8_t tp_byte(uint64_t seed, size_t i)
{
    uint64_t x = ((uint64_t)(i / 8) + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    return (uint8_t)(x >> ((i % 8) * 8));
}

typedef struct st_tp_peer_t tp_peer_t;

typedef struct st_tp_stream_t {
    int32_t id;
    int used;
    /* received */
    int status;          /* :status of the response (client role) */
    char method[16], path[256], authority[128];
    char head[4096];     /* "name: value\n" for each regular field of the head */
    char trailers[1024]; /* same for trailers */
    int got_head, got_trailers, end_received, closed, rst_received;
    uint32_t rst_code, close_code;
    size_t body_len;     /* bytes of DATA received */
    uint64_t expect_seed; /* received body must follow this pattern */
    int check_body, body_bad;
    /* to send: a pattern body, or an echo of what arrived (server role) */
    size_t send_len, send_off;
    uint64_t send_seed;
    int echo;
    h2o_buffer_t *echo_buf;
    int echo_end, deferred, eof_sent;
    nghttp2_nv send_trailers[4];
    size_t n_send_trailers;
    int respond_trailers_on_request_trailers; /* server echo: answer trailers with trailers */
} tp_stream_t;

struct st_tp_peer_t {
    h2o_socket_t *sock;
    nghttp2_session *session;
    int is_server;
    int eof;            /* the codec closed the connection (read EOF or write error) */
    int session_error;  /* mem_recv failed */
    int goaway;
    int32_t goaway_last_id;
    uint32_t goaway_code;
    int frames[16];     /* frames received, by type */
    int rst_frames;
    tp_stream_t *streams; /* TP_MAX_STREAMS, by stream id / 2 */
    h2o_buffer_t *out, *flight;
    int writing, reading;
    /* server role: a request head arrived / a request ended */
    void (*on_request)(tp_peer_t *p, tp_stream_t *s, int end_stream);
    void (*on_request_end)(tp_peer_t *p, tp_stream_t *s);
};

TP_FN tp_stream_t *tp_stream(tp_peer_t *p, int32_t id)
{
    if (id <= 0 || id / 2 >= TP_MAX_STREAMS)
        return NULL;
    tp_stream_t *s = &p->streams[id / 2];
    if (!s->used) {
        s->used = 1;
        s->id = id;
    }
    return s;
}

static void tp_on_write(h2o_socket_t *sock, const char *err);

TP_FN void tp_flush(tp_peer_t *p)
{
    if (p->sock == NULL)
        return;
    if (p->session != NULL) {
        for (;;) {
            const uint8_t *d;
            ssize_t n = nghttp2_session_mem_send(p->session, &d);
            if (n <= 0)
                break;
            h2o_iovec_t r = h2o_buffer_reserve(&p->out, (size_t)n);
            memcpy(r.base, d, (size_t)n);
            p->out->size += (size_t)n;
        }
    }
    if (p->writing || p->out->size == 0)
        return;
    h2o_buffer_t *t = p->flight;
    p->flight = p->out;
    p->out = t;
    p->writing = 1;
    h2o_iovec_t b = h2o_iovec_init(p->flight->bytes, p->flight->size);
    h2o_socket_write(p->sock, &b, 1, tp_on_write);
}

static void tp_on_write(h2o_socket_t *sock, const char *err)
{
    tp_peer_t *p = sock->data;
    p->writing = 0;
    if (p->flight->size != 0)
        h2o_buffer_consume(&p->flight, p->flight->size);
    if (err != NULL) {
        p->eof = 1;
        return;
    }
    tp_flush(p);
}

/* Appends raw bytes after whatever nghttp2 has queued, and sends them. */
TP_FN void tp_raw(tp_peer_t *p, const void *bytes, size_t len)
{
    tp_flush(p);
    h2o_iovec_t r = h2o_buffer_reserve(&p->out, len);
    memcpy(r.base, bytes, len);
    p->out->size += len;
    tp_flush(p);
}

/* A raw frame: 9-byte header + payload. */
TP_FN void tp_raw_frame(tp_peer_t *p, uint8_t type, uint8_t flags, int32_t stream_id, const void *payload, size_t len)
{
    uint8_t hd[9] = {(uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len, type, flags,
                     (uint8_t)(stream_id >> 24), (uint8_t)(stream_id >> 16), (uint8_t)(stream_id >> 8), (uint8_t)stream_id};
    uint8_t *buf = malloc(9 + len + 1);
    memcpy(buf, hd, 9);
    if (len != 0)
        memcpy(buf + 9, payload, len);
    tp_raw(p, buf, 9 + len);
    free(buf);
}

static void tp_on_read(h2o_socket_t *sock, const char *err)
{
    tp_peer_t *p = sock->data;
    if (err != NULL) {
        p->eof = 1;
        h2o_socket_read_stop(sock);
        return;
    }
    if (p->session == NULL) {
        h2o_buffer_consume(&sock->input, sock->input->size);
        return;
    }
    ssize_t n = nghttp2_session_mem_recv(p->session, (const uint8_t *)sock->input->bytes, sock->input->size);
    if (n < 0) {
        p->session_error = (int)n;
        h2o_buffer_consume(&sock->input, sock->input->size);
        return;
    }
    h2o_buffer_consume(&sock->input, (size_t)n);
    tp_flush(p);
}

TP_FN void tp_set_reading(tp_peer_t *p, int on)
{
    if (on && !p->reading)
        h2o_socket_read_start(p->sock, tp_on_read);
    else if (!on && p->reading)
        h2o_socket_read_stop(p->sock);
    p->reading = on;
}

/* ---- nghttp2 callbacks ----------------------------------------------------------------------- */

static void tp_append(char *dst, size_t cap, const uint8_t *name, size_t nl, const uint8_t *value, size_t vl)
{
    size_t l = strlen(dst);
    snprintf(dst + l, cap - l, "%.*s: %.*s\n", (int)nl, (const char *)name, (int)vl, (const char *)value);
}

static ssize_t tp_read_cb(nghttp2_session *session, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                          nghttp2_data_source *src, void *ud)
{
    tp_stream_t *s = src->ptr;
    size_t n = 0;
    int at_end;
    if (s->echo) {
        size_t avail = s->echo_buf != NULL ? s->echo_buf->size : 0;
        n = avail < len ? avail : len;
        if (n != 0) {
            memcpy(buf, s->echo_buf->bytes, n);
            h2o_buffer_consume(&s->echo_buf, n);
        }
        at_end = s->echo_end && (s->echo_buf == NULL || s->echo_buf->size == 0);
        if (n == 0 && !at_end) {
            s->deferred = 1;
            return NGHTTP2_ERR_DEFERRED;
        }
    } else {
        n = s->send_len - s->send_off < len ? s->send_len - s->send_off : len;
        for (size_t i = 0; i < n; ++i)
            buf[i] = tp_byte(s->send_seed, s->send_off + i);
        s->send_off += n;
        at_end = s->send_off == s->send_len;
    }
    if (at_end) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        s->eof_sent = 1;
        if (s->n_send_trailers != 0) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            nghttp2_submit_trailer(session, id, s->send_trailers, s->n_send_trailers);
        }
    }
    return (ssize_t)n;
}

static int tp_on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    tp_peer_t *p = ud;
    if (frame->hd.type == NGHTTP2_HEADERS)
        tp_stream(p, frame->hd.stream_id);
    return 0;
}

static int tp_on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t nl,
                        const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    tp_peer_t *p = ud;
    tp_stream_t *s = tp_stream(p, frame->hd.stream_id);
    if (s == NULL || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    int trailers = s->got_head && !(nl == 7 && memcmp(name, ":status", 7) == 0);
    if (nl == 7 && memcmp(name, ":status", 7) == 0) {
        s->status = atoi((const char *)value);
        if (s->status >= 100 && s->status < 200)
            return 0;
    } else if (nl == 7 && memcmp(name, ":method", 7) == 0) {
        snprintf(s->method, sizeof(s->method), "%.*s", (int)vl, (const char *)value);
    } else if (nl == 5 && memcmp(name, ":path", 5) == 0) {
        snprintf(s->path, sizeof(s->path), "%.*s", (int)vl, (const char *)value);
    } else if (nl == 10 && memcmp(name, ":authority", 10) == 0) {
        snprintf(s->authority, sizeof(s->authority), "%.*s", (int)vl, (const char *)value);
    } else if (nl != 0 && name[0] != ':') {
        if (trailers)
            tp_append(s->trailers, sizeof(s->trailers), name, nl, value, vl);
        else
            tp_append(s->head, sizeof(s->head), name, nl, value, vl);
    }
    return 0;
}

TP_FN void tp_respond_echo(tp_peer_t *p, tp_stream_t *s, const nghttp2_nv *extra, size_t nextra);

static void tp_request_ended(tp_peer_t *p, tp_stream_t *s)
{
    if (s->echo) {
        s->echo_end = 1;
        if (s->deferred) {
            s->deferred = 0;
            nghttp2_session_resume_data(p->session, s->id);
        }
    }
    if (p->on_request_end != NULL)
        p->on_request_end(p, s);
}

static int tp_on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *ud)
{
    tp_peer_t *p = ud;
    if (frame->hd.type < 16)
        ++p->frames[frame->hd.type];
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        p->goaway = 1;
        p->goaway_last_id = frame->goaway.last_stream_id;
        p->goaway_code = frame->goaway.error_code;
        return 0;
    }
    tp_stream_t *s = tp_stream(p, frame->hd.stream_id);
    if (s == NULL)
        return 0;
    int end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (!s->got_head) {
            if (!p->is_server && s->status >= 100 && s->status < 200)
                break; /* interim */
            s->got_head = 1;
            if (end)
                s->end_received = 1;
            if (p->is_server && p->on_request != NULL)
                p->on_request(p, s, end);
            if (p->is_server && end)
                tp_request_ended(p, s);
        } else {
            s->got_trailers = 1;
            s->end_received = 1;
            if (p->is_server && s->echo && s->respond_trailers_on_request_trailers) {
                static const uint8_t n[] = "x-echo-trailers", v[] = "yes";
                s->send_trailers[0] = (nghttp2_nv){(uint8_t *)n, (uint8_t *)v, sizeof(n) - 1, sizeof(v) - 1, 0};
                s->n_send_trailers = 1;
            }
            if (p->is_server)
                tp_request_ended(p, s);
        }
        break;
    case NGHTTP2_DATA:
        if (end) {
            s->end_received = 1;
            if (p->is_server)
                tp_request_ended(p, s);
        }
        break;
    case NGHTTP2_RST_STREAM:
        s->rst_received = 1;
        s->rst_code = frame->rst_stream.error_code;
        ++p->rst_frames;
        break;
    }
    return 0;
}

static int tp_on_data(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
    tp_peer_t *p = ud;
    tp_stream_t *s = tp_stream(p, id);
    if (s == NULL)
        return 0;
    if (s->check_body && !s->body_bad)
        for (size_t i = 0; i < len; ++i)
            if (data[i] != tp_byte(s->expect_seed, s->body_len + i)) {
                s->body_bad = 1;
                break;
            }
    s->body_len += len;
    if (s->echo) {
        if (s->echo_buf == NULL)
            h2o_buffer_init(&s->echo_buf, &h2o_socket_buffer_prototype);
        h2o_iovec_t r = h2o_buffer_reserve(&s->echo_buf, len);
        memcpy(r.base, data, len);
        s->echo_buf->size += len;
        if (s->deferred) {
            s->deferred = 0;
            nghttp2_session_resume_data(session, id);
        }
    }
    return 0;
}

static int tp_on_stream_close(nghttp2_session *session, int32_t id, uint32_t code, void *ud)
{
    tp_stream_t *s = tp_stream(ud, id);
    if (s != NULL) {
        s->closed = 1;
        s->close_code = code;
    }
    return 0;
}

/* Starts the peer on `fd` (one end of a socketpair or a connected socket). */
TP_FN void tp_init(tp_peer_t *p, h2o_evloop_t *loop, int fd, int is_server, const nghttp2_settings_entry *iv, size_t niv)
{
    memset(p, 0, sizeof(*p));
    p->is_server = is_server;
    p->streams = calloc(TP_MAX_STREAMS, sizeof(*p->streams));
    h2o_buffer_init(&p->out, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&p->flight, &h2o_socket_buffer_prototype);
    p->sock = h2o_evloop_socket_create(loop, fd, 0);
    p->sock->data = p;
    nghttp2_session_callbacks *cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, tp_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, tp_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, tp_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, tp_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, tp_on_stream_close);
    nghttp2_option *opt;
    nghttp2_option_new(&opt);
    /* The peer must be able to say things our codec refuses. */
    nghttp2_option_set_max_send_header_block_length(opt, 256 * 1024);
    if (is_server)
        nghttp2_session_server_new2(&p->session, cbs, p, opt);
    else
        nghttp2_session_client_new2(&p->session, cbs, p, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(p->session, NGHTTP2_FLAG_NONE, iv, niv);
    tp_set_reading(p, 1);
    tp_flush(p);
}

TP_FN void tp_free(tp_peer_t *p)
{
    for (size_t i = 0; i < TP_MAX_STREAMS; ++i)
        if (p->streams[i].echo_buf != NULL)
            h2o_buffer_dispose(&p->streams[i].echo_buf);
    free(p->streams);
    if (p->session != NULL)
        nghttp2_session_del(p->session);
    if (p->sock != NULL)
        h2o_socket_close(p->sock);
    h2o_buffer_dispose(&p->out);
    h2o_buffer_dispose(&p->flight);
    memset(p, 0, sizeof(*p));
}

/* Client role: submits a request with a `body_len`-byte pattern body (seed `seed`) and optional
 * trailers; the response body is expected to echo the same pattern when `expect_echo`. */
TP_FN int32_t tp_request(tp_peer_t *p, const char *method, const char *path, const nghttp2_nv *extra, size_t nextra,
                         size_t body_len, uint64_t seed, const nghttp2_nv *trailers, size_t ntrailers, int expect_echo)
{
    nghttp2_nv nva[128];
    size_t n = 0;
#define TP_NV(nm, val) (nghttp2_nv){(uint8_t *)(nm), (uint8_t *)(val), strlen(nm), strlen(val), 0}
    nva[n++] = TP_NV(":method", method);
    nva[n++] = TP_NV(":scheme", "http");
    nva[n++] = TP_NV(":authority", "test.local");
    nva[n++] = TP_NV(":path", path);
#undef TP_NV
    for (size_t i = 0; i < nextra && n < 128; ++i)
        nva[n++] = extra[i];
    int with_body = body_len != 0 || ntrailers != 0;
    /* The stream record is filled before submit: its id is known only after. */
    tp_stream_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    nghttp2_data_provider prd = {.source = {.ptr = NULL}, .read_callback = tp_read_cb};
    int32_t next = (int32_t)nghttp2_session_get_next_stream_id(p->session);
    tp_stream_t *s = tp_stream(p, next);
    s->send_len = body_len;
    s->send_seed = seed;
    for (size_t i = 0; i < ntrailers && i < 4; ++i)
        s->send_trailers[i] = trailers[i];
    s->n_send_trailers = ntrailers < 4 ? ntrailers : 4;
    if (expect_echo) {
        s->check_body = 1;
        s->expect_seed = seed;
    }
    prd.source.ptr = s;
    int32_t id = nghttp2_submit_request(p->session, NULL, nva, n, with_body ? &prd : NULL, s);
    tp_flush(p);
    return id;
}

/* Client role: opens a stream with a HEADERS frame that does not end it (no body source). */
TP_FN int32_t tp_open_stream(tp_peer_t *p, const char *path)
{
    nghttp2_nv nva[4] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":authority", (uint8_t *)"test.local", 10, 10, 0},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0},
    };
    int32_t id = nghttp2_submit_headers(p->session, NGHTTP2_FLAG_NONE, -1, NULL, nva, 4, NULL);
    tp_stream(p, id);
    tp_flush(p);
    return id;
}

/* Server role: answers 200 and echoes the request body (and trailers when asked). */
TP_FN void tp_respond_echo(tp_peer_t *p, tp_stream_t *s, const nghttp2_nv *extra, size_t nextra)
{
    nghttp2_nv nva[16];
    size_t n = 0;
    nva[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0};
    for (size_t i = 0; i < nextra && n < 16; ++i)
        nva[n++] = extra[i];
    s->echo = 1;
    nghttp2_data_provider prd = {.source = {.ptr = s}, .read_callback = tp_read_cb};
    nghttp2_submit_response(p->session, s->id, nva, n, &prd);
}

/* Server role: answers with `status` and a `len`-byte pattern body (seed `seed`). */
TP_FN void tp_respond(tp_peer_t *p, tp_stream_t *s, const char *status, size_t len, uint64_t seed)
{
    nghttp2_nv nva[1] = {{(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), 0}};
    s->send_len = len;
    s->send_seed = seed;
    if (len == 0 && s->n_send_trailers == 0) {
        nghttp2_submit_response(p->session, s->id, nva, 1, NULL);
    } else {
        nghttp2_data_provider prd = {.source = {.ptr = s}, .read_callback = tp_read_cb};
        nghttp2_submit_response(p->session, s->id, nva, 1, &prd);
    }
}

#endif
