/*
 * What is known about one request as it runs: addresses, protocol, timing, the upstream chosen,
 * Envoy's response flags and details. The connection manager fills it; the router adds the
 * upstream side; access logs, header substitutions (%DOWNSTREAM_REMOTE_ADDRESS%...) and stats read
 * it. Lives in the stream; worker thread only.
 */
#ifndef LG_STREAM_INFO_H
#define LG_STREAM_INFO_H

#include <stdint.h>
#include <sys/socket.h>

#include "http_message.h"

/* Envoy's response flags, in Envoy's order, with their short names (%RESPONSE_FLAGS%) and long
 * names (%RESPONSE_FLAGS_LONG%). */
#define LG_RESPONSE_FLAGS(X)                                                                       \
    X(FAILED_LOCAL_HEALTH_CHECK, "LH", "FailedLocalHealthCheck")                                   \
    X(NO_HEALTHY_UPSTREAM, "UH", "NoHealthyUpstream")                                              \
    X(UPSTREAM_REQUEST_TIMEOUT, "UT", "UpstreamRequestTimeout")                                    \
    X(LOCAL_RESET, "LR", "LocalReset")                                                             \
    X(UPSTREAM_REMOTE_RESET, "UR", "UpstreamRemoteReset")                                          \
    X(UPSTREAM_CONNECTION_FAILURE, "UF", "UpstreamConnectionFailure")                              \
    X(UPSTREAM_CONNECTION_TERMINATION, "UC", "UpstreamConnectionTermination")                      \
    X(UPSTREAM_OVERFLOW, "UO", "UpstreamOverflow")                                                 \
    X(NO_ROUTE_FOUND, "NR", "NoRouteFound")                                                        \
    X(DELAY_INJECTED, "DI", "DelayInjected")                                                       \
    X(FAULT_INJECTED, "FI", "FaultInjected")                                                       \
    X(RATE_LIMITED, "RL", "RateLimited")                                                           \
    X(UNAUTHORIZED_EXTERNAL_SERVICE, "UAEX", "UnauthorizedExternalService")                        \
    X(RATELIMIT_SERVICE_ERROR, "RLSE", "RateLimitServiceError")                                    \
    X(DOWNSTREAM_CONNECTION_TERMINATION, "DC", "DownstreamConnectionTermination")                  \
    X(UPSTREAM_RETRY_LIMIT_EXCEEDED, "URX", "UpstreamRetryLimitExceeded")                          \
    X(STREAM_IDLE_TIMEOUT, "SI", "StreamIdleTimeout")                                              \
    X(INVALID_ENVOY_REQUEST_HEADERS, "IH", "InvalidEnvoyRequestHeaders")                           \
    X(DOWNSTREAM_PROTOCOL_ERROR, "DPE", "DownstreamProtocolError")                                 \
    X(UPSTREAM_MAX_STREAM_DURATION_REACHED, "UMSDR", "UpstreamMaxStreamDurationReached")           \
    X(RESPONSE_FROM_CACHE_FILTER, "RFCF", "ResponseFromCacheFilter")                               \
    X(NO_FILTER_CONFIG_FOUND, "NFCF", "NoFilterConfigFound")                                       \
    X(DURATION_TIMEOUT, "DT", "DurationTimeout")                                                   \
    X(UPSTREAM_PROTOCOL_ERROR, "UPE", "UpstreamProtocolError")                                     \
    X(NO_CLUSTER_FOUND, "NC", "NoClusterFound")                                                    \
    X(OVERLOAD_MANAGER, "OM", "OverloadManager")

typedef enum en_lg_response_flag_t {
#define LG_X(name, s, l) LG_RF_##name,
    LG_RESPONSE_FLAGS(LG_X)
#undef LG_X
        LG_RF__COUNT
} lg_response_flag_t;

/** The short name of a flag ("UF"). */
const char *lg_response_flag_name(lg_response_flag_t f);
/** The long name of a flag ("UpstreamConnectionFailure"). */
const char *lg_response_flag_long_name(lg_response_flag_t f);
/** Looks a short name up; -1 when unknown. */
int lg_response_flag_parse(const char *s);

typedef struct st_lg_stream_info_t {
    struct sockaddr_storage downstream_remote, downstream_local;
    int downstream_tls;           /* the connection is TLS */
    h2o_iovec_t requested_server_name; /* SNI */
    lg_http_version_t protocol;
    uint64_t start_ms;            /* wall clock, ms since the epoch */
    uint64_t start_mono_ns;       /* monotonic, for %DURATION% */
    h2o_iovec_t request_id;       /* x-request-id */
    uint32_t response_flags;      /* bit set of lg_response_flag_t */
    const char *response_code_details;
    int response_code;
    uint64_t bytes_received, bytes_sent;
    const char *route_name;
    const char *upstream_cluster;
    struct sockaddr_storage upstream_host; /* ss_family 0 when none */
    uint64_t upstream_request_start_ns, upstream_response_start_ns; /* monotonic; response: first byte */
    /* Read by access logs; every member is optional (0 / NULL / family 0 = unknown, printed "-"). */
    uint64_t request_end_ns;  /* monotonic: last request byte received (%REQUEST_DURATION%) */
    uint64_t end_ns;          /* monotonic: last response byte sent; 0 = the time of logging */
    struct sockaddr_storage upstream_local;       /* %UPSTREAM_LOCAL_ADDRESS% */
    const char *upstream_transport_failure_reason; /* e.g. TLS verification failure text */
    const char *downstream_peer_uri_san;          /* TLS client certificate URI SANs, ","-joined */
    uint64_t connection_id;   /* downstream connection id (%CONNECTION_ID%) */
    uint32_t attempt_count;   /* upstream attempts (%UPSTREAM_REQUEST_ATTEMPT_COUNT%) */
    int health_check;         /* the request was a health check (not_health_check_filter) */
} lg_stream_info_t;

static inline void lg_stream_info_set_flag(lg_stream_info_t *si, lg_response_flag_t f)
{
    si->response_flags |= 1u << f;
}

/** Writes the flags as Envoy prints them ("UF,URX", "-" for none) into buf; returns buf. */
char *lg_stream_info_flags_string(const lg_stream_info_t *si, char *buf, size_t len);
/** "1.2.3.4:5678" / "[::1]:80"; "-" for an empty address. */
char *lg_sockaddr_to_string(const struct sockaddr_storage *ss, char *buf, size_t len, int with_port);

#endif
