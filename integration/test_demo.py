"""The demo that ./scripts/run starts (issue 3, item 11): bootstrap.yaml validates as it is, and,
with its ports moved to free ones, legate on it routes /user, /order and /payment to
examples/demo/services.py over HTTP/1.1 and h2c, and answers anything else itself.
"""
import json
import sys

import pytest
import yaml

from lgharness.clients import curl


def test_bootstrap_yaml_validates(legate, repo_root):
    r = legate("--mode", "validate", "-c", repo_root / "bootstrap.yaml")
    assert r.returncode == 0, r.stderr
    assert "OK" in r.stdout


@pytest.fixture
def demo(repo_root, free_port, start_peer, start_legate):
    cfg = yaml.safe_load((repo_root / "bootstrap.yaml").read_text())
    ports = {"user": free_port(), "order": free_port(), "payment": free_port()}
    for c in cfg["static_resources"]["clusters"]:
        sa = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        sa["port_value"] = ports[c["name"]]
    listen = free_port()
    cfg["static_resources"]["listeners"][0]["address"]["socket_address"]["port_value"] = listen
    cfg["admin"]["address"]["socket_address"]["port_value"] = free_port()
    start_peer([sys.executable, repo_root / "examples" / "demo" / "services.py",
                "--user", ports["user"], "--order", ports["order"], "--payment", ports["payment"]],
               name="demo-services", ports=list(ports.values()))
    return start_legate(cfg)


@pytest.mark.parametrize("flags", [["--http1.1"], ["--http2-prior-knowledge"]], ids=["h1", "h2c"])
def test_demo_routes_by_prefix(demo, flags):
    for path, service, key in (("/user/1", "user", "item"), ("/order/100", "order", "item"),
                               ("/payment/9000", "payment", "item"), ("/user", "user", "items")):
        r = curl(demo.url(path), *flags)
        assert r.status == 200, (path, r)
        body = json.loads(r.body)
        assert body["service"] == service and key in body, (path, body)
        assert r.header("x-served-by") == "legate-demo"
    r = curl(demo.url("/users"), *flags)
    assert r.status == 404 and b"no such service" in r.body, r
    r = curl(demo.url("/payment"), *flags, "-X", "POST", "-d", '{"amount": 1250}')
    assert r.status == 201 and json.loads(r.body)["created"] == '{"amount": 1250}', r
