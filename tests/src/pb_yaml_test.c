/*
 * Unit tests of the YAML/JSON -> protobuf-c converter (src/pb_yaml.c) and the JSON printer
 * (src/pb_json.c), on Envoy's Cluster message: it has every kind of field the converter handles
 * (scalars, enums, oneofs, Duration, wrappers, repeated messages, a map of Any, Struct metadata).
 */
#include <stdlib.h>
#include <string.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/extensions/upstreams/http/v3/http_protocol_options.pb-c.h"
#include "lg_test.h"
#include "pb_json.h"
#include "pb_wkt.h"
#include "pb_yaml.h"

typedef Envoy__Config__Cluster__V3__Cluster cluster_t;

static lg_error_t err;
static lg_srcmap_t map;

/* Converts text into a fresh Cluster; returns NULL on error (err holds the message). */
static cluster_t *load(const char *text)
{
    cluster_t *c = (cluster_t *)lg_pb_new(&envoy__config__cluster__v3__cluster__descriptor);
    err.msg[0] = '\0';
    lg_srcmap_dispose(&map);
    lg_srcmap_init(&map);
    if (lg_pb_from_yaml(&c->base, text, strlen(text), "t.yaml", &map, &err) != 0) {
        protobuf_c_message_free_unpacked(&c->base, NULL);
        return NULL;
    }
    return c;
}

static void drop(cluster_t *c)
{
    if (c != NULL)
        protobuf_c_message_free_unpacked(&c->base, NULL);
}

/* Expects text to fail with a message containing `want`. */
static void expect_error(const char *text, const char *want)
{
    cluster_t *c = load(text);
    LG_EXPECT(c == NULL);
    LG_EXPECT_CONTAINS(err.msg, want);
    drop(c);
}

LG_TEST(test_scalars_enums_durations)
{
    cluster_t *c = load("name: web\n"
                        "type: STRICT_DNS\n"
                        "lb_policy: LEAST_REQUEST\n"
                        "connect_timeout: 0.25s\n"
                        "per_connection_buffer_limit_bytes: 32768\n"
                        "respect_dns_ttl: true\n");
    LG_EXPECT(c != NULL);
    if (c == NULL)
        return;
    LG_EXPECT_STR(c->name, "web");
    LG_EXPECT_INT(c->cluster_discovery_type_case, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__CLUSTER_DISCOVERY_TYPE_TYPE);
    LG_EXPECT_INT(c->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__STRICT_DNS);
    LG_EXPECT_INT(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__LEAST_REQUEST);
    LG_EXPECT_INT(c->connect_timeout->seconds, 0);
    LG_EXPECT_INT(c->connect_timeout->nanos, 250000000);
    LG_EXPECT_INT(c->per_connection_buffer_limit_bytes->value, 32768);
    LG_EXPECT_INT(c->respect_dns_ttl, 1);
    drop(c);
}

LG_TEST(test_camel_case_and_duration_object_and_enum_number)
{
    cluster_t *c = load("{\"name\": \"x\", \"connectTimeout\": {\"seconds\": 2, \"nanos\": 5}, \"lbPolicy\": 3}");
    LG_EXPECT(c != NULL);
    if (c == NULL)
        return;
    LG_EXPECT_INT(c->connect_timeout->seconds, 2);
    LG_EXPECT_INT(c->connect_timeout->nanos, 5);
    LG_EXPECT_INT(c->lb_policy, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__LB_POLICY__RANDOM);
    drop(c);
}

LG_TEST(test_repeated_and_single_value_as_list)
{
    cluster_t *c = load("name: x\n"
                        "load_assignment:\n"
                        "  cluster_name: x\n"
                        "  endpoints:\n"
                        "    lb_endpoints:\n"
                        "    - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}\n"
                        "    - endpoint: {address: {socket_address: {address: 127.0.0.2, port_value: 8081}}}\n");
    LG_EXPECT(c != NULL);
    if (c == NULL)
        return;
    LG_EXPECT_INT(c->load_assignment->n_endpoints, 1); /* a mapping where a list is expected */
    LG_EXPECT_INT(c->load_assignment->endpoints[0]->n_lb_endpoints, 2);
    LG_EXPECT_INT(c->load_assignment->endpoints[0]->lb_endpoints[1]->endpoint->address->socket_address->port_value,
                  8081);
    drop(c);
}

LG_TEST(test_map_of_any_and_struct)
{
    cluster_t *c = load(
        "name: x\n"
        "metadata:\n"
        "  filter_metadata:\n"
        "    envoy.lb: {canary: true, weight: 1.5, tag: \"007\", none: null, list: [1, a]}\n"
        "typed_extension_protocol_options:\n"
        "  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
        "    \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n"
        "    explicit_http_config:\n"
        "      http2_protocol_options: {}\n");
    LG_EXPECT(c != NULL);
    if (c == NULL)
        return;
    LG_EXPECT_INT(c->n_typed_extension_protocol_options, 1);
    Google__Protobuf__Any *any = c->typed_extension_protocol_options[0]->value;
    LG_EXPECT_STR(any->type_url, "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions");
    Envoy__Extensions__Upstreams__Http__V3__HttpProtocolOptions *o =
        envoy__extensions__upstreams__http__v3__http_protocol_options__unpack(NULL, any->value.len, any->value.data);
    LG_EXPECT(o != NULL && o->explicit_http_config != NULL &&
              o->explicit_http_config->http2_protocol_options != NULL);
    if (o != NULL)
        envoy__extensions__upstreams__http__v3__http_protocol_options__free_unpacked(o, NULL);
    LG_EXPECT(lg_srcmap_get_any(&map, any) != NULL);

    Google__Protobuf__Struct *s = c->metadata->filter_metadata[0]->value;
    LG_EXPECT_INT(s->n_fields, 5);
    char *json = lg_pb_to_json(&c->metadata->base, 0);
    LG_EXPECT_STR(json, "{\"filter_metadata\":{\"envoy.lb\":{\"canary\":true,\"weight\":1.5,"
                        "\"tag\":\"007\",\"none\":null,\"list\":[1,\"a\"]}}}");
    free(json);
    drop(c);
}

LG_TEST(test_errors_name_path_and_line)
{
    expect_error("name: x\nconnect_timeout: 5x\n", "t.yaml:2: connect_timeout: invalid duration \"5x\"");
    expect_error("name: x\nlb_policy: FASTEST\n",
                 "t.yaml:2: lb_policy: invalid enum value \"FASTEST\" for envoy.config.cluster.v3.Cluster.LbPolicy");
    expect_error("name: x\nlb_polcy: RANDOM\n",
                 "t.yaml:2: unknown field \"lb_polcy\" in envoy.config.cluster.v3.Cluster (did you mean \"lb_policy\"?)");
    expect_error("name: x\nname: y\n", "t.yaml:2: name: duplicate key \"name\"");
    expect_error("name: x\ntype: STATIC\ncluster_type: {name: envoy.clusters.dns}\n",
                 "t.yaml:3: cluster_type: oneof \"cluster_discovery_type\": \"cluster_type\" and \"type\" are both set");
    expect_error("per_connection_buffer_limit_bytes: 4294967296\n",
                 "per_connection_buffer_limit_bytes: value 4294967296 out of range for uint32");
    expect_error("per_connection_buffer_limit_bytes: -1\n", "value -1 out of range for uint32");
    expect_error("respect_dns_ttl: maybe\n", "respect_dns_ttl: invalid boolean \"maybe\"");
    expect_error("name: [a]\n", "t.yaml:1: name: expected a scalar");
    expect_error("load_assignment: 5\n", "load_assignment: expected a mapping for envoy.config.endpoint.v3.ClusterLoadAssignment");
    expect_error("name: x\n  bad: indent\n", "t.yaml:2: YAML syntax error");
    expect_error("typed_extension_protocol_options:\n  a: {explicit_http_config: {}}\n",
                 "typed_extension_protocol_options[a]: missing \"@type\"");
    expect_error("load_assignment:\n  endpoints:\n  - lb_endpoints:\n    - endpoint: {address: {socket_address: {port_value: x}}}\n",
                 "t.yaml:4: load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: invalid integer \"x\"");
    expect_error("a: 1\n---\nb: 2\n", "more than one YAML document");
    /* Found by the fuzzer: the mapping form escaped the range check of the string form. */
    expect_error("connect_timeout: {seconds: 9223372036854375808}\n", "connect_timeout: invalid duration {seconds: 9223372036854375808, nanos: 0}");
    expect_error("connect_timeout: {seconds: 315576000001}\n", "connect_timeout: invalid duration {seconds: 315576000001, nanos: 0}");
}

LG_TEST(test_unknown_any_type_is_deferred_to_the_validator)
{
    /* An optional filter may name a type legate lacks: the converter records, the validator judges. */
    cluster_t *c = load("typed_extension_protocol_options:\n  a: {\"@type\": type.googleapis.com/no.Such, x: 1}\n");
    LG_EXPECT(c != NULL);
    LG_EXPECT_CONTAINS(lg_srcmap_unexcused_any(&map),
                       "t.yaml:2: typed_extension_protocol_options[a]: unknown type \"type.googleapis.com/no.Such\"");
    if (c != NULL)
        lg_srcmap_excuse_any(&map, c->typed_extension_protocol_options[0]->value);
    LG_EXPECT(lg_srcmap_unexcused_any(&map) == NULL);
    drop(c);
}

LG_TEST(test_merge_semantics)
{
    cluster_t *c = load("name: a\nconnect_timeout: 1s\nload_assignment: {endpoints: [{priority: 1}]}\n");
    LG_EXPECT(c != NULL);
    if (c == NULL)
        return;
    const char *over = "name: b\nload_assignment: {endpoints: [{priority: 2}]}\ntype: EDS\n";
    LG_EXPECT_INT(lg_pb_from_yaml(&c->base, over, strlen(over), "o.yaml", &map, &err), 0);
    LG_EXPECT_STR(c->name, "b");                        /* scalar replaced */
    LG_EXPECT_INT(c->connect_timeout->seconds, 1);      /* sub-message merged */
    LG_EXPECT_INT(c->load_assignment->n_endpoints, 2);  /* repeated appended */
    LG_EXPECT_INT(c->type, ENVOY__CONFIG__CLUSTER__V3__CLUSTER__DISCOVERY_TYPE__EDS);
    const char *doc;
    uint32_t line;
    LG_EXPECT(lg_srcmap_get(&map, c, 1, &doc, &line));
    LG_EXPECT_STR(doc, "o.yaml");
    drop(c);
}

LG_TEST(test_json_round_trip)
{
    const char *text = "name: rt\ntype: LOGICAL_DNS\nconnect_timeout: 1.5s\nlb_policy: MAGLEV\n"
                       "dns_refresh_rate: 0.000001s\nper_connection_buffer_limit_bytes: 0\n"
                       "load_assignment: {cluster_name: rt, endpoints: [{lb_endpoints: [{endpoint: "
                       "{address: {socket_address: {address: svc.local, port_value: 443}}}}]}]}\n";
    cluster_t *c = load(text);
    LG_EXPECT(c != NULL);
    if (c == NULL)
        return;
    char *json = lg_pb_to_json(&c->base, 2);
    LG_EXPECT_CONTAINS(json, "\"connect_timeout\": \"1.500s\"");
    LG_EXPECT_CONTAINS(json, "\"dns_refresh_rate\": \"0.000001s\"");
    LG_EXPECT_CONTAINS(json, "\"per_connection_buffer_limit_bytes\": 0"); /* wrappers keep zero */
    cluster_t *again = load(json);
    LG_EXPECT(again != NULL);
    if (again != NULL) {
        char *json2 = lg_pb_to_json(&again->base, 2);
        LG_EXPECT_STR(json2, json);
        free(json2);
    }
    free(json);
    drop(again);
    drop(c);
}

LG_TEST(test_alias_bomb_is_bounded)
{
    /* Nine levels of nine aliases: ~387 million nodes if expanded. */
    const char *bomb = "metadata:\n  filter_metadata:\n    x:\n"
                       "      a: &a [1,1,1,1,1,1,1,1,1]\n"
                       "      b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                       "      c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                       "      d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                       "      e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                       "      f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                       "      g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
                       "      h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
                       "      i: [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    expect_error(bomb, "document too deep or too large");
}

LG_TEST(test_wkt_text_forms)
{
    int64_t s;
    int32_t n;
    char buf[64];
    LG_EXPECT_INT(lg_pb_duration_parse("-1.5s", &s, &n), 0);
    LG_EXPECT_INT(s, -1);
    LG_EXPECT_INT(n, -500000000);
    lg_pb_duration_format(s, n, buf, sizeof(buf));
    LG_EXPECT_STR(buf, "-1.500s");
    LG_EXPECT_INT(lg_pb_duration_parse("1.0000000001s", &s, &n), -1);
    LG_EXPECT_INT(lg_pb_duration_parse("1", &s, &n), -1);
    LG_EXPECT_INT(lg_pb_duration_parse("s", &s, &n), -1);
    LG_EXPECT_INT(lg_pb_duration_parse(".5s", &s, &n), -1);
    LG_EXPECT_INT(lg_pb_timestamp_parse("2026-11-28T10:45:10.25+01:00", &s, &n), 0);
    lg_pb_timestamp_format(s, n, buf, sizeof(buf));
    LG_EXPECT_STR(buf, "2026-11-28T09:45:10.250Z");
    LG_EXPECT_INT(lg_pb_timestamp_parse("2026-02-31T00:00:00Z", &s, &n), -1);
    uint8_t *out;
    size_t len;
    LG_EXPECT_INT(lg_base64_decode("aGVsbG8", 7, &out, &len), 0);
    LG_EXPECT_INT(len, 5);
    LG_EXPECT(memcmp(out, "hello", 5) == 0);
    free(out);
    char *enc = lg_base64_encode((const uint8_t *)"hello", 5);
    LG_EXPECT_STR(enc, "aGVsbG8=");
    free(enc);
    LG_EXPECT_INT(lg_base64_decode("a$==", 4, &out, &len), -1);
}

int main(void)
{
    lg_srcmap_init(&map);
    LG_RUN(test_scalars_enums_durations);
    LG_RUN(test_camel_case_and_duration_object_and_enum_number);
    LG_RUN(test_repeated_and_single_value_as_list);
    LG_RUN(test_map_of_any_and_struct);
    LG_RUN(test_errors_name_path_and_line);
    LG_RUN(test_unknown_any_type_is_deferred_to_the_validator);
    LG_RUN(test_merge_semantics);
    LG_RUN(test_json_round_trip);
    LG_RUN(test_alias_bomb_is_bounded);
    LG_RUN(test_wkt_text_forms);
    lg_srcmap_dispose(&map);
    return LG_TEST_END();
}
