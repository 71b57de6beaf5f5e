/*
 * Tests for hash_policy.c: what each policy hashes (as Envoy hashes it), absent inputs giving no
 * hash, header value order not mattering, terminal policies ending the list and equal policies not
 * cancelling each other out.
 */
#include "hash_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "lb_hash.h"
#include "lg_test.h"

static h2o_mem_pool_t pool;

#define LIT(s) h2o_iovec_init(s, sizeof(s) - 1)

static uint64_t xx(const char *s)
{
    return lg_xxh64(s, strlen(s), 0);
}

static lg_request_head_t request(const char *path)
{
    lg_request_head_t r;
    memset(&r, 0, sizeof(r));
    r.method = LIT("GET");
    r.authority = LIT("example.com");
    r.path = h2o_iovec_init(path, strlen(path));
    return r;
}

static void add(lg_request_head_t *r, const char *name, const char *value)
{
    lg_headers_add(&pool, &r->headers, h2o_iovec_init(name, strlen(name)), h2o_iovec_init(value, strlen(value)));
}

static lg_hash_policy_t policy(lg_hash_policy_kind_t kind, const char *name, int terminal)
{
    lg_hash_policy_t p;
    memset(&p, 0, sizeof(p));
    p.kind = kind;
    p.terminal = terminal;
    p.cookie_ttl_ms = -1;
    if (name != NULL)
        p.name = h2o_iovec_init(name, strlen(name));
    return p;
}

static int generate(const lg_hash_policy_t *p, size_t n, const lg_request_head_t *req, uint64_t *out)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(41234);
    inet_pton(AF_INET, "192.0.2.7", &in->sin_addr);
    return lg_hash_policy_generate(p, n, req, &ss, &pool, out);
}

LG_TEST(header_values_are_hashed_sorted)
{
    lg_hash_policy_t p = policy(LG_HASH_POLICY_HEADER, "x-user", 0);
    uint64_t h = 0;
    lg_request_head_t r = request("/");
    LG_EXPECT_INT(generate(&p, 1, &r, &h), 0);
    add(&r, "x-user", "alice");
    LG_EXPECT_INT(generate(&p, 1, &r, &h), 1);
    LG_EXPECT(h == xx("alice"));
    add(&r, "x-user", "bob");
    uint64_t ab, ba;
    generate(&p, 1, &r, &ab);
    LG_EXPECT(ab == lg_xxh64("bob", 3, lg_xxh64("alice", 5, 0)));
    lg_request_head_t r2 = request("/");
    add(&r2, "x-user", "bob");
    add(&r2, "x-user", "alice");
    generate(&p, 1, &r2, &ba);
    LG_EXPECT(ab == ba);

    lg_hash_policy_t a = policy(LG_HASH_POLICY_HEADER, ":authority", 0);
    LG_EXPECT_INT(generate(&a, 1, &r, &h), 1);
    LG_EXPECT(h == xx("example.com"));
}

LG_TEST(cookie_only_when_present)
{
    lg_hash_policy_t p = policy(LG_HASH_POLICY_COOKIE, "session", 0);
    uint64_t h;
    lg_request_head_t r = request("/");
    add(&r, "cookie", "a=1; other=2");
    LG_EXPECT_INT(generate(&p, 1, &r, &h), 0);
    add(&r, "cookie", "x=y; session=\"abc\"; z=1");
    LG_EXPECT_INT(generate(&p, 1, &r, &h), 1);
    LG_EXPECT(h == xx("abc"));
    lg_request_head_t empty = request("/");
    add(&empty, "cookie", "session=");
    LG_EXPECT_INT(generate(&p, 1, &empty, &h), 0);
}

LG_TEST(query_parameter_and_source_ip)
{
    lg_hash_policy_t q = policy(LG_HASH_POLICY_QUERY_PARAMETER, "id", 0);
    uint64_t h;
    lg_request_head_t r = request("/p?a=1&id=42&id=43");
    LG_EXPECT_INT(generate(&q, 1, &r, &h), 1);
    LG_EXPECT(h == xx("42"));
    lg_request_head_t none = request("/p?ids=1");
    LG_EXPECT_INT(generate(&q, 1, &none, &h), 0);

    lg_hash_policy_t ip = policy(LG_HASH_POLICY_SOURCE_IP, NULL, 0);
    LG_EXPECT_INT(generate(&ip, 1, &r, &h), 1);
    LG_EXPECT(h == xx("192.0.2.7")); /* the address without its port */
    lg_hash_policy_t off = policy(LG_HASH_POLICY_NONE, NULL, 1); /* source_ip: false */
    LG_EXPECT_INT(generate(&off, 1, &r, &h), 0);
}

LG_TEST(policies_combine_and_terminal_stops)
{
    lg_request_head_t r = request("/?id=7");
    add(&r, "x-user", "alice");
    lg_hash_policy_t two[2] = {policy(LG_HASH_POLICY_HEADER, "x-user", 0), policy(LG_HASH_POLICY_HEADER, "x-user", 0)};
    uint64_t h, a = xx("alice");
    LG_EXPECT_INT(generate(two, 2, &r, &h), 1);
    LG_EXPECT(h == (((a << 1) | (a >> 63)) ^ a)); /* not 0: the first is rotated */

    lg_hash_policy_t term[2] = {policy(LG_HASH_POLICY_HEADER, "x-user", 1), policy(LG_HASH_POLICY_QUERY_PARAMETER, "id", 0)};
    LG_EXPECT_INT(generate(term, 2, &r, &h), 1);
    LG_EXPECT(h == a);
    /* a terminal policy without a hash does not stop the list */
    lg_hash_policy_t miss[2] = {policy(LG_HASH_POLICY_HEADER, "x-absent", 1), policy(LG_HASH_POLICY_QUERY_PARAMETER, "id", 0)};
    LG_EXPECT_INT(generate(miss, 2, &r, &h), 1);
    LG_EXPECT(h == xx("7"));
}

int main(void)
{
    h2o_mem_init_pool(&pool);
    LG_RUN(header_values_are_hashed_sorted);
    LG_RUN(cookie_only_when_present);
    LG_RUN(query_parameter_and_source_ip);
    LG_RUN(policies_combine_and_terminal_stops);
    h2o_mem_clear_pool(&pool);
    return LG_TEST_END();
}
