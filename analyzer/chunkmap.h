/* SPDX-License-Identifier: MIT */
/*
 * chunkmap.h - chunks by address, for the collector: the chunks of one
 * process whose rows are not written yet (live, or freed into a
 * cache where they still occupy the heap).
 *
 * A hash of the address would scatter neighbours: every lookup a cache
 * miss, which at millions of chunks a second was the collector's largest
 * cost after SQLite. The program reuses what it freed last, so the index
 * keeps the heap's locality instead: a table per 64 KiB of address space
 * with one slot per 32 bytes (chunks are at least 32 bytes apart), holding
 * an index into a pool of entries that are reused last-freed-first.
 * Entry pointers stay valid until the entry is removed.
 */
#ifndef HEAPPROF_CHUNKMAP_H
#define HEAPPROF_CHUNKMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One cache line: the collector looks up millions a second at random,
 * and an entry that spanned two lines cost two misses. */
struct chunk_entry {
	uint64_t addr; /* 0: not in use */
	uint64_t size, chunk_bytes;
	int64_t alloc_ns, free_ns;
	union {
		int64_t realloc_from; /* the collector's, until the row is written:
				       * the chunk a moving realloc replaced */
		int64_t row_id;       /* the collector's, once `written` */
		const void *ref;      /* the replay's (replay.c): its row */
	};
	uint32_t stack_id;            /* the database's (it numbers them from 1) */
	int32_t alloc_tid, free_tid;
	uint8_t backing : 2, call : 3, fate : 3;
	uint8_t cached : 7;           /* freed, still occupying the heap: in a
				       * tcache (HM_TCACHE) or a fastbin
				       * (HM_FASTBIN); 0: not */
	bool written : 1;             /* the collector wrote its row */
	uint8_t kind;                 /* what occupies the address (heapmodel.h) */
	uint8_t align_log2;           /* memalign: log2 of the alignment asked
				       * for (as glibc rounds it); 0: none */
};
_Static_assert(sizeof(struct chunk_entry) == 64, "a chunk entry is one cache line");

struct chunkmap;

struct chunkmap *chunkmap_new(void);
void chunkmap_free(struct chunkmap *m);

/* The entry in the slot `addr` falls in: the chunk at `addr`, or another
 * one that overlaps it (a chunk whose end was never seen), or NULL. */
struct chunk_entry *chunkmap_slot(struct chunkmap *m, uint64_t addr);

/* Hints, for a caller that knows which addresses it will look up soon (a
 * replay): start fetching the slot chunkmap_slot(m, addr) will read, and,
 * once that is in cache, the entry it names. Nothing changes. */
void chunkmap_prefetch_slot(const struct chunkmap *m, uint64_t addr);
void chunkmap_prefetch_entry(const struct chunkmap *m, uint64_t addr);

/* A new entry for `addr`, whose slot must be empty. Its fields are zero
 * but addr. */
struct chunk_entry *chunkmap_add(struct chunkmap *m, uint64_t addr);

/* Free the entry: its addr becomes 0 and its stack_id the map's (the list
 * of free entries); the rest is left as it was until it is reused. */
void chunkmap_remove(struct chunkmap *m, struct chunk_entry *e);

/* A copy of the map and every entry in it, at the same indexes (a forked
 * child's heap starts as its parent's). */
struct chunkmap *chunkmap_clone(const struct chunkmap *m);

/* Entries by index; 0 is none. */
uint32_t chunkmap_index(const struct chunkmap *m, const struct chunk_entry *e);
struct chunk_entry *chunkmap_at(struct chunkmap *m, uint32_t index);

size_t chunkmap_count(const struct chunkmap *m);

/* Every entry in use, in address order, into v (room for
 * chunkmap_count(m)); returns how many. */
size_t chunkmap_by_addr(const struct chunkmap *m, struct chunk_entry **v);

/* Each entry in use, in no particular order: start with *cursor = 0. */
struct chunk_entry *chunkmap_next(struct chunkmap *m, uint32_t *cursor);

#endif
