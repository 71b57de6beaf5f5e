/*
 * envoy.filters.http.local_ratelimit, as Envoy runs it.
 *
 * On request headers: when the request is in filter_enabled's share (default 0%: the filter does
 * nothing until enabled), the descriptors of the route's rate_limits (this filter's `stage`;
 * virtual host rate_limits per vh_rate_limits) are matched against the configured `descriptors`
 * (an empty configured value matches any value); each matched descriptor's bucket gives one token,
 * the one refilled slowest first, then the default bucket (token_bucket) unless a descriptor
 * matched and always_consume_default_token_bucket is false. The first empty bucket limits the
 * request: `rate_limited` is counted, and when the request is in filter_enforced's share it ends
 * with `status` (429), body "local_rate_limited", response flag RL, response_headers_to_add and
 * x-envoy-ratelimited: true; gRPC requests get UNAVAILABLE, or RESOURCE_EXHAUSTED with
 * rate_limited_as_resource_exhausted. Not enforced, request_headers_to_add_when_not_enforced go
 * upstream instead. A typed_per_filter_config (the same message) replaces the filter's config for
 * its route, buckets included.
 *
 * Buckets live in the config, shared by every worker (one atomic word each: see
 * lg_token_bucket_t), or, with local_rate_limit_per_downstream_connection, in the connection.
 * enable_x_ratelimit_headers DRAFT_VERSION_03 adds x-ratelimit-limit / -remaining / -reset from
 * the bucket that decided. Stats: <stat_prefix>.http_local_rate_limit.{enabled, enforced,
 * rate_limited, ok}.
 *
 * Not supported (refused at load): local_cluster_rate_limit (needs the local cluster's membership).
 * runtime_key values are not read (legate has no runtime): default_value decides.
 */
#include "filters/local_ratelimit/local_ratelimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.pb-c.h"
#include "header_formatter.h"
#include "log.h"
#include "rate_limit_actions.h"
#include "route_table.h"
#include "stats.h"
#include "stream_info.h"
#include "worker.h"
#include "xalloc.h"

#define MIN_FILL_INTERVAL_NS (50ull * 1000000)

typedef Envoy__Extensions__Filters__Http__LocalRatelimit__V3__LocalRateLimit lrl_pb_t;

typedef struct st_descriptor_t {
    lg_rl_entry_t *entries; /* owned, NUL-terminated strings */
    size_t n_entries;
    lg_token_bucket_params_t bucket;
} descriptor_t;

typedef struct st_lrl_config_t {
    uint64_t start_ns; /* buckets fill in steps counted from here */
    int has_default;
    lg_token_bucket_params_t default_bucket;
    descriptor_t *descriptors;
    size_t n_descriptors;
    /* Shared buckets: [0] the default, [1 + i] descriptor i. */
    lg_token_bucket_t *buckets;
    uint32_t enabled_num, enabled_den, enforced_num, enforced_den;
    int status;
    lg_header_mutations_t response_headers, request_headers_not_enforced;
    uint32_t stage;
    int per_connection, x_ratelimit_headers, always_consume_default, resource_exhausted;
    int vh_rate_limits; /* VhRateLimitsOptions: 0 OVERRIDE, 1 INCLUDE, 2 IGNORE */
    lg_stat_id_t st_enabled, st_enforced, st_rate_limited, st_ok;
} lrl_config_t;

typedef struct st_lrl_state_t {
    /* the bucket that decided, for x-ratelimit-* on the response */
    const lg_token_bucket_params_t *decided;
    uint32_t remaining;
    uint64_t reset_s;
} lrl_state_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the token bucket -------------------------------------------------------------------------- */

int lg_token_bucket_consume(lg_token_bucket_t *b, const lg_token_bucket_params_t *p, uint64_t elapsed_ns,
                            uint32_t *remaining)
{
    uint32_t step = (uint32_t)(elapsed_ns / p->fill_interval_ns);
    uint64_t old = atomic_load_explicit(&b->state, memory_order_relaxed);
    for (;;) {
        uint64_t used = old >> 32;
        uint32_t since = step - (uint32_t)old; /* steps since the last update (wraps after 2^32) */
        if (since != 0) {
            uint64_t back = (uint64_t)since * p->tokens_per_fill;
            used = back >= used ? 0 : used - back;
        }
        if (used >= p->max_tokens) {
            *remaining = 0;
            return 0;
        }
        uint64_t next = ((used + 1) << 32) | step;
        if (atomic_compare_exchange_weak_explicit(&b->state, &old, next, memory_order_relaxed, memory_order_relaxed)) {
            *remaining = p->max_tokens - (uint32_t)used - 1;
            return 1;
        }
    }
}

/* ---- config ------------------------------------------------------------------------------------ */

static void fraction(const Envoy__Config__Core__V3__RuntimeFractionalPercent *pb, uint32_t *num, uint32_t *den)
{
    *num = 0;
    *den = 100;
    if (pb != NULL && pb->default_value != NULL) {
        *den = lg_fractional_percent_denominator(pb->default_value->denominator);
        *num = pb->default_value->numerator > *den ? *den : pb->default_value->numerator;
    }
}

static int bucket_init(lg_token_bucket_params_t *b, const Envoy__Type__V3__TokenBucket *pb, const char *where,
                       lg_error_t *err)
{
    if (pb->max_tokens == 0)
        return lg_error_set(err, "%s.max_tokens: must be greater than 0", where), -1;
    if (pb->tokens_per_fill != NULL && pb->tokens_per_fill->value == 0)
        return lg_error_set(err, "%s.tokens_per_fill: must be greater than 0", where), -1;
    if (pb->fill_interval == NULL)
        return lg_error_set(err, "%s.fill_interval: is required", where), -1;
    const Google__Protobuf__Duration *d = pb->fill_interval;
    if (d->seconds < 0 || d->nanos < 0 || d->seconds > 100000000)
        return lg_error_set(err, "%s.fill_interval: out of range", where), -1;
    b->fill_interval_ns = (uint64_t)d->seconds * 1000000000ull + (uint64_t)d->nanos;
    if (b->fill_interval_ns < MIN_FILL_INTERVAL_NS)
        return lg_error_set(err, "%s.fill_interval: local rate limit token bucket fill timer must be >= 50ms", where),
               -1;
    b->max_tokens = pb->max_tokens;
    b->tokens_per_fill = pb->tokens_per_fill != NULL ? pb->tokens_per_fill->value : 1;
    return 0;
}

static void destroy_config(void *p)
{
    lrl_config_t *c = p;
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_descriptors; ++i) {
        for (size_t j = 0; j < c->descriptors[i].n_entries; ++j) {
            free(c->descriptors[i].entries[j].key.base);
            free(c->descriptors[i].entries[j].value.base);
        }
        free(c->descriptors[i].entries);
    }
    free(c->descriptors);
    free(c->buckets);
    lg_header_mutations_dispose(&c->response_headers);
    lg_header_mutations_dispose(&c->request_headers_not_enforced);
    free(c);
}

static int descriptors_init(lrl_config_t *c, const lrl_pb_t *pb, lg_error_t *err)
{
    c->descriptors = lg_xcalloc(pb->n_descriptors, sizeof(*c->descriptors));
    for (; c->n_descriptors < pb->n_descriptors; ++c->n_descriptors) {
        const Envoy__Extensions__Common__Ratelimit__V3__LocalRateLimitDescriptor *d = pb->descriptors[c->n_descriptors];
        descriptor_t *out = &c->descriptors[c->n_descriptors];
        char where[64];
        snprintf(where, sizeof(where), "descriptors[%zu]", c->n_descriptors);
        if (d->n_entries == 0)
            return lg_error_set(err, "%s.entries: at least one entry is required", where), -1;
        if (d->token_bucket == NULL)
            return lg_error_set(err, "%s.token_bucket: is required", where), -1;
        out->entries = lg_xcalloc(d->n_entries, sizeof(*out->entries));
        for (; out->n_entries < d->n_entries; ++out->n_entries) {
            const char *k = d->entries[out->n_entries]->key, *v = d->entries[out->n_entries]->value;
            out->entries[out->n_entries].key = h2o_iovec_init(lg_xstrdup(k), strlen(k != NULL ? k : ""));
            out->entries[out->n_entries].value = h2o_iovec_init(lg_xstrdup(v), strlen(v != NULL ? v : ""));
        }
        char bw[80];
        snprintf(bw, sizeof(bw), "%s.token_bucket", where);
        if (bucket_init(&out->bucket, d->token_bucket, bw, err) != 0)
            return -1;
        for (size_t i = 0; i < c->n_descriptors; ++i) {
            const descriptor_t *o = &c->descriptors[i];
            int same = o->n_entries == out->n_entries;
            for (size_t j = 0; same && j < o->n_entries; ++j)
                same = h2o_memis(o->entries[j].key.base, o->entries[j].key.len, out->entries[j].key.base,
                                 out->entries[j].key.len) &&
                       h2o_memis(o->entries[j].value.base, o->entries[j].value.len, out->entries[j].value.base,
                                 out->entries[j].value.len);
            if (same)
                return lg_error_set(err, "%s: duplicate descriptor in the local rate descriptor", where), -1;
        }
    }
    return 0;
}

static void *create_config(const ProtobufCMessage *msg, lg_error_t *err)
{
    const lrl_pb_t *pb = (const lrl_pb_t *)msg;
    lrl_config_t *c = lg_xcalloc(1, sizeof(*c));
    c->start_ns = now_ns();
    if (pb->stat_prefix == NULL || pb->stat_prefix[0] == '\0') {
        lg_error_set(err, "stat_prefix: is required");
        goto Fail;
    }
    if (pb->local_cluster_rate_limit != NULL) {
        lg_error_set(err, "local_cluster_rate_limit: is not supported by legate");
        goto Fail;
    }
    if (pb->token_bucket != NULL) {
        c->has_default = 1;
        if (bucket_init(&c->default_bucket, pb->token_bucket, "token_bucket", err) != 0)
            goto Fail;
    }
    if (descriptors_init(c, pb, err) != 0)
        goto Fail;
    c->buckets = lg_xcalloc(1 + c->n_descriptors, sizeof(*c->buckets));
    fraction(pb->filter_enabled, &c->enabled_num, &c->enabled_den);
    fraction(pb->filter_enforced, &c->enforced_num, &c->enforced_den);
    c->status = pb->status != NULL && pb->status->code >= 400 ? (int)pb->status->code : 429;
    lg_path_t path;
    lg_path_init(&path);
    if (lg_header_mutations_init(&c->response_headers, pb->response_headers_to_add, pb->n_response_headers_to_add,
                                 NULL, 0, "response_headers_to_add", "", &path, NULL, err) != 0 ||
        lg_header_mutations_init(&c->request_headers_not_enforced, pb->request_headers_to_add_when_not_enforced,
                                 pb->n_request_headers_to_add_when_not_enforced, NULL, 0,
                                 "request_headers_to_add_when_not_enforced", "", &path, NULL, err) != 0)
        goto Fail;
    c->stage = pb->stage;
    c->per_connection = pb->local_rate_limit_per_downstream_connection;
    c->x_ratelimit_headers =
        pb->enable_x_ratelimit_headers == ENVOY__EXTENSIONS__COMMON__RATELIMIT__V3__XRATE_LIMIT_HEADERS_RFCVERSION__DRAFT_VERSION_03;
    c->always_consume_default = pb->always_consume_default_token_bucket != NULL ? pb->always_consume_default_token_bucket->value : 1;
    c->resource_exhausted = pb->rate_limited_as_resource_exhausted;
    c->vh_rate_limits = (int)pb->vh_rate_limits;
#define STAT(name) lg_stats_registerf(LG_STAT_COUNTER, "%s.http_local_rate_limit." #name, pb->stat_prefix)
    c->st_enabled = STAT(enabled);
    c->st_enforced = STAT(enforced);
    c->st_rate_limited = STAT(rate_limited);
    c->st_ok = STAT(ok);
#undef STAT
    return c;
Fail:
    destroy_config(c);
    return NULL;
}

/* ---- per request ------------------------------------------------------------------------------- */

static int in_share(lg_filter_t *f, uint32_t num, uint32_t den)
{
    if (num == 0)
        return 0;
    if (num >= den)
        return 1;
    return lg_worker_random(lg_filter_worker(f)) % den < num;
}

static int entries_match(const descriptor_t *d, const lg_rl_descriptor_t *r)
{
    if (d->n_entries != r->n_entries)
        return 0;
    for (size_t i = 0; i < d->n_entries; ++i) {
        const lg_rl_entry_t *a = &d->entries[i], *b = &r->entries[i];
        if (!h2o_memis(a->key.base, a->key.len, b->key.base, b->key.len))
            return 0;
        if (a->value.len != 0 && !h2o_memis(a->value.base, a->value.len, b->value.base, b->value.len))
            return 0;
    }
    return 1;
}

/* Indexes (1 + descriptor) of the configured descriptors this request's rate_limits match. */
static size_t matched_descriptors(lg_filter_t *f, const lrl_config_t *c, size_t *out)
{
    const lg_route_t *r = lg_filter_route(f);
    if (c->n_descriptors == 0 || r == NULL)
        return 0;
    const lg_stream_info_t *info = lg_filter_stream_info(f);
    lg_request_head_t *req = lg_filter_request(f);
    lg_rl_input_t in = {.request = req, .remote = &info->downstream_remote};
    if (r->action == LG_ROUTE_ACTION_ROUTE)
        in.destination_cluster = lg_route_cluster_name(r, NULL, req);
    lg_rl_descriptor_t *ds = NULL;
    size_t n = 0;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    lg_rate_limits_populate(r->rate_limits, c->stage, &in, pool, &ds, &n);
    int include_vh = c->vh_rate_limits == 1 || r->include_vh_rate_limits || (c->vh_rate_limits == 0 && r->rate_limits == NULL);
    if (include_vh && c->vh_rate_limits != 2 && r->vhost != NULL)
        lg_rate_limits_populate(r->vhost->rate_limits, c->stage, &in, pool, &ds, &n);
    size_t m = 0;
    for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < c->n_descriptors; ++j)
            if (entries_match(&c->descriptors[j], &ds[i])) {
                size_t k = 0;
                while (k < m && out[k] != 1 + j)
                    ++k;
                if (k == m && m < c->n_descriptors)
                    out[m++] = 1 + j;
                break;
            }
    return m;
}

/* Tokens per nanosecond, compared without division: a fills slower than b. */
static int slower(const lg_token_bucket_params_t *a, const lg_token_bucket_params_t *b)
{
    return (unsigned __int128)a->tokens_per_fill * b->fill_interval_ns <
           (unsigned __int128)b->tokens_per_fill * a->fill_interval_ns;
}

static const lg_token_bucket_params_t *params_of(const lrl_config_t *c, size_t i)
{
    return i == 0 ? &c->default_bucket : &c->descriptors[i - 1].bucket;
}

/* Returns 1 when the request may pass; st records the bucket that decided. */
static int allowed(lg_filter_t *f, const lrl_config_t *c, lrl_state_t *st)
{
    size_t idx[64], n = matched_descriptors(f, c, idx);
    if (n > 64)
        n = 64;
    /* slowest-refilling first */
    for (size_t i = 1; i < n; ++i)
        for (size_t j = i; j > 0 && slower(params_of(c, idx[j]), params_of(c, idx[j - 1])); --j) {
            size_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    if (c->has_default && (n == 0 || c->always_consume_default))
        idx[n++] = 0;
    lg_token_bucket_t *buckets = c->buckets;
    if (c->per_connection)
        buckets = lg_filter_connection_state(f, c, sizeof(*buckets) * (1 + c->n_descriptors));
    uint64_t elapsed = now_ns() - c->start_ns;
    for (size_t i = 0; i < n; ++i) {
        const lg_token_bucket_params_t *p = params_of(c, idx[i]);
        uint32_t remaining;
        int ok = lg_token_bucket_consume(&buckets[idx[i]], p, elapsed, &remaining);
        if (st->decided == NULL || !ok || remaining < st->remaining) {
            st->decided = p;
            st->remaining = remaining;
            st->reset_s = (p->fill_interval_ns - elapsed % p->fill_interval_ns + 999999999ull) / 1000000000ull;
        }
        if (!ok)
            return 0;
    }
    return 1;
}

static void add_x_ratelimit(h2o_mem_pool_t *pool, lg_headers_t *h, const lrl_state_t *st)
{
    char buf[24];
    size_t n = lg_u64_to_dec(buf, st->decided->max_tokens);
    lg_headers_add_copy(pool, h, "x-ratelimit-limit", 17, buf, n);
    n = lg_u64_to_dec(buf, st->remaining);
    lg_headers_add_copy(pool, h, "x-ratelimit-remaining", 21, buf, n);
    n = lg_u64_to_dec(buf, st->reset_s);
    lg_headers_add_copy(pool, h, "x-ratelimit-reset", 17, buf, n);
}

static const lrl_config_t *config_for(lg_filter_t *f)
{
    const lrl_config_t *per_route = lg_filter_per_route_config(f);
    return per_route != NULL ? per_route : f->config;
}

static lg_filter_headers_status_t decode_headers(lg_filter_t *f, lg_request_head_t *head, int end_stream)
{
    lrl_state_t *st = f->state;
    const lrl_config_t *c = config_for(f);
    if (!in_share(f, c->enabled_num, c->enabled_den))
        return LG_FILTER_HEADERS_CONTINUE;
    lg_stats_cells_t *cells = lg_filter_worker(f)->stats;
    lg_stats_inc(cells, c->st_enabled);
    if (allowed(f, c, st)) {
        lg_stats_inc(cells, c->st_ok);
        if (!c->x_ratelimit_headers)
            st->decided = NULL;
        return LG_FILTER_HEADERS_CONTINUE;
    }
    lg_stats_inc(cells, c->st_rate_limited);
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    lg_format_context_t fctx = {lg_filter_stream_info(f), head, NULL};
    if (!in_share(f, c->enforced_num, c->enforced_den)) {
        lg_header_mutations_apply(&c->request_headers_not_enforced, &head->headers, &fctx, pool);
        if (!c->x_ratelimit_headers)
            st->decided = NULL;
        return LG_FILTER_HEADERS_CONTINUE;
    }
    lg_stats_inc(cells, c->st_enforced);
    lg_headers_t headers = {NULL, 0, 0};
    lg_header_mutations_apply(&c->response_headers, &headers, &fctx, pool);
    lg_headers_set(pool, &headers, h2o_iovec_init(H2O_STRLIT("x-envoy-ratelimited")), h2o_iovec_init(H2O_STRLIT("true")));
    if (c->x_ratelimit_headers && st->decided != NULL)
        add_x_ratelimit(pool, &headers, st);
    st->decided = NULL;
    lg_local_reply_t reply = {.status = c->status,
                              .body = "local_rate_limited",
                              .flag = "RL",
                              .details = "local_rate_limited",
                              .headers = &headers,
                              .grpc_status = c->resource_exhausted ? 8 : -1};
    lg_filter_send_local_reply_ex(f, &reply);
    return LG_FILTER_HEADERS_STOP_ITERATION;
}

static lg_filter_headers_status_t encode_headers(lg_filter_t *f, lg_response_head_t *head, int end_stream)
{
    lrl_state_t *st = f->state;
    if (st->decided != NULL)
        add_x_ratelimit(lg_filter_pool(f), &head->headers, st);
    return LG_FILTER_HEADERS_CONTINUE;
}

const lg_http_filter_ops_t lg_local_ratelimit_ops = {
    .name = "envoy.filters.http.local_ratelimit",
    .config_descriptor = &envoy__extensions__filters__http__local_ratelimit__v3__local_rate_limit__descriptor,
    .per_route_descriptor = &envoy__extensions__filters__http__local_ratelimit__v3__local_rate_limit__descriptor,
    .create_config = create_config,
    .destroy_config = destroy_config,
    .create_per_route_config = create_config,
    .destroy_per_route_config = destroy_config,
    .state_size = sizeof(lrl_state_t),
    .decode_headers = decode_headers,
    .encode_headers = encode_headers,
};
