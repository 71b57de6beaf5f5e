"""Upstream faults and the local replies Envoy gives for them (issue 3, item 7;
research/reliability-anchors.md a.8 and cases 57-60, 64): refused connections (503 UF), a close
before the response (503 UC), a close mid-response (the client sees the truncation, never a fake
end), a stall (504 UT at the route timeout), garbage and bad framing (502), and legate serving
normally afterwards. Each case runs over HTTP/1.1 and h2c downstream.
"""
import json
import time

import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl
from lgharness.http1raw import Conn

UF_BODY = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
UC_BODY = "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
PROTO_BODY_PREFIX = "upstream connect error or disconnect/reset before headers"

MODES = [("h1", ["--http1.1"]), ("h2c", ["--http2-prior-knowledge"])]


@pytest.fixture
def proxy(start_legate, free_port, origin):
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, origin.port, route_timeout="1s"))
    lg.origin = origin
    return lg


def still_serves(lg):
    for flags in (["--http1.1"], ["--http2-prior-knowledge"]):
        r = curl(lg.url("/echo/alive"), *flags)
        assert r.status == 200 and json.loads(r.body)["target"] == "/echo/alive", r


@pytest.mark.parametrize("mode,flags", MODES, ids=[m for m, _ in MODES])
def test_refused_is_503_uf(start_legate, free_port, mode, flags):
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, free_port()))
    t0 = time.monotonic()
    r = curl(lg.url("/x"), *flags)
    assert time.monotonic() - t0 < 3, "a refused connect must fail at once"
    assert r.status == 503, r
    assert r.body.decode().startswith(UF_BODY), r.body
    assert r.header("content-type") == "text/plain"


@pytest.mark.parametrize("mode,flags", MODES, ids=[m for m, _ in MODES])
def test_close_before_response_is_503_uc(proxy, mode, flags):
    r = curl(proxy.url("/close-early"), *flags)
    assert r.status == 503, r
    assert r.body.decode().startswith(UC_BODY), r.body
    still_serves(proxy)


def test_close_mid_response_h1_truncates_and_closes(proxy):
    with Conn("127.0.0.1", proxy.port) as c:
        c.send(b"GET /close-mid/100000 HTTP/1.1\r\nHost: x\r\n\r\n")
        head = c._until(b"\r\n\r\n", time.monotonic() + 10)
        assert head is not None and head.startswith(b"HTTP/1.1 200"), head
        assert b"content-length: 100000" in head.lower()
        # The body stops short and the connection closes: never a completed response.
        got = len(c.buf)
        while c._fill(time.monotonic() + 10):
            got = len(c.buf)
        assert c.eof and got < 100000
    still_serves(proxy)


def test_close_mid_response_curl_h1(proxy):
    r = curl(proxy.url("/close-mid/100000"), "--http1.1")
    assert r.status == 200
    assert r.rc == 18, r  # CURLE_PARTIAL_FILE: transfer closed with bytes remaining
    assert len(r.body) < 100000


def test_close_mid_response_h2_resets_only_that_stream(proxy):
    # Whether the 200 HEADERS get out before the RST_STREAM depends on timing (the origin's
    # head, partial body and FIN can arrive in one read); the stream must end in error.
    r = curl(proxy.url("/close-mid/100000"), "--http2-prior-knowledge")
    assert r.status in (0, 200), r
    assert r.rc in (18, 92), r  # partial file / HTTP/2 stream error (RST_STREAM)
    assert len(r.body) < 100000
    # A sibling stream on the same connection (nghttp keeps one connection) still completes.
    from lgharness.clients import run
    out = run(["nghttp", "-n", "-s", "--timeout=10", proxy.url("/close-mid/100000"),
               proxy.url("/size/50000")], timeout=30)
    assert "/size/50000" in out.stdout and "200" in out.stdout, out.stdout + out.stderr
    still_serves(proxy)


@pytest.mark.parametrize("mode,flags", MODES, ids=[m for m, _ in MODES])
def test_stall_is_504_ut_at_route_timeout(proxy, mode, flags):
    t0 = time.monotonic()
    r = curl(proxy.url("/stall"), *flags)
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert r.body == b"upstream request timeout"
    assert 0.9 <= took < 4, took
    still_serves(proxy)


@pytest.mark.parametrize("mode,flags", MODES, ids=[m for m, _ in MODES])
def test_garbage_response_is_502(proxy, mode, flags):
    r = curl(proxy.url("/garbage"), *flags)
    assert r.status == 502, r
    assert r.body.decode().startswith(PROTO_BODY_PREFIX) and "protocol error" in r.body.decode(), r.body
    still_serves(proxy)


def test_response_with_cl_and_te_is_502(proxy):
    r = curl(proxy.url("/bad-framing"), "--http1.1")
    assert r.status == 502, r
    assert b"hello" not in r.body
    still_serves(proxy)


def test_connect_timeout_to_blackhole(start_legate, free_port, origin):
    """A listener whose accept queue is full never completes the handshake: connect_timeout
    applies -> 503 UF at about that time. Filled with a backlog-0 socket and held connections."""
    import socket
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    held = []
    try:
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", hole.getsockname()[1]))
            except BlockingIOError:
                pass
            held.append(s)
        port = free_port()
        lg = start_legate(bs.simple_proxy(port, hole.getsockname()[1],
                                          cluster_extra={"connect_timeout": "0.25s"}))
        t0 = time.monotonic()
        r = curl(lg.url("/"), "--http1.1")
        took = time.monotonic() - t0
        assert r.status == 503, r
        assert r.body.decode().startswith(PROTO_BODY_PREFIX)
        assert 0.2 <= took < 3, took
    finally:
        for s in held:
            s.close()
        hole.close()


def test_second_host_used_when_first_refuses(start_legate, free_port, origin):
    """Round robin over a dead and a live host: without retries some requests fail with 503 UF,
    the others reach the origin; legate never hangs."""
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, [free_port(), origin.port]))
    codes = [curl(lg.url("/"), "--http1.1").status for _ in range(6)]
    assert set(codes) <= {200, 503} and 200 in codes and 503 in codes, codes
