"""The decompressor filter (envoy.filters.http.decompressor, gzip library) end to end: gzip
responses from the origin reach the client inflated (SHA-256 over MiBs, streamed), gzip request
bodies reach the origin inflated, gzip is advertised upstream, no-transform is respected, and a
gzip bomb in either direction is refused (400 or a reset, zlib_data_error counted) instead of
being inflated into memory.
"""
import gzip
import hashlib
import http.client
import json
import urllib.request

import pytest

from lgharness import bootstrap as bs
from lgharness.origin_h1 import text_bytes
from lgharness.ports import pick_port

T = "type.googleapis.com/"
DECOMPRESSOR = T + "envoy.extensions.filters.http.decompressor.v3.Decompressor"
GUNZIP = T + "envoy.extensions.compression.gzip.decompressor.v3.Gzip"
PREFIX = "http.ingress_http.decompressor.lib.gzip."


@pytest.fixture(scope="module")
def env(start_legate_module, origin_module):
    port, admin = pick_port(), pick_port()
    dec = {"name": "envoy.filters.http.decompressor",
           "typed_config": {"@type": DECOMPRESSOR,
                            "decompressor_library": {"name": "lib", "typed_config": {"@type": GUNZIP}}}}
    lst = bs.listener("ingress", port, bs.hcm([bs.route("/", "app")], http_filters=[dec, bs.router_filter()]))
    cfg = bs.bootstrap([lst], [bs.cluster("app", [origin_module.port])], admin_port=admin)
    start_legate_module(cfg, ports=[port, admin])
    return {"port": port, "admin": admin}


def exchange(port, method, target, headers=None, body=None):
    """(status, headers dict, body) or None when the connection was reset or cut short."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.putrequest(method, target, skip_accept_encoding=True)
        for n, v in (headers or {}).items():
            c.putheader(n, v)
        if body is not None:
            c.putheader("content-length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except (http.client.IncompleteRead, ConnectionError, http.client.RemoteDisconnected):
        return None
    finally:
        c.close()


def stat(env, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/stats?format=json" % env["admin"], timeout=10) as r:
        doc = json.load(r)
    return {s["name"]: s.get("value") for s in doc["stats"] if "name" in s}.get(PREFIX + name)


@pytest.mark.parametrize("query", ["", "&chunked=1"])
def test_gzip_response_reaches_client_inflated(env, query):
    n = 4 * 1024 * 1024 + 5
    before = stat(env, "response.decompressed")
    status, h, body = exchange(env["port"], "GET", "/text/%d?gz=1%s" % (n, query))
    assert status == 200
    assert "content-encoding" not in h
    assert "content-length" not in h
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(text_bytes(n)).hexdigest()
    assert stat(env, "response.decompressed") == before + 1


def test_no_transform_response_left_alone(env):
    status, h, body = exchange(env["port"], "GET", "/text/5000?gz=1&h=cache-control:no-transform")
    assert h.get("content-encoding") == "gzip"
    assert gzip.decompress(body) == text_bytes(5000)


def test_gzip_request_reaches_origin_inflated_and_gzip_advertised(env):
    plain = text_bytes(300000)
    status, h, body = exchange(env["port"], "POST", "/echo", {"content-encoding": "gzip",
                                                              "accept-encoding": "br, gzip;q=0"}, gzip.compress(plain))
    assert status == 200
    seen = json.loads(body)
    sent = {n.lower(): v for n, v in seen["headers"]}
    assert seen["body_len"] == len(plain)
    assert seen["body_sha256"] == hashlib.sha256(plain).hexdigest()
    assert "content-encoding" not in sent
    assert sent["accept-encoding"] == "br,gzip"  # gzip;q=0 replaced: legate inflates for the client


def test_request_bomb_refused(env):
    bomb = gzip.compress(bytes(64 * 1024 * 1024), 9)  # ~64 KiB that inflate to 64 MiB
    before = stat(env, "decompressor_library.zlib_data_error") or 0
    r = exchange(env["port"], "POST", "/sink", {"content-encoding": "gzip"}, bomb)
    assert r is None or r[0] == 400
    assert stat(env, "decompressor_library.zlib_data_error") == before + 1


def test_response_bomb_refused(env):
    before = stat(env, "decompressor_library.zlib_data_error") or 0
    r = exchange(env["port"], "GET", "/text/%d?gz=1&zeros=1" % (64 * 1024 * 1024))
    assert r is None or len(r[2]) < 64 * 1024 * 1024
    assert stat(env, "decompressor_library.zlib_data_error") == before + 1


def test_not_gzip_body_refused(env):
    r = exchange(env["port"], "POST", "/sink", {"content-encoding": "gzip"}, b"this is not gzip at all" * 10)
    assert r is None or r[0] == 400
