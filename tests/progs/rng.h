/* SPDX-License-Identifier: MIT */
/*
 * rng.h - the stress tests' random numbers: xorshift64* (one generator per
 * thread, seeded explicitly so a failure can be replayed) and a 64-bit
 * mixer for cookies.
 */
#ifndef HP_TEST_RNG_H
#define HP_TEST_RNG_H

#include <stdint.h>

static inline uint64_t
rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static inline uint64_t
mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 29;
	return x;
}

#endif
