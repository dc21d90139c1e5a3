/* SPDX-License-Identifier: MIT */
/*
 * advise-glibc.c - a recording's requests replayed through heapprof's own
 * glibc 2.36 heap code (preload/heap.c and the rest, built a second time
 * over a simulated break: preload/os-sim.h), under chosen settings.
 *
 * The entry points are glibc's public wrappers as preload/exports.c has
 * them, less what only a live program needs (the guard, heapprof's own
 * arena, ld.so's DTV, errno, clearing calloc's memory: the chunks here
 * hold no data). Simulated threads take turns on the analyzer's one
 * thread: before each request the thread that made it gets its per-thread
 * state (tcache, arena) swapped into hp_self.
 *
 * The observer (observe.h) is the replay's, not the recorder's: it feeds
 * the heap model (advise-model.c) with what the allocator does on its own,
 * as the collector does from a recording; the program's allocations and
 * frees are fed from here. Global allocator state: one replay a process
 * (advise runs each in a forked child).
 */
#include "config.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "advise.h"
#include "heap.h"
#include "large.h"
#include "os-sim.h"
#include "tarena.h"
#include "tcache.h"
#include "tune.h"
#include "util.h"

/* The recorder's hooks are not in this build (no record.c, no init.c): a
 * replay records nothing, and has no pthread key to arm. */
void hp_record_thread_exit(void);
void hp_init_arm_thread_exit(void);

void
hp_record_thread_exit(void)
{
}

void
hp_init_arm_thread_exit(void)
{
}

static struct adv_model model;

/* ---- the observer: what the allocator does on its own ---- */

static void
ob_brk(uintptr_t old_brk, uintptr_t new_brk)
{
	hm_brk(&model.m, old_brk, new_brk);
}

static void
ob_map(uintptr_t addr, size_t len, bool chunk)
{
	if (!chunk)
		hm_map_heap(&model.m, addr, len);
}

static void
ob_unmap(uintptr_t addr, size_t len, bool chunk)
{
	if (!chunk)
		hm_unmap_heap(&model.m, addr, len);
}

static void
ob_madvise(uintptr_t addr, size_t len)
{
	hm_madvise(&model.m, addr, len);
}

/* As the collector's on_state: a cached chunk of the program's released or
 * moved between caches; free space the allocator cached, or its own. */
static void
ob_chunk(uintptr_t chunk, size_t bytes, enum hp_state state)
{
	struct chunk_entry *e = adv_model_at(&model, chunk);
	uint8_t cache = state == HP_STATE_CACHED    ? HM_TCACHE
			: state == HP_STATE_FASTBIN ? HM_FASTBIN
						    : 0;

	if (e && e->kind == HM_CHUNK && !e->cached)
		return;
	if (e) {
		if (state == HP_STATE_FREE)
			adv_model_vacate(&model, chunk);
		else if (cache)
			hm_to_cached(&model.m, e, cache);
	} else if (state != HP_STATE_FREE) {
		adv_model_occupy(&model, chunk, bytes, 0, cache);
	}
}

static const struct hp_observer replay_observer = {
	.brk = ob_brk,
	.map = ob_map,
	.unmap = ob_unmap,
	.madvise = ob_madvise,
	.chunk = ob_chunk,
};

/* ---- simulated threads ---- */

struct sim_thread {
	int32_t tid;
	struct hp_thread self;
};

static struct sim_thread *threads;
static size_t nthreads, current;

static void
switch_to(int32_t tid)
{
	size_t i;

	if (threads[current].tid == tid)
		return;
	threads[current].self = hp_self;
	for (i = 0; i < nthreads && threads[i].tid != tid; i++)
		;
	if (i == nthreads) {
		threads = xrealloc(threads, (nthreads + 1) * sizeof(*threads));
		memset(&threads[i], 0, sizeof(threads[i]));
		threads[i].tid = tid;
		nthreads++;
		/* pthread_create made the process multi-threaded: from now
		 * on threads pick arenas (glibc's SINGLE_THREAD_P). */
		__libc_single_threaded = 0;
	}
	current = i;
	hp_self = threads[i].self;
}

/* ---- glibc's public wrappers (exports.c), for a replay ---- */

static void *
sim_malloc(size_t bytes)
{
	size_t tbytes = hp_request2size(bytes), idx;
	struct hp_tcache *tc;

	if (tbytes == 0)
		return NULL;
	idx = hp_csize2tidx(tbytes);
	if (hp_self.tcache == NULL)
		hp_tcache_init();
	tc = hp_self.tcache;
	if (idx < hp_mp.tcache_bins && tc && tc->counts[idx] > 0)
		return hp_tcache_get(tc, idx);
	return hp_arena_malloc(bytes);
}

static void *
sim_calloc(size_t bytes)
{
	if (hp_self.tcache == NULL)
		hp_tcache_init();
	return hp_arena_malloc(bytes);
}

static void *
sim_memalign(size_t alignment, size_t bytes)
{
	if (alignment <= HP_MALLOC_ALIGNMENT)
		return sim_malloc(bytes);
	if (alignment < HP_MINSIZE)
		alignment = HP_MINSIZE;
	return hp_arena_memalign(alignment, bytes);
}

/* free(); returns where the chunk went. */
static enum hp_fate
sim_free(void *mem)
{
	struct hp_chunk *p = hp_mem2chunk(mem);

	if (hp_chunk_is_mmapped(p)) {
		hp_large_free(p);
		return HP_FATE_UNMAPPED;
	}
	if (hp_self.tcache == NULL)
		hp_tcache_init();
	return hp_heap_free(p);
}

static void
account_free(struct hp_chunk *p, size_t bytes, enum hp_fate fate)
{
	if (fate == HP_FATE_UNMAPPED)
		adv_model_mmap(&model, bytes, false);
	else if (fate == HP_FATE_TCACHE || fate == HP_FATE_FASTBIN)
		adv_model_cached(&model, (uintptr_t)p,
				 fate == HP_FATE_TCACHE ? HM_TCACHE : HM_FASTBIN);
	else
		adv_model_vacate(&model, (uintptr_t)p);
}

static void
account_alloc(void *mem, uint32_t object)
{
	struct hp_chunk *p = hp_mem2chunk(mem);

	if (hp_chunk_is_mmapped(p))
		adv_model_mmap(&model, hp_chunksize(p), true);
	else
		adv_model_occupy(&model, (uintptr_t)p, hp_chunksize(p), object, 0);
}

/* realloc(); the old chunk and the new are accounted for here. */
static void *
sim_realloc(void *oldmem, size_t bytes, uint32_t object)
{
	struct hp_chunk *oldp = hp_mem2chunk(oldmem), *newp;
	size_t oldsize = hp_chunksize(oldp), nb = hp_request2size(bytes);
	enum hp_fate old_fate = 0;
	struct hp_mstate *av;
	void *newmem;
	bool locked;

	if (nb == 0)
		return NULL;
	if (hp_chunk_is_mmapped(oldp)) {
		newp = hp_large_remap(oldp, nb);
		if (newp) {
			adv_model_mmap(&model, oldsize, false);
			adv_model_mmap(&model, hp_chunksize(newp), true);
			return hp_chunk2mem(newp);
		}
		if (oldsize - HP_SIZE_SZ >= nb)
			return oldmem;
		newmem = sim_malloc(bytes);
		if (newmem == NULL)
			return NULL;
		hp_large_unmap(oldp);
		adv_model_mmap(&model, oldsize, false);
		account_alloc(newmem, object);
		return newmem;
	}
	if (hp_self.tcache == NULL)
		hp_tcache_init();
	av = hp_heap_arena_for_chunk(oldp);
	locked = hp_mstate_lock(av);
	newmem = hp_heap_realloc_locked(av, oldp, oldsize, nb, &old_fate);
	hp_mstate_unlock(av, locked);
	if (newmem == NULL && !__libc_single_threaded) {
		newmem = sim_malloc(bytes);
		if (newmem != NULL)
			old_fate = hp_heap_free(oldp);
	}
	if (newmem == NULL)
		return NULL;
	newp = hp_mem2chunk(newmem);
	if (newp == oldp) {
		struct chunk_entry *e = adv_model_at(&model, (uintptr_t)oldp);
		if (e)
			hm_resize(&model.m, e, hp_chunksize(newp));
	} else {
		account_free(oldp, oldsize, old_fate);
		account_alloc(newmem, object);
	}
	return newmem;
}

static void
sim_trim(void)
{
	struct hp_mstate *av = &hp_main_arena;
	bool locked;

	do {
		locked = hp_mstate_lock(av);
		hp_heap_trim_locked(av, 0);
		hp_mstate_unlock(av, locked);
		av = av->next;
	} while (av != &hp_main_arena);
}

/* mallopt() as exports.c makes it: the fastbins consolidated first */
static void
sim_mallopt(int param, int value)
{
	bool locked = hp_mstate_lock(&hp_main_arena);

	hp_heap_consolidate_locked(&hp_main_arena);
	if (param != M_PERTURB) /* (see adv_glibc_run) */
		hp_tune_mallopt_locked(param, value);
	hp_mstate_unlock(&hp_main_arena, locked);
}

/* ---- the replay ---- */

/* A chunk where the recording had it? (See adv_glibc_run.) */
static bool
same_place(const struct adv_req *r, void *mem, intptr_t delta)
{
	const struct hp_chunk *p = hp_mem2chunk(mem);
	uint64_t addr = (uintptr_t)p, heap_max = hp_tarena_heap_max_size();

	switch (r->rec_backing) {
	case 1:
		return addr - (uint64_t)delta == r->rec && !hp_chunk_is_mmapped(p) &&
		       hp_chunk_main_arena(p);
	case 2:
		return hp_chunk_is_mmapped(p) && hp_chunksize(p) == r->rec;
	case 3:
		return (addr & (heap_max - 1)) == (r->rec & (heap_max - 1)) &&
		       !hp_chunk_is_mmapped(p) && !hp_chunk_main_arena(p);
	}
	return true;
}

static void
mismatch(struct adv_figs *f, const struct adv_req *r, void *mem, intptr_t delta)
{
	if (f->mismatches++ == 0) {
		const struct hp_chunk *p = hp_mem2chunk(mem);
		snprintf(f->first_mismatch, sizeof(f->first_mismatch),
			 "%s of %llu bytes at %lld ns: recorded %s 0x%llx, replayed %s 0x%llx "
			 "(%zu bytes)",
			 r->op == ADV_CALLOC ? "calloc" : r->op == ADV_REALLOC ? "realloc"
			 : r->op == ADV_MEMALIGN ? "memalign" : "malloc",
			 (unsigned long long)r->size, (long long)r->ns,
			 r->rec_backing == HP_BACKING_MMAP ? "an mmap chunk of bytes" : "a chunk at",
			 (unsigned long long)r->rec,
			 hp_chunk_is_mmapped(p) ? "an mmap chunk at" : "a chunk at",
			 (unsigned long long)((uintptr_t)p - (uint64_t)delta), hp_chunksize(p));
	}
}

static void
fate_mismatch(struct adv_figs *f, const struct adv_req *r, struct hp_chunk *p, enum hp_fate fate,
	      intptr_t delta)
{
	static const char *const names[] = { "?", "tcache", "fastbin", "bin", "top", "unmapped" };

	if (f->mismatches++ == 0)
		snprintf(f->first_mismatch, sizeof(f->first_mismatch),
			 "free of the chunk at 0x%llx at %lld ns: recorded it went to %s, "
			 "replayed to %s",
			 (unsigned long long)((uintptr_t)p - (uint64_t)delta), (long long)r->ns,
			 names[r->rec <= 5 ? r->rec : 0], names[fate <= 5 ? fate : 0]);
}

/* The chunk (its user pointer) a request frees or resizes, as mem has it
 * now; NULL: none. */
static inline void *
target(const struct adv_req *r, void *const *mem)
{
	uint32_t id = r->op == ADV_FREE ? r->id : r->op == ADV_REALLOC ? r->from : 0;

	return id ? mem[id] : NULL;
}

/*
 * The requests to come are known: start fetching what they will read, so
 * that the cache misses of a heap larger than the caches overlap instead
 * of stalling the replay one at a time (a third of its time went to
 * reading chunk headers and model entries). Three stages, AHEAD requests
 * apart, each needing what the one before fetched: the slot of mem; the
 * chunk's header and its chunkmap slot; its chunkmap entry. Hints only: a
 * stale pointer costs a wasted fetch, nothing else.
 */
#define AHEAD 8

static inline void
prefetch(const struct adv_seq *seq, size_t i, void *const *mem)
{
	const struct adv_req *r;
	void *p;

	if (i + 3 * AHEAD < seq->nreqs) {
		r = &seq->reqs[i + 3 * AHEAD];
		if (r->op == ADV_FREE || r->op == ADV_REALLOC)
			__builtin_prefetch(&mem[r->op == ADV_FREE ? r->id : r->from]);
	}
	if (i + 2 * AHEAD < seq->nreqs && (p = target(&seq->reqs[i + 2 * AHEAD], mem)) != NULL) {
		__builtin_prefetch((char *)p - HP_CHUNK_HDR_SZ, 1);
		chunkmap_prefetch_slot(model.map, (uintptr_t)p - HP_CHUNK_HDR_SZ);
	}
	if (i + AHEAD < seq->nreqs && (p = target(&seq->reqs[i + AHEAD], mem)) != NULL)
		chunkmap_prefetch_entry(model.map, (uintptr_t)p - HP_CHUNK_HDR_SZ);
}

/* The length of the name of "NAME=value" (of a tunable "glibc.x.y=v"). */
static size_t
name_len(const char *e)
{
	const char *eq = strchr(e, '=');

	return eq ? (size_t)(eq - e) : strlen(e);
}

/* Append to `line` the tunables of `from` (a:b:c) that `except` (the same
 * form) does not name; returns the new length. */
static size_t
keep_tunables(char *line, size_t n, size_t cap, const char *from, const char *except)
{
	while (*from) {
		size_t len = strcspn(from, ":"), nl = name_len(from);
		bool named = false;

		if (nl > len)
			nl = len;
		for (const char *x = except; *x;) {
			size_t xl = strcspn(x, ":"), xn = name_len(x);
			if ((xn > xl ? xl : xn) == nl && strncmp(x, from, nl) == 0)
				named = true;
			x += xl + (x[xl] == ':');
		}
		if (!named && len && n + len + 1 < cap) {
			memcpy(line + n, from, len);
			n += len;
			line[n++] = ':';
		}
		from += len + (from[len] == ':');
	}
	line[n] = '\0';
	return n;
}

char **
adv_env(const struct adv_seq *seq, const char *setting, char **buf, char *store,
	size_t storecap, char *line, size_t linecap)
{
	size_t n = 0, nl;
	bool put = false;

	snprintf(line, linecap, "%s", setting ? setting : "");
	nl = setting && *setting ? name_len(setting) : 0;
	for (size_t i = 0; i < seq->nenv && n < HP_TUNE_LINES_MAX; i++) {
		const char *e = seq->env[i];
		if (nl == 0 || name_len(e) != nl || strncmp(e, setting, nl) != 0) {
			buf[n++] = seq->env[i];
			continue;
		}
		if (strncmp(setting, "GLIBC_TUNABLES=", 15) == 0) {
			/* the recorded tunables the setting does not change, then its own */
			size_t k = (size_t)snprintf(line, linecap, "GLIBC_TUNABLES=");
			k = keep_tunables(line, k, linecap, e + 15, setting + 15);
			snprintf(line + k, linecap - k, "%s", setting + 15);
		}
		snprintf(store, storecap, "%s", line);
		buf[n++] = store;
		put = true;
	}
	if (nl && !put) {
		snprintf(store, storecap, "%s", line);
		buf[n++] = store;
	}
	buf[n] = NULL;
	return buf;
}

int
adv_glibc_run(const struct adv_seq *seq, char *const *env, uint64_t trim_every, bool check,
	      struct adv_figs *f, char *err, size_t errcap)
{
	size_t nenv = 0, frees = 0;
	intptr_t delta;
	void **mem;

	memset(f, 0, sizeof(*f));
	/* The break's room: the address space is reserved, never touched but
	 * for chunk headers (os-sim.c). */
	if (hp_os_sim_start(seq->heap_start, (size_t)1 << 40, &delta) != 0 &&
	    hp_os_sim_start(seq->heap_start, (size_t)1 << 36, &delta) != 0) {
		snprintf(err, errcap, "no address space for a simulated heap");
		return -1;
	}
	while (env && env[nenv])
		nenv++;
	/* glibc's start-up (hp_init_slow): the settings, then the arena */
	hp_tune_configure(NULL, false);
	hp_tune_apply_env(env, nenv);
	/* MALLOC_PERTURB_ fills memory and moves nothing: no byte of the
	 * simulated heap but its headers is touched */
	hp_mp.perturb_byte = 0;
	hp_tcache_key = 0x9e3779b97f4a7c15ULL;
	hp_heap_init_state(&hp_main_arena);
	adv_model_init(&model, seq->heap_start + (uint64_t)delta,
		       seq->nreqs ? seq->reqs[0].ns : 0);
	hp_observer = &replay_observer;

	threads = xcalloc(1, sizeof(*threads));
	nthreads = 1;
	current = 0;
	threads[0].tid = seq->nreqs ? seq->reqs[0].tid : 0;
	for (size_t i = 0; i < seq->nreqs; i++)
		if (seq->reqs[i].tid == (int32_t)seq->pid) {
			threads[0].tid = (int32_t)seq->pid; /* the main thread */
			break;
		}
	hp_self.arena = &hp_main_arena;
	__libc_single_threaded = 1;

	mem = xcalloc((size_t)seq->nobjects + 1, sizeof(void *));
	for (size_t i = 0; i < seq->nreqs; i++) {
		const struct adv_req *r = &seq->reqs[i];
		void *m = NULL;

		prefetch(seq, i, mem);
		if (r->op != ADV_TRIM && r->op != ADV_MALLOPT)
			switch_to(r->tid);
		switch (r->op) {
		case ADV_MALLOC:
		case ADV_CALLOC:
		case ADV_MEMALIGN:
			m = r->op == ADV_MALLOC   ? sim_malloc(r->size)
			    : r->op == ADV_CALLOC ? sim_calloc(r->size)
						  : sim_memalign((size_t)1 << r->align_log2, r->size);
			if (m) {
				mem[r->id] = m;
				account_alloc(m, r->id);
			}
			break;
		case ADV_REALLOC:
			if (r->from == 0 || mem[r->from] == NULL) {
				m = sim_malloc(r->size);
				if (m)
					account_alloc(m, r->id);
			} else {
				m = sim_realloc(mem[r->from], r->size, r->id);
				if (m)
					mem[r->from] = NULL;
			}
			if (m)
				mem[r->id] = m;
			break;
		case ADV_FREE:
			if (mem[r->id]) {
				struct hp_chunk *p = hp_mem2chunk(mem[r->id]);
				size_t bytes = hp_chunksize(p);
				enum hp_fate fate = sim_free(mem[r->id]);
				account_free(p, bytes, fate);
				if (check && r->rec && r->rec != fate)
					fate_mismatch(f, r, p, fate, delta);
				mem[r->id] = NULL;
				if (trim_every && ++frees % trim_every == 0)
					sim_trim();
			}
			break;
		case ADV_TRIM:
			sim_trim();
			break;
		case ADV_MALLOPT:
			sim_mallopt((int32_t)r->id, (int32_t)r->size);
			break;
		case ADV_THREAD_EXIT:
			hp_tcache_shutdown();
			hp_tarena_thread_retire();
			break;
		}
		if (check && m && r->rec && !same_place(r, m, delta))
			mismatch(f, r, m, delta);
		adv_model_track(&model, r->ns);
	}
	adv_model_figures(&model, delta, f);
	free(mem);
	return 0;
}
