/*
 * The filter registry: Envoy filter names and typed_config type names mapped to legate's
 * implementations, nothing else. A filter is found by the type of its typed_config first, then by
 * name, as Envoy finds extensions. Adding a filter is one line in registry.c.
 * Read-only; any thread.
 */
#ifndef LG_FILTERS_REGISTRY_H
#define LG_FILTERS_REGISTRY_H

#include <stddef.h>

#include "filter.h"

typedef enum en_lg_filter_kind_t {
    LG_FILTER_HTTP,
    LG_FILTER_NETWORK,
    LG_FILTER_LISTENER,
} lg_filter_kind_t;

typedef struct st_lg_filter_factory_t {
    lg_filter_kind_t kind;
    const char *name;        /* "envoy.filters.http.router" */
    const char *config_type; /* full name of its typed_config message */
    int terminal;            /* must be last in its chain (router, http_connection_manager) */
    const lg_http_filter_ops_t *ops; /* HTTP filters legate runs; NULL: config accepted, not built yet */
} lg_filter_factory_t;

/**
 * Finds a filter of `kind` by the full message name of its typed_config (`config_type`, may be
 * NULL when the config has none) or else by `name`. NULL when legate has no such filter.
 */
const lg_filter_factory_t *lg_filter_registry_find(lg_filter_kind_t kind, const char *name,
                                                   const char *config_type);

/**
 * Finds the HTTP filter whose typed_per_filter_config message is `per_route_type` (full message
 * name), or NULL.
 */
const lg_filter_factory_t *lg_filter_registry_find_per_route(const char *per_route_type);

#endif
