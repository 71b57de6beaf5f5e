/*
 * The downstream HTTP/2 codec: an nghttp2 server session on an accepted socket (h2 after ALPN, or
 * h2c with prior knowledge), turning each request stream into connection-manager events
 * (codec.h: lg_hcm_stream_new, lg_hcm_on_*) and the manager's answers (lg_server_stream_ops_t)
 * into frames. Bodies stream both ways with flow control: request bytes are acknowledged to the
 * client (WINDOW_UPDATE) only once delivered, so read_disable closes the window; response bytes
 * queue per stream and raise watermarks. It enforces the header-size and flood limits of
 * lg_http2_settings_t, which nghttp2 1.52 does not.
 *
 * Not for: HTTP/1.1, TLS handshakes, h2c upgrade, server push (never sent), idle timeouts (the
 * caller watches lg_http2_server_conn_active_streams). Worker thread only.
 */
#ifndef LG_HTTP2_SERVER_H
#define LG_HTTP2_SERVER_H

#include <stddef.h>

#include <h2o/socket.h>

#include "codec.h"
#include "http2_settings.h"

typedef struct st_lg_http2_server_conn_t lg_http2_server_conn_t;

/**
 * Starts serving HTTP/2 on `sock`, an accepted (and, with TLS, handshaken) socket. The connection
 * takes the socket (it sets sock->data and closes it); bytes already in sock->input, the client
 * preface included, are processed right after this call returns (never inside it). `settings` is
 * copied. `hcm` receives the streams; when the connection ends, every stream the manager still
 * holds gets lg_hcm_on_reset and then lg_hcm_conn_closed(hcm) is called, after which the
 * connection frees itself. Never returns NULL (out of memory is fatal).
 */
lg_http2_server_conn_t *lg_http2_server_conn_new(h2o_socket_t *sock, lg_hcm_conn_t *hcm,
                                                 const lg_http2_settings_t *settings);

/**
 * Counts into `stats` from now on (NULL: stop counting). The struct must outlive the connection
 * or be replaced first.
 */
void lg_http2_server_conn_set_stats(lg_http2_server_conn_t *conn, const lg_http2_stats_t *stats);

/**
 * Graceful shutdown (drain): sends GOAWAY NO_ERROR naming the last stream accepted, refuses newer
 * ones and closes once every accepted stream has ended. Idempotent.
 */
void lg_http2_server_conn_shutdown(lg_http2_server_conn_t *conn);

/**
 * Closes now: the socket is closed without a goodbye, open streams get lg_hcm_on_reset
 * (LG_RESET_CONNECTION_CLOSED), then lg_hcm_conn_closed. When called from inside one of this
 * connection's events (an lg_hcm_on_* call) the close happens right after that event returns.
 * `conn` must not be used after the call.
 */
void lg_http2_server_conn_close(lg_http2_server_conn_t *conn);

/** Request streams open at the HTTP/2 level (for idle timeouts and drain). */
size_t lg_http2_server_conn_active_streams(const lg_http2_server_conn_t *conn);

#endif
