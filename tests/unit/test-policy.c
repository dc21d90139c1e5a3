/* SPDX-License-Identifier: MIT */
/*
 * test-policy - the textbook policies of heapprof advise (analyzer/policy.h)
 * against brute force, and each one's own behaviour on a sequence worked
 * out by hand.
 *
 * Brute force: seeded random sequences of allocations and frees; every few
 * steps a byte map of the heap (one entry per 16 bytes, from its start to
 * the break) counts how many blocks, allocated or free, cover each
 * granule: exactly one everywhere (no overlap, every free byte accounted
 * for); no two free blocks touch (coalescing is complete; for the buddy:
 * no free block's buddy is free and whole); the free space at the top is
 * trimmed; a buddy block is a power of two at a multiple of its size.
 * A failure prints the policy and the seed.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "policy.h"

#define BASE ((uint64_t)0x10000000)

struct live {
	uint64_t addr, bytes;
};

struct walk {
	uint8_t *cover;
	uint64_t base, brk;
	uint64_t prev_end;
	bool adjacent, outside, misaligned;
	const struct pol *p;
	bool buddy;
};

static void
mark(struct walk *w, uint64_t addr, uint64_t bytes)
{
	if (addr < w->base || addr + bytes > w->brk || (addr | bytes) % 16) {
		w->outside = true;
		return;
	}
	for (uint64_t g = (addr - w->base) / 16; g < (addr + bytes - w->base) / 16; g++)
		w->cover[g]++;
}

static void
free_block(void *arg, uint64_t addr, uint64_t bytes)
{
	struct walk *w = arg;

	if (!w->buddy && addr == w->prev_end)
		w->adjacent = true;
	if (w->buddy) {
		uint64_t off = addr - w->base;
		if ((bytes & (bytes - 1)) || off % bytes)
			w->misaligned = true;
		if (bytes < ((uint64_t)1 << 18)) {
			uint32_t b = pol_at(w->p, w->base + (off ^ bytes));
			if (b && w->p->nodes[b].size == bytes)
				w->adjacent = true;
		}
	}
	w->prev_end = addr + bytes;
	mark(w, addr, bytes);
}

/* Top free: the run of free blocks that ends at the break. */
static uint64_t
top_free(const struct pol *p)
{
	uint64_t end = p->brk, n = 0;
	uint32_t t;

	while ((t = pol_below(p, end)) && p->nodes[t].addr + p->nodes[t].size == end) {
		n += p->nodes[t].size;
		end = p->nodes[t].addr;
	}
	return n;
}

static bool
verify(const struct pol *p, const struct live *l, size_t n, bool buddy, const char *name,
       unsigned seed, size_t step)
{
	uint64_t extent = p->brk - p->base;
	struct walk w = { .base = p->base, .brk = p->brk, .p = p, .buddy = buddy,
			  .prev_end = UINT64_MAX };
	bool ok = true;

	w.cover = calloc(extent / 16 + 1, 1);
	for (size_t i = 0; i < n; i++) {
		mark(&w, l[i].addr, l[i].bytes);
		if (buddy && ((l[i].bytes & (l[i].bytes - 1)) || (l[i].addr - p->base) % l[i].bytes))
			w.misaligned = true;
	}
	pol_each_free(p, free_block, &w);
	for (uint64_t g = 0; g < extent / 16 && ok; g++)
		if (w.cover[g] != 1) {
			CHECK(false, "%s seed %u step %zu: the granule at 0x%llx is covered %d times",
			      name, seed, step, (unsigned long long)(p->base + g * 16), w.cover[g]);
			ok = false;
		}
	free(w.cover);
	if (w.outside || w.adjacent || w.misaligned) {
		CHECK(!w.outside, "%s seed %u step %zu: a block outside the heap", name, seed, step);
		CHECK(!w.adjacent, "%s seed %u step %zu: two free blocks left uncoalesced", name,
		      seed, step);
		CHECK(!w.misaligned, "%s seed %u step %zu: a buddy block misaligned", name, seed,
		      step);
		ok = false;
	}
	return ok;
}

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
random_sequence(int policy, unsigned seed)
{
	const struct pol_ops *ops = pol_ops_of(policy);
	bool buddy = ops == &pol_buddy;
	struct live l[2048];
	size_t n = 0, steps = 3000;
	uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
	struct pol p;
	bool ok = true;

	pol_init(&p, ops, BASE);
	for (size_t step = 0; step < steps && ok; step++) {
		if (n < 2048 && (n == 0 || rnd(&s) % 100 < 55)) {
			uint64_t r = rnd(&s) % 100, bytes;
			if (r < 70)
				bytes = 32 + rnd(&s) % 480;
			else if (r < 95)
				bytes = 512 + rnd(&s) % 8192;
			else
				bytes = 8192 + rnd(&s) % 100000;
			bytes = (bytes + 15) & ~(uint64_t)15;
			uint64_t block;
			uint64_t addr = pol_alloc(&p, bytes, &block);
			if (block < bytes || pol_block_at(&p, addr) != block) {
				CHECK(false, "%s seed %u step %zu: a block of %llu for %llu bytes",
				      ops->name, seed, step, (unsigned long long)block,
				      (unsigned long long)bytes);
				ok = false;
			}
			l[n++] = (struct live){ addr, block };
		} else {
			size_t k = rnd(&s) % n;
			uint64_t size = pol_release(&p, l[k].addr);
			if (size != l[k].bytes) {
				CHECK(false, "%s seed %u step %zu: freed %llu bytes of a block of %llu",
				      ops->name, seed, step, (unsigned long long)size,
				      (unsigned long long)l[k].bytes);
				ok = false;
			}
			l[k] = l[--n];
			/* after a free the top is trimmed to top_pad (within a unit) */
			if (top_free(&p) >= POL_TRIM_THRESHOLD && top_free(&p) >= POL_TOP_PAD + ops->unit) {
				CHECK(false, "%s seed %u step %zu: %llu free bytes at the top not trimmed",
				      ops->name, seed, step, (unsigned long long)top_free(&p));
				ok = false;
			}
		}
		if (step % 7 == 0 || step + 1 == steps)
			ok = ok && verify(&p, l, n, buddy, ops->name, seed, step);
	}
	/* everything freed: the heap shrinks back to the pad */
	while (n && ok)
		pol_release(&p, l[--n].addr);
	if (ok)
		ok = verify(&p, l, 0, buddy, ops->name, seed, steps);
	CHECK(ok && p.brk - p.base <= POL_TOP_PAD + ops->unit,
	      "%s seed %u: %llu bytes of heap left once everything is freed", ops->name, seed,
	      (unsigned long long)(p.brk - p.base));
	pol_destroy(&p);
}

/* ---- by hand ----
 * On a fresh heap: x1 (128), g1 (32), x2 (64), g2 (32), x3 (256), g3 (32)
 * one after the other from BASE; the break grows once, by 128 KiB + the
 * 544 bytes, to a page: BASE + 0x21000. Free x1, x2, x3: holes of 128 at
 * BASE, 64 at BASE + 0xa0, 256 at BASE + 0x100, and the rest of the heap
 * above g3 (from BASE + 0x220). Then a request of 48 bytes goes:
 *   first fit      the lowest hole that fits: x1's, BASE
 *   next fit       on from where the last allocation ended: BASE + 0x220
 *   best fit       the smallest that fits: x2's 64, BASE + 0xa0
 *   worst fit      the largest: the free space above g3, BASE + 0x220
 *   segregated     class 32..63 is empty; the first block of the next
 *                  class up (64..127): x2's, BASE + 0xa0
 * and freeing g1 coalesces x1's, g1's and x2's space (what is left of
 * them) into one block. */
static void
by_hand(int policy, uint64_t want)
{
	const struct pol_ops *ops = pol_ops_of(policy);
	uint64_t a[6], sizes[6] = { 128, 32, 64, 32, 256, 32 }, b;
	struct pol p;

	pol_init(&p, ops, BASE);
	for (int i = 0; i < 6; i++)
		a[i] = pol_alloc(&p, sizes[i], &b);
	CHECK(a[0] == BASE && a[5] == BASE + 0x200 && p.brk == BASE + 0x21000,
	      "%s: six blocks one after the other, the break one grow up (0x%llx)", ops->name,
	      (unsigned long long)(p.brk - BASE));
	pol_release(&p, a[0]);
	pol_release(&p, a[2]);
	pol_release(&p, a[4]);
	uint64_t got = pol_alloc(&p, 48, &b);
	CHECK(got == want, "%s: 48 bytes at BASE + 0x%llx (want BASE + 0x%llx)", ops->name,
	      (unsigned long long)(got - BASE), (unsigned long long)(want - BASE));
	pol_release(&p, got);
	pol_release(&p, a[1]);
	uint32_t n = pol_at(&p, BASE);
	CHECK(n && p.nodes[n].size == 128 + 32 + 64,
	      "%s: freeing g1 merges x1, g1 and x2 into one block of %llu", ops->name,
	      n ? (unsigned long long)p.nodes[n].size : 0ULL);
	pol_destroy(&p);
}

/* The buddy on an empty heap: 32 bytes take the first 32 of a 256 KiB
 * block, split in halves down to 32: free blocks of 32, 64, ... 128 KiB
 * remain at BASE + 32, + 64, ... + 128 KiB. The next 32 bytes take the
 * buddy, BASE + 32; 48 bytes take 64 (BASE + 64). Freeing all three
 * merges every buddy back into the one 256 KiB block. */
static void
buddy_by_hand(void)
{
	struct pol p;
	uint64_t b1, b2, b3, a1, a2, a3;

	pol_init(&p, &pol_buddy, BASE);
	a1 = pol_alloc(&p, 32, &b1);
	CHECK(a1 == BASE && b1 == 32 && p.brk == BASE + (256 << 10),
	      "buddy: 32 bytes at the start of one 256 KiB block");
	bool halves = true;
	for (uint64_t s = 32; s < (256 << 10); s *= 2) {
		uint32_t n = pol_at(&p, BASE + s);
		halves = halves && n && p.nodes[n].size == s;
	}
	CHECK(halves, "buddy: the split leaves free halves of 32, 64, ... 128 KiB at BASE + size");
	a2 = pol_alloc(&p, 32, &b2);
	CHECK(a2 == BASE + 32, "buddy: the next 32 bytes are the first one's buddy");
	a3 = pol_alloc(&p, 48, &b3);
	CHECK(a3 == BASE + 64 && b3 == 64, "buddy: 48 bytes take the 64-byte block (a power of two)");
	pol_release(&p, a1);
	uint32_t n = pol_at(&p, BASE);
	CHECK(n && p.nodes[n].size == 32, "buddy: a block whose buddy is in use stays alone");
	pol_release(&p, a2);
	pol_release(&p, a3);
	n = pol_at(&p, BASE);
	CHECK(n && p.nodes[n].size == (256 << 10) && pol_at(&p, BASE + 32) == 0,
	      "buddy: freeing the rest merges the buddies back into one 256 KiB block");
	pol_destroy(&p);
}

/* Next fit's roving pointer wraps: once the space above it is used up,
 * the search starts again from the heap's start. */
static void
next_fit_wraps(void)
{
	struct pol p;
	uint64_t b, low, x, end;

	pol_init(&p, &pol_next_fit, BASE);
	low = pol_alloc(&p, 64, &b);
	x = pol_alloc(&p, 0x20000 - 64 + 0x1000 - 64, &b); /* what is left of the heap but 64 */
	end = x + b;
	pol_release(&p, low);
	CHECK(p.rover == end, "next fit: the rover sits after the last block");
	uint64_t got = pol_alloc(&p, 64, &b);
	CHECK(got == end, "next fit: 64 bytes from the rover on (0x%llx)",
	      (unsigned long long)(got - BASE));
	got = pol_alloc(&p, 64, &b);
	CHECK(got == BASE, "next fit: nothing left above the rover: wraps to the start");
	pol_destroy(&p);
}

int
main(void)
{
	for (int policy = 0; policy < POL_COUNT; policy++)
		for (unsigned seed = 1; seed <= 4; seed++)
			random_sequence(policy, seed);
	by_hand(POL_FIRST_FIT, BASE);
	by_hand(POL_NEXT_FIT, BASE + 0x220);
	by_hand(POL_BEST_FIT, BASE + 0xa0);
	by_hand(POL_WORST_FIT, BASE + 0x220);
	by_hand(POL_SEGREGATED, BASE + 0xa0);
	buddy_by_hand();
	next_fit_wraps();
	return harness_exit();
}
