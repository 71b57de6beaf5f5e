/*
 * The downstream HTTP/1.1 codec (contract in http1_server.h).
 *
 * How it runs. Every call into the connection manager (lg_hcm_*) is made from one of the codec's
 * own event contexts, its "dispatches": the socket's read and write callbacks, the zero timeout
 * and the idle timeout. The stream ops the manager calls (encode_*, reset, read_disable, release)
 * only change state, queue bytes and, when the manager must hear something, schedule the zero
 * timeout; that is how codec.h's rule "no callback from inside an ops call" is kept. A dispatch
 * counts its depth: the socket is never closed while a dispatch may still point into its input
 * buffer (a close asked for then waits until the dispatch unwinds), and the connection is freed
 * only at depth 0, after lg_hcm_conn_closed.
 *
 * Input. The head is parsed from sock->input in place and copied into the stream's pool; body
 * bytes are handed out as slices of sock->input and consumed after the call. Reading stops when
 * more than a bounded amount is held unprocessed (pipelined requests waiting for the current
 * response, body while the manager has disabled reading).
 *
 * Output. Bytes are appended to `out`; one write is in flight at a time from `inflight`; the two
 * buffers swap when it completes. Closing after a response shuts the write side first and keeps
 * reading (and discarding) for a while (Envoy's delayed close, nginx's lingering close), so that
 * a client still sending does not get a TCP reset that would destroy the response in its
 * receive buffer.
 */
#include "http1_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http1_chunked.h"
#include "log.h"

#define LG_HTTP1_DEFAULT_HIGH_WATERMARK (1024 * 1024)
#define LG_HTTP1_DEFAULT_LOW_WATERMARK (512 * 1024)
#define LG_HTTP1_DEFAULT_MAX_HELD_INPUT (64 * 1024)

typedef struct st_server_stream_t {
    lg_server_stream_t super; /* first: the ops table's argument */
    lg_http1_server_conn_t *conn;
    /* request */
    lg_http1_body_t req_body;
    uint64_t body_left; /* Content-Length body */
    lg_http1_chunked_decoder_t chunked;
    bool request_complete, read_disabled, expect_continue, is_head, is_http10, keep_alive;
    /* response */
    bool response_started, response_complete, continue_sent;
    bool out_chunked, out_length, out_no_body; /* none of them: close-delimited */
    uint64_t out_left;
    /* lifecycle */
    bool reset_by_hcm, reset_notified, wm_reported;
} server_stream_t;

struct st_lg_http1_server_conn_t {
    h2o_socket_t *sock; /* NULL once closed */
    h2o_loop_t *loop;
    lg_hcm_conn_t *hcm;
    lg_http1_settings_t settings;
    lg_http1_options_t opts;
    h2o_timeout_entry_t defer_entry, idle_entry, headers_entry;
    server_stream_t *stream; /* the request in progress, until the manager releases it */
    lg_http1_header_t *trailers; /* for chunked request trailers; allocated on first use */
    size_t header_slots;
    size_t head_last_len; /* for incremental head parsing */
    size_t hold_limit;
    h2o_buffer_t *out, *inflight;
    unsigned depth;
    bool is_tls, writing, wm_above;
    bool shutdown;         /* drain asked for */
    bool no_more_requests; /* the connection closes once the current exchange is over */
    bool discard_input;    /* after a request error nothing more is parsed */
    bool closing;          /* close once the output is written */
    bool lingering;        /* write side shut; reading and discarding until EOF or timeout */
    bool close_pending;    /* close the socket when the current dispatch unwinds */
    bool done;             /* lg_hcm_conn_closed was called */
    lg_reset_reason_t close_reason; /* what a stream cut short by the close hears */
};

static const lg_server_stream_ops_t stream_ops;

static void on_read(h2o_socket_t *sock, const char *err);
static void flush(lg_http1_server_conn_t *conn);

/* ---------------------------------------------------------------------------------------------
 * Settings and small helpers.
 * ------------------------------------------------------------------------------------------- */

void lg_http1_settings_init(lg_http1_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    s->max_request_headers_kb = 60;
    s->max_headers_count = 100;
    s->headers_with_underscores_action = LG_HTTP1_UNDERSCORES_ALLOW;
    s->high_watermark = LG_HTTP1_DEFAULT_HIGH_WATERMARK;
    s->low_watermark = LG_HTTP1_DEFAULT_LOW_WATERMARK;
    s->max_held_input = LG_HTTP1_DEFAULT_MAX_HELD_INPUT;
    s->allow_absolute_url = true;
    s->accept_http_10 = false;
}

const char *lg_http1_reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Entity";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "";
    }
}

static void append(h2o_buffer_t **buf, const void *data, size_t len)
{
    if (len == 0)
        return;
    h2o_iovec_t r = h2o_buffer_reserve(buf, len);
    if (r.base == NULL)
        lg_fatal("http1: out of memory (output buffer)");
    memcpy(r.base, data, len);
    (*buf)->size += len;
}

static void append_str(h2o_buffer_t **buf, const char *s)
{
    append(buf, s, strlen(s));
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

static bool name_is(h2o_iovec_t name, const char *lower)
{
    return lg_http1_token_eq(name.base, name.len, lower);
}

/* Fields that describe one connection or its framing, never passed on (RFC 9110 §7.6.1). The
 * framing fields are rewritten by the codec from the message's own framing. */
static bool is_hop_by_hop(const char *name, size_t len)
{
    static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                        "transfer-encoding", "upgrade", "te"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i)
        if (lg_http1_token_eq(name, len, names[i]))
            return true;
    return false;
}

/* Whether the comma-separated `list` holds `tok` (case-insensitive). */
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

/* ---------------------------------------------------------------------------------------------
 * Scheduling, reading, closing.
 * ------------------------------------------------------------------------------------------- */

static void schedule(lg_http1_server_conn_t *conn)
{
    if (!conn->done && !h2o_timeout_is_linked(&conn->defer_entry))
        h2o_timeout_link(conn->loop, conn->settings.zero_timeout, &conn->defer_entry);
}

static void update_reading(lg_http1_server_conn_t *conn)
{
    if (conn->sock == NULL)
        return;
    bool want = conn->closing || conn->lingering || conn->discard_input ||
                conn->sock->input->size < conn->hold_limit;
    if (want && !h2o_socket_is_reading(conn->sock))
        h2o_socket_read_start(conn->sock, on_read);
    else if (!want && h2o_socket_is_reading(conn->sock))
        h2o_socket_read_stop(conn->sock);
}

/* The idle timer runs while no request is in progress, and bounds a lingering close. It is not
 * re-armed by bytes of an incomplete head, so a head sent one byte at a time still times out. */
static void update_idle(lg_http1_server_conn_t *conn)
{
    if (conn->settings.idle_timeout == NULL || conn->lingering)
        return;
    /* Not while a finished response is still being written to a slow reader. */
    bool want =
        conn->sock != NULL && conn->stream == NULL && !conn->writing && conn->out->size == 0;
    if (want && !h2o_timeout_is_linked(&conn->idle_entry))
        h2o_timeout_link(conn->loop, conn->settings.idle_timeout, &conn->idle_entry);
    else if (!want)
        h2o_timeout_unlink(&conn->idle_entry);
}

static void do_close_socket(lg_http1_server_conn_t *conn)
{
    h2o_socket_t *sock = conn->sock;
    conn->sock = NULL;
    conn->close_pending = false;
    h2o_timeout_unlink(&conn->idle_entry);
    h2o_timeout_unlink(&conn->headers_entry);
    sock->data = NULL;
    h2o_socket_close(sock);
    schedule(conn);
}

/* Closes the socket now, or when the dispatch in progress unwinds. */
static void close_socket(lg_http1_server_conn_t *conn)
{
    if (conn->sock == NULL)
        return;
    if (conn->depth > 0)
        conn->close_pending = true;
    else
        do_close_socket(conn);
}

/* Everything is written and the connection must end. */
static void close_after_flush(lg_http1_server_conn_t *conn)
{
    if (conn->lingering || conn->sock == NULL)
        return;
    if (conn->sock->ssl == NULL && conn->settings.delayed_close_timeout != NULL &&
        shutdown(h2o_socket_get_fd(conn->sock), SHUT_WR) == 0) {
        conn->lingering = true;
        h2o_timeout_unlink(&conn->idle_entry); /* the same entry now times the linger */
        h2o_timeout_link(conn->loop, conn->settings.delayed_close_timeout, &conn->idle_entry);
        update_reading(conn);
        return;
    }
    close_socket(conn);
}

/* The connection ends once the output is out. */
static void begin_close(lg_http1_server_conn_t *conn)
{
    conn->closing = true;
    conn->no_more_requests = true;
    flush(conn);
}

static void free_conn(lg_http1_server_conn_t *conn)
{
    h2o_timeout_unlink(&conn->defer_entry);
    h2o_timeout_unlink(&conn->idle_entry);
    h2o_timeout_unlink(&conn->headers_entry);
    h2o_buffer_dispose(&conn->out);
    h2o_buffer_dispose(&conn->inflight);
    free(conn->trailers);
    free(conn);
}

/* Called when a dispatch unwinds: closes what waits to be closed, tells the manager about a
 * stream the closed connection cut short, and frees the connection once nothing refers to it.
 * Returns false when the connection was freed. */
static bool leave(lg_http1_server_conn_t *conn)
{
    if (--conn->depth > 0)
        return true;
    if (conn->close_pending && conn->sock != NULL)
        do_close_socket(conn);
    if (conn->sock != NULL) {
        flush(conn);
        if (conn->close_pending && conn->sock != NULL)
            do_close_socket(conn);
    }
    if (conn->sock != NULL) {
        update_reading(conn);
        update_idle(conn);
        return true;
    }
    server_stream_t *s = conn->stream;
    if (s != NULL && !s->reset_by_hcm && !s->reset_notified &&
        !(s->request_complete && s->response_complete)) {
        s->reset_notified = true;
        ++conn->depth;
        lg_hcm_on_reset(s->super.hcm, conn->close_reason);
        --conn->depth;
    }
    if (conn->stream == NULL && !conn->done) {
        conn->done = true;
        h2o_timeout_unlink(&conn->defer_entry);
        lg_hcm_conn_closed(conn->hcm);
        free_conn(conn);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Output.
 * ------------------------------------------------------------------------------------------- */

static size_t buffered(lg_http1_server_conn_t *conn)
{
    return conn->out->size + conn->inflight->size;
}

static void check_watermark(lg_http1_server_conn_t *conn)
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
    lg_http1_server_conn_t *conn = sock->data;
    if (conn == NULL)
        return;
    conn->writing = false;
    ++conn->depth;
    if (err != NULL) {
        lg_debug(http, "http1: write failed: %s", err);
        close_socket(conn);
    } else {
        h2o_buffer_consume(&conn->inflight, conn->inflight->size);
        check_watermark(conn);
    }
    leave(conn);
}

/*
 * Output from the connection manager's calls goes out at the end of the current event rather
 * than at once: a head and its body (or several small pieces) then leave in one write(2), which
 * is one syscall per response instead of two. Inside the codec's own dispatch, leave() flushes.
 */
static void flush_soon(lg_http1_server_conn_t *conn)
{
    if (conn->depth == 0)
        schedule(conn);
}

static void flush(lg_http1_server_conn_t *conn)
{
    if (conn->sock == NULL || conn->writing || conn->lingering)
        return;
    if (conn->out->size == 0) {
        if (conn->closing)
            close_after_flush(conn);
        return;
    }
    h2o_buffer_t *t = conn->inflight;
    conn->inflight = conn->out;
    conn->out = t;
    h2o_iovec_t buf = h2o_iovec_init(conn->inflight->bytes, conn->inflight->size);
    conn->writing = true;
    h2o_socket_write(conn->sock, &buf, 1, on_write_complete);
}

/* "name: value\r\n" for each field that may be sent, skipping framing and hop-by-hop fields
 * and any field that could break the framing (bad name, CR/LF/NUL in the value). */
static void append_fields(h2o_buffer_t **out, const lg_headers_t *h)
{
    for (size_t i = 0; i < h->size; ++i) {
        const lg_header_t *f = &h->entries[i];
        if (is_hop_by_hop(f->name.base, f->name.len) || name_is(f->name, "content-length"))
            continue;
        if (!lg_http1_field_name_valid(f->name.base, f->name.len) ||
            !lg_http1_field_value_valid(f->value.base, f->value.len)) {
            lg_debug(http, "http1: dropping invalid response field '%.*s'", (int)f->name.len,
                     f->name.base);
            continue;
        }
        append(out, f->name.base, f->name.len);
        append(out, ": ", 2);
        append(out, f->value.base, f->value.len);
        append(out, "\r\n", 2);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Requests.
 * ------------------------------------------------------------------------------------------- */

static server_stream_t *stream_create(lg_http1_server_conn_t *conn)
{
    server_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        lg_fatal("http1: out of memory (stream)");
    s->super.ops = &stream_ops;
    s->conn = conn;
    conn->stream = s;
    h2o_timeout_unlink(&conn->idle_entry);
    lg_stream_t *hs = lg_hcm_stream_new(conn->hcm, &s->super);
    s->super.hcm = hs;
    return s;
}

/* The request cannot be parsed: the manager answers it, the connection closes after that. */
static void reject(lg_http1_server_conn_t *conn, server_stream_t *s, int status,
                   const char *details)
{
    lg_debug(http, "http1: request rejected: %d %s", status, details);
    s->request_complete = true;
    s->expect_continue = false;
    conn->no_more_requests = true;
    conn->discard_input = true;
    if (conn->sock != NULL)
        h2o_buffer_consume(&conn->sock->input, conn->sock->input->size);
    lg_hcm_on_protocol_error(s->super.hcm, status, details);
}

static bool should_drop_request_field(const lg_http1_header_t *f, const lg_http1_request_t *req,
                                      const lg_http1_header_t *all, size_t n)
{
    const char *name = f->name;
    size_t len = f->name_len;
    if (lg_http1_token_eq(name, len, "host")) /* it is the head's authority */
        return true;
    if (lg_http1_token_eq(name, len, "te")) /* only "te: trailers" may go to an HTTP/2 upstream */
        return !lg_http1_token_eq(f->value, f->value_len, "trailers");
    if (is_hop_by_hop(name, len))
        return true;
    if (req->expect_continue && lg_http1_token_eq(name, len, "expect"))
        return true;
    /* Fields the client nominated as hop-by-hop in Connection. */
    for (size_t i = 0; i < n; ++i)
        if (lg_http1_token_eq(all[i].name, all[i].name_len, "connection") &&
            list_has(all[i].value, all[i].value_len, name, len))
            return true;
    return false;
}

static lg_request_head_t *build_head(lg_http1_server_conn_t *conn, h2o_mem_pool_t *pool,
                                     const lg_http1_request_t *req)
{
    lg_request_head_t *head = h2o_mem_alloc_pool(pool, sizeof(*head));
    memset(head, 0, sizeof(*head));
    head->method = pool_dup(pool, req->method.base, req->method.len, false);
    head->scheme = conn->is_tls ? LG_LIT("https") : LG_LIT("http");
    head->authority = pool_dup(pool, req->authority.base, req->authority.len, false);
    switch (req->target_form) {
    case LG_HTTP1_TARGET_ABSOLUTE:
        if (req->path.len > 0 && req->path.base[0] == '/') {
            head->path = pool_dup(pool, req->path.base, req->path.len, false);
        } else {
            char *p = h2o_mem_alloc_pool(pool, req->path.len + 2);
            p[0] = '/';
            memcpy(p + 1, req->path.base, req->path.len);
            p[req->path.len + 1] = '\0';
            head->path = h2o_iovec_init(p, req->path.len + 1);
        }
        break;
    case LG_HTTP1_TARGET_AUTHORITY:
        head->path = h2o_iovec_init("", 0);
        break;
    default:
        head->path = pool_dup(pool, req->target.base, req->target.len, false);
        break;
    }
    head->version = req->minor_version == 0 ? LG_HTTP_10 : LG_HTTP_11;
    head->content_length = req->has_content_length ? (int64_t)req->content_length : -1;

    size_t keep = 0;
    for (size_t i = 0; i < req->num_headers; ++i)
        if (!should_drop_request_field(&req->headers[i], req, req->headers, req->num_headers))
            ++keep;
    head->headers.entries = h2o_mem_alloc_pool(pool, sizeof(lg_header_t) * (keep > 0 ? keep : 1));
    head->headers.capacity = keep;
    for (size_t i = 0; i < req->num_headers; ++i) {
        const lg_http1_header_t *f = &req->headers[i];
        if (should_drop_request_field(f, req, req->headers, req->num_headers))
            continue;
        lg_header_t *e = &head->headers.entries[head->headers.size++];
        e->name = pool_dup(pool, f->name, f->name_len, true);
        e->value = pool_dup(pool, f->value, f->value_len, false);
    }
    return head;
}

/*
 * The parsed head's field slices only live during parse_request (they are copied into the stream's
 * pool), so one array per thread serves every connection: an idle keep-alive connection then
 * holds no header array of its own (10,000 idle connections: 81 -> 18 MiB RSS).
 */
static __thread lg_http1_header_t *scratch;
static __thread size_t scratch_size;

static lg_http1_header_t *scratch_headers(size_t n)
{
    if (n > scratch_size) {
        lg_http1_header_t *grown = realloc(scratch, n * sizeof(*scratch));
        if (grown == NULL)
            lg_fatal("out of memory");
        scratch = grown;
        scratch_size = n;
    }
    return scratch;
}

void lg_http1_server_release_thread_scratch(void)
{
    free(scratch);
    scratch = NULL;
    scratch_size = 0;
}

/* Parses the next request head from the input. Returns true when the loop should go on. */
static bool parse_request(lg_http1_server_conn_t *conn)
{
    h2o_buffer_t *in = conn->sock->input;
    lg_http1_request_t req;
    lg_http1_error_t err;
    int r = lg_http1_parse_request(&conn->opts, in->bytes, in->size, conn->head_last_len, &req,
                                   scratch_headers(conn->header_slots), conn->header_slots, &err);
    if (r == -2) {
        conn->head_last_len = in->size;
        if (in->size != 0 && conn->settings.request_headers_timeout != NULL &&
            !h2o_timeout_is_linked(&conn->headers_entry))
            h2o_timeout_link(conn->loop, conn->settings.request_headers_timeout, &conn->headers_entry);
        return false;
    }
    h2o_timeout_unlink(&conn->headers_entry);
    conn->head_last_len = 0;
    server_stream_t *s = stream_create(conn);
    if (conn->stream != s)
        return false;
    if (r < 0) {
        reject(conn, s, err.status, err.details);
        return false;
    }
    if (req.target_form == LG_HTTP1_TARGET_ABSOLUTE && !conn->settings.allow_absolute_url) {
        lg_http1_error_set(&err, LG_HTTP1_ERR_INVALID_URL, 0);
        reject(conn, s, err.status, err.details);
        return false;
    }

    lg_request_head_t *head = build_head(conn, lg_stream_pool(s->super.hcm), &req);
    s->req_body = req.body;
    s->body_left = req.body == LG_HTTP1_BODY_CONTENT_LENGTH ? req.content_length : 0;
    s->is_head = req.is_head;
    s->is_http10 = req.minor_version == 0;
    s->keep_alive = req.keep_alive;
    s->expect_continue = req.expect_continue && req.body != LG_HTTP1_BODY_NONE;
    if (req.body == LG_HTTP1_BODY_CHUNKED) {
        if (conn->trailers == NULL && (conn->trailers = calloc(conn->header_slots, sizeof(*conn->trailers))) == NULL)
            lg_fatal("out of memory");
        lg_http1_chunked_decoder_init(&s->chunked, &conn->opts, false, conn->trailers,
                                      conn->header_slots);
    }
    /* CONNECT would turn the connection into a tunnel: nothing after its head is parsed. */
    if (!req.keep_alive || req.is_connect)
        conn->no_more_requests = true;
    bool end_stream = req.body == LG_HTTP1_BODY_NONE;
    s->request_complete = end_stream;
    h2o_buffer_consume(&conn->sock->input, (size_t)r);
    lg_hcm_on_headers(s->super.hcm, head, end_stream);
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

/* Hands body bytes held in the input to the manager. Returns true when the loop should go on. */
static bool deliver_body(lg_http1_server_conn_t *conn, server_stream_t *s)
{
    h2o_buffer_t **in = &conn->sock->input;
    lg_stream_t *hs = s->super.hcm;

    if (s->req_body == LG_HTTP1_BODY_CONTENT_LENGTH) {
        size_t n = (*in)->size;
        if (n == 0)
            return false;
        if ((uint64_t)n > s->body_left)
            n = (size_t)s->body_left;
        s->body_left -= n;
        bool end = s->body_left == 0;
        s->request_complete = end;
        lg_hcm_on_data(hs, (*in)->bytes, n, end);
        h2o_buffer_consume(in, n);
        return true;
    }

    size_t consumed = 0;
    lg_http1_slice_t data = {NULL, 0};
    lg_http1_chunked_status_t st =
        lg_http1_chunked_decode(&s->chunked, (*in)->bytes, (*in)->size, &consumed, &data);
    switch (st) {
    case LG_HTTP1_CHUNKED_DATA:
        lg_hcm_on_data(hs, data.base, data.len, 0);
        h2o_buffer_consume(in, consumed);
        return true;
    case LG_HTTP1_CHUNKED_NEED_MORE:
        h2o_buffer_consume(in, consumed);
        return false;
    case LG_HTTP1_CHUNKED_DONE: {
        s->request_complete = true;
        if (s->chunked.num_trailers > 0) {
            lg_headers_t *t = copy_trailers(lg_stream_pool(hs), &s->chunked);
            h2o_buffer_consume(in, consumed);
            lg_hcm_on_trailers(hs, t);
        } else {
            h2o_buffer_consume(in, consumed);
            lg_hcm_on_data(hs, "", 0, 1);
        }
        return true;
    }
    default:
        reject(conn, s, s->chunked.error.status, s->chunked.error.details);
        return false;
    }
}

static void send_continue(lg_http1_server_conn_t *conn, server_stream_t *s)
{
    s->expect_continue = false;
    s->continue_sent = true;
    append_str(&conn->out, "HTTP/1.1 100 Continue\r\n\r\n");
    flush(conn);
}

/* Runs requests as far as the input, the manager's read state and the pipeline allow. */
static void process_input(lg_http1_server_conn_t *conn)
{
    for (;;) {
        if (conn->sock == NULL || conn->close_pending || conn->closing)
            return;
        if (conn->discard_input) {
            h2o_buffer_consume(&conn->sock->input, conn->sock->input->size);
            return;
        }
        server_stream_t *s = conn->stream;
        if (s == NULL) {
            if (conn->no_more_requests || conn->shutdown) {
                begin_close(conn);
                return;
            }
            if (conn->sock->input->size == 0 || !parse_request(conn))
                return;
            continue;
        }
        if (s->request_complete || s->read_disabled)
            return;
        if (s->expect_continue && !s->response_started)
            send_continue(conn, s);
        if (!deliver_body(conn, s))
            return;
    }
}

static void notify_watermark(lg_http1_server_conn_t *conn)
{
    server_stream_t *s = conn->stream;
    if (s == NULL || s->reset_by_hcm || s->wm_reported == conn->wm_above)
        return;
    s->wm_reported = conn->wm_above;
    lg_hcm_on_watermark(s->super.hcm, conn->wm_above);
}

/* The one place work happens: input, manager notifications, then leave() for closing. */
static void dispatch(lg_http1_server_conn_t *conn)
{
    ++conn->depth;
    process_input(conn);
    if (conn->sock != NULL && !conn->close_pending)
        notify_watermark(conn);
    leave(conn);
}

static void on_defer(h2o_timeout_entry_t *entry)
{
    dispatch(H2O_STRUCT_FROM_MEMBER(lg_http1_server_conn_t, defer_entry, entry));
}

/* request_headers_timeout: the head did not arrive whole in time. */
static void on_headers_timeout(h2o_timeout_entry_t *entry)
{
    lg_http1_server_conn_t *conn = H2O_STRUCT_FROM_MEMBER(lg_http1_server_conn_t, headers_entry, entry);
    if (conn->sock == NULL || conn->stream != NULL)
        return;
    ++conn->depth;
    server_stream_t *s = stream_create(conn);
    if (conn->stream == s)
        reject(conn, s, 408, "request_header_timeout");
    leave(conn);
}

static void on_idle(h2o_timeout_entry_t *entry)
{
    lg_http1_server_conn_t *conn =
        H2O_STRUCT_FROM_MEMBER(lg_http1_server_conn_t, idle_entry, entry);
    ++conn->depth;
    close_socket(conn);
    leave(conn);
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    lg_http1_server_conn_t *conn = sock->data;
    if (conn == NULL)
        return;
    if (err != NULL) {
        ++conn->depth;
        close_socket(conn);
        leave(conn);
        return;
    }
    if (conn->lingering || conn->closing || conn->discard_input) {
        /* Nothing more is parsed; the bytes are dropped (a linger is bounded by its timer). */
        h2o_buffer_consume(&sock->input, sock->input->size);
        return;
    }
    dispatch(conn);
}

/* ---------------------------------------------------------------------------------------------
 * Responses: the stream ops.
 * ------------------------------------------------------------------------------------------- */

static int64_t head_content_length(const lg_response_head_t *head, bool *has_te, bool *conn_close)
{
    int64_t cl = head->content_length;
    *has_te = false;
    *conn_close = false;
    for (size_t i = 0; i < head->headers.size; ++i) {
        const lg_header_t *f = &head->headers.entries[i];
        if (name_is(f->name, "transfer-encoding")) {
            *has_te = true;
        } else if (name_is(f->name, "connection")) {
            *conn_close = *conn_close || list_has(f->value.base, f->value.len, "close", 5);
        } else if (cl < 0 && name_is(f->name, "content-length") && f->value.len > 0 &&
                   f->value.len <= 18) {
            int64_t v = 0;
            size_t k = 0;
            for (; k < f->value.len && f->value.base[k] >= '0' && f->value.base[k] <= '9'; ++k)
                v = v * 10 + (f->value.base[k] - '0');
            if (k == f->value.len)
                cl = v;
        }
    }
    return cl;
}

static void response_done(lg_http1_server_conn_t *conn, server_stream_t *s)
{
    s->response_complete = true;
    /* A short Content-Length body, a close-delimited body, or a request still arriving: the
     * connection cannot carry another exchange. */
    if ((s->out_length && s->out_left > 0) ||
        (!s->out_chunked && !s->out_length && !s->out_no_body) || !s->request_complete)
        conn->no_more_requests = true;
    if (conn->no_more_requests)
        begin_close(conn);
}

static void write_interim(lg_http1_server_conn_t *conn, server_stream_t *s,
                          const lg_response_head_t *head)
{
    char line[64];
    if (s->is_http10)
        return; /* RFC 9110 §15.2: never a 1xx to an HTTP/1.0 client */
    if (head->status == 100) {
        /* Only the one 100 the client asked for, once (the manager may answer it itself). */
        if (!s->expect_continue)
            return;
        send_continue(conn, s);
        return;
    }
    snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", head->status,
             lg_http1_reason_phrase(head->status));
    append_str(&conn->out, line);
    append_fields(&conn->out, &head->headers);
    append(&conn->out, "\r\n", 2);
}

static void s_encode_headers(lg_server_stream_t *cs, const lg_response_head_t *head, int end_stream)
{
    server_stream_t *s = (server_stream_t *)cs;
    lg_http1_server_conn_t *conn = s->conn;
    char line[96];

    if (s->reset_by_hcm || s->response_started || conn->sock == NULL)
        return;
    int status = head->status;
    if (status < 100 || status > 999)
        status = 500;
    if (status < 200 && status != 101) {
        write_interim(conn, s, head);
        flush(conn);
        check_watermark(conn);
        return;
    }
    s->response_started = true;
    s->expect_continue = false; /* the final answer replaces the 100 never sent */

    bool has_te, conn_close;
    int64_t cl = head_content_length(head, &has_te, &conn_close);
    bool keep = s->keep_alive && !conn->shutdown && !conn->no_more_requests && !conn_close &&
                status != 101;

    /* An HTTP/1.0 client gets an HTTP/1.0 status line, as Envoy answers it. */
    {
        char *p = line;
        memcpy(p, s->is_http10 ? "HTTP/1.0 " : "HTTP/1.1 ", 9);
        p += 9;
        p += lg_u64_to_dec(p, (uint64_t)status);
        *p++ = ' ';
        const char *reason = lg_http1_reason_phrase(status);
        size_t rl = strlen(reason);
        if (rl > sizeof(line) - (size_t)(p - line) - 3)
            rl = sizeof(line) - (size_t)(p - line) - 3;
        memcpy(p, reason, rl);
        p += rl;
        *p++ = '\r';
        *p++ = '\n';
        append(&conn->out, line, (size_t)(p - line));
    }
    append_fields(&conn->out, &head->headers);
    if (s->is_head || status == 204 || status == 304 || status == 101) {
        /* No body whatever follows; a HEAD or 304 may still say what the length would be. */
        s->out_no_body = true;
        if (cl >= 0 && status != 204 && status != 101) {
            memcpy(line, "content-length: ", 16);
            size_t n = 16 + lg_u64_to_dec(line + 16, (uint64_t)cl);
            memcpy(line + n, "\r\n", 3);
            append_str(&conn->out, line);
        }
    } else if (cl >= 0 && !has_te) {
        s->out_length = true;
        s->out_left = (uint64_t)cl;
        memcpy(line, "content-length: ", 16);
        size_t n = 16 + lg_u64_to_dec(line + 16, (uint64_t)cl);
        memcpy(line + n, "\r\n", 3);
        append_str(&conn->out, line);
    } else if (end_stream) {
        s->out_length = true;
        s->out_left = 0;
        append_str(&conn->out, "content-length: 0\r\n");
    } else if (!s->is_http10) {
        s->out_chunked = true;
        append_str(&conn->out, "transfer-encoding: chunked\r\n");
    } else {
        keep = false; /* HTTP/1.0 without a length: the close ends the body */
    }
    if (!keep) {
        conn->no_more_requests = true;
        append_str(&conn->out, "connection: close\r\n");
    } else if (s->is_http10) {
        append_str(&conn->out, "connection: keep-alive\r\n");
    }
    append(&conn->out, "\r\n", 2);
    if (end_stream) {
        if (s->out_chunked)
            append_str(&conn->out, "0\r\n\r\n");
        response_done(conn, s);
    }
    flush_soon(conn);
    check_watermark(conn);
}

static void s_encode_data(lg_server_stream_t *cs, const void *data, size_t len, int end_stream)
{
    server_stream_t *s = (server_stream_t *)cs;
    lg_http1_server_conn_t *conn = s->conn;

    if (s->reset_by_hcm || !s->response_started || s->response_complete || conn->sock == NULL)
        return;
    if (s->out_no_body) {
        /* nothing goes on the wire */
    } else if (s->out_chunked) {
        if (len > 0) {
            char size_line[LG_HTTP1_CHUNK_SIZE_LINE_MAX];
            append(&conn->out, size_line, lg_http1_chunked_encode_size(size_line, len));
            append(&conn->out, data, len);
            append(&conn->out, "\r\n", 2);
        }
        if (end_stream)
            append_str(&conn->out, "0\r\n\r\n");
    } else if (s->out_length) {
        size_t n = (uint64_t)len > s->out_left ? (size_t)s->out_left : len;
        append(&conn->out, data, n);
        s->out_left -= n;
        if (n < len) {
            lg_debug(http, "http1: response body longer than its content-length; truncated");
            conn->no_more_requests = true;
        }
    } else {
        append(&conn->out, data, len);
    }
    if (end_stream)
        response_done(conn, s);
    flush_soon(conn);
    check_watermark(conn);
}

static void s_encode_trailers(lg_server_stream_t *cs, const lg_headers_t *trailers)
{
    server_stream_t *s = (server_stream_t *)cs;
    lg_http1_server_conn_t *conn = s->conn;

    if (s->reset_by_hcm || !s->response_started || s->response_complete || conn->sock == NULL)
        return;
    if (s->out_chunked) {
        size_t n = 0;
        lg_http1_header_t *t = malloc(sizeof(*t) * (trailers->size > 0 ? trailers->size : 1));
        if (t == NULL)
            lg_fatal("http1: out of memory (trailers)");
        for (size_t i = 0; i < trailers->size; ++i) {
            const lg_header_t *f = &trailers->entries[i];
            if (is_hop_by_hop(f->name.base, f->name.len) || name_is(f->name, "content-length") ||
                !lg_http1_field_name_valid(f->name.base, f->name.len) ||
                !lg_http1_field_value_valid(f->value.base, f->value.len))
                continue;
            t[n++] = (lg_http1_header_t){f->name.base, f->name.len, f->value.base, f->value.len};
        }
        size_t need = lg_http1_chunked_last_len(t, n);
        h2o_iovec_t r = h2o_buffer_reserve(&conn->out, need);
        if (r.base == NULL)
            lg_fatal("http1: out of memory (output buffer)");
        size_t w = lg_http1_chunked_encode_last(r.base, need, t, n);
        conn->out->size += w;
        free(t);
    }
    response_done(conn, s);
    flush_soon(conn);
    check_watermark(conn);
}

static void s_reset(lg_server_stream_t *cs)
{
    server_stream_t *s = (server_stream_t *)cs;
    lg_http1_server_conn_t *conn = s->conn;
    s->reset_by_hcm = true;
    conn->no_more_requests = true;
    close_socket(conn);
    schedule(conn);
}

static void s_read_disable(lg_server_stream_t *cs, int disable)
{
    server_stream_t *s = (server_stream_t *)cs;
    lg_http1_server_conn_t *conn = s->conn;
    s->read_disabled = disable != 0;
    if (!s->read_disabled)
        schedule(conn); /* held bytes are delivered from the loop, not from inside this call */
    update_reading(conn);
}

static size_t s_buffered(lg_server_stream_t *cs)
{
    return buffered(((server_stream_t *)cs)->conn);
}

static void s_release(lg_server_stream_t *cs)
{
    server_stream_t *s = (server_stream_t *)cs;
    lg_http1_server_conn_t *conn = s->conn;
    if (conn->stream == s)
        conn->stream = NULL;
    if (!s->reset_by_hcm && !s->response_complete) {
        /* Released with the response unfinished: the client can only learn it from a close. */
        conn->no_more_requests = true;
        close_socket(conn);
    } else if (!s->request_complete) {
        conn->no_more_requests = true; /* the rest of its body would be read as a request */
    }
    free(s);
    schedule(conn);
}

static const lg_server_stream_ops_t stream_ops = {
    .encode_headers = s_encode_headers,
    .encode_data = s_encode_data,
    .encode_trailers = s_encode_trailers,
    .reset = s_reset,
    .read_disable = s_read_disable,
    .buffered = s_buffered,
    .release = s_release,
};

/* ---------------------------------------------------------------------------------------------
 * The connection.
 * ------------------------------------------------------------------------------------------- */

lg_http1_server_conn_t *lg_http1_server_conn_new(h2o_socket_t *sock, lg_hcm_conn_t *hcm,
                                                 const lg_http1_settings_t *settings)
{
    lg_http1_server_conn_t *conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        lg_fatal("http1: out of memory (connection)");
    if (settings->zero_timeout == NULL)
        lg_fatal("http1: lg_http1_settings_t.zero_timeout is not set");
    conn->sock = sock;
    conn->loop = h2o_socket_get_loop(sock);
    conn->hcm = hcm;
    conn->settings = *settings;
    conn->is_tls = sock->ssl != NULL;
    conn->close_reason = LG_RESET_CONNECTION_CLOSED;

    lg_http1_options_init(&conn->opts);
    if (settings->max_request_headers_kb > 0)
        conn->opts.max_header_bytes = (size_t)settings->max_request_headers_kb * 1024;
    if (settings->max_headers_count > 0)
        conn->opts.max_header_count = settings->max_headers_count;
    conn->opts.headers_with_underscores = settings->headers_with_underscores_action;
    conn->opts.accept_http_10 = settings->accept_http_10;
    conn->header_slots = conn->opts.max_header_count;
    conn->hold_limit = settings->max_held_input;
    if (conn->hold_limit < conn->opts.max_header_bytes + 1024)
        conn->hold_limit = conn->opts.max_header_bytes + 1024;
    if (conn->settings.high_watermark == 0) {
        conn->settings.high_watermark = LG_HTTP1_DEFAULT_HIGH_WATERMARK;
        conn->settings.low_watermark = LG_HTTP1_DEFAULT_LOW_WATERMARK;
    }
    if (conn->settings.low_watermark > conn->settings.high_watermark)
        conn->settings.low_watermark = conn->settings.high_watermark;

    conn->defer_entry.cb = on_defer;
    conn->idle_entry.cb = on_idle;
    conn->headers_entry.cb = on_headers_timeout;
    h2o_buffer_init(&conn->out, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&conn->inflight, &h2o_socket_buffer_prototype);
    sock->data = conn;

    update_reading(conn);
    update_idle(conn);
    if (sock->input->size > 0)
        schedule(conn); /* bytes read with the TLS handshake */
    return conn;
}

void lg_http1_server_conn_shutdown(lg_http1_server_conn_t *conn)
{
    conn->shutdown = true;
    schedule(conn);
}

void lg_http1_server_conn_close(lg_http1_server_conn_t *conn)
{
    conn->no_more_requests = true;
    if (conn->sock != NULL)
        conn->close_reason = LG_RESET_LOCAL;
    close_socket(conn);
    schedule(conn);
}
