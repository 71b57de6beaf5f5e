/*
 * The decompressor filter (envoy.filters.http.decompressor) with the gzip library
 * (envoy.compression.gzip.decompressor, an inflating lg_zstream_t): what config.c and filter.c
 * share.
 *
 * A request or response whose Content-Encoding starts with gzip is inflated frame by frame as it
 * passes; the coding is taken off the head and the length dropped. Memory is bounded per frame:
 * a frame may inflate to at most max_inflate_ratio times its size, so a gzip bomb is refused (the
 * stream is reset, or a request answered 400) instead of filling memory. While response
 * decompression is on, requests advertise gzip in Accept-Encoding. Not for: the byte-count
 * trailers newer Envoy versions add, runtime overrides of the feature flags.
 */
#ifndef LG_FILTERS_DECOMPRESSOR_H
#define LG_FILTERS_DECOMPRESSOR_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "filter.h"
#include "filters/compression/zstream.h"
#include "stats.h"

/* ---- config (config.c) ------------------------------------------------------------------ */

#define LG_DECOMPRESSOR_STATS(X) X(decompressed) X(not_decompressed) X(total_uncompressed_bytes) X(total_compressed_bytes)
/* The gzip library's (decompressor_library.*): one per zlib error code. */
#define LG_DECOMPRESSOR_ZLIB_STATS(X)                                                              \
    X(zlib_errno, Z_ERRNO) X(zlib_stream_error, Z_STREAM_ERROR) X(zlib_data_error, Z_DATA_ERROR)   \
    X(zlib_mem_error, Z_MEM_ERROR) X(zlib_buf_error, Z_BUF_ERROR) X(zlib_version_error, Z_VERSION_ERROR)

typedef struct st_lg_decompressor_direction_t {
    int enabled, ignore_no_transform;
#define LG_X(n) lg_stat_id_t n;
    LG_DECOMPRESSOR_STATS(LG_X)
#undef LG_X
} lg_decompressor_direction_t;

/* Immutable, shared by workers. */
typedef struct st_lg_decompressor_config_t {
    lg_decompressor_direction_t request, response;
    int advertise_accept_encoding;
    int window_bits;
    size_t chunk_size;
    uint32_t max_inflate_ratio;
#define LG_X(n, code) lg_stat_id_t n;
    LG_DECOMPRESSOR_ZLIB_STATS(LG_X)
#undef LG_X
} lg_decompressor_config_t;

extern const lg_http_filter_ops_t lg_decompressor_ops;

void *lg_decompressor_create_config(const ProtobufCMessage *msg, const lg_filter_config_ctx_t *ctx, lg_error_t *err);
void lg_decompressor_destroy_config(void *config);

#endif
