/* SPDX-License-Identifier: MIT */
/*
 * load.h - reading a heapprof database for the reports.
 *
 * A database may come from anywhere: it is opened read-only, with
 * SQLite's defensive settings, checked to be heapprof's (application_id)
 * of a schema version this heapprof reads (user_version), and every error
 * becomes one line for the user: "FILE: what is wrong".
 */
#ifndef HP_LOAD_H
#define HP_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replay.h"

struct sqlite3;

/* A snapshot of a process (a snapshot recording). */
struct ld_snapshot {
	int64_t id, ns;
	char reason[16];
	uint64_t untrimmable, extent, live;
};

/* What the collector computed over a process's run (heap_summary). */
struct ld_summary {
	bool present;
	uint64_t peak_live, peak_extent, worst_untrimmable;
	int64_t peak_live_ns, peak_extent_ns, worst_ns;
};

struct ld_process {
	int64_t process_id, pid, ppid, parent_id, exec_from;
	char *exe;
	char *end_reason;
	int64_t exit_status, exit_signal; /* -1: none */
	int64_t dropped, truncated;
	bool wanted;                      /* asked for (the rest: ancestors) */
	struct rp_input in;               /* a snapshot recording: in.chunks are the
					   * chunks live at exit (its leaks) */
	struct ld_snapshot *snaps;        /* a snapshot recording: by time */
	size_t nsnaps;
	struct ld_summary summary;
};

/* A frame of a stack, symbolized. */
struct ld_frame {
	const char *function, *file, *module; /* NULL if unknown */
	int64_t line;                         /* 0 if unknown */
};

struct ld_db {
	struct sqlite3 *h;
	const char *path;
	bool complete;
	bool snapshots;         /* a snapshot recording (meta recording) */
	struct ld_process *procs;
	size_t nprocs;
	/* the innermost frame of each stack, and a function id for grouping */
	int64_t nstacks;
	int64_t *fn_of_stack;   /* by stack id: function id, or -stack_id if unknown */
	char **fn_names;        /* by function id - 1 */
	size_t nfns;
};

/* Open and check. Returns NULL with a message in err. */
struct ld_db *ld_open(const char *path, char *err, size_t errcap);

/* Load the processes whose pid is `pid` (0: all), their ancestors (a forked
 * child's heap starts as its parent's), their chunks and heap events.
 * Returns 0, or -1 with a message (also when no process has that pid). */
int ld_load(struct ld_db *db, int64_t pid, char *err, size_t errcap);

/* The heaps, chunks and formers of snapshot `id` into s (rp_snapshot_free
 * frees them). Returns 0, or -1 with a message. */
int ld_snapshot(struct ld_db *db, int64_t id, struct rp_snapshot *s, char *err, size_t errcap);
void ld_snapshot_free(struct rp_snapshot *s);

/* The frames of a stack, innermost first; returns how many (at most cap).
 * Strings stay valid until ld_close. */
size_t ld_stack(struct ld_db *db, int64_t stack_id, struct ld_frame *out, size_t cap);

/* "function (file:line)" of a frame, or "function (module)" without a
 * line, "?? (module)" without a function; into buf. */
const char *ld_frame_text(char *buf, size_t cap, const struct ld_frame *f);

/* The innermost frame of a stack as ld_frame_text, or "(no stack
 * recorded)". */
const char *ld_site_text(struct ld_db *db, int64_t stack_id, char *buf, size_t cap);

/* Group key by allocating function (replay's rp_options.group). */
int64_t ld_group_function(void *db, int64_t stack_id);

/* The function name of a group key, or NULL. */
const char *ld_function_name(struct ld_db *db, int64_t key);

/* A process's arguments after argv[0], as a JSON array (for matching the
 * processes of two recordings), and its whole command line as text (for
 * people); "" if the database has none. Valid until ld_close. */
const char *ld_args_json(struct ld_db *db, int64_t process_id);
const char *ld_command_line(struct ld_db *db, int64_t process_id);

/* The figures the collector stored over a process's run (heap_timeline),
 * by time, into *out (the caller frees it). Returns how many, or -1 with a
 * message. */
long ld_timeline(struct ld_db *db, int64_t process_id, struct rp_point **out, char *err,
		 size_t errcap);

void ld_close(struct ld_db *db);

#endif
