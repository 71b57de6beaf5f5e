/*
 * Errors of config and xDS processing. A caller owns an lg_error_t and passes it down; the first
 * failure fills it with one complete, human-readable line and the call returns -1. The line names
 * where the problem is (file, line, field path) so an operator can fix it without guessing:
 *
 *     front-proxy.yaml:42: static_resources.clusters[1].connect_timeout: invalid duration "5x"
 *
 * Not for: untrusted request bytes (those become local replies and stats, never lg_error_t).
 */
#ifndef LG_ERROR_H
#define LG_ERROR_H

#include <stdarg.h>

#define LG_ERROR_MAX 1024

typedef struct st_lg_error_t {
    char msg[LG_ERROR_MAX];
} lg_error_t;

/**
 * Formats a message into err (truncated to LG_ERROR_MAX - 1). err may be NULL, then nothing
 * happens. Always returns -1 so callers can `return lg_error_set(err, ...);`.
 */
int lg_error_set(lg_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Prefixes the existing message with the formatted text ("<prefix><old message>"). Returns -1. */
int lg_error_prefix(lg_error_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
