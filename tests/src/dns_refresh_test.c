/*
 * Unit tests of the pure parts of DNS discovery (src/dns_refresh.c): answers as address sets
 * (duplicates dropped, ports set, order ignored when comparing, smallest TTL kept) and the refresh
 * delays (dns_refresh_rate, respect_dns_ttl, dns_jitter, the jittered exponential failure backoff
 * capped at max_interval and reset by a good answer).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "dns_refresh.h"
#include "lg_test.h"

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(1); /* replaced by the endpoint's port */
    inet_pton(AF_INET, ip, &sa.sin_addr);
    return sa;
}

static struct sockaddr_in6 v6(const char *ip)
{
    struct sockaddr_in6 sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &sa.sin6_addr);
    return sa;
}

static void add4(lg_dns_addrs_t *a, const char *ip, uint16_t port, uint32_t ttl)
{
    struct sockaddr_in sa = v4(ip);
    lg_dns_addrs_add(a, (struct sockaddr *)&sa, port, ttl);
}

LG_TEST(answer_sets)
{
    lg_dns_addrs_t a = {0}, b = {0}, c = {0};
    add4(&a, "10.0.0.1", 80, 30);
    add4(&a, "10.0.0.2", 80, 10);
    add4(&a, "10.0.0.1", 80, 5); /* a duplicate: dropped, its TTL too */
    struct sockaddr_in6 s6 = v6("::1");
    lg_dns_addrs_add(&a, (struct sockaddr *)&s6, 80, 20);
    struct sockaddr unix_like = {.sa_family = AF_UNIX};
    lg_dns_addrs_add(&a, &unix_like, 80, 1); /* not an IP: ignored */
    LG_EXPECT_INT(a.n, 3);
    LG_EXPECT_INT(a.min_ttl_s, 10);
    LG_EXPECT_INT(ntohs(((struct sockaddr_in *)&a.v[0])->sin_port), 80);
    LG_EXPECT_INT(ntohs(((struct sockaddr_in6 *)&a.v[2])->sin6_port), 80);

    /* Same addresses in another order: the same set, so no new snapshot. */
    lg_dns_addrs_add(&b, (struct sockaddr *)&s6, 80, 20);
    add4(&b, "10.0.0.2", 80, 10);
    add4(&b, "10.0.0.1", 80, 30);
    LG_EXPECT(lg_dns_addrs_same_set(&a, &b));
    /* One address changed, one removed, or the port changed: a different set. */
    add4(&c, "10.0.0.1", 80, 30);
    add4(&c, "10.0.0.2", 80, 30);
    LG_EXPECT(!lg_dns_addrs_same_set(&a, &c));
    lg_dns_addrs_t d = {0};
    add4(&d, "10.0.0.1", 81, 30);
    add4(&d, "10.0.0.2", 81, 30);
    LG_EXPECT(!lg_dns_addrs_same_set(&c, &d));

    lg_dns_addrs_copy(&d, &a);
    LG_EXPECT(lg_dns_addrs_same_set(&a, &d) && d.min_ttl_s == 10);
    lg_dns_addrs_clear(&a);
    LG_EXPECT(a.n == 0 && a.v == NULL);
    lg_dns_addrs_t empty = {0};
    LG_EXPECT(lg_dns_addrs_same_set(&a, &empty));
    lg_dns_addrs_clear(&b);
    lg_dns_addrs_clear(&c);
    lg_dns_addrs_clear(&d);
}

LG_TEST(success_delays)
{
    lg_dns_refresh_t r = {.refresh_ms = 5000};
    LG_EXPECT_INT(lg_dns_refresh_after_success(&r, 30, 7), 5000); /* TTL ignored by default */
    r.respect_ttl = 1;
    LG_EXPECT_INT(lg_dns_refresh_after_success(&r, 30, 7), 30000);
    LG_EXPECT_INT(lg_dns_refresh_after_success(&r, 0, 7), 5000); /* /etc/hosts: no TTL */
    r.jitter_ms = 100;
    LG_EXPECT_INT(lg_dns_refresh_after_success(&r, 0, 250), 5050);
}

LG_TEST(failure_backoff)
{
    /* Without dns_failure_refresh_rate, failures retry at dns_refresh_rate, as Envoy does. */
    lg_dns_refresh_t plain = {.refresh_ms = 5000};
    LG_EXPECT_INT(lg_dns_refresh_after_failure(&plain, 12345), 5000);

    lg_dns_refresh_t r = {.refresh_ms = 5000, .failure_base_ms = 100, .failure_max_ms = 1000};
    uint64_t lo[] = {50, 100, 200, 400, 500, 500}, hi[] = {100, 200, 400, 800, 1000, 1000};
    for (size_t i = 0; i < 6; ++i) {
        for (uint32_t rnd = 0; rnd < 2000; rnd += 97) {
            lg_dns_refresh_t probe = r;
            uint64_t ms = lg_dns_refresh_after_failure(&probe, rnd);
            LG_EXPECT(ms >= lo[i] && ms <= hi[i]);
        }
        lg_dns_refresh_after_failure(&r, 0);
    }
    /* A good answer ends the streak: the next failure starts from base again. */
    lg_dns_refresh_after_success(&r, 0, 0);
    uint64_t ms = lg_dns_refresh_after_failure(&r, 0);
    LG_EXPECT(ms >= 50 && ms <= 100);
    /* max_interval unset: 10 x base. */
    lg_dns_refresh_t m = {.refresh_ms = 5000, .failure_base_ms = 1000};
    for (int i = 0; i < 20; ++i)
        ms = lg_dns_refresh_after_failure(&m, 0xffffffffu);
    LG_EXPECT(ms <= 10000 && ms >= 5000);
}

int main(void)
{
    LG_RUN(answer_sets);
    LG_RUN(success_delays);
    LG_RUN(failure_backoff);
    return LG_TEST_END();
}
