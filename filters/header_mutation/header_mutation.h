/*
 * envoy.filters.http.header_mutation: what config.c (HeaderMutation, HeaderMutationPerRoute ->
 * compiled mutation lists) and filter.c (the stream hooks) share. See filter.c for the behaviour.
 */
#ifndef LG_FILTERS_HEADER_MUTATION_H
#define LG_FILTERS_HEADER_MUTATION_H

#include "envoy/config/common/mutation_rules/v3/mutation_rules.pb-c.h"
#include "filter.h"
#include "header_formatter.h"

extern const lg_http_filter_ops_t lg_header_mutation_ops;

/*
 * A list of config.common.mutation_rules.v3.HeaderMutation, applied one after the other (each
 * `append` formatted against the headers as the steps before it left them), unlike the
 * route-level lists, which remove all first and add all after. Each step is a one-entry
 * lg_header_mutations_t so the formatting and append actions are lg_header_mutations_apply's.
 */
typedef struct st_lg_header_mutation_list_t {
    lg_header_mutations_t *steps;
    size_t n;
} lg_header_mutation_list_t;

/* Mutations: the request's and the response's lists. */
typedef struct st_lg_header_mutation_pair_t {
    lg_header_mutation_list_t request, response;
} lg_header_mutation_pair_t;

/**
 * Compiles `n` HeaderMutation messages; `path` names the list (e.g.
 * "mutations.request_mutations"), restored on return. 0, or -1 with err filled (l is then empty).
 * Main thread.
 */
int lg_header_mutation_list_init(lg_header_mutation_list_t *l,
                                 Envoy__Config__Common__MutationRules__V3__HeaderMutation *const *pb, size_t n,
                                 lg_path_t *path, lg_error_t *err);
void lg_header_mutation_list_dispose(lg_header_mutation_list_t *l);
/** Applies the steps in order to `headers`; new strings from `pool`. Any thread. */
void lg_header_mutation_list_apply(const lg_header_mutation_list_t *l, lg_headers_t *headers,
                                   const lg_format_context_t *ctx, h2o_mem_pool_t *pool);

#endif
