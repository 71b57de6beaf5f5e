/*
 * TLS contexts from Envoy's DownstreamTlsContext / UpstreamTlsContext, and the client handshake.
 * Contract: tls_context.h. What both directions share is here (DataSources, TLS parameters,
 * certificates); the validation context is tls_validation.c, the SNI selector and the server
 * handshake tls_sni.c.
 *
 * Not for: reading certificates for anything but TLS contexts, SDS, OCSP.
 */
#include "tls_internal.h"

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

#include "log.h"

/* The deprecated certificate-provider fields still parse in Envoy, so legate reads them too (to
 * refuse them): the generated accessors are marked deprecated. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define PFX LG_TLS_PB

typedef lg_pb_common_tls_t pb_common_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsParameters pb_params_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__TlsCertificate pb_cert_t;
typedef lg_pb_validation_t pb_validation_t;
typedef lg_pb_data_source_t pb_data_source_t;

const char *const lg_tls_alpn_h2_http11[] = {"h2", "http/1.1", NULL};

/* Envoy's default TLS 1.2 cipher list (non-FIPS), in OpenSSL's names; BoringSSL's equal-preference
 * groups "[A|B]" become A:B. */
static const char default_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
                                      "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
                                      "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384";
static const char default_groups[] = "X25519:P-256";

#define MAX_DATA_SOURCE_BYTES (16u << 20)

struct st_lg_tls_client_ctx_t {
    SSL_CTX *ssl_ctx;
    char *sni;
    lg_tls_validation_t validation;
};

/* ---------------------------------------------------------------------------------------------
 * ex_data: our structs hang on their SSL_CTX and die with it (tls_internal.h).
 * ------------------------------------------------------------------------------------------- */

static int ex_server_ctx = -1, ex_client_ctx = -1, ex_ssl_started = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static char ssl_started_marker;

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
    lg__tls_validation_dispose(&c->validation);
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
    lg__tls_validation_dispose(&c->validation);
    free(c);
}

static void ex_init(void)
{
    ex_server_ctx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_server_ctx);
    ex_client_ctx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_client_ctx);
    ex_ssl_started = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (ex_server_ctx < 0 || ex_client_ctx < 0 || ex_ssl_started < 0)
        lg_fatal("OpenSSL ex_data indexes unavailable");
}

SSL_CTX *lg__tls_new_ssl_ctx(const SSL_METHOD *method, int idx, void *obj)
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

int lg__tls_unsupported(lg_error_t *err, const char *path, const char *field)
{
    return lg_error_set(err, "%s%s%s: not supported by legate", path, *path ? "." : "", field);
}

const char *lg__tls_data_source_name(const pb_data_source_t *ds, char *buf, size_t len)
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

int lg__tls_read_data_source(const pb_data_source_t *ds, char **out, size_t *outlen,
                            const char *path, lg_error_t *err)
{
    const char *p = "";
    size_t len = 0;
    if (ds->watched_directory != NULL)
        return lg__tls_unsupported(err, path, "watched_directory");
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

BIO *lg__tls_mem_bio(const char *data, size_t len)
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
        return lg__tls_unsupported(err, path, "pkcs12");
    if (m->watched_directory != NULL)
        return lg__tls_unsupported(err, path, "watched_directory");
    if (m->private_key_provider != NULL)
        return lg__tls_unsupported(err, path, "private_key_provider");
    if (m->ocsp_staple != NULL)
        return lg__tls_unsupported(err, path, "ocsp_staple");
    if (m->n_signed_certificate_timestamp != 0)
        return lg__tls_unsupported(err, path, "signed_certificate_timestamp");
    if (m->certificate_chain == NULL)
        return lg_error_set(err, "%s.certificate_chain: is required", path);
    if (m->private_key == NULL)
        return lg_error_set(err, "%s.private_key: is required", path);

    snprintf(sub, sizeof(sub), "%s.certificate_chain", path);
    if (lg__tls_read_data_source(m->certificate_chain, &chain_pem, &chain_len, sub, err) != 0)
        goto Exit;
    b = lg__tls_mem_bio(chain_pem, chain_len);
    if ((leaf = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL)) == NULL) {
        ERR_clear_error();
        lg_error_set(err, "%s: no certificate found in %s", sub,
                     lg__tls_data_source_name(m->certificate_chain, nb, sizeof(nb)));
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
                     lg__tls_data_source_name(m->certificate_chain, nb, sizeof(nb)),
                     ossl_reason(why, sizeof(why)));
        goto Exit;
    }
    ERR_clear_error();
    BIO_free(b);
    b = NULL;

    if (m->password != NULL) {
        snprintf(sub, sizeof(sub), "%s.password", path);
        if (lg__tls_read_data_source(m->password, &password, &pw_len, sub, err) != 0)
            goto Exit;
    }
    snprintf(sub, sizeof(sub), "%s.private_key", path);
    if (lg__tls_read_data_source(m->private_key, &key_pem, &key_len, sub, err) != 0)
        goto Exit;
    b = lg__tls_mem_bio(key_pem, key_len);
    if ((key = PEM_read_bio_PrivateKey(b, NULL, password_cb, password)) == NULL) {
        lg_error_set(err, "%s: cannot load a private key from %s: %s", sub,
                     lg__tls_data_source_name(m->private_key, nb, sizeof(nb)),
                     ossl_reason(why, sizeof(why)));
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

static int check_common_unsupported(const pb_common_t *c, lg_error_t *err)
{
    static const char base[] = "common_tls_context";
    if (c->n_tls_certificate_sds_secret_configs != 0)
        return lg__tls_unsupported(err, base, "tls_certificate_sds_secret_configs");
    if (c->tls_certificate_provider_instance != NULL)
        return lg__tls_unsupported(err, base, "tls_certificate_provider_instance");
    if (c->tls_certificate_certificate_provider != NULL)
        return lg__tls_unsupported(err, base, "tls_certificate_certificate_provider");
    if (c->tls_certificate_certificate_provider_instance != NULL)
        return lg__tls_unsupported(err, base, "tls_certificate_certificate_provider_instance");
    if (c->custom_handshaker != NULL)
        return lg__tls_unsupported(err, base, "custom_handshaker");
    if (c->key_log != NULL)
        return lg__tls_unsupported(err, base, "key_log");
    return 0;
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
    static const pb_common_t empty = LG_TLS_PB(COMMON_TLS_CONTEXT__INIT);
    const pb_common_t *c = msg->common_tls_context != NULL ? msg->common_tls_context : &empty;
    const pb_validation_t *vm;
    char vpath[128];

    pthread_once(&ex_once, ex_init);
    lg_tls_server_ctx_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        lg_fatal("out of memory");
    s->ssl_ctx = lg__tls_new_ssl_ctx(TLS_server_method(), ex_server_ctx, s);
    SSL_CTX *ctx = s->ssl_ctx;

    switch (msg->session_ticket_keys_type_case) {
    case PFX(DOWNSTREAM_TLS_CONTEXT__SESSION_TICKET_KEYS_TYPE_SESSION_TICKET_KEYS):
        lg__tls_unsupported(err, "", "session_ticket_keys");
        goto Error;
    case PFX(
        DOWNSTREAM_TLS_CONTEXT__SESSION_TICKET_KEYS_TYPE_SESSION_TICKET_KEYS_SDS_SECRET_CONFIG):
        lg__tls_unsupported(err, "", "session_ticket_keys_sds_secret_config");
        goto Error;
    case PFX(DOWNSTREAM_TLS_CONTEXT__SESSION_TICKET_KEYS_TYPE_DISABLE_STATELESS_SESSION_RESUMPTION):
        s->no_tickets = msg->disable_stateless_session_resumption;
        break;
    default:
        break;
    }
    if (msg->ocsp_staple_policy !=
        PFX(DOWNSTREAM_TLS_CONTEXT__OCSP_STAPLE_POLICY__LENIENT_STAPLING)) {
        lg__tls_unsupported(err, "", "ocsp_staple_policy");
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

    if (lg__tls_find_validation(c, &vm, vpath, sizeof(vpath), err) != 0)
        goto Error;
    if (vm != NULL && lg__tls_validation_build(ctx, vm, vpath, &s->validation, err) != 0)
        goto Error;
    /* Envoy asks for a client certificate when it can check one, and insists when told to. */
    if (lg__tls_validation_active(&s->validation))
        s->verify_mode = SSL_VERIFY_PEER;
    if (msg->require_client_certificate != NULL && msg->require_client_certificate->value)
        s->verify_mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx, s->verify_mode, NULL);
    if (s->verify_mode != SSL_VERIFY_NONE)
        SSL_CTX_set_cert_verify_callback(ctx, lg__tls_cert_verify, &s->validation);

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
    static const pb_common_t empty = LG_TLS_PB(COMMON_TLS_CONTEXT__INIT);
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
    cc->ssl_ctx = lg__tls_new_ssl_ctx(TLS_client_method(), ex_client_ctx, cc);
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
    if (lg__tls_find_validation(c, &vm, vpath, sizeof(vpath), err) != 0)
        goto Error;
    if (vm != NULL && lg__tls_validation_build(ctx, vm, vpath, &cc->validation, err) != 0)
        goto Error;
    if (lg__tls_validation_active(&cc->validation)) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_cert_verify_callback(ctx, lg__tls_cert_verify, &cc->validation);
    } else {
        /* Envoy: no validation context, no checks. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
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

void lg__tls_conn_start(h2o_socket_t *sock, lg_tls_conn_t *conn, h2o_socket_cb cb)
{
    conn->ssl = NULL;
    conn->chain_index = -1;
    conn->_fail = NULL;
    conn->_cb = cb;
    conn->_user_data = sock->data;
    sock->data = conn;
}

static void on_client_handshake(h2o_socket_t *sock, const char *err)
{
    lg_tls_conn_t *conn = sock->data;
    sock->data = conn->_user_data;
    /* These three come only from h2o's own host-name check after a completed TLS 1.2 handshake
     * (skipped under TLS 1.3). Envoy checks no host name unless told to, and what the config asks
     * for was verified inside OpenSSL already, so the handshake stands. */
    if (err == h2o_socket_error_ssl_cert_name_mismatch ||
        err == h2o_socket_error_ssl_cert_invalid || err == h2o_socket_error_ssl_no_cert)
        err = NULL;
    conn->_cb(sock, err);
}

void lg_tls_client_handshake(h2o_socket_t *sock, lg_tls_client_ctx_t *ctx, const char *sni_override,
                             lg_tls_conn_t *conn, h2o_socket_cb cb)
{
    const char *sni = sni_override != NULL && sni_override[0] != '\0' ? sni_override
                      : ctx->sni != NULL                                ? ctx->sni
                                                                        : "";
    lg__tls_conn_start(sock, conn, cb);
    /* h2o takes a non-NULL name as "client mode"; OpenSSL refuses an empty SNI, so "" sends
     * none. */
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
