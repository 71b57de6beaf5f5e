"""envoy.filters.http.jwt_authn through the real binary: tokens minted with PyJWT and cryptography
for every algorithm Envoy accepts, verified against local JWKS (inline_string, filename and
inline_bytes), and the adversarial cases of research/reliability-anchors.md §a.5 and (b) 34-41:
alg none, RS->HS confusion, clocks, issuers, audiences, bad signatures and encodings, duplicate
tokens. What the origin receives (forwarded payload, claims, stripped tokens) is read from its echo.

One legate serves the module; every path prefix below selects one rule of the filter config. The
origin's echo mode answers any path with an `echo` segment.
"""
import base64
import hashlib
import hmac
import json
import time

import pytest

jwt = pytest.importorskip("jwt")
serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: E402
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, OKPAlgorithm, RSAAlgorithm  # noqa: E402

from lgharness import bootstrap as bs  # noqa: E402
from lgharness.clients import admin_counters, curl  # noqa: E402

JWT_TYPE = bs.T + "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
PER_ROUTE_TYPE = bs.T + "envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig"
FILTER = "envoy.filters.http.jwt_authn"

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEYS = {"ES256": ec.generate_private_key(ec.SECP256R1()), "ES384": ec.generate_private_key(ec.SECP384R1()),
           "ES512": ec.generate_private_key(ec.SECP521R1())}
ED_KEY = ed25519.Ed25519PrivateKey.generate()
HS_SECRET = b"a-shared-secret-of-32-bytes-long!"
OTHER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(alg_cls, key, **extra):
    d = json.loads(alg_cls.to_jwk(key))
    d.update(extra)
    return d


def jwks(*keys):
    return json.dumps({"keys": list(keys)})


def claims(iss, **extra):
    now = int(time.time())
    c = {"iss": iss, "sub": "user-1", "aud": "api.example", "iat": now, "exp": now + 600}
    c.update(extra)
    return {k: v for k, v in c.items() if v is not None}


def rs(alg="RS256", iss="https://rsa.example", key=RSA_KEY, headers=None, **extra):
    return jwt.encode(claims(iss, **extra), key, algorithm=alg, headers=headers or {"kid": "rsa1"})


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_token(header, payload, key_bytes, digest=hashlib.sha256):
    """A token HMAC'd by hand, for the confusion cases PyJWT refuses to produce."""
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    sig = hmac.new(key_bytes, signing.encode(), digest).digest()
    return signing + "." + b64(sig)


def provider(issuer, keys, **extra):
    p = {"issuer": issuer, "audiences": ["api.example"], "local_jwks": {"inline_string": keys}}
    p.update(extra)
    return p


def rule(prefix, requires=None, **extra):
    r = {"match": {"prefix": prefix}}
    if requires is not None:
        r["requires"] = requires
    r.update(extra)
    return r


def per_route(prefix, cfg):
    return bs.route(prefix, "app", typed_per_filter_config={FILTER: dict({"@type": PER_ROUTE_TYPE}, **cfg)})


@pytest.fixture(scope="module")
def proxy(start_legate_module, origin_module, tmp_path_factory):
    d = tmp_path_factory.mktemp("jwks")
    fwd_jwks = d / "fwd.json"
    fwd_jwks.write_text(jwks(jwk(RSAAlgorithm, RSA_KEY.public_key())))
    hs_jwk = jwk(HMACAlgorithm, HS_SECRET, kid="hs1")
    providers = {
        "rsa": provider("https://rsa.example", jwks(jwk(RSAAlgorithm, RSA_KEY.public_key(), kid="rsa1")),
                        forward_payload_header="x-jwt-payload",
                        claim_to_headers=[{"header_name": "x-jwt-sub", "claim_name": "sub"},
                                          {"header_name": "x-jwt-team", "claim_name": "org.team"},
                                          {"header_name": "x-jwt-roles", "claim_name": "roles"},
                                          {"header_name": "x-jwt-level", "claim_name": "level"}]),
        "ec": provider("https://ec.example",
                       jwks(*[jwk(ECAlgorithm, k.public_key(), kid=a) for a, k in EC_KEYS.items()])),
        "hs": provider("https://hs.example", jwks(hs_jwk)),
        "ed": provider("https://ed.example", jwks(jwk(OKPAlgorithm, ED_KEY.public_key()))),
        "fwd": {"issuer": "https://fwd.example", "local_jwks": {"filename": str(fwd_jwks)},
                "from_headers": [{"name": "x-token"}], "forward": True,
                "forward_payload_header": "x-padded-payload", "pad_forward_payload_header": True},
        "params": {"issuer": "https://param.example",
                   "local_jwks": {"inline_bytes": base64.b64encode(jwks(hs_jwk).encode()).decode()},
                   "from_params": ["token"], "from_cookies": ["session"]},
        "sub": provider("https://sub.example", jwks(jwk(RSAAlgorithm, RSA_KEY.public_key())),
                        subjects={"prefix": "svc-"}, max_lifetime="3600s",
                        from_headers=[{"name": "x-sub-token", "value_prefix": "JWT "}]),
    }
    rules = [
        rule("/public"),
        rule("/rsa", {"provider_name": "rsa"}),
        rule("/ec", {"provider_name": "ec"}),
        rule("/hs", {"provider_name": "hs"}),
        rule("/ed", {"provider_name": "ed"}),
        rule("/fwd", {"provider_name": "fwd"}),
        rule("/param", {"provider_name": "params"}),
        rule("/sub", {"provider_name": "sub"}),
        rule("/any", {"requires_any": {"requirements": [{"provider_name": "rsa"}, {"provider_name": "hs"}]}}),
        rule("/all", {"requires_all": {"requirements": [{"provider_name": "rsa"}, {"provider_name": "fwd"}]}}),
        rule("/optional", {"requires_any": {"requirements": [{"provider_name": "rsa"}, {"allow_missing": {}}]}}),
        rule("/missing-ok", {"allow_missing": {}}),
        rule("/failed-ok", {"allow_missing_or_failed": {}}),
        rule("/aud", {"provider_and_audiences": {"provider_name": "rsa", "audiences": ["other.example"]}}),
        rule("/named", requirement_name="needs_rsa"),
        rule("/", {"provider_name": "rsa"}),
    ]
    cfg = {"@type": JWT_TYPE, "providers": providers, "rules": rules, "bypass_cors_preflight": True,
           "requirement_map": {"needs_rsa": {"provider_name": "rsa"}, "needs_hs": {"provider_name": "hs"}}}
    routes = [per_route("/disabled", {"disabled": True}),
              per_route("/pr-named", {"requirement_name": "needs_hs"}),
              per_route("/pr-bad", {"requirement_name": "nope"}),
              bs.route("/", "app")]
    port, admin_port = bs_free_ports(2)
    filters = [{"name": FILTER, "typed_config": cfg}, bs.router_filter()]
    chain = bs.filter_chain(bs.hcm(routes, http_filters=filters))
    lg = start_legate_module(bs.bootstrap([bs.listener("ingress", port, [chain])],
                                          [bs.cluster("app", [origin_module.port])], admin_port=admin_port),
                             ports=[port, admin_port])
    lg.admin_port = admin_port
    return lg


def bs_free_ports(n):
    from lgharness.ports import pick_port
    return [pick_port() for _ in range(n)]


def get(lg, path, token=None, *args):
    extra = list(args)
    if token is not None:
        extra += ["-H", "authorization: Bearer " + token]
    return curl(lg.url(path), "--http1.1", *extra)


def echoed(r):
    assert r.status == 200, r
    return {k.lower(): v for k, v in json.loads(r.body)["headers"]}


def assert_denied(r, status, body, invalid_token=True, path=None):
    assert r.status == status, r
    assert r.body.decode() == body, r
    wa = r.header("www-authenticate")
    assert wa is not None and wa.startswith('Bearer realm="http://127.0.0.1:'), r
    if path is not None:
        assert wa.split('"')[1].endswith(path), wa
    assert wa.endswith(', error="invalid_token"') == invalid_token, wa


def stats(lg):
    return admin_counters(lg.admin_port, "jwt_authn")


# ---- every algorithm ------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"])
def test_rsa_algorithms(proxy, alg):
    h = echoed(get(proxy, "/rsa/echo", rs(alg)))
    assert "authorization" not in h  # forward: false strips the token
    assert h["x-jwt-sub"] == "user-1"


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512"])
def test_ec_algorithms(proxy, alg):
    t = jwt.encode(claims("https://ec.example"), EC_KEYS[alg], algorithm=alg, headers={"kid": alg})
    echoed(get(proxy, "/ec/echo", t))
    # Without a kid every key is tried; the curve must still match the alg.
    t = jwt.encode(claims("https://ec.example"), EC_KEYS[alg], algorithm=alg)
    echoed(get(proxy, "/ec/echo", t))


@pytest.mark.parametrize("alg,digest", [("HS256", hashlib.sha256), ("HS384", hashlib.sha384),
                                        ("HS512", hashlib.sha512)])
def test_hmac_algorithms(proxy, alg, digest):
    echoed(get(proxy, "/hs/echo", jwt.encode(claims("https://hs.example"), HS_SECRET, algorithm=alg)))


def test_eddsa(proxy):
    echoed(get(proxy, "/ed/echo", jwt.encode(claims("https://ed.example"), ED_KEY, algorithm="EdDSA")))


def test_http2_request(proxy):
    r = curl(proxy.url("/rsa/echo"), "--http2-prior-knowledge", "-H", "authorization: Bearer " + rs())
    assert r.status == 200 and r.version == "2", r


# ---- missing and malformed tokens -----------------------------------------------------------

def test_missing_token(proxy):
    assert_denied(get(proxy, "/rsa/echo?x=1"), 401, "Jwt is missing", invalid_token=False, path="/rsa/echo?x=1")
    assert_denied(get(proxy, "/rsa/echo", None, "-H", "authorization: Basic abc"), 401, "Jwt is missing",
                  invalid_token=False)


@pytest.mark.parametrize("alg", ["none", "None", "nOnE", "HS1024", ""])
def test_alg_none_and_unknown(proxy, alg):
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims("https://rsa.example")).encode())
    for token in (head + "." + body + ".", head + "." + body + "." + b64(b"sig")):
        assert_denied(get(proxy, "/rsa/echo", token), 401, "Jwt header [alg] is not supported")


def test_rs_to_hs_confusion(proxy):
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    der = RSA_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    n = RSA_KEY.public_key().public_numbers().n.to_bytes(256, "big")
    for secret in (pem, der, n):
        t = hand_token({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}, claims("https://rsa.example"), secret)
        assert_denied(get(proxy, "/rsa/echo", t), 401, "Jwt verification fails")
        t = hand_token({"alg": "HS256", "typ": "JWT"}, claims("https://rsa.example"), secret)
        assert_denied(get(proxy, "/rsa/echo", t), 401, "Jwt verification fails")


def test_oct_key_never_runs_rsa(proxy):
    t = jwt.encode(claims("https://hs.example"), RSA_KEY, algorithm="RS256")
    assert_denied(get(proxy, "/hs/echo", t), 401, "Jwt verification fails")


@pytest.mark.parametrize("token,body", [
    ("abc", "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"),
    ("a.b", "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"),
    ("a.b.c.d", "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"),
    ("!!!.e30.sig", "Jwt header is an invalid Base64url encoded"),
    (b64(b"not json") + ".e30.c2ln", "Jwt header is an invalid JSON"),
    (b64(b'{"alg":"RS256"}') + ".%%%%.c2ln", "Jwt payload is an invalid Base64url encoded"),
    (b64(b'{"alg":"RS256"}') + "." + b64(b"[1]") + ".c2ln", "Jwt payload is an invalid JSON"),
    (b64(b'{"alg":5}') + ".e30.c2ln", "Jwt header [alg] field is required and must be a string"),
    (b64(b'{"alg":"RS256","kid":7}') + ".e30.c2ln", "Jwt header [kid] field is not a string"),
])
def test_malformed_tokens(proxy, token, body):
    # Sent through a header with no prefix so characters outside base64url reach the parser.
    r = curl(proxy.url("/fwd/echo"), "--http1.1", "-H", "x-token: " + token)
    assert_denied(r, 401, body)


def test_truncated_and_padded_tokens(proxy):
    t = rs()
    head, payload, sig = t.split(".")
    for bad in (head + "." + payload, t[:-10], head + "." + payload + "." + sig + "==", t[: len(t) // 2]):
        r = curl(proxy.url("/fwd/echo"), "--http1.1", "-H", "x-token: " + bad)
        assert r.status == 401, (bad, r)
    r = curl(proxy.url("/fwd/echo"), "--http1.1", "-H", "x-token: " + head + "." + payload + "." + sig + "==")
    assert_denied(r, 401, "Jwt signature is an invalid Base64url encoded")


def test_bad_signature(proxy):
    t = rs()
    flipped = t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB")
    assert_denied(get(proxy, "/rsa/echo", flipped), 401, "Jwt verification fails")
    other = rs(key=OTHER_RSA)
    assert_denied(get(proxy, "/rsa/echo", other), 401, "Jwt verification fails")


def test_ecdsa_der_signature_refused(proxy):
    from cryptography.hazmat.primitives import hashes
    signing = b64(json.dumps({"alg": "ES256", "kid": "ES256"}).encode()) + "." + b64(
        json.dumps(claims("https://ec.example")).encode())
    der = EC_KEYS["ES256"].sign(signing.encode(), ec.ECDSA(hashes.SHA256()))
    assert_denied(get(proxy, "/ec/echo", signing + "." + b64(der)), 401, "Jwt verification fails")
    assert_denied(get(proxy, "/ec/echo", signing + "." + b64(b"\0" * 64)), 401, "Jwt verification fails")


def test_unknown_kid(proxy):
    assert_denied(get(proxy, "/rsa/echo", rs(headers={"kid": "other"})), 401,
                  "Jwks doesn't have key to match kid or alg from Jwt")
    assert_denied(get(proxy, "/rsa/echo", rs(headers={"kid": "../../" + "x" * 4000})), 401,
                  "Jwks doesn't have key to match kid or alg from Jwt")


def test_many_tokens_refused(proxy):
    t = rs()
    r = curl(proxy.url("/rsa/echo?" + "&".join(["access_token=" + t] * 17)), "--http1.1")
    assert_denied(r, 401, "Found multiple Jwt tokens")
    echoed(curl(proxy.url("/rsa/echo?" + "&".join(["access_token=" + t] * 16)), "--http1.1"))
    r = curl(proxy.url("/missing-ok/echo?" + "&".join(["access_token=x"] * 3000)), "--http1.1")
    assert_denied(r, 401, "Found multiple Jwt tokens")


def test_huge_token_refused_before_crypto(proxy):
    r = get(proxy, "/rsa/echo", "a" * (64 * 1024))
    assert r.status in (401, 431), r
    echoed(get(proxy, "/rsa/echo", rs()))  # still serving


# ---- claims ---------------------------------------------------------------------------------

def test_clock(proxy):
    now = int(time.time())
    echoed(get(proxy, "/rsa/echo", rs(exp=now - 30)))  # within the 60 s skew
    assert_denied(get(proxy, "/rsa/echo", rs(exp=now - 120)), 401, "Jwt is expired")
    assert_denied(get(proxy, "/rsa/echo", rs(nbf=now + 120)), 401, "Jwt not yet valid")
    echoed(get(proxy, "/rsa/echo", rs(exp=None)))  # no exp and no require_expiration
    assert_denied(get(proxy, "/rsa/echo", rs(exp="tomorrow")), 401, "Jwt payload [exp] field is not an integer")
    assert_denied(get(proxy, "/rsa/echo", rs(exp=-5)), 401,
                  "Jwt payload [exp] field is not a positive 64 bit integer")


def test_issuer_and_audiences(proxy):
    assert_denied(get(proxy, "/rsa/echo", rs(iss="https://evil.example")), 401, "Jwt issuer is not configured")
    assert_denied(get(proxy, "/rsa/echo", rs(aud="other.example")), 403, "Audiences in Jwt are not allowed")
    assert_denied(get(proxy, "/rsa/echo", rs(aud=None)), 403, "Audiences in Jwt are not allowed")
    echoed(get(proxy, "/rsa/echo", rs(aud=["x.example", "api.example"])))
    echoed(get(proxy, "/rsa/echo", rs(aud="https://api.example/")))  # scheme and slash ignored
    # provider_and_audiences replaces the provider's list
    echoed(get(proxy, "/aud/echo", rs(aud="other.example")))
    assert_denied(get(proxy, "/aud/echo", rs()), 403, "Audiences in Jwt are not allowed")


def test_subjects_and_max_lifetime(proxy):
    now = int(time.time())

    def sub_get(token):
        return curl(proxy.url("/sub/echo"), "--http1.1", "-H", "x-sub-token: JWT " + token)

    ok = rs(iss="https://sub.example", sub="svc-a", headers={})
    echoed(sub_get(ok))
    assert_denied(sub_get(rs(iss="https://sub.example", sub="user", headers={})), 401, "Jwt verification fails")
    assert_denied(sub_get(rs(iss="https://sub.example", sub="svc-a", exp=now + 7200, headers={})), 401,
                  "Jwt is expired")
    assert_denied(sub_get(rs(iss="https://sub.example", sub="svc-a", exp=None, headers={})), 401, "Jwt is expired")
    # the value_prefix must be there
    assert_denied(curl(proxy.url("/sub/echo"), "--http1.1", "-H", "x-sub-token: " + ok), 401, "Jwt is missing",
                  invalid_token=False)


# ---- sources and what reaches the origin ----------------------------------------------------

def test_forwarded_payload_and_claims(proxy):
    t = rs(org={"team": "blue"}, roles=["a", "b"], level=3)
    h = echoed(get(proxy, "/rsa/echo", t, "-H", "x-jwt-sub: forged"))
    assert h["x-jwt-payload"] == t.split(".")[1]
    assert h["x-jwt-sub"] == "user-1"  # the client's value is replaced, not appended
    assert h["x-jwt-team"] == "blue"
    assert json.loads(base64.b64decode(h["x-jwt-roles"])) == ["a", "b"]
    assert h["x-jwt-level"] == "3"


def test_forward_keeps_token_and_pads_payload(proxy):
    t = rs(iss="https://fwd.example", headers={})
    r = curl(proxy.url("/fwd/echo"), "--http1.1", "-H", "x-token: " + t)
    h = echoed(r)
    assert h["x-token"] == t
    padded = h["x-padded-payload"]
    assert len(padded) % 4 == 0 and padded.rstrip("=") == t.split(".")[1]


def test_query_param_and_cookie_sources(proxy):
    t = jwt.encode(claims("https://param.example"), HS_SECRET, algorithm="HS256")
    echoed(curl(proxy.url("/param/echo?a=1&token=" + t), "--http1.1"))
    echoed(curl(proxy.url("/param/echo"), "--http1.1", "-H", "cookie: a=b; session=" + t + "; c=d"))
    assert_denied(curl(proxy.url("/param/echo?tok=" + t), "--http1.1"), 401, "Jwt is missing", invalid_token=False)
    # the default sources: access_token query parameter
    echoed(curl(proxy.url("/rsa/echo?access_token=" + rs()), "--http1.1"))


def test_duplicate_tokens(proxy):
    good = rs()
    bad = rs(exp=int(time.time()) - 3600)
    # A good token next to a bad one: every token must verify.
    assert_denied(curl(proxy.url("/rsa/echo?access_token=" + bad), "--http1.1", "-H",
                       "authorization: Bearer " + good), 401, "Jwt is expired")
    assert_denied(curl(proxy.url("/rsa/echo"), "--http1.1", "-H", "authorization: Bearer " + good,
                       "-H", "authorization: Bearer " + bad), 401, "Jwt is expired")
    echoed(curl(proxy.url("/rsa/echo?access_token=" + good), "--http1.1", "-H", "authorization: Bearer " + good))


# ---- requirements and per-route config -------------------------------------------------------

def test_requires_any(proxy):
    echoed(get(proxy, "/any/echo", rs()))
    echoed(get(proxy, "/any/echo", jwt.encode(claims("https://hs.example"), HS_SECRET, algorithm="HS256")))
    assert_denied(get(proxy, "/any/echo"), 401, "Jwt is missing", invalid_token=False)
    assert_denied(get(proxy, "/any/echo", rs(exp=int(time.time()) - 3600)), 401, "Jwt is expired")


def test_requires_all(proxy):
    fwd = rs(iss="https://fwd.example", headers={})
    echoed(get(proxy, "/all/echo", rs(), "-H", "x-token: " + fwd))
    assert_denied(get(proxy, "/all/echo", rs()), 401, "Jwt is missing", invalid_token=False)
    assert_denied(curl(proxy.url("/all/echo"), "--http1.1", "-H", "x-token: " + fwd), 401, "Jwt is missing",
                  invalid_token=False)


def test_allow_missing(proxy):
    echoed(get(proxy, "/missing-ok/echo"))
    echoed(get(proxy, "/missing-ok/echo", rs()))
    assert_denied(get(proxy, "/missing-ok/echo", rs(exp=int(time.time()) - 3600)), 401, "Jwt is expired")
    echoed(get(proxy, "/optional/echo"))
    assert_denied(get(proxy, "/optional/echo", rs(key=OTHER_RSA)), 401, "Jwt verification fails")


def test_allow_missing_or_failed(proxy):
    echoed(get(proxy, "/failed-ok/echo"))
    h = echoed(get(proxy, "/failed-ok/echo", rs(key=OTHER_RSA)))
    assert "x-jwt-sub" not in h  # a failed token forwards nothing
    h = echoed(get(proxy, "/failed-ok/echo", rs()))
    assert h["x-jwt-sub"] == "user-1"


def test_rules(proxy):
    echoed(get(proxy, "/public/echo"))
    echoed(get(proxy, "/named/echo", rs()))
    assert_denied(get(proxy, "/named/echo"), 401, "Jwt is missing", invalid_token=False)
    assert_denied(get(proxy, "/other/echo"), 401, "Jwt is missing", invalid_token=False)


def test_per_route(proxy):
    echoed(get(proxy, "/disabled/echo"))
    echoed(get(proxy, "/pr-named/echo", jwt.encode(claims("https://hs.example"), HS_SECRET, algorithm="HS256")))
    assert_denied(get(proxy, "/pr-named/echo", rs()), 401, "Jwt issuer is not configured")
    r = get(proxy, "/pr-bad/echo", rs())
    assert r.status == 403 and r.body == b"Failed JWT authentication: Wrong requirement_name: nope", r
    assert r.header("www-authenticate") is None


def test_stats(proxy):
    before = stats(proxy)
    echoed(get(proxy, "/rsa/echo", rs()))
    get(proxy, "/rsa/echo")
    after = stats(proxy)
    assert after["http.ingress_http.jwt_authn.allowed"] == before["http.ingress_http.jwt_authn.allowed"] + 1
    assert after["http.ingress_http.jwt_authn.denied"] == before["http.ingress_http.jwt_authn.denied"] + 1
    assert "http.ingress_http.jwt_authn.jwks_fetch_success" in after
    assert "http.ingress_http.jwt_authn.jwks_fetch_failed" in after


def test_cors_preflight_bypassed(proxy):
    before = stats(proxy).get("http.ingress_http.jwt_authn.cors_preflight_bypassed", 0)
    r = curl(proxy.url("/rsa/echo"), "--http1.1", "-X", "OPTIONS", "-H", "origin: https://app.example",
             "-H", "access-control-request-method: GET")
    assert r.status == 200, r
    assert stats(proxy)["http.ingress_http.jwt_authn.cors_preflight_bypassed"] == before + 1
    # an OPTIONS without the CORS headers is an ordinary request
    assert_denied(curl(proxy.url("/rsa/echo"), "--http1.1", "-X", "OPTIONS"), 401, "Jwt is missing",
                  invalid_token=False)


def test_strip_failure_response(start_legate, free_port, origin):
    port = free_port()
    cfg = {"@type": JWT_TYPE, "strip_failure_response": True,
           "providers": {"rsa": provider("https://rsa.example", jwks(jwk(RSAAlgorithm, RSA_KEY.public_key())))},
           "rules": [rule("/", {"provider_name": "rsa"})]}
    filters = [{"name": FILTER, "typed_config": cfg}, bs.router_filter()]
    chain = bs.filter_chain(bs.hcm([bs.route("/", "app")], http_filters=filters))
    lg = start_legate(bs.bootstrap([bs.listener("ingress", port, [chain])], [bs.cluster("app", [origin.port])]))
    r = get(lg, "/echo", rs(exp=int(time.time()) - 3600))
    assert r.status == 401 and r.body == b"" and r.header("www-authenticate") is None, r
    echoed(get(lg, "/echo", rs()))


def test_grpc_request_gets_grpc_status(proxy):
    r = curl(proxy.url("/rsa/echo"), "--http2-prior-knowledge", "-X", "POST", "-H", "content-type: application/grpc")
    assert r.status == 200 and r.header("grpc-status") == "16", r  # UNAUTHENTICATED
    assert r.header("grpc-message") == "Jwt is missing", r


# ---- config refusals --------------------------------------------------------------------------

def _validate(legate, tmp_path, providers, rules=()):
    cfg = {"@type": JWT_TYPE, "providers": providers, "rules": list(rules)}
    filters = [{"name": FILTER, "typed_config": cfg}, bs.router_filter()]
    b = bs.bootstrap([bs.listener("l", 10000, [bs.filter_chain(bs.hcm([bs.route("/", "app")], http_filters=filters))])],
                     [bs.cluster("app", [10001])])
    p = tmp_path / "b.yaml"
    p.write_text(bs.to_yaml(b))
    return legate("--mode", "validate", "-c", p)


def test_remote_jwks_accepted(legate, tmp_path):
    # The cluster is looked up when the keys are fetched, as Envoy does: an unknown one loads.
    r = _validate(legate, tmp_path, {"p": {"issuer": "i", "remote_jwks": {
        "http_uri": {"uri": "https://idp.example/jwks", "cluster": "nowhere", "timeout": "1s"}}}})
    assert r.returncode == 0, r


@pytest.mark.parametrize("http_uri,msg", [
    ({"uri": "https://idp.example/jwks", "cluster": "app"}, "remote_jwks.http_uri.timeout: is required"),
    ({"uri": "idp.example/jwks", "cluster": "app", "timeout": "1s"}, "must start with http:// or https://"),
    ({"uri": "https://idp.example/jwks", "timeout": "1s"}, "remote_jwks.http_uri.cluster: must not be empty"),
])
def test_bad_remote_jwks_refused(legate, tmp_path, http_uri, msg):
    r = _validate(legate, tmp_path, {"p": {"issuer": "i", "remote_jwks": {"http_uri": http_uri}}})
    assert r.returncode != 0 and msg in r.stdout + r.stderr, r


@pytest.mark.parametrize("keys,msg", [
    ("not json", "Jwks is an invalid JSON"),
    ('{"keys": [{"kty": "RSA", "e": "AQAB"}]}', "[n] field is missing for a RSA key"),
    ('{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}', "Jwks EC create key fail"),
    ('{"keys": []}', "Jwks doesn't have any valid public key"),
])
def test_bad_local_jwks_refused(legate, tmp_path, keys, msg):
    r = _validate(legate, tmp_path, {"p": {"issuer": "i", "local_jwks": {"inline_string": keys}}})
    assert r.returncode != 0 and msg in r.stdout + r.stderr, r


def test_unknown_provider_refused(legate, tmp_path):
    r = _validate(legate, tmp_path, {"p": {"issuer": "i", "local_jwks": {"inline_string": jwks(
        jwk(HMACAlgorithm, HS_SECRET))}}}, [rule("/", {"provider_name": "q"})])
    assert r.returncode != 0 and "Required provider ['q'] is not configured." in r.stdout + r.stderr, r
