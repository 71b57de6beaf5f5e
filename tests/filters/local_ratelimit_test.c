/*
 * Unit tests of local_ratelimit's shared token bucket (filters/local_ratelimit) and of the route
 * rate_limits actions that make its descriptors (src/rate_limit_actions.c): step refills capped
 * at max_tokens, exact accounting when threads race for one bucket, and each action's entry,
 * including the cases that drop a descriptor and the config errors.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "filters/local_ratelimit/local_ratelimit.h"
#include "lg_test.h"
#include "pb_registry.h"
#include "pb_yaml.h"
#include "rate_limit_actions.h"

#define MS (1000000ull)

LG_TEST(test_bucket_starts_full_and_refills_in_steps)
{
    lg_token_bucket_t b = {0};
    lg_token_bucket_params_t p = {.max_tokens = 3, .tokens_per_fill = 2, .fill_interval_ns = 100 * MS};
    uint32_t rem;
    LG_EXPECT_INT(lg_token_bucket_consume(&b, &p, 0, &rem), 1);
    LG_EXPECT_INT(rem, 2);
    LG_EXPECT(lg_token_bucket_consume(&b, &p, 10 * MS, &rem));
    LG_EXPECT(lg_token_bucket_consume(&b, &p, 99 * MS, &rem));
    LG_EXPECT_INT(rem, 0);
    LG_EXPECT_INT(lg_token_bucket_consume(&b, &p, 99 * MS, &rem), 0);
    /* one step later: 2 tokens back */
    LG_EXPECT(lg_token_bucket_consume(&b, &p, 100 * MS, &rem));
    LG_EXPECT_INT(rem, 1);
    LG_EXPECT(lg_token_bucket_consume(&b, &p, 150 * MS, &rem));
    LG_EXPECT_INT(lg_token_bucket_consume(&b, &p, 199 * MS, &rem), 0);
    /* many idle steps: capped at max_tokens */
    for (int i = 0; i < 3; ++i)
        LG_EXPECT(lg_token_bucket_consume(&b, &p, 10000 * MS, &rem));
    LG_EXPECT_INT(lg_token_bucket_consume(&b, &p, 10000 * MS, &rem), 0);
}

typedef struct {
    lg_token_bucket_t *b;
    const lg_token_bucket_params_t *p;
    int granted;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    uint32_t rem;
    for (int i = 0; i < 100000; ++i)
        r->granted += lg_token_bucket_consume(r->b, r->p, 0, &rem);
    return NULL;
}

LG_TEST(test_bucket_is_exact_under_contention)
{
    lg_token_bucket_t b = {0};
    lg_token_bucket_params_t p = {.max_tokens = 12345, .tokens_per_fill = 1, .fill_interval_ns = 1000 * MS};
    racer_t r[4];
    pthread_t t[4];
    for (int i = 0; i < 4; ++i) {
        r[i] = (racer_t){&b, &p, 0};
        pthread_create(&t[i], NULL, race, &r[i]);
    }
    int total = 0;
    for (int i = 0; i < 4; ++i) {
        pthread_join(t[i], NULL);
        total += r[i].granted;
    }
    LG_EXPECT_INT(total, 12345);
}

/* ---- actions -------------------------------------------------------------------------------- */

static lg_error_t err;
static h2o_mem_pool_t pool;

/* Builds the "rate_limits" of a VirtualHost written in YAML. */
static lg_rate_limits_t *build(const char *yaml)
{
    Envoy__Config__Route__V3__VirtualHost *pb =
        (Envoy__Config__Route__V3__VirtualHost *)lg_pb_new(&envoy__config__route__v3__virtual_host__descriptor);
    lg_srcmap_t map;
    lg_srcmap_init(&map);
    lg_rate_limits_t *rl = NULL;
    err.msg[0] = '\0';
    if (lg_pb_from_yaml(&pb->base, yaml, strlen(yaml), "r.yaml", &map, &err) == 0)
        rl = lg_rate_limits_build(pb->rate_limits, pb->n_rate_limits, "front", &err);
    protobuf_c_message_free_unpacked(&pb->base, NULL);
    lg_srcmap_dispose(&map);
    return rl;
}

/* The descriptors as "k=v,k=v|k=v". */
static const char *describe(const lg_rate_limits_t *rl, uint32_t stage, const lg_request_head_t *req,
                            const struct sockaddr_storage *remote)
{
    static char out[512];
    lg_rl_input_t in = {.request = req, .remote = remote, .destination_cluster = {(char *)"backend", 7}};
    lg_rl_descriptor_t *ds = NULL;
    size_t n = 0;
    lg_rate_limits_populate(rl, stage, &in, &pool, &ds, &n);
    out[0] = '\0';
    for (size_t i = 0; i < n; ++i) {
        if (i != 0)
            strcat(out, "|");
        for (size_t j = 0; j < ds[i].n_entries; ++j) {
            if (j != 0)
                strcat(out, ",");
            strncat(out, ds[i].entries[j].key.base, ds[i].entries[j].key.len);
            strcat(out, "=");
            strncat(out, ds[i].entries[j].value.base, ds[i].entries[j].value.len);
        }
    }
    return out;
}

LG_TEST(test_actions)
{
    h2o_mem_init_pool(&pool);
    lg_rate_limits_t *rl = build("rate_limits:\n"
                                 "- actions:\n"
                                 "  - generic_key: {descriptor_value: api}\n"
                                 "  - request_headers: {header_name: X-User, descriptor_key: user}\n"
                                 "- actions:\n"
                                 "  - request_headers: {header_name: x-tenant, descriptor_key: tenant, skip_if_absent: true}\n"
                                 "  - destination_cluster: {}\n"
                                 "  - source_cluster: {}\n"
                                 "- actions:\n"
                                 "  - header_value_match:\n"
                                 "      descriptor_value: get\n"
                                 "      headers: [{name: ':method', string_match: {exact: GET}}]\n"
                                 "- actions:\n"
                                 "  - header_value_match:\n"
                                 "      descriptor_key: notpost\n"
                                 "      descriptor_value: 'yes'\n"
                                 "      expect_match: false\n"
                                 "      headers: [{name: ':method', string_match: {exact: POST}}]\n"
                                 "  - query_parameter_value_match:\n"
                                 "      descriptor_value: debug\n"
                                 "      query_parameters: [{name: debug, present_match: true}]\n"
                                 "- stage: 1\n"
                                 "  actions: [{remote_address: {}}, {masked_remote_address: {v4_prefix_mask_len: 24}}]\n");
    LG_EXPECT_STR(err.msg, "");
    lg_request_head_t req;
    memset(&req, 0, sizeof(req));
    req.method = LG_LIT("GET");
    req.path = LG_LIT("/x?debug=1");
    lg_headers_add(&pool, &req.headers, LG_LIT("x-user"), LG_LIT("alice"));
    LG_EXPECT_STR(describe(rl, 0, &req, NULL),
                  "generic_key=api,user=alice|destination_cluster=backend,source_cluster=front|header_match=get|"
                  "notpost=yes,query_match=debug");
    /* no x-user: the first descriptor is dropped; x-tenant present joins the second */
    memset(&req.headers, 0, sizeof(req.headers));
    lg_headers_add(&pool, &req.headers, LG_LIT("x-tenant"), LG_LIT("t1"));
    req.method = LG_LIT("POST");
    req.path = LG_LIT("/x");
    LG_EXPECT_STR(describe(rl, 0, &req, NULL), "tenant=t1,destination_cluster=backend,source_cluster=front");
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(0x0A0B0C0D);
    LG_EXPECT_STR(describe(rl, 1, &req, &ss), "remote_address=10.11.12.13,masked_remote_address=10.11.12.0/24");
    LG_EXPECT_STR(describe(rl, 1, &req, NULL), "");
    lg_rate_limits_free(rl);
    h2o_mem_clear_pool(&pool);
}

LG_TEST(test_action_errors)
{
    LG_EXPECT(build("rate_limits: [{actions: [{metadata: {descriptor_key: k}}]}]") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "[0].actions[0]: metadata actions are not supported");
    LG_EXPECT(build("rate_limits: [{actions: [{generic_key: {}}]}]") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "generic_key: descriptor_value is required");
    LG_EXPECT(build("rate_limits: [{actions: []}]") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "[0].actions: at least one action is required");
    LG_EXPECT(build("rate_limits: [{actions: [{masked_remote_address: {v4_prefix_mask_len: 33}}]}]") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "prefix length out of range");
}

int main(void)
{
    LG_RUN(test_bucket_starts_full_and_refills_in_steps);
    LG_RUN(test_bucket_is_exact_under_contention);
    LG_RUN(test_actions);
    LG_RUN(test_action_errors);
    return LG_TEST_END();
}
