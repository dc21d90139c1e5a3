/* SPDX-License-Identifier: MIT */
/*
 * rec-known - allocations whose every count, size and call site is known,
 * so a test can check heapprof's database against them with SQL.
 *
 * site_a: 100 x malloc(48), 60 of them freed
 * site_b: 10 x calloc(10, 100), all live at exit
 * site_c: one 200 KiB malloc (mmap backing) and one 40 KiB (brk), freed
 * site_d: a realloc that stays in place and one that moves
 * site_e: memalign(4096, 1000), live
 * site_f: 2 x malloc(48), live: the tcache hands back two of site_a's
 *         chunks (the 7 it freed first went to the tcache, the other 53
 *         to a fastbin, which site_c's big malloc consolidated)
 * site_g: malloc(3210), live, from site_g_inner inlined into site_g
 * Exit status 7. The lines of the calls are marked SITE_x for the test.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *keep[256];
static int nkeep;

__attribute__((noinline)) static void
site_a(void)
{
	void *v[100];

	for (int i = 0; i < 100; i++) {
		v[i] = malloc(48); /* SITE_A */
		memset(v[i], 'a', 48);
	}
	for (int i = 0; i < 100; i++) {
		if (i % 5 < 3)
			free(v[i]);
		else
			keep[nkeep++] = v[i];
	}
}

__attribute__((noinline)) static void
site_b(void)
{
	for (int i = 0; i < 10; i++)
		keep[nkeep++] = calloc(10, 100); /* SITE_B */
}

__attribute__((noinline)) static void
site_c(void)
{
	char *big = malloc(200 * 1024); /* SITE_C_MMAP */
	char *mid = malloc(40 * 1024);  /* SITE_C_BRK */

	memset(big, 1, 200 * 1024);
	memset(mid, 1, 40 * 1024);
	free(big);
	free(mid);
}

__attribute__((noinline)) static void
site_d(void)
{
	char *p = malloc(100);
	char *block = malloc(64);

	p = realloc(p, 60);   /* SITE_D_STAY: shrinks in place */
	p = realloc(p, 4000); /* SITE_D_MOVE: cannot grow past block */
	keep[nkeep++] = p;
	keep[nkeep++] = block;
}

__attribute__((noinline)) static void
site_e(void)
{
	keep[nkeep++] = memalign(4096, 1000); /* SITE_E */
}

__attribute__((noinline)) static void
site_f(void)
{
	for (int i = 0; i < 2; i++)
		keep[nkeep++] = malloc(48); /* SITE_F */
}

/* Always inlined: the frames of its malloc's caller are site_g_inner
 * (inlined) and then site_g, at one return address. */
static inline __attribute__((always_inline)) void
site_g_inner(void)
{
	keep[nkeep++] = malloc(3210); /* SITE_G */
}

__attribute__((noinline)) static void
site_g(void)
{
	site_g_inner(); /* SITE_G_CALL */
}

int
main(void)
{
	site_a();
	site_b();
	site_c();
	site_d();
	site_e();
	site_f();
	site_g();
	printf("kept %d\n", nkeep);
	return 7;
}
