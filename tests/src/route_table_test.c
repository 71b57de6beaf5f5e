/*
 * Unit tests of route tables (src/route_table.c). Each case writes a RouteConfiguration in YAML
 * (through the same converter as bootstrap and xDS), builds a table and runs requests through it:
 * virtual host selection (exact, suffix and prefix wildcards, default, case, ports), every route
 * matcher, first-match order, weighted cluster picks over a range of random values, cluster
 * headers, path/host rewrites, redirects, direct responses, header mutation order across levels,
 * per-filter configs, parsed policies, and build errors with their field paths.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <h2o/string_.h>

#include "google/protobuf/wrappers.pb-c.h"
#include "lg_test.h"
#include "pb_yaml.h"
#include "route_table.h"

static lg_error_t err;
static h2o_mem_pool_t pool;
static int built_configs, destroyed_configs;

/* Per-filter configs in these tests are google.protobuf.StringValue; the config is its string. */
static void *build_cb(void *ctx, const char *filter_name, const Google__Protobuf__Any *any, lg_error_t *e)
{
    Google__Protobuf__StringValue *sv = google__protobuf__string_value__unpack(NULL, any->value.len, any->value.data);
    if (sv == NULL || strcmp(any->type_url, "type.googleapis.com/google.protobuf.StringValue") != 0) {
        if (sv != NULL)
            google__protobuf__string_value__free_unpacked(sv, NULL);
        lg_error_set(e, "filter %s does not take %s", filter_name, any->type_url);
        return NULL;
    }
    if (strcmp(sv->value, "fail") == 0) {
        google__protobuf__string_value__free_unpacked(sv, NULL);
        lg_error_set(e, "bad config for %s", filter_name);
        return NULL;
    }
    char *s = strdup(sv->value);
    google__protobuf__string_value__free_unpacked(sv, NULL);
    ++built_configs;
    return s;
}

static void destroy_cb(void *ctx, const char *filter_name, void *config)
{
    ++destroyed_configs;
    free(config);
}

static void *rate_limits_cb(void *ctx, Envoy__Config__Route__V3__RateLimit *const *limits, size_t n,
                            const lg_path_t *path, lg_error_t *e)
{
    size_t cap = sizeof(path->buf) + 32;
    char *s = malloc(cap);
    snprintf(s, cap, "%zu limits at %s", n, path->buf);
    return s;
}

static void rate_limits_destroy(void *ctx, void *limits)
{
    free(limits);
}

static const lg_route_build_opts_t opts = {.per_filter_build = build_cb,
                                           .per_filter_destroy = destroy_cb,
                                           .rate_limits_build = rate_limits_cb,
                                           .rate_limits_destroy = rate_limits_destroy};

/* Builds a table from YAML, with `prefix` as the caller's path; NULL on error (err says why). */
static lg_route_table_t *build_at(const char *yaml, const char *prefix)
{
    Envoy__Config__Route__V3__RouteConfiguration *rc =
        (Envoy__Config__Route__V3__RouteConfiguration *)lg_pb_new(&envoy__config__route__v3__route_configuration__descriptor);
    err.msg[0] = '\0';
    lg_route_table_t *t = NULL;
    if (lg_pb_from_yaml(&rc->base, yaml, strlen(yaml), "t.yaml", NULL, &err) != 0) {
        fprintf(stderr, "yaml: %s\n", err.msg);
    } else {
        lg_path_t path;
        lg_path_init(&path);
        if (prefix != NULL)
            lg_path_push_field(&path, prefix);
        t = lg_route_table_build(rc, &opts, &path, &err);
        LG_EXPECT_STR(path.buf, prefix != NULL ? prefix : "");
    }
    protobuf_c_message_free_unpacked(&rc->base, NULL);
    return t;
}

static lg_route_table_t *build(const char *yaml)
{
    return build_at(yaml, NULL);
}

static void expect_error(const char *yaml, const char *want)
{
    lg_route_table_t *t = build(yaml);
    LG_EXPECT(t == NULL);
    LG_EXPECT_CONTAINS(err.msg, want);
    if (t == NULL && strstr(err.msg, want) == NULL)
        fprintf(stderr, "  (for %s)\n", yaml);
    lg_route_table_release(t);
}

static lg_request_head_t mkreq(const char *authority, const char *path)
{
    lg_request_head_t r;
    memset(&r, 0, sizeof(r));
    r.method = LG_LIT("GET");
    r.scheme = LG_LIT("http");
    r.authority = authority != NULL ? h2o_iovec_init(authority, strlen(authority)) : h2o_iovec_init(NULL, 0);
    r.path = h2o_iovec_init(path, strlen(path));
    r.version = LG_HTTP_11;
    r.content_length = -1;
    return r;
}

static void add(lg_request_head_t *r, const char *name, const char *value)
{
    lg_headers_add(&pool, &r->headers, h2o_iovec_init(name, strlen(name)), h2o_iovec_init(value, strlen(value)));
}

static const lg_route_t *match_r(const lg_route_table_t *t, const lg_request_head_t *req, uint64_t random)
{
    lg_route_input_t in = {req, &pool, random, 0, 0};
    return lg_route_table_match(t, &in, NULL);
}

/* The name of the route a request matches, or "-" for none. */
static const char *route_for(const lg_route_table_t *t, const lg_request_head_t *req)
{
    const lg_route_t *r = match_r(t, req, 0);
    return r != NULL ? r->name.base : "-";
}

static const char *route_at(const lg_route_table_t *t, const char *authority, const char *path)
{
    lg_request_head_t req = mkreq(authority, path);
    return route_for(t, &req);
}

static const char *vhost_for(const lg_route_table_t *t, const char *authority, unsigned flags, uint16_t port)
{
    lg_request_head_t req = mkreq(authority, "/");
    lg_route_input_t in = {&req, &pool, 0, flags, port};
    const lg_vhost_t *vh = NULL;
    lg_route_table_match(t, &in, &vh);
    return vh != NULL ? vh->name.base : "-";
}

static const char *cstr(h2o_iovec_t v)
{
    if (v.base == NULL)
        return "(null)";
    char *s = h2o_mem_alloc_pool(&pool, v.len + 1);
    memcpy(s, v.base, v.len);
    s[v.len] = '\0';
    return s;
}

/* ---- virtual hosts ---------------------------------------------------------------------------- */

static const char vhosts_yaml[] = "name: rc\n"
                                  "virtual_hosts:\n"
                                  "- {name: exact, domains: [example.com, 'Mixed.Case.org'], routes: [{match: {prefix: /}, route: {cluster: c}}]}\n"
                                  "- {name: suffix, domains: ['*.example.com']}\n"
                                  "- {name: longer-suffix, domains: ['*-bar.example.com']}\n"
                                  "- {name: prefix, domains: ['foo.*', 'api*']}\n"
                                  "- {name: longer-prefix, domains: ['foo.bar.*']}\n"
                                  "- {name: default, domains: ['*']}\n";

LG_TEST(test_vhost_selection)
{
    lg_route_table_t *t = build(vhosts_yaml);
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    LG_EXPECT_STR(vhost_for(t, "example.com", 0, 0), "exact");
    LG_EXPECT_STR(vhost_for(t, "EXAMPLE.COM", 0, 0), "exact");
    LG_EXPECT_STR(vhost_for(t, "mixed.case.ORG", 0, 0), "exact");
    LG_EXPECT_STR(vhost_for(t, "x.example.com", 0, 0), "suffix");
    LG_EXPECT_STR(vhost_for(t, "foo-bar.example.com", 0, 0), "longer-suffix");
    LG_EXPECT_STR(vhost_for(t, "foo.example.com", 0, 0), "suffix"); /* suffix wildcards before prefix ones */
    LG_EXPECT_STR(vhost_for(t, ".example.com", 0, 0), "default");   /* "*.example.com" needs something before the dot */
    LG_EXPECT_STR(vhost_for(t, "foo.org", 0, 0), "prefix");
    LG_EXPECT_STR(vhost_for(t, "foo.bar.baz", 0, 0), "longer-prefix");
    LG_EXPECT_STR(vhost_for(t, "API-v2", 0, 0), "prefix");
    LG_EXPECT_STR(vhost_for(t, "other", 0, 0), "default");
    LG_EXPECT_STR(vhost_for(t, "", 0, 0), "default");
    lg_route_table_release(t);
}

LG_TEST(test_vhost_ports)
{
    lg_route_table_t *t = build(vhosts_yaml);
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    /* Envoy keeps the port unless told otherwise: no exact match with it. */
    LG_EXPECT_STR(vhost_for(t, "example.com:8080", 0, 0), "default");
    LG_EXPECT_STR(vhost_for(t, "example.com:8080", LG_ROUTE_STRIP_ANY_HOST_PORT, 0), "exact");
    LG_EXPECT_STR(vhost_for(t, "example.com:8080", LG_ROUTE_STRIP_MATCHING_HOST_PORT, 8080), "exact");
    LG_EXPECT_STR(vhost_for(t, "example.com:8080", LG_ROUTE_STRIP_MATCHING_HOST_PORT, 9090), "default");
    LG_EXPECT_STR(vhost_for(t, "x.example.com:1", LG_ROUTE_STRIP_ANY_HOST_PORT, 0), "suffix");
    lg_route_table_release(t);

    t = build("ignore_port_in_host_matching: true\n"
              "virtual_hosts:\n"
              "- {name: v4, domains: [example.com]}\n"
              "- {name: v6, domains: ['[::1]']}\n"
              "- {name: v6port, domains: ['[::1]:80']}\n");
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    LG_EXPECT_STR(vhost_for(t, "example.com:443", 0, 0), "v4");
    LG_EXPECT_STR(vhost_for(t, "[::1]:8080", 0, 0), "v6");
    LG_EXPECT_STR(vhost_for(t, "[::1]", 0, 0), "v6");
    LG_EXPECT_STR(vhost_for(t, "nothing", 0, 0), "-"); /* no default virtual host */
    lg_request_head_t req = mkreq(NULL, "/");
    const lg_vhost_t *vh = (const lg_vhost_t *)1;
    lg_route_input_t in = {&req, &pool, 0, 0, 0};
    LG_EXPECT(lg_route_table_match(t, &in, &vh) == NULL);
    LG_EXPECT(vh == NULL);
    lg_route_table_release(t);

    LG_EXPECT_INT(lg_host_port_start(LG_LIT("a:1")), 1);
    LG_EXPECT(lg_host_port_start(LG_LIT("a")) == SIZE_MAX);
    LG_EXPECT_INT(lg_host_port_start(LG_LIT("[::1]:80")), 5);
    LG_EXPECT(lg_host_port_start(LG_LIT("[::1]")) == SIZE_MAX);
    h2o_iovec_t a = LG_LIT("h:80");
    LG_EXPECT_INT(lg_host_strip_port(&a, LG_LIT("CONNECT"), 1, 0), 0);
    LG_EXPECT_INT(lg_host_strip_port(&a, LG_LIT("GET"), 0, 81), 0);
    LG_EXPECT_INT(lg_host_strip_port(&a, LG_LIT("GET"), 0, 80), 1);
    LG_EXPECT_INT((int)a.len, 1);
    a = LG_LIT("h:x");
    LG_EXPECT_INT(lg_host_strip_port(&a, LG_LIT("GET"), 1, 0), 0);
}

LG_TEST(test_vhost_build_errors)
{
    expect_error("name: rc\nvirtual_hosts:\n"
                 "- {name: a, domains: [example.com, b.com]}\n"
                 "- {name: b, domains: [c.com, Example.COM]}\n",
                 "virtual_hosts[1].domains[1]: Only unique values for domains are permitted. Duplicate entry of "
                 "domain Example.COM in route rc");
    expect_error("name: rc\nvirtual_hosts:\n"
                 "- {name: a, domains: ['*.x.com']}\n- {name: b, domains: ['*.x.com']}\n",
                 "virtual_hosts[1].domains[0]: Only unique values for domains are permitted");
    expect_error("name: rc\nvirtual_hosts:\n- {name: a, domains: ['*']}\n- {name: b, domains: ['*']}\n",
                 "virtual_hosts[1].domains[0]: Only a single wildcard domain is permitted in route rc");
    expect_error("virtual_hosts:\n- {name: a}\n", "virtual_hosts[0].domains: value must contain at least 1 item(s)");
    expect_error("virtual_hosts:\n- {domains: [a]}\n", "virtual_hosts[0].name: value length must be at least 1");
    /* A wildcard and an exact domain of the same text do not collide. */
    lg_route_table_t *t = build("virtual_hosts:\n- {name: a, domains: ['x*']}\n- {name: b, domains: ['*x']}\n"
                                "- {name: c, domains: [x]}\n");
    LG_EXPECT(t != NULL);
    lg_route_table_release(t);
}

/* ---- route matching ----------------------------------------------------------------------------- */

LG_TEST(test_path_matchers)
{
    lg_route_table_t *t = build("virtual_hosts:\n"
                                "- name: v\n"
                                "  domains: ['*']\n"
                                "  routes:\n"
                                "  - {name: exact, match: {path: /exact}, route: {cluster: c}}\n"
                                "  - {name: regex, match: {safe_regex: {regex: '/re/[0-9]+'}}, route: {cluster: c}}\n"
                                "  - {name: sep, match: {path_separated_prefix: /sep}, route: {cluster: c}}\n"
                                "  - {name: ci, match: {prefix: /CI/, case_sensitive: false}, route: {cluster: c}}\n"
                                "  - {name: ci-exact, match: {path: /Exact2, case_sensitive: false}, route: {cluster: c}}\n"
                                "  - {name: api, match: {prefix: /api}, route: {cluster: c}}\n"
                                "  - {name: api-shadowed, match: {prefix: /api/v2}, route: {cluster: c}}\n"
                                "  - {name: catchall, match: {prefix: /}, route: {cluster: c}}\n");
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    LG_EXPECT_STR(route_at(t, "h", "/exact"), "exact");
    LG_EXPECT_STR(route_at(t, "h", "/exact?x=1"), "exact"); /* the query is not part of the path */
    LG_EXPECT_STR(route_at(t, "h", "/exact#frag"), "exact");
    LG_EXPECT_STR(route_at(t, "h", "/exact/"), "catchall");
    LG_EXPECT_STR(route_at(t, "h", "/EXACT"), "catchall");
    LG_EXPECT_STR(route_at(t, "h", "/re/123"), "regex");
    LG_EXPECT_STR(route_at(t, "h", "/re/123?q=/re/x"), "regex");
    LG_EXPECT_STR(route_at(t, "h", "/re/123/x"), "catchall"); /* full match only */
    LG_EXPECT_STR(route_at(t, "h", "/sep"), "sep");
    LG_EXPECT_STR(route_at(t, "h", "/sep/x"), "sep");
    LG_EXPECT_STR(route_at(t, "h", "/sep?x"), "sep");
    LG_EXPECT_STR(route_at(t, "h", "/separate"), "catchall");
    LG_EXPECT_STR(route_at(t, "h", "/ci/x"), "ci");
    LG_EXPECT_STR(route_at(t, "h", "/Ci/x"), "ci");
    LG_EXPECT_STR(route_at(t, "h", "/exact2"), "ci-exact");
    LG_EXPECT_STR(route_at(t, "h", "/api/v2/x"), "api"); /* first match wins */
    LG_EXPECT_STR(route_at(t, "h", "/apix"), "api");
    LG_EXPECT_STR(route_at(t, "h", "/"), "catchall");
    LG_EXPECT_STR(route_at(t, "h", ""), "-"); /* no path: no route (CONNECT-like) */
    lg_route_table_release(t);
}

LG_TEST(test_path_parameters)
{
    lg_route_table_t *t = build("ignore_path_parameters_in_path_matching: true\n"
                                "virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n"
                                "  - {name: p, match: {path: /a/b}, route: {cluster: c}}\n");
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    LG_EXPECT_STR(route_at(t, "h", "/a/b;jsessionid=1"), "p");
    LG_EXPECT_STR(route_at(t, "h", "/a/b;x?y=1"), "p");
    LG_EXPECT_STR(route_at(t, "h", "/a/bc"), "-");
    lg_route_table_release(t);
}

LG_TEST(test_header_matchers)
{
    lg_route_table_t *t = build(
        "virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n"
        "  - {name: exact, match: {prefix: /e, headers: [{name: X-A, string_match: {exact: one}}]}, route: {cluster: c}}\n"
        "  - {name: legacy-exact, match: {prefix: /le, headers: [{name: x-a, exact_match: one}]}, route: {cluster: c}}\n"
        "  - {name: any, match: {prefix: /any, headers: [{name: x-a, exact_match: ''}]}, route: {cluster: c}}\n"
        "  - {name: regex, match: {prefix: /r, headers: [{name: x-a, safe_regex_match: {regex: 'v[0-9]'}}]}, route: {cluster: c}}\n"
        "  - {name: prefix, match: {prefix: /p, headers: [{name: x-a, prefix_match: ab}]}, route: {cluster: c}}\n"
        "  - {name: suffix, match: {prefix: /s, headers: [{name: x-a, suffix_match: yz}]}, route: {cluster: c}}\n"
        "  - {name: contains, match: {prefix: /c, headers: [{name: x-a, contains_match: mid}]}, route: {cluster: c}}\n"
        "  - {name: icase, match: {prefix: /i, headers: [{name: x-a, string_match: {prefix: AB, ignore_case: true}}]}, route: {cluster: c}}\n"
        "  - {name: range, match: {prefix: /n, headers: [{name: x-n, range_match: {start: -10, end: 0}}]}, route: {cluster: c}}\n"
        "  - {name: present, match: {prefix: /pr, headers: [{name: x-a, present_match: true}]}, route: {cluster: c}}\n"
        "  - {name: absent, match: {prefix: /ab, headers: [{name: x-a, present_match: false}]}, route: {cluster: c}}\n"
        "  - {name: nospec, match: {prefix: /ns, headers: [{name: x-a}]}, route: {cluster: c}}\n"
        "  - {name: invert, match: {prefix: /iv, headers: [{name: x-a, string_match: {exact: one}, invert_match: true}]}, route: {cluster: c}}\n"
        "  - {name: missing-empty, match: {prefix: /me, headers: [{name: x-a, string_match: {safe_regex: {regex: '^$'}}, treat_missing_header_as_empty: true}]}, route: {cluster: c}}\n"
        "  - {name: method, match: {prefix: /m, headers: [{name: ':method', string_match: {exact: POST}}]}, route: {cluster: c}}\n"
        "  - {name: two, match: {prefix: /two, headers: [{name: x-a, string_match: {exact: one}}, {name: x-b, present_match: true}]}, route: {cluster: c}}\n");
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    struct {
        const char *path, *a, *b, *want;
    } cases[] = {
        {"/e", "one", NULL, "exact"},
        {"/e", "ONE", NULL, "-"},
        {"/e", NULL, NULL, "-"},
        {"/le", "one", NULL, "legacy-exact"},
        {"/any", "whatever", NULL, "any"},
        {"/any", NULL, NULL, "-"},
        {"/r", "v7", NULL, "regex"},
        {"/r", "v77", NULL, "-"},
        {"/p", "abc", NULL, "prefix"},
        {"/p", "xabc", NULL, "-"},
        {"/s", "xyz", NULL, "suffix"},
        {"/c", "a-mid-b", NULL, "contains"},
        {"/c", "a-mi-b", NULL, "-"},
        {"/i", "aBc", NULL, "icase"},
        {"/pr", "", NULL, "present"},
        {"/pr", NULL, NULL, "-"},
        {"/ab", NULL, NULL, "absent"},
        {"/ab", "x", NULL, "-"},
        {"/ns", "x", NULL, "nospec"},
        {"/ns", NULL, NULL, "-"},
        {"/iv", "two", NULL, "invert"},
        {"/iv", "one", NULL, "-"},
        {"/iv", NULL, NULL, "-"}, /* a missing header never matches, inverted or not */
        {"/me", NULL, NULL, "missing-empty"},
        {"/me", "x", NULL, "-"},
        {"/two", "one", "", "two"},
        {"/two", "one", NULL, "-"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        lg_request_head_t req = mkreq("h", cases[i].path);
        if (cases[i].a != NULL)
            add(&req, "x-a", cases[i].a);
        if (cases[i].b != NULL)
            add(&req, "x-b", cases[i].b);
        const char *got = route_for(t, &req);
        if (strcmp(got, cases[i].want) != 0)
            fprintf(stderr, "case %zu: %s x-a=%s\n", i, cases[i].path, cases[i].a ? cases[i].a : "(none)");
        LG_EXPECT_STR(got, cases[i].want);
    }
    const char *ranges[][2] = {{"-1", "range"}, {"-10", "range"}, {"0", "-"}, {"-11", "-"}, {"-5x", "-"},
                               {"", "-"},     {"+-1", "-"},     {"-99999999999999999999", "-"}};
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); ++i) {
        lg_request_head_t req = mkreq("h", "/n");
        add(&req, "x-n", ranges[i][0]);
        LG_EXPECT_STR(route_for(t, &req), ranges[i][1]);
    }
    lg_request_head_t req = mkreq("h", "/m");
    req.method = LG_LIT("POST");
    LG_EXPECT_STR(route_for(t, &req), "method");
    /* Repeated headers are matched joined with ",", as Envoy does. */
    req = mkreq("h", "/e");
    add(&req, "x-a", "one");
    add(&req, "x-a", "two");
    LG_EXPECT_STR(route_for(t, &req), "-");
    lg_route_table_release(t);

    t = build("virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n"
              "  - {name: joined, match: {prefix: /, headers: [{name: x-a, string_match: {exact: 'one,two'}}]}, route: {cluster: c}}\n");
    req = mkreq("h", "/");
    add(&req, "x-a", "one");
    add(&req, "x-a", "two");
    LG_EXPECT_STR(route_for(t, &req), "joined");
    lg_route_table_release(t);
}

LG_TEST(test_query_grpc_runtime)
{
    lg_route_table_t *t = build(
        "virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n"
        "  - {name: q-exact, match: {prefix: /q, query_parameters: [{name: debug, string_match: {exact: 'on'}}]}, route: {cluster: c}}\n"
        "  - {name: q-present, match: {prefix: /q, query_parameters: [{name: trace, present_match: true}]}, route: {cluster: c}}\n"
        "  - {name: q-noval, match: {prefix: /q, query_parameters: [{name: flag}]}, route: {cluster: c}}\n"
        "  - {name: grpc, match: {prefix: /svc.Foo/, grpc: {}}, route: {cluster: c}}\n"
        "  - {name: canary, match: {prefix: /canary, runtime_fraction: {default_value: {numerator: 25}}}, route: {cluster: c}}\n"
        "  - {name: million, match: {prefix: /m, runtime_fraction: {default_value: {numerator: 1, denominator: MILLION}}}, route: {cluster: c}}\n"
        "  - {name: zero, match: {prefix: /z, runtime_fraction: {}}, route: {cluster: c}}\n"
        "  - {name: rest, match: {prefix: /}, route: {cluster: c}}\n");
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    LG_EXPECT_STR(route_at(t, "h", "/q?debug=on"), "q-exact");
    LG_EXPECT_STR(route_at(t, "h", "/q?a=1&debug=on&b"), "q-exact");
    LG_EXPECT_STR(route_at(t, "h", "/q?debug=off&debug=on"), "rest"); /* the first value counts */
    LG_EXPECT_STR(route_at(t, "h", "/q?debug=on#frag"), "q-exact");
    LG_EXPECT_STR(route_at(t, "h", "/q?xdebug=on"), "rest");
    LG_EXPECT_STR(route_at(t, "h", "/q?trace"), "q-present");
    LG_EXPECT_STR(route_at(t, "h", "/q?trace=0"), "q-present");
    LG_EXPECT_STR(route_at(t, "h", "/q?flag="), "q-noval");
    LG_EXPECT_STR(route_at(t, "h", "/q"), "rest");

    lg_request_head_t req = mkreq("h", "/svc.Foo/Bar");
    LG_EXPECT_STR(route_for(t, &req), "rest");
    add(&req, "content-type", "application/grpc");
    LG_EXPECT_STR(route_for(t, &req), "grpc");
    req = mkreq("h", "/svc.Foo/Bar");
    add(&req, "content-type", "application/grpc+proto");
    LG_EXPECT_STR(route_for(t, &req), "grpc");
    req = mkreq("h", "/svc.Foo/Bar");
    add(&req, "content-type", "application/grpc-web");
    LG_EXPECT_STR(route_for(t, &req), "rest");

    /* 25% of random values: random % 100 < 25. */
    int hits = 0;
    for (uint64_t r = 0; r < 1000; ++r) {
        req = mkreq("h", "/canary");
        hits += strcmp(match_r(t, &req, r)->name.base, "canary") == 0;
    }
    LG_EXPECT_INT(hits, 250);
    req = mkreq("h", "/m");
    LG_EXPECT_STR(match_r(t, &req, 2000000)->name.base, "million");
    LG_EXPECT_STR(match_r(t, &req, 2000001)->name.base, "rest");
    req = mkreq("h", "/z"); /* a runtime_fraction without a default is 0% */
    LG_EXPECT_STR(match_r(t, &req, 0)->name.base, "rest");
    lg_route_table_release(t);
}

LG_TEST(test_require_tls)
{
    lg_route_table_t *t = build("virtual_hosts:\n"
                                "- {name: all, domains: [all.com, 'all.com:8080'], require_tls: ALL, routes: [{name: r, match: {prefix: /}, route: {cluster: c}}]}\n"
                                "- {name: ext, domains: [ext.com], require_tls: EXTERNAL_ONLY, routes: [{name: r, match: {prefix: /}, route: {cluster: c}}]}\n");
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    lg_request_head_t req = mkreq("all.com:8080", "/x?y");
    const lg_route_t *r = match_r(t, &req, 0);
    LG_EXPECT(r != NULL && r->action == LG_ROUTE_ACTION_REDIRECT && r->redirect.response_code == 301);
    if (r != NULL)
        LG_EXPECT_STR(cstr(lg_route_redirect_location(r, &req, &pool)), "https://all.com:8080/x?y");
    add(&req, "x-forwarded-proto", "https");
    LG_EXPECT_STR(route_for(t, &req), "r");
    req = mkreq("all.com", "/");
    req.scheme = LG_LIT("https");
    LG_EXPECT_STR(route_for(t, &req), "r");

    req = mkreq("ext.com", "/");
    r = match_r(t, &req, 0);
    LG_EXPECT(r != NULL && r->action == LG_ROUTE_ACTION_REDIRECT);
    add(&req, "x-envoy-internal", "true");
    LG_EXPECT_STR(route_for(t, &req), "r");
    lg_route_table_release(t);
}

/* ---- clusters ----------------------------------------------------------------------------------- */

LG_TEST(test_weighted_clusters)
{
    lg_route_table_t *t = build("virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n"
                                "  - match: {prefix: /w}\n"
                                "    route:\n"
                                "      weighted_clusters:\n"
                                "        clusters: [{name: a, weight: 10}, {name: b, weight: 30}, {name: c, weight: 60}]\n"
                                "  - match: {prefix: /h}\n"
                                "    route:\n"
                                "      weighted_clusters:\n"
                                "        header_name: x-random\n"
                                "        clusters: [{name: a, weight: 1}, {cluster_header: x-cluster, weight: 1}]\n"
                                "  - match: {prefix: /ch}\n"
                                "    route: {cluster_header: X-Target, cluster_not_found_response_code: NOT_FOUND}\n");
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    lg_request_head_t req = mkreq("h", "/w");
    const lg_route_t *r = match_r(t, &req, 0);
    LG_EXPECT(r != NULL && r->cluster_specifier == LG_CLUSTER_SPECIFIER_WEIGHTED);
    LG_EXPECT_INT(r->total_weight, 100);
    int counts[3] = {0, 0, 0};
    for (uint64_t x = 0; x < 1000; ++x) {
        const lg_weighted_cluster_t *wc = lg_route_pick_weighted_cluster(r, &req, x * 7919 + 13);
        h2o_iovec_t name = lg_route_cluster_name(r, wc, &req);
        counts[name.base[0] - 'a']++;
    }
    /* x * 7919 + 13 runs through every residue mod 100 ten times. */
    LG_EXPECT_INT(counts[0], 100);
    LG_EXPECT_INT(counts[1], 300);
    LG_EXPECT_INT(counts[2], 600);
    LG_EXPECT_STR(lg_route_pick_weighted_cluster(r, &req, 9)->name.base, "a");
    LG_EXPECT_STR(lg_route_pick_weighted_cluster(r, &req, 10)->name.base, "b");
    LG_EXPECT_STR(lg_route_pick_weighted_cluster(r, &req, 39)->name.base, "b");
    LG_EXPECT_STR(lg_route_pick_weighted_cluster(r, &req, 40)->name.base, "c");
    LG_EXPECT_STR(lg_route_pick_weighted_cluster(r, &req, UINT64_MAX)->name.base, "b"); /* 2^64-1 % 100 = 15 */

    req = mkreq("h", "/h");
    r = match_r(t, &req, 0);
    add(&req, "x-random", "1");
    add(&req, "x-cluster", "from-header");
    const lg_weighted_cluster_t *wc = lg_route_pick_weighted_cluster(r, &req, 0);
    LG_EXPECT_STR(cstr(lg_route_cluster_name(r, wc, &req)), "from-header");
    req.headers.entries[0].value = LG_LIT("4");
    wc = lg_route_pick_weighted_cluster(r, &req, 1);
    LG_EXPECT_STR(cstr(lg_route_cluster_name(r, wc, &req)), "a");
    req.headers.entries[0].value = LG_LIT("nonsense"); /* not a number: the random value is used */
    wc = lg_route_pick_weighted_cluster(r, &req, 1);
    LG_EXPECT_STR(cstr(lg_route_cluster_name(r, wc, &req)), "from-header");

    req = mkreq("h", "/ch");
    r = match_r(t, &req, 0);
    LG_EXPECT(lg_route_pick_weighted_cluster(r, &req, 0) == NULL);
    LG_EXPECT(lg_route_cluster_name(r, NULL, &req).len == 0);
    LG_EXPECT_INT(r->cluster_not_found_code, 404);
    add(&req, "x-target", "picked");
    LG_EXPECT_STR(cstr(lg_route_cluster_name(r, NULL, &req)), "picked");
    lg_route_table_release(t);

    expect_error("virtual_hosts:\n- {name: v, domains: ['*'], routes: [{match: {prefix: /}, route: "
                 "{weighted_clusters: {clusters: [{name: a, weight: 0}]}}}]}\n",
                 "virtual_hosts[0].routes[0].route.weighted_clusters: Sum of weights in the weighted_cluster must be greater than 0.");
    expect_error("virtual_hosts:\n- {name: v, domains: ['*'], routes: [{match: {prefix: /}, route: "
                 "{weighted_clusters: {total_weight: 100, clusters: [{name: a, weight: 10}]}}}]}\n",
                 "weighted_clusters.total_weight: Sum of weights in the weighted_cluster should add up to 100");
    expect_error("virtual_hosts:\n- {name: v, domains: ['*'], routes: [{match: {prefix: /}, route: "
                 "{weighted_clusters: {clusters: [{name: a, cluster_header: x, weight: 1}]}}}]}\n",
                 "weighted_clusters.clusters[0]: Only one of name or cluster_header can be specified");
}

/* ---- rewrites and redirects ----------------------------------------------------------------------- */

LG_TEST(test_path_rewrites)
{
    lg_route_table_t *t = build(
        "virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n"
        "  - {name: p, match: {prefix: /api/}, route: {cluster: c, prefix_rewrite: /v2/}}\n"
        "  - {name: ci, match: {prefix: /CI/, case_sensitive: false}, route: {cluster: c, prefix_rewrite: /}}\n"
        "  - {name: exact, match: {path: /old}, route: {cluster: c, prefix_rewrite: /new}}\n"
        "  - {name: rx, match: {prefix: /service/}, route: {cluster: c, regex_rewrite: {pattern: {regex: '^/service/([^/]+)(/.*)$'}, substitution: '\\2/instance/\\1'}}}\n"
        "  - {name: rx-empty, match: {prefix: /gone}, route: {cluster: c, regex_rewrite: {pattern: {regex: '.*'}, substitution: ''}}}\n"
        "  - {name: rxmatch, match: {safe_regex: {regex: '/r/[a-z]+'}}, route: {cluster: c, prefix_rewrite: /fixed}}\n"
        "  - {name: none, match: {prefix: /}, route: {cluster: c}}\n");
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    struct {
        const char *in, *out;
    } cases[] = {
        {"/api/users?x=1", "/v2/users?x=1"},
        {"/ci/a", "/a"},
        {"/Ci/a", "/a"},
        {"/old?q", "/new?q"},
        {"/service/foo/v1/api?k=v", "/v1/api/instance/foo?k=v"},
        {"/gone/x?y", "/gone/x?y"}, /* a rewrite to nothing leaves the path alone */
        {"/r/abc?z", "/fixed?z"},
        {"/plain", "/plain"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        lg_request_head_t req = mkreq("h", cases[i].in);
        const lg_route_t *r = match_r(t, &req, 0);
        int changed = lg_route_rewrite_path(r, &req, &pool, 1);
        LG_EXPECT_STR(cstr(req.path), cases[i].out);
        LG_EXPECT_INT(changed, strcmp(cases[i].in, cases[i].out) != 0);
        const h2o_iovec_t *orig = lg_headers_get(&req.headers, H2O_STRLIT("x-envoy-original-path"));
        if (changed)
            LG_EXPECT(orig != NULL && strcmp(cstr(*orig), cases[i].in) == 0);
        else
            LG_EXPECT(orig == NULL);
    }
    lg_route_table_release(t);
}

LG_TEST(test_host_rewrites)
{
    lg_route_table_t *t = build(
        "virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n"
        "  - {name: lit, match: {prefix: /lit}, route: {cluster: c, host_rewrite_literal: new.host, append_x_forwarded_host: true}}\n"
        "  - {name: hdr, match: {prefix: /hdr}, route: {cluster: c, host_rewrite_header: X-Host}}\n"
        "  - {name: rx, match: {prefix: /rx}, route: {cluster: c, host_rewrite_path_regex: {pattern: {regex: '^/rx/([^/]+).*$'}, substitution: '\\1.svc'}}}\n"
        "  - {name: auto, match: {prefix: /auto}, route: {cluster: c, auto_host_rewrite: true}}\n"
        "  - name: wc\n    match: {prefix: /wc}\n"
        "    route: {weighted_clusters: {clusters: [{name: a, weight: 1, host_rewrite_literal: wc.host}]}}\n");
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    lg_request_head_t req = mkreq("orig.host", "/lit");
    const lg_route_t *r = match_r(t, &req, 0);
    lg_route_finalize_request(r, NULL, &req, NULL, &pool, 0);
    LG_EXPECT_STR(cstr(req.authority), "new.host");
    LG_EXPECT_STR(cstr(*lg_headers_get(&req.headers, H2O_STRLIT("x-forwarded-host"))), "orig.host");
    /* Appending again with the same old host does not repeat it; another host is appended. */
    req.authority = LG_LIT("orig.host");
    lg_route_set_authority(r, &req, LG_LIT("x"), &pool);
    LG_EXPECT_STR(cstr(*lg_headers_get(&req.headers, H2O_STRLIT("x-forwarded-host"))), "orig.host");
    lg_route_set_authority(r, &req, LG_LIT("y"), &pool);
    LG_EXPECT_STR(cstr(*lg_headers_get(&req.headers, H2O_STRLIT("x-forwarded-host"))), "orig.host,x");

    req = mkreq("orig.host", "/hdr");
    r = match_r(t, &req, 0);
    LG_EXPECT(lg_route_rewritten_host(r, &req, &pool).base == NULL); /* no header: no rewrite */
    add(&req, "x-host", "from.header");
    lg_route_finalize_request(r, NULL, &req, NULL, &pool, 0);
    LG_EXPECT_STR(cstr(req.authority), "from.header");
    LG_EXPECT(lg_headers_get(&req.headers, H2O_STRLIT("x-forwarded-host")) == NULL);

    req = mkreq("orig.host", "/rx/backend/x?q");
    r = match_r(t, &req, 0);
    lg_route_finalize_request(r, NULL, &req, NULL, &pool, 0);
    LG_EXPECT_STR(cstr(req.authority), "backend.svc");

    req = mkreq("orig.host", "/auto");
    r = match_r(t, &req, 0);
    LG_EXPECT_INT(r->host_rewrite, LG_HOST_REWRITE_AUTO);
    lg_route_finalize_request(r, NULL, &req, NULL, &pool, 0);
    LG_EXPECT_STR(cstr(req.authority), "orig.host"); /* the router does auto rewrites */

    req = mkreq("orig.host", "/wc");
    r = match_r(t, &req, 0);
    lg_route_finalize_request(r, lg_route_pick_weighted_cluster(r, &req, 0), &req, NULL, &pool, 0);
    LG_EXPECT_STR(cstr(req.authority), "wc.host");
    lg_route_table_release(t);
}

static const char *location(const lg_route_table_t *t, const char *authority, const char *path, const char *xfp,
                            int *code)
{
    lg_request_head_t req = mkreq(authority, path);
    if (xfp != NULL)
        add(&req, "x-forwarded-proto", xfp);
    const lg_route_t *r = match_r(t, &req, 0);
    if (r == NULL || r->action != LG_ROUTE_ACTION_REDIRECT)
        return "(no redirect)";
    if (code != NULL)
        *code = r->redirect.response_code;
    return cstr(lg_route_redirect_location(r, &req, &pool));
}

LG_TEST(test_redirects)
{
    lg_route_table_t *t = build(
        "virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n"
        "  - {match: {prefix: /https}, redirect: {https_redirect: true}}\n"
        "  - {match: {prefix: /scheme}, redirect: {scheme_redirect: ftp, response_code: FOUND}}\n"
        "  - {match: {prefix: /port}, redirect: {port_redirect: 8443, response_code: SEE_OTHER}}\n"
        "  - {match: {prefix: /host}, redirect: {host_redirect: other.com, response_code: TEMPORARY_REDIRECT}}\n"
        "  - {match: {prefix: /path}, redirect: {path_redirect: /new, response_code: PERMANENT_REDIRECT}}\n"
        "  - {match: {prefix: /pq}, redirect: {path_redirect: '/new?a=b', strip_query: true}}\n"
        "  - {match: {prefix: /strip}, redirect: {strip_query: true}}\n"
        "  - {match: {prefix: /pre/}, redirect: {prefix_rewrite: /post/}}\n"
        "  - {match: {prefix: /rx/}, redirect: {regex_rewrite: {pattern: {regex: '^/rx/(.*)$'}, substitution: '/\\1/rx'}}}\n");
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    int code = 0;
    LG_EXPECT_STR(location(t, "a.com", "/https/x?y=1", NULL, &code), "https://a.com/https/x?y=1");
    LG_EXPECT_INT(code, 301);
    /* The port of the old scheme goes; any other port stays. */
    LG_EXPECT_STR(location(t, "a.com:80", "/https", "http", NULL), "https://a.com/https");
    LG_EXPECT_STR(location(t, "a.com:8080", "/https", "http", NULL), "https://a.com:8080/https");
    LG_EXPECT_STR(location(t, "[::1]:80", "/https", "http", NULL), "https://[::1]/https");
    LG_EXPECT_STR(location(t, "a.com:443", "/https", "https", NULL), "https://a.com:443/https");
    LG_EXPECT_STR(location(t, "a.com", "/scheme", NULL, &code), "ftp://a.com/scheme");
    LG_EXPECT_INT(code, 302);
    LG_EXPECT_STR(location(t, "a.com:1234", "/port", NULL, &code), "http://a.com:8443/port");
    LG_EXPECT_INT(code, 303);
    LG_EXPECT_STR(location(t, "a.com:1234", "/host", NULL, &code), "http://other.com/host");
    LG_EXPECT_INT(code, 307);
    LG_EXPECT_STR(location(t, "a.com", "/path/x?keep=1", NULL, &code), "http://a.com/new?keep=1");
    LG_EXPECT_INT(code, 308);
    LG_EXPECT_STR(location(t, "a.com", "/pq?old=1", NULL, NULL), "http://a.com/new?a=b");
    LG_EXPECT_STR(location(t, "a.com", "/strip?x=1", NULL, NULL), "http://a.com/strip");
    LG_EXPECT_STR(location(t, "a.com", "/pre/x/y?z", NULL, NULL), "http://a.com/post/x/y?z");
    LG_EXPECT_STR(location(t, "a.com", "/rx/abc?z", NULL, NULL), "http://a.com/abc/rx?z");
    lg_route_table_release(t);
}

LG_TEST(test_direct_responses)
{
    char file[] = "/tmp/lg_route_body_XXXXXX";
    int fd = mkstemp(file);
    LG_EXPECT(fd >= 0);
    LG_EXPECT(write(fd, "from a file", 11) == 11);
    close(fd);
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n"
             "  - {name: s, match: {path: /s}, direct_response: {status: 200, body: {inline_string: hello}}}\n"
             "  - {name: b, match: {path: /b}, direct_response: {status: 403, body: {inline_bytes: aGk=}}}\n"
             "  - {name: f, match: {path: /f}, direct_response: {status: 503, body: {filename: %s}}}\n"
             "  - {name: e, match: {path: /e}, direct_response: {status: 204}}\n",
             file);
    lg_route_table_t *t = build(yaml);
    LG_EXPECT(t != NULL);
    if (t != NULL) {
        lg_request_head_t req = mkreq("h", "/s");
        const lg_route_t *r = match_r(t, &req, 0);
        LG_EXPECT(r->action == LG_ROUTE_ACTION_DIRECT_RESPONSE && r->direct_status == 200);
        LG_EXPECT_STR(r->direct_body.base, "hello");
        req = mkreq("h", "/b");
        r = match_r(t, &req, 0);
        LG_EXPECT_INT(r->direct_status, 403);
        LG_EXPECT_STR(r->direct_body.base, "hi");
        req = mkreq("h", "/f");
        LG_EXPECT_STR(match_r(t, &req, 0)->direct_body.base, "from a file");
        req = mkreq("h", "/e");
        LG_EXPECT_INT((int)match_r(t, &req, 0)->direct_body.len, 0);
    }
    lg_route_table_release(t);

    /* Envoy's limit on direct response bodies: 4096 bytes unless the route config raises it. */
    size_t n = 5000;
    char *big = malloc(n + 512);
    int o = snprintf(big, 512, "virtual_hosts:\n- {name: v, domains: ['*'], routes: [{match: {path: /}, "
                               "direct_response: {status: 200, body: {inline_string: '");
    memset(big + o, 'x', n);
    snprintf(big + o + n, 64, "'}}}]}\n");
    expect_error(big, "virtual_hosts[0].routes[0].direct_response.body: response body size is 5000 bytes; maximum is 4096");
    char *raised = malloc(n + 600);
    snprintf(raised, n + 600, "max_direct_response_body_size_bytes: 8192\n%s", big);
    t = build(raised);
    LG_EXPECT(t != NULL);
    lg_route_table_release(t);
    free(raised);
    free(big);

    snprintf(yaml, sizeof(yaml), "max_direct_response_body_size_bytes: 4\nvirtual_hosts:\n- {name: v, domains: ['*'], routes: "
                                 "[{match: {path: /}, direct_response: {status: 200, body: {filename: %s}}}]}\n", file);
    expect_error(yaml, "direct_response.body.filename: response body file");
    unlink(file);
    expect_error(yaml, "does not exist");
    expect_error("virtual_hosts:\n- {name: v, domains: ['*'], routes: [{match: {path: /}, direct_response: {status: 99}}]}\n",
                 "routes[0].direct_response.status: value must be inside range [200, 600)");
}

/* ---- header mutations and per-filter configs ------------------------------------------------ */

static const char levels_yaml[] =
    "%s"
    "request_headers_to_add: [{header: {key: x-order, value: table}}, {header: {key: x-win, value: table}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]\n"
    "response_headers_to_add: [{header: {key: x-order, value: table}}]\n"
    "response_headers_to_remove: [server]\n"
    "virtual_hosts:\n"
    "- name: v\n"
    "  domains: ['*']\n"
    "  request_headers_to_add: [{header: {key: x-order, value: vhost}}, {header: {key: x-win, value: vhost}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]\n"
    "  response_headers_to_add: [{header: {key: x-order, value: vhost}}]\n"
    "  routes:\n"
    "  - match: {prefix: /}\n"
    "    request_headers_to_add:\n"
    "    - {header: {key: x-order, value: route}}\n"
    "    - {header: {key: x-win, value: route}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n"
    "    - {header: {key: x-client, value: '%%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%%'}}\n"
    "    request_headers_to_remove: [x-secret]\n"
    "    response_headers_to_add: [{header: {key: x-order, value: route}}, {header: {key: x-path, value: '%%REQ(:path)%%'}}]\n"
    "    route:\n"
    "      weighted_clusters:\n"
    "        clusters:\n"
    "        - name: a\n"
    "          weight: 1\n"
    "          request_headers_to_add: [{header: {key: x-order, value: cluster}}]\n"
    "          response_headers_to_add: [{header: {key: x-order, value: cluster}}]\n";

static const char *values_of(const lg_headers_t *h, const char *name)
{
    static char buf[256];
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < h->size; ++i)
        if (h->entries[i].name.len == strlen(name) && memcmp(h->entries[i].name.base, name, strlen(name)) == 0)
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%.*s", o ? "," : "", (int)h->entries[i].value.len,
                                  h->entries[i].value.base);
    return buf;
}

static void check_levels(const char *extra, const char *want_order, const char *want_win, const char *want_resp_order)
{
    char yaml[4096];
    snprintf(yaml, sizeof(yaml), levels_yaml, extra);
    lg_route_table_t *t = build(yaml);
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    lg_request_head_t req = mkreq("h", "/p?q");
    add(&req, "x-secret", "s");
    add(&req, "x-win", "client");
    const lg_route_t *r = match_r(t, &req, 0);
    const lg_weighted_cluster_t *wc = lg_route_pick_weighted_cluster(r, &req, 0);
    lg_stream_info_t info;
    memset(&info, 0, sizeof(info));
    struct sockaddr_in *sin = (struct sockaddr_in *)&info.downstream_remote;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(0x7f000001);
    lg_format_context_t ctx = {&info, &req, NULL};
    lg_route_finalize_request(r, wc, &req, &ctx, &pool, 0);
    LG_EXPECT_STR(values_of(&req.headers, "x-order"), want_order);
    LG_EXPECT_STR(values_of(&req.headers, "x-win"), want_win);
    LG_EXPECT_STR(values_of(&req.headers, "x-client"), "127.0.0.1");
    LG_EXPECT_STR(values_of(&req.headers, "x-secret"), "");

    lg_response_head_t resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    lg_headers_add(&pool, &resp.headers, LG_LIT("server"), LG_LIT("upstream"));
    lg_route_apply_response_mutations(r, wc, &resp, &ctx, &pool);
    LG_EXPECT_STR(values_of(&resp.headers, "x-order"), want_resp_order);
    LG_EXPECT_STR(values_of(&resp.headers, "server"), "");
    LG_EXPECT_STR(values_of(&resp.headers, "x-path"), "/p?q");
    lg_route_table_release(t);
}

LG_TEST(test_mutation_levels)
{
    /* Envoy's default: weighted cluster, route, virtual host, route config; the last write wins. */
    check_levels("", "cluster,route,vhost,table", "table", "cluster,route,vhost,table");
    check_levels("most_specific_header_mutations_wins: true\n", "cluster,table,vhost,route", "route",
                 "cluster,table,vhost,route");
}

LG_TEST(test_per_filter_configs)
{
    built_configs = destroyed_configs = 0;
    lg_route_table_t *t = build(
        "typed_per_filter_config:\n"
        "  f.all: {'@type': type.googleapis.com/google.protobuf.StringValue, value: table-all}\n"
        "  f.table: {'@type': type.googleapis.com/google.protobuf.StringValue, value: table}\n"
        "virtual_hosts:\n"
        "- name: v\n"
        "  domains: ['*']\n"
        "  typed_per_filter_config:\n"
        "    f.all: {'@type': type.googleapis.com/google.protobuf.StringValue, value: vhost-all}\n"
        "    f.vhost: {'@type': type.googleapis.com/google.protobuf.StringValue, value: vhost}\n"
        "  routes:\n"
        "  - match: {prefix: /r}\n"
        "    typed_per_filter_config:\n"
        "      f.all: {'@type': type.googleapis.com/google.protobuf.StringValue, value: route-all}\n"
        "      f.off: {'@type': type.googleapis.com/envoy.config.route.v3.FilterConfig, disabled: true}\n"
        "      f.wrapped: {'@type': type.googleapis.com/envoy.config.route.v3.FilterConfig, "
        "config: {'@type': type.googleapis.com/google.protobuf.StringValue, value: wrapped}}\n"
        "      f.opt: {'@type': type.googleapis.com/envoy.config.route.v3.FilterConfig, is_optional: true, "
        "config: {'@type': type.googleapis.com/google.protobuf.StringValue, value: fail}}\n"
        "    route:\n"
        "      weighted_clusters:\n"
        "        clusters:\n"
        "        - name: a\n"
        "          weight: 1\n"
        "          typed_per_filter_config:\n"
        "            f.all: {'@type': type.googleapis.com/google.protobuf.StringValue, value: cluster-all}\n"
        "  - match: {prefix: /}\n"
        "    route: {cluster: c}\n");
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    LG_EXPECT_INT(built_configs, 7);
    lg_request_head_t req = mkreq("h", "/r");
    const lg_route_t *r = match_r(t, &req, 0);
    const lg_weighted_cluster_t *wc = lg_route_pick_weighted_cluster(r, &req, 0);
    LG_EXPECT_STR(lg_route_per_filter_config(r, wc, "f.all"), "cluster-all");
    LG_EXPECT_STR(lg_route_per_filter_config(r, NULL, "f.all"), "route-all");
    LG_EXPECT_STR(lg_route_per_filter_config(r, wc, "f.vhost"), "vhost");
    LG_EXPECT_STR(lg_route_per_filter_config(r, wc, "f.table"), "table");
    LG_EXPECT_STR(lg_route_per_filter_config(r, wc, "f.wrapped"), "wrapped");
    LG_EXPECT(lg_route_per_filter_config(r, wc, "f.off") == NULL);
    LG_EXPECT(lg_route_per_filter_config(r, wc, "f.opt") == NULL);
    LG_EXPECT(lg_route_per_filter_config(r, wc, "f.none") == NULL);
    LG_EXPECT_INT(lg_route_filter_disabled(r, "f.off"), 1);
    LG_EXPECT_INT(lg_route_filter_disabled(r, "f.wrapped"), 0);
    LG_EXPECT_INT(lg_route_filter_disabled(r, "f.all"), -1);
    req = mkreq("h", "/other");
    r = match_r(t, &req, 0);
    LG_EXPECT_STR(lg_route_per_filter_config(r, NULL, "f.all"), "vhost-all");
    lg_route_table_retain(t);
    lg_route_table_release(t);
    LG_EXPECT_INT(destroyed_configs, 0);
    lg_route_table_release(t);
    LG_EXPECT_INT(destroyed_configs, 7);

    /* A failing build callback refuses the table, naming the entry; what was built is destroyed. */
    built_configs = destroyed_configs = 0;
    expect_error("typed_per_filter_config:\n"
                 "  f.ok: {'@type': type.googleapis.com/google.protobuf.StringValue, value: fine}\n"
                 "virtual_hosts:\n- name: v\n  domains: ['*']\n  routes:\n  - match: {prefix: /}\n    route: {cluster: c}\n"
                 "    typed_per_filter_config:\n"
                 "      f.bad: {'@type': type.googleapis.com/google.protobuf.StringValue, value: fail}\n",
                 "virtual_hosts[0].routes[0].typed_per_filter_config[f.bad]: bad config for f.bad");
    LG_EXPECT_INT(built_configs, destroyed_configs);
    LG_EXPECT_INT(built_configs, 1);
}

/* ---- parsed policies ------------------------------------------------------------------------- */

LG_TEST(test_policies)
{
    lg_route_table_t *t = build(
        "virtual_hosts:\n"
        "- name: v\n"
        "  domains: ['*']\n"
        "  include_request_attempt_count: true\n"
        "  retry_policy: {retry_on: 5xx, num_retries: 3}\n"
        "  rate_limits: [{actions: [{remote_address: {}}]}]\n"
        "  routes:\n"
        "  - name: defaults\n"
        "    match: {prefix: /d}\n"
        "    route: {cluster: c}\n"
        "  - name: full\n"
        "    match: {prefix: /f}\n"
        "    route:\n"
        "      cluster: c\n"
        "      timeout: 0s\n"
        "      idle_timeout: 2.5s\n"
        "      priority: HIGH\n"
        "      max_stream_duration: {max_stream_duration: 10s, grpc_timeout_header_max: 5s, grpc_timeout_header_offset: 0.1s}\n"
        "      retry_policy:\n"
        "        retry_on: 'gateway-error, connect-failure,refused-stream,unavailable,retriable-status-codes'\n"
        "        per_try_timeout: 0.3s\n"
        "        retriable_status_codes: [409, 429]\n"
        "        retry_back_off: {base_interval: 0.1s}\n"
        "        retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts}]\n"
        "        host_selection_retry_max_attempts: 5\n"
        "        retriable_headers: [{name: x-retry, string_match: {exact: 'yes'}}]\n"
        "      hash_policy:\n"
        "      - {header: {header_name: X-User}}\n"
        "      - {cookie: {name: session, ttl: 60s, path: /}, terminal: true}\n"
        "      - {connection_properties: {source_ip: true}}\n"
        "      - {query_parameter: {name: key}}\n"
        "      upgrade_configs: [{upgrade_type: WebSocket}]\n"
        "      rate_limits: [{actions: [{generic_key: {descriptor_value: x}}]}]\n");
    LG_EXPECT(t != NULL);
    if (t == NULL)
        return;
    lg_request_head_t req = mkreq("h", "/d");
    const lg_route_t *r = match_r(t, &req, 0);
    LG_EXPECT_INT(r->timeout_ms, 15000);
    LG_EXPECT_INT(r->idle_timeout_ms, -1);
    LG_EXPECT_INT(r->max_stream_duration_ms, -1);
    LG_EXPECT(r->retry_policy == r->vhost->retry_policy); /* inherited from the virtual host */
    LG_EXPECT_INT(r->retry_policy->retry_on, LG_RETRY_ON_5XX);
    LG_EXPECT_INT(r->retry_policy->num_retries, 3);
    LG_EXPECT_INT(r->retry_policy->base_interval_ms, 25);
    LG_EXPECT_INT(r->retry_policy->max_interval_ms, 250);
    LG_EXPECT_INT(r->cluster_not_found_code, 503);
    LG_EXPECT(r->vhost->include_request_attempt_count);
    LG_EXPECT_STR(r->vhost->rate_limits, "1 limits at virtual_hosts[0].rate_limits");
    LG_EXPECT(r->rate_limits == NULL);

    req = mkreq("h", "/f");
    r = match_r(t, &req, 0);
    LG_EXPECT_INT(r->timeout_ms, 0);
    LG_EXPECT_INT(r->idle_timeout_ms, 2500);
    LG_EXPECT_INT(r->max_stream_duration_ms, 10000);
    LG_EXPECT_INT(r->grpc_timeout_header_max_ms, 5000);
    LG_EXPECT_INT(r->grpc_timeout_header_offset_ms, 100);
    LG_EXPECT(r->priority_high);
    const lg_retry_policy_t *rp = r->retry_policy;
    LG_EXPECT_INT(rp->retry_on, LG_RETRY_ON_GATEWAY_ERROR | LG_RETRY_ON_CONNECT_FAILURE | LG_RETRY_ON_REFUSED_STREAM |
                                    LG_RETRY_ON_GRPC_UNAVAILABLE | LG_RETRY_ON_RETRIABLE_STATUS_CODES);
    LG_EXPECT_INT(rp->num_retries, 1);
    LG_EXPECT_INT(rp->per_try_timeout_ms, 300);
    LG_EXPECT_INT(rp->n_retriable_status_codes, 2);
    LG_EXPECT_INT(rp->retriable_status_codes[1], 429);
    LG_EXPECT_INT(rp->base_interval_ms, 100);
    LG_EXPECT_INT(rp->max_interval_ms, 1000);
    LG_EXPECT(rp->previous_hosts);
    LG_EXPECT_INT(rp->host_selection_retry_max_attempts, 5);
    LG_EXPECT_INT(rp->n_retriable_headers, 1);
    lg_response_head_t resp;
    memset(&resp, 0, sizeof(resp));
    resp.status = 503;
    LG_EXPECT(!lg_header_matcher_match_response(&rp->retriable_headers[0], &resp, &pool));
    lg_headers_add(&pool, &resp.headers, LG_LIT("x-retry"), LG_LIT("yes"));
    LG_EXPECT(lg_header_matcher_match_response(&rp->retriable_headers[0], &resp, &pool));
    LG_EXPECT_INT(r->n_hash_policies, 4);
    LG_EXPECT(r->hash_policies[0].kind == LG_HASH_POLICY_HEADER);
    LG_EXPECT_STR(r->hash_policies[0].name.base, "x-user");
    LG_EXPECT(r->hash_policies[1].kind == LG_HASH_POLICY_COOKIE && r->hash_policies[1].terminal);
    LG_EXPECT_INT(r->hash_policies[1].cookie_ttl_ms, 60000);
    LG_EXPECT_STR(r->hash_policies[1].cookie_path.base, "/");
    LG_EXPECT(r->hash_policies[2].kind == LG_HASH_POLICY_SOURCE_IP);
    LG_EXPECT(r->hash_policies[3].kind == LG_HASH_POLICY_QUERY_PARAMETER);
    LG_EXPECT_INT(r->n_upgrades, 1);
    LG_EXPECT_STR(r->upgrades[0].type.base, "websocket");
    LG_EXPECT(r->upgrades[0].enabled);
    LG_EXPECT_STR(r->rate_limits, "1 limits at virtual_hosts[0].routes[1].route.rate_limits");
    lg_route_table_release(t);

    uint32_t bits;
    h2o_iovec_t bad;
    LG_EXPECT_INT(lg_retry_on_parse(H2O_STRLIT("5xx,,reset , nope,cancelled"), &bits, &bad), -1);
    LG_EXPECT_STR(cstr(bad), "nope");
    LG_EXPECT_INT(bits, LG_RETRY_ON_5XX | LG_RETRY_ON_RESET | LG_RETRY_ON_GRPC_CANCELLED);
}

/* ---- build errors ---------------------------------------------------------------------------- */

#define ROUTES(r) "virtual_hosts:\n- {name: v, domains: ['*'], routes: [" r "]}\n"

LG_TEST(test_build_errors)
{
    lg_route_table_t *t = build_at(ROUTES("{match: {prefix: /}, route: {cluster: c}}, {match: {prefix: /}, route: {cluster: c}}, "
                                          "{match: {safe_regex: {regex: '(abc'}}, route: {cluster: c}}"),
                                   "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config");
    LG_EXPECT(t == NULL);
    LG_EXPECT_STR(err.msg, "static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_config."
                           "virtual_hosts[0].routes[2].match.safe_regex.regex: invalid regex: missing ): (abc");
    expect_error(ROUTES("{match: {prefix: /, headers: [{name: x, string_match: {safe_regex: {regex: '[z-a]'}}}]}, route: {cluster: c}}"),
                 "routes[0].match.headers[0].string_match.safe_regex.regex: invalid regex: invalid character class range: z-a");
    expect_error(ROUTES("{match: {prefix: /, query_parameters: [{name: q, string_match: {prefix: ''}}]}, route: {cluster: c}}"),
                 "routes[0].match.query_parameters[0].string_match.prefix: value length must be at least 1 characters");
    expect_error(ROUTES("{match: {prefix: /, headers: [{name: x, string_match: {safe_regex: {regex: a}, ignore_case: true}}]}, route: {cluster: c}}"),
                 "string_match.ignore_case: ignore_case has no effect for safe_regex.");
    expect_error(ROUTES("{match: {prefix: /}, route: {cluster: c, regex_rewrite: {pattern: {regex: '(a)'}, substitution: '\\2'}}}"),
                 "routes[0].route.regex_rewrite.substitution: invalid substitution");
    expect_error(ROUTES("{match: {prefix: /}, route: {cluster: c, prefix_rewrite: /x, regex_rewrite: {pattern: {regex: a}, substitution: b}}}"),
                 "routes[0].route: Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy");
    expect_error(ROUTES("{match: {path_separated_prefix: /a/}, route: {cluster: c}}"),
                 "routes[0].match.path_separated_prefix: value does not match regex pattern");
    expect_error(ROUTES("{match: {}, route: {cluster: c}}"),
                 "routes[0].match: one of prefix, path, safe_regex or path_separated_prefix is required");
    expect_error(ROUTES("{route: {cluster: c}}"), "routes[0].match: value is required");
    expect_error(ROUTES("{match: {prefix: /}}"), "routes[0]: one of route, redirect or direct_response is required");
    expect_error(ROUTES("{match: {prefix: /}, route: {}}"),
                 "routes[0].route: one of cluster, cluster_header or weighted_clusters is required");
    expect_error(ROUTES("{match: {prefix: /}, route: {cluster: c, timeout: -1s}}"),
                 "routes[0].route.timeout: value must be greater than or equal to 0s");
    expect_error(ROUTES("{match: {prefix: /}, route: {cluster: c, retry_policy: {retry_on: '5xx,bogus'}}}"),
                 "routes[0].route.retry_policy.retry_on: unknown retry condition \"bogus\"");
    expect_error(ROUTES("{match: {prefix: /}, route: {cluster: c, retry_policy: {retry_back_off: {base_interval: 1s, max_interval: 0.5s}}}}"),
                 "retry_policy.retry_back_off.max_interval: max_interval must be greater than or equal to the base_interval");
    expect_error(ROUTES("{match: {prefix: /}, route: {cluster: c, retry_policy: {retry_host_predicate: [{name: envoy.retry_host_predicates.omit_canary_hosts}]}}}"),
                 "retry_policy.retry_host_predicate[0]: retry host predicate \"envoy.retry_host_predicates.omit_canary_hosts\" is not supported by legate");
    expect_error(ROUTES("{match: {prefix: /}, redirect: {port_redirect: 70000}}"),
                 "routes[0].redirect.port_redirect: value must be less than or equal to 65535");
    expect_error(ROUTES("{match: {prefix: /}, route: {cluster: c, upgrade_configs: [{upgrade_type: websocket}, {upgrade_type: WebSocket}]}}"),
                 "routes[0].route.upgrade_configs[1]: Duplicate upgrade WebSocket");
    expect_error(ROUTES("{match: {prefix: /, headers: [{name: 'a b'}]}, route: {cluster: c}}"),
                 "routes[0].match.headers[0].name: invalid header name \"a b\"");
    expect_error(ROUTES("{match: {prefix: /}, route: {cluster: c}, request_headers_to_add: [{header: {key: ':authority', value: x}}]}"),
                 "routes[0].request_headers_to_add[0].header.key: :-prefixed or host headers may not be modified");
    expect_error("response_headers_to_add: [{header: {key: x, value: '%FOO%'}}]\n",
                 "response_headers_to_add[0].header.value: Not supported field in StreamInfo: FOO");
}

LG_TEST(test_error_lines)
{
    /* With the document's source map, errors start with the line to fix. */
    const char *yaml = "virtual_hosts:\n"
                       "- name: v\n"
                       "  domains: ['*']\n"
                       "  routes:\n"
                       "  - match:\n"
                       "      safe_regex:\n"
                       "        regex: '(abc'\n"
                       "    route: {cluster: c}\n";
    Envoy__Config__Route__V3__RouteConfiguration *rc =
        (Envoy__Config__Route__V3__RouteConfiguration *)lg_pb_new(&envoy__config__route__v3__route_configuration__descriptor);
    lg_srcmap_t map;
    lg_srcmap_init(&map);
    LG_EXPECT_INT(lg_pb_from_yaml(&rc->base, yaml, strlen(yaml), "routes.yaml", &map, &err), 0);
    lg_route_build_opts_t o = opts;
    o.srcmap = &map;
    lg_path_t path;
    lg_path_init(&path);
    LG_EXPECT(lg_route_table_build(rc, &o, &path, &err) == NULL);
    LG_EXPECT_STR(err.msg, "routes.yaml:7: virtual_hosts[0].routes[0].match.safe_regex.regex: invalid regex: missing ): (abc");
    protobuf_c_message_free_unpacked(&rc->base, NULL);
    lg_srcmap_dispose(&map);
}

LG_TEST(test_unsupported_fields)
{
    const char *cases[][2] = {
        {ROUTES("{match: {prefix: /}, route: {cluster: c, internal_redirect_policy: {}}}"),
         "routes[0].route.internal_redirect_policy: internal_redirect_policy is not supported by legate"},
        {ROUTES("{match: {prefix: /}, route: {cluster: c, request_mirror_policies: [{cluster: m}]}}"),
         "routes[0].route.request_mirror_policies: request_mirror_policies is not supported by legate"},
        {ROUTES("{match: {prefix: /}, route: {cluster: c, hedge_policy: {hedge_on_per_try_timeout: true}}}"),
         "route.hedge_policy: hedge_policy is not supported by legate"},
        {ROUTES("{match: {prefix: /}, route: {cluster: c, metadata_match: {}}}"),
         "route.metadata_match: metadata_match is not supported by legate"},
        {ROUTES("{match: {prefix: /}, route: {cluster_specifier_plugin: p}}"),
         "route.cluster_specifier_plugin: cluster_specifier_plugin is not supported by legate"},
        {ROUTES("{match: {prefix: /}, route: {cluster: c, retry_policy: {rate_limited_retry_back_off: {}}}}"),
         "rate_limited_retry_back_off is not supported by legate"},
        {ROUTES("{match: {prefix: /}, route: {cluster: c, hash_policy: [{filter_state: {key: k}}]}}"),
         "route.hash_policy[0].filter_state: filter_state is not supported by legate"},
        {ROUTES("{match: {prefix: /, dynamic_metadata: [{filter: f}]}, route: {cluster: c}}"),
         "routes[0].match.dynamic_metadata: dynamic_metadata is not supported by legate"},
        {ROUTES("{match: {prefix: /, tls_context: {presented: true}}, route: {cluster: c}}"),
         "routes[0].match.tls_context: tls_context is not supported by legate"},
        {ROUTES("{match: {connect_matcher: {}}, route: {cluster: c}}"),
         "routes[0].match.connect_matcher: connect_matcher is not supported by legate"},
        {ROUTES("{match: {prefix: /}, non_forwarding_action: {}}"),
         "routes[0].non_forwarding_action: non_forwarding_action is not supported by legate"},
        {"vhds: {}\n", "vhds: vhds is not supported by legate"},
        {"virtual_hosts:\n- {name: v, domains: ['*'], cors: {}}\n", "virtual_hosts[0].cors: cors is not supported by legate"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i)
        expect_error(cases[i][0], cases[i][1]);

    /* Without the callbacks, per-filter configs and rate limits are refused rather than ignored. */
    Envoy__Config__Route__V3__RouteConfiguration *rc =
        (Envoy__Config__Route__V3__RouteConfiguration *)lg_pb_new(&envoy__config__route__v3__route_configuration__descriptor);
    const char *yaml = "virtual_hosts:\n- {name: v, domains: ['*'], rate_limits: [{actions: [{remote_address: {}}]}]}\n";
    LG_EXPECT_INT(lg_pb_from_yaml(&rc->base, yaml, strlen(yaml), "t.yaml", NULL, &err), 0);
    lg_path_t path;
    lg_path_init(&path);
    LG_EXPECT(lg_route_table_build(rc, NULL, &path, &err) == NULL);
    LG_EXPECT_STR(err.msg, "virtual_hosts[0].rate_limits: rate_limits is not supported by legate");
    protobuf_c_message_free_unpacked(&rc->base, NULL);
}

LG_TEST(test_criteria_reuse)
{
    /* jwt_authn and others compile a lone RouteMatch the same way. */
    Envoy__Config__Route__V3__RouteMatch *m =
        (Envoy__Config__Route__V3__RouteMatch *)lg_pb_new(&envoy__config__route__v3__route_match__descriptor);
    const char *yaml = "{prefix: /api, headers: [{name: x-a, present_match: true}]}";
    LG_EXPECT_INT(lg_pb_from_yaml(&m->base, yaml, strlen(yaml), "t.yaml", NULL, &err), 0);
    lg_route_criteria_t c;
    lg_path_t path;
    lg_path_init(&path);
    LG_EXPECT_INT(lg_route_criteria_init(&c, m, 0, &path, NULL, &err), 0);
    lg_request_head_t req = mkreq("h", "/api/x");
    LG_EXPECT(!lg_route_criteria_match(&c, &req, 0, &pool));
    add(&req, "x-a", "1");
    LG_EXPECT(lg_route_criteria_match(&c, &req, 0, &pool));
    lg_route_criteria_dispose(&c);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

int main(void)
{
    h2o_mem_init_pool(&pool);
    LG_RUN(test_vhost_selection);
    LG_RUN(test_vhost_ports);
    LG_RUN(test_vhost_build_errors);
    LG_RUN(test_path_matchers);
    LG_RUN(test_path_parameters);
    LG_RUN(test_header_matchers);
    LG_RUN(test_query_grpc_runtime);
    LG_RUN(test_require_tls);
    LG_RUN(test_weighted_clusters);
    LG_RUN(test_path_rewrites);
    LG_RUN(test_host_rewrites);
    LG_RUN(test_redirects);
    LG_RUN(test_direct_responses);
    LG_RUN(test_mutation_levels);
    LG_RUN(test_per_filter_configs);
    LG_RUN(test_policies);
    LG_RUN(test_build_errors);
    LG_RUN(test_error_lines);
    LG_RUN(test_unsupported_fields);
    LG_RUN(test_criteria_reuse);
    h2o_mem_clear_pool(&pool);
    return LG_TEST_END();
}
