/* SPDX-License-Identifier: MIT */
/*
 * frames.h - a process at chosen instants, with everything the HTML report,
 * `heapprof diff` and the baseline gate show of it: at each instant (a
 * frame) the figures, the pins and holes, each site's share of the memory
 * (by stack: the holes its chunks last held, the weight of its pins, its
 * cached chunks) and, if asked, the heap map: each heap as cells of equal
 * bytes with the bytes of each state in them; over the run the peaks, the
 * worst instant, the leaks by stack and the timeline.
 *
 * Both kinds of recording: a full one is replayed (rp_analyze for the run
 * and the end, rp_frames for the other instants, two passes in all); a
 * snapshot recording has its frames at the snapshots it stored, the run's
 * figures from heap_summary and its timeline from heap_timeline.
 * Everything here is computed from the replay's results (replay.h) and the
 * loader (load.h); the callers only format it.
 */
#ifndef HP_FRAMES_H
#define HP_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "load.h"
#include "replay.h"

/* The states of a cell's bytes. */
enum { FR_LIVE, FR_CACHED, FR_ALLOCATOR, FR_HOLE, FR_TOP, FR_NSTATES };

struct fr_cell {
	uint64_t bytes[FR_NSTATES]; /* add up to the cell's bytes inside the heap */
	struct rp_range big;        /* the largest range overlapping it (bytes 0: none) */
	int32_t hole;               /* the largest hole overlapping it: index into the
				     * frame's r->holes, -1: none */
};

struct fr_map {
	unsigned heap;             /* index into r->heaps */
	uint64_t start, end, top_end;
	uint64_t cell_bytes;       /* a power of two, at least 16 */
	size_t ncells;
	struct fr_cell *cells;
};

/* A site's bytes: by stack (key = stack_id) or by allocating function (key
 * from ld_group_function; stack_id the group's largest stack). */
struct fr_site {
	int64_t key, stack_id;
	uint64_t untrimmable;      /* the holes its chunks last held */
	uint64_t pinned;           /* the weight of its pins */
	uint64_t cached;           /* its freed chunks a tcache or fastbin still holds */
	uint64_t leaked;           /* its chunks live at the end of the process */
	uint64_t leaked_chunks;
};

/* A site's retained bytes (README's words): its share of the process's,
 * the holes its chunks last held and its chunks a cache holds. */
static inline uint64_t
fr_retained(const struct fr_site *s)
{
	return s->untrimmable + s->cached;
}

struct fr_frame {
	char label[16];            /* exit, worst, peak, time; a snapshot's reason */
	int64_t snapshot_id;       /* 0: replayed */
	struct rp_result *r;       /* figures, heaps, pins from the top (at most `keep`),
				    * holes largest first (at most `keep`, and those the
				    * map's cells name), their sites by stack */
	size_t npins, nholes;      /* all of them */
	struct fr_site *sites;     /* by stack, by stack id; leaked bytes are 0 here */
	size_t nsites;
	struct fr_map *maps;       /* one per heap, if cells were asked for */
	size_t nmaps;
	struct rp_range *mmaps;    /* the largest live mmap chunks, largest first */
	size_t nmmaps;
};

struct fr_request {
	bool exit, worst, peak;    /* the instants by name */
	const int64_t *times;      /* more instants, ns after the process started
				    * (a snapshot recording: ignored) */
	size_t ntimes;
	bool snapshots;            /* a snapshot recording: every snapshot */
	bool strict;               /* a snapshot recording without the exit, worst
				    * or peak snapshot asked for is an error (else
				    * that frame is missing: index -1) */
	size_t cells;              /* the heap map: at most this many cells a heap
				    * (0: no map) */
	size_t keep;               /* pins and holes kept a frame */
	size_t timeline;           /* points of a replayed timeline (0: none) */
};

struct fr_process {
	struct ld_process *p;
	/* over the run (absolute times) */
	uint64_t peak_live, peak_extent, worst_untrimmable;
	int64_t peak_live_ns, peak_extent_ns, worst_ns;
	uint64_t leaked_bytes, leaked_chunks;
	struct fr_site *leaks;     /* by stack, by stack id (only leaked bytes) */
	size_t nleaks;
	struct rp_point *timeline;
	size_t npoints;
	struct fr_frame *frames;   /* by time */
	size_t nframes;
	int exit, worst, peak;     /* the named frames: index, or -1 */
};

/* The frames of p that q asks for, into out. Returns 0, or -1 with a
 * message in err (a snapshot recording without the snapshot asked for,
 * a damaged file): then out holds nothing. Allocates: yes. */
int fr_analyze(struct ld_db *db, struct ld_process *p, const struct fr_request *q,
	       struct fr_process *out, char *err, size_t errcap);
void fr_free(struct fr_process *x);

/* A frame's sites with the process's leaks, grouped by allocating function
 * or by stack, into *out (the caller frees it), in no particular order;
 * frame NULL: the leaks alone. Returns how many. */
size_t fr_group_sites(struct ld_db *db, const struct fr_process *x, const struct fr_frame *f,
		      bool by_function, struct fr_site **out);

#endif
