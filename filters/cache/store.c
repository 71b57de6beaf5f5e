/*
 * The cache filter's in-memory store (see cache.h): one per worker, a chained hash table of entries
 * on a least-recently-used list. All stores of one config share a byte budget (lg_cache_budget_t)
 * through atomic counts, so the bound holds over every worker while a hit takes no lock; a worker
 * that goes past it evicts its own oldest entries. Not for: sharing entries between workers, persistence.
 */
#include <stdlib.h>
#include <string.h>

#include <h2o/string_.h>

#include "filters/cache/cache.h"
#include "log.h"
#include "xalloc.h"

/* What an entry costs besides its bytes: the struct and the table slot, roughly. */
#define ENTRY_OVERHEAD 128

static uint64_t hash(h2o_iovec_t key)
{
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < key.len; ++i) {
        h ^= (unsigned char)key.base[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int dropped_header(h2o_iovec_t name)
{
    static const char *const names[] = {"age", "content-length", "transfer-encoding", "connection", "keep-alive",
                                        "proxy-connection", "upgrade", "te", "trailer"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i)
        if (h2o_memis(name.base, name.len, names[i], strlen(names[i])))
            return 1;
    return 0;
}

lg_cache_entry_t *lg_cache_entry_new(h2o_iovec_t key, int status, const lg_header_t *headers, size_t n_headers,
                                     h2o_iovec_t body, h2o_iovec_t vary)
{
    size_t n = 0, strings = key.len + body.len + vary.len;
    for (size_t i = 0; i < n_headers; ++i)
        if (!dropped_header(headers[i].name)) {
            ++n;
            strings += headers[i].name.len + headers[i].value.len;
        }
    /* one block: the struct, the header array, then every string */
    lg_cache_entry_t *e = lg_xcalloc(1, sizeof(*e) + n * sizeof(lg_header_t) + strings + 1);
    lg_header_t *hs = (lg_header_t *)(e + 1);
    char *w = (char *)(hs + n);
#define COPY(dst, src)                                                                                      \
    do {                                                                                                    \
        if ((src).len != 0)                                                                                 \
            memcpy(w, (src).base, (src).len);                                                               \
        (dst) = h2o_iovec_init(w, (src).len);                                                               \
        w += (src).len;                                                                                     \
    } while (0)
    COPY(e->key, key);
    COPY(e->body, body);
    COPY(e->vary, vary);
    for (size_t i = 0, j = 0; i < n_headers; ++i)
        if (!dropped_header(headers[i].name)) {
            COPY(hs[j].name, headers[i].name);
            COPY(hs[j].value, headers[i].value);
            ++j;
        }
#undef COPY
    e->headers = hs;
    e->n_headers = n;
    e->status = status;
    e->bytes = sizeof(*e) + n * sizeof(lg_header_t) + strings + ENTRY_OVERHEAD;
    return e;
}

void lg_cache_entry_ref(lg_cache_entry_t *e)
{
    ++e->refs;
}

void lg_cache_entry_unref(lg_cache_entry_t *e)
{
    if (--e->refs == 0 && !e->listed)
        free(e);
}

lg_cache_store_t *lg_cache_store_new(lg_cache_budget_t *budget)
{
    lg_cache_store_t *s = lg_xcalloc(1, sizeof(*s));
    s->n_buckets = 64;
    s->buckets = lg_xcalloc(s->n_buckets, sizeof(*s->buckets));
    s->lru.next = s->lru.prev = &s->lru;
    s->budget = budget;
    atomic_fetch_add_explicit(&budget->stores, 1, memory_order_relaxed);
    return s;
}

static lg_cache_entry_t **slot_of(lg_cache_store_t *s, h2o_iovec_t key)
{
    lg_cache_entry_t **p = &s->buckets[hash(key) & (s->n_buckets - 1)];
    while (*p != NULL && !h2o_memis((*p)->key.base, (*p)->key.len, key.base, key.len))
        p = &(*p)->hnext;
    return p;
}

static void lru_unlink(lg_cache_entry_t *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_push_front(lg_cache_store_t *s, lg_cache_entry_t *e)
{
    e->next = s->lru.next;
    e->prev = &s->lru;
    s->lru.next->prev = e;
    s->lru.next = e;
}

/* Unlists e (it must be listed) and frees it unless a stream still holds it. */
static void remove_entry(lg_cache_store_t *s, lg_cache_entry_t *e)
{
    lg_cache_entry_t **p = slot_of(s, e->key);
    *p = e->hnext;
    lru_unlink(e);
    --s->n_entries;
    s->bytes -= e->bytes;
    atomic_fetch_sub_explicit(&s->budget->bytes, e->bytes, memory_order_relaxed);
    e->listed = 0;
    if (e->refs == 0)
        free(e);
}

static void grow(lg_cache_store_t *s)
{
    size_t n = s->n_buckets * 2;
    lg_cache_entry_t **b = lg_xcalloc(n, sizeof(*b));
    for (size_t i = 0; i < s->n_buckets; ++i)
        for (lg_cache_entry_t *e = s->buckets[i], *next; e != NULL; e = next) {
            next = e->hnext;
            lg_cache_entry_t **slot = &b[hash(e->key) & (n - 1)];
            e->hnext = *slot;
            *slot = e;
        }
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = n;
}

void lg_cache_store_free(lg_cache_store_t *s)
{
    if (s == NULL)
        return;
    while (s->lru.next != &s->lru)
        remove_entry(s, s->lru.next);
    free(s->buckets);
    free(s);
}

lg_cache_entry_t *lg_cache_store_get(lg_cache_store_t *s, h2o_iovec_t key)
{
    lg_cache_entry_t *e = *slot_of(s, key);
    if (e != NULL && s->lru.next != e) {
        lru_unlink(e);
        lru_push_front(s, e);
    }
    return e;
}

int lg_cache_store_put(lg_cache_store_t *s, lg_cache_entry_t *e)
{
    size_t limit = s->budget->limit;
    unsigned stores = atomic_load_explicit(&s->budget->stores, memory_order_relaxed);
    size_t share = limit / (stores != 0 ? stores : 1);
    if (e->bytes > share) {
        free(e);
        return -1;
    }
    lg_cache_entry_t **slot = slot_of(s, e->key);
    if (*slot != NULL) {
        remove_entry(s, *slot);
        slot = slot_of(s, e->key);
    }
    e->hnext = *slot;
    *slot = e;
    e->listed = 1;
    lru_push_front(s, e);
    ++s->n_entries;
    s->bytes += e->bytes;
    atomic_fetch_add_explicit(&s->budget->bytes, e->bytes, memory_order_relaxed);
    while (s->bytes > share || atomic_load_explicit(&s->budget->bytes, memory_order_relaxed) > limit) {
        lg_cache_entry_t *old = s->lru.prev;
        if (old == e)
            break; /* only the new entry is left, within the share: the others are over theirs */
        remove_entry(s, old);
    }
    if (s->n_entries > s->n_buckets)
        grow(s);
    return 0;
}
