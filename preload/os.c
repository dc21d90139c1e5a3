/* SPDX-License-Identifier: MIT */
/*
 * os.c - the allocator's system calls (see os.h).
 *
 * Runs inside malloc: no stdio, no allocation. errno is set the way glibc's
 * own calls set it (sbrk and mmap report ENOMEM through errno even when
 * malloc then succeeds another way, as glibc's do).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "os.h"

#ifdef HP_TEST_HOOKS
long hp_os_fail_sbrk_in;
long hp_os_fail_map_in;

static bool
inject(long *counter)
{
	if (*counter < 0 || (*counter > 0 && --*counter == 0)) {
		errno = ENOMEM;
		return true;
	}
	return false;
}
#else
#define inject(counter) false
#endif

void *
hp_os_sbrk(intptr_t incr)
{
	void *p;

	if (incr != 0 && inject(&hp_os_fail_sbrk_in))
		return NULL;
	p = sbrk(incr);
	return p == (void *)-1 ? NULL : p;
}

void *
hp_os_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
	return (void *)syscall(SYS_mmap, addr, len, (long)prot, (long)flags, (long)fd, off);
}

int
hp_os_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

void *
hp_os_map(size_t len, int extra_flags)
{
	if (inject(&hp_os_fail_map_in))
		return HP_MAP_FAILED;
	return hp_os_mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
}

void *
hp_os_reserve(void *hint, size_t len, int extra_flags)
{
	if (inject(&hp_os_fail_map_in))
		return HP_MAP_FAILED;
	return hp_os_mmap(hint, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
}

int
hp_os_protect_rw(void *addr, size_t len)
{
	return mprotect(addr, len, PROT_READ | PROT_WRITE);
}

int
hp_os_decommit(void *addr, size_t len)
{
	void *p = hp_os_mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	return p == MAP_FAILED ? -1 : 0;
}

int
hp_os_unmap(void *addr, size_t len)
{
	int saved = errno;
	int r = hp_os_munmap(addr, len);

	errno = saved;
	return r;
}

void *
hp_os_remap(void *addr, size_t old_len, size_t new_len)
{
	if (inject(&hp_os_fail_map_in))
		return HP_MAP_FAILED;
	return mremap(addr, old_len, new_len, MREMAP_MAYMOVE);
}

int
hp_os_madvise(void *addr, size_t len, int advice)
{
	return madvise(addr, len, advice);
}

bool
hp_os_random(void *buf, size_t len)
{
	int saved = errno;
	long r = syscall(SYS_getrandom, buf, len, GRND_NONBLOCK);

	errno = saved;
	return r == (long)len;
}

long
hp_os_read_file(const char *path, char *buf, size_t cap)
{
	int saved = errno;
	long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	if (fd < 0) {
		errno = saved;
		return -1;
	}
	while (n < cap) {
		long r = syscall(SYS_read, fd, buf + n, cap - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	syscall(SYS_close, fd);
	errno = saved;
	return (long)n;
}
