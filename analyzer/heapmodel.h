/* SPDX-License-Identifier: MIT */
/*
 * heapmodel.h - which bytes of a process's heaps are occupied, kept up to
 * date event by event: by the collector while it loads a recording (for
 * the figures it stores and prints at the end) and by the reports when
 * they replay one (replay.c).
 *
 * Per heap (the brk heap, each mapped heap of a thread arena) a bitmap of
 * occupied 16-byte granules with a two-level summary, so the highest
 * occupied chunk (the top pin) is found fast when the one above it goes;
 * the chunks themselves are in a chunkmap owned by the caller. Untrimmable
 * bytes are known after every event:
 *   untrimmable = (end of the top pin - heap start) - occupied bytes.
 */
#ifndef HP_HEAPMODEL_H
#define HP_HEAPMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkmap.h"

/* chunk_entry.kind */
enum { HM_CHUNK = 1, HM_RANGE_CACHED, HM_RANGE_OWN };
/* heap kinds */
enum { HM_BRK = 1, HM_MAPPED = 3 };

struct hm_occ {
	size_t words;
	uint64_t *l0, *l1, *l2;
};

struct hm_heap {
	uint64_t start, end;
	uint8_t kind;
	struct hm_occ occ;
	uint64_t occupied;
	size_t top;       /* highest occupied granule + 1; 0: none */
	uint64_t top_end; /* end of the chunk there */
	uint64_t untrim;
};

struct hm {
	struct chunkmap *map; /* the caller's */
	struct hm_heap *heaps;
	size_t nheaps;
	size_t last_heap;
	uint64_t live, cached, own, mmap;
	uint64_t live_n, cached_n, mmap_n;
	uint64_t extent, untrim;
	bool has_brk;
	size_t brk_heap;
	/* over time, as hm_track saw it */
	uint64_t worst_untrim, peak_extent;
	int64_t worst_ns, peak_extent_ns;
};

void hm_init(struct hm *m, struct chunkmap *map);
void hm_free(struct hm *m);

/* d: a copy of m (heaps and figures) over `map`, m's chunkmap cloned. */
void hm_clone(struct hm *d, const struct hm *m, struct chunkmap *map);

/* A heap as it was (a snapshot's): [start, end) of kind HM_BRK or
 * HM_MAPPED, before any chunk is placed. */
void hm_restore_heap(struct hm *m, uint64_t start, uint64_t end, uint8_t kind);

/* The heap an address is in (or the closest below it), or NULL. */
struct hm_heap *hm_heap_of(struct hm *m, uint64_t addr);

/* Heap shape: the break moved; a heap's memory was mapped or unmapped. */
void hm_brk(struct hm *m, uint64_t old_brk, uint64_t new_brk);
void hm_map_heap(struct hm *m, uint64_t addr, uint64_t len);
void hm_unmap_heap(struct hm *m, uint64_t addr, uint64_t len);

/* The caller added `c` to the map (addr, chunk_bytes, kind, cached set):
 * count it as occupying its heap. Returns false if it is in no heap. */
bool hm_occupy(struct hm *m, struct chunk_entry *c);
/* It no longer occupies anything; the caller removes it from the map
 * after this. */
void hm_vacate(struct hm *m, struct chunk_entry *c);
/* A live chunk was freed into a cache: still occupied. */
void hm_to_cached(struct hm *m, struct chunk_entry *c);
/* A live chunk changed size in place. */
void hm_resize(struct hm *m, struct chunk_entry *c, uint64_t new_bytes);
/* mmap chunks: only counted. */
void hm_mmap(struct hm *m, uint64_t bytes, bool on);

/* The end of what occupies granule g of h (its chunk's end). */
uint64_t hm_entry_end(struct hm *m, struct hm_heap *h, size_t g);
/* Highest occupied granule below g, lowest at or above g, or -1. */
long long hm_prev(const struct hm_heap *h, size_t g);
long long hm_next(const struct hm_heap *h, size_t g);

/* The process starts at ns: a figure that never rises above zero has its
 * peak there. */
void hm_start(struct hm *m, int64_t ns);

/* After an event at time ns: note the worst untrimmable bytes and the
 * peak extent so far (the first instant of each). */
void hm_track(struct hm *m, int64_t ns);

/* Held from the kernel (extent and mmap chunks) beyond live bytes. */
uint64_t hm_retained(const struct hm *m);

/* Free bytes above the top pin, over all heaps. */
uint64_t hm_top_free(const struct hm *m);

/* Bytes malloc_trim(0) can give back of a free range [addr, addr + bytes)
 * that is one free chunk: its whole pages past the chunk's own header and
 * list pointers (glibc's mtrim). */
uint64_t hm_trim_range(uint64_t addr, uint64_t bytes);
/* Each hole of a heap (a free range below its top pin), lowest first. */
void hm_holes(struct hm *m, struct hm_heap *h, void (*fn)(void *arg, uint64_t addr,
							   uint64_t bytes), void *arg);
/* hm_trim_range over every hole of every heap. */
uint64_t hm_trim_reclaimable(struct hm *m);

/* The top pin of the heap with the most untrimmable bytes, or NULL. */
struct chunk_entry *hm_top_pin(struct hm *m);

#define HM_GRAIN 16

#endif
