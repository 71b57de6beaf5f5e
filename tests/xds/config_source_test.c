/*
 * Config sources to stream specs (xds/config_source.c) and the subscription sets
 * (xds/subscription.c): which server, method, credentials and options a bootstrap's
 * dynamic_resources mean, what is refused and how the error reads, and the name-set bookkeeping
 * behind SotW and delta requests.
 */
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "lg_test.h"
#include "xds/xds_internal.h"

static const char *const BOOTSTRAP =
    "node: {id: n1, cluster: c1}\n"
    "dynamic_resources:\n"
    "  ads_config:\n"
    "    api_type: GRPC\n"
    "    transport_api_version: V3\n"
    "    set_node_on_first_message_only: true\n"
    "    grpc_services: [{envoy_grpc: {cluster_name: xds_cluster}}]\n"
    "    rate_limit_settings: {max_tokens: 5}\n"
    "  cds_config: {resource_api_version: V3, ads: {}}\n"
    "  lds_config:\n"
    "    resource_api_version: V3\n"
    "    initial_fetch_timeout: 2.5s\n"
    "    api_config_source:\n"
    "      api_type: DELTA_GRPC\n"
    "      transport_api_version: V3\n"
    "      grpc_services:\n"
    "      - google_grpc: {target_uri: 'localhost:1234', stat_prefix: lds}\n"
    "        initial_metadata: [{key: X-Token, value: secret}]\n"
    "static_resources:\n"
    "  clusters:\n"
    "  - name: xds_cluster\n"
    "    type: STATIC\n"
    "    connect_timeout: 1s\n"
    "    http2_protocol_options: {}\n"
    "    load_assignment:\n"
    "      cluster_name: xds_cluster\n"
    "      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 18000}}}}]}]\n"
    "  - name: xds6\n"
    "    type: STATIC\n"
    "    connect_timeout: 1s\n"
    "    load_assignment:\n"
    "      cluster_name: xds6\n"
    "      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: '::1', port_value: 18001}}}}]}]\n"
    "  - name: xdsdns\n"
    "    type: STRICT_DNS\n"
    "    connect_timeout: 1s\n"
    "    load_assignment:\n"
    "      cluster_name: xdsdns\n"
    "      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: cp.example, port_value: 443}}}}]}]\n"
    "  - name: xds_tls\n"
    "    type: STATIC\n"
    "    connect_timeout: 1s\n"
    "    transport_socket:\n"
    "      name: envoy.transport_sockets.tls\n"
    "      typed_config:\n"
    "        '@type': type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n"
    "        sni: cp.test\n"
    "        common_tls_context:\n"
    "          validation_context: {trusted_ca: {filename: " LG_SOURCE_DIR "/tests/configs/certs/ca.pem}}\n"
    "          tls_certificates:\n"
    "          - certificate_chain: {filename: " LG_SOURCE_DIR "/tests/configs/certs/server.pem}\n"
    "            private_key: {filename: " LG_SOURCE_DIR "/tests/configs/certs/server.key}\n"
    "    load_assignment:\n"
    "      cluster_name: xds_tls\n"
    "      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 18443}}}}]}]\n";

static lg_bootstrap_t load(void)
{
    lg_bootstrap_t b;
    lg_error_t err = {{0}};
    int rc = lg_bootstrap_load_text(&b, BOOTSTRAP, strlen(BOOTSTRAP), "test.yaml", &err);
    if (rc != 0) {
        fprintf(stderr, "bootstrap: %s\n", err.msg);
        abort();
    }
    return b;
}

LG_TEST(ads_config_resolves_to_the_static_cluster)
{
    lg_bootstrap_t b = load();
    lg__xds_stream_spec_t spec;
    lg_error_t err = {{0}};
    LG_EXPECT_INT(lg__xds_spec_from_api(b.pb, b.pb->dynamic_resources->ads_config, 1, "ads_config", &spec, &err), 0);
    LG_EXPECT(spec.ads && !spec.delta);
    LG_EXPECT_STR(spec.target.target, "ipv4:127.0.0.1:18000");
    LG_EXPECT_STR(spec.target.authority, "xds_cluster");
    LG_EXPECT_INT(spec.target.creds, LG__XDS_CREDS_INSECURE);
    LG_EXPECT_INT(spec.target.max_receive_bytes, -1);
    LG_EXPECT(spec.node_once);
    LG_EXPECT(spec.rl_max_tokens == 5 && spec.rl_fill_rate == 10); /* fill_rate defaults to Envoy's 10/s */
    lg__xds_spec_dispose(&spec);
    LG_EXPECT_STR(lg__xds_method(LG_XDS_CDS, 1, 0),
                  "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources");
    LG_EXPECT_STR(lg__xds_method(LG_XDS_LDS, 1, 1),
                  "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources");
    LG_EXPECT_STR(lg__xds_method(LG_XDS_EDS, 0, 0),
                  "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints");
    LG_EXPECT_STR(lg__xds_method(LG_XDS_RDS, 0, 1), "/envoy.service.route.v3.RouteDiscoveryService/DeltaRoutes");
    lg_bootstrap_dispose(&b);
}

LG_TEST(per_type_delta_google_grpc_source)
{
    lg_bootstrap_t b = load();
    const Envoy__Config__Core__V3__ConfigSource *lds = b.pb->dynamic_resources->lds_config;
    lg__xds_stream_spec_t spec;
    lg_error_t err = {{0}};
    LG_EXPECT_INT(lg__xds_spec_from_api(b.pb, lds->api_config_source, 0, "lds_config", &spec, &err), 0);
    LG_EXPECT(!spec.ads && spec.delta && !spec.node_once);
    LG_EXPECT_STR(spec.target.target, "localhost:1234");
    LG_EXPECT(spec.target.authority == NULL);
    LG_EXPECT_INT(spec.target.n_metadata, 1);
    LG_EXPECT_STR(spec.target.md_keys[0], "x-token"); /* gRPC metadata keys are lower case */
    LG_EXPECT_STR(spec.target.md_values[0], "secret");
    LG_EXPECT(spec.rl_max_tokens == 0);
    lg__xds_spec_dispose(&spec);
    LG_EXPECT_INT(lg__xds_fetch_timeout_ms(lds), 2500);
    LG_EXPECT_INT(lg__xds_fetch_timeout_ms(b.pb->dynamic_resources->cds_config), 15000);
    LG_EXPECT_INT(lg__xds_fetch_timeout_ms(NULL), 15000);
    lg_bootstrap_dispose(&b);
}

/* An ApiConfigSource with one envoy_grpc service naming `cluster`. */
typedef struct st_api_t {
    Envoy__Config__Core__V3__ApiConfigSource api;
    Envoy__Config__Core__V3__GrpcService gs, *gsp[2];
    Envoy__Config__Core__V3__GrpcService__EnvoyGrpc eg;
} api_t;

static void make_api(api_t *a, int api_type, const char *cluster)
{
    envoy__config__core__v3__api_config_source__init(&a->api);
    envoy__config__core__v3__grpc_service__init(&a->gs);
    envoy__config__core__v3__grpc_service__envoy_grpc__init(&a->eg);
    a->eg.cluster_name = (char *)cluster;
    a->gs.target_specifier_case = ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC;
    a->gs.envoy_grpc = &a->eg;
    a->gsp[0] = a->gsp[1] = &a->gs;
    a->api.api_type = api_type;
    a->api.grpc_services = a->gsp;
    a->api.n_grpc_services = 1;
}

LG_TEST(targets_by_address_kind)
{
    lg_bootstrap_t b = load();
    api_t a;
    lg__xds_stream_spec_t spec;
    lg_error_t err = {{0}};
    make_api(&a, ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__GRPC, "xds6");
    LG_EXPECT_INT(lg__xds_spec_from_api(b.pb, &a.api, 0, "p", &spec, &err), 0);
    LG_EXPECT_STR(spec.target.target, "ipv6:[::1]:18001");
    lg__xds_spec_dispose(&spec);
    make_api(&a, ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__AGGREGATED_DELTA_GRPC, "xdsdns");
    LG_EXPECT_INT(lg__xds_spec_from_api(b.pb, &a.api, 1, "p", &spec, &err), 0);
    LG_EXPECT_STR(spec.target.target, "dns:///cp.example:443");
    LG_EXPECT(spec.delta && spec.ads);
    lg__xds_spec_dispose(&spec);
    lg_bootstrap_dispose(&b);
}

LG_TEST(tls_from_the_clusters_upstream_tls_context)
{
    lg_bootstrap_t b = load();
    api_t a;
    lg__xds_stream_spec_t spec;
    lg_error_t err = {{0}};
    make_api(&a, ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__GRPC, "xds_tls");
    LG_EXPECT_INT(lg__xds_spec_from_api(b.pb, &a.api, 0, "p", &spec, &err), 0);
    LG_EXPECT_STR(err.msg, "");
    LG_EXPECT_INT(spec.target.creds, LG__XDS_CREDS_TLS);
    LG_EXPECT_STR(spec.target.sni, "cp.test");
    LG_EXPECT(spec.target.root_pem != NULL && strstr(spec.target.root_pem, "BEGIN CERTIFICATE") != NULL);
    LG_EXPECT(spec.target.cert_pem != NULL && strstr(spec.target.cert_pem, "BEGIN CERTIFICATE") != NULL);
    LG_EXPECT(spec.target.key_pem != NULL && strstr(spec.target.key_pem, "PRIVATE KEY") != NULL);
    lg__xds_spec_dispose(&spec);
    lg_bootstrap_dispose(&b);
}

LG_TEST(unsupported_sources_are_refused_with_their_path)
{
    lg_bootstrap_t b = load();
    api_t a;
    lg__xds_stream_spec_t spec;
    lg_error_t err = {{0}};
    make_api(&a, ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__REST, "xds_cluster");
    LG_EXPECT_INT(lg__xds_spec_from_api(b.pb, &a.api, 0, "lds_config.api_config_source", &spec, &err), -1);
    LG_EXPECT_CONTAINS(err.msg, "lds_config.api_config_source.api_type: REST is not supported");
    make_api(&a, ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__GRPC, "nope");
    LG_EXPECT_INT(lg__xds_spec_from_api(b.pb, &a.api, 0, "x", &spec, &err), -1);
    LG_EXPECT_CONTAINS(err.msg, "x.grpc_services[0].envoy_grpc.cluster_name: unknown static cluster \"nope\"");
    make_api(&a, ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__GRPC, "xds_cluster");
    a.api.n_grpc_services = 2;
    LG_EXPECT_INT(lg__xds_spec_from_api(b.pb, &a.api, 0, "x", &spec, &err), -1);
    LG_EXPECT_CONTAINS(err.msg, "exactly one gRPC service");
    make_api(&a, ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__AGGREGATED_GRPC, "xds_cluster");
    LG_EXPECT_INT(lg__xds_spec_from_api(b.pb, &a.api, 0, "x", &spec, &err), -1);
    LG_EXPECT_CONTAINS(err.msg, "belongs in dynamic_resources.ads_config");

    /* config-source checks for child resources */
    Envoy__Config__Core__V3__ConfigSource cs;
    envoy__config__core__v3__config_source__init(&cs);
    Envoy__Config__Core__V3__PathConfigSource pcs;
    envoy__config__core__v3__path_config_source__init(&pcs);
    cs.config_source_specifier_case = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_PATH_CONFIG_SOURCE;
    cs.path_config_source = &pcs;
    LG_EXPECT_INT(lg_xds_config_source_check(b.pb, &cs, &err), -1);
    LG_EXPECT_CONTAINS(err.msg, "file-based");
    Envoy__Config__Core__V3__AggregatedConfigSource ads;
    envoy__config__core__v3__aggregated_config_source__init(&ads);
    cs.config_source_specifier_case = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS;
    cs.ads = &ads;
    LG_EXPECT_INT(lg_xds_config_source_check(b.pb, &cs, &err), 0);
    Envoy__Config__Bootstrap__V3__Bootstrap empty;
    envoy__config__bootstrap__v3__bootstrap__init(&empty);
    LG_EXPECT_INT(lg_xds_config_source_check(&empty, &cs, &err), -1);
    LG_EXPECT_CONTAINS(err.msg, "needs dynamic_resources.ads_config");
    lg_bootstrap_dispose(&b);
}

/* ------------------------------------------------------------------------------------------- */
/* Subscription sets                                                                           */
/* ------------------------------------------------------------------------------------------- */

#define NAMES(...) ((const char *const[]){__VA_ARGS__})

LG_TEST(name_sets_stay_sorted_and_unique)
{
    lg__xds_set_t s = {0};
    const char *in[] = {"m", "c", "x", "a", "c", "q"};
    for (size_t i = 0; i < 6; ++i)
        lg__xds_set_add(&s, in[i]);
    LG_EXPECT_INT(s.n, 5);
    for (size_t i = 1; i < s.n; ++i)
        LG_EXPECT(strcmp(s.v[i - 1].name, s.v[i].name) < 0);
    LG_EXPECT(lg__xds_set_find(&s, "q") != NULL);
    LG_EXPECT(lg__xds_set_find(&s, "b") == NULL);
    LG_EXPECT_INT(lg__xds_set_remove(&s, "m"), 1);
    LG_EXPECT_INT(lg__xds_set_remove(&s, "m"), 0);
    LG_EXPECT_INT(s.n, 4);
    lg__xds_entry_set_version(lg__xds_set_find(&s, "a"), "v1");
    LG_EXPECT_STR(lg__xds_set_find(&s, "a")->version, "v1");
    lg__xds_set_clear(&s);
    LG_EXPECT_INT(s.n, 0);
}

LG_TEST(delta_differences_cancel_out)
{
    lg__xds_sub_t *sub = lg__xds_sub_new(LG_XDS_EDS, 0, 0, 0);
    LG_EXPECT_INT(lg__xds_sub_set_names(sub, NAMES("a", "b"), NULL, 2, 1, 0), 1);
    lg__xds_sub_sent(sub); /* the first request went out */
    /* add c then drop it again before anything is sent: nothing to say about c */
    lg__xds_sub_set_names(sub, NAMES("a", "b", "c"), NULL, 3, 1, 0);
    lg__xds_sub_set_names(sub, NAMES("a"), NULL, 1, 1, 0);
    LG_EXPECT_INT(sub->delta_sub.n, 0);
    LG_EXPECT_INT(sub->delta_unsub.n, 1);
    LG_EXPECT_STR(sub->delta_unsub.v[0].name, "b");
    /* re-adding b cancels its unsubscribe */
    lg__xds_sub_set_names(sub, NAMES("a", "b"), NULL, 2, 1, 0);
    LG_EXPECT_INT(sub->delta_unsub.n, 0);
    LG_EXPECT_INT(sub->delta_sub.n, 0);
    LG_EXPECT(lg__xds_sub_wants_request(sub, 1) == 0);
    lg__xds_sub_free(sub);
}

LG_TEST(unsubscribing_forgets_the_resource)
{
    lg__xds_sub_t *sub = lg__xds_sub_new(LG_XDS_RDS, 0, 0, 0);
    lg__xds_sub_set_names(sub, NAMES("r1", "r2"), NULL, 2, 0, 0);
    lg__xds_entry_set_version(lg__xds_set_add(&sub->known, "r1"), "3");
    lg__xds_sub_answered(sub, "r1");
    LG_EXPECT_INT(sub->awaiting.n, 1); /* r2 still waits for its first answer */
    lg__xds_sub_set_names(sub, NAMES("r2"), NULL, 1, 0, 0);
    LG_EXPECT(lg__xds_set_find(&sub->known, "r1") == NULL);
    /* a name subscribed again waits for an answer again */
    lg__xds_sub_set_names(sub, NAMES("r1", "r2"), NULL, 2, 0, 100);
    LG_EXPECT(lg__xds_set_find(&sub->awaiting, "r1") != NULL);
    LG_EXPECT_INT(lg__xds_set_find(&sub->awaiting, "r1")->deadline, 100 + LG__XDS_DEFAULT_FETCH_TIMEOUT_MS);
    lg__xds_sub_free(sub);
}

int main(void)
{
    LG_RUN(ads_config_resolves_to_the_static_cluster);
    LG_RUN(per_type_delta_google_grpc_source);
    LG_RUN(targets_by_address_kind);
    LG_RUN(tls_from_the_clusters_upstream_tls_context);
    LG_RUN(unsupported_sources_are_refused_with_their_path);
    LG_RUN(name_sets_stay_sorted_and_unique);
    LG_RUN(delta_differences_cancel_out);
    LG_RUN(unsubscribing_forgets_the_resource);
    return LG_TEST_END();
}
