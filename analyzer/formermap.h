/* SPDX-License-Identifier: MIT */
/*
 * formermap.h - who last held each free byte of a heap: for every range a
 * chunk of the program's occupied, the chunk's stack and the instant it
 * stopped occupying it (freed into free space, or released by a cache).
 * A later chunk that ends over the same bytes overwrites them. The
 * collector keeps one per process in snapshot mode, so that a
 * snapshot can name the former sites of its holes without the chunks'
 * history: its size is bounded by the heap, not by the run.
 *
 * Pieces are 16-byte granules at 16-byte boundaries, kept per 16 KiB of
 * address space in a sorted array; a range that crosses such a boundary is
 * split there. A chunk's piece may be split further by later writes over
 * part of it; its pieces keep the chunk's (stack, vacated_ns), which tells
 * them apart from other chunks' (no two chunks of a process end at the same
 * instant).
 */
#ifndef HP_FORMERMAP_H
#define HP_FORMERMAP_H

#include <stddef.h>
#include <stdint.h>

/* stack_id of a piece that stands for "nothing recorded here" (fm_save) */
#define FM_NONE UINT32_MAX

struct fm_piece {
	uint64_t addr, bytes;
	uint32_t stack_id;
	int64_t vacated_ns;
};

struct formermap;

struct formermap *fm_new(void);
void fm_free(struct formermap *m);
struct formermap *fm_clone(const struct formermap *m);

/* [addr, addr + bytes) was last held by a chunk of `stack_id` that stopped
 * occupying it at `vacated_ns`. */
void fm_set(struct formermap *m, uint64_t addr, uint64_t bytes, uint32_t stack_id,
	    int64_t vacated_ns);

/* Forget [addr, addr + bytes): the heap no longer has it. */
void fm_clear(struct formermap *m, uint64_t addr, uint64_t bytes);

/* Each piece that overlaps [addr, addr + bytes), clipped to it, in address
 * order. */
void fm_each(const struct formermap *m, uint64_t addr, uint64_t bytes,
	     void (*fn)(void *arg, const struct fm_piece *p), void *arg);

/* Into `dst`, what `src` holds of [addr, addr + bytes) wherever `dst` holds
 * nothing yet, with FM_NONE pieces where `src` holds nothing either: so
 * `dst` keeps the first contents it saw of every range it was given (an
 * undo record of `src`). */
void fm_save(struct formermap *dst, const struct formermap *src, uint64_t addr, uint64_t bytes);

/* Forget everything: as fm_free and fm_new, but up to `keep` pages stay
 * allocated for the next use (a map emptied often, like an undo record
 * that restarts at every new worst, does not give its memory back and
 * take it again each time). */
void fm_empty(struct formermap *m, size_t keep);

/* Pieces held. */
size_t fm_count(const struct formermap *m);

#endif
