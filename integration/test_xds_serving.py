"""legate served from a control plane: go-control-plane (integration/xds_server) pushes clusters,
endpoints, listeners and routes over ADS or per-type streams; legate starts its listener once the
initial config is there, routes requests with it, follows route and endpoint changes without a
restart, and keeps serving its last good config when an update is rejected (NACK)."""
import contextlib
import json
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from lgharness.clients import curl
from lgharness.ports import pick_port
from test_xds import XdsServer, _server_binary, bootstrap, cluster, endpoints, listener, route

MODES = ["ads", "xds", "delta-ads"]


@contextlib.contextmanager
def legate_on(server, mode, tmp_path, legate_bin, workers=1, admin_port=None):
    """legate on a bootstrap pointing at `server` (with an admin listener when `admin_port`);
    stopped (SIGTERM) at the end, with the server, and required to exit 0 with no sanitizer
    report."""
    cfg = tmp_path / "bootstrap.yaml"
    boot = json.loads(bootstrap(mode, server.grpc_port))
    if admin_port is not None:
        boot["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}}
    cfg.write_text(json.dumps(boot))
    err = open(tmp_path / "legate.stderr", "wb")
    proc = subprocess.Popen([legate_bin, "-c", str(cfg), "--concurrency", str(workers), "-l", "info",
                             "--drain-time-s", "1"], stdout=subprocess.DEVNULL, stderr=err)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        err.close()
        server.stop()
    log = (tmp_path / "legate.stderr").read_text(errors="replace")
    assert rc == 0, log
    assert "Sanitizer" not in log and "runtime error" not in log, log


def wait_port(port, bound=15.0):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_for(pred, bound=10.0):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("mode", MODES)
def test_served_and_updated_from_the_control_plane(mode, tmp_path, legate_bin, make_origin):
    a, b = make_origin(), make_origin()
    server = XdsServer(_server_binary(), tmp_path, ads=mode.endswith("ads")).start()
    port, admin_port = pick_port(), pick_port()
    with legate_on(server, mode, tmp_path, legate_bin, admin_port=admin_port) as proc:
        server.snapshot("v1", clusters=[cluster(mode, "c1")], endpoints=[endpoints("c1", a.port)],
                        listeners=[listener(mode, "l1", port, "r1")], routes=[route("r1", "c1")])
        assert wait_port(port), "legate did not start listening from the xDS config"
        r = curl("http://127.0.0.1:%d/echo/one" % port, "--http1.1")
        assert r.status == 200 and json.loads(r.body)["target"] == "/echo/one", r
        assert len(a.heads) == 1 and b.heads == []

        # An endpoint change moves traffic to the other origin, on the same listener.
        server.snapshot("v2", clusters=[cluster(mode, "c1")], endpoints=[endpoints("c1", b.port)],
                        listeners=[listener(mode, "l1", port, "r1")], routes=[route("r1", "c1")])
        assert wait_for(lambda: curl("http://127.0.0.1:%d/echo/two" % port, "--http1.1").status == 200
                        and len(b.heads) > 0), "the EDS update did not reach the data plane"

        # A bad route (unknown regex) is NACKed; the last good config keeps serving.
        bad = route("r1", "c1")
        bad["virtual_hosts"][0]["routes"][0]["match"] = {"safe_regex": {"regex": "(unclosed"}}
        server.snapshot("v3", clusters=[cluster(mode, "c1")], endpoints=[endpoints("c1", b.port)],
                        listeners=[listener(mode, "l1", port, "r1")], routes=[bad])
        assert wait_for(lambda: any(r["error_detail"] and "regex" in r["error_detail"]["message"]
                                    for r in server.requests())), "no NACK naming the bad regex"
        assert curl("http://127.0.0.1:%d/echo/three" % port, "--http1.1").status == 200
        assert proc.poll() is None
        check_config_dump(admin_port, mode)


def check_config_dump(admin_port, mode):
    """/config_dump's dynamic sections after v1, v2 and the rejected v3 of the first test: every
    resource with its version and last_updated, the route with the rejected update's error_state."""
    with urllib.request.urlopen("http://127.0.0.1:%d/config_dump?include_eds" % admin_port, timeout=10) as r:
        configs = {c["@type"].rsplit(".", 1)[1]: c for c in json.loads(r.read())["configs"]}
    sotw = not mode.startswith("delta")
    clusters = configs["ClustersConfigDump"]["dynamic_active_clusters"]
    assert [c["cluster"]["name"] for c in clusters] == ["c1"], clusters
    assert clusters[0]["last_updated"].endswith("Z")
    listeners = configs["ListenersConfigDump"]["dynamic_listeners"]
    assert [(l["name"], l["active_state"]["listener"]["name"]) for l in listeners] == [("l1", "l1")], listeners
    routes = configs["RoutesConfigDump"]["dynamic_route_configs"]
    assert [r["route_config"]["name"] for r in routes] == ["r1"], routes
    assert "regex" in routes[0]["error_state"]["details"], routes
    eps = configs["EndpointsConfigDump"]["dynamic_endpoint_configs"]
    assert [e["endpoint_config"]["cluster_name"] for e in eps] == ["c1"], eps
    with urllib.request.urlopen("http://127.0.0.1:%d/stats?filter=rds" % admin_port, timeout=10) as r:
        stats = dict(line.split(": ", 1) for line in r.read().decode().splitlines())
    # route r1 accepted (v1; v2 may not resend it unchanged), v3 (the bad regex) rejected, counted for
    # the connection manager that names it (stat_prefix http)
    assert int(stats["http.http.rds.r1.update_success"]) >= 1, stats
    assert int(stats["http.http.rds.r1.update_rejected"]) >= 1, stats  # go-control-plane re-sends a NACKed version
    assert int(stats["http.http.rds.r1.update_attempt"]) == (int(stats["http.http.rds.r1.update_success"]) +
                                                             int(stats["http.http.rds.r1.update_rejected"])), stats
    assert int(stats["http.http.rds.r1.version"]) != 0, stats
    if sotw:
        assert configs["ClustersConfigDump"]["version_info"] == "v3"
        assert routes[0]["version_info"] == "v2" and routes[0]["error_state"]["version_info"] == "v3", routes


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return False
    except OSError:
        return True


@pytest.mark.parametrize("mode", ["ads", "xds"])
def test_listeners_added_and_removed_after_start(mode, tmp_path, legate_bin, make_origin):
    """LDS after start: a new listener starts accepting on every worker, a removed one stops (its
    port refuses), one that cannot bind is NACKed with the reason while the others keep serving."""
    a = make_origin()
    server = XdsServer(_server_binary(), tmp_path, ads=mode.endswith("ads")).start()
    p1, p2, p3 = pick_port(), pick_port(), pick_port()
    with legate_on(server, mode, tmp_path, legate_bin, workers=2) as proc, socket.socket() as taken:
        common = dict(clusters=[cluster(mode, "c1")], endpoints=[endpoints("c1", a.port)], routes=[route("r1", "c1")])
        server.snapshot("v1", listeners=[listener(mode, "l1", p1, "r1")], **common)
        assert wait_port(p1)
        server.snapshot("v2", listeners=[listener(mode, "l1", p1, "r1"), listener(mode, "l2", p2, "r1")], **common)
        assert wait_port(p2), "the listener added after start does not accept"
        for p in (p1, p2):
            assert curl("http://127.0.0.1:%d/echo/x" % p, "--http1.1").status == 200
        server.snapshot("v3", listeners=[listener(mode, "l2", p2, "r1")], **common)
        assert wait_for(lambda: refused(p1)), "the removed listener still accepts"
        assert curl("http://127.0.0.1:%d/echo/y" % p2, "--http1.1").status == 200
        taken.bind(("127.0.0.1", p3))
        taken.listen(1)
        server.snapshot("v4", listeners=[listener(mode, "l2", p2, "r1"), listener(mode, "l3", p3, "r1")], **common)
        assert wait_for(lambda: any(r["error_detail"] and "cannot bind" in r["error_detail"]["message"]
                                    for r in server.requests())), "no NACK naming the bind failure"
        assert curl("http://127.0.0.1:%d/echo/z" % p2, "--http1.1").status == 200
        assert proc.poll() is None


def test_more_than_a_thousand_eds_clusters(tmp_path, legate_bin, make_origin):
    """EDS names were capped at 1,024 per subscription: clusters past that never got endpoints and
    answered 503 forever. 1,100 clusters, the last one routed to."""
    a = make_origin()
    server = XdsServer(_server_binary(), tmp_path, ads=True).start()
    port = pick_port()
    n = 1100
    rc = route("r1", "c0")
    rc["virtual_hosts"][0]["routes"] = [{"match": {"prefix": "/c%d/" % i}, "route": {"cluster": "c%d" % i}}
                                        for i in range(n)]
    with legate_on(server, "ads", tmp_path, legate_bin) as proc:
        server.snapshot("v1", clusters=[cluster("ads", "c%d" % i) for i in range(n)],
                        endpoints=[endpoints("c%d" % i, a.port) for i in range(n)],
                        listeners=[listener("ads", "l1", port, "r1")], routes=[rc])
        assert wait_port(port)
        assert wait_for(lambda: curl("http://127.0.0.1:%d/c%d/x" % (port, n - 1), "--http1.1").status == 200), \
            "the 1,100th EDS cluster has no endpoints"
        assert proc.poll() is None
