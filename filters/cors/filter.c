/*
 * envoy.filters.http.cors, as Envoy runs it.
 *
 * Policies (CorsPolicy) sit in typed_per_filter_config on routes, virtual hosts and the route
 * configuration; the filter's own config (Cors) is empty. A request without a route or without
 * any policy passes untouched. When the most specific policy's filter_enabled (default 100%) or
 * shadow_enabled share takes the request and it has an Origin, the Origin is checked against
 * allow_origin_string_match and counted: http.<stat_prefix>.cors.origin_valid / origin_invalid.
 * Shadow alone stops there. Enforcing:
 * - a preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered here with 200,
 *   no body, details "cors_response": Access-Control-Allow-Origin (the request's Origin, only
 *   when allowed), -Allow-Credentials: true, -Allow-Methods, -Allow-Headers ("*" echoes the
 *   request's Access-Control-Request-Method / -Headers), -Max-Age, and
 *   -Allow-Private-Network: true when allow_private_network_access and the request asked for it.
 *   A preflight from an origin that is not allowed goes upstream unless
 *   forward_not_matching_preflights is false (then it gets the 200 without -Allow-Origin).
 * - any other request goes upstream; when its Origin is allowed the response gets
 *   Access-Control-Allow-Origin, -Allow-Credentials and -Expose-Headers (replacing the
 *   upstream's). A response to a disallowed Origin is left alone.
 * Envoy adds no Vary: Origin, and neither does legate (the upstream must when it varies).
 *
 * The deprecated `cors` field of route actions and virtual hosts is read only when no level has
 * a typed_per_filter_config for the filter (route first, then virtual host), as Envoy does.
 * runtime_key values are not read (legate has no runtime): default_value decides.
 */
#include "envoy/extensions/filters/http/cors/v3/cors.pb-c.h"
#include "filters/cors/cors.h"
#include "stats.h"
#include "worker.h"
#include "xalloc.h"

typedef struct st_cors_config_t {
    lg_stat_id_t st_origin_valid, st_origin_invalid;
} cors_config_t;

typedef struct st_cors_state_t {
    const void *policies[4];
    lg_cors_policies_t ps;
    lg_cors_decision_t decision;
} cors_state_t;

static void *create_config(const ProtobufCMessage *msg, const lg_filter_config_ctx_t *ctx, lg_error_t *err)
{
    cors_config_t *c = lg_xcalloc(1, sizeof(*c));
    c->st_origin_valid = lg_stats_registerf(LG_STAT_COUNTER, "%scors.origin_valid", ctx->stat_prefix);
    c->st_origin_invalid = lg_stats_registerf(LG_STAT_COUNTER, "%scors.origin_invalid", ctx->stat_prefix);
    return c;
}

static void destroy_config(void *c)
{
    free(c);
}

static lg_filter_headers_status_t decode_headers(lg_filter_t *f, lg_request_head_t *head, int end_stream)
{
    cors_state_t *st = f->state;
    const cors_config_t *c = f->config;
    st->ps.n = lg_filter_per_route_configs(f, st->policies);
    const lg_route_t *r = lg_filter_route(f);
    if (st->ps.n == 0 && r != NULL) {
        /* No level has a typed_per_filter_config: the deprecated route and virtual host fields. */
        if (r->cors != NULL)
            st->policies[st->ps.n++] = r->cors;
        if (r->vhost->cors != NULL)
            st->policies[st->ps.n++] = r->vhost->cors;
    }
    st->ps.p = (const lg_cors_policy_t *const *)st->policies;
    lg_cors_decide(&st->ps, head, lg_worker_random(lg_filter_worker(f)), &st->decision);
    if (st->decision.counted)
        lg_stats_inc(lg_filter_worker(f)->stats, st->decision.origin_valid ? c->st_origin_valid : c->st_origin_invalid);
    if (!st->decision.preflight)
        return LG_FILTER_HEADERS_CONTINUE;
    lg_headers_t headers = {NULL, 0, 0};
    lg_cors_preflight_headers(&st->ps, head, &st->decision, lg_filter_pool(f), &headers);
    lg_local_reply_t reply = {.status = 200, .body = "", .details = "cors_response", .headers = &headers, .grpc_status = -1};
    st->decision.cors_request = 0;
    lg_filter_send_local_reply_ex(f, &reply);
    return LG_FILTER_HEADERS_STOP_ITERATION;
}

static lg_filter_headers_status_t encode_headers(lg_filter_t *f, lg_response_head_t *head, int end_stream)
{
    cors_state_t *st = f->state;
    if (st->decision.cors_request && st->decision.origin_valid)
        lg_cors_response_headers(&st->ps, st->decision.origin, lg_filter_pool(f), &head->headers);
    return LG_FILTER_HEADERS_CONTINUE;
}

const lg_http_filter_ops_t lg_cors_ops = {
    .name = "envoy.filters.http.cors",
    .config_descriptor = &envoy__extensions__filters__http__cors__v3__cors__descriptor,
    .per_route_descriptor = &envoy__extensions__filters__http__cors__v3__cors_policy__descriptor,
    .create_config_ctx = create_config,
    .destroy_config = destroy_config,
    .create_per_route_config = lg_cors_policy_create,
    .destroy_per_route_config = lg_cors_policy_destroy,
    .state_size = sizeof(cors_state_t),
    .decode_headers = decode_headers,
    .encode_headers = encode_headers,
};
