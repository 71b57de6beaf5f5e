/*
 * Header values with Envoy's command operators, and the header mutations built from them.
 *
 * A formatter is a value such as `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%` or
 * `client=%REQ(x-client-id)%; at %START_TIME(%s)%`, compiled once on the main thread into parts
 * (literal text and operators), then evaluated per request against what is known about the stream
 * (lg_stream_info_t) and its request and response heads. Syntax as Envoy's substitution format:
 * `%%` is a literal `%`; an operator is `%NAME%`, `%NAME(arg)%` or `%NAME(arg):N%` (N truncates the
 * value); any other `%` is an error, as is an operator legate does not know.
 *
 * Header mutations are Envoy's `request_headers_to_add/remove` and `response_headers_to_add/remove`
 * (route, virtual host, route configuration): removals first, then every value is formatted against
 * the headers as they are after the removals, then overwrites, then additions, exactly in Envoy's
 * order. The operator list is one X-macro so the access-log formatter can grow it in one place.
 *
 * Compiled objects are immutable and shared by workers; evaluation writes only into the caller's
 * pool. Not for: access-log sinks and JSON formats (they reuse the formatter, not this file).
 */
#ifndef LG_HEADER_FORMATTER_H
#define LG_HEADER_FORMATTER_H

#include <stddef.h>
#include <stdint.h>

#include "envoy/config/core/v3/base.pb-c.h"
#include "error.h"
#include "http_message.h"
#include "path.h"
#include "srcmap.h"
#include "stream_info.h"

/*
 * The operators, with whether they take an argument (0 never, 1 optional, 2 required) and whether
 * Envoy types their value as a number in JSON access logs (1) or as a string (0).
 * DOWNSTREAM_DIRECT_* equal the DOWNSTREAM_* ones: legate does not take the remote address from
 * X-Forwarded-For or PROXY protocol into the stream info.
 */
#define LG_FORMAT_OPERATORS(X)                                                                     \
    X(DOWNSTREAM_REMOTE_ADDRESS, 0, 0)                                                             \
    X(DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT, 0, 0)                                                \
    X(DOWNSTREAM_REMOTE_PORT, 0, 1)                                                                \
    X(DOWNSTREAM_DIRECT_REMOTE_ADDRESS, 0, 0)                                                      \
    X(DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT, 0, 0)                                         \
    X(DOWNSTREAM_DIRECT_REMOTE_PORT, 0, 1)                                                         \
    X(DOWNSTREAM_LOCAL_ADDRESS, 0, 0)                                                              \
    X(DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT, 0, 0)                                                 \
    X(DOWNSTREAM_LOCAL_PORT, 0, 1)                                                                 \
    X(DOWNSTREAM_DIRECT_LOCAL_ADDRESS, 0, 0)                                                       \
    X(DOWNSTREAM_DIRECT_LOCAL_ADDRESS_WITHOUT_PORT, 0, 0)                                          \
    X(DOWNSTREAM_DIRECT_LOCAL_PORT, 0, 1)                                                          \
    X(DOWNSTREAM_PEER_URI_SAN, 0, 0)                                                               \
    X(REQUESTED_SERVER_NAME, 0, 0)                                                                 \
    X(PROTOCOL, 0, 0)                                                                              \
    X(UPSTREAM_REMOTE_ADDRESS, 0, 0)                                                               \
    X(UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT, 0, 0)                                                  \
    X(UPSTREAM_REMOTE_PORT, 0, 1)                                                                  \
    X(UPSTREAM_HOST, 0, 0)                                                                         \
    X(UPSTREAM_CLUSTER, 0, 0)                                                                      \
    X(UPSTREAM_LOCAL_ADDRESS, 0, 0)                                                                \
    X(UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT, 0, 0)                                                   \
    X(UPSTREAM_LOCAL_PORT, 0, 1)                                                                   \
    X(UPSTREAM_TRANSPORT_FAILURE_REASON, 0, 0)                                                     \
    X(UPSTREAM_REQUEST_ATTEMPT_COUNT, 0, 1)                                                        \
    X(ROUTE_NAME, 0, 0)                                                                            \
    X(HOSTNAME, 0, 0)                                                                              \
    X(CONNECTION_ID, 0, 1)                                                                         \
    X(STREAM_ID, 0, 0)                                                                             \
    X(START_TIME, 1, 0)                                                                            \
    X(DURATION, 0, 1)                                                                              \
    X(REQUEST_DURATION, 0, 1)                                                                      \
    X(RESPONSE_DURATION, 0, 1)                                                                     \
    X(RESPONSE_TX_DURATION, 0, 1)                                                                  \
    X(RESPONSE_CODE, 0, 1)                                                                         \
    X(RESPONSE_FLAGS, 0, 0)                                                                        \
    X(RESPONSE_FLAGS_LONG, 0, 0)                                                                   \
    X(RESPONSE_CODE_DETAILS, 1, 0)                                                                 \
    X(BYTES_RECEIVED, 0, 1)                                                                        \
    X(BYTES_SENT, 0, 1)                                                                            \
    X(GRPC_STATUS, 1, 0)                                                                           \
    X(GRPC_STATUS_NUMBER, 0, 1)                                                                    \
    X(REQ, 2, 0)                                                                                   \
    X(RESP, 2, 0)                                                                                  \
    X(TRAILER, 2, 0)

typedef enum en_lg_format_op_t {
    LG_FORMAT_LITERAL,
#define LG_X(name, arg, num) LG_FORMAT_OP_##name,
    LG_FORMAT_OPERATORS(LG_X)
#undef LG_X
        LG_FORMAT_OP__COUNT
} lg_format_op_t;

/* What an evaluation may read. Every member may be NULL; operators then give "no value". */
typedef struct st_lg_format_context_t {
    const lg_stream_info_t *info;
    const lg_request_head_t *request;
    const lg_response_head_t *response;
} lg_format_context_t;

/* Compile flags. */
enum {
    /* A value that is not known becomes "-" (access logs) instead of "" (header values). */
    LG_FORMAT_DASH_FOR_MISSING = 0x1,
    /*
     * Envoy's access-log values where they differ from legate's header values: %RESPONSE_CODE% is
     * 0 before any response, %RESPONSE_FLAGS% and %RESPONSE_FLAGS_LONG% are "-" (a value, not a
     * missing one) when no flag is set.
     */
    LG_FORMAT_ACCESS_LOG = 0x2,
};

typedef struct st_lg_header_formatter_t lg_header_formatter_t;

/**
 * Compiles `len` bytes of `text`. Returns the formatter (free with lg_header_formatter_free), or
 * NULL with err filled ("Not supported field in StreamInfo: FOO", "Incorrect configuration: ...").
 * Main thread.
 */
lg_header_formatter_t *lg_header_formatter_compile(const char *text, size_t len, unsigned flags,
                                                   lg_error_t *err);

/** 1 when the value has no operators (then *value, if not NULL, is the constant text). */
int lg_header_formatter_is_constant(const lg_header_formatter_t *f, h2o_iovec_t *value);

/**
 * Evaluates the formatter. The result lives in `pool` or in the formatter itself (constant
 * values), so it stays valid as long as both do; it is not NUL-terminated. Worker thread.
 */
h2o_iovec_t lg_header_formatter_format(const lg_header_formatter_t *f, const lg_format_context_t *ctx,
                                       h2o_mem_pool_t *pool);

/**
 * Evaluates the formatter for an access log: as lg_header_formatter_format, with the response
 * trailers (%TRAILER%, %GRPC_STATUS%; may be NULL). When `missing` is not NULL it is set to 1 when
 * the formatter is a single operator that has no value (the result is then the placeholder), so a
 * JSON log can print null. Worker thread.
 */
h2o_iovec_t lg_header_formatter_format_log(const lg_header_formatter_t *f, const lg_format_context_t *ctx,
                                           const lg_headers_t *response_trailers, h2o_mem_pool_t *pool,
                                           int *missing);

/** 1 when the formatter is exactly one operator whose value Envoy logs as a JSON number. */
int lg_header_formatter_is_numeric(const lg_header_formatter_t *f);

/**
 * The gRPC status of a stream as Envoy's access logs see it: grpc-status of the trailers, else of
 * the response headers (trailers-only), else mapped from the HTTP status (503 -> 14 ...). An
 * unparsable grpc-status is -1. Returns 1 with *status set, or 0 when there is no response at all.
 * Any thread.
 */
int lg_grpc_status_for_log(const lg_format_context_t *ctx, const lg_headers_t *trailers, int64_t *status);

/** Frees a formatter; NULL is ignored. */
void lg_header_formatter_free(lg_header_formatter_t *f);

/**
 * Formats `ms` since the epoch (UTC) as START_TIME does: strftime conversions, plus `%s` (seconds
 * since the epoch), `%f` (nanoseconds, 9 digits) and `%1f`..`%9f` (that many fraction digits).
 * Envoy's default is "%Y-%m-%dT%H:%M:%S.%3fZ". Writes at most len - 1 bytes and a NUL into buf;
 * returns the length written.
 */
size_t lg_format_time(const char *fmt, size_t fmt_len, uint64_t ms, char *buf, size_t len);

/* ---- header mutations ------------------------------------------------------------------- */

typedef enum en_lg_header_append_action_t { /* HeaderValueOption.HeaderAppendAction */
    LG_HEADER_APPEND_IF_EXISTS_OR_ADD,
    LG_HEADER_ADD_IF_ABSENT,
    LG_HEADER_OVERWRITE_IF_EXISTS_OR_ADD,
    LG_HEADER_OVERWRITE_IF_EXISTS,
} lg_header_append_action_t;

typedef struct st_lg_header_add_t {
    h2o_iovec_t name; /* lower case, NUL-terminated */
    lg_header_formatter_t *value;
    lg_header_append_action_t action;
    int keep_empty_value; /* add even when the value formats to "" */
} lg_header_add_t;

typedef struct st_lg_header_mutations_t {
    lg_header_add_t *adds;
    size_t n_adds;
    h2o_iovec_t *removes; /* lower case, NUL-terminated */
    size_t n_removes;
} lg_header_mutations_t;

/**
 * Compiles `adds` (HeaderValueOption) and `removes` (header names) as they sit in a route,
 * virtual host or route configuration under the field names `adds_field` and `removes_field`
 * (used in error paths, e.g. "request_headers_to_add"). `path` is where the owning message is; it
 * is restored before returning. Rejects what Envoy rejects: pseudo-headers and `host`, invalid
 * names or values, `append` together with a non-default `append_action`, unknown operators.
 * `map` (may be NULL) adds the document line to errors. Returns 0, or -1 with err filled (m is then
 * empty). Main thread.
 */
int lg_header_mutations_init(lg_header_mutations_t *m, Envoy__Config__Core__V3__HeaderValueOption *const *adds,
                             size_t n_adds, char *const *removes, size_t n_removes, const char *adds_field,
                             const char *removes_field, lg_path_t *path, const lg_srcmap_t *map,
                             lg_error_t *err);

/** Frees what lg_header_mutations_init allocated; m is empty afterwards. */
void lg_header_mutations_dispose(lg_header_mutations_t *m);

/** 1 when there is nothing to do. */
static inline int lg_header_mutations_empty(const lg_header_mutations_t *m)
{
    return m->n_adds == 0 && m->n_removes == 0;
}

/**
 * Applies the mutations to `headers` (the request's or the response's fields): removals, then the
 * values formatted against `ctx`, then overwrites, then additions. New strings come from `pool`.
 * Worker thread.
 */
void lg_header_mutations_apply(const lg_header_mutations_t *m, lg_headers_t *headers,
                               const lg_format_context_t *ctx, h2o_mem_pool_t *pool);

/** Valid header field name (RFC 9110 token), not empty. */
int lg_header_name_is_valid(const char *s, size_t len);
/** Valid header field value as Envoy checks config: no NUL, CR or LF. */
int lg_header_value_is_valid(const char *s, size_t len);

#endif
