/*
 * envoy.filters.http.local_ratelimit: token buckets in the process (or per downstream
 * connection), checked on request headers. See local_ratelimit.c.
 */
#ifndef LG_FILTERS_LOCAL_RATELIMIT_H
#define LG_FILTERS_LOCAL_RATELIMIT_H

#include <stdint.h>

#include "filter.h"

extern const lg_http_filter_ops_t lg_local_ratelimit_ops;

/* ---- the token bucket, exposed for unit tests -------------------------------------------------- */

/*
 * A bucket refilled in steps, as Envoy's timer does: every fill_interval after the config was made,
 * tokens_per_fill tokens come back, up to max_tokens; it starts full. The state is one atomic word
 * (tokens used << 32 | the fill step it was last brought to), so workers share a bucket with one
 * compare-and-swap per request and no timer. A zeroed bucket is a full one.
 */
typedef struct st_lg_token_bucket_t {
    _Atomic uint64_t state;
} lg_token_bucket_t;

typedef struct st_lg_token_bucket_params_t {
    uint32_t max_tokens, tokens_per_fill;
    uint64_t fill_interval_ns;
} lg_token_bucket_params_t;

/**
 * Takes one token at `elapsed_ns` since the config's start. Returns 1 and sets *remaining when
 * there was one, else 0 (*remaining = 0). Any thread.
 */
int lg_token_bucket_consume(lg_token_bucket_t *b, const lg_token_bucket_params_t *p, uint64_t elapsed_ns,
                            uint32_t *remaining);

#endif
