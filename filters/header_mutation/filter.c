/*
 * envoy.filters.http.header_mutation, as Envoy runs it.
 *
 * The filter's HeaderMutation.mutations and every level's HeaderMutationPerRoute.mutations
 * (typed_per_filter_config on the route, virtual host and route configuration) change the
 * request headers on the way up and the response headers on the way down. Each list of
 * HeaderMutation is applied in order: `remove` removes every field of that name, `append` (a
 * HeaderValueOption) formats its value with Envoy's command operators (%REQ(x-user)%,
 * %DOWNSTREAM_REMOTE_ADDRESS%, and for responses %RESP(...)%) against the headers as the steps
 * before it left them, then adds, overwrites or skips per append_action (or the deprecated
 * `append`); an empty value is skipped unless keep_empty_value. The filter's own mutations go
 * first, then the per-route ones: most specific level first, or least specific first when
 * most_specific_header_mutations_wins (so the route's run last and win).
 *
 * Stricter than Envoy: pseudo-headers and `host` may not be appended or removed (as for the
 * route-level header lists). Response mutations run on responses that pass through the encode
 * chain; legate's local replies (from other filters) do not.
 */
#include <stdlib.h>

#include "envoy/extensions/filters/http/header_mutation/v3/header_mutation.pb-c.h"
#include "filters/header_mutation/header_mutation.h"
#include "xalloc.h"

typedef Envoy__Extensions__Filters__Http__HeaderMutation__V3__Mutations mutations_pb_t;

typedef struct st_hm_config_t {
    lg_header_mutation_pair_t mutations;
    int most_specific_wins;
} hm_config_t;

static void pair_dispose(lg_header_mutation_pair_t *p)
{
    lg_header_mutation_list_dispose(&p->request);
    lg_header_mutation_list_dispose(&p->response);
}

static int pair_init(lg_header_mutation_pair_t *p, const mutations_pb_t *pb, lg_error_t *err)
{
    *p = (lg_header_mutation_pair_t){{NULL, 0}, {NULL, 0}};
    if (pb == NULL)
        return 0;
    lg_path_t path;
    lg_path_init(&path);
    lg_path_push_field(&path, "mutations");
    size_t mark = lg_path_push_field(&path, "request_mutations");
    if (lg_header_mutation_list_init(&p->request, pb->request_mutations, pb->n_request_mutations, &path, err) != 0)
        return -1;
    lg_path_pop(&path, mark);
    lg_path_push_field(&path, "response_mutations");
    if (lg_header_mutation_list_init(&p->response, pb->response_mutations, pb->n_response_mutations, &path, err) != 0) {
        pair_dispose(p);
        return -1;
    }
    return 0;
}

static void destroy_config(void *p)
{
    hm_config_t *c = p;
    if (c == NULL)
        return;
    pair_dispose(&c->mutations);
    free(c);
}

static void *create_config(const ProtobufCMessage *msg, lg_error_t *err)
{
    const Envoy__Extensions__Filters__Http__HeaderMutation__V3__HeaderMutation *pb = (const void *)msg;
    hm_config_t *c = lg_xcalloc(1, sizeof(*c));
    if (pair_init(&c->mutations, pb->mutations, err) != 0) {
        free(c);
        return NULL;
    }
    c->most_specific_wins = pb->most_specific_header_mutations_wins;
    return c;
}

static void *create_per_route_config(const ProtobufCMessage *msg, lg_error_t *err)
{
    const Envoy__Extensions__Filters__Http__HeaderMutation__V3__HeaderMutationPerRoute *pb = (const void *)msg;
    hm_config_t *c = lg_xcalloc(1, sizeof(*c));
    if (pair_init(&c->mutations, pb->mutations, err) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

/* The filter's mutations, then each level's in the configured order. */
static void apply(lg_filter_t *f, int request, lg_headers_t *headers, const lg_format_context_t *ctx)
{
    const hm_config_t *c = f->config;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    lg_header_mutation_list_apply(request ? &c->mutations.request : &c->mutations.response, headers, ctx, pool);
    const void *levels[4];
    size_t n = lg_filter_per_route_configs(f, levels);
    for (size_t i = 0; i < n; ++i) {
        const hm_config_t *r = levels[c->most_specific_wins ? n - 1 - i : i];
        lg_header_mutation_list_apply(request ? &r->mutations.request : &r->mutations.response, headers, ctx, pool);
    }
}

static lg_filter_headers_status_t decode_headers(lg_filter_t *f, lg_request_head_t *head, int end_stream)
{
    lg_format_context_t ctx = {lg_filter_stream_info(f), head, NULL};
    apply(f, 1, &head->headers, &ctx);
    return LG_FILTER_HEADERS_CONTINUE;
}

static lg_filter_headers_status_t encode_headers(lg_filter_t *f, lg_response_head_t *head, int end_stream)
{
    lg_format_context_t ctx = {lg_filter_stream_info(f), lg_filter_request(f), head};
    apply(f, 0, &head->headers, &ctx);
    return LG_FILTER_HEADERS_CONTINUE;
}

const lg_http_filter_ops_t lg_header_mutation_ops = {
    .name = "envoy.filters.http.header_mutation",
    .config_descriptor = &envoy__extensions__filters__http__header_mutation__v3__header_mutation__descriptor,
    .per_route_descriptor = &envoy__extensions__filters__http__header_mutation__v3__header_mutation_per_route__descriptor,
    .create_config = create_config,
    .destroy_config = destroy_config,
    .create_per_route_config = create_per_route_config,
    .destroy_per_route_config = destroy_config,
    .decode_headers = decode_headers,
    .encode_headers = encode_headers,
};
