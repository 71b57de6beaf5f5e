/*
 * A test helper: a protobuf-c message from YAML, so a test writes configs as users do.
 */
#ifndef LG_TEST_PB_H
#define LG_TEST_PB_H

#include <string.h>

#include "error.h"
#include "pb_yaml.h"

/**
 * Parses `yaml` into a new message of type `desc`. Returns it (free with
 * protobuf_c_message_free_unpacked), or NULL with err filled. err->msg is cleared first.
 */
static inline ProtobufCMessage *lg_test_pb_from_yaml(const ProtobufCMessageDescriptor *desc, const char *yaml,
                                                     lg_error_t *err)
{
    ProtobufCMessage *pb = lg_pb_new(desc);
    lg_srcmap_t map;
    lg_srcmap_init(&map);
    err->msg[0] = '\0';
    if (lg_pb_from_yaml(pb, yaml, strlen(yaml), "test.yaml", &map, err) != 0) {
        protobuf_c_message_free_unpacked(pb, NULL);
        pb = NULL;
    }
    lg_srcmap_dispose(&map);
    return pb;
}

#endif
