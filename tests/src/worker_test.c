/*
 * Unit tests of a worker's local state (src/worker.c) through the filter that uses it: a jwt_authn
 * remote_jwks provider with async_fetch starts fetching when the worker takes its snapshot
 * (on_worker_snapshot), and when the worker moves to another snapshot the old config's cache lets
 * the old snapshot go (it retains it only while it serves it) and the new config's cache fetches.
 * The JWKS cluster points at a closed port, so each fetch fails fast and counts jwks_fetch_failed.
 * An optional filter this build does not know sits in the chain without ops; the worker skips it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bootstrap.h"
#include "lg_test.h"
#include "snapshot.h"
#include "stats.h"
#include "worker.h"

static const char *yaml_fmt =
    "static_resources:\n"
    "  listeners:\n"
    "  - name: l\n"
    "    address: {socket_address: {address: 127.0.0.1, port_value: %d}}\n"
    "    filter_chains:\n"
    "    - filters:\n"
    "      - name: envoy.filters.network.http_connection_manager\n"
    "        typed_config:\n"
    "          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n"
    "          stat_prefix: wt\n"
    "          route_config: {virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: idp}}]}]}\n"
    "          http_filters:\n"
    "          - name: envoy.filters.http.grpc_web\n" /* optional, unknown: an entry without ops */
    "            is_optional: true\n"
    "            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb}\n"
    "          - name: envoy.filters.http.jwt_authn\n"
    "            typed_config:\n"
    "              \"@type\": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication\n"
    "              providers:\n"
    "                p:\n"
    "                  issuer: i\n"
    "                  remote_jwks:\n"
    "                    http_uri: {uri: 'http://idp/jwks', cluster: idp, timeout: 1s}\n"
    "                    async_fetch: {failed_refetch_duration: 0.02s}\n"
    "          - name: envoy.filters.http.router\n"
    "            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}\n"
    "  clusters:\n"
    "  - name: idp\n"
    "    type: STATIC\n"
    "    connect_timeout: 1s\n"
    "    load_assignment:\n"
    "      cluster_name: idp\n"
    "      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: %d}}}}]}]\n";

static int bound_socket(int do_listen, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0 ||
        (do_listen && listen(fd, 16) != 0))
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static lg_snapshot_t *build(lg_bootstrap_t *b, int listen_port, int idp_port)
{
    char yaml[4096];
    lg_error_t err;
    snprintf(yaml, sizeof(yaml), yaml_fmt, listen_port, idp_port);
    if (lg_bootstrap_load_text(b, yaml, strlen(yaml), "w.yaml", &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    lg_snapshot_t *s = lg_snapshot_build(b, &err);
    if (s == NULL)
        fprintf(stderr, "%s\n", err.msg);
    return s;
}

/* Polls `cond` for up to 5 s. */
#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        for (int i_ = 0; i_ < 500 && !(cond); ++i_)                                                \
            nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);                              \
    } while (0)

LG_TEST(test_worker_local_state_follows_snapshots)
{
    int listen_port, idp_port;
    int lfd = bound_socket(1, &listen_port), closed = bound_socket(0, &idp_port);
    LG_EXPECT(lfd >= 0 && closed >= 0);
    close(closed); /* nothing listens there: every fetch is refused */
    lg_bootstrap_t b1, b2;
    lg_snapshot_t *s1 = build(&b1, listen_port, idp_port), *s2 = build(&b2, listen_port, idp_port);
    LG_EXPECT(s1 != NULL && s2 != NULL);
    if (s1 == NULL || s2 == NULL)
        return;
    lg_stat_id_t failed;
    LG_EXPECT_INT(lg_stats_find("http.wt.jwt_authn.jwks_fetch_failed", &failed), 0);

    int fds[1] = {lfd};
    lg_worker_t *w = lg_worker_new(0, s1, fds);
    LG_EXPECT_INT(lg_worker_start(w), 0);
    /* Fetched (and failed, and refetched) with no request at all. */
    WAIT_FOR(lg_stats_value(failed) >= 2);
    LG_EXPECT(lg_stats_value(failed) >= 2);
    /* Ours, the worker's and the cache's. */
    LG_EXPECT_INT(atomic_load(&s1->refcnt), 3);

    lg_worker_publish(w, s2);
    /* The worker lets s1 go, and so does the old config's cache once its fetch has ended. */
    WAIT_FOR(atomic_load(&s1->refcnt) == 1);
    LG_EXPECT_INT(atomic_load(&s1->refcnt), 1);
    uint64_t before = lg_stats_value(failed);
    WAIT_FOR(lg_stats_value(failed) >= before + 2);
    LG_EXPECT(lg_stats_value(failed) >= before + 2); /* the new config's cache fetches on its own */

    lg_worker_stop_and_free(w);
    LG_EXPECT_INT(atomic_load(&s2->refcnt), 1); /* the cache let s2 go at the worker's exit */
    lg_snapshot_release(s1);
    lg_snapshot_release(s2);
    lg_bootstrap_dispose(&b1);
    lg_bootstrap_dispose(&b2);
}

int main(void)
{
    LG_RUN(test_worker_local_state_follows_snapshots);
    return LG_TEST_END();
}
