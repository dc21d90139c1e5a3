/* SPDX-License-Identifier: MIT */
/*
 * harness.h - the tiny check harness of heapprof's C tests.
 *
 * CHECK(cond, fmt, ...) prints "ok - ..." or "FAIL - ... (file:line)" and
 * counts failures; harness_exit() returns 1 if anything failed. Output is
 * line-buffered stdio to stdout. Exit 77 means skip, 99 broken setup, as
 * meson expects.
 */
#ifndef HP_HARNESS_H
#define HP_HARNESS_H

#ifdef NDEBUG
#error "tests must not be built with NDEBUG"
#endif

#include <stdio.h>
#include <stdlib.h>

static int harness_failures;
static int harness_checks;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		harness_checks++;                                              \
		if (cond) {                                                    \
			if (getenv("HARNESS_VERBOSE")) {                       \
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
