/*
 * hash.c - SipHash-1-3 (Aumasson and Bernstein), keyed per domain.
 *
 * Session ids can come from clients. With a public hash function a client
 * could pick ids that all land in one bucket and turn every lookup into a
 * long walk; with a random key per domain it cannot predict buckets. One
 * compression round and three finalisation rounds is the variant Rust and
 * Python use for hash tables.
 */
#include "config.h"

#include <string.h>

#include "index/index.h"

static inline uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define SIPROUND(v0, v1, v2, v3)                                               \
	do {                                                                   \
		v0 += v1;                                                      \
		v1 = rotl(v1, 13);                                             \
		v1 ^= v0;                                                      \
		v0 = rotl(v0, 32);                                             \
		v2 += v3;                                                      \
		v3 = rotl(v3, 16);                                             \
		v3 ^= v2;                                                      \
		v0 += v3;                                                      \
		v3 = rotl(v3, 21);                                             \
		v3 ^= v0;                                                      \
		v2 += v1;                                                      \
		v1 = rotl(v1, 17);                                             \
		v1 ^= v2;                                                      \
		v2 = rotl(v2, 32);                                             \
	} while (0)

/* SipHash-1-3 of the id under the domain's key with the namespace folded
 * into it, so the same id hashes apart in two namespaces. */
uint64_t idx_hash(const uint64_t key[2], uint16_t ns, const char *id,
		  size_t len)
{
	uint64_t k0 = key[0] ^ ((uint64_t)ns * 0x9e3779b97f4a7c15ull);
	uint64_t v0 = 0x736f6d6570736575ull ^ k0;
	uint64_t v1 = 0x646f72616e646f6dull ^ key[1];
	uint64_t v2 = 0x6c7967656e657261ull ^ k0;
	uint64_t v3 = 0x7465646279746573ull ^ key[1];
	size_t i;
	uint64_t m;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&m, id + i, 8); /* little-endian hosts only, as the
					* header's endian tag says */
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	m = (uint64_t)len << 56;     /* the length byte, */
	memcpy(&m, id + i, len - i); /* under it the tail */
	v3 ^= m;
	SIPROUND(v0, v1, v2, v3);
	v0 ^= m;
	v2 ^= 0xff;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}
