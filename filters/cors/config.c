/*
 * envoy.filters.http.cors config: the filter's own message (Cors) carries nothing; the policies
 * come from typed_per_filter_config (CorsPolicy) on routes, virtual hosts and route
 * configurations, or from the deprecated `cors` field of route actions and virtual hosts,
 * compiled here into lg_cors_policy_t on the main thread. Not for: per-request
 * work (policy.c, filter.c).
 */
#include <stdlib.h>
#include <string.h>

#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/http/cors/v3/cors.pb-c.h"
#include "filters/cors/cors.h"
#include "route_table.h"
#include "xalloc.h"

typedef Envoy__Extensions__Filters__Http__Cors__V3__CorsPolicy policy_pb_t;

static h2o_iovec_t dup_opt(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return h2o_iovec_init("", 0);
    return h2o_iovec_init(lg_xstrdup(s), strlen(s));
}

static int tristate(const Google__Protobuf__BoolValue *v)
{
    return v == NULL ? -1 : v->value != 0;
}

/* A RuntimeFractionalPercent's default_value (legate has no runtime) as num/den. */
static int share(const Envoy__Config__Core__V3__RuntimeFractionalPercent *pb, const char *field, uint32_t *num,
                 uint32_t *den, lg_error_t *err)
{
    if (pb == NULL)
        return 0;
    if (pb->default_value == NULL)
        return lg_error_set(err, "%s.default_value: is required", field), -1;
    *den = lg_fractional_percent_denominator(pb->default_value->denominator);
    *num = pb->default_value->numerator > *den ? *den : pb->default_value->numerator;
    return 0;
}

void lg_cors_policy_destroy(void *p)
{
    lg_cors_policy_t *c = p;
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_origins; ++i)
        lg_string_matcher_dispose(&c->origins[i]);
    free(c->origins);
    h2o_iovec_t *strs[] = {&c->allow_methods, &c->allow_headers, &c->expose_headers, &c->max_age};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); ++i)
        if (strs[i]->len != 0)
            free(strs[i]->base);
    free(c);
}

/* The CorsPolicy fields, from either message that carries them (the filter's and the deprecated
 * route one: same names, other field numbers). */
typedef struct st_fields_t {
    Envoy__Type__Matcher__V3__StringMatcher *const *origins;
    size_t n_origins;
    const char *allow_methods, *allow_headers, *expose_headers, *max_age;
    const Google__Protobuf__BoolValue *allow_credentials, *allow_private_network_access,
        *forward_not_matching_preflights;
    const Envoy__Config__Core__V3__RuntimeFractionalPercent *filter_enabled, *shadow_enabled;
} fields_t;

static void *create(const fields_t *pb, lg_error_t *err)
{
    lg_cors_policy_t *c = lg_xcalloc(1, sizeof(*c));
    c->origins = lg_xcalloc(pb->n_origins + 1, sizeof(*c->origins));
    lg_path_t path;
    lg_path_init(&path);
    for (; c->n_origins < pb->n_origins; ++c->n_origins) {
        size_t mark = lg_path_push_field(&path, "allow_origin_string_match");
        lg_path_push_index(&path, c->n_origins);
        int rc = lg_string_matcher_init(&c->origins[c->n_origins], pb->origins[c->n_origins], &path, NULL, err);
        lg_path_pop(&path, mark);
        if (rc != 0)
            goto Fail;
    }
    c->allow_methods = dup_opt(pb->allow_methods);
    c->allow_headers = dup_opt(pb->allow_headers);
    c->expose_headers = dup_opt(pb->expose_headers);
    c->max_age = dup_opt(pb->max_age);
    c->allow_credentials = tristate(pb->allow_credentials);
    c->allow_private_network_access = tristate(pb->allow_private_network_access);
    c->forward_not_matching_preflights = tristate(pb->forward_not_matching_preflights);
    c->enabled_num = c->enabled_den = 100;
    c->shadow_num = 0;
    c->shadow_den = 100;
    if (share(pb->filter_enabled, "filter_enabled", &c->enabled_num, &c->enabled_den, err) != 0 ||
        share(pb->shadow_enabled, "shadow_enabled", &c->shadow_num, &c->shadow_den, err) != 0)
        goto Fail;
    return c;
Fail:
    lg_cors_policy_destroy(c);
    return NULL;
}

#define FIELDS(pb, enabled)                                                                         \
    {                                                                                               \
        .origins = (pb)->allow_origin_string_match, .n_origins = (pb)->n_allow_origin_string_match, \
        .allow_methods = (pb)->allow_methods, .allow_headers = (pb)->allow_headers,                 \
        .expose_headers = (pb)->expose_headers, .max_age = (pb)->max_age,                           \
        .allow_credentials = (pb)->allow_credentials,                                               \
        .allow_private_network_access = (pb)->allow_private_network_access,                         \
        .forward_not_matching_preflights = (pb)->forward_not_matching_preflights,                   \
        .filter_enabled = (enabled), .shadow_enabled = (pb)->shadow_enabled                         \
    }

void *lg_cors_policy_create(const ProtobufCMessage *msg, lg_error_t *err)
{
    const policy_pb_t *pb = (const policy_pb_t *)msg;
    fields_t f = FIELDS(pb, pb->filter_enabled);
    return create(&f, err);
}

void *lg_cors_policy_create_legacy(const Envoy__Config__Route__V3__CorsPolicy *pb, lg_error_t *err)
{
    int has_enabled =
        pb->enabled_specifier_case == ENVOY__CONFIG__ROUTE__V3__CORS_POLICY__ENABLED_SPECIFIER_FILTER_ENABLED;
    fields_t f = FIELDS(pb, has_enabled ? pb->filter_enabled : NULL);
    return create(&f, err);
}
