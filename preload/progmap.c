/* SPDX-License-Identifier: MIT */
/*
 * progmap.c - the program's own mappings: mmap, mmap64 and munmap,
 * exported, do what glibc's do (the kernel's, through os.c) and tell the
 * observer of the anonymous memory the program maps itself and of what it
 * unmaps. That is where small-object allocators keep their objects, out of
 * the heap (CPython's pymalloc arenas). What heapprof maps for itself (its
 * guard is up, or it calls os.c directly) is not told. No allocation, no
 * lock; errno is the kernel's answer alone.
 *
 * Built with 32-bit off_t names: with _FILE_OFFSET_BITS=64 <sys/mman.h>
 * would make the definition of mmap one of mmap64.
 */
#undef _FILE_OFFSET_BITS
#include "config.h"

#include <errno.h>
#include <libunwind.h>
#include <sys/mman.h>
#include <sys/types.h>

#include "observe.h"
#include "os.h"
#include "tcache.h"
#include "thread.h"

#define EXPORT __attribute__((visibility("default")))

/* Tell the observer, with the stack walked from the exported function's
 * frame (a macro, as REPORT_ALLOC in exports.c). */
#define REPORT_PROGRAM_MAP(addr_, len_, on_)                                   \
	do {                                                                   \
		const struct hp_observer *o_ = hp_observer;                    \
		if (__builtin_expect(o_ != NULL, 0) && o_->program_map &&      \
		    hp_self.guard == 0) {                                      \
			int saved_ = errno;                                    \
			unsigned cap_ = (on_) ? o_->stack_slots : 0;           \
			void *raw_[cap_ ? cap_ : 1];                           \
			int n_ = 0;                                            \
			if (cap_) {                                            \
				hp_self.guard++;                               \
				n_ = unw_backtrace(raw_, (int)cap_);           \
				hp_self.guard--;                               \
			}                                                      \
			o_->program_map((uintptr_t)(addr_), (len_), (on_), raw_, n_); \
			errno = saved_;                                        \
		}                                                              \
	} while (0)

/* Anonymous memory mapped anywhere (not MAP_FIXED over what exists). */
static bool
is_program_memory(void *p, int flags)
{
	return p != MAP_FAILED && (flags & MAP_ANONYMOUS) && !(flags & MAP_FIXED);
}

EXPORT void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = hp_os_mmap(addr, len, prot, flags, fd, (long)off);

	if (is_program_memory(p, flags))
		REPORT_PROGRAM_MAP(p, len, true);
	return p;
}

EXPORT void *
mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	void *p = hp_os_mmap(addr, len, prot, flags, fd, (long)off);

	if (is_program_memory(p, flags))
		REPORT_PROGRAM_MAP(p, len, true);
	return p;
}

EXPORT int
munmap(void *addr, size_t len)
{
	int r = hp_os_munmap(addr, len);

	if (r == 0)
		REPORT_PROGRAM_MAP(addr, len, false);
	return r;
}
