/* SPDX-License-Identifier: MIT */
/*
 * selfcheck.h - the collector checked against the reader, on the file it
 * wrote: for every process with a heap_summary row, what the collector
 * computed event by event while it recorded must be what the reports find
 * when they rebuild the process's heaps from the database (`heapprof report
 * --at exit`): every figure at the end and the top pin, and the run's
 * peaks and worst (value and instant); in a full recording the replay's
 * (replay.h), in a snapshot recording its exit snapshot's (whose run
 * figures are heap_summary's own).
 *
 * `heapprof run` and `heapprof collect` run it when HEAPPROF_SELFCHECK is
 * set (the test suites set it for every recording they make).
 */
#ifndef HP_SELFCHECK_H
#define HP_SELFCHECK_H

#include <stdbool.h>
#include <stddef.h>

/* The environment variable: "1" checks; "perturb" also has the collector
 * write one granule too many into every heap_summary's live bytes (a test
 * of the check itself: it must fail). */
#define SELFCHECK_ENV "HEAPPROF_SELFCHECK"

/* Whether the environment asks for the check, and for the perturbation. */
bool selfcheck_wanted(void);
bool selfcheck_perturb(void);

/* Check the finished database at `path`. Returns 0 if every figure agrees,
 * else -1 with the first difference in err ("pid N: FIGURE: heap_summary
 * X, report --at exit Y") or why the file could not be checked.
 * Allocates: yes. */
int selfcheck_run(const char *path, char *err, size_t errcap);

#endif
