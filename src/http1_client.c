/*
 * The upstream HTTP/1.1 codec (contract in http1_client.h).
 *
 * It runs like the downstream codec (http1_server.c): calls to the router's callbacks and to the
 * pool are made only from the codec's own event contexts (socket read/write callbacks and the
 * zero timeout), counted by `depth`; the ops the router and the pool call change state, queue
 * bytes and schedule the zero timeout. The socket is never closed while a callback may still
 * point into its input, and the connection is freed only once the owner heard on_closed.
 *
 * A stream is attached to the connection from new_stream until it is released, reset by the
 * router, or failed by the codec; a failed stream is detached (its `conn` cleared) and lives on
 * until the router releases it, so the connection may go away first.
 *
 * Whether the request was sent (on_reset's `request_sent`): the byte counters of the connection
 * say whether any byte of this request was confirmed written. A request on a reused connection
 * of which nothing was written, cut by a close, is the keep-alive race that may be retried.
 */
#include "http1_client.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http1_chunked.h"
#include "http1_parser.h"
#include "log.h"

#define DEFAULT_HIGH_WATERMARK (1024 * 1024)
#define DEFAULT_LOW_WATERMARK (512 * 1024)
#define DEFAULT_MAX_HELD_INPUT (64 * 1024)

typedef enum en_resp_state_t {
    RESP_HEAD,
    RESP_BODY,
    RESP_DONE,
} resp_state_t;

typedef struct st_client_stream_t {
    lg_upstream_stream_t super; /* first: the ops table's argument */
    lg_http1_client_conn_t *conn; /* NULL once detached */
    h2o_mem_pool_t *pool;
    const lg_upstream_callbacks_t *cb;
    void *ctx;
    /* request */
    bool headers_sent, request_complete, req_chunked, req_length;
    uint64_t req_left;
    uint64_t req_start; /* conn->bytes_queued when its first byte was queued */
    unsigned request_flags; /* LG_HTTP1_REQ_HEAD */
    /* response */
    resp_state_t rstate;
    lg_http1_body_t body;
    uint64_t body_left;
    lg_http1_chunked_decoder_t chunked;
    bool read_disabled, wm_reported;
    lg_reset_reason_t pending_reset; /* to report from the loop */
} client_stream_t;

struct st_lg_http1_client_conn_t {
    lg_client_conn_t super; /* first */
    h2o_socket_t *sock;     /* NULL once closed */
    h2o_loop_t *loop;
    lg_http1_client_settings_t settings;
    lg_http1_options_t opts;
    const lg_client_conn_owner_t *owner;
    void *owner_ctx;
    h2o_timeout_entry_t defer_entry;
    client_stream_t *stream;
    lg_http1_header_t *headers, *trailers;
    size_t header_slots;
    size_t head_last_len, hold_limit;
    h2o_buffer_t *out, *inflight;
    uint64_t bytes_queued, bytes_written;
    uint32_t requests; /* streams opened */
    unsigned depth;
    lg_reset_reason_t close_reason;
    bool writing, wm_above;
    bool reused;         /* an exchange completed on it before */
    bool no_reuse;       /* close once idle */
    bool shutdown;       /* graceful close asked for */
    bool close_pending;  /* close the socket when the current dispatch unwinds */
    bool capacity_pending;
    bool eof;  /* the peer closed; held bytes may still be delivered */
    bool done; /* on_closed was called */
};

static const lg_upstream_stream_ops_t stream_ops;
static const lg_client_conn_ops_t conn_ops;

static void on_read(h2o_socket_t *sock, const char *err);
static void flush(lg_http1_client_conn_t *conn);

void lg_http1_client_settings_init(lg_http1_client_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    s->max_response_headers_kb = 60;
    s->max_headers_count = 100;
    s->high_watermark = DEFAULT_HIGH_WATERMARK;
    s->low_watermark = DEFAULT_LOW_WATERMARK;
    s->max_held_input = DEFAULT_MAX_HELD_INPUT;
}

/* ---------------------------------------------------------------------------------------------
 * Helpers.
 * ------------------------------------------------------------------------------------------- */

static void append(lg_http1_client_conn_t *conn, const void *data, size_t len)
{
    if (len == 0)
        return;
    h2o_iovec_t r = h2o_buffer_reserve(&conn->out, len);
    if (r.base == NULL)
        lg_fatal("http1 client: out of memory (output buffer)");
    memcpy(r.base, data, len);
    conn->out->size += len;
    conn->bytes_queued += len;
}

static void append_str(lg_http1_client_conn_t *conn, const char *s)
{
    append(conn, s, strlen(s));
}

static h2o_iovec_t pool_dup(h2o_mem_pool_t *pool, const char *s, size_t len, bool lower)
{
    char *p = h2o_mem_alloc_pool(pool, len + 1);
    for (size_t i = 0; i < len; ++i) {
        char c = s[i];
        p[i] = lower && c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
    }
    p[len] = '\0';
    return h2o_iovec_init(p, len);
}

static bool is_hop_by_hop(const char *name, size_t len)
{
    static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                        "transfer-encoding", "upgrade", "te"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i)
        if (lg_http1_token_eq(name, len, names[i]))
            return true;
    return false;
}

static bool list_has(const char *list, size_t len, const char *tok, size_t tok_len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            ++i;
        size_t start = i;
        while (i < len && list[i] != ',')
            ++i;
        size_t n = i - start;
        while (n > 0 && (list[start + n - 1] == ' ' || list[start + n - 1] == '\t'))
            --n;
        if (n == tok_len && strncasecmp(list + start, tok, n) == 0)
            return true;
    }
    return false;
}

/* A request-line part: visible ASCII only (no SP, CTL, DEL or obs-text). */
static bool is_visible(h2o_iovec_t v)
{
    for (size_t i = 0; i < v.len; ++i)
        if ((unsigned char)v.base[i] <= 0x20 || (unsigned char)v.base[i] >= 0x7f)
            return false;
    return true;
}

static bool request_sent(const client_stream_t *s, const lg_http1_client_conn_t *conn)
{
    bool any_written = s->headers_sent && conn->bytes_written > s->req_start;
    return any_written || !conn->reused;
}

/* ---------------------------------------------------------------------------------------------
 * Scheduling, reading, closing.
 * ------------------------------------------------------------------------------------------- */

static void schedule(lg_http1_client_conn_t *conn)
{
    if (!conn->done && !h2o_timeout_is_linked(&conn->defer_entry))
        h2o_timeout_link(conn->loop, conn->settings.zero_timeout, &conn->defer_entry);
}

static void update_reading(lg_http1_client_conn_t *conn)
{
    if (conn->sock == NULL)
        return;
    bool want = !conn->eof && conn->sock->input->size < conn->hold_limit;
    if (want && !h2o_socket_is_reading(conn->sock))
        h2o_socket_read_start(conn->sock, on_read);
    else if (!want && h2o_socket_is_reading(conn->sock))
        h2o_socket_read_stop(conn->sock);
}

static void do_close_socket(lg_http1_client_conn_t *conn)
{
    h2o_socket_t *sock = conn->sock;
    conn->sock = NULL;
    conn->close_pending = false;
    sock->data = NULL;
    h2o_socket_close(sock);
    schedule(conn);
}

static void close_socket(lg_http1_client_conn_t *conn, lg_reset_reason_t reason)
{
    if (conn->sock == NULL)
        return;
    if (conn->close_reason == LG_RESET_NONE)
        conn->close_reason = reason;
    if (conn->depth > 0)
        conn->close_pending = true;
    else
        do_close_socket(conn);
}

static void detach(client_stream_t *s)
{
    if (s->conn != NULL && s->conn->stream == s)
        s->conn->stream = NULL;
    s->conn = NULL;
}

/* Fails the attached stream: the router hears on_reset, the connection will not be reused. */
static void fail_stream(lg_http1_client_conn_t *conn, client_stream_t *s, lg_reset_reason_t reason)
{
    bool sent = request_sent(s, conn);
    const lg_upstream_callbacks_t *cb = s->cb;
    void *ctx = s->ctx;
    detach(s);
    conn->no_reuse = true;
    cb->on_reset(ctx, reason, sent);
}

static bool can_accept(lg_http1_client_conn_t *conn)
{
    return conn->sock != NULL && conn->stream == NULL && !conn->no_reuse && !conn->shutdown &&
           !conn->close_pending && !conn->eof &&
           (conn->settings.max_requests_per_connection == 0 ||
            conn->requests < conn->settings.max_requests_per_connection);
}

static void free_conn(lg_http1_client_conn_t *conn)
{
    h2o_timeout_unlink(&conn->defer_entry);
    h2o_buffer_dispose(&conn->out);
    h2o_buffer_dispose(&conn->inflight);
    free(conn->headers);
    free(conn->trailers);
    free(conn);
}

/* Called as a dispatch unwinds: closes what must close, fails a stream the close cut short,
 * tells the owner, and frees the connection once closed. Returns false when it was freed. */
static bool leave(lg_http1_client_conn_t *conn)
{
    if (--conn->depth > 0)
        return true;
    if (conn->close_pending && conn->sock != NULL)
        do_close_socket(conn);
    if (conn->sock != NULL) {
        flush(conn);
        /* An idle connection that will not be reused goes now. */
        uint32_t max = conn->settings.max_requests_per_connection;
        if (conn->stream == NULL &&
            (conn->no_reuse || conn->shutdown || (max != 0 && conn->requests >= max)))
            do_close_socket(conn);
    }
    if (conn->sock != NULL) {
        update_reading(conn);
        return true;
    }
    client_stream_t *s = conn->stream;
    if (s != NULL) {
        if (s->rstate != RESP_DONE) {
            ++conn->depth;
            fail_stream(conn, s, conn->close_reason != LG_RESET_NONE ? conn->close_reason
                                                                   : LG_RESET_CONNECTION_CLOSED);
            --conn->depth;
        } else {
            detach(s); /* complete; its release will find it detached */
        }
    }
    if (!conn->done) {
        conn->done = true;
        h2o_timeout_unlink(&conn->defer_entry);
        conn->owner->on_closed(conn->owner_ctx, &conn->super);
        free_conn(conn);
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Output.
 * ------------------------------------------------------------------------------------------- */

static size_t buffered(lg_http1_client_conn_t *conn)
{
    return conn->out->size + conn->inflight->size;
}

static void check_watermark(lg_http1_client_conn_t *conn)
{
    size_t b = buffered(conn);
    bool above = conn->wm_above;
    if (!above && b > conn->settings.high_watermark)
        above = true;
    else if (above && b <= conn->settings.low_watermark)
        above = false;
    if (above != conn->wm_above) {
        conn->wm_above = above;
        schedule(conn);
    }
}

static void on_write_complete(h2o_socket_t *sock, const char *err)
{
    lg_http1_client_conn_t *conn = sock->data;
    if (conn == NULL)
        return;
    conn->writing = false;
    ++conn->depth;
    if (err != NULL) {
        lg_debug(upstream, "http1 client: write failed: %s", err);
        close_socket(conn, LG_RESET_CONNECTION_CLOSED);
    } else {
        conn->bytes_written += conn->inflight->size;
        h2o_buffer_consume(&conn->inflight, conn->inflight->size);
        check_watermark(conn);
    }
    leave(conn);
}

static void flush(lg_http1_client_conn_t *conn)
{
    if (conn->sock == NULL || conn->writing || conn->out->size == 0)
        return;
    h2o_buffer_t *t = conn->inflight;
    conn->inflight = conn->out;
    conn->out = t;
    h2o_iovec_t buf = h2o_iovec_init(conn->inflight->bytes, conn->inflight->size);
    conn->writing = true;
    h2o_socket_write(conn->sock, &buf, 1, on_write_complete);
}

/* ---------------------------------------------------------------------------------------------
 * Responses.
 * ------------------------------------------------------------------------------------------- */

/* `connections` marks the response's Connection fields (found once per head, not per field). */
static bool drop_response_field(const lg_http1_header_t *f, const lg_http1_response_t *resp,
                                const bool *connections, size_t n_connections)
{
    if (is_hop_by_hop(f->name, f->name_len))
        return true;
    if (n_connections == 0 || lg_http1_token_eq(f->name, f->name_len, "content-length"))
        return false;
    for (size_t i = 0; i < resp->num_headers; ++i)
        if (connections[i] && list_has(resp->headers[i].value, resp->headers[i].value_len, f->name, f->name_len))
            return true;
    return false;
}

static lg_response_head_t *build_head(h2o_mem_pool_t *pool, const lg_http1_response_t *resp)
{
    lg_response_head_t *head = h2o_mem_alloc_pool(pool, sizeof(*head));
    memset(head, 0, sizeof(*head));
    head->status = resp->status;
    head->content_length = resp->has_content_length ? (int64_t)resp->content_length : -1;
    bool connections_stack[128], *connections = connections_stack, drop_stack[128], *drop = drop_stack;
    if (resp->num_headers > 128) {
        connections = h2o_mem_alloc_pool(pool, resp->num_headers * sizeof(bool));
        drop = h2o_mem_alloc_pool(pool, resp->num_headers * sizeof(bool));
    }
    size_t n_connections = 0, keep = 0;
    for (size_t i = 0; i < resp->num_headers; ++i)
        if ((connections[i] = lg_http1_token_eq(resp->headers[i].name, resp->headers[i].name_len, "connection")))
            ++n_connections;
    for (size_t i = 0; i < resp->num_headers; ++i)
        if (!(drop[i] = drop_response_field(&resp->headers[i], resp, connections, n_connections)))
            ++keep;
    head->headers.entries = h2o_mem_alloc_pool(pool, sizeof(lg_header_t) * (keep > 0 ? keep : 1));
    head->headers.capacity = keep;
    for (size_t i = 0; i < resp->num_headers; ++i) {
        const lg_http1_header_t *f = &resp->headers[i];
        if (drop[i])
            continue;
        lg_header_t *e = &head->headers.entries[head->headers.size++];
        e->name = pool_dup(pool, f->name, f->name_len, true);
        e->value = pool_dup(pool, f->value, f->value_len, false);
    }
    return head;
}

static void response_complete(lg_http1_client_conn_t *conn, client_stream_t *s)
{
    s->rstate = RESP_DONE;
    if (!s->request_complete)
        conn->no_reuse = true; /* the server answered before reading the whole request */
}

/* Parses a response head. Returns true when the loop should go on. */
static bool parse_head(lg_http1_client_conn_t *conn, client_stream_t *s)
{
    h2o_buffer_t *in = conn->sock->input;
    lg_http1_response_t resp;
    lg_http1_error_t err;
    int r = lg_http1_parse_response(&conn->opts, in->bytes, in->size, conn->head_last_len,
                                    s->request_flags, &resp, conn->headers, conn->header_slots,
                                    &err);
    if (r == -2) {
        conn->head_last_len = in->size;
        return false;
    }
    conn->head_last_len = 0;
    if (r < 0 || resp.status == 101 || resp.body == LG_HTTP1_BODY_TUNNEL) {
        lg_debug(upstream, "http1 client: bad response: %s",
                 r < 0 ? err.message : "101 or tunnel not supported");
        close_socket(conn, LG_RESET_PROTOCOL_ERROR);
        fail_stream(conn, s, LG_RESET_PROTOCOL_ERROR);
        return false;
    }
    if (resp.is_interim) {
        h2o_buffer_consume(&conn->sock->input, (size_t)r);
        return true;
    }
    lg_response_head_t *head = build_head(s->pool, &resp);
    if (!resp.keep_alive)
        conn->no_reuse = true;
    s->body = resp.body;
    s->body_left = resp.body == LG_HTTP1_BODY_CONTENT_LENGTH ? resp.content_length : 0;
    if (resp.body == LG_HTTP1_BODY_CHUNKED)
        lg_http1_chunked_decoder_init(&s->chunked, &conn->opts, true, conn->trailers,
                                      conn->header_slots);
    bool end_stream = resp.body == LG_HTTP1_BODY_NONE;
    if (end_stream)
        response_complete(conn, s);
    else
        s->rstate = RESP_BODY;
    h2o_buffer_consume(&conn->sock->input, (size_t)r);
    s->cb->on_headers(s->ctx, head, end_stream);
    return conn->stream == s;
}

static lg_headers_t *copy_trailers(h2o_mem_pool_t *pool, const lg_http1_chunked_decoder_t *d)
{
    lg_headers_t *t = h2o_mem_alloc_pool(pool, sizeof(*t));
    t->entries = h2o_mem_alloc_pool(pool, sizeof(lg_header_t) * d->num_trailers);
    t->size = t->capacity = d->num_trailers;
    for (size_t i = 0; i < d->num_trailers; ++i) {
        t->entries[i].name = pool_dup(pool, d->trailers[i].name, d->trailers[i].name_len, true);
        t->entries[i].value = pool_dup(pool, d->trailers[i].value, d->trailers[i].value_len, false);
    }
    return t;
}

/* Hands held body bytes to the router. Returns true when the loop should go on. */
static bool deliver_body(lg_http1_client_conn_t *conn, client_stream_t *s)
{
    h2o_buffer_t **in = &conn->sock->input;
    size_t n = (*in)->size;

    switch (s->body) {
    case LG_HTTP1_BODY_CONTENT_LENGTH: {
        if (n == 0)
            return false;
        if ((uint64_t)n > s->body_left)
            n = (size_t)s->body_left;
        s->body_left -= n;
        bool end = s->body_left == 0;
        if (end)
            response_complete(conn, s);
        s->cb->on_data(s->ctx, (*in)->bytes, n, end);
        h2o_buffer_consume(in, n);
        return true;
    }
    case LG_HTTP1_BODY_CLOSE_DELIMITED:
        if (n == 0)
            return false;
        s->cb->on_data(s->ctx, (*in)->bytes, n, 0);
        h2o_buffer_consume(in, n);
        return true;
    default:
        break;
    }

    size_t consumed = 0;
    lg_http1_slice_t data = {NULL, 0};
    lg_http1_chunked_status_t st =
        lg_http1_chunked_decode(&s->chunked, (*in)->bytes, n, &consumed, &data);
    switch (st) {
    case LG_HTTP1_CHUNKED_DATA:
        s->cb->on_data(s->ctx, data.base, data.len, 0);
        h2o_buffer_consume(in, consumed);
        return true;
    case LG_HTTP1_CHUNKED_NEED_MORE:
        h2o_buffer_consume(in, consumed);
        return false;
    case LG_HTTP1_CHUNKED_DONE:
        response_complete(conn, s);
        if (s->chunked.num_trailers > 0) {
            lg_headers_t *t = copy_trailers(s->pool, &s->chunked);
            h2o_buffer_consume(in, consumed);
            s->cb->on_trailers(s->ctx, t);
        } else {
            h2o_buffer_consume(in, consumed);
            s->cb->on_data(s->ctx, "", 0, 1);
        }
        return true;
    default:
        lg_debug(upstream, "http1 client: bad chunked response body: %s", s->chunked.error.message);
        close_socket(conn, LG_RESET_PROTOCOL_ERROR);
        fail_stream(conn, s, LG_RESET_PROTOCOL_ERROR);
        return false;
    }
}

static void process_input(lg_http1_client_conn_t *conn)
{
    for (;;) {
        if (conn->sock == NULL || conn->close_pending)
            return;
        client_stream_t *s = conn->stream;
        if (s == NULL) {
            /* Nothing may arrive on an idle connection: a late or unsolicited response. */
            if (conn->sock->input->size > 0) {
                lg_debug(upstream, "http1 client: %zu unexpected bytes on an idle connection",
                         conn->sock->input->size);
                conn->no_reuse = true;
                close_socket(conn, LG_RESET_PROTOCOL_ERROR);
            }
            return;
        }
        if (s->pending_reset != LG_RESET_NONE) {
            close_socket(conn, s->pending_reset);
            fail_stream(conn, s, s->pending_reset);
            return;
        }
        /* A response before the request was written is not an answer to it: hold it. */
        if (!s->headers_sent || s->rstate == RESP_DONE || conn->sock->input->size == 0)
            return;
        if (s->rstate == RESP_HEAD) {
            if (!parse_head(conn, s))
                return;
            continue;
        }
        if (s->read_disabled || !deliver_body(conn, s))
            return;
    }
}

static void notify_watermark(lg_http1_client_conn_t *conn)
{
    client_stream_t *s = conn->stream;
    if (s == NULL || s->wm_reported == conn->wm_above || s->cb->on_watermark == NULL)
        return;
    s->wm_reported = conn->wm_above;
    s->cb->on_watermark(s->ctx, conn->wm_above);
}

/* The peer closed. Bytes that came before the close are processed first (held ones once the
 * router reads again); then a close-delimited body ends here, anything unfinished was cut. */
static void handle_eof(lg_http1_client_conn_t *conn)
{
    client_stream_t *s = conn->stream;
    if (conn->sock == NULL || conn->close_pending)
        return;
    if (s != NULL && s->rstate == RESP_BODY && s->read_disabled && conn->sock->input->size > 0)
        return;
    if (s != NULL && s->rstate == RESP_BODY && s->body == LG_HTTP1_BODY_CLOSE_DELIMITED &&
        conn->sock->input->size == 0) {
        response_complete(conn, s);
        s->cb->on_data(s->ctx, "", 0, 1);
    }
    close_socket(conn, LG_RESET_CONNECTION_CLOSED);
}

static void dispatch(lg_http1_client_conn_t *conn)
{
    ++conn->depth;
    process_input(conn);
    if (conn->eof)
        handle_eof(conn);
    if (conn->sock != NULL && !conn->close_pending)
        notify_watermark(conn);
    if (conn->capacity_pending && can_accept(conn)) {
        conn->capacity_pending = false;
        conn->owner->on_capacity(conn->owner_ctx, &conn->super);
    }
    leave(conn);
}

static void on_defer(h2o_timeout_entry_t *entry)
{
    dispatch(H2O_STRUCT_FROM_MEMBER(lg_http1_client_conn_t, defer_entry, entry));
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    lg_http1_client_conn_t *conn = sock->data;
    if (conn == NULL)
        return;
    if (err != NULL) {
        conn->eof = true;
        h2o_socket_read_stop(sock);
    }
    dispatch(conn);
}

/* ---------------------------------------------------------------------------------------------
 * Requests: the stream ops.
 * ------------------------------------------------------------------------------------------- */

static void append_fields(lg_http1_client_conn_t *conn, const lg_headers_t *h, bool trailers)
{
    for (size_t i = 0; i < h->size; ++i) {
        const lg_header_t *f = &h->entries[i];
        if (is_hop_by_hop(f->name.base, f->name.len) ||
            lg_http1_token_eq(f->name.base, f->name.len, "content-length") ||
            lg_http1_token_eq(f->name.base, f->name.len, "host"))
            continue;
        if (!lg_http1_field_name_valid(f->name.base, f->name.len) ||
            !lg_http1_field_value_valid(f->value.base, f->value.len)) {
            lg_debug(upstream, "http1 client: dropping invalid %s '%.*s'",
                     trailers ? "trailer" : "field", (int)f->name.len, f->name.base);
            continue;
        }
        append(conn, f->name.base, f->name.len);
        append(conn, ": ", 2);
        append(conn, f->value.base, f->value.len);
        append(conn, "\r\n", 2);
    }
}

static bool method_expects_body(h2o_iovec_t m)
{
    return (m.len == 4 && memcmp(m.base, "POST", 4) == 0) ||
           (m.len == 3 && memcmp(m.base, "PUT", 3) == 0) ||
           (m.len == 5 && memcmp(m.base, "PATCH", 5) == 0);
}

static void request_done(lg_http1_client_conn_t *conn, client_stream_t *s)
{
    s->request_complete = true;
    if (s->req_length && s->req_left > 0)
        conn->no_reuse = true; /* short body: the server still waits for bytes */
}

static void c_encode_headers(lg_upstream_stream_t *us, const lg_request_head_t *head,
                             int end_stream)
{
    client_stream_t *s = (client_stream_t *)us;
    lg_http1_client_conn_t *conn = s->conn;
    char line[64];

    if (conn == NULL || s->headers_sent || conn->sock == NULL)
        return;
    h2o_iovec_t path = head->path.len > 0 ? head->path : LG_LIT("/");
    if (head->method.len == 0 || !lg_http1_field_name_valid(head->method.base, head->method.len) ||
        !is_visible(path) ||
        !lg_http1_field_value_valid(head->authority.base, head->authority.len)) {
        lg_debug(upstream, "http1 client: request head cannot be written in HTTP/1.1");
        s->pending_reset = LG_RESET_LOCAL;
        schedule(conn);
        return;
    }
    s->headers_sent = true;
    s->req_start = conn->bytes_queued;
    if (head->method.len == 4 && memcmp(head->method.base, "HEAD", 4) == 0)
        s->request_flags |= LG_HTTP1_REQ_HEAD;

    append(conn, head->method.base, head->method.len);
    append(conn, " ", 1);
    append(conn, path.base, path.len);
    append_str(conn, " HTTP/1.1\r\n");
    if (head->authority.len > 0) {
        append_str(conn, "host: ");
        append(conn, head->authority.base, head->authority.len);
        append(conn, "\r\n", 2);
    }
    append_fields(conn, &head->headers, false);
    if (!end_stream && head->content_length >= 0) {
        s->req_length = true;
        s->req_left = (uint64_t)head->content_length;
        memcpy(line, "content-length: ", 16);
        size_t n = 16 + lg_u64_to_dec(line + 16, (uint64_t)head->content_length);
        memcpy(line + n, "\r\n", 3);
        append_str(conn, line);
    } else if (!end_stream) {
        s->req_chunked = true;
        append_str(conn, "transfer-encoding: chunked\r\n");
    } else if (head->content_length >= 0 || method_expects_body(head->method)) {
        s->req_length = true;
        s->req_left = 0;
        append_str(conn, "content-length: 0\r\n");
    }
    bool last = conn->shutdown || (conn->settings.max_requests_per_connection != 0 &&
                                   conn->requests >= conn->settings.max_requests_per_connection);
    if (last)
        append_str(conn, "connection: close\r\n");
    append(conn, "\r\n", 2);
    if (end_stream)
        request_done(conn, s);
    flush(conn);
    check_watermark(conn);
    if (conn->sock->input->size > 0)
        schedule(conn); /* a response that was held until now */
}

static void c_encode_data(lg_upstream_stream_t *us, const void *data, size_t len, int end_stream)
{
    client_stream_t *s = (client_stream_t *)us;
    lg_http1_client_conn_t *conn = s->conn;

    if (conn == NULL || !s->headers_sent || s->request_complete || conn->sock == NULL)
        return;
    if (s->req_chunked) {
        if (len > 0) {
            char size_line[LG_HTTP1_CHUNK_SIZE_LINE_MAX];
            append(conn, size_line, lg_http1_chunked_encode_size(size_line, len));
            append(conn, data, len);
            append(conn, "\r\n", 2);
        }
        if (end_stream)
            append_str(conn, "0\r\n\r\n");
    } else if (s->req_length) {
        size_t n = (uint64_t)len > s->req_left ? (size_t)s->req_left : len;
        append(conn, data, n);
        s->req_left -= n;
        if (n < len) {
            lg_debug(upstream, "http1 client: request body longer than its content-length");
            conn->no_reuse = true;
        }
    }
    if (end_stream)
        request_done(conn, s);
    flush(conn);
    check_watermark(conn);
}

static void c_encode_trailers(lg_upstream_stream_t *us, const lg_headers_t *trailers)
{
    client_stream_t *s = (client_stream_t *)us;
    lg_http1_client_conn_t *conn = s->conn;

    if (conn == NULL || !s->headers_sent || s->request_complete || conn->sock == NULL)
        return;
    if (s->req_chunked) {
        append_str(conn, "0\r\n");
        append_fields(conn, trailers, true);
        append(conn, "\r\n", 2);
    }
    request_done(conn, s);
    flush(conn);
    check_watermark(conn);
}

static void c_reset(lg_upstream_stream_t *us)
{
    client_stream_t *s = (client_stream_t *)us;
    lg_http1_client_conn_t *conn = s->conn;
    detach(s);
    free(s);
    if (conn != NULL) {
        conn->no_reuse = true;
        close_socket(conn, LG_RESET_LOCAL);
        schedule(conn);
    }
}

static void c_read_disable(lg_upstream_stream_t *us, int disable)
{
    client_stream_t *s = (client_stream_t *)us;
    lg_http1_client_conn_t *conn = s->conn;
    s->read_disabled = disable != 0;
    if (conn == NULL)
        return;
    if (!s->read_disabled)
        schedule(conn);
    update_reading(conn);
}

static void c_release(lg_upstream_stream_t *us)
{
    client_stream_t *s = (client_stream_t *)us;
    lg_http1_client_conn_t *conn = s->conn;
    if (conn != NULL) {
        if (s->rstate != RESP_DONE || !s->request_complete)
            conn->no_reuse = true;
        detach(s);
        if (!conn->no_reuse) {
            conn->reused = true;
            conn->capacity_pending = true;
        }
        schedule(conn);
    }
    free(s);
}

static const lg_upstream_stream_ops_t stream_ops = {
    .encode_headers = c_encode_headers,
    .encode_data = c_encode_data,
    .encode_trailers = c_encode_trailers,
    .reset = c_reset,
    .read_disable = c_read_disable,
    .release = c_release,
};

/* ---------------------------------------------------------------------------------------------
 * The connection ops.
 * ------------------------------------------------------------------------------------------- */

static lg_upstream_stream_t *c_new_stream(lg_client_conn_t *c, h2o_mem_pool_t *pool,
                                          const lg_upstream_callbacks_t *cb, void *ctx)
{
    lg_http1_client_conn_t *conn = (lg_http1_client_conn_t *)c;
    if (!can_accept(conn))
        return NULL;
    client_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        lg_fatal("http1 client: out of memory (stream)");
    s->super.ops = &stream_ops;
    s->conn = conn;
    s->pool = pool;
    s->cb = cb;
    s->ctx = ctx;
    s->rstate = RESP_HEAD;
    s->wm_reported = false;
    conn->stream = s;
    conn->capacity_pending = false;
    conn->head_last_len = 0;
    ++conn->requests;
    if (conn->wm_above)
        schedule(conn);
    return &s->super;
}

static int c_can_accept_stream(lg_client_conn_t *c)
{
    return can_accept((lg_http1_client_conn_t *)c);
}

static size_t c_active_streams(lg_client_conn_t *c)
{
    return ((lg_http1_client_conn_t *)c)->stream != NULL ? 1 : 0;
}

static void c_shutdown(lg_client_conn_t *c)
{
    lg_http1_client_conn_t *conn = (lg_http1_client_conn_t *)c;
    conn->shutdown = true;
    schedule(conn);
}

static void c_close(lg_client_conn_t *c)
{
    lg_http1_client_conn_t *conn = (lg_http1_client_conn_t *)c;
    if (conn->done)
        return;
    conn->no_reuse = true;
    if (conn->close_reason == LG_RESET_NONE)
        conn->close_reason = LG_RESET_LOCAL;
    if (conn->depth > 0) {
        conn->close_pending = conn->sock != NULL;
        schedule(conn);
        return;
    }
    ++conn->depth;
    if (conn->sock != NULL)
        conn->close_pending = true;
    leave(conn);
}

static const lg_client_conn_ops_t conn_ops = {
    .new_stream = c_new_stream,
    .can_accept_stream = c_can_accept_stream,
    .active_streams = c_active_streams,
    .shutdown = c_shutdown,
    .close = c_close,
};

lg_client_conn_t *lg_http1_client_conn_new(h2o_socket_t *sock, const lg_http1_client_settings_t *s,
                                           const lg_client_conn_owner_t *owner, void *owner_ctx)
{
    lg_http1_client_conn_t *conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        lg_fatal("http1 client: out of memory (connection)");
    if (s->zero_timeout == NULL)
        lg_fatal("http1 client: lg_http1_client_settings_t.zero_timeout is not set");
    conn->super.ops = &conn_ops;
    conn->sock = sock;
    conn->loop = h2o_socket_get_loop(sock);
    conn->settings = *s;
    conn->owner = owner;
    conn->owner_ctx = owner_ctx;
    conn->close_reason = LG_RESET_NONE;

    lg_http1_options_init(&conn->opts);
    if (s->max_response_headers_kb > 0)
        conn->opts.max_header_bytes = (size_t)s->max_response_headers_kb * 1024;
    if (s->max_headers_count > 0)
        conn->opts.max_header_count = s->max_headers_count;
    conn->opts.accept_http_10 = true; /* upstream HTTP/1.0 responses are fine */
    conn->header_slots = conn->opts.max_header_count;
    conn->headers = calloc(conn->header_slots, sizeof(*conn->headers));
    conn->trailers = calloc(conn->header_slots, sizeof(*conn->trailers));
    if (conn->headers == NULL || conn->trailers == NULL)
        lg_fatal("http1 client: out of memory (header slots)");
    conn->hold_limit = s->max_held_input;
    if (conn->hold_limit < conn->opts.max_header_bytes + 1024)
        conn->hold_limit = conn->opts.max_header_bytes + 1024;
    if (conn->settings.high_watermark == 0) {
        conn->settings.high_watermark = DEFAULT_HIGH_WATERMARK;
        conn->settings.low_watermark = DEFAULT_LOW_WATERMARK;
    }
    if (conn->settings.low_watermark > conn->settings.high_watermark)
        conn->settings.low_watermark = conn->settings.high_watermark;

    conn->defer_entry.cb = on_defer;
    h2o_buffer_init(&conn->out, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&conn->inflight, &h2o_socket_buffer_prototype);
    sock->data = conn;
    update_reading(conn);
    if (sock->input->size > 0)
        schedule(conn);
    return &conn->super;
}
