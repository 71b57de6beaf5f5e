/*
 * JSON text tools for the admin's bodies (see admin_render.h). The admin assembles its JSON as
 * compact text (hand-written wrappers around lg_pb_to_json output) and finishes it here: a
 * re-indenter that reproduces protobuf's pretty printing, which Envoy's /config_dump, /clusters and
 * /server_info use, and a FieldMask trimmer for /config_dump?mask=. Both walk the text once and
 * trust it to be valid JSON (it is always legate's own output, never a client's).
 */
#include <stdlib.h>
#include <string.h>

#include "admin_render.h"
#include "log.h"

typedef struct st_slice_t {
    const char *p;
    size_t len;
} slice_t;

static size_t skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
        ++i;
    return i;
}

/* `i` is at the opening quote; returns the index after the closing one. */
static size_t skip_string(const char *s, size_t len, size_t i)
{
    for (++i; i < len; ++i) {
        if (s[i] == '\\')
            ++i;
        else if (s[i] == '"')
            return i + 1;
    }
    return len;
}

/* `i` is at the first byte of a value; returns the index after it. */
static size_t skip_value(const char *s, size_t len, size_t i)
{
    if (i >= len)
        return len;
    if (s[i] == '"')
        return skip_string(s, len, i);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        while (i < len) {
            char c = s[i];
            if (c == '"') {
                i = skip_string(s, len, i);
                continue;
            }
            if (c == '{' || c == '[')
                ++depth;
            else if ((c == '}' || c == ']') && --depth == 0)
                return i + 1;
            ++i;
        }
        return len;
    }
    while (i < len && strchr(",}] \t\r\n", s[i]) == NULL)
        ++i;
    return i;
}

static void newline(lg_strbuf_t *out, int level)
{
    lg_strbuf_append(out, "\n", 1);
    for (int i = 0; i < level; ++i)
        lg_strbuf_append(out, " ", 1);
}

void lg_admin_json_pretty(const char *s, size_t len, lg_strbuf_t *out)
{
    int level = 0;
    size_t i = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            size_t e = skip_string(s, len, i);
            lg_strbuf_append(out, s + i, e - i);
            i = e;
            continue;
        }
        switch (c) {
        case ' ':
        case '\n':
        case '\r':
        case '\t':
            break;
        case '{':
        case '[': {
            size_t j = skip_ws(s, len, i + 1);
            if (j < len && s[j] == (c == '{' ? '}' : ']')) {
                lg_strbuf_append(out, c == '{' ? "{}" : "[]", 2);
                i = j;
                break;
            }
            lg_strbuf_append(out, &c, 1);
            newline(out, ++level);
            break;
        }
        case '}':
        case ']':
            newline(out, --level);
            lg_strbuf_append(out, &c, 1);
            break;
        case ',':
            lg_strbuf_append(out, ",", 1);
            newline(out, level);
            break;
        case ':':
            lg_strbuf_append(out, ": ", 2);
            break;
        default:
            lg_strbuf_append(out, &c, 1);
            break;
        }
        ++i;
    }
    lg_strbuf_append(out, "\n", 1);
}

/* Copies the object at s[*pos] keeping the fields `paths` name; *pos ends after the object. */
static int mask_object(const char *s, size_t len, size_t *pos, const slice_t *paths, size_t n_paths, lg_strbuf_t *out)
{
    size_t i = skip_ws(s, len, *pos);
    if (i >= len || s[i] != '{')
        return -1;
    slice_t *sub = malloc(sizeof(*sub) * (n_paths ? n_paths : 1));
    if (sub == NULL)
        lg_fatal("out of memory");
    int first = 1, ret = 0;
    lg_strbuf_append(out, "{", 1);
    i = skip_ws(s, len, i + 1);
    while (i < len && s[i] != '}') {
        if (s[i] != '"') {
            ret = -1;
            break;
        }
        size_t key_end = skip_string(s, len, i);
        const char *key = s + i + 1;
        size_t key_len = key_end - i - 2;
        size_t v = skip_ws(s, len, key_end);
        if (v >= len || s[v] != ':') {
            ret = -1;
            break;
        }
        v = skip_ws(s, len, v + 1);
        size_t v_end = skip_value(s, len, v);
        int keep = key_len == 5 && memcmp(key, "@type", 5) == 0;
        size_t n_sub = 0;
        for (size_t p = 0; p < n_paths && !keep; ++p) {
            if (paths[p].len == key_len && memcmp(paths[p].p, key, key_len) == 0)
                keep = 1;
            else if (paths[p].len > key_len + 1 && memcmp(paths[p].p, key, key_len) == 0 && paths[p].p[key_len] == '.')
                sub[n_sub++] = (slice_t){paths[p].p + key_len + 1, paths[p].len - key_len - 1};
        }
        if (keep || (n_sub > 0 && s[v] == '{')) {
            if (!first)
                lg_strbuf_append(out, ",", 1);
            first = 0;
            lg_strbuf_append(out, s + i, key_end - i);
            lg_strbuf_append(out, ":", 1);
            if (keep) {
                lg_strbuf_append(out, s + v, v_end - v);
            } else {
                size_t sp = v;
                if ((ret = mask_object(s, len, &sp, sub, n_sub, out)) != 0)
                    break;
            }
        }
        i = skip_ws(s, len, v_end);
        if (i < len && s[i] == ',')
            i = skip_ws(s, len, i + 1);
    }
    free(sub);
    if (ret != 0)
        return ret;
    lg_strbuf_append(out, "}", 1);
    *pos = i < len ? i + 1 : len;
    return 0;
}

int lg_admin_json_mask(const char *obj, size_t len, char *const *paths, size_t n_paths, lg_strbuf_t *out)
{
    slice_t *sl = malloc(sizeof(*sl) * (n_paths ? n_paths : 1));
    if (sl == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i < n_paths; ++i)
        sl[i] = (slice_t){paths[i], strlen(paths[i])};
    size_t pos = 0;
    lg_strbuf_t tmp = LG_STRBUF_INIT;
    int r = mask_object(obj, len, &pos, sl, n_paths, &tmp);
    if (r == 0 && tmp.len > 0)
        lg_strbuf_append(out, tmp.data, tmp.len);
    lg_strbuf_dispose(&tmp);
    free(sl);
    return r;
}
