/*
 * The admin's renderers: pure functions from legate's state (stats registry, snapshot, bootstrap,
 * command line) to the bodies of Envoy's admin endpoints, in Envoy's formats. They do no I/O and
 * know nothing of HTTP beyond the status code they choose, so admin.c serves them and the unit
 * tests call them directly.
 *
 *   admin_stats.c        /stats (text, json), /stats/prometheus, Envoy's tag extraction
 *   admin_status.c       /clusters, /listeners, /server_info, /memory, /runtime, /certs
 *   admin_config_dump.c  /config_dump (Envoy's ConfigDump: bootstrap, clusters, endpoints,
 *                        listeners, routes; ?resource=, ?mask=, ?name_regex=, ?include_eds)
 *   admin_json.c         JSON text tools: protobuf-style pretty printing, FieldMask trimming
 *
 * Threads: the main thread (the stats registry is read with relaxed atomics, so any thread would
 * do for /stats; snapshots and the bootstrap are read only).
 */
#ifndef LG_ADMIN_RENDER_H
#define LG_ADMIN_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "admin.h"
#include "bootstrap.h"
#include "options.h"
#include "snapshot.h"
#include "strbuf.h"

/* ---------------------------------------------------------------------------------------------
 * Query strings
 * ------------------------------------------------------------------------------------------- */

typedef struct st_lg_admin_param_t {
    char *name;  /* percent-decoded; '+' stays '+' as in Envoy (regex filters use it) */
    char *value; /* percent-decoded; "" for "?usedonly" */
} lg_admin_param_t;

typedef struct st_lg_admin_query_t {
    lg_admin_param_t *params;
    size_t n;
} lg_admin_query_t;

/** Splits "a=1&b&c=%2F" (no leading '?') into decoded pairs, in order. Never fails. */
void lg_admin_query_parse(lg_admin_query_t *q, const char *query, size_t len);
/** The first value of `name`, or NULL when absent. */
const char *lg_admin_query_get(const lg_admin_query_t *q, const char *name);
void lg_admin_query_dispose(lg_admin_query_t *q);

/* ---------------------------------------------------------------------------------------------
 * Stats (admin_stats.c)
 * ------------------------------------------------------------------------------------------- */

#define LG_ADMIN_MAX_TAGS 8

/* One tag extracted from a stat name: `name` is Envoy's tag name ("envoy.cluster_name"), static;
 * the value is a slice of the stat name. */
typedef struct st_lg_admin_tag_t {
    const char *name;
    const char *value;
    size_t value_len;
} lg_admin_tag_t;

/**
 * Envoy's default tag extraction (well_known_names.cc): `cluster.app.upstream_rq_200` gives the
 * tag-extracted name `cluster.upstream_rq` with envoy.response_code=200 and
 * envoy.cluster_name=app. Tags come out in Envoy's order (response code first).
 *
 * @param extracted receives the tag-extracted name, NUL-terminated (truncated to `cap`).
 * @return the number of tags written to `tags` (at most LG_ADMIN_MAX_TAGS).
 */
size_t lg_admin_stats_extract_tags(const char *name, lg_admin_tag_t *tags, char *extracted, size_t cap);

typedef struct st_lg_admin_stats_request_t lg_admin_stats_request_t;

/**
 * Starts a /stats (prometheus = 0) or /stats/prometheus (1) response: parses ?filter= (RE2,
 * partial match on the full name), ?usedonly (value not zero: the registry has no "used" bit),
 * ?type=All|Counters|Gauges|Histograms|TextReadouts and ?format=text|json|prometheus, and picks
 * and orders the stats (the values are read later, as each chunk is written).
 *
 * @return the request, or NULL with *status (400) and `err` holding Envoy's message.
 */
lg_admin_stats_request_t *lg_admin_stats_request_new(const lg_admin_query_t *q, int prometheus, int *status,
                                                     lg_strbuf_t *err);
/** "text/plain; charset=UTF-8" or "application/json". Static. */
const char *lg_admin_stats_content_type(const lg_admin_stats_request_t *r);
/**
 * Appends the next part of the body to `out`: stops once about `budget` bytes were added.
 * @return 1 when more follows, 0 when the body is complete.
 */
int lg_admin_stats_request_next(lg_admin_stats_request_t *r, lg_strbuf_t *out, size_t budget);
void lg_admin_stats_request_free(lg_admin_stats_request_t *r);

/* ---------------------------------------------------------------------------------------------
 * Status pages (admin_status.c)
 * ------------------------------------------------------------------------------------------- */

/** /clusters: Envoy's "name::host:port::stat::value" text, or its admin.v3.Clusters JSON. */
void lg_admin_render_clusters(const lg_snapshot_t *snap, int json, lg_strbuf_t *out);
/** /listeners: "name::address" lines, or admin.v3.Listeners JSON. */
void lg_admin_render_listeners(const lg_snapshot_t *snap, int json, lg_strbuf_t *out);

typedef struct st_lg_admin_server_info_t {
    const char *version;        /* "legate/0.1.0" */
    lg_admin_state_t state;
    int64_t uptime_s;
    const lg_options_t *options; /* may be NULL */
    unsigned concurrency;
    const lg_bootstrap_pb_t *bootstrap; /* for node; may be NULL */
} lg_admin_server_info_t;

/** /server_info: admin.v3.ServerInfo JSON, every scalar printed as Envoy does. */
void lg_admin_render_server_info(const lg_admin_server_info_t *info, lg_strbuf_t *out);
/** Envoy's name of a state ("LIVE"). */
const char *lg_admin_state_name(lg_admin_state_t s);
/** /memory: admin.v3.Memory JSON from mallinfo2. */
void lg_admin_render_memory(lg_strbuf_t *out);
/** /runtime: {"entries": {...}, "layers": [...]} from layered_runtime's static layers. */
void lg_admin_render_runtime(const lg_bootstrap_pb_t *bootstrap, lg_strbuf_t *out);

/* ---------------------------------------------------------------------------------------------
 * /config_dump (admin_config_dump.c)
 * ------------------------------------------------------------------------------------------- */

typedef struct st_lg_admin_config_dump_input_t {
    const lg_bootstrap_t *bootstrap; /* static resources and the bootstrap itself */
    const struct st_lg_dynamic_config_t *dynamic; /* xDS resources; NULL without dynamic_resources */
    const lg_snapshot_t *snapshot;   /* live host sets for ?include_eds; may be NULL */
    int64_t loaded_at_s;             /* last_updated of static resources (wall clock) */
    int32_t loaded_at_nanos;
} lg_admin_config_dump_input_t;

/**
 * Renders /config_dump with the query's resource, mask, name_regex and include_eds.
 * @return the status: 200 with pretty JSON in `out`, else 400/404 with Envoy's text in `out`.
 */
int lg_admin_render_config_dump(const lg_admin_config_dump_input_t *in, const lg_admin_query_t *q,
                                lg_strbuf_t *out);

/* ---------------------------------------------------------------------------------------------
 * JSON text tools (admin_json.c)
 * ------------------------------------------------------------------------------------------- */

/**
 * Re-indents valid JSON the way protobuf's pretty printer (and so Envoy's admin) does: one space
 * per level, `"key": value`, empty objects and arrays as {} and []. Appends to `out`.
 */
void lg_admin_json_pretty(const char *json, size_t len, lg_strbuf_t *out);

/**
 * FieldMask trimming on JSON text: copies the object `obj` keeping only the fields named by
 * `paths` ("a", "a.b": a nested object is trimmed to b). "@type" is always kept, so a trimmed
 * google.protobuf.Any stays an Any. Returns 0, or -1 when `obj` is not a JSON object.
 */
int lg_admin_json_mask(const char *obj, size_t len, char *const *paths, size_t n_paths, lg_strbuf_t *out);

#endif
