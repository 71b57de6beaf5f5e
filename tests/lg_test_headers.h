/*
 * A test helper: header fields as one string, so a test asserts names, values and order at once.
 */
#ifndef LG_TEST_HEADERS_H
#define LG_TEST_HEADERS_H

#include <stdio.h>
#include <string.h>

#include "http_message.h"

/** "name<sep>value<end>" for every field, in order, into a static buffer (1 KiB, truncated). */
static inline const char *lg_test_headers_dump(const lg_headers_t *h, const char *sep, const char *end)
{
    static char out[1024];
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < h->size; ++i) {
        const lg_header_t *e = &h->entries[i];
        int w = snprintf(out + n, sizeof(out) - n, "%.*s%s%.*s%s", (int)e->name.len, e->name.base, sep,
                         (int)e->value.len, e->value.base, end);
        if (w < 0 || (size_t)w >= sizeof(out) - n)
            break;
        n += (size_t)w;
    }
    return out;
}

#endif
