/* SPDX-License-Identifier: MIT */
/*
 * os-sim.c - os.h for the allocator replayed inside the analyzer (see
 * os-sim.h): a simulated break in a reserved region, the analyzer's own
 * mappings for the rest. Runs in a forked child of `heapprof advise` that
 * holds one candidate's allocator; never in libheapprof.so.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <unistd.h>

#include "os.h"
#include "os-sim.h"

#define SIM_ALIGN ((uintptr_t)1 << 30)

static char *start, *cur, *limit;

int
hp_os_sim_start(uintptr_t rec_break, size_t cap, intptr_t *delta)
{
	char *r = mmap(NULL, cap + SIM_ALIGN, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t base;

	if (r == MAP_FAILED)
		return -1;
	base = ((uintptr_t)r + SIM_ALIGN - 1) & ~(SIM_ALIGN - 1);
	start = cur = (char *)(base + (rec_break & (SIM_ALIGN - 1)));
	limit = r + cap + SIM_ALIGN;
	*delta = (intptr_t)((uintptr_t)start - rec_break);
	return 0;
}

uintptr_t
hp_os_sim_brk(void)
{
	return (uintptr_t)cur;
}

void *
hp_os_sbrk(intptr_t incr)
{
	char *old = cur;

	if (start == NULL || (incr > 0 && incr > limit - cur) || (incr < 0 && -incr > cur - start)) {
		errno = ENOMEM;
		return NULL;
	}
	cur += incr;
	if (incr < 0) {
		/* The kernel drops the pages above a lowered break: so do we,
		 * and the analyzer's memory stays what the heap's headers use. */
		uintptr_t from = ((uintptr_t)cur + 4095) & ~(uintptr_t)4095;
		if (from < (uintptr_t)old)
			madvise((void *)from, (uintptr_t)old - from, MADV_DONTNEED);
	}
	return old;
}

void *
hp_os_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

int
hp_os_munmap(void *addr, size_t len)
{
	return munmap(addr, len);
}

/* MAP_NORESERVE, but not for huge pages (glibc.malloc.hugetlb=2): with it
 * a MAP_HUGETLB mapping succeeds with no huge page to back it and the
 * first touch is SIGBUS, where the recorded program's mmap (os.c, without
 * it) failed and glibc went on with small pages. */
static int
noreserve(int extra_flags)
{
	return extra_flags & MAP_HUGETLB ? 0 : MAP_NORESERVE;
}

void *
hp_os_map(size_t len, int extra_flags)
{
	return mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | noreserve(extra_flags) | extra_flags, -1, 0);
}

void *
hp_os_reserve(void *hint, size_t len, int extra_flags)
{
	return mmap(hint, len, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | noreserve(extra_flags) | extra_flags, -1, 0);
}

int
hp_os_protect_rw(void *addr, size_t len)
{
	return mprotect(addr, len, PROT_READ | PROT_WRITE);
}

int
hp_os_decommit(void *addr, size_t len)
{
	void *p = mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	return p == MAP_FAILED ? -1 : 0;
}

int
hp_os_unmap(void *addr, size_t len)
{
	int saved = errno;
	int r = munmap(addr, len);

	errno = saved;
	return r;
}

void *
hp_os_remap(void *addr, size_t old_len, size_t new_len)
{
	return mremap(addr, old_len, new_len, MREMAP_MAYMOVE);
}

int
hp_os_madvise(void *addr, size_t len, int advice)
{
	/* malloc_trim's MADV_DONTNEED on the simulated break, or a thread
	 * heap's: the analyzer's memory, given back as the program's was. */
	return madvise(addr, len, advice);
}

bool
hp_os_random(void *buf, size_t len)
{
	return getrandom(buf, len, GRND_NONBLOCK) == (ssize_t)len;
}

long
hp_os_read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	if (fd < 0)
		return -1;
	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	return (long)n;
}
