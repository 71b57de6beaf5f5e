/*
 * Access-log filters: see access_log_filter.h.
 *
 * A filter is a small tree of plain C nodes mirroring the AccessLogFilter message: comparisons keep
 * their op and default value, header filters a compiled lg_header_matcher_t, and/or filters their
 * children. Evaluation reads only the stream and the scratch pool.
 */
#include "access_log_filter.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <h2o/string_.h>

#include "log.h"
#include "route_table.h"
#include "stream_info.h"
#include "xalloc.h"

#define AL(x) ENVOY__CONFIG__ACCESSLOG__V3__##x

typedef enum en_filter_kind_t {
    F_STATUS_CODE,
    F_DURATION,
    F_NOT_HEALTH_CHECK,
    F_RUNTIME,
    F_AND,
    F_OR,
    F_HEADER,
    F_RESPONSE_FLAG,
    F_GRPC_STATUS,
} filter_kind_t;

typedef lg_access_log_filter_t filter_t;
struct st_lg_access_log_filter_t {
    filter_kind_t kind;
    int op;                  /* STATUS_CODE, DURATION: AL(COMPARISON_FILTER__OP__*) */
    uint64_t value;          /* STATUS_CODE, DURATION (ms) */
    uint32_t flags;          /* RESPONSE_FLAG: lg_response_flag_t bits */
    int any_flag;            /* RESPONSE_FLAG: no flags listed, any flag matches */
    uint32_t numerator, denominator; /* RUNTIME */
    int independent;         /* RUNTIME: use_independent_randomness */
    lg_header_matcher_t header;
    int has_header;
    uint32_t statuses;       /* GRPC_STATUS: bit per gRPC status 0..16 */
    int exclude;             /* GRPC_STATUS */
    filter_t *children;      /* AND, OR */
    size_t n_children;
};

/* What a build reads and where errors go. */
typedef struct st_bctx_t {
    lg_path_t *path;
    const lg_srcmap_t *map;
    lg_error_t *err;
} bctx_t;

/* What an evaluation reads. */
typedef struct st_eval_t {
    const lg_format_context_t *ctx;
    const lg_headers_t *trailers;
    h2o_mem_pool_t *pool;
} eval_t;

__attribute__((format(printf, 3, 4))) static int bfail(bctx_t *c, const void *msg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lg_srcmap_verror(c->err, c->map, msg, c->path, fmt, ap);
    va_end(ap);
    return -1;
}

/* Fails naming `field` of `msg`. */
__attribute__((format(printf, 4, 5))) static int ffail(bctx_t *c, const void *msg, const char *field,
                                                       const char *fmt, ...)
{
    size_t mark = lg_path_push_field(c->path, field);
    va_list ap;
    va_start(ap, fmt);
    lg_srcmap_verror(c->err, c->map, msg, c->path, fmt, ap);
    va_end(ap);
    lg_path_pop(c->path, mark);
    return -1;
}

/* ------------------------------------------------------------------------------------------- */
/* Building                                                                                    */
/* ------------------------------------------------------------------------------------------- */


/* Response flags Envoy accepts in a ResponseFlagFilter that legate never sets. */
static const char *const envoy_only_flags[] = {"DF", "DO", "DR", "UDO"};

static void filter_dispose(filter_t *f)
{
    for (size_t i = 0; i < f->n_children; ++i)
        filter_dispose(&f->children[i]);
    free(f->children);
    if (f->has_header)
        lg_header_matcher_dispose(&f->header);
}

static int comparison_build(bctx_t *c, filter_t *f, const void *owner,
                            const Envoy__Config__Accesslog__V3__ComparisonFilter *cmp)
{
    if (cmp == NULL)
        return ffail(c, owner, "comparison", "value is required");
    size_t mark = lg_path_push_field(c->path, "comparison");
    int r = 0;
    if (cmp->op != AL(COMPARISON_FILTER__OP__EQ) && cmp->op != AL(COMPARISON_FILTER__OP__GE) &&
        cmp->op != AL(COMPARISON_FILTER__OP__LE))
        r = ffail(c, cmp, "op", "unknown comparison op %d", (int)cmp->op);
    else if (cmp->value == NULL)
        r = ffail(c, cmp, "value", "value is required");
    f->op = cmp->op;
    f->value = cmp->value != NULL ? cmp->value->default_value : 0;
    lg_path_pop(c->path, mark);
    return r;
}

static int filter_build(bctx_t *c, filter_t *f, const Envoy__Config__Accesslog__V3__AccessLogFilter *pb);

static int children_build(bctx_t *c, filter_t *f, const void *owner,
                          Envoy__Config__Accesslog__V3__AccessLogFilter *const *filters, size_t n)
{
    if (n < 2)
        return ffail(c, owner, "filters", "value must contain at least 2 item(s)");
    f->children = lg_xcalloc(n, sizeof(*f->children));
    for (size_t i = 0; i < n; ++i) {
        size_t mark = lg_path_push_field(c->path, "filters");
        lg_path_push_index(c->path, i);
        ++f->n_children;
        int r = filter_build(c, &f->children[i], filters[i]);
        lg_path_pop(c->path, mark);
        if (r != 0)
            return -1;
    }
    return 0;
}

static int runtime_build(bctx_t *c, filter_t *f, const Envoy__Config__Accesslog__V3__RuntimeFilter *rt)
{
    f->kind = F_RUNTIME;
    if (rt->runtime_key == NULL || rt->runtime_key[0] == '\0')
        return ffail(c, rt, "runtime_key", "value length must be at least 1 characters");
    f->numerator = 0;
    f->denominator = 100;
    if (rt->percent_sampled != NULL) {
        f->numerator = rt->percent_sampled->numerator;
        switch (rt->percent_sampled->denominator) {
        case ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__HUNDRED:
            f->denominator = 100;
            break;
        case ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__TEN_THOUSAND:
            f->denominator = 10000;
            break;
        case ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__MILLION:
            f->denominator = 1000000;
            break;
        default:
            return ffail(c, rt->percent_sampled, "percent_sampled.denominator", "unknown denominator %d",
                         (int)rt->percent_sampled->denominator);
        }
    }
    f->independent = rt->use_independent_randomness;
    return 0;
}

static int response_flag_build(bctx_t *c, filter_t *f, const Envoy__Config__Accesslog__V3__ResponseFlagFilter *rf)
{
    f->kind = F_RESPONSE_FLAG;
    f->any_flag = rf->n_flags == 0;
    for (size_t i = 0; i < rf->n_flags; ++i) {
        const char *name = rf->flags[i] != NULL ? rf->flags[i] : "";
        int flag = lg_response_flag_parse(name);
        if (flag >= 0) {
            f->flags |= 1u << flag;
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof(envoy_only_flags) / sizeof(envoy_only_flags[0]); ++k)
            if (strcmp(name, envoy_only_flags[k]) == 0)
                break;
        if (k == sizeof(envoy_only_flags) / sizeof(envoy_only_flags[0])) {
            size_t mark = lg_path_push_field(c->path, "flags");
            lg_path_push_index(c->path, i);
            bfail(c, rf, "invalid response flag \"%s\"", name);
            lg_path_pop(c->path, mark);
            return -1;
        }
    }
    return 0;
}

static int grpc_status_build(bctx_t *c, filter_t *f, const Envoy__Config__Accesslog__V3__GrpcStatusFilter *gs)
{
    f->kind = F_GRPC_STATUS;
    f->exclude = gs->exclude;
    for (size_t i = 0; i < gs->n_statuses; ++i) {
        int st = (int)gs->statuses[i];
        if (st < 0 || st > 16) {
            size_t mark = lg_path_push_field(c->path, "statuses");
            lg_path_push_index(c->path, i);
            bfail(c, gs, "unknown gRPC status %d", st);
            lg_path_pop(c->path, mark);
            return -1;
        }
        f->statuses |= 1u << st;
    }
    return 0;
}

/* Builds one AccessLogFilter; c->path names it. On failure f may be half built: dispose it. */
static int filter_build(bctx_t *c, filter_t *f, const Envoy__Config__Accesslog__V3__AccessLogFilter *pb)
{
    const char *unsupported = NULL;
    size_t mark = c->path->len;
    int r = 0;
    switch (pb->filter_specifier_case) {
    case AL(ACCESS_LOG_FILTER__FILTER_SPECIFIER_STATUS_CODE_FILTER):
        f->kind = F_STATUS_CODE;
        lg_path_push_field(c->path, "status_code_filter");
        r = comparison_build(c, f, pb->status_code_filter, pb->status_code_filter->comparison);
        break;
    case AL(ACCESS_LOG_FILTER__FILTER_SPECIFIER_DURATION_FILTER):
        f->kind = F_DURATION;
        lg_path_push_field(c->path, "duration_filter");
        r = comparison_build(c, f, pb->duration_filter, pb->duration_filter->comparison);
        break;
    case AL(ACCESS_LOG_FILTER__FILTER_SPECIFIER_NOT_HEALTH_CHECK_FILTER):
        f->kind = F_NOT_HEALTH_CHECK;
        break;
    case AL(ACCESS_LOG_FILTER__FILTER_SPECIFIER_RUNTIME_FILTER):
        lg_path_push_field(c->path, "runtime_filter");
        r = runtime_build(c, f, pb->runtime_filter);
        break;
    case AL(ACCESS_LOG_FILTER__FILTER_SPECIFIER_AND_FILTER):
        f->kind = F_AND;
        lg_path_push_field(c->path, "and_filter");
        r = children_build(c, f, pb->and_filter, pb->and_filter->filters, pb->and_filter->n_filters);
        break;
    case AL(ACCESS_LOG_FILTER__FILTER_SPECIFIER_OR_FILTER):
        f->kind = F_OR;
        lg_path_push_field(c->path, "or_filter");
        r = children_build(c, f, pb->or_filter, pb->or_filter->filters, pb->or_filter->n_filters);
        break;
    case AL(ACCESS_LOG_FILTER__FILTER_SPECIFIER_HEADER_FILTER):
        f->kind = F_HEADER;
        lg_path_push_field(c->path, "header_filter");
        if (pb->header_filter->header == NULL) {
            r = ffail(c, pb->header_filter, "header", "value is required");
            break;
        }
        lg_path_push_field(c->path, "header");
        r = lg_header_matcher_init(&f->header, pb->header_filter->header, c->path, c->map, c->err);
        f->has_header = r == 0;
        break;
    case AL(ACCESS_LOG_FILTER__FILTER_SPECIFIER_RESPONSE_FLAG_FILTER):
        lg_path_push_field(c->path, "response_flag_filter");
        r = response_flag_build(c, f, pb->response_flag_filter);
        break;
    case AL(ACCESS_LOG_FILTER__FILTER_SPECIFIER_GRPC_STATUS_FILTER):
        lg_path_push_field(c->path, "grpc_status_filter");
        r = grpc_status_build(c, f, pb->grpc_status_filter);
        break;
    case AL(ACCESS_LOG_FILTER__FILTER_SPECIFIER_TRACEABLE_FILTER):
        unsupported = "traceable_filter";
        break;
    case AL(ACCESS_LOG_FILTER__FILTER_SPECIFIER_EXTENSION_FILTER):
        unsupported = "extension_filter";
        break;
    case AL(ACCESS_LOG_FILTER__FILTER_SPECIFIER_METADATA_FILTER):
        unsupported = "metadata_filter";
        break;
    case AL(ACCESS_LOG_FILTER__FILTER_SPECIFIER_LOG_TYPE_FILTER):
        unsupported = "log_type_filter";
        break;
    default:
        r = bfail(c, pb, "one of the filter_specifier fields is required");
        break;
    }
    if (unsupported != NULL)
        r = ffail(c, pb, unsupported, "this access log filter is not supported by legate");
    lg_path_pop(c->path, mark);
    return r;
}

/* ------------------------------------------------------------------------------------------- */
/* Evaluating                                                                                  */
/* ------------------------------------------------------------------------------------------- */

static int compare(const filter_t *f, uint64_t v)
{
    switch (f->op) {
    case AL(COMPARISON_FILTER__OP__GE):
        return v >= f->value;
    case AL(COMPARISON_FILTER__OP__LE):
        return v <= f->value;
    default:
        return v == f->value;
    }
}

static uint64_t now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Envoy's UUID request id modBy: the first 8 hex digits of x-request-id. */
static int request_id_value(const eval_t *e, uint64_t *out)
{
    h2o_iovec_t id = {NULL, 0};
    const h2o_iovec_t *h =
        e->ctx->request != NULL ? lg_headers_get(&e->ctx->request->headers, H2O_STRLIT("x-request-id")) : NULL;
    if (h != NULL)
        id = *h;
    else if (e->ctx->info != NULL)
        id = e->ctx->info->request_id;
    if (id.len < 8)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < 8; ++i) {
        int d = isdigit((unsigned char)id.base[i]) ? id.base[i] - '0'
                : isxdigit((unsigned char)id.base[i]) ? tolower((unsigned char)id.base[i]) - 'a' + 10
                                                      : -1;
        if (d < 0)
            return 0;
        v = v * 16 + (uint64_t)d;
    }
    *out = v;
    return 1;
}

static int runtime_sampled(const filter_t *f, const eval_t *e)
{
    uint64_t v;
    if (f->independent || !request_id_value(e, &v))
        v = splitmix64(now_mono_ns() ^ (uint64_t)(uintptr_t)e->ctx->info);
    return v % f->denominator < f->numerator;
}

static int filter_eval(const filter_t *f, const eval_t *e)
{
    const lg_stream_info_t *si = e->ctx->info;
    switch (f->kind) {
    case F_STATUS_CODE:
        return compare(f, si != NULL && si->response_code > 0 ? (uint64_t)si->response_code : 0);
    case F_DURATION: {
        if (si == NULL || si->start_mono_ns == 0)
            return 0;
        uint64_t end = si->end_ns != 0 ? si->end_ns : now_mono_ns();
        return end >= si->start_mono_ns && compare(f, (end - si->start_mono_ns) / 1000000u);
    }
    case F_NOT_HEALTH_CHECK:
        return si == NULL || !si->health_check;
    case F_RUNTIME:
        return runtime_sampled(f, e);
    case F_AND:
        for (size_t i = 0; i < f->n_children; ++i)
            if (!filter_eval(&f->children[i], e))
                return 0;
        return 1;
    case F_OR:
        for (size_t i = 0; i < f->n_children; ++i)
            if (filter_eval(&f->children[i], e))
                return 1;
        return 0;
    case F_HEADER: {
        static const lg_request_head_t empty = {{NULL, 0}, {NULL, 0}, {NULL, 0}, {NULL, 0},
                                                LG_HTTP_11, {NULL, 0, 0}, -1};
        return lg_header_matcher_match_request(&f->header, e->ctx->request != NULL ? e->ctx->request : &empty, e->pool);
    }
    case F_RESPONSE_FLAG: {
        uint32_t flags = si != NULL ? si->response_flags : 0;
        return f->any_flag ? flags != 0 : (flags & f->flags) != 0;
    }
    case F_GRPC_STATUS: {
        int64_t st = 2; /* Unknown, when the stream has no status at all */
        lg_grpc_status_for_log(e->ctx, e->trailers, &st);
        int found = st >= 0 && st <= 16 && (f->statuses & (1u << st));
        return f->exclude ? !found : found;
    }
    }
    return 0;
}

lg_access_log_filter_t *lg_access_log_filter_build(const Envoy__Config__Accesslog__V3__AccessLogFilter *pb,
                                                   const lg_srcmap_t *map, lg_path_t *path, lg_error_t *err)
{
    bctx_t c = {path, map, err};
    size_t mark = path->len;
    filter_t *f = lg_xcalloc(1, sizeof(*f));
    int r = filter_build(&c, f, pb);
    lg_path_pop(path, mark);
    if (r != 0) {
        lg_access_log_filter_free(f);
        return NULL;
    }
    return f;
}

void lg_access_log_filter_free(lg_access_log_filter_t *f)
{
    if (f == NULL)
        return;
    filter_dispose(f);
    free(f);
}

int lg_access_log_filter_eval(const lg_access_log_filter_t *f, const lg_format_context_t *ctx,
                              const lg_headers_t *trailers, h2o_mem_pool_t *pool)
{
    eval_t e = {ctx, trailers, pool};
    return filter_eval(f, &e);
}
