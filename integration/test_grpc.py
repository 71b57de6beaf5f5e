"""gRPC through legate with Python grpcio on both ends: unary and the three streaming kinds,
deadlines (the client's, grpc-timeout with max_stream_duration, the route timeout), status with
message and details, custom metadata both ways (text and -bin), 4 MiB messages, unknown methods,
and local replies sent as gRPC trailers-only responses (issue 3, items 5, 7, 9).
"""
import hashlib
import threading
import time

import grpc
import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl
from lgharness.grpc_service import Client, status_proto
from lgharness.origin_h1 import pattern_bytes


def grpc_proxy(start_legate, free_port, upstream_port, *, route_timeout=None, route_extra=None,
               grpc_match=False):
    port = free_port()
    m = {"prefix": "/", "grpc": {}} if grpc_match else None
    r = bs.route("/", "grpc", timeout=route_timeout, match=m, **(route_extra or {}))
    cfg = bs.bootstrap([bs.listener("l", port, bs.hcm([r]))],
                       [bs.cluster("grpc", [upstream_port], h2=True)])
    return start_legate(cfg)


@pytest.fixture
def proxy(start_legate, free_port, grpc_server):
    lg = grpc_proxy(start_legate, free_port, grpc_server.port, grpc_match=True)
    lg.service = grpc_server.service
    return lg


@pytest.fixture
def client(proxy):
    c = Client("127.0.0.1:%d" % proxy.port)
    yield c
    c.close()


def test_unary(client):
    assert client.unary(b"hello", timeout=10) == b"hello"
    assert client.unary(b"", timeout=10) == b""


def test_unary_many_sequential_and_concurrent(client):
    for i in range(50):
        assert client.unary(b"m%d" % i, timeout=10) == b"m%d" % i
    futs = [client.unary.future(b"c%d" % i, timeout=10) for i in range(50)]
    assert [f.result() for f in futs] == [b"c%d" % i for i in range(50)]


def test_server_streaming(client):
    msgs = list(client.server_stream(b"100,1000", timeout=10))
    assert len(msgs) == 100
    body = pattern_bytes(1000)
    for i, m in enumerate(msgs):
        assert m == i.to_bytes(4, "big") + body


def test_client_streaming(client):
    msgs = [bytes([i]) * (i * 100) for i in range(1, 60)]
    n, total, sha = client.client_stream(iter(msgs), timeout=10).decode().split(",")
    assert int(n) == len(msgs)
    assert int(total) == sum(len(m) for m in msgs)
    assert sha == hashlib.sha256(b"".join(msgs)).hexdigest()


def test_bidi_ping_pong(client):
    """Each response must arrive before the next request is sent: a proxy that buffers a stream
    body deadlocks here (bounded by the deadline)."""
    to_send = threading.Semaphore(1)
    sent = []

    def requests():
        for i in range(20):
            if not to_send.acquire(timeout=10):
                return
            m = b"ping %d" % i
            sent.append(m)
            yield m

    got = []
    for resp in client.bidi(requests(), timeout=20):
        got.append(resp)
        to_send.release()
    assert got == sent and len(got) == 20


def test_bidi_concurrent_streams(client):
    def one(k):
        msgs = [b"s%d-%d" % (k, i) for i in range(30)]
        return list(client.bidi(iter(msgs), timeout=20)) == msgs

    results = [None] * 10
    ts = [threading.Thread(target=lambda k=k: results.__setitem__(k, one(k))) for k in range(10)]
    [t.start() for t in ts]
    [t.join(30) for t in ts]
    assert all(results), results


def test_4mib_messages_both_ways(client):
    big = pattern_bytes(4 * 1024 * 1024)
    assert client.unary(big, timeout=30) == big
    msgs = list(client.server_stream(b"3,%d" % (4 * 1024 * 1024 - 4), timeout=30))
    assert [len(m) for m in msgs] == [4 * 1024 * 1024] * 3
    n, total, sha = client.client_stream(iter([big, big]), timeout=30).decode().split(",")
    assert (int(n), int(total)) == (2, 2 * len(big))
    assert list(client.bidi(iter([big]), timeout=30)) == [big]


def test_custom_metadata_both_ways(client):
    md = (("x-echo-text", "hello"), ("x-echo-bin", b"\x00\x01\xff"), ("x-not-echoed", "z"))
    resp, call = client.unary.with_call(b"m", metadata=md, timeout=10)
    assert resp == b"m"
    initial = dict(call.initial_metadata())
    trailing = dict(call.trailing_metadata())
    assert initial["x-echo-text"] == "hello"
    assert initial["x-echo-bin"] == b"\x00\x01\xff"
    assert "x-not-echoed" not in initial
    assert trailing["x-echo-t-text"] == "hello"
    assert trailing["x-echo-t-bin"] == b"\x00\x01\xff"


def test_status_message_and_details(client):
    with pytest.raises(grpc.RpcError) as ei:
        client.fail('7|not allowed: \u00e9 "quoted" 100%'.encode(), timeout=10)
    e = ei.value
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED
    assert e.details() == 'not allowed: \u00e9 "quoted" 100%'
    trailing = dict(e.trailing_metadata())
    assert trailing["grpc-status-details-bin"] == status_proto(7, 'not allowed: \u00e9 "quoted" 100%')


def test_unknown_method_is_unimplemented(client):
    with pytest.raises(grpc.RpcError) as ei:
        client.unknown(b"x", timeout=10)
    assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_client_deadline_exceeded_cancels_upstream(client, proxy):
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as ei:
        client.sleep(b"10", timeout=0.5)
    assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 5
    # legate must pass the cancellation (RST_STREAM) on to the upstream stream.
    assert proxy.service.cancelled.wait(5), "the upstream call was not cancelled"


def test_grpc_timeout_header_with_max_stream_duration(start_legate, free_port, grpc_server):
    """max_stream_duration.grpc_timeout_header_max: 0 makes grpc-timeout the route timeout; the
    call ends with DEADLINE_EXCEEDED either way (legate's reply or the client's own deadline),
    and the upstream stream is cancelled."""
    lg = grpc_proxy(start_legate, free_port, grpc_server.port, route_extra={
        "action": {"max_stream_duration": {"grpc_timeout_header_max": "0s"}}})
    c = Client("127.0.0.1:%d" % lg.port)
    try:
        with pytest.raises(grpc.RpcError) as ei:
            c.sleep(b"10", timeout=0.5)
        assert ei.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert grpc_server.service.cancelled.wait(5)
    finally:
        c.close()


def test_route_timeout_is_504_ut_as_grpc_unavailable(start_legate, free_port, grpc_server):
    """A route timeout on a gRPC request: Envoy answers trailers-only, grpc-status 14
    (UNAVAILABLE, mapped from HTTP 504) with grpc-message "upstream request timeout"."""
    lg = grpc_proxy(start_legate, free_port, grpc_server.port, route_timeout="0.5s")
    c = Client("127.0.0.1:%d" % lg.port)
    try:
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as ei:
            c.sleep(b"10", timeout=10)
        assert 0.4 < time.monotonic() - t0 < 5
        assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
        assert ei.value.details() == "upstream request timeout"
        assert grpc_server.service.cancelled.wait(5)
    finally:
        c.close()


def test_upstream_refused_is_grpc_unavailable_trailers_only(start_legate, free_port):
    dead = free_port()
    lg = grpc_proxy(start_legate, free_port, dead)
    c = Client("127.0.0.1:%d" % lg.port)
    try:
        with pytest.raises(grpc.RpcError) as ei:
            c.unary(b"x", timeout=10)
        assert ei.value.code() == grpc.StatusCode.UNAVAILABLE
        assert ei.value.details().startswith(
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure")
    finally:
        c.close()
    # On the wire: HTTP 200, content-type application/grpc, grpc-status in the only HEADERS.
    r = curl(lg.url("/lg.test.TestService/Unary"), "--http2-prior-knowledge",
             "-H", "content-type: application/grpc", "-H", "te: trailers",
             "--data-binary", "@-", data_stdin=b"\x00\x00\x00\x00\x01x")
    assert r.status == 200, r
    assert r.header("grpc-status") == "14"
    assert r.header("content-type") == "application/grpc"


def test_no_route_for_grpc_is_unimplemented(start_legate, free_port, grpc_server):
    port = free_port()
    cfg = bs.bootstrap([bs.listener("l", port, bs.hcm([bs.route("/other.Service/", "grpc")]))],
                       [bs.cluster("grpc", [grpc_server.port], h2=True)])
    lg = start_legate(cfg)
    c = Client("127.0.0.1:%d" % lg.port)
    try:
        with pytest.raises(grpc.RpcError) as ei:
            c.unary(b"x", timeout=10)
        # Envoy: 404 NR mapped to grpc-status 12.
        assert ei.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        c.close()
