/*
 * Decoding the resources of a discovery response: each google.protobuf.Any (or, in delta and in
 * "resource-in-sotw" SotW responses, each envoy.service.discovery.v3.Resource wrapper) is checked
 * against the subscribed type and unpacked into its own protobuf-c message, named, and checked for
 * duplicates. A response that fails any of this is rejected whole with a message naming the
 * resource, as Envoy does. What it is not for: the meaning of a resource (the owner validates
 * listeners, routes, clusters and endpoints).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/config/listener/v3/listener.pb-c.h"
#include "envoy/config/route/v3/route.pb-c.h"
#include "log.h"
#include "xds/xds_internal.h"
#include "xalloc.h"

static const char *const type_urls[LG_XDS__NTYPES] = {
    [LG_XDS_CDS] = LG_XDS_CLUSTER_TYPE_URL,
    [LG_XDS_EDS] = LG_XDS_ENDPOINT_TYPE_URL,
    [LG_XDS_LDS] = LG_XDS_LISTENER_TYPE_URL,
    [LG_XDS_RDS] = LG_XDS_ROUTE_TYPE_URL,
};

static const char *const type_names[LG_XDS__NTYPES] = {
    [LG_XDS_CDS] = "cds",
    [LG_XDS_EDS] = "eds",
    [LG_XDS_LDS] = "lds",
    [LG_XDS_RDS] = "rds",
};

#define RESOURCE_WRAPPER_NAME "envoy.service.discovery.v3.Resource"

const char *lg_xds_type_url(lg_xds_type_t type)
{
    return type_urls[type];
}

const char *lg_xds_type_name(lg_xds_type_t type)
{
    return type_names[type];
}

/* The message name of a type URL: what follows the last '/'. */
static const char *url_message(const char *url)
{
    const char *slash = strrchr(url, '/');
    return slash != NULL ? slash + 1 : url;
}

int lg_xds_type_from_url(const char *type_url)
{
    const char *m = url_message(type_url);
    for (int t = 0; t < LG_XDS__NTYPES; ++t)
        if (strcmp(m, url_message(type_urls[t])) == 0)
            return t;
    return -1;
}

const ProtobufCMessageDescriptor *lg__xds_type_descriptor(lg_xds_type_t type)
{
    switch (type) {
    case LG_XDS_CDS:
        return &envoy__config__cluster__v3__cluster__descriptor;
    case LG_XDS_EDS:
        return &envoy__config__endpoint__v3__cluster_load_assignment__descriptor;
    case LG_XDS_LDS:
        return &envoy__config__listener__v3__listener__descriptor;
    case LG_XDS_RDS:
        return &envoy__config__route__v3__route_configuration__descriptor;
    default:
        return NULL;
    }
}

const char *lg__xds_resource_name(lg_xds_type_t type, const ProtobufCMessage *m)
{
    switch (type) {
    case LG_XDS_CDS:
        return ((const Envoy__Config__Cluster__V3__Cluster *)m)->name;
    case LG_XDS_EDS:
        return ((const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *)m)->cluster_name;
    case LG_XDS_LDS:
        return ((const Envoy__Config__Listener__V3__Listener *)m)->name;
    case LG_XDS_RDS:
        return ((const Envoy__Config__Route__V3__RouteConfiguration *)m)->name;
    default:
        return "";
    }
}

uint64_t lg__xds_hash(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; ++i)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static void push(lg__xds_decoded_t *d, ProtobufCMessage *m, const char *name, const char *version)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        d->msgs = realloc(d->msgs, cap * sizeof(*d->msgs));
        d->names = realloc(d->names, cap * sizeof(*d->names));
        d->versions = realloc(d->versions, cap * sizeof(*d->versions));
        if (d->msgs == NULL || d->names == NULL || d->versions == NULL)
            lg_fatal("out of memory");
        d->cap = cap;
    }
    d->msgs[d->n] = m;
    d->names[d->n] = lg_xstrdup(name);
    d->versions[d->n] = lg_xstrdup(version);
    ++d->n;
}

/* Unpacks one Any of type `type`. `where` names it in errors ("resources[3]"). */
static ProtobufCMessage *unpack_any(lg_xds_type_t type, const Google__Protobuf__Any *any, const char *where,
                                    lg_error_t *err)
{
    const ProtobufCMessageDescriptor *desc = lg__xds_type_descriptor(type);
    if (strcmp(url_message(any->type_url), desc->name) != 0) {
        lg_error_set(err, "%s: type URL \"%s\" does not match the subscribed type %s", where, any->type_url,
                     type_urls[type]);
        return NULL;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, any->value.len, any->value.data);
    if (m == NULL)
        lg_error_set(err, "%s: cannot decode %s", where, desc->name);
    return m;
}

/* What makes two responses the same update: their version and their resources, in any order
 * (servers that keep resources in a hash map send them in a different order each time), so each
 * resource is hashed alone and the hashes are summed. */
static uint64_t hash_any(uint64_t h, const Google__Protobuf__Any *any)
{
    uint64_t r = lg__xds_hash(LG__XDS_HASH_INIT, any->type_url, strlen(any->type_url) + 1);
    return h + lg__xds_hash(r, any->value.data, any->value.len);
}

/* The names seen so far, to refuse duplicates. */
static int check_unique(lg__xds_set_t *seen, const char *name, const char *where, lg_error_t *err)
{
    if (name[0] == '\0')
        return lg_error_set(err, "%s: resource has no name", where);
    if (lg__xds_set_find(seen, name) != NULL)
        return lg_error_set(err, "%s: duplicate resource name \"%s\"", where, name);
    lg__xds_set_add(seen, name);
    return 0;
}

int lg__xds_decode_sotw(lg_xds_type_t type, const Envoy__Service__Discovery__V3__DiscoveryResponse *r,
                        lg__xds_decoded_t *out, lg_error_t *err)
{
    *out = (lg__xds_decoded_t){0};
    lg__xds_set_t seen = {0};
    int ret = -1;
    out->hash = lg__xds_hash(LG__XDS_HASH_INIT, r->version_info, strlen(r->version_info) + 1);
    for (size_t i = 0; i < r->n_resources; ++i)
        out->hash = hash_any(out->hash, r->resources[i]);
    for (size_t i = 0; i < r->n_resources; ++i) {
        char where[48];
        snprintf(where, sizeof(where), "resources[%zu]", i);
        const Google__Protobuf__Any *any = r->resources[i];
        ProtobufCMessage *m;
        const char *name;
        if (strcmp(url_message(any->type_url), RESOURCE_WRAPPER_NAME) == 0) {
            /* "resource-in-sotw": a Resource wrapper carries the name and the real resource. */
            Envoy__Service__Discovery__V3__Resource *w = envoy__service__discovery__v3__resource__unpack(
                NULL, any->value.len, any->value.data);
            if (w == NULL) {
                lg_error_set(err, "%s: cannot decode %s", where, RESOURCE_WRAPPER_NAME);
                goto exit;
            }
            if (w->resource == NULL) {
                /* A name-only wrapper is a TTL heartbeat: nothing to apply. */
                envoy__service__discovery__v3__resource__free_unpacked(w, NULL);
                continue;
            }
            m = unpack_any(type, w->resource, where, err);
            if (m == NULL) {
                envoy__service__discovery__v3__resource__free_unpacked(w, NULL);
                goto exit;
            }
            name = w->name[0] != '\0' ? w->name : lg__xds_resource_name(type, m);
            push(out, m, name, r->version_info);
            envoy__service__discovery__v3__resource__free_unpacked(w, NULL);
        } else {
            if ((m = unpack_any(type, any, where, err)) == NULL)
                goto exit;
            name = lg__xds_resource_name(type, m);
            push(out, m, name, r->version_info);
        }
        if (check_unique(&seen, out->names[out->n - 1], where, err) != 0)
            goto exit;
    }
    ret = 0;
exit:
    lg__xds_set_clear(&seen);
    return ret;
}

int lg__xds_decode_delta(lg_xds_type_t type, const Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *r,
                         lg__xds_decoded_t *out, lg_error_t *err)
{
    *out = (lg__xds_decoded_t){0};
    lg__xds_set_t seen = {0};
    int ret = -1;
    out->hash = lg__xds_hash(LG__XDS_HASH_INIT, r->system_version_info, strlen(r->system_version_info) + 1);
    for (size_t i = 0; i < r->n_resources; ++i) {
        const Envoy__Service__Discovery__V3__Resource *res = r->resources[i];
        uint64_t h = lg__xds_hash(LG__XDS_HASH_INIT, res->name, strlen(res->name) + 1);
        h = lg__xds_hash(h, res->version, strlen(res->version) + 1);
        out->hash += res->resource != NULL ? hash_any(h, res->resource) : h;
    }
    for (size_t i = 0; i < r->n_resources; ++i) {
        char where[48];
        snprintf(where, sizeof(where), "resources[%zu]", i);
        const Envoy__Service__Discovery__V3__Resource *res = r->resources[i];
        if (res->resource == NULL)
            continue; /* a heartbeat: the resource is unchanged */
        ProtobufCMessage *m = unpack_any(type, res->resource, where, err);
        if (m == NULL)
            goto exit;
        const char *name = res->name[0] != '\0' ? res->name
                           : res->resource_name != NULL && res->resource_name->name[0] != '\0'
                               ? res->resource_name->name
                               : lg__xds_resource_name(type, m);
        push(out, m, name, res->version);
        if (check_unique(&seen, name, where, err) != 0)
            goto exit;
    }
    size_t nrem = r->n_removed_resources + r->n_removed_resource_names;
    if (nrem > 0) {
        out->removed = malloc(nrem * sizeof(*out->removed));
        if (out->removed == NULL)
            lg_fatal("out of memory");
        for (size_t i = 0; i < r->n_removed_resources; ++i)
            out->removed[out->n_removed++] = lg_xstrdup(r->removed_resources[i]);
        for (size_t i = 0; i < r->n_removed_resource_names; ++i)
            out->removed[out->n_removed++] = lg_xstrdup(r->removed_resource_names[i]->name);
    }
    ret = 0;
exit:
    lg__xds_set_clear(&seen);
    return ret;
}

void lg__xds_decoded_drop(lg__xds_decoded_t *d, size_t i)
{
    if (d->msgs[i] != NULL)
        protobuf_c_message_free_unpacked(d->msgs[i], NULL);
    free(d->names[i]);
    free(d->versions[i]);
    size_t rest = d->n - i - 1;
    memmove(&d->msgs[i], &d->msgs[i + 1], rest * sizeof(*d->msgs));
    memmove(&d->names[i], &d->names[i + 1], rest * sizeof(*d->names));
    memmove(&d->versions[i], &d->versions[i + 1], rest * sizeof(*d->versions));
    --d->n;
}

void lg__xds_decoded_dispose(lg__xds_decoded_t *d)
{
    for (size_t i = 0; i < d->n; ++i) {
        if (d->msgs[i] != NULL)
            protobuf_c_message_free_unpacked(d->msgs[i], NULL);
        free(d->names[i]);
        free(d->versions[i]);
    }
    for (size_t i = 0; i < d->n_removed; ++i)
        free(d->removed[i]);
    free(d->msgs);
    free(d->names);
    free(d->versions);
    free(d->removed);
    *d = (lg__xds_decoded_t){0};
}
