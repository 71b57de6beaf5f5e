/*
 * Envoy's access-log filters (envoy.config.accesslog.v3.AccessLogFilter): whether a finished
 * stream is logged. Supported: status_code_filter, duration_filter, not_health_check_filter,
 * response_flag_filter, grpc_status_filter, header_filter, and_filter / or_filter, and
 * runtime_filter sampled at its default percentage, on x-request-id as Envoy does (legate has no
 * runtime overrides). traceable_filter, metadata_filter, extension_filter and log_type_filter are
 * refused as not supported by legate.
 *
 * A filter tree is built once on the main thread, then immutable and evaluated by any worker.
 * Not for: formats and sinks (access_log.c, access_log_sink.c).
 */
#ifndef LG_ACCESS_LOG_FILTER_H
#define LG_ACCESS_LOG_FILTER_H

#include "envoy/config/accesslog/v3/accesslog.pb-c.h"
#include "error.h"
#include "header_formatter.h"
#include "path.h"
#include "srcmap.h"

typedef struct st_lg_access_log_filter_t lg_access_log_filter_t;

/**
 * Builds the filter `pb`, which `path` names ("...access_log[0].filter"; restored on return);
 * `map` (may be NULL) adds document lines to errors. Returns the filter (free with
 * lg_access_log_filter_free), or NULL with err filled. Main thread.
 */
lg_access_log_filter_t *lg_access_log_filter_build(const Envoy__Config__Accesslog__V3__AccessLogFilter *pb,
                                                   const lg_srcmap_t *map, lg_path_t *path, lg_error_t *err);

/**
 * 1 when the stream described by `ctx` (any member may be NULL) and its response `trailers` (may
 * be NULL) passes the filter. `pool` is scratch memory (header matching joins repeated fields).
 * Any thread.
 */
int lg_access_log_filter_eval(const lg_access_log_filter_t *f, const lg_format_context_t *ctx,
                              const lg_headers_t *trailers, h2o_mem_pool_t *pool);

/** Frees a filter; NULL is ignored. */
void lg_access_log_filter_free(lg_access_log_filter_t *f);

#endif
