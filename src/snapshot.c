/*
 * Building config snapshots from Envoy messages: see snapshot.h. Runs on the main thread after
 * validation (bootstrap_validate.c), so it can assume the structural rules hold; what it still
 * checks is what only compiling reveals (route tables, regexes, TLS files, filter configs), and each
 * failure names its field path.
 *
 * Envoy's defaults are applied here, once, so the request path reads plain numbers.
 */
#include "snapshot.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "conn_manager.h"
#include "dns_cluster.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"
#include "filters/cors/cors.h"
#include "filters/registry.h"
#include "load_balancer.h"
#include "log.h"
#include "path.h"
#include "pb_registry.h"
#include "rate_limit_actions.h"
#include "route_table.h"
#include "stats.h"
#include "tls_context.h"
#include "upstream_pool.h"
#include "xds/xds_client.h"
#include "access_log.h"
#include "xalloc.h"

typedef Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager hcm_pb_t;

typedef struct st_build_t {
    const lg_bootstrap_t *bootstrap;
    lg_snapshot_t *snap;
    lg_path_t path;
    lg_error_t *err;
    int validate_only; /* --mode validate: filters legate has not built yet are accepted */
    const lg_snapshot_sources_t *src;
} build_t;

static void free_hcm(lg_hcm_config_t *h);
static void free_chain(lg_filter_chain_t *fc);
static void free_listener(lg_listener_t *l);
static void free_cluster(lg_cluster_t *c);

__attribute__((format(printf, 2, 3))) static int bfail(build_t *b, const char *fmt, ...)
{
    char text[LG_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    return lg_error_set(b->err, "%s: %s: %s", b->bootstrap->name, b->path.buf, text);
}

static int is_empty_str(const char *s)
{
    return s == NULL || s[0] == '\0';
}

static uint64_t duration_ms(const Google__Protobuf__Duration *d, uint64_t dflt)
{
    if (d == NULL)
        return dflt;
    if (d->seconds < 0)
        return 0;
    return (uint64_t)d->seconds * 1000 + (uint64_t)d->nanos / 1000000;
}

static uint32_t u32(const Google__Protobuf__UInt32Value *v, uint32_t dflt)
{
    return v != NULL ? v->value : dflt;
}

static int boolv(const Google__Protobuf__BoolValue *v, int dflt)
{
    return v != NULL ? v->value : dflt;
}

/* An IP address and port; other names (EDS endpoint hostnames) are resolved here, blocking. DNS
 * clusters' names never come here: DNS discovery resolves them (dns_cluster.c). */
static int resolve(build_t *b, const Envoy__Config__Core__V3__SocketAddress *sa, int allow_name,
                   struct sockaddr_storage *out, socklen_t *outlen)
{
    memset(out, 0, sizeof(*out));
    uint16_t port = (uint16_t)sa->port_value;
    struct sockaddr_in *in = (struct sockaddr_in *)out;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, sa->address, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        *outlen = sizeof(*in);
        return 0;
    }
    if (inet_pton(AF_INET6, sa->address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *outlen = sizeof(*in6);
        return 0;
    }
    if (!allow_name)
        return bfail(b, "malformed IP address: %s", sa->address);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int r = getaddrinfo(sa->address, NULL, &hints, &res);
    if (r != 0 || res == NULL)
        return bfail(b, "cannot resolve \"%s\": %s", sa->address, gai_strerror(r));
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *outlen = res->ai_addrlen;
    if (out->ss_family == AF_INET)
        in->sin_port = htons(port);
    else
        in6->sin6_port = htons(port);
    freeaddrinfo(res);
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Clusters                                                                                    */
/* ------------------------------------------------------------------------------------------- */

static lg_host_t *add_host(lg_cluster_t *c, const struct sockaddr_storage *addr, const char *hostname,
                           const Google__Protobuf__UInt32Value *weight)
{
    lg_host_t *h = lg_xcalloc(1, sizeof(*h));
    c->hosts[c->n_hosts] = h;
    h->index = (unsigned)c->n_hosts++;
    h->addr = *addr;
    h->addrlen = addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    char buf[128];
    h->address_string = lg_xstrdup(lg_sockaddr_to_string(&h->addr, buf, sizeof(buf), 1));
    h->hostname = lg_xstrdup(hostname);
    h->weight = u32(weight, 1);
    if (h->weight == 0)
        h->weight = 1;
    c->total_weight += h->weight;
    return h;
}

/* A DNS cluster's hosts: DNS discovery's last good answers for its endpoint hostnames. STRICT_DNS
 * makes every address a host; LOGICAL_DNS has kept only the first address of its one endpoint. */
static int build_dns_hosts(build_t *b, lg_cluster_t *c, const Envoy__Config__Cluster__V3__Cluster *pb)
{
    lg_dns_cluster_config_t cfg;
    if (lg_dns_cluster_config_parse(pb, &b->bootstrap->srcmap, &cfg, b->err) != 0) {
        lg_error_prefix(b->err, "%s: %s: ", b->bootstrap->name, b->path.buf);
        return -1;
    }
    lg_dns_cluster_config_clear(&cfg);
    const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la = pb->load_assignment;
    size_t n = 0;
    for (int pass = 0; pass < 2; ++pass) {
        if (pass == 1)
            c->hosts = lg_xcalloc(n, sizeof(*c->hosts));
        for (size_t i = 0; la != NULL && i < la->n_endpoints; ++i) {
            for (size_t j = 0; j < la->endpoints[i]->n_lb_endpoints; ++j) {
                const Envoy__Config__Endpoint__V3__LbEndpoint *e = la->endpoints[i]->lb_endpoints[j];
                const Envoy__Config__Core__V3__SocketAddress *sa = lg_dns_lb_endpoint_address(e);
                if (sa == NULL)
                    continue;
                const lg_dns_addrs_t *a =
                    b->src->find_addresses != NULL
                        ? b->src->find_addresses(b->src->dns_ctx, pb->name, sa->address, sa->port_value)
                        : NULL;
                for (size_t k = 0; a != NULL && k < a->n; ++k) {
                    if (pass == 0)
                        ++n;
                    else if (add_host(c, &a->v[k],
                                      !is_empty_str(e->endpoint->hostname) ? e->endpoint->hostname : sa->address,
                                      e->load_balancing_weight) != NULL)
                        ++c->n_healthy; /* an answer is a host: DNS says nothing of its health */
                }
            }
        }
    }
    return 0;
}

static int build_hosts(build_t *b, lg_cluster_t *c, const Envoy__Config__Cluster__V3__Cluster *pb)
{
    if (lg_dns_cluster_is_dns(pb))
        return build_dns_hosts(b, c, pb);
    const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la = pb->load_assignment;
    if (pb->cluster_discovery_type_case == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE &&
        pb->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS) {
        /* EDS: the hosts are whatever the endpoint source has for the cluster's service name. */
        const char *svc = pb->eds_cluster_config != NULL && pb->eds_cluster_config->service_name != NULL &&
                                  pb->eds_cluster_config->service_name[0] != '\0'
                              ? pb->eds_cluster_config->service_name
                              : pb->name;
        la = b->src->find_endpoints != NULL ? b->src->find_endpoints(b->src->ctx, svc) : NULL;
    }
    int static_type = pb->cluster_discovery_type_case ==
                          ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE &&
                      pb->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC;
    size_t n = 0;
    for (size_t i = 0; la != NULL && i < la->n_endpoints; ++i)
        n += la->endpoints[i]->n_lb_endpoints;
    c->hosts = lg_xcalloc(n, sizeof(*c->hosts));
    size_t m0 = lg_path_push_field(&b->path, "load_assignment");
    for (size_t i = 0; la != NULL && i < la->n_endpoints; ++i) {
        const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *lle = la->endpoints[i];
        for (size_t j = 0; j < lle->n_lb_endpoints; ++j) {
            const Envoy__Config__Endpoint__V3__LbEndpoint *e = lle->lb_endpoints[j];
            if (e->host_identifier_case != ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT ||
                e->endpoint->address == NULL ||
                e->endpoint->address->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS)
                continue;
            size_t m1 = b->path.len;
            lg_path_push_field(&b->path, "endpoints");
            lg_path_push_index(&b->path, i);
            lg_path_push_field(&b->path, "lb_endpoints");
            lg_path_push_index(&b->path, j);
            const Envoy__Config__Core__V3__SocketAddress *sa = e->endpoint->address->socket_address;
            struct sockaddr_storage addr;
            socklen_t addrlen;
            if (!static_type && b->validate_only) {
                lg_path_pop(&b->path, m1);
                continue; /* EDS hostnames are looked up when serving */
            }
            if (resolve(b, sa, !static_type, &addr, &addrlen) != 0) {
                if (static_type)
                    return -1;
                /* An EDS endpoint hostname that does not resolve leaves the cluster without that
                 * host (503 UH), as a failed lookup would. */
                lg_warn(upstream, "cluster \"%s\": %s", c->name, b->err->msg);
                lg_path_pop(&b->path, m1);
                continue;
            }
            add_host(c, &addr, !is_empty_str(e->endpoint->hostname) ? e->endpoint->hostname : sa->address,
                     e->load_balancing_weight);
            if (e->health_status == ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__UNKNOWN ||
                e->health_status == ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__HEALTHY)
                ++c->n_healthy;
            else if (e->health_status == ENVOY__CONFIG__CORE__V3__HEALTH_STATUS__DEGRADED)
                ++c->n_degraded;
            lg_path_pop(&b->path, m1);
        }
    }
    lg_path_pop(&b->path, m0);
    return 0;
}

static void cluster_protocol(lg_cluster_t *c, const Envoy__Config__Cluster__V3__Cluster *pb, const lg_srcmap_t *map)
{
    c->protocol = pb->http2_protocol_options != NULL ? LG_UPSTREAM_HTTP2 : LG_UPSTREAM_HTTP1;
    const Envoy__Config__Core__V3__HttpProtocolOptions *common = pb->common_http_protocol_options;
    for (size_t i = 0; i < pb->n_typed_extension_protocol_options; ++i) {
        const Envoy__Config__Cluster__V3__Cluster__TypedExtensionProtocolOptionsEntry *e =
            pb->typed_extension_protocol_options[i];
        if (e->value == NULL)
            continue;
        int owned;
        ProtobufCMessage *m = lg_pb_any_open(map, &e->value->base, &owned);
        if (m != NULL && m->descriptor == &envoy__extensions__upstreams__http__v3__http_protocol_options__descriptor) {
            const Envoy__Extensions__Upstreams__Http__V3__HttpProtocolOptions *o = (const void *)m;
            if (o->upstream_protocol_options_case ==
                    ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS_EXPLICIT_HTTP_CONFIG &&
                o->explicit_http_config->protocol_config_case ==
                    ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__EXPLICIT_HTTP_CONFIG__PROTOCOL_CONFIG_HTTP2_PROTOCOL_OPTIONS) {
                c->protocol = LG_UPSTREAM_HTTP2;
                const Envoy__Config__Core__V3__Http2ProtocolOptions *h2 = o->explicit_http_config->http2_protocol_options;
                c->h2_initial_stream_window = u32(h2->initial_stream_window_size, 0);
                c->h2_initial_connection_window = u32(h2->initial_connection_window_size, 0);
            } else if (o->upstream_protocol_options_case ==
                       ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS_USE_DOWNSTREAM_PROTOCOL_CONFIG) {
                c->protocol = LG_UPSTREAM_USE_DOWNSTREAM;
            } else if (o->upstream_protocol_options_case ==
                       ENVOY__EXTENSIONS__UPSTREAMS__HTTP__V3__HTTP_PROTOCOL_OPTIONS__UPSTREAM_PROTOCOL_OPTIONS_AUTO_CONFIG) {
                c->protocol = c->tls != NULL ? LG_UPSTREAM_HTTP2 : LG_UPSTREAM_HTTP1; /* ALPN decides on TLS */
            }
            if (o->common_http_protocol_options != NULL)
                common = o->common_http_protocol_options;
        }
        lg_pb_any_close(m, owned);
    }
    c->idle_timeout_ms = duration_ms(common != NULL ? common->idle_timeout : NULL, 3600000);
    c->max_requests_per_connection =
        u32(common != NULL ? common->max_requests_per_connection : NULL, u32(pb->max_requests_per_connection, 0));
}

/* FNV-1a over the packed message: the same settings pack to the same bytes. */
static uint64_t message_hash(const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = lg_xcalloc(len ? len : 1, 1);
    protobuf_c_message_pack(m, buf);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; ++i)
        h = (h ^ buf[i]) * 1099511628211ull;
    free(buf);
    return h;
}

/* The load balancer's policy and settings, Envoy's defaults applied and its checks made. */
static int lb_config(build_t *b, lg_cluster_t *c, const Envoy__Config__Cluster__V3__Cluster *pb)
{
    switch (pb->lb_policy) {
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM:
        c->lb_policy = LG_LB_RANDOM;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST:
        c->lb_policy = LG_LB_LEAST_REQUEST;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH:
        c->lb_policy = LG_LB_RING_HASH;
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__MAGLEV:
        c->lb_policy = LG_LB_MAGLEV;
        break;
    default:
        c->lb_policy = LG_LB_ROUND_ROBIN;
    }
    lg_lb_config_t *lb = &c->lb;
    lb->choice_count = 2;
    lb->active_request_bias = 1.0;
    lb->minimum_ring_size = 1024;
    lb->maximum_ring_size = 8 * 1024 * 1024;
    lb->table_size = 65537;
    int r = 0;
    size_t mark = b->path.len;
    switch (pb->lb_config_case) {
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_LEAST_REQUEST_LB_CONFIG: {
        const Envoy__Config__Cluster__V3__Cluster__LeastRequestLbConfig *lr = pb->least_request_lb_config;
        lg_path_push_field(&b->path, "least_request_lb_config");
        lb->choice_count = u32(lr->choice_count, 2);
        if (lr->slow_start_config != NULL) {
            lg_path_push_field(&b->path, "slow_start_config");
            r = bfail(b, "slow start is not supported by legate");
        } else if (lb->choice_count < 2) {
            lg_path_push_field(&b->path, "choice_count");
            r = bfail(b, "value must be greater than or equal to 2");
        } else if (lr->active_request_bias != NULL) {
            lb->active_request_bias = lr->active_request_bias->default_value;
            if (!(lb->active_request_bias >= 0)) {
                lg_path_push_field(&b->path, "active_request_bias");
                r = bfail(b, "active_request_bias must be a non-negative number");
            }
        }
        break;
    }
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_RING_HASH_LB_CONFIG: {
        const Envoy__Config__Cluster__V3__Cluster__RingHashLbConfig *rh = pb->ring_hash_lb_config;
        lg_path_push_field(&b->path, "ring_hash_lb_config");
        if (rh->minimum_ring_size != NULL)
            lb->minimum_ring_size = rh->minimum_ring_size->value;
        if (rh->maximum_ring_size != NULL)
            lb->maximum_ring_size = rh->maximum_ring_size->value;
        lb->hash_function = rh->hash_function == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__RING_HASH_LB_CONFIG__HASH_FUNCTION__MURMUR_HASH_2
                                ? LG_HASH_FUNCTION_MURMUR_HASH_2
                                : LG_HASH_FUNCTION_XX_HASH;
        if (lb->minimum_ring_size > 8 * 1024 * 1024 || lb->maximum_ring_size > 8 * 1024 * 1024)
            r = bfail(b, "ring sizes must be less than or equal to 8388608");
        else if (lb->minimum_ring_size > lb->maximum_ring_size)
            r = bfail(b, "minimum_ring_size (%llu) > maximum_ring_size (%llu)", (unsigned long long)lb->minimum_ring_size,
                      (unsigned long long)lb->maximum_ring_size);
        else if (lb->minimum_ring_size == 0 || lb->maximum_ring_size == 0)
            r = bfail(b, "ring sizes must be greater than 0");
        break;
    }
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_ROUND_ROBIN_LB_CONFIG:
        if (pb->round_robin_lb_config->slow_start_config != NULL) {
            lg_path_push_field(&b->path, "round_robin_lb_config.slow_start_config");
            r = bfail(b, "slow start is not supported by legate");
        }
        break;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_CONFIG_MAGLEV_LB_CONFIG:
        lg_path_push_field(&b->path, "maglev_lb_config.table_size");
        if (pb->maglev_lb_config->table_size != NULL)
            lb->table_size = pb->maglev_lb_config->table_size->value;
        if (lb->table_size > 5000011 || !lg_lb_is_prime(lb->table_size))
            r = bfail(b, "the table size of maglev must be a prime number no greater than 5000011");
        break;
    default:
        break;
    }
    lg_path_pop(&b->path, mark);
    const Envoy__Config__Cluster__V3__Cluster__CommonLbConfig *common = pb->common_lb_config;
    if (r == 0 && common != NULL && common->consistent_hashing_lb_config != NULL) {
        lb->use_hostname_for_hashing = common->consistent_hashing_lb_config->use_hostname_for_hashing;
        if (common->consistent_hashing_lb_config->hash_balance_factor != NULL) {
            lg_path_push_field(&b->path, "common_lb_config.consistent_hashing_lb_config.hash_balance_factor");
            r = bfail(b, "bounded-load consistent hashing is not supported by legate");
            lg_path_pop(&b->path, mark);
        }
    }
    return r;
}

static int fill_cluster(build_t *b, lg_cluster_t *c, const Envoy__Config__Cluster__V3__Cluster *pb)
{
    const lg_srcmap_t *map = &b->bootstrap->srcmap;
    c->name = lg_xstrdup(pb->name);
    c->config_hash = message_hash(&pb->base);
    c->connect_timeout_ms = duration_ms(pb->connect_timeout, 5000);
    c->per_connection_buffer_limit = u32(pb->per_connection_buffer_limit_bytes, 1024 * 1024);
    if (lb_config(b, c, pb) != 0)
        return -1;
    c->circuit_breakers.max_connections = c->circuit_breakers.max_pending_requests =
        c->circuit_breakers.max_requests = 1024;
    c->circuit_breakers.max_retries = 3;
    if (pb->circuit_breakers != NULL) {
        for (size_t i = 0; i < pb->circuit_breakers->n_thresholds; ++i) {
            const Envoy__Config__Cluster__V3__CircuitBreakers__Thresholds *t = pb->circuit_breakers->thresholds[i];
            if (t->priority != ENVOY__CONFIG__CORE__V3__ROUTING_PRIORITY__DEFAULT)
                continue;
            c->circuit_breakers.max_connections = u32(t->max_connections, 1024);
            c->circuit_breakers.max_pending_requests = u32(t->max_pending_requests, 1024);
            c->circuit_breakers.max_requests = u32(t->max_requests, 1024);
            c->circuit_breakers.max_retries = u32(t->max_retries, 3);
        }
    }
    if (pb->transport_socket != NULL && pb->transport_socket->typed_config != NULL) {
        int owned;
        ProtobufCMessage *m = lg_pb_any_open(map, &pb->transport_socket->typed_config->base, &owned);
        if (m != NULL && m->descriptor == &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor) {
            const Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *u = (const void *)m;
            size_t mark = lg_path_push_field(&b->path, "transport_socket.typed_config");
            int want_h2 = pb->http2_protocol_options != NULL;
            c->tls = lg_tls_client_ctx_build(u, want_h2, b->err);
            if (c->tls == NULL) {
                lg_error_prefix(b->err, "%s: %s: ", b->bootstrap->name, b->path.buf);
                lg_pb_any_close(m, owned);
                return -1;
            }
            lg_path_pop(&b->path, mark);
            c->sni = lg_xstrdup(u->sni);
        }
        lg_pb_any_close(m, owned);
    }
    cluster_protocol(c, pb, map);
    if (build_hosts(b, c, pb) != 0)
        return -1;
    if (!b->validate_only)
        lg_lb_table_build(c);
    c->stats = lg_cluster_stats_for(c->name);
    if (!b->validate_only) {
        /* Membership gauges live in the main thread's cell block; a host is healthy unless its
         * configured health_status says otherwise until health checking lands (the upstream
         * issue). The last snapshot built sets them. */
        lg_stats_set(lg_xds_stats_cells(), c->stats->membership_total, c->n_hosts);
        lg_stats_set(lg_xds_stats_cells(), c->stats->membership_healthy, c->n_healthy);
    }
    return 0;
}

static lg_cluster_t *build_cluster(build_t *b, const Envoy__Config__Cluster__V3__Cluster *pb)
{
    lg_cluster_t *c = lg_xcalloc(1, sizeof(*c));
    if (fill_cluster(b, c, pb) != 0) {
        free_cluster(c);
        return NULL;
    }
    return c;
}

static int compare_clusters(const void *a, const void *b)
{
    return strcmp((*(lg_cluster_t *const *)a)->name, (*(lg_cluster_t *const *)b)->name);
}

const lg_cluster_t *lg_snapshot_find_cluster(const lg_snapshot_t *s, const char *name, size_t len)
{
    size_t lo = 0, hi = s->n_clusters;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *cand = s->clusters[mid]->name;
        int c = strncmp(cand, name, len);
        if (c == 0 && cand[len] != '\0')
            c = 1;
        if (c == 0)
            return s->clusters[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* Listeners and connection managers                                                           */
/* ------------------------------------------------------------------------------------------- */

/* The deprecated route / virtual host `cors`: the CORS filter reads it when no level has a
 * typed_per_filter_config for it, as Envoy does. */
static void *build_cors(void *ctx, const Envoy__Config__Route__V3__CorsPolicy *pb, lg_error_t *err)
{
    return lg_cors_policy_create_legacy(pb, err);
}

static void destroy_cors(void *ctx, void *cors)
{
    lg_cors_policy_destroy(cors);
}

static void *build_per_route(void *ctx, const char *filter_name, const Google__Protobuf__Any *any, lg_error_t *err)
{
    const lg_bootstrap_t *bootstrap = ctx;
    const char *slash = strrchr(any->type_url, '/');
    const lg_filter_factory_t *f =
        lg_filter_registry_find_per_route(filter_name, slash != NULL ? slash + 1 : any->type_url);
    if (f == NULL)
        return NULL; /* configs of filters that take none are ignored, as Envoy does for optional ones */
    int owned;
    ProtobufCMessage *m = lg_pb_any_open(&bootstrap->srcmap, &any->base, &owned);
    if (m == NULL) {
        lg_error_set(err, "cannot decode typed_per_filter_config for %s", filter_name);
        return NULL;
    }
    if (m->descriptor != f->ops->per_route_descriptor) {
        lg_error_set(err, "typed_per_filter_config for %s: %s is not %s's per-route config (%s)", filter_name,
                     m->descriptor->name, f->name, f->ops->per_route_descriptor->name);
        lg_pb_any_close(m, owned);
        return NULL;
    }
    void *cfg = f->ops->create_per_route_config(m, err);
    lg_pb_any_close(m, owned);
    if (cfg == NULL)
        return NULL;
    lg_filter_route_config_t *rc = lg_xcalloc(1, sizeof(*rc));
    rc->ops = f->ops;
    rc->config = cfg;
    return rc;
}

static void destroy_per_route(void *ctx, const char *filter_name, void *config)
{
    lg_filter_route_config_t *rc = config;
    if (rc->ops->destroy_per_route_config != NULL)
        rc->ops->destroy_per_route_config(rc->config);
    free(rc);
}

/* Route and virtual host rate_limits: the descriptors the rate-limit filters read. */
static void *build_rate_limits(void *ctx, Envoy__Config__Route__V3__RateLimit *const *limits, size_t n,
                               const lg_path_t *path, lg_error_t *err)
{
    const lg_bootstrap_t *bootstrap = ctx;
    const char *local_cluster = bootstrap->pb->node != NULL ? bootstrap->pb->node->cluster : NULL;
    return lg_rate_limits_build(limits, n, local_cluster, err);
}

static void destroy_rate_limits(void *ctx, void *limits)
{
    lg_rate_limits_free(limits);
}

static int build_http_filters(build_t *b, lg_hcm_config_t *h, const hcm_pb_t *pb)
{
    h->filters = lg_xcalloc(pb->n_http_filters, sizeof(*h->filters));
    for (size_t i = 0; i < pb->n_http_filters; ++i) {
        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *hf = pb->http_filters[i];
        lg_filter_factory_entry_t *e = &h->filters[h->n_filters++];
        e->name = lg_xstrdup(hf->name);
        e->disabled = hf->disabled;
        size_t mark = lg_path_push_field(&b->path, "http_filters");
        lg_path_push_index(&b->path, i);
        const char *type = NULL;
        if (hf->typed_config != NULL) {
            const char *slash = strrchr(hf->typed_config->type_url, '/');
            type = slash != NULL ? slash + 1 : hf->typed_config->type_url;
        }
        const lg_filter_factory_t *f = lg_filter_registry_find(LG_FILTER_HTTP, hf->name, type);
        if (f == NULL) {
            lg_path_pop(&b->path, mark);
            continue; /* optional and unknown (validated): skipped */
        }
        if (f->ops == NULL) {
            lg_path_pop(&b->path, mark);
            if (b->validate_only)
                continue;
            return bfail(b, "HTTP filter \"%s\" is not implemented by this legate build yet", hf->name);
        }
        e->ops = f->ops;
        if (f->ops->create_config != NULL || f->ops->create_config_ctx != NULL) {
            ProtobufCMessage *m = NULL;
            int owned = 0;
            if (hf->typed_config != NULL)
                m = lg_pb_any_open(&b->bootstrap->srcmap, &hf->typed_config->base, &owned);
            else
                m = protobuf_c_message_unpack(f->ops->config_descriptor, NULL, 0, (const uint8_t *)""), owned = 1;
            if (f->ops->create_config_ctx != NULL) {
                char prefix[256];
                snprintf(prefix, sizeof(prefix), "http.%s.", h->stat_prefix);
                const Envoy__Config__Core__V3__Node *node = b->bootstrap->pb->node;
                lg_filter_config_ctx_t ctx = {.stat_prefix = prefix,
                                              .local_cluster = node != NULL && node->cluster != NULL ? node->cluster : ""};
                e->config = f->ops->create_config_ctx(m, &ctx, b->err);
            } else {
                e->config = f->ops->create_config(m, b->err);
            }
            lg_pb_any_close(m, owned);
            if (e->config == NULL) {
                /* "<file>:<line>: <path>: <the filter's message>", as every other config error */
                const char *doc;
                uint32_t line;
                if (lg_srcmap_get(&b->bootstrap->srcmap, hf, LG_SRCMAP_SELF, &doc, &line))
                    lg_error_prefix(b->err, "%s:%u: %s: ", doc, line, b->path.buf);
                else
                    lg_error_prefix(b->err, "%s: %s: ", b->bootstrap->name, b->path.buf);
                return -1;
            }
        }
        lg_path_pop(&b->path, mark);
    }
    return 0;
}

static int fill_hcm(build_t *b, lg_hcm_config_t *h, const hcm_pb_t *pb)
{
    h->stat_prefix = lg_xstrdup(pb->stat_prefix);
    h->stats = lg_hcm_stats_for(pb->stat_prefix);
    h->codec_type = pb->codec_type == 1 ? LG_CODEC_HTTP1 : pb->codec_type == 2 ? LG_CODEC_HTTP2 : LG_CODEC_AUTO;
    const Envoy__Config__Core__V3__HttpProtocolOptions *common = pb->common_http_protocol_options;
    h->max_request_headers_kb = u32(pb->max_request_headers_kb, 60);
    h->max_headers_count = u32(common != NULL ? common->max_headers_count : NULL, 100);
    h->headers_with_underscores_action = common != NULL ? (lg_underscore_action_t)common->headers_with_underscores_action
                                                        : LG_UNDERSCORES_ALLOW;
    h->stream_idle_timeout_ms = duration_ms(pb->stream_idle_timeout, 300000);
    h->request_timeout_ms = duration_ms(pb->request_timeout, 0);
    h->request_headers_timeout_ms = duration_ms(pb->request_headers_timeout, 0);
    h->idle_timeout_ms = duration_ms(common != NULL ? common->idle_timeout : NULL, 3600000);
    h->max_connection_duration_ms = duration_ms(common != NULL ? common->max_connection_duration : NULL, 0);
    h->drain_timeout_ms = duration_ms(pb->drain_timeout, 5000);
    h->delayed_close_timeout_ms = duration_ms(pb->delayed_close_timeout, 1000);
    h->max_requests_per_connection = u32(common != NULL ? common->max_requests_per_connection : NULL, 0);
    h->server_name = lg_xstrdup(pb->server_name != NULL && pb->server_name[0] != '\0' ? pb->server_name : "envoy");
    h->server_header_transformation = (int)pb->server_header_transformation;
    h->use_remote_address = boolv(pb->use_remote_address, 0);
    h->xff_num_trusted_hops = pb->xff_num_trusted_hops;
    h->skip_xff_append = pb->skip_xff_append;
    h->generate_request_id = boolv(pb->generate_request_id, 1);
    h->preserve_external_request_id = pb->preserve_external_request_id;
    h->always_set_request_id_in_response = pb->always_set_request_id_in_response;
    h->normalize_path = boolv(pb->normalize_path, 0);
    h->merge_slashes = pb->merge_slashes;
    h->path_with_escaped_slashes_action = (int)pb->path_with_escaped_slashes_action;
    h->strip_any_host_port = pb->strip_port_mode_case ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__STRIP_PORT_MODE_STRIP_ANY_HOST_PORT &&
        pb->strip_any_host_port;
    h->strip_matching_host_port = pb->strip_matching_host_port;
    if (pb->http_protocol_options != NULL) {
        h->accept_http_10 = pb->http_protocol_options->accept_http_10;
        h->allow_absolute_url = boolv(pb->http_protocol_options->allow_absolute_url, 1);
    } else {
        h->allow_absolute_url = 1;
    }
    const Envoy__Config__Core__V3__Http2ProtocolOptions *h2 = pb->http2_protocol_options;
    h->h2_max_concurrent_streams = u32(h2 != NULL ? h2->max_concurrent_streams : NULL, 100);
    h->h2_initial_stream_window = u32(h2 != NULL ? h2->initial_stream_window_size : NULL, 1024 * 1024);
    h->h2_initial_connection_window = u32(h2 != NULL ? h2->initial_connection_window_size : NULL, 4 * 1024 * 1024);

    if (build_http_filters(b, h, pb) != 0)
        return -1;
    h->access_logs = lg_xcalloc(pb->n_access_log, sizeof(*h->access_logs));
    for (size_t i = 0; i < pb->n_access_log; ++i) {
        size_t mark = lg_path_push_field(&b->path, "access_log");
        lg_path_push_index(&b->path, i);
        if (b->validate_only) {
            if (lg_access_log_check(pb->access_log[i], &b->bootstrap->srcmap, &b->path, b->err) != 0)
                return -1;
        } else {
            if ((h->access_logs[h->n_access_logs] = lg_access_log_build(pb->access_log[i], &b->bootstrap->srcmap, &b->path, b->err)) == NULL)
                return -1;
            ++h->n_access_logs;
        }
        lg_path_pop(&b->path, mark);
    }
    if (pb->route_specifier_case ==
        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG) {
        size_t mark = lg_path_push_field(&b->path, "route_config");
        lg_route_build_opts_t opts = {.per_filter_build = build_per_route,
                                      .per_filter_destroy = destroy_per_route,
                                      .rate_limits_build = build_rate_limits,
                                      .rate_limits_destroy = destroy_rate_limits,
                                      .cors_build = build_cors,
                                      .cors_destroy = destroy_cors,
                                      .ctx = (void *)b->bootstrap,
                                      .srcmap = &b->bootstrap->srcmap};
        h->route_table = lg_route_table_build(pb->route_config, &opts, &b->path, b->err);
        if (h->route_table == NULL)
            return -1;
        lg_path_pop(&b->path, mark);
    } else if (pb->route_specifier_case ==
               ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS) {
        h->rds_name = lg_xstrdup(pb->rds->route_config_name);
        const Envoy__Config__Route__V3__RouteConfiguration *rc =
            b->src->find_route != NULL ? b->src->find_route(b->src->ctx, h->rds_name) : NULL;
        if (rc != NULL) {
            lg_route_build_opts_t opts = {.per_filter_build = build_per_route,
                                          .per_filter_destroy = destroy_per_route,
                                          .rate_limits_build = build_rate_limits,
                                          .rate_limits_destroy = destroy_rate_limits,
                                          .cors_build = build_cors,
                                          .cors_destroy = destroy_cors,
                                          .ctx = (void *)b->bootstrap};
            lg_path_t rpath;
            lg_path_init(&rpath);
            lg_path_push_field(&rpath, "route_configs");
            lg_path_push_key(&rpath, h->rds_name);
            h->route_table = lg_route_table_build(rc, &opts, &rpath, b->err);
            if (h->route_table == NULL)
                return -1;
        }
    }
    return 0;
}

static lg_hcm_config_t *build_hcm(build_t *b, const hcm_pb_t *pb)
{
    lg_hcm_config_t *h = lg_xcalloc(1, sizeof(*h));
    if (fill_hcm(b, h, pb) != 0) {
        free_hcm(h);
        return NULL;
    }
    return h;
}

static int fill_chain(build_t *b, lg_filter_chain_t *fc, const Envoy__Config__Listener__V3__FilterChain *pb)
{
    const lg_srcmap_t *map = &b->bootstrap->srcmap;
    fc->name = lg_xstrdup(pb->name);
    if (pb->filter_chain_match != NULL) {
        fc->n_server_names = pb->filter_chain_match->n_server_names;
        fc->server_names = lg_xcalloc(fc->n_server_names, sizeof(char *));
        for (size_t i = 0; i < fc->n_server_names; ++i)
            fc->server_names[i] = lg_xstrdup(pb->filter_chain_match->server_names[i]);
    }
    for (size_t i = 0; i < pb->n_filters; ++i) {
        const Envoy__Config__Listener__V3__Filter *f = pb->filters[i];
        if (f->config_type_case != ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG)
            continue;
        int owned;
        ProtobufCMessage *m = lg_pb_any_open(map, &f->typed_config->base, &owned);
        if (m != NULL && m->descriptor ==
                             &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor) {
            size_t mark = lg_path_push_field(&b->path, "filters");
            lg_path_push_index(&b->path, i);
            lg_path_push_field(&b->path, "typed_config");
            fc->hcm = build_hcm(b, (const hcm_pb_t *)m);
            lg_pb_any_close(m, owned);
            if (fc->hcm == NULL)
                return -1;
            lg_path_pop(&b->path, mark);
        } else {
            lg_pb_any_close(m, owned);
        }
    }
    if (fc->hcm == NULL)
        return bfail(b, "a filter chain needs an envoy.filters.network.http_connection_manager");
    if (pb->transport_socket != NULL && pb->transport_socket->typed_config != NULL) {
        int owned;
        ProtobufCMessage *m = lg_pb_any_open(map, &pb->transport_socket->typed_config->base, &owned);
        if (m != NULL &&
            m->descriptor == &envoy__extensions__transport_sockets__tls__v3__downstream_tls_context__descriptor) {
            static const char *const alpn_auto[] = {"h2", "http/1.1", NULL}, *const alpn_h1[] = {"http/1.1", NULL},
                                     *const alpn_h2[] = {"h2", NULL};
            const char *const *alpn = fc->hcm->codec_type == LG_CODEC_HTTP1   ? alpn_h1
                                      : fc->hcm->codec_type == LG_CODEC_HTTP2 ? alpn_h2
                                                                               : alpn_auto;
            size_t mark = lg_path_push_field(&b->path, "transport_socket.typed_config");
            fc->tls = lg_tls_server_ctx_build((const void *)m, alpn, b->err);
            if (fc->tls == NULL) {
                lg_error_prefix(b->err, "%s: %s: ", b->bootstrap->name, b->path.buf);
                lg_pb_any_close(m, owned);
                return -1;
            }
            lg_path_pop(&b->path, mark);
        }
        lg_pb_any_close(m, owned);
    }
    return 0;
}

static lg_filter_chain_t *build_chain(build_t *b, const Envoy__Config__Listener__V3__FilterChain *pb)
{
    lg_filter_chain_t *fc = lg_xcalloc(1, sizeof(*fc));
    if (fill_chain(b, fc, pb) != 0) {
        free_chain(fc);
        return NULL;
    }
    return fc;
}

static int fill_listener(build_t *b, lg_listener_t *l, const Envoy__Config__Listener__V3__Listener *pb)
{
    const Envoy__Config__Core__V3__SocketAddress *sa = pb->address->socket_address;
    size_t mark = lg_path_push_field(&b->path, "address.socket_address");
    if (resolve(b, sa, 0, &l->addr, &l->addrlen) != 0)
        return -1;
    lg_path_pop(&b->path, mark);
    char buf[160];
    /* Envoy names listener stats by address with ':' replaced: listener.0.0.0.0_10000.*, and an
     * IPv6 one in its canonical bracketed form: listener.[__1]_10000.* */
    if (l->addr.ss_family == AF_INET6) {
        char ip[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&l->addr)->sin6_addr, ip, sizeof(ip));
        for (char *p = ip; *p != '\0'; ++p)
            if (*p == ':')
                *p = '_';
        snprintf(buf, sizeof(buf), "[%s]_%u", ip, sa->port_value);
    } else {
        snprintf(buf, sizeof(buf), "%s_%u", sa->address, sa->port_value);
    }
    l->address_string = lg_xstrdup(buf);
    l->stat_cx_total = lg_stats_registerf(LG_STAT_COUNTER, "listener.%s.downstream_cx_total", buf);
    l->stat_cx_active = lg_stats_registerf(LG_STAT_GAUGE, "listener.%s.downstream_cx_active", buf);
    l->name = lg_xstrdup(pb->name != NULL && pb->name[0] != '\0' ? pb->name : buf);
    l->per_connection_buffer_limit = u32(pb->per_connection_buffer_limit_bytes, 1024 * 1024);
    l->access_logs = lg_xcalloc(pb->n_access_log, sizeof(*l->access_logs));
    for (size_t i = 0; i < pb->n_access_log; ++i) {
        size_t al_mark = lg_path_push_field(&b->path, "access_log");
        lg_path_push_index(&b->path, i);
        if (b->validate_only) {
            if (lg_access_log_check(pb->access_log[i], &b->bootstrap->srcmap, &b->path, b->err) != 0)
                return -1;
        } else {
            if ((l->access_logs[l->n_access_logs] =
                     lg_access_log_build(pb->access_log[i], &b->bootstrap->srcmap, &b->path, b->err)) == NULL)
                return -1;
            ++l->n_access_logs;
        }
        lg_path_pop(&b->path, al_mark);
    }
    l->chains = lg_xcalloc(pb->n_filter_chains, sizeof(*l->chains));
    int any_tls = 0;
    for (size_t i = 0; i < pb->n_filter_chains; ++i) {
        size_t m1 = lg_path_push_field(&b->path, "filter_chains");
        lg_path_push_index(&b->path, i);
        lg_filter_chain_t *fc = build_chain(b, pb->filter_chains[i]);
        if (fc == NULL)
            return -1;
        l->chains[l->n_chains++] = fc;
        any_tls |= fc->tls != NULL;
        lg_path_pop(&b->path, m1);
    }
    if (pb->default_filter_chain != NULL) {
        size_t m1 = lg_path_push_field(&b->path, "default_filter_chain");
        if ((l->default_chain = build_chain(b, pb->default_filter_chain)) == NULL)
            return -1;
        any_tls |= l->default_chain->tls != NULL;
        lg_path_pop(&b->path, m1);
    }
    if (any_tls) {
        /* The selector's chain i is l->chains[i]; the default chain comes last. */
        lg_tls_sni_chain_t *sni = lg_xcalloc(l->n_chains + 1, sizeof(*sni));
        for (size_t i = 0; i < l->n_chains; ++i)
            sni[i] = (lg_tls_sni_chain_t){l->chains[i]->server_names, l->chains[i]->n_server_names, l->chains[i]->tls};
        if (l->default_chain != NULL)
            sni[l->n_chains] = (lg_tls_sni_chain_t){NULL, 0, l->default_chain->tls};
        l->tls_selector = lg_tls_server_selector_build(sni, l->n_chains + (l->default_chain != NULL),
                                                       l->default_chain != NULL ? (int)l->n_chains : -1, b->err);
        free(sni);
        if (l->tls_selector == NULL) {
            lg_error_prefix(b->err, "%s: %s: ", b->bootstrap->name, b->path.buf);
            return -1;
        }
    }
    return 0;
}

static lg_listener_t *build_listener(build_t *b, const Envoy__Config__Listener__V3__Listener *pb)
{
    lg_listener_t *l = lg_xcalloc(1, sizeof(*l));
    if (fill_listener(b, l, pb) != 0) {
        free_listener(l);
        return NULL;
    }
    return l;
}

lg_snapshot_t *lg_snapshot_build_from(const lg_bootstrap_t *bootstrap, const lg_snapshot_sources_t *src,
                                      int validate_only, lg_error_t *err)
{
    static uint64_t version;
    build_t b = {.bootstrap = bootstrap, .err = err, .validate_only = validate_only, .src = src};
    lg_path_init(&b.path);
    lg_snapshot_t *s = lg_xcalloc(1, sizeof(*s));
    atomic_init(&s->refcnt, 1);
    s->version = ++version;
    b.snap = s;
    s->clusters = lg_xcalloc(src->n_clusters, sizeof(*s->clusters));
    for (size_t i = 0; i < src->n_clusters; ++i) {
        size_t mark = lg_path_push_field(&b.path, src->clusters_path);
        lg_path_push_index(&b.path, i);
        lg_cluster_t *c = build_cluster(&b, src->clusters[i]);
        if (c == NULL)
            goto fail;
        s->clusters[s->n_clusters++] = c;
        lg_path_pop(&b.path, mark);
    }
    qsort(s->clusters, s->n_clusters, sizeof(*s->clusters), compare_clusters);
    for (size_t i = 0; i < s->n_clusters; ++i)
        s->clusters[i]->index = (unsigned)i;
    s->listeners = lg_xcalloc(src->n_listeners, sizeof(*s->listeners));
    for (size_t i = 0; i < src->n_listeners; ++i) {
        size_t mark = lg_path_push_field(&b.path, src->listeners_path);
        lg_path_push_index(&b.path, i);
        lg_listener_t *l = build_listener(&b, src->listeners[i]);
        if (l == NULL)
            goto fail;
        s->listeners[s->n_listeners++] = l;
        lg_path_pop(&b.path, mark);
    }
    return s;
fail:
    lg_snapshot_release(s);
    return NULL;
}

void lg_snapshot_static_sources(const lg_bootstrap_t *bootstrap, lg_snapshot_sources_t *src)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = bootstrap->pb->static_resources;
    *src = (lg_snapshot_sources_t){.clusters_path = "static_resources.clusters",
                                   .listeners_path = "static_resources.listeners"};
    if (sr != NULL) {
        src->clusters = (const Envoy__Config__Cluster__V3__Cluster *const *)sr->clusters;
        src->n_clusters = sr->n_clusters;
        src->listeners = (const Envoy__Config__Listener__V3__Listener *const *)sr->listeners;
        src->n_listeners = sr->n_listeners;
    }
}

lg_snapshot_t *lg_snapshot_build_ex(const lg_bootstrap_t *bootstrap, int validate_only, lg_error_t *err)
{
    lg_snapshot_sources_t src;
    lg_snapshot_static_sources(bootstrap, &src);
    return lg_snapshot_build_from(bootstrap, &src, validate_only, err);
}

lg_snapshot_t *lg_snapshot_build(const lg_bootstrap_t *bootstrap, lg_error_t *err)
{
    return lg_snapshot_build_ex(bootstrap, 0, err);
}

/* ------------------------------------------------------------------------------------------- */
/* Release                                                                                     */
/* ------------------------------------------------------------------------------------------- */

static void free_hcm(lg_hcm_config_t *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->n_access_logs; ++i)
        lg_access_log_free(h->access_logs[i]);
    free(h->access_logs);
    for (size_t i = 0; i < h->n_filters; ++i) {
        lg_filter_factory_entry_t *e = &h->filters[i];
        if (e->ops != NULL && e->config != NULL && e->ops->destroy_config != NULL)
            e->ops->destroy_config(e->config);
        free(e->name);
    }
    free(h->filters);
    if (h->route_table != NULL)
        lg_route_table_release(h->route_table);
    free((void *)h->stats);
    free(h->stat_prefix);
    free(h->rds_name);
    free(h->server_name);
    free(h);
}

static void free_chain(lg_filter_chain_t *fc)
{
    if (fc == NULL)
        return;
    free_hcm(fc->hcm);
    if (fc->tls != NULL)
        lg_tls_server_ctx_release(fc->tls);
    for (size_t i = 0; i < fc->n_server_names; ++i)
        free(fc->server_names[i]);
    free(fc->server_names);
    free(fc->name);
    free(fc);
}

static void free_listener(lg_listener_t *l)
{
    for (size_t j = 0; j < l->n_chains; ++j)
        free_chain(l->chains[j]);
    free_chain(l->default_chain);
    if (l->tls_selector != NULL)
        lg_tls_server_selector_release(l->tls_selector);
    for (size_t j = 0; j < l->n_access_logs; ++j)
        lg_access_log_free(l->access_logs[j]);
    free(l->access_logs);
    free(l->chains);
    free(l->name);
    free(l->address_string);
    free(l);
}

static void free_cluster(lg_cluster_t *c)
{
    for (size_t j = 0; j < c->n_hosts; ++j) {
        free(c->hosts[j]->address_string);
        free(c->hosts[j]->hostname);
        free(c->hosts[j]);
    }
    free(c->hosts);
    lg_lb_table_free(c->lb_table);
    if (c->tls != NULL)
        lg_tls_client_ctx_release(c->tls);
    free((void *)c->stats);
    free(c->sni);
    free(c->name);
    free(c);
}

void lg_snapshot_release(lg_snapshot_t *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refcnt, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < s->n_listeners; ++i)
        free_listener(s->listeners[i]);
    for (size_t i = 0; i < s->n_clusters; ++i)
        free_cluster(s->clusters[i]);
    free(s->listeners);
    free(s->clusters);
    free(s);
}
