/*
 * Request path normalization (Envoy's normalize_path, merge_slashes and
 * path_with_escaped_slashes_action): see path_normalize.c. Worker thread; results in the pool.
 */
#ifndef LG_PATH_NORMALIZE_H
#define LG_PATH_NORMALIZE_H

#include <h2o/memory.h>

/**
 * Normalizes the path part of `path` (the query is kept): with `normalize`, RFC 3986 §6 (decode
 * escaped unreserved characters, upper-case other escapes, '\' -> '/', remove "." and ".."
 * segments); with `merge_slashes`, runs of '/' become one. Returns 0 with *out set, or -1 when the
 * path cannot be normalized (bad escape, %00, not starting with '/'): Envoy answers 400.
 */
int lg_path_normalize(h2o_iovec_t path, int normalize, int merge_slashes, h2o_mem_pool_t *pool, h2o_iovec_t *out);
/** Whether the path part holds %2F, %2f, %5C or %5c (an escaped slash or backslash). */
int lg_path_has_escaped_slash(h2o_iovec_t path);
/** The path with %2F/%2f -> '/' and %5C/%5c -> '\' in its path part. */
h2o_iovec_t lg_path_unescape_slashes(h2o_iovec_t path, h2o_mem_pool_t *pool);

#endif
