/*
 * Config snapshots (DESIGN §4): everything a worker needs to serve, compiled on the main thread from
 * Envoy messages into plain C and then never changed. Workers hold a reference while they use one;
 * each request holds the snapshot it started under, so a config change never disturbs requests in
 * flight. The reference count is a C11 atomic; the last release frees the snapshot.
 *
 * What is here: listeners (addresses, filter chains with their TLS contexts and HTTP connection
 * manager configs: limits, timeouts, route tables, HTTP filter chains), and clusters (hosts, load
 * balancing policy, protocol, timeouts, TLS). Not here: mutable per-worker state (connection pools,
 * LB cursors), which lives in the worker and is found by cluster index.
 */
#ifndef LG_SNAPSHOT_H
#define LG_SNAPSHOT_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "error.h"
#include "filter.h"
#include "srcmap.h"

struct st_lg_route_table_t;
struct st_lg_hcm_stats_t;
struct st_lg_cluster_stats_t;
struct st_lg_tls_server_ctx_t;
struct st_lg_tls_client_ctx_t;
struct st_lg_tls_server_selector_t;

typedef enum en_lg_codec_type_t {
    LG_CODEC_AUTO,
    LG_CODEC_HTTP1,
    LG_CODEC_HTTP2,
} lg_codec_type_t;

typedef enum en_lg_upstream_protocol_t {
    LG_UPSTREAM_HTTP1,
    LG_UPSTREAM_HTTP2,
    LG_UPSTREAM_USE_DOWNSTREAM, /* use_downstream_protocol_config */
} lg_upstream_protocol_t;

typedef enum en_lg_lb_policy_t {
    LG_LB_ROUND_ROBIN,
    LG_LB_LEAST_REQUEST,
    LG_LB_RANDOM,
    LG_LB_RING_HASH,
    LG_LB_MAGLEV,
} lg_lb_policy_t;

typedef enum en_lg_hash_function_t {
    LG_HASH_FUNCTION_XX_HASH,
    LG_HASH_FUNCTION_MURMUR_HASH_2,
} lg_hash_function_t;

/* The load balancer's settings, Envoy's defaults applied (Cluster.*_lb_config, common_lb_config). */
typedef struct st_lg_lb_config_t {
    uint32_t choice_count;         /* LEAST_REQUEST: 2 */
    double active_request_bias;    /* LEAST_REQUEST: 1.0 */
    uint64_t minimum_ring_size;    /* RING_HASH: 1024 */
    uint64_t maximum_ring_size;    /* RING_HASH: 8M */
    lg_hash_function_t hash_function;
    uint64_t table_size;           /* MAGLEV: 65537, prime */
    int use_hostname_for_hashing;  /* consistent_hashing_lb_config */
} lg_lb_config_t;

typedef enum en_lg_underscore_action_t {
    LG_UNDERSCORES_ALLOW,
    LG_UNDERSCORES_REJECT_REQUEST,
    LG_UNDERSCORES_DROP_HEADER,
} lg_underscore_action_t;

typedef struct st_lg_host_t {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *address_string; /* "127.0.0.1:8080" for logs, stats and x-envoy-upstream-host */
    char *hostname;       /* endpoint hostname for auto_host_rewrite, or NULL */
    uint32_t weight;
    unsigned index; /* within its cluster */
} lg_host_t;

typedef struct st_lg_cluster_t {
    char *name;
    unsigned index; /* within the snapshot: per-worker state is found by it */
    /* A hash of the Cluster message (not its EDS or DNS hosts): equal in two snapshots, the
     * settings are the same and workers keep the connection pools of hosts that stay. */
    uint64_t config_hash;
    lg_upstream_protocol_t protocol;
    lg_lb_policy_t lb_policy;
    uint64_t connect_timeout_ms; /* 5000 */
    uint64_t idle_timeout_ms;    /* upstream connection idle timeout: 3600000 */
    uint32_t max_requests_per_connection; /* 0 = unlimited */
    uint32_t per_connection_buffer_limit; /* 1 MiB */
    struct st_lg_tls_client_ctx_t *tls;   /* NULL for plaintext */
    char *sni;
    /* HTTP/2 client settings */
    uint32_t h2_initial_stream_window, h2_initial_connection_window, h2_max_concurrent_streams;
    lg_host_t **hosts;
    size_t n_hosts;
    /* Of n_hosts, how many the endpoint's health_status calls HEALTHY or UNKNOWN, and DEGRADED
     * (membership_healthy / _degraded in Envoy); legate has no active health checking yet. */
    size_t n_healthy, n_degraded;
    const struct st_lg_cluster_stats_t *stats;
    uint32_t total_weight;
    lg_lb_config_t lb;
    struct st_lg_lb_table_t *lb_table; /* RING_HASH / MAGLEV: built with the snapshot, shared by workers */
    struct {
        uint32_t max_connections, max_pending_requests, max_requests, max_retries;
    } circuit_breakers;
} lg_cluster_t;

/* One HTTP filter in a connection manager's chain, with its immutable config. */
typedef struct st_lg_filter_factory_entry_t {
    const lg_http_filter_ops_t *ops;
    char *name; /* as configured (per-route config lookups use it) */
    void *config;
    int disabled; /* `disabled: true`: on only where a route enables it */
} lg_filter_factory_entry_t;

typedef struct st_lg_hcm_config_t {
    char *stat_prefix;
    const struct st_lg_hcm_stats_t *stats;
    lg_codec_type_t codec_type;
    struct st_lg_route_table_t *route_table; /* inline route_config; RDS comes with xDS */
    char *rds_name;
    lg_filter_factory_entry_t *filters;
    size_t n_filters;
    /* limits */
    uint32_t max_request_headers_kb;   /* 60 */
    uint32_t max_headers_count;        /* 100 */
    lg_underscore_action_t headers_with_underscores_action;
    /* timeouts in ms; 0 = disabled */
    uint64_t stream_idle_timeout_ms;     /* 300000 */
    uint64_t request_timeout_ms;         /* 0 */
    uint64_t request_headers_timeout_ms; /* 0 */
    uint64_t idle_timeout_ms;            /* connection idle: 3600000 */
    uint64_t max_connection_duration_ms; /* 0 */
    uint64_t drain_timeout_ms;           /* 5000 */
    uint64_t delayed_close_timeout_ms;   /* 1000 */
    /* headers */
    char *server_name;                   /* "envoy" unless server_name is set */
    int server_header_transformation;    /* 0 OVERWRITE, 1 APPEND_IF_ABSENT, 2 PASS_THROUGH */
    int use_remote_address;
    uint32_t xff_num_trusted_hops;
    int skip_xff_append;
    int generate_request_id;             /* true */
    int preserve_external_request_id;
    int always_set_request_id_in_response; /* the request's x-request-id copied into the response */
    int normalize_path, merge_slashes;
    int path_with_escaped_slashes_action; /* Envoy's enum values */
    int strip_any_host_port, strip_matching_host_port;
    /* HTTP/2 downstream */
    uint32_t h2_max_concurrent_streams, h2_initial_stream_window, h2_initial_connection_window;
    uint32_t max_requests_per_connection;
    /* HTTP/1.1 downstream (http_protocol_options) */
    int accept_http_10;
    int allow_absolute_url;
    struct st_lg_access_log_t **access_logs;
    size_t n_access_logs;
} lg_hcm_config_t;

typedef struct st_lg_filter_chain_t {
    char *name;
    char **server_names;
    size_t n_server_names;
    struct st_lg_tls_server_ctx_t *tls; /* NULL: plaintext */
    lg_hcm_config_t *hcm;
} lg_filter_chain_t;

typedef struct st_lg_listener_t {
    char *name;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char *address_string; /* "0.0.0.0_10000" as Envoy's listener stats name it */
    lg_filter_chain_t **chains;
    size_t n_chains;
    lg_filter_chain_t *default_chain; /* may be NULL */
    struct st_lg_tls_server_selector_t *tls_selector; /* when any chain is TLS */
    uint32_t per_connection_buffer_limit;
    uint32_t stat_cx_total, stat_cx_active; /* listener.<address_string>.downstream_cx_{total,active} ids */
    struct st_lg_access_log_t **access_logs; /* listener-level: one line per downstream connection */
    size_t n_access_logs;
} lg_listener_t;

typedef struct st_lg_snapshot_t {
    atomic_size_t refcnt;
    uint64_t version;
    lg_listener_t **listeners;
    size_t n_listeners;
    lg_cluster_t **clusters;
    size_t n_clusters;
} lg_snapshot_t;

/**
 * Builds a snapshot from the static resources of a validated bootstrap (main thread). `map` (may be
 * NULL) supplies lines for errors. Returns the snapshot with one reference, or NULL with err set.
 */
struct st_lg_bootstrap_t;
lg_snapshot_t *lg_snapshot_build(const struct st_lg_bootstrap_t *bootstrap, lg_error_t *err);
/** As lg_snapshot_build; with validate_only, HTTP filters legate has not built yet are skipped
 * instead of refused (--mode validate checks configs for features still to come). */
lg_snapshot_t *lg_snapshot_build_ex(const struct st_lg_bootstrap_t *bootstrap, int validate_only, lg_error_t *err);

/*
 * What a snapshot is built from: listener and cluster messages from any source (the bootstrap's
 * static_resources, or xDS), and lookups for the RouteConfigurations (RDS) and
 * ClusterLoadAssignments (EDS) they name; a NULL lookup or result leaves the listener without a
 * route table (404 NR) or the cluster without hosts (503 UH). Paths prefix error messages.
 */
struct Envoy__Config__Listener__V3__Listener;
struct Envoy__Config__Cluster__V3__Cluster;
struct Envoy__Config__Route__V3__RouteConfiguration;
struct Envoy__Config__Endpoint__V3__ClusterLoadAssignment;
struct st_lg_dns_addrs_t;
typedef struct st_lg_snapshot_sources_t {
    const struct Envoy__Config__Listener__V3__Listener *const *listeners;
    size_t n_listeners;
    const struct Envoy__Config__Cluster__V3__Cluster *const *clusters;
    size_t n_clusters;
    const char *listeners_path, *clusters_path;
    const struct Envoy__Config__Route__V3__RouteConfiguration *(*find_route)(void *ctx, const char *name);
    const struct Envoy__Config__Endpoint__V3__ClusterLoadAssignment *(*find_endpoints)(void *ctx, const char *name);
    void *ctx;
    /* The last good addresses (ports set) DNS discovery has for an endpoint hostname of a DNS
     * cluster (lg_dns_discovery_find), or NULL: without answers a DNS cluster has no hosts. */
    const struct st_lg_dns_addrs_t *(*find_addresses)(void *dns_ctx, const char *cluster, const char *hostname,
                                                       uint32_t port);
    void *dns_ctx;
} lg_snapshot_sources_t;

/** The bootstrap's static_resources as sources (no lookups set). */
void lg_snapshot_static_sources(const struct st_lg_bootstrap_t *bootstrap, lg_snapshot_sources_t *src);

/** Builds a snapshot from `src` (main thread); the bootstrap supplies lines for errors and context. */
lg_snapshot_t *lg_snapshot_build_from(const struct st_lg_bootstrap_t *bootstrap, const lg_snapshot_sources_t *src,
                                      int validate_only, lg_error_t *err);

/* A built typed_per_filter_config entry: the filter it is for and the config it made. */
typedef struct st_lg_filter_route_config_t {
    const lg_http_filter_ops_t *ops;
    void *config;
} lg_filter_route_config_t;

/** Finds a cluster by name (binary search over the sorted array); NULL when none. Any thread. */
const lg_cluster_t *lg_snapshot_find_cluster(const lg_snapshot_t *s, const char *name, size_t len);

static inline lg_snapshot_t *lg_snapshot_retain(lg_snapshot_t *s)
{
    atomic_fetch_add_explicit(&s->refcnt, 1, memory_order_relaxed);
    return s;
}

/** Drops a reference; the last one frees the snapshot. Any thread. */
void lg_snapshot_release(lg_snapshot_t *s);

#endif
