/*
 * The 64-bit hash functions of the consistent-hashing load balancers, written from their published
 * descriptions: xxHash64 (Yann Collet's XXH64 specification) for hash policies, ring entries and
 * Maglev permutations, and MurmurHash2's 64-bit variant (MurmurHash64A) for RING_HASH clusters
 * configured with hash_function MURMUR_HASH_2. Both read input bytes little-endian, whatever the
 * machine, so rings are the same everywhere. Not for anything that needs a cryptographic hash.
 */
#ifndef LG_LB_HASH_H
#define LG_LB_HASH_H

#include <stddef.h>
#include <stdint.h>

/* The seed Envoy gives MurmurHash2 for ring entries (its STD_HASH_SEED). */
#define LG_MURMUR2_STD_SEED 0xc70f6907u

/** xxHash64 of p[0..len) with `seed`. Any thread. */
uint64_t lg_xxh64(const void *p, size_t len, uint64_t seed);

/** MurmurHash64A of p[0..len) with `seed`. Any thread. */
uint64_t lg_murmur2_64(const void *p, size_t len, uint64_t seed);

#endif
