/*
 * xDS resources -> config snapshots: see dynamic_config.h.
 *
 * The four resource sets (clusters, endpoints, listeners, routes) are kept by name. An update is
 * applied to copies of the sets, a snapshot is built from the copies plus the bootstrap's static
 * resources, and only when that succeeds are the copies kept and the snapshot handed on; a build
 * error becomes the NACK's error_detail and the last good sets stay. After a cluster or listener
 * update the EDS and RDS subscriptions are recomputed, as one request per type.
 */
#include "dynamic_config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "log.h"
#include "pb_registry.h"
#include "stats.h"
#include "xalloc.h"
#include "xds/xds_internal.h"

/* Parallel arrays: a resource's name, message, the version it came with and when it was accepted. */
typedef struct st_resource_set_t {
    char **names;
    ProtobufCMessage **msgs;
    char **versions;
    struct timespec *updated;
    size_t n;
    uint32_t *index; /* open addressing by name: position + 1 (0 = empty); NULL until built */
    size_t index_cap; /* a power of two, at least twice n */
} resource_set_t;

/* http.<stat_prefix>.rds.<route_config_name>.*: one per connection manager naming an RDS config. */
typedef struct st_rds_stats_t {
    char *name, *stat_prefix;
    lg_stat_id_t update_attempt, update_success, update_rejected, update_time, version;
    uint64_t update_time_value, version_value;
} rds_stats_t;

struct st_lg_dynamic_config_t {
    const lg_bootstrap_t *bootstrap;
    rds_stats_t *rds_stats;
    size_t n_rds_stats;
    lg_xds_client_t *xds;
    lg_dns_discovery_t *dns;
    resource_set_t sets[LG_XDS__NTYPES];
    char *type_versions[LG_XDS__NTYPES];     /* version_info of the last accepted response */
    lg_dynamic_error_t errors[LG_XDS__NTYPES]; /* the last rejected update, until one is accepted */
    int settled[LG_XDS__NTYPES]; /* first response or initial_fetch_timeout seen */
    lg_dynamic_config_on_snapshot_cb on_snapshot;
    void *ctx;
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        lg_fatal("out of memory");
    return p;
}

static size_t name_hash(const char *name)
{
    uint64_t h = 1469598103934665603ull;
    for (; *name != '\0'; ++name)
        h = (h ^ (unsigned char)*name) * 1099511628211ull;
    return (size_t)h;
}

static void index_insert(resource_set_t *s, size_t i)
{
    size_t mask = s->index_cap - 1;
    size_t slot = name_hash(s->names[i]) & mask;
    while (s->index[slot] != 0)
        slot = (slot + 1) & mask;
    s->index[slot] = (uint32_t)i + 1;
}

/* (Re)builds the name index for `n + extra` names: xDS sets reach tens of thousands of
 * resources, and a linear search per resource per update made 10,000 clusters take seconds. */
static void index_build(resource_set_t *s, size_t extra)
{
    free(s->index);
    s->index_cap = 16;
    while (s->index_cap < 2 * (s->n + extra))
        s->index_cap *= 2;
    s->index = lg_xcalloc(s->index_cap, sizeof(*s->index));
    for (size_t i = 0; i < s->n; ++i)
        index_insert(s, i);
}

static ssize_t set_find(const resource_set_t *s, const char *name)
{
    if (s->index == NULL) {
        for (size_t i = 0; i < s->n; ++i)
            if (strcmp(s->names[i], name) == 0)
                return (ssize_t)i;
        return -1;
    }
    size_t mask = s->index_cap - 1;
    for (size_t slot = name_hash(name) & mask; s->index[slot] != 0; slot = (slot + 1) & mask) {
        size_t i = s->index[slot] - 1;
        if (strcmp(s->names[i], name) == 0)
            return (ssize_t)i;
    }
    return -1;
}

/* A shallow copy: names, messages and versions are shared with the original until commit/discard. */
static void set_copy(resource_set_t *dst, const resource_set_t *src, size_t extra)
{
    dst->names = xmalloc((src->n + extra) * sizeof(char *));
    dst->msgs = xmalloc((src->n + extra) * sizeof(ProtobufCMessage *));
    dst->versions = xmalloc((src->n + extra) * sizeof(char *));
    dst->updated = xmalloc((src->n + extra) * sizeof(struct timespec));
    if (src->n != 0) {
        memcpy(dst->names, src->names, src->n * sizeof(char *));
        memcpy(dst->msgs, src->msgs, src->n * sizeof(ProtobufCMessage *));
        memcpy(dst->versions, src->versions, src->n * sizeof(char *));
        memcpy(dst->updated, src->updated, src->n * sizeof(struct timespec));
    }
    dst->n = src->n;
    dst->index = NULL;
    index_build(dst, extra);
}

static void set_free_arrays(resource_set_t *s)
{
    free(s->index);
    free(s->names);
    free(s->msgs);
    free(s->versions);
    free(s->updated);
}

static char *xstrdup_or_empty(const char *v)
{
    char *d = strdup(v != NULL ? v : "");
    if (d == NULL)
        lg_fatal("out of memory");
    return d;
}

static void error_clear(lg_dynamic_error_t *e)
{
    free(e->details);
    free(e->version);
    for (size_t i = 0; i < e->n_names; ++i)
        free(e->names[i]);
    free(e->names);
    memset(e, 0, sizeof(*e));
}

static const ProtobufCMessage *set_get(const resource_set_t *s, const char *name)
{
    ssize_t i = set_find(s, name);
    return i < 0 ? NULL : s->msgs[i];
}

/* Lookups for the snapshot builder, over the candidate sets. */
typedef struct st_lookup_ctx_t {
    const resource_set_t *sets;
} lookup_ctx_t;

static const struct Envoy__Config__Route__V3__RouteConfiguration *find_route(void *ctx, const char *name)
{
    return (const void *)set_get(&((lookup_ctx_t *)ctx)->sets[LG_XDS_RDS], name);
}

static const struct Envoy__Config__Endpoint__V3__ClusterLoadAssignment *find_endpoints(void *ctx, const char *name)
{
    return (const void *)set_get(&((lookup_ctx_t *)ctx)->sets[LG_XDS_EDS], name);
}

/* The static clusters followed by those of `sets`; the caller frees the array. */
static const void **all_clusters(const lg_dynamic_config_t *dc, const resource_set_t *sets, size_t *n)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = dc->bootstrap->pb->static_resources;
    size_t ns_c = sr != NULL ? sr->n_clusters : 0;
    const void **clusters = xmalloc((ns_c + sets[LG_XDS_CDS].n) * sizeof(void *));
    for (size_t i = 0; i < ns_c; ++i)
        clusters[i] = sr->clusters[i];
    for (size_t i = 0; i < sets[LG_XDS_CDS].n; ++i)
        clusters[ns_c + i] = sets[LG_XDS_CDS].msgs[i];
    *n = ns_c + sets[LG_XDS_CDS].n;
    return clusters;
}

static void sync_dns(lg_dynamic_config_t *dc)
{
    if (dc->dns == NULL)
        return;
    size_t n;
    const void **clusters = all_clusters(dc, dc->sets, &n);
    lg_dns_discovery_sync(dc->dns, (const void *)clusters, n);
    free(clusters);
}

static lg_snapshot_t *build(lg_dynamic_config_t *dc, const resource_set_t *sets, lg_error_t *err)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = dc->bootstrap->pb->static_resources;
    size_t ns_l = sr != NULL ? sr->n_listeners : 0, n_clusters;
    const void **listeners = xmalloc((ns_l + sets[LG_XDS_LDS].n) * sizeof(void *));
    for (size_t i = 0; i < ns_l; ++i)
        listeners[i] = sr->listeners[i];
    for (size_t i = 0; i < sets[LG_XDS_LDS].n; ++i)
        listeners[ns_l + i] = sets[LG_XDS_LDS].msgs[i];
    const void **clusters = all_clusters(dc, sets, &n_clusters);
    lookup_ctx_t lctx = {sets};
    lg_snapshot_sources_t src = {(const void *)listeners, ns_l + sets[LG_XDS_LDS].n,
                                 (const void *)clusters,  n_clusters,
                                 "listeners",             "clusters",
                                 find_route,              find_endpoints,
                                 &lctx,                   dc->dns != NULL ? lg_dns_discovery_find : NULL,
                                 dc->dns};
    lg_snapshot_t *s = lg_snapshot_build_from(dc->bootstrap, &src, 0, err);
    free(listeners);
    free(clusters);
    return s;
}

static void rds_stats_for(lg_dynamic_config_t *dc, const char *name, const char *stat_prefix)
{
    for (size_t i = 0; i < dc->n_rds_stats; ++i)
        if (strcmp(dc->rds_stats[i].name, name) == 0 && strcmp(dc->rds_stats[i].stat_prefix, stat_prefix) == 0)
            return;
    rds_stats_t *grown = realloc(dc->rds_stats, (dc->n_rds_stats + 1) * sizeof(*grown));
    if (grown == NULL)
        lg_fatal("out of memory");
    dc->rds_stats = grown;
    rds_stats_t *r = &dc->rds_stats[dc->n_rds_stats++];
    memset(r, 0, sizeof(*r));
    r->name = xstrdup_or_empty(name);
    r->stat_prefix = xstrdup_or_empty(stat_prefix);
#define REG(f, t) r->f = lg_stats_registerf(t, "http.%s.rds.%s." #f, stat_prefix, name)
    REG(update_attempt, LG_STAT_COUNTER);
    REG(update_success, LG_STAT_COUNTER);
    REG(update_rejected, LG_STAT_COUNTER);
    REG(update_time, LG_STAT_GAUGE);
    REG(version, LG_STAT_GAUGE);
#undef REG
}

/* Counts an RDS update for every connection manager subscribed to one of its route configs. */
static void rds_count(lg_dynamic_config_t *dc, const lg_xds_update_t *u, int accepted)
{
    lg_stats_cells_t *cells = lg_xds_stats_cells();
    uint64_t now_ms = 0;
    if (accepted) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    }
    for (size_t i = 0; i < u->n; ++i)
        for (size_t j = 0; j < dc->n_rds_stats; ++j) {
            rds_stats_t *r = &dc->rds_stats[j];
            if (strcmp(r->name, u->names[i]) != 0)
                continue;
            lg_stats_inc(cells, r->update_attempt);
            lg_stats_inc(cells, accepted ? r->update_success : r->update_rejected);
            if (!accepted)
                continue;
            const char *v = u->version_info != NULL ? u->version_info : "";
            /* 63 bits: the admin shows a gauge above INT64_MAX as 0 (a transiently negative sum) */
            uint64_t hash = lg__xds_hash(LG__XDS_HASH_INIT, v, strlen(v)) & INT64_MAX;
            lg_stats_add(cells, r->update_time, now_ms - r->update_time_value);
            lg_stats_add(cells, r->version, hash - r->version_value);
            r->update_time_value = now_ms;
            r->version_value = hash;
        }
}

/* `names` with room for one more (grown by doubling). */
static lg_xds_name_t *names_room(lg_xds_name_t *names, size_t n, size_t *cap)
{
    if (n < *cap)
        return names;
    *cap *= 2;
    lg_xds_name_t *grown = realloc(names, *cap * sizeof(*names));
    if (grown == NULL)
        lg_fatal("out of memory");
    return grown;
}

/* EDS names of the EDS clusters; RDS names of the connection managers with `rds`. */
static void resubscribe(lg_dynamic_config_t *dc, lg_xds_type_t type)
{
    size_t cap = 64;
    lg_xds_name_t *names = lg_xcalloc(cap, sizeof(*names));
    size_t n = 0;
    lg_error_t err;
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = dc->bootstrap->pb->static_resources;
    if (type == LG_XDS_EDS) {
        const resource_set_t *cds = &dc->sets[LG_XDS_CDS];
        size_t total = cds->n + (sr != NULL ? sr->n_clusters : 0);
        for (size_t i = 0; i < total; ++i) {
            const Envoy__Config__Cluster__V3__Cluster *c =
                i < cds->n ? (const void *)cds->msgs[i] : sr->clusters[i - cds->n];
            if (c->cluster_discovery_type_case != ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE ||
                c->type != ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS)
                continue;
            const char *svc = c->eds_cluster_config != NULL && c->eds_cluster_config->service_name != NULL &&
                                      c->eds_cluster_config->service_name[0] != '\0'
                                  ? c->eds_cluster_config->service_name
                                  : c->name;
            names = names_room(names, n, &cap);
            names[n++] = (lg_xds_name_t){svc, c->eds_cluster_config != NULL ? c->eds_cluster_config->eds_config : NULL};
        }
    } else {
        const resource_set_t *lds = &dc->sets[LG_XDS_LDS];
        size_t total = lds->n + (sr != NULL ? sr->n_listeners : 0);
        for (size_t i = 0; i < total; ++i) {
            const Envoy__Config__Listener__V3__Listener *l =
                i < lds->n ? (const void *)lds->msgs[i] : sr->listeners[i - lds->n];
            for (size_t j = 0; j < l->n_filter_chains; ++j) {
                for (size_t k = 0; k < l->filter_chains[j]->n_filters; ++k) {
                    const Envoy__Config__Listener__V3__Filter *f = l->filter_chains[j]->filters[k];
                    if (f->config_type_case != ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG)
                        continue;
                    int owned;
                    ProtobufCMessage *m = lg_pb_any_open(&dc->bootstrap->srcmap, &f->typed_config->base, &owned);
                    if (m != NULL &&
                        m->descriptor ==
                            &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor) {
                        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *h =
                            (const void *)m;
                        if (h->route_specifier_case ==
                            ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS) {
                            /* The name outlives this function only through the client's copy. */
                            names = names_room(names, n, &cap);
                            names[n++] = (lg_xds_name_t){strdup(h->rds->route_config_name), NULL};
                            rds_stats_for(dc, h->rds->route_config_name, h->stat_prefix);
                        }
                    }
                    lg_pb_any_close(m, owned);
                }
            }
        }
    }
    if (lg_xds_client_subscribe(dc->xds, type, names, n, &err) != 0)
        lg_warn(xds, "cannot subscribe to %s names: %s", lg_xds_type_name(type), err.msg);
    /* Warming, coarsely: a name not held yet makes the type wait for its answer (or its
     * initial_fetch_timeout) before the next snapshot is served. */
    int missing = 0;
    for (size_t i = 0; i < n; ++i)
        if (set_find(&dc->sets[type], names[i].name) < 0)
            missing = 1;
    dc->settled[type] = !missing;
    if (type == LG_XDS_RDS)
        for (size_t i = 0; i < n; ++i)
            free((char *)names[i].name);
    free(names);
}

static int ready(const lg_dynamic_config_t *dc)
{
    for (int t = 0; t < LG_XDS__NTYPES; ++t)
        if (!dc->settled[t])
            return 0;
    return 1;
}

static int on_update(void *ctx, lg_xds_update_t *u, lg_error_t *err)
{
    lg_dynamic_config_t *dc = ctx;
    resource_set_t cand[LG_XDS__NTYPES];
    memcpy(cand, dc->sets, sizeof(cand));
    resource_set_t *s = &cand[u->type];
    set_copy(s, &dc->sets[u->type], u->n);
    ProtobufCMessage **replaced = xmalloc((u->n + u->n_removed) * sizeof(*replaced));
    char **replaced_names = xmalloc((u->n + u->n_removed) * sizeof(char *));
    char **replaced_versions = xmalloc((u->n + u->n_removed) * sizeof(char *));
    char **added = xmalloc(u->n * sizeof(char *));
    char **new_versions = xmalloc(u->n * sizeof(char *));
    size_t n_replaced = 0, n_added = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (size_t i = 0; i < u->n_removed; ++i) {
        ssize_t j = set_find(s, u->removed[i]);
        if (j < 0)
            continue;
        replaced[n_replaced] = s->msgs[j];
        replaced_versions[n_replaced] = s->versions[j];
        replaced_names[n_replaced++] = s->names[j];
        s->names[j] = s->names[s->n - 1];
        s->msgs[j] = s->msgs[s->n - 1];
        s->versions[j] = s->versions[s->n - 1];
        s->updated[j] = s->updated[s->n - 1];
        --s->n;
    }
    if (u->n_removed != 0)
        index_build(s, u->n); /* removals moved entries */
    for (size_t i = 0; i < u->n; ++i) {
        /* delta responses version each resource; SotW ones carry the response's version_info */
        new_versions[i] = xstrdup_or_empty(u->versions != NULL && u->versions[i] != NULL ? u->versions[i] : u->version_info);
        ssize_t j = set_find(s, u->names[i]);
        if (j >= 0) {
            replaced[n_replaced] = s->msgs[j];
            replaced_versions[n_replaced] = s->versions[j];
            replaced_names[n_replaced++] = NULL;
            s->msgs[j] = u->resources[i];
            s->versions[j] = new_versions[i];
            s->updated[j] = now;
        } else {
            s->names[s->n] = xmalloc(strlen(u->names[i]) + 1);
            strcpy(s->names[s->n], u->names[i]);
            added[n_added++] = s->names[s->n];
            s->versions[s->n] = new_versions[i];
            s->updated[s->n] = now;
            s->msgs[s->n] = u->resources[i];
            index_insert(s, s->n++);
        }
    }
    lg_snapshot_t *snap = build(dc, cand, err);
    /* Once serving, the snapshot must also be one the server can take (same listeners). */
    int was_settled = dc->settled[u->type];
    dc->settled[u->type] = 1;
    int apply = ready(dc);
    if (snap != NULL && apply && dc->on_snapshot(dc->ctx, snap, err) != 0) {
        lg_snapshot_release(snap);
        snap = NULL;
    }
    if (snap == NULL) {
        /* NACK: the candidate set goes, the messages of this update go back to the client. */
        dc->settled[u->type] = was_settled;
        for (size_t i = 0; i < n_added; ++i)
            free(added[i]);
        for (size_t i = 0; i < u->n; ++i)
            free(new_versions[i]);
        free(added);
        free(new_versions);
        set_free_arrays(s);
        free(replaced);
        free(replaced_names);
        free(replaced_versions);
        lg_warn(xds, "%s update rejected: %s", lg_xds_type_name(u->type), err->msg);
        if (u->type == LG_XDS_RDS)
            rds_count(dc, u, 0);
        /* kept for /config_dump's error_state */
        lg_dynamic_error_t *e = &dc->errors[u->type];
        error_clear(e);
        e->details = xstrdup_or_empty(err->msg);
        e->version = xstrdup_or_empty(u->version_info);
        e->at = now;
        e->names = xmalloc((u->n ? u->n : 1) * sizeof(char *));
        for (size_t i = 0; i < u->n; ++i)
            e->names[e->n_names++] = xstrdup_or_empty(u->names[i]);
        return -1;
    }
    /* ACK: the update's messages are ours now; what they replaced goes. */
    free(added);
    free(new_versions);
    for (size_t i = 0; i < u->n; ++i)
        u->resources[i] = NULL;
    for (size_t i = 0; i < n_replaced; ++i) {
        protobuf_c_message_free_unpacked(replaced[i], NULL);
        free(replaced_names[i]);
        free(replaced_versions[i]);
    }
    free(replaced);
    free(replaced_names);
    free(replaced_versions);
    set_free_arrays(&dc->sets[u->type]);
    dc->sets[u->type] = *s;
    free(dc->type_versions[u->type]);
    dc->type_versions[u->type] = xstrdup_or_empty(u->version_info);
    error_clear(&dc->errors[u->type]);
    if (u->type == LG_XDS_RDS)
        rds_count(dc, u, 1);
    if (!apply)
        lg_snapshot_release(snap); /* still warming: built only to check the update */
    if (u->type == LG_XDS_CDS) {
        resubscribe(dc, LG_XDS_EDS);
        sync_dns(dc);
    }
    else if (u->type == LG_XDS_LDS)
        resubscribe(dc, LG_XDS_RDS);
    return 0;
}

/* Builds the current resources and hands the snapshot on, once every type has settled. */
static void serve_current(lg_dynamic_config_t *dc, const char *what)
{
    if (!ready(dc))
        return;
    lg_error_t err;
    lg_snapshot_t *snap = build(dc, dc->sets, &err);
    if (snap == NULL) {
        lg_err(xds, "cannot build %s: %s", what, err.msg);
        return;
    }
    if (dc->on_snapshot(dc->ctx, snap, &err) != 0) {
        lg_err(xds, "cannot apply %s: %s", what, err.msg);
        lg_snapshot_release(snap);
    }
}

static void on_fetch_timeout(void *ctx, lg_xds_type_t type, const char *const *names, size_t n)
{
    lg_dynamic_config_t *dc = ctx;
    lg_warn(xds, "initial fetch timeout for %s%s", lg_xds_type_name(type), n == 0 ? " (wildcard)" : "");
    if (dc->settled[type])
        return;
    dc->settled[type] = 1;
    serve_current(dc, "the initial config");
}

void lg_dynamic_config_rebuild(lg_dynamic_config_t *dc)
{
    serve_current(dc, "the config after a DNS change");
}

lg_dynamic_config_t *lg_dynamic_config_start(h2o_evloop_t *loop, const lg_bootstrap_t *bootstrap,
                                             lg_dns_discovery_t *dns, lg_dynamic_config_on_snapshot_cb on_snapshot,
                                             void *ctx, lg_error_t *err)
{
    lg_dynamic_config_t *dc = calloc(1, sizeof(*dc));
    if (dc == NULL)
        lg_fatal("out of memory");
    dc->bootstrap = bootstrap;
    dc->dns = dns;
    dc->on_snapshot = on_snapshot;
    dc->ctx = ctx;
    const Envoy__Config__Bootstrap__V3__Bootstrap__DynamicResources *dr = bootstrap->pb->dynamic_resources;
    /* Types the bootstrap does not ask for have nothing to wait for. */
    dc->settled[LG_XDS_CDS] = dr->cds_config == NULL;
    dc->settled[LG_XDS_LDS] = dr->lds_config == NULL;
    static const lg_xds_callbacks_t cbs = {on_update, on_fetch_timeout, NULL};
    if ((dc->xds = lg_xds_client_new(loop, bootstrap->pb, &cbs, dc, err)) == NULL) {
        free(dc);
        return NULL;
    }
    /* Static clusters and listeners may already name EDS and RDS resources. */
    resubscribe(dc, LG_XDS_EDS);
    resubscribe(dc, LG_XDS_RDS);
    sync_dns(dc); /* the static DNS clusters */
    return dc;
}

void lg_dynamic_config_free(lg_dynamic_config_t *dc)
{
    if (dc == NULL)
        return;
    lg_xds_client_free(dc->xds);
    for (size_t i = 0; i < dc->n_rds_stats; ++i) {
        free(dc->rds_stats[i].name);
        free(dc->rds_stats[i].stat_prefix);
    }
    free(dc->rds_stats);
    for (int t = 0; t < LG_XDS__NTYPES; ++t) {
        for (size_t i = 0; i < dc->sets[t].n; ++i) {
            free(dc->sets[t].names[i]);
            free(dc->sets[t].versions[i]);
            protobuf_c_message_free_unpacked(dc->sets[t].msgs[i], NULL);
        }
        set_free_arrays(&dc->sets[t]);
        free(dc->type_versions[t]);
        error_clear(&dc->errors[t]);
    }
    free(dc);
}

lg_xds_client_t *lg_dynamic_config_xds(lg_dynamic_config_t *dc)
{
    return dc->xds;
}

void lg_dynamic_config_each(const lg_dynamic_config_t *dc, lg_xds_type_t type, lg_dynamic_resource_cb cb, void *ctx)
{
    const resource_set_t *s = &dc->sets[type];
    for (size_t i = 0; i < s->n; ++i) {
        lg_dynamic_resource_t r = {s->names[i], s->msgs[i], s->versions[i], s->updated[i]};
        cb(ctx, &r);
    }
}

const char *lg_dynamic_config_version(const lg_dynamic_config_t *dc, lg_xds_type_t type)
{
    return dc->type_versions[type];
}

const lg_dynamic_error_t *lg_dynamic_config_error(const lg_dynamic_config_t *dc, lg_xds_type_t type)
{
    return dc->errors[type].details != NULL ? &dc->errors[type] : NULL;
}
