#!/usr/bin/env python3
"""xDS push to serving: how long legate takes from a control-plane push to routing with the new
config, and what each cluster costs in memory (issue 5, item 7).

One legate (build/legate, or $LEGATE_BIN; --concurrency 1) on ADS to the repository's
go-control-plane server (integration/xds_server, built into build/peers/ if missing), one HTTP/1.1
origin. For N in 1, 100, 1,000, 10,000 (BENCH_XDS_SIZES): push a snapshot with N EDS clusters (one
endpoint each), one listener and one route configuration with N routes (/c<i> -> c<i>), then poll
(every 5 ms) the route of the last cluster until it answers 200. Prints, per N, the push-to-200
time and legate's RSS, then the RSS per cluster between the smallest and the largest N. Every
process it starts is stopped on exit; only loopback addresses.

Usage: bench/xds_push.py            (after a build; about a minute)
"""
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "integration"))
from lgharness import peers  # noqa: E402
from lgharness.origin_h1 import H1Origin  # noqa: E402

SIZES = [int(x) for x in os.environ.get("BENCH_XDS_SIZES", "1 100 1000 10000").split()]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def post(port, body):
    req = urllib.request.Request("http://127.0.0.1:%d/snapshot" % port, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()


def get_status(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def snapshot(version, n, listen, origin_port):
    ads = {"ads": {}, "resource_api_version": "V3"}
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": "bench", "rds": {"route_config_name": "routes", "config_source": ads},
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    return {
        "version": version, "node": "bench",
        "listeners": [{"name": "bench", "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                       "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                       "typed_config": hcm}]}]}],
        "routes": [{"name": "routes", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/c%d/" % i}, "route": {"cluster": "c%d" % i}} for i in range(n)]}]}],
        "clusters": [{"name": "c%d" % i, "type": "EDS", "connect_timeout": "1s",
                      "eds_cluster_config": {"eds_config": ads}} for i in range(n)],
        "endpoints": [{"cluster_name": "c%d" % i, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": "127.0.0.1", "port_value": origin_port}}}}]}]} for i in range(n)],
    }


def main():
    legate_bin = os.environ.get("LEGATE_BIN", str(REPO / "build" / "legate"))
    server_bin = peers.local_go_peer("xds_server", src=REPO / "integration" / "xds_server")
    work = REPO / "build" / "bench" / ("xds-" + time.strftime("%Y%m%d-%H%M%S"))
    work.mkdir(parents=True, exist_ok=True)
    grpc_port, admin, listen = free_port(), free_port(), free_port()
    origin = H1Origin().start()
    procs = []
    try:
        srv = subprocess.Popen([server_bin, "-grpc-port", str(grpc_port), "-http-port", "0"],
                               stdout=subprocess.PIPE, stderr=open(work / "xds_server.err", "wb"), text=True)
        procs.append(srv)
        m = re.match(r"xds_server ready grpc=(\d+) http=(\d+)", srv.stdout.readline())
        http_port = int(m.group(2))
        boot = {
            "node": {"id": "bench", "cluster": "bench"},
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
            "dynamic_resources": {"ads_config": {"api_type": "GRPC", "transport_api_version": "V3",
                                                 "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]},
                                  "cds_config": {"ads": {}, "resource_api_version": "V3"},
                                  "lds_config": {"ads": {}, "resource_api_version": "V3"}},
            "static_resources": {"clusters": [{"name": "xds", "type": "STATIC", "connect_timeout": "1s",
                                               "http2_protocol_options": {},
                                               "load_assignment": {"cluster_name": "xds", "endpoints": [{"lb_endpoints": [
                                                   {"endpoint": {"address": {"socket_address": {
                                                       "address": "127.0.0.1", "port_value": grpc_port}}}}]}]}}]}}
        (work / "bootstrap.json").write_text(json.dumps(boot))
        lg = subprocess.Popen([legate_bin, "-c", str(work / "bootstrap.json"), "--concurrency", "1", "-l", "warning"],
                              stdout=subprocess.DEVNULL, stderr=open(work / "legate.err", "wb"))
        procs.append(lg)
        print("| clusters | push to 200 (ms) | legate RSS (MiB) |")
        print("|---|---|---|")
        rss = {}
        for k, n in enumerate(SIZES):
            body = snapshot("v%d" % k, n, listen, origin.port)
            url = "http://127.0.0.1:%d/c%d/x" % (listen, n - 1)
            t0 = time.monotonic()
            post(http_port, body)
            deadline = t0 + 120
            while get_status(url) != 200:
                if time.monotonic() > deadline or lg.poll() is not None:
                    sys.exit("legate did not serve %d clusters within 120 s (see %s)" % (n, work))
                time.sleep(0.005)
            ms = (time.monotonic() - t0) * 1000
            rss[n] = rss_kib(lg.pid)
            print("| %d | %.0f | %.1f |" % (n, ms, rss[n] / 1024.0))
        lo, hi = min(SIZES), max(SIZES)
        if hi > lo:
            print()
            print("RSS per cluster (one EDS endpoint, one route each): %.2f KiB" % ((rss[hi] - rss[lo]) / (hi - lo)))
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        origin.stop()


if __name__ == "__main__":
    main()
