/*
 * Serving: the main thread's part of DESIGN §4. It builds the first snapshot, binds every listener
 * once per worker (SO_REUSEPORT, so the kernel spreads connections), starts the workers and then
 * runs its own loop for signals, the admin endpoint, xDS and DNS discovery. DNS clusters are
 * warmed before serving, as Envoy's init manager does: workers start once every DNS cluster has
 * had its first answer (or failure), or after DNS_WARMING_MS; later answers that change a host
 * set are published to the workers as new snapshots. SIGTERM drains as Envoy
 * does: workers stop accepting, connections finish what they are doing and close, and the process
 * exits 0 once they are gone or --drain-time-s has passed. SIGINT and POST /quitquitquit exit at
 * once.
 */
#include "server.h"

#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>

#include "access_log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <h2o/socket.h>
#include <h2o/timeout.h>

#include "admin.h"
#include "dns_cluster.h"
#include "dynamic_config.h"
#include "log.h"
#include "snapshot.h"
#include "stats.h"
#include "stream_info.h"
#include "worker.h"

#define DRAIN_POLL_MS 100
#define SERVER_STATS_MS 1000
#define DNS_WARMING_MS 5000 /* the bound on the wait for DNS clusters' first answers */

/* server.* gauges, set by the main thread in its own block (SERVER_STATS_MS apart). */
#define SERVER_STATS(X)                                                                            \
    X(live) X(uptime) X(concurrency) X(memory_allocated) X(memory_heap_size) X(total_connections)
typedef struct st_server_stats_t {
#define LG_X(n) lg_stat_id_t n;
    SERVER_STATS(LG_X)
#undef LG_X
} server_stats_t;

typedef struct st_server_t {
    const lg_options_t *opts;
    const lg_bootstrap_t *bootstrap;
    h2o_evloop_t *loop;
    lg_snapshot_t *snapshot;
    lg_worker_t **workers;
    unsigned n_workers;
    int **listen_fds; /* [worker][listener] */
    int draining, done;
    int live; /* workers started: the admin's /ready says LIVE */
    lg_admin_t *admin;
    lg_dynamic_config_t *dynamic; /* xDS, when the bootstrap has dynamic_resources */
    lg_dns_discovery_t *dns;
    h2o_timeout_t warm_timeout;
    h2o_timeout_entry_t warm_entry;
    uint64_t drain_deadline;
    h2o_timeout_t poll_timeout;
    h2o_timeout_entry_t poll_entry;
    lg_stats_cells_t *stats; /* the main thread's block: server.* */
    server_stats_t stat;
    time_t start_time;
    h2o_timeout_t stats_timeout;
    h2o_timeout_entry_t stats_entry;
} server_t;

static int bind_listener(const lg_listener_t *l, struct sockaddr_storage *addr, socklen_t addrlen, int *out,
                         lg_error_t *err)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return lg_error_set(err, "listener \"%s\": socket: %s", l->name, strerror(errno));
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        (addr->ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0)) {
        close(fd);
        return lg_error_set(err, "listener \"%s\": setsockopt: %s", l->name, strerror(errno));
    }
    if (bind(fd, (struct sockaddr *)addr, addrlen) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        close(fd);
        return lg_error_set(err, "listener \"%s\": cannot bind to %s: %s", l->name, l->address_string, strerror(e));
    }
    *out = fd;
    return 0;
}

/* Frees a [worker][listener] table of sockets (closing them when `close_fds`). */
static void free_fds(int **fds, unsigned n_workers, size_t n_listeners, int close_fds)
{
    if (fds == NULL)
        return;
    for (unsigned w = 0; w < n_workers; ++w) {
        for (size_t i = 0; close_fds && i < n_listeners; ++i)
            if (fds[w][i] >= 0)
                close(fds[w][i]);
        free(fds[w]);
    }
    free(fds);
}

/* The listener of `old` with the same configured address as `l`, or -1. */
static ssize_t same_address(const lg_snapshot_t *old, const lg_listener_t *l)
{
    for (size_t j = 0; old != NULL && j < old->n_listeners; ++j)
        if (old->listeners[j]->addrlen == l->addrlen && memcmp(&old->listeners[j]->addr, &l->addr, l->addrlen) == 0)
            return (ssize_t)j;
    return -1;
}

/*
 * One socket per listener of `snap` per worker: a listener at an address `old` already listens on
 * keeps those sockets, a new one is bound for every worker (SO_REUSEPORT; a port of 0 is resolved
 * by the first bind and reused). On failure, what was bound here is closed and -1 returned with err
 * naming the listener; `old`'s sockets are untouched.
 */
static int bind_for(server_t *srv, const lg_snapshot_t *old, int **old_fds, const lg_snapshot_t *snap, int ***out,
                    lg_error_t *err)
{
    int **fds = calloc(srv->n_workers, sizeof(*fds));
    if (fds == NULL)
        lg_fatal("out of memory");
    for (unsigned w = 0; w < srv->n_workers; ++w) {
        fds[w] = malloc(sizeof(int) * (snap->n_listeners ? snap->n_listeners : 1));
        if (fds[w] == NULL)
            lg_fatal("out of memory");
        for (size_t i = 0; i < snap->n_listeners; ++i)
            fds[w][i] = -1;
    }
    unsigned char *kept = calloc(snap->n_listeners ? snap->n_listeners : 1, 1);
    if (kept == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i < snap->n_listeners; ++i) {
        lg_listener_t *l = snap->listeners[i];
        ssize_t j = same_address(old, l);
        if (j >= 0) {
            for (unsigned w = 0; w < srv->n_workers; ++w)
                fds[w][i] = old_fds[w][j];
            kept[i] = 1;
            continue;
        }
        struct sockaddr_storage addr = l->addr;
        for (unsigned w = 0; w < srv->n_workers; ++w) {
            if (bind_listener(l, &addr, l->addrlen, &fds[w][i], err) != 0) {
                /* close only what this call bound */
                for (size_t k = 0; k < snap->n_listeners; ++k)
                    for (unsigned v = 0; kept[k] && v < srv->n_workers; ++v)
                        fds[v][k] = -1;
                free(kept);
                free_fds(fds, srv->n_workers, snap->n_listeners, 1);
                return -1;
            }
            if (w == 0) {
                socklen_t len = sizeof(addr);
                getsockname(fds[0][i], (struct sockaddr *)&addr, &len);
            }
        }
        char buf[128];
        lg_info(main, "listener \"%s\" listening on %s", l->name, lg_sockaddr_to_string(&addr, buf, sizeof(buf), 1));
    }
    free(kept);
    *out = fds;
    return 0;
}

static int bind_all(server_t *srv, lg_error_t *err)
{
    return bind_for(srv, NULL, NULL, srv->snapshot, &srv->listen_fds, err);
}

static size_t active_connections(server_t *srv)
{
    size_t n = 0;
    for (unsigned i = 0; i < srv->n_workers; ++i)
        n += lg_worker_active_connections(srv->workers[i]);
    return n;
}

static void update_server_stats(server_t *srv)
{
    struct mallinfo2 mi = mallinfo2();
    time_t now = time(NULL);
    lg_stats_set(srv->stats, srv->stat.live, srv->live && !srv->draining);
    lg_stats_set(srv->stats, srv->stat.uptime, now > srv->start_time ? (uint64_t)(now - srv->start_time) : 0);
    lg_stats_set(srv->stats, srv->stat.concurrency, srv->n_workers);
    lg_stats_set(srv->stats, srv->stat.memory_allocated, mi.uordblks + mi.hblkhd);
    lg_stats_set(srv->stats, srv->stat.memory_heap_size, mi.arena + mi.hblkhd);
    lg_stats_set(srv->stats, srv->stat.total_connections, srv->workers != NULL ? active_connections(srv) : 0);
}

static void on_stats_timer(h2o_timeout_entry_t *e)
{
    server_t *srv = H2O_STRUCT_FROM_MEMBER(server_t, stats_entry, e);
    update_server_stats(srv);
    h2o_timeout_link(srv->loop, &srv->stats_timeout, &srv->stats_entry);
}

static void on_drain_poll(h2o_timeout_entry_t *e)
{
    server_t *srv = H2O_STRUCT_FROM_MEMBER(server_t, poll_entry, e);
    if (active_connections(srv) == 0 || h2o_now(srv->loop) >= srv->drain_deadline) {
        srv->done = 1;
        return;
    }
    h2o_timeout_link(srv->loop, &srv->poll_timeout, &srv->poll_entry);
}

static void on_signal(h2o_socket_t *sock, const char *err)
{
    server_t *srv = sock->data;
    struct signalfd_siginfo si;
    while (read(h2o_socket_get_fd(sock), &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGUSR1) {
            lg_access_log_reopen();
            lg_log_reopen();
        } else if (si.ssi_signo == SIGTERM && !srv->draining) {
            lg_info(main, "caught SIGTERM: draining for up to %us", srv->opts->drain_time_s);
            srv->draining = 1;
            srv->drain_deadline = h2o_now(srv->loop) + (uint64_t)srv->opts->drain_time_s * 1000;
            for (unsigned i = 0; i < srv->n_workers; ++i)
                lg_worker_drain(srv->workers[i]);
            h2o_timeout_link(srv->loop, &srv->poll_timeout, &srv->poll_entry);
        } else {
            lg_info(main, "caught signal %u: exiting", si.ssi_signo);
            srv->done = 1;
        }
    }
}

/* The admin's hooks (admin.h): what it cannot know itself, and what it asks the server to do. */
static lg_snapshot_t *admin_snapshot(void *data)
{
    return ((server_t *)data)->snapshot;
}

static lg_admin_state_t admin_state(void *data)
{
    server_t *srv = data;
    return srv->draining ? LG_ADMIN_STATE_DRAINING : srv->live ? LG_ADMIN_STATE_LIVE : LG_ADMIN_STATE_PRE_INITIALIZING;
}

static void admin_quit(void *data)
{
    ((server_t *)data)->done = 1;
}

static void admin_drain_listeners(void *data, int graceful, int inbound_only)
{
    server_t *srv = data;
    lg_info(main, "admin: draining listeners%s", graceful ? " (graceful)" : "");
    for (unsigned i = 0; srv->workers != NULL && i < srv->n_workers; ++i)
        lg_worker_drain(srv->workers[i]);
}

static unsigned default_concurrency(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static void start_workers(server_t *srv)
{
    srv->workers = calloc(srv->n_workers, sizeof(*srv->workers));
    if (srv->workers == NULL)
        lg_fatal("out of memory");
    for (unsigned i = 0; i < srv->n_workers; ++i) {
        srv->workers[i] = lg_worker_new(i, srv->snapshot, srv->listen_fds[i]);
        if (lg_worker_start(srv->workers[i]) != 0)
            lg_fatal("cannot start worker %u", i);
    }
    srv->live = 1;
    update_server_stats(srv);
    h2o_timeout_link(srv->loop, &srv->stats_timeout, &srv->stats_entry);
    lg_info(main, "starting main dispatch loop with %u workers", srv->n_workers);
}

/* Whether a new snapshot's listeners are the running ones (same addresses, same order). */
static int same_listeners(const lg_snapshot_t *a, const lg_snapshot_t *b)
{
    if (a->n_listeners != b->n_listeners)
        return 0;
    for (size_t i = 0; i < a->n_listeners; ++i)
        if (a->listeners[i]->addrlen != b->listeners[i]->addrlen ||
            memcmp(&a->listeners[i]->addr, &b->listeners[i]->addr, a->listeners[i]->addrlen) != 0)
            return 0;
    return 1;
}

/* Hands a snapshot (one reference, taken over) with the running listeners to every worker. */
static int publish(server_t *srv, lg_snapshot_t *snap, lg_error_t *err)
{
    if (!same_listeners(srv->snapshot, snap)) {
        /* Listeners added, removed or moved: new addresses are bound first, so a failure (the port is
         * taken) rejects the update and the current listeners keep serving. */
        int **fds;
        if (bind_for(srv, srv->snapshot, srv->listen_fds, snap, &fds, err) != 0)
            return -1;
        for (unsigned i = 0; i < srv->n_workers; ++i) {
            int *mine = malloc(sizeof(int) * (snap->n_listeners ? snap->n_listeners : 1));
            if (mine == NULL)
                lg_fatal("out of memory");
            memcpy(mine, fds[i], sizeof(int) * snap->n_listeners);
            lg_worker_publish_listeners(srv->workers[i], snap, mine);
        }
        /* sockets of removed listeners are the workers' to close */
        free_fds(srv->listen_fds, srv->n_workers, srv->snapshot->n_listeners, 0);
        srv->listen_fds = fds;
    } else {
        for (unsigned i = 0; i < srv->n_workers; ++i)
            lg_worker_publish(srv->workers[i], snap);
    }
    lg_snapshot_release(srv->snapshot);
    srv->snapshot = snap;
    lg_info(main, "configuration updated (snapshot %llu)", (unsigned long long)snap->version);
    return 0;
}

/* A snapshot built from xDS: the first one starts serving, later ones go to the workers. */
static int on_dynamic_snapshot(void *ctx, lg_snapshot_t *snap, lg_error_t *err)
{
    server_t *srv = ctx;
    if (srv->workers == NULL) {
        srv->snapshot = snap;
        if (bind_all(srv, err) != 0) {
            lg_err(main, "%s", err->msg);
            srv->snapshot = NULL;
            srv->done = 1;
            return -1;
        }
        start_workers(srv);
        return 0;
    }
    return publish(srv, snap, err);
}

/* The static resources with DNS discovery's current answers. */
static lg_snapshot_t *build_static(server_t *srv, lg_error_t *err)
{
    lg_snapshot_sources_t src;
    lg_snapshot_static_sources(srv->bootstrap, &src);
    src.find_addresses = lg_dns_discovery_find;
    src.dns_ctx = srv->dns;
    return lg_snapshot_build_from(srv->bootstrap, &src, 0, err);
}

/* Static config: workers start on the snapshot that has the DNS clusters' first answers. */
static void start_static(server_t *srv)
{
    lg_error_t err;
    h2o_timeout_unlink(&srv->warm_entry);
    lg_snapshot_t *snap = build_static(srv, &err);
    if (snap != NULL) {
        lg_snapshot_release(srv->snapshot);
        srv->snapshot = snap; /* same listeners: the config was built once already */
    } else {
        lg_err(main, "cannot build the config with DNS answers: %s", err.msg);
    }
    start_workers(srv);
}

/* DNS discovery: a host set changed, or warming ended. */
static void on_dns_change(void *ctx)
{
    server_t *srv = ctx;
    if (srv->dynamic != NULL) {
        lg_dynamic_config_rebuild(srv->dynamic);
        return;
    }
    if (srv->workers == NULL) {
        if (!lg_dns_discovery_warming(srv->dns))
            start_static(srv);
        return;
    }
    lg_error_t err;
    lg_snapshot_t *snap = build_static(srv, &err);
    if (snap == NULL || publish(srv, snap, &err) != 0) {
        lg_err(main, "cannot apply DNS answers: %s", err.msg);
        lg_snapshot_release(snap);
    }
}

static void on_warm_timeout(h2o_timeout_entry_t *e)
{
    server_t *srv = H2O_STRUCT_FROM_MEMBER(server_t, warm_entry, e);
    if (srv->workers != NULL)
        return;
    lg_warn(main, "DNS clusters have not answered within %ums: serving without them", DNS_WARMING_MS);
    start_static(srv);
}

static const struct st_lg_dynamic_config_t *admin_dynamic(void *data)
{
    return ((server_t *)data)->dynamic;
}

int lg_server_run(const lg_bootstrap_t *bootstrap, const lg_options_t *opts)
{
    server_t srv = {.opts = opts, .bootstrap = bootstrap};
    lg_error_t err;
    int ret = 1, ret_early = 0;
    sigset_t mask;

    /* Signals go to the signalfd only: block them in this thread before any worker starts. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv.n_workers = opts->concurrency ? opts->concurrency : default_concurrency();
    const Envoy__Config__Bootstrap__V3__Bootstrap__DynamicResources *dr = bootstrap->pb->dynamic_resources;
    int dynamic = dr != NULL && (dr->lds_config != NULL || dr->cds_config != NULL);
    if (!dynamic) {
        srv.snapshot = lg_snapshot_build(bootstrap, &err);
        if (srv.snapshot == NULL) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        if (bind_all(&srv, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
            goto exit;
        }
    }

    srv.loop = h2o_evloop_create();
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) {
        lg_err(main, "signalfd: %s", strerror(errno));
        goto exit;
    }
    h2o_socket_t *sigsock = h2o_evloop_socket_create(srv.loop, sfd, H2O_SOCKET_FLAG_DONT_READ);
    sigsock->data = &srv;
    h2o_socket_read_start(sigsock, on_signal);
    h2o_timeout_init(srv.loop, &srv.poll_timeout, DRAIN_POLL_MS);
    srv.poll_entry.cb = on_drain_poll;
    srv.start_time = time(NULL);
    srv.stats = lg_stats_cells_new();
    lg_stats_attach(srv.stats); /* attached for the process's life: never freed */
#define LG_X(n) srv.stat.n = lg_stats_register("server." #n, LG_STAT_GAUGE);
    SERVER_STATS(LG_X)
#undef LG_X
    h2o_timeout_init(srv.loop, &srv.stats_timeout, SERVER_STATS_MS);
    srv.stats_entry.cb = on_stats_timer;
    h2o_timeout_init(srv.loop, &srv.warm_timeout, DNS_WARMING_MS);
    srv.warm_entry.cb = on_warm_timeout;
    srv.dns = lg_dns_discovery_new(srv.loop, &bootstrap->srcmap, on_dns_change, &srv);

    lg_admin_hooks_t hooks = {.data = &srv,
                              .snapshot = admin_snapshot,
                              .state = admin_state,
                              .quit = admin_quit,
                              .drain_listeners = admin_drain_listeners,
                              .dynamic = admin_dynamic,
                              .options = opts,
                              .concurrency = srv.n_workers,
                              .start_time = srv.start_time};
    err.msg[0] = '\0';
    if ((srv.admin = lg_admin_start(srv.loop, bootstrap, &hooks, &err)) == NULL && err.msg[0] != '\0') {
        fprintf(stderr, "%s\n", err.msg);
        h2o_socket_read_stop(sigsock);
        h2o_socket_close(sigsock);
        lg_dns_discovery_free(srv.dns);
        h2o_evloop_run(srv.loop, 0);
        h2o_timeout_dispose(srv.loop, &srv.poll_timeout);
        h2o_timeout_dispose(srv.loop, &srv.stats_timeout);
        h2o_timeout_dispose(srv.loop, &srv.warm_timeout);
        h2o_evloop_destroy(srv.loop);
        goto exit;
    }

    if (dynamic) {
        /* Workers start when the control plane's initial config has arrived (on_dynamic_snapshot). */
        if ((srv.dynamic = lg_dynamic_config_start(srv.loop, bootstrap, srv.dns, on_dynamic_snapshot, &srv, &err)) == NULL) {
            fprintf(stderr, "%s\n", err.msg);
            srv.done = 1;
            ret_early = 1;
        }
        lg_info(main, "waiting for the initial configuration from the control plane");
    } else {
        const Envoy__Config__Bootstrap__V3__Bootstrap__StaticResources *sr = bootstrap->pb->static_resources;
        if (sr != NULL)
            lg_dns_discovery_sync(srv.dns, (const void *)sr->clusters, sr->n_clusters);
        if (lg_dns_discovery_warming(srv.dns)) {
            lg_info(main, "waiting for the first answers of the DNS clusters");
            h2o_timeout_link(srv.loop, &srv.warm_timeout, &srv.warm_entry);
        } else {
            start_workers(&srv);
        }
    }

    while (!srv.done)
        if (h2o_evloop_run(srv.loop, INT32_MAX) != 0 && errno != EINTR) {
            lg_err(main, "event loop failed: %s", strerror(errno));
            break;
        }

    lg_admin_stop(srv.admin);
    lg_dynamic_config_free(srv.dynamic);
    lg_dns_discovery_free(srv.dns);

    for (unsigned i = 0; srv.workers != NULL && i < srv.n_workers; ++i)
        lg_worker_stop_and_free(srv.workers[i]);
    free(srv.workers);
    h2o_timeout_unlink(&srv.poll_entry);
    h2o_timeout_unlink(&srv.stats_entry);
    h2o_timeout_unlink(&srv.warm_entry);
    h2o_socket_read_stop(sigsock);
    h2o_socket_close(sigsock);
    h2o_evloop_run(srv.loop, 0);
    h2o_timeout_dispose(srv.loop, &srv.poll_timeout);
    h2o_timeout_dispose(srv.loop, &srv.stats_timeout);
    h2o_timeout_dispose(srv.loop, &srv.warm_timeout);
    h2o_evloop_destroy(srv.loop);
    lg_worker_release_thread_caches();
    lg_access_log_flush_all();
    lg_info(main, "exiting");
    ret = ret_early;
exit:
    if (srv.listen_fds != NULL) {
        for (unsigned w = 0; w < srv.n_workers; ++w)
            free(srv.listen_fds[w]);
        free(srv.listen_fds);
    }
    lg_snapshot_release(srv.snapshot);
    return ret;
}
