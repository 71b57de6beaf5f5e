"""A small builder for the Envoy v3 bootstraps the data-plane tests give legate.

What it is for: writing, in a few readable lines, the configs a test needs: listeners with an
HTTP connection manager and the router filter, STATIC clusters to given loopback ports over
HTTP/1.1 or HTTP/2, downstream and upstream TLS. Every function returns plain dicts in Envoy's
field names (snake_case), so a test can add or override any field before writing the file. What it
is not for: validating; legate's own `--mode validate` is the judge (the legate fixture runs it).
"""
import yaml

T = "type.googleapis.com/"
HCM_TYPE = T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER_TYPE = T + "envoy.extensions.filters.http.router.v3.Router"
HPO_NAME = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HPO_TYPE = T + HPO_NAME
DTLS_TYPE = T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
UTLS_TYPE = T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
TLS_INSPECTOR_TYPE = T + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"


def address(host, port):
    return {"socket_address": {"address": host, "port_value": int(port)}}


def router_filter():
    return {"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER_TYPE}}


def route(prefix="/", cluster=None, *, timeout=None, match=None, action=None, **extra):
    """One route: match on `prefix` (or a whole `match` dict), forward to `cluster` with an
    optional route `timeout` ("0.5s"); `action` merges more RouteAction fields; `extra` adds
    Route fields (direct_response, redirect, request_headers_to_add, ...)."""
    r = {"match": dict(match) if match else {"prefix": prefix}}
    if cluster is not None:
        a = {"cluster": cluster}
        if timeout is not None:
            a["timeout"] = timeout
        a.update(action or {})
        r["route"] = a
    r.update(extra)
    return r


def virtual_host(routes, domains=("*",), name="default", **extra):
    vh = {"name": name, "domains": list(domains), "routes": list(routes)}
    vh.update(extra)
    return vh


def hcm(routes=None, *, virtual_hosts=None, codec="AUTO", stat_prefix="ingress_http",
        http_filters=None, **extra):
    """The envoy.filters.network.http_connection_manager network filter with an inline
    route_config. Give `routes` (one catch-all virtual host) or `virtual_hosts`."""
    if virtual_hosts is None:
        virtual_hosts = [virtual_host(routes or [])]
    cfg = {
        "@type": HCM_TYPE,
        "stat_prefix": stat_prefix,
        "codec_type": codec,
        "route_config": {"name": "local_route", "virtual_hosts": list(virtual_hosts)},
        "http_filters": list(http_filters) if http_filters else [router_filter()],
    }
    cfg.update(extra)
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": cfg}


def downstream_tls(cert, key, *, alpn=("h2", "http/1.1"), ca=None, require_client_cert=False,
                   min_version=None, max_version=None):
    """A DownstreamTlsContext transport socket: certificate chain and key from files, ALPN,
    optional client-certificate validation against `ca`, TLS version bounds ("TLSv1_2"...)."""
    ctx = {"tls_certificates": [{"certificate_chain": {"filename": str(cert)},
                                 "private_key": {"filename": str(key)}}]}
    if alpn:
        ctx["alpn_protocols"] = list(alpn)
    if ca:
        ctx["validation_context"] = {"trusted_ca": {"filename": str(ca)}}
    params = {}
    if min_version:
        params["tls_minimum_protocol_version"] = min_version
    if max_version:
        params["tls_maximum_protocol_version"] = max_version
    if params:
        ctx["tls_params"] = params
    tc = {"@type": DTLS_TYPE, "common_tls_context": ctx}
    if require_client_cert:
        tc["require_client_certificate"] = True
    return {"name": "envoy.transport_sockets.tls", "typed_config": tc}


def upstream_tls(*, sni=None, ca=None, alpn=None, cert=None, key=None, san=None):
    """An UpstreamTlsContext transport socket: SNI, CA validation (with an optional exact DNS SAN
    to match), ALPN, client certificate."""
    ctx = {}
    if ca:
        vc = {"trusted_ca": {"filename": str(ca)}}
        if san:
            vc["match_typed_subject_alt_names"] = [{"san_type": "DNS", "matcher": {"exact": san}}]
        ctx["validation_context"] = vc
    if alpn:
        ctx["alpn_protocols"] = list(alpn)
    if cert:
        ctx["tls_certificates"] = [{"certificate_chain": {"filename": str(cert)},
                                    "private_key": {"filename": str(key)}}]
    tc = {"@type": UTLS_TYPE, "common_tls_context": ctx}
    if sni:
        tc["sni"] = sni
    return {"name": "envoy.transport_sockets.tls", "typed_config": tc}


def filter_chain(net_filter, *, tls=None, server_names=None):
    fc = {"filters": [net_filter]}
    if tls:
        fc["transport_socket"] = tls
    if server_names:
        fc["filter_chain_match"] = {"server_names": list(server_names)}
    return fc


def listener(name, port, chains, *, host="127.0.0.1", listener_filters=None, **extra):
    """A listener on host:port; `chains` is one network filter (wrapped in a chain) or a list of
    filter chains."""
    if isinstance(chains, dict) and "filters" not in chains:
        chains = [filter_chain(chains)]
    elif isinstance(chains, dict):
        chains = [chains]
    lst = {"name": name, "address": address(host, port), "filter_chains": list(chains)}
    if listener_filters:
        lst["listener_filters"] = list(listener_filters)
    lst.update(extra)
    return lst


def tls_inspector():
    return {"name": "envoy.filters.listener.tls_inspector",
            "typed_config": {"@type": TLS_INSPECTOR_TYPE}}


def cluster(name, endpoints, *, h2=False, tls=None, connect_timeout="2s", lb_policy=None,
            protocol_options=None, **extra):
    """A STATIC cluster. `endpoints` is a list of (host, port) or ports (127.0.0.1); `h2=True`
    selects HTTP/2 upstream through typed_extension_protocol_options, as Envoy's docs do."""
    eps = []
    for e in endpoints:
        h, p = ("127.0.0.1", e) if isinstance(e, int) else e
        eps.append({"endpoint": {"address": address(h, p)}})
    c = {"name": name, "type": "STATIC", "connect_timeout": connect_timeout,
         "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": eps}] if eps else []}}
    if lb_policy:
        c["lb_policy"] = lb_policy
    if h2 or protocol_options:
        hpo = {"@type": HPO_TYPE}
        if h2:
            hpo["explicit_http_config"] = {"http2_protocol_options": {}}
        else:
            hpo["explicit_http_config"] = {"http_protocol_options": {}}
        hpo.update(protocol_options or {})
        c["typed_extension_protocol_options"] = {HPO_NAME: hpo}
    if tls:
        c["transport_socket"] = tls
    c.update(extra)
    return c


def bootstrap(listeners, clusters, *, admin_port=None, node_id="integration"):
    b = {"node": {"id": node_id, "cluster": "integration"},
         "static_resources": {"listeners": list(listeners), "clusters": list(clusters)}}
    if admin_port:
        b["admin"] = {"address": address("127.0.0.1", admin_port)}
    return b


def simple_proxy(listen_port, upstream, *, h2_upstream=False, route_timeout=None, codec="AUTO",
                 tls=None, upstream_tls_ctx=None, hcm_extra=None, route_extra=None,
                 cluster_extra=None, host="127.0.0.1"):
    """The common case: one listener, one catch-all route, one cluster `app` at `upstream` (a port
    or a list of ports; an empty list makes a cluster with no hosts)."""
    ups = upstream if isinstance(upstream, (list, tuple)) else [upstream]
    r = route("/", "app", timeout=route_timeout, **(route_extra or {}))
    chain = filter_chain(hcm([r], codec=codec, **(hcm_extra or {})), tls=tls)
    return bootstrap([listener("ingress", listen_port, [chain], host=host)],
                     [cluster("app", ups, h2=h2_upstream, tls=upstream_tls_ctx, **(cluster_extra or {}))])


def with_filter(listen_port, upstream_port, name, typed_config):
    """One listener whose chain is the HTTP filter `name` (with `typed_config`) then the router,
    one catch-all route to cluster `app` at `upstream_port`."""
    filters = [{"name": name, "typed_config": typed_config}, router_filter()]
    chain = filter_chain(hcm([route("/", "app")], http_filters=filters))
    return bootstrap([listener("ingress", listen_port, [chain])], [cluster("app", [upstream_port])])


def filter_proxy(listen_port, admin_port, http_filters, clusters, routes=None):
    """One listener with `http_filters` (the router appended), `routes` (default: everything to
    cluster `app`), the given clusters and an admin listener on `admin_port`."""
    chain = filter_chain(hcm(routes or [route("/", "app")], http_filters=list(http_filters) + [router_filter()]))
    cfg = bootstrap([listener("ingress", listen_port, [chain])], clusters)
    cfg["admin"] = {"address": address("127.0.0.1", admin_port)}
    return cfg


def to_yaml(cfg):
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False)
