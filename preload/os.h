/* SPDX-License-Identifier: MIT */
/*
 * os.h - the allocator's system calls for memory: the break, mappings,
 * protection, madvise, and the reads of start-up (random bytes, a file).
 * Others are made where they are needed, with syscall(): the futex of
 * lock.c, the tid and tgkill of tarena.c, tune.c's look at the hugepage
 * sizes, init.c's yield, and the recorder's (record.c, spool.c, unwind.c,
 * exits.c), which are no part of the allocator.
 *
 * The break is moved through libc's sbrk(), exactly as glibc's MORECORE
 * does, so that libc's cached break (__curbrk) stays right for programs
 * that call sbrk themselves. mmap and munmap are made with syscall(): the
 * library exports its own mmap and munmap (progmap.c, which record the
 * program's), and the allocator's mappings must not pass through them;
 * mremap and the rest go through libc, which never allocates. Test builds
 * (HP_TEST_HOOKS) can make the n-th sbrk or mmap fail to reach every
 * out-of-memory path.
 */
#ifndef HP_OS_H
#define HP_OS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HP_MAP_FAILED ((void *)-1)

/* sbrk(incr); NULL when the break could not move (glibc's MORECORE_FAILURE).
 * Lock: heap lock. Allocates: no. AS-safe: yes. */
void *hp_os_sbrk(intptr_t incr);

/* The kernel's mmap and munmap, as glibc's (MAP_FAILED/-1 and errno on
 * failure). Lock: none. Allocates: no. AS-safe: yes. */
void *hp_os_mmap(void *addr, size_t len, int prot, int flags, int fd, long off);
int hp_os_munmap(void *addr, size_t len);

/* Anonymous private read-write mapping; HP_MAP_FAILED on failure.
 * extra_flags is or-ed into MAP_PRIVATE|MAP_ANONYMOUS (MAP_HUGETLB...).
 * Lock: none. Allocates: no. AS-safe: yes. */
void *hp_os_map(size_t len, int extra_flags);

/* Reserve len bytes of address space (PROT_NONE), at hint if possible;
 * extra_flags as for hp_os_map (MAP_NORESERVE, MAP_HUGETLB...).
 * HP_MAP_FAILED on failure. Lock: none. Allocates: no. AS-safe: yes. */
void *hp_os_reserve(void *hint, size_t len, int extra_flags);

/* Make [addr, addr+len) read-write (0) or fail (-1). */
int hp_os_protect_rw(void *addr, size_t len);

/* Replace [addr, addr+len) with a fresh PROT_NONE mapping (MAP_FIXED);
 * 0 or -1. */
int hp_os_decommit(void *addr, size_t len);

/* munmap; errno is preserved. Lock: none. Allocates: no. AS-safe: yes. */
int hp_os_unmap(void *addr, size_t len);

/* mremap with MREMAP_MAYMOVE; HP_MAP_FAILED on failure.
 * Lock: none. Allocates: no. AS-safe: yes. */
void *hp_os_remap(void *addr, size_t old_len, size_t new_len);

/* madvise(addr, len, advice); returns its result.
 * Lock: none. Allocates: no. AS-safe: yes. */
int hp_os_madvise(void *addr, size_t len, int advice);

/* Fill buf with random bytes (getrandom, GRND_NONBLOCK); false on failure. */
bool hp_os_random(void *buf, size_t len);

/* Read a whole small file (procfs, sysfs) into buf; returns bytes read or
 * -1. Raw syscalls, no errno change visible to the program. */
long hp_os_read_file(const char *path, char *buf, size_t cap);

#ifdef HP_TEST_HOOKS
/* Test builds: fail the n-th following sbrk (n >= 1) / mmap, every one
 * while negative; 0 disables. */
extern long hp_os_fail_sbrk_in;
extern long hp_os_fail_map_in;
#endif

#endif
