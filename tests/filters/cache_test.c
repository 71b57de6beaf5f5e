/*
 * Unit tests of the cache filter's pure parts (filters/cache): Cache-Control parsing, freshness
 * lifetime, which requests and statuses are cacheable, key creation with key_creator_params and
 * Vary, the config's refusals, and the store's LRU eviction under the shared byte budget.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/extensions/filters/http/cache/v3/cache.pb-c.h"
#include "filters/cache/cache.h"
#include "lg_test.h"
#include "lg_test_pb.h"

static h2o_mem_pool_t pool;
static lg_error_t err;

static lg_cache_control_t parse(const char *v)
{
    lg_cache_control_t cc;
    lg_cache_control_init(&cc);
    lg_cache_control_parse(&cc, h2o_iovec_init(v, strlen(v)));
    return cc;
}

static h2o_iovec_t iov(const char *s)
{
    return h2o_iovec_init(s, strlen(s));
}

static lg_request_head_t request(const char *method, const char *path)
{
    lg_request_head_t r = {.method = iov(method), .scheme = iov("http"), .authority = iov("Example.COM"),
                           .path = iov(path), .version = LG_HTTP_11, .content_length = -1};
    return r;
}

static void add(lg_headers_t *h, const char *name, const char *value)
{
    lg_headers_add(&pool, h, iov(name), iov(value));
}

static int key_is(h2o_iovec_t key, const char *expected)
{
    return h2o_memis(key.base, key.len, expected, strlen(expected));
}

LG_TEST(test_cache_control_parsing)
{
    lg_cache_control_t cc = parse("public, max-age=60, s-maxage=\"30\"");
    LG_EXPECT(cc.public_);
    LG_EXPECT_INT(cc.max_age, 60);
    LG_EXPECT_INT(cc.s_maxage, 30);
    LG_EXPECT_INT(cc.min_fresh, -1);
    cc = parse("No-Store,PRIVATE=\"set-cookie, x\" , no-cache=\"a,b\", must-revalidate");
    LG_EXPECT(cc.no_store && cc.private_ && cc.no_cache && cc.must_revalidate);
    LG_EXPECT_INT(cc.max_age, -1);
    /* an invalid delta-seconds is 0: stale at once */
    cc = parse("max-age=abc, min-fresh=5, max-stale");
    LG_EXPECT_INT(cc.max_age, 0);
    LG_EXPECT_INT(cc.min_fresh, 5);
    LG_EXPECT(cc.max_stale == INT64_MAX);
    cc = parse("max-age=99999999999, unknown-ext=1");
    LG_EXPECT_INT(cc.max_age, (int64_t)1 << 31);
    cc = parse("");
    LG_EXPECT(!cc.no_store && !cc.no_cache && cc.max_age == -1);
    /* several fields add up */
    lg_headers_t h = {NULL, 0, 0};
    add(&h, "cache-control", "max-age=5");
    add(&h, "cache-control", "no-cache");
    lg_cache_control_from_headers(&cc, &h);
    LG_EXPECT(cc.no_cache);
    LG_EXPECT_INT(cc.max_age, 5);
}

LG_TEST(test_freshness_lifetime)
{
    lg_cache_control_t cc = parse("max-age=60, s-maxage=10");
    LG_EXPECT_INT(lg_cache_freshness_lifetime(&cc, NULL, NULL, 0), 10); /* s-maxage wins */
    cc = parse("max-age=60");
    h2o_iovec_t expires = iov("Sun, 06 Nov 1994 08:50:37 GMT"), date = iov("Sun, 06 Nov 1994 08:49:37 GMT");
    LG_EXPECT_INT(lg_cache_freshness_lifetime(&cc, &date, &expires, 0), 60); /* max-age over Expires */
    cc = parse("public");
    LG_EXPECT_INT(lg_cache_freshness_lifetime(&cc, &date, &expires, 0), 60);
    int64_t t = lg_cache_parse_http_date(date);
    LG_EXPECT_INT(t, 784111777);
    LG_EXPECT_INT(lg_cache_freshness_lifetime(&cc, NULL, &expires, t + 20), 40); /* no Date: response time */
    LG_EXPECT_INT(lg_cache_freshness_lifetime(&cc, &expires, &date, 0), 0);    /* expired already */
    h2o_iovec_t bad = iov("0");
    LG_EXPECT_INT(lg_cache_freshness_lifetime(&cc, &date, &bad, 0), 0); /* invalid Expires: in the past */
    LG_EXPECT_INT(lg_cache_freshness_lifetime(&cc, &date, NULL, 0), -1);
    LG_EXPECT_INT(lg_cache_parse_seconds(iov("12")), 12);
    LG_EXPECT_INT(lg_cache_parse_seconds(iov("-1")), -1);
}

LG_TEST(test_cacheability)
{
    LG_EXPECT(lg_cache_status_cacheable(200) && lg_cache_status_cacheable(301) && lg_cache_status_cacheable(404));
    LG_EXPECT(!lg_cache_status_cacheable(302) && !lg_cache_status_cacheable(500) && !lg_cache_status_cacheable(304));
    lg_request_head_t r = request("GET", "/a");
    LG_EXPECT(lg_cache_request_cacheable(&r, 0));
    r = request("HEAD", "/a");
    LG_EXPECT(lg_cache_request_cacheable(&r, 0));
    r = request("POST", "/a");
    LG_EXPECT(!lg_cache_request_cacheable(&r, 0));
    r = request("GET", "/a");
    add(&r.headers, "authorization", "Bearer x");
    LG_EXPECT(!lg_cache_request_cacheable(&r, 0));
    r = request("GET", "/a");
    add(&r.headers, "if-none-match", "\"x\"");
    LG_EXPECT(!lg_cache_request_cacheable(&r, 0));
    r = request("GET", "/a");
    add(&r.headers, "cache-control", "no-store");
    LG_EXPECT(!lg_cache_request_cacheable(&r, 0));
    LG_EXPECT(lg_cache_request_cacheable(&r, 1)); /* ignore_request_cache_control_header */
}

static lg_cache_config_t *config(const char *yaml)
{
    ProtobufCMessage *pb =
        lg_test_pb_from_yaml(&envoy__extensions__filters__http__cache__v3__cache_config__descriptor, yaml, &err);
    lg_cache_config_t *c = pb != NULL ? lg_cache_create_config(pb, &err) : NULL;
    if (pb != NULL)
        protobuf_c_message_free_unpacked(pb, NULL);
    return c;
}

#define STORE "typed_config: {'@type': type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig}"

LG_TEST(test_keys)
{
    lg_cache_config_t *c = config(STORE);
    LG_EXPECT(c != NULL);
    lg_request_head_t r = request("GET", "/p?b=2&a=1");
    LG_EXPECT(key_is(lg_cache_key(&c->key, &r, &pool), "http\nexample.com\n/p\nb=2&a=1"));
    lg_cache_destroy_config(c);
    c = config(STORE "\nkey_creator_params: {exclude_scheme: true, exclude_host: true,"
                     " query_parameters_included: [{name: a}, {name: b}, {name: c}],"
                     " query_parameters_excluded: [{name: b}]}");
    LG_EXPECT(c != NULL);
    r = request("GET", "/p?z=9&a=1&b=2&c=3");
    LG_EXPECT(key_is(lg_cache_key(&c->key, &r, &pool), "\n\n/p\na=1&c=3"));
    r = request("GET", "/p");
    LG_EXPECT(key_is(lg_cache_key(&c->key, &r, &pool), "\n\n/p\n"));
    lg_cache_destroy_config(c);

    /* Vary: allowed names only, lower-cased; the variant key carries the request's values */
    c = config(STORE "\nallowed_vary_headers: [{exact: accept-language}, {prefix: x-}]");
    LG_EXPECT(c != NULL);
    lg_headers_t resp = {NULL, 0, 0};
    add(&resp, "vary", "Accept-Language, X-Tenant");
    h2o_iovec_t names;
    LG_EXPECT_INT(lg_cache_vary_names(&resp, c->allowed_vary, c->n_allowed_vary, &pool, &names), 0);
    LG_EXPECT(key_is(names, "accept-language,x-tenant"));
    lg_headers_t req = {NULL, 0, 0};
    add(&req, "accept-language", "fr");
    add(&req, "x-tenant", "t1");
    add(&req, "x-tenant", "t2");
    LG_EXPECT(key_is(lg_cache_variant_key(iov("K"), names, &req, &pool), "K\nvary\naccept-language=fr\nx-tenant=t1,t2"));
    lg_headers_t other = {NULL, 0, 0};
    add(&other, "vary", "cookie");
    LG_EXPECT_INT(lg_cache_vary_names(&other, c->allowed_vary, c->n_allowed_vary, &pool, &names), -1);
    lg_headers_t star = {NULL, 0, 0};
    add(&star, "vary", "*");
    LG_EXPECT_INT(lg_cache_vary_names(&star, c->allowed_vary, c->n_allowed_vary, &pool, &names), -1);
    lg_headers_t none = {NULL, 0, 0};
    LG_EXPECT_INT(lg_cache_vary_names(&none, c->allowed_vary, c->n_allowed_vary, &pool, &names), 0);
    LG_EXPECT_INT(names.len, 0);
    lg_cache_destroy_config(c);
}

LG_TEST(test_config_errors)
{
    LG_EXPECT(config("max_body_bytes: 10") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "typed_config: a cache storage is required");
    LG_EXPECT(config("typed_config: {'@type': type.googleapis.com/google.protobuf.Empty}") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "google.protobuf.Empty is not supported by legate");
    lg_cache_config_t *c = config("disabled: true");
    LG_EXPECT(c != NULL && c->disabled);
    lg_cache_destroy_config(c);
}

static lg_cache_entry_t *entry(const char *key, size_t body_len)
{
    static char body[4096];
    lg_header_t hs[] = {{iov("content-type"), iov("text/plain")}, {iov("content-length"), iov("9")},
                        {iov("age"), iov("3")}};
    return lg_cache_entry_new(iov(key), 200, hs, 3, h2o_iovec_init(body, body_len), h2o_iovec_init(NULL, 0));
}

static void budget_init(lg_cache_budget_t *b, size_t limit)
{
    atomic_init(&b->bytes, 0);
    atomic_init(&b->stores, 0);
    b->limit = limit;
}

LG_TEST(test_store_lru_eviction)
{
    lg_cache_entry_t *probe = entry("k0", 1000);
    size_t each = probe->bytes;
    LG_EXPECT_INT(probe->n_headers, 1); /* content-length and age are not stored */
    free(probe);
    lg_cache_budget_t budget;
    budget_init(&budget, 3 * each);
    lg_cache_store_t *s = lg_cache_store_new(&budget);
    LG_EXPECT_INT(lg_cache_store_put(s, entry("k1", 1000)), 0);
    LG_EXPECT_INT(lg_cache_store_put(s, entry("k2", 1000)), 0);
    LG_EXPECT_INT(lg_cache_store_put(s, entry("k3", 1000)), 0);
    LG_EXPECT(lg_cache_store_get(s, iov("k1")) != NULL); /* k1 used: k2 is now the oldest */
    lg_cache_entry_t *held = lg_cache_store_get(s, iov("k2"));
    lg_cache_entry_ref(held);
    LG_EXPECT(lg_cache_store_get(s, iov("k1")) != NULL);
    LG_EXPECT(lg_cache_store_get(s, iov("k3")) != NULL);
    LG_EXPECT_INT(lg_cache_store_put(s, entry("k4", 1000)), 0);
    LG_EXPECT(lg_cache_store_get(s, iov("k2")) == NULL);
    LG_EXPECT(held->body.len == 1000 && !held->listed); /* evicted, still readable by its holder */
    lg_cache_entry_unref(held);
    LG_EXPECT_INT(atomic_load(&budget.bytes), 3 * each);
    /* replacing a key keeps the count right */
    LG_EXPECT_INT(lg_cache_store_put(s, entry("k4", 1000)), 0);
    LG_EXPECT_INT(s->n_entries, 3);
    LG_EXPECT_INT(atomic_load(&budget.bytes), 3 * each);
    /* larger than the whole budget: refused, nothing evicted */
    LG_EXPECT_INT(lg_cache_store_put(s, entry("big", 4096)), -1);
    LG_EXPECT_INT(s->n_entries, 3);
    /* a second worker's store: each may keep half, the first gives back its excess */
    lg_cache_store_t *other = lg_cache_store_new(&budget);
    LG_EXPECT_INT(lg_cache_store_put(other, entry("o1", 1000)), 0);
    LG_EXPECT(lg_cache_store_get(other, iov("o1")) != NULL);
    LG_EXPECT(atomic_load(&budget.bytes) > budget.limit); /* until the first store inserts again */
    LG_EXPECT_INT(lg_cache_store_put(s, entry("k5", 1000)), 0);
    LG_EXPECT_INT(s->n_entries, 1);
    LG_EXPECT(lg_cache_store_get(s, iov("k5")) != NULL);
    LG_EXPECT(atomic_load(&budget.bytes) <= budget.limit);
    lg_cache_store_free(other);
    lg_cache_store_free(s);
    LG_EXPECT_INT(atomic_load(&budget.bytes), 0);
    /* many entries: the table grows and every key is still found */
    budget_init(&budget, (size_t)1 << 30);
    s = lg_cache_store_new(&budget);
    char k[16];
    for (int i = 0; i < 500; ++i) {
        snprintf(k, sizeof(k), "key%d", i);
        lg_cache_store_put(s, entry(k, 10));
    }
    int found = 0;
    for (int i = 0; i < 500; ++i) {
        snprintf(k, sizeof(k), "key%d", i);
        found += lg_cache_store_get(s, iov(k)) != NULL;
    }
    LG_EXPECT_INT(found, 500);
    lg_cache_store_free(s);
}

int main(void)
{
    h2o_mem_init_pool(&pool);
    LG_RUN(test_cache_control_parsing);
    LG_RUN(test_freshness_lifetime);
    LG_RUN(test_cacheability);
    LG_RUN(test_keys);
    LG_RUN(test_config_errors);
    LG_RUN(test_store_lru_eviction);
    h2o_mem_clear_pool(&pool);
    return LG_TEST_END();
}
