/* SPDX-License-Identifier: MIT */
/*
 * policy.h - textbook allocators over a simulated brk heap, for heapprof
 * advise: what a recording's requests would leave behind under first,
 * next, best and worst fit (one address-ordered free list, blocks split on
 * allocation and coalesced on free), segregated fit (free lists by size
 * class) and a binary buddy allocator.
 *
 * The heap they share (policy.c) is glibc's in the parts that decide what
 * can be given back: a request takes glibc's chunk size (8 bytes of
 * header, 16-byte granules, at least 32); requests of 128 KiB and more get
 * mmap chunks of their own (glibc's default threshold, without its
 * dynamic raise); the break grows by what is missing plus 128 KiB
 * (glibc's top_pad), in pages (the buddy: in 256 KiB units of its largest
 * block), and after a free the free space at the top is trimmed down to
 * 128 KiB once it reaches 128 KiB (glibc's trim threshold). Memory is
 * never touched: a heap is its bookkeeping. A realloc stays in place if
 * its block is large enough, else it allocates, then frees the old block;
 * memalign asks for size + alignment.
 *
 * Each policy is a module of its own (policy-*.c) that says only how to
 * find a free block for a request and, for the buddy, how blocks split
 * and merge.
 */
#ifndef HP_POLICY_H
#define HP_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "advise.h"

enum { POL_FIRST_FIT, POL_NEXT_FIT, POL_BEST_FIT, POL_WORST_FIT, POL_SEGREGATED, POL_BUDDY,
       POL_COUNT };

#define POL_TOP_PAD ((uint64_t)128 * 1024)
#define POL_TRIM_THRESHOLD ((uint64_t)128 * 1024)
#define POL_MMAP_THRESHOLD ((uint64_t)128 * 1024)
#define POL_PAGE ((uint64_t)4096)
#define POL_NCLASSES 48

/* A free block, in the free-block index: a treap by address whose nodes
 * know the largest block below them (for first fit), another by size
 * (for best fit), and a list per size class (segregated fit, buddy). */
struct pol_node {
	uint64_t addr, size;
	uint64_t max;            /* the largest size in its address subtree */
	uint32_t l, r;           /* by address */
	uint32_t sl, sr;         /* by (size, address) */
	uint32_t prev, next;     /* its class list */
	uint32_t pri;
	uint8_t cls;
};

struct pol;

struct pol_ops {
	const char *name;        /* "first fit" */
	const char *what;        /* one line for people */
	uint64_t unit;           /* the break moves in multiples of it */
	/* The block a chunk of `bytes` takes. */
	uint64_t (*block)(uint64_t bytes);
	/* The free block to carve a block of `bytes` from, or 0 (indexes). */
	uint32_t (*find)(struct pol *p, uint64_t bytes);
	/* Carve `bytes` from free block n; returns the block's address.
	 * NULL: the low end of n, the rest stays free (pol_split). */
	uint64_t (*take)(struct pol *p, uint32_t n, uint64_t bytes);
	/* A block goes back: coalesce it with free neighbours and index it.
	 * NULL: merge with the free blocks that touch it (pol_coalesce). */
	void (*put)(struct pol *p, uint64_t addr, uint64_t bytes);
};

extern const struct pol_ops pol_first_fit, pol_next_fit, pol_best_fit, pol_worst_fit,
	pol_segregated, pol_buddy;

const struct pol_ops *pol_ops_of(int policy);
const char *pol_name(int policy);

struct pol {
	const struct pol_ops *ops;
	uint64_t base, brk;
	uint64_t rover;          /* next fit: where the next search starts */
	struct pol_node *nodes;  /* [0] is no node */
	uint32_t nnodes, cap, free_nodes, root, sroot;
	uint32_t classes[POL_NCLASSES];
	uint64_t rng;
	/* allocated blocks: address -> size, open addressing */
	uint64_t *keys, *vals;
	size_t hcap, hcount;
	void (*on_brk)(void *arg, uint64_t old_brk, uint64_t new_brk);
	void *arg;
};

/* A heap at base (nothing allocated, break at base). */
void pol_init(struct pol *p, const struct pol_ops *ops, uint64_t base);
void pol_destroy(struct pol *p);

/* A block for a chunk of `bytes` (glibc's chunk size); the heap grows if
 * no free block fits. Returns its address; *block its size. */
uint64_t pol_alloc(struct pol *p, uint64_t bytes, uint64_t *block);
/* The block at addr goes back (then the top may be trimmed). Returns its
 * size, 0 if no block starts there. */
uint64_t pol_release(struct pol *p, uint64_t addr);
/* The size of the allocated block at addr, 0 if none. */
uint64_t pol_block_at(const struct pol *p, uint64_t addr);

/* Each free block, lowest address first. */
void pol_each_free(const struct pol *p, void (*fn)(void *arg, uint64_t addr, uint64_t bytes),
		   void *arg);

/* ---- for the policies ---- */

/* The free block starting at addr, the one with the highest address below
 * addr, the first at or above addr; 0 if none. */
uint32_t pol_at(const struct pol *p, uint64_t addr);
uint32_t pol_below(const struct pol *p, uint64_t addr);
uint32_t pol_from(const struct pol *p, uint64_t addr);
/* The lowest-addressed free block at or above addr of at least bytes. */
uint32_t pol_first_from(const struct pol *p, uint64_t addr, uint64_t bytes);
/* The smallest free block of at least bytes (lowest address of that
 * size); the largest (lowest address of that size). */
uint32_t pol_smallest(const struct pol *p, uint64_t bytes);
uint32_t pol_largest(const struct pol *p);
/* Index a free block; take one out of the index. */
void pol_insert(struct pol *p, uint64_t addr, uint64_t size);
void pol_remove(struct pol *p, uint32_t n);
/* The default take and put (see pol_ops). */
uint64_t pol_split(struct pol *p, uint32_t n, uint64_t bytes);
void pol_coalesce(struct pol *p, uint64_t addr, uint64_t bytes);
/* The size class of a size: floor(log2(size)). */
unsigned pol_class(uint64_t size);

/*
 * Replay seq through `policy` (its requests' chunk sizes as glibc's;
 * objects live and die as recorded). Returns 0, or -1 with a message.
 */
int adv_policy_run(const struct adv_seq *seq, int policy, struct adv_figs *f, char *err,
		   size_t errcap);

#endif
