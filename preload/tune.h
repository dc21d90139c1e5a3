/* SPDX-License-Identifier: MIT */
/*
 * tune.h - the allocator's parameters: glibc 2.36's `mp_` and
 * global_max_fast, set from the environment (MALLOC_*_ variables and
 * GLIBC_TUNABLES=glibc.malloc.*) at start-up and by mallopt().
 *
 * Parsing follows ld.so's tunables code exactly (elf/dl-tunables.c,
 * _dl_strtoul): decimal, 0x hex, leading-0 octal, leading '-' negates,
 * trailing junk ignored, out-of-range values ignored, GLIBC_TUNABLES
 * overriding the aliases, nothing read in secure (AT_SECURE) mode.
 */
#ifndef HP_TUNE_H
#define HP_TUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HP_DEFAULT_MMAP_THRESHOLD ((size_t)128 * 1024)
#define HP_DEFAULT_MMAP_THRESHOLD_MAX ((size_t)4 * 1024 * 1024 * sizeof(long))
#define HP_DEFAULT_TRIM_THRESHOLD ((size_t)128 * 1024)
#define HP_DEFAULT_TOP_PAD ((size_t)128 * 1024)
#define HP_DEFAULT_MMAP_MAX 65536
#define HP_DEFAULT_MXFAST (64 * sizeof(size_t) / 4)
#define HP_MAX_FAST_SIZE (80 * sizeof(size_t) / 4)
#define HP_TCACHE_MAX_BINS 64
#define HP_TCACHE_FILL_COUNT 7
#define HP_MAX_TCACHE_COUNT 65535
#define HP_MMAP_AS_MORECORE_SIZE ((size_t)1024 * 1024)

struct hp_params {
	size_t trim_threshold;
	size_t top_pad;
	size_t mmap_threshold;
	size_t arena_test;
	size_t arena_max;
	size_t thp_pagesize;       /* glibc.malloc.hugetlb=1 in THP madvise mode */
	size_t hp_pagesize;        /* glibc.malloc.hugetlb>=2: MAP_HUGETLB size */
	int hp_flags;
	int n_mmaps;               /* atomic: live mmap chunks */
	int n_mmaps_max;
	int max_n_mmaps;           /* atomic */
	int no_dyn_threshold;      /* an explicit setting froze the threshold */
	size_t mmapped_mem;        /* atomic: bytes in mmap chunks */
	size_t max_mmapped_mem;    /* atomic */
	size_t tcache_bins;
	size_t tcache_max_bytes;
	size_t tcache_count;
	size_t tcache_unsorted_limit;
	size_t max_fast;           /* glibc's global_max_fast, a chunk size */
	int perturb_byte;
	bool always_fail_morecore; /* hugetlb>=2: the main heap lives in mmap */
	bool secure;               /* AT_SECURE: environment ignored */
	size_t pagesize;
};

extern struct hp_params hp_mp;

/*
 * Read the process's initial environment and apply the MALLOC_* variables
 * and GLIBC_TUNABLES in glibc's order. Called once, from the first
 * allocation, before the heap exists.
 * Lock: heap lock or single-threaded. Allocates: no. AS-safe: no.
 */
void hp_tune_init(void);

/* The environment ld.so saw at start-up (its envp, found through
 * __libc_stack_end), or environ if that is unknown. */
char *const *hp_initial_envp(void);

/*
 * The body of mallopt(): set one parameter, returning what glibc returns
 * (1 on success, 0 for a rejected value). The caller holds the heap lock
 * and has consolidated the fastbins, as glibc does before every mallopt.
 * Lock: held. Allocates: no. AS-safe: no.
 */
int hp_tune_mallopt_locked(int param, int value);

/*
 * glibc's _dl_strtoul: parse a number the way ld.so parses tunables. Sets
 * *end past the digits. Exposed for unit tests.
 */
uint64_t hp_tune_strtoul(const char *s, const char **end);

/*
 * Apply the allocator-relevant parts of an environment given as a vector of
 * "NAME=value" strings (the tunables frontend). Exposed for unit tests;
 * hp_tune_init() calls it with the real environment.
 */
void hp_tune_apply_env(char *const *envp, size_t count);

/*
 * The environment lines the last hp_tune_apply_env() read a setting from
 * (copies, in its order; at most HP_TUNE_LINES_MAX, HP_TUNE_LINES_BYTES in
 * all): what the recorder writes as the process's start-up settings, also
 * in a forked child after the program wrote over its environment, and
 * what a replay applies again to have them.
 */
#define HP_TUNE_LINES_MAX 32
#define HP_TUNE_LINES_BYTES 4096
size_t hp_tune_lines(const char *const **lines);

/* Reset every parameter to glibc's default (unit tests only). */
void hp_tune_reset(void);

/* Defaults, then envp's settings unless `secure` (hp_tune_init's body,
 * exposed for unit tests). */
void hp_tune_configure(char *const *envp, bool secure);

/* glibc's madvise_thp(): ask for transparent huge pages on a fresh region
 * when glibc.malloc.hugetlb=1 made thp_pagesize non-zero. */
void hp_tune_madvise_thp(void *p, size_t size);

#endif
