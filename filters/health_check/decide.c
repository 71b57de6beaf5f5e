/*
 * The health check filter's answers apart from the stream, so they are unit-tested: the
 * pass-through cache shared by workers and the cluster_min_healthy_percentages verdict. Not for:
 * matching requests or sending replies (filter.c).
 */
#include "filters/health_check/health_check.h"

void lg_hc_cache_set(lg_hc_cache_t *c, uint64_t now_ms, int status, int degraded)
{
    uint64_t period = (now_ms - c->start_ms) / c->period_ms;
    uint64_t word = ((period + 1) << 24) | ((uint64_t)(degraded != 0) << 16) | ((uint64_t)status & 0xffff);
    atomic_store_explicit(&c->word, word, memory_order_relaxed);
}

int lg_hc_cache_get(lg_hc_cache_t *c, uint64_t now_ms, int *status, int *degraded)
{
    uint64_t word = atomic_load_explicit(&c->word, memory_order_relaxed);
    uint64_t period = (now_ms - c->start_ms) / c->period_ms;
    if (word == 0 || (word >> 24) != period + 1)
        return 0;
    *status = (int)(word & 0xffff);
    *degraded = (int)((word >> 16) & 1);
    return 1;
}

int lg_hc_clusters_answer(const lg_hc_config_t *c, const lg_cluster_t *(*find)(void *ctx, const char *name),
                          void *ctx, const char **details)
{
    *details = "health_check_ok";
    for (size_t i = 0; i < c->n_min_healthy; ++i) {
        const lg_hc_min_healthy_t *m = &c->min_healthy[i];
        *details = "health_check_ok_cluster_healthy";
        const lg_cluster_t *cl = find(ctx, m->cluster);
        if (cl == NULL) {
            *details = "health_check_failed_no_cluster_found";
            return 503;
        }
        if (cl->n_hosts == 0) {
            if (m->percent == 0)
                continue;
            *details = "health_check_failed_cluster_empty";
            return 503;
        }
        /* available = healthy + degraded, compared in integers as Envoy does */
        if (100 * (uint64_t)(cl->n_healthy + cl->n_degraded) < (uint64_t)cl->n_hosts * m->percent) {
            *details = "health_check_failed_cluster_unhealthy";
            return 503;
        }
    }
    return 200;
}
