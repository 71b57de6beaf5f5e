/*
 * Where converted config came from. While the YAML/JSON converter builds protobuf-c messages it
 * records, for every message and every field it sets, the document and line it came from, so that
 * checks made later on the finished messages (validation, snapshot building) can still point at the
 * line to fix. It also keeps the decoded message of every google.protobuf.Any it packed, so later
 * checks read typed configs with their lines instead of unpacking a line-less copy.
 *
 * Config from xDS has no source: every function here accepts a NULL map and then knows nothing.
 * Main thread only; owned by whoever loaded the config.
 */
#ifndef LG_SRCMAP_H
#define LG_SRCMAP_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "error.h"
#include "path.h"

#define LG_SRCMAP_MAX_DOCS 4

typedef struct st_lg_srcmap_entry_t {
    const void *key;
    uint32_t tag;
    uint32_t line;
    uint32_t doc;
    void *value;
} lg_srcmap_entry_t;

typedef struct st_lg_srcmap_unknown_any_t {
    const void *any;
    char *error; /* "<doc>:<line>: <path>: unknown type \"...\"" */
    int excused;
} lg_srcmap_unknown_any_t;

typedef struct st_lg_srcmap_t {
    lg_srcmap_entry_t *entries;
    size_t size, capacity;
    lg_srcmap_unknown_any_t *unknown_anys;
    size_t n_unknown_anys;
    const char *docs[LG_SRCMAP_MAX_DOCS]; /* document names, owned by the map */
    size_t ndocs;
} lg_srcmap_t;

/** Field id used for the position of a message itself (its mapping). Real field ids start at 1. */
#define LG_SRCMAP_SELF 0u

void lg_srcmap_init(lg_srcmap_t *map);
/** Frees the map, the document names and every decoded Any message it holds. */
void lg_srcmap_dispose(lg_srcmap_t *map);
/** Registers a document name (copied); returns its index for lg_srcmap_set. */
uint32_t lg_srcmap_add_doc(lg_srcmap_t *map, const char *name);

/** Records that field `field_id` of `msg` (or the message itself) was written at doc:line. */
void lg_srcmap_set(lg_srcmap_t *map, const void *msg, uint32_t field_id, uint32_t doc, uint32_t line);
/**
 * Looks up the position of a field, falling back to the message itself. Returns 1 and fills doc
 * name and line when known, 0 when not (map NULL, or the message did not come from a document).
 */
int lg_srcmap_get(const lg_srcmap_t *map, const void *msg, uint32_t field_id, const char **doc,
                  uint32_t *line);

/**
 * Sets `err` for a check that failed on `msg` at `path`: "<doc>:<line>: <path>: <message>", the
 * position left out when unknown (map or msg NULL, config from xDS) and the path when empty. The
 * one shape of every config error that points at a line. Returns -1.
 */
int lg_srcmap_verror(lg_error_t *err, const lg_srcmap_t *map, const void *msg, const lg_path_t *path,
                     const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

/** Stores `inner`, the decoded message packed into `any`; the map takes ownership. */
void lg_srcmap_set_any(lg_srcmap_t *map, const void *any, ProtobufCMessage *inner);
/** The decoded message recorded for `any`, or NULL. Owned by the map. */
ProtobufCMessage *lg_srcmap_get_any(const lg_srcmap_t *map, const void *any);

/**
 * Records an Any whose type legate does not know, with the error to report unless something
 * excuses it (an optional filter). Its type_url is set and its value empty.
 */
void lg_srcmap_add_unknown_any(lg_srcmap_t *map, const void *any, const char *error);
/** Marks an unknown-type Any as acceptable (it sits in an `is_optional` filter). */
void lg_srcmap_excuse_any(const lg_srcmap_t *map, const void *any);
/** The error of the first unknown-type Any nothing excused, or NULL. */
const char *lg_srcmap_unexcused_any(const lg_srcmap_t *map);

#endif
