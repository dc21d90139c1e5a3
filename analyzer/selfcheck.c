/* SPDX-License-Identifier: MIT */
/*
 * selfcheck.c - heap_summary against the reports' view of the same file
 * (see selfcheck.h). Reads the database like any report does (load.h,
 * replay.h); never writes it.
 */
#include "config.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "replay.h"
#include "selfcheck.h"
#include "util.h"

bool
selfcheck_wanted(void)
{
	const char *v = getenv(SELFCHECK_ENV);

	return v && *v && strcmp(v, "0") != 0;
}

bool
selfcheck_perturb(void)
{
	const char *v = getenv(SELFCHECK_ENV);

	return v && strcmp(v, "perturb") == 0;
}

/* The columns compared: the figures at the end, then (NRUN of them) the
 * run's peaks and worst, which a snapshot recording has from heap_summary
 * alone. */
static const char *const cols[] = {
	"extent_bytes",	     "live_bytes",	  "cached_bytes",
	"allocator_bytes",   "top_free_bytes",	  "untrimmable_bytes",
	"trim_reclaimable_bytes", "resident_bytes", "mmap_bytes",
	"retained_bytes",    "peak_live_bytes",	  "peak_live_ns",
	"peak_extent_bytes", "peak_extent_ns",	  "worst_untrimmable_bytes",
	"worst_untrimmable_ns",
};
#define NCOLS (sizeof(cols) / sizeof(cols[0]))
#define NRUN 6

/* One heap_summary row: cols, then the top pin. */
struct row {
	int64_t process_id;
	int64_t v[NCOLS];
	bool has_pin;
	int64_t pin_address, pin_bytes, pin_stack_id;
	char pin_state[16];
};

/* The same figures of a report's result, in cols' order. */
static void
result_values(const struct rp_result *r, int64_t *v)
{
	const struct rp_figures *f = &r->at;
	const int64_t x[NCOLS] = {
		(int64_t)f->extent,	      (int64_t)f->live,
		(int64_t)f->cached,	      (int64_t)f->allocator,
		(int64_t)f->top_free,	      (int64_t)f->untrimmable,
		(int64_t)f->trim_reclaimable, (int64_t)f->resident,
		(int64_t)f->mmap,	      (int64_t)f->retained,
		(int64_t)r->peak_live,	      r->peak_live_ns,
		(int64_t)r->peak_extent,      r->peak_extent_ns,
		(int64_t)r->worst_untrimmable, r->worst_ns,
	};
	memcpy(v, x, sizeof(x));
}

static const char *
pin_state_name(uint8_t state)
{
	switch (state) {
	case RP_LIVE:
		return "live";
	case RP_CACHED:
		return "cached";
	case RP_STASHED:
		return "stashed";
	default:
		return "allocator";
	}
}

/* The range at the summary's top pin, as the report sees it. */
struct pin_find {
	uint64_t addr;
	bool found;
	struct rp_range x;
};

static void
find_range(void *arg, const struct rp_result *r, const struct rp_range *x)
{
	struct pin_find *f = arg;

	(void)r;
	if (x->addr == f->addr && !f->found) {
		f->found = true;
		f->x = *x;
	}
}

/* The first of the top pin's columns that differs from the report's, or
 * NULL. The pin is the top of one heap: the range there, whose end is that
 * heap's top. */
static const char *
pin_differs(const struct row *w, const struct rp_result *r, const struct pin_find *f)
{
	bool top = false;

	if (!w->has_pin)
		return NULL;
	for (size_t i = 0; i < r->nheaps; i++)
		top |= r->heaps[i].top_end == (uint64_t)(w->pin_address + w->pin_bytes);
	if (!f->found || !top)
		return "top_pin_address";
	if ((int64_t)f->x.bytes != w->pin_bytes)
		return "top_pin_bytes";
	if (strcmp(pin_state_name(f->x.state), w->pin_state) != 0)
		return "top_pin_state";
	if (f->x.stack_id != w->pin_stack_id)
		return "top_pin_stack_id";
	return NULL;
}

/* The report's result at exit for p, as `heapprof report --at exit` has
 * it, or NULL with why in err. */
static struct rp_result *
at_exit(struct ld_db *db, struct ld_process *p, struct pin_find *f, char *err, size_t errcap)
{
	const struct rp_visit visit = { .range = find_range, .arg = f };
	struct rp_options ro = { .at = RP_AT_EXIT, .visit = &visit };

	if (!db->snapshots)
		return rp_analyze(&p->in, &ro);
	const struct ld_snapshot *x = NULL;
	for (size_t k = 0; k < p->nsnaps; k++)
		if (strcmp(p->snaps[k].reason, "exit") == 0)
			x = &p->snaps[k];
	if (!x) {
		snprintf(err, errcap, "pid %lld: no exit snapshot", (long long)p->pid);
		return NULL;
	}
	struct rp_snapshot snap;
	char why[256];
	if (ld_snapshot(db, x->id, &snap, why, sizeof(why)) != 0) {
		snprintf(err, errcap, "pid %lld: %s", (long long)p->pid, why);
		return NULL;
	}
	struct rp_result *r = rp_snapshot(&snap, &p->in, &ro);
	ld_snapshot_free(&snap);
	return r;
}

static int
check_process(struct ld_db *db, const struct row *w, char *err, size_t errcap)
{
	struct ld_process *p = NULL;

	for (size_t i = 0; i < db->nprocs && !p; i++)
		if (db->procs[i].process_id == w->process_id)
			p = &db->procs[i];
	if (!p) {
		snprintf(err, errcap, "process %lld: a heap_summary row and no process",
			 (long long)w->process_id);
		return -1;
	}
	struct pin_find f = { .addr = (uint64_t)w->pin_address };
	struct rp_result *r = at_exit(db, p, &f, err, errcap);
	if (!r)
		return -1;
	int64_t v[NCOLS];
	result_values(r, v);
	int rc = 0;
	for (size_t k = 0; k < NCOLS && rc == 0; k++) {
		if (v[k] == w->v[k] || (db->snapshots && k >= NCOLS - NRUN))
			continue;
		snprintf(err, errcap, "pid %lld: %s: heap_summary %lld, report --at exit %lld",
			 (long long)p->pid, cols[k], (long long)w->v[k], (long long)v[k]);
		rc = -1;
	}
	const char *pin = rc == 0 ? pin_differs(w, r, &f) : NULL;
	if (pin) {
		snprintf(err, errcap,
			 "pid %lld: %s: heap_summary's top pin (%lld bytes at %#llx) is not the "
			 "report's",
			 (long long)p->pid, pin, (long long)w->pin_bytes,
			 (unsigned long long)w->pin_address);
		rc = -1;
	}
	rp_free(r);
	return rc;
}

int
selfcheck_run(const char *path, char *err, size_t errcap)
{
	char sql[1024], why[512];
	struct ld_db *db = ld_open(path, why, sizeof(why));
	sqlite3_stmt *s = NULL;
	int rc = -1, step;

	if (!db) {
		snprintf(err, errcap, "%s", why);
		return -1;
	}
	if (ld_load(db, 0, why, sizeof(why)) != 0) {
		snprintf(err, errcap, "%s", why);
		goto out;
	}
	size_t n = (size_t)snprintf(sql, sizeof(sql), "SELECT process_id");
	for (size_t k = 0; k < NCOLS; k++)
		n += (size_t)snprintf(sql + n, sizeof(sql) - n, ", %s", cols[k]);
	snprintf(sql + n, sizeof(sql) - n,
		 ", top_pin_bytes IS NOT NULL, top_pin_address, top_pin_bytes, top_pin_stack_id, "
		 "top_pin_state FROM heap_summary ORDER BY process_id");
	if (sqlite3_prepare_v2(db->h, sql, -1, &s, NULL) != SQLITE_OK) {
		snprintf(err, errcap, "heap_summary: %s", sqlite3_errmsg(db->h));
		goto out;
	}
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		struct row w = { .process_id = sqlite3_column_int64(s, 0) };
		int c = 1;
		for (size_t k = 0; k < NCOLS; k++)
			w.v[k] = sqlite3_column_int64(s, c++);
		w.has_pin = sqlite3_column_int(s, c++);
		w.pin_address = sqlite3_column_int64(s, c++);
		w.pin_bytes = sqlite3_column_int64(s, c++);
		w.pin_stack_id = sqlite3_column_int64(s, c++);
		const unsigned char *st = sqlite3_column_text(s, c);
		snprintf(w.pin_state, sizeof(w.pin_state), "%s", st ? (const char *)st : "");
		if (check_process(db, &w, err, errcap) != 0)
			goto out;
	}
	if (step != SQLITE_DONE) {
		snprintf(err, errcap, "heap_summary: %s", sqlite3_errmsg(db->h));
		goto out;
	}
	rc = 0;
out:
	sqlite3_finalize(s);
	ld_close(db);
	return rc;
}
