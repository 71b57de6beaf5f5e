/*
 * The stats core: counters and gauges with Envoy's names, as per-worker cells summed on read, so
 * the request path increments its own cache line with no lock and no contended atomic. The main
 * thread registers a name once and gets an id; every worker has a cell block indexed by id.
 * Reading (admin, tests) sums the cells of all blocks.
 *
 * Histograms (latencies in ms) live in the same blocks: each worker writes only its own bucket
 * counts, sum, count, min and max with relaxed stores; a read merges the blocks and estimates
 * quantiles by linear interpolation within a bucket, clamped to the recorded min and max. The
 * buckets are Envoy's defaults (lg_stats_hist_bounds). Only cumulative values are kept: Envoy's
 * per-flush "interval" values are not tracked (renderers print them as nan/null).
 *
 * Not yet: tags (the admin renderer extracts them from names), per-host stats.
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
    LG_STAT_HISTOGRAM,
} lg_stat_type_t;

/* Histograms: at most LG_STATS_HIST_MAX; LG_STATS_HIST_BUCKETS finite upper bounds plus overflow. */
#define LG_STATS_HIST_MAX 2048
#define LG_STATS_HIST_BUCKETS 19
/* Per histogram cells: buckets[0..19] (19 = overflow), sum, count, min + 1 (0 = none), max. */
#define LG_STATS_HIST_CELLS (LG_STATS_HIST_BUCKETS + 5)
/* The quantiles Envoy reports (P0..P100), as fractions. */
#define LG_STATS_N_QUANTILES 10

typedef struct st_lg_stats_cells_t {
    _Atomic uint64_t cells[LG_STATS_MAX];
    _Atomic uint64_t hist[LG_STATS_HIST_MAX][LG_STATS_HIST_CELLS];
} lg_stats_cells_t;

/** A histogram merged over every block (or built by hand in tests): per-bucket (not cumulative)
 *  counts, buckets[LG_STATS_HIST_BUCKETS] being values above the last bound. */
typedef struct st_lg_stats_hist_t {
    uint64_t buckets[LG_STATS_HIST_BUCKETS + 1];
    uint64_t sum, count, min, max; /* min/max meaningful only when count > 0 */
} lg_stats_hist_t;

/** Envoy's default upper bounds (ms), ascending: 0.5, 1, 5, ... 3600000. */
extern const double lg_stats_hist_bounds[LG_STATS_HIST_BUCKETS];
/** Envoy's supported quantiles as fractions: 0, .25, .5, .75, .9, .95, .99, .995, .999, 1. */
extern const double lg_stats_quantiles[LG_STATS_N_QUANTILES];

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

/* Response codes with their own counter (`cluster.<name>.upstream_rq_<code>`): a fixed set,
 * registered with the cluster on the main thread (workers cannot register); other codes are
 * counted only in their class (upstream_rq_<N>xx). */
#define LG_STATS_N_CODES 18
extern const int lg_stats_codes[LG_STATS_N_CODES];
/** The index of `status` in lg_stats_codes, or -1. Pure. */
int lg_stats_code_index(int status);

/** Records one value (ms) into histogram `id` (registered as LG_STAT_HISTOGRAM) in the caller's
 *  own block; the block's owning thread only. A non-histogram id is ignored. */
void lg_stats_record(lg_stats_cells_t *c, lg_stat_id_t id, uint64_t value);
/** Merges histogram `id` over every attached block into *out; any thread. */
void lg_stats_hist_value(lg_stat_id_t id, lg_stats_hist_t *out);
/** Estimates quantile q (0..1) of h; NAN when h is empty. Pure. */
double lg_stats_hist_quantile(const lg_stats_hist_t *h, double q);

/** Sets a gauge that only this block writes (the main thread's server.* gauges). */
static inline void lg_stats_set(lg_stats_cells_t *c, lg_stat_id_t id, uint64_t v)
{
    atomic_store_explicit(&c->cells[id], v, memory_order_relaxed);
}

/** The value of a counter or gauge summed over every attached block (a histogram's count); any thread. */
uint64_t lg_stats_value(lg_stat_id_t id);
/** Looks a stat up by name; returns 0 and fills id, or -1. */
int lg_stats_find(const char *name, lg_stat_id_t *id);
/** Number of registered stats, and the name/type of one (for the admin listing). */
size_t lg_stats_count(void);
const char *lg_stats_name(lg_stat_id_t id, lg_stat_type_t *type);

#endif
