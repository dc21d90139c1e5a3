/* SPDX-License-Identifier: MIT */
/*
 * stacks.c - deduplication of the call stacks the allocation calls capture
 * (see stacks.h).
 *
 * Runs inside malloc with the guard up. The table is open-addressed; entries are immutable
 * once published, and a grown table replaces the old one, which stays
 * valid for readers that still hold it (it is never freed).
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "selfmem.h"
#include "events.h"
#include "lock.h"
#include "stacks.h"

struct entry {
	uint32_t id;
	uint32_t depth;
	uint64_t ip[];
};

/* A slot holds its entry's hash, so that a probe that passes over other
 * stacks reads only the slot array: with the entries' hashes in the
 * entries, each such probe was a cache miss on an entry of its own (perf,
 * cc1: find 4% of all samples, three fifths of them on that load). */
struct slot {
	uint64_t hash; /* 0: empty; published after e */
	struct entry *e;
};

struct table {
	size_t mask;
	size_t count;
	struct slot slot[];
};

static unsigned max_depth = 64;
static uintptr_t self_lo, self_hi;
static struct table *table;
static struct hp_mutex table_lock = HP_MUTEX_INIT;
static uint32_t next_id = 1;
static uint32_t epoch = 1; /* a new one for each new table (fork) */

/* The thread's previous stack, for a repeated capture. */
static __thread struct {
	uint32_t id, epoch;
} last __attribute__((tls_model("initial-exec")));

static struct table *
new_table(size_t cap)
{
	struct table *t = hp_selfmem_alloc(sizeof(*t) + cap * sizeof(t->slot[0]), 16, true);

	if (t)
		t->mask = cap - 1;
	return t;
}

void
hp_stacks_init(unsigned depth, uintptr_t lo, uintptr_t hi)
{
	max_depth = depth < 1 ? 1 : depth > HP_MAX_DEPTH_LIMIT ? HP_MAX_DEPTH_LIMIT : depth;
	self_lo = lo;
	self_hi = hi;
}

void
hp_stacks_reset(void)
{
	hp_mutex_reset(&table_lock);
	__atomic_store_n(&table, NULL, __ATOMIC_RELEASE);
	next_id = 1;
	epoch++;
}

static uint64_t
rotl(uint64_t x, unsigned r)
{
	return x << r | x >> (64 - r);
}

/* Four lanes of multiply-xor, mixed at the end: the lanes' products do
 * not wait on each other, where one chain made every address wait on the
 * one before (~4 cycles each, for every allocation). Equal stacks are
 * confirmed by comparing them, so the hash only has to spread. */
static uint64_t
hash_ips(const uint64_t *ip, unsigned n)
{
	const uint64_t m = 0xbf58476d1ce4e5b9ULL;
	uint64_t a = 0x9e3779b97f4a7c15ULL ^ n, b = 0x94d049bb133111ebULL, c = 0x2545f4914f6cdd1dULL,
		 d = 0xd6e8feb86659fd93ULL;
	unsigned i = 0;

	for (; i + 4 <= n; i += 4) {
		a = (a ^ ip[i]) * m;
		b = (b ^ ip[i + 1]) * m;
		c = (c ^ ip[i + 2]) * m;
		d = (d ^ ip[i + 3]) * m;
	}
	for (; i < n; i++)
		a = (a ^ ip[i]) * m;
	uint64_t h = a ^ rotl(b, 16) ^ rotl(c, 32) ^ rotl(d, 48);
	h ^= h >> 31;
	h *= m;
	h ^= h >> 29;
	return h | 1; /* never 0 */
}

/* The entry for these frames, or NULL with *free_slot where it would go
 * (SIZE_MAX if the table is full: growth failed). */
static struct entry *
find(struct table *t, uint64_t h, const uint64_t *ip, unsigned n, size_t *free_slot)
{
	size_t i = h & t->mask;

	*free_slot = SIZE_MAX;
	for (size_t probes = 0; probes <= t->mask; probes++, i = (i + 1) & t->mask) {
		uint64_t k = __atomic_load_n(&t->slot[i].hash, __ATOMIC_ACQUIRE);

		if (k == 0) {
			*free_slot = i;
			return NULL;
		}
		if (k == h) {
			const struct entry *e = t->slot[i].e;
			if (e->depth == n && memcmp(e->ip, ip, n * sizeof(*ip)) == 0)
				return (struct entry *)e;
		}
	}
	return NULL;
}

/* Double the table; lock held. */
static struct table *
grow_locked(struct table *old)
{
	struct table *t = new_table((old->mask + 1) * 2);

	if (t == NULL)
		return NULL;
	for (size_t i = 0; i <= old->mask; i++) {
		uint64_t h = old->slot[i].hash;
		size_t j;

		if (h == 0)
			continue;
		for (j = h & t->mask; t->slot[j].hash; j = (j + 1) & t->mask)
			;
		t->slot[j] = old->slot[i];
	}
	t->count = old->count;
	__atomic_store_n(&table, t, __ATOMIC_RELEASE);
	return t;
}

static struct entry *
insert(uint64_t h, const uint64_t *ip, unsigned n)
{
	struct table *t;
	struct entry *e;
	size_t at;

	hp_mutex_lock(&table_lock);
	t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
	if (t == NULL) {
		t = new_table(4096);
		__atomic_store_n(&table, t, __ATOMIC_RELEASE);
	}
	e = NULL;
	if (t && (t->count + 1) * 10 > (t->mask + 1) * 7) {
		struct table *bigger = grow_locked(t);
		if (bigger)
			t = bigger;
	}
	if (t && (e = find(t, h, ip, n, &at)) == NULL && at != SIZE_MAX) {
		e = hp_selfmem_alloc(sizeof(*e) + n * sizeof(*ip), 16, false);
		if (e) {
			e->depth = n;
			e->id = next_id++;
			memcpy(e->ip, ip, n * sizeof(*ip));
			t->count++;
			t->slot[at].e = e;
			__atomic_store_n(&t->slot[at].hash, h, __ATOMIC_RELEASE);
			e = (struct entry *)((uintptr_t)e | 1); /* mark: inserted now */
		}
	}
	hp_mutex_unlock(&table_lock);
	return e;
}

unsigned
hp_stacks_slots(void)
{
	return max_depth + 16;
}

static uint32_t intern(void *const *raw, int got, bool *is_new, const uint64_t **ips,
		       unsigned *depth);

uint32_t
hp_stacks_intern(void *const *raw, int got, bool repeated, bool *is_new, const uint64_t **ips,
		 unsigned *depth)
{
	uint32_t id;

	if (repeated && got > 0 && last.epoch == epoch && last.id != 0) {
		*is_new = false;
		return last.id;
	}
	id = intern(raw, got, is_new, ips, depth);
	last.id = id;
	last.epoch = epoch;
	return id;
}

uint32_t
hp_stacks_intern_other(void *const *raw, int got, bool *is_new, const uint64_t **ips,
		       unsigned *depth)
{
	return intern(raw, got, is_new, ips, depth);
}

static uint32_t
intern(void *const *raw, int got, bool *is_new, const uint64_t **ips, unsigned *depth)
{
	const uint64_t *ip;
	unsigned n;
	int i = 0;
	struct table *t;
	struct entry *e;
	size_t at;
	uint64_t h;

	_Static_assert(sizeof(void *) == sizeof(uint64_t), "addresses are read as uint64_t");
	*is_new = false;
	if (got <= 0)
		return 0;
	/* Drop heapprof's own frames (the allocation call) from the top; the
	 * rest is read in place (the library is built -fno-strict-aliasing). */
	while (i < got && (uintptr_t)raw[i] >= self_lo && (uintptr_t)raw[i] < self_hi)
		i++;
	ip = (const uint64_t *)(raw + i);
	n = (unsigned)(got - i) < max_depth ? (unsigned)(got - i) : max_depth;
	if (n == 0)
		return 0;
	h = hash_ips(ip, n);
	t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
	if (t && (e = find(t, h, ip, n, &at)) != NULL)
		return e->id;
	e = insert(h, ip, n);
	if (e == NULL)
		return 0;
	if ((uintptr_t)e & 1) {
		e = (struct entry *)((uintptr_t)e & ~(uintptr_t)1);
		*is_new = true;
		*ips = e->ip;
		*depth = e->depth;
	}
	return e->id;
}
