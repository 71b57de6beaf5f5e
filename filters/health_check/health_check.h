/*
 * envoy.filters.http.health_check: what config.c (HealthCheck -> hc_config), decide.c (the answer
 * to a health check, pure and unit-tested) and filter.c (the stream hooks) share. See filter.c for
 * the behaviour.
 */
#ifndef LG_FILTERS_HEALTH_CHECK_H
#define LG_FILTERS_HEALTH_CHECK_H

#include <stdatomic.h>
#include <stdint.h>

#include "filter.h"
#include "route_table.h"
#include "snapshot.h"

extern const lg_http_filter_ops_t lg_health_check_ops;

typedef struct st_lg_hc_min_healthy_t {
    char *cluster;
    uint64_t percent; /* Percent.value truncated to an integer, as Envoy does */
} lg_hc_min_healthy_t;

/*
 * The cached answer of pass-through mode with cache_time, shared by workers: one atomic word
 * (the cache period it was stored in + 1) << 24 | degraded << 16 | status. A period is cache_time
 * long, counted from the config's creation, as Envoy's timer that forgets the answer every
 * cache_time; 0 is "nothing cached".
 */
typedef struct st_lg_hc_cache_t {
    _Atomic uint64_t word;
    uint64_t start_ms, period_ms;
} lg_hc_cache_t;

typedef struct st_lg_hc_config_t {
    int pass_through;
    lg_header_matcher_t *headers;
    size_t n_headers;
    lg_hc_min_healthy_t *min_healthy; /* only without pass_through, as Envoy */
    size_t n_min_healthy;
    lg_hc_cache_t *cache; /* NULL without cache_time */
    char *local_cluster;  /* x-envoy-upstream-healthchecked-cluster */
} lg_hc_config_t;

/** Builds / frees the config (main thread); NULL with err filled. */
void *lg__hc_config_create(const ProtobufCMessage *msg, const lg_filter_config_ctx_t *ctx, lg_error_t *err);
void lg__hc_config_destroy(void *config);
/** Milliseconds on the monotonic clock: what the cache counts in. */
uint64_t lg__hc_now_ms(void);

/** Stores a response's status for the current period. Any thread. */
void lg_hc_cache_set(lg_hc_cache_t *c, uint64_t now_ms, int status, int degraded);
/** 1 with *status, *degraded when an answer was stored in the current period. Any thread. */
int lg_hc_cache_get(lg_hc_cache_t *c, uint64_t now_ms, int *status, int *degraded);

/**
 * The answer from cluster_min_healthy_percentages, as Envoy's onComplete: 200 or 503, with the
 * response code details. `find` looks a cluster up by name (in the stream's snapshot). Any thread.
 */
int lg_hc_clusters_answer(const lg_hc_config_t *c, const lg_cluster_t *(*find)(void *ctx, const char *name),
                          void *ctx, const char **details);

#endif
