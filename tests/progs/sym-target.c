/* SPDX-License-Identifier: MIT */
/*
 * sym-target - input of test-symbolize: code whose addresses, functions,
 * files and lines are known. Each site calls sym_note() on a line of its
 * own, passing __LINE__; sym_note() keeps its return address, so the test
 * can symbolize return address - 1 (the call instruction, as a profiler's
 * unwinder sees it) and expect exactly that line. Sites: a plain C
 * function; an always_inline function inlined into another (two logical
 * frames); and, in sym-target-cxx.cc, a C++ function in a namespace and a
 * template member function inlined into it.
 *
 * Built with -g -O2 as a PIE executable, a non-PIE executable and (with
 * -DSYM_TARGET_LIB, no main) a shared library. sym_target_report() prints
 * one line per site, "site NAME ELF_ADDR LINE OUTER_LINE", ELF_ADDR being
 * the return address minus the load bias of the object containing it,
 * which is the address sym_lookup() takes (plus 1).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <inttypes.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>

#include "sym-target.h"

int sym_plain(int x);
int sym_outer(int x);
int sym_target_report(FILE *out);

static struct {
	void *ret;
	int line;
	int outer_line;
} sites[SITE_COUNT];

SYM_NOIPA int
sym_note(int site, int line, int outer_line)
{
	sites[site].ret = __builtin_extract_return_addr(__builtin_return_address(0));
	sites[site].line = line;
	sites[site].outer_line = outer_line;
	return site + 1;
}

SYM_NOIPA int
sym_plain(int x)
{
	int r;

	r = sym_note(SITE_PLAIN, __LINE__, 0);
	return r * x;
}

static inline __attribute__((always_inline)) int
sym_inner(int x, int outer_line)
{
	int r;

	r = sym_note(SITE_INLINE, __LINE__, outer_line);
	return r + 3 * x;
}

SYM_NOIPA int
sym_outer(int x)
{
	int r;

	r = sym_inner(x, __LINE__);
	return r * 2;
}

int
sym_target_report(FILE *out)
{
	static const char *const names[SITE_COUNT] = { "plain", "inline", "cxx", "cxx-inline" };
	int sum = sym_plain(1) + sym_outer(2) + hp_sym_cxx_entry(3);

	for (int i = 0; i < SITE_COUNT; i++) {
		Dl_info info;
		struct link_map *map = NULL;

		/* l_addr is the load bias: 0 for ET_EXEC, the load address for PIE and .so. */
		if (sites[i].ret == NULL
		    || dladdr1(sites[i].ret, &info, (void **)&map, RTLD_DL_LINKMAP) == 0
		    || map == NULL)
			return -1;
		fprintf(out, "site %s %" PRIxPTR " %d %d\n", names[i],
			(uintptr_t)sites[i].ret - (uintptr_t)map->l_addr, sites[i].line,
			sites[i].outer_line);
	}
	return sum;
}

#ifndef SYM_TARGET_LIB
int
main(void)
{
	return sym_target_report(stdout) < 0 ? 1 : 0;
}
#endif
