"""HTTP/2 through legate with real clients: curl --http2-prior-knowledge, nghttp (concurrent
streams, trailers), h2load smoke runs; h2c downstream to HTTP/1.1 and to HTTP/2 upstreams; one port
serving HTTP/1.1 and h2c (codec_type AUTO); HTTP2-only listeners (issue 3, items 2, 6).
"""
import hashlib
import json

import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl, h2load_counts, run
from lgharness.h2raw import H2Raw
from lgharness.origin_h1 import pattern_sha256


@pytest.fixture
def proxy(start_legate, free_port, origin):
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, origin.port))
    lg.origin = origin
    return lg


@pytest.fixture
def proxy_h2up(start_legate, free_port, nghttpd):
    up = nghttpd(trailer="x-upstream-trailer: yes")
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, up.port, h2_upstream=True))
    lg.upstream = up
    return lg


def hdr(echo, name):
    vals = [v for n, v in echo["headers"] if n.lower() == name]
    return vals[0] if len(vals) == 1 else (vals or None)


def test_curl_prior_knowledge_to_h1_upstream(proxy):
    r = curl(proxy.url("/echo/h2?q=1"), "--http2-prior-knowledge", "-H", "x-custom: v")
    assert r.rc == 0 and r.status == 200, r
    assert r.version == "2"
    e = json.loads(r.body)
    assert e["target"] == "/echo/h2?q=1"
    assert e["version"] == "HTTP/1.1"
    assert hdr(e, "x-custom") == "v"
    # :authority becomes Host upstream.
    assert hdr(e, "host") == "127.0.0.1:%d" % proxy.port
    assert r.header("x-envoy-upstream-service-time") is not None


def test_auto_codec_serves_h1_and_h2c_on_one_port(proxy):
    assert curl(proxy.url("/"), "--http1.1").version == "1.1"
    r = curl(proxy.url("/"), "--http2-prior-knowledge")
    assert (r.status, r.version, r.body) == (200, "2", b"hello from origin\n"), r


def test_http2_only_listener(start_legate, free_port, origin):
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, origin.port, codec="HTTP2"))
    r = curl(lg.url("/"), "--http2-prior-knowledge")
    assert (r.status, r.version) == (200, "2"), r


def test_post_bodies_h2c_to_h1(proxy):
    body = bytes(range(256)) * 400
    r = curl(proxy.url("/echo"), "--http2-prior-knowledge", "--data-binary", "@-",
             data_stdin=body)
    assert r.status == 200, r
    e = json.loads(r.body)
    assert e["body"].encode("latin-1") == body
    assert e["method"] == "POST"


def test_large_response_h2c_from_h1(proxy):
    n = 5 * 1024 * 1024
    r = curl(proxy.url("/size/%d" % n), "--http2-prior-knowledge")
    assert r.status == 200 and len(r.body) == n
    assert hashlib.sha256(r.body).hexdigest() == pattern_sha256(n)


def test_nghttp_concurrent_streams(proxy):
    urls = [proxy.url("/echo/%d" % i) for i in range(20)]
    r = run(["nghttp", "-n", "-s", "-m", "1", "--timeout=10"] + urls, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(proxy.origin.requests) == 20
    assert sorted(q.target for q in proxy.origin.requests) == sorted("/echo/%d" % i for i in range(20))


def test_raw_h2_client_response_on_many_streams(proxy):
    with H2Raw("127.0.0.1", proxy.port) as c:
        c.handshake()
        ids = list(range(1, 41, 2))
        c.send(b"".join(c.request_headers(i, "/echo/s%d" % i) for i in ids))
        for i in ids:
            resp = c.read_response(i)
            assert resp is not None, i
            headers, body, _ = resp
            assert dict(headers)[":status"] == "200"
            assert json.loads(body)["target"] == "/echo/s%d" % i


def test_h2c_to_h2_upstream(proxy_h2up):
    r = curl(proxy_h2up.url("/index.html"), "--http2-prior-knowledge")
    assert (r.status, r.body) == (200, b"hello from nghttpd\n"), r
    r = curl(proxy_h2up.url("/1m"), "--http2-prior-knowledge")
    assert r.body == (proxy_h2up.upstream.docroot / "1m").read_bytes()


def test_h2_upstream_trailers_reach_h2_client(proxy_h2up):
    r = run(["nghttp", "-v", "--timeout=10", proxy_h2up.url("/index.html")], timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    # nghttp -v prints received header blocks; the trailer comes in a second HEADERS frame.
    assert "x-upstream-trailer: yes" in r.stdout, r.stdout[-3000:]


def test_h1_upstream_chunked_trailers_reach_h2_client(start_legate, free_port, origin):
    # Envoy forwards HTTP/1.1 trailers only when the upstream http_protocol_options enable them.
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, origin.port, cluster_extra={
        "typed_extension_protocol_options": {bs.HPO_NAME: {
            "@type": bs.HPO_TYPE,
            "explicit_http_config": {"http_protocol_options": {"enable_trailers": True}}}}}))
    with H2Raw("127.0.0.1", lg.port) as c:
        c.handshake()
        c.send(c.request_headers(1, "/chunked/100000"))
        resp = c.read_response(1)
    assert resp is not None
    headers, body, trailers = resp
    assert hashlib.sha256(body).hexdigest() == pattern_sha256(100000)
    assert trailers is not None and ("x-origin-trailer", "done") in trailers, trailers


def test_h2load_smoke_h2c(proxy):
    r = run(["h2load", "-n", "2000", "-c", "4", "-m", "10", "-t", "1", proxy.url("/")], timeout=60)
    counts = h2load_counts(r.stdout)
    assert counts is not None, r.stdout + r.stderr
    total, done, ok, failed, errored = counts
    assert (done, ok, failed, errored) == (2000, 2000, 0, 0), r.stdout
    assert "status codes: 2000 2xx" in r.stdout


def test_h2load_smoke_h1(proxy):
    r = run(["h2load", "--h1", "-n", "2000", "-c", "4", "-m", "4", "-t", "1", proxy.url("/")], timeout=60)
    counts = h2load_counts(r.stdout)
    assert counts is not None, r.stdout + r.stderr
    assert counts[1:] == (2000, 2000, 0, 0), r.stdout


def test_h2load_smoke_h2c_to_h2(proxy_h2up):
    r = run(["h2load", "-n", "2000", "-c", "4", "-m", "10", "-t", "1",
             proxy_h2up.url("/index.html")], timeout=60)
    counts = h2load_counts(r.stdout)
    assert counts is not None, r.stdout + r.stderr
    assert counts[1:] == (2000, 2000, 0, 0), r.stdout


def test_connection_header_over_h2_is_malformed(proxy):
    # RFC 9113 §8.2.2: connection-specific fields make the request malformed; never forwarded.
    with H2Raw("127.0.0.1", proxy.port) as c:
        c.handshake()
        c.send(c.request_headers(1, "/echo/bad", extra=[("connection", "keep-alive")]))
        resp = c.read_response(1, timeout=5)
        assert resp is None or dict(resp[0])[":status"] == "400"
    assert all(q.target != "/echo/bad" for q in proxy.origin.requests)
    assert curl(proxy.url("/"), "--http2-prior-knowledge").status == 200


def test_drain_sends_shutdown_notice_then_final_goaway(start_legate, free_port, origin):
    """SIGTERM with drain_timeout: Envoy's two-step GOAWAY. First the shutdown notice (last stream
    id 2^31-1), then, drain_timeout later, the final GOAWAY naming the last stream processed."""
    import signal
    import struct
    import time
    from lgharness import h2raw
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, origin.port, hcm_extra={"drain_timeout": "0.4s"}))
    with h2raw.H2Raw("127.0.0.1", lg.port) as c:
        c.handshake()
        c.send(c.request_headers(1, path="/echo/a"))
        assert c.read_response(1) is not None
        c.track = False
        lg.expected_exit = True  # the test drains it; exit code 0 is still required
        lg.popen.send_signal(signal.SIGTERM)
        goaways, t0 = [], time.monotonic()
        while len(goaways) < 2 and time.monotonic() - t0 < 5:
            f = c.read_frame(1.0)
            if f is None and c.closed:
                break
            if f is not None and f[0] == h2raw.GOAWAY:
                goaways.append((struct.unpack(">I", f[3][:4])[0] & 0x7FFFFFFF, time.monotonic() - t0))
    assert [g[0] for g in goaways] == [2147483647, 1], goaways
    assert goaways[1][1] - goaways[0][1] >= 0.3, goaways


def test_client_goaway_ends_with_fin_not_reset(proxy):
    """A client's GOAWAY ends an idle connection (h2spec 7/1 sends one with an unknown code, then
    a PING). Frames still arriving after it must not turn the close into a reset: the server
    half-closes and drops input for delayed_close_timeout. Closing with unread input made the
    kernel send an RST, which can destroy frames the client has not read yet. Here 2 MiB of
    unknown-type frames (which HTTP/2 ignores) follow the GOAWAY in one write, so some are
    certainly unread when the server ends the session."""
    import socket
    import struct
    from lgharness import h2raw
    junk = h2raw.frame(0xFA, 0, 0, b"x" * 16000) * 128
    with H2Raw("127.0.0.1", proxy.port) as c:
        c.handshake()
        sent = c.send(h2raw.frame(h2raw.GOAWAY, 0, 0, struct.pack(">II", 0, 0xDEAD)) + junk)
        assert sent, "the connection was reset while the client was still writing"
        c.sock.settimeout(5.0)
        tail = None
        for _ in range(1000):
            try:
                d = c.sock.recv(1 << 16)
            except ConnectionResetError:
                tail = "reset"
                break
            except socket.timeout:
                tail = "no FIN within 5 s"
                break
            if not d:
                tail = "fin"
                break
        assert tail == "fin", tail
