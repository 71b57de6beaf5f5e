/*
 * The validation side of legate's TLS contexts: a CertificateValidationContext read into plain C
 * (trusted CAs and CRLs into the context's store; SAN matchers, certificate hashes and SPKI pins
 * into lg_tls_validation_t), and the verification callback that enforces it on the peer's
 * certificate during the handshake, for servers (client certificates) and clients alike.
 *
 * Envoy's rules: the chain is verified only when a CA is configured; SAN matchers accept when
 * any matcher matches any SAN of the leaf (an exact DNS matcher follows DNS wildcard rules);
 * hashes and SPKI pins accept when either matches; ACCEPT_UNTRUSTED accepts everything.
 *
 * Not for: building the SSL_CTX around it (tls_context.c), choosing it (tls_sni.c).
 */
#include "tls_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "log.h"

/* The deprecated fields (match_subject_alt_names, google_re2, the certificate-provider fields)
 * still parse in Envoy, so legate reads them too: the generated accessors are marked deprecated. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define PFX LG_TLS_PB

typedef lg_pb_common_tls_t pb_common_t;
typedef lg_pb_validation_t pb_validation_t;
typedef lg_pb_data_source_t pb_data_source_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__SubjectAltNameMatcher pb_san_matcher_t;
typedef Envoy__Type__Matcher__V3__StringMatcher pb_string_matcher_t;
typedef Envoy__Extensions__TransportSockets__Tls__V3__CommonTlsContext__CombinedCertificateValidationContext
    pb_combined_t;

enum { MATCH_EXACT, MATCH_PREFIX, MATCH_SUFFIX, MATCH_CONTAINS, MATCH_REGEX };

/* ---------------------------------------------------------------------------------------------
 * Reading a validation context.
 * ------------------------------------------------------------------------------------------- */

void lg__tls_validation_dispose(lg_tls_validation_t *v)
{
    for (size_t i = 0; i != v->n_sans; ++i) {
        free(v->sans[i].value);
        lg_regex_free(v->sans[i].re);
    }
    free(v->sans);
    free(v->hashes);
    free(v->spkis);
}

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
        if (r->engine_type_case ==
                ENVOY__TYPE__MATCHER__V3__REGEX_MATCHER__ENGINE_TYPE_GOOGLE_RE2 &&
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

/* Loads trusted_ca (and any CRLs it carries: their count goes to *n_crls) into the store. */
static int load_trusted_ca(X509_STORE *store, const pb_data_source_t *ds, const char *path,
                           int *n_crls, lg_error_t *err)
{
    char *pem;
    size_t len;
    char nb[300];
    if (lg__tls_read_data_source(ds, &pem, &len, path, err) != 0)
        return -1;
    BIO *b = lg__tls_mem_bio(pem, len);
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
                            lg__tls_data_source_name(ds, nb, sizeof(nb)));
    return 0;
}

static int load_crl(X509_STORE *store, const pb_data_source_t *ds, const char *path,
                    lg_error_t *err)
{
    char *pem;
    size_t len;
    char nb[300];
    if (lg__tls_read_data_source(ds, &pem, &len, path, err) != 0)
        return -1;
    BIO *b = lg__tls_mem_bio(pem, len);
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
        return lg_error_set(err, "%s: no CRL found in %s", path,
                            lg__tls_data_source_name(ds, nb, sizeof(nb)));
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
int lg__tls_validation_build(SSL_CTX *ctx, const pb_validation_t *m, const char *path,
                            lg_tls_validation_t *v, lg_error_t *err)
{
    char sub[256];
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int n_crls = 0;

    if (m->ca_certificate_provider_instance != NULL)
        return lg__tls_unsupported(err, path, "ca_certificate_provider_instance");
    if (m->watched_directory != NULL)
        return lg__tls_unsupported(err, path, "watched_directory");
    if (m->require_signed_certificate_timestamp != NULL &&
        m->require_signed_certificate_timestamp->value)
        return lg__tls_unsupported(err, path, "require_signed_certificate_timestamp");
    if (m->custom_validator_config != NULL)
        return lg__tls_unsupported(err, path, "custom_validator_config");

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
            return lg__tls_unsupported(err, sub, "san_type OTHER_NAME");
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
int lg__tls_find_validation(const pb_common_t *c, const pb_validation_t **out, char *path,
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
        const pb_combined_t *cv = c->combined_validation_context;
        snprintf(path, pathlen, "%s.combined_validation_context", base);
        if (cv->validation_context_sds_secret_config != NULL)
            return lg__tls_unsupported(err, path, "validation_context_sds_secret_config");
        if (cv->validation_context_certificate_provider != NULL)
            return lg__tls_unsupported(err, path, "validation_context_certificate_provider");
        if (cv->validation_context_certificate_provider_instance != NULL)
            return lg__tls_unsupported(err, path,
                                       "validation_context_certificate_provider_instance");
        strncat(path, ".default_validation_context", pathlen - strlen(path) - 1);
        *out = cv->default_validation_context;
        return 0;
    }
    case PFX(COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_SDS_SECRET_CONFIG):
        return lg__tls_unsupported(err, base, "validation_context_sds_secret_config");
    case PFX(COMMON_TLS_CONTEXT__VALIDATION_CONTEXT_TYPE_VALIDATION_CONTEXT_CERTIFICATE_PROVIDER):
        return lg__tls_unsupported(err, base, "validation_context_certificate_provider");
    default:
        return lg__tls_unsupported(err, base, "validation_context_certificate_provider_instance");
    }
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
int lg__tls_cert_verify(X509_STORE_CTX *xs, void *arg)
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

int lg__tls_validation_active(const lg_tls_validation_t *v)
{
    return v->verify_chain || v->n_sans != 0 || v->n_hashes != 0 || v->n_spkis != 0;
}
