/* SPDX-License-Identifier: MIT */
/*
 * gate.c - heapprof check's baseline and JUnit report (see gate.h). Prints
 * its verdict lines to stdout like check's own, and its errors as one line
 * on stderr.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "compare.h"
#include "frames.h"
#include "gate.h"
#include "util.h"

#define U(x) ((unsigned long long)(x))
#define STACK_FRAMES 32

static const char *const gate_name[GATE_N] = { "untrimmable", "retained", "leaked", "peak" };

bool
gate_parse_increase(const char *s, struct gate_increase inc[GATE_N])
{
	const char *eq = strchr(s, '=');
	int which = -1;
	struct gate_increase x = { .set = true };

	if (eq) {
		for (int k = 0; k < GATE_N; k++)
			if (strlen(gate_name[k]) == (size_t)(eq - s) &&
			    strncmp(s, gate_name[k], (size_t)(eq - s)) == 0)
				which = k;
		if (which < 0)
			return false;
		s = eq + 1;
	}
	size_t n = strlen(s);
	if (n > 1 && s[n - 1] == '%') {
		char *end;
		errno = 0;
		x.pct = strtod(s, &end);
		if (errno || end != s + n - 1 || !(x.pct >= 0) || x.pct > 1e9 || s[0] == '-' ||
		    s[0] == '+' || s[0] == ' ')
			return false;
		x.percent = true;
	} else if (!parse_size(s, &x.bytes)) {
		return false;
	}
	for (int k = 0; k < GATE_N; k++)
		if (which < 0 || which == k)
			inc[k] = x;
	return true;
}

void
gate_process(struct gate *g, struct ld_process *p, const uint64_t v[GATE_N],
	     const struct rp_pin *top)
{
	g->procs = xrealloc(g->procs, (g->nprocs + 1) * sizeof(*g->procs));
	struct gate_process *x = &g->procs[g->nprocs++];
	memset(x, 0, sizeof(*x));
	x->p = p;
	memcpy(x->v, v, sizeof(x->v));
	if (top) {
		x->has_pin = true;
		x->pin = *top;
	}
}

/* The top pin's stack, a frame a line; NULL if it has none. */
static char *
pin_detail(struct ld_db *db, const struct rp_pin *top)
{
	struct ld_frame f[STACK_FRAMES];
	struct buf b = { 0 };
	char line[600];

	if (!top)
		return NULL;
	if (top->state == RP_ALLOCATOR)
		return xstrdup("the top pin is the allocator's own memory\n");
	if (top->state == RP_STASHED)
		return xstrdup("the top pin is free space the allocator keeps in a tcache or "
			       "fastbin\n");
	size_t n = top->stack_id > 0 ? ld_stack(db, top->stack_id, f, STACK_FRAMES) : 0;
	snprintf(line, sizeof(line), "the top pin: %llu bytes (%s) at 0x%llx, allocated at:\n",
		 U(top->bytes), top->state == RP_LIVE ? "live" : "cached", U(top->addr));
	buf_add(&b, line, strlen(line));
	if (!n)
		buf_add(&b, "    (no stack recorded)\n", 24);
	for (size_t i = 0; i < n; i++) {
		char text[512];
		snprintf(line, sizeof(line), "    %s\n", ld_frame_text(text, sizeof(text), &f[i]));
		buf_add(&b, line, strlen(line));
	}
	buf_add(&b, "", 1);
	return b.p;
}

static void
add_verdict(struct gate *g, const struct ld_process *p, const char *name, bool ok, bool skipped,
	    const char *message, char *detail)
{
	char cls[300], nm[300];

	snprintf(cls, sizeof(cls), "heapprof.%s", p->exe ? path_base(p->exe) : "unknown");
	snprintf(nm, sizeof(nm), "%s (pid %lld)", name, (long long)p->pid);
	g->v = xrealloc(g->v, (g->n + 1) * sizeof(*g->v));
	g->v[g->n++] = (struct gate_verdict){
		.classname = xstrdup(cls),
		.name = xstrdup(nm),
		.ok = ok,
		.skipped = skipped,
		.message = xstrdup(message),
		.detail = detail,
	};
	g->failed |= !ok && !skipped;
}

void
gate_add(struct gate *g, struct ld_db *db, const struct ld_process *p, const char *name, bool ok,
	 const char *message, const struct rp_pin *top)
{
	add_verdict(g, p, name, ok, false, message, ok ? NULL : pin_detail(db, top));
}

/* ---- the baseline ---- */

/* The four figures of a BASE process, as check computes them, at `at`
 * (RP_AT_TIME: at_ns after it started; a snapshot recording: the nearest
 * snapshot, as report takes it). */
static int
base_values(struct ld_db *db, struct ld_process *p, enum rp_at at, int64_t at_ns,
	    uint64_t v[GATE_N], char *err, size_t cap)
{
	struct fr_process x;
	struct fr_request q = {
		.exit = at == RP_AT_EXIT || at == RP_AT_TIME,
		.worst = at == RP_AT_WORST,
		.peak = at == RP_AT_PEAK,
		.times = &at_ns,
		.ntimes = at == RP_AT_TIME,
		.snapshots = at == RP_AT_TIME,
		.strict = true,
		.keep = 1,
	};

	if (fr_analyze(db, p, &q, &x, err, cap) != 0)
		return -1;
	int k = at == RP_AT_WORST ? x.worst : at == RP_AT_PEAK ? x.peak : x.exit;
	if (at == RP_AT_TIME) {
		/* the frame at (or, of snapshots, nearest to) the instant; one
		 * past the end is the end */
		int64_t want = p->in.started_ns + at_ns;
		uint64_t best = UINT64_MAX;
		for (size_t i = 0; i < x.nframes; i++) {
			int64_t t = x.frames[i].r->at.at_ns;
			uint64_t d = t > want ? (uint64_t)(t - want) : (uint64_t)(want - t);
			if (d < best) {
				best = d;
				k = (int)i;
			}
		}
	}
	if (k < 0) {
		snprintf(err, cap, "no frame at the instant");
		fr_free(&x);
		return -1;
	}
	const struct fr_frame *f = &x.frames[k];
	v[GATE_UNTRIMMABLE] = f->r->at.untrimmable;
	v[GATE_RETAINED] = f->r->at.retained;
	v[GATE_LEAKED] = x.leaked_bytes;
	v[GATE_PEAK] = x.peak_live;
	fr_free(&x);
	return 0;
}

static void
json_str(const char *s)
{
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

/* One verdict as an object of check's JSON "checks" array. */
static void
json_verdict(struct ld_db *db, const struct gate_process *x, int k, const uint64_t *was,
	     uint64_t allowed, bool ok, const char *at_name, bool *first)
{
	char site[512];

	printf("%s\n  {\"pid\": %lld, \"process_id\": %lld, \"exe\": ", *first ? "" : ",",
	       (long long)x->p->pid, (long long)x->p->process_id);
	json_str(x->p->exe ? x->p->exe : "");
	printf(", \"limit\": \"%s\", \"baseline\": true, \"bytes\": %llu", gate_name[k],
	       U(x->v[k]));
	if (!was) {
		printf(", \"pass\": null, \"skipped\": \"no process of the baseline matches it\"}");
		*first = false;
		return;
	}
	printf(", \"baseline_bytes\": %llu, \"max_increase_bytes\": %llu, \"pass\": %s, "
	       "\"at\": ",
	       U(*was), U(allowed), ok ? "true" : "false");
	json_str(k == GATE_LEAKED ? "exit" : k == GATE_PEAK ? "peak" : at_name);
	printf(", \"top_pin\": ");
	if (x->has_pin && k < GATE_LEAKED) {
		printf("{\"state\": \"%s\", \"chunk_bytes\": %llu, \"site\": ",
		       x->pin.state == RP_LIVE	   ? "live"
		       : x->pin.state == RP_CACHED ? "cached"
		       : x->pin.state == RP_ALLOCATOR	   ? "allocator"
						   : "stashed",
		       U(x->pin.bytes));
		if (x->pin.state == RP_LIVE || x->pin.state == RP_CACHED)
			json_str(ld_site_text(db, x->pin.stack_id, site, sizeof(site)));
		else
			printf("null");
		putchar('}');
	} else {
		printf("null");
	}
	putchar('}');
	*first = false;
}

int
gate_baseline(struct gate *g, struct ld_db *new_, const char *base_path, enum rp_at at,
	      const char *at_name, bool (*instant)(void *arg, const struct ld_process *p, int64_t *at_ns),
	      void *instant_arg, const struct gate_increase inc[GATE_N], bool json, bool *first)
{
	char err[512];
	struct ld_db *base = ld_open(base_path, err, sizeof(err));
	struct cmp_pair *pairs = NULL;
	size_t unmatched, npairs;
	int rc = 0;

	if (!base) {
		hp_error(base_path, "%s", err);
		return 2;
	}
	if (ld_load(base, 0, err, sizeof(err)) != 0) {
		hp_error(base_path, "%s", err);
		ld_close(base);
		return 2;
	}
	npairs = cmp_match(base, new_, false, &pairs, &unmatched);
	if (npairs == 0) {
		hp_error(base_path, "no process matches one of %s (by program name and arguments)",
			 new_->path);
		rc = 2;
		goto out;
	}
	for (size_t i = 0; i < g->nprocs; i++) {
		const struct gate_process *x = &g->procs[i];
		char who[64] = "", line[1024], name[80];
		struct ld_process *bp = NULL;
		uint64_t bv[GATE_N];
		int64_t at_ns = 0;

		for (size_t k = 0; k < npairs; k++)
			if (pairs[k].new_ == x->p)
				bp = pairs[k].base;
		if (g->nprocs > 1)
			snprintf(who, sizeof(who), " (pid %lld)", (long long)x->p->pid);
		if (bp && at == RP_AT_TIME && !instant(instant_arg, bp, &at_ns)) {
			hp_error(base_path, "pid %lld: no such instant (its marks differ)",
				 (long long)bp->pid);
			rc = 2;
			continue;
		}
		if (bp && base_values(base, bp, at, at_ns, bv, err, sizeof(err)) != 0) {
			hp_error(base_path, "pid %lld: %s", (long long)bp->pid, err);
			rc = 2;
			continue;
		}
		for (int k = 0; k < GATE_N; k++) {
			char a[32], b[32];
			if (!inc[k].set)
				continue;
			snprintf(name, sizeof(name), "%s vs baseline", gate_name[k]);
			if (!bp) {
				snprintf(line, sizeof(line), "SKIP %s%s: no process of %s matches it "
							     "(program name and arguments)",
					 gate_name[k], who, base_path);
				if (json)
					json_verdict(new_, x, k, NULL, 0, true, at_name, first);
				else
					printf("%s\n", line);
				add_verdict(g, x->p, name, true, true, line, NULL);
				continue;
			}
			uint64_t was = bv[k], now = x->v[k];
			uint64_t allowed = inc[k].percent ? (uint64_t)((double)was * inc[k].pct / 100)
							  : inc[k].bytes;
			bool ok = now <= was || now - was <= allowed;
			int n;
			if (inc[k].percent)
				snprintf(b, sizeof(b), "%g%% = %llu", inc[k].pct, U(allowed));
			else
				snprintf(b, sizeof(b), "%llu", U(allowed));
			if (now > was)
				n = snprintf(line, sizeof(line), "%s %s%s grew by %s over the baseline%s "
								 "(baseline %llu bytes, now %llu, limit +%s)",
					     ok ? "PASS" : "FAIL", gate_name[k], who,
					     fmt_size(a, sizeof(a), now - was),
					     ok ? "" : ", more than allowed", U(was), U(now), b);
			else
				n = snprintf(line, sizeof(line), "PASS %s%s %s the baseline "
								 "(baseline %llu bytes, now %llu, limit +%s)",
					     gate_name[k], who,
					     now == was ? "unchanged from" : "shrank from", U(was), U(now), b);
			if (!ok && x->has_pin && n > 0 && (size_t)n < sizeof(line)) {
				char site[512];
				snprintf(line + n, sizeof(line) - (size_t)n, "; top pin: %s",
					 x->pin.state == RP_ALLOCATOR ? "the allocator's own memory"
					 : x->pin.state == RP_STASHED
						 ? "free space the allocator keeps in a tcache or fastbin"
						 : ld_site_text(new_, x->pin.stack_id, site, sizeof(site)));
			}
			if (json)
				json_verdict(new_, x, k, &was, allowed, ok, at_name, first);
			else
				printf("%s\n", line);
			add_verdict(g, x->p, name, ok, false, line,
				    ok ? NULL : pin_detail(new_, x->has_pin ? &x->pin : NULL));
		}
	}
out:
	free(pairs);
	ld_close(base);
	return rc;
}

/* ---- JUnit ---- */

/* Text for an XML attribute or element: the five entities escaped, the
 * characters XML 1.0 forbids (and invalid UTF-8) replaced. */
static void
xml_text(struct buf *b, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		const char *e = NULL;
		switch (*p) {
		case '&': e = "&amp;"; break;
		case '<': e = "&lt;"; break;
		case '>': e = "&gt;"; break;
		case '"': e = "&quot;"; break;
		case '\'': e = "&apos;"; break;
		default: break;
		}
		if (e) {
			buf_add(b, e, strlen(e));
		} else if (*p < 0x20 && *p != '\n' && *p != '\t') {
			buf_add(b, "?", 1);
		} else if (*p >= 0x80) {
			size_t n = *p >= 0xf0 && *p <= 0xf4 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc2 ? 2 : 0;
			size_t i;
			for (i = 1; i < n && (p[i] & 0xc0) == 0x80; i++)
				;
			if (n && i == n) {
				buf_add(b, p, n);
				p += n - 1;
			} else {
				buf_add(b, "?", 1);
			}
		} else {
			buf_add(b, p, 1);
		}
	}
}

static void
xml_add(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

int
gate_junit(const struct gate *g, const char *path, const char *suite)
{
	struct buf b = { 0 };
	size_t failures = 0, skipped = 0;
	char num[256], host[256] = "localhost", stamp[32];
	time_t now = time(NULL);
	struct tm tm;

	for (size_t i = 0; i < g->n; i++) {
		failures += !g->v[i].ok && !g->v[i].skipped;
		skipped += g->v[i].skipped;
	}
	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	xml_add(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
	snprintf(num, sizeof(num), "<testsuites name=\"heapprof check\" tests=\"%zu\" failures=\"%zu\" "
				   "errors=\"0\" skipped=\"%zu\" time=\"0\">\n",
		 g->n, failures, skipped);
	xml_add(&b, num);
	xml_add(&b, "  <testsuite name=\"");
	xml_text(&b, suite);
	snprintf(num, sizeof(num), "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\" "
				   "time=\"0\" timestamp=\"%s\" hostname=\"",
		 g->n, failures, skipped, stamp);
	xml_add(&b, num);
	xml_text(&b, host);
	xml_add(&b, "\">\n");
	for (size_t i = 0; i < g->n; i++) {
		const struct gate_verdict *v = &g->v[i];
		xml_add(&b, "    <testcase classname=\"");
		xml_text(&b, v->classname);
		xml_add(&b, "\" name=\"");
		xml_text(&b, v->name);
		xml_add(&b, "\" time=\"0\"");
		if (v->ok && !v->skipped) {
			xml_add(&b, "/>\n");
			continue;
		}
		xml_add(&b, v->skipped ? ">\n      <skipped message=\"" : ">\n      <failure message=\"");
		xml_text(&b, v->message);
		if (v->skipped) {
			xml_add(&b, "\"/>\n    </testcase>\n");
			continue;
		}
		xml_add(&b, "\" type=\"heapprof.limit\">");
		xml_text(&b, v->message);
		xml_add(&b, "\n");
		if (v->detail)
			xml_text(&b, v->detail);
		xml_add(&b, "</failure>\n    </testcase>\n");
	}
	xml_add(&b, "  </testsuite>\n</testsuites>\n");

	/* a temporary file beside it, renamed over it when whole */
	size_t len = strlen(path);
	char *tmp = xmalloc(len + 16);
	snprintf(tmp, len + 16, "%s.XXXXXX", path);
	int fd = mkstemp(tmp), rc = 0;
	if (fd < 0) {
		hp_error(path, "cannot write: %s", strerror(errno));
		rc = 2;
	} else {
		mode_t mask = umask(0);
		umask(mask);
		fchmod(fd, 0666 & ~mask);
		size_t off = 0;
		while (off < b.len) {
			ssize_t w = write(fd, b.p + off, b.len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		bool whole = off == b.len;
		if (close(fd) != 0)
			whole = false;
		if (!whole || rename(tmp, path) != 0) {
			hp_error(path, "cannot write: %s", strerror(errno ? errno : EIO));
			unlink(tmp);
			rc = 2;
		}
	}
	free(tmp);
	buf_free(&b);
	return rc;
}

void
gate_free(struct gate *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->v[i].classname);
		free(g->v[i].name);
		free(g->v[i].message);
		free(g->v[i].detail);
	}
	free(g->v);
	free(g->procs);
	memset(g, 0, sizeof(*g));
}
