/* SPDX-License-Identifier: MIT */
/*
 * advise-model.c - the figures of a what-if replay (advise.h): a heap model
 * (heapmodel.h) fed with what occupies the heaps, as the collector feeds
 * its own while it loads a recording, so that a replay's extent,
 * untrimmable and retained bytes mean what the recording's do.
 * An entry's row_id holds the object (advise.h) whose chunk it is.
 */
#include "config.h"

#include <string.h>

#include "advise.h"
#include "util.h"

void
adv_model_init(struct adv_model *a, uint64_t heap_start, int64_t start_ns)
{
	memset(a, 0, sizeof(*a));
	a->map = chunkmap_new();
	hm_init(&a->m, a->map);
	hm_brk(&a->m, heap_start, heap_start);
	hm_start(&a->m, start_ns);
	a->now = start_ns;
}

void
adv_model_free(struct adv_model *a)
{
	hm_free(&a->m);
	chunkmap_free(a->map);
	a->map = NULL;
}

struct chunk_entry *
adv_model_at(struct adv_model *a, uint64_t addr)
{
	struct chunk_entry *e = chunkmap_slot(a->map, addr);

	return e && e->addr == addr ? e : NULL;
}

void
adv_model_occupy(struct adv_model *a, uint64_t addr, uint64_t bytes, uint32_t object,
		 uint8_t cached)
{
	struct chunk_entry *e = chunkmap_slot(a->map, addr);

	/* whatever the allocator had there (free space it cached, handed out
	 * now) stops occupying it first */
	if (e)
		adv_model_vacate(a, e->addr);
	e = chunkmap_add(a->map, addr);
	e->chunk_bytes = bytes;
	e->row_id = object;
	e->cached = cached;
	e->kind = object ? HM_CHUNK : cached ? HM_RANGE_CACHED : HM_RANGE_ALLOCATOR;
	if (!hm_occupy(&a->m, e))
		chunkmap_remove(a->map, e);
}

void
adv_model_vacate(struct adv_model *a, uint64_t addr)
{
	struct chunk_entry *e = adv_model_at(a, addr);

	if (e == NULL)
		return;
	hm_vacate(&a->m, e);
	chunkmap_remove(a->map, e);
}

void
adv_model_cached(struct adv_model *a, uint64_t addr, uint8_t cached)
{
	struct chunk_entry *e = adv_model_at(a, addr);

	if (e)
		hm_to_cached(&a->m, e, cached);
}

void
adv_model_mmap(struct adv_model *a, uint64_t bytes, bool on)
{
	hm_mmap(&a->m, bytes, on);
}

void
adv_model_track(struct adv_model *a, int64_t ns)
{
	uint64_t rss = hm_resident(&a->m) + a->m.mmap;

	a->now = ns;
	hm_track(&a->m, ns);
	if (rss > a->peak_rss)
		a->peak_rss = rss;
}

void
adv_model_figures(struct adv_model *a, int64_t delta, struct adv_figs *f)
{
	struct chunk_entry *pin = hm_top_pin(&a->m);

	f->extent = a->m.extent;
	f->untrimmable = a->m.untrimmable;
	f->retained = hm_retained(&a->m);
	f->worst_untrimmable = a->m.worst_untrimmable;
	f->worst_ns = a->m.worst_ns;
	f->peak_extent = a->m.peak_extent;
	f->peak_rss = a->peak_rss;
	f->top_pin_addr = pin ? pin->addr - (uint64_t)delta : 0;
	f->top_pin_bytes = pin ? pin->chunk_bytes : 0;
	f->top_pin_object = pin && pin->kind == HM_CHUNK ? (uint32_t)pin->row_id : 0;
}
