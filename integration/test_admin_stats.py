"""Histograms and per-code stats on the admin endpoint against the real binary (issue 4, item 2):
after a known workload `cluster.<name>.upstream_rq_time` and `http.<prefix>.downstream_rq_time`
count every request, `/stats/prometheus` exposes them as Prometheus histograms (read by
prometheus_client's parser), text `/stats` prints Envoy's quantile summary and `?format=json`
Envoy's histogram shape; `cluster.<name>.upstream_rq_<code>` counts exact codes.

Every test starts its own legate (exact counts need a fresh stats registry) on loopback ports.
"""
import json
import re

import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl
from test_admin import Admin, admin_config, traffic, wait_for

WAIT_MS = 10000  # no request of the workloads below takes this long
QUANTILES = [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100]


@pytest.fixture
def proxy(start_legate, free_port, origin):
    port, admin_port = free_port(), free_port()
    lg = start_legate(admin_config(port, origin.port, admin_port), ports=[port, admin_port])
    lg.admin = Admin(admin_port)
    return lg


def settled(lg, n):
    """Waits until the workload's n requests are counted by both histograms (the downstream one
    is recorded when the stream is destroyed, just after the response is written)."""
    def done():
        s = lg.admin.stats("?filter=upstream_rq_total")
        if s.get("cluster.app.upstream_rq_total") != n:
            return None
        _, _, body = lg.admin.get("/stats/prometheus?filter=rq_time")
        counts = dict(re.findall(r'^(envoy_\w+_rq_time_count)\{[^}]*\} (\d+)$', body, re.M))
        return counts if counts == {"envoy_cluster_upstream_rq_time_count": str(n),
                                    "envoy_http_downstream_rq_time_count": str(n)} else None
    wait_for(done, "%d requests in the rq_time histograms" % n)


def test_prometheus_histograms_parse_and_count(proxy):
    parser = pytest.importorskip("prometheus_client.parser")
    traffic(proxy, ok=4, not_found=2)
    settled(proxy, 6)
    status, _, body = proxy.admin.get("/stats/prometheus")
    assert status == 200
    assert "# TYPE envoy_cluster_upstream_rq_time histogram\n" in body
    # `envoy_cluster_upstream_rq{envoy_response_code=..}` and `envoy_cluster_upstream_rq_total`
    # are two families this parser names alike (as on Envoy's own page): their samples are merged.
    families = {}
    for fam in parser.text_string_to_metric_families(body):
        if fam.name in families:
            assert families[fam.name].type == fam.type
            families[fam.name].samples.extend(fam.samples)
        else:
            families[fam.name] = fam
    for name, label in (("envoy_cluster_upstream_rq_time", ("envoy_cluster_name", "app")),
                        ("envoy_http_downstream_rq_time", ("envoy_http_conn_manager_prefix", "ingress_http"))):
        fam = families[name]
        assert fam.type == "histogram"
        mine = [s for s in fam.samples if s.labels.get(label[0]) == label[1]]
        count = [s.value for s in mine if s.name == name + "_count"]
        assert count == [6]
        buckets = [(s.labels["le"], s.value) for s in mine if s.name == name + "_bucket"]
        les = [le for le, _ in buckets]
        assert les == ["0.5", "1", "5", "10", "25", "50", "100", "250", "500", "1000", "2500", "5000",
                       "10000", "30000", "60000", "300000", "600000", "1800000", "3600000", "+Inf"]
        values = [v for _, v in buckets]
        assert values == sorted(values), "buckets are cumulative"
        assert values[-1] == 6
        total = [s.value for s in mine if s.name == name + "_sum"]
        assert len(total) == 1 and 0 <= total[0] <= 6 * WAIT_MS
    # Exact-code counters (the fixed set) beside the class counters.
    kind = families["envoy_cluster_upstream_rq"]
    codes = {s.labels.get("envoy_response_code"): s.value for s in kind.samples
             if s.labels.get("envoy_cluster_name") == "app" and "envoy_response_code" in s.labels}
    assert codes["200"] == 4 and codes["404"] == 2 and codes["503"] == 0


def test_text_and_json_quantiles(proxy):
    traffic(proxy, ok=3, not_found=0)
    settled(proxy, 3)
    status, _, body = proxy.admin.get("/stats?filter=rq_time%24")
    assert status == 200
    lines = body.splitlines()
    assert [l.split(": ")[0] for l in lines] == ["cluster.app.upstream_rq_time",
                                                 "http.ingress_http.downstream_rq_time"]
    for line in lines:
        summary = line.split(": ", 1)[1]
        parts = re.findall(r'P([0-9.]+)\((nan|[0-9.e+]+),([0-9.e+]+)\)', summary)
        assert [float(p[0]) for p in parts] == QUANTILES, summary
        cumulative = [float(p[2]) for p in parts]
        assert cumulative == sorted(cumulative) and cumulative[-1] < WAIT_MS

    status, headers, body = proxy.admin.get("/stats?format=json&filter=rq_time%24")
    assert status == 200 and headers["content-type"] == "application/json"
    stats = json.loads(body)["stats"]
    hist = [s["histograms"] for s in stats if "histograms" in s]
    assert len(hist) == 1
    assert hist[0]["supported_quantiles"] == QUANTILES
    names = [q["name"] for q in hist[0]["computed_quantiles"]]
    assert names == ["cluster.app.upstream_rq_time", "http.ingress_http.downstream_rq_time"]
    for q in hist[0]["computed_quantiles"]:
        assert len(q["values"]) == 10
        assert all(v["cumulative"] is not None and v["cumulative"] >= 0 for v in q["values"])

    # `/stats?type=Histograms&usedonly` lists only recorded histograms.
    _, _, body = proxy.admin.get("/stats?type=Histograms&usedonly")
    assert sorted(l.split(": ")[0] for l in body.splitlines()) == ["cluster.app.upstream_rq_time",
                                                                   "http.ingress_http.downstream_rq_time"]


def test_listener_and_server_stats(proxy, legate_is_asan):
    traffic(proxy, ok=2, not_found=0)
    settled(proxy, 2)
    prefix = "listener.127.0.0.1_%d." % proxy.ports[0]
    stats = proxy.admin.stats("?filter=%5Elistener%5C.127")
    total = {k: v for k, v in stats.items() if k.endswith(".downstream_cx_total")}
    assert len(total) == 1, stats
    name = next(iter(total))
    assert re.fullmatch(r"listener\.127\.0\.0\.1_\d+\.downstream_cx_total", name), name
    assert name == prefix + "downstream_cx_total"
    assert total[name] == 2  # curl opens one connection per request
    wait_for(lambda: proxy.admin.stats("?filter=%5Elistener%5C.127").get(
        name.replace("_total", "_active")) == 0, "listener connections closed")

    server = proxy.admin.stats("?filter=%5Eserver%5C.")
    assert server["server.live"] == 1
    assert server["server.concurrency"] >= 1
    if not legate_is_asan:  # ASan's allocator does not report through mallinfo2
        assert server["server.memory_allocated"] > 0
    assert server["server.uptime"] >= 0
    assert "server.total_connections" in server
    # Prometheus: Envoy's names, gauges.
    _, _, body = proxy.admin.get("/stats/prometheus?filter=%5Eserver%5C.live%24")
    assert body == "# TYPE envoy_server_live gauge\nenvoy_server_live{} 1\n\n"
    _, _, body = proxy.admin.get("/stats/prometheus?filter=%5Elistener%5C.127.*cx_total")
    assert re.search(r'^envoy_listener_downstream_cx_total\{envoy_listener_address="127\.0\.0\.1_\d+"\} 2$',
                     body, re.M), body


def test_ipv6_listener_stats_are_named_as_envoy(start_legate, free_port, origin):
    port, v6_port, admin_port = free_port(), free_port(), free_port()
    cfg = admin_config(port, origin.port, admin_port)
    chain = bs.filter_chain(bs.hcm([bs.route("/", "app")]))
    cfg["static_resources"]["listeners"].append(bs.listener("v6", v6_port, [chain], host="::1"))
    lg = start_legate(cfg, ports=[port, admin_port])
    admin = Admin(admin_port)
    name = "listener.[__1]_%d.downstream_cx_total" % v6_port
    wait_for(lambda: name in admin.stats("?filter=%5Elistener"), name)
    r = curl("http://[::1]:%d/ok" % v6_port, "-g")
    assert r.status == 200, r
    wait_for(lambda: admin.stats("?filter=%5Elistener").get(name) == 1, name + " == 1")
    # Envoy's listener_address tag takes the bracketed form whole.
    _, _, body = admin.get("/stats/prometheus?filter=%5Elistener%5C.%5C%5B.*cx_total")
    assert 'envoy_listener_downstream_cx_total{envoy_listener_address="[__1]_%d"} 1' % v6_port in body, body
