/*
 * TLS contexts from Envoy's DownstreamTlsContext / UpstreamTlsContext, the SNI selector of a
 * listener's filter chains, and the handshakes on h2o sockets. Contract and rules: tls_context.h.
 *
 * Layout of this file: ownership plumbing (ex_data), reading DataSources, the pieces both
 * directions share (TLS parameters, certificates, the validation context and the verification
 * callback that enforces it), then the server context, the selector, the client context and the
 * two handshakes.
 *
 * Lifetime: each lg_tls_*_t is hung on its SSL_CTX's ex_data and freed by the ex_data free hook,
 * so it lives exactly as long as the SSL_CTX: a connection that still holds the SSL_CTX (OpenSSL
 * counts it) keeps the callbacks' arguments valid after the snapshot let go.
 *
 * Not for: reading certificates for anything but TLS contexts, SDS, OCSP.
 */
#include "tls_context.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "regex.h"

/* The deprecated fields (match_subject_alt_names, google_re2, the certificate-provider fields)
 * still parse in Envoy, so legate reads them too: the generated accessors are marked deprecated. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define PFX(name) ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__##name

typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext pb_common_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsParameters pb_params_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate pb_cert_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CertificateValidationContext pb_validation_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SubjectAltNameMatcher pb_san_matcher_t;
typedef Envoy__Type__Matcher__V3__StringMatcher pb_string_matcher_t;
typedef Envoy__Config__Core__V3__DataSource pb_data_source_t;

const char *const lg_tls_alpn_h2_http11[] = {"h2", "http/1.1", NULL};

/* Envoy's default TLS 1.2 cipher list (non-FIPS), in OpenSSL's names; BoringSSL's equal-preference
 * groups "[A|B]" become A:B. */
static const char default_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
                                      "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
                                      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
static const char default_groups[] = "X25519:P-256";

#define MAX_DATA_SOURCE_BYTES (16u << 20)

/* ---------------------------------------------------------------------------------------------
 * Types.
 * ------------------------------------------------------------------------------------------- */

enum { MATCH_EXACT, MATCH_PREFIX, MATCH_SUFFIX, MATCH_CONTAINS, MATCH_REGEX };

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

/* TLS parameters in the form OpenSSL takes them; kept so they can be applied to a connection. */
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

struct st_lg_tls_client_ctx_t {
    SSL_CTX *ssl_ctx;
    char *sni;
    lg_tls_validation_t validation;
};

typedef struct st_lg_tls_sni_entry_t {
    char *name; /* lowercase; wildcards kept as their suffix ".example.com" */
    int chain;
} lg_tls_sni_entry_t;

struct st_lg_tls_server_selector_t {
    SSL_CTX *ssl_ctx; /* the connection starts on it; it only picks the chain */
    lg_tls_server_ctx_t **chains; /* retained; NULL for plaintext chains */
    size_t n_chains;
    lg_tls_sni_entry_t *exact, *wild;
    size_t n_exact, n_wild;
    int catch_all; /* first TLS chain without server_names, or -1 */
    int default_index;
};

/* ---------------------------------------------------------------------------------------------
 * ex_data: our structs hang on their SSL_CTX and die with it.
 * ------------------------------------------------------------------------------------------- */

static int ex_server_ctx = -1, ex_client_ctx = -1, ex_selector = -1;
static int ex_ssl_chain = -1, ex_ssl_selector = -1, ex_ssl_started = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static char ssl_started_marker;

static void validation_dispose(lg_tls_validation_t *v)
{
    for (size_t i = 0; i != v->n_sans; ++i) {
        free(v->sans[i].value);
        lg_regex_free(v->sans[i].re);
    }
    free(v->sans);
    free(v->hashes);
    free(v->spkis);
}

static void free_server_ctx(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                            void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    lg_tls_server_ctx_t *c = ptr;
    if (c == NULL)
        return;
    free(c->params.ciphers);
    free(c->params.groups);
    free(c->alpn);
    validation_dispose(&c->validation);
    free(c);
}

static void free_client_ctx(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                            void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    lg_tls_client_ctx_t *c = ptr;
    if (c == NULL)
        return;
    free(c->sni);
    validation_dispose(&c->validation);
    free(c);
}

static void free_selector(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                          void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    lg_tls_server_selector_t *s = ptr;
    if (s == NULL)
        return;
    for (size_t i = 0; i != s->n_chains; ++i)
        lg_tls_server_ctx_release(s->chains[i]);
    free(s->chains);
    for (size_t i = 0; i != s->n_exact; ++i)
        free(s->exact[i].name);
    for (size_t i = 0; i != s->n_wild; ++i)
        free(s->wild[i].name);
    free(s->exact);
    free(s->wild);
    free(s);
}

static void ex_init(void)
{
    ex_server_ctx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_server_ctx);
    ex_client_ctx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_client_ctx);
    ex_selector = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_selector);
    ex_ssl_chain = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ex_ssl_selector = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ex_ssl_started = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (ex_server_ctx < 0 || ex_client_ctx < 0 || ex_selector < 0 || ex_ssl_chain < 0 ||
        ex_ssl_selector < 0 || ex_ssl_started < 0)
        lg_fatal("OpenSSL ex_data indexes unavailable");
}

/* A new SSL_CTX with `obj` attached at `idx`; from then on SSL_CTX_free frees obj too. */
static SSL_CTX *new_ssl_ctx(const SSL_METHOD *method, int idx, void *obj)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL)
        lg_fatal("SSL_CTX_new failed");
    if (!SSL_CTX_set_ex_data(ctx, idx, obj))
        lg_fatal("SSL_CTX_set_ex_data failed");
    return ctx;
}

/* ---------------------------------------------------------------------------------------------
 * Errors and DataSources.
 * ------------------------------------------------------------------------------------------- */

/* OpenSSL's reason for the last failure, and an empty error queue. */
static const char *ossl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    if (r != NULL)
        snprintf(buf, len, "%s", r);
    else if (e != 0)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "unknown OpenSSL error");
    ERR_clear_error();
    return buf;
}

static int unsupported(lg_error_t *err, const char *path, const char *field)
{
    return lg_error_set(err, "%s%s%s: not supported by legate", path, *path ? "." : "", field);
}

/* How errors name a DataSource: its file, or which inline form it is. */
static const char *ds_name(const pb_data_source_t *ds, char *buf, size_t len)
{
    switch (ds->specifier_case) {
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME:
        return ds->filename;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
        return "inline_bytes";
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
        return "inline_string";
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE:
        snprintf(buf, len, "environment variable %s", ds->environment_variable);
        return buf;
    default:
        return "an empty data source";
    }
}

static int read_file(const char *name, char **out, size_t *outlen, const char *path,
                     lg_error_t *err)
{
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (fd < 0)
        goto Error;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        cap = (size_t)st.st_size;
    /* The size is a hint (files may change, /proc files say 0): grow while reading. */
    cap = cap < 4096 ? 4096 : cap + 1;
    for (;;) {
        if (len == cap || buf == NULL) {
            if (buf != NULL)
                cap *= 2;
            if (cap > MAX_DATA_SOURCE_BYTES + 1)
                cap = MAX_DATA_SOURCE_BYTES + 1;
            if (len == cap) {
                close(fd);
                free(buf);
                return lg_error_set(err, "%s: %s is larger than %u bytes", path, name,
                                    MAX_DATA_SOURCE_BYTES);
            }
            if ((buf = realloc(buf, cap + 1)) == NULL)
                lg_fatal("out of memory");
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            goto Error;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
Error : {
    int e = errno;
    if (fd >= 0)
        close(fd);
    free(buf);
    return lg_error_set(err, "%s: cannot read %s: %s", path, name, strerror(e));
}
}

/* Reads a DataSource into a NUL-terminated malloc'd buffer (*out; free it). `path` names the
 * DataSource field in errors. */
static int read_data_source(const pb_data_source_t *ds, char **out, size_t *outlen,
                            const char *path, lg_error_t *err)
{
    const char *p = "";
    size_t len = 0;
    if (ds->watched_directory != NULL)
        return unsupported(err, path, "watched_directory");
    switch (ds->specifier_case) {
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME:
        return read_file(ds->filename, out, outlen, path, err);
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
        p = (const char *)ds->inline_bytes.data;
        len = ds->inline_bytes.len;
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
        p = ds->inline_string;
        len = strlen(p);
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE:
        if ((p = getenv(ds->environment_variable)) == NULL)
            return lg_error_set(err, "%s: environment variable %s is not set", path,
                                ds->environment_variable);
        len = strlen(p);
        break;
    default:
        break;
    }
    char *buf = malloc(len + 1);
    if (buf == NULL)
        lg_fatal("out of memory");
    if (len != 0)
        memcpy(buf, p, len);
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

static BIO *mem_bio(const char *data, size_t len)
{
    BIO *b = BIO_new_mem_buf(data, (int)len);
    if (b == NULL)
        lg_fatal("BIO_new_mem_buf failed");
    return b;
}

/* ---------------------------------------------------------------------------------------------
 * TLS parameters.
 * ------------------------------------------------------------------------------------------- */

static int tls_version(int v, int dflt)
{
    switch (v) {
    case PFX(TLS_PARAMETERS__TLS_PROTOCOL__TLS_AUTO):
        return dflt;
    case PFX(TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_0):
        return TLS1_VERSION;
    case PFX(TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_1):
        return TLS1_1_VERSION;
    case PFX(TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_2):
        return TLS1_2_VERSION;
    case PFX(TLS_PARAMETERS__TLS_PROTOCOL__TLSv1_3):
        return TLS1_3_VERSION;
    default:
        return -1;
    }
}

typedef int (*list_setter_t)(SSL_CTX *ctx, const char *list);

static int set_cipher_list(SSL_CTX *ctx, const char *list)
{
    return SSL_CTX_set_cipher_list(ctx, list);
}
static int set_groups_list(SSL_CTX *ctx, const char *list)
{
    return SSL_CTX_set1_groups_list(ctx, list);
}
static int set_sigalgs_list(SSL_CTX *ctx, const char *list)
{
    return SSL_CTX_set1_sigalgs_list(ctx, list);
}

static void append(char **s, size_t *len, const char *add, size_t addlen, char sep)
{
    if ((*s = realloc(*s, *len + addlen + 2)) == NULL)
        lg_fatal("out of memory");
    if (*len != 0)
        (*s)[(*len)++] = sep;
    memcpy(*s + *len, add, addlen);
    *len += addlen;
    (*s)[*len] = '\0';
}

/*
 * Joins names with ':' into *out after trying each one alone on `probe`, so that a bad name is
 * reported by name (OpenSSL skips unknown names in a list silently as long as one is known).
 * Cipher entries may be BoringSSL equal-preference groups "[A|B]": they are flattened.
 */
static int join_checked(SSL_CTX *probe, list_setter_t set, char **names, size_t n, int ciphers,
                        char **out, const char *path, const char *what, lg_error_t *err)
{
    char *joined = NULL, *bad = NULL;
    size_t jlen = 0, blen = 0;
    for (size_t i = 0; i != n; ++i) {
        const char *s = names[i], *end = s + strlen(s);
        if (ciphers && *s == '[' && end > s + 1 && end[-1] == ']') {
            ++s;
            --end;
        }
        while (s < end) {
            const char *bar = ciphers ? memchr(s, '|', (size_t)(end - s)) : NULL;
            const char *e = bar != NULL ? bar : end;
            char one[256];
            int ok = 0;
            if ((size_t)(e - s) < sizeof(one)) {
                memcpy(one, s, (size_t)(e - s));
                one[e - s] = '\0';
                /* Exclusions and operators ("!aNULL", "@STRENGTH") select nothing on their own. */
                ok = (ciphers && strchr("!-+@", one[0]) != NULL && one[0] != '\0') ||
                     (one[0] != '\0' && set(probe, one) == 1);
                ERR_clear_error();
            }
            if (ok)
                append(&joined, &jlen, s, (size_t)(e - s), ':');
            else
                append(&bad, &blen, s, (size_t)(e - s), ',');
            s = bar != NULL ? bar + 1 : end;
        }
    }
    if (bad == NULL && joined == NULL)
        return lg_error_set(err, "%s: no %s given", path, what);
    if (bad != NULL) {
        lg_error_set(err, "%s: unknown %s: %s", path, what, bad);
        free(bad);
        free(joined);
        return -1;
    }
    *out = joined;
    return 0;
}

/* Reads tls_params (may be NULL) into p with the direction's defaults and applies it to ctx. */
static int build_params(SSL_CTX *ctx, const pb_params_t *m, int server, lg_tls_params_t *p,
                        lg_error_t *err)
{
    static const char path[] = "common_tls_context.tls_params";
    char why[256];
    int min = TLS1_2_VERSION, max = server ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (m != NULL) {
        if ((min = tls_version(m->tls_minimum_protocol_version, min)) < 0)
            return lg_error_set(err, "%s.tls_minimum_protocol_version: invalid value %d", path,
                                (int)m->tls_minimum_protocol_version);
        if ((max = tls_version(m->tls_maximum_protocol_version, max)) < 0)
            return lg_error_set(err, "%s.tls_maximum_protocol_version: invalid value %d", path,
                                (int)m->tls_maximum_protocol_version);
        /* Envoy takes this and then fails every handshake; refusing it at load says why. */
        if (min > max)
            return lg_error_set(err, "%s: tls_minimum_protocol_version is above "
                                     "tls_maximum_protocol_version%s", path,
                                m->tls_maximum_protocol_version == 0
                                    ? " (its default is TLSv1_2 for upstreams)" : "");
    }
    p->min_version = min;
    p->max_version = max;

    SSL_CTX *probe = SSL_CTX_new(TLS_method());
    if (probe == NULL)
        lg_fatal("SSL_CTX_new failed");
    int ret = -1;
    if (m != NULL && m->n_cipher_suites != 0) {
        if (join_checked(probe, set_cipher_list, m->cipher_suites, m->n_cipher_suites, 1,
                         &p->ciphers, "common_tls_context.tls_params.cipher_suites",
                         "cipher suites", err) != 0)
            goto Exit;
    } else if ((p->ciphers = strdup(default_ciphers)) == NULL) {
        lg_fatal("out of memory");
    }
    if (m != NULL && m->n_ecdh_curves != 0) {
        if (join_checked(probe, set_groups_list, m->ecdh_curves, m->n_ecdh_curves, 0, &p->groups,
                         "common_tls_context.tls_params.ecdh_curves", "ECDH curves", err) != 0)
            goto Exit;
    } else if ((p->groups = strdup(default_groups)) == NULL) {
        lg_fatal("out of memory");
    }
    char *sigalgs = NULL;
    if (m != NULL && m->n_signature_algorithms != 0 &&
        join_checked(probe, set_sigalgs_list, m->signature_algorithms, m->n_signature_algorithms,
                     0, &sigalgs, "common_tls_context.tls_params.signature_algorithms",
                     "signature algorithms", err) != 0)
        goto Exit;

    if (!SSL_CTX_set_min_proto_version(ctx, min) || !SSL_CTX_set_max_proto_version(ctx, max)) {
        lg_error_set(err, "%s: %s", path, ossl_reason(why, sizeof(why)));
        free(sigalgs);
        goto Exit;
    }
    if (SSL_CTX_set_cipher_list(ctx, p->ciphers) != 1) {
        lg_error_set(err, "%s.cipher_suites: %s", path, ossl_reason(why, sizeof(why)));
        free(sigalgs);
        goto Exit;
    }
    if (SSL_CTX_set1_groups_list(ctx, p->groups) != 1) {
        lg_error_set(err, "%s.ecdh_curves: %s", path, ossl_reason(why, sizeof(why)));
        free(sigalgs);
        goto Exit;
    }
    if (sigalgs != NULL && SSL_CTX_set1_sigalgs_list(ctx, sigalgs) != 1) {
        lg_error_set(err, "%s.signature_algorithms: %s", path, ossl_reason(why, sizeof(why)));
        free(sigalgs);
        goto Exit;
    }
    free(sigalgs);
    ret = 0;
Exit:
    SSL_CTX_free(probe);
    return ret;
}

/* ---------------------------------------------------------------------------------------------
 * Certificates.
 * ------------------------------------------------------------------------------------------- */

static int password_cb(char *buf, int size, int rwflag, void *u)
{
    (void)rwflag;
    const char *pw = u;
    if (pw == NULL)
        return -1; /* never prompt on a terminal */
    size_t len = strlen(pw);
    if (len > (size_t)size)
        len = (size_t)size;
    memcpy(buf, pw, len);
    return (int)len;
}

static const char *key_type_name(int id)
{
    switch (id) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        return "RSA";
    case EVP_PKEY_EC:
        return "ECDSA";
    case EVP_PKEY_ED25519:
        return "Ed25519";
    case EVP_PKEY_ED448:
        return "Ed448";
    default:
        return "this";
    }
}

/* Loads one TlsCertificate into ctx. `seen` lists the key types already loaded (one each). */
static int load_certificate(SSL_CTX *ctx, const pb_cert_t *m, const char *path, int *seen,
                            size_t *n_seen, lg_error_t *err)
{
    char sub[320], why[256], nb[300];
    char *chain_pem = NULL, *key_pem = NULL, *password = NULL;
    size_t chain_len = 0, key_len = 0, pw_len = 0;
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = NULL;
    EVP_PKEY *key = NULL;
    BIO *b = NULL;
    int ret = -1;

    if (m->pkcs12 != NULL)
        return unsupported(err, path, "pkcs12");
    if (m->watched_directory != NULL)
        return unsupported(err, path, "watched_directory");
    if (m->private_key_provider != NULL)
        return unsupported(err, path, "private_key_provider");
    if (m->ocsp_staple != NULL)
        return unsupported(err, path, "ocsp_staple");
    if (m->n_signed_certificate_timestamp != 0)
        return unsupported(err, path, "signed_certificate_timestamp");
    if (m->certificate_chain == NULL)
        return lg_error_set(err, "%s.certificate_chain: is required", path);
    if (m->private_key == NULL)
        return lg_error_set(err, "%s.private_key: is required", path);

    snprintf(sub, sizeof(sub), "%s.certificate_chain", path);
    if (read_data_source(m->certificate_chain, &chain_pem, &chain_len, sub, err) != 0)
        goto Exit;
    b = mem_bio(chain_pem, chain_len);
    if ((leaf = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL)) == NULL) {
        ERR_clear_error();
        lg_error_set(err, "%s: no certificate found in %s", sub,
                     ds_name(m->certificate_chain, nb, sizeof(nb)));
        goto Exit;
    }
    if ((chain = sk_X509_new_null()) == NULL)
        lg_fatal("out of memory");
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(chain, x))
            lg_fatal("out of memory");
    }
    unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
        lg_error_set(err, "%s: bad certificate in %s: %s", sub,
                     ds_name(m->certificate_chain, nb, sizeof(nb)), ossl_reason(why, sizeof(why)));
        goto Exit;
    }
    ERR_clear_error();
    BIO_free(b);
    b = NULL;

    if (m->password != NULL) {
        snprintf(sub, sizeof(sub), "%s.password", path);
        if (read_data_source(m->password, &password, &pw_len, sub, err) != 0)
            goto Exit;
    }
    snprintf(sub, sizeof(sub), "%s.private_key", path);
    if (read_data_source(m->private_key, &key_pem, &key_len, sub, err) != 0)
        goto Exit;
    b = mem_bio(key_pem, key_len);
    if ((key = PEM_read_bio_PrivateKey(b, NULL, password_cb, password)) == NULL) {
        lg_error_set(err, "%s: cannot load a private key from %s: %s", sub,
                     ds_name(m->private_key, nb, sizeof(nb)), ossl_reason(why, sizeof(why)));
        goto Exit;
    }
    if (X509_check_private_key(leaf, key) != 1) {
        ERR_clear_error();
        lg_error_set(err, "%s: the private key does not match the certificate", path);
        goto Exit;
    }
    int type = EVP_PKEY_get_base_id(key);
    for (size_t i = 0; i != *n_seen; ++i) {
        if (seen[i] == type) {
            lg_error_set(err, "%s: a second %s certificate: legate takes one per key type", path,
                         key_type_name(type));
            goto Exit;
        }
    }
    seen[(*n_seen)++] = type;
    if (SSL_CTX_use_cert_and_key(ctx, leaf, key, chain, 1) != 1) {
        lg_error_set(err, "%s: %s", path, ossl_reason(why, sizeof(why)));
        goto Exit;
    }
    ret = 0;
Exit:
    BIO_free(b);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    EVP_PKEY_free(key);
    free(chain_pem);
    if (key_pem != NULL)
        OPENSSL_cleanse(key_pem, key_len);
    free(key_pem);
    if (password != NULL)
        OPENSSL_cleanse(password, pw_len);
    free(password);
    return ret;
}

static int load_certificates(SSL_CTX *ctx, const pb_common_t *c, size_t max, lg_error_t *err)
{
    int seen[8];
    size_t n_seen = 0;
    if (c->n_tls_certificates > max)
        return lg_error_set(err, "common_tls_context.tls_certificates: at most %zu certificate%s "
                                 "here", max, max == 1 ? "" : "s");
    for (size_t i = 0; i != c->n_tls_certificates; ++i) {
        char path[96];
        snprintf(path, sizeof(path), "common_tls_context.tls_certificates[%zu]", i);
        if (n_seen == sizeof(seen) / sizeof(seen[0]))
            return lg_error_set(err, "%s: too many certificates", path);
        if (load_certificate(ctx, c->tls_certificates[i], path, seen, &n_seen, err) != 0)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Validation context.
 * ------------------------------------------------------------------------------------------- */

static int build_san_matcher(lg_tls_san_matcher_t *out, int gen_type, const pb_string_matcher_t *m,
                             const char *path, lg_error_t *err)
{
    const char *s = NULL;
    out->gen_type = gen_type;
    out->ignore_case = m->ignore_case;
    switch (m->match_pattern_case) {
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
        out->kind = MATCH_EXACT;
        s = m->exact;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
        out->kind = MATCH_PREFIX;
        s = m->prefix;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
        out->kind = MATCH_SUFFIX;
        s = m->suffix;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
        out->kind = MATCH_CONTAINS;
        s = m->contains;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX: {
        const Envoy__Type__Matcher__V3__RegexMatcher *r = m->safe_regex;
        out->kind = MATCH_REGEX;
        if (r->engine_type_case == ENVOY__TYPE__MATCHER__V3__REGEX_MATCHER__ENGINE_TYPE_GOOGLE_RE2 &&
            r->google_re2 != NULL && r->google_re2->max_program_size != NULL)
            out->re = lg_regex_compile_ex(r->regex, strlen(r->regex),
                                          r->google_re2->max_program_size->value, 1, err);
        else
            out->re = lg_regex_compile(r->regex, err);
        if (out->re == NULL)
            return lg_error_prefix(err, "%s.safe_regex.regex: ", path);
        return 0;
    }
    default:
        return lg_error_set(err, "%s: one of exact, prefix, suffix, contains or safe_regex is "
                                 "required", path);
    }
    if (out->kind != MATCH_EXACT && *s == '\0')
        return lg_error_set(err, "%s: the pattern must not be empty", path);
    if ((out->value = strdup(s)) == NULL)
        lg_fatal("out of memory");
    out->len = strlen(s);
    return 0;
}

static int hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Envoy's verify_certificate_hash: hex SHA-256, bytes optionally separated by ':'. */
static int parse_hash(const char *s, unsigned char out[SHA256_DIGEST_LENGTH])
{
    size_t n = 0;
    while (*s != '\0') {
        if (*s == ':') {
            ++s;
            continue;
        }
        int hi = hex_digit((unsigned char)s[0]), lo = hi < 0 ? -1 : hex_digit((unsigned char)s[1]);
        if (lo < 0 || n == SHA256_DIGEST_LENGTH)
            return -1;
        out[n++] = (unsigned char)(hi << 4 | lo);
        s += 2;
    }
    return n == SHA256_DIGEST_LENGTH ? 0 : -1;
}

/* Envoy's verify_certificate_spki: base64 of the SHA-256 of the DER SubjectPublicKeyInfo. */
static int parse_spki(const char *s, unsigned char out[SHA256_DIGEST_LENGTH])
{
    unsigned char buf[48];
    if (strlen(s) != 44 || s[43] != '=' || s[42] == '=')
        return -1;
    if (EVP_DecodeBlock(buf, (const unsigned char *)s, 44) != 33)
        return -1;
    memcpy(out, buf, SHA256_DIGEST_LENGTH);
    return 0;
}

/* Loads trusted_ca (and any CRLs it carries) into the store. Returns the number of CRLs. */
static int load_trusted_ca(X509_STORE *store, const pb_data_source_t *ds, const char *path,
                           int *n_crls, lg_error_t *err)
{
    char *pem;
    size_t len;
    char nb[300];
    if (read_data_source(ds, &pem, &len, path, err) != 0)
        return -1;
    BIO *b = mem_bio(pem, len);
    STACK_OF(X509_INFO) *infos = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL);
    int certs = 0;
    *n_crls = 0;
    for (int i = 0; infos != NULL && i < sk_X509_INFO_num(infos); ++i) {
        X509_INFO *info = sk_X509_INFO_value(infos, i);
        if (info->x509 != NULL && X509_STORE_add_cert(store, info->x509) == 1)
            ++certs;
        if (info->crl != NULL && X509_STORE_add_crl(store, info->crl) == 1)
            ++*n_crls;
    }
    ERR_clear_error();
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(b);
    free(pem);
    if (certs == 0)
        return lg_error_set(err, "%s: no CA certificate found in %s", path,
                            ds_name(ds, nb, sizeof(nb)));
    return 0;
}

static int load_crl(X509_STORE *store, const pb_data_source_t *ds, const char *path, lg_error_t *err)
{
    char *pem;
    size_t len;
    char nb[300];
    if (read_data_source(ds, &pem, &len, path, err) != 0)
        return -1;
    BIO *b = mem_bio(pem, len);
    STACK_OF(X509_INFO) *infos = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL);
    int crls = 0;
    for (int i = 0; infos != NULL && i < sk_X509_INFO_num(infos); ++i) {
        X509_INFO *info = sk_X509_INFO_value(infos, i);
        if (info->crl != NULL && X509_STORE_add_crl(store, info->crl) == 1)
            ++crls;
    }
    ERR_clear_error();
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(b);
    free(pem);
    if (crls == 0)
        return lg_error_set(err, "%s: no CRL found in %s", path, ds_name(ds, nb, sizeof(nb)));
    return 0;
}

static int san_type(int t)
{
    switch (t) {
    case PFX(SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__EMAIL):
        return GEN_EMAIL;
    case PFX(SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__DNS):
        return GEN_DNS;
    case PFX(SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__URI):
        return GEN_URI;
    case PFX(SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__IP_ADDRESS):
        return GEN_IPADD;
    default:
        return -1;
    }
}

/* Reads a CertificateValidationContext into v and ctx's certificate store. */
static int build_validation(SSL_CTX *ctx, const pb_validation_t *m, const char *path,
                            lg_tls_validation_t *v, lg_error_t *err)
{
    char sub[256];
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int n_crls = 0;

    if (m->ca_certificate_provider_instance != NULL)
        return unsupported(err, path, "ca_certificate_provider_instance");
    if (m->watched_directory != NULL)
        return unsupported(err, path, "watched_directory");
    if (m->require_signed_certificate_timestamp != NULL &&
        m->require_signed_certificate_timestamp->value)
        return unsupported(err, path, "require_signed_certificate_timestamp");
    if (m->custom_validator_config != NULL)
        return unsupported(err, path, "custom_validator_config");

    v->max_depth = m->max_verify_depth != NULL ? (int)m->max_verify_depth->value : -1;
    if (m->max_verify_depth != NULL && m->max_verify_depth->value > 100)
        return lg_error_set(err, "%s.max_verify_depth: must be at most 100", path);
    v->allow_expired = m->allow_expired_certificate;
    switch (m->trust_chain_verification) {
    case PFX(CERTIFICATE_VALIDATION_CONTEXT__TRUST_CHAIN_VERIFICATION__VERIFY_TRUST_CHAIN):
        break;
    case PFX(CERTIFICATE_VALIDATION_CONTEXT__TRUST_CHAIN_VERIFICATION__ACCEPT_UNTRUSTED):
        v->accept_untrusted = 1;
        break;
    default:
        return lg_error_set(err, "%s.trust_chain_verification: invalid value %d", path,
                            (int)m->trust_chain_verification);
    }

    if (m->trusted_ca != NULL) {
        snprintf(sub, sizeof(sub), "%s.trusted_ca", path);
        if (load_trusted_ca(store, m->trusted_ca, sub, &n_crls, err) != 0)
            return -1;
        v->verify_chain = 1;
    }
    if (m->system_root_certs != NULL) {
        if (X509_STORE_set_default_paths(store) != 1) {
            ERR_clear_error();
            return lg_error_set(err, "%s.system_root_certs: cannot load the system's CA "
                                     "certificates", path);
        }
        v->verify_chain = 1;
    }
    if (m->crl != NULL) {
        snprintf(sub, sizeof(sub), "%s.crl", path);
        if (!v->verify_chain)
            return lg_error_set(err, "%s: a CRL needs trusted_ca", sub);
        if (load_crl(store, m->crl, sub, err) != 0)
            return -1;
        ++n_crls;
    }
    if (n_crls != 0)
        X509_STORE_set_flags(store, m->only_verify_leaf_cert_crl
                                        ? X509_V_FLAG_CRL_CHECK
                                        : X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);

    /* SAN matchers: typed ones, then the deprecated untyped ones, which Envoy applies to DNS,
     * URI, email and IP SANs alike. */
    size_t cap = m->n_match_typed_subject_alt_names + 4 * m->n_match_subject_alt_names;
    if (cap != 0 && (v->sans = calloc(cap, sizeof(*v->sans))) == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i != m->n_match_typed_subject_alt_names; ++i) {
        const pb_san_matcher_t *sm = m->match_typed_subject_alt_names[i];
        snprintf(sub, sizeof(sub), "%s.match_typed_subject_alt_names[%zu]", path, i);
        int t = san_type(sm->san_type);
        if (sm->san_type == PFX(SUBJECT_ALT_NAME_MATCHER__SAN_TYPE__OTHER_NAME))
            return unsupported(err, sub, "san_type OTHER_NAME");
        if (t < 0)
            return lg_error_set(err, "%s.san_type: must be EMAIL, DNS, URI or IP_ADDRESS", sub);
        if (sm->matcher == NULL)
            return lg_error_set(err, "%s.matcher: is required", sub);
        strncat(sub, ".matcher", sizeof(sub) - strlen(sub) - 1);
        if (build_san_matcher(&v->sans[v->n_sans++], t, sm->matcher, sub, err) != 0)
            return -1;
    }
    for (size_t i = 0; i != m->n_match_subject_alt_names; ++i) {
        static const int types[] = {GEN_DNS, GEN_URI, GEN_EMAIL, GEN_IPADD};
        snprintf(sub, sizeof(sub), "%s.match_subject_alt_names[%zu]", path, i);
        for (size_t j = 0; j != sizeof(types) / sizeof(types[0]); ++j)
            if (build_san_matcher(&v->sans[v->n_sans++], types[j], m->match_subject_alt_names[i],
                                  sub, err) != 0)
                return -1;
    }

    if (m->n_verify_certificate_hash != 0 &&
        (v->hashes = calloc(m->n_verify_certificate_hash, sizeof(*v->hashes))) == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i != m->n_verify_certificate_hash; ++i) {
        if (parse_hash(m->verify_certificate_hash[i], v->hashes[i]) != 0)
            return lg_error_set(err, "%s.verify_certificate_hash[%zu]: invalid SHA-256 hex \"%s\"",
                                path, i, m->verify_certificate_hash[i]);
        ++v->n_hashes;
    }
    if (m->n_verify_certificate_spki != 0 &&
        (v->spkis = calloc(m->n_verify_certificate_spki, sizeof(*v->spkis))) == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i != m->n_verify_certificate_spki; ++i) {
        if (parse_spki(m->verify_certificate_spki[i], v->spkis[i]) != 0)
            return lg_error_set(err, "%s.verify_certificate_spki[%zu]: invalid base64 SHA-256 "
                                     "\"%s\"", path, i, m->verify_certificate_spki[i]);
        ++v->n_spkis;
    }
    return 0;
}

/* The validation context of a CommonTlsContext, or NULL; refuses the SDS / provider forms. */
static int find_validation(const pb_common_t *c, const pb_validation_t **out, char *path,
                           size_t pathlen, lg_error_t *err)
{
    static const char base[] = "common_tls_context";
    *out = NULL;
    switch (c->validation_context_type_case) {
    case PFX(COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE__NOT_SET):
        return 0;
    case PFX(COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT):
        snprintf(path, pathlen, "%s.validation_context", base);
        *out = c->validation_context;
        return 0;
    case PFX(COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_COMBINED_VALIDATION_CONTEXT): {
        const Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext
            *cv = c->combined_validation_context;
        snprintf(path, pathlen, "%s.combined_validation_context", base);
        if (cv->validation_context_sds_secret_config != NULL)
            return unsupported(err, path, "validation_context_sds_secret_config");
        if (cv->validation_context_certificate_provider != NULL)
            return unsupported(err, path, "validation_context_certificate_provider");
        if (cv->validation_context_certificate_provider_instance != NULL)
            return unsupported(err, path, "validation_context_certificate_provider_instance");
        strncat(path, ".default_validation_context", pathlen - strlen(path) - 1);
        *out = cv->default_validation_context;
        return 0;
    }
    case PFX(COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG):
        return unsupported(err, base, "validation_context_sds_secret_config");
    case PFX(COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_CERTIFICATE_PROVIDER):
        return unsupported(err, base, "validation_context_certificate_provider");
    default:
        return unsupported(err, base, "validation_context_certificate_provider_instance");
    }
}

static int check_common_unsupported(const pb_common_t *c, lg_error_t *err)
{
    static const char base[] = "common_tls_context";
    if (c->n_tls_certificate_sds_secret_configs != 0)
        return unsupported(err, base, "tls_certificate_sds_secret_configs");
    if (c->tls_certificate_provider_instance != NULL)
        return unsupported(err, base, "tls_certificate_provider_instance");
    if (c->tls_certificate_certificate_provider != NULL)
        return unsupported(err, base, "tls_certificate_certificate_provider");
    if (c->tls_certificate_certificate_provider_instance != NULL)
        return unsupported(err, base, "tls_certificate_certificate_provider_instance");
    if (c->custom_handshaker != NULL)
        return unsupported(err, base, "custom_handshaker");
    if (c->key_log != NULL)
        return unsupported(err, base, "key_log");
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Verification of the peer's certificate (both directions).
 * ------------------------------------------------------------------------------------------- */

static int lower_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
            return 0;
    return 1;
}

static int bytes_eq(const char *a, const char *b, size_t n, int ignore_case)
{
    return ignore_case ? lower_eq(a, b, n) : memcmp(a, b, n) == 0;
}

/* Envoy's DNS SAN rule for exact matchers: the SAN may be a "*.suffix" wildcard covering exactly
 * one leftmost label of the configured name. Case-insensitive. */
static int dns_name_match(const char *name, size_t nlen, const char *san, size_t slen)
{
    if (nlen == slen && lower_eq(name, san, nlen))
        return 1;
    if (slen > 2 && san[0] == '*' && san[1] == '.' && nlen > slen - 1) {
        size_t off = nlen - (slen - 1);
        return memchr(name, '.', off) == NULL && lower_eq(name + off, san + 1, slen - 1);
    }
    return 0;
}

static int san_match(const lg_tls_san_matcher_t *m, const char *s, size_t len)
{
    switch (m->kind) {
    case MATCH_EXACT:
        if (m->gen_type == GEN_DNS)
            return dns_name_match(m->value, m->len, s, len);
        return len == m->len && bytes_eq(s, m->value, len, m->ignore_case);
    case MATCH_PREFIX:
        return len >= m->len && bytes_eq(s, m->value, m->len, m->ignore_case);
    case MATCH_SUFFIX:
        return len >= m->len && bytes_eq(s + len - m->len, m->value, m->len, m->ignore_case);
    case MATCH_CONTAINS:
        for (size_t i = 0; i + m->len <= len; ++i)
            if (bytes_eq(s + i, m->value, m->len, m->ignore_case))
                return 1;
        return 0;
    default:
        return lg_regex_full_match(m->re, s, len);
    }
}

/* Whether any SAN of the certificate satisfies any matcher. */
static int sans_match(const lg_tls_validation_t *v, X509 *x)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int found = 0;
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names) && !found; ++i) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        char ip[INET6_ADDRSTRLEN];
        const char *s;
        size_t len;
        switch (g->type) {
        case GEN_DNS:
        case GEN_URI:
        case GEN_EMAIL:
            s = (const char *)ASN1_STRING_get0_data(g->d.ia5);
            len = (size_t)ASN1_STRING_length(g->d.ia5);
            if (memchr(s, '\0', len) != NULL)
                continue; /* an embedded NUL is an attack, never a name */
            break;
        case GEN_IPADD:
            len = (size_t)ASN1_STRING_length(g->d.iPAddress);
            if (len != 4 && len != 16)
                continue;
            inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(g->d.iPAddress), ip,
                      sizeof(ip));
            s = ip;
            len = strlen(ip);
            break;
        default:
            continue;
        }
        for (size_t j = 0; j != v->n_sans && !found; ++j)
            found = v->sans[j].gen_type == g->type && san_match(&v->sans[j], s, len);
    }
    GENERAL_NAMES_free(names);
    return found;
}

static int pins_match(const lg_tls_validation_t *v, X509 *x)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (v->n_hashes != 0 && X509_digest(x, EVP_sha256(), md, &mdlen) == 1) {
        for (size_t i = 0; i != v->n_hashes; ++i)
            if (memcmp(md, v->hashes[i], SHA256_DIGEST_LENGTH) == 0)
                return 1;
    }
    if (v->n_spkis != 0) {
        unsigned char *der = NULL;
        int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
        if (len > 0) {
            SHA256(der, (size_t)len, md);
            for (size_t i = 0; i != v->n_spkis; ++i) {
                if (memcmp(md, v->spkis[i], SHA256_DIGEST_LENGTH) == 0) {
                    OPENSSL_free(der);
                    return 1;
                }
            }
        }
        OPENSSL_free(der);
    }
    ERR_clear_error();
    return 0;
}

static int allow_expired_cb(int ok, X509_STORE_CTX *xs)
{
    if (!ok && X509_STORE_CTX_get_error(xs) == X509_V_ERR_CERT_HAS_EXPIRED)
        return 1;
    return ok;
}

/*
 * Replaces OpenSSL's verification (SSL_CTX_set_cert_verify_callback), as Envoy's certificate
 * validator does: the chain is verified only when a CA is configured, then the leaf must satisfy
 * the SAN matchers and the pins. It runs inside SSL_accept/SSL_connect for every TLS version.
 * The error left in xs is what h2o reports ("hostname mismatch" for SANs).
 */
static int on_cert_verify(X509_STORE_CTX *xs, void *arg)
{
    const lg_tls_validation_t *v = arg;
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    int ok = 1;
    if (v->verify_chain) {
        if (v->max_depth >= 0)
            X509_STORE_CTX_set_depth(xs, v->max_depth);
        if (v->allow_expired)
            X509_STORE_CTX_set_verify_cb(xs, allow_expired_cb);
        ok = X509_verify_cert(xs) == 1;
        if (ok)
            X509_STORE_CTX_set_error(xs, X509_V_OK);
    }
    if (ok && leaf != NULL && v->n_sans != 0 && !sans_match(v, leaf)) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_HOSTNAME_MISMATCH);
        ok = 0;
    }
    if (ok && leaf != NULL && v->n_hashes + v->n_spkis != 0 && !pins_match(v, leaf)) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
        ok = 0;
    }
    if (!ok && v->accept_untrusted) {
        X509_STORE_CTX_set_error(xs, X509_V_OK);
        ok = 1;
    }
    return ok;
}

static int validation_active(const lg_tls_validation_t *v)
{
    return v->verify_chain || v->n_sans != 0 || v->n_hashes != 0 || v->n_spkis != 0;
}

/* ---------------------------------------------------------------------------------------------
 * Server contexts.
 * ------------------------------------------------------------------------------------------- */

static h2o_iovec_t *alpn_list(const char *const *names, size_t n, const char *path, lg_error_t *err)
{
    size_t bytes = (n + 1) * sizeof(h2o_iovec_t);
    for (size_t i = 0; i != n; ++i) {
        size_t len = strlen(names[i]);
        if (len == 0 || len > 255) {
            lg_error_set(err, "%s[%zu]: a protocol name has 1 to 255 bytes", path, i);
            return NULL;
        }
        bytes += len;
    }
    h2o_iovec_t *list = malloc(bytes);
    if (list == NULL)
        lg_fatal("out of memory");
    char *p = (char *)(list + n + 1);
    for (size_t i = 0; i != n; ++i) {
        list[i].base = p;
        list[i].len = strlen(names[i]);
        memcpy(p, names[i], list[i].len);
        p += list[i].len;
    }
    list[n].base = NULL;
    list[n].len = 0;
    return list;
}

static int on_servername_ack(SSL *ssl, int *al, void *arg)
{
    (void)ssl, (void)al, (void)arg;
    return SSL_TLSEXT_ERR_OK; /* the chain was picked by this name already */
}

/* A session id context per configuration, so a session resumes only on the chain (and the
 * client-certificate policy) it was made under. */
static void set_sid_ctx(SSL_CTX *ctx, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(len + 1);
    unsigned char md[SHA256_DIGEST_LENGTH];
    if (buf == NULL)
        lg_fatal("out of memory");
    protobuf_c_message_pack(msg, buf);
    SHA256(buf, len, md);
    free(buf);
    if (SSL_CTX_set_session_id_context(ctx, md, sizeof(md)) != 1)
        lg_fatal("SSL_CTX_set_session_id_context failed");
}

lg_tls_server_ctx_t *lg_tls_server_ctx_build(const lg_pb_downstream_tls_t *msg,
                                             const char *const *alpn_default, lg_error_t *err)
{
    static const pb_common_t empty = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT;
    const pb_common_t *c = msg->common_tls_context != NULL ? msg->common_tls_context : &empty;
    const pb_validation_t *vm;
    char vpath[128];

    pthread_once(&ex_once, ex_init);
    lg_tls_server_ctx_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        lg_fatal("out of memory");
    s->ssl_ctx = new_ssl_ctx(TLS_server_method(), ex_server_ctx, s);
    SSL_CTX *ctx = s->ssl_ctx;

    switch (msg->session_ticket_keys_type_case) {
    case PFX(DOWNSTREAM_TLS_CONTEXT__SESSION_TICKET_KEYS_TYPE_SESSION_TICKET_KEYS):
        unsupported(err, "", "session_ticket_keys");
        goto Error;
    case PFX(DOWNSTREAM_TLS_CONTEXT__SESSION_TICKET_KEYS_TYPE_SESSION_TICKET_KEYS_SDS_SECRET_CONFIG):
        unsupported(err, "", "session_ticket_keys_sds_secret_config");
        goto Error;
    case PFX(DOWNSTREAM_TLS_CONTEXT__SESSION_TICKET_KEYS_TYPE_DISABLE_STATELESS_SESSION_RESUMPTION):
        s->no_tickets = msg->disable_stateless_session_resumption;
        break;
    default:
        break;
    }
    if (msg->ocsp_staple_policy != PFX(DOWNSTREAM_TLS_CONTEXT__OCSP_STAPLE_POLICY__LENIENT_STAPLING)) {
        unsupported(err, "", "ocsp_staple_policy");
        goto Error;
    }
    if (check_common_unsupported(c, err) != 0)
        goto Error;
    s->no_session_cache = msg->disable_stateful_session_resumption;
    s->require_sni = msg->require_sni != NULL && msg->require_sni->value;
    if (msg->session_timeout != NULL) {
        if (msg->session_timeout->seconds < 0 || msg->session_timeout->seconds > UINT32_MAX ||
            msg->session_timeout->nanos < 0) {
            lg_error_set(err, "session_timeout: must be from 0 to 4294967295s");
            goto Error;
        }
        s->has_session_timeout = 1;
        s->session_timeout = (long)msg->session_timeout->seconds;
        SSL_CTX_set_timeout(ctx, s->session_timeout);
    }

    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 (s->no_tickets ? SSL_OP_NO_TICKET : 0));
    if (build_params(ctx, c->tls_params, 1, &s->params, err) != 0)
        goto Error;
    if (c->n_tls_certificates == 0) {
        lg_error_set(err, "common_tls_context.tls_certificates: a listener needs a certificate");
        goto Error;
    }
    if (load_certificates(ctx, c, 8, err) != 0)
        goto Error;

    if (find_validation(c, &vm, vpath, sizeof(vpath), err) != 0)
        goto Error;
    if (vm != NULL && build_validation(ctx, vm, vpath, &s->validation, err) != 0)
        goto Error;
    /* Envoy asks for a client certificate when it can check one, and insists when told to. */
    if (validation_active(&s->validation))
        s->verify_mode = SSL_VERIFY_PEER;
    if (msg->require_client_certificate != NULL && msg->require_client_certificate->value)
        s->verify_mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, s->verify_mode, NULL);
    if (s->verify_mode != SSL_VERIFY_NONE)
        SSL_CTX_set_cert_verify_callback(ctx, on_cert_verify, &s->validation);

    if (c->n_alpn_protocols != 0) {
        if ((s->alpn = alpn_list((const char *const *)c->alpn_protocols, c->n_alpn_protocols,
                                 "common_tls_context.alpn_protocols", err)) == NULL)
            goto Error;
    } else if (alpn_default != NULL && alpn_default[0] != NULL) {
        size_t n = 0;
        while (alpn_default[n] != NULL)
            ++n;
        if ((s->alpn = alpn_list(alpn_default, n, "alpn_default", err)) == NULL)
            goto Error;
    }
    if (s->alpn != NULL)
        h2o_ssl_register_alpn_protocols(ctx, s->alpn);
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername_ack);
    set_sid_ctx(ctx, &msg->base);
    return s;

Error:
    ERR_clear_error();
    SSL_CTX_free(ctx); /* frees s through the ex_data hook */
    return NULL;
}

lg_tls_server_ctx_t *lg_tls_server_ctx_retain(lg_tls_server_ctx_t *c)
{
    SSL_CTX_up_ref(c->ssl_ctx);
    return c;
}

void lg_tls_server_ctx_release(lg_tls_server_ctx_t *c)
{
    if (c != NULL)
        SSL_CTX_free(c->ssl_ctx);
}

/* Moves a connection onto chain context c: what SSL_set_SSL_CTX does not carry over (it takes
 * the certificates, the verification store and callbacks, and ALPN) is set here. */
static int switch_to_chain(SSL *ssl, lg_tls_server_ctx_t *c)
{
    if (SSL_set_SSL_CTX(ssl, c->ssl_ctx) == NULL)
        return 0;
    if (!SSL_set_min_proto_version(ssl, c->params.min_version) ||
        !SSL_set_max_proto_version(ssl, c->params.max_version) ||
        SSL_set_cipher_list(ssl, c->params.ciphers) != 1 ||
        SSL_set1_groups_list(ssl, c->params.groups) != 1)
        return 0;
    SSL_set_verify(ssl, c->verify_mode, NULL);
    if (c->no_tickets)
        SSL_set_options(ssl, SSL_OP_NO_TICKET);
    SSL_set_ex_data(ssl, ex_ssl_chain, c);
    return 1;
}

/* ---------------------------------------------------------------------------------------------
 * The SNI selector.
 * ------------------------------------------------------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
    const lg_tls_sni_entry_t *x = a, *y = b;
    int r = strcmp(x->name, y->name);
    return r != 0 ? r : (x->chain > y->chain) - (x->chain < y->chain);
}

/* Sorts and drops repeated names, keeping the earliest chain. */
static size_t entries_sort(lg_tls_sni_entry_t *e, size_t n)
{
    size_t out = 0;
    qsort(e, n, sizeof(*e), entry_cmp);
    for (size_t i = 0; i != n; ++i) {
        if (out != 0 && strcmp(e[out - 1].name, e[i].name) == 0) {
            free(e[i].name);
            continue;
        }
        e[out++] = e[i];
    }
    return out;
}

static const lg_tls_sni_entry_t *entries_find(const lg_tls_sni_entry_t *e, size_t n, const char *name)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(name, e[mid].name);
        if (r == 0)
            return &e[mid];
        if (r < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

int lg_tls_server_selector_find(const lg_tls_server_selector_t *s, const char *sni)
{
    char name[256];
    size_t len = sni != NULL ? strlen(sni) : 0;
    if (len != 0 && len < sizeof(name)) {
        for (size_t i = 0; i != len; ++i)
            name[i] = (char)tolower((unsigned char)sni[i]);
        name[len] = '\0';
        const lg_tls_sni_entry_t *e = entries_find(s->exact, s->n_exact, name);
        if (e != NULL)
            return e->chain;
        /* Wildcards from the longest suffix down: for a.b.c tries ".b.c", then ".c". */
        for (const char *dot = strchr(name + 1, '.'); dot != NULL; dot = strchr(dot + 1, '.'))
            if ((e = entries_find(s->wild, s->n_wild, dot)) != NULL)
                return e->chain;
    }
    return s->catch_all >= 0 ? s->catch_all : s->default_index;
}

/* The SNI of the ClientHello: 1 with name filled (lowercase), 0 without SNI, -1 malformed
 * (OpenSSL's rule: exactly one host_name entry). */
static int client_hello_sni(SSL *ssl, char name[256])
{
    const unsigned char *p;
    size_t len;
    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len))
        return 0;
    if (len < 5 || ((size_t)p[0] << 8 | p[1]) != len - 2 || p[2] != TLSEXT_NAMETYPE_host_name)
        return -1;
    size_t n = (size_t)p[3] << 8 | p[4];
    if (n == 0 || n + 5 != len || n > 255)
        return -1;
    for (size_t i = 0; i != n; ++i) {
        if (p[5 + i] == '\0')
            return -1;
        name[i] = (char)tolower(p[5 + i]);
    }
    name[n] = '\0';
    return 1;
}

static int on_client_hello(SSL *ssl, int *al, void *arg)
{
    lg_tls_server_selector_t *sel = arg;
    h2o_socket_t *sock = BIO_get_data(SSL_get_rbio(ssl));
    lg_tls_conn_t *conn = sock->data; /* lg_tls_server_handshake put it there */
    char name[256];
    conn->ssl = ssl;
    int has = client_hello_sni(ssl, name);
    if (has < 0) {
        conn->_fail = "malformed server name indication";
        *al = SSL_AD_DECODE_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    int idx = lg_tls_server_selector_find(sel, has ? name : NULL);
    if (idx < 0) {
        conn->_fail = "no filter chain matches the server name";
        *al = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_CLIENT_HELLO_ERROR;
    }
    conn->chain_index = idx;
    lg_tls_server_ctx_t *c = sel->chains[idx];
    if (c->require_sni && !has) {
        conn->_fail = "the filter chain requires SNI";
        *al = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_CLIENT_HELLO_ERROR;
    }
    if (!switch_to_chain(ssl, c)) {
        ERR_clear_error();
        conn->_fail = "cannot apply the filter chain's TLS context";
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    SSL_set_ex_data(ssl, ex_ssl_selector, sel);
    return SSL_CLIENT_HELLO_SUCCESS;
}

/* Sessions are made and cached by the selector's context (OpenSSL keeps the first context as the
 * session context); the chain's session settings are applied to each new session here. */
static void apply_session_settings(SSL *ssl, SSL_SESSION *sess)
{
    const lg_tls_server_ctx_t *c = SSL_get_ex_data(ssl, ex_ssl_chain);
    if (c != NULL && c->has_session_timeout && sess != NULL)
        SSL_SESSION_set_timeout(sess, c->session_timeout);
}

static int on_ticket_gen(SSL *ssl, void *arg)
{
    (void)arg;
    apply_session_settings(ssl, SSL_get0_session(ssl));
    return 1;
}

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    const lg_tls_server_ctx_t *c = SSL_get_ex_data(ssl, ex_ssl_chain);
    lg_tls_server_selector_t *sel = SSL_get_ex_data(ssl, ex_ssl_selector);
    apply_session_settings(ssl, sess);
    if (c != NULL && c->no_session_cache && sel != NULL)
        SSL_CTX_remove_session(sel->ssl_ctx, sess);
    return 0; /* no reference kept */
}

static int add_server_names(lg_tls_server_selector_t *s, const lg_tls_sni_chain_t *ch, size_t i,
                            lg_error_t *err)
{
    for (size_t j = 0; j != ch->n_server_names; ++j) {
        const char *n = ch->server_names[j];
        size_t len = strlen(n);
        int wild = len > 2 && n[0] == '*' && n[1] == '.';
        if (len == 0 || len > 255 || strchr(n + (wild ? 1 : 0), '*') != NULL)
            return lg_error_set(err, "filter_chains[%zu].filter_chain_match.server_names[%zu]: "
                                     "invalid server name \"%s\"", i, j, n);
        lg_tls_sni_entry_t e = {strdup(wild ? n + 1 : n), (int)i};
        if (e.name == NULL)
            lg_fatal("out of memory");
        for (char *p = e.name; *p != '\0'; ++p)
            *p = (char)tolower((unsigned char)*p);
        if (wild)
            s->wild[s->n_wild++] = e;
        else
            s->exact[s->n_exact++] = e;
    }
    return 0;
}

lg_tls_server_selector_t *lg_tls_server_selector_build(const lg_tls_sni_chain_t *chains,
                                                       size_t n_chains, int default_index,
                                                       lg_error_t *err)
{
    size_t n_names = 0, n_tls = 0;
    pthread_once(&ex_once, ex_init);
    lg_tls_server_selector_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        lg_fatal("out of memory");
    s->ssl_ctx = new_ssl_ctx(TLS_server_method(), ex_selector, s);
    s->catch_all = -1;
    s->default_index = -1;
    if ((s->chains = calloc(n_chains + 1, sizeof(*s->chains))) == NULL)
        lg_fatal("out of memory");
    s->n_chains = n_chains;
    for (size_t i = 0; i != n_chains; ++i) {
        if (chains[i].tls != NULL) {
            s->chains[i] = lg_tls_server_ctx_retain(chains[i].tls);
            ++n_tls;
        }
        n_names += chains[i].n_server_names;
    }
    if (n_tls == 0) {
        lg_error_set(err, "filter_chains: no chain has a TLS context");
        goto Error;
    }
    if (default_index >= 0 && ((size_t)default_index >= n_chains || chains[default_index].tls == NULL)) {
        lg_error_set(err, "default_filter_chain: not a TLS chain");
        goto Error;
    }
    s->default_index = default_index;
    if ((s->exact = calloc(n_names + 1, sizeof(*s->exact))) == NULL ||
        (s->wild = calloc(n_names + 1, sizeof(*s->wild))) == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i != n_chains; ++i) {
        if (chains[i].tls == NULL || (int)i == default_index)
            continue;
        if (chains[i].n_server_names == 0) {
            if (s->catch_all < 0)
                s->catch_all = (int)i;
        } else if (add_server_names(s, &chains[i], i, err) != 0) {
            goto Error;
        }
    }
    s->n_exact = entries_sort(s->exact, s->n_exact);
    s->n_wild = entries_sort(s->wild, s->n_wild);

    /* The versions a chain allows are set per connection before negotiation; this context only
     * has to let the ClientHello through to the callback. */
    SSL_CTX *ctx = s->ssl_ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_client_hello_cb(ctx, on_client_hello, s);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    SSL_CTX_set_session_ticket_cb(ctx, on_ticket_gen, NULL, NULL);
    static const unsigned char sid[] = "legate-sni";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    return s;

Error:
    SSL_CTX_free(s->ssl_ctx); /* frees s */
    return NULL;
}

lg_tls_server_selector_t *lg_tls_server_selector_retain(lg_tls_server_selector_t *s)
{
    SSL_CTX_up_ref(s->ssl_ctx);
    return s;
}

void lg_tls_server_selector_release(lg_tls_server_selector_t *s)
{
    if (s != NULL)
        SSL_CTX_free(s->ssl_ctx);
}

/* ---------------------------------------------------------------------------------------------
 * Client contexts.
 * ------------------------------------------------------------------------------------------- */

/* Records the SSL of a client connection at its first handshake event (h2o hides it). */
static void on_client_info(const SSL *ssl, int where, int ret)
{
    (void)ret;
    if ((where & SSL_CB_HANDSHAKE_START) == 0 || SSL_get_ex_data(ssl, ex_ssl_started) != NULL)
        return;
    h2o_socket_t *sock = BIO_get_data(SSL_get_rbio(ssl));
    lg_tls_conn_t *conn = sock->data; /* lg_tls_client_handshake put it there */
    conn->ssl = (SSL *)ssl;
    SSL_set_ex_data((SSL *)ssl, ex_ssl_started, &ssl_started_marker);
}

static int alpn_wire(char *const *names, size_t n, unsigned char **out, size_t *outlen,
                     lg_error_t *err)
{
    size_t len = 0;
    for (size_t i = 0; i != n; ++i) {
        size_t l = strlen(names[i]);
        if (l == 0 || l > 255)
            return lg_error_set(err, "common_tls_context.alpn_protocols[%zu]: a protocol name has "
                                     "1 to 255 bytes", i);
        len += 1 + l;
    }
    unsigned char *p = malloc(len + 1);
    if (p == NULL)
        lg_fatal("out of memory");
    *out = p;
    *outlen = len;
    for (size_t i = 0; i != n; ++i) {
        size_t l = strlen(names[i]);
        *p++ = (unsigned char)l;
        memcpy(p, names[i], l);
        p += l;
    }
    return 0;
}

lg_tls_client_ctx_t *lg_tls_client_ctx_build(const lg_pb_upstream_tls_t *msg, int want_h2,
                                             lg_error_t *err)
{
    static const pb_common_t empty = ENVOY__EXTENSIONS__TRANSPORT_SOCKETS__TLS__V3__COMMON_TLS_CONTEXT__INIT;
    static char *const h2[] = {"h2"}, *const http11[] = {"http/1.1"};
    const pb_common_t *c = msg->common_tls_context != NULL ? msg->common_tls_context : &empty;
    const pb_validation_t *vm;
    char vpath[128], why[256];
    lg_tls_params_t params = {0};
    unsigned char *wire = NULL;
    size_t wire_len = 0;

    pthread_once(&ex_once, ex_init);
    lg_tls_client_ctx_t *cc = calloc(1, sizeof(*cc));
    if (cc == NULL)
        lg_fatal("out of memory");
    cc->ssl_ctx = new_ssl_ctx(TLS_client_method(), ex_client_ctx, cc);
    SSL_CTX *ctx = cc->ssl_ctx;

    if (check_common_unsupported(c, err) != 0)
        goto Error;
    if (msg->sni[0] != '\0') {
        if (strlen(msg->sni) > 255) {
            lg_error_set(err, "sni: longer than 255 bytes");
            goto Error;
        }
        if ((cc->sni = strdup(msg->sni)) == NULL)
            lg_fatal("out of memory");
    }
    SSL_CTX_set_options(ctx, msg->allow_renegotiation ? 0 : SSL_OP_NO_RENEGOTIATION);
    if (build_params(ctx, c->tls_params, 0, &params, err) != 0)
        goto Error;
    if (load_certificates(ctx, c, 1, err) != 0)
        goto Error;
    if (find_validation(c, &vm, vpath, sizeof(vpath), err) != 0)
        goto Error;
    if (vm != NULL && build_validation(ctx, vm, vpath, &cc->validation, err) != 0)
        goto Error;
    if (validation_active(&cc->validation)) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_cert_verify_callback(ctx, on_cert_verify, &cc->validation);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* Envoy: no validation context, no checks */
    }

    if (alpn_wire(c->n_alpn_protocols != 0 ? c->alpn_protocols : want_h2 ? h2 : http11,
                  c->n_alpn_protocols != 0 ? c->n_alpn_protocols : 1, &wire, &wire_len, err) != 0)
        goto Error;
    if (SSL_CTX_set_alpn_protos(ctx, wire, (unsigned)wire_len) != 0) {
        lg_error_set(err, "common_tls_context.alpn_protocols: %s", ossl_reason(why, sizeof(why)));
        goto Error;
    }
    SSL_CTX_set_info_callback(ctx, on_client_info);
    free(wire);
    free(params.ciphers);
    free(params.groups);
    return cc;

Error:
    ERR_clear_error();
    free(wire);
    free(params.ciphers);
    free(params.groups);
    SSL_CTX_free(ctx); /* frees cc */
    return NULL;
}

lg_tls_client_ctx_t *lg_tls_client_ctx_retain(lg_tls_client_ctx_t *c)
{
    SSL_CTX_up_ref(c->ssl_ctx);
    return c;
}

void lg_tls_client_ctx_release(lg_tls_client_ctx_t *c)
{
    if (c != NULL)
        SSL_CTX_free(c->ssl_ctx);
}

const char *lg_tls_client_ctx_sni(const lg_tls_client_ctx_t *c)
{
    return c->sni;
}

/* ---------------------------------------------------------------------------------------------
 * Handshakes.
 * ------------------------------------------------------------------------------------------- */

static void conn_start(h2o_socket_t *sock, lg_tls_conn_t *conn, h2o_socket_cb cb)
{
    conn->ssl = NULL;
    conn->chain_index = -1;
    conn->_fail = NULL;
    conn->_cb = cb;
    conn->_user_data = sock->data;
    sock->data = conn;
}

static void on_server_handshake(h2o_socket_t *sock, const char *err)
{
    lg_tls_conn_t *conn = sock->data;
    sock->data = conn->_user_data;
    if (err != NULL && conn->_fail != NULL)
        err = conn->_fail;
    conn->_cb(sock, err);
}

void lg_tls_server_handshake(h2o_socket_t *sock, lg_tls_server_selector_t *sel, lg_tls_conn_t *conn,
                             h2o_socket_cb cb)
{
    conn_start(sock, conn, cb);
    h2o_socket_ssl_handshake(sock, sel->ssl_ctx, NULL, on_server_handshake);
}

static void on_client_handshake(h2o_socket_t *sock, const char *err)
{
    lg_tls_conn_t *conn = sock->data;
    sock->data = conn->_user_data;
    /* These three come only from h2o's own host-name check after a completed TLS 1.2 handshake
     * (skipped under TLS 1.3). Envoy checks no host name unless told to, and what the config asks
     * for was verified inside OpenSSL already, so the handshake stands. */
    if (err == h2o_socket_error_ssl_cert_name_mismatch || err == h2o_socket_error_ssl_cert_invalid ||
        err == h2o_socket_error_ssl_no_cert)
        err = NULL;
    conn->_cb(sock, err);
}

void lg_tls_client_handshake(h2o_socket_t *sock, lg_tls_client_ctx_t *ctx, const char *sni_override,
                             lg_tls_conn_t *conn, h2o_socket_cb cb)
{
    const char *sni = sni_override != NULL && sni_override[0] != '\0' ? sni_override
                      : ctx->sni != NULL                                ? ctx->sni
                                                                        : "";
    conn_start(sock, conn, cb);
    /* h2o takes a non-NULL name as "client mode"; OpenSSL refuses an empty SNI, so "" sends none. */
    h2o_socket_ssl_handshake(sock, ctx->ssl_ctx, sni, on_client_handshake);
}

const char *lg_tls_conn_sni(const lg_tls_conn_t *conn)
{
    return conn->ssl != NULL ? SSL_get_servername(conn->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

int lg_tls_conn_has_peer_cert(const lg_tls_conn_t *conn)
{
    return conn->ssl != NULL && SSL_get0_peer_certificate(conn->ssl) != NULL;
}
