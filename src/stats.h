/*
 * The stats core: counters and gauges with Envoy's names, as per-worker cells summed on read, so
 * the request path increments its own cache line with no lock and no contended atomic. The main
 * thread registers a name once and gets an id; every worker has a cell block indexed by id.
 * Reading (admin, tests) sums the cells of all blocks.
 *
 * Not yet: histograms and tags (the observability issue), per-host stats.
 */
#ifndef LG_STATS_H
#define LG_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define LG_STATS_MAX 65536

typedef uint32_t lg_stat_id_t;

typedef enum en_lg_stat_type_t {
    LG_STAT_COUNTER,
    LG_STAT_GAUGE,
} lg_stat_type_t;

typedef struct st_lg_stats_cells_t {
    _Atomic uint64_t cells[LG_STATS_MAX];
} lg_stats_cells_t;

/** Registers (or finds) a stat by its full name; main thread. Aborts past LG_STATS_MAX. */
lg_stat_id_t lg_stats_register(const char *name, lg_stat_type_t type);
/** Same, with a printf-style name. */
lg_stat_id_t lg_stats_registerf(lg_stat_type_t type, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** A new zeroed cell block for one worker (or the main thread); freed with free(). */
lg_stats_cells_t *lg_stats_cells_new(void);
/** Adds the block to the set summed on read (main thread, before the block is used). */
void lg_stats_attach(lg_stats_cells_t *cells);

static inline void lg_stats_add(lg_stats_cells_t *c, lg_stat_id_t id, uint64_t v)
{
    /* One writer per block: a relaxed load and store is enough and costs no lock prefix. */
    uint64_t old = atomic_load_explicit(&c->cells[id], memory_order_relaxed);
    atomic_store_explicit(&c->cells[id], old + v, memory_order_relaxed);
}
static inline void lg_stats_inc(lg_stats_cells_t *c, lg_stat_id_t id)
{
    lg_stats_add(c, id, 1);
}
/* Gauges move both ways: a decrement wraps and the unsigned sum comes out right. */
static inline void lg_stats_dec(lg_stats_cells_t *c, lg_stat_id_t id)
{
    lg_stats_add(c, id, (uint64_t)-1);
}

/** The value of a stat summed over every attached block; any thread. */
uint64_t lg_stats_value(lg_stat_id_t id);
/** Looks a stat up by name; returns 0 and fills id, or -1. */
int lg_stats_find(const char *name, lg_stat_id_t *id);
/** Number of registered stats, and the name/type of one (for the admin listing). */
size_t lg_stats_count(void);
const char *lg_stats_name(lg_stat_id_t id, lg_stat_type_t *type);

#endif
