/*
 * c-ares inside the main thread's h2o loop: see dns_resolver.h.
 *
 * Sockets: c-ares tells us through sock_state_cb which of its fds want reading or writing; each
 * gets an h2o socket on a dup() of the fd (so h2o and c-ares each close their own), created with
 * DONT_READ so h2o only reports readiness and c-ares does the reading. Timeouts: after every call
 * into c-ares the one deadline timer is moved to ares_timeout(), or stopped when nothing is
 * pending. Answers are always delivered from a timer, never from inside lg_dns_resolve: c-ares
 * completes /etc/hosts and numeric names synchronously, and callers should not be re-entered.
 */
#include "dns_resolver.h"

#include <ares.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "stats.h"
#include "xds/xds_client.h"

typedef struct st_watched_t {
    lg_dns_resolver_t *r;
    ares_socket_t fd;
    h2o_socket_t *sock;
    int write_armed;
    struct st_watched_t *next;
} watched_t;

typedef struct st_query_t {
    lg_dns_resolver_t *r;
    char *name;
    uint16_t port;
    lg_dns_family_t family;
    int fallback; /* 1 once the second family (AUTO, V4_PREFERRED) is being asked */
    lg_dns_resolve_cb cb;
    void *ctx;
    lg_dns_status_t status;
    lg_dns_addrs_t addrs;
    lg_deadline_timer_t deliver;
    struct st_query_t *next, *prev;
} query_t;

struct st_lg_dns_resolver_t {
    ares_channel ch;
    lg_deadline_rungs_t *rungs;
    lg_deadline_timer_t timer;
    watched_t *watched;
    query_t queries; /* list anchor: pending and undelivered queries */
    int destroying;
};

#define CARES_STATS(X) X(resolve_total, COUNTER) X(pending_resolutions, GAUGE) X(not_found, COUNTER) \
    X(timeouts, COUNTER) X(get_addr_failure, COUNTER)
static struct {
#define LG_X(n, t) lg_stat_id_t n;
    CARES_STATS(LG_X)
#undef LG_X
    int registered;
} cares_stats;

static void register_stats(void)
{
    if (cares_stats.registered)
        return;
#define LG_X(n, t) cares_stats.n = lg_stats_register("dns.cares." #n, LG_STAT_##t);
    CARES_STATS(LG_X)
#undef LG_X
    cares_stats.registered = 1;
}

static void update_timer(lg_dns_resolver_t *r)
{
    if (r->destroying)
        return;
    struct timeval tv, *t = ares_timeout(r->ch, NULL, &tv);
    if (t == NULL) {
        lg_deadline_timer_stop(&r->timer);
        return;
    }
    /* Round up: waking a millisecond early would only make c-ares ask for another wakeup. */
    lg_deadline_timer_start(&r->timer, (uint64_t)t->tv_sec * 1000 + ((uint64_t)t->tv_usec + 999) / 1000);
}

static void on_timer(lg_deadline_timer_t *t)
{
    lg_dns_resolver_t *r = H2O_STRUCT_FROM_MEMBER(lg_dns_resolver_t, timer, t);
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    update_timer(r);
}

static watched_t *find_watched(lg_dns_resolver_t *r, ares_socket_t fd)
{
    for (watched_t *w = r->watched; w != NULL; w = w->next)
        if (w->fd == fd)
            return w;
    return NULL;
}

static void on_readable(h2o_socket_t *sock, const char *err)
{
    /* c-ares reads the fd itself, and may close it (and free `w`) while doing so. */
    watched_t *w = sock->data;
    lg_dns_resolver_t *r = w->r;
    ares_process_fd(r->ch, w->fd, ARES_SOCKET_BAD);
    update_timer(r);
}

static void arm_write(watched_t *w);

static void on_writable(h2o_socket_t *sock, const char *err)
{
    watched_t *w = sock->data;
    lg_dns_resolver_t *r = w->r;
    ares_socket_t fd = w->fd;
    w->write_armed = 0;
    ares_process_fd(r->ch, ARES_SOCKET_BAD, fd);
    update_timer(r);
}

static void arm_write(watched_t *w)
{
    if (w->write_armed)
        return;
    w->write_armed = 1;
    h2o_socket_notify_write(w->sock, on_writable);
}

static void unwatch(lg_dns_resolver_t *r, watched_t *w)
{
    for (watched_t **p = &r->watched; *p != NULL; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    h2o_socket_read_stop(w->sock);
    h2o_socket_close(w->sock);
    free(w);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    lg_dns_resolver_t *r = data;
    watched_t *w = find_watched(r, fd);
    if (!readable && !writable) {
        if (w != NULL)
            unwatch(r, w);
        return;
    }
    if (w == NULL) {
        int dfd = dup(fd);
        if (dfd < 0) {
            lg_warn(upstream, "dns: cannot watch a c-ares socket: dup failed");
            return; /* the query times out through the timer */
        }
        if ((w = calloc(1, sizeof(*w))) == NULL)
            lg_fatal("out of memory");
        w->r = r;
        w->fd = fd;
        w->sock = h2o_evloop_socket_create(r->rungs->loop, dfd, H2O_SOCKET_FLAG_DONT_READ);
        w->sock->data = w;
        w->next = r->watched;
        r->watched = w;
    }
    if (readable)
        h2o_socket_read_start(w->sock, on_readable);
    else
        h2o_socket_read_stop(w->sock);
    if (writable)
        arm_write(w);
}

/* ------------------------------------------------------------------------------------------- */
/* Queries                                                                                     */
/* ------------------------------------------------------------------------------------------- */

static void free_query(query_t *q)
{
    q->prev->next = q->next;
    q->next->prev = q->prev;
    lg_deadline_timer_stop(&q->deliver);
    lg_dns_addrs_clear(&q->addrs);
    free(q->name);
    free(q);
}

static void on_deliver(lg_deadline_timer_t *t)
{
    query_t *q = H2O_STRUCT_FROM_MEMBER(query_t, deliver, t);
    q->cb(q->ctx, q->status, &q->addrs);
    free_query(q);
}

static void start_query(query_t *q);

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    query_t *q = arg;
    if (status == ARES_EDESTRUCTION || q->r->destroying) {
        if (res != NULL)
            ares_freeaddrinfo(res);
        return; /* lg_dns_resolver_free frees the query */
    }
    lg_dns_addrs_clear(&q->addrs);
    for (struct ares_addrinfo_node *n = res != NULL ? res->nodes : NULL; n != NULL; n = n->ai_next)
        if (n->ai_addr != NULL)
            lg_dns_addrs_add(&q->addrs, n->ai_addr, q->port, n->ai_ttl > 0 ? (uint32_t)n->ai_ttl : 0);
    if (res != NULL)
        ares_freeaddrinfo(res);
    if (status == ARES_SUCCESS && q->addrs.n != 0) {
        q->status = LG_DNS_ANSWERED;
    } else if (status == ARES_SUCCESS || status == ARES_ENOTFOUND || status == ARES_ENODATA) {
        q->status = LG_DNS_NO_NAME;
    } else {
        q->status = LG_DNS_FAILED;
    }
    if (q->status != LG_DNS_ANSWERED && !q->fallback &&
        (q->family == LG_DNS_AUTO || q->family == LG_DNS_V4_PREFERRED)) {
        q->fallback = 1;
        start_query(q);
        return;
    }
    lg_stats_cells_t *cells = lg_xds_stats_cells();
    lg_stats_dec(cells, cares_stats.pending_resolutions);
    if (q->status == LG_DNS_NO_NAME)
        lg_stats_inc(cells, cares_stats.not_found);
    else if (status == ARES_ETIMEOUT)
        lg_stats_inc(cells, cares_stats.timeouts);
    else if (q->status == LG_DNS_FAILED)
        lg_stats_inc(cells, cares_stats.get_addr_failure);
    lg_deadline_timer_start(&q->deliver, 0);
}

static void start_query(query_t *q)
{
    int family = AF_UNSPEC;
    switch (q->family) {
    case LG_DNS_AUTO:
        family = q->fallback ? AF_INET : AF_INET6;
        break;
    case LG_DNS_V4_PREFERRED:
        family = q->fallback ? AF_INET6 : AF_INET;
        break;
    case LG_DNS_V4_ONLY:
        family = AF_INET;
        break;
    case LG_DNS_V6_ONLY:
        family = AF_INET6;
        break;
    case LG_DNS_ALL:
        family = AF_UNSPEC;
        break;
    }
    /* NOSORT: the RFC 6724 sort probes routes with UDP sockets, which a proxy does not want. */
    struct ares_addrinfo_hints hints = {.ai_flags = ARES_AI_NOSORT, .ai_family = family, .ai_socktype = SOCK_STREAM};
    ares_getaddrinfo(q->r->ch, q->name, NULL, &hints, on_addrinfo, q);
}

void lg_dns_resolve(lg_dns_resolver_t *r, const char *name, uint16_t port, lg_dns_family_t family,
                    lg_dns_resolve_cb cb, void *ctx)
{
    query_t *q = calloc(1, sizeof(*q));
    if (q == NULL || (q->name = strdup(name)) == NULL)
        lg_fatal("out of memory");
    q->r = r;
    q->port = port;
    q->family = family;
    q->cb = cb;
    q->ctx = ctx;
    lg_deadline_timer_init(&q->deliver, r->rungs, on_deliver);
    q->next = r->queries.next;
    q->prev = &r->queries;
    q->next->prev = q;
    r->queries.next = q;
    lg_stats_inc(lg_xds_stats_cells(), cares_stats.resolve_total);
    lg_stats_inc(lg_xds_stats_cells(), cares_stats.pending_resolutions);
    start_query(q);
    update_timer(r);
}

/* ------------------------------------------------------------------------------------------- */
/* Channel                                                                                     */
/* ------------------------------------------------------------------------------------------- */

static int use_configured_servers(lg_dns_resolver_t *r, const lg_dns_resolver_config_t *config)
{
    if (config->servers_csv == NULL || config->servers_csv[0] == '\0')
        return 0;
    if (!config->servers_as_fallback)
        return 1;
    /* As a fallback only: when the system (resolv.conf) named no server at all. */
    struct ares_addr_port_node *servers = NULL;
    if (ares_get_servers_ports(r->ch, &servers) != ARES_SUCCESS)
        return 1;
    int none = servers == NULL;
    ares_free_data(servers);
    return none;
}

lg_dns_resolver_t *lg_dns_resolver_new(lg_deadline_rungs_t *rungs, const lg_dns_resolver_config_t *config,
                                       lg_error_t *err)
{
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        lg_error_set(err, "c-ares: %s", ares_strerror(rc));
        return NULL;
    }
    register_stats();
    lg_dns_resolver_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        lg_fatal("out of memory");
    r->rungs = rungs;
    r->queries.next = r->queries.prev = &r->queries;
    lg_deadline_timer_init(&r->timer, rungs, on_timer);
    struct ares_options o = {.sock_state_cb = on_sock_state, .sock_state_cb_data = r};
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_FLAGS;
    o.flags = (config->use_tcp ? ARES_FLAG_USEVC : 0) | (config->no_default_search_domain ? ARES_FLAG_NOSEARCH : 0);
    if ((rc = ares_init_options(&r->ch, &o, mask)) != ARES_SUCCESS) {
        lg_error_set(err, "c-ares: %s", ares_strerror(rc));
        free(r);
        ares_library_cleanup();
        return NULL;
    }
    if (use_configured_servers(r, config) &&
        (rc = ares_set_servers_ports_csv(r->ch, config->servers_csv)) != ARES_SUCCESS) {
        lg_error_set(err, "c-ares: resolvers \"%s\": %s", config->servers_csv, ares_strerror(rc));
        lg_dns_resolver_free(r);
        return NULL;
    }
    return r;
}

void lg_dns_resolver_free(lg_dns_resolver_t *r)
{
    if (r == NULL)
        return;
    r->destroying = 1;
    ares_destroy(r->ch); /* reports (fd, 0, 0) for its open sockets: they are unwatched */
    while (r->watched != NULL)
        unwatch(r, r->watched);
    while (r->queries.next != &r->queries) {
        if (!lg_deadline_timer_is_running(&r->queries.next->deliver))
            lg_stats_dec(lg_xds_stats_cells(), cares_stats.pending_resolutions);
        free_query(r->queries.next);
    }
    lg_deadline_timer_stop(&r->timer);
    free(r);
    ares_library_cleanup();
}
