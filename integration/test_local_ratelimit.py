"""envoy.filters.http.local_ratelimit through the real binary (issue 7, item 3): Envoy's defaults
(configured but not enabled does nothing), exact token accounting under concurrent load across two
workers, the 429 as Envoy sends it (body, headers, x-ratelimit-* draft 03, custom status, gRPC
status), enforced vs shadow mode, descriptors from route rate_limits, per-route override through
typed_per_filter_config, per-connection buckets, refill, and config errors."""
import http.client
import json
import re

import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl, h2load_counts, run
from test_admin import Admin

LRL_TYPE = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
ALL = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
NONE = {"default_value": {"numerator": 0, "denominator": "HUNDRED"}}


def lrl(**cfg):
    c = {"@type": LRL_TYPE, "stat_prefix": "http_local_rate_limiter"}
    c.update(cfg)
    return c


def bucket(max_tokens, fill="3600s", per_fill=None):
    b = {"max_tokens": max_tokens, "fill_interval": fill}
    if per_fill is not None:
        b["tokens_per_fill"] = per_fill
    return b


def start(start_legate, free_port, origin, filter_cfg, *, routes=None, workers=1):
    port, admin_port = free_port(), free_port()
    filters = [{"name": "envoy.filters.http.local_ratelimit", "typed_config": filter_cfg}]
    cfg = bs.filter_proxy(port, admin_port, filters, [bs.cluster("app", [origin.port])], routes)
    lg = start_legate(cfg, ports=[port, admin_port], extra_args=("--concurrency", str(workers)))
    lg.admin = Admin(admin_port)
    return lg


def stats(lg):
    s = lg.admin.stats("?filter=http_local_rate_limit")
    p = "http_local_rate_limiter.http_local_rate_limit."
    return {k[len(p):]: v for k, v in s.items() if k.startswith(p)}


def test_configured_but_not_enabled_does_nothing(start_legate, free_port, origin):
    lg = start(start_legate, free_port, origin, lrl(token_bucket=bucket(1)))
    assert [curl(lg.url("/")).status for _ in range(4)] == [200] * 4
    assert stats(lg) == {"enabled": 0, "enforced": 0, "rate_limited": 0, "ok": 0}


def test_exact_tokens_under_concurrent_load_on_two_workers(start_legate, free_port, origin):
    """max_tokens 37 and no refill within the test: of 400 requests from 8 connections spread over
    two workers exactly 37 pass, no more, no fewer (the bucket is one atomic word shared by both)."""
    lg = start(start_legate, free_port, origin,
               lrl(token_bucket=bucket(37), filter_enabled=ALL, filter_enforced=ALL), workers=2)
    r = run(["h2load", "--h1", "-n", "400", "-c", "8", "-m", "1", "-t", "2", lg.url("/")], timeout=60)
    counts = h2load_counts(r.stdout)
    assert counts is not None and counts[1] == 400, r.stdout + r.stderr
    assert "status codes: 37 2xx, 0 3xx, 363 4xx, 0 5xx" in r.stdout, r.stdout
    assert stats(lg) == {"enabled": 400, "enforced": 363, "rate_limited": 363, "ok": 37}


def test_the_429_as_envoy_sends_it(start_legate, free_port, origin):
    add = [{"header": {"key": "x-local-rate-limit", "value": "true"}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]
    lg = start(start_legate, free_port, origin,
               lrl(token_bucket=bucket(2), filter_enabled=ALL, filter_enforced=ALL, response_headers_to_add=add,
                   enable_x_ratelimit_headers="DRAFT_VERSION_03"))
    first = curl(lg.url("/echo/a"))
    assert first.status == 200, first
    assert (first.header("x-ratelimit-limit"), first.header("x-ratelimit-remaining")) == ("2", "1"), first
    assert 0 < int(first.header("x-ratelimit-reset")) <= 3600
    assert first.header("x-local-rate-limit") is None  # only on limited responses
    assert curl(lg.url("/echo/b")).status == 200
    limited = curl(lg.url("/echo/c"))
    assert limited.status == 429, limited
    assert limited.body == b"local_rate_limited"
    assert limited.header("x-envoy-ratelimited") == "true"
    assert limited.header("x-local-rate-limit") == "true"
    assert (limited.header("x-ratelimit-limit"), limited.header("x-ratelimit-remaining")) == ("2", "0")
    assert len(origin.requests) == 2  # the limited request never went upstream


def test_custom_status_and_grpc_statuses(start_legate, free_port, origin):
    lg = start(start_legate, free_port, origin,
               lrl(token_bucket=bucket(1), filter_enabled=ALL, filter_enforced=ALL, status={"code": 503}))
    assert curl(lg.url("/")).status == 200
    assert curl(lg.url("/")).status == 503
    grpc = curl(lg.url("/pkg.Svc/Call"), "--http2-prior-knowledge", "-H", "content-type: application/grpc",
                "-H", "te: trailers", "--data-binary", "")
    assert grpc.status == 200 and grpc.header("grpc-status") == "14", grpc  # UNAVAILABLE


def test_grpc_resource_exhausted(start_legate, free_port, origin):
    lg = start(start_legate, free_port, origin,
               lrl(token_bucket=bucket(1), filter_enabled=ALL, filter_enforced=ALL,
                   rate_limited_as_resource_exhausted=True))
    assert curl(lg.url("/")).status == 200
    grpc = curl(lg.url("/pkg.Svc/Call"), "--http2-prior-knowledge", "-H", "content-type: application/grpc",
                "-H", "te: trailers", "--data-binary", "")
    assert grpc.status == 200 and grpc.header("grpc-status") == "8", grpc  # RESOURCE_EXHAUSTED
    assert grpc.header("grpc-message") == "local_rate_limited"


def test_shadow_mode_counts_and_tags_but_forwards(start_legate, free_port, origin):
    tag = [{"header": {"key": "x-rate-limited-shadow", "value": "yes"}}]
    lg = start(start_legate, free_port, origin,
               lrl(token_bucket=bucket(1), filter_enabled=ALL, filter_enforced=NONE,
                   request_headers_to_add_when_not_enforced=tag))
    a, b = curl(lg.url("/echo/1")), curl(lg.url("/echo/2"))
    assert (a.status, b.status) == (200, 200)
    seen = [dict((n.lower(), v) for n, v in json.loads(r.body)["headers"]) for r in (a, b)]
    assert "x-rate-limited-shadow" not in seen[0] and seen[1]["x-rate-limited-shadow"] == "yes"
    assert stats(lg) == {"enabled": 2, "enforced": 0, "rate_limited": 1, "ok": 1}


def test_descriptors_from_route_rate_limits(start_legate, free_port, origin):
    """alice has her own bucket of 2 (descriptor user=alice); anyone else shares the default
    bucket of 5; with always_consume_default_token_bucket false alice does not drain it."""
    rl = [{"actions": [{"request_headers": {"header_name": "x-user", "descriptor_key": "user"}}]}]
    cfg = lrl(token_bucket=bucket(5), filter_enabled=ALL, filter_enforced=ALL,
              always_consume_default_token_bucket=False,
              descriptors=[{"entries": [{"key": "user", "value": "alice"}], "token_bucket": bucket(2)}])
    lg = start(start_legate, free_port, origin, cfg, routes=[bs.route("/", "app", action={"rate_limits": rl})])
    alice = [curl(lg.url("/"), "-H", "x-user: alice").status for _ in range(3)]
    others = [curl(lg.url("/"), "-H", "x-user: bob").status for _ in range(6)]
    assert alice == [200, 200, 429]
    assert others == [200] * 5 + [429]


def test_empty_descriptor_value_matches_any(start_legate, free_port, origin):
    rl = [{"actions": [{"request_headers": {"header_name": "x-user", "descriptor_key": "user"}}]}]
    cfg = lrl(token_bucket=bucket(100), filter_enabled=ALL, filter_enforced=ALL,
              descriptors=[{"entries": [{"key": "user"}], "token_bucket": bucket(1)}])
    lg = start(start_legate, free_port, origin, cfg, routes=[bs.route("/", "app", action={"rate_limits": rl})])
    # one bucket for every user (the wildcard descriptor is one descriptor)
    got = [curl(lg.url("/"), "-H", "x-user: " + u).status for u in ("a", "b")]
    assert got == [200, 429]
    assert curl(lg.url("/")).status == 200  # no x-user: no descriptor, the default bucket


def test_per_route_override(start_legate, free_port, origin):
    """Disabled at the filter, enabled on one route by typed_per_filter_config with its own bucket."""
    per_route = lrl(token_bucket=bucket(1), filter_enabled=ALL, filter_enforced=ALL)
    routes = [bs.route("/limited", "app",
                       typed_per_filter_config={"envoy.filters.http.local_ratelimit": per_route}),
              bs.route("/", "app")]
    lg = start(start_legate, free_port, origin, lrl(), routes=routes)
    assert [curl(lg.url("/limited")).status for _ in range(2)] == [200, 429]
    assert [curl(lg.url("/free")).status for _ in range(3)] == [200] * 3


def test_per_route_config_under_a_custom_filter_name(start_legate, free_port, origin):
    """typed_per_filter_config is keyed by the name given in http_filters, whatever it is."""
    per_route = lrl(token_bucket=bucket(1), filter_enabled=ALL, filter_enforced=ALL)
    routes = [bs.route("/", "app", typed_per_filter_config={"my_limiter": per_route})]
    port, admin_port = free_port(), free_port()
    filters = [{"name": "my_limiter", "typed_config": lrl()}]
    cfg = bs.filter_proxy(port, admin_port, filters, [bs.cluster("app", [origin.port])], routes)
    lg = start_legate(cfg, ports=[port, admin_port])
    assert [curl(lg.url("/")).status for _ in range(2)] == [200, 429]


def test_per_downstream_connection_buckets(start_legate, free_port, origin):
    lg = start(start_legate, free_port, origin,
               lrl(token_bucket=bucket(2), filter_enabled=ALL, filter_enforced=ALL,
                   local_rate_limit_per_downstream_connection=True))

    def three_on_one_connection():
        c = http.client.HTTPConnection("127.0.0.1", lg.port, timeout=10)
        try:
            out = []
            for _ in range(3):
                c.request("GET", "/")
                r = c.getresponse()
                r.read()
                out.append(r.status)
            return out
        finally:
            c.close()

    assert three_on_one_connection() == [200, 200, 429]
    assert three_on_one_connection() == [200, 200, 429]  # a new connection, a new bucket


def test_bucket_refills_after_fill_interval(start_legate, free_port, origin):
    """Emptied, the bucket passes requests again once fill_interval has passed. The refill is the
    clock's business, so the test polls (bounded) for the 429 and then for the next 200."""
    lg = start(start_legate, free_port, origin,
               lrl(token_bucket=bucket(2, fill="0.5s", per_fill=2), filter_enabled=ALL, filter_enforced=ALL))

    def first(status, tries):
        return any(curl(lg.url("/")).status == status for _ in range(tries))

    assert first(429, 50), "never limited"
    assert first(200, 500), "never refilled"
    s = stats(lg)
    assert s["rate_limited"] >= 1 and s["ok"] >= 3, s


@pytest.mark.parametrize("bad,message", [
    ({"token_bucket": bucket(1, fill="0.01s")}, "token_bucket.fill_interval: local rate limit token bucket fill timer must be >= 50ms"),
    ({"token_bucket": {"max_tokens": 0, "fill_interval": "1s"}}, "token_bucket.max_tokens: must be greater than 0"),
    ({"stat_prefix": ""}, "stat_prefix: is required"),
    ({"descriptors": [{"entries": [{"key": "k", "value": "v"}], "token_bucket": bucket(1)},
                      {"entries": [{"key": "k", "value": "v"}], "token_bucket": bucket(2)}]},
     "duplicate descriptor"),
])
def test_config_errors(legate, tmp_path, free_port, bad, message):
    path = tmp_path / "b.yaml"
    path.write_text(bs.to_yaml(bs.with_filter(free_port(), free_port(), "envoy.filters.http.local_ratelimit",
                                              lrl(**bad))))
    r = legate("--mode", "validate", "-c", str(path))
    assert r.returncode == 1, r
    assert message in r.stdout + r.stderr, r.stdout + r.stderr
    assert re.search(r"b\.yaml:\d+: \S*http_filters\[0\]: ", r.stdout + r.stderr), r.stdout + r.stderr


def test_filter_disabled_in_http_filters_runs_only_where_a_route_enables_it(start_legate, free_port, origin):
    """http_filters `disabled: true` turns a filter off except on routes whose typed_per_filter_config
    is a FilterConfig with `disabled: false`; a route's FilterConfig `disabled: true` turns an enabled
    filter off there. (The connection manager ignored both before.)"""
    fc = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
    limiter = lrl(token_bucket=bucket(1), filter_enabled=ALL, filter_enforced=ALL)
    port, admin_port = free_port(), free_port()
    routes = [bs.route("/on/", "app", typed_per_filter_config={
                  "envoy.filters.http.local_ratelimit": {"@type": fc, "disabled": False}}),
              bs.route("/", "app")]
    filters = [{"name": "envoy.filters.http.local_ratelimit", "typed_config": limiter, "disabled": True}]
    lg = start_legate(bs.filter_proxy(port, admin_port, filters, [bs.cluster("app", [origin.port])], routes),
                      ports=[port, admin_port])
    assert [curl(lg.url("/off")).status for _ in range(3)] == [200] * 3
    assert [curl(lg.url("/on/x")).status for _ in range(2)] == [200, 429]

    port2, admin2 = free_port(), free_port()
    routes = [bs.route("/free/", "app", typed_per_filter_config={
                  "envoy.filters.http.local_ratelimit": {"@type": fc, "disabled": True}}),
              bs.route("/", "app")]
    filters = [{"name": "envoy.filters.http.local_ratelimit", "typed_config": limiter}]
    lg2 = start_legate(bs.filter_proxy(port2, admin2, filters, [bs.cluster("app", [origin.port])], routes),
                       ports=[port2, admin2])
    assert [curl(lg2.url("/free/x")).status for _ in range(3)] == [200] * 3
    assert [curl(lg2.url("/x")).status for _ in range(2)] == [200, 429]
