/*
 * The decompressor filter's per-stream hooks (envoy.filters.http.decompressor): see
 * decompressor.h. Request side: advertise gzip in Accept-Encoding while response decompression
 * is on, then inflate a gzip request body. Response side: inflate a gzip response body. Each
 * frame is inflated as it passes; nothing is held. Worker thread only.
 */
#include <string.h>
#include <strings.h>

#include "envoy/extensions/filters/http/decompressor/v3/decompressor.pb-c.h" /* the ops table's descriptor */
#include "filters/compressor/compressor.h" /* lg_compressor_list_has */
#include "filters/decompressor/decompressor.h"
#include "log.h"
#include "worker.h"

typedef struct st_decompressor_body_t {
    lg_zstream_t gz;
    int on, failed;
} decompressor_body_t;

typedef struct st_decompressor_state_t {
    decompressor_body_t request, response;
} decompressor_state_t;

static lg_stats_cells_t *cells(lg_filter_t *f)
{
    return lg_filter_worker(f)->stats;
}

static int is_gzip(const char *b, const char *e)
{
    while (b < e && (*b == ' ' || *b == '\t'))
        ++b;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
        --e;
    return e - b == 4 && strncasecmp(b, "gzip", 4) == 0;
}

/* Accept-Encoding with gzip listed once, last, at the default q: the old value without its gzip
 * elements, then ",gzip" (Envoy's addEncodingToAcceptEncoding). */
static void advertise_gzip(lg_filter_t *f, lg_headers_t *h)
{
    const h2o_iovec_t *old = lg_headers_get(h, "accept-encoding", 15);
    size_t len = old != NULL ? old->len : 0;
    char *v = h2o_mem_alloc_pool(lg_filter_pool(f), len + sizeof(",gzip")), *p = v;
    for (const char *s = old != NULL ? old->base : NULL, *end = s + len; s != NULL && s < end;) {
        const char *comma = memchr(s, ',', (size_t)(end - s)), *e = comma != NULL ? comma : end;
        const char *semi = memchr(s, ';', (size_t)(e - s));
        if (!is_gzip(s, semi != NULL ? semi : e) && e > s) {
            if (p != v)
                *p++ = ',';
            memcpy(p, s, (size_t)(e - s));
            p += e - s;
        }
        s = e + (comma != NULL);
    }
    if (p != v)
        *p++ = ',';
    memcpy(p, "gzip", 4);
    p += 4;
    lg_headers_set(lg_filter_pool(f), h, LG_LIT("accept-encoding"), h2o_iovec_init(v, (size_t)(p - v)));
}

/* Starts inflating when the direction is on, no-transform allows it and the first coding listed
 * is gzip (as Envoy checks it); takes that coding off and drops the length. */
static void maybe_start(lg_filter_t *f, const lg_decompressor_direction_t *d, decompressor_body_t *b, lg_headers_t *h,
                        int64_t *content_length)
{
    const lg_decompressor_config_t *c = f->config;
    ssize_t ce = lg_headers_find(h, "content-encoding", 16, 0);
    int start = d->enabled && ce >= 0;
    if (start && !d->ignore_no_transform) {
        const h2o_iovec_t *cc = lg_headers_get(h, "cache-control", 13);
        start = cc == NULL || !lg_compressor_list_has(*cc, "no-transform");
    }
    h2o_iovec_t v = ce >= 0 ? h->entries[ce].value : h2o_iovec_init(NULL, 0);
    const char *comma = start ? memchr(v.base, ',', v.len) : NULL;
    if (!start || !is_gzip(v.base, comma != NULL ? comma : v.base + v.len)) {
        lg_stats_inc(cells(f), d->not_decompressed);
        return;
    }
    lg_stats_inc(cells(f), d->decompressed);
    if (comma != NULL) {
        const char *rest = comma + 1, *end = v.base + v.len;
        while (rest < end && (*rest == ' ' || *rest == '\t'))
            ++rest;
        h->entries[ce].value = h2o_iovec_init(rest, (size_t)(end - rest));
    } else {
        lg_headers_remove(h, "content-encoding", 16);
    }
    lg_headers_remove(h, "content-length", 14);
    *content_length = -1;
    if (lg_zstream_inflate_init(&b->gz, c->window_bits, c->chunk_size) != 0)
        lg_fatal("zlib: inflateInit2 failed (out of memory)");
    b->on = 1;
}

/* Inflates one frame in place of the original. A body that is not gzip, or that would inflate
 * past max_inflate_ratio, ends the exchange: 400 for a request not answered yet, else a reset. */
static lg_filter_data_status_t inflate_frame(lg_filter_t *f, const lg_decompressor_direction_t *d, decompressor_body_t *b,
                                             lg_data_t *data)
{
    const lg_decompressor_config_t *c = f->config;
    if (!b->on)
        return LG_FILTER_DATA_CONTINUE;
    if (b->failed)
        return LG_FILTER_DATA_STOP_NO_BUFFER;
    lg_data_t out;
    int rc = lg_zstream_run(&b->gz, data->base, data->len, 0, (uint64_t)c->max_inflate_ratio * data->len, &out);
    if (rc != 0) {
        switch (rc == LG_ZSTREAM_TOO_LARGE ? Z_DATA_ERROR : rc) {
#define LG_X(n, code)                                                                              \
    case code:                                                                                     \
        lg_stats_inc(cells(f), c->n);                                                              \
        break;
            LG_DECOMPRESSOR_ZLIB_STATS(LG_X)
#undef LG_X
        }
        b->failed = 1;
        lg_filter_send_local_reply(f, 400, "invalid compressed body", NULL, "decompressor_error");
        return LG_FILTER_DATA_STOP_NO_BUFFER;
    }
    lg_stats_add(cells(f), d->total_compressed_bytes, data->len);
    lg_stats_add(cells(f), d->total_uncompressed_bytes, out.len);
    *data = out;
    return LG_FILTER_DATA_CONTINUE;
}

static lg_filter_headers_status_t decode_headers(lg_filter_t *f, lg_request_head_t *head, int end_stream)
{
    const lg_decompressor_config_t *c = f->config;
    decompressor_state_t *st = f->state;
    if (c->response.enabled && c->advertise_accept_encoding)
        advertise_gzip(f, &head->headers);
    if (!end_stream)
        maybe_start(f, &c->request, &st->request, &head->headers, &head->content_length);
    return LG_FILTER_HEADERS_CONTINUE;
}

static lg_filter_data_status_t decode_data(lg_filter_t *f, lg_data_t *data, int end_stream)
{
    decompressor_state_t *st = f->state;
    return inflate_frame(f, &((const lg_decompressor_config_t *)f->config)->request, &st->request, data);
}

static lg_filter_headers_status_t encode_headers(lg_filter_t *f, lg_response_head_t *head, int end_stream)
{
    const lg_decompressor_config_t *c = f->config;
    decompressor_state_t *st = f->state;
    if (!end_stream)
        maybe_start(f, &c->response, &st->response, &head->headers, &head->content_length);
    return LG_FILTER_HEADERS_CONTINUE;
}

static lg_filter_data_status_t encode_data(lg_filter_t *f, lg_data_t *data, int end_stream)
{
    decompressor_state_t *st = f->state;
    return inflate_frame(f, &((const lg_decompressor_config_t *)f->config)->response, &st->response, data);
}

static void on_destroy(lg_filter_t *f)
{
    decompressor_state_t *st = f->state;
    lg_zstream_dispose(&st->request.gz);
    lg_zstream_dispose(&st->response.gz);
}

const lg_http_filter_ops_t lg_decompressor_ops = {
    .name = "envoy.filters.http.decompressor",
    .config_descriptor = &envoy__extensions__filters__http__decompressor__v3__decompressor__descriptor,
    .create_config_ctx = lg_decompressor_create_config,
    .destroy_config = lg_decompressor_destroy_config,
    .state_size = sizeof(decompressor_state_t),
    .decode_headers = decode_headers,
    .decode_data = decode_data,
    .encode_headers = encode_headers,
    .encode_data = encode_data,
    .on_destroy = on_destroy,
};
