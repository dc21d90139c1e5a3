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
 *   pages       100 holes of 64 KiB between live 32-byte chunks; then a
 *               forked child calls malloc_trim(0) on the same heap and
 *               says how many resident bytes it gave back (mincore)
 *   self-trim   the same, but the program itself calls malloc_trim(0),
 *               then says how many heap bytes are resident
 *   fastbins    200000 chunks of 100 bytes freed below a live one: a
 *               tcache and fastbins hold them; a child's malloc_trim(0)
 *               consolidates and returns them
 *   fastbins-mt the same in 4 threads' arenas (the threads exit, their
 *               tcaches go to the fastbins too), main's heap busy
 *   stashed-pin 1000 x 40 KiB freed below a live chunk that realloc shrank
 *               in place: the tail it split off went into the tcache, above
 *               it: free space the allocator holds, no chunk of the program's
 *   wrapped     live-pin, but every chunk comes through allocation
 *               wrappers: xmalloc (a known one), and pool_get (the
 *               program's own) under the pin
 *   survivors   2000 x 20000 bytes, of which every 10th (survive_a) and
 *               every 10th but 5 (survive_b) live on: 400 chunks hold 30 MiB
 *               of holes; one child trims, another frees survive_a's chunks
 *               first, and each says what it gave back
 *   two-stacks  live-pin, but the blocks come from one function called
 *               from two places (load_a, load_b): one site, two stacks
 *   marked      marks "phase" (heapprof_mark) after filling 1000 x 40 KiB,
 *               frees them below a 2000-byte chunk, marks "pinned" and
 *               "phase" again, then frees the pin: nothing pinned at exit
 *   slivers     1000 holes of 1100 bytes between live 32-byte chunks
 *   mmap-only   ten 1 MiB chunks (mmap), five freed: no holes
 *   freed-all   10000 x 4000 bytes pinned by a config string while the
 *               program works, then everything freed: no leak at all
 *   arena-pin   a thread's arena: 200 x 40 KiB freed below a live chunk
 *
 * Usage: pattern MODE
 */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heapprof.h"

#define N 1000
#define BLOCK (40 * 1024)

static void *blocks[200000];
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

/* Resident bytes of [lo, hi) (mincore, page by page; no stdio, which
 * would allocate). */
static unsigned long long
resident(char *lo, char *hi)
{
	unsigned long long n = 0;
	unsigned char v;

	lo = (char *)((uintptr_t)lo & ~(uintptr_t)4095);
	for (char *p = lo; p + 4096 <= hi; p += 4096)
		if (mincore(p, 4096, &v) == 0 && (v & 1))
			n += 4096;
	return n;
}

/* The brk heap's start, from /proc/self/maps ("[heap]"). */
static char *
heap_start(void)
{
	static char buf[65536];
	int fd = open("/proc/self/maps", O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		_exit(99);
	buf[n] = '\0';
	char *h = strstr(buf, "[heap]");
	if (!h)
		_exit(99);
	while (h > buf && h[-1] != '\n')
		h--;
	return (char *)strtoull(h, NULL, 16);
}

/* Thread arenas' heaps (64 MiB-aligned), as found from their chunks. */
#define HEAP_MAX ((uintptr_t)64 << 20)
static uintptr_t arena_heaps[16];
static int narena_heaps;

static void
note_arena_heap(void *p)
{
	uintptr_t h = (uintptr_t)p & ~(HEAP_MAX - 1);

	for (int i = 0; i < narena_heaps; i++)
		if (arena_heaps[i] == h)
			return;
	if (narena_heaps < 16)
		arena_heaps[narena_heaps++] = h;
}

/* Resident bytes of every heap: the brk heap and the thread arenas'. */
static unsigned long long
heaps_resident(void)
{
	unsigned long long n = resident(heap_start(), sbrk(0));

	for (int i = 0; i < narena_heaps; i++)
		n += resident((char *)arena_heaps[i], (char *)arena_heaps[i] + HEAP_MAX);
	return n;
}

/* A child calls malloc_trim(0) on a copy of this heap (having freed
 * free_first[0..nfree) first) and says how many resident bytes it gave
 * back, as `key`; this process's heap stays as it is. */
static void
trim_in_child_after(const char *key, void **free_first, int nfree)
{
	pid_t pid = fork();

	if (pid < 0)
		_exit(99);
	if (pid == 0) {
		unsigned long long before = heaps_resident();
		for (int i = 0; i < nfree; i++)
			free(free_first[i]);
		malloc_trim(0);
		unsigned long long after = heaps_resident();
		char fmt[64];
		snprintf(fmt, sizeof(fmt), "%s %%llu resident %%llu\n", key);
		say(fmt, before - after, before);
		_exit(0);
	}
	if (waitpid(pid, NULL, 0) != pid)
		_exit(99);
}

static void
trim_in_child(void)
{
	trim_in_child_after("trim_rss", NULL, 0);
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

/* libiberty's: a wrapper every report skips */
void *xmalloc(size_t n);

__attribute__((noinline)) void *
xmalloc(size_t n)
{
	void *p = malloc(n);
	if (!p)
		exit(99);
	return p;
}

/* the program's own wrapper (--skip pool_get) */
__attribute__((noinline)) static void *
pool_get(size_t n)
{
	char *p = xmalloc(n);
	memset(p, 0, n);
	return p;
}

__attribute__((noinline)) static void
fill_wrapped(int n, size_t bytes)
{
	for (int i = 0; i < n; i++) {
		blocks[i] = xmalloc(bytes); /* WRAPPED_SITE */
		memset(blocks[i], i & 0xff, bytes);
	}
}

__attribute__((noinline)) static char *
keep_pooled(void)
{
	char *s = pool_get(100); /* POOLED_SITE */
	strcpy(s, "threads=4");
	return s;
}

static volatile int loaded;

__attribute__((noinline)) static void
fill_at(int from, int n)
{
	for (int i = from; i < from + n; i++) {
		blocks[i] = malloc(BLOCK); /* FILL_AT */
		if (!blocks[i])
			exit(99);
		memset(blocks[i], i & 0xff, BLOCK);
	}
}

__attribute__((noinline)) static void
load_a(void)
{
	fill_at(0, N / 2); /* LOAD_A */
	loaded++;
}

__attribute__((noinline)) static void
load_b(void)
{
	fill_at(N / 2, N / 2); /* LOAD_B */
	loaded++;
}

__attribute__((noinline)) static void *
survive_a(size_t n)
{
	char *p = malloc(n); /* SURVIVE_A */
	if (!p)
		exit(99);
	memset(p, 'a', n);
	return p;
}

__attribute__((noinline)) static void *
survive_b(size_t n)
{
	char *p = malloc(n); /* SURVIVE_B */
	if (!p)
		exit(99);
	memset(p, 'b', n);
	return p;
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

static pthread_barrier_t barrier;

__attribute__((noinline)) static void *
small_work(void *arg)
{
	void **v = arg;

	for (int i = 0; i < 50000; i++) {
		v[i] = malloc(100);
		if (!v[i])
			exit(99);
		memset(v[i], 7, 100);
	}
	note_arena_heap(v[0]);
	char *pin = keep_config();
	for (int i = 0; i < 50000; i++)
		free(v[i]);
	/* all four at once: each in an arena of its own */
	pthread_barrier_wait(&barrier);
	return pin;
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
	if (strcmp(mode, "stashed-pin") == 0) {
		fill_blocks(N, BLOCK);
		pin = keep_config();
		char *big = malloc(1000); /* SHRUNK_SITE */
		if (!big)
			return 99;
		memset(big, 1, 1000);
		big = realloc(big, 500); /* in place: a 496-byte tail to the tcache */
		free_blocks(N);
		report_mallinfo();
		return big && pin[0] == 't' ? 0 : 1;
	}
	if (strcmp(mode, "wrapped") == 0) {
		fill_wrapped(N, BLOCK);
		pin = keep_pooled();
		free_blocks(N);
		report_mallinfo();
		return pin[0] == 't' ? 0 : 1;
	}
	if (strcmp(mode, "marked") == 0) {
		fill_blocks(N, BLOCK);
		HEAPPROF_MARK("phase");
		char *big = malloc(2000); /* MARKED_PIN */
		if (!big)
			return 99;
		memset(big, 1, 2000);
		free_blocks(N);
		HEAPPROF_MARK("pinned");
		HEAPPROF_MARK("phase");
		free(big);
		report_mallinfo();
		return 0;
	}
	if (strcmp(mode, "two-stacks") == 0) {
		load_a();
		load_b();
		pin = keep_config();
		free_blocks(N);
		report_mallinfo();
		return pin[0] == 't' ? 0 : 1;
	}
	if (strcmp(mode, "survivors") == 0) {
		static void *a[200];
		int na = 0;
		for (int i = 0; i < 2000; i++) {
			if (i % 10 == 0)
				blocks[i] = a[na++] = survive_a(20000);
			else if (i % 10 == 5)
				blocks[i] = survive_b(20000);
			else if (!(blocks[i] = malloc(20000)))
				return 99;
			memset(blocks[i], 1, 20000);
		}
		for (int i = 0; i < 2000; i++)
			if (i % 5)
				free(blocks[i]);
		trim_in_child();
		trim_in_child_after("free_a_rss", a, na);
		report_mallinfo();
		return 0;
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
	if (strcmp(mode, "pages") == 0 || strcmp(mode, "self-trim") == 0) {
		interleave(100, 64 * 1024, 32);
		for (int i = 0; i < 100; i++)
			free(blocks[i]);
		if (mode[0] == 'p') {
			trim_in_child();
		} else {
			malloc_trim(0);
			say("resident %llu %llu\n", heaps_resident(), 0);
		}
		report_mallinfo();
		return 0;
	}
	if (strcmp(mode, "fastbins") == 0) {
		for (int i = 0; i < 200000; i++) {
			blocks[i] = malloc(100);
			if (!blocks[i])
				return 99;
			memset(blocks[i], 3, 100);
		}
		pin = keep_config();
		free_blocks(200000);
		trim_in_child();
		report_mallinfo();
		return pin[0] == 't' ? 0 : 1;
	}
	if (strcmp(mode, "fastbins-mt") == 0) {
		pthread_t t[4];
		pthread_barrier_init(&barrier, NULL, 4);
		for (int k = 0; k < 4; k++)
			if (pthread_create(&t[k], NULL, small_work, &blocks[k * 50000]) != 0)
				return 99;
		for (int k = 0; k < 4; k++)
			if (pthread_join(t[k], (void **)&pins[k]) != 0)
				return 99;
		/* main's heap: fastbins below a live chunk too */
		for (int i = 0; i < 20000; i++)
			blocks[i] = malloc(60);
		pin = keep_config();
		free_blocks(20000);
		trim_in_child();
		report_mallinfo();
		return pin[0] == 't' ? 0 : 1;
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
	if (strcmp(mode, "mremap") == 0) {
		/* an mmap chunk that mremap shrinks in place, then grows: the
		 * mapping's size changes three times under one address */
		char *big = malloc(1 << 20);
		if (!big)
			return 99;
		memset(big, 1, 1 << 20);
		HEAPPROF_MARK("mapped");
		say("mapped_hblkhd %llu\n", mallinfo2().hblkhd, 0);
		char *small = realloc(big, 300000);
		if (!small)
			return 99;
		HEAPPROF_MARK("shrunk");
		say("shrunk_hblkhd %llu in_place %llu\n", mallinfo2().hblkhd, small == big);
		char *grown = realloc(small, 500000);
		if (!grown)
			return 99;
		HEAPPROF_MARK("grown");
		say("grown_hblkhd %llu\n", mallinfo2().hblkhd, 0);
		report_mallinfo();
		free(grown);
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
	fprintf(stderr, "usage: pattern live-pin|cached-pin|stdio-pin|pages|self-trim|"
			"fastbins|fastbins-mt|stashed-pin|wrapped|two-stacks|survivors|marked|\n"
			"slivers|mmap-only|mremap|freed-all|arena-pin\n");
	return 2;
}
