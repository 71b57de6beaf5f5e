/*
 * lg_strbuf_t: see strbuf.h.
 */
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void reserve(lg_strbuf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL)
        lg_fatal("out of memory");
    b->data = d;
    b->cap = cap;
}

void lg_strbuf_append(lg_strbuf_t *b, const char *s, size_t len)
{
    reserve(b, len);
    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void lg_strbuf_puts(lg_strbuf_t *b, const char *s)
{
    lg_strbuf_append(b, s, strlen(s));
}

void lg_strbuf_printf(lg_strbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void lg_strbuf_json_string(lg_strbuf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    reserve(b, len + 2);
    lg_strbuf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; ++i) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = NULL;
        char u[7];
        switch (ch) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (ch < 0x20 || ch == 0x7f) {
                memcpy(u, "\\u00", 4);
                u[4] = hex[ch >> 4];
                u[5] = hex[ch & 15];
                u[6] = '\0';
                esc = u;
            }
        }
        if (esc != NULL) {
            lg_strbuf_append(b, s + i - run, run);
            run = 0;
            lg_strbuf_puts(b, esc);
        } else {
            ++run;
        }
    }
    lg_strbuf_append(b, s + len - run, run);
    lg_strbuf_append(b, "\"", 1);
}

char *lg_strbuf_release(lg_strbuf_t *b)
{
    char *d = b->data;
    if (d == NULL) {
        d = calloc(1, 1);
        if (d == NULL)
            lg_fatal("out of memory");
    }
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void lg_strbuf_dispose(lg_strbuf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
