/* SPDX-License-Identifier: MIT */
/*
 * advise.h - what-if replays for `heapprof advise`: a process's recorded
 * requests as one ordered sequence, the figures a replay yields, and the
 * allocators it can be replayed through (heapprof's own glibc heap code
 * under chosen settings, advise-glibc.c; the textbook policies, policy.h).
 *
 * The sequence is derived from the chunk rows (the `chunk` view) and the
 * heap events:
 *   - an allocation at its alloc_ns, with its call (malloc, calloc,
 *     realloc of NULL, memalign) and requested size;
 *   - a free at its free_ns; a free whose chunk a later realloc replaced
 *     (realloc_from) is that realloc, at the old chunk's free time (its
 *     ticket is taken before the new chunk's, as in the preload);
 *   - a realloc that stayed in place at each `resize` heap event, with
 *     the sizes asked for before and after it that the event row holds (a
 *     chunk row keeps only the last; its bytes do not tell them, as a chunk
 *     may be up to 16 bytes more than asked for when the rest was too small
 *     to split off); where a row lacks them, bytes - 8;
 *   - memalign's alignment is not recorded: it is taken as the largest
 *     power of two (at most a page) that divides the address the program
 *     got, which is the alignment asked for or a multiple of it;
 *   - malloc_trim(0) where the recording shows one released pages (a run
 *     of madvise events); a malloc_trim that released nothing leaves no
 *     trace;
 *   - the settings (table malloc_setting): the environment lines the
 *     allocator read at start (adv_seq.env), and each mallopt() call where
 *     the program made it;
 *   - a thread's end (its tcache is flushed then).
 * Requests are ordered by time: within a process no two events share one.
 */
#ifndef HP_ADVISE_H
#define HP_ADVISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkmap.h"
#include "heapmodel.h"

enum adv_op {
	ADV_MALLOC = 1,
	ADV_CALLOC,
	ADV_REALLOC,     /* from `from` (0: none, a realloc of NULL) into `id` */
	ADV_MEMALIGN,
	ADV_FREE,
	ADV_TRIM,        /* malloc_trim(0) */
	ADV_THREAD_EXIT,
	ADV_MALLOPT,     /* mallopt((int32_t)id, (int32_t)size) */
};

/* One request. Objects are numbered from 1 by the chunk row that holds
 * them; a moving realloc hands its object on to the new row's number. */
struct adv_req {
	int64_t ns;
	uint64_t size;     /* requested bytes */
	uint64_t rec;      /* for the self-check, what the recording got: the
			    * chunk's address (brk, arena), its bytes (mmap);
			    * a free: where the chunk went (observe.h's
			    * hp_fate); 0: nothing to check */
	uint32_t id, from;
	int32_t tid;
	uint8_t op;
	uint8_t rec_backing; /* 1 brk, 2 mmap, 3 arena (a thread heap) */
	uint8_t align_log2;  /* memalign: the alignment, a power of two */
};

struct adv_seq {
	int64_t process_id, pid;
	uint64_t heap_start;   /* the break when recording began */
	struct adv_req *reqs;
	size_t nreqs;
	uint32_t nobjects;     /* ids are 1..nobjects */
	int64_t *chunk_ids;    /* each object's first chunk row (by id - 1) */
	size_t nthreads;       /* distinct threads that allocated or freed */
	uint64_t max_request;  /* the largest request */
	size_t derived_memalign; /* memalign requests whose alignment is derived */
	size_t derived_resize;   /* sizes of in-place reallocs not recorded, derived */
	char **env;            /* the start-up settings, "NAME=value" lines */
	size_t nenv;
	size_t nmallopt;       /* ADV_MALLOPT requests */
};

struct sqlite3;

/* Load process_id's requests (its pid names its main thread) from a
 * database opened with views enabled. Returns 0, or -1 with a message. */
int adv_seq_load(struct sqlite3 *h, int64_t process_id, int64_t pid, struct adv_seq *s,
		 char *err, size_t errcap);
void adv_seq_free(struct adv_seq *s);

/* A replay's figures (DESIGN.md's words), over all heaps. */
struct adv_figs {
	uint64_t extent, untrimmable, retained; /* at the end */
	uint64_t worst_untrimmable;             /* the most at once */
	int64_t worst_ns;
	uint64_t peak_extent;
	uint64_t peak_rss;  /* the most heap pages touched and not given back,
			     * plus live mmap chunks, at once */
	uint64_t top_pin_addr, top_pin_bytes; /* at the end (recorded addresses) */
	uint32_t top_pin_object;              /* its object (0: the allocator's own) */
	uint64_t mismatches;                  /* self-check: chunks not where recorded */
	char first_mismatch[160];
};

/* The figures kept event by event: a heap model (heapmodel.h) fed with
 * what occupies the heaps, the same one the collector keeps. */
struct adv_model {
	struct chunkmap *map;
	struct hm m;
	uint64_t peak_rss;
	int64_t now;
};

void adv_model_init(struct adv_model *a, uint64_t heap_start, int64_t start_ns);
void adv_model_free(struct adv_model *a);
/* A chunk of `object` (0: the allocator's own range; cached: HM_TCACHE or
 * HM_FASTBIN for a range the allocator cached itself) occupies
 * [addr, addr + bytes); mmap chunks are only counted. */
void adv_model_occupy(struct adv_model *a, uint64_t addr, uint64_t bytes, uint32_t object,
		      uint8_t cached);
void adv_model_vacate(struct adv_model *a, uint64_t addr);
void adv_model_cached(struct adv_model *a, uint64_t addr, uint8_t cached);
/* The entry at addr (NULL: none). */
struct chunk_entry *adv_model_at(struct adv_model *a, uint64_t addr);
void adv_model_mmap(struct adv_model *a, uint64_t bytes, bool on);
/* After each request: worst and peaks. */
void adv_model_track(struct adv_model *a, int64_t ns);
/* The figures now (at the end), addresses shifted by -delta. */
void adv_model_figures(struct adv_model *a, int64_t delta, struct adv_figs *f);

/*
 * Replay seq through heapprof's glibc heap code with the settings of env
 * (NULL-terminated "NAME=value" strings: MALLOC_*_, GLIBC_TUNABLES: the
 * recorded lines and a candidate's, as adv_env makes them), and
 * malloc_trim(0) after every trim_every frees (0: never). With `check`,
 * every chunk of the brk heap must land where the recording had it (a
 * thread heap's at the same offset in its heap; an mmap chunk with the
 * same bytes): f->mismatches counts those that did not. Global allocator
 * state: call once per process (advise forks a child per candidate).
 * Returns 0, or -1 with a message (the simulated address space).
 */
/*
 * The environment a candidate runs with: the recorded start-up lines with
 * `setting` ("NAME=value"; NULL or "": none) put in. It takes the place
 * of a line of the same name; GLIBC_TUNABLES keeps the recorded tunables
 * it does not name. Writes the line to paste into `line` (the setting, or
 * the merged GLIBC_TUNABLES). Returns a NULL-terminated vector in `buf`
 * (HP_TUNE_LINES_MAX + 2 slots; strings in `store`, 8 KiB).
 */
char **adv_env(const struct adv_seq *seq, const char *setting, char **buf, char *store,
	       size_t storecap, char *line, size_t linecap);

int adv_glibc_run(const struct adv_seq *seq, char *const *env, uint64_t trim_every, bool check,
		  struct adv_figs *f, char *err, size_t errcap);

#endif
