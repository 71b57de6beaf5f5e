/*
 * Unit tests of the CORS decisions (filters/cors/policy.c) and policy compilation
 * (filters/cors/config.c): origin matching (exact, regex, "*"), preflight detection, the headers of
 * the preflight answer and of an actual response, field-by-field merging from the most specific
 * level, filter_enabled / shadow_enabled, and forward_not_matching_preflights.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/route/v3/route_components.pb-c.h"
#include "envoy/extensions/filters/http/cors/v3/cors.pb-c.h"
#include "filters/cors/cors.h"
#include "lg_test.h"
#include "lg_test_headers.h"
#include "lg_test_pb.h"

static lg_error_t err;
static h2o_mem_pool_t pool;

static lg_cors_policy_t *policy(const char *yaml)
{
    ProtobufCMessage *pb =
        lg_test_pb_from_yaml(&envoy__extensions__filters__http__cors__v3__cors_policy__descriptor, yaml, &err);
    lg_cors_policy_t *p = pb != NULL ? lg_cors_policy_create(pb, &err) : NULL;
    if (pb != NULL)
        protobuf_c_message_free_unpacked(pb, NULL);
    return p;
}

/* A request "METHOD" with header pairs "name", "value", ..., NULL. */
static lg_request_head_t *request(const char *method, ...)
{
    lg_request_head_t *r = h2o_mem_alloc_pool(&pool, sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->method = h2o_iovec_init(method, strlen(method));
    r->path = h2o_iovec_init(H2O_STRLIT("/"));
    va_list ap;
    va_start(ap, method);
    const char *n;
    while ((n = va_arg(ap, const char *)) != NULL) {
        const char *v = va_arg(ap, const char *);
        lg_headers_add_copy(&pool, &r->headers, n, strlen(n), v, strlen(v));
    }
    va_end(ap);
    return r;
}

static const char *dump(const lg_headers_t *h)
{
    return lg_test_headers_dump(h, ": ", "\n");
}

static const char *preflight(const lg_cors_policy_t *const *p, size_t n, const lg_request_head_t *req,
                             lg_cors_decision_t *d)
{
    lg_cors_policies_t ps = {p, n};
    lg_cors_decide(&ps, req, 0, d);
    lg_headers_t h = {NULL, 0, 0};
    if (d->preflight)
        lg_cors_preflight_headers(&ps, req, d, &pool, &h);
    return dump(&h);
}

LG_TEST(test_origin_matching)
{
    lg_cors_policy_t *p = policy("allow_origin_string_match: [{exact: 'https://a.example'},\n"
                                 "  {safe_regex: {regex: 'https://.*\\.b\\.example'}}, {suffix: '.C.EXAMPLE', ignore_case: true}]\n");
    LG_EXPECT(p != NULL);
    const lg_cors_policy_t *ps[] = {p};
    lg_cors_policies_t set = {ps, 1};
    const char *yes[] = {"https://a.example", "https://x.b.example", "http://q.c.example"};
    const char *no[] = {"https://a.example.evil", "https://b.example", "null", "https://A.example"};
    lg_cors_decision_t d;
    for (size_t i = 0; i < 3; ++i) {
        lg_cors_decide(&set, request("GET", "origin", yes[i], NULL), 0, &d);
        LG_EXPECT(d.counted && d.origin_valid && d.cors_request && !d.preflight);
    }
    for (size_t i = 0; i < 4; ++i) {
        lg_cors_decide(&set, request("GET", "origin", no[i], NULL), 0, &d);
        LG_EXPECT(d.counted && !d.origin_valid);
    }
    /* no Origin (or an empty one): not counted, nothing to do */
    lg_cors_decide(&set, request("GET", NULL), 0, &d);
    LG_EXPECT(!d.counted && !d.cors_request);
    lg_cors_decide(&set, request("GET", "origin", "", NULL), 0, &d);
    LG_EXPECT(!d.counted);
    /* no policy at all */
    lg_cors_policies_t none = {ps, 0};
    lg_cors_decide(&none, request("GET", "origin", yes[0], NULL), 0, &d);
    LG_EXPECT(!d.counted && !d.cors_request);
    lg_cors_policy_destroy(p);

    /* a matcher that matches the literal "*" allows every origin, as Envoy */
    p = policy("allow_origin_string_match: [{exact: '*'}]\n");
    ps[0] = p;
    lg_cors_decide(&set, request("GET", "origin", "https://anything", NULL), 0, &d);
    LG_EXPECT(d.origin_valid);
    lg_cors_policy_destroy(p);
}

LG_TEST(test_preflight_answer)
{
    lg_cors_policy_t *p = policy("allow_origin_string_match: [{exact: 'https://a.example'}]\n"
                                 "allow_methods: GET,POST\nallow_headers: content-type,x-grpc-web\n"
                                 "expose_headers: x-total\nmax_age: '600'\nallow_credentials: true\n");
    const lg_cors_policy_t *ps[] = {p};
    lg_cors_decision_t d;
    const char *h = preflight(ps, 1,
                              request("OPTIONS", "origin", "https://a.example", "access-control-request-method", "PUT",
                                      "access-control-request-headers", "x-a", NULL),
                              &d);
    LG_EXPECT(d.preflight);
    LG_EXPECT_STR(h, "access-control-allow-origin: https://a.example\n"
                     "access-control-allow-credentials: true\n"
                     "access-control-allow-methods: GET,POST\n"
                     "access-control-allow-headers: content-type,x-grpc-web\n"
                     "access-control-max-age: 600\n");
    /* OPTIONS without Access-Control-Request-Method is an actual request */
    preflight(ps, 1, request("OPTIONS", "origin", "https://a.example", NULL), &d);
    LG_EXPECT(!d.preflight && d.cors_request && d.origin_valid);
    /* so is any other method */
    preflight(ps, 1, request("GET", "origin", "https://a.example", "access-control-request-method", "PUT", NULL), &d);
    LG_EXPECT(!d.preflight);
    /* a disallowed origin's preflight goes upstream by default */
    preflight(ps, 1, request("OPTIONS", "origin", "https://evil", "access-control-request-method", "PUT", NULL), &d);
    LG_EXPECT(!d.preflight && d.counted && !d.origin_valid);
    lg_cors_policy_destroy(p);

    /* "*" echoes the request's method and headers; private network access on request */
    p = policy("allow_origin_string_match: [{prefix: 'https://'}]\nallow_methods: '*'\nallow_headers: '*'\n"
               "allow_private_network_access: true\nforward_not_matching_preflights: false\n");
    ps[0] = p;
    h = preflight(ps, 1,
                  request("OPTIONS", "origin", "https://a", "access-control-request-method", "DELETE",
                          "access-control-request-headers", "x-a, x-b", "access-control-request-private-network",
                          "true", NULL),
                  &d);
    LG_EXPECT_STR(h, "access-control-allow-origin: https://a\n"
                     "access-control-allow-methods: DELETE\n"
                     "access-control-allow-headers: x-a, x-b\n"
                     "access-control-allow-private-network: true\n");
    /* forward_not_matching_preflights false: answered here, without Allow-Origin */
    h = preflight(ps, 1, request("OPTIONS", "origin", "http://a", "access-control-request-method", "GET", NULL), &d);
    LG_EXPECT(d.preflight && !d.origin_valid);
    /* "*" with no Access-Control-Request-Headers echoes an empty value, as Envoy's setInline does */
    LG_EXPECT_STR(h, "access-control-allow-methods: GET\naccess-control-allow-headers: \n");
    lg_cors_policy_destroy(p);
}

LG_TEST(test_levels_merge_field_by_field)
{
    lg_cors_policy_t *route = policy("allow_methods: PUT\nallow_credentials: false\n");
    lg_cors_policy_t *vhost = policy("allow_origin_string_match: [{exact: 'https://a'}]\nallow_methods: GET\n"
                                     "allow_credentials: true\nexpose_headers: x-e\nmax_age: '5'\n");
    const lg_cors_policy_t *ps[] = {route, vhost};
    lg_cors_decision_t d;
    const char *h = preflight(ps, 2, request("OPTIONS", "origin", "https://a", "access-control-request-method", "PUT", NULL), &d);
    LG_EXPECT_STR(h, "access-control-allow-origin: https://a\n"
                     "access-control-allow-methods: PUT\n"
                     "access-control-max-age: 5\n");
    lg_cors_policies_t set = {ps, 2};
    lg_cors_decide(&set, request("GET", "origin", "https://a", NULL), 0, &d);
    lg_headers_t resp = {NULL, 0, 0};
    lg_headers_add_copy(&pool, &resp, H2O_STRLIT("access-control-allow-origin"), H2O_STRLIT("*"));
    lg_cors_response_headers(&set, d.origin, &pool, &resp);
    LG_EXPECT_STR(dump(&resp), "access-control-allow-origin: https://a\naccess-control-expose-headers: x-e\n");
    lg_cors_policy_destroy(route);
    lg_cors_policy_destroy(vhost);
}

LG_TEST(test_enabled_and_shadow)
{
    /* filter_enabled 0%: nothing happens, not even counting */
    lg_cors_policy_t *off = policy("allow_origin_string_match: [{exact: 'https://a'}]\n"
                                   "filter_enabled: {default_value: {numerator: 0}}\n");
    const lg_cors_policy_t *ps[] = {off};
    lg_cors_policies_t set = {ps, 1};
    lg_cors_decision_t d;
    lg_cors_decide(&set, request("OPTIONS", "origin", "https://a", "access-control-request-method", "GET", NULL), 7, &d);
    LG_EXPECT(!d.counted && !d.preflight && !d.cors_request);
    lg_cors_policy_destroy(off);

    /* shadow only: counted, not enforced */
    lg_cors_policy_t *shadow = policy("allow_origin_string_match: [{exact: 'https://a'}]\n"
                                      "filter_enabled: {default_value: {numerator: 0}}\n"
                                      "shadow_enabled: {default_value: {numerator: 100}}\n");
    ps[0] = shadow;
    lg_cors_decide(&set, request("OPTIONS", "origin", "https://a", "access-control-request-method", "GET", NULL), 7, &d);
    LG_EXPECT(d.counted && d.origin_valid && !d.preflight && !d.cors_request);
    lg_cors_policy_destroy(shadow);

    /* 50 of 10000: the random value decides */
    lg_cors_policy_t *some = policy("allow_origin_string_match: [{exact: 'https://a'}]\n"
                                    "filter_enabled: {default_value: {numerator: 50, denominator: TEN_THOUSAND}}\n");
    ps[0] = some;
    lg_cors_decide(&set, request("GET", "origin", "https://a", NULL), 10049, &d);
    LG_EXPECT(d.cors_request);
    lg_cors_decide(&set, request("GET", "origin", "https://a", NULL), 10050, &d);
    LG_EXPECT(!d.cors_request);
    lg_cors_policy_destroy(some);

    LG_EXPECT(policy("filter_enabled: {runtime_key: x}\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "filter_enabled.default_value: is required");
    LG_EXPECT(policy("allow_origin_string_match: [{safe_regex: {regex: '('}}]\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "allow_origin_string_match[0]");
}

LG_TEST(test_deprecated_route_policy)
{
    ProtobufCMessage *pb = lg_test_pb_from_yaml(&envoy__config__route__v3__cors_policy__descriptor,
                                                "allow_origin_string_match: [{exact: 'https://a'}]\n"
                                                "allow_methods: GET\nallow_credentials: true\n"
                                                "filter_enabled: {default_value: {numerator: 0}}\n",
                                                &err);
    LG_EXPECT(pb != NULL);
    lg_cors_policy_t *p = lg_cors_policy_create_legacy((const Envoy__Config__Route__V3__CorsPolicy *)pb, &err);
    protobuf_c_message_free_unpacked(pb, NULL);
    LG_EXPECT(p != NULL && p->n_origins == 1 && p->allow_credentials == 1 && p->enabled_num == 0);
    LG_EXPECT_STR(p->allow_methods.base, "GET");
    lg_cors_policy_destroy(p);
}

int main(void)
{
    h2o_mem_init_pool(&pool);
    LG_RUN(test_origin_matching);
    LG_RUN(test_preflight_answer);
    LG_RUN(test_levels_merge_field_by_field);
    LG_RUN(test_enabled_and_shadow);
    LG_RUN(test_deprecated_route_policy);
    h2o_mem_clear_pool(&pool);
    return LG_TEST_END();
}
