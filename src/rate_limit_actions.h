/*
 * Route and virtual host `rate_limits`: each RateLimit is a list of actions, and a request makes
 * one descriptor of it (a list of key/value entries) when every action yields its entry. The local
 * and the global rate-limit filters both start from these descriptors: local_ratelimit matches
 * them against its configured descriptors, the global filter sends them to the rate-limit service.
 *
 * Envoy's rules: an action that yields nothing drops the whole descriptor, except request_headers
 * with skip_if_absent (only that entry is left out); header_value_match and
 * query_parameter_value_match yield their entry when the match result equals expect_match (default
 * true); a RateLimit is only used by filters of the same `stage` (default 0). Default keys:
 * "source_cluster", "destination_cluster", "remote_address", "masked_remote_address",
 * "generic_key", "header_match", "query_match".
 *
 * Built on the main thread (immutable afterwards, shared by workers); evaluated on workers into
 * the stream's pool. Not for: the rate-limit service protocol or token buckets (the filters).
 */
#ifndef LG_RATE_LIMIT_ACTIONS_H
#define LG_RATE_LIMIT_ACTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "envoy/config/route/v3/route_components.pb-c.h"
#include "error.h"
#include "http_message.h"
#include "path.h"

typedef struct st_lg_rate_limits_t lg_rate_limits_t;

typedef struct st_lg_rl_entry_t {
    h2o_iovec_t key, value;
} lg_rl_entry_t;

typedef struct st_lg_rl_descriptor_t {
    lg_rl_entry_t *entries;
    size_t n_entries;
} lg_rl_descriptor_t;

/* What the actions read from a request. */
typedef struct st_lg_rl_input_t {
    const lg_request_head_t *request;
    const struct sockaddr_storage *remote; /* the downstream peer; may be NULL */
    h2o_iovec_t destination_cluster;       /* the route's cluster; empty when none */
} lg_rl_input_t;

/**
 * Compiles `n` RateLimit messages. `local_cluster` is the node's cluster (source_cluster's value;
 * may be NULL). Returns NULL with err filled when an action is not supported (metadata, extension)
 * or a matcher does not compile; errors name the element ("[1].actions[0]: ..."). Main thread.
 */
lg_rate_limits_t *lg_rate_limits_build(Envoy__Config__Route__V3__RateLimit *const *limits, size_t n,
                                       const char *local_cluster, lg_error_t *err);
void lg_rate_limits_free(lg_rate_limits_t *rl);

/**
 * Appends to *out (an array grown in `pool`, *n_out its length) the descriptors the RateLimits of
 * `stage` make for this request. `rl` may be NULL. Worker thread.
 */
void lg_rate_limits_populate(const lg_rate_limits_t *rl, uint32_t stage, const lg_rl_input_t *in,
                             h2o_mem_pool_t *pool, lg_rl_descriptor_t **out, size_t *n_out);

#endif
