/*
 * TLS contexts for both directions, built from Envoy's transport-socket messages
 * (DownstreamTlsContext for listeners' filter chains, UpstreamTlsContext for clusters), and the
 * two handshakes that use them on h2o sockets.
 *
 * Downstream: every TLS filter chain has its own server context (certificates, TLS parameters,
 * ALPN, client-certificate validation). A listener's chains are gathered into one selector whose
 * OpenSSL context does nothing but pick a chain from the ClientHello's SNI, with the filter-chain
 * rules Envoy applies to `server_names` (an exact name, then the longest "*.suffix" wildcard, then
 * a chain without server_names, then the listener's default chain), and switch the connection to
 * that chain's context. The chain index is handed back with the handshake result so the listener
 * runs that chain's filters. Everything a chain configures is applied to the connection at the
 * switch, ALPN included (each chain's context registers its own protocols: after the switch it is
 * that context's ALPN callback that runs).
 *
 * Upstream: a client context per cluster. Peer verification follows Envoy: none without a
 * validation context; with one, the chain is checked against trusted_ca and the leaf against the
 * SAN matchers, certificate hashes and SPKI pins, inside OpenSSL's verification (so it holds for
 * TLS 1.2 and 1.3 alike: h2o 2.2.5 skips its own name check under TLS 1.3). The host name is not
 * checked unless a SAN matcher asks for it, as in Envoy; h2o's own post-handshake name check
 * (TLS 1.2 only) is therefore discarded by lg_tls_client_handshake.
 *
 * Contexts are immutable once built and shared by config snapshots and workers. Their reference
 * count is OpenSSL's (atomic): retain/release from any thread; memory goes when the last holder,
 * a snapshot or a connection still using the context, lets go.
 *
 * Not for: SDS secrets, certificate providers, OCSP stapling, session ticket keys, key logging,
 * private key providers (all refused at build with "not supported by legate"); filter-chain
 * matching on anything but the server name (the listener does that); certificate reloading.
 */
#ifndef LG_TLS_CONTEXT_H
#define LG_TLS_CONTEXT_H

#include <stddef.h>

#include <h2o/socket.h>
#include <openssl/ssl.h>

#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "error.h"

typedef Envoy__Extensions__TransportSockets__Tls__V3__DownstreamTlsContext lg_pb_downstream_tls_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext lg_pb_upstream_tls_t;

typedef struct st_lg_tls_server_ctx_t lg_tls_server_ctx_t;
typedef struct st_lg_tls_client_ctx_t lg_tls_client_ctx_t;
typedef struct st_lg_tls_server_selector_t lg_tls_server_selector_t;

/*
 * One connection's TLS handshake: caller-owned storage (embed it in the connection), filled by
 * the handshake. While the handshake runs, sock->data points at this struct; it is given back
 * before the callback runs. Fields are valid after the callback and until the socket is closed.
 */
typedef struct st_lg_tls_conn_t {
    SSL *ssl;        /* the connection's OpenSSL object (NULL if the handshake never began) */
    int chain_index; /* server: the filter chain chosen by SNI, -1 when none matched */
    /* private */
    void *_user_data;
    h2o_socket_cb _cb;
    const char *_fail;
} lg_tls_conn_t;

/* Envoy's default ALPN list for an HCM with codec_type AUTO. */
extern const char *const lg_tls_alpn_h2_http11[];

/* ---------------------------------------------------------------------------------------------
 * Downstream.
 * ------------------------------------------------------------------------------------------- */

/**
 * Builds a server context from a DownstreamTlsContext (main thread).
 *
 * @param msg           the message; not kept (everything needed is copied).
 * @param alpn_default  NULL-terminated protocols offered when common_tls_context.alpn_protocols
 *                      is empty (e.g. lg_tls_alpn_h2_http11 for an AUTO codec); NULL for none.
 *                      Order is the server's preference. Copied.
 * @return the context with one reference, or NULL with err holding "<field path>: <problem>",
 *         the path relative to msg ("common_tls_context.tls_certificates[0].certificate_chain:
 *         cannot read /x.pem: No such file or directory").
 */
lg_tls_server_ctx_t *lg_tls_server_ctx_build(const lg_pb_downstream_tls_t *msg,
                                             const char *const *alpn_default, lg_error_t *err);
/** Adds a reference (any thread). Returns c. */
lg_tls_server_ctx_t *lg_tls_server_ctx_retain(lg_tls_server_ctx_t *c);
/** Drops a reference (any thread); NULL is ignored. */
void lg_tls_server_ctx_release(lg_tls_server_ctx_t *c);

/* A listener's filter chain as the selector sees it. */
typedef struct st_lg_tls_sni_chain_t {
    char *const *server_names; /* FilterChainMatch.server_names: "a.example.com", "*.example.com" */
    size_t n_server_names;
    lg_tls_server_ctx_t *tls;  /* NULL: a plaintext chain, never chosen here */
} lg_tls_sni_chain_t;

/**
 * Builds the selector of a listener (main thread). Chain i of the result is chains[i]; the
 * default chain (Envoy's default_filter_chain), chosen when nothing else matches, is
 * chains[default_index], or none when default_index is -1. Where two chains claim the same name
 * the earlier one wins (ambiguous chains are the snapshot builder's to refuse). The selector
 * takes its own references to the contexts. Returns it with one reference, or NULL with err set
 * (no TLS chain at all, a malformed server name).
 */
lg_tls_server_selector_t *lg_tls_server_selector_build(const lg_tls_sni_chain_t *chains,
                                                       size_t n_chains, int default_index,
                                                       lg_error_t *err);
lg_tls_server_selector_t *lg_tls_server_selector_retain(lg_tls_server_selector_t *s);
void lg_tls_server_selector_release(lg_tls_server_selector_t *s);

/**
 * The chain that serves `sni` (NUL-terminated, any case; NULL when the client sent none), or -1.
 * This is the rule the handshake applies; exposed for the listener's plaintext decisions and
 * tests. Any thread.
 */
int lg_tls_server_selector_find(const lg_tls_server_selector_t *s, const char *sni);

/**
 * Runs the server handshake on an accepted socket (worker thread). `conn` is the caller's; see
 * lg_tls_conn_t for sock->data. On completion cb(sock, err) runs with err NULL on success, else a
 * reason ("no filter chain matches the server name", OpenSSL's verification error, h2o's I/O
 * error). Then conn->chain_index says which chain to run, h2o_socket_ssl_get_selected_protocol()
 * gives ALPN, lg_tls_conn_sni() and lg_tls_conn_has_peer_cert() the rest. The socket must not be
 * reading; as always with h2o, decrypted bytes may already wait in sock->input after success.
 * cb may run before this returns (input already buffered and bad). Closing the socket before
 * completion is allowed (cb never runs then).
 */
void lg_tls_server_handshake(h2o_socket_t *sock, lg_tls_server_selector_t *sel, lg_tls_conn_t *conn,
                             h2o_socket_cb cb);

/* ---------------------------------------------------------------------------------------------
 * Upstream.
 * ------------------------------------------------------------------------------------------- */

/**
 * Builds a client context from an UpstreamTlsContext (main thread). ALPN offers
 * common_tls_context.alpn_protocols when set, else "h2" when want_h2, else "http/1.1" (the
 * cluster's protocol). Returns it with one reference, or NULL with err set as for the server.
 */
lg_tls_client_ctx_t *lg_tls_client_ctx_build(const lg_pb_upstream_tls_t *msg, int want_h2,
                                             lg_error_t *err);
lg_tls_client_ctx_t *lg_tls_client_ctx_retain(lg_tls_client_ctx_t *c);
void lg_tls_client_ctx_release(lg_tls_client_ctx_t *c);
/** The configured `sni`, or NULL. */
const char *lg_tls_client_ctx_sni(const lg_tls_client_ctx_t *c);

/**
 * Runs the client handshake on a connected socket (worker thread). SNI is sni_override when
 * non-empty (auto_sni), else the context's `sni`, else none. cb(sock, err): err NULL when the
 * handshake succeeded and the peer passed the context's verification, else the reason
 * ("certificate verify failed"-style OpenSSL strings: "self-signed certificate", "hostname
 * mismatch" for a SAN matcher failure, ...). ALPN: h2o_socket_ssl_get_selected_protocol().
 * `conn` as for the server (chain_index stays -1); cb may run before this returns.
 * One h2o 2.2.5 wrinkle: after a full TLS 1.2 handshake, h2o's own host-name check runs and this
 * function discards its verdict; h2o then does not decode records that arrived together with
 * the server's Finished (an HTTP/2 server's SETTINGS) until more bytes arrive on the socket, so
 * the caller must not wait for the server to speak first (HTTP clients never do).
 */
void lg_tls_client_handshake(h2o_socket_t *sock, lg_tls_client_ctx_t *ctx, const char *sni_override,
                             lg_tls_conn_t *conn, h2o_socket_cb cb);

/* ---------------------------------------------------------------------------------------------
 * After a handshake (worker thread; valid until the socket is closed).
 * ------------------------------------------------------------------------------------------- */

/** Server: the SNI the client sent; client: the SNI sent. NULL when none. */
const char *lg_tls_conn_sni(const lg_tls_conn_t *conn);
/** Whether the peer presented a certificate (it passed verification if the handshake did). */
int lg_tls_conn_has_peer_cert(const lg_tls_conn_t *conn);

#endif
