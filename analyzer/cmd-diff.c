/* SPDX-License-Identifier: MIT */
/*
 * cmd-diff.c - `heapprof diff BASE NEW`: two recordings of a program side
 * by side (the last good run and this one, a program and its fix). Per
 * process, matched by program name and arguments (compare.h) or by --pid,
 * the change of every figure at the end, the worst instant and the peak,
 * and the sites whose untrimmable, retained, pinned or leaked bytes changed
 * most, by function and by stack. Text or JSON.
 *
 * Exit status: 0 (the changes are printed, whatever they are), 2 on bad
 * usage or input (an unreadable database, no process to compare).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "compare.h"
#include "frames.h"
#include "load.h"
#include "util.h"

#define U(x) ((unsigned long long)(x))

struct diff_opts {
	const char *base, *new_;
	int64_t base_pid, new_pid;
	enum rp_at at;
	const char *at_name;
	bool json;
	long top;
};

static void
usage(FILE *f)
{
	fputs("usage: heapprof diff BASE NEW [--pid BASE_PID:NEW_PID] [--at exit|worst|peak]\n"
	      "                     [--format text|json] [--top N]\n"
	      "\n"
	      "  Options take their value as --opt VALUE or --opt=VALUE.\n"
	      "  the change of every figure of each process from BASE to NEW at its end,\n"
	      "  its worst instant and its peak, and the sites whose untrimmable, retained,\n"
	      "  pinned or leaked bytes changed most (at --at, the end by default).\n"
	      "  Processes are matched by program name and arguments; --pid pairs two.\n",
	      f);
}

static int
parse(int argc, char **argv, struct diff_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->at = RP_AT_EXIT;
	o->at_name = "exit";
	o->top = 10;
	static const char *const value_opts[] = { "--pid", "--at", "--format", "--top" };

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL, *name = NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (a[0] != '-' || strcmp(a, "-") == 0) {
			if (o->new_) {
				hp_error(a, "two databases: BASE and NEW");
				return 2;
			}
			*(o->base ? &o->new_ : &o->base) = a;
			continue;
		}
		name = hp_value_option(argc, argv, &i, value_opts,
				       sizeof(value_opts) / sizeof(value_opts[0]), &v, "diff");
		if (!name)
			return 2;
		a = name;
		if (strcmp(a, "--pid") == 0) {
			long b, n;
			const char *colon = strchr(v, ':');
			char head[32];
			if (!colon || (size_t)(colon - v) >= sizeof(head)) {
				hp_error(v, "--pid takes BASE_PID:NEW_PID");
				return 2;
			}
			memcpy(head, v, (size_t)(colon - v));
			head[colon - v] = '\0';
			if (!parse_long(head, 1, 1L << 30, &b) || !parse_long(colon + 1, 1, 1L << 30, &n)) {
				hp_error(v, "--pid takes BASE_PID:NEW_PID");
				return 2;
			}
			o->base_pid = b;
			o->new_pid = n;
		} else if (strcmp(a, "--at") == 0) {
			o->at_name = v;
			if (strcmp(v, "exit") == 0)
				o->at = RP_AT_EXIT;
			else if (strcmp(v, "worst") == 0)
				o->at = RP_AT_WORST;
			else if (strcmp(v, "peak") == 0)
				o->at = RP_AT_PEAK;
			else {
				hp_error(v, "--at takes exit, worst or peak");
				return 2;
			}
		} else if (strcmp(a, "--format") == 0) {
			o->json = strcmp(v, "json") == 0;
			if (!o->json && strcmp(v, "text") != 0) {
				hp_error(v, "--format takes text or json");
				return 2;
			}
		} else {
			if (!parse_long(v, 0, 100000, &o->top)) {
				hp_error(v, "--top takes a number, 0 to 100000");
				return 2;
			}
		}
	}
	if (!o->new_) {
		hp_error("diff", "which databases? (heapprof diff BASE NEW)");
		return 2;
	}
	return 0;
}

static struct ld_db *
open_one(const char *path, int64_t pid)
{
	char err[512];
	struct ld_db *db = ld_open(path, err, sizeof(err));

	if (!db) {
		hp_error(path, "%s", err);
		return NULL;
	}
	if (ld_load(db, pid, err, sizeof(err)) != 0) {
		hp_error(path, "%s", err);
		ld_close(db);
		return NULL;
	}
	if (!db->complete)
		hp_error(path, "the recording did not finish: figures may be incomplete");
	return db;
}

/* ---- the figures ---- */

/* The figures of the JSON report (its keys without _bytes), in its order. */
enum { F_EXTENT, F_RESIDENT, F_LIVE, F_CACHED, F_FASTBIN, F_ALLOCATOR, F_TOP_FREE,
       F_UNTRIMMABLE, F_UNTRIMMABLE_RESIDENT, F_TRIM, F_TRIM_TOP, F_MMAP, F_RETAINED,
       F_PYMALLOC, F_PROGRAM_MMAP, F_N };
static const char *const fig_key[F_N] = {
	"extent", "resident", "live", "cached", "fastbin", "allocator", "top_free", "untrimmable",
	"untrimmable_resident", "trim_reclaimable", "trim_top", "mmap", "retained", "pymalloc",
	"program_mmap"
};
static const char *const fig_name[F_N] = {
	"heap extent", "  resident", "live", "cached", "  in fastbins", "allocator's own",
	"top free", "untrimmable", "  resident", "malloc_trim(0)", "  of the top", "mmap",
	"retained", "pymalloc", "other mmaps"
};

static void
fig_values(const struct rp_figures *f, uint64_t *v)
{
	v[F_EXTENT] = f->extent;
	v[F_RESIDENT] = f->resident;
	v[F_LIVE] = f->live;
	v[F_CACHED] = f->cached;
	v[F_FASTBIN] = f->fastbin;
	v[F_ALLOCATOR] = f->allocator;
	v[F_TOP_FREE] = f->top_free;
	v[F_UNTRIMMABLE] = f->untrimmable;
	v[F_UNTRIMMABLE_RESIDENT] = f->untrimmable_resident;
	v[F_TRIM] = f->trim_reclaimable;
	v[F_TRIM_TOP] = f->trim_top;
	v[F_MMAP] = f->mmap;
	v[F_RETAINED] = f->retained;
	v[F_PYMALLOC] = f->pymalloc;
	v[F_PROGRAM_MMAP] = f->program_mmap;
}

enum { R_PEAK_LIVE, R_PEAK_EXTENT, R_WORST, R_LEAKED, R_N };
static const char *const run_key[R_N] = { "peak_live", "peak_extent", "worst_untrimmable",
					  "leaked" };
static const char *const run_name[R_N] = { "peak live", "peak extent", "worst untrimmable",
					   "leaked" };

static void
run_values(const struct fr_process *x, uint64_t *v)
{
	v[R_PEAK_LIVE] = x->peak_live;
	v[R_PEAK_EXTENT] = x->peak_extent;
	v[R_WORST] = x->worst_untrimmable;
	v[R_LEAKED] = x->leaked_bytes;
}

static const char *
signed_size(char *buf, size_t cap, uint64_t base, uint64_t new_)
{
	char s[32];

	if (new_ == base)
		return snprintf(buf, cap, "0"), buf;
	fmt_size(s, sizeof(s), new_ > base ? new_ - base : base - new_);
	snprintf(buf, cap, "%c%s", new_ > base ? '+' : '-', s);
	return buf;
}

static long long
sdelta(uint64_t base, uint64_t new_)
{
	return (long long)new_ - (long long)base;
}

static const struct fr_frame *
frame_at(const struct fr_process *x, enum rp_at at)
{
	int k = at == RP_AT_WORST ? x->worst : at == RP_AT_PEAK ? x->peak : x->exit;

	return k >= 0 ? &x->frames[k] : NULL;
}

/* ---- text ---- */

static void
text_row(const char *name, uint64_t b, uint64_t n)
{
	char x[32], y[32], d[40];

	printf("    %-26s %12s %12s %12s\n", name, fmt_size(x, sizeof(x), b), fmt_size(y, sizeof(y), n),
	       signed_size(d, sizeof(d), b, n));
}

static void
text_sites(struct ld_db *bdb, struct ld_db *ndb, const struct cmp_site *v, size_t n, long top,
	   bool by_function, const char *at)
{
	char site[512], a[40], b[40], c[40], d[40];
	size_t shown = 0;

	printf("  sites by %s, the largest changes (at %s; leaked: at the end)\n",
	       by_function ? "function" : "stack", at);
	printf("    %12s %12s %12s %12s  %s\n", "untrimmable", "retained", "pinned", "leaked",
	       by_function ? "function" : "stack (innermost frame)");
	for (size_t i = 0; i < n && shown < (size_t)top; i++) {
		const struct cmp_site *s = &v[i];
		if (!cmp_site_change(s))
			break;
		if (s->in_new)
			ld_site_text(ndb, s->new_.stack_id, site, sizeof(site));
		else
			ld_site_text(bdb, s->base.stack_id, site, sizeof(site));
		printf("    %12s %12s %12s %12s  %s%s\n",
		       signed_size(a, sizeof(a), s->base.untrimmable, s->new_.untrimmable),
		       signed_size(b, sizeof(b), fr_retained(&s->base), fr_retained(&s->new_)),
		       signed_size(c, sizeof(c), s->base.pinned, s->new_.pinned),
		       signed_size(d, sizeof(d), s->base.leaked, s->new_.leaked), site,
		       !s->in_base ? " (only in NEW)" : !s->in_new ? " (only in BASE)" : "");
		shown++;
	}
	if (!shown)
		printf("    (no change)\n");
}

static void
text_pair(struct ld_db *bdb, const struct fr_process *xb, struct ld_db *ndb,
	  const struct fr_process *xn, const struct diff_opts *o)
{
	char name[512];
	static const enum rp_at ats[3] = { RP_AT_EXIT, RP_AT_WORST, RP_AT_PEAK };
	static const char *const at_names[3] = { "exit", "worst", "peak" };

	printf("process %s (pid %lld -> %lld)\n", cmp_name(ndb, xn->p, name, sizeof(name)),
	       (long long)xb->p->pid, (long long)xn->p->pid);
	char sb[1024], sn[1024];
	text_safe((char *)ld_settings_text(xb->p, sb, sizeof(sb)));
	text_safe((char *)ld_settings_text(xn->p, sn, sizeof(sn)));
	if (strcmp(sb, sn) != 0)
		printf("  allocator settings: %s -> %s\n", sb[0] ? sb : "glibc's defaults",
		       sn[0] ? sn : "glibc's defaults");
	printf("    %-26s %12s %12s %12s\n", "", "base", "new", "change");
	for (int k = 0; k < 3; k++) {
		const struct fr_frame *fb = frame_at(xb, ats[k]), *fn = frame_at(xn, ats[k]);
		uint64_t vb[F_N], vn[F_N];
		fig_values(&fb->r->at, vb);
		fig_values(&fn->r->at, vn);
		printf("  at %s (%.3f s -> %.3f s)\n", at_names[k],
		       (double)(fb->r->at.at_ns - xb->p->in.started_ns) / 1e9,
		       (double)(fn->r->at.at_ns - xn->p->in.started_ns) / 1e9);
		for (int f = 0; f < F_N; f++)
			if (vb[f] || vn[f] || f < F_PYMALLOC)
				text_row(fig_name[f], vb[f], vn[f]);
	}
	uint64_t rb[R_N], rn[R_N];
	run_values(xb, rb);
	run_values(xn, rn);
	printf("  over the run\n");
	for (int f = 0; f < R_N; f++)
		text_row(run_name[f], rb[f], rn[f]);
	for (int by_fn = 1; by_fn >= 0; by_fn--) {
		struct cmp_site *v;
		size_t n = cmp_sites(bdb, xb, frame_at(xb, o->at), ndb, xn, frame_at(xn, o->at), by_fn,
				     &v);
		text_sites(bdb, ndb, v, n, o->top, by_fn, o->at_name);
		cmp_sites_free(v, n);
	}
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
json_triple(const char *key, uint64_t b, uint64_t n, bool comma)
{
	printf("%s\"%s_base_bytes\": %llu, \"%s_new_bytes\": %llu, \"%s_delta_bytes\": %lld",
	       comma ? ", " : "", key, U(b), key, U(n), key, sdelta(b, n));
}

static void
json_figures(const struct fr_frame *fb, const struct fr_frame *fn, int64_t tb, int64_t tn)
{
	uint64_t vb[F_N], vn[F_N];

	fig_values(&fb->r->at, vb);
	fig_values(&fn->r->at, vn);
	printf("\"base_at_ns\": %lld, \"new_at_ns\": %lld", (long long)(fb->r->at.at_ns - tb),
	       (long long)(fn->r->at.at_ns - tn));
	for (int f = 0; f < F_N; f++)
		json_triple(fig_key[f], vb[f], vn[f], true);
}

static void
json_stack_names(const char *key)
{
	/* the stack's function names, innermost first (the key's order) */
	putchar('[');
	for (const char *p = key, *q; *p; p = *q ? q + 1 : q) {
		q = strchr(p, ';');
		if (!q)
			q = p + strlen(p);
		char *name = xmalloc((size_t)(q - p) + 1);
		memcpy(name, p, (size_t)(q - p));
		name[q - p] = '\0';
		if (p != key)
			fputs(", ", stdout);
		json_str(name);
		free(name);
	}
	putchar(']');
}

static void
json_sites(struct ld_db *bdb, struct ld_db *ndb, const struct cmp_site *v, size_t n, long top,
	   bool by_function)
{
	char site[512];
	size_t shown = 0;

	for (size_t i = 0; i < n && shown < (size_t)top; i++) {
		const struct cmp_site *s = &v[i];
		if (!cmp_site_change(s))
			break;
		printf("%s\n       {", shown ? "," : "");
		if (by_function) {
			printf("\"function\": ");
			json_str(s->key);
		} else {
			printf("\"stack\": ");
			json_stack_names(s->key);
		}
		printf(", \"site\": ");
		json_str(s->in_new ? ld_site_text(ndb, s->new_.stack_id, site, sizeof(site))
				   : ld_site_text(bdb, s->base.stack_id, site, sizeof(site)));
		printf(", \"in_base\": %s, \"in_new\": %s", s->in_base ? "true" : "false",
		       s->in_new ? "true" : "false");
		json_triple("untrimmable", s->base.untrimmable, s->new_.untrimmable, true);
		json_triple("retained", fr_retained(&s->base), fr_retained(&s->new_), true);
		json_triple("pinned", s->base.pinned, s->new_.pinned, true);
		json_triple("leaked", s->base.leaked, s->new_.leaked, true);
		putchar('}');
		shown++;
	}
}

static void
json_pair(struct ld_db *bdb, const struct fr_process *xb, struct ld_db *ndb,
	  const struct fr_process *xn, const struct diff_opts *o, bool first)
{
	static const enum rp_at ats[3] = { RP_AT_EXIT, RP_AT_WORST, RP_AT_PEAK };
	static const char *const at_names[3] = { "exit", "worst", "peak" };
	int64_t tb = xb->p->in.started_ns, tn = xn->p->in.started_ns;

	printf("%s\n    {\"program\": ", first ? "" : ",");
	json_str(path_base(xn->p->exe));
	printf(", \"args\": %s, \"base_pid\": %lld, \"new_pid\": %lld, \"base_process_id\": %lld, "
	       "\"new_process_id\": %lld, \"at\": \"%s\",\n     ",
	       ld_args_json(ndb, xn->p->process_id)[0] ? ld_args_json(ndb, xn->p->process_id)
						       : "null",
	       (long long)xb->p->pid, (long long)xn->p->pid, (long long)xb->p->process_id,
	       (long long)xn->p->process_id, o->at_name);
	/* the figures at --at, and over the run */
	json_figures(frame_at(xb, o->at), frame_at(xn, o->at), tb, tn);
	uint64_t rb[R_N], rn[R_N];
	run_values(xb, rb);
	run_values(xn, rn);
	for (int f = 0; f < R_N; f++)
		json_triple(run_key[f], rb[f], rn[f], true);
	printf(", \"leaked_base_chunks\": %llu, \"leaked_new_chunks\": %llu",
	       U(xb->leaked_chunks), U(xn->leaked_chunks));
	char sb[1024], sn[1024];
	printf(", \"settings_base\": ");
	json_str(ld_settings_text(xb->p, sb, sizeof(sb)));
	printf(", \"settings_new\": ");
	json_str(ld_settings_text(xn->p, sn, sizeof(sn)));
	for (int k = 0; k < 3; k++) {
		printf(",\n     \"%s\": {", at_names[k]);
		json_figures(frame_at(xb, ats[k]), frame_at(xn, ats[k]), tb, tn);
		putchar('}');
	}
	for (int by_fn = 1; by_fn >= 0; by_fn--) {
		struct cmp_site *v;
		size_t n = cmp_sites(bdb, xb, frame_at(xb, o->at), ndb, xn, frame_at(xn, o->at), by_fn,
				     &v);
		printf(",\n     \"sites_by_%s\": [", by_fn ? "function" : "stack");
		json_sites(bdb, ndb, v, n, o->top, by_fn);
		putchar(']');
		cmp_sites_free(v, n);
	}
	printf("}");
}

int
cmd_diff(int argc, char **argv)
{
	struct diff_opts o;
	struct ld_db *bdb = NULL, *ndb = NULL;
	struct cmp_pair *pairs = NULL;
	size_t unmatched, n;
	int rc = 2;

	if (parse(argc, argv, &o) != 0)
		return 2;
	if (!(bdb = open_one(o.base, o.base_pid)) || !(ndb = open_one(o.new_, o.new_pid)))
		goto out;
	n = cmp_match(bdb, ndb, o.base_pid != 0, &pairs, &unmatched);
	if (n == 0) {
		hp_error(o.new_, "no process matches one of %s (by program name and arguments; "
				 "--pid BASE_PID:NEW_PID pairs two)",
			 o.base);
		goto out;
	}
	if (unmatched)
		hp_error(o.new_, "%zu process%s without a match in %s, left out", unmatched,
			 unmatched == 1 ? "" : "es", o.base);
	if (o.json) {
		printf("{\"base\": ");
		json_str(o.base);
		printf(", \"new\": ");
		json_str(o.new_);
		printf(", \"processes\": [");
	} else {
		printf("heapprof diff %s %s\n\n", o.base, o.new_);
	}
	struct fr_request q = { .exit = true, .worst = true, .peak = true, .strict = true,
				.keep = 1 };
	bool first = true;
	rc = 0;
	for (size_t i = 0; i < n; i++) {
		struct fr_process xb, xn;
		char err[512];
		if (fr_analyze(bdb, pairs[i].base, &q, &xb, err, sizeof(err)) != 0) {
			hp_error(o.base, "pid %lld: %s", (long long)pairs[i].base->pid, err);
			rc = 2;
			continue;
		}
		if (fr_analyze(ndb, pairs[i].new_, &q, &xn, err, sizeof(err)) != 0) {
			hp_error(o.new_, "pid %lld: %s", (long long)pairs[i].new_->pid, err);
			fr_free(&xb);
			rc = 2;
			continue;
		}
		if (o.json)
			json_pair(bdb, &xb, ndb, &xn, &o, first);
		else
			text_pair(bdb, &xb, ndb, &xn, &o);
		first = false;
		fr_free(&xb);
		fr_free(&xn);
	}
	if (o.json)
		printf("\n]}\n");
out:
	free(pairs);
	ld_close(ndb);
	ld_close(bdb);
	return rc;
}
