/* SPDX-License-Identifier: MIT */
/*
 * collect.h - the collector: reads the spool (schema/events.h) that
 * recorded programs write, puts every process's events back in order
 * and loads them into a database (db.h).
 *
 * Each process is finished once it is known to be gone
 * (reaped, exec'd, or seen dead) and all its rings are drained: sequence
 * numbers that never arrived count as truncated records, chunks still live
 * are written with no free. Records that fail their checks (a program that
 * scribbled on its rings) are dropped and counted as bad records.
 */
#ifndef HP_COLLECT_H
#define HP_COLLECT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "db.h"

struct collector;

/* Watch the spool directory `dir`, writing into `db`. With `attach`, the
 * processes are not our children: their end is watched with pidfds. */
struct collector *collect_new(struct db *db, const char *dir, bool attach);

/* A snapshot recording (no chunk or heap_event rows: snapshots, see
 * snapshot.h), and the interval of sites and interval snapshots (ns; 0:
 * 60 s). Before the first poll. */
void collect_options(struct collector *c, bool snapshots, int64_t every_ns);

/* A file of this name (and any suffix) in the spool asks for a snapshot of
 * every process: the collector removes it once they are taken. */
#define SNAPSHOT_REQUEST "snapshot-request"

/* Read what the spool holds now. Returns true if anything was read. */
bool collect_poll(struct collector *c);

/* True if records wait for one with a lower number that a thread is
 * writing right now: worth polling again soon. */
bool collect_waiting(const struct collector *c);

/* A process we waited for ended (wait status). */
void collect_reaped(struct collector *c, pid_t pid, int status);

/* Number of processes not finished yet. */
unsigned collect_pending(const struct collector *c);

/* Finish every process (the run is over): what is still unread is read,
 * the rest counted as truncated. */
void collect_finish(struct collector *c);

/* The first process's exit: status/signal as recorded (-1 if unknown). */
void collect_root_exit(const struct collector *c, int *status, int *signal);

/* Totals for the summary. */
struct collect_stats {
	uint64_t procs, events, chunks, dropped, truncated;
	uint64_t bad; /* records that failed their checks, dropped */
	uint64_t peak_live_bytes; /* largest live bytes of any one process */
	uint64_t leaked_bytes, leaked_chunks;
	/* the heaps of the root process (the last process of its exec chain) */
	bool has_root;
	struct db_summary root;
	int64_t root_pid, root_started_ns;
	uint64_t demands;        /* snapshots taken on demand */
	unsigned snap_failures;  /* snapshots whose rebuilt figures differed (a defect) */
};
void collect_stats(const struct collector *c, struct collect_stats *s);

void collect_free(struct collector *c);

#endif
