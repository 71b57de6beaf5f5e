/*
 * From Envoy's config-source messages to what a gRPC stream needs: which method (ADS or a
 * per-type service, SotW or delta), which server (the bootstrap's static cluster named by
 * envoy_grpc.cluster_name, or google_grpc.target_uri), which credentials (insecure, TLS from the
 * cluster's UpstreamTlsContext or from google_grpc's ssl_credentials, local), and the stream
 * options (set_node_on_first_message_only, rate_limit_settings, initial_fetch_timeout).
 *
 * Refused with a clear error, never half-used: REST and file-based sources, more than one
 * grpc_service, call credentials and google_default credentials, an envoy_grpc cluster that is not
 * static or has no endpoint. What it is not for: opening channels (grpc_thread.c).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/cluster/v3/cluster.pb-c.h"
#include "envoy/config/endpoint/v3/endpoint.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "log.h"
#include "pb_registry.h"
#include "tls_internal.h"
#include "xds/xds_internal.h"
#include "xalloc.h"

typedef Envoy__Config__Core__V3__ApiConfigSource api_source_t;
typedef Envoy__Config__Core__V3__ConfigSource config_source_t;
typedef Envoy__Config__Core__V3__GrpcService grpc_service_t;
typedef Envoy__Config__Bootstrap__V3__Bootstrap bootstrap_t;

static const char *const methods[LG_XDS__NTYPES][2] = {
    [LG_XDS_CDS] = {"/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters",
                    "/envoy.service.cluster.v3.ClusterDiscoveryService/DeltaClusters"},
    [LG_XDS_EDS] = {"/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints",
                    "/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints"},
    [LG_XDS_LDS] = {"/envoy.service.listener.v3.ListenerDiscoveryService/StreamListeners",
                    "/envoy.service.listener.v3.ListenerDiscoveryService/DeltaListeners"},
    [LG_XDS_RDS] = {"/envoy.service.route.v3.RouteDiscoveryService/StreamRoutes",
                    "/envoy.service.route.v3.RouteDiscoveryService/DeltaRoutes"},
};

const char *lg__xds_method(lg_xds_type_t type, int ads, int delta)
{
    if (ads)
        return delta ? "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
                     : "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
    return methods[type][delta ? 1 : 0];
}

uint64_t lg__xds_fetch_timeout_ms(const config_source_t *cs)
{
    if (cs == NULL || cs->initial_fetch_timeout == NULL)
        return LG__XDS_DEFAULT_FETCH_TIMEOUT_MS;
    const Google__Protobuf__Duration *d = cs->initial_fetch_timeout;
    if (d->seconds < 0 || d->nanos < 0)
        return 0;
    return (uint64_t)d->seconds * 1000 + (uint64_t)d->nanos / 1000000;
}

static char *xasprintf(const char *fmt, const char *a, const char *b)
{
    size_t len = strlen(fmt) + strlen(a) + strlen(b) + 1;
    char *s = malloc(len);
    if (s == NULL)
        lg_fatal("out of memory");
    snprintf(s, len, fmt, a, b);
    return s;
}

void lg__xds_spec_dispose(lg__xds_stream_spec_t *spec)
{
    lg__xds_target_t *t = &spec->target;
    free(t->key);
    free(t->target);
    free(t->authority);
    free(t->root_pem);
    free(t->cert_pem);
    free(t->key_pem);
    free(t->sni);
    for (size_t i = 0; i < t->n_metadata; ++i) {
        free(t->md_keys[i]);
        free(t->md_values[i]);
    }
    free(t->md_keys);
    free(t->md_values);
    *spec = (lg__xds_stream_spec_t){0};
}

static const Envoy__Config__Cluster__V3__Cluster *static_cluster(const bootstrap_t *b, const char *name)
{
    if (b->static_resources == NULL)
        return NULL;
    for (size_t i = 0; i < b->static_resources->n_clusters; ++i)
        if (strcmp(b->static_resources->clusters[i]->name, name) == 0)
            return b->static_resources->clusters[i];
    return NULL;
}

/* The gRPC target of a cluster's first endpoint: "ipv4:1.2.3.4:80", "ipv6:[::1]:80",
 * "dns:///host:80" or "unix:/path". */
static int cluster_target(const Envoy__Config__Cluster__V3__Cluster *c, const char *path, char **out, lg_error_t *err)
{
    const Envoy__Config__Endpoint__V3__ClusterLoadAssignment *la = c->load_assignment;
    const Envoy__Config__Endpoint__V3__LbEndpoint *lbe = NULL;
    for (size_t i = 0; la != NULL && lbe == NULL && i < la->n_endpoints; ++i)
        if (la->endpoints[i]->n_lb_endpoints > 0)
            lbe = la->endpoints[i]->lb_endpoints[0];
    if (lbe == NULL || lbe->host_identifier_case != ENVOY__CONFIG__ENDPOINT__V3__LB_ENDPOINT__HOST_IDENTIFIER_ENDPOINT ||
        lbe->endpoint->address == NULL)
        return lg_error_set(err, "%s: cluster \"%s\" has no endpoint address for the xDS server", path, c->name);
    const Envoy__Config__Core__V3__Address *a = lbe->endpoint->address;
    if (a->address_case == ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_PIPE) {
        *out = xasprintf("unix:%s%s", a->pipe->path, "");
        return 0;
    }
    if (a->address_case != ENVOY__CONFIG__CORE__V3__ADDRESS__ADDRESS_SOCKET_ADDRESS)
        return lg_error_set(err, "%s: cluster \"%s\": only socket and pipe addresses can reach an xDS server", path,
                            c->name);
    const Envoy__Config__Core__V3__SocketAddress *sa = a->socket_address;
    if (sa->port_specifier_case != ENVOY__CONFIG__CORE__V3__SOCKET_ADDRESS__PORT_SPECIFIER_PORT_VALUE)
        return lg_error_set(err, "%s: cluster \"%s\": the xDS server address needs a port_value", path, c->name);
    char port[16];
    snprintf(port, sizeof(port), "%u", sa->port_value);
    unsigned char bin[16];
    if (inet_pton(AF_INET6, sa->address, bin) == 1)
        *out = xasprintf("ipv6:[%s]:%s", sa->address, port);
    else if (inet_pton(AF_INET, sa->address, bin) == 1)
        *out = xasprintf("ipv4:%s:%s", sa->address, port);
    else
        *out = xasprintf("dns:///%s:%s", sa->address, port);
    return 0;
}

static int read_ds(const Envoy__Config__Core__V3__DataSource *ds, char **out, const char *path, lg_error_t *err)
{
    size_t len;
    if (ds == NULL)
        return 0;
    return lg__tls_read_data_source(ds, out, &len, path, err);
}

/* TLS toward the xDS server from the cluster's UpstreamTlsContext: trusted CA, client
 * certificate, SNI. */
static int cluster_tls(const Envoy__Config__Cluster__V3__Cluster *c, const char *path, lg__xds_target_t *t,
                       lg_error_t *err)
{
    if (c->transport_socket == NULL || c->transport_socket->typed_config == NULL)
        return 0;
    int owned;
    ProtobufCMessage *m = lg_pb_any_open(NULL, &c->transport_socket->typed_config->base, &owned);
    if (m == NULL || m->descriptor != &envoy__extensions__transport_sockets__tls__v3__upstream_tls_context__descriptor) {
        lg_pb_any_close(m, owned);
        return lg_error_set(err, "%s: cluster \"%s\": only an UpstreamTlsContext transport socket can reach an xDS "
                                 "server",
                            path, c->name);
    }
    const Envoy__Extensions__TransportSockets__Tls__V3__UpstreamTlsContext *u = (const void *)m;
    const Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext *common = u->common_tls_context;
    int ret = -1;
    t->creds = LG__XDS_CREDS_TLS;
    if (u->sni[0] != '\0')
        t->sni = lg_xstrdup(u->sni);
    if (common != NULL) {
        const Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext *vc = NULL;
        if (common->validation_context_type_case ==
            ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT)
            vc = common->validation_context;
        else if (common->validation_context_type_case ==
                 ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT)
            vc = common->combined_validation_context->default_validation_context;
        else if (common->validation_context_type_case !=
                 ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE__NOT_SET) {
            lg_error_set(err, "%s: cluster \"%s\": only an inline validation_context is supported for the xDS server",
                         path, c->name);
            goto exit;
        }
        if (vc != NULL && read_ds(vc->trusted_ca, &t->root_pem, "trusted_ca", err) != 0)
            goto exit;
        if (common->n_tls_certificates > 0) {
            const Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate *tc = common->tls_certificates[0];
            if (read_ds(tc->certificate_chain, &t->cert_pem, "certificate_chain", err) != 0 ||
                read_ds(tc->private_key, &t->key_pem, "private_key", err) != 0)
                goto exit;
        }
        if (common->n_tls_certificate_sds_secret_configs > 0 ||
            common->validation_context_type_case ==
                ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG) {
            lg_error_set(err, "%s: cluster \"%s\": SDS is not supported for the xDS server's TLS", path, c->name);
            goto exit;
        }
    }
    ret = 0;
exit:
    lg_pb_any_close(m, owned);
    return ret;
}

static int envoy_grpc_target(const bootstrap_t *b, const Envoy__Config__Core__V3__GrpcService__EnvoyGrpc *eg,
                             const char *path, lg__xds_target_t *t, lg_error_t *err)
{
    const Envoy__Config__Cluster__V3__Cluster *c = static_cluster(b, eg->cluster_name);
    if (c == NULL)
        return lg_error_set(err, "%s.envoy_grpc.cluster_name: unknown static cluster \"%s\"", path, eg->cluster_name);
    if (cluster_target(c, path, &t->target, err) != 0 || cluster_tls(c, path, t, err) != 0)
        return -1;
    t->authority = lg_xstrdup(eg->authority[0] != '\0' ? eg->authority : eg->cluster_name);
    t->max_receive_bytes = eg->max_receive_message_length != NULL && eg->max_receive_message_length->value > 0
                               ? (long)eg->max_receive_message_length->value
                               : -1;
    t->key = xasprintf("envoy_grpc:%s%s", eg->cluster_name, "");
    return 0;
}

static int google_grpc_target(const Envoy__Config__Core__V3__GrpcService__GoogleGrpc *gg, const char *path,
                              lg__xds_target_t *t, lg_error_t *err)
{
    if (gg->target_uri[0] == '\0')
        return lg_error_set(err, "%s.google_grpc.target_uri: must not be empty", path);
    if (gg->n_call_credentials > 0)
        return lg_error_set(err, "%s.google_grpc.call_credentials: not supported by legate", path);
    if (gg->credentials_factory_name[0] != '\0')
        return lg_error_set(err, "%s.google_grpc.credentials_factory_name: not supported by legate", path);
    const Envoy__Config__Core__V3__GrpcService__GoogleGrpc__ChannelCredentials *cc = gg->channel_credentials;
    if (cc != NULL) {
        switch (cc->credential_specifier_case) {
        case ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__GOOGLE_GRPC__CHANNEL_CREDENTIALS__CREDENTIAL_SPECIFIER_SSL_CREDENTIALS:
            t->creds = LG__XDS_CREDS_TLS;
            if (read_ds(cc->ssl_credentials->root_certs, &t->root_pem, "root_certs", err) != 0 ||
                read_ds(cc->ssl_credentials->cert_chain, &t->cert_pem, "cert_chain", err) != 0 ||
                read_ds(cc->ssl_credentials->private_key, &t->key_pem, "private_key", err) != 0)
                return -1;
            break;
        case ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__GOOGLE_GRPC__CHANNEL_CREDENTIALS__CREDENTIAL_SPECIFIER_LOCAL_CREDENTIALS:
            t->creds = LG__XDS_CREDS_LOCAL;
            break;
        case ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__GOOGLE_GRPC__CHANNEL_CREDENTIALS__CREDENTIAL_SPECIFIER_GOOGLE_DEFAULT:
            return lg_error_set(err, "%s.google_grpc.channel_credentials.google_default: not supported by legate", path);
        default:
            break;
        }
    }
    t->target = lg_xstrdup(gg->target_uri);
    t->max_receive_bytes = -1;
    t->key = xasprintf("google_grpc:%s%s", gg->target_uri, t->creds == LG__XDS_CREDS_TLS ? "|tls" : "");
    return 0;
}

static int grpc_service_target(const bootstrap_t *b, const grpc_service_t *gs, const char *path, lg__xds_target_t *t,
                               lg_error_t *err)
{
    switch (gs->target_specifier_case) {
    case ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_ENVOY_GRPC:
        if (envoy_grpc_target(b, gs->envoy_grpc, path, t, err) != 0)
            return -1;
        break;
    case ENVOY__CONFIG__CORE__V3__GRPC_SERVICE__TARGET_SPECIFIER_GOOGLE_GRPC:
        if (google_grpc_target(gs->google_grpc, path, t, err) != 0)
            return -1;
        break;
    default:
        return lg_error_set(err, "%s: needs envoy_grpc or google_grpc", path);
    }
    if (gs->n_initial_metadata > 0) {
        t->md_keys = calloc(gs->n_initial_metadata, sizeof(*t->md_keys));
        t->md_values = calloc(gs->n_initial_metadata, sizeof(*t->md_values));
        if (t->md_keys == NULL || t->md_values == NULL)
            lg_fatal("out of memory");
        for (size_t i = 0; i < gs->n_initial_metadata; ++i) {
            const Envoy__Config__Core__V3__HeaderValue *h = gs->initial_metadata[i];
            t->md_keys[i] = lg_xstrdup(h->key);
            t->md_values[i] = lg_xstrdup(h->value);
            for (char *p = t->md_keys[i]; *p != '\0'; ++p)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a');
            t->n_metadata = i + 1;
        }
    }
    return 0;
}

int lg__xds_spec_from_api(const bootstrap_t *b, const api_source_t *api, int ads, const char *path,
                          lg__xds_stream_spec_t *out, lg_error_t *err)
{
    *out = (lg__xds_stream_spec_t){0};
    switch (api->api_type) {
    case ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__GRPC:
        break;
    case ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__DELTA_GRPC:
        out->delta = 1;
        break;
    case ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__AGGREGATED_GRPC:
    case ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__AGGREGATED_DELTA_GRPC:
        if (!ads)
            return lg_error_set(err, "%s.api_type: %s belongs in dynamic_resources.ads_config (use `ads: {}` here)",
                                path, api->api_type == ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__AGGREGATED_GRPC
                                          ? "AGGREGATED_GRPC"
                                          : "AGGREGATED_DELTA_GRPC");
        out->delta = api->api_type == ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__AGGREGATED_DELTA_GRPC;
        break;
    case ENVOY__CONFIG__CORE__V3__API_CONFIG_SOURCE__API_TYPE__REST:
        return lg_error_set(err, "%s.api_type: REST is not supported by legate (use GRPC or DELTA_GRPC)", path);
    default:
        return lg_error_set(err, "%s.api_type: must be GRPC, DELTA_GRPC, AGGREGATED_GRPC or AGGREGATED_DELTA_GRPC", path);
    }
    if (api->n_grpc_services != 1)
        return lg_error_set(err, "%s.grpc_services: exactly one gRPC service is required", path);
    if (api->n_cluster_names > 0)
        return lg_error_set(err, "%s.cluster_names: only for REST; use grpc_services", path);
    out->ads = ads;
    char sub[256];
    snprintf(sub, sizeof(sub), "%s.grpc_services[0]", path);
    if (grpc_service_target(b, api->grpc_services[0], sub, &out->target, err) != 0) {
        lg__xds_spec_dispose(out);
        return -1;
    }
    out->node_once = api->set_node_on_first_message_only;
    if (api->rate_limit_settings != NULL) {
        const Envoy__Config__Core__V3__RateLimitSettings *rl = api->rate_limit_settings;
        out->rl_max_tokens = rl->max_tokens != NULL ? rl->max_tokens->value : 100;
        out->rl_fill_rate = rl->fill_rate != NULL ? rl->fill_rate->value : 10;
        if (out->rl_fill_rate <= 0 || out->rl_max_tokens < 1) {
            lg__xds_spec_dispose(out);
            return lg_error_set(err, "%s.rate_limit_settings: fill_rate must be > 0 and max_tokens >= 1", path);
        }
    }
    return 0;
}

int lg_xds_config_source_check(const bootstrap_t *b, const config_source_t *cs, lg_error_t *err)
{
    if (cs == NULL)
        return 0;
    switch (cs->config_source_specifier_case) {
    case ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS:
        if (b->dynamic_resources == NULL || b->dynamic_resources->ads_config == NULL)
            return lg_error_set(err, "config source `ads` needs dynamic_resources.ads_config in the bootstrap");
        return 0;
    case ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_SELF:
        return 0;
    case ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_API_CONFIG_SOURCE: {
        lg__xds_stream_spec_t spec;
        if (lg__xds_spec_from_api(b, cs->api_config_source, 0, "api_config_source", &spec, err) != 0)
            return -1;
        lg__xds_spec_dispose(&spec);
        return 0;
    }
    case ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_PATH:
    case ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_PATH_CONFIG_SOURCE:
        return lg_error_set(err, "file-based config sources (path) are not supported by legate");
    default:
        return lg_error_set(err, "config source: needs ads, self or api_config_source");
    }
}
