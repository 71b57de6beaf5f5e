/*
 * envoy.filters.http.ratelimit: the global rate limit, decided by a rate-limit service (Envoy's
 * envoy.service.ratelimit.v3.RateLimitService, e.g. envoyproxy/ratelimit) over gRPC.
 *
 * On request headers the route's `rate_limits` of this filter's `stage` (and the virtual host's,
 * per vh_rate_limits: by default only when the route has none) make descriptors
 * (rate_limit_actions.c); none, or a request of the wrong request_type (internal = x-envoy-internal:
 * true), and the filter passes. Otherwise ShouldRateLimit{domain, descriptors} goes to the service
 * through the in-loop async client with `timeout` (20 ms) and the request waits, its body buffered
 * up to the watermark. The verdict:
 *   OK          -> continue; the service's request_headers_to_add go upstream, its
 *                  response_headers_to_add (and x-ratelimit-* draft 03 if enabled) go on the response.
 *   OVER_LIMIT  -> rate_limited_status (429), body = the service's raw_body, flag RL, details
 *                  request_rate_limited, x-envoy-ratelimited: true (unless disabled), the service's
 *                  and the filter's response headers; gRPC: UNAVAILABLE, or RESOURCE_EXHAUSTED.
 *   error       -> (timeout, service down, bad answer) pass, counted as failure_mode_allowed; with
 *                  failure_mode_deny status_on_error (500), flag RLSE, details rate_limiter_error.
 * Stats are the route's cluster's: cluster.<name>.ratelimit.{ok, over_limit, error,
 * failure_mode_allowed}. Per route, RateLimitPerRoute may set vh_rate_limits and domain.
 *
 * Not supported (refused at load): google_grpc services, RateLimitPerRoute.rate_limits and
 * override_option, `limit` overrides in rate_limits. stat_prefix is accepted and not used.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "async_client.h"
#include "envoy/extensions/filters/http/ratelimit/v3/rate_limit.pb-c.h"
#include "envoy/service/ratelimit/v3/rls.pb-c.h"
#include "filters/ratelimit/ratelimit.h"
#include "header_formatter.h"
#include "log.h"
#include "rate_limit_actions.h"
#include "route_table.h"
#include "stream_info.h"
#include "upstream_pool.h"
#include "worker.h"
#include "xalloc.h"

#define RLS_PATH "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
#define DEFAULT_TIMEOUT_MS 20

typedef Envoy__Extensions__Filters__Http__Ratelimit__V3__RateLimit rl_pb_t;
typedef Envoy__Extensions__Filters__Http__Ratelimit__V3__RateLimitPerRoute rl_route_pb_t;
typedef Envoy__Service__Ratelimit__V3__RateLimitResponse rls_response_t;

enum { REQ_BOTH, REQ_INTERNAL, REQ_EXTERNAL };

typedef struct st_rl_config_t {
    char *domain, *cluster, *authority;
    uint32_t stage;
    int request_type;
    uint64_t timeout_ms;
    int failure_mode_deny, resource_exhausted, x_ratelimit_headers, x_envoy_ratelimited;
    int limited_status, error_status;
    lg_header_mutations_t response_headers;
} rl_config_t;

typedef struct st_rl_route_config_t {
    char *domain; /* NULL: the filter's */
    int vh_rate_limits; /* 0 OVERRIDE, 1 INCLUDE, 2 IGNORE */
} rl_route_config_t;

typedef struct st_rl_state_t {
    lg_filter_t *f;
    lg_async_request_t *call;
    const lg_cluster_stats_t *stats; /* the route's cluster's, or NULL */
    lg_headers_t response_headers;   /* for the upstream response (OK verdicts) */
} rl_state_t;

/* ---- config ------------------------------------------------------------------------------------ */

static void destroy_config(void *p)
{
    rl_config_t *c = p;
    if (c == NULL)
        return;
    free(c->domain);
    free(c->cluster);
    free(c->authority);
    lg_header_mutations_dispose(&c->response_headers);
    free(c);
}

static int status_or(const Envoy__Type__V3__HttpStatus *s, int dflt)
{
    return s != NULL && s->code >= 400 && s->code <= 599 ? (int)s->code : dflt;
}

static void *create_config(const ProtobufCMessage *msg, lg_error_t *err)
{
    const rl_pb_t *pb = (const rl_pb_t *)msg;
    rl_config_t *c = lg_xcalloc(1, sizeof(*c));
    const Envoy__Config__Core__V3__GrpcService *gs = pb->rate_limit_service != NULL ? pb->rate_limit_service->grpc_service : NULL;
    if (pb->domain == NULL || pb->domain[0] == '\0') {
        lg_error_set(err, "domain: is required");
        goto Fail;
    }
    if (gs == NULL) {
        lg_error_set(err, "rate_limit_service.grpc_service: is required");
        goto Fail;
    }
    if (gs->target_specifier_case != ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC) {
        lg_error_set(err, "rate_limit_service.grpc_service: only envoy_grpc is supported by legate");
        goto Fail;
    }
    if (pb->rate_limit_service->transport_api_version != ENVOY__CONFIG__CORE__V3__API_VERSION__V3) {
        lg_error_set(err, "rate_limit_service.transport_api_version: must be V3");
        goto Fail;
    }
    if (gs->envoy_grpc->cluster_name == NULL || gs->envoy_grpc->cluster_name[0] == '\0') {
        lg_error_set(err, "rate_limit_service.grpc_service.envoy_grpc.cluster_name: is required");
        goto Fail;
    }
    c->domain = lg_xstrdup(pb->domain);
    c->cluster = lg_xstrdup(gs->envoy_grpc->cluster_name);
    if (gs->envoy_grpc->authority != NULL && gs->envoy_grpc->authority[0] != '\0')
        c->authority = lg_xstrdup(gs->envoy_grpc->authority);
    c->stage = pb->stage;
    if (pb->request_type == NULL || pb->request_type[0] == '\0' || strcmp(pb->request_type, "both") == 0) {
        c->request_type = REQ_BOTH;
    } else if (strcmp(pb->request_type, "internal") == 0) {
        c->request_type = REQ_INTERNAL;
    } else if (strcmp(pb->request_type, "external") == 0) {
        c->request_type = REQ_EXTERNAL;
    } else {
        lg_error_set(err, "request_type: \"%s\" is not one of internal, external, both", pb->request_type);
        goto Fail;
    }
    c->timeout_ms = DEFAULT_TIMEOUT_MS;
    if (pb->timeout != NULL) {
        if (pb->timeout->seconds < 0 || pb->timeout->nanos < 0 || pb->timeout->seconds > 315576000000) {
            lg_error_set(err, "timeout: out of range");
            goto Fail;
        }
        c->timeout_ms = (uint64_t)pb->timeout->seconds * 1000 + (uint64_t)pb->timeout->nanos / 1000000;
    }
    c->failure_mode_deny = pb->failure_mode_deny;
    c->resource_exhausted = pb->rate_limited_as_resource_exhausted;
    c->x_ratelimit_headers = pb->enable_x_ratelimit_headers ==
        ENVOY__EXTENSIONS__FILTERS__HTTP__RATELIMIT__V3__RATE_LIMIT__XRATE_LIMIT_HEADERS_RFCVERSION__DRAFT_VERSION_03;
    c->x_envoy_ratelimited = !pb->disable_x_envoy_ratelimited_header;
    c->limited_status = status_or(pb->rate_limited_status, 429);
    c->error_status = status_or(pb->status_on_error, 500);
    lg_path_t path;
    lg_path_init(&path);
    if (lg_header_mutations_init(&c->response_headers, pb->response_headers_to_add, pb->n_response_headers_to_add,
                                 NULL, 0, "response_headers_to_add", "", &path, NULL, err) != 0)
        goto Fail;
    return c;
Fail:
    destroy_config(c);
    return NULL;
}

static void destroy_route_config(void *p)
{
    rl_route_config_t *c = p;
    if (c != NULL)
        free(c->domain);
    free(c);
}

static void *create_route_config(const ProtobufCMessage *msg, lg_error_t *err)
{
    const rl_route_pb_t *pb = (const rl_route_pb_t *)msg;
    if (pb->n_rate_limits != 0)
        return lg_error_set(err, "rate_limits: per-route rate_limits of the rate-limit filter are not supported by "
                                 "legate (use the route's rate_limits)"), NULL;
    if (pb->override_option != 0)
        return lg_error_set(err, "override_option: is not supported by legate"), NULL;
    rl_route_config_t *c = lg_xcalloc(1, sizeof(*c));
    c->vh_rate_limits = (int)pb->vh_rate_limits;
    if (pb->domain != NULL && pb->domain[0] != '\0')
        c->domain = lg_xstrdup(pb->domain);
    return c;
}

/* ---- verdicts ---------------------------------------------------------------------------------- */

static uint64_t unit_seconds(Envoy__Service__Ratelimit__V3__RateLimitResponse__RateLimit__Unit u)
{
    switch (u) {
    case ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__RATE_LIMIT__UNIT__SECOND: return 1;
    case ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__RATE_LIMIT__UNIT__MINUTE: return 60;
    case ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__RATE_LIMIT__UNIT__HOUR: return 3600;
    case ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__RATE_LIMIT__UNIT__DAY: return 86400;
    case ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__RATE_LIMIT__UNIT__MONTH: return 86400 * 30;
    case ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__RATE_LIMIT__UNIT__YEAR: return 86400 * 365;
    default: return 0;
    }
}

/*
 * X-RateLimit-* (draft 03) from the descriptor statuses: the status with the fewest remaining
 * requests decides -Remaining and -Reset; -Limit is its limit followed by every quota policy
 * ("10, 10;w=60, 100;w=3600;name=\"daily\"").
 */
static void add_x_ratelimit(h2o_mem_pool_t *pool, lg_headers_t *h, const rls_response_t *r)
{
    const Envoy__Service__Ratelimit__V3__RateLimitResponse__DescriptorStatus *min = NULL;
    for (size_t i = 0; i < r->n_statuses; ++i)
        if (r->statuses[i]->current_limit != NULL && (min == NULL || r->statuses[i]->limit_remaining < min->limit_remaining))
            min = r->statuses[i];
    if (min == NULL)
        return;
    char buf[1024];
    size_t len = (size_t)snprintf(buf, sizeof(buf), "%" PRIu32, min->current_limit->requests_per_unit);
    for (size_t i = 0; i < r->n_statuses && len < sizeof(buf); ++i) {
        const Envoy__Service__Ratelimit__V3__RateLimitResponse__RateLimit *l = r->statuses[i]->current_limit;
        if (l == NULL)
            continue;
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, ", %" PRIu32 ";w=%" PRIu64, l->requests_per_unit,
                                unit_seconds(l->unit));
        if (l->name != NULL && l->name[0] != '\0' && len < sizeof(buf))
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, ";name=\"%s\"", l->name);
    }
    if (len >= sizeof(buf))
        len = sizeof(buf) - 1;
    lg_headers_add_copy(pool, h, "x-ratelimit-limit", 17, buf, len);
    len = lg_u64_to_dec(buf, min->limit_remaining);
    lg_headers_add_copy(pool, h, "x-ratelimit-remaining", 21, buf, len);
    uint64_t reset = min->duration_until_reset != NULL && min->duration_until_reset->seconds > 0
                         ? (uint64_t)min->duration_until_reset->seconds
                         : 0;
    len = lg_u64_to_dec(buf, reset);
    lg_headers_add_copy(pool, h, "x-ratelimit-reset", 17, buf, len);
}

static void add_header_values(h2o_mem_pool_t *pool, lg_headers_t *h, Envoy__Config__Core__V3__HeaderValue *const *v,
                              size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        const char *k = v[i]->key != NULL ? v[i]->key : "";
        const char *val = v[i]->value != NULL && v[i]->value[0] != '\0' ? v[i]->value : NULL;
        size_t vlen = val != NULL ? strlen(val) : v[i]->raw_value.len;
        if (val == NULL)
            val = (const char *)v[i]->raw_value.data;
        if (lg_header_name_is_valid(k, strlen(k)) && lg_header_value_is_valid(val != NULL ? val : "", vlen))
            lg_headers_add_copy(pool, h, k, strlen(k), val != NULL ? val : "", vlen);
    }
}

static void count(rl_state_t *st, int which)
{
    if (st->stats == NULL)
        return;
    lg_stats_cells_t *cells = lg_filter_worker(st->f)->stats;
    const lg_stat_id_t ids[] = {st->stats->ratelimit_ok, st->stats->ratelimit_over_limit, st->stats->ratelimit_error,
                                st->stats->ratelimit_failure_mode_allowed};
    lg_stats_inc(cells, ids[which]);
}

enum { STAT_OK, STAT_OVER_LIMIT, STAT_ERROR, STAT_FAILURE_MODE_ALLOWED };

static void on_verdict(void *ctx, int grpc_status, const uint8_t *msg, size_t msg_len, const char *error)
{
    rl_state_t *st = ctx;
    lg_filter_t *f = st->f;
    const rl_config_t *c = f->config;
    st->call = NULL;
    rls_response_t *r = NULL;
    if (grpc_status == 0)
        r = envoy__service__ratelimit__v3__rate_limit_response__unpack(NULL, msg_len, msg);
    int code = r != NULL ? (int)r->overall_code : 0;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    if (r == NULL || code == ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__CODE__UNKNOWN) {
        lg_debug(filter, "rate limit service on cluster %s: %s (grpc-status %d)", c->cluster,
                 error != NULL ? error : "no verdict", grpc_status);
        count(st, STAT_ERROR);
        if (r != NULL)
            envoy__service__ratelimit__v3__rate_limit_response__free_unpacked(r, NULL);
        if (c->failure_mode_deny) {
            lg_local_reply_t reply = {.status = c->error_status, .body = "", .flag = "RLSE",
                                      .details = "rate_limiter_error", .grpc_status = -1};
            lg_filter_send_local_reply_ex(f, &reply);
            return;
        }
        count(st, STAT_FAILURE_MODE_ALLOWED);
        lg_filter_continue_decoding(f);
        return;
    }
    if (code == ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_RESPONSE__CODE__OVER_LIMIT) {
        count(st, STAT_OVER_LIMIT);
        lg_headers_t headers = {NULL, 0, 0};
        lg_format_context_t fctx = {lg_filter_stream_info(f), lg_filter_request(f), NULL};
        lg_header_mutations_apply(&c->response_headers, &headers, &fctx, pool);
        add_header_values(pool, &headers, r->response_headers_to_add, r->n_response_headers_to_add);
        if (c->x_envoy_ratelimited)
            lg_headers_set(pool, &headers, h2o_iovec_init(H2O_STRLIT("x-envoy-ratelimited")),
                           h2o_iovec_init(H2O_STRLIT("true")));
        if (c->x_ratelimit_headers)
            add_x_ratelimit(pool, &headers, r);
        char *body = h2o_mem_alloc_pool(pool, r->raw_body.len + 1);
        if (r->raw_body.len != 0)
            memcpy(body, r->raw_body.data, r->raw_body.len);
        body[r->raw_body.len] = '\0';
        envoy__service__ratelimit__v3__rate_limit_response__free_unpacked(r, NULL);
        lg_local_reply_t reply = {.status = c->limited_status, .body = body, .flag = "RL",
                                  .details = "request_rate_limited", .headers = &headers,
                                  .grpc_status = c->resource_exhausted ? 8 : -1};
        lg_filter_send_local_reply_ex(f, &reply);
        return;
    }
    count(st, STAT_OK);
    add_header_values(pool, &lg_filter_request(f)->headers, r->request_headers_to_add, r->n_request_headers_to_add);
    add_header_values(pool, &st->response_headers, r->response_headers_to_add, r->n_response_headers_to_add);
    if (c->x_ratelimit_headers)
        add_x_ratelimit(pool, &st->response_headers, r);
    envoy__service__ratelimit__v3__rate_limit_response__free_unpacked(r, NULL);
    lg_filter_continue_decoding(f);
}

/* ---- per request ------------------------------------------------------------------------------- */

static int is_internal(const lg_request_head_t *head)
{
    const h2o_iovec_t *v = lg_headers_get(&head->headers, "x-envoy-internal", 16);
    return v != NULL && h2o_memis(v->base, v->len, H2O_STRLIT("true"));
}

static lg_filter_headers_status_t decode_headers(lg_filter_t *f, lg_request_head_t *head, int end_stream)
{
    rl_state_t *st = f->state;
    const rl_config_t *c = f->config;
    st->f = f;
    if ((c->request_type == REQ_INTERNAL && !is_internal(head)) || (c->request_type == REQ_EXTERNAL && is_internal(head)))
        return LG_FILTER_HEADERS_CONTINUE;
    const lg_route_t *r = lg_filter_route(f);
    if (r == NULL || r->action != LG_ROUTE_ACTION_ROUTE)
        return LG_FILTER_HEADERS_CONTINUE;
    const rl_route_config_t *rc = lg_filter_per_route_config(f);
    int vh_mode = rc != NULL ? rc->vh_rate_limits : (r->include_vh_rate_limits ? 1 : 0);
    h2o_iovec_t cluster = lg_route_cluster_name(r, NULL, head);
    const lg_cluster_t *cl = lg_filter_route_cluster(f);
    st->stats = cl != NULL ? cl->stats : NULL;
    const lg_stream_info_t *info = lg_filter_stream_info(f);
    lg_rl_input_t in = {.request = head, .remote = &info->downstream_remote, .destination_cluster = cluster};
    lg_rl_descriptor_t *ds = NULL;
    size_t n = 0;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    lg_rate_limits_populate(r->rate_limits, c->stage, &in, pool, &ds, &n);
    if (r->vhost != NULL && (vh_mode == 1 || (vh_mode == 0 && r->rate_limits == NULL)))
        lg_rate_limits_populate(r->vhost->rate_limits, c->stage, &in, pool, &ds, &n);
    if (n == 0)
        return LG_FILTER_HEADERS_CONTINUE;

    /* RateLimitRequest{domain, descriptors}: built on the stack and the pool, packed by the client. */
    Envoy__Service__Ratelimit__V3__RateLimitRequest req = ENVOY__SERVICE__RATELIMIT__V3__RATE_LIMIT_REQUEST__INIT;
    req.domain = rc != NULL && rc->domain != NULL ? rc->domain : c->domain;
    req.n_descriptors = n;
    req.descriptors = h2o_mem_alloc_pool(pool, sizeof(*req.descriptors) * n);
    for (size_t i = 0; i < n; ++i) {
        Envoy__Extensions__Common__Ratelimit__V3__RateLimitDescriptor *d = h2o_mem_alloc_pool(pool, sizeof(*d));
        envoy__extensions__common__ratelimit__v3__rate_limit_descriptor__init(d);
        d->n_entries = ds[i].n_entries;
        d->entries = h2o_mem_alloc_pool(pool, sizeof(*d->entries) * ds[i].n_entries);
        for (size_t j = 0; j < ds[i].n_entries; ++j) {
            Envoy__Extensions__Common__Ratelimit__V3__RateLimitDescriptor__Entry *e = h2o_mem_alloc_pool(pool, sizeof(*e));
            envoy__extensions__common__ratelimit__v3__rate_limit_descriptor__entry__init(e);
            e->key = h2o_strdup(pool, ds[i].entries[j].key.base, ds[i].entries[j].key.len).base;
            e->value = h2o_strdup(pool, ds[i].entries[j].value.base, ds[i].entries[j].value.len).base;
            d->entries[j] = e;
        }
        req.descriptors[i] = d;
    }
    st->call = lg_async_grpc_unary(lg_filter_worker(f), c->cluster, c->authority, RLS_PATH, &req.base, c->timeout_ms,
                                   on_verdict, st);
    return LG_FILTER_HEADERS_STOP_ALL_WATERMARK;
}

static lg_filter_headers_status_t encode_headers(lg_filter_t *f, lg_response_head_t *head, int end_stream)
{
    rl_state_t *st = f->state;
    lg_headers_append(lg_filter_pool(f), &head->headers, &st->response_headers);
    return LG_FILTER_HEADERS_CONTINUE;
}

static void on_destroy(lg_filter_t *f)
{
    rl_state_t *st = f->state;
    if (st->call != NULL) {
        lg_async_cancel(st->call);
        st->call = NULL;
    }
}

const lg_http_filter_ops_t lg_ratelimit_ops = {
    .name = "envoy.filters.http.ratelimit",
    .config_descriptor = &envoy__extensions__filters__http__ratelimit__v3__rate_limit__descriptor,
    .per_route_descriptor = &envoy__extensions__filters__http__ratelimit__v3__rate_limit_per_route__descriptor,
    .create_config = create_config,
    .destroy_config = destroy_config,
    .create_per_route_config = create_route_config,
    .destroy_per_route_config = destroy_route_config,
    .state_size = sizeof(rl_state_t),
    .decode_headers = decode_headers,
    .encode_headers = encode_headers,
    .on_destroy = on_destroy,
};
