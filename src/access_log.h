/*
 * Envoy's access logs (envoy.config.accesslog.v3.AccessLog), as the HTTP connection manager, the
 * listener and the admin endpoint configure them: a logger is a sink, a format and a filter.
 *
 * - Sinks: envoy.access_loggers.file (FileAccessLog.path, /dev/stdout and /dev/stderr included),
 *   envoy.access_loggers.stdout / stderr (StdoutAccessLog / StderrAccessLog). The gRPC access log
 *   service loggers (HttpGrpcAccessLogConfig, TcpGrpcAccessLogConfig) are accepted and log nothing,
 *   with a warning, so that a control plane that configures them is not refused.
 * - Formats: Envoy's default text format when none is given; text (log_format.text_format,
 *   text_format_source, the deprecated FileAccessLog.format); JSON (log_format.json_format, the
 *   deprecated json_format (all strings) and typed_json_format), with omit_empty_values and
 *   json_format_options.sort_properties. The command operators are header_formatter.h's list; in
 *   JSON a value that is exactly one operator keeps Envoy's type (numbers for RESPONSE_CODE,
 *   DURATION, BYTES_*, ports; null when there is no value).
 * - Filters (AccessLogFilter): those of access_log_filter.h.
 *
 * A logger is built on the main thread from the config message, then immutable and shared by every
 * worker of the snapshot. Emitting formats into a scratch pool and appends the record to the
 * worker's own buffer of the sink (access_log_sink.h): no lock, no system call, no waiting.
 *
 * Not for: the sink's buffering and the writer thread (access_log_sink.c), filters
 * (access_log_filter.c), the operators themselves (header_formatter.c), when a stream is logged
 * (conn_manager.c).
 */
#ifndef LG_ACCESS_LOG_H
#define LG_ACCESS_LOG_H

#include <stdint.h>

#include "access_log_sink.h"
#include "envoy/config/accesslog/v3/accesslog.pb-c.h"
#include "error.h"
#include "http_message.h"
#include "path.h"
#include "srcmap.h"
#include "stream_info.h"

/* Envoy's default format (SubstitutionFormatUtils::DEFAULT_FORMAT). */
#define LG_ACCESS_LOG_DEFAULT_FORMAT                                                               \
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "              \
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "                    \
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "                                                        \
    "\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" "                     \
    "\"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n"

typedef struct st_lg_access_log_t lg_access_log_t;

/**
 * Builds a logger from `pb` (its typed_config decoded through `map` when the converter kept it;
 * `map` may be NULL for xDS). `path` names `pb` in errors
 * ("static_resources.listeners[0]....access_log[1]") and is restored before returning. Opens the
 * sink (creating the file). Returns the logger (free with lg_access_log_free), or NULL with err
 * filled ("<doc>:<line>: <path>.typed_config.path: ..."). Main thread.
 */
lg_access_log_t *lg_access_log_build(const Envoy__Config__Accesslog__V3__AccessLog *pb, const lg_srcmap_t *map,
                                     lg_path_t *path, lg_error_t *err);

/**
 * Checks `pb` as lg_access_log_build does, without opening (or creating) any file: for
 * --mode validate. Returns 0, or -1 with err filled. Main thread.
 */
int lg_access_log_check(const Envoy__Config__Accesslog__V3__AccessLog *pb, const lg_srcmap_t *map, lg_path_t *path,
                        lg_error_t *err);

/**
 * Frees a logger and releases its sink (what it buffered is still written). NULL is ignored. No
 * worker may emit with it afterwards. Any thread.
 */
void lg_access_log_free(lg_access_log_t *l);

/**
 * Logs one stream if the filter accepts it: formats the record from the stream info, the request
 * head, the response head and trailers (each may be NULL when the stream never got that far) and
 * appends it to the sink's buffer of `worker_id` (< LG_ACCESS_LOG_MAX_THREADS; the main thread uses
 * LG_ACCESS_LOG_MAIN_THREAD). Never blocks; a record that does not fit is dropped and counted.
 * Worker thread `worker_id`, which must be the only thread emitting with that id.
 */
void lg_access_log_emit(const lg_access_log_t *l, unsigned worker_id, const lg_stream_info_t *info,
                        const lg_request_head_t *req, const lg_response_head_t *resp,
                        const lg_headers_t *resp_trailers);

/**
 * Writes everything buffered by every logger and stops the writer thread (a later build starts it
 * again). At exit, after the workers stopped. Main thread.
 */
void lg_access_log_flush_all(void);

/** Sets how often buffered records are written (ms; default 1000). Main thread. */
void lg_access_log_set_flush_interval(uint64_t ms);

/** Reopens every access-log file by path (log rotation). Async-signal-safe (SIGUSR1). */
void lg_access_log_reopen(void);

/** Records dropped since the start because buffers were full or writes failed. Any thread. */
uint64_t lg_access_log_dropped(void);

/** The sink path of a logger ("/dev/stdout" for StdoutAccessLog), or NULL for a gRPC logger. */
const char *lg_access_log_path(const lg_access_log_t *l);

#endif
