"""HTTP/2 flood and abuse cases with a raw frame client (research/reliability-anchors.md a.2 and
(b) 1, 3-6, 9; Envoy's Http2FloodMitigationTest): PING and SETTINGS floods from a client that does
not read, too many SETTINGS entries, rapid reset (CVE-2023-44487), CONTINUATION floods
(CVE-2024-27316 class), empty DATA frames (CVE-2019-9518), too many headers, and the stream
concurrency limit.

Each case asserts the connection's fate (GOAWAY and/or close within a bound), that the upstream
saw at most a bounded amount of work, that legate's RSS did not balloon (release builds), and that
legate keeps serving a new client right after.
"""
import time

import pytest

from lgharness import bootstrap as bs
from lgharness import h2raw
from lgharness.clients import curl
from lgharness.h2raw import H2Raw

FLOOD_BUDGET_S = 30  # every flood case ends within this


@pytest.fixture(scope="module")
def proxy(start_legate_module, origin_module):
    from lgharness.ports import pick_port
    port = pick_port()
    cfg = bs.simple_proxy(port, origin_module.port, route_timeout="5s", hcm_extra={
        "http2_protocol_options": {"max_concurrent_streams": 10}})
    lg = start_legate_module(cfg)
    lg.origin = origin_module
    return lg


@pytest.fixture
def clean(proxy, legate_is_asan):
    proxy.origin.reset()
    proxy.rss_before = proxy.rss_kib()
    yield proxy
    # I2: a new client is served right after the attack.
    t0 = time.monotonic()
    r = curl(proxy.url("/"), "--http2-prior-knowledge", timeout=10)
    assert r.status == 200 and time.monotonic() - t0 < 2, r
    # I3: no memory kept from the attack (ASan's shadow and quarantine make RSS meaningless).
    if not legate_is_asan:
        grown = (proxy.rss_kib() - proxy.rss_before) / 1024
        assert grown < 32, "legate RSS grew %.1f MiB during the case" % grown


def flood(conn, one, count, batch=1000, budget=FLOOD_BUDGET_S):
    """Sends `one` (bytes or a function of i) count times in batches. Returns 'closed' when the
    peer closed or reset during the flood, 'blocked' when it stopped reading (a send stalled for
    2 s), 'sent' otherwise."""
    deadline = time.monotonic() + budget
    conn.sock.settimeout(2)
    i = 0
    while i < count:
        n = min(batch, count - i)
        data = one * n if isinstance(one, bytes) else b"".join(one(j) for j in range(i, i + n))
        if not conn.send(data):
            return "closed" if conn.closed else "blocked"
        i += n
        if time.monotonic() > deadline:
            return "blocked"
    return "sent"


def fate(conn, timeout=10):
    return conn.wait_goaway_or_close(timeout)


def test_ping_flood_without_reading_closes(clean):
    with H2Raw("127.0.0.1", clean.port, rcvbuf=4096) as c:
        c.handshake()
        how = flood(c, h2raw.ping(), 2_000_000, batch=20000)
        assert how in ("closed", "sent", "blocked")
        assert fate(c, timeout=15) in ("closed", "goaway"), how
        if c.goaway:
            assert c.goaway[1] in (h2raw.ENHANCE_YOUR_CALM, h2raw.PROTOCOL_ERROR, h2raw.NO_ERROR), c.goaway


def test_settings_flood_without_reading_closes(clean):
    with H2Raw("127.0.0.1", clean.port, rcvbuf=4096) as c:
        c.handshake()
        how = flood(c, h2raw.settings(), 2_000_000, batch=20000)
        assert fate(c, timeout=15) in ("closed", "goaway"), how


def test_settings_with_too_many_entries_is_enhance_your_calm(clean):
    with H2Raw("127.0.0.1", clean.port) as c:
        c.handshake()
        c.send(h2raw.settings([(0x3, 100)] * 40))  # 40 entries; nghttp2's limit is 32
        assert fate(c) in ("closed", "goaway")
        assert c.goaway is not None and c.goaway[1] == h2raw.ENHANCE_YOUR_CALM, c.goaway


def test_rapid_reset_closes_and_bounds_upstream_work(clean):
    with H2Raw("127.0.0.1", clean.port) as c:
        c.handshake()

        def pair(i):
            sid = 1 + 2 * i
            return c.request_headers(sid, "/echo/rr") + h2raw.rst(sid, h2raw.CANCEL)

        flood(c, pair, 10000, batch=500)
        assert fate(c, timeout=15) in ("closed", "goaway")
    time.sleep(0.2)  # let in-flight upstream requests land before counting them
    n = len([h for h in clean.origin.heads if b"/echo/rr" in h.split(b"\r\n", 1)[0]])
    assert n < 500, "upstream saw %d requests from a rapid-reset client" % n


def test_continuation_flood_empty_frames_closes(clean):
    with H2Raw("127.0.0.1", clean.port) as c:
        c.handshake()
        block = c.header_block([(":method", "GET"), (":scheme", "http"), (":path", "/echo/cont"),
                                (":authority", "x")])
        c.send(h2raw.frame(h2raw.HEADERS, h2raw.END_STREAM, 1, block))  # no END_HEADERS
        flood(c, h2raw.frame(h2raw.CONTINUATION, 0, 1, b""), 10000)
        assert fate(c) in ("closed", "goaway")
    assert clean.origin.heads == []


def test_continuation_flood_large_header_closes(clean):
    """One header value of 1 MiB spread over 64 CONTINUATION frames of 16 KiB: the stream or the
    connection ends long before 1 MiB is buffered; never forwarded."""
    with H2Raw("127.0.0.1", clean.port) as c:
        c.handshake()
        block = c.header_block([(":method", "GET"), (":scheme", "http"), (":path", "/echo/big"),
                                (":authority", "x")])
        # HPACK literal without indexing, new name "x-big", raw (non-Huffman) value of 1 MiB.
        val_len = 1 << 20
        lit = b"\x00\x05x-big" + b"\x7f" + _hpack_int_rest(val_len - 127)
        c.send(h2raw.frame(h2raw.HEADERS, h2raw.END_STREAM, 1, block + lit))
        chunk = b"a" * 16384
        for i in range(64):
            last = i == 63
            if not c.send(h2raw.frame(h2raw.CONTINUATION, h2raw.END_HEADERS if last else 0, 1, chunk)):
                break
        # The connection ends (GOAWAY/close) or stream 1 alone is refused (RST_STREAM or 431).
        ended = c.wait_until(lambda: c.goaway or 1 in c.resets or 1 in c.headers_on, timeout=10)
        assert ended or c.closed
    assert clean.origin.heads == []


def _hpack_int_rest(n):
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def test_empty_data_frames_flood_closes(clean):
    with H2Raw("127.0.0.1", clean.port) as c:
        c.handshake()
        c.send(c.request_headers(1, "/sink", method="POST", end_stream=False))
        flood(c, h2raw.frame(h2raw.DATA, 0, 1, b""), 10000)
        assert fate(c) in ("closed", "goaway")
    assert all(q.path != "/sink" for q in clean.origin.requests), "the flooded request completed"


def test_too_many_headers_rejected_and_not_forwarded(clean):
    with H2Raw("127.0.0.1", clean.port) as c:
        c.handshake()
        extra = [("x-h%d" % i, "v") for i in range(101)]
        c.send(c.request_headers(1, "/echo/many", extra=extra))
        resp = c.read_response(1, timeout=5)
        # Envoy: the stream is reset (or 431); the connection may go on.
        assert resp is None or dict(resp[0])[":status"] == "431", resp
    assert all(b"/echo/many" not in h for h in clean.origin.heads)


def test_streams_over_max_concurrent_are_refused(clean):
    """max_concurrent_streams 10 and a client that opens 11 streams in its first flight, before
    it acknowledged legate's SETTINGS: the 11th is refused with RST_STREAM REFUSED_STREAM
    (RFC 9113 §5.1.2; what nghttp2 does while its SETTINGS are unacknowledged), the 10 others
    complete. (After the ACK nghttp2 makes the same excess a connection error, PROTOCOL_ERROR.)"""
    with H2Raw("127.0.0.1", clean.port) as c:
        ids = [1 + 2 * i for i in range(11)]
        c.send(h2raw.PREFACE + h2raw.settings() +
               b"".join(c.request_headers(s, "/slow/2/100") for s in ids))
        assert c.wait_until(lambda: all(c.streams.get(s, {}).get("done") for s in ids), timeout=10), c.streams
        assert c.streams[ids[-1]]["reset"] == h2raw.REFUSED_STREAM, c.streams[ids[-1]]
        for s in ids[:-1]:
            st = c.streams[s]
            assert st["reset"] is None and dict(st["headers"])[":status"] == "200", (s, st)
            assert bytes(st["body"]) == b"chunk 0\nchunk 1\n"
