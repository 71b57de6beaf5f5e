/*
 * envoy.filters.http.header_mutation config: HeaderMutation (the filter's) and
 * HeaderMutationPerRoute (typed_per_filter_config) compiled into ordered step lists on the main
 * thread. Validation is lg_header_mutations_init's (names, values, formatters, append vs
 * append_action). Not for: per-request work (filter.c).
 */
#include <stdlib.h>

#include "filters/header_mutation/header_mutation.h"
#include "xalloc.h"

typedef Envoy__Config__Common__MutationRules__V3__HeaderMutation step_pb_t;

void lg_header_mutation_list_dispose(lg_header_mutation_list_t *l)
{
    for (size_t i = 0; i < l->n; ++i)
        lg_header_mutations_dispose(&l->steps[i]);
    free(l->steps);
    *l = (lg_header_mutation_list_t){NULL, 0};
}

int lg_header_mutation_list_init(lg_header_mutation_list_t *l, step_pb_t *const *pb, size_t n, lg_path_t *path,
                                 lg_error_t *err)
{
    *l = (lg_header_mutation_list_t){n != 0 ? lg_xcalloc(n, sizeof(*l->steps)) : NULL, 0};
    size_t mark = path->len;
    for (; l->n < n; ++l->n) {
        const step_pb_t *s = pb[l->n];
        lg_path_push_index(path, l->n);
        int rc;
        switch (s->action_case) {
        case ENVOY__CONFIG__COMMON__MUTATION_RULES__V3__HEADER_MUTATION__ACTION_REMOVE:
            rc = lg_header_mutations_init(&l->steps[l->n], NULL, 0, &s->remove, 1, "append", "remove", path, NULL, err);
            break;
        case ENVOY__CONFIG__COMMON__MUTATION_RULES__V3__HEADER_MUTATION__ACTION_APPEND:
            rc = lg_header_mutations_init(&l->steps[l->n], &s->append, 1, NULL, 0, "append", "remove", path, NULL, err);
            break;
        default:
            lg_error_set(err, "%s: one of remove or append is required", path->buf);
            rc = -1;
        }
        lg_path_pop(path, mark);
        if (rc != 0) {
            lg_header_mutation_list_dispose(l);
            return -1;
        }
    }
    return 0;
}

void lg_header_mutation_list_apply(const lg_header_mutation_list_t *l, lg_headers_t *headers,
                                   const lg_format_context_t *ctx, h2o_mem_pool_t *pool)
{
    for (size_t i = 0; i < l->n; ++i)
        lg_header_mutations_apply(&l->steps[i], headers, ctx, pool);
}
