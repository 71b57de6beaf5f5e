/*
 * Regular expressions as Envoy's `safe_regex` knows them: RE2 syntax, RE2 engine. RE2 matches in
 * time linear in the input whatever the pattern, so a request path chosen by an attacker cannot
 * stall a worker on a pattern like `(a+)+$` (Envoy moved off std::regex for this, CVE-2019-15225).
 *
 * The engine lives behind this C interface; regex_re2.cc is the only C++ in legate and holds
 * nothing but the calls into RE2. Compiled patterns are immutable: compile on the main thread,
 * then match from any number of threads at once (RE2 objects are safe for concurrent use).
 *
 * Not for: glob or prefix matching (string matchers in route_table.h do those without a regex).
 */
#ifndef LG_REGEX_H
#define LG_REGEX_H

#include <stddef.h>
#include <stdint.h>

#include <h2o/memory.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "error.h"

typedef struct st_lg_regex_t lg_regex_t;

/* Envoy's runtime default for `re2.max_program_size.error_level`: larger programs are refused. */
#define LG_REGEX_DEFAULT_MAX_PROGRAM_SIZE 100u
/* For lg_regex_compile_ex: do not limit the program size. */
#define LG_REGEX_NO_PROGRAM_SIZE_LIMIT UINT32_MAX

/**
 * Compiles `pattern` (NUL-terminated, RE2 syntax) with Envoy's default program-size limit.
 * Returns the regex (free with lg_regex_free), or NULL with err filled: "invalid regex: <RE2's
 * message>" or Envoy's program-size message. Any thread; usually the main thread at config build.
 */
lg_regex_t *lg_regex_compile(const char *pattern, lg_error_t *err);

/**
 * As lg_regex_compile, for `len` bytes of `pattern` and an explicit limit on RE2's program size:
 * the deprecated `google_re2.max_program_size` when a config sets it, otherwise
 * LG_REGEX_DEFAULT_MAX_PROGRAM_SIZE. `explicit_limit` picks Envoy's wording of the error (a
 * configured limit vs the runtime's error-level threshold).
 */
lg_regex_t *lg_regex_compile_ex(const char *pattern, size_t len, uint32_t max_program_size,
                                int explicit_limit, lg_error_t *err);

/** 1 when the whole of s[0..len) matches (Envoy's matchers use full matches), else 0. Any thread. */
int lg_regex_full_match(const lg_regex_t *re, const char *s, size_t len);

/** 1 when some substring of s[0..len) matches, else 0. Any thread. */
int lg_regex_partial_match(const lg_regex_t *re, const char *s, size_t len);

/**
 * Checks that `substitution` is a valid rewrite for `re`: `\0`..`\9` name groups the pattern has,
 * `\\` is a backslash, and nothing else follows a backslash. Returns 0, or -1 with err filled.
 */
int lg_regex_check_substitution(const lg_regex_t *re, const char *substitution, lg_error_t *err);

/**
 * Replaces every non-overlapping match in s[0..len) with `substitution` (RE2::GlobalReplace: `\1`
 * is the first group, `\0` the whole match, `\\` a backslash). The result is NUL-terminated and
 * allocated from `pool`; its length goes to *outlen. When nothing matches the result is a copy of
 * the input. Any thread (the pool is the caller's).
 */
char *lg_regex_replace_all(const lg_regex_t *re, const char *s, size_t len, const char *substitution,
                           h2o_mem_pool_t *pool, size_t *outlen);

/** RE2's program size of the compiled pattern (what the limit above is compared with). */
int lg_regex_program_size(const lg_regex_t *re);

/** The pattern as given at compile time (NUL-terminated, owned by the regex). */
const char *lg_regex_pattern(const lg_regex_t *re);

/** Frees a regex; NULL is ignored. Only once no thread can still be matching with it. */
void lg_regex_free(lg_regex_t *re);

#ifdef __cplusplus
}
#endif

#endif
