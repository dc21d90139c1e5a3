/* SPDX-License-Identifier: MIT */
/*
 * report-html.c - the HTML report (see report-html.h): the data of the page
 * as one JSON object, computed here, between the two halves of the page's
 * template (analyzer/report.html, embedded at build time), written to a
 * temporary file renamed into place when complete.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frames.h"
#include "report-html.h"
#include "util.h"

extern const char hp_report_html[]; /* analyzer/report.html */

#define DATA_MARK "/*@HEAPPROF-DATA@*/"
#define STACK_DEPTH 16    /* frames of a stack in the page */
#define TIMELINE 1000     /* points of a timeline */
#define HOLE_SITES 5      /* former sites of a hole */

struct page {
	struct ld_db *db;
	const struct html_options *o;
	/* how much of each process the page holds: less of each when there
	 * are many (a page of a tree of 80 processes stays a few MB) */
	size_t cells;             /* cells of a heap map, at most */
	size_t keep_shown;        /* pins and holes of the instant shown first */
	size_t keep_other;        /* of the other instants */
	size_t extra;             /* instants besides exit, worst, peak */
	uint64_t icicle_part;     /* an icicle node needs 1/icicle_part of a total */
	struct buf b;             /* the processes, as JSON */
	/* each string once: its index in the page's string table */
	char **strs;
	size_t nstrs;
	uint32_t *slots;          /* open addressing: string index + 1 */
	size_t nslots;
	/* each stack once: by ld_stack_slot, its offset + 1 in pool, where a
	 * stack is its frame count, its site (the index of its first frame
	 * that is no allocation wrapper), then (function name, frame text)
	 * per frame, innermost first, as string indexes */
	uint32_t *stack_at;
	uint32_t *pool;
	size_t npool, cappool;
	bool *stack_used;         /* goes into the page's stack table */
};

/* ---- JSON into a buffer ---- */

static void
put(struct page *pg, const char *s)
{
	buf_add(&pg->b, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3)))
putf(struct page *pg, const char *fmt, ...)
{
	char small[256];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		buf_add(&pg->b, small, (size_t)n);
		return;
	}
	char *big = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	buf_add(&pg->b, big, (size_t)n);
	free(big);
}

/* The length of the UTF-8 sequence at s, or 0 if it is not one. */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;

	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* A JSON string that is safe inside a <script> element: no '<', '>' or
 * '&', control characters escaped, invalid UTF-8 replaced. */
static void
json_text(struct buf *b, const char *s)
{
	char esc[8];

	if (!s) {
		buf_add(b, "null", 4);
		return;
	}
	buf_add(b, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n;
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p++;
			buf_add(b, esc, 2);
		} else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&' || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p++);
			buf_add(b, esc, 6);
		} else if (*p < 0x80) {
			buf_add(b, p++, 1);
		} else if ((n = utf8_len(p)) != 0) {
			buf_add(b, p, n);
			p += n;
		} else {
			buf_add(b, "\\ufffd", 6);
			p++;
		}
	}
	buf_add(b, "\"", 1);
}

static void
put_text(struct page *pg, const char *s)
{
	json_text(&pg->b, s);
}

/* ---- strings and stacks, each once ---- */

static uint32_t
hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static uint32_t
intern(struct page *pg, const char *s)
{
	if (pg->nstrs * 2 >= pg->nslots) {
		size_t n = pg->nslots ? pg->nslots * 2 : 1024;
		uint32_t *slots = xcalloc(n, sizeof(*slots));
		for (size_t i = 0; i < pg->nstrs; i++) {
			size_t k = hash(pg->strs[i]) & (n - 1);
			while (slots[k])
				k = (k + 1) & (n - 1);
			slots[k] = (uint32_t)i + 1;
		}
		free(pg->slots);
		pg->slots = slots;
		pg->nslots = n;
		pg->strs = xrealloc(pg->strs, n / 2 * sizeof(*pg->strs));
	}
	size_t k = hash(s) & (pg->nslots - 1);
	while (pg->slots[k]) {
		if (strcmp(pg->strs[pg->slots[k] - 1], s) == 0)
			return pg->slots[k] - 1;
		k = (k + 1) & (pg->nslots - 1);
	}
	pg->strs[pg->nstrs] = xstrdup(s);
	pg->slots[k] = (uint32_t)++pg->nstrs;
	return (uint32_t)pg->nstrs - 1;
}

/* The stack's entry in the pool: [n, site, name0, text0, name1, text1,
 * ...]. */
static const uint32_t *
stack_of(struct page *pg, int64_t stack_id)
{
	static const uint32_t none[2] = { 0, 0 };
	struct ld_frame f[STACK_DEPTH];
	char text[512];
	size_t slot = stack_id > 0 ? ld_stack_slot(pg->db, stack_id) : 0;

	if (!slot)
		return none;
	if (!pg->stack_at[slot]) {
		size_t n = ld_stack(pg->db, stack_id, f, STACK_DEPTH);
		size_t site = ld_site_index(pg->db, stack_id);
		if (pg->npool + 2 + 2 * n > pg->cappool) {
			pg->cappool = (pg->npool + 2 + 2 * n) * 2;
			pg->pool = xrealloc(pg->pool, pg->cappool * sizeof(*pg->pool));
		}
		pg->stack_at[slot] = (uint32_t)pg->npool + 1;
		pg->pool[pg->npool++] = (uint32_t)n;
		pg->pool[pg->npool++] = (uint32_t)(site < n ? site : 0);
		for (size_t i = 0; i < n; i++) {
			ld_frame_text(text, sizeof(text), &f[i]);
			pg->pool[pg->npool++] = f[i].function ? intern(pg, f[i].function)
							      : intern(pg, text);
			pg->pool[pg->npool++] = intern(pg, text);
		}
	}
	return &pg->pool[pg->stack_at[slot] - 1];
}

/* A stack named in the page: its id, and it goes into the stack table. */
/* Register a stack for the page's stack table; returns the id to name it
 * by (0: none). */
static int64_t
use_stack(struct page *pg, int64_t stack_id)
{
	size_t slot = stack_id > 0 ? ld_stack_slot(pg->db, stack_id) : 0;

	if (!slot)
		return 0;
	stack_of(pg, stack_id);
	pg->stack_used[slot] = true;
	return stack_id;
}

static void
put_stack(struct page *pg, int64_t stack_id)
{
	putf(pg, "%lld", (long long)use_stack(pg, stack_id));
}

/* The allocating function of a site, as a string index; -1 if none. */
static long
site_function(struct page *pg, int64_t stack_id)
{
	const uint32_t *s = stack_of(pg, stack_id);

	return s[0] ? (long)s[2 + 2 * s[1]] : -1;
}

/* ---- the icicle: bytes by stack, outermost frame at the top ---- */

enum { M_UNTRIMMABLE, M_PINNED, M_RETAINED, M_LEAKED, M_N };

struct inode {
	uint32_t name;
	int32_t child, next;
	uint64_t v[M_N];
};

struct icicle {
	struct inode *n;
	size_t count, cap;
};

static int32_t
inode_new(struct icicle *ic, uint32_t name)
{
	if (ic->count == ic->cap) {
		ic->cap = ic->cap ? ic->cap * 2 : 256;
		ic->n = xrealloc(ic->n, ic->cap * sizeof(*ic->n));
	}
	ic->n[ic->count] = (struct inode){ .name = name, .child = -1, .next = -1 };
	return (int32_t)ic->count++;
}

static void
icicle_add(struct page *pg, struct icicle *ic, int64_t stack_id, const uint64_t *v)
{
	const uint32_t *s = stack_of(pg, stack_id);
	int32_t at = 0;

	for (int k = 0; k < M_N; k++)
		ic->n[0].v[k] += v[k];
	for (size_t i = s[0]; i-- > 0;) {
		uint32_t name = s[2 + 2 * i];
		int32_t c = ic->n[at].child;
		while (c >= 0 && ic->n[c].name != name)
			c = ic->n[c].next;
		if (c < 0) {
			c = inode_new(ic, name);
			ic->n[c].next = ic->n[at].child;
			ic->n[at].child = c;
		}
		for (int k = 0; k < M_N; k++)
			ic->n[c].v[k] += v[k];
		at = c;
	}
}

/* [name, untrimmable, pinned, retained, leaked, [children]]: nodes under
 * 0.5% of every measure's total are left out (the page says so). */
static void
icicle_put(struct page *pg, const struct icicle *ic, int32_t at, bool first)
{
	const struct inode *x = &ic->n[at];

	putf(pg, "%s[%u,%llu,%llu,%llu,%llu", first ? "" : ",", x->name,
	     (unsigned long long)x->v[0], (unsigned long long)x->v[1],
	     (unsigned long long)x->v[2], (unsigned long long)x->v[3]);
	bool open = false;
	for (int32_t c = x->child; c >= 0; c = ic->n[c].next) {
		bool keep = false;
		for (int k = 0; k < M_N; k++)
			keep |= ic->n[0].v[k] && ic->n[c].v[k] * pg->icicle_part >= ic->n[0].v[k];
		if (!keep)
			continue;
		put(pg, open ? "" : ",[");
		icicle_put(pg, ic, c, !open);
		open = true;
	}
	put(pg, open ? "]]" : "]");
}

/* ---- sites ---- */

static const struct fr_site *sort_sites;
static int sort_measure;

static uint64_t
measure(const struct fr_site *s, int m)
{
	return m == M_UNTRIMMABLE ? s->untrimmable
	       : m == M_PINNED	  ? s->pinned
	       : m == M_RETAINED  ? fr_retained(s)
				  : s->leaked;
}

static int
by_measure(const void *a, const void *b)
{
	uint64_t x = measure(&sort_sites[*(const size_t *)a], sort_measure);
	uint64_t y = measure(&sort_sites[*(const size_t *)b], sort_measure);

	if (x != y)
		return x > y ? -1 : 1;
	return (*(const size_t *)a > *(const size_t *)b) - (*(const size_t *)a < *(const size_t *)b);
}

/* The sites that are among the top N of any measure: [stack, untrimmable,
 * pinned, retained, leaked, leaked chunks, function]. */
static void
put_sites(struct page *pg, const struct fr_site *v, size_t n)
{
	size_t *idx = xmalloc((n + 1) * sizeof(*idx));
	bool *pick = xcalloc(n + 1, sizeof(bool));
	size_t top = (size_t)pg->o->top;

	for (int m = 0; m < M_N; m++) {
		for (size_t i = 0; i < n; i++)
			idx[i] = i;
		sort_sites = v;
		sort_measure = m;
		qsort(idx, n, sizeof(*idx), by_measure);
		for (size_t i = 0; i < n && i < top; i++)
			if (measure(&v[idx[i]], m))
				pick[idx[i]] = true;
	}
	bool first = true;
	for (size_t i = 0; i < n; i++) {
		if (!pick[i])
			continue;
		putf(pg, "%s[", first ? "" : ",");
		put_stack(pg, v[i].stack_id);
		putf(pg, ",%llu,%llu,%llu,%llu,%llu,%ld]", (unsigned long long)v[i].untrimmable,
		     (unsigned long long)v[i].pinned, (unsigned long long)fr_retained(&v[i]),
		     (unsigned long long)v[i].leaked, (unsigned long long)v[i].leaked_chunks,
		     site_function(pg, v[i].stack_id));
		first = false;
	}
	free(pick);
	free(idx);
}

/* ---- a frame ---- */

static void
put_cells(struct page *pg, const struct fr_frame *f, const struct fr_map *m, const int32_t *to,
	  size_t *nchunks, struct buf *chunks)
{
	const struct fr_cell *prev = NULL;
	size_t run = 0;
	long big = -1, prev_big = -1;
	bool first = true;
	uint64_t last_big = 0;
	char tmp[160];

	for (size_t c = 0; c <= m->ncells; c++) {
		const struct fr_cell *x = c < m->ncells ? &m->cells[c] : NULL;
		if (x && x->big.bytes) {
			if (x->big.addr != last_big || *nchunks == 0) {
				int n = snprintf(tmp, sizeof(tmp), "%s[%llu,%llu,%u,", *nchunks ? "," : "",
						 (unsigned long long)(x->big.addr - m->start),
						 (unsigned long long)x->big.bytes, x->big.state);
				buf_add(chunks, tmp, (size_t)n);
				int64_t sid = use_stack(pg, x->big.stack_id);
				n = snprintf(tmp, sizeof(tmp), "%lld,%lld]", (long long)sid,
					     (long long)(x->big.alloc_ns ? f->r->at.at_ns - x->big.alloc_ns
									 : -1));
				buf_add(chunks, tmp, (size_t)n);
				last_big = x->big.addr;
				(*nchunks)++;
			}
			big = (long)*nchunks - 1;
		} else {
			big = -1;
		}
		if (prev && x && big == prev_big && memcmp(x->bytes, prev->bytes, sizeof(x->bytes)) == 0 &&
		    x->hole == prev->hole) {
			run++;
			continue;
		}
		if (prev) {
			putf(pg, "%s[%zu,%llu,%llu,%llu,%llu,%llu,%ld,%d]", first ? "" : ",", run,
			     (unsigned long long)prev->bytes[FR_LIVE],
			     (unsigned long long)prev->bytes[FR_CACHED],
			     (unsigned long long)prev->bytes[FR_ALLOCATOR],
			     (unsigned long long)prev->bytes[FR_HOLE],
			     (unsigned long long)prev->bytes[FR_TOP], prev_big,
			     prev->hole >= 0 ? to[prev->hole] : -1);
			first = false;
		}
		prev = x;
		prev_big = big;
		run = 1;
	}
}

static void
put_frame(struct page *pg, const struct fr_process *x, const struct fr_frame *f, bool shown,
	  bool first)
{
	const struct rp_result *r = f->r;
	const struct rp_figures *g = &r->at;
	int64_t t0 = x->p->in.started_ns;
	size_t keep = shown ? pg->keep_shown : pg->keep_other;

	putf(pg, "%s\n{\"label\":", first ? "" : ",");
	put_text(pg, f->label);
	putf(pg, ",\"snapshot\":%lld,\"at_ns\":%lld,", (long long)f->snapshot_id,
	     (long long)(g->at_ns - t0));
	putf(pg, "\"fig\":{\"extent_bytes\":%llu,\"resident_bytes\":%llu,\"live_bytes\":%llu,"
		 "\"cached_bytes\":%llu,\"fastbin_bytes\":%llu,\"allocator_bytes\":%llu,"
		 "\"top_free_bytes\":%llu,\"untrimmable_bytes\":%llu,"
		 "\"untrimmable_resident_bytes\":%llu,\"trim_reclaimable_bytes\":%llu,"
		 "\"trim_top_bytes\":%llu,\"mmap_bytes\":%llu,\"retained_bytes\":%llu,"
		 "\"live_chunks\":%llu,\"cached_chunks\":%llu,\"mmap_chunks\":%llu,"
		 "\"pymalloc_bytes\":%llu,\"pymalloc_arenas\":%llu,\"program_mmap_bytes\":%llu,"
		 "\"program_mmaps\":%llu},",
	     (unsigned long long)g->extent, (unsigned long long)g->resident,
	     (unsigned long long)g->live, (unsigned long long)g->cached,
	     (unsigned long long)g->fastbin, (unsigned long long)g->allocator,
	     (unsigned long long)g->top_free, (unsigned long long)g->untrimmable,
	     (unsigned long long)g->untrimmable_resident, (unsigned long long)g->trim_reclaimable,
	     (unsigned long long)g->trim_top, (unsigned long long)g->mmap,
	     (unsigned long long)g->retained, (unsigned long long)g->live_chunks,
	     (unsigned long long)g->cached_chunks, (unsigned long long)g->mmap_chunks,
	     (unsigned long long)g->pymalloc, (unsigned long long)g->pymalloc_arenas,
	     (unsigned long long)g->program_mmap, (unsigned long long)g->program_mmaps);
	char advice[2048];
	put(pg, "\"advice\":");
	put_text(pg, pg->o->advice(pg->db, r, advice, sizeof(advice)));
	put(pg, ",");
	putf(pg, "\"npins\":%zu,\"nholes\":%zu,\"pins\":[", f->npins, f->nholes);
	for (size_t i = 0; i < r->npins && i < keep; i++) {
		const struct rp_pin *p = &r->pins[i];
		putf(pg, "%s[%llu,%llu,%u,%llu,%lld,", i ? "," : "", (unsigned long long)p->addr,
		     (unsigned long long)p->bytes, p->state, (unsigned long long)p->weight,
		     (long long)(p->alloc_ns ? g->at_ns - p->alloc_ns : -1));
		put_stack(pg, p->state == RP_LIVE || p->state == RP_CACHED ? p->stack_id : 0);
		putf(pg, ",%u]", p->heap);
	}
	/* the holes: the largest `keep`, and those a cell of the map names */
	int32_t *to = xmalloc((r->nholes + 1) * sizeof(*to));
	for (size_t k = 0; k < r->nholes; k++)
		to[k] = k < keep ? 0 : -1;
	for (size_t i = 0; i < f->nmaps; i++)
		for (size_t c = 0; c < f->maps[i].ncells; c++)
			if (f->maps[i].cells[c].hole >= 0)
				to[f->maps[i].cells[c].hole] = 0;
	put(pg, "],\"holes\":[");
	int32_t n = 0;
	for (size_t k = 0; k < r->nholes; k++) {
		if (to[k] < 0)
			continue;
		const struct rp_hole *h = &r->holes[k];
		to[k] = n;
		putf(pg, "%s[%llu,%llu,%llu,%u,%zu,[", n ? "," : "", (unsigned long long)h->addr,
		     (unsigned long long)h->bytes, (unsigned long long)h->trim_reclaimable, h->heap,
		     h->nsites);
		for (size_t s = 0; s < h->nsites && s < HOLE_SITES; s++) {
			put(pg, s ? ",[" : "[");
			put_stack(pg, h->sites[s].stack_id);
			putf(pg, ",%llu,%llu]", (unsigned long long)h->sites[s].bytes,
			     (unsigned long long)h->sites[s].chunks);
		}
		put(pg, "]]");
		n++;
	}
	put(pg, "],\"heaps\":[");
	struct buf chunks = { 0 };
	size_t nchunks = 0;
	for (size_t i = 0; i < f->nmaps; i++) {
		const struct fr_map *m = &f->maps[i];
		const struct rp_heap *h = &r->heaps[m->heap];
		uint64_t span = m->top_end - m->start;
		putf(pg, "%s{\"kind\":\"%s\",\"start\":%llu,\"end\":%llu,\"top_end\":%llu,"
			 "\"untrimmable_bytes\":%llu,\"top_free_bytes\":%llu,\"cell\":%llu,"
			 "\"ncells\":%zu,\"cells\":[",
		     i ? "," : "", h->kind == HP_BACKING_BRK ? "brk" : "arena", (unsigned long long)m->start,
		     (unsigned long long)m->end, (unsigned long long)m->top_end,
		     (unsigned long long)(span > h->occupied ? span - h->occupied : 0),
		     (unsigned long long)(m->end - m->top_end), (unsigned long long)m->cell_bytes,
		     m->ncells);
		put_cells(pg, f, m, to, &nchunks, &chunks);
		put(pg, "]}");
	}
	free(to);
	put(pg, "],\"chunks\":[");
	buf_add(&pg->b, chunks.p, chunks.len);
	buf_free(&chunks);
	put(pg, "],\"mmaps\":[");
	for (size_t i = 0; i < f->nmmaps; i++) {
		const struct rp_range *c = &f->mmaps[i];
		putf(pg, "%s[%llu,%llu,", i ? "," : "", (unsigned long long)c->addr,
		     (unsigned long long)c->bytes);
		put_stack(pg, c->stack_id);
		putf(pg, ",%lld]", (long long)(c->alloc_ns ? g->at_ns - c->alloc_ns : -1));
	}
	/* sites by function and by stack, and the icicle */
	struct fr_site *v;
	size_t nv = fr_group_sites(pg->db, x, f, true, &v);
	put(pg, "],\"sites_fn\":[");
	put_sites(pg, v, nv);
	free(v);
	nv = fr_group_sites(pg->db, x, f, false, &v);
	put(pg, "],\"sites_stack\":[");
	put_sites(pg, v, nv);
	struct icicle ic = { 0 };
	inode_new(&ic, intern(pg, "all"));
	for (size_t i = 0; i < nv; i++) {
		uint64_t m[M_N] = { v[i].untrimmable, v[i].pinned, fr_retained(&v[i]), v[i].leaked };
		icicle_add(pg, &ic, v[i].stack_id, m);
	}
	free(v);
	put(pg, "],\"icicle\":");
	icicle_put(pg, &ic, 0, true);
	free(ic.n);
	put(pg, "}");
}

/* ---- a process ---- */

static void
put_timeline(struct page *pg, const struct fr_process *x)
{
	int64_t t0 = x->p->in.started_ns;
	size_t n = x->npoints, per = (n + TIMELINE - 1) / TIMELINE;

	put(pg, "\"timeline\":[");
	/* buckets of `per` points: each series' largest value in it */
	for (size_t i = 0, k = 0; i < n; i += per, k++) {
		struct rp_point m = x->timeline[i];
		for (size_t j = i + 1; j < n && j < i + per; j++) {
			const struct rp_point *q = &x->timeline[j];
			m.extent = q->extent > m.extent ? q->extent : m.extent;
			m.live = q->live > m.live ? q->live : m.live;
			m.cached = q->cached > m.cached ? q->cached : m.cached;
			m.untrimmable = q->untrimmable > m.untrimmable ? q->untrimmable : m.untrimmable;
		}
		putf(pg, "%s[%lld,%llu,%llu,%llu,%llu]", k ? "," : "", (long long)(m.ns - t0),
		     (unsigned long long)m.extent, (unsigned long long)m.live,
		     (unsigned long long)m.cached, (unsigned long long)m.untrimmable);
	}
	put(pg, "],");
}

static int
nearest_frame(const struct fr_process *x, int64_t ns)
{
	int best = -1;
	uint64_t bd = 0;

	for (size_t i = 0; i < x->nframes; i++) {
		int64_t t = x->frames[i].r->at.at_ns;
		uint64_t d = t > ns ? (uint64_t)(t - ns) : (uint64_t)(ns - t);
		if (best < 0 || d < bd) {
			best = (int)i;
			bd = d;
		}
	}
	return best;
}

static void
put_process(struct page *pg, struct ld_process *p, size_t nwanted, bool first)
{
	const struct html_options *o = pg->o;
	struct fr_process x;
	char err[512], end[64];
	int64_t t0 = p->in.started_ns;
	int64_t dur = p->in.ended_ns > t0 ? p->in.ended_ns - t0 : 0;
	int64_t times[12];
	size_t ntimes = 0, extra = pg->extra;

	/* full recordings: evenly spaced instants besides the named ones,
	 * and the one asked for */
	int64_t at_ns = 0;
	bool at_time = o->at == RP_AT_TIME && o->instant(o->instant_arg, p, &at_ns);
	for (size_t i = 1; dur && i <= extra; i++)
		times[ntimes++] = (int64_t)((double)dur * (double)i / (double)(extra + 1));
	if (at_time)
		times[ntimes++] = at_ns;
	struct fr_request q = {
		.exit = true,
		.worst = true,
		.peak = true,
		.times = times,
		.ntimes = ntimes,
		.snapshots = nwanted <= 4,
		.cells = pg->cells,
		.keep = pg->keep_shown,
		.timeline = TIMELINE,
	};
	int rc = fr_analyze(pg->db, p, &q, &x, err, sizeof(err));
	if (rc != 0)
		hp_error(o->file, "pid %lld: %s", (long long)p->pid, err);

	if (p->end_reason && strcmp(p->end_reason, "signal") == 0 && p->exit_signal >= 0)
		snprintf(end, sizeof(end), "killed by signal %lld", (long long)p->exit_signal);
	else if (p->end_reason && strcmp(p->end_reason, "exit") == 0 && p->exit_status >= 0)
		snprintf(end, sizeof(end), "exit status %lld", (long long)p->exit_status);
	else
		snprintf(end, sizeof(end), "%s", p->end_reason ? p->end_reason : "unknown");
	putf(pg, "%s\n{\"pid\":%lld,\"process_id\":%lld,\"ppid\":%lld,\"exe\":", first ? "" : ",",
	     (long long)p->pid, (long long)p->process_id, (long long)p->ppid);
	put_text(pg, p->exe);
	put(pg, ",\"cmd\":");
	put_text(pg, ld_command_line(pg->db, p->process_id));
	put(pg, ",\"end\":");
	put_text(pg, end);
	char settings[1024];
	put(pg, ",\"settings\":");
	put_text(pg, ld_settings_text(p, settings, sizeof(settings)));
	putf(pg, ",\"duration_ns\":%lld,\"dropped\":%lld,\"truncated\":%lld,", (long long)dur,
	     (long long)p->dropped, (long long)p->truncated);
	if (rc != 0) {
		put(pg, "\"note\":");
		put_text(pg, err);
		put(pg, ",\"frames\":[],\"timeline\":[]}");
		return;
	}
	putf(pg, "\"peak_live\":[%llu,%lld],\"peak_extent\":[%llu,%lld],\"worst\":[%llu,%lld],"
		 "\"leaked\":[%llu,%llu],",
	     (unsigned long long)x.peak_live, (long long)(x.peak_live_ns - t0),
	     (unsigned long long)x.peak_extent, (long long)(x.peak_extent_ns - t0),
	     (unsigned long long)x.worst_untrimmable, (long long)(x.worst_ns - t0),
	     (unsigned long long)x.leaked_bytes, (unsigned long long)x.leaked_chunks);
	put_timeline(pg, &x);
	/* the leaks by function, largest first */
	struct fr_site *v;
	size_t nv = fr_group_sites(pg->db, &x, NULL, true, &v);
	put(pg, "\"leaks\":[");
	sort_sites = v;
	sort_measure = M_LEAKED;
	size_t *idx = xmalloc((nv + 1) * sizeof(*idx));
	for (size_t i = 0; i < nv; i++)
		idx[i] = i;
	qsort(idx, nv, sizeof(*idx), by_measure);
	for (size_t i = 0; i < nv && i < (size_t)o->top && v[idx[i]].leaked_chunks; i++) {
		put(pg, i ? ",[" : "[");
		put_stack(pg, v[idx[i]].stack_id);
		putf(pg, ",%llu,%llu,%ld]", (unsigned long long)v[idx[i]].leaked,
		     (unsigned long long)v[idx[i]].leaked_chunks,
		     site_function(pg, v[idx[i]].stack_id));
	}
	free(idx);
	free(v);
	int shown = o->at == RP_AT_WORST  ? x.worst
		    : o->at == RP_AT_PEAK ? x.peak
		    : at_time		  ? nearest_frame(&x, t0 + at_ns)
					  : x.exit;
	if (shown < 0)
		shown = x.exit >= 0 ? x.exit : (int)x.nframes - 1;
	putf(pg, "],\"shown\":%d,\"exit_frame\":%d,\"worst_frame\":%d,\"peak_frame\":%d,\"frames\":[",
	     shown, x.exit, x.worst, x.peak);
	for (size_t i = 0; i < x.nframes; i++)
		put_frame(pg, &x, &x.frames[i], (int)i == shown, i == 0);
	put(pg, "]}");
	fr_free(&x);
}

/* ---- the page ---- */

static void
write_out(FILE *f, const void *p, size_t n)
{
	if (n)
		fwrite(p, 1, n, f);
}

/* The page into f. */
static void
write_page(struct page *pg, FILE *f)
{
	struct buf head = { 0 };
	const char *mark = strstr(hp_report_html, DATA_MARK);

	write_out(f, hp_report_html, (size_t)(mark - hp_report_html));
	buf_add(&head, "{\"file\":", 8);
	json_text(&head, pg->o->file);
	char tmp[256];
	int n = snprintf(tmp, sizeof(tmp),
			 ",\"version\":\"%s\",\"recording\":\"%s\",\"complete\":%s,\"top\":%ld,"
			 "\"cells\":%d,\"icicle_min_pct\":%g,\"strings\":[",
			 HP_VERSION, pg->db->snapshots ? "snapshots" : "full",
			 pg->db->complete ? "true" : "false", pg->o->top, (int)pg->cells,
			 100.0 / (double)pg->icicle_part);
	buf_add(&head, tmp, (size_t)n);
	for (size_t i = 0; i < pg->nstrs; i++) {
		if (i)
			buf_add(&head, ",", 1);
		json_text(&head, pg->strs[i]);
	}
	buf_add(&head, "],\"stacks\":{", 12);
	bool first = true;
	for (size_t slot = 1; slot <= pg->db->nstack_fns; slot++) {
		if (!pg->stack_used[slot])
			continue;
		const uint32_t *s = &pg->pool[pg->stack_at[slot] - 1];
		/* [site, frame texts...] */
		n = snprintf(tmp, sizeof(tmp), "%s\"%lld\":[%u", first ? "" : ",",
			     (long long)pg->db->stack_fns[slot - 1].stack_id, s[1]);
		buf_add(&head, tmp, (size_t)n);
		for (uint32_t i = 0; i < s[0]; i++) {
			n = snprintf(tmp, sizeof(tmp), ",%u", s[3 + 2 * i]);
			buf_add(&head, tmp, (size_t)n);
		}
		buf_add(&head, "]", 1);
		first = false;
	}
	buf_add(&head, "},\"processes\":[", 15);
	write_out(f, head.p, head.len);
	buf_free(&head);
	write_out(f, pg->b.p, pg->b.len);
	fputs("\n]}", f);
	fputs(mark + strlen(DATA_MARK), f);
}

int
html_report(struct ld_db *db, const struct html_options *o)
{
	struct page pg = { .db = db, .o = o };
	size_t nwanted = 0;
	bool first = true;
	int rc = 0;

	pg.stack_at = xcalloc(db->nstack_fns + 1, sizeof(*pg.stack_at));
	pg.stack_used = xcalloc(db->nstack_fns + 1, sizeof(bool));
	for (size_t i = 0; i < db->nprocs; i++)
		nwanted += db->procs[i].wanted;
	pg.cells = nwanted <= 4 ? HTML_CELLS : nwanted <= 16 ? HTML_CELLS / 4 : HTML_CELLS / 16;
	pg.keep_shown = nwanted <= 4 ? 2000 : nwanted <= 16 ? 500 : 100;
	pg.keep_other = nwanted <= 4 ? 200 : nwanted <= 16 ? 50 : 20;
	pg.extra = nwanted <= 4 ? 9 : nwanted <= 16 ? 3 : 0;
	pg.icicle_part = nwanted <= 4 ? 200 : 50;
	for (size_t i = 0; i < db->nprocs; i++) {
		if (!db->procs[i].wanted)
			continue;
		put_process(&pg, &db->procs[i], nwanted, first);
		first = false;
	}

	if (!o->output) {
		write_page(&pg, stdout); /* main.c checks that stdout was written */
	} else {
		/* a temporary file beside it, renamed over it when whole */
		size_t len = strlen(o->output);
		char *tmp = xmalloc(len + 16);
		snprintf(tmp, len + 16, "%s.XXXXXX", o->output);
		int fd = mkstemp(tmp);
		FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (!f) {
			hp_error(o->output, "cannot write: %s", strerror(errno));
			if (fd >= 0) {
				close(fd);
				unlink(tmp);
			}
			rc = 2;
		} else {
			mode_t mask = umask(0);
			umask(mask);
			fchmod(fd, 0666 & ~mask);
			write_page(&pg, f);
			int bad = ferror(f);
			if (fclose(f) != 0 || bad) {
				hp_error(o->output, "cannot write: %s", strerror(errno ? errno : EIO));
				unlink(tmp);
				rc = 2;
			} else if (rename(tmp, o->output) != 0) {
				hp_error(o->output, "cannot write: %s", strerror(errno));
				unlink(tmp);
				rc = 2;
			}
		}
		free(tmp);
	}
	buf_free(&pg.b);
	for (size_t i = 0; i < pg.nstrs; i++)
		free(pg.strs[i]);
	free(pg.strs);
	free(pg.slots);
	free(pg.pool);
	free(pg.stack_at);
	free(pg.stack_used);
	return rc;
}
