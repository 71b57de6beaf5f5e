/*
 * Unit tests of access loggers (src/access_log.c) and the operators they add to the formatter:
 * Envoy's default format byte for byte against a line from Envoy's documentation, every operator on
 * a synthetic stream (stream info, request, response, trailers), gRPC status renderings, the text
 * format variants, JSON formats (exact bytes, then parsed back by the YAML/JSON reader into a
 * google.protobuf.Struct to check types: numbers, strings, null), that a filter decides (the
 * filters themselves: access_log_filter_test.c), the gRPC service logger accepted, and the config
 * errors with their paths. Log files live in a fresh directory under /tmp.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <h2o/string_.h>

#include "access_log.h"
#include "envoy/config/accesslog/v3/accesslog.pb-c.h"
#include "envoy/extensions/access_loggers/file/v3/file.pb-c.h"
#include "google/protobuf/struct.pb-c.h"
#include "header_formatter.h"
#include "lg_test.h"
#include "log.h"
#include "pb_yaml.h"

static char dir[64], logpath[128];
static lg_error_t err;
static h2o_mem_pool_t pool;
static lg_stream_info_t info;
static lg_request_head_t req;
static lg_response_head_t resp;
static lg_headers_t trailers;

#define START_NS 1000000000000ull /* monotonic start: 1000 s */
#define MS(x) ((uint64_t)((x) * 1000000.0))

static void set_addr4(struct sockaddr_storage *ss, const char *ip, unsigned port)
{
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof(*ss));
    in->sin_family = AF_INET;
    in->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, ip, &in->sin_addr);
}

/* The stream of Envoy's documented example line:
 * [2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 "10.0.35.28"
 * "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" "10.0.2.1:80" */
static void setup(void)
{
    h2o_mem_clear_pool(&pool);
    memset(&info, 0, sizeof(info));
    set_addr4(&info.downstream_remote, "10.0.0.1", 5555);
    struct sockaddr_in6 *local = (struct sockaddr_in6 *)&info.downstream_local;
    local->sin6_family = AF_INET6;
    local->sin6_port = htons(8080);
    inet_pton(AF_INET6, "::1", &local->sin6_addr);
    set_addr4(&info.upstream_host, "10.0.2.1", 80);
    info.protocol = LG_HTTP_2;
    info.start_ms = 1460751420310ull; /* 2016-04-15T20:17:00.310Z */
    info.start_mono_ns = START_NS;
    info.request_end_ns = START_NS + MS(5.5);
    info.upstream_request_start_ns = START_NS + MS(6);
    info.upstream_response_start_ns = START_NS + MS(100.2);
    info.end_ns = START_NS + MS(226.9);
    info.response_code = 204;
    info.response_code_details = "via_upstream";
    info.bytes_received = 154;
    info.bytes_sent = 0;
    info.route_name = "r1";
    info.upstream_cluster = "backend";
    info.requested_server_name = LG_LIT("locations.example");
    info.request_id = LG_LIT("cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2");
    info.connection_id = 42;
    info.attempt_count = 1;

    memset(&req, 0, sizeof(req));
    req.method = LG_LIT("POST");
    req.scheme = LG_LIT("http");
    req.authority = LG_LIT("locations");
    req.path = LG_LIT("/api/v1/locations");
    req.version = LG_HTTP_2;
    lg_headers_add(&pool, &req.headers, LG_LIT("x-forwarded-for"), LG_LIT("10.0.35.28"));
    lg_headers_add(&pool, &req.headers, LG_LIT("user-agent"), LG_LIT("nsq2http"));
    lg_headers_add(&pool, &req.headers, LG_LIT("x-request-id"), LG_LIT("cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2"));
    lg_headers_add(&pool, &req.headers, LG_LIT("content-type"), LG_LIT("application/json"));
    memset(&resp, 0, sizeof(resp));
    resp.status = 204;
    lg_headers_add(&pool, &resp.headers, LG_LIT("x-envoy-upstream-service-time"), LG_LIT("100"));
    memset(&trailers, 0, sizeof(trailers));
    lg_headers_add(&pool, &trailers, LG_LIT("x-trailer"), LG_LIT("t1"));
}

/* ---- helpers ------------------------------------------------------------------------------- */

/* `yaml` with every "@LOG@" replaced by the log file's path. */
static char *with_path(const char *yaml)
{
    size_t n = strlen(yaml) + 1;
    for (const char *p = yaml; (p = strstr(p, "@LOG@")) != NULL; p += 5)
        n += strlen(logpath);
    char *out = malloc(n), *o = out;
    for (const char *p = yaml; *p != '\0';) {
        if (strncmp(p, "@LOG@", 5) == 0) {
            o += sprintf(o, "%s", logpath);
            p += 5;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* Builds a logger from an AccessLog document; the message and its source map are freed before
 * returning, so the logger must own everything it uses. NULL with err filled on failure. */
static lg_access_log_t *build(const char *yaml)
{
    char *text = with_path(yaml);
    Envoy__Config__Accesslog__V3__AccessLog *pb =
        (Envoy__Config__Accesslog__V3__AccessLog *)lg_pb_new(&envoy__config__accesslog__v3__access_log__descriptor);
    lg_srcmap_t map;
    lg_srcmap_init(&map);
    lg_access_log_t *l = NULL;
    if (lg_pb_from_yaml(&pb->base, text, strlen(text), "t.yaml", &map, &err) == 0) {
        lg_path_t path;
        lg_path_init(&path);
        lg_path_push_field(&path, "access_log");
        lg_path_push_index(&path, 0);
        l = lg_access_log_build(pb, &map, &path, &err);
        LG_EXPECT_STR(path.buf, "access_log[0]"); /* restored */
    }
    protobuf_c_message_free_unpacked(&pb->base, NULL);
    lg_srcmap_dispose(&map);
    free(text);
    return l;
}

/* Emits the fixture stream, writes everything out and returns what the file got (then empties
 * it). The string lives in the pool. */
static const char *emit(lg_access_log_t *l, int with_trailers)
{
    lg_access_log_emit(l, 0, &info, &req, &resp, with_trailers ? &trailers : NULL);
    lg_access_log_flush_all();
    FILE *fp = fopen(logpath, "rb");
    char *buf = h2o_mem_alloc_pool(&pool, 65536);
    size_t n = fp != NULL ? fread(buf, 1, 65535, fp) : 0;
    if (fp != NULL)
        fclose(fp);
    buf[n] = '\0';
    if (truncate(logpath, 0) != 0 && fp != NULL)
        LG_EXPECT(0);
    return buf;
}

/* One record of a logger built from `yaml`. */
static const char *log_once(const char *yaml)
{
    lg_access_log_t *l = build(yaml);
    if (l == NULL)
        return "(error)";
    const char *out = emit(l, 1);
    lg_access_log_free(l);
    return out;
}

/* A file logger with `log_format`, one record. */
static const char *fmt_log(const char *log_format)
{
    char yaml[4096];
    snprintf(yaml, sizeof(yaml),
             "typed_config:\n"
             "  '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n"
             "  path: '@LOG@'\n"
             "  log_format:\n%s",
             log_format);
    return log_once(yaml);
}

/* An operator formatted as an access log formats it (missing = "-"). */
static const char *op(const char *text)
{
    lg_header_formatter_t *f =
        lg_header_formatter_compile(text, strlen(text), LG_FORMAT_ACCESS_LOG | LG_FORMAT_DASH_FOR_MISSING, &err);
    if (f == NULL)
        return "(error)";
    lg_format_context_t ctx = {&info, &req, &resp};
    h2o_iovec_t v = lg_header_formatter_format_log(f, &ctx, &trailers, &pool, NULL);
    char *out = h2o_mem_alloc_pool(&pool, v.len + 1);
    memcpy(out, v.base, v.len);
    out[v.len] = '\0';
    lg_header_formatter_free(f);
    return out;
}

/* ---- the default format -------------------------------------------------------------------- */

static const char default_yaml[] = "name: envoy.access_loggers.file\n"
                                   "typed_config:\n"
                                   "  '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n"
                                   "  path: '@LOG@'\n";

LG_TEST(test_default_format_is_envoys)
{
    setup();
    LG_EXPECT_STR(log_once(default_yaml),
                  "[2016-04-15T20:17:00.310Z] \"POST /api/v1/locations HTTP/2\" 204 - 154 0 226 100 \"10.0.35.28\" "
                  "\"nsq2http\" \"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2\" \"locations\" \"10.0.2.1:80\"\n");

    /* x-envoy-original-path wins over :path; flags print short names. */
    lg_headers_add(&pool, &req.headers, LG_LIT("x-envoy-original-path"), LG_LIT("/original"));
    lg_stream_info_set_flag(&info, LG_RF_UPSTREAM_CONNECTION_FAILURE);
    lg_stream_info_set_flag(&info, LG_RF_UPSTREAM_RETRY_LIMIT_EXCEEDED);
    info.response_code = 503;
    LG_EXPECT_STR(log_once(default_yaml),
                  "[2016-04-15T20:17:00.310Z] \"POST /original HTTP/2\" 503 UF,URX 154 0 226 100 \"10.0.35.28\" "
                  "\"nsq2http\" \"cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2\" \"locations\" \"10.0.2.1:80\"\n");

    /* A stream that ended before any request or response: Envoy prints 0 and dashes. */
    setup();
    memset(&info.upstream_host, 0, sizeof(info.upstream_host));
    info.response_code = 0;
    info.protocol = LG_HTTP_11;
    lg_stream_info_set_flag(&info, LG_RF_DOWNSTREAM_CONNECTION_TERMINATION);
    lg_access_log_t *l = build(default_yaml);
    lg_access_log_emit(l, 0, &info, NULL, NULL, NULL);
    lg_access_log_free(l);
    lg_access_log_flush_all();
    FILE *fp = fopen(logpath, "rb");
    char line[512] = "";
    LG_EXPECT(fp != NULL && fgets(line, sizeof(line), fp) != NULL);
    if (fp != NULL)
        fclose(fp);
    LG_EXPECT_STR(line, "[2016-04-15T20:17:00.310Z] \"- - HTTP/1.1\" 0 DC 154 0 226 - \"-\" \"-\" \"-\" \"-\" \"-\"\n");
    LG_EXPECT(truncate(logpath, 0) == 0);
}

/* ---- operators ----------------------------------------------------------------------------- */

LG_TEST(test_operators)
{
    setup();
    LG_EXPECT_STR(op("%DOWNSTREAM_REMOTE_ADDRESS%|%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%|%DOWNSTREAM_REMOTE_PORT%"),
                  "10.0.0.1:5555|10.0.0.1|5555");
    LG_EXPECT_STR(op("%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%|%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%|"
                     "%DOWNSTREAM_DIRECT_REMOTE_PORT%"),
                  "10.0.0.1:5555|10.0.0.1|5555");
    LG_EXPECT_STR(op("%DOWNSTREAM_LOCAL_ADDRESS%|%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%|%DOWNSTREAM_LOCAL_PORT%"),
                  "[::1]:8080|::1|8080");
    LG_EXPECT_STR(op("%DOWNSTREAM_DIRECT_LOCAL_ADDRESS%|%DOWNSTREAM_DIRECT_LOCAL_ADDRESS_WITHOUT_PORT%|"
                     "%DOWNSTREAM_DIRECT_LOCAL_PORT%"),
                  "[::1]:8080|::1|8080");
    LG_EXPECT_STR(op("%UPSTREAM_HOST%|%UPSTREAM_REMOTE_ADDRESS%|%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%|"
                     "%UPSTREAM_REMOTE_PORT%"),
                  "10.0.2.1:80|10.0.2.1:80|10.0.2.1|80");
    LG_EXPECT_STR(op("%UPSTREAM_LOCAL_ADDRESS%|%UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%|%UPSTREAM_LOCAL_PORT%"), "-|-|-");
    set_addr4(&info.upstream_local, "127.0.0.1", 40000);
    LG_EXPECT_STR(op("%UPSTREAM_LOCAL_ADDRESS%|%UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%|%UPSTREAM_LOCAL_PORT%"),
                  "127.0.0.1:40000|127.0.0.1|40000");
    LG_EXPECT_STR(op("%UPSTREAM_CLUSTER%|%ROUTE_NAME%|%REQUESTED_SERVER_NAME%|%PROTOCOL%"),
                  "backend|r1|locations.example|HTTP/2");
    LG_EXPECT_STR(op("%UPSTREAM_TRANSPORT_FAILURE_REASON%|%DOWNSTREAM_PEER_URI_SAN%"), "-|-");
    info.upstream_transport_failure_reason = "TLS error: certificate verify failed";
    info.downstream_peer_uri_san = "spiffe://cluster.local/ns/a/sa/b";
    LG_EXPECT_STR(op("%UPSTREAM_TRANSPORT_FAILURE_REASON%|%DOWNSTREAM_PEER_URI_SAN%"),
                  "TLS_error:_certificate_verify_failed|spiffe://cluster.local/ns/a/sa/b");
    LG_EXPECT_STR(op("%CONNECTION_ID%|%UPSTREAM_REQUEST_ATTEMPT_COUNT%|%STREAM_ID%"),
                  "42|1|cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2");
    LG_EXPECT_STR(op("%START_TIME%|%START_TIME(%s.%3f)%"), "2016-04-15T20:17:00.310Z|1460751420.310");
    LG_EXPECT_STR(op("%DURATION%|%REQUEST_DURATION%|%RESPONSE_DURATION%|%RESPONSE_TX_DURATION%"), "226|5|100|126");
    LG_EXPECT_STR(op("%RESPONSE_CODE%|%RESPONSE_CODE_DETAILS%|%BYTES_RECEIVED%|%BYTES_SENT%"), "204|via_upstream|154|0");
    LG_EXPECT_STR(op("%RESPONSE_FLAGS%|%RESPONSE_FLAGS_LONG%"), "-|-");
    lg_stream_info_set_flag(&info, LG_RF_NO_HEALTHY_UPSTREAM);
    lg_stream_info_set_flag(&info, LG_RF_RATELIMIT_SERVICE_ERROR);
    LG_EXPECT_STR(op("%RESPONSE_FLAGS%|%RESPONSE_FLAGS_LONG%"), "UH,RLSE|NoHealthyUpstream,RateLimitServiceError");
    info.response_code_details = "upstream_reset_before_response_started{connection failure}";
    LG_EXPECT_STR(op("%RESPONSE_CODE_DETAILS%"), "upstream_reset_before_response_started{connection_failure}");
    LG_EXPECT_STR(op("%RESPONSE_CODE_DETAILS(ALLOW_WHITESPACES)%"),
                  "upstream_reset_before_response_started{connection failure}");
    char host[256];
    gethostname(host, sizeof(host));
    host[sizeof(host) - 1] = '\0';
    LG_EXPECT_STR(op("%HOSTNAME%"), host);

    /* Headers and trailers, alternatives and truncation. */
    LG_EXPECT_STR(op("%REQ(:METHOD)% %REQ(:PATH)% %REQ(:AUTHORITY)% %REQ(USER-AGENT)%"),
                  "POST /api/v1/locations locations nsq2http");
    LG_EXPECT_STR(op("%REQ(X-NONE?USER-AGENT)%|%REQ(USER-AGENT):3%|%REQ(X-NONE)%"), "nsq2http|nsq|-");
    LG_EXPECT_STR(op("%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%|%RESP(x-none)%"), "100|-");
    LG_EXPECT_STR(op("%TRAILER(X-TRAILER)%|%TRAILER(x-none?x-trailer)%|%TRAILER(x-none)%|%TRAILER(x-trailer):1%"),
                  "t1|t1|-|t");

    /* Durations that are not known yet, and DURATION of a stream still running. */
    info.request_end_ns = info.upstream_response_start_ns = 0;
    LG_EXPECT_STR(op("%REQUEST_DURATION%|%RESPONSE_DURATION%|%RESPONSE_TX_DURATION%"), "-|-|-");
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    info.start_mono_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec - MS(50);
    info.end_ns = 0;
    LG_EXPECT(atoi(op("%DURATION%")) >= 50);

    /* RESPONSE_CODE of a stream without a response is 0 in access logs, "" in header values. */
    info.response_code = 0;
    LG_EXPECT_STR(op("%RESPONSE_CODE%"), "0");
    lg_header_formatter_t *f = lg_header_formatter_compile(H2O_STRLIT("%RESPONSE_CODE%"), 0, &err);
    lg_format_context_t ctx = {&info, NULL, NULL};
    LG_EXPECT(lg_header_formatter_format(f, &ctx, &pool).len == 0); /* header values keep "" */
    lg_header_formatter_free(f);

    /* Types for JSON. */
    static const struct {
        const char *text;
        int numeric;
    } types[] = {{"%DURATION%", 1},          {"%RESPONSE_CODE%", 1},      {"%BYTES_SENT%", 1},
                 {"%DOWNSTREAM_LOCAL_PORT%", 1}, {"%CONNECTION_ID%", 1},   {"%GRPC_STATUS(NUMBER)%", 1},
                 {"%GRPC_STATUS%", 0},       {"%START_TIME%", 0},         {"%UPSTREAM_HOST%", 0},
                 {"x%DURATION%", 0},         {"%DURATION%%DURATION%", 0}, {"200", 0}};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); ++i) {
        f = lg_header_formatter_compile(types[i].text, strlen(types[i].text), LG_FORMAT_ACCESS_LOG, &err);
        LG_EXPECT_INT(lg_header_formatter_is_numeric(f), types[i].numeric);
        lg_header_formatter_free(f);
    }
    LG_EXPECT_STR(op("%GRPC_STATUS(FOO)%"), "(error)");
    LG_EXPECT_CONTAINS(err.msg, "only supports CAMEL_STRING, SNAKE_STRING or NUMBER");
    LG_EXPECT_STR(op("%TRAILER%"), "(error)");
}

LG_TEST(test_grpc_status)
{
    setup();
    /* Not a gRPC request: no status. */
    LG_EXPECT_STR(op("%GRPC_STATUS%"), "-");
    lg_headers_set(&pool, &req.headers, LG_LIT("content-type"), LG_LIT("application/grpc+proto"));
    lg_headers_add(&pool, &trailers, LG_LIT("grpc-status"), LG_LIT("14"));
    LG_EXPECT_STR(op("%GRPC_STATUS%|%GRPC_STATUS(CAMEL_STRING)%|%GRPC_STATUS(SNAKE_STRING)%|%GRPC_STATUS(NUMBER)%|"
                     "%GRPC_STATUS_NUMBER%"),
                  "Unavailable|Unavailable|UNAVAILABLE|14|14");
    /* Trailers-only responses carry it in the headers. */
    lg_headers_remove(&trailers, H2O_STRLIT("grpc-status"));
    lg_headers_add(&pool, &resp.headers, LG_LIT("grpc-status"), LG_LIT("1"));
    LG_EXPECT_STR(op("%GRPC_STATUS%|%GRPC_STATUS(SNAKE_STRING)%"), "Canceled|CANCELLED");
    lg_headers_set(&pool, &resp.headers, LG_LIT("grpc-status"), LG_LIT("20"));
    LG_EXPECT_STR(op("%GRPC_STATUS%|%GRPC_STATUS(SNAKE_STRING)%"), "20|20");
    lg_headers_set(&pool, &resp.headers, LG_LIT("grpc-status"), LG_LIT("abc"));
    LG_EXPECT_STR(op("%GRPC_STATUS%"), "-1");
    /* No grpc-status: mapped from the HTTP status, as Envoy's httpToGrpcStatus. */
    lg_headers_remove(&resp.headers, H2O_STRLIT("grpc-status"));
    info.response_code = 503;
    LG_EXPECT_STR(op("%GRPC_STATUS%"), "Unavailable");
    info.response_code = 404;
    LG_EXPECT_STR(op("%GRPC_STATUS%"), "Unimplemented");
    info.response_code = 200;
    LG_EXPECT_STR(op("%GRPC_STATUS%"), "Unknown");
    info.response_code = 0;
    LG_EXPECT_STR(op("%GRPC_STATUS%"), "-");
    lg_headers_set(&pool, &req.headers, LG_LIT("content-type"), LG_LIT("application/grpcx"));
    info.response_code = 503;
    LG_EXPECT_STR(op("%GRPC_STATUS%"), "-");
}

/* ---- text formats -------------------------------------------------------------------------- */

LG_TEST(test_text_formats)
{
    setup();
    LG_EXPECT_STR(fmt_log("    text_format: \"%RESPONSE_CODE% %REQ(x-none)%\\n\"\n"), "204 -\n");
    LG_EXPECT_STR(fmt_log("    text_format_source: {inline_string: \"%PROTOCOL% %REQ(x-none)%|\"}\n"), "HTTP/2 -|");
    LG_EXPECT_STR(fmt_log("    text_format_source: {inline_string: \"[%REQ(x-none)%]\\n\"}\n"
                          "    omit_empty_values: true\n"),
                  "[]\n");
    LG_EXPECT_STR(fmt_log("    text_format_source: {inline_bytes: \"JVBST1RPQ09MJQo=\"}\n"), "HTTP/2\n");
    setenv("LG_AL_TEST_FORMAT", "env %BYTES_RECEIVED%\n", 1);
    LG_EXPECT_STR(fmt_log("    text_format_source: {environment_variable: LG_AL_TEST_FORMAT}\n"), "env 154\n");
    char fpath[160];
    snprintf(fpath, sizeof(fpath), "%s/format.txt", dir);
    FILE *fp = fopen(fpath, "w");
    fputs("file %UPSTREAM_CLUSTER%\n", fp);
    fclose(fp);
    char yaml[512];
    snprintf(yaml, sizeof(yaml), "    text_format_source: {filename: '%s'}\n", fpath);
    LG_EXPECT_STR(fmt_log(yaml), "file backend\n");
    /* The deprecated FileAccessLog.format; empty means the default format. */
    LG_EXPECT_STR(log_once("typed_config:\n"
                           "  '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n"
                           "  path: '@LOG@'\n"
                           "  format: \"%DURATION%ms\\n\"\n"),
                  "226ms\n");
    LG_EXPECT_CONTAINS(log_once("typed_config:\n"
                                "  '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n"
                                "  path: '@LOG@'\n"
                                "  format: ''\n"),
                       "] \"POST /api/v1/locations HTTP/2\" 204 - 154 0 226 100 ");
}

LG_TEST(test_stdout_logger)
{
    setup();
    fflush(stdout);
    int saved = dup(1);
    FILE *fp = fopen(logpath, "w");
    fclose(fp);
    int fd = open(logpath, O_WRONLY | O_APPEND);
    dup2(fd, 1);
    close(fd);
    lg_access_log_t *l = build("typed_config:\n"
                               "  '@type': type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog\n"
                               "  log_format: {text_format_source: {inline_string: \"out %RESPONSE_CODE%\\n\"}}\n");
    LG_EXPECT(l != NULL);
    LG_EXPECT_STR(lg_access_log_path(l), "/dev/stdout");
    const char *out = emit(l, 0);
    lg_access_log_free(l);
    dup2(saved, 1);
    close(saved);
    LG_EXPECT_STR(out, "out 204\n");
    l = build("typed_config:\n"
              "  '@type': type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog\n");
    LG_EXPECT(l != NULL && strcmp(lg_access_log_path(l), "/dev/stderr") == 0);
    lg_access_log_free(l);
}

/* ---- JSON ---------------------------------------------------------------------------------- */

/* Parses a JSON line back into a google.protobuf.Struct (FileAccessLog.json_format holds one). */
static Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog *parse_json(const char *line)
{
    Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog *m =
        (void *)lg_pb_new(&envoy__extensions__access_loggers__file__v3__file_access_log__descriptor);
    size_t len = strlen(line) + 32;
    char *doc = malloc(len);
    snprintf(doc, len, "json_format: %s", line);
    lg_error_t perr;
    if (lg_pb_from_yaml(&m->base, doc, strlen(doc), "line.json", NULL, &perr) != 0) {
        fprintf(stderr, "parse: %s\n", perr.msg);
        protobuf_c_message_free_unpacked(&m->base, NULL);
        m = NULL;
    }
    free(doc);
    return m;
}

static const Google__Protobuf__Value *field(const Google__Protobuf__Struct *st, const char *key)
{
    for (size_t i = 0; st != NULL && i < st->n_fields; ++i)
        if (strcmp(st->fields[i]->key, key) == 0)
            return st->fields[i]->value;
    return NULL;
}

static const char json_yaml[] = "    json_format:\n"
                                "      start: '%START_TIME%'\n"
                                "      method: '%REQ(:METHOD)%'\n"
                                "      code: '%RESPONSE_CODE%'\n"
                                "      duration: '%DURATION%'\n"
                                "      rx: '%BYTES_RECEIVED%'\n"
                                "      port: '%DOWNSTREAM_REMOTE_PORT%'\n"
                                "      flags: '%RESPONSE_FLAGS%'\n"
                                "      missing: '%REQ(x-none)%'\n"
                                "      mixed: 'rx=%BYTES_RECEIVED% none=%REQ(x-none)%'\n"
                                "      quote: '%REQ(x-quote)%'\n"
                                "      literal: 'constant'\n"
                                "      number: 1.5\n"
                                "      upstream:\n"
                                "        host: '%UPSTREAM_HOST%'\n"
                                "        cluster: '%UPSTREAM_CLUSTER%'\n"
                                "      list: ['%PROTOCOL%', '%DURATION%', '%REQ(x-none)%']\n";

LG_TEST(test_json_format)
{
    setup();
    lg_headers_add(&pool, &req.headers, LG_LIT("x-quote"), LG_LIT("a\"b\\c\x01 \xc3\xa9\xff"));
    const char *line = fmt_log(json_yaml);
    LG_EXPECT_STR(line, "{\"start\":\"2016-04-15T20:17:00.310Z\",\"method\":\"POST\",\"code\":204,\"duration\":226,"
                        "\"rx\":154,\"port\":5555,\"flags\":\"-\",\"missing\":null,\"mixed\":\"rx=154 none=-\","
                        "\"quote\":\"a\\\"b\\\\c\\u0001 \xc3\xa9\\u00ff\",\"literal\":\"constant\",\"number\":1.5,"
                        "\"upstream\":{\"host\":\"10.0.2.1:80\",\"cluster\":\"backend\"},"
                        "\"list\":[\"HTTP/2\",226,null]}\n");
    /* Parsed back: the types are Envoy's. */
    Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog *m = parse_json(line);
    LG_EXPECT(m != NULL);
    if (m != NULL) {
        const Google__Protobuf__Struct *st = m->json_format;
        const Google__Protobuf__Value *v = field(st, "code");
        LG_EXPECT(v != NULL && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE && v->number_value == 204);
        v = field(st, "duration");
        LG_EXPECT(v != NULL && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE && v->number_value == 226);
        v = field(st, "missing");
        LG_EXPECT(v != NULL && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_NULL_VALUE);
        v = field(st, "start");
        LG_EXPECT(v != NULL && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE &&
                  strcmp(v->string_value, "2016-04-15T20:17:00.310Z") == 0);
        v = field(st, "quote");
        LG_EXPECT(v != NULL && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE &&
                  strcmp(v->string_value, "a\"b\\c\x01 \xc3\xa9\xc3\xbf") == 0);
        v = field(st, "upstream");
        LG_EXPECT(v != NULL && v->kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE &&
                  strcmp(field(v->struct_value, "cluster")->string_value, "backend") == 0);
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }

    /* omit_empty_values drops nulls; mixed strings use "" for missing values. */
    char yaml[2048];
    snprintf(yaml, sizeof(yaml), "%s    omit_empty_values: true\n", json_yaml);
    LG_EXPECT_STR(fmt_log(yaml), "{\"start\":\"2016-04-15T20:17:00.310Z\",\"method\":\"POST\",\"code\":204,"
                                 "\"duration\":226,\"rx\":154,\"port\":5555,\"flags\":\"-\",\"mixed\":\"rx=154 none=\","
                                 "\"quote\":\"a\\\"b\\\\c\\u0001 \xc3\xa9\\u00ff\",\"literal\":\"constant\",\"number\":1.5,"
                                 "\"upstream\":{\"host\":\"10.0.2.1:80\",\"cluster\":\"backend\"},"
                                 "\"list\":[\"HTTP/2\",226]}\n");

    /* sort_properties. */
    LG_EXPECT_STR(fmt_log("    json_format: {b: '%RESPONSE_CODE%', a: '%PROTOCOL%', c: {z: '1', y: '2'}}\n"
                          "    json_format_options: {sort_properties: true}\n"),
                  "{\"a\":\"HTTP/2\",\"b\":204,\"c\":{\"y\":\"2\",\"z\":\"1\"}}\n");
}

LG_TEST(test_json_deprecated_fields)
{
    setup();
    /* FileAccessLog.json_format (deprecated): every value a string, missing values "-". */
    LG_EXPECT_STR(log_once("typed_config:\n"
                           "  '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n"
                           "  path: '@LOG@'\n"
                           "  json_format: {code: '%RESPONSE_CODE%', none: '%REQ(x-none)%'}\n"),
                  "{\"code\":\"204\",\"none\":\"-\"}\n");
    /* typed_json_format keeps types. */
    LG_EXPECT_STR(log_once("typed_config:\n"
                           "  '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n"
                           "  path: '@LOG@'\n"
                           "  typed_json_format: {code: '%RESPONSE_CODE%', none: '%REQ(x-none)%'}\n"),
                  "{\"code\":204,\"none\":null}\n");
}

/* ---- filters ------------------------------------------------------------------------------- */

static lg_access_log_t *filtered(const char *filter_yaml)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "typed_config:\n"
             "  '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n"
             "  path: '@LOG@'\n"
             "  log_format: {text_format_source: {inline_string: \"x\\n\"}}\n"
             "filter:\n%s",
             filter_yaml);
    return build(yaml);
}

/* 1 when the logger writes a record for the fixture stream. */
static int logged(lg_access_log_t *l)
{
    return strcmp(emit(l, 1), "x\n") == 0;
}

LG_TEST(test_filter_applies)
{
    setup();
    lg_access_log_t *l =
        filtered("  status_code_filter: {comparison: {op: GE, value: {default_value: 400, runtime_key: k}}}\n");
    LG_EXPECT(l != NULL && !logged(l));
    info.response_code = 503;
    LG_EXPECT(logged(l));
    lg_access_log_free(l);
}

/* ---- config ------------------------------------------------------------------------------- */

LG_TEST(test_config_errors)
{
    setup();
    /* Filter errors carry the logger's path (the details are access_log_filter_test.c's). */
    LG_EXPECT(filtered("  traceable_filter: {}\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "t.yaml:");
    LG_EXPECT_CONTAINS(err.msg, "access_log[0].filter.traceable_filter: this access log filter is not supported by legate");

    LG_EXPECT(build("name: x\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "access_log[0]: typed_config is required");
    LG_EXPECT(build("typed_config:\n"
                    "  '@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "access_log[0].typed_config: access logger type "
                                "\"envoy.extensions.filters.http.router.v3.Router\" is not supported by legate");
    LG_EXPECT(build("typed_config:\n"
                    "  '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n") == NULL);
    LG_EXPECT_CONTAINS(err.msg, "access_log[0].typed_config.path: value length must be at least 1 characters");
    LG_EXPECT_STR(fmt_log("    text_format_source: {inline_string: \"%NOPE%\"}\n"), "(error)");
    LG_EXPECT_CONTAINS(err.msg, "access_log[0].typed_config.log_format.text_format_source: Not supported field in "
                                "StreamInfo: NOPE");
    LG_EXPECT_STR(fmt_log("    json_format: {a: {b: true}}\n"), "(error)");
    LG_EXPECT_CONTAINS(err.msg, "access_log[0].typed_config.log_format.json_format[a][b]: Only string values, nested "
                                "structs, list values and number values are supported");
    LG_EXPECT_STR(fmt_log("    omit_empty_values: true\n"), "(error)");
    LG_EXPECT_CONTAINS(err.msg, "one of text_format, text_format_source or json_format is required");
    LG_EXPECT_STR(fmt_log("    text_format_source: {environment_variable: LG_AL_TEST_UNSET_VARIABLE}\n"), "(error)");
    LG_EXPECT_CONTAINS(err.msg, "Environment variable doesn't exist: LG_AL_TEST_UNSET_VARIABLE");
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "typed_config:\n"
             "  '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n"
             "  path: '%s/no/such/dir/x.log'\n",
             dir);
    LG_EXPECT(build(yaml) == NULL);
    LG_EXPECT_CONTAINS(err.msg, "access_log[0].typed_config: cannot open access log");

    /* lg_access_log_check (--mode validate) reports config errors but opens nothing. */
    char *text = with_path("typed_config:\n"
                           "  '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n"
                           "  path: '@LOG@.check'\n"
                           "  log_format: {text_format: '%NOPE%'}\n");
    Envoy__Config__Accesslog__V3__AccessLog *pb =
        (Envoy__Config__Accesslog__V3__AccessLog *)lg_pb_new(&envoy__config__accesslog__v3__access_log__descriptor);
    LG_EXPECT(lg_pb_from_yaml(&pb->base, text, strlen(text), "t.yaml", NULL, &err) == 0);
    lg_path_t path;
    lg_path_init(&path);
    LG_EXPECT_INT(lg_access_log_check(pb, NULL, &path, &err), -1);
    LG_EXPECT_CONTAINS(err.msg, "typed_config.log_format.text_format: Not supported field in StreamInfo: NOPE");
    protobuf_c_message_free_unpacked(&pb->base, NULL);
    free(text);
    text = with_path("typed_config:\n"
                     "  '@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n"
                     "  path: '@LOG@.check'\n");
    pb = (Envoy__Config__Accesslog__V3__AccessLog *)lg_pb_new(&envoy__config__accesslog__v3__access_log__descriptor);
    LG_EXPECT(lg_pb_from_yaml(&pb->base, text, strlen(text), "t.yaml", NULL, &err) == 0);
    LG_EXPECT_INT(lg_access_log_check(pb, NULL, &path, &err), 0);
    char check_path[160];
    snprintf(check_path, sizeof(check_path), "%s.check", logpath);
    LG_EXPECT(access(check_path, F_OK) != 0);
    protobuf_c_message_free_unpacked(&pb->base, NULL);
    free(text);
}

/* Occurrences of `needle` in file `path`. */
static int count_in_file(const char *path, const char *needle)
{
    char buf[8192];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    int k = 0;
    for (const char *p = buf; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        k++;
    return k;
}

/* Accepted, logs nothing, and warns once per process: every xDS push rebuilds every listener, so
 * a warning per build repeated on each push (go-control-plane's harness: 30 lines in 8 s). */
LG_TEST(test_grpc_logger_accepted)
{
    static const char grpc_logger[] =
        "name: envoy.access_loggers.http_grpc\n"
        "typed_config:\n"
        "  '@type': type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig\n"
        "  common_config:\n"
        "    log_name: echo\n"
        "    transport_api_version: V3\n"
        "    grpc_service: {envoy_grpc: {cluster_name: als_cluster}}\n";
    char proclog[160], msg[256];
    snprintf(proclog, sizeof(proclog), "%s/legate.log", dir);
    LG_EXPECT_INT(lg_log_set_path(proclog, msg, sizeof(msg)), 0);
    setup();
    for (int i = 0; i < 3; i++) {
        lg_access_log_t *l = build(grpc_logger);
        LG_EXPECT(l != NULL);
        LG_EXPECT(lg_access_log_path(l) == NULL);
        lg_access_log_emit(l, 0, &info, &req, &resp, NULL); /* logs nothing, does not crash */
        lg_access_log_free(l);
    }
    LG_EXPECT_INT(count_in_file(proclog, "HttpGrpcAccessLogConfig) is accepted but not implemented"), 1);
    LG_EXPECT_INT(count_in_file(proclog, "access_log[0].typed_config: the gRPC access log service"), 1);
}

int main(void)
{
    h2o_mem_init_pool(&pool);
    snprintf(dir, sizeof(dir), "/tmp/lg_al_XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(logpath, sizeof(logpath), "%s/access.log", dir);
    LG_RUN(test_default_format_is_envoys);
    LG_RUN(test_operators);
    LG_RUN(test_grpc_status);
    LG_RUN(test_text_formats);
    LG_RUN(test_stdout_logger);
    LG_RUN(test_json_format);
    LG_RUN(test_json_deprecated_fields);
    LG_RUN(test_filter_applies);
    LG_RUN(test_config_errors);
    LG_RUN(test_grpc_logger_accepted);
    lg_access_log_flush_all();
    h2o_mem_clear_pool(&pool);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return LG_TEST_END();
}
