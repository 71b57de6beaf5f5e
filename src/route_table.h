/*
 * Route tables: an Envoy RouteConfiguration compiled into plain C, and matching a request against
 * it. This is what the router filter consults for every request.
 *
 * Building (main thread) walks the protobuf-c message once, validates what Envoy validates, refuses
 * by name what legate does not implement ("<field> is not supported by legate"), and produces an
 * immutable table: lower-cased names, sorted domain indexes, compiled regexes (RE2), compiled header
 * formatters, per-filter route configs built through a caller's callback. Matching (any worker, at
 * once, lock-free) touches no protobuf-c and allocates nothing, except when a header matcher must
 * join a repeated header (then from the caller's pool, as Envoy joins them with ",").
 *
 * Selection follows Envoy exactly:
 *   virtual host by :authority, lower-cased: exact domain, then the longest `*suffix` wildcard, then
 *   the longest `prefix*` wildcard, then `*`; `ignore_port_in_host_matching` drops the port first;
 *   then the first route of that virtual host whose match (path specifier, headers, query
 *   parameters, gRPC, runtime fraction) accepts the request. Path specifiers look at the path
 *   without its query string and fragment.
 *
 * The router then asks the matched route for its cluster (lg_route_cluster_name, after
 * lg_route_pick_weighted_cluster), applies the request side (lg_route_finalize_request: header
 * mutations, host rewrite, path rewrite), and later the response side
 * (lg_route_apply_response_mutations). Redirect and direct-response routes answer locally.
 *
 * Also here, because routes are made of them and other filters reuse them: string matchers
 * (envoy.type.matcher.v3.StringMatcher), header matchers (HeaderMatcher), query-parameter matchers
 * and whole route matches (RouteMatch, e.g. for jwt_authn rules).
 *
 * Not for: choosing a host in the cluster (load balancers use the hash policies stored here),
 * retries and timeouts themselves (the router runs them from the parsed policies).
 */
#ifndef LG_ROUTE_TABLE_H
#define LG_ROUTE_TABLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "envoy/config/route/v3/route.pb-c.h"
#include "envoy/config/route/v3/route_components.pb-c.h"
#include "error.h"
#include "header_formatter.h"
#include "http_message.h"
#include "path.h"
#include "regex.h"
#include "srcmap.h"

typedef struct st_lg_route_table_t lg_route_table_t;
typedef struct st_lg_vhost_t lg_vhost_t;
typedef struct st_lg_route_t lg_route_t;

/* ---- matchers --------------------------------------------------------------------------- */

typedef enum en_lg_string_match_kind_t {
    LG_STRING_MATCH_EXACT,
    LG_STRING_MATCH_PREFIX,
    LG_STRING_MATCH_SUFFIX,
    LG_STRING_MATCH_CONTAINS,
    LG_STRING_MATCH_REGEX, /* full match */
} lg_string_match_kind_t;

typedef struct st_lg_string_matcher_t {
    lg_string_match_kind_t kind;
    int ignore_case;   /* ASCII; not with REGEX */
    h2o_iovec_t value; /* NUL-terminated; lower case when ignore_case */
    lg_regex_t *regex;
} lg_string_matcher_t;

/** A FractionalPercent's denominator as a number: 100, 10,000 or 1,000,000 (100 for an unknown
 * value). Pure. */
uint32_t lg_fractional_percent_denominator(Envoy__Type__V3__FractionalPercent__DenominatorType d);

/**
 * Compiles a StringMatcher. `path` names the message (restored on return); `map` may be NULL.
 * Returns 0, or -1 with err filled ("...safe_regex.regex: invalid regex: ..."). Main thread.
 */
int lg_string_matcher_init(lg_string_matcher_t *m, const Envoy__Type__Matcher__V3__StringMatcher *pb,
                           lg_path_t *path, const lg_srcmap_t *map, lg_error_t *err);
/** Matches s[0..len). Any thread. */
int lg_string_matcher_match(const lg_string_matcher_t *m, const char *s, size_t len);
void lg_string_matcher_dispose(lg_string_matcher_t *m);

typedef enum en_lg_header_match_kind_t {
    LG_HEADER_MATCH_PRESENT, /* present_match, or no specifier at all */
    LG_HEADER_MATCH_STRING,  /* string_match and the deprecated exact/prefix/suffix/contains/regex */
    LG_HEADER_MATCH_RANGE,   /* [start, end) over a base-10 integer value */
    LG_HEADER_MATCH_ANY,     /* the deprecated exact_match "": any value of a present header */
} lg_header_match_kind_t;

typedef struct st_lg_header_matcher_t {
    h2o_iovec_t name; /* lower case, NUL-terminated; ":path" etc. name the pseudo-headers */
    lg_header_match_kind_t kind;
    lg_string_matcher_t string;
    int64_t range_start, range_end;
    int present; /* PRESENT: match when the header's presence equals this */
    int invert, treat_missing_as_empty;
} lg_header_matcher_t;

/** Compiles a HeaderMatcher (see lg_string_matcher_init for the parameters). */
int lg_header_matcher_init(lg_header_matcher_t *m, const Envoy__Config__Route__V3__HeaderMatcher *pb,
                           lg_path_t *path, const lg_srcmap_t *map, lg_error_t *err);
/**
 * Matches a request's fields (":method", ":path", ":authority" and ":scheme" are the head's
 * members). Repeated fields are joined with "," into `pool`; with a NULL pool only the first value
 * is seen. Envoy's rules: a missing header never matches (inverted or not) unless
 * treat_missing_header_as_empty. Any thread.
 */
int lg_header_matcher_match_request(const lg_header_matcher_t *m, const lg_request_head_t *req,
                                    h2o_mem_pool_t *pool);
/** As above, for a response (":status" is the status code), e.g. retriable_headers. */
int lg_header_matcher_match_response(const lg_header_matcher_t *m, const lg_response_head_t *resp,
                                     h2o_mem_pool_t *pool);
void lg_header_matcher_dispose(lg_header_matcher_t *m);

typedef struct st_lg_query_matcher_t {
    h2o_iovec_t name; /* as written: query keys are compared raw, not percent-decoded (as Envoy) */
    int present_only; /* present_match (or no specifier): presence equals `present` */
    int present;
    lg_string_matcher_t string;
} lg_query_matcher_t;

int lg_query_matcher_init(lg_query_matcher_t *m, const Envoy__Config__Route__V3__QueryParameterMatcher *pb,
                          lg_path_t *path, const lg_srcmap_t *map, lg_error_t *err);
/** Matches against the query string of `path` (":path" with its query). Any thread. */
int lg_query_matcher_match(const lg_query_matcher_t *m, h2o_iovec_t path);
void lg_query_matcher_dispose(lg_query_matcher_t *m);
/** The first raw value of query parameter `name` in `path` ("" for a key without '='); 0 when
 * absent. The value points into `path`. Any thread. */
int lg_query_value(h2o_iovec_t path, h2o_iovec_t name, h2o_iovec_t *out);

typedef enum en_lg_path_match_kind_t {
    LG_PATH_MATCH_PREFIX,
    LG_PATH_MATCH_EXACT,
    LG_PATH_MATCH_REGEX,
    LG_PATH_MATCH_SEPARATED_PREFIX,
} lg_path_match_kind_t;

/* A compiled RouteMatch. */
typedef struct st_lg_route_criteria_t {
    lg_path_match_kind_t path_kind;
    h2o_iovec_t path; /* prefix / exact path / separated prefix, NUL-terminated */
    lg_regex_t *path_regex;
    int case_sensitive;
    int ignore_path_parameters; /* RouteConfiguration.ignore_path_parameters_in_path_matching */
    int grpc;                   /* content-type application/grpc or application/grpc+... */
    int has_runtime_fraction;
    uint32_t runtime_numerator, runtime_denominator; /* matches when random % den < num */
    lg_header_matcher_t *headers;
    size_t n_headers;
    lg_query_matcher_t *query_parameters;
    size_t n_query_parameters;
} lg_route_criteria_t;

/** Compiles a RouteMatch. Fields legate does not implement are refused by name. */
int lg_route_criteria_init(lg_route_criteria_t *c, const Envoy__Config__Route__V3__RouteMatch *pb,
                           int ignore_path_parameters, lg_path_t *path, const lg_srcmap_t *map,
                           lg_error_t *err);
/** 1 when the request matches. `random` feeds runtime_fraction; `pool` as for header matchers. */
int lg_route_criteria_match(const lg_route_criteria_t *c, const lg_request_head_t *req, uint64_t random,
                            h2o_mem_pool_t *pool);
void lg_route_criteria_dispose(lg_route_criteria_t *c);

/* ---- route actions ---------------------------------------------------------------------- */

/* Envoy's retry_on names: one X-macro makes the bits, the names and the parser. */
#define LG_RETRY_ON(X)                                                                             \
    X(5XX, "5xx")                                                                                  \
    X(GATEWAY_ERROR, "gateway-error")                                                              \
    X(RESET, "reset")                                                                              \
    X(RESET_BEFORE_REQUEST, "reset-before-request")                                                \
    X(CONNECT_FAILURE, "connect-failure")                                                          \
    X(ENVOY_RATELIMITED, "envoy-ratelimited")                                                      \
    X(RETRIABLE_4XX, "retriable-4xx")                                                              \
    X(REFUSED_STREAM, "refused-stream")                                                            \
    X(RETRIABLE_STATUS_CODES, "retriable-status-codes")                                            \
    X(RETRIABLE_HEADERS, "retriable-headers")                                                      \
    X(HTTP3_POST_CONNECT_FAILURE, "http3-post-connect-failure")                                    \
    X(GRPC_CANCELLED, "cancelled")                                                                 \
    X(GRPC_DEADLINE_EXCEEDED, "deadline-exceeded")                                                 \
    X(GRPC_INTERNAL, "internal")                                                                   \
    X(GRPC_RESOURCE_EXHAUSTED, "resource-exhausted")                                               \
    X(GRPC_UNAVAILABLE, "unavailable")

enum {
#define LG_X(name, s) LG_RETRY_ON_BIT_##name,
    LG_RETRY_ON(LG_X)
#undef LG_X
};
enum {
#define LG_X(name, s) LG_RETRY_ON_##name = 1u << LG_RETRY_ON_BIT_##name,
    LG_RETRY_ON(LG_X)
#undef LG_X
};

/**
 * Parses a comma-separated retry_on list (spaces around names are ignored) into *bits. Returns 0,
 * or -1 and *bad set to the first unknown name (bits then hold the known ones, which is what the
 * x-envoy-retry-on header wants: it ignores unknown names).
 */
int lg_retry_on_parse(const char *s, size_t len, uint32_t *bits, h2o_iovec_t *bad);

typedef struct st_lg_retry_policy_t {
    uint32_t retry_on;     /* LG_RETRY_ON_* */
    uint32_t num_retries;  /* default 1 */
    uint64_t per_try_timeout_ms;      /* 0: none */
    uint64_t per_try_idle_timeout_ms; /* 0: none */
    uint64_t base_interval_ms, max_interval_ms; /* default 25 ms and 10 x base */
    uint32_t *retriable_status_codes;
    size_t n_retriable_status_codes;
    lg_header_matcher_t *retriable_headers; /* against the response */
    size_t n_retriable_headers;
    lg_header_matcher_t *retriable_request_headers; /* the request must match one, if any given */
    size_t n_retriable_request_headers;
    int previous_hosts; /* retry_host_predicate envoy.retry_host_predicates.previous_hosts */
    int64_t host_selection_retry_max_attempts; /* default 1 */
} lg_retry_policy_t;

typedef enum en_lg_hash_policy_kind_t {
    LG_HASH_POLICY_HEADER,
    LG_HASH_POLICY_COOKIE,
    LG_HASH_POLICY_SOURCE_IP,
    LG_HASH_POLICY_QUERY_PARAMETER,
    LG_HASH_POLICY_NONE, /* connection_properties without source_ip: never hashes, as in Envoy */
} lg_hash_policy_kind_t;

typedef struct st_lg_hash_cookie_attribute_t {
    h2o_iovec_t name, value;
} lg_hash_cookie_attribute_t;

/* RouteAction.HashPolicy, kept parsed for the ring-hash and Maglev load balancers. */
typedef struct st_lg_hash_policy_t {
    lg_hash_policy_kind_t kind;
    int terminal;
    h2o_iovec_t name; /* header (lower case), cookie or query parameter name; NUL-terminated */
    lg_regex_t *regex; /* HEADER: regex_rewrite of the value before hashing, or NULL */
    h2o_iovec_t substitution;
    int64_t cookie_ttl_ms; /* COOKIE: -1 when no ttl (then no cookie is generated) */
    h2o_iovec_t cookie_path;
    lg_hash_cookie_attribute_t *cookie_attributes;
    size_t n_cookie_attributes;
} lg_hash_policy_t;

typedef struct st_lg_weighted_cluster_t lg_weighted_cluster_t;

/* typed_per_filter_config entries of one level, built by the caller's callback. */
typedef struct st_lg_per_filter_config_t {
    char *filter_name;
    void *config;  /* what the build callback returned (NULL for FilterConfig{disabled} alone) */
    int disabled;  /* FilterConfig.disabled: 1, or 0 (-1 when not a FilterConfig) */
} lg_per_filter_config_t;

typedef struct st_lg_per_filter_configs_t {
    lg_per_filter_config_t *entries;
    size_t size;
} lg_per_filter_configs_t;

struct st_lg_weighted_cluster_t {
    h2o_iovec_t name;           /* NUL-terminated; empty when cluster_header is used */
    h2o_iovec_t cluster_header; /* lower case; empty when name is used */
    uint32_t weight;
    lg_header_mutations_t request_mutations, response_mutations;
    h2o_iovec_t host_rewrite_literal; /* empty: none */
    lg_per_filter_configs_t per_filter;
};

typedef enum en_lg_route_action_t {
    LG_ROUTE_ACTION_ROUTE,           /* forward to a cluster */
    LG_ROUTE_ACTION_REDIRECT,        /* answer with a redirect (lg_route_redirect_location) */
    LG_ROUTE_ACTION_DIRECT_RESPONSE, /* answer with status and body */
} lg_route_action_t;

typedef enum en_lg_cluster_specifier_t {
    LG_CLUSTER_SPECIFIER_NAME,
    LG_CLUSTER_SPECIFIER_HEADER,
    LG_CLUSTER_SPECIFIER_WEIGHTED,
} lg_cluster_specifier_t;

typedef enum en_lg_host_rewrite_t {
    LG_HOST_REWRITE_NONE,
    LG_HOST_REWRITE_LITERAL,
    LG_HOST_REWRITE_AUTO,       /* the router sets the upstream host's hostname */
    LG_HOST_REWRITE_HEADER,     /* the value of a request header */
    LG_HOST_REWRITE_PATH_REGEX, /* the path (without query) through a regex substitution */
} lg_host_rewrite_t;

typedef struct st_lg_route_upgrade_t {
    h2o_iovec_t type; /* lower case: "websocket" */
    int enabled;
} lg_route_upgrade_t;

typedef struct st_lg_redirect_t {
    h2o_iovec_t scheme;   /* scheme_redirect, or "https" for https_redirect; empty: keep */
    h2o_iovec_t host;     /* empty: keep */
    h2o_iovec_t port;     /* ":8443"; empty: keep (see Envoy's port handling) */
    h2o_iovec_t path;     /* path_redirect; empty: none */
    int path_has_query;   /* path_redirect carries its own query: strip_query does not apply */
    h2o_iovec_t prefix_rewrite;
    lg_regex_t *regex;
    h2o_iovec_t regex_substitution;
    int response_code; /* 301 (default), 302, 303, 307, 308 */
    int strip_query;
    int ssl_redirect; /* the virtual host's require_tls redirect: https://<authority><path> */
} lg_redirect_t;

typedef enum en_lg_require_tls_t {
    LG_REQUIRE_TLS_NONE,
    LG_REQUIRE_TLS_EXTERNAL_ONLY,
    LG_REQUIRE_TLS_ALL,
} lg_require_tls_t;

struct st_lg_route_t {
    const lg_vhost_t *vhost;
    h2o_iovec_t name; /* NUL-terminated, may be empty */
    lg_route_criteria_t match;
    lg_route_action_t action;

    /* action == LG_ROUTE_ACTION_ROUTE */
    lg_cluster_specifier_t cluster_specifier;
    h2o_iovec_t cluster;        /* NAME: NUL-terminated */
    h2o_iovec_t cluster_header; /* HEADER: lower-case request header whose value names the cluster */
    lg_weighted_cluster_t *weighted_clusters; /* WEIGHTED */
    size_t n_weighted_clusters;
    uint64_t total_weight;
    h2o_iovec_t weighted_random_header; /* WeightedCluster.header_name: the random value's source */
    int cluster_not_found_code;         /* 503 (default), 404 or 500 */
    h2o_iovec_t prefix_rewrite;         /* empty: none */
    lg_regex_t *regex_rewrite;          /* NULL: none */
    h2o_iovec_t regex_rewrite_substitution;
    lg_host_rewrite_t host_rewrite;
    h2o_iovec_t host_rewrite_value; /* LITERAL: the host; HEADER: the header name (lower case) */
    lg_regex_t *host_rewrite_regex; /* PATH_REGEX */
    h2o_iovec_t host_rewrite_substitution;
    int append_x_forwarded_host;
    uint64_t timeout_ms;      /* default 15000; 0: disabled */
    int64_t idle_timeout_ms;  /* -1: not set (the connection manager's stream idle timeout) */
    int64_t max_stream_duration_ms, grpc_timeout_header_max_ms, grpc_timeout_header_offset_ms; /* -1: not set */
    int64_t max_grpc_timeout_ms, grpc_timeout_offset_ms; /* deprecated RouteAction fields; -1: not set */
    const lg_retry_policy_t *retry_policy; /* the route's, else the virtual host's; NULL: no retries */
    lg_hash_policy_t *hash_policies;
    size_t n_hash_policies;
    int priority_high; /* RoutingPriority HIGH: the cluster's high-priority circuit breakers */
    lg_route_upgrade_t *upgrades;
    size_t n_upgrades;
    void *rate_limits; /* built by the rate_limits callback, or NULL */
    int include_vh_rate_limits;
    void *cors; /* the deprecated RouteAction.cors, built by the cors callback, or NULL */
    int64_t per_request_buffer_limit; /* -1: not set */

    /* action == LG_ROUTE_ACTION_REDIRECT */
    lg_redirect_t redirect;

    /* action == LG_ROUTE_ACTION_DIRECT_RESPONSE */
    int direct_status;
    h2o_iovec_t direct_body; /* may be empty */

    /* every action */
    lg_header_mutations_t request_mutations, response_mutations;
    lg_per_filter_configs_t per_filter;
    lg_retry_policy_t *_own_retry_policy;
};

struct st_lg_vhost_t {
    const lg_route_table_t *table;
    h2o_iovec_t name; /* NUL-terminated */
    lg_route_t *routes;
    size_t n_routes;
    lg_require_tls_t require_tls;
    lg_route_t ssl_redirect; /* what require_tls answers with: 301 to https */
    lg_header_mutations_t request_mutations, response_mutations;
    lg_per_filter_configs_t per_filter;
    lg_retry_policy_t *retry_policy; /* NULL when not set */
    int include_request_attempt_count, include_attempt_count_in_response, include_is_timeout_retry_header;
    int64_t per_request_buffer_limit; /* -1: not set */
    void *rate_limits;
    void *cors; /* the deprecated VirtualHost.cors, built by the cors callback, or NULL */
};

typedef struct st_lg_route_domain_t lg_route_domain_t; /* private to route_table.c */

struct st_lg_route_table_t {
    h2o_iovec_t name; /* RouteConfiguration.name */
    lg_vhost_t *vhosts;
    size_t n_vhosts;
    lg_header_mutations_t request_mutations, response_mutations;
    lg_per_filter_configs_t per_filter;
    h2o_iovec_t *internal_only_headers; /* lower case: removed from external requests (HCM) */
    size_t n_internal_only_headers;
    int most_specific_header_mutations_wins;
    int ignore_port_in_host_matching;
    int validate_clusters; /* -1: not set (Envoy: true for inline configs, false over RDS) */
    uint32_t max_direct_response_body_size;

    /* domain index: exact domains sorted; wildcards sorted by length (longest first) */
    lg_route_domain_t *_exact, *_suffixes, *_prefixes;
    size_t _n_exact, _n_suffixes, _n_prefixes;
    const lg_vhost_t *_default_vhost;
    struct st_lg_route_build_opts_t *_opts;
    atomic_uint _refcnt;
};

/* ---- building --------------------------------------------------------------------------- */

/**
 * Builds a per-route filter config from a typed_per_filter_config entry (route, virtual host,
 * weighted cluster or route configuration level). `any` is the entry's value, or the inner
 * `config` when the value is an envoy.config.route.v3.FilterConfig. Return the config, or NULL with
 * err filled to refuse the table; NULL with err->msg left empty stores "no config". Main thread.
 */
typedef void *(*lg_route_per_filter_build_cb)(void *ctx, const char *filter_name, const Google__Protobuf__Any *any,
                                              lg_error_t *err);
/** Frees what the build callback returned (never called with NULL). Main thread. */
typedef void (*lg_route_per_filter_destroy_cb)(void *ctx, const char *filter_name, void *config);
/**
 * Builds whatever the rate-limit filter wants from a route's or virtual host's `rate_limits`
 * (n >= 1); `path` names the list. NULL with err filled refuses the table. Without this callback,
 * `rate_limits` is refused as not supported.
 */
typedef void *(*lg_route_rate_limits_build_cb)(void *ctx, Envoy__Config__Route__V3__RateLimit *const *limits,
                                               size_t n, const lg_path_t *path, lg_error_t *err);
typedef void (*lg_route_rate_limits_destroy_cb)(void *ctx, void *limits);
/**
 * Builds what the CORS filter wants from the deprecated `cors` field of a route action or virtual
 * host. NULL with err filled refuses the table (NULL with err->msg empty stores nothing). Without
 * this callback, `cors` is refused as not supported.
 */
typedef void *(*lg_route_cors_build_cb)(void *ctx, const Envoy__Config__Route__V3__CorsPolicy *pb, lg_error_t *err);
typedef void (*lg_route_cors_destroy_cb)(void *ctx, void *cors);

typedef struct st_lg_route_build_opts_t {
    lg_route_per_filter_build_cb per_filter_build; /* NULL: typed_per_filter_config is refused */
    lg_route_per_filter_destroy_cb per_filter_destroy;
    lg_route_rate_limits_build_cb rate_limits_build;
    lg_route_rate_limits_destroy_cb rate_limits_destroy;
    lg_route_cors_build_cb cors_build;
    lg_route_cors_destroy_cb cors_destroy;
    void *ctx; /* given to the callbacks; must outlive the table (destroy callbacks run at free) */
    const lg_srcmap_t *srcmap; /* when the config came from a document: errors name the line */
} lg_route_build_opts_t;

/**
 * Builds a table from `rc`. `opts` may be NULL (no callbacks); it is copied. `path` is where `rc`
 * sits in the caller's config (may be empty); errors are "<path>.virtual_hosts[0].routes[2].match
 * .safe_regex.regex: invalid regex: missing ): (abc". The path is restored before returning.
 * Returns the table with one reference, or NULL with err filled. Main thread; `rc` is only read
 * and may be freed afterwards.
 */
lg_route_table_t *lg_route_table_build(const Envoy__Config__Route__V3__RouteConfiguration *rc,
                                       const lg_route_build_opts_t *opts, lg_path_t *path, lg_error_t *err);

/** Takes a reference. Any thread. */
void lg_route_table_retain(lg_route_table_t *t);
/** Drops a reference; the last frees the table (and runs the destroy callbacks). Any thread, but
 * the destroy callbacks then run on it. NULL is ignored. */
void lg_route_table_release(lg_route_table_t *t);

/* ---- matching (worker threads) ---------------------------------------------------------- */

enum {
    LG_ROUTE_STRIP_ANY_HOST_PORT = 0x1,      /* HCM strip_any_host_port */
    LG_ROUTE_STRIP_MATCHING_HOST_PORT = 0x2, /* HCM strip_matching_host_port (listener_port) */
};

typedef struct st_lg_route_input_t {
    const lg_request_head_t *req;
    h2o_mem_pool_t *pool; /* joins repeated headers for header matchers; may be NULL */
    uint64_t random;      /* runtime_fraction and weighted clusters, as Envoy's random_value */
    unsigned flags;       /* LG_ROUTE_STRIP_* for virtual host selection */
    uint16_t listener_port;
} lg_route_input_t;

/**
 * Where the port starts in an authority ("host:80" -> 4, "[::1]:80" -> 5), or SIZE_MAX when there
 * is none (Envoy's HeaderUtility::getPortStart).
 */
size_t lg_host_port_start(h2o_iovec_t host);
/**
 * Envoy's HCM port stripping: drops the port from *authority when `any`, or when it equals
 * `listener_port`; CONNECT requests keep theirs. Returns 1 when it stripped. The connection manager
 * applies this to the request itself (the upstream then sees the stripped Host, as with Envoy).
 */
int lg_host_strip_port(h2o_iovec_t *authority, h2o_iovec_t method, int any, uint16_t listener_port);

/**
 * The virtual host for an authority (Envoy's findVirtualHost), or NULL. Authorities longer than 256
 * bytes are lower-cased into `pool`; with a NULL pool they get the default virtual host.
 */
const lg_vhost_t *lg_route_table_find_vhost(const lg_route_table_t *t, h2o_iovec_t authority, h2o_mem_pool_t *pool);

/**
 * Matches a request: the virtual host (also stored to *vhost when vhost is not NULL, even when no
 * route matches), then its first matching route. A virtual host with require_tls answers a
 * plain-text request (by x-forwarded-proto, else :scheme) with its ssl_redirect route. Returns NULL
 * when nothing matches (Envoy's 404 NR).
 */
const lg_route_t *lg_route_table_match(const lg_route_table_t *t, const lg_route_input_t *in,
                                       const lg_vhost_t **vhost);

/**
 * WEIGHTED routes: the cluster for `random` (or for the value of the route's
 * weighted_random_header when the request carries a number there), as Envoy picks: random %
 * total_weight falls in one cluster's [start, start + weight). NULL for other routes.
 */
const lg_weighted_cluster_t *lg_route_pick_weighted_cluster(const lg_route_t *r, const lg_request_head_t *req,
                                                            uint64_t random);

/**
 * The cluster to forward to: the route's cluster, the value of its cluster_header, or the weighted
 * cluster's name (or its cluster_header's value). Empty when a header names none: the router then
 * answers cluster_not_found_code. Points into the config or the request.
 */
h2o_iovec_t lg_route_cluster_name(const lg_route_t *r, const lg_weighted_cluster_t *wc,
                                  const lg_request_head_t *req);

/**
 * The request side of forwarding, in Envoy's order: header mutations (weighted cluster, then
 * route, virtual host, route configuration; reversed by most_specific_header_mutations_wins),
 * the weighted cluster's host_rewrite_literal, the route's host rewrite (literal, header, path
 * regex; auto is the router's), then the path rewrite. With keep_original_path, a rewritten path
 * leaves the old one in x-envoy-original-path. New strings come from `pool`. Worker thread.
 */
void lg_route_finalize_request(const lg_route_t *r, const lg_weighted_cluster_t *wc, lg_request_head_t *req,
                               const lg_format_context_t *ctx, h2o_mem_pool_t *pool, int keep_original_path);

/** Only the request header mutations of lg_route_finalize_request. */
void lg_route_apply_request_mutations(const lg_route_t *r, const lg_weighted_cluster_t *wc,
                                      lg_request_head_t *req, const lg_format_context_t *ctx,
                                      h2o_mem_pool_t *pool);

/** The response header mutations, in the same order as the request's. Worker thread. */
void lg_route_apply_response_mutations(const lg_route_t *r, const lg_weighted_cluster_t *wc,
                                       lg_response_head_t *resp, const lg_format_context_t *ctx,
                                       h2o_mem_pool_t *pool);

/**
 * The path after the route's prefix_rewrite (the matched prefix, or the whole path for exact and
 * regex matches, is replaced) or regex_rewrite (on the path without query; the query is kept).
 * {NULL, 0} when the route rewrites nothing or the rewrite gives an empty path (Envoy then keeps
 * the path). NUL-terminated, from `pool`.
 */
h2o_iovec_t lg_route_rewritten_path(const lg_route_t *r, const lg_request_head_t *req, h2o_mem_pool_t *pool);

/** Applies lg_route_rewritten_path to req->path. Returns 1 when the path changed. */
int lg_route_rewrite_path(const lg_route_t *r, lg_request_head_t *req, h2o_mem_pool_t *pool, int keep_original_path);

/**
 * The host the route rewrites :authority to (LITERAL, HEADER when the request has the header,
 * PATH_REGEX), else {NULL, 0}. AUTO is left to the router, which knows the upstream host.
 */
h2o_iovec_t lg_route_rewritten_host(const lg_route_t *r, const lg_request_head_t *req, h2o_mem_pool_t *pool);

/**
 * Sets :authority to `host` (as Envoy's updateAuthority): with append_x_forwarded_host the old
 * authority is appended to x-forwarded-host first. Use it for auto_host_rewrite too.
 */
void lg_route_set_authority(const lg_route_t *r, lg_request_head_t *req, h2o_iovec_t host, h2o_mem_pool_t *pool);

/** The Location of a redirect route (Envoy's newUri). NUL-terminated, from `pool`. */
h2o_iovec_t lg_route_redirect_location(const lg_route_t *r, const lg_request_head_t *req, h2o_mem_pool_t *pool);

/**
 * The most specific typed_per_filter_config for `filter_name`: the weighted cluster's (wc may be
 * NULL), the route's, the virtual host's, the route configuration's. NULL when none. Any thread.
 */
const void *lg_route_per_filter_config(const lg_route_t *r, const lg_weighted_cluster_t *wc, const char *filter_name);

/**
 * Every typed_per_filter_config for `filter_name`, most specific first (the weighted cluster's
 * when wc is not NULL, the route's, the virtual host's, the route configuration's), into out[4].
 * Returns how many. For filters that merge levels, as Envoy's getAllPerFilterConfig. Any thread.
 */
size_t lg_route_per_filter_configs(const lg_route_t *r, const lg_weighted_cluster_t *wc, const char *filter_name,
                                   const void *out[4]);

/** FilterConfig.disabled for the filter, most specific level first: 1, 0, or -1 when no level says. */
int lg_route_filter_disabled(const lg_route_t *r, const char *filter_name);

#endif
