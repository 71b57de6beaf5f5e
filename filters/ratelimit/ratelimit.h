/*
 * envoy.filters.http.ratelimit: global rate limiting through a rate-limit service. See ratelimit.c.
 */
#ifndef LG_FILTERS_RATELIMIT_H
#define LG_FILTERS_RATELIMIT_H

#include "filter.h"

extern const lg_http_filter_ops_t lg_ratelimit_ops;

#endif
