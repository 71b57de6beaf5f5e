/*
 * envoy.filters.http.ext_authz: every request asks an authorization service first, over gRPC
 * (envoy.service.auth.v3.Authorization/Check) or plain HTTP (http_service), through the in-loop
 * async client, and waits (body buffered) for the answer.
 *
 * gRPC: CheckRequest.attributes carries source and destination addresses, the request (id, method,
 * headers joined by ",", path, host, scheme, protocol, size, body with with_request_body) and the
 * route's context_extensions. status.code 0 allows: ok_response.headers go upstream (appended when
 * `append` is true or, unset, per append_action; else set), headers_to_remove are removed,
 * response_headers_to_add go on the client's response. Any other code denies: denied_response's
 * status (403 by default), headers and body, flag UAEX, details ext_authz_denied.
 * HTTP: the request goes to server_uri's cluster with path_prefix before the original path, the
 * method and, of the client's headers, :authority/host, authorization, content-length and those
 * allowed_headers match, plus authorization_request.headers_to_add. A 200 allows, with the
 * allowed_upstream_headers set (and allowed_upstream_headers_to_append appended) upstream and the
 * allowed_client_headers_on_success on the response; any other status denies with that status,
 * body and the allowed_client_headers (all but content-length, transfer-encoding and host when the
 * list is empty).
 * No answer (timeout: the grpc_service's 200 ms or server_uri's; connection failure; a malformed
 * answer): failure_mode_allow passes (with x-envoy-auth-failure-mode-allowed: true if
 * failure_mode_allow_header_add), else status_on_error (403), flag UAEX, details ext_authz_error.
 * filter_enabled defaults to 100%; per route ExtAuthzPerRoute disables or adds
 * context_extensions. Stats: cluster.<route's cluster>.ext_authz.{ok, denied, error,
 * failure_mode_allowed, disabled}.
 *
 * Not supported (refused at load): google_grpc, metadata context namespaces, filter_enabled_metadata,
 * decoder_header_mutation_rules. include_peer_certificate and include_tls_session are accepted
 * and not sent yet.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "async_client.h"
#include "envoy/extensions/filters/http/ext_authz/v3/ext_authz.pb-c.h"
#include "envoy/service/auth/v3/external_auth.pb-c.h"
#include "filters/ext_authz/ext_authz.h"
#include "log.h"
#include "route_table.h"
#include "stream_info.h"
#include "upstream_pool.h"
#include "worker.h"
#include "xalloc.h"

#define CHECK_PATH "/envoy.service.auth.v3.Authorization/Check"
#define DEFAULT_GRPC_TIMEOUT_MS 200
#define MAX_AUTHZ_RESPONSE (1u << 20)

typedef Envoy__Extensions__Filters__Http__ExtAuthz__V3__ExtAuthz pb_t;
typedef Envoy__Extensions__Filters__Http__ExtAuthz__V3__ExtAuthzPerRoute route_pb_t;
typedef Envoy__Service__Auth__V3__AttributeContext attr_t;

typedef struct st_str_list_t { /* a ListStringMatcher; `set` when it was configured */
    lg_string_matcher_t *m;
    size_t n;
    int set;
} str_list_t;

typedef struct st_authz_config_t {
    int http;
    char *cluster, *authority, *path_prefix;
    uint64_t timeout_ms;
    int failure_mode_allow, failure_header, error_status;
    uint32_t enabled_num, enabled_den;
    uint32_t max_body;
    int with_body, allow_partial, pack_as_bytes;
    str_list_t allowed_headers, upstream, upstream_append, client, client_on_success;
    Envoy__Config__Core__V3__HeaderValue **headers_to_add; /* http mode: owned copies */
    size_t n_headers_to_add;
} authz_config_t;

typedef struct st_route_cfg_t {
    int disabled, no_body;
    h2o_iovec_t *ext; /* context_extensions: key, value pairs */
    size_t n_ext;
} route_cfg_t;

typedef struct st_authz_state_t {
    lg_filter_t *f;
    lg_async_request_t *call;
    const lg_cluster_stats_t *stats;
    h2o_buffer_t *body;
    int waiting_body, checking;
    lg_headers_t response_headers; /* for the client's response (OK verdicts) */
} authz_state_t;

enum { STAT_OK, STAT_DENIED, STAT_ERROR, STAT_FAILURE_MODE_ALLOWED, STAT_DISABLED };

/* ---- config ------------------------------------------------------------------------------------ */

static void list_dispose(str_list_t *l)
{
    for (size_t i = 0; i < l->n; ++i)
        lg_string_matcher_dispose(&l->m[i]);
    free(l->m);
    memset(l, 0, sizeof(*l));
}

static int list_init(str_list_t *l, const Envoy__Type__Matcher__V3__ListStringMatcher *pb, const char *field,
                     lg_error_t *err)
{
    if (pb == NULL)
        return 0;
    l->set = 1;
    l->m = lg_xcalloc(pb->n_patterns, sizeof(*l->m));
    lg_path_t path;
    lg_path_init(&path);
    lg_path_push_field(&path, field);
    for (; l->n < pb->n_patterns; ++l->n) {
        size_t mark = lg_path_push_field(&path, "patterns");
        lg_path_push_index(&path, l->n);
        if (lg_string_matcher_init(&l->m[l->n], pb->patterns[l->n], &path, NULL, err) != 0)
            return -1;
        lg_path_pop(&path, mark);
    }
    return 0;
}

static int list_match(const str_list_t *l, h2o_iovec_t name)
{
    for (size_t i = 0; i < l->n; ++i)
        if (lg_string_matcher_match(&l->m[i], name.base, name.len))
            return 1;
    return 0;
}

static void destroy_config(void *p)
{
    authz_config_t *c = p;
    if (c == NULL)
        return;
    free(c->cluster);
    free(c->authority);
    free(c->path_prefix);
    list_dispose(&c->allowed_headers);
    list_dispose(&c->upstream);
    list_dispose(&c->upstream_append);
    list_dispose(&c->client);
    list_dispose(&c->client_on_success);
    for (size_t i = 0; i < c->n_headers_to_add; ++i) {
        free(c->headers_to_add[i]->key);
        free(c->headers_to_add[i]->value);
        free(c->headers_to_add[i]);
    }
    free(c->headers_to_add);
    free(c);
}

static uint64_t duration_ms(const Google__Protobuf__Duration *d, uint64_t dflt)
{
    if (d == NULL || d->seconds < 0 || d->nanos < 0)
        return dflt;
    return (uint64_t)d->seconds * 1000 + (uint64_t)d->nanos / 1000000;
}

static int grpc_init(authz_config_t *c, const pb_t *pb, lg_error_t *err)
{
    const Envoy__Config__Core__V3__GrpcService *gs = pb->grpc_service;
    if (gs->target_specifier_case != ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC)
        return lg_error_set(err, "grpc_service: only envoy_grpc is supported by legate"), -1;
    if (pb->transport_api_version != ENVOY__CONFIG__CORE__V3__API_VERSION__V3)
        return lg_error_set(err, "transport_api_version: must be V3"), -1;
    if (gs->envoy_grpc->cluster_name == NULL || gs->envoy_grpc->cluster_name[0] == '\0')
        return lg_error_set(err, "grpc_service.envoy_grpc.cluster_name: is required"), -1;
    c->cluster = lg_xstrdup(gs->envoy_grpc->cluster_name);
    if (gs->envoy_grpc->authority != NULL && gs->envoy_grpc->authority[0] != '\0')
        c->authority = lg_xstrdup(gs->envoy_grpc->authority);
    c->timeout_ms = duration_ms(gs->timeout, DEFAULT_GRPC_TIMEOUT_MS);
    return 0;
}

static int http_init(authz_config_t *c, const pb_t *pb, lg_error_t *err)
{
    const Envoy__Extensions__Filters__Http__ExtAuthz__V3__HttpService *hs = pb->http_service;
    c->http = 1;
    if (hs->server_uri == NULL || hs->server_uri->cluster == NULL || hs->server_uri->cluster[0] == '\0')
        return lg_error_set(err, "http_service.server_uri.cluster: is required"), -1;
    if (hs->server_uri->timeout == NULL)
        return lg_error_set(err, "http_service.server_uri.timeout: is required"), -1;
    c->cluster = lg_xstrdup(hs->server_uri->cluster);
    c->timeout_ms = duration_ms(hs->server_uri->timeout, DEFAULT_GRPC_TIMEOUT_MS);
    /* the authority of server_uri's URI, as Envoy sends it */
    const char *uri = hs->server_uri->uri != NULL ? hs->server_uri->uri : "";
    const char *host = strstr(uri, "://");
    host = host != NULL ? host + 3 : uri;
    size_t hl = strcspn(host, "/");
    c->authority = hl != 0 ? strndup(host, hl) : lg_xstrdup(c->cluster);
    c->path_prefix = lg_xstrdup(hs->path_prefix);
    const Envoy__Extensions__Filters__Http__ExtAuthz__V3__AuthorizationRequest *rq = hs->authorization_request;
    if (rq != NULL) {
        if (rq->allowed_headers != NULL && !c->allowed_headers.set &&
            list_init(&c->allowed_headers, rq->allowed_headers, "http_service.authorization_request.allowed_headers",
                      err) != 0)
            return -1;
        c->headers_to_add = lg_xcalloc(rq->n_headers_to_add, sizeof(*c->headers_to_add));
        for (; c->n_headers_to_add < rq->n_headers_to_add; ++c->n_headers_to_add) {
            const Envoy__Config__Core__V3__HeaderValue *h = rq->headers_to_add[c->n_headers_to_add];
            Envoy__Config__Core__V3__HeaderValue *copy = lg_xcalloc(1, sizeof(*copy));
            copy->key = lg_xstrdup(h->key);
            copy->value = lg_xstrdup(h->value);
            for (char *k = copy->key; *k != '\0'; ++k)
                if (*k >= 'A' && *k <= 'Z')
                    *k = (char)(*k - 'A' + 'a');
            c->headers_to_add[c->n_headers_to_add] = copy;
        }
    }
    const Envoy__Extensions__Filters__Http__ExtAuthz__V3__AuthorizationResponse *rs = hs->authorization_response;
    if (rs != NULL &&
        (list_init(&c->upstream, rs->allowed_upstream_headers, "http_service.authorization_response.allowed_upstream_headers", err) != 0 ||
         list_init(&c->upstream_append, rs->allowed_upstream_headers_to_append,
                   "http_service.authorization_response.allowed_upstream_headers_to_append", err) != 0 ||
         list_init(&c->client, rs->allowed_client_headers, "http_service.authorization_response.allowed_client_headers", err) != 0 ||
         list_init(&c->client_on_success, rs->allowed_client_headers_on_success,
                   "http_service.authorization_response.allowed_client_headers_on_success", err) != 0))
        return -1;
    return 0;
}

static void *create_config(const ProtobufCMessage *msg, lg_error_t *err)
{
    const pb_t *pb = (const pb_t *)msg;
    authz_config_t *c = lg_xcalloc(1, sizeof(*c));
    if (pb->n_metadata_context_namespaces != 0 || pb->n_typed_metadata_context_namespaces != 0 ||
        pb->n_route_metadata_context_namespaces != 0 || pb->n_route_typed_metadata_context_namespaces != 0) {
        lg_error_set(err, "metadata context namespaces are not supported by legate (no dynamic metadata)");
        goto Fail;
    }
    if (pb->filter_enabled_metadata != NULL || pb->decoder_header_mutation_rules != NULL) {
        lg_error_set(err, "%s: is not supported by legate",
                     pb->filter_enabled_metadata != NULL ? "filter_enabled_metadata" : "decoder_header_mutation_rules");
        goto Fail;
    }
    if (list_init(&c->allowed_headers, pb->allowed_headers, "allowed_headers", err) != 0)
        goto Fail;
    if (pb->services_case == ENVOY__EXTENSIONS__FILTERS__HTTP__EXT_AUTHZ__V3__EXT_AUTHZ__SERVICES_GRPC_SERVICE) {
        if (grpc_init(c, pb, err) != 0)
            goto Fail;
    } else if (pb->services_case == ENVOY__EXTENSIONS__FILTERS__HTTP__EXT_AUTHZ__V3__EXT_AUTHZ__SERVICES_HTTP_SERVICE) {
        if (http_init(c, pb, err) != 0)
            goto Fail;
    } else {
        lg_error_set(err, "one of grpc_service or http_service is required");
        goto Fail;
    }
    c->failure_mode_allow = pb->failure_mode_allow;
    c->failure_header = pb->failure_mode_allow_header_add;
    c->error_status = pb->status_on_error != NULL && pb->status_on_error->code >= 100 ? (int)pb->status_on_error->code : 403;
    c->enabled_num = 100;
    c->enabled_den = 100;
    if (pb->filter_enabled != NULL && pb->filter_enabled->default_value != NULL) {
        const Envoy__Type__V3__FractionalPercent *fp = pb->filter_enabled->default_value;
        c->enabled_den = lg_fractional_percent_denominator(fp->denominator);
        c->enabled_num = fp->numerator;
    }
    if (pb->with_request_body != NULL) {
        c->with_body = 1;
        c->max_body = pb->with_request_body->max_request_bytes;
        c->allow_partial = pb->with_request_body->allow_partial_message;
        c->pack_as_bytes = pb->with_request_body->pack_as_bytes;
    }
    return c;
Fail:
    destroy_config(c);
    return NULL;
}

static void destroy_route_config(void *p)
{
    route_cfg_t *c = p;
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_ext * 2; ++i)
        free(c->ext[i].base);
    free(c->ext);
    free(c);
}

static void *create_route_config(const ProtobufCMessage *msg, lg_error_t *err)
{
    const route_pb_t *pb = (const route_pb_t *)msg;
    route_cfg_t *c = lg_xcalloc(1, sizeof(*c));
    if (pb->override_case == ENVOY__EXTENSIONS__FILTERS__HTTP__EXT_AUTHZ__V3__EXT_AUTHZ_PER_ROUTE__OVERRIDE_DISABLED) {
        if (!pb->disabled) {
            free(c);
            return lg_error_set(err, "disabled: must be true when set"), NULL;
        }
        c->disabled = 1;
    } else if (pb->override_case == ENVOY__EXTENSIONS__FILTERS__HTTP__EXT_AUTHZ__V3__EXT_AUTHZ_PER_ROUTE__OVERRIDE_CHECK_SETTINGS) {
        const Envoy__Extensions__Filters__Http__ExtAuthz__V3__CheckSettings *cs = pb->check_settings;
        c->no_body = cs->disable_request_body_buffering;
        c->ext = lg_xcalloc(cs->n_context_extensions * 2, sizeof(*c->ext));
        for (; c->n_ext < cs->n_context_extensions; ++c->n_ext) {
            const char *k = cs->context_extensions[c->n_ext]->key, *v = cs->context_extensions[c->n_ext]->value;
            c->ext[c->n_ext * 2] = h2o_iovec_init(lg_xstrdup(k), strlen(k != NULL ? k : ""));
            c->ext[c->n_ext * 2 + 1] = h2o_iovec_init(lg_xstrdup(v), strlen(v != NULL ? v : ""));
        }
    }
    return c;
}

/* ---- verdicts ---------------------------------------------------------------------------------- */

static void count(authz_state_t *st, int which)
{
    if (st->stats == NULL)
        return;
    const lg_stat_id_t ids[] = {st->stats->ext_authz_ok, st->stats->ext_authz_denied, st->stats->ext_authz_error,
                                st->stats->ext_authz_failure_mode_allowed, st->stats->ext_authz_disabled};
    lg_stats_inc(lg_filter_worker(st->f)->stats, ids[which]);
}

static void resume(authz_state_t *st)
{
    st->checking = 0;
    lg_filter_continue_decoding(st->f);
}

static void fail(authz_state_t *st, const char *why)
{
    const authz_config_t *c = st->f->config;
    lg_debug(ext_authz, "authorization service on cluster %s: %s", c->cluster, why);
    count(st, STAT_ERROR);
    if (c->failure_mode_allow) {
        count(st, STAT_FAILURE_MODE_ALLOWED);
        if (c->failure_header)
            lg_headers_set(lg_filter_pool(st->f), &lg_filter_request(st->f)->headers,
                           h2o_iovec_init(H2O_STRLIT("x-envoy-auth-failure-mode-allowed")),
                           h2o_iovec_init(H2O_STRLIT("true")));
        resume(st);
        return;
    }
    lg_local_reply_t reply = {.status = c->error_status, .body = "", .flag = "UAEX", .details = "ext_authz_error",
                              .grpc_status = -1};
    lg_filter_send_local_reply_ex(st->f, &reply);
}

static void deny(authz_state_t *st, int status, const char *body, const lg_headers_t *headers)
{
    count(st, STAT_DENIED);
    lg_local_reply_t reply = {.status = status, .body = body, .flag = "UAEX", .details = "ext_authz_denied",
                              .headers = headers, .grpc_status = -1};
    lg_filter_send_local_reply_ex(st->f, &reply);
}

static h2o_iovec_t lower_copy(h2o_mem_pool_t *pool, const char *s)
{
    size_t n = strlen(s);
    char *p = h2o_mem_alloc_pool(pool, n + 1);
    for (size_t i = 0; i <= n; ++i)
        p[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
    return h2o_iovec_init(p, n);
}

/* A HeaderValueOption of an OK answer: appended (append true, or unset and APPEND_IF_EXISTS_OR_ADD), else set. */
static void apply_option(h2o_mem_pool_t *pool, lg_headers_t *h, const Envoy__Config__Core__V3__HeaderValueOption *o)
{
    if (o->header == NULL || o->header->key == NULL)
        return;
    h2o_iovec_t name = lower_copy(pool, o->header->key);
    const char *v = o->header->value != NULL ? o->header->value : "";
    if (!lg_header_name_is_valid(name.base, name.len) || name.base[0] == ':' || !lg_header_value_is_valid(v, strlen(v)))
        return;
    h2o_iovec_t value = h2o_strdup(pool, v, SIZE_MAX);
    int exists = lg_headers_get(h, name.base, name.len) != NULL;
    int action = o->append != NULL ? (o->append->value ? 0 : 2) : (int)o->append_action;
    switch (action) {
    case 0: /* APPEND_IF_EXISTS_OR_ADD */
        lg_headers_add(pool, h, name, value);
        break;
    case 1: /* ADD_IF_ABSENT */
        if (!exists)
            lg_headers_add(pool, h, name, value);
        break;
    case 2: /* OVERWRITE_IF_EXISTS_OR_ADD */
        lg_headers_set(pool, h, name, value);
        break;
    default: /* OVERWRITE_IF_EXISTS */
        if (exists)
            lg_headers_set(pool, h, name, value);
        break;
    }
}

static void on_grpc_verdict(void *ctx, int grpc_status, const uint8_t *msg, size_t len, const char *error)
{
    authz_state_t *st = ctx;
    st->call = NULL;
    if (grpc_status != 0) {
        fail(st, error != NULL ? error : "the Check call failed");
        return;
    }
    Envoy__Service__Auth__V3__CheckResponse *r = envoy__service__auth__v3__check_response__unpack(NULL, len, msg);
    if (r == NULL) {
        fail(st, "malformed CheckResponse");
        return;
    }
    h2o_mem_pool_t *pool = lg_filter_pool(st->f);
    if (r->status != NULL && r->status->code != 0) {
        const Envoy__Service__Auth__V3__DeniedHttpResponse *d =
            r->http_response_case == ENVOY__SERVICE__AUTH__V3__CHECK_RESPONSE__HTTP_RESPONSE_DENIED_RESPONSE
                ? r->denied_response
                : NULL;
        int status = d != NULL && d->status != NULL && d->status->code >= 100 ? (int)d->status->code : 403;
        lg_headers_t headers = {NULL, 0, 0};
        const char *body = "";
        if (d != NULL) {
            for (size_t i = 0; i < d->n_headers; ++i)
                apply_option(pool, &headers, d->headers[i]);
            if (d->body != NULL)
                body = h2o_strdup(pool, d->body, SIZE_MAX).base;
        }
        envoy__service__auth__v3__check_response__free_unpacked(r, NULL);
        deny(st, status, body, &headers);
        return;
    }
    count(st, STAT_OK);
    if (r->http_response_case == ENVOY__SERVICE__AUTH__V3__CHECK_RESPONSE__HTTP_RESPONSE_OK_RESPONSE) {
        const Envoy__Service__Auth__V3__OkHttpResponse *ok = r->ok_response;
        lg_headers_t *req = &lg_filter_request(st->f)->headers;
        for (size_t i = 0; i < ok->n_headers; ++i)
            apply_option(pool, req, ok->headers[i]);
        for (size_t i = 0; i < ok->n_headers_to_remove; ++i) {
            h2o_iovec_t n = lower_copy(pool, ok->headers_to_remove[i]);
            if (n.len != 0 && n.base[0] != ':' && !h2o_memis(n.base, n.len, H2O_STRLIT("host")))
                lg_headers_remove(req, n.base, n.len);
        }
        for (size_t i = 0; i < ok->n_response_headers_to_add; ++i)
            apply_option(pool, &st->response_headers, ok->response_headers_to_add[i]);
    }
    envoy__service__auth__v3__check_response__free_unpacked(r, NULL);
    resume(st);
}

static int is_hop_or_length(h2o_iovec_t n)
{
    return h2o_memis(n.base, n.len, H2O_STRLIT("content-length")) ||
           h2o_memis(n.base, n.len, H2O_STRLIT("transfer-encoding")) || h2o_memis(n.base, n.len, H2O_STRLIT("host")) ||
           h2o_memis(n.base, n.len, H2O_STRLIT("connection"));
}

static void on_http_verdict(void *ctx, const lg_async_response_t *resp, const char *error)
{
    authz_state_t *st = ctx;
    const authz_config_t *c = st->f->config;
    st->call = NULL;
    if (resp == NULL) {
        fail(st, error);
        return;
    }
    h2o_mem_pool_t *pool = lg_filter_pool(st->f);
    const lg_headers_t *h = &resp->head->headers;
    if (resp->head->status != 200) {
        lg_headers_t headers = {NULL, 0, 0};
        for (size_t i = 0; i < h->size; ++i) {
            h2o_iovec_t n = h->entries[i].name;
            if (c->client.set ? list_match(&c->client, n) && !is_hop_or_length(n) : !is_hop_or_length(n))
                lg_headers_add_copy(pool, &headers, n.base, n.len, h->entries[i].value.base, h->entries[i].value.len);
        }
        char *body = h2o_mem_alloc_pool(pool, resp->body_len + 1);
        if (resp->body_len != 0)
            memcpy(body, resp->body, resp->body_len);
        body[resp->body_len] = '\0';
        deny(st, resp->head->status, body, &headers);
        return;
    }
    count(st, STAT_OK);
    lg_headers_t *req = &lg_filter_request(st->f)->headers;
    for (size_t i = 0; i < h->size; ++i) {
        h2o_iovec_t n = h->entries[i].name, v = h->entries[i].value;
        if (is_hop_or_length(n))
            continue;
        h2o_iovec_t nc = h2o_strdup(pool, n.base, n.len), vc = h2o_strdup(pool, v.base, v.len);
        if (list_match(&c->upstream, n))
            lg_headers_set(pool, req, nc, vc);
        else if (list_match(&c->upstream_append, n))
            lg_headers_add(pool, req, nc, vc);
        if (list_match(&c->client_on_success, n))
            lg_headers_add(pool, &st->response_headers, nc, vc);
    }
    resume(st);
}

/* ---- the check --------------------------------------------------------------------------------- */

static Envoy__Config__Core__V3__Address *pb_address(h2o_mem_pool_t *pool, const struct sockaddr_storage *ss)
{
    Envoy__Config__Core__V3__Address *a = h2o_mem_alloc_pool(pool, sizeof(*a));
    envoy__config__core__v3__address__init(a);
    Envoy__Config__Core__V3__SocketAddress *sa = h2o_mem_alloc_pool(pool, sizeof(*sa));
    envoy__config__core__v3__socket_address__init(sa);
    char *buf = h2o_mem_alloc_pool(pool, INET6_ADDRSTRLEN);
    buf[0] = '\0';
    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, INET6_ADDRSTRLEN);
        sa->port_value = ntohs(((const struct sockaddr_in *)ss)->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, INET6_ADDRSTRLEN);
        sa->port_value = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    }
    sa->address = buf;
    sa->port_specifier_case = ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE;
    a->address_case = ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS;
    a->socket_address = sa;
    return a;
}

static char *cstr(h2o_mem_pool_t *pool, h2o_iovec_t v)
{
    return h2o_strdup(pool, v.base != NULL ? v.base : "", v.base != NULL ? v.len : 0).base;
}

static void start_grpc_check(authz_state_t *st, const route_cfg_t *rc)
{
    lg_filter_t *f = st->f;
    const authz_config_t *c = f->config;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    const lg_request_head_t *req = lg_filter_request(f);
    const lg_stream_info_t *info = lg_filter_stream_info(f);

    Envoy__Service__Auth__V3__AttributeContext__HttpRequest *http = h2o_mem_alloc_pool(pool, sizeof(*http));
    envoy__service__auth__v3__attribute_context__http_request__init(http);
    http->id = cstr(pool, info->request_id);
    http->method = cstr(pool, req->method);
    http->path = cstr(pool, req->path);
    http->host = cstr(pool, req->authority);
    http->scheme = cstr(pool, req->scheme);
    http->protocol = req->version == LG_HTTP_2 ? "HTTP/2" : req->version == LG_HTTP_10 ? "HTTP/1.0" : "HTTP/1.1";
    http->size = req->content_length >= 0 ? req->content_length : (st->body != NULL ? (int64_t)st->body->size : -1);
    /* headers: one entry per name, repeated values joined with "," (pseudo-headers as Envoy sends them) */
    size_t cap = req->headers.size + 4;
    http->headers = h2o_mem_alloc_pool(pool, sizeof(*http->headers) * cap);
    http->n_headers = 0;
#define ADD_ENTRY(k, v)                                                                                                \
    do {                                                                                                               \
        Envoy__Service__Auth__V3__AttributeContext__HttpRequest__HeadersEntry *e = h2o_mem_alloc_pool(pool, sizeof(*e)); \
        envoy__service__auth__v3__attribute_context__http_request__headers_entry__init(e);                            \
        e->key = (k);                                                                                                  \
        e->value = (v);                                                                                                \
        http->headers[http->n_headers++] = e;                                                                          \
    } while (0)
    ADD_ENTRY(":authority", http->host);
    ADD_ENTRY(":method", http->method);
    ADD_ENTRY(":path", http->path);
    ADD_ENTRY(":scheme", http->scheme);
    for (size_t i = 0; i < req->headers.size; ++i) {
        h2o_iovec_t n = req->headers.entries[i].name;
        if (lg_headers_find(&req->headers, n.base, n.len, 0) != (ssize_t)i)
            continue; /* joined under its first occurrence */
        if (c->allowed_headers.set && !list_match(&c->allowed_headers, n))
            continue;
        size_t total = 0;
        for (ssize_t j = (ssize_t)i; j >= 0; j = lg_headers_find(&req->headers, n.base, n.len, (size_t)j + 1))
            total += req->headers.entries[j].value.len + 1;
        char *v = h2o_mem_alloc_pool(pool, total + 1), *p = v;
        for (ssize_t j = (ssize_t)i; j >= 0; j = lg_headers_find(&req->headers, n.base, n.len, (size_t)j + 1)) {
            if (p != v)
                *p++ = ',';
            memcpy(p, req->headers.entries[j].value.base, req->headers.entries[j].value.len);
            p += req->headers.entries[j].value.len;
        }
        *p = '\0';
        ADD_ENTRY(cstr(pool, n), v);
    }
#undef ADD_ENTRY
    if (st->body != NULL && st->body->size != 0) {
        if (c->pack_as_bytes) {
            http->raw_body.data = (uint8_t *)st->body->bytes;
            http->raw_body.len = st->body->size;
        } else {
            http->body = cstr(pool, h2o_iovec_init(st->body->bytes, st->body->size));
        }
    }
    Envoy__Service__Auth__V3__AttributeContext__Request *rq = h2o_mem_alloc_pool(pool, sizeof(*rq));
    envoy__service__auth__v3__attribute_context__request__init(rq);
    rq->http = http;
    Envoy__Service__Auth__V3__AttributeContext__Peer *src = h2o_mem_alloc_pool(pool, sizeof(*src)),
                                                     *dst = h2o_mem_alloc_pool(pool, sizeof(*dst));
    envoy__service__auth__v3__attribute_context__peer__init(src);
    envoy__service__auth__v3__attribute_context__peer__init(dst);
    src->address = pb_address(pool, &info->downstream_remote);
    dst->address = pb_address(pool, &info->downstream_local);
    attr_t attrs = ENVOY__SERVICE__AUTH__V3__ATTRIBUTE_CONTEXT__INIT;
    attrs.source = src;
    attrs.destination = dst;
    attrs.request = rq;
    if (rc != NULL && rc->n_ext != 0) {
        attrs.context_extensions = h2o_mem_alloc_pool(pool, sizeof(*attrs.context_extensions) * rc->n_ext);
        for (size_t i = 0; i < rc->n_ext; ++i) {
            Envoy__Service__Auth__V3__AttributeContext__ContextExtensionsEntry *e = h2o_mem_alloc_pool(pool, sizeof(*e));
            envoy__service__auth__v3__attribute_context__context_extensions_entry__init(e);
            e->key = rc->ext[i * 2].base;
            e->value = rc->ext[i * 2 + 1].base;
            attrs.context_extensions[i] = e;
        }
        attrs.n_context_extensions = rc->n_ext;
    }
    Envoy__Service__Auth__V3__CheckRequest check = ENVOY__SERVICE__AUTH__V3__CHECK_REQUEST__INIT;
    check.attributes = &attrs;
    st->call = lg_async_grpc_unary(lg_filter_worker(f), c->cluster, c->authority, CHECK_PATH, &check.base, c->timeout_ms,
                                   on_grpc_verdict, st);
}

static void start_http_check(authz_state_t *st)
{
    lg_filter_t *f = st->f;
    const authz_config_t *c = f->config;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    const lg_request_head_t *req = lg_filter_request(f);
    lg_request_head_t head = {.method = req->method, .scheme = h2o_iovec_init(H2O_STRLIT("http")),
                              .authority = h2o_iovec_init(c->authority, strlen(c->authority)),
                              .version = LG_HTTP_11};
    size_t pl = strlen(c->path_prefix);
    char *path = h2o_mem_alloc_pool(pool, pl + req->path.len);
    memcpy(path, c->path_prefix, pl);
    memcpy(path + pl, req->path.base, req->path.len);
    head.path = h2o_iovec_init(path, pl + req->path.len);
    for (size_t i = 0; i < req->headers.size; ++i) {
        h2o_iovec_t n = req->headers.entries[i].name;
        if (h2o_memis(n.base, n.len, H2O_STRLIT("authorization")) || list_match(&c->allowed_headers, n))
            lg_headers_add(pool, &head.headers, n, req->headers.entries[i].value);
    }
    if (req->authority.len != 0)
        lg_headers_add(pool, &head.headers, h2o_iovec_init(H2O_STRLIT("x-forwarded-host")), req->authority);
    for (size_t i = 0; i < c->n_headers_to_add; ++i)
        lg_headers_set(pool, &head.headers, h2o_iovec_init(c->headers_to_add[i]->key, strlen(c->headers_to_add[i]->key)),
                       h2o_iovec_init(c->headers_to_add[i]->value, strlen(c->headers_to_add[i]->value)));
    const char *body = st->body != NULL ? st->body->bytes : NULL;
    size_t blen = st->body != NULL ? st->body->size : 0;
    st->call = lg_async_http_send(lg_filter_worker(f), c->cluster, &head, body, blen, c->timeout_ms, MAX_AUTHZ_RESPONSE,
                                  on_http_verdict, st);
}

static void start_check(authz_state_t *st)
{
    const authz_config_t *c = st->f->config;
    st->waiting_body = 0;
    st->checking = 1;
    if (c->http)
        start_http_check(st);
    else
        start_grpc_check(st, lg_filter_per_route_config(st->f));
}

static lg_filter_headers_status_t decode_headers(lg_filter_t *f, lg_request_head_t *head, int end_stream)
{
    authz_state_t *st = f->state;
    const authz_config_t *c = f->config;
    st->f = f;
    const lg_cluster_t *cl = lg_filter_route_cluster(f);
    st->stats = cl != NULL ? cl->stats : NULL;
    const route_cfg_t *rc = lg_filter_per_route_config(f);
    if (rc != NULL && rc->disabled) {
        count(st, STAT_DISABLED);
        return LG_FILTER_HEADERS_CONTINUE;
    }
    if (c->enabled_num < c->enabled_den && lg_worker_random(lg_filter_worker(f)) % c->enabled_den >= c->enabled_num)
        return LG_FILTER_HEADERS_CONTINUE;
    if (c->with_body && !end_stream && (rc == NULL || !rc->no_body)) {
        st->waiting_body = 1;
        return LG_FILTER_HEADERS_STOP_ITERATION;
    }
    start_check(st);
    return LG_FILTER_HEADERS_STOP_ALL_WATERMARK;
}

static lg_filter_data_status_t decode_data(lg_filter_t *f, lg_data_t *data, int end_stream)
{
    authz_state_t *st = f->state;
    const authz_config_t *c = f->config;
    if (!st->waiting_body)
        return st->checking ? LG_FILTER_DATA_STOP_BUFFER : LG_FILTER_DATA_CONTINUE;
    if (st->body == NULL)
        h2o_buffer_init(&st->body, &h2o_socket_buffer_prototype);
    size_t room = c->max_body > st->body->size ? c->max_body - st->body->size : 0;
    size_t take = data->len < room ? data->len : room;
    if (take != 0) {
        h2o_iovec_t dst = h2o_buffer_reserve(&st->body, take);
        if (dst.base == NULL)
            lg_fatal("out of memory");
        memcpy(dst.base, data->base, take);
        st->body->size += take;
    }
    if (take < data->len && !c->allow_partial) {
        st->waiting_body = 0;
        lg_filter_send_local_reply(f, 413, "Payload Too Large", NULL, "request_payload_too_large");
        return LG_FILTER_DATA_STOP_NO_BUFFER;
    }
    if (end_stream || st->body->size >= c->max_body)
        start_check(st);
    return LG_FILTER_DATA_STOP_BUFFER;
}

static lg_filter_trailers_status_t decode_trailers(lg_filter_t *f, lg_headers_t *trailers)
{
    authz_state_t *st = f->state;
    if (st->waiting_body)
        start_check(st);
    return st->checking ? LG_FILTER_TRAILERS_STOP : LG_FILTER_TRAILERS_CONTINUE;
}

static lg_filter_headers_status_t encode_headers(lg_filter_t *f, lg_response_head_t *head, int end_stream)
{
    authz_state_t *st = f->state;
    lg_headers_append(lg_filter_pool(f), &head->headers, &st->response_headers);
    return LG_FILTER_HEADERS_CONTINUE;
}

static void on_destroy(lg_filter_t *f)
{
    authz_state_t *st = f->state;
    if (st->call != NULL) {
        lg_async_cancel(st->call);
        st->call = NULL;
    }
    if (st->body != NULL)
        h2o_buffer_dispose(&st->body);
}

const lg_http_filter_ops_t lg_ext_authz_ops = {
    .name = "envoy.filters.http.ext_authz",
    .config_descriptor = &envoy__extensions__filters__http__ext_authz__v3__ext_authz__descriptor,
    .per_route_descriptor = &envoy__extensions__filters__http__ext_authz__v3__ext_authz_per_route__descriptor,
    .create_config = create_config,
    .destroy_config = destroy_config,
    .create_per_route_config = create_route_config,
    .destroy_per_route_config = destroy_route_config,
    .state_size = sizeof(authz_state_t),
    .decode_headers = decode_headers,
    .decode_data = decode_data,
    .decode_trailers = decode_trailers,
    .encode_headers = encode_headers,
    .on_destroy = on_destroy,
};
