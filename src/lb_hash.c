/*
 * xxHash64 and MurmurHash64A: see lb_hash.h. Each follows its algorithm's description step by
 * step; the unit tests check them against the published test vectors.
 */
#include "lb_hash.h"

#define XXH_P1 0x9E3779B185EBCA87ull
#define XXH_P2 0xC2B2AE3D27D4EB4Full
#define XXH_P3 0x165667B19E3779F9ull
#define XXH_P4 0x85EBCA77C2B2AE63ull
#define XXH_P5 0x27D4EB2F165667C5ull

static uint64_t rotl64(uint64_t x, unsigned r)
{
    return (x << r) | (x >> (64 - r));
}

/* Little-endian loads of n (<= 8) bytes: the hashes are defined on little-endian words. */
static uint64_t load_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i > 0; --i)
        v = (v << 8) | p[i - 1];
    return v;
}

static uint64_t xxh_round(uint64_t acc, uint64_t lane)
{
    acc += lane * XXH_P2;
    return rotl64(acc, 31) * XXH_P1;
}

static uint64_t xxh_merge(uint64_t acc, uint64_t v)
{
    acc ^= xxh_round(0, v);
    return acc * XXH_P1 + XXH_P4;
}

uint64_t lg_xxh64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data, *end = p + len;
    uint64_t acc;
    if (len >= 32) {
        uint64_t v[4] = {seed + XXH_P1 + XXH_P2, seed + XXH_P2, seed, seed - XXH_P1};
        for (; end - p >= 32; p += 32)
            for (int i = 0; i < 4; ++i)
                v[i] = xxh_round(v[i], load_le(p + 8 * i, 8));
        acc = rotl64(v[0], 1) + rotl64(v[1], 7) + rotl64(v[2], 12) + rotl64(v[3], 18);
        for (int i = 0; i < 4; ++i)
            acc = xxh_merge(acc, v[i]);
    } else {
        acc = seed + XXH_P5;
    }
    acc += (uint64_t)len;
    for (; end - p >= 8; p += 8)
        acc = rotl64(acc ^ xxh_round(0, load_le(p, 8)), 27) * XXH_P1 + XXH_P4;
    if (end - p >= 4) {
        acc = rotl64(acc ^ (load_le(p, 4) * XXH_P1), 23) * XXH_P2 + XXH_P3;
        p += 4;
    }
    for (; p < end; ++p)
        acc = rotl64(acc ^ (*p * XXH_P5), 11) * XXH_P1;
    acc ^= acc >> 33;
    acc *= XXH_P2;
    acc ^= acc >> 29;
    acc *= XXH_P3;
    acc ^= acc >> 32;
    return acc;
}

uint64_t lg_murmur2_64(const void *data, size_t len, uint64_t seed)
{
    const uint64_t m = 0xc6a4a7935bd1e995ull;
    const unsigned r = 47;
    const unsigned char *p = data, *end = p + (len & ~(size_t)7);
    uint64_t h = seed ^ ((uint64_t)len * m);
    for (; p != end; p += 8) {
        uint64_t k = load_le(p, 8) * m;
        k ^= k >> r;
        h ^= k * m;
        h *= m;
    }
    if ((len & 7) != 0) {
        h ^= load_le(p, len & 7);
        h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}
