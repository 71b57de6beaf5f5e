/*
 * Unit tests of access-log filters (src/access_log_filter.c): each supported AccessLogFilter on a
 * synthetic stream, accepting and refusing (status codes, durations, health checks, response
 * flags, headers, gRPC statuses, and/or, runtime sampling on x-request-id as Envoy does), and the
 * config errors with their paths, including the filters legate refuses.
 */
#include <stdlib.h>
#include <string.h>

#include "access_log_filter.h"
#include "lg_test.h"
#include "pb_yaml.h"

static lg_error_t err;
static h2o_mem_pool_t pool;
static lg_stream_info_t info;
static lg_request_head_t req;
static lg_response_head_t resp;
static lg_headers_t trailers;

#define START_NS 1000000000000ull
#define MS(x) ((uint64_t)((x) * 1000000.0))

/* A 204 that took 226 ms, with x-request-id cc21d9b0-... and user-agent nsq2http. */
static void setup(void)
{
    h2o_mem_clear_pool(&pool);
    memset(&info, 0, sizeof(info));
    info.protocol = LG_HTTP_2;
    info.start_mono_ns = START_NS;
    info.end_ns = START_NS + MS(226.9);
    info.response_code = 204;
    info.request_id = LG_LIT("cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2");
    memset(&req, 0, sizeof(req));
    req.method = LG_LIT("POST");
    req.authority = LG_LIT("locations");
    req.path = LG_LIT("/api/v1/locations");
    lg_headers_add(&pool, &req.headers, LG_LIT("user-agent"), LG_LIT("nsq2http"));
    lg_headers_add(&pool, &req.headers, LG_LIT("x-request-id"), LG_LIT("cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2"));
    memset(&resp, 0, sizeof(resp));
    resp.status = 204;
    memset(&trailers, 0, sizeof(trailers));
}

/* Builds a filter from YAML; the message and its source map are freed before returning. */
static lg_access_log_filter_t *flt(const char *yaml)
{
    Envoy__Config__Accesslog__V3__AccessLogFilter *pb = (Envoy__Config__Accesslog__V3__AccessLogFilter *)lg_pb_new(
        &envoy__config__accesslog__v3__access_log_filter__descriptor);
    lg_srcmap_t map;
    lg_srcmap_init(&map);
    lg_access_log_filter_t *f = NULL;
    if (lg_pb_from_yaml(&pb->base, yaml, strlen(yaml), "f.yaml", &map, &err) == 0) {
        lg_path_t path;
        lg_path_init(&path);
        lg_path_push_field(&path, "filter");
        f = lg_access_log_filter_build(pb, &map, &path, &err);
        LG_EXPECT_STR(path.buf, "filter"); /* restored */
    }
    protobuf_c_message_free_unpacked(&pb->base, NULL);
    lg_srcmap_dispose(&map);
    return f;
}

/* 1 when the fixture stream passes. */
static int pass(const lg_access_log_filter_t *f)
{
    lg_format_context_t ctx = {&info, &req, &resp};
    return f != NULL && lg_access_log_filter_eval(f, &ctx, &trailers, &pool);
}

LG_TEST(test_filters)
{
    setup();
    lg_access_log_filter_t *l =
        flt("  status_code_filter: {comparison: {op: GE, value: {default_value: 400, runtime_key: k}}}\n");
    LG_EXPECT(l != NULL && !pass(l));
    info.response_code = 503;
    LG_EXPECT(pass(l));
    info.response_code = 0;
    LG_EXPECT(!pass(l));
    lg_access_log_filter_free(l);
    l = flt("  status_code_filter: {comparison: {op: LE, value: {default_value: 0, runtime_key: k}}}\n");
    LG_EXPECT(pass(l)); /* no response counts as 0 */
    lg_access_log_filter_free(l);

    setup();
    l = flt("  duration_filter: {comparison: {op: GE, value: {default_value: 200, runtime_key: k}}}\n");
    LG_EXPECT(pass(l));
    info.end_ns = START_NS + MS(199.9);
    LG_EXPECT(!pass(l));
    lg_access_log_filter_free(l);
    l = flt("  duration_filter: {comparison: {value: {default_value: 199, runtime_key: k}}}\n"); /* EQ */
    LG_EXPECT(pass(l));
    lg_access_log_filter_free(l);

    setup();
    l = flt("  not_health_check_filter: {}\n");
    LG_EXPECT(pass(l));
    info.health_check = 1;
    LG_EXPECT(!pass(l));
    lg_access_log_filter_free(l);

    setup();
    l = flt("  response_flag_filter: {}\n");
    LG_EXPECT(!pass(l));
    lg_stream_info_set_flag(&info, LG_RF_NO_ROUTE_FOUND);
    LG_EXPECT(pass(l));
    lg_access_log_filter_free(l);
    l = flt("  response_flag_filter: {flags: [UH, UF, DF]}\n");
    LG_EXPECT(!pass(l));
    lg_stream_info_set_flag(&info, LG_RF_UPSTREAM_CONNECTION_FAILURE);
    LG_EXPECT(pass(l));
    lg_access_log_filter_free(l);

    setup();
    l = flt("  header_filter: {header: {name: user-agent, string_match: {prefix: nsq}}}\n");
    LG_EXPECT(pass(l));
    lg_headers_set(&pool, &req.headers, LG_LIT("user-agent"), LG_LIT("curl"));
    LG_EXPECT(!pass(l));
    lg_format_context_t bare = {&info, NULL, NULL};
    LG_EXPECT(!lg_access_log_filter_eval(l, &bare, NULL, &pool)); /* no request at all */
    lg_access_log_filter_free(l);

    setup();
    l = flt("  grpc_status_filter: {statuses: [UNAVAILABLE, INTERNAL]}\n");
    LG_EXPECT(!pass(l)); /* 204 maps to Unknown */
    info.response_code = 503;
    LG_EXPECT(pass(l));
    lg_headers_add(&pool, &trailers, LG_LIT("grpc-status"), LG_LIT("0"));
    LG_EXPECT(!pass(l));
    lg_access_log_filter_free(l);
    l = flt("  grpc_status_filter: {statuses: [OK], exclude: true}\n");
    LG_EXPECT(!pass(l));
    lg_access_log_filter_free(l);

    setup();
    l = flt("  and_filter:\n"
            "    filters:\n"
            "    - status_code_filter: {comparison: {op: GE, value: {default_value: 200, runtime_key: k}}}\n"
            "    - not_health_check_filter: {}\n");
    LG_EXPECT(pass(l));
    info.health_check = 1;
    LG_EXPECT(!pass(l));
    lg_access_log_filter_free(l);
    l = flt("  or_filter:\n"
            "    filters:\n"
            "    - status_code_filter: {comparison: {op: GE, value: {default_value: 500, runtime_key: k}}}\n"
            "    - not_health_check_filter: {}\n");
    LG_EXPECT(!pass(l));
    info.response_code = 500;
    LG_EXPECT(pass(l));
    lg_access_log_filter_free(l);

    /* runtime_filter: its default percentage, sampled on x-request-id like Envoy (first 8 hex
     * digits mod the denominator). cc21d9b0 = 3424770480, mod 100 = 80. */
    setup();
    l = flt("  runtime_filter: {runtime_key: access_log.sample, percent_sampled: {numerator: 81}}\n");
    LG_EXPECT(pass(l));
    lg_access_log_filter_free(l);
    l = flt("  runtime_filter: {runtime_key: access_log.sample, percent_sampled: {numerator: 80}}\n");
    LG_EXPECT(!pass(l));
    lg_access_log_filter_free(l);
    l = flt("  runtime_filter: {runtime_key: k}\n"); /* default 0 %: never */
    LG_EXPECT(!pass(l));
    lg_access_log_filter_free(l);
    l = flt("  runtime_filter: {runtime_key: k, use_independent_randomness: true,\n"
            "                   percent_sampled: {numerator: 1000000, denominator: MILLION}}\n");
    LG_EXPECT(pass(l));
    lg_access_log_filter_free(l);
}

LG_TEST(test_config_errors)
{
    setup();
    LG_EXPECT(flt("  traceable_filter: {}\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "f.yaml:1: ");
    LG_EXPECT_CONTAINS(err.msg, "filter.traceable_filter: this access log filter is not supported by legate");
    LG_EXPECT(flt("  and_filter: {filters: [{not_health_check_filter: {}}]}\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "filter.and_filter.filters: value must contain at least 2 item(s)");
    LG_EXPECT(flt("  or_filter:\n"
                  "    filters:\n"
                  "    - not_health_check_filter: {}\n"
                  "    - response_flag_filter: {flags: [UF, XX]}\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "filter.or_filter.filters[1].response_flag_filter.flags[1]: invalid "
                                "response flag \"XX\"");
    LG_EXPECT(flt("  status_code_filter: {}\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "filter.status_code_filter.comparison: value is required");
    LG_EXPECT(flt("  duration_filter: {comparison: {op: GE}}\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "filter.duration_filter.comparison.value: value is required");
    LG_EXPECT(flt("  runtime_filter: {}\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "runtime_filter.runtime_key");
    LG_EXPECT(flt("  header_filter: {header: {name: x, safe_regex_match: {regex: '('}}}\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "filter.header_filter.header");
    LG_EXPECT(flt("  metadata_filter: {}\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "metadata_filter: this access log filter is not supported by legate");
    LG_EXPECT(flt("  {}\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "filter: one of the filter_specifier fields is required");
}

int main(void)
{
    h2o_mem_init_pool(&pool);
    LG_RUN(test_filters);
    LG_RUN(test_config_errors);
    h2o_mem_clear_pool(&pool);
    return LG_TEST_END();
}
