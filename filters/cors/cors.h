/*
 * envoy.filters.http.cors: what config.c (CorsPolicy -> lg_cors_policy_t), policy.c (the decisions,
 * pure and unit-tested) and filter.c (the stream hooks) share. See filter.c for the behaviour.
 */
#ifndef LG_FILTERS_CORS_H
#define LG_FILTERS_CORS_H

#include <stdint.h>

#include <h2o/string_.h>

#include "filter.h"
#include "route_table.h"

extern const lg_http_filter_ops_t lg_cors_ops;

/*
 * One level's envoy.extensions.filters.http.cors.v3.CorsPolicy, compiled. Immutable, shared by
 * workers. Strings are NUL-terminated and empty when not set; tri-state booleans are -1 when the
 * BoolValue is not set, so a less specific level can give them (Envoy merges level by level).
 */
typedef struct st_lg_cors_policy_t {
    lg_string_matcher_t *origins;
    size_t n_origins;
    h2o_iovec_t allow_methods, allow_headers, expose_headers, max_age;
    int allow_credentials, allow_private_network_access, forward_not_matching_preflights;
    uint32_t enabled_num, enabled_den; /* filter_enabled; 100/100 when not set */
    uint32_t shadow_num, shadow_den;   /* shadow_enabled; 0/100 when not set */
} lg_cors_policy_t;

/* The policies that apply to a request, most specific first (route, virtual host, route config). */
typedef struct st_lg_cors_policies_t {
    const lg_cors_policy_t *const *p;
    size_t n;
} lg_cors_policies_t;

/* What the request headers decided. */
typedef struct st_lg_cors_decision_t {
    int counted;        /* an Origin was looked at: origin_valid or origin_invalid is counted */
    int origin_valid;   /* the Origin matched allow_origin_string_match */
    int cors_request;   /* enforcing: the response gets the Access-Control-* headers (if valid) */
    int preflight;      /* answer now with 200 and lg_cors_preflight_headers */
    h2o_iovec_t origin; /* the request's Origin (references the request) */
} lg_cors_decision_t;

/**
 * Decides for a request, as Envoy's CorsFilter::decodeHeaders: `random` picks the filter_enabled
 * and shadow_enabled shares of the most specific policy. Any thread; reads only its arguments.
 */
void lg_cors_decide(const lg_cors_policies_t *ps, const lg_request_head_t *req, uint64_t random,
                    lg_cors_decision_t *out);

/**
 * The headers of the locally answered preflight (strings referenced from the policies and the
 * request, the array from `pool`). Any thread.
 */
void lg_cors_preflight_headers(const lg_cors_policies_t *ps, const lg_request_head_t *req,
                               const lg_cors_decision_t *d, h2o_mem_pool_t *pool, lg_headers_t *out);

/** Sets the Access-Control-* headers of an actual request's response (replacing the upstream's). */
void lg_cors_response_headers(const lg_cors_policies_t *ps, h2o_iovec_t origin, h2o_mem_pool_t *pool,
                              lg_headers_t *headers);

/** Compiles a CorsPolicy message (main thread); NULL with err filled. */
void *lg_cors_policy_create(const ProtobufCMessage *msg, lg_error_t *err);
/** The same from the deprecated route / virtual host `cors` field (envoy.config.route.v3.CorsPolicy). */
void *lg_cors_policy_create_legacy(const Envoy__Config__Route__V3__CorsPolicy *pb, lg_error_t *err);
void lg_cors_policy_destroy(void *policy);

#endif
