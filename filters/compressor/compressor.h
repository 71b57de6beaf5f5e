/*
 * The compressor filter (envoy.filters.http.compressor) with the gzip library
 * (envoy.compression.gzip.compressor): what config.c, filter.c and negotiate.c share.
 *
 * Responses are compressed when the client accepts gzip (Accept-Encoding with q-values), the
 * response is not encoded already, not too short, of an allowed content type and not marked
 * no-transform; requests when request_direction_config enables it. Bodies are compressed frame by
 * frame with a sync flush after each one, as Envoy does, so nothing is buffered and a streamed
 * response reaches the client as it goes. Not for: brotli or zstd, runtime overrides of the
 * feature flags (their default_value is used), several compressor filters in one chain deciding
 * together (each decides alone).
 */
#ifndef LG_FILTERS_COMPRESSOR_H
#define LG_FILTERS_COMPRESSOR_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "filter.h"
#include "filters/compression/zstream.h"
#include "stats.h"

/* ---- the gzip library (a deflating lg_zstream_t) ---------------------------------------- */

/* zlib's deflateInit2 arguments, from envoy.extensions.compression.gzip.compressor.v3.Gzip. */
typedef struct st_lg_gzip_params_t {
    int level;       /* Z_DEFAULT_COMPRESSION or 1..9 */
    int window_bits; /* 9..15, without the +16 that asks zlib for the gzip wrapper */
    int mem_level;   /* 1..9 */
    int strategy;    /* Z_DEFAULT_STRATEGY, Z_FILTERED, ... */
    size_t chunk_size; /* output is produced in steps of this many bytes */
} lg_gzip_params_t;

/* ---- Accept-Encoding and Content-Type (negotiate.c, pure) ------------------------------- */

/* How the client's Accept-Encoding came out, one per Envoy stat (header_*). */
typedef enum en_lg_accept_encoding_t {
    LG_ACCEPT_NOT_VALID, /* nothing usable: bad values, q=0 everywhere, no common coding */
    LG_ACCEPT_IDENTITY,  /* identity was preferred */
    LG_ACCEPT_WILDCARD,  /* "*" chose the coding */
    LG_ACCEPT_CODING,    /* the coding was named */
} lg_accept_encoding_t;

/**
 * Envoy's choice of a content coding for one compressor: `value` is the request's Accept-Encoding,
 * `coding` ours ("gzip"), `allowed` 0 when our coding may not be used for this response (its
 * content type is not ours) and `choose_first` Envoy's tie-breaker. *use is set to 1 when the
 * response is to be encoded with `coding`. Pure.
 */
lg_accept_encoding_t lg_compressor_negotiate(h2o_iovec_t value, const char *coding, int allowed,
                                             int choose_first, int *use);
/** True when `content_type` (parameters ignored) is one of `types`, or when either is empty. */
int lg_compressor_content_type_allowed(h2o_iovec_t content_type, const h2o_iovec_t *types, size_t n_types);
/** True when the comma-separated `list` has `token` (case-insensitive, blanks around ignored). */
int lg_compressor_list_has(h2o_iovec_t list, const char *token);
/** Envoy's default content types, used when content_type is empty; NULL-terminated. */
extern const char *const lg_compressor_default_content_types[];

/* ---- config (config.c) ------------------------------------------------------------------ */

#define LG_COMPRESSOR_COMMON_STATS(X)                                                              \
    X(compressed) X(not_compressed) X(total_uncompressed_bytes) X(total_compressed_bytes)          \
    X(content_length_too_small)
#define LG_COMPRESSOR_RESPONSE_STATS(X)                                                            \
    X(no_accept_header) X(header_identity) X(header_compressor_used)                              \
    X(header_compressor_overshadowed) X(header_wildcard) X(header_not_valid) X(not_compressed_etag)

typedef struct st_lg_compressor_common_stats_t {
#define LG_X(n) lg_stat_id_t n;
    LG_COMPRESSOR_COMMON_STATS(LG_X)
#undef LG_X
} lg_compressor_common_stats_t;

typedef struct st_lg_compressor_response_stats_t {
#define LG_X(n) lg_stat_id_t n;
    LG_COMPRESSOR_RESPONSE_STATS(LG_X)
#undef LG_X
} lg_compressor_response_stats_t;

/* One direction's CommonDirectionConfig. */
typedef struct st_lg_compressor_direction_t {
    int enabled;
    uint32_t min_content_length;
    h2o_iovec_t *content_types; /* lower case; never empty (Envoy's defaults fill it) */
    size_t n_content_types;
    lg_compressor_common_stats_t stats;
} lg_compressor_direction_t;

/* Immutable, shared by workers. */
typedef struct st_lg_compressor_config_t {
    lg_compressor_direction_t request, response;
    lg_compressor_response_stats_t response_stats;
    int disable_on_etag_header, remove_accept_encoding_header, choose_first;
    lg_gzip_params_t gzip;
} lg_compressor_config_t;

/* CompressorPerRoute: each override set or not. */
typedef struct st_lg_compressor_per_route_t {
    int has_enabled, enabled;
    int has_remove_accept_encoding, remove_accept_encoding;
} lg_compressor_per_route_t;

extern const lg_http_filter_ops_t lg_compressor_ops;

void *lg_compressor_create_config(const ProtobufCMessage *msg, const lg_filter_config_ctx_t *ctx, lg_error_t *err);
void lg_compressor_destroy_config(void *config);
void *lg_compressor_create_per_route_config(const ProtobufCMessage *msg, lg_error_t *err);
void lg_compressor_destroy_per_route_config(void *config);

#endif
