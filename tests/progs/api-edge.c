/* SPDX-License-Identifier: MIT */
/*
 * api-edge - the malloc family's documented edge cases, as glibc 2.36
 * behaves. The test runs natively (so every expectation is checked against
 * the real glibc) and under libheapprof.so; both runs must pass.
 *
 * Semantics follow glibc's malloc tests (tst-malloc-too-large, tst-calloc,
 * tst-reallocarray, tst-realloc, tst-free-errno, tst-memalign,
 * tst-posix_memalign, tst-valloc, tst-pvalloc, tst-mallopt, tst-malloc-usable,
 * tst-malloc-thread-fail) and mimalloc's test-api; the code is our own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../harness.h"

#pragma GCC diagnostic ignored "-Walloc-size-larger-than="
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"

static volatile size_t sink;

static int
aligned(void *p, size_t a)
{
	return ((uintptr_t)p & (a - 1)) == 0;
}

static void
test_malloc_basic(void)
{
	void *a = malloc(0), *b = malloc(0);

	CHECK(a && b && a != b, "malloc(0) returns unique non-NULL pointers");
	CHECK(malloc_usable_size(a) == 24, "malloc(0) has 24 usable bytes (got %zu)",
	      malloc_usable_size(a));
	free(a);
	free(b);
	for (size_t n = 0; n < 3000; n += 7) {
		unsigned char *p = malloc(n);
		size_t u = malloc_usable_size(p);
		CHECK(p && aligned(p, 16) && u >= n, "malloc(%zu): 16-aligned, usable %zu", n, u);
		memset(p, 0x5a, u); /* the program may use every usable byte */
		free(p);
	}
	CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) == 0");
	void *big = malloc(200000);
	CHECK(big && aligned(big, 16) && malloc_usable_size(big) >= 200000, "mmap chunk usable");
	memset(big, 1, malloc_usable_size(big));
	free(big);
}

#define EXPECT_ENOMEM(expr, what)                                              \
	do {                                                                   \
		errno = 0;                                                     \
		void *r_ = (expr);                                             \
		CHECK(r_ == NULL && errno == ENOMEM, "%s -> NULL/ENOMEM (errno %d)", what,  \
		      errno);                                                  \
		free(r_);                                                      \
	} while (0)

static void
test_too_large(void)
{
	char what[128];
	size_t sizes[64];
	int n = 0;

	for (size_t k = 0; k < (1 << 14); k += 1111)
		sizes[n++] = SIZE_MAX - k;
	sizes[n++] = SIZE_MAX - (1 << 14) + 1;
	for (size_t k = 1; k < (1 << 14); k += 2222)
		sizes[n++] = (size_t)PTRDIFF_MAX + k;
	sizes[n++] = PTRDIFF_MAX;
	sizes[n++] = (size_t)PTRDIFF_MAX - 100;

	for (int i = 0; i < n; i++) {
		size_t s = sizes[i];
		void *p = malloc(16);

		snprintf(what, sizeof(what), "malloc(%#zx)", s);
		EXPECT_ENOMEM(malloc(s), what);
		snprintf(what, sizeof(what), "calloc(1, %#zx)", s);
		EXPECT_ENOMEM(calloc(1, s), what);
		snprintf(what, sizeof(what), "calloc(%#zx, 1)", s);
		EXPECT_ENOMEM(calloc(s, 1), what);
		errno = 0;
		void *q = realloc(p, s);
		CHECK(q == NULL && errno == ENOMEM, "realloc(p, %#zx) -> NULL/ENOMEM", s);
		memset(p, 1, 16); /* still ours */
		errno = 0;
		q = reallocarray(p, 1, s);
		CHECK(q == NULL && errno == ENOMEM, "reallocarray(p, 1, %#zx) -> NULL/ENOMEM", s);
		free(p);
		snprintf(what, sizeof(what), "valloc(%#zx)", s);
		EXPECT_ENOMEM(valloc(s), what);
		snprintf(what, sizeof(what), "pvalloc(%#zx)", s);
		EXPECT_ENOMEM(pvalloc(s), what);
		for (size_t al = 1; al <= 4096; al *= 2) {
			void *m = (void *)0x42;
			snprintf(what, sizeof(what), "memalign(%zu, %#zx)", al, s);
			EXPECT_ENOMEM(memalign(al, s), what);
			snprintf(what, sizeof(what), "aligned_alloc(%zu, %#zx)", al, s);
			EXPECT_ENOMEM(aligned_alloc(al, s), what);
			if (al >= sizeof(void *)) {
				int r = posix_memalign(&m, al, s);
				CHECK(r == ENOMEM && m == (void *)0x42,
				      "posix_memalign(%zu, %#zx) -> ENOMEM, *memptr untouched", al, s);
			}
		}
	}
}

static void
test_calloc(void)
{
	/* dirty the heap so that a reused chunk must be cleared */
	for (int i = 0; i < 100; i++) {
		unsigned char *p = malloc(8000);
		memset(p, 0xff, 8000);
		free(p);
	}
	for (size_t n = 1; n < 20000; n = n * 3 + 1) {
		unsigned char *p = calloc(n, 1);
		size_t bad = 0;
		for (size_t i = 0; i < n; i++)
			bad += p[i] != 0;
		CHECK(p && bad == 0, "calloc(%zu, 1) zeroed", n);
		memset(p, 0xee, n);
		free(p);
	}
	void *z[5] = { calloc(0, 0), calloc(0, UINT_MAX), calloc(UINT_MAX, 0), calloc(0, SIZE_MAX),
		       calloc(SIZE_MAX, 0) };
	for (int i = 0; i < 5; i++) {
		CHECK(z[i] != NULL, "calloc with a zero factor (%d) returns non-NULL", i);
		free(z[i]);
	}
	EXPECT_ENOMEM(calloc((size_t)1 << 32, (size_t)1 << 32), "calloc(2^32, 2^32)");
	EXPECT_ENOMEM(calloc(2, (size_t)PTRDIFF_MAX / 2 + 1), "calloc beyond PTRDIFF_MAX");
}

static void
test_realloc(void)
{
	unsigned char *p = realloc(NULL, 0);
	CHECK(p != NULL, "realloc(NULL, 0) returns non-NULL");
	free(p);
	p = realloc(NULL, 100);
	CHECK(p != NULL && malloc_usable_size(p) >= 100, "realloc(NULL, n) is malloc");
	errno = 0;
	CHECK(realloc(p, 0) == NULL, "realloc(p, 0) frees and returns NULL");

	p = malloc(10);
	for (size_t n = 10, i = 0; n < 2000000; n = n * 2 + 3, i++) {
		memset(p, (int)(i & 0xff), 10);
		unsigned char *q = realloc(p, n);
		int same = 1;
		for (int k = 0; k < 10; k++)
			same &= q[k] == (unsigned char)(i & 0xff);
		CHECK(q && same, "realloc grow to %zu keeps contents", n);
		p = q;
	}
	for (size_t n = 2000000; n > 5; n /= 3) {
		memset(p, 0x77, 5);
		p = realloc(p, n);
		CHECK(p && p[0] == 0x77 && p[4] == 0x77, "realloc shrink to %zu keeps contents", n);
	}
	free(p);

	void *q = reallocarray(NULL, 0, 16);
	CHECK(q != NULL, "reallocarray(NULL, 0, 16) non-NULL");
	free(q);
	p = malloc(32);
	memset(p, 3, 32);
	errno = 0;
	q = reallocarray(p, SIZE_MAX / 2, 3);
	CHECK(q == NULL && errno == ENOMEM && p[31] == 3, "reallocarray overflow keeps the block");
	q = reallocarray(p, 10, 40);
	CHECK(q && malloc_usable_size(q) >= 400, "reallocarray(p, 10, 40)");
	free(q);
}

/* libheapprof.so exports mmap, mmap64 and munmap (to see a program's own
 * mappings): they must answer as glibc's do. */
static void
test_mmap(void)
{
	errno = 0;
	char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED && errno == 0, "mmap of 1 MiB anonymous memory, errno untouched");
	memset(p, 7, 1 << 20);
	CHECK(munmap(p + 4096, 4096) == 0, "munmap of a page in the middle");
	CHECK(p[0] == 7 && p[8192] == 7, "the rest stays mapped");
	CHECK(munmap(p, 1 << 20) == 0, "munmap of the whole range (with its hole)");
	errno = 0;
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 1) == MAP_FAILED &&
		      errno == EINVAL,
	      "mmap with an unaligned offset: MAP_FAILED, EINVAL");
	errno = 0;
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, 12345, 0) == MAP_FAILED && errno == EBADF,
	      "mmap of a bad file descriptor: MAP_FAILED, EBADF");
	errno = 0;
	CHECK(munmap((char *)p + 1, 4096) == -1 && errno == EINVAL,
	      "munmap of an unaligned address: -1, EINVAL");
	errno = 0;
	CHECK(mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED &&
		      errno == EINVAL,
	      "mmap of 0 bytes: MAP_FAILED, EINVAL");
}

static void
test_free_errno(void)
{
	size_t sizes[] = { 16, 100, 2000, 70000, 200000, 5000000 };

	free(NULL);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		void *p = malloc(sizes[i]);
		errno = 12345;
		free(p);
		CHECK(errno == 12345, "free(%zu-byte chunk) preserves errno", sizes[i]);
	}
	/* a free that trims the heap (systrim calls sbrk) */
	void *v[64];
	for (int i = 0; i < 64; i++)
		v[i] = malloc(20000);
	errno = 999;
	for (int i = 63; i >= 0; i--)
		free(v[i]);
	CHECK(errno == 999, "freeing into a trim preserves errno");
}

static void
test_memalign(void)
{
	for (size_t al = 1; al <= ((size_t)1 << 27); al *= 2) {
		void *p = memalign(al, 100);
		CHECK(p && aligned(p, al < 16 ? 16 : al), "memalign(%zu, 100)", al);
		memset(p, 1, 100);
		free(p);
		void *q = NULL;
		if (al >= sizeof(void *)) {
			int r = posix_memalign(&q, al, 1000);
			CHECK(r == 0 && aligned(q, al), "posix_memalign(%zu, 1000)", al);
			free(q);
		}
	}
	void *p = memalign(24, 10);
	CHECK(p && aligned(p, 32), "memalign(24) rounds the alignment up to 32");
	free(p);
	p = memalign(1000, 10);
	CHECK(p && aligned(p, 1024), "memalign(1000) rounds up to 1024");
	free(p);
	errno = 0;
	CHECK(memalign(SIZE_MAX / 2 + 2, 10) == NULL && errno == EINVAL,
	      "memalign(SIZE_MAX/2+2) -> EINVAL");
	p = aligned_alloc(24, 10);
	CHECK(p && aligned(p, 32), "aligned_alloc(24, 10) succeeds in glibc 2.36");
	free(p);
	p = aligned_alloc(0, 10);
	CHECK(p != NULL, "aligned_alloc(0, 10) succeeds in glibc 2.36");
	free(p);

	size_t bad[] = { 0, 3, 4, 24, 0x300, (size_t)1 << 63 | 8 };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *m = (void *)0x77;
		int r = posix_memalign(&m, bad[i], 100);
		CHECK(r == EINVAL && m == (void *)0x77, "posix_memalign(%#zx) -> EINVAL, untouched",
		      bad[i]);
	}
	void *m = NULL;
	CHECK(posix_memalign(&m, 8, 0) == 0 && m != NULL, "posix_memalign(8, 0) succeeds");
	free(m);

	p = valloc(0);
	CHECK(p && aligned(p, 4096), "valloc(0) page aligned, non-NULL");
	free(p);
	p = valloc(5000);
	CHECK(p && aligned(p, 4096) && malloc_usable_size(p) >= 5000, "valloc(5000)");
	free(p);
	p = pvalloc(0);
	CHECK(p && aligned(p, 4096), "pvalloc(0) page aligned, non-NULL");
	free(p);
	p = pvalloc(1);
	CHECK(p && aligned(p, 4096) && malloc_usable_size(p) >= 4095, "pvalloc(1) rounds up");
	free(p);
}

static void
test_mallopt_info(void)
{
	CHECK(mallopt(M_CHECK_ACTION, 3) == 1, "mallopt(M_CHECK_ACTION) = 1");
	CHECK(mallopt(M_MMAP_MAX, 65536) == 1, "mallopt(M_MMAP_MAX) = 1");
	CHECK(mallopt(M_MXFAST, 0) == 1, "mallopt(M_MXFAST, 0) = 1");
	CHECK(mallopt(M_MXFAST, 161) == 0, "mallopt(M_MXFAST, 161) = 0");
	CHECK(mallopt(M_MXFAST, 128) == 1, "mallopt(M_MXFAST, 128) = 1");
	CHECK(mallopt(M_PERTURB, 0) == 1, "mallopt(M_PERTURB) = 1");
	CHECK(mallopt(M_TOP_PAD, 131072) == 1, "mallopt(M_TOP_PAD) = 1");
	CHECK(mallopt(M_TRIM_THRESHOLD, -1) == 1, "mallopt(M_TRIM_THRESHOLD, -1) = 1");
	CHECK(mallopt(M_TRIM_THRESHOLD, 128 * 1024) == 1, "mallopt(M_TRIM_THRESHOLD) = 1");
	CHECK(mallopt(M_ARENA_MAX, 0) == 1, "mallopt(M_ARENA_MAX, 0) = 1");
	CHECK(mallopt(12345, 1) == 1, "mallopt(unknown) = 1");

	void *v[200];
	for (int i = 0; i < 200; i++)
		v[i] = malloc((size_t)(i % 7) * 900 + 10);
	for (int i = 0; i < 200; i += 2)
		free(v[i]);
	struct mallinfo2 mi = mallinfo2();
	CHECK(mi.arena == mi.uordblks + mi.fordblks, "mallinfo2: arena = uordblks + fordblks");
	CHECK(mi.keepcost <= mi.fordblks && mi.fsmblks <= mi.fordblks, "mallinfo2: parts");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	struct mallinfo old = mallinfo();
#pragma GCC diagnostic pop
	CHECK((size_t)old.arena == mi.arena, "mallinfo agrees with mallinfo2");
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	CHECK(malloc_info(0, f) == 0, "malloc_info(0) = 0");
	fclose(f);
	CHECK(buf && strncmp(buf, "<malloc version=\"1\">", 20) == 0 && strstr(buf, "</malloc>"),
	      "malloc_info writes the XML document");
	free(buf);
	CHECK(malloc_info(1, stdout) == EINVAL, "malloc_info(1) = EINVAL");
	malloc_trim(0);
	for (int i = 1; i < 200; i += 2)
		free(v[i]);
	CHECK(malloc_trim(0) >= 0, "malloc_trim after fragmentation");
}

static void
test_enomem_rlimit(void)
{
	struct rlimit old, lim;
	void *blocks[4096];
	int n = 0;

	getrlimit(RLIMIT_AS, &old);
	lim = old;
	lim.rlim_cur = 512UL << 20;
	if (setrlimit(RLIMIT_AS, &lim) != 0) {
		CHECK(0, "setrlimit(RLIMIT_AS)");
		return;
	}
	errno = 0;
	while (n < 4096) {
		void *p = malloc(1 << 20);
		if (!p)
			break;
		blocks[n++] = p;
	}
	CHECK(n < 4096 && errno == ENOMEM, "malloc fails with ENOMEM under RLIMIT_AS (%d MiB)", n);
	errno = 0;
	void *small = NULL;
	for (int i = 0; i < 100000 && (small = malloc(64)); i++)
		sink += (size_t)small;
	while (n > 0)
		free(blocks[--n]);
	void *p = malloc(10 << 20);
	CHECK(p != NULL, "malloc works again after freeing");
	free(p);
	setrlimit(RLIMIT_AS, &old);
}

/* Run fn in a child; expect it to die of SIGABRT with `msg` on stderr. */
static void
expect_abort(void (*fn)(void), const char *msg)
{
	int pipefd[2];
	char buf[512] = "";
	int status;
	pid_t pid;
	ssize_t n, len = 0;

	if (pipe(pipefd) != 0)
		return;
	pid = fork();
	if (pid == 0) {
		dup2(pipefd[1], 2);
		fn();
		_exit(0);
	}
	close(pipefd[1]);
	while ((n = read(pipefd[0], buf + len, sizeof(buf) - 1 - (size_t)len)) > 0)
		len += n;
	buf[len] = '\0';
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(buf, msg),
	      "aborts with \"%s\" (got status %#x, \"%s\")", msg, status, buf);
}

/* The compiler may delete a malloc/free pair it can see; route pointers
 * through a volatile slot so these really reach the allocator. */
static void *volatile opaque;

static void *
launder(void *p)
{
	opaque = p;
	return opaque;
}

static void
double_free_tcache(void)
{
	void *p = launder(malloc(40));
	free(launder(p));
	free(launder(p));
}

static void
double_free_fast(void)
{
	void *v[8], *p;
	for (int i = 0; i < 8; i++)
		v[i] = launder(malloc(40));
	p = launder(malloc(40));
	for (int i = 0; i < 7; i++)
		free(launder(v[i]));
	free(launder(p));
	free(launder(p));
}

static void
invalid_free(void)
{
	/* a fake chunk of size 0 inside a real one */
	volatile char *p = launder(malloc(100));
	for (int i = 0; i < 100; i++)
		p[i] = 0;
	free(launder((char *)p + 16));
}

static void
invalid_munmap(void)
{
	/* a fake mmap chunk whose mapping would not be page-aligned */
	volatile size_t *p = launder(malloc(300000));
	p[0] = 0;
	p[1] = 4096 | 2;
	free(launder((size_t *)p + 2));
}

int
main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* corruption checks first, from a simple heap: the messages are glibc's */
	expect_abort(double_free_tcache, "free(): double free detected in tcache 2");
	expect_abort(double_free_fast, "double free or corruption (fasttop)");
	expect_abort(invalid_free, "free(): invalid pointer");
	expect_abort(invalid_munmap, "munmap_chunk(): invalid pointer");
	test_malloc_basic();
	test_too_large();
	test_calloc();
	test_realloc();
	test_free_errno();
	test_mmap();
	test_memalign();
	test_mallopt_info();
	test_enomem_rlimit();
	return harness_exit();
}
