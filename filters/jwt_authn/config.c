/*
 * jwt_authn config: envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication (and the
 * per-route PerRouteConfig) -> lg_jwt_authn_config_t, validated the way Envoy validates it:
 * requirements may only name configured providers, rules may only name requirement_map entries,
 * local JWKS must parse, remote_jwks needs an http(s) uri, a cluster and a timeout (the cluster is
 * looked up at fetch time, as Envoy does). What legate does not implement is refused by name at
 * load, never ignored: dynamic metadata outputs and filter_state_rules.
 * Main thread only; the result is immutable and shared by every worker.
 */
#include <stdlib.h>
#include <string.h>

#include "envoy/extensions/filters/http/jwt_authn/v3/config.pb-c.h"
#include "filters/jwt_authn/jwt_authn.h"
#include "log.h"
#include "tls_internal.h"

typedef Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtAuthentication pb_config_t;
typedef Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtProvider pb_provider_t;
typedef Envoy__Extensions__Filters__Http__JwtAuthn__V3__JwtRequirement pb_requirement_t;
typedef Envoy__Extensions__Filters__Http__JwtAuthn__V3__PerRouteConfig pb_per_route_t;

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n != 0 ? n : 1, size);
    if (p == NULL)
        lg_fatal("out of memory");
    return p;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s != NULL ? s : "");
    if (d == NULL)
        lg_fatal("out of memory");
    return d;
}

static h2o_iovec_t dup_lower(const char *s)
{
    char *d = xstrdup(s);
    for (char *p = d; *p != '\0'; ++p)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return h2o_iovec_init(d, strlen(d));
}

static char **dup_strings(char *const *src, size_t n)
{
    char **d = xcalloc(n, sizeof(*d));
    for (size_t i = 0; i < n; ++i)
        d[i] = xstrdup(src[i]);
    return d;
}

static void free_strings(char **s, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        free(s[i]);
    free(s);
}

static int is_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* ---- providers ----------------------------------------------------------------------------- */

static int unsupported(lg_error_t *err, const char *path, const char *field)
{
    return lg_error_set(err, "%s.%s: not supported by legate", path, field);
}

static int provider_refusals(const pb_provider_t *pb, const char *path, lg_error_t *err)
{
    if (pb->jwks_source_specifier_case !=
            ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_PROVIDER__JWKS_SOURCE_SPECIFIER_LOCAL_JWKS &&
        pb->jwks_source_specifier_case !=
            ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_PROVIDER__JWKS_SOURCE_SPECIFIER_REMOTE_JWKS)
        return lg_error_set(err, "%s: a provider needs local_jwks or remote_jwks", path);
    if (is_set(pb->payload_in_metadata))
        return unsupported(err, path, "payload_in_metadata");
    if (pb->normalize_payload_in_metadata != NULL)
        return unsupported(err, path, "normalize_payload_in_metadata");
    if (is_set(pb->header_in_metadata))
        return unsupported(err, path, "header_in_metadata");
    if (is_set(pb->failed_status_in_metadata))
        return unsupported(err, path, "failed_status_in_metadata");
    return 0;
}

/* A Duration in milliseconds (sub-millisecond rests round up, so "0.5s" is no 0); `dflt` when unset. */
static int to_ms(const Google__Protobuf__Duration *d, uint64_t dflt, uint64_t *out, const char *path, lg_error_t *err)
{
    if (d == NULL) {
        *out = dflt;
        return 0;
    }
    if (d->seconds < 0 || d->nanos < 0)
        return lg_error_set(err, "%s: must not be negative", path);
    *out = (uint64_t)d->seconds * 1000 + ((uint64_t)d->nanos + 999999) / 1000000;
    return 0;
}

/* http_uri.uri: "http(s)://host[:port][/path]"; the path goes in the GET, the host as :authority. */
static int remote_uri(lg_jwt_remote_t *r, const char *uri, const char *path, lg_error_t *err)
{
    const char *host;
    if (strncmp(uri, "http://", 7) == 0) {
        host = uri + 7;
    } else if (strncmp(uri, "https://", 8) == 0) {
        host = uri + 8;
        r->https = 1;
    } else {
        return lg_error_set(err, "%s.uri: must start with http:// or https:// (got '%s')", path, uri);
    }
    size_t hl = strcspn(host, "/?#");
    if (hl == 0)
        return lg_error_set(err, "%s.uri: has no host (got '%s')", path, uri);
    r->uri = xstrdup(uri);
    r->authority = strndup(host, hl);
    const char *rest = host + hl;
    size_t rl = strcspn(rest, "#");
    if (rl == 0 || rest[0] != '/') {
        /* "http://host?x" keeps its query behind "/" */
        r->path = xcalloc(rl + 2, 1);
        r->path[0] = '/';
        memcpy(r->path + 1, rest, rl);
    } else {
        r->path = strndup(rest, rl);
    }
    if (r->authority == NULL || r->path == NULL)
        lg_fatal("out of memory");
    return 0;
}

/* remote_jwks as Envoy reads it: cache_duration 600 s, async_fetch.failed_refetch_duration 1 s, a
 * retry_policy with 1 retry and a 1 s base back-off (10x for the max) unless given. */
static int provider_remote(lg_jwt_provider_t *p, const pb_provider_t *pb, const char *path, lg_error_t *err)
{
    const Envoy__Extensions__Filters__Http__JwtAuthn__V3__RemoteJwks *rj = pb->remote_jwks;
    lg_jwt_remote_t *r = &p->remote;
    char sub[512];
    p->is_remote = 1;
    if (rj == NULL || rj->http_uri == NULL)
        return lg_error_set(err, "%s.remote_jwks.http_uri: is required", path);
    snprintf(sub, sizeof(sub), "%s.remote_jwks.http_uri", path);
    const Envoy__Config__Core__V3__HttpUri *hu = rj->http_uri;
    if (!is_set(hu->uri))
        return lg_error_set(err, "%s.uri: must not be empty", sub);
    if (hu->http_upstream_type_case != ENVOY__CONFIG__CORE__V3__HTTP_URI__HTTP_UPSTREAM_TYPE_CLUSTER || !is_set(hu->cluster))
        return lg_error_set(err, "%s.cluster: must not be empty", sub);
    if (hu->timeout == NULL)
        return lg_error_set(err, "%s.timeout: is required", sub);
    if (remote_uri(r, hu->uri, sub, err) != 0)
        return -1;
    r->cluster = xstrdup(hu->cluster);
    snprintf(sub, sizeof(sub), "%s.remote_jwks.http_uri.timeout", path);
    if (to_ms(hu->timeout, 0, &r->timeout_ms, sub, err) != 0)
        return -1;
    snprintf(sub, sizeof(sub), "%s.remote_jwks.cache_duration", path);
    if (to_ms(rj->cache_duration, 600000, &r->cache_duration_ms, sub, err) != 0)
        return -1;
    if (r->cache_duration_ms == 0)
        r->cache_duration_ms = 600000; /* Envoy treats a zero duration as unset */
    if (rj->async_fetch != NULL) {
        r->async_fetch = 1;
        snprintf(sub, sizeof(sub), "%s.remote_jwks.async_fetch.failed_refetch_duration", path);
        if (to_ms(rj->async_fetch->failed_refetch_duration, 1000, &r->failed_refetch_ms, sub, err) != 0)
            return -1;
        if (r->failed_refetch_ms == 0)
            r->failed_refetch_ms = 1000;
    }
    if (rj->retry_policy != NULL) {
        const Envoy__Config__Core__V3__RetryPolicy *rp = rj->retry_policy;
        r->num_retries = rp->num_retries != NULL ? rp->num_retries->value : 1;
        const Envoy__Config__Core__V3__BackoffStrategy *bo = rp->retry_back_off;
        snprintf(sub, sizeof(sub), "%s.remote_jwks.retry_policy.retry_back_off", path);
        if (to_ms(bo != NULL ? bo->base_interval : NULL, 1000, &r->backoff_base_ms, sub, err) != 0)
            return -1;
        if (bo != NULL && bo->base_interval != NULL && r->backoff_base_ms < 1)
            return lg_error_set(err, "%s.base_interval: must be at least 1ms", sub);
        if (to_ms(bo != NULL ? bo->max_interval : NULL, r->backoff_base_ms * 10, &r->backoff_max_ms, sub, err) != 0)
            return -1;
        if (r->backoff_max_ms < r->backoff_base_ms)
            return lg_error_set(err, "%s.max_interval: must not be less than base_interval", sub);
    }
    return 0;
}

static void remote_dispose(lg_jwt_remote_t *r)
{
    free(r->uri);
    free(r->cluster);
    free(r->authority);
    free(r->path);
}

static int provider_jwks(lg_jwt_provider_t *p, const pb_provider_t *pb, const char *path, lg_error_t *err)
{
    if (pb->jwks_source_specifier_case ==
        ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_PROVIDER__JWKS_SOURCE_SPECIFIER_REMOTE_JWKS)
        return provider_remote(p, pb, path, err);
    char sub[512], *doc = NULL;
    size_t len = 0;
    snprintf(sub, sizeof(sub), "%s.local_jwks", path);
    if (lg__tls_read_data_source(pb->local_jwks, &doc, &len, sub, err) != 0)
        return -1;
    long bad_key;
    lg_jwt_status_t st = lg_jwks_parse(&p->jwks, doc, len, &bad_key);
    free(doc);
    if (st == LG_JWT_OK)
        return 0;
    /* Envoy only logs a bad inline JWKS and then fails every token; legate refuses the config. */
    if (bad_key >= 0)
        return lg_error_set(err, "%s: keys[%ld]: %s", sub, bad_key, lg_jwt_status_text(st));
    return lg_error_set(err, "%s: %s", sub, lg_jwt_status_text(st));
}

static int provider_sources(lg_jwt_provider_t *p, const pb_provider_t *pb, const char *path, lg_error_t *err)
{
    if (pb->n_from_headers == 0 && pb->n_from_params == 0 && pb->n_from_cookies == 0) {
        /* Envoy's defaults: `Authorization: Bearer <token>` and the access_token query parameter. */
        p->n_headers = 1;
        p->headers = xcalloc(1, sizeof(*p->headers));
        p->headers[0].name = dup_lower("authorization");
        p->headers[0].prefix = h2o_iovec_init(xstrdup("Bearer "), 7);
        p->n_params = 1;
        p->params = dup_strings((char *const[]){"access_token"}, 1);
        return 0;
    }
    p->headers = xcalloc(pb->n_from_headers, sizeof(*p->headers));
    for (size_t i = 0; i < pb->n_from_headers; ++i) {
        if (!is_set(pb->from_headers[i]->name))
            return lg_error_set(err, "%s.from_headers[%zu].name: must not be empty", path, i);
        lg_jwt_header_source_t *h = &p->headers[p->n_headers++];
        h->name = dup_lower(pb->from_headers[i]->name);
        h->prefix.base = xstrdup(pb->from_headers[i]->value_prefix);
        h->prefix.len = strlen(h->prefix.base);
    }
    p->n_params = pb->n_from_params;
    p->params = dup_strings(pb->from_params, pb->n_from_params);
    p->n_cookies = pb->n_from_cookies;
    p->cookies = dup_strings(pb->from_cookies, pb->n_from_cookies);
    return 0;
}

static int provider_init(lg_jwt_provider_t *p, const char *name, const pb_provider_t *pb, lg_error_t *err)
{
    char path[300];
    snprintf(path, sizeof(path), "typed_config.providers[%s]", name);
    p->name = xstrdup(name);
    p->issuer = xstrdup(pb->issuer);
    p->audiences = dup_strings(pb->audiences, pb->n_audiences);
    p->n_audiences = pb->n_audiences;
    p->forward = pb->forward;
    p->pad_forward_payload_header = pb->pad_forward_payload_header;
    p->clock_skew_seconds = pb->clock_skew_seconds != 0 ? pb->clock_skew_seconds : 60;
    p->clear_route_cache = pb->clear_route_cache;
    if (provider_refusals(pb, path, err) != 0)
        return -1;
    if (pb->subjects != NULL) {
        lg_path_t sp;
        lg_path_init(&sp);
        lg_path_push_field(&sp, path);
        lg_path_push_field(&sp, "subjects");
        if (lg_string_matcher_init(&p->subjects, pb->subjects, &sp, NULL, err) != 0)
            return -1;
        p->has_subjects = 1;
    }
    if (pb->require_expiration) {
        p->has_max_lifetime = 1;
        p->max_lifetime_s = INT64_MAX;
    }
    if (pb->max_lifetime != NULL) {
        if (pb->max_lifetime->seconds < 0 || pb->max_lifetime->nanos < 0)
            return lg_error_set(err, "%s.max_lifetime: must not be negative", path);
        p->has_max_lifetime = 1;
        p->max_lifetime_s = pb->max_lifetime->seconds + (pb->max_lifetime->nanos > 0);
    }
    if (is_set(pb->forward_payload_header))
        p->forward_payload_header = dup_lower(pb->forward_payload_header);
    p->claim_headers = xcalloc(pb->n_claim_to_headers, sizeof(*p->claim_headers));
    for (size_t i = 0; i < pb->n_claim_to_headers; ++i) {
        if (!is_set(pb->claim_to_headers[i]->header_name) || !is_set(pb->claim_to_headers[i]->claim_name))
            return lg_error_set(err, "%s.claim_to_headers[%zu]: header_name and claim_name must not be empty", path, i);
        lg_jwt_claim_header_t *c = &p->claim_headers[p->n_claim_headers++];
        c->header = dup_lower(pb->claim_to_headers[i]->header_name);
        c->claim = xstrdup(pb->claim_to_headers[i]->claim_name);
    }
    if (provider_sources(p, pb, path, err) != 0)
        return -1;
    return provider_jwks(p, pb, path, err);
}

static void provider_dispose(lg_jwt_provider_t *p)
{
    free(p->name);
    free(p->issuer);
    free_strings(p->audiences, p->n_audiences);
    if (p->has_subjects)
        lg_string_matcher_dispose(&p->subjects);
    lg_jwks_dispose(&p->jwks);
    remote_dispose(&p->remote);
    for (size_t i = 0; i < p->n_headers; ++i) {
        free(p->headers[i].name.base);
        free(p->headers[i].prefix.base);
    }
    free(p->headers);
    free_strings(p->params, p->n_params);
    free_strings(p->cookies, p->n_cookies);
    free(p->forward_payload_header.base);
    for (size_t i = 0; i < p->n_claim_headers; ++i) {
        free(p->claim_headers[i].header.base);
        free(p->claim_headers[i].claim);
    }
    free(p->claim_headers);
}

/* ---- requirements -------------------------------------------------------------------------- */

static const lg_jwt_provider_t *find_provider(const lg_jwt_authn_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_providers; ++i)
        if (strcmp(c->providers[i].name, name) == 0)
            return &c->providers[i];
    return NULL;
}

static int requirement_init(lg_jwt_requirement_t *r, const lg_jwt_authn_config_t *c, const pb_requirement_t *pb,
                            const char *path, lg_error_t *err);

static int requirement_list(lg_jwt_requirement_t *r, const lg_jwt_authn_config_t *c, pb_requirement_t *const *items,
                            size_t n, const char *path, lg_error_t *err)
{
    if (n < 2)
        return lg_error_set(err, "%s.requirements: needs at least 2 entries", path);
    r->children = xcalloc(n, sizeof(*r->children));
    for (size_t i = 0; i < n; ++i) {
        char sub[512];
        snprintf(sub, sizeof(sub), "%s.requirements[%zu]", path, i);
        ++r->n_children;
        if (requirement_init(&r->children[i], c, items[i], sub, err) != 0)
            return -1;
    }
    return 0;
}

static int requirement_provider(lg_jwt_requirement_t *r, const lg_jwt_authn_config_t *c, const char *name,
                                const char *path, lg_error_t *err)
{
    r->kind = LG_JWT_REQ_PROVIDER;
    if ((r->provider = find_provider(c, name)) == NULL)
        return lg_error_set(err, "%s: Required provider ['%s'] is not configured.", path, name);
    return 0;
}

static int requirement_init(lg_jwt_requirement_t *r, const lg_jwt_authn_config_t *c, const pb_requirement_t *pb,
                            const char *path, lg_error_t *err)
{
    char sub[512];
    switch (pb->requires_type_case) {
    case ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_PROVIDER_NAME:
        snprintf(sub, sizeof(sub), "%s.provider_name", path);
        return requirement_provider(r, c, pb->provider_name, sub, err);
    case ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_PROVIDER_AND_AUDIENCES:
        snprintf(sub, sizeof(sub), "%s.provider_and_audiences", path);
        r->has_audiences = 1;
        r->audiences = dup_strings(pb->provider_and_audiences->audiences, pb->provider_and_audiences->n_audiences);
        r->n_audiences = pb->provider_and_audiences->n_audiences;
        return requirement_provider(r, c, pb->provider_and_audiences->provider_name, sub, err);
    case ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_REQUIRES_ANY:
        snprintf(sub, sizeof(sub), "%s.requires_any", path);
        r->kind = LG_JWT_REQ_ANY;
        return requirement_list(r, c, pb->requires_any->requirements, pb->requires_any->n_requirements, sub, err);
    case ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_REQUIRES_ALL:
        snprintf(sub, sizeof(sub), "%s.requires_all", path);
        r->kind = LG_JWT_REQ_ALL;
        return requirement_list(r, c, pb->requires_all->requirements, pb->requires_all->n_requirements, sub, err);
    case ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_ALLOW_MISSING_OR_FAILED:
        r->kind = LG_JWT_REQ_ALLOW_MISSING_OR_FAILED;
        return 0;
    case ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__JWT_REQUIREMENT__REQUIRES_TYPE_ALLOW_MISSING:
        r->kind = LG_JWT_REQ_ALLOW_MISSING;
        return 0;
    default:
        /* An empty JwtRequirement: Envoy builds no verifier, so nothing is required. */
        r->kind = LG_JWT_REQ_ALLOW_MISSING_OR_FAILED;
        return 0;
    }
}

static void requirement_dispose(lg_jwt_requirement_t *r)
{
    free_strings(r->audiences, r->n_audiences);
    for (size_t i = 0; i < r->n_children; ++i)
        requirement_dispose(&r->children[i]);
    free(r->children);
}

const lg_jwt_requirement_t *lg_jwt_authn_find_requirement(const lg_jwt_authn_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_requirements; ++i)
        if (strcmp(c->requirement_names[i], name) == 0)
            return &c->requirements[i];
    return NULL;
}

/* ---- the filter config --------------------------------------------------------------------- */

static int rules_init(lg_jwt_authn_config_t *c, const pb_config_t *pb, lg_error_t *err)
{
    c->rules = xcalloc(pb->n_rules, sizeof(*c->rules));
    for (size_t i = 0; i < pb->n_rules; ++i) {
        const Envoy__Extensions__Filters__Http__JwtAuthn__V3__RequirementRule *rp = pb->rules[i];
        lg_jwt_rule_t *rule = &c->rules[c->n_rules];
        char path[64];
        snprintf(path, sizeof(path), "typed_config.rules[%zu]", i);
        if (rp->match == NULL)
            return lg_error_set(err, "%s.match: is required", path);
        lg_path_t mp;
        lg_path_init(&mp);
        lg_path_push_field(&mp, path);
        lg_path_push_field(&mp, "match");
        if (lg_route_criteria_init(&rule->match, rp->match, 0, &mp, NULL, err) != 0)
            return -1;
        ++c->n_rules;
        if (rp->requirement_type_case ==
            ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__REQUIREMENT_RULE__REQUIREMENT_TYPE_REQUIRES) {
            char sub[80];
            snprintf(sub, sizeof(sub), "%s.requires", path);
            rule->owned = xcalloc(1, sizeof(*rule->owned));
            if (requirement_init(rule->owned, c, rp->requires, sub, err) != 0)
                return -1;
            rule->requires = rule->owned;
        } else if (rp->requirement_type_case ==
                   ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__REQUIREMENT_RULE__REQUIREMENT_TYPE_REQUIREMENT_NAME) {
            if ((rule->requires = lg_jwt_authn_find_requirement(c, rp->requirement_name)) == NULL)
                return lg_error_set(err, "%s.requirement_name: Wrong requirement_name: %s", path, rp->requirement_name);
        }
    }
    return 0;
}

static void register_stats(lg_jwt_authn_config_t *c, const char *stat_prefix)
{
#define LG_X(name) c->stats.name = lg_stats_registerf(LG_STAT_COUNTER, "%sjwt_authn." #name, stat_prefix);
    LG_JWT_AUTHN_STATS(LG_X)
#undef LG_X
}

void *lg_jwt_authn_create_config(const ProtobufCMessage *msg, const lg_filter_config_ctx_t *ctx, lg_error_t *err)
{
    const pb_config_t *pb = (const void *)msg;
    lg_jwt_authn_config_t *c = xcalloc(1, sizeof(*c));
    if (msg == NULL || msg->descriptor != &envoy__extensions__filters__http__jwt_authn__v3__jwt_authentication__descriptor) {
        lg_error_set(err, "typed_config: expected a JwtAuthentication");
        goto Error;
    }
    if (pb->filter_state_rules != NULL) {
        unsupported(err, "typed_config", "filter_state_rules");
        goto Error;
    }
    c->bypass_cors_preflight = pb->bypass_cors_preflight;
    c->strip_failure_response = pb->strip_failure_response;
    c->providers = xcalloc(pb->n_providers, sizeof(*c->providers));
    for (size_t i = 0; i < pb->n_providers; ++i) {
        ++c->n_providers;
        if (pb->providers[i]->value == NULL) {
            lg_error_set(err, "typed_config.providers[%s]: empty provider", pb->providers[i]->key);
            goto Error;
        }
        c->providers[i].index = i;
        if (provider_init(&c->providers[i], pb->providers[i]->key, pb->providers[i]->value, err) != 0)
            goto Error;
    }
    c->requirement_names = xcalloc(pb->n_requirement_map, sizeof(*c->requirement_names));
    c->requirements = xcalloc(pb->n_requirement_map, sizeof(*c->requirements));
    for (size_t i = 0; i < pb->n_requirement_map; ++i) {
        char path[300];
        snprintf(path, sizeof(path), "typed_config.requirement_map[%s]", pb->requirement_map[i]->key);
        c->requirement_names[i] = xstrdup(pb->requirement_map[i]->key);
        ++c->n_requirements;
        if (pb->requirement_map[i]->value != NULL &&
            requirement_init(&c->requirements[i], c, pb->requirement_map[i]->value, path, err) != 0)
            goto Error;
        if (pb->requirement_map[i]->value == NULL)
            c->requirements[i].kind = LG_JWT_REQ_ALLOW_MISSING_OR_FAILED;
    }
    if (rules_init(c, pb, err) != 0)
        goto Error;
    register_stats(c, ctx != NULL && ctx->stat_prefix != NULL ? ctx->stat_prefix : "");
    return c;
Error:
    lg_jwt_authn_destroy_config(c);
    return NULL;
}

void lg_jwt_authn_destroy_config(void *config)
{
    lg_jwt_authn_config_t *c = config;
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_rules; ++i) {
        lg_route_criteria_dispose(&c->rules[i].match);
        if (c->rules[i].owned != NULL) {
            requirement_dispose(c->rules[i].owned);
            free(c->rules[i].owned);
        }
    }
    free(c->rules);
    for (size_t i = 0; i < c->n_requirements; ++i) {
        free(c->requirement_names[i]);
        requirement_dispose(&c->requirements[i]);
    }
    free(c->requirement_names);
    free(c->requirements);
    for (size_t i = 0; i < c->n_providers; ++i)
        provider_dispose(&c->providers[i]);
    free(c->providers);
    free(c);
}

void *lg_jwt_authn_create_per_route_config(const ProtobufCMessage *msg, lg_error_t *err)
{
    if (msg == NULL || msg->descriptor != &envoy__extensions__filters__http__jwt_authn__v3__per_route_config__descriptor) {
        lg_error_set(err, "expected a jwt_authn PerRouteConfig");
        return NULL;
    }
    const pb_per_route_t *pb = (const void *)msg;
    lg_jwt_authn_per_route_t *r = xcalloc(1, sizeof(*r));
    switch (pb->requirement_specifier_case) {
    case ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__PER_ROUTE_CONFIG__REQUIREMENT_SPECIFIER_DISABLED:
        if (!pb->disabled) {
            lg_error_set(err, "disabled: must be true when set");
            break;
        }
        r->disabled = 1;
        return r;
    case ENVOY__EXTENSIONS__FILTERS__HTTP__JWT_AUTHN__V3__PER_ROUTE_CONFIG__REQUIREMENT_SPECIFIER_REQUIREMENT_NAME:
        if (!is_set(pb->requirement_name)) {
            lg_error_set(err, "requirement_name: must not be empty");
            break;
        }
        r->requirement_name = xstrdup(pb->requirement_name);
        return r;
    default:
        lg_error_set(err, "a jwt_authn PerRouteConfig needs disabled or requirement_name");
        break;
    }
    free(r);
    return NULL;
}

void lg_jwt_authn_destroy_per_route_config(void *config)
{
    lg_jwt_authn_per_route_t *r = config;
    if (r != NULL)
        free(r->requirement_name);
    free(r);
}
