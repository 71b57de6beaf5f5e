/*
 * Workers: see worker.h. Everything h2o keeps per thread (socket buffers, recycle pools) is created
 * on the worker's own thread, so the loop, the queue and the listening sockets are made there and
 * the main thread waits until the worker says it is ready.
 */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn_manager.h"
#include "http1_server.h"
#include "listener.h"
#include "log.h"
#include "upstream_pool.h"

typedef enum en_msg_type_t { MSG_SNAPSHOT, MSG_DRAIN, MSG_STOP } msg_type_t;

typedef struct st_worker_msg_t {
    h2o_multithread_message_t super;
    msg_type_t type;
    lg_snapshot_t *snapshot;
    int *fds; /* MSG_SNAPSHOT with new listeners: one socket per listener, NULL when unchanged */
} worker_msg_t;

h2o_timeout_t *lg_worker_timeout(lg_worker_t *w, uint64_t ms)
{
    for (size_t i = 0; i < w->n_timeouts; ++i)
        if (w->timeout_list[i]->ms == ms)
            return &w->timeout_list[i]->timeout;
    /* Buckets are registered with the loop by address: grow by allocating new ones, never moving. */
    lg_timeout_bucket_t *b = calloc(1, sizeof(*b));
    lg_timeout_bucket_t **arr = realloc(w->timeout_list, (w->n_timeouts + 1) * sizeof(*arr));
    if (b == NULL || arr == NULL)
        lg_fatal("out of memory");
    w->timeout_list = arr;
    b->ms = ms;
    h2o_timeout_init(w->loop, &b->timeout, ms);
    arr[w->n_timeouts++] = b;
    return &b->timeout;
}

#define SOCKET_RCVBUF (256 * 1024)

void lg_socket_bound_reads(h2o_socket_t *sock)
{
    int size = SOCKET_RCVBUF, on = 1;
    /* Best effort: a socket that refuses keeps the kernel's behaviour. Upstream sockets from
     * h2o_socket_connect do not get TCP_NODELAY from h2o (accepted ones do): requests must not
     * wait for Nagle. */
    (void)setsockopt(h2o_socket_get_fd(sock), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    (void)setsockopt(h2o_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

uint64_t lg_worker_random(lg_worker_t *w)
{
    /* xorshift64*: fast, and good enough for load balancing and request ids. */
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

lg_cluster_state_t *lg_worker_cluster_state(lg_worker_t *w, const lg_cluster_t *c)
{
    if (c->index >= w->n_clusters)
        return NULL;
    return w->clusters[c->index];
}

lg_worker_local_t *lg_worker_local_find(lg_worker_t *w, const void *key)
{
    for (h2o_linklist_t *l = w->locals.next; l != &w->locals; l = l->next) {
        lg_worker_local_t *local = H2O_STRUCT_FROM_MEMBER(lg_worker_local_t, _link, l);
        if (local->key == key)
            return local;
    }
    return NULL;
}

void lg_worker_local_add(lg_worker_t *w, lg_worker_local_t *l)
{
    h2o_linklist_insert(&w->locals, &l->_link);
}

/* Each filter config of the snapshot may start per-worker work (remote JWKS fetched ahead). */
static void warm_filters(lg_worker_t *w, const lg_snapshot_t *snap)
{
    for (size_t i = 0; i < snap->n_listeners; ++i) {
        const lg_listener_t *lis = snap->listeners[i];
        for (size_t j = 0; j <= lis->n_chains; ++j) {
            const lg_filter_chain_t *chain = j < lis->n_chains ? lis->chains[j] : lis->default_chain;
            if (chain == NULL || chain->hcm == NULL)
                continue;
            for (size_t k = 0; k < chain->hcm->n_filters; ++k) {
                const lg_filter_factory_entry_t *fe = &chain->hcm->filters[k];
                /* An optional filter this build does not know has no ops: it is skipped. */
                if (fe->ops != NULL && fe->ops->on_worker_snapshot != NULL)
                    fe->ops->on_worker_snapshot(fe->config, w, (lg_snapshot_t *)snap);
            }
        }
    }
}

/* Worker-local state may follow the snapshot (drop what the old one keyed) or end with the worker. */
static void locals_on_snapshot(lg_worker_t *w, const lg_snapshot_t *snap)
{
    for (h2o_linklist_t *l = w->locals.next; l != &w->locals;) {
        lg_worker_local_t *local = H2O_STRUCT_FROM_MEMBER(lg_worker_local_t, _link, l);
        l = l->next; /* the hook may unlink and free it */
        local->on_snapshot(local, snap);
    }
}

static void locals_dispose(lg_worker_t *w)
{
    while (!h2o_linklist_is_empty(&w->locals)) {
        lg_worker_local_t *local = H2O_STRUCT_FROM_MEMBER(lg_worker_local_t, _link, w->locals.next);
        h2o_linklist_unlink(&local->_link);
        local->dispose(local);
    }
}

static void set_snapshot(lg_worker_t *w, lg_snapshot_t *snap)
{
    /* Cluster state follows the snapshot's clusters; pools of clusters that stay are kept. */
    lg_cluster_state_t **states = calloc(snap->n_clusters ? snap->n_clusters : 1, sizeof(*states));
    if (states == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i < snap->n_clusters; ++i) {
        const lg_cluster_t *c = snap->clusters[i];
        lg_cluster_state_t *old = NULL;
        for (size_t j = 0; w->snapshot != NULL && j < w->n_clusters; ++j)
            if (w->clusters[j] != NULL && strcmp(w->snapshot->clusters[j]->name, c->name) == 0) {
                old = w->clusters[j];
                w->clusters[j] = NULL;
            }
        states[i] = lg_cluster_state_update(w, old, c);
    }
    for (size_t j = 0; j < w->n_clusters; ++j)
        if (w->clusters[j] != NULL)
            lg_cluster_state_free(w->clusters[j]);
    free(w->clusters);
    w->clusters = states;
    w->n_clusters = snap->n_clusters;
    /* Same listener addresses (fds NULL): the sockets stay, their configs follow the new snapshot. */
    for (size_t i = 0; i < w->n_listeners && i < snap->n_listeners; ++i)
        w->listeners[i]->config = snap->listeners[i];
    if (w->snapshot != NULL)
        lg_snapshot_release(w->snapshot);
    w->snapshot = snap;
    locals_on_snapshot(w, snap);
    warm_filters(w, snap);
}

static void close_listener(lg_worker_listener_t *wl)
{
    if (wl->sock != NULL) {
        h2o_socket_read_stop(wl->sock);
        h2o_socket_close(wl->sock);
        wl->sock = NULL;
    } else if (wl->fd >= 0) {
        close(wl->fd); /* never started (the worker was draining) */
    }
    wl->fd = -1;
}

static void close_listeners(lg_worker_t *w)
{
    for (size_t i = 0; i < w->n_listeners; ++i)
        close_listener(w->listeners[i]);
}

/*
 * The listeners of `snap` on the sockets in `fds`: a socket already listened on is kept (it is the
 * same address), the others start accepting, and listeners whose socket is not in `fds` close.
 * While draining nothing new starts accepting.
 */
static void update_listeners(lg_worker_t *w, const lg_snapshot_t *snap, const int *fds)
{
    lg_worker_listener_t **next = calloc(snap->n_listeners ? snap->n_listeners : 1, sizeof(*next));
    if (next == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i < snap->n_listeners; ++i) {
        for (size_t j = 0; j < w->n_listeners && next[i] == NULL; ++j)
            if (w->listeners[j] != NULL && w->listeners[j]->fd == fds[i]) {
                next[i] = w->listeners[j];
                w->listeners[j] = NULL;
            }
        if (next[i] != NULL) {
            next[i]->config = snap->listeners[i];
            continue;
        }
        next[i] = calloc(1, sizeof(*next[i]));
        if (next[i] == NULL)
            lg_fatal("out of memory");
        next[i]->fd = fds[i];
        next[i]->config = snap->listeners[i];
        if (!w->draining)
            lg_listener_start(w, next[i], snap->listeners[i], fds[i]);
    }
    for (size_t j = 0; j < w->n_listeners; ++j)
        if (w->listeners[j] != NULL) {
            lg_info(main, "worker %u: listener \"%s\" removed", w->id, w->listeners[j]->config->name);
            close_listener(w->listeners[j]);
            free(w->listeners[j]);
        }
    free(w->listeners);
    w->listeners = next;
    w->n_listeners = snap->n_listeners;
}

static void on_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    lg_worker_t *w = H2O_STRUCT_FROM_MEMBER(lg_worker_t, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        worker_msg_t *m = H2O_STRUCT_FROM_MEMBER(worker_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        switch (m->type) {
        case MSG_SNAPSHOT:
            if (m->fds != NULL) {
                /* the configs of kept sockets point into the old snapshot until set_snapshot */
                update_listeners(w, m->snapshot, m->fds);
                free(m->fds);
            }
            set_snapshot(w, m->snapshot);
            break;
        case MSG_DRAIN:
            if (!w->draining) {
                w->draining = 1;
                close_listeners(w);
                for (h2o_linklist_t *l = w->connections.next; l != &w->connections;) {
                    lg_hcm_conn_t *c = H2O_STRUCT_FROM_MEMBER(lg_hcm_conn_t, worker_link, l);
                    l = l->next; /* shutdown may close and unlink it */
                    lg_hcm_conn_shutdown(c);
                }
            }
            break;
        case MSG_STOP:
            w->stopping = 1;
            break;
        }
        free(m);
    }
}

static void send_msg(lg_worker_t *w, msg_type_t type, lg_snapshot_t *snap, int *fds)
{
    worker_msg_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        lg_fatal("out of memory");
    m->type = type;
    m->snapshot = snap;
    m->fds = fds;
    h2o_multithread_send_message(&w->receiver, &m->super);
}

/*
 * h2o keeps freed socket buffers for reuse in a per-thread list it never empties; a thread that
 * exits would leave them behind. The list is singly linked through each chunk's first word.
 */
void lg_worker_release_thread_caches(void)
{
    lg_http1_server_release_thread_scratch();
    h2o_mem_recycle_t *a = &h2o_socket_buffer_prototype.allocator;
    while (a->_link != NULL) {
        void *chunk = a->_link;
        a->_link = *(void **)chunk;
        free(chunk);
        --a->cnt;
    }
}

static void *worker_main(void *arg)
{
    lg_worker_t *w = arg;
    w->loop = h2o_evloop_create();
    w->queue = h2o_multithread_create_queue(w->loop);
    h2o_multithread_register_receiver(w->queue, &w->receiver, on_message);
    h2o_linklist_init_anchor(&w->connections);
    h2o_linklist_init_anchor(&w->locals);
    lg_snapshot_t *snap = w->snapshot;
    w->snapshot = NULL;
    set_snapshot(w, snap);
    update_listeners(w, snap, w->listen_fds);

    pthread_mutex_lock(&w->ready_mutex);
    w->ready = 1;
    pthread_cond_signal(&w->ready_cond);
    pthread_mutex_unlock(&w->ready_mutex);

    /* epoll_wait fails with EINTR when a signal or a debugger interrupts it: not a reason to stop. */
    while (!w->stopping)
        if (h2o_evloop_run(w->loop, INT32_MAX) != 0 && errno != EINTR) {
            lg_err(main, "worker %u: event loop failed: %s", w->id, strerror(errno));
            break;
        }

    /* Stop: close what is left, let the closes run, then free the loop's objects. */
    close_listeners(w);
    for (h2o_linklist_t *l = w->connections.next; l != &w->connections;) {
        lg_hcm_conn_t *c = H2O_STRUCT_FROM_MEMBER(lg_hcm_conn_t, worker_link, l);
        l = l->next; /* closing may free and unlink this one */
        if (c->codec_close != NULL)
            c->codec_close(c->codec);
    }
    /* Closes a codec defers run from the loop; a few passes let them finish. */
    for (int i = 0; i < 8 && !h2o_linklist_is_empty(&w->connections); ++i)
        h2o_evloop_run(w->loop, 0);
    locals_dispose(w); /* may cancel async requests: before the cluster states go */
    for (size_t i = 0; i < w->n_clusters; ++i)
        if (w->clusters[i] != NULL)
            lg_cluster_state_free(w->clusters[i]);
    free(w->clusters);
    w->clusters = NULL;
    w->n_clusters = 0;
    for (int i = 0; i < 4; ++i)
        h2o_evloop_run(w->loop, 0);
    h2o_multithread_unregister_receiver(w->queue, &w->receiver);
    h2o_multithread_destroy_queue(w->queue);
    h2o_evloop_run(w->loop, 0);
    free(w->queue); /* h2o 2.2.5's evloop build does not free it (architecture-notes §6) */
    for (size_t i = 0; i < w->n_timeouts; ++i) {
        h2o_timeout_dispose(w->loop, &w->timeout_list[i]->timeout);
        free(w->timeout_list[i]);
    }
    free(w->timeout_list);
    h2o_evloop_destroy(w->loop);
    lg_snapshot_release(w->snapshot);
    w->snapshot = NULL;
    lg_worker_release_thread_caches();
    return NULL;
}

lg_worker_t *lg_worker_new(unsigned id, lg_snapshot_t *snapshot, const int *listen_fds)
{
    lg_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        lg_fatal("out of memory");
    w->id = id;
    w->snapshot = lg_snapshot_retain(snapshot);
    w->listen_fds = listen_fds;
    w->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)id << 32) ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)w;
    w->stats = lg_stats_cells_new();
    lg_stats_attach(w->stats);
    pthread_mutex_init(&w->ready_mutex, NULL);
    pthread_cond_init(&w->ready_cond, NULL);
    return w;
}

int lg_worker_start(lg_worker_t *w)
{
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
        return -1;
    pthread_mutex_lock(&w->ready_mutex);
    while (!w->ready)
        pthread_cond_wait(&w->ready_cond, &w->ready_mutex);
    pthread_mutex_unlock(&w->ready_mutex);
    return 0;
}

void lg_worker_publish(lg_worker_t *w, lg_snapshot_t *snapshot)
{
    send_msg(w, MSG_SNAPSHOT, lg_snapshot_retain(snapshot), NULL);
}

void lg_worker_publish_listeners(lg_worker_t *w, lg_snapshot_t *snapshot, int *fds)
{
    send_msg(w, MSG_SNAPSHOT, lg_snapshot_retain(snapshot), fds);
}

void lg_worker_drain(lg_worker_t *w)
{
    send_msg(w, MSG_DRAIN, NULL, NULL);
}

size_t lg_worker_active_connections(lg_worker_t *w)
{
    return atomic_load(&w->active_connections);
}

void lg_worker_stop_and_free(lg_worker_t *w)
{
    send_msg(w, MSG_STOP, NULL, NULL);
    pthread_join(w->thread, NULL);
    for (size_t i = 0; i < w->n_listeners; ++i)
        free(w->listeners[i]);
    free(w->listeners);
    pthread_mutex_destroy(&w->ready_mutex);
    pthread_cond_destroy(&w->ready_cond);
    /* The stats block stays attached: totals survive the worker. */
    free(w);
}
