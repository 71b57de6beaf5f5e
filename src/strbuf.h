/*
 * A growable byte string for building output (JSON, admin pages, error lists). Appends never fail:
 * out of memory is fatal. Not for hot-path request data (that lives in h2o buffers and pools).
 */
#ifndef LG_STRBUF_H
#define LG_STRBUF_H

#include <stddef.h>

typedef struct st_lg_strbuf_t {
    char *data; /* NUL-terminated once anything was appended */
    size_t len, cap;
} lg_strbuf_t;

#define LG_STRBUF_INIT {NULL, 0, 0}

void lg_strbuf_append(lg_strbuf_t *b, const char *s, size_t len);
void lg_strbuf_puts(lg_strbuf_t *b, const char *s);
void lg_strbuf_printf(lg_strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Appends s as a JSON string literal, quotes included. */
void lg_strbuf_json_string(lg_strbuf_t *b, const char *s, size_t len);
/** Hands the string to the caller (free() it); the buffer is empty afterwards. Never NULL. */
char *lg_strbuf_release(lg_strbuf_t *b);
void lg_strbuf_dispose(lg_strbuf_t *b);

#endif
