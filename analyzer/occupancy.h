/* SPDX-License-Identifier: MIT */
/*
 * occupancy.h - the one translation of a recording's events into the heap
 * model (heapmodel.h): what each event does to the entries of its chunkmap
 * (m->map) and to the bytes they occupy. The collector applies the events
 * as they arrive (collect.c), the reports the rows the collector wrote of
 * them (replay.c); both through these functions, so the figures the
 * collector stores (heap_summary) are those a report finds at the end of a
 * process (selfcheck.h checks it on every recording the suites make).
 *
 * The events are a chunk's life (allocated; freed into a cache, where it
 * still occupies the heap, or into free space) and the heap_event table's
 * kinds, with its codes: a state event's value is 0 free, 1 in a tcache,
 * 2 the allocator's own, 3 in a fastbin (hp_ev_state.state); a map
 * event's is the mapping's kind, 2 a heap.
 *
 * A caller that keeps more about an entry than the model (the collector:
 * rows and snapshots) passes hooks; the replay passes none.
 */
#ifndef HP_OCCUPANCY_H
#define HP_OCCUPANCY_H

#include <stdbool.h>
#include <stdint.h>

#include "chunkmap.h"
#include "codes.h" /* heap_event kinds (HP_HEV_*), states, fates, map kinds */
#include "heapmodel.h"

struct occ_hooks {
	/* before the entry at addr changes or goes, or one is added there */
	void (*touch)(void *arg, uint64_t addr);
	/* a freed chunk of the program's that a cache held stops occupying
	 * the heap (reused, or merged into free space), before it goes */
	void (*released)(void *arg, struct chunk_entry *e);
	/* a chunk of the program's stops occupying the heap, before it goes */
	void (*vacated)(void *arg, struct chunk_entry *e);
	void *arg;
};

/* The cache a chunk's fate (chunk.fate: 1 tcache, 2 fastbin) puts it in:
 * HM_TCACHE or HM_FASTBIN; 0 for any other fate (free space). */
uint8_t occ_fate_cache(int fate);

/* A chunk is allocated at addr: what occupied its slot ends first if it
 * was a cached chunk (reused) or a range the allocator held (handed out).
 * Returns the occupant left, a live chunk (never freed as far as the
 * caller saw, or one that overlaps addr), for the caller to end or keep;
 * NULL if none. h may be NULL. */
struct chunk_entry *occ_reuse(struct hm *m, uint64_t addr, const struct occ_hooks *h);

/* The caller added e to the map (addr, chunk_bytes): a chunk of the
 * program's in a heap, it occupies it (kind HM_CHUNK). Returns false,
 * with kind 0, if it is in no heap. */
bool occ_place(struct hm *m, struct chunk_entry *e);

/* A live chunk of the program's was freed into a cache (occ_fate_cache):
 * it still occupies the heap. */
void occ_cache(struct hm *m, struct chunk_entry *e, uint8_t cache);

/* e stops occupying anything and leaves the map. */
void occ_end(struct hm *m, struct chunk_entry *e, const struct occ_hooks *h);

/* One heap_event: of `kind`, at addr, with its bytes and value (0 if it
 * has none). h may be NULL. */
void occ_heap_event(struct hm *m, int kind, uint64_t addr, uint64_t bytes, int64_t value,
		    const struct occ_hooks *h);

#endif
