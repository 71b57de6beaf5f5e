/*
 * The downstream HTTP/1.1 codec: one accepted connection (plain or TLS-handshaken) turned into a
 * sequence of request streams for the connection manager (codec.h), and their responses turned
 * back into bytes.
 *
 * Requests are parsed strictly (http1_parser.h, http1_chunked.h); a request the parser refuses is
 * handed to the connection manager as a protocol error, answered, and the connection is closed.
 * One request is handled at a time: bytes of pipelined requests stay in the socket's input buffer
 * until the current response is complete and the stream released, and reading stops while too
 * much is held, so a pipelining or fast-uploading client cannot make the worker buffer without
 * bound. Response framing (Content-Length, chunked, close-delimited) is chosen here, never taken
 * from the response's own fields; hop-by-hop fields are dropped both ways.
 *
 * Not for: HTTP/2 (http2 codec), header policy (x-forwarded-for, limits beyond the head, timeouts
 * per request: the connection manager), CONNECT tunnels and WebSocket upgrades (not yet: CONNECT
 * is passed on without body and the connection closed after its response).
 */
#ifndef LG_HTTP1_SERVER_H
#define LG_HTTP1_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o/socket.h>
#include <h2o/timeout.h>

#include "codec.h"
#include "http1_parser.h"

/* Settings of one listener's HTTP/1.1 codec (Envoy's http_protocol_options and HCM limits). */
typedef struct st_lg_http1_settings_t {
    uint32_t max_request_headers_kb; /* the whole request head, and a trailer section: 60 */
    uint32_t max_headers_count;      /* field lines in a head or trailer section: 100 */
    lg_http1_underscores_t headers_with_underscores_action; /* ALLOW */
    /* Response bytes buffered for the socket: above high the stream hears on_watermark(1), back
     * at or below low on_watermark(0). Defaults 1 MiB / 512 KiB (per_connection_buffer_limit). */
    size_t high_watermark, low_watermark;
    /* Request bytes held unread (pipelined requests, body while read-disabled) before reading
     * stops; at least the head limit is always readable. Default 64 KiB. */
    size_t max_held_input;
    bool allow_absolute_url; /* absolute-form targets ("GET http://a/p"): true, as Envoy */
    bool accept_http_10;     /* false answers HTTP/1.0 requests 426, as Envoy */
    /* Required: a 0 ms timeout on the socket's loop (lg_worker_timeout(w, 0)), outliving every
     * connection. Events for the connection manager that arise inside its own calls are delivered
     * from it, on the next loop pass. */
    h2o_timeout_t *zero_timeout;
    /* Optional: closes a connection that has no request in progress (between keep-alive
     * requests, or while a request head trickles in) when it fires. NULL: no idle timeout. */
    h2o_timeout_t *idle_timeout;
    /* Optional, Envoy's request_headers_timeout: from the first byte of a request head until the
     * whole head is in; when it fires the request is answered 408 and the connection closed. */
    h2o_timeout_t *request_headers_timeout;
    /* Optional, Envoy's delayed_close_timeout (1 s there): when the codec closes a plaintext
     * connection it shuts its write side and keeps reading (and discarding) until the client
     * closes or this fires, so that bytes the client is still sending do not turn the close into
     * a TCP reset that destroys the response in the client's receive buffer.
     * NULL: close at once. */
    h2o_timeout_t *delayed_close_timeout;
} lg_http1_settings_t;

typedef struct st_lg_http1_server_conn_t lg_http1_server_conn_t;

/** Fills `s` with the defaults above (the timeouts NULL: set them). */
void lg_http1_settings_init(lg_http1_settings_t *s);

/**
 * Takes over an accepted socket and serves HTTP/1.1 on it for the connection manager `hcm`.
 *
 * @param sock      owned by the codec from now on (sock->data is set; closed by the codec).
 *                  Bytes already in sock->input (read during a TLS handshake) are processed at
 *                  once. Whether it is TLS decides the requests' scheme ("https" / "http").
 * @param hcm       the connection manager's connection; it hears lg_hcm_* events, the last one
 *                  lg_hcm_conn_closed, after which the codec is freed.
 * @param settings  copied; settings->zero_timeout must be set.
 * @return the codec (never NULL; out of memory is fatal). Worker thread only.
 */
lg_http1_server_conn_t *lg_http1_server_conn_new(h2o_socket_t *sock, lg_hcm_conn_t *hcm,
                                                 const lg_http1_settings_t *settings);

/**
 * Graceful close (drain): the response in progress, if any, is finished with
 * `connection: close` (when its head is not out yet), then the connection closes; an idle
 * connection closes at once. lg_hcm_conn_closed follows from the event loop, never from inside
 * this call. Worker thread only.
 */
void lg_http1_server_conn_shutdown(lg_http1_server_conn_t *conn);

/**
 * Closes the connection now (listener removal, overload): a request in progress hears
 * lg_hcm_on_reset(LG_RESET_LOCAL) and lg_hcm_conn_closed follows, both from the event loop,
 * never from inside this call. Worker thread only.
 */
void lg_http1_server_conn_close(lg_http1_server_conn_t *conn);

/** Frees the per-thread header array request parsing uses; call when a thread ends. */
void lg_http1_server_release_thread_scratch(void);

/** The reason phrase for a status code ("Not Found"), "" for codes without one. Static. */
const char *lg_http1_reason_phrase(int status);

#endif
