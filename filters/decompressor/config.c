/*
 * Decompressor config: envoy.extensions.filters.http.decompressor.v3.Decompressor (with its gzip
 * library) -> lg_decompressor_config_t. Envoy's defaults (both directions on, Accept-Encoding
 * advertised, window 15, chunk 4096, ratio 100) and stat names
 * (<prefix>decompressor.<library name>.gzip.{request,response}.*, and the library's
 * ...gzip.decompressor_library.zlib_*). Main thread only.
 */
#include <stdio.h>
#include <stdlib.h>

#include "envoy/extensions/compression/gzip/decompressor/v3/gzip.pb-c.h"
#include "envoy/extensions/filters/http/decompressor/v3/decompressor.pb-c.h"
#include "filters/compression/library.h"
#include "filters/decompressor/decompressor.h"
#include "log.h"

typedef Envoy__Extensions__Filters__Http__Decompressor__V3__Decompressor decompressor_pb_t;
typedef Envoy__Extensions__Filters__Http__Decompressor__V3__Decompressor__CommonDirectionConfig common_pb_t;

#define DEFAULT_WINDOW_BITS 15
#define DEFAULT_CHUNK_SIZE 4096
#define DEFAULT_MAX_INFLATE_RATIO 100

static void fill_direction(lg_decompressor_direction_t *d, const common_pb_t *pb, const char *prefix)
{
    /* A feature flag's runtime key has no runtime to look into: its default_value decides. */
    d->enabled = pb == NULL || pb->enabled == NULL ||
                 (pb->enabled->default_value != NULL && pb->enabled->default_value->value);
    d->ignore_no_transform = pb != NULL && pb->ignore_no_transform_header;
#define LG_X(n) d->n = lg_stats_registerf(LG_STAT_COUNTER, "%s" #n, prefix);
    LG_DECOMPRESSOR_STATS(LG_X)
#undef LG_X
}

static int read_library(lg_decompressor_config_t *c, const decompressor_pb_t *pb, lg_error_t *err)
{
    int owned;
    ProtobufCMessage *m = lg_compression_library_open(pb->decompressor_library,
                                                      &envoy__extensions__compression__gzip__decompressor__v3__gzip__descriptor,
                                                      "decompressor_library", &owned, err);
    if (m == NULL)
        return -1;
    const Envoy__Extensions__Compression__Gzip__Decompressor__V3__Gzip *g = (const void *)m;
    uint32_t bits = DEFAULT_WINDOW_BITS, chunk = DEFAULT_CHUNK_SIZE, ratio = DEFAULT_MAX_INFLATE_RATIO;
    int rc = lg_compression_u32_option(g->window_bits, 9, 15, "decompressor_library.typed_config.window_bits", &bits, err) |
             lg_compression_u32_option(g->chunk_size, 4096, 65536, "decompressor_library.typed_config.chunk_size", &chunk, err) |
             lg_compression_u32_option(g->max_inflate_ratio, 1, 1032, "decompressor_library.typed_config.max_inflate_ratio",
                                       &ratio, err);
    lg_pb_any_close(m, owned);
    c->window_bits = (int)bits;
    c->chunk_size = chunk;
    c->max_inflate_ratio = ratio;
    return rc != 0 ? -1 : 0;
}

void *lg_decompressor_create_config(const ProtobufCMessage *msg, const lg_filter_config_ctx_t *ctx, lg_error_t *err)
{
    if (msg == NULL || msg->descriptor != &envoy__extensions__filters__http__decompressor__v3__decompressor__descriptor) {
        lg_error_set(err, "typed_config: expected envoy.extensions.filters.http.decompressor.v3.Decompressor");
        return NULL;
    }
    const decompressor_pb_t *pb = (const decompressor_pb_t *)msg;
    lg_decompressor_config_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        lg_fatal("out of memory");
    if (read_library(c, pb, err) != 0) {
        free(c);
        return NULL;
    }
    char base[512], prefix[576];
    snprintf(base, sizeof(base), "%sdecompressor.%s.gzip.", ctx != NULL ? ctx->stat_prefix : "",
             pb->decompressor_library->name);
    const Envoy__Extensions__Filters__Http__Decompressor__V3__Decompressor__RequestDirectionConfig *rq =
        pb->request_direction_config;
    snprintf(prefix, sizeof(prefix), "%srequest.", base);
    fill_direction(&c->request, rq != NULL ? rq->common_config : NULL, prefix);
    snprintf(prefix, sizeof(prefix), "%sresponse.", base);
    fill_direction(&c->response, pb->response_direction_config != NULL ? pb->response_direction_config->common_config : NULL,
                   prefix);
    c->advertise_accept_encoding = rq == NULL || rq->advertise_accept_encoding == NULL || rq->advertise_accept_encoding->value;
#define LG_X(n, code) c->n = lg_stats_registerf(LG_STAT_COUNTER, "%sdecompressor_library." #n, base);
    LG_DECOMPRESSOR_ZLIB_STATS(LG_X)
#undef LG_X
    return c;
}

void lg_decompressor_destroy_config(void *config)
{
    free(config);
}
