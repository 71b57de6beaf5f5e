/*
 * Allocation that does not fail: running out of memory ends the process (lg_fatal), as it does
 * everywhere in legate, so callers never carry a NULL check for it. Zero counts and sizes still
 * return a unique pointer; a NULL string duplicates as "".
 */
#ifndef LG_XALLOC_H
#define LG_XALLOC_H

#include <stdlib.h>
#include <string.h>

#include "log.h"

static inline void *lg_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n != 0 ? n : 1, size != 0 ? size : 1);
    if (p == NULL)
        lg_fatal("out of memory");
    return p;
}

static inline char *lg_xstrdup(const char *s)
{
    char *d = strdup(s != NULL ? s : "");
    if (d == NULL)
        lg_fatal("out of memory");
    return d;
}

#endif
