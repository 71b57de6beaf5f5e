/*
 * Content negotiation for the compressor filter: which coding the client's Accept-Encoding asks
 * for (q-values, "*", identity) and whether a Content-Type is one the filter compresses. The
 * outcome and its stat follow Envoy's compressor filter for a chain with one compressor. Pure
 * functions over header values; no allocation.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filters/compressor/compressor.h"

/* Envoy's list when content_type is empty (compressor_filter.cc, defaultContentEncoding). */
const char *const lg_compressor_default_content_types[] = {
    "text/html", "text/plain", "text/css", "application/javascript", "application/x-javascript",
    "text/javascript", "text/x-javascript", "text/ecmascript", "text/js", "text/jscript", "text/x-js",
    "application/ecmascript", "application/x-json", "application/xml", "application/json",
    "image/svg+xml", "text/xml", "application/xhtml+xml", "application/grpc-web",
    "application/grpc-web+proto", NULL};

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static h2o_iovec_t trim(const char *b, const char *e)
{
    while (b < e && is_blank(*b))
        ++b;
    while (e > b && is_blank(e[-1]))
        --e;
    return h2o_iovec_init(b, (size_t)(e - b));
}

static int eq_nocase(h2o_iovec_t v, const char *s)
{
    size_t n = strlen(s);
    return v.len == n && strncasecmp(v.base, s, n) == 0;
}

/* Parses a q-value as a float; 0 with *ok = 0 when it is not a number. */
static float parse_q(h2o_iovec_t v, int *ok)
{
    char buf[32];
    *ok = 0;
    if (v.len == 0 || v.len >= sizeof(buf))
        return 0;
    memcpy(buf, v.base, v.len);
    buf[v.len] = '\0';
    char *end;
    float q = strtof(buf, &end);
    if (end != buf + v.len)
        return 0;
    *ok = 1;
    return q;
}

/* One element of Accept-Encoding: the coding and its q (1 when absent). 0 when the element is to
 * be skipped (a q parameter that is not a number), as Envoy skips it. */
static int parse_element(const char *b, const char *e, h2o_iovec_t *coding, float *q)
{
    const char *semi = memchr(b, ';', (size_t)(e - b));
    *coding = trim(b, semi != NULL ? semi : e);
    *q = 1;
    if (semi == NULL)
        return 1;
    /* Only the first parameter is looked at, and only when it is q=... */
    const char *pb = semi + 1, *pe = memchr(pb, ';', (size_t)(e - pb));
    if (pe == NULL)
        pe = e;
    const char *eq = memchr(pb, '=', (size_t)(pe - pb));
    if (eq == NULL || !eq_nocase(trim(pb, eq), "q"))
        return 1;
    int ok;
    *q = parse_q(trim(eq + 1, e), &ok);
    return ok;
}

lg_accept_encoding_t lg_compressor_negotiate(h2o_iovec_t value, const char *coding, int allowed,
                                             int choose_first, int *use)
{
    *use = 0;
    /* First pass: is our coding refused outright (q=0), and is there any element at all? */
    size_t n_elements = 0;
    const char *p = value.base, *end = value.base + value.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p)), *e = comma != NULL ? comma : end;
        h2o_iovec_t c;
        float q;
        if (trim(p, e).len != 0 && parse_element(p, e, &c, &q)) {
            ++n_elements;
            if (q == 0 && eq_nocase(c, coding))
                allowed = 0;
        }
        p = e + (comma != NULL);
    }
    if (n_elements == 0 || !allowed)
        return LG_ACCEPT_NOT_VALID;

    /* Second pass: the acceptable element with the highest q; on a tie the first one stays,
     * unless the later one is our coding and choose_first is set. */
    enum { NONE, IDENTITY, WILDCARD, CODING } choice = NONE;
    float best = 0;
    for (p = value.base; p < end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p)), *e = comma != NULL ? comma : end;
        h2o_iovec_t c;
        float q;
        if (trim(p, e).len != 0 && parse_element(p, e, &c, &q)) {
            int ours = eq_nocase(c, coding);
            int kind = ours ? CODING : eq_nocase(c, "identity") ? IDENTITY : eq_nocase(c, "*") ? WILDCARD : NONE;
            if (kind != NONE && (q > best || (q == best && ours && choose_first))) {
                best = q;
                choice = kind;
            }
        }
        p = e + (comma != NULL);
    }
    if (best == 0 || choice == NONE)
        return LG_ACCEPT_NOT_VALID;
    switch (choice) {
    case IDENTITY:
        return LG_ACCEPT_IDENTITY;
    case WILDCARD:
        *use = 1;
        return LG_ACCEPT_WILDCARD;
    default:
        *use = 1;
        return LG_ACCEPT_CODING;
    }
}

int lg_compressor_content_type_allowed(h2o_iovec_t content_type, const h2o_iovec_t *types, size_t n_types)
{
    if (content_type.len == 0 || n_types == 0)
        return 1;
    const char *semi = memchr(content_type.base, ';', content_type.len);
    h2o_iovec_t v = trim(content_type.base, semi != NULL ? semi : content_type.base + content_type.len);
    for (size_t i = 0; i < n_types; ++i)
        if (types[i].len == v.len && strncasecmp(types[i].base, v.base, v.len) == 0)
            return 1;
    return 0;
}

int lg_compressor_list_has(h2o_iovec_t list, const char *token)
{
    const char *p = list.base, *end = list.base + list.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p)), *e = comma != NULL ? comma : end;
        if (eq_nocase(trim(p, e), token))
            return 1;
        p = e + (comma != NULL);
    }
    return 0;
}
