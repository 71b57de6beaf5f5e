/*
 * envoy.filters.http.ext_authz: external authorization over gRPC or HTTP. See ext_authz.c.
 */
#ifndef LG_FILTERS_EXT_AUTHZ_H
#define LG_FILTERS_EXT_AUTHZ_H

#include "filter.h"

extern const lg_http_filter_ops_t lg_ext_authz_ops;

#endif
