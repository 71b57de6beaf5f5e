/*
 * JSON Web Key Sets (RFC 7517) into OpenSSL 3 keys: RSA (n, e), EC (crv P-256/384/521, x, y), oct
 * (k, an HMAC secret) and OKP (Ed25519, x), with google/jwt_verify_lib's rules and status texts for
 * what a key may and must carry. A key keeps its kty, which later decides the only algorithms it may
 * verify. Built once on the main thread; the keys are then read-only and shared by every worker
 * (OpenSSL allows concurrent verification with one EVP_PKEY).
 *
 * Not for: fetching key sets (jwks_cache.c does, with this parser), X.509 or PEM keys.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "filters/jwt_authn/jwt_authn.h"

/* A required string member: OK, `missing` when absent, `bad` when not a string. */
static lg_jwt_status_t get_string(json_t *key, const char *name, const char **out, lg_jwt_status_t missing,
                                  lg_jwt_status_t bad)
{
    json_t *v = json_object_get(key, name);
    if (v == NULL)
        return missing;
    if (!json_is_string(v))
        return bad;
    *out = json_string_value(v);
    return LG_JWT_OK;
}

static BIGNUM *b64url_bn(const char *s)
{
    size_t n;
    unsigned char *raw = lg_jwt_b64url_decode(s, strlen(s), &n);
    if (raw == NULL || n == 0) {
        free(raw);
        return NULL;
    }
    BIGNUM *bn = BN_bin2bn(raw, (int)n, NULL);
    free(raw);
    return bn;
}

/* EVP_PKEY_fromdata over a parameter list built by the caller. */
static EVP_PKEY *pkey_from(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static lg_jwt_status_t rsa_key(lg_jwk_t *k, json_t *key)
{
    const char *n_s, *e_s;
    lg_jwt_status_t st;
    if (k->alg != NULL && strncmp(k->alg, "RS", 2) != 0 && strncmp(k->alg, "PS", 2) != 0)
        return LG_JWT_JWKS_RSA_KEY_BAD_ALG;
    if ((st = get_string(key, "n", &n_s, LG_JWT_JWKS_RSA_KEY_MISSING_N, LG_JWT_JWKS_RSA_KEY_BAD_N)) != LG_JWT_OK ||
        (st = get_string(key, "e", &e_s, LG_JWT_JWKS_RSA_KEY_MISSING_E, LG_JWT_JWKS_RSA_KEY_BAD_E)) != LG_JWT_OK)
        return st;
    BIGNUM *n = b64url_bn(n_s), *e = b64url_bn(e_s);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    st = LG_JWT_JWKS_RSA_PARSE_ERROR;
    if (n != NULL && e != NULL && bld != NULL && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) && (k->pkey = pkey_from("RSA", bld)) != NULL)
        st = LG_JWT_OK;
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return st;
}

static const struct {
    const char *crv, *alg, *group;
    int bits;
} ec_curves[] = {
    {"P-256", "ES256", "prime256v1", 256},
    {"P-384", "ES384", "secp384r1", 384},
    {"P-521", "ES512", "secp521r1", 521},
};

/* Left-pads a decoded coordinate to the field size; 0 when it is longer. */
static int put_coordinate(unsigned char *dst, size_t size, const char *b64)
{
    size_t n;
    unsigned char *raw = lg_jwt_b64url_decode(b64, strlen(b64), &n);
    if (raw == NULL || n == 0 || n > size) {
        free(raw);
        return 0;
    }
    memset(dst, 0, size - n);
    memcpy(dst + size - n, raw, n);
    free(raw);
    return 1;
}

static lg_jwt_status_t ec_key(lg_jwk_t *k, json_t *key)
{
    const size_t n_curves = sizeof(ec_curves) / sizeof(ec_curves[0]);
    size_t c = n_curves;
    json_t *crv = json_object_get(key, "crv");
    if (k->alg != NULL && strncmp(k->alg, "ES", 2) != 0)
        return LG_JWT_JWKS_EC_KEY_BAD_ALG;
    if (crv != NULL) {
        if (!json_is_string(crv))
            return LG_JWT_JWKS_EC_KEY_BAD_CRV;
        for (c = 0; c < n_curves && strcmp(ec_curves[c].crv, json_string_value(crv)) != 0; ++c)
            ;
        if (c == n_curves)
            return LG_JWT_JWKS_EC_KEY_ALG_OR_CRV_UNSUPPORTED;
        if (k->alg != NULL && strcmp(k->alg, ec_curves[c].alg) != 0)
            return LG_JWT_JWKS_EC_KEY_ALG_NOT_COMPATIBLE_WITH_CRV;
    } else if (k->alg != NULL) {
        for (c = 0; c < n_curves && strcmp(ec_curves[c].alg, k->alg) != 0; ++c)
            ;
    }
    if (c == n_curves)
        return LG_JWT_JWKS_EC_KEY_ALG_OR_CRV_UNSUPPORTED;
    const char *x, *y;
    lg_jwt_status_t st;
    if ((st = get_string(key, "x", &x, LG_JWT_JWKS_EC_KEY_MISSING_X, LG_JWT_JWKS_EC_KEY_BAD_X)) != LG_JWT_OK ||
        (st = get_string(key, "y", &y, LG_JWT_JWKS_EC_KEY_MISSING_Y, LG_JWT_JWKS_EC_KEY_BAD_Y)) != LG_JWT_OK)
        return st;
    size_t size = (size_t)(ec_curves[c].bits + 7) / 8;
    unsigned char point[1 + 2 * 66];
    point[0] = 0x04; /* uncompressed */
    if (!put_coordinate(point + 1, size, x) || !put_coordinate(point + 1 + size, size, y))
        return LG_JWT_JWKS_EC_X_OR_Y_BAD_BASE64;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    st = LG_JWT_JWKS_EC_CREATE_KEY_FAIL;
    if (bld != NULL && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, ec_curves[c].group, 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * size) &&
        (k->pkey = pkey_from("EC", bld)) != NULL) {
        /* A point off the curve is refused here, not discovered at the first token. */
        EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
        if (chk != NULL && EVP_PKEY_public_check(chk) == 1) {
            k->ec_bits = ec_curves[c].bits;
            st = LG_JWT_OK;
        }
        EVP_PKEY_CTX_free(chk);
    }
    OSSL_PARAM_BLD_free(bld);
    return st;
}

static lg_jwt_status_t oct_key(lg_jwk_t *k, json_t *key)
{
    const char *ks;
    lg_jwt_status_t st;
    if (k->alg != NULL && strncmp(k->alg, "HS", 2) != 0)
        return LG_JWT_JWKS_HMAC_KEY_BAD_ALG;
    if ((st = get_string(key, "k", &ks, LG_JWT_JWKS_HMAC_KEY_MISSING_K, LG_JWT_JWKS_HMAC_KEY_BAD_K)) != LG_JWT_OK)
        return st;
    if ((k->secret = lg_jwt_b64url_decode(ks, strlen(ks), &k->secret_len)) == NULL || k->secret_len == 0)
        return LG_JWT_JWKS_OCT_BAD_BASE64;
    return LG_JWT_OK;
}

static lg_jwt_status_t okp_key(lg_jwk_t *k, json_t *key)
{
    const char *crv, *x;
    lg_jwt_status_t st;
    if (k->alg != NULL && strcmp(k->alg, "EdDSA") != 0)
        return LG_JWT_JWKS_OKP_KEY_BAD_ALG;
    if ((st = get_string(key, "crv", &crv, LG_JWT_JWKS_OKP_KEY_MISSING_CRV, LG_JWT_JWKS_OKP_KEY_BAD_CRV)) != LG_JWT_OK)
        return st;
    if (strcmp(crv, "Ed25519") != 0)
        return LG_JWT_JWKS_OKP_KEY_CRV_UNSUPPORTED;
    if ((st = get_string(key, "x", &x, LG_JWT_JWKS_OKP_KEY_MISSING_X, LG_JWT_JWKS_OKP_KEY_BAD_X)) != LG_JWT_OK)
        return st;
    size_t n;
    unsigned char *raw = lg_jwt_b64url_decode(x, strlen(x), &n);
    if (raw == NULL)
        return LG_JWT_JWKS_OKP_X_BAD_BASE64;
    st = LG_JWT_JWKS_OKP_X_WRONG_LENGTH;
    if (n == 32 && (k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, n)) != NULL)
        st = LG_JWT_OK;
    free(raw);
    return st;
}

static lg_jwt_status_t parse_key(lg_jwk_t *k, json_t *key)
{
    if (!json_is_object(key))
        return LG_JWT_JWKS_BAD_KEYS;
    json_t *kty = json_object_get(key, "kty"), *kid = json_object_get(key, "kid"), *alg = json_object_get(key, "alg");
    if (kty == NULL)
        return LG_JWT_JWKS_MISSING_KTY;
    if (!json_is_string(kty))
        return LG_JWT_JWKS_BAD_KTY;
    /* jwt_verify_lib ignores a kid or alg that is not a string; so does legate. */
    if (json_is_string(kid) && (k->kid = strdup(json_string_value(kid))) == NULL)
        return LG_JWT_JWKS_PARSE_ERROR;
    if (json_is_string(alg) && (k->alg = strdup(json_string_value(alg))) == NULL)
        return LG_JWT_JWKS_PARSE_ERROR;
    const char *t = json_string_value(kty);
    if (strcmp(t, "RSA") == 0)
        return k->kty = LG_JWK_RSA, rsa_key(k, key);
    if (strcmp(t, "EC") == 0)
        return k->kty = LG_JWK_EC, ec_key(k, key);
    if (strcmp(t, "oct") == 0)
        return k->kty = LG_JWK_OCT, oct_key(k, key);
    if (strcmp(t, "OKP") == 0)
        return k->kty = LG_JWK_OKP, okp_key(k, key);
    return LG_JWT_JWKS_NOT_IMPLEMENTED_KTY;
}

static void jwk_dispose(lg_jwk_t *k)
{
    free(k->kid);
    free(k->alg);
    EVP_PKEY_free(k->pkey);
    if (k->secret != NULL)
        OPENSSL_clear_free(k->secret, k->secret_len);
}

lg_jwt_status_t lg_jwks_parse(lg_jwks_t *jwks, const char *json, size_t len, long *bad_key)
{
    *bad_key = -1;
    json_t *doc = json_loadb(json, len, 0, NULL);
    lg_jwt_status_t st = LG_JWT_OK;
    json_t *keys;
    if (doc == NULL || !json_is_object(doc)) {
        st = LG_JWT_JWKS_PARSE_ERROR;
        goto Exit;
    }
    if ((keys = json_object_get(doc, "keys")) == NULL) {
        st = LG_JWT_JWKS_NO_KEYS;
        goto Exit;
    }
    if (!json_is_array(keys)) {
        st = LG_JWT_JWKS_BAD_KEYS;
        goto Exit;
    }
    size_t n = json_array_size(keys);
    if ((jwks->keys = calloc(n != 0 ? n : 1, sizeof(*jwks->keys))) == NULL) {
        st = LG_JWT_JWKS_PARSE_ERROR;
        goto Exit;
    }
    for (size_t i = 0; i < n; ++i) {
        lg_jwk_t *k = &jwks->keys[jwks->n_keys++];
        if ((st = parse_key(k, json_array_get(keys, i))) != LG_JWT_OK) {
            *bad_key = (long)i;
            goto Exit;
        }
    }
    if (jwks->n_keys == 0)
        st = LG_JWT_JWKS_NO_VALID_KEYS;
Exit:
    ERR_clear_error();
    json_decref(doc);
    if (st != LG_JWT_OK)
        lg_jwks_dispose(jwks);
    return st;
}

void lg_jwks_dispose(lg_jwks_t *jwks)
{
    for (size_t i = 0; i < jwks->n_keys; ++i)
        jwk_dispose(&jwks->keys[i]);
    free(jwks->keys);
    jwks->keys = NULL;
    jwks->n_keys = 0;
}
