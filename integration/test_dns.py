"""DNS discovery (issue 6 item 1): STRICT_DNS, LOGICAL_DNS and `cluster_type: envoy.clusters.dns`
clusters resolved with c-ares against a DNS server the test runs on loopback, whose records change
while legate serves. Envoy's behaviour is the expectation: traffic follows the records, every
address of a STRICT_DNS answer is a host, LOGICAL_DNS uses the first, the cluster is warmed before
serving, and a failed or empty lookup keeps the last good hosts (counted as update_failure /
update_empty). Every wait is bounded; nothing sleeps blindly.
"""
import http.client
import time

import pytest

from lgharness import bootstrap as bs
from lgharness.dns_stub import DnsStub
from lgharness.origin_h1 import H1Origin
from lgharness.ports import pick_port as free_port_now
from test_admin import Admin

WAIT = 10.0
CARES = "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig"
DNS_CLUSTER = "type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster"
IP_A, IP_B = "127.0.0.2", "127.0.0.3"


@pytest.fixture
def dns():
    d = DnsStub().start()
    yield d
    d.stop()


@pytest.fixture
def origins():
    # DNS answers carry addresses only: origins A and B share the cluster endpoint's port.
    a = H1Origin(host=IP_A).start()
    b = H1Origin(host=IP_B, port=a.port).start()
    yield a, b
    b.stop()
    a.stop()


def resolvers(dns_port):
    return {"name": "envoy.network.dns_resolver.cares",
            "typed_config": {"@type": CARES, "resolvers": [bs.address("127.0.0.1", dns_port)]}}


def dns_cluster(dns_port, port, *, type="STRICT_DNS", host="svc.test", **extra):
    c = {"name": "app", "type": type, "connect_timeout": "2s", "dns_refresh_rate": "0.2s",
         "dns_lookup_family": "V4_ONLY", "typed_dns_resolver_config": resolvers(dns_port),
         "load_assignment": {"cluster_name": "app", "endpoints": [
             {"lb_endpoints": [{"endpoint": {"address": bs.address(host, port)}}]}]}}
    c.update(extra)
    return c


def start(start_legate, free_port, cluster):
    port, admin_port = free_port(), free_port()
    chain = bs.filter_chain(bs.hcm([bs.route("/", "app")]))
    cfg = bs.bootstrap([bs.listener("ingress", port, [chain])], [cluster], admin_port=admin_port)
    lg = start_legate(cfg, ports=[port, admin_port])
    lg.admin = Admin(admin_port)
    return lg


def get(lg, path="/"):
    c = http.client.HTTPConnection("127.0.0.1", lg.port, timeout=WAIT)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def try_get(lg):
    """A request's status, or 0 while the listener does not accept yet."""
    try:
        return get(lg)
    except OSError:
        return 0


def served_by(lg, a, b, n):
    """Sends n requests; returns (to A, to B, non-200 statuses)."""
    na, nb = len(a.requests), len(b.requests)
    bad = [s for s in (get(lg) for _ in range(n)) if s != 200]
    return len(a.requests) - na, len(b.requests) - nb, bad


def stat(lg, name):
    return lg.admin.stats("?filter=" + name).get("cluster.app." + name, 0)


def wait_for(pred, what, bound=WAIT):
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    pytest.fail("timed out waiting for " + what)


def until_all_to(lg, origin, what):
    """Polls with single requests until 5 in a row reach `origin` (bounded)."""
    def five():
        n0 = len(origin.requests)
        return all(get(lg) == 200 for _ in range(5)) and len(origin.requests) - n0 == 5
    wait_for(five, what)


def test_strict_dns_warms_then_follows_the_records(start_legate, free_port, dns, origins):
    a, b = origins
    dns.set("svc.test", [IP_A])
    lg = start(start_legate, free_port, dns_cluster(dns.port, a.port))
    # Warmed before serving: the very first request has a host.
    assert served_by(lg, a, b, 4) == (4, 0, [])
    assert stat(lg, "update_success") >= 1 and stat(lg, "update_attempt") >= 1
    cares = lg.admin.stats("?filter=dns.cares")
    assert cares.get("dns.cares.resolve_total", 0) >= 1 and cares.get("dns.cares.not_found") == 0, cares
    dns.set("svc.test", [IP_B])
    until_all_to(lg, b, "traffic to follow the record to origin B")
    assert stat(lg, "membership_change") >= 2
    # Unchanged answers rebuild nothing.
    n = stat(lg, "update_no_rebuild")
    wait_for(lambda: stat(lg, "update_no_rebuild") >= n + 2, "refreshes that change nothing")
    assert served_by(lg, a, b, 4) == (0, 4, [])


# A silent server is not here: with c-ares's (and Envoy's) query timeout of 5 s and 4 tries, a
# lookup takes over a minute to fail; the resolver's timeout path is the same code as SERVFAIL's.
@pytest.mark.parametrize("mode,counter", [("servfail", "update_failure"), ("nxdomain", "update_empty")])
def test_bad_answers_keep_the_last_good_hosts(start_legate, free_port, dns, origins, mode, counter):
    a, b = origins
    dns.set("svc.test", [IP_A])
    # A short failure backoff: retries come around well within the bound.
    lg = start(start_legate, free_port, dns_cluster(dns.port, a.port, dns_failure_refresh_rate={
        "base_interval": "0.1s", "max_interval": "0.4s"}))
    assert served_by(lg, a, b, 2) == (2, 0, [])
    before = stat(lg, counter)
    dns.mode = mode
    wait_for(lambda: stat(lg, counter) >= before + 2, counter + " to count the bad lookups")
    assert served_by(lg, a, b, 6) == (6, 0, [])
    # Recovery: good answers again, and traffic follows them.
    dns.set("svc.test", [IP_B])
    dns.mode = "ok"
    until_all_to(lg, b, "traffic to follow the recovered records")


@pytest.mark.parametrize("style", ["type", "cluster_type"])
def test_strict_dns_spreads_over_every_address(start_legate, free_port, dns, origins, style):
    a, b = origins
    dns.set("svc.test", [IP_A, IP_B])
    if style == "type":
        c = dns_cluster(dns.port, a.port)
    else:
        c = dns_cluster(dns.port, a.port)
        for k in ("type", "dns_refresh_rate", "dns_lookup_family", "typed_dns_resolver_config"):
            del c[k]
        c["cluster_type"] = {"name": "envoy.clusters.dns", "typed_config": {
            "@type": DNS_CLUSTER, "dns_refresh_rate": "0.2s", "dns_lookup_family": "V4_ONLY",
            "typed_dns_resolver_config": resolvers(dns.port)}}
    lg = start(start_legate, free_port, c)
    na, nb, bad = served_by(lg, a, b, 20)
    assert bad == [] and na + nb == 20
    assert na >= 5 and nb >= 5, (na, nb)  # round robin over two hosts


def test_logical_dns_uses_the_first_address(start_legate, free_port, dns, origins):
    a, b = origins
    dns.set("svc.test", [IP_A, IP_B])
    lg = start(start_legate, free_port, dns_cluster(dns.port, a.port, type="LOGICAL_DNS"))
    assert served_by(lg, a, b, 10) == (10, 0, [])
    dns.set("svc.test", [IP_B, IP_A])
    until_all_to(lg, b, "new connections to use the new first address")


def test_auto_family_falls_back_to_ipv4(start_legate, free_port, dns, origins):
    a, b = origins
    dns.set("svc.test", [IP_A])  # no AAAA: AUTO asks for IPv6 first, then IPv4
    c = dns_cluster(dns.port, a.port)
    del c["dns_lookup_family"]
    lg = start(start_legate, free_port, c)
    assert served_by(lg, a, b, 3) == (3, 0, [])


def test_unresolvable_cluster_serves_503_after_warming_bound(start_legate, free_port, dns, origins):
    a, b = origins
    dns.mode = "nxdomain"
    lg = start(start_legate, free_port, dns_cluster(dns.port, a.port))
    assert get(lg) == 503
    assert stat(lg, "update_empty") >= 1
    dns.mode = "ok"
    dns.set("svc.test", [IP_A])
    until_all_to(lg, a, "the cluster to fill once the name resolves")


def test_respect_dns_ttl_refreshes_at_the_ttl(start_legate, free_port, dns, origins):
    a, b = origins
    dns.ttl = 1
    dns.set("svc.test", [IP_A])
    lg = start(start_legate, free_port, dns_cluster(dns.port, a.port, dns_refresh_rate="60s",
                                                    respect_dns_ttl=True))
    assert served_by(lg, a, b, 2) == (2, 0, [])
    dns.set("svc.test", [IP_B])
    # Within the bound only because the 1 s TTL replaces the 60 s refresh rate.
    until_all_to(lg, b, "a refresh at the record's TTL")


def test_etc_hosts_answers_before_the_servers(start_legate, free_port, dns, origin):
    """/etc/hosts is read first (as Envoy's c-ares does): `localhost` resolves without a query,
    here even though the configured server only answers SERVFAIL."""
    dns.mode = "servfail"
    lg = start(start_legate, free_port, dns_cluster(dns.port, origin.port, host="localhost"))
    assert get(lg) == 200
    assert len(origin.requests) == 1
    assert dns.queries == 0
    assert stat(lg, "update_failure") == 0


def test_dns_change_keeps_connections_that_stay(start_legate, free_port, dns, origins, origin):
    """A DNS answer that changes one cluster's hosts publishes a new snapshot; as in Envoy, that
    touches neither another cluster's requests in flight nor the connections to hosts that stay."""
    import threading
    a, b = origins
    dns.set("svc.test", [IP_A])
    port, admin_port = free_port(), free_port()
    chain = bs.filter_chain(bs.hcm([bs.route("/slow", "other"), bs.route("/", "app")]))
    cfg = bs.bootstrap([bs.listener("ingress", port, [chain])],
                       [dns_cluster(dns.port, a.port), bs.cluster("other", [origin.port])],
                       admin_port=admin_port)
    lg = start_legate(cfg, ports=[port, admin_port])
    assert served_by(lg, a, b, 3) == (3, 0, [])
    assert a.connections == 1  # one keep-alive upstream connection so far
    out = {}

    def slow():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
        try:
            c.request("GET", "/slow/8/150")
            r = c.getresponse()
            out["r"] = (r.status, r.read())
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            out["r"] = (0, repr(e))
        finally:
            c.close()
    t = threading.Thread(target=slow)
    t.start()
    assert origin.wait_heads(1), "the slow request did not reach its origin"
    dns.set("svc.test", [IP_A, IP_B])
    wait_for(lambda: served_by(lg, a, b, 2)[1] > 0, "the new host to get traffic")
    t.join(WAIT)
    assert out["r"][0] == 200 and out["r"][1].count(b"chunk") == 8, out
    assert a.connections == 1, "the connection to the host that stayed was closed"


def test_logical_dns_needs_one_endpoint(legate, tmp_path, origins):
    a, _ = origins
    c = dns_cluster(53, a.port, type="LOGICAL_DNS")
    c["load_assignment"]["endpoints"][0]["lb_endpoints"].append(
        {"endpoint": {"address": bs.address("other.test", a.port)}})
    chain = bs.filter_chain(bs.hcm([bs.route("/", "app")]))
    cfg = tmp_path / "b.yaml"
    cfg.write_text(bs.to_yaml(bs.bootstrap([bs.listener("ingress", 1, [chain])], [c])))
    r = legate("--mode", "validate", "-c", cfg)
    assert r.returncode != 0
    assert "exactly one endpoint" in r.stdout + r.stderr


def test_strict_dns_cluster_from_cds_follows_the_records(start_legate, dns, origins, tmp_path):
    """The same discovery for a cluster a control plane sends (ADS): its answers feed the snapshots
    built from xDS, as EDS does. The deprecated `dns_resolvers` field names the server here."""
    from test_xds import XdsServer, _server_binary, bootstrap, listener, route
    a, b = origins
    dns.set("svc.test", [IP_A])
    server = XdsServer(_server_binary(), tmp_path, ads=True).start()
    try:
        port = free_port_now()
        # No port to wait for: the listener comes from LDS.
        start_legate(bootstrap("ads", server.grpc_port), ports=[])
        c = dns_cluster(dns.port, a.port)
        del c["typed_dns_resolver_config"]
        c["name"] = c["load_assignment"]["cluster_name"] = "c1"
        c["dns_resolvers"] = [bs.address("127.0.0.1", dns.port)]
        server.snapshot("v1", clusters=[c], endpoints=[], listeners=[listener("ads", "l1", port, "r1")],
                        routes=[route("r1", "c1")])
        lg = type("L", (), {"port": port})()
        wait_for(lambda: try_get(lg) == 200 and len(a.requests) > 0, "the CDS cluster's first answer")
        dns.set("svc.test", [IP_B])
        until_all_to(lg, b, "traffic of the CDS cluster to follow the record")
    finally:
        server.stop()
