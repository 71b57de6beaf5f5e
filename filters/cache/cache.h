/*
 * envoy.filters.http.cache with envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig:
 * what config.c, filter.c, cache_control.c and store.c share.
 *
 * The RFC 9111 subset Envoy implements. GET (and HEAD, answered from a GET's entry) requests without
 * Authorization or conditional headers are looked up under a key made of scheme, host and path with
 * its query (key_creator_params) plus, when the stored response named a Vary, the request's values
 * of those headers. A fresh entry is answered from the cache with an `age` header and never reaches
 * the upstream. A stale one (or one the request's no-cache / max-age=0 or the response's no-cache
 * asks to validate) goes upstream with if-none-match / if-modified-since; a 304 becomes the stored
 * response with its date / cache-control / expires / etag / last-modified renewed, anything else
 * replaces the entry. Responses are stored when their status is one Envoy caches, they carry
 * max-age / s-maxage / Expires and neither no-store nor private, every Vary header is allowed by
 * allowed_vary_headers, and the body fits max_body_bytes.
 *
 * Storage trade-off: Envoy's SimpleHttpCacheConfig has no size field and Envoy's store is one
 * unbounded map behind a mutex. legate keeps one store per worker (no lock on the hit path), so a
 * popular response is stored once per worker that sees it, and bounds all of them together to
 * LG_CACHE_DEFAULT_MAX_BYTES with one atomic byte count (lg_cache_budget_t), each worker evicting its
 * own least recently used entries. The stores belong to the filter's config: a config change (new snapshot, LDS/RDS
 * update) starts empty caches. Not for: trailers (a response with trailers is not stored), serving
 * stale content (max-stale, stale-while-revalidate), range requests, only-if-cached, answering a
 * client's own conditional request from the cache (it bypasses the cache), cache stats (none are
 * counted yet). A response without Date is dated when it arrives.
 */
#ifndef LG_FILTERS_CACHE_H
#define LG_FILTERS_CACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "filter.h"
#include "route_table.h"

#define LG_CACHE_DEFAULT_MAX_BYTES ((size_t)64 << 20)
/* Workers past this id do not cache (logged once). */
#define LG_CACHE_MAX_WORKERS 256

/* ---- Cache-Control and freshness (cache_control.c, pure) ------------------------------------- */

/* Directives of one message's Cache-Control fields; numbers are seconds, -1 when absent. */
typedef struct st_lg_cache_control_t {
    int no_cache, no_store, private_, must_revalidate, public_, no_transform, only_if_cached;
    int64_t max_age, s_maxage, min_fresh, max_stale;
} lg_cache_control_t;

/** Sets every directive to absent. */
void lg_cache_control_init(lg_cache_control_t *cc);
/**
 * Adds the directives of one Cache-Control value (names case-insensitive, quoted arguments and
 * unknown directives skipped). A delta-seconds argument that is not a number counts as 0, so the
 * message is stale at once, as Envoy treats it. Pure.
 */
void lg_cache_control_parse(lg_cache_control_t *cc, h2o_iovec_t value);
/** Every Cache-Control field of `h`, parsed into cc (initialized here). */
void lg_cache_control_from_headers(lg_cache_control_t *cc, const lg_headers_t *h);
/** An HTTP-date (IMF-fixdate) as seconds since the epoch, or -1. */
int64_t lg_cache_parse_http_date(h2o_iovec_t value);
/** A delta-seconds value (Age), or -1 when it is not one. */
int64_t lg_cache_parse_seconds(h2o_iovec_t value);
/**
 * The response's freshness lifetime in seconds: s-maxage, else max-age, else Expires minus Date
 * (Date missing: minus `response_time`; an invalid Expires: 0). -1 when none is given (the response
 * has no explicit freshness and is not stored). Pure.
 */
int64_t lg_cache_freshness_lifetime(const lg_cache_control_t *cc, const h2o_iovec_t *date,
                                    const h2o_iovec_t *expires, int64_t response_time);
/** True when Envoy stores responses with this status (cacheability_utils). */
int lg_cache_status_cacheable(int status);
/**
 * True when the request may be looked up: GET or HEAD, no Authorization, no conditional header
 * (the client validates its own copy), and unless `ignore_request_cc` no Cache-Control no-store.
 */
int lg_cache_request_cacheable(const lg_request_head_t *req, int ignore_request_cc);

/* ---- key creation (cache_control.c) -------------------------------------------------------------- */

typedef struct st_lg_cache_key_params_t {
    int exclude_scheme, exclude_host;
    lg_query_matcher_t *included, *excluded;
    size_t n_included, n_excluded;
} lg_cache_key_params_t;

/**
 * The base key of a request: scheme, host and path, each ended by '\n', then the query; with
 * query_parameters_included only the parameters some matcher matches are kept, then those an
 * excluded matcher matches dropped (order kept). Allocated from `pool`. Worker thread.
 */
h2o_iovec_t lg_cache_key(const lg_cache_key_params_t *p, const lg_request_head_t *req, h2o_mem_pool_t *pool);
/**
 * The key of one variant: `base`, then for each name of the comma-separated `vary` list its
 * request values (every field, joined by ','). From `pool`.
 */
h2o_iovec_t lg_cache_variant_key(h2o_iovec_t base, h2o_iovec_t vary, const lg_headers_t *req, h2o_mem_pool_t *pool);
/**
 * The lower-cased, comma-separated header names of the response's Vary fields into *out (from
 * `pool`; len 0 when none). Returns 0, or -1 when the response may not be stored: Vary: *, or a
 * name that no allowed matcher matches.
 */
int lg_cache_vary_names(const lg_headers_t *resp, const lg_string_matcher_t *allowed, size_t n_allowed,
                        h2o_mem_pool_t *pool, h2o_iovec_t *out);

/* ---- the store (store.c) ---------------------------------------------------------------------- */

/*
 * One stored response, or (vary set) the list of header names its variants are keyed by. Owned by
 * its store while listed, and by every stream holding a reference: freed when both let go. One
 * worker only, so the reference count is a plain integer.
 */
typedef struct st_lg_cache_entry_t {
    struct st_lg_cache_entry_t *hnext, *prev, *next; /* hash chain; LRU (next: older) */
    h2o_iovec_t key;
    unsigned refs;
    int listed;
    size_t bytes; /* charged to the budget */
    int status;
    lg_header_t *headers; /* names lower case; no age, content-length or hop-by-hop fields */
    size_t n_headers;
    h2o_iovec_t body, vary;
    int64_t response_time; /* wall clock seconds when stored or last validated */
    int64_t initial_age;   /* the Age the response came with */
    int64_t lifetime;      /* freshness lifetime, seconds */
    int must_validate;     /* response no-cache: validated before every use */
} lg_cache_entry_t;

/*
 * The bytes every store of one config may hold together. Each store may always keep its equal share
 * (limit / stores); past the limit a store evicts its own oldest entries, and keeps a new one only
 * within its share. The count of stores grows as workers cache for the first time, so a store that
 * filled a larger share earlier gives the difference back on its next insertion: until then the
 * total may pass the limit by that much.
 */
typedef struct st_lg_cache_budget_t {
    atomic_size_t bytes;
    atomic_uint stores;
    size_t limit;
} lg_cache_budget_t;

typedef struct st_lg_cache_store_t {
    lg_cache_entry_t **buckets;
    size_t n_buckets, n_entries, bytes;
    lg_cache_entry_t lru; /* sentinel: lru.next is the most recently used */
    lg_cache_budget_t *budget; /* shared with the config's other stores, not owned */
} lg_cache_store_t;

/** A new empty store under `budget` (counted in it). */
lg_cache_store_t *lg_cache_store_new(lg_cache_budget_t *budget);
/** Frees the store and the entries no stream holds. Its worker, or the main thread once no stream runs. */
void lg_cache_store_free(lg_cache_store_t *s);
/** The entry under `key`, made the most recently used; not referenced (valid until the next put). */
lg_cache_entry_t *lg_cache_store_get(lg_cache_store_t *s, h2o_iovec_t key);
/**
 * Lists `e` (ownership moves to the store), replacing an entry with its key, then evicts least
 * recently used entries as the budget says. Returns 0, or -1 when `e` was not kept (it is freed
 * then unless a stream holds it).
 */
int lg_cache_store_put(lg_cache_store_t *s, lg_cache_entry_t *e);
/**
 * A new entry, copying key, headers (minus age, content-length and hop-by-hop fields), body and
 * vary. Caller owns it (refs 0, unlisted) until lg_cache_store_put.
 */
lg_cache_entry_t *lg_cache_entry_new(h2o_iovec_t key, int status, const lg_header_t *headers, size_t n_headers,
                                     h2o_iovec_t body, h2o_iovec_t vary);
void lg_cache_entry_ref(lg_cache_entry_t *e);
/** Drops a stream's reference; frees the entry when it is no longer listed either. */
void lg_cache_entry_unref(lg_cache_entry_t *e);

/* ---- config (config.c) -------------------------------------------------------------------------- */

/* Immutable once built, but for the store slots, each written only by its own worker. */
typedef struct st_lg_cache_config_t {
    int disabled, ignore_request_cc;
    lg_string_matcher_t *allowed_vary;
    size_t n_allowed_vary;
    lg_cache_key_params_t key;
    uint32_t max_body_bytes; /* 0: no limit but the store's */
    lg_cache_budget_t budget;
    lg_cache_store_t *stores[LG_CACHE_MAX_WORKERS];
} lg_cache_config_t;

extern const lg_http_filter_ops_t lg_cache_ops;

void *lg_cache_create_config(const ProtobufCMessage *msg, lg_error_t *err);
void lg_cache_destroy_config(void *config);

#endif
