/*
 * protobuf-c -> JSON, driven by the same descriptors as the YAML reader (pb_yaml.c), so that what
 * legate prints it reads back unchanged: `--print-config`, and later /config_dump. The output is
 * proto3 JSON with the proto field names (snake_case), as Envoy's admin prints them: fields at their
 * default value are left out, 64-bit integers are strings, enums are names, Any is expanded with
 * its "@type", and the well-known types take their JSON forms.
 */
#include "pb_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_registry.h"
#include "pb_wkt.h"

typedef struct st_printer_t {
    lg_strbuf_t *out;
    int indent; /* spaces per level; 0 prints compact */
    int level;
} printer_t;

static void print_message(printer_t *p, const ProtobufCMessage *msg);

static const void *field_ptr(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    return (const char *)msg + f->offset;
}

static void newline(printer_t *p)
{
    if (p->indent == 0)
        return;
    lg_strbuf_puts(p->out, "\n");
    for (int i = 0; i < p->indent * p->level; ++i)
        lg_strbuf_append(p->out, " ", 1);
}

static void open_obj(printer_t *p, char ch)
{
    lg_strbuf_append(p->out, &ch, 1);
    ++p->level;
}

static void close_obj(printer_t *p, char ch, int had_items)
{
    --p->level;
    if (had_items)
        newline(p);
    lg_strbuf_append(p->out, &ch, 1);
}

static void item_sep(printer_t *p, int *first)
{
    if (!*first)
        lg_strbuf_puts(p->out, ",");
    *first = 0;
    newline(p);
}

static void key(printer_t *p, const char *name)
{
    lg_strbuf_json_string(p->out, name, strlen(name));
    lg_strbuf_puts(p->out, p->indent ? ": " : ":");
}

static void print_double(printer_t *p, double d, int is_float)
{
    if (isnan(d)) {
        lg_strbuf_puts(p->out, "\"NaN\"");
    } else if (isinf(d)) {
        lg_strbuf_puts(p->out, d > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    } else {
        /* The shortest form that reads back to the same value. */
        char buf[40];
        for (int prec = is_float ? 6 : 15; prec <= 17; ++prec) {
            snprintf(buf, sizeof(buf), "%.*g", prec, d);
            if (is_float ? (float)strtod(buf, NULL) == (float)d : strtod(buf, NULL) == d)
                break;
        }
        lg_strbuf_puts(p->out, buf);
    }
}

/* One value of field f stored at slot. */
static void print_value(printer_t *p, const ProtobufCFieldDescriptor *f, const void *slot)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        lg_strbuf_printf(p->out, "%" PRId32, *(const int32_t *)slot);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        lg_strbuf_printf(p->out, "%" PRIu32, *(const uint32_t *)slot);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        lg_strbuf_printf(p->out, "\"%" PRId64 "\"", *(const int64_t *)slot);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        lg_strbuf_printf(p->out, "\"%" PRIu64 "\"", *(const uint64_t *)slot);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        print_double(p, *(const float *)slot, 1);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        print_double(p, *(const double *)slot, 0);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        lg_strbuf_puts(p->out, *(const protobuf_c_boolean *)slot ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *v =
            protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)slot);
        if (v != NULL)
            lg_strbuf_json_string(p->out, v->name, strlen(v->name));
        else
            lg_strbuf_printf(p->out, "%d", *(const int *)slot);
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)slot;
        lg_strbuf_json_string(p->out, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = slot;
        char *enc = lg_base64_encode(b->data, b->len);
        lg_strbuf_json_string(p->out, enc, strlen(enc));
        free(enc);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        print_message(p, *(ProtobufCMessage *const *)slot);
        break;
    }
}

static int is_map_entry(const ProtobufCFieldDescriptor *f)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return 0;
    const ProtobufCMessageDescriptor *d = f->descriptor;
    size_t nl = strlen(d->short_name);
    return d->n_fields == 2 && nl > 5 && strcmp(d->short_name + nl - 5, "Entry") == 0 &&
           strcmp(d->fields[0].name, "key") == 0 && strcmp(d->fields[1].name, "value") == 0;
}

static void print_map(printer_t *p, const ProtobufCFieldDescriptor *f, size_t n,
                      ProtobufCMessage *const *entries)
{
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    const ProtobufCFieldDescriptor *kf = &ed->fields[0], *vf = &ed->fields[1];
    int first = 1;
    open_obj(p, '{');
    for (size_t i = 0; i < n; ++i) {
        item_sep(p, &first);
        const void *kslot = field_ptr(entries[i], kf);
        if (kf->type == PROTOBUF_C_TYPE_STRING) {
            print_value(p, kf, kslot);
        } else {
            /* JSON object keys are strings; integer and bool keys are quoted. */
            lg_strbuf_t tmp = LG_STRBUF_INIT;
            printer_t kp = {&tmp, 0, 0};
            print_value(&kp, kf, kslot);
            const char *s = tmp.data ? tmp.data : "";
            if (s[0] == '"')
                lg_strbuf_puts(p->out, s);
            else
                lg_strbuf_json_string(p->out, s, strlen(s));
            lg_strbuf_dispose(&tmp);
        }
        lg_strbuf_puts(p->out, p->indent ? ": " : ":");
        if (vf->type == PROTOBUF_C_TYPE_MESSAGE && *(ProtobufCMessage *const *)field_ptr(entries[i], vf) == NULL)
            lg_strbuf_puts(p->out, "{}");
        else
            print_value(p, vf, field_ptr(entries[i], vf));
    }
    close_obj(p, '}', !first);
}

static void print_fields(printer_t *p, const ProtobufCMessage *msg, const char *type_url)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    int first = 1;
    open_obj(p, '{');
    if (type_url != NULL) {
        item_sep(p, &first);
        key(p, "@type");
        lg_strbuf_json_string(p->out, type_url, strlen(type_url));
    }
    for (unsigned i = 0; i < d->n_fields; ++i) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
            if (n == 0)
                continue;
            const char *arr = *(char *const *)field_ptr(msg, f);
            item_sep(p, &first);
            key(p, f->name);
            if (is_map_entry(f)) {
                print_map(p, f, n, (ProtobufCMessage *const *)arr);
                continue;
            }
            size_t sz = f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING ? sizeof(void *)
                        : f->type == PROTOBUF_C_TYPE_BYTES ? sizeof(ProtobufCBinaryData)
                        : f->type == PROTOBUF_C_TYPE_DOUBLE || f->type == PROTOBUF_C_TYPE_INT64 ||
                                f->type == PROTOBUF_C_TYPE_SINT64 || f->type == PROTOBUF_C_TYPE_SFIXED64 ||
                                f->type == PROTOBUF_C_TYPE_UINT64 || f->type == PROTOBUF_C_TYPE_FIXED64
                            ? 8
                        : f->type == PROTOBUF_C_TYPE_ENUM ? sizeof(int)
                        : f->type == PROTOBUF_C_TYPE_BOOL ? sizeof(protobuf_c_boolean)
                                                          : 4;
            int ifirst = 1;
            open_obj(p, '[');
            for (size_t j = 0; j < n; ++j) {
                item_sep(p, &ifirst);
                print_value(p, f, arr + j * sz);
            }
            close_obj(p, ']', 1);
            continue;
        }
        if (!lg_pb_field_is_set(msg, f))
            continue;
        item_sep(p, &first);
        key(p, f->name);
        print_value(p, f, field_ptr(msg, f));
    }
    close_obj(p, '}', !first);
}

static void print_any(printer_t *p, const ProtobufCMessage *any)
{
    const char *url = *(char *const *)field_ptr(any, &any->descriptor->fields[0]);
    const ProtobufCBinaryData *bin = field_ptr(any, &any->descriptor->fields[1]);
    const ProtobufCMessageDescriptor *desc = url != NULL ? lg_pb_registry_find_url(url) : NULL;
    ProtobufCMessage *inner = desc != NULL ? protobuf_c_message_unpack(desc, NULL, bin->len, bin->data) : NULL;
    if (inner == NULL) {
        /* A type legate does not know (an optional filter's): its name is all that is kept. */
        int first = 1;
        open_obj(p, '{');
        item_sep(p, &first);
        key(p, "@type");
        lg_strbuf_json_string(p->out, url != NULL ? url : "", url != NULL ? strlen(url) : 0);
        close_obj(p, '}', 1);
        return;
    }
    lg_pb_wkt_t kind = lg_pb_wkt_kind(desc);
    if (kind != LG_PB_WKT_NONE && kind != LG_PB_WKT_ANY) {
        int first = 1;
        open_obj(p, '{');
        item_sep(p, &first);
        key(p, "@type");
        lg_strbuf_json_string(p->out, url, strlen(url));
        item_sep(p, &first);
        key(p, "value");
        print_message(p, inner);
        close_obj(p, '}', 1);
    } else {
        print_fields(p, inner, url);
    }
    protobuf_c_message_free_unpacked(inner, NULL);
}

static void print_message(printer_t *p, const ProtobufCMessage *msg)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    char buf[64];
    switch (lg_pb_wkt_kind(d)) {
    case LG_PB_WKT_DURATION:
    case LG_PB_WKT_TIMESTAMP: {
        int64_t sec = *(const int64_t *)field_ptr(msg, &d->fields[0]);
        int32_t ns = *(const int32_t *)field_ptr(msg, &d->fields[1]);
        if (lg_pb_wkt_kind(d) == LG_PB_WKT_DURATION)
            lg_pb_duration_format(sec, ns, buf, sizeof(buf));
        else
            lg_pb_timestamp_format(sec, ns, buf, sizeof(buf));
        lg_strbuf_json_string(p->out, buf, strlen(buf));
        return;
    }
    case LG_PB_WKT_WRAPPER:
        print_value(p, &d->fields[0], field_ptr(msg, &d->fields[0]));
        return;
    case LG_PB_WKT_STRUCT: {
        const ProtobufCFieldDescriptor *f = &d->fields[0];
        print_map(p, f, *(const size_t *)((const char *)msg + f->quantifier_offset),
                  *(ProtobufCMessage *const *const *)field_ptr(msg, f));
        return;
    }
    case LG_PB_WKT_LIST_VALUE: {
        const ProtobufCFieldDescriptor *f = &d->fields[0];
        size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
        ProtobufCMessage *const *vals = *(ProtobufCMessage *const *const *)field_ptr(msg, f);
        int first = 1;
        open_obj(p, '[');
        for (size_t i = 0; i < n; ++i) {
            item_sep(p, &first);
            print_message(p, vals[i]);
        }
        close_obj(p, ']', !first);
        return;
    }
    case LG_PB_WKT_VALUE: {
        uint32_t kcase = *(const uint32_t *)((const char *)msg + d->fields[0].quantifier_offset);
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, kcase);
        if (f == NULL || f->type == PROTOBUF_C_TYPE_ENUM)
            lg_strbuf_puts(p->out, "null");
        else
            print_value(p, f, field_ptr(msg, f));
        return;
    }
    case LG_PB_WKT_ANY:
        print_any(p, msg);
        return;
    case LG_PB_WKT_NONE:
        break;
    }
    print_fields(p, msg, NULL);
}

char *lg_pb_to_json(const ProtobufCMessage *msg, int indent)
{
    lg_strbuf_t out = LG_STRBUF_INIT;
    printer_t p = {&out, indent, 0};
    print_message(&p, msg);
    return lg_strbuf_release(&out);
}
