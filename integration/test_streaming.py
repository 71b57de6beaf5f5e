"""Bodies stream through legate, both ways, with backpressure (issue 3, item 9; DESIGN §5):
200 MiB downloads and uploads over HTTP/1.1 and h2c (to HTTP/1.1 and HTTP/2 upstreams), each
verified by SHA-256, while legate's RSS, read from /proc/<pid>/status during the transfer, stays
under a bound; responses and request bodies are forwarded as they arrive, not when complete.
"""
import hashlib
import json
import subprocess
import threading
import time

import pytest

from lgharness import bootstrap as bs
from lgharness import h2raw
from lgharness.h2raw import H2Raw
from lgharness.http1raw import Conn
from lgharness.origin_h1 import pattern_chunks, pattern_sha256

SIZE = 200 * 1024 * 1024
RSS_BOUND_MIB = 64
TRANSFER_TIMEOUT = 180


class RssSampler:
    """Samples a process's VmRSS every 20 ms in a thread; `.max_mib` after stop()."""

    def __init__(self, proc):
        self.proc = proc
        self.max_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.02):
            v = self.proc.rss_kib()
            if v:
                self.max_kib = max(self.max_kib, v)
                self.samples += 1

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join(5)

    @property
    def max_mib(self):
        return self.max_kib / 1024.0


def check_rss(sampler, is_asan):
    assert sampler.samples > 5, "transfer too short to sample RSS"
    if not is_asan:
        assert sampler.max_mib < RSS_BOUND_MIB, \
            "legate RSS reached %.1f MiB while streaming (bound %d MiB)" % (sampler.max_mib, RSS_BOUND_MIB)


def curl_stream(url, *flags, upload_size=None):
    """Runs curl with its output hashed as it arrives and, with upload_size, pattern bytes fed
    to its stdin (-T -). Returns (rc, out_len, out_sha256, out_head, stderr)."""
    argv = ["curl", "-sS", "--max-time", str(TRANSFER_TIMEOUT), *flags]
    if upload_size is not None:
        argv += ["-T", "-"]
    argv += [url, "-o", "-"]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if upload_size is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    feeder = None
    if upload_size is not None:
        def feed():
            try:
                for c in pattern_chunks(upload_size):
                    p.stdin.write(c)
                p.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
    h, n, head = hashlib.sha256(), 0, b""
    while True:
        d = p.stdout.read(1 << 20)
        if not d:
            break
        if len(head) < 4096:
            head += d[:4096 - len(head)]
        h.update(d)
        n += len(d)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if feeder:
        feeder.join(30)
    return p.returncode, n, h.hexdigest(), head, p.stderr.read().decode("utf-8", "replace")


@pytest.fixture
def proxy(start_legate, free_port, origin):
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, origin.port, route_timeout="0s"))
    lg.origin = origin
    return lg


@pytest.mark.parametrize("flags", [["--http1.1"], ["--http2-prior-knowledge"]], ids=["h1", "h2c"])
def test_download_200mib_bounded_rss(proxy, legate_is_asan, flags):
    with RssSampler(proxy) as s:
        rc, n, sha, _, err = curl_stream(proxy.url("/size/%d" % SIZE), *flags)
    assert rc == 0, err
    assert n == SIZE
    assert sha == pattern_sha256(SIZE)
    check_rss(s, legate_is_asan)


def test_download_chunked_200mib_h1(proxy, legate_is_asan):
    with RssSampler(proxy) as s:
        rc, n, sha, _, err = curl_stream(proxy.url("/chunked/%d" % SIZE), "--http1.1")
    assert rc == 0, err
    assert (n, sha) == (SIZE, pattern_sha256(SIZE))
    check_rss(s, legate_is_asan)


@pytest.mark.parametrize("flags", [["--http1.1"], ["--http2-prior-knowledge"]], ids=["h1", "h2c"])
def test_upload_200mib_bounded_rss(proxy, legate_is_asan, flags):
    """curl -T - sends the body chunked (h1) or as DATA frames without content-length (h2c);
    the origin hashes what it got."""
    with RssSampler(proxy) as s:
        rc, n, _, out, err = curl_stream(proxy.url("/sink"), *flags, upload_size=SIZE)
    assert rc == 0, err
    got = json.loads(out)
    assert got == {"body_len": SIZE, "body_sha256": pattern_sha256(SIZE)}
    check_rss(s, legate_is_asan)


def test_upload_200mib_content_length_h1(proxy, legate_is_asan):
    with RssSampler(proxy) as s, Conn("127.0.0.1", proxy.port, timeout=TRANSFER_TIMEOUT) as c:
        c.send(b"PUT /sink HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % SIZE)
        for chunk in pattern_chunks(SIZE):
            assert c.send(chunk)
        r = c.read_response(timeout=TRANSFER_TIMEOUT)
    assert r is not None and r.status == 200
    assert json.loads(r.body) == {"body_len": SIZE, "body_sha256": pattern_sha256(SIZE)}
    check_rss(s, legate_is_asan)


def test_echo_200mib_both_ways_h2c_to_h2_upstream(start_legate, free_port, nghttpd, legate_is_asan):
    """Upload and download at once through HTTP/2 on both sides (nghttpd --echo-upload)."""
    up = nghttpd()
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, up.port, h2_upstream=True, route_timeout="0s"))
    with RssSampler(lg) as s:
        rc, n, sha, _, err = curl_stream(lg.url("/echo"), "--http2-prior-knowledge", upload_size=SIZE)
    assert rc == 0, err
    assert (n, sha) == (SIZE, pattern_sha256(SIZE))
    check_rss(s, legate_is_asan)


def test_response_streams_as_it_arrives_h1(proxy):
    """/slow/10/150: ten chunks 150 ms apart; the first must reach the client long before the
    last is written (a proxy that buffers whole responses fails this)."""
    with Conn("127.0.0.1", proxy.port) as c:
        t0 = time.monotonic()
        c.send(b"GET /slow/10/150 HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = t0 + 10
        head = c._until(b"\r\n\r\n", deadline)
        assert head is not None and head.startswith(b"HTTP/1.1 200"), head
        while b"chunk 0" not in c.buf:
            assert c._fill(deadline)
        first = time.monotonic() - t0
        while b"chunk 9" not in c.buf:
            assert c._fill(deadline)
        last = time.monotonic() - t0
    assert first < 0.8 and last > 1.2, (first, last)


def test_response_streams_as_it_arrives_h2(proxy):
    with H2Raw("127.0.0.1", proxy.port) as c:
        c.handshake()
        t0 = time.monotonic()
        c.send(c.request_headers(1, "/slow/10/150"))
        first = last = None
        body = b""
        while time.monotonic() - t0 < 10:
            f = c.read_frame(10)
            assert f is not None
            if f[0] == h2raw.DATA and f[2] == 1:
                body += f[3]
                if first is None and f[3]:
                    first = time.monotonic() - t0
                if f[1] & h2raw.END_STREAM:
                    last = time.monotonic() - t0
                    break
    assert body == b"".join(b"chunk %d\n" % i for i in range(10))
    assert first < 0.8 and last > 1.2, (first, last)


def test_request_head_forwarded_before_body_completes(proxy):
    """The origin must see the request head while most of the body is still unsent."""
    with Conn("127.0.0.1", proxy.port) as c:
        c.send(b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 1000)
        heads = proxy.origin.wait_heads(1, timeout=5)
        assert heads, "legate held the request head until the body was complete"
        c.send(b"x" * (2000000 - 1000))
        r = c.read_response()
    assert r.status == 200 and json.loads(r.body)["body_len"] == 2000000


def test_slow_reader_pauses_upstream(proxy, legate_is_asan):
    """A client that does not read a 200 MiB response: legate's memory stays bounded (it stops
    reading the upstream), then the client reads it all, intact."""
    import socket
    with Conn("127.0.0.1", proxy.port, timeout=TRANSFER_TIMEOUT) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.send(b"GET /size/%d HTTP/1.1\r\nHost: x\r\n\r\n" % SIZE)
        with RssSampler(proxy) as s:
            time.sleep(2)  # the case under test is the absence of reads for a while
        if not legate_is_asan:
            assert s.max_mib < RSS_BOUND_MIB, s.max_mib
        r = c.read_response(timeout=TRANSFER_TIMEOUT)
    assert len(r.body) == SIZE and hashlib.sha256(r.body).hexdigest() == pattern_sha256(SIZE)
