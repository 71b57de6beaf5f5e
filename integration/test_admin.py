"""The admin endpoint against the real binary (issue 4, item 1; DESIGN §9): Envoy's paths, formats
and status codes on `admin.address`, stats with Envoy's names after a known workload, the
Prometheus page read by parsers (a strict one here, and prometheus_client's when installed),
/config_dump decoded with Envoy's own protos, POST-only enforcement, the health-check and drain
switches, /quitquitquit ending the process with 0, and the admin's access log in Envoy's default
format.

Every test starts its own legate (exact counts need a fresh stats registry) on loopback ports.
"""
import http.client
import importlib.util
import json
import os
import pathlib
import re
import socket
import tempfile
import time

import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl
from lgharness.procs import Legate, port_accepts

REPO = pathlib.Path(__file__).resolve().parent.parent
WAIT = 10.0  # seconds: bound of every poll below

# Envoy's default access-log format, as the regexes written for Envoy's lines parse it.
ENVOY_DEFAULT_LOG = re.compile(
    r'^\[(?P<start>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] '
    r'"(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" (?P<code>\d{3}) (?P<flags>\S+) '
    r'(?P<rx>\d+) (?P<tx>\d+) (?P<duration>\d+) (?P<upstream_time>\S+) '
    r'"(?P<xff>[^"]*)" "(?P<ua>[^"]*)" "(?P<rid>[^"]*)" "(?P<authority>[^"]*)" '
    r'"(?P<upstream_host>[^"]*)"$')


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------

def admin_config(listen_port, origin_port, admin_port, access_log=None):
    cfg = bs.simple_proxy(listen_port, origin_port)
    cfg["admin"] = {"address": bs.address("127.0.0.1", admin_port)}
    if access_log:
        cfg["admin"]["access_log"] = [{
            "name": "envoy.access_loggers.file",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                "path": str(access_log)}}]
    return cfg


class Admin:
    def __init__(self, port):
        self.port = port

    def request(self, path, method="GET", headers=None, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read().decode()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def get(self, path):
        return self.request(path)

    def post(self, path):
        return self.request(path, "POST")

    def stats(self, query=""):
        status, _, body = self.get("/stats" + query)
        assert status == 200, body
        out = {}
        for line in body.splitlines():
            name, _, value = line.partition(": ")
            if value.isdigit():  # counters and gauges; histograms (quantile summaries) come after
                out[name] = int(value)
        return out


@pytest.fixture
def proxy(start_legate, free_port, origin, tmp_path):
    port, admin_port = free_port(), free_port()
    log = tmp_path / "admin_access.log"
    lg = start_legate(admin_config(port, origin.port, admin_port, log), ports=[port, admin_port])
    lg.admin = Admin(admin_port)
    lg.origin = origin
    lg.admin_log = log
    return lg


def traffic(lg, ok=3, not_found=2):
    """A known workload: `ok` requests answered 200 and `not_found` answered 404 by the origin."""
    for _ in range(ok):
        r = curl(lg.url("/ok"))
        assert r.status == 200, r
    for _ in range(not_found):
        r = curl(lg.url("/status/404"))
        assert r.status == 404, r


def wait_for(pred, what):
    deadline = time.monotonic() + WAIT
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for " + what)
        time.sleep(0.05)


# A strict reader of the Prometheus text exposition format (version 0.0.4): every line is a
# comment, a TYPE line or a sample; each family's TYPE comes once, before its samples, which are
# contiguous; no series repeats.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.eE+]+|NaN|[+-]Inf)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prometheus(text):
    types, series, seen_families, current = {}, {}, [], None
    for n, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name not in types, "line %d: second TYPE for %s" % (n, name)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            types[name] = kind
            current = name
            seen_families.append(name)
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "line %d is not a sample: %r" % (n, line)
        name, labels_text = m.group(1), m.group(3) or ""
        # A histogram's samples are <family>_bucket (with le), <family>_sum and <family>_count.
        allowed = [current] if types.get(current) != "histogram" else [
            current + "_bucket", current + "_sum", current + "_count"]
        assert name in allowed, "line %d: %s outside its family's group" % (n, name)
        labels, pos = {}, 0
        while pos < len(labels_text):
            lm = LABEL.match(labels_text, pos)
            assert lm, "line %d: bad labels %r" % (n, labels_text)
            labels[lm.group(1)] = lm.group(2)
            pos = lm.end()
        key = (name, tuple(sorted(labels.items())))
        assert key not in series, "line %d: series %r twice" % (n, key)
        series[key] = float(m.group(4))
    return types, series


def select(series, name, **labels):
    """The samples of `name` whose labels include `labels` (a PromQL-style selector)."""
    return {k: v for k, v in series.items()
            if k[0] == name and all(dict(k[1]).get(l) == v2 for l, v2 in labels.items())}


def sum_by(series, name, label):
    out = {}
    for k, v in select(series, name).items():
        key = dict(k[1]).get(label)
        out[key] = out.get(key, 0) + v
    return out


# Envoy's real protos for decoding JSON (tests/proto_compat caches them in build/envoy-api-ref).
_ENVOY_POOL = {}


def envoy_message(full_name):
    """A class for one of Envoy's own message types, built from Envoy's .proto files with protoc
    (skips the test when the reference cannot be had, as test_proto_compat does)."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError:
        pytest.skip("google.protobuf is not installed for this python")
    if "pool" not in _ENVOY_POOL:
        spec = importlib.util.spec_from_file_location("proto_compat_check",
                                                      REPO / "tests" / "proto_compat" / "check.py")
        check = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(check)
        try:
            deps = check.ensure_reference(str(REPO / "build" / "envoy-api-ref"), check.DEFAULT_VERSION)
        except (check.NoReference, OSError) as e:
            pytest.skip("Envoy API reference unavailable: %s" % e)
        roots = [os.path.join(deps, r) for r in check.DEP_ROOTS]
        files = ["envoy/admin/v3/config_dump.proto", "envoy/admin/v3/clusters.proto",
                 "envoy/admin/v3/listeners.proto", "envoy/admin/v3/server_info.proto",
                 "envoy/admin/v3/memory.proto", "envoy/config/bootstrap/v3/bootstrap.proto",
                 "envoy/extensions/filters/network/http_connection_manager/v3/"
                 "http_connection_manager.proto",
                 "envoy/extensions/filters/http/router/v3/router.proto",
                 "envoy/extensions/access_loggers/file/v3/file.proto"]
        with tempfile.TemporaryDirectory() as tmp:
            overlay = check.ValidateOverlay(deps, os.path.join(tmp, "overlay"))
            out = os.path.join(tmp, "envoy.pb")
            for _ in range(20):
                ok, err = check.protoc([overlay.root] + roots + [check.SYSTEM_INCLUDE], files, out)
                if ok or not overlay(err):
                    break
            assert ok, "Envoy's protos do not compile:\n" + err
            fds = descriptor_pb2.FileDescriptorSet()
            fds.ParseFromString(pathlib.Path(out).read_bytes())
        pool = descriptor_pool.DescriptorPool()
        for f in fds.file:
            pool.Add(f)
        _ENVOY_POOL["pool"] = pool
        _ENVOY_POOL["factory"] = message_factory.MessageFactory(pool)
    pool = _ENVOY_POOL["pool"]
    return _ENVOY_POOL["factory"].GetPrototype(pool.FindMessageTypeByName(full_name))


def decode(full_name, text):
    """Parses JSON strictly (unknown fields are errors) into Envoy's message `full_name`."""
    from google.protobuf import json_format
    msg = envoy_message(full_name)()
    json_format.Parse(text, msg, descriptor_pool=_ENVOY_POOL["pool"])
    return msg


def unpack(any_msg):
    cls = envoy_message(any_msg.type_url.split("/")[-1])
    m = cls()
    assert any_msg.Unpack(m)
    return m


# ------------------------------------------------------------------------------------------------
# Tests
# ------------------------------------------------------------------------------------------------

def test_ready_and_server_info(proxy):
    status, headers, body = proxy.admin.get("/ready")
    assert (status, body) == (200, "LIVE\n")
    assert headers["content-type"].startswith("text/plain")

    status, headers, body = proxy.admin.get("/server_info")
    assert status == 200 and headers["content-type"] == "application/json"
    info = json.loads(body)
    assert info["version"].startswith("legate/")
    assert info["state"] == "LIVE"
    assert re.fullmatch(r"\d+s", info["uptime_current_epoch"])
    opts = info["command_line_options"]
    assert opts["concurrency"] == 1 and opts["config_path"].endswith(".yaml")
    assert opts["drain_time"] == "1s" and opts["mode"] == "Serve"
    assert info["node"]["id"] == "integration"
    # Field for field Envoy's envoy.admin.v3.ServerInfo.
    msg = decode("envoy.admin.v3.ServerInfo", body)
    assert msg.command_line_options.log_level == "warning"


def test_stats_count_a_known_workload(proxy):
    traffic(proxy, ok=3, not_found=2)
    want = {
        "http.ingress_http.downstream_rq_2xx": 3,
        "http.ingress_http.downstream_rq_4xx": 2,
        "http.ingress_http.downstream_rq_total": 5,
        "cluster.app.upstream_rq_2xx": 3,
        "cluster.app.upstream_rq_4xx": 2,
        "cluster.app.upstream_rq_total": 5,
    }
    stats = wait_for(lambda: (lambda s: s if all(s.get(k) == v for k, v in want.items()) else None)(
        proxy.admin.stats()), "the workload's counts in /stats")
    names = list(stats)
    assert names == sorted(names), "text /stats is sorted by name"

    # The same values as JSON, and filtered by an RE2 regex (partial match, as Envoy).
    status, headers, body = proxy.admin.get("/stats?format=json&filter=%5Ecluster%5C.app%5C.upstream_rq_%5B0-9%5Dxx%24")
    assert status == 200 and headers["content-type"] == "application/json"
    got = {s["name"]: s["value"] for s in json.loads(body)["stats"]}
    assert got == {"cluster.app.upstream_rq_%dxx" % c: {2: 3, 4: 2}.get(c, 0) for c in range(1, 6)}

    used = proxy.admin.stats("?usedonly")
    assert used and all(v != 0 for v in used.values())
    assert used["cluster.app.upstream_rq_2xx"] == 3
    gauges = proxy.admin.stats("?type=Gauges&filter=ingress_http")
    assert "http.ingress_http.downstream_rq_active" in gauges
    assert "http.ingress_http.downstream_rq_total" not in gauges

    status, _, body = proxy.admin.get("/stats?filter=(")
    assert (status, body) == (400, "Invalid re2 regex")
    status, _, body = proxy.admin.get("/stats?type=Nope")
    assert (status, body) == (400, "invalid &type= param")


def test_prometheus_page_answers_envoy_queries(proxy):
    traffic(proxy, ok=3, not_found=2)
    wait_for(lambda: proxy.admin.stats("?filter=upstream_rq_total").get("cluster.app.upstream_rq_total") == 5,
             "upstream_rq_total")
    status, headers, body = proxy.admin.get("/stats/prometheus")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert headers.get("transfer-encoding") == "chunked", "the page is streamed, not sized up front"
    types, series = parse_prometheus(body)

    # The queries a dashboard written for Envoy runs.
    assert sum_by(series, "envoy_cluster_upstream_rq_total", "envoy_cluster_name")["app"] == 5
    assert types["envoy_cluster_upstream_rq_total"] == "counter"
    assert select(series, "envoy_http_downstream_rq_xx", envoy_response_code_class="2",
                  envoy_http_conn_manager_prefix="ingress_http") == {
        ("envoy_http_downstream_rq_xx", (("envoy_http_conn_manager_prefix", "ingress_http"),
                                         ("envoy_response_code_class", "2"))): 3.0}
    assert sum(select(series, "envoy_http_downstream_rq_xx", envoy_response_code_class="4",
                      envoy_http_conn_manager_prefix="ingress_http").values()) == 2
    assert sum(select(series, "envoy_cluster_upstream_rq_xx", envoy_cluster_name="app",
                      envoy_response_code_class="2").values()) == 3
    assert types["envoy_cluster_upstream_cx_active"] == "gauge"
    assert types["envoy_http_downstream_rq_active"] == "gauge"
    assert select(series, "envoy_cluster_membership_healthy", envoy_cluster_name="app")
    assert list(select(series, "envoy_cluster_membership_healthy", envoy_cluster_name="app").values()) == [1]

    # Same page through /stats?format=prometheus; a filter narrows it.
    status, _, same = proxy.admin.get("/stats?format=prometheus&filter=cluster%5C.app%5C.")
    assert status == 200
    _, narrowed = parse_prometheus(same)
    assert narrowed and all(dict(k[1]).get("envoy_cluster_name") == "app" for k in narrowed)


def test_prometheus_page_parses_with_prometheus_client(proxy):
    parser = pytest.importorskip("prometheus_client.parser")
    traffic(proxy, ok=2, not_found=1)
    wait_for(lambda: proxy.admin.stats("?filter=upstream_rq_total").get("cluster.app.upstream_rq_total") == 3,
             "upstream_rq_total")
    _, _, body = proxy.admin.get("/stats/prometheus")
    # prometheus_client names a counter family without "_total" and its samples with it.
    # Envoy's own page has `envoy_cluster_upstream_rq{envoy_response_code="200"}` (a counter
    # named without "_total") beside `envoy_cluster_upstream_rq_total`, which this parser also names
    # envoy_cluster_upstream_rq: two families of one name, merged here as a scraper would.
    families = {}
    for fam in parser.text_string_to_metric_families(body):
        kind, samples = families.setdefault(fam.name, (fam.type, {}))
        assert kind == fam.type, "family %s has two types" % fam.name
        for s in fam.samples:
            key = tuple(sorted(s.labels.items()))
            # (a histogram's _bucket/_sum/_count share labels; test_admin_stats.py reads those)
            assert key not in samples or fam.type == "histogram", key
            samples[key] = s.value
    kind, samples = families["envoy_cluster_upstream_rq"]  # envoy_cluster_upstream_rq_total
    assert kind == "counter" and samples[(("envoy_cluster_name", "app"),)] == 3
    kind, samples = families["envoy_cluster_upstream_rq_xx"]
    assert kind == "counter"
    assert samples[(("envoy_cluster_name", "app"), ("envoy_response_code_class", "4"))] == 1
    assert families["envoy_cluster_upstream_rq_active"][0] == "gauge"


def test_clusters_and_listeners(proxy):
    host = "127.0.0.1:%d" % proxy.origin.port
    status, _, text = proxy.admin.get("/clusters")
    assert status == 200
    lines = text.splitlines()
    for want in ("app::added_via_api::false", "app::default_priority::max_connections::1024",
                 "app::%s::health_flags::healthy" % host, "app::%s::weight::1" % host,
                 "app::%s::cx_active::0" % host):
        assert want in lines, want

    status, headers, body = proxy.admin.get("/clusters?format=json")
    assert status == 200 and headers["content-type"] == "application/json"
    clusters = decode("envoy.admin.v3.Clusters", body)
    (app,) = [c for c in clusters.cluster_statuses if c.name == "app"]
    (h,) = app.host_statuses
    assert (h.address.socket_address.address, h.address.socket_address.port_value) == \
        ("127.0.0.1", proxy.origin.port)
    assert h.weight == 1 and h.health_status.eds_health_status == 1  # HEALTHY
    assert {s.name for s in h.stats} >= {"cx_total", "rq_total", "cx_active"}

    status, _, text = proxy.admin.get("/listeners")
    assert text == "ingress::127.0.0.1:%d\n" % proxy.port
    status, _, body = proxy.admin.get("/listeners?format=json")
    listeners = decode("envoy.admin.v3.Listeners", body)
    assert [(l.name, l.local_address.socket_address.port_value) for l in listeners.listener_statuses] == \
        [("ingress", proxy.port)]


def test_config_dump_decodes_as_envoys_config_dump(proxy):
    status, headers, body = proxy.admin.get("/config_dump")
    assert status == 200 and headers["content-type"] == "application/json"
    dump = decode("envoy.admin.v3.ConfigDump", body)
    types = [c.type_url.split("/")[-1] for c in dump.configs]
    assert types == ["envoy.admin.v3.BootstrapConfigDump", "envoy.admin.v3.ClustersConfigDump",
                     "envoy.admin.v3.ListenersConfigDump", "envoy.admin.v3.RoutesConfigDump",
                     "envoy.admin.v3.ScopedRoutesConfigDump", "envoy.admin.v3.SecretsConfigDump"]
    boot = unpack(dump.configs[0])
    assert boot.bootstrap.node.id == "integration"
    assert boot.bootstrap.admin.address.socket_address.port_value == proxy.admin.port
    clusters = unpack(dump.configs[1])
    (sc,) = clusters.static_clusters
    cluster = unpack(sc.cluster)
    assert cluster.name == "app"
    ep = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint
    assert ep.address.socket_address.port_value == proxy.origin.port
    assert sc.last_updated.seconds > 0
    (sl,) = unpack(dump.configs[2]).static_listeners
    assert unpack(sl.listener).name == "ingress"
    (sr,) = unpack(dump.configs[3]).static_route_configs
    assert unpack(sr.route_config).name == "local_route"

    # ?resource= lists one repeated field's elements as configs; ?mask= trims them.
    status, _, body = proxy.admin.get("/config_dump?resource=static_clusters&mask=cluster.name")
    dump = decode("envoy.admin.v3.ConfigDump", body)
    (c,) = dump.configs
    assert c.type_url.endswith("envoy.admin.v3.ClustersConfigDump.StaticCluster")
    sc = unpack(c)
    assert unpack(sc.cluster).name == "app" and not unpack(sc.cluster).HasField("load_assignment")
    assert not sc.HasField("last_updated")

    # ?include_eds adds the live endpoints.
    status, _, body = proxy.admin.get("/config_dump?include_eds")
    dump = decode("envoy.admin.v3.ConfigDump", body)
    (eds,) = [unpack(c) for c in dump.configs if c.type_url.endswith("EndpointsConfigDump")]
    cla = unpack(eds.static_endpoint_configs[0].endpoint_config)
    assert cla.cluster_name == "app"
    assert cla.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value == proxy.origin.port

    assert proxy.admin.get("/config_dump?resource=nope")[0:3:2] == (404, "nope not found in config dump")


def test_mutating_endpoints_are_post_only(proxy):
    for path in ("/quitquitquit", "/healthcheck/fail", "/healthcheck/ok", "/drain_listeners",
                 "/logging"):
        status, _, body = proxy.admin.get(path)
        assert (status, body) == (405, "Method GET not allowed, POST required."), path
    status, _, body = proxy.admin.get("/ready")
    assert status == 200, "a refused GET changed nothing"

    status, _, body = proxy.admin.get("/no/such/path")
    assert status == 404 and body.startswith("invalid path. admin commands are:\n")
    status, _, body = proxy.admin.get("/help")
    assert status == 200 and body.startswith("admin commands are:\n")
    for path in ("/clusters", "/config_dump", "/listeners", "/ready", "/server_info", "/stats",
                 "/stats/prometheus", "/runtime", "/memory", "/certs"):
        assert "\n  %s: " % path in body, path
    assert "\n  /quitquitquit (POST): exit the server\n" in body


def test_healthcheck_fail_and_ok(proxy):
    assert proxy.admin.post("/healthcheck/fail")[0::2] == (200, "OK\n")
    assert proxy.admin.get("/ready")[0::2] == (503, "DRAINING\n")
    assert json.loads(proxy.admin.get("/server_info")[2])["state"] == "DRAINING"
    assert curl(proxy.url("/ok")).status == 200, "the data plane keeps serving"
    assert proxy.admin.post("/healthcheck/ok")[0::2] == (200, "OK\n")
    assert proxy.admin.get("/ready")[0::2] == (200, "LIVE\n")


def test_logging_levels(proxy):
    status, _, body = proxy.admin.post("/logging")
    assert status == 200 and body.startswith("active loggers:\n")
    assert "  upstream: warning\n" in body
    status, _, body = proxy.admin.post("/logging?paths=upstream:debug,router:trace")
    assert status == 200
    assert "  upstream: debug\n" in body and "  router: trace\n" in body
    status, _, body = proxy.admin.post("/logging?level=error")
    assert status == 200 and "  main: error\n" in body and "  upstream: error\n" in body
    status, _, body = proxy.admin.post("/logging?level=loud")
    assert status == 400 and body.startswith("error: unknown logger level\n\n")
    status, _, body = proxy.admin.post("/logging?paths=nosuch:debug")
    assert status == 400 and body.startswith("error: unknown logger name\n\n")


def test_runtime_memory_certs(proxy):
    status, _, body = proxy.admin.get("/runtime")
    assert status == 200 and json.loads(body) == {"entries": {}, "layers": []}
    status, _, body = proxy.admin.get("/memory")
    mem = decode("envoy.admin.v3.Memory", body)
    assert mem.allocated >= 0 and status == 200
    status, _, body = proxy.admin.get("/certs")
    assert status == 200 and json.loads(body) == {"certificates": []}


def test_drain_listeners_stops_the_data_plane_only(proxy):
    assert curl(proxy.url("/ok")).status == 200
    assert proxy.admin.post("/drain_listeners?graceful")[0::2] == (200, "OK\n")
    wait_for(lambda: not port_accepts("127.0.0.1", proxy.port), "the listener to stop accepting")
    assert proxy.admin.get("/ready")[0] == 200, "the admin keeps answering"
    assert proxy.popen.poll() is None, "draining listeners does not end the process"


def test_admin_access_log_uses_envoys_default_format(proxy):
    proxy.admin.request("/ready?probe=1", headers={"User-Agent": "probe/1.0", "X-Request-Id": "rid-7"})
    proxy.admin.post("/healthcheck/ok")
    lines = wait_for(lambda: [l for l in proxy.admin_log.read_text().splitlines()
                              if "/healthcheck/ok" in l] and proxy.admin_log.read_text().splitlines(),
                     "the access log lines")
    parsed = [ENVOY_DEFAULT_LOG.match(l) for l in lines]
    assert all(parsed), lines
    ready = [m for m in parsed if m["path"] == "/ready?probe=1"][0]
    assert (ready["method"], ready["protocol"], ready["code"]) == ("GET", "HTTP/1.1", "200")
    assert (ready["tx"], ready["ua"], ready["rid"]) == ("5", "probe/1.0", "rid-7")
    assert ready["authority"] == "127.0.0.1:%d" % proxy.admin.port
    assert [m for m in parsed if m["path"] == "/healthcheck/ok"][0]["method"] == "POST"


def test_quitquitquit_exits_zero(legate_bin, free_port, origin, tmp_path):
    port, admin_port = free_port(), free_port()
    cfg = tmp_path / "quit.yaml"
    cfg.write_text(bs.to_yaml(admin_config(port, origin.port, admin_port)))
    p = Legate(legate_bin, str(cfg), [port, admin_port], log_dir=tmp_path, name="legate-quit")
    p.start()
    try:
        p.wait_ports([port, admin_port], timeout=20)
        assert curl(p.url("/ok")).status == 200
        status, _, body = Admin(admin_port).post("/quitquitquit")
        assert (status, body) == (200, "OK\n")
        rc = p.wait_exit(WAIT)
        assert rc == 0, "legate did not exit 0 after /quitquitquit (rc=%s):\n%s" % (rc, p.stderr_text())
        assert not p.sanitizer_report(), p.stderr_text()
        assert not port_accepts("127.0.0.1", admin_port)
    finally:
        p.stop()


def test_bad_admin_address_fails_start(legate, free_port, origin, tmp_path):
    cfg = admin_config(free_port(), origin.port, free_port())
    cfg["admin"]["address"]["socket_address"]["address"] = "not-an-ip"
    path = tmp_path / "bad.yaml"
    path.write_text(bs.to_yaml(cfg))
    r = legate("-c", path, "--concurrency", "1", timeout=20)
    assert r.returncode != 0
    assert "admin.address.socket_address.address" in r.stderr


def test_admin_port_in_use_fails_start(legate, free_port, origin, tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        cfg = admin_config(free_port(), origin.port, busy.getsockname()[1])
        path = tmp_path / "busy.yaml"
        path.write_text(bs.to_yaml(cfg))
        r = legate("-c", path, "--concurrency", "1", timeout=20)
        assert r.returncode != 0 and "admin: cannot bind" in r.stderr
    finally:
        busy.close()
