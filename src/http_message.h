/*
 * HTTP messages as the data plane carries them between codecs, filters and upstreams, whatever
 * the wire protocol: a request head (method, scheme, authority, path and the other fields), a
 * response head (status and fields), and trailers. HTTP/1.1 and HTTP/2 codecs both translate to and
 * from this one shape, which is what makes h1 <-> h2 proxying a non-event.
 *
 * Field names are always lower case (HTTP/2 requires it; the HTTP/1.1 codec lowercases) and never
 * include pseudo-headers: those are the named members of the heads. Strings are not NUL-terminated
 * and live in the owning stream's memory pool (h2o_mem_pool_t), so they die with the stream.
 * Worker thread only.
 */
#ifndef LG_HTTP_MESSAGE_H
#define LG_HTTP_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <h2o/memory.h>

typedef struct st_lg_header_t {
    h2o_iovec_t name;  /* lower case */
    h2o_iovec_t value;
} lg_header_t;

typedef struct st_lg_headers_t {
    lg_header_t *entries;
    size_t size, capacity;
} lg_headers_t;

typedef enum en_lg_http_version_t {
    LG_HTTP_10 = 10,
    LG_HTTP_11 = 11,
    LG_HTTP_2 = 20,
} lg_http_version_t;

typedef struct st_lg_request_head_t {
    h2o_iovec_t method;    /* "GET" */
    h2o_iovec_t scheme;    /* "http" / "https" */
    h2o_iovec_t authority; /* :authority, or Host for HTTP/1.1 */
    h2o_iovec_t path;      /* origin-form path and query */
    lg_http_version_t version;
    lg_headers_t headers;
    int64_t content_length; /* -1 when unknown (chunked, or HTTP/2 without content-length) */
} lg_request_head_t;

typedef struct st_lg_response_head_t {
    int status;
    lg_headers_t headers;
    int64_t content_length; /* -1 when unknown */
} lg_response_head_t;

/** Adds a field; name and value are referenced, not copied (copy into the pool first if needed). */
void lg_headers_add(h2o_mem_pool_t *pool, lg_headers_t *h, h2o_iovec_t name, h2o_iovec_t value);
/** Adds a field, copying name (lowercased) and value into the pool. */
void lg_headers_add_copy(h2o_mem_pool_t *pool, lg_headers_t *h, const char *name, size_t name_len,
                         const char *value, size_t value_len);
/** Index of the first field named `name` (lower case) at or after `from`, or -1. */
ssize_t lg_headers_find(const lg_headers_t *h, const char *name, size_t name_len, size_t from);
/** The value of the first field named `name`, or NULL. */
const h2o_iovec_t *lg_headers_get(const lg_headers_t *h, const char *name, size_t name_len);
/** Removes every field named `name`; returns how many. */
size_t lg_headers_remove(lg_headers_t *h, const char *name, size_t name_len);
/** Replaces every field named `name` by one with `value` (referenced). */
void lg_headers_set(h2o_mem_pool_t *pool, lg_headers_t *h, h2o_iovec_t name, h2o_iovec_t value);
/** Adds every field of src to dst (strings referenced, not copied). */
void lg_headers_append(h2o_mem_pool_t *pool, lg_headers_t *dst, const lg_headers_t *src);
/** Deep-copies src into dst (strings into the pool). */
void lg_headers_copy(h2o_mem_pool_t *pool, lg_headers_t *dst, const lg_headers_t *src);

#define LG_LIT(s) ((h2o_iovec_t){(char *)(s), sizeof(s) - 1})

/** Writes v in decimal to buf (at least 21 bytes), NUL-terminated; returns the length. The request
 * path formats numbers this way instead of with printf, which costs a visible share of a request. */
static inline size_t lg_u64_to_dec(char *buf, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; ++i)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
    return n;
}

#endif
