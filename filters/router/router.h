/*
 * The router filter (envoy.filters.http.router): the terminal HTTP filter. It picks the route's
 * cluster and a host, opens a stream on the worker's connection pool, forwards the request with
 * the route's rewrites and header mutations, and streams the response back through the encode
 * chain, with Envoy's timeouts, response flags and local replies (503 UF/UH/UO/NC, 504 UT, 502
 * UPE, 404 NR).
 */
#ifndef LG_FILTERS_ROUTER_H
#define LG_FILTERS_ROUTER_H

#include "filter.h"

/* Immutable config from envoy.extensions.filters.http.router.v3.Router. */
typedef struct st_lg_router_config_t {
    int suppress_envoy_headers;
    int respect_expected_rq_timeout;
} lg_router_config_t;

extern const lg_http_filter_ops_t lg_router_ops;

void *lg_router_create_config(const ProtobufCMessage *msg, lg_error_t *err);
void lg_router_destroy_config(void *config);

#endif
