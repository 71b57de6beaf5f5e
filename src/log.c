/*
 * Process logging: see log.h.
 */
#include "log.h"

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

static void vwrite_line(const char *component, const char *level, const char *fmt, va_list ap)
{
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
    ssize_t w = write(2, line, len);
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
