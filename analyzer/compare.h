/* SPDX-License-Identifier: MIT */
/*
 * compare.h - the processes of two recordings side by side, for `heapprof
 * diff` and `heapprof check --baseline`.
 *
 * A process of NEW is matched with one of BASE by its program's name (the
 * last component of its executable's path: two builds live in two
 * directories) and its arguments after argv[0]; the k-th process of NEW
 * with a name and arguments is the k-th of BASE with them (a forked child
 * has its parent's). Or, asked for (--pid BASE:NEW), the wanted processes
 * of both in order.
 *
 * Sites of two recordings are matched by text, since stack ids and
 * function ids are each database's own: by allocating function, its name;
 * by stack, the function names of its frames (lines move between builds).
 */
#ifndef HP_COMPARE_H
#define HP_COMPARE_H

#include <stdbool.h>
#include <stddef.h>

#include "frames.h"
#include "load.h"

struct cmp_pair {
	struct ld_process *base, *new_;
};

/* Pairs of NEW's wanted processes with BASE's wanted ones, into *out (the
 * caller frees it); by_order: in order, else by name and arguments.
 * Returns how many pairs; *unmatched: how many of NEW's wanted processes
 * have none. */
size_t cmp_match(struct ld_db *base, struct ld_db *new_, bool by_order, struct cmp_pair **out,
		 size_t *unmatched);

/* "name args" of a process, for messages; into buf. */
const char *cmp_name(struct ld_db *db, const struct ld_process *p, char *buf, size_t cap);

/* A site of both recordings: its bytes in each (zero where it is not). */
struct cmp_site {
	char *key;                 /* the function name, or the stack's names */
	struct fr_site base, new_; /* stack_id 0 where it has none */
	bool in_base, in_new;
};

/* The sites of frame fb of xb and fn of xn (each with its process's
 * leaks; a frame may be NULL) matched by function or by stack, into *out
 * (cmp_sites_free frees them), the largest change first (the largest of
 * the four: untrimmable, retained, pinned, leaked). Returns how many. */
size_t cmp_sites(struct ld_db *base, const struct fr_process *xb, const struct fr_frame *fb,
		 struct ld_db *new_, const struct fr_process *xn, const struct fr_frame *fn,
		 bool by_function, struct cmp_site **out);
void cmp_sites_free(struct cmp_site *v, size_t n);

/* The largest absolute change of a matched site over the four measures. */
uint64_t cmp_site_change(const struct cmp_site *s);

#endif
