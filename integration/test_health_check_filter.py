"""envoy.filters.http.health_check through the real binary (issue 8, item 3): health checks
answered by legate (pass_through_mode false) with 200, or 503 with response flag LH and details
health_check_failed after admin POST /healthcheck/fail, back to 200 after /healthcheck/ok;
x-envoy-upstream-healthchecked-cluster (the node's cluster) on health-check responses and
x-envoy-immediate-health-check-fail: true on every other response while failed; pass-through
mode going upstream except when failed; cache_time answering from the last upstream answer
without reaching the origin; cluster_min_healthy_percentages against endpoints' health_status
(HEALTHY / UNKNOWN / DEGRADED available); Envoy's config errors."""
import os
import subprocess
import time

import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl
from lgharness.ports import pick_port
from test_access_log import file_log
from test_admin import Admin

HC = "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck"
BY_PATH = [{"name": ":path", "string_match": {"exact": "/healthz"}}]
BY_HEADER = [{"name": "x-health", "string_match": {"exact": "1"}}]
LOG_FORMAT = {"text_format_source": {"inline_string": "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\n"}}


def hc(pass_through, headers, **extra):
    c = {"@type": HC, "pass_through_mode": pass_through, "headers": headers}
    c.update(extra)
    return c


def start(start_legate, origin, tmp_path, hc_cfg, clusters=None):
    port, admin_port = pick_port(), pick_port()
    log = tmp_path / "hc_access.log"
    chain = bs.filter_chain(bs.hcm([bs.route("/", "app")], access_log=[file_log(log, LOG_FORMAT)], http_filters=[
        {"name": "envoy.filters.http.health_check", "typed_config": hc_cfg}, bs.router_filter()]))
    cfg = bs.bootstrap([bs.listener("ingress", port, [chain])], clusters or [bs.cluster("app", [origin.port])])
    cfg["node"]["cluster"] = "front-proxy"
    cfg["admin"] = {"address": bs.address("127.0.0.1", admin_port)}
    lg = start_legate(cfg, ports=[port, admin_port])
    lg.admin = Admin(admin_port)
    lg.log = log
    return lg


def log_lines(lg, n, timeout=10.0):
    """The access log's first n lines, waiting (bounded) for them to be written."""
    deadline = time.monotonic() + timeout
    while True:
        lines = lg.log.read_text().splitlines() if lg.log.exists() else []
        if len(lines) >= n or time.monotonic() > deadline:
            return lines


def test_answered_locally_and_failed_by_admin(start_legate, origin, tmp_path):
    lg = start(start_legate, origin, tmp_path, hc(False, BY_PATH))
    origin.reset()
    r = curl(lg.url("/healthz"))
    assert (r.status, r.body) == (200, b""), r
    assert r.header("x-envoy-upstream-healthchecked-cluster") == "front-proxy"
    assert r.header("content-length") == "0"
    assert origin.heads == []
    r = curl(lg.url("/echo/x"))
    assert r.status == 200 and r.header("x-envoy-immediate-health-check-fail") is None, r
    assert r.header("x-envoy-upstream-healthchecked-cluster") is None

    assert lg.admin.post("/healthcheck/fail")[0] == 200
    r = curl(lg.url("/healthz"))
    assert (r.status, r.body) == (503, b""), r
    assert r.header("x-envoy-upstream-healthchecked-cluster") == "front-proxy"
    r = curl(lg.url("/echo/y"))
    assert r.status == 200, r  # other traffic still flows, flagged for the downstream Envoy
    assert r.header("x-envoy-immediate-health-check-fail") == "true"
    # a health check with a body is answered when the request has ended
    r = curl(lg.url("/healthz"), "--data-binary", "x" * 5000)
    assert r.status == 503, r

    assert lg.admin.post("/healthcheck/ok")[0] == 200
    r = curl(lg.url("/healthz"))
    assert r.status == 200, r
    assert curl(lg.url("/echo/z")).header("x-envoy-immediate-health-check-fail") is None
    lines = log_lines(lg, 7)
    # (upstream responses: code and flags only; their details are not this filter's)
    assert [l if l.startswith("/healthz") else l.rsplit(" ", 1)[0] for l in lines] == [
        "/healthz 200 - health_check_ok",
        "/echo/x 200 -",
        "/healthz 503 LH health_check_failed",
        "/echo/y 200 -",
        "/healthz 503 LH health_check_failed",
        "/healthz 200 - health_check_ok",
        "/echo/z 200 -",
    ]


def test_http2_health_check(start_legate, origin, tmp_path):
    lg = start(start_legate, origin, tmp_path, hc(False, BY_PATH))
    r = curl(lg.url("/healthz"), "--http2-prior-knowledge")
    assert (r.status, r.version, r.body) == (200, "2", b""), r
    assert r.header("x-envoy-upstream-healthchecked-cluster") == "front-proxy"


def test_pass_through_mode(start_legate, origin, tmp_path):
    lg = start(start_legate, origin, tmp_path, hc(True, BY_HEADER))
    origin.reset()
    r = curl(lg.url("/echo/hc"), "-H", "x-health: 1")
    assert r.status == 200 and b"/echo/hc" in r.body, r  # the origin answered
    assert r.header("x-envoy-upstream-healthchecked-cluster") == "front-proxy"
    r = curl(lg.url("/status/503"), "-H", "x-health: 1")
    assert r.status == 503 and r.body == b"status 503\n", r  # the origin's answer, not cached
    assert len(origin.wait_requests(2)) == 2
    lg.admin.post("/healthcheck/fail")
    origin.reset()
    r = curl(lg.url("/echo/hc"), "-H", "x-health: 1")
    assert (r.status, r.body) == (503, b""), r
    assert origin.heads == []
    r = curl(lg.url("/echo/other"))
    assert r.status == 200 and r.header("x-envoy-immediate-health-check-fail") == "true"
    lg.admin.post("/healthcheck/ok")
    lines = log_lines(lg, 4)
    assert lines[2] == "/echo/hc 503 LH health_check_failed"
    assert lines[3].startswith("/echo/other 200 - ")


def test_cache_time_answers_from_the_last_upstream_answer(start_legate, origin, tmp_path):
    lg = start(start_legate, origin, tmp_path, hc(True, BY_HEADER, cache_time="60s"))
    origin.reset()
    r = curl(lg.url("/status/503"), "-H", "x-health: 1")
    assert r.status == 503 and r.body == b"status 503\n", r
    for path in ("/status/200", "/echo/a"):
        r = curl(lg.url(path), "-H", "x-health: 1")
        assert (r.status, r.body) == (503, b""), r  # cached: the origin is not asked
        assert r.header("x-envoy-upstream-healthchecked-cluster") == "front-proxy"
    assert len(origin.wait_requests(1)) == 1
    r = curl(lg.url("/echo/plain"))
    assert r.status == 200, r  # not a health check: not cached
    lines = log_lines(lg, 4)
    assert lines[1:3] == ["/status/200 503 LH health_check_cached", "/echo/a 503 LH health_check_cached"]


def cluster_with_status(name, port, statuses):
    c = bs.cluster(name, [port] * len(statuses))
    for ep, st in zip(c["load_assignment"]["endpoints"][0]["lb_endpoints"], statuses):
        if st:
            ep["health_status"] = st
    return c


@pytest.mark.parametrize("percent, status, details", [
    (75, 200, "health_check_ok_cluster_healthy"),    # 3 of 4 available (HEALTHY, UNKNOWN, DEGRADED)
    (76, 503, "health_check_failed_cluster_unhealthy"),
])
def test_cluster_min_healthy_percentages(start_legate, origin, tmp_path, percent, status, details):
    clusters = [bs.cluster("app", [origin.port]),
                cluster_with_status("www", origin.port, ["HEALTHY", None, "DEGRADED", "UNHEALTHY"]),
                bs.cluster("empty", [])]
    lg = start(start_legate, origin, tmp_path,
               hc(False, BY_PATH, cluster_min_healthy_percentages={"www": {"value": percent}, "empty": {"value": 0}}),
               clusters)
    r = curl(lg.url("/healthz"))
    assert (r.status, r.body) == (status, b""), r
    flag = "-" if status == 200 else "LH"
    assert log_lines(lg, 1)[0] == "/healthz %d %s %s" % (status, flag, details)
    assert lg.admin.stats("?filter=cluster.www.membership")["cluster.www.membership_healthy"] == 2


def test_cluster_missing_or_empty(start_legate, origin, tmp_path):
    lg = start(start_legate, origin, tmp_path,
               hc(False, BY_PATH, cluster_min_healthy_percentages={"app": {"value": 100}, "nope": {"value": 0}}))
    assert curl(lg.url("/healthz")).status == 503
    assert log_lines(lg, 1)[0] == "/healthz 503 LH health_check_failed_no_cluster_found"


@pytest.mark.parametrize("cfg, message", [
    ({"@type": HC}, "pass_through_mode: value is required"),
    (hc(False, BY_PATH, cache_time="5s"), "cache_time_ms must not be set when path_through_mode is disabled"),
])
def test_config_errors(legate_bin, tmp_path, cfg, message):
    chain = bs.filter_chain(bs.hcm([bs.route("/", "app")], http_filters=[
        {"name": "envoy.filters.http.health_check", "typed_config": cfg}, bs.router_filter()]))
    path = tmp_path / "hc.yaml"
    path.write_text(bs.to_yaml(bs.bootstrap([bs.listener("ingress", pick_port(), [chain])], [bs.cluster("app", [1])])))
    r = subprocess.run([legate_bin, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0, r.stdout
    assert message in r.stderr + r.stdout, r.stderr


def test_fails_health_checks_while_draining(start_legate, origin, tmp_path):
    """A draining legate (admin POST /drain_listeners?graceful, as SIGTERM starts) answers health
    checks on the connections it still serves with 503, so the load balancer in front takes it out
    while its requests finish. The HTTP/2 connection sees Envoy's shutdown notice first."""
    from lgharness import h2raw
    lg = start(start_legate, origin, tmp_path, hc(False, BY_PATH))
    with h2raw.H2Raw("127.0.0.1", lg.port) as c:
        c.handshake()
        c.send(c.request_headers(1, path="/healthz"))
        headers, _, _ = c.read_response(1)
        assert dict(headers)[":status"] == "200"
        assert lg.admin.post("/drain_listeners?graceful")[0] == 200
        assert c.wait_until(lambda: c.goaway is not None, timeout=10), "no shutdown notice"
        c.send(c.request_headers(3, path="/healthz"))
        headers, _, _ = c.read_response(3)
        assert dict(headers)[":status"] == "503", headers
