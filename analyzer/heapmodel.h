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
 *
 * And per heap a bitmap of resident pages: a page is resident once a chunk
 * (or the header glibc writes just past one) has occupied it, until
 * malloc_trim madvises it away, the break drops below it or its heap is
 * unmapped. That is what the kernel holds for a program that writes the
 * memory it allocates; fresh pages of a grown heap stay out until used.
 *
 * The figures of the reports are functions of this state (hm_trim_*,
 * hm_top_free, hm_retained, hm_holes, hm_top_pin), so a model rebuilt
 * from anything (a replay, a snapshot) gives them alike.
 */
#ifndef HP_HEAPMODEL_H
#define HP_HEAPMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkmap.h"

/* chunk_entry.kind */
enum { HM_CHUNK = 1, HM_RANGE_CACHED, HM_RANGE_ALLOCATOR };
/* chunk_entry.cached: which cache holds it */
enum { HM_TCACHE = 1, HM_FASTBIN = 2 };
/* heap kinds */
enum { HM_BRK = 1, HM_MAPPED = 3 };

struct hm_occ {
	size_t words;
	uint64_t *l0, *l1, *l2;
	size_t bytes[3]; /* mapped, of l0, l1, l2 */
};

struct hm_heap {
	uint64_t start, end;
	uint8_t kind;
	struct hm_occ occ;
	uint64_t occupied;
	size_t top;       /* highest occupied granule + 1; 0: none */
	uint64_t top_end; /* end of the chunk there */
	uint64_t untrimmable;
	uint64_t *res;    /* resident pages, from the page of start */
	size_t res_words;
	uint64_t resident; /* pages */
};

struct hm {
	struct chunkmap *map; /* the caller's */
	struct hm_heap *heaps;
	size_t nheaps;
	size_t last_heap;
	uint64_t live, cached, allocator, mmap; /* allocator: its own ranges */
	uint64_t fastbin;      /* of cached: the bytes fastbins hold */
	uint64_t live_n, cached_n, mmap_n;
	uint64_t extent, untrimmable;
	bool has_brk;
	size_t brk_heap;
	/* over time, as hm_track saw it */
	uint64_t worst_untrimmable, peak_extent;
	int64_t worst_ns, peak_extent_ns;
	/* called before a word of a heap's resident bitmap changes, with its
	 * value then (0 past the bitmap's end): an undo record's (snapshot.c) */
	void (*res_hook)(void *arg, size_t heap, size_t word, uint64_t old);
	void *res_arg;
};

void hm_init(struct hm *m, struct chunkmap *map);
void hm_free(struct hm *m);

/* d: a copy of m (heaps and figures) over `map`, m's chunkmap cloned.
 * False if the address space for its bitmaps is not there (d is to be
 * freed with hm_free all the same). */
bool hm_clone(struct hm *d, const struct hm *m, struct chunkmap *map);

/* A heap as it was (a snapshot's): [start, end) of kind HM_BRK or
 * HM_MAPPED, before any chunk is placed. */
void hm_restore_heap(struct hm *m, uint64_t start, uint64_t end, uint8_t kind);

/* The heap an address is in (or the closest below it, if not far past its
 * end), or NULL. */
struct hm_heap *hm_heap_of(struct hm *m, uint64_t addr);

/* Heap shape: the break moved; a heap's memory was mapped or unmapped. */
void hm_brk(struct hm *m, uint64_t old_brk, uint64_t new_brk);
void hm_map_heap(struct hm *m, uint64_t addr, uint64_t len);
void hm_unmap_heap(struct hm *m, uint64_t addr, uint64_t len);

/* The caller added `c` to the map (addr, chunk_bytes, kind, cached set):
 * count it as occupying its heap. Returns false if it is in no heap (or
 * the address space for the heap's bitmap is not there). */
bool hm_occupy(struct hm *m, struct chunk_entry *c);
/* It no longer occupies anything; the caller removes it from the map
 * after this. */
void hm_vacate(struct hm *m, struct chunk_entry *c);
/* A live chunk was freed into a cache (HM_TCACHE or HM_FASTBIN), or a
 * cached one moved to the other: still occupied. */
void hm_to_cached(struct hm *m, struct chunk_entry *c, uint8_t cache);
/* A live chunk changed size in place. */
void hm_resize(struct hm *m, struct chunk_entry *c, uint64_t new_bytes);
/* mmap chunks: only counted. */
void hm_mmap(struct hm *m, uint64_t bytes, bool on);
/* malloc_trim madvised [addr, addr + len) away: not resident. */
void hm_madvise(struct hm *m, uint64_t addr, uint64_t len);

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

/* Retained bytes (README's words): heap extent - live. */
uint64_t hm_retained(const struct hm *m);

/* Free bytes above the top pin, over all heaps. */
uint64_t hm_top_free(const struct hm *m);

/* Resident bytes of the heaps. */
uint64_t hm_resident(const struct hm *m);
/* Each run of resident pages of heap h, lowest first. */
void hm_res_runs(const struct hm_heap *h, void (*fn)(void *arg, uint64_t addr, uint64_t bytes),
		 void *arg);
/* The pages of [addr, addr + bytes) of heap h resident (on) or not. */
void hm_res_set(struct hm *m, struct hm_heap *h, uint64_t addr, uint64_t bytes, bool on);
/* Heap `heap`'s resident bitmap as n words (a copy of one taken before). */
void hm_res_load(struct hm *m, size_t heap, const uint64_t *words, size_t n);

/* The bytes of [addr, addr + bytes) in heap h that lie in resident pages. */
uint64_t hm_resident_range(const struct hm_heap *h, uint64_t addr, uint64_t bytes);

/* The pages malloc_trim(0) madvises of a free range [addr, addr + bytes)
 * that is one free chunk: its whole pages past the chunk's own header and
 * list pointers (glibc's mtrim). Pure geometry: returns their bytes and
 * sets *first to the first page. */
uint64_t hm_trim_range(uint64_t addr, uint64_t bytes);
uint64_t hm_trim_pages(uint64_t addr, uint64_t bytes, uint64_t *first);
/* Of those, the resident bytes: what madvising them gives back. */
uint64_t hm_hole_trim(const struct hm_heap *h, uint64_t addr, uint64_t bytes);
/* Each hole of a heap (a free range below its top pin), lowest first. */
void hm_holes(struct hm *m, struct hm_heap *h, void (*fn)(void *arg, uint64_t addr,
							   uint64_t bytes), void *arg);

/* The bytes of the holes of every heap that lie in resident pages. */
uint64_t hm_holes_resident(struct hm *m);

/* What glibc's malloc_trim(0) would give back now, in resident bytes: in
 * every arena it consolidates the fastbins (their chunks merge with the
 * free space around them, and into top), madvises the whole pages of
 * every free chunk, then shrinks the main arena's top to a page
 * (systrim(0)). */
struct hm_trim {
	uint64_t bytes;        /* all of it */
	uint64_t holes;        /* of it, madvised free chunks (holes merged with
				* what the fastbins held) */
	uint64_t top;          /* of it, the brk heap's top given back with sbrk */
};
void hm_trim(struct hm *m, struct hm_trim *t);
/* hm_trim's bytes. */
uint64_t hm_trim_reclaimable(struct hm *m);

/* Who holds the holes: the live chunks of the program from the lowest
 * hole of each heap up (and the one just below it), grouped by
 * group(arg, stack_id) (NULL: by
 * stack), with what each group keeps from being given back: the resident
 * bytes malloc_trim(0) would return on top of hm_trim's if that group's
 * chunks were freed (they merge the free runs around them; those at the
 * top of a heap let the top fall, counted as systrim(0) would trim it, to
 * a page). Returns the groups (*n of them, largest keeps first; the
 * caller frees the array), or NULL if none. */
struct hm_holder {
	int64_t key, stack_id;  /* stack_id: a representative */
	uint64_t chunks, bytes; /* live chunks at or above the lowest hole */
	uint64_t keeps;
};
struct hm_holder *hm_holders(struct hm *m, int64_t (*group)(void *arg, int64_t stack_id),
			     void *arg, size_t *n);

/* The top pin of the heap with the most untrimmable bytes, or NULL. */
struct chunk_entry *hm_top_pin(struct hm *m);

#define HM_GRAIN 16
#define HM_PAGE 4096

#endif
