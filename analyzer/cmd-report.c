/* SPDX-License-Identifier: MIT */
/*
 * cmd-report.c - `heapprof report` (the figures, pins and holes of each
 * process at an instant, as text or JSON) and `heapprof check` (the same
 * figures against limits: the CI gate).
 *
 * Exit status: report 0; check 0 if every limit holds, 1 if one does not;
 * both 2 on bad usage or bad input.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "gate.h"
#include "load.h"
#include "replay.h"
#include "report-html.h"
#include "util.h"

#define MAX_FRAMES 64
#define U(x) ((unsigned long long)(x))

struct opts {
	const char *file;
	int64_t pid;
	enum rp_at at;
	int64_t at_ns;
	const char *at_name;
	bool json;
	bool html;          /* --format html */
	const char *output; /* -o FILE (html) */
	bool by_stack;
	bool list;          /* --list-snapshots */
	long top;
	/* check */
	uint64_t max[4];
	bool has_max[4];
	const char *baseline;   /* --baseline BASE */
	struct gate_increase inc[GATE_N];
	const char *junit;      /* --junit FILE */
};

enum { L_UNTRIMMABLE, L_RETAINED, L_LEAKED, L_PEAK };
static const char *const limit_name[] = { "untrimmable", "retained", "leaked", "peak" };
static const char *const limit_flag[] = { "--max-untrimmable", "--max-retained", "--max-leaked",
					  "--max-peak" };

static void
report_usage(FILE *f)
{
	fputs("usage: heapprof report FILE [--pid PID] [--at exit|worst|peak|SECONDS]\n"
	      "                       [--format text|json|html] [-o FILE] [--top N]\n"
	      "                       [--by function|stack]\n"
	      "       heapprof report FILE --list-snapshots [--pid PID] [--format text|json]\n"
	      "\n"
	      "  --at exit       the end of each process (the default)\n"
	      "  --at worst      the instant with the most untrimmable bytes\n"
	      "  --at peak       the instant of the largest heap extent\n"
	      "  --at SECONDS    that long after each process started (a snapshot recording:\n"
	      "                  the nearest snapshot, and the report says which)\n"
	      "  --list-snapshots  the snapshots of a snapshot recording\n"
	      "  --format html   one self-contained page: the timeline, the heap map, the\n"
	      "                  pins, holes, leaks and sites (--at: the instant shown first)\n"
	      "  -o FILE         write the page to FILE (html only; default stdout)\n",
	      f);
}

static void
check_usage(FILE *f)
{
	fputs("usage: heapprof check FILE [--pid PID] [--at exit|worst] [--max-untrimmable SIZE]\n"
	      "                      [--max-retained SIZE] [--max-leaked SIZE] [--max-peak SIZE]\n"
	      "                      [--baseline BASE --max-increase [FIGURE=]SIZE|PERCENT%]\n"
	      "                      [--junit FILE]\n"
	      "\n"
	      "  --baseline BASE   compare with BASE (the last good run), process by process\n"
	      "                    (matched by program name and arguments)\n"
	      "  --max-increase X  how much each figure (untrimmable, retained, leaked, peak)\n"
	      "                    may grow over BASE: bytes (1M) or a percent of BASE's (10%);\n"
	      "                    FIGURE=X for one figure (repeat the option)\n"
	      "  --junit FILE      write every verdict as JUnit XML to FILE\n",
	      f);
}

/* Parse the options; returns 0, or 2 after saying what is wrong. */
static int
parse(int argc, char **argv, struct opts *o, bool check)
{
	memset(o, 0, sizeof(*o));
	o->at = RP_AT_EXIT;
	o->at_name = "exit";
	o->top = 10;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		long n;
		int k;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			(check ? check_usage : report_usage)(stdout);
			exit(0);
		}
		if (!check && strcmp(a, "--list-snapshots") == 0) {
			o->list = true;
			continue;
		}
		if (a[0] != '-' || strcmp(a, "-") == 0) {
			if (o->file) {
				hp_error(a, "one database at a time");
				return 2;
			}
			o->file = a;
			continue;
		}
		if (!v) {
			hp_error(a, "needs a value");
			return 2;
		}
		i++;
		if (strcmp(a, "--pid") == 0) {
			if (!parse_long(v, 1, 1L << 30, &n)) {
				hp_error(v, "not a pid");
				return 2;
			}
			o->pid = n;
		} else if (strcmp(a, "--at") == 0) {
			o->at_name = v;
			if (strcmp(v, "exit") == 0) {
				o->at = RP_AT_EXIT;
			} else if (strcmp(v, "worst") == 0) {
				o->at = RP_AT_WORST;
			} else if (!check && strcmp(v, "peak") == 0) {
				o->at = RP_AT_PEAK;
			} else if (!check && parse_seconds(v, &o->at_ns)) {
				o->at = RP_AT_TIME;
			} else {
				hp_error(v, check ? "--at takes exit or worst"
						  : "--at takes exit, worst, peak or seconds since start");
				return 2;
			}
		} else if (!check && strcmp(a, "--format") == 0) {
			o->json = strcmp(v, "json") == 0;
			o->html = strcmp(v, "html") == 0;
			if (!o->json && !o->html && strcmp(v, "text") != 0) {
				hp_error(v, "--format takes text, json or html");
				return 2;
			}
		} else if (!check && (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)) {
			o->output = v;
		} else if (check && strcmp(a, "--baseline") == 0) {
			o->baseline = v;
		} else if (check && strcmp(a, "--junit") == 0) {
			o->junit = v;
		} else if (check && strcmp(a, "--max-increase") == 0) {
			if (!gate_parse_increase(v, o->inc)) {
				hp_error(v, "--max-increase takes a size (1M) or a percent (10%%), "
					    "for all figures or one (untrimmable=1M)");
				return 2;
			}
		} else if (!check && strcmp(a, "--top") == 0) {
			if (!parse_long(v, 0, 100000, &o->top)) {
				hp_error(v, "--top takes a number, 0 to 100000");
				return 2;
			}
		} else if (!check && strcmp(a, "--by") == 0) {
			if (strcmp(v, "stack") == 0)
				o->by_stack = true;
			else if (strcmp(v, "function") != 0) {
				hp_error(v, "--by takes function or stack");
				return 2;
			}
		} else {
			for (k = 0; check && k < 4; k++)
				if (strcmp(a, limit_flag[k]) == 0)
					break;
			if (!check || k == 4) {
				hp_error(a, "unknown option (heapprof %s --help)",
					 check ? "check" : "report");
				return 2;
			}
			if (!parse_size(v, &o->max[k])) {
				hp_error(v, "not a size (bytes, or with K, M, G, KiB, MiB, GiB)");
				return 2;
			}
			o->has_max[k] = true;
		}
	}
	if (!o->file) {
		hp_error(check ? "check" : "report", "which database? (heapprof %s FILE ...)",
			 check ? "check" : "report");
		return 2;
	}
	if (o->output && !o->html) {
		hp_error(o->output, "-o is for --format html (text and JSON go to stdout)");
		return 2;
	}
	bool inc = false;
	for (int k = 0; k < GATE_N; k++)
		inc |= o->inc[k].set;
	if (check && o->baseline && !inc) {
		hp_error(o->baseline, "--baseline needs --max-increase (how much each figure may grow)");
		return 2;
	}
	if (check && inc && !o->baseline) {
		hp_error("--max-increase", "over what? (--baseline BASE)");
		return 2;
	}
	if (check && !o->has_max[0] && !o->has_max[1] && !o->has_max[2] && !o->has_max[3] &&
	    !o->baseline) {
		hp_error(o->file, "no limit to check (--max-untrimmable, --max-retained, ..., "
				  "--baseline)");
		return 2;
	}
	return 0;
}

/* The snapshot of p for o->at: by reason, or the nearest in time. */
static const struct ld_snapshot *
pick_snapshot(const struct ld_process *p, const struct opts *o)
{
	const struct ld_snapshot *best = NULL;
	const char *reason = o->at == RP_AT_WORST ? "worst" : o->at == RP_AT_PEAK ? "peak" : "exit";

	for (size_t k = 0; k < p->nsnaps; k++) {
		const struct ld_snapshot *x = &p->snaps[k];
		if (o->at != RP_AT_TIME) {
			if (strcmp(x->reason, reason) == 0)
				best = x;
			continue;
		}
		int64_t want = p->in.started_ns + o->at_ns;
		uint64_t d = x->ns > want ? (uint64_t)(x->ns - want) : (uint64_t)(want - x->ns);
		if (!best || d < (best->ns > want ? (uint64_t)(best->ns - want)
						  : (uint64_t)(want - best->ns)))
			best = x;
	}
	return best;
}

/* A snapshot recording: the figures of the chosen snapshot, with the run's
 * peaks and worst from heap_summary and the leaks from the exit snapshot.
 * NULL (and why in `note`) if there is none to use. */
static struct rp_result *
analyze_snapshot(struct ld_db *db, struct ld_process *p, const struct opts *o,
		 const struct rp_options *ro, char *note, size_t cap)
{
	const struct ld_snapshot *x = pick_snapshot(p, o);
	struct rp_snapshot snap;
	char err[512], a[32], b[32];

	if (!x) {
		if (p->nsnaps)
			snprintf(note, cap, "no %s snapshot (the recording was cut off?)", o->at_name);
		else
			snprintf(note, cap, "no snapshot: its heap at its fork was not captured");
		return NULL;
	}
	if (ld_snapshot(db, x->id, &snap, err, sizeof(err)) != 0) {
		snprintf(note, cap, "%s", err);
		return NULL;
	}
	struct rp_result *r = rp_snapshot(&snap, ro);
	ld_snapshot_free(&snap);
	if (strcmp(x->reason, "exit") == 0 && p->in.ended_ns > r->at.at_ns)
		r->at.at_ns = p->in.ended_ns;
	r->what = o->at;
	const struct ld_summary *m = &p->summary;
	r->peak_live = m->peak_live;
	r->peak_live_ns = m->peak_live_ns;
	r->peak_extent = m->peak_extent;
	r->peak_extent_ns = m->peak_extent_ns;
	r->worst_untrimmable = m->worst_untrimmable;
	r->worst_ns = m->worst_ns;
	for (size_t i = 0; i < p->in.nchunks; i++) {
		r->leaked_bytes += p->in.chunks[i].size;
		r->leaked_chunks++;
	}
	if (o->at == RP_AT_TIME)
		snprintf(note, cap, "the nearest snapshot (%s, number %lld)", x->reason,
			 (long long)x->id);
	else if (o->at == RP_AT_WORST && m->present && m->worst_ns != x->ns)
		snprintf(note, cap,
			 "the worst snapshot kept; the worst instant, at %.3f s, had %s more "
			 "untrimmable, %s (a snapshot recording keeps the worst within 1/16 once "
			 "it has settled)",
			 (double)(m->worst_ns - p->in.started_ns) / 1e9,
			 fmt_size(a, sizeof(a), m->worst_untrimmable - x->untrimmable),
			 fmt_size(b, sizeof(b), m->worst_untrimmable));
	else if (o->at == RP_AT_PEAK && m->present && m->peak_extent_ns != x->ns)
		snprintf(note, cap,
			 "the peak snapshot kept; the peak instant, at %.3f s, had a heap extent "
			 "%s larger, %s (a snapshot recording keeps the peak within 1/16 once it "
			 "has settled)",
			 (double)(m->peak_extent_ns - p->in.started_ns) / 1e9,
			 fmt_size(a, sizeof(a), m->peak_extent - x->extent),
			 fmt_size(b, sizeof(b), m->peak_extent));
	return r;
}

/* The figures of p at o->at; NULL with a note if there are none. A note
 * may come with figures too (which snapshot they are from). */
static struct rp_result *
analyze(struct ld_db *db, struct ld_process *p, const struct opts *o, size_t timeline,
	char *note, size_t cap)
{
	struct rp_options ro = {
		.at = o->at,
		.at_ns = o->at_ns,
		.top = (size_t)o->top,
		.timeline_points = timeline,
		.group = o->by_stack ? NULL : ld_group_function,
		.group_arg = db,
	};
	note[0] = '\0';
	if (db->snapshots)
		return analyze_snapshot(db, p, o, &ro, note, cap);
	return rp_analyze(&p->in, &ro);
}

/* ---- text ---- */

static const char *
state_name(uint8_t state)
{
	return state == RP_LIVE ? "live" : state == RP_CACHED ? "cached" : "allocator";
}

static double
secs(int64_t ns)
{
	return (double)ns / 1e9;
}

static void
text_line(const char *what, uint64_t bytes, const char *extra)
{
	char b[32];
	printf("  %-16s %12s%s%s\n", what, fmt_size(b, sizeof(b), bytes), extra ? "  " : "",
	       extra ? extra : "");
}

/* The one sentence that says what would give the memory back. */
static void
advice(struct ld_db *db, const struct rp_result *r)
{
	char s[512], a[32], b[32];

	if (r->at.untrimmable == 0) {
		printf("  Nothing is pinned: every free byte of the heap is at its top, and free() "
		       "trims it once it passes the trim threshold.\n");
		return;
	}
	const struct rp_pin *p = r->npins ? &r->pins[0] : NULL;
	fmt_size(a, sizeof(a), r->at.untrimmable);
	fmt_size(b, sizeof(b), r->at.trim_reclaimable);
	if (!p) {
		printf("  %s of free memory is held below the top of the heap; malloc_trim(0) "
		       "would return %s of it.\n",
		       a, b);
		return;
	}
	char w[32];
	ld_site_text(db, p->stack_id, s, sizeof(s));
	fmt_size(w, sizeof(w), p->weight);
	if (p->state == RP_LIVE)
		printf("  %s of free memory cannot be given back while the top pin, a %llu-byte "
		       "chunk from %s, is live: freeing it would let free() trim %s%s; "
		       "malloc_trim(0) would return %s now.\n",
		       a, (unsigned long long)p->bytes, s, w,
		       r->npins > 1 ? " (the pins listed below it hold the rest)" : "", b);
	else if (p->state == RP_CACHED)
		printf("  %s of free memory cannot be given back: the top pin is a %llu-byte chunk "
		       "from %s that the program already freed but the allocator still caches "
		       "(tcache or fastbin) until a request of its size reuses it; "
		       "malloc_trim(0) would return %s now.\n",
		       a, (unsigned long long)p->bytes, s, b);
	else
		printf("  %s of free memory cannot be given back: the allocator's own memory sits "
		       "above it; malloc_trim(0) would return %s now.\n",
		       a, b);
}

struct leak {
	int64_t key, stack_id;
	uint8_t backing;
	uint64_t bytes, chunks;
};

static int
by_group(const void *x, const void *y)
{
	const struct leak *a = x, *b = y;
	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	return (a->backing > b->backing) - (a->backing < b->backing);
}

static int
by_leak_bytes(const void *x, const void *y)
{
	const struct leak *a = x, *b = y;
	return a->bytes != b->bytes ? (a->bytes > b->bytes ? -1 : 1) : by_group(x, y);
}

/* Chunks live at the end, grouped by site and backing, largest first. */
static struct leak *
leaks_of(struct ld_db *db, const struct ld_process *p, const struct opts *o, size_t *n)
{
	struct leak *v = NULL;
	size_t cnt = 0, groups = 0;

	for (size_t i = 0; i < p->in.nchunks; i++) {
		const struct rp_chunk *c = &p->in.chunks[i];
		if (c->free_ns)
			continue;
		if ((cnt & (cnt - 1)) == 0)
			v = xrealloc(v, (cnt ? cnt * 2 : 1) * sizeof(*v));
		int64_t key = o->by_stack ? c->stack_id : ld_group_function(db, c->stack_id);
		v[cnt++] = (struct leak){ key, c->stack_id, c->backing, c->size, 1 };
	}
	/* one entry per group: sorted, then runs added up */
	qsort(v, cnt, sizeof(*v), by_group);
	for (size_t i = 0; i < cnt; i++) {
		if (groups && by_group(&v[groups - 1], &v[i]) == 0) {
			v[groups - 1].bytes += v[i].bytes;
			v[groups - 1].chunks++;
		} else {
			v[groups++] = v[i];
		}
	}
	qsort(v, groups, sizeof(*v), by_leak_bytes);
	*n = groups;
	return v;
}

static const char *
backing_name(uint8_t b)
{
	return b == RP_BRK ? "brk" : b == RP_MMAP ? "mmap" : b == RP_ARENA ? "arena" : "?";
}

static void
text_stack(struct ld_db *db, int64_t stack_id, const char *indent, size_t max)
{
	struct ld_frame f[MAX_FRAMES];
	char buf[512];
	size_t n = stack_id > 0 ? ld_stack(db, stack_id, f, max < MAX_FRAMES ? max : MAX_FRAMES)
				: 0;

	if (n == 0)
		printf("%s(no stack recorded)\n", indent);
	for (size_t i = 0; i < n; i++)
		printf("%s%s\n", indent, ld_frame_text(buf, sizeof(buf), &f[i]));
}

static void
text_process(struct ld_db *db, const struct ld_process *p, const struct rp_result *r,
	     const struct opts *o, const char *note)
{
	char a[32], b[32], c[32], line[256], site[512];
	const struct rp_figures *f = &r->at;
	int64_t t0 = p->in.started_ns;

	printf("process %lld (%s), at %s: %.3f s after it started\n", (long long)p->pid,
	       p->exe ? p->exe : "?", o->at_name, secs(f->at_ns - t0));
	if (note[0])
		printf("  from %s\n", note);
	text_line("heap extent", f->extent, NULL);
	snprintf(line, sizeof(line), "%llu chunk%s", (unsigned long long)f->live_chunks,
		 f->live_chunks == 1 ? "" : "s");
	text_line("live", f->live, line);
	snprintf(line, sizeof(line), "%llu chunk%s freed, still held by a tcache or fastbin",
		 (unsigned long long)f->cached_chunks, f->cached_chunks == 1 ? "" : "s");
	text_line("cached", f->cached, line);
	text_line("allocator's own", f->allocator, NULL);
	snprintf(line, sizeof(line), "malloc_trim(0) could return %s of it",
		 fmt_size(a, sizeof(a), f->trim_reclaimable));
	text_line("untrimmable", f->untrimmable, line);
	text_line("top free", f->top_free, "trimmable");
	snprintf(line, sizeof(line), "%llu chunk%s", (unsigned long long)f->mmap_chunks,
		 f->mmap_chunks == 1 ? "" : "s");
	text_line("mmap", f->mmap, line);
	text_line("retained", f->retained, "held from the kernel beyond live bytes");
	for (size_t i = 0; r->nheaps > 1 && i < r->nheaps; i++) {
		const struct rp_heap *h = &r->heaps[i];
		uint64_t top = h->top_end > h->start ? h->top_end : h->start;
		uint64_t span = top - h->start;
		char d[32];
		printf("    %s heap at 0x%llx: extent %s, untrimmable %s, top free %s\n",
		       h->kind == RP_BRK ? "the brk" : "an arena's", U(h->start),
		       fmt_size(a, sizeof(a), h->end - h->start),
		       fmt_size(b, sizeof(b), span > h->occupied ? span - h->occupied : 0),
		       fmt_size(d, sizeof(d), h->end > top ? h->end - top : 0));
	}
	printf("  peak live %s at %.3f s; peak extent %s at %.3f s; worst untrimmable %s at "
	       "%.3f s\n",
	       fmt_size(a, sizeof(a), r->peak_live), secs(r->peak_live_ns - t0),
	       fmt_size(b, sizeof(b), r->peak_extent), secs(r->peak_extent_ns - t0),
	       fmt_size(c, sizeof(c), r->worst_untrimmable), secs(r->worst_ns - t0));
	printf("  leaked (live at the end) %s in %llu chunk%s\n",
	       fmt_size(a, sizeof(a), r->leaked_bytes), (unsigned long long)r->leaked_chunks,
	       r->leaked_chunks == 1 ? "" : "s");
	if (p->dropped || p->truncated || !db->complete)
		printf("  the recording is incomplete (%lld events dropped, %lld truncated%s): "
		       "figures may be off\n",
		       (long long)p->dropped, (long long)p->truncated,
		       db->complete ? "" : ", the collector did not finish");
	printf("\n");
	advice(db, r);
	if (r->npins) {
		printf("\n  the top pin, %llu bytes (%s), allocated %.3f s before:\n",
		       (unsigned long long)r->pins[0].bytes, state_name(r->pins[0].state),
		       r->pins[0].alloc_ns ? secs(f->at_ns - r->pins[0].alloc_ns) : 0.0);
		text_stack(db, r->pins[0].stack_id, "      ", 16);
		printf("\n  pins, from the top down (weight: what becomes trimmable once it and "
		       "those above are freed)\n");
		for (size_t i = 0; i < r->npins; i++) {
			const struct rp_pin *pin = &r->pins[i];
			printf("  %3zu. %10s %-9s weight %10s  at 0x%llx  %s\n", i + 1,
			       fmt_size(a, sizeof(a), pin->bytes), state_name(pin->state),
			       fmt_size(b, sizeof(b), pin->weight), (unsigned long long)pin->addr,
			       pin->state == RP_OWN ? "(the allocator's)"
						    : ld_site_text(db, pin->stack_id, site, sizeof(site)));
		}
	}
	if (r->nholes && o->top) {
		printf("\n  holes, largest first (of %zu)\n", r->nholes);
		for (size_t i = 0; i < r->nholes && i < (size_t)o->top; i++) {
			const struct rp_hole *h = &r->holes[i];
			printf("  %3zu. %10s at 0x%llx, malloc_trim could return %s; last held by\n",
			       i + 1, fmt_size(a, sizeof(a), h->bytes), (unsigned long long)h->addr,
			       fmt_size(b, sizeof(b), h->trim_reclaimable));
			if (h->nsites == 0)
				printf("         (no chunk recorded there: free since the heap grew)\n");
			for (size_t s = 0; s < h->nsites && s < 5; s++)
				printf("         %10s in %llu chunk%s from %s\n",
				       fmt_size(a, sizeof(a), h->sites[s].bytes),
				       (unsigned long long)h->sites[s].chunks,
				       h->sites[s].chunks == 1 ? "" : "s",
				       ld_site_text(db, h->sites[s].stack_id, site, sizeof(site)));
			if (h->nsites > 5)
				printf("         and %zu more sites\n", h->nsites - 5);
		}
	}
	size_t nl;
	struct leak *l = leaks_of(db, p, o, &nl);
	if (nl && o->top) {
		printf("\n  leaks (live at the end), largest first\n");
		for (size_t i = 0; i < nl && i < (size_t)o->top; i++)
			printf("  %3zu. %10s in %llu chunk%s (%s) from %s\n", i + 1,
			       fmt_size(a, sizeof(a), l[i].bytes), (unsigned long long)l[i].chunks,
			       l[i].chunks == 1 ? "" : "s", backing_name(l[i].backing),
			       ld_site_text(db, l[i].stack_id, site, sizeof(site)));
	}
	free(l);
	printf("\n");
}

/* ---- JSON ---- */

static void
json_str(const char *s)
{
	if (!s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void
json_stack(struct ld_db *db, int64_t stack_id)
{
	struct ld_frame f[MAX_FRAMES];
	size_t n = stack_id > 0 ? ld_stack(db, stack_id, f, MAX_FRAMES) : 0;

	putchar('[');
	for (size_t i = 0; i < n; i++) {
		printf(i ? ", {\"function\": " : "{\"function\": ");
		json_str(f[i].function);
		printf(", \"file\": ");
		json_str(f[i].file);
		if (f[i].line > 0)
			printf(", \"line\": %lld", (long long)f[i].line);
		else
			printf(", \"line\": null");
		printf(", \"module\": ");
		json_str(f[i].module);
		putchar('}');
	}
	putchar(']');
}

static const char *
function_of(struct ld_db *db, int64_t stack_id)
{
	return ld_function_name(db, ld_group_function(db, stack_id));
}

static void
json_process(struct ld_db *db, const struct ld_process *p, const struct rp_result *r,
	     const struct opts *o, bool first, const char *note)
{
	const struct rp_figures *f = &r->at;
	int64_t t0 = p->in.started_ns;

	printf("%s\n    {\"pid\": %lld, \"process_id\": %lld, \"exe\": ", first ? "" : ",",
	       (long long)p->pid, (long long)p->process_id);
	json_str(p->exe);
	printf(", \"at\": ");
	json_str(o->at == RP_AT_TIME ? "time" : o->at_name);
	printf(", \"at_ns\": %lld,", (long long)(f->at_ns - t0));
	if (note[0]) {
		printf(" \"note\": ");
		json_str(note);
		putchar(',');
	}
	putchar('\n');
	printf("     \"extent_bytes\": %llu, \"live_bytes\": %llu, \"cached_bytes\": %llu, "
	       "\"allocator_bytes\": %llu, \"top_free_bytes\": %llu,\n",
	       U(f->extent), U(f->live), U(f->cached), U(f->allocator), U(f->top_free));
	printf("     \"untrimmable_bytes\": %llu, \"trim_reclaimable_bytes\": %llu, "
	       "\"mmap_bytes\": %llu, \"retained_bytes\": %llu,\n",
	       U(f->untrimmable), U(f->trim_reclaimable), U(f->mmap), U(f->retained));
	printf("     \"live_chunks\": %llu, \"cached_chunks\": %llu, \"mmap_chunks\": %llu,\n",
	       U(f->live_chunks), U(f->cached_chunks), U(f->mmap_chunks));
	printf("     \"peak_live_bytes\": %llu, \"peak_live_ns\": %lld, \"peak_extent_bytes\": %llu, "
	       "\"peak_extent_ns\": %lld,\n",
	       U(r->peak_live), (long long)(r->peak_live_ns - t0), U(r->peak_extent),
	       (long long)(r->peak_extent_ns - t0));
	printf("     \"worst_untrimmable_bytes\": %llu, \"worst_untrimmable_ns\": %lld, "
	       "\"leaked_bytes\": %llu, \"leaked_chunks\": %llu,\n",
	       U(r->worst_untrimmable), (long long)(r->worst_ns - t0), U(r->leaked_bytes),
	       U(r->leaked_chunks));
	printf("     \"complete\": %s, \"dropped_events\": %lld, \"truncated_records\": %lld,\n",
	       db->complete ? "true" : "false", (long long)p->dropped, (long long)p->truncated);
	printf("     \"heaps\": [");
	for (size_t i = 0; i < r->nheaps; i++) {
		const struct rp_heap *h = &r->heaps[i];
		uint64_t top = h->top_end > h->start ? h->top_end : h->start;
		uint64_t span = top - h->start;
		printf("%s{\"kind\": \"%s\", \"start\": %llu, \"extent_bytes\": %llu, "
		       "\"occupied_bytes\": %llu, \"untrimmable_bytes\": %llu, "
		       "\"top_free_bytes\": %llu}",
		       i ? ", " : "", h->kind == RP_BRK ? "brk" : "arena", U(h->start),
		       U(h->end - h->start), U(h->occupied),
		       U(span > h->occupied ? span - h->occupied : 0),
		       U(h->end > top ? h->end - top : 0));
	}
	printf("],\n     \"pins\": [");
	for (size_t i = 0; i < r->npins; i++) {
		const struct rp_pin *pin = &r->pins[i];
		printf("%s\n       {\"address\": %llu, \"chunk_bytes\": %llu, \"state\": \"%s\", "
		       "\"weight_bytes\": %llu, \"age_ns\": %lld, \"chunk_id\": %lld, \"stack\": ",
		       i ? "," : "", U(pin->addr), U(pin->bytes), state_name(pin->state),
		       U(pin->weight), (long long)(pin->alloc_ns ? f->at_ns - pin->alloc_ns : 0),
		       (long long)pin->chunk_id);
		json_stack(db, pin->stack_id);
		putchar('}');
	}
	printf("],\n     \"holes\": [");
	for (size_t i = 0; i < r->nholes && i < (size_t)o->top; i++) {
		const struct rp_hole *h = &r->holes[i];
		printf("%s\n       {\"address\": %llu, \"bytes\": %llu, \"trim_reclaimable_bytes\": "
		       "%llu, \"former_sites\": [",
		       i ? "," : "", U(h->addr), U(h->bytes), U(h->trim_reclaimable));
		for (size_t s = 0; s < h->nsites; s++) {
			printf("%s{\"function\": ", s ? ", " : "");
			json_str(function_of(db, h->sites[s].stack_id));
			printf(", \"bytes\": %llu, \"chunks\": %llu, \"stack_id\": %lld}",
			       U(h->sites[s].bytes), U(h->sites[s].chunks),
			       (long long)h->sites[s].stack_id);
		}
		printf("]}");
	}
	printf("],\n     \"leaks\": [");
	size_t nl;
	struct leak *l = leaks_of(db, p, o, &nl);
	for (size_t i = 0; i < nl && i < (size_t)o->top; i++) {
		printf("%s\n       {\"function\": ", i ? "," : "");
		json_str(function_of(db, l[i].stack_id));
		printf(", \"bytes\": %llu, \"chunks\": %llu, \"backing\": \"%s\", \"stack\": ",
		       U(l[i].bytes), U(l[i].chunks), backing_name(l[i].backing));
		json_stack(db, l[i].stack_id);
		putchar('}');
	}
	free(l);
	printf("]}");
}

/* ---- the commands ---- */

static struct ld_db *
open_and_load(const struct opts *o)
{
	char err[512];
	struct ld_db *db = ld_open(o->file, err, sizeof(err));

	if (!db) {
		hp_error(o->file, "%s", err);
		return NULL;
	}
	if (ld_load(db, o->pid, err, sizeof(err)) != 0) {
		hp_error(o->file, "%s", err);
		ld_close(db);
		return NULL;
	}
	if (!db->complete)
		hp_error(o->file, "the recording did not finish: figures may be incomplete");
	return db;
}

/* --list-snapshots */
static int
list_snapshots(struct ld_db *db, const struct opts *o)
{
	bool first = true;

	if (!db->snapshots) {
		hp_error(o->file, "a full recording: it has no snapshots, and any instant can be "
				  "reported (--at exit|worst|peak|SECONDS)");
		return 2;
	}
	if (o->json) {
		printf("{\"file\": ");
		json_str(o->file);
		printf(", \"processes\": [");
	}
	for (size_t i = 0; i < db->nprocs; i++) {
		const struct ld_process *p = &db->procs[i];
		char a[32], b[32], c[32];
		if (!p->wanted)
			continue;
		if (o->json) {
			printf("%s\n    {\"pid\": %lld, \"process_id\": %lld, \"exe\": ",
			       first ? "" : ",", (long long)p->pid, (long long)p->process_id);
			json_str(p->exe);
			printf(", \"snapshots\": [");
		} else {
			printf("process %lld (%s): %zu snapshot%s\n", (long long)p->pid,
			       p->exe ? p->exe : "?", p->nsnaps, p->nsnaps == 1 ? "" : "s");
		}
		first = false;
		for (size_t k = 0; k < p->nsnaps; k++) {
			const struct ld_snapshot *x = &p->snaps[k];
			if (o->json) {
				printf("%s\n       {\"snapshot_id\": %lld, \"reason\": ", k ? "," : "",
				       (long long)x->id);
				json_str(x->reason);
				printf(", \"at_ns\": %lld, \"extent_bytes\": %llu, \"live_bytes\": %llu, "
				       "\"untrimmable_bytes\": %llu}",
				       (long long)(x->ns - p->in.started_ns), U(x->extent), U(x->live),
				       U(x->untrimmable));
			} else {
				printf("  %5lld  %-8s  at %9.3f s  extent %10s  live %10s  "
				       "untrimmable %10s\n",
				       (long long)x->id, x->reason, secs(x->ns - p->in.started_ns),
				       fmt_size(a, sizeof(a), x->extent), fmt_size(b, sizeof(b), x->live),
				       fmt_size(c, sizeof(c), x->untrimmable));
			}
		}
		if (o->json)
			printf("]}");
	}
	if (o->json)
		printf("\n]}\n");
	return 0;
}

int
cmd_report(int argc, char **argv)
{
	struct opts o;
	struct ld_db *db;
	bool first = true;

	if (parse(argc, argv, &o, false) != 0)
		return 2;
	if (!(db = open_and_load(&o)))
		return 2;
	if (o.list) {
		int rc = list_snapshots(db, &o);
		ld_close(db);
		return rc;
	}
	if (o.html) {
		struct html_options ho = { o.file, o.output, o.at, o.at_ns, o.top };
		int rc = html_report(db, &ho);
		ld_close(db);
		return rc;
	}
	if (o.json) {
		printf("{\"file\": ");
		json_str(o.file);
		printf(", \"processes\": [");
	}
	for (size_t i = 0; i < db->nprocs; i++) {
		struct ld_process *p = &db->procs[i];
		char note[512];
		if (!p->wanted)
			continue;
		struct rp_result *r = analyze(db, p, &o, 0, note, sizeof(note));
		if (!r) {
			hp_error(o.file, "pid %lld: %s", (long long)p->pid, note);
			continue;
		}
		if (o.json)
			json_process(db, p, r, &o, first, note);
		else
			text_process(db, p, r, &o, note);
		first = false;
		rp_free(r);
	}
	if (o.json)
		printf("\n]}\n");
	ld_close(db);
	return 0;
}

int
cmd_check(int argc, char **argv)
{
	struct opts o;
	struct ld_db *db;
	bool failed = false;
	size_t wanted = 0;
	struct gate gate = { 0 };
	int rc = 0;

	if (parse(argc, argv, &o, true) != 0)
		return 2;
	o.top = 1;
	if (!(db = open_and_load(&o)))
		return 2;
	for (size_t i = 0; i < db->nprocs; i++)
		wanted += db->procs[i].wanted;
	for (size_t i = 0; i < db->nprocs; i++) {
		struct ld_process *p = &db->procs[i];
		if (!p->wanted)
			continue;
		char note[512];
		struct rp_result *r = analyze(db, p, &o, 0, note, sizeof(note));
		if (!r) {
			hp_error(o.file, "pid %lld: %s", (long long)p->pid, note);
			continue;
		}
		uint64_t v[4] = { r->at.untrimmable, r->at.retained, r->leaked_bytes, r->peak_live };
		const struct rp_pin *top = r->npins ? &r->pins[0] : NULL;
		gate_process(&gate, p, v, top);
		for (int k = 0; k < 4; k++) {
			char a[32], b[32], site[512], who[64], line[1024], name[64];
			if (!o.has_max[k])
				continue;
			bool ok = v[k] <= o.max[k];
			who[0] = '\0';
			if (wanted > 1)
				snprintf(who, sizeof(who), " (pid %lld)", (long long)p->pid);
			int n = snprintf(line, sizeof(line), "%s %s%s %s %s %s (%llu bytes, limit %llu)",
					 ok ? "PASS" : "FAIL", limit_name[k], who,
					 fmt_size(a, sizeof(a), v[k]), ok ? "<=" : ">",
					 fmt_size(b, sizeof(b), o.max[k]), U(v[k]), U(o.max[k]));
			if (!ok && top && n > 0 && (size_t)n < sizeof(line))
				snprintf(line + n, sizeof(line) - (size_t)n, "; top pin: %s",
					 top->state == RP_OWN
						 ? "the allocator's own memory"
						 : ld_site_text(db, top->stack_id, site, sizeof(site)));
			printf("%s\n", line);
			snprintf(name, sizeof(name), "%s <= %s", limit_name[k], b);
			gate_add(&gate, db, p, name, ok, line, top);
			failed |= !ok;
		}
		rp_free(r);
	}
	if (o.baseline)
		rc = gate_baseline(&gate, db, o.baseline, o.at, o.inc);
	failed |= gate.failed;
	if (rc == 0 && o.junit) {
		char suite[600];
		snprintf(suite, sizeof(suite), "heapprof check %s", o.file);
		rc = gate_junit(&gate, o.junit, suite);
	}
	gate_free(&gate);
	ld_close(db);
	return rc ? rc : failed ? 1 : 0;
}
