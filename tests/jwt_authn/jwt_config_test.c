/*
 * Unit tests of the jwt_authn config for remote_jwks (filters/jwt_authn/config.c): the uri split
 * into the fetch's :authority and path, Envoy's defaults (cache_duration 600 s,
 * failed_refetch_duration 1 s, one retry with a 1 s base and a 10x max back-off), and the refusals
 * with the path of the offending field.
 */
#include <string.h>

#include "envoy/extensions/filters/http/jwt_authn/v3/config.pb-c.h"
#include "filters/jwt_authn/jwt_authn.h"
#include "lg_test.h"
#include "pb_yaml.h"
#include "srcmap.h"

static lg_error_t err;

/* The config for one provider `p` whose remote_jwks is `remote` (YAML flow mapping). */
static lg_jwt_authn_config_t *build(const char *remote)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml), "providers:\n  p:\n    issuer: i\n    remote_jwks: %s\n", remote);
    ProtobufCMessage *pb = lg_pb_new(&envoy__extensions__filters__http__jwt_authn__v3__jwt_authentication__descriptor);
    lg_srcmap_t map;
    lg_srcmap_init(&map);
    lg_jwt_authn_config_t *c = NULL;
    err.msg[0] = '\0';
    lg_filter_config_ctx_t ctx = {.stat_prefix = "http.t."};
    if (lg_pb_from_yaml(pb, yaml, strlen(yaml), "j.yaml", &map, &err) == 0)
        c = lg_jwt_authn_create_config(pb, &ctx, &err);
    protobuf_c_message_free_unpacked(pb, NULL);
    lg_srcmap_dispose(&map);
    return c;
}

LG_TEST(test_uri_and_defaults)
{
    lg_jwt_authn_config_t *c =
        build("{http_uri: {uri: 'https://idp.example:8443/keys?v=2#frag', cluster: idp, timeout: 1.5s}}");
    LG_EXPECT(c != NULL);
    if (c == NULL)
        return;
    const lg_jwt_remote_t *r = &c->providers[0].remote;
    LG_EXPECT(c->providers[0].is_remote);
    LG_EXPECT_STR(r->authority, "idp.example:8443");
    LG_EXPECT_STR(r->path, "/keys?v=2");
    LG_EXPECT_STR(r->cluster, "idp");
    LG_EXPECT(r->https);
    LG_EXPECT_INT(r->timeout_ms, 1500);
    LG_EXPECT_INT(r->cache_duration_ms, 600000);
    LG_EXPECT(!r->async_fetch);
    LG_EXPECT_INT(r->num_retries, 0);
    lg_jwt_authn_destroy_config(c);

    c = build("{http_uri: {uri: 'http://idp', cluster: idp, timeout: 1s}, cache_duration: 2s, async_fetch: {},"
              " retry_policy: {}}");
    LG_EXPECT(c != NULL);
    if (c == NULL)
        return;
    r = &c->providers[0].remote;
    LG_EXPECT_STR(r->authority, "idp");
    LG_EXPECT_STR(r->path, "/");
    LG_EXPECT(!r->https);
    LG_EXPECT_INT(r->cache_duration_ms, 2000);
    LG_EXPECT(r->async_fetch);
    LG_EXPECT_INT(r->failed_refetch_ms, 1000);
    LG_EXPECT_INT(r->num_retries, 1);
    LG_EXPECT_INT(r->backoff_base_ms, 1000);
    LG_EXPECT_INT(r->backoff_max_ms, 10000);
    lg_jwt_authn_destroy_config(c);

    c = build("{http_uri: {uri: 'http://idp?x=1', cluster: idp, timeout: 1s},"
              " retry_policy: {num_retries: 4, retry_back_off: {base_interval: 0.05s, max_interval: 0.2s}}}");
    LG_EXPECT(c != NULL);
    if (c == NULL)
        return;
    r = &c->providers[0].remote;
    LG_EXPECT_STR(r->path, "/?x=1");
    LG_EXPECT_INT(r->num_retries, 4);
    LG_EXPECT_INT(r->backoff_base_ms, 50);
    LG_EXPECT_INT(r->backoff_max_ms, 200);
    lg_jwt_authn_destroy_config(c);
}

LG_TEST(test_refusals)
{
    LG_EXPECT(build("{http_uri: {uri: 'http://idp/k', cluster: idp}}") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "typed_config.providers[p].remote_jwks.http_uri.timeout: is required");
    LG_EXPECT(build("{http_uri: {uri: 'ftp://idp/k', cluster: idp, timeout: 1s}}") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "remote_jwks.http_uri.uri: must start with http:// or https://");
    LG_EXPECT(build("{http_uri: {uri: 'http:///k', cluster: idp, timeout: 1s}}") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "remote_jwks.http_uri.uri: has no host");
    LG_EXPECT(build("{http_uri: {uri: 'http://idp/k', timeout: 1s}}") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "remote_jwks.http_uri.cluster: must not be empty");
    LG_EXPECT(build("{cache_duration: 1s}") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "remote_jwks.http_uri: is required");
    LG_EXPECT(build("{http_uri: {uri: 'http://idp/k', cluster: idp, timeout: 1s},"
                    " retry_policy: {retry_back_off: {base_interval: 2s, max_interval: 1s}}}") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "retry_back_off.max_interval: must not be less than base_interval");
}

int main(void)
{
    LG_RUN(test_uri_and_defaults);
    LG_RUN(test_refusals);
    return LG_TEST_END();
}
