/* SPDX-License-Identifier: MIT */
/*
 * db.h - writing a heapprof database (schema/heapprof.sql).
 *
 * The collector loads rows in large transactions, committed every 100 ms
 * so that a collector crash loses at most that much; the tables and views
 * are committed before the first row, indexes come after the load, then
 * the frames are symbolized. Until db_finish() the meta key "complete"
 * says 0, so a half-written database is never passed off as whole.
 */
#ifndef HP_DB_H
#define HP_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codes.h"

struct db;

/* The schema text (generated from schema/heapprof.sql). */
extern const char hp_schema_sql[];

/* Open the database file `path` (already created, empty, by the caller)
 * and create the tables and views, committed. Returns NULL with a message
 * in err. */
struct db *db_create(const char *path, char *err, size_t errcap);

/* Remove the rollback journal of the database at `path`, if any: before a
 * finished database replaces `path`, as a journal a killed run left there
 * would be "rolled back" into it, corrupting it. (A new, empty file needs
 * nothing: SQLite deletes a journal next to an empty database.) */
void db_remove_journal(const char *path);

/* Begin/commit batching: db_tick commits if the batch is older than
 * 100 ms. Errors are sticky: db_failed() returns the first message. After
 * one (the disk full, the file size limit reached) nothing more is
 * written: the transaction that failed is rolled back and the rest is
 * dropped, so the file holds what was committed before, marked
 * incomplete. */
void db_tick(struct db *db);
const char *db_failed(struct db *db);

void db_meta(struct db *db, const char *key, const char *value);

/* Anonymous memory the program mapped itself (unmapped_ns, stack_id 0:
 * none). */
void db_program_mmap(struct db *db, int64_t process_id, uint64_t address, uint64_t bytes,
		     int64_t mapped_ns, int64_t unmapped_ns, int64_t stack_id);

/* The program marked an instant (heapprof_mark). */
void db_mark(struct db *db, int64_t process_id, int64_t ns, const char *name);
/* An allocator setting (events.h's hp_ev_setting): an environment line
 * read at start, or (line NULL) a mallopt(param, value) call. */
void db_setting(struct db *db, int64_t process_id, int64_t ns, int param, int value,
		const char *line);

struct db_process {
	int64_t id;
	int64_t pid, ppid;
	int64_t parent_id, exec_from, fork_ns;  /* 0: none */
	const char *exe;
	const char *argv_json;
	int64_t started_ns, ended_ns;           /* ended 0: not ended */
	const char *end_reason;                 /* NULL: unknown */
	int64_t exit_status, exit_signal;       /* -1: none */
	int64_t heap_start;
	int64_t dropped_events, truncated_records;
	int64_t bad_records;                    /* dropped: they failed their checks */
};

/* Insert or replace a process row (by id). */
void db_process(struct db *db, const struct db_process *p);

void db_thread(struct db *db, int64_t process_id, int64_t tid, int64_t started_ns,
	       int64_t ended_ns);

/* The image id of (path, build id hex or NULL), inserting it if new. */
int64_t db_image(struct db *db, const char *path, const char *build_id);

int64_t db_module(struct db *db, int64_t process_id, int64_t image_id, uint64_t base,
		  uint64_t lo, uint64_t hi, int64_t loaded_ns);
void db_module_unloaded(struct db *db, int64_t module_id, int64_t ns);

/* A new stack of depth frames: image_ids[i] (0: unknown) and offsets[i]
 * of its first own, which it stores; tail_stack (0: none, own is depth)
 * holds the rest, from its frame tail_from on (schema: table stack). */
void db_stack(struct db *db, int64_t stack_id, unsigned depth, unsigned own, int64_t tail_stack,
	      unsigned tail_from, const int64_t *image_ids, const uint64_t *offsets);

/* Times are the collector's ordered times (unique within a process). */
struct db_chunk {
	int64_t chunk_id, process_id;
	uint64_t address, size, chunk_bytes;
	int backing, call;
	int64_t alloc_ns, alloc_tid;
	int64_t free_ns, free_tid; /* free_ns 0: live at the end */
	int fate;                  /* 0: unknown */
	int64_t released_ns;       /* 0: none */
	int64_t stack_id;          /* 0: none */
	int64_t realloc_from;      /* 0: none */
	int align_log2;            /* memalign: log2 of its alignment; else 0 */
	/* of its process (its row): what a brk chunk's address is stored
	 * relative to */
	int64_t heap_start;
};

/* Chunk rows are buffered: ids must come in increasing order. */
void db_chunk(struct db *db, const struct db_chunk *c);

/* Set released_ns of a chunk row written before (freed at free_ns). */
void db_chunk_released(struct db *db, int64_t chunk_id, int64_t free_ns, int64_t released_ns);

/* A heap_event row; heap_start is the process's (its row's): the row is
 * stored relative to it (codes.h). Rows are numbered in the order written.
 * size and old_size: a resize's request sizes (-1: NULL). */
void db_heap_event(struct db *db, int64_t process_id, int64_t ns, int kind, uint64_t address,
		   uint64_t bytes, int64_t value, bool has_value, int64_t size, int64_t old_size,
		   uint64_t heap_start);

struct db_summary {
	int64_t process_id;
	uint64_t extent, live, cached, allocator, top_free, untrimmable, trim_reclaimable;
	uint64_t resident;
	uint64_t mmap, retained;
	uint64_t peak_live, peak_extent, worst_untrimmable;
	int64_t peak_live_ns, peak_extent_ns, worst_ns;
	uint64_t pin_address, pin_bytes;   /* pin_bytes 0: no pin */
	const char *pin_state;
	int64_t pin_stack_id;
};

void db_summary(struct db *db, const struct db_summary *s);
void db_timeline(struct db *db, int64_t process_id, int64_t ns, uint64_t extent, uint64_t live,
		 uint64_t cached, uint64_t untrimmable);

/* ---- snapshots (a "snapshots" recording) and sites (both kinds) ---- */

struct db_snapshot {
	int64_t process_id, ns;
	const char *reason; /* exit, peak, worst, interval, demand */
	uint64_t extent, live, cached, allocator, top_free, untrimmable, trim_reclaimable;
	uint64_t mmap, retained, live_chunks, cached_chunks, mmap_chunks;
};

struct db_snapshot_chunk {
	uint64_t address, size, chunk_bytes;
	int occupant, backing, call, fate; /* codes.h; call, fate 0: NULL */
	int64_t alloc_ns, alloc_tid;       /* alloc_ns 0: NULL (a range) */
	int64_t free_ns, free_tid;         /* free_ns 0: NULL */
	int64_t stack_id;                  /* 0: NULL */
};

/* A snapshot is written as db_snapshot_begin, its heaps, chunks and
 * formers, then db_snapshot_end with its figures (its row comes last, so a
 * snapshot row in the file has all its rows). Returns its id. */
int64_t db_snapshot_begin(struct db *db);
void db_snapshot_heap(struct db *db, uint64_t start, uint64_t end, int backing);
void db_snapshot_chunk(struct db *db, const struct db_snapshot_chunk *c);
/* The open snapshot's chunk rows, n of them, made by the writer thread:
 * row(arg, i, &r) for each i in order, then done(arg) (called also if the
 * rows are dropped after a write failure). What they are made of must not
 * change until done: the collector goes on meanwhile. Snapshots of a heap
 * of a million chunks are written so without holding up the collector and
 * the program for the second the writer takes. */
void db_snapshot_chunks(struct db *db, size_t n,
			void (*row)(void *arg, size_t i, struct db_snapshot_chunk *r),
			void (*done)(void *arg), void *arg);
/* A run of resident pages of the snapshot's heaps. */
void db_snapshot_resident(struct db *db, uint64_t address, uint64_t bytes);
/* Of the hole at `address`, the bytes that `chunks` chunks of stack_id
 * last held, the last of them until vacated_ns. */
void db_snapshot_former(struct db *db, uint64_t address, uint64_t bytes, int64_t stack_id,
			int64_t vacated_ns, uint64_t chunks);
void db_snapshot_end(struct db *db, const struct db_snapshot *s);
/* A snapshot whose state is that of snapshot `owner` (written, with rows of
 * its own): its figures and instant are s's, its rows owner's (rows_of).
 * Returns its id, 0 if owner is not one. */
int64_t db_snapshot_same(struct db *db, int64_t owner, const struct db_snapshot *s);
/* Remove a snapshot written before (replaced, or thinned out). */
void db_snapshot_delete(struct db *db, int64_t snapshot_id);

#define DB_LIFETIMES 10 /* freed within 1 us, 10 us, ... 100 s, later */

struct db_site {
	int64_t stack_id;
	int backing;
	uint64_t allocs, alloc_bytes, frees, free_bytes, peak_live_bytes;
	uint64_t freed_in[DB_LIFETIMES];
};

/* Insert or update an interval (interval_id 0: a new one); returns its id. */
int64_t db_interval(struct db *db, int64_t interval_id, int64_t process_id, int64_t start_ns,
		    int64_t end_ns);
/* One site's figures in an interval. */
void db_site(struct db *db, int64_t interval_id, const struct db_site *s);
/* Interval `from`'s sites added into `into`'s, `from` removed, `into` now
 * [start_ns, end_ns). */
void db_interval_merge(struct db *db, int64_t into, int64_t from, int64_t process_id,
		       int64_t start_ns, int64_t end_ns);

/* A process's model has grown large (rows.c: LARGE_MODEL chunks): the
 * addresses still to come are symbolized at the end, in db_finish, once
 * the models are freed (while the indexes are built), and libdw's memory
 * (12 MiB of libc's debug sections) is let go of now. The collector's
 * peak is a large model's; it is then without libdw, for a wait at the end
 * (python3, 7000 addresses: ~50 ms). A small model's run symbolizes as it
 * goes. */
void db_large_model(struct db *db);

/* A snapshot recording's: the file is rewritten without its free pages
 * when finishing (it deletes the snapshots it replaces), and at most 16
 * batches wait for the writer (a snapshot is a burst of rows: memory stays
 * bounded by the heap). Before the first row. */
void db_bounded(struct db *db);

/* The last commit: indexes, symbolized frames (max_frames per stack),
 * meta complete=1, a self-contained file (journal_mode DELETE).
 * Returns 0, or -1 with a message in err (the file then holds what was
 * committed, marked incomplete). Closes the database. */
int db_finish(struct db *db, char *err, size_t errcap);

/* Close without finishing (the collector failed): what was committed stays,
 * marked incomplete. */
void db_abandon(struct db *db);

#endif
