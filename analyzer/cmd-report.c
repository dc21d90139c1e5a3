/* SPDX-License-Identifier: MIT */
/*
 * cmd-report.c - `heapprof report` (the figures, pins, holders, holes and
 * leaks of each process at an instant, as text or JSON) and `heapprof
 * check` (the same figures against limits: the CI gate). The figures are
 * computed by replay.c and heapmodel.c; this file chooses the instant
 * (--at, marks) and writes them out.
 *
 * Exit status: report 0; check 0 if every limit holds, 1 if one does not;
 * both 2 on bad usage or bad input.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "events.h"
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
	const char *mark;  /* --at mark:NAME: NAME */
	long mark_n;       /* its Nth occurrence, 1 the first; -1: the last */
	bool json;
	bool html;          /* --format html */
	const char *output; /* -o FILE (html) */
	bool by_stack;
	bool list;          /* --list-snapshots */
	long top;
	const char **skip; /* --skip patterns */
	size_t nskip;
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

static const char at_help[] =
	"  --at INSTANT      exit: when the process ended (the default)\n"
	"                    worst: the instant with the most untrimmable bytes\n"
	"                    peak: the instant of the largest heap extent\n"
	"                    SECONDS: that long after the process started (e.g. 1.5)\n"
	"                    mark:NAME: where the program called heapprof_mark(\"NAME\")\n"
	"                      (the first; mark:NAME#N the Nth, mark:NAME#last the last)\n";

static const char common_help[] =
	"  --pid PID         only the processes with this pid\n"
	"  --skip PATTERN    a function, module or source file (glob) that allocates\n"
	"                    for its caller: sites are named past it (repeatable)\n";

static void
report_usage(FILE *f)
{
	fputs("usage: heapprof report FILE [--pid PID] [--at INSTANT] [--format text|json|html]\n"
	      "                            [-o FILE] [--top N] [--by function|stack]\n"
	      "                            [--skip PATTERN]...\n"
	      "\n"
	      "Each process's heaps in the recording FILE at an instant: the figures, what\n"
	      "would give the memory back, the pins, who holds the holes, the holes and the\n"
	      "leaks. Options take their value as --opt VALUE or --opt=VALUE.\n"
	      "\n",
	      f);
	fputs(at_help, f);
	fputs(common_help, f);
	fputs("  --list-snapshots  the snapshots of a snapshot recording (heapprof run\n"
	      "                    --snapshots), instead of a report\n",
	      f);
	fputs("  --format FORMAT   text (the default), json, or html: one self-contained page\n"
	      "                    (the timeline, the heap map, the pins, holes, leaks and\n"
	      "                    sites; --at: the instant shown first)\n"
	      "  -o FILE           write the page to FILE (html only; default stdout)\n"
	      "  --top N           how many pins, holes, sites and leaks to list (10)\n"
	      "  --by stack        group sites by whole stack, not by function\n",
	      f);
}

static void
check_usage(FILE *f)
{
	fputs("usage: heapprof check FILE [--pid PID] [--at INSTANT] [--max-untrimmable SIZE]\n"
	      "                           [--max-retained SIZE] [--max-leaked SIZE]\n"
	      "                           [--max-peak SIZE] [--format text|json]\n"
	      "                           [--skip PATTERN]...\n"
	      "                           [--baseline BASE --max-increase [FIGURE=]SIZE|PERCENT%]\n"
	      "                           [--junit FILE]\n"
	      "\n"
	      "The CI gate: each limit against each process of the recording FILE. Exit 0\n"
	      "if every limit holds, 1 if one does not, 2 on bad usage or input. SIZE is\n"
	      "bytes, or with K, M, G (KiB, MiB, GiB) or kB, MB, GB. Options take their\n"
	      "value as --opt VALUE or --opt=VALUE.\n"
	      "\n"
	      "  --max-untrimmable SIZE  free bytes below the top pin, at --at\n"
	      "  --max-retained SIZE     heap extent + mmap bytes - live bytes, at --at\n"
	      "  --max-leaked SIZE       bytes still live when the process ended\n"
	      "  --max-peak SIZE         the most live bytes at any instant\n"
	      "  --baseline BASE         compare with BASE (the last good run), process by\n"
	      "                          process (matched by program name and arguments)\n"
	      "  --max-increase X        how much each figure (untrimmable, retained, leaked,\n"
	      "                          peak) may grow over BASE: bytes (1M) or a percent\n"
	      "                          of BASE's (10%); FIGURE=X for one (repeatable)\n"
	      "  --junit FILE            every verdict as JUnit XML into FILE\n",
	      f);
	fputs(at_help, f);
	fputs(common_help, f);
	fputs("  --format FORMAT   text (one line per limit, the default) or json\n", f);
}

/* NAME, NAME#N or NAME#last of --at mark:... */
static bool
parse_mark(const char *v, struct opts *o)
{
	const char *hash = strrchr(v, '#');
	static char name[HP_MARK_MAX];

	o->mark = v;
	o->mark_n = 1;
	if (!hash)
		return true;
	if (strcmp(hash + 1, "last") == 0)
		o->mark_n = -1;
	else if (!parse_long(hash + 1, 1, 1L << 30, &o->mark_n))
		return false;
	if (hash == v || (size_t)(hash - v) >= sizeof(name))
		return false;
	memcpy(name, v, (size_t)(hash - v));
	name[hash - v] = '\0';
	o->mark = name;
	return true;
}

/* The time of --at mark:NAME in process p, ns since it started; false if
 * it has no such mark. */
static bool
mark_at(const struct ld_process *p, const struct opts *o, int64_t *at_ns)
{
	long seen = 0;
	const struct ld_mark *hit = NULL;

	for (size_t i = 0; i < p->nmarks; i++)
		if (strcmp(p->marks[i].name, o->mark) == 0) {
			hit = &p->marks[i];
			if (++seen == o->mark_n)
				break;
		}
	if (!hit || (o->mark_n > 0 && seen < o->mark_n))
		return false;
	*at_ns = hit->ns - p->in.started_ns;
	return true;
}

/* The instant --at names in process p, ns since it started (a mark's, or
 * SECONDS); false if p has no such mark. For the HTML page and the
 * baseline (gate.h), which pick their instants per process. */
static bool
instant_of(void *arg, const struct ld_process *p, int64_t *at_ns)
{
	const struct opts *o = arg;

	*at_ns = o->at_ns;
	return !o->mark || mark_at(p, o, at_ns);
}

/* Parse the options; returns 0, or 2 after saying what is wrong. */
static int
parse(int argc, char **argv, struct opts *o, bool check)
{
	static const char *const value_opts[] = { "--pid", "--at", "--skip", "--format", "--top",
						  "--by", "--max-untrimmable", "--max-retained",
						  "--max-leaked", "--max-peak", "-o", "--output",
						  "--baseline", "--max-increase", "--junit" };

	memset(o, 0, sizeof(*o));
	o->at = RP_AT_EXIT;
	o->at_name = "exit";
	o->top = 10;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL, *name = NULL;
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
		name = hp_value_option(argc, argv, &i, value_opts,
				       sizeof(value_opts) / sizeof(value_opts[0]), &v, check ? "check" : "report");
		if (!name)
			return 2;
		if (strcmp(name, "--pid") == 0) {
			if (!parse_long(v, 1, 1L << 30, &n)) {
				hp_error(v, "not a pid");
				return 2;
			}
			o->pid = n;
		} else if (strcmp(name, "--at") == 0) {
			o->at_name = v;
			o->mark = NULL;
			if (strcmp(v, "exit") == 0) {
				o->at = RP_AT_EXIT;
			} else if (strcmp(v, "worst") == 0) {
				o->at = RP_AT_WORST;
			} else if (strcmp(v, "peak") == 0) {
				o->at = RP_AT_PEAK;
			} else if (parse_seconds(v, &o->at_ns)) {
				o->at = RP_AT_TIME;
			} else if (strncmp(v, "mark:", 5) == 0 && v[5]) {
				if (!parse_mark(v + 5, o)) {
					hp_error(v, "--at mark:NAME takes #N (N from 1) or #last after "
						    "the name, or nothing");
					return 2;
				}
				o->at = RP_AT_TIME;
			} else {
				hp_error(v, "--at takes exit, worst, peak, seconds since start or "
					    "mark:NAME");
				return 2;
			}
		} else if (strcmp(name, "--skip") == 0) {
			o->skip = xrealloc(o->skip, (o->nskip + 1) * sizeof(char *));
			o->skip[o->nskip++] = v;
		} else if (strcmp(name, "--format") == 0) {
			o->json = strcmp(v, "json") == 0;
			o->html = !check && strcmp(v, "html") == 0;
			if (!o->json && !o->html && strcmp(v, "text") != 0) {
				hp_error(v, check ? "--format takes text or json"
						  : "--format takes text, json or html");
				return 2;
			}
		} else if (!check && (strcmp(name, "-o") == 0 || strcmp(name, "--output") == 0)) {
			o->output = v;
		} else if (check && strcmp(name, "--baseline") == 0) {
			o->baseline = v;
		} else if (check && strcmp(name, "--junit") == 0) {
			o->junit = v;
		} else if (check && strcmp(name, "--max-increase") == 0) {
			if (!gate_parse_increase(v, o->inc)) {
				hp_error(v, "--max-increase takes a size (1M) or a percent (10%%), "
					    "for all figures or one (untrimmable=1M)");
				return 2;
			}
		} else if (!check && strcmp(name, "--top") == 0) {
			if (!parse_long(v, 0, 100000, &o->top)) {
				hp_error(v, "--top takes a number, 0 to 100000");
				return 2;
			}
		} else if (!check && strcmp(name, "--by") == 0) {
			if (strcmp(v, "stack") == 0)
				o->by_stack = true;
			else if (strcmp(v, "function") != 0) {
				hp_error(v, "--by takes function or stack");
				return 2;
			}
		} else {
			for (k = 0; check && k < 4; k++)
				if (strcmp(name, limit_flag[k]) == 0)
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
pick_snapshot(const struct ld_process *p, const struct opts *o, int64_t at_ns)
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
		int64_t want = p->in.started_ns + at_ns;
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
	const struct ld_snapshot *x = pick_snapshot(p, o, ro->at_ns);
	struct rp_snapshot snap;
	char err[512], a[32], b[32];

	if (!x) {
		if (p->nsnaps)
			snprintf(note, cap, "no %s snapshot (the recording was cut off?)", o->at_name);
		else if (p->parent_id && p->in.fork_ns)
			snprintf(note, cap, "no snapshot: its heap at its fork was not captured");
		else
			snprintf(note, cap, "no snapshot (the recording was cut off before one was "
					    "written?)");
		return NULL;
	}
	if (ld_snapshot(db, x->id, &snap, err, sizeof(err)) != 0) {
		snprintf(note, cap, "%s", err);
		return NULL;
	}
	struct rp_result *r = rp_snapshot(&snap, &p->in, ro);
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
analyze(struct ld_db *db, struct ld_process *p, const struct opts *o, int64_t at_ns,
	size_t timeline, char *note, size_t cap)
{
	struct rp_options ro = {
		.at = o->at,
		.at_ns = at_ns,
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

/* Whether the process ever had a pymalloc arena. */
static bool
r_has_pymalloc(const struct ld_process *p)
{
	for (size_t i = 0; i < p->in.npmaps; i++)
		if (p->in.pmaps[i].pymalloc)
			return true;
	return false;
}

static const char *
state_name(uint8_t state)
{
	return state == RP_LIVE	     ? "live"
	       : state == RP_CACHED  ? "cached"
	       : state == RP_STASHED ? "stashed"
				     : "allocator";
}

/* What a pin that is no chunk of the program's is. */
static const char *
pin_what(const struct rp_pin *p)
{
	if (p->state == RP_STASHED)
		return p->cache == HP_FATE_FASTBIN ? "free space the allocator keeps in a fastbin"
					      : "free space the allocator keeps in a tcache";
	return "the allocator's own memory";
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
	printf("  %-18s %10s%s%s\n", what, fmt_size(b, sizeof(b), bytes), extra ? "  " : "",
	       extra ? extra : "");
}

/* A list line: `head` (printf-formatted), then " from SITE", on one line
 * if it fits 100 columns, else SITE on a line of its own. */
static void __attribute__((format(printf, 2, 3)))
list_line(const char *site, const char *fmt, ...)
{
	char head[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	if (strlen(head) + 6 + strlen(site) <= 100) {
		printf("%s from %s\n", head, site);
		return;
	}
	/* SITE on lines of its own, a stack (--by stack) cut at its callers */
	printf("%s from\n", head);
	size_t col = 0;
	for (const char *p = site; *p;) {
		const char *next = strstr(p + 1, " <- ");
		size_t n = next ? (size_t)(next - p) : strlen(p);
		if (col && col + n > 100) {
			printf("\n");
			col = 0;
			if (*p == ' ')
				p++, n--;
		}
		if (!col)
			col = (size_t)printf("%s", p == site ? "           " : "             ");
		col += (size_t)printf("%.*s", (int)n, p);
		p += n;
	}
	printf("\n");
}

/* Print `text` as lines of at most `width` columns, each starting with
 * `indent` (a word longer than a line gets a line of its own). */
static void
wrap(const char *indent, const char *text, size_t width)
{
	size_t in = strlen(indent), col = 0;
	const char *p = text;

	while (*p) {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		if (!n)
			break;
		if (col && col + 1 + n > width) {
			putchar('\n');
			col = 0;
		}
		if (!col) {
			fputs(indent, stdout);
			col = in;
		} else {
			putchar(' ');
			col++;
		}
		fwrite(p, 1, n, stdout);
		col += n;
		p += n;
	}
	if (col)
		putchar('\n');
}

/* The one sentence that says what would give the memory back, into t
 * (the HTML report's too: html_options.advice). */
static const char *
advice_text(struct ld_db *db, const struct rp_result *r, char *t, size_t cap)
{
	char s[512], a[96], b[32], c[32], w[32];
	const struct rp_figures *f = &r->at;

	fmt_size(b, sizeof(b), f->trim_reclaimable);
	if (f->untrimmable == 0) {
		if (f->fastbin && f->trim_reclaimable > f->trim_top)
			snprintf(t, cap,
				 "Nothing free is pinned, but fastbins hold %s of chunks the program "
				 "freed (glibc keeps chunks of up to 128 bytes there, unmerged, until "
				 "a large request or malloc_trim consolidates them): free() never "
				 "gives them back; malloc_trim(0) would return %s now.",
				 fmt_size(a, sizeof(a), f->fastbin), b);
		else
			snprintf(t, cap,
				 "Nothing is pinned: every free byte of the heap is at its top, and "
				 "free() trims it once it passes the trim threshold.");
		return t;
	}
	const struct rp_pin *p = r->npins ? &r->pins[0] : NULL;
	fmt_size(a, sizeof(a), f->untrimmable);
	strcat(a, " of free memory");
	if (f->untrimmable_resident == 0)
		strcat(a, " (none of it resident)");
	else if (f->untrimmable_resident < f->untrimmable)
		snprintf(a + strlen(a), sizeof(a) - strlen(a), " (%s of it resident)",
			 fmt_size(c, sizeof(c), f->untrimmable_resident));
	if (!p) {
		snprintf(t, cap,
			 "%s is held below the top of the heap; malloc_trim(0) "
			 "would return %s now.",
			 a, b);
		return t;
	}
	ld_site_text(db, p->stack_id, s, sizeof(s));
	fmt_size(w, sizeof(w), p->weight);
	if (p->state == RP_LIVE)
		snprintf(t, cap,
			 "%s cannot be given back while the top pin, a %llu-byte "
			 "chunk from %s, is live: freeing it would let free() trim %s%s; "
			 "malloc_trim(0) would return %s now.",
			 a, (unsigned long long)p->bytes, s, w,
			 r->npins > 1 ? " (the pins listed below it hold the rest)" : "", b);
	else if (p->state == RP_CACHED && p->cache == HP_FATE_FASTBIN)
		snprintf(t, cap,
			 "%s cannot be given back: the top pin is a %llu-byte chunk "
			 "from %s that the program already freed but a fastbin still holds, until "
			 "a large request or malloc_trim consolidates it; malloc_trim(0) would "
			 "return %s now.",
			 a, (unsigned long long)p->bytes, s, b);
	else if (p->state == RP_CACHED)
		snprintf(t, cap,
			 "%s cannot be given back: the top pin is a %llu-byte chunk "
			 "from %s that the program already freed but its thread's tcache still "
			 "holds, until a request of its size reuses it; malloc_trim(0) would "
			 "return %s now.",
			 a, (unsigned long long)p->bytes, s, b);
	else if (p->state == RP_STASHED)
		snprintf(t, cap,
			 "%s cannot be given back: the top pin is a %llu-byte free chunk that the "
			 "allocator itself keeps in a %s (taken from a bin for later requests of "
			 "its size, or a remainder it split off: the program never had it), until "
			 "%s; malloc_trim(0) would return %s now.",
			 a, (unsigned long long)p->bytes,
			 p->cache == HP_FATE_FASTBIN ? "fastbin" : "tcache",
			 p->cache == HP_FATE_FASTBIN ? "a large request or malloc_trim consolidates it"
						: "a request of its size takes it",
			 b);
	else
		snprintf(t, cap,
			 "%s cannot be given back: the allocator's own memory sits "
			 "above it; malloc_trim(0) would return %s now.",
			 a, b);
	if (f->fastbin > f->untrimmable)
		snprintf(t + strlen(t), cap - strlen(t),
			 " Fastbins hold another %s of chunks the program freed: free() never "
			 "gives them back, malloc_trim(0) consolidates them first.",
			 fmt_size(c, sizeof(c), f->fastbin));
	return t;
}

static void
advice(struct ld_db *db, const struct rp_result *r)
{
	char t[2048];

	wrap("  ", advice_text(db, r, t, sizeof(t)), 80);
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
	return b == HP_BACKING_BRK ? "brk" : b == HP_BACKING_MMAP ? "mmap" : b == HP_BACKING_ARENA ? "arena" : "?";
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

/* --by stack: each of n stacks as "#ID site <- caller <- ...", with as
 * many callers past the site as it takes to tell it from the other
 * stacks of its list (at most CHAIN frames). Returns n strings to free. */
#define CHAIN 6

static char **
stack_labels(struct ld_db *db, const int64_t *ids, size_t n)
{
	char **out = xcalloc(n ? n : 1, sizeof(char *));
	char (*text)[CHAIN][256] = xcalloc(n ? n : 1, sizeof(*text));
	size_t *len = xcalloc(n ? n : 1, sizeof(size_t));

	for (size_t i = 0; i < n; i++) {
		struct ld_frame f[MAX_FRAMES];
		size_t k = ld_site_index(db, ids[i]);
		size_t m = ids[i] > 0 ? ld_stack(db, ids[i], f, MAX_FRAMES) : 0;
		for (size_t j = k; j < m && len[i] < CHAIN; j++)
			ld_frame_text(text[i][len[i]++], sizeof(text[i][0]), &f[j]);
	}
	for (size_t i = 0; i < n; i++) {
		size_t want = 1;
		for (size_t j = 0; j < n; j++) {
			if (j == i || ids[j] == ids[i])
				continue;
			size_t same = 0;
			while (same < len[i] && same < len[j] &&
			       strcmp(text[i][same], text[j][same]) == 0)
				same++;
			if (same + 1 > want)
				want = same + 1;
		}
		if (want > len[i])
			want = len[i];
		struct buf b = { 0 };
		char id[32];
		snprintf(id, sizeof(id), "#%lld ", (long long)ids[i]);
		buf_add(&b, id, strlen(id));
		if (!len[i])
			buf_add(&b, "(no stack recorded)", 19);
		for (size_t k = 0; k < want; k++) {
			if (k)
				buf_add(&b, " <- ", 4);
			buf_add(&b, text[i][k], strlen(text[i][k]));
		}
		buf_add(&b, "", 1);
		out[i] = b.p;
	}
	free(text);
	free(len);
	return out;
}

static void
free_labels(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* The site of each of n stacks, as text: ld_site_text, or with --by
 * stack its label among them. */
static char **
site_texts(struct ld_db *db, const struct opts *o, const int64_t *ids, size_t n)
{
	if (o->by_stack)
		return stack_labels(db, ids, n);
	char **out = xcalloc(n ? n : 1, sizeof(char *));
	for (size_t i = 0; i < n; i++) {
		char buf[512];
		out[i] = xstrdup(ld_site_text(db, ids[i], buf, sizeof(buf)));
	}
	return out;
}

/* The settings the allocator ran with that shape the heap, if any: its
 * environment lines, and the program's mallopt calls (the first four). */
static void
text_settings(const struct ld_process *p, int64_t t0)
{
	size_t lines = 0, calls = 0;

	for (size_t i = 0; i < p->nsettings; i++) {
		char l[256];
		if (!p->settings[i].line)
			continue;
		snprintf(l, sizeof(l), "%s", p->settings[i].line);
		printf("%s %s", lines++ ? "" : "  allocator settings:", text_safe(l));
	}
	if (lines)
		putchar('\n');
	for (size_t i = 0; i < p->nsettings; i++) {
		const struct ld_setting *s = &p->settings[i];
		const char *name = ld_mallopt_name(s->param);
		if (s->line || calls++ >= 4)
			continue;
		printf("%s ", calls == 1 ? "  mallopt calls:" : ",");
		if (name)
			printf("%s=%d", name, s->value);
		else
			printf("%d=%d", s->param, s->value);
		printf(" at %.3f s", secs(s->ns - t0));
	}
	if (calls > 4)
		printf(" and %zu more", calls - 4);
	if (calls)
		putchar('\n');
}

static void
text_process(struct ld_db *db, const struct ld_process *p, const struct rp_result *r,
	     const struct opts *o, const char *note)
{
	char a[32], b[32], line[256], site[512];
	const struct rp_figures *f = &r->at;
	int64_t t0 = p->in.started_ns;

	char exe[512];
	snprintf(exe, sizeof(exe), "%s", p->exe ? p->exe : "?");
	printf("process %lld (%s)\n  at %s: %s%.3f s after it started\n", (long long)p->pid,
	       text_safe(exe), o->at_name, r->past_end ? "past its end, so at its end, " : "",
	       secs(f->at_ns - t0));
	if (note[0])
		printf("  from %s\n", note);
	text_settings(p, t0);
	snprintf(line, sizeof(line), "%s resident", fmt_size(a, sizeof(a), f->resident));
	text_line("heap extent", f->extent, line);
	snprintf(line, sizeof(line), "%llu chunk%s", (unsigned long long)f->live_chunks,
		 f->live_chunks == 1 ? "" : "s");
	text_line("live", f->live, line);
	snprintf(line, sizeof(line), "%llu freed chunk%s a tcache or fastbin holds",
		 (unsigned long long)f->cached_chunks, f->cached_chunks == 1 ? "" : "s");
	if (f->fastbin)
		snprintf(line, sizeof(line), "%llu freed chunk%s, %s of it in fastbins",
			 (unsigned long long)f->cached_chunks, f->cached_chunks == 1 ? "" : "s",
			 fmt_size(a, sizeof(a), f->fastbin));
	text_line("cached", f->cached, line);
	text_line("allocator's own", f->allocator, NULL);
	snprintf(line, sizeof(line), "free below the top pin, %s of it resident",
		 fmt_size(a, sizeof(a), f->untrimmable_resident));
	text_line("untrimmable", f->untrimmable, line);
	text_line("top free", f->top_free, "trimmable");
	snprintf(line, sizeof(line), "%llu chunk%s", (unsigned long long)f->mmap_chunks,
		 f->mmap_chunks == 1 ? "" : "s");
	text_line("mmap", f->mmap, line);
	text_line("retained", f->retained, "held from the kernel beyond live bytes");
	snprintf(line, sizeof(line), "resident pages it would give back now (%s of the top)",
		 fmt_size(a, sizeof(a), f->trim_top));
	text_line("malloc_trim(0)", f->trim_reclaimable, line);
	if (p->cpython || f->pymalloc_arenas) {
		snprintf(line, sizeof(line), "%llu arena%s: CPython's small objects, not chunks",
			 U(f->pymalloc_arenas), f->pymalloc_arenas == 1 ? "" : "s");
		text_line("pymalloc", f->pymalloc, line);
	}
	if (f->program_mmaps) {
		snprintf(line, sizeof(line), "%llu anonymous mapping%s the program made itself",
			 U(f->program_mmaps), f->program_mmaps == 1 ? "" : "s");
		text_line("other mmaps", f->program_mmap, line);
	}
	for (size_t i = 0; r->nheaps > 1 && i < r->nheaps; i++) {
		const struct rp_heap *h = &r->heaps[i];
		uint64_t top = h->top_end > h->start ? h->top_end : h->start;
		uint64_t span = top - h->start;
		char d[32];
		char e[32];
		if (i == 0)
			printf("    %-5s %-14s %10s %10s %12s %10s\n", "heap", "at", "extent",
			       "resident", "untrimmable", "top free");
		printf("    %-5s 0x%-12llx %10s %10s %12s %10s\n", h->kind == HP_BACKING_BRK ? "brk" : "arena",
		       U(h->start), fmt_size(a, sizeof(a), h->end - h->start),
		       fmt_size(e, sizeof(e), h->resident),
		       fmt_size(b, sizeof(b), span > h->occupied ? span - h->occupied : 0),
		       fmt_size(d, sizeof(d), h->end > top ? h->end - top : 0));
	}
	snprintf(line, sizeof(line), "at %.3f s", secs(r->peak_live_ns - t0));
	text_line("peak live", r->peak_live, line);
	snprintf(line, sizeof(line), "at %.3f s", secs(r->peak_extent_ns - t0));
	text_line("peak extent", r->peak_extent, line);
	snprintf(line, sizeof(line), "at %.3f s", secs(r->worst_ns - t0));
	text_line("worst untrimmable", r->worst_untrimmable, line);
	snprintf(line, sizeof(line), "%llu chunk%s live at the end", U(r->leaked_chunks),
		 r->leaked_chunks == 1 ? "" : "s");
	text_line("leaked", r->leaked_bytes, line);
	if (p->dropped || p->truncated || !db->complete)
		printf("  the recording is incomplete (%lld events dropped, %lld truncated%s): "
		       "figures may be off\n",
		       (long long)p->dropped, (long long)p->truncated,
		       db->complete ? "" : ", the collector did not finish");
	printf("\n");
	advice(db, r);
	if (p->cpython || f->pymalloc_arenas) {
		char t[1024];
		if (f->pymalloc_arenas || r_has_pymalloc(p))
			snprintf(t, sizeof(t),
				 "This is CPython: it keeps objects of up to 512 bytes in pymalloc's "
				 "arenas, mmaps of its own (%s in %llu now), and heapprof sees only "
				 "what pymalloc passes to malloc, not the objects inside them. Run it "
				 "with PYTHONMALLOC=malloc to see every object as a chunk.",
				 fmt_size(a, sizeof(a), f->pymalloc), U(f->pymalloc_arenas));
		else
			snprintf(t, sizeof(t),
				 "This is CPython without pymalloc arenas (PYTHONMALLOC=malloc): "
				 "every object is a chunk.");
		printf("\n");
		wrap("  ", t, 80);
	}
	if (r->npins) {
		const struct rp_pin *top = &r->pins[0];
		if (top->state == RP_ALLOCATOR || top->state == RP_STASHED) {
			printf("\n  the top pin, %llu bytes (%s): %s\n",
			       (unsigned long long)top->bytes, state_name(top->state),
			       pin_what(top));
		} else {
			printf("\n  the top pin, %llu bytes (%s), allocated %.3f s before:\n",
			       (unsigned long long)top->bytes, state_name(top->state),
			       top->alloc_ns ? secs(f->at_ns - top->alloc_ns) : 0.0);
			text_stack(db, top->stack_id, "      ", 16);
		}
		printf("\n  pins from the top down (weight: what free() can trim once it and those\n"
		       "  above are freed)\n");
		int64_t *ids = xcalloc(r->npins + 1, sizeof(int64_t));
		for (size_t i = 0; i < r->npins; i++)
			ids[i] = r->pins[i].stack_id;
		char **sites = site_texts(db, o, ids, r->npins);
		for (size_t i = 0; i < r->npins; i++) {
			const struct rp_pin *pin = &r->pins[i];
			list_line(pin->state == RP_ALLOCATOR || pin->state == RP_STASHED
					  ? strcat(strcat(strcpy(site, "("), pin_what(pin)), ")")
					  : sites[i],
				  "  %3zu. %10s %-9s weight %10s at 0x%llx", i + 1,
				  fmt_size(a, sizeof(a), pin->bytes), state_name(pin->state),
				  fmt_size(b, sizeof(b), pin->weight), (unsigned long long)pin->addr);
		}
		free_labels(sites, r->npins);
		free(ids);
	}
	if (r->nholders && o->top) {
		printf("\n  who holds the holes: the live chunks among and above them, by site\n"
		       "  (keeps: what malloc_trim(0) would give back once the site's chunks are "
		       "freed)\n");
		size_t n = r->nholders < (size_t)o->top ? r->nholders : (size_t)o->top;
		int64_t *ids = xcalloc(n + 1, sizeof(int64_t));
		for (size_t i = 0; i < n; i++)
			ids[i] = r->holders[i].stack_id;
		char **sites = site_texts(db, o, ids, n);
		for (size_t i = 0; i < n; i++) {
			const struct hm_holder *x = &r->holders[i];
			list_line(sites[i], "  %3zu. keeps %10s  %llu chunk%s, %s,", i + 1,
				  fmt_size(a, sizeof(a), x->keeps), U(x->chunks),
				  x->chunks == 1 ? "" : "s", fmt_size(b, sizeof(b), x->bytes));
		}
		free_labels(sites, n);
		free(ids);
		if (r->nholders > (size_t)o->top)
			printf("       and %zu more sites\n", r->nholders - (size_t)o->top);
	}
	if (r->nholes && o->top) {
		printf("\n  holes, largest first (of %zu)\n", r->nholes);
		for (size_t i = 0; i < r->nholes && i < (size_t)o->top; i++) {
			const struct rp_hole *h = &r->holes[i];
			printf("  %3zu. %10s at 0x%llx, malloc_trim would return %s; last held by\n",
			       i + 1, fmt_size(a, sizeof(a), h->bytes), (unsigned long long)h->addr,
			       fmt_size(b, sizeof(b), h->trim_reclaimable));
			if (h->nsites == 0)
				printf("         (no chunk of the program's was there)\n");
			size_t ns = h->nsites < 5 ? h->nsites : 5;
			int64_t ids[5];
			for (size_t s = 0; s < ns; s++)
				ids[s] = h->sites[s].stack_id;
			char **sites = site_texts(db, o, ids, ns);
			for (size_t s = 0; s < ns; s++)
				list_line(sites[s], "         %10s in %llu chunk%s",
					  fmt_size(a, sizeof(a), h->sites[s].bytes),
					  (unsigned long long)h->sites[s].chunks,
					  h->sites[s].chunks == 1 ? "" : "s");
			free_labels(sites, ns);
			if (h->nsites > 5)
				printf("         and %zu more sites\n", h->nsites - 5);
		}
	}
	size_t nl;
	struct leak *l = leaks_of(db, p, o, &nl);
	if (nl && o->top) {
		size_t n = nl < (size_t)o->top ? nl : (size_t)o->top;
		int64_t *ids = xcalloc(n + 1, sizeof(int64_t));
		for (size_t i = 0; i < n; i++)
			ids[i] = l[i].stack_id;
		char **sites = site_texts(db, o, ids, n);
		printf("\n  leaks (live at the end), largest first\n");
		for (size_t i = 0; i < n; i++)
			list_line(sites[i], "  %3zu. %10s in %llu chunk%s (%s)", i + 1,
				  fmt_size(a, sizeof(a), l[i].bytes), (unsigned long long)l[i].chunks,
				  l[i].chunks == 1 ? "" : "s", backing_name(l[i].backing));
		free_labels(sites, n);
		free(ids);
	}
	free(l);
	printf("\n");
}

/* With several processes: one line each, before their reports. */
static void
text_table(struct ld_db *db, struct rp_result **res, const struct opts *o, size_t n)
{
	char a[32], b[32], c[32], d[32], e[32];

	printf("%s: %zu processes, at %s\n", o->file, n, o->at_name);
	printf("  %8s  %-14s %10s %10s %12s %10s %10s\n", "pid", "program", "extent", "resident",
	       "untrimmable", "trim(0)", "leaked");
	for (size_t i = 0; i < db->nprocs; i++) {
		const struct rp_result *r = res[i];
		const char *exe = db->procs[i].exe ? path_base(db->procs[i].exe) : "?";
		if (!r)
			continue;
		printf("  %8lld  %-14.14s %10s %10s %12s %10s %10s\n", (long long)db->procs[i].pid,
		       exe, fmt_size(a, sizeof(a), r->at.extent),
		       fmt_size(b, sizeof(b), r->at.resident),
		       fmt_size(c, sizeof(c), r->at.untrimmable),
		       fmt_size(d, sizeof(d), r->at.trim_reclaimable),
		       fmt_size(e, sizeof(e), r->leaked_bytes));
	}
	printf("  (trim(0): what malloc_trim(0) would give back; the reports follow)\n\n");
}

/* ---- JSON ---- */

/* A string of the database's: UTF-8 as it is (it was sent byte by byte,
 * so that "é" came out as "Ã©"), what is no UTF-8 as U+FFFD. */
static void
json_str(const char *s)
{
	struct buf b = { 0 };

	if (!s) {
		fputs("null", stdout);
		return;
	}
	json_quote(&b, s, strlen(s));
	fwrite(b.p, 1, b.len, stdout);
	buf_free(&b);
}

static void
json_frame(const struct ld_frame *f)
{
	printf("{\"function\": ");
	json_str(f->function);
	printf(", \"file\": ");
	json_str(f->file);
	if (f->line > 0)
		printf(", \"line\": %lld", (long long)f->line);
	else
		printf(", \"line\": null");
	printf(", \"module\": ");
	json_str(f->module);
	printf(", \"offset\": %llu}", U(f->offset));
}

static void
json_stack(struct ld_db *db, int64_t stack_id)
{
	struct ld_frame f[MAX_FRAMES];
	size_t n = stack_id > 0 ? ld_stack(db, stack_id, f, MAX_FRAMES) : 0;

	putchar('[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			printf(", ");
		json_frame(&f[i]);
	}
	putchar(']');
}

/* The site of a stack (its first frame that is no allocation wrapper),
 * or null. */
static void
json_site(struct ld_db *db, int64_t stack_id)
{
	struct ld_frame f[MAX_FRAMES];
	size_t k = ld_site_index(db, stack_id);
	size_t n = stack_id > 0 && k < MAX_FRAMES ? ld_stack(db, stack_id, f, k + 1) : 0;

	if (n == k + 1)
		json_frame(&f[k]);
	else
		printf("null");
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
	json_str(o->mark ? "mark" : o->at == RP_AT_TIME ? "time" : o->at_name);
	if (o->mark) {
		printf(", \"mark\": ");
		json_str(o->mark);
	}
	printf(", \"at_ns\": %lld, \"past_end\": %s,", (long long)(f->at_ns - t0),
	       r->past_end ? "true" : "false");
	printf(" \"settings\": [");
	for (size_t i = 0; i < p->nsettings; i++) {
		const struct ld_setting *s = &p->settings[i];
		printf("%s{", i ? ", " : "");
		if (s->line) {
			printf("\"line\": ");
			json_str(s->line);
		} else {
			printf("\"mallopt\": ");
			json_str(ld_mallopt_name(s->param));
			printf(", \"param\": %d, \"value\": %d, \"at_ns\": %lld", s->param, s->value,
			       (long long)(s->ns - t0));
		}
		putchar('}');
	}
	printf("],");
	if (note[0]) {
		printf(" \"note\": ");
		json_str(note);
		putchar(',');
	}
	putchar('\n');
	printf("     \"extent_bytes\": %llu, \"resident_bytes\": %llu, \"live_bytes\": %llu, "
	       "\"cached_bytes\": %llu, \"fastbin_bytes\": %llu,\n",
	       U(f->extent), U(f->resident), U(f->live), U(f->cached), U(f->fastbin));
	printf("     \"allocator_bytes\": %llu, \"top_free_bytes\": %llu, "
	       "\"untrimmable_bytes\": %llu, \"untrimmable_resident_bytes\": %llu,\n",
	       U(f->allocator), U(f->top_free), U(f->untrimmable), U(f->untrimmable_resident));
	printf("     \"trim_reclaimable_bytes\": %llu, ", U(f->trim_reclaimable));
	printf("\"trim_top_bytes\": %llu, \"mmap_bytes\": %llu, \"retained_bytes\": %llu,\n",
	       U(f->trim_top), U(f->mmap), U(f->retained));
	printf("     \"interpreter\": %s, \"pymalloc_bytes\": %llu, \"pymalloc_arenas\": %llu, "
	       "\"program_mmap_bytes\": %llu, \"program_mmaps\": %llu,\n",
	       p->cpython ? "\"cpython\"" : "null", U(f->pymalloc), U(f->pymalloc_arenas),
	       U(f->program_mmap), U(f->program_mmaps));
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
		       "\"resident_bytes\": %llu, \"occupied_bytes\": %llu, "
		       "\"untrimmable_bytes\": %llu, \"top_free_bytes\": %llu}",
		       i ? ", " : "", h->kind == HP_BACKING_BRK ? "brk" : "arena", U(h->start),
		       U(h->end - h->start), U(h->resident), U(h->occupied),
		       U(span > h->occupied ? span - h->occupied : 0),
		       U(h->end > top ? h->end - top : 0));
	}
	printf("],\n     \"pins\": [");
	for (size_t i = 0; i < r->npins; i++) {
		const struct rp_pin *pin = &r->pins[i];
		printf("%s\n       {\"address\": %llu, \"chunk_bytes\": %llu, \"state\": \"%s\", "
		       "\"cache\": %s, \"weight_bytes\": %llu, \"age_ns\": %lld, \"chunk_id\": %lld, "
		       "\"stack\": ",
		       i ? "," : "", U(pin->addr), U(pin->bytes), state_name(pin->state),
		       pin->cache == HP_FATE_FASTBIN  ? "\"fastbin\""
		       : pin->cache == HP_FATE_TCACHE ? "\"tcache\""
						 : "null",
		       U(pin->weight), (long long)(pin->alloc_ns ? f->at_ns - pin->alloc_ns : 0),
		       (long long)pin->chunk_id);
		json_stack(db, pin->stack_id);
		printf(", \"site\": ");
		json_site(db, pin->stack_id);
		putchar('}');
	}
	printf("],\n     \"holders\": [");
	for (size_t i = 0; i < r->nholders && i < (size_t)o->top; i++) {
		const struct hm_holder *x = &r->holders[i];
		printf("%s\n       {\"function\": ", i ? "," : "");
		json_str(function_of(db, x->stack_id));
		printf(", \"chunks\": %llu, \"bytes\": %llu, \"keeps_bytes\": %llu, "
		       "\"stack_id\": %lld, \"site\": ",
		       U(x->chunks), U(x->bytes), U(x->keeps), (long long)x->stack_id);
		json_site(db, x->stack_id);
		if (o->by_stack) {
			printf(", \"stack\": ");
			json_stack(db, x->stack_id);
		}
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
			printf(", \"bytes\": %llu, \"chunks\": %llu, \"stack_id\": %lld",
			       U(h->sites[s].bytes), U(h->sites[s].chunks),
			       (long long)h->sites[s].stack_id);
			if (o->by_stack) {
				printf(", \"stack\": ");
				json_stack(db, h->sites[s].stack_id);
			}
			putchar('}');
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
		printf(", \"site\": ");
		json_site(db, l[i].stack_id);
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
	for (size_t i = 0; i < o->nskip; i++)
		ld_skip(db, o->skip[i]);
	if (ld_load(db, o->pid, err, sizeof(err)) != 0) {
		hp_error(o->file, "%s", err);
		ld_close(db);
		return NULL;
	}
	if (!db->complete)
		hp_error(o->file, "the recording did not finish: figures may be incomplete");
	/* a mark no process made, or an instant after every process ended,
	 * is a mistake */
	if (o->mark) {
		size_t have = 0;
		int64_t at;
		struct buf names = { 0 };
		for (size_t i = 0; i < db->nprocs; i++) {
			const struct ld_process *p = &db->procs[i];
			if (!p->wanted)
				continue;
			have += mark_at(p, o, &at);
			for (size_t k = 0; k < p->nmarks && names.len < 200; k++) {
				buf_add(&names, names.len ? ", " : "", names.len ? 2 : 0);
				buf_add(&names, p->marks[k].name, strlen(p->marks[k].name));
			}
		}
		buf_add(&names, "", 1);
		if (!have) {
			hp_error(o->at_name, "no process has this mark (%s%s)",
				 names.len > 1 ? "marks: " : "no marks were made",
				 names.len > 1 ? names.p : "");
			free(names.p);
			ld_close(db);
			return NULL;
		}
		free(names.p);
	} else if (o->at == RP_AT_TIME) {
		const struct ld_process *longest = NULL;
		int64_t most = -1;
		for (size_t i = 0; i < db->nprocs; i++) {
			const struct ld_process *p = &db->procs[i];
			int64_t ran = rp_end_ns(&p->in) - p->in.started_ns;
			if (p->wanted && ran > most) {
				most = ran;
				longest = p;
			}
		}
		if (longest && o->at_ns >= most) {
			hp_error(o->at_name, "--at is past the end: %s %lld ran %.3f s",
				 db->nprocs > 1 ? "the longest process, pid" : "pid",
				 (long long)longest->pid, secs(most));
			ld_close(db);
			return NULL;
		}
	}
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
	bool first = true, missing = false;

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
		struct html_options ho = { o.file, o.output, o.at, o.top, instant_of, &o, advice_text };
		int rc = html_report(db, &ho);
		ld_close(db);
		free(o.skip);
		return rc;
	}
	if (o.json) {
		printf("{\"file\": ");
		json_str(o.file);
		printf(", \"processes\": [");
	}
	/* every process's figures first: with several, a table of them comes
	 * before the reports */
	size_t skipped = 0, n = 0;
	struct rp_result **res = xcalloc(db->nprocs + 1, sizeof(*res));
	char (*notes)[512] = xcalloc(db->nprocs + 1, sizeof(*notes));
	for (size_t i = 0; i < db->nprocs; i++) {
		struct ld_process *p = &db->procs[i];
		int64_t at_ns = o.at_ns;
		if (!p->wanted)
			continue;
		if (o.mark && !mark_at(p, &o, &at_ns)) {
			skipped++;
			continue;
		}
		res[i] = analyze(db, p, &o, at_ns, 0, notes[i], sizeof(notes[i]));
		if (!res[i]) {
			hp_error(o.file, "pid %lld: %s", (long long)p->pid, notes[i]);
			missing = true;
			continue;
		}
		n++;
	}
	if (!o.json && n > 1)
		text_table(db, res, &o, n);
	for (size_t i = 0; i < db->nprocs; i++) {
		if (!res[i])
			continue;
		if (o.json)
			json_process(db, &db->procs[i], res[i], &o, first, notes[i]);
		else
			text_process(db, &db->procs[i], res[i], &o, notes[i]);
		first = false;
		rp_free(res[i]);
	}
	free(res);
	if (o.json)
		printf("\n]}\n");
	if (skipped)
		hp_error(o.at_name, "%zu process%s without this mark not reported", skipped,
			 skipped == 1 ? "" : "es");
	ld_close(db);
	free(o.skip);
	free(notes);
	/* nothing to report is bad input; some processes without figures
	 * (each said why) is a report of the others */
	return missing && first ? 2 : 0;
}

int
cmd_check(int argc, char **argv)
{
	struct opts o;
	struct ld_db *db;
	bool failed = false, unknown = false;
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
	if (o.json) {
		printf("{\"file\": ");
		json_str(o.file);
		printf(", \"checks\": [");
	}
	bool first = true;
	for (size_t i = 0; i < db->nprocs; i++) {
		struct ld_process *p = &db->procs[i];
		int64_t at_ns = o.at_ns;
		if (!p->wanted || (o.mark && !mark_at(p, &o, &at_ns)))
			continue;
		char note[512];
		struct rp_result *r = analyze(db, p, &o, at_ns, 0, note, sizeof(note));
		if (!r) {
			/* a limit that cannot be checked does not pass */
			hp_error(o.file, "pid %lld: %s", (long long)p->pid, note);
			unknown = true;
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
			failed |= !ok;
			snprintf(name, sizeof(name), "%s <= %s", limit_name[k],
				 fmt_size(b, sizeof(b), o.max[k]));
			if (o.json) {
				const struct rp_pin *pin = r->npins ? &r->pins[0] : NULL;
				printf("%s\n  {\"pid\": %lld, \"process_id\": %lld, \"exe\": ",
				       first ? "" : ",", (long long)p->pid, (long long)p->process_id);
				json_str(p->exe);
				printf(", \"limit\": \"%s\", \"bytes\": %llu, \"max_bytes\": %llu, "
				       "\"pass\": %s, \"at\": ",
				       limit_name[k], U(v[k]), U(o.max[k]), ok ? "true" : "false");
				json_str(k >= L_LEAKED ? (k == L_LEAKED ? "exit" : "peak") : o.at_name);
				printf(", \"top_pin\": ");
				if (pin && k < L_LEAKED) {
					printf("{\"state\": \"%s\", \"chunk_bytes\": %llu, \"site\": ",
					       state_name(pin->state), U(pin->bytes));
					json_site(db, pin->stack_id);
					putchar('}');
				} else {
					printf("null");
				}
				putchar('}');
				first = false;
			}
			who[0] = '\0';
			if (wanted > 1)
				snprintf(who, sizeof(who), " (pid %lld)", (long long)p->pid);
			int n = snprintf(line, sizeof(line), "%s %s%s %s %s %s (%llu bytes, limit %llu)",
					 ok ? "PASS" : "FAIL", limit_name[k], who,
					 fmt_size(a, sizeof(a), v[k]), ok ? "<=" : ">", b, U(v[k]),
					 U(o.max[k]));
			if (!ok && top && n > 0 && (size_t)n < sizeof(line))
				snprintf(line + n, sizeof(line) - (size_t)n, "; top pin: %s",
					 top->state == RP_ALLOCATOR ? "the allocator's own memory"
					 : top->state == RP_STASHED
						 ? "free space the allocator keeps in a tcache or fastbin"
						 : ld_site_text(db, top->stack_id, site, sizeof(site)));
			if (!o.json)
				printf("%s\n", line);
			gate_add(&gate, db, p, name, ok, line, top);
		}
		rp_free(r);
	}
	if (o.baseline && !unknown)
		rc = gate_baseline(&gate, db, o.baseline, o.at, o.at_name, instant_of, &o, o.inc, o.json,
				   &first);
	failed |= gate.failed;
	if (o.json)
		printf("\n], \"pass\": %s}\n", failed ? "false" : "true");
	if (rc == 0 && !unknown && o.junit) {
		char suite[600];
		snprintf(suite, sizeof(suite), "heapprof check %s", o.file);
		rc = gate_junit(&gate, o.junit, suite);
	}
	gate_free(&gate);
	ld_close(db);
	free(o.skip);
	return rc ? rc : unknown ? 2 : failed ? 1 : 0;
}
