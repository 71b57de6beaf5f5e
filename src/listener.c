/*
 * Accepting downstream connections on a worker: the listening socket, the TLS handshake with SNI
 * filter-chain selection and ALPN, the choice of HTTP/1.1 or HTTP/2 (codec_type, ALPN, or the
 * HTTP/2 connection preface on a plaintext AUTO port), and the hand-over to the codec with a new
 * connection manager connection.
 */
#include "listener.h"

#include <string.h>

#include "conn_manager.h"
#include "http1_server.h"
#include "http2_server.h"
#include "log.h"
#include "tls_context.h"

#define MAX_ACCEPTS_PER_EVENT 16
#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

typedef struct st_pending_conn_t {
    lg_worker_t *worker;
    const lg_listener_t *config; /* in `snapshot`: the worker's listeners may change meanwhile */
    lg_snapshot_t *snapshot;
    h2o_socket_t *sock;
    lg_tls_conn_t tls;
} pending_conn_t;

static void codec_shutdown_h1(void *codec)
{
    lg_http1_server_conn_shutdown(codec);
}

static void codec_close_h1(void *codec)
{
    lg_http1_server_conn_close(codec);
}

static void codec_shutdown_h2(void *codec)
{
    lg_http2_server_conn_shutdown(codec);
}

static void codec_close_h2(void *codec)
{
    lg_http2_server_conn_close(codec);
}

static void start_codec(lg_worker_t *w, lg_snapshot_t *snap, const lg_listener_t *l, const lg_filter_chain_t *chain,
                        h2o_socket_t *sock, int h2, int tls)
{
    const lg_hcm_config_t *cfg = chain->hcm;
    lg_hcm_conn_t *conn = lg_hcm_conn_new(w, snap, l, chain, sock, h2 ? LG_HTTP_2 : LG_HTTP_11, tls);
    if (h2) {
        lg_http2_settings_t s;
        lg_http2_settings_init(&s);
        s.max_concurrent_streams = cfg->h2_max_concurrent_streams;
        s.initial_stream_window_size = cfg->h2_initial_stream_window;
        s.initial_connection_window_size = cfg->h2_initial_connection_window;
        s.max_request_headers_kb = cfg->max_request_headers_kb;
        s.max_headers_count = cfg->max_headers_count;
        s.zero_timeout = lg_worker_timeout(w, 0);
        if (cfg->drain_timeout_ms != 0)
            s.drain_timeout = lg_worker_timeout(w, cfg->drain_timeout_ms);
        if (cfg->delayed_close_timeout_ms != 0)
            s.delayed_close_timeout = lg_worker_timeout(w, cfg->delayed_close_timeout_ms);
        conn->codec = lg_http2_server_conn_new(sock, conn, &s);
        conn->codec_shutdown = codec_shutdown_h2;
        conn->codec_close = codec_close_h2;
    } else {
        lg_http1_settings_t s;
        lg_http1_settings_init(&s);
        s.max_request_headers_kb = cfg->max_request_headers_kb;
        s.max_headers_count = cfg->max_headers_count;
        s.headers_with_underscores_action = (lg_http1_underscores_t)cfg->headers_with_underscores_action;
        s.zero_timeout = lg_worker_timeout(w, 0);
        s.accept_http_10 = cfg->accept_http_10;
        s.allow_absolute_url = cfg->allow_absolute_url;
        if (cfg->idle_timeout_ms != 0)
            s.idle_timeout = lg_worker_timeout(w, cfg->idle_timeout_ms);
        if (cfg->request_headers_timeout_ms != 0)
            s.request_headers_timeout = lg_worker_timeout(w, cfg->request_headers_timeout_ms);
        if (cfg->delayed_close_timeout_ms != 0)
            s.delayed_close_timeout = lg_worker_timeout(w, cfg->delayed_close_timeout_ms);
        if (l->per_connection_buffer_limit != 0) {
            s.high_watermark = l->per_connection_buffer_limit;
            s.low_watermark = l->per_connection_buffer_limit / 2;
        }
        conn->codec = lg_http1_server_conn_new(sock, conn, &s);
        conn->codec_shutdown = codec_shutdown_h1;
        conn->codec_close = codec_close_h1;
    }
}

/* The chain for a plaintext connection: the first without server names, else the default. */
static const lg_filter_chain_t *plaintext_chain(const lg_listener_t *l)
{
    for (size_t i = 0; i < l->n_chains; ++i)
        if (l->chains[i]->tls == NULL && l->chains[i]->n_server_names == 0)
            return l->chains[i];
    if (l->default_chain != NULL)
        return l->default_chain;
    return l->n_chains > 0 ? l->chains[0] : NULL;
}

static void finish_pending(pending_conn_t *pc)
{
    lg_snapshot_release(pc->snapshot);
    free(pc);
}

static void on_preface(h2o_socket_t *sock, const char *err)
{
    pending_conn_t *pc = sock->data;
    if (err != NULL) {
        h2o_socket_close(sock);
        finish_pending(pc);
        return;
    }
    size_t n = sock->input->size < H2_PREFACE_LEN ? sock->input->size : H2_PREFACE_LEN;
    int match = memcmp(sock->input->bytes, H2_PREFACE, n) == 0;
    if (match && n < H2_PREFACE_LEN)
        return; /* wait for the rest of the preface */
    h2o_socket_read_stop(sock);
    const lg_filter_chain_t *chain = plaintext_chain(pc->config);
    start_codec(pc->worker, pc->snapshot, pc->config, chain, sock, match, 0);
    finish_pending(pc);
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    pending_conn_t *pc = sock->data;
    if (err != NULL) {
        lg_debug(connection, "TLS handshake failed: %s", err);
        h2o_socket_close(sock);
        finish_pending(pc);
        return;
    }
    const lg_listener_t *l = pc->config;
    int idx = pc->tls.chain_index;
    const lg_filter_chain_t *chain = idx >= 0 && (size_t)idx < l->n_chains ? l->chains[idx]
                                     : idx == (int)l->n_chains                ? l->default_chain
                                                                              : NULL;
    if (chain == NULL) {
        h2o_socket_close(sock);
        finish_pending(pc);
        return;
    }
    h2o_iovec_t alpn = h2o_socket_ssl_get_selected_protocol(sock);
    int h2 = chain->hcm->codec_type == LG_CODEC_HTTP2 ||
             (chain->hcm->codec_type == LG_CODEC_AUTO && alpn.len == 2 && memcmp(alpn.base, "h2", 2) == 0);
    start_codec(pc->worker, pc->snapshot, l, chain, sock, h2, 1);
    finish_pending(pc);
}

static void accept_one(lg_worker_t *w, lg_worker_listener_t *wl, h2o_socket_t *sock)
{
    const lg_listener_t *l = wl->config;
    lg_socket_bound_reads(sock);
    if (l->tls_selector != NULL) {
        pending_conn_t *pc = calloc(1, sizeof(*pc));
        if (pc == NULL)
            lg_fatal("out of memory");
        pc->worker = w;
        pc->config = l;
        pc->snapshot = lg_snapshot_retain(w->snapshot);
        pc->sock = sock;
        sock->data = pc;
        lg_tls_server_handshake(sock, l->tls_selector, &pc->tls, on_handshake);
        return;
    }
    const lg_filter_chain_t *chain = plaintext_chain(l);
    if (chain == NULL) {
        h2o_socket_close(sock);
        return;
    }
    switch (chain->hcm->codec_type) {
    case LG_CODEC_HTTP1:
        start_codec(w, w->snapshot, l, chain, sock, 0, 0);
        return;
    case LG_CODEC_HTTP2:
        start_codec(w, w->snapshot, l, chain, sock, 1, 0);
        return;
    case LG_CODEC_AUTO: {
        pending_conn_t *pc = calloc(1, sizeof(*pc));
        if (pc == NULL)
            lg_fatal("out of memory");
        pc->worker = w;
        pc->config = l;
        pc->snapshot = lg_snapshot_retain(w->snapshot);
        pc->sock = sock;
        sock->data = pc;
        h2o_socket_read_start(sock, on_preface);
        return;
    }
    }
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    lg_worker_listener_t *wl = listener->data;
    lg_worker_t *w = wl->worker;
    if (err != NULL || w->draining)
        return;
    for (int i = 0; i < MAX_ACCEPTS_PER_EVENT; ++i) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            break;
        accept_one(w, wl, sock);
    }
}

void lg_listener_start(lg_worker_t *w, lg_worker_listener_t *wl, const lg_listener_t *config, int fd)
{
    wl->worker = w;
    wl->config = config;
    wl->fd = fd;
    wl->sock = h2o_evloop_socket_create(w->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    wl->sock->data = wl;
    h2o_socket_read_start(wl->sock, on_accept);
}
