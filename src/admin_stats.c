/*
 * /stats and /stats/prometheus (see admin_render.h): Envoy's text, JSON and Prometheus renderings
 * of the stats registry, and Envoy's default tag extraction, which turns
 * `cluster.app.upstream_rq_2xx` into `envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",
 * envoy_cluster_name="app"}` so that dashboards written for Envoy find the same series.
 *
 * A request picks and orders the stats once (names only), then writes the body a chunk at a time,
 * reading each value as its line is written: with tens of thousands of stats the body is never
 * held whole. Histograms come after the counters and gauges, as Envoy orders them: text
 * `name: P0(nan,1) P25(nan,2.5) ...` (interval values are not tracked: always nan), JSON as the
 * last element of "stats" ({"histograms":{"supported_quantiles":[...],"computed_quantiles":[...]}},
 * interval null), Prometheus `# TYPE x histogram` with cumulative `_bucket{le=..}`, `_sum`,
 * `_count`. "used" is approximated by a non-zero value (a histogram: a non-zero count) because
 * the registry keeps no used bit.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_render.h"
#include "log.h"
#include "regex.h"
#include "stats.h"

typedef enum en_stats_format_t {
    FORMAT_TEXT,
    FORMAT_JSON,
    FORMAT_PROMETHEUS,
} stats_format_t;

typedef struct st_entry_t {
    lg_stat_id_t id;
    lg_stat_type_t type;
    const char *name; /* the registry's, never freed */
    char *prom_name;  /* Prometheus: "envoy_" + sanitized tag-extracted name */
    char *labels;     /* Prometheus: `envoy_cluster_name="app"` */
} entry_t;

struct st_lg_admin_stats_request_t {
    stats_format_t format;
    entry_t *entries;
    size_t n, next;
    int started, done, hist_open;
};

/* ------------------------------------------------------------------------------------------- */
/* Tag extraction: Envoy's default extractors, in Envoy's order                                */
/* ------------------------------------------------------------------------------------------- */

/* What one extractor found: the bytes to remove from the name and the tag value within them. */
typedef struct st_match_t {
    size_t rs, re, vs, ve;
} match_t;

static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int starts_with(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

static const char *find(const char *s, size_t len, size_t from, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = from; i + n <= len; ++i)
        if (memcmp(s + i, needle, n) == 0)
            return s + i;
    return NULL;
}

/* `((.*?)\.)\w+?$` from `start`: the value runs to the last dot, after which only word bytes. */
static int to_last_dot(const char *s, size_t len, size_t start, match_t *m)
{
    size_t dot = len;
    for (size_t i = len; i > start; --i)
        if (s[i - 1] == '.') {
            dot = i - 1;
            break;
        }
    if (dot == len || dot + 1 == len)
        return 0;
    for (size_t i = dot + 1; i < len; ++i)
        if (!is_word(s[i]))
            return 0;
    *m = (match_t){start, dot + 1, start, dot};
    return 1;
}

/* `((.*?)\.)` from `start`: the value runs to the next dot. */
static int to_next_dot(const char *s, size_t len, size_t start, match_t *m)
{
    const char *dot = memchr(s + start, '.', len - start);
    if (dot == NULL)
        return 0;
    size_t d = (size_t)(dot - s);
    *m = (match_t){start, d + 1, start, d};
    return 1;
}

/* `^<prefix>(?=\.).*?<marker>((.*?)\.)\w+?$`: the first marker after which the rest fits. */
static int mid_segment(const char *s, size_t len, const char *prefix, const char *marker, match_t *m)
{
    size_t plen = strlen(prefix);
    if (!starts_with(s, len, prefix) || len <= plen || s[plen] != '.')
        return 0;
    for (const char *p = find(s, len, plen, marker); p != NULL; p = find(s, len, (size_t)(p - s) + 1, marker))
        if (to_last_dot(s, len, (size_t)(p - s) + strlen(marker), m))
            return 1;
    return 0;
}

/* `^<prefix>(?=\.).*?<marker>(\.(.*?))$`: everything after the first marker. */
static int tail_after(const char *s, size_t len, const char *prefix, const char *marker, match_t *m)
{
    size_t plen = strlen(prefix);
    if (!starts_with(s, len, prefix) || len <= plen || s[plen] != '.')
        return 0;
    const char *p = find(s, len, plen, marker);
    if (p == NULL)
        return 0;
    size_t dot = (size_t)(p - s) + strlen(marker) - 1;
    *m = (match_t){dot, len, dot + 1, len};
    return 1;
}

/* *_rq(_(\d{3}))$ */
static int x_response_code(const char *s, size_t len, match_t *m)
{
    if (len < 7 || memcmp(s + len - 7, "_rq_", 4) != 0 || !is_digit(s[len - 3]) || !is_digit(s[len - 2]) ||
        !is_digit(s[len - 1]))
        return 0;
    *m = (match_t){len - 4, len, len - 3, len};
    return 1;
}

/* *_rq_(\d)xx$ */
static int x_response_code_class(const char *s, size_t len, match_t *m)
{
    if (len < 7 || memcmp(s + len - 7, "_rq_", 4) != 0 || !is_digit(s[len - 3]) || memcmp(s + len - 2, "xx", 2) != 0)
        return 0;
    *m = (match_t){len - 3, len - 2, len - 3, len - 2};
    return 1;
}

/* ^cluster(?=\.).*?\.grpc(?=\.).*\.((.*?)\.)\w+?$ : the segment before the last one. */
static int x_grpc_bridge_method(const char *s, size_t len, match_t *m)
{
    if (!starts_with(s, len, "cluster."))
        return 0;
    const char *g = find(s, len, 7, ".grpc.");
    match_t last;
    if (g == NULL || !to_last_dot(s, len, 0, &last))
        return 0;
    size_t d2 = last.ve, min = (size_t)(g - s) + 5;
    for (size_t d1 = d2; d1 > min; --d1)
        if (s[d1 - 1] == '.') {
            *m = (match_t){d1, d2 + 1, d1, d2};
            return 1;
        }
    return 0;
}

static int x_http_user_agent(const char *s, size_t len, match_t *m)
{
    return mid_segment(s, len, "http", ".user_agent.", m);
}

static int x_virtual_cluster(const char *s, size_t len, match_t *m)
{
    return mid_segment(s, len, "vhost", ".vcluster.", m);
}

static int x_fault_downstream_cluster(const char *s, size_t len, match_t *m)
{
    return mid_segment(s, len, "http", ".fault.", m);
}

static int x_ssl_cipher(const char *s, size_t len, match_t *m)
{
    return tail_after(s, len, "listener", ".ssl.cipher.", m);
}

static int x_ssl_cipher_suite(const char *s, size_t len, match_t *m)
{
    return tail_after(s, len, "cluster", ".ssl.ciphers.", m);
}

/* ^cluster(?=\.).*?\.grpc\.((.*?)\.) */
static int x_grpc_bridge_service(const char *s, size_t len, match_t *m)
{
    if (!starts_with(s, len, "cluster."))
        return 0;
    const char *g = find(s, len, 7, ".grpc.");
    return g != NULL && to_next_dot(s, len, (size_t)(g - s) + 6, m);
}

static int x_tcp_prefix(const char *s, size_t len, match_t *m)
{
    return starts_with(s, len, "tcp.") && to_last_dot(s, len, 4, m);
}

static int x_udp_prefix(const char *s, size_t len, match_t *m)
{
    return starts_with(s, len, "udp.") && to_last_dot(s, len, 4, m);
}

static int x_clientssl_prefix(const char *s, size_t len, match_t *m)
{
    return starts_with(s, len, "auth.clientssl.") && to_last_dot(s, len, 15, m);
}

static int x_ratelimit_prefix(const char *s, size_t len, match_t *m)
{
    return starts_with(s, len, "ratelimit.") && to_last_dot(s, len, 10, m);
}

/* ^cluster\.(([^\.]+)\.).* */
static int x_cluster_name(const char *s, size_t len, match_t *m)
{
    return starts_with(s, len, "cluster.") && len > 8 && s[8] != '.' && to_next_dot(s, len, 8, m);
}

/* ^listener(?=\.).*?\.http\.((.*?)\.) */
static int x_listener_http_prefix(const char *s, size_t len, match_t *m)
{
    if (!starts_with(s, len, "listener."))
        return 0;
    const char *h = find(s, len, 8, ".http.");
    return h != NULL && to_next_dot(s, len, (size_t)(h - s) + 6, m);
}

/* ^http\.((.*?)\.) */
static int x_http_prefix(const char *s, size_t len, match_t *m)
{
    return starts_with(s, len, "http.") && to_next_dot(s, len, 5, m);
}

/* ^listener\.(((?:[_.[:digit:]]*|[_\[\]aAbBcCdDeEfF[:digit:]]*))\.): an IPv4 or IPv6 address
 * with its port, ':' already replaced by '_' ("0.0.0.0_10000", "[__1]_8080"). */
static int x_listener_address(const char *s, size_t len, match_t *m)
{
    if (!starts_with(s, len, "listener."))
        return 0;
    size_t start = 9, e = start, last_dot = len;
    /* First alternative, greedy with backtracking: the longest run of [_.0-9] ending before a dot. */
    while (e < len && (s[e] == '_' || s[e] == '.' || is_digit(s[e]))) {
        if (s[e] == '.')
            last_dot = e;
        ++e;
    }
    if (last_dot != len) {
        *m = (match_t){start, last_dot + 1, start, last_dot};
        return 1;
    }
    /* Second alternative: hex digits, '_' and brackets, then a dot. */
    for (e = start; e < len && (s[e] == '_' || s[e] == '[' || s[e] == ']' || is_digit(s[e]) ||
                                ((s[e] | 0x20) >= 'a' && (s[e] | 0x20) <= 'f'));
         ++e)
        ;
    if (e < len && s[e] == '.') {
        *m = (match_t){start, e + 1, start, e};
        return 1;
    }
    return 0;
}

/* ^vhost\.((.*?)\.) */
static int x_virtual_host(const char *s, size_t len, match_t *m)
{
    return starts_with(s, len, "vhost.") && to_next_dot(s, len, 6, m);
}

static int x_rds_route_config(const char *s, size_t len, match_t *m)
{
    return mid_segment(s, len, "http", ".rds.", m);
}

/* ^listener_manager\.((worker_\d+)\.) */
static int x_worker_id(const char *s, size_t len, match_t *m)
{
    if (!starts_with(s, len, "listener_manager.worker_"))
        return 0;
    size_t i = 24;
    while (i < len && is_digit(s[i]))
        ++i;
    if (i == 24 || i >= len || s[i] != '.')
        return 0;
    *m = (match_t){17, i + 1, 17, i};
    return 1;
}

static const struct {
    const char *tag;
    int (*fn)(const char *s, size_t len, match_t *m);
} extractors[] = {
    {"envoy.response_code", x_response_code},
    {"envoy.response_code_class", x_response_code_class},
    {"envoy.grpc_bridge_method", x_grpc_bridge_method},
    {"envoy.http_user_agent", x_http_user_agent},
    {"envoy.virtual_cluster", x_virtual_cluster},
    {"envoy.fault_downstream_cluster", x_fault_downstream_cluster},
    {"envoy.ssl_cipher", x_ssl_cipher},
    {"envoy.ssl_cipher_suite", x_ssl_cipher_suite},
    {"envoy.grpc_bridge_service", x_grpc_bridge_service},
    {"envoy.tcp_prefix", x_tcp_prefix},
    {"envoy.udp_prefix", x_udp_prefix},
    {"envoy.clientssl_prefix", x_clientssl_prefix},
    {"envoy.ratelimit_prefix", x_ratelimit_prefix},
    {"envoy.cluster_name", x_cluster_name},
    {"envoy.http_conn_manager_prefix", x_listener_http_prefix},
    {"envoy.http_conn_manager_prefix", x_http_prefix},
    {"envoy.listener_address", x_listener_address},
    {"envoy.virtual_host", x_virtual_host},
    {"envoy.rds_route_config", x_rds_route_config},
    {"envoy.worker_id", x_worker_id},
};

size_t lg_admin_stats_extract_tags(const char *name, lg_admin_tag_t *tags, char *extracted, size_t cap)
{
    size_t len = strlen(name), n = 0;
    char stack_mask[512];
    char *removed = len <= sizeof(stack_mask) ? stack_mask : malloc(len);
    if (removed == NULL)
        lg_fatal("out of memory");
    memset(removed, 0, len);
    for (size_t i = 0; i < sizeof(extractors) / sizeof(extractors[0]) && n < LG_ADMIN_MAX_TAGS; ++i) {
        match_t m;
        /* A tag name is extracted once (two patterns name the connection manager prefix). */
        int seen = 0;
        for (size_t t = 0; t < n; ++t)
            seen |= strcmp(tags[t].name, extractors[i].tag) == 0;
        if (seen || !extractors[i].fn(name, len, &m))
            continue;
        tags[n++] = (lg_admin_tag_t){extractors[i].tag, name + m.vs, m.ve - m.vs};
        memset(removed + m.rs, 1, m.re - m.rs);
    }
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < cap; ++i)
        if (!removed[i])
            extracted[o++] = name[i];
    if (cap > 0)
        extracted[o] = '\0';
    if (removed != stack_mask)
        free(removed);
    return n;
}

/* Prometheus names allow [a-zA-Z0-9_]; Envoy replaces anything else with '_'. */
static void sanitize(lg_strbuf_t *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        char c = is_word(s[i]) ? s[i] : '_';
        lg_strbuf_append(b, &c, 1);
    }
}

/* Label values escape backslash, quote and newline (exposition format). */
static void label_value(lg_strbuf_t *b, const char *s, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        if (s[i] == '\\' || s[i] == '"')
            lg_strbuf_append(b, "\\", 1);
        if (s[i] == '\n')
            lg_strbuf_append(b, "\\n", 2);
        else
            lg_strbuf_append(b, s + i, 1);
    }
}

static void prometheus_names(entry_t *e)
{
    lg_admin_tag_t tags[LG_ADMIN_MAX_TAGS];
    size_t cap = strlen(e->name) + 1;
    char *extracted = malloc(cap);
    if (extracted == NULL)
        lg_fatal("out of memory");
    size_t n = lg_admin_stats_extract_tags(e->name, tags, extracted, cap);
    lg_strbuf_t b = LG_STRBUF_INIT;
    lg_strbuf_puts(&b, "envoy_");
    sanitize(&b, extracted, strlen(extracted));
    e->prom_name = lg_strbuf_release(&b);
    for (size_t i = 0; i < n; ++i) {
        if (i > 0)
            lg_strbuf_append(&b, ",", 1);
        sanitize(&b, tags[i].name, strlen(tags[i].name));
        lg_strbuf_append(&b, "=\"", 2);
        label_value(&b, tags[i].value, tags[i].value_len);
        lg_strbuf_append(&b, "\"", 1);
    }
    e->labels = lg_strbuf_release(&b);
    free(extracted);
}

/* ------------------------------------------------------------------------------------------- */
/* Requests                                                                                    */
/* ------------------------------------------------------------------------------------------- */

/* Text and JSON: counters and gauges together by name, then histograms by name. */
static int by_name(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    int hx = x->type == LG_STAT_HISTOGRAM, hy = y->type == LG_STAT_HISTOGRAM;
    if (hx != hy)
        return hx - hy;
    return strcmp(x->name, y->name);
}

/* Prometheus groups every series of a metric together: counters first, then gauges, histograms. */
static int by_metric(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    if (x->type != y->type)
        return (int)x->type - (int)y->type;
    int c = strcmp(x->prom_name, y->prom_name);
    return c != 0 ? c : strcmp(x->name, y->name);
}

/* Gauges are sums of per-worker cells that each move both ways; a sum read while another worker
 * is mid-update can dip below zero for an instant, which must not print as 2^64 - 1. */
static uint64_t stat_value(const entry_t *e)
{
    /* (A histogram's value is its count: lg_stats_value.) */
    uint64_t v = lg_stats_value(e->id);
    return e->type == LG_STAT_GAUGE && v > (uint64_t)INT64_MAX ? 0 : v;
}

lg_admin_stats_request_t *lg_admin_stats_request_new(const lg_admin_query_t *q, int prometheus, int *status,
                                                     lg_strbuf_t *err)
{
    int used_only = lg_admin_query_get(q, "usedonly") != NULL;
    int want_counters = 1, want_gauges = 1, want_histograms = 1;
    stats_format_t format = prometheus ? FORMAT_PROMETHEUS : FORMAT_TEXT;
    lg_regex_t *filter = NULL;
    const char *v;

    *status = 400;
    if ((v = lg_admin_query_get(q, "filter")) != NULL && v[0] != '\0') {
        lg_error_t e;
        if ((filter = lg_regex_compile_ex(v, strlen(v), LG_REGEX_NO_PROGRAM_SIZE_LIMIT, 0, &e)) == NULL) {
            lg_strbuf_puts(err, "Invalid re2 regex");
            return NULL;
        }
    }
    if ((v = lg_admin_query_get(q, "type")) != NULL) {
        if (strcmp(v, "Counters") == 0) {
            want_gauges = want_histograms = 0;
        } else if (strcmp(v, "Gauges") == 0) {
            want_counters = want_histograms = 0;
        } else if (strcmp(v, "Histograms") == 0) {
            want_counters = want_gauges = 0;
        } else if (strcmp(v, "TextReadouts") == 0) {
            want_counters = want_gauges = want_histograms = 0; /* the registry has none */
        } else if (strcmp(v, "All") != 0) {
            lg_strbuf_puts(err, "invalid &type= param");
            lg_regex_free(filter);
            return NULL;
        }
    }
    if (!prometheus && (v = lg_admin_query_get(q, "format")) != NULL) {
        if (strcmp(v, "prometheus") == 0) {
            format = FORMAT_PROMETHEUS;
        } else if (strcmp(v, "json") == 0) {
            format = FORMAT_JSON;
        } else if (strcmp(v, "text") == 0) {
            format = FORMAT_TEXT;
        } else {
            if (strcmp(v, "html") == 0 || strcmp(v, "active-html") == 0)
                lg_strbuf_puts(err, "HTML output was disabled by building with --define=admin_html=disabled");
            else
                lg_strbuf_puts(err, "usage: /stats?format=(html|active-html|json|prometheus|text)\n\n");
            lg_regex_free(filter);
            return NULL;
        }
    }

    lg_admin_stats_request_t *r = calloc(1, sizeof(*r));
    size_t count = lg_stats_count();
    if (r == NULL || (r->entries = calloc(count ? count : 1, sizeof(*r->entries))) == NULL)
        lg_fatal("out of memory");
    r->format = format;
    for (lg_stat_id_t id = 0; id < count; ++id) {
        entry_t e = {.id = id};
        e.name = lg_stats_name(id, &e.type);
        if (!(e.type == LG_STAT_COUNTER ? want_counters : e.type == LG_STAT_GAUGE ? want_gauges : want_histograms))
            continue;
        if (filter != NULL && !lg_regex_partial_match(filter, e.name, strlen(e.name)))
            continue;
        if (used_only && stat_value(&e) == 0)
            continue;
        if (format == FORMAT_PROMETHEUS)
            prometheus_names(&e);
        r->entries[r->n++] = e;
    }
    lg_regex_free(filter);
    if (r->n > 0)
        qsort(r->entries, r->n, sizeof(*r->entries), format == FORMAT_PROMETHEUS ? by_metric : by_name);
    *status = 200;
    return r;
}

const char *lg_admin_stats_content_type(const lg_admin_stats_request_t *r)
{
    return r->format == FORMAT_JSON ? "application/json" : "text/plain; charset=UTF-8";
}

/* A double as fmt's "{}" prints it: the shortest text that reads back the same; "nan" for NaN. */
static void put_double(lg_strbuf_t *out, double v)
{
    char buf[40];
    if (isnan(v)) {
        lg_strbuf_puts(out, "nan");
        return;
    }
    /* Plain notation where fmt uses it (no "5e+01" for 50): below 1e16 and not tiny. */
    int plain = fabs(v) < 1e16 && (v == 0 || fabs(v) >= 1e-4);
    for (int p = 1; p <= 17; ++p) {
        snprintf(buf, sizeof(buf), "%.*g", p, v);
        if (strtod(buf, NULL) == v && !(plain && strchr(buf, 'e') != NULL))
            break;
    }
    lg_strbuf_puts(out, buf);
}

static void put_json_double(lg_strbuf_t *out, double v)
{
    if (isnan(v))
        lg_strbuf_puts(out, "null");
    else
        put_double(out, v);
}

static void hist_text(lg_strbuf_t *out, const entry_t *e)
{
    lg_stats_hist_t h;
    lg_stats_hist_value(e->id, &h);
    lg_strbuf_printf(out, "%s: ", e->name);
    if (h.count == 0) {
        lg_strbuf_puts(out, "No recorded values\n");
        return;
    }
    for (size_t i = 0; i < LG_STATS_N_QUANTILES; ++i) {
        lg_strbuf_puts(out, i > 0 ? " P" : "P");
        put_double(out, lg_stats_quantiles[i] * 100);
        lg_strbuf_puts(out, "(nan,");
        put_double(out, lg_stats_hist_quantile(&h, lg_stats_quantiles[i]));
        lg_strbuf_puts(out, ")");
    }
    lg_strbuf_puts(out, "\n");
}

static void hist_json(lg_strbuf_t *out, const entry_t *e)
{
    lg_stats_hist_t h;
    lg_stats_hist_value(e->id, &h);
    lg_strbuf_puts(out, "{\"name\":");
    lg_strbuf_json_string(out, e->name, strlen(e->name));
    lg_strbuf_puts(out, ",\"values\":[");
    for (size_t i = 0; i < LG_STATS_N_QUANTILES; ++i) {
        lg_strbuf_puts(out, i > 0 ? ",{\"interval\":null,\"cumulative\":" : "{\"interval\":null,\"cumulative\":");
        put_json_double(out, lg_stats_hist_quantile(&h, lg_stats_quantiles[i]));
        lg_strbuf_puts(out, "}");
    }
    lg_strbuf_puts(out, "]}");
}

static void hist_prometheus(lg_strbuf_t *out, const entry_t *e)
{
    lg_stats_hist_t h;
    lg_stats_hist_value(e->id, &h);
    const char *sep = e->labels[0] != '\0' ? "," : "";
    uint64_t cum = 0;
    for (size_t b = 0; b < LG_STATS_HIST_BUCKETS; ++b) {
        cum += h.buckets[b];
        lg_strbuf_printf(out, "%s_bucket{%s%sle=\"%.32g\"} %" PRIu64 "\n", e->prom_name, e->labels, sep,
                         lg_stats_hist_bounds[b], cum);
    }
    lg_strbuf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", e->prom_name, e->labels, sep, h.count);
    lg_strbuf_printf(out, "%s_sum{%s} %" PRIu64 "\n", e->prom_name, e->labels, h.sum);
    lg_strbuf_printf(out, "%s_count{%s} %" PRIu64 "\n", e->prom_name, e->labels, h.count);
}

int lg_admin_stats_request_next(lg_admin_stats_request_t *r, lg_strbuf_t *out, size_t budget)
{
    size_t start = out->len;
    if (r->done)
        return 0;
    if (!r->started) {
        r->started = 1;
        if (r->format == FORMAT_JSON)
            lg_strbuf_puts(out, "{\"stats\":[");
    }
    while (r->next < r->n && out->len - start < budget) {
        const entry_t *e = &r->entries[r->next];
        switch (r->format) {
        case FORMAT_TEXT:
            if (e->type == LG_STAT_HISTOGRAM)
                hist_text(out, e);
            else
                lg_strbuf_printf(out, "%s: %" PRIu64 "\n", e->name, stat_value(e));
            break;
        case FORMAT_JSON:
            if (e->type == LG_STAT_HISTOGRAM) {
                if (!r->hist_open) {
                    r->hist_open = 1;
                    lg_strbuf_puts(out, r->next > 0 ? ",{\"histograms\":{\"supported_quantiles\":["
                                                    : "{\"histograms\":{\"supported_quantiles\":[");
                    for (size_t i = 0; i < LG_STATS_N_QUANTILES; ++i) {
                        if (i > 0)
                            lg_strbuf_append(out, ",", 1);
                        put_double(out, lg_stats_quantiles[i] * 100);
                    }
                    lg_strbuf_puts(out, "],\"computed_quantiles\":[");
                } else {
                    lg_strbuf_append(out, ",", 1);
                }
                hist_json(out, e);
                break;
            }
            if (r->next > 0)
                lg_strbuf_append(out, ",", 1);
            lg_strbuf_puts(out, "{\"name\":");
            lg_strbuf_json_string(out, e->name, strlen(e->name));
            lg_strbuf_printf(out, ",\"value\":%" PRIu64 "}", stat_value(e));
            break;
        case FORMAT_PROMETHEUS: {
            const entry_t *prev = r->next > 0 ? &r->entries[r->next - 1] : NULL;
            if (prev == NULL || prev->type != e->type || strcmp(prev->prom_name, e->prom_name) != 0) {
                if (prev != NULL)
                    lg_strbuf_append(out, "\n", 1);
                lg_strbuf_printf(out, "# TYPE %s %s\n", e->prom_name,
                                 e->type == LG_STAT_COUNTER ? "counter"
                                 : e->type == LG_STAT_GAUGE ? "gauge"
                                                            : "histogram");
            }
            if (e->type == LG_STAT_HISTOGRAM)
                hist_prometheus(out, e);
            else
                lg_strbuf_printf(out, "%s{%s} %" PRIu64 "\n", e->prom_name, e->labels, stat_value(e));
            break;
        }
        }
        ++r->next;
    }
    if (r->next < r->n)
        return 1;
    r->done = 1;
    if (r->format == FORMAT_JSON)
        lg_strbuf_puts(out, r->hist_open ? "]}}]}" : "]}");
    else if (r->format == FORMAT_PROMETHEUS && r->n > 0)
        lg_strbuf_append(out, "\n", 1);
    return 0;
}

void lg_admin_stats_request_free(lg_admin_stats_request_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; ++i) {
        free(r->entries[i].prom_name);
        free(r->entries[i].labels);
    }
    free(r->entries);
    free(r);
}
