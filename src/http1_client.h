/*
 * The upstream HTTP/1.1 codec: one connection to one upstream host, carrying one request at a
 * time, behind the protocol-neutral lg_client_conn_t interface the connection pool uses
 * (client_conn.h). The router writes a request through the stream ops (codec.h) and hears the
 * response through its lg_upstream_callbacks_t.
 *
 * Requests go out in origin-form with Host from the head's authority, hop-by-hop fields dropped,
 * and framing chosen here (Content-Length, or chunked when the length is unknown and a body
 * follows). Responses are parsed strictly (http1_parser.h, http1_chunked.h): 1xx interim
 * responses are skipped; the body is framed by Content-Length, chunked coding or the close, and
 * HEAD/204/304 responses have none. Anything malformed makes the stream fail with
 * LG_RESET_PROTOCOL_ERROR and the connection close; a close before the response is complete
 * fails it with LG_RESET_CONNECTION_CLOSED. A connection is reused only after a complete,
 * keep-alive exchange with nothing left over on the wire.
 *
 * Not for: connecting, TLS handshakes, timeouts, retries (the pool and the router), 101/CONNECT
 * tunnels (not yet: a 101 fails the stream as a protocol error).
 */
#ifndef LG_HTTP1_CLIENT_H
#define LG_HTTP1_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <h2o/socket.h>
#include <h2o/timeout.h>

#include "client_conn.h"

typedef struct st_lg_http1_client_settings_t {
    uint32_t max_response_headers_kb;     /* a response head or trailer section: 60 */
    uint32_t max_headers_count;           /* field lines in a head or trailer section: 100 */
    uint32_t max_requests_per_connection; /* 0: unlimited (the cluster's setting) */
    /* Request bytes buffered for the socket: above high the router hears on_watermark(1), at or
     * below low on_watermark(0). Defaults 1 MiB / 512 KiB (per_connection_buffer_limit). */
    size_t high_watermark, low_watermark;
    /* Response bytes held unread while the router has disabled reading, before reading stops.
     * Default 64 KiB. */
    size_t max_held_input;
    /* Required: a 0 ms timeout on the socket's loop (lg_worker_timeout(w, 0)), outliving every
     * connection; events that arise inside an ops call are delivered from it. */
    h2o_timeout_t *zero_timeout;
} lg_http1_client_settings_t;

typedef struct st_lg_http1_client_conn_t lg_http1_client_conn_t;

/** Fills `s` with the defaults above (zero_timeout NULL: set it). */
void lg_http1_client_settings_init(lg_http1_client_settings_t *s);

/**
 * Takes over a connected (and, for TLS, handshaken) socket to an upstream host.
 *
 * @param sock       owned by the codec from now on (sock->data is set; closed by the codec).
 * @param s          copied; s->zero_timeout must be set.
 * @param owner      the pool's callbacks, kept; `owner_ctx` is passed back to them.
 *                   on_capacity: a stream was released after a complete keep-alive exchange and
 *                   the connection can take another (called from the event loop, never from
 *                   inside an ops call). on_closed: the connection is gone (peer close, error,
 *                   close(), or shutdown() once idle); it is the last call, the codec is freed
 *                   right after it returns.
 * @return the connection as the pool sees it (never NULL). Worker thread only.
 *
 * Stream lifetime: after on_reset from the codec the router still calls release (codec.h: only
 * release may follow); after the router calls reset it must not call release. close() is
 * synchronous when called from outside the codec's own callbacks: the active stream hears
 * on_reset(LG_RESET_LOCAL), then the owner on_closed, before close() returns.
 */
lg_client_conn_t *lg_http1_client_conn_new(h2o_socket_t *sock, const lg_http1_client_settings_t *s,
                                           const lg_client_conn_owner_t *owner, void *owner_ctx);

#endif
