/*
 * Unit tests of token parsing and signature verification (filters/jwt_authn/jwt.c): every algorithm
 * against freshly generated keys, the key selection rules (kid, alg, key type), the algorithm
 * confusion and malleability cases of RFC 8725 (HS256 keyed with an RSA public key, ECDSA in DER,
 * r = s = 0), and each parse failure with jwt_verify_lib's status.
 */
#include <stdlib.h>
#include <string.h>

#include "filters/jwt_authn/jwt_authn.h"
#include "jwt_authn/jwt_test_keys.h"
#include "lg_test.h"

static const unsigned char secret[] = "0123456789abcdef0123456789abcdef";
static const char payload[] = "{\"iss\":\"https://i.example\",\"sub\":\"s\",\"aud\":[\"a\",\"b\"],\"exp\":2000000000}";

static lg_jwt_status_t verify(const char *token, const char *jwks_json)
{
    lg_jwks_t jwks = {.keys = NULL};
    long bad;
    lg_jwt_t jwt;
    memset(&jwt, 0, sizeof(jwt));
    lg_jwt_status_t st = lg_jwks_parse(&jwks, jwks_json, strlen(jwks_json), &bad);
    if (st == LG_JWT_OK && (st = lg_jwt_parse(&jwt, token, strlen(token))) == LG_JWT_OK)
        st = lg_jwt_verify(&jwt, &jwks);
    lg_jwt_dispose(&jwt);
    lg_jwks_dispose(&jwks);
    return st;
}

static lg_jwt_status_t parse_only(const char *token)
{
    lg_jwt_t jwt;
    memset(&jwt, 0, sizeof(jwt));
    lg_jwt_status_t st = lg_jwt_parse(&jwt, token, strlen(token));
    lg_jwt_dispose(&jwt);
    return st;
}

static char *keys1(const char *jwk)
{
    char *d = malloc(strlen(jwk) + 16);
    sprintf(d, "{\"keys\":[%s]}", jwk);
    return d;
}

static void check_alg(const char *alg, EVP_PKEY *key, const char *jwks)
{
    char header[64];
    snprintf(header, sizeof(header), "{\"alg\":\"%s\"}", alg);
    char *t = tk_token(header, payload, alg, key, secret, sizeof(secret) - 1);
    LG_EXPECT_INT(verify(t, jwks), LG_JWT_OK);
    /* One flipped bit anywhere in the signed part breaks it. */
    t[strlen(header) / 2] ^= 1;
    LG_EXPECT(verify(t, jwks) != LG_JWT_OK);
    free(t);
}

LG_TEST(test_every_algorithm)
{
    EVP_PKEY *r = tk_rsa(), *e256 = tk_ec("P-256"), *e384 = tk_ec("P-384"), *e521 = tk_ec("P-521"), *ed = tk_ed25519();
    char *jr = tk_jwk(r, NULL, NULL), *j256 = tk_jwk(e256, NULL, NULL), *j384 = tk_jwk(e384, NULL, NULL),
         *j521 = tk_jwk(e521, NULL, NULL), *jd = tk_jwk(ed, NULL, NULL);
    char doc[16384], *hs = keys1("{\"kty\":\"oct\",\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}");
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s,%s,%s]}", jr, j256, j384, j521, jd);
    const char *rsa_algs[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"};
    for (size_t i = 0; i < 6; ++i)
        check_alg(rsa_algs[i], r, doc);
    check_alg("ES256", e256, doc);
    check_alg("ES384", e384, doc);
    check_alg("ES512", e521, doc);
    check_alg("EdDSA", ed, doc);
    check_alg("HS256", NULL, hs);
    check_alg("HS384", NULL, hs);
    check_alg("HS512", NULL, hs);
    free(jr), free(j256), free(j384), free(j521), free(jd), free(hs);
    EVP_PKEY_free(r), EVP_PKEY_free(e256), EVP_PKEY_free(e384), EVP_PKEY_free(e521), EVP_PKEY_free(ed);
}

/* A token with `header`, signed by `key` as `alg`, verified against `doc`. */
static lg_jwt_status_t sign_and_verify(const char *header, const char *alg, EVP_PKEY *key, const char *doc)
{
    char *t = tk_token(header, payload, alg, key, NULL, 0);
    lg_jwt_status_t st = verify(t, doc);
    free(t);
    return st;
}

LG_TEST(test_kid_and_alg_select_keys)
{
    EVP_PKEY *a = tk_rsa(), *b = tk_rsa();
    char *ja = tk_jwk(a, "a", "RS256"), *jb = tk_jwk(b, "b", NULL), doc[8192];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", ja, jb);
    LG_EXPECT_INT(sign_and_verify("{\"alg\":\"RS256\",\"kid\":\"b\"}", "RS256", b, doc), LG_JWT_OK);
    LG_EXPECT_INT(sign_and_verify("{\"alg\":\"RS256\",\"kid\":\"c\"}", "RS256", b, doc), LG_JWT_JWKS_KID_ALG_MISMATCH);
    /* kid "a" names key a, which the token was not signed with: a candidate that fails. */
    LG_EXPECT_INT(sign_and_verify("{\"alg\":\"RS256\",\"kid\":\"a\"}", "RS256", b, doc), LG_JWT_JWT_VERIFICATION_FAIL);
    /* No kid in the token: every key is tried. */
    LG_EXPECT_INT(sign_and_verify("{\"alg\":\"RS256\"}", "RS256", b, doc), LG_JWT_OK);
    /* Key a says RS256 only: a PS256 token with kid a has no candidate. */
    LG_EXPECT_INT(sign_and_verify("{\"alg\":\"PS256\",\"kid\":\"a\"}", "PS256", a, doc), LG_JWT_JWKS_KID_ALG_MISMATCH);
    free(ja), free(jb);
    EVP_PKEY_free(a), EVP_PKEY_free(b);
}

LG_TEST(test_algorithm_confusion)
{
    EVP_PKEY *r = tk_rsa(), *e = tk_ec("P-256");
    char *jr = tk_jwk(r, NULL, NULL), *doc = keys1(jr);
    /* HS256 keyed with the RSA public key (DER and n): the RSA JWK never runs HMAC. */
    unsigned char *der = NULL;
    int der_len = i2d_PUBKEY(r, &der);
    char *t = tk_token("{\"alg\":\"HS256\"}", payload, "HS256", NULL, der, (size_t)der_len);
    LG_EXPECT_INT(verify(t, doc), LG_JWT_JWT_VERIFICATION_FAIL);
    free(t);
    OPENSSL_free(der);
    BIGNUM *n = NULL;
    EVP_PKEY_get_bn_param(r, OSSL_PKEY_PARAM_RSA_N, &n);
    unsigned char nb[256];
    BN_bn2binpad(n, nb, sizeof(nb));
    t = tk_token("{\"alg\":\"HS256\"}", payload, "HS256", NULL, nb, sizeof(nb));
    LG_EXPECT_INT(verify(t, doc), LG_JWT_JWT_VERIFICATION_FAIL);
    free(t);
    BN_free(n);
    /* An oct key never runs RS256, and a P-256 key never runs ES384. */
    char *hs = keys1("{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}");
    LG_EXPECT_INT(sign_and_verify("{\"alg\":\"RS256\"}", "RS256", r, hs), LG_JWT_JWT_VERIFICATION_FAIL);
    char *je = tk_jwk(e, NULL, NULL), *edoc = keys1(je);
    t = tk_token("{\"alg\":\"ES256\"}", payload, "ES256", e, NULL, 0);
    LG_EXPECT_INT(verify(t, edoc), LG_JWT_OK);
    char *dot = strrchr(t, '.');
    char *forged = malloc(strlen(t) + 8);
    /* the same signature claimed as ES384 */
    char *h = tk_b64url("{\"alg\":\"ES384\"}", 15);
    sprintf(forged, "%s%s", h, strchr(t, '.'));
    LG_EXPECT_INT(verify(forged, edoc), LG_JWT_JWT_VERIFICATION_FAIL);
    free(h), free(forged);
    /* r = s = 0 (CVE-2022-21449) and a DER signature instead of r || s */
    char *z = tk_b64url("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
                        "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
                        64);
    char *zt = malloc(strlen(t) + strlen(z) + 2);
    sprintf(zt, "%.*s.%s", (int)(dot - t), t, z);
    LG_EXPECT_INT(verify(zt, edoc), LG_JWT_JWT_VERIFICATION_FAIL);
    free(z), free(zt);
    free(t);
    free(jr), free(doc), free(hs), free(je), free(edoc);
    EVP_PKEY_free(r), EVP_PKEY_free(e);
}

LG_TEST(test_eddsa_signature_length)
{
    EVP_PKEY *ed = tk_ed25519();
    char *jd = tk_jwk(ed, NULL, NULL), *doc = keys1(jd);
    char *h = tk_b64url("{\"alg\":\"EdDSA\"}", 15), *p = tk_b64url(payload, strlen(payload)), *s = tk_b64url("short", 5);
    char t[1024];
    snprintf(t, sizeof(t), "%s.%s.%s", h, p, s);
    LG_EXPECT_INT(verify(t, doc), LG_JWT_JWT_ED25519_SIGNATURE_WRONG_LENGTH);
    free(h), free(p), free(s), free(jd), free(doc);
    EVP_PKEY_free(ed);
}

static char *raw_token(const char *header, const char *body, const char *sig)
{
    char *h = tk_b64url(header, strlen(header)), *p = tk_b64url(body, strlen(body));
    char *t = malloc(strlen(h) + strlen(p) + strlen(sig) + 3);
    sprintf(t, "%s.%s.%s", h, p, sig);
    free(h), free(p);
    return t;
}

static lg_jwt_status_t parse_raw(const char *header, const char *body, const char *sig)
{
    char *t = raw_token(header, body, sig);
    lg_jwt_status_t st = parse_only(t);
    free(t);
    return st;
}

/* Raw tokens, and token parts (header JSON, payload JSON, signature as sent), with the status
 * each parses to. */
static const struct {
    const char *token;
    lg_jwt_status_t status;
} bad_tokens[] = {
    {"", LG_JWT_JWT_BAD_FORMAT},
    {"a.b", LG_JWT_JWT_BAD_FORMAT},
    {"a.b.c.d", LG_JWT_JWT_BAD_FORMAT},
    {"...", LG_JWT_JWT_BAD_FORMAT},
    {"!.e30.c2ln", LG_JWT_JWT_HEADER_BAD_BASE64},
    {".e30.c2ln", LG_JWT_JWT_HEADER_BAD_JSON},
    {"eyJhbGciOiJSUzI1NiJ9.!.c2ln", LG_JWT_JWT_PAYLOAD_BAD_BASE64},
};

static const struct {
    const char *header, *payload, *signature;
    lg_jwt_status_t status;
} bad_parts[] = {
    {"[]", "{}", "c2ln", LG_JWT_JWT_HEADER_BAD_JSON},
    {"{\"alg\":\"RS256\",\"alg\":\"none\"}", "{}", "c2ln", LG_JWT_JWT_HEADER_BAD_JSON},
    {"{}", "{}", "c2ln", LG_JWT_JWT_HEADER_BAD_ALG},
    {"{\"alg\":null}", "{}", "c2ln", LG_JWT_JWT_HEADER_BAD_ALG},
    {"{\"alg\":\"RS256\",\"kid\":1}", "{}", "c2ln", LG_JWT_JWT_HEADER_BAD_KID},
    {"{\"alg\":\"RS256\"}", "nope", "c2ln", LG_JWT_JWT_PAYLOAD_BAD_JSON},
    {"{\"alg\":\"RS256\"}", "{\"iss\":1}", "c2ln", LG_JWT_JWT_PAYLOAD_ISS_NOT_STRING},
    {"{\"alg\":\"RS256\"}", "{\"sub\":[]}", "c2ln", LG_JWT_JWT_PAYLOAD_SUB_NOT_STRING},
    {"{\"alg\":\"RS256\"}", "{\"exp\":\"1\"}", "c2ln", LG_JWT_JWT_PAYLOAD_EXP_NOT_INTEGER},
    {"{\"alg\":\"RS256\"}", "{\"exp\":-1}", "c2ln", LG_JWT_JWT_PAYLOAD_EXP_OUT_OF_RANGE},
    {"{\"alg\":\"RS256\"}", "{\"nbf\":1e300}", "c2ln", LG_JWT_JWT_PAYLOAD_NBF_OUT_OF_RANGE},
    {"{\"alg\":\"RS256\"}", "{\"iat\":true}", "c2ln", LG_JWT_JWT_PAYLOAD_IAT_NOT_INTEGER},
    {"{\"alg\":\"RS256\"}", "{\"jti\":5}", "c2ln", LG_JWT_JWT_PAYLOAD_JTI_NOT_STRING},
    {"{\"alg\":\"RS256\"}", "{\"aud\":[\"a\",1]}", "c2ln", LG_JWT_JWT_PAYLOAD_AUD_NOT_STRING},
    {"{\"alg\":\"RS256\"}", "{\"aud\":{}}", "c2ln", LG_JWT_JWT_PAYLOAD_AUD_NOT_STRING},
    {"{\"alg\":\"RS256\"}", "{}", "c2ln==", LG_JWT_JWT_SIGNATURE_BAD_BASE64},
    {"{\"alg\":\"RS256\"}", "{}", "c2l+", LG_JWT_JWT_SIGNATURE_BAD_BASE64},
    {"{\"alg\":\"RS256\"}", "{\"aud\":\"a\",\"exp\":1.5}", "", LG_JWT_OK},
};

LG_TEST(test_parse_failures)
{
    for (size_t i = 0; i < sizeof(bad_tokens) / sizeof(bad_tokens[0]); ++i) {
        if (parse_only(bad_tokens[i].token) != bad_tokens[i].status)
            fprintf(stderr, "bad_tokens[%zu]\n", i);
        LG_EXPECT_INT(parse_only(bad_tokens[i].token), bad_tokens[i].status);
    }
    for (size_t i = 0; i < sizeof(bad_parts) / sizeof(bad_parts[0]); ++i) {
        if (parse_raw(bad_parts[i].header, bad_parts[i].payload, bad_parts[i].signature) != bad_parts[i].status)
            fprintf(stderr, "bad_parts[%zu]\n", i);
        LG_EXPECT_INT(parse_raw(bad_parts[i].header, bad_parts[i].payload, bad_parts[i].signature), bad_parts[i].status);
    }
    /* alg none in every spelling, and names jwt_verify_lib does not implement */
    const char *nones[] = {"none", "None", "NONE", "nOnE", "rs256", "ES256K", ""};
    for (size_t i = 0; i < sizeof(nones) / sizeof(nones[0]); ++i) {
        char h[64];
        snprintf(h, sizeof(h), "{\"alg\":\"%s\"}", nones[i]);
        LG_EXPECT_INT(parse_raw(h, "{}", ""), LG_JWT_JWT_HEADER_NOT_IMPLEMENTED_ALG);
    }
}

LG_TEST(test_time_constraints)
{
    lg_jwt_t jwt;
    memset(&jwt, 0, sizeof(jwt));
    jwt.exp = 1000;
    LG_EXPECT_INT(lg_jwt_check_time(&jwt, 1060, 60), LG_JWT_OK);
    LG_EXPECT_INT(lg_jwt_check_time(&jwt, 1061, 60), LG_JWT_JWT_EXPIRED);
    jwt.exp = 0;
    jwt.nbf = 1000;
    LG_EXPECT_INT(lg_jwt_check_time(&jwt, 940, 60), LG_JWT_OK);
    LG_EXPECT_INT(lg_jwt_check_time(&jwt, 939, 60), LG_JWT_JWT_NOT_YET_VALID);
    jwt.nbf = INT64_MAX;
    LG_EXPECT_INT(lg_jwt_check_time(&jwt, 2000000000, 60), LG_JWT_JWT_NOT_YET_VALID);
    jwt.nbf = 0;
    jwt.exp = INT64_MAX; /* exp + skew must not wrap into the past */
    LG_EXPECT_INT(lg_jwt_check_time(&jwt, 2000000000, UINT32_MAX), LG_JWT_OK);
    LG_EXPECT_STR(lg_jwt_status_text(LG_JWT_JWT_EXPIRED), "Jwt is expired");
    LG_EXPECT_STR(lg_jwt_status_text(LG_JWT_JWT_AUDIENCE_NOT_ALLOWED), "Audiences in Jwt are not allowed");
}

int main(void)
{
    LG_RUN(test_every_algorithm);
    LG_RUN(test_kid_and_alg_select_keys);
    LG_RUN(test_algorithm_confusion);
    LG_RUN(test_eddsa_signature_length);
    LG_RUN(test_parse_failures);
    LG_RUN(test_time_constraints);
    return LG_TEST_END();
}
