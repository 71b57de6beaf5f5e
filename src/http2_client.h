/*
 * The upstream HTTP/2 codec: an nghttp2 client session on a connection to one upstream host,
 * carrying as many concurrent request streams as the server's MAX_CONCURRENT_STREAMS (and our own
 * cap) allow, behind the protocol-neutral lg_client_conn_t the connection pool uses
 * (client_conn.h). The router writes a request through the stream ops (codec.h) and hears the
 * response through its lg_upstream_callbacks_t.
 *
 * Requests go out with :method :scheme :authority :path and the head's fields minus the
 * connection-specific ones (connection, keep-alive, proxy-connection, transfer-encoding, upgrade,
 * host when :authority is set; te only as "trailers"); bodies and trailers stream through a data
 * provider. Responses: 1xx heads are skipped; a bad head (missing or invalid :status, limits
 * exceeded) fails the stream with LG_RESET_PROTOCOL_ERROR (LG_RESET_OVERFLOW for limits); response
 * body bytes are acknowledged to the server only once delivered, so read_disable closes the
 * window. A stream the server did not process (REFUSED_STREAM, or above the last stream id of a
 * GOAWAY) fails with LG_RESET_REMOTE_RESET and request_sent = 0: safe to retry. After a GOAWAY
 * the connection takes no new stream and closes once the remaining ones finish.
 *
 * Not for: connecting, TLS handshakes and ALPN checks, timeouts, retries (the pool and the
 * router), server push (disabled), CONNECT tunnels. Worker thread only.
 */
#ifndef LG_HTTP2_CLIENT_H
#define LG_HTTP2_CLIENT_H

#include <h2o/socket.h>

#include "client_conn.h"
#include "http2_settings.h"

/**
 * Takes over a connected (and, for TLS, handshaken with ALPN "h2") socket to an upstream host.
 *
 * @param sock       owned by the codec from now on (sock->data is set; closed by the codec).
 * @param s          copied; s->zero_timeout must be set.
 * @param owner      the pool's callbacks, kept; `owner_ctx` is passed back to them. on_capacity:
 *                   a stream finished or the server raised its limit, and the connection can take
 *                   another stream (never called from inside an ops call). on_closed: the
 *                   connection is gone; it is the last call, the codec is freed right after.
 * @return the connection as the pool sees it (never NULL). Worker thread only.
 *
 * Stream lifetime: the handle returned by new_stream lives in the pool passed to it, which must
 * stay valid until the router calls release or reset, or hears on_reset. After on_reset the router
 * may call release (harmless, as the HTTP/1.1 codec requires it); after reset it calls nothing.
 * close() run from outside the codec's callbacks is synchronous: every stream still attached hears
 * on_reset(LG_RESET_CONNECTION_CLOSED), then the owner's on_closed, before close() returns; from
 * inside one of this connection's callbacks it happens right after that callback returns.
 */
lg_client_conn_t *lg_http2_client_conn_new(h2o_socket_t *sock, const lg_http2_client_settings_t *s,
                                           const lg_client_conn_owner_t *owner, void *owner_ctx);

/** Counts into `stats` from now on (NULL: stop). `c` must come from lg_http2_client_conn_new. */
void lg_http2_client_conn_set_stats(lg_client_conn_t *c, const lg_http2_stats_t *stats);

#endif
