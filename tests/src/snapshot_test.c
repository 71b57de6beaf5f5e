/*
 * Unit tests of snapshot building (src/snapshot.c) from sources other than static_resources: an
 * EDS cluster takes its hosts from the endpoint lookup, an RDS connection manager its route table
 * from the route lookup, as xDS will supply them.
 */
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "lg_test.h"
#include "load_balancer.h"
#include "pb_yaml.h"
#include "route_table.h"
#include "snapshot.h"

static const char *bootstrap_yaml =
    "static_resources:\n"
    "  listeners:\n"
    "  - name: l\n"
    "    address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n"
    "    filter_chains:\n"
    "    - filters:\n"
    "      - name: envoy.filters.network.http_connection_manager\n"
    "        typed_config:\n"
    "          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n"
    "          stat_prefix: t\n"
    "          rds: {route_config_name: r1, config_source: {ads: {}}}\n"
    "          http_filters:\n"
    "          - name: envoy.filters.http.router\n"
    "            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}\n"
    "  clusters:\n"
    "  - name: c1\n"
    "    type: EDS\n"
    "    eds_cluster_config: {service_name: svc1, eds_config: {ads: {}}}\n";

static ProtobufCMessage *route_config, *endpoints;

static const struct Envoy__Config__Route__V3__RouteConfiguration *find_route(void *ctx, const char *name)
{
    return strcmp(name, "r1") == 0 ? (const void *)route_config : NULL;
}

static const struct Envoy__Config__Endpoint__V3__ClusterLoadAssignment *find_endpoints(void *ctx, const char *name)
{
    return strcmp(name, "svc1") == 0 ? (const void *)endpoints : NULL;
}

static ProtobufCMessage *load(const ProtobufCMessageDescriptor *d, const char *yaml)
{
    lg_error_t err;
    ProtobufCMessage *m = lg_pb_new(d);
    if (lg_pb_from_yaml(m, yaml, strlen(yaml), "t.yaml", NULL, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        protobuf_c_message_free_unpacked(m, NULL);
        return NULL;
    }
    return m;
}

LG_TEST(test_rds_and_eds_from_lookups)
{
    lg_bootstrap_t b;
    lg_error_t err;
    LG_EXPECT_INT(lg_bootstrap_load_text(&b, bootstrap_yaml, strlen(bootstrap_yaml), "b.yaml", &err), 0);
    route_config = load(&envoy__config__route__v3__route_configuration__descriptor,
                        "name: r1\nvirtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, "
                        "route: {cluster: c1}}]}]\n");
    endpoints = load(&envoy__config__endpoint__v3__cluster_load_assignment__descriptor,
                     "cluster_name: svc1\nendpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: "
                     "{address: 127.0.0.1, port_value: 8080}}}}, {endpoint: {address: {socket_address: "
                     "{address: 127.0.0.2, port_value: 8080}}}}]}]\n");
    LG_EXPECT(route_config != NULL && endpoints != NULL);
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = b.pb->static_resources;
    lg_snapshot_sources_t src = {(const void *)sr->listeners, sr->n_listeners, (const void *)sr->clusters,
                                 sr->n_clusters, "listeners", "clusters", find_route, find_endpoints, NULL, NULL, NULL};
    lg_snapshot_t *s = lg_snapshot_build_from(&b, &src, 0, &err);
    LG_EXPECT(s != NULL);
    if (s != NULL) {
        LG_EXPECT_INT(s->n_clusters, 1);
        LG_EXPECT_INT(s->clusters[0]->n_hosts, 2); /* from the endpoint lookup */
        LG_EXPECT_STR(s->clusters[0]->hosts[1]->address_string, "127.0.0.2:8080");
        LG_EXPECT(s->listeners[0]->chains[0]->hcm->route_table != NULL); /* from the route lookup */
        lg_snapshot_release(s);
    }
    /* Without lookups the same config builds, with no hosts and no routes yet. */
    src.find_route = NULL;
    src.find_endpoints = NULL;
    s = lg_snapshot_build_from(&b, &src, 0, &err);
    LG_EXPECT(s != NULL);
    if (s != NULL) {
        LG_EXPECT_INT(s->clusters[0]->n_hosts, 0);
        LG_EXPECT(s->listeners[0]->chains[0]->hcm->route_table == NULL);
        lg_snapshot_release(s);
    }
    protobuf_c_message_free_unpacked(route_config, NULL);
    protobuf_c_message_free_unpacked(endpoints, NULL);
    lg_bootstrap_dispose(&b);
}

/* One STATIC cluster of two hosts in flow style, with the given LB fields. */
#define LB_CLUSTER(name, fields)                                                                   \
    "  - {name: " name ", type: STATIC, " fields ", load_assignment: {cluster_name: " name ",\n"      \
    "     endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, "   \
    "port_value: 1}}}},\n"                                                                         \
    "     {endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 2}}}}]}]}}\n"

LG_TEST(test_lb_configs_with_envoys_defaults)
{
    static const char yaml[] = "static_resources:\n  clusters:\n" LB_CLUSTER("a_ring", "lb_policy: RING_HASH")
        LB_CLUSTER("b_maglev", "lb_policy: MAGLEV, maglev_lb_config: {table_size: 251}")
        LB_CLUSTER("c_lr", "lb_policy: LEAST_REQUEST, least_request_lb_config: {choice_count: 3, "
                           "active_request_bias: {default_value: 0.5, runtime_key: k}}")
        LB_CLUSTER("d_ring", "lb_policy: RING_HASH, ring_hash_lb_config: {minimum_ring_size: 10, "
                             "maximum_ring_size: 20, hash_function: MURMUR_HASH_2}");
    lg_bootstrap_t b;
    lg_error_t err;
    LG_EXPECT_INT(lg_bootstrap_load_text(&b, yaml, strlen(yaml), "b.yaml", &err), 0);
    lg_snapshot_t *s = lg_snapshot_build(&b, &err);
    LG_EXPECT(s != NULL);
    if (s != NULL) {
        const lg_cluster_t *ring = s->clusters[0], *maglev = s->clusters[1], *lr = s->clusters[2], *small = s->clusters[3];
        LG_EXPECT_INT(ring->lb_policy, LG_LB_RING_HASH);
        LG_EXPECT_INT(lg_lb_table_size(ring->lb_table), 1024); /* minimum_ring_size 1024 */
        LG_EXPECT_INT(ring->lb.hash_function, LG_HASH_FUNCTION_XX_HASH);
        LG_EXPECT_INT(lg_lb_table_size(maglev->lb_table), 251);
        LG_EXPECT_INT(lr->lb.choice_count, 3);
        LG_EXPECT(lr->lb.active_request_bias == 0.5);
        LG_EXPECT(lr->lb_table == NULL);
        LG_EXPECT_INT(small->lb.hash_function, LG_HASH_FUNCTION_MURMUR_HASH_2);
        LG_EXPECT_INT(lg_lb_table_size(small->lb_table), 10);
        lg_snapshot_release(s);
    }
    lg_bootstrap_dispose(&b);
}

int main(void)
{
    LG_RUN(test_rds_and_eds_from_lookups);
    LG_RUN(test_lb_configs_with_envoys_defaults);
    return LG_TEST_END();
}
