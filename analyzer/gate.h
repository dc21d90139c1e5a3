/* SPDX-License-Identifier: MIT */
/*
 * gate.h - what `heapprof check` adds for CI: a baseline (--baseline BASE
 * --max-increase SIZE|PERCENT: each figure may grow at most so much over the
 * last good run's, process by process, matched as compare.h says) and a
 * JUnit report of every verdict (--junit FILE: one testcase per limit and
 * process, a failure naming the top pin and its stack).
 *
 * The figures are check's: untrimmable and retained bytes at --at, leaked
 * bytes, the peak of live bytes.
 */
#ifndef HP_GATE_H
#define HP_GATE_H

#include <stdbool.h>
#include <stdint.h>

#include "load.h"
#include "replay.h"

enum { GATE_UNTRIMMABLE, GATE_RETAINED, GATE_LEAKED, GATE_PEAK, GATE_N };

/* How much a figure may grow over the baseline. */
struct gate_increase {
	bool set;
	bool percent;
	double pct;                 /* percent: of the baseline's value */
	uint64_t bytes;
};

/* Parse "SIZE", "PERCENT%" or "FIGURE=SIZE|PERCENT%" (figure: untrimmable,
 * retained, leaked, peak) into inc (all figures, or the one named).
 * Returns false if malformed. */
bool gate_parse_increase(const char *s, struct gate_increase inc[GATE_N]);

struct gate_verdict {
	char *classname, *name;
	bool ok, skipped;
	char *message;              /* the line check printed */
	char *detail;               /* a failure's top pin stack, or NULL */
};

struct gate_process {
	struct ld_process *p;
	uint64_t v[GATE_N];
	bool has_pin;
	struct rp_pin pin;          /* the top pin at --at */
};

struct gate {
	struct gate_verdict *v;
	size_t n;
	struct gate_process *procs; /* NEW's processes, as check computed them */
	size_t nprocs;
	bool failed;
};

/* A process of NEW as check computed it (values by GATE_*, the top pin). */
void gate_process(struct gate *g, struct ld_process *p, const uint64_t v[GATE_N],
		  const struct rp_pin *top);

/* A verdict check printed (message: the line without its newline); the
 * failure's detail is the stack of top (NULL: none). */
void gate_add(struct gate *g, struct ld_db *db, const struct ld_process *p, const char *name,
	      bool ok, const char *message, const struct rp_pin *top);

/* Compare each process gate_process noted with its match in BASE, at the
 * same instant (`at`, named at_name; RP_AT_TIME: what `instant` says for
 * each process of BASE, false if it has no such instant): one line (json: one object of
 * check's "checks" array, *first as check keeps it) and one verdict per
 * figure with an increase set. Returns 0, or 2 after one line (BASE
 * unreadable, no process matches, an instant BASE does not have). */
int gate_baseline(struct gate *g, struct ld_db *new_, const char *base_path, enum rp_at at,
		  const char *at_name, bool (*instant)(void *arg, const struct ld_process *p, int64_t *at_ns),
		  void *instant_arg, const struct gate_increase inc[GATE_N], bool json,
		  bool *first);

/* The JUnit XML of every verdict into path (a temporary file renamed into
 * place). Returns 0, or 2 after one line. */
int gate_junit(const struct gate *g, const char *path, const char *suite);

void gate_free(struct gate *g);

#endif
