/* SPDX-License-Identifier: MIT */
/*
 * symworker.h - return addresses symbolized by a thread of their own while
 * the program runs.
 *
 * Symbolizing after the program ended kept the run waiting for it (a
 * python3 run: 7000 addresses, 0.18 s, most of the time between the
 * program's end and heapprof's). The collector hands over each distinct
 * address as its first stack arrives; a thread at idle priority (the run's
 * other threads come first) looks them up with its own sym_ctx, so at the
 * end only the last few are left.
 */
#ifndef HEAPPROF_SYMWORKER_H
#define HEAPPROF_SYMWORKER_H

#include <stddef.h>
#include <stdint.h>

#include "symbolize.h"

#define SYM_MAX_LOGICAL 16 /* inlined frames kept per address */

/* The logical frames at one address, innermost first; n 0: unknown. */
struct sym_result {
	int64_t image_id;
	uint64_t offset;
	int n;
	struct sym_frame *f;
};

struct symworker;

/* Start the thread (if it cannot be, the lookups happen in
 * symworker_finish). NULL if out of memory for the context. */
struct symworker *symworker_start(void);

/* Look up nothing more until symworker_resume or symworker_finish (which
 * then does the rest, opening the objects again), and let go of libdw's
 * memory now: for a run whose memory must stay low, as libdw's debug
 * sections take memory of their own (libc's: 12 MiB). */
void symworker_defer(struct symworker *w);

/* Look up again on the thread, what was deferred first (the run's models
 * are gone: its memory is not the run's peak any more). */
void symworker_resume(struct symworker *w);

/* An address to look up: a return address `offset` into the object at
 * `path`. path and build_id must stay valid until symworker_finish. */
void symworker_add(struct symworker *w, int64_t image_id, uint64_t offset, const char *path,
		   const char *build_id);

/* Wait for every address added so far; the results, by (image_id,
 * offset), stay the worker's until symworker_free. */
size_t symworker_finish(struct symworker *w, const struct sym_result **out);

void symworker_free(struct symworker *w);

#endif
