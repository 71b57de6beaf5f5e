/*
 * Compression library config helpers: see library.h.
 */
#include "filters/compression/library.h"


ProtobufCMessage *lg_compression_library_open(const Envoy__Config__Core__V3__TypedExtensionConfig *lib,
                                              const ProtobufCMessageDescriptor *want, const char *field,
                                              int *owned, lg_error_t *err)
{
    *owned = 0;
    if (lib == NULL)
        return lg_error_set(err, "%s: value is required", field), NULL;
    if (lib->name == NULL || lib->name[0] == '\0')
        return lg_error_set(err, "%s.name: value length must be at least 1 characters", field), NULL;
    if (lib->typed_config == NULL)
        return lg_error_set(err, "%s.typed_config: value is required", field), NULL;
    ProtobufCMessage *m = lg_pb_any_open(NULL, &lib->typed_config->base, owned);
    if (m == NULL || m->descriptor != want) {
        lg_pb_any_close(m, *owned);
        lg_error_set(err, "%s.typed_config: %s is not supported by legate (only %s)", field,
                     lib->typed_config->type_url, want->name);
        return NULL;
    }
    return m;
}

int lg_compression_u32_option(const Google__Protobuf__UInt32Value *v, uint32_t lo, uint32_t hi, const char *field,
                              uint32_t *out, lg_error_t *err)
{
    if (v == NULL)
        return 0;
    if (v->value < lo || v->value > hi)
        return lg_error_set(err, "%s: value must be inside range [%u, %u]", field, lo, hi);
    *out = v->value;
    return 0;
}
