/* SPDX-License-Identifier: MIT */
/*
 * spool.h - the program's side of the event transport (schema/events.h):
 * one process file per process and one single-producer ring file
 * per thread, all MAP_SHARED with the collector.
 *
 * Writing an event is a few stores into shared memory and one release
 * store of the ring's head: no system call. A thread's first event maps
 * its ring (reusing one the collector has drained, or creating a file).
 * When a ring is full the writer waits for the collector; if the collector
 * is gone, recording stops for the process (the program runs on) and the
 * lost events are counted in the process file.
 */
#ifndef HP_SPOOL_H
#define HP_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "events.h"
#include "lock.h"

struct hp_ring {
	struct hp_ring_header *hdr;
	char *data;
	uint64_t size;        /* data bytes, a power of two */
	uint64_t reserved;    /* data bytes with their blocks, from the start */
	uint64_t head;        /* producer's copy of hdr->head */
	uint64_t tail_seen;   /* last tail read from the header */
	unsigned index;       /* the n of its file name */
	struct hp_ring *next; /* all rings of the process */
};

struct hp_spool {
	const char *dir;            /* the spool directory (the caller's, kept
				     * valid); no descriptor of it is kept */
	struct hp_proc_file *proc;  /* mapped process file */
	uint64_t serial;
	pid_t pid;
	pid_t collector;            /* 0: none to watch */
	size_t ring_bytes;
	struct hp_mutex lock;       /* the ring list and index */
	struct hp_ring *rings;
	bool stopped;               /* recording gave up */
	bool abandoned;             /* for good: the collector is gone */
	bool borrowed;              /* proc is the parent's (a forked child
				     * without files of its own): it only
				     * counts what is dropped */
	bool marked;                /* we wrote the spool's mark */
};

/*
 * Open the directory and create the calling process's process file (a new serial).
 * Returns 0 or a negative errno. Lock: none. Allocates: selfmem.
 */
int hp_spool_open(struct hp_spool *s, const char *dir, pid_t collector, size_t ring_bytes);

/*
 * After fork, in the child: forget the parent's rings and process file
 * (unmapping them) and create the child's own. Returns 0 or -errno; on
 * failure recording is stopped and the events the child could not record
 * are counted as dropped in its parent's process file.
 */
int hp_spool_reopen_child(struct hp_spool *s);

/* A ring for the calling thread (tid): a drained one of this process or a
 * new file (smaller than configured when the file size limit asks for
 * it), whose data gets its blocks as it is first written (a segment at a
 * time, fallocate or MADV_POPULATE_WRITE: never a SIGBUS). NULL if
 * recording stopped or there is no memory or space. Lock: none. */
struct hp_ring *hp_spool_ring(struct hp_spool *s, pid_t tid);

/*
 * Room for a record of `bytes` (a multiple of 8, less than 256 KiB) in r,
 * waiting for the collector if the ring is full. NULL if recording
 * stopped: the caller then drops the event (and counts it with
 * hp_spool_drop).
 */
void *hp_spool_begin(struct hp_spool *s, struct hp_ring *r, size_t bytes);

/* Publish the record begun at rec: its type word, then the ring's head. */
void hp_spool_commit(struct hp_ring *r, void *rec, uint32_t type, size_t bytes);

/* Count an event that could not be recorded. */
void hp_spool_drop(struct hp_spool *s);

/* Stop recording for good (collector gone); state STOPPED. */
void hp_spool_stop(struct hp_spool *s);

/*
 * No collector will read this process's files (it is gone, or never
 * started): stop recording and remove them (they hold up to a ring per
 * thread, in memory when the spool is in /dev/shm, until reboot). The
 * directory goes too if they were the last in it; a collector's mark keeps
 * it otherwise, for the next heapprof to sweep (cmd-run.c). Lock: none.
 */
void hp_spool_abandon(struct hp_spool *s);

/*
 * Write the spool's mark (see cmd-run.c) naming this process, for a spool
 * this process made itself: if it is killed before its collector replaces
 * the mark, the next heapprof removes the spool. 0 or -errno. Lock: none.
 */
int hp_spool_mark(struct hp_spool *s);

/*
 * At exit: if the collector is gone, nobody will read this process's files,
 * so remove them (see hp_spool_abandon). Lock: none.
 */
void hp_spool_exit(struct hp_spool *s);

#endif
