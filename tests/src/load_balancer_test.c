/*
 * Tests for load_balancer.c: each policy driven with fake random numbers and active request counts.
 * Round robin is exact; the random and least-request checks use a fixed-seed generator and bounds
 * many standard deviations wide, so they cannot flake; the consistent-hashing checks assert
 * stability across rebuilds, the share of keys that move when a host goes, and table balance.
 */
#include "load_balancer.h"

#include <stdio.h>
#include <stdlib.h>

#include "lb_hash.h"
#include "lg_test.h"

typedef struct st_fake_env_t {
    uint64_t rng;
    uint32_t active[16];
} fake_env_t;

static uint64_t fake_random(void *ctx)
{
    fake_env_t *f = ctx;
    /* splitmix64: a fixed sequence, well spread */
    uint64_t z = (f->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t fake_active(void *ctx, const lg_host_t *h)
{
    fake_env_t *f = ctx;
    return f->active[h->index];
}

/* A cluster of n hosts 10.0.<first + i>.1:80 with the given weights (NULL: all 1). */
static lg_cluster_t *make_cluster(lg_lb_policy_t policy, size_t n, unsigned first, const uint32_t *weights)
{
    lg_cluster_t *c = calloc(1, sizeof(*c));
    c->name = "test";
    c->lb_policy = policy;
    c->lb = (lg_lb_config_t){2, 1.0, 1024, 8 * 1024 * 1024, LG_HASH_FUNCTION_XX_HASH, 65537, 0};
    c->hosts = calloc(n, sizeof(*c->hosts));
    for (size_t i = 0; i < n; ++i) {
        lg_host_t *h = calloc(1, sizeof(*h));
        h->address_string = malloc(32);
        snprintf(h->address_string, 32, "10.0.%u.1:80", first + (unsigned)i);
        h->weight = weights != NULL ? weights[i] : 1;
        h->index = (unsigned)i;
        c->hosts[c->n_hosts++] = h;
        c->total_weight += h->weight;
    }
    return c;
}

static void free_cluster(lg_cluster_t *c)
{
    for (size_t i = 0; i < c->n_hosts; ++i) {
        free(c->hosts[i]->address_string);
        free(c->hosts[i]);
    }
    free(c->hosts);
    lg_lb_table_free(c->lb_table);
    free(c);
}

static const lg_host_t *pick(lg_cluster_t *c, lg_lb_state_t *st, fake_env_t *f, const lg_lb_context_t *ctx)
{
    lg_lb_env_t env = {fake_random, fake_active, f};
    return lg_lb_pick(c, st, &env, ctx);
}

/* Zeroes counts[0..n_hosts) and counts the hosts of n picks without a hash. */
static void tally(lg_cluster_t *c, lg_lb_state_t *st, fake_env_t *f, int n, unsigned *counts)
{
    memset(counts, 0, c->n_hosts * sizeof(*counts));
    for (int i = 0; i < n; ++i)
        ++counts[pick(c, st, f, NULL)->index];
}

/* Restarts the cursors after a config change, as a new snapshot would. */
static void reset(lg_cluster_t *c, lg_lb_state_t *st)
{
    lg_lb_state_dispose(st);
    lg_lb_state_init(st, c);
}

/* The host a key hashes to, by address (host objects differ between clusters). */
static const char *pick_key(lg_cluster_t *c, fake_env_t *f, uint64_t key)
{
    lg_lb_context_t ctx = {1, lg_xxh64(&key, sizeof(key), 0)};
    return pick(c, NULL, f, &ctx)->address_string;
}

LG_TEST(round_robin_rotates_exactly)
{
    lg_cluster_t *c = make_cluster(LG_LB_ROUND_ROBIN, 3, 0, NULL);
    lg_lb_state_t st;
    lg_lb_state_init(&st, c);
    fake_env_t f = {0};
    unsigned counts[3] = {0};
    unsigned prev = 99;
    for (int i = 0; i < 300; ++i) {
        unsigned h = pick(c, &st, &f, NULL)->index;
        LG_EXPECT(h != prev);
        prev = h;
        ++counts[h];
    }
    for (int i = 0; i < 3; ++i)
        LG_EXPECT_INT(counts[i], 100);
    lg_lb_state_dispose(&st);
    free_cluster(c);
}

LG_TEST(weighted_round_robin_stays_within_one_of_its_share)
{
    const uint32_t w[3] = {5, 2, 1};
    lg_cluster_t *c = make_cluster(LG_LB_ROUND_ROBIN, 3, 0, w);
    lg_lb_state_t st;
    lg_lb_state_init(&st, c);
    fake_env_t f = {0};
    unsigned counts[3] = {0};
    for (int i = 1; i <= 800; ++i) {
        ++counts[pick(c, &st, &f, NULL)->index];
        for (int k = 0; k < 3; ++k) {
            double share = (double)i * w[k] / 8;
            LG_EXPECT(counts[k] + 1.0 >= share && counts[k] <= share + 1.0);
        }
    }
    LG_EXPECT_INT(counts[0], 500);
    LG_EXPECT_INT(counts[2], 100);
    lg_lb_state_dispose(&st);
    free_cluster(c);
}

LG_TEST(random_follows_weights)
{
    const uint32_t w[2] = {3, 1};
    lg_cluster_t *c = make_cluster(LG_LB_RANDOM, 2, 0, w);
    fake_env_t f = {0};
    unsigned counts[2] = {0};
    for (int i = 0; i < 8000; ++i)
        ++counts[pick(c, NULL, &f, NULL)->index];
    LG_EXPECT(counts[0] > 5700 && counts[0] < 6300); /* 6000 expected, sd ~39 */
    free_cluster(c);
}

LG_TEST(least_request_prefers_idle_hosts)
{
    lg_cluster_t *c = make_cluster(LG_LB_LEAST_REQUEST, 3, 0, NULL);
    lg_lb_state_t st;
    lg_lb_state_init(&st, c);
    LG_EXPECT(st.edf_deadline == NULL); /* equal weights: power of two choices */
    fake_env_t f = {0};
    f.active[0] = 5;
    unsigned counts[3];
    tally(c, &st, &f, 9000, counts);
    /* the busy host wins only when both draws are it: 1/9 (1000 expected, sd ~30) */
    LG_EXPECT(counts[0] > 800 && counts[0] < 1200);
    LG_EXPECT(counts[1] > 3600 && counts[2] > 3600);

    /* more choices: the busy host needs every draw (1/27) */
    c->lb.choice_count = 3;
    tally(c, &st, &f, 9000, counts);
    LG_EXPECT(counts[0] > 200 && counts[0] < 480);

    /* all idle: even spread */
    f.active[0] = 0;
    tally(c, &st, &f, 9000, counts);
    for (int k = 0; k < 3; ++k)
        LG_EXPECT(counts[k] > 2700 && counts[k] < 3300);
    lg_lb_state_dispose(&st);
    free_cluster(c);
}

LG_TEST(weighted_least_request_divides_weight_by_load)
{
    const uint32_t w[2] = {1, 2};
    lg_cluster_t *c = make_cluster(LG_LB_LEAST_REQUEST, 2, 0, w);
    lg_lb_state_t st;
    lg_lb_state_init(&st, c);
    LG_EXPECT(st.edf_deadline != NULL);
    fake_env_t f = {0};
    unsigned counts[2];
    tally(c, &st, &f, 3000, counts);
    /* idle: EDF follows the weights exactly, 1:2 */
    LG_EXPECT(counts[0] >= 999 && counts[0] <= 1001);

    /* host 1 holds 3 requests: weight 2 / (3 + 1) = 0.5 against host 0's 1, so 2:1 the other way */
    f.active[1] = 3;
    tally(c, &st, &f, 3000, counts);
    LG_EXPECT(counts[0] >= 1990 && counts[0] <= 2010);

    /* bias 0 ignores the load */
    c->lb.active_request_bias = 0;
    reset(c, &st);
    tally(c, &st, &f, 3000, counts);
    LG_EXPECT(counts[0] >= 999 && counts[0] <= 1001);

    /* bias 2: 2 / 4^2 = 0.125 against 1: host 1 gets 1/9 */
    c->lb.active_request_bias = 2.0;
    reset(c, &st);
    tally(c, &st, &f, 9000, counts);
    LG_EXPECT(counts[1] >= 990 && counts[1] <= 1010);
    lg_lb_state_dispose(&st);
    free_cluster(c);
}

static void check_consistent_hashing(lg_lb_policy_t policy, lg_hash_function_t fn)
{
    enum { N = 10, KEYS = 20000 };
    fake_env_t f = {0};
    lg_cluster_t *a = make_cluster(policy, N, 0, NULL);
    a->lb.hash_function = fn;
    lg_lb_table_build(a);
    LG_EXPECT(lg_lb_table_size(a->lb_table) >= 1024);

    /* same hosts in another order, built again: every key lands where it did */
    lg_cluster_t *b = make_cluster(policy, N, 0, NULL);
    b->lb.hash_function = fn;
    for (size_t i = 0; i < N / 2; ++i) {
        lg_host_t *t = b->hosts[i];
        b->hosts[i] = b->hosts[N - 1 - i];
        b->hosts[N - 1 - i] = t;
        b->hosts[i]->index = (unsigned)i;
        b->hosts[N - 1 - i]->index = (unsigned)(N - 1 - i);
    }
    lg_lb_table_build(b);
    int same = 0;
    for (uint64_t k = 0; k < KEYS; ++k)
        same += strcmp(pick_key(a, &f, k), pick_key(b, &f, k)) == 0;
    LG_EXPECT_INT(same, KEYS);

    /* hosts 10.0.1..9: the one removed (10.0.0.1) had ~1/N of the keys; few others move */
    lg_cluster_t *r = make_cluster(policy, N - 1, 1, NULL);
    r->lb.hash_function = fn;
    lg_lb_table_build(r);
    int moved = 0, on_removed = 0;
    unsigned counts[N] = {0};
    for (uint64_t k = 0; k < KEYS; ++k) {
        const char *before = pick_key(a, &f, k), *after = pick_key(r, &f, k);
        on_removed += strcmp(before, "10.0.0.1:80") == 0;
        moved += strcmp(before, after) != 0;
        ++counts[after[5] - '0'];
    }
    LG_EXPECT(on_removed > KEYS / N / 2 && on_removed < KEYS / N * 2);
    LG_EXPECT(moved >= on_removed);
    LG_EXPECT(moved < KEYS * 2 / N); /* at most twice the keys of the host that went */
    LG_EXPECT_INT(counts[0], 0);
    for (int i = 1; i < N; ++i)
        LG_EXPECT(counts[i] > KEYS / (N - 1) / 2 && counts[i] < KEYS / (N - 1) * 2);

    /* no hash: random hosts */
    unsigned spread[N] = {0};
    for (int i = 0; i < 1000; ++i)
        ++spread[pick(a, NULL, &f, NULL)->index];
    for (int i = 0; i < N; ++i)
        LG_EXPECT(spread[i] > 30);
    free_cluster(a);
    free_cluster(b);
    free_cluster(r);
}

LG_TEST(ring_hash_is_stable_and_disrupts_little)
{
    check_consistent_hashing(LG_LB_RING_HASH, LG_HASH_FUNCTION_XX_HASH);
    check_consistent_hashing(LG_LB_RING_HASH, LG_HASH_FUNCTION_MURMUR_HASH_2);
}

LG_TEST(ring_hash_sizes_follow_weights_and_limits)
{
    const uint32_t w[3] = {1, 2, 5};
    lg_cluster_t *c = make_cluster(LG_LB_RING_HASH, 3, 0, w);
    lg_lb_table_build(c);
    /* the lightest host gets ceil(1/8 * 1024) = 128 entries; the ring is 8 times that */
    LG_EXPECT_INT(lg_lb_table_size(c->lb_table), 1024);
    fake_env_t f = {0};
    unsigned counts[3] = {0};
    for (uint64_t k = 0; k < 16000; ++k)
        ++counts[pick_key(c, &f, k)[5] - '0'];
    LG_EXPECT(counts[2] > 8000 && counts[2] < 12000); /* 10000 expected */
    LG_EXPECT(counts[0] > 1000 && counts[0] < 3000);  /* 2000 expected */
    lg_lb_table_free(c->lb_table);
    c->lb.minimum_ring_size = 100000;
    c->lb.maximum_ring_size = 4000;
    lg_lb_table_build(c);
    LG_EXPECT_INT(lg_lb_table_size(c->lb_table), 4000);
    free_cluster(c);
}

LG_TEST(maglev_is_stable_and_disrupts_little)
{
    check_consistent_hashing(LG_LB_MAGLEV, LG_HASH_FUNCTION_XX_HASH);
}

LG_TEST(maglev_table_follows_weights)
{
    fake_env_t f = {0};
    enum { M = 65537 };
    /* equal weights: every host holds floor or ceil of M/N slots */
    lg_cluster_t *c = make_cluster(LG_LB_MAGLEV, 7, 0, NULL);
    lg_lb_table_build(c);
    LG_EXPECT_INT(lg_lb_table_size(c->lb_table), M);
    unsigned counts[7] = {0};
    for (uint64_t slot = 0; slot < M; ++slot) {
        lg_lb_context_t ctx = {1, slot};
        ++counts[pick(c, NULL, &f, &ctx)->index];
    }
    for (int i = 0; i < 7; ++i)
        LG_EXPECT(counts[i] == M / 7 || counts[i] == M / 7 + 1);
    free_cluster(c);

    /* weights 1:2:3:4: every share within 1% of the table */
    const uint32_t w[4] = {1, 2, 3, 4};
    c = make_cluster(LG_LB_MAGLEV, 4, 0, w);
    lg_lb_table_build(c);
    unsigned wc[4] = {0};
    for (uint64_t slot = 0; slot < M; ++slot) {
        lg_lb_context_t ctx = {1, slot};
        ++wc[pick(c, NULL, &f, &ctx)->index];
    }
    for (int i = 0; i < 4; ++i) {
        double want = (double)M * w[i] / 10;
        LG_EXPECT(wc[i] > want - M / 100 && wc[i] < want + M / 100);
    }
    free_cluster(c);
}

LG_TEST(tables_only_for_hashing_policies)
{
    lg_cluster_t *c = make_cluster(LG_LB_ROUND_ROBIN, 3, 0, NULL);
    lg_lb_table_build(c);
    LG_EXPECT(c->lb_table == NULL);
    free_cluster(c);
    c = make_cluster(LG_LB_MAGLEV, 0, 0, NULL);
    lg_lb_table_build(c);
    LG_EXPECT(c->lb_table == NULL);
    fake_env_t f = {0};
    LG_EXPECT(pick(c, NULL, &f, NULL) == NULL);
    free_cluster(c);
}

LG_TEST(primes)
{
    LG_EXPECT(lg_lb_is_prime(65537));
    LG_EXPECT(lg_lb_is_prime(5000011));
    LG_EXPECT(lg_lb_is_prime(2));
    LG_EXPECT(!lg_lb_is_prime(65536));
    LG_EXPECT(!lg_lb_is_prime(1));
    LG_EXPECT(!lg_lb_is_prime(0));
    LG_EXPECT(!lg_lb_is_prime(65537ull * 3));
}

int main(void)
{
    LG_RUN(round_robin_rotates_exactly);
    LG_RUN(weighted_round_robin_stays_within_one_of_its_share);
    LG_RUN(random_follows_weights);
    LG_RUN(least_request_prefers_idle_hosts);
    LG_RUN(weighted_least_request_divides_weight_by_load);
    LG_RUN(ring_hash_is_stable_and_disrupts_little);
    LG_RUN(ring_hash_sizes_follow_weights_and_limits);
    LG_RUN(maglev_is_stable_and_disrupts_little);
    LG_RUN(maglev_table_follows_weights);
    LG_RUN(tables_only_for_hashing_policies);
    LG_RUN(primes);
    return LG_TEST_END();
}
