"""envoy.filters.http.ratelimit against Envoy's reference rate-limit service (envoyproxy/ratelimit,
built from the Go module proxy) backed by Debian's redis-server (issue 7, item 4): its own
scenarios (3 pass and the 4th gets 429; shadow mode; a missing header drops the descriptor;
`replaces`), the 429 as Envoy sends it, x-ratelimit-* draft 03, a rate-limited gRPC call, the
service down with and without failure_mode_deny, and the cluster's ratelimit.* stats.

Counting windows are days (the service aligns them to the clock: a minute window could roll over
mid-test); every test uses its own descriptor values so the counts start at zero.
"""
import itertools
import os
import uuid

import pytest

from lgharness import bootstrap as bs
from lgharness import peers
from lgharness.clients import curl
from test_admin import Admin

RL_TYPE = "type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit"

SERVICE_CONFIG = """\
domain: legate
descriptors:
  - key: user
    rate_limit: {unit: day, requests_per_unit: 3}
  - key: shadow
    shadow_mode: true
    rate_limit: {unit: day, requests_per_unit: 1}
  - key: tenant
    descriptors:
      - key: plan
        value: free
        rate_limit: {name: free, unit: day, requests_per_unit: 2}
  - key: replaced
    rate_limit: {name: zero, unit: day, requests_per_unit: 0}
  - key: lifted
    rate_limit: {unit: day, requests_per_unit: 2, replaces: [{name: zero}]}
"""


@pytest.fixture(scope="module")
def rls(start_peer_module, tmp_path_factory):
    try:
        binary = peers.ratelimit_service()
    except peers.BuildError as e:
        pytest.fail(str(e))
    import socket

    def port():  # free_port is a per-test fixture; this one is module-scoped
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    root = tmp_path_factory.mktemp("rls")
    (root / "ratelimit" / "config").mkdir(parents=True)
    (root / "ratelimit" / "config" / "legate.yaml").write_text(SERVICE_CONFIG)
    redis_port, http_port, grpc_port, debug_port = port(), port(), port(), port()
    start_peer_module(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no"], name="redis", ports=[redis_port])
    env = dict(os.environ, USE_STATSD="false", LOG_LEVEL="debug", REDIS_SOCKET_TYPE="tcp",
               REDIS_URL="127.0.0.1:%d" % redis_port, RUNTIME_ROOT=str(root), RUNTIME_SUBDIRECTORY="ratelimit",
               RUNTIME_APPDIRECTORY="config", RUNTIME_WATCH_ROOT="false", HOST="127.0.0.1",
               GRPC_HOST="127.0.0.1", DEBUG_HOST="127.0.0.1", PORT=str(http_port), GRPC_PORT=str(grpc_port),
               DEBUG_PORT=str(debug_port))
    start_peer_module([binary], name="ratelimit", ports=[grpc_port, http_port], env=env, timeout=60)
    return grpc_port


_ids = itertools.count()


def proxy(start_legate, free_port, origin, rls_port, *, rate_limits, **filter_cfg):
    port, admin_port = free_port(), free_port()
    cfg = {"@type": RL_TYPE, "domain": "legate", "timeout": "2s",
           "rate_limit_service": {"grpc_service": {"envoy_grpc": {"cluster_name": "ratelimit"}},
                                  "transport_api_version": "V3"}}
    cfg.update(filter_cfg)
    boot = bs.filter_proxy(port, admin_port, [{"name": "envoy.filters.http.ratelimit", "typed_config": cfg}],
                           [bs.cluster("app", [origin.port]), bs.cluster("ratelimit", [rls_port], h2=True)],
                           [bs.route("/", "app", action={"rate_limits": rate_limits})])
    lg = start_legate(boot, ports=[port, admin_port])
    lg.admin = Admin(admin_port)
    return lg


def unique():
    return "%s-%d" % (uuid.uuid4().hex[:8], next(_ids))


USER = [{"actions": [{"request_headers": {"header_name": "x-user", "descriptor_key": "user"}}]}]


def rl_stats(lg):
    s = lg.admin.stats("?filter=cluster.app.ratelimit")
    return {k.rsplit(".", 1)[1]: v for k, v in s.items()}


def test_three_pass_and_the_fourth_is_limited(start_legate, free_port, origin, rls):
    lg = proxy(start_legate, free_port, origin, rls, rate_limits=USER)
    user = unique()
    got = [curl(lg.url("/echo/x"), "-H", "x-user: " + user) for _ in range(4)]
    assert [r.status for r in got] == [200, 200, 200, 429], got
    limited = got[3]
    assert limited.header("x-envoy-ratelimited") == "true"
    assert limited.body == b""
    assert len(origin.requests) == 3
    assert rl_stats(lg) == {"ok": 3, "over_limit": 1, "error": 0, "failure_mode_allowed": 0}
    # another user has a count of their own
    assert curl(lg.url("/"), "-H", "x-user: " + unique()).status == 200


def test_missing_header_drops_the_descriptor(start_legate, free_port, origin, rls):
    lg = proxy(start_legate, free_port, origin, rls, rate_limits=USER)
    assert [curl(lg.url("/")).status for _ in range(5)] == [200] * 5
    assert rl_stats(lg)["ok"] == 0  # no descriptor: the service was not asked


def test_shadow_mode_is_never_limited_but_reports_remaining(start_legate, free_port, origin, rls):
    rl = [{"actions": [{"request_headers": {"header_name": "x-shadow", "descriptor_key": "shadow"}}]}]
    lg = proxy(start_legate, free_port, origin, rls, rate_limits=rl, enable_x_ratelimit_headers="DRAFT_VERSION_03")
    v = unique()
    got = [curl(lg.url("/"), "-H", "x-shadow: " + v) for _ in range(3)]
    assert [r.status for r in got] == [200] * 3, got
    assert got[0].header("x-ratelimit-remaining") == "0"


def test_nested_descriptor_and_x_ratelimit_headers(start_legate, free_port, origin, rls):
    rl = [{"actions": [{"request_headers": {"header_name": "x-tenant", "descriptor_key": "tenant"}},
                       {"request_headers": {"header_name": "x-plan", "descriptor_key": "plan"}}]}]
    lg = proxy(start_legate, free_port, origin, rls, rate_limits=rl, enable_x_ratelimit_headers="DRAFT_VERSION_03")
    t = unique()
    got = [curl(lg.url("/"), "-H", "x-tenant: " + t, "-H", "x-plan: free") for _ in range(3)]
    assert [r.status for r in got] == [200, 200, 429], got
    assert got[0].header("x-ratelimit-limit") == '2, 2;w=86400;name="free"', got[0]
    assert got[0].header("x-ratelimit-remaining") == "1"
    assert 0 < int(got[0].header("x-ratelimit-reset")) <= 86400
    assert got[2].header("x-ratelimit-remaining") == "0"
    # a paid plan matches no limit of the service: never limited
    assert [curl(lg.url("/"), "-H", "x-tenant: " + t, "-H", "x-plan: paid").status for _ in range(3)] == [200] * 3


def test_replaces_lifts_a_zero_limit(start_legate, free_port, origin, rls):
    rl = [{"actions": [{"request_headers": {"header_name": "x-r", "descriptor_key": "replaced"}}]},
          {"actions": [{"request_headers": {"header_name": "x-l", "descriptor_key": "lifted"}}]}]
    lg = proxy(start_legate, free_port, origin, rls, rate_limits=rl)
    v = unique()
    assert curl(lg.url("/"), "-H", "x-r: " + v).status == 429  # limit 0 alone
    both = [curl(lg.url("/"), "-H", "x-r: " + v, "-H", "x-l: " + v).status for _ in range(3)]
    assert both == [200, 200, 429]


def test_limited_grpc_call_is_resource_exhausted(start_legate, free_port, origin, rls):
    lg = proxy(start_legate, free_port, origin, rls, rate_limits=USER, rate_limited_as_resource_exhausted=True)
    user = unique()
    for _ in range(3):
        assert curl(lg.url("/"), "-H", "x-user: " + user).status == 200
    grpc = curl(lg.url("/pkg.Svc/Call"), "--http2-prior-knowledge", "-H", "content-type: application/grpc",
                "-H", "te: trailers", "-H", "x-user: " + user, "--data-binary", "")
    assert grpc.status == 200 and grpc.header("grpc-status") == "8", grpc


@pytest.mark.parametrize("deny,status", [(False, 200), (True, 500)])
def test_service_down(start_legate, free_port, origin, deny, status):
    lg = proxy(start_legate, free_port, origin, free_port(), rate_limits=USER, failure_mode_deny=deny)
    r = curl(lg.url("/"), "-H", "x-user: someone")
    assert r.status == status, r
    s = rl_stats(lg)
    assert s["error"] == 1 and s["failure_mode_allowed"] == (0 if deny else 1), s


def test_config_errors(legate, tmp_path, free_port):
    cfg = {"@type": RL_TYPE, "domain": "d",
           "rate_limit_service": {"grpc_service": {"google_grpc": {"target_uri": "x", "stat_prefix": "s"}},
                                  "transport_api_version": "V3"}}
    path = tmp_path / "b.yaml"
    path.write_text(bs.to_yaml(bs.with_filter(free_port(), free_port(), "envoy.filters.http.ratelimit", cfg)))
    r = legate("--mode", "validate", "-c", str(path))
    assert r.returncode == 1
    assert "only envoy_grpc is supported by legate" in r.stdout + r.stderr
