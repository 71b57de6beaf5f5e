/*
 * The HTTP connection manager (Envoy's HCM): one lg_hcm_conn_t per downstream connection and one
 * lg_stream_t per request, between a downstream codec (codec.h) and the HTTP filter chain
 * (filter.h). It owns a stream's memory pool and lifetime, applies the connection manager's request
 * rules (x-request-id, x-forwarded-for/-proto, internal header stripping, limits, timeouts), runs the
 * filter chain in both directions with Envoy's stop/continue semantics, and produces every local
 * reply (one function, Envoy's response flags and gRPC mapping). Worker thread only.
 */
#ifndef LG_CONN_MANAGER_H
#define LG_CONN_MANAGER_H

#include <stddef.h>

#include <h2o/linklist.h>
#include <h2o/socket.h>
#include <h2o/timeout.h>

#include "codec.h"
#include "filter.h"
#include "snapshot.h"
#include "stats.h"
#include "stream_info.h"

struct st_lg_worker_t;

/* Stats of one connection manager (http.<stat_prefix>.*), resolved when the snapshot is built. */
typedef struct st_lg_hcm_stats_t {
    lg_stat_id_t downstream_cx_total, downstream_cx_active, downstream_cx_http1_total,
        downstream_cx_http2_total, downstream_cx_ssl_total, downstream_rq_total, downstream_rq_active,
        downstream_rq_http1_total, downstream_rq_http2_total, downstream_rq_1xx, downstream_rq_2xx,
        downstream_rq_3xx, downstream_rq_4xx, downstream_rq_5xx, downstream_rq_completed,
        downstream_rq_timeout, downstream_rq_idle_timeout, downstream_rq_rx_reset,
        downstream_rq_tx_reset, downstream_cx_protocol_error, no_route, rq_direct_response,
        downstream_rq_too_large, downstream_cx_max_duration_reached,
        downstream_rq_time; /* histogram (ms) */
} lg_hcm_stats_t;

/* Storage a filter keeps per downstream connection (lg_filter_connection_state). */
typedef struct st_lg_hcm_filter_state_t {
    struct st_lg_hcm_filter_state_t *next;
    const void *key;
    _Alignas(max_align_t) unsigned char data[];
} lg_hcm_filter_state_t;

struct st_lg_hcm_conn_t {
    struct st_lg_worker_t *worker;
    lg_snapshot_t *snapshot; /* referenced for the connection's life */
    const lg_listener_t *listener;
    const lg_filter_chain_t *chain;
    const lg_hcm_config_t *config;
    h2o_socket_t *sock;
    lg_http_version_t protocol;
    struct sockaddr_storage remote, local;
    int tls;
    h2o_linklist_t streams;
    size_t n_streams;
    /* The codec: shutdown closes gracefully (drain), close at once (exit). */
    void *codec;
    void (*codec_shutdown)(void *codec);
    void (*codec_close)(void *codec);
    h2o_linklist_t worker_link; /* in lg_worker_t.connections */
    h2o_timeout_entry_t duration_timer; /* max_connection_duration */
    uint64_t start_ms, start_mono_ns;   /* for the listener's access log */
    lg_hcm_filter_state_t *filter_states; /* freed with the connection */
    int closed;
};

struct st_lg_stream_t {
    lg_hcm_conn_t *conn;
    lg_server_stream_t *codec;
    h2o_linklist_t link;
    h2o_mem_pool_t pool;
    lg_request_head_t *request;
    lg_response_head_t *response;
    lg_stream_info_t info;
    lg_filter_t *filters;
    size_t n_filters;
    /* route cache */
    const struct st_lg_route_t *route;
    const struct st_lg_vhost_t *vhost;
    const struct st_lg_weighted_cluster_t *weighted_cluster; /* chosen by the router */
    int route_resolved;
    /* decode (request) iteration */
    size_t dec_stop;         /* index of the filter that stopped, SIZE_MAX when iterating */
    int dec_stop_all;        /* STOP_ALL_*: the stopped filter sees no data until continue */
    int dec_headers_done;    /* headers passed the whole chain */
    h2o_buffer_t *dec_buf;   /* data held while stopped */
    int dec_end_stream;      /* the request is complete (last data or trailers arrived) */
    lg_headers_t *dec_trailers;
    size_t dec_trailers_stop;
    /* encode (response) iteration: indexes count down */
    size_t enc_stop;
    int enc_stop_all, enc_headers_done;
    h2o_buffer_t *enc_buf;
    size_t enc_body_from;    /* lg_filter_set_encoded_body: enc_buf goes on from this filter */
    int enc_end_stream;
    int enc_data_pending; /* the head is resumed by body bytes that follow it: not the end yet */
    lg_headers_t *enc_trailers;
    /* lifecycle */
    int request_complete, response_started, response_complete, local_reply_sent, destroyed;
    int in_callback; /* re-entrancy guard for destroy */
    int codec_reset; /* the codec stream was reset: only release may follow */
    h2o_timeout_entry_t idle_timer, request_timer;
    uint64_t buffer_limit;
    const lg_hcm_stats_t *stats;
};

/**
 * Creates the connection state for an accepted socket on `worker` with the chosen filter chain.
 * The caller then creates the codec, which owns the socket, and records it in conn->codec.
 */
lg_hcm_conn_t *lg_hcm_conn_new(struct st_lg_worker_t *worker, lg_snapshot_t *snapshot,
                               const lg_listener_t *listener, const lg_filter_chain_t *chain,
                               h2o_socket_t *sock, lg_http_version_t protocol, int tls);

/** Graceful shutdown for drain: the codec stops taking requests and closes when idle. */
void lg_hcm_conn_shutdown(lg_hcm_conn_t *conn);

/** Stats of an HCM config (registered on first use; main thread). */
const lg_hcm_stats_t *lg_hcm_stats_for(const char *stat_prefix);

/**
 * Sends a local reply on a stream (used by lg_filter_send_local_reply and by the manager itself).
 * `flag` is a response flag short name or NULL.
 */
void lg_stream_send_local_reply(lg_stream_t *s, int status, const char *body, const char *flag,
                                const char *details);

#endif
