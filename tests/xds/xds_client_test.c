/*
 * The xDS client with real gRPC (xds/xds_client.c, xds/grpc_thread.c).
 *
 * Without arguments (ctest): what needs no management server: the bootstrap shapes the client
 * refuses, subscription errors, and a client whose server is down: it keeps retrying with
 * backoff, counts update_failure, reports the initial fetch timeout, and shuts down cleanly (the
 * sanitizer build checks the gRPC thread, the queue and every call are released).
 *
 * With `--driver BOOTSTRAP [--reject-prefix P]`: a small owner of the client for the integration
 * tests (integration/test_xds.py, against the go-control-plane server in integration/xds_server):
 * it prints one JSON line per event on stdout (update, fetch_timeout, connected), subscribes to
 * EDS and RDS names derived from clusters and listeners as legate does (keeping the resources it
 * needs, which tests taking ownership of delivered messages), rejects any update holding a
 * resource whose name starts with P, and answers commands read from stdin: `state` (a JSON line
 * with every type's version, error, names and the stats) and `quit`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <h2o/socket.h>

#include "bootstrap.h"
#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.pb-c.h"
#include "lg_test.h"
#include "log.h"
#include "pb_registry.h"
#include "xds/xds_client.h"

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int load_bootstrap(lg_bootstrap_t *b, const char *text, lg_error_t *err)
{
    return lg_bootstrap_load_text(b, text, strlen(text), "test.yaml", err);
}

static uint64_t stat_value(const char *name)
{
    lg_stat_id_t id;
    return lg_stats_find(name, &id) == 0 ? lg_stats_value(id) : 0;
}

/* ------------------------------------------------------------------------------------------- */
/* ctest mode                                                                                  */
/* ------------------------------------------------------------------------------------------- */

static int count_updates;
static size_t count_timeouts;

static int cb_update(void *ctx, lg_xds_update_t *u, lg_error_t *err)
{
    ++count_updates;
    return 0;
}

static void cb_timeout(void *ctx, lg_xds_type_t type, const char *const *names, size_t n)
{
    ++count_timeouts;
}

static const char *const DOWN_BOOTSTRAP =
    "node: {id: n1, cluster: c1}\n"
    "dynamic_resources:\n"
    "  ads_config:\n"
    "    api_type: GRPC\n"
    "    transport_api_version: V3\n"
    "    grpc_services: [{envoy_grpc: {cluster_name: xds_cluster}}]\n"
    "  cds_config: {resource_api_version: V3, ads: {}, initial_fetch_timeout: 0.3s}\n"
    "  lds_config: {resource_api_version: V3, ads: {}}\n"
    "static_resources:\n"
    "  clusters:\n"
    "  - name: xds_cluster\n"
    "    type: STATIC\n"
    "    connect_timeout: 1s\n"
    "    http2_protocol_options: {}\n"
    "    load_assignment:\n"
    "      cluster_name: xds_cluster\n"
    "      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: "
    "%d}}}}]}]\n";

/* A loopback port with nothing listening: bound, then closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        abort();
    close(fd);
    return ntohs(a.sin_port);
}

LG_TEST(unsupported_bootstraps_are_refused)
{
    h2o_evloop_t *loop = h2o_evloop_create();
    lg_xds_callbacks_t cb = {.on_update = cb_update};
    lg_error_t err = {{0}};
    Envoy__Config__Bootstrap__V3__Bootstrap empty;
    envoy__config__bootstrap__v3__bootstrap__init(&empty);
    LG_EXPECT(lg_xds_client_new(loop, &empty, &cb, NULL, &err) == NULL);
    LG_EXPECT_CONTAINS(err.msg, "dynamic_resources");

    char text[4096];
    snprintf(text, sizeof(text), DOWN_BOOTSTRAP, 1);
    lg_bootstrap_t b;
    LG_EXPECT_INT(load_bootstrap(&b, text, &err), 0);
    /* REST is refused with the field's path */
    b.pb->dynamic_resources->ads_config->api_type = ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__REST;
    LG_EXPECT(lg_xds_client_new(loop, b.pb, &cb, NULL, &err) == NULL);
    LG_EXPECT_CONTAINS(err.msg, "dynamic_resources.ads_config.api_type: REST is not supported");
    lg_bootstrap_dispose(&b);
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);
}

LG_TEST(server_down_retries_with_backoff_and_stops_cleanly)
{
    char text[4096];
    snprintf(text, sizeof(text), DOWN_BOOTSTRAP, closed_port());
    lg_bootstrap_t b;
    lg_error_t err = {{0}};
    LG_EXPECT_INT(load_bootstrap(&b, text, &err), 0);
    h2o_evloop_t *loop = h2o_evloop_create();
    lg_xds_callbacks_t cb = {.on_update = cb_update, .on_fetch_timeout = cb_timeout};
    uint64_t failures0 = stat_value("cluster_manager.cds.update_failure");
    lg_xds_client_t *c = lg_xds_client_new(loop, b.pb, &cb, NULL, &err);
    LG_EXPECT(c != NULL);
    if (c == NULL)
        return;

    /* Subscriptions: LDS/CDS are wildcard only; a file source is refused and changes nothing. */
    lg_xds_name_t bad = {.name = "r1", .source = NULL};
    LG_EXPECT_INT(lg_xds_client_subscribe(c, LG_XDS_LDS, &bad, 1, &err), -1);
    LG_EXPECT_CONTAINS(err.msg, "wildcard");
    Envoy__Config__Core__V3__ConfigSource cs;
    envoy__config__core__v3__config_source__init(&cs);
    Envoy__Config__Core__V3__PathConfigSource pcs;
    envoy__config__core__v3__path_config_source__init(&pcs);
    cs.config_source_specifier_case = ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_PATH_CONFIG_SOURCE;
    cs.path_config_source = &pcs;
    bad.source = &cs;
    LG_EXPECT_INT(lg_xds_client_subscribe(c, LG_XDS_RDS, &bad, 1, &err), -1);
    LG_EXPECT_CONTAINS(err.msg, "rds \"r1\": file-based");
    lg_xds_name_t good[2] = {{.name = "e1"}, {.name = "e2"}};
    LG_EXPECT_INT(lg_xds_client_subscribe(c, LG_XDS_EDS, good, 2, &err), 0);

    /* Two refused connections come within ~1.5 s (250-500 ms, then 500-1000 ms); a tight loop
     * would make dozens. */
    uint64_t start = mono_ms();
    while ((stat_value("cluster_manager.cds.update_failure") < failures0 + 2 || count_timeouts == 0) &&
           mono_ms() - start < 5000)
        h2o_evloop_run(loop, 100);
    uint64_t elapsed = mono_ms() - start;
    uint64_t failures = stat_value("cluster_manager.cds.update_failure") - failures0;
    LG_EXPECT(failures >= 2);
    LG_EXPECT(failures <= 4);
    LG_EXPECT(elapsed >= 250);
    LG_EXPECT(!lg_xds_client_connected(c));
    LG_EXPECT_INT(stat_value("control_plane.connected_state"), 0);
    LG_EXPECT(count_timeouts >= 1); /* the CDS initial fetch timeout (0.3 s) passed */
    LG_EXPECT_INT(count_updates, 0);
    lg_xds_type_state_t st;
    lg_xds_client_type_state(c, LG_XDS_CDS, &st);
    LG_EXPECT_STR(st.version_info, "");
    LG_EXPECT_INT(st.n_names, 0);

    lg_xds_client_free(c);
    h2o_evloop_run(loop, 0);
    h2o_evloop_destroy(loop);
    lg_bootstrap_dispose(&b);
}

/* ------------------------------------------------------------------------------------------- */
/* Driver mode                                                                                 */
/* ------------------------------------------------------------------------------------------- */

typedef struct st_held_t {
    char *name;
    ProtobufCMessage *msg; /* owned: taken from the update */
} held_t;

typedef struct st_driver_t {
    h2o_evloop_t *loop;
    lg_xds_client_t *client;
    const char *reject_prefix;
    held_t clusters[4096], listeners[4096];
    size_t n_clusters, n_listeners;
    int done;
    char line[4096];
    size_t line_len;
} driver_t;

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; ++s) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_list(FILE *f, const char *const *v, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; ++i) {
        if (i > 0)
            fputc(',', f);
        json_str(f, v[i]);
    }
    fputc(']', f);
}

static held_t *held_find(held_t *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; ++i)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

static void held_remove(held_t *v, size_t *n, const char *name)
{
    held_t *h = held_find(v, *n, name);
    if (h == NULL)
        return;
    free(h->name);
    protobuf_c_message_free_unpacked(h->msg, NULL);
    *h = v[--*n];
}

static void held_put(held_t *v, size_t *n, const char *name, ProtobufCMessage *m)
{
    held_t *h = held_find(v, *n, name);
    if (h != NULL) {
        protobuf_c_message_free_unpacked(h->msg, NULL);
        h->msg = m;
        return;
    }
    if (*n == 4096)
        abort();
    v[(*n)++] = (held_t){.name = strdup(name), .msg = m};
}

/* EDS names of the held clusters (service_name, else the cluster name) with their sources. */
static void subscribe_eds(driver_t *d)
{
    lg_xds_name_t names[4096];
    size_t n = 0;
    for (size_t i = 0; i < d->n_clusters; ++i) {
        const Envoy__Config__Cluster__V3__Cluster *c = (const void *)d->clusters[i].msg;
        if (c->cluster_discovery_type_case != ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE ||
            c->type != ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS)
            continue;
        const Envoy__Config__Cluster__V3__Cluster__EdsClusterConfig *eds = c->eds_cluster_config;
        names[n].name = eds != NULL && eds->service_name[0] != '\0' ? eds->service_name : c->name;
        names[n].source = eds != NULL ? eds->eds_config : NULL;
        ++n;
    }
    lg_error_t err = {{0}};
    if (lg_xds_client_subscribe(d->client, LG_XDS_EDS, names, n, &err) != 0)
        fprintf(stderr, "subscribe eds: %s\n", err.msg);
}

/* RDS names (and config sources) of the held listeners' HTTP connection managers. The opened
 * HCM messages stay open until the client has copied what it needs. */
static void subscribe_rds(driver_t *d)
{
    static lg_xds_name_t names[4096];
    static ProtobufCMessage *opened[4096];
    static int owned[4096];
    size_t n = 0, n_opened = 0;
    for (size_t i = 0; i < d->n_listeners; ++i) {
        const Envoy__Config__Listener__V3__Listener *l = (const void *)d->listeners[i].msg;
        for (size_t j = 0; j <= l->n_filter_chains; ++j) {
            const Envoy__Config__Listener__V3__FilterChain *fc =
                j < l->n_filter_chains ? l->filter_chains[j] : l->default_filter_chain;
            for (size_t k = 0; fc != NULL && k < fc->n_filters && n_opened < 4096; ++k) {
                const Envoy__Config__Listener__V3__Filter *f = fc->filters[k];
                if (f->config_type_case != ENVOY__CONFIG__LISTENER__V3__FILTER__CONFIG_TYPE_TYPED_CONFIG)
                    continue;
                ProtobufCMessage *m = lg_pb_any_open(NULL, &f->typed_config->base, &owned[n_opened]);
                if (m == NULL)
                    continue;
                opened[n_opened++] = m;
                const Envoy__Extensions__Filters__Network__HttpConnectionManager__V3__HttpConnectionManager *hcm =
                    (const void *)m;
                if (m->descriptor ==
                        &envoy__extensions__filters__network__http_connection_manager__v3__http_connection_manager__descriptor &&
                    hcm->route_specifier_case ==
                        ENVOY__EXTENSIONS__FILTERS__NETWORK__HTTP_CONNECTION_MANAGER__V3__HTTP_CONNECTION_MANAGER__ROUTE_SPECIFIER_RDS) {
                    names[n].name = hcm->rds->route_config_name;
                    names[n].source = hcm->rds->config_source;
                    ++n;
                }
            }
        }
    }
    lg_error_t err = {{0}};
    if (lg_xds_client_subscribe(d->client, LG_XDS_RDS, names, n, &err) != 0)
        fprintf(stderr, "subscribe rds: %s\n", err.msg);
    for (size_t i = 0; i < n_opened; ++i)
        lg_pb_any_close(opened[i], owned[i]);
}

static int drv_update(void *ctx, lg_xds_update_t *u, lg_error_t *err)
{
    driver_t *d = ctx;
    int reject = 0;
    for (size_t i = 0; i < u->n && d->reject_prefix != NULL; ++i)
        if (strncmp(u->names[i], d->reject_prefix, strlen(d->reject_prefix)) == 0) {
            lg_error_set(err, "resource \"%s\" rejected by the test driver", u->names[i]);
            reject = 1;
            break;
        }
    printf("{\"event\":\"update\",\"type\":\"%s\",\"version\":", lg_xds_type_name(u->type));
    json_str(stdout, u->version_info);
    printf(",\"delta\":%d,\"full\":%d,\"accepted\":%d,\"names\":", u->is_delta, u->is_full_state, !reject);
    json_list(stdout, (const char *const *)u->names, u->n);
    printf(",\"versions\":");
    json_list(stdout, (const char *const *)u->versions, u->n);
    printf(",\"removed\":");
    json_list(stdout, (const char *const *)u->removed, u->n_removed);
    printf("}\n");
    fflush(stdout);
    if (reject)
        return -1;
    held_t *set = u->type == LG_XDS_CDS ? d->clusters : u->type == LG_XDS_LDS ? d->listeners : NULL;
    size_t *n = u->type == LG_XDS_CDS ? &d->n_clusters : &d->n_listeners;
    if (set == NULL)
        return 0;
    for (size_t i = 0; i < u->n_removed; ++i)
        held_remove(set, n, u->removed[i]);
    for (size_t i = 0; i < u->n; ++i) {
        held_put(set, n, u->names[i], u->resources[i]);
        u->resources[i] = NULL; /* kept: the client must not free it */
    }
    if (u->type == LG_XDS_CDS)
        subscribe_eds(d);
    else
        subscribe_rds(d);
    return 0;
}

static void drv_timeout(void *ctx, lg_xds_type_t type, const char *const *names, size_t n)
{
    printf("{\"event\":\"fetch_timeout\",\"type\":\"%s\",\"names\":", lg_xds_type_name(type));
    json_list(stdout, names, n);
    printf("}\n");
    fflush(stdout);
}

static void drv_connected(void *ctx, int connected)
{
    printf("{\"event\":\"connected\",\"value\":%d}\n", connected);
    fflush(stdout);
}

static void print_state(driver_t *d)
{
    static const char *const stats[] = {"control_plane.connected_state",
                                        "control_plane.rate_limit_enforced",
                                        "cluster_manager.cds.update_attempt",
                                        "cluster_manager.cds.update_success",
                                        "cluster_manager.cds.update_rejected",
                                        "cluster_manager.cds.update_failure",
                                        "cluster_manager.cds.init_fetch_timeout",
                                        "cluster_manager.cds.version",
                                        "listener_manager.lds.update_attempt",
                                        "listener_manager.lds.update_success",
                                        "listener_manager.lds.update_rejected",
                                        "listener_manager.lds.update_failure"};
    printf("{\"event\":\"state\",\"connected\":%d,\"types\":{", lg_xds_client_connected(d->client));
    for (int t = 0; t < LG_XDS__NTYPES; ++t) {
        lg_xds_type_state_t st;
        lg_xds_client_type_state(d->client, (lg_xds_type_t)t, &st);
        printf("%s\"%s\":{\"version\":", t ? "," : "", lg_xds_type_name((lg_xds_type_t)t));
        json_str(stdout, st.version_info);
        printf(",\"error\":");
        if (st.last_error != NULL)
            json_str(stdout, st.last_error);
        else
            printf("null");
        printf(",\"accepted\":%llu,\"rejected\":%llu,\"names\":", (unsigned long long)st.accepted,
               (unsigned long long)st.rejected);
        json_list(stdout, st.names, st.n_names);
        printf("}");
    }
    printf("},\"stats\":{");
    for (size_t i = 0; i < sizeof(stats) / sizeof(stats[0]); ++i)
        printf("%s\"%s\":%llu", i ? "," : "", stats[i], (unsigned long long)stat_value(stats[i]));
    printf("}}\n");
    fflush(stdout);
}

static void on_stdin(h2o_socket_t *sock, const char *err)
{
    driver_t *d = sock->data;
    if (err != NULL) {
        d->done = 1;
        h2o_socket_read_stop(sock);
        return;
    }
    for (size_t i = 0; i < sock->input->size; ++i) {
        char ch = sock->input->bytes[i];
        if (ch != '\n') {
            if (d->line_len + 1 < sizeof(d->line))
                d->line[d->line_len++] = ch;
            continue;
        }
        d->line[d->line_len] = '\0';
        d->line_len = 0;
        if (strcmp(d->line, "state") == 0)
            print_state(d);
        else if (strcmp(d->line, "quit") == 0)
            d->done = 1;
    }
    h2o_buffer_consume(&sock->input, sock->input->size);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
        fclose(f);
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static int run_driver(const char *path, const char *reject_prefix)
{
    static driver_t d;
    char *text = read_file(path);
    if (text == NULL) {
        fprintf(stderr, "cannot read %s\n", path);
        return 2;
    }
    lg_bootstrap_t b;
    lg_error_t err = {{0}};
    if (lg_bootstrap_load_text(&b, text, strlen(text), path, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        free(text);
        return 2;
    }
    free(text);
    d.loop = h2o_evloop_create();
    d.reject_prefix = reject_prefix;
    lg_xds_callbacks_t cb = {.on_update = drv_update, .on_fetch_timeout = drv_timeout, .on_connected = drv_connected};
    d.client = lg_xds_client_new(d.loop, b.pb, &cb, &d, &err);
    if (d.client == NULL) {
        fprintf(stderr, "%s\n", err.msg);
        lg_bootstrap_dispose(&b);
        h2o_evloop_destroy(d.loop);
        return 2;
    }
    int fd = dup(0);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    h2o_socket_t *in = h2o_evloop_socket_create(d.loop, fd, 0);
    in->data = &d;
    h2o_socket_read_start(in, on_stdin);
    printf("{\"event\":\"started\"}\n");
    fflush(stdout);
    while (!d.done)
        if (h2o_evloop_run(d.loop, INT32_MAX) != 0)
            break;
    h2o_socket_read_stop(in);
    h2o_socket_close(in);
    lg_xds_client_free(d.client);
    for (size_t i = 0; i < d.n_clusters; ++i) {
        free(d.clusters[i].name);
        protobuf_c_message_free_unpacked(d.clusters[i].msg, NULL);
    }
    for (size_t i = 0; i < d.n_listeners; ++i) {
        free(d.listeners[i].name);
        protobuf_c_message_free_unpacked(d.listeners[i].msg, NULL);
    }
    h2o_evloop_run(d.loop, 0);
    h2o_evloop_destroy(d.loop);
    lg_bootstrap_dispose(&b);
    printf("{\"event\":\"exited\"}\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--driver") == 0) {
        const char *reject = NULL;
        for (int i = 3; i + 1 < argc; ++i)
            if (strcmp(argv[i], "--reject-prefix") == 0)
                reject = argv[i + 1];
        const char *level = getenv("LG_XDS_DRIVER_LOG");
        lg_log_set_level(level != NULL && lg_log_level_parse(level) >= 0 ? (lg_log_level_t)lg_log_level_parse(level)
                                                                           : LG_LOG_INFO);
        return run_driver(argv[2], reject);
    }
    lg_log_set_level(LG_LOG_ERROR);
    LG_RUN(unsupported_bootstraps_are_refused);
    LG_RUN(server_down_retries_with_backoff_and_stops_cleanly);
    return LG_TEST_END();
}
