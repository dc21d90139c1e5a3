/* SPDX-License-Identifier: MIT */
/*
 * test-tune - the parameter parsing of tune.c against what ld.so does
 * (elf/dl-tunables.c, elf/dl-misc.c _dl_strtoul, glibc 2.36), value by
 * value: number syntax, ranges, alias vs GLIBC_TUNABLES precedence, and
 * secure mode.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tune.h"

#include "../harness.h"

static void
strtoul_cases(void)
{
	static const struct {
		const char *in;
		uint64_t want;
		size_t consumed;
	} cases[] = {
		{ "123", 123, 3 },
		{ "0x1F", 31, 4 },
		{ "0X1f", 31, 4 },
		{ "0755", 493, 4 },
		{ "08", 0, 1 }, /* octal: 8 is not a digit */
		{ "-1", UINT64_MAX, 2 },
		{ "+42", 42, 3 },
		{ "  \t7", 7, 4 },
		{ "12junk", 12, 2 },
		{ "junk", 0, 0 },
		{ "", 0, 0 },
		{ "18446744073709551615", UINT64_MAX, 19 }, /* overflow stops early */
		{ "99999999999999999999999", UINT64_MAX, 19 },
		{ "0x", 0, 2 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *end;
		uint64_t v = hp_tune_strtoul(cases[i].in, &end);
		CHECK(v == cases[i].want && (size_t)(end - cases[i].in) == cases[i].consumed,
		      "strtoul(\"%s\") = %llu after %zu chars (want %llu after %zu)", cases[i].in,
		      (unsigned long long)v, (size_t)(end - cases[i].in),
		      (unsigned long long)cases[i].want, cases[i].consumed);
	}
}

static void
configure(const char *a, const char *b, const char *c)
{
	char *env[4] = { (char *)a, (char *)b, (char *)c, NULL };
	hp_tune_configure(env, false);
}

static void
env_cases(void)
{
	configure("MALLOC_TOP_PAD_=4096", "PATH=/bin", NULL);
	CHECK(hp_mp.top_pad == 4096 && hp_mp.no_dyn_threshold, "MALLOC_TOP_PAD_ sets and freezes");

	configure("MALLOC_TOP_PAD_=4096", "GLIBC_TUNABLES=glibc.malloc.top_pad=8192", NULL);
	CHECK(hp_mp.top_pad == 8192, "GLIBC_TUNABLES after the alias wins");
	configure("GLIBC_TUNABLES=glibc.malloc.top_pad=8192", "MALLOC_TOP_PAD_=4096", NULL);
	CHECK(hp_mp.top_pad == 8192, "GLIBC_TUNABLES before the alias wins too");
	configure("MALLOC_TOP_PAD_=100", "MALLOC_TOP_PAD_=200", NULL);
	CHECK(hp_mp.top_pad == 100, "the first of two aliases wins");

	configure("MALLOC_PERTURB_=256", NULL, NULL);
	CHECK(hp_mp.perturb_byte == 0, "perturb above 255 is ignored");
	configure("MALLOC_PERTURB_=255", NULL, NULL);
	CHECK(hp_mp.perturb_byte == 255, "perturb 255 accepted");
	configure("MALLOC_MMAP_MAX_=-1", NULL, NULL);
	CHECK(hp_mp.n_mmaps_max == 65536 && !hp_mp.no_dyn_threshold,
	      "negative mmap_max ignored, threshold stays dynamic");
	configure("MALLOC_MMAP_MAX_=3000000000", NULL, NULL);
	CHECK(hp_mp.n_mmaps_max == 65536, "mmap_max above INT32_MAX ignored");
	configure("MALLOC_ARENA_MAX=0", "MALLOC_ARENA_TEST=0", NULL);
	CHECK(hp_mp.arena_max == 0 && hp_mp.arena_test == 8, "arena_max/test below 1 ignored");
	configure("MALLOC_MMAP_THRESHOLD_=-1", NULL, NULL);
	CHECK(hp_mp.mmap_threshold == SIZE_MAX, "mmap_threshold -1 is SIZE_MAX (no upper bound)");

	configure("GLIBC_TUNABLES=glibc.malloc.tcache_count=70000:glibc.malloc.tcache_max=2000", NULL,
		  NULL);
	CHECK(hp_mp.tcache_count == 7 && hp_mp.tcache_bins == 64,
	      "tcache_count > 65535 and tcache_max > 1032 rejected");
	configure("GLIBC_TUNABLES=glibc.malloc.tcache_max=200:glibc.malloc.tcache_count=0", NULL,
		  NULL);
	CHECK(hp_mp.tcache_max_bytes == 200 && hp_mp.tcache_bins == 12 && hp_mp.tcache_count == 0,
	      "tcache_max 200 -> 12 bins (got %zu), tcache_count 0", hp_mp.tcache_bins);
	CHECK(!hp_mp.no_dyn_threshold, "tcache settings do not freeze the threshold");
	configure("GLIBC_TUNABLES=glibc.malloc.mxfast=0", NULL, NULL);
	CHECK(hp_mp.max_fast == 16, "mxfast 0 disables fastbins (max_fast %zu)", hp_mp.max_fast);
	configure("GLIBC_TUNABLES=glibc.malloc.mxfast=161", NULL, NULL);
	CHECK(hp_mp.max_fast == 128, "mxfast 161 rejected");
	configure("GLIBC_TUNABLES=junk:glibc.malloc.nosuch=1:glibc.malloc.trim_threshold=0x10000:x",
		  NULL, NULL);
	CHECK(hp_mp.trim_threshold == 65536 && hp_mp.no_dyn_threshold,
	      "junk and unknown names skipped, the rest applied");
	configure("GLIBC_TUNABLES=glibc.malloc.top_pad", NULL, NULL);
	CHECK(hp_mp.top_pad == 131072, "a name without value is ignored");
	configure("MALLOC_TOP_PAD_", "MALLOC_TOP_PAD_X=5", NULL);
	CHECK(hp_mp.top_pad == 131072, "entries without '=' or with a longer name are ignored");
	configure("malloc_top_pad_=5", NULL, NULL);
	CHECK(hp_mp.top_pad == 131072, "names are case-sensitive");

	/* secure mode: nothing is read */
	char *env[] = { "MALLOC_TOP_PAD_=4096", "GLIBC_TUNABLES=glibc.malloc.mxfast=0", NULL };
	hp_tune_configure(env, true);
	CHECK(hp_mp.top_pad == 131072 && hp_mp.max_fast == 128 && hp_mp.secure,
	      "AT_SECURE: the environment is ignored");
}

/* The lines read (what the recorder writes to malloc_setting and a
 * replay applies again): those that set something, in their order. */
static void
lines_cases(void)
{
	const char *const *l;
	size_t n;

	configure("MALLOC_TOP_PAD_=100", "PATH=/bin", "GLIBC_TUNABLES=glibc.malloc.arena_max=2");
	n = hp_tune_lines(&l);
	CHECK(n == 2 && strcmp(l[0], "MALLOC_TOP_PAD_=100") == 0 &&
	      strcmp(l[1], "GLIBC_TUNABLES=glibc.malloc.arena_max=2") == 0,
	      "lines read: the alias and GLIBC_TUNABLES, not PATH (%zu)", n);
	configure("GLIBC_TUNABLES=glibc.malloc.top_pad=8192", "MALLOC_TOP_PAD_=4096",
		  "MALLOC_TOP_PAD_=1");
	n = hp_tune_lines(&l);
	CHECK(n == 1 && strcmp(l[0], "GLIBC_TUNABLES=glibc.malloc.top_pad=8192") == 0,
	      "an alias GLIBC_TUNABLES already set is not read (%zu)", n);
	char *env[] = { "MALLOC_TOP_PAD_=4096", NULL };
	hp_tune_configure(env, true);
	CHECK(hp_tune_lines(&l) == 0, "AT_SECURE: no line read");
	configure("PATH=/bin", NULL, NULL);
	CHECK(hp_tune_lines(&l) == 0, "no setting: no line");
}

int
main(void)
{
	strtoul_cases();
	env_cases();
	lines_cases();
	return harness_exit();
}
