/*
 * Access loggers: config -> filter + format + sink, and emitting one record. See access_log.h.
 *
 * The JSON format tree is plain C built once from the protobuf-c Struct; a record is evaluated into
 * a scratch pool on the worker's stack, then copied to the sink. Values follow Envoy's substitution
 * formatter: a missing value is "-" in text (or "" with omit_empty_values); in JSON a value that is
 * a single operator keeps its type and is null when missing (omitted with omit_empty_values),
 * while mixed text and operators make a string. Filters are access_log_filter.c's.
 */
#include "access_log.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <h2o/string_.h>

#include "envoy/extensions/access_loggers/file/v3/file.pb-c.h"
#include "envoy/extensions/access_loggers/grpc/v3/als.pb-c.h"
#include "envoy/extensions/access_loggers/stream/v3/stream.pb-c.h"
#include "access_log_filter.h"
#include "header_formatter.h"
#include "log.h"
#include "pb_registry.h"
#include "strbuf.h"
#include "xalloc.h"

/* FileAccessLog.format / json_format are deprecated, yet Envoy still honours them, and so does legate. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define AL(x) ENVOY__CONFIG__ACCESSLOG__V3__##x

/* ------------------------------------------------------------------------------------------- */
/* Types                                                                                       */
/* ------------------------------------------------------------------------------------------- */

typedef enum en_json_kind_t { J_FORMAT, J_NUMBER, J_OBJECT, J_LIST } json_kind_t;

typedef struct st_json_node_t json_node_t;
struct st_json_node_t {
    json_kind_t kind;
    char *name;                 /* object members: the key as written */
    h2o_iovec_t key;            /* object members: "\"key\":" ready to copy */
    lg_header_formatter_t *fmt; /* J_FORMAT */
    int numeric;                /* J_FORMAT: a single operator Envoy types as a number */
    h2o_iovec_t number;         /* J_NUMBER: the literal as printed */
    json_node_t *children;      /* J_OBJECT, J_LIST */
    size_t n_children;
};

struct st_lg_access_log_t {
    lg_access_log_sink_t *sink; /* NULL: an accepted logger that writes nothing (gRPC ALS) */
    lg_access_log_filter_t *filter; /* NULL: log every stream */
    lg_header_formatter_t *text;
    json_node_t *json;          /* the root object when the format is JSON */
    int preserve_types;         /* JSON: single operators keep their type (all but the deprecated json_format) */
    int omit_empty;
};

/* What a build reads and where errors go. */
typedef struct st_bctx_t {
    lg_path_t *path;
    const lg_srcmap_t *map;
    lg_error_t *err;
} bctx_t;

/* What an evaluation reads. */
typedef struct st_eval_t {
    const lg_format_context_t *ctx;
    const lg_headers_t *trailers;
    h2o_mem_pool_t *pool;
} eval_t;

__attribute__((format(printf, 3, 4))) static int bfail(bctx_t *c, const void *msg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lg_srcmap_verror(c->err, c->map, msg, c->path, fmt, ap);
    va_end(ap);
    return -1;
}

/* Fails naming `field` of `msg` (pushed onto the path for the message). */
__attribute__((format(printf, 4, 5))) static int ffail(bctx_t *c, const void *msg, const char *field,
                                                       const char *fmt, ...)
{
    size_t mark = lg_path_push_field(c->path, field);
    va_list ap;
    va_start(ap, fmt);
    lg_srcmap_verror(c->err, c->map, msg, c->path, fmt, ap);
    va_end(ap);
    lg_path_pop(c->path, mark);
    return -1;
}

/* ------------------------------------------------------------------------------------------- */
/* Formats                                                                                     */
/* ------------------------------------------------------------------------------------------- */

/* Appends s as the body of a JSON string (no quotes): escapes quotes, backslashes, control
 * characters, and bytes that are not valid UTF-8 (as \u00XX, so the line always parses). */
static size_t json_escape(char *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\') {
            out[o++] = (char)ch;
            ++i;
            continue;
        }
        if (ch >= 0x80) {
            /* a well-formed UTF-8 sequence is copied */
            size_t n = ch >= 0xf0 && ch < 0xf5 ? 4 : ch >= 0xe0 && ch < 0xf0 ? 3 : ch >= 0xc2 && ch < 0xe0 ? 2 : 0;
            size_t k = 1;
            while (n != 0 && k < n && i + k < len && ((unsigned char)s[i + k] & 0xc0) == 0x80)
                ++k;
            if (n != 0 && k == n) {
                unsigned char c1 = (unsigned char)s[i + 1];
                int overlong = (ch == 0xe0 && c1 < 0xa0) || (ch == 0xf0 && c1 < 0x90) ||
                               (ch == 0xf4 && c1 >= 0x90) || (ch == 0xed && c1 >= 0xa0);
                if (!overlong) {
                    memcpy(out + o, s + i, n);
                    o += n;
                    i += n;
                    continue;
                }
            }
        }
        out[o++] = '\\';
        switch (ch) {
        case '"':
        case '\\':
            out[o++] = (char)ch;
            break;
        case '\n':
            out[o++] = 'n';
            break;
        case '\r':
            out[o++] = 'r';
            break;
        case '\t':
            out[o++] = 't';
            break;
        case '\b':
            out[o++] = 'b';
            break;
        case '\f':
            out[o++] = 'f';
            break;
        default:
            memcpy(out + o, "u00", 3);
            o += 3;
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 0xf];
            break;
        }
        ++i;
    }
    return o;
}

static void json_dispose(json_node_t *n)
{
    for (size_t i = 0; i < n->n_children; ++i)
        json_dispose(&n->children[i]);
    free(n->children);
    free(n->name);
    free(n->key.base);
    free(n->number.base);
    lg_header_formatter_free(n->fmt);
}

static int compile_format(bctx_t *c, const void *msg, const char *text, size_t len, unsigned flags,
                          lg_header_formatter_t **out)
{
    lg_error_t ferr;
    if ((*out = lg_header_formatter_compile(text, len, flags, &ferr)) == NULL)
        return bfail(c, msg, "%s", ferr.msg);
    return 0;
}

static int json_object_build(bctx_t *c, json_node_t *n, const Google__Protobuf__Struct *st, unsigned flags, int sort);

static int json_value_build(bctx_t *c, json_node_t *n, const Google__Protobuf__Value *v, unsigned flags, int sort)
{
    switch (v != NULL ? v->kind_case : GOOGLE__PROTOBUF__VALUE__KIND__NOT_SET) {
    case GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE: {
        n->kind = J_FORMAT;
        const char *s = v->string_value != NULL ? v->string_value : "";
        if (compile_format(c, v, s, strlen(s), flags, &n->fmt) != 0)
            return -1;
        n->numeric = lg_header_formatter_is_numeric(n->fmt);
        return 0;
    }
    case GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE: {
        char buf[64];
        double d = v->number_value;
        if (!isfinite(d))
            snprintf(buf, sizeof(buf), "null");
        else if (d == floor(d) && fabs(d) < 1e15)
            snprintf(buf, sizeof(buf), "%.0f", d);
        else
            snprintf(buf, sizeof(buf), "%.17g", d);
        n->kind = J_NUMBER;
        n->number.len = strlen(buf);
        if ((n->number.base = strdup(buf)) == NULL)
            lg_fatal("out of memory");
        return 0;
    }
    case GOOGLE__PROTOBUF__VALUE__KIND_STRUCT_VALUE:
        return json_object_build(c, n, v->struct_value, flags, sort);
    case GOOGLE__PROTOBUF__VALUE__KIND_LIST_VALUE: {
        const Google__Protobuf__ListValue *l = v->list_value;
        n->kind = J_LIST;
        n->children = lg_xcalloc(l->n_values, sizeof(*n->children));
        for (size_t i = 0; i < l->n_values; ++i) {
            size_t mark = lg_path_push_index(c->path, i);
            ++n->n_children;
            int r = json_value_build(c, &n->children[i], l->values[i], flags, sort);
            lg_path_pop(c->path, mark);
            if (r != 0)
                return -1;
        }
        return 0;
    }
    default:
        return bfail(c, v, "Only string values, nested structs, list values and number values are supported in "
                           "structured access log format.");
    }
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const json_node_t *)a)->name, ((const json_node_t *)b)->name);
}

static int json_object_build(bctx_t *c, json_node_t *n, const Google__Protobuf__Struct *st, unsigned flags, int sort)
{
    n->kind = J_OBJECT;
    size_t count = st != NULL ? st->n_fields : 0;
    n->children = lg_xcalloc(count, sizeof(*n->children));
    for (size_t i = 0; i < count; ++i) {
        const Google__Protobuf__Struct__FieldsEntry *e = st->fields[i];
        const char *key = e->key != NULL ? e->key : "";
        json_node_t *child = &n->children[n->n_children++];
        if ((child->name = strdup(key)) == NULL)
            lg_fatal("out of memory");
        size_t klen = strlen(key);
        child->key.base = lg_xcalloc(klen * 6 + 4, 1);
        child->key.base[0] = '"';
        child->key.len = 1 + json_escape(child->key.base + 1, key, klen);
        child->key.base[child->key.len++] = '"';
        child->key.base[child->key.len++] = ':';
        size_t mark = lg_path_push_key(c->path, key);
        int r = json_value_build(c, child, e->value, flags, sort);
        lg_path_pop(c->path, mark);
        if (r != 0)
            return -1;
    }
    if (sort && n->n_children > 1)
        qsort(n->children, n->n_children, sizeof(*n->children), by_name);
    return 0;
}

/* A growable output buffer in the scratch pool. */
typedef struct st_jbuf_t {
    char *p;
    size_t len, cap;
    h2o_mem_pool_t *pool;
} jbuf_t;

static char *jb_reserve(jbuf_t *b, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap * 2 > b->len + n + 256 ? b->cap * 2 : b->len + n + 256;
        char *p = h2o_mem_alloc_pool(b->pool, cap);
        if (b->len != 0)
            memcpy(p, b->p, b->len);
        b->p = p;
        b->cap = cap;
    }
    return b->p + b->len;
}

static void jb_append(jbuf_t *b, const char *s, size_t len)
{
    memcpy(jb_reserve(b, len), s, len);
    b->len += len;
}

static void jb_string(jbuf_t *b, const char *s, size_t len)
{
    char *p = jb_reserve(b, len * 6 + 2);
    *p = '"';
    size_t n = json_escape(p + 1, s, len);
    p[n + 1] = '"';
    b->len += n + 2;
}

static int is_json_number(h2o_iovec_t v)
{
    size_t i = v.len != 0 && v.base[0] == '-' ? 1 : 0;
    if (i == v.len || (v.base[i] == '0' && v.len > i + 1))
        return 0;
    for (; i < v.len; ++i)
        if (!isdigit((unsigned char)v.base[i]))
            return 0;
    return 1;
}

/* Renders one value; returns 0 when it is omitted (null with omit_empty_values), writing nothing. */
static int json_render(jbuf_t *b, const json_node_t *n, const lg_access_log_t *l, const eval_t *e)
{
    switch (n->kind) {
    case J_FORMAT: {
        int missing;
        h2o_iovec_t v = lg_header_formatter_format_log(n->fmt, e->ctx, e->trailers, e->pool, &missing);
        if (missing && (l->preserve_types || l->omit_empty)) {
            if (l->omit_empty)
                return 0;
            jb_append(b, H2O_STRLIT("null"));
        } else if (l->preserve_types && n->numeric && is_json_number(v)) {
            jb_append(b, v.base, v.len);
        } else {
            jb_string(b, v.base, v.len);
        }
        return 1;
    }
    case J_NUMBER:
        jb_append(b, n->number.base, n->number.len);
        return 1;
    case J_OBJECT:
    case J_LIST: {
        int object = n->kind == J_OBJECT, first = 1;
        jb_append(b, object ? "{" : "[", 1);
        for (size_t i = 0; i < n->n_children; ++i) {
            size_t mark = b->len;
            if (!first)
                jb_append(b, ",", 1);
            if (object)
                jb_append(b, n->children[i].key.base, n->children[i].key.len);
            if (json_render(b, &n->children[i], l, e))
                first = 0;
            else
                b->len = mark;
        }
        jb_append(b, object ? "}" : "]", 1);
        return 1;
    }
    }
    return 0;
}

/* Reads a DataSource (text_format_source) into a malloc'd string. */
static int data_source_read(bctx_t *c, const Envoy__Config__Core__V3__DataSource *ds, char **out, size_t *len)
{
    *out = NULL;
    switch (ds->specifier_case) {
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
        *len = strlen(ds->inline_string != NULL ? ds->inline_string : "");
        *out = strndup(ds->inline_string != NULL ? ds->inline_string : "", *len);
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
        *len = ds->inline_bytes.len;
        *out = malloc(*len + 1);
        if (*out != NULL) {
            if (*len != 0)
                memcpy(*out, ds->inline_bytes.data, *len);
            (*out)[*len] = '\0';
        }
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE: {
        const char *v = getenv(ds->environment_variable != NULL ? ds->environment_variable : "");
        if (v == NULL)
            return ffail(c, ds, "environment_variable", "Environment variable doesn't exist: %s",
                         ds->environment_variable != NULL ? ds->environment_variable : "");
        *len = strlen(v);
        *out = strdup(v);
        break;
    }
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME: {
        FILE *fp = fopen(ds->filename, "rb");
        if (fp == NULL)
            return ffail(c, ds, "filename", "cannot read \"%s\": %s", ds->filename, strerror(errno));
        lg_strbuf_t sb = LG_STRBUF_INIT;
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), fp)) != 0)
            lg_strbuf_append(&sb, buf, n);
        int bad = ferror(fp);
        fclose(fp);
        if (bad) {
            lg_strbuf_dispose(&sb);
            return ffail(c, ds, "filename", "cannot read \"%s\"", ds->filename);
        }
        *len = sb.len;
        *out = lg_strbuf_release(&sb);
        return 0;
    }
    default:
        return bfail(c, ds, "one of filename, inline_bytes, inline_string or environment_variable is required");
    }
    if (*out == NULL)
        lg_fatal("out of memory");
    return 0;
}

static unsigned format_flags(int omit_empty)
{
    return LG_FORMAT_ACCESS_LOG | (omit_empty ? 0 : LG_FORMAT_DASH_FOR_MISSING);
}

static int default_format(bctx_t *c, lg_access_log_t *l, const void *msg)
{
    return compile_format(c, msg, LG_ACCESS_LOG_DEFAULT_FORMAT, sizeof(LG_ACCESS_LOG_DEFAULT_FORMAT) - 1,
                          format_flags(0), &l->text);
}

static int json_root_build(bctx_t *c, lg_access_log_t *l, const Google__Protobuf__Struct *st, int preserve_types,
                           int omit_empty, int sort)
{
    l->preserve_types = preserve_types;
    l->omit_empty = omit_empty;
    l->json = lg_xcalloc(1, sizeof(*l->json));
    return json_object_build(c, l->json, st, format_flags(omit_empty), sort);
}

/* SubstitutionFormatString (log_format); c->path names it. */
static int substitution_format_build(bctx_t *c, lg_access_log_t *l,
                                     const Envoy__Config__Core__V3__SubstitutionFormatString *sf)
{
    if (sf->n_formatters != 0)
        return ffail(c, sf, "formatters", "formatter extensions are not supported by legate");
    l->omit_empty = sf->omit_empty_values;
    switch (sf->format_case) {
    case ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_TEXT_FORMAT: {
        const char *t = sf->text_format != NULL ? sf->text_format : "";
        size_t mark = lg_path_push_field(c->path, "text_format");
        int r = compile_format(c, sf, t, strlen(t), format_flags(l->omit_empty), &l->text);
        lg_path_pop(c->path, mark);
        return r;
    }
    case ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_TEXT_FORMAT_SOURCE: {
        size_t mark = lg_path_push_field(c->path, "text_format_source");
        char *text;
        size_t len;
        int r = data_source_read(c, sf->text_format_source, &text, &len);
        if (r == 0) {
            r = compile_format(c, sf->text_format_source, text, len, format_flags(l->omit_empty), &l->text);
            free(text);
        }
        lg_path_pop(c->path, mark);
        return r;
    }
    case ENVOY__CONFIG__CORE__V3__SUBSTITUTION_FORMAT_STRING__FORMAT_JSON_FORMAT: {
        size_t mark = lg_path_push_field(c->path, "json_format");
        int sort = sf->json_format_options != NULL && sf->json_format_options->sort_properties;
        int r = json_root_build(c, l, sf->json_format, 1, l->omit_empty, sort);
        lg_path_pop(c->path, mark);
        return r;
    }
    default:
        return bfail(c, sf, "one of text_format, text_format_source or json_format is required");
    }
}

/* ------------------------------------------------------------------------------------------- */
/* Loggers                                                                                     */
/* ------------------------------------------------------------------------------------------- */

static int file_build(bctx_t *c, lg_access_log_t *l,
                      const Envoy__Extensions__AccessLoggers__File__V3__FileAccessLog *fa, const char **path)
{
#define FAL(x) ENVOY__EXTENSIONS__ACCESS_LOGGERS__FILE__V3__FILE_ACCESS_LOG__ACCESS_LOG_FORMAT_##x
    if (fa->path == NULL || fa->path[0] == '\0')
        return ffail(c, fa, "path", "value length must be at least 1 characters");
    *path = fa->path;
    size_t mark = c->path->len;
    int r;
    switch (fa->access_log_format_case) {
    case FAL(FORMAT):
        lg_path_push_field(c->path, "format");
        if (fa->format == NULL || fa->format[0] == '\0')
            r = default_format(c, l, fa);
        else
            r = compile_format(c, fa, fa->format, strlen(fa->format), format_flags(0), &l->text);
        break;
    case FAL(JSON_FORMAT):
        lg_path_push_field(c->path, "json_format");
        r = json_root_build(c, l, fa->json_format, 0, 0, 0);
        break;
    case FAL(TYPED_JSON_FORMAT):
        lg_path_push_field(c->path, "typed_json_format");
        r = json_root_build(c, l, fa->typed_json_format, 1, 0, 0);
        break;
    case FAL(LOG_FORMAT):
        lg_path_push_field(c->path, "log_format");
        r = substitution_format_build(c, l, fa->log_format);
        break;
    default:
        r = default_format(c, l, fa);
        break;
    }
    lg_path_pop(c->path, mark);
    return r;
#undef FAL
}

static int stream_build(bctx_t *c, lg_access_log_t *l, const void *msg,
                        const Envoy__Config__Core__V3__SubstitutionFormatString *sf)
{
    if (sf == NULL)
        return default_format(c, l, msg);
    size_t mark = lg_path_push_field(c->path, "log_format");
    int r = substitution_format_build(c, l, sf);
    lg_path_pop(c->path, mark);
    return r;
}

/* The gRPC access log services are accepted so that configs written for Envoy load, and say once
 * per process that nothing goes through them: every xDS update rebuilds every listener, so a
 * warning per build repeats for each push of any resource type. Later builds say it at debug.
 * Main thread only (config building is). */
static void grpc_logger_accepted(bctx_t *c, const ProtobufCMessageDescriptor *d)
{
    static int warned_http, warned_tcp;
    int *warned = d == &envoy__extensions__access_loggers__grpc__v3__http_grpc_access_log_config__descriptor
                      ? &warned_http
                      : &warned_tcp;
    lg_log(main, *warned ? LG_LOG_DEBUG : LG_LOG_WARN,
           "%s: the gRPC access log service (%s) is accepted but not implemented by legate: nothing is "
           "logged through it%s",
           c->path->buf, d->name, *warned ? "" : " (said once; later configs say it at debug level)");
    *warned = 1;
}

/* Builds the sink's format from the typed config; *path is the file to open (NULL: none). */
static int typed_config_build(bctx_t *c, lg_access_log_t *l, const Envoy__Config__Accesslog__V3__AccessLog *pb,
                              const char **path)
{
    const Google__Protobuf__Any *any = pb->typed_config;
    const char *url = any->type_url != NULL ? any->type_url : "";
    int owned;
    ProtobufCMessage *m = lg_pb_any_open(c->map, &any->base, &owned);
    size_t mark = lg_path_push_field(c->path, "typed_config");
    int r;
    *path = NULL;
    if (m == NULL) {
        r = lg_pb_registry_find_url(url) == NULL
                ? bfail(c, any, "access logger type \"%s\" is not supported by legate", url)
                : bfail(c, any, "typed_config does not decode as \"%s\"", url);
    } else if (m->descriptor == &envoy__extensions__access_loggers__file__v3__file_access_log__descriptor) {
        r = file_build(c, l, (const void *)m, path);
    } else if (m->descriptor == &envoy__extensions__access_loggers__stream__v3__stdout_access_log__descriptor) {
        const Envoy__Extensions__AccessLoggers__Stream__V3__StdoutAccessLog *so = (const void *)m;
        r = stream_build(c, l, so, so->access_log_format_case != 0 ? so->log_format : NULL);
        *path = "/dev/stdout";
    } else if (m->descriptor == &envoy__extensions__access_loggers__stream__v3__stderr_access_log__descriptor) {
        const Envoy__Extensions__AccessLoggers__Stream__V3__StderrAccessLog *se = (const void *)m;
        r = stream_build(c, l, se, se->access_log_format_case != 0 ? se->log_format : NULL);
        *path = "/dev/stderr";
    } else if (m->descriptor == &envoy__extensions__access_loggers__grpc__v3__http_grpc_access_log_config__descriptor ||
               m->descriptor == &envoy__extensions__access_loggers__grpc__v3__tcp_grpc_access_log_config__descriptor) {
        grpc_logger_accepted(c, m->descriptor);
        r = 0;
    } else {
        r = bfail(c, any, "access logger type \"%s\" is not supported by legate", m->descriptor->name);
    }
    lg_pb_any_close(m, owned);
    lg_path_pop(c->path, mark);
    return r;
}

static lg_access_log_t *build(const Envoy__Config__Accesslog__V3__AccessLog *pb, const lg_srcmap_t *map,
                              lg_path_t *path, lg_error_t *err, int open_sink)
{
    bctx_t c = {path, map, err};
    size_t mark = path->len;
    lg_access_log_t *l = lg_xcalloc(1, sizeof(*l));
    const char *file = NULL;
    if (pb->config_type_case != AL(ACCESS_LOG__CONFIG_TYPE_TYPED_CONFIG) || pb->typed_config == NULL) {
        bfail(&c, pb, "typed_config is required (access logger \"%s\")", pb->name != NULL ? pb->name : "");
        goto Fail;
    }
    if (typed_config_build(&c, l, pb, &file) != 0)
        goto Fail;
    if (pb->filter != NULL) {
        lg_path_push_field(path, "filter");
        if ((l->filter = lg_access_log_filter_build(pb->filter, map, path, err)) == NULL)
            goto Fail;
        lg_path_pop(path, mark);
    }
    if (file != NULL && open_sink) {
        lg_error_t serr;
        if ((l->sink = lg_access_log_sink_open(file, &serr)) == NULL) {
            lg_path_push_field(path, "typed_config");
            bfail(&c, pb->typed_config, "%s", serr.msg);
            goto Fail;
        }
    }
    return l;
Fail:
    lg_path_pop(path, mark);
    lg_access_log_free(l);
    return NULL;
}

lg_access_log_t *lg_access_log_build(const Envoy__Config__Accesslog__V3__AccessLog *pb, const lg_srcmap_t *map,
                                     lg_path_t *path, lg_error_t *err)
{
    return build(pb, map, path, err, 1);
}

int lg_access_log_check(const Envoy__Config__Accesslog__V3__AccessLog *pb, const lg_srcmap_t *map, lg_path_t *path,
                        lg_error_t *err)
{
    lg_access_log_t *l = build(pb, map, path, err, 0);
    lg_access_log_free(l);
    return l != NULL ? 0 : -1;
}

void lg_access_log_free(lg_access_log_t *l)
{
    if (l == NULL)
        return;
    lg_access_log_filter_free(l->filter);
    lg_header_formatter_free(l->text);
    if (l->json != NULL) {
        json_dispose(l->json);
        free(l->json);
    }
    lg_access_log_sink_release(l->sink);
    free(l);
}

void lg_access_log_emit(const lg_access_log_t *l, unsigned worker_id, const lg_stream_info_t *info,
                        const lg_request_head_t *req, const lg_response_head_t *resp,
                        const lg_headers_t *resp_trailers)
{
    if (l == NULL || l->sink == NULL)
        return;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    lg_format_context_t ctx = {info, req, resp};
    eval_t e = {&ctx, resp_trailers, &pool};
    if (l->filter == NULL || lg_access_log_filter_eval(l->filter, &ctx, resp_trailers, &pool)) {
        if (l->text != NULL) {
            h2o_iovec_t rec = lg_header_formatter_format_log(l->text, &ctx, resp_trailers, &pool, NULL);
            lg_access_log_sink_write(l->sink, worker_id, rec.base, rec.len);
        } else {
            jbuf_t b = {NULL, 0, 0, &pool};
            json_render(&b, l->json, l, &e);
            jb_append(&b, "\n", 1);
            lg_access_log_sink_write(l->sink, worker_id, b.p, b.len);
        }
    }
    h2o_mem_clear_pool(&pool);
}

void lg_access_log_flush_all(void)
{
    lg_access_log_sink_flush_all();
}

void lg_access_log_set_flush_interval(uint64_t ms)
{
    lg_access_log_sink_set_flush_interval(ms);
}

void lg_access_log_reopen(void)
{
    lg_access_log_sink_reopen();
}

uint64_t lg_access_log_dropped(void)
{
    return lg_access_log_sink_dropped();
}

const char *lg_access_log_path(const lg_access_log_t *l)
{
    return l->sink != NULL ? lg_access_log_sink_path(l->sink) : NULL;
}
