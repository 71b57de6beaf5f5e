/*
 * Config-time helpers the compressor and decompressor filters share for their compression
 * library (a TypedExtensionConfig naming e.g. envoy.compression.gzip.compressor): opening it,
 * and the bounded UInt32Value options the libraries have. Main thread only; config.c files only
 * (per-stream code never sees protobuf-c).
 */
#ifndef LG_FILTERS_COMPRESSION_LIBRARY_H
#define LG_FILTERS_COMPRESSION_LIBRARY_H

#include <stdint.h>

#include "envoy/config/core/v3/extension.pb-c.h"
#include "error.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "pb_registry.h" /* lg_pb_any_close */

/**
 * The library message of `lib` (the `field` of the filter config, e.g. "compressor_library")
 * when it is a `want`; NULL with err filled otherwise (absent, no name, another library). Close
 * it with lg_pb_any_close(m, *owned).
 */
ProtobufCMessage *lg_compression_library_open(const Envoy__Config__Core__V3__TypedExtensionConfig *lib,
                                              const ProtobufCMessageDescriptor *want, const char *field,
                                              int *owned, lg_error_t *err);
/**
 * Stores `v` in *out when set and within [lo, hi] (Envoy's validation bounds); leaves *out (the
 * default) when unset. -1 with err naming `field` when out of range.
 */
int lg_compression_u32_option(const Google__Protobuf__UInt32Value *v, uint32_t lo, uint32_t hi, const char *field,
                              uint32_t *out, lg_error_t *err);

#endif
