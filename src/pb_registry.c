/*
 * Type registry lookups: see pb_registry.h. The table itself is generated (pb_registry_gen.c).
 */
#include "pb_registry.h"

#include <string.h>

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
