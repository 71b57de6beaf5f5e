/*
 * Process logging in Envoy's shape: levels trace, debug, info, warning, error, critical, off, set
 * by -l/--log-level and per component by --component-log-level. Lines go to stderr (or the
 * --log-path file, reopened by lg_log_reopen) as `[2026-11-28 10:45:10.123][12][info][main] message`,
 * or in an spdlog pattern given by --log-format (lg_log_set_format lists the flags it knows).
 * Thread-safe (one write(2) per line).
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

/**
 * --log-path: lines go to `path` (created, appended) instead of stderr. Main thread, before other
 * threads log. Returns 0, or -1 with a message in errbuf.
 */
int lg_log_set_path(const char *path, char *errbuf, size_t errlen);
/** Reopens the --log-path file (log rotation; SIGUSR1). Any thread; a no-op without a path. */
void lg_log_reopen(void);
/**
 * --log-format: an spdlog pattern with the flags %Y %m %d %H %M %S %T %e %f %F %t %P %l %L %n %v
 * %%. Envoy's default "[%Y-%m-%d %T.%e][%t][%l][%n] [%g:%#] %v" is accepted and means legate's
 * default line (which has no source location). Main thread, at startup. Returns 0, or -1 when the
 * pattern uses another flag (or %v twice): the default is kept and the caller warns.
 */
int lg_log_set_format(const char *pattern);

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
