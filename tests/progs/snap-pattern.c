/* SPDX-License-Identifier: MIT */
/*
 * snap-pattern - heap patterns for the snapshot tests
 * (tests/report/snapshots.py) and the long-run benchmark.
 *
 *   fork-pin        the parent pins holes and forks; the child frees chunks
 *                   it inherited, makes holes of its own and exits 3
 *   settled-worst   ~16 MiB of holes below a pin (the worst), then 70000
 *                   chunks made and freed in them: the worst is written
 *                   long before the end
 *   creeping-worst  the same with one block kept; then that block freed (a
 *                   new worst, 40 KiB above the first) and the same churn:
 *                   too small a rise to be rewritten
 *   steady SECONDS [PAIRS_PER_SECOND]
 *                   a steady heap of 20000 chunks (1 MiB-ish), one replaced
 *                   at random per pair, for SECONDS (paced to the rate if
 *                   given, else as fast as it goes); prints the pairs done
 *   wait FILE       a steady heap; exits when FILE exists (at most 30 s)
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rng.h"

static void *blocks[70000];

__attribute__((noinline)) static void
fill(int n, size_t bytes)
{
	for (int i = 0; i < n; i++) {
		blocks[i] = malloc(bytes);
		if (!blocks[i])
			exit(99);
		memset(blocks[i], 1, bytes);
	}
}

__attribute__((noinline)) static void
release(int n)
{
	for (int i = 0; i < n; i++)
		free(blocks[i]);
}

__attribute__((noinline)) static char *
keep_config(void)
{
	char *s = malloc(100);
	if (!s)
		exit(99);
	strcpy(s, "threads=4");
	return s;
}

/* Made and freed in the holes: touches every one of n addresses. */
__attribute__((noinline)) static void
churn(int n)
{
	fill(n, 200);
	release(n);
}

__attribute__((noinline)) static void *
child_table(size_t bytes)
{
	return malloc(bytes);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A service's heap: n chunks of mixed sizes, one replaced per pair. */
__attribute__((noinline)) static void *
service_alloc(uint64_t *r)
{
	static const size_t sizes[] = { 24, 40, 64, 100, 200, 512, 1000, 3000 };

	return malloc(sizes[rng_next(r) % 8]);
}

static unsigned long long
steady(double seconds, double rate, const char *stop_file)
{
	enum { LIVE = 20000 };
	static void *live[LIVE];
	uint64_t r = 42;
	unsigned long long pairs = 0;
	double t0 = now(), end = t0 + seconds;

	for (int i = 0; i < LIVE; i++)
		live[i] = service_alloc(&r);
	for (;;) {
		for (int k = 0; k < 1000; k++) {
			unsigned i = (unsigned)(rng_next(&r) % LIVE);
			free(live[i]);
			live[i] = service_alloc(&r);
			/* a short-lived request buffer, as a server makes */
			void *tmp = service_alloc(&r);
			free(tmp);
		}
		pairs += 2000;
		double t = now();
		if (t >= end || (stop_file && access(stop_file, F_OK) == 0))
			break;
		if (rate > 0) {
			double due = t0 + (double)pairs / rate;
			if (due > t) {
				struct timespec ts = { 0, (long)((due - t) * 1e9) };
				nanosleep(&ts, NULL);
			}
		}
	}
	for (int i = 0; i < LIVE; i++)
		free(live[i]);
	return pairs;
}

int
main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	char *pin;

	if (strcmp(mode, "fork-pin") == 0) {
		void *table[200];
		for (int i = 0; i < 200; i++)
			table[i] = child_table(1024);
		fill(500, 40 * 1024);
		pin = keep_config();
		release(250);
		fflush(stdout);
		pid_t pid = fork();
		if (pid < 0)
			return 99;
		if (pid == 0) {
			/* frees what it inherited: holes the child made */
			for (int i = 0; i < 200; i += 2)
				free(table[i]);
			for (int i = 250; i < 500; i += 2)
				free(blocks[i]);
			char *mine = keep_config();
			_exit(mine[0] == 't' ? 3 : 99);
		}
		int status;
		if (waitpid(pid, &status, 0) != pid)
			return 99;
		for (int i = 250; i < 500; i++)
			free(blocks[i]);
		return pin[0] == 't' && WIFEXITED(status) && WEXITSTATUS(status) == 3 ? 0 : 1;
	}
	if (strcmp(mode, "settled-worst") == 0 || strcmp(mode, "creeping-worst") == 0) {
		bool creep = strcmp(mode, "creeping-worst") == 0;
		fill(400, 40 * 1024);
		pin = keep_config();
		void *last = blocks[399];
		release(creep ? 399 : 400);
		churn(70000);
		if (creep) {
			/* the block next to the pin: 40 KiB more in the holes */
			free(last);
			churn(70000);
		}
		free(pin);
		return 0;
	}
	if (strcmp(mode, "steady") == 0 && argc > 2) {
		unsigned long long n = steady(atof(argv[2]), argc > 3 ? atof(argv[3]) : 0, NULL);
		printf("%llu\n", n);
		return 0;
	}
	if (strcmp(mode, "wait") == 0 && argc > 2) {
		steady(30, 100000, argv[2]);
		return 0;
	}
	fprintf(stderr, "usage: snap-pattern fork-pin|settled-worst|creeping-worst|"
			"steady SECONDS [RATE]|wait FILE\n");
	return 2;
}
