/*
 * /config_dump (see admin_render.h): Envoy's envoy.admin.v3.ConfigDump, written by hand around
 * lg_pb_to_json output of each resource, so that tools decoding Envoy's dump (protojson with
 * Envoy's protos, istioctl, go-control-plane types) decode legate's. The dumps come in Envoy's
 * order (its config tracker is a map keyed "bootstrap", "clusters", "endpoint", "listeners",
 * "routes", "scopedroutes", "secrets"):
 *
 *   BootstrapConfigDump     the bootstrap as loaded (CLI overrides merged)
 *   ClustersConfigDump      static_clusters from the bootstrap
 *   EndpointsConfigDump     with ?include_eds: every cluster's live host set from the snapshot
 *   ListenersConfigDump     static_listeners
 *   RoutesConfigDump        static_route_configs: the HCMs' inline route_config
 *   ScopedRoutesConfigDump, SecretsConfigDump   empty (legate has neither)
 *
 * ?resource=<repeated field> lists that field's elements as configs of their own type;
 * ?mask=<paths> trims with FieldMask semantics (through the one Any of a resource element);
 * ?name_regex= keeps resources whose name fully matches. The dump's schema below checks mask paths
 * the way Envoy's FieldMaskUtil does, with protobuf-c descriptors below the dump messages.
 *
 * With xDS (dynamic_config.c), the dynamic lists: dynamic_active_clusters, dynamic_listeners
 * (active_state), dynamic_route_configs and dynamic_endpoint_configs, each with its version_info
 * and last_updated, the types' version_info, and error_state on the resources a rejected update
 * carried (details, version_info, last_update_attempt). Not yet: warming states (legate warms per
 * type), client_status.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "admin_render.h"
#include "dynamic_config.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "log.h"
#include "pb_json.h"
#include "pb_registry.h"
#include "pb_wkt.h"
#include "regex.h"
#include "stream_info.h"

#define TYPE_PREFIX "type.googleapis.com/"
#define HCM_TYPE "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

/* ------------------------------------------------------------------------------------------- */
/* Schema: the admin.v3 dump messages, as far as masks and ?resource= need to know them        */
/* ------------------------------------------------------------------------------------------- */

typedef enum en_kind_t {
    K_SCALAR,   /* or a message the mask may not descend into */
    K_MESSAGE,  /* a protobuf message legate has the descriptor of */
    K_ANY,      /* google.protobuf.Any holding a message legate has the descriptor of */
    K_REPEATED, /* a list of elements of `elem` */
} kind_t;

typedef struct st_schema_t schema_t;

typedef struct st_field_t {
    const char *name;
    kind_t kind;
    const ProtobufCMessageDescriptor *desc; /* K_MESSAGE, K_ANY */
    const schema_t *elem;                   /* K_REPEATED */
} field_t;

struct st_schema_t {
    const char *type; /* full name, "envoy.admin.v3.ClustersConfigDump.StaticCluster" */
    field_t fields[6];
};

#define END {NULL, K_SCALAR, NULL, NULL}

static const schema_t static_cluster = {"envoy.admin.v3.ClustersConfigDump.StaticCluster",
                                        {{"cluster", K_ANY, &envoy__config__cluster__v3__cluster__descriptor, NULL},
                                         {"last_updated", K_SCALAR, NULL, NULL},
                                         END}};
static const schema_t dynamic_cluster = {"envoy.admin.v3.ClustersConfigDump.DynamicCluster",
                                         {{"version_info", K_SCALAR, NULL, NULL},
                                          {"cluster", K_ANY, &envoy__config__cluster__v3__cluster__descriptor, NULL},
                                          {"last_updated", K_SCALAR, NULL, NULL},
                                          {"error_state", K_SCALAR, NULL, NULL},
                                          {"client_status", K_SCALAR, NULL, NULL},
                                          END}};
static const schema_t static_listener = {"envoy.admin.v3.ListenersConfigDump.StaticListener",
                                         {{"listener", K_ANY, &envoy__config__listener__v3__listener__descriptor, NULL},
                                          {"last_updated", K_SCALAR, NULL, NULL},
                                          END}};
static const schema_t dynamic_listener = {"envoy.admin.v3.ListenersConfigDump.DynamicListener",
                                          {{"name", K_SCALAR, NULL, NULL},
                                           {"active_state", K_SCALAR, NULL, NULL},
                                           {"warming_state", K_SCALAR, NULL, NULL},
                                           {"draining_state", K_SCALAR, NULL, NULL},
                                           {"error_state", K_SCALAR, NULL, NULL},
                                           {"client_status", K_SCALAR, NULL, NULL}}};
static const schema_t static_route = {
    "envoy.admin.v3.RoutesConfigDump.StaticRouteConfig",
    {{"route_config", K_ANY, &envoy__config__route__v3__route_configuration__descriptor, NULL},
     {"last_updated", K_SCALAR, NULL, NULL},
     END}};
static const schema_t dynamic_route = {
    "envoy.admin.v3.RoutesConfigDump.DynamicRouteConfig",
    {{"version_info", K_SCALAR, NULL, NULL},
     {"route_config", K_ANY, &envoy__config__route__v3__route_configuration__descriptor, NULL},
     {"last_updated", K_SCALAR, NULL, NULL},
     {"error_state", K_SCALAR, NULL, NULL},
     {"client_status", K_SCALAR, NULL, NULL},
     END}};
static const schema_t static_endpoint = {
    "envoy.admin.v3.EndpointsConfigDump.StaticEndpointConfig",
    {{"endpoint_config", K_ANY, &envoy__config__endpoint__v3__cluster_load_assignment__descriptor, NULL},
     {"last_updated", K_SCALAR, NULL, NULL},
     END}};
static const schema_t dynamic_endpoint = {
    "envoy.admin.v3.EndpointsConfigDump.DynamicEndpointConfig",
    {{"version_info", K_SCALAR, NULL, NULL},
     {"endpoint_config", K_ANY, &envoy__config__endpoint__v3__cluster_load_assignment__descriptor, NULL},
     {"last_updated", K_SCALAR, NULL, NULL},
     {"error_state", K_SCALAR, NULL, NULL},
     {"client_status", K_SCALAR, NULL, NULL},
     END}};
static const schema_t opaque_elem = {"", {END}}; /* lists legate never fills */

static const schema_t bootstrap_dump = {
    "envoy.admin.v3.BootstrapConfigDump",
    {{"bootstrap", K_MESSAGE, &envoy__config__bootstrap__v3__bootstrap__descriptor, NULL},
     {"last_updated", K_SCALAR, NULL, NULL},
     END}};
static const schema_t clusters_dump = {"envoy.admin.v3.ClustersConfigDump",
                                       {{"version_info", K_SCALAR, NULL, NULL},
                                        {"static_clusters", K_REPEATED, NULL, &static_cluster},
                                        {"dynamic_active_clusters", K_REPEATED, NULL, &dynamic_cluster},
                                        {"dynamic_warming_clusters", K_REPEATED, NULL, &dynamic_cluster},
                                        END}};
static const schema_t endpoints_dump = {"envoy.admin.v3.EndpointsConfigDump",
                                        {{"static_endpoint_configs", K_REPEATED, NULL, &static_endpoint},
                                         {"dynamic_endpoint_configs", K_REPEATED, NULL, &dynamic_endpoint},
                                         END}};
static const schema_t listeners_dump = {"envoy.admin.v3.ListenersConfigDump",
                                        {{"version_info", K_SCALAR, NULL, NULL},
                                         {"static_listeners", K_REPEATED, NULL, &static_listener},
                                         {"dynamic_listeners", K_REPEATED, NULL, &dynamic_listener},
                                         END}};
static const schema_t routes_dump = {"envoy.admin.v3.RoutesConfigDump",
                                     {{"static_route_configs", K_REPEATED, NULL, &static_route},
                                      {"dynamic_route_configs", K_REPEATED, NULL, &dynamic_route},
                                      END}};
static const schema_t scoped_routes_dump = {"envoy.admin.v3.ScopedRoutesConfigDump",
                                            {{"inline_scoped_route_configs", K_REPEATED, NULL, &opaque_elem},
                                             {"dynamic_scoped_route_configs", K_REPEATED, NULL, &opaque_elem},
                                             END}};
static const schema_t secrets_dump = {"envoy.admin.v3.SecretsConfigDump",
                                      {{"static_secrets", K_REPEATED, NULL, &opaque_elem},
                                       {"dynamic_active_secrets", K_REPEATED, NULL, &opaque_elem},
                                       {"dynamic_warming_secrets", K_REPEATED, NULL, &opaque_elem},
                                       END}};

static const field_t *schema_field(const schema_t *s, const char *name, size_t len)
{
    for (const field_t *f = s->fields; f < s->fields + 6 && f->name != NULL; ++f)
        if (strlen(f->name) == len && memcmp(f->name, name, len) == 0)
            return f;
    return NULL;
}

/* FieldMaskUtil::GetFieldDescriptors on a protobuf-c message: no descending through repeated
 * fields or scalars. */
static int path_valid_desc(const ProtobufCMessageDescriptor *d, const char *path)
{
    while (d != NULL) {
        const char *dot = strchr(path, '.');
        size_t len = dot != NULL ? (size_t)(dot - path) : strlen(path);
        char name[128];
        if (len == 0 || len >= sizeof(name))
            return 0;
        memcpy(name, path, len);
        name[len] = '\0';
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, name);
        if (f == NULL)
            return 0;
        if (dot == NULL)
            return 1;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
            return 0;
        d = f->descriptor;
        path = dot + 1;
    }
    return 0;
}

/* A mask path against a dump message or a resource element; `through_any` lets the path enter
 * the element's Any (only ?resource= masks do, as in Envoy's trimResourceMessage). */
static int path_valid(const schema_t *s, const char *path, int through_any)
{
    const char *dot = strchr(path, '.');
    const field_t *f = schema_field(s, path, dot != NULL ? (size_t)(dot - path) : strlen(path));
    if (f == NULL)
        return 0;
    if (dot == NULL)
        return 1;
    if (f->kind == K_MESSAGE || (f->kind == K_ANY && through_any))
        return path_valid_desc(f->desc, dot + 1);
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Building the dumps                                                                          */
/* ------------------------------------------------------------------------------------------- */

typedef struct st_list_t {
    char **items; /* compact JSON objects */
    size_t n, cap;
} list_t;

typedef struct st_dump_t {
    const schema_t *schema;
    char *scalars[6]; /* JSON values of non-repeated fields, by schema index; NULL = unset */
    list_t lists[6];  /* elements of repeated fields, by schema index */
} dump_t;

typedef struct st_ctx_t {
    const lg_admin_config_dump_input_t *in;
    char last_updated[48]; /* a JSON string, quotes included */
    lg_regex_t *name_re;
} ctx_t;

static void list_push(list_t *l, char *item)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        if ((l->items = realloc(l->items, l->cap * sizeof(*l->items))) == NULL)
            lg_fatal("out of memory");
    }
    l->items[l->n++] = item;
}

static size_t field_index(const schema_t *s, const char *name)
{
    for (size_t i = 0; i < 6 && s->fields[i].name != NULL; ++i)
        if (strcmp(s->fields[i].name, name) == 0)
            return i;
    lg_fatal("config dump: %s has no field %s", s->type, name);
}

static int name_matches(const ctx_t *c, const char *name)
{
    return c->name_re == NULL || lg_regex_full_match(c->name_re, name, strlen(name));
}

/* A message as a google.protobuf.Any in proto3 JSON: "@type" first, then its fields. */
static void any_json(lg_strbuf_t *b, const ProtobufCMessage *msg)
{
    char *j = lg_pb_to_json(msg, 0);
    lg_strbuf_puts(b, "{\"@type\":\"" TYPE_PREFIX);
    lg_strbuf_puts(b, msg->descriptor->name);
    lg_strbuf_puts(b, "\"");
    if (strcmp(j, "{}") != 0) {
        lg_strbuf_puts(b, ",");
        lg_strbuf_puts(b, j + 1);
    } else {
        lg_strbuf_puts(b, "}");
    }
    free(j);
}

/* {"<field>": Any(msg), "last_updated": "..."}: the static element of every resource type. */
static char *static_elem(const ctx_t *c, const char *field, const ProtobufCMessage *msg)
{
    lg_strbuf_t b = LG_STRBUF_INIT;
    lg_strbuf_printf(&b, "{\"%s\":", field);
    any_json(&b, msg);
    lg_strbuf_printf(&b, ",\"last_updated\":%s}", c->last_updated);
    return lg_strbuf_release(&b);
}

/* ---- xDS resources ---- */

static void timestamp_json(lg_strbuf_t *b, struct timespec t)
{
    char ts[40];
    lg_pb_timestamp_format(t.tv_sec, (int32_t)t.tv_nsec, ts, sizeof(ts));
    lg_strbuf_printf(b, "\"%s\"", ts);
}

/* UpdateFailureState of `name` when the type's last update was rejected and carried it. */
static int error_state_json(lg_strbuf_t *b, const lg_dynamic_error_t *e, const char *name)
{
    size_t i = 0;
    while (e != NULL && i < e->n_names && strcmp(e->names[i], name) != 0)
        ++i;
    if (e == NULL || i == e->n_names)
        return 0;
    lg_strbuf_puts(b, "{\"last_update_attempt\":");
    timestamp_json(b, e->at);
    lg_strbuf_puts(b, ",\"details\":");
    lg_strbuf_json_string(b, e->details, strlen(e->details));
    if (e->version[0] != '\0') {
        lg_strbuf_puts(b, ",\"version_info\":");
        lg_strbuf_json_string(b, e->version, strlen(e->version));
    }
    lg_strbuf_puts(b, "}");
    return 1;
}

typedef struct st_dyn_ctx_t {
    const ctx_t *c;
    list_t *out;
    const char *field; /* "cluster", "route_config", "endpoint_config"; NULL: DynamicListener */
    const lg_dynamic_error_t *error;
} dyn_ctx_t;

/* {"version_info":..., "<field>": Any, "last_updated":..., "error_state":...}, or for listeners
 * {"name":..., "active_state": {...}, "error_state":...}. */
static void dynamic_elem(void *ctx, const lg_dynamic_resource_t *r)
{
    dyn_ctx_t *d = ctx;
    if (!name_matches(d->c, r->name))
        return;
    lg_strbuf_t b = LG_STRBUF_INIT;
    if (d->field == NULL) {
        lg_strbuf_puts(&b, "{\"name\":");
        lg_strbuf_json_string(&b, r->name, strlen(r->name));
        lg_strbuf_puts(&b, ",\"active_state\":");
    }
    lg_strbuf_puts(&b, "{\"version_info\":");
    lg_strbuf_json_string(&b, r->version, strlen(r->version));
    lg_strbuf_printf(&b, ",\"%s\":", d->field != NULL ? d->field : "listener");
    any_json(&b, r->msg);
    lg_strbuf_puts(&b, ",\"last_updated\":");
    timestamp_json(&b, r->updated);
    if (d->field == NULL)
        lg_strbuf_puts(&b, "}");
    lg_strbuf_t err = LG_STRBUF_INIT;
    if (error_state_json(&err, d->error, r->name)) {
        lg_strbuf_puts(&b, ",\"error_state\":");
        lg_strbuf_append(&b, err.data, err.len);
    }
    lg_strbuf_dispose(&err);
    lg_strbuf_puts(&b, "}");
    list_push(d->out, lg_strbuf_release(&b));
}

typedef struct st_find_t {
    const char *name;
    int found;
} find_t;

static void find_active(void *ctx, const lg_dynamic_resource_t *r)
{
    find_t *f = ctx;
    f->found |= strcmp(f->name, r->name) == 0;
}

/* Resources of a rejected update that never became active: listed with their error_state only. */
static void rejected_only(const ctx_t *c, const lg_dynamic_error_t *e, lg_xds_type_t type, list_t *out)
{
    for (size_t i = 0; e != NULL && i < e->n_names; ++i) {
        find_t f = {e->names[i], 0};
        lg_dynamic_config_each(c->in->dynamic, type, find_active, &f);
        if (f.found || !name_matches(c, e->names[i]))
            continue;
        lg_strbuf_t b = LG_STRBUF_INIT;
        lg_strbuf_puts(&b, "{");
        if (type == LG_XDS_LDS) {
            lg_strbuf_puts(&b, "\"name\":");
            lg_strbuf_json_string(&b, e->names[i], strlen(e->names[i]));
            lg_strbuf_puts(&b, ",");
        }
        lg_strbuf_puts(&b, "\"error_state\":");
        error_state_json(&b, e, e->names[i]);
        lg_strbuf_puts(&b, "}");
        list_push(out, lg_strbuf_release(&b));
    }
}

static void dump_dynamic(const ctx_t *c, dump_t *d, lg_xds_type_t type, const char *list, const char *field)
{
    const lg_dynamic_config_t *dc = c->in->dynamic;
    if (dc == NULL)
        return;
    list_t *out = &d->lists[field_index(d->schema, list)];
    dyn_ctx_t dctx = {c, out, field, lg_dynamic_config_error(dc, type)};
    lg_dynamic_config_each(dc, type, dynamic_elem, &dctx);
    rejected_only(c, dctx.error, type, out);
    const char *v = lg_dynamic_config_version(dc, type);
    if (v != NULL && d->schema->fields[0].kind == K_SCALAR && strcmp(d->schema->fields[0].name, "version_info") == 0) {
        lg_strbuf_t b = LG_STRBUF_INIT;
        lg_strbuf_json_string(&b, v, strlen(v));
        free(d->scalars[0]);
        d->scalars[0] = lg_strbuf_release(&b);
    }
}

static const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *static_resources(const ctx_t *c)
{
    return c->in->bootstrap != NULL && c->in->bootstrap->pb != NULL ? c->in->bootstrap->pb->static_resources : NULL;
}

static void dump_bootstrap(const ctx_t *c, dump_t *d)
{
    d->schema = &bootstrap_dump;
    if (c->in->bootstrap != NULL && c->in->bootstrap->pb != NULL)
        d->scalars[0] = lg_pb_to_json(&c->in->bootstrap->pb->base, 0);
    if ((d->scalars[1] = strdup(c->last_updated)) == NULL)
        lg_fatal("out of memory");
}

static void dump_clusters(const ctx_t *c, dump_t *d)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = static_resources(c);
    d->schema = &clusters_dump;
    size_t idx = field_index(d->schema, "static_clusters");
    for (size_t i = 0; sr != NULL && i < sr->n_clusters; ++i)
        if (name_matches(c, sr->clusters[i]->name))
            list_push(&d->lists[idx], static_elem(c, "cluster", &sr->clusters[i]->base));
    dump_dynamic(c, d, LG_XDS_CDS, "dynamic_active_clusters", "cluster");
}

/* The live host set as Envoy dumps it: one locality, every host healthy with its weight. */
static void dump_endpoints(const ctx_t *c, dump_t *d)
{
    const lg_snapshot_t *snap = c->in->snapshot;
    d->schema = &endpoints_dump;
    size_t idx = field_index(d->schema, "static_endpoint_configs");
    for (size_t i = 0; snap != NULL && i < snap->n_clusters; ++i) {
        const lg_cluster_t *cl = snap->clusters[i];
        if (!name_matches(c, cl->name))
            continue;
        if (c->in->dynamic != NULL) { /* EDS assignments are listed as received, below */
            find_t f = {cl->name, 0};
            lg_dynamic_config_each(c->in->dynamic, LG_XDS_EDS, find_active, &f);
            if (f.found)
                continue;
        }
        lg_strbuf_t b = LG_STRBUF_INIT;
        lg_strbuf_puts(&b, "{\"endpoint_config\":{\"@type\":\"" TYPE_PREFIX
                           "envoy.config.endpoint.v3.ClusterLoadAssignment\",\"cluster_name\":");
        lg_strbuf_json_string(&b, cl->name, strlen(cl->name));
        if (cl->n_hosts > 0) {
            lg_strbuf_puts(&b, ",\"endpoints\":[{\"locality\":{},\"lb_endpoints\":[");
            for (size_t j = 0; j < cl->n_hosts; ++j) {
                const lg_host_t *h = cl->hosts[j];
                char ip[64];
                unsigned port = 0;
                lg_sockaddr_to_string(&h->addr, ip, sizeof(ip), 0);
                if (h->addr.ss_family == AF_INET)
                    port = ntohs(((const struct sockaddr_in *)&h->addr)->sin_port);
                else if (h->addr.ss_family == AF_INET6)
                    port = ntohs(((const struct sockaddr_in6 *)&h->addr)->sin6_port);
                /* lg_sockaddr_to_string brackets IPv6 only with a port: without, it is bare. */
                lg_strbuf_puts(&b, j ? ",{\"endpoint\":{\"address\":{\"socket_address\":{\"address\":"
                                     : "{\"endpoint\":{\"address\":{\"socket_address\":{\"address\":");
                lg_strbuf_json_string(&b, ip, strlen(ip));
                lg_strbuf_printf(&b,
                                 ",\"port_value\":%u}},\"health_check_config\":{}},\"health_status\":\"HEALTHY\","
                                 "\"load_balancing_weight\":%u}",
                                 port, h->weight);
            }
            lg_strbuf_puts(&b, "]}]");
        }
        lg_strbuf_printf(&b, ",\"policy\":{\"overprovisioning_factor\":140}},\"last_updated\":%s}", c->last_updated);
        list_push(&d->lists[idx], lg_strbuf_release(&b));
    }    dump_dynamic(c, d, LG_XDS_EDS, "dynamic_endpoint_configs", "endpoint_config");
}

static void dump_listeners(const ctx_t *c, dump_t *d)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = static_resources(c);
    d->schema = &listeners_dump;
    size_t idx = field_index(d->schema, "static_listeners");
    for (size_t i = 0; sr != NULL && i < sr->n_listeners; ++i)
        if (name_matches(c, sr->listeners[i]->name))
            list_push(&d->lists[idx], static_elem(c, "listener", &sr->listeners[i]->base));
    dump_dynamic(c, d, LG_XDS_LDS, "dynamic_listeners", NULL);
}

/* Inline route configs of the HTTP connection managers of one filter chain. */
static void routes_of_chain(const ctx_t *c, const Envoy__Config__Listener__V3__FilterChain *fc, list_t *out)
{
    const lg_srcmap_t *map = c->in->bootstrap != NULL ? &c->in->bootstrap->srcmap : NULL;
    for (size_t i = 0; fc != NULL && i < fc->n_filters; ++i) {
        const Envoy__Config__Listener__V3__Filter *f = fc->filters[i];
        if (f->config_type_case != ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG ||
            f->typed_config == NULL || f->typed_config->type_url == NULL ||
            strcmp(f->typed_config->type_url, TYPE_PREFIX HCM_TYPE) != 0)
            continue;
        int owned;
        ProtobufCMessage *m = lg_pb_any_open(map, &f->typed_config->base, &owned);
        if (m == NULL)
            continue;
        const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm = (void *)m;
#define INLINE_ROUTES ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_ROUTE_CONFIG
        if (hcm->route_specifier_case == INLINE_ROUTES && hcm->route_config != NULL &&
            name_matches(c, hcm->route_config->name))
            list_push(out, static_elem(c, "route_config", &hcm->route_config->base));
#undef INLINE_ROUTES
        lg_pb_any_close(m, owned);
    }
}

static void dump_routes(const ctx_t *c, dump_t *d)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = static_resources(c);
    d->schema = &routes_dump;
    list_t *l = &d->lists[field_index(d->schema, "static_route_configs")];
    for (size_t i = 0; sr != NULL && i < sr->n_listeners; ++i) {
        const Envoy__Config__Listener__V3__Listener *lst = sr->listeners[i];
        for (size_t j = 0; j < lst->n_filter_chains; ++j)
            routes_of_chain(c, lst->filter_chains[j], l);
        routes_of_chain(c, lst->default_filter_chain, l);
    }
    dump_dynamic(c, d, LG_XDS_RDS, "dynamic_route_configs", "route_config");
}

static void dump_empty(const ctx_t *c, dump_t *d, const schema_t *s)
{
    (void)c;
    d->schema = s;
}

static void dump_dispose(dump_t *d)
{
    for (size_t i = 0; i < 6; ++i) {
        free(d->scalars[i]);
        for (size_t j = 0; j < d->lists[i].n; ++j)
            free(d->lists[i].items[j]);
        free(d->lists[i].items);
    }
}

/* The dump message as compact JSON, "@type" first, unset and empty fields left out. */
static void dump_json(const dump_t *d, lg_strbuf_t *b)
{
    lg_strbuf_puts(b, "{\"@type\":\"" TYPE_PREFIX);
    lg_strbuf_puts(b, d->schema->type);
    lg_strbuf_puts(b, "\"");
    for (size_t i = 0; i < 6 && d->schema->fields[i].name != NULL; ++i) {
        const field_t *f = &d->schema->fields[i];
        if (f->kind == K_REPEATED) {
            if (d->lists[i].n == 0)
                continue;
            lg_strbuf_printf(b, ",\"%s\":[", f->name);
            for (size_t j = 0; j < d->lists[i].n; ++j) {
                if (j)
                    lg_strbuf_puts(b, ",");
                lg_strbuf_puts(b, d->lists[i].items[j]);
            }
            lg_strbuf_puts(b, "]");
        } else if (d->scalars[i] != NULL) {
            lg_strbuf_printf(b, ",\"%s\":%s", f->name, d->scalars[i]);
        }
    }
    lg_strbuf_puts(b, "}");
}

/* ------------------------------------------------------------------------------------------- */
/* The request                                                                                 */
/* ------------------------------------------------------------------------------------------- */

typedef struct st_mask_t {
    char **paths;
    size_t n;
    char *storage;
} mask_t;

static void mask_parse(mask_t *m, const char *s)
{
    if ((m->storage = strdup(s)) == NULL || (m->paths = calloc(strlen(s) + 1, sizeof(char *))) == NULL)
        lg_fatal("out of memory");
    char *save = NULL;
    for (char *p = strtok_r(m->storage, ",", &save); p != NULL; p = strtok_r(NULL, ",", &save))
        m->paths[m->n++] = p;
}

static int mask_valid(const mask_t *m, const schema_t *s, int through_any)
{
    for (size_t i = 0; i < m->n; ++i)
        if (!path_valid(s, m->paths[i], through_any))
            return 0;
    return 1;
}

/* Appends `obj` to the configs list, trimmed by the mask when there is one. */
static void add_config(lg_strbuf_t *configs, size_t *n, const char *obj, size_t len, const mask_t *mask)
{
    if (*n > 0)
        lg_strbuf_puts(configs, ",");
    if (mask != NULL)
        lg_admin_json_mask(obj, len, mask->paths, mask->n, configs);
    else
        lg_strbuf_append(configs, obj, len);
    ++*n;
}

int lg_admin_render_config_dump(const lg_admin_config_dump_input_t *in, const lg_admin_query_t *q, lg_strbuf_t *out)
{
    const char *resource = lg_admin_query_get(q, "resource");
    const char *mask_s = lg_admin_query_get(q, "mask");
    const char *name_regex = lg_admin_query_get(q, "name_regex");
    int include_eds = lg_admin_query_get(q, "include_eds") != NULL;
    ctx_t c = {.in = in};
    int status = 200;
    char ts[40];

    lg_pb_timestamp_format(in->loaded_at_s, in->loaded_at_nanos, ts, sizeof(ts));
    snprintf(c.last_updated, sizeof(c.last_updated), "\"%s\"", ts);
    if (name_regex != NULL && name_regex[0] != '\0') {
        lg_error_t err;
        if ((c.name_re = lg_regex_compile_ex(name_regex, strlen(name_regex), LG_REGEX_NO_PROGRAM_SIZE_LIMIT, 0, &err)) ==
            NULL) {
            lg_strbuf_printf(out, "INVALID_ARGUMENT: Error while parsing name_regex from %s: %s", name_regex, err.msg);
            return 400;
        }
    }

    /* Envoy's config tracker order; "endpoint" only with ?include_eds. */
    dump_t dumps[7];
    size_t n_dumps = 0;
    memset(dumps, 0, sizeof(dumps));
    dump_bootstrap(&c, &dumps[n_dumps++]);
    dump_clusters(&c, &dumps[n_dumps++]);
    if (include_eds)
        dump_endpoints(&c, &dumps[n_dumps++]);
    dump_listeners(&c, &dumps[n_dumps++]);
    dump_routes(&c, &dumps[n_dumps++]);
    dump_empty(&c, &dumps[n_dumps++], &scoped_routes_dump);
    dump_empty(&c, &dumps[n_dumps++], &secrets_dump);

    mask_t mask = {0};
    if (mask_s != NULL)
        mask_parse(&mask, mask_s);
    lg_strbuf_t configs = LG_STRBUF_INIT, tmp = LG_STRBUF_INIT;
    size_t n_configs = 0;

    if (resource != NULL) {
        const field_t *f = NULL;
        size_t d, fi = 0;
        for (d = 0; d < n_dumps && f == NULL; ++d)
            for (fi = 0; fi < 6 && dumps[d].schema->fields[fi].name != NULL; ++fi)
                if (strcmp(dumps[d].schema->fields[fi].name, resource) == 0) {
                    f = &dumps[d].schema->fields[fi];
                    break;
                }
        if (f == NULL) {
            lg_strbuf_printf(out, "%s not found in config dump", resource);
            status = 404;
            goto exit;
        }
        if (f->kind != K_REPEATED) {
            lg_strbuf_printf(out, "%s is not a repeated field. Use ?mask=%s to get only this field", resource, resource);
            status = 400;
            goto exit;
        }
        const list_t *l = &dumps[d - 1].lists[fi];
        if (mask_s != NULL && l->n > 0 && !mask_valid(&mask, f->elem, 1)) {
            lg_strbuf_puts(out, "FieldMask");
            for (size_t i = 0; i < mask.n; ++i)
                lg_strbuf_printf(out, " paths: \"%s\"", mask.paths[i]);
            lg_strbuf_puts(out, " could not be successfully used.");
            status = 400;
            goto exit;
        }
        for (size_t i = 0; i < l->n; ++i) {
            /* The element becomes a config of its own type: {"@type": ".../<Element>", ...}. */
            tmp.len = 0;
            lg_strbuf_printf(&tmp, "{\"@type\":\"" TYPE_PREFIX "%s\"", f->elem->type);
            if (strcmp(l->items[i], "{}") != 0) {
                lg_strbuf_puts(&tmp, ",");
                lg_strbuf_puts(&tmp, l->items[i] + 1);
            } else {
                lg_strbuf_puts(&tmp, "}");
            }
            add_config(&configs, &n_configs, tmp.data, tmp.len, mask_s != NULL ? &mask : NULL);
        }
    } else {
        for (size_t d = 0; d < n_dumps; ++d) {
            /* A mask that does not fit a dump's type skips that dump, as in Envoy. */
            if (mask_s != NULL && !mask_valid(&mask, dumps[d].schema, 0))
                continue;
            tmp.len = 0;
            dump_json(&dumps[d], &tmp);
            add_config(&configs, &n_configs, tmp.data, tmp.len, mask_s != NULL ? &mask : NULL);
        }
        if (mask_s != NULL && n_configs == 0) {
            lg_strbuf_printf(out, "FieldMask %s could not be successfully applied to any configs.", mask_s);
            status = 400;
            goto exit;
        }
    }

    /* proto3 JSON leaves an empty `configs` out. */
    tmp.len = 0;
    if (n_configs > 0)
        lg_strbuf_printf(&tmp, "{\"configs\":[%s]}", configs.data);
    else
        lg_strbuf_puts(&tmp, "{}");
    lg_admin_json_pretty(tmp.data, tmp.len, out);

exit:
    lg_strbuf_dispose(&configs);
    lg_strbuf_dispose(&tmp);
    free(mask.paths);
    free(mask.storage);
    for (size_t d = 0; d < n_dumps; ++d)
        dump_dispose(&dumps[d]);
    lg_regex_free(c.name_re);
    return status;
}
