/*
 * The nghttp2 <-> h2o socket pump and the outbound stream half shared by the HTTP/2 codecs: see
 * http2_io.h. How a run goes: process input the caller left in sock->input, let the codec deliver
 * what it queued, then gather frames from mem_send (up to WRITE_BATCH bytes) and hand them to the
 * socket as the one write in flight; repeat while anything asked for another run. The write's
 * completion runs again, so output keeps flowing and queued work is picked up.
 */
#include "http2_io.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "log.h"

/* Bytes gathered from mem_send before they go to the socket: enough to fill a TCP window, small
 * enough that frames nghttp2 still holds remain visible to the outbound flood check. */
#define WRITE_BATCH (64 * 1024)

static void run(lg_h2_io_t *io);
static void kick_later(lg_h2_io_t *io);

static void done(lg_h2_io_t *io, const char *err)
{
    io->cb->on_done(io, err);
}

static void on_write_complete(h2o_socket_t *sock, const char *err)
{
    lg_h2_io_t *io = sock->data;
    io->_writing = 0;
    if (io->_flight != NULL && io->_flight->size != 0)
        h2o_buffer_consume(&io->_flight, io->_flight->size);
    if (err != NULL) {
        io->_sock_failed = 1;
        done(io, err);
        return;
    }
    run(io);
}

/* Returns 0, or -1 when nghttp2 failed (the connection must end). */
static int process_input(lg_h2_io_t *io)
{
    h2o_buffer_t *in = io->sock->input;
    if (in->size == 0)
        return 0;
    ++io->_depth;
    ssize_t n = nghttp2_session_mem_recv(io->session, (const uint8_t *)in->bytes, in->size);
    --io->_depth;
    if (n < 0) {
        io->nghttp2_error = (int)n;
        if (io->close_reason == NULL) /* a codec callback may have said why */
            io->close_reason = nghttp2_strerror((int)n);
        return -1;
    }
    h2o_buffer_consume(&io->sock->input, (size_t)n);
    return 0;
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    lg_h2_io_t *io = sock->data;
    if (err != NULL) {
        io->_sock_failed = 1;
        done(io, err);
        return;
    }
    if (process_input(io) != 0) {
        done(io, io->close_reason);
        return;
    }
    run(io);
}

/* Gathers frames and starts the write. Returns 0, or -1 when mem_send failed. */
static int flush(lg_h2_io_t *io)
{
    if (io->_writing)
        return 0;
    while (io->_out->size < WRITE_BATCH) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(io->session, &p);
        if (n < 0) {
            io->nghttp2_error = (int)n;
            io->close_reason = nghttp2_strerror((int)n);
            return -1;
        }
        if (n == 0)
            break;
        /* p is valid only until the next mem_send call: copy it now. */
        h2o_iovec_t dst = h2o_buffer_reserve(&io->_out, (size_t)n);
        if (dst.base == NULL)
            lg_fatal("out of memory");
        memcpy(dst.base, p, (size_t)n);
        io->_out->size += (size_t)n;
    }
    if (io->_out->size == 0)
        return 0;
    h2o_buffer_t *t = io->_flight;
    io->_flight = io->_out;
    io->_out = t;
    io->_writing = 1;
    h2o_iovec_t buf = h2o_iovec_init(io->_flight->bytes, io->_flight->size);
    h2o_socket_write(io->sock, &buf, 1, on_write_complete);
    return 0;
}

static void run(lg_h2_io_t *io)
{
    h2o_timeout_unlink(&io->_run_entry);
    if (io->_depth != 0) {
        io->_want_run = 1;
        return;
    }
    ++io->_depth;
    /* Work queued by this run's own events is taken in the same run, a few rounds at most; more
     * waits for the 0 ms timeout, after other sockets' pending events had their turn. */
    for (int round = 0;; ++round) {
        if (round == 8) {
            kick_later(io);
            break;
        }
        io->_want_run = 0;
        if (io->_input_pending) {
            io->_input_pending = 0;
            if (process_input(io) != 0)
                goto Fail;
        }
        if (io->cb->on_run(io) != 0)
            goto Fail;
        if (flush(io) != 0)
            goto Fail;
        if (!io->_want_run)
            break;
    }
    --io->_depth;
    if (!io->_writing && !nghttp2_session_want_read(io->session) && !nghttp2_session_want_write(io->session))
        done(io, NULL);
    return;
Fail:
    --io->_depth;
    done(io, io->close_reason != NULL ? io->close_reason : "http2 codec error");
}

static void on_run_entry(h2o_timeout_entry_t *e)
{
    run(H2O_STRUCT_FROM_MEMBER(lg_h2_io_t, _run_entry, e));
}

void lg__h2_io_start(lg_h2_io_t *io, h2o_socket_t *sock, nghttp2_session *session, const lg_h2_io_callbacks_t *cb,
                     h2o_timeout_t *zero_timeout)
{
    memset(io, 0, sizeof(*io));
    io->sock = sock;
    io->loop = h2o_socket_get_loop(sock);
    io->zero_timeout = zero_timeout;
    io->_run_entry.cb = on_run_entry;
    io->session = session;
    io->cb = cb;
    h2o_buffer_init(&io->_out, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&io->_flight, &h2o_socket_buffer_prototype);
    sock->data = io;
    io->_reading = 1;
    h2o_socket_read_start(sock, on_read);
    io->_input_pending = sock->input->size != 0;
    lg__h2_io_kick(io);
}

void lg__h2_io_kick(lg_h2_io_t *io)
{
    io->_want_run = 1;
    if (io->_depth != 0 || io->sock == NULL || io->_linger_end != NULL || h2o_timeout_is_linked(&io->_run_entry))
        return;
    h2o_timeout_link(io->loop, io->zero_timeout, &io->_run_entry);
}

static void kick_later(lg_h2_io_t *io)
{
    if (!h2o_timeout_is_linked(&io->_run_entry))
        h2o_timeout_link(io->loop, io->zero_timeout, &io->_run_entry);
}

int lg__h2_io_busy(const lg_h2_io_t *io)
{
    return io->_depth != 0;
}

void lg__h2_io_stop_reading(lg_h2_io_t *io)
{
    if (io->_reading && io->sock != NULL) {
        io->_reading = 0;
        h2o_socket_read_stop(io->sock);
    }
}

static void on_linger_read(h2o_socket_t *sock, const char *err)
{
    lg_h2_io_t *io = sock->data;
    if (err != NULL) {
        io->_linger_end(io);
        return;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
}

static void on_linger_timeout(h2o_timeout_entry_t *e)
{
    lg_h2_io_t *io = H2O_STRUCT_FROM_MEMBER(lg_h2_io_t, _run_entry, e);
    io->_linger_end(io);
}

int lg__h2_io_linger(lg_h2_io_t *io, h2o_timeout_t *timeout, void (*end)(lg_h2_io_t *io))
{
    if (timeout == NULL || io->sock == NULL || io->sock->ssl != NULL || io->_writing || io->_sock_failed ||
        io->_linger_end != NULL || shutdown(h2o_socket_get_fd(io->sock), SHUT_WR) != 0)
        return -1;
    if (io->session != NULL) {
        nghttp2_session_del(io->session);
        io->session = NULL;
    }
    io->_linger_end = end;
    h2o_buffer_consume(&io->sock->input, io->sock->input->size);
    if (io->_reading)
        h2o_socket_read_stop(io->sock);
    io->_reading = 1;
    h2o_socket_read_start(io->sock, on_linger_read);
    /* The pump's deferred-run entry is free now: it times the linger. */
    h2o_timeout_unlink(&io->_run_entry);
    io->_run_entry.cb = on_linger_timeout;
    h2o_timeout_link(io->loop, timeout, &io->_run_entry);
    return 0;
}

void lg__h2_io_dispose(lg_h2_io_t *io)
{
    h2o_timeout_unlink(&io->_run_entry);
    if (io->session != NULL) {
        nghttp2_session_del(io->session);
        io->session = NULL;
    }
    if (io->sock != NULL) {
        io->sock->data = NULL;
        h2o_socket_close(io->sock);
        io->sock = NULL;
    }
    if (io->_out != NULL)
        h2o_buffer_dispose(&io->_out);
    if (io->_flight != NULL)
        h2o_buffer_dispose(&io->_flight);
}

/* ---- outbound half of a stream --------------------------------------------------------------- */

void lg__h2_out_append(lg_h2_out_t *o, const void *data, size_t len)
{
    if (len == 0)
        return;
    if (o->buf == NULL)
        h2o_buffer_init(&o->buf, &h2o_socket_buffer_prototype);
    h2o_iovec_t dst = h2o_buffer_reserve(&o->buf, len);
    if (dst.base == NULL)
        lg_fatal("out of memory");
    memcpy(dst.base, data, len);
    o->buf->size += len;
    if (o->high != 0 && o->buf->size >= o->high)
        o->above = 1;
}

void lg__h2_out_set_trailers(lg_h2_out_t *o, const lg_headers_t *trailers)
{
    lg_h2_nvs_t v = {NULL, 0, 0};
    lg__h2_nvs_add_fields(&v, trailers, 0);
    size_t bytes = v.size * sizeof(nghttp2_nv);
    for (size_t i = 0; i < v.size; ++i)
        bytes += v.nva[i].namelen + v.nva[i].valuelen;
    free(o->trailers);
    o->trailers = NULL;
    o->n_trailers = 0;
    if (v.size != 0) {
        /* One block: the array, then the strings it points at. */
        nghttp2_nv *copy = malloc(bytes);
        if (copy == NULL)
            lg_fatal("out of memory");
        uint8_t *p = (uint8_t *)(copy + v.size);
        for (size_t i = 0; i < v.size; ++i) {
            copy[i] = v.nva[i];
            memcpy(p, v.nva[i].name, v.nva[i].namelen);
            copy[i].name = p;
            p += v.nva[i].namelen;
            memcpy(p, v.nva[i].value, v.nva[i].valuelen);
            copy[i].value = p;
            p += v.nva[i].valuelen;
        }
        o->trailers = copy;
        o->n_trailers = v.size;
    }
    lg__h2_nvs_dispose(&v);
}

void lg__h2_out_resume(lg_h2_out_t *o, nghttp2_session *session, int32_t stream_id)
{
    if (o->deferred && session != NULL) {
        o->deferred = 0;
        nghttp2_session_resume_data(session, stream_id);
    }
}

ssize_t lg__h2_out_read(lg_h2_out_t *o, nghttp2_session *session, int32_t stream_id, uint8_t *dst, size_t len,
                        uint32_t *data_flags)
{
    size_t avail = o->buf != NULL ? o->buf->size : 0, n = avail < len ? avail : len;
    if (n != 0) {
        memcpy(dst, o->buf->bytes, n);
        h2o_buffer_consume(&o->buf, n);
        if (o->above && o->buf->size <= o->low)
            o->above = 0;
    }
    if (o->end && (o->buf == NULL || o->buf->size == 0)) {
        o->eof = 1;
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (o->n_trailers != 0) {
            *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            /* nghttp2 copies the fields; a failure means the stream is going away anyway. */
            nghttp2_submit_trailer(session, stream_id, o->trailers, o->n_trailers);
            free(o->trailers);
            o->trailers = NULL;
            o->n_trailers = 0;
        }
        return (ssize_t)n;
    }
    if (n == 0) {
        o->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

size_t lg__h2_out_size(const lg_h2_out_t *o)
{
    return o->buf != NULL ? o->buf->size : 0;
}

void lg__h2_out_dispose(lg_h2_out_t *o)
{
    if (o->buf != NULL)
        h2o_buffer_dispose(&o->buf);
    free(o->trailers);
    o->trailers = NULL;
    o->n_trailers = 0;
}

/* ---- field lists ----------------------------------------------------------------------------- */

void lg__h2_nvs_add(lg_h2_nvs_t *v, const char *name, size_t name_len, const char *value, size_t value_len)
{
    if (v->size == v->capacity) {
        size_t cap = v->capacity != 0 ? v->capacity * 2 : 16;
        nghttp2_nv *n = realloc(v->nva, cap * sizeof(*n));
        if (n == NULL)
            lg_fatal("out of memory");
        v->nva = n;
        v->capacity = cap;
    }
    v->nva[v->size++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, name_len, value_len, NGHTTP2_NV_FLAG_NONE};
}

static int name_is(h2o_iovec_t n, const char *lit, size_t lit_len)
{
    return n.len == lit_len && memcmp(n.base, lit, lit_len) == 0;
}

#define NAME_IS(n, lit) name_is((n), (lit), sizeof(lit) - 1)

void lg__h2_nvs_add_fields(lg_h2_nvs_t *v, const lg_headers_t *h, int drop_host)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->size; ++i) {
        h2o_iovec_t n = h->entries[i].name, val = h->entries[i].value;
        if (n.len == 0 || n.base[0] == ':')
            continue;
        if (NAME_IS(n, "connection") || NAME_IS(n, "keep-alive") || NAME_IS(n, "proxy-connection") ||
            NAME_IS(n, "transfer-encoding") || NAME_IS(n, "upgrade"))
            continue;
        if (NAME_IS(n, "te") && !(val.len == 8 && strncasecmp(val.base, "trailers", 8) == 0))
            continue;
        if (drop_host && NAME_IS(n, "host"))
            continue;
        lg__h2_nvs_add(v, n.base, n.len, val.base, val.len);
    }
}

void lg__h2_nvs_dispose(lg_h2_nvs_t *v)
{
    free(v->nva);
    v->nva = NULL;
    v->size = v->capacity = 0;
}

/* ---- inbound header blocks ------------------------------------------------------------------- */

int64_t lg__h2_parse_content_length(const char *s, size_t len)
{
    if (len == 0 || len > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < len; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}
