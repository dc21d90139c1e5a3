/* SPDX-License-Identifier: MIT */
/*
 * pattern - one heap pattern per mode, for the report tests. At the end
 * it prints glibc's own view of its heap (mallinfo2) with write(2), so
 * that nothing is allocated after it: the figures heapprof reports for
 * the end of the process must equal them.
 *
 *   live-pin    1000 x 40 KiB freed below a live 100-byte chunk
 *   cached-pin  the same, the 100-byte chunk freed too (the tcache holds it)
 *   stdio-pin   1000 x 40 KiB freed below a stdio FILE's buffer
 *   pages       100 holes of 64 KiB between live 32-byte chunks; then
 *               malloc_trim(0), and the resident heap bytes it gave back
 *   slivers     1000 holes of 1100 bytes between live 32-byte chunks
 *   mmap-only   ten 1 MiB chunks (mmap), five freed: no holes
 *   freed-all   10000 x 4000 bytes pinned by a config string while the
 *               program works, then everything freed: no leak at all
 *   arena-pin   a thread's arena: 200 x 40 KiB freed below a live chunk
 *
 * Usage: pattern MODE
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define N 1000
#define BLOCK (40 * 1024)

static void *blocks[10000];
static void *pins[1000];

static void
say(const char *fmt, unsigned long long a, unsigned long long b)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), fmt, a, b);

	if (write(1, buf, (size_t)n) != n)
		_exit(99);
}

static void
report_mallinfo(void)
{
	struct mallinfo2 mi = mallinfo2();

	say("arena %llu keepcost %llu\n", mi.arena, mi.keepcost);
	say("fordblks %llu fsmblks %llu\n", mi.fordblks, mi.fsmblks);
	say("uordblks %llu hblkhd %llu\n", mi.uordblks, mi.hblkhd);
}

/* Resident bytes of the heap (mincore over it, page by page; no stdio,
 * which would allocate). */
static unsigned long long
heap_resident(char *lo)
{
	char *hi = sbrk(0);
	unsigned long long n = 0;
	unsigned char v;

	lo = (char *)((uintptr_t)lo & ~(uintptr_t)4095);
	for (char *p = lo; p + 4096 <= hi; p += 4096)
		if (mincore(p, 4096, &v) == 0 && (v & 1))
			n += 4096;
	return n;
}

__attribute__((noinline)) static void
fill_blocks(int n, size_t bytes)
{
	for (int i = 0; i < n; i++) {
		blocks[i] = malloc(bytes);
		if (!blocks[i])
			exit(99);
		memset(blocks[i], i & 0xff, bytes);
	}
}

__attribute__((noinline)) static void
free_blocks(int n)
{
	for (int i = 0; i < n; i++)
		free(blocks[i]);
}

__attribute__((noinline)) static char *
keep_config(void)
{
	char *s = malloc(100); /* PIN_SITE */
	if (!s)
		exit(99);
	strcpy(s, "threads=4");
	return s;
}

__attribute__((noinline)) static void
interleave(int n, size_t hole, size_t pin)
{
	for (int i = 0; i < n; i++) {
		blocks[i] = malloc(hole);
		pins[i] = malloc(pin); /* INTERLEAVE_PIN */
		if (!blocks[i] || !pins[i])
			exit(99);
		memset(blocks[i], 1, hole);
	}
}

__attribute__((noinline)) static void
work(void)
{
	/* a program that goes on with its life while the heap is pinned */
	struct timespec ts = { 0, 50000000 };
	nanosleep(&ts, NULL);
}

__attribute__((noinline)) static void *
arena_work(void *arg)
{
	(void)arg;
	fill_blocks(200, BLOCK);
	pins[0] = keep_config();
	free_blocks(200);
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	char *pin;

	if (strcmp(mode, "live-pin") == 0) {
		fill_blocks(N, BLOCK);
		pin = keep_config();
		free_blocks(N);
		report_mallinfo();
		return pin[0] == 't' ? 0 : 1;
	}
	if (strcmp(mode, "cached-pin") == 0) {
		fill_blocks(N, BLOCK);
		pin = keep_config();
		free_blocks(N);
		free(pin);
		report_mallinfo();
		return 0;
	}
	if (strcmp(mode, "stdio-pin") == 0) {
		fill_blocks(N, BLOCK);
		FILE *f = fopen("/dev/null", "w");
		if (!f || fputs("x", f) < 0) /* the buffer comes with the first write */
			return 99;
		free_blocks(N);
		report_mallinfo();
		return 0;
	}
	if (strcmp(mode, "pages") == 0) {
		interleave(100, 64 * 1024, 32);
		for (int i = 0; i < 100; i++)
			free(blocks[i]);
		report_mallinfo();
		unsigned long long before = heap_resident(blocks[0]);
		malloc_trim(0);
		unsigned long long after = heap_resident(blocks[0]);
		say("trim_rss %llu %llu\n", before - after, 0);
		return 0;
	}
	if (strcmp(mode, "slivers") == 0) {
		interleave(1000, 1100, 32);
		for (int i = 0; i < 1000; i++)
			free(blocks[i]);
		report_mallinfo();
		return 0;
	}
	if (strcmp(mode, "mmap-only") == 0) {
		fill_blocks(10, 1024 * 1024);
		for (int i = 0; i < 10; i += 2)
			free(blocks[i]);
		report_mallinfo();
		return 0;
	}
	if (strcmp(mode, "freed-all") == 0) {
		fill_blocks(10000, 4000);
		pin = keep_config();
		free_blocks(10000);
		work();
		free(pin);
		return 0;
	}
	if (strcmp(mode, "arena-pin") == 0) {
		pthread_t t;
		if (pthread_create(&t, NULL, arena_work, NULL) != 0 || pthread_join(t, NULL) != 0)
			return 99;
		report_mallinfo();
		return 0;
	}
	fprintf(stderr, "usage: pattern live-pin|cached-pin|stdio-pin|pages|slivers|"
			"mmap-only|freed-all|arena-pin\n");
	return 2;
}
