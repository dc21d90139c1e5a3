/* SPDX-License-Identifier: MIT */
/*
 * rows.c - the collector's records turned into the model and rows (see
 * rows.h): a process's chunks, heaps, stacks, modules and threads,
 * and the rows of each.
 *
 * A chunk's row is written when the chunk ends: freed into free space, or,
 * when freed into a tcache or fastbin (where it still occupies the heap),
 * when that stops: reused at the same address or merged into free space.
 * So the allocator's reports about cached chunks become a column of the
 * chunk's row rather than rows of their own.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "chunkmap.h"
#include "db.h"
#include "events.h"
#include "heapmodel.h"
#include "occupancy.h"
#include "rows.h"
#include "snapshot.h"
#include "util.h"

struct proc *
rows_find_proc(struct collector *c, pid_t pid, uint64_t serial)
{
	for (size_t i = 0; i < c->nprocs; i++)
		if (c->procs[i]->pid == pid && c->procs[i]->serial == serial)
			return c->procs[i];
	return NULL;
}

void
rows_write_process(struct collector *c, struct proc *pr)
{
	pr->row.id = pr->process_id;
	pr->row.exe = pr->exe;
	pr->row.argv_json = pr->argv_json;
	pr->row.dropped_events = pr->proc ? (int64_t)pr->proc->dropped_events : 0;
	db_process(c->db, &pr->row);
}

static struct thread_in *
thread_of(struct proc *pr, int32_t tid)
{
	if (pr->last_thread < pr->nthreads && pr->threads[pr->last_thread].tid == tid)
		return &pr->threads[pr->last_thread];
	for (size_t i = 0; i < pr->nthreads; i++)
		if (pr->threads[i].tid == tid)
			return &pr->threads[pr->last_thread = i];
	pr->last_thread = pr->nthreads;
	pr->threads = xrealloc(pr->threads, (pr->nthreads + 1) * sizeof(*pr->threads));
	pr->threads[pr->nthreads] = (struct thread_in){ tid, 0, 0, 0 };
	return &pr->threads[pr->nthreads++];
}

static void
free_fork_model(struct fork_model *f)
{
	hm_free(&f->model);
	chunkmap_free(f->chunks);
	snap_free(f->snap);
	free(f);
}

/* Snapshot mode, a FORK record: keep a copy of the model for the child. */
static void
save_fork_model(struct collector *c, struct proc *pr, uint64_t fork_ns)
{
	if (!pr->modeled)
		return;
	struct fork_model *f = xcalloc(1, sizeof(*f));
	f->parent_id = pr->process_id;
	f->fork_ns = fork_ns;
	f->chunks = chunkmap_clone(pr->chunks);
	f->snap = snap_fork(pr->snap);
	if (!hm_clone(&f->model, &pr->model, f->chunks)) {
		free_fork_model(f); /* its child is not modeled */
		return;
	}
	f->next = c->forks;
	c->forks = f;
	if (++c->nforks > MAX_FORK_MODELS) {
		/* the oldest: its child, if it comes, is not modeled */
		struct fork_model **p = &c->forks;
		while ((*p)->next)
			p = &(*p)->next;
		free_fork_model(*p);
		*p = NULL;
		c->nforks--;
	}
}

static struct fork_model **
find_fork_model(struct collector *c, int64_t parent_id, uint64_t fork_ns)
{
	for (struct fork_model **p = &c->forks; *p; p = &(*p)->next)
		if ((*p)->parent_id == parent_id && (*p)->fork_ns == fork_ns)
			return p;
	return NULL;
}

/* The child takes its parent's model at the fork; false if there is none. */
static bool
adopt_fork_model(struct collector *c, struct proc *pr, int64_t parent_id, uint64_t fork_ns)
{
	struct fork_model **p = find_fork_model(c, parent_id, fork_ns);

	if (!p)
		return false;
	struct fork_model *f = *p;
	*p = f->next;
	c->nforks--;
	hm_free(&pr->model);
	chunkmap_free(pr->chunks);
	snap_free(pr->snap);
	pr->chunks = f->chunks;
	pr->model = f->model;
	pr->model.map = pr->chunks;
	/* the child's own peak and worst, from its start */
	pr->model.worst_untrimmable = pr->model.peak_extent = 0;
	pr->snap = f->snap;
	snap_set_process(pr->snap, pr->process_id);
	free(f);
	return true;
}

/* Whether the record can be applied now: in snapshot mode a forked child's
 * first record waits for its parent's model at the fork, unless the parent
 * is done (or unknown), or this is the end. */
bool
rows_ready(struct collector *c, struct proc *pr, const struct hp_ev *e, bool final)
{
	if (!c->snapshots || pr->got_process || final || HP_EV_TYPE(e->word) != HP_EV_PROCESS)
		return true;
	const struct hp_ev_process *p = (const void *)e;
	if (!(p->flags & HP_PROC_FORKED))
		return true;
	struct proc *parent = rows_find_proc(c, p->ppid, p->parent_serial);
	return !parent || parent->finished || find_fork_model(c, parent->process_id, p->fork_ns);
}

static void
on_process(struct collector *c, struct proc *pr, const struct hp_ev_process *ev)
{
	const char *exe = (const char *)(ev + 1);
	const char *argv = exe + ev->exe_bytes;
	struct buf j = { 0 };

	pr->got_process = true;
	free(pr->exe);
	pr->exe = xstrdup(exe);
	buf_add(&j, "[", 1);
	for (size_t off = 0, k = 0; off < ev->argv_bytes && k < ev->argc; k++) {
		size_t n = strnlen(argv + off, ev->argv_bytes - off);
		if (k)
			buf_add(&j, ",", 1);
		json_quote(&j, argv + off, n);
		off += n + 1;
	}
	buf_add(&j, "]", 2);
	free(pr->argv_json);
	pr->argv_json = j.p;
	pr->row.pid = ev->pid;
	pr->row.ppid = ev->ppid;
	pr->row.started_ns = pr->now;
	pr->peak_live_ns = pr->now;
	/* the process this one replaced ends here, if it was finished without
	 * knowing when */
	for (size_t i = 0; pr->row.exec_from && i < c->nprocs; i++) {
		struct proc *prev = c->procs[i];
		if (prev->process_id == pr->row.exec_from && prev->finished &&
		    prev->row.ended_ns != pr->now) {
			prev->row.ended_ns = pr->now;
			rows_write_process(c, prev);
		}
	}
	pr->row.heap_start = (int64_t)ev->heap_start;
	if (ev->flags & HP_PROC_FORKED) {
		/* its heap is its parent's at the fork, which this process's
		 * events do not show: in a full recording no figures of its own
		 * (the reports replay the parent's heap first); in a snapshot
		 * recording its model starts as a copy of its parent's */
		pr->modeled = false;
		struct proc *parent = rows_find_proc(c, ev->ppid, ev->parent_serial);
		if (parent) {
			pr->row.parent_id = parent->process_id;
			pr->row.fork_ns = (int64_t)ev->fork_ns;
			if (c->snapshots)
				pr->modeled = adopt_fork_model(c, pr, parent->process_id, ev->fork_ns);
		}
	} else if (!pr->row.exec_from) {
		/* Started by vfork or posix_spawn (no fork handler ran, its first
		 * recorded process is the exec'd one): its parent is the latest
		 * process of its parent's pid. */
		struct proc *parent = NULL;
		for (size_t i = 0; i < c->nprocs; i++)
			if (c->procs[i]->pid == ev->ppid && c->procs[i] != pr &&
			    (!parent || c->procs[i]->serial > parent->serial))
				parent = c->procs[i];
		if (parent)
			pr->row.parent_id = parent->process_id;
	}
	/* the brk heap is there from the start, however empty (as the
	 * reports' replay has it) */
	if (!pr->model.has_brk && ev->heap_start)
		hm_brk(&pr->model, ev->heap_start, ev->heap_start);
	hm_start(&pr->model, pr->now);
	snap_start(pr->snap, &pr->model, pr->now, pr->modeled);
	rows_write_process(c, pr);
}

/* The hash of frames k to depth - 1 from that of frames k + 1 on: a
 * stack's (k = 0) and each run of its outer frames' (a tail's), one hash. */
static inline uint64_t
tail_hash(uint64_t outer, int64_t image_id, uint64_t offset)
{
	return (outer ^ ((uint64_t)image_id << 40) ^ offset) * 0x100000001b3ULL + 0x9e3779b9;
}

static const struct gtail *
find_tail(const struct collector *c, uint64_t h, unsigned n, const int64_t *ids,
	  const uint64_t *offs)
{
	for (const struct gtail *t = c->gtails[h % GSTACK_BUCKETS]; t; t = t->next)
		if (t->hash == h && t->g->depth - t->from == n &&
		    memcmp(t->g->image_ids + t->from, ids, n * sizeof(*ids)) == 0 &&
		    memcmp(t->g->offsets + t->from, offs, n * sizeof(*offs)) == 0)
			return t;
	return NULL;
}

/* g stores all its frames: each run of its outer frames (its frames k
 * to the end, hashed hs[k]) becomes a tail later stacks can name, but for
 * the `known` shortest, which a stored stack has already. */
static void
add_tails(struct collector *c, const struct gstack *g, unsigned known, const uint64_t *hs)
{
	for (unsigned k = 0; k + known < g->depth; k++) {
		struct gtail *t = xmalloc(sizeof(*t));
		*t = (struct gtail){ hs[k], g, k, c->gtails[hs[k] % GSTACK_BUCKETS] };
		c->gtails[hs[k] % GSTACK_BUCKETS] = t;
	}
}

static int64_t
find_gstack(struct collector *c, unsigned depth, const int64_t *ids, const uint64_t *offs)
{
	/* hs[k]: the hash of frames k to the end; hs[0] the stack's */
	uint64_t hs[HP_MAX_DEPTH_LIMIT + 1];

	hs[depth] = 0;
	for (unsigned k = depth; k-- > 0;)
		hs[k] = tail_hash(hs[k + 1], ids[k], offs[k]);
	uint64_t h = hs[0];
	size_t b = (size_t)(h % GSTACK_BUCKETS);
	for (struct gstack *g = c->gstacks[b]; g; g = g->next)
		if (g->hash == h && g->depth == depth &&
		    memcmp(g->image_ids, ids, depth * sizeof(*ids)) == 0 &&
		    memcmp(g->offsets, offs, depth * sizeof(*offs)) == 0)
			return g->id;
	struct gstack *g = xcalloc(1, sizeof(*g));
	g->hash = h;
	g->id = c->next_stack_id++;
	g->depth = depth;
	g->image_ids = xmalloc(depth * sizeof(*ids));
	g->offsets = xmalloc(depth * sizeof(*offs));
	memcpy(g->image_ids, ids, depth * sizeof(*ids));
	memcpy(g->offsets, offs, depth * sizeof(*offs));
	g->next = c->gstacks[b];
	c->gstacks[b] = g;
	/* Its longest run of outer frames that a stored stack has: every
	 * shorter run of them is one too, so the search stops at the first
	 * miss. A stack that shares at least half its frames so stores only
	 * the others; one that shares fewer stores all and is a tail for
	 * those after it (cc1: 55 K frames stored for 161 K; with a third
	 * or two thirds for the half, 65 K and 59 K). */
	const struct gtail *tail = NULL;
	unsigned shared = 0;
	for (unsigned k = depth; k-- > 0;) {
		const struct gtail *t = find_tail(c, hs[k], depth - k, ids + k, offs + k);
		if (!t)
			break;
		tail = t;
		shared = depth - k;
	}
	if (tail && 2 * shared >= depth) {
		db_stack(c->db, g->id, depth, depth - shared, tail->g->id, tail->from, ids, offs);
	} else {
		db_stack(c->db, g->id, depth, depth, 0, 0, ids, offs);
		add_tails(c, g, shared, hs);
	}
	return g->id;
}

static void
on_stack(struct collector *c, struct proc *pr, const struct hp_ev_stack *ev)
{
	unsigned depth = ev->depth > HP_MAX_DEPTH_LIMIT ? HP_MAX_DEPTH_LIMIT : ev->depth;
	int64_t ids[HP_MAX_DEPTH_LIMIT];
	uint64_t offs[HP_MAX_DEPTH_LIMIT];

	for (unsigned i = 0; i < depth; i++) {
		uint64_t ip = ev->ip[i];
		const struct module_in *hit = NULL;

		for (size_t m = 0; m < pr->nmods; m++)
			if (pr->mods[m].loaded && ip >= pr->mods[m].lo && ip < pr->mods[m].hi) {
				hit = &pr->mods[m];
				break;
			}
		ids[i] = hit ? hit->image_id : 0;
		offs[i] = hit ? ip - hit->base : ip;
	}
	if (ev->stack_id >= pr->stack_cap) {
		size_t cap = ev->stack_id * 2 + 64;
		pr->stack_map = xrealloc(pr->stack_map, cap * sizeof(*pr->stack_map));
		memset(pr->stack_map + pr->stack_cap, 0, (cap - pr->stack_cap) * sizeof(int64_t));
		pr->stack_cap = cap;
	}
	pr->stack_map[ev->stack_id] = find_gstack(c, depth, ids, offs);
}

static void
on_module(struct collector *c, struct proc *pr, const struct hp_ev_module *ev)
{
	char hex[2 * sizeof(ev->build_id) + 1];
	const char *path = (const char *)(ev + 1);
	unsigned n = ev->build_id_bytes > sizeof(ev->build_id) ? sizeof(ev->build_id)
								 : ev->build_id_bytes;

	for (unsigned i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", ev->build_id[i]);
	hex[2 * n] = '\0';
	pr->mods = xrealloc(pr->mods, (pr->nmods + 1) * sizeof(*pr->mods));
	struct module_in *m = &pr->mods[pr->nmods++];
	m->base = ev->base;
	m->lo = ev->lo;
	m->hi = ev->hi;
	m->loaded = true;
	m->image_id = db_image(c->db, path[0] ? path : "[unknown]", n ? hex : NULL);
	m->module_id = db_module(c->db, pr->process_id, m->image_id, ev->base, ev->lo, ev->hi,
				 pr->now);
}

static void
on_unmodule(struct collector *c, struct proc *pr, const struct hp_ev_unmodule *ev)
{
	for (size_t m = 0; m < pr->nmods; m++)
		if (pr->mods[m].loaded && pr->mods[m].base == ev->base && pr->mods[m].lo == ev->lo) {
			pr->mods[m].loaded = false;
			db_module_unloaded(c->db, pr->mods[m].module_id, pr->now);
		}
}

/* The heap model follows the map (occupancy.h): an entry of kind HM_CHUNK
 * occupies its heap; an mmap chunk (kind 0) is only counted. */
static void
model_add(struct proc *pr, struct chunk_entry *e)
{
	if (e->backing == HP_BACKING_MMAP) {
		e->kind = 0;
		hm_mmap(&pr->model, e->chunk_bytes, true);
		return;
	}
	occ_place(&pr->model, e);
}

/* e ends: out of the model and the map. */
static void
model_remove(struct proc *pr, struct chunk_entry *e)
{
	if (e->kind == 0 && e->backing == HP_BACKING_MMAP && !e->free_ns)
		hm_mmap(&pr->model, e->chunk_bytes, false);
	occ_end(&pr->model, e, &pr->hooks);
}

static bool
is_range(const struct chunk_entry *e)
{
	return e->kind == HM_RANGE_CACHED || e->kind == HM_RANGE_ALLOCATOR;
}

/* Before the entry at addr changes (snapshots keep its earlier value). */
static inline void
touch(struct proc *pr, uint64_t addr)
{
	snap_touch(pr->snap, &pr->model, addr);
}

/* A heap_event: its row, and what it does to the model. */
static void
heap_event(struct collector *c, struct proc *pr, int kind, uint64_t address, uint64_t bytes,
	   int64_t value, bool has_value)
{
	occ_heap_event(&pr->model, kind, address, bytes, value, &pr->hooks);
	if (!c->snapshots)
		db_heap_event(c->db, pr->process_id, pr->now, kind, address, bytes, value,
			      has_value, -1, -1, (uint64_t)pr->row.heap_start);
}

/* Write the chunk's row (released_ns 0: not released); its id is given
 * now, rows are appended in the order they are written. */
static int64_t
write_chunk(struct collector *c, struct proc *pr, struct chunk_entry *e, int64_t released_ns)
{
	if (c->snapshots)
		return 0;
	int64_t id = c->next_chunk_id++;
	struct db_chunk row = {
		.chunk_id = id,
		.process_id = pr->process_id,
		.address = e->addr,
		.size = e->size,
		.chunk_bytes = e->chunk_bytes,
		.backing = e->backing,
		.call = e->call,
		.alloc_ns = e->alloc_ns,
		.alloc_tid = e->alloc_tid,
		.free_ns = e->free_ns,
		.free_tid = e->free_tid,
		.fate = e->fate,
		.released_ns = released_ns,
		.stack_id = e->stack_id,
		.realloc_from = e->written ? 0 : e->realloc_from,
		.align_log2 = e->align_log2,
		.heap_start = pr->row.heap_start,
	};

	db_chunk(c->db, &row);
	e->row_id = id;
	e->written = true;
	return id;
}

/* The model's hooks (occupancy.h). */
static void
hook_touch(void *arg, uint64_t addr)
{
	touch(arg, addr);
}

/* A cached chunk stops occupying the heap: reused, or merged into free
 * space. Its row is complete. */
static void
hook_released(void *arg, struct chunk_entry *e)
{
	struct proc *pr = arg;

	if (e->written)
		db_chunk_released(pr->col->db, e->row_id, e->free_ns, pr->now);
	else
		write_chunk(pr->col, pr, e, pr->now);
}

static void
hook_vacated(void *arg, struct chunk_entry *e)
{
	struct proc *pr = arg;

	/* a cached chunk reused whole: who last held its range matters only
	 * once the range is free, and the next chunk to leave it says so */
	if (e->addr == pr->refill && e->chunk_bytes == pr->refill_bytes)
		return;
	snap_vacated(pr->snap, e, pr->now);
}

/* A live chunk was freed (by this record) or is gone without a free we saw
 * (tid 0, fate 0). */
static void
free_chunk(struct proc *pr, struct chunk_entry *e, int32_t tid, int fate)
{
	snap_freed(pr->snap, e, pr->now);
	if (e->backing == HP_BACKING_MMAP)
		hm_mmap(&pr->model, e->chunk_bytes, false);
	e->free_ns = pr->now;
	e->free_tid = tid;
	e->fate = (uint8_t)fate;
}

/* A model this large (16 MiB of entries, and their slots) is worth
 * symbolizing the rest at the end without libdw's 12 MiB beside it
 * (db_large_model). */
#define LARGE_MODEL 262144

static void
on_alloc(struct collector *c, struct proc *pr, const struct hp_ev_alloc *ev)
{
	pr->refill = ev->chunk;
	pr->refill_bytes = ev->chunk_bytes;
	struct chunk_entry *e = occ_reuse(&pr->model, ev->chunk, &pr->hooks);
	struct thread_in *t = thread_of(pr, ev->h.tid);

	pr->refill = 0;

	if (e) {
		/* never freed as far as we know, or overlapped: it ends here */
		free_chunk(pr, e, ev->h.tid, 0);
		write_chunk(c, pr, e, 0);
		model_remove(pr, e);
	}
	touch(pr, ev->chunk);
	e = chunkmap_add(pr->chunks, ev->chunk);
	e->size = ev->size;
	e->chunk_bytes = ev->chunk_bytes;
	e->alloc_ns = pr->now;
	e->alloc_tid = ev->h.tid;
	e->stack_id = ev->stack_id && ev->stack_id < pr->stack_cap ? pr->stack_map[ev->stack_id] : 0;
	e->backing = ev->backing;
	e->call = ev->call;
	e->align_log2 = ev->align_log2;
	if (ev->call == HP_CALL_REALLOC && t->realloc_from) {
		e->realloc_from = t->realloc_from;
		t->realloc_from = 0;
	}
	model_add(pr, e);
	snap_alloc(pr->snap, e);
	c->chunks++;
	if (__builtin_expect(!c->large, 1) && chunkmap_count(pr->chunks) >= LARGE_MODEL) {
		c->large = true;
		db_large_model(c->db);
	}
}

static void
on_free(struct collector *c, struct proc *pr, const struct hp_ev_free *ev)
{
	struct chunk_entry *e = chunkmap_slot(pr->chunks, ev->chunk);

	if (e == NULL || e->addr != ev->chunk || e->cached || is_range(e)) {
		/* allocated before this process existed: inherited by fork */
		heap_event(c, pr, HP_HEV_INHERITED_FREE, ev->chunk, ev->chunk_bytes, ev->fate, true);
		return;
	}
	touch(pr, e->addr);
	free_chunk(pr, e, ev->h.tid, ev->fate);
	uint8_t cache = occ_fate_cache(ev->fate);
	if (cache) {
		/* still occupies the heap: the row waits for the release, unless
		 * the realloc moving it needs its id now */
		occ_cache(&pr->model, e, cache);
		if (ev->realloc)
			thread_of(pr, ev->h.tid)->realloc_from = write_chunk(c, pr, e, 0);
		return;
	}
	int64_t id = write_chunk(c, pr, e, 0);
	model_remove(pr, e);
	if (ev->realloc)
		thread_of(pr, ev->h.tid)->realloc_from = id;
}

static void
on_resize(struct collector *c, struct proc *pr, const struct hp_ev_resize *ev)
{
	struct chunk_entry *e = chunkmap_slot(pr->chunks, ev->chunk);
	int64_t old_size = -1;

	if (e && e->addr == ev->chunk && !e->cached && !is_range(e)) {
		touch(pr, e->addr);
		snap_resize(pr->snap, e, ev->size);
		old_size = (int64_t)e->size;
		e->size = ev->size;
	}
	/* heap_event(), with the request sizes: a chunk row keeps only the
	 * last, and a chunk's bytes do not always tell them (heapprof.sql) */
	occ_heap_event(&pr->model, HP_HEV_RESIZE, ev->chunk, ev->new_bytes,
		       (int64_t)ev->old_bytes, &pr->hooks);
	if (!c->snapshots)
		db_heap_event(c->db, pr->process_id, pr->now, HP_HEV_RESIZE, ev->chunk,
			      ev->new_bytes, (int64_t)ev->old_bytes, true, (int64_t)ev->size,
			      old_size, (uint64_t)pr->row.heap_start);
}

/* The program's own mmap or munmap: a row for each mapping once the last
 * of it is gone (or at the end); an munmap of part of one trims it. */
static void
on_program_map(struct collector *c, struct proc *pr, const struct hp_ev_map *m, bool on)
{
	if (on) {
		pr->pmaps = xrealloc(pr->pmaps, (pr->npmaps + 1) * sizeof(*pr->pmaps));
		pr->pmaps[pr->npmaps++] = (struct pmap){
			m->addr, m->len, pr->now,
			m->stack_id && m->stack_id < pr->stack_cap ? pr->stack_map[m->stack_id] : 0
		};
		return;
	}
	uint64_t lo = m->addr, hi = m->addr + m->len;
	for (size_t i = 0; i < pr->npmaps;) {
		struct pmap *p = &pr->pmaps[i];
		uint64_t end = p->addr + p->len;
		if (hi <= p->addr || lo >= end) {
			i++;
			continue;
		}
		if (lo <= p->addr && hi >= end) {
			db_program_mmap(c->db, pr->process_id, p->addr, p->len, p->ns, pr->now,
					p->stack_id);
			*p = pr->pmaps[--pr->npmaps];
			continue;
		}
		/* part of it: what is left below or above (the larger part, if
		 * the hole is in the middle) */
		if (lo > p->addr && (hi >= end || lo - p->addr >= end - hi)) {
			p->len = lo - p->addr;
		} else {
			p->len = end - hi;
			p->addr = hi;
		}
		i++;
	}
}

/* After each record: the run's worst and peak, and the timeline. */
static void
model_track(struct proc *pr)
{
	struct hm *m = &pr->model;

	if (m->live + m->mmap > pr->peak_live_bytes) {
		pr->peak_live_bytes = m->live + m->mmap;
		pr->peak_live_ns = pr->now;
	}
	snap_after(pr->snap, m, pr->now);
	hm_track(m, pr->now);
	if (pr->now < pr->tl_next)
		return;
	if (pr->ntl == 4096) {
		/* keep every other point, sample half as often */
		for (size_t i = 0; i < pr->ntl / 2; i++)
			pr->tl[i] = pr->tl[2 * i];
		pr->ntl /= 2;
		pr->tl_step *= 2;
	}
	if (pr->ntl == pr->tl_cap) {
		pr->tl_cap = pr->tl_cap ? pr->tl_cap * 2 : 256;
		pr->tl = xrealloc(pr->tl, pr->tl_cap * sizeof(*pr->tl));
	}
	pr->tl[pr->ntl++] = (struct tl_point){ pr->now, m->extent, m->live + m->mmap, m->cached,
					       m->untrimmable };
	pr->tl_next = pr->now + pr->tl_step;
}

/*
 * A recorded parent reaped child `pid`. The child is the process that held
 * the pid at that instant: the one with that pid whose last process started
 * before it (a pid is not reused before its holder is reaped). If that
 * process is finished already, its row gets the end now; else the reap waits
 * for the process's end (set_end).
 */
static void
on_reap(struct collector *c, const struct hp_ev_reap *ev)
{
	struct proc *child = NULL;

	if (!WIFEXITED(ev->status) && !WIFSIGNALED(ev->status))
		return; /* not an end (the preload sends none such) */
	for (size_t i = 0; i < c->nprocs; i++) {
		struct proc *o = c->procs[i];
		if (o->pid != ev->pid || o->exec_ended || o->row.started_ns > (int64_t)ev->h.ns)
			continue;
		if (!child || o->row.started_ns > child->row.started_ns)
			child = o;
	}
	if (child && child->finished) {
		if (!child->waited) {
			child->waited = true;
			child->wait_status = ev->status;
			rows_set_end(c, child);
			rows_write_process(c, child);
		}
		return;
	}
	if (c->nreaps == c->reaps_cap) {
		c->reaps_cap = c->reaps_cap ? 2 * c->reaps_cap : 64;
		c->reaps = xrealloc(c->reaps, c->reaps_cap * sizeof(*c->reaps));
	}
	c->reaps[c->nreaps++] = (struct reap){ ev->pid, ev->status, (int64_t)ev->h.ns };
}

/* How the process ended, from what is known: its status as seen by
 * whoever reaped it (heapprof, a recorded parent, or its zombie as seen in
 * /proc) is exact; an exit record is what it last asked for. */
void
rows_set_end(struct collector *c, struct proc *pr)
{
	if (!pr->waited && !pr->exec_ended) {
		/* the earliest reap of its pid since it started */
		struct reap *r = NULL;
		for (size_t i = 0; i < c->nreaps; i++) {
			struct reap *x = &c->reaps[i];
			if (x->pid == pr->pid && x->ns >= pr->row.started_ns && (!r || x->ns < r->ns))
				r = x;
		}
		if (r) {
			pr->waited = true;
			pr->wait_status = r->status;
			*r = c->reaps[--c->nreaps];
		}
	}
	pr->row.exit_status = pr->row.exit_signal = -1;
	if (pr->exec_ended) {
		pr->row.end_reason = "exec";
	} else if (pr->waited && WIFEXITED(pr->wait_status)) {
		pr->row.end_reason = "exit";
		pr->row.exit_status = WEXITSTATUS(pr->wait_status);
	} else if (pr->waited && WIFSIGNALED(pr->wait_status)) {
		pr->row.end_reason = "signal";
		pr->row.exit_signal = WTERMSIG(pr->wait_status);
	} else if (pr->has_exit_record) {
		pr->row.end_reason = "exit";
		pr->row.exit_status = pr->exit_record_status & 0xff;
	} else {
		pr->row.end_reason = "unknown";
	}
	if (pr->exec_ended) {
		/* ends where the next process starts */
		for (size_t i = 0; i < c->nprocs; i++)
			if (c->procs[i]->row.exec_from == pr->process_id &&
			    c->procs[i]->row.started_ns)
				pr->end_ns = c->procs[i]->row.started_ns;
	}
}

/* The figures of the process's heaps at its end and over its run. */
static void
write_summary(struct collector *c, struct proc *pr)
{
	struct hm *m = &pr->model;
	struct chunk_entry *pin = hm_top_pin(m);
	struct db_summary *x = &pr->summary;

	*x = (struct db_summary){
		.process_id = pr->process_id,
		.extent = m->extent,
		.live = m->live,
		.cached = m->cached,
		.allocator = m->allocator,
		.top_free = hm_top_free(m),
		.untrimmable = m->untrimmable,
		.trim_reclaimable = hm_trim_reclaimable(m),
		.resident = hm_resident(m),
		.mmap = m->mmap,
		.retained = hm_retained(m),
		.peak_live = pr->peak_live_bytes,
		.peak_live_ns = pr->peak_live_ns,
		.peak_extent = m->peak_extent,
		.peak_extent_ns = m->peak_extent_ns,
		.worst_untrimmable = m->worst_untrimmable,
		.worst_ns = m->worst_ns,
	};
	if (c->perturb)
		x->live += HM_GRAIN; /* the self-check must catch it */
	if (pin) {
		x->pin_address = pin->addr;
		x->pin_bytes = pin->chunk_bytes;
		x->pin_state = pin->kind == HM_RANGE_ALLOCATOR      ? "allocator"
			       : pin->kind == HM_RANGE_CACHED ? "stashed"
			       : pin->cached		      ? "cached"
							      : "live";
		x->pin_stack_id = pin->kind == HM_CHUNK ? pin->stack_id : 0;
	}
	db_summary(c->db, x);
	for (size_t i = 0; i < pr->ntl; i++)
		db_timeline(c->db, pr->process_id, pr->tl[i].ns, pr->tl[i].extent, pr->tl[i].live,
			    pr->tl[i].cached, pr->tl[i].untrimmable);
	if (!pr->ntl || pr->tl[pr->ntl - 1].ns != pr->now)
		db_timeline(c->db, pr->process_id, pr->now, m->extent, m->live + m->mmap, m->cached,
			    m->untrimmable);
	pr->has_summary = true;
}

/* Apply a valid record at its ordered time ns: the model, the rows. */
void
rows_apply(struct collector *c, struct proc *pr, const struct hp_ev *e, int64_t ns)
{
	snap_before(pr->snap, &pr->model, ns);
	pr->now = ns;
	pr->last_ns = ns;
	switch (HP_EV_TYPE(e->word)) {
	case HP_EV_PROCESS:
		on_process(c, pr, (const struct hp_ev_process *)e);
		break;
	case HP_EV_MODULE:
		on_module(c, pr, (const struct hp_ev_module *)e);
		break;
	case HP_EV_UNMODULE:
		on_unmodule(c, pr, (const struct hp_ev_unmodule *)e);
		break;
	case HP_EV_STACK:
		on_stack(c, pr, (const struct hp_ev_stack *)e);
		break;
	case HP_EV_ALLOC:
		on_alloc(c, pr, (const struct hp_ev_alloc *)e);
		break;
	case HP_EV_FREE:
		on_free(c, pr, (const struct hp_ev_free *)e);
		break;
	case HP_EV_RESIZE:
		on_resize(c, pr, (const struct hp_ev_resize *)e);
		break;
	case HP_EV_STATE: {
		/* about a cached chunk of the program's, it completes the chunk's
		 * row (hooks), or says it moved from a fastbin into a tcache or
		 * back (a row of its own: malloc_trim frees what fastbins hold,
		 * not what tcaches do); anything else (free space going into or
		 * out of a cache, the heap's own bookkeeping) is a row of its own.
		 * The first needs no row: the chunk's row has its release
		 * (released_ns), which a replay applies at the same instant and
		 * before the heap events of that instant (replay.c), so the row
		 * would find nothing left to free (perl: 1.35 M such rows, ~10
		 * bytes a chunk). */
		const struct hp_ev_state *v = (const void *)e;
		struct chunk_entry *x = chunkmap_slot(pr->chunks, v->chunk);
		if (v->state == HP_STATE_FREE && x && x->addr == v->chunk && x->cached &&
		    !is_range(x))
			occ_heap_event(&pr->model, HP_HEV_STATE, v->chunk, v->bytes, v->state,
				       &pr->hooks);
		else
			heap_event(c, pr, HP_HEV_STATE, v->chunk, v->bytes, v->state, true);
		break;
	}
	case HP_EV_BRK: {
		const struct hp_ev_brk *b = (const void *)e;
		if (b->new_brk < b->old_brk)
			snap_heap_gone(pr->snap, b->new_brk, b->old_brk - b->new_brk);
		heap_event(c, pr, HP_HEV_BRK, b->old_brk, b->new_brk, 0, false);
		break;
	}
	case HP_EV_MAP:
	case HP_EV_UNMAP: {
		const struct hp_ev_map *m = (const void *)e;
		if (m->kind == HP_MAP_PROGRAM) {
			on_program_map(c, pr, m, HP_EV_TYPE(e->word) == HP_EV_MAP);
			break;
		}
		bool map = HP_EV_TYPE(e->word) == HP_EV_MAP;
		if (m->kind == HP_MAP_HEAP && !map)
			snap_heap_gone(pr->snap, m->addr, m->len);
		heap_event(c, pr, map ? HP_HEV_MAP : HP_HEV_UNMAP, m->addr, m->len, m->kind, true);
		break;
	}
	case HP_EV_MADVISE: {
		const struct hp_ev_madvise *m = (const void *)e;
		heap_event(c, pr, HP_HEV_MADVISE, m->addr, m->len, 0, false);
		break;
	}
	case HP_EV_THREAD: {
		const struct hp_ev_thread *t = (const void *)e;
		struct thread_in *ti = thread_of(pr, e->tid);
		if (t->exiting)
			ti->ended_ns = ns;
		else if (!ti->started_ns)
			ti->started_ns = ns;
		break;
	}
	case HP_EV_MARK: {
		const struct hp_ev_mark *m = (const void *)e;
		char name[HP_MARK_MAX];
		size_t room = HP_EV_BYTES(e->word) > sizeof(*m) ? HP_EV_BYTES(e->word) - sizeof(*m) : 0;
		size_t n = m->name_bytes < room ? m->name_bytes : room;
		if (n > sizeof(name) - 1)
			n = sizeof(name) - 1;
		memcpy(name, m + 1, n);
		name[n] = '\0';
		db_mark(c->db, pr->process_id, ns, name);
		break;
	}
	case HP_EV_SETTING: {
		const struct hp_ev_setting *v = (const void *)e;
		db_setting(c->db, pr->process_id, ns, v->param, v->value,
			   v->line_bytes ? (const char *)(v + 1) : NULL);
		break;
	}
	case HP_EV_EXIT:
		pr->exit_record_status = ((const struct hp_ev_exit *)e)->status;
		pr->has_exit_record = true;
		pr->end_ns = ns;
		break;
	case HP_EV_FORK:
		if (c->snapshots)
			save_fork_model(c, pr, e->ns);
		break;
	case HP_EV_REAP:
		on_reap(c, (const struct hp_ev_reap *)e);
		break;
	default: /* DROPS: nothing to store */
		break;
	}
	model_track(pr);
}

/* The process is over and merged: its last rows and its summary. */
void
rows_finish(struct collector *c, struct proc *pr)
{
	/* its exit snapshot, its peak and worst if not written yet, its sites */
	snap_end(pr->snap, &pr->model, pr->now);
	c->snap_failures += snap_check_failures(pr->snap);
	snap_free(pr->snap);
	pr->snap = NULL;
	pr->model.res_hook = NULL;
	/* Live chunks leaked; cached ones stayed cached; complete rows are
	 * written already. */
	uint32_t cursor = 0;
	for (struct chunk_entry *e; (e = chunkmap_next(pr->chunks, &cursor));) {
		if (e->written || is_range(e))
			continue;
		if (!e->cached) {
			c->leaked_chunks++;
			c->leaked_bytes += e->size;
		}
		write_chunk(c, pr, e, 0);
	}
	for (size_t i = 0; i < pr->nthreads; i++)
		db_thread(c->db, pr->process_id, pr->threads[i].tid, pr->threads[i].started_ns,
			  pr->threads[i].ended_ns);
	for (size_t i = 0; i < pr->npmaps; i++)
		db_program_mmap(c->db, pr->process_id, pr->pmaps[i].addr, pr->pmaps[i].len,
				pr->pmaps[i].ns, 0, pr->pmaps[i].stack_id);
	free(pr->pmaps);
	pr->pmaps = NULL;
	pr->npmaps = 0;
	if (pr->modeled)
		write_summary(c, pr);
	if (pr->peak_live_bytes > c->peak_live)
		c->peak_live = pr->peak_live_bytes;
	c->dropped += pr->proc->dropped_events;
	rows_set_end(c, pr);
	pr->row.ended_ns = pr->end_ns ? pr->end_ns : pr->last_ns;
	rows_write_process(c, pr);
	pr->finished = true;
	hm_free(&pr->model);
	chunkmap_free(pr->chunks);
	pr->chunks = NULL;
	free(pr->tl);
	pr->tl = NULL;
}

/* A new process's model, snapshots and timeline (before its
 * process_id is taken from c->next_process_id). */
void
rows_new_proc(struct collector *c, struct proc *pr)
{
	pr->chunks = chunkmap_new();
	hm_init(&pr->model, pr->chunks);
	pr->col = c;
	pr->hooks = (struct occ_hooks){ hook_touch, hook_released, hook_vacated, pr };
	pr->modeled = true;
	pr->snap = snap_new(c->db, c->next_process_id, c->snapshots, c->every_ns);
	pr->tl_step = 1000000; /* 1 ms, doubled whenever the timeline fills */
}

/* The model's and the rows' own memory of the collector. */
void
rows_free(struct collector *c)
{
	while (c->forks) {
		struct fork_model *f = c->forks;
		c->forks = f->next;
		free_fork_model(f);
	}
	for (size_t b = 0; b < GSTACK_BUCKETS; b++) {
		for (struct gstack *g = c->gstacks[b], *n; g; g = n) {
			n = g->next;
			free(g->image_ids);
			free(g->offsets);
			free(g);
		}
		for (struct gtail *t = c->gtails[b], *n; t; t = n) {
			n = t->next;
			free(t);
		}
	}
	free(c->gstacks);
	free(c->gtails);
}
