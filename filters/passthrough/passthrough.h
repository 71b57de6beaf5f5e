/*
 * The reference filter: see passthrough.c.
 */
#ifndef LG_FILTERS_PASSTHROUGH_H
#define LG_FILTERS_PASSTHROUGH_H

#include "filter.h"

extern const lg_http_filter_ops_t lg_passthrough_ops;

#endif
