"""HTTP/1.1 through legate with real clients (curl) and exact bytes (raw sockets): keep-alive,
pipelining, bodies with Content-Length and chunked, Expect: 100-continue, HTTP/1.0,
absolute-form, HEAD, the headers Envoy adds, local replies, limits, and HTTP/1.1 downstream to an
HTTP/2 upstream. Envoy's behaviour is the expectation (issue 3, items 2, 3, 5, 7).
"""
import json

import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl
from lgharness.http1raw import Conn, request
from lgharness.origin_h1 import pattern_sha256


@pytest.fixture
def proxy(start_legate, free_port, origin):
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, origin.port))
    lg.origin = origin
    return lg


def echo_of(resp_body):
    return json.loads(resp_body)


def hdr(echo, name):
    vals = [v for n, v in echo["headers"] if n.lower() == name]
    return vals[0] if len(vals) == 1 else (vals or None)


def test_curl_get_reaches_origin_and_back(proxy):
    r = curl(proxy.url("/echo/hello?x=1"), "--http1.1", "-H", "x-custom: abc")
    assert r.rc == 0 and r.status == 200, r
    assert r.version == "1.1"
    e = echo_of(r.body)
    assert e["method"] == "GET"
    assert e["target"] == "/echo/hello?x=1"
    assert hdr(e, "x-custom") == "abc"
    assert hdr(e, "host") == "127.0.0.1:%d" % proxy.port
    # What Envoy adds upstream by default: a request id, the forwarded protocol and the
    # expected timeout (route timeout 15 s).
    assert hdr(e, "x-request-id")
    assert hdr(e, "x-forwarded-proto") == "http"
    assert hdr(e, "x-envoy-expected-rq-timeout-ms") == "15000"
    # ... and downstream: the upstream service time.
    assert r.header("x-envoy-upstream-service-time") is not None
    assert r.header("x-envoy-upstream-service-time").isdigit()


def test_x_envoy_headers_from_client_are_stripped(proxy):
    r = curl(proxy.url("/echo"), "-H", "x-envoy-upstream-rq-timeout-ms: 1", "-H",
             "x-envoy-retry-on: 5xx")
    assert r.status == 200, r
    e = echo_of(r.body)
    assert hdr(e, "x-envoy-retry-on") is None
    assert hdr(e, "x-envoy-upstream-rq-timeout-ms") is None
    assert hdr(e, "x-envoy-expected-rq-timeout-ms") == "15000"


def test_keep_alive_reuses_one_connection(proxy):
    with Conn("127.0.0.1", proxy.port) as c:
        for i in range(5):
            c.send(b"GET /echo/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i)
            r = c.read_response()
            assert r is not None and r.status == 200
            assert echo_of(r.body)["target"] == "/echo/%d" % i
        assert not c.closed_by_peer(timeout=0.3)


def test_pipelined_requests_answered_in_order(proxy):
    with Conn("127.0.0.1", proxy.port) as c:
        c.send(b"".join(b"GET /echo/p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(4)))
        for i in range(4):
            r = c.read_response()
            assert r is not None and r.status == 200, i
            assert echo_of(r.body)["target"] == "/echo/p%d" % i


def test_post_content_length_body(proxy):
    body = b"a=1&b=2" * 1000
    r = request("127.0.0.1", proxy.port, "POST", "/echo", body=body)
    assert r.status == 200
    e = echo_of(r.body)
    assert e["method"] == "POST"
    assert e["body"].encode("latin-1") == body
    assert hdr(e, "content-length") == str(len(body))


def test_chunked_request_body_streams_to_origin(proxy):
    chunks = [b"hello ", b"chunked ", b"world" * 1000]
    data = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
            b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n")
    with Conn("127.0.0.1", proxy.port) as c:
        c.send(data)
        r = c.read_response()
    assert r.status == 200
    assert echo_of(r.body)["body"].encode("latin-1") == b"".join(chunks)


def test_chunked_response_relayed(proxy):
    with Conn("127.0.0.1", proxy.port) as c:
        c.send(b"GET /chunked/300000 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    import hashlib
    assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(300000)


def test_expect_100_continue(proxy):
    with Conn("127.0.0.1", proxy.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        head = c._until(b"\r\n\r\n", __import__("time").monotonic() + 5)
        assert head is not None and head.startswith(b"HTTP/1.1 100"), head
        c.send(b"hello")
        r = c.read_response()
    assert r.status == 200
    e = echo_of(r.body)
    assert e["body"] == "hello"
    assert hdr(e, "expect") is None  # Envoy answers 100-continue itself and drops the header


def test_curl_expect_100_continue(proxy):
    r = curl(proxy.url("/echo"), "-H", "Expect: 100-continue", "--data-binary", "x" * 2048)
    assert r.status == 200, r
    assert len(echo_of(r.body)["body"]) == 2048


def test_http10_refused_by_default_with_426(proxy):
    # Envoy: http_protocol_options.accept_http_10 is off by default -> 426 Upgrade Required.
    with Conn("127.0.0.1", proxy.port) as c:
        c.send(b"GET /echo HTTP/1.0\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r is not None and r.status == 426, r
    assert proxy.origin.heads == []


def test_http10_accepted_when_enabled_and_closed(start_legate, free_port, origin):
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, origin.port, hcm_extra={
        "http_protocol_options": {"accept_http_10": True}}))
    with Conn("127.0.0.1", lg.port) as c:
        c.send(b"GET /echo HTTP/1.0\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r is not None and r.status == 200, r
        assert r.version == "HTTP/1.0"
        assert echo_of(r.body)["method"] == "GET"
        assert c.closed_by_peer()


def test_absolute_form_target(proxy):
    with Conn("127.0.0.1", proxy.port) as c:
        c.send(b"GET http://example.test/echo/abs?q=1 HTTP/1.1\r\nHost: example.test\r\n\r\n")
        r = c.read_response()
    assert r.status == 200
    e = echo_of(r.body)
    assert e["target"] == "/echo/abs?q=1"
    assert hdr(e, "host") == "example.test"


def test_head_has_no_body(proxy):
    with Conn("127.0.0.1", proxy.port) as c:
        c.send(b"HEAD /size/1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response(head_request=True)
        assert r.status == 200
        assert r.header("content-length") == "1000"
        # The connection stays usable: no body bytes were sent after the head.
        c.send(b"GET /echo/after HTTP/1.1\r\nHost: x\r\n\r\n")
        r2 = c.read_response()
        assert r2.status == 200 and echo_of(r2.body)["target"] == "/echo/after"


def test_upstream_status_and_body_passed_through(proxy):
    r = curl(proxy.url("/status/418"))
    assert r.status == 418 and r.body == b"status 418\n"


def test_no_route_is_404(start_legate, free_port, origin):
    port = free_port()
    cfg = bs.bootstrap([bs.listener("l", port, bs.hcm([bs.route("/api", "app")]))],
                       [bs.cluster("app", [origin.port])])
    lg = start_legate(cfg)
    r = curl(lg.url("/other"))
    assert r.status == 404, r
    assert r.body == b""
    assert origin.requests == []
    assert curl(lg.url("/api/x")).status == 200


def test_cluster_without_hosts_is_503_no_healthy_upstream(start_legate, free_port):
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, []))
    r = curl(lg.url("/"))
    assert r.status == 503, r
    assert r.body == b"no healthy upstream"


def test_direct_response_and_redirect(start_legate, free_port, origin):
    port = free_port()
    routes = [bs.route(match={"path": "/direct"}, direct_response={"status": 200, "body": {"inline_string": "direct!"}}),
              bs.route(match={"path": "/moved"}, redirect={"path_redirect": "/new"}),
              bs.route("/", "app")]
    lg = start_legate(bs.bootstrap([bs.listener("l", port, bs.hcm(routes))],
                                   [bs.cluster("app", [origin.port])]))
    r = curl(lg.url("/direct"))
    assert (r.status, r.body) == (200, b"direct!")
    r = curl(lg.url("/moved"))
    assert r.status == 301 and r.header("location").endswith("/new"), r
    assert origin.requests == []


def test_prefix_rewrite_and_header_mutation(start_legate, free_port, origin):
    port = free_port()
    routes = [bs.route("/api/", "app", action={"prefix_rewrite": "/echo/"},
                       request_headers_to_add=[{"header": {"key": "x-added", "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}}],
                       response_headers_to_add=[{"header": {"key": "x-resp", "value": "yes"}}])]
    lg = start_legate(bs.bootstrap([bs.listener("l", port, bs.hcm(routes))],
                                   [bs.cluster("app", [origin.port])]))
    r = curl(lg.url("/api/thing"))
    assert r.status == 200, r
    e = echo_of(r.body)
    assert e["target"] == "/echo/thing"
    assert hdr(e, "x-added") == "127.0.0.1"
    assert r.header("x-resp") == "yes"


def test_request_headers_too_large_is_431(proxy):
    big = "x" * (61 * 1024)
    with Conn("127.0.0.1", proxy.port) as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\nx-big: %s\r\n\r\n" % big.encode())
        r = c.read_response()
        assert r is not None and r.status == 431, r
        assert c.closed_by_peer()
    assert proxy.origin.heads == []


def test_too_many_headers_is_431(proxy):
    hs = b"".join(b"x-h%d: v\r\n" % i for i in range(101))
    with Conn("127.0.0.1", proxy.port) as c:
        c.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n" + hs + b"\r\n")
        r = c.read_response()
        assert r is not None and r.status == 431, r
    assert proxy.origin.heads == []


def test_h1_downstream_to_h2_upstream(start_legate, free_port, nghttpd):
    up = nghttpd()
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, up.port, h2_upstream=True))
    r = curl(lg.url("/index.html"), "--http1.1")
    assert (r.status, r.body) == (200, b"hello from nghttpd\n"), r
    r = curl(lg.url("/1m"), "--http1.1")
    assert r.status == 200 and r.body == (up.docroot / "1m").read_bytes()
    # Upload echoed by nghttpd (--echo-upload), HTTP/1.1 chunked in, HTTP/2 DATA out.
    payload = b"upload-through-h2-" * 5000
    r = curl(lg.url("/index.html"), "--http1.1", "-H", "Transfer-Encoding: chunked",
             "--data-binary", "@-", data_stdin=payload)
    assert r.status == 200 and r.body == payload, r


def test_many_sequential_connections(proxy):
    for i in range(50):
        r = request("127.0.0.1", proxy.port, "GET", "/echo/%d" % i,
                    headers=[("Connection", "close")])
        assert r.status == 200
    assert len(proxy.origin.requests) == 50


def test_max_connection_duration_closes_keepalive_connection(start_legate, free_port, origin):
    """common_http_protocol_options.max_connection_duration: the connection is drained once it is
    reached; the request in progress still gets its answer."""
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, origin.port, hcm_extra={
        "common_http_protocol_options": {"max_connection_duration": "0.3s"}}))
    with Conn("127.0.0.1", lg.port) as c:
        c.send(b"GET /echo/a HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
        c.sock.settimeout(3)
        assert c.sock.recv(1) == b""  # closed by legate after 0.3 s, not by the client


def test_survives_stop_and_continue(proxy):
    """SIGSTOP/SIGCONT (a debugger attaching, a container pause) interrupt epoll_wait with EINTR:
    legate must carry on, not exit."""
    import os
    import signal
    os.kill(proxy.popen.pid, signal.SIGSTOP)
    os.kill(proxy.popen.pid, signal.SIGCONT)
    r = curl(proxy.url("/echo/after"), "--http1.1")
    assert r.status == 200, r
    assert proxy.popen.poll() is None


def test_request_headers_timeout_is_408(start_legate, free_port, origin):
    """request_headers_timeout: a head that trickles in for longer is answered 408 and closed,
    and nothing reaches the origin."""
    import time
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, origin.port, hcm_extra={"request_headers_timeout": "0.3s"}))
    with Conn("127.0.0.1", lg.port) as c:
        c.send(b"GET /echo/slow HTTP/1.1\r\nHost: x\r\n")
        t = time.monotonic()
        r = c.read_response()
        assert r is not None and r.status == 408, r
        assert 0.25 < time.monotonic() - t < 3
    assert origin.heads == []
