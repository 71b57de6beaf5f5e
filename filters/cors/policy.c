/*
 * The CORS decisions, as Envoy's CorsFilter makes them, apart from the stream so they can be unit
 * tested: whether a request's Origin is allowed, whether it is a preflight to answer here, and the
 * Access-Control-* headers of the preflight answer and of an actual request's response.
 *
 * The policies of the levels that have one (route, virtual host, route configuration) are read
 * most specific first, field by field: the first level that sets a field gives it (an empty string
 * or an unset BoolValue is "not set"). filter_enabled and shadow_enabled come from the most
 * specific level alone. Pure functions of their arguments; any thread.
 */
#include <stddef.h>
#include <string.h>

#include "filters/cors/cors.h"

static h2o_iovec_t first_str(const lg_cors_policies_t *ps, size_t offset)
{
    for (size_t i = 0; i < ps->n; ++i) {
        const h2o_iovec_t *v = (const h2o_iovec_t *)((const char *)ps->p[i] + offset);
        if (v->len != 0)
            return *v;
    }
    return h2o_iovec_init("", 0);
}

static int first_bool(const lg_cors_policies_t *ps, size_t offset, int dflt)
{
    for (size_t i = 0; i < ps->n; ++i) {
        int v = *(const int *)((const char *)ps->p[i] + offset);
        if (v >= 0)
            return v;
    }
    return dflt;
}

#define STR(ps, field) first_str(ps, offsetof(lg_cors_policy_t, field))
#define BOOL(ps, field, dflt) first_bool(ps, offsetof(lg_cors_policy_t, field), dflt)

/* Envoy allows any origin when a matcher matches the literal "*" (exact "*", regex ".*", ...). */
static int origin_allowed(const lg_cors_policies_t *ps, h2o_iovec_t origin)
{
    for (size_t i = 0; i < ps->n; ++i) {
        const lg_cors_policy_t *p = ps->p[i];
        if (p->n_origins == 0)
            continue;
        for (size_t j = 0; j < p->n_origins; ++j)
            if (lg_string_matcher_match(&p->origins[j], "*", 1) ||
                lg_string_matcher_match(&p->origins[j], origin.base, origin.len))
                return 1;
        return 0;
    }
    return 0;
}

static h2o_iovec_t request_header(const lg_request_head_t *req, const char *name, size_t len)
{
    const h2o_iovec_t *v = lg_headers_get(&req->headers, name, len);
    return v != NULL ? *v : h2o_iovec_init("", 0);
}

void lg_cors_decide(const lg_cors_policies_t *ps, const lg_request_head_t *req, uint64_t random,
                    lg_cors_decision_t *out)
{
    memset(out, 0, sizeof(*out));
    if (ps->n == 0)
        return;
    const lg_cors_policy_t *top = ps->p[0];
    int enabled = top->enabled_num >= top->enabled_den || random % top->enabled_den < top->enabled_num;
    int shadow = top->shadow_num != 0 && (top->shadow_num >= top->shadow_den || random % top->shadow_den < top->shadow_num);
    if (!enabled && !shadow)
        return;
    out->origin = request_header(req, H2O_STRLIT("origin"));
    if (out->origin.len == 0)
        return;
    out->counted = 1;
    out->origin_valid = origin_allowed(ps, out->origin);
    if (!enabled)
        return; /* shadow mode: counted, never enforced */
    out->cors_request = 1;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) ||
        request_header(req, H2O_STRLIT("access-control-request-method")).len == 0)
        return;
    /* A preflight. One whose origin is not allowed goes upstream unless the policy says not to. */
    if (!out->origin_valid && BOOL(ps, forward_not_matching_preflights, 1))
        return;
    out->preflight = 1;
}

/* Allow-Methods / Allow-Headers: the configured list, or with "*" what the preflight asked for
 * (Access-Control-Request-*), as Envoy does. Nothing when not configured. */
static void add_allowed(h2o_iovec_t configured, const lg_request_head_t *req, h2o_iovec_t asked, h2o_iovec_t name,
                        h2o_mem_pool_t *pool, lg_headers_t *out)
{
    if (configured.len == 0)
        return;
    if (h2o_memis(configured.base, configured.len, H2O_STRLIT("*")))
        configured = request_header(req, asked.base, asked.len);
    lg_headers_add(pool, out, name, configured);
}

void lg_cors_preflight_headers(const lg_cors_policies_t *ps, const lg_request_head_t *req,
                               const lg_cors_decision_t *d, h2o_mem_pool_t *pool, lg_headers_t *out)
{
    if (d->origin_valid)
        lg_headers_add(pool, out, LG_LIT("access-control-allow-origin"), d->origin);
    if (BOOL(ps, allow_credentials, 0))
        lg_headers_add(pool, out, LG_LIT("access-control-allow-credentials"), LG_LIT("true"));
    add_allowed(STR(ps, allow_methods), req, LG_LIT("access-control-request-method"),
                LG_LIT("access-control-allow-methods"), pool, out);
    add_allowed(STR(ps, allow_headers), req, LG_LIT("access-control-request-headers"),
                LG_LIT("access-control-allow-headers"), pool, out);
    h2o_iovec_t v = STR(ps, max_age);
    if (v.len != 0)
        lg_headers_add(pool, out, LG_LIT("access-control-max-age"), v);
    /* Private Network Access (https://developer.chrome.com/blog/private-network-access-preflight). */
    v = request_header(req, H2O_STRLIT("access-control-request-private-network"));
    if (BOOL(ps, allow_private_network_access, 0) && h2o_memis(v.base, v.len, H2O_STRLIT("true")))
        lg_headers_add(pool, out, LG_LIT("access-control-allow-private-network"), LG_LIT("true"));
}

void lg_cors_response_headers(const lg_cors_policies_t *ps, h2o_iovec_t origin, h2o_mem_pool_t *pool,
                              lg_headers_t *headers)
{
    lg_headers_set(pool, headers, LG_LIT("access-control-allow-origin"), origin);
    if (BOOL(ps, allow_credentials, 0))
        lg_headers_set(pool, headers, LG_LIT("access-control-allow-credentials"), LG_LIT("true"));
    h2o_iovec_t v = STR(ps, expose_headers);
    if (v.len != 0)
        lg_headers_set(pool, headers, LG_LIT("access-control-expose-headers"), v);
}
