/* SPDX-License-Identifier: MIT */
/*
 * test-symworker - analyzer/symworker.c: addresses looked up on the
 * worker's thread come back named; a worker asked to let go of libdw's
 * memory when idle does so once no address has come for half a second,
 * and opens the objects again for the next one, with the same answers;
 * not when the next address comes sooner; and a worker not asked keeps
 * them open. The addresses are two functions of this program (built with
 * -g). The worker runs at idle priority: on a busy machine it may wait
 * long for a CPU, so the test waits for what it checks, up to 50 s.
 *
 * Usage: test-symworker
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "symworker.h"

static int failures;

#define CHECK(cond, ...)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			failures++;                                                        \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);                        \
			printf(__VA_ARGS__);                                               \
			printf("\n");                                                      \
		}                                                                          \
	} while (0)

__attribute__((noinline)) int tsw_alpha(int x);
__attribute__((noinline)) int tsw_beta(int x);

__attribute__((noinline)) int
tsw_alpha(int x)
{
	__asm__ volatile("" ::: "memory");
	return x * 3 + 1;
}

__attribute__((noinline)) int
tsw_beta(int x)
{
	__asm__ volatile("" ::: "memory");
	return x * 5 + 2;
}

static char exe[4096];

/* The "return address" whose call instruction is fn's first byte. */
static uint64_t
offset_of(void *fn)
{
	Dl_info di;

	if (!dladdr(fn, &di) || !di.dli_fbase)
		return 0;
	return (uint64_t)((uintptr_t)fn - (uintptr_t)di.dli_fbase) + 1;
}

static void
nap(long ms)
{
	struct timespec t = { ms / 1000, ms % 1000 * 1000000L };
	nanosleep(&t, NULL);
}

static const char *
name_at(const struct sym_result *r, size_t n, int64_t image_id)
{
	for (size_t i = 0; i < n; i++)
		if (r[i].image_id == image_id)
			return r[i].n > 0 && r[i].f[r[i].n - 1].function ? r[i].f[r[i].n - 1].function
									 : "(none)";
	return "(missing)";
}

/* alpha, then beta: both named. With `wait_release`, beta comes once the
 * worker has let go (it must within 50 s); else after gap_ms. The
 * worker must have let go `releases` times in all. */
static void
run(bool release, bool wait_release, long gap_ms, unsigned releases)
{
	struct symworker *w = symworker_start();
	const struct sym_result *r;

	CHECK(w != NULL, "symworker_start");
	if (!w)
		return;
	if (release)
		symworker_release_when_idle(w);
	symworker_add(w, 1, offset_of((void *)tsw_alpha), exe, NULL);
	if (wait_release) {
		for (int i = 0; i < 500 && symworker_releases(w) == 0; i++)
			nap(100);
		CHECK(symworker_releases(w) == 1, "release: not let go of within 50 s");
	} else {
		nap(gap_ms);
	}
	symworker_add(w, 2, offset_of((void *)tsw_beta), exe, NULL);
	size_t n = symworker_finish(w, &r);
	CHECK(n == 2, "release %d gap %ld: %zu results, want 2", release, gap_ms, n);
	CHECK(strcmp(name_at(r, n, 1), "tsw_alpha") == 0, "release %d gap %ld: first is %s",
	      release, gap_ms, name_at(r, n, 1));
	CHECK(strcmp(name_at(r, n, 2), "tsw_beta") == 0, "release %d gap %ld: second is %s",
	      release, gap_ms, name_at(r, n, 2));
	CHECK(symworker_releases(w) == releases, "release %d gap %ld: let go %u times, want %u",
	      release, gap_ms, symworker_releases(w), releases);
	symworker_free(w);
}

int
main(void)
{
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (len <= 0) {
		printf("FAIL: readlink /proc/self/exe\n");
		return 1;
	}
	exe[len] = '\0';
	CHECK(tsw_alpha(1) + tsw_beta(1) == 11, "the functions run");
	run(true, true, 0, 1);      /* idle half a second: let go, opened again */
	run(true, false, 100, 0);   /* the next address came sooner */
	run(false, false, 1200, 0); /* not asked: kept */
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
