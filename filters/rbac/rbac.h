/*
 * envoy.filters.http.rbac: role-based access control on requests. See rbac.c.
 */
#ifndef LG_FILTERS_RBAC_H
#define LG_FILTERS_RBAC_H

#include "filter.h"

extern const lg_http_filter_ops_t lg_rbac_ops;

#endif
