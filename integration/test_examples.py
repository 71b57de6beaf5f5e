"""examples/ does not rot: every examples/**/*.yaml passes `legate --mode validate` (folders with
a gen-certs.sh are copied to a temporary directory and get their certificates first), the gRPC
example (examples/grpc: bootstrap.yaml + greeter.py) serves a unary call end to end and the TLS
example (examples/tls-sni) answers per SNI name, both with their ports moved to free ones. The
demo example (bootstrap.yaml + examples/demo) is served by test_demo.py.
"""
import shutil
import subprocess
import sys

import pytest
import yaml


def example_yamls(repo_root):
    return sorted(p for p in (repo_root / "examples").rglob("*.yaml"))


def with_certs(repo_root, tmp_path, folder):
    """Copies examples/<folder> under tmp_path/examples/ and runs its gen-certs.sh there; returns
    tmp_path, the directory the example's relative certificate paths resolve from."""
    dst = tmp_path / "examples" / folder
    shutil.copytree(repo_root / "examples" / folder, dst, ignore=shutil.ignore_patterns("certs"))
    subprocess.run(["bash", str(dst / "gen-certs.sh")], check=True, capture_output=True, timeout=60)
    return tmp_path


def test_every_example_validates(legate, repo_root, tmp_path):
    found = example_yamls(repo_root)
    assert found, "no examples/**/*.yaml found"
    for path in found:
        cwd = None
        if (path.parent / "gen-certs.sh").exists():
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
