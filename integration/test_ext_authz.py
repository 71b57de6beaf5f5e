"""envoy.filters.http.ext_authz through the real binary (issue 7, item 2), in both modes:
gRPC against a Go Authorization server built on go-control-plane's envoy/service/auth/v3 types
(integration/peers/ext_authz_server), HTTP against a small authorization server in this process.
Allow with header mutations both ways, deny with the server's status/headers/body, timeout and
server down with and without failure_mode_allow, per-route disable and context_extensions, the
request body sent with with_request_body, and the cluster's ext_authz.* stats."""
import http.server
import json
import socketserver
import threading

import pytest

from lgharness import bootstrap as bs
from lgharness import peers
from lgharness.clients import curl
from test_admin import Admin

AUTHZ_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
PER_ROUTE_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute"


@pytest.fixture(scope="module")
def grpc_authz(start_peer_module):
    try:
        binary = peers.local_go_peer("ext_authz_server")
    except peers.BuildError as e:
        pytest.fail(str(e))
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start_peer_module([binary, "-addr", "127.0.0.1:%d" % port], name="ext_authz_server", ports=[port])
    return port


class _AuthzHandler(http.server.BaseHTTPRequestHandler):
    """Allows when x-authz: allow (answering with headers for upstream and client), else 403 with
    a body and a header for the client. Records what it was sent."""
    seen = []

    def _answer(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        _AuthzHandler.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        if self.headers.get("x-authz") == "allow":
            self.send_response(200)
            self.send_header("x-authz-user", "bob")
            self.send_header("x-authz-extra", "appended")
            self.send_header("x-authz-resp", "ok")
            self.send_header("x-not-allowed", "dropped")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        out = b"go away"
        self.send_response(403)
        self.send_header("x-authz-reason", "policy")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *a):
        pass


@pytest.fixture
def http_authz():
    _AuthzHandler.seen = []
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _AuthzHandler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()
    t.join(5)


def proxy(start_legate, free_port, origin, authz_port, authz_cfg, *, h2=True, routes=None):
    port, admin_port = free_port(), free_port()
    cfg = {"@type": AUTHZ_TYPE}
    cfg.update(authz_cfg)
    boot = bs.filter_proxy(port, admin_port, [{"name": "envoy.filters.http.ext_authz", "typed_config": cfg}],
                           [bs.cluster("app", [origin.port]), bs.cluster("authz", [authz_port], h2=h2)], routes)
    lg = start_legate(boot, ports=[port, admin_port])
    lg.admin = Admin(admin_port)
    return lg


def grpc_cfg(timeout="2s", **extra):
    c = {"grpc_service": {"envoy_grpc": {"cluster_name": "authz"}, "timeout": timeout},
         "transport_api_version": "V3"}
    c.update(extra)
    return c


def seen_headers(r):
    return {n.lower(): v for n, v in json.loads(r.body)["headers"]}


def authz_stats(lg):
    s = lg.admin.stats("?filter=cluster.app.ext_authz")
    return {k.rsplit(".", 1)[1]: v for k, v in s.items()}


def test_grpc_allow_mutates_both_ways(start_legate, free_port, origin, grpc_authz):
    lg = proxy(start_legate, free_port, origin, grpc_authz, grpc_cfg())
    r = curl(lg.url("/echo/ok?q=1"), "-H", "x-authz: allow", "-H", "x-secret: s3cr3t",
             "-H", "x-authz-append: first", "-H", "x-authz-user: mallory")
    assert r.status == 200, r
    h = seen_headers(r)
    assert h["x-authz-user"] == "alice"  # set, the client's value replaced
    assert json.loads(r.body)["headers"].count(["x-authz-append", "yes"]) == 1  # appended to the client's
    assert "x-secret" not in h
    assert h["x-authz-peer"] == "127.0.0.1"
    assert h["x-authz-proto"] == "HTTP/1.1 GET /echo/ok?q=1 127.0.0.1:%d" % lg.port
    assert r.header("x-authz-resp") == "ok"
    assert authz_stats(lg) == {"ok": 1, "denied": 0, "error": 0, "failure_mode_allowed": 0, "disabled": 0}


def test_grpc_deny_with_the_servers_response(start_legate, free_port, origin, grpc_authz):
    lg = proxy(start_legate, free_port, origin, grpc_authz, grpc_cfg())
    r = curl(lg.url("/echo/x"), "-H", "x-authz: deny")
    assert (r.status, r.body, r.header("www-authenticate")) == (401, b"denied by policy", "Bearer"), r
    default = curl(lg.url("/echo/x"))
    assert default.status == 403, default  # denied without a denied_response
    assert len(origin.requests) == 0
    assert authz_stats(lg)["denied"] == 2


def test_grpc_request_denied_is_a_grpc_status(start_legate, free_port, origin, grpc_authz):
    lg = proxy(start_legate, free_port, origin, grpc_authz, grpc_cfg())
    r = curl(lg.url("/pkg.Svc/Call"), "--http2-prior-knowledge", "-H", "content-type: application/grpc",
             "-H", "te: trailers", "--data-binary", "")
    assert r.status == 200 and r.header("grpc-status") == "7", r  # 403 -> PERMISSION_DENIED


@pytest.mark.parametrize("allow,status", [(False, 403), (True, 200)])
def test_grpc_timeout(start_legate, free_port, origin, grpc_authz, allow, status):
    lg = proxy(start_legate, free_port, origin, grpc_authz,
               grpc_cfg(timeout="0.2s", failure_mode_allow=allow, failure_mode_allow_header_add=True))
    r = curl(lg.url("/echo/t"), "-H", "x-authz: slow")
    assert r.status == status, r
    if allow:
        assert seen_headers(r)["x-envoy-auth-failure-mode-allowed"] == "true"
    s = authz_stats(lg)
    assert s["error"] == 1 and s["failure_mode_allowed"] == (1 if allow else 0), s


def test_server_down_uses_status_on_error(start_legate, free_port, origin):
    lg = proxy(start_legate, free_port, origin, free_port(), grpc_cfg(status_on_error={"code": 503}))
    assert curl(lg.url("/")).status == 503


def test_per_route_disable_and_context_extensions(start_legate, free_port, origin, grpc_authz):
    routes = [
        bs.route("/public", "app", typed_per_filter_config={
            "envoy.filters.http.ext_authz": {"@type": PER_ROUTE_TYPE, "disabled": True}}),
        bs.route("/", "app", typed_per_filter_config={
            "envoy.filters.http.ext_authz": {"@type": PER_ROUTE_TYPE,
                                             "check_settings": {"context_extensions": {"tier": "gold"}}}}),
    ]
    lg = proxy(start_legate, free_port, origin, grpc_authz, grpc_cfg(), routes=routes)
    assert curl(lg.url("/public/x")).status == 200  # no header, no check
    r = curl(lg.url("/echo/y"), "-H", "x-authz: allow")
    assert r.status == 200 and seen_headers(r)["x-authz-ext-tier"] == "gold", r
    assert authz_stats(lg)["disabled"] == 1


def test_grpc_with_request_body(start_legate, free_port, origin, grpc_authz):
    lg = proxy(start_legate, free_port, origin, grpc_authz,
               grpc_cfg(with_request_body={"max_request_bytes": 1024, "allow_partial_message": True}))
    r = curl(lg.url("/echo/body"), "-H", "x-authz: allow", "--data-binary", "hello authz")
    assert r.status == 200, r
    assert seen_headers(r)["x-authz-body"] == "hello authz"
    assert json.loads(r.body)["body"] == "hello authz"  # and the upstream got it too


def test_body_over_the_limit_is_413(start_legate, free_port, origin, grpc_authz):
    lg = proxy(start_legate, free_port, origin, grpc_authz, grpc_cfg(with_request_body={"max_request_bytes": 4}))
    r = curl(lg.url("/echo/body"), "-H", "x-authz: allow", "--data-binary", "far too long")
    assert r.status == 413, r


def http_cfg(**extra):
    c = {"http_service": {
        "server_uri": {"uri": "http://authz.local", "cluster": "authz", "timeout": "2s"},
        "path_prefix": "/check",
        "authorization_request": {"headers_to_add": [{"key": "x-from", "value": "legate"}]},
        "authorization_response": {
            "allowed_upstream_headers": {"patterns": [{"exact": "x-authz-user"}]},
            "allowed_upstream_headers_to_append": {"patterns": [{"prefix": "x-authz-extra"}]},
            "allowed_client_headers_on_success": {"patterns": [{"exact": "x-authz-resp"}]},
            "allowed_client_headers": {"patterns": [{"exact": "x-authz-reason"}]}}},
        "allowed_headers": {"patterns": [{"exact": "x-authz"}]}}
    c.update(extra)
    return c


def test_http_service_allow(start_legate, free_port, origin, http_authz):
    lg = proxy(start_legate, free_port, origin, http_authz, http_cfg(), h2=False)
    r = curl(lg.url("/echo/h?x=1"), "-H", "x-authz: allow", "-H", "authorization: Bearer t", "-H", "x-other: no")
    assert r.status == 200, r
    h = seen_headers(r)
    assert h["x-authz-user"] == "bob" and h["x-authz-extra"] == "appended"
    assert "x-not-allowed" not in h
    assert r.header("x-authz-resp") == "ok" and r.header("x-not-allowed") is None
    method, path, sent, _ = _AuthzHandler.seen[-1]
    assert (method, path) == ("GET", "/check/echo/h?x=1")
    assert sent["authorization"] == "Bearer t" and sent["x-authz"] == "allow" and sent["x-from"] == "legate"
    assert "x-other" not in sent
    assert sent["host"] == "authz.local"


def test_http_service_deny(start_legate, free_port, origin, http_authz):
    lg = proxy(start_legate, free_port, origin, http_authz, http_cfg(), h2=False)
    r = curl(lg.url("/echo/h"))
    assert (r.status, r.body, r.header("x-authz-reason")) == (403, b"go away", "policy"), r
    assert len(origin.requests) == 0


def test_config_errors(legate, tmp_path, free_port):
    cfg = {"@type": AUTHZ_TYPE, "grpc_service": {"envoy_grpc": {"cluster_name": "authz"}}}
    path = tmp_path / "b.yaml"
    path.write_text(bs.to_yaml(bs.with_filter(free_port(), free_port(), "envoy.filters.http.ext_authz", cfg)))
    r = legate("--mode", "validate", "-c", str(path))
    assert r.returncode == 1 and "transport_api_version: must be V3" in r.stdout + r.stderr, r
