/* SPDX-License-Identifier: MIT */
/* occupancy.c - events into the heap model (see occupancy.h). */
#include "config.h"

#include "occupancy.h"


static void
touch(const struct occ_hooks *h, uint64_t addr)
{
	if (h && h->touch)
		h->touch(h->arg, addr);
}

static bool
is_range(const struct chunk_entry *e)
{
	return e->kind == HM_RANGE_CACHED || e->kind == HM_RANGE_ALLOCATOR;
}

uint8_t
occ_fate_cache(int fate)
{
	return fate == HP_FATE_TCACHE ? HM_TCACHE : fate == HP_FATE_FASTBIN ? HM_FASTBIN : 0;
}

void
occ_end(struct hm *m, struct chunk_entry *e, const struct occ_hooks *h)
{
	if (e->kind == HM_CHUNK && h && h->vacated)
		h->vacated(h->arg, e);
	if (e->kind != 0)
		hm_vacate(m, e);
	e->kind = 0;
	chunkmap_remove(m->map, e);
}

/* A cached chunk of the program's is reused or merged into free space. */
static void
release(struct hm *m, struct chunk_entry *e, const struct occ_hooks *h)
{
	if (h && h->released)
		h->released(h->arg, e);
	occ_end(m, e, h);
}

struct chunk_entry *
occ_reuse(struct hm *m, uint64_t addr, const struct occ_hooks *h)
{
	struct chunk_entry *e = chunkmap_slot(m->map, addr);

	if (!e)
		return NULL;
	touch(h, e->addr);
	if (is_range(e))
		occ_end(m, e, h); /* free space the allocator cached, handed out */
	else if (e->cached)
		release(m, e, h); /* reused */
	else
		return e;
	return NULL;
}

bool
occ_place(struct hm *m, struct chunk_entry *e)
{
	e->kind = HM_CHUNK;
	if (hm_occupy(m, e))
		return true;
	e->kind = 0;
	return false;
}

void
occ_cache(struct hm *m, struct chunk_entry *e, uint8_t cache)
{
	if (e->kind != 0)
		hm_to_cached(m, e, cache);
	e->cached = cache;
}

/* The allocator changed the state of a range itself. A cached chunk of the
 * program's is reused or merged into free space, or moves from a fastbin
 * into a tcache or back; free space goes into or out of a cache; the
 * allocator takes a range for its own bookkeeping. */
static void
state(struct hm *m, uint64_t addr, uint64_t bytes, int64_t value, const struct occ_hooks *h)
{
	struct chunk_entry *e = chunkmap_slot(m->map, addr);
	uint8_t cache = value == HP_STATE_CACHED ? HM_TCACHE : value == HP_STATE_FASTBIN ? HM_FASTBIN : 0;

	if (e && e->addr == addr && e->cached && !is_range(e)) {
		if (value == HP_STATE_FREE) {
			touch(h, addr);
			release(m, e, h);
		} else if (cache && cache != e->cached) {
			touch(h, addr);
			occ_cache(m, e, cache);
		}
	} else if (e && e->addr == addr && is_range(e)) {
		touch(h, addr);
		if (value == HP_STATE_FREE)
			occ_end(m, e, h);
		else if (cache)
			hm_to_cached(m, e, cache);
	} else if (!e && value != HP_STATE_FREE) {
		touch(h, addr);
		e = chunkmap_add(m->map, addr);
		e->chunk_bytes = bytes;
		e->kind = cache ? HM_RANGE_CACHED : HM_RANGE_ALLOCATOR;
		e->cached = cache;
		if (!hm_occupy(m, e))
			chunkmap_remove(m->map, e);
	}
}

/* The live chunk of the program's at addr, or NULL. */
static struct chunk_entry *
live_at(struct hm *m, uint64_t addr)
{
	struct chunk_entry *e = chunkmap_slot(m->map, addr);

	return e && e->addr == addr && !e->cached && !is_range(e) ? e : NULL;
}

void
occ_heap_event(struct hm *m, int kind, uint64_t addr, uint64_t bytes, int64_t value,
	       const struct occ_hooks *h)
{
	struct chunk_entry *e;

	switch (kind) {
	case HP_HEV_BRK: /* addr: the old break, bytes: the new one */
		hm_brk(m, addr, bytes);
		break;
	case HP_HEV_MAP:
		if (value == HP_MAP_HEAP)
			hm_map_heap(m, addr, bytes);
		break;
	case HP_HEV_UNMAP:
		if (value == HP_MAP_HEAP)
			hm_unmap_heap(m, addr, bytes);
		break;
	case HP_HEV_MADVISE:
		hm_madvise(m, addr, bytes);
		break;
	case HP_HEV_STATE:
		state(m, addr, bytes, value, h);
		break;
	case HP_HEV_RESIZE: /* in place: bytes, the new chunk bytes */
		if ((e = live_at(m, addr)) != NULL) {
			touch(h, addr);
			if (e->kind == HM_CHUNK) {
				hm_resize(m, e, bytes);
				break;
			}
			if (e->backing == HP_BACKING_MMAP) { /* mremap */
				hm_mmap(m, e->chunk_bytes, false);
				hm_mmap(m, bytes, true);
			}
			e->chunk_bytes = bytes;
		}
		break;
	case HP_HEV_INHERITED_FREE:
		/* a forked child freed a chunk its parent allocated (value: the
		 * fate): the replay has the parent's heap, the collector of a
		 * full recording none */
		if ((e = live_at(m, addr)) != NULL && e->kind == HM_CHUNK) {
			touch(h, addr);
			if (occ_fate_cache((int)value))
				occ_cache(m, e, occ_fate_cache((int)value));
			else
				occ_end(m, e, h);
		}
		break;
	default:
		break;
	}
}
