/*
 * Stream info helpers: see stream_info.h.
 */
#include "stream_info.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const char *const flag_names[] = {
#define LG_X(name, s, l) s,
    LG_RESPONSE_FLAGS(LG_X)
#undef LG_X
};

static const char *const flag_long_names[] = {
#define LG_X(name, s, l) l,
    LG_RESPONSE_FLAGS(LG_X)
#undef LG_X
};

const char *lg_response_flag_name(lg_response_flag_t f)
{
    return (unsigned)f < LG_RF__COUNT ? flag_names[f] : "-";
}

const char *lg_response_flag_long_name(lg_response_flag_t f)
{
    return (unsigned)f < LG_RF__COUNT ? flag_long_names[f] : "-";
}

int lg_response_flag_parse(const char *s)
{
    for (int i = 0; i < LG_RF__COUNT; ++i)
        if (strcmp(flag_names[i], s) == 0)
            return i;
    return -1;
}

char *lg_stream_info_flags_string(const lg_stream_info_t *si, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < LG_RF__COUNT; ++i) {
        if (!(si->response_flags & (1u << i)))
            continue;
        int n = snprintf(buf + o, len - o, "%s%s", o ? "," : "", flag_names[i]);
        if (n < 0 || (size_t)n >= len - o)
            break;
        o += (size_t)n;
    }
    if (o == 0)
        snprintf(buf, len, "-");
    return buf;
}

char *lg_sockaddr_to_string(const struct sockaddr_storage *ss, char *buf, size_t len, int with_port)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        if (with_port)
            snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
        else
            snprintf(buf, len, "%s", ip);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        if (with_port)
            snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
        else
            snprintf(buf, len, "%s", ip);
    } else {
        snprintf(buf, len, "-");
    }
    return buf;
}
