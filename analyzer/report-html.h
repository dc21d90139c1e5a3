/* SPDX-License-Identifier: MIT */
/*
 * report-html.h - `heapprof report --format html`: one self-contained page
 * (inline CSS, JS and data; no network) with, per process, the timeline,
 * the heap map at stored instants, the figures, the pin chain, the holes,
 * the leaks, the sites by function and by stack and an icicle of the
 * bytes by stack.
 *
 * Everything the page shows is computed here from frames.h (the replay's
 * results); the page's script only draws it. The heap map is aggregated
 * into at most HTML_CELLS cells a heap, so the page stays small and opens
 * fast whatever the size of the recording.
 */
#ifndef HP_REPORT_HTML_H
#define HP_REPORT_HTML_H

#include <stdbool.h>
#include <stdint.h>

#include "load.h"
#include "replay.h"

#define HTML_CELLS 2048

struct html_options {
	const char *file;          /* the database, as named by the user */
	const char *output;        /* NULL: stdout */
	enum rp_at at;             /* the instant shown first */
	long top;                  /* rows of each table */
	/* RP_AT_TIME: the instant in process p, ns after it started; false
	 * if it has none (a mark it did not make: its end is shown first) */
	bool (*instant)(void *arg, const struct ld_process *p, int64_t *at_ns);
	void *instant_arg;
	/* the text report's sentence on what would give the memory back, for
	 * a result, into t; returns t */
	const char *(*advice)(struct ld_db *db, const struct rp_result *r, char *t, size_t cap);
};

/* Write the page of the loaded processes (the wanted ones). Returns 0, or
 * 2 after printing one line (an unwritable output); a process without
 * frames (a snapshot recording's forked child) gets a line on stderr and
 * a note in the page. Writes to a temporary file renamed over `output`
 * when complete. */
int html_report(struct ld_db *db, const struct html_options *o);

#endif
