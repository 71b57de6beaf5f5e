#!/usr/bin/env python3
"""Writes the bench config of a legate variant with one more HTTP filter before the router, and
prints the request header the load generator must send (or nothing).

Usage: filter_variants.py VARIANT BASE_CONFIG OUT_CONFIG PORT [AUTHZ_PORT]

Variants (what each request costs on top of the router-only config):
  lrl         envoy.filters.http.local_ratelimit, enabled and enforced, a bucket that never empties
  jwt-rs256   envoy.filters.http.jwt_authn, local JWKS, every request carries an RS256 token
  jwt-es256   the same with ES256
  ext-authz   envoy.filters.http.ext_authz over gRPC to an allow-all server on AUTHZ_PORT
  cache       envoy.filters.http.cache with the simple in-memory store, for the h1-cached scenario
  gzip        envoy.filters.http.compressor with the gzip library at Envoy's defaults (level 6,
              window 4 KiB, memory level 5), for the h1-json* scenarios
Keys are made fresh (python3-cryptography) and tokens minted with PyJWT; both are Debian packages
scripts/lib.sh installs.
"""
import json
import sys

import yaml


def jwt_filter(alg):
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    if alg == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "bench", "alg": alg})
    token = jwt.encode({"iss": "https://bench.example", "sub": "bench", "exp": 4102444800}, key, algorithm=alg,
                       headers={"kid": "bench"})
    cfg = {"name": "envoy.filters.http.jwt_authn", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
        "providers": {"bench": {"issuer": "https://bench.example",
                                "local_jwks": {"inline_string": json.dumps({"keys": [jwk]})}}},
        "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}]}}
    return cfg, "authorization: Bearer " + token


def main():
    variant, base, out, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    cfg = yaml.safe_load(open(base))
    listener = cfg["static_resources"]["listeners"][0]
    listener["name"] = "bench-" + variant
    listener["address"]["socket_address"]["port_value"] = port
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    header = ""
    if variant == "lrl":
        always = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
        extra = {"name": "envoy.filters.http.local_ratelimit", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
            "stat_prefix": "bench", "filter_enabled": always, "filter_enforced": always,
            "token_bucket": {"max_tokens": 4000000000, "tokens_per_fill": 4000000000, "fill_interval": "1s"}}}
    elif variant in ("jwt-rs256", "jwt-es256"):
        extra, header = jwt_filter(variant[4:].upper())
    elif variant == "ext-authz":
        extra = {"name": "envoy.filters.http.ext_authz", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "grpc_service": {"envoy_grpc": {"cluster_name": "authz"}, "timeout": "1s"},
            "transport_api_version": "V3"}}
        header = "x-authz: allow"
        cfg["static_resources"]["clusters"].append({
            "name": "authz", "type": "STATIC", "connect_timeout": "1s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
            "load_assignment": {"cluster_name": "authz", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": int(sys.argv[5])}}}}]}]}})
    elif variant == "cache":
        extra = {"name": "envoy.filters.http.cache", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig"}}}
    elif variant == "gzip":
        extra = {"name": "envoy.filters.http.compressor", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor",
            "compressor_library": {"name": "gzip", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip"}},
            "response_direction_config": {}}}
    else:
        sys.exit("unknown variant " + variant)
    hcm["http_filters"].insert(0, extra)
    with open(out, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    print(header)


if __name__ == "__main__":
    main()
