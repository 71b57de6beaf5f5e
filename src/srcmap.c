/*
 * lg_srcmap_t: an open-addressing hash table keyed by (pointer, tag). Tags are field ids, 0 for a
 * message itself and LG_SRCMAP_ANY for the decoded form of an Any. See srcmap.h.
 */
#include "srcmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define LG_SRCMAP_ANY UINT32_MAX

void lg_srcmap_init(lg_srcmap_t *map)
{
    memset(map, 0, sizeof(*map));
}

void lg_srcmap_dispose(lg_srcmap_t *map)
{
    for (size_t i = 0; i < map->capacity; ++i) {
        lg_srcmap_entry_t *e = &map->entries[i];
        if (e->key != NULL && e->tag == LG_SRCMAP_ANY && e->value != NULL)
            protobuf_c_message_free_unpacked(e->value, NULL);
    }
    free(map->entries);
    for (size_t i = 0; i < map->n_unknown_anys; ++i)
        free(map->unknown_anys[i].error);
    free(map->unknown_anys);
    for (size_t i = 0; i < map->ndocs; ++i)
        free((void *)map->docs[i]);
    memset(map, 0, sizeof(*map));
}

uint32_t lg_srcmap_add_doc(lg_srcmap_t *map, const char *name)
{
    if (map->ndocs == LG_SRCMAP_MAX_DOCS)
        lg_fatal("too many config documents");
    char *copy = strdup(name);
    if (copy == NULL)
        lg_fatal("out of memory");
    map->docs[map->ndocs] = copy;
    return (uint32_t)map->ndocs++;
}

static size_t hash(const void *key, uint32_t tag)
{
    uint64_t h = (uint64_t)(uintptr_t)key * 0x9E3779B97F4A7C15ull ^ (uint64_t)tag * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ (h >> 29));
}

static lg_srcmap_entry_t *find_slot(lg_srcmap_entry_t *entries, size_t capacity, const void *key,
                                    uint32_t tag)
{
    size_t i = hash(key, tag) & (capacity - 1);
    while (entries[i].key != NULL && !(entries[i].key == key && entries[i].tag == tag))
        i = (i + 1) & (capacity - 1);
    return &entries[i];
}

static lg_srcmap_entry_t *upsert(lg_srcmap_t *map, const void *key, uint32_t tag)
{
    if ((map->size + 1) * 4 > map->capacity * 3) {
        size_t ncap = map->capacity ? map->capacity * 2 : 256;
        lg_srcmap_entry_t *n = calloc(ncap, sizeof(*n));
        if (n == NULL)
            lg_fatal("out of memory");
        for (size_t i = 0; i < map->capacity; ++i)
            if (map->entries[i].key != NULL)
                *find_slot(n, ncap, map->entries[i].key, map->entries[i].tag) = map->entries[i];
        free(map->entries);
        map->entries = n;
        map->capacity = ncap;
    }
    lg_srcmap_entry_t *e = find_slot(map->entries, map->capacity, key, tag);
    if (e->key == NULL) {
        e->key = key;
        e->tag = tag;
        ++map->size;
    }
    return e;
}

static const lg_srcmap_entry_t *lookup(const lg_srcmap_t *map, const void *key, uint32_t tag)
{
    if (map == NULL || map->capacity == 0)
        return NULL;
    const lg_srcmap_entry_t *e = find_slot(map->entries, map->capacity, key, tag);
    return e->key != NULL ? e : NULL;
}

void lg_srcmap_set(lg_srcmap_t *map, const void *msg, uint32_t field_id, uint32_t doc, uint32_t line)
{
    if (map == NULL)
        return;
    lg_srcmap_entry_t *e = upsert(map, msg, field_id);
    e->doc = doc;
    e->line = line;
}

int lg_srcmap_get(const lg_srcmap_t *map, const void *msg, uint32_t field_id, const char **doc,
                  uint32_t *line)
{
    const lg_srcmap_entry_t *e = lookup(map, msg, field_id);
    if (e == NULL && field_id != LG_SRCMAP_SELF)
        e = lookup(map, msg, LG_SRCMAP_SELF);
    if (e == NULL)
        return 0;
    *doc = map->docs[e->doc];
    *line = e->line;
    return 1;
}

void lg_srcmap_set_any(lg_srcmap_t *map, const void *any, ProtobufCMessage *inner)
{
    if (map == NULL) {
        protobuf_c_message_free_unpacked(inner, NULL);
        return;
    }
    lg_srcmap_entry_t *e = upsert(map, any, LG_SRCMAP_ANY);
    if (e->value != NULL)
        protobuf_c_message_free_unpacked(e->value, NULL);
    e->value = inner;
}

ProtobufCMessage *lg_srcmap_get_any(const lg_srcmap_t *map, const void *any)
{
    const lg_srcmap_entry_t *e = lookup(map, any, LG_SRCMAP_ANY);
    return e != NULL ? e->value : NULL;
}

void lg_srcmap_add_unknown_any(lg_srcmap_t *map, const void *any, const char *error)
{
    if (map == NULL)
        return;
    lg_srcmap_unknown_any_t *n = realloc(map->unknown_anys, (map->n_unknown_anys + 1) * sizeof(*n));
    if (n == NULL)
        lg_fatal("out of memory");
    map->unknown_anys = n;
    n[map->n_unknown_anys].any = any;
    n[map->n_unknown_anys].excused = 0;
    if ((n[map->n_unknown_anys].error = strdup(error)) == NULL)
        lg_fatal("out of memory");
    ++map->n_unknown_anys;
}

void lg_srcmap_excuse_any(const lg_srcmap_t *map, const void *any)
{
    for (size_t i = 0; map != NULL && i < map->n_unknown_anys; ++i)
        if (map->unknown_anys[i].any == any)
            map->unknown_anys[i].excused = 1;
}

const char *lg_srcmap_unexcused_any(const lg_srcmap_t *map)
{
    for (size_t i = 0; map != NULL && i < map->n_unknown_anys; ++i)
        if (!map->unknown_anys[i].excused)
            return map->unknown_anys[i].error;
    return NULL;
}

int lg_srcmap_verror(lg_error_t *err, const lg_srcmap_t *map, const void *msg, const lg_path_t *path,
                     const char *fmt, va_list ap)
{
    char text[LG_ERROR_MAX];
    vsnprintf(text, sizeof(text), fmt, ap);
    const char *doc;
    uint32_t line;
    char where[LG_ERROR_MAX / 2] = "";
    if (msg != NULL && lg_srcmap_get(map, msg, LG_SRCMAP_SELF, &doc, &line))
        snprintf(where, sizeof(where), "%s:%u: ", doc, line);
    if (path->len != 0)
        return lg_error_set(err, "%s%s: %s", where, path->buf, text);
    return lg_error_set(err, "%s%s", where, text);
}
