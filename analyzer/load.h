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

/* An instant the program marked (heapprof_mark). */
struct ld_mark {
	int64_t ns;
	char *name;
};

/* An allocator setting that shapes the heap (table malloc_setting): an
 * environment line read at start (line), or a mallopt call (line NULL);
 * lines that do not (ld_setting_shapes_heap) are left out. */
struct ld_setting {
	int64_t ns;
	int param, value;
	char *line;
};

/* Whether an environment line the allocator read shapes the heap: not
 * MALLOC_PERTURB_ and MALLOC_CHECK_, which change what memory holds, not
 * where chunks go. */
bool ld_setting_shapes_heap(const char *line);

/* mallopt's name for param (M_ARENA_MAX, ...); NULL: none of glibc's. */
const char *ld_mallopt_name(int param);

struct ld_process {
	int64_t process_id, pid, ppid, parent_id, exec_from;
	char *exe;
	char *end_reason;
	int64_t exit_status, exit_signal; /* -1: none */
	int64_t dropped, truncated;
	bool wanted;                      /* asked for (the rest: ancestors) */
	struct ld_mark *marks;            /* in time order */
	size_t nmarks;
	struct ld_setting *settings;      /* in their order */
	size_t nsettings;
	bool cpython;                     /* CPython is loaded (pymalloc's home) */
	struct rp_input in;               /* a snapshot recording: in.chunks are the
					   * chunks live at exit (its leaks) */
	struct ld_snapshot *snaps;        /* a snapshot recording: by time */
	size_t nsnaps;
	struct ld_summary summary;
};

/* A process's settings in one line: its environment lines, then "; N
 * mallopt calls" ("": none, glibc's defaults). Returns buf. */
const char *ld_settings_text(const struct ld_process *p, char *buf, size_t cap);

/* A frame of a stack, symbolized. */
struct ld_frame {
	const char *function, *file, *module; /* NULL if unknown */
	int64_t line;                         /* 0 if unknown */
	uint64_t offset;                      /* in its module (absolute if none) */
};

struct ld_db {
	struct sqlite3 *h;
	const char *path;
	bool complete;
	bool snapshots;         /* a snapshot recording (meta recording) */
	struct ld_process *procs;
	size_t nprocs;
	/* the site of each stack (its first frame that is no allocation
	 * wrapper) and a function id for grouping: one entry per stack,
	 * sorted by stack id (a stack id is any number a file holds: an array
	 * indexed by it would be as large as the largest) */
	struct ld_stack_fn {
		int64_t stack_id, fn; /* fn: function id */
		int32_t site;         /* the site's index in ld_stack's frames */
	} *stack_fns;
	size_t nstack_fns;
	bool sites_loaded;
	char **fn_names;        /* by function id - 1 */
	size_t nfns;
	/* what ld_skip added: patterns for functions, modules and files */
	char **skip;
	size_t nskip;
};

/* Open and check. Returns NULL with a message in err. */
struct ld_db *ld_open(const char *path, char *err, size_t errcap);

/* Frames matching the glob `pattern` (a function's name, a module's
 * basename or a source file) allocate for their caller: a stack's site is
 * past them, as past those the database's alloc_wrapper table names.
 * Before ld_load. */
void ld_skip(struct ld_db *db, const char *pattern);

/* Load the processes whose pid is `pid` (0: all), their ancestors (a forked
 * child's heap starts as its parent's), their chunks and heap events.
 * Returns 0, or -1 with a message (also when no process has that pid, and
 * "damaged: ..." for addresses or sizes no process can have). Memory and
 * time follow the rows the file holds, whatever numbers are in them. */
int ld_load(struct ld_db *db, int64_t pid, char *err, size_t errcap);

/* The heaps, chunks and formers of snapshot `id` into s (rp_snapshot_free
 * frees them). Returns 0, or -1 with a message. */
int ld_snapshot(struct ld_db *db, int64_t id, struct rp_snapshot *s, char *err, size_t errcap);
void ld_snapshot_free(struct rp_snapshot *s);

/* The frames of a stack, innermost first; returns how many (at most cap).
 * Strings stay valid until ld_close. */
size_t ld_stack(struct ld_db *db, int64_t stack_id, struct ld_frame *out, size_t cap);

/* "function (file:line)" of a frame, or "function (module)" without a
 * line, "0x1a9b in module" without a function; into buf. A long C++
 * name is shortened (short_function); fit for a terminal (text_safe). */
const char *ld_frame_text(char *buf, size_t cap, const struct ld_frame *f);

/* A stack's place among the database's stacks: 1..nstack_fns (the index
 * of its stack_fns entry + 1), or 0 if the database has no such stack. For
 * arrays by stack, whatever numbers a file gives them. */
size_t ld_stack_slot(struct ld_db *db, int64_t stack_id);

/* The site of a stack, its index among ld_stack's frames (0 if unknown). */
size_t ld_site_index(struct ld_db *db, int64_t stack_id);

/* The site of a stack as ld_frame_text, or "(no stack recorded)". */
const char *ld_site_text(struct ld_db *db, int64_t stack_id, char *buf, size_t cap);

/* Group key by the site's function (replay's rp_options.group). */
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
