/* SPDX-License-Identifier: MIT */
/*
 * test-symworker - analyzer/symworker.c: addresses looked up on the
 * worker's thread come back named; symworker_defer lets go of what libdw
 * opened (the object's file descriptor is closed), and the addresses added
 * after it are still named by symworker_finish, which opens the object
 * again; and a worker deferred in the middle of a long queue leaves what it
 * has not looked up to symworker_finish, each address named once. The
 * addresses are two functions of this program (built with -g).
 * The worker runs at idle priority: on a busy machine it may wait long for
 * a CPU, so the test waits for it, up to 50 s.
 *
 * Usage: test-symworker
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
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

static char exe[PATH_MAX];

/* The "return address" whose call instruction is fn's first byte. */
static uint64_t
offset_of(void *fn)
{
	Dl_info di;

	if (!dladdr(fn, &di) || !di.dli_fbase)
		return 0;
	return (uint64_t)((uintptr_t)fn - (uintptr_t)di.dli_fbase) + 1;
}

/* Whether this process has a file descriptor open on its own executable
 * (the symbolizer's, while it holds the object). */
static bool
exe_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	bool found = false;

	if (!d)
		return false;
	while (!found && (de = readdir(d)) != NULL) {
		char path[320], target[PATH_MAX];
		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			found = strcmp(target, exe) == 0;
		}
	}
	closedir(d);
	return found;
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

int
main(void)
{
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const struct sym_result *r;

	if (len <= 0) {
		printf("FAIL: readlink /proc/self/exe\n");
		return 1;
	}
	exe[len] = '\0';
	CHECK(tsw_alpha(1) + tsw_beta(1) == 11, "the functions run");
	CHECK(!exe_open(), "nothing holds the executable before the worker starts");

	struct symworker *w = symworker_start();
	CHECK(w != NULL, "symworker_start");
	if (!w)
		return 1;
	symworker_add(w, 1, offset_of((void *)tsw_alpha), exe, NULL);
	/* the thread looks it up, opening the executable */
	struct timespec tick = { 0, 50 * 1000000L };
	for (int i = 0; i < 1000 && !exe_open(); i++)
		nanosleep(&tick, NULL);
	CHECK(exe_open(), "the worker opened the executable within 50 s");

	symworker_defer(w);
	CHECK(!exe_open(), "deferred: the worker let go of the executable");

	symworker_add(w, 2, offset_of((void *)tsw_beta), exe, NULL);
	CHECK(!exe_open(), "deferred: an address added is not looked up yet");
	size_t n = symworker_finish(w, &r);
	CHECK(n == 2, "%zu results, want 2", n);
	CHECK(strcmp(name_at(r, n, 1), "tsw_alpha") == 0, "the first is %s", name_at(r, n, 1));
	CHECK(strcmp(name_at(r, n, 2), "tsw_beta") == 0, "the second is %s (opened again)",
	      name_at(r, n, 2));
	symworker_free(w);
	CHECK(!exe_open(), "freed: nothing holds the executable");

	/* a long queue, deferred as the thread works through it */
	enum { MANY = 3000 };
	w = symworker_start();
	CHECK(w != NULL, "symworker_start");
	if (!w)
		return 1;
	for (int i = 0; i < MANY; i++)
		symworker_add(w, 100 + i, offset_of(i % 2 ? (void *)tsw_beta : (void *)tsw_alpha),
			      exe, NULL);
	for (int i = 0; i < 1000 && !exe_open(); i++)
		nanosleep(&tick, NULL);
	symworker_defer(w);
	n = symworker_finish(w, &r);
	CHECK(n == MANY, "a long queue deferred: %zu results, want %d", n, MANY);
	size_t wrong = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t k = r[i].image_id - 100;
		const char *want = k % 2 ? "tsw_beta" : "tsw_alpha";
		const char *got = r[i].n > 0 && r[i].f[r[i].n - 1].function ? r[i].f[r[i].n - 1].function
									   : "(none)";
		wrong += k < 0 || k >= MANY || strcmp(got, want) != 0 ||
			 (i > 0 && r[i].image_id == r[i - 1].image_id);
	}
	CHECK(wrong == 0, "a long queue deferred: %zu results wrong, missing or twice", wrong);
	symworker_free(w);
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
