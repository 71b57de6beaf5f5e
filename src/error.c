/*
 * lg_error_t formatting helpers. See error.h.
 */
#include "error.h"

#include <stdio.h>
#include <string.h>

int lg_error_set(lg_error_t *err, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

int lg_error_prefix(lg_error_t *err, const char *fmt, ...)
{
    if (err == NULL)
        return -1;
    char old[LG_ERROR_MAX];
    memcpy(old, err->msg, sizeof(old));
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof(err->msg)) {
        size_t room = sizeof(err->msg) - (size_t)n - 1, olen = strnlen(old, sizeof(old) - 1);
        if (olen > room)
            olen = room;
        memcpy(err->msg + n, old, olen);
        err->msg[(size_t)n + olen] = '\0';
    }
    return -1;
}
