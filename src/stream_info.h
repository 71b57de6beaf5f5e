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

/* Envoy's response flags, in Envoy's order, with their short names (%RESPONSE_FLAGS%). */
#define LG_RESPONSE_FLAGS(X)                                                                       \
    X(FAILED_LOCAL_HEALTH_CHECK, "LH")                                                             \
    X(NO_HEALTHY_UPSTREAM, "UH")                                                                   \
    X(UPSTREAM_REQUEST_TIMEOUT, "UT")                                                              \
    X(LOCAL_RESET, "LR")                                                                           \
    X(UPSTREAM_REMOTE_RESET, "UR")                                                                 \
    X(UPSTREAM_CONNECTION_FAILURE, "UF")                                                           \
    X(UPSTREAM_CONNECTION_TERMINATION, "UC")                                                       \
    X(UPSTREAM_OVERFLOW, "UO")                                                                     \
    X(NO_ROUTE_FOUND, "NR")                                                                        \
    X(DELAY_INJECTED, "DI")                                                                        \
    X(FAULT_INJECTED, "FI")                                                                        \
    X(RATE_LIMITED, "RL")                                                                          \
    X(UNAUTHORIZED_EXTERNAL_SERVICE, "UAEX")                                                       \
    X(RATELIMIT_SERVICE_ERROR, "RLSE")                                                             \
    X(DOWNSTREAM_CONNECTION_TERMINATION, "DC")                                                     \
    X(UPSTREAM_RETRY_LIMIT_EXCEEDED, "URX")                                                        \
    X(STREAM_IDLE_TIMEOUT, "SI")                                                                   \
    X(INVALID_ENVOY_REQUEST_HEADERS, "IH")                                                         \
    X(DOWNSTREAM_PROTOCOL_ERROR, "DPE")                                                            \
    X(UPSTREAM_MAX_STREAM_DURATION_REACHED, "UMSDR")                                               \
    X(RESPONSE_FROM_CACHE_FILTER, "RFCF")                                                          \
    X(NO_FILTER_CONFIG_FOUND, "NFCF")                                                              \
    X(DURATION_TIMEOUT, "DT")                                                                      \
    X(UPSTREAM_PROTOCOL_ERROR, "UPE")                                                              \
    X(NO_CLUSTER_FOUND, "NC")                                                                      \
    X(OVERLOAD_MANAGER, "OM")

typedef enum en_lg_response_flag_t {
#define LG_X(name, s) LG_RF_##name,
    LG_RESPONSE_FLAGS(LG_X)
#undef LG_X
        LG_RF__COUNT
} lg_response_flag_t;

/** The short name of a flag ("UF"). */
const char *lg_response_flag_name(lg_response_flag_t f);
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
    uint64_t upstream_request_start_ns, upstream_response_start_ns;
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
