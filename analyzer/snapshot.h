/* SPDX-License-Identifier: MIT */
/*
 * snapshot.h - what the collector keeps of a process beside its heap
 * model: the sites (per stack and backing, per interval) in every
 * recording, and in a snapshot recording the snapshots themselves.
 *
 * A snapshot writes the model whole at an instant (db_snapshot_*): its
 * figures, heaps, every entry of the chunkmap, and who last held each
 * free range inside the holes (formermap.h). Instants: every interval
 * boundary, on demand, the end of the process, and the exact instants of the
 * peak heap extent and the worst untrimmable bytes. A new peak (worst) is
 * only known to be the peak once the figure has stopped rising, when the
 * heap has moved on; so from the instant a new one begins this module
 * keeps an undo record (the first earlier value of every chunkmap entry
 * and former range that changes) from which that instant's state is
 * rebuilt and written later: at the end of the process, or once the record
 * is half as large as the heap (then only if the new figure beats the stored
 * one by 1/16 and 64 KiB, so a creeping figure is rewritten now and then,
 * not at every step). Memory and writes stay bounded by the heap.
 *
 * The collector calls the hooks below around every change it makes to the
 * chunkmap and the heap model; a struct snap is one process's.
 */
#ifndef HP_SNAPSHOT_H
#define HP_SNAPSHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "chunkmap.h"
#include "db.h"
#include "heapmodel.h"

struct snap;

/* every_ns: the interval (sites, interval snapshots). With `snapshots`,
 * snapshots are written; without, only the sites. */
struct snap *snap_new(struct db *db, int64_t process_id, bool snapshots, int64_t every_ns);
void snap_free(struct snap *s);

/* A forked child's: the parent's former ranges as they are (at the fork),
 * nothing else; its process id is set when the child is known. */
struct snap *snap_fork(const struct snap *parent);
void snap_set_process(struct snap *s, int64_t process_id);

/* The process starts (its first record) at ns, with the heap model m: the
 * intervals start here; so do the peak and the worst (as hm_start). If
 * the model is not `whole` (a forked child's without its parent's heap),
 * there are sites but no snapshots. */
void snap_start(struct snap *s, struct hm *m, int64_t ns, bool whole);

/* ---- the model's changes ---- */

/* Before the entry at `addr` (if any) changes, is removed, or one is added
 * there. */
void snap_touch(struct snap *s, struct hm *m, uint64_t addr);
/* A chunk of the program's (kind HM_CHUNK) stopped occupying its heap at
 * ns: it is now the last holder of its bytes. */
void snap_vacated(struct snap *s, const struct chunk_entry *e, int64_t ns);
/* Heap memory [addr, addr + bytes) went away (the break fell, a heap was
 * unmapped). */
void snap_heap_gone(struct snap *s, uint64_t addr, uint64_t bytes);

/* ---- sites ---- */

void snap_alloc(struct snap *s, const struct chunk_entry *e);
/* e was freed at ns (or ended without a free seen). */
void snap_freed(struct snap *s, const struct chunk_entry *e, int64_t ns);
/* e is about to change size in place to new_size. */
void snap_resize(struct snap *s, const struct chunk_entry *e, uint64_t new_size);

/* ---- instants ---- */

/* Before an event at ns is applied (m as after the one before): the
 * interval boundaries up to ns. */
void snap_before(struct snap *s, struct hm *m, int64_t ns);
/* After an event at ns changed m, before hm_track: a new peak or worst. */
void snap_after(struct snap *s, struct hm *m, int64_t ns);
/* Asked for now: the state after the last event, at ns. */
void snap_demand(struct snap *s, struct hm *m, int64_t ns);
/* The process ended (its last event at ns): the exit snapshot, the peak and
 * worst still held, the last interval. */
void snap_end(struct snap *s, struct hm *m, int64_t ns);

/* Snapshots whose rebuilt figures did not match the model's at their
 * instant (a defect; the tests require 0). */
unsigned snap_check_failures(const struct snap *s);

#endif
