/*
 * Load balancers: see load_balancer.h. The consistent-hashing tables follow Envoy's construction so
 * that a legate and an Envoy given the same hosts send the same key to the same host: ring entries
 * are hashes of "<address>_<i>" (or the hostname with use_hostname_for_hashing), and Maglev's offset
 * and skip are xxHash64 of the address with seeds 0 and 1.
 */
#include "load_balancer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lb_hash.h"
#include "xalloc.h"

typedef struct st_ring_entry_t {
    uint64_t hash;
    uint32_t host; /* index in the cluster's hosts */
} ring_entry_t;

struct st_lg_lb_table_t {
    lg_lb_policy_t policy;
    size_t size;
    ring_entry_t *ring;  /* RING_HASH: sorted by hash */
    uint32_t *maglev;    /* MAGLEV: host index per slot */
};

/* ------------------------------------------------------------------------------------------- */
/* Tables (main thread)                                                                        */
/* ------------------------------------------------------------------------------------------- */

int lg_lb_is_prime(uint64_t n)
{
    if (n < 2)
        return 0;
    for (uint64_t d = 2; d * d <= n; ++d)
        if (n % d == 0)
            return 0;
    return 1;
}

static const char *host_key(const lg_cluster_t *c, const lg_host_t *h)
{
    return c->lb.use_hostname_for_hashing && h->hostname != NULL ? h->hostname : h->address_string;
}

typedef struct st_keyed_host_t {
    const char *key;
    uint32_t index;
} keyed_host_t;

static int compare_keyed_hosts(const void *a, const void *b)
{
    return strcmp(((const keyed_host_t *)a)->key, ((const keyed_host_t *)b)->key);
}

/* Host indexes ordered by hash key, so a table does not depend on the order endpoints came in. */
static uint32_t *hosts_by_key(const lg_cluster_t *c)
{
    keyed_host_t *keyed = lg_xcalloc(c->n_hosts, sizeof(*keyed));
    for (size_t i = 0; i < c->n_hosts; ++i)
        keyed[i] = (keyed_host_t){host_key(c, c->hosts[i]), (uint32_t)i};
    qsort(keyed, c->n_hosts, sizeof(*keyed), compare_keyed_hosts);
    uint32_t *order = lg_xcalloc(c->n_hosts, sizeof(*order));
    for (size_t i = 0; i < c->n_hosts; ++i)
        order[i] = keyed[i].index;
    free(keyed);
    return order;
}

static int compare_ring_entries(const void *a, const void *b)
{
    const ring_entry_t *ea = a, *eb = b;
    if (ea->hash != eb->hash)
        return ea->hash < eb->hash ? -1 : 1;
    return ea->host < eb->host ? -1 : ea->host > eb->host;
}

/* Envoy's ring: scaled so the lightest host gets a whole number of entries (at least
 * minimum_ring_size in all), capped at maximum_ring_size; running sums spread the fractions. */
static void build_ring(const lg_cluster_t *c, lg_lb_table_t *t)
{
    uint32_t min_weight = UINT32_MAX;
    for (size_t i = 0; i < c->n_hosts; ++i)
        if (c->hosts[i]->weight < min_weight)
            min_weight = c->hosts[i]->weight;
    double min_normalized = (double)min_weight / c->total_weight;
    double scale = ceil(min_normalized * (double)c->lb.minimum_ring_size) / min_normalized;
    if (scale > (double)c->lb.maximum_ring_size)
        scale = (double)c->lb.maximum_ring_size;
    size_t cap = (size_t)ceil(scale) + c->n_hosts;
    t->ring = lg_xcalloc(cap, sizeof(*t->ring));
    uint32_t *order = hosts_by_key(c);
    double current = 0, target = 0;
    for (size_t k = 0; k < c->n_hosts; ++k) {
        const lg_host_t *h = c->hosts[order[k]];
        const char *key = host_key(c, h);
        size_t klen = strlen(key);
        char *buf = lg_xcalloc(klen + 24, 1);
        target += scale * ((double)h->weight / c->total_weight);
        for (uint64_t i = 0; current < target && t->size < cap; ++i, ++current) {
            int n = snprintf(buf, klen + 24, "%s_%llu", key, (unsigned long long)i);
            uint64_t hash = c->lb.hash_function == LG_HASH_FUNCTION_MURMUR_HASH_2
                                ? lg_murmur2_64(buf, (size_t)n, LG_MURMUR2_STD_SEED)
                                : lg_xxh64(buf, (size_t)n, 0);
            t->ring[t->size++] = (ring_entry_t){hash, order[k]};
        }
        free(buf);
    }
    free(order);
    qsort(t->ring, t->size, sizeof(*t->ring), compare_ring_entries);
}

typedef struct st_maglev_entry_t {
    uint32_t host;
    uint64_t offset, skip, next;
    double weight, target;
} maglev_entry_t;

/* Maglev (Eisenbud et al., NSDI '16) with Envoy's weighting: each round every host whose weight
 * has earned it claims its next free slot along its own permutation (offset + next * skip). */
static void build_maglev(const lg_cluster_t *c, lg_lb_table_t *t)
{
    uint64_t m = c->lb.table_size;
    t->size = m;
    t->maglev = lg_xcalloc(m, sizeof(*t->maglev));
    for (uint64_t i = 0; i < m; ++i)
        t->maglev[i] = UINT32_MAX;
    uint32_t *order = hosts_by_key(c);
    maglev_entry_t *e = lg_xcalloc(c->n_hosts, sizeof(*e));
    double max_weight = 0;
    for (size_t k = 0; k < c->n_hosts; ++k) {
        const lg_host_t *h = c->hosts[order[k]];
        const char *key = host_key(c, h);
        e[k].host = order[k];
        e[k].offset = lg_xxh64(key, strlen(key), 0) % m;
        e[k].skip = lg_xxh64(key, strlen(key), 1) % (m - 1) + 1;
        e[k].weight = (double)h->weight / c->total_weight;
        if (e[k].weight > max_weight)
            max_weight = e[k].weight;
    }
    uint64_t filled = 0;
    for (uint64_t round = 1; filled < m; ++round) {
        for (size_t k = 0; k < c->n_hosts && filled < m; ++k) {
            if ((double)round * e[k].weight < e[k].target)
                continue;
            e[k].target += max_weight;
            uint64_t slot = (e[k].offset + e[k].skip * e[k].next) % m;
            while (t->maglev[slot] != UINT32_MAX) {
                ++e[k].next;
                slot = (e[k].offset + e[k].skip * e[k].next) % m;
            }
            t->maglev[slot] = e[k].host;
            ++e[k].next;
            ++filled;
        }
    }
    free(e);
    free(order);
}

void lg_lb_table_build(lg_cluster_t *c)
{
    if (c->n_hosts == 0 || (c->lb_policy != LG_LB_RING_HASH && c->lb_policy != LG_LB_MAGLEV))
        return;
    lg_lb_table_t *t = lg_xcalloc(1, sizeof(*t));
    t->policy = c->lb_policy;
    if (c->lb_policy == LG_LB_RING_HASH)
        build_ring(c, t);
    else
        build_maglev(c, t);
    c->lb_table = t;
}

void lg_lb_table_free(lg_lb_table_t *t)
{
    if (t == NULL)
        return;
    free(t->ring);
    free(t->maglev);
    free(t);
}

size_t lg_lb_table_size(const lg_lb_table_t *t)
{
    return t != NULL ? t->size : 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Picking (worker thread)                                                                     */
/* ------------------------------------------------------------------------------------------- */

static int equal_weights(const lg_cluster_t *c)
{
    for (size_t i = 1; i < c->n_hosts; ++i)
        if (c->hosts[i]->weight != c->hosts[0]->weight)
            return 0;
    return 1;
}

/* Envoy's weighted least-request weight: weight / (active + 1)^bias (bias 0: plain weights). */
static double lr_weight(const lg_cluster_t *c, const lg_lb_env_t *env, const lg_host_t *h)
{
    double w = h->weight, bias = c->lb.active_request_bias;
    if (bias == 0)
        return w;
    double active = (double)env->active_requests(env->ctx, h) + 1;
    return bias == 1.0 ? w / active : w / pow(active, bias);
}

void lg_lb_state_init(lg_lb_state_t *st, const lg_cluster_t *c)
{
    memset(st, 0, sizeof(*st));
    if (c->lb_policy == LG_LB_ROUND_ROBIN)
        st->rr_current = lg_xcalloc(c->n_hosts, sizeof(*st->rr_current));
    if (c->lb_policy == LG_LB_LEAST_REQUEST && !equal_weights(c)) {
        /* Every host enters the schedule idle: deadline 1/weight, as Envoy's EDF scheduler does. */
        st->edf_deadline = lg_xcalloc(c->n_hosts, sizeof(*st->edf_deadline));
        for (size_t i = 0; i < c->n_hosts; ++i)
            st->edf_deadline[i] = 1.0 / c->hosts[i]->weight;
    }
}

void lg_lb_state_dispose(lg_lb_state_t *st)
{
    free(st->rr_current);
    free(st->edf_deadline);
    memset(st, 0, sizeof(*st));
}

static const lg_host_t *pick_random(const lg_cluster_t *c, const lg_lb_env_t *env)
{
    uint64_t r = env->random(env->ctx) % c->total_weight;
    for (size_t i = 0; i < c->n_hosts; ++i) {
        if (r < c->hosts[i]->weight)
            return c->hosts[i];
        r -= c->hosts[i]->weight;
    }
    return c->hosts[c->n_hosts - 1];
}

/* Smooth weighted round robin (nginx's): every host gains its weight, the richest is picked and
 * pays the total. Equal weights give plain rotation; unequal ones interleave evenly. */
static const lg_host_t *pick_round_robin(const lg_cluster_t *c, lg_lb_state_t *st)
{
    size_t best = 0;
    for (size_t i = 0; i < c->n_hosts; ++i) {
        st->rr_current[i] += c->hosts[i]->weight;
        if (st->rr_current[i] > st->rr_current[best])
            best = i;
    }
    st->rr_current[best] -= c->total_weight;
    return c->hosts[best];
}

/* Equal weights: choice_count random draws (with replacement), the one with the fewest active
 * requests wins and ties keep the earlier draw, as Envoy's unweighted pick. Unequal weights: the
 * earliest deadline wins, and goes back in the schedule at a weight reflecting its load now. */
static const lg_host_t *pick_least_request(const lg_cluster_t *c, lg_lb_state_t *st, const lg_lb_env_t *env)
{
    if (st->edf_deadline == NULL) {
        const lg_host_t *best = NULL;
        uint32_t best_active = 0;
        for (uint32_t k = 0; k < c->lb.choice_count; ++k) {
            const lg_host_t *h = c->hosts[env->random(env->ctx) % c->n_hosts];
            uint32_t active = env->active_requests(env->ctx, h);
            if (best == NULL || active < best_active) {
                best = h;
                best_active = active;
            }
        }
        return best;
    }
    size_t best = 0;
    for (size_t i = 1; i < c->n_hosts; ++i)
        if (st->edf_deadline[i] < st->edf_deadline[best])
            best = i;
    st->edf_now = st->edf_deadline[best];
    st->edf_deadline[best] = st->edf_now + 1.0 / lr_weight(c, env, c->hosts[best]);
    return c->hosts[best];
}

static const lg_host_t *pick_ring(const lg_cluster_t *c, const lg_lb_table_t *t, uint64_t h)
{
    /* The first entry at or after h, wrapping to the first. */
    size_t lo = 0, hi = t->size;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->ring[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return c->hosts[t->ring[lo == t->size ? 0 : lo].host];
}

const lg_host_t *lg_lb_pick(const lg_cluster_t *c, lg_lb_state_t *st, const lg_lb_env_t *env,
                            const lg_lb_context_t *ctx)
{
    if (c->n_hosts == 0)
        return NULL;
    if (c->n_hosts == 1)
        return c->hosts[0];
    switch (c->lb_policy) {
    case LG_LB_RANDOM:
        return pick_random(c, env);
    case LG_LB_LEAST_REQUEST:
        return pick_least_request(c, st, env);
    case LG_LB_RING_HASH:
    case LG_LB_MAGLEV: {
        const lg_lb_table_t *t = c->lb_table;
        uint64_t h = ctx != NULL && ctx->has_hash ? ctx->hash : env->random(env->ctx);
        if (t == NULL || t->size == 0)
            return pick_random(c, env);
        return t->policy == LG_LB_RING_HASH ? pick_ring(c, t, h) : c->hosts[t->maglev[h % t->size]];
    }
    case LG_LB_ROUND_ROBIN:
        break;
    }
    return pick_round_robin(c, st);
}
