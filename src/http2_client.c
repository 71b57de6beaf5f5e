/*
 * The upstream HTTP/2 codec: see http2_client.h.
 *
 * Two objects per request. The router holds a small handle allocated from its own pool; the codec
 * holds the stream (malloc'd), which nghttp2's callbacks and data provider reach. The stream lets
 * go of the handle when the router releases or resets it, or is told of a reset, and never touches
 * the router's pool after that; the stream itself lives on until nghttp2 has closed it (a queued
 * RST_STREAM or DATA item may still name it). So a late release after on_reset finds a handle that
 * points nowhere, and nothing dangles either way.
 *
 * A stream counts against the concurrency limit from new_stream until nghttp2 closes it (or its
 * HEADERS are dropped unsent). Response body bytes are held per stream and acknowledged with
 * nghttp2_session_consume only when delivered. Events that arise inside an ops call (a failed
 * submit, re-enabled reading, watermarks, capacity) are delivered from the next run (http2_io.h).
 */
#include "http2_client.h"

#include <stdlib.h>
#include <string.h>

#include "http2_io.h"
#include "log.h"

typedef struct st_h2c_stream_t h2c_stream_t;

typedef struct st_h2c_handle_t {
    lg_upstream_stream_t super;
    h2c_stream_t *st; /* NULL once the codec let go */
} h2c_handle_t;

typedef struct st_lg_http2_client_conn_t {
    lg_client_conn_t super;
    lg_h2_io_t io;
    lg_http2_client_settings_t settings;
    const lg_http2_stats_t *stats;
    const lg_client_conn_owner_t *owner;
    void *owner_ctx;
    h2o_linklist_t streams; /* every h2c_stream_t */
    h2o_linklist_t pending; /* streams with events for the next run */
    size_t n_active;        /* streams counted against the concurrency limit */
    uint64_t consecutive_empty;
    unsigned goaway_received : 1, shutting_down : 1, terminating : 1, close_requested : 1, tearing_down : 1,
        capacity_event : 1;
} lg_http2_client_conn_t;

struct st_h2c_stream_t {
    lg_http2_client_conn_t *conn;
    h2c_handle_t *handle; /* NULL once the router is gone: then its pool is never touched */
    const lg_upstream_callbacks_t *cb;
    void *ctx;
    h2o_mem_pool_t *pool; /* the router's */
    int32_t id;           /* 0 until submitted */
    h2o_linklist_t link, pending_link;
    lg_h2_out_t out;
    /* the header block being received */
    lg_response_head_t *head;
    lg_headers_t *block_trailers;
    size_t block_bytes, block_count;
    /* response body and trailers not yet delivered */
    h2o_buffer_t *in_buf;
    lg_headers_t *in_trailers;
    lg_reset_reason_t reset_reason;    /* when the codec reset the stream itself */
    lg_reset_reason_t deferred_reset;  /* a failure to report from the next run */
    unsigned busy;
    unsigned submitted : 1, headers_sent : 1, closed : 1, counted : 1, peer_reset : 1, read_disabled : 1,
        final_response : 1, in_end : 1, in_end_delivered : 1, block_rejected : 1, provider : 1;
};

#define STAT_INC(conn, name)                                                                       \
    do {                                                                                           \
        if ((conn)->stats != NULL)                                                                 \
            lg_stats_inc((conn)->stats->cells, (conn)->stats->name);                               \
    } while (0)

static const lg_upstream_stream_ops_t stream_ops;
static const lg_client_conn_ops_t conn_ops;

void lg_http2_client_settings_init(lg_http2_client_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    s->max_concurrent_streams = 1024;
    s->initial_stream_window_size = 1024 * 1024;
    s->initial_connection_window_size = 16 * 1024 * 1024;
    s->max_response_headers_kb = 60;
    s->max_headers_count = 100;
    s->max_outbound_control_frames = 1000;
    s->max_consecutive_inbound_frames_with_empty_payload = 1;
    s->stream_buffer_high_watermark = 1024 * 1024;
    s->stream_buffer_low_watermark = 256 * 1024;
}

/* ---- stream bookkeeping ---------------------------------------------------------------------- */

static void stream_free(h2c_stream_t *st)
{
    h2o_linklist_unlink(&st->link);
    if (h2o_linklist_is_linked(&st->pending_link))
        h2o_linklist_unlink(&st->pending_link);
    lg__h2_out_dispose(&st->out);
    if (st->in_buf != NULL)
        h2o_buffer_dispose(&st->in_buf);
    free(st);
}

static void stream_maybe_free(h2c_stream_t *st)
{
    if (st->busy == 0 && !st->conn->tearing_down && st->closed && st->handle == NULL)
        stream_free(st);
}

static void mark_pending(h2c_stream_t *st)
{
    if (!h2o_linklist_is_linked(&st->pending_link))
        h2o_linklist_insert(&st->conn->pending, &st->pending_link);
    lg__h2_io_kick(&st->conn->io);
}

/* nghttp2 is done with the stream (or never had it): it no longer counts against the limit. */
static void stream_closed(h2c_stream_t *st)
{
    st->closed = 1;
    if (st->counted) {
        st->counted = 0;
        --st->conn->n_active;
        st->conn->capacity_event = 1;
        lg__h2_io_kick(&st->conn->io);
    }
}

static void detach(h2c_stream_t *st)
{
    if (st->handle != NULL) {
        st->handle->st = NULL;
        st->handle = NULL;
    }
    st->head = NULL;
    st->block_trailers = NULL;
    st->in_trailers = NULL;
}

/* Response bytes nobody will read: give their window back. */
static void drop_inbound(h2c_stream_t *st)
{
    if (st->in_buf != NULL) {
        size_t n = st->in_buf->size;
        h2o_buffer_dispose(&st->in_buf);
        if (n != 0 && st->conn->io.session != NULL)
            nghttp2_session_consume(st->conn->io.session, st->id, n);
    }
    st->in_trailers = NULL;
}

static void notify_reset(h2c_stream_t *st, lg_reset_reason_t reason, int request_sent)
{
    if (st->handle == NULL)
        return;
    detach(st);
    drop_inbound(st);
    ++st->busy;
    st->cb->on_reset(st->ctx, reason, request_sent);
    --st->busy;
}

/* Resets a stream for a reason of the codec's own (a response it cannot accept). */
static void fail_stream(h2c_stream_t *st, lg_reset_reason_t reason)
{
    st->reset_reason = reason;
    if (st->conn->io.session != NULL && !st->closed)
        nghttp2_submit_rst_stream(st->conn->io.session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
    notify_reset(st, reason, 1);
}

static h2c_stream_t *find_stream(lg_http2_client_conn_t *conn, int32_t id)
{
    for (h2o_linklist_t *n = conn->streams.next; n != &conn->streams; n = n->next) {
        h2c_stream_t *st = H2O_STRUCT_FROM_MEMBER(h2c_stream_t, link, n);
        if (st->id == id)
            return st;
    }
    return NULL;
}

static int can_accept(lg_http2_client_conn_t *conn)
{
    if (conn->io.session == NULL || conn->goaway_received || conn->shutting_down || conn->terminating ||
        conn->close_requested || conn->tearing_down)
        return 0;
    uint32_t limit = nghttp2_session_get_remote_settings(conn->io.session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (limit > conn->settings.max_concurrent_streams)
        limit = conn->settings.max_concurrent_streams;
    return conn->n_active < limit;
}

/* ---- delivering the response ----------------------------------------------------------------- */

static void deliver_inbound(h2c_stream_t *st)
{
    if (st->handle == NULL) {
        drop_inbound(st);
        return;
    }
    if (st->read_disabled)
        return;
    ++st->busy;
    size_t n = st->in_buf != NULL ? st->in_buf->size : 0;
    int end = st->in_end && st->in_trailers == NULL;
    if (n != 0 || (end && !st->in_end_delivered)) {
        h2o_buffer_t *b = st->in_buf;
        st->in_buf = NULL;
        if (end)
            st->in_end_delivered = 1;
        st->cb->on_data(st->ctx, n != 0 ? b->bytes : "", n, end);
        if (n != 0 && st->conn->io.session != NULL)
            nghttp2_session_consume(st->conn->io.session, st->id, n);
        if (b != NULL)
            h2o_buffer_dispose(&b);
    }
    if (st->in_trailers != NULL && st->handle != NULL && !st->read_disabled) {
        lg_headers_t *t = st->in_trailers;
        st->in_trailers = NULL;
        st->in_end_delivered = 1;
        st->cb->on_trailers(st->ctx, t);
    }
    --st->busy;
}

static int parse_status(h2o_iovec_t v)
{
    if (v.len != 3)
        return -1;
    int s = 0;
    for (size_t i = 0; i < 3; ++i) {
        if (v.base[i] < '0' || v.base[i] > '9')
            return -1;
        s = s * 10 + (v.base[i] - '0');
    }
    return s >= 100 ? s : -1;
}

/* ---- nghttp2 callbacks ----------------------------------------------------------------------- */

static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user_data)
{
    lg_http2_client_conn_t *conn = user_data;
    if (hd->type != NGHTTP2_DATA && hd->type != NGHTTP2_HEADERS && hd->type != NGHTTP2_CONTINUATION)
        return 0;
    if (hd->length == 0 && (hd->flags & NGHTTP2_FLAG_END_STREAM) == 0)
        ++conn->consecutive_empty;
    else
        conn->consecutive_empty = 0;
    if (conn->consecutive_empty > conn->settings.max_consecutive_inbound_frames_with_empty_payload) {
        STAT_INC(conn, inbound_empty_frames_flood);
        conn->io.close_reason = "inbound empty frames flood";
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    h2c_stream_t *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    st->block_bytes = st->block_count = 0;
    st->block_rejected = 0;
    if (st->handle == NULL)
        return 0;
    if (!st->final_response) {
        st->head = h2o_mem_alloc_pool(st->pool, sizeof(*st->head));
        memset(st->head, 0, sizeof(*st->head));
        st->head->content_length = -1;
    } else {
        st->block_trailers = h2o_mem_alloc_pool(st->pool, sizeof(*st->block_trailers));
        memset(st->block_trailers, 0, sizeof(*st->block_trailers));
    }
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
    lg_http2_client_conn_t *conn = user_data;
    h2c_stream_t *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st == NULL || st->handle == NULL || st->block_rejected || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    st->block_bytes += namelen + valuelen;
    if (++st->block_count > conn->settings.max_headers_count ||
        st->block_bytes > (size_t)conn->settings.max_response_headers_kb * 1024) {
        STAT_INC(conn, header_overflow);
        st->block_rejected = 1;
        fail_stream(st, LG_RESET_OVERFLOW);
        /* nghttp2 skips the rest of the block; our RST_STREAM is already queued. */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    h2o_iovec_t v = h2o_iovec_init(value, valuelen);
    if (!st->final_response) {
        if (st->head == NULL)
            return 0;
        if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
            st->head->status = parse_status(v);
        } else if (namelen != 0 && name[0] != ':') {
            lg_headers_add_copy(st->pool, &st->head->headers, (const char *)name, namelen, (const char *)value, valuelen);
            if (namelen == 14 && memcmp(name, "content-length", 14) == 0)
                st->head->content_length = lg__h2_parse_content_length(v.base, v.len);
        }
    } else if (st->block_trailers != NULL && namelen != 0 && name[0] != ':') {
        lg_headers_add_copy(st->pool, st->block_trailers, (const char *)name, namelen, (const char *)value, valuelen);
    }
    return 0;
}

static void on_response_head(h2c_stream_t *st, int end_stream)
{
    if (st->handle == NULL || st->head == NULL)
        return;
    if (st->head->status <= 0) {
        /* Missing or malformed :status (nghttp2 normally catches it first). */
        fail_stream(st, LG_RESET_PROTOCOL_ERROR);
        return;
    }
    if (st->head->status < 200) {
        st->head = NULL; /* interim responses are not reported */
        return;
    }
    lg_response_head_t *head = st->head;
    st->head = NULL;
    st->final_response = 1;
    if (end_stream)
        st->in_end = st->in_end_delivered = 1;
    ++st->busy;
    st->cb->on_headers(st->ctx, head, end_stream);
    --st->busy;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    lg_http2_client_conn_t *conn = user_data;
    if (frame->hd.stream_id == 0) {
        if (frame->hd.type == NGHTTP2_GOAWAY) {
            /* Streams above last_stream_id are closed by nghttp2 with REFUSED_STREAM next. */
            conn->goaway_received = 1;
        } else if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
            conn->capacity_event = 1; /* MAX_CONCURRENT_STREAMS may have grown */
            lg__h2_io_kick(&conn->io);
        }
        return 0;
    }
    h2c_stream_t *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (st->block_rejected)
            break;
        if (!st->final_response) {
            on_response_head(st, (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
            break;
        }
        STAT_INC(conn, trailers);
        st->in_end = 1;
        st->in_trailers = st->block_trailers;
        st->block_trailers = NULL;
        deliver_inbound(st);
        break;
    case NGHTTP2_DATA:
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0)
            st->in_end = 1;
        deliver_inbound(st);
        break;
    case NGHTTP2_RST_STREAM:
        st->peer_reset = 1;
        STAT_INC(conn, rx_reset);
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                              void *user_data)
{
    h2c_stream_t *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st == NULL || st->handle == NULL) {
        nghttp2_session_consume(session, stream_id, len);
        return 0;
    }
    if (st->in_buf == NULL)
        h2o_buffer_init(&st->in_buf, &h2o_socket_buffer_prototype);
    h2o_iovec_t dst = h2o_buffer_reserve(&st->in_buf, len);
    if (dst.base == NULL)
        lg_fatal("out of memory");
    memcpy(dst.base, data, len);
    st->in_buf->size += len;
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
    h2c_stream_t *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st == NULL)
        return 0;
    stream_closed(st);
    /* Once the response is complete the stream succeeded, whatever closes it (RFC 9113 §8.1: a
     * server may reset the request side after answering). Held bytes are still delivered. */
    if (!st->in_end) {
        if (error_code == NGHTTP2_REFUSED_STREAM) /* RST REFUSED_STREAM, or above a GOAWAY's last id */
            notify_reset(st, LG_RESET_REMOTE_RESET, 0);
        else if (st->reset_reason != LG_RESET_NONE)
            notify_reset(st, st->reset_reason, 1);
        else
            notify_reset(st, st->peer_reset ? LG_RESET_REMOTE_RESET : LG_RESET_PROTOCOL_ERROR, st->headers_sent);
    }
    if (st->handle == NULL)
        drop_inbound(st);
    stream_maybe_free(st);
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    lg_http2_client_conn_t *conn = user_data;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        h2c_stream_t *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (st != NULL)
            st->headers_sent = 1;
    } else if (frame->hd.type == NGHTTP2_RST_STREAM) {
        STAT_INC(conn, tx_reset);
    } else if (frame->hd.type == NGHTTP2_GOAWAY) {
        STAT_INC(conn, goaway_sent);
    }
    return 0;
}

static int on_frame_not_send(nghttp2_session *session, const nghttp2_frame *frame, int lib_error_code, void *user_data)
{
    lg_http2_client_conn_t *conn = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    /* The request never went out. nghttp2 may or may not call on_stream_close for the stream
     * afterwards (it does when the stream object exists, e.g. reset before its HEADERS were
     * sent): the stream's user data is cleared first so that a later close cannot reach it. */
    h2c_stream_t *st = find_stream(conn, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    if (frame->hd.stream_id > 0 && nghttp2_session_find_stream(session, frame->hd.stream_id) != NULL)
        nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, NULL);
    stream_closed(st);
    notify_reset(st, lib_error_code == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED ? LG_RESET_REMOTE_RESET : LG_RESET_CONNECTION_CLOSED, 0);
    stream_maybe_free(st);
    return 0;
}

static int on_invalid_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, int lib_error_code,
                                 void *user_data)
{
    lg_http2_client_conn_t *conn = user_data;
    if (lib_error_code != NGHTTP2_ERR_HTTP_HEADER && lib_error_code != NGHTTP2_ERR_HTTP_MESSAGING)
        return 0;
    STAT_INC(conn, rx_messaging_error);
    h2c_stream_t *st = frame->hd.stream_id != 0 ? nghttp2_session_get_stream_user_data(session, frame->hd.stream_id) : NULL;
    if (st != NULL && st->reset_reason == LG_RESET_NONE)
        st->reset_reason = LG_RESET_PROTOCOL_ERROR; /* nghttp2 has queued RST_STREAM PROTOCOL_ERROR */
    return 0;
}

static ssize_t on_read_data(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                            uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    h2c_stream_t *st = source->ptr;
    ssize_t n = lg__h2_out_read(&st->out, session, stream_id, buf, length, data_flags);
    if (st->out.above != st->out.told_above)
        mark_pending(st);
    return n;
}

/* ---- the stream ops (called by the router) --------------------------------------------------- */

static h2c_stream_t *stream_of(lg_upstream_stream_t *s)
{
    return ((h2c_handle_t *)s)->st;
}

static int is_lit(h2o_iovec_t v, const char *lit)
{
    size_t l = strlen(lit);
    return v.len == l && memcmp(v.base, lit, l) == 0;
}

static void u_encode_headers(lg_upstream_stream_t *s, const lg_request_head_t *head, int end_stream)
{
    h2c_stream_t *st = stream_of(s);
    if (st == NULL || st->submitted || st->closed || st->conn->io.session == NULL)
        return;
    lg_http2_client_conn_t *conn = st->conn;
    int connect = is_lit(head->method, "CONNECT");
    h2o_iovec_t authority = head->authority;
    if (authority.len == 0) {
        const h2o_iovec_t *host = lg_headers_get(&head->headers, "host", 4);
        if (host != NULL)
            authority = *host;
    }
    lg_h2_nvs_t v = {NULL, 0, 0};
    lg__h2_nvs_add(&v, ":method", 7, head->method.base, head->method.len);
    if (!connect) {
        h2o_iovec_t scheme = head->scheme.len != 0 ? head->scheme : h2o_iovec_init("http", 4);
        h2o_iovec_t path = head->path.len != 0 ? head->path : h2o_iovec_init("/", 1);
        lg__h2_nvs_add(&v, ":scheme", 7, scheme.base, scheme.len);
        lg__h2_nvs_add(&v, ":authority", 10, authority.base, authority.len);
        lg__h2_nvs_add(&v, ":path", 5, path.base, path.len);
    } else {
        lg__h2_nvs_add(&v, ":authority", 10, authority.base, authority.len);
    }
    lg__h2_nvs_add_fields(&v, &head->headers, 1);
    nghttp2_data_provider prd = {.source = {.ptr = st}, .read_callback = on_read_data};
    int32_t id = nghttp2_submit_request(conn->io.session, NULL, v.nva, v.size, end_stream ? NULL : &prd, st);
    lg__h2_nvs_dispose(&v);
    if (id < 0) {
        lg_debug(upstream, "http2: cannot open a stream: %s", nghttp2_strerror(id));
        /* Stream ids exhausted (or out of memory): this connection takes no more requests. */
        conn->shutting_down = 1;
        st->deferred_reset = LG_RESET_CONNECTION_CLOSED;
        stream_closed(st);
        mark_pending(st);
        return;
    }
    st->id = id;
    st->submitted = 1;
    if (end_stream)
        st->out.end = 1;
    else
        st->provider = 1;
    lg__h2_io_kick(&conn->io);
}

static void u_encode_data(lg_upstream_stream_t *s, const void *data, size_t len, int end_stream)
{
    h2c_stream_t *st = stream_of(s);
    if (st == NULL || !st->provider || st->out.end || st->closed)
        return;
    lg__h2_out_append(&st->out, data, len);
    if (end_stream)
        st->out.end = 1;
    lg__h2_out_resume(&st->out, st->conn->io.session, st->id);
    if (st->out.above != st->out.told_above)
        mark_pending(st);
    lg__h2_io_kick(&st->conn->io);
}

static void u_encode_trailers(lg_upstream_stream_t *s, const lg_headers_t *trailers)
{
    h2c_stream_t *st = stream_of(s);
    if (st == NULL || !st->provider || st->out.end || st->closed)
        return;
    lg__h2_out_set_trailers(&st->out, trailers);
    st->out.end = 1;
    lg__h2_out_resume(&st->out, st->conn->io.session, st->id);
    lg__h2_io_kick(&st->conn->io);
}

/* The router lets go of the stream: cancel it at the server unless both directions ended. */
static void let_go(h2c_stream_t *st)
{
    lg_http2_client_conn_t *conn = st->conn;
    int request_done = st->out.end && (!st->provider || st->out.eof);
    detach(st);
    drop_inbound(st);
    if (!st->submitted) {
        stream_closed(st);
    } else if (!st->closed && conn->io.session != NULL && !(st->in_end && request_done)) {
        nghttp2_submit_rst_stream(conn->io.session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
        lg__h2_io_kick(&conn->io);
    }
    stream_maybe_free(st);
}

static void u_reset(lg_upstream_stream_t *s)
{
    h2c_stream_t *st = stream_of(s);
    if (st != NULL)
        let_go(st);
}

static void u_release(lg_upstream_stream_t *s)
{
    h2c_stream_t *st = stream_of(s);
    if (st != NULL)
        let_go(st);
}

static void u_read_disable(lg_upstream_stream_t *s, int disable)
{
    h2c_stream_t *st = stream_of(s);
    if (st == NULL)
        return;
    if (disable) {
        st->read_disabled = 1;
    } else if (st->read_disabled) {
        st->read_disabled = 0;
        if ((st->in_buf != NULL && st->in_buf->size != 0) || st->in_trailers != NULL ||
            (st->in_end && !st->in_end_delivered))
            mark_pending(st);
    }
}

static const lg_upstream_stream_ops_t stream_ops = {
    .encode_headers = u_encode_headers,
    .encode_data = u_encode_data,
    .encode_trailers = u_encode_trailers,
    .reset = u_reset,
    .read_disable = u_read_disable,
    .release = u_release,
};

/* ---- the connection -------------------------------------------------------------------------- */

static lg_http2_client_conn_t *conn_of(lg_client_conn_t *c)
{
    return H2O_STRUCT_FROM_MEMBER(lg_http2_client_conn_t, super, c);
}

static int conn_on_run(lg_h2_io_t *io)
{
    lg_http2_client_conn_t *conn = H2O_STRUCT_FROM_MEMBER(lg_http2_client_conn_t, io, io);
    while (!h2o_linklist_is_empty(&conn->pending) && !conn->close_requested) {
        h2c_stream_t *st = H2O_STRUCT_FROM_MEMBER(h2c_stream_t, pending_link, conn->pending.next);
        h2o_linklist_unlink(&st->pending_link);
        ++st->busy;
        if (st->deferred_reset != LG_RESET_NONE) {
            lg_reset_reason_t r = st->deferred_reset;
            st->deferred_reset = LG_RESET_NONE;
            notify_reset(st, r, 0);
        }
        deliver_inbound(st);
        if (st->out.above != st->out.told_above) {
            st->out.told_above = st->out.above;
            if (st->handle != NULL && st->cb->on_watermark != NULL)
                st->cb->on_watermark(st->ctx, st->out.above);
        }
        --st->busy;
        stream_maybe_free(st);
    }
    if (conn->close_requested) {
        io->close_reason = "closed by the pool";
        return -1;
    }
    if (conn->shutting_down && conn->n_active == 0 && !conn->terminating) {
        conn->terminating = 1;
        nghttp2_session_terminate_session(io->session, NGHTTP2_NO_ERROR);
    }
    if (conn->capacity_event) {
        conn->capacity_event = 0;
        if (can_accept(conn) && conn->owner->on_capacity != NULL)
            conn->owner->on_capacity(conn->owner_ctx, &conn->super);
        if (conn->close_requested) {
            io->close_reason = "closed by the pool";
            return -1;
        }
    }
    return 0;
}

static void teardown(lg_http2_client_conn_t *conn, const char *why)
{
    lg_debug(upstream, "http2 connection closed: %s", why != NULL ? why : "done");
    conn->tearing_down = 1;
    lg__h2_io_dispose(&conn->io);
    for (h2o_linklist_t *n = conn->streams.next; n != &conn->streams; n = n->next) {
        h2c_stream_t *st = H2O_STRUCT_FROM_MEMBER(h2c_stream_t, link, n);
        st->closed = 1;
        if (st->in_end_delivered && st->in_trailers == NULL)
            detach(st); /* the router has the whole response: nothing failed */
        else
            notify_reset(st, LG_RESET_CONNECTION_CLOSED, st->headers_sent);
    }
    if (conn->owner->on_closed != NULL)
        conn->owner->on_closed(conn->owner_ctx, &conn->super);
    while (!h2o_linklist_is_empty(&conn->streams))
        stream_free(H2O_STRUCT_FROM_MEMBER(h2c_stream_t, link, conn->streams.next));
    free(conn);
}

static void conn_on_done(lg_h2_io_t *io, const char *err)
{
    lg_http2_client_conn_t *conn = H2O_STRUCT_FROM_MEMBER(lg_http2_client_conn_t, io, io);
    if (io->nghttp2_error == NGHTTP2_ERR_FLOODED)
        STAT_INC(conn, outbound_control_flood); /* the upstream flooded us with PING/SETTINGS */
    teardown(conn, err);
}

static const lg_h2_io_callbacks_t io_callbacks = {conn_on_run, conn_on_done};

static lg_upstream_stream_t *c_new_stream(lg_client_conn_t *c, h2o_mem_pool_t *pool, const lg_upstream_callbacks_t *cb,
                                          void *ctx)
{
    lg_http2_client_conn_t *conn = conn_of(c);
    if (!can_accept(conn))
        return NULL;
    h2c_stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        lg_fatal("out of memory");
    h2c_handle_t *h = h2o_mem_alloc_pool(pool, sizeof(*h));
    h->super.ops = &stream_ops;
    h->st = st;
    st->conn = conn;
    st->handle = h;
    st->cb = cb;
    st->ctx = ctx;
    st->pool = pool;
    st->out.high = conn->settings.stream_buffer_high_watermark;
    st->out.low = conn->settings.stream_buffer_low_watermark;
    st->counted = 1;
    ++conn->n_active;
    h2o_linklist_insert(&conn->streams, &st->link);
    return &h->super;
}

static int c_can_accept_stream(lg_client_conn_t *c)
{
    return can_accept(conn_of(c));
}

static size_t c_active_streams(lg_client_conn_t *c)
{
    return conn_of(c)->n_active;
}

static void c_shutdown(lg_client_conn_t *c)
{
    lg_http2_client_conn_t *conn = conn_of(c);
    if (conn->tearing_down || conn->shutting_down)
        return;
    conn->shutting_down = 1;
    lg__h2_io_kick(&conn->io);
}

static void c_close(lg_client_conn_t *c)
{
    lg_http2_client_conn_t *conn = conn_of(c);
    if (conn->tearing_down)
        return;
    if (lg__h2_io_busy(&conn->io)) {
        conn->close_requested = 1;
        lg__h2_io_kick(&conn->io);
        return;
    }
    teardown(conn, "closed by the pool");
}

static const lg_client_conn_ops_t conn_ops = {
    .new_stream = c_new_stream,
    .can_accept_stream = c_can_accept_stream,
    .active_streams = c_active_streams,
    .shutdown = c_shutdown,
    .close = c_close,
};

lg_client_conn_t *lg_http2_client_conn_new(h2o_socket_t *sock, const lg_http2_client_settings_t *s,
                                           const lg_client_conn_owner_t *owner, void *owner_ctx)
{
    if (s->zero_timeout == NULL)
        lg_fatal("lg_http2_client_settings_t.zero_timeout is not set");
    lg_http2_client_conn_t *conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        lg_fatal("out of memory");
    conn->super.ops = &conn_ops;
    conn->settings = *s;
    /* 0 is never valid for these: it means "not configured". */
    lg_http2_client_settings_t d;
    lg_http2_client_settings_init(&d);
#define DEFAULT_IF_ZERO(f) if (conn->settings.f == 0) conn->settings.f = d.f
    DEFAULT_IF_ZERO(max_concurrent_streams);
    DEFAULT_IF_ZERO(initial_stream_window_size);
    DEFAULT_IF_ZERO(initial_connection_window_size);
    DEFAULT_IF_ZERO(max_response_headers_kb);
    DEFAULT_IF_ZERO(max_headers_count);
#undef DEFAULT_IF_ZERO
    s = &conn->settings;
    conn->owner = owner;
    conn->owner_ctx = owner_ctx;
    h2o_linklist_init_anchor(&conn->streams);
    h2o_linklist_init_anchor(&conn->pending);

    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    nghttp2_session *session;
    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0)
        lg_fatal("out of memory");
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cbs, on_frame_not_send);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame_recv);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    if (s->max_outbound_control_frames != 0)
        nghttp2_option_set_max_outbound_ack(opt, s->max_outbound_control_frames);
    /* Until the server's SETTINGS arrive, assume the limit RFC 9113 recommends. */
    nghttp2_option_set_peer_max_concurrent_streams(opt, 100);
    if (nghttp2_session_client_new2(&session, cbs, conn, opt) != 0)
        lg_fatal("out of memory");
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);

    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, s->initial_stream_window_size},
    };
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    if (s->initial_connection_window_size > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
        nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, (int32_t)s->initial_connection_window_size);

    lg__h2_io_start(&conn->io, sock, session, &io_callbacks, s->zero_timeout);
    return &conn->super;
}

void lg_http2_client_conn_set_stats(lg_client_conn_t *c, const lg_http2_stats_t *stats)
{
    conn_of(c)->stats = stats;
}
