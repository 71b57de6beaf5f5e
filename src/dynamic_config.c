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

#include <stdlib.h>
#include <string.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "log.h"
#include "pb_registry.h"

typedef struct st_resource_set_t {
    char **names;
    ProtobufCMessage **msgs;
    size_t n;
} resource_set_t;

struct st_lg_dynamic_config_t {
    const lg_bootstrap_t *bootstrap;
    lg_xds_client_t *xds;
    lg_dns_discovery_t *dns;
    resource_set_t sets[LG_XDS__NTYPES];
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

static ssize_t set_find(const resource_set_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; ++i)
        if (strcmp(s->names[i], name) == 0)
            return (ssize_t)i;
    return -1;
}

/* A shallow copy: names and messages are shared with the original until commit/discard. */
static void set_copy(resource_set_t *dst, const resource_set_t *src, size_t extra)
{
    dst->names = xmalloc((src->n + extra) * sizeof(char *));
    dst->msgs = xmalloc((src->n + extra) * sizeof(ProtobufCMessage *));
    if (src->n != 0) {
        memcpy(dst->names, src->names, src->n * sizeof(char *));
        memcpy(dst->msgs, src->msgs, src->n * sizeof(ProtobufCMessage *));
    }
    dst->n = src->n;
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

/* EDS names of the EDS clusters; RDS names of the connection managers with `rds`. */
static void resubscribe(lg_dynamic_config_t *dc, lg_xds_type_t type)
{
    lg_xds_name_t names[1024] = {{0}};
    size_t n = 0;
    lg_error_t err;
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = dc->bootstrap->pb->static_resources;
    if (type == LG_XDS_EDS) {
        const resource_set_t *cds = &dc->sets[LG_XDS_CDS];
        size_t total = cds->n + (sr != NULL ? sr->n_clusters : 0);
        for (size_t i = 0; i < total && n < 1024; ++i) {
            const Envoy__Config__Cluster__V3__Cluster *c =
                i < cds->n ? (const void *)cds->msgs[i] : sr->clusters[i - cds->n];
            if (c->cluster_discovery_type_case != ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE ||
                c->type != ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS)
                continue;
            const char *svc = c->eds_cluster_config != NULL && c->eds_cluster_config->service_name != NULL &&
                                      c->eds_cluster_config->service_name[0] != '\0'
                                  ? c->eds_cluster_config->service_name
                                  : c->name;
            names[n++] = (lg_xds_name_t){svc, c->eds_cluster_config != NULL ? c->eds_cluster_config->eds_config : NULL};
        }
    } else {
        const resource_set_t *lds = &dc->sets[LG_XDS_LDS];
        size_t total = lds->n + (sr != NULL ? sr->n_listeners : 0);
        for (size_t i = 0; i < total && n < 1024; ++i) {
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
                                ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS &&
                            n < 1024) {
                            /* The name outlives this function only through the client's copy. */
                            names[n++] = (lg_xds_name_t){strdup(h->rds->route_config_name), NULL};
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
    char **added = xmalloc(u->n * sizeof(char *));
    size_t n_replaced = 0, n_added = 0;
    for (size_t i = 0; i < u->n_removed; ++i) {
        ssize_t j = set_find(s, u->removed[i]);
        if (j < 0)
            continue;
        replaced[n_replaced] = s->msgs[j];
        replaced_names[n_replaced++] = s->names[j];
        s->names[j] = s->names[s->n - 1];
        s->msgs[j] = s->msgs[s->n - 1];
        --s->n;
    }
    for (size_t i = 0; i < u->n; ++i) {
        ssize_t j = set_find(s, u->names[i]);
        if (j >= 0) {
            replaced[n_replaced] = s->msgs[j];
            replaced_names[n_replaced++] = NULL;
            s->msgs[j] = u->resources[i];
        } else {
            s->names[s->n] = xmalloc(strlen(u->names[i]) + 1);
            strcpy(s->names[s->n], u->names[i]);
            added[n_added++] = s->names[s->n];
            s->msgs[s->n++] = u->resources[i];
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
        free(added);
        free(s->names);
        free(s->msgs);
        free(replaced);
        free(replaced_names);
        lg_warn(xds, "%s update rejected: %s", lg_xds_type_name(u->type), err->msg);
        return -1;
    }
    /* ACK: the update's messages are ours now; what they replaced goes. */
    free(added);
    for (size_t i = 0; i < u->n; ++i)
        u->resources[i] = NULL;
    for (size_t i = 0; i < n_replaced; ++i) {
        protobuf_c_message_free_unpacked(replaced[i], NULL);
        free(replaced_names[i]);
    }
    free(replaced);
    free(replaced_names);
    free(dc->sets[u->type].names);
    free(dc->sets[u->type].msgs);
    dc->sets[u->type] = *s;
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
    for (int t = 0; t < LG_XDS__NTYPES; ++t) {
        for (size_t i = 0; i < dc->sets[t].n; ++i) {
            free(dc->sets[t].names[i]);
            protobuf_c_message_free_unpacked(dc->sets[t].msgs[i], NULL);
        }
        free(dc->sets[t].names);
        free(dc->sets[t].msgs);
    }
    free(dc);
}

lg_xds_client_t *lg_dynamic_config_xds(lg_dynamic_config_t *dc)
{
    return dc->xds;
}
