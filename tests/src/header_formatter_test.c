/*
 * Unit tests of header value formatting and header mutations (src/header_formatter.c): every
 * operator against a filled stream info, Envoy's syntax (%% escapes, arguments, :N truncation) and
 * its compile errors, missing values ("" for headers, "-" for access logs), then mutation lists as
 * they come from a RouteConfiguration: validation errors with paths, removal before addition, the
 * four append actions, keep_empty_value, the deprecated `append`, and formatting against the
 * headers as they were before the list's own additions.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include <h2o/string_.h>

#include "envoy/config/route/v3/route.pb-c.h"
#include "header_formatter.h"
#include "lg_test.h"
#include "pb_yaml.h"

static lg_error_t err;
static h2o_mem_pool_t pool;
static lg_stream_info_t info;
static lg_request_head_t req;
static lg_response_head_t resp;

static void setup(void)
{
    h2o_mem_clear_pool(&pool);
    memset(&info, 0, sizeof(info));
    struct sockaddr_in *remote = (struct sockaddr_in *)&info.downstream_remote;
    remote->sin_family = AF_INET;
    remote->sin_port = htons(5555);
    inet_pton(AF_INET, "10.0.0.1", &remote->sin_addr);
    struct sockaddr_in6 *local = (struct sockaddr_in6 *)&info.downstream_local;
    local->sin6_family = AF_INET6;
    local->sin6_port = htons(8080);
    inet_pton(AF_INET6, "::1", &local->sin6_addr);
    struct sockaddr_in *up = (struct sockaddr_in *)&info.upstream_host;
    up->sin_family = AF_INET;
    up->sin_port = htons(9000);
    inet_pton(AF_INET, "127.0.0.2", &up->sin_addr);
    info.protocol = LG_HTTP_2;
    info.start_ms = 1764326710123ull; /* 2025-11-28T10:45:10.123Z */
    info.upstream_cluster = "backend";
    info.route_name = "r1";
    info.requested_server_name = LG_LIT("example.com");
    info.response_code = 503;
    lg_stream_info_set_flag(&info, LG_RF_UPSTREAM_CONNECTION_FAILURE);
    info.bytes_received = 12;
    info.bytes_sent = 34;

    memset(&req, 0, sizeof(req));
    req.method = LG_LIT("GET");
    req.scheme = LG_LIT("https");
    req.authority = LG_LIT("example.com");
    req.path = LG_LIT("/a/b?c=d");
    lg_headers_add(&pool, &req.headers, LG_LIT("x-client"), LG_LIT("alice"));
    lg_headers_add(&pool, &req.headers, LG_LIT("x-dup"), LG_LIT("first"));
    lg_headers_add(&pool, &req.headers, LG_LIT("x-dup"), LG_LIT("second"));
    memset(&resp, 0, sizeof(resp));
    resp.status = 200;
    lg_headers_add(&pool, &resp.headers, LG_LIT("server"), LG_LIT("upstream"));
}

/* Formats `text` against the fixture; returns a NUL-terminated copy or "(error)". */
static const char *fmt_flags(const char *text, unsigned flags)
{
    lg_header_formatter_t *f = lg_header_formatter_compile(text, strlen(text), flags, &err);
    if (f == NULL)
        return "(error)";
    lg_format_context_t ctx = {&info, &req, &resp};
    h2o_iovec_t v = lg_header_formatter_format(f, &ctx, &pool);
    char *out = h2o_mem_alloc_pool(&pool, v.len + 1);
    memcpy(out, v.base, v.len);
    out[v.len] = '\0';
    lg_header_formatter_free(f);
    return out;
}

static const char *fmt(const char *text)
{
    return fmt_flags(text, 0);
}

LG_TEST(test_constants_and_escapes)
{
    setup();
    LG_EXPECT_STR(fmt("plain"), "plain");
    LG_EXPECT_STR(fmt(""), "");
    LG_EXPECT_STR(fmt("100%%"), "100%");
    LG_EXPECT_STR(fmt("%%PROTOCOL%%"), "%PROTOCOL%");
    lg_header_formatter_t *f = lg_header_formatter_compile(H2O_STRLIT("a%%b"), 0, &err);
    h2o_iovec_t v;
    LG_EXPECT(lg_header_formatter_is_constant(f, &v));
    LG_EXPECT(v.len == 3 && memcmp(v.base, "a%b", 3) == 0);
    lg_header_formatter_free(f);
    f = lg_header_formatter_compile(H2O_STRLIT("%PROTOCOL%"), 0, &err);
    LG_EXPECT(!lg_header_formatter_is_constant(f, NULL));
    lg_header_formatter_free(f);
}

LG_TEST(test_stream_info_operators)
{
    setup();
    LG_EXPECT_STR(fmt("%DOWNSTREAM_REMOTE_ADDRESS%"), "10.0.0.1:5555");
    LG_EXPECT_STR(fmt("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"), "10.0.0.1");
    LG_EXPECT_STR(fmt("%DOWNSTREAM_REMOTE_PORT%"), "5555");
    LG_EXPECT_STR(fmt("%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%"), "10.0.0.1:5555");
    LG_EXPECT_STR(fmt("%DOWNSTREAM_LOCAL_ADDRESS%"), "[::1]:8080");
    LG_EXPECT_STR(fmt("%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%"), "::1");
    LG_EXPECT_STR(fmt("%DOWNSTREAM_LOCAL_PORT%"), "8080");
    LG_EXPECT_STR(fmt("%PROTOCOL%"), "HTTP/2");
    LG_EXPECT_STR(fmt("%UPSTREAM_REMOTE_ADDRESS%"), "127.0.0.2:9000");
    LG_EXPECT_STR(fmt("%UPSTREAM_HOST%"), "127.0.0.2:9000");
    LG_EXPECT_STR(fmt("%UPSTREAM_CLUSTER%"), "backend");
    LG_EXPECT_STR(fmt("%ROUTE_NAME%"), "r1");
    LG_EXPECT_STR(fmt("%REQUESTED_SERVER_NAME%"), "example.com");
    LG_EXPECT_STR(fmt("%RESPONSE_CODE%"), "503");
    LG_EXPECT_STR(fmt("%RESPONSE_FLAGS%"), "UF");
    LG_EXPECT_STR(fmt("%BYTES_RECEIVED%/%BYTES_SENT%"), "12/34");
    char host[256];
    gethostname(host, sizeof(host));
    host[sizeof(host) - 1] = '\0';
    LG_EXPECT_STR(fmt("%HOSTNAME%"), host);
    info.protocol = LG_HTTP_11;
    LG_EXPECT_STR(fmt("via %PROTOCOL% from %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%!"), "via HTTP/1.1 from 10.0.0.1!");
}

LG_TEST(test_start_time)
{
    setup();
    LG_EXPECT_STR(fmt("%START_TIME%"), "2025-11-28T10:45:10.123Z");
    LG_EXPECT_STR(fmt("%START_TIME(%s)%"), "1764326710");
    LG_EXPECT_STR(fmt("%START_TIME(%Y/%m/%d %H:%M:%S.%6f)%"), "2025/11/28 10:45:10.123000");
    LG_EXPECT_STR(fmt("%START_TIME(%f)%"), "123000000");
    LG_EXPECT_STR(fmt("%START_TIME(%1f)%"), "1");
}

LG_TEST(test_req_resp)
{
    setup();
    LG_EXPECT_STR(fmt("%REQ(x-client)%"), "alice");
    LG_EXPECT_STR(fmt("%REQ(X-Client)%"), "alice"); /* names are case-insensitive */
    LG_EXPECT_STR(fmt("%REQ(x-dup)%"), "first");    /* the first value, as Envoy */
    LG_EXPECT_STR(fmt("%REQ(x-none?x-client)%"), "alice");
    LG_EXPECT_STR(fmt("%REQ(:path)% %REQ(:METHOD)% %REQ(:authority)% %REQ(:scheme)%"), "/a/b?c=d GET example.com https");
    LG_EXPECT_STR(fmt("%REQ(x-client):3%"), "ali");
    LG_EXPECT_STR(fmt("%RESP(server)%"), "upstream");
    LG_EXPECT_STR(fmt("[%REQ(x-none)%]"), "[]");
    LG_EXPECT_STR(fmt_flags("[%REQ(x-none)%]", LG_FORMAT_DASH_FOR_MISSING), "[-]");
}

LG_TEST(test_missing_values)
{
    setup();
    memset(&info, 0, sizeof(info));
    LG_EXPECT_STR(fmt("<%DOWNSTREAM_REMOTE_ADDRESS%|%PROTOCOL%|%UPSTREAM_CLUSTER%|%START_TIME%|%RESPONSE_FLAGS%>"),
                  "<||||>");
    LG_EXPECT_STR(fmt_flags("%UPSTREAM_REMOTE_ADDRESS% %RESPONSE_CODE%", LG_FORMAT_DASH_FOR_MISSING), "- -");
    /* Without a stream info or heads, everything is missing and nothing crashes. */
    lg_header_formatter_t *f = lg_header_formatter_compile(H2O_STRLIT("%REQ(a)%%RESP(b)%%PROTOCOL%x"), 0, &err);
    lg_format_context_t empty = {NULL, NULL, NULL};
    h2o_iovec_t v = lg_header_formatter_format(f, &empty, &pool);
    LG_EXPECT(v.len == 1 && v.base[0] == 'x');
    lg_header_formatter_free(f);
}

LG_TEST(test_compile_errors)
{
    LG_EXPECT_STR(fmt("%NOT_AN_OPERATOR%"), "(error)");
    LG_EXPECT_STR(err.msg, "Not supported field in StreamInfo: NOT_AN_OPERATOR");
    LG_EXPECT_STR(fmt("50% off"), "(error)");
    LG_EXPECT_CONTAINS(err.msg, "Couldn't find valid command at position 2");
    LG_EXPECT_STR(fmt("%PROTOCOL"), "(error)");
    LG_EXPECT_CONTAINS(err.msg, "Couldn't find valid command at position 0");
    LG_EXPECT_STR(fmt("%REQ(x-a%"), "(error)");
    LG_EXPECT_STR(fmt("%REQ%"), "(error)");
    LG_EXPECT_CONTAINS(err.msg, "%REQ% needs an argument");
    LG_EXPECT_STR(fmt("%REQ(a?b?c)%"), "(error)");
    LG_EXPECT_CONTAINS(err.msg, "More than 1 alternative header");
    LG_EXPECT_STR(fmt("%PROTOCOL(x)%"), "(error)");
    LG_EXPECT_CONTAINS(err.msg, "%PROTOCOL% takes no argument");
    LG_EXPECT_STR(fmt("%REQ(x):a%"), "(error)");
}

/* ---- mutations ------------------------------------------------------------------------------ */

static Envoy__Config__Route__V3__RouteConfiguration *rc;

/* Loads `yaml` as a RouteConfiguration and compiles its request_headers_to_add/remove into m. */
static int load_mutations(lg_header_mutations_t *m, const char *yaml)
{
    if (rc != NULL)
        protobuf_c_message_free_unpacked(&rc->base, NULL);
    rc = (Envoy__Config__Route__V3__RouteConfiguration *)lg_pb_new(&envoy__config__route__v3__route_configuration__descriptor);
    if (lg_pb_from_yaml(&rc->base, yaml, strlen(yaml), "t.yaml", NULL, &err) != 0)
        return -2;
    lg_path_t path;
    lg_path_init(&path);
    lg_path_push_field(&path, "route_config");
    int r = lg_header_mutations_init(m, rc->request_headers_to_add, rc->n_request_headers_to_add,
                                     rc->request_headers_to_remove, rc->n_request_headers_to_remove,
                                     "request_headers_to_add", "request_headers_to_remove", &path, NULL, &err);
    LG_EXPECT_STR(path.buf, "route_config");
    return r;
}

/* The request's headers as "name=value;..." */
static const char *dump(const lg_headers_t *h)
{
    static char buf[1024];
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < h->size && o < sizeof(buf); ++i)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%.*s=%.*s;", (int)h->entries[i].name.len,
                              h->entries[i].name.base, (int)h->entries[i].value.len, h->entries[i].value.base);
    return buf;
}

/* Applies the yaml's mutations to h and returns dump(h). Names and constant values reference the
 * compiled config (it outlives requests in real use), so the dump is taken before disposing it. */
static const char *apply_to(const char *yaml, lg_headers_t *h)
{
    lg_header_mutations_t m;
    LG_EXPECT_INT(load_mutations(&m, yaml), 0);
    lg_format_context_t ctx = {&info, &req, NULL};
    lg_header_mutations_apply(&m, h, &ctx, &pool);
    const char *s = dump(h);
    lg_header_mutations_dispose(&m);
    return s;
}

LG_TEST(test_mutation_errors)
{
    lg_header_mutations_t m;
    LG_EXPECT_INT(load_mutations(&m, "request_headers_to_add: [{header: {key: host, value: x}}]"), -1);
    LG_EXPECT_STR(err.msg, "route_config.request_headers_to_add[0].header.key: :-prefixed or host headers may not be modified");
    LG_EXPECT_INT(load_mutations(&m, "request_headers_to_add: [{header: {key: a, value: b}}, {header: {key: ':path', value: x}}]"), -1);
    LG_EXPECT_CONTAINS(err.msg, "request_headers_to_add[1].header.key: :-prefixed or host headers may not be modified");
    LG_EXPECT_INT(load_mutations(&m, "request_headers_to_remove: [x-a, ':authority']"), -1);
    LG_EXPECT_STR(err.msg, "route_config.request_headers_to_remove[1]: :-prefixed or host headers may not be removed");
    LG_EXPECT_INT(load_mutations(&m, "request_headers_to_add: [{header: {key: 'bad name', value: x}}]"), -1);
    LG_EXPECT_CONTAINS(err.msg, "header.key: invalid header name \"bad name\"");
    LG_EXPECT_INT(load_mutations(&m, "request_headers_to_add: [{header: {key: a, value: \"x\\ny\"}}]"), -1);
    LG_EXPECT_CONTAINS(err.msg, "request_headers_to_add[0].header.value: invalid header value");
    LG_EXPECT_INT(load_mutations(&m, "request_headers_to_add: [{header: {key: a, value: '%BOGUS%'}}]"), -1);
    LG_EXPECT_STR(err.msg, "route_config.request_headers_to_add[0].header.value: Not supported field in StreamInfo: BOGUS");
    LG_EXPECT_INT(load_mutations(&m, "request_headers_to_add: [{header: {key: a, value: b}, append: true, "
                                     "append_action: ADD_IF_ABSENT}]"), -1);
    LG_EXPECT_CONTAINS(err.msg, "Both append and append_action are set and it's not allowed");
    LG_EXPECT_INT(load_mutations(&m, "request_headers_to_add: [{append_action: ADD_IF_ABSENT}]"), -1);
    LG_EXPECT_STR(err.msg, "route_config.request_headers_to_add[0].header: value is required");
}

LG_TEST(test_mutation_append_actions)
{
    setup();
    lg_headers_t h = {NULL, 0, 0};
    lg_headers_add(&pool, &h, LG_LIT("a"), LG_LIT("1"));
    lg_headers_add(&pool, &h, LG_LIT("b"), LG_LIT("1"));
    lg_headers_add(&pool, &h, LG_LIT("c"), LG_LIT("1"));
    lg_headers_add(&pool, &h, LG_LIT("d"), LG_LIT("1"));
    const char *s = apply_to("request_headers_to_add:\n"
             "- {header: {key: A, value: '2'}}\n"                                        /* default: append */
             "- {header: {key: b, value: '2'}, append_action: ADD_IF_ABSENT}\n"
             "- {header: {key: c, value: '2'}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n"
             "- {header: {key: d, value: '2'}, append_action: OVERWRITE_IF_EXISTS}\n"
             "- {header: {key: e, value: '2'}, append_action: ADD_IF_ABSENT}\n"
             "- {header: {key: f, value: '2'}, append_action: OVERWRITE_IF_EXISTS}\n"
             "- {header: {key: g, value: '2'}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n",
             &h);
    /* Overwrites (which add when absent) go before additions, as in Envoy. */
    LG_EXPECT_STR(s, "a=1;b=1;c=2;d=2;g=2;a=2;e=2;");
}

LG_TEST(test_mutation_legacy_append_and_empty_values)
{
    setup();
    lg_headers_t h = {NULL, 0, 0};
    lg_headers_add(&pool, &h, LG_LIT("a"), LG_LIT("1"));
    lg_headers_add(&pool, &h, LG_LIT("b"), LG_LIT("1"));
    const char *s = apply_to("request_headers_to_add:\n"
             "- {header: {key: a, value: '2'}, append: false}\n"
             "- {header: {key: b, value: '2'}, append: true}\n"
             "- {header: {key: empty, value: ''}}\n"
             "- {header: {key: kept, value: ''}, keep_empty_value: true}\n"
             "- {header: {key: missing, value: '%REQ(x-none)%'}}\n",
             &h);
    LG_EXPECT_STR(s, "a=2;b=1;b=2;kept=;");
}

LG_TEST(test_mutation_order)
{
    setup();
    lg_headers_t h = {NULL, 0, 0};
    lg_headers_add(&pool, &h, LG_LIT("x-a"), LG_LIT("old"));
    lg_headers_add(&pool, &h, LG_LIT("x-gone"), LG_LIT("1"));
    lg_headers_add(&pool, &h, LG_LIT("x-gone"), LG_LIT("2"));
    /* The request head's fields are what %REQ% reads: point it at h. */
    req.headers = h;
    lg_header_mutations_t m;
    LG_EXPECT_INT(load_mutations(&m, "request_headers_to_remove: [x-gone, X-A]\n"
                                     "request_headers_to_add:\n"
                                     "- {header: {key: x-a, value: new}}\n"
                                     "- {header: {key: x-copy, value: 'a=%REQ(x-a)% gone=%REQ(x-gone)%'}}\n"
                                     "- {header: {key: x-gone, value: back}, append_action: ADD_IF_ABSENT}\n"),
                  0);
    lg_format_context_t ctx = {&info, &req, NULL};
    lg_header_mutations_apply(&m, &req.headers, &ctx, &pool);
    /* Removal happens first; values are formatted before this list adds anything. */
    LG_EXPECT_STR(dump(&req.headers), "x-a=new;x-copy=a= gone=;x-gone=back;");
    LG_EXPECT(!lg_header_mutations_empty(&m));
    lg_header_mutations_dispose(&m);
    LG_EXPECT(lg_header_mutations_empty(&m));
}

int main(void)
{
    h2o_mem_init_pool(&pool);
    LG_RUN(test_constants_and_escapes);
    LG_RUN(test_stream_info_operators);
    LG_RUN(test_start_time);
    LG_RUN(test_req_resp);
    LG_RUN(test_missing_values);
    LG_RUN(test_compile_errors);
    LG_RUN(test_mutation_errors);
    LG_RUN(test_mutation_append_actions);
    LG_RUN(test_mutation_legacy_append_and_empty_values);
    LG_RUN(test_mutation_order);
    if (rc != NULL)
        protobuf_c_message_free_unpacked(&rc->base, NULL);
    h2o_mem_clear_pool(&pool);
    return LG_TEST_END();
}
