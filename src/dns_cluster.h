/*
 * DNS discovery for clusters (Envoy's STRICT_DNS, LOGICAL_DNS and `cluster_type:
 * envoy.clusters.dns`): each endpoint hostname of such a cluster is resolved with c-ares on the
 * main thread, again every dns_refresh_rate (or TTL, with respect_dns_ttl), with the jittered
 * backoff of dns_failure_refresh_rate after failures. Answers are an endpoint source like EDS: the
 * snapshot builder asks lg_dns_discovery_find for a target's addresses, and the owner is called
 * back to rebuild and publish when a cluster's host set changed (only then).
 *
 * A failed or empty lookup never drops the last good addresses: it is counted
 * (cluster.<name>.update_failure / update_empty), logged once per streak, and retried.
 * STRICT_DNS: every address is a host. LOGICAL_DNS (or all_addresses_in_single_endpoint): the
 * first address of the answer is the one host, as Envoy uses it for new connections.
 *
 * Not here: building hosts (snapshot.c), the resolver's sockets and timers (dns_resolver.c).
 * Main thread only.
 */
#ifndef LG_DNS_CLUSTER_H
#define LG_DNS_CLUSTER_H

#include <h2o/socket.h>

#include "dns_refresh.h"
#include "dns_resolver.h"
#include "error.h"

struct Envoy__Config__Cluster__V3__Cluster;
struct Envoy__Config__Core__V3__SocketAddress;
struct Envoy__Config__Endpoint__V3__LbEndpoint;
struct st_lg_srcmap_t;

/* The DNS settings of one cluster, whichever fields they came from. */
typedef struct st_lg_dns_cluster_config_t {
    int logical; /* LOGICAL_DNS, or DnsCluster.all_addresses_in_single_endpoint */
    lg_dns_family_t family;
    lg_dns_refresh_t refresh;
    lg_dns_resolver_config_t resolver;
} lg_dns_cluster_config_t;

/** Whether `pb` is a DNS cluster (STRICT_DNS, LOGICAL_DNS, envoy.clusters.dns). */
int lg_dns_cluster_is_dns(const struct Envoy__Config__Cluster__V3__Cluster *pb);
/** Reads the DNS settings of a DNS cluster with Envoy's defaults; -1 with err (the field named
 * relative to the cluster) when one is invalid or not supported. `out` is cleared by the callee. */
int lg_dns_cluster_config_parse(const struct Envoy__Config__Cluster__V3__Cluster *pb, const struct st_lg_srcmap_t *map,
                                lg_dns_cluster_config_t *out, lg_error_t *err);
void lg_dns_cluster_config_clear(lg_dns_cluster_config_t *cfg);
/** The socket address (a hostname to resolve, or an IP) of an lb_endpoint; NULL for the others. */
const struct Envoy__Config__Core__V3__SocketAddress *
lg_dns_lb_endpoint_address(const struct Envoy__Config__Endpoint__V3__LbEndpoint *e);

typedef struct st_lg_dns_discovery_t lg_dns_discovery_t;

/** Called when a cluster's host set changed, or when the last warming cluster got its first
 * answer (or failure): the owner rebuilds its snapshot. Never called inside lg_dns_discovery_*. */
typedef void (*lg_dns_discovery_cb)(void *ctx);

lg_dns_discovery_t *lg_dns_discovery_new(h2o_evloop_t *loop, const struct st_lg_srcmap_t *map, lg_dns_discovery_cb cb,
                                         void *ctx);
/** Makes the DNS clusters among `clusters` the ones resolved: new ones start (warming), changed
 * ones restart keeping the addresses of targets that stay, absent ones stop. Non-DNS clusters are
 * ignored; one whose settings do not parse is logged and gets no addresses. The messages are only
 * read during the call. */
void lg_dns_discovery_sync(lg_dns_discovery_t *d, const struct Envoy__Config__Cluster__V3__Cluster *const *clusters,
                           size_t n);
/** Whether some cluster has not finished its first resolution yet. */
int lg_dns_discovery_warming(const lg_dns_discovery_t *d);
/** The last good addresses (ports set) of `hostname`:`port` in cluster `cluster`, or NULL when
 * there are none yet. `d` is a lg_dns_discovery_t (void for lg_snapshot_sources_t). The result is
 * valid until control returns to the loop. */
const lg_dns_addrs_t *lg_dns_discovery_find(void *d, const char *cluster, const char *hostname, uint32_t port);
void lg_dns_discovery_free(lg_dns_discovery_t *d);

#endif
