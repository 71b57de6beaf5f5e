/*
 * The RE2 side of regex.h: the only C++ in legate, kept to the calls into RE2 and the copying of
 * results into C memory. Every exception stops here (out of memory is fatal, as everywhere else).
 * Options are Envoy's: RE2::Quiet, i.e. the defaults (UTF-8, longest-match off, 8 MiB budget)
 * without logging parse errors to stderr.
 */
#include <cstring>
#include <new>
#include <string>

#include <re2/re2.h>

#include "regex.h"

/* log.h is C11; its _Noreturn is C++'s [[noreturn]]. */
#define _Noreturn [[noreturn]]
extern "C" {
#include "log.h"
}
#undef _Noreturn

struct st_lg_regex_t {
    re2::RE2 re;
    std::string pattern;
    st_lg_regex_t(const char *p, size_t len) : re(re2::StringPiece(p, len), re2::RE2::Quiet), pattern(p, len) {}
};

extern "C" lg_regex_t *lg_regex_compile_ex(const char *pattern, size_t len, uint32_t max_program_size,
                                           int explicit_limit, lg_error_t *err)
{
    lg_regex_t *r;
    try {
        r = new lg_regex_t(pattern, len);
    } catch (const std::bad_alloc &) {
        lg_fatal("out of memory compiling a regex");
    }
    if (!r->re.ok()) {
        lg_error_set(err, "invalid regex: %s", r->re.error().c_str());
        delete r;
        return NULL;
    }
    int size = r->re.ProgramSize();
    if (max_program_size != LG_REGEX_NO_PROGRAM_SIZE_LIMIT && size >= 0 && (uint32_t)size > max_program_size) {
        /* Envoy's two wordings: a limit set in the config, or the runtime's error-level default. */
        if (explicit_limit)
            lg_error_set(err,
                         "regex '%s' RE2 program size of %d > max program size of %u. Increase "
                         "configured max program size if necessary.",
                         r->pattern.c_str(), size, max_program_size);
        else
            lg_error_set(err,
                         "regex '%s' RE2 program size of %d > max program size of %u set for the error "
                         "level threshold. Increase configured max program size if necessary.",
                         r->pattern.c_str(), size, max_program_size);
        delete r;
        return NULL;
    }
    return r;
}

extern "C" lg_regex_t *lg_regex_compile(const char *pattern, lg_error_t *err)
{
    return lg_regex_compile_ex(pattern, strlen(pattern), LG_REGEX_DEFAULT_MAX_PROGRAM_SIZE, 0, err);
}

extern "C" int lg_regex_full_match(const lg_regex_t *re, const char *s, size_t len)
{
    return re2::RE2::FullMatch(re2::StringPiece(s, len), re->re);
}

extern "C" int lg_regex_partial_match(const lg_regex_t *re, const char *s, size_t len)
{
    return re2::RE2::PartialMatch(re2::StringPiece(s, len), re->re);
}

extern "C" int lg_regex_check_substitution(const lg_regex_t *re, const char *substitution, lg_error_t *err)
{
    std::string why;
    if (re->re.CheckRewriteString(substitution, &why))
        return 0;
    return lg_error_set(err, "invalid substitution \"%s\": %s", substitution, why.c_str());
}

extern "C" char *lg_regex_replace_all(const lg_regex_t *re, const char *s, size_t len,
                                      const char *substitution, h2o_mem_pool_t *pool, size_t *outlen)
{
    char *out;
    try {
        std::string text(s, len);
        re2::RE2::GlobalReplace(&text, re->re, substitution);
        out = (char *)h2o_mem_alloc_pool(pool, text.size() + 1);
        memcpy(out, text.data(), text.size());
        out[text.size()] = '\0';
        *outlen = text.size();
    } catch (const std::bad_alloc &) {
        lg_fatal("out of memory in a regex rewrite");
    }
    return out;
}

extern "C" int lg_regex_program_size(const lg_regex_t *re)
{
    return re->re.ProgramSize();
}

extern "C" const char *lg_regex_pattern(const lg_regex_t *re)
{
    return re->pattern.c_str();
}

extern "C" void lg_regex_free(lg_regex_t *re)
{
    delete re;
}
