/* SPDX-License-Identifier: MIT */
/*
 * replay.h - a process's heaps rebuilt from its recording, at any instant.
 *
 * Pure logic: the caller loads chunks and heap events (load.c does it from
 * a database) and asks for the figures of DESIGN.md at the end, at the
 * instant of peak heap extent, at the worst instant (most untrimmable
 * bytes) or at a given time, with the pins and holes of that instant.
 *
 * The replay walks occupancy changes in time order (allocations, and the
 * moments chunks stop occupying the heap) with, per heap, a bitmap of
 * occupied 16-byte granules (a two-level summary finds the highest one
 * fast) and the chunks by address; so untrimmable bytes are known after
 * every event and the worst instant is found in one pass.
 */
#ifndef HP_REPLAY_H
#define HP_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codes.h" /* backing, fate, heap_event kinds, occupants */
#include "heapmodel.h"


/* One chunk row. Times are 0 where the row has NULL. */
struct rp_chunk {
	uint64_t addr, bytes, size;
	int64_t alloc_ns, free_ns, released_ns;
	int64_t chunk_id, stack_id;
	uint8_t backing, fate;
};

/* One heap_event row. */
struct rp_event {
	int64_t ns;
	uint64_t addr, bytes;
	int64_t value;
	bool has_value;
	uint8_t kind;
};

/* Anonymous memory the program mapped itself; unmapped_ns 0: never. */
struct rp_pmap {
	uint64_t bytes;
	int64_t mapped_ns, unmapped_ns;
	bool pymalloc;           /* an arena of CPython's pymalloc */
};

struct rp_input {
	struct rp_chunk *chunks; /* any order */
	size_t nchunks;
	struct rp_pmap *pmaps;   /* any order */
	size_t npmaps;
	struct rp_event *events; /* in time order */
	size_t nevents;
	uint64_t heap_start;     /* the break when recording began */
	int64_t started_ns, ended_ns;
	/* A forked child starts with its parent's heap as it was at fork_ns:
	 * the parent's input, or NULL. */
	const struct rp_input *parent;
	int64_t fork_ns;
};

enum rp_at { RP_AT_EXIT, RP_AT_WORST, RP_AT_PEAK, RP_AT_TIME };

struct rp_figures {
	int64_t at_ns;
	uint64_t extent;           /* heap extent: all heaps of the process */
	uint64_t resident;         /* of it, resident pages (heapmodel.h) */
	uint64_t live;             /* live chunks of the program in its heaps */
	uint64_t cached;           /* freed, held in a tcache or fastbin */
	uint64_t fastbin;          /* of cached, what fastbins hold */
	uint64_t allocator;        /* the allocator's own bytes in the heaps */
	uint64_t top_free;
	uint64_t untrimmable;      /* = extent - live - cached - allocator - top_free */
	uint64_t untrimmable_resident; /* of it, the bytes in resident pages */
	uint64_t trim_reclaimable; /* resident bytes malloc_trim(0) gives back (hm_trim) */
	uint64_t trim_top;         /* of those, the brk heap's top */
	uint64_t mmap;             /* live mmap chunks */
	uint64_t retained;         /* extent - live (README's words) */
	uint64_t live_chunks, cached_chunks, mmap_chunks;
	/* out of the heaps: what the program mapped itself (rp_pmap) */
	uint64_t pymalloc, pymalloc_arenas;      /* pymalloc's arenas */
	uint64_t program_mmap, program_mmaps;    /* the others */
};

struct rp_frame_ref {
	int64_t stack_id;
};

struct rp_pin {
	uint64_t addr, bytes;
	uint64_t weight;           /* becomes trimmable if this and every pin above go */
	int64_t alloc_ns;          /* 0: the allocator's own */
	int64_t chunk_id, stack_id;
	uint8_t state;             /* RP_LIVE, RP_CACHED, RP_STASHED, RP_ALLOCATOR */
	uint8_t cache;             /* cached, stashed: HP_FATE_TCACHE or HP_FATE_FASTBIN */
	unsigned heap;
};

/* RP_STASHED: free space the allocator put into a tcache or fastbin
 * itself (a chunk it took from a bin for later requests of its size, or
 * a remainder it split off): a real chunk, never one of the program's. */
enum { RP_LIVE = 1, RP_CACHED = 2, RP_ALLOCATOR = 3, RP_STASHED = 4 };

struct rp_site {
	int64_t stack_id;          /* a representative stack of the group */
	uint64_t bytes, chunks;
};

struct rp_hole {
	uint64_t addr, bytes;
	uint64_t trim_reclaimable; /* resident whole pages malloc_trim madvises */
	unsigned heap;
	struct rp_site *sites;     /* the chunks that last occupied it, by stack */
	size_t nsites;
};

struct rp_heap {
	uint64_t start, end;       /* [start, end): extent */
	uint8_t kind;              /* HP_BACKING_BRK or HP_BACKING_ARENA (a mapped heap) */
	uint64_t occupied, top_end;
	uint64_t resident;
};

struct rp_point {               /* the timeline */
	int64_t ns;
	uint64_t extent, live, cached, untrimmable;
};

struct rp_result {
	struct rp_figures at;      /* at the instant asked for */
	enum rp_at what;
	bool past_end;             /* RP_AT_TIME after the process ended: at its end */
	/* over the whole run */
	uint64_t peak_live, peak_extent, worst_untrimmable;
	int64_t peak_live_ns, peak_extent_ns, worst_ns;
	uint64_t leaked_bytes, leaked_chunks;  /* live at the end (requested bytes) */
	struct rp_heap *heaps;
	size_t nheaps;
	struct rp_pin *pins;       /* the top pin first, then down the chain */
	size_t npins;
	struct rp_hole *holes;     /* largest first */
	size_t nholes;
	struct hm_holder *holders; /* who holds the holes, by site (heapmodel.h) */
	size_t nholders;
	struct rp_point *timeline;
	size_t npoints;
};

/* A range occupying a heap at the instant, or a live mmap chunk
 * (rp_options.visit). */
struct rp_range {
	uint64_t addr, bytes;      /* chunk bytes */
	int64_t stack_id, chunk_id, alloc_ns; /* 0: not a chunk of the program's */
	uint8_t state;             /* RP_LIVE, RP_CACHED, RP_STASHED, RP_ALLOCATOR */
	unsigned heap;             /* index into rp_result.heaps (not for mmap) */
};

/* Called once the result of an instant is complete (heaps, pins, holes),
 * before it is returned: each occupied range of each heap, lowest first,
 * heap after heap; then the live mmap chunks of the process's own (a
 * forked child's inherited ones are counted in the figures only). */
struct rp_visit {
	void (*range)(void *arg, const struct rp_result *r, const struct rp_range *x);
	void (*mmap)(void *arg, const struct rp_result *r, const struct rp_range *x);
	void *arg;
};

struct rp_options {
	enum rp_at at;
	int64_t at_ns;             /* RP_AT_TIME: ns since the process started */
	size_t top;                /* pins and holes to describe (0: none) */
	size_t timeline_points;    /* 0: no timeline */
	/* Sites are grouped by this key (e.g. the allocating function); NULL:
	 * by stack. Returns a group id for a stack. */
	int64_t (*group)(void *arg, int64_t stack_id);
	void *group_arg;
	const struct rp_visit *visit; /* NULL: none */
};

/* Returns NULL only if memory runs out. */
struct rp_result *rp_analyze(const struct rp_input *in, const struct rp_options *opt);

/* The heaps at each of n instants (`at`: ascending times of the process's
 * clock; INT64_MAX is its end) in one replay: for each, a result as
 * rp_analyze gives at an instant (figures, heaps, pins, holes and their
 * sites; opt->visit called), without the run's peaks, worst, leaks and
 * timeline, handed to fn, which owns it (rp_free). opt->at is ignored. */
void rp_frames(const struct rp_input *in, const struct rp_options *opt, const int64_t *at,
	       size_t n, void (*fn)(void *arg, size_t k, struct rp_result *r), void *arg);

/* When the process ended, or its last recorded event if later (or if
 * its end is not known). */
int64_t rp_end_ns(const struct rp_input *in);

/* ---- a stored snapshot (a snapshot recording) ---- */

/* What occupies a range (the occupant table's codes). */

struct rp_snap_entry {
	struct rp_chunk c;   /* for a range: addr and bytes (and fate: its cache) */
	uint8_t occupant;
};

/* Of the hole at addr, the bytes that `chunks` chunks of `stack_id` last
 * held, the last of them until vacated_ns. */
struct rp_former {
	uint64_t addr, bytes;
	int64_t stack_id, vacated_ns;
	uint64_t chunks;
};

/* A run of resident pages. */
struct rp_run {
	uint64_t addr, bytes;
};

struct rp_snapshot {
	int64_t ns;
	struct rp_heap *heaps;          /* start, end, kind */
	size_t nheaps;
	struct rp_run *resident;        /* the heaps' resident pages */
	size_t nresident;
	struct rp_snap_entry *entries;  /* any order */
	size_t nentries;
	struct rp_former *formers;      /* any order */
	size_t nformers;
};

/* The figures, pins and holes (with their former sites) of a snapshot, as
 * rp_analyze gives them at an instant; the run's peaks, worst and leaks
 * are not in it (the caller has them from heap_summary and the exit
 * snapshot). `in` (or NULL): the process's own mappings (in->pmaps). */
struct rp_result *rp_snapshot(const struct rp_snapshot *s, const struct rp_input *in,
			      const struct rp_options *opt);
void rp_free(struct rp_result *r);

#endif
