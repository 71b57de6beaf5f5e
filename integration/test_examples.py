"""examples/ does not rot: every examples/**/*.yaml passes `legate --mode validate` (folders with
a gen-*.sh are copied to a temporary directory and get their certificates or keys first), and each
example is served with its ports moved to free ones: gRPC (examples/grpc: bootstrap.yaml +
greeter.py) a unary call end to end, TLS (examples/tls-sni) per SNI name, the edge (examples/edge)
401 without a token, the subject upstream with one, 429 after five, and the sidecar
(examples/sidecar) from the test control plane (integration/xds_server) serving snapshot.json. The
demo example (bootstrap.yaml + examples/demo) is served by test_demo.py.
"""
import json
import shutil
import subprocess
import sys
import urllib.request

import pytest
import yaml

from lgharness.clients import curl


def example_yamls(repo_root):
    return sorted(p for p in (repo_root / "examples").rglob("*.yaml"))


def generator(folder):
    """The example's gen-*.sh (certificates, keys), or None."""
    found = sorted(folder.glob("gen-*.sh"))
    return found[0] if found else None


def with_certs(repo_root, tmp_path, folder):
    """Copies examples/<folder> under tmp_path/examples/ and runs its gen-*.sh there; returns
    tmp_path, the directory the example's relative certificate and key paths resolve from."""
    dst = tmp_path / "examples" / folder
    shutil.copytree(repo_root / "examples" / folder, dst, ignore=shutil.ignore_patterns("certs", "keys"))
    subprocess.run(["bash", str(generator(dst))], check=True, capture_output=True, timeout=60)
    return tmp_path


def test_every_example_validates(legate, repo_root, tmp_path):
    found = example_yamls(repo_root)
    assert found, "no examples/**/*.yaml found"
    for path in found:
        cwd = None
        if generator(path.parent) is not None:
            rel = path.parent.relative_to(repo_root / "examples")
            cwd = with_certs(repo_root, tmp_path / str(rel).replace("/", "_"), str(rel))
            path = cwd / "examples" / rel / path.name
        r = legate("--mode", "validate", "-c", path, cwd=cwd)
        assert r.returncode == 0, (path, r.stdout, r.stderr)
        assert "OK" in (r.stdout + r.stderr), (path, r.stdout, r.stderr)


def test_grpc_example_serves_a_call(repo_root, free_port, start_peer, start_legate):
    pytest.importorskip("grpc")
    cfg = yaml.safe_load((repo_root / "examples" / "grpc" / "bootstrap.yaml").read_text())
    upstream, listen = free_port(), free_port()
    c = cfg["static_resources"]["clusters"][0]
    c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"][
        "port_value"] = upstream
    cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = listen
    cfg["admin"]["address"]["socket_address"]["port_value"] = free_port()
    greeter = repo_root / "examples" / "grpc" / "greeter.py"
    start_peer([sys.executable, greeter, "serve", "--port", upstream], name="greeter", ports=[upstream])
    start_legate(cfg)
    r = subprocess.run([sys.executable, str(greeter), "call", "--target", "127.0.0.1:%d" % listen,
                        "--name", "examples"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.splitlines()[0] == "hello, examples", r.stdout
    assert "served-by" in r.stdout, r.stdout


def test_tls_sni_example_serves_both_names(repo_root, tmp_path, free_port, start_legate):
    root = with_certs(repo_root, tmp_path, "tls-sni")
    text = (root / "examples" / "tls-sni" / "bootstrap.yaml").read_text()
    text = text.replace("filename: examples/", "filename: %s/examples/" % root)
    cfg = yaml.safe_load(text)
    listen = free_port()
    cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = listen
    cfg["admin"]["address"]["socket_address"]["port_value"] = free_port()
    start_legate(cfg)
    ca = root / "examples" / "tls-sni" / "certs" / "ca.crt"
    for name, proto in (("a", "--http1.1"), ("b", "--http2")):
        host = "%s.example.test" % name
        r = subprocess.run(["curl", "-sS", proto, "--cacert", str(ca), "--resolve", "%s:%d:127.0.0.1" % (host, listen),
                            "https://%s:%d/" % (host, listen)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello from %s\n" % host, r.stdout


def test_edge_example_authenticates_and_limits(repo_root, tmp_path, free_port, start_legate, origin):
    root = with_certs(repo_root, tmp_path, "edge")
    text = (root / "examples" / "edge" / "bootstrap.yaml").read_text()
    cfg = yaml.safe_load(text.replace("filename: examples/", "filename: %s/examples/" % root))
    listen = free_port()
    cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = listen
    cfg["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"]["socket_address"]["port_value"] = origin.port
    cfg["admin"]["address"]["socket_address"]["port_value"] = free_port()
    start_legate(cfg)
    token = (root / "examples" / "edge" / "keys" / "token.txt").read_text().strip()
    url = "http://127.0.0.1:%d/echo/x" % listen
    missing = curl(url)
    assert missing.status == 401 and missing.body == b"Jwt is missing", missing
    assert curl("http://127.0.0.1:%d/public/x" % listen).status == 200  # the first of the 5 a minute
    got = [curl(url, "-H", "authorization: Bearer " + token) for _ in range(4)]
    assert [r.status for r in got] == [200] * 4, got
    seen = {n.lower(): v for n, v in json.loads(got[0].body)["headers"]}
    assert seen["x-user"] == "alice", seen
    limited = curl(url, "-H", "authorization: Bearer " + token)
    assert limited.status == 429 and limited.header("x-local-rate-limit") == "true", limited


def test_sidecar_example_is_served_from_the_control_plane(repo_root, free_port, start_peer, start_legate, origin):
    from lgharness import peers
    server = peers.local_go_peer("xds_server", src=repo_root / "integration" / "xds_server")
    grpc_port, http_port, listen, admin = free_port(), free_port(), free_port(), free_port()
    start_peer([server, "-grpc-port", str(grpc_port), "-http-port", str(http_port)], name="xds_server",
               ports=[grpc_port, http_port])
    snap = json.loads((repo_root / "examples" / "sidecar" / "snapshot.json").read_text())
    snap["listeners"][0]["address"]["socket_address"]["port_value"] = listen
    snap["endpoints"][0]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"][
        "port_value"] = origin.port
    req = urllib.request.Request("http://127.0.0.1:%d/snapshot" % http_port, data=json.dumps(snap).encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    cfg = yaml.safe_load((repo_root / "examples" / "sidecar" / "bootstrap.yaml").read_text())
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin
    cfg["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"][
        "address"]["socket_address"]["port_value"] = grpc_port
    start_legate(cfg, ports=[admin, listen])  # the listener comes from LDS: waited for like the admin
    r = curl("http://127.0.0.1:%d/echo/mesh" % listen)
    assert r.status == 200 and json.loads(r.body)["target"] == "/echo/mesh", r
