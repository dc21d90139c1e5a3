/* SPDX-License-Identifier: MIT */
/*
 * selfmem.c - heapprof's own memory (see selfmem.h).
 *
 * Size classes (16-byte steps to 128, then four per doubling up to 64 KiB)
 * carved from 1 MiB mappings, each class a LIFO free list; larger or more
 * strictly aligned blocks get a mapping of their own. Never touches the
 * tracked heap, never reports to the observer. One futex lock of its own.
 */
#include "config.h"

#include <string.h>

#include "selfmem.h"
#include "lock.h"
#include "os.h"

#define SLAB_BYTES ((size_t)1 << 20)
#define MAX_CLASS_BYTES ((size_t)64 * 1024)
#define NCLASSES 44 /* the last class holds MAX_CLASS_BYTES + a header */

struct free_block {
	struct free_block *next;
};

static struct hp_mutex selfmem_lock = HP_MUTEX_INIT;
static struct free_block *free_lists[NCLASSES];
static char *slab_cur, *slab_end;
static size_t mapped_bytes;

/* Chunk sizes (header included) of the classes. */
static size_t
class_size(unsigned c)
{
	if (c < 8)
		return 32 + 16 * (size_t)c; /* 32 .. 144 */
	unsigned k = c - 8;
	size_t base = (size_t)128 << (k / 4);
	return base + (base / 4) * (k % 4 + 1) + 16; /* 176, 208, 240, 272, 336 .. */
}

static unsigned
class_of(size_t chunk)
{
	unsigned c = 0;

	while (c < NCLASSES && class_size(c) < chunk)
		c++;
	return c;
}

static void *
direct_alloc(size_t n, size_t align)
{
	size_t ps = 4096, len = (n + align + HP_CHUNK_HDR_SZ + ps - 1) & ~(ps - 1);
	char *base = hp_os_map(len, 0);
	struct hp_chunk *c;
	uintptr_t mem;

	if (base == HP_MAP_FAILED)
		return NULL;
	mem = ((uintptr_t)base + HP_CHUNK_HDR_SZ + align - 1) & ~(uintptr_t)(align - 1);
	c = hp_mem2chunk((void *)mem);
	c->prev_size = (uintptr_t)c - (uintptr_t)base;
	c->size = (len - c->prev_size) | HP_SELFMEM_BITS;
	__atomic_add_fetch(&mapped_bytes, len, __ATOMIC_RELAXED);
	return (void *)mem;
}

void *
hp_selfmem_alloc(size_t n, size_t align, bool zero)
{
	size_t chunk;
	unsigned c;
	struct hp_chunk *h;
	void *mem;

	if (n > PTRDIFF_MAX - ((size_t)1 << 20))
		return NULL;
	if (align < 16)
		align = 16;
	chunk = (n + HP_CHUNK_HDR_SZ + 15) & ~(size_t)15;
	if (align > 16 || chunk > MAX_CLASS_BYTES + HP_CHUNK_HDR_SZ) {
		mem = direct_alloc(n, align);
		return mem; /* fresh mappings are zero */
	}
	c = class_of(chunk);
	chunk = class_size(c);

	hp_mutex_lock(&selfmem_lock);
	if (free_lists[c]) {
		struct free_block *b = free_lists[c];
		free_lists[c] = b->next;
		mem = b;
		hp_mutex_unlock(&selfmem_lock);
		if (zero)
			memset(mem, 0, chunk - HP_CHUNK_HDR_SZ);
		return mem;
	}
	if ((size_t)(slab_end - slab_cur) < chunk) {
		char *s = hp_os_map(SLAB_BYTES, 0);
		if (s == HP_MAP_FAILED) {
			hp_mutex_unlock(&selfmem_lock);
			return NULL;
		}
		mapped_bytes += SLAB_BYTES;
		slab_cur = s;
		slab_end = s + SLAB_BYTES;
	}
	h = (struct hp_chunk *)slab_cur;
	slab_cur += chunk;
	hp_mutex_unlock(&selfmem_lock);
	h->prev_size = 0;
	h->size = chunk | HP_SELFMEM_BITS;
	return hp_chunk2mem(h); /* from a fresh slab: zero */
}

static bool
is_direct(const struct hp_chunk *h)
{
	return hp_chunksize(h) > MAX_CLASS_BYTES + HP_CHUNK_HDR_SZ || h->prev_size != 0;
}

void
hp_selfmem_free(void *mem)
{
	struct hp_chunk *h = hp_mem2chunk(mem);

	if (is_direct(h)) {
		size_t len = h->prev_size + hp_chunksize(h);
		__atomic_sub_fetch(&mapped_bytes, len, __ATOMIC_RELAXED);
		hp_os_unmap((char *)h - h->prev_size, len);
		return;
	}
	unsigned c = class_of(hp_chunksize(h));
	struct free_block *b = mem;

	hp_mutex_lock(&selfmem_lock);
	b->next = free_lists[c];
	free_lists[c] = b;
	hp_mutex_unlock(&selfmem_lock);
}

size_t
hp_selfmem_usable(const void *mem)
{
	const struct hp_chunk *h = hp_mem2chunk(mem);

	return hp_chunksize(h) - HP_CHUNK_HDR_SZ;
}

void *
hp_selfmem_realloc(void *mem, size_t n)
{
	size_t have = hp_selfmem_usable(mem);
	void *p;

	if (n <= have)
		return mem;
	p = hp_selfmem_alloc(n, 16, false);
	if (p == NULL)
		return NULL;
	memcpy(p, mem, have);
	hp_selfmem_free(mem);
	return p;
}

size_t
hp_selfmem_mapped_bytes(void)
{
	return __atomic_load_n(&mapped_bytes, __ATOMIC_RELAXED);
}

void
hp_selfmem_fork_prepare(void)
{
	hp_mutex_lock(&selfmem_lock);
}

void
hp_selfmem_fork_parent(void)
{
	hp_mutex_unlock(&selfmem_lock);
}

void
hp_selfmem_fork_child(void)
{
	hp_mutex_reset(&selfmem_lock);
}
