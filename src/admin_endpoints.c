/*
 * Envoy's admin paths (see admin_endpoints.h): the path table with its help texts and POST-only
 * rule, query-string decoding, and the handlers. Handlers that show state call the renderers
 * (admin_render.h); handlers that act go through the server's hooks (quit, drain) or flip the
 * process-wide health-check switch. They never touch sockets: admin.c serves what they answer.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin_endpoints.h"
#include "log.h"

#ifndef LG_VERSION
#define LG_VERSION "0.0.0"
#endif

static atomic_int health_check_failed;

int lg_admin_health_check_failed(void)
{
    return atomic_load_explicit(&health_check_failed, memory_order_relaxed);
}

/* ------------------------------------------------------------------------------------------- */
/* Query strings                                                                               */
/* ------------------------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static char *decode(const char *s, size_t len)
{
    char *out = malloc(len + 1), *o = out;
    if (out == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i < len; ++i) {
        int h, l;
        if (s[i] == '%' && i + 2 < len && (h = hexval(s[i + 1])) >= 0 && (l = hexval(s[i + 2])) >= 0) {
            *o++ = (char)(h * 16 + l);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return out;
}

void lg_admin_query_parse(lg_admin_query_t *q, const char *query, size_t len)
{
    q->params = NULL;
    q->n = 0;
    size_t cap = 0, i = 0;
    while (i < len) {
        const char *amp = memchr(query + i, '&', len - i);
        size_t end = amp != NULL ? (size_t)(amp - query) : len;
        if (end > i) {
            const char *eq = memchr(query + i, '=', end - i);
            size_t name_end = eq != NULL ? (size_t)(eq - query) : end;
            if (q->n == cap) {
                cap = cap ? cap * 2 : 8;
                if ((q->params = realloc(q->params, cap * sizeof(*q->params))) == NULL)
                    lg_fatal("out of memory");
            }
            q->params[q->n].name = decode(query + i, name_end - i);
            q->params[q->n].value = eq != NULL ? decode(eq + 1, end - name_end - 1) : decode("", 0);
            ++q->n;
        }
        i = end + 1;
    }
}

const char *lg_admin_query_get(const lg_admin_query_t *q, const char *name)
{
    for (size_t i = 0; i < q->n; ++i)
        if (strcmp(q->params[i].name, name) == 0)
            return q->params[i].value;
    return NULL;
}

void lg_admin_query_dispose(lg_admin_query_t *q)
{
    for (size_t i = 0; i < q->n; ++i) {
        free(q->params[i].name);
        free(q->params[i].value);
    }
    free(q->params);
    q->params = NULL;
    q->n = 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Handlers                                                                                    */
/* ------------------------------------------------------------------------------------------- */

#define TEXT "text/plain; charset=UTF-8"
#define JSON "application/json"

typedef void (*handler_fn)(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res);

static lg_admin_state_t server_state(const lg_admin_context_t *a)
{
    lg_admin_state_t s = a->hooks->state != NULL ? a->hooks->state(a->hooks->data) : LG_ADMIN_STATE_LIVE;
    /* Envoy's Utility::serverState: a failed health check shows an initialized server DRAINING. */
    return s == LG_ADMIN_STATE_LIVE && lg_admin_health_check_failed() ? LG_ADMIN_STATE_DRAINING : s;
}

static lg_snapshot_t *current_snapshot(const lg_admin_context_t *a)
{
    return a->hooks->snapshot != NULL ? a->hooks->snapshot(a->hooks->data) : NULL;
}

static void reply(lg_admin_response_t *res, int status, const char *type, const char *text)
{
    res->status = status;
    res->content_type = type;
    lg_strbuf_puts(&res->body, text);
}

static void h_help(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res);

static void h_ready(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    lg_admin_state_t s = server_state(a);
    res->status = s == LG_ADMIN_STATE_LIVE ? 200 : 503;
    res->content_type = TEXT;
    lg_strbuf_printf(&res->body, "%s\n", lg_admin_state_name(s));
}

static void h_server_info(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    time_t start = a->hooks->start_time != 0 ? a->hooks->start_time : a->started.tv_sec;
    lg_admin_server_info_t info = {
        .version = "legate/" LG_VERSION,
        .state = server_state(a),
        .uptime_s = now.tv_sec > start ? (int64_t)(now.tv_sec - start) : 0,
        .options = a->hooks->options,
        .concurrency = a->hooks->concurrency,
        .bootstrap = a->bootstrap != NULL ? a->bootstrap->pb : NULL,
    };
    res->status = 200;
    res->content_type = JSON;
    lg_admin_render_server_info(&info, &res->body);
}

static void h_hot_restart_version(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    reply(res, 200, TEXT, "disabled");
}

static void start_stats(const lg_admin_query_t *q, lg_admin_response_t *res, int prometheus)
{
    res->stream = lg_admin_stats_request_new(q, prometheus, &res->status, &res->body);
    res->content_type = res->stream != NULL ? lg_admin_stats_content_type(res->stream) : TEXT;
}

static void h_stats(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    start_stats(q, res, 0);
}

static void h_stats_prometheus(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    start_stats(q, res, 1);
}

static int format_json(const lg_admin_query_t *q)
{
    const char *f = lg_admin_query_get(q, "format");
    return f != NULL && strcmp(f, "json") == 0;
}

static void h_clusters(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    lg_snapshot_t *snap = current_snapshot(a);
    if (snap != NULL)
        lg_snapshot_retain(snap);
    res->status = 200;
    res->content_type = format_json(q) ? JSON : TEXT;
    lg_admin_render_clusters(snap, format_json(q), &res->body);
    if (snap != NULL)
        lg_snapshot_release(snap);
}

static void h_listeners(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    lg_snapshot_t *snap = current_snapshot(a);
    if (snap != NULL)
        lg_snapshot_retain(snap);
    res->status = 200;
    res->content_type = format_json(q) ? JSON : TEXT;
    lg_admin_render_listeners(snap, format_json(q), &res->body);
    if (snap != NULL)
        lg_snapshot_release(snap);
}

static void h_config_dump(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    lg_snapshot_t *snap = current_snapshot(a);
    if (snap != NULL)
        lg_snapshot_retain(snap);
    lg_admin_config_dump_input_t in = {
        .bootstrap = a->bootstrap,
        .dynamic = a->hooks != NULL && a->hooks->dynamic != NULL ? a->hooks->dynamic(a->hooks->data) : NULL,
        .snapshot = snap,
        .loaded_at_s = a->started.tv_sec,
        .loaded_at_nanos = (int32_t)(a->started.tv_nsec / 1000000 * 1000000),
    };
    res->status = lg_admin_render_config_dump(&in, q, &res->body);
    res->content_type = res->status == 200 ? JSON : TEXT;
    if (snap != NULL)
        lg_snapshot_release(snap);
}

static void h_memory(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    res->status = 200;
    res->content_type = JSON;
    lg_admin_render_memory(&res->body);
}

static void h_runtime(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    res->status = 200;
    res->content_type = JSON;
    lg_admin_render_runtime(a->bootstrap != NULL ? a->bootstrap->pb : NULL, &res->body);
}

static void h_certs(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    reply(res, 200, JSON, "{\n \"certificates\": []\n}\n");
}

static void h_quitquitquit(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    lg_info(admin, "shutting down server (admin /quitquitquit)");
    reply(res, 200, TEXT, "OK\n");
    res->quit_after = 1;
}

static void h_healthcheck_fail(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    atomic_store(&health_check_failed, 1);
    reply(res, 200, TEXT, "OK\n");
}

static void h_healthcheck_ok(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    atomic_store(&health_check_failed, 0);
    reply(res, 200, TEXT, "OK\n");
}

static void h_drain_listeners(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    int graceful = lg_admin_query_get(q, "graceful") != NULL;
    int inbound_only = lg_admin_query_get(q, "inboundonly") != NULL;
    if (a->hooks->drain_listeners != NULL)
        a->hooks->drain_listeners(a->hooks->data, graceful, inbound_only);
    else
        lg_warn(admin, "/drain_listeners: the server offers no drain");
    reply(res, 200, TEXT, "OK\n");
}

/* --- /logging ------------------------------------------------------------------------------ */

static const char *const component_names[] = {
#define LG_X(name) #name,
    LG_LOG_COMPONENTS(LG_X)
#undef LG_X
};
static const char *const level_names[] = {"trace", "debug", "info", "warning", "error", "critical", "off"};

static void list_loggers(lg_strbuf_t *out)
{
    lg_strbuf_puts(out, "active loggers:\n");
    for (size_t i = 0; i < LG_LOGC__COUNT; ++i) {
        int l = lg_log_levels[i];
        lg_strbuf_printf(out, "  %s: %s\n", component_names[i], l >= 0 && l <= LG_LOG_OFF ? level_names[l] : "info");
    }
    lg_strbuf_puts(out, "\n");
}

static int component_index(const char *name, size_t len)
{
    for (size_t i = 0; i < LG_LOGC__COUNT; ++i)
        if (strlen(component_names[i]) == len && memcmp(component_names[i], name, len) == 0)
            return (int)i;
    return -1;
}

/* Envoy's LogsHandler::changeLogLevel: one parameter, all of it valid or nothing changes. */
static const char *change_log_levels(const lg_admin_query_t *q)
{
    int pending[LG_LOGC__COUNT];
    if (q->n != 1)
        return "invalid number of parameters";
    const char *key = q->params[0].name, *value = q->params[0].value;
    if (strcmp(key, "level") == 0) {
        int level = lg_log_level_parse(value);
        if (level < 0)
            return "unknown logger level";
        lg_info(admin, "change all log levels: level='%s'", level_names[level]);
        lg_log_set_level((lg_log_level_t)level);
        return NULL;
    }
    for (size_t i = 0; i < LG_LOGC__COUNT; ++i)
        pending[i] = -1;
    if (strcmp(key, "paths") == 0) {
        const char *p = value;
        while (*p != '\0') {
            const char *end = strchr(p, ',');
            size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
            const char *colon = memchr(p, ':', len);
            if (len > 0) {
                if (colon == NULL || colon == p || colon + 1 == p + len)
                    return "empty logger name or empty logger level";
                char level_s[16];
                size_t ll = (size_t)(p + len - colon - 1);
                if (ll >= sizeof(level_s))
                    return "unknown logger level";
                memcpy(level_s, colon + 1, ll);
                level_s[ll] = '\0';
                int level = lg_log_level_parse(level_s), c = component_index(p, (size_t)(colon - p));
                if (level < 0)
                    return "unknown logger level";
                if (c < 0)
                    return "unknown logger name";
                pending[c] = level;
            }
            p += len;
            if (*p == ',')
                ++p;
        }
    } else {
        int level = lg_log_level_parse(value), c = component_index(key, strlen(key));
        if (level < 0)
            return "unknown logger level";
        if (c < 0)
            return "unknown logger name";
        pending[c] = level;
    }
    for (size_t i = 0; i < LG_LOGC__COUNT; ++i)
        if (pending[i] >= 0) {
            lg_info(admin, "change log level: name='%s' level='%s'", component_names[i], level_names[pending[i]]);
            lg_log_levels[i] = pending[i];
        }
    return NULL;
}

static void h_logging(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    res->status = 200;
    res->content_type = TEXT;
    const char *error = q->n > 0 ? change_log_levels(q) : NULL;
    if (error != NULL) {
        res->status = 400;
        lg_strbuf_printf(&res->body, "error: %s\n\n", error);
        lg_strbuf_puts(&res->body, "usage: /logging?<name>=<level> (change single level)\n"
                                   "usage: /logging?paths=name1:level1,name2:level2,... (change multiple levels)\n"
                                   "usage: /logging?level=<level> (change all levels)\n"
                                   "levels: ");
        for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); ++i)
            lg_strbuf_printf(&res->body, "%s ", level_names[i]);
        lg_strbuf_puts(&res->body, "\n");
    }
    list_loggers(&res->body);
}

static void h_reopen_logs(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    res->reopen_logs = 1; /* the server owns the files */
    reply(res, 200, TEXT, "OK\n");
}

/* ------------------------------------------------------------------------------------------- */
/* The path table                                                                              */
/* ------------------------------------------------------------------------------------------- */

typedef struct st_param_t {
    const char *name, *help;
} param_t;

/* Envoy's admin paths, help texts and POST-only flags (admin.cc), sorted by path for /help. */
static const struct st_endpoint_t {
    const char *path;
    const char *help;
    int mutates; /* POST only */
    handler_fn fn;
    param_t params[5];
} endpoints[] = {
    {"/", "Admin home page", 0, h_help, {{0}}},
    {"/certs", "print certs on machine", 0, h_certs, {{0}}},
    {"/clusters", "upstream cluster status", 0, h_clusters, {{"format", "File format to use; One of (text, json)"}}},
    {"/config_dump",
     "dump current Envoy configs (experimental)",
     0,
     h_config_dump,
     {{"resource", "The resource to dump"},
      {"mask", "The mask to apply. When both resource and mask are specified, the mask is applied to every element in "
               "the desired repeated field so that only a subset of fields are returned. The mask is parsed as a "
               "ProtobufWkt::FieldMask"},
      {"name_regex", "Dump only the currently loaded configurations whose names match the specified regex. Can be "
                     "used with both resource and mask query parameters."},
      {"include_eds", "Dump currently loaded configuration including EDS. See the response definition for more "
                      "information"}}},
    {"/drain_listeners",
     "drain listeners",
     1,
     h_drain_listeners,
     {{"graceful", "When draining listeners, enter a graceful drain period prior to closing listeners. This behaviour "
                   "and duration is configurable via server options or CLI"},
      {"skip_exit", "When draining listeners, do not exit after the drain period. This must be used with graceful"},
      {"inboundonly", "Drains all inbound listeners. traffic_direction field in "
                      "envoy_v3_api_msg_config.listener.v3.Listener is used to determine whether a listener is "
                      "inbound or outbound."}}},
    {"/healthcheck/fail", "cause the server to fail health checks", 1, h_healthcheck_fail, {{0}}},
    {"/healthcheck/ok", "cause the server to pass health checks", 1, h_healthcheck_ok, {{0}}},
    {"/help", "print out list of admin commands", 0, h_help, {{0}}},
    {"/hot_restart_version", "print the hot restart compatibility version", 0, h_hot_restart_version, {{0}}},
    {"/listeners", "print listener info", 0, h_listeners, {{"format", "File format to use; One of (text, json)"}}},
    {"/logging",
     "query/change logging levels",
     1,
     h_logging,
     {{"paths", "Change multiple logging levels by setting to <logger_name1>:<desired_level1>,<logger_name2>:"
                "<desired_level2>."},
      {"level", "desired logging level, this will change all loggers's level; One of (, trace, debug, info, "
                "warning, error, critical, off)"}}},
    {"/memory", "print current allocation/heap usage", 0, h_memory, {{0}}},
    {"/quitquitquit", "exit the server", 1, h_quitquitquit, {{0}}},
    {"/ready", "print server state, return 200 if LIVE, otherwise return 503", 0, h_ready, {{0}}},
    {"/reopen_logs", "reopen access logs", 1, h_reopen_logs, {{0}}},
    {"/runtime", "print runtime values", 0, h_runtime, {{0}}},
    {"/server_info", "print server version/status information", 0, h_server_info, {{0}}},
    {"/stats",
     "print server stats",
     0,
     h_stats,
     {{"usedonly", "Only include stats that have been written by system since restart"},
      {"filter", "Regular expression (Google re2) for filtering stats"},
      {"format", "Format to use; One of (html, active-html, text, json)"},
      {"type", "Stat types to include.; One of (All, Counters, Histograms, Gauges, TextReadouts)"}}},
    {"/stats/prometheus",
     "print server stats in prometheus format",
     0,
     h_stats_prometheus,
     {{"usedonly", "Only include stats that have been written by system since restart"},
      {"text_readouts", "Render text_readouts as new gaugues with value 0 (increases Prometheus data size)"},
      {"filter", "Regular expression (Google re2) for filtering stats"}}},
};

static void help_text(lg_strbuf_t *out)
{
    lg_strbuf_puts(out, "admin commands are:\n");
    for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); ++i) {
        const struct st_endpoint_t *e = &endpoints[i];
        lg_strbuf_printf(out, "  %s%s: %s\n", e->path, e->mutates ? " (POST)" : "", e->help);
        for (size_t p = 0; p < 5 && e->params[p].name != NULL; ++p)
            lg_strbuf_printf(out, "      %s: %s\n", e->params[p].name, e->params[p].help);
    }
}

static void h_help(const lg_admin_context_t *a, const lg_admin_query_t *q, lg_admin_response_t *res)
{
    res->status = 200;
    res->content_type = TEXT;
    help_text(&res->body);
}

/* Envoy's AdminImpl::makeRequest: the path (without the query) must equal a handler's path. */
void lg_admin_dispatch(const lg_admin_context_t *a, const char *method, const char *target, size_t path_len,
                       lg_admin_response_t *res)
{
    const char *query = target + path_len;
    lg_admin_query_t q;
    lg_admin_query_parse(&q, *query == '?' ? query + 1 : query, strlen(*query == '?' ? query + 1 : query));
    for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); ++i) {
        const struct st_endpoint_t *e = &endpoints[i];
        if (strlen(e->path) != path_len || memcmp(e->path, target, path_len) != 0)
            continue;
        if (e->mutates && strcmp(method, "POST") != 0) {
            lg_err(admin, "admin path \"%s\" mutates state, method=%s rather than POST", e->path, method);
            res->status = 405;
            res->content_type = TEXT;
            lg_strbuf_printf(&res->body, "Method %s not allowed, POST required.", method);
        } else {
            e->fn(a, &q, res);
        }
        lg_admin_query_dispose(&q);
        return;
    }
    lg_admin_query_dispose(&q);
    res->status = 404;
    res->content_type = TEXT;
    lg_strbuf_puts(&res->body, "invalid path. ");
    help_text(&res->body);
}

