/*
 * Well-known types in text: see pb_wkt.h.
 */
#include "pb_wkt.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define MAX_DURATION_SECONDS 315576000000ll /* 10,000 years, protobuf's bound */

lg_pb_wkt_t lg_pb_wkt_kind(const ProtobufCMessageDescriptor *desc)
{
    const char *n = desc->name;
    if (strncmp(n, "google.protobuf.", 16) != 0)
        return LG_PB_WKT_NONE;
    n += 16;
    if (strcmp(n, "Duration") == 0)
        return LG_PB_WKT_DURATION;
    if (strcmp(n, "Timestamp") == 0)
        return LG_PB_WKT_TIMESTAMP;
    if (strcmp(n, "Struct") == 0)
        return LG_PB_WKT_STRUCT;
    if (strcmp(n, "Value") == 0)
        return LG_PB_WKT_VALUE;
    if (strcmp(n, "ListValue") == 0)
        return LG_PB_WKT_LIST_VALUE;
    if (strcmp(n, "Any") == 0)
        return LG_PB_WKT_ANY;
    static const char *const wrappers[] = {"DoubleValue", "FloatValue", "Int64Value", "UInt64Value",
                                           "Int32Value",  "UInt32Value", "BoolValue", "StringValue",
                                           "BytesValue"};
    for (size_t i = 0; i < sizeof(wrappers) / sizeof(wrappers[0]); ++i)
        if (strcmp(n, wrappers[i]) == 0)
            return LG_PB_WKT_WRAPPER;
    return LG_PB_WKT_NONE;
}

/* Reads up to 9 fraction digits after '.', scaled to nanoseconds. Returns digits read or -1. */
static int parse_nanos(const char **p, int32_t *nanos)
{
    int digits = 0;
    int32_t n = 0;
    while (isdigit((unsigned char)**p)) {
        if (++digits > 9)
            return -1;
        n = n * 10 + (**p - '0');
        ++*p;
    }
    for (int i = digits; i < 9; ++i)
        n *= 10;
    *nanos = n;
    return digits;
}

int lg_pb_duration_parse(const char *s, int64_t *seconds, int32_t *nanos)
{
    const char *p = s;
    int neg = 0;
    int64_t sec = 0;
    int32_t ns = 0;
    if (*p == '-') {
        neg = 1;
        ++p;
    }
    if (!isdigit((unsigned char)*p)) /* protobuf wants "0.5s", not ".5s" */
        return -1;
    while (isdigit((unsigned char)*p)) {
        sec = sec * 10 + (*p - '0');
        if (sec > MAX_DURATION_SECONDS)
            return -1;
        ++p;
    }
    if (*p == '.') {
        ++p;
        if (parse_nanos(&p, &ns) <= 0)
            return -1;
    }
    if (p[0] != 's' || p[1] != '\0')
        return -1;
    *seconds = neg ? -sec : sec;
    *nanos = neg ? -ns : ns;
    return 0;
}

static void format_fraction(int32_t nanos, char *buf, size_t len)
{
    if (nanos == 0)
        snprintf(buf, len, "%s", "");
    else if (nanos % 1000000 == 0)
        snprintf(buf, len, ".%03d", nanos / 1000000);
    else if (nanos % 1000 == 0)
        snprintf(buf, len, ".%06d", nanos / 1000);
    else
        snprintf(buf, len, ".%09d", nanos);
}

void lg_pb_duration_format(int64_t seconds, int32_t nanos, char *buf, size_t len)
{
    const char *sign = "";
    if (seconds < 0 || nanos < 0) {
        sign = "-";
        seconds = seconds < 0 ? -seconds : seconds;
        nanos = nanos < 0 ? -nanos : nanos;
    }
    char frac[16];
    format_fraction(nanos, frac, sizeof(frac));
    snprintf(buf, len, "%s%lld%ss", sign, (long long)seconds, frac);
}

static int parse_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; ++i) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
        ++*p;
    }
    *out = v;
    return 0;
}

static int expect(const char **p, char c)
{
    if (**p != c)
        return -1;
    ++*p;
    return 0;
}

int lg_pb_timestamp_parse(const char *s, int64_t *seconds, int32_t *nanos)
{
    const char *p = s;
    int y, mo, d, h, mi, se, oh = 0, om = 0;
    int32_t ns = 0;
    if (parse_digits(&p, 4, &y) || expect(&p, '-') || parse_digits(&p, 2, &mo) || expect(&p, '-') ||
        parse_digits(&p, 2, &d))
        return -1;
    if (*p != 'T' && *p != 't')
        return -1;
    ++p;
    if (parse_digits(&p, 2, &h) || expect(&p, ':') || parse_digits(&p, 2, &mi) || expect(&p, ':') ||
        parse_digits(&p, 2, &se))
        return -1;
    if (*p == '.') {
        ++p;
        if (parse_nanos(&p, &ns) <= 0)
            return -1;
    }
    int sign = 0;
    if (*p == 'Z' || *p == 'z') {
        ++p;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        ++p;
        if (parse_digits(&p, 2, &oh) || expect(&p, ':') || parse_digits(&p, 2, &om))
            return -1;
    } else {
        return -1;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 ||
        oh > 23 || om > 59)
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi,
                    .tm_sec = se};
    time_t t = timegm(&tm);
    if (tm.tm_mday != d) /* timegm normalised an impossible date such as 02-31 */
        return -1;
    *seconds = (int64_t)t - sign * (oh * 3600 + om * 60);
    *nanos = ns;
    return 0;
}

void lg_pb_timestamp_format(int64_t seconds, int32_t nanos, char *buf, size_t len)
{
    time_t t = (time_t)seconds;
    struct tm tm;
    char frac[16];
    if (gmtime_r(&t, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    format_fraction(nanos, frac, sizeof(frac));
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int lg_base64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen)
{
    while (len > 0 && s[len - 1] == '=')
        --len;
    if (len % 4 == 1)
        return -1;
    uint8_t *buf = malloc(len * 3 / 4 + 1);
    if (buf == NULL)
        lg_fatal("out of memory");
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; ++i) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) {
            free(buf);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (uint8_t)(acc >> bits);
        }
    }
    *out = buf;
    *outlen = n;
    return 0;
}

char *lg_base64_encode(const uint8_t *data, size_t len)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((len + 2) / 3 * 4 + 1), *p = out;
    if (out == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            v |= data[i + 2];
        *p++ = alphabet[(v >> 18) & 63];
        *p++ = alphabet[(v >> 12) & 63];
        *p++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        *p++ = i + 2 < len ? alphabet[v & 63] : '=';
    }
    *p = '\0';
    return out;
}
