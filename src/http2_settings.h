/*
 * The knobs of legate's HTTP/2 codecs, downstream (http2_server.c) and upstream (http2_client.c),
 * and the http2.* stats they count. The connection manager and the cluster manager translate
 * Envoy's http2_protocol_options (and the flood and premature-reset limits of
 * research/reliability-anchors.md a.1-a.2) into these plain structs; the codecs only honour them.
 *
 * Not for: parsing Envoy config (that happens where snapshots are built).
 */
#ifndef LG_HTTP2_SETTINGS_H
#define LG_HTTP2_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#include <h2o/timeout.h>

#include "stats.h"

/**
 * Downstream (server) connection settings, copied by each connection. The first five fields and
 * their client counterparts treat 0 as "not configured" (the default), since 0 is never valid.
 */
typedef struct st_lg_http2_settings_t {
    uint32_t max_concurrent_streams;         /* SETTINGS_MAX_CONCURRENT_STREAMS (100) */
    uint32_t initial_stream_window_size;     /* SETTINGS_INITIAL_WINDOW_SIZE (256 KiB) */
    uint32_t initial_connection_window_size; /* connection receive window (1 MiB) */
    uint32_t max_request_headers_kb;         /* decoded name+value bytes of a header block (60) */
    uint32_t max_headers_count;              /* fields in a header block, pseudo-headers included (100) */
    /*
     * A request that breaks HTTP/2 messaging rules (RFC 9113 §8: bad or connection-specific
     * fields, pseudo-header misuse, content-length mismatch): 0 = connection error, GOAWAY
     * PROTOCOL_ERROR (Envoy's default); 1 = RST_STREAM PROTOCOL_ERROR only
     * (override_stream_error_on_invalid_http_message).
     */
    int stream_error_on_invalid_http_message;
    /* Flood limits (Envoy's http2_protocol_options names); exceeding one ends the connection.
     * 0 for the two outbound ones means unlimited / nghttp2's own 1000. */
    uint32_t max_outbound_frames;                                 /* frames queued, not written (10000) */
    uint32_t max_outbound_control_frames;                         /* PING/SETTINGS acks queued (1000) */
    uint32_t max_consecutive_inbound_frames_with_empty_payload;   /* (1) */
    uint32_t max_inbound_priority_frames_per_stream;              /* (100) */
    uint32_t max_inbound_window_update_frames_per_data_frame_sent; /* (10) */
    /*
     * Rapid-reset guard, counted by outcome as Envoy's HCM does: a stream is premature when it
     * closes within premature_reset_min_stream_lifetime_ms without a response head sent. Once
     * premature_reset_total_stream_count streams closed, >= 50% premature ends the connection;
     * before that, premature_reset_total_stream_count / 2 premature streams do. The end is a
     * GOAWAY ENHANCE_YOUR_CALM. 0 disables.
     */
    uint32_t premature_reset_total_stream_count;   /* (500) */
    uint32_t premature_reset_min_stream_lifetime_ms; /* (1000) */
    /* Response bytes queued per stream: above high -> lg_hcm_on_watermark(1), at low -> (0). */
    size_t stream_buffer_high_watermark; /* (1 MiB) */
    size_t stream_buffer_low_watermark;  /* (256 KiB) */
    /*
     * Required: a 0 ms timeout on the socket's loop (lg_worker_timeout(w, 0)) that outlives every
     * connection. Events that arise inside an ops call are delivered from it. (NULL by default.)
     */
    h2o_timeout_t *zero_timeout;
    /*
     * Optional, Envoy's drain_timeout: a graceful shutdown first sends the GOAWAY "shutdown notice"
     * (last stream id 2^31-1: streams in flight on the wire are still taken), and only when this
     * fires the final GOAWAY with the last processed stream. NULL: the final GOAWAY at once.
     */
    h2o_timeout_t *drain_timeout;
    /* Optional, Envoy's delayed_close_timeout: how long a closing plaintext connection keeps
     * reading (and dropping) after its FIN, so that an RST does not overtake the last frames. */
    h2o_timeout_t *delayed_close_timeout;
} lg_http2_settings_t;

/** Fills the defaults written next to each field. */
void lg_http2_settings_init(lg_http2_settings_t *s);

/** Upstream (client) connection settings. Copied by the connection. */
typedef struct st_lg_http2_client_settings_t {
    uint32_t max_concurrent_streams;         /* our own cap; the server's SETTINGS may lower it (1024) */
    uint32_t initial_stream_window_size;     /* SETTINGS_INITIAL_WINDOW_SIZE (1 MiB) */
    uint32_t initial_connection_window_size; /* connection receive window (16 MiB) */
    uint32_t max_response_headers_kb;        /* (60) */
    uint32_t max_headers_count;              /* (100) */
    uint32_t max_outbound_control_frames;    /* PING/SETTINGS acks queued (1000) */
    uint32_t max_consecutive_inbound_frames_with_empty_payload; /* (1) */
    /* Request bytes queued per stream: above high -> on_watermark(1), at low -> (0). */
    size_t stream_buffer_high_watermark; /* (1 MiB) */
    size_t stream_buffer_low_watermark;  /* (256 KiB) */
    h2o_timeout_t *zero_timeout;         /* required, as for lg_http2_settings_t */
} lg_http2_client_settings_t;

/** Fills the defaults written next to each field. */
void lg_http2_client_settings_init(lg_http2_client_settings_t *s);

/*
 * Counters both codecs keep, with Envoy's names: downstream Envoy shows them as `http2.<name>`,
 * upstream as `cluster.<name>.http2.<name>`. The last one is Envoy's HCM counter
 * `http.<stat_prefix>.downstream_rq_too_many_premature_resets` (server side only).
 */
#define LG_HTTP2_STATS(X)                                                                          \
    X(header_overflow)                                                                             \
    X(inbound_empty_frames_flood)                                                                  \
    X(inbound_priority_frames_flood)                                                               \
    X(inbound_window_update_frames_flood)                                                          \
    X(outbound_control_flood)                                                                      \
    X(outbound_flood)                                                                              \
    X(rx_messaging_error)                                                                          \
    X(rx_reset)                                                                                    \
    X(trailers)                                                                                    \
    X(tx_reset)                                                                                    \
    X(goaway_sent)                                                                                 \
    X(downstream_rq_too_many_premature_resets)

/** Where a connection counts: ids registered by the caller and the worker's cell block. */
typedef struct st_lg_http2_stats_t {
    lg_stats_cells_t *cells;
#define LG_X(name) lg_stat_id_t name;
    LG_HTTP2_STATS(LG_X)
#undef LG_X
} lg_http2_stats_t;

#endif
