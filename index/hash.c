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

#define SIPROUND(v0, v1, v2, v3)                                              \
	do {                                                                  \
		v0 += v1;                                                     \
		v1 = rotl(v1, 13);                                            \
		v1 ^= v0;                                                     \
		v0 = rotl(v0, 32);                                            \
		v2 += v3;                                                     \
		v3 = rotl(v3, 16);                                            \
		v3 ^= v2;                                                     \
		v0 += v3;                                                     \
		v3 = rotl(v3, 21);                                            \
		v3 ^= v0;                                                     \
		v2 += v1;                                                     \
		v1 = rotl(v1, 17);                                            \
		v1 ^= v2;                                                     \
		v2 = rotl(v2, 32);                                            \
	} while (0)

/* Hash the message "ns (2 bytes, little-endian) || id". */
uint64_t idx_hash(const uint64_t key[2], uint16_t ns, const char *id,
		  size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ull ^ key[0];
	uint64_t v1 = 0x646f72616e646f6dull ^ key[1];
	uint64_t v2 = 0x6c7967656e657261ull ^ key[0];
	uint64_t v3 = 0x7465646279746573ull ^ key[1];
	uint8_t buf[2 + SESH_ID_MAX + 8];
	size_t n = 2 + len, i;
	uint64_t m;

	buf[0] = (uint8_t)ns;
	buf[1] = (uint8_t)(ns >> 8);
	memcpy(buf + 2, id, len);
	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&m, buf + i, 8); /* little-endian hosts only, as
					 * the header's endian tag says */
		v3 ^= m;
		SIPROUND(v0, v1, v2, v3);
		v0 ^= m;
	}
	m = (uint64_t)n << 56;	    /* the length byte, */
	memcpy(&m, buf + i, n - i); /* under it the tail */
	v3 ^= m;
	SIPROUND(v0, v1, v2, v3);
	v0 ^= m;
	v2 ^= 0xff;
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}
