/*
 * The cache filter's per-stream hooks (envoy.filters.http.cache): see cache.h.
 *
 * Request headers: a cacheable request is looked up in this worker's store. A fresh hit is encoded
 * here (marked `serving`, so this filter's own encode hooks let it pass without storing it again)
 * and the chain stops: the upstream never sees the request. A stale entry with validators sends the
 * request on with if-none-match / if-modified-since and keeps a reference to the entry; its 304 is
 * rewritten in encode_headers into the stored response, whose body follows through
 * lg_filter_set_encoded_body. Any other response to a cacheable GET is recorded as it passes
 * (headers from the head, body frame by frame) and stored at its end when it is cacheable.
 * Worker thread only.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "envoy/extensions/filters/http/cache/v3/cache.pb-c.h" /* the ops table's descriptor */
#include <h2o/string_.h>

#include "filters/cache/cache.h"
#include "log.h"
#include "strbuf.h"
#include "worker.h"

typedef struct st_cache_state_t {
    h2o_iovec_t key;          /* base key (pool); base NULL when the request is not cacheable */
    lg_cache_entry_t *entry;  /* held: being served, or being validated */
    int serving, validating, is_head, may_store;
    /* the response being recorded for the store */
    int recording;
    int status;
    lg_headers_t headers; /* copied into the pool */
    h2o_iovec_t vary;     /* pool */
    int64_t lifetime, initial_age;
    int must_validate;
    lg_strbuf_t body;
} cache_state_t;

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static lg_cache_store_t *store_of(lg_filter_t *f)
{
    lg_cache_config_t *c = (lg_cache_config_t *)f->config; /* only this worker's slot is written */
    unsigned id = lg_filter_worker(f)->id;
    if (id >= LG_CACHE_MAX_WORKERS) {
        static atomic_flag logged = ATOMIC_FLAG_INIT;
        if (!atomic_flag_test_and_set(&logged))
            lg_warn(filter, "cache: worker %u is past the %d the cache filter serves; it does not cache", id,
                    LG_CACHE_MAX_WORKERS);
        return NULL;
    }
    if (c->stores[id] == NULL)
        c->stores[id] = lg_cache_store_new(&c->budget);
    return c->stores[id];
}

static int64_t entry_age(const lg_cache_entry_t *e, int64_t now)
{
    int64_t since = now - e->response_time;
    return (since > 0 ? since : 0) + e->initial_age;
}

/* Encodes `e` as the response: stored head with `age`, then the body unless HEAD. */
static void serve(lg_filter_t *f, cache_state_t *st, lg_cache_entry_t *e)
{
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    lg_response_head_t *head = h2o_mem_alloc_pool(pool, sizeof(*head));
    *head = (lg_response_head_t){.status = e->status, .content_length = (int64_t)e->body.len};
    for (size_t i = 0; i < e->n_headers; ++i)
        lg_headers_add(pool, &head->headers, e->headers[i].name, e->headers[i].value);
    char age[24];
    size_t n = lg_u64_to_dec(age, (uint64_t)entry_age(e, now_s()));
    lg_headers_add_copy(pool, &head->headers, "age", 3, age, n);
    st->serving = 1;
    int end = st->is_head || e->body.len == 0;
    lg_filter_encode_headers(f, head, end);
    if (!end)
        lg_filter_encode_data(f, e->body.base, e->body.len, 1);
}

/* Adds the stored validators to the request; 0 when the entry has none. */
static int add_validators(lg_filter_t *f, lg_request_head_t *req, const lg_cache_entry_t *e)
{
    int added = 0;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    for (size_t i = 0; i < e->n_headers; ++i) {
        if (h2o_memis(e->headers[i].name.base, e->headers[i].name.len, H2O_STRLIT("etag"))) {
            lg_headers_set(pool, &req->headers, LG_LIT("if-none-match"), e->headers[i].value);
            added = 1;
        } else if (h2o_memis(e->headers[i].name.base, e->headers[i].name.len, H2O_STRLIT("last-modified"))) {
            lg_headers_set(pool, &req->headers, LG_LIT("if-modified-since"), e->headers[i].value);
            added = 1;
        }
    }
    return added;
}

static lg_filter_headers_status_t decode_headers(lg_filter_t *f, lg_request_head_t *head, int end_stream)
{
    cache_state_t *st = f->state;
    const lg_cache_config_t *c = f->config;
    if (c->disabled || !lg_cache_request_cacheable(head, c->ignore_request_cc))
        return LG_FILTER_HEADERS_CONTINUE;
    /* Envoy has no per-route cache message; a route turns the filter off with FilterConfig's
     * `disabled`, which the connection manager does not apply by itself yet. */
    const lg_route_t *route = lg_filter_route(f);
    if (route != NULL && lg_route_filter_disabled(route, f->name) == 1)
        return LG_FILTER_HEADERS_CONTINUE;
    lg_cache_store_t *store = store_of(f);
    if (store == NULL)
        return LG_FILTER_HEADERS_CONTINUE;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    st->is_head = h2o_memis(head->method.base, head->method.len, H2O_STRLIT("HEAD"));
    st->may_store = !st->is_head;
    st->key = lg_cache_key(&c->key, head, pool);
    lg_cache_entry_t *e = lg_cache_store_get(store, st->key);
    if (e != NULL && e->vary.len != 0)
        e = lg_cache_store_get(store, lg_cache_variant_key(st->key, e->vary, &head->headers, pool));
    if (e == NULL || e->vary.len != 0)
        return LG_FILTER_HEADERS_CONTINUE;
    int64_t age = entry_age(e, now_s());
    int validate = e->must_validate || age >= e->lifetime;
    if (!c->ignore_request_cc) {
        lg_cache_control_t cc;
        lg_cache_control_from_headers(&cc, &head->headers);
        if (cc.no_cache || cc.max_age == 0 || (cc.max_age > 0 && age > cc.max_age) ||
            (cc.min_fresh >= 0 && e->lifetime - age < cc.min_fresh))
            validate = 1;
    }
    lg_cache_entry_ref(e);
    st->entry = e;
    if (!validate) {
        serve(f, st, e);
        return LG_FILTER_HEADERS_STOP_ITERATION;
    }
    /* HEAD cannot turn a 304 into a stored body; it goes upstream as it came. */
    if (!st->is_head && add_validators(f, head, e)) {
        st->validating = 1;
        return LG_FILTER_HEADERS_CONTINUE;
    }
    lg_cache_entry_unref(e);
    st->entry = NULL;
    return LG_FILTER_HEADERS_CONTINUE;
}

/* ---- recording and storing ------------------------------------------------------------------------ */

static void stop_recording(cache_state_t *st)
{
    st->recording = 0;
    lg_strbuf_dispose(&st->body);
}

/* Starts recording a response to a cacheable GET when the response may be stored. */
static void maybe_record(lg_filter_t *f, cache_state_t *st, const lg_response_head_t *head)
{
    const lg_cache_config_t *c = f->config;
    if (!st->may_store || st->key.base == NULL || !lg_cache_status_cacheable(head->status))
        return;
    lg_cache_control_t cc;
    lg_cache_control_from_headers(&cc, &head->headers);
    if (cc.no_store || cc.private_)
        return;
    int64_t lifetime = lg_cache_freshness_lifetime(&cc, lg_headers_get(&head->headers, "date", 4),
                                                   lg_headers_get(&head->headers, "expires", 7), now_s());
    if (lifetime < 0)
        return;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    if (lg_cache_vary_names(&head->headers, c->allowed_vary, c->n_allowed_vary, pool, &st->vary) != 0)
        return;
    if (head->content_length >= 0 && c->max_body_bytes != 0 && (uint64_t)head->content_length > c->max_body_bytes)
        return;
    const h2o_iovec_t *age = lg_headers_get(&head->headers, "age", 3);
    st->initial_age = age != NULL ? lg_cache_parse_seconds(*age) : 0;
    if (st->initial_age < 0)
        st->initial_age = 0;
    st->recording = 1;
    st->status = head->status;
    st->lifetime = lifetime;
    st->must_validate = cc.no_cache;
    st->headers = (lg_headers_t){NULL, 0, 0};
    lg_headers_copy(pool, &st->headers, &head->headers);
}

static void entry_times(lg_cache_entry_t *e, int64_t lifetime, int64_t initial_age, int must_validate)
{
    e->response_time = now_s();
    e->lifetime = lifetime;
    e->initial_age = initial_age;
    e->must_validate = must_validate;
}

static void store_recorded(lg_filter_t *f, cache_state_t *st)
{
    lg_cache_store_t *store = store_of(f);
    h2o_iovec_t key = st->key, none = h2o_iovec_init(NULL, 0);
    if (store != NULL && st->vary.len != 0) {
        /* the base key lists the varied names; the response goes under its variant's key */
        lg_cache_store_put(store, lg_cache_entry_new(st->key, 0, NULL, 0, none, st->vary));
        key = lg_cache_variant_key(st->key, st->vary, &lg_filter_request(f)->headers, lg_filter_pool(f));
    }
    if (store != NULL) {
        lg_cache_entry_t *e = lg_cache_entry_new(key, st->status, st->headers.entries, st->headers.size,
                                                 h2o_iovec_init(st->body.data, st->body.len), none);
        entry_times(e, st->lifetime, st->initial_age, st->must_validate);
        lg_cache_store_put(store, e);
    }
    stop_recording(st);
}

static int append_body(const lg_cache_config_t *c, cache_state_t *st, const lg_data_t *data)
{
    size_t need = st->body.len + data->len;
    if ((c->max_body_bytes != 0 && need > c->max_body_bytes) || need > c->budget.limit)
        return -1;
    if (data->len != 0)
        lg_strbuf_append(&st->body, data->base, data->len);
    return 0;
}

/* ---- revalidation ------------------------------------------------------------------------------- */

static int renewed_by_304(h2o_iovec_t name)
{
    static const char *const names[] = {"date", "cache-control", "expires", "etag", "last-modified"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i)
        if (h2o_memis(name.base, name.len, names[i], strlen(names[i])))
            return 1;
    return 0;
}

/*
 * Turns the 304 `head` into the stored response (in place), with the 304's validators and freshness
 * fields, stores the renewed entry, and hands the stored body on after the head.
 */
static void answer_304(lg_filter_t *f, cache_state_t *st, lg_response_head_t *head, int end_stream)
{
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    const lg_cache_entry_t *old = st->entry;
    lg_headers_t merged = {NULL, 0, 0};
    for (size_t i = 0; i < old->n_headers; ++i)
        if (!renewed_by_304(old->headers[i].name) || lg_headers_find(&head->headers, old->headers[i].name.base,
                                                                      old->headers[i].name.len, 0) < 0)
            lg_headers_add(pool, &merged, old->headers[i].name, old->headers[i].value);
    for (size_t i = 0; i < head->headers.size; ++i)
        if (renewed_by_304(head->headers.entries[i].name))
            lg_headers_add_copy(pool, &merged, head->headers.entries[i].name.base, head->headers.entries[i].name.len,
                                head->headers.entries[i].value.base, head->headers.entries[i].value.len);
    lg_cache_control_t cc;
    lg_cache_control_from_headers(&cc, &merged);
    int64_t lifetime = lg_cache_freshness_lifetime(&cc, lg_headers_get(&merged, "date", 4),
                                                   lg_headers_get(&merged, "expires", 7), now_s());
    lg_cache_store_t *store = store_of(f);
    if (store != NULL && lifetime >= 0 && !cc.no_store && !cc.private_) {
        lg_cache_entry_t *e = lg_cache_entry_new(old->key, old->status, merged.entries, merged.size, old->body, old->vary);
        entry_times(e, lifetime, 0, cc.no_cache);
        lg_cache_store_put(store, e);
    }
    head->status = old->status;
    head->headers = merged;
    lg_headers_add(pool, &head->headers, LG_LIT("age"), LG_LIT("0"));
    head->content_length = (int64_t)old->body.len;
    if (end_stream)
        lg_filter_set_encoded_body(f, old->body.base, old->body.len);
}

static lg_filter_headers_status_t encode_headers(lg_filter_t *f, lg_response_head_t *head, int end_stream)
{
    cache_state_t *st = f->state;
    if (st->serving)
        return LG_FILTER_HEADERS_CONTINUE;
    if (st->validating) {
        st->validating = 0;
        if (head->status == 304 && end_stream) {
            answer_304(f, st, head, end_stream);
            return LG_FILTER_HEADERS_CONTINUE;
        }
    }
    maybe_record(f, st, head);
    if (st->recording && end_stream)
        store_recorded(f, st);
    return LG_FILTER_HEADERS_CONTINUE;
}

static lg_filter_data_status_t encode_data(lg_filter_t *f, lg_data_t *data, int end_stream)
{
    cache_state_t *st = f->state;
    if (!st->recording)
        return LG_FILTER_DATA_CONTINUE;
    if (append_body(f->config, st, data) != 0)
        stop_recording(st);
    else if (end_stream)
        store_recorded(f, st);
    return LG_FILTER_DATA_CONTINUE;
}

static lg_filter_trailers_status_t encode_trailers(lg_filter_t *f, lg_headers_t *trailers)
{
    /* Responses with trailers are not stored (see cache.h). */
    stop_recording(f->state);
    return LG_FILTER_TRAILERS_CONTINUE;
}

static void on_destroy(lg_filter_t *f)
{
    cache_state_t *st = f->state;
    stop_recording(st);
    if (st->entry != NULL)
        lg_cache_entry_unref(st->entry);
    st->entry = NULL;
}

const lg_http_filter_ops_t lg_cache_ops = {
    .name = "envoy.filters.http.cache",
    .config_descriptor = &envoy__extensions__filters__http__cache__v3__cache_config__descriptor,
    .create_config = lg_cache_create_config,
    .destroy_config = lg_cache_destroy_config,
    .state_size = sizeof(cache_state_t),
    .decode_headers = decode_headers,
    .encode_headers = encode_headers,
    .encode_data = encode_data,
    .encode_trailers = encode_trailers,
    .on_destroy = on_destroy,
};
