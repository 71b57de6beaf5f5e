/*
 * The downstream HTTP/2 codec: see http2_server.h.
 *
 * A stream exists from its first HEADERS frame (on_begin_headers) and is freed once nghttp2 has
 * closed it and, if it reached the connection manager, the manager has released it. Header blocks
 * are gathered in a per-stream scratch pool, checked against the size and count limits as they
 * decode, and copied into the manager's stream pool once complete; the manager's stream is created
 * only then, so a rejected block never reaches it.
 *
 * Request body bytes are held per stream until delivered (at the end of each DATA frame, or when
 * reading is re-enabled) and only then acknowledged with nghttp2_session_consume: that is the
 * backpressure towards the client. Response bytes go through lg_h2_out_t (http2_io.h).
 *
 * Events that arise inside an ops call (watermarks, re-enabled reading) are queued on the
 * connection's `pending` list and delivered from the next run (http2_io.h), never from inside the
 * call. Events from nghttp2 callbacks (headers, data, trailers, resets) are delivered at once; the
 * manager may call any op from them, and ops only queue frames (submit_*, resume_data).
 *
 * Flood limits (Envoy's): inbound empty/PRIORITY/WINDOW_UPDATE budgets are counted at each frame
 * header; queued outbound frames are checked at every run; PING/SETTINGS acks are capped by
 * nghttp2 itself (max_outbound_ack); premature stream closes are counted by outcome.
 */
#include "http2_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http2_io.h"
#include "log.h"

typedef struct st_h2s_stream_t h2s_stream_t;

struct st_lg_http2_server_conn_t {
    lg_h2_io_t io;
    lg_hcm_conn_t *hcm;
    lg_http2_settings_t settings;
    const lg_http2_stats_t *stats;
    h2o_linklist_t streams; /* every h2s_stream_t of the connection */
    h2o_linklist_t pending; /* streams with events to deliver from the next run */
    size_t n_open;          /* streams nghttp2 has not closed */
    /* inbound frame budgets */
    uint64_t consecutive_empty, priority_frames, window_update_frames, inbound_streams, outbound_data_frames;
    /* premature resets */
    uint64_t closed_streams, premature_streams;
    int32_t goaway_last_id; /* of our graceful GOAWAY */
    h2o_timeout_entry_t drain_entry; /* drain_timeout between the shutdown notice and the final GOAWAY */
    unsigned notice_sent : 1;
    lg_reset_reason_t teardown_reason;
    unsigned shutting_down : 1, terminating : 1, close_requested : 1, tearing_down : 1;
};

struct st_h2s_stream_t {
    lg_server_stream_t super; /* first: the manager holds &super */
    lg_http2_server_conn_t *conn;
    int32_t id;
    h2o_linklist_t link, pending_link;
    uint64_t started_at;
    /* the header block being received (request head or trailers) */
    h2o_mem_pool_t scratch;
    lg_headers_t fields;
    h2o_iovec_t method, scheme, authority, path;
    size_t block_bytes, block_count;
    /* request body and trailers not yet delivered */
    h2o_buffer_t *in_buf;
    lg_headers_t *in_trailers;
    /* response */
    lg_h2_out_t out;
    lg_reset_reason_t reset_reason; /* when the codec reset the stream itself */
    unsigned busy;                  /* > 0 while an event for this stream is being delivered */
    unsigned hcm_created : 1;       /* the manager knows the stream */
    unsigned released : 1;          /* ...and is done with it */
    unsigned hcm_reset : 1;         /* the manager reset it */
    unsigned notified : 1;          /* the manager heard lg_hcm_on_reset */
    unsigned closed : 1;            /* nghttp2 closed it (or the session is gone) */
    unsigned read_disabled : 1;
    unsigned in_end : 1;            /* the request ended (END_STREAM seen) */
    unsigned in_end_delivered : 1;
    unsigned peer_reset : 1;        /* RST_STREAM received */
    unsigned block_rejected : 1;    /* the current header block broke a limit */
    unsigned response_started : 1;  /* a final response head was submitted */
    unsigned provider : 1;          /* the response has a body (data provider attached) */
    unsigned response_end_sent : 1; /* our END_STREAM went out */
};

#define STAT_INC(conn, name)                                                                       \
    do {                                                                                           \
        if ((conn)->stats != NULL)                                                                 \
            lg_stats_inc((conn)->stats->cells, (conn)->stats->name);                               \
    } while (0)

static const lg_server_stream_ops_t stream_ops;

void lg_http2_settings_init(lg_http2_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    s->max_concurrent_streams = 100;
    s->initial_stream_window_size = 256 * 1024;
    s->initial_connection_window_size = 1024 * 1024;
    s->max_request_headers_kb = 60;
    s->max_headers_count = 100;
    s->stream_error_on_invalid_http_message = 0;
    s->max_outbound_frames = 10000;
    s->max_outbound_control_frames = 1000;
    s->max_consecutive_inbound_frames_with_empty_payload = 1;
    s->max_inbound_priority_frames_per_stream = 100;
    s->max_inbound_window_update_frames_per_data_frame_sent = 10;
    s->premature_reset_total_stream_count = 500;
    s->premature_reset_min_stream_lifetime_ms = 1000;
    s->stream_buffer_high_watermark = 1024 * 1024;
    s->stream_buffer_low_watermark = 256 * 1024;
}

/* ---- stream bookkeeping ---------------------------------------------------------------------- */

static h2s_stream_t *stream_new(lg_http2_server_conn_t *conn, int32_t id)
{
    h2s_stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        lg_fatal("out of memory");
    st->super.ops = &stream_ops;
    st->conn = conn;
    st->id = id;
    st->started_at = h2o_now(conn->io.loop);
    h2o_mem_init_pool(&st->scratch);
    st->out.high = conn->settings.stream_buffer_high_watermark;
    st->out.low = conn->settings.stream_buffer_low_watermark;
    h2o_linklist_insert(&conn->streams, &st->link);
    ++conn->n_open;
    return st;
}

static void stream_free(h2s_stream_t *st)
{
    h2o_linklist_unlink(&st->link);
    if (h2o_linklist_is_linked(&st->pending_link))
        h2o_linklist_unlink(&st->pending_link);
    lg__h2_out_dispose(&st->out);
    if (st->in_buf != NULL)
        h2o_buffer_dispose(&st->in_buf);
    h2o_mem_clear_pool(&st->scratch);
    free(st);
}

/* Frees the stream once nobody can reach it: nghttp2 closed it and the manager let go. */
static void stream_maybe_free(h2s_stream_t *st)
{
    if (st->busy != 0 || st->conn->tearing_down || !st->closed || (st->hcm_created && !st->released))
        return;
    stream_free(st);
}

/* Whether the manager may still hear of the stream. */
static int hcm_listening(const h2s_stream_t *st)
{
    return st->hcm_created && !st->released && !st->hcm_reset && !st->notified;
}

static void mark_pending(h2s_stream_t *st)
{
    if (!h2o_linklist_is_linked(&st->pending_link))
        h2o_linklist_insert(&st->conn->pending, &st->pending_link);
    lg__h2_io_kick(&st->conn->io);
}

static void block_reset(h2s_stream_t *st)
{
    h2o_mem_clear_pool(&st->scratch);
    memset(&st->fields, 0, sizeof(st->fields));
    st->method = st->scheme = st->authority = st->path = h2o_iovec_init(NULL, 0);
    st->block_bytes = st->block_count = 0;
    st->block_rejected = 0;
}

/* Request bytes nobody will read: give their window back. */
static void drop_inbound(h2s_stream_t *st)
{
    if (st->in_buf != NULL) {
        size_t n = st->in_buf->size;
        h2o_buffer_dispose(&st->in_buf);
        if (n != 0 && st->conn->io.session != NULL)
            nghttp2_session_consume(st->conn->io.session, st->id, n);
    }
    st->in_trailers = NULL;
}

static void notify_reset(h2s_stream_t *st, lg_reset_reason_t reason)
{
    if (!hcm_listening(st))
        return;
    st->notified = 1;
    drop_inbound(st);
    ++st->busy;
    lg_hcm_on_reset(st->super.hcm, reason);
    --st->busy;
}

/* Resets a stream for a reason of the codec's own (RST_STREAM PROTOCOL_ERROR). */
static void reject_stream(h2s_stream_t *st, lg_reset_reason_t reason)
{
    st->reset_reason = reason;
    nghttp2_submit_rst_stream(st->conn->io.session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
    notify_reset(st, reason);
}

/* Ends the connection with GOAWAY `code` once it is written; reading stops now. */
static void terminate(lg_http2_server_conn_t *conn, uint32_t code, lg_reset_reason_t reason)
{
    if (conn->terminating)
        return;
    conn->terminating = 1;
    conn->teardown_reason = reason;
    nghttp2_session_terminate_session(conn->io.session, code);
    lg__h2_io_stop_reading(&conn->io);
    lg__h2_io_kick(&conn->io);
}

/* ---- delivering the request ------------------------------------------------------------------ */

static h2o_iovec_t pool_dup(h2o_mem_pool_t *pool, h2o_iovec_t s)
{
    char *p = h2o_mem_alloc_pool(pool, s.len + 1);
    memcpy(p, s.base, s.len);
    p[s.len] = '\0';
    return h2o_iovec_init(p, s.len);
}

static int is_name(h2o_iovec_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n.len == l && memcmp(n.base, lit, l) == 0;
}

/*
 * Copies the gathered fields into the manager's pool. HTTP/2 splits cookies into one field per
 * crumb (RFC 9113 §8.2.3); they are joined back with "; " so HTTP/1.1 upstreams see one field.
 * `host` goes when :authority is present (:authority is what routes, RFC 9113 §8.3.1).
 */
static void copy_fields(h2o_mem_pool_t *pool, lg_headers_t *dst, const lg_headers_t *src, int drop_host)
{
    size_t n_cookies = 0, cookie_bytes = 0;
    for (size_t i = 0; i < src->size; ++i)
        if (is_name(src->entries[i].name, "cookie")) {
            ++n_cookies;
            cookie_bytes += src->entries[i].value.len + 2;
        }
    dst->capacity = src->size != 0 ? src->size : 1;
    dst->entries = h2o_mem_alloc_pool(pool, dst->capacity * sizeof(*dst->entries));
    dst->size = 0;
    char *joined = n_cookies > 1 ? h2o_mem_alloc_pool(pool, cookie_bytes + 1) : NULL;
    size_t joined_len = 0, cookie_at = SIZE_MAX;
    for (size_t i = 0; i < src->size; ++i) {
        const lg_header_t *f = &src->entries[i];
        if (drop_host && is_name(f->name, "host"))
            continue;
        if (joined != NULL && is_name(f->name, "cookie")) {
            if (joined_len != 0) {
                joined[joined_len++] = ';';
                joined[joined_len++] = ' ';
            }
            memcpy(joined + joined_len, f->value.base, f->value.len);
            joined_len += f->value.len;
            if (cookie_at != SIZE_MAX)
                continue;
            cookie_at = dst->size;
        }
        dst->entries[dst->size++] = (lg_header_t){pool_dup(pool, f->name), pool_dup(pool, f->value)};
    }
    if (joined != NULL) {
        joined[joined_len] = '\0';
        dst->entries[cookie_at].value = h2o_iovec_init(joined, joined_len);
    }
}

/* The request head is complete: the manager gets the stream. */
static void begin_request(h2s_stream_t *st, int end_stream)
{
    lg_http2_server_conn_t *conn = st->conn;
    int64_t content_length = -1;
    const h2o_iovec_t *host = NULL;
    for (size_t i = 0; i < st->fields.size; ++i) {
        const lg_header_t *f = &st->fields.entries[i];
        if (is_name(f->name, "content-length")) {
            /* nghttp2 has checked the digits and the match with DATA; this is the value. */
            if ((content_length = lg__h2_parse_content_length(f->value.base, f->value.len)) < 0) {
                reject_stream(st, LG_RESET_PROTOCOL_ERROR);
                block_reset(st);
                return;
            }
        } else if (is_name(f->name, "host") && host == NULL) {
            host = &f->value;
        }
    }

    lg_stream_t *hs = lg_hcm_stream_new(conn->hcm, &st->super);
    st->super.hcm = hs;
    st->hcm_created = 1;
    h2o_mem_pool_t *pool = lg_stream_pool(hs);
    lg_request_head_t *head = h2o_mem_alloc_pool(pool, sizeof(*head));
    memset(head, 0, sizeof(*head));
    head->method = pool_dup(pool, st->method);
    head->scheme = pool_dup(pool, st->scheme);
    head->authority = pool_dup(pool, st->authority.len != 0 || host == NULL ? st->authority : *host);
    head->path = pool_dup(pool, st->path);
    head->version = LG_HTTP_2;
    head->content_length = content_length;
    copy_fields(pool, &head->headers, &st->fields, st->authority.len != 0);
    block_reset(st);
    if (end_stream)
        st->in_end = st->in_end_delivered = 1;
    ++st->busy;
    lg_hcm_on_headers(hs, head, end_stream);
    --st->busy;
}

/* Delivers held body bytes, the end of the request and trailers, in that order, unless reading is
 * disabled. The bytes are acknowledged to the client only now. */
static void deliver_inbound(h2s_stream_t *st)
{
    if (!hcm_listening(st)) {
        drop_inbound(st);
        return;
    }
    if (st->read_disabled)
        return;
    ++st->busy;
    size_t n = st->in_buf != NULL ? st->in_buf->size : 0;
    int end = st->in_end && st->in_trailers == NULL;
    if (n != 0 || (end && !st->in_end_delivered)) {
        /* Taken out of the stream first: whatever the manager does during the call (reset,
         * release), these bytes are acknowledged exactly once. */
        h2o_buffer_t *b = st->in_buf;
        st->in_buf = NULL;
        if (end)
            st->in_end_delivered = 1;
        lg_hcm_on_data(st->super.hcm, n != 0 ? b->bytes : "", n, end);
        if (n != 0 && st->conn->io.session != NULL)
            nghttp2_session_consume(st->conn->io.session, st->id, n);
        if (b != NULL)
            h2o_buffer_dispose(&b);
    }
    if (st->in_trailers != NULL && hcm_listening(st) && !st->read_disabled) {
        lg_headers_t *t = st->in_trailers;
        st->in_trailers = NULL;
        st->in_end_delivered = 1;
        lg_hcm_on_trailers(st->super.hcm, t);
    }
    --st->busy;
}

/* ---- nghttp2 callbacks ----------------------------------------------------------------------- */

static int flood(lg_http2_server_conn_t *conn, const char *what)
{
    lg_debug(http2, "closing connection: %s", what);
    conn->io.close_reason = what;
    conn->teardown_reason = LG_RESET_OVERFLOW;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user_data)
{
    lg_http2_server_conn_t *conn = user_data;
    const lg_http2_settings_t *s = &conn->settings;
    switch (hd->type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_CONTINUATION:
        if ((hd->flags & NGHTTP2_FLAG_END_HEADERS) != 0)
            ++conn->inbound_streams;
        /* fallthrough */
    case NGHTTP2_DATA:
        if (hd->length == 0 && (hd->flags & NGHTTP2_FLAG_END_STREAM) == 0)
            ++conn->consecutive_empty;
        else
            conn->consecutive_empty = 0;
        if (conn->consecutive_empty > s->max_consecutive_inbound_frames_with_empty_payload) {
            STAT_INC(conn, inbound_empty_frames_flood);
            return flood(conn, "inbound empty frames flood");
        }
        break;
    case NGHTTP2_PRIORITY:
        if (++conn->priority_frames > (uint64_t)s->max_inbound_priority_frames_per_stream * (1 + conn->inbound_streams)) {
            STAT_INC(conn, inbound_priority_frames_flood);
            return flood(conn, "inbound PRIORITY frames flood");
        }
        break;
    case NGHTTP2_WINDOW_UPDATE:
        if (++conn->window_update_frames >
            5 + 2 * (conn->inbound_streams +
                     (uint64_t)s->max_inbound_window_update_frames_per_data_frame_sent * conn->outbound_data_frames)) {
            STAT_INC(conn, inbound_window_update_frames_flood);
            return flood(conn, "inbound WINDOW_UPDATE frames flood");
        }
        break;
    }
    return 0;
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        lg_http2_server_conn_t *conn = user_data;
        if (conn->shutting_down && frame->hd.stream_id > conn->goaway_last_id) {
            /* Sent before our GOAWAY reached the client (nghttp2 only ignores new streams once the
             * GOAWAY is on the wire): never processed, so the client may retry it. */
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        h2s_stream_t *st = stream_new(conn, frame->hd.stream_id);
        nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, st);
    } else {
        h2s_stream_t *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (st != NULL)
            block_reset(st);
    }
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
    lg_http2_server_conn_t *conn = user_data;
    h2s_stream_t *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (st == NULL || st->block_rejected || frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    st->block_bytes += namelen + valuelen;
    if (++st->block_count > conn->settings.max_headers_count ||
        st->block_bytes > (size_t)conn->settings.max_request_headers_kb * 1024) {
        STAT_INC(conn, header_overflow);
        block_reset(st);
        st->block_rejected = 1;
        reject_stream(st, LG_RESET_OVERFLOW);
        /* nghttp2 skips the rest of the block; our RST_STREAM is already queued, so it adds none. */
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (namelen != 0 && name[0] == ':') {
        /* nghttp2 only lets valid pseudo-headers of a request through. */
        h2o_iovec_t *slot = NULL, n = h2o_iovec_init(name, namelen);
        if (is_name(n, ":method"))
            slot = &st->method;
        else if (is_name(n, ":scheme"))
            slot = &st->scheme;
        else if (is_name(n, ":authority"))
            slot = &st->authority;
        else if (is_name(n, ":path"))
            slot = &st->path;
        if (slot != NULL)
            *slot = pool_dup(&st->scratch, h2o_iovec_init(value, valuelen));
        return 0;
    }
    lg_headers_add_copy(&st->scratch, &st->fields, (const char *)name, namelen, (const char *)value, valuelen);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    lg_http2_server_conn_t *conn = user_data;
    h2s_stream_t *st = frame->hd.stream_id != 0 ? nghttp2_session_get_stream_user_data(session, frame->hd.stream_id) : NULL;
    if (st == NULL)
        return 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (st->block_rejected)
            break;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            begin_request(st, (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
            break;
        }
        /* Trailers: nghttp2's messaging rules make them end the stream. */
        STAT_INC(conn, trailers);
        st->in_end = 1;
        if (hcm_listening(st)) {
            lg_headers_t *t = h2o_mem_alloc_pool(lg_stream_pool(st->super.hcm), sizeof(*t));
            copy_fields(lg_stream_pool(st->super.hcm), t, &st->fields, 0);
            st->in_trailers = t;
        }
        block_reset(st);
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
    h2s_stream_t *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st == NULL || !hcm_listening(st)) {
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

/* Envoy's premature-reset rule (see lg_http2_settings_t). */
static void count_closed_stream(lg_http2_server_conn_t *conn, h2s_stream_t *st)
{
    const lg_http2_settings_t *s = &conn->settings;
    if (s->premature_reset_total_stream_count == 0)
        return;
    ++conn->closed_streams;
    if (!st->response_started && h2o_now(conn->io.loop) - st->started_at <= s->premature_reset_min_stream_lifetime_ms)
        ++conn->premature_streams;
    int too_many = conn->closed_streams >= s->premature_reset_total_stream_count
                       ? conn->premature_streams * 2 >= conn->closed_streams
                       : conn->premature_streams >= s->premature_reset_total_stream_count / 2;
    if (too_many && !conn->terminating) {
        STAT_INC(conn, downstream_rq_too_many_premature_resets);
        lg_debug(http2, "closing connection: %llu of %llu streams reset prematurely",
                 (unsigned long long)conn->premature_streams, (unsigned long long)conn->closed_streams);
        terminate(conn, NGHTTP2_ENHANCE_YOUR_CALM, LG_RESET_OVERFLOW);
    }
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
    lg_http2_server_conn_t *conn = user_data;
    h2s_stream_t *st = nghttp2_session_get_stream_user_data(session, stream_id);
    if (st == NULL)
        return 0;
    st->closed = 1;
    --conn->n_open;
    count_closed_stream(conn, st);
    if (!(error_code == NGHTTP2_NO_ERROR && st->response_end_sent)) {
        lg_reset_reason_t reason = st->reset_reason != LG_RESET_NONE ? st->reset_reason
                                   : st->peer_reset                 ? LG_RESET_REMOTE_RESET
                                                                    : LG_RESET_PROTOCOL_ERROR;
        notify_reset(st, reason);
    }
    if (!hcm_listening(st))
        drop_inbound(st);
    stream_maybe_free(st);
    return 0;
}

static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    lg_http2_server_conn_t *conn = user_data;
    switch (frame->hd.type) {
    case NGHTTP2_DATA:
        ++conn->outbound_data_frames;
        break;
    case NGHTTP2_RST_STREAM:
        STAT_INC(conn, tx_reset);
        return 0;
    case NGHTTP2_GOAWAY:
        STAT_INC(conn, goaway_sent);
        return 0;
    default:
        break;
    }
    if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
        h2s_stream_t *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (st != NULL) {
            st->response_end_sent = 1;
            /* Nobody reads the rest of the request: ask the client to stop (RFC 9113 §8.1). */
            if (st->released && !st->in_end)
                nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
        }
    }
    return 0;
}

static int on_invalid_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, int lib_error_code,
                                 void *user_data)
{
    lg_http2_server_conn_t *conn = user_data;
    if (lib_error_code != NGHTTP2_ERR_HTTP_HEADER && lib_error_code != NGHTTP2_ERR_HTTP_MESSAGING)
        return 0;
    STAT_INC(conn, rx_messaging_error);
    h2s_stream_t *st = frame->hd.stream_id != 0 ? nghttp2_session_get_stream_user_data(session, frame->hd.stream_id) : NULL;
    if (st != NULL && st->reset_reason == LG_RESET_NONE)
        st->reset_reason = LG_RESET_PROTOCOL_ERROR;
    /* nghttp2 has queued RST_STREAM PROTOCOL_ERROR; Envoy's default makes it a connection error. */
    if (!conn->settings.stream_error_on_invalid_http_message)
        terminate(conn, NGHTTP2_PROTOCOL_ERROR, LG_RESET_PROTOCOL_ERROR);
    return 0;
}

static ssize_t on_read_data(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                            uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    h2s_stream_t *st = source->ptr;
    ssize_t n = lg__h2_out_read(&st->out, session, stream_id, buf, length, data_flags);
    if (st->out.above != st->out.told_above)
        mark_pending(st);
    return n;
}

/* ---- the stream ops (called by the connection manager) --------------------------------------- */

static int can_send(const h2s_stream_t *st)
{
    return st->conn->io.session != NULL && !st->closed && !st->hcm_reset && !st->released && !st->notified;
}

static void s_encode_headers(lg_server_stream_t *s, const lg_response_head_t *head, int end_stream)
{
    h2s_stream_t *st = (h2s_stream_t *)s;
    if (!can_send(st) || st->response_started)
        return;
    nghttp2_session *session = st->conn->io.session;
    int status = head->status >= 100 && head->status <= 999 ? head->status : 500;
    char status_str[4];
    snprintf(status_str, sizeof(status_str), "%03d", status);
    lg_h2_nvs_t v = {NULL, 0, 0};
    lg__h2_nvs_add(&v, ":status", 7, status_str, 3);
    lg__h2_nvs_add_fields(&v, &head->headers, 0);
    if (status < 200) {
        nghttp2_submit_headers(session, NGHTTP2_FLAG_NONE, st->id, NULL, v.nva, v.size, NULL);
    } else {
        st->response_started = 1;
        if (end_stream) {
            st->out.end = 1;
            nghttp2_submit_response(session, st->id, v.nva, v.size, NULL);
        } else {
            nghttp2_data_provider prd = {.source = {.ptr = st}, .read_callback = on_read_data};
            st->provider = 1;
            nghttp2_submit_response(session, st->id, v.nva, v.size, &prd);
        }
    }
    lg__h2_nvs_dispose(&v);
    lg__h2_io_kick(&st->conn->io);
}

static void s_encode_data(lg_server_stream_t *s, const void *data, size_t len, int end_stream)
{
    h2s_stream_t *st = (h2s_stream_t *)s;
    if (!can_send(st) || !st->provider || st->out.end)
        return;
    lg__h2_out_append(&st->out, data, len);
    if (end_stream)
        st->out.end = 1;
    lg__h2_out_resume(&st->out, st->conn->io.session, st->id);
    if (st->out.above != st->out.told_above)
        mark_pending(st);
    lg__h2_io_kick(&st->conn->io);
}

static void s_encode_trailers(lg_server_stream_t *s, const lg_headers_t *trailers)
{
    h2s_stream_t *st = (h2s_stream_t *)s;
    if (!can_send(st) || !st->provider || st->out.end)
        return;
    lg__h2_out_set_trailers(&st->out, trailers);
    st->out.end = 1;
    lg__h2_out_resume(&st->out, st->conn->io.session, st->id);
    lg__h2_io_kick(&st->conn->io);
}

static void s_reset(lg_server_stream_t *s)
{
    h2s_stream_t *st = (h2s_stream_t *)s;
    if (st->hcm_reset || st->released)
        return;
    st->hcm_reset = 1;
    if (st->conn->io.session != NULL && !st->closed) {
        nghttp2_submit_rst_stream(st->conn->io.session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        lg__h2_io_kick(&st->conn->io);
    }
    drop_inbound(st);
}

static void s_read_disable(lg_server_stream_t *s, int disable)
{
    h2s_stream_t *st = (h2s_stream_t *)s;
    if (disable) {
        st->read_disabled = 1;
    } else if (st->read_disabled) {
        st->read_disabled = 0;
        if ((st->in_buf != NULL && st->in_buf->size != 0) || st->in_trailers != NULL ||
            (st->in_end && !st->in_end_delivered))
            mark_pending(st);
    }
}

static size_t s_buffered(lg_server_stream_t *s)
{
    return lg__h2_out_size(&((h2s_stream_t *)s)->out);
}

static void s_release(lg_server_stream_t *s)
{
    h2s_stream_t *st = (h2s_stream_t *)s;
    if (st->released)
        return;
    nghttp2_session *session = st->conn->io.session;
    if (session != NULL && !st->closed && !st->hcm_reset && !st->notified) {
        if (!st->out.end) {
            /* The manager gave up on a response it never finished. */
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        } else if (st->response_end_sent && !st->in_end) {
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
        }
        lg__h2_io_kick(&st->conn->io);
    }
    st->released = 1;
    st->super.hcm = NULL;
    drop_inbound(st);
    stream_maybe_free(st);
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

/* ---- the connection -------------------------------------------------------------------------- */

static int conn_on_run(lg_h2_io_t *io)
{
    lg_http2_server_conn_t *conn = H2O_STRUCT_FROM_MEMBER(lg_http2_server_conn_t, io, io);
    if (conn->close_requested) {
        io->close_reason = "closed by the connection manager";
        return -1;
    }
    if (conn->settings.max_outbound_frames != 0 &&
        nghttp2_session_get_outbound_queue_size(io->session) > conn->settings.max_outbound_frames) {
        STAT_INC(conn, outbound_flood);
        io->close_reason = "outbound frames flood";
        conn->teardown_reason = LG_RESET_OVERFLOW;
        return -1;
    }
    while (!h2o_linklist_is_empty(&conn->pending) && !conn->close_requested) {
        h2s_stream_t *st = H2O_STRUCT_FROM_MEMBER(h2s_stream_t, pending_link, conn->pending.next);
        h2o_linklist_unlink(&st->pending_link);
        ++st->busy;
        deliver_inbound(st);
        if (st->out.above != st->out.told_above) {
            st->out.told_above = st->out.above;
            if (hcm_listening(st))
                lg_hcm_on_watermark(st->super.hcm, st->out.above);
        }
        --st->busy;
        stream_maybe_free(st);
    }
    if (conn->close_requested) {
        io->close_reason = "closed by the connection manager";
        return -1;
    }
    return 0;
}

static void teardown(lg_http2_server_conn_t *conn, const char *why)
{
    lg_debug(http2, "connection closed: %s", why != NULL ? why : "done");
    conn->tearing_down = 1;
    h2o_timeout_unlink(&conn->drain_entry);
    lg__h2_io_dispose(&conn->io);
    lg_reset_reason_t reason = conn->teardown_reason != LG_RESET_NONE ? conn->teardown_reason : LG_RESET_CONNECTION_CLOSED;
    /* Releases that follow only mark streams (tearing_down): the list stays intact. */
    for (h2o_linklist_t *n = conn->streams.next; n != &conn->streams; n = n->next) {
        h2s_stream_t *st = H2O_STRUCT_FROM_MEMBER(h2s_stream_t, link, n);
        st->closed = 1;
        notify_reset(st, reason);
    }
    lg_hcm_conn_closed(conn->hcm);
    while (!h2o_linklist_is_empty(&conn->streams))
        stream_free(H2O_STRUCT_FROM_MEMBER(h2s_stream_t, link, conn->streams.next));
    free(conn);
}

static void conn_on_linger_end(lg_h2_io_t *io)
{
    teardown(H2O_STRUCT_FROM_MEMBER(lg_http2_server_conn_t, io, io), NULL);
}

static void conn_on_done(lg_h2_io_t *io, const char *err)
{
    lg_http2_server_conn_t *conn = H2O_STRUCT_FROM_MEMBER(lg_http2_server_conn_t, io, io);
    if (io->nghttp2_error == NGHTTP2_ERR_FLOODED) {
        /* PING/SETTINGS acks (or resets) queued past max_outbound_control_frames */
        STAT_INC(conn, outbound_control_flood);
        conn->teardown_reason = LG_RESET_OVERFLOW;
    }
    /* With no stream left to tell, the socket lingers before it closes; the connection stays
     * counted as active until then, as Envoy's does through its delayed close. */
    if (h2o_linklist_is_empty(&conn->streams) && lg__h2_io_linger(io, conn->settings.delayed_close_timeout, conn_on_linger_end) == 0) {
        lg_debug(http2, "connection ending (%s): lingering", err != NULL ? err : "done");
        return;
    }
    teardown(conn, err);
}

static const lg_h2_io_callbacks_t io_callbacks = {conn_on_run, conn_on_done};

lg_http2_server_conn_t *lg_http2_server_conn_new(h2o_socket_t *sock, lg_hcm_conn_t *hcm, const lg_http2_settings_t *settings)
{
    if (settings->zero_timeout == NULL)
        lg_fatal("lg_http2_settings_t.zero_timeout is not set");
    lg_http2_server_conn_t *conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        lg_fatal("out of memory");
    conn->hcm = hcm;
    conn->settings = *settings;
    /* 0 is never valid for these (Envoy's minimums are >= 1): it means "not configured". */
    lg_http2_settings_t d;
    lg_http2_settings_init(&d);
#define DEFAULT_IF_ZERO(f) if (conn->settings.f == 0) conn->settings.f = d.f
    DEFAULT_IF_ZERO(max_concurrent_streams);
    DEFAULT_IF_ZERO(initial_stream_window_size);
    DEFAULT_IF_ZERO(initial_connection_window_size);
    DEFAULT_IF_ZERO(max_request_headers_kb);
    DEFAULT_IF_ZERO(max_headers_count);
#undef DEFAULT_IF_ZERO
    settings = &conn->settings;
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
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame_recv);
    /* Request bytes are acknowledged when delivered (read_disable is flow control). */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    if (settings->max_outbound_control_frames != 0)
        nghttp2_option_set_max_outbound_ack(opt, settings->max_outbound_control_frames);
    if (nghttp2_session_server_new2(&session, cbs, conn, opt) != 0)
        lg_fatal("out of memory");
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);

    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings->initial_stream_window_size},
        /* No SETTINGS_NO_RFC7540_PRIORITIES: with it nghttp2 stops validating PRIORITY frames,
         * and RFC 9113 §5.3.1 / §6.3 still make a self-dependency or stream 0 an error. */
    };
    nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    if (settings->initial_connection_window_size > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
        nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, (int32_t)settings->initial_connection_window_size);

    lg__h2_io_start(&conn->io, sock, session, &io_callbacks, settings->zero_timeout);
    return conn;
}

void lg_http2_server_conn_set_stats(lg_http2_server_conn_t *conn, const lg_http2_stats_t *stats)
{
    conn->stats = stats;
}

static void final_goaway(lg_http2_server_conn_t *conn);

static void on_drain_timeout(h2o_timeout_entry_t *entry)
{
    final_goaway(H2O_STRUCT_FROM_MEMBER(lg_http2_server_conn_t, drain_entry, entry));
}

void lg_http2_server_conn_shutdown(lg_http2_server_conn_t *conn)
{
    if (conn->tearing_down || conn->shutting_down || conn->terminating || conn->io.session == NULL)
        return;
    if (conn->settings.drain_timeout != NULL && !conn->notice_sent) {
        /* Envoy's two-step drain: the notice first, the final GOAWAY after drain_timeout. */
        conn->notice_sent = 1;
        nghttp2_submit_shutdown_notice(conn->io.session);
        conn->drain_entry.cb = on_drain_timeout;
        h2o_timeout_link(conn->io.loop, conn->settings.drain_timeout, &conn->drain_entry);
        lg__h2_io_kick(&conn->io);
        return;
    }
    final_goaway(conn);
}

static void final_goaway(lg_http2_server_conn_t *conn)
{
    h2o_timeout_unlink(&conn->drain_entry);
    if (conn->tearing_down || conn->shutting_down || conn->terminating || conn->io.session == NULL)
        return;
    conn->shutting_down = 1;
    conn->goaway_last_id = nghttp2_session_get_last_proc_stream_id(conn->io.session);
    nghttp2_submit_goaway(conn->io.session, NGHTTP2_FLAG_NONE, conn->goaway_last_id, NGHTTP2_NO_ERROR, NULL, 0);
    lg__h2_io_kick(&conn->io);
}

void lg_http2_server_conn_close(lg_http2_server_conn_t *conn)
{
    if (conn->tearing_down)
        return;
    if (lg__h2_io_busy(&conn->io)) {
        conn->close_requested = 1;
        lg__h2_io_kick(&conn->io);
        return;
    }
    teardown(conn, "closed by the connection manager");
}

size_t lg_http2_server_conn_active_streams(const lg_http2_server_conn_t *conn)
{
    return conn->n_open;
}
