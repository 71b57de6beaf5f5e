/*
 * Request path normalization, as Envoy's connection manager does it before routing and filters
 * (normalize_path, merge_slashes, path_with_escaped_slashes_action): the edge defence against
 * `/public/../admin` and `%2F..%2Fadmin` reaching a route the operator thought was closed.
 *
 * Only the path part is touched; the query is kept byte for byte. Every function writes into the
 * stream's pool and never modifies its input.
 */
#include "path_normalize.h"

#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~';
}

/* '/' for %2F, '\\' for %5C (either case), else 0. */
static char escaped_slash(char a, char b)
{
    if (a == '2' && (b == 'f' || b == 'F'))
        return '/';
    if (a == '5' && (b == 'c' || b == 'C'))
        return '\\';
    return 0;
}

static size_t path_len(h2o_iovec_t p)
{
    const char *q = memchr(p.base, '?', p.len);
    return q != NULL ? (size_t)(q - p.base) : p.len;
}

int lg_path_has_escaped_slash(h2o_iovec_t path)
{
    size_t n = path_len(path);
    for (size_t i = 0; i + 2 < n; ++i)
        if (path.base[i] == '%' && escaped_slash(path.base[i + 1], path.base[i + 2]) != 0)
            return 1;
    return 0;
}

h2o_iovec_t lg_path_unescape_slashes(h2o_iovec_t path, h2o_mem_pool_t *pool)
{
    size_t n = path_len(path);
    char *out = h2o_mem_alloc_pool(pool, path.len + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; ++i) {
        char u;
        if (path.base[i] == '%' && i + 2 < n && (u = escaped_slash(path.base[i + 1], path.base[i + 2])) != 0) {
            out[o++] = u;
            i += 2;
            continue;
        }
        out[o++] = path.base[i];
    }
    memcpy(out + o, path.base + n, path.len - n);
    o += path.len - n;
    out[o] = '\0';
    return h2o_iovec_init(out, o);
}

int lg_path_normalize(h2o_iovec_t path, int normalize, int merge_slashes, h2o_mem_pool_t *pool, h2o_iovec_t *out)
{
    size_t n = path_len(path);
    if (n == 0 || path.base[0] != '/')
        return -1; /* origin-form paths start with '/'; '*' (OPTIONS) is not normalized */
    /* Decode percent-encoded unreserved characters, upper-case the other escapes (RFC 3986 §6.2.2),
     * turn backslashes into slashes, then remove dot segments. */
    char *buf = h2o_mem_alloc_pool(pool, path.len + 2);
    size_t o = 0;
    for (size_t i = 0; i < n; ++i) {
        char c = path.base[i];
        if (normalize && c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(path.base[i + 1]), lo = hexval(path.base[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            unsigned char d = (unsigned char)(hi * 16 + lo);
            if (d == 0)
                return -1;
            if (is_unreserved(d)) {
                buf[o++] = (char)d;
            } else {
                static const char hex[] = "0123456789ABCDEF";
                buf[o++] = '%';
                buf[o++] = hex[hi];
                buf[o++] = hex[lo];
            }
            i += 2;
            continue;
        }
        if (normalize && c == '\\')
            c = '/';
        if (merge_slashes && c == '/' && o > 0 && buf[o - 1] == '/')
            continue;
        buf[o++] = c;
    }
    if (normalize) {
        /* Dot-segment removal over the decoded path, segment by segment. */
        char *res = h2o_mem_alloc_pool(pool, o + 2);
        size_t r = 0, i = 0;
        while (i < o) {
            /* buf[i] == '/' here: a segment runs to the next '/' */
            size_t j = i + 1;
            while (j < o && buf[j] != '/')
                ++j;
            size_t seg = j - i - 1;
            const char *s = buf + i + 1;
            int last = j >= o;
            if (seg == 1 && s[0] == '.') {
                if (last)
                    res[r++] = '/';
            } else if (seg == 2 && s[0] == '.' && s[1] == '.') {
                while (r > 0 && res[r - 1] != '/')
                    --r;
                if (r > 0)
                    --r; /* drop the slash before the removed segment */
                if (last)
                    res[r++] = '/';
            } else {
                memcpy(res + r, buf + i, j - i);
                r += j - i;
            }
            i = j;
        }
        if (r == 0)
            res[r++] = '/';
        buf = res;
        o = r;
    }
    char *final = h2o_mem_alloc_pool(pool, o + (path.len - n) + 1);
    memcpy(final, buf, o);
    memcpy(final + o, path.base + n, path.len - n);
    final[o + path.len - n] = '\0';
    *out = h2o_iovec_init(final, o + path.len - n);
    return 0;
}
