/* SPDX-License-Identifier: MIT */
/*
 * mallopt-mix - a program that changes its allocator's settings as it
 * runs: the heap it leaves depends on each mallopt() call and on when it
 * was made, and on the settings of its environment (tests/advise/
 * reality.py runs it with MALLOC_TOP_PAD_ and GLIBC_TUNABLES set).
 * heapprof advise must replay it with them (table malloc_setting), or its
 * self-check fails:
 *
 *   - 40000-byte blocks on the brk heap (the default mmap threshold), each
 *     followed by a small chunk that stays: freed, they leave holes;
 *   - 48-byte chunks freed past the tcache into the fastbins, then
 *     mallopt(M_MXFAST, 0): mallopt consolidates the fastbins first;
 *   - mallopt(M_MMAP_THRESHOLD, 65536): 70000-byte blocks go to mmap,
 *     50000-byte ones to the brk heap, the top of which stays pinned;
 *   - mallopt(M_TOP_PAD, 0) and mallopt(M_TRIM_THRESHOLD, 8192) before the
 *     last frees, which trim the top;
 *   - then it writes over its environment's strings, as setproctitle does,
 *     and forks a child that ends at once (exit_group: no allocation, no
 *     destructor): the child's recorded start-up settings must still be
 *     the lines the allocator read.
 *
 * Built with -fno-builtin: every malloc and free here must happen.
 */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum { BLOCKS = 100, SMALL = 64 };

int
main(void)
{
	static void *block[BLOCKS], *keep[BLOCKS], *small[SMALL], *big[BLOCKS];

	for (int i = 0; i < BLOCKS; i++) {
		block[i] = malloc(40000);
		keep[i] = malloc(24);
	}
	for (int i = 0; i < BLOCKS; i++)
		free(block[i]);
	for (int i = 0; i < SMALL; i++)
		small[i] = malloc(40);
	for (int i = 0; i < SMALL; i += 2)
		free(small[i]);
	if (mallopt(M_MXFAST, 0) != 1)
		return 1;
	if (mallopt(M_MMAP_THRESHOLD, 65536) != 1)
		return 1;
	for (int i = 0; i < BLOCKS; i++)
		big[i] = malloc(i % 2 ? 70000 : 50000);
	void *pin = malloc(100);
	if (mallopt(M_TOP_PAD, 0) != 1 || mallopt(M_TRIM_THRESHOLD, 8192) != 1)
		return 1;
	for (int i = BLOCKS - 1; i >= 0; i--)
		free(big[i]);
	for (int i = 1; i < SMALL; i += 2)
		free(small[i]);
	for (int i = 0; i < BLOCKS; i += 3)
		free(keep[i]);
	(void)pin; /* left live at the top of the heap */
	for (char **e = environ; *e; e++)
		memset(*e, 'x', strlen(*e));
	pid_t child = fork();
	if (child == 0)
		syscall(SYS_exit_group, 0);
	int status;
	if (child < 0 || waitpid(child, &status, 0) != child || status != 0)
		return 1;
	return 0;
}
