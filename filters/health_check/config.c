/*
 * envoy.filters.http.health_check config: HealthCheck compiled on the main thread into
 * lg_hc_config_t, with Envoy's checks: pass_through_mode is required, and cache_time only goes
 * with pass-through mode. Not for: per-request work (filter.c, decide.c).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envoy/extensions/filters/http/health_check/v3/health_check.pb-c.h"
#include "filters/health_check/health_check.h"
#include "xalloc.h"

typedef Envoy__Extensions__Filters__Http__HealthCheck__V3__HealthCheck pb_t;

uint64_t lg__hc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void lg__hc_config_destroy(void *p)
{
    lg_hc_config_t *c = p;
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_headers; ++i)
        lg_header_matcher_dispose(&c->headers[i]);
    free(c->headers);
    for (size_t i = 0; i < c->n_min_healthy; ++i)
        free(c->min_healthy[i].cluster);
    free(c->min_healthy);
    free(c->cache);
    free(c->local_cluster);
    free(c);
}

static int by_cluster(const void *a, const void *b)
{
    return strcmp(((const lg_hc_min_healthy_t *)a)->cluster, ((const lg_hc_min_healthy_t *)b)->cluster);
}

void *lg__hc_config_create(const ProtobufCMessage *msg, const lg_filter_config_ctx_t *ctx, lg_error_t *err)
{
    const pb_t *pb = (const pb_t *)msg;
    lg_hc_config_t *c = lg_xcalloc(1, sizeof(*c));
    c->local_cluster = lg_xstrdup(ctx->local_cluster != NULL ? ctx->local_cluster : "");
    if (pb->pass_through_mode == NULL) {
        lg_error_set(err, "pass_through_mode: value is required");
        goto Fail;
    }
    c->pass_through = pb->pass_through_mode->value;
    c->headers = lg_xcalloc(pb->n_headers + 1, sizeof(*c->headers));
    lg_path_t path;
    lg_path_init(&path);
    for (; c->n_headers < pb->n_headers; ++c->n_headers) {
        size_t mark = lg_path_push_field(&path, "headers");
        lg_path_push_index(&path, c->n_headers);
        int rc = lg_header_matcher_init(&c->headers[c->n_headers], pb->headers[c->n_headers], &path, NULL, err);
        lg_path_pop(&path, mark);
        if (rc != 0)
            goto Fail;
    }
    const Google__Protobuf__Duration *ct = pb->cache_time;
    uint64_t cache_ms = ct != NULL && ct->seconds >= 0 && ct->nanos >= 0
                            ? (uint64_t)ct->seconds * 1000 + (uint64_t)ct->nanos / 1000000
                            : 0;
    if (cache_ms != 0) {
        if (!c->pass_through) {
            /* Envoy's message, its spelling included. */
            lg_error_set(err, "cache_time: cache_time_ms must not be set when path_through_mode is disabled");
            goto Fail;
        }
        c->cache = lg_xcalloc(1, sizeof(*c->cache));
        c->cache->start_ms = lg__hc_now_ms();
        c->cache->period_ms = cache_ms;
    }
    if (!c->pass_through && pb->n_cluster_min_healthy_percentages != 0) {
        c->min_healthy = lg_xcalloc(pb->n_cluster_min_healthy_percentages, sizeof(*c->min_healthy));
        for (; c->n_min_healthy < pb->n_cluster_min_healthy_percentages; ++c->n_min_healthy) {
            const Envoy__Extensions__Filters__Http__HealthCheck__V3__HealthCheck__ClusterMinHealthyPercentagesEntry *e =
                pb->cluster_min_healthy_percentages[c->n_min_healthy];
            double v = e->value != NULL ? e->value->value : 0;
            if (!(v >= 0 && v <= 100)) {
                lg_error_set(err, "cluster_min_healthy_percentages[\"%s\"].value: must be within [0, 100]",
                             e->key != NULL ? e->key : "");
                goto Fail;
            }
            c->min_healthy[c->n_min_healthy].cluster = lg_xstrdup(e->key != NULL ? e->key : "");
            c->min_healthy[c->n_min_healthy].percent = (uint64_t)v;
        }
        /* Envoy keeps them in a std::map: checked in name order, the first failure decides. */
        qsort(c->min_healthy, c->n_min_healthy, sizeof(*c->min_healthy), by_cluster);
    }
    return c;
Fail:
    lg__hc_config_destroy(c);
    return NULL;
}
