/*
 * Envoy's load balancers over a cluster's hosts: ROUND_ROBIN (smooth weighted), RANDOM (weighted),
 * LEAST_REQUEST (power of choice_count choices with equal weights; earliest-deadline-first on
 * weight / (active + 1)^active_request_bias with unequal ones), RING_HASH (a ketama ring) and
 * MAGLEV (a lookup table filled by Maglev's permutations).
 *
 * Two halves, as DESIGN §4 splits config from worker state: the consistent-hashing tables
 * (lg_lb_table_t) are built once per cluster per snapshot on the main thread, never change, and
 * are read by every worker; a host-set change is a new snapshot, so tables are rebuilt with it.
 * The cursors (round-robin credits, least-request deadlines) are per worker (lg_lb_state_t) and
 * touched by their worker only. Picking reads active request counts and random numbers through
 * lg_lb_env_t, so the connection pool supplies real ones and the unit tests fake them.
 *
 * Not here: connection pools (upstream_pool.c), computing a request's hash (hash_policy.c), host
 * health and priorities (every host is healthy and of priority 0 until health checking lands).
 */
#ifndef LG_LOAD_BALANCER_H
#define LG_LOAD_BALANCER_H

#include <stdint.h>

#include "error.h"
#include "snapshot.h"

typedef struct st_lg_lb_table_t lg_lb_table_t;

/* What the request tells the load balancer: Envoy's LoadBalancerContext, the part used here. */
typedef struct st_lg_lb_context_t {
    int has_hash; /* the route's hash_policy produced a hash */
    uint64_t hash;
} lg_lb_context_t;

/* Where the load balancer gets what changes between picks. */
typedef struct st_lg_lb_env_t {
    uint64_t (*random)(void *ctx);
    /* requests in flight to the host from this worker (Envoy's rq_active: attached to a connection) */
    uint32_t (*active_requests)(void *ctx, const lg_host_t *host);
    void *ctx;
} lg_lb_env_t;

/* A worker's cursors for one cluster. */
typedef struct st_lg_lb_state_t {
    int64_t *rr_current;   /* ROUND_ROBIN: smooth weighted credits, one per host */
    double *edf_deadline;  /* LEAST_REQUEST with unequal weights: one per host */
    double edf_now;
} lg_lb_state_t;

/**
 * Builds the cluster's RING_HASH or MAGLEV table into c->lb_table from c->hosts and c->lb (main
 * thread); other policies and host-less clusters get none. The table is owned by the cluster and
 * freed with lg_lb_table_free.
 */
void lg_lb_table_build(lg_cluster_t *c);
void lg_lb_table_free(lg_lb_table_t *t);
/** Entries in the table (ring size or Maglev table size); 0 for NULL. Any thread. */
size_t lg_lb_table_size(const lg_lb_table_t *t);

/** Initializes a worker's cursors for cluster `c`; lg_lb_state_dispose frees them. Worker thread. */
void lg_lb_state_init(lg_lb_state_t *st, const lg_cluster_t *c);
void lg_lb_state_dispose(lg_lb_state_t *st);

/**
 * Picks a host of `c` with its policy; NULL when it has none. `ctx` may be NULL (no hash: the
 * hashing policies pick a random host, as Envoy does). The host belongs to the cluster. Worker
 * thread owning `st`.
 */
const lg_host_t *lg_lb_pick(const lg_cluster_t *c, lg_lb_state_t *st, const lg_lb_env_t *env,
                            const lg_lb_context_t *ctx);

/** Whether n is prime (Maglev's table_size must be). */
int lg_lb_is_prime(uint64_t n);

#endif
