/*
 * The compressor filter's per-stream hooks (envoy.filters.http.compressor): see compressor.h.
 *
 * Request side: remembers Accept-Encoding (and removes it when configured), and compresses the
 * request body when request_direction_config enables it. Response side: decides on the head, in
 * Envoy's order so that the same stats move (content_length_too_small, not_compressed_etag,
 * the header_* outcome of Accept-Encoding, compressed / not_compressed), rewrites the head
 * (Content-Encoding, no Content-Length, strong ETag dropped, Vary) and then compresses each data
 * frame as it passes, finishing the gzip stream on the last frame or before the trailers.
 * Worker thread only.
 */
#include <string.h>

#include "envoy/extensions/filters/http/compressor/v3/compressor.pb-c.h" /* the ops table's descriptors */
#include "filters/compressor/compressor.h"
#include "log.h"
#include "worker.h"

/* One direction's body: compressed (on) or passed through, finished once the gzip trailer went. */
typedef struct st_compressor_body_t {
    lg_zstream_t gz;
    int on, finished;
} compressor_body_t;

typedef struct st_compressor_state_t {
    h2o_iovec_t accept_encoding; /* the request's, all fields joined; base NULL when absent */
    compressor_body_t request, response;
} compressor_state_t;

static lg_stats_cells_t *cells(lg_filter_t *f)
{
    return lg_filter_worker(f)->stats;
}

/* True when some field `name` lists `token`. */
static int headers_have_token(const lg_headers_t *h, const char *name, size_t name_len, const char *token)
{
    for (ssize_t i = lg_headers_find(h, name, name_len, 0); i >= 0; i = lg_headers_find(h, name, name_len, (size_t)i + 1))
        if (lg_compressor_list_has(h->entries[i].value, token))
            return 1;
    return 0;
}

static h2o_iovec_t header_or_empty(const lg_headers_t *h, const char *name, size_t name_len)
{
    const h2o_iovec_t *v = lg_headers_get(h, name, name_len);
    return v != NULL ? *v : h2o_iovec_init(NULL, 0);
}

/* Envoy's isMinimumContentLength: a known length must reach the minimum; an unknown one passes. */
static int long_enough(lg_filter_t *f, const lg_compressor_direction_t *d, const lg_headers_t *h, int64_t known)
{
    int64_t len = known;
    if (len < 0) {
        const h2o_iovec_t *cl = lg_headers_get(h, "content-length", 14);
        if (cl == NULL)
            return 1;
        len = 0;
        for (size_t i = 0; i < cl->len; ++i) {
            if (cl->base[i] < '0' || cl->base[i] > '9' || len > INT64_MAX / 10 - 1) {
                len = -1;
                break;
            }
            len = len * 10 + (cl->base[i] - '0');
        }
        if (cl->len == 0)
            len = -1;
    }
    if (len >= 0 && (uint64_t)len >= d->min_content_length)
        return 1;
    lg_stats_inc(cells(f), d->stats.content_length_too_small);
    return 0;
}

/* A message already carried in some compressed transfer coding is left alone (Envoy's
 * isTransferEncodingAllowed). */
static int transfer_encoding_allowed(const lg_headers_t *h)
{
    static const char *const codings[] = {"gzip", "br", "deflate", "compress", "zstd"};
    for (size_t i = 0; i < sizeof(codings) / sizeof(codings[0]); ++i)
        if (headers_have_token(h, "transfer-encoding", 17, codings[i]))
            return 0;
    return 1;
}

static int content_type_allowed(const lg_compressor_direction_t *d, const lg_headers_t *h)
{
    return lg_compressor_content_type_allowed(header_or_empty(h, "content-type", 12), d->content_types,
                                              d->n_content_types);
}

static const lg_compressor_per_route_t *per_route(lg_filter_t *f)
{
    return lg_filter_per_route_config(f);
}

static int response_enabled(lg_filter_t *f)
{
    const lg_compressor_config_t *c = f->config;
    const lg_compressor_per_route_t *r = per_route(f);
    return r != NULL && r->has_enabled ? r->enabled : c->response.enabled;
}

static void start_body(lg_filter_t *f, compressor_body_t *b)
{
    const lg_compressor_config_t *c = f->config;
    const lg_gzip_params_t *p = &c->gzip;
    if (lg_zstream_deflate_init(&b->gz, p->level, p->window_bits, p->mem_level, p->strategy, p->chunk_size) != 0)
        lg_fatal("zlib: deflateInit2 failed (out of memory)");
    b->on = 1;
}

/* Compresses one frame of a compressed body in place of the original; stats as Envoy counts them. */
static lg_filter_data_status_t compress_frame(lg_filter_t *f, compressor_body_t *b, const lg_compressor_common_stats_t *st,
                                              lg_data_t *data, int end_stream)
{
    if (!b->on || b->finished)
        return LG_FILTER_DATA_CONTINUE;
    b->finished = end_stream;
    lg_stats_add(cells(f), st->total_uncompressed_bytes, data->len);
    lg_data_t out;
    if (lg_zstream_run(&b->gz, data->base, data->len, end_stream, UINT64_MAX, &out) != 0) {
        lg_filter_send_local_reply(f, 500, NULL, NULL, "compressor_error");
        return LG_FILTER_DATA_STOP_NO_BUFFER;
    }
    lg_stats_add(cells(f), st->total_compressed_bytes, out.len);
    *data = out;
    return LG_FILTER_DATA_CONTINUE;
}

/* Trailers end a body that had no last frame: the gzip trailer goes out before them. Returns 1
 * with the bytes to add in *out. */
static int finish_at_trailers(lg_filter_t *f, compressor_body_t *b, const lg_compressor_common_stats_t *st, lg_data_t *out)
{
    if (!b->on || b->finished)
        return 0;
    *out = (lg_data_t){"", 0};
    return compress_frame(f, b, st, out, 1) == LG_FILTER_DATA_CONTINUE;
}

static const lg_compressor_common_stats_t *request_stats(lg_filter_t *f)
{
    return &((const lg_compressor_config_t *)f->config)->request.stats;
}

static const lg_compressor_common_stats_t *response_stats(lg_filter_t *f)
{
    return &((const lg_compressor_config_t *)f->config)->response.stats;
}

/* ---- request ------------------------------------------------------------------------------ */

static void remember_accept_encoding(lg_filter_t *f, compressor_state_t *st, const lg_headers_t *h)
{
    size_t total = 0, n = 0;
    ssize_t i;
    for (i = lg_headers_find(h, "accept-encoding", 15, 0); i >= 0; i = lg_headers_find(h, "accept-encoding", 15, (size_t)i + 1))
        total += h->entries[i].value.len, ++n;
    if (n == 0)
        return;
    if (n == 1) {
        st->accept_encoding = *lg_headers_get(h, "accept-encoding", 15);
        return;
    }
    /* Repeated fields mean one comma-separated list. */
    char *buf = h2o_mem_alloc_pool(lg_filter_pool(f), total + n), *p = buf;
    for (i = lg_headers_find(h, "accept-encoding", 15, 0); i >= 0; i = lg_headers_find(h, "accept-encoding", 15, (size_t)i + 1)) {
        if (p != buf)
            *p++ = ',';
        memcpy(p, h->entries[i].value.base, h->entries[i].value.len);
        p += h->entries[i].value.len;
    }
    st->accept_encoding = h2o_iovec_init(buf, (size_t)(p - buf));
}

static lg_filter_headers_status_t decode_headers(lg_filter_t *f, lg_request_head_t *head, int end_stream)
{
    const lg_compressor_config_t *c = f->config;
    compressor_state_t *st = f->state;
    remember_accept_encoding(f, st, &head->headers);
    const lg_compressor_per_route_t *r = per_route(f);
    int remove_ae = r != NULL && r->has_remove_accept_encoding ? r->remove_accept_encoding : c->remove_accept_encoding_header;
    if (response_enabled(f) && remove_ae)
        lg_headers_remove(&head->headers, "accept-encoding", 15);

    const lg_compressor_direction_t *d = &c->request;
    if (!end_stream && d->enabled && lg_headers_get(&head->headers, "upgrade", 7) == NULL &&
        long_enough(f, d, &head->headers, head->content_length) && content_type_allowed(d, &head->headers) &&
        lg_headers_get(&head->headers, "content-encoding", 16) == NULL && transfer_encoding_allowed(&head->headers)) {
        lg_headers_remove(&head->headers, "content-length", 14);
        head->content_length = -1;
        lg_headers_set(lg_filter_pool(f), &head->headers, LG_LIT("content-encoding"), LG_LIT("gzip"));
        lg_stats_inc(cells(f), d->stats.compressed);
        start_body(f, &st->request);
    } else {
        lg_stats_inc(cells(f), d->stats.not_compressed);
    }
    return LG_FILTER_HEADERS_CONTINUE;
}

static lg_filter_data_status_t decode_data(lg_filter_t *f, lg_data_t *data, int end_stream)
{
    compressor_state_t *st = f->state;
    return compress_frame(f, &st->request, request_stats(f), data, end_stream);
}

static lg_filter_trailers_status_t decode_trailers(lg_filter_t *f, lg_headers_t *trailers)
{
    compressor_state_t *st = f->state;
    lg_data_t last;
    if (finish_at_trailers(f, &st->request, request_stats(f), &last))
        lg_filter_add_decoded_data(f, last.base, last.len);
    return LG_FILTER_TRAILERS_CONTINUE;
}

/* ---- response ----------------------------------------------------------------------------- */

/* Envoy's isAcceptEncodingAllowed for a chain with this one compressor: moves one header_* stat. */
static int accept_encoding_allows(lg_filter_t *f, const lg_headers_t *h)
{
    const lg_compressor_config_t *c = f->config;
    compressor_state_t *st = f->state;
    const lg_compressor_response_stats_t *rs = &c->response_stats;
    if (st->accept_encoding.base == NULL) {
        lg_stats_inc(cells(f), rs->no_accept_header);
        return 0;
    }
    int use;
    switch (lg_compressor_negotiate(st->accept_encoding, "gzip", content_type_allowed(&c->response, h), c->choose_first, &use)) {
    case LG_ACCEPT_CODING:
        lg_stats_inc(cells(f), rs->header_compressor_used);
        break;
    case LG_ACCEPT_IDENTITY:
        lg_stats_inc(cells(f), rs->header_identity);
        break;
    case LG_ACCEPT_WILDCARD:
        lg_stats_inc(cells(f), rs->header_wildcard);
        break;
    default:
        lg_stats_inc(cells(f), rs->header_not_valid);
        break;
    }
    return use;
}

static int etag_allowed(lg_filter_t *f, const lg_headers_t *h)
{
    const lg_compressor_config_t *c = f->config;
    if (c->disable_on_etag_header && lg_headers_get(h, "etag", 4) != NULL) {
        lg_stats_inc(cells(f), c->response_stats.not_compressed_etag);
        return 0;
    }
    return 1;
}

/* A strong ETag no longer names the bytes sent: it goes; a weak one stays (Envoy does the same and
 * does not rewrite tags). */
static void drop_strong_etag(lg_headers_t *h)
{
    const h2o_iovec_t *e = lg_headers_get(h, "etag", 4);
    if (e != NULL && e->len > 2 && !((e->base[0] == 'W' || e->base[0] == 'w') && e->base[1] == '/'))
        lg_headers_remove(h, "etag", 4);
}

static void add_vary(lg_filter_t *f, lg_headers_t *h)
{
    if (headers_have_token(h, "vary", 4, "accept-encoding"))
        return;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    ssize_t first = lg_headers_find(h, "vary", 4, 0);
    if (first < 0 || lg_headers_find(h, "vary", 4, (size_t)first + 1) >= 0) {
        lg_headers_add(pool, h, LG_LIT("vary"), LG_LIT("Accept-Encoding"));
        return;
    }
    h2o_iovec_t old = h->entries[first].value;
    char *v = h2o_mem_alloc_pool(pool, old.len + sizeof(", Accept-Encoding"));
    memcpy(v, old.base, old.len);
    memcpy(v + old.len, ", Accept-Encoding", sizeof(", Accept-Encoding") - 1);
    h->entries[first].value = h2o_iovec_init(v, old.len + sizeof(", Accept-Encoding") - 1);
}

static lg_filter_headers_status_t encode_headers(lg_filter_t *f, lg_response_head_t *head, int end_stream)
{
    const lg_compressor_config_t *c = f->config;
    compressor_state_t *st = f->state;
    lg_headers_t *h = &head->headers;
    const lg_request_head_t *req = lg_filter_request(f);
    /* No body follows a HEAD, 204 or 304 whatever the head says: nothing to compress. */
    int no_body = end_stream || head->status == 204 || head->status == 304 ||
                  (req != NULL && req->method.len == 4 && memcmp(req->method.base, "HEAD", 4) == 0);

    int big_enough = response_enabled(f) && long_enough(f, &c->response, h, head->content_length);
    int compressible = big_enough && lg_headers_get(h, "upgrade", 7) == NULL && content_type_allowed(&c->response, h) &&
                       !headers_have_token(h, "cache-control", 13, "no-transform") && etag_allowed(f, h) &&
                       lg_headers_get(h, "content-encoding", 16) == NULL;
    if (!no_body && accept_encoding_allows(f, h) && compressible && transfer_encoding_allowed(h)) {
        drop_strong_etag(h);
        lg_headers_remove(h, "content-length", 14);
        head->content_length = -1;
        lg_headers_set(lg_filter_pool(f), h, LG_LIT("content-encoding"), LG_LIT("gzip"));
        lg_stats_inc(cells(f), c->response.stats.compressed);
        start_body(f, &st->response);
    } else {
        lg_stats_inc(cells(f), c->response.stats.not_compressed);
    }
    /* Compressible but not compressed for this client: a cache must still know it varies. */
    if (compressible)
        add_vary(f, h);
    return LG_FILTER_HEADERS_CONTINUE;
}

static lg_filter_data_status_t encode_data(lg_filter_t *f, lg_data_t *data, int end_stream)
{
    compressor_state_t *st = f->state;
    return compress_frame(f, &st->response, response_stats(f), data, end_stream);
}

static lg_filter_trailers_status_t encode_trailers(lg_filter_t *f, lg_headers_t *trailers)
{
    compressor_state_t *st = f->state;
    lg_data_t last;
    if (finish_at_trailers(f, &st->response, response_stats(f), &last))
        lg_filter_add_encoded_data(f, last.base, last.len);
    return LG_FILTER_TRAILERS_CONTINUE;
}

static void on_destroy(lg_filter_t *f)
{
    compressor_state_t *st = f->state;
    lg_zstream_dispose(&st->response.gz);
    lg_zstream_dispose(&st->request.gz);
}

const lg_http_filter_ops_t lg_compressor_ops = {
    .name = "envoy.filters.http.compressor",
    .config_descriptor = &envoy__extensions__filters__http__compressor__v3__compressor__descriptor,
    .per_route_descriptor = &envoy__extensions__filters__http__compressor__v3__compressor_per_route__descriptor,
    .create_config_ctx = lg_compressor_create_config,
    .destroy_config = lg_compressor_destroy_config,
    .create_per_route_config = lg_compressor_create_per_route_config,
    .destroy_per_route_config = lg_compressor_destroy_per_route_config,
    .state_size = sizeof(compressor_state_t),
    .decode_headers = decode_headers,
    .decode_data = decode_data,
    .decode_trailers = decode_trailers,
    .encode_headers = encode_headers,
    .encode_data = encode_data,
    .encode_trailers = encode_trailers,
    .on_destroy = on_destroy,
};
