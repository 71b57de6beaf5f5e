"""The compressor filter (envoy.filters.http.compressor, gzip library) end to end: legate between
real clients (Python's http.client + gzip/zlib, curl --compressed, curl over h2c) and the
scriptable origin's `text` mode. Checks the decision Envoy makes (sizes around the 30-byte
minimum, content types, q=0, identity, no-transform, existing Content-Encoding, HEAD/204/304,
ETag, Vary, per-route disable), that bodies decode back byte for byte (SHA-256 for several MiB),
that a streamed response reaches the client compressed before the origin has finished, and
Envoy's stat names on the admin endpoint.
"""
import gzip
import hashlib
import http.client
import json
import subprocess
import time
import urllib.request
import zlib

import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl
from lgharness.origin_h1 import text_bytes

T = "type.googleapis.com/"
COMPRESSOR = T + "envoy.extensions.filters.http.compressor.v3.Compressor"
PER_ROUTE = T + "envoy.extensions.filters.http.compressor.v3.CompressorPerRoute"
GZIP = T + "envoy.extensions.compression.gzip.compressor.v3.Gzip"
PREFIX = "http.ingress_http.compressor.text.gzip.response."


def compressor_filter(response=None):
    cfg = {"@type": COMPRESSOR,
           "compressor_library": {"name": "text", "typed_config": {"@type": GZIP}},
           "response_direction_config": response or {}}
    return {"name": "envoy.filters.http.compressor", "typed_config": cfg}


@pytest.fixture(scope="module")
def env(start_legate_module, origin_module, tmp_path_factory):
    from lgharness.ports import pick_port
    port, etag_port, admin = pick_port(), pick_port(), pick_port()
    routes = [bs.route("/nocomp/", "app",
                       typed_per_filter_config={"envoy.filters.http.compressor":
                                                {"@type": PER_ROUTE, "disabled": True}}),
              bs.route("/", "app")]
    main = bs.listener("ingress", port, bs.hcm(routes, http_filters=[compressor_filter(), bs.router_filter()]))
    strict = bs.listener("strict", etag_port, bs.hcm(
        [bs.route("/", "app")], stat_prefix="strict",
        http_filters=[compressor_filter({"disable_on_etag_header": True, "remove_accept_encoding_header": True}),
                      bs.router_filter()]))
    cfg = bs.bootstrap([main, strict], [bs.cluster("app", [origin_module.port])], admin_port=admin)
    lg = start_legate_module(cfg, ports=[port, etag_port, admin])
    return {"port": port, "etag_port": etag_port, "admin": admin, "origin": origin_module, "legate": lg}


def get(port, target, headers=None, method="GET"):
    """One request; returns (response, raw body bytes as sent on the wire, transfer decoded)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        # No Accept-Encoding unless the test gives one (http.client would add "identity").
        c.putrequest(method, target, skip_accept_encoding=True)
        for n, v in (headers or {}).items():
            c.putheader(n, v)
        c.endheaders()
        r = c.getresponse()
        return r, r.read()
    finally:
        c.close()


def stats(env):
    with urllib.request.urlopen("http://127.0.0.1:%d/stats?format=json" % env["admin"], timeout=10) as r:
        doc = json.load(r)
    return {s["name"]: s.get("value") for s in doc["stats"] if "name" in s}


AE = {"accept-encoding": "gzip"}


@pytest.mark.parametrize("n,compressed", [(29, False), (30, True), (31, True), (100000, True)])
def test_sizes_around_min_content_length(env, n, compressed):
    r, body = get(env["port"], "/text/%d" % n, AE)
    assert r.status == 200
    if compressed:
        assert r.getheader("content-encoding") == "gzip"
        assert r.getheader("content-length") is None
        assert r.getheader("transfer-encoding") == "chunked"
        assert gzip.decompress(body) == text_bytes(n)
        assert r.getheader("vary") == "Accept-Encoding"
    else:
        assert r.getheader("content-encoding") is None
        assert r.getheader("content-length") == str(n)
        assert body == text_bytes(n)
        assert r.getheader("vary") is None


def test_curl_compressed_http1_and_h2c(env):
    url = "http://127.0.0.1:%d/text/50000?ct=application/json" % env["port"]
    r = curl(url, "--compressed")
    assert r.rc == 0 and r.status == 200, r
    assert r.header("content-encoding") == "gzip"
    assert r.body == text_bytes(50000)
    h2 = curl(url, "--http2-prior-knowledge", "-H", "accept-encoding: gzip")
    assert h2.rc == 0 and h2.version == "2", h2
    assert h2.header("content-encoding") == "gzip"
    assert h2.header("content-length") is None
    assert gzip.decompress(h2.body) == text_bytes(50000)


def test_large_streamed_body_sha256(env):
    n = 6 * 1024 * 1024 + 13
    before = stats(env)
    r, body = get(env["port"], "/text/%d?chunked=1" % n, {"accept-encoding": "deflate, gzip;q=0.8"})
    assert r.getheader("content-encoding") == "gzip"
    plain = gzip.decompress(body)
    assert hashlib.sha256(plain).hexdigest() == hashlib.sha256(text_bytes(n)).hexdigest()
    assert len(body) < n // 4  # the text compresses well: it was compressed, not just wrapped
    after = stats(env)
    assert after[PREFIX + "compressed"] == before[PREFIX + "compressed"] + 1
    assert after[PREFIX + "total_uncompressed_bytes"] - before[PREFIX + "total_uncompressed_bytes"] == n
    assert after[PREFIX + "total_compressed_bytes"] - before[PREFIX + "total_compressed_bytes"] == len(body)


def test_client_decodes_before_origin_finishes(env):
    """The origin sends 256 KiB, then waits; everything it sent must already decode at the client
    (sync flush per frame), and the rest follows once it is released."""
    origin = env["origin"]
    origin.release.clear()
    hold, n = 256 * 1024, 1024 * 1024
    c = http.client.HTTPConnection("127.0.0.1", env["port"], timeout=30)
    try:
        c.request("GET", "/text/%d?chunked=1&hold=%d" % (n, hold), headers=AE)
        r = c.getresponse()
        assert r.getheader("content-encoding") == "gzip"
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        got = bytearray()
        deadline = time.monotonic() + 15
        while len(got) < hold and time.monotonic() < deadline:
            got += d.decompress(r.read1(65536))
        assert bytes(got) == text_bytes(hold)  # all of it, and not more: the origin is waiting
        origin.release.set()
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            got += d.decompress(chunk)
        got += d.flush()
        assert d.eof
        assert bytes(got) == text_bytes(n)
    finally:
        origin.release.set()
        c.close()


def test_trailers_end_the_gzip_stream_h2c(env, tmp_path):
    """The origin ends its chunked body with trailers: the gzip trailer must go out before them."""
    url = "http://127.0.0.1:%d/text/40000?chunked=1" % env["port"]
    dump, out = tmp_path / "h", tmp_path / "b"
    p = subprocess.run(["curl", "-sS", "--max-time", "30", "--http2-prior-knowledge", "-H", "accept-encoding: gzip",
                        "-D", str(dump), "-o", str(out), url], capture_output=True, timeout=40)
    assert p.returncode == 0, p.stderr
    head = dump.read_text().lower()
    assert "content-encoding: gzip" in head
    assert "x-origin-trailer: done" in head
    assert gzip.decompress(out.read_bytes()) == text_bytes(40000)


@pytest.mark.parametrize("method,target", [("HEAD", "/text/1000"), ("GET", "/text/1000?status=204"),
                                           ("GET", "/text/1000?status=304")])
def test_no_body_responses_untouched(env, method, target):
    r, body = get(env["port"], target, AE, method=method)
    assert r.getheader("content-encoding") is None
    assert body == b""
    if method == "HEAD":
        assert r.getheader("content-length") == "1000"


@pytest.mark.parametrize("ae,stat", [("gzip;q=0", "header_not_valid"), ("br", "header_not_valid"),
                                     ("identity", "header_identity"), ("gzip;q=0, *", "header_not_valid")])
def test_refused_encodings(env, ae, stat):
    before = stats(env)
    r, body = get(env["port"], "/text/1000", {"accept-encoding": ae})
    assert r.getheader("content-encoding") is None
    assert body == text_bytes(1000)
    assert r.getheader("vary") == "Accept-Encoding"  # still varies on it
    assert stats(env)[PREFIX + stat] == before[PREFIX + stat] + 1


def test_wildcard_and_no_header(env):
    before = stats(env)
    r, body = get(env["port"], "/text/1000", {"accept-encoding": "*"})
    assert r.getheader("content-encoding") == "gzip"
    assert gzip.decompress(body) == text_bytes(1000)
    r, body = get(env["port"], "/text/1000", {"accept-encoding": ""})
    assert r.getheader("content-encoding") is None
    r, body = get(env["port"], "/text/1000")
    assert r.getheader("content-encoding") is None
    after = stats(env)
    assert after[PREFIX + "header_wildcard"] == before[PREFIX + "header_wildcard"] + 1
    assert after[PREFIX + "header_not_valid"] == before[PREFIX + "header_not_valid"] + 1
    assert after[PREFIX + "no_accept_header"] == before[PREFIX + "no_accept_header"] + 1


@pytest.mark.parametrize("query", ["h=cache-control:no-cache,%20No-Transform", "ct=image/png",
                                   "ct=application/octet-stream", "h=content-encoding:br"])
def test_not_compressible(env, query):
    r, body = get(env["port"], "/text/1000?" + query, AE)
    assert body == text_bytes(1000)
    assert r.getheader("content-encoding") in (None, "br")
    assert r.getheader("vary") is None


def test_etag_and_vary(env):
    r, body = get(env["port"], '/text/1000?h=etag:"v1"&h=vary:Origin', AE)
    assert r.getheader("content-encoding") == "gzip"
    assert r.getheader("etag") is None  # strong: no longer names these bytes
    assert r.getheader("vary") == "Origin, Accept-Encoding"
    r, body = get(env["port"], '/text/1000?h=etag:W/"v1"', AE)
    assert r.getheader("content-encoding") == "gzip"
    assert r.getheader("etag") == 'W/"v1"'


def test_disable_on_etag_and_remove_accept_encoding(env):
    before = stats(env)
    r, body = get(env["etag_port"], '/text/1000?h=etag:W/"v1"', AE)
    assert r.getheader("content-encoding") is None
    assert body == text_bytes(1000)
    r, body = get(env["etag_port"], "/echo", AE)
    sent = {n.lower(): v for n, v in json.loads(gzip.decompress(body))["headers"]}
    assert "accept-encoding" not in sent  # removed on the way to the origin
    after = stats(env)
    name = "http.strict.compressor.text.gzip.response.not_compressed_etag"
    assert after[name] == before.get(name, 0) + 1


def test_per_route_disabled(env):
    r, body = get(env["port"], "/nocomp/text/1000", AE)
    assert r.getheader("content-encoding") is None
    assert body == text_bytes(1000)
