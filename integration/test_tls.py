"""TLS on both sides (issue 3, items 2 and 6), with certificates the test makes with openssl:
DownstreamTlsContext with ALPN h2/http/1.1 (curl --http2 and --http1.1), SNI-selected filter
chains, client certificates, TLS version bounds; UpstreamTlsContext to a TLS HTTP/2 origin
(nghttpd) with CA and name validation, and what a failed validation gives (503 UF).
"""
import json

import pytest

from lgharness import bootstrap as bs
from lgharness.clients import curl, run


def https(lg, path="/", host="localhost"):
    return "https://%s:%d%s" % (host, lg.port, path)


@pytest.fixture
def tls_proxy(start_legate, free_port, origin, certs):
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, origin.port, codec="AUTO",
                                      tls=bs.downstream_tls(certs / "server.pem", certs / "server.key")))
    lg.origin = origin
    return lg


def resolve(lg, host="localhost"):
    return ["--resolve", "%s:%d:127.0.0.1" % (host, lg.port)]


def test_https_h2_via_alpn(tls_proxy, certs):
    r = curl(https(tls_proxy, "/echo/tls"), "--http2", "--cacert", str(certs / "ca.pem"), *resolve(tls_proxy))
    assert r.rc == 0 and r.status == 200, r
    assert r.version == "2"
    e = json.loads(r.body)
    assert e["target"] == "/echo/tls"
    assert dict((n.lower(), v) for n, v in e["headers"])["x-forwarded-proto"] == "https"


def test_https_http11_via_alpn(tls_proxy, certs):
    r = curl(https(tls_proxy, "/echo/tls1"), "--http1.1", "--cacert", str(certs / "ca.pem"), *resolve(tls_proxy))
    assert (r.rc, r.status, r.version) == (0, 200, "1.1"), r


def test_https_without_alpn_is_http11(tls_proxy, certs):
    r = curl(https(tls_proxy), "--no-alpn", "--http1.1", "--cacert", str(certs / "ca.pem"), *resolve(tls_proxy))
    assert (r.status, r.version) == (200, "1.1"), r


def test_nghttp_and_h2load_over_tls(tls_proxy):
    r = run(["nghttp", "-n", "--timeout=10", https(tls_proxy, "/", "127.0.0.1")], timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run(["h2load", "-n", "500", "-c", "2", "-m", "10", https(tls_proxy, "/", "127.0.0.1")], timeout=60)
    assert "500 succeeded, 0 failed" in r.stdout, r.stdout + r.stderr
    assert "TLS Protocol: TLSv1." in r.stdout


def test_plaintext_on_tls_port_is_refused(tls_proxy):
    r = curl("http://127.0.0.1:%d/" % tls_proxy.port, "--http1.1", timeout=5)
    assert r.status != 200 and r.rc != 0
    assert tls_proxy.origin.requests == []


def test_sni_selects_filter_chain(start_legate, free_port, make_origin, certs):
    oa, ob = make_origin(), make_origin()
    port = free_port()
    tls = bs.downstream_tls(certs / "server.pem", certs / "server.key")
    chains = [bs.filter_chain(bs.hcm([bs.route("/", "a")], stat_prefix="a"), tls=tls, server_names=["a.test"]),
              bs.filter_chain(bs.hcm([bs.route("/", "b")], stat_prefix="b"), tls=tls, server_names=["b.test"])]
    cfg = bs.bootstrap([bs.listener("sni", port, chains, listener_filters=[bs.tls_inspector()])],
                       [bs.cluster("a", [oa.port]), bs.cluster("b", [ob.port])])
    lg = start_legate(cfg)
    for host, o in (("a.test", oa), ("b.test", ob)):
        r = curl("https://%s:%d/echo/%s" % (host, port, host), "--cacert", str(certs / "ca.pem"),
                 *resolve(lg, host))
        assert r.status == 200, r
        assert [q.target for q in o.requests] == ["/echo/%s" % host]
    # No chain matches an unknown name: the handshake fails, nothing is forwarded.
    r = curl("https://c.test:%d/" % port, "--cacert", str(certs / "ca.pem"), *resolve(lg, "c.test"))
    assert r.rc != 0 and r.status == 0
    assert len(oa.requests) + len(ob.requests) == 2


def test_client_certificate_required(start_legate, free_port, origin, certs):
    port = free_port()
    tls = bs.downstream_tls(certs / "server.pem", certs / "server.key", ca=certs / "ca.pem",
                            require_client_cert=True)
    lg = start_legate(bs.simple_proxy(port, origin.port, tls=tls))
    base = ["--cacert", str(certs / "ca.pem"), *resolve(lg)]
    r = curl(https(lg), *base)
    assert r.rc != 0 and r.status == 0, r
    r = curl(https(lg), *base, "--cert", str(certs / "client.pem"), "--key", str(certs / "client.key"))
    assert r.status == 200, r
    assert len(origin.requests) == 1


def test_tls_minimum_version(start_legate, free_port, origin, certs):
    port = free_port()
    tls = bs.downstream_tls(certs / "server.pem", certs / "server.key", min_version="TLSv1_3")
    lg = start_legate(bs.simple_proxy(port, origin.port, tls=tls))
    base = ["--cacert", str(certs / "ca.pem"), *resolve(lg)]
    assert curl(https(lg), *base, "--tls-max", "1.2").rc != 0
    assert curl(https(lg), *base, "--tlsv1.3").status == 200


def test_upstream_tls_h2_with_validation(start_legate, free_port, nghttpd, certs):
    up = nghttpd(tls=True)
    port = free_port()
    utls = bs.upstream_tls(sni="localhost", ca=certs / "ca.pem", alpn=["h2"], san="localhost")
    lg = start_legate(bs.simple_proxy(port, up.port, h2_upstream=True, upstream_tls_ctx=utls))
    r = curl(lg.url("/index.html"), "--http1.1")
    assert (r.status, r.body) == (200, b"hello from nghttpd\n"), r
    r = curl(lg.url("/1m"), "--http2-prior-knowledge")
    assert r.status == 200 and r.body == (up.docroot / "1m").read_bytes()


def test_upstream_tls_name_mismatch_is_503_uf(start_legate, free_port, nghttpd, certs):
    up = nghttpd(tls=True)
    port = free_port()
    # The origin's certificate names localhost; legate is told to expect wrong.example.
    utls = bs.upstream_tls(sni="wrong.example", ca=certs / "ca.pem", alpn=["h2"], san="wrong.example")
    lg = start_legate(bs.simple_proxy(port, up.port, h2_upstream=True, upstream_tls_ctx=utls))
    r = curl(lg.url("/index.html"), "--http1.1")
    assert r.status == 503, r
    assert r.body.decode().startswith("upstream connect error or disconnect/reset before headers")


def test_upstream_tls_untrusted_ca_is_503(start_legate, free_port, nghttpd, certs, tmp_path):
    from lgharness.peers import make_certs
    other = make_certs(tmp_path / "other-ca")
    up = nghttpd(tls=True)
    port = free_port()
    utls = bs.upstream_tls(sni="localhost", ca=other / "ca.pem", alpn=["h2"])
    lg = start_legate(bs.simple_proxy(port, up.port, h2_upstream=True, upstream_tls_ctx=utls))
    r = curl(lg.url("/index.html"), "--http1.1")
    assert r.status == 503, r


def test_tls_both_sides_grpc(start_legate, free_port, grpc_server, certs):
    """gRPC over TLS downstream (ALPN h2) to a plaintext h2 upstream."""
    import grpc
    from lgharness.grpc_service import CHANNEL_OPTIONS, SERVICE
    port = free_port()
    lg = start_legate(bs.simple_proxy(port, grpc_server.port, h2_upstream=True,
                                      tls=bs.downstream_tls(certs / "server.pem", certs / "server.key")))
    creds = grpc.ssl_channel_credentials(root_certificates=(certs / "ca.pem").read_bytes())
    ch = grpc.secure_channel("127.0.0.1:%d" % lg.port, creds,
                             options=CHANNEL_OPTIONS + [("grpc.ssl_target_name_override", "localhost")])
    try:
        unary = ch.unary_unary("/%s/Unary" % SERVICE)
        assert unary(b"over tls", timeout=10) == b"over tls"
    finally:
        ch.close()
