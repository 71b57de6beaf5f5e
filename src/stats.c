/*
 * The stats registry and summing: see stats.h. Registration happens on the main thread only; the
 * name table is append-only, so readers on other threads see a prefix of it.
 */
#include "stats.h"

#include <math.h>
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
static uint32_t hist_slot[LG_STATS_MAX]; /* histogram index + 1 by stat id; 0 = not a histogram */
static size_t n_hists;
static lg_stats_cells_t *blocks[MAX_BLOCKS];

const double lg_stats_hist_bounds[LG_STATS_HIST_BUCKETS] = {
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000};
const double lg_stats_quantiles[LG_STATS_N_QUANTILES] = {0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1};

const int lg_stats_codes[LG_STATS_N_CODES] = {200, 201, 204, 301, 302, 304, 400, 401, 403,
                                               404, 408, 409, 413, 429, 500, 502, 503, 504};

int lg_stats_code_index(int status)
{
    for (int i = 0; i < LG_STATS_N_CODES; ++i)
        if (lg_stats_codes[i] == status)
            return i;
    return -1;
}

enum { H_SUM = LG_STATS_HIST_BUCKETS + 1, H_COUNT, H_MIN1, H_MAX };
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
    if (n >= LG_STATS_MAX - 1) {
        /* Full (a control plane pushed tens of thousands of clusters): the rest share one sink
         * cell instead of ending the process. The last id is the sink. */
        static int warned;
        if (!warned++)
            lg_warn(main, "the stats registry is full (%d names): \"%s\" and later stats are not recorded", LG_STATS_MAX,
                    name);
        if (n == LG_STATS_MAX - 1) {
            names[n] = strdup("legate.stats_overflow");
            if (names[n] == NULL)
                lg_fatal("out of memory");
            types[n] = LG_STAT_COUNTER;
            atomic_store(&n_names, n + 1);
        }
        return LG_STATS_MAX - 1;
    }
    if ((names[n] = strdup(name)) == NULL)
        lg_fatal("out of memory");
    types[n] = type;
    if (type == LG_STAT_HISTOGRAM) {
        if (n_hists == LG_STATS_HIST_MAX) {
            /* No histogram slot left: the name stays, as a counter nothing records into. */
            static int warned_h;
            if (!warned_h++)
                lg_warn(main, "no histogram slot left (%d): \"%s\" and later histograms are not recorded",
                        LG_STATS_HIST_MAX, name);
            types[n] = LG_STAT_COUNTER;
        } else {
            hist_slot[n] = (uint32_t)++n_hists;
        }
    }
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

/* One writer per block: relaxed loads and stores, as lg_stats_add. */
static void cell_set(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}

static uint64_t cell_get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void lg_stats_record(lg_stats_cells_t *c, lg_stat_id_t id, uint64_t value)
{
    uint32_t slot = hist_slot[id];
    if (slot == 0)
        return;
    _Atomic uint64_t *h = c->hist[slot - 1];
    size_t b = 0;
    while (b < LG_STATS_HIST_BUCKETS && (double)value > lg_stats_hist_bounds[b])
        ++b;
    cell_set(&h[b], cell_get(&h[b]) + 1);
    cell_set(&h[H_SUM], cell_get(&h[H_SUM]) + value);
    cell_set(&h[H_COUNT], cell_get(&h[H_COUNT]) + 1);
    uint64_t min1 = cell_get(&h[H_MIN1]);
    if (min1 == 0 || value + 1 < min1)
        cell_set(&h[H_MIN1], value + 1);
    if (value > cell_get(&h[H_MAX]))
        cell_set(&h[H_MAX], value);
}

void lg_stats_hist_value(lg_stat_id_t id, lg_stats_hist_t *out)
{
    memset(out, 0, sizeof(*out));
    uint32_t slot = hist_slot[id];
    if (slot == 0)
        return;
    uint64_t min1 = 0;
    size_t n = atomic_load(&n_blocks);
    for (size_t i = 0; i < n; ++i) {
        _Atomic uint64_t *h = blocks[i]->hist[slot - 1];
        for (size_t b = 0; b <= LG_STATS_HIST_BUCKETS; ++b)
            out->buckets[b] += cell_get(&h[b]);
        out->sum += cell_get(&h[H_SUM]);
        uint64_t m1 = cell_get(&h[H_MIN1]), mx = cell_get(&h[H_MAX]);
        if (m1 != 0 && (min1 == 0 || m1 < min1))
            min1 = m1;
        if (mx > out->max)
            out->max = mx;
    }
    /* The count is the sum of the buckets, so that a read racing a record stays consistent. */
    for (size_t b = 0; b <= LG_STATS_HIST_BUCKETS; ++b)
        out->count += out->buckets[b];
    out->min = min1 != 0 ? min1 - 1 : 0;
}

double lg_stats_hist_quantile(const lg_stats_hist_t *h, double q)
{
    if (h->count == 0)
        return NAN;
    double min = (double)h->min, max = (double)h->max;
    if (q <= 0)
        return min;
    if (q >= 1)
        return max;
    double rank = q * (double)h->count, before = 0;
    for (size_t b = 0; b <= LG_STATS_HIST_BUCKETS; ++b) {
        double n = (double)h->buckets[b];
        if (n == 0 || before + n < rank) {
            before += n;
            continue;
        }
        double lo = b == 0 ? 0 : lg_stats_hist_bounds[b - 1];
        double hi = b == LG_STATS_HIST_BUCKETS ? max : lg_stats_hist_bounds[b];
        if (lo < min)
            lo = min;
        if (hi > max)
            hi = max;
        if (hi < lo)
            hi = lo;
        return lo + (hi - lo) * (rank - before) / n;
    }
    return max;
}

uint64_t lg_stats_value(lg_stat_id_t id)
{
    if (hist_slot[id] != 0) {
        lg_stats_hist_t h;
        lg_stats_hist_value(id, &h);
        return h.count;
    }
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
