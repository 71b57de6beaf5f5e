/*
 * Bootstrap validation: the checks that come after the YAML/JSON conversion succeeded. Two kinds:
 *
 * - the protoc-gen-validate rules of Envoy's API that legate's proto/ does not carry (required
 *   fields, ranges, positive durations), for the messages legate reads;
 * - the semantic rules Envoy applies at load: unique listener and cluster names, routes naming
 *   clusters that exist, the router filter last, known filters unless `is_optional`, and the cluster
 *   types and load balancers legate implements. What legate does not implement is refused here by
 *   name ("... is not supported by legate") rather than silently ignored.
 *
 * Every error names the document line (from the srcmap, when the config came from text) and the
 * field path. xDS resources will reuse the per-resource checks below without line numbers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "filters/registry.h"
#include "path.h"
#include "pb_registry.h"

typedef struct st_vctx_t {
    const lg_srcmap_t *map;
    const char *name;
    lg_path_t path;
    lg_error_t *err;
    const lg_bootstrap_pb_t *bootstrap;
    int clusters_dynamic; /* CDS in use: routes may name clusters not known at load */
} vctx_t;

/* Fails at field `field_id` of `msg` (LG_SRCMAP_SELF for the message itself); the path is v->path. */
__attribute__((format(printf, 4, 5))) static int vfail(vctx_t *v, const void *msg, uint32_t field_id,
                                                       const char *fmt, ...)
{
    char text[LG_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    const char *doc;
    uint32_t line;
    if (lg_srcmap_get(v->map, msg, field_id, &doc, &line))
        return lg_error_set(v->err, "%s:%u: %s: %s", doc, line, v->path.buf, text);
    return lg_error_set(v->err, "%s: %s: %s", v->name, v->path.buf, text);
}

/* Fails at a field named `field` of msg: pushes it on the path for the message. */
#define FIELD_FAIL(v, msg, fname, fid, ...)                                                        \
    do {                                                                                           \
        size_t m_ = lg_path_push_field(&(v)->path, fname);                                         \
        vfail(v, msg, fid, __VA_ARGS__);                                                           \
        lg_path_pop(&(v)->path, m_);                                                               \
        return -1;                                                                                 \
    } while (0)

static int is_empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

static ProtobufCMessage *any_open(vctx_t *v, const Google__Protobuf__Any *any, int *owned)
{
    return lg_pb_any_open(v->map, &any->base, owned);
}

static void any_close(ProtobufCMessage *m, int owned)
{
    lg_pb_any_close(m, owned);
}

static const char *any_type_name(const Google__Protobuf__Any *any)
{
    const char *slash = strrchr(any->type_url, '/');
    return slash != NULL ? slash + 1 : any->type_url;
}

/* ------------------------------------------------------------------------------------------- */
/* Addresses and durations                                                                     */
/* ------------------------------------------------------------------------------------------- */

static int validate_address(vctx_t *v, const Envoy__Config__Core__V3__Address *a)
{
    if (a->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS) {
        if (a->address_case == ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS__NOT_SET)
            return vfail(v, a, LG_SRCMAP_SELF, "value is required");
        return 0;
    }
    const Envoy__Config__Core__V3__SocketAddress *sa = a->socket_address;
    size_t mark = lg_path_push_field(&v->path, "socket_address");
    int r = 0;
    if (is_empty(sa->address)) {
        lg_path_push_field(&v->path, "address");
        r = vfail(v, sa, LG_SRCMAP_SELF, "value is required");
    } else if (sa->port_specifier_case ==
                   ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE &&
               sa->port_value > 65535) {
        lg_path_push_field(&v->path, "port_value");
        r = vfail(v, sa, ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE,
                  "value must be <= 65535");
    }
    lg_path_pop(&v->path, mark);
    return r;
}

static int validate_address_field(vctx_t *v, const void *parent, const char *fname, uint32_t fid,
                                  const Envoy__Config__Core__V3__Address *a, int required)
{
    if (a == NULL) {
        if (required)
            FIELD_FAIL(v, parent, fname, fid, "value is required");
        return 0;
    }
    size_t mark = lg_path_push_field(&v->path, fname);
    int r = validate_address(v, a);
    lg_path_pop(&v->path, mark);
    return r;
}

static int duration_positive(const Google__Protobuf__Duration *d)
{
    return d->seconds > 0 || (d->seconds == 0 && d->nanos > 0);
}

/* ------------------------------------------------------------------------------------------- */
/* Clusters                                                                                    */
/* ------------------------------------------------------------------------------------------- */

static int validate_load_assignment(vctx_t *v, const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la)
{
    size_t m0 = lg_path_push_field(&v->path, "load_assignment");
    for (size_t i = 0; i < la->n_endpoints; ++i) {
        const Envoy__Config__Endpoint__V3__LocalityLbEndpoints *lle = la->endpoints[i];
        size_t m1 = lg_path_push_field(&v->path, "endpoints");
        lg_path_push_index(&v->path, i);
        for (size_t j = 0; j < lle->n_lb_endpoints; ++j) {
            const Envoy__Config__Endpoint__V3__LbEndpoint *lbe = lle->lb_endpoints[j];
            size_t m2 = lg_path_push_field(&v->path, "lb_endpoints");
            lg_path_push_index(&v->path, j);
            if (lbe->host_identifier_case ==
                    ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT &&
                lbe->endpoint != NULL) {
                size_t m3 = lg_path_push_field(&v->path, "endpoint");
                int r = validate_address_field(v, lbe->endpoint, "address", 1, lbe->endpoint->address, 0);
                lg_path_pop(&v->path, m3);
                if (r != 0)
                    return -1;
            }
            lg_path_pop(&v->path, m2);
        }
        lg_path_pop(&v->path, m1);
    }
    lg_path_pop(&v->path, m0);
    return 0;
}

static int validate_cluster(vctx_t *v, const Envoy__Config__Cluster__V3__Cluster *c)
{
    if (is_empty(c->name))
        FIELD_FAIL(v, c, "name", 1, "value is required");

    if (c->cluster_discovery_type_case == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_CLUSTER_TYPE) {
        const char *ct = c->cluster_type != NULL ? c->cluster_type->name : "";
        if (strcmp(ct, "envoy.clusters.dns") != 0)
            FIELD_FAIL(v, c, "cluster_type", 38, "cluster type \"%s\" is not supported by legate", ct);
    } else {
        switch (c->type) {
        case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STATIC:
        case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS:
        case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__LOGICAL_DNS:
        case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS:
            break;
        default: {
            const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
                &envoy__config__cluster__v3__cluster__discovery_type__descriptor, c->type);
            FIELD_FAIL(v, c, "type", 2, "%s is not supported by legate", ev ? ev->name : "this type");
        }
        }
        if (c->type == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS &&
            c->cluster_discovery_type_case == ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE &&
            c->eds_cluster_config == NULL)
            FIELD_FAIL(v, c, "eds_cluster_config", 3, "value is required for an EDS cluster");
    }

    switch (c->lb_policy) {
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__ROUND_ROBIN:
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST:
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM:
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RING_HASH:
    case ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__MAGLEV:
        break;
    default: {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
            &envoy__config__cluster__v3__cluster__lb_policy__descriptor, c->lb_policy);
        FIELD_FAIL(v, c, "lb_policy", 6, "%s is not supported by legate", ev ? ev->name : "this policy");
    }
    }

    if (c->connect_timeout != NULL && !duration_positive(c->connect_timeout))
        FIELD_FAIL(v, c, "connect_timeout", 4, "value must be greater than 0s");

    if (c->load_assignment != NULL && validate_load_assignment(v, c->load_assignment) != 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Routes and the HTTP connection manager                                                      */
/* ------------------------------------------------------------------------------------------- */

static int cluster_exists(vctx_t *v, const char *name)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = v->bootstrap->static_resources;
    for (size_t i = 0; sr != NULL && i < sr->n_clusters; ++i)
        if (strcmp(sr->clusters[i]->name, name) == 0)
            return 1;
    return 0;
}

static int validate_route_cluster(vctx_t *v, const void *msg, const char *fname, uint32_t fid,
                                  const char *cluster, int check)
{
    if (check && !cluster_exists(v, cluster))
        FIELD_FAIL(v, msg, fname, fid, "unknown cluster \"%s\"", cluster);
    return 0;
}

static int validate_route_action(vctx_t *v, const Envoy__Config__Route__V3__RouteAction *ra, int check)
{
    size_t mark = lg_path_push_field(&v->path, "route");
    int r = 0;
    switch (ra->cluster_specifier_case) {
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER:
        r = validate_route_cluster(v, ra, "cluster", 1, ra->cluster, check);
        break;
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS: {
        const Envoy__Config__Route__V3__WeightedCluster *wc = ra->weighted_clusters;
        size_t m1 = lg_path_push_field(&v->path, "weighted_clusters");
        for (size_t i = 0; r == 0 && i < wc->n_clusters; ++i) {
            size_t m2 = lg_path_push_field(&v->path, "clusters");
            lg_path_push_index(&v->path, i);
            r = validate_route_cluster(v, wc->clusters[i], "name", 1, wc->clusters[i]->name, check);
            lg_path_pop(&v->path, m2);
        }
        lg_path_pop(&v->path, m1);
        break;
    }
    case ENVOY__CONFIG__ROUTE__V3__ROUTE_ACTION__CLUSTER_SPECIFIER__NOT_SET:
        r = vfail(v, ra, LG_SRCMAP_SELF, "one of cluster, cluster_header or weighted_clusters is required");
        break;
    default:
        break;
    }
    lg_path_pop(&v->path, mark);
    return r;
}

static int validate_route_config(vctx_t *v, const Envoy__Config__Route__V3__RouteConfiguration *rc)
{
    /* Inline route configs check their clusters by default, as Envoy does (validate_clusters). */
    int check = rc->validate_clusters != NULL ? rc->validate_clusters->value : !v->clusters_dynamic;
    for (size_t i = 0; i < rc->n_virtual_hosts; ++i) {
        const Envoy__Config__Route__V3__VirtualHost *vh = rc->virtual_hosts[i];
        size_t m1 = lg_path_push_field(&v->path, "virtual_hosts");
        lg_path_push_index(&v->path, i);
        if (is_empty(vh->name))
            FIELD_FAIL(v, vh, "name", 1, "value is required");
        if (vh->n_domains == 0)
            FIELD_FAIL(v, vh, "domains", 2, "value is required");
        for (size_t j = 0; j < i; ++j)
            if (strcmp(rc->virtual_hosts[j]->name, vh->name) == 0)
                FIELD_FAIL(v, vh, "name", 1, "duplicate virtual host name \"%s\"", vh->name);
        for (size_t j = 0; j < vh->n_routes; ++j) {
            const Envoy__Config__Route__V3__Route *rt = vh->routes[j];
            size_t m2 = lg_path_push_field(&v->path, "routes");
            lg_path_push_index(&v->path, j);
            if (rt->match == NULL)
                FIELD_FAIL(v, rt, "match", 1, "value is required");
            if (rt->action_case == ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION__NOT_SET)
                return vfail(v, rt, LG_SRCMAP_SELF,
                             "one of route, redirect, direct_response or filter_action is required");
            if (rt->action_case == ENVOY__CONFIG__ROUTE__V3__ROUTE__ACTION_ROUTE &&
                validate_route_action(v, rt->route, check) != 0)
                return -1;
            lg_path_pop(&v->path, m2);
        }
        lg_path_pop(&v->path, m1);
    }
    return 0;
}

static int validate_http_filters(vctx_t *v,
                                 const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm)
{
    for (size_t i = 0; i < hcm->n_http_filters; ++i) {
        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpFilter *hf =
            hcm->http_filters[i];
        size_t mark = lg_path_push_field(&v->path, "http_filters");
        lg_path_push_index(&v->path, i);
        if (is_empty(hf->name))
            FIELD_FAIL(v, hf, "name", 1, "value is required");
        const char *type = hf->typed_config != NULL ? any_type_name(hf->typed_config) : NULL;
        const lg_filter_factory_t *f = lg_filter_registry_find(LG_FILTER_HTTP, hf->name, type);
        if (f == NULL && hf->is_optional && hf->typed_config != NULL)
            lg_srcmap_excuse_any(v->map, hf->typed_config);
        if (f == NULL && !hf->is_optional) {
            /* A filter legate has, given a type that is nobody's: the type is the mistake. */
            if (hf->typed_config != NULL && lg_pb_registry_find_url(hf->typed_config->type_url) == NULL &&
                lg_filter_registry_find(LG_FILTER_HTTP, hf->name, NULL) != NULL)
                FIELD_FAIL(v, hf->typed_config, "typed_config", LG_SRCMAP_SELF, "unknown type \"%s\"",
                           hf->typed_config->type_url);
            return vfail(v, hf, LG_SRCMAP_SELF,
                         "unknown HTTP filter \"%s\"; set is_optional: true to ignore it", hf->name);
        }
        int last = i + 1 == hcm->n_http_filters;
        if (f != NULL && f->terminal && !last)
            return vfail(v, hf, LG_SRCMAP_SELF, "the router filter must be the last HTTP filter");
        if (last && (f == NULL || !f->terminal))
            return vfail(v, hf, LG_SRCMAP_SELF, "the router filter must be the last HTTP filter");
        lg_path_pop(&v->path, mark);
    }
    if (hcm->n_http_filters == 0)
        return 0; /* Envoy adds nothing either: requests then get no route to an upstream */
    return 0;
}

static int validate_hcm(vctx_t *v,
                        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm)
{
    if (is_empty(hcm->stat_prefix))
        FIELD_FAIL(v, hcm, "stat_prefix", 2, "value is required");
    switch (hcm->route_specifier_case) {
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG: {
        size_t mark = lg_path_push_field(&v->path, "route_config");
        if (validate_route_config(v, hcm->route_config) != 0)
            return -1;
        lg_path_pop(&v->path, mark);
        break;
    }
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS:
        if (hcm->rds->config_source == NULL)
            FIELD_FAIL(v, hcm->rds, "config_source", 1, "value is required");
        break;
    case ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_SCOPED_ROUTES:
        FIELD_FAIL(v, hcm, "scoped_routes", 31, "scoped_routes is not supported by legate");
    default:
        return vfail(v, hcm, LG_SRCMAP_SELF, "one of rds or route_config is required");
    }
    return validate_http_filters(v, hcm);
}

/* ------------------------------------------------------------------------------------------- */
/* Listeners                                                                                   */
/* ------------------------------------------------------------------------------------------- */

static int validate_network_filter(vctx_t *v, const Envoy__Config__Listener__V3__Filter *f, int last)
{
    if (is_empty(f->name))
        FIELD_FAIL(v, f, "name", 1, "value is required");
    const Google__Protobuf__Any *any =
        f->config_type_case == ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG ? f->typed_config : NULL;
    const char *type = any != NULL ? any_type_name(any) : NULL;
    const lg_filter_factory_t *fac = lg_filter_registry_find(LG_FILTER_NETWORK, f->name, type);
    if (fac == NULL)
        return vfail(v, f, LG_SRCMAP_SELF, "network filter \"%s\"%s%s%s is not supported by legate",
                     f->name, type ? " (" : "", type ? type : "", type ? ")" : "");
    if (fac->terminal && !last)
        return vfail(v, f, LG_SRCMAP_SELF, "terminal filter \"%s\" must be the last network filter", f->name);
    if (any == NULL)
        return vfail(v, f, LG_SRCMAP_SELF, "typed_config is required for \"%s\"", f->name);
    int owned;
    ProtobufCMessage *m = any_open(v, any, &owned);
    if (m == NULL)
        return vfail(v, f, 4, "typed_config does not decode as %s", type);
    size_t mark = lg_path_push_field(&v->path, "typed_config");
    int r = 0;
    if (m->descriptor == &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor)
        r = validate_hcm(v, (const void *)m);
    lg_path_pop(&v->path, mark);
    any_close(m, owned);
    return r;
}

static int validate_filter_chain(vctx_t *v, const Envoy__Config__Listener__V3__FilterChain *fc)
{
    for (size_t i = 0; i < fc->n_filters; ++i) {
        size_t mark = lg_path_push_field(&v->path, "filters");
        lg_path_push_index(&v->path, i);
        if (validate_network_filter(v, fc->filters[i], i + 1 == fc->n_filters) != 0)
            return -1;
        lg_path_pop(&v->path, mark);
    }
    return 0;
}

static int validate_listener(vctx_t *v, const Envoy__Config__Listener__V3__Listener *l)
{
    if (validate_address_field(v, l, "address", 2, l->address, l->api_listener == NULL) != 0)
        return -1;
    for (size_t i = 0; i < l->n_filter_chains; ++i) {
        size_t mark = lg_path_push_field(&v->path, "filter_chains");
        lg_path_push_index(&v->path, i);
        if (validate_filter_chain(v, l->filter_chains[i]) != 0)
            return -1;
        lg_path_pop(&v->path, mark);
    }
    if (l->default_filter_chain != NULL) {
        size_t mark = lg_path_push_field(&v->path, "default_filter_chain");
        if (validate_filter_chain(v, l->default_filter_chain) != 0)
            return -1;
        lg_path_pop(&v->path, mark);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Fields legate does not implement                                                            */
/* ------------------------------------------------------------------------------------------- */

/*
 * Fields Envoy has whose meaning legate does not implement, where ignoring them would change what
 * the config does. Set, they are refused by name; left out, nothing changes. The list shrinks as
 * features land.
 */
static const struct {
    const char *message, *field;
} unsupported_fields[] = {
    {"envoy.config.bootstrap.v3.Bootstrap", "hds_config"},
    {"envoy.config.cluster.v3.Cluster", "filters"},
    {"envoy.config.cluster.v3.Cluster", "load_balancing_policy"},
    {"envoy.config.cluster.v3.Cluster", "lrs_server"},
    {"envoy.config.cluster.v3.Cluster", "transport_socket_matches"},
    {"envoy.config.cluster.v3.Cluster", "upstream_config"},
    {"envoy.config.listener.v3.Listener", "api_listener"},
    {"envoy.config.route.v3.RouteAction", "internal_redirect_policy"},
    {"envoy.config.route.v3.RouteAction", "request_mirror_policies"},
    {"envoy.config.route.v3.RouteConfiguration", "vhds"},
    {"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", "scoped_routes"},
    {"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", "upgrade_configs"},
};

static int is_unsupported(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f)
{
    for (size_t i = 0; i < sizeof(unsupported_fields) / sizeof(unsupported_fields[0]); ++i)
        if (strcmp(unsupported_fields[i].field, f->name) == 0 && strcmp(unsupported_fields[i].message, d->name) == 0)
            return 1;
    return 0;
}

/* Walks every message reachable from msg (through decoded Any too) looking for such fields. */
static int check_unsupported(vctx_t *v, const ProtobufCMessage *msg, unsigned depth)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    if (depth > 64)
        return 0;
    if (strcmp(d->name, "google.protobuf.Any") == 0) {
        int owned;
        ProtobufCMessage *inner = any_open(v, (const Google__Protobuf__Any *)msg, &owned);
        int r = inner != NULL ? check_unsupported(v, inner, depth + 1) : 0;
        if (inner != NULL)
            any_close(inner, owned);
        return r;
    }
    for (unsigned i = 0; i < d->n_fields; ++i) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        int repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
        size_t n = repeated ? *(const size_t *)((const char *)msg + f->quantifier_offset)
                            : (size_t)lg_pb_field_is_set(msg, f);
        if (n == 0)
            continue;
        if (is_unsupported(d, f))
            FIELD_FAIL(v, msg, f->name, f->id, "field \"%s\" is not supported by legate", f->name);
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        size_t mark = lg_path_push_field(&v->path, f->name);
        for (size_t j = 0; j < n; ++j) {
            const ProtobufCMessage *sub = repeated ? (*(ProtobufCMessage *const *const *)((const char *)msg + f->offset))[j]
                                                   : *(ProtobufCMessage *const *)((const char *)msg + f->offset);
            size_t m2 = repeated ? lg_path_push_index(&v->path, j) : v->path.len;
            if (sub != NULL && check_unsupported(v, sub, depth + 1) != 0)
                return -1;
            lg_path_pop(&v->path, m2);
        }
        lg_path_pop(&v->path, mark);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Bootstrap                                                                                   */
/* ------------------------------------------------------------------------------------------- */

/* The xDS client reaches its management server through a static cluster (Envoy: "Unknown gRPC
 * client cluster"). */
static int validate_api_config_source(vctx_t *v, const Envoy__Config__Core__V3__ApiConfigSource *api)
{
    for (size_t i = 0; i < api->n_grpc_services; ++i) {
        const Envoy__Config__Core__V3__GrpcService *gs = api->grpc_services[i];
        if (gs->target_specifier_case != ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC)
            continue;
        size_t mark = lg_path_push_field(&v->path, "grpc_services");
        lg_path_push_index(&v->path, i);
        lg_path_push_field(&v->path, "envoy_grpc");
        if (!cluster_exists(v, gs->envoy_grpc->cluster_name))
            FIELD_FAIL(v, gs->envoy_grpc, "cluster_name", 1, "unknown cluster \"%s\"", gs->envoy_grpc->cluster_name);
        lg_path_pop(&v->path, mark);
    }
    return 0;
}

static int validate_config_source(vctx_t *v, const char *name, const Envoy__Config__Core__V3__ConfigSource *cs)
{
    if (cs == NULL || cs->config_source_specifier_case !=
                          ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_API_CONFIG_SOURCE)
        return 0;
    size_t mark = lg_path_push_field(&v->path, name);
    lg_path_push_field(&v->path, "api_config_source");
    int r = validate_api_config_source(v, cs->api_config_source);
    lg_path_pop(&v->path, mark);
    return r;
}

static int validate_dynamic(vctx_t *v, const Envoy__Config__Bootstrap__V3__Bootstrap__DynamicResources *dr)
{
    size_t mark = lg_path_push_field(&v->path, "dynamic_resources");
    if (dr->ads_config != NULL) {
        size_t m1 = lg_path_push_field(&v->path, "ads_config");
        if (validate_api_config_source(v, dr->ads_config) != 0)
            return -1;
        lg_path_pop(&v->path, m1);
    }
    if (validate_config_source(v, "lds_config", dr->lds_config) != 0 ||
        validate_config_source(v, "cds_config", dr->cds_config) != 0)
        return -1;
    lg_path_pop(&v->path, mark);
    return 0;
}

static int validate_static(vctx_t *v, const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr)
{
    size_t m0 = lg_path_push_field(&v->path, "static_resources");
    for (size_t i = 0; i < sr->n_clusters; ++i) {
        size_t mark = lg_path_push_field(&v->path, "clusters");
        lg_path_push_index(&v->path, i);
        if (validate_cluster(v, sr->clusters[i]) != 0)
            return -1;
        for (size_t j = 0; j < i; ++j)
            if (strcmp(sr->clusters[j]->name, sr->clusters[i]->name) == 0)
                FIELD_FAIL(v, sr->clusters[i], "name", 1, "duplicate cluster name \"%s\"", sr->clusters[i]->name);
        lg_path_pop(&v->path, mark);
    }
    for (size_t i = 0; i < sr->n_listeners; ++i) {
        size_t mark = lg_path_push_field(&v->path, "listeners");
        lg_path_push_index(&v->path, i);
        const Envoy__Config__Listener__V3__Listener *l = sr->listeners[i];
        for (size_t j = 0; j < i && !is_empty(l->name); ++j)
            if (strcmp(sr->listeners[j]->name, l->name) == 0)
                FIELD_FAIL(v, l, "name", 1, "duplicate listener name \"%s\"", l->name);
        if (validate_listener(v, l) != 0)
            return -1;
        lg_path_pop(&v->path, mark);
    }
    lg_path_pop(&v->path, m0);
    return 0;
}

static int validate_all(vctx_t *v, const lg_bootstrap_pb_t *pb);

int lg_bootstrap_validate(const lg_bootstrap_pb_t *pb, const lg_srcmap_t *map, const char *name,
                          lg_error_t *err)
{
    vctx_t v = {.map = map, .name = name, .err = err, .bootstrap = pb};
    lg_path_init(&v.path);
    /* Optional filters excuse unknown types below; any other unknown type is an error. */
    int r = validate_all(&v, pb);
    const char *unknown = lg_srcmap_unexcused_any(map);
    if (r == 0 && unknown != NULL)
        return lg_error_set(err, "%s", unknown);
    return r;
}

static int validate_all(vctx_t *v, const lg_bootstrap_pb_t *pb)
{
    v->clusters_dynamic = pb->dynamic_resources != NULL && pb->dynamic_resources->cds_config != NULL;
    if (pb->static_resources != NULL && validate_static(v, pb->static_resources) != 0)
        return -1;
    if (pb->dynamic_resources != NULL && validate_dynamic(v, pb->dynamic_resources) != 0)
        return -1;
    if (check_unsupported(v, &pb->base, 0) != 0)
        return -1;
    if (pb->admin != NULL) {
        size_t mark = lg_path_push_field(&v->path, "admin");
        if (validate_address_field(v, pb->admin, "address", 3, pb->admin->address, 0) != 0)
            return -1;
        lg_path_pop(&v->path, mark);
    }
    return 0;
}
