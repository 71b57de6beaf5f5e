/*
 * The xDS protocol state machine (xds/ads_stream.c) driven without gRPC: responses go in as bytes,
 * the requests it sends are decoded back and checked field by field against the rules of
 * research/envoy-features.md §3 (ACK/NACK contents, nonces, versions, wildcard, deletion, reconnect,
 * delta bookkeeping, NACK-loop holds, rate limits, initial fetch timeouts).
 */
#include <stdlib.h>
#include <string.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "lg_test.h"
#include "xds/xds_internal.h"

#define MAX_REC 64

typedef Envoy__Service__Discovery__V3__DiscoveryRequest sotw_req_t;
typedef Envoy__Service__Discovery__V3__DeltaDiscoveryRequest delta_req_t;

typedef struct st_rec_t {
    lg__xds_stream_t s;
    Envoy__Config__Core__V3__Node node;
    sotw_req_t *sotw[MAX_REC];
    delta_req_t *delta[MAX_REC];
    size_t n_req;
    /* the owner's answer */
    int reject;
    const char *reject_msg;
    /* the last update seen */
    size_t n_updates;
    lg_xds_type_t last_type;
    char *names[32], *removed[32], *versions[32];
    size_t n_names, n_removed;
    int last_full, last_delta;
    char *last_version_info;
    /* results, timeouts, holds */
    size_t accepted, rejected;
    char last_error[256];
    size_t n_timeouts, timeout_names;
    lg_xds_type_t timeout_type;
    size_t rate_limited;
} rec_t;

static void clear_update(rec_t *r)
{
    for (size_t i = 0; i < r->n_names; ++i) {
        free(r->names[i]);
        free(r->versions[i]);
    }
    for (size_t i = 0; i < r->n_removed; ++i)
        free(r->removed[i]);
    free(r->last_version_info);
    r->last_version_info = NULL;
    r->n_names = r->n_removed = 0;
}

static void h_send(lg__xds_stream_t *s, const uint8_t *buf, size_t len)
{
    rec_t *r = s->owner;
    if (r->n_req == MAX_REC)
        abort();
    if (s->delta)
        r->delta[r->n_req++] = envoy__service__discovery__v3__delta_discovery_request__unpack(NULL, len, buf);
    else
        r->sotw[r->n_req++] = envoy__service__discovery__v3__discovery_request__unpack(NULL, len, buf);
}

static int h_update(lg__xds_stream_t *s, lg_xds_update_t *u, lg_error_t *err)
{
    rec_t *r = s->owner;
    clear_update(r);
    ++r->n_updates;
    r->last_type = u->type;
    for (size_t i = 0; i < u->n && i < 32; ++i) {
        r->names[i] = strdup(u->names[i]);
        r->versions[i] = strdup(u->versions[i]);
        /* the message is really of the type, and its name is the one reported */
        LG_EXPECT(u->resources[i]->descriptor == lg__xds_type_descriptor(u->type));
        LG_EXPECT_STR(lg__xds_resource_name(u->type, u->resources[i]), u->names[i]);
    }
    r->n_names = u->n;
    for (size_t i = 0; i < u->n_removed && i < 32; ++i)
        r->removed[i] = strdup(u->removed[i]);
    r->n_removed = u->n_removed;
    r->last_full = u->is_full_state;
    r->last_delta = u->is_delta;
    r->last_version_info = strdup(u->version_info);
    if (r->reject)
        return lg_error_set(err, "%s", r->reject_msg);
    return 0;
}

static void h_result(lg__xds_stream_t *s, lg_xds_type_t type, int accepted, const char *version, const char *error)
{
    rec_t *r = s->owner;
    if (accepted) {
        ++r->accepted;
    } else {
        ++r->rejected;
        snprintf(r->last_error, sizeof(r->last_error), "%s", error);
    }
}

static void h_timeout(lg__xds_stream_t *s, lg_xds_type_t type, const char *const *names, size_t n)
{
    rec_t *r = s->owner;
    ++r->n_timeouts;
    r->timeout_names = n;
    r->timeout_type = type;
}

static void h_limited(lg__xds_stream_t *s)
{
    ++((rec_t *)s->owner)->rate_limited;
}

static const lg__xds_stream_hooks_t hooks = {h_send, h_update, h_result, h_timeout, h_limited};

static rec_t *rec_new(int delta, int node_once)
{
    rec_t *r = calloc(1, sizeof(*r));
    envoy__config__core__v3__node__init(&r->node);
    r->node.id = "node-1";
    r->node.cluster = "cluster-1";
    r->node.user_agent_name = "legate";
    lg__xds_stream_init(&r->s, &hooks, r, delta, &r->node, node_once);
    return r;
}

static void rec_reset_requests(rec_t *r)
{
    for (size_t i = 0; i < r->n_req; ++i) {
        if (r->sotw[i] != NULL)
            envoy__service__discovery__v3__discovery_request__free_unpacked(r->sotw[i], NULL);
        if (r->delta[i] != NULL)
            envoy__service__discovery__v3__delta_discovery_request__free_unpacked(r->delta[i], NULL);
        r->sotw[i] = NULL;
        r->delta[i] = NULL;
    }
    r->n_req = 0;
}

static void rec_free(rec_t *r)
{
    rec_reset_requests(r);
    clear_update(r);
    lg__xds_stream_dispose(&r->s);
    free(r);
}

/* ------------------------------------------------------------------------------------------- */
/* Building responses                                                                          */
/* ------------------------------------------------------------------------------------------- */

/* A resource of `type` named `name`, packed into an Any (type URL overridable). */
static Google__Protobuf__Any *make_any(lg_xds_type_t type, const char *name, const char *type_url)
{
    ProtobufCMessage *m;
    Envoy__Config__Cluster__V3__Cluster cl;
    Envoy__Config__Endpoint__V3__ClusterLoadAssignment la;
    Envoy__Config__Listener__V3__Listener li;
    Envoy__Config__Route__V3__RouteConfiguration rc;
    switch (type) {
    case LG_XDS_CDS:
        envoy__config__cluster__v3__cluster__init(&cl);
        cl.name = (char *)name;
        m = &cl.base;
        break;
    case LG_XDS_EDS:
        envoy__config__endpoint__v3__cluster_load_assignment__init(&la);
        la.cluster_name = (char *)name;
        m = &la.base;
        break;
    case LG_XDS_LDS:
        envoy__config__listener__v3__listener__init(&li);
        li.name = (char *)name;
        m = &li.base;
        break;
    default:
        envoy__config__route__v3__route_configuration__init(&rc);
        rc.name = (char *)name;
        m = &rc.base;
        break;
    }
    Google__Protobuf__Any *any = calloc(1, sizeof(*any));
    google__protobuf__any__init(any);
    any->type_url = strdup(type_url != NULL ? type_url : lg_xds_type_url(type));
    any->value.len = protobuf_c_message_get_packed_size(m);
    any->value.data = malloc(any->value.len + 1);
    protobuf_c_message_pack(m, any->value.data);
    return any;
}

static void free_any(Google__Protobuf__Any *any)
{
    free(any->type_url);
    free(any->value.data);
    free(any);
}

/* Feeds a SotW response of `type` with resources named by a NULL-terminated list. */
static int feed_sotw_urls(rec_t *r, const char *type_url, lg_xds_type_t type, const char *version, const char *nonce,
                          const char *const *names, const char *resource_url, uint64_t now)
{
    Envoy__Service__Discovery__V3__DiscoveryResponse resp;
    envoy__service__discovery__v3__discovery_response__init(&resp);
    Google__Protobuf__Any *anys[16];
    size_t n = 0;
    for (; names != NULL && names[n] != NULL; ++n)
        anys[n] = make_any(type, names[n], resource_url);
    resp.version_info = (char *)version;
    resp.nonce = (char *)nonce;
    resp.type_url = (char *)type_url;
    resp.resources = anys;
    resp.n_resources = n;
    size_t len = envoy__service__discovery__v3__discovery_response__get_packed_size(&resp);
    uint8_t *buf = malloc(len + 1);
    envoy__service__discovery__v3__discovery_response__pack(&resp, buf);
    int rc = lg__xds_stream_on_message(&r->s, buf, len, now);
    free(buf);
    for (size_t i = 0; i < n; ++i)
        free_any(anys[i]);
    return rc;
}

static int feed_sotw(rec_t *r, lg_xds_type_t type, const char *version, const char *nonce, const char *const *names,
                     uint64_t now)
{
    return feed_sotw_urls(r, lg_xds_type_url(type), type, version, nonce, names, NULL, now);
}

/* A delta response: resources "name" at version "v:<version>", and removals. */
static void feed_delta(rec_t *r, lg_xds_type_t type, const char *nonce, const char *const *names,
                       const char *const *removed, uint64_t now)
{
    Envoy__Service__Discovery__V3__DeltaDiscoveryResponse resp;
    envoy__service__discovery__v3__delta_discovery_response__init(&resp);
    Envoy__Service__Discovery__V3__Resource res[16], *resp_res[16];
    size_t n = 0;
    char versions[16][64];
    for (; names != NULL && names[n] != NULL; ++n) {
        envoy__service__discovery__v3__resource__init(&res[n]);
        res[n].name = (char *)names[n];
        snprintf(versions[n], sizeof(versions[n]), "v-%s-%s", names[n], nonce);
        res[n].version = versions[n];
        res[n].resource = make_any(type, names[n], NULL);
        resp_res[n] = &res[n];
    }
    size_t nr = 0;
    for (; removed != NULL && removed[nr] != NULL; ++nr)
        ;
    resp.type_url = (char *)lg_xds_type_url(type);
    resp.nonce = (char *)nonce;
    resp.system_version_info = "sys";
    resp.resources = resp_res;
    resp.n_resources = n;
    resp.removed_resources = (char **)removed;
    resp.n_removed_resources = nr;
    size_t len = envoy__service__discovery__v3__delta_discovery_response__get_packed_size(&resp);
    uint8_t *buf = malloc(len + 1);
    envoy__service__discovery__v3__delta_discovery_response__pack(&resp, buf);
    LG_EXPECT_INT(lg__xds_stream_on_message(&r->s, buf, len, now), 0);
    free(buf);
    for (size_t i = 0; i < n; ++i)
        free_any(res[i].resource);
}

static int has_name(char **v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; ++i)
        if (strcmp(v[i], name) == 0)
            return 1;
    return 0;
}

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ------------------------------------------------------------------------------------------- */
/* State of the world                                                                          */
/* ------------------------------------------------------------------------------------------- */

LG_TEST(sotw_first_requests_carry_node_and_wildcard)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_LDS, 1, 15000, 0);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    LG_EXPECT_INT(r->n_req, 0); /* nothing goes out before the call is up */
    lg__xds_stream_opened(&r->s, 0);
    LG_EXPECT_INT(r->n_req, 2);
    /* clusters before listeners; node only in the first request of the stream */
    LG_EXPECT_STR(r->sotw[0]->type_url, LG_XDS_CLUSTER_TYPE_URL);
    LG_EXPECT(r->sotw[0]->node != NULL && strcmp(r->sotw[0]->node->id, "node-1") == 0);
    LG_EXPECT_STR(r->sotw[0]->node->user_agent_name, "legate");
    LG_EXPECT_INT(r->sotw[0]->n_resource_names, 0);
    LG_EXPECT_STR(r->sotw[0]->version_info, "");
    LG_EXPECT_STR(r->sotw[0]->response_nonce, "");
    LG_EXPECT(r->sotw[0]->error_detail == NULL);
    LG_EXPECT_STR(r->sotw[1]->type_url, LG_XDS_LISTENER_TYPE_URL);
    LG_EXPECT(r->sotw[1]->node == NULL);
    rec_free(r);

    /* Without set_node_on_first_message_only every request has the node. */
    r = rec_new(0, 0);
    lg__xds_stream_add_type(&r->s, LG_XDS_LDS, 1, 15000, 0);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    lg__xds_stream_opened(&r->s, 0);
    LG_EXPECT_INT(r->n_req, 2);
    LG_EXPECT(r->sotw[0]->node != NULL && r->sotw[1]->node != NULL);
    rec_free(r);
}

LG_TEST(sotw_ack_carries_version_and_nonce)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    lg__xds_stream_opened(&r->s, 0);
    rec_reset_requests(r);
    LG_EXPECT_INT(feed_sotw(r, LG_XDS_CDS, "v1", "n1", NAMES("a", "b"), 10), 0);
    LG_EXPECT_INT(r->n_updates, 1);
    LG_EXPECT_INT(r->n_names, 2);
    LG_EXPECT(r->last_full);
    LG_EXPECT_STR(r->versions[0], "v1");
    LG_EXPECT_STR(r->last_version_info, "v1");
    LG_EXPECT_INT(r->accepted, 1);
    LG_EXPECT_INT(r->n_req, 1);
    LG_EXPECT_STR(r->sotw[0]->version_info, "v1");
    LG_EXPECT_STR(r->sotw[0]->response_nonce, "n1");
    LG_EXPECT(r->sotw[0]->error_detail == NULL);
    LG_EXPECT(r->sotw[0]->node == NULL);
    /* A response that changes nothing is ACKed too (rule 1). */
    rec_reset_requests(r);
    feed_sotw(r, LG_XDS_CDS, "v1", "n2", NAMES("a", "b"), 20);
    LG_EXPECT_INT(r->n_req, 1);
    LG_EXPECT_STR(r->sotw[0]->response_nonce, "n2");
    rec_free(r);
}

LG_TEST(sotw_nack_keeps_previous_version)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_LDS, 1, 15000, 0);
    lg__xds_stream_opened(&r->s, 0);
    feed_sotw(r, LG_XDS_LDS, "v1", "n1", NAMES("l1"), 10);
    rec_reset_requests(r);
    r->reject = 1;
    r->reject_msg = "listener \"l2\": filter_chains[0]: bad";
    feed_sotw(r, LG_XDS_LDS, "v2", "n2", NAMES("l1", "l2"), 20);
    LG_EXPECT_INT(r->n_req, 1);
    sotw_req_t *q = r->sotw[0];
    LG_EXPECT_STR(q->version_info, "v1");
    LG_EXPECT_STR(q->response_nonce, "n2");
    LG_EXPECT(q->error_detail != NULL);
    LG_EXPECT_INT(q->error_detail->code, 3);
    LG_EXPECT_STR(q->error_detail->message, "listener \"l2\": filter_chains[0]: bad");
    LG_EXPECT_INT(r->rejected, 1);
    /* the next good one is ACKed with its version, and error_detail is gone */
    r->reject = 0;
    rec_reset_requests(r);
    feed_sotw(r, LG_XDS_LDS, "v3", "n3", NAMES("l1"), 30);
    LG_EXPECT_STR(r->sotw[0]->version_info, "v3");
    LG_EXPECT(r->sotw[0]->error_detail == NULL);
    /* removal was computed against the last *accepted* set ({l1}), not the rejected one */
    LG_EXPECT_INT(r->n_removed, 0);
    rec_free(r);
}

LG_TEST(sotw_lds_cds_absent_means_removed)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    lg__xds_stream_opened(&r->s, 0);
    feed_sotw(r, LG_XDS_CDS, "v1", "n1", NAMES("a", "b", "c"), 1);
    LG_EXPECT_INT(r->n_removed, 0);
    feed_sotw(r, LG_XDS_CDS, "v2", "n2", NAMES("b"), 2);
    LG_EXPECT_INT(r->n_names, 1);
    LG_EXPECT_INT(r->n_removed, 2);
    LG_EXPECT(has_name(r->removed, r->n_removed, "a") && has_name(r->removed, r->n_removed, "c"));
    /* an empty response deletes everything */
    feed_sotw(r, LG_XDS_CDS, "v3", "n3", NULL, 3);
    LG_EXPECT_INT(r->n_names, 0);
    LG_EXPECT_INT(r->n_removed, 1);
    LG_EXPECT_STR(r->removed[0], "b");
    rec_free(r);
}

LG_TEST(sotw_rds_eds_absent_means_unchanged_and_unrequested_ignored)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_opened(&r->s, 0);
    lg__xds_stream_set_names(&r->s, LG_XDS_EDS, NAMES("x", "y"), NULL, 2, 0);
    lg__xds_stream_flush(&r->s, 0);
    LG_EXPECT_INT(r->n_req, 1);
    LG_EXPECT_INT(r->sotw[0]->n_resource_names, 2);
    LG_EXPECT_STR(r->sotw[0]->resource_names[0], "x");
    LG_EXPECT_STR(r->sotw[0]->resource_names[1], "y");
    rec_reset_requests(r);
    feed_sotw(r, LG_XDS_EDS, "1", "n1", NAMES("x", "z"), 1);
    LG_EXPECT_INT(r->n_updates, 1);
    LG_EXPECT_INT(r->n_names, 1); /* z was not asked for */
    LG_EXPECT_STR(r->names[0], "x");
    LG_EXPECT_INT(r->n_removed, 0);
    LG_EXPECT(!r->last_full);
    /* the ACK still lists the whole subscription */
    LG_EXPECT_INT(r->sotw[0]->n_resource_names, 2);
    rec_free(r);
}

LG_TEST(sotw_bad_resources_are_nacked_before_the_owner_sees_them)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    lg__xds_stream_opened(&r->s, 0);
    rec_reset_requests(r);
    /* a listener inside a CDS response */
    feed_sotw_urls(r, LG_XDS_CLUSTER_TYPE_URL, LG_XDS_CDS, "v1", "n1", NAMES("a"), LG_XDS_LISTENER_TYPE_URL, 1);
    LG_EXPECT_INT(r->n_updates, 0);
    LG_EXPECT_INT(r->n_req, 1);
    LG_EXPECT(r->sotw[0]->error_detail != NULL);
    LG_EXPECT_CONTAINS(r->sotw[0]->error_detail->message, "resources[0]");
    LG_EXPECT_CONTAINS(r->sotw[0]->error_detail->message, "does not match");
    LG_EXPECT_STR(r->sotw[0]->version_info, "");
    LG_EXPECT_STR(r->sotw[0]->response_nonce, "n1");
    /* duplicate names */
    rec_reset_requests(r);
    feed_sotw(r, LG_XDS_CDS, "v2", "n2", NAMES("a", "b", "a"), 2);
    LG_EXPECT_INT(r->n_updates, 0);
    LG_EXPECT_CONTAINS(r->sotw[0]->error_detail->message, "duplicate resource name \"a\"");
    LG_EXPECT_INT(r->rejected, 2);
    /* a resource without a name */
    rec_reset_requests(r);
    feed_sotw(r, LG_XDS_CDS, "v3", "n3", NAMES(""), 3);
    LG_EXPECT_CONTAINS(r->sotw[0]->error_detail->message, "no name");
    rec_free(r);
}

LG_TEST(sotw_resource_wrapper_is_unwrapped)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    lg__xds_stream_opened(&r->s, 0);
    Envoy__Service__Discovery__V3__Resource w;
    envoy__service__discovery__v3__resource__init(&w);
    w.name = "wrapped";
    w.version = "9";
    w.resource = make_any(LG_XDS_CDS, "wrapped", NULL);
    Google__Protobuf__Any outer;
    google__protobuf__any__init(&outer);
    outer.type_url = "type.googleapis.com/envoy.service.discovery.v3.Resource";
    outer.value.len = envoy__service__discovery__v3__resource__get_packed_size(&w);
    outer.value.data = malloc(outer.value.len);
    envoy__service__discovery__v3__resource__pack(&w, outer.value.data);
    Google__Protobuf__Any *anys[1] = {&outer};
    Envoy__Service__Discovery__V3__DiscoveryResponse resp;
    envoy__service__discovery__v3__discovery_response__init(&resp);
    resp.type_url = LG_XDS_CLUSTER_TYPE_URL;
    resp.version_info = "v1";
    resp.nonce = "n1";
    resp.resources = anys;
    resp.n_resources = 1;
    size_t len = envoy__service__discovery__v3__discovery_response__get_packed_size(&resp);
    uint8_t *buf = malloc(len);
    envoy__service__discovery__v3__discovery_response__pack(&resp, buf);
    LG_EXPECT_INT(lg__xds_stream_on_message(&r->s, buf, len, 1), 0);
    LG_EXPECT_INT(r->n_updates, 1);
    LG_EXPECT_INT(r->n_names, 1);
    LG_EXPECT_STR(r->names[0], "wrapped");
    free(buf);
    free(outer.value.data);
    free_any(w.resource);
    rec_free(r);
}

LG_TEST(sotw_name_changes_are_batched_with_latest_nonce)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    lg__xds_stream_opened(&r->s, 0);
    lg__xds_stream_set_names(&r->s, LG_XDS_RDS, NAMES("r1"), NULL, 1, 0);
    lg__xds_stream_flush(&r->s, 0);
    feed_sotw(r, LG_XDS_RDS, "7", "rn1", NAMES("r1"), 1);
    rec_reset_requests(r);
    /* several changes before a flush go out as one request with the whole set */
    lg__xds_stream_set_names(&r->s, LG_XDS_RDS, NAMES("r1", "r2"), NULL, 2, 2);
    lg__xds_stream_set_names(&r->s, LG_XDS_RDS, NAMES("r1", "r2", "r3"), NULL, 3, 2);
    LG_EXPECT_INT(r->n_req, 0);
    lg__xds_stream_flush(&r->s, 2);
    LG_EXPECT_INT(r->n_req, 1);
    LG_EXPECT_INT(r->sotw[0]->n_resource_names, 3);
    LG_EXPECT_STR(r->sotw[0]->version_info, "7");
    LG_EXPECT_STR(r->sotw[0]->response_nonce, "rn1"); /* rule 13: never a stale nonce */
    /* setting the same set again sends nothing */
    rec_reset_requests(r);
    lg__xds_stream_set_names(&r->s, LG_XDS_RDS, NAMES("r3", "r2", "r1"), NULL, 3, 3);
    lg__xds_stream_flush(&r->s, 3);
    LG_EXPECT_INT(r->n_req, 0);
    /* after explicit names, an empty set is sent as an empty list ("none") */
    lg__xds_stream_set_names(&r->s, LG_XDS_RDS, NULL, NULL, 0, 4);
    lg__xds_stream_flush(&r->s, 4);
    LG_EXPECT_INT(r->n_req, 1);
    LG_EXPECT_STR(r->sotw[0]->type_url, LG_XDS_ROUTE_TYPE_URL);
    LG_EXPECT_INT(r->sotw[0]->n_resource_names, 0);
    rec_free(r);
}

LG_TEST(sotw_empty_child_set_is_never_sent_first)
{
    /* An empty list as the first request would read as the legacy wildcard (rule 7). */
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    lg__xds_stream_set_names(&r->s, LG_XDS_EDS, NAMES("e1"), NULL, 1, 0);
    lg__xds_stream_set_names(&r->s, LG_XDS_EDS, NULL, NULL, 0, 0);
    lg__xds_stream_opened(&r->s, 0);
    LG_EXPECT_INT(r->n_req, 1);
    LG_EXPECT_STR(r->sotw[0]->type_url, LG_XDS_CLUSTER_TYPE_URL);
    rec_free(r);
}

LG_TEST(sotw_reconnect_resends_versions_and_names_with_fresh_nonces)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    lg__xds_stream_opened(&r->s, 0);
    lg__xds_stream_set_names(&r->s, LG_XDS_EDS, NAMES("e1", "e2"), NULL, 2, 0);
    lg__xds_stream_flush(&r->s, 0);
    feed_sotw(r, LG_XDS_CDS, "c5", "n1", NAMES("e1", "e2"), 1);
    feed_sotw(r, LG_XDS_EDS, "e9", "n2", NAMES("e1"), 2);
    lg__xds_stream_closed(&r->s);
    rec_reset_requests(r);
    /* nothing goes out while the stream is down */
    lg__xds_stream_set_names(&r->s, LG_XDS_EDS, NAMES("e1", "e2", "e3"), NULL, 3, 3);
    lg__xds_stream_flush(&r->s, 3);
    LG_EXPECT_INT(r->n_req, 0);
    lg__xds_stream_opened(&r->s, 4);
    LG_EXPECT_INT(r->n_req, 2);
    LG_EXPECT_STR(r->sotw[0]->type_url, LG_XDS_CLUSTER_TYPE_URL);
    LG_EXPECT(r->sotw[0]->node != NULL);
    LG_EXPECT_STR(r->sotw[0]->version_info, "c5");
    LG_EXPECT_STR(r->sotw[0]->response_nonce, "");
    LG_EXPECT_STR(r->sotw[1]->type_url, LG_XDS_ENDPOINT_TYPE_URL);
    LG_EXPECT(r->sotw[1]->node == NULL);
    LG_EXPECT_STR(r->sotw[1]->version_info, "e9");
    LG_EXPECT_STR(r->sotw[1]->response_nonce, "");
    LG_EXPECT_INT(r->sotw[1]->n_resource_names, 3);
    rec_free(r);
}

LG_TEST(sotw_pending_nack_is_dropped_by_a_new_stream)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_LDS, 1, 15000, 0);
    lg__xds_stream_opened(&r->s, 0);
    feed_sotw(r, LG_XDS_LDS, "v1", "n1", NAMES("a"), 1);
    r->reject = 1;
    r->reject_msg = "no";
    r->s.open = 0; /* the answer cannot go out: the call just failed */
    feed_sotw(r, LG_XDS_LDS, "v2", "n2", NAMES("a", "b"), 2);
    lg__xds_stream_closed(&r->s);
    rec_reset_requests(r);
    lg__xds_stream_opened(&r->s, 3);
    LG_EXPECT_INT(r->n_req, 1);
    LG_EXPECT_STR(r->sotw[0]->version_info, "v1");
    LG_EXPECT_STR(r->sotw[0]->response_nonce, "");
    LG_EXPECT(r->sotw[0]->error_detail == NULL);
    rec_free(r);
}

LG_TEST(sotw_response_for_unsubscribed_type_is_ignored)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    lg__xds_stream_opened(&r->s, 0);
    rec_reset_requests(r);
    feed_sotw(r, LG_XDS_LDS, "v1", "n1", NAMES("a"), 1);
    feed_sotw_urls(r, "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig", LG_XDS_LDS, "v1", "n2",
                   NAMES("a"), NULL, 1);
    LG_EXPECT_INT(r->n_updates, 0);
    LG_EXPECT_INT(r->n_req, 0);
    /* bytes that are no response at all are the owner's to handle (restart the stream) */
    LG_EXPECT_INT(lg__xds_stream_on_message(&r->s, (const uint8_t *)"\xff\xff\xff", 3, 2), -1);
    rec_free(r);
}

LG_TEST(nack_loop_is_held_back)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    lg__xds_stream_opened(&r->s, 0);
    r->reject = 1;
    r->reject_msg = "bad cluster";
    rec_reset_requests(r);
    uint64_t t = 1000;
    /* first rejection: answered at once */
    feed_sotw(r, LG_XDS_CDS, "v1", "n1", NAMES("a"), t);
    LG_EXPECT_INT(r->n_req, 1);
    LG_EXPECT_INT(r->rate_limited, 0);
    /* the server re-sends the same thing at once: the NACK waits 500 ms */
    feed_sotw(r, LG_XDS_CDS, "v1", "n2", NAMES("a"), t + 1);
    LG_EXPECT_INT(r->n_req, 1);
    LG_EXPECT_INT(r->rate_limited, 1);
    LG_EXPECT_INT(lg__xds_stream_next_wakeup(&r->s), t + 1 + 500);
    lg__xds_stream_tick(&r->s, t + 400);
    LG_EXPECT_INT(r->n_req, 1);
    lg__xds_stream_tick(&r->s, t + 501);
    LG_EXPECT_INT(r->n_req, 2);
    LG_EXPECT_STR(r->sotw[1]->response_nonce, "n2");
    LG_EXPECT(r->sotw[1]->error_detail != NULL);
    /* again: 1 s, then 2 s ... up to 10 s */
    feed_sotw(r, LG_XDS_CDS, "v1", "n3", NAMES("a"), t + 502);
    LG_EXPECT_INT(lg__xds_stream_next_wakeup(&r->s), t + 502 + 1000);
    lg__xds_stream_tick(&r->s, t + 1502);
    LG_EXPECT_INT(r->n_req, 3);
    for (int i = 0; i < 8; ++i) {
        uint64_t at = t + 10000 * (uint64_t)(i + 2);
        feed_sotw(r, LG_XDS_CDS, "v1", "nx", NAMES("a"), at);
        lg__xds_stream_tick(&r->s, lg__xds_stream_next_wakeup(&r->s));
    }
    feed_sotw(r, LG_XDS_CDS, "v1", "ny", NAMES("a"), 500000);
    LG_EXPECT_INT(lg__xds_stream_next_wakeup(&r->s), 500000 + LG__XDS_NACK_HOLD_MAX_MS);
    /* the same resources in another order are the same update (servers iterate hash maps) */
    feed_sotw(r, LG_XDS_CDS, "v1", "o1", NAMES("a", "b"), 600000);
    lg__xds_stream_tick(&r->s, 700000);
    size_t before = r->n_req;
    feed_sotw(r, LG_XDS_CDS, "v1", "o2", NAMES("b", "a"), 700001);
    LG_EXPECT_INT(r->n_req, before);
    LG_EXPECT_INT(lg__xds_stream_next_wakeup(&r->s), 700001 + LG__XDS_NACK_HOLD_BASE_MS);
    /* a different response is answered at once, and the streak ends */
    rec_reset_requests(r);
    feed_sotw(r, LG_XDS_CDS, "v2", "nz", NAMES("a"), 700002);
    LG_EXPECT_INT(r->n_req, 1);
    LG_EXPECT_STR(r->sotw[0]->response_nonce, "nz");
    rec_free(r);
}

LG_TEST(rate_limit_settings_pace_requests)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_set_rate_limit(&r->s, 2, 1, 0);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    lg__xds_stream_add_type(&r->s, LG_XDS_LDS, 1, 15000, 0);
    lg__xds_stream_set_names(&r->s, LG_XDS_RDS, NAMES("r"), NULL, 1, 0);
    lg__xds_stream_opened(&r->s, 0);
    LG_EXPECT_INT(r->n_req, 2);
    LG_EXPECT_INT(r->rate_limited, 1);
    uint64_t w = lg__xds_stream_next_wakeup(&r->s);
    LG_EXPECT(w > 900 && w <= 1001);
    lg__xds_stream_tick(&r->s, 500);
    LG_EXPECT_INT(r->n_req, 2);
    lg__xds_stream_tick(&r->s, 1001);
    LG_EXPECT_INT(r->n_req, 3);
    LG_EXPECT_STR(r->sotw[2]->type_url, LG_XDS_ROUTE_TYPE_URL);
    rec_free(r);
}

LG_TEST(initial_fetch_timeouts)
{
    rec_t *r = rec_new(0, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_LDS, 1, 15000, 0);
    uint64_t to[3] = {1000, 1000, 0};
    lg__xds_stream_set_names(&r->s, LG_XDS_EDS, NAMES("e1", "e2", "e3"), to, 3, 0);
    lg__xds_stream_opened(&r->s, 0);
    feed_sotw(r, LG_XDS_EDS, "1", "n1", NAMES("e1"), 10);
    LG_EXPECT_INT(lg__xds_stream_next_wakeup(&r->s), 1000);
    lg__xds_stream_tick(&r->s, 999);
    LG_EXPECT_INT(r->n_timeouts, 0);
    lg__xds_stream_tick(&r->s, 1000);
    LG_EXPECT_INT(r->n_timeouts, 1);
    LG_EXPECT_INT(r->timeout_type, LG_XDS_EDS);
    LG_EXPECT_INT(r->timeout_names, 1); /* e2: e1 answered, e3 waits forever */
    lg__xds_stream_tick(&r->s, 2000);
    LG_EXPECT_INT(r->n_timeouts, 1); /* reported once */
    /* the wildcard LDS without any response */
    lg__xds_stream_tick(&r->s, 15000);
    LG_EXPECT_INT(r->n_timeouts, 2);
    LG_EXPECT_INT(r->timeout_type, LG_XDS_LDS);
    LG_EXPECT_INT(r->timeout_names, 0);
    LG_EXPECT_INT(lg__xds_stream_next_wakeup(&r->s), UINT64_MAX);
    rec_free(r);
}

/* ------------------------------------------------------------------------------------------- */
/* Delta                                                                                       */
/* ------------------------------------------------------------------------------------------- */

LG_TEST(delta_first_request_and_acks)
{
    rec_t *r = rec_new(1, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    lg__xds_stream_set_names(&r->s, LG_XDS_EDS, NAMES("a", "b"), NULL, 2, 0);
    lg__xds_stream_opened(&r->s, 0);
    LG_EXPECT_INT(r->n_req, 2);
    delta_req_t *q = r->delta[0];
    LG_EXPECT_STR(q->type_url, LG_XDS_CLUSTER_TYPE_URL);
    LG_EXPECT(q->node != NULL);
    LG_EXPECT_INT(q->n_resource_names_subscribe, 0); /* wildcard */
    LG_EXPECT_STR(q->response_nonce, "");
    q = r->delta[1];
    LG_EXPECT(q->node == NULL);
    LG_EXPECT_INT(q->n_resource_names_subscribe, 2);
    LG_EXPECT_INT(q->n_initial_resource_versions, 0);
    rec_reset_requests(r);

    feed_delta(r, LG_XDS_EDS, "d1", NAMES("a"), NULL, 1);
    LG_EXPECT_INT(r->n_updates, 1);
    LG_EXPECT(r->last_delta);
    LG_EXPECT_STR(r->versions[0], "v-a-d1");
    LG_EXPECT_INT(r->n_req, 1);
    q = r->delta[0];
    LG_EXPECT_STR(q->response_nonce, "d1");
    LG_EXPECT(q->error_detail == NULL);
    LG_EXPECT_INT(q->n_resource_names_subscribe, 0);
    rec_reset_requests(r);

    /* subscription changes carry only the difference and no nonce */
    lg__xds_stream_set_names(&r->s, LG_XDS_EDS, NAMES("a", "c"), NULL, 2, 2);
    lg__xds_stream_flush(&r->s, 2);
    LG_EXPECT_INT(r->n_req, 1);
    q = r->delta[0];
    LG_EXPECT_INT(q->n_resource_names_subscribe, 1);
    LG_EXPECT_STR(q->resource_names_subscribe[0], "c");
    LG_EXPECT_INT(q->n_resource_names_unsubscribe, 1);
    LG_EXPECT_STR(q->resource_names_unsubscribe[0], "b");
    LG_EXPECT_STR(q->response_nonce, "");
    rec_reset_requests(r);

    /* a NACK names the nonce and says why */
    r->reject = 1;
    r->reject_msg = "endpoint c: bad port";
    feed_delta(r, LG_XDS_EDS, "d2", NAMES("c"), NULL, 3);
    q = r->delta[0];
    LG_EXPECT_STR(q->response_nonce, "d2");
    LG_EXPECT(q->error_detail != NULL && q->error_detail->code == 3);
    LG_EXPECT_STR(q->error_detail->message, "endpoint c: bad port");
    rec_free(r);
}

LG_TEST(delta_removals_and_reconnect_versions)
{
    rec_t *r = rec_new(1, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_CDS, 1, 15000, 0);
    lg__xds_stream_opened(&r->s, 0);
    feed_delta(r, LG_XDS_CDS, "d1", NAMES("a", "b", "c"), NULL, 1);
    feed_delta(r, LG_XDS_CDS, "d2", NAMES("a"), NAMES("b", "zz"), 2);
    LG_EXPECT_INT(r->n_names, 1);
    LG_EXPECT_INT(r->n_removed, 1); /* zz was never held */
    LG_EXPECT_STR(r->removed[0], "b");
    lg__xds_stream_closed(&r->s);
    rec_reset_requests(r);
    lg__xds_stream_opened(&r->s, 3);
    LG_EXPECT_INT(r->n_req, 1);
    delta_req_t *q = r->delta[0];
    LG_EXPECT(q->node != NULL);
    LG_EXPECT_STR(q->response_nonce, "");
    LG_EXPECT_INT(q->n_initial_resource_versions, 2);
    int seen_a = 0, seen_c = 0;
    for (size_t i = 0; i < q->n_initial_resource_versions; ++i) {
        if (strcmp(q->initial_resource_versions[i]->key, "a") == 0)
            seen_a = strcmp(q->initial_resource_versions[i]->value, "v-a-d2") == 0;
        if (strcmp(q->initial_resource_versions[i]->key, "c") == 0)
            seen_c = strcmp(q->initial_resource_versions[i]->value, "v-c-d1") == 0;
    }
    LG_EXPECT(seen_a && seen_c);
    rec_free(r);
}

LG_TEST(delta_rejected_update_keeps_versions)
{
    rec_t *r = rec_new(1, 1);
    lg__xds_stream_add_type(&r->s, LG_XDS_LDS, 1, 15000, 0);
    lg__xds_stream_opened(&r->s, 0);
    feed_delta(r, LG_XDS_LDS, "d1", NAMES("l"), NULL, 1);
    r->reject = 1;
    r->reject_msg = "no";
    feed_delta(r, LG_XDS_LDS, "d2", NAMES("l"), NULL, 2);
    lg__xds_stream_closed(&r->s);
    rec_reset_requests(r);
    lg__xds_stream_opened(&r->s, 3);
    LG_EXPECT_INT(r->delta[0]->n_initial_resource_versions, 1);
    LG_EXPECT_STR(r->delta[0]->initial_resource_versions[0]->value, "v-l-d1");
    rec_free(r);
}

/* ------------------------------------------------------------------------------------------- */
/* Backoff                                                                                     */
/* ------------------------------------------------------------------------------------------- */

LG_TEST(backoff_is_jittered_exponential)
{
    for (uint32_t rnd = 0; rnd < 1000; rnd += 37) {
        uint64_t d1 = lg__xds_backoff_ms(1, 500, 30000, rnd);
        LG_EXPECT(d1 >= 250 && d1 <= 500);
        uint64_t d3 = lg__xds_backoff_ms(3, 500, 30000, rnd);
        LG_EXPECT(d3 >= 1000 && d3 <= 2000);
        uint64_t d20 = lg__xds_backoff_ms(20, 500, 30000, rnd);
        LG_EXPECT(d20 >= 15000 && d20 <= 30000);
    }
    LG_EXPECT(lg__xds_backoff_ms(1, 500, 30000, 0) != lg__xds_backoff_ms(1, 500, 30000, 123));
}

int main(void)
{
    LG_RUN(sotw_first_requests_carry_node_and_wildcard);
    LG_RUN(sotw_ack_carries_version_and_nonce);
    LG_RUN(sotw_nack_keeps_previous_version);
    LG_RUN(sotw_lds_cds_absent_means_removed);
    LG_RUN(sotw_rds_eds_absent_means_unchanged_and_unrequested_ignored);
    LG_RUN(sotw_bad_resources_are_nacked_before_the_owner_sees_them);
    LG_RUN(sotw_resource_wrapper_is_unwrapped);
    LG_RUN(sotw_name_changes_are_batched_with_latest_nonce);
    LG_RUN(sotw_empty_child_set_is_never_sent_first);
    LG_RUN(sotw_reconnect_resends_versions_and_names_with_fresh_nonces);
    LG_RUN(sotw_pending_nack_is_dropped_by_a_new_stream);
    LG_RUN(sotw_response_for_unsubscribed_type_is_ignored);
    LG_RUN(nack_loop_is_held_back);
    LG_RUN(rate_limit_settings_pace_requests);
    LG_RUN(initial_fetch_timeouts);
    LG_RUN(delta_first_request_and_acks);
    LG_RUN(delta_removals_and_reconnect_versions);
    LG_RUN(delta_rejected_update_keeps_versions);
    LG_RUN(backoff_is_jittered_exponential);
    return LG_TEST_END();
}
