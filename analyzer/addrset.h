/* SPDX-License-Identifier: MIT */
/* addrset.h - a set of chunk addresses, one bit each.
 *
 * A snapshot recording's undo record asks, at every change to the heap
 * model while a peak or worst is pending, whether it already holds the
 * address's earlier value. A hash table of the records was a cache miss a
 * question once it grew (python3's and perl's reach 0.7 M records, 22 MB
 * of table). This set is a bit per 16 bytes of address space, in pages of
 * 64 KiB, so a 100 MiB heap's set is 800 KiB and mostly in cache.
 *
 * Addresses must be multiples of 16 (chunk addresses are: collect.c's
 * event checks reject others); two addresses in one 16-byte granule are
 * one member. */
#ifndef HP_ADDRSET_H
#define HP_ADDRSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct addrset;

struct addrset *as_new(void);
void as_free(struct addrset *s);

/* Add addr; whether it was not a member before. */
bool as_add(struct addrset *s, uint64_t addr);
bool as_has(struct addrset *s, uint64_t addr);
void as_remove(struct addrset *s, uint64_t addr);

/* Empty the set. Its pages stay for the next use, up to `keep` of them
 * (the others are freed: a set that once spanned a large heap does not
 * hold its memory forever). */
void as_clear(struct addrset *s, size_t keep);

/* Pages (512 bytes each, and a slot of the page table) the set holds. */
size_t as_pages(const struct addrset *s);

#endif
