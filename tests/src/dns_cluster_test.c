/*
 * Unit tests of reading a DNS cluster's settings (src/dns_cluster.c, lg_dns_cluster_config_parse):
 * Envoy's defaults, the Cluster fields and the DnsCluster extension's (whose lookup-family enum is
 * shifted by one), resolvers from typed_dns_resolver_config and the deprecated fields as c-ares's
 * server list, and the refusals (a named resolver, another resolver extension, a LOGICAL_DNS
 * cluster with two endpoints, refresh rates of 1 ms or less).
 */
#include <stdio.h>
#include <string.h>

#include "dns_cluster.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "lg_test.h"
#include "pb_registry.h"
#include "pb_yaml.h"

#define ONE_EP "load_assignment: {endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: " \
               "{address: svc.test, port_value: 80}}}}]}]}\n"
#define CARES "'@type': type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig"

static int parse(const char *yaml, lg_dns_cluster_config_t *cfg, lg_error_t *err)
{
    ProtobufCMessage *m = lg_pb_new(&envoy__config__cluster__v3__cluster__descriptor);
    int r = -2;
    if (lg_pb_from_yaml(m, yaml, strlen(yaml), "c.yaml", NULL, err) == 0)
        r = lg_dns_cluster_config_parse((const void *)m, NULL, cfg, err);
    else
        fprintf(stderr, "%s\n", err->msg);
    protobuf_c_message_free_unpacked(m, NULL);
    return r;
}

LG_TEST(defaults)
{
    lg_dns_cluster_config_t c;
    lg_error_t err;
    LG_EXPECT_INT(parse("name: a\ntype: STRICT_DNS\n" ONE_EP, &c, &err), 0);
    LG_EXPECT_INT(c.logical, 0);
    LG_EXPECT_INT(c.family, LG_DNS_AUTO);
    LG_EXPECT_INT(c.refresh.refresh_ms, 5000);
    LG_EXPECT_INT(c.refresh.failure_base_ms, 0);
    LG_EXPECT_INT(c.refresh.respect_ttl, 0);
    LG_EXPECT(c.resolver.servers_csv == NULL); /* resolv.conf */
    lg_dns_cluster_config_clear(&c);
}

LG_TEST(cluster_fields)
{
    lg_dns_cluster_config_t c;
    lg_error_t err;
    LG_EXPECT_INT(parse("name: a\ntype: LOGICAL_DNS\ndns_refresh_rate: 0.25s\ndns_lookup_family: V4_PREFERRED\n"
                        "respect_dns_ttl: true\ndns_failure_refresh_rate: {base_interval: 1s}\n"
                        "typed_dns_resolver_config: {name: envoy.network.dns_resolver.cares, typed_config: {" CARES
                        ", resolvers: [{socket_address: {address: 127.0.0.1, port_value: 5353}}, "
                        "{socket_address: {address: '::1'}}], dns_resolver_options: {use_tcp_for_dns_lookups: true}}}\n" ONE_EP,
                        &c, &err),
                  0);
    LG_EXPECT_INT(c.logical, 1);
    LG_EXPECT_INT(c.family, LG_DNS_V4_PREFERRED);
    LG_EXPECT_INT(c.refresh.refresh_ms, 250);
    LG_EXPECT_INT(c.refresh.failure_base_ms, 1000);
    LG_EXPECT_INT(c.refresh.failure_max_ms, 10000);
    LG_EXPECT_INT(c.refresh.respect_ttl, 1);
    LG_EXPECT_STR(c.resolver.servers_csv, "127.0.0.1:5353,[::1]:53");
    LG_EXPECT_INT(c.resolver.use_tcp, 1);
    lg_dns_cluster_config_clear(&c);

    /* The deprecated resolver field. */
    LG_EXPECT_INT(parse("name: a\ntype: STRICT_DNS\ndns_lookup_family: V6_ONLY\ndns_resolvers: "
                        "[{socket_address: {address: 10.0.0.53, port_value: 53}}]\n" ONE_EP,
                        &c, &err),
                  0);
    LG_EXPECT_INT(c.family, LG_DNS_V6_ONLY);
    LG_EXPECT_STR(c.resolver.servers_csv, "10.0.0.53:53");
    lg_dns_cluster_config_clear(&c);
}

LG_TEST(dns_cluster_extension)
{
    lg_dns_cluster_config_t c;
    lg_error_t err;
    LG_EXPECT_INT(parse("name: a\ncluster_type: {name: envoy.clusters.dns, typed_config: {'@type': "
                        "type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster, dns_refresh_rate: 2s, "
                        "dns_jitter: 0.5s, dns_lookup_family: V4_ONLY, all_addresses_in_single_endpoint: true}}\n" ONE_EP,
                        &c, &err),
                  0);
    LG_EXPECT_INT(c.logical, 1);
    LG_EXPECT_INT(c.family, LG_DNS_V4_ONLY); /* 2 in DnsCluster's enum, 1 in Cluster's */
    LG_EXPECT_INT(c.refresh.refresh_ms, 2000);
    LG_EXPECT_INT(c.refresh.jitter_ms, 500);
    lg_dns_cluster_config_clear(&c);
    /* No typed_config: DnsCluster's defaults, UNSPECIFIED meaning AUTO. */
    LG_EXPECT_INT(parse("name: a\ncluster_type: {name: envoy.clusters.dns}\n" ONE_EP, &c, &err), 0);
    LG_EXPECT_INT(c.family, LG_DNS_AUTO);
    LG_EXPECT_INT(c.refresh.refresh_ms, 5000);
    lg_dns_cluster_config_clear(&c);
}

LG_TEST(refusals)
{
    lg_dns_cluster_config_t c;
    lg_error_t err;
    LG_EXPECT_INT(parse("name: a\ntype: STRICT_DNS\ndns_resolvers: [{socket_address: {address: dns.example, "
                        "port_value: 53}}]\n" ONE_EP,
                        &c, &err),
                  -1);
    LG_EXPECT_CONTAINS(err.msg, "dns_resolvers[0]: a resolver must be an IP socket_address");
    LG_EXPECT_INT(parse("name: a\ntype: STRICT_DNS\ndns_refresh_rate: 0.001s\n" ONE_EP, &c, &err), -1);
    LG_EXPECT_CONTAINS(err.msg, "dns_refresh_rate: value must be greater than 1ms");
    LG_EXPECT_INT(parse("name: a\ntype: STRICT_DNS\ndns_failure_refresh_rate: {base_interval: 2s, max_interval: 1s}\n" ONE_EP,
                        &c, &err),
                  -1);
    LG_EXPECT_CONTAINS(err.msg, "max_interval");
    LG_EXPECT_INT(parse("name: a\ntype: STRICT_DNS\ntyped_dns_resolver_config: {name: envoy.network.dns_resolver.getaddrinfo, "
                        "typed_config: {'@type': type.googleapis.com/google.protobuf.Empty}}\n" ONE_EP,
                        &c, &err),
                  -1);
    LG_EXPECT_CONTAINS(err.msg, "not supported by legate");
    LG_EXPECT_INT(parse("name: a\ntype: LOGICAL_DNS\nload_assignment: {endpoints: [{lb_endpoints: ["
                        "{endpoint: {address: {socket_address: {address: a.test, port_value: 80}}}},"
                        "{endpoint: {address: {socket_address: {address: b.test, port_value: 80}}}}]}]}\n",
                        &c, &err),
                  -1);
    LG_EXPECT_CONTAINS(err.msg, "exactly one endpoint");
}

int main(void)
{
    LG_RUN(defaults);
    LG_RUN(cluster_fields);
    LG_RUN(dns_cluster_extension);
    LG_RUN(refusals);
    return LG_TEST_END();
}
