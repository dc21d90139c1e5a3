/* SPDX-License-Identifier: MIT */
/*
 * stacks.h - call stacks of allocations: captured (unwind.h) into a fixed
 * array, deduplicated in the process so that each distinct stack crosses
 * to the collector once.
 *
 * Stacks are raw return addresses, innermost first, with heapprof's own
 * frames removed (depth 0 is the caller of malloc). The table lives in
 * heapprof's own memory: lookups take no lock, insertions the table's lock.
 */
#ifndef HP_STACKS_H
#define HP_STACKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Frames to keep (1..HP_MAX_DEPTH_LIMIT) and the address range of
 * heapprof's own code, skipped at the top of every stack. */
void hp_stacks_init(unsigned max_depth, uintptr_t self_lo, uintptr_t self_hi);

/* The most return addresses a capture needs: the frames kept and room
 * for heapprof's own at the top. */
unsigned hp_stacks_slots(void);

/*
 * The id (from 1) of the stack captured in raw[0..n) (unwind.h), heapprof's
 * own frames dropped from the top; *is_new set when this call inserted it
 * (the caller then sends it, with the frames in *ips and their number in
 * *depth). `repeated` says raw holds what it held at this thread's
 * previous call (hp_unwind_repeated()): its id is then returned at once.
 * Returns 0 if it is empty or could not be stored.
 * Lock: none (takes the table's lock to insert). Allocates: selfmem.
 */
uint32_t hp_stacks_intern(void *const *raw, int n, bool repeated, bool *is_new,
			  const uint64_t **ips, unsigned *depth);

/* The same for a stack captured otherwise (unw_backtrace: the program's
 * own mmap calls): this thread's previous call, which `repeated` refers
 * to, stays the last allocation's. */
uint32_t hp_stacks_intern_other(void *const *raw, int n, bool *is_new, const uint64_t **ips,
				unsigned *depth);

/* After fork, in the child: start a new, empty table (the child's stream
 * has not seen any stack yet). */
void hp_stacks_reset(void);

#endif
