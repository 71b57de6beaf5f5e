/*
 * The seam between wire protocols and the connection manager. A codec turns bytes on a socket into
 * request/response events and events back into bytes; the connection manager (conn_manager.c) and
 * the router see only these interfaces, never HTTP/1.1 or HTTP/2 specifics.
 *
 * Downstream (server side): a codec owns the accepted socket. For each request it creates an
 * lg_server_stream_t, asks the connection manager for a stream (lg_hcm_stream_new), then reports
 * the request with lg_hcm_on_* calls. The connection manager answers through the stream's ops.
 *
 * Upstream (client side): a codec owns a connection to one host. The router opens an
 * lg_upstream_stream_t on it (through the connection pool, upstream_pool.h), writes the request
 * with the stream's ops, and hears the response through lg_upstream_callbacks_t.
 *
 * Rules both sides keep:
 * - Everything runs on one worker thread.
 * - Data passed in an event is valid only during the call: the receiver copies what it keeps.
 * - Heads and trailers passed to encode_* belong to the caller's stream pool and stay valid until
 *   the stream is released.
 * - After a reset (either direction) no further event is delivered for that stream, and the side
 *   that received the reset makes no further call on it except release.
 * - No callback is made from inside an ops call on the same stream (events are deferred), so a
 *   receiver may call back into the codec from any event.
 */
#ifndef LG_CODEC_H
#define LG_CODEC_H

#include <stddef.h>

#include "http_message.h"

/* ---- downstream ------------------------------------------------------------------------ */

typedef struct st_lg_stream_t lg_stream_t;         /* the connection manager's stream */
typedef struct st_lg_hcm_conn_t lg_hcm_conn_t;     /* the connection manager's connection */
typedef struct st_lg_server_stream_t lg_server_stream_t;

typedef struct st_lg_server_stream_ops_t {
    /** Sends the response head; end_stream when there is no body. 1xx heads may precede. */
    void (*encode_headers)(lg_server_stream_t *s, const lg_response_head_t *head, int end_stream);
    /** Sends body bytes (copied by the codec). */
    void (*encode_data)(lg_server_stream_t *s, const void *data, size_t len, int end_stream);
    /** Sends trailers and ends the response (HTTP/1.1: as chunked trailers, or dropped). */
    void (*encode_trailers)(lg_server_stream_t *s, const lg_headers_t *trailers);
    /** Aborts the response: RST_STREAM on HTTP/2, connection close on HTTP/1.1. */
    void (*reset)(lg_server_stream_t *s);
    /** Stops (1) or resumes (0) delivering request body: flow control towards the client. */
    void (*read_disable)(lg_server_stream_t *s, int disable);
    /** Bytes the codec holds for this stream not yet written to the socket (for watermarks). */
    size_t (*buffered)(lg_server_stream_t *s);
    /** The connection manager is done with the stream; the codec frees it when it can. */
    void (*release)(lg_server_stream_t *s);
} lg_server_stream_ops_t;

struct st_lg_server_stream_t {
    const lg_server_stream_ops_t *ops;
    lg_stream_t *hcm; /* set by lg_hcm_stream_new */
};

typedef enum en_lg_reset_reason_t {
    LG_RESET_NONE,
    LG_RESET_CONNECT_FAILURE,   /* upstream connect refused or failed */
    LG_RESET_CONNECT_TIMEOUT,   /* upstream connect_timeout */
    LG_RESET_CONNECTION_CLOSED, /* peer closed before the stream completed */
    LG_RESET_REMOTE_RESET,      /* peer sent RST_STREAM (or refused the stream) */
    LG_RESET_PROTOCOL_ERROR,    /* peer sent bytes that do not parse (502 material upstream) */
    LG_RESET_LOCAL,             /* reset by us */
    LG_RESET_OVERFLOW,          /* a buffer or flood limit was exceeded */
    LG_RESET_TLS_FAILURE,       /* upstream TLS handshake or verification failed */
} lg_reset_reason_t;

/* Implemented by the connection manager, called by downstream codecs. */

/** A new request begins on `cs`. Returns the connection manager's stream (also stored in cs->hcm). */
lg_stream_t *lg_hcm_stream_new(lg_hcm_conn_t *conn, lg_server_stream_t *cs);
/** The request head; fields are in the stream's pool (lg_stream_pool). */
void lg_hcm_on_headers(lg_stream_t *s, lg_request_head_t *head, int end_stream);
void lg_hcm_on_data(lg_stream_t *s, const void *data, size_t len, int end_stream);
void lg_hcm_on_trailers(lg_stream_t *s, lg_headers_t *trailers);
/**
 * The request could not be parsed: the connection manager sends a local reply with `status`
 * (400, 413, 431, 501...) and `details` (Envoy's response code details, e.g. "http1.codec_error"),
 * then the codec closes the connection once it is written.
 */
void lg_hcm_on_protocol_error(lg_stream_t *s, int status, const char *details);
/** The client went away or reset the stream. The manager cleans up and releases the stream. */
void lg_hcm_on_reset(lg_stream_t *s, lg_reset_reason_t reason);
/** The codec's buffer for the stream went above (1) or back below (0) its watermark. */
void lg_hcm_on_watermark(lg_stream_t *s, int above);
/** The pool that heads of this stream must be allocated from. */
h2o_mem_pool_t *lg_stream_pool(lg_stream_t *s);
/**
 * The codec closed its connection (peer close, error, idle, drain) after resetting or releasing all
 * of its streams. The manager frees its connection state; the codec makes no call after this.
 */
void lg_hcm_conn_closed(lg_hcm_conn_t *conn);

/* ---- upstream -------------------------------------------------------------------------- */

typedef struct st_lg_upstream_stream_t lg_upstream_stream_t;

typedef struct st_lg_upstream_callbacks_t {
    /** The response head (in the pool given at stream creation); 1xx heads are not reported. */
    void (*on_headers)(void *ctx, lg_response_head_t *head, int end_stream);
    void (*on_data)(void *ctx, const void *data, size_t len, int end_stream);
    void (*on_trailers)(void *ctx, lg_headers_t *trailers);
    /** The stream failed before completing; `request_sent`: whether the request was written. */
    void (*on_reset)(void *ctx, lg_reset_reason_t reason, int request_sent);
    /** The codec's buffer for the request went above (1) or back below (0) its watermark. */
    void (*on_watermark)(void *ctx, int above);
} lg_upstream_callbacks_t;

typedef struct st_lg_upstream_stream_ops_t {
    void (*encode_headers)(lg_upstream_stream_t *s, const lg_request_head_t *head, int end_stream);
    void (*encode_data)(lg_upstream_stream_t *s, const void *data, size_t len, int end_stream);
    void (*encode_trailers)(lg_upstream_stream_t *s, const lg_headers_t *trailers);
    /** Cancels the stream; no callback follows. The stream is freed by the codec. */
    void (*reset)(lg_upstream_stream_t *s);
    /** Stops (1) or resumes (0) delivering response body: flow control towards the upstream. */
    void (*read_disable)(lg_upstream_stream_t *s, int disable);
    /** The router is done with a completed stream (response fully received and request sent). */
    void (*release)(lg_upstream_stream_t *s);
} lg_upstream_stream_ops_t;

struct st_lg_upstream_stream_t {
    const lg_upstream_stream_ops_t *ops;
};

#endif
