"""grpc-go's interop client through legate to grpc-go's interop TestService (issue 3, item 9;
research/peer-tests.md §5): every case that needs no cloud credentials.

The client comes from `go install google.golang.org/grpc/interop/client@v1.83.1`; the server is
integration/peers/grpc_interop_server (grpc-go's interop.NewTestServer on a loopback address, as
grpc-go's own interop/server binds every interface). Both are built once into build/peers/.
legate: listener with codec AUTO, route `prefix: /` with `grpc: {}`, an HTTP/2 cluster. The case
fails on a non-zero exit of the client.
"""
import pytest

from lgharness import bootstrap as bs
from lgharness import peers
from lgharness.clients import run
from lgharness.ports import pick_port

CASES = [
    "empty_unary", "large_unary", "client_streaming", "server_streaming", "ping_pong",
    "empty_stream", "timeout_on_sleeping_server", "cancel_after_begin",
    "cancel_after_first_response", "status_code_and_message", "special_status_message",
    "custom_metadata", "unimplemented_method", "unimplemented_service", "rpc_soak",
    "channel_soak",
]
SOAK = ["-soak_iterations", "10", "-soak_max_failures", "0",
        "-soak_per_iteration_max_acceptable_latency_ms", "1000",
        "-soak_overall_timeout_seconds", "20", "-soak_num_threads", "1"]


@pytest.fixture(scope="module")
def interop_bins():
    try:
        return peers.grpc_interop()
    except peers.BuildError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def interop_server(interop_bins, start_peer_module):
    port = pick_port()
    p = start_peer_module([interop_bins[1], "-addr", "127.0.0.1:%d" % port],
                          name="grpc-interop-server", ports=[port])
    p.port = port
    return p


@pytest.fixture(scope="module")
def proxy(interop_server, start_legate_module):
    port = pick_port()
    r = bs.route(match={"prefix": "/", "grpc": {}}, cluster="interop")
    cfg = bs.bootstrap([bs.listener("grpc", port, bs.hcm([r]))],
                       [bs.cluster("interop", [interop_server.port], h2=True)])
    return start_legate_module(cfg)


def test_interop_server_works_directly(interop_bins, interop_server):
    """The harness itself: the client against the server with no proxy between."""
    r = run([interop_bins[0], "-server_host", "127.0.0.1", "-server_port", interop_server.port,
             "-use_tls=false", "-test_case", "large_unary"], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("case", CASES)
def test_grpc_go_interop_through_legate(interop_bins, proxy, case):
    assert proxy.alive(), "legate exited (code %s) during an earlier case" % proxy.popen.poll()
    argv = [interop_bins[0], "-server_host", "127.0.0.1", "-server_port", proxy.port,
            "-use_tls=false", "-test_case", case]
    if case.endswith("_soak"):
        argv += SOAK
    r = run(argv, timeout=90)
    assert r.returncode == 0, "interop case %s failed through legate:\n%s%s" % (case, r.stdout, r.stderr)
    assert proxy.alive()
