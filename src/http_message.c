/*
 * Header lists: see http_message.h. Lists are small (tens of fields), so lookups are linear
 * scans; names are compared exactly because they are stored lower case.
 */
#include "http_message.h"

#include <ctype.h>
#include <string.h>

#include "log.h"

static void grow(h2o_mem_pool_t *pool, lg_headers_t *h)
{
    size_t cap = h->capacity ? h->capacity * 2 : 16;
    lg_header_t *n = h2o_mem_alloc_pool(pool, cap * sizeof(*n));
    if (h->size != 0)
        memcpy(n, h->entries, h->size * sizeof(*n));
    h->entries = n;
    h->capacity = cap;
}

void lg_headers_add(h2o_mem_pool_t *pool, lg_headers_t *h, h2o_iovec_t name, h2o_iovec_t value)
{
    if (h->size == h->capacity)
        grow(pool, h);
    h->entries[h->size].name = name;
    h->entries[h->size].value = value;
    ++h->size;
}

void lg_headers_add_copy(h2o_mem_pool_t *pool, lg_headers_t *h, const char *name, size_t name_len,
                         const char *value, size_t value_len)
{
    char *n = h2o_mem_alloc_pool(pool, name_len + value_len + 2);
    char *v = n + name_len + 1;
    for (size_t i = 0; i < name_len; ++i)
        n[i] = (char)tolower((unsigned char)name[i]);
    n[name_len] = '\0';
    memcpy(v, value, value_len);
    v[value_len] = '\0';
    lg_headers_add(pool, h, h2o_iovec_init(n, name_len), h2o_iovec_init(v, value_len));
}

ssize_t lg_headers_find(const lg_headers_t *h, const char *name, size_t name_len, size_t from)
{
    for (size_t i = from; i < h->size; ++i)
        if (h->entries[i].name.len == name_len && memcmp(h->entries[i].name.base, name, name_len) == 0)
            return (ssize_t)i;
    return -1;
}

const h2o_iovec_t *lg_headers_get(const lg_headers_t *h, const char *name, size_t name_len)
{
    ssize_t i = lg_headers_find(h, name, name_len, 0);
    return i < 0 ? NULL : &h->entries[i].value;
}

size_t lg_headers_remove(lg_headers_t *h, const char *name, size_t name_len)
{
    size_t out = 0, removed = 0;
    for (size_t i = 0; i < h->size; ++i) {
        const lg_header_t *e = &h->entries[i];
        if (e->name.len == name_len && memcmp(e->name.base, name, name_len) == 0) {
            ++removed;
            continue;
        }
        h->entries[out++] = *e; /* keeps the order of the others */
    }
    h->size = out;
    return removed;
}

void lg_headers_set(h2o_mem_pool_t *pool, lg_headers_t *h, h2o_iovec_t name, h2o_iovec_t value)
{
    ssize_t i = lg_headers_find(h, name.base, name.len, 0);
    if (i < 0) {
        lg_headers_add(pool, h, name, value);
        return;
    }
    h->entries[i].value = value;
    /* any later duplicates go */
    size_t out = (size_t)i + 1;
    for (size_t j = (size_t)i + 1; j < h->size; ++j) {
        const lg_header_t *e = &h->entries[j];
        if (e->name.len == name.len && memcmp(e->name.base, name.base, name.len) == 0)
            continue;
        h->entries[out++] = *e;
    }
    h->size = out;
}

void lg_headers_append(h2o_mem_pool_t *pool, lg_headers_t *dst, const lg_headers_t *src)
{
    for (size_t i = 0; i < src->size; ++i)
        lg_headers_add(pool, dst, src->entries[i].name, src->entries[i].value);
}

void lg_headers_copy(h2o_mem_pool_t *pool, lg_headers_t *dst, const lg_headers_t *src)
{
    memset(dst, 0, sizeof(*dst));
    for (size_t i = 0; i < src->size; ++i)
        lg_headers_add_copy(pool, dst, src->entries[i].name.base, src->entries[i].name.len,
                            src->entries[i].value.base, src->entries[i].value.len);
}
