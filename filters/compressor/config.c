/*
 * Compressor config: envoy.extensions.filters.http.compressor.v3.Compressor (with its gzip
 * library) -> lg_compressor_config_t, and CompressorPerRoute -> lg_compressor_per_route_t.
 * Validates what Envoy's annotations require, applies Envoy's defaults (30 bytes, its content
 * types, gzip window 12 / memory level 5 / chunk 4096) and registers the stats under Envoy's
 * names. Main thread only.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/extensions/compression/gzip/compressor/v3/gzip.pb-c.h"
#include "envoy/extensions/filters/http/compressor/v3/compressor.pb-c.h"
#include "filters/compression/library.h"
#include "filters/compressor/compressor.h"
#include "log.h"

typedef Envoy__Extensions__Filters__Http__Compressor__V3__Compressor compressor_pb_t;
typedef Envoy__Extensions__Filters__Http__Compressor__V3__Compressor__CommonDirectionConfig common_pb_t;
typedef Envoy__Extensions__Compression__Gzip__Compressor__V3__Gzip gzip_pb_t;

#define DEFAULT_MIN_CONTENT_LENGTH 30
#define DEFAULT_WINDOW_BITS 12
#define DEFAULT_MEMORY_LEVEL 5
#define DEFAULT_CHUNK_SIZE 4096
#define GZIP_STAT_PREFIX "gzip"

static char *lower_dup(const char *s)
{
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i <= n; ++i)
        d[i] = (char)tolower((unsigned char)s[i]);
    return d;
}

static void fill_direction(lg_compressor_direction_t *d, int enabled_default, const Google__Protobuf__UInt32Value *min_len,
                           const Envoy__Config__Core__V3__RuntimeFeatureFlag *enabled, char **types, size_t n_types)
{
    /* A feature flag's runtime key has no runtime to look into: its default_value decides. */
    d->enabled = enabled_default;
    if (enabled != NULL)
        d->enabled = enabled->default_value != NULL ? enabled->default_value->value : 0;
    /* 0 means unset in Envoy too (contentLengthUint). */
    d->min_content_length = min_len != NULL && min_len->value > 0 ? min_len->value : DEFAULT_MIN_CONTENT_LENGTH;
    size_t n_default = 0;
    while (lg_compressor_default_content_types[n_default] != NULL)
        ++n_default;
    size_t n = n_types != 0 ? n_types : n_default;
    d->content_types = calloc(n, sizeof(*d->content_types));
    if (d->content_types == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i < n; ++i) {
        char *t = lower_dup(n_types != 0 ? types[i] : lg_compressor_default_content_types[i]);
        d->content_types[i] = h2o_iovec_init(t, strlen(t));
    }
    d->n_content_types = n;
}

static void register_common(lg_compressor_common_stats_t *st, const char *prefix)
{
#define LG_X(n) st->n = lg_stats_registerf(LG_STAT_COUNTER, "%s" #n, prefix);
    LG_COMPRESSOR_COMMON_STATS(LG_X)
#undef LG_X
}

static int fill_gzip(lg_gzip_params_t *g, const ProtobufCMessage *lib, lg_error_t *err)
{
    const gzip_pb_t *pb = (const gzip_pb_t *)lib;
    uint32_t mem = DEFAULT_MEMORY_LEVEL, bits = DEFAULT_WINDOW_BITS, chunk = DEFAULT_CHUNK_SIZE;
    if (lg_compression_u32_option(pb->memory_level, 1, 9, "compressor_library.typed_config.memory_level", &mem, err) != 0 ||
        lg_compression_u32_option(pb->window_bits, 9, 15, "compressor_library.typed_config.window_bits", &bits, err) != 0 ||
        lg_compression_u32_option(pb->chunk_size, 4096, 65536, "compressor_library.typed_config.chunk_size", &chunk, err) != 0)
        return -1;
    g->mem_level = (int)mem;
    g->window_bits = (int)bits;
    g->chunk_size = chunk;
    /* The enum's values are zlib's: 0 is DEFAULT_COMPRESSION (zlib's -1, level 6), 1..9 levels. */
    int level = (int)pb->compression_level;
    if (level < 0 || level > 9)
        return lg_error_set(err, "compressor_library.typed_config.compression_level: value must be one of the defined enum values");
    g->level = level == 0 ? Z_DEFAULT_COMPRESSION : level;
    /* CompressionStrategy numbers zlib's strategies in this order. */
    static const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED};
    if ((unsigned)pb->compression_strategy >= sizeof(strategies) / sizeof(strategies[0]))
        return lg_error_set(err, "compressor_library.typed_config.compression_strategy: value must be one of the defined enum values");
    g->strategy = strategies[pb->compression_strategy];
    return 0;
}

/* Reads the library: only gzip is built in. */
static int read_library(lg_compressor_config_t *c, const compressor_pb_t *pb, lg_error_t *err)
{
    int owned;
    ProtobufCMessage *m = lg_compression_library_open(pb->compressor_library,
                                                      &envoy__extensions__compression__gzip__compressor__v3__gzip__descriptor,
                                                      "compressor_library", &owned, err);
    if (m == NULL)
        return -1;
    int rc = fill_gzip(&c->gzip, m, err);
    lg_pb_any_close(m, owned);
    return rc;
}

void *lg_compressor_create_config(const ProtobufCMessage *msg, const lg_filter_config_ctx_t *ctx, lg_error_t *err)
{
    if (msg == NULL || msg->descriptor != &envoy__extensions__filters__http__compressor__v3__compressor__descriptor) {
        lg_error_set(err, "typed_config: expected envoy.extensions.filters.http.compressor.v3.Compressor");
        return NULL;
    }
    const compressor_pb_t *pb = (const compressor_pb_t *)msg;
    lg_compressor_config_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        lg_fatal("out of memory");
    if (read_library(c, pb, err) != 0) {
        free(c);
        return NULL;
    }

    /* Request direction: off unless request_direction_config is present (and enabled). */
    const common_pb_t *rq = pb->request_direction_config != NULL ? pb->request_direction_config->common_config : NULL;
    fill_direction(&c->request, pb->request_direction_config != NULL, rq != NULL ? rq->min_content_length : NULL,
                   rq != NULL ? rq->enabled : NULL, rq != NULL ? rq->content_type : NULL,
                   rq != NULL ? rq->n_content_type : 0);

    /* Response direction: response_direction_config, or else the deprecated top-level fields. */
    const Envoy__Extensions__Filters__Http__Compressor__V3__Compressor__ResponseDirectionConfig *rs =
        pb->response_direction_config;
    if (rs != NULL) {
        const common_pb_t *cc = rs->common_config;
        fill_direction(&c->response, 1, cc != NULL ? cc->min_content_length : NULL, cc != NULL ? cc->enabled : NULL,
                       cc != NULL ? cc->content_type : NULL, cc != NULL ? cc->n_content_type : 0);
        c->disable_on_etag_header = rs->disable_on_etag_header;
        c->remove_accept_encoding_header = rs->remove_accept_encoding_header;
    } else {
        fill_direction(&c->response, 1, pb->content_length, pb->runtime_enabled, pb->content_type, pb->n_content_type);
        c->disable_on_etag_header = pb->disable_on_etag_header;
        c->remove_accept_encoding_header = pb->remove_accept_encoding_header;
    }
    c->choose_first = pb->choose_first;

    /* <stat_prefix>compressor.<library name>.gzip. (+ "response." when response_direction_config
     * is set, "request." for the request direction), as Envoy roots them. */
    char base[512], prefix[576];
    snprintf(base, sizeof(base), "%scompressor.%s." GZIP_STAT_PREFIX ".", ctx != NULL ? ctx->stat_prefix : "",
             pb->compressor_library->name);
    snprintf(prefix, sizeof(prefix), "%srequest.", base);
    register_common(&c->request.stats, prefix);
    snprintf(prefix, sizeof(prefix), "%s%s", base, rs != NULL ? "response." : "");
    register_common(&c->response.stats, prefix);
#define LG_X(n) c->response_stats.n = lg_stats_registerf(LG_STAT_COUNTER, "%s" #n, prefix);
    LG_COMPRESSOR_RESPONSE_STATS(LG_X)
#undef LG_X
    return c;
}

void lg_compressor_destroy_config(void *config)
{
    lg_compressor_config_t *c = config;
    if (c == NULL)
        return;
    lg_compressor_direction_t *dirs[] = {&c->request, &c->response};
    for (size_t d = 0; d < 2; ++d) {
        for (size_t i = 0; i < dirs[d]->n_content_types; ++i)
            free(dirs[d]->content_types[i].base);
        free(dirs[d]->content_types);
    }
    free(c);
}

void *lg_compressor_create_per_route_config(const ProtobufCMessage *msg, lg_error_t *err)
{
    if (msg == NULL || msg->descriptor != &envoy__extensions__filters__http__compressor__v3__compressor_per_route__descriptor) {
        lg_error_set(err, "typed_per_filter_config: expected envoy.extensions.filters.http.compressor.v3.CompressorPerRoute");
        return NULL;
    }
    const Envoy__Extensions__Filters__Http__Compressor__V3__CompressorPerRoute *pb = (const void *)msg;
    lg_compressor_per_route_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        lg_fatal("out of memory");
    switch (pb->override_case) {
    case ENVOY__EXTENSIONS__FILTERS__HTTP__COMPRESSOR__V3__COMPRESSOR_PER_ROUTE__OVERRIDE_DISABLED:
        if (!pb->disabled) {
            free(r);
            lg_error_set(err, "CompressorPerRoute.disabled: value must equal true");
            return NULL;
        }
        r->has_enabled = 1;
        r->enabled = 0;
        break;
    case ENVOY__EXTENSIONS__FILTERS__HTTP__COMPRESSOR__V3__COMPRESSOR_PER_ROUTE__OVERRIDE_OVERRIDES:
        /* An empty response_direction_config here enables response compression, as in Envoy. */
        if (pb->overrides != NULL && pb->overrides->response_direction_config != NULL) {
            const Google__Protobuf__BoolValue *rm = pb->overrides->response_direction_config->remove_accept_encoding_header;
            r->has_enabled = 1;
            r->enabled = 1;
            if (rm != NULL) {
                r->has_remove_accept_encoding = 1;
                r->remove_accept_encoding = rm->value;
            }
        }
        break;
    default:
        free(r);
        lg_error_set(err, "CompressorPerRoute: value is required (disabled or overrides)");
        return NULL;
    }
    return r;
}

void lg_compressor_destroy_per_route_config(void *config)
{
    free(config);
}
