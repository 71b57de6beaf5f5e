/*
 * Type registry lookups: see pb_registry.h. The table itself is generated (pb_registry_gen.c).
 */
#include "pb_registry.h"

#include <string.h>

#include "google/protobuf/any.pb-c.h"
#include "srcmap.h"

const ProtobufCMessageDescriptor *lg_pb_registry_find(const char *name, size_t len)
{
    size_t lo = 0, hi = lg__pb_registry_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *cand = lg__pb_registry[mid]->name;
        int c = strncmp(cand, name, len);
        if (c == 0 && cand[len] != '\0')
            c = 1;
        if (c == 0)
            return lg__pb_registry[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const ProtobufCMessageDescriptor *lg_pb_registry_find_url(const char *type_url)
{
    const char *slash = strrchr(type_url, '/');
    const char *name = slash != NULL ? slash + 1 : type_url;
    return lg_pb_registry_find(name, strlen(name));
}

const char *lg_pb_oneof_name(const ProtobufCMessageDescriptor *desc, const ProtobufCFieldDescriptor *f)
{
    size_t lo = 0, hi = lg__pb_oneof_names_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const lg_pb_oneof_name_t *row = &lg__pb_oneof_names[mid];
        int c = strcmp(row->message, desc->name);
        if (c == 0)
            c = strcmp(row->field, f->name);
        if (c == 0)
            return row->oneof;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return "";
}

int lg_pb_field_is_set(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)((const char *)msg + f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset != 0 &&
        f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
        return *(const protobuf_c_boolean *)((const char *)msg + f->quantifier_offset);
    const void *slot = (const char *)msg + f->offset;
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)slot;
        return s != NULL && s[0] != '\0';
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)slot)->len != 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)slot != NULL;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)slot != 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)slot != 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return *(const uint64_t *)slot != 0;
    case PROTOBUF_C_TYPE_BOOL:
        return *(const protobuf_c_boolean *)slot != 0;
    default:
        return *(const uint32_t *)slot != 0;
    }
}


ProtobufCMessage *lg_pb_any_open(const lg_srcmap_t *map, const ProtobufCMessage *msg, int *owned)
{
    const Google__Protobuf__Any *any = (const Google__Protobuf__Any *)msg;
    *owned = 0;
    ProtobufCMessage *m = lg_srcmap_get_any(map, any);
    if (m != NULL)
        return m;
    const ProtobufCMessageDescriptor *desc = lg_pb_registry_find_url(any->type_url);
    if (desc == NULL)
        return NULL;
    m = protobuf_c_message_unpack(desc, NULL, any->value.len, any->value.data);
    *owned = m != NULL;
    return m;
}

void lg_pb_any_close(ProtobufCMessage *m, int owned)
{
    if (owned && m != NULL)
        protobuf_c_message_free_unpacked(m, NULL);
}
