/*
 * protobuf-c -> JSON: the printing half of the config converter (pb_yaml.h reads what this writes).
 * Any thread; reads the message only.
 */
#ifndef LG_PB_JSON_H
#define LG_PB_JSON_H

#include <protobuf-c/protobuf-c.h>

#include "strbuf.h"

/**
 * Prints `msg` as proto3 JSON with proto field names. indent > 0 pretty-prints with that many
 * spaces per level; 0 prints on one line. Returns a malloc'd string the caller frees.
 */
char *lg_pb_to_json(const ProtobufCMessage *msg, int indent);

#endif
