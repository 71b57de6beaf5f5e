/*
 * The textual forms of protobuf's well-known types, as proto3 JSON defines them and Envoy's config
 * uses them: Duration "1.5s", Timestamp RFC 3339, bytes as base64, wrappers as bare scalars,
 * Struct/Value/ListValue as plain JSON. Shared by the YAML reader and the JSON printer so that what
 * one prints the other reads back. Pure functions; any thread.
 */
#ifndef LG_PB_WKT_H
#define LG_PB_WKT_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

typedef enum en_lg_pb_wkt_t {
    LG_PB_WKT_NONE,
    LG_PB_WKT_DURATION,
    LG_PB_WKT_TIMESTAMP,
    LG_PB_WKT_WRAPPER, /* DoubleValue ... BytesValue: one field "value" = 1 */
    LG_PB_WKT_STRUCT,
    LG_PB_WKT_VALUE,
    LG_PB_WKT_LIST_VALUE,
    LG_PB_WKT_ANY,
} lg_pb_wkt_t;

/** Which well-known type a descriptor is, by full name. */
lg_pb_wkt_t lg_pb_wkt_kind(const ProtobufCMessageDescriptor *desc);

/** Parses "1.5s", "-0.000000001s", "300s". Returns 0, or -1 when not a valid duration. */
int lg_pb_duration_parse(const char *s, int64_t *seconds, int32_t *nanos);
/** Formats as proto3 JSON does: "1s", "1.500s", "0.000001s" (0, 3, 6 or 9 digits). */
void lg_pb_duration_format(int64_t seconds, int32_t nanos, char *buf, size_t len);

/** Parses RFC 3339 ("2026-11-28T10:45:10.5Z", "...+01:00"). Returns 0 or -1. */
int lg_pb_timestamp_parse(const char *s, int64_t *seconds, int32_t *nanos);
/** Formats in UTC with a "Z" suffix and 0, 3, 6 or 9 fraction digits. */
void lg_pb_timestamp_format(int64_t seconds, int32_t nanos, char *buf, size_t len);

/**
 * Decodes standard or URL-safe base64, padded or not, into a malloc'd buffer (*out, *outlen).
 * Returns 0, or -1 when the text is not base64.
 */
int lg_base64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen);
/** Encodes with the standard alphabet and padding into a malloc'd, NUL-terminated string. */
char *lg_base64_encode(const uint8_t *data, size_t len);

#endif
