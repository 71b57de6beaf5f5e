/*
 * Unit tests of the admin endpoint: the renderers (admin_stats.c, admin_status.c,
 * admin_config_dump.c, admin_json.c) on a small stats registry, bootstrap and snapshot, Envoy's tag
 * extraction, and admin.c itself over a real loopback socket driven by its own h2o loop: status
 * codes, POST-only paths, keep-alive and pipelining, bodies, streaming, the hooks and the access
 * log.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <h2o/socket.h>

#include "admin.h"
#include "admin_render.h"
#include "bootstrap.h"
#include "lg_test.h"
#include "log.h"
#include "snapshot.h"
#include "stats.h"

/* ------------------------------------------------------------------------------------------- */
/* Fixtures                                                                                    */
/* ------------------------------------------------------------------------------------------- */

static const char *BOOTSTRAP_FMT =
    "node: {id: n1, cluster: c1}\n"
    "admin:\n"
    "  address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
    "  access_log:\n"
    "  - name: envoy.access_loggers.file\n"
    "    typed_config:\n"
    "      \"@type\": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n"
    "      path: %s\n"
    "layered_runtime:\n"
    "  layers:\n"
    "  - name: static_layer_0\n"
    "    static_layer: {a: {b: 5}, flag: true, s: text}\n"
    "  - name: override\n"
    "    static_layer: {s: other}\n"
    "static_resources:\n"
    "  listeners:\n"
    "  - name: ingress\n"
    "    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n"
    "    filter_chains:\n"
    "    - filters:\n"
    "      - name: envoy.filters.network.http_connection_manager\n"
    "        typed_config:\n"
    "          \"@type\": type.googleapis.com/"
    "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n"
    "          stat_prefix: ingress_http\n"
    "          route_config:\n"
    "            name: local_route\n"
    "            virtual_hosts:\n"
    "            - name: default\n"
    "              domains: [\"*\"]\n"
    "              routes:\n"
    "              - match: {prefix: /}\n"
    "                route: {cluster: app}\n"
    "          http_filters:\n"
    "          - name: envoy.filters.http.router\n"
    "            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}\n"
    "  clusters:\n"
    "  - name: app\n"
    "    type: STATIC\n"
    "    connect_timeout: 1s\n"
    "    load_assignment:\n"
    "      cluster_name: app\n"
    "      endpoints:\n"
    "      - lb_endpoints:\n"
    "        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8081}}}\n"
    "          load_balancing_weight: 3\n"
    "        - endpoint: {address: {socket_address: {address: 127.0.0.2, port_value: 8082}}}\n"
    "  - name: other\n"
    "    type: STATIC\n"
    "    connect_timeout: 1s\n";

static char log_path[64];
static lg_bootstrap_t bootstrap;
static lg_snapshot_t *snapshot;

static int setup(void)
{
    char text[8192];
    lg_error_t err;
    snprintf(log_path, sizeof(log_path), "/tmp/lg_admin_test_%d.log", (int)getpid());
    unlink(log_path);
    snprintf(text, sizeof(text), BOOTSTRAP_FMT, log_path);
    if (lg_bootstrap_load_text(&bootstrap, text, strlen(text), "admin_test.yaml", &err) != 0) {
        fprintf(stderr, "bootstrap: %s\n", err.msg);
        return -1;
    }
    if ((snapshot = lg_snapshot_build(&bootstrap, &err)) == NULL) {
        fprintf(stderr, "snapshot: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static void query(lg_admin_query_t *q, const char *s)
{
    lg_admin_query_parse(q, s, strlen(s));
}

/* ------------------------------------------------------------------------------------------- */
/* Query strings and JSON tools                                                                */
/* ------------------------------------------------------------------------------------------- */

LG_TEST(query_strings_decode_like_envoy)
{
    lg_admin_query_t q;
    query(&q, "filter=cluster%2Eapp.%2B&usedonly&format=json&&x=a+b&format=text");
    LG_EXPECT_STR(lg_admin_query_get(&q, "filter"), "cluster.app.+");
    LG_EXPECT_STR(lg_admin_query_get(&q, "usedonly"), "");
    LG_EXPECT_STR(lg_admin_query_get(&q, "format"), "json"); /* the first value wins */
    LG_EXPECT_STR(lg_admin_query_get(&q, "x"), "a+b");       /* '+' stays: regexes use it */
    LG_EXPECT(lg_admin_query_get(&q, "missing") == NULL);
    lg_admin_query_dispose(&q);
    query(&q, "bad=%zz%4");
    LG_EXPECT_STR(lg_admin_query_get(&q, "bad"), "%zz%4");
    lg_admin_query_dispose(&q);
}

LG_TEST(json_pretty_matches_protobuf)
{
    lg_strbuf_t out = LG_STRBUF_INIT;
    const char *in = "{\"a\":[1,{\"b\":\"x,{y}:\\\"\"}],\"e\":{},\"l\":[ ]}";
    lg_admin_json_pretty(in, strlen(in), &out);
    LG_EXPECT_STR(out.data, "{\n \"a\": [\n  1,\n  {\n   \"b\": \"x,{y}:\\\"\"\n  }\n ],\n \"e\": {},\n \"l\": []\n}\n");
    lg_strbuf_dispose(&out);
}

LG_TEST(json_mask_keeps_named_fields_and_type)
{
    lg_strbuf_t out = LG_STRBUF_INIT;
    const char *in = "{\"@type\":\"t\",\"cluster\":{\"@type\":\"c\",\"name\":\"app\",\"type\":\"STATIC\"},"
                     "\"last_updated\":\"x\",\"other\":[1,2]}";
    char *p1[] = {"cluster.name"};
    LG_EXPECT_INT(lg_admin_json_mask(in, strlen(in), p1, 1, &out), 0);
    LG_EXPECT_STR(out.data, "{\"@type\":\"t\",\"cluster\":{\"@type\":\"c\",\"name\":\"app\"}}");
    out.len = 0;
    char *p2[] = {"last_updated", "other"};
    LG_EXPECT_INT(lg_admin_json_mask(in, strlen(in), p2, 2, &out), 0);
    LG_EXPECT_STR(out.data, "{\"@type\":\"t\",\"last_updated\":\"x\",\"other\":[1,2]}");
    out.len = 0;
    LG_EXPECT_INT(lg_admin_json_mask("[1]", 3, p2, 2, &out), -1);
    lg_strbuf_dispose(&out);
}

/* ------------------------------------------------------------------------------------------- */
/* Tag extraction and stats rendering                                                          */
/* ------------------------------------------------------------------------------------------- */

static void expect_tags(const char *name, const char *want_extracted, const char *want_tags)
{
    lg_admin_tag_t tags[LG_ADMIN_MAX_TAGS];
    char extracted[256];
    size_t n = lg_admin_stats_extract_tags(name, tags, extracted, sizeof(extracted));
    lg_strbuf_t got = LG_STRBUF_INIT;
    lg_strbuf_puts(&got, "");
    for (size_t i = 0; i < n; ++i)
        lg_strbuf_printf(&got, "%s%s=%.*s", i ? "," : "", tags[i].name, (int)tags[i].value_len, tags[i].value);
    if (strcmp(extracted, want_extracted) != 0 || strcmp(got.data, want_tags) != 0)
        fprintf(stderr, "  for %s\n", name);
    LG_EXPECT_STR(extracted, want_extracted);
    LG_EXPECT_STR(got.data, want_tags);
    lg_strbuf_dispose(&got);
}

LG_TEST(tag_extraction_follows_envoy_defaults)
{
    expect_tags("cluster.app.upstream_rq_200", "cluster.upstream_rq",
                "envoy.response_code=200,envoy.cluster_name=app");
    expect_tags("cluster.app.upstream_rq_2xx", "cluster.upstream_rq_xx",
                "envoy.response_code_class=2,envoy.cluster_name=app");
    expect_tags("cluster.app.upstream_rq_total", "cluster.upstream_rq_total", "envoy.cluster_name=app");
    expect_tags("cluster.app.membership_healthy", "cluster.membership_healthy", "envoy.cluster_name=app");
    expect_tags("http.ingress_http.downstream_rq_5xx", "http.downstream_rq_xx",
                "envoy.response_code_class=5,envoy.http_conn_manager_prefix=ingress_http");
    expect_tags("listener.0.0.0.0_10000.downstream_cx_total", "listener.downstream_cx_total",
                "envoy.listener_address=0.0.0.0_10000");
    expect_tags("listener.[__1]_8080.downstream_cx_active", "listener.downstream_cx_active",
                "envoy.listener_address=[__1]_8080");
    expect_tags("listener.127.0.0.1_80.http.ingress.downstream_rq_2xx", "listener.http.downstream_rq_xx",
                "envoy.response_code_class=2,envoy.http_conn_manager_prefix=ingress,"
                "envoy.listener_address=127.0.0.1_80");
    expect_tags("http.ingress.rds.local_route.config_reload", "http.rds.config_reload",
                "envoy.http_conn_manager_prefix=ingress,envoy.rds_route_config=local_route");
    expect_tags("listener_manager.worker_3.downstream_cx_total", "listener_manager.downstream_cx_total",
                "envoy.worker_id=worker_3");
    expect_tags("cluster.app.grpc.Svc.Call.success", "cluster.grpc.success",
                "envoy.grpc_bridge_method=Call,envoy.grpc_bridge_service=Svc,envoy.cluster_name=app");
    expect_tags("vhost.v1.vcluster.vc.upstream_rq_time", "vhost.vcluster.upstream_rq_time",
                "envoy.virtual_cluster=vc,envoy.virtual_host=v1");
    expect_tags("listener.admin.downstream_cx_total", "listener.admin.downstream_cx_total", "");
    expect_tags("server.live", "server.live", "");
    expect_tags("cluster_manager.cds.update_success", "cluster_manager.cds.update_success", "");
}

static lg_stats_cells_t *cells;
static lg_stat_id_t s_rq_2xx, s_rq_5xx, s_rq_total, s_active, s_h_2xx, s_zero;

static void fake_stats(void)
{
    cells = lg_stats_cells_new();
    lg_stats_attach(cells);
    s_rq_2xx = lg_stats_register("cluster.zz_app.upstream_rq_2xx", LG_STAT_COUNTER);
    s_rq_5xx = lg_stats_register("cluster.zz_app.upstream_rq_5xx", LG_STAT_COUNTER);
    s_rq_total = lg_stats_register("cluster.zz_app.upstream_rq_total", LG_STAT_COUNTER);
    s_active = lg_stats_register("cluster.zz_app.upstream_rq_active", LG_STAT_GAUGE);
    s_h_2xx = lg_stats_register("http.zz_in.downstream_rq_2xx", LG_STAT_COUNTER);
    s_zero = lg_stats_register("zz.unused", LG_STAT_COUNTER);
    lg_stats_add(cells, s_rq_2xx, 7);
    lg_stats_add(cells, s_rq_5xx, 2);
    lg_stats_add(cells, s_rq_total, 9);
    lg_stats_add(cells, s_active, 1);
    lg_stats_add(cells, s_h_2xx, 7);
    /* A gauge momentarily "negative" across worker cells prints 0, not 2^64 - 1. */
    lg_stat_id_t neg = lg_stats_register("zz.neg_gauge", LG_STAT_GAUGE);
    lg_stats_dec(cells, neg);
    (void)s_zero;
    /* Histograms ("yy", apart from the "zz" filters above): 10 values of 1..10 ms, one unused. */
    lg_stat_id_t h = lg_stats_register("cluster.yy_app.upstream_rq_time", LG_STAT_HISTOGRAM);
    for (uint64_t v = 1; v <= 10; ++v)
        lg_stats_record(cells, h, v);
    lg_stats_register("http.yy_in.downstream_rq_time", LG_STAT_HISTOGRAM);
    lg_stats_add(cells, lg_stats_register("cluster.yy_app.upstream_rq_total", LG_STAT_COUNTER), 10);
}

/* Renders a whole stats body, `budget` bytes per step; counts the steps. */
static char *render_stats(const char *qs, int prometheus, size_t budget, int *status, int *steps)
{
    lg_admin_query_t q;
    lg_strbuf_t out = LG_STRBUF_INIT, err = LG_STRBUF_INIT;
    query(&q, qs);
    lg_admin_stats_request_t *r = lg_admin_stats_request_new(&q, prometheus, status, &err);
    lg_admin_query_dispose(&q);
    if (r == NULL) {
        lg_strbuf_dispose(&out);
        return lg_strbuf_release(&err);
    }
    int n = 0;
    while (lg_admin_stats_request_next(r, &out, budget))
        ++n;
    if (steps != NULL)
        *steps = n + 1;
    lg_admin_stats_request_free(r);
    lg_strbuf_dispose(&err);
    return lg_strbuf_release(&out);
}

LG_TEST(stats_text_json_filters)
{
    int status, steps;
    char *t = render_stats("filter=^cluster\\.zz_app\\.", 0, 1 << 20, &status, NULL);
    LG_EXPECT_INT(status, 200);
    LG_EXPECT_STR(t, "cluster.zz_app.upstream_rq_2xx: 7\ncluster.zz_app.upstream_rq_5xx: 2\n"
                     "cluster.zz_app.upstream_rq_active: 1\ncluster.zz_app.upstream_rq_total: 9\n");
    free(t);
    t = render_stats("filter=zz&type=Gauges", 0, 1 << 20, &status, NULL);
    LG_EXPECT_STR(t, "cluster.zz_app.upstream_rq_active: 1\nzz.neg_gauge: 0\n");
    free(t);
    t = render_stats("filter=zz&usedonly&type=Counters", 0, 1 << 20, &status, NULL);
    LG_EXPECT_STR(t, "cluster.zz_app.upstream_rq_2xx: 7\ncluster.zz_app.upstream_rq_5xx: 2\n"
                     "cluster.zz_app.upstream_rq_total: 9\nhttp.zz_in.downstream_rq_2xx: 7\n");
    free(t);
    t = render_stats("filter=zz.*rq_[25]xx$&format=json", 0, 1 << 20, &status, NULL);
    LG_EXPECT_STR(t, "{\"stats\":[{\"name\":\"cluster.zz_app.upstream_rq_2xx\",\"value\":7},"
                     "{\"name\":\"cluster.zz_app.upstream_rq_5xx\",\"value\":2},"
                     "{\"name\":\"http.zz_in.downstream_rq_2xx\",\"value\":7}]}");
    free(t);
    t = render_stats("filter=nothing_matches_this&format=json", 0, 1 << 20, &status, NULL);
    LG_EXPECT_STR(t, "{\"stats\":[]}");
    free(t);
    /* Streaming: a tiny budget gives the same body in many steps. */
    char *whole = render_stats("filter=zz", 0, 1 << 20, &status, &steps);
    LG_EXPECT_INT(steps, 1);
    char *parts = render_stats("filter=zz", 0, 1, &status, &steps);
    LG_EXPECT_STR(parts, whole);
    LG_EXPECT(steps >= 7);
    free(whole);
    free(parts);
}

LG_TEST(stats_histograms_text_json_prometheus)
{
    int status, steps;
    /* Text: counters first, then histograms by name; quantiles as Envoy's P<q>(interval,cumulative). */
    char *t = render_stats("filter=yy", 0, 1 << 20, &status, NULL);
    LG_EXPECT_INT(status, 200);
    LG_EXPECT_STR(t, "cluster.yy_app.upstream_rq_total: 10\n"
                     "cluster.yy_app.upstream_rq_time: P0(nan,1) P25(nan,2.5) P50(nan,5) P75(nan,7.5) "
                     "P90(nan,9) P95(nan,9.5) P99(nan,9.9) P99.5(nan,9.95) P99.9(nan,9.99) P100(nan,10)\n"
                     "http.yy_in.downstream_rq_time: No recorded values\n");
    free(t);
    t = render_stats("filter=yy&usedonly&type=Histograms", 0, 1 << 20, &status, NULL);
    LG_EXPECT_STR(t, "cluster.yy_app.upstream_rq_time: P0(nan,1) P25(nan,2.5) P50(nan,5) P75(nan,7.5) "
                     "P90(nan,9) P95(nan,9.5) P99(nan,9.9) P99.5(nan,9.95) P99.9(nan,9.99) P100(nan,10)\n");
    free(t);
    t = render_stats("filter=yy&type=Counters", 0, 1 << 20, &status, NULL);
    LG_EXPECT_STR(t, "cluster.yy_app.upstream_rq_total: 10\n");
    free(t);
    /* JSON: the histograms are the last element of "stats", in Envoy's shape. */
    t = render_stats("filter=yy&format=json", 0, 1 << 20, &status, NULL);
    LG_EXPECT_STR(t, "{\"stats\":[{\"name\":\"cluster.yy_app.upstream_rq_total\",\"value\":10},"
                     "{\"histograms\":{\"supported_quantiles\":[0,25,50,75,90,95,99,99.5,99.9,100],"
                     "\"computed_quantiles\":[{\"name\":\"cluster.yy_app.upstream_rq_time\",\"values\":["
                     "{\"interval\":null,\"cumulative\":1},{\"interval\":null,\"cumulative\":2.5},"
                     "{\"interval\":null,\"cumulative\":5},{\"interval\":null,\"cumulative\":7.5},"
                     "{\"interval\":null,\"cumulative\":9},{\"interval\":null,\"cumulative\":9.5},"
                     "{\"interval\":null,\"cumulative\":9.9},{\"interval\":null,\"cumulative\":9.95},"
                     "{\"interval\":null,\"cumulative\":9.99},{\"interval\":null,\"cumulative\":10}]},"
                     "{\"name\":\"http.yy_in.downstream_rq_time\",\"values\":["
                     "{\"interval\":null,\"cumulative\":null},{\"interval\":null,\"cumulative\":null},"
                     "{\"interval\":null,\"cumulative\":null},{\"interval\":null,\"cumulative\":null},"
                     "{\"interval\":null,\"cumulative\":null},{\"interval\":null,\"cumulative\":null},"
                     "{\"interval\":null,\"cumulative\":null},{\"interval\":null,\"cumulative\":null},"
                     "{\"interval\":null,\"cumulative\":null},{\"interval\":null,\"cumulative\":null}]}]}}]}");
    free(t);
    t = render_stats("filter=yy.*time&format=json", 0, 1 << 20, &status, NULL);
    LG_EXPECT(strncmp(t, "{\"stats\":[{\"histograms\":{", 25) == 0);
    free(t);
    /* Prometheus: cumulative buckets on Envoy's bounds, +Inf, _sum and _count, after the counters. */
    t = render_stats("filter=yy_app", 1, 1 << 20, &status, NULL);
    LG_EXPECT_STR(t, "# TYPE envoy_cluster_upstream_rq_total counter\n"
                     "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"yy_app\"} 10\n"
                     "\n"
                     "# TYPE envoy_cluster_upstream_rq_time histogram\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"0.5\"} 0\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"1\"} 1\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"5\"} 5\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"10\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"25\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"50\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"100\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"250\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"500\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"1000\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"2500\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"5000\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"10000\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"30000\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"60000\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"300000\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"600000\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"1800000\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"3600000\"} 10\n"
                     "envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"yy_app\",le=\"+Inf\"} 10\n"
                     "envoy_cluster_upstream_rq_time_sum{envoy_cluster_name=\"yy_app\"} 55\n"
                     "envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"yy_app\"} 10\n"
                     "\n");
    char *same = render_stats("filter=yy_app", 1, 10, &status, &steps);
    LG_EXPECT_STR(same, t);
    free(same);
    free(t);
}

LG_TEST(stats_bad_parameters_are_400)
{
    int status;
    char *t = render_stats("filter=(unclosed", 0, 1024, &status, NULL);
    LG_EXPECT_INT(status, 400);
    LG_EXPECT_STR(t, "Invalid re2 regex");
    free(t);
    t = render_stats("type=Bogus", 0, 1024, &status, NULL);
    LG_EXPECT_INT(status, 400);
    LG_EXPECT_STR(t, "invalid &type= param");
    free(t);
    t = render_stats("format=xml", 0, 1024, &status, NULL);
    LG_EXPECT_INT(status, 400);
    LG_EXPECT_CONTAINS(t, "usage: /stats?format=(html|active-html|json|prometheus|text)");
    free(t);
    t = render_stats("format=html", 0, 1024, &status, NULL);
    LG_EXPECT_INT(status, 400);
    free(t);
}

LG_TEST(stats_prometheus_groups_and_labels)
{
    int status, steps;
    char *t = render_stats("filter=zz", 1, 1 << 20, &status, NULL);
    LG_EXPECT_INT(status, 200);
    LG_EXPECT_STR(t, "# TYPE envoy_cluster_upstream_rq_total counter\n"
                     "envoy_cluster_upstream_rq_total{envoy_cluster_name=\"zz_app\"} 9\n"
                     "\n"
                     "# TYPE envoy_cluster_upstream_rq_xx counter\n"
                     "envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"2\",envoy_cluster_name=\"zz_app\"} 7\n"
                     "envoy_cluster_upstream_rq_xx{envoy_response_code_class=\"5\",envoy_cluster_name=\"zz_app\"} 2\n"
                     "\n"
                     "# TYPE envoy_http_downstream_rq_xx counter\n"
                     "envoy_http_downstream_rq_xx{envoy_response_code_class=\"2\","
                     "envoy_http_conn_manager_prefix=\"zz_in\"} 7\n"
                     "\n"
                     "# TYPE envoy_zz_unused counter\n"
                     "envoy_zz_unused{} 0\n"
                     "\n"
                     "# TYPE envoy_cluster_upstream_rq_active gauge\n"
                     "envoy_cluster_upstream_rq_active{envoy_cluster_name=\"zz_app\"} 1\n"
                     "\n"
                     "# TYPE envoy_zz_neg_gauge gauge\n"
                     "envoy_zz_neg_gauge{} 0\n"
                     "\n");
    /* /stats?format=prometheus is the same page, and streaming does not change it. */
    char *same = render_stats("filter=zz&format=prometheus", 0, 1 << 20, &status, NULL);
    LG_EXPECT_STR(same, t);
    free(same);
    same = render_stats("filter=zz", 1, 10, &status, &steps);
    LG_EXPECT_STR(same, t);
    LG_EXPECT(steps > 3);
    free(same);
    free(t);
    t = render_stats("filter=nothing_matches_this", 1, 1 << 20, &status, NULL);
    LG_EXPECT_STR(t, "");
    free(t);
}

/* ------------------------------------------------------------------------------------------- */
/* Status pages                                                                                */
/* ------------------------------------------------------------------------------------------- */

LG_TEST(clusters_text_and_json)
{
    lg_strbuf_t out = LG_STRBUF_INIT;
    lg_admin_render_clusters(snapshot, 0, &out);
    LG_EXPECT_CONTAINS(out.data, "app::observability_name::app\n");
    LG_EXPECT_CONTAINS(out.data, "app::default_priority::max_connections::1024\n");
    LG_EXPECT_CONTAINS(out.data, "app::high_priority::max_retries::3\n");
    LG_EXPECT_CONTAINS(out.data, "app::added_via_api::false\n");
    LG_EXPECT_CONTAINS(out.data, "app::127.0.0.1:8081::cx_active::0\n");
    LG_EXPECT_CONTAINS(out.data, "app::127.0.0.1:8081::health_flags::healthy\n");
    LG_EXPECT_CONTAINS(out.data, "app::127.0.0.1:8081::weight::3\n");
    LG_EXPECT_CONTAINS(out.data, "app::127.0.0.2:8082::weight::1\n");
    LG_EXPECT_CONTAINS(out.data, "app::127.0.0.2:8082::hostname::\n");
    LG_EXPECT_CONTAINS(out.data, "other::added_via_api::false\n");
    lg_strbuf_dispose(&out);

    lg_admin_render_clusters(snapshot, 1, &out);
    LG_EXPECT_CONTAINS(out.data, "\"cluster_statuses\": [");
    LG_EXPECT_CONTAINS(out.data, "\"address\": \"127.0.0.2\",\n       \"port_value\": 8082");
    LG_EXPECT_CONTAINS(out.data, "\"eds_health_status\": \"HEALTHY\"");
    LG_EXPECT_CONTAINS(out.data, "\"weight\": 3,");
    LG_EXPECT_CONTAINS(out.data, "\"type\": \"GAUGE\",\n       \"name\": \"cx_active\"");
    LG_EXPECT_CONTAINS(out.data, "\"priority\": \"HIGH\"");
    LG_EXPECT_CONTAINS(out.data, "\"observability_name\": \"other\"");
    lg_strbuf_dispose(&out);
}

LG_TEST(listeners_text_and_json)
{
    lg_strbuf_t out = LG_STRBUF_INIT;
    lg_admin_render_listeners(snapshot, 0, &out);
    LG_EXPECT_STR(out.data, "ingress::127.0.0.1:10000\n");
    lg_strbuf_dispose(&out);
    lg_admin_render_listeners(snapshot, 1, &out);
    LG_EXPECT_STR(out.data, "{\n \"listener_statuses\": [\n  {\n   \"name\": \"ingress\",\n   \"local_address\": {\n"
                            "    \"socket_address\": {\n     \"address\": \"127.0.0.1\",\n     \"port_value\": 10000\n"
                            "    }\n   }\n  }\n ]\n}\n");
    lg_strbuf_dispose(&out);
    lg_admin_render_listeners(NULL, 0, &out);
    LG_EXPECT(out.len == 0);
    lg_strbuf_dispose(&out);
}

LG_TEST(server_info_prints_every_option)
{
    lg_options_t opts;
    char errbuf[256];
    char *argv[] = {"legate", "-c", "x.yaml", "-l", "debug", "--drain-strategy", "immediate", "--service-node", "nn"};
    LG_EXPECT_INT(lg_options_parse(&opts, 9, argv, errbuf, sizeof(errbuf)), 0);
    lg_admin_server_info_t info = {"legate/9.9", LG_ADMIN_STATE_INITIALIZING, 3725, &opts, 4, bootstrap.pb};
    lg_strbuf_t out = LG_STRBUF_INIT;
    lg_admin_render_server_info(&info, &out);
    LG_EXPECT_CONTAINS(out.data, "\"version\": \"legate/9.9\",\n \"state\": \"INITIALIZING\",\n"
                                 " \"uptime_current_epoch\": \"3725s\",\n \"uptime_all_epochs\": \"3725s\"");
    LG_EXPECT_CONTAINS(out.data, "\"concurrency\": 4,");
    LG_EXPECT_CONTAINS(out.data, "\"config_path\": \"x.yaml\",");
    LG_EXPECT_CONTAINS(out.data, "\"log_level\": \"debug\",");
    LG_EXPECT_CONTAINS(out.data, "\"drain_strategy\": \"Immediate\",");
    LG_EXPECT_CONTAINS(out.data, "\"service_node\": \"nn\",");
    LG_EXPECT_CONTAINS(out.data, "\"drain_time\": \"600s\",");
    LG_EXPECT_CONTAINS(out.data, "\"mode\": \"Serve\",");
    LG_EXPECT_CONTAINS(out.data, "\"base_id\": \"0\",");
    LG_EXPECT_CONTAINS(out.data, "\"node\": {\n  \"id\": \"n1\",\n  \"cluster\": \"c1\"\n }");
    lg_strbuf_dispose(&out);
    LG_EXPECT_STR(lg_admin_state_name(LG_ADMIN_STATE_PRE_INITIALIZING), "PRE_INITIALIZING");
}

LG_TEST(runtime_flattens_static_layers)
{
    lg_strbuf_t out = LG_STRBUF_INIT;
    lg_admin_render_runtime(bootstrap.pb, &out);
    LG_EXPECT_STR(out.data, "{\n \"entries\": {\n"
                            "  \"a.b\": {\n   \"layer_values\": [\n    \"5\",\n    \"\"\n   ],\n   \"final_value\": \"5\"\n  },\n"
                            "  \"flag\": {\n   \"layer_values\": [\n    \"true\",\n    \"\"\n   ],\n   \"final_value\": \"true\"\n  },\n"
                            "  \"s\": {\n   \"layer_values\": [\n    \"text\",\n    \"other\"\n   ],\n   \"final_value\": \"other\"\n  }\n"
                            " },\n \"layers\": [\n  \"static_layer_0\",\n  \"override\"\n ]\n}\n");
    lg_strbuf_dispose(&out);
    lg_admin_render_runtime(NULL, &out);
    LG_EXPECT_STR(out.data, "{\n \"entries\": {},\n \"layers\": []\n}\n");
    lg_strbuf_dispose(&out);
    lg_admin_render_memory(&out);
    LG_EXPECT_CONTAINS(out.data, "\"allocated\": \"");
    LG_EXPECT_CONTAINS(out.data, "\"total_physical_bytes\": \"");
    lg_strbuf_dispose(&out);
}

/* ------------------------------------------------------------------------------------------- */
/* /config_dump                                                                                */
/* ------------------------------------------------------------------------------------------- */

static int dump(const char *qs, lg_strbuf_t *out)
{
    lg_admin_query_t q;
    lg_admin_config_dump_input_t in = {
        .bootstrap = &bootstrap, .snapshot = snapshot, .loaded_at_s = 1700000000, .loaded_at_nanos = 250000000};
    query(&q, qs);
    int status = lg_admin_render_config_dump(&in, &q, out);
    lg_admin_query_dispose(&q);
    return status;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        ++n;
    return n;
}

LG_TEST(config_dump_has_envoys_structure)
{
    lg_strbuf_t out = LG_STRBUF_INIT;
    LG_EXPECT_INT(dump("", &out), 200);
    const char *order[] = {"envoy.admin.v3.BootstrapConfigDump", "envoy.admin.v3.ClustersConfigDump",
                           "envoy.admin.v3.ListenersConfigDump", "envoy.admin.v3.RoutesConfigDump",
                           "envoy.admin.v3.ScopedRoutesConfigDump", "envoy.admin.v3.SecretsConfigDump"};
    const char *prev = out.data;
    for (size_t i = 0; i < 6; ++i) {
        const char *p = strstr(out.data, order[i]);
        LG_EXPECT(p != NULL && p >= prev);
        prev = p != NULL ? p : prev;
    }
    LG_EXPECT(strstr(out.data, "EndpointsConfigDump") == NULL);
    LG_EXPECT_CONTAINS(out.data, "\"static_clusters\": [\n");
    LG_EXPECT_CONTAINS(out.data, "\"@type\": \"type.googleapis.com/envoy.config.cluster.v3.Cluster\",\n"
                                 "      \"name\": \"app\"");
    LG_EXPECT_CONTAINS(out.data, "\"@type\": \"type.googleapis.com/envoy.config.listener.v3.Listener\"");
    LG_EXPECT_CONTAINS(out.data, "\"@type\": \"type.googleapis.com/envoy.config.route.v3.RouteConfiguration\",\n"
                                 "      \"name\": \"local_route\"");
    LG_EXPECT_CONTAINS(out.data, "\"last_updated\": \"2023-11-14T22:13:20.250Z\"");
    LG_EXPECT_INT(count(out.data, "\"last_updated\""), 1 + 2 + 1 + 1);
    lg_strbuf_dispose(&out);

    LG_EXPECT_INT(dump("include_eds", &out), 200);
    LG_EXPECT_CONTAINS(out.data, "envoy.admin.v3.EndpointsConfigDump");
    LG_EXPECT_CONTAINS(out.data, "\"load_balancing_weight\": 3");
    LG_EXPECT(strstr(out.data, "EndpointsConfigDump") < strstr(out.data, "ListenersConfigDump"));
    lg_strbuf_dispose(&out);
}

LG_TEST(config_dump_resource_mask_and_errors)
{
    lg_strbuf_t out = LG_STRBUF_INIT;
    LG_EXPECT_INT(dump("resource=static_clusters&mask=cluster.name", &out), 200);
    LG_EXPECT_STR(out.data, "{\n \"configs\": [\n"
                            "  {\n   \"@type\": \"type.googleapis.com/envoy.admin.v3.ClustersConfigDump.StaticCluster\",\n"
                            "   \"cluster\": {\n    \"@type\": \"type.googleapis.com/envoy.config.cluster.v3.Cluster\",\n"
                            "    \"name\": \"app\"\n   }\n  },\n"
                            "  {\n   \"@type\": \"type.googleapis.com/envoy.admin.v3.ClustersConfigDump.StaticCluster\",\n"
                            "   \"cluster\": {\n    \"@type\": \"type.googleapis.com/envoy.config.cluster.v3.Cluster\",\n"
                            "    \"name\": \"other\"\n   }\n  }\n ]\n}\n");
    lg_strbuf_dispose(&out);

    LG_EXPECT_INT(dump("resource=static_clusters&name_regex=oth.*", &out), 200);
    LG_EXPECT_INT(count(out.data, "StaticCluster"), 1);
    LG_EXPECT_CONTAINS(out.data, "\"name\": \"other\"");
    lg_strbuf_dispose(&out);

    LG_EXPECT_INT(dump("resource=dynamic_active_clusters", &out), 200);
    LG_EXPECT_STR(out.data, "{}\n");
    lg_strbuf_dispose(&out);

    /* A whole-dump mask keeps the dumps it fits, trimmed. */
    LG_EXPECT_INT(dump("mask=static_listeners", &out), 200);
    LG_EXPECT_INT(count(out.data, "ConfigDump\""), 1);
    LG_EXPECT_CONTAINS(out.data, "ListenersConfigDump");
    lg_strbuf_dispose(&out);
    LG_EXPECT_INT(dump("mask=bootstrap.node", &out), 200);
    LG_EXPECT_STR(out.data, "{\n \"configs\": [\n  {\n   \"@type\": \"type.googleapis.com/envoy.admin.v3.BootstrapConfigDump\",\n"
                            "   \"bootstrap\": {\n    \"node\": {\n     \"id\": \"n1\",\n     \"cluster\": \"c1\"\n    }\n"
                            "   }\n  }\n ]\n}\n");
    lg_strbuf_dispose(&out);

    LG_EXPECT_INT(dump("mask=no_such_field", &out), 400);
    LG_EXPECT_STR(out.data, "FieldMask no_such_field could not be successfully applied to any configs.");
    lg_strbuf_dispose(&out);
    LG_EXPECT_INT(dump("resource=static_clusters&mask=cluster.nope", &out), 400);
    LG_EXPECT_CONTAINS(out.data, "could not be successfully used.");
    lg_strbuf_dispose(&out);
    LG_EXPECT_INT(dump("resource=nope", &out), 404);
    LG_EXPECT_STR(out.data, "nope not found in config dump");
    lg_strbuf_dispose(&out);
    LG_EXPECT_INT(dump("resource=bootstrap", &out), 400);
    LG_EXPECT_STR(out.data, "bootstrap is not a repeated field. Use ?mask=bootstrap to get only this field");
    lg_strbuf_dispose(&out);
    LG_EXPECT_INT(dump("name_regex=(", &out), 400);
    lg_strbuf_dispose(&out);
}

/* ------------------------------------------------------------------------------------------- */
/* The server over a real socket                                                               */
/* ------------------------------------------------------------------------------------------- */

typedef struct st_fake_server_t {
    lg_admin_state_t state;
    int quits, drains, last_graceful;
} fake_server_t;

static lg_snapshot_t *fake_snapshot(void *data)
{
    return snapshot;
}

static lg_admin_state_t fake_state(void *data)
{
    return ((fake_server_t *)data)->state;
}

static void fake_quit(void *data)
{
    ++((fake_server_t *)data)->quits;
}

static void fake_drain(void *data, int graceful, int inbound_only)
{
    fake_server_t *f = data;
    ++f->drains;
    f->last_graceful = graceful;
}

static h2o_evloop_t *loop;
static lg_admin_t *admin;
static fake_server_t fake;

static int client_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lg_admin_port(admin))};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Whether `buf` holds `n` complete responses (content-length or chunked framing). */
static int complete_responses(const char *buf, size_t len, int n)
{
    size_t pos = 0;
    for (int i = 0; i < n; ++i) {
        const char *end = memmem(buf + pos, len - pos, "\r\n\r\n", 4);
        if (end == NULL)
            return 0;
        size_t body = (size_t)(end - buf) + 4;
        const char *cl = memmem(buf + pos, body - pos, "content-length: ", 16);
        if (cl != NULL) {
            pos = body + strtoul(cl + 16, NULL, 10);
        } else {
            const char *last = memmem(buf + body, len - body, "\r\n0\r\n\r\n", 7);
            if (last == NULL)
                return 0;
            pos = (size_t)(last - buf) + 7;
        }
        if (pos > len)
            return 0;
    }
    return 1;
}

/* Sends `req` and runs the admin's loop until `n` responses arrived (or the peer closed, when
 * `until_close`). Returns the bytes received (malloc'd). */
static char *exchange_on(int fd, const char *req, int n, int until_close)
{
    lg_strbuf_t got = LG_STRBUF_INIT;
    lg_strbuf_puts(&got, "");
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
        return lg_strbuf_release(&got);
    for (int i = 0; i < 1000; ++i) {
        h2o_evloop_run(loop, 5);
        char buf[65536];
        ssize_t r;
        while ((r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
            lg_strbuf_append(&got, buf, (size_t)r);
        if (r == 0 && until_close)
            break;
        if (!until_close && complete_responses(got.data, got.len, n))
            break;
    }
    return lg_strbuf_release(&got);
}

static char *exchange(const char *req)
{
    int fd = client_connect();
    char *r = exchange_on(fd, req, 1, 0);
    close(fd);
    return r;
}

LG_TEST(server_status_codes_and_paths)
{
    char *r = exchange("GET /ready HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
    LG_EXPECT_CONTAINS(r, "content-type: text/plain; charset=UTF-8\r\n");
    LG_EXPECT_CONTAINS(r, "\r\n\r\nLIVE\n");
    free(r);

    fake.state = LG_ADMIN_STATE_INITIALIZING;
    r = exchange("GET /ready HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT(strncmp(r, "HTTP/1.1 503 ", 13) == 0);
    LG_EXPECT_CONTAINS(r, "\r\n\r\nINITIALIZING\n");
    free(r);
    fake.state = LG_ADMIN_STATE_LIVE;

    r = exchange("GET /quitquitquit HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT(strncmp(r, "HTTP/1.1 405 Method Not Allowed\r\n", 33) == 0);
    LG_EXPECT_CONTAINS(r, "\r\n\r\nMethod GET not allowed, POST required.");
    free(r);
    LG_EXPECT_INT(fake.quits, 0);

    r = exchange("GET /nope?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT(strncmp(r, "HTTP/1.1 404 ", 13) == 0);
    LG_EXPECT_CONTAINS(r, "\r\n\r\ninvalid path. admin commands are:\n");
    LG_EXPECT_CONTAINS(r, "  /quitquitquit (POST): exit the server\n");
    free(r);

    r = exchange("GET /help HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT_CONTAINS(r, "\r\n\r\nadmin commands are:\n  /: Admin home page\n  /certs: print certs on machine\n");
    LG_EXPECT_CONTAINS(r, "  /stats/prometheus: print server stats in prometheus format\n");
    free(r);

    /* A path is matched whole: /stats/ is not /stats. */
    r = exchange("GET /stats/ HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT(strncmp(r, "HTTP/1.1 404 ", 13) == 0);
    free(r);

    r = exchange("GET /clusters?format=json HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT_CONTAINS(r, "content-type: application/json\r\n");
    LG_EXPECT_CONTAINS(r, "\"cluster_statuses\"");
    free(r);

    r = exchange("GET /stats?filter=(bad HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
    LG_EXPECT_CONTAINS(r, "\r\n\r\nInvalid re2 regex");
    free(r);
}

LG_TEST(server_mutating_endpoints_call_hooks)
{
    char *r = exchange("POST /healthcheck/fail HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    LG_EXPECT_CONTAINS(r, "\r\n\r\nOK\n");
    free(r);
    LG_EXPECT_INT(lg_admin_health_check_failed(), 1);
    r = exchange("GET /ready HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT(strncmp(r, "HTTP/1.1 503 ", 13) == 0);
    LG_EXPECT_CONTAINS(r, "\r\n\r\nDRAINING\n");
    free(r);
    r = exchange("GET /server_info HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT_CONTAINS(r, "\"state\": \"DRAINING\"");
    free(r);
    r = exchange("POST /healthcheck/ok HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT_CONTAINS(r, "\r\n\r\nOK\n");
    free(r);
    LG_EXPECT_INT(lg_admin_health_check_failed(), 0);

    r = exchange("POST /drain_listeners?graceful&inboundonly HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT_CONTAINS(r, "\r\n\r\nOK\n");
    free(r);
    LG_EXPECT_INT(fake.drains, 1);
    LG_EXPECT_INT(fake.last_graceful, 1);

    int before = lg_log_levels[LG_LOGC_upstream];
    r = exchange("POST /logging?paths=upstream:trace,admin:warning HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT(strncmp(r, "HTTP/1.1 200 ", 13) == 0);
    LG_EXPECT_CONTAINS(r, "  upstream: trace\n");
    LG_EXPECT_CONTAINS(r, "  admin: warning\n");
    free(r);
    LG_EXPECT_INT(lg_log_levels[LG_LOGC_upstream], LG_LOG_TRACE);
    r = exchange("POST /logging?paths=upstream:info,nosuch:debug HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
    LG_EXPECT_CONTAINS(r, "error: unknown logger name\n\n");
    free(r);
    LG_EXPECT_INT(lg_log_levels[LG_LOGC_upstream], LG_LOG_TRACE); /* all or nothing */
    r = exchange("POST /logging?level=error HTTP/1.1\r\nHost: x\r\n\r\n");
    LG_EXPECT_CONTAINS(r, "  main: error\n");
    free(r);
    lg_log_set_level((lg_log_level_t)before);

    /* The quit hook runs once the response has been written. */
    int fd = client_connect();
    r = exchange_on(fd, "POST /quitquitquit HTTP/1.1\r\nHost: x\r\n\r\n", 1, 0);
    LG_EXPECT_CONTAINS(r, "\r\n\r\nOK\n");
    free(r);
    for (int i = 0; i < 100 && fake.quits == 0; ++i)
        h2o_evloop_run(loop, 5);
    LG_EXPECT_INT(fake.quits, 1);
    close(fd);
}

LG_TEST(server_keep_alive_pipelining_bodies)
{
    int fd = client_connect();
    /* Two pipelined requests, the first with a body, answered in order on one connection. */
    char *r = exchange_on(fd,
                          "POST /healthcheck/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                          "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n",
                          2, 0);
    const char *second = strstr(r + 1, "HTTP/1.1 200");
    LG_EXPECT(strncmp(r, "HTTP/1.1 200", 12) == 0 && second != NULL);
    LG_EXPECT_CONTAINS(second != NULL ? second : "", "LIVE\n");
    free(r);
    /* A chunked body on the same connection. */
    r = exchange_on(fd, "POST /healthcheck/ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "3\r\nabc\r\n0\r\n\r\n",
                    1, 0);
    LG_EXPECT_CONTAINS(r, "\r\n\r\nOK\n");
    free(r);
    /* Streamed /stats: chunked, complete, on the same connection still. */
    r = exchange_on(fd, "GET /stats?filter=zz_app HTTP/1.1\r\nHost: x\r\n\r\n", 1, 0);
    LG_EXPECT_CONTAINS(r, "transfer-encoding: chunked\r\n");
    LG_EXPECT_CONTAINS(r, "cluster.zz_app.upstream_rq_2xx: 7\n");
    LG_EXPECT_CONTAINS(r, "\r\n0\r\n\r\n");
    free(r);
    /* Connection: close is honoured. */
    r = exchange_on(fd, "GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 1, 1);
    LG_EXPECT_CONTAINS(r, "connection: close\r\n");
    LG_EXPECT_CONTAINS(r, "LIVE\n");
    free(r);
    close(fd);

    /* HTTP/1.0: the streamed body ends with the connection. */
    fd = client_connect();
    r = exchange_on(fd, "GET /stats?filter=zz_app.upstream_rq_total HTTP/1.0\r\n\r\n", 1, 1);
    LG_EXPECT(strncmp(r, "HTTP/1.0 200 OK\r\n", 17) == 0);
    LG_EXPECT(strstr(r, "transfer-encoding") == NULL);
    LG_EXPECT_CONTAINS(r, "\r\n\r\ncluster.zz_app.upstream_rq_total: 9\n");
    free(r);
    close(fd);

    /* Malformed and oversized requests are refused and the connection closed. */
    fd = client_connect();
    r = exchange_on(fd, "GET /ready HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", 1, 1);
    LG_EXPECT(strncmp(r, "HTTP/1.1 400 ", 13) == 0);
    free(r);
    close(fd);
    fd = client_connect();
    r = exchange_on(fd, "POST /healthcheck/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n", 1, 1);
    LG_EXPECT(strncmp(r, "HTTP/1.1 413 ", 13) == 0);
    free(r);
    close(fd);
}

LG_TEST(server_access_log_has_envoys_default_format)
{
    char *r = exchange("GET /ready?x=1 HTTP/1.1\r\nHost: admin.local\r\nUser-Agent: probe/1\r\n"
                       "X-Request-Id: rid-1\r\n\r\n");
    free(r);
    FILE *f = fopen(log_path, "r");
    LG_EXPECT(f != NULL);
    char line[1024], last[1024] = "";
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, "/ready?x=1") != NULL)
            strcpy(last, line);
    if (f != NULL)
        fclose(f);
    /* [%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ... */
    LG_EXPECT(last[0] == '[' && strlen(last) > 26 && last[5] == '-' && last[11] == 'T' && last[24] == 'Z' &&
              last[25] == ']');
    LG_EXPECT_CONTAINS(last, "] \"GET /ready?x=1 HTTP/1.1\" 200 - 0 5 ");
    LG_EXPECT_CONTAINS(last, " - \"-\" \"probe/1\" \"rid-1\" \"admin.local\" \"-\"\n");
}

int main(void)
{
    if (setup() != 0)
        return 1;
    fake_stats();
    LG_RUN(query_strings_decode_like_envoy);
    LG_RUN(json_pretty_matches_protobuf);
    LG_RUN(json_mask_keeps_named_fields_and_type);
    LG_RUN(tag_extraction_follows_envoy_defaults);
    LG_RUN(stats_text_json_filters);
    LG_RUN(stats_histograms_text_json_prometheus);
    LG_RUN(stats_bad_parameters_are_400);
    LG_RUN(stats_prometheus_groups_and_labels);
    LG_RUN(clusters_text_and_json);
    LG_RUN(listeners_text_and_json);
    LG_RUN(server_info_prints_every_option);
    LG_RUN(runtime_flattens_static_layers);
    LG_RUN(config_dump_has_envoys_structure);
    LG_RUN(config_dump_resource_mask_and_errors);

    loop = h2o_evloop_create();
    lg_admin_hooks_t hooks = {.data = &fake,
                              .snapshot = fake_snapshot,
                              .state = fake_state,
                              .quit = fake_quit,
                              .drain_listeners = fake_drain,
                              .concurrency = 2};
    lg_error_t err;
    admin = lg_admin_start(loop, &bootstrap, &hooks, &err);
    if (admin == NULL) {
        fprintf(stderr, "lg_admin_start: %s\n", err.msg);
        return 1;
    }
    LG_RUN(server_status_codes_and_paths);
    LG_RUN(server_mutating_endpoints_call_hooks);
    LG_RUN(server_keep_alive_pipelining_bodies);
    LG_RUN(server_access_log_has_envoys_default_format);
    lg_admin_stop(admin);
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);

    lg_snapshot_release(snapshot);
    lg_bootstrap_dispose(&bootstrap);
    unlink(log_path);
    return LG_TEST_END();
}
