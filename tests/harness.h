/* SPDX-License-Identifier: MIT */
/*
 * harness.h - the tiny check harness of heapprof's C tests.
 *
 * CHECK(cond, fmt, ...) prints "FAIL - ... (file:line)" and counts the
 * failure, and prints "ok - ..." for a check that holds only when VERBOSE
 * is set (VERBOSE=1; unset, empty or 0 is quiet), the one switch of every
 * test harness here (C, shell and python). harness_exit() returns 1 if
 * anything failed. Output is line-buffered stdio to stdout. Exit 77 means
 * skip, 99 broken setup, as meson expects.
 */
#ifndef HP_HARNESS_H
#define HP_HARNESS_H

#ifdef NDEBUG
#error "tests must not be built with NDEBUG"
#endif

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int harness_failures;
static int harness_checks;

/* VERBOSE=1: print the checks that hold too. */
static inline bool
harness_verbose(void)
{
	const char *v = getenv("VERBOSE");

	return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		harness_checks++;                                              \
		if (cond) {                                                    \
			if (harness_verbose()) {                               \
				printf("ok - ");                               \
				printf(__VA_ARGS__);                           \
				printf("\n");                                  \
			}                                                      \
		} else {                                                       \
			harness_failures++;                                    \
			printf("FAIL - ");                                     \
			printf(__VA_ARGS__);                                   \
			printf(" (%s:%d)\n", __FILE__, __LINE__);              \
		}                                                              \
	} while (0)

static inline int
harness_exit(void)
{
	printf("%d checks, %d failed\n", harness_checks, harness_failures);
	fflush(stdout);
	return harness_failures ? 1 : 0;
}

#endif
