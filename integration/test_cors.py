"""envoy.filters.http.cors through the real binary (issue 8, item 1), checked header by header
against Envoy's CorsFilter and the fetch standard's CORS protocol: a preflight (OPTIONS with Origin
and Access-Control-Request-Method) from an allowed origin is answered by legate with 200 and no
body, never reaching the origin; an actual request from an allowed origin gets
Access-Control-Allow-Origin (the request's origin, never "*"), -Allow-Credentials and
-Expose-Headers on the origin's response; a disallowed origin gets no CORS headers and the
request passes through (a preflight too, unless forward_not_matching_preflights is false);
policies merge field by field from route to virtual host to route configuration; filter_enabled
and shadow_enabled; the origin_valid / origin_invalid stats; HTTP/2 as HTTP/1.1. Envoy adds no
Vary: Origin, so neither may legate."""
import json

import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl
from lgharness.ports import pick_port
from test_admin import Admin

POLICY = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
CORS = {"name": "envoy.filters.http.cors",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}}
APP = "https://app.example"
OFF = {"default_value": {"numerator": 0, "denominator": "HUNDRED"}}
ALL = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}


def policy(**fields):
    p = {"@type": POLICY}
    p.update(fields)
    return p


def per_filter(p):
    return {"typed_per_filter_config": {"envoy.filters.http.cors": p}}


@pytest.fixture(scope="module")
def lg(start_legate_module, origin_module):
    port, admin_port = pick_port(), pick_port()
    vhost_policy = policy(allow_origin_string_match=[{"exact": APP}, {"safe_regex": {"regex": r"https://.*\.trusted\.example"}}],
                          allow_methods="GET,POST,PUT", allow_headers="content-type,x-token",
                          expose_headers="x-total,x-page", max_age="600", allow_credentials=True)
    routes = [
        bs.route("/override/", "app", **per_filter(policy(allow_methods="DELETE", allow_credentials=False))),
        bs.route("/disabled/", "app", **per_filter(policy(filter_enabled=OFF))),
        bs.route("/shadow/", "app", **per_filter(policy(filter_enabled=OFF, shadow_enabled=ALL))),
        bs.route("/strict/", "app", **per_filter(policy(
            forward_not_matching_preflights=False, allow_methods="*", allow_headers="*",
            allow_private_network_access=True))),
        bs.route("/", "app"),
    ]
    vhosts = [bs.virtual_host([bs.route("/", "app")], domains=["rc.example"], name="rc"),
              bs.virtual_host(routes, name="main", **per_filter(vhost_policy))]
    chain = bs.filter_chain(bs.hcm(virtual_hosts=vhosts, http_filters=[CORS, bs.router_filter()]))
    cfg = bs.bootstrap([bs.listener("ingress", port, [chain])], [bs.cluster("app", [origin_module.port])])
    cfg["admin"] = {"address": bs.address("127.0.0.1", admin_port)}
    hcm_cfg = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm_cfg["route_config"].update(per_filter(policy(allow_origin_string_match=[{"exact": "https://rc.example"}],
                                                     allow_methods="PATCH")))
    p = start_legate_module(cfg, ports=[port, admin_port])
    p.admin = Admin(admin_port)
    p.origin = origin_module
    return p


def js(r):
    return json.loads(r.body)


def seen(r, name):
    """The value of header `name` as the origin got it (echo mode), or None."""
    vals = [v for n, v in js(r)["headers"] if n.lower() == name]
    return vals[0] if vals else None


def cors_headers(r):
    return {k: v for k, v in r.headers.items() if k.startswith("access-control-")}


def preflight(lg, path, origin, method="PUT", *extra):
    return curl(lg.url(path), "-X", "OPTIONS", "-H", "Origin: " + origin,
                "-H", "Access-Control-Request-Method: " + method, *extra)


def stats(lg):
    s = lg.admin.stats("?filter=cors")
    return s["http.ingress_http.cors.origin_valid"], s["http.ingress_http.cors.origin_invalid"]


def test_preflight_is_answered_by_legate(lg):
    lg.origin.reset()
    r = preflight(lg, "/echo/p", APP, "PUT", "-H", "Access-Control-Request-Headers: content-type")
    assert r.status == 200, r
    assert r.body == b""
    assert cors_headers(r) == {
        "access-control-allow-origin": [APP],
        "access-control-allow-credentials": ["true"],
        "access-control-allow-methods": ["GET,POST,PUT"],
        "access-control-allow-headers": ["content-type,x-token"],
        "access-control-max-age": ["600"],
    }
    assert r.header("content-length") == "0"
    assert r.header("vary") is None  # Envoy adds no Vary: Origin
    assert lg.origin.heads == []  # never reached the origin


def test_actual_request_gets_allow_origin_credentials_and_expose(lg):
    r = curl(lg.url("/echo/a"), "-H", "Origin: https://x.trusted.example")
    assert r.status == 200, r
    assert seen(r, "origin") == "https://x.trusted.example"  # passes through
    assert cors_headers(r) == {
        "access-control-allow-origin": ["https://x.trusted.example"],
        "access-control-allow-credentials": ["true"],
        "access-control-expose-headers": ["x-total,x-page"],
    }
    assert r.header("vary") is None
    # OPTIONS without Access-Control-Request-Method is an actual request: it goes upstream
    r = curl(lg.url("/echo/o"), "-X", "OPTIONS", "-H", "Origin: " + APP)
    assert r.status == 200 and js(r)["method"] == "OPTIONS", r
    assert r.header("access-control-allow-origin") == APP


def test_disallowed_origin_gets_no_cors_headers_and_passes_through(lg):
    lg.origin.reset()
    r = curl(lg.url("/echo/d"), "-H", "Origin: https://app.example.evil")
    assert r.status == 200 and seen(r, "origin") == "https://app.example.evil", r
    assert cors_headers(r) == {}
    # its preflight goes to the origin (forward_not_matching_preflights defaults to true)
    r = preflight(lg, "/echo/dp", "http://app.example")
    assert r.status == 200 and js(r)["method"] == "OPTIONS", r
    assert cors_headers(r) == {}
    # a request without Origin is not a CORS request
    r = curl(lg.url("/echo/n"))
    assert r.status == 200 and cors_headers(r) == {}


def test_upstream_allow_origin_is_replaced_for_allowed_origins_only(lg):
    path = "/text/10?h=access-control-allow-origin:*&h=access-control-expose-headers:x-up"
    r = curl(lg.url(path), "-H", "Origin: " + APP)
    assert r.headers["access-control-allow-origin"] == [APP], r
    assert r.headers["access-control-expose-headers"] == ["x-total,x-page"]
    r = curl(lg.url(path), "-H", "Origin: https://evil.example")
    assert r.headers["access-control-allow-origin"] == ["*"], r  # left alone
    assert r.headers["access-control-expose-headers"] == ["x-up"]


def test_route_policy_merges_field_by_field_with_the_virtual_host(lg):
    r = preflight(lg, "/override/x", APP, "DELETE")
    assert r.status == 200 and r.body == b"", r
    assert cors_headers(r) == {
        "access-control-allow-origin": [APP],          # from the virtual host
        "access-control-allow-methods": ["DELETE"],    # from the route
        "access-control-allow-headers": ["content-type,x-token"],
        "access-control-max-age": ["600"],
    }  # allow_credentials false on the route wins over the virtual host's true


def test_route_configuration_level_policy(lg):
    r = curl(lg.url("/echo/rc"), "-X", "OPTIONS", "-H", "Host: rc.example", "-H", "Origin: https://rc.example",
             "-H", "Access-Control-Request-Method: PATCH")
    assert r.status == 200 and r.body == b"", r
    assert cors_headers(r) == {"access-control-allow-origin": ["https://rc.example"],
                               "access-control-allow-methods": ["PATCH"]}


def test_disabled_and_shadow(lg):
    before = stats(lg)
    r = preflight(lg, "/disabled/echo", APP)
    assert r.status == 200 and js(r)["method"] == "OPTIONS", r  # upstream answered
    assert cors_headers(r) == {}
    assert stats(lg) == before  # not even counted
    r = preflight(lg, "/shadow/echo", APP)
    assert r.status == 200 and js(r)["method"] == "OPTIONS", r
    assert cors_headers(r) == {}
    r = curl(lg.url("/shadow/echo"), "-H", "Origin: https://nope.example")
    assert cors_headers(r) == {}
    assert stats(lg) == (before[0] + 1, before[1] + 1)  # shadow counts, never enforces


def test_strict_route_star_echo_and_private_network(lg):
    r = preflight(lg, "/strict/echo", APP, "PATCH", "-H", "Access-Control-Request-Headers: x-a,x-b",
                  "-H", "Access-Control-Request-Private-Network: true")
    assert r.status == 200 and r.body == b"", r
    assert cors_headers(r) == {
        "access-control-allow-origin": [APP],
        "access-control-allow-credentials": ["true"],
        "access-control-allow-methods": ["PATCH"],
        "access-control-allow-headers": ["x-a,x-b"],
        "access-control-max-age": ["600"],
        "access-control-allow-private-network": ["true"],
    }
    # forward_not_matching_preflights false: a disallowed origin's preflight is answered here,
    # without Access-Control-Allow-Origin, so the browser fails it
    lg.origin.reset()
    r = preflight(lg, "/strict/echo", "https://evil.example", "GET", "-H", "Access-Control-Request-Headers: x-a")
    assert r.status == 200 and r.body == b"", r
    assert "access-control-allow-origin" not in r.headers
    assert r.headers["access-control-allow-methods"] == ["GET"]
    assert lg.origin.heads == []


def test_stats_count_valid_and_invalid_origins(lg):
    v, i = stats(lg)
    curl(lg.url("/echo/s"), "-H", "Origin: " + APP)
    preflight(lg, "/echo/s", APP)
    curl(lg.url("/echo/s"), "-H", "Origin: https://evil.example")
    curl(lg.url("/echo/s"))
    assert stats(lg) == (v + 2, i + 1)


def test_http2_preflight_and_actual_request(lg):
    r = preflight(lg, "/echo/h2", APP, "POST", "--http2-prior-knowledge")
    assert r.status == 200 and r.version == "2", r
    assert r.headers["access-control-allow-origin"] == [APP]
    assert r.headers["access-control-allow-methods"] == ["GET,POST,PUT"]
    r = curl(lg.url("/echo/h2"), "--http2-prior-knowledge", "-H", "Origin: " + APP)
    assert r.status == 200 and r.headers["access-control-allow-origin"] == [APP], r


def test_deprecated_route_and_virtual_host_cors_fields(start_legate, origin):
    """The deprecated `cors` of route actions and virtual hosts, merged route first; ignored
    entirely for a route where any level has a typed_per_filter_config, as Envoy does."""
    port = pick_port()
    routes = [bs.route("/legacy-route/", "app", action={"cors": {"allow_methods": "PUT", "max_age": "5",
                                                                 "filter_enabled": ALL}}),
              bs.route("/typed/", "app", **per_filter(policy(allow_methods="DELETE"))),
              bs.route("/off/", "app", action={"cors": {"filter_enabled": OFF}}),
              bs.route("/", "app")]
    vh = bs.virtual_host(routes, cors={"allow_origin_string_match": [{"exact": APP}], "allow_methods": "GET",
                                       "expose_headers": "x-v"})
    chain = bs.filter_chain(bs.hcm(virtual_hosts=[vh], http_filters=[CORS, bs.router_filter()]))
    lg2 = start_legate(bs.bootstrap([bs.listener("ingress", port, [chain])], [bs.cluster("app", [origin.port])]),
                       ports=[port])
    origin.reset()
    r = preflight(lg2, "/echo/v", APP, "GET")
    assert r.status == 200 and r.body == b"", r
    assert cors_headers(r) == {"access-control-allow-origin": [APP], "access-control-allow-methods": ["GET"]}
    r = preflight(lg2, "/legacy-route/x", APP)
    assert cors_headers(r) == {"access-control-allow-origin": [APP], "access-control-allow-methods": ["PUT"],
                               "access-control-max-age": ["5"]}
    r = curl(lg2.url("/legacy-route/echo"), "-H", "Origin: " + APP)
    assert r.headers["access-control-expose-headers"] == ["x-v"], r
    assert len(origin.heads) == 1 and origin.heads[0].startswith(b"GET ")  # preflights never reached it
    # a typed policy without origins: the deprecated fields are not consulted, nothing matches
    r = preflight(lg2, "/typed/echo", APP)
    assert r.status == 200 and js(r)["method"] == "OPTIONS", r
    assert cors_headers(r) == {}
    # filter_enabled 0% on the route's deprecated policy: the most specific one decides
    r = preflight(lg2, "/off/echo", APP)
    assert js(r)["method"] == "OPTIONS" and cors_headers(r) == {}, r
