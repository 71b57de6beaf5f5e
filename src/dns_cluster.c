/*
 * DNS discovery for clusters: see dns_cluster.h.
 *
 * State: one entry per DNS cluster, with its settings, its own c-ares channel (each cluster may
 * name its own resolvers, as in Envoy) and one target per endpoint hostname:port, each on its own
 * refresh timer. A cluster is recognised across syncs by name and by its packed message: the same
 * bytes keep the running state, different ones restart it with the targets' last good addresses.
 */
#include "dns_cluster.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/extensions/clusters/dns/v3/dns_cluster.pb-c.h"
#include "envoy/extensions/network/dns_resolver/cares/v3/cares_dns_resolver.pb-c.h"
#include "log.h"
#include "pb_registry.h"
#include "stats.h"
#include "xds/xds_client.h"

typedef Envoy__Config__Cluster__V3__Cluster cluster_pb_t;
typedef Envoy__Extensions__Clusters__Dns__V3__DnsCluster dns_cluster_pb_t;
typedef Envoy__Extensions__Network__DnsResolver__Cares__V3__CaresDnsResolverConfig cares_pb_t;

#define DNS_CLUSTER_STATS(X)                                                                       \
    X(update_attempt) X(update_success) X(update_failure) X(update_empty) X(update_no_rebuild)     \
    X(membership_change)

typedef struct st_dns_cluster_t dns_cluster_t;

typedef struct st_target_t {
    dns_cluster_t *cluster;
    char *hostname;
    uint32_t port;
    lg_dns_addrs_t addrs; /* last good */
    int have_answer, resolved_once, streak_logged;
    lg_dns_refresh_t refresh;
    lg_deadline_timer_t timer;
} target_t;

struct st_dns_cluster_t {
    lg_dns_discovery_t *d;
    char *name;
    uint8_t *packed;
    size_t packed_len;
    lg_dns_cluster_config_t cfg;
    lg_dns_resolver_t *resolver;
    target_t **targets;
    size_t n_targets;
    int seen; /* in the current sync */
    struct {
#define LG_X(n) lg_stat_id_t n;
        DNS_CLUSTER_STATS(LG_X)
#undef LG_X
    } stat;
};

struct st_lg_dns_discovery_t {
    lg_deadline_rungs_t rungs;
    const struct st_lg_srcmap_t *map;
    lg_dns_discovery_cb cb;
    void *ctx;
    dns_cluster_t **clusters;
    size_t n_clusters;
    lg_deadline_timer_t notify; /* calls cb from the loop, once per pass however many changed */
};

/* ------------------------------------------------------------------------------------------- */
/* Settings                                                                                    */
/* ------------------------------------------------------------------------------------------- */

int lg_dns_cluster_is_dns(const cluster_pb_t *pb)
{
    if (pb->cluster_discovery_type_case == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_CLUSTER_TYPE)
        return pb->cluster_type != NULL && pb->cluster_type->name != NULL &&
               strcmp(pb->cluster_type->name, "envoy.clusters.dns") == 0;
    return pb->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS ||
           pb->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS;
}

static uint64_t duration_ms(const Google__Protobuf__Duration *d, uint64_t dflt)
{
    if (d == NULL)
        return dflt;
    if (d->seconds < 0 || d->nanos < 0)
        return 0;
    return (uint64_t)d->seconds * 1000 + (uint64_t)d->nanos / 1000000;
}

/* Resolver addresses as c-ares's "ip:port,[ip6]:port" list; 53 when no port is given. */
static int servers_csv(Envoy__Config__Core__V3__Address *const *addrs, size_t n, const char *field, char **out,
                       lg_error_t *err)
{
    size_t cap = n * 64 + 1, len = 0;
    char *csv = malloc(cap);
    if (csv == NULL)
        lg_fatal("out of memory");
    csv[0] = '\0';
    for (size_t i = 0; i < n; ++i) {
        const Envoy__Config__Core__V3__SocketAddress *sa =
            addrs[i]->address_case == ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS ? addrs[i]->socket_address
                                                                                              : NULL;
        struct in6_addr a6;
        struct in_addr a4;
        int v6 = sa != NULL && sa->address != NULL && inet_pton(AF_INET6, sa->address, &a6) == 1;
        if (sa == NULL || sa->address == NULL || (!v6 && inet_pton(AF_INET, sa->address, &a4) != 1)) {
            free(csv);
            return lg_error_set(err, "%s[%zu]: a resolver must be an IP socket_address", field, i);
        }
        uint32_t port = sa->port_value != 0 ? sa->port_value : 53;
        len += (size_t)snprintf(csv + len, cap - len, "%s%s%s%s:%u", i ? "," : "", v6 ? "[" : "", sa->address,
                                v6 ? "]" : "", port);
    }
    *out = csv;
    return 0;
}

static int resolver_config(const cluster_pb_t *pb, const struct st_lg_srcmap_t *map, lg_dns_resolver_config_t *rc,
                           const Envoy__Config__Core__V3__TypedExtensionConfig *typed, lg_error_t *err)
{
    if (typed != NULL) {
        if (typed->typed_config == NULL)
            return lg_error_set(err, "typed_dns_resolver_config: typed_config is required");
        int owned;
        ProtobufCMessage *m = lg_pb_any_open(map, &typed->typed_config->base, &owned);
        if (m == NULL || m->descriptor != &envoy__extensions__network__dns_resolver__cares__v3__cares_dns_resolver_config__descriptor) {
            lg_pb_any_close(m, owned);
            return lg_error_set(err, "typed_dns_resolver_config: DNS resolver \"%s\" is not supported by legate "
                                     "(envoy.network.dns_resolver.cares is)", typed->name != NULL ? typed->name : "");
        }
        const cares_pb_t *c = (const void *)m;
        int r = 0;
        if (c->n_resolvers != 0)
            r = servers_csv(c->resolvers, c->n_resolvers, "typed_dns_resolver_config.resolvers", &rc->servers_csv, err);
        rc->servers_as_fallback = c->use_resolvers_as_fallback;
        if (c->dns_resolver_options != NULL) {
            rc->use_tcp = c->dns_resolver_options->use_tcp_for_dns_lookups;
            rc->no_default_search_domain = c->dns_resolver_options->no_default_search_domain;
        }
        lg_pb_any_close(m, owned);
        return r;
    }
    /* The deprecated fields, newest first, as Envoy reads them. */
    if (pb->dns_resolution_config != NULL) {
        const Envoy__Config__Core__V3__DnsResolutionConfig *drc = pb->dns_resolution_config;
        if (drc->dns_resolver_options != NULL) {
            rc->use_tcp = drc->dns_resolver_options->use_tcp_for_dns_lookups;
            rc->no_default_search_domain = drc->dns_resolver_options->no_default_search_domain;
        }
        if (drc->n_resolvers != 0)
            return servers_csv(drc->resolvers, drc->n_resolvers, "dns_resolution_config.resolvers", &rc->servers_csv, err);
        return 0;
    }
    rc->use_tcp = pb->use_tcp_for_dns_lookups;
    if (pb->n_dns_resolvers != 0)
        return servers_csv(pb->dns_resolvers, pb->n_dns_resolvers, "dns_resolvers", &rc->servers_csv, err);
    return 0;
}

static lg_dns_family_t cluster_family(int v)
{
    switch (v) {
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__V4_ONLY:
        return LG_DNS_V4_ONLY;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__V6_ONLY:
        return LG_DNS_V6_ONLY;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__V4_PREFERRED:
        return LG_DNS_V4_PREFERRED;
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__ALL:
        return LG_DNS_ALL;
    default:
        return LG_DNS_AUTO;
    }
}

/* DnsCluster's enum is the Cluster one shifted by one, with UNSPECIFIED (0) meaning AUTO. */
static lg_dns_family_t common_family(int v)
{
    return cluster_family(v > 0 ? v - 1 : ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DNS_LOOKUP_FAMILY__AUTO);
}

/* The refresh settings shared by Cluster and DnsCluster, with Envoy's rules (rates > 1 ms). */
static int refresh_config(lg_dns_refresh_t *r, const Google__Protobuf__Duration *rate,
                          const Google__Protobuf__Duration *fbase, const Google__Protobuf__Duration *fmax,
                          int has_failure_rate, lg_error_t *err)
{
    r->refresh_ms = duration_ms(rate, 5000);
    if (r->refresh_ms <= 1)
        return lg_error_set(err, "dns_refresh_rate: value must be greater than 1ms");
    if (has_failure_rate) {
        r->failure_base_ms = duration_ms(fbase, 0);
        r->failure_max_ms = duration_ms(fmax, r->failure_base_ms * 10);
        if (r->failure_base_ms <= 1)
            return lg_error_set(err, "dns_failure_refresh_rate.base_interval: value must be greater than 1ms");
        if (r->failure_max_ms < r->failure_base_ms)
            return lg_error_set(err, "dns_failure_refresh_rate.max_interval: must not be below base_interval");
    }
    return 0;
}

static int count_targets(const cluster_pb_t *pb)
{
    int n = 0;
    for (size_t i = 0; pb->load_assignment != NULL && i < pb->load_assignment->n_endpoints; ++i)
        n += (int)pb->load_assignment->endpoints[i]->n_lb_endpoints;
    return n;
}

int lg_dns_cluster_config_parse(const cluster_pb_t *pb, const struct st_lg_srcmap_t *map, lg_dns_cluster_config_t *out,
                                lg_error_t *err)
{
    memset(out, 0, sizeof(*out));
    int r;
    if (pb->cluster_discovery_type_case == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_CLUSTER_TYPE) {
        const dns_cluster_pb_t *dc = NULL;
        int owned = 0;
        ProtobufCMessage *m = NULL;
        if (pb->cluster_type->typed_config != NULL) {
            m = lg_pb_any_open(map, &pb->cluster_type->typed_config->base, &owned);
            if (m == NULL || m->descriptor != &envoy__extensions__clusters__dns__v3__dns_cluster__descriptor) {
                lg_pb_any_close(m, owned);
                return lg_error_set(err, "cluster_type.typed_config: must be a "
                                         "envoy.extensions.clusters.dns.v3.DnsCluster");
            }
            dc = (const void *)m;
        }
        static const dns_cluster_pb_t dflt = ENVOY__EXTENSIONS__CLUSTERS__DNS__V3__DNS_CLUSTER__INIT;
        if (dc == NULL)
            dc = &dflt;
        out->logical = dc->all_addresses_in_single_endpoint;
        out->family = common_family(dc->dns_lookup_family);
        out->refresh.respect_ttl = dc->respect_dns_ttl;
        out->refresh.jitter_ms = duration_ms(dc->dns_jitter, 0);
        r = refresh_config(&out->refresh, dc->dns_refresh_rate,
                           dc->dns_failure_refresh_rate ? dc->dns_failure_refresh_rate->base_interval : NULL,
                           dc->dns_failure_refresh_rate ? dc->dns_failure_refresh_rate->max_interval : NULL,
                           dc->dns_failure_refresh_rate != NULL, err);
        if (r == 0)
            r = resolver_config(pb, map, &out->resolver, dc->typed_dns_resolver_config, err);
        if (r == 0 && dc->typed_dns_resolver_config == NULL && pb->typed_dns_resolver_config != NULL)
            r = resolver_config(pb, map, &out->resolver, pb->typed_dns_resolver_config, err);
        lg_pb_any_close(m, owned);
    } else {
        out->logical = pb->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS;
        out->family = cluster_family(pb->dns_lookup_family);
        out->refresh.respect_ttl = pb->respect_dns_ttl;
        r = refresh_config(&out->refresh, pb->dns_refresh_rate,
                           pb->dns_failure_refresh_rate ? pb->dns_failure_refresh_rate->base_interval : NULL,
                           pb->dns_failure_refresh_rate ? pb->dns_failure_refresh_rate->max_interval : NULL,
                           pb->dns_failure_refresh_rate != NULL, err);
        if (r == 0)
            r = resolver_config(pb, map, &out->resolver, pb->typed_dns_resolver_config, err);
    }
    if (r == 0 && out->logical && count_targets(pb) != 1)
        r = lg_error_set(err, "load_assignment: a LOGICAL_DNS cluster (or all_addresses_in_single_endpoint) needs "
                              "exactly one endpoint");
    if (r != 0)
        lg_dns_cluster_config_clear(out);
    return r;
}

const Envoy__Config__Core__V3__SocketAddress *lg_dns_lb_endpoint_address(const Envoy__Config__Endpoint__V3__LbEndpoint *e)
{
    if (e->host_identifier_case != ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT ||
        e->endpoint->address == NULL ||
        e->endpoint->address->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS)
        return NULL;
    return e->endpoint->address->socket_address;
}

void lg_dns_cluster_config_clear(lg_dns_cluster_config_t *cfg)
{
    free(cfg->resolver.servers_csv);
    cfg->resolver.servers_csv = NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* Resolution                                                                                  */
/* ------------------------------------------------------------------------------------------- */

static int cluster_warming(const dns_cluster_t *c)
{
    for (size_t i = 0; i < c->n_targets; ++i)
        if (!c->targets[i]->resolved_once)
            return 1;
    return 0;
}

int lg_dns_discovery_warming(const lg_dns_discovery_t *d)
{
    for (size_t i = 0; i < d->n_clusters; ++i)
        if (cluster_warming(d->clusters[i]))
            return 1;
    return 0;
}

static void notify_later(lg_dns_discovery_t *d)
{
    if (!lg_deadline_timer_is_running(&d->notify))
        lg_deadline_timer_start(&d->notify, 0);
}

static void on_notify(lg_deadline_timer_t *t)
{
    lg_dns_discovery_t *d = H2O_STRUCT_FROM_MEMBER(lg_dns_discovery_t, notify, t);
    d->cb(d->ctx);
}

static void on_answer(void *ctx, lg_dns_status_t status, const lg_dns_addrs_t *addrs)
{
    target_t *t = ctx;
    dns_cluster_t *c = t->cluster;
    lg_dns_discovery_t *d = c->d;
    lg_stats_cells_t *cells = lg_xds_stats_cells();
    int was_warming = cluster_warming(c);
    uint64_t next;
    if (status == LG_DNS_ANSWERED) {
        lg_stats_inc(cells, c->stat.update_success);
        lg_dns_addrs_t fresh = {0};
        if (c->cfg.logical)
            lg_dns_addrs_add(&fresh, (const struct sockaddr *)&addrs->v[0], (uint16_t)t->port, addrs->min_ttl_s);
        else
            lg_dns_addrs_copy(&fresh, addrs);
        if (t->have_answer && lg_dns_addrs_same_set(&fresh, &t->addrs)) {
            lg_stats_inc(cells, c->stat.update_no_rebuild);
            lg_dns_addrs_clear(&fresh);
        } else {
            lg_dns_addrs_clear(&t->addrs);
            t->addrs = fresh;
            t->have_answer = 1;
            lg_stats_inc(cells, c->stat.membership_change);
            lg_info(upstream, "cluster \"%s\": %s resolved to %zu address(es)", c->name, t->hostname, t->addrs.n);
            notify_later(d);
        }
        if (t->streak_logged)
            lg_info(upstream, "cluster \"%s\": %s resolves again", c->name, t->hostname);
        t->streak_logged = 0;
        next = lg_dns_refresh_after_success(&t->refresh, addrs->min_ttl_s, (uint32_t)random());
    } else {
        lg_stats_inc(cells, status == LG_DNS_NO_NAME ? c->stat.update_empty : c->stat.update_failure);
        if (!t->streak_logged)
            lg_warn(upstream, "cluster \"%s\": resolving %s %s; %s", c->name, t->hostname,
                    status == LG_DNS_NO_NAME ? "gave no address" : "failed",
                    t->have_answer ? "keeping the last good addresses" : "the cluster has no host for it yet");
        t->streak_logged = 1;
        next = lg_dns_refresh_after_failure(&t->refresh, (uint32_t)random());
    }
    t->resolved_once = 1;
    if (was_warming && !lg_dns_discovery_warming(d))
        notify_later(d);
    lg_deadline_timer_start(&t->timer, next);
}

static void on_refresh(lg_deadline_timer_t *timer)
{
    target_t *t = H2O_STRUCT_FROM_MEMBER(target_t, timer, timer);
    dns_cluster_t *c = t->cluster;
    lg_stats_inc(lg_xds_stats_cells(), c->stat.update_attempt);
    lg_dns_resolve(c->resolver, t->hostname, (uint16_t)t->port, c->cfg.family, on_answer, t);
}

/* ------------------------------------------------------------------------------------------- */
/* Clusters                                                                                    */
/* ------------------------------------------------------------------------------------------- */

static void free_cluster(dns_cluster_t *c)
{
    lg_dns_resolver_free(c->resolver); /* pending answers are dropped, never delivered */
    for (size_t i = 0; i < c->n_targets; ++i) {
        lg_deadline_timer_stop(&c->targets[i]->timer);
        lg_dns_addrs_clear(&c->targets[i]->addrs);
        free(c->targets[i]->hostname);
        free(c->targets[i]);
    }
    free(c->targets);
    lg_dns_cluster_config_clear(&c->cfg);
    free(c->packed);
    free(c->name);
    free(c);
}

static target_t *find_target(const dns_cluster_t *c, const char *hostname, uint32_t port)
{
    for (size_t i = 0; c != NULL && i < c->n_targets; ++i)
        if (c->targets[i]->port == port && strcmp(c->targets[i]->hostname, hostname) == 0)
            return c->targets[i];
    return NULL;
}

static void add_target(dns_cluster_t *c, const char *hostname, uint32_t port, const dns_cluster_t *old)
{
    if (find_target(c, hostname, port) != NULL)
        return;
    target_t *t = calloc(1, sizeof(*t));
    target_t **v = realloc(c->targets, (c->n_targets + 1) * sizeof(*v));
    if (t == NULL || v == NULL || (t->hostname = strdup(hostname)) == NULL)
        lg_fatal("out of memory");
    c->targets = v;
    c->targets[c->n_targets++] = t;
    t->cluster = c;
    t->port = port;
    t->refresh = c->cfg.refresh;
    lg_deadline_timer_init(&t->timer, &c->d->rungs, on_refresh);
    const target_t *prev = find_target(old, hostname, port);
    if (prev != NULL && prev->have_answer) {
        lg_dns_addrs_copy(&t->addrs, &prev->addrs);
        t->have_answer = t->resolved_once = 1;
    }
    lg_deadline_timer_start(&t->timer, 0);
}

static dns_cluster_t *new_cluster(lg_dns_discovery_t *d, const cluster_pb_t *pb, uint8_t *packed, size_t len,
                                  const dns_cluster_t *old)
{
    lg_error_t err;
    lg_dns_cluster_config_t cfg;
    if (lg_dns_cluster_config_parse(pb, d->map, &cfg, &err) != 0) {
        lg_warn(upstream, "cluster \"%s\": %s: not resolving it", pb->name, err.msg);
        return NULL;
    }
    lg_dns_resolver_t *r = lg_dns_resolver_new(&d->rungs, &cfg.resolver, &err);
    if (r == NULL) {
        lg_warn(upstream, "cluster \"%s\": %s: not resolving it", pb->name, err.msg);
        lg_dns_cluster_config_clear(&cfg);
        return NULL;
    }
    dns_cluster_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->name = strdup(pb->name)) == NULL)
        lg_fatal("out of memory");
    c->d = d;
    c->cfg = cfg;
    c->resolver = r;
    c->packed = packed;
    c->packed_len = len;
#define LG_X(n) c->stat.n = lg_stats_registerf(LG_STAT_COUNTER, "cluster.%s." #n, c->name);
    DNS_CLUSTER_STATS(LG_X)
#undef LG_X
    const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la = pb->load_assignment;
    for (size_t i = 0; la != NULL && i < la->n_endpoints; ++i)
        for (size_t j = 0; j < la->endpoints[i]->n_lb_endpoints; ++j) {
            const Envoy__Config__Core__V3__SocketAddress *sa =
                lg_dns_lb_endpoint_address(la->endpoints[i]->lb_endpoints[j]);
            if (sa != NULL)
                add_target(c, sa->address, sa->port_value, old);
        }
    return c;
}

static dns_cluster_t *find_cluster(const lg_dns_discovery_t *d, const char *name)
{
    for (size_t i = 0; i < d->n_clusters; ++i)
        if (strcmp(d->clusters[i]->name, name) == 0)
            return d->clusters[i];
    return NULL;
}

void lg_dns_discovery_sync(lg_dns_discovery_t *d, const cluster_pb_t *const *clusters, size_t n)
{
    dns_cluster_t **next = calloc(n ? n : 1, sizeof(*next));
    size_t n_next = 0;
    if (next == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i < d->n_clusters; ++i)
        d->clusters[i]->seen = 0;
    for (size_t i = 0; i < n; ++i) {
        const cluster_pb_t *pb = clusters[i];
        if (!lg_dns_cluster_is_dns(pb))
            continue;
        size_t len = protobuf_c_message_get_packed_size(&pb->base);
        uint8_t *packed = malloc(len ? len : 1);
        if (packed == NULL)
            lg_fatal("out of memory");
        protobuf_c_message_pack(&pb->base, packed);
        dns_cluster_t *old = find_cluster(d, pb->name);
        if (old != NULL && !old->seen && old->packed_len == len && memcmp(old->packed, packed, len) == 0) {
            old->seen = 1;
            next[n_next++] = old;
            free(packed);
            continue;
        }
        dns_cluster_t *c = new_cluster(d, pb, packed, len, old);
        if (c == NULL) {
            free(packed);
            continue;
        }
        c->seen = 1;
        next[n_next++] = c;
    }
    for (size_t i = 0; i < d->n_clusters; ++i)
        if (!d->clusters[i]->seen)
            free_cluster(d->clusters[i]);
    free(d->clusters);
    d->clusters = next;
    d->n_clusters = n_next;
}

const lg_dns_addrs_t *lg_dns_discovery_find(void *dv, const char *cluster, const char *hostname, uint32_t port)
{
    const target_t *t = find_target(find_cluster(dv, cluster), hostname, port);
    return t != NULL && t->have_answer ? &t->addrs : NULL;
}

lg_dns_discovery_t *lg_dns_discovery_new(h2o_evloop_t *loop, const struct st_lg_srcmap_t *map, lg_dns_discovery_cb cb,
                                         void *ctx)
{
    lg_dns_discovery_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        lg_fatal("out of memory");
    lg_deadline_rungs_init(&d->rungs, loop);
    d->map = map;
    d->cb = cb;
    d->ctx = ctx;
    lg_deadline_timer_init(&d->notify, &d->rungs, on_notify);
    return d;
}

void lg_dns_discovery_free(lg_dns_discovery_t *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->n_clusters; ++i)
        free_cluster(d->clusters[i]);
    free(d->clusters);
    lg_deadline_timer_stop(&d->notify);
    lg_deadline_rungs_dispose(&d->rungs);
    free(d);
}
