/*
 * lg_path_t: see path.h.
 */
#include "path.h"

#include <stdio.h>
#include <string.h>

static size_t append(lg_path_t *p, const char *fmt, const char *s, size_t n)
{
    size_t mark = p->len;
    if (p->len >= LG_PATH_MAX - 4)
        return mark;
    int w = fmt != NULL ? snprintf(p->buf + p->len, LG_PATH_MAX - p->len, fmt, s)
                        : snprintf(p->buf + p->len, LG_PATH_MAX - p->len, "[%zu]", n);
    if (w < 0 || (size_t)w >= LG_PATH_MAX - p->len) {
        memcpy(p->buf + LG_PATH_MAX - 4, "...", 4);
        p->len = LG_PATH_MAX - 1;
    } else {
        p->len += (size_t)w;
    }
    return mark;
}

size_t lg_path_push_field(lg_path_t *p, const char *name)
{
    return append(p, p->len == 0 ? "%s" : ".%s", name, 0);
}

size_t lg_path_push_index(lg_path_t *p, size_t index)
{
    return append(p, NULL, NULL, index);
}

size_t lg_path_push_key(lg_path_t *p, const char *key)
{
    return append(p, "[%s]", key, 0);
}
