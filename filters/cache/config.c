/*
 * The cache filter's config (see cache.h): CacheConfig -> lg_cache_config_t, validated, main thread
 * only. The stores are not made here but by each worker on its first cacheable request; they are
 * freed with the config, which outlives every stream that used it.
 */
#include <stdlib.h>
#include <string.h>

#include "envoy/extensions/filters/http/cache/v3/cache.pb-c.h"
#include "filters/cache/cache.h"
#include "path.h"
#include "xalloc.h"

typedef Envoy__Extensions__Filters__Http__Cache__V3__CacheConfig cache_pb_t;

#define SIMPLE_HTTP_CACHE "envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig"

static void matchers_dispose(lg_query_matcher_t *m, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        lg_query_matcher_dispose(&m[i]);
    free(m);
}

void lg_cache_destroy_config(void *p)
{
    lg_cache_config_t *c = p;
    if (c == NULL)
        return;
    for (size_t i = 0; i < LG_CACHE_MAX_WORKERS; ++i)
        lg_cache_store_free(c->stores[i]);
    for (size_t i = 0; i < c->n_allowed_vary; ++i)
        lg_string_matcher_dispose(&c->allowed_vary[i]);
    free(c->allowed_vary);
    matchers_dispose(c->key.included, c->key.n_included);
    matchers_dispose(c->key.excluded, c->key.n_excluded);
    free(c);
}

static int query_matchers(lg_query_matcher_t **out, size_t *n_out, Envoy__Config__Route__V3__QueryParameterMatcher **pb,
                          size_t n, const char *field, lg_path_t *path, lg_error_t *err)
{
    *out = lg_xcalloc(n + 1, sizeof(**out));
    for (; *n_out < n; ++*n_out) {
        size_t mark = lg_path_push_field(path, field);
        lg_path_push_index(path, *n_out);
        int rc = lg_query_matcher_init(&(*out)[*n_out], pb[*n_out], path, NULL, err);
        lg_path_pop(path, mark);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* typed_config must name the one store legate has. */
static int check_store(const cache_pb_t *pb, lg_error_t *err)
{
    if (pb->typed_config == NULL || pb->typed_config->type_url == NULL)
        return lg_error_set(err, "typed_config: a cache storage is required (%s)", SIMPLE_HTTP_CACHE), -1;
    const char *url = pb->typed_config->type_url, *slash = strrchr(url, '/');
    const char *type = slash != NULL ? slash + 1 : url;
    if (strcmp(type, SIMPLE_HTTP_CACHE) != 0)
        return lg_error_set(err, "typed_config: %s is not supported by legate (only %s)", type, SIMPLE_HTTP_CACHE),
               -1;
    return 0;
}

void *lg_cache_create_config(const ProtobufCMessage *msg, lg_error_t *err)
{
    const cache_pb_t *pb = (const cache_pb_t *)msg;
    lg_cache_config_t *c = lg_xcalloc(1, sizeof(*c));
    atomic_init(&c->budget.bytes, 0);
    atomic_init(&c->budget.stores, 0);
    c->budget.limit = LG_CACHE_DEFAULT_MAX_BYTES;
    c->disabled = pb->disabled != NULL && pb->disabled->value;
    if (!c->disabled && check_store(pb, err) != 0)
        goto Fail;
    c->ignore_request_cc = pb->ignore_request_cache_control_header;
    c->max_body_bytes = pb->max_body_bytes;
    lg_path_t path;
    lg_path_init(&path);
    c->allowed_vary = lg_xcalloc(pb->n_allowed_vary_headers + 1, sizeof(*c->allowed_vary));
    for (; c->n_allowed_vary < pb->n_allowed_vary_headers; ++c->n_allowed_vary) {
        size_t mark = lg_path_push_field(&path, "allowed_vary_headers");
        lg_path_push_index(&path, c->n_allowed_vary);
        int rc = lg_string_matcher_init(&c->allowed_vary[c->n_allowed_vary], pb->allowed_vary_headers[c->n_allowed_vary],
                                        &path, NULL, err);
        lg_path_pop(&path, mark);
        if (rc != 0)
            goto Fail;
    }
    const Envoy__Extensions__Filters__Http__Cache__V3__CacheConfig__KeyCreatorParams *k = pb->key_creator_params;
    if (k != NULL) {
        c->key.exclude_scheme = k->exclude_scheme;
        c->key.exclude_host = k->exclude_host;
        lg_path_push_field(&path, "key_creator_params");
        if (query_matchers(&c->key.included, &c->key.n_included, k->query_parameters_included,
                           k->n_query_parameters_included, "query_parameters_included", &path, err) != 0 ||
            query_matchers(&c->key.excluded, &c->key.n_excluded, k->query_parameters_excluded,
                           k->n_query_parameters_excluded, "query_parameters_excluded", &path, err) != 0)
            goto Fail;
    }
    return c;
Fail:
    lg_cache_destroy_config(c);
    return NULL;
}
