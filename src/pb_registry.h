/*
 * The protobuf type registry: every message type compiled from proto/ (and the well-known types),
 * looked up by full name or by type URL. protobuf-c has no descriptor pool of its own; the table
 * is generated at build time by tools/gen_registry.py, sorted, and searched with bsearch.
 * Read-only; any thread.
 */
#ifndef LG_PB_REGISTRY_H
#define LG_PB_REGISTRY_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

extern const ProtobufCMessageDescriptor *const lg__pb_registry[];
extern const size_t lg__pb_registry_count;

/* (message, field) -> the name of the oneof the field belongs to; sorted by message, field. */
typedef struct st_lg_pb_oneof_name_t {
    const char *message;
    const char *field;
    const char *oneof;
} lg_pb_oneof_name_t;
extern const lg_pb_oneof_name_t lg__pb_oneof_names[];
extern const size_t lg__pb_oneof_names_count;

/** The descriptor of a message by full name ("envoy.config.cluster.v3.Cluster"), or NULL. */
const ProtobufCMessageDescriptor *lg_pb_registry_find(const char *full_name, size_t len);
/** The descriptor named by a type URL: the part after the last '/'. NULL when unknown. */
const ProtobufCMessageDescriptor *lg_pb_registry_find_url(const char *type_url);

/** The name of the oneof that field `f` of `desc` belongs to ("cluster_specifier"), or "". */
const char *lg_pb_oneof_name(const ProtobufCMessageDescriptor *desc, const ProtobufCFieldDescriptor *f);

/**
 * Whether a singular field holds a value proto3 JSON would print: a non-default scalar, a present
 * message, the active oneof member. Repeated fields: use their count.
 */
int lg_pb_field_is_set(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f);

/**
 * The message packed in an Any: the converter's decoded copy when `map` has one (lines intact, not
 * owned: *owned = 0), else freshly unpacked (*owned = 1: free with protobuf_c_message_free_unpacked).
 * NULL when the type is unknown or the bytes do not decode. `any` is a google.protobuf.Any.
 */
struct st_lg_srcmap_t;
ProtobufCMessage *lg_pb_any_open(const struct st_lg_srcmap_t *map, const ProtobufCMessage *any, int *owned);
/** Releases what lg_pb_any_open returned. */
void lg_pb_any_close(ProtobufCMessage *m, int owned);

#endif
