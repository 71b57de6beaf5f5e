/*
 * Test-only helpers for the jwt_authn unit tests: fresh OpenSSL keys, their public halves as JWK
 * JSON, and tokens signed with them (JOSE r||s for ECDSA, HMAC by hand), so the tests need no
 * fixed key material and no outside tool. Static functions, included by each test file.
 *
 * Not for: production code (the filter only verifies; it never signs).
 */
#ifndef LG_TESTS_JWT_TEST_KEYS_H
#define LG_TESTS_JWT_TEST_KEYS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "pb_wkt.h"

/* base64url without padding, malloc'd. */
static inline char *tk_b64url(const void *data, size_t len)
{
    char *s = lg_base64_encode(data, len);
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '=')
        s[--n] = '\0';
    for (char *p = s; *p != '\0'; ++p)
        *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return s;
}

static inline char *tk_b64url_bn(const BIGNUM *bn, size_t pad_to)
{
    size_t n = (size_t)BN_num_bytes(bn);
    if (pad_to < n)
        pad_to = n;
    unsigned char *buf = calloc(1, pad_to + 1);
    BN_bn2binpad(bn, buf, (int)pad_to);
    char *s = tk_b64url(buf, pad_to);
    free(buf);
    return s;
}

/* A JWK for the public half of pkey ("RSA", "EC" or Ed25519), with kid/alg when non-NULL. */
static inline char *tk_jwk(EVP_PKEY *pkey, const char *kid, const char *alg)
{
    char members[4096] = "", extra[256] = "";
    if (kid != NULL)
        snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), ",\"kid\":\"%s\"", kid);
    if (alg != NULL)
        snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra), ",\"alg\":\"%s\"", alg);
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        BIGNUM *n = NULL, *e = NULL;
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n);
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e);
        char *ns = tk_b64url_bn(n, 0), *es = tk_b64url_bn(e, 0);
        snprintf(members, sizeof(members), "\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"", ns, es);
        free(ns), free(es), BN_free(n), BN_free(e);
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        BIGNUM *x = NULL, *y = NULL;
        char group[64];
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL);
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x);
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
        int bits = EVP_PKEY_get_bits(pkey);
        const char *crv = bits == 256 ? "P-256" : bits == 384 ? "P-384" : "P-521";
        size_t size = (size_t)(bits + 7) / 8;
        char *xs = tk_b64url_bn(x, size), *ys = tk_b64url_bn(y, size);
        snprintf(members, sizeof(members), "\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"", crv, xs, ys);
        free(xs), free(ys), BN_free(x), BN_free(y);
    } else {
        unsigned char raw[32];
        size_t len = sizeof(raw);
        EVP_PKEY_get_raw_public_key(pkey, raw, &len);
        char *xs = tk_b64url(raw, len);
        snprintf(members, sizeof(members), "\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"", xs);
        free(xs);
    }
    char *out = malloc(strlen(members) + strlen(extra) + 3);
    sprintf(out, "{%s%s}", members, extra);
    return out;
}

static inline const EVP_MD *tk_md(const char *alg)
{
    const char *bits = alg + 2;
    if (strcmp(alg, "EdDSA") == 0)
        return NULL;
    return strcmp(bits, "384") == 0 ? EVP_sha384() : strcmp(bits, "512") == 0 ? EVP_sha512() : EVP_sha256();
}

/* Signs signing_input with pkey (or HMAC with secret) as `alg` says; returns the JOSE signature. */
static inline unsigned char *tk_sign(const char *alg, EVP_PKEY *pkey, const unsigned char *secret, size_t secret_len,
                              const char *input, size_t *sig_len)
{
    unsigned char *sig = malloc(1024);
    if (alg[0] == 'H') {
        unsigned int n = 0;
        HMAC(tk_md(alg), secret, (int)secret_len, (const unsigned char *)input, strlen(input), sig, &n);
        *sig_len = n;
        return sig;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    EVP_DigestSignInit(ctx, &pctx, tk_md(alg), NULL, pkey);
    if (alg[0] == 'P') {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    size_t n = 1024;
    EVP_DigestSign(ctx, sig, &n, (const unsigned char *)input, strlen(input));
    EVP_MD_CTX_free(ctx);
    if (alg[0] == 'E' && alg[1] == 'S') {
        /* DER -> r || s, each the curve's size */
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        size_t half = (size_t)(EVP_PKEY_get_bits(pkey) + 7) / 8;
        BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, (int)half);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + half, (int)half);
        ECDSA_SIG_free(es);
        n = 2 * half;
    }
    *sig_len = n;
    return sig;
}

/* A compact token: base64url(header_json).base64url(payload_json).signature, malloc'd. */
static inline char *tk_token(const char *header_json, const char *payload_json, const char *alg, EVP_PKEY *pkey,
                      const unsigned char *secret, size_t secret_len)
{
    char *h = tk_b64url(header_json, strlen(header_json)), *p = tk_b64url(payload_json, strlen(payload_json));
    char *input = malloc(strlen(h) + strlen(p) + 2);
    sprintf(input, "%s.%s", h, p);
    size_t sig_len;
    unsigned char *sig = tk_sign(alg, pkey, secret, secret_len, input, &sig_len);
    char *s = tk_b64url(sig, sig_len);
    char *out = malloc(strlen(input) + strlen(s) + 2);
    sprintf(out, "%s.%s", input, s);
    free(h), free(p), free(input), free(sig), free(s);
    return out;
}

static inline EVP_PKEY *tk_rsa(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
}

static inline EVP_PKEY *tk_ec(const char *group)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
}

static inline EVP_PKEY *tk_ed25519(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

#endif
