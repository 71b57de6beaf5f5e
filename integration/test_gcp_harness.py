"""go-control-plane's own integration harness with legate where upstream CI runs Envoy.

The harness is the published `pkg/test/main` program ("bin/test") and `internal/upstream` of
go-control-plane v0.14.0, built from integration/gcp (go.mod/go.sum only) into build/peers/gcp/. The
harness serves xDS (snapshot cache), pushes `-u` snapshot versions whose route and cluster names
change while the listener names and ports stay, and after each push sends batches of HTTP/1.1 GETs
to every listener; it prints "Test for <mode> passed!" when, for every version, one batch got the
upstream's message from all listeners. So legate must replace listeners in place on the same port,
drop removed clusters, warm the new EDS clusters and converge within about 2.5 s per push.

Profile: `-scopedhttp 0 -tcp 0 -vhdshttp 0 -runtimes 0` (legate has no SRDS, TCP proxy, VHDS or
RTDS); the harness's ECDS resources (`-extension 1`) are served and nothing asks for them. Modes as
upstream CI runs them, `-mux` (EDS from a linear cache) included. The bootstraps are written here,
equivalent to the harness's sample ones minus the RTDS layer. Not covered: `-xds rest` (legate has
no REST-JSON polling) and `-tls` (listeners with SDS secrets). The harness binds its own servers on
every interface (":port"; not configurable); every address legate and the harness are given is on
loopback.
"""
import pathlib

import pytest

from lgharness import bootstrap as bs
from lgharness import peers
from lgharness.ports import pick_port
from lgharness.procs import port_accepts

GCP_SRC = pathlib.Path(__file__).resolve().parent / "gcp"
GCP_MOD = "github.com/envoyproxy/go-control-plane"
PROFILE = ["-scopedhttp", "0", "-tcp", "0", "-vhdshttp", "0", "-runtimes", "0"]
MESSAGE = "Hi, there!\n"
HTTP_LISTENERS = 2  # the harness's -http default: listeners base+0 and base+1
FIRST_REQUEST_WAIT = 60  # the harness exits when no xDS request came within a minute

CASES = [
    pytest.param("ads", [], id="ads"),
    pytest.param("xds", [], id="xds"),
    pytest.param("xds", ["-mux"], id="xds-mux"),
    pytest.param("delta", [], id="delta"),
    pytest.param("delta-ads", [], id="delta-ads"),
    pytest.param("ads", ["-clusters", "50", "-u", "10"], id="ads-50clusters-10updates"),
]


def harness_binaries():
    """(test, upstream) built from the module pinned in integration/gcp."""
    out = peers.PEERS / "gcp"
    try:
        return (peers.local_go_peer("gcp", src=GCP_SRC, binary=out / "test",
                                    package=GCP_MOD + "/pkg/test/main"),
                peers.local_go_peer("gcp", src=GCP_SRC, binary=out / "upstream",
                                    package=GCP_MOD + "/internal/upstream"))
    except peers.BuildError as e:
        pytest.fail(str(e))


def loopback_cluster(name, port):
    return {"name": name, "connect_timeout": "1s", "http2_protocol_options": {},
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}


def harness_bootstrap(mode, xds_port, als_port, admin_port):
    """legate's bootstrap for one harness mode: node test-id, xDS from xds_cluster (ADS for the *ads
    modes, one stream per type otherwise; delta modes with DELTA_GRPC), als_cluster for the
    listeners' gRPC access log."""
    api = {"api_type": "DELTA_GRPC" if mode.startswith("delta") else "GRPC",
           "transport_api_version": "V3",
           "grpc_services": [{"envoy_grpc": {"cluster_name": "xds_cluster"}}],
           "set_node_on_first_message_only": True}
    if mode.endswith("ads"):
        source = {"resource_api_version": "V3", "ads": {}}
        dyn = {"ads_config": api, "cds_config": source, "lds_config": source}
    else:
        source = {"resource_api_version": "V3", "api_config_source": api}
        dyn = {"cds_config": source, "lds_config": source}
    return {
        "node": {"id": "test-id", "cluster": "test-cluster"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        "dynamic_resources": dyn,
        "static_resources": {"clusters": [loopback_cluster("xds_cluster", xds_port),
                                          loopback_cluster("als_cluster", als_port)]},
    }


def free_base(n):
    """A port p with p .. p+n-1 all free: the harness puts listener i on base+i."""
    for _ in range(200):
        p = pick_port()
        if all(not port_accepts("127.0.0.1", p + i) for i in range(1, n)):
            return p
    raise RuntimeError("no %d consecutive free loopback ports" % n)


def flag_value(args, name, default):
    return int(args[args.index(name) + 1]) if name in args else default


@pytest.mark.parametrize("mode,extra", CASES)
def test_go_control_plane_harness(mode, extra, start_peer, start_legate, tmp_path):
    test_bin, upstream_bin = harness_binaries()
    xds, gateway, upstream, als, admin = (pick_port() for _ in range(5))
    base = free_base(HTTP_LISTENERS)

    start_peer([upstream_bin, "-upstream", upstream, "-message", MESSAGE], name="upstream",
               ports=[upstream])
    harness = start_peer([test_bin, "-xds", mode, "-debug", "-pprof=false", "-message", MESSAGE,
                          "-port", xds, "-gateway", gateway, "-upstream", upstream, "-base", base,
                          "-als", als, *PROFILE, *extra],
                         name="harness", ports=[xds, als])
    legate = start_legate(harness_bootstrap(mode, xds, als, admin), ports=[admin],
                          name="legate-" + mode, log_level="debug",
                          extra_args=["--concurrency", "2"])

    # -u pushes of -r batches 500 ms apart (the -delay default), each batch bounded by its
    # 100 ms client timeout per listener; plus the wait for legate's first request and slack.
    updates, batches = flag_value(extra, "-u", 3), flag_value(extra, "-r", 5)
    bound = FIRST_REQUEST_WAIT + updates * batches * (0.5 + 0.1 * HTTP_LISTENERS) + 30
    rc = harness.wait_exit(bound)
    out = harness.stderr_text() + harness.stdout_text()
    report = "\n--- harness (rc %s) ---\n%s\n--- legate stderr (tail) ---\n%s" % (
        rc, out[-20000:], legate.stderr_text(limit=30000))
    assert rc == 0 and "Test for %s passed!" % mode in out, report
    assert legate.alive(), report
