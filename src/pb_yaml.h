/*
 * YAML/JSON -> protobuf-c: the one generic converter behind every config legate reads from text.
 * It is driven only by protobuf-c descriptors, so any message compiled from proto/ loads the way
 * Envoy loads it: proto field names in snake_case or camelCase, enums by name or number, oneofs
 * (two members in one mapping is an error), maps, repeated fields (a single value where a list is
 * expected is taken as a list of one), google.protobuf.Any by "@type", Duration as "1.5s" or
 * {seconds, nanos}, Timestamp as RFC 3339, wrappers as bare scalars, Struct/Value/ListValue as
 * free-form YAML. JSON documents are YAML documents, so the same path reads both.
 *
 * Converting into a message that already holds values merges, with protobuf's MergeFrom rules:
 * scalars are replaced, sub-messages merged, repeated fields appended, map entries replaced by key.
 * That is how `--config-yaml` applies over `-c`, as in Envoy.
 *
 * Not for: semantic validation (bootstrap_validate.c) or binary input (protobuf-c unpacks that).
 */
#ifndef LG_PB_YAML_H
#define LG_PB_YAML_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "error.h"
#include "srcmap.h"

/**
 * Parses `text` (YAML or JSON, `len` bytes) and merges it into `msg`.
 *
 * doc_name names the document in errors ("front-proxy.yaml:42: path: message"). `map`, when not
 * NULL, receives the line of every message and field set, and the decoded form of every Any.
 * Returns 0, or -1 with `err` filled; on error `msg` may hold part of the document and should be
 * discarded by the caller. Main thread; the caller keeps ownership of everything passed in.
 */
int lg_pb_from_yaml(ProtobufCMessage *msg, const char *text, size_t len, const char *doc_name,
                    lg_srcmap_t *map, lg_error_t *err);

/** Allocates and initialises an empty message of the given type. Free with
 * protobuf_c_message_free_unpacked(msg, NULL). Aborts on out of memory. */
ProtobufCMessage *lg_pb_new(const ProtobufCMessageDescriptor *desc);

/** Finds a field by its proto name, or by the camelCase JSON name of one. NULL when none. */
const ProtobufCFieldDescriptor *lg_pb_find_field(const ProtobufCMessageDescriptor *desc,
                                                 const char *name);

#endif
