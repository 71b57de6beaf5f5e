/*
 * Process logging in Envoy's shape: levels trace, debug, info, warning, error, critical, off, set
 * by -l/--log-level and per component by --component-log-level. Lines go to stderr as
 * `[2026-11-28 10:45:10.123][12][info][main] message`. Thread-safe (one write(2) per line).
 *
 * Not for: access logs (those are filters' sinks with Envoy's format operators).
 */
#ifndef LG_LOG_H
#define LG_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum en_lg_log_level_t {
    LG_LOG_TRACE,
    LG_LOG_DEBUG,
    LG_LOG_INFO,
    LG_LOG_WARN,
    LG_LOG_ERROR,
    LG_LOG_CRITICAL,
    LG_LOG_OFF,
} lg_log_level_t;

/* Components with their own level, as Envoy's --component-log-level names them. */
#define LG_LOG_COMPONENTS(X)                                                                       \
    X(main) X(config) X(upstream) X(http) X(http2) X(conn_handler) X(router) X(admin) X(xds)        \
        X(dns) X(filter) X(connection) X(pool) X(jwt) X(ext_authz) X(rate_limit_quota)             \
        X(hc) X(runtime)

typedef enum en_lg_log_component_t {
#define LG_X(name) LG_LOGC_##name,
    LG_LOG_COMPONENTS(LG_X)
#undef LG_X
        LG_LOGC__COUNT
} lg_log_component_t;

extern int lg_log_levels[LG_LOGC__COUNT];

/** Parses an Envoy level name ("warn" and "warning" both work); -1 when unknown. */
int lg_log_level_parse(const char *name);
/** Sets every component's level. */
void lg_log_set_level(lg_log_level_t level);
/**
 * Applies "--component-log-level upstream:debug,connection:trace". Returns 0, or -1 with a message
 * in errbuf naming the bad part.
 */
int lg_log_set_component_levels(const char *spec, char *errbuf, size_t errlen);

void lg_log_write(lg_log_component_t c, lg_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define lg_log(c, level, ...)                                                                      \
    do {                                                                                           \
        if ((int)(level) >= lg_log_levels[LG_LOGC_##c])                                            \
            lg_log_write(LG_LOGC_##c, level, __VA_ARGS__);                                         \
    } while (0)
#define lg_debug(c, ...) lg_log(c, LG_LOG_DEBUG, __VA_ARGS__)
#define lg_info(c, ...) lg_log(c, LG_LOG_INFO, __VA_ARGS__)
#define lg_warn(c, ...) lg_log(c, LG_LOG_WARN, __VA_ARGS__)
#define lg_err(c, ...) lg_log(c, LG_LOG_ERROR, __VA_ARGS__)

/** Out of memory and impossible states: logs and aborts. */
_Noreturn void lg_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
