/*
 * Unit tests of the cache filter's hooks (filters/cache/filter.c) in a real connection manager
 * chain: [observer, cache, origin]. The fake codec stands for the client; the origin filter stops
 * every request it sees and the test answers for it, so each test counts what reached the
 * upstream and what the client got: a miss then a hit with `age`, a revalidation whose 304 becomes
 * the stored 200 with its body, and no-store not stored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_manager.h"
#include "envoy/extensions/filters/http/cache/v3/cache.pb-c.h"
#include "fake_codec.h"
#include "filters/cache/cache.h"
#include "lg_test.h"
#include "lg_test_pb.h"
#include "worker.h"

/* ---- the origin (terminal) and the observer (next to the client) --------------------------- */

static int origin_requests;
static char origin_inm[64]; /* the if-none-match the origin last saw */
static lg_filter_t *origin;

static lg_filter_headers_status_t origin_decode_headers(lg_filter_t *f, lg_request_head_t *h, int end)
{
    ++origin_requests;
    origin = f;
    const h2o_iovec_t *inm = lg_headers_get(&h->headers, "if-none-match", 13);
    snprintf(origin_inm, sizeof(origin_inm), "%.*s", inm != NULL ? (int)inm->len : 0, inm != NULL ? inm->base : "");
    return LG_FILTER_HEADERS_STOP_ITERATION;
}
static const lg_http_filter_ops_t origin_ops = {.name = "origin", .terminal = 1,
                                                .decode_headers = origin_decode_headers};

static char client_age[16], client_etag[16];
static lg_filter_headers_status_t observer_encode_headers(lg_filter_t *f, lg_response_head_t *h, int end)
{
    const h2o_iovec_t *age = lg_headers_get(&h->headers, "age", 3), *etag = lg_headers_get(&h->headers, "etag", 4);
    snprintf(client_age, sizeof(client_age), "%.*s", age != NULL ? (int)age->len : 0, age != NULL ? age->base : "");
    snprintf(client_etag, sizeof(client_etag), "%.*s", etag != NULL ? (int)etag->len : 0, etag != NULL ? etag->base : "");
    return LG_FILTER_HEADERS_CONTINUE;
}
static const lg_http_filter_ops_t observer_ops = {.name = "observer", .encode_headers = observer_encode_headers};

/* ---- fixture ---------------------------------------------------------------------------- */

static fake_hcm_t hcm;
static lg_filter_factory_entry_t entries[3];
static lg_hcm_conn_t *conn;
static lg_cache_config_t *cache;
static lg_error_t err;

/* One client request for /page; returns its stream (released once the response completes). */
static void request(fake_codec_t *fc)
{
    fake_codec_init(fc);
    origin = NULL;
    lg_stream_t *s = lg_hcm_stream_new(conn, &fc->super);
    lg_request_head_t *req = fake_request(s, "GET");
    req->path = LG_LIT("/page");
    req->scheme = LG_LIT("http");
    lg_hcm_on_headers(s, req, 1);
}

/* The origin answers the pending request. */
static void respond(int status, const char *cache_control, const char *etag, const char *body)
{
    h2o_mem_pool_t *pool = lg_filter_pool(origin);
    lg_response_head_t *r = h2o_mem_alloc_pool(pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->status = status;
    r->content_length = (int64_t)strlen(body);
    lg_headers_add(pool, &r->headers, LG_LIT("cache-control"), h2o_iovec_init(cache_control, strlen(cache_control)));
    if (etag != NULL)
        lg_headers_add(pool, &r->headers, LG_LIT("etag"), h2o_iovec_init(etag, strlen(etag)));
    lg_filter_t *o = origin;
    lg_filter_encode_headers(o, r, body[0] == '\0');
    if (body[0] != '\0')
        lg_filter_encode_data(o, body, strlen(body), 1);
}

static void setup(void)
{
    origin_requests = 0;
    ProtobufCMessage *pb = lg_test_pb_from_yaml(
        &envoy__extensions__filters__http__cache__v3__cache_config__descriptor,
        "typed_config: {'@type': type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig}",
        &err);
    cache = lg_cache_create_config(pb, &err);
    protobuf_c_message_free_unpacked(pb, NULL);
    entries[0] = (lg_filter_factory_entry_t){&observer_ops, "observer", NULL, 0};
    entries[1] = (lg_filter_factory_entry_t){&lg_cache_ops, "envoy.filters.http.cache", cache, 0};
    entries[2] = (lg_filter_factory_entry_t){&origin_ops, "origin", NULL, 0};
    conn = fake_hcm_conn(&hcm, entries, 3);
}

static void teardown(void)
{
    free(conn);
    lg_cache_destroy_config(cache);
}

static int body_is(const fake_codec_t *fc, const char *body)
{
    return fc->body_len == strlen(body) && (fc->body_len == 0 || memcmp(fc->body, body, fc->body_len) == 0);
}

/* ---- tests ------------------------------------------------------------------------------- */

LG_TEST(test_miss_then_hit)
{
    setup();
    fake_codec_t fc;
    request(&fc);
    respond(200, "max-age=60", NULL, "cached body");
    LG_EXPECT_INT(fc.status, 200);
    LG_EXPECT_STR(client_age, "");
    fake_codec_dispose(&fc);
    request(&fc);
    LG_EXPECT(origin == NULL); /* answered from the cache */
    LG_EXPECT_INT(origin_requests, 1);
    LG_EXPECT_INT(fc.status, 200);
    LG_EXPECT_STR(client_age, "0");
    LG_EXPECT(body_is(&fc, "cached body"));
    LG_EXPECT_INT(fc.data_end, 1);
    LG_EXPECT_INT(fc.released, 1);
    fake_codec_dispose(&fc);
    teardown();
}

/* Stores a stale "version one" with ETag "v1", then sends the request that must validate it. */
static void stale_entry_then_request(fake_codec_t *fc)
{
    request(fc);
    respond(200, "max-age=0", "\"v1\"", "version one");
    fake_codec_dispose(fc);
    request(fc);
    LG_EXPECT(origin != NULL);
}

LG_TEST(test_304_becomes_the_stored_response)
{
    setup();
    fake_codec_t fc;
    stale_entry_then_request(&fc);
    LG_EXPECT_STR(origin_inm, "\"v1\"");
    respond(304, "max-age=60", "\"v1\"", "");
    LG_EXPECT_INT(fc.status, 200);
    LG_EXPECT_INT(fc.head_end, 0);
    LG_EXPECT(body_is(&fc, "version one"));
    LG_EXPECT_STR(client_age, "0");
    LG_EXPECT_STR(client_etag, "\"v1\"");
    fake_codec_dispose(&fc);
    /* the 304's max-age renewed the entry: a hit now */
    request(&fc);
    LG_EXPECT(origin == NULL);
    LG_EXPECT(body_is(&fc, "version one"));
    LG_EXPECT_INT(origin_requests, 2);
    fake_codec_dispose(&fc);
    teardown();
}

LG_TEST(test_new_200_replaces_the_entry)
{
    setup();
    fake_codec_t fc;
    stale_entry_then_request(&fc);
    respond(200, "max-age=60", "\"v2\"", "version two");
    LG_EXPECT(body_is(&fc, "version two"));
    fake_codec_dispose(&fc);
    request(&fc);
    LG_EXPECT(origin == NULL);
    LG_EXPECT(body_is(&fc, "version two"));
    LG_EXPECT_STR(client_etag, "\"v2\"");
    fake_codec_dispose(&fc);
    teardown();
}

LG_TEST(test_no_store_is_not_stored)
{
    setup();
    fake_codec_t fc;
    request(&fc);
    respond(200, "no-store, max-age=60", NULL, "secret");
    fake_codec_dispose(&fc);
    request(&fc);
    LG_EXPECT(origin != NULL);
    respond(200, "no-store", NULL, "secret");
    LG_EXPECT_INT(origin_requests, 2);
    fake_codec_dispose(&fc);
    teardown();
}

int main(void)
{
    fake_hcm_init(&hcm);
    LG_RUN(test_miss_then_hit);
    LG_RUN(test_304_becomes_the_stored_response);
    LG_RUN(test_new_200_replaces_the_entry);
    LG_RUN(test_no_store_is_not_stored);
    fake_hcm_dispose(&hcm);
    return LG_TEST_END();
}
