/*
 * The stats registry and summing: see stats.h. Registration happens on the main thread only; the
 * name table is append-only, so readers on other threads see a prefix of it.
 */
#include "stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MAX_BLOCKS 256

static char *names[LG_STATS_MAX];
static lg_stat_type_t types[LG_STATS_MAX];
static atomic_size_t n_names;
static uint32_t index_slots[LG_STATS_MAX * 2]; /* id + 1 by name hash; 0 = empty */
static lg_stats_cells_t *blocks[MAX_BLOCKS];
static atomic_size_t n_blocks;

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; ++s)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)(h % (LG_STATS_MAX * 2));
}

lg_stat_id_t lg_stats_register(const char *name, lg_stat_type_t type)
{
    lg_stat_id_t id;
    if (lg_stats_find(name, &id) == 0)
        return id;
    size_t n = atomic_load(&n_names);
    if (n == LG_STATS_MAX)
        lg_fatal("too many stats (%d)", LG_STATS_MAX);
    if ((names[n] = strdup(name)) == NULL)
        lg_fatal("out of memory");
    types[n] = type;
    size_t slot = hash(name);
    while (index_slots[slot] != 0)
        slot = (slot + 1) % (LG_STATS_MAX * 2);
    index_slots[slot] = (uint32_t)n + 1;
    atomic_store(&n_names, n + 1);
    return (lg_stat_id_t)n;
}

lg_stat_id_t lg_stats_registerf(lg_stat_type_t type, const char *fmt, ...)
{
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    return lg_stats_register(name, type);
}

lg_stats_cells_t *lg_stats_cells_new(void)
{
    lg_stats_cells_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        lg_fatal("out of memory");
    return c;
}

void lg_stats_attach(lg_stats_cells_t *cells)
{
    size_t n = atomic_load(&n_blocks);
    if (n == MAX_BLOCKS)
        lg_fatal("too many stats blocks");
    blocks[n] = cells;
    atomic_store(&n_blocks, n + 1);
}

uint64_t lg_stats_value(lg_stat_id_t id)
{
    uint64_t sum = 0;
    size_t n = atomic_load(&n_blocks);
    for (size_t i = 0; i < n; ++i)
        sum += atomic_load_explicit(&blocks[i]->cells[id], memory_order_relaxed);
    return sum;
}

int lg_stats_find(const char *name, lg_stat_id_t *id)
{
    size_t n = atomic_load(&n_names);
    for (size_t slot = hash(name); index_slots[slot] != 0; slot = (slot + 1) % (LG_STATS_MAX * 2)) {
        uint32_t i = index_slots[slot] - 1;
        if (i < n && strcmp(names[i], name) == 0) {
            *id = i;
            return 0;
        }
    }
    return -1;
}

size_t lg_stats_count(void)
{
    return atomic_load(&n_names);
}

const char *lg_stats_name(lg_stat_id_t id, lg_stat_type_t *type)
{
    if (type != NULL)
        *type = types[id];
    return names[id];
}
