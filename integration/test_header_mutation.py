"""envoy.filters.http.header_mutation through the real binary (issue 8, item 2): request and
response mutations with `remove` and `append` (HeaderValueOption with each append_action),
applied in order, with Envoy's formatters (%REQ(x-user)%, %DOWNSTREAM_REMOTE_ADDRESS%,
%RESP(...)%); HeaderMutationPerRoute on the route, virtual host and route configuration, in
Envoy's order with and without most_specific_header_mutations_wins; config errors refused at
load with the field's path."""
import json

import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl
from lgharness.ports import pick_port

HM = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"
PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutationPerRoute"


def add(key, value, action=None, **extra):
    o = {"header": {"key": key, "value": value}}
    if action:
        o["append_action"] = action
    o.update(extra)
    return {"append": o}


def remove(name):
    return {"remove": name}


def per_route(req=(), resp=()):
    return {"typed_per_filter_config": {"envoy.filters.http.header_mutation": {
        "@type": PER_ROUTE, "mutations": {"request_mutations": list(req), "response_mutations": list(resp)}}}}


def config(origin_port, port, filter_mutations, most_specific=False):
    hm = {"@type": HM, "mutations": filter_mutations}
    if most_specific:
        hm["most_specific_header_mutations_wins"] = True
    ow = "OVERWRITE_IF_EXISTS_OR_ADD"
    routes = [bs.route("/levels/", "app", **per_route([add("x-level", "route", ow), add("x-seen", "route")],
                                                      [add("x-resp-level", "route", ow)])),
              bs.route("/", "app")]
    vh = bs.virtual_host(routes, **per_route([add("x-level", "vhost", ow), add("x-seen", "vhost")],
                                             [add("x-resp-level", "vhost", ow)]))
    chain = bs.filter_chain(bs.hcm(virtual_hosts=[vh], http_filters=[
        {"name": "envoy.filters.http.header_mutation", "typed_config": hm}, bs.router_filter()]))
    cfg = bs.bootstrap([bs.listener("ingress", port, [chain])], [bs.cluster("app", [origin_port])])
    hcm_cfg = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm_cfg["route_config"].update(per_route([add("x-level", "table", ow), add("x-seen", "table")]))
    return cfg


FILTER = {
    "request_mutations": [
        remove("x-secret"),
        add("x-user-copy", "%REQ(x-user)%"),
        add("x-client", "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"),
        add("x-user", "bob", "OVERWRITE_IF_EXISTS"),
        add("x-absent", "only-if-absent", "ADD_IF_ABSENT"),
        add("x-tag", "two"),
        add("x-never", "x", "OVERWRITE_IF_EXISTS"),
    ],
    "response_mutations": [
        remove("content-type"),
        add("x-resp-user", "%REQ(x-user)%"),
        add("x-resp-len", "%RESP(content-length)%"),
        add("server", "legate-test", "OVERWRITE_IF_EXISTS_OR_ADD"),
    ],
}


@pytest.fixture(scope="module")
def lg(start_legate_module, origin_module):
    port = pick_port()
    return start_legate_module(config(origin_module.port, port, FILTER), ports=[port])


def seen(r):
    """The request headers the origin got, as name -> [values]."""
    out = {}
    for n, v in json.loads(r.body)["headers"]:
        out.setdefault(n.lower(), []).append(v)
    return out


def test_request_mutations_in_order(lg):
    r = curl(lg.url("/echo/x"), "-H", "x-user: alice", "-H", "x-secret: s", "-H", "x-tag: one")
    assert r.status == 200, r
    h = seen(r)
    assert "x-secret" not in h
    assert h["x-user-copy"] == ["alice"]  # formatted before the overwrite that follows it
    assert h["x-user"] == ["bob"]
    assert h["x-client"] == ["127.0.0.1"]
    assert h["x-absent"] == ["only-if-absent"]
    assert h["x-tag"] == ["one", "two"]
    assert "x-never" not in h
    r = curl(lg.url("/echo/y"), "-H", "x-absent: mine")
    h = seen(r)
    assert h["x-absent"] == ["mine"]
    assert "x-user" not in h and "x-user-copy" not in h  # empty values are not added


def test_response_mutations(lg):
    r = curl(lg.url("/text/7"), "-H", "x-user: carol")
    assert r.status == 200 and len(r.body) == 7, r
    assert r.header("content-type") is None
    assert r.header("x-resp-user") == "bob"  # the request as the request mutations left it
    assert r.header("x-resp-len") == "7"
    # the connection manager writes `server` after the filters (server_header_transformation
    # OVERWRITE, Envoy's default), so a filter's value does not survive, as in Envoy
    assert r.headers["server"] == ["envoy"]


def test_per_route_levels_most_specific_first_by_default(lg):
    r = curl(lg.url("/levels/echo"))
    h = seen(r)
    # route, then virtual host, then route configuration: the least specific overwrite is last
    assert h["x-seen"] == ["route", "vhost", "table"]
    assert h["x-level"] == ["table"]
    assert r.header("x-resp-level") == "vhost"
    r = curl(lg.url("/echo/z"))
    assert seen(r)["x-seen"] == ["vhost", "table"]


def test_most_specific_header_mutations_wins(start_legate, origin):
    port = pick_port()
    p = start_legate(config(origin.port, port, {}, most_specific=True), ports=[port])
    r = curl(p.url("/levels/echo"))
    h = seen(r)
    assert h["x-seen"] == ["table", "vhost", "route"]
    assert h["x-level"] == ["route"]
    assert r.header("x-resp-level") == "route"


@pytest.mark.parametrize("mutations, message", [
    ({"request_mutations": [add("x", "%NOT_AN_OPERATOR%")]}, "request_mutations[0]"),
    ({"response_mutations": [remove(":status")]}, "may not be removed"),
    ({"request_mutations": [{}]}, "one of remove or append is required"),
])
def test_config_errors_are_refused(legate_bin, tmp_path, mutations, message):
    import subprocess
    cfg = config(1, pick_port(), mutations)
    path = tmp_path / "hm.yaml"
    path.write_text(bs.to_yaml(cfg))
    r = subprocess.run([legate_bin, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    assert message in r.stderr + r.stdout, r.stderr
