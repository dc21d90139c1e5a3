/* SPDX-License-Identifier: MIT */
/*
 * large.c - mmap chunks (see large.h).
 *
 * Runs inside malloc and free without the heap lock: no allocation, only
 * atomic updates of the shared counters.
 */
#include "config.h"

#include <errno.h>
#include <sys/mman.h>

#include "large.h"
#include "log.h"
#include "observe.h"
#include "os.h"
#include "tune.h"

static void
atomic_max_int(int *p, int v)
{
	int cur = __atomic_load_n(p, __ATOMIC_RELAXED);

	while (cur < v && !__atomic_compare_exchange_n(p, &cur, v, true, __ATOMIC_RELAXED,
						       __ATOMIC_RELAXED))
		;
}

static void
atomic_max_size(size_t *p, size_t v)
{
	size_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);

	while (cur < v && !__atomic_compare_exchange_n(p, &cur, v, true, __ATOMIC_RELAXED,
						       __ATOMIC_RELAXED))
		;
}

void *
hp_large_alloc(size_t nb, size_t pagesize, int extra_flags)
{
	size_t size = (nb + HP_SIZE_SZ + pagesize - 1) & ~(pagesize - 1);
	struct hp_chunk *p;
	char *mm;

	if (size <= nb) /* wrapped around */
		return NULL;
	mm = hp_os_map(size, extra_flags);
	if (mm == HP_MAP_FAILED)
		return NULL;
	if (!(extra_flags & MAP_HUGETLB))
		hp_tune_madvise_thp(mm, size);
	p = (struct hp_chunk *)mm;
	p->prev_size = 0;
	p->size = size | HP_IS_MMAPPED;
	int n = __atomic_add_fetch(&hp_mp.n_mmaps, 1, __ATOMIC_RELAXED);
	atomic_max_int(&hp_mp.max_n_mmaps, n);
	size_t sum = __atomic_add_fetch(&hp_mp.mmapped_mem, size, __ATOMIC_RELAXED);
	atomic_max_size(&hp_mp.max_mmapped_mem, sum);
	HP_OBSERVE(map, (uintptr_t)mm, size, true);
	return hp_chunk2mem(p);
}

/* glibc: the mapping must be page-aligned and mem's page offset a power of
 * two (0 counts: powerof2(0) is true in glibc's definition). */
static bool
valid_mapping(uintptr_t block, size_t total, uintptr_t mem)
{
	uintptr_t ps = hp_mp.pagesize, off = mem & (ps - 1);

	return ((block | total) & (ps - 1)) == 0 && (off & (off - 1)) == 0;
}

void
hp_large_free(struct hp_chunk *p)
{
	size_t size = hp_chunksize(p);

	/* The dynamic threshold (malloc.c __libc_free): compares the size
	 * word with its M bit, so exactly 32 MiB does not raise it. */
	if (!hp_mp.no_dyn_threshold && p->size > hp_mp.mmap_threshold &&
	    p->size <= HP_DEFAULT_MMAP_THRESHOLD_MAX) {
		hp_mp.mmap_threshold = size;
		hp_mp.trim_threshold = 2 * hp_mp.mmap_threshold;
	}
	hp_large_unmap(p);
}

void
hp_large_unmap(struct hp_chunk *p)
{
	size_t size = hp_chunksize(p);
	uintptr_t block = (uintptr_t)p - p->prev_size;
	size_t total = p->prev_size + size;

	if (!valid_mapping(block, total, (uintptr_t)hp_chunk2mem(p)))
		hp_corrupt("munmap_chunk(): invalid pointer");
	__atomic_sub_fetch(&hp_mp.n_mmaps, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&hp_mp.mmapped_mem, total, __ATOMIC_RELAXED);
	hp_os_unmap((void *)block, total);
	HP_OBSERVE(unmap, block, total, true);
}

struct hp_chunk *
hp_large_remap(struct hp_chunk *p, size_t nb)
{
	size_t ps = hp_mp.pagesize, offset = p->prev_size, size = hp_chunksize(p);
	uintptr_t block = (uintptr_t)p - offset;
	size_t total = offset + size, new_size;
	char *cp;

	if (!valid_mapping(block, total, (uintptr_t)hp_chunk2mem(p)))
		hp_corrupt("mremap_chunk(): invalid pointer");
	new_size = (nb + offset + HP_SIZE_SZ + ps - 1) & ~(ps - 1);
	if (total == new_size)
		return p;
	cp = hp_os_remap((void *)block, total, new_size);
	if (cp == HP_MAP_FAILED)
		return NULL;
	hp_tune_madvise_thp(cp, new_size);
	p = (struct hp_chunk *)(cp + offset);
	p->size = (new_size - offset) | HP_IS_MMAPPED;
	size_t sum = __atomic_add_fetch(&hp_mp.mmapped_mem, new_size - size - offset,
					__ATOMIC_RELAXED);
	atomic_max_size(&hp_mp.max_mmapped_mem, sum);
	HP_OBSERVE(unmap, block, total, true);
	HP_OBSERVE(map, (uintptr_t)cp, new_size, true);
	return p;
}
