/*
 * The JWT authentication filter (envoy.filters.http.jwt_authn): what config.c, filter.c, jwks.c and
 * jwt.c share. config.c turns the JwtAuthentication message into the immutable plain-C config
 * below (providers with their parsed JWKS, requirement trees, rules); filter.c extracts tokens,
 * walks the requirement for the request and answers 401/403 as Envoy does; jwks.c parses JSON Web
 * Key Sets into OpenSSL keys; jwt.c parses a token and checks its claims and signature.
 *
 * Status values and their texts are google/jwt_verify_lib's (Envoy's response bodies), so a client
 * sees the same words from legate as from Envoy.
 *
 * jwks_cache.c keeps what remote_jwks fetched, per worker.
 *
 * Not here: JWT caching, dynamic metadata (payload_in_metadata and friends are refused at load).
 */
#ifndef LG_FILTERS_JWT_AUTHN_H
#define LG_FILTERS_JWT_AUTHN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <h2o/linklist.h>

#include "filter.h"
#include "route_table.h"
#include "stats.h"

/* jwt_verify_lib's statuses that legate can produce, with their exact texts. */
#define LG_JWT_STATUSES(X)                                                                         \
    X(OK, "OK")                                                                                    \
    X(JWKS_FETCH_FAIL, "Jwks remote fetch is failed")                                              \
    X(JWT_MISSED, "Jwt is missing")                                                                \
    X(JWT_NOT_YET_VALID, "Jwt not yet valid")                                                      \
    X(JWT_EXPIRED, "Jwt is expired")                                                               \
    X(JWT_BAD_FORMAT, "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections") \
    X(JWT_HEADER_BAD_BASE64, "Jwt header is an invalid Base64url encoded")                         \
    X(JWT_HEADER_BAD_JSON, "Jwt header is an invalid JSON")                                        \
    X(JWT_HEADER_BAD_ALG, "Jwt header [alg] field is required and must be a string")               \
    X(JWT_HEADER_NOT_IMPLEMENTED_ALG, "Jwt header [alg] is not supported")                         \
    X(JWT_HEADER_BAD_KID, "Jwt header [kid] field is not a string")                                \
    X(JWT_PAYLOAD_BAD_BASE64, "Jwt payload is an invalid Base64url encoded")                       \
    X(JWT_ED25519_SIGNATURE_WRONG_LENGTH, "Jwt ED25519 signature is wrong length")                 \
    X(JWT_PAYLOAD_BAD_JSON, "Jwt payload is an invalid JSON")                                      \
    X(JWT_PAYLOAD_ISS_NOT_STRING, "Jwt payload [iss] field is not a string")                       \
    X(JWT_PAYLOAD_SUB_NOT_STRING, "Jwt payload [sub] field is not a string")                       \
    X(JWT_PAYLOAD_IAT_NOT_INTEGER, "Jwt payload [iat] field is not an integer")                    \
    X(JWT_PAYLOAD_IAT_OUT_OF_RANGE, "Jwt payload [iat] field is not a positive 64 bit integer")    \
    X(JWT_PAYLOAD_NBF_NOT_INTEGER, "Jwt payload [nbf] field is not an integer")                    \
    X(JWT_PAYLOAD_NBF_OUT_OF_RANGE, "Jwt payload [nbf] field is not a positive 64 bit integer")    \
    X(JWT_PAYLOAD_EXP_NOT_INTEGER, "Jwt payload [exp] field is not an integer")                    \
    X(JWT_PAYLOAD_EXP_OUT_OF_RANGE, "Jwt payload [exp] field is not a positive 64 bit integer")    \
    X(JWT_PAYLOAD_JTI_NOT_STRING, "Jwt payload [jti] field is not a string")                       \
    X(JWT_PAYLOAD_AUD_NOT_STRING, "Jwt payload [aud] field is not a string or string list")        \
    X(JWT_SIGNATURE_BAD_BASE64, "Jwt signature is an invalid Base64url encoded")                   \
    X(JWT_UNKNOWN_ISSUER, "Jwt issuer is not configured")                                          \
    X(JWT_AUDIENCE_NOT_ALLOWED, "Audiences in Jwt are not allowed")                                \
    X(JWT_VERIFICATION_FAIL, "Jwt verification fails")                                             \
    X(JWT_MULTIPLE_TOKENS, "Found multiple Jwt tokens")                                            \
    X(JWKS_PARSE_ERROR, "Jwks is an invalid JSON")                                                 \
    X(JWKS_NO_KEYS, "Jwks does not have [keys] field")                                             \
    X(JWKS_BAD_KEYS, "[keys] in Jwks is not an array")                                             \
    X(JWKS_NO_VALID_KEYS, "Jwks doesn't have any valid public key")                                \
    X(JWKS_KID_ALG_MISMATCH, "Jwks doesn't have key to match kid or alg from Jwt")                 \
    X(JWKS_RSA_PARSE_ERROR, "Jwks RSA [n] or [e] field is missing or has a parse error")           \
    X(JWKS_EC_CREATE_KEY_FAIL, "Jwks EC create key fail")                                          \
    X(JWKS_EC_X_OR_Y_BAD_BASE64, "Jwks EC [x] or [y] field is an invalid Base64.")                 \
    X(JWKS_OCT_BAD_BASE64, "Jwks Oct key is an invalid Base64")                                    \
    X(JWKS_OKP_X_BAD_BASE64, "Jwks OKP [x] field is an invalid Base64.")                           \
    X(JWKS_OKP_X_WRONG_LENGTH, "Jwks OKP [x] field is wrong length.")                              \
    X(JWKS_MISSING_KTY, "[kty] is missing in [keys]")                                              \
    X(JWKS_BAD_KTY, "[kty] is bad in [keys]")                                                      \
    X(JWKS_NOT_IMPLEMENTED_KTY, "[kty] is not supported in [keys]")                                \
    X(JWKS_RSA_KEY_BAD_ALG, "[alg] is not started with [RS] or [PS] for an RSA key")               \
    X(JWKS_RSA_KEY_MISSING_N, "[n] field is missing for a RSA key")                                \
    X(JWKS_RSA_KEY_BAD_N, "[n] field is not string for a RSA key")                                 \
    X(JWKS_RSA_KEY_MISSING_E, "[e] field is missing for a RSA key")                                \
    X(JWKS_RSA_KEY_BAD_E, "[e] field is not string for a RSA key")                                 \
    X(JWKS_EC_KEY_BAD_ALG, "[alg] is not started with [ES] for an EC key")                         \
    X(JWKS_EC_KEY_BAD_CRV, "[crv] field is not string for an EC key")                              \
    X(JWKS_EC_KEY_ALG_OR_CRV_UNSUPPORTED, "[crv] or [alg] field is not supported for an EC key")   \
    X(JWKS_EC_KEY_ALG_NOT_COMPATIBLE_WITH_CRV, "[crv] field specified is not compatible with [alg] for an EC key") \
    X(JWKS_EC_KEY_MISSING_X, "[x] field is missing for an EC key")                                 \
    X(JWKS_EC_KEY_BAD_X, "[x] field is not string for an EC key")                                  \
    X(JWKS_EC_KEY_MISSING_Y, "[y] field is missing for an EC key")                                 \
    X(JWKS_EC_KEY_BAD_Y, "[y] field is not string for an EC key")                                  \
    X(JWKS_HMAC_KEY_BAD_ALG, "[alg] does not start with [HS] for an HMAC key")                     \
    X(JWKS_HMAC_KEY_MISSING_K, "[k] field is missing for an HMAC key")                             \
    X(JWKS_HMAC_KEY_BAD_K, "[k] field is not string for an HMAC key")                              \
    X(JWKS_OKP_KEY_BAD_ALG, "[alg] is not [EdDSA] for an OKP key")                                 \
    X(JWKS_OKP_KEY_MISSING_CRV, "[crv] field is missing for an OKP key")                           \
    X(JWKS_OKP_KEY_BAD_CRV, "[crv] field is not string for an OKP key")                            \
    X(JWKS_OKP_KEY_CRV_UNSUPPORTED, "[crv] field is not supported for an OKP key")                 \
    X(JWKS_OKP_KEY_MISSING_X, "[x] field is missing for an OKP key")                               \
    X(JWKS_OKP_KEY_BAD_X, "[x] field is not string for an OKP key")

typedef enum en_lg_jwt_status_t {
#define LG_X(name, text) LG_JWT_##name,
    LG_JWT_STATUSES(LG_X)
#undef LG_X
} lg_jwt_status_t;

/** Envoy's text for a status (the 401/403 body). Pure. */
const char *lg_jwt_status_text(lg_jwt_status_t st);

/* The algorithms a token may name; the key type decides which family a key runs. */
typedef enum en_lg_jwt_alg_t {
    LG_JWT_ALG_RS256, LG_JWT_ALG_RS384, LG_JWT_ALG_RS512,
    LG_JWT_ALG_PS256, LG_JWT_ALG_PS384, LG_JWT_ALG_PS512,
    LG_JWT_ALG_ES256, LG_JWT_ALG_ES384, LG_JWT_ALG_ES512,
    LG_JWT_ALG_HS256, LG_JWT_ALG_HS384, LG_JWT_ALG_HS512,
    LG_JWT_ALG_EDDSA,
} lg_jwt_alg_t;

typedef enum en_lg_jwk_kty_t {
    LG_JWK_RSA,
    LG_JWK_EC,
    LG_JWK_OCT,
    LG_JWK_OKP,
} lg_jwk_kty_t;

/* One usable key of a JWKS. */
typedef struct st_lg_jwk_t {
    lg_jwk_kty_t kty;
    char *kid;       /* NULL when the key has none: then it matches any token kid */
    char *alg;       /* NULL when the key has none: then only its type restricts the algorithm */
    EVP_PKEY *pkey;  /* RSA, EC (P-256/384/521) and Ed25519 public keys */
    int ec_bits;     /* EC: 256, 384 or 521, which must match the token's ES alg */
    unsigned char *secret; /* oct: the HMAC key */
    size_t secret_len;
} lg_jwk_t;

typedef struct st_lg_jwks_t {
    lg_jwk_t *keys;
    size_t n_keys;
} lg_jwks_t;

/**
 * Parses a JWKS document (`{"keys": [...]}`) into jwks (zeroed by the caller). A malformed key
 * or one of a type it does not implement fails the whole set, as Envoy's library does. Returns LG_JWT_OK or the failing status (*bad_key: index of the key, or -1).
 * Any thread; the result is immutable and shared.
 */
lg_jwt_status_t lg_jwks_parse(lg_jwks_t *jwks, const char *json, size_t len, long *bad_key);
void lg_jwks_dispose(lg_jwks_t *jwks);

/* A parsed token. Strings point into header/payload (jansson objects owned here). */
typedef struct st_lg_jwt_t {
    json_t *header, *payload;
    lg_jwt_alg_t alg;
    const char *kid; /* NULL when absent */
    const char *iss, *sub; /* "" when absent */
    json_t *aud;           /* string, array of strings, or NULL */
    int64_t exp, nbf, iat; /* 0 when absent */
    h2o_iovec_t signed_part; /* "header.payload", into the token */
    h2o_iovec_t payload_b64; /* the payload segment as sent (base64url) */
    unsigned char *signature; /* malloc'd */
    size_t signature_len;
} lg_jwt_t;

/** Parses `token` into jwt (zeroed by the caller; dispose it whatever the result). Pure. */
lg_jwt_status_t lg_jwt_parse(lg_jwt_t *jwt, const char *token, size_t len);
void lg_jwt_dispose(lg_jwt_t *jwt);
/** nbf and exp against `now` (Unix seconds) with `skew` seconds of tolerance. */
lg_jwt_status_t lg_jwt_check_time(const lg_jwt_t *jwt, int64_t now, uint64_t skew);
/**
 * Verifies the signature with the keys of jwks, as jwt_verify_lib picks them: a key whose kid
 * differs from the token's (both present) or whose alg differs is skipped; a key of the wrong
 * family for the token's alg never verifies it (no RS/HS or EC/HS confusion). OK, or
 * JWKS_KID_ALG_MISMATCH when no key was a candidate, or JWT_VERIFICATION_FAIL.
 */
lg_jwt_status_t lg_jwt_verify(const lg_jwt_t *jwt, const lg_jwks_t *jwks);

/** Strict base64url (no padding, no other alphabet) into a malloc'd buffer; NULL when invalid. */
unsigned char *lg_jwt_b64url_decode(const char *s, size_t len, size_t *outlen);

/* ---- config ------------------------------------------------------------------------------ */

typedef struct st_lg_jwt_header_source_t {
    h2o_iovec_t name;   /* lower case */
    h2o_iovec_t prefix; /* value_prefix; may be empty */
} lg_jwt_header_source_t;

typedef struct st_lg_jwt_claim_header_t {
    h2o_iovec_t header; /* lower case */
    char *claim;        /* may be a dotted path into nested objects */
} lg_jwt_claim_header_t;

/* remote_jwks, compiled. Durations in milliseconds. */
typedef struct st_lg_jwt_remote_t {
    char *uri;       /* as configured, for logs */
    char *cluster;   /* http_uri.cluster: looked up in the worker's snapshot at each fetch */
    char *authority; /* host[:port] of the uri */
    char *path;      /* path and query of the uri; "/" when it has none */
    int https;
    uint64_t timeout_ms;
    uint64_t cache_duration_ms; /* 600 s by default */
    int async_fetch;
    uint64_t failed_refetch_ms; /* async_fetch.failed_refetch_duration, 1 s by default */
    uint32_t num_retries;       /* retry_policy.num_retries; 0 without a retry_policy */
    uint64_t backoff_base_ms, backoff_max_ms;
} lg_jwt_remote_t;

typedef struct st_lg_jwt_provider_t {
    char *name;
    size_t index;     /* in lg_jwt_authn_config_t.providers */
    int is_remote;    /* keys come from `remote` through the worker's cache, not from `jwks` */
    lg_jwt_remote_t remote;
    char *issuer; /* "" accepts any iss */
    char **audiences;
    size_t n_audiences;
    int has_subjects;
    lg_string_matcher_t subjects;
    int has_max_lifetime; /* require_expiration or max_lifetime */
    int64_t max_lifetime_s; /* INT64_MAX for require_expiration alone */
    lg_jwks_t jwks;
    int forward;
    lg_jwt_header_source_t *headers;
    size_t n_headers;
    char **params, **cookies;
    size_t n_params, n_cookies;
    h2o_iovec_t forward_payload_header; /* lower case; empty for none */
    int pad_forward_payload_header;
    uint32_t clock_skew_seconds;
    lg_jwt_claim_header_t *claim_headers;
    size_t n_claim_headers;
    int clear_route_cache;
} lg_jwt_provider_t;

typedef enum en_lg_jwt_req_kind_t {
    LG_JWT_REQ_PROVIDER,
    LG_JWT_REQ_ANY,
    LG_JWT_REQ_ALL,
    LG_JWT_REQ_ALLOW_MISSING,
    LG_JWT_REQ_ALLOW_MISSING_OR_FAILED,
} lg_jwt_req_kind_t;

typedef struct st_lg_jwt_requirement_t {
    lg_jwt_req_kind_t kind;
    const lg_jwt_provider_t *provider; /* PROVIDER */
    char **audiences;                  /* provider_and_audiences: replaces the provider's list */
    size_t n_audiences;
    int has_audiences;
    struct st_lg_jwt_requirement_t *children; /* ANY, ALL */
    size_t n_children;
} lg_jwt_requirement_t;

typedef struct st_lg_jwt_rule_t {
    lg_route_criteria_t match;
    const lg_jwt_requirement_t *requires; /* NULL: the route needs no JWT */
    lg_jwt_requirement_t *owned;          /* an inline `requires` */
} lg_jwt_rule_t;

#define LG_JWT_AUTHN_STATS(X)                                                                      \
    X(allowed) X(cors_preflight_bypassed) X(denied) X(jwks_fetch_success) X(jwks_fetch_failed)     \
    X(jwt_cache_hit) X(jwt_cache_miss)

typedef struct st_lg_jwt_authn_stats_t {
#define LG_X(name) lg_stat_id_t name;
    LG_JWT_AUTHN_STATS(LG_X)
#undef LG_X
} lg_jwt_authn_stats_t;

typedef struct st_lg_jwt_authn_config_t {
    lg_jwt_provider_t *providers;
    size_t n_providers;
    lg_jwt_rule_t *rules;
    size_t n_rules;
    char **requirement_names;
    lg_jwt_requirement_t *requirements; /* requirement_map, parallel to requirement_names */
    size_t n_requirements;
    int bypass_cors_preflight;
    int strip_failure_response;
    lg_jwt_authn_stats_t stats;
} lg_jwt_authn_config_t;

typedef struct st_lg_jwt_authn_per_route_t {
    int disabled;
    char *requirement_name;
} lg_jwt_authn_per_route_t;

extern const lg_http_filter_ops_t lg_jwt_authn_ops;

void *lg_jwt_authn_create_config(const ProtobufCMessage *msg, const lg_filter_config_ctx_t *ctx, lg_error_t *err);
void lg_jwt_authn_destroy_config(void *config);
void *lg_jwt_authn_create_per_route_config(const ProtobufCMessage *msg, lg_error_t *err);
void lg_jwt_authn_destroy_per_route_config(void *config);
/* ---- remote JWKS, per worker (jwks_cache.c) ----------------------------------------------- */

typedef struct st_lg_jwks_cache_t lg_jwks_cache_t;
struct st_lg_worker_t;

/* A stream waiting for one provider's fetch; embedded in the stream's state. */
typedef struct st_lg_jwks_waiter_t {
    h2o_linklist_t link;
    void (*cb)(struct st_lg_jwks_waiter_t *w); /* the fetch ended (keys or not); the waiter is unlinked */
} lg_jwks_waiter_t;

/**
 * The worker's cache for `cfg` (created on first use, retaining `snapshot`, which holds cfg).
 * Worker thread; owned by the worker.
 */
lg_jwks_cache_t *lg_jwks_cache_get(struct st_lg_worker_t *w, const lg_jwt_authn_config_t *cfg,
                                   struct st_lg_snapshot_t *snapshot);
/** Worker hook: fetches the keys of async_fetch providers ahead of requests. */
void lg_jwks_cache_warm(const void *cfg, struct st_lg_worker_t *w, struct st_lg_snapshot_t *snapshot);
/**
 * The keys to verify with for remote provider `p`: NULL when there are none usable. Then, when
 * `waiter` is given and a fetch is (or can be) under way, the waiter is queued on it and *waiting is
 * set; otherwise the caller fails with JWKS_FETCH_FAIL.
 */
const lg_jwks_t *lg_jwks_cache_keys(lg_jwks_cache_t *c, const lg_jwt_provider_t *p, lg_jwks_waiter_t *waiter,
                                    int *waiting);
/** Takes the waiter off its queue (the stream ends first). */
void lg_jwks_waiter_cancel(lg_jwks_waiter_t *w);

/** The requirement_map entry named `name`, or NULL. Any thread. */
const lg_jwt_requirement_t *lg_jwt_authn_find_requirement(const lg_jwt_authn_config_t *c, const char *name);

#endif
