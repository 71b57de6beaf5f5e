"""The cache filter (envoy.filters.http.cache, SimpleHttpCacheConfig) end to end: legate between
http.client / curl (HTTP/1.1 and h2c) and the scriptable origin's `text` mode, whose query sets the
response headers and whose request log counts what reached the upstream. Checks hits (one origin
request for two client requests, `age`), what is never stored (no-store, private, Authorization,
a Vary header that is not allowed), max-age expiry, ETag revalidation (the origin's 304 reaches the
client as the stored 200 with its body), allowed Vary variants, max_body_bytes, LRU eviction past
the 64 MiB bound, the `disabled` field and a route's FilterConfig disabled.
"""
import http.client
import time
import urllib.parse

import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl
from lgharness.origin_h1 import text_bytes

T = "type.googleapis.com/"
CACHE = T + "envoy.extensions.filters.http.cache.v3.CacheConfig"
SIMPLE = T + "envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig"


def cache_filter(**fields):
    cfg = {"@type": CACHE, "typed_config": {"@type": SIMPLE},
           "allowed_vary_headers": [{"exact": "x-variant"}]}
    cfg.update(fields)
    return {"name": "envoy.filters.http.cache", "typed_config": cfg}


@pytest.fixture(scope="module")
def env(start_legate_module, origin_module):
    from lgharness.ports import pick_port
    port, small, off, admin = pick_port(), pick_port(), pick_port(), pick_port()
    off_route = bs.route("/nocache/", "app", typed_per_filter_config={
        "envoy.filters.http.cache": {"@type": T + "envoy.config.route.v3.FilterConfig", "disabled": True}})
    main = bs.listener("ingress", port, bs.hcm([off_route, bs.route("/", "app")],
                                               http_filters=[cache_filter(), bs.router_filter()]))
    limited = bs.listener("small", small, bs.hcm([bs.route("/", "app")], stat_prefix="small",
                                                 http_filters=[cache_filter(max_body_bytes=1000),
                                                               bs.router_filter()]))
    disabled = bs.listener("off", off, bs.hcm([bs.route("/", "app")], stat_prefix="off",
                                              http_filters=[cache_filter(disabled=True), bs.router_filter()]))
    cfg = bs.bootstrap([main, limited, disabled], [bs.cluster("app", [origin_module.port])], admin_port=admin)
    lg = start_legate_module(cfg, ports=[port, small, off, admin])
    return {"port": port, "small": small, "off": off, "origin": origin_module, "legate": lg}


def target(n, tag, *headers, **opts):
    """A `text` target unique to the test (tag), with response headers NAME:VALUE."""
    q = [("t", tag)] + [("h", h) for h in headers] + list(opts.items())
    return "/text/%d?%s" % (n, urllib.parse.urlencode(q))


def get(port, path, headers=None, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r, r.read()
    finally:
        c.close()


def twice(port, path, headers=None):
    """The same request twice; returns both responses."""
    return [get(port, path, headers)[0] for _ in range(2)]


def origin_hits(env, path):
    return sum(1 for r in env["origin"].requests if r.target == path)


def test_fresh_hit_is_served_from_cache(env):
    path = target(3000, "hit", "cache-control:max-age=60")
    r1, b1 = get(env["port"], path)
    r2, b2 = get(env["port"], path)
    assert r1.status == r2.status == 200
    assert b1 == b2 == text_bytes(3000)
    assert r1.getheader("age") is None
    assert r2.getheader("age") is not None and int(r2.getheader("age")) >= 0
    assert r2.getheader("content-length") == "3000"
    assert r2.getheader("cache-control") == "max-age=60"
    assert origin_hits(env, path) == 1


def test_keep_alive_connection_mixes_hits_and_misses(env):
    cached = target(2000, "ka", "cache-control:max-age=60")
    plain = target(300, "ka-plain")
    c = http.client.HTTPConnection("127.0.0.1", env["port"], timeout=30)
    try:
        seen = []
        for path in (cached, cached, plain, cached, plain):
            c.request("GET", path)
            r = c.getresponse()
            body = r.read()
            seen.append((r.status, len(body), r.getheader("age") is not None))
    finally:
        c.close()
    assert seen == [(200, 2000, False), (200, 2000, True), (200, 300, False), (200, 2000, True),
                    (200, 300, False)]
    assert origin_hits(env, cached) == 1 and origin_hits(env, plain) == 2


def test_head_is_answered_from_a_get_entry(env):
    path = target(500, "head", "cache-control:max-age=60")
    get(env["port"], path)
    r, body = get(env["port"], path, method="HEAD")
    assert r.status == 200 and body == b""
    assert r.getheader("age") is not None
    assert origin_hits(env, path) == 1


@pytest.mark.parametrize("cc", ["no-store", "private, max-age=60", "max-age=60, no-store"])
def test_uncacheable_responses_are_not_stored(env, cc):
    path = target(100, "nostore-" + cc, "cache-control:" + cc)
    for _ in range(2):
        r, _ = get(env["port"], path)
        assert r.status == 200 and r.getheader("age") is None
    assert origin_hits(env, path) == 2


def test_response_without_freshness_is_not_stored(env):
    path = target(100, "nofresh")
    twice(env["port"], path)
    assert origin_hits(env, path) == 2


def test_authorization_and_request_no_store_bypass(env):
    path = target(100, "auth", "cache-control:max-age=60")
    twice(env["port"], path, {"authorization": "Bearer x"})
    assert origin_hits(env, path) == 2
    # a plain request stores it; no-store and Authorization still go upstream
    get(env["port"], path)
    assert origin_hits(env, path) == 3
    r, _ = get(env["port"], path, {"cache-control": "no-store"})
    assert r.getheader("age") is None
    assert origin_hits(env, path) == 4
    r, _ = get(env["port"], path)
    assert r.getheader("age") is not None
    assert origin_hits(env, path) == 4


def test_max_age_expires(env):
    path = target(100, "expiry", "cache-control:max-age=1")
    twice(env["port"], path)
    assert origin_hits(env, path) == 1
    deadline = time.monotonic() + 10
    while origin_hits(env, path) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        get(env["port"], path)
    assert origin_hits(env, path) == 2


def test_etag_revalidation_turns_304_into_the_stored_200(env):
    path = target(20000, "reval", "cache-control:max-age=0", etag='"v1"')
    r1, b1 = get(env["port"], path)
    assert r1.status == 200 and b1 == text_bytes(20000)
    r2, b2 = get(env["port"], path)
    assert r2.status == 200, r2.status
    assert b2 == text_bytes(20000)
    assert r2.getheader("etag") == '"v1"'
    assert r2.getheader("age") == "0"
    assert r2.getheader("content-length") == "20000"
    reqs = [q for q in env["origin"].requests if q.target == path]
    assert len(reqs) == 2
    assert reqs[0].header("if-none-match") is None
    assert reqs[1].header("if-none-match") == '"v1"'


def test_request_no_cache_forces_revalidation(env):
    path = target(100, "reqnocache", "cache-control:max-age=60", etag='"a"')
    get(env["port"], path)
    r, body = get(env["port"], path, {"cache-control": "no-cache"})
    assert r.status == 200 and body == text_bytes(100)
    reqs = [q for q in env["origin"].requests if q.target == path]
    assert len(reqs) == 2 and reqs[1].header("if-none-match") == '"a"'
    # renewed: a plain request is a hit again
    get(env["port"], path)
    assert origin_hits(env, path) == 2


def test_vary_on_an_allowed_header_keeps_variants(env):
    path = target(100, "vary", "cache-control:max-age=60", "vary:x-variant")
    for v in ("a", "b", "a", "b"):
        r, _ = get(env["port"], path, {"x-variant": v})
        assert r.status == 200
    assert origin_hits(env, path) == 2
    reqs = [q.header("x-variant") for q in env["origin"].requests if q.target == path]
    assert reqs == ["a", "b"]


def test_vary_on_a_header_not_allowed_is_not_stored(env):
    path = target(100, "varyno", "cache-control:max-age=60", "vary:x-other")
    twice(env["port"], path, {"x-other": "1"})
    assert origin_hits(env, path) == 2
    star = target(100, "varystar", "cache-control:max-age=60", "vary:*")
    twice(env["port"], star)
    assert origin_hits(env, star) == 2


def test_max_body_bytes(env):
    small = target(1000, "mbb-ok", "cache-control:max-age=60")
    big = target(1001, "mbb-big", "cache-control:max-age=60")
    for p in (small, big, small, big):
        r, body = get(env["small"], p)
        assert r.status == 200
    assert origin_hits(env, small) == 1
    assert origin_hits(env, big) == 2


def test_disabled(env):
    path = target(100, "off", "cache-control:max-age=60")
    twice(env["off"], path)
    assert origin_hits(env, path) == 2


def test_route_filter_config_disables(env):
    path = "/nocache" + target(100, "route-off", "cache-control:max-age=60")
    twice(env["port"], path)
    assert origin_hits(env, path) == 2


def test_h2c_revalidation_gets_the_stored_body(env):
    path = target(70000, "h2reval", "cache-control:max-age=0", etag='"h2"')
    url = "http://127.0.0.1:%d%s" % (env["port"], path)
    first = curl(url, "--http2-prior-knowledge")
    second = curl(url, "--http2-prior-knowledge")
    assert first.rc == 0 and second.rc == 0, second
    assert second.version == "2" and second.status == 200
    assert second.body == text_bytes(70000)
    assert second.header("age") == "0"
    reqs = [q for q in env["origin"].requests if q.target == path]
    assert [q.header("if-none-match") for q in reqs] == [None, '"h2"']


def test_h2c_hit(env):
    path = target(5000, "h2c", "cache-control:max-age=60")
    url = "http://127.0.0.1:%d%s" % (env["port"], path)
    first = curl(url, "--http2-prior-knowledge")
    second = curl(url, "--http2-prior-knowledge")
    assert first.rc == 0 and second.rc == 0
    assert second.version == "2" and second.status == 200
    assert second.body == text_bytes(5000)
    assert second.header("age") is not None
    h1 = curl(url)
    assert h1.status == 200 and h1.body == text_bytes(5000) and h1.header("age") is not None
    assert origin_hits(env, path) == 1


def test_lru_eviction_past_the_bound(env):
    """70 distinct 1 MiB responses pass the 64 MiB bound: the first, least recently used, goes."""
    mib = 1 << 20
    paths = [target(mib, "lru-%d" % i, "cache-control:max-age=600", zeros="1") for i in range(70)]
    for p in paths:
        r, body = get(env["port"], p)
        assert r.status == 200 and len(body) == mib
    last = paths[-1]
    r, _ = get(env["port"], last)
    assert r.getheader("age") is not None
    assert origin_hits(env, last) == 1
    r, _ = get(env["port"], paths[0])
    assert r.getheader("age") is None
    assert origin_hits(env, paths[0]) == 2
