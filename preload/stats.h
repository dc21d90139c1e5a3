/* SPDX-License-Identifier: MIT */
/*
 * stats.h - malloc_stats() and malloc_info() text, byte for byte as
 * glibc 2.36 prints them.
 */
#ifndef HP_STATS_H
#define HP_STATS_H

#include <stdio.h>

/* malloc_stats() to fp (stderr). The numbers are gathered under the heap
 * lock, which is released before any stdio call (stdio may allocate, and a
 * cancellation inside fprintf must not leave the lock held: glibc BZ 22830).
 * Lock: none (takes it briefly). Allocates: through stdio only. */
void hp_stats_print(FILE *fp);

/* malloc_info(0, fp); returns 0. Same locking as hp_stats_print. */
int hp_stats_info(FILE *fp);

#endif
