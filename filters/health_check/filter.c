/*
 * envoy.filters.http.health_check, as Envoy runs it.
 *
 * A request whose headers match every HeaderMatcher in `headers` (all requests when the list is
 * empty) is a health check: the stream info says so (access-log not_health_check_filter). The
 * server is "failed" after admin POST /healthcheck/fail, and while it drains (SIGTERM,
 * /drain_listeners), as Envoy fails health checks while a hot-restart parent drains.
 * - pass_through_mode false: legate answers every health check itself, when the request has
 *   ended: 503 when failed (response flag LH, details health_check_failed); else 200
 *   (health_check_ok) or, with cluster_min_healthy_percentages, 503 when a named cluster is
 *   missing, empty (unless its minimum is 0) or has fewer available hosts (health_status
 *   HEALTHY, UNKNOWN or DEGRADED) than the percentage, checked in cluster-name order with
 *   Envoy's details (health_check_ok_cluster_healthy, health_check_failed_no_cluster_found,
 *   health_check_failed_cluster_empty, health_check_failed_cluster_unhealthy) and flag LH.
 * - pass_through_mode true: health checks go upstream, except when failed (503 as above) or when
 *   cache_time is set and an upstream answer was stored in the current cache_time period (that
 *   status, x-envoy-degraded kept, details health_check_cached).
 * Every response to a health check carries x-envoy-upstream-healthchecked-cluster: the node's
 * cluster; while failed, every other response passing through carries
 * x-envoy-immediate-health-check-fail: true, so Envoy upstreams stop routing here at once.
 * Local replies have no body.
 *
 * Not like Envoy: legate's local replies from other filters do not run the encode chain, so they
 * get neither header; there is no active health checking yet, so cluster health is the
 * endpoints' configured health_status.
 */
#include <string.h>

#include "admin.h"
#include "envoy/extensions/filters/http/health_check/v3/health_check.pb-c.h"
#include "filters/health_check/health_check.h"
#include "stream_info.h"
#include "worker.h"

typedef struct st_hc_state_t {
    int hc_request, handling, cached, cached_status, cached_degraded;
} hc_state_t;

static int server_failed(lg_filter_t *f)
{
    return lg_admin_health_check_failed() || lg_filter_worker(f)->draining;
}

static const lg_cluster_t *find_cluster(void *ctx, const char *name)
{
    return lg_snapshot_find_cluster(ctx, name, strlen(name));
}

static void complete(lg_filter_t *f)
{
    const lg_hc_config_t *c = f->config;
    hc_state_t *st = f->state;
    int status = 200, degraded = 0;
    const char *details = "health_check_ok", *flag = NULL;
    if (server_failed(f)) {
        status = 503;
        details = "health_check_failed";
    } else if (c->cache != NULL) {
        status = st->cached_status;
        degraded = st->cached_degraded;
        details = "health_check_cached";
    } else if (c->n_min_healthy != 0) {
        status = lg_hc_clusters_answer(c, find_cluster, (void *)lg_filter_snapshot(f), &details);
    }
    if (status < 200 || status > 299)
        flag = "LH";
    /* Envoy's encodeHeaders runs on its own reply: the cache learns it, the cluster header is set. */
    if (c->cache != NULL)
        lg_hc_cache_set(c->cache, lg__hc_now_ms(), status, degraded);
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    lg_headers_t headers = {NULL, 0, 0};
    if (degraded)
        lg_headers_add(pool, &headers, LG_LIT("x-envoy-degraded"), LG_LIT(""));
    lg_headers_add(pool, &headers, LG_LIT("x-envoy-upstream-healthchecked-cluster"),
                   h2o_iovec_init(c->local_cluster, strlen(c->local_cluster)));
    lg_local_reply_t reply = {
        .status = status, .body = "", .flag = flag, .details = details, .headers = &headers, .grpc_status = -1};
    st->handling = 0;
    st->hc_request = 0; /* the reply does not come back through encode_headers */
    lg_filter_send_local_reply_ex(f, &reply);
}

static lg_filter_headers_status_t decode_headers(lg_filter_t *f, lg_request_head_t *head, int end_stream)
{
    const lg_hc_config_t *c = f->config;
    hc_state_t *st = f->state;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    for (size_t i = 0; i < c->n_headers; ++i)
        if (!lg_header_matcher_match_request(&c->headers[i], head, pool))
            return LG_FILTER_HEADERS_CONTINUE;
    st->hc_request = 1;
    lg_filter_stream_info(f)->health_check = 1;
    if (c->cache != NULL)
        st->cached = lg_hc_cache_get(c->cache, lg__hc_now_ms(), &st->cached_status, &st->cached_degraded);
    if (!c->pass_through || server_failed(f) || st->cached)
        st->handling = 1;
    if (!st->handling)
        return LG_FILTER_HEADERS_CONTINUE;
    if (end_stream)
        complete(f);
    return LG_FILTER_HEADERS_STOP_ITERATION;
}

static lg_filter_data_status_t decode_data(lg_filter_t *f, lg_data_t *data, int end_stream)
{
    hc_state_t *st = f->state;
    if (!st->handling)
        return LG_FILTER_DATA_CONTINUE;
    if (end_stream)
        complete(f);
    return LG_FILTER_DATA_STOP_NO_BUFFER;
}

static lg_filter_trailers_status_t decode_trailers(lg_filter_t *f, lg_headers_t *trailers)
{
    hc_state_t *st = f->state;
    if (!st->handling)
        return LG_FILTER_TRAILERS_CONTINUE;
    complete(f);
    return LG_FILTER_TRAILERS_STOP;
}

static lg_filter_headers_status_t encode_headers(lg_filter_t *f, lg_response_head_t *head, int end_stream)
{
    const lg_hc_config_t *c = f->config;
    hc_state_t *st = f->state;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    if (st->hc_request) {
        if (c->cache != NULL)
            lg_hc_cache_set(c->cache, lg__hc_now_ms(), head->status,
                            lg_headers_find(&head->headers, H2O_STRLIT("x-envoy-degraded"), 0) >= 0);
        lg_headers_set(pool, &head->headers, LG_LIT("x-envoy-upstream-healthchecked-cluster"),
                       h2o_iovec_init(c->local_cluster, strlen(c->local_cluster)));
    } else if (server_failed(f)) {
        lg_headers_set(pool, &head->headers, LG_LIT("x-envoy-immediate-health-check-fail"), LG_LIT("true"));
    }
    return LG_FILTER_HEADERS_CONTINUE;
}

const lg_http_filter_ops_t lg_health_check_ops = {
    .name = "envoy.filters.http.health_check",
    .config_descriptor = &envoy__extensions__filters__http__health_check__v3__health_check__descriptor,
    .create_config_ctx = lg__hc_config_create,
    .destroy_config = lg__hc_config_destroy,
    .state_size = sizeof(hc_state_t),
    .decode_headers = decode_headers,
    .decode_data = decode_data,
    .decode_trailers = decode_trailers,
    .encode_headers = encode_headers,
};
