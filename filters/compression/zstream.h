/*
 * One zlib stream with the gzip wrapper, compressing (deflate) or decompressing (inflate) a body
 * frame by frame: what the compressor's envoy.compression.gzip.compressor and the decompressor's
 * envoy.compression.gzip.decompressor libraries are built on. Each call consumes the whole frame
 * and returns everything zlib produced for it; compressing ends each call with a sync flush (or
 * the finish), so what was sent so far always decodes. Output is bounded per call (a gzip bomb
 * is refused, not inflated). Worker thread; one stream per body.
 */
#ifndef LG_FILTERS_COMPRESSION_ZSTREAM_H
#define LG_FILTERS_COMPRESSION_ZSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "filter.h"

/* lg_zstream_run's refusal when a call's output would pass its limit. */
#define LG_ZSTREAM_TOO_LARGE (-100)

typedef struct st_lg_zstream_t {
    z_stream z;
    int ready, deflating;
    int ended; /* the gzip member is complete; later input is ignored */
    size_t chunk_size; /* output grows in steps of this many bytes */
    h2o_buffer_t *out; /* the last call's output */
} lg_zstream_t;

/** Starts compressing with zlib's deflateInit2 arguments (window_bits without the +16 for gzip).
 *  0, or -1 when zlib refuses. */
int lg_zstream_deflate_init(lg_zstream_t *s, int level, int window_bits, int mem_level, int strategy, size_t chunk_size);
/** Starts decompressing a gzip stream with a window of up to 2^window_bits; 0 or -1. */
int lg_zstream_inflate_init(lg_zstream_t *s, int window_bits, size_t chunk_size);
/**
 * Feeds `len` bytes; compressing, `finish` ends the stream (else a sync flush). The output (owned
 * by s, valid until the next call) is returned in *out. 0; a negative zlib error (Z_DATA_ERROR
 * for input that is not gzip...); or LG_ZSTREAM_TOO_LARGE once the output passes `limit` bytes.
 */
int lg_zstream_run(lg_zstream_t *s, const void *in, size_t len, int finish, uint64_t limit, lg_data_t *out);
/** Frees zlib's state and the buffer; s may be zeroed, started or failed. */
void lg_zstream_dispose(lg_zstream_t *s);

#endif
