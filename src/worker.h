/*
 * A worker: one thread, one h2o event loop, its own listening sockets (SO_REUSEPORT) and its own
 * upstream connection pools. A request never leaves the worker that accepted its connection, so the
 * request path takes no lock. The main thread talks to a worker only through its message queue:
 * a new config snapshot, drain, stop (DESIGN §4).
 */
#ifndef LG_WORKER_H
#define LG_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <h2o/linklist.h>
#include <h2o/multithread.h>
#include <h2o/socket.h>
#include <h2o/timeout.h>

#include "snapshot.h"
#include "stats.h"

typedef struct st_lg_cluster_state_t lg_cluster_state_t;

/*
 * Worker-local state a filter keeps across requests (a remote JWKS cache), keyed by an immutable
 * object of a snapshot (the filter's config). The owner embeds this, retains `snapshot` so the key
 * stays alive, and registers it with lg_worker_local_add. The worker calls `on_snapshot` when it
 * moves to another snapshot (the owner may unlink and free itself, or wait for its own work to end)
 * and `dispose` when it stops (the owner must unlink and free itself then). Worker thread only.
 */
typedef struct st_lg_worker_local_t {
    const void *key;
    lg_snapshot_t *snapshot;
    void (*on_snapshot)(struct st_lg_worker_local_t *l, const lg_snapshot_t *current);
    void (*dispose)(struct st_lg_worker_local_t *l);
    h2o_linklist_t _link;
} lg_worker_local_t;

typedef struct st_lg_worker_listener_t {
    struct st_lg_worker_t *worker;
    const lg_listener_t *config; /* in the worker's current snapshot */
    h2o_socket_t *sock;
    int fd;
} lg_worker_listener_t;

/* h2o 2.2.5 timeouts have one fixed duration each: the worker keeps one per duration in use. */
typedef struct st_lg_timeout_bucket_t {
    uint64_t ms;
    h2o_timeout_t timeout;
} lg_timeout_bucket_t;

typedef struct st_lg_worker_t {
    unsigned id;
    pthread_t thread;
    h2o_evloop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    lg_snapshot_t *snapshot; /* current config; connections hold their own reference */
    lg_worker_listener_t **listeners; /* one per listener of `snapshot`; each keeps its address */
    size_t n_listeners;
    lg_cluster_state_t **clusters; /* by lg_cluster_t.index of `snapshot` */
    size_t n_clusters;
    lg_timeout_bucket_t **timeout_list;
    size_t n_timeouts;
    lg_stats_cells_t *stats;
    uint64_t rng; /* xorshift state: LB picks, request ids */
    h2o_linklist_t connections; /* lg_hcm_conn_t.worker_link */
    h2o_linklist_t locals;      /* lg_worker_local_t._link */
    atomic_size_t active_connections; /* read by the main thread during drain */
    int draining, stopping;
    int ready;
    pthread_mutex_t ready_mutex;
    pthread_cond_t ready_cond;
    const int *listen_fds;
} lg_worker_t;

/** The bucket for timeouts of `ms` milliseconds on this worker's loop (created on first use). */
h2o_timeout_t *lg_worker_timeout(lg_worker_t *w, uint64_t ms);
/** A fast non-cryptographic random number (per worker). */
uint64_t lg_worker_random(lg_worker_t *w);
/** The worker's state for a cluster of its current snapshot, or NULL. */
lg_cluster_state_t *lg_worker_cluster_state(lg_worker_t *w, const lg_cluster_t *c);

/** The worker-local state registered under `key`, or NULL. */
lg_worker_local_t *lg_worker_local_find(lg_worker_t *w, const void *key);
/** Registers `l` (owned by the caller, which unlinks it with h2o_linklist_unlink before freeing it). */
void lg_worker_local_add(lg_worker_t *w, lg_worker_local_t *l);

/** Creates a worker with listening fds already bound by the main thread (one per listener). */
lg_worker_t *lg_worker_new(unsigned id, lg_snapshot_t *snapshot, const int *listen_fds);
/** Starts its thread. */
int lg_worker_start(lg_worker_t *w);
/** From the main thread: hand the worker a new snapshot (it takes its own reference). */
void lg_worker_publish(lg_worker_t *w, lg_snapshot_t *snapshot);
/**
 * As lg_worker_publish, for a snapshot whose listeners differ: `fds` (ownership passes to the
 * worker; freed by it) holds one listening socket per listener of `snapshot`, in its order. A fd
 * the worker already listens on keeps its socket; a new one starts accepting; a socket whose fd is
 * not in `fds` stops accepting and is closed (its connections run on with the snapshot they hold).
 */
void lg_worker_publish_listeners(lg_worker_t *w, lg_snapshot_t *snapshot, int *fds);
/** From the main thread: stop accepting and let connections finish (graceful drain). */
void lg_worker_drain(lg_worker_t *w);
/** From the main thread: stop the loop, join the thread, free the worker. */
void lg_worker_stop_and_free(lg_worker_t *w);
/**
 * Caps the socket's kernel receive buffer. h2o reads a readable socket until EAGAIN in one go, and
 * Linux autotunes loopback receive buffers up to tcp_rmem's maximum (32 MiB here): without a cap
 * one read event can pull tens of MiB from a fast peer before backpressure gets a word in.
 */
void lg_socket_bound_reads(h2o_socket_t *sock);
/** Frees what h2o caches per thread (socket buffers); call last on a thread that ends. */
void lg_worker_release_thread_caches(void);
/** Whether the worker has no connection left (main thread may poll during drain). */
size_t lg_worker_active_connections(lg_worker_t *w);

#endif
