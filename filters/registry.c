/*
 * The filter registry table: see registry.h.
 */
#include "filters/registry.h"

#include <string.h>

#include "filters/cache/cache.h"
#include "filters/compressor/compressor.h"
#include "filters/cors/cors.h"
#include "filters/decompressor/decompressor.h"
#include "filters/ext_authz/ext_authz.h"
#include "filters/header_mutation/header_mutation.h"
#include "filters/health_check/health_check.h"
#include "filters/jwt_authn/jwt_authn.h"
#include "filters/local_ratelimit/local_ratelimit.h"
#include "filters/passthrough/passthrough.h"
#include "filters/ratelimit/ratelimit.h"
#include "filters/rbac/rbac.h"
#include "filters/router/router.h"

static const lg_filter_factory_t factories[] = {
    {LG_FILTER_NETWORK, "envoy.filters.network.http_connection_manager",
     "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", 1, NULL},
    {LG_FILTER_HTTP, "legate.filters.http.passthrough", "", 0, &lg_passthrough_ops},
    {LG_FILTER_HTTP, "envoy.filters.http.router", "envoy.extensions.filters.http.router.v3.Router", 1, &lg_router_ops},
    {LG_FILTER_HTTP, "envoy.filters.http.health_check",
     "envoy.extensions.filters.http.health_check.v3.HealthCheck", 0, &lg_health_check_ops},
    {LG_FILTER_HTTP, "envoy.filters.http.cors", "envoy.extensions.filters.http.cors.v3.Cors", 0, &lg_cors_ops},
    {LG_FILTER_HTTP, "envoy.filters.http.header_mutation",
     "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation", 0, &lg_header_mutation_ops},
    {LG_FILTER_HTTP, "envoy.filters.http.cache", "envoy.extensions.filters.http.cache.v3.CacheConfig", 0, &lg_cache_ops},
    {LG_FILTER_HTTP, "envoy.filters.http.compressor", "envoy.extensions.filters.http.compressor.v3.Compressor", 0,
     &lg_compressor_ops},
    {LG_FILTER_HTTP, "envoy.filters.http.decompressor", "envoy.extensions.filters.http.decompressor.v3.Decompressor", 0,
     &lg_decompressor_ops},
    {LG_FILTER_HTTP, "envoy.filters.http.jwt_authn",
     "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication", 0, &lg_jwt_authn_ops},
    {LG_FILTER_HTTP, "envoy.filters.http.ext_authz", "envoy.extensions.filters.http.ext_authz.v3.ExtAuthz", 0,
     &lg_ext_authz_ops},
    {LG_FILTER_HTTP, "envoy.filters.http.local_ratelimit",
     "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit", 0, &lg_local_ratelimit_ops},
    {LG_FILTER_HTTP, "envoy.filters.http.rbac", "envoy.extensions.filters.http.rbac.v3.RBAC", 0, &lg_rbac_ops},
    {LG_FILTER_HTTP, "envoy.filters.http.ratelimit", "envoy.extensions.filters.http.ratelimit.v3.RateLimit", 0,
     &lg_ratelimit_ops},
};

const lg_filter_factory_t *lg_filter_registry_find(lg_filter_kind_t kind, const char *name,
                                                   const char *config_type)
{
    size_t n = sizeof(factories) / sizeof(factories[0]);
    if (config_type != NULL && config_type[0] != '\0') {
        for (size_t i = 0; i < n; ++i)
            if (factories[i].kind == kind && strcmp(factories[i].config_type, config_type) == 0)
                return &factories[i];
        /* legate's own filters have no config type of their own: found by name only. */
        for (size_t i = 0; i < n; ++i)
            if (factories[i].kind == kind && factories[i].config_type[0] == '\0' && name != NULL &&
                strcmp(factories[i].name, name) == 0)
                return &factories[i];
        return NULL;
    }
    for (size_t i = 0; i < n; ++i)
        if (factories[i].kind == kind && name != NULL && strcmp(factories[i].name, name) == 0)
            return &factories[i];
    return NULL;
}

const lg_filter_factory_t *lg_filter_registry_find_per_route(const char *name, const char *type)
{
    const lg_filter_factory_t *f = lg_filter_registry_find(LG_FILTER_HTTP, name, NULL);
    if (f != NULL && f->ops != NULL && f->ops->create_per_route_config != NULL)
        return f;
    for (size_t i = 0; type != NULL && i < sizeof(factories) / sizeof(factories[0]); ++i) {
        const lg_http_filter_ops_t *ops = factories[i].ops;
        if (factories[i].kind == LG_FILTER_HTTP && ops != NULL && ops->per_route_descriptor != NULL &&
            ops->create_per_route_config != NULL && strcmp(ops->per_route_descriptor->name, type) == 0)
            return &factories[i];
    }
    return NULL;
}
