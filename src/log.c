/*
 * Process logging: see log.h.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>

static const char *const level_names[] = {"trace", "debug", "info", "warning", "error", "critical", "off"};
static const char *const component_names[] = {
#define LG_X(name) #name,
    LG_LOG_COMPONENTS(LG_X)
#undef LG_X
};

int lg_log_levels[LG_LOGC__COUNT] = {
#define LG_X(name) LG_LOG_INFO,
    LG_LOG_COMPONENTS(LG_X)
#undef LG_X
};

int lg_log_level_parse(const char *name)
{
    if (strcmp(name, "warn") == 0)
        return LG_LOG_WARN;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); ++i)
        if (strcmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void lg_log_set_level(lg_log_level_t level)
{
    for (size_t i = 0; i < LG_LOGC__COUNT; ++i)
        lg_log_levels[i] = level;
}

int lg_log_set_component_levels(const char *spec, char *errbuf, size_t errlen)
{
    char *copy = strdup(spec), *save = NULL;
    if (copy == NULL)
        lg_fatal("out of memory");
    int ret = 0;
    for (char *item = strtok_r(copy, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(item, ':');
        int level = -1;
        size_t c;
        if (colon == NULL) {
            snprintf(errbuf, errlen, "component log level \"%s\" is not <component>:<level>", item);
            ret = -1;
            break;
        }
        *colon = '\0';
        if ((level = lg_log_level_parse(colon + 1)) < 0) {
            snprintf(errbuf, errlen, "unknown log level \"%s\"", colon + 1);
            ret = -1;
            break;
        }
        for (c = 0; c < LG_LOGC__COUNT; ++c)
            if (strcmp(component_names[c], item) == 0)
                break;
        if (c == LG_LOGC__COUNT) {
            snprintf(errbuf, errlen, "unknown log component \"%s\"", item);
            ret = -1;
            break;
        }
        lg_log_levels[c] = level;
    }
    free(copy);
    return ret;
}

static int log_fd = 2;       /* stderr, or the --log-path file (reopened over the same number) */
static char *log_path;       /* NULL: stderr */
static char *log_pattern;    /* NULL: the default line shape */
static const char ENVOY_DEFAULT_FORMAT[] = "[%Y-%m-%d %T.%e][%t][%l][%n] [%g:%#] %v";

int lg_log_set_path(const char *path, char *errbuf, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(errbuf, errlen, "cannot open log path \"%s\": %s", path, strerror(errno));
        return -1;
    }
    free(log_path);
    if ((log_path = strdup(path)) == NULL)
        lg_fatal("out of memory");
    log_fd = fd;
    return 0;
}

void lg_log_reopen(void)
{
    if (log_path == NULL)
        return;
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    /* dup2 swaps the file under the same descriptor: a concurrent write goes to one file or the other. */
    dup2(fd, log_fd);
    close(fd);
}

int lg_log_set_format(const char *pattern)
{
    if (strcmp(pattern, ENVOY_DEFAULT_FORMAT) == 0) {
        free(log_pattern);
        log_pattern = NULL;
        return 0;
    }
    int n_v = 0;
    for (const char *p = pattern; *p != '\0'; ++p) {
        if (*p != '%')
            continue;
        ++p;
        if (*p == '\0' || strchr("YmdHMSTefFtPlLnv%", *p) == NULL)
            return -1;
        n_v += *p == 'v';
    }
    if (n_v > 1)
        return -1;
    char *copy = strdup(pattern);
    if (copy == NULL)
        lg_fatal("out of memory");
    free(log_pattern);
    log_pattern = copy;
    return 0;
}

/* Appends printf output to line[*n], bounded by cap (one byte kept for the newline). */
static void put(char *line, size_t cap, size_t *n, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *line, size_t cap, size_t *n, const char *fmt, ...)
{
    if (*n + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + *n, cap - 1 - *n, fmt, ap);
    va_end(ap);
    if (m > 0)
        *n = *n + (size_t)m < cap - 1 ? *n + (size_t)m : cap - 2;
}

static size_t format_pattern(char *line, size_t cap, const char *component, const char *level, const char *fmt,
                             va_list ap)
{
    static const char short_levels[] = "TDIWECO";
    struct timespec ts;
    struct tm tm;
    size_t n = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    for (const char *p = log_pattern; *p != '\0'; ++p) {
        if (*p != '%') {
            if (n + 2 < cap)
                line[n++] = *p;
            continue;
        }
        switch (*++p) {
        case 'Y': put(line, cap, &n, "%04d", tm.tm_year + 1900); break;
        case 'm': put(line, cap, &n, "%02d", tm.tm_mon + 1); break;
        case 'd': put(line, cap, &n, "%02d", tm.tm_mday); break;
        case 'H': put(line, cap, &n, "%02d", tm.tm_hour); break;
        case 'M': put(line, cap, &n, "%02d", tm.tm_min); break;
        case 'S': put(line, cap, &n, "%02d", tm.tm_sec); break;
        case 'T': put(line, cap, &n, "%02d:%02d:%02d", tm.tm_hour, tm.tm_min, tm.tm_sec); break;
        case 'e': put(line, cap, &n, "%03ld", ts.tv_nsec / 1000000); break;
        case 'f': put(line, cap, &n, "%06ld", ts.tv_nsec / 1000); break;
        case 'F': put(line, cap, &n, "%09ld", ts.tv_nsec); break;
        case 't': put(line, cap, &n, "%ld", (long)syscall(SYS_gettid)); break;
        case 'P': put(line, cap, &n, "%ld", (long)getpid()); break;
        case 'l': put(line, cap, &n, "%s", level); break;
        case 'L': {
            int i = lg_log_level_parse(level);
            put(line, cap, &n, "%c", i >= 0 ? short_levels[i] : '?');
            break;
        }
        case 'n': put(line, cap, &n, "%s", component); break;
        case 'v':
            if (n + 1 < cap) {
                int m = vsnprintf(line + n, cap - 1 - n, fmt, ap);
                if (m > 0)
                    n = n + (size_t)m < cap - 1 ? n + (size_t)m : cap - 2;
            }
            break;
        default: put(line, cap, &n, "%%"); break;
        }
    }
    return n;
}

static void vwrite_line(const char *component, const char *level, const char *fmt, va_list ap)
{
    if (log_pattern != NULL) {
        char line[2048];
        size_t len = format_pattern(line, sizeof(line), component, level, fmt, ap);
        line[len++] = '\n';
        ssize_t w = write(log_fd, line, len);
        (void)w;
        return;
    }
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "[%04d-%02d-%02d %02d:%02d:%02d.%03d][%ld][%s][%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), (long)syscall(SYS_gettid), level, component);
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(log_fd, line, len);
    (void)w;
}

void lg_log_write(lg_log_component_t c, lg_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite_line(component_names[c], level_names[level], fmt, ap);
    va_end(ap);
}

void lg_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite_line("main", "critical", fmt, ap);
    va_end(ap);
    abort();
}
