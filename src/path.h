/*
 * A field path under construction, as printed in config errors:
 * `static_resources.clusters[2].load_assignment.endpoints[0]`. The converter and the validator push
 * a segment when they descend into a field or an element and pop it on the way back, so the path
 * of any error is at hand without allocation. Paths longer than the buffer are truncated with "...".
 */
#ifndef LG_PATH_H
#define LG_PATH_H

#include <stddef.h>

#define LG_PATH_MAX 512

typedef struct st_lg_path_t {
    char buf[LG_PATH_MAX];
    size_t len;
} lg_path_t;

static inline void lg_path_init(lg_path_t *p)
{
    p->buf[0] = '\0';
    p->len = 0;
}

/** Appends ".name" (or "name" at the root); returns the previous length for lg_path_pop. */
size_t lg_path_push_field(lg_path_t *p, const char *name);
/** Appends "[index]". */
size_t lg_path_push_index(lg_path_t *p, size_t index);
/** Appends "[key]" for map entries. */
size_t lg_path_push_key(lg_path_t *p, const char *key);

static inline void lg_path_pop(lg_path_t *p, size_t mark)
{
    p->len = mark;
    p->buf[mark] = '\0';
}

#endif
