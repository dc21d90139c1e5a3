/* SPDX-License-Identifier: MIT */
/*
 * rows.h - the collector's two halves and the state they share.
 *
 * collect.c is the transport: it finds the spool's processes and
 * rings, merges each process's records by sequence number, checks them and
 * watches the processes end. rows.c turns each record it hands over into
 * the process's model (its chunks, heaps, stacks, modules, threads: the
 * heap model through occupancy.h) and into rows (db.h), and writes a
 * process's last rows and summary when it is over. The structures below
 * are both halves' (struct proc and struct collector hold the fields of
 * each); only the two files include this header.
 */
#ifndef HP_ROWS_H
#define HP_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "chunkmap.h"
#include "db.h"
#include "events.h"
#include "heapmodel.h"
#include "occupancy.h"

struct snap;

struct ring_in {
	struct hp_ring_header *hdr;
	char *data;
	uint64_t size;
	bool broken;   /* its header was scribbled on: not read any more */
	uint64_t tail; /* consumed here; published to the producer in batches */
	uint64_t published; /* the tail the producer last saw */
	uint64_t head; /* what the producer had published when we looked */
	uint64_t scan_seq, scan_pos; /* see find_ahead */
	uint64_t pf_slot, pf_entry;  /* see ring_prefetch */
	unsigned pf_slot_n, pf_entry_n;
};

/* Records copied out of the rings, waiting for their turn: a priority
 * queue by sequence number (a binary min-heap in an array). A ring is not
 * in sequence order (a free is numbered before the allocator works, and
 * what the allocator reports meanwhile is numbered and written first), so
 * the merge looks at all of them. */
struct pending {
	uint64_t seq;
	struct hp_ev *rec;
};

struct seq_queue {
	struct pending *v;
	size_t n, cap;
};

struct module_in {
	uint64_t base, lo, hi;
	int64_t image_id, module_id;
	bool loaded;
};

struct thread_in {
	int32_t tid;
	int64_t started_ns, ended_ns;
	int64_t realloc_from; /* chunk id of the chunk this thread's realloc is moving */
};

struct proc {
	char stem[64];         /* P<pid>.<serial> */
	pid_t pid;
	uint64_t serial, start_ticks;
	struct hp_proc_file *proc;
	struct ring_in *rings;
	unsigned nrings;
	struct seq_queue pending;
	uint64_t next_seq;
	uint64_t taken;        /* the process file's counter, last read */
	int64_t process_id;
	struct db_process row;
	char *exe, *argv_json;
	bool dead, finished, got_process, exec_ended;
	bool waiting; /* the merge stopped at a number not written yet */
	int pidfd;
	int64_t now;           /* ordered time of the record being applied */
	int64_t last_ns, end_ns;
	int wait_status;
	bool waited;
	int exit_record_status;
	bool has_exit_record;
	struct chunkmap *chunks; /* chunks whose rows are not complete, and the
				  * ranges the allocator holds itself */
	struct hm model;         /* the heaps they occupy */
	struct occ_hooks hooks;  /* what the model's changes do to rows and snapshots */
	uint64_t refill, refill_bytes; /* the range an allocation is about to
					* occupy whole (on_alloc) */
	struct collector *col;
	bool modeled;            /* the model is whole (a forked child's is in
				  * snapshot mode, from its parent's at the fork) */
	struct snap *snap;       /* its sites, and its snapshots */
	bool has_summary;
	struct db_summary summary; /* written at the end */
	int64_t peak_live_ns;
	struct tl_point *tl;     /* the timeline: every tl_step ns at most */
	size_t ntl, tl_cap;
	int64_t tl_step, tl_next;
	uint64_t peak_live_bytes; /* live chunks, heaps and mmap, at most */
	int64_t *stack_map; /* local stack id -> global */
	size_t stack_cap;
	struct module_in *mods;
	size_t nmods;
	struct thread_in *threads;
	size_t nthreads, last_thread;
	uint64_t events;
	struct pmap *pmaps;   /* the program's own mappings, still mapped */
	size_t npmaps;
};

struct pmap {
	uint64_t addr, len;
	int64_t ns, stack_id;
};

struct tl_point {
	int64_t ns;
	uint64_t extent, live, cached, untrimmable;
};

/* A global stack: its frames as (image, offset). */
struct gstack {
	uint64_t hash;
	int64_t id;
	unsigned depth;
	int64_t *image_ids;
	uint64_t *offsets;
	struct gstack *next;
};

#define GSTACK_BUCKETS 65536

/* The outer frames of a stack that stores all of its own (schema: table
 * stack), from its frame `from` on: what a new stack can name as its tail. */
struct gtail {
	uint64_t hash;
	const struct gstack *g;
	unsigned from;
	struct gtail *next;
};

/* Snapshot mode: a parent's model at a fork, until its child takes it. */
struct fork_model {
	int64_t parent_id;
	uint64_t fork_ns; /* the parent's FORK record's clock reading */
	struct chunkmap *chunks;
	struct hm model;
	struct snap *snap;
	struct fork_model *next;
};

/* Models not taken yet at most: a child that never shows up (its fork
 * failed) must not hold a heap's worth of memory for the rest of the run. */
#define MAX_FORK_MODELS 64

/* A recorded parent's wait call returned this child's end (REAP record),
 * waiting for the child's process to be finished. */
struct reap {
	pid_t pid;
	int status;
	int64_t ns;
};

struct collector {
	struct db *db;
	char *dir;
	int dirfd;
	bool attach;
	struct proc **procs;
	size_t nprocs;
	struct gstack **gstacks;
	struct gtail **gtails; /* GSTACK_BUCKETS */
	int64_t next_stack_id, next_chunk_id, next_process_id;
	uint64_t scanned_at; /* last look at the spool directory */
	uint64_t events, chunks, dropped, truncated, bad;
	uint64_t leaked_bytes, leaked_chunks, peak_live;
	bool snapshots;        /* a snapshot recording: no chunk or heap_event rows */
	int64_t every_ns;      /* the interval of sites and snapshots */
	struct fork_model *forks;
	unsigned nforks, snap_failures;
	uint64_t demands;      /* snapshots asked for */
	bool demand;           /* a request arrived: snapshot every process */
	char **requests;       /* the request files, removed once served */
	size_t nrequests;
	struct reap *reaps;
	size_t nreaps, reaps_cap;
	uint64_t merge_ns; /* the clock when the merge began */
	bool perturb;      /* a test of the self-check (selfcheck.h) */
	bool large;        /* a process's model has held LARGE_MODEL chunks */
	unsigned scan_pause_ms; /* tests: a slow collector (collect_new) */
};


/* The process with this pid and serial, or NULL. */
struct proc *rows_find_proc(struct collector *c, pid_t pid, uint64_t serial);

/* Write (or rewrite) its process row. */
void rows_write_process(struct collector *c, struct proc *pr);

/* A new process's model, snapshots and timeline, before its process_id is
 * taken from c->next_process_id. */
void rows_new_proc(struct collector *c, struct proc *pr);

/* Whether the record can be applied now: in a snapshot recording a forked
 * child's first record waits for its parent's model at the fork, unless
 * the parent is done (or unknown), or this is the end (final). */
bool rows_ready(struct collector *c, struct proc *pr, const struct hp_ev *e, bool final);

/* Apply a record that passed its checks, at its ordered time ns: to the
 * model, and as rows. */
void rows_apply(struct collector *c, struct proc *pr, const struct hp_ev *e, int64_t ns);

/* How the process ended, from what is known (pr->row's end_reason and
 * status): set when it is finished, and again if its reap comes later. */
void rows_set_end(struct collector *c, struct proc *pr);

/* The process is over and merged: its exit snapshot, its last rows (leaks,
 * threads, mappings), its summary and end; its model freed. */
void rows_finish(struct collector *c, struct proc *pr);

/* What the rows' half keeps for the whole run (stacks, fork models). */
void rows_free(struct collector *c);

#endif
