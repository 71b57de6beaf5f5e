/*
 * What the HTTP/2 server and client codecs (http2_server.c, http2_client.c) share: an nghttp2
 * session pumped through an h2o socket, and the outbound half of a stream (body bytes, end of
 * stream and trailers handed to nghttp2 through a data provider).
 *
 * The pump keeps the rules of architecture-notes §3: mem_recv, mem_send and session_del are never
 * called from inside an nghttp2 callback; one write is in flight per socket; mem_send's bytes are
 * copied before the next call. It also gives the codecs their deferral point. Codec ops (called by
 * the connection manager or the router) only queue work and call lg__h2_io_kick; the queued work
 * runs from a socket callback, where neither nghttp2 nor the caller of the op is on the stack, so a
 * codec can report events without re-entering its caller. The deferred run comes from an entry in
 * the worker's 0 ms timeout (lg_worker_timeout(w, 0)), which outlives every connection, so a
 * connection may end inside its own run.
 *
 * Not for: the per-stream request/response logic (the codecs), TLS (the socket does it).
 * Worker thread only; internal to the two codecs.
 */
#ifndef LG_HTTP2_IO_H
#define LG_HTTP2_IO_H

#include <stddef.h>
#include <stdint.h>

#include <h2o/memory.h>
#include <h2o/socket.h>
#include <h2o/timeout.h>
#include <nghttp2/nghttp2.h>

#include "http_message.h"

typedef struct st_lg_h2_io_t lg_h2_io_t;

typedef struct st_lg_h2_io_callbacks_t {
    /**
     * Runs the work the codec queued (resumed bodies, watermarks, capacity), before each flush.
     * Called from a socket callback with no nghttp2 call on the stack. Returns 0, or -1 to end
     * the connection now (on_done follows with io->close_reason).
     */
    int (*on_run)(lg_h2_io_t *io);
    /**
     * The connection is over: the peer closed, I/O failed, nghttp2 failed, on_run asked, or the
     * session finished cleanly (GOAWAY exchanged and no stream left; err == NULL). The codec tears
     * down, lg__h2_io_dispose included. The pump touches nothing of `io` after this call.
     */
    void (*on_done)(lg_h2_io_t *io, const char *err);
} lg_h2_io_callbacks_t;

struct st_lg_h2_io_t {
    h2o_socket_t *sock;
    nghttp2_session *session;
    const lg_h2_io_callbacks_t *cb;
    const char *close_reason; /* set by the codec before on_run returns -1 */
    int nghttp2_error;        /* the error mem_recv/mem_send failed with, 0 if none */
    h2o_loop_t *loop;
    h2o_timeout_t *zero_timeout;
    h2o_timeout_entry_t _run_entry;
    h2o_buffer_t *_out;       /* frames gathered from mem_send, not yet handed to the socket */
    h2o_buffer_t *_flight;    /* bytes of the write in flight */
    unsigned _depth;          /* > 0 while nghttp2 or the codec's run is on the stack */
    unsigned _want_run : 1;   /* work was queued while _depth > 0 */
    unsigned _writing : 1;    /* a write is in flight: its callback will run */
    unsigned _input_pending : 1;
    unsigned _reading : 1;
    unsigned _sock_failed : 1; /* a read or write reported an error (the peer closed or reset) */
    void (*_linger_end)(lg_h2_io_t *io);
};

/**
 * Starts pumping `session` through `sock` (ownership of both passes to `io`; sock->data is set to
 * io). Bytes already in sock->input (a preface read by the caller, data decrypted with the TLS
 * handshake) are processed from the first deferred run, never inside this call, and nghttp2's first
 * frames (SETTINGS) go out then too. `zero_timeout`: a 0 ms timeout on the socket's loop that
 * outlives the connection.
 */
void lg__h2_io_start(lg_h2_io_t *io, h2o_socket_t *sock, nghttp2_session *session, const lg_h2_io_callbacks_t *cb,
                     h2o_timeout_t *zero_timeout);
/** Asks for a run (on_run + flush) soon; never runs anything inside the call. */
void lg__h2_io_kick(lg_h2_io_t *io);
/** Whether the pump is inside mem_recv, mem_send or on_run (a teardown must then be deferred). */
int lg__h2_io_busy(const lg_h2_io_t *io);
/** Stops reading the socket (flood handling: what is queued is still sent). */
void lg__h2_io_stop_reading(lg_h2_io_t *io);
/**
 * A delayed close (Envoy's delayed_close_timeout, nginx's lingering close): frees the session,
 * sends FIN and reads and drops whatever the peer still sends until it closes, the socket fails or
 * `timeout` passes; then `end` runs once (it disposes). Closing at once with unread input would send
 * an RST that can destroy the last frames (a GOAWAY) before the peer reads them. Returns -1, doing
 * nothing, when it does not apply: TLS (a FIN under the record layer is not a close_notify), a write
 * in flight, a failed socket, or no timeout.
 */
int lg__h2_io_linger(lg_h2_io_t *io, h2o_timeout_t *timeout, void (*end)(lg_h2_io_t *io));
/** Frees the session, closes the socket (no callback follows), the buffers and the deferred run. Idempotent. */
void lg__h2_io_dispose(lg_h2_io_t *io);

/* ---- the outbound half of a stream ---------------------------------------------------------- */

typedef struct st_lg_h2_out_t {
    h2o_buffer_t *buf;     /* body bytes nghttp2 has not taken yet (NULL until the first byte) */
    nghttp2_nv *trailers;  /* one malloc'd block (array and strings), sent after the last byte */
    size_t n_trailers;
    size_t high, low;      /* watermarks on buf's size */
    unsigned end : 1;      /* the sender finished (end_stream or trailers) */
    unsigned deferred : 1; /* the data provider answered NGHTTP2_ERR_DEFERRED */
    unsigned eof : 1;      /* the data provider reported EOF: nothing more goes out */
    unsigned above : 1;    /* buf is above the high watermark (until it drains to low) */
    unsigned told_above : 1; /* what the stream's owner was last told */
} lg_h2_out_t;

/** Appends body bytes (copied). Sets `above` when the high watermark is crossed. */
void lg__h2_out_append(lg_h2_out_t *o, const void *data, size_t len);
/** Keeps a copy of `trailers` (filtered like any field list) to send after the body. */
void lg__h2_out_set_trailers(lg_h2_out_t *o, const lg_headers_t *trailers);
/** Wakes a deferred data provider after append/end/trailers. Safe inside nghttp2 callbacks. */
void lg__h2_out_resume(lg_h2_out_t *o, nghttp2_session *session, int32_t stream_id);
/**
 * The body of a data provider's read_callback: copies what is buffered, answers DEFERRED when
 * nothing is, and at the end sets EOF (with NO_END_STREAM plus nghttp2_submit_trailer when there
 * are trailers, as architecture-notes §3 describes; nghttp2 1.52 then sends no empty DATA frame).
 * Clears `above` when the buffer drains to the low watermark.
 */
ssize_t lg__h2_out_read(lg_h2_out_t *o, nghttp2_session *session, int32_t stream_id, uint8_t *dst, size_t len,
                        uint32_t *data_flags);
/** Bytes not yet taken by nghttp2. */
size_t lg__h2_out_size(const lg_h2_out_t *o);
void lg__h2_out_dispose(lg_h2_out_t *o);

/* ---- field lists ------------------------------------------------------------------------------ */

typedef struct st_lg_h2_nvs_t {
    nghttp2_nv *nva;
    size_t size, capacity;
} lg_h2_nvs_t;

/** Appends a field by reference (nghttp2's submit functions copy it). */
void lg__h2_nvs_add(lg_h2_nvs_t *v, const char *name, size_t name_len, const char *value, size_t value_len);
/**
 * Appends the fields of `h` that HTTP/2 allows: connection-specific fields (connection,
 * keep-alive, proxy-connection, transfer-encoding, upgrade) are dropped, `te` only passes as
 * "trailers", and `host` is dropped when `drop_host`.
 */
void lg__h2_nvs_add_fields(lg_h2_nvs_t *v, const lg_headers_t *h, int drop_host);
void lg__h2_nvs_dispose(lg_h2_nvs_t *v);

/* ---- inbound header blocks -------------------------------------------------------------------- */

/** Parses a content-length value (digits only, no overflow); -1 when invalid. */
int64_t lg__h2_parse_content_length(const char *s, size_t len);

#endif
