/* SPDX-License-Identifier: MIT */
/* frames.c - a process at chosen instants (see frames.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frames.h"
#include "util.h"

/* What the visit of one instant gathers, until the instant's result is
 * complete (finish). */
struct builder {
	struct ld_db *db;
	const struct fr_request *q;
	struct fr_process *out;
	struct fr_map *maps;
	size_t nmaps;
	bool laid_out;
	struct rp_range *mmaps;
	size_t nmmaps;
	struct fr_site *dense;     /* by ld_stack_slot (0: no stack) */
	/* rp_frames: the labels of its instants, and the frame of each */
	const char *const *labels;
	size_t *slot;
};

#define FR_MMAPS 64

static size_t
stack_index(struct ld_db *db, int64_t stack_id)
{
	return ld_stack_slot(db, stack_id);
}

/* The stack id of a slot (0: none). */
static int64_t
slot_stack(const struct ld_db *db, size_t slot)
{
	return slot ? db->stack_fns[slot - 1].stack_id : 0;
}

/* Each heap as cells: the smallest power of two of at least 16 bytes that
 * needs at most q->cells cells. */
static void
lay_out(struct builder *b, const struct rp_result *r)
{
	b->laid_out = true;
	b->nmaps = r->nheaps;
	b->maps = xcalloc(r->nheaps + 1, sizeof(*b->maps));
	for (size_t i = 0; i < r->nheaps; i++) {
		const struct rp_heap *h = &r->heaps[i];
		struct fr_map *m = &b->maps[i];
		uint64_t extent = h->end > h->start ? h->end - h->start : 0;
		m->heap = (unsigned)i;
		m->start = h->start;
		m->end = h->start + extent;
		m->top_end = h->top_end > h->start ? h->top_end : h->start;
		m->cell_bytes = 16;
		while ((extent + m->cell_bytes - 1) / m->cell_bytes > b->q->cells)
			m->cell_bytes *= 2;
		m->ncells = (size_t)((extent + m->cell_bytes - 1) / m->cell_bytes);
		m->cells = xcalloc(m->ncells + 1, sizeof(*m->cells));
		for (size_t c = 0; c < m->ncells; c++)
			m->cells[c].hole = -1;
	}
}

static void
on_range(void *arg, const struct rp_result *r, const struct rp_range *x)
{
	struct builder *b = arg;

	if (x->state == RP_CACHED)
		b->dense[stack_index(b->db, x->stack_id)].cached += x->bytes;
	if (!b->q->cells)
		return;
	if (!b->laid_out)
		lay_out(b, r);
	if (x->heap >= b->nmaps)
		return;
	struct fr_map *m = &b->maps[x->heap];
	uint64_t lo = x->addr > m->start ? x->addr : m->start;
	uint64_t hi = x->addr + x->bytes < m->end ? x->addr + x->bytes : m->end;
	/* stashed: free space a tcache or fastbin holds, counted as cached */
	int state = x->state == RP_LIVE	       ? FR_LIVE
		    : x->state == RP_ALLOCATOR ? FR_ALLOCATOR
					       : FR_CACHED;
	for (uint64_t a = lo; a < hi;) {
		size_t c = (size_t)((a - m->start) / m->cell_bytes);
		uint64_t cell_end = m->start + (uint64_t)(c + 1) * m->cell_bytes;
		uint64_t e = hi < cell_end ? hi : cell_end;
		m->cells[c].bytes[state] += e - a;
		if (x->bytes > m->cells[c].big.bytes)
			m->cells[c].big = *x;
		a = e;
	}
}

static void
on_mmap(void *arg, const struct rp_result *r, const struct rp_range *x)
{
	struct builder *b = arg;
	size_t i;

	(void)r;
	if (!b->q->cells)
		return;
	if (!b->mmaps)
		b->mmaps = xmalloc(FR_MMAPS * sizeof(*b->mmaps));
	/* the largest FR_MMAPS, largest first */
	if (b->nmmaps == FR_MMAPS && x->bytes <= b->mmaps[FR_MMAPS - 1].bytes)
		return;
	if (b->nmmaps < FR_MMAPS)
		b->nmmaps++;
	for (i = b->nmmaps - 1; i > 0 && b->mmaps[i - 1].bytes < x->bytes; i--)
		b->mmaps[i] = b->mmaps[i - 1];
	b->mmaps[i] = *x;
}

/* The free bytes of each cell (holes below the heap's top pin, top free
 * above it) and the largest hole over each. */
static void
finish_maps(struct builder *b, const struct rp_result *r)
{
	if (!b->laid_out)
		lay_out(b, r);
	for (size_t i = 0; i < b->nmaps; i++) {
		struct fr_map *m = &b->maps[i];
		for (size_t c = 0; c < m->ncells; c++) {
			struct fr_cell *x = &m->cells[c];
			uint64_t cs = m->start + (uint64_t)c * m->cell_bytes;
			uint64_t ce = cs + m->cell_bytes < m->end ? cs + m->cell_bytes : m->end;
			uint64_t used = x->bytes[FR_LIVE] + x->bytes[FR_CACHED] +
					x->bytes[FR_ALLOCATOR];
			uint64_t free_ = ce - cs > used ? ce - cs - used : 0;
			uint64_t top = ce > m->top_end ? ce - (cs > m->top_end ? cs : m->top_end) : 0;
			x->bytes[FR_TOP] = top < free_ ? top : free_;
			x->bytes[FR_HOLE] = free_ - x->bytes[FR_TOP];
		}
	}
	/* holes are largest first: the first to reach a cell is its largest */
	for (size_t k = 0; k < r->nholes; k++) {
		const struct rp_hole *h = &r->holes[k];
		if (h->heap >= b->nmaps)
			continue;
		struct fr_map *m = &b->maps[h->heap];
		uint64_t lo = h->addr > m->start ? h->addr : m->start;
		uint64_t hi = h->addr + h->bytes < m->end ? h->addr + h->bytes : m->end;
		for (uint64_t a = lo; a < hi; a += m->cell_bytes - (a - m->start) % m->cell_bytes) {
			size_t c = (size_t)((a - m->start) / m->cell_bytes);
			if (m->cells[c].hole < 0)
				m->cells[c].hole = (int32_t)k;
		}
	}
}

/* Keep the first `keep` pins, and the first `keep` holes and those a cell
 * names (renumbered). */
static void
trim(struct builder *b, struct rp_result *r)
{
	size_t keep = b->q->keep;

	if (r->npins > keep)
		r->npins = keep;
	if (r->nholes <= keep)
		return;
	int32_t *to = xmalloc(r->nholes * sizeof(*to));
	bool *named = xcalloc(r->nholes, sizeof(bool));
	for (size_t i = 0; i < b->nmaps; i++)
		for (size_t c = 0; c < b->maps[i].ncells; c++)
			if (b->maps[i].cells[c].hole >= 0)
				named[b->maps[i].cells[c].hole] = true;
	size_t n = 0;
	for (size_t k = 0; k < r->nholes; k++) {
		if (k < keep || named[k]) {
			to[k] = (int32_t)n;
			r->holes[n++] = r->holes[k];
		} else {
			free(r->holes[k].sites);
			to[k] = -1;
		}
	}
	r->nholes = n;
	for (size_t i = 0; i < b->nmaps; i++)
		for (size_t c = 0; c < b->maps[i].ncells; c++)
			if (b->maps[i].cells[c].hole >= 0)
				b->maps[i].cells[c].hole = to[b->maps[i].cells[c].hole];
	free(named);
	free(to);
}

/* The visit of an instant is done and r is its result: a new frame. */
static struct fr_frame *
finish(struct builder *b, struct rp_result *r, const char *label, int64_t snapshot_id)
{
	struct fr_process *x = b->out;
	struct ld_db *db = b->db;

	x->frames = xrealloc(x->frames, (x->nframes + 1) * sizeof(*x->frames));
	struct fr_frame *f = &x->frames[x->nframes++];
	memset(f, 0, sizeof(*f));
	snprintf(f->label, sizeof(f->label), "%s", label);
	f->snapshot_id = snapshot_id;
	f->r = r;
	f->npins = r->npins;
	f->nholes = r->nholes;
	/* the sites: holes by former site, pins by weight, cached chunks */
	for (size_t k = 0; k < r->nholes; k++)
		for (size_t s = 0; s < r->holes[k].nsites; s++)
			b->dense[stack_index(db, r->holes[k].sites[s].stack_id)].untrimmable +=
				r->holes[k].sites[s].bytes;
	for (size_t k = 0; k < r->npins; k++)
		if (r->pins[k].state == RP_LIVE || r->pins[k].state == RP_CACHED)
			b->dense[stack_index(db, r->pins[k].stack_id)].pinned += r->pins[k].weight;
	for (size_t i = 0; i <= db->nstack_fns; i++) {
		struct fr_site *d = &b->dense[i];
		if (!d->untrimmable && !d->pinned && !d->cached)
			continue;
		if ((f->nsites & (f->nsites - 1)) == 0)
			f->sites = xrealloc(f->sites, (f->nsites ? 2 * f->nsites : 1) * sizeof(*f->sites));
		d->key = d->stack_id = slot_stack(db, i);
		f->sites[f->nsites++] = *d;
		memset(d, 0, sizeof(*d));
	}
	if (b->q->cells) {
		finish_maps(b, r);
		f->maps = b->maps;
		f->nmaps = b->nmaps;
		f->mmaps = b->mmaps;
		f->nmmaps = b->nmmaps;
	}
	trim(b, r);
	b->maps = NULL;
	b->nmaps = 0;
	b->laid_out = false;
	b->mmaps = NULL;
	b->nmmaps = 0;
	return f;
}

/* ---- a full recording ---- */

struct instant {
	int64_t ns;
	const char *label;
	int rank;          /* at the same ns, the lowest rank names the frame */
};

static int
by_ns(const void *a, const void *b)
{
	const struct instant *x = a, *y = b;

	if (x->ns != y->ns)
		return x->ns < y->ns ? -1 : 1;
	return (x->rank > y->rank) - (x->rank < y->rank);
}

static void
on_frame(void *arg, size_t k, struct rp_result *r)
{
	struct builder *b = arg;

	b->slot[k] = b->out->nframes;
	finish(b, r, b->labels[k], 0);
}

static int
analyze_full(struct builder *b, struct ld_process *p)
{
	const struct fr_request *q = b->q;
	struct fr_process *x = b->out;
	struct rp_visit visit = { on_range, on_mmap, b };
	struct rp_options ro = {
		.at = RP_AT_EXIT,
		.top = q->exit ? SIZE_MAX : 0,
		.timeline_points = q->timeline,
		.visit = q->exit ? &visit : NULL,
	};

	/* the run, and its end */
	struct rp_result *r = rp_analyze(&p->in, &ro);
	x->peak_live = r->peak_live;
	x->peak_live_ns = r->peak_live_ns;
	x->peak_extent = r->peak_extent;
	x->peak_extent_ns = r->peak_extent_ns;
	x->worst_untrimmable = r->worst_untrimmable;
	x->worst_ns = r->worst_ns;
	x->leaked_bytes = r->leaked_bytes;
	x->leaked_chunks = r->leaked_chunks;
	x->timeline = r->timeline;
	x->npoints = r->npoints;
	r->timeline = NULL;
	r->npoints = 0;
	int64_t end_ns = r->at.at_ns;
	/* the end's frame now (the visit's data are the end's), moved last
	 * below */
	if (q->exit)
		finish(b, r, "exit", 0);
	else
		rp_free(r);

	/* the other instants, in one more replay */
	size_t n = 0;
	struct instant *at = xmalloc((q->ntimes + 3) * sizeof(*at));
	if (q->worst)
		at[n++] = (struct instant){ x->worst_ns, "worst", 0 };
	if (q->peak)
		at[n++] = (struct instant){ x->peak_extent_ns, "peak", 1 };
	for (size_t i = 0; i < q->ntimes; i++) {
		int64_t t = p->in.started_ns + q->times[i];
		if (t < end_ns)
			at[n++] = (struct instant){ t, "time", 2 };
	}
	qsort(at, n, sizeof(*at), by_ns);
	/* one frame an instant: worst before peak before time at the same ns */
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (m == 0 || at[m - 1].ns != at[i].ns)
			at[m++] = at[i];
	int64_t *ns = xmalloc((m + 1) * sizeof(*ns));
	const char **labels = xmalloc((m + 1) * sizeof(*labels));
	b->slot = xmalloc((m + 1) * sizeof(size_t));
	for (size_t i = 0; i < m; i++) {
		ns[i] = at[i].ns;
		labels[i] = at[i].label;
	}
	b->labels = labels;
	ro.top = SIZE_MAX;
	ro.visit = &visit;
	ro.timeline_points = 0;
	if (m)
		rp_frames(&p->in, &ro, ns, m, on_frame, b);
	size_t shift = 0;
	if (q->exit) {
		/* by time: the end's frame last */
		struct fr_frame e = x->frames[0];
		memmove(x->frames, x->frames + 1, (x->nframes - 1) * sizeof(*x->frames));
		x->frames[x->nframes - 1] = e;
		x->exit = (int)x->nframes - 1;
		shift = 1;
	}
	for (size_t i = 0; i < m; i++) {
		if (q->worst && ns[i] == x->worst_ns && x->worst < 0)
			x->worst = (int)(b->slot[i] - shift);
		if (q->peak && ns[i] == x->peak_extent_ns && x->peak < 0)
			x->peak = (int)(b->slot[i] - shift);
	}
	free(b->slot);
	free(labels);
	free(ns);
	free(at);
	return 0;
}

/* ---- a snapshot recording ---- */

static bool
wanted_snapshot(const struct fr_request *q, const struct ld_snapshot *s)
{
	if (q->snapshots)
		return true;
	return (q->exit && strcmp(s->reason, "exit") == 0) ||
	       (q->worst && strcmp(s->reason, "worst") == 0) ||
	       (q->peak && strcmp(s->reason, "peak") == 0);
}

static int
analyze_snapshots(struct builder *b, struct ld_process *p, char *err, size_t errcap)
{
	const struct fr_request *q = b->q;
	struct fr_process *x = b->out;
	struct rp_visit visit = { on_range, on_mmap, b };
	struct rp_options ro = { .at = RP_AT_TIME, .top = SIZE_MAX, .visit = &visit };
	const struct ld_summary *s = &p->summary;

	x->peak_live = s->peak_live;
	x->peak_live_ns = s->peak_live_ns;
	x->peak_extent = s->peak_extent;
	x->peak_extent_ns = s->peak_extent_ns;
	x->worst_untrimmable = s->worst_untrimmable;
	x->worst_ns = s->worst_ns;
	for (size_t i = 0; i < p->in.nchunks; i++) {
		x->leaked_bytes += p->in.chunks[i].size;
		x->leaked_chunks++;
	}
	if (q->timeline) {
		long n = ld_timeline(b->db, p->process_id, &x->timeline, err, errcap);
		if (n < 0)
			return -1;
		x->npoints = (size_t)n;
	}
	if (p->nsnaps == 0) {
		snprintf(err, errcap, "no snapshot: its heap at its fork was not captured");
		return -1;
	}
	for (size_t k = 0; k < p->nsnaps; k++) {
		const struct ld_snapshot *sn = &p->snaps[k];
		struct rp_snapshot snap;
		if (!wanted_snapshot(q, sn))
			continue;
		if (ld_snapshot(b->db, sn->id, &snap, err, errcap) != 0)
			return -1;
		struct rp_result *r = rp_snapshot(&snap, &p->in, &ro);
		ld_snapshot_free(&snap);
		if (strcmp(sn->reason, "exit") == 0 && p->in.ended_ns > r->at.at_ns)
			r->at.at_ns = p->in.ended_ns;
		/* the last of each reason (as heapprof report takes it) */
		int *named = strcmp(sn->reason, "exit") == 0	? &x->exit
			     : strcmp(sn->reason, "worst") == 0 ? &x->worst
			     : strcmp(sn->reason, "peak") == 0	? &x->peak
								: NULL;
		if (named)
			*named = (int)x->nframes;
		finish(b, r, sn->reason, sn->id);
	}
	const char *missing = q->exit && x->exit < 0	   ? "exit"
			      : q->worst && x->worst < 0 ? "worst"
			      : q->peak && x->peak < 0	   ? "peak"
							   : NULL;
	if (missing && q->strict) {
		snprintf(err, errcap, "no %s snapshot (the recording was cut off?)", missing);
		return -1;
	}
	return 0;
}

/* ---- both ---- */

static int
by_stack_id(const void *a, const void *b)
{
	const struct fr_site *x = a, *y = b;

	return (x->stack_id > y->stack_id) - (x->stack_id < y->stack_id);
}

/* Chunks live at the end, by stack. */
static void
leaks_by_stack(struct builder *b, struct ld_process *p)
{
	struct fr_process *x = b->out;

	for (size_t i = 0; i < p->in.nchunks; i++) {
		const struct rp_chunk *c = &p->in.chunks[i];
		if (c->free_ns)
			continue;
		struct fr_site *d = &b->dense[stack_index(b->db, c->stack_id)];
		d->leaked += c->size;
		d->leaked_chunks++;
	}
	for (size_t i = 0; i <= b->db->nstack_fns; i++) {
		struct fr_site *d = &b->dense[i];
		if (!d->leaked_chunks)
			continue;
		if ((x->nleaks & (x->nleaks - 1)) == 0)
			x->leaks = xrealloc(x->leaks, (x->nleaks ? 2 * x->nleaks : 1) * sizeof(*x->leaks));
		d->key = d->stack_id = slot_stack(b->db, i);
		x->leaks[x->nleaks++] = *d;
		memset(d, 0, sizeof(*d));
	}
}

int
fr_analyze(struct ld_db *db, struct ld_process *p, const struct fr_request *q,
	   struct fr_process *out, char *err, size_t errcap)
{
	struct builder b = { .db = db, .q = q, .out = out };
	int rc;

	memset(out, 0, sizeof(*out));
	out->p = p;
	out->exit = out->worst = out->peak = -1;
	b.dense = xcalloc(db->nstack_fns + 1, sizeof(*b.dense));
	leaks_by_stack(&b, p);
	if (db->snapshots)
		rc = analyze_snapshots(&b, p, err, errcap);
	else
		rc = analyze_full(&b, p);
	free(b.dense);
	if (rc != 0)
		fr_free(out);
	return rc;
}

void
fr_free(struct fr_process *x)
{
	for (size_t i = 0; i < x->nframes; i++) {
		struct fr_frame *f = &x->frames[i];
		rp_free(f->r);
		free(f->sites);
		for (size_t k = 0; k < f->nmaps; k++)
			free(f->maps[k].cells);
		free(f->maps);
		free(f->mmaps);
	}
	free(x->frames);
	free(x->leaks);
	free(x->timeline);
	memset(x, 0, sizeof(*x));
	x->exit = x->worst = x->peak = -1;
}

/* ---- sites grouped ---- */

static int
by_key(const void *a, const void *b)
{
	const struct fr_site *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return by_stack_id(a, b);
}

static uint64_t
site_total(const struct fr_site *s)
{
	return s->untrimmable + s->pinned + s->cached + s->leaked;
}

size_t
fr_group_sites(struct ld_db *db, const struct fr_process *x, const struct fr_frame *f,
	       bool by_function, struct fr_site **out)
{
	size_t nf = f ? f->nsites : 0, n = nf + x->nleaks, groups = 0;
	struct fr_site *v = xmalloc((n + 1) * sizeof(*v));

	if (nf)
		memcpy(v, f->sites, nf * sizeof(*v));
	memcpy(v + nf, x->leaks, x->nleaks * sizeof(*v));
	for (size_t i = 0; i < n; i++)
		v[i].key = by_function && v[i].stack_id ? ld_group_function(db, v[i].stack_id)
							: v[i].stack_id;
	qsort(v, n, sizeof(*v), by_key);
	/* runs of one key into one: the stack with the most bytes names it */
	uint64_t best = 0;
	for (size_t i = 0; i < n; i++) {
		if (groups && v[groups - 1].key == v[i].key) {
			struct fr_site *g = &v[groups - 1];
			if (site_total(&v[i]) > best) {
				best = site_total(&v[i]);
				g->stack_id = v[i].stack_id;
			}
			g->untrimmable += v[i].untrimmable;
			g->pinned += v[i].pinned;
			g->cached += v[i].cached;
			g->leaked += v[i].leaked;
			g->leaked_chunks += v[i].leaked_chunks;
		} else {
			best = site_total(&v[i]);
			v[groups++] = v[i];
		}
	}
	*out = v;
	return groups;
}
