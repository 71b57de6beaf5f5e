/*
 * The admin endpoint's server (see admin.h): its listening socket on the main loop, HTTP/1.1
 * connections (one request at a time, keep-alive, pipelined requests kept for later, small bodies
 * read and dropped), the admin's own stats (http.admin.*, listener.admin.*) and its access log in
 * Envoy's default format. What each path answers is decided in admin_endpoints.c; bodies come from
 * the renderers in admin_render.h, and large ones (/stats) are streamed with chunked encoding, a
 * chunk per write completion, never built whole.
 *
 * Not for: HTTP/2 (Envoy's admin speaks it, but no admin client needs it), TLS on the admin port,
 * /reset_counters (the stats registry cannot reset), profilers.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <h2o/linklist.h>
#include <h2o/timeout.h>

#include "admin.h"
#include "admin_endpoints.h"
#include "envoy/config/accesslog/v3/accesslog.pb-c.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb-c.h"
#include "envoy/extensions/access_loggers/stream/v3/stream.pb-c.h"
#include "http1_chunked.h"
#include "http1_parser.h"
#include "log.h"
#include "pb_registry.h"
#include "stats.h"
#include "stream_info.h"

#define MAX_ACCEPTS_PER_EVENT 16
#define MAX_CONNECTIONS 256
#define MAX_BODY_BYTES (64 * 1024)  /* admin requests carry no meaningful body */
#define CHUNK_BUDGET (64 * 1024)    /* streamed bodies: bytes rendered per write */
#define IDLE_TIMEOUT_MS (60 * 1000) /* a connection doing nothing is closed */
#define MAX_HEADERS 100
#define TYPE_PREFIX "type.googleapis.com/"
#define TEXT "text/plain; charset=UTF-8"

/* ------------------------------------------------------------------------------------------- */
/* State                                                                                       */
/* ------------------------------------------------------------------------------------------- */

/* The admin's own connection manager and listener stats, as Envoy names them. */
#define ADMIN_HCM_STATS(X)                                                                         \
    X(downstream_cx_total, COUNTER) X(downstream_cx_active, GAUGE) X(downstream_cx_http1_total, COUNTER) \
    X(downstream_rq_total, COUNTER) X(downstream_rq_http1_total, COUNTER) X(downstream_rq_1xx, COUNTER) \
    X(downstream_rq_2xx, COUNTER) X(downstream_rq_3xx, COUNTER) X(downstream_rq_4xx, COUNTER)      \
    X(downstream_rq_5xx, COUNTER) X(downstream_rq_completed, COUNTER) X(downstream_cx_protocol_error, COUNTER)
#define ADMIN_LISTENER_STATS(X) X(downstream_cx_total, COUNTER) X(downstream_cx_active, GAUGE)

typedef struct st_admin_stats_t {
#define LG_X(name, type) lg_stat_id_t name;
    struct {
        ADMIN_HCM_STATS(LG_X)
    } http;
    struct {
        ADMIN_LISTENER_STATS(LG_X)
    } listener;
#undef LG_X
} admin_stats_t;

/* The main thread's cell block: the admin is its only writer. Attached once per process (blocks
 * are summed for the process's life). */
static lg_stats_cells_t *main_cells;

typedef struct st_access_log_t {
    char *path; /* NULL for stdout/stderr */
    int fd;
} access_log_t;

struct st_lg_admin_t {
    h2o_evloop_t *loop;
    const lg_bootstrap_t *bootstrap;
    lg_admin_hooks_t hooks;
    lg_admin_context_t ctx; /* what handlers read: points into this struct */
    h2o_socket_t *listener;
    unsigned port;
    h2o_linklist_t conns;
    size_t n_conns;
    h2o_timeout_t idle_timeout;
    access_log_t *logs;
    size_t n_logs;
    admin_stats_t stats;
    lg_http1_options_t http1;
};

typedef struct st_request_t {
    char *method, *target; /* target = path and query as received */
    size_t path_len;       /* the path part of target */
    char *authority, *user_agent, *forwarded_for, *request_id; /* NULL prints "-" */
    int minor_version;
    int is_head;
    uint64_t start_ms;
    struct timespec start_wall;
    uint64_t bytes_received;
} request_t;

typedef enum en_conn_state_t {
    READING_HEAD,
    READING_BODY,
    WRITING,
} conn_state_t;

typedef struct st_conn_t {
    lg_admin_t *admin;
    h2o_socket_t *sock;
    h2o_linklist_t link;
    h2o_timeout_entry_t idle;
    conn_state_t state;
    size_t last_len;
    int has_request;
    request_t req;
    int body_chunked;
    uint64_t body_left;
    lg_http1_chunked_decoder_t chunked;
    lg_http1_header_t trailers[16];
    lg_admin_response_t res;
    lg_strbuf_t wbuf; /* bytes handed to the in-flight write */
    int chunked_out, close_after, stream_done;
    uint64_t bytes_sent; /* body bytes */
} conn_t;

static void handle_input(conn_t *c);
static void on_read(h2o_socket_t *sock, const char *err);

/* ------------------------------------------------------------------------------------------- */
/* Connections                                                                                 */
/* ------------------------------------------------------------------------------------------- */

static void stat_inc(lg_stat_id_t id)
{
    lg_stats_inc(main_cells, id);
}

static void request_reset(request_t *r)
{
    free(r->method);
    free(r->target);
    free(r->authority);
    free(r->user_agent);
    free(r->forwarded_for);
    free(r->request_id);
    memset(r, 0, sizeof(*r));
}

static void response_reset(lg_admin_response_t *res)
{
    lg_strbuf_dispose(&res->body);
    lg_admin_stats_request_free(res->stream);
    memset(res, 0, sizeof(*res));
}

static int open_log(access_log_t *l, lg_error_t *err)
{
    if (l->path == NULL)
        return 0;
    int fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return lg_error_set(err, "admin access log \"%s\": %s", l->path, strerror(errno));
    if (l->fd >= 0)
        close(l->fd);
    l->fd = fd;
    return 0;
}

/* Envoy's default access log format:
 * [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
 * %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%
 * "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%"
 * "%UPSTREAM_HOST%" */
static void access_log(conn_t *c)
{
    lg_admin_t *a = c->admin;
    if (a->n_logs == 0 || !c->has_request)
        return;
    const request_t *r = &c->req;
    struct tm tm;
    char ts[40];
    gmtime_r(&r->start_wall.tv_sec, &tm);
    size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03dZ", (int)(r->start_wall.tv_nsec / 1000000));
    lg_strbuf_t line = LG_STRBUF_INIT;
#define OR_DASH(s) ((s) != NULL ? (s) : "-")
    lg_strbuf_printf(&line,
                     "[%s] \"%s %s HTTP/1.%d\" %d - %" PRIu64 " %" PRIu64 " %" PRIu64 " - \"%s\" \"%s\" \"%s\" \"%s\" "
                     "\"-\"\n",
                     ts, OR_DASH(r->method), OR_DASH(r->target), r->minor_version, c->res.status, r->bytes_received,
                     c->bytes_sent, h2o_now(a->loop) - r->start_ms, OR_DASH(r->forwarded_for),
                     OR_DASH(r->user_agent), OR_DASH(r->request_id), OR_DASH(r->authority));
#undef OR_DASH
    for (size_t i = 0; i < a->n_logs; ++i) {
        /* One write(2) per line on an O_APPEND file: lines never interleave. The main thread may
         * block on a local file here; workers never do. */
        ssize_t w = write(a->logs[i].fd, line.data, line.len);
        (void)w;
    }
    lg_strbuf_dispose(&line);
}

static void conn_close(conn_t *c)
{
    lg_admin_t *a = c->admin;
    if (c->has_request && c->res.status != 0)
        access_log(c);
    h2o_timeout_unlink(&c->idle);
    h2o_linklist_unlink(&c->link);
    --a->n_conns;
    lg_stats_dec(main_cells, a->stats.http.downstream_cx_active);
    lg_stats_dec(main_cells, a->stats.listener.downstream_cx_active);
    request_reset(&c->req);
    response_reset(&c->res);
    lg_strbuf_dispose(&c->wbuf);
    h2o_socket_read_stop(c->sock);
    h2o_socket_close(c->sock);
    free(c);
}

static void touch(conn_t *c)
{
    h2o_timeout_unlink(&c->idle);
    h2o_timeout_link(c->admin->loop, &c->admin->idle_timeout, &c->idle);
}

static void on_idle(h2o_timeout_entry_t *e)
{
    conn_t *c = H2O_STRUCT_FROM_MEMBER(conn_t, idle, e);
    conn_close(c);
}

static void finish_request(conn_t *c)
{
    lg_admin_t *a = c->admin;
    int quit = c->res.quit_after;
    if (c->res.reopen_logs)
        for (size_t i = 0; i < a->n_logs; ++i) {
            lg_error_t err;
            if (open_log(&a->logs[i], &err) != 0)
                lg_err(admin, "%s", err.msg);
        }
    access_log(c);
    stat_inc(a->stats.http.downstream_rq_completed);
    request_reset(&c->req);
    response_reset(&c->res);
    c->has_request = 0;
    c->bytes_sent = 0;
    c->stream_done = 0;
    c->chunked_out = 0;
    if (quit) {
        if (a->hooks.quit != NULL)
            a->hooks.quit(a->hooks.data);
        else
            lg_warn(admin, "/quitquitquit: the server offers no quit");
    }
    if (c->close_after) {
        conn_close(c);
        return;
    }
    c->state = READING_HEAD;
    c->last_len = 0;
    touch(c);
    h2o_socket_read_start(c->sock, on_read);
    handle_input(c); /* a pipelined request may already wait in the input */
}

static void on_written(h2o_socket_t *sock, const char *err);

/* Renders the next part of a streamed body into wbuf, framed; sets stream_done at the end. */
static void next_chunk(conn_t *c)
{
    lg_strbuf_t body = LG_STRBUF_INIT;
    int more = lg_admin_stats_request_next(c->res.stream, &body, CHUNK_BUDGET);
    if (body.len > 0) {
        if (c->chunked_out)
            lg_strbuf_printf(&c->wbuf, "%zx\r\n", body.len);
        lg_strbuf_append(&c->wbuf, body.data, body.len);
        if (c->chunked_out)
            lg_strbuf_append(&c->wbuf, "\r\n", 2);
        c->bytes_sent += body.len;
    }
    if (!more) {
        c->stream_done = 1;
        if (c->chunked_out)
            lg_strbuf_puts(&c->wbuf, "0\r\n\r\n");
    }
    lg_strbuf_dispose(&body);
}

static void write_wbuf(conn_t *c)
{
    h2o_iovec_t iov = h2o_iovec_init(c->wbuf.data, c->wbuf.len);
    touch(c);
    h2o_socket_write(c->sock, &iov, 1, on_written);
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 500 ? "Bad Request" : "Internal Server Error";
    }
}

static void send_response(conn_t *c)
{
    lg_admin_t *a = c->admin;
    lg_admin_response_t *res = &c->res;
    int s = res->status;
    stat_inc(s < 200   ? a->stats.http.downstream_rq_1xx
             : s < 300 ? a->stats.http.downstream_rq_2xx
             : s < 400 ? a->stats.http.downstream_rq_3xx
             : s < 500 ? a->stats.http.downstream_rq_4xx
                       : a->stats.http.downstream_rq_5xx);
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);

    c->wbuf.len = 0;
    lg_strbuf_printf(&c->wbuf,
                     "HTTP/1.%d %d %s\r\ncontent-type: %s\r\ncache-control: no-cache, max-age=0\r\n"
                     "x-content-type-options: nosniff\r\ndate: %s\r\nserver: envoy\r\n",
                     c->req.minor_version, s, reason(s), res->content_type != NULL ? res->content_type : TEXT, date);
    if (res->stream != NULL && !c->req.is_head) {
        /* HTTP/1.0 has no chunked encoding: the body then ends with the connection. */
        if (c->req.minor_version >= 1)
            c->chunked_out = 1;
        else
            c->close_after = 1;
        lg_strbuf_puts(&c->wbuf, c->chunked_out ? "transfer-encoding: chunked\r\n" : "");
    } else {
        lg_strbuf_printf(&c->wbuf, "content-length: %zu\r\n", res->stream != NULL ? (size_t)0 : res->body.len);
    }
    if (c->close_after)
        lg_strbuf_puts(&c->wbuf, "connection: close\r\n");
    else if (c->req.minor_version == 0)
        lg_strbuf_puts(&c->wbuf, "connection: keep-alive\r\n");
    lg_strbuf_puts(&c->wbuf, "\r\n");
    if (c->req.is_head) {
        c->stream_done = 1;
    } else if (res->stream != NULL) {
        next_chunk(c);
    } else {
        lg_strbuf_append(&c->wbuf, res->body.data != NULL ? res->body.data : "", res->body.len);
        c->bytes_sent = res->body.len;
        c->stream_done = 1;
    }
    c->state = WRITING;
    write_wbuf(c);
}

static void on_written(h2o_socket_t *sock, const char *err)
{
    conn_t *c = sock->data;
    if (err != NULL) {
        conn_close(c);
        return;
    }
    if (!c->stream_done) {
        c->wbuf.len = 0;
        next_chunk(c);
        write_wbuf(c);
        return;
    }
    finish_request(c);
}

/* A request that cannot be parsed: Envoy's status, then close. */
static void send_error(conn_t *c, int status, const char *text)
{
    if (!c->has_request) {
        c->has_request = 1;
        c->req.minor_version = 1;
        clock_gettime(CLOCK_REALTIME, &c->req.start_wall);
        c->req.start_ms = h2o_now(c->admin->loop);
    }
    stat_inc(c->admin->stats.http.downstream_cx_protocol_error);
    c->close_after = 1;
    response_reset(&c->res);
    c->res.status = status;
    c->res.content_type = TEXT;
    lg_strbuf_puts(&c->res.body, text);
    h2o_socket_read_stop(c->sock);
    send_response(c);
}

static char *header_copy(const lg_http1_request_t *req, const char *lower_name)
{
    for (size_t i = 0; i < req->num_headers; ++i)
        if (lg_http1_token_eq(req->headers[i].name, req->headers[i].name_len, lower_name)) {
            char *v = strndup(req->headers[i].value, req->headers[i].value_len);
            if (v == NULL)
                lg_fatal("out of memory");
            return v;
        }
    return NULL;
}

static void run_request(conn_t *c)
{
    h2o_socket_read_stop(c->sock);
    stat_inc(c->admin->stats.http.downstream_rq_total);
    stat_inc(c->admin->stats.http.downstream_rq_http1_total);
    response_reset(&c->res);
    lg_admin_dispatch(&c->admin->ctx, c->req.method, c->req.target, c->req.path_len, &c->res);
    send_response(c);
}

/* Parses one head from the input; returns 1 when a request is ready to run, 0 to wait. */
static int read_head(conn_t *c)
{
    h2o_buffer_t *in = c->sock->input;
    lg_http1_request_t req;
    lg_http1_header_t headers[MAX_HEADERS];
    lg_http1_error_t err;
    int r = lg_http1_parse_request(&c->admin->http1, in->bytes, in->size, c->last_len, &req, headers, MAX_HEADERS, &err);
    if (r == -2) {
        c->last_len = in->size;
        return 0;
    }
    if (r < 0) {
        send_error(c, err.status, err.message);
        return 0;
    }
    request_t *q = &c->req;
    c->has_request = 1;
    clock_gettime(CLOCK_REALTIME, &q->start_wall);
    q->start_ms = h2o_now(c->admin->loop);
    if ((q->method = strndup(req.method.base, req.method.len)) == NULL ||
        (q->target = strndup(req.target.base, req.target.len)) == NULL)
        lg_fatal("out of memory");
    const char *qm = memchr(q->target, '?', req.target.len);
    q->path_len = qm != NULL ? (size_t)(qm - q->target) : req.target.len;
    if (req.authority.len > 0 && (q->authority = strndup(req.authority.base, req.authority.len)) == NULL)
        lg_fatal("out of memory");
    q->user_agent = header_copy(&req, "user-agent");
    q->forwarded_for = header_copy(&req, "x-forwarded-for");
    q->request_id = header_copy(&req, "x-request-id");
    q->minor_version = req.minor_version;
    q->is_head = req.is_head;
    c->close_after = !req.keep_alive;
    c->last_len = 0;
    int has_body = req.body != LG_HTTP1_BODY_NONE;
    c->body_chunked = req.body == LG_HTTP1_BODY_CHUNKED;
    c->body_left = req.body == LG_HTTP1_BODY_CONTENT_LENGTH ? req.content_length : 0;
    h2o_buffer_consume(&c->sock->input, (size_t)r);
    if (req.is_connect || req.upgrade) {
        send_error(c, 400, "upgrades and CONNECT are not served by the admin");
        return 0;
    }
    if (c->body_left > MAX_BODY_BYTES) {
        send_error(c, 413, "Payload Too Large");
        return 0;
    }
    if (has_body && req.expect_continue) {
        /* Answer at once without the body, then close: no 100 Continue dance for a body the
         * admin would drop anyway. */
        c->close_after = 1;
        return 1;
    }
    if (c->body_chunked)
        lg_http1_chunked_decoder_init(&c->chunked, &c->admin->http1, false, c->trailers,
                                      sizeof(c->trailers) / sizeof(c->trailers[0]));
    c->state = READING_BODY;
    return 1;
}

/* Drops body bytes as they come; returns 1 once the body is complete, 0 to wait. */
static int read_body(conn_t *c)
{
    h2o_buffer_t *in = c->sock->input;
    if (!c->body_chunked) {
        size_t n = in->size < c->body_left ? in->size : (size_t)c->body_left;
        h2o_buffer_consume(&c->sock->input, n);
        c->body_left -= n;
        c->req.bytes_received += n;
        return c->body_left == 0;
    }
    for (;;) {
        size_t consumed = 0;
        lg_http1_slice_t data;
        lg_http1_chunked_status_t st = lg_http1_chunked_decode(&c->chunked, in->bytes, in->size, &consumed, &data);
        if (st == LG_HTTP1_CHUNKED_DATA)
            c->req.bytes_received += data.len;
        if (st == LG_HTTP1_CHUNKED_ERROR) {
            send_error(c, c->chunked.error.status, c->chunked.error.message);
            return 0;
        }
        h2o_buffer_consume(&c->sock->input, consumed);
        in = c->sock->input;
        if (c->req.bytes_received > MAX_BODY_BYTES) {
            send_error(c, 413, "Payload Too Large");
            return 0;
        }
        if (st == LG_HTTP1_CHUNKED_DONE)
            return 1;
        if (st == LG_HTTP1_CHUNKED_NEED_MORE)
            return 0;
    }
}

static void handle_input(conn_t *c)
{
    if (c->state == READING_HEAD) {
        if (c->sock->input->size == 0 || !read_head(c))
            return;
        if (c->state != READING_BODY) { /* answered before the body (Expect: 100-continue) */
            run_request(c);
            return;
        }
    }
    if (c->state == READING_BODY && read_body(c)) {
        c->state = WRITING;
        run_request(c);
    }
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    conn_t *c = sock->data;
    if (err != NULL) {
        conn_close(c);
        return;
    }
    touch(c);
    handle_input(c);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    lg_admin_t *a = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < MAX_ACCEPTS_PER_EVENT; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        if (a->n_conns >= MAX_CONNECTIONS) {
            lg_warn(admin, "too many admin connections (%d): closing a new one", MAX_CONNECTIONS);
            h2o_socket_close(sock);
            continue;
        }
        conn_t *c = calloc(1, sizeof(*c));
        if (c == NULL)
            lg_fatal("out of memory");
        c->admin = a;
        c->sock = sock;
        c->idle.cb = on_idle;
        sock->data = c;
        h2o_linklist_insert(&a->conns, &c->link);
        ++a->n_conns;
        stat_inc(a->stats.listener.downstream_cx_total);
        lg_stats_inc(main_cells, a->stats.listener.downstream_cx_active);
        stat_inc(a->stats.http.downstream_cx_total);
        stat_inc(a->stats.http.downstream_cx_http1_total);
        lg_stats_inc(main_cells, a->stats.http.downstream_cx_active);
        touch(c);
        h2o_socket_read_start(sock, on_read);
    }
}

/* ------------------------------------------------------------------------------------------- */
/* Start and stop                                                                              */
/* ------------------------------------------------------------------------------------------- */

static int add_log(lg_admin_t *a, const char *path, int fd, lg_error_t *err)
{
    access_log_t *logs = realloc(a->logs, (a->n_logs + 1) * sizeof(*logs));
    if (logs == NULL)
        lg_fatal("out of memory");
    a->logs = logs;
    access_log_t *l = &a->logs[a->n_logs];
    *l = (access_log_t){.path = NULL, .fd = fd};
    if (path != NULL) {
        if ((l->path = strdup(path)) == NULL)
            lg_fatal("out of memory");
        if (open_log(l, err) != 0) {
            free(l->path);
            return -1;
        }
    }
    ++a->n_logs;
    return 0;
}

/* admin.access_log: file, stdout and stderr loggers in Envoy's default format. */
static int open_access_logs(lg_admin_t *a, const Envoy__Config__Bootstrap__V3__Admin *pb, lg_error_t *err)
{
    if (pb->access_log_path != NULL && pb->access_log_path[0] != '\0' && add_log(a, pb->access_log_path, -1, err) != 0)
        return -1;
    for (size_t i = 0; i < pb->n_access_log; ++i) {
        const Envoy__Config__Accesslog__V3__AccessLog *al = pb->access_log[i];
        const Google__Protobuf__Any *any =
            al->config_type_case == ENVOY__CONFIG__ACCESSLOG__V3__ACCESS_LOG__CONFIG_TYPE_TYPED_CONFIG ? al->typed_config
                                                                                                        : NULL;
        if (any == NULL || any->type_url == NULL) {
            lg_warn(admin, "admin.access_log[%zu] has no typed_config: ignored", i);
            continue;
        }
        if (al->filter != NULL)
            lg_warn(admin, "admin.access_log[%zu].filter is not applied to the admin's access log", i);
        int owned = 0;
        ProtobufCMessage *m = lg_pb_any_open(&a->bootstrap->srcmap, &any->base, &owned);
        int r = 0;
        if (strcmp(any->type_url, TYPE_PREFIX "envoy.extensions.access_loggers.file.v3.FileAccessLog") == 0 && m != NULL) {
            const Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog *f = (void *)m;
            if (f->access_log_format_case !=
                ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT__NOT_SET)
                lg_warn(admin, "admin.access_log[%zu]: the admin writes Envoy's default format only", i);
            r = add_log(a, f->path, -1, err);
        } else if (strcmp(any->type_url, TYPE_PREFIX "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog") == 0) {
            r = add_log(a, NULL, 1, err);
        } else if (strcmp(any->type_url, TYPE_PREFIX "envoy.extensions.access_loggers.stream.v3.StderrAccessLog") == 0) {
            r = add_log(a, NULL, 2, err);
        } else {
            lg_warn(admin, "admin.access_log[%zu]: %s is not supported for the admin: ignored", i, any->type_url);
        }
        if (m != NULL)
            lg_pb_any_close(m, owned);
        if (r != 0)
            return -1;
    }
    return 0;
}

static int bind_admin(lg_admin_t *a, const Envoy__Config__Core__V3__Address *addr, lg_error_t *err)
{
    if (addr->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS || addr->socket_address == NULL)
        return lg_error_set(err, "admin.address: only socket_address is supported");
    const Envoy__Config__Core__V3__SocketAddress *sa = addr->socket_address;
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof(ss));
    unsigned port = sa->port_specifier_case == ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE
                        ? sa->port_value
                        : 0;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, sa->address, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, sa->address, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        len = sizeof(*v6);
    } else {
        return lg_error_set(err, "admin.address.socket_address.address: \"%s\" is not an IP address", sa->address);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0)
        return lg_error_set(err, "admin: socket: %s", strerror(errno));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
        bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return lg_error_set(err, "admin: cannot bind to %s:%u: %s", sa->address, port, strerror(e));
    }
    len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        a->port = ntohs(ss.ss_family == AF_INET6 ? v6->sin6_port : v4->sin_port);
    a->listener = h2o_evloop_socket_create(a->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    a->listener->data = a;
    h2o_socket_read_start(a->listener, on_accept);
    char buf[128];
    lg_info(admin, "admin address: %s", lg_sockaddr_to_string(&ss, buf, sizeof(buf), 1));
    return 0;
}

static void register_stats(lg_admin_t *a)
{
    if (main_cells == NULL) {
        main_cells = lg_stats_cells_new();
        lg_stats_attach(main_cells);
    }
#define LG_X(name, type) a->stats.http.name = lg_stats_register("http.admin." #name, LG_STAT_##type);
    ADMIN_HCM_STATS(LG_X)
#undef LG_X
#define LG_X(name, type) a->stats.listener.name = lg_stats_register("listener.admin." #name, LG_STAT_##type);
    ADMIN_LISTENER_STATS(LG_X)
#undef LG_X
}

lg_admin_t *lg_admin_start(h2o_evloop_t *main_loop, const lg_bootstrap_t *bootstrap, const lg_admin_hooks_t *hooks,
                           lg_error_t *err)
{
    const Envoy__Config__Bootstrap__V3__Admin *pb = bootstrap != NULL && bootstrap->pb != NULL ? bootstrap->pb->admin : NULL;
    if (pb == NULL || pb->address == NULL)
        return NULL;
    lg_admin_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        lg_fatal("out of memory");
    a->loop = main_loop;
    a->bootstrap = bootstrap;
    if (hooks != NULL)
        a->hooks = *hooks;
    clock_gettime(CLOCK_REALTIME, &a->ctx.started);
    a->ctx.bootstrap = bootstrap;
    a->ctx.hooks = &a->hooks;
    h2o_linklist_init_anchor(&a->conns);
    h2o_timeout_init(main_loop, &a->idle_timeout, IDLE_TIMEOUT_MS);
    lg_http1_options_init(&a->http1);
    a->http1.accept_http_10 = true;
    register_stats(a);
    if (open_access_logs(a, pb, err) != 0 || bind_admin(a, pb->address, err) != 0) {
        lg_admin_stop(a);
        return NULL;
    }
    return a;
}

unsigned lg_admin_port(const lg_admin_t *a)
{
    return a->port;
}

void lg_admin_stop(lg_admin_t *a)
{
    if (a == NULL)
        return;
    while (!h2o_linklist_is_empty(&a->conns))
        conn_close(H2O_STRUCT_FROM_MEMBER(conn_t, link, a->conns.next));
    if (a->listener != NULL) {
        h2o_socket_read_stop(a->listener);
        h2o_socket_close(a->listener);
    }
    h2o_timeout_dispose(a->loop, &a->idle_timeout);
    for (size_t i = 0; i < a->n_logs; ++i) {
        if (a->logs[i].path != NULL && a->logs[i].fd >= 0)
            close(a->logs[i].fd);
        free(a->logs[i].path);
    }
    free(a->logs);
    free(a);
}
