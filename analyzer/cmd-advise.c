/* SPDX-License-Identifier: MIT */
/*
 * cmd-advise.c - heapprof advise: which allocator setting or policy would
 * give the memory back. Each process's requests (advise.h) are replayed
 * through heapprof's glibc heap code once with the recorded settings (a
 * self-check: every chunk must land where the recording had it) and once
 * per candidate setting, and through the textbook policies (policy.h);
 * the candidates are ranked by what they retain at the end.
 *
 * Each replay runs in a forked child (the allocator's state is global, and
 * a crash stays the child's), as many at once as there are processors; a
 * child sends its figures back over a pipe.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "advise.h"
#include "cmd.h"
#include "events.h"
#include "load.h"
#include "policy.h"
#include "tune.h"
#include "util.h"

struct advise_opts {
	const char *path;
	long pid;
	bool json;
	bool no_policies;
	long jobs;
};

/* One candidate: glibc with settings, or a textbook policy. */
struct cand {
	char setting[HP_SETTING_MAX]; /* the environment line ("" recorded) */
	bool is_env;           /* setting is an environment line */
	uint64_t trim_every;   /* malloc_trim(0) every N frees */
	int policy;            /* -1: glibc; else policy.h's index */
	bool recorded;
	/* the result */
	bool done;
	char failed[160];
	struct adv_figs f;
	double seconds;
};

struct wire {                  /* what a child sends back */
	struct adv_figs f;
	double seconds;
	char err[160];
	int ok;
};

static void
usage(FILE *f)
{
	fputs("usage: heapprof advise FILE [--pid PID] [--format text|json] [--no-policies]\n"
	      "                            [--jobs N]\n"
	      "\n"
	      "Replay each process's recorded requests through heapprof's glibc allocator with\n"
	      "the recorded settings (which must put every chunk where the recording did), with\n"
	      "candidate settings (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_,\n"
	      "MALLOC_ARENA_MAX, tcache_count, malloc_trim(0) every N frees) and through the\n"
	      "textbook policies; rank them by the bytes retained at the end and name the one\n"
	      "setting to try. --no-policies: glibc only. --jobs N: replays at once (default:\n"
	      "the processors). Exit status: 0, 1 if the self-check failed, 2 bad input.\n",
	      f);
}

static int
parse(int argc, char **argv, struct advise_opts *o)
{
	static const char *const value_opts[] = { "--pid", "--format", "--jobs" };

	memset(o, 0, sizeof(*o));
	o->jobs = sysconf(_SC_NPROCESSORS_ONLN);
	if (o->jobs < 1)
		o->jobs = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = NULL, *name = NULL;
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (a[0] != '-' || strcmp(a, "-") == 0) {
			if (o->path) {
				hp_error(a, "one database only");
				return 2;
			}
			o->path = a;
			continue;
		}
		if (strcmp(a, "--no-policies") == 0) {
			o->no_policies = true;
			continue;
		}
		name = hp_value_option(argc, argv, &i, value_opts,
				       sizeof(value_opts) / sizeof(value_opts[0]), &v, "advise");
		if (!name)
			return 2;
		if (strcmp(name, "--pid") == 0) {
			if (!parse_long(v, 1, 1L << 30, &o->pid)) {
				hp_error(v, "--pid takes a process id");
				return 2;
			}
		} else if (strcmp(name, "--format") == 0) {
			o->json = strcmp(v, "json") == 0;
			if (!o->json && strcmp(v, "text") != 0) {
				hp_error(v, "--format takes text or json");
				return 2;
			}
		} else if (!parse_long(v, 1, 64, &o->jobs)) {
			hp_error(v, "--jobs takes a number, 1 to 64");
			return 2;
		}
	}
	if (!o->path) {
		hp_error("advise", "which database? (heapprof advise FILE)");
		return 2;
	}
	return 0;
}

/* ---- candidates ---- */

static struct cand *
add_cand(struct cand **c, size_t *n, const char *setting)
{
	*c = xrealloc(*c, (*n + 1) * sizeof(**c));
	struct cand *x = &(*c)[(*n)++];
	memset(x, 0, sizeof(*x));
	x->policy = -1;
	snprintf(x->setting, sizeof(x->setting), "%s", setting);
	x->is_env = setting[0] && strchr(setting, '=') && !strchr(setting, ' ');
	return x;
}

static int
by_bytes(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return (x[1] < y[1]) - (x[1] > y[1]);
}

/* mmap thresholds worth trying: 32 and 64 KiB, and those that would put
 * the requests which take the most brk bytes in mid sizes (4 KiB up to the
 * default threshold) into mmap chunks of their own. */
static size_t
thresholds(const struct adv_seq *s, uint64_t *out)
{
	uint64_t (*sz)[2] = xcalloc(64, sizeof(*sz));
	size_t n = 0, nsz = 0;

	for (size_t i = 0; i < s->nreqs; i++) {
		const struct adv_req *r = &s->reqs[i];
		if ((r->op != ADV_MALLOC && r->op != ADV_CALLOC && r->op != ADV_REALLOC) ||
		    r->size < 4096 || r->size >= 128 * 1024)
			continue;
		uint64_t page = (r->size + 4095) / 4096 * 4096 - 4096;
		size_t j;
		for (j = 0; j < nsz && sz[j][0] != page; j++)
			;
		if (j == nsz) {
			if (nsz == 64)
				continue;
			sz[nsz][0] = page;
			sz[nsz++][1] = 0;
		}
		sz[j][1] += r->size;
	}
	qsort(sz, nsz, sizeof(*sz), by_bytes);
	out[n++] = 32768;
	out[n++] = 65536;
	for (size_t j = 0; j < nsz && j < 2; j++) {
		uint64_t t = sz[j][0] ? sz[j][0] : 4096;
		bool dup = false;
		for (size_t k = 0; k < n; k++)
			dup |= out[k] == t;
		if (!dup)
			out[n++] = t;
	}
	free(sz);
	return n;
}

static void
candidates(const struct adv_seq *s, bool policies, struct cand **c, size_t *n)
{
	uint64_t t[4];
	size_t nt = thresholds(s, t);
	size_t frees = 0;
	char line[96];

	add_cand(c, n, "")->recorded = true;
	for (size_t i = 0; i < nt; i++) {
		snprintf(line, sizeof(line), "MALLOC_MMAP_THRESHOLD_=%llu", (unsigned long long)t[i]);
		add_cand(c, n, line);
	}
	add_cand(c, n, "MALLOC_TRIM_THRESHOLD_=0");
	add_cand(c, n, "MALLOC_TOP_PAD_=0");
	if (s->nthreads > 1) {
		add_cand(c, n, "MALLOC_ARENA_MAX=1");
		add_cand(c, n, "MALLOC_ARENA_MAX=2");
	}
	add_cand(c, n, "GLIBC_TUNABLES=glibc.malloc.tcache_count=0");
	for (size_t i = 0; i < s->nreqs; i++)
		frees += s->reqs[i].op == ADV_FREE;
	for (uint64_t every = 1000; every <= 100000; every *= 100)
		if (frees >= every) {
			snprintf(line, sizeof(line), "malloc_trim(0) every %llu frees",
				 (unsigned long long)every);
			add_cand(c, n, line)->trim_every = every;
		}
	/* the line to paste where the program ran with settings of its own:
	 * a GLIBC_TUNABLES candidate keeps the recorded tunables */
	for (size_t i = 0; i < *n; i++) {
		struct cand *x = &(*c)[i];
		char *buf[HP_TUNE_LINES_MAX + 2], store[HP_SETTING_MAX], merged[HP_SETTING_MAX];
		if (x->is_env) {
			adv_env(s, x->setting, buf, store, sizeof(store), merged, sizeof(merged));
			memcpy(x->setting, merged, sizeof(merged));
		}
	}
	if (!policies)
		return;
	for (int p = 0; p < POL_COUNT; p++) {
		struct cand *x = add_cand(c, n, "");
		x->policy = p;
	}
}

/* ---- running them ---- */

static void
child(const struct adv_seq *s, const struct cand *c, int fd)
{
	struct wire w;
	struct timespec t0, t1;
	char *env[HP_TUNE_LINES_MAX + 2], store[HP_SETTING_MAX], line[HP_SETTING_MAX];
	int r;

	memset(&w, 0, sizeof(w));
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	if (c->policy < 0)
		r = adv_glibc_run(s, adv_env(s, c->is_env ? c->setting : NULL, env, store,
					     sizeof(store), line, sizeof(line)),
				  c->trim_every, c->recorded, &w.f, w.err, sizeof(w.err));
	else
		r = adv_policy_run(s, c->policy, &w.f, w.err, sizeof(w.err));
	w.ok = r == 0;
	/* the replay's processor time: what it costs, whatever else runs */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
	w.seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (write(fd, &w, sizeof(w)) != (ssize_t)sizeof(w))
		_exit(3);
	_exit(0);
}

struct running {
	pid_t pid;
	int fd;
	size_t cand;
};

static void
finish(struct cand *c, struct running *r)
{
	struct wire w;
	int status = 0;
	ssize_t n;

	/* the child wrote its figures (less than a pipe holds) and exited,
	 * or it died: either way its end of the pipe is closed */
	do
		n = read(r->fd, &w, sizeof(w));
	while (n < 0 && errno == EINTR);
	close(r->fd);
	while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
		;
	c->done = true;
	if (n == (ssize_t)sizeof(w) && w.ok) {
		c->f = w.f;
		c->seconds = w.seconds;
	} else if (n == (ssize_t)sizeof(w)) {
		snprintf(c->failed, sizeof(c->failed), "%s", w.err);
	} else if (WIFSIGNALED(status)) {
		snprintf(c->failed, sizeof(c->failed), "the replay died of signal %d%s",
			 WTERMSIG(status),
			 WTERMSIG(status) == 6 ? " (the allocator found its heap corrupt)" : "");
	} else {
		snprintf(c->failed, sizeof(c->failed), "the replay failed");
	}
}

static int
run_all(const struct adv_seq *s, struct cand *c, size_t n, long jobs)
{
	struct running run[64];
	struct pollfd pf[64];
	size_t next = 0, active = 0;

	fflush(stdout);
	fflush(stderr);
	while (next < n || active) {
		if (next < n && active < (size_t)jobs) {
			int p[2];
			if (pipe(p) != 0) {
				hp_error("advise", "pipe: %s", strerror(errno));
				return -1;
			}
			pid_t pid = fork();
			if (pid < 0) {
				hp_error("advise", "fork: %s", strerror(errno));
				close(p[0]);
				close(p[1]);
				return -1;
			}
			if (pid == 0) {
				close(p[0]);
				child(s, &c[next], p[1]);
			}
			close(p[1]);
			run[active++] = (struct running){ pid, p[0], next++ };
			continue;
		}
		for (size_t i = 0; i < active; i++)
			pf[i] = (struct pollfd){ .fd = run[i].fd, .events = POLLIN };
		if (poll(pf, active, -1) < 0 && errno != EINTR) {
			hp_error("advise", "poll: %s", strerror(errno));
			return -1;
		}
		for (size_t i = active; i-- > 0;)
			if (pf[i].revents) {
				finish(&c[run[i].cand], &run[i]);
				run[i] = run[--active];
			}
	}
	return 0;
}

/* ---- ranking and output ---- */

static const char *
cand_name(const struct cand *c, char *buf, size_t cap)
{
	if (c->policy >= 0)
		snprintf(buf, cap, "%s", pol_name(c->policy));
	else if (c->recorded)
		snprintf(buf, cap, "recorded settings");
	else
		snprintf(buf, cap, "%s", c->setting);
	return buf;
}

/* What a candidate keeps from the kernel that it need not: the ranking's
 * key (lower is better). */
static uint64_t
score(const struct cand *c)
{
	return c->f.retained + c->f.worst_untrimmable;
}

static const struct cand *sort_c;

static int
by_score(const void *a, const void *b)
{
	const struct cand *x = &sort_c[*(const size_t *)a], *y = &sort_c[*(const size_t *)b];
	bool fx = x->failed[0], fy = y->failed[0];

	if (fx != fy)
		return fx - fy;
	if (score(x) != score(y))
		return score(x) < score(y) ? -1 : 1;
	if (x->f.peak_rss != y->f.peak_rss)
		return x->f.peak_rss < y->f.peak_rss ? -1 : 1;
	return (*(const size_t *)a > *(const size_t *)b) - (*(const size_t *)a < *(const size_t *)b);
}

/* The one setting to try: the best glibc candidate that is an environment
 * line and saves at least 64 KiB and 1% of what the recorded settings
 * keep; NULL if none does. */
static const struct cand *
recommend(const struct cand *c, const size_t *order, size_t n, const struct cand *rec)
{
	uint64_t base = score(rec);

	for (size_t k = 0; k < n; k++) {
		const struct cand *x = &c[order[k]];
		if (x->failed[0] || x->policy >= 0 || x->recorded || !x->is_env)
			continue;
		uint64_t s = score(x);
		if (s < base && base - s >= 65536 && base - s >= base / 100)
			return x;
		return NULL;
	}
	return NULL;
}

static void
change(char *buf, size_t cap, uint64_t from, uint64_t to)
{
	char a[32];

	if (to == from)
		snprintf(buf, cap, "=");
	else
		snprintf(buf, cap, "%s%s", to < from ? "-" : "+",
			 fmt_size(a, sizeof(a), to < from ? from - to : to - from));
}

static void
pin_text(struct ld_db *db, const struct adv_seq *s, const struct adv_figs *f, char *buf,
	 size_t cap)
{
	char site[512], size[32];
	int64_t stack_id = 0;
	sqlite3_stmt *st;

	if (f->top_pin_object && f->top_pin_object <= s->nobjects &&
	    sqlite3_prepare_v2(db->h, "SELECT stack_id FROM chunk WHERE chunk_id = ?1", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, s->chunk_ids[f->top_pin_object - 1]);
		if (sqlite3_step(st) == SQLITE_ROW)
			stack_id = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	if (!f->top_pin_object)
		snprintf(buf, cap, "a chunk of the allocator's own (%s at 0x%llx)",
			 fmt_size(size, sizeof(size), f->top_pin_bytes),
			 (unsigned long long)f->top_pin_addr);
	else
		snprintf(buf, cap, "the chunk of %s at 0x%llx allocated at %s",
			 fmt_size(size, sizeof(size), f->top_pin_bytes),
			 (unsigned long long)f->top_pin_addr,
			 ld_site_text(db, stack_id, site, sizeof(site)));
}

/* s fit for a terminal (a recorded line is the program's text). */
static const char *
shown(const char *s, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s", s);
	return text_safe(buf);
}

/* After "Try:": the recorded settings the one to try leaves as they were
 * (it takes the place of a line of its own name), and the mallopt calls,
 * which the program still makes. */
static void
kept_settings(const struct adv_seq *s, const struct cand *best)
{
	size_t nl = strcspn(best->setting, "="), kept = 0, calls = s->nmallopt;

	for (size_t i = 0; i < s->nenv; i++) {
		const char *e = s->env[i];
		if (!ld_setting_shapes_heap(e) ||
		    (strcspn(e, "=") == nl && strncmp(e, best->setting, nl) == 0))
			continue;
		char buf[HP_SETTING_MAX];
		printf("%s %s", kept++ ? "" : "  predicted with the recorded settings it keeps:",
		       shown(e, buf, sizeof(buf)));
	}
	if (calls)
		printf("%s%zu mallopt call%s the program makes", kept ? "; " : "  predicted with ",
		       calls, calls == 1 ? "" : "s");
	if (kept || calls)
		putchar('\n');
}

static void
print_text(struct ld_db *db, const struct adv_seq *s, const char *exe, const struct cand *c,
	   size_t n, const size_t *order, const struct cand *best)
{
	const struct cand *rec = &c[0];
	char name[HP_SETTING_MAX], a[32], b[32], d[32], e[32], g[32], h[32], pin[700];

	printf("pid %lld (%s): %zu requests, %zu thread%s\n", (long long)s->pid, exe, s->nreqs,
	       s->nthreads, s->nthreads == 1 ? "" : "s");
	if (s->nenv || s->nmallopt) {
		printf("  recorded settings:");
		for (size_t i = 0; i < s->nenv; i++)
			printf(" %s", shown(s->env[i], name, sizeof(name)));
		printf("%s%zu mallopt call%s (replayed where the program made them)\n",
		       s->nenv ? "; " : " ", s->nmallopt, s->nmallopt == 1 ? "" : "s");
	}
	if (rec->failed[0]) {
		printf("  the replay with the recorded settings failed: %s\n\n", rec->failed);
		return;
	}
	if (rec->f.mismatches == 0)
		printf("  self-check: the replay with the recorded settings put every chunk where "
		       "the recording did\n");
	else
		printf("  SELF-CHECK FAILED: %llu chunks not where the recording had them; the "
		       "first: %s\n",
		       (unsigned long long)rec->f.mismatches, rec->f.first_mismatch);
	if (s->derived_memalign || s->derived_resize)
		printf("  derived: the alignment of %zu memalign calls, the size of %zu in-place "
		       "reallocs (not recorded)\n",
		       s->derived_memalign, s->derived_resize);
	printf("\n  %-4s %-44s %10s %11s %11s %10s %10s %10s %7s\n", "rank", "candidate", "extent",
	       "untrimmable", "worst untr.", "retained", "peak RSS", "change", "cpu s");
	for (size_t k = 0; k < n; k++) {
		const struct cand *x = &c[order[k]];
		char rank[24];
		text_safe((char *)cand_name(x, name, sizeof(name)));
		if (x->failed[0]) {
			printf("  %-4s %-44s failed: %s\n", "-", name, x->failed);
			continue;
		}
		snprintf(rank, sizeof(rank), "%zu", k + 1);
		change(h, sizeof(h), score(rec), score(x));
		printf("  %-4s %-44s %10s %11s %11s %10s %10s %10s %7.2f\n", rank, name,
		       fmt_size(a, sizeof(a), x->f.extent), fmt_size(b, sizeof(b), x->f.untrimmable),
		       fmt_size(d, sizeof(d), x->f.worst_untrimmable),
		       fmt_size(e, sizeof(e), x->f.retained), fmt_size(g, sizeof(g), x->f.peak_rss),
		       x == rec ? "(reference)" : h, x->seconds);
	}
	printf("\n  extent, untrimmable and retained at the end; worst untr.: untrimmable at the "
	       "worst instant;\n  change: of retained at the end + worst untrimmable, against "
	       "the recorded settings; cpu s: the replay's processor time\n\n");
	if (best) {
		printf("Try: %s\n", shown(best->setting, name, sizeof(name)));
		printf("  retained at the end %s -> %s, untrimmable at the worst instant %s -> %s, "
		       "peak RSS %s -> %s\n",
		       fmt_size(a, sizeof(a), rec->f.retained), fmt_size(b, sizeof(b), best->f.retained),
		       fmt_size(d, sizeof(d), rec->f.worst_untrimmable),
		       fmt_size(e, sizeof(e), best->f.worst_untrimmable),
		       fmt_size(g, sizeof(g), rec->f.peak_rss), fmt_size(h, sizeof(h), best->f.peak_rss));
		kept_settings(s, best);
		putchar('\n');
		return;
	}
	pin_text(db, s, &rec->f, pin, sizeof(pin));
	if (rec->f.untrimmable || rec->f.worst_untrimmable)
		printf("Nothing helps: no setting gives back 64 KiB and 1%% more than the recorded "
		       "ones.\n  The top pin at the end is %s: only the program can move it (free "
		       "it sooner, or allocate it before the chunks that leave the holes).\n\n",
		       pin);
	else
		printf("Nothing helps: the recorded settings already leave nothing untrimmable.\n\n");
}

static void
json_figs(const struct cand *x)
{
	printf("\"extent_bytes\":%llu,\"untrimmable_bytes\":%llu,\"retained_bytes\":%llu,"
	       "\"worst_untrimmable_bytes\":%llu,\"peak_extent_bytes\":%llu,"
	       "\"peak_rss_bytes\":%llu,\"seconds\":%.3f",
	       (unsigned long long)x->f.extent, (unsigned long long)x->f.untrimmable,
	       (unsigned long long)x->f.retained, (unsigned long long)x->f.worst_untrimmable,
	       (unsigned long long)x->f.peak_extent, (unsigned long long)x->f.peak_rss,
	       x->seconds);
}

static void
json_str(const char *s)
{
	struct buf b = { 0 };

	json_quote(&b, s, strlen(s));
	fwrite(b.p, 1, b.len, stdout);
	buf_free(&b);
}

static void
print_json(const struct adv_seq *s, const char *exe, const struct cand *c, size_t n,
	   const size_t *order, const struct cand *best, bool first)
{
	const struct cand *rec = &c[0];

	printf("%s{\"pid\":%lld,\"process_id\":%lld,\"exe\":", first ? "" : ",", (long long)s->pid,
	       (long long)s->process_id);
	json_str(exe);
	printf(",\"requests\":%zu,\"threads\":%zu,\"self_check\":{\"passed\":%s,"
	       "\"mismatches\":%llu,\"first_mismatch\":",
	       s->nreqs, s->nthreads, !rec->failed[0] && !rec->f.mismatches ? "true" : "false",
	       (unsigned long long)rec->f.mismatches);
	json_str(rec->failed[0] ? rec->failed : rec->f.first_mismatch);
	printf("},\"recorded_settings\":[");
	for (size_t i = 0; i < s->nenv; i++) {
		printf("%s", i ? "," : "");
		json_str(s->env[i]);
	}
	printf("],\"mallopt_calls\":%zu,\"candidates\":[", s->nmallopt);
	for (size_t k = 0; k < n; k++) {
		const struct cand *x = &c[order[k]];
		printf("%s{\"rank\":%zu,\"setting\":", k ? "," : "", k + 1);
		json_str(x->policy >= 0 ? "" : x->setting);
		printf(",\"policy\":");
		json_str(x->policy >= 0 ? pol_name(x->policy) : "glibc");
		printf(",\"recorded\":%s,", x->recorded ? "true" : "false");
		if (x->failed[0]) {
			printf("\"failed\":");
			json_str(x->failed);
		} else {
			json_figs(x);
		}
		printf("}");
	}
	printf("],\"recommended\":");
	if (best)
		json_str(best->setting);
	else
		printf("null");
	printf("}");
}

/* ---- the command ---- */

static uint64_t budget; /* progress callbacks (100000 SQLite steps each) left */

static int
over_budget(void *unused)
{
	(void)unused;
	return budget-- == 0;
}

static int
advise_process(struct ld_db *db, const struct advise_opts *o, int64_t process_id, int64_t pid,
	       const char *exe, bool *first, bool *check_failed)
{
	struct adv_seq s;
	struct cand *c = NULL;
	size_t n = 0, *order;
	char err[512];

	if (adv_seq_load(db->h, process_id, pid, &s, err, sizeof(err)) != 0) {
		hp_error(o->path, "%s", err);
		return -1;
	}
	if (s.nreqs == 0) {
		if (!o->json)
			printf("pid %lld (%s): no requests recorded\n\n", (long long)pid, exe);
		adv_seq_free(&s);
		return 0;
	}
	candidates(&s, !o->no_policies, &c, &n);
	if (run_all(&s, c, n, o->jobs) != 0) {
		free(c);
		adv_seq_free(&s);
		return -1;
	}
	order = xmalloc(n * sizeof(*order));
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	sort_c = c;
	qsort(order, n, sizeof(*order), by_score);
	const struct cand *best = c[0].failed[0] ? NULL : recommend(c, order, n, &c[0]);
	if (o->json)
		print_json(&s, exe, c, n, order, best, *first);
	else
		print_text(db, &s, exe, c, n, order, best);
	*first = false;
	/* A replay that does not reproduce a one-thread recording is wrong;
	 * with threads, which arena a thread gets and the order of the
	 * threads' calls within a tick are the kernel's, not the recording's. */
	if (c[0].failed[0] || (c[0].f.mismatches && s.nthreads == 1)) {
		hp_error(o->path, "pid %lld: the replay with the recorded settings does not "
				  "reproduce the recording (%s)",
			 (long long)pid, c[0].failed[0] ? c[0].failed : c[0].f.first_mismatch);
		*check_failed = true;
	}
	free(order);
	free(c);
	adv_seq_free(&s);
	return 0;
}

int
cmd_advise(int argc, char **argv)
{
	struct advise_opts o;
	struct ld_db *db;
	sqlite3_stmt *st;
	char err[512];
	bool first = true, failed = false;
	int rc = parse(argc, argv, &o), ret = 0;

	if (rc != 0)
		return rc;
	db = ld_open(o.path, err, sizeof(err));
	if (!db) {
		hp_error(o.path, "%s", err);
		return 2;
	}
	if (db->snapshots) {
		hp_error(o.path, "a snapshot recording holds no request sequence: advise needs a "
				 "full one (heapprof run without --snapshots)");
		ld_close(db);
		return 2;
	}
	/* The chunk view is what advise reads. A view is the file's, and a
	 * file is anyone's: its work is bounded by the file's size (a view
	 * that recursed forever is stopped, not waited for). */
	struct stat sb;
	budget = 1000 + (stat(o.path, &sb) == 0 ? (uint64_t)sb.st_size / 1000 : 0);
	sqlite3_progress_handler(db->h, 100000, over_budget, NULL);
	sqlite3_db_config(db->h, SQLITE_DBCONFIG_ENABLE_VIEW, 1, NULL);
	if (sqlite3_prepare_v2(db->h, "SELECT process_id, pid, coalesce(exe, '?'), parent_id "
				      "FROM process WHERE ?1 = 0 OR pid = ?1 ORDER BY process_id",
			       -1, &st, NULL) != SQLITE_OK) {
		hp_error(o.path, "%s", sqlite3_errmsg(db->h));
		ld_close(db);
		return 2;
	}
	sqlite3_bind_int64(st, 1, o.pid);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		if (o.pid)
			hp_error(o.path, "no process with pid %ld", o.pid);
		else
			hp_error(o.path, "no process recorded");
		sqlite3_finalize(st);
		ld_close(db);
		return 2;
	}
	if (o.json)
		printf("{\"processes\":[");
	for (; rc == SQLITE_ROW; rc = sqlite3_step(st)) {
		int64_t process_id = sqlite3_column_int64(st, 0), pid = sqlite3_column_int64(st, 1);
		char *exe = xstrdup((const char *)sqlite3_column_text(st, 2));
		text_safe(exe);
		if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
			/* a forked child's heap starts as its parent's at the
			 * fork: its requests alone do not make its heap */
			if (!o.json)
				printf("pid %lld (%s): a forked child, not replayed (its heap "
				       "starts as its parent's)\n\n",
				       (long long)pid, exe);
			free(exe);
			continue;
		}
		if (advise_process(db, &o, process_id, pid, exe, &first, &failed) != 0)
			ret = 2;
		free(exe);
		if (ret)
			break;
	}
	sqlite3_finalize(st);
	if (o.json)
		printf("]}\n");
	ld_close(db);
	return ret ? ret : failed ? 1 : 0;
}
