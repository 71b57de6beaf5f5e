/*
 * Unit tests of JWKS parsing (filters/jwt_authn/jwks.c) and the strict base64url decoder: each key
 * type is accepted with what it must carry, and every malformed key is refused with
 * jwt_verify_lib's status (the text Envoy prints), naming the key that failed.
 */
#include <stdlib.h>
#include <string.h>

#include "filters/jwt_authn/jwt_authn.h"
#include "jwt_authn/jwt_test_keys.h"
#include "lg_test.h"

static lg_jwt_status_t parse(const char *doc, long *bad)
{
    lg_jwks_t jwks = {.keys = NULL};
    long b;
    lg_jwt_status_t st = lg_jwks_parse(&jwks, doc, strlen(doc), &b);
    if (bad != NULL)
        *bad = b;
    lg_jwks_dispose(&jwks);
    return st;
}

LG_TEST(test_b64url_is_strict)
{
    size_t n;
    unsigned char *d = lg_jwt_b64url_decode("aGVsbG8", 7, &n);
    LG_EXPECT(d != NULL && n == 5 && memcmp(d, "hello", 5) == 0);
    free(d);
    d = lg_jwt_b64url_decode("-_-_", 4, &n);
    LG_EXPECT(d != NULL && n == 3 && d[0] == 0xfb && d[1] == 0xff && d[2] == 0xbf);
    free(d);
    d = lg_jwt_b64url_decode("", 0, &n);
    LG_EXPECT(d != NULL && n == 0);
    free(d);
    LG_EXPECT(lg_jwt_b64url_decode("aGVsbG8=", 8, &n) == NULL); /* padding */
    LG_EXPECT(lg_jwt_b64url_decode("+/+/", 4, &n) == NULL);     /* the standard alphabet */
    LG_EXPECT(lg_jwt_b64url_decode("aGVsb", 5, &n) == NULL);    /* a lone trailing character */
    LG_EXPECT(lg_jwt_b64url_decode("aG Vs", 5, &n) == NULL);
    LG_EXPECT(lg_jwt_b64url_decode("aG\0s", 4, &n) == NULL);
}

LG_TEST(test_every_key_type)
{
    EVP_PKEY *r = tk_rsa(), *e256 = tk_ec("P-256"), *e521 = tk_ec("P-521"), *ed = tk_ed25519();
    char *jr = tk_jwk(r, "r1", "RS256"), *je = tk_jwk(e256, "e1", NULL), *je5 = tk_jwk(e521, NULL, "ES512"),
         *jd = tk_jwk(ed, "d1", "EdDSA");
    char doc[16384];
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s,%s,{\"kty\":\"oct\",\"k\":\"c2VjcmV0\",\"kid\":\"h1\"}]}", jr, je,
             je5, jd);
    lg_jwks_t jwks = {.keys = NULL};
    long bad;
    LG_EXPECT_INT(lg_jwks_parse(&jwks, doc, strlen(doc), &bad), LG_JWT_OK);
    LG_EXPECT_INT(jwks.n_keys, 5);
    if (jwks.n_keys == 5) {
        LG_EXPECT_INT(jwks.keys[0].kty, LG_JWK_RSA);
        LG_EXPECT_STR(jwks.keys[0].kid, "r1");
        LG_EXPECT_STR(jwks.keys[0].alg, "RS256");
        LG_EXPECT_INT(jwks.keys[1].kty, LG_JWK_EC);
        LG_EXPECT_INT(jwks.keys[1].ec_bits, 256);
        LG_EXPECT(jwks.keys[1].alg == NULL);
        LG_EXPECT_INT(jwks.keys[2].ec_bits, 521);
        LG_EXPECT(jwks.keys[2].kid == NULL);
        LG_EXPECT_INT(jwks.keys[3].kty, LG_JWK_OKP);
        LG_EXPECT_INT(jwks.keys[4].kty, LG_JWK_OCT);
        LG_EXPECT_INT(jwks.keys[4].secret_len, 6);
    }
    lg_jwks_dispose(&jwks);
    free(jr), free(je), free(je5), free(jd);
    EVP_PKEY_free(r), EVP_PKEY_free(e256), EVP_PKEY_free(e521), EVP_PKEY_free(ed);
}

LG_TEST(test_document_errors)
{
    LG_EXPECT_INT(parse("not json", NULL), LG_JWT_JWKS_PARSE_ERROR);
    LG_EXPECT_INT(parse("[1]", NULL), LG_JWT_JWKS_PARSE_ERROR);
    LG_EXPECT_INT(parse("{}", NULL), LG_JWT_JWKS_NO_KEYS);
    LG_EXPECT_INT(parse("{\"keys\":{}}", NULL), LG_JWT_JWKS_BAD_KEYS);
    LG_EXPECT_INT(parse("{\"keys\":[]}", NULL), LG_JWT_JWKS_NO_VALID_KEYS);
    LG_EXPECT_INT(parse("{\"keys\":[1]}", NULL), LG_JWT_JWKS_BAD_KEYS);
    LG_EXPECT_INT(parse("{\"keys\":[{}]}", NULL), LG_JWT_JWKS_MISSING_KTY);
    LG_EXPECT_INT(parse("{\"keys\":[{\"kty\":1}]}", NULL), LG_JWT_JWKS_BAD_KTY);
    LG_EXPECT_INT(parse("{\"keys\":[{\"kty\":\"XYZ\"}]}", NULL), LG_JWT_JWKS_NOT_IMPLEMENTED_KTY);
    LG_EXPECT_STR(lg_jwt_status_text(LG_JWT_JWKS_NO_VALID_KEYS), "Jwks doesn't have any valid public key");
}

/* One malformed key each, and the status jwt_verify_lib gives it. (0, 0) is not on the curve:
 * refused at load, not at the first token. */
static const struct {
    const char *doc;
    lg_jwt_status_t status;
} key_errors[] = {
    {"{\"keys\":[{\"kty\":\"RSA\",\"n\":1,\"e\":\"AQAB\"}]}", LG_JWT_JWKS_RSA_KEY_BAD_N},
    {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\"}]}", LG_JWT_JWKS_RSA_KEY_MISSING_E},
    {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}]}", LG_JWT_JWKS_RSA_PARSE_ERROR},
    {"{\"keys\":[{\"kty\":\"RSA\",\"alg\":\"HS256\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", LG_JWT_JWKS_RSA_KEY_BAD_ALG},
    {"{\"keys\":[{\"kty\":\"EC\",\"alg\":\"RS256\"}]}", LG_JWT_JWKS_EC_KEY_BAD_ALG},
    {"{\"keys\":[{\"kty\":\"EC\",\"crv\":7}]}", LG_JWT_JWKS_EC_KEY_BAD_CRV},
    {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-999\"}]}", LG_JWT_JWKS_EC_KEY_ALG_OR_CRV_UNSUPPORTED},
    {"{\"keys\":[{\"kty\":\"EC\"}]}", LG_JWT_JWKS_EC_KEY_ALG_OR_CRV_UNSUPPORTED},
    {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ES384\"}]}", LG_JWT_JWKS_EC_KEY_ALG_NOT_COMPATIBLE_WITH_CRV},
    {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"y\":\"AA\"}]}", LG_JWT_JWKS_EC_KEY_MISSING_X},
    {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\"}]}", LG_JWT_JWKS_EC_KEY_MISSING_Y},
    {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"A=\",\"y\":\"AA\"}]}", LG_JWT_JWKS_EC_X_OR_Y_BAD_BASE64},
    {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}", LG_JWT_JWKS_EC_CREATE_KEY_FAIL},
    {"{\"keys\":[{\"kty\":\"oct\"}]}", LG_JWT_JWKS_HMAC_KEY_MISSING_K},
    {"{\"keys\":[{\"kty\":\"oct\",\"k\":[]}]}", LG_JWT_JWKS_HMAC_KEY_BAD_K},
    {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2Vj+mV0\"}]}", LG_JWT_JWKS_OCT_BAD_BASE64},
    {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"\"}]}", LG_JWT_JWKS_OCT_BAD_BASE64},
    {"{\"keys\":[{\"kty\":\"oct\",\"alg\":\"RS256\",\"k\":\"c2VjcmV0\"}]}", LG_JWT_JWKS_HMAC_KEY_BAD_ALG},
    {"{\"keys\":[{\"kty\":\"OKP\",\"x\":\"AA\"}]}", LG_JWT_JWKS_OKP_KEY_MISSING_CRV},
    {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"AA\"}]}", LG_JWT_JWKS_OKP_KEY_CRV_UNSUPPORTED},
    {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\"}]}", LG_JWT_JWKS_OKP_KEY_MISSING_X},
    {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}]}", LG_JWT_JWKS_OKP_X_WRONG_LENGTH},
    {"{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"A/\"}]}", LG_JWT_JWKS_OKP_X_BAD_BASE64},
    {"{\"keys\":[{\"kty\":\"OKP\",\"alg\":\"ES256\",\"crv\":\"Ed25519\",\"x\":\"AA\"}]}", LG_JWT_JWKS_OKP_KEY_BAD_ALG},
};

LG_TEST(test_key_errors)
{
    long bad = -2;
    LG_EXPECT_INT(parse("{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"},{\"kty\":\"RSA\",\"e\":\"AQAB\"}]}", &bad),
                  LG_JWT_JWKS_RSA_KEY_MISSING_N);
    LG_EXPECT_INT(bad, 1); /* the error names the key */
    for (size_t i = 0; i < sizeof(key_errors) / sizeof(key_errors[0]); ++i) {
        lg_jwt_status_t st = parse(key_errors[i].doc, NULL);
        if (st != key_errors[i].status)
            fprintf(stderr, "key_errors[%zu]: %s\n", i, key_errors[i].doc);
        LG_EXPECT_INT(st, key_errors[i].status);
    }
}

int main(void)
{
    LG_RUN(test_b64url_is_strict);
    LG_RUN(test_every_key_type);
    LG_RUN(test_document_errors);
    LG_RUN(test_key_errors);
    return LG_TEST_END();
}
