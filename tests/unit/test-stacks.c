/* SPDX-License-Identifier: MIT */
/*
 * test-stacks - the recorder's table of distinct call stacks
 * (preload/stacks.c): THREADS threads intern the same STACKS stacks at once,
 * each in its own order and three times over, while the table grows. Every
 * stack must get one id, the same in every thread and every time, no two
 * stacks the same one, and exactly one call must be told it inserted it,
 * with its frames. Stacks are made to be hard to tell apart: long shared
 * outer parts, pairs that differ in one frame, stacks that are a prefix of
 * another. Also: heapprof's own frames at the top are dropped, frames past
 * the maximum depth are not kept, a repeated capture is the thread's last
 * id, and a reset table numbers from 1 again.
 *
 * Usage: test-stacks [SEED]
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stacks.h"

#include "../harness.h"

#define STACKS 30000
#define THREADS 4
#define ROUNDS 3
#define MAX_DEPTH 48
#define SELF_LO 0x1000u /* "heapprof's own code" */
#define SELF_HI 0x2000u

struct stack {
	unsigned n;
	void *ip[MAX_DEPTH];
};

static struct stack *stacks;

struct run {
	unsigned seed;
	uint32_t id[STACKS];
	unsigned inserted[STACKS]; /* calls told is_new */
	unsigned bad_frames;       /* is_new with other frames than the stack's */
	unsigned zero;             /* calls that got no id */
};

static uint64_t
rng(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int
cmp_stack(const void *a, const void *b)
{
	const struct stack *x = *(struct stack *const *)a, *y = *(struct stack *const *)b;

	if (x->n != y->n)
		return x->n < y->n ? -1 : 1;
	return memcmp(x->ip, y->ip, x->n * sizeof(void *));
}

static void
make_stacks(uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
	void *outer[64][MAX_DEPTH];

	for (int k = 0; k < 64; k++)
		for (int d = 0; d < MAX_DEPTH; d++)
			outer[k][d] = (void *)(uintptr_t)(0x400000 + rng(&s) % (1u << 22));
	stacks = calloc(STACKS, sizeof(*stacks));
	for (unsigned i = 0; i < STACKS; i++) {
		struct stack *t = &stacks[i];
		unsigned kind = (unsigned)(rng(&s) % 4);
		if (i > 0 && kind == 0) {
			/* another one with one frame changed */
			*t = stacks[rng(&s) % i];
			t->ip[rng(&s) % t->n] = (void *)(uintptr_t)(0x400000 + rng(&s) % (1u << 22));
		} else if (i > 0 && kind == 1 && stacks[i - 1].n > 1) {
			/* a prefix of the one before (its innermost frames) */
			*t = stacks[i - 1];
			t->n = 1 + (unsigned)(rng(&s) % (t->n - 1));
		} else {
			/* a few inner frames of its own on a shared outer part */
			unsigned inner = 1 + (unsigned)(rng(&s) % 6);
			t->n = inner + (unsigned)(rng(&s) % (MAX_DEPTH - inner));
			for (unsigned d = 0; d < inner; d++)
				t->ip[d] = (void *)(uintptr_t)(0x400000 + rng(&s) % (1u << 22));
			const unsigned k = (unsigned)(rng(&s) % 64);
			for (unsigned d = inner; d < t->n; d++)
				t->ip[d] = outer[k][d - inner];
		}
	}
	/* the recipes above can make the same stack twice: keep one */
	struct stack **by = malloc(STACKS * sizeof(*by));
	for (unsigned i = 0; i < STACKS; i++)
		by[i] = &stacks[i];
	qsort(by, STACKS, sizeof(*by), cmp_stack);
	for (unsigned i = 1, kept = 0; i < STACKS; i++)
		if (cmp_stack(&by[kept], &by[i]) == 0) /* unique: below every random frame */
			by[i]->ip[0] = (void *)(uintptr_t)(0x3000 + (by[i] - stacks));
		else
			kept = i;
	free(by);
}

static void *
interner(void *arg)
{
	struct run *r = arg;
	uint64_t s = r->seed;
	unsigned *order = malloc(STACKS * sizeof(*order));

	for (unsigned i = 0; i < STACKS; i++)
		order[i] = i;
	for (int round = 0; round < ROUNDS; round++) {
		for (unsigned i = STACKS - 1; i > 0; i--) {
			unsigned j = (unsigned)(rng(&s) % (i + 1)), x = order[i];
			order[i] = order[j];
			order[j] = x;
		}
		for (unsigned k = 0; k < STACKS; k++) {
			unsigned i = order[k];
			const struct stack *t = &stacks[i];
			bool is_new = false;
			const uint64_t *ips = NULL;
			unsigned depth = 0;
			uint32_t id = hp_stacks_intern(t->ip, (int)t->n, false, &is_new, &ips, &depth);
			if (id == 0)
				r->zero++;
			else if (round == 0 && r->id[i] == 0)
				r->id[i] = id;
			else if (r->id[i] != id)
				r->id[i] = UINT32_MAX; /* changed */
			if (is_new) {
				r->inserted[i]++;
				if (depth != t->n || memcmp(ips, t->ip, depth * sizeof(*ips)) != 0)
					r->bad_frames++;
			}
		}
	}
	free(order);
	return NULL;
}

static uint32_t
intern(void *const *ip, int n, bool *is_new)
{
	const uint64_t *ips;
	unsigned depth;

	return hp_stacks_intern(ip, n, false, is_new, &ips, &depth);
}

int
main(int argc, char **argv)
{
	unsigned long seed = argc > 1 ? strtoul(argv[1], NULL, 10) : 1;
	pthread_t th[THREADS];
	struct run *runs = calloc(THREADS, sizeof(*runs));

	hp_stacks_init(MAX_DEPTH, SELF_LO, SELF_HI);
	make_stacks(seed);
	for (int t = 0; t < THREADS; t++) {
		runs[t].seed = (unsigned)(seed * 7919 + (unsigned long)t + 1);
		CHECK(pthread_create(&th[t], NULL, interner, &runs[t]) == 0, "thread %d starts", t);
	}
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);

	unsigned changed = 0, disagree = 0, not_once = 0, zero = 0, bad_frames = 0;
	uint8_t *seen = calloc(STACKS + 1, 1);
	unsigned dup = 0, out_of_range = 0;
	for (unsigned i = 0; i < STACKS; i++) {
		unsigned inserted = 0;
		for (int t = 0; t < THREADS; t++) {
			inserted += runs[t].inserted[i];
			if (runs[t].id[i] == UINT32_MAX)
				changed++;
			else if (runs[t].id[i] != runs[0].id[i])
				disagree++;
		}
		not_once += inserted != 1;
		uint32_t id = runs[0].id[i];
		if (id == 0 || id > STACKS)
			out_of_range++;
		else if (seen[id]++)
			dup++;
	}
	for (int t = 0; t < THREADS; t++) {
		zero += runs[t].zero;
		bad_frames += runs[t].bad_frames;
	}
	CHECK(zero == 0, "every call got an id (%u did not)", zero);
	CHECK(changed == 0, "a stack keeps its id in a thread (%u changed)", changed);
	CHECK(disagree == 0, "every thread got the same id for a stack (%u differ)", disagree);
	CHECK(not_once == 0, "exactly one call inserted each stack (%u not)", not_once);
	CHECK(bad_frames == 0, "the inserting call got the stack's frames (%u not)", bad_frames);
	CHECK(dup == 0 && out_of_range == 0,
	      "the %d stacks have the ids 1..%d, one each (%u shared, %u outside)", STACKS, STACKS,
	      dup, out_of_range);

	/* heapprof's own frames at the top are not part of the stack */
	bool is_new;
	void *with_self[MAX_DEPTH + 2] = { (void *)(uintptr_t)(SELF_LO + 8),
					   (void *)(uintptr_t)(SELF_HI - 8) };
	memcpy(with_self + 2, stacks[5].ip, stacks[5].n * sizeof(void *));
	uint32_t id = intern(with_self, (int)stacks[5].n + 2, &is_new);
	CHECK(id == runs[0].id[5] && !is_new, "heapprof's frames at the top are dropped (%u, %u)",
	      id, runs[0].id[5]);
	CHECK(intern(with_self, 2, &is_new) == 0, "a stack of heapprof's frames only has no id");
	/* ... but not below a frame of the program's */
	void *inside[3] = { (void *)(uintptr_t)0x500000, (void *)(uintptr_t)(SELF_LO + 8),
			    (void *)(uintptr_t)0x500010 };
	id = intern(inside, 3, &is_new);
	CHECK(id == STACKS + 1 && is_new, "heapprof's frames below the program's are kept (id %u)",
	      id);

	/* frames past the maximum depth are not kept */
	void *deep[MAX_DEPTH + 8], *deeper[MAX_DEPTH + 8];
	for (int d = 0; d < MAX_DEPTH + 8; d++)
		deep[d] = deeper[d] = (void *)(uintptr_t)(0x600000 + 16 * d);
	deeper[MAX_DEPTH + 3] = (void *)(uintptr_t)0x700000;
	uint32_t a = intern(deep, MAX_DEPTH + 8, &is_new);
	uint32_t b = intern(deeper, MAX_DEPTH + 8, &is_new);
	CHECK(a == b && !is_new, "stacks equal in their first %d frames are one (%u, %u)",
	      MAX_DEPTH, a, b);
	deeper[MAX_DEPTH - 1] = (void *)(uintptr_t)0x700010;
	CHECK(intern(deeper, MAX_DEPTH + 8, &is_new) != a && is_new,
	      "... and differ when frame %d does", MAX_DEPTH - 1);

	/* a repeated capture is this thread's last stack */
	const uint64_t *ips;
	unsigned depth;
	id = intern(stacks[7].ip, (int)stacks[7].n, &is_new);
	CHECK(hp_stacks_intern(stacks[9].ip, (int)stacks[9].n, true, &is_new, &ips, &depth) == id &&
		      !is_new,
	      "a repeated capture gets the thread's last id");
	CHECK(hp_stacks_intern_other(stacks[9].ip, (int)stacks[9].n, &is_new, &ips, &depth) ==
		      runs[0].id[9],
	      "a capture of another kind gets its own stack's id");
	CHECK(hp_stacks_intern(stacks[9].ip, (int)stacks[9].n, true, &is_new, &ips, &depth) == id,
	      "... and is not the last allocation's");

	/* after fork: a new table, numbered from 1 */
	hp_stacks_reset();
	CHECK(hp_stacks_intern(stacks[3].ip, (int)stacks[3].n, true, &is_new, &ips, &depth) == 1 &&
		      is_new,
	      "a reset table numbers from 1, and a repeat does not reach across it");
	CHECK(intern(stacks[3].ip, (int)stacks[3].n, &is_new) == 1 && !is_new,
	      "... and finds what it holds");
	free(seen);
	free(runs);
	free(stacks);
	return harness_exit();
}
