/*
 * Tests for lb_hash.c: xxHash64 against the published XXH64 vectors (short inputs, the 32-byte
 * stripe path, seeds) and MurmurHash64A against values of the same function as libstdc++ ships it
 * for std::hash<std::string> with Envoy's seed (the function Envoy's murmurHash2 is).
 */
#include "lb_hash.h"

#include "lg_test.h"

static uint64_t xx(const char *s, uint64_t seed)
{
    return lg_xxh64(s, strlen(s), seed);
}

LG_TEST(xxh64_matches_the_published_vectors)
{
    LG_EXPECT(xx("", 0) == 0xEF46DB3751D8E999ull);
    LG_EXPECT(xx("", 1) == 0xD5AFBA1336A3BE4Bull);
    LG_EXPECT(xx("a", 0) == 0xD24EC4F1A98C6E5Bull);
    LG_EXPECT(xx("abc", 0) == 0x44BC2CF5AD770999ull);
    LG_EXPECT(xx("asdf", 0) == 0x415872F599CEA71Eull);
    LG_EXPECT(xx("abc", 12345) == 0x01700E64F6F23509ull);
    /* 39 bytes: one 32-byte stripe, then 8-, 4- and 1-byte tails */
    LG_EXPECT(xx("Nobody inspects the spammish repetition", 0) == 0xFBCEA83C8A378BF1ull);
    LG_EXPECT(xx("0123456789abcdef0123456789abcdef", 0) == 0x642A94958E71E6C5ull);
}

LG_TEST(murmur2_matches_the_reference_function)
{
    LG_EXPECT(lg_murmur2_64("", 0, LG_MURMUR2_STD_SEED) == 6142509188972423790ull);
    LG_EXPECT(lg_murmur2_64("a", 1, LG_MURMUR2_STD_SEED) == 4993892634952068459ull);
    LG_EXPECT(lg_murmur2_64("foo", 3, LG_MURMUR2_STD_SEED) == 9631199822919835226ull);
    LG_EXPECT(lg_murmur2_64("lyft", 4, LG_MURMUR2_STD_SEED) == 12847078931730529320ull);
    const char *s = "hello world, 0123456789"; /* two 8-byte blocks and a 7-byte tail */
    LG_EXPECT(lg_murmur2_64(s, strlen(s), LG_MURMUR2_STD_SEED) == 14664619653267952930ull);
}

int main(void)
{
    LG_RUN(xxh64_matches_the_published_vectors);
    LG_RUN(murmur2_matches_the_reference_function);
    return LG_TEST_END();
}
