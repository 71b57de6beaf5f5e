/*
 * Unit tests of the health check filter's answers (filters/health_check/decide.c) and config
 * (config.c): the pass-through cache forgets its answer at every cache_time boundary, the
 * cluster_min_healthy_percentages verdicts and details in cluster-name order, and Envoy's config
 * errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/extensions/filters/http/health_check/v3/health_check.pb-c.h"
#include "filters/health_check/health_check.h"
#include "lg_test.h"
#include "lg_test_pb.h"

static lg_error_t err;

static lg_hc_config_t *build(const char *yaml)
{
    ProtobufCMessage *pb =
        lg_test_pb_from_yaml(&envoy__extensions__filters__http__health_check__v3__health_check__descriptor, yaml, &err);
    lg_filter_config_ctx_t ctx = {.stat_prefix = "http.t.", .local_cluster = "front"};
    lg_hc_config_t *c = pb != NULL ? lg__hc_config_create(pb, &ctx, &err) : NULL;
    if (pb != NULL)
        protobuf_c_message_free_unpacked(pb, NULL);
    return c;
}

LG_TEST(test_cache_forgets_at_each_period)
{
    lg_hc_cache_t c = {.start_ms = 1000, .period_ms = 500};
    int status, degraded;
    LG_EXPECT_INT(lg_hc_cache_get(&c, 1000, &status, &degraded), 0);
    lg_hc_cache_set(&c, 1100, 503, 0);
    LG_EXPECT_INT(lg_hc_cache_get(&c, 1499, &status, &degraded), 1);
    LG_EXPECT_INT(status, 503);
    LG_EXPECT_INT(degraded, 0);
    LG_EXPECT_INT(lg_hc_cache_get(&c, 1500, &status, &degraded), 0); /* the timer fired */
    lg_hc_cache_set(&c, 1999, 200, 1);
    LG_EXPECT_INT(lg_hc_cache_get(&c, 1999, &status, &degraded), 1);
    LG_EXPECT_INT(status, 200);
    LG_EXPECT_INT(degraded, 1);
    LG_EXPECT_INT(lg_hc_cache_get(&c, 2000, &status, &degraded), 0);
}

static lg_cluster_t clusters[3];

static const lg_cluster_t *find(void *ctx, const char *name)
{
    for (size_t i = 0; i < 3; ++i)
        if (strcmp(clusters[i].name, name) == 0)
            return &clusters[i];
    return NULL;
}

/* "status details" for cluster_min_healthy_percentages `map` (YAML flow) against `clusters`. */
static const char *verdict(const char *map)
{
    static char out[128];
    char yaml[256];
    snprintf(yaml, sizeof(yaml), "pass_through_mode: false\ncluster_min_healthy_percentages: %s\n", map);
    lg_hc_config_t *c = build(yaml);
    if (c == NULL)
        return err.msg;
    const char *details;
    int status = lg_hc_clusters_answer(c, find, NULL, &details);
    snprintf(out, sizeof(out), "%d %s", status, details);
    lg__hc_config_destroy(c);
    return out;
}

LG_TEST(test_cluster_min_healthy)
{
    clusters[0] = (lg_cluster_t){.name = "www1", .n_hosts = 10, .n_healthy = 7, .n_degraded = 1};
    clusters[1] = (lg_cluster_t){.name = "www2", .n_hosts = 0};
    clusters[2] = (lg_cluster_t){.name = "www3", .n_hosts = 3, .n_healthy = 1};
    LG_EXPECT_STR(verdict("{www1: {value: 80.9}, www2: {value: 0}}"), "200 health_check_ok_cluster_healthy");
    LG_EXPECT_STR(verdict("{www1: {value: 81}}"), "503 health_check_failed_cluster_unhealthy");
    /* name order: www2 (empty) is checked before www3 (unhealthy) */
    LG_EXPECT_STR(verdict("{www3: {value: 50}, www2: {value: 1}}"), "503 health_check_failed_cluster_empty");
    LG_EXPECT_STR(verdict("{nope: {value: 0}}"), "503 health_check_failed_no_cluster_found");

    const char *details;
    lg_hc_config_t *c;
    /* ignored in pass-through mode, as Envoy */
    c = build("pass_through_mode: true\ncluster_min_healthy_percentages: {nope: {value: 0}}\n");
    LG_EXPECT_INT(c->n_min_healthy, 0);
    LG_EXPECT_INT(lg_hc_clusters_answer(c, find, NULL, &details), 200);
    LG_EXPECT_STR(details, "health_check_ok");
    LG_EXPECT_STR(c->local_cluster, "front");
    lg__hc_config_destroy(c);
}

LG_TEST(test_config_errors)
{
    LG_EXPECT(build("headers: [{name: ':path', string_match: {exact: /healthz}}]\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "pass_through_mode: value is required");
    LG_EXPECT(build("pass_through_mode: false\ncache_time: 5s\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "cache_time_ms must not be set when path_through_mode is disabled");
    LG_EXPECT(build("pass_through_mode: false\ncluster_min_healthy_percentages: {a: {value: 101}}\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "must be within [0, 100]");
    LG_EXPECT(build("pass_through_mode: true\nheaders: [{name: x, safe_regex_match: {regex: '('}}]\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "headers[0]");
    lg_hc_config_t *c = build("pass_through_mode: true\ncache_time: 2.5s\n");
    LG_EXPECT(c != NULL && c->cache != NULL && c->cache->period_ms == 2500);
    lg__hc_config_destroy(c);
}

int main(void)
{
    LG_RUN(test_cache_forgets_at_each_period);
    LG_RUN(test_cluster_min_healthy);
    LG_RUN(test_config_errors);
    return LG_TEST_END();
}
