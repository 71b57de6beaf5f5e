"""jwt_authn remote_jwks through the real binary: a JWKS served by an in-process HTTP server that
counts its fetches, rotates keys, fails or answers slowly. Covers the fetch on first use and the
per-worker cache, rotation once cache_duration has passed, Envoy's 401 "Jwks remote fetch is
failed", retry_policy, async_fetch (keys fetched before any request, stale keys kept when the
server fails) and http_uri.timeout.

Each test starts its own legate with one worker, so the server's fetch count is the worker's.
"""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

jwt = pytest.importorskip("jwt")
pytest.importorskip("cryptography")
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from jwt.algorithms import RSAAlgorithm  # noqa: E402

from lgharness import bootstrap as bs  # noqa: E402
from lgharness.clients import admin_counters, curl, run  # noqa: E402
from lgharness.ports import pick_port  # noqa: E402

JWT_TYPE = bs.T + "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
ISSUER = "https://idp.example"
KEY_A = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KEY_B = rsa.generate_private_key(public_exponent=65537, key_size=2048)
FETCH_FAILED = "Jwks remote fetch is failed"
BOUND_S = 15.0


def jwks_of(key, kid):
    d = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    d.update(kid=kid, alg="RS256")
    return json.dumps({"keys": [d]})


def token(key, kid):
    now = int(time.time())
    return jwt.encode({"iss": ISSUER, "sub": "u", "iat": now, "exp": now + 600}, key, algorithm="RS256",
                      headers={"kid": kid})


class JwksServer:
    """Serves one JWKS document; counts requests; can fail (status), delay, or fail the first n."""

    def __init__(self):
        self.lock = threading.Lock()
        self.body = jwks_of(KEY_A, "a")
        self.status = 200
        self.fail_first = 0
        self.delay = 0.0
        self.fetches = 0
        self.seen = []  # (path, host)
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                with server.lock:
                    server.fetches += 1
                    server.seen.append((self.path, self.headers.get("host")))
                    n, status, body, delay = server.fetches, server.status, server.body, server.delay
                if delay:
                    server.release.wait(delay)
                if n <= server.fail_first:
                    status = 503
                data = body.encode() if status == 200 else b"unavailable"
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the proxy gave up (timeout)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def set(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, v)

    def count(self):
        with self.lock:
            return self.fetches

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def idp():
    s = JwksServer()
    yield s
    s.stop()


@pytest.fixture
def make_proxy(start_legate, origin, idp):
    def make(cluster="idp", timeout="2s", providers=None, requires=None, **remote):
        port, admin_port = pick_port(), pick_port()
        rj = {"http_uri": {"uri": "http://idp.example:8443/.well-known/jwks.json?v=1", "cluster": cluster,
                           "timeout": timeout}}
        rj.update(remote)
        ps = {"idp": {"issuer": ISSUER, "remote_jwks": rj}}
        ps.update(providers or {})
        cfg = {"@type": JWT_TYPE, "providers": ps,
               "rules": [{"match": {"prefix": "/"}, "requires": requires or {"provider_name": "idp"}}]}
        b = bs.filter_proxy(port, admin_port, [{"name": "envoy.filters.http.jwt_authn", "typed_config": cfg}],
                            [bs.cluster("app", [origin.port]), bs.cluster("idp", [idp.port])])
        lg = start_legate(b, ports=[port, admin_port], extra_args=("--concurrency", "1"))
        lg.admin_port = admin_port
        return lg
    return make


def get(lg, tok):
    return curl(lg.url("/echo"), "--http1.1", "-H", "authorization: Bearer " + tok)


def stats(lg):
    return {k.rsplit(".", 1)[-1]: v for k, v in admin_counters(lg.admin_port, "jwt_authn").items()}


def wait_for(pred, what):
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    pytest.fail("timed out waiting for " + what)


def assert_fetch_failed(r):
    assert r.status == 401, r
    assert r.body.decode() == FETCH_FAILED, r
    assert r.header("www-authenticate").endswith(', error="invalid_token"'), r


def test_first_request_fetches_then_cache(make_proxy, idp):
    lg = make_proxy()
    assert idp.count() == 0  # without async_fetch nothing is fetched ahead
    assert get(lg, token(KEY_A, "a")).status == 200
    assert idp.count() == 1
    assert idp.seen[0] == ("/.well-known/jwks.json?v=1", "idp.example:8443")
    for _ in range(5):
        assert get(lg, token(KEY_A, "a")).status == 200
    assert idp.count() == 1
    s = stats(lg)
    assert s["jwks_fetch_success"] == 1 and s.get("jwks_fetch_failed", 0) == 0, s


def test_concurrent_requests_wait_on_one_fetch(make_proxy, idp):
    lg = make_proxy()
    idp.set(delay=0.5)
    results = []
    threads = [threading.Thread(target=lambda: results.append(get(lg, token(KEY_A, "a")).status)) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=BOUND_S)
    assert results == [200] * 5
    assert idp.count() == 1


def test_http2_streams_wait_on_one_fetch(make_proxy, idp, origin):
    lg = make_proxy()
    idp.set(delay=0.3)
    urls = [lg.url("/echo/%d" % i) for i in range(4)]
    r = run(["nghttp", "-n", "--timeout=10", "-H", "authorization: Bearer " + token(KEY_A, "a")] + urls, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    # All four streams of the one connection waited on the same fetch and reached the origin.
    assert sorted(q.target for q in origin.requests) == sorted("/echo/%d" % i for i in range(4))
    assert idp.count() == 1


def test_request_body_held_while_waiting(make_proxy, idp):
    lg = make_proxy()
    idp.set(delay=0.3)
    body = "x" * 100000
    r = curl(lg.url("/echo"), "--http1.1", "-H", "authorization: Bearer " + token(KEY_A, "a"), "--data-binary", body)
    assert r.status == 200, r
    assert json.loads(r.body)["body"] == body


def test_client_gone_while_waiting(make_proxy, idp):
    lg = make_proxy()
    idp.set(delay=1.0)
    r = curl(lg.url("/echo"), "--http1.1", "-H", "authorization: Bearer " + token(KEY_A, "a"), timeout=0.3)
    assert r.status == 0, r  # curl gave up while the filter waited for the keys
    # The fetch still ends and fills the cache for the next request.
    wait_for(lambda: stats(lg).get("jwks_fetch_success", 0) == 1, "the fetch")
    idp.set(delay=0.0)
    assert get(lg, token(KEY_A, "a")).status == 200
    assert idp.count() == 1


def test_any_decided_by_local_keys_does_not_wait(make_proxy, idp):
    # requires_any: the remote provider's keys are still coming when the local provider's token
    # verifies; the request goes on at once and leaves the fetch's queue.
    local = {"issuer": "https://local.example", "from_headers": [{"name": "x-local"}],
             "local_jwks": {"inline_string": jwks_of(KEY_B, "b")}}
    lg = make_proxy(providers={"local": local}, timeout="10s",
                    requires={"requires_any": {"requirements": [{"provider_name": "idp"}, {"provider_name": "local"}]}})
    idp.set(delay=3.0)
    now = int(time.time())
    local_tok = jwt.encode({"iss": "https://local.example", "exp": now + 600}, KEY_B, algorithm="RS256",
                           headers={"kid": "b"})
    r = curl(lg.url("/echo"), "--http1.1", "-H", "authorization: Bearer " + token(KEY_A, "a"),
             "-H", "x-local: " + local_tok)
    assert r.status == 200, r
    wait_for(lambda: idp.count() == 1, "the fetch to start")
    assert stats(lg).get("jwks_fetch_success", 0) == 0  # answered before the keys came
    wait_for(lambda: stats(lg).get("jwks_fetch_success", 0) == 1, "the abandoned fetch to end")
    assert idp.count() == 1


def test_keys_rotate_after_cache_duration(make_proxy, idp):
    lg = make_proxy(cache_duration="1s")
    assert get(lg, token(KEY_A, "a")).status == 200
    idp.set(body=jwks_of(KEY_B, "b"))
    # Still the cached set: the new key is unknown until the cache expires.
    r = get(lg, token(KEY_B, "b"))
    assert r.status == 401 and r.body.decode() == "Jwks doesn't have key to match kid or alg from Jwt", r
    wait_for(lambda: get(lg, token(KEY_B, "b")).status == 200, "the rotated key")
    assert idp.count() == 2
    assert get(lg, token(KEY_A, "a")).status == 401


def test_fetch_failure_is_401_and_next_request_fetches_again(make_proxy, idp):
    lg = make_proxy()
    idp.set(status=500)
    assert_fetch_failed(get(lg, token(KEY_A, "a")))
    assert stats(lg)["jwks_fetch_failed"] == 1
    idp.set(status=200)
    assert get(lg, token(KEY_A, "a")).status == 200
    assert idp.count() == 2


def test_bad_document_is_a_failed_fetch(make_proxy, idp):
    lg = make_proxy()
    idp.set(body="not json")
    assert_fetch_failed(get(lg, token(KEY_A, "a")))


def test_unknown_cluster_fails_at_fetch(make_proxy, idp):
    lg = make_proxy(cluster="nowhere")
    assert_fetch_failed(get(lg, token(KEY_A, "a")))
    assert idp.count() == 0


def test_missing_token_fetches_nothing(make_proxy, idp):
    lg = make_proxy()
    r = curl(lg.url("/echo"), "--http1.1")
    assert r.status == 401 and r.body.decode() == "Jwt is missing", r
    assert idp.count() == 0


def test_retry_policy_retries_5xx(make_proxy, idp):
    lg = make_proxy(retry_policy={"num_retries": 2, "retry_back_off": {"base_interval": "0.05s"}})
    idp.set(fail_first=2)
    assert get(lg, token(KEY_A, "a")).status == 200
    assert idp.count() == 3


def test_retries_run_out(make_proxy, idp):
    lg = make_proxy(retry_policy={"num_retries": 1, "retry_back_off": {"base_interval": "0.05s"}})
    idp.set(fail_first=5)
    assert_fetch_failed(get(lg, token(KEY_A, "a")))
    assert idp.count() == 2


def test_slow_server_times_out(make_proxy, idp):
    lg = make_proxy(timeout="0.3s")
    idp.set(delay=10.0)
    t0 = time.monotonic()
    assert_fetch_failed(get(lg, token(KEY_A, "a")))
    assert time.monotonic() - t0 < 5.0


def test_async_fetch_before_any_request_keeps_stale_keys(make_proxy, idp):
    lg = make_proxy(cache_duration="1s", async_fetch={"failed_refetch_duration": "0.2s"})
    wait_for(lambda: idp.count() >= 1, "the fetch ahead of requests")
    wait_for(lambda: stats(lg).get("jwks_fetch_success", 0) >= 1, "the keys")
    assert get(lg, token(KEY_A, "a")).status == 200
    idp.set(status=500)
    n = idp.count()
    wait_for(lambda: stats(lg).get("jwks_fetch_failed", 0) >= 2 and idp.count() >= n + 2, "failed refreshes")
    # The server fails; the keys it gave before still verify.
    assert get(lg, token(KEY_A, "a")).status == 200
    idp.set(status=200, body=jwks_of(KEY_B, "b"))
    wait_for(lambda: get(lg, token(KEY_B, "b")).status == 200, "the refreshed keys")


def test_async_fetch_failed_first_then_recovers(make_proxy, idp):
    idp.set(status=500)
    lg = make_proxy(async_fetch={"failed_refetch_duration": "0.2s"})
    wait_for(lambda: stats(lg).get("jwks_fetch_failed", 0) >= 1, "the failed first fetch")
    assert_fetch_failed(get(lg, token(KEY_A, "a")))
    idp.set(status=200)
    wait_for(lambda: get(lg, token(KEY_A, "a")).status == 200, "the refetch")
