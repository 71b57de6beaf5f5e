/*
 * The YAML/JSON -> protobuf-c converter: see pb_yaml.h for what it accepts.
 *
 * libyaml loads the whole document into a node tree (with anchors resolved to shared nodes); the
 * converter then walks that tree alongside the protobuf-c descriptors. Every error carries the
 * document name, the node's line and the field path. A budget on visited nodes keeps alias bombs
 * ("billion laughs") and absurd nesting from exhausting time or stack.
 */
#include "pb_yaml.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "log.h"
#include "path.h"
#include "pb_registry.h"
#include "pb_wkt.h"
#include "xalloc.h"

#define MAX_DEPTH 64
/* Aliases may repeat a node, but the whole walk stays within this many times the document. */
#define MAX_EXPANSION 20

typedef struct st_conv_t {
    yaml_document_t *doc;
    const char *doc_name;
    uint32_t doc_id;
    lg_srcmap_t *map;
    lg_error_t *err, *outer_err;
    lg_path_t path;
    unsigned depth;
    size_t visited, max_visits;
} conv_t;

static int convert_message(conv_t *c, yaml_node_t *node, ProtobufCMessage *msg);

/* ------------------------------------------------------------------------------------------- */
/* Errors and small helpers                                                                     */
/* ------------------------------------------------------------------------------------------- */

static uint32_t line_of(const yaml_node_t *node)
{
    return (uint32_t)node->start_mark.line + 1;
}

__attribute__((format(printf, 3, 4))) static int fail(conv_t *c, const yaml_node_t *node,
                                                      const char *fmt, ...)
{
    char msg[LG_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->path.len != 0)
        return lg_error_set(c->err, "%s:%u: %s: %s", c->doc_name, line_of(node), c->path.buf, msg);
    return lg_error_set(c->err, "%s:%u: %s", c->doc_name, line_of(node), msg);
}

static const char *scalar(const yaml_node_t *node)
{
    return (const char *)node->data.scalar.value;
}

static int is_plain(const yaml_node_t *node)
{
    return node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ||
           node->data.scalar.style == YAML_ANY_SCALAR_STYLE;
}

/* A YAML null: `~`, `null`, or nothing at all, written plain. Quoted "null" is a string. */
static int is_null(const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE || !is_plain(node))
        return 0;
    const char *s = scalar(node);
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

ProtobufCMessage *lg_pb_new(const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = malloc(desc->sizeof_message);
    if (m == NULL)
        lg_fatal("out of memory");
    protobuf_c_message_init(desc, m);
    return m;
}

/* The proto3 JSON name of a field: lb_policy -> lbPolicy, consecutive_5xx -> consecutive5xx. */
static void json_name(const char *in, char *out, size_t len)
{
    size_t o = 0;
    int upper = 0;
    for (const char *p = in; *p != '\0' && o + 1 < len; ++p) {
        if (*p == '_') {
            upper = 1;
            continue;
        }
        out[o++] = upper ? (char)toupper((unsigned char)*p) : *p;
        upper = 0;
    }
    out[o] = '\0';
}

const ProtobufCFieldDescriptor *lg_pb_find_field(const ProtobufCMessageDescriptor *desc,
                                                 const char *name)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(desc, name);
    if (f != NULL || strchr(name, '_') != NULL)
        return f;
    char jn[256];
    for (unsigned i = 0; i < desc->n_fields; ++i) {
        json_name(desc->fields[i].name, jn, sizeof(jn));
        if (strcmp(jn, name) == 0)
            return &desc->fields[i];
    }
    return NULL;
}

/* lbPolcy -> lb_polcy, to compare a misspelt camelCase name with the proto names. */
static void camel_to_snake(const char *in, char *out, size_t len)
{
    size_t o = 0;
    for (const char *p = in; *p != '\0' && o + 3 < len; ++p) {
        if (isupper((unsigned char)*p)) {
            out[o++] = '_';
            out[o++] = (char)tolower((unsigned char)*p);
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

/* Edit distance, for "did you mean" on unknown fields. Bounded to short names. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= lb; ++j)
        prev[j] = j;
    for (size_t i = 1; i <= la; ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; ++j) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(size_t) * (lb + 1));
    }
    return prev[lb];
}

static int fail_unknown_field(conv_t *c, const yaml_node_t *key,
                              const ProtobufCMessageDescriptor *desc, const char *name)
{
    char probe[256];
    camel_to_snake(name, probe, sizeof(probe));
    const char *best = NULL;
    size_t best_d = 3; /* suggest only close names */
    for (unsigned i = 0; i < desc->n_fields; ++i) {
        size_t d = edit_distance(probe, desc->fields[i].name);
        if (d < best_d) {
            best_d = d;
            best = desc->fields[i].name;
        }
    }
    if (best != NULL)
        return fail(c, key, "unknown field \"%s\" in %s (did you mean \"%s\"?)", name, desc->name,
                    best);
    return fail(c, key, "unknown field \"%s\" in %s", name, desc->name);
}

/* ------------------------------------------------------------------------------------------- */
/* Field storage                                                                               */
/* ------------------------------------------------------------------------------------------- */

static size_t value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    }
    return 0;
}

static void *field_ptr(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    return (char *)msg + f->offset;
}

static int is_default_string(const char *s, const ProtobufCFieldDescriptor *f)
{
    return s == NULL || s == (const char *)f->default_value || s == protobuf_c_empty_string;
}

/* Releases what a singular field (or the active oneof member) owns and zeroes it. */
static void clear_value(void *slot, const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char **s = slot;
        if (!is_default_string(*s, f))
            free(*s);
        *s = (char *)protobuf_c_empty_string;
        return;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = slot;
        const ProtobufCBinaryData *def = f->default_value;
        if (b->data != NULL && (def == NULL || b->data != def->data))
            free(b->data);
        b->data = NULL;
        b->len = 0;
        return;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage **m = slot;
        if (*m != NULL)
            protobuf_c_message_free_unpacked(*m, NULL);
        *m = NULL;
        return;
    }
    default:
        memset(slot, 0, value_size(f));
    }
}

/* Appends one zeroed element to a repeated field and returns it. */
static void *repeated_append(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    size_t *n = (size_t *)((char *)msg + f->quantifier_offset);
    void **arr = field_ptr(msg, f);
    size_t sz = value_size(f);
    char *grown = realloc(*arr, (*n + 1) * sz);
    if (grown == NULL)
        lg_fatal("out of memory");
    *arr = grown;
    void *slot = grown + *n * sz;
    memset(slot, 0, sz);
    if (f->type == PROTOBUF_C_TYPE_STRING)
        *(char **)slot = (char *)protobuf_c_empty_string;
    ++*n;
    return slot;
}

/* Drops the last element of a repeated field (used when its conversion failed). */
static void repeated_pop(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    size_t *n = (size_t *)((char *)msg + f->quantifier_offset);
    void **arr = field_ptr(msg, f);
    --*n;
    clear_value((char *)*arr + *n * value_size(f), f);
    if (*n == 0) {
        free(*arr);
        *arr = NULL;
    }
}

/* ------------------------------------------------------------------------------------------- */
/* Scalars                                                                                     */
/* ------------------------------------------------------------------------------------------- */

static int parse_int(conv_t *c, const yaml_node_t *node, int64_t min, int64_t max,
                     const char *type, int64_t *out)
{
    const char *s = scalar(node);
    char *end;
    errno = 0;
    if (s[0] == '\0' || isspace((unsigned char)s[0]) || s[0] == '+')
        return fail(c, node, "invalid integer \"%s\"", s);
    long long v = strtoll(s, &end, 10);
    if (*end != '\0') {
        /* JSON writers sometimes print integral values as 5.0 or 1e3. */
        char *dend;
        double d = strtod(s, &dend);
        if (*dend != '\0' || d != floor(d) || !isfinite(d))
            return fail(c, node, "invalid integer \"%s\"", s);
        if (d < (double)min || d > (double)max)
            return fail(c, node, "value %s out of range for %s", s, type);
        v = (long long)d;
    } else if (errno == ERANGE || v < min || v > max) {
        return fail(c, node, "value %s out of range for %s", s, type);
    }
    *out = v;
    return 0;
}

static int parse_uint64(conv_t *c, const yaml_node_t *node, uint64_t *out)
{
    const char *s = scalar(node);
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)s[0]))
        return s[0] == '-' ? fail(c, node, "value %s out of range for uint64", s)
                           : fail(c, node, "invalid integer \"%s\"", s);
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0')
        return fail(c, node, "invalid integer \"%s\"", s);
    if (errno == ERANGE)
        return fail(c, node, "value %s out of range for uint64", s);
    *out = v;
    return 0;
}

static int parse_double(conv_t *c, const yaml_node_t *node, double *out)
{
    const char *s = scalar(node);
    if (strcmp(s, "Infinity") == 0 || strcmp(s, ".inf") == 0 || strcmp(s, ".Inf") == 0) {
        *out = INFINITY;
        return 0;
    }
    if (strcmp(s, "-Infinity") == 0 || strcmp(s, "-.inf") == 0 || strcmp(s, "-.Inf") == 0) {
        *out = -INFINITY;
        return 0;
    }
    if (strcmp(s, "NaN") == 0 || strcmp(s, ".nan") == 0 || strcmp(s, ".NaN") == 0) {
        *out = NAN;
        return 0;
    }
    char *end;
    if (s[0] == '\0' || isspace((unsigned char)s[0]) || isalpha((unsigned char)s[0]))
        return fail(c, node, "invalid number \"%s\"", s);
    double d = strtod(s, &end);
    if (*end != '\0' || !isfinite(d))
        return fail(c, node, "invalid number \"%s\"", s);
    *out = d;
    return 0;
}

static int parse_bool(const char *s, protobuf_c_boolean *out)
{
    /* YAML 1.1 booleans, as Envoy's YAML reader (yaml-cpp) takes them. */
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); ++i) {
        if (strcmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int parse_enum(conv_t *c, const yaml_node_t *node, const ProtobufCEnumDescriptor *ed,
                      int *out)
{
    const char *s = scalar(node);
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(ed, s);
    if (v == NULL && (isdigit((unsigned char)s[0]) || s[0] == '-')) {
        char *end;
        long n = strtol(s, &end, 10);
        if (*end == '\0' && n >= INT_MIN && n <= INT_MAX)
            v = protobuf_c_enum_descriptor_get_value(ed, (int)n);
    }
    if (v == NULL)
        return fail(c, node, "invalid enum value \"%s\" for %s", s, ed->name);
    *out = v->value;
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Well-known types                                                                            */
/* ------------------------------------------------------------------------------------------- */

static int convert_duration_or_timestamp(conv_t *c, yaml_node_t *node, ProtobufCMessage *msg,
                                         lg_pb_wkt_t kind)
{
    int64_t sec;
    int32_t nanos;
    const char *what = kind == LG_PB_WKT_DURATION ? "duration" : "timestamp";
    if (node->type == YAML_MAPPING_NODE)
        return -2; /* {seconds, nanos}: the generic path */
    if (node->type != YAML_SCALAR_NODE)
        return fail(c, node, "invalid %s: expected a string", what);
    int r = kind == LG_PB_WKT_DURATION ? lg_pb_duration_parse(scalar(node), &sec, &nanos)
                                       : lg_pb_timestamp_parse(scalar(node), &sec, &nanos);
    if (r != 0)
        return fail(c, node, "invalid %s \"%s\"", what, scalar(node));
    /* Duration and Timestamp share the layout {int64 seconds = 1; int32 nanos = 2;}. */
    const ProtobufCFieldDescriptor *fs = protobuf_c_message_descriptor_get_field(msg->descriptor, 1);
    const ProtobufCFieldDescriptor *fn = protobuf_c_message_descriptor_get_field(msg->descriptor, 2);
    *(int64_t *)field_ptr(msg, fs) = sec;
    *(int32_t *)field_ptr(msg, fn) = nanos;
    return 0;
}

static int convert_value_wkt(conv_t *c, yaml_node_t *node, ProtobufCMessage *msg);

static int set_oneof(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    uint32_t *qcase = (uint32_t *)((char *)msg + f->quantifier_offset);
    if (*qcase != 0 && *qcase != f->id) {
        const ProtobufCFieldDescriptor *old =
            protobuf_c_message_descriptor_get_field(msg->descriptor, (unsigned)*qcase);
        if (old != NULL)
            clear_value(field_ptr(msg, old), old);
    }
    *qcase = f->id;
    return 0;
}

static ProtobufCMessage **message_slot(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    ProtobufCMessage **slot = field_ptr(msg, f);
    if (*slot == NULL)
        *slot = lg_pb_new(f->descriptor);
    return slot;
}

static int convert_struct(conv_t *c, yaml_node_t *node, ProtobufCMessage *msg)
{
    if (node->type != YAML_MAPPING_NODE)
        return fail(c, node, "expected a mapping for google.protobuf.Struct");
    const ProtobufCFieldDescriptor *ff = lg_pb_find_field(msg->descriptor, "fields");
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return fail(c, k, "expected a scalar");
        /* Later keys replace earlier ones, as in a JSON object. */
        size_t n = *(size_t *)((char *)msg + ff->quantifier_offset);
        ProtobufCMessage **entries = *(ProtobufCMessage ***)field_ptr(msg, ff);
        ProtobufCMessage *entry = NULL;
        for (size_t i = 0; i < n; ++i) {
            const ProtobufCFieldDescriptor *kf = protobuf_c_message_descriptor_get_field(entries[i]->descriptor, 1);
            if (strcmp(*(char **)field_ptr(entries[i], kf), scalar(k)) == 0)
                entry = entries[i];
        }
        if (entry == NULL) {
            entry = lg_pb_new(ff->descriptor);
            *(ProtobufCMessage **)repeated_append(msg, ff) = entry;
            const ProtobufCFieldDescriptor *kf = protobuf_c_message_descriptor_get_field(ff->descriptor, 1);
            *(char **)field_ptr(entry, kf) = lg_xstrdup(scalar(k));
        }
        const ProtobufCFieldDescriptor *vf = protobuf_c_message_descriptor_get_field(ff->descriptor, 2);
        ProtobufCMessage **vslot = field_ptr(entry, vf);
        if (*vslot != NULL)
            protobuf_c_message_free_unpacked(*vslot, NULL);
        *vslot = lg_pb_new(vf->descriptor);
        size_t mark = lg_path_push_key(&c->path, scalar(k));
        int r = convert_value_wkt(c, v, *vslot);
        lg_path_pop(&c->path, mark);
        if (r != 0)
            return -1;
    }
    return 0;
}

static int convert_list_value(conv_t *c, yaml_node_t *node, ProtobufCMessage *msg)
{
    if (node->type != YAML_SEQUENCE_NODE)
        return fail(c, node, "expected a list");
    const ProtobufCFieldDescriptor *vf = lg_pb_find_field(msg->descriptor, "values");
    size_t i = 0;
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top;
         ++it, ++i) {
        ProtobufCMessage *v = lg_pb_new(vf->descriptor);
        *(ProtobufCMessage **)repeated_append(msg, vf) = v;
        size_t mark = lg_path_push_index(&c->path, i);
        int r = convert_value_wkt(c, yaml_document_get_node(c->doc, *it), v);
        lg_path_pop(&c->path, mark);
        if (r != 0)
            return -1;
    }
    return 0;
}

/* google.protobuf.Value from any YAML node; plain scalars are typed the way JSON would type them. */
static int convert_value_wkt(conv_t *c, yaml_node_t *node, ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    if (++c->visited > c->max_visits || ++c->depth > MAX_DEPTH) {
        --c->depth;
        return fail(c, node, "document too deep or too large");
    }
    int r = 0;
    if (node->type == YAML_MAPPING_NODE || node->type == YAML_SEQUENCE_NODE) {
        const char *name = node->type == YAML_MAPPING_NODE ? "struct_value" : "list_value";
        const ProtobufCFieldDescriptor *f = lg_pb_find_field(d, name);
        set_oneof(msg, f);
        ProtobufCMessage **slot = message_slot(msg, f);
        r = node->type == YAML_MAPPING_NODE ? convert_struct(c, node, *slot)
                                            : convert_list_value(c, node, *slot);
    } else if (is_null(node)) {
        set_oneof(msg, lg_pb_find_field(d, "null_value"));
    } else {
        const char *s = scalar(node);
        protobuf_c_boolean b;
        char *end;
        double num = 0;
        if (is_plain(node) && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
            b = s[0] == 't';
            const ProtobufCFieldDescriptor *f = lg_pb_find_field(d, "bool_value");
            set_oneof(msg, f);
            *(protobuf_c_boolean *)field_ptr(msg, f) = b;
        } else if (is_plain(node) && s[0] != '\0' && !isspace((unsigned char)s[0]) &&
                   !isalpha((unsigned char)s[0]) && (num = strtod(s, &end), *end == '\0') &&
                   isfinite(num)) {
            const ProtobufCFieldDescriptor *f = lg_pb_find_field(d, "number_value");
            set_oneof(msg, f);
            *(double *)field_ptr(msg, f) = num;
        } else {
            const ProtobufCFieldDescriptor *f = lg_pb_find_field(d, "string_value");
            set_oneof(msg, f);
            *(char **)field_ptr(msg, f) = lg_xstrdup(s);
        }
    }
    --c->depth;
    return r;
}

static int convert_any(conv_t *c, yaml_node_t *node, ProtobufCMessage *any)
{
    if (node->type != YAML_MAPPING_NODE)
        return fail(c, node, "expected a mapping for google.protobuf.Any");
    yaml_node_t *type_node = NULL, *value_node = NULL;
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(scalar(k), "@type") == 0)
            type_node = yaml_document_get_node(c->doc, p->value);
        else if (k->type == YAML_SCALAR_NODE && strcmp(scalar(k), "value") == 0)
            value_node = yaml_document_get_node(c->doc, p->value);
    }
    if (type_node == NULL)
        return fail(c, node, "missing \"@type\"");
    if (type_node->type != YAML_SCALAR_NODE)
        return fail(c, type_node, "expected a scalar");
    const char *url = scalar(type_node);
    const ProtobufCMessageDescriptor *desc = lg_pb_registry_find_url(url);
    const ProtobufCFieldDescriptor *tf = protobuf_c_message_descriptor_get_field(any->descriptor, 1);
    const ProtobufCFieldDescriptor *vf = protobuf_c_message_descriptor_get_field(any->descriptor, 2);
    if (desc == NULL) {
        /* Not an error yet: an optional filter may name a type legate lacks. The validator
         * decides, and reports this message if nothing excuses it. */
        lg_error_t unknown;
        c->err = &unknown;
        fail(c, type_node, "unknown type \"%s\"", url);
        c->err = c->outer_err;
        clear_value(field_ptr(any, tf), tf);
        clear_value(field_ptr(any, vf), vf);
        *(char **)field_ptr(any, tf) = lg_xstrdup(url);
        lg_srcmap_add_unknown_any(c->map, any, unknown.msg);
        return c->map != NULL ? 0 : lg_error_set(c->err, "%s", unknown.msg);
    }

    ProtobufCMessage *inner = lg_pb_new(desc);
    lg_pb_wkt_t kind = lg_pb_wkt_kind(desc);
    int r;
    if (kind != LG_PB_WKT_NONE && kind != LG_PB_WKT_ANY) {
        /* Well-known types with a special JSON form sit under "value" inside an Any. */
        if (value_node == NULL) {
            r = fail(c, node, "missing \"value\" for %s", desc->name);
        } else {
            r = convert_message(c, value_node, inner);
        }
    } else {
        r = convert_message(c, node, inner); /* skips "@type" */
    }
    if (r != 0) {
        protobuf_c_message_free_unpacked(inner, NULL);
        return -1;
    }

    clear_value(field_ptr(any, tf), tf);
    clear_value(field_ptr(any, vf), vf);
    *(char **)field_ptr(any, tf) = lg_xstrdup(url);
    ProtobufCBinaryData *bin = field_ptr(any, vf);
    bin->len = protobuf_c_message_get_packed_size(inner);
    bin->data = malloc(bin->len ? bin->len : 1);
    if (bin->data == NULL)
        lg_fatal("out of memory");
    protobuf_c_message_pack(inner, bin->data);
    lg_srcmap_set_any(c->map, any, inner);
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Generic fields and messages                                                                 */
/* ------------------------------------------------------------------------------------------- */

/* Writes one value of field f from node into slot (a singular field or a repeated element). */
static int convert_value(conv_t *c, yaml_node_t *node, const ProtobufCFieldDescriptor *f,
                         void *slot)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        ProtobufCMessage **m = slot;
        if (*m == NULL)
            *m = lg_pb_new(f->descriptor);
        return convert_message(c, node, *m);
    }
    if (node->type != YAML_SCALAR_NODE)
        return fail(c, node, "expected a scalar");
    int64_t i64 = 0;
    uint64_t u64 = 0;
    double d = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if (parse_int(c, node, INT32_MIN, INT32_MAX, "int32", &i64) != 0)
            return -1;
        *(int32_t *)slot = (int32_t)i64;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (parse_int(c, node, INT64_MIN, INT64_MAX, "int64", &i64) != 0)
            return -1;
        *(int64_t *)slot = i64;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if (scalar(node)[0] == '-' && isdigit((unsigned char)scalar(node)[1]))
            return fail(c, node, "value %s out of range for uint32", scalar(node));
        if (parse_int(c, node, 0, UINT32_MAX, "uint32", &i64) != 0)
            return -1;
        *(uint32_t *)slot = (uint32_t)i64;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if (parse_uint64(c, node, &u64) != 0)
            return -1;
        *(uint64_t *)slot = u64;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT:
        if (parse_double(c, node, &d) != 0)
            return -1;
        *(float *)slot = (float)d;
        return 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        if (parse_double(c, node, &d) != 0)
            return -1;
        *(double *)slot = d;
        return 0;
    case PROTOBUF_C_TYPE_BOOL:
        if (parse_bool(scalar(node), slot) != 0)
            return fail(c, node, "invalid boolean \"%s\"", scalar(node));
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return parse_enum(c, node, f->descriptor, slot);
    case PROTOBUF_C_TYPE_STRING:
        clear_value(slot, f);
        *(char **)slot = lg_xstrdup(scalar(node));
        return 0;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = slot;
        uint8_t *data;
        size_t len;
        if (lg_base64_decode(scalar(node), node->data.scalar.length, &data, &len) != 0)
            return fail(c, node, "invalid base64 \"%s\"", scalar(node));
        clear_value(slot, f);
        b->data = data;
        b->len = len;
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        break;
    }
    return fail(c, node, "unsupported field type");
}

/* Map entries are messages named "...Entry" with exactly a key (1) and a value (2). */
static int is_map_entry(const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return 0;
    const ProtobufCMessageDescriptor *d = f->descriptor;
    size_t nl = strlen(d->short_name);
    return d->n_fields == 2 && nl > 5 && strcmp(d->short_name + nl - 5, "Entry") == 0 &&
           d->fields[0].id == 1 && strcmp(d->fields[0].name, "key") == 0 && d->fields[1].id == 2 &&
           strcmp(d->fields[1].name, "value") == 0;
}

static int same_key(const ProtobufCFieldDescriptor *kf, const void *a, const void *b)
{
    if (kf->type == PROTOBUF_C_TYPE_STRING)
        return strcmp(*(char *const *)a, *(char *const *)b) == 0;
    return memcmp(a, b, value_size(kf)) == 0;
}

static int convert_map(conv_t *c, yaml_node_t *node, ProtobufCMessage *msg,
                       const ProtobufCFieldDescriptor *f)
{
    if (node->type != YAML_MAPPING_NODE)
        return fail(c, node, "expected a mapping for %s",
                    ((const ProtobufCMessageDescriptor *)f->descriptor)->name);
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    size_t first_new = *(size_t *)((char *)msg + f->quantifier_offset);
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return fail(c, k, "expected a scalar");
        size_t mark = lg_path_push_key(&c->path, scalar(k));
        ProtobufCMessage *entry = lg_pb_new(ed);
        if (convert_value(c, k, kf, field_ptr(entry, kf)) != 0 ||
            convert_value(c, v, vf, field_ptr(entry, vf)) != 0) {
            protobuf_c_message_free_unpacked(entry, NULL);
            return -1;
        }
        lg_srcmap_set(c->map, entry, LG_SRCMAP_SELF, c->doc_id, line_of(k));
        lg_path_pop(&c->path, mark);
        /* A key repeated in one mapping is a mistake; a key from an earlier document is replaced. */
        size_t n = *(size_t *)((char *)msg + f->quantifier_offset);
        ProtobufCMessage **entries = *(ProtobufCMessage ***)field_ptr(msg, f);
        size_t i;
        for (i = 0; i < n; ++i)
            if (same_key(kf, field_ptr(entries[i], kf), field_ptr(entry, kf)))
                break;
        if (i < n && i >= first_new) {
            protobuf_c_message_free_unpacked(entry, NULL);
            return fail(c, k, "duplicate key \"%s\"", scalar(k));
        }
        if (i < n) {
            protobuf_c_message_free_unpacked(entries[i], NULL);
            entries[i] = entry;
        } else {
            *(ProtobufCMessage **)repeated_append(msg, f) = entry;
        }
    }
    return 0;
}

static int convert_repeated(conv_t *c, yaml_node_t *node, ProtobufCMessage *msg,
                            const ProtobufCFieldDescriptor *f)
{
    if (is_map_entry(f))
        return convert_map(c, node, msg, f);
    if (node->type != YAML_SEQUENCE_NODE) {
        /* A single value where a list is expected is a list of one, as Envoy's loader takes it. */
        void *slot = repeated_append(msg, f);
        if (convert_value(c, node, f, slot) != 0) {
            repeated_pop(msg, f);
            return -1;
        }
        return 0;
    }
    size_t i = 0;
    for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top;
         ++it, ++i) {
        yaml_node_t *item = yaml_document_get_node(c->doc, *it);
        size_t mark = lg_path_push_index(&c->path, i);
        void *slot = repeated_append(msg, f);
        if (is_null(item) && f->type != PROTOBUF_C_TYPE_MESSAGE) {
            lg_path_pop(&c->path, mark);
            repeated_pop(msg, f);
            return fail(c, item, "null is not a valid list element");
        }
        if (convert_value(c, item, f, slot) != 0) {
            repeated_pop(msg, f);
            return -1;
        }
        lg_path_pop(&c->path, mark);
    }
    return 0;
}

static int convert_field(conv_t *c, yaml_node_t *node, ProtobufCMessage *msg,
                         const ProtobufCFieldDescriptor *f)
{
    /* null leaves a field as it is, as proto3 JSON reads it, except where null is a value. */
    if (is_null(node) &&
        !(f->type == PROTOBUF_C_TYPE_MESSAGE && lg_pb_wkt_kind(f->descriptor) == LG_PB_WKT_VALUE))
        return 0;
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return convert_repeated(c, node, msg, f);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        set_oneof(msg, f);
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0)
        *(protobuf_c_boolean *)((char *)msg + f->quantifier_offset) = 1;
    return convert_value(c, node, f, field_ptr(msg, f));
}

static int convert_fields(conv_t *c, yaml_node_t *node, ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    int is_any_body = 0;
    if (node->type != YAML_MAPPING_NODE)
        return fail(c, node, "expected a mapping for %s", desc->name);
    /* The fields of a message inside an Any share the mapping with "@type". */
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (k->type == YAML_SCALAR_NODE && strcmp(scalar(k), "@type") == 0)
            is_any_body = 1;
    }
    lg_srcmap_set(c->map, msg, LG_SRCMAP_SELF, c->doc_id, line_of(node));

    /* Which fields, and which oneof member per oneof, this mapping has set. */
    const yaml_node_t *seen_stack[64];
    const yaml_node_t **seen = desc->n_fields <= 64 ? seen_stack : calloc(desc->n_fields, sizeof(*seen));
    if (seen == NULL)
        lg_fatal("out of memory");
    memset(seen, 0, sizeof(*seen) * (desc->n_fields <= 64 ? 64 : desc->n_fields));
    int ret = -1;

    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        if (k->type != YAML_SCALAR_NODE) {
            fail(c, k, "expected a scalar");
            goto exit;
        }
        const char *name = scalar(k);
        if (is_any_body && strcmp(name, "@type") == 0)
            continue;
        const ProtobufCFieldDescriptor *f = lg_pb_find_field(desc, name);
        if (f == NULL) {
            fail_unknown_field(c, k, desc, name);
            goto exit;
        }
        size_t idx = (size_t)(f - desc->fields);
        size_t mark = lg_path_push_field(&c->path, f->name);
        if (seen[idx] != NULL) {
            fail(c, k, "duplicate key \"%s\"", name);
            goto exit;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            for (unsigned j = 0; j < desc->n_fields && !is_null(v); ++j) {
                const ProtobufCFieldDescriptor *o = &desc->fields[j];
                if (j != idx && seen[j] != NULL && (o->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                    o->quantifier_offset == f->quantifier_offset && !is_null(seen[j])) {
                    fail(c, k, "oneof \"%s\": \"%s\" and \"%s\" are both set",
                         lg_pb_oneof_name(desc, f), f->name, o->name);
                    goto exit;
                }
            }
        }
        seen[idx] = v;
        lg_srcmap_set(c->map, msg, f->id, c->doc_id, line_of(k));
        int r = convert_field(c, v, msg, f);
        if (r != 0)
            goto exit;
        lg_path_pop(&c->path, mark);
    }
    ret = 0;
exit:
    if (seen != seen_stack)
        free(seen);
    return ret;
}

static int convert_message(conv_t *c, yaml_node_t *node, ProtobufCMessage *msg)
{
    if (++c->visited > c->max_visits || ++c->depth > MAX_DEPTH) {
        --c->depth;
        return fail(c, node, "document too deep or too large");
    }
    int r;
    lg_pb_wkt_t kind = lg_pb_wkt_kind(msg->descriptor);
    switch (kind) {
    case LG_PB_WKT_DURATION:
    case LG_PB_WKT_TIMESTAMP:
        r = convert_duration_or_timestamp(c, node, msg, kind);
        if (r == -2) {
            r = convert_fields(c, node, msg);
            if (r == 0 && kind == LG_PB_WKT_DURATION) {
                /* {seconds, nanos} must stay within protobuf's range, as the string form does. */
                int64_t sec = *(int64_t *)field_ptr(msg, &msg->descriptor->fields[0]);
                int32_t ns = *(int32_t *)field_ptr(msg, &msg->descriptor->fields[1]);
                if (sec > 315576000000ll || sec < -315576000000ll || ns > 999999999 || ns < -999999999 ||
                    (sec > 0 && ns < 0) || (sec < 0 && ns > 0))
                    r = fail(c, node, "invalid duration {seconds: %lld, nanos: %d}", (long long)sec, (int)ns);
            }
        }
        break;
    case LG_PB_WKT_WRAPPER:
        if (node->type == YAML_MAPPING_NODE) {
            r = convert_fields(c, node, msg);
        } else {
            lg_srcmap_set(c->map, msg, LG_SRCMAP_SELF, c->doc_id, line_of(node));
            r = convert_value(c, node, &msg->descriptor->fields[0],
                              field_ptr(msg, &msg->descriptor->fields[0]));
        }
        break;
    case LG_PB_WKT_STRUCT:
        r = convert_struct(c, node, msg);
        break;
    case LG_PB_WKT_LIST_VALUE:
        r = convert_list_value(c, node, msg);
        break;
    case LG_PB_WKT_VALUE:
        --c->depth;
        --c->visited;
        return convert_value_wkt(c, node, msg);
    case LG_PB_WKT_ANY:
        lg_srcmap_set(c->map, msg, LG_SRCMAP_SELF, c->doc_id, line_of(node));
        r = convert_any(c, node, msg);
        break;
    default:
        r = convert_fields(c, node, msg);
        break;
    }
    --c->depth;
    return r;
}

/* ------------------------------------------------------------------------------------------- */
/* Entry point                                                                                 */
/* ------------------------------------------------------------------------------------------- */

int lg_pb_from_yaml(ProtobufCMessage *msg, const char *text, size_t len, const char *doc_name,
                    lg_srcmap_t *map, lg_error_t *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    int ret = -1;

    if (!yaml_parser_initialize(&parser))
        lg_fatal("out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        lg_error_set(err, "%s:%zu: YAML syntax error: %s%s%s", doc_name,
                     parser.problem_mark.line + 1, parser.problem ? parser.problem : "invalid YAML",
                     parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return -1;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root != NULL) {
        /* One document per file, as in Envoy: a second one is a mistake, not something to drop. */
        yaml_document_t extra;
        if (!yaml_parser_load(&parser, &extra)) {
            lg_error_set(err, "%s:%zu: YAML syntax error: %s", doc_name,
                         parser.problem_mark.line + 1, parser.problem ? parser.problem : "invalid YAML");
            goto exit;
        }
        int more = yaml_document_get_root_node(&extra) != NULL;
        yaml_document_delete(&extra);
        if (more) {
            lg_error_set(err, "%s:%zu: more than one YAML document", doc_name,
                         parser.mark.line + 1);
            goto exit;
        }
    }
    if (root == NULL || is_null(root)) {
        ret = 0; /* an empty document sets nothing */
        goto exit;
    }
    conv_t c = {.doc = &doc, .doc_name = doc_name, .map = map, .err = err, .outer_err = err};
    lg_path_init(&c.path);
    c.doc_id = map != NULL ? lg_srcmap_add_doc(map, doc_name) : 0;
    c.max_visits = (size_t)(doc.nodes.top - doc.nodes.start) * MAX_EXPANSION + 10000;
    ret = convert_message(&c, root, msg);
exit:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return ret;
}
