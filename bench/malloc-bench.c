/* SPDX-License-Identifier: MIT */
/*
 * malloc-bench - malloc/free throughput of whatever malloc the process has
 * (glibc natively, heapprof under LD_PRELOAD), single- and multi-threaded.
 *
 * Usage: malloc-bench THREADS OPS [CROSS [WINDOW]]
 *   Each thread keeps a window of WINDOW (default 1024) live chunks of
 *   16..512 bytes (one in 64 of 4..64 KiB) and replaces one at random per
 *   step: a small window is served by the tcache, a large one by the
 *   arenas. With CROSS=1, half of each thread's frees are of chunks
 *   another thread allocated (handed over through a shared exchange
 *   array).
 * Prints "ops_per_sec N" (one malloc+free pair = one op).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WINDOW 65536
#define XCHG 4096

static long ops_per_thread;
static int cross;
static unsigned window = 1024;
static void *_Atomic exchange[XCHG];

static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t
pick_size(uint64_t *s)
{
	uint64_t r = rnd(s);

	if ((r & 63) == 0)
		return 4096 + (r >> 8) % 61440;
	return 16 + (r >> 8) % 497;
}

static void *
worker(void *arg)
{
	uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;
	void **win = calloc(window, sizeof(void *));

	for (long i = 0; i < ops_per_thread; i++) {
		unsigned k = rnd(&seed) % window;
		void *old = win[k];

		if (cross && old && (rnd(&seed) & 1)) {
			/* hand it to another thread, take whatever was there */
			old = __atomic_exchange_n(&exchange[rnd(&seed) % XCHG], old,
						  __ATOMIC_ACQ_REL);
		}
		free(old);
		win[k] = malloc(pick_size(&seed));
		*(volatile char *)win[k] = 1;
	}
	for (unsigned k = 0; k < window; k++)
		free(win[k]);
	free(win);
	return NULL;
}

int
main(int argc, char **argv)
{
	int nthreads = argc > 1 ? atoi(argv[1]) : 1;
	long ops = argc > 2 ? atol(argv[2]) : 10000000;
	struct timespec t0, t1;
	pthread_t th[64];

	cross = argc > 3 ? atoi(argv[3]) : 0;
	window = argc > 4 ? (unsigned)atoi(argv[4]) : 1024;
	if (nthreads < 1 || nthreads > 64 || ops < 1 || window < 1 || window > MAX_WINDOW) {
		fprintf(stderr, "usage: malloc-bench THREADS OPS [CROSS [WINDOW]]\n");
		return 2;
	}
	ops_per_thread = ops / nthreads;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (nthreads == 1) {
		worker((void *)1);
	} else {
		for (int i = 0; i < nthreads; i++)
			pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));
		for (int i = 0; i < nthreads; i++)
			pthread_join(th[i], NULL);
	}
	for (unsigned i = 0; i < XCHG; i++)
		free(exchange[i]);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("ops_per_sec %.0f\n", (double)ops_per_thread * nthreads / s);
	return 0;
}
