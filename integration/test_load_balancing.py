"""Load balancing across three origins (Cluster.lb_policy): round robin spreads evenly; RING_HASH
and MAGLEV send one x-user (or one source address) to the same origin every time and different
ones to different origins; LEAST_REQUEST steers around an origin that is holding a request; bad
load balancer configs are refused with their field path.
"""
import socket
import subprocess
import time

import pytest
import yaml

from lgharness import bootstrap as bs
from lgharness.clients import curl


def proxy(start_legate, free_port, origins, lb_policy, hash_policy=None, **cluster_extra):
    port = free_port()
    action = {"hash_policy": hash_policy} if hash_policy else None
    r = bs.route("/", "app", timeout="20s", action=action)
    chain = bs.filter_chain(bs.hcm([r]))
    c = bs.cluster("app", [o.port for o in origins], lb_policy=lb_policy, **cluster_extra)
    return start_legate(bs.bootstrap([bs.listener("ingress", port, [chain])], [c]))


def served_by(origins, header):
    """header value -> the set of origin indexes that saw a request carrying it."""
    seen = {}
    for i, o in enumerate(origins):
        for req in o.requests:
            v = req.header(header)
            if v is not None:
                seen.setdefault(v, set()).add(i)
    return seen


def get(lg, *args, path="/"):
    r = curl(lg.url(path), "--http1.1", *args)
    assert r.status == 200, r
    return r


def test_round_robin_spreads_evenly(start_legate, free_port, make_origin):
    origins = [make_origin() for _ in range(3)]
    lg = proxy(start_legate, free_port, origins, None)
    for _ in range(30):
        get(lg)
    assert [len(o.requests) for o in origins] == [10, 10, 10]


@pytest.mark.parametrize("policy,extra", [
    ("RING_HASH", {}),
    ("RING_HASH", {"ring_hash_lb_config": {"hash_function": "MURMUR_HASH_2", "minimum_ring_size": 64}}),
    ("MAGLEV", {}),
    ("MAGLEV", {"maglev_lb_config": {"table_size": 251}}),
])
def test_hash_by_header_sticks_users_to_origins(start_legate, free_port, make_origin, policy, extra):
    origins = [make_origin() for _ in range(3)]
    lg = proxy(start_legate, free_port, origins, policy, [{"header": {"header_name": "x-user"}}], **extra)
    users = ["user-%d" % i for i in range(24)]
    for _ in range(3):
        for u in users:
            get(lg, "-H", "x-user: " + u)
    seen = served_by(origins, "x-user")
    assert sorted(seen) == sorted(users)
    assert all(len(s) == 1 for s in seen.values()), seen  # one user, one origin
    used = set().union(*seen.values())
    assert len(used) >= 2, seen  # 24 users on one origin of three: (1/3)^23
    # a request without the header has no hash: a random origin, still served
    for _ in range(6):
        get(lg)


def test_hash_by_cookie_and_query_parameter(start_legate, free_port, make_origin):
    origins = [make_origin() for _ in range(3)]
    lg = proxy(start_legate, free_port, origins, "RING_HASH",
               [{"cookie": {"name": "session"}, "terminal": True}, {"query_parameter": {"name": "id"}}])
    for i in range(12):
        for _ in range(3):
            get(lg, "-H", "x-key: c%d" % i, "-b", "session=s%d" % i, path="/?id=ignored")
            get(lg, "-H", "x-key: q%d" % i, path="/?id=q%d" % i)
    seen = served_by(origins, "x-key")
    assert len(seen) == 24 and all(len(s) == 1 for s in seen.values()), seen


def test_source_ip_hash(start_legate, free_port, make_origin):
    origins = [make_origin() for _ in range(3)]
    lg = proxy(start_legate, free_port, origins, "MAGLEV", [{"connection_properties": {"source_ip": True}}])
    sources = ["127.0.0.%d" % i for i in range(2, 14)]
    for _ in range(3):
        for s in sources:
            get(lg, "--interface", s, "-H", "x-source: " + s)
    seen = served_by(origins, "x-source")
    assert sorted(seen) == sorted(sources)
    assert all(len(s) == 1 for s in seen.values()), seen
    assert len(set().union(*seen.values())) >= 2, seen


def test_least_request_avoids_a_busy_origin(start_legate, free_port, make_origin):
    origins = [make_origin() for _ in range(3)]
    lg = proxy(start_legate, free_port, origins, "LEAST_REQUEST")
    # One request the origin never answers keeps one stream active on it.
    held = socket.create_connection(("127.0.0.1", lg.port), timeout=10)
    try:
        held.sendall(b"GET /stall HTTP/1.1\r\nHost: t\r\n\r\n")
        busy = []
        deadline = time.monotonic() + 10
        while not busy and time.monotonic() < deadline:
            for o in origins:  # each waits briefly for its first request head
                o.wait_heads(1, timeout=0.03)
            busy = [i for i, o in enumerate(origins) if any(b"/stall" in h for h in o.heads)]
        assert len(busy) == 1, busy
        busy = busy[0]
        for _ in range(45):
            get(lg)
        counts = [len(o.requests) for o in origins]
        idle = [c for i, c in enumerate(counts) if i != busy]
        # two random choices: the busy origin only when both draws are it (1/9, 5 expected)
        assert counts[busy] < 13 and all(c > counts[busy] for c in idle), counts
    finally:
        held.close()


@pytest.mark.parametrize("extra,message", [
    ({"lb_policy": "MAGLEV", "maglev_lb_config": {"table_size": 65536}},
     "maglev_lb_config.table_size: the table size of maglev must be a prime number"),
    ({"lb_policy": "RING_HASH", "ring_hash_lb_config": {"minimum_ring_size": 4096, "maximum_ring_size": 1024}},
     "ring_hash_lb_config: minimum_ring_size (4096) > maximum_ring_size (1024)"),
    ({"lb_policy": "LEAST_REQUEST", "least_request_lb_config": {"choice_count": 1}},
     "least_request_lb_config.choice_count: value must be greater than or equal to 2"),
    ({"lb_policy": "LEAST_REQUEST", "least_request_lb_config": {"slow_start_config": {}}},
     "least_request_lb_config.slow_start_config: slow start is not supported by legate"),
    ({"lb_policy": "RING_HASH", "common_lb_config": {"consistent_hashing_lb_config": {"hash_balance_factor": 150}}},
     "common_lb_config.consistent_hashing_lb_config.hash_balance_factor: bounded-load consistent hashing is not supported by legate"),
])
def test_bad_lb_configs_are_refused(legate_bin, tmp_path, extra, message):
    c = bs.cluster("app", [10100], **extra)
    chain = bs.filter_chain(bs.hcm([bs.route("/", "app")]))
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(bs.bootstrap([bs.listener("ingress", 10000, [chain])], [c])))
    r = subprocess.run([legate_bin, "--mode", "validate", "-c", str(cfg)], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert "static_resources.clusters[0]." + message in r.stderr + r.stdout, r.stderr
