/*
 * The SNI selector of a listener: one OpenSSL context per listener that every TLS connection
 * starts on. Its ClientHello callback reads the SNI, picks the filter chain with Envoy's
 * server_names rules (exact name, longest "*." wildcard suffix, chain without server_names,
 * default chain), moves the connection onto that chain's context and records the chain for the
 * listener. Sessions (cache and tickets) belong to the selector's context, OpenSSL's "session
 * context"; each chain has its own session id context, so a session resumes only on the chain
 * that made it.
 *
 * Not for: building chain contexts (tls_context.c), matching anything but the server name.
 */
#include "tls_internal.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "log.h"

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

static int ex_selector = -1, ex_ssl_chain = -1, ex_ssl_selector = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

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
    ex_selector = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, free_selector);
    ex_ssl_chain = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    ex_ssl_selector = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (ex_selector < 0 || ex_ssl_chain < 0 || ex_ssl_selector < 0)
        lg_fatal("OpenSSL ex_data indexes unavailable");
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

static const lg_tls_sni_entry_t *entries_find(const lg_tls_sni_entry_t *e, size_t n,
                                              const char *name)
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
    s->ssl_ctx = lg__tls_new_ssl_ctx(TLS_server_method(), ex_selector, s);
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
    if (default_index >= 0 &&
        ((size_t)default_index >= n_chains || chains[default_index].tls == NULL)) {
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
 * The server handshake.
 * ------------------------------------------------------------------------------------------- */

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
    lg__tls_conn_start(sock, conn, cb);
    h2o_socket_ssl_handshake(sock, sel->ssl_ctx, NULL, on_server_handshake);
}
