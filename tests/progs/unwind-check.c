/* SPDX-License-Identifier: MIT */
/*
 * unwind-check SEED ROUNDS LIB_A LIB_B - allocations from stacks of many
 * shapes, for the capture-equality test (tests/record/unwind.sh, which runs
 * it with HEAPPROF_UNWIND_CHECK: every capture is compared with
 * libunwind's).
 *
 * Each round walks a random number of frames (0 to 90, past the 64 a stack
 * keeps) through functions of different shapes - CFA from rsp, from rbp
 * (alloca, a variable-length array, frame pointers kept, a realigned
 * stack), large frames, arguments on the stack, twin functions that are
 * the same code at different addresses, recursion - and then allocates
 * (malloc, calloc, realloc, posix_memalign, aligned_alloc), frees, raises
 * a signal whose handler allocates (on the thread's stack, or on an
 * alternate stack), or longjmps back out of the whole walk. It does so in
 * the main thread and in three threads: one with a default stack, one with
 * a small stack, one on a stack the program mapped itself.
 *
 * Then the dlclose case: a thread loads LIB_A (unwind-dl.S) and allocates
 * through it, called from a frame-pointer frame; it unloads it and exits;
 * another thread loads LIB_B, which the loader puts where LIB_A was, so
 * that one return address has a different rule than before. Prints "dl:
 * same address" or "dl: moved" (the test then cannot show the flush), then
 * "ok".
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "rng.h"

#define POOL 64

struct walk {
	uint64_t rng;
	int left;           /* frames still to walk */
	bool small_stack;   /* no large frames */
	bool in_handler;    /* no signals, no longjmp */
	void *(*dl_alloc)(size_t); /* allocate through this (the dlclose case) */
	jmp_buf *out;       /* longjmp target, or NULL */
	void **pool;        /* live blocks */
	unsigned pool_n;    /* how many */
};

static volatile long sink;
static __thread uint64_t handler_rng;

static long step(struct walk *w);

static unsigned
pick(struct walk *w, unsigned n)
{
	return (unsigned)(rng_next(&w->rng) % n);
}

static void
put(struct walk *w, void *p)
{
	unsigned i = pick(w, w->pool_n);

	free(w->pool[i]);
	w->pool[i] = p;
}

static void
handler(int sig)
{
	void *pool[8] = { 0 };
	struct walk w = {
		.rng = handler_rng ^ (uint64_t)sig,
		.in_handler = true,
		.small_stack = true,
		.pool = pool,
		.pool_n = 8,
	};

	w.rng |= 1;
	handler_rng = rng_next(&w.rng);
	w.left = (int)pick(&w, 12);
	sink += step(&w);
	for (int i = 0; i < 8; i++)
		free(pool[i]);
}

/* Calls f through a frame whose CFA is rbp-based (frame pointer kept): a
 * stale rule for f's return address would skip this frame. */
static __attribute__((noinline, optimize("no-omit-frame-pointer"))) void *
via_frame_pointer(void *(*f)(size_t), size_t n)
{
	void *p = f(n);

	__asm__ volatile("" ::"r"(p) : "memory");
	return p;
}

static __attribute__((noinline)) long
leaf(struct walk *w)
{
	void *p = NULL;
	/* signals and longjmp (6 to 8) one time in 20 each */
	unsigned op = pick(w, 20);

	if (op >= 9 || (op >= 6 && w->in_handler))
		op = op % 3;

	if (w->dl_alloc) {
		put(w, via_frame_pointer(w->dl_alloc, 16 + pick(w, 500)));
		return 1;
	}
	switch (op) {
	case 0:
	case 1:
		p = malloc(1 + pick(w, 3000));
		break;
	case 2:
		p = calloc(1 + pick(w, 20), 1 + pick(w, 100));
		break;
	case 3: {
		unsigned i = pick(w, w->pool_n);

		p = realloc(w->pool[i], 1 + pick(w, 5000));
		if (p)
			w->pool[i] = NULL;
		break;
	}
	case 4:
		if (posix_memalign(&p, 64u << pick(w, 4), 1 + pick(w, 1000)) != 0)
			p = NULL;
		break;
	case 5:
		p = aligned_alloc(256, 256 * (1 + pick(w, 4)));
		break;
	case 6:
		raise(SIGUSR1);
		return 2;
	case 7:
		raise(SIGUSR2);
		return 3;
	case 8:
		if (w->out)
			longjmp(*w->out, 1);
		p = malloc(8);
		break;
	}
	if (p)
		put(w, p);
	return 1;
}

/* The frame shapes. Each returns step()'s result plus something, so that
 * no call is a tail call. */
static __attribute__((noinline)) long
k_plain(struct walk *w)
{
	return step(w) + 1;
}

static __attribute__((noinline)) long
k_twin_a(struct walk *w)
{
	return step(w) + 2;
}

static __attribute__((noinline)) long
k_twin_b(struct walk *w)
{
	return step(w) + 2;
}

static __attribute__((noinline)) long
k_alloca(struct walk *w)
{
	volatile char *p = alloca(1 + pick(w, 300));

	p[0] = 1;
	return step(w) + p[0];
}

static __attribute__((noinline)) long
k_vla(struct walk *w)
{
	volatile char a[1 + pick(w, 200)];

	a[0] = 2;
	return step(w) + a[0];
}

static __attribute__((noinline, optimize("no-omit-frame-pointer"))) long
k_frame_pointer(struct walk *w)
{
	return step(w) + 3;
}

static __attribute__((noinline)) long
k_aligned(struct walk *w)
{
	volatile char a[64] __attribute__((aligned(64)));

	a[0] = 4;
	return step(w) + a[0];
}

static __attribute__((noinline)) long
k_big(struct walk *w)
{
	volatile char a[6000];

	a[0] = 5;
	a[5999] = 6;
	return step(w) + a[0] + a[5999];
}

static __attribute__((noinline)) long
many_args(struct walk *w, long a, long b, long c, long d, long e, long f, long g, long h, long i)
{
	return step(w) + a + b + c + d + e + f + g + h + i;
}

static __attribute__((noinline)) long
k_args(struct walk *w)
{
	return many_args(w, 1, 2, 3, 4, 5, 6, 7, 8, 9) + 1;
}

static __attribute__((noinline)) long
k_recurse(struct walk *w)
{
	if (w->left > 0 && pick(w, 2)) {
		w->left--;
		return k_recurse(w) + 1;
	}
	return step(w) + 1;
}

static long (*const kinds[])(struct walk *) = {
	k_plain, k_twin_a, k_twin_b, k_alloca, k_vla, k_frame_pointer, k_aligned,
	k_big, k_args, k_recurse,
};

static long
step(struct walk *w)
{
	unsigned k;

	if (w->left <= 0)
		return leaf(w);
	w->left--;
	do
		k = pick(w, sizeof(kinds) / sizeof(kinds[0]));
	while (w->small_stack && kinds[k] == k_big);
	return kinds[k](w);
}

struct job {
	uint64_t seed;
	long rounds;
	bool small_stack;
	void *(*dl_alloc)(size_t);
};

static void
run(const struct job *j)
{
	void *pool[POOL] = { 0 };
	jmp_buf out;
	struct walk w = {
		.rng = j->seed | 1, .small_stack = j->small_stack, .pool = pool, .pool_n = POOL,
	};
	stack_t alt;

	alt.ss_sp = malloc(SIGSTKSZ * 4);
	alt.ss_size = SIGSTKSZ * 4;
	alt.ss_flags = 0;
	if (alt.ss_sp == NULL || sigaltstack(&alt, NULL) != 0) {
		perror("sigaltstack");
		exit(1);
	}
	handler_rng = mix(j->seed);
	w.dl_alloc = j->dl_alloc;
	for (volatile long r = 0; r < j->rounds; r++) {
		w.left = (int)pick(&w, 91);
		if (setjmp(out) == 0) {
			w.out = j->dl_alloc ? NULL : &out;
			sink += step(&w);
		}
		w.out = NULL;
	}
	for (int i = 0; i < POOL; i++)
		free(pool[i]);
	alt.ss_flags = SS_DISABLE;
	sigaltstack(&alt, NULL);
	free(alt.ss_sp);
}

static void *
thread_main(void *arg)
{
	run(arg);
	return NULL;
}

static void
in_thread(struct job *j, size_t stack_size, void *stack)
{
	pthread_attr_t attr;
	pthread_t t;

	pthread_attr_init(&attr);
	if (stack)
		pthread_attr_setstack(&attr, stack, stack_size);
	else if (stack_size)
		pthread_attr_setstacksize(&attr, stack_size);
	if (pthread_create(&t, &attr, thread_main, j) != 0 || pthread_join(t, NULL) != 0) {
		fprintf(stderr, "unwind-check: thread failed\n");
		exit(1);
	}
	pthread_attr_destroy(&attr);
}

struct dl_job {
	struct job job;
	const char *lib;
	void *fn;
};

static void *
dl_thread(void *arg)
{
	struct dl_job *d = arg;
	void *h = dlopen(d->lib, RTLD_NOW);

	if (h == NULL || (d->fn = dlsym(h, "unwind_dl_alloc")) == NULL) {
		fprintf(stderr, "unwind-check: %s: %s\n", d->lib, dlerror());
		exit(1);
	}
	d->job.dl_alloc = (void *(*)(size_t))d->fn;
	run(&d->job);
	dlclose(h);
	return NULL;
}

static void *
dl_round(struct dl_job *d)
{
	pthread_t t;

	if (pthread_create(&t, NULL, dl_thread, d) != 0 || pthread_join(t, NULL) != 0) {
		fprintf(stderr, "unwind-check: thread failed\n");
		exit(1);
	}
	return d->fn;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	uint64_t seed;
	long rounds;
	size_t user_size = 1 << 20;
	void *user_stack;

	if (argc != 5) {
		fprintf(stderr, "usage: unwind-check SEED ROUNDS LIB_A LIB_B\n");
		return 2;
	}
	seed = strtoull(argv[1], NULL, 0);
	rounds = strtol(argv[2], NULL, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_flags = SA_ONSTACK;
	sigaction(SIGUSR2, &sa, NULL);

	struct job main_job = { mix(seed), rounds, false, NULL };
	run(&main_job);

	struct job plain = { mix(seed + 1), rounds, false, NULL };
	in_thread(&plain, 0, NULL);
	struct job small = { mix(seed + 2), rounds, true, NULL };
	in_thread(&small, 256 << 10, NULL);
	user_stack = mmap(NULL, user_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			  -1, 0);
	if (user_stack == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	struct job user = { mix(seed + 3), rounds, false, NULL };
	in_thread(&user, user_size, user_stack);
	munmap(user_stack, user_size);

	struct dl_job a = { { mix(seed + 4), rounds / 4 + 1, false, NULL }, argv[3], NULL };
	struct dl_job b = { { mix(seed + 5), rounds / 4 + 1, false, NULL }, argv[4], NULL };
	void *fa = dl_round(&a), *fb = dl_round(&b);

	printf("dl: %s\n", fa == fb ? "same address" : "moved");
	puts("ok");
	return 0;
}
