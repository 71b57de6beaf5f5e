/*
 * The HTTP filter interface, modelled on Envoy's StreamDecoderFilter / StreamEncoderFilter.
 *
 * A filter is one ops table (lg_http_filter_ops_t). Its config is built once per config snapshot on
 * the main thread from the protobuf-c message of its typed_config (create_config) and is immutable
 * afterwards, shared by every worker. Per request, the connection manager allocates the filter's
 * state from the stream's pool and calls the hooks: decode_* in the order of `http_filters`, encode_*
 * in reverse. A NULL hook passes through.
 *
 * A hook that stops iteration resumes the chain later through lg_filter_continue_decoding /
 * lg_filter_continue_encoding, or ends the request with lg_filter_send_local_reply. That is how an
 * asynchronous check (ext_authz, global rate limit, a JWKS fetch) waits without blocking the
 * worker's loop. No hook is called after on_destroy. Filters never see protobuf-c, YAML or codecs.
 */
#ifndef LG_FILTER_H
#define LG_FILTER_H

#include <protobuf-c/protobuf-c.h>

#include "error.h"
#include "http_message.h"

typedef struct st_lg_stream_t lg_stream_t;
typedef struct st_lg_filter_t lg_filter_t;
struct st_lg_worker_t;
struct st_lg_snapshot_t;

typedef enum en_lg_filter_headers_status_t {
    /* Pass the headers to the next filter. */
    LG_FILTER_HEADERS_CONTINUE,
    /* Hold the headers; body and trailers still flow to this filter, which buffers or drops them.
     * The chain resumes at the next filter on continue. */
    LG_FILTER_HEADERS_STOP_ITERATION,
    /* Hold the headers and buffer body and trailers in the stream until continue, up to the
     * buffer limit (413 / 500 past it, as Envoy). */
    LG_FILTER_HEADERS_STOP_ALL_BUFFER,
    /* As STOP_ALL_BUFFER, but past the limit apply backpressure instead of failing. */
    LG_FILTER_HEADERS_STOP_ALL_WATERMARK,
} lg_filter_headers_status_t;

typedef enum en_lg_filter_data_status_t {
    /* Pass this data on (and, after a STOP_ITERATION on headers, the headers first). */
    LG_FILTER_DATA_CONTINUE,
    /* Buffer this data in the stream and hold iteration; the buffer limit applies. */
    LG_FILTER_DATA_STOP_BUFFER,
    /* Buffer, applying backpressure past the limit instead of failing. */
    LG_FILTER_DATA_STOP_WATERMARK,
    /* Hold iteration without buffering: the filter took or dropped the data itself. */
    LG_FILTER_DATA_STOP_NO_BUFFER,
} lg_filter_data_status_t;

typedef enum en_lg_filter_trailers_status_t {
    LG_FILTER_TRAILERS_CONTINUE,
    /* Hold the trailers until continue. */
    LG_FILTER_TRAILERS_STOP,
} lg_filter_trailers_status_t;

/* Body bytes as a filter sees them; a filter may modify them in place or replace the pointer. */
typedef struct st_lg_data_t {
    const char *base;
    size_t len;
} lg_data_t;

/* What a filter's config is built in (main thread), as much of Envoy's FactoryContext as filters
 * need: the root of its stats and the local node's cluster. */
typedef struct st_lg_filter_config_ctx_t {
    const char *stat_prefix; /* "http.<connection manager stat_prefix>.", as Envoy roots filter stats */
    const char *local_cluster; /* node.cluster (--service-cluster), "" when not set; valid during the call */
} lg_filter_config_ctx_t;

typedef struct st_lg_http_filter_ops_t {
    const char *name;                                    /* "envoy.filters.http.router" */
    const ProtobufCMessageDescriptor *config_descriptor; /* its typed_config */
    /* typed_per_filter_config on routes, virtual hosts, route configs; NULL if none. */
    const ProtobufCMessageDescriptor *per_route_descriptor;
    int terminal; /* must be last (router) */

    /* Main thread. create_config returns the immutable config (NULL with err on failure). */
    void *(*create_config)(const ProtobufCMessage *msg, lg_error_t *err);
    void (*destroy_config)(void *config);
    /* Used instead of create_config when set: the same, with the build context. */
    void *(*create_config_ctx)(const ProtobufCMessage *msg, const lg_filter_config_ctx_t *ctx, lg_error_t *err);
    void *(*create_per_route_config)(const ProtobufCMessage *msg, lg_error_t *err);
    void (*destroy_per_route_config)(void *config);

    /* Worker thread, when the worker takes a snapshot holding this config: per-worker work that
     * should not wait for a request (a remote JWKS fetched ahead). May be NULL. */
    void (*on_worker_snapshot)(const void *config, struct st_lg_worker_t *w, struct st_lg_snapshot_t *snapshot);

    /* Worker thread, per stream. `state_size` bytes are zeroed and given as f->state. */
    size_t state_size;
    void (*on_create)(lg_filter_t *f);
    lg_filter_headers_status_t (*decode_headers)(lg_filter_t *f, lg_request_head_t *head, int end_stream);
    lg_filter_data_status_t (*decode_data)(lg_filter_t *f, lg_data_t *data, int end_stream);
    lg_filter_trailers_status_t (*decode_trailers)(lg_filter_t *f, lg_headers_t *trailers);
    lg_filter_headers_status_t (*encode_headers)(lg_filter_t *f, lg_response_head_t *head, int end_stream);
    lg_filter_data_status_t (*encode_data)(lg_filter_t *f, lg_data_t *data, int end_stream);
    lg_filter_trailers_status_t (*encode_trailers)(lg_filter_t *f, lg_headers_t *trailers);
    /* The stream ends (completed or reset). The filter cancels whatever it started. */
    void (*on_destroy)(lg_filter_t *f);
    /* The client stopped (1) or resumed (0) reading the response fast enough: a filter producing
     * the response (the router) pauses its source. */
    void (*on_downstream_watermark)(lg_filter_t *f, int above);
} lg_http_filter_ops_t;

struct st_lg_filter_t {
    const lg_http_filter_ops_t *ops;
    const char *name; /* as configured in http_filters (per-route config is keyed by it) */
    const void *config;
    lg_stream_t *stream;
    void *state;
    unsigned index; /* position in the chain */
    /* http_filters `disabled`: off unless the route enables it (FilterConfig disabled: false) */
    unsigned disabled_by_default : 1;
    /* off for this stream (decided on the route before the chain runs): no hook is called */
    unsigned skip : 1;
};

/* ---- callbacks a filter uses (implemented by the connection manager) -------------------- */

/** Resumes decoding after this filter stopped: the held headers/data/trailers go to the next filter. */
void lg_filter_continue_decoding(lg_filter_t *f);
/** Resumes encoding after this filter stopped. */
void lg_filter_continue_encoding(lg_filter_t *f);
/**
 * Ends the request with a locally generated response (Envoy's sendLocalReply): `status`, a body,
 * the response flag for the access log (e.g. "NR", "UF"; NULL for none) and the response code
 * details. For gRPC requests the reply is a trailers-only response with the matching grpc-status.
 * The stream is finished afterwards: the filter returns STOP from its hook.
 */
void lg_filter_send_local_reply(lg_filter_t *f, int status, const char *body, const char *flag,
                                const char *details);
/* A local reply with more than a status and a body. */
typedef struct st_lg_local_reply_t {
    int status;
    const char *body;            /* NULL: the status's default text */
    const char *flag;            /* response flag for the access log ("RL"), or NULL */
    const char *details;         /* response code details */
    const lg_headers_t *headers; /* added to the reply (copied); may be NULL */
    int grpc_status;             /* for gRPC requests; -1: mapped from status as Envoy does */
} lg_local_reply_t;

/** As lg_filter_send_local_reply, with headers and a gRPC status of the filter's choosing. */
void lg_filter_send_local_reply_ex(lg_filter_t *f, const lg_local_reply_t *reply);
/** Starts the response from the terminal filter (router): it runs the encode chain, then the codec. */
void lg_filter_encode_headers(lg_filter_t *f, lg_response_head_t *head, int end_stream);
void lg_filter_encode_data(lg_filter_t *f, const void *data, size_t len, int end_stream);
void lg_filter_encode_trailers(lg_filter_t *f, lg_headers_t *trailers);
/**
 * From inside this filter's encode_trailers only: sends `len` bytes (copied) through the filters
 * after it and the codec ahead of the trailers, as Envoy's addEncodedData does while trailers are
 * being encoded. A filter that ends its body at the trailers (a compressor's last block) uses it.
 */
void lg_filter_add_encoded_data(lg_filter_t *f, const void *data, size_t len);
/**
 * From inside this filter's encode_headers only, on a response whose head ends the stream: the
 * head (as the filter rewrote it) now carries `len` bytes of body (copied), which follow it through
 * the filters after this one and the codec; the hook then returns CONTINUE. When one of those
 * filters stops on the head, the body waits with it and goes on from that filter when it continues
 * (that filter does not see it as data). The cache filter turns a 304 from its revalidation into
 * the stored 200 this way.
 */
void lg_filter_set_encoded_body(lg_filter_t *f, const void *data, size_t len);
/** The same for the request: from inside decode_trailers, bytes go to the next filters first. */
void lg_filter_add_decoded_data(lg_filter_t *f, const void *data, size_t len);
/** Flow control from the terminal filter: stop (1) or resume (0) reading the request body. */
void lg_filter_read_disable(lg_filter_t *f, int disable);

h2o_mem_pool_t *lg_filter_pool(lg_filter_t *f);
/** The request head as it is now (filters may have changed it). */
lg_request_head_t *lg_filter_request(lg_filter_t *f);
/** The route chosen for the request (route_table.h), or NULL; cleared by lg_filter_clear_route. */
const struct st_lg_route_t *lg_filter_route(lg_filter_t *f);
void lg_filter_clear_route(lg_filter_t *f);
/** The cluster the route names (not a weighted or header-chosen one), in the stream's snapshot;
 * NULL when there is none. Filters that count per route target cluster (ratelimit, ext_authz). */
const struct st_lg_cluster_t *lg_filter_route_cluster(lg_filter_t *f);
/** The most specific typed_per_filter_config for this filter (route, then vhost, then route
 * config), as built by create_per_route_config, or NULL. */
const void *lg_filter_per_route_config(lg_filter_t *f);
/**
 * Every level's typed_per_filter_config for this filter, most specific first, into out[4];
 * returns how many. For filters that merge levels (cors, header_mutation), as Envoy's
 * getAllPerFilterConfig. Worker thread.
 */
size_t lg_filter_per_route_configs(lg_filter_t *f, const void *out[4]);
/**
 * Storage for `key` (a filter passes its config) that lives as long as the downstream connection:
 * `size` zeroed bytes on first use, the same block afterwards; freed with the connection. For
 * per-connection state such as local_ratelimit's per-connection buckets. Worker thread.
 */
void *lg_filter_connection_state(lg_filter_t *f, const void *key, size_t size);
/** The worker this stream runs on. */
struct st_lg_worker_t *lg_filter_worker(lg_filter_t *f);
/** The config snapshot the stream started under (clusters are looked up in it). */
const struct st_lg_snapshot_t *lg_filter_snapshot(lg_filter_t *f);
/** What is known about the request (addresses, flags, upstream); filters may add to it. */
struct st_lg_stream_info_t *lg_filter_stream_info(lg_filter_t *f);

#endif
