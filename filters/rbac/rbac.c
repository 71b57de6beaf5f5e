/*
 * envoy.filters.http.rbac: role-based access control on request headers, as Envoy's filter.
 *
 * A policy matches when one of its permissions (what is asked: headers, path, destination address
 * and port, SNI, and/or/not of those) and one of its principals (who asks: any, the TLS peer's URI
 * SAN, the remote address, headers, path, and/or/not) match. With `rules.action` ALLOW a request
 * passes only when some policy matches, with DENY only when none does, with LOG always; no `rules`
 * enforces nothing. A refused request gets 403 "RBAC: access denied" with details
 * rbac_access_denied_matched_policy[<policy>] (or [none]). `shadow_rules` are evaluated for stats
 * only. Stats: http.<stat_prefix>.rbac.<rules_stat_prefix>{allowed,denied} and
 * ...rbac.<shadow_rules_stat_prefix>{shadow_allowed,shadow_denied}. Per route, RBACPerRoute replaces
 * the config, and one without `rbac` turns the filter off.
 *
 * Not supported (refused at load): metadata, filter_state, matcher and uri_template rules, CEL
 * conditions, audit loggers, the `matcher` forms of the filter.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/extensions/filters/http/rbac/v3/rbac.pb-c.h"
#include "filters/rbac/rbac.h"
#include "log.h"
#include "route_table.h"
#include "stats.h"
#include "stream_info.h"
#include "worker.h"
#include "xalloc.h"

#define PERM(x) ENVOY__CONFIG__RBAC__V3__PERMISSION__RULE_##x
#define PRIN(x) ENVOY__CONFIG__RBAC__V3__PRINCIPAL__IDENTIFIER_##x

typedef enum en_node_kind_t {
    N_ANY,
    N_AND,
    N_OR,
    N_NOT,
    N_HEADER,
    N_PATH,
    N_DEST_IP,
    N_DEST_PORT,
    N_DEST_PORT_RANGE,
    N_SNI,
    N_AUTHENTICATED,
    N_DIRECT_REMOTE_IP,
} node_kind_t;

typedef struct st_node_t node_t;
struct st_node_t {
    node_kind_t kind;
    node_t *children; /* AND, OR: n_children; NOT: one */
    size_t n_children;
    lg_header_matcher_t header;
    lg_string_matcher_t string; /* PATH, SNI, AUTHENTICATED (principal_name; unset: any peer) */
    int has_string;
    uint8_t cidr[16];
    unsigned cidr_len, cidr_family;
    int32_t port_lo, port_hi;
};

typedef struct st_policy_t {
    char *name;
    node_t permissions, principals; /* OR nodes */
} policy_t;

typedef struct st_rules_t {
    int present;
    int action; /* 0 ALLOW, 1 DENY, 2 LOG */
    policy_t *policies;
    size_t n_policies;
    lg_stat_id_t allowed, denied;
} rules_t;

typedef struct st_rbac_config_t {
    int disabled; /* RBACPerRoute without rbac */
    rules_t rules, shadow;
} rbac_config_t;

/* ---- config ------------------------------------------------------------------------------------ */

static void node_dispose(node_t *n)
{
    for (size_t i = 0; i < n->n_children; ++i)
        node_dispose(&n->children[i]);
    free(n->children);
    if (n->kind == N_HEADER)
        lg_header_matcher_dispose(&n->header);
    if (n->has_string)
        lg_string_matcher_dispose(&n->string);
}

static int cidr_init(node_t *n, const Envoy__Config__Core__V3__CidrRange *c, const char *where, lg_error_t *err)
{
    const char *a = c != NULL && c->address_prefix != NULL ? c->address_prefix : "";
    unsigned len = c != NULL && c->prefix_len != NULL ? c->prefix_len->value : 0;
    if (inet_pton(AF_INET, a, n->cidr) == 1) {
        n->cidr_family = AF_INET;
        if (len > 32)
            return lg_error_set(err, "%s: prefix_len %u is more than 32", where, len), -1;
    } else if (inet_pton(AF_INET6, a, n->cidr) == 1) {
        n->cidr_family = AF_INET6;
        if (len > 128)
            return lg_error_set(err, "%s: prefix_len %u is more than 128", where, len), -1;
    } else {
        return lg_error_set(err, "%s: \"%s\" is not an IP address", where, a), -1;
    }
    n->cidr_len = len;
    return 0;
}

static int permission_init(node_t *n, const Envoy__Config__Rbac__V3__Permission *pb, lg_path_t *path, lg_error_t *err);
static int principal_init(node_t *n, const Envoy__Config__Rbac__V3__Principal *pb, lg_path_t *path, lg_error_t *err);

typedef int (*init_fn)(node_t *n, const void *pb, lg_path_t *path, lg_error_t *err);

static int permission_init_v(node_t *n, const void *pb, lg_path_t *path, lg_error_t *err)
{
    return permission_init(n, pb, path, err);
}

static int principal_init_v(node_t *n, const void *pb, lg_path_t *path, lg_error_t *err)
{
    return principal_init(n, pb, path, err);
}

/* An AND/OR node over `n` messages (permissions or principals). */
static int set_init(node_t *n, node_kind_t kind, void *const *items, size_t count, init_fn init, const char *field,
                    lg_path_t *path, lg_error_t *err)
{
    n->kind = kind;
    n->children = lg_xcalloc(count, sizeof(*n->children));
    for (; n->n_children < count; ++n->n_children) {
        size_t mark = lg_path_push_field(path, field);
        lg_path_push_index(path, n->n_children);
        int r = init(&n->children[n->n_children], items[n->n_children], path, err);
        if (r != 0) {
            ++n->n_children; /* disposed with the others */
            return -1;
        }
        lg_path_pop(path, mark);
    }
    return 0;
}

static int string_init(node_t *n, node_kind_t kind, const Envoy__Type__Matcher__V3__StringMatcher *m, lg_path_t *path,
                       lg_error_t *err)
{
    n->kind = kind;
    if (m == NULL)
        return 0;
    if (lg_string_matcher_init(&n->string, m, path, NULL, err) != 0)
        return -1;
    n->has_string = 1;
    return 0;
}

static int unsupported(lg_path_t *path, const char *what, lg_error_t *err)
{
    return lg_error_set(err, "%s: %s rules are not supported by legate", path->buf, what), -1;
}

static int permission_init(node_t *n, const Envoy__Config__Rbac__V3__Permission *pb, lg_path_t *path, lg_error_t *err)
{
    switch (pb->rule_case) {
    case PERM(AND_RULES):
        return set_init(n, N_AND, (void *const *)pb->and_rules->rules, pb->and_rules->n_rules, permission_init_v,
                        "and_rules.rules", path, err);
    case PERM(OR_RULES):
        return set_init(n, N_OR, (void *const *)pb->or_rules->rules, pb->or_rules->n_rules, permission_init_v,
                        "or_rules.rules", path, err);
    case PERM(NOT_RULE):
        n->kind = N_NOT;
        n->children = lg_xcalloc(1, sizeof(*n->children));
        n->n_children = 1;
        return permission_init(&n->children[0], pb->not_rule, path, err);
    case PERM(ANY):
        n->kind = N_ANY;
        return 0;
    case PERM(HEADER):
        n->kind = N_HEADER;
        return lg_header_matcher_init(&n->header, pb->header, path, NULL, err);
    case PERM(URL_PATH):
        return string_init(n, N_PATH, pb->url_path->path, path, err);
    case PERM(DESTINATION_IP):
        n->kind = N_DEST_IP;
        return cidr_init(n, pb->destination_ip, path->buf, err);
    case PERM(DESTINATION_PORT):
        n->kind = N_DEST_PORT;
        n->port_lo = n->port_hi = (int32_t)pb->destination_port;
        return 0;
    case PERM(DESTINATION_PORT_RANGE):
        n->kind = N_DEST_PORT_RANGE;
        n->port_lo = pb->destination_port_range->start;
        n->port_hi = pb->destination_port_range->end - 1; /* [start, end) */
        return 0;
    case PERM(REQUESTED_SERVER_NAME):
        return string_init(n, N_SNI, pb->requested_server_name, path, err);
    case PERM(METADATA):
        return unsupported(path, "metadata", err);
    case PERM(MATCHER):
        return unsupported(path, "matcher", err);
    case PERM(URI_TEMPLATE):
        return unsupported(path, "uri_template", err);
    default:
        return lg_error_set(err, "%s: a permission needs one rule", path->buf), -1;
    }
}

static int principal_init(node_t *n, const Envoy__Config__Rbac__V3__Principal *pb, lg_path_t *path, lg_error_t *err)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    switch (pb->identifier_case) {
    case PRIN(AND_IDS):
        return set_init(n, N_AND, (void *const *)pb->and_ids->ids, pb->and_ids->n_ids, principal_init_v,
                        "and_ids.ids", path, err);
    case PRIN(OR_IDS):
        return set_init(n, N_OR, (void *const *)pb->or_ids->ids, pb->or_ids->n_ids, principal_init_v,
                        "or_ids.ids", path, err);
    case PRIN(NOT_ID):
        n->kind = N_NOT;
        n->children = lg_xcalloc(1, sizeof(*n->children));
        n->n_children = 1;
        return principal_init(&n->children[0], pb->not_id, path, err);
    case PRIN(ANY):
        n->kind = N_ANY;
        return 0;
    case PRIN(AUTHENTICATED):
        return string_init(n, N_AUTHENTICATED, pb->authenticated->principal_name, path, err);
    case PRIN(SOURCE_IP):
        n->kind = N_DIRECT_REMOTE_IP;
        return cidr_init(n, pb->source_ip, path->buf, err);
    case PRIN(DIRECT_REMOTE_IP):
        n->kind = N_DIRECT_REMOTE_IP;
        return cidr_init(n, pb->direct_remote_ip, path->buf, err);
    case PRIN(REMOTE_IP): /* legate takes no address from x-forwarded-for: the peer's */
        n->kind = N_DIRECT_REMOTE_IP;
        return cidr_init(n, pb->remote_ip, path->buf, err);
    case PRIN(HEADER):
        n->kind = N_HEADER;
        return lg_header_matcher_init(&n->header, pb->header, path, NULL, err);
    case PRIN(URL_PATH):
        return string_init(n, N_PATH, pb->url_path->path, path, err);
    case PRIN(METADATA):
        return unsupported(path, "metadata", err);
    case PRIN(FILTER_STATE):
        return unsupported(path, "filter_state", err);
    default:
        return lg_error_set(err, "%s: a principal needs one identifier", path->buf), -1;
    }
#pragma GCC diagnostic pop
}

static void rules_dispose(rules_t *r)
{
    for (size_t i = 0; i < r->n_policies; ++i) {
        free(r->policies[i].name);
        node_dispose(&r->policies[i].permissions);
        node_dispose(&r->policies[i].principals);
    }
    free(r->policies);
    memset(r, 0, sizeof(*r));
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const policy_t *)a)->name, ((const policy_t *)b)->name);
}

static int rules_init(rules_t *r, const Envoy__Config__Rbac__V3__RBAC *pb, const char *field, lg_error_t *err)
{
    if (pb == NULL)
        return 0;
    r->present = 1;
    r->action = (int)pb->action;
    if (pb->audit_logging_options != NULL && pb->audit_logging_options->n_logger_configs != 0)
        return lg_error_set(err, "%s.audit_logging_options: audit loggers are not supported by legate", field), -1;
    r->policies = lg_xcalloc(pb->n_policies, sizeof(*r->policies));
    lg_path_t path;
    for (; r->n_policies < pb->n_policies; ++r->n_policies) {
        const Envoy__Config__Rbac__V3__RBAC__PoliciesEntry *e = pb->policies[r->n_policies];
        policy_t *p = &r->policies[r->n_policies];
        p->name = lg_xstrdup(e->key);
        lg_path_init(&path);
        lg_path_push_field(&path, field);
        lg_path_push_field(&path, "policies");
        lg_path_push_key(&path, p->name);
        if (e->value == NULL)
            continue; /* an empty policy matches nothing */
        if (set_init(&p->permissions, N_OR, (void *const *)e->value->permissions, e->value->n_permissions,
                     permission_init_v, "permissions", &path, err) != 0 ||
            set_init(&p->principals, N_OR, (void *const *)e->value->principals, e->value->n_principals,
                     principal_init_v, "principals", &path, err) != 0) {
            ++r->n_policies;
            return -1;
        }
    }
    /* Envoy's policies are a map: the first match in name order is the one reported. */
    qsort(r->policies, r->n_policies, sizeof(*r->policies), name_cmp);
    return 0;
}

static void destroy_config(void *p)
{
    rbac_config_t *c = p;
    if (c == NULL)
        return;
    rules_dispose(&c->rules);
    rules_dispose(&c->shadow);
    free(c);
}

static void *build(const Envoy__Extensions__Filters__Http__Rbac__V3__RBAC *pb, const lg_filter_config_ctx_t *ctx,
                   lg_error_t *err)
{
    rbac_config_t *c = lg_xcalloc(1, sizeof(*c));
    if (rules_init(&c->rules, pb->rules, "rules", err) != 0 || rules_init(&c->shadow, pb->shadow_rules, "shadow_rules", err) != 0) {
        destroy_config(c);
        return NULL;
    }
    if (ctx == NULL)
        return c; /* per route: counted into the filter's own stats */
    const char *root = ctx->stat_prefix != NULL ? ctx->stat_prefix : "";
    const char *rp = pb->rules_stat_prefix != NULL ? pb->rules_stat_prefix : "";
    const char *sp = pb->shadow_rules_stat_prefix != NULL ? pb->shadow_rules_stat_prefix : "";
    c->rules.allowed = lg_stats_registerf(LG_STAT_COUNTER, "%srbac.%sallowed", root, rp);
    c->rules.denied = lg_stats_registerf(LG_STAT_COUNTER, "%srbac.%sdenied", root, rp);
    c->shadow.allowed = lg_stats_registerf(LG_STAT_COUNTER, "%srbac.%sshadow_allowed", root, sp);
    c->shadow.denied = lg_stats_registerf(LG_STAT_COUNTER, "%srbac.%sshadow_denied", root, sp);
    return c;
}

static void *create_config(const ProtobufCMessage *msg, const lg_filter_config_ctx_t *ctx, lg_error_t *err)
{
    return build((const Envoy__Extensions__Filters__Http__Rbac__V3__RBAC *)msg, ctx, err);
}

static void *create_route_config(const ProtobufCMessage *msg, lg_error_t *err)
{
    const Envoy__Extensions__Filters__Http__Rbac__V3__RBACPerRoute *pb = (const void *)msg;
    if (pb->rbac == NULL) {
        rbac_config_t *c = lg_xcalloc(1, sizeof(*c));
        c->disabled = 1;
        return c;
    }
    /* per-route stats go to the filter's counters' names without the connection manager root */
    return build(pb->rbac, NULL, err);
}

/* ---- matching ---------------------------------------------------------------------------------- */

typedef struct st_input_t {
    const lg_request_head_t *req;
    const lg_stream_info_t *info;
    h2o_mem_pool_t *pool;
} input_t;

static int cidr_match(const node_t *n, const struct sockaddr_storage *ss)
{
    const uint8_t *a;
    if (ss->ss_family != n->cidr_family)
        return 0;
    a = ss->ss_family == AF_INET ? (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr
                                 : (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
    unsigned full = n->cidr_len / 8, rest = n->cidr_len % 8;
    if (memcmp(a, n->cidr, full) != 0)
        return 0;
    return rest == 0 || ((a[full] ^ n->cidr[full]) & (uint8_t)(0xFF << (8 - rest))) == 0;
}

static int port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return -1;
}

/* Each URI SAN of the peer (","-joined in the stream info) against the matcher. */
static int principal_name_match(const node_t *n, const char *sans)
{
    if (sans == NULL || sans[0] == '\0')
        return 0;
    if (!n->has_string)
        return 1;
    for (const char *p = sans;;) {
        size_t len = strcspn(p, ",");
        if (lg_string_matcher_match(&n->string, p, len))
            return 1;
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

static int node_match(const node_t *n, const input_t *in)
{
    switch (n->kind) {
    case N_ANY:
        return 1;
    case N_AND:
        for (size_t i = 0; i < n->n_children; ++i)
            if (!node_match(&n->children[i], in))
                return 0;
        return 1;
    case N_OR:
        for (size_t i = 0; i < n->n_children; ++i)
            if (node_match(&n->children[i], in))
                return 1;
        return 0;
    case N_NOT:
        return !node_match(&n->children[0], in);
    case N_HEADER:
        return lg_header_matcher_match_request(&n->header, in->req, in->pool);
    case N_PATH: {
        size_t len = strcspn(in->req->path.base != NULL ? in->req->path.base : "", "?");
        if (len > in->req->path.len)
            len = in->req->path.len;
        return n->has_string && lg_string_matcher_match(&n->string, in->req->path.base, len);
    }
    case N_DEST_IP:
        return cidr_match(n, &in->info->downstream_local);
    case N_DEST_PORT:
    case N_DEST_PORT_RANGE: {
        int port = port_of(&in->info->downstream_local);
        return port >= n->port_lo && port <= n->port_hi;
    }
    case N_SNI:
        return n->has_string && lg_string_matcher_match(&n->string, in->info->requested_server_name.base,
                                                        in->info->requested_server_name.len);
    case N_AUTHENTICATED:
        return principal_name_match(n, in->info->downstream_peer_uri_san);
    case N_DIRECT_REMOTE_IP:
        return cidr_match(n, &in->info->downstream_remote);
    }
    return 0;
}

/* The first policy (in name order) that matches, or NULL. */
static const policy_t *matched_policy(const rules_t *r, const input_t *in)
{
    for (size_t i = 0; i < r->n_policies; ++i) {
        const policy_t *p = &r->policies[i];
        if (p->permissions.n_children != 0 && node_match(&p->permissions, in) && node_match(&p->principals, in))
            return p;
    }
    return NULL;
}

/* 1 when the rules let the request pass; *policy is the one that matched. */
static int evaluate(const rules_t *r, const input_t *in, const policy_t **policy)
{
    *policy = matched_policy(r, in);
    switch (r->action) {
    case 0:
        return *policy != NULL;
    case 1:
        return *policy == NULL;
    default:
        return 1;
    }
}

static lg_filter_headers_status_t decode_headers(lg_filter_t *f, lg_request_head_t *head, int end_stream)
{
    const rbac_config_t *route = lg_filter_per_route_config(f);
    const rbac_config_t *c = route != NULL ? route : f->config;
    const rbac_config_t *base = f->config; /* per-route configs count into the filter's stats */
    if (c->disabled)
        return LG_FILTER_HEADERS_CONTINUE;
    input_t in = {head, lg_filter_stream_info(f), lg_filter_pool(f)};
    lg_stats_cells_t *cells = lg_filter_worker(f)->stats;
    const policy_t *p;
    if (c->shadow.present)
        lg_stats_inc(cells, evaluate(&c->shadow, &in, &p) ? base->shadow.allowed : base->shadow.denied);
    if (!c->rules.present)
        return LG_FILTER_HEADERS_CONTINUE;
    if (evaluate(&c->rules, &in, &p)) {
        lg_stats_inc(cells, base->rules.allowed);
        return LG_FILTER_HEADERS_CONTINUE;
    }
    lg_stats_inc(cells, base->rules.denied);
    const char *name = p != NULL ? p->name : "none";
    size_t n = strlen(name) + 64;
    char *details = h2o_mem_alloc_pool(lg_filter_pool(f), n);
    snprintf(details, n, "rbac_access_denied_matched_policy[%s]", name);
    lg_filter_send_local_reply(f, 403, "RBAC: access denied", NULL, details);
    return LG_FILTER_HEADERS_STOP_ITERATION;
}

const lg_http_filter_ops_t lg_rbac_ops = {
    .name = "envoy.filters.http.rbac",
    .config_descriptor = &envoy__extensions__filters__http__rbac__v3__rbac__descriptor,
    .per_route_descriptor = &envoy__extensions__filters__http__rbac__v3__rbacper_route__descriptor,
    .create_config_ctx = create_config,
    .destroy_config = destroy_config,
    .create_per_route_config = create_route_config,
    .destroy_per_route_config = destroy_config,
    .decode_headers = decode_headers,
};
