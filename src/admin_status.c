/*
 * The admin's status pages (see admin_render.h): /clusters, /listeners, /server_info, /memory and
 * /runtime, in Envoy's text formats and in the proto3 JSON of Envoy's admin.v3 messages (Clusters,
 * Listeners, ServerInfo, Memory), field for field, so that tools that read Envoy's pages read
 * these. JSON is written compact and pretty-printed last, as protobuf prints it.
 *
 * Not for: per-host counters (the data plane keeps none yet: they print as 0), outlier detection
 * and health checking (no host is ever anything but healthy yet).
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_render.h"
#include "log.h"
#include "pb_json.h"
#include "pb_wkt.h"

/* ------------------------------------------------------------------------------------------- */
/* Addresses                                                                                   */
/* ------------------------------------------------------------------------------------------- */

static unsigned addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

static const char *addr_ip(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    const void *a = ss->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                                              : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    if (inet_ntop(ss->ss_family, a, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "%s", "");
    return buf;
}

/* envoy.config.core.v3.Address as proto3 JSON. */
static void address_json(lg_strbuf_t *out, const struct sockaddr_storage *ss)
{
    char ip[INET6_ADDRSTRLEN];
    addr_ip(ss, ip, sizeof(ip));
    lg_strbuf_puts(out, "{\"socket_address\":{\"address\":");
    lg_strbuf_json_string(out, ip, strlen(ip));
    unsigned port = addr_port(ss);
    if (port != 0)
        lg_strbuf_printf(out, ",\"port_value\":%u", port);
    lg_strbuf_puts(out, "}}");
}

/* "127.0.0.1:8080" / "[::1]:8080", as Envoy's Address::asString(). */
static const char *address_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    addr_ip(ss, ip, sizeof(ip));
    snprintf(buf, len, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, addr_port(ss));
    return buf;
}

static void pretty(lg_strbuf_t *compact, lg_strbuf_t *out)
{
    lg_admin_json_pretty(compact->data, compact->len, out);
    lg_strbuf_dispose(compact);
}

/* ------------------------------------------------------------------------------------------- */
/* /clusters                                                                                   */
/* ------------------------------------------------------------------------------------------- */

/* Envoy's per-host stats (ALL_HOST_STATS), counters then gauges; none is kept per host yet. */
static const char *const host_counters[] = {"cx_connect_fail", "cx_total", "rq_error", "rq_success", "rq_timeout",
                                            "rq_total"};
static const char *const host_gauges[] = {"cx_active", "rq_active"};

/* The endpoint's own hostname, or "" when the snapshot only copied the address into it. */
static const char *host_name(const lg_host_t *h)
{
    char ip[INET6_ADDRSTRLEN];
    if (h->hostname == NULL || strcmp(h->hostname, addr_ip(&h->addr, ip, sizeof(ip))) == 0)
        return "";
    return h->hostname;
}

static void clusters_text(const lg_snapshot_t *snap, lg_strbuf_t *out)
{
    for (size_t i = 0; snap != NULL && i < snap->n_clusters; ++i) {
        const lg_cluster_t *c = snap->clusters[i];
        const char *n = c->name;
        lg_strbuf_printf(out, "%s::observability_name::%s\n", n, n);
        for (int hi = 0; hi < 2; ++hi) {
            /* Only the default priority is configurable in legate; high keeps Envoy's defaults. */
            uint32_t mc = hi ? 1024 : c->circuit_breakers.max_connections,
                     mp = hi ? 1024 : c->circuit_breakers.max_pending_requests,
                     mr = hi ? 1024 : c->circuit_breakers.max_requests, mt = hi ? 3 : c->circuit_breakers.max_retries;
            const char *p = hi ? "high" : "default";
            lg_strbuf_printf(out, "%s::%s_priority::max_connections::%u\n", n, p, mc);
            lg_strbuf_printf(out, "%s::%s_priority::max_pending_requests::%u\n", n, p, mp);
            lg_strbuf_printf(out, "%s::%s_priority::max_requests::%u\n", n, p, mr);
            lg_strbuf_printf(out, "%s::%s_priority::max_retries::%u\n", n, p, mt);
        }
        lg_strbuf_printf(out, "%s::added_via_api::false\n", n);
        for (size_t j = 0; j < c->n_hosts; ++j) {
            const lg_host_t *h = c->hosts[j];
            char a[INET6_ADDRSTRLEN + 16];
            address_text(&h->addr, a, sizeof(a));
            /* Envoy prints the host's stats merged and sorted by name. */
            static const char *const sorted[] = {"cx_active", "cx_connect_fail", "cx_total", "rq_active",
                                                 "rq_error",  "rq_success",      "rq_timeout", "rq_total"};
            for (size_t k = 0; k < sizeof(sorted) / sizeof(sorted[0]); ++k)
                lg_strbuf_printf(out, "%s::%s::%s::0\n", n, a, sorted[k]);
            lg_strbuf_printf(out, "%s::%s::hostname::%s\n", n, a, host_name(h));
            lg_strbuf_printf(out, "%s::%s::health_flags::healthy\n", n, a);
            lg_strbuf_printf(out, "%s::%s::weight::%u\n", n, a, h->weight);
            lg_strbuf_printf(out, "%s::%s::region::\n", n, a);
            lg_strbuf_printf(out, "%s::%s::zone::\n", n, a);
            lg_strbuf_printf(out, "%s::%s::sub_zone::\n", n, a);
            lg_strbuf_printf(out, "%s::%s::canary::false\n", n, a);
            lg_strbuf_printf(out, "%s::%s::priority::0\n", n, a);
            lg_strbuf_printf(out, "%s::%s::success_rate::-1\n", n, a);
            lg_strbuf_printf(out, "%s::%s::local_origin_success_rate::-1\n", n, a);
        }
    }
}

static void thresholds_json(lg_strbuf_t *b, int high, uint32_t mc, uint32_t mp, uint32_t mr, uint32_t mt)
{
    lg_strbuf_puts(b, "{");
    if (high)
        lg_strbuf_puts(b, "\"priority\":\"HIGH\",");
    lg_strbuf_printf(b, "\"max_connections\":%u,\"max_pending_requests\":%u,\"max_requests\":%u,\"max_retries\":%u}",
                     mc, mp, mr, mt);
}

static void clusters_json(const lg_snapshot_t *snap, lg_strbuf_t *out)
{
    lg_strbuf_t b = LG_STRBUF_INIT;
    lg_strbuf_puts(&b, "{\"cluster_statuses\":[");
    for (size_t i = 0; snap != NULL && i < snap->n_clusters; ++i) {
        const lg_cluster_t *c = snap->clusters[i];
        lg_strbuf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
        lg_strbuf_json_string(&b, c->name, strlen(c->name));
        /* proto3 JSON leaves out added_via_api while it is false, as Envoy's page does. */
        if (c->n_hosts > 0) {
            lg_strbuf_puts(&b, ",\"host_statuses\":[");
            for (size_t j = 0; j < c->n_hosts; ++j) {
                const lg_host_t *h = c->hosts[j];
                lg_strbuf_puts(&b, j ? ",{\"address\":" : "{\"address\":");
                address_json(&b, &h->addr);
                lg_strbuf_puts(&b, ",\"stats\":[");
                /* SimpleMetric: type COUNTER and value 0 are defaults, so only names show. */
                for (size_t k = 0; k < sizeof(host_counters) / sizeof(host_counters[0]); ++k)
                    lg_strbuf_printf(&b, "%s{\"name\":\"%s\"}", k ? "," : "", host_counters[k]);
                for (size_t k = 0; k < sizeof(host_gauges) / sizeof(host_gauges[0]); ++k)
                    lg_strbuf_printf(&b, ",{\"type\":\"GAUGE\",\"name\":\"%s\"}", host_gauges[k]);
                lg_strbuf_printf(&b, "],\"health_status\":{\"eds_health_status\":\"HEALTHY\"},\"weight\":%u", h->weight);
                const char *hn = host_name(h);
                if (hn[0] != '\0') {
                    lg_strbuf_puts(&b, ",\"hostname\":");
                    lg_strbuf_json_string(&b, hn, strlen(hn));
                }
                lg_strbuf_puts(&b, ",\"locality\":{}}");
            }
            lg_strbuf_puts(&b, "]");
        }
        lg_strbuf_puts(&b, ",\"circuit_breakers\":{\"thresholds\":[");
        thresholds_json(&b, 0, c->circuit_breakers.max_connections, c->circuit_breakers.max_pending_requests,
                        c->circuit_breakers.max_requests, c->circuit_breakers.max_retries);
        lg_strbuf_puts(&b, ",");
        thresholds_json(&b, 1, 1024, 1024, 1024, 3);
        lg_strbuf_puts(&b, "]},\"observability_name\":");
        lg_strbuf_json_string(&b, c->name, strlen(c->name));
        lg_strbuf_puts(&b, "}");
    }
    lg_strbuf_puts(&b, "]}");
    pretty(&b, out);
}

void lg_admin_render_clusters(const lg_snapshot_t *snap, int json, lg_strbuf_t *out)
{
    if (json)
        clusters_json(snap, out);
    else
        clusters_text(snap, out);
}

/* ------------------------------------------------------------------------------------------- */
/* /listeners                                                                                  */
/* ------------------------------------------------------------------------------------------- */

void lg_admin_render_listeners(const lg_snapshot_t *snap, int json, lg_strbuf_t *out)
{
    if (!json) {
        for (size_t i = 0; snap != NULL && i < snap->n_listeners; ++i) {
            const lg_listener_t *l = snap->listeners[i];
            char a[INET6_ADDRSTRLEN + 16];
            lg_strbuf_printf(out, "%s::%s\n", l->name, address_text(&l->addr, a, sizeof(a)));
        }
        return;
    }
    lg_strbuf_t b = LG_STRBUF_INIT;
    lg_strbuf_puts(&b, "{\"listener_statuses\":[");
    for (size_t i = 0; snap != NULL && i < snap->n_listeners; ++i) {
        const lg_listener_t *l = snap->listeners[i];
        lg_strbuf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
        lg_strbuf_json_string(&b, l->name, strlen(l->name));
        lg_strbuf_puts(&b, ",\"local_address\":");
        address_json(&b, &l->addr);
        lg_strbuf_puts(&b, "}");
    }
    lg_strbuf_puts(&b, "]}");
    pretty(&b, out);
}

/* ------------------------------------------------------------------------------------------- */
/* /server_info                                                                                */
/* ------------------------------------------------------------------------------------------- */

const char *lg_admin_state_name(lg_admin_state_t s)
{
    switch (s) {
    case LG_ADMIN_STATE_LIVE:
        return "LIVE";
    case LG_ADMIN_STATE_DRAINING:
        return "DRAINING";
    case LG_ADMIN_STATE_PRE_INITIALIZING:
        return "PRE_INITIALIZING";
    case LG_ADMIN_STATE_INITIALIZING:
        return "INITIALIZING";
    }
    return "LIVE";
}

static void json_kv_str(lg_strbuf_t *b, const char *key, const char *v)
{
    lg_strbuf_printf(b, ",\"%s\":", key);
    v = v != NULL ? v : "";
    lg_strbuf_json_string(b, v, strlen(v));
}

static void json_kv_raw(lg_strbuf_t *b, const char *key, const char *raw)
{
    lg_strbuf_printf(b, ",\"%s\":%s", key, raw);
}

/* The command line as envoy.admin.v3.CommandLineOptions with every scalar printed, as Envoy's
 * /server_info does (always_print_primitive_fields). */
static void command_line_options(lg_strbuf_t *b, const lg_options_t *o, unsigned concurrency)
{
    static const char *const levels[] = {"trace", "debug", "info", "warning", "error", "critical", "off"};
    lg_options_t empty = {.log_level = LG_LOG_INFO, .drain_time_s = 600, .parent_shutdown_time_s = 900};
    if (o == NULL)
        o = &empty;
    char dur[32];
    lg_strbuf_puts(b, "{\"base_id\":\"0\"");
    json_kv_raw(b, "use_dynamic_base_id", "false");
    json_kv_raw(b, "skip_hot_restart_on_no_parent", "false");
    json_kv_raw(b, "skip_hot_restart_parent_stats", "false");
    json_kv_str(b, "base_id_path", "");
    lg_strbuf_printf(b, ",\"concurrency\":%u", concurrency);
    json_kv_str(b, "config_path", o->config_path);
    json_kv_str(b, "config_yaml", o->config_yaml);
    json_kv_raw(b, "allow_unknown_static_fields", "false");
    json_kv_raw(b, "reject_unknown_dynamic_fields", "false");
    json_kv_raw(b, "ignore_unknown_dynamic_fields", "false");
    json_kv_str(b, "admin_address_path", "");
    json_kv_str(b, "local_address_ip_version",
                o->local_address_ip_version != NULL ? o->local_address_ip_version : "v4");
    json_kv_str(b, "log_level", o->log_level >= 0 && o->log_level <= LG_LOG_OFF ? levels[o->log_level] : "info");
    json_kv_str(b, "component_log_level", o->component_log_level);
    json_kv_str(b, "log_format", o->log_format != NULL ? o->log_format : "[%Y-%m-%d %T.%e][%t][%l][%n] [%g:%#] %v");
    json_kv_raw(b, "log_format_escaped", "false");
    json_kv_str(b, "log_path", o->log_path);
    json_kv_str(b, "service_cluster", o->service_cluster);
    json_kv_str(b, "service_node", o->service_node);
    json_kv_str(b, "service_zone", o->service_zone);
    json_kv_str(b, "file_flush_interval", "10s");
    lg_pb_duration_format((int64_t)o->drain_time_s, 0, dur, sizeof(dur));
    json_kv_str(b, "drain_time", dur);
    json_kv_str(b, "drain_strategy",
                o->drain_strategy != NULL && strcmp(o->drain_strategy, "immediate") == 0 ? "Immediate" : "Gradual");
    lg_pb_duration_format((int64_t)o->parent_shutdown_time_s, 0, dur, sizeof(dur));
    json_kv_str(b, "parent_shutdown_time", dur);
    json_kv_str(b, "mode", o->mode == LG_MODE_VALIDATE ? "Validate" : o->mode == LG_MODE_INIT_ONLY ? "InitOnly" : "Serve");
    json_kv_raw(b, "disable_hot_restart", "true"); /* legate has no hot restart */
    json_kv_raw(b, "enable_mutex_tracing", "false");
    json_kv_raw(b, "restart_epoch", "0");
    json_kv_raw(b, "cpuset_threads", "false");
    json_kv_raw(b, "disabled_extensions", "[]");
    json_kv_raw(b, "enable_fine_grain_logging", "false");
    json_kv_str(b, "socket_path", "@envoy_domain_socket");
    json_kv_raw(b, "socket_mode", "0");
    json_kv_raw(b, "enable_core_dump", "false");
    json_kv_raw(b, "stats_tag", "[]");
    lg_strbuf_puts(b, "}");
}

void lg_admin_render_server_info(const lg_admin_server_info_t *info, lg_strbuf_t *out)
{
    lg_strbuf_t b = LG_STRBUF_INIT;
    char up[32];
    lg_pb_duration_format(info->uptime_s, 0, up, sizeof(up));
    lg_strbuf_puts(&b, "{\"version\":");
    lg_strbuf_json_string(&b, info->version, strlen(info->version));
    json_kv_str(&b, "state", lg_admin_state_name(info->state));
    json_kv_str(&b, "uptime_current_epoch", up);
    json_kv_str(&b, "uptime_all_epochs", up);
    json_kv_str(&b, "hot_restart_version", "disabled");
    lg_strbuf_puts(&b, ",\"command_line_options\":");
    command_line_options(&b, info->options, info->concurrency);
    if (info->bootstrap != NULL && info->bootstrap->node != NULL) {
        char *node = lg_pb_to_json(&info->bootstrap->node->base, 0);
        json_kv_raw(&b, "node", node);
        free(node);
    }
    lg_strbuf_puts(&b, "}");
    pretty(&b, out);
}

/* ------------------------------------------------------------------------------------------- */
/* /memory                                                                                     */
/* ------------------------------------------------------------------------------------------- */

void lg_admin_render_memory(lg_strbuf_t *out)
{
    /* glibc's allocator: in use (small blocks + mmapped), and what it holds from the system. */
    struct mallinfo2 mi = mallinfo2();
    uint64_t allocated = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
    uint64_t heap = (uint64_t)mi.arena + (uint64_t)mi.hblkhd;
    lg_strbuf_t b = LG_STRBUF_INIT;
    lg_strbuf_printf(&b,
                     "{\"allocated\":\"%" PRIu64 "\",\"heap_size\":\"%" PRIu64 "\",\"pageheap_unmapped\":\"0\","
                     "\"pageheap_free\":\"%" PRIu64 "\",\"total_thread_cache\":\"0\",\"total_physical_bytes\":\"%" PRIu64
                     "\"}",
                     allocated, heap, (uint64_t)mi.fordblks, heap);
    pretty(&b, out);
}

/* ------------------------------------------------------------------------------------------- */
/* /runtime                                                                                    */
/* ------------------------------------------------------------------------------------------- */

typedef struct st_runtime_entry_t {
    char *key;
    char **values; /* one per layer, NULL where the layer does not set it */
} runtime_entry_t;

typedef struct st_runtime_t {
    runtime_entry_t *entries;
    size_t n, cap, n_layers;
} runtime_t;

static runtime_entry_t *runtime_entry(runtime_t *rt, const char *key)
{
    for (size_t i = 0; i < rt->n; ++i)
        if (strcmp(rt->entries[i].key, key) == 0)
            return &rt->entries[i];
    if (rt->n == rt->cap) {
        rt->cap = rt->cap ? rt->cap * 2 : 16;
        if ((rt->entries = realloc(rt->entries, rt->cap * sizeof(*rt->entries))) == NULL)
            lg_fatal("out of memory");
    }
    runtime_entry_t *e = &rt->entries[rt->n++];
    if ((e->key = strdup(key)) == NULL || (e->values = calloc(rt->n_layers, sizeof(char *))) == NULL)
        lg_fatal("out of memory");
    return e;
}

/* The shortest text that reads back as the same double ("50", "0.1"). */
static const char *shortest_number(double d, char *buf, size_t len)
{
    for (int prec = 15; prec <= 17; ++prec) {
        snprintf(buf, len, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    return buf;
}

/* Envoy's static layer: nested objects become dotted keys; leaves are kept as strings. */
static void runtime_flatten(runtime_t *rt, size_t layer, const char *prefix, const Google__Protobuf__Struct *s)
{
    for (size_t i = 0; s != NULL && i < s->n_fields; ++i) {
        const Google__Protobuf__Value *v = s->fields[i]->value;
        lg_strbuf_t key = LG_STRBUF_INIT;
        if (prefix[0] != '\0')
            lg_strbuf_printf(&key, "%s.", prefix);
        lg_strbuf_puts(&key, s->fields[i]->key);
        char num[40];
        const char *text = NULL;
        if (v == NULL)
            text = "";
        else if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE)
            runtime_flatten(rt, layer, key.data, v->struct_value);
        else if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE)
            text = v->string_value;
        else if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_BOOL_VALUE)
            text = v->bool_value ? "true" : "false";
        else if (v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE)
            text = shortest_number(v->number_value, num, sizeof(num));
        else
            text = "";
        if (text != NULL) {
            runtime_entry_t *e = runtime_entry(rt, key.data);
            free(e->values[layer]);
            if ((e->values[layer] = strdup(text)) == NULL)
                lg_fatal("out of memory");
        }
        lg_strbuf_dispose(&key);
    }
}

static int by_key(const void *a, const void *b)
{
    return strcmp(((const runtime_entry_t *)a)->key, ((const runtime_entry_t *)b)->key);
}

void lg_admin_render_runtime(const lg_bootstrap_pb_t *bootstrap, lg_strbuf_t *out)
{
    const Envoy__Config__Bootstrap__V3__LayeredRuntime *lr = bootstrap != NULL ? bootstrap->layered_runtime : NULL;
    runtime_t rt = {.n_layers = lr != NULL ? lr->n_layers : 0};
    for (size_t i = 0; i < rt.n_layers; ++i)
        if (lr->layers[i]->layer_specifier_case == ENVOY__CONFIG__BOOTSTRAP__V3__RUNTIME_LAYER__LAYER_SPECIFIER_STATIC_LAYER)
            runtime_flatten(&rt, i, "", lr->layers[i]->static_layer);
    if (rt.n > 0)
        qsort(rt.entries, rt.n, sizeof(*rt.entries), by_key);

    lg_strbuf_t b = LG_STRBUF_INIT;
    lg_strbuf_puts(&b, "{\"entries\":{");
    for (size_t i = 0; i < rt.n; ++i) {
        runtime_entry_t *e = &rt.entries[i];
        const char *final = "";
        if (i)
            lg_strbuf_puts(&b, ",");
        lg_strbuf_json_string(&b, e->key, strlen(e->key));
        lg_strbuf_puts(&b, ":{\"layer_values\":[");
        for (size_t l = 0; l < rt.n_layers; ++l) {
            const char *v = e->values[l] != NULL ? e->values[l] : "";
            if (e->values[l] != NULL)
                final = v; /* later layers override earlier ones */
            if (l)
                lg_strbuf_puts(&b, ",");
            lg_strbuf_json_string(&b, v, strlen(v));
        }
        lg_strbuf_puts(&b, "],\"final_value\":");
        lg_strbuf_json_string(&b, final, strlen(final));
        lg_strbuf_puts(&b, "}");
    }
    lg_strbuf_puts(&b, "},\"layers\":[");
    for (size_t l = 0; l < rt.n_layers; ++l) {
        if (l)
            lg_strbuf_puts(&b, ",");
        const char *name = lr->layers[l]->name != NULL ? lr->layers[l]->name : "";
        lg_strbuf_json_string(&b, name, strlen(name));
    }
    lg_strbuf_puts(&b, "]}");
    pretty(&b, out);
    for (size_t i = 0; i < rt.n; ++i) {
        for (size_t l = 0; l < rt.n_layers; ++l)
            free(rt.entries[i].values[l]);
        free(rt.entries[i].values);
        free(rt.entries[i].key);
    }
    free(rt.entries);
}
