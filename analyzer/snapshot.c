/* SPDX-License-Identifier: MIT */
/* snapshot.c - sites and snapshots of a process (see snapshot.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "addrset.h"
#include "formermap.h"
#include "snapshot.h"
#include "util.h"

#define KEPT 16                  /* interval snapshots and intervals kept per process */
#define BUDGET_FLOOR 4096        /* undo records smaller than this never settle */
#define MARGIN_FLOOR (64 << 10)  /* a settled peak or worst must beat the stored one by */
#define MARGIN_SHIFT 4           /* ... this much and 1/16 of it */
#define FORMER_RANGES 8          /* former ranges a record lists */
#define HELD_PAGES_KEPT 256      /* an emptied record keeps this much of its
				  * address set (128 KiB) */
#define SAVED_SHRINK 65536       /* a record written is given back 4 MiB at a time */

enum { C_WORST, C_PEAK, C_N };
static const char *const cand_reason[C_N] = { "worst", "peak" };

/* The O(1) figures of a model, to check a rebuilt one against. */
struct figs {
	uint64_t extent, live, cached, fastbin, own, mmap, untrimmable, live_n, cached_n, mmap_n;
	uint64_t resident;
};

struct heap_copy {
	uint64_t start, end;
	uint8_t kind;
};

/* The undo record's entries: the first earlier value of each address
 * that changed since t0, or, for an address that held nothing then, an
 * entry of that address whose kind is SAVED_ABSENT (no chunk has it): 64
 * bytes a record, not 80 with the address and a flag beside the entry
 * (perl's peak: 0.7 M records, 11 MB). */
#define SAVED_ABSENT 0xff
_Static_assert(SAVED_ABSENT > HM_RANGE_ALLOCATOR, "no entry of the model has kind SAVED_ABSENT");

/* A peak or worst that began at t0 and is not written yet. */
struct cand {
	bool active;
	int64_t t0;
	uint64_t value;
	struct figs fig0;
	struct heap_copy *heaps;
	size_t nheaps, heap_cap;
	/* the undo record: entries by address, and former ranges */
	struct chunk_entry *saved;
	size_t nsaved, saved_cap;
	struct addrset *held;     /* the addresses it holds */
	struct formermap *former;
	/* the first ranges given to `former` (all of them, while nfr <=
	 * FORMER_RANGES): emptying it is clearing them, for a record that
	 * restarts at every new worst */
	struct range {
		uint64_t addr, bytes;
	} fr[FORMER_RANGES];
	size_t nfr;
	/* words of the heaps' resident bitmaps, as they were */
	struct res_saved {
		size_t heap, word;
		uint64_t old;
	} *res;
	size_t nres, res_cap;
	/* what is in the database */
	bool has_stored;
	int64_t stored_id;
	uint64_t stored_value;
};

struct site {
	int64_t live; /* requested bytes live now (a forked child's may go below 0) */
	bool active;  /* has figures in this interval */
	struct db_site cur;
};

struct kept {
	int64_t id, start, end;
};

/* A former-holder change of this event, not applied yet. */
struct pend_former {
	uint64_t addr, bytes;
	int64_t ns;
	uint32_t stack_id;
	bool clear; /* the heap went away; else the chunk of stack_id vacated */
};

/* Apply the change to the former-holder map m. */
static void
apply_former(struct formermap *m, const struct pend_former *p)
{
	if (p->clear)
		fm_clear(m, p->addr, p->bytes);
	else
		fm_set(m, p->addr, p->bytes, p->stack_id, p->ns);
}

struct snap {
	struct db *db;
	int64_t process_id;
	bool snapshots, started;
	int64_t every, next, interval_start;
	struct kept iv[KEPT + 1];
	size_t niv;
	int64_t isnap[KEPT + 1];
	size_t nisnap;
	/* sites by (stack, backing) */
	struct site *sites;
	size_t nsites, sites_cap;
	struct site_slot {
		uint64_t key;   /* stack_id << 2 | backing */
		uint32_t index; /* + 1; 0: empty */
	} *site_table;          /* the keys here: a probe past other sites reads
				 * no site (each one a cache miss) */
	size_t site_mask;
	uint32_t last_site;   /* index + 1 of the last one looked up: a
			       * program allocates and frees from one site in
			       * runs */
	uint32_t *active;
	size_t nactive, active_cap;
	/* snapshots */
	struct formermap *former;
	struct cand cand[C_N];
	/* The changes of the event being applied, while a candidate is
	 * active: entries' earlier values and former changes, kept for
	 * snap_after. An event that makes a new worst or peak begins that
	 * candidate anew, and its changes come before the new one's instant:
	 * they are dropped, not put in the record and taken out again
	 * (python3: half a million new worsts, one every four events). */
	struct chunk_entry *pend;
	size_t npend, pend_cap;
	struct pend_former *pf;
	size_t npf, pf_cap;
	unsigned failures;
};

struct snap *
snap_new(struct db *db, int64_t process_id, bool snapshots, int64_t every_ns)
{
	struct snap *s = xcalloc(1, sizeof(*s));

	s->db = db;
	s->process_id = process_id;
	s->snapshots = snapshots;
	s->every = every_ns > 0 ? every_ns : 60000000000LL;
	s->site_mask = 255;
	s->site_table = xcalloc(s->site_mask + 1, sizeof(*s->site_table));
	if (snapshots)
		s->former = fm_new();
	return s;
}

void
snap_set_process(struct snap *s, int64_t process_id)
{
	s->process_id = process_id;
}

struct snap *
snap_fork(const struct snap *parent)
{
	struct snap *s = snap_new(parent->db, 0, parent->snapshots, parent->every);

	if (parent->former) {
		fm_free(s->former);
		s->former = fm_clone(parent->former);
		/* the fork record changes nothing: this only makes sure */
		for (size_t i = 0; i < parent->npf; i++)
			apply_former(s->former, &parent->pf[i]);
	}
	return s;
}

static void
cand_clear(struct cand *c)
{
	c->nres = 0;
	if (c->saved_cap > 4 * BUDGET_FLOOR) {
		/* a record that grew large is not kept for the next one */
		free(c->saved);
		c->saved = NULL;
		c->saved_cap = 0;
		as_free(c->held);
		c->held = NULL;
		c->nsaved = 0;
	}
	if (c->nsaved) {
		/* a new worst follows the last one closely while the heap
		 * grows: take back the few bits set, not every page */
		if (c->nsaved < 8 * as_pages(c->held))
			for (size_t k = 0; k < c->nsaved; k++)
				as_remove(c->held, c->saved[k].addr);
		else
			as_clear(c->held, HELD_PAGES_KEPT);
		c->nsaved = 0;
	}
	if (c->former && fm_count(c->former)) {
		if (c->nfr <= FORMER_RANGES)
			for (size_t k = 0; k < c->nfr; k++)
				fm_clear(c->former, c->fr[k].addr, c->fr[k].bytes);
		else
			fm_empty(c->former, HELD_PAGES_KEPT / 16);
	}
	c->nfr = 0;
	c->active = false;
}

void
snap_free(struct snap *s)
{
	if (!s)
		return;
	for (int k = 0; k < C_N; k++) {
		struct cand *c = &s->cand[k];
		free(c->heaps);
		free(c->saved);
		as_free(c->held);
		fm_free(c->former);
		free(c->res);
	}
	fm_free(s->former);
	free(s->pend);
	free(s->pf);
	free(s->sites);
	free(s->site_table);
	free(s->active);
	free(s);
}

unsigned
snap_check_failures(const struct snap *s)
{
	return s->failures;
}

/* ---- sites ---- */

static size_t
site_home(const struct snap *s, uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 32) & s->site_mask;
}

static struct site *
site_of(struct snap *s, int64_t stack_id, int backing)
{
	uint64_t key = (uint64_t)stack_id << 2 | (unsigned)backing;
	size_t i;

	if (s->last_site) {
		struct site *x = &s->sites[s->last_site - 1];
		if (x->cur.stack_id == stack_id && x->cur.backing == backing)
			return x;
	}
	for (i = site_home(s, key); s->site_table[i].index; i = (i + 1) & s->site_mask)
		if (s->site_table[i].key == key) {
			s->last_site = s->site_table[i].index;
			return &s->sites[s->last_site - 1];
		}
	if (2 * (s->nsites + 1) > s->site_mask + 1) {
		struct site_slot *old = s->site_table;
		size_t n = s->site_mask + 1;
		s->site_mask = 2 * n - 1;
		s->site_table = xcalloc(2 * n, sizeof(*s->site_table));
		for (size_t k = 0; k < n; k++) {
			if (!old[k].index)
				continue;
			size_t j = site_home(s, old[k].key);
			while (s->site_table[j].index)
				j = (j + 1) & s->site_mask;
			s->site_table[j] = old[k];
		}
		free(old);
		for (i = site_home(s, key); s->site_table[i].index; i = (i + 1) & s->site_mask)
			;
	}
	if (s->nsites == s->sites_cap) {
		s->sites_cap = s->sites_cap ? 2 * s->sites_cap : 256;
		s->sites = xrealloc(s->sites, s->sites_cap * sizeof(*s->sites));
	}
	struct site *x = &s->sites[s->nsites];
	memset(x, 0, sizeof(*x));
	x->cur.stack_id = stack_id;
	x->cur.backing = backing;
	s->site_table[i] = (struct site_slot){ key, (uint32_t)++s->nsites };
	s->last_site = (uint32_t)s->nsites;
	return x;
}

static void
activate(struct snap *s, struct site *x)
{
	if (x->active)
		return;
	x->active = true;
	if (s->nactive == s->active_cap) {
		s->active_cap = s->active_cap ? 2 * s->active_cap : 256;
		s->active = xrealloc(s->active, s->active_cap * sizeof(*s->active));
	}
	s->active[s->nactive++] = (uint32_t)(x - s->sites);
}

static void
grow_live(struct site *x, int64_t delta)
{
	x->live += delta;
	if (x->live > 0 && (uint64_t)x->live > x->cur.peak_live_bytes)
		x->cur.peak_live_bytes = (uint64_t)x->live;
}

void
snap_alloc(struct snap *s, const struct chunk_entry *e)
{
	struct site *x = site_of(s, e->stack_id, e->backing);

	x->cur.allocs++;
	x->cur.alloc_bytes += e->size;
	grow_live(x, (int64_t)e->size);
	activate(s, x);
}

/* Lifetimes by decade: at most 1 us, 10 us, ... 100 s, longer. */
static unsigned
lifetime_bucket(int64_t ns)
{
	unsigned k = 0;

	for (int64_t limit = 1000; k < DB_LIFETIMES - 1 && ns > limit; limit *= 10)
		k++;
	return k;
}

void
snap_freed(struct snap *s, const struct chunk_entry *e, int64_t ns)
{
	struct site *x = site_of(s, e->stack_id, e->backing);

	x->cur.frees++;
	x->cur.free_bytes += e->size;
	x->cur.freed_in[lifetime_bucket(ns - e->alloc_ns)]++;
	grow_live(x, -(int64_t)e->size);
	activate(s, x);
}

void
snap_resize(struct snap *s, const struct chunk_entry *e, uint64_t new_size)
{
	struct site *x = site_of(s, e->stack_id, e->backing);

	if (new_size >= e->size)
		x->cur.alloc_bytes += new_size - e->size;
	else
		x->cur.free_bytes += e->size - new_size;
	grow_live(x, (int64_t)(new_size - e->size));
	activate(s, x);
}

/* The interval [interval_start, end) is over: its sites and its row; past
 * KEPT intervals, neighbours are merged and the interval doubles. */
static void
flush_interval(struct snap *s, int64_t end)
{
	int64_t id = db_interval(s->db, 0, s->process_id, s->interval_start, end);

	for (size_t k = 0; k < s->nactive; k++) {
		struct site *x = &s->sites[s->active[k]];
		db_site(s->db, id, &x->cur);
		int64_t stack_id = x->cur.stack_id;
		int backing = x->cur.backing;
		memset(&x->cur, 0, sizeof(x->cur));
		x->cur.stack_id = stack_id;
		x->cur.backing = backing;
		x->cur.peak_live_bytes = x->live > 0 ? (uint64_t)x->live : 0;
		x->active = false;
	}
	s->nactive = 0;
	s->iv[s->niv++] = (struct kept){ id, s->interval_start, end };
	if (s->niv > KEPT) {
		size_t k = 0, i;
		for (i = 0; i + 1 < s->niv; i += 2) {
			db_interval_merge(s->db, s->iv[i].id, s->iv[i + 1].id, s->process_id,
					  s->iv[i].start, s->iv[i + 1].end);
			s->iv[k++] = (struct kept){ s->iv[i].id, s->iv[i].start, s->iv[i + 1].end };
		}
		if (i < s->niv)
			s->iv[k++] = s->iv[i];
		s->niv = k;
		s->every *= 2;
	}
	s->interval_start = end;
}

/* ---- the undo record of a candidate ---- */

/* Keep an address's earlier value (kind SAVED_ABSENT: nothing there), not
 * held yet. */
static void
saved_put(struct cand *c, const struct chunk_entry *e)
{
	if (c->nsaved == c->saved_cap) {
		c->saved_cap = c->saved_cap ? 2 * c->saved_cap : 1024;
		c->saved = xrealloc(c->saved, c->saved_cap * sizeof(*c->saved));
	}
	c->saved[c->nsaved++] = *e;
}

static bool
any_active(const struct snap *s)
{
	return s->cand[C_WORST].active || s->cand[C_PEAK].active;
}

void
snap_touch(struct snap *s, struct hm *m, uint64_t addr)
{
	if (!any_active(s))
		return;
	if (s->npend == s->pend_cap) {
		s->pend_cap = s->pend_cap ? 2 * s->pend_cap : 16;
		s->pend = xrealloc(s->pend, s->pend_cap * sizeof(*s->pend));
	}
	struct chunk_entry *e = chunkmap_slot(m->map, addr);
	struct chunk_entry *v = &s->pend[s->npend++];
	if (e && e->addr == addr)
		*v = *e;
	else
		*v = (struct chunk_entry){ .addr = addr, .kind = SAVED_ABSENT };
}

static void
former_change(struct snap *s, uint64_t addr, uint64_t bytes, uint32_t stack_id, int64_t ns,
	      bool clear)
{
	struct pend_former p = { addr, bytes, ns, stack_id, clear };

	if (!s->former)
		return;
	if (!any_active(s)) {
		apply_former(s->former, &p);
		return;
	}
	if (s->npf == s->pf_cap) {
		s->pf_cap = s->pf_cap ? 2 * s->pf_cap : 16;
		s->pf = xrealloc(s->pf, s->pf_cap * sizeof(*s->pf));
	}
	s->pf[s->npf++] = p;
}

void
snap_vacated(struct snap *s, const struct chunk_entry *e, int64_t ns)
{
	former_change(s, e->addr, e->chunk_bytes, e->stack_id, ns, false);
}

void
snap_heap_gone(struct snap *s, uint64_t addr, uint64_t bytes)
{
	former_change(s, addr, bytes, 0, 0, true);
}

/* The event's changes: into the records of the candidates in `keep` (a
 * bit per candidate) the first earlier value of each address and former
 * range they do not hold yet; the former changes applied. */
static void
settle_pending(struct snap *s, unsigned keep)
{
	for (int k = 0; k < C_N; k++) {
		struct cand *c = &s->cand[k];
		if (!(keep >> k & 1))
			continue;
		for (size_t i = 0; i < s->npend; i++) {
			if (!c->held)
				c->held = as_new();
			if (as_add(c->held, s->pend[i].addr))
				saved_put(c, &s->pend[i]);
		}
	}
	for (size_t i = 0; i < s->npf; i++) {
		const struct pend_former *p = &s->pf[i];
		for (int k = 0; k < C_N; k++) {
			struct cand *c = &s->cand[k];
			if (!(keep >> k & 1))
				continue;
			if (!c->former)
				c->former = fm_new();
			if (c->nfr < FORMER_RANGES)
				c->fr[c->nfr] = (struct range){ p->addr, p->bytes };
			c->nfr++;
			fm_save(c->former, s->former, p->addr, p->bytes);
		}
		apply_former(s->former, p);
	}
	s->npend = 0;
	s->npf = 0;
}

/* Every active candidate keeps the changes made since the last event
 * (none, between events: this only makes sure). */
static void
settle_all(struct snap *s)
{
	if (s->npend || s->npf)
		settle_pending(s, (s->cand[C_WORST].active << C_WORST) |
					  (s->cand[C_PEAK].active << C_PEAK));
}

/* ---- writing a snapshot ---- */

static void
figs_of(const struct hm *m, struct figs *f)
{
	*f = (struct figs){ m->extent,	    m->live,   m->cached,   m->fastbin,
			    m->allocator,   m->mmap,   m->untrimmable, m->live_n,
			    m->cached_n,    m->mmap_n, hm_resident(m) };
}

/* The heap model is about to change a word of a resident bitmap: each
 * candidate keeps the word's first earlier value. */
static void
res_changed(void *arg, size_t heap, size_t word, uint64_t old)
{
	struct snap *s = arg;

	for (int k = 0; k < C_N; k++) {
		struct cand *c = &s->cand[k];
		bool seen = false;
		if (!c->active || heap >= c->nheaps)
			continue;
		/* few words change: pages go in and out of use, not chunks */
		for (size_t i = 0; i < c->nres && !seen; i++)
			seen = c->res[i].heap == heap && c->res[i].word == word;
		if (seen)
			continue;
		if (c->nres == c->res_cap) {
			c->res_cap = c->res_cap ? 2 * c->res_cap : 64;
			c->res = xrealloc(c->res, c->res_cap * sizeof(*c->res));
		}
		c->res[c->nres++] = (struct res_saved){ heap, word, old };
	}
}

/* A hole's formers, walked in address order, become one row per stack:
 * the bytes its chunks last held in the hole, how many chunks (the changes
 * of vacated_ns from one of the stack's pieces to its next: a chunk whose
 * range another stack's chunk split counts once, one that its own stack's
 * split counts twice, which only memalign's leading remainder can do) and
 * when the last of them left. perl's exit snapshot: 1.18 M pieces;
 * python3's: 505 K pieces, 11 K rows. */
struct hole_stack {
	uint32_t stack_id;
	uint64_t bytes, chunks;
	int64_t last_vacated, latest;
};

struct hole_ctx {
	struct db *db;
	const struct formermap *cur, *over;
	struct hole_stack *v; /* this hole's stacks, by first piece */
	size_t n, cap;
	uint32_t *table;      /* index + 1 into v, by stack */
	size_t mask;
};

static size_t
stack_home(uint32_t stack_id, size_t mask)
{
	return (size_t)(stack_id * 0x9E3779B1u) & mask;
}

static void
put_former(void *arg, const struct fm_piece *p)
{
	struct hole_ctx *h = arg;
	size_t i;

	if (p->stack_id == FM_NONE)
		return;
	if (!h->table || 2 * (h->n + 1) > h->mask + 1) {
		size_t size = h->table ? 2 * (h->mask + 1) : 64;
		free(h->table);
		h->table = xcalloc(size, sizeof(*h->table));
		h->mask = size - 1;
		for (size_t k = 0; k < h->n; k++) {
			for (i = stack_home(h->v[k].stack_id, h->mask); h->table[i];
			     i = (i + 1) & h->mask)
				;
			h->table[i] = (uint32_t)k + 1;
		}
	}
	for (i = stack_home(p->stack_id, h->mask); h->table[i]; i = (i + 1) & h->mask) {
		struct hole_stack *x = &h->v[h->table[i] - 1];
		if (x->stack_id != p->stack_id)
			continue;
		x->bytes += p->bytes;
		x->chunks += p->vacated_ns != x->last_vacated;
		x->last_vacated = p->vacated_ns;
		if (p->vacated_ns > x->latest)
			x->latest = p->vacated_ns;
		return;
	}
	if (h->n == h->cap) {
		h->cap = h->cap ? 2 * h->cap : 16;
		h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	h->v[h->n] = (struct hole_stack){ p->stack_id, p->bytes, 1, p->vacated_ns, p->vacated_ns };
	h->table[i] = (uint32_t)++h->n;
}

struct over_walk {
	struct hole_ctx *h;
	uint64_t pos;
};

/* An undo record's piece: what it holds replaces the current map's there. */
static void
over_piece(void *arg, const struct fm_piece *p)
{
	struct over_walk *w = arg;

	if (p->addr > w->pos)
		fm_each(w->h->cur, w->pos, p->addr - w->pos, put_former, w->h);
	put_former(w->h, p);
	w->pos = p->addr + p->bytes;
}

static void
hole_formers(void *arg, uint64_t addr, uint64_t bytes)
{
	struct hole_ctx *h = arg;

	if (!h->cur)
		return;
	if (!h->over) {
		fm_each(h->cur, addr, bytes, put_former, h);
	} else {
		struct over_walk w = { h, addr };
		fm_each(h->over, addr, bytes, over_piece, &w);
		if (w.pos < addr + bytes)
			fm_each(h->cur, w.pos, addr + bytes - w.pos, put_former, h);
	}
	for (size_t k = 0; k < h->n; k++)
		db_snapshot_former(h->db, addr, h->v[k].bytes, h->v[k].stack_id, h->v[k].latest,
				   h->v[k].chunks);
	if (h->n)
		memset(h->table, 0, (h->mask + 1) * sizeof(*h->table));
	h->n = 0;
}

/* The fate code (table fate) of a cache: 1 tcache, 2 fastbin. */
static int
cache_fate(uint8_t cached)
{
	return cached == HM_FASTBIN ? 2 : 1;
}

static void
put_resident(void *arg, uint64_t addr, uint64_t bytes)
{
	db_snapshot_resident(arg, addr, bytes);
}

/* The figures of model m as a snapshot at ns. */
static void
snapshot_figures(const struct snap *s, struct hm *m, const char *reason, int64_t ns,
		 struct db_snapshot *x)
{
	*x = (struct db_snapshot){
		.process_id = s->process_id,
		.ns = ns,
		.reason = reason,
		.extent = m->extent,
		.live = m->live,
		.cached = m->cached,
		.allocator = m->allocator,
		.top_free = hm_top_free(m),
		.untrimmable = m->untrimmable,
		.trim_reclaimable = hm_trim_reclaimable(m),
		.mmap = m->mmap,
		.retained = hm_retained(m),
		.live_chunks = m->live_n,
		.cached_chunks = m->cached_n,
		.mmap_chunks = m->mmap_n,
	};
}

/* A snapshot's chunk rows: the entries of a model, in address order. */
struct chunk_rows {
	struct hm *m;
	struct chunk_entry **v;
	size_t n;
	bool owned; /* m (and its chunkmap) is a copy, freed with the rows */
};

static void
chunk_row(void *arg, size_t i, struct db_snapshot_chunk *r)
{
	const struct chunk_rows *cr = arg;
	const struct chunk_entry *e = cr->v[i];

	*r = (struct db_snapshot_chunk){
		.address = e->addr,
		.chunk_bytes = e->chunk_bytes,
		.backing = e->backing,
	};
	if (e->kind == HM_RANGE_CACHED || e->kind == HM_RANGE_ALLOCATOR) {
		const struct hm_heap *h = hm_heap_of(cr->m, e->addr);
		r->occupant = e->kind == HM_RANGE_ALLOCATOR ? HP_OCC_ALLOCATOR : HP_OCC_CACHED_FREE;
		r->backing = h && h->kind != HM_BRK ? 3 : 1;
		r->fate = e->kind == HM_RANGE_CACHED ? cache_fate(e->cached) : 0;
	} else {
		r->occupant = e->cached ? HP_OCC_CACHED : HP_OCC_LIVE;
		r->size = e->size;
		r->call = e->call;
		r->alloc_ns = e->alloc_ns;
		r->alloc_tid = e->alloc_tid;
		r->stack_id = e->stack_id;
		if (e->free_ns) {
			r->free_ns = e->free_ns;
			r->free_tid = e->free_tid;
			/* where it is now (it may have moved between caches) */
			r->fate = e->cached ? cache_fate(e->cached) : e->fate;
		}
	}
}

static void
chunk_rows_free(void *arg)
{
	struct chunk_rows *cr = arg;

	if (cr->owned) {
		struct chunkmap *map = cr->m->map;
		hm_free(cr->m);
		chunkmap_free(map);
		free(cr->m);
	}
	free(cr->v);
	free(cr);
}

/* Write the state of model m (its chunkmap, and the formers of `cur` with
 * the undo record `over` on top) as a snapshot at ns. With `give`, m is a
 * copy (hm_init over a chunkmap of its own, both allocated) that the
 * writer thread makes the chunk rows of and frees: the caller goes on at
 * once, and must not use m again. */
static int64_t
write_state(struct snap *s, struct hm *m, const struct formermap *over, const char *reason,
	    int64_t ns, bool give)
{
	struct db *db = s->db;
	int64_t id = db_snapshot_begin(db);
	size_t n = chunkmap_count(m->map);

	for (size_t i = 0; i < m->nheaps; i++) {
		db_snapshot_heap(db, m->heaps[i].start, m->heaps[i].end,
				 m->heaps[i].kind == HM_BRK ? 1 : 3);
		hm_res_runs(&m->heaps[i], put_resident, db);
	}
	struct hole_ctx h = { .db = db, .cur = s->former, .over = over };
	for (size_t i = 0; i < m->nheaps; i++)
		hm_holes(m, &m->heaps[i], hole_formers, &h);
	free(h.v);
	free(h.table);
	struct db_snapshot x;
	snapshot_figures(s, m, reason, ns, &x);
	/* the chunks last: the figures and formers above are taken from m,
	 * which the writer may free once it has them */
	struct chunk_rows *cr = xmalloc(sizeof(*cr));
	*cr = (struct chunk_rows){ m, xmalloc((n ? n : 1) * sizeof(*cr->v)), 0, give };
	cr->n = chunkmap_by_addr(m->map, cr->v);
	if (give) {
		db_snapshot_chunks(db, cr->n, chunk_row, chunk_rows_free, cr);
	} else {
		for (size_t i = 0; i < cr->n; i++) {
			struct db_snapshot_chunk r;
			chunk_row(cr, i, &r);
			db_snapshot_chunk(db, &r);
		}
		chunk_rows_free(cr);
	}
	db_snapshot_end(db, &x);
	return id;
}

/* Whether candidate c's state is model m's now: nothing it records
 * changed since it began (no entry, resident word or former range, the
 * same heaps), and the figures say so too. */
static bool
cand_unchanged(const struct cand *c, struct hm *m)
{
	struct figs f;

	if (c->nsaved || c->nres || (c->former && fm_count(c->former)) || c->nheaps != m->nheaps)
		return false;
	for (size_t i = 0; i < m->nheaps; i++)
		if (c->heaps[i].start != m->heaps[i].start || c->heaps[i].end != m->heaps[i].end ||
		    c->heaps[i].kind != m->heaps[i].kind)
			return false;
	figs_of(m, &f);
	return memcmp(&f, &c->fig0, sizeof(f)) == 0;
}

/* Place a copy of e in model m as the collector had it. */
static bool
place(struct hm *m, const struct chunk_entry *e)
{
	if (chunkmap_slot(m->map, e->addr))
		return false;
	struct chunk_entry *x = chunkmap_add(m->map, e->addr);
	*x = *e;
	if (x->kind != 0) {
		if (!hm_occupy(m, x))
			return false;
	} else if (x->backing == 2 && !x->free_ns) {
		hm_mmap(m, x->chunk_bytes, true);
	}
	return true;
}

/* Write the candidate's state at t0, rebuilt from the model now (m) and
 * its undo record. */
static int64_t
write_candidate(struct snap *s, int k, struct hm *m)
{
	struct cand *c = &s->cand[k];
	struct hm *t = xmalloc(sizeof(*t));
	uint32_t cursor = 0;
	bool ok = true;

	hm_init(t, chunkmap_new());
	for (size_t i = 0; i < c->nheaps; i++)
		hm_restore_heap(t, c->heaps[i].start, c->heaps[i].end, c->heaps[i].kind);
	for (struct chunk_entry *e; (e = chunkmap_next(m->map, &cursor));)
		if (!c->held || !as_has(c->held, e->addr))
			ok &= place(t, e);
	/* the record's entries from its end, its memory given back as they
	 * go: the copy grows by what the record shrinks (perl's peak: 0.7 M
	 * entries; the collector's peak 266.6 -> 251.2 MiB). The record is
	 * spent: the candidate is cleared once written. */
	as_free(c->held);
	c->held = NULL;
	for (size_t i = c->nsaved; i-- > 0;) {
		if (c->saved[i].kind != SAVED_ABSENT)
			ok &= place(t, &c->saved[i]);
		if (i % SAVED_SHRINK == 0 && i) {
			c->saved = xrealloc(c->saved, i * sizeof(*c->saved));
			c->saved_cap = i;
		}
	}
	free(c->saved);
	c->saved = NULL;
	c->saved_cap = c->nsaved = 0;
	/* the resident pages as they were: now's, with the words changed
	 * since taken back */
	for (size_t i = 0; i < c->nheaps && i < m->nheaps; i++) {
		const struct hm_heap *h = &m->heaps[i];
		size_t n = h->res_words;
		for (size_t j = 0; j < c->nres; j++)
			if (c->res[j].heap == i && c->res[j].word >= n)
				n = c->res[j].word + 1;
		uint64_t *w = xcalloc(n ? n : 1, sizeof(uint64_t));
		if (h->res_words)
			memcpy(w, h->res, h->res_words * sizeof(uint64_t));
		for (size_t j = 0; j < c->nres; j++)
			if (c->res[j].heap == i)
				w[c->res[j].word] = c->res[j].old;
		hm_res_load(t, i, w, n);
		free(w);
	}
	struct figs f;
	figs_of(t, &f);
	if (!ok || memcmp(&f, &c->fig0, sizeof(f)) != 0)
		s->failures++;
	return write_state(s, t, c->former, cand_reason[k], c->t0, true);
}

/* Write the candidate, replacing what was stored; it is settled. At the
 * end (exit_id: the exit snapshot), a peak or worst that lasted to it
 * (nothing changed since: pattern live-pin's worst) is the exit's state:
 * its rows are the exit's, not a copy. */
static void
store_candidate(struct snap *s, int k, struct hm *m, int64_t exit_id)
{
	struct cand *c = &s->cand[k];
	int64_t id = 0;

	if (exit_id && cand_unchanged(c, m)) {
		struct db_snapshot x;
		snapshot_figures(s, m, cand_reason[k], c->t0, &x);
		id = db_snapshot_same(s->db, exit_id, &x);
	}
	if (!id)
		id = write_candidate(s, k, m);
	if (c->has_stored)
		db_snapshot_delete(s->db, c->stored_id);
	c->has_stored = true;
	c->stored_id = id;
	c->stored_value = c->value;
	cand_clear(c);
}

static void
begin_candidate(struct snap *s, int k, struct hm *m, int64_t ns, uint64_t value)
{
	struct cand *c = &s->cand[k];

	cand_clear(c);
	c->active = true;
	c->t0 = ns;
	c->value = value;
	figs_of(m, &c->fig0);
	if (m->nheaps > c->heap_cap) {
		c->heap_cap = 2 * m->nheaps;
		c->heaps = xrealloc(c->heaps, c->heap_cap * sizeof(*c->heaps));
	}
	c->nheaps = m->nheaps;
	for (size_t i = 0; i < m->nheaps; i++)
		c->heaps[i] = (struct heap_copy){ m->heaps[i].start, m->heaps[i].end,
						  m->heaps[i].kind };
}

/* ---- instants ---- */

void
snap_start(struct snap *s, struct hm *m, int64_t ns, bool whole)
{
	s->started = true;
	s->interval_start = ns;
	s->next = ns + s->every;
	if (!whole) {
		fm_free(s->former);
		s->former = NULL;
		s->snapshots = false;
	}
	if (!s->snapshots)
		return;
	m->res_hook = res_changed;
	m->res_arg = s;
	/* as hm_start: a figure that never rises above zero peaks here */
	begin_candidate(s, C_WORST, m, ns, 0);
	begin_candidate(s, C_PEAK, m, ns, 0);
}

void
snap_before(struct snap *s, struct hm *m, int64_t ns)
{
	if (!s->started || ns < s->next)
		return;
	settle_all(s);
	/* the state is unchanged since the last event: one boundary stands
	 * for all that passed since */
	int64_t b = s->next + (ns - s->next) / s->every * s->every;
	flush_interval(s, b);
	if (s->snapshots) {
		s->isnap[s->nisnap++] = write_state(s, m, NULL, "interval", b, false);
		if (s->nisnap > KEPT) {
			size_t k = 0;
			for (size_t i = 0; i < s->nisnap; i++)
				if (i % 2 == 0)
					s->isnap[k++] = s->isnap[i];
				else
					db_snapshot_delete(s->db, s->isnap[i]);
			s->nisnap = k;
		}
	}
	s->next = b + s->every;
}

void
snap_after(struct snap *s, struct hm *m, int64_t ns)
{
	if (!s->snapshots || !s->started)
		return;
	bool worst = m->untrimmable > m->worst_untrimmable, peak = m->extent > m->peak_extent;
	if (s->npend || s->npf)
		settle_pending(s, ((s->cand[C_WORST].active && !worst) << C_WORST) |
					  ((s->cand[C_PEAK].active && !peak) << C_PEAK));
	if (worst)
		begin_candidate(s, C_WORST, m, ns, m->untrimmable);
	if (peak)
		begin_candidate(s, C_PEAK, m, ns, m->extent);
	for (int k = 0; k < C_N; k++) {
		struct cand *c = &s->cand[k];
		if (!c->active)
			continue;
		/* half as large as the heap: writing it takes as long as
		 * making that many changes did, and the record's memory stays
		 * below the heap model's */
		size_t held = c->nsaved + c->nres + (c->former ? fm_count(c->former) : 0);
		if (held <= BUDGET_FLOOR || held <= chunkmap_count(m->map) / 2)
			continue;
		/* settle: worth a rewrite only if it beats the stored one well */
		uint64_t margin = c->stored_value >> MARGIN_SHIFT;
		if (margin < MARGIN_FLOOR)
			margin = MARGIN_FLOOR;
		if (!c->has_stored || c->value >= c->stored_value + margin)
			store_candidate(s, k, m, 0);
		else
			cand_clear(c);
	}
}

void
snap_demand(struct snap *s, struct hm *m, int64_t ns)
{
	if (s->snapshots && s->started) {
		settle_all(s);
		write_state(s, m, NULL, "demand", ns, false);
	}
}

void
snap_end(struct snap *s, struct hm *m, int64_t ns)
{
	if (!s->started)
		return;
	settle_all(s);
	if (s->snapshots) {
		int64_t exit_id = write_state(s, m, NULL, "exit", ns, false);
		for (int k = 0; k < C_N; k++) {
			struct cand *c = &s->cand[k];
			if (c->active && (!c->has_stored || c->value > c->stored_value))
				store_candidate(s, k, m, exit_id);
		}
	}
	if (ns < s->interval_start)
		ns = s->interval_start;
	flush_interval(s, ns);
}
