/*
 * JSON Web Tokens: parsing a compact JWS (header.payload.signature), checking its time claims, and
 * verifying its signature against a JWKS with OpenSSL 3, the way google/jwt_verify_lib (Envoy's
 * library) does, with its status values. The key type decides the primitive, so an RSA or EC public
 * key can never be used as an HMAC secret. Untrusted input throughout: every failure is a status.
 *
 * Not for: finding tokens in requests, issuers and audiences (filter.c), parsing key sets (jwks.c).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "filters/jwt_authn/jwt_authn.h"
#include "pb_wkt.h"

static const char *const status_texts[] = {
#define LG_X(name, text) text,
    LG_JWT_STATUSES(LG_X)
#undef LG_X
};

const char *lg_jwt_status_text(lg_jwt_status_t st)
{
    return (size_t)st < sizeof(status_texts) / sizeof(status_texts[0]) ? status_texts[st] : "";
}

static int is_b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

unsigned char *lg_jwt_b64url_decode(const char *s, size_t len, size_t *outlen)
{
    /* RFC 7515 §2: the URL-safe alphabet and no padding. The shared decoder takes both alphabets
     * and padding, so the strictness is checked here first. */
    for (size_t i = 0; i < len; ++i)
        if (!is_b64url_char(s[i]))
            return NULL;
    uint8_t *out;
    if (lg_base64_decode(s, len, &out, outlen) != 0)
        return NULL;
    return out;
}

/* ---- parsing ------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    lg_jwt_alg_t alg;
} alg_names[] = {
    {"RS256", LG_JWT_ALG_RS256}, {"RS384", LG_JWT_ALG_RS384}, {"RS512", LG_JWT_ALG_RS512},
    {"PS256", LG_JWT_ALG_PS256}, {"PS384", LG_JWT_ALG_PS384}, {"PS512", LG_JWT_ALG_PS512},
    {"ES256", LG_JWT_ALG_ES256}, {"ES384", LG_JWT_ALG_ES384}, {"ES512", LG_JWT_ALG_ES512},
    {"HS256", LG_JWT_ALG_HS256}, {"HS384", LG_JWT_ALG_HS384}, {"HS512", LG_JWT_ALG_HS512},
    {"EdDSA", LG_JWT_ALG_EDDSA},
};

static const char *alg_name(lg_jwt_alg_t alg)
{
    for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); ++i)
        if (alg_names[i].alg == alg)
            return alg_names[i].name;
    return "";
}

/* Decodes a base64url JSON object segment; NULL json on failure with *st set. */
static json_t *decode_object(const char *s, size_t len, lg_jwt_status_t bad_b64, lg_jwt_status_t bad_json,
                             lg_jwt_status_t *st)
{
    size_t n;
    unsigned char *raw = lg_jwt_b64url_decode(s, len, &n);
    if (raw == NULL) {
        *st = bad_b64;
        return NULL;
    }
    json_t *j = json_loadb((const char *)raw, n, JSON_REJECT_DUPLICATES, NULL);
    free(raw);
    if (j == NULL || !json_is_object(j)) {
        json_decref(j);
        *st = bad_json;
        return NULL;
    }
    return j;
}

/* A NumericDate claim: absent is 0; a non-number or a negative or fractional-out-of-range value fails. */
static lg_jwt_status_t numeric_claim(json_t *payload, const char *name, int64_t *out, lg_jwt_status_t not_int,
                                     lg_jwt_status_t out_of_range)
{
    json_t *v = json_object_get(payload, name);
    *out = 0;
    if (v == NULL)
        return LG_JWT_OK;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0)
            return out_of_range;
        *out = (int64_t)json_integer_value(v);
        return LG_JWT_OK;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= 0) || d >= 9.2e18)
            return out_of_range;
        *out = (int64_t)d;
        return LG_JWT_OK;
    }
    return not_int;
}

static lg_jwt_status_t parse_header(lg_jwt_t *jwt)
{
    json_t *alg = json_object_get(jwt->header, "alg");
    if (!json_is_string(alg))
        return LG_JWT_JWT_HEADER_BAD_ALG;
    const char *name = json_string_value(alg);
    size_t i;
    for (i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); ++i)
        if (strcmp(alg_names[i].name, name) == 0)
            break;
    if (i == sizeof(alg_names) / sizeof(alg_names[0]))
        return LG_JWT_JWT_HEADER_NOT_IMPLEMENTED_ALG; /* "none" and every case variant of it */
    jwt->alg = alg_names[i].alg;
    json_t *kid = json_object_get(jwt->header, "kid");
    if (kid != NULL) {
        if (!json_is_string(kid))
            return LG_JWT_JWT_HEADER_BAD_KID;
        jwt->kid = json_string_value(kid);
    }
    return LG_JWT_OK;
}

static lg_jwt_status_t parse_payload(lg_jwt_t *jwt)
{
    json_t *p = jwt->payload, *v;
    jwt->iss = jwt->sub = "";
    if ((v = json_object_get(p, "iss")) != NULL) {
        if (!json_is_string(v))
            return LG_JWT_JWT_PAYLOAD_ISS_NOT_STRING;
        jwt->iss = json_string_value(v);
    }
    if ((v = json_object_get(p, "sub")) != NULL) {
        if (!json_is_string(v))
            return LG_JWT_JWT_PAYLOAD_SUB_NOT_STRING;
        jwt->sub = json_string_value(v);
    }
    lg_jwt_status_t st;
    if ((st = numeric_claim(p, "iat", &jwt->iat, LG_JWT_JWT_PAYLOAD_IAT_NOT_INTEGER,
                            LG_JWT_JWT_PAYLOAD_IAT_OUT_OF_RANGE)) != LG_JWT_OK ||
        (st = numeric_claim(p, "nbf", &jwt->nbf, LG_JWT_JWT_PAYLOAD_NBF_NOT_INTEGER,
                            LG_JWT_JWT_PAYLOAD_NBF_OUT_OF_RANGE)) != LG_JWT_OK ||
        (st = numeric_claim(p, "exp", &jwt->exp, LG_JWT_JWT_PAYLOAD_EXP_NOT_INTEGER,
                            LG_JWT_JWT_PAYLOAD_EXP_OUT_OF_RANGE)) != LG_JWT_OK)
        return st;
    if ((v = json_object_get(p, "jti")) != NULL && !json_is_string(v))
        return LG_JWT_JWT_PAYLOAD_JTI_NOT_STRING;
    if ((v = json_object_get(p, "aud")) != NULL) {
        if (json_is_array(v)) {
            size_t i;
            json_t *a;
            json_array_foreach(v, i, a) if (!json_is_string(a)) return LG_JWT_JWT_PAYLOAD_AUD_NOT_STRING;
        } else if (!json_is_string(v)) {
            return LG_JWT_JWT_PAYLOAD_AUD_NOT_STRING;
        }
        jwt->aud = v;
    }
    return LG_JWT_OK;
}

lg_jwt_status_t lg_jwt_parse(lg_jwt_t *jwt, const char *token, size_t len)
{
    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        return LG_JWT_JWT_BAD_FORMAT;
    lg_jwt_status_t st = LG_JWT_OK;
    if ((jwt->header = decode_object(token, (size_t)(dot1 - token), LG_JWT_JWT_HEADER_BAD_BASE64,
                                     LG_JWT_JWT_HEADER_BAD_JSON, &st)) == NULL)
        return st;
    if ((st = parse_header(jwt)) != LG_JWT_OK)
        return st;
    jwt->payload_b64 = h2o_iovec_init(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if ((jwt->payload = decode_object(jwt->payload_b64.base, jwt->payload_b64.len, LG_JWT_JWT_PAYLOAD_BAD_BASE64,
                                      LG_JWT_JWT_PAYLOAD_BAD_JSON, &st)) == NULL)
        return st;
    if ((st = parse_payload(jwt)) != LG_JWT_OK)
        return st;
    jwt->signed_part = h2o_iovec_init(token, (size_t)(dot2 - token));
    if ((jwt->signature = lg_jwt_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &jwt->signature_len)) == NULL)
        return LG_JWT_JWT_SIGNATURE_BAD_BASE64;
    return LG_JWT_OK;
}

void lg_jwt_dispose(lg_jwt_t *jwt)
{
    json_decref(jwt->header);
    json_decref(jwt->payload);
    free(jwt->signature);
    memset(jwt, 0, sizeof(*jwt));
}

lg_jwt_status_t lg_jwt_check_time(const lg_jwt_t *jwt, int64_t now, uint64_t skew)
{
    /* Claims were checked non-negative; compare in unsigned to keep huge values from wrapping. */
    uint64_t n = (uint64_t)now;
    if (jwt->nbf != 0 && n + skew < (uint64_t)jwt->nbf)
        return LG_JWT_JWT_NOT_YET_VALID;
    if (jwt->exp != 0 && n > (uint64_t)jwt->exp + skew)
        return LG_JWT_JWT_EXPIRED;
    return LG_JWT_OK;
}

/* ---- signatures --------------------------------------------------------------------------- */

static const EVP_MD *alg_md(lg_jwt_alg_t alg)
{
    switch (alg) {
    case LG_JWT_ALG_RS256: case LG_JWT_ALG_PS256: case LG_JWT_ALG_ES256: case LG_JWT_ALG_HS256:
        return EVP_sha256();
    case LG_JWT_ALG_RS384: case LG_JWT_ALG_PS384: case LG_JWT_ALG_ES384: case LG_JWT_ALG_HS384:
        return EVP_sha384();
    case LG_JWT_ALG_RS512: case LG_JWT_ALG_PS512: case LG_JWT_ALG_ES512: case LG_JWT_ALG_HS512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

static int digest_verify(EVP_PKEY *pkey, const EVP_MD *md, int pss, const unsigned char *sig, size_t sig_len,
                         h2o_iovec_t data)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = 0;
    if (ctx == NULL)
        goto Exit;
    if (EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey) != 1)
        goto Exit;
    if (pss && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        goto Exit;
    ok = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)data.base, data.len) == 1;
Exit:
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* JOSE ECDSA signatures are r || s, each exactly the curve's size (RFC 7518 §3.4); OpenSSL wants DER. */
static int ecdsa_verify(const lg_jwk_t *key, const lg_jwt_t *jwt)
{
    size_t half = (size_t)(key->ec_bits + 7) / 8;
    if (jwt->signature_len != 2 * half)
        return 0;
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(jwt->signature, (int)half, NULL), *s = BN_bin2bn(jwt->signature + half, (int)half, NULL);
    unsigned char *der = NULL;
    int ok = 0, der_len;
    if (sig == NULL || r == NULL || s == NULL) {
        BN_free(r);
        BN_free(s);
        goto Exit;
    }
    ECDSA_SIG_set0(sig, r, s); /* sig owns r and s from here */
    if ((der_len = i2d_ECDSA_SIG(sig, &der)) <= 0)
        goto Exit;
    ok = digest_verify(key->pkey, alg_md(jwt->alg), 0, der, (size_t)der_len, jwt->signed_part);
Exit:
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    return ok;
}

static int hmac_verify(const lg_jwk_t *key, const lg_jwt_t *jwt)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(alg_md(jwt->alg), key->secret, (int)key->secret_len, (const unsigned char *)jwt->signed_part.base,
             jwt->signed_part.len, mac, &mac_len) == NULL)
        return 0;
    return mac_len == jwt->signature_len && CRYPTO_memcmp(mac, jwt->signature, mac_len) == 0;
}

/* 1 when the key's family runs the token's algorithm (and an EC key's curve matches ESnnn). */
static int key_fits_alg(const lg_jwk_t *key, lg_jwt_alg_t alg)
{
    switch (key->kty) {
    case LG_JWK_RSA:
        return alg >= LG_JWT_ALG_RS256 && alg <= LG_JWT_ALG_PS512;
    case LG_JWK_EC:
        return (alg == LG_JWT_ALG_ES256 && key->ec_bits == 256) || (alg == LG_JWT_ALG_ES384 && key->ec_bits == 384) ||
               (alg == LG_JWT_ALG_ES512 && key->ec_bits == 521);
    case LG_JWK_OCT:
        return alg >= LG_JWT_ALG_HS256 && alg <= LG_JWT_ALG_HS512;
    case LG_JWK_OKP:
        return alg == LG_JWT_ALG_EDDSA;
    }
    return 0;
}

static int verify_with(const lg_jwk_t *key, const lg_jwt_t *jwt)
{
    switch (key->kty) {
    case LG_JWK_RSA:
        return digest_verify(key->pkey, alg_md(jwt->alg), jwt->alg >= LG_JWT_ALG_PS256, jwt->signature,
                             jwt->signature_len, jwt->signed_part);
    case LG_JWK_EC:
        return ecdsa_verify(key, jwt);
    case LG_JWK_OCT:
        return hmac_verify(key, jwt);
    case LG_JWK_OKP:
        return digest_verify(key->pkey, NULL, 0, jwt->signature, jwt->signature_len, jwt->signed_part);
    }
    return 0;
}

lg_jwt_status_t lg_jwt_verify(const lg_jwt_t *jwt, const lg_jwks_t *jwks)
{
    if (jwt->alg == LG_JWT_ALG_EDDSA && jwt->signature_len != 64)
        return LG_JWT_JWT_ED25519_SIGNATURE_WRONG_LENGTH;
    int candidate = 0;
    for (size_t i = 0; i < jwks->n_keys; ++i) {
        const lg_jwk_t *key = &jwks->keys[i];
        if (jwt->kid != NULL && key->kid != NULL && strcmp(jwt->kid, key->kid) != 0)
            continue;
        if (key->alg != NULL && strcmp(key->alg, alg_name(jwt->alg)) != 0)
            continue;
        candidate = 1;
        if (key_fits_alg(key, jwt->alg) && verify_with(key, jwt))
            return LG_JWT_OK;
    }
    return candidate ? LG_JWT_JWT_VERIFICATION_FAIL : LG_JWT_JWKS_KID_ALG_MISMATCH;
}
