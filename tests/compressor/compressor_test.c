/*
 * Unit tests of the compressor filter (filters/compressor/): Accept-Encoding negotiation with
 * q-values, content-type matching, the gzip stream (decoded back with zlib's inflate), and the
 * response decision table driven through the real connection manager: the compressor in front of
 * a scripted terminal filter that answers, a fake codec recording what reaches the client.
 */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "conn_manager.h"
#include "fake_codec.h"
#include "envoy/extensions/compression/gzip/compressor/v3/gzip.pb-c.h"
#include "envoy/extensions/filters/http/compressor/v3/compressor.pb-c.h"
#include "filters/compressor/compressor.h"
#include "lg_test.h"
#include "worker.h"

/* ---- negotiation ------------------------------------------------------------------------- */

static lg_accept_encoding_t nego(const char *ae, int allowed, int *use)
{
    return lg_compressor_negotiate(h2o_iovec_init(ae, strlen(ae)), "gzip", allowed, 0, use);
}

LG_TEST(test_accept_encoding_q_values)
{
    int use;
    LG_EXPECT_INT(nego("gzip", 1, &use), LG_ACCEPT_CODING);
    LG_EXPECT_INT(use, 1);
    LG_EXPECT_INT(nego("deflate, GZIP;q=0.5", 1, &use), LG_ACCEPT_CODING);
    LG_EXPECT_INT(use, 1);
    LG_EXPECT_INT(nego("gzip;q=0", 1, &use), LG_ACCEPT_NOT_VALID);
    LG_EXPECT_INT(use, 0);
    LG_EXPECT_INT(nego("gzip;q=0.000, *", 1, &use), LG_ACCEPT_NOT_VALID); /* refused stays refused */
    LG_EXPECT_INT(use, 0);
    LG_EXPECT_INT(nego("*", 1, &use), LG_ACCEPT_WILDCARD);
    LG_EXPECT_INT(use, 1);
    LG_EXPECT_INT(nego("identity;q=1, gzip;q=0.5", 1, &use), LG_ACCEPT_IDENTITY);
    LG_EXPECT_INT(use, 0);
    LG_EXPECT_INT(nego("gzip;q=0.5, identity;q=0.5", 1, &use), LG_ACCEPT_CODING); /* tie: first wins */
    LG_EXPECT_INT(nego("br", 1, &use), LG_ACCEPT_NOT_VALID);
    LG_EXPECT_INT(nego("", 1, &use), LG_ACCEPT_NOT_VALID);
    LG_EXPECT_INT(nego(" , ,", 1, &use), LG_ACCEPT_NOT_VALID);
    LG_EXPECT_INT(nego("gzip;q=abc", 1, &use), LG_ACCEPT_NOT_VALID); /* an unparsable q drops the element */
    LG_EXPECT_INT(nego("gzip;q=abc, *;q=0.1", 1, &use), LG_ACCEPT_WILDCARD);
    LG_EXPECT_INT(nego("gzip ; Q = 0.8", 1, &use), LG_ACCEPT_CODING);
    LG_EXPECT_INT(nego("gzip;level=1", 1, &use), LG_ACCEPT_CODING); /* other parameters ignored */
    LG_EXPECT_INT(nego("gzip", 0, &use), LG_ACCEPT_NOT_VALID);      /* content type not ours */
    LG_EXPECT_INT(use, 0);
}

LG_TEST(test_content_type_and_lists)
{
    h2o_iovec_t types[] = {LG_LIT("text/html"), LG_LIT("application/json")};
    LG_EXPECT(lg_compressor_content_type_allowed(LG_LIT("text/html"), types, 2));
    LG_EXPECT(lg_compressor_content_type_allowed(LG_LIT("Text/HTML; charset=utf-8"), types, 2));
    LG_EXPECT(lg_compressor_content_type_allowed(LG_LIT(" application/json ;x=y"), types, 2));
    LG_EXPECT(!lg_compressor_content_type_allowed(LG_LIT("text/plain"), types, 2));
    LG_EXPECT(!lg_compressor_content_type_allowed(LG_LIT("text/htmlx"), types, 2));
    LG_EXPECT(lg_compressor_content_type_allowed(h2o_iovec_init(NULL, 0), types, 2)); /* absent: allowed */
    LG_EXPECT(lg_compressor_list_has(LG_LIT("Origin, accept-encoding"), "accept-encoding"));
    LG_EXPECT(lg_compressor_list_has(LG_LIT("private,no-transform"), "no-transform"));
    LG_EXPECT(!lg_compressor_list_has(LG_LIT("no-transformx"), "no-transform"));
}

/* ---- the gzip stream ------------------------------------------------------------------------ */

/* Inflates a whole gzip member; returns the length, or -1 when it is not complete and valid. */
static long gunzip(const char *in, size_t len, char *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return -1;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    int rc = inflate(&z, Z_FINISH);
    long n = (long)(cap - z.avail_out);
    inflateEnd(&z);
    return rc == Z_STREAM_END ? n : -1;
}


LG_TEST(test_gzip_frames_decode_as_they_come)
{
    lg_zstream_t g;
    LG_EXPECT_INT(lg_zstream_deflate_init(&g, Z_DEFAULT_COMPRESSION, 12, 5, Z_DEFAULT_STRATEGY, 4096), 0);
    static char all[1 << 18], plain[1 << 18];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(plain); ++i)
        plain[i] = (char)("abcdefgh"[i % 8] + (i / 4096) % 3);
    lg_data_t out;
    /* Several frames, each flushed: what arrived so far inflates without waiting for the end. */
    for (size_t off = 0; off < sizeof(plain); off += 50000) {
        size_t take = sizeof(plain) - off < 50000 ? sizeof(plain) - off : 50000;
        LG_EXPECT_INT(lg_zstream_run(&g, plain + off, take, 0, UINT64_MAX, &out), 0);
        LG_EXPECT(out.len > 0);
        memcpy(all + n, out.base, out.len);
        n += out.len;
        z_stream z;
        memset(&z, 0, sizeof(z));
        inflateInit2(&z, 15 + 16);
        static char partial[1 << 18];
        z.next_in = (Bytef *)all;
        z.avail_in = (uInt)n;
        z.next_out = (Bytef *)partial;
        z.avail_out = sizeof(partial);
        inflate(&z, Z_SYNC_FLUSH);
        LG_EXPECT_INT(sizeof(partial) - z.avail_out, off + take);
        inflateEnd(&z);
    }
    LG_EXPECT_INT(lg_zstream_run(&g, "", 0, 1, UINT64_MAX, &out), 0);
    memcpy(all + n, out.base, out.len);
    n += out.len;
    static char back[1 << 18];
    LG_EXPECT_INT(gunzip(all, n, back, sizeof(back)), sizeof(plain));
    LG_EXPECT(memcmp(back, plain, sizeof(plain)) == 0);
    LG_EXPECT((unsigned char)all[0] == 0x1f && (unsigned char)all[1] == 0x8b); /* a gzip member */
    lg_zstream_dispose(&g);
}

/* ---- the filter through the connection manager --------------------------------------------- */

/* The terminal filter: holds the request and records the body it gets; the test answers. */
static lg_filter_t *responder;
static char upstream_body[1 << 16];
static size_t upstream_len;
static lg_filter_headers_status_t r_decode_headers(lg_filter_t *f, lg_request_head_t *h, int end)
{
    responder = f;
    return LG_FILTER_HEADERS_STOP_ITERATION;
}
static lg_filter_data_status_t r_decode_data(lg_filter_t *f, lg_data_t *d, int end)
{
    memcpy(upstream_body + upstream_len, d->base, d->len);
    upstream_len += d->len;
    return LG_FILTER_DATA_STOP_NO_BUFFER;
}
static const lg_http_filter_ops_t responder_ops = {.name = "responder", .decode_headers = r_decode_headers,
                                                   .decode_data = r_decode_data};

static lg_worker_t worker;
static lg_hcm_config_t config;
static lg_listener_t listener;
static lg_filter_chain_t chain;
static lg_snapshot_t snapshot;
static lg_filter_factory_entry_t entries[2];
static lg_compressor_config_t *gzcfg;

/* A Compressor message with a gzip library named "lib" and the given options. */
static lg_compressor_config_t *make_config(int etag_off, int with_request)
{
    Envoy__Extensions__Compression__Gzip__Compressor__V3__Gzip gz = ENVOY__EXTENSIONS__COMPRESSION__GZIP__COMPRESSOR__V3__GZIP__INIT;
    uint8_t packed[64];
    size_t plen = protobuf_c_message_pack(&gz.base, packed);
    Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
    any.type_url = "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip";
    any.value.data = packed;
    any.value.len = plen;
    Envoy__Config__Core__V3__TypedExtensionConfig lib = ENVOY__CONFIG__CORE__V3__TYPED_EXTENSION_CONFIG__INIT;
    lib.name = "lib";
    lib.typed_config = &any;
    Envoy__Extensions__Filters__Http__Compressor__V3__Compressor c = ENVOY__EXTENSIONS__FILTERS__HTTP__COMPRESSOR__V3__COMPRESSOR__INIT;
    c.compressor_library = &lib;
    Envoy__Extensions__Filters__Http__Compressor__V3__Compressor__ResponseDirectionConfig rs =
        ENVOY__EXTENSIONS__FILTERS__HTTP__COMPRESSOR__V3__COMPRESSOR__RESPONSE_DIRECTION_CONFIG__INIT;
    rs.disable_on_etag_header = etag_off;
    c.response_direction_config = &rs;
    Envoy__Extensions__Filters__Http__Compressor__V3__Compressor__RequestDirectionConfig rq =
        ENVOY__EXTENSIONS__FILTERS__HTTP__COMPRESSOR__V3__COMPRESSOR__REQUEST_DIRECTION_CONFIG__INIT;
    if (with_request)
        c.request_direction_config = &rq;
    lg_filter_config_ctx_t ctx = {.stat_prefix = "http.test."};
    lg_error_t err;
    memset(&err, 0, sizeof(err));
    lg_compressor_config_t *cfg = lg_compressor_create_config(&c.base, &ctx, &err);
    LG_EXPECT(cfg != NULL);
    return cfg;
}

static uint64_t stat(const char *name)
{
    lg_stat_id_t id;
    return lg_stats_find(name, &id) == 0 ? lg_stats_value(id) : (uint64_t)-1;
}

static lg_hcm_conn_t *conn;

static lg_stream_t *request(fake_codec_t *fc, const char *method, const char *accept_encoding, int end_stream)
{
    fake_codec_init(fc);
    entries[0] = (lg_filter_factory_entry_t){&lg_compressor_ops, "envoy.filters.http.compressor", gzcfg, 0};
    entries[1] = (lg_filter_factory_entry_t){&responder_ops, "responder", NULL, 0};
    config.filters = entries;
    config.n_filters = 2;
    config.server_name = "envoy";
    conn = fake_conn_new(&worker, &snapshot, &listener, &chain, &config);
    lg_stream_t *s = lg_hcm_stream_new(conn, &fc->super);
    lg_request_head_t *req = fake_request(s, method);
    if (accept_encoding != NULL)
        lg_headers_add(lg_stream_pool(s), &req->headers, LG_LIT("accept-encoding"),
                       h2o_iovec_init(accept_encoding, strlen(accept_encoding)));
    upstream_len = 0;
    lg_hcm_on_headers(s, req, end_stream);
    return s;
}

/* Answers with `status`, the header pairs in `hdrs` (NULL-terminated), and `body` unless NULL. */
static void respond(lg_stream_t *s, int status, const char *const *hdrs, const char *body, int64_t content_length)
{
    lg_response_head_t *r = h2o_mem_alloc_pool(lg_stream_pool(s), sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->status = status;
    r->content_length = content_length;
    for (size_t i = 0; hdrs != NULL && hdrs[i] != NULL; i += 2)
        lg_headers_add(lg_stream_pool(s), &r->headers, h2o_iovec_init(hdrs[i], strlen(hdrs[i])),
                       h2o_iovec_init(hdrs[i + 1], strlen(hdrs[i + 1])));
    lg_filter_encode_headers(responder, r, body == NULL);
    if (body != NULL)
        lg_filter_encode_data(responder, body, strlen(body), 1);
}

static const char *hdr(fake_codec_t *fc, const char *name)
{
    static char buf[256];
    const h2o_iovec_t *v = lg_headers_get(&fc->head.headers, name, strlen(name));
    if (v == NULL)
        return NULL;
    snprintf(buf, sizeof(buf), "%.*s", (int)v->len, v->base);
    return buf;
}

static void finish(fake_codec_t *fc)
{
    fake_codec_dispose(fc);
    free(conn);
}

#define BODY100 "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789"

/* One row of the decision table: request, response, and whether the body went out gzipped. */
static void expect_row(const char *method, const char *ae, int status, const char *const *hdrs, const char *body,
                       int64_t cl, int compressed, const char *vary)
{
    fake_codec_t fc;
    lg_stream_t *s = request(&fc, method, ae, 1);
    respond(s, status, hdrs, body, cl);
    LG_EXPECT_INT(fc.head.status, status);
    if (compressed) {
        LG_EXPECT_STR(hdr(&fc, "content-encoding"), "gzip");
        LG_EXPECT(hdr(&fc, "content-length") == NULL);
        LG_EXPECT_INT(fc.head.content_length, -1);
        static char back[4096];
        LG_EXPECT_INT(gunzip(fc.body, fc.body_len, back, sizeof(back)), strlen(body));
    } else {
        const char *ce = hdr(&fc, "content-encoding");
        LG_EXPECT(ce == NULL || strcmp(ce, "gzip") != 0 || (hdrs != NULL && strcmp(hdrs[0], "content-encoding") == 0));
        if (body != NULL) {
            LG_EXPECT_INT(fc.body_len, strlen(body));
            LG_EXPECT(memcmp(fc.body, body, fc.body_len) == 0);
        }
    }
    if (vary == NULL)
        LG_EXPECT(hdr(&fc, "vary") == NULL);
    else
        LG_EXPECT_STR(hdr(&fc, "vary"), vary);
    finish(&fc);
}

LG_TEST(test_decision_table)
{
    const char *html[] = {"content-type", "text/html", NULL};
    const char *html_cl100[] = {"content-type", "text/html", "content-length", "100", NULL};
    const char *cl29[] = {"content-type", "text/html", "content-length", "29", NULL};
    const char *cl30[] = {"content-type", "text/plain", "content-length", "30", NULL};
    const char *png[] = {"content-type", "image/png", NULL};
    const char *no_transform[] = {"content-type", "text/html", "cache-control", "public, No-Transform", NULL};
    const char *br[] = {"content-encoding", "br", "content-type", "text/html", NULL};
    const char *vary_origin[] = {"content-type", "text/html", "vary", "Origin", NULL};
    const char *vary_ae[] = {"content-type", "text/html", "vary", "accept-encoding", NULL};

    uint64_t used = stat("http.test.compressor.lib.gzip.response.header_compressor_used");
    expect_row("GET", "gzip, deflate", 200, html_cl100, BODY100, 100, 1, "Accept-Encoding");
    LG_EXPECT_INT(stat("http.test.compressor.lib.gzip.response.header_compressor_used"), used + 1);
    expect_row("GET", "gzip", 200, NULL, BODY100, -1, 1, "Accept-Encoding"); /* no content type: allowed */
    uint64_t none = stat("http.test.compressor.lib.gzip.response.no_accept_header");
    expect_row("GET", NULL, 200, html, BODY100, -1, 0, "Accept-Encoding");
    LG_EXPECT_INT(stat("http.test.compressor.lib.gzip.response.no_accept_header"), none + 1);
    uint64_t bad = stat("http.test.compressor.lib.gzip.response.header_not_valid");
    expect_row("GET", "gzip;q=0", 200, html, BODY100, -1, 0, "Accept-Encoding");
    LG_EXPECT_INT(stat("http.test.compressor.lib.gzip.response.header_not_valid"), bad + 1);
    uint64_t ident = stat("http.test.compressor.lib.gzip.response.header_identity");
    expect_row("GET", "identity, gzip;q=0.5", 200, html, BODY100, -1, 0, "Accept-Encoding");
    LG_EXPECT_INT(stat("http.test.compressor.lib.gzip.response.header_identity"), ident + 1);
    uint64_t wild = stat("http.test.compressor.lib.gzip.response.header_wildcard");
    expect_row("GET", "*", 200, html, BODY100, -1, 1, "Accept-Encoding");
    LG_EXPECT_INT(stat("http.test.compressor.lib.gzip.response.header_wildcard"), wild + 1);
    uint64_t small = stat("http.test.compressor.lib.gzip.response.content_length_too_small");
    expect_row("GET", "gzip", 200, cl29, "01234567890123456789012345678", 29, 0, NULL);
    LG_EXPECT_INT(stat("http.test.compressor.lib.gzip.response.content_length_too_small"), small + 1);
    expect_row("GET", "gzip", 200, cl30, "012345678901234567890123456789", 30, 1, "Accept-Encoding");
    expect_row("GET", "gzip", 200, png, BODY100, -1, 0, NULL);
    expect_row("GET", "gzip", 200, no_transform, BODY100, -1, 0, NULL);
    expect_row("GET", "gzip", 200, br, BODY100, -1, 0, NULL);
    expect_row("GET", "gzip", 200, vary_origin, BODY100, -1, 1, "Origin, Accept-Encoding");
    expect_row("GET", "gzip", 200, vary_ae, BODY100, -1, 1, "accept-encoding");
    expect_row("HEAD", "gzip", 200, html_cl100, NULL, 100, 0, "Accept-Encoding");
    expect_row("GET", "gzip", 204, html, NULL, -1, 0, "Accept-Encoding");
    expect_row("GET", "gzip", 304, html, BODY100, -1, 0, "Accept-Encoding");
}

LG_TEST(test_etag)
{
    const char *strong[] = {"content-type", "text/html", "etag", "\"abc\"", NULL};
    const char *weak[] = {"content-type", "text/html", "etag", "W/\"abc\"", NULL};
    fake_codec_t fc;
    respond(request(&fc, "GET", "gzip", 1), 200, strong, BODY100, -1);
    LG_EXPECT_STR(hdr(&fc, "content-encoding"), "gzip");
    LG_EXPECT(hdr(&fc, "etag") == NULL); /* a strong tag does not name the gzipped bytes */
    finish(&fc);
    respond(request(&fc, "GET", "gzip", 1), 200, weak, BODY100, -1);
    LG_EXPECT_STR(hdr(&fc, "etag"), "W/\"abc\"");
    finish(&fc);

    lg_compressor_config_t *keep = gzcfg;
    gzcfg = make_config(1, 0);
    uint64_t n = stat("http.test.compressor.lib.gzip.response.not_compressed_etag");
    respond(request(&fc, "GET", "gzip", 1), 200, weak, BODY100, -1);
    LG_EXPECT(hdr(&fc, "content-encoding") == NULL);
    LG_EXPECT_INT(stat("http.test.compressor.lib.gzip.response.not_compressed_etag"), n + 1);
    finish(&fc);
    lg_compressor_destroy_config(gzcfg);
    gzcfg = keep;
}

LG_TEST(test_streamed_body_ends_at_trailers)
{
    const char *html[] = {"content-type", "text/html", NULL};
    fake_codec_t fc;
    lg_stream_t *s = request(&fc, "GET", "gzip", 1);
    respond(s, 200, html, NULL, -1);
    /* respond() ended the stream without a body: a new exchange for the streamed case. */
    finish(&fc);
    s = request(&fc, "GET", "gzip", 1);
    lg_response_head_t *r = h2o_mem_alloc_pool(lg_stream_pool(s), sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->status = 200;
    r->content_length = -1;
    lg_headers_add(lg_stream_pool(s), &r->headers, LG_LIT("content-type"), LG_LIT("text/plain"));
    lg_filter_encode_headers(responder, r, 0);
    lg_filter_encode_data(responder, "first part, ", 12, 0);
    size_t after_first = fc.body_len;
    LG_EXPECT(after_first > 0); /* flushed, not held */
    lg_filter_encode_data(responder, "second part", 11, 0);
    lg_headers_t *tr = h2o_mem_alloc_pool(lg_stream_pool(s), sizeof(*tr));
    memset(tr, 0, sizeof(*tr));
    lg_filter_encode_trailers(responder, tr);
    LG_EXPECT_INT(fc.trailers, 1);
    char back[64];
    LG_EXPECT_INT(gunzip(fc.body, fc.body_len, back, sizeof(back)), 23);
    LG_EXPECT(memcmp(back, "first part, second part", 23) == 0);
    LG_EXPECT_INT(fc.released, 1);
    finish(&fc);
}

LG_TEST(test_request_direction)
{
    lg_compressor_config_t *keep = gzcfg;
    gzcfg = make_config(0, 1);
    fake_codec_t fc;
    lg_stream_t *s = request(&fc, "POST", NULL, 0);
    const lg_request_head_t *req = lg_filter_request(responder);
    const h2o_iovec_t *ce = lg_headers_get(&req->headers, "content-encoding", 16);
    LG_EXPECT(ce != NULL && ce->len == 4 && memcmp(ce->base, "gzip", 4) == 0);
    lg_hcm_on_data(s, BODY100, 100, 0);
    lg_hcm_on_data(s, BODY100, 100, 1);
    char back[256];
    LG_EXPECT_INT(gunzip(upstream_body, upstream_len, back, sizeof(back)), 200);
    LG_EXPECT_INT(stat("http.test.compressor.lib.gzip.request.compressed"), 1);
    LG_EXPECT_INT(stat("http.test.compressor.lib.gzip.request.total_uncompressed_bytes"), 200);
    respond(s, 200, NULL, NULL, -1);
    finish(&fc);
    lg_compressor_destroy_config(gzcfg);
    gzcfg = keep;
}

LG_TEST(test_config_errors)
{
    Envoy__Extensions__Filters__Http__Compressor__V3__Compressor c = ENVOY__EXTENSIONS__FILTERS__HTTP__COMPRESSOR__V3__COMPRESSOR__INIT;
    lg_error_t err;
    memset(&err, 0, sizeof(err));
    LG_EXPECT(lg_compressor_create_config(&c.base, NULL, &err) == NULL);
    LG_EXPECT_CONTAINS(err.msg, "compressor_library");
}

int main(void)
{
    worker.loop = h2o_evloop_create();
    worker.stats = lg_stats_cells_new();
    lg_stats_attach(worker.stats);
    h2o_linklist_init_anchor(&worker.connections);
    worker.rng = 42;
    config.stats = lg_hcm_stats_for("test");
    atomic_init(&snapshot.refcnt, 1);
    gzcfg = make_config(0, 0);
    LG_RUN(test_accept_encoding_q_values);
    LG_RUN(test_content_type_and_lists);
    LG_RUN(test_gzip_frames_decode_as_they_come);
    LG_RUN(test_decision_table);
    LG_RUN(test_etag);
    LG_RUN(test_streamed_body_ends_at_trailers);
    LG_RUN(test_request_direction);
    LG_RUN(test_config_errors);
    lg_compressor_destroy_config(gzcfg);
    free((void *)config.stats);
    free(worker.stats);
    h2o_evloop_destroy(worker.loop);
    return LG_TEST_END();
}
