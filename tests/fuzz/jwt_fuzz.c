/*
 * libFuzzer target for jwt_authn's untrusted inputs: the first byte picks the parser. Even: the
 * bytes are a token, parsed and verified against a fixed JWKS holding one key of every type
 * (RSA, EC P-256, oct, OKP); the oracle is that a token is only ever accepted by a key whose type
 * runs its algorithm (a random key cannot be forged, so acceptance itself means a bug). Odd: the
 * bytes are a JWKS document for lg_jwks_parse. Neither may crash, leak or read out of bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filters/jwt_authn/jwt_authn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Public keys only; their private halves were thrown away, so no token can verify. */
static const char fixed_jwks[] =
    "{\"keys\":["
    "{\"kty\":\"RSA\",\"kid\":\"r\",\"e\":\"AQAB\",\"n\":\"qjvI-YGgvS9E7Y6ABPjZWAoIgxihyBOCNDebXUuY7O-MCpUAL18gv0my4TSEN1tqEEjRQPP2DZB2Aw_aRJuzUFkARrgJuWfTLu_EaZaq7CRxOYRn7w7f__Dgv1IASd9fk89TAG6VDjCGLh5jd6kWDly4WfizzwYr2_KRF9CPKXjfCBhAhDs5EltqCS4Jb7kWpN05_HVE_geAGTd6UGf_4Pu_4aKy9DrzIznWFdjc1XRt5tMrv_U7QebGGdUfWuAGgKBLHC8a7vJuQjR9QqzoWXokjcoQezeOukaiIDfHU5AgZSrFme2U5S22QHeR_KpMnLe_bcrKh8Jb3CEo3Tk7Qw\"},"
    "{\"kty\":\"EC\",\"kid\":\"e\",\"crv\":\"P-256\",\"x\":\"d5ZgrsBd06epkGAqVvIQFvgJF8v60__xf78Q7YK7Y9I\",\"y\":\"lLRZ9ys3zv3yNE2lhbY0dIsegDTbGHqoREkfPtRlV6E\"},"
    "{\"kty\":\"OKP\",\"kid\":\"d\",\"crv\":\"Ed25519\",\"x\":\"zTQBjgkvsIrnLaoCzfr1xBVVGFJqIHx68sFfrKO-5WY\"},"
    "{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"ZnV6ei1vbmx5LW5vdC1hLXJlYWwtc2VjcmV0\"}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lg_jwks_t jwks;
    static int ready;
    if (!ready) {
        long bad;
        if (lg_jwks_parse(&jwks, fixed_jwks, sizeof(fixed_jwks) - 1, &bad) != LG_JWT_OK) {
            fprintf(stderr, "the fixed JWKS does not parse (key %ld)\n", bad);
            abort();
        }
        ready = 1;
    }
    if (size == 0)
        return 0;
    if (data[0] % 2 == 0) {
        lg_jwt_t jwt;
        memset(&jwt, 0, sizeof(jwt));
        if (lg_jwt_parse(&jwt, (const char *)data + 1, size - 1) == LG_JWT_OK &&
            lg_jwt_verify(&jwt, &jwks) == LG_JWT_OK) {
            fprintf(stderr, "a token verified against keys nobody holds\n");
            abort();
        }
        lg_jwt_dispose(&jwt);
    } else {
        lg_jwks_t other = {.keys = NULL};
        long bad;
        lg_jwks_parse(&other, (const char *)data + 1, size - 1, &bad);
        lg_jwks_dispose(&other);
    }
    return 0;
}
