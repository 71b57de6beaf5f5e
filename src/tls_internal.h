/*
 * What the TLS files share and nobody else sees: tls_context.c (building server and client
 * contexts, the client handshake), tls_validation.c (validation contexts and the verification
 * callback), tls_sni.c (the SNI selector and the server handshake). The public contract is
 * tls_context.h.
 *
 * Lifetime rule for everything here: each lg_tls_*_t hangs on its SSL_CTX's ex_data and is freed
 * by the ex_data free hook, so it lives exactly as long as the SSL_CTX; a connection still
 * holding the SSL_CTX (OpenSSL counts it) keeps the callbacks' arguments valid after the config
 * snapshot let go.
 */
#ifndef LG_TLS_INTERNAL_H
#define LG_TLS_INTERNAL_H

#include <stddef.h>

#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "envoy/extensions/transport_sockets/tls/v3/common.pb-c.h"
#include "envoy/extensions/transport_sockets/tls/v3/tls.pb-c.h"
#include "error.h"
#include "regex.h"
#include "tls_context.h"

#define LG_TLS_PB(name) ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__##name

typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext lg_pb_common_tls_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext
    lg_pb_validation_t;
typedef Envoy__Config__Core__V3__DataSource lg_pb_data_source_t;

/* One SAN matcher: a GENERAL_NAME type and a string matcher. */
typedef struct st_lg_tls_san_matcher_t {
    int gen_type; /* GEN_DNS, GEN_URI, GEN_EMAIL, GEN_IPADD */
    int kind;
    int ignore_case;
    char *value;
    size_t len;
    lg_regex_t *re;
} lg_tls_san_matcher_t;

/* What a CertificateValidationContext asks of the peer's certificate. */
typedef struct st_lg_tls_validation_t {
    int verify_chain;     /* trusted_ca or system roots given: the chain must verify */
    int accept_untrusted; /* trust_chain_verification: ACCEPT_UNTRUSTED */
    int allow_expired;
    int max_depth; /* -1: OpenSSL's */
    lg_tls_san_matcher_t *sans;
    size_t n_sans;
    unsigned char (*hashes)[SHA256_DIGEST_LENGTH];
    size_t n_hashes;
    unsigned char (*spkis)[SHA256_DIGEST_LENGTH];
    size_t n_spkis;
} lg_tls_validation_t;

/* TLS parameters in the form OpenSSL takes them; kept to apply them to a switched connection. */
typedef struct st_lg_tls_params_t {
    int min_version, max_version;
    char *ciphers, *groups;
} lg_tls_params_t;

struct st_lg_tls_server_ctx_t {
    SSL_CTX *ssl_ctx;
    lg_tls_params_t params;
    h2o_iovec_t *alpn; /* ends with {NULL, 0}; NULL: no ALPN */
    int verify_mode;
    int require_sni;
    int no_tickets, no_session_cache;
    int has_session_timeout;
    long session_timeout;
    lg_tls_validation_t validation;
};

/* tls_context.c */

/** A new SSL_CTX with `obj` attached at ex_data `idx`: SSL_CTX_free frees obj through the index's
 * free hook from then on. Aborts on failure. */
SSL_CTX *lg__tls_new_ssl_ctx(const SSL_METHOD *method, int idx, void *obj);
/** Reads a DataSource into a NUL-terminated malloc'd buffer (*out; the caller frees it). `path`
 * names the field in errors. Returns 0 or -1 with err set. */
int lg__tls_read_data_source(const lg_pb_data_source_t *ds, char **out, size_t *outlen,
                             const char *path, lg_error_t *err);
/** How errors name a DataSource: the file name, "inline_string", ... (may use buf). */
const char *lg__tls_data_source_name(const lg_pb_data_source_t *ds, char *buf, size_t len);
/** "<path>.<field>: not supported by legate"; returns -1. */
int lg__tls_unsupported(lg_error_t *err, const char *path, const char *field);
/** A read-only memory BIO over data (aborts on failure). */
BIO *lg__tls_mem_bio(const char *data, size_t len);
/** Begins a handshake's bookkeeping: conn is reset and takes sock->data's place. */
void lg__tls_conn_start(h2o_socket_t *sock, lg_tls_conn_t *conn, h2o_socket_cb cb);

/* tls_validation.c */

/** The validation context of a CommonTlsContext (NULL when none) and its field path; refuses the
 * SDS and certificate-provider forms. Returns 0 or -1 with err set. */
int lg__tls_find_validation(const lg_pb_common_tls_t *c, const lg_pb_validation_t **out,
                            char *path, size_t pathlen, lg_error_t *err);
/** Reads m into v, loading CAs and CRLs into ctx's store. On error v may hold parts: dispose it. */
int lg__tls_validation_build(SSL_CTX *ctx, const lg_pb_validation_t *m, const char *path,
                             lg_tls_validation_t *v, lg_error_t *err);
void lg__tls_validation_dispose(lg_tls_validation_t *v);
/** Whether v checks anything (then the peer is asked for a certificate). */
int lg__tls_validation_active(const lg_tls_validation_t *v);
/** SSL_CTX_set_cert_verify_callback callback; arg is the lg_tls_validation_t. */
int lg__tls_cert_verify(X509_STORE_CTX *xs, void *arg);

#endif
