/* SPDX-License-Identifier: MIT */
/* load.c - reading a heapprof database for the reports (see load.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <malloc.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codes.h"
#include "load.h"
#include "schema_version.h"
#include "util.h"


/* Strings handed out by ld_stack, freed at close. */
struct strs {
	char **v;
	size_t n, cap;
};

/* The patterns of alloc_wrapper (none in a database from before it) and
 * ld_skip's: [0] functions, [1] modules, [2] files. */
struct wrappers {
	char **v[3];
	size_t n[3];
};

struct ld_db_priv {
	struct ld_db pub;
	struct strs strs;
	sqlite3_stmt *frames;
	/* the processes by id, when their ids are not 1..n in order */
	struct proc_index {
		int64_t id;
		size_t i;
	} *by_id;
	struct wrappers wrappers;
	bool has_wrappers;
};

/* User addresses are below 2^56 on every 64-bit Linux (5-level paging):
 * a file that says otherwise is damaged. */
#define MAX_ADDR (1LL << 56)
/* A forked child's heap is replayed from its ancestors' at each fork;
 * beyond this many generations (a hostile file can chain a million), the
 * child starts from an empty heap instead. */
#define MAX_FORK_DEPTH 256

/* The view stack_frame (schema/heapprof.sql), which this connection may not
 * read (views are off): a stack's own frames, then its tail's. */
#define STACK_FRAMES                                                                  \
	"(SELECT s.stack_id, CASE WHEN f.stack_id = s.stack_id THEN f.depth "        \
	"ELSE s.tail_at + f.depth - s.tail_from END AS depth, f.image_id, f.offset " \
	"FROM stack s JOIN stack_own_frame f ON f.stack_id IN (s.stack_id, s.tail_stack) " \
	"AND (f.stack_id = s.stack_id OR f.depth >= s.tail_from))"

static const char *
keep(struct ld_db_priv *p, const unsigned char *s)
{
	if (!s)
		return NULL;
	if (p->strs.n == p->strs.cap) {
		p->strs.cap = p->strs.cap ? p->strs.cap * 2 : 64;
		p->strs.v = xrealloc(p->strs.v, p->strs.cap * sizeof(char *));
	}
	return p->strs.v[p->strs.n++] = xstrdup((const char *)s);
}

static char *
dup_col(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? xstrdup((const char *)t) : NULL;
}

/* One integer from a query, or `dflt`. */
static int64_t
query_int(sqlite3 *h, const char *sql, int64_t dflt, int *rc)
{
	sqlite3_stmt *s;
	int64_t v = dflt;

	*rc = sqlite3_prepare_v2(h, sql, -1, &s, NULL);
	if (*rc != SQLITE_OK)
		return dflt;
	*rc = sqlite3_step(s);
	if (*rc == SQLITE_ROW) {
		if (sqlite3_column_type(s, 0) != SQLITE_NULL)
			v = sqlite3_column_int64(s, 0);
		*rc = SQLITE_OK;
	} else if (*rc == SQLITE_DONE) {
		*rc = SQLITE_OK;
	}
	sqlite3_finalize(s);
	return v;
}

/* max(id) by `sql` (0 for none), bounded by what the file has room for:
 * one row per 8 bytes (a damaged file's ids are any numbers). */
static int64_t
bounded_max_id(struct ld_db *db, const char *sql, int *rc)
{
	int64_t max_id = query_int(db->h, sql, 0, rc);
	struct stat st;

	if (stat(db->path, &st) == 0 && max_id > st.st_size / 8)
		max_id = st.st_size / 8;
	return max_id;
}

/* The base time of a block of ids (chunk_epoch, heap_event_epoch). */
struct epoch {
	int64_t ns;
	bool set;
};

/* v[block] from a (block, base_ns) table; blocks past n (a damaged file)
 * are left out. SQLITE_DONE, or the error. */
static int
read_epochs(sqlite3 *h, const char *sql, struct epoch *v, size_t n)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK)
		return SQLITE_ERROR;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t block = sqlite3_column_int64(s, 0);
		if (block >= 0 && (uint64_t)block < n)
			v[block] = (struct epoch){ sqlite3_column_int64(s, 1), true };
	}
	sqlite3_finalize(s);
	return rc;
}

struct ld_db *
ld_open(const char *path, char *err, size_t errcap)
{
	struct stat st;
	struct ld_db_priv *p;
	sqlite3 *h = NULL;
	int rc;
	char head[16];

	/* Say what is wrong in words SQLite would not use. */
	if (stat(path, &st) != 0) {
		snprintf(err, errcap, "%s", strerror(errno));
		return NULL;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errcap, "is a directory");
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errcap, "not a regular file");
		return NULL;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errcap, "%s", strerror(errno));
		return NULL;
	}
	ssize_t n = read(fd, head, sizeof(head));
	close(fd);
	if (n != (ssize_t)sizeof(head) || memcmp(head, "SQLite format 3", 16) != 0) {
		snprintf(err, errcap, "not a SQLite database");
		return NULL;
	}
	/* one thread: no memory statistics, no connection mutex (both cost a
	 * lock per row read) */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	int64_t app = 0;
	for (int writable = 0; writable < 2; writable++) {
		rc = sqlite3_open_v2(path, &h,
				     (writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) |
					     SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOMUTEX,
				     NULL);
		if (rc != SQLITE_OK) {
			snprintf(err, errcap, "cannot open: %s",
				 h ? sqlite3_errmsg(h) : sqlite3_errstr(rc));
			sqlite3_close(h);
			return NULL;
		}
		/* SQLite's advice for files from elsewhere: no schema tricks,
		 * no memory mapping, checked cells, bounded sizes; and this
		 * connection writes nothing of its own. */
		sqlite3_db_config(h, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
		sqlite3_db_config(h, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
		sqlite3_db_config(h, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
		/* nothing read here is a view: a view in place of a table
		 * (one with an endless recursive query) is refused */
		sqlite3_db_config(h, SQLITE_DBCONFIG_ENABLE_VIEW, 0, NULL);
		sqlite3_limit(h, SQLITE_LIMIT_LENGTH, 1 << 20);
		sqlite3_limit(h, SQLITE_LIMIT_SQL_LENGTH, 1 << 16);
		sqlite3_exec(h, "PRAGMA cell_size_check = ON; PRAGMA mmap_size = 0; "
				"PRAGMA query_only = ON;",
			     NULL, NULL, NULL);
		app = query_int(h, "PRAGMA application_id", 0, &rc);
		/* A run that was cut off (its collector killed) leaves the
		 * transaction it had open in a journal: reading needs it rolled
		 * back, which SQLite does on a read-write connection, leaving
		 * what was committed. */
		if (rc != SQLITE_READONLY_ROLLBACK)
			break;
		sqlite3_close(h);
		h = NULL;
	}
	if (rc != SQLITE_OK) {
		if ((rc & 0xff) == SQLITE_BUSY)
			snprintf(err, errcap, "the database is locked: heapprof is still writing it "
					      "(it can be read when the run ends)");
		else if (rc == SQLITE_READONLY_ROLLBACK || (rc & 0xff) == SQLITE_CANTOPEN)
			snprintf(err, errcap, "the run that wrote it was cut off, and reading it "
					      "needs write access to it and its directory (to roll "
					      "back its last transaction)");
		else
			snprintf(err, errcap, "%s", sqlite3_errstr(rc));
		sqlite3_close(h);
		return NULL;
	}
	if (app != HP_APPLICATION_ID) {
		snprintf(err, errcap, "a SQLite database, but not heapprof's");
		sqlite3_close(h);
		return NULL;
	}
	int64_t version = query_int(h, "PRAGMA user_version", 0, &rc);
	if (rc != SQLITE_OK || version != HP_SCHEMA_VERSION) {
		if (rc != SQLITE_OK)
			snprintf(err, errcap, "%s", sqlite3_errstr(rc));
		else if (version > HP_SCHEMA_VERSION)
			snprintf(err, errcap,
				 "schema version %lld is newer than this heapprof reads (%d)",
				 (long long)version, HP_SCHEMA_VERSION);
		else
			snprintf(err, errcap, "schema version %lld is not one this heapprof reads",
				 (long long)version);
		sqlite3_close(h);
		return NULL;
	}
	int64_t complete = query_int(h, "SELECT value = '1' FROM meta WHERE key = 'complete'", 0, &rc);
	if (rc != SQLITE_OK) {
		snprintf(err, errcap, "damaged: %s", sqlite3_errmsg(h));
		sqlite3_close(h);
		return NULL;
	}
	int64_t snapshots = query_int(h, "SELECT value = 'snapshots' FROM meta WHERE key = 'recording'",
				      0, &rc);
	if (rc != SQLITE_OK) {
		snprintf(err, errcap, "damaged: %s", sqlite3_errmsg(h));
		sqlite3_close(h);
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	p->pub.h = h;
	p->pub.path = path;
	p->pub.complete = complete == 1;
	p->pub.snapshots = snapshots == 1;
	return &p->pub;
}

static int
by_proc_id(const void *a, const void *b)
{
	const struct proc_index *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static struct ld_process *
find_proc(struct ld_db *db, int64_t process_id)
{
	struct ld_db_priv *p = (struct ld_db_priv *)db;

	/* process ids are 1..n in order, usually at index id - 1 */
	if (process_id >= 1 && (size_t)process_id <= db->nprocs &&
	    db->procs[process_id - 1].process_id == process_id)
		return &db->procs[process_id - 1];
	/* else by a sorted index (a scan per row was quadratic) */
	if (!p->by_id && db->nprocs) {
		p->by_id = xmalloc(db->nprocs * sizeof(*p->by_id));
		for (size_t i = 0; i < db->nprocs; i++)
			p->by_id[i] = (struct proc_index){ db->procs[i].process_id, i };
		qsort(p->by_id, db->nprocs, sizeof(*p->by_id), by_proc_id);
	}
	size_t lo = 0, hi = db->nprocs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p->by_id[mid].id < process_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < db->nprocs && p->by_id[lo].id == process_id ? &db->procs[p->by_id[lo].i]
								 : NULL;
}

static int
fail_sql(struct ld_db *db, char *err, size_t errcap)
{
	snprintf(err, errcap, "damaged: %s", sqlite3_errmsg(db->h));
	return -1;
}

void
ld_skip(struct ld_db *db, const char *pattern)
{
	db->skip = xrealloc(db->skip, (db->nskip + 1) * sizeof(char *));
	db->skip[db->nskip++] = xstrdup(pattern);
}

static void
wrapper_add(struct wrappers *w, int kind, const char *pattern)
{
	w->v[kind] = xrealloc(w->v[kind], (w->n[kind] + 1) * sizeof(char *));
	w->v[kind][w->n[kind]++] = xstrdup(pattern);
}

static int
load_wrappers(struct ld_db *db)
{
	struct ld_db_priv *p = (struct ld_db_priv *)db;
	struct wrappers *w = &p->wrappers;
	sqlite3_stmt *s;
	int rc;

	if (p->has_wrappers)
		return 0;
	p->has_wrappers = true;
	for (size_t i = 0; i < db->nskip; i++)
		for (int k = 0; k < 3; k++)
			wrapper_add(w, k, db->skip[i]);
	int64_t has = query_int(db->h, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
				       "AND name = 'alloc_wrapper'", 0, &rc);
	if (rc != SQLITE_OK)
		return -1;
	if (!has)
		return 0;
	if (sqlite3_prepare_v2(db->h, "SELECT pattern, kind FROM alloc_wrapper", -1, &s, NULL) !=
	    SQLITE_OK)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *pat = (const char *)sqlite3_column_text(s, 0);
		const char *kind = (const char *)sqlite3_column_text(s, 1);
		if (!pat || !kind)
			continue;
		int k = strcmp(kind, "function") == 0 ? 0 : strcmp(kind, "module") == 0 ? 1
							  : strcmp(kind, "file") == 0	  ? 2
												  : -1;
		if (k >= 0)
			wrapper_add(w, k, pat);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void
wrappers_free(struct wrappers *w)
{
	for (int k = 0; k < 3; k++) {
		for (size_t i = 0; i < w->n[k]; i++)
			free(w->v[k][i]);
		free(w->v[k]);
	}
}

static bool
matches(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; s && i < n; i++)
		if (fnmatch(v[i], s, 0) == 0)
			return true;
	return false;
}

static bool
is_wrapper(const struct wrappers *w, const char *fn, const char *file, const char *module)
{
	return matches(w->v[0], w->n[0], fn) ||
	       matches(w->v[1], w->n[1], module ? path_base(module) : NULL) ||
	       matches(w->v[2], w->n[2], file);
}

/* Function names to ids (1..n), by hash. */
struct names {
	size_t *slot; /* id, 0: empty */
	size_t cap;
};

static uint64_t
str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 0x100000001b3ULL;
	return h;
}

static int64_t
name_id(struct ld_db *db, struct names *t, const char *name)
{
	if (db->nfns * 2 >= t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		size_t *slot = xcalloc(cap, sizeof(size_t));
		for (size_t i = 0; i < t->cap; i++)
			if (t->slot[i]) {
				size_t j = str_hash(db->fn_names[t->slot[i] - 1]) & (cap - 1);
				while (slot[j])
					j = (j + 1) & (cap - 1);
				slot[j] = t->slot[i];
			}
		free(t->slot);
		t->slot = slot;
		t->cap = cap;
	}
	size_t j = str_hash(name) & (t->cap - 1);
	for (; t->slot[j]; j = (j + 1) & (t->cap - 1))
		if (strcmp(db->fn_names[t->slot[j] - 1], name) == 0)
			return (int64_t)t->slot[j];
	db->fn_names = xrealloc(db->fn_names, (db->nfns + 1) * sizeof(char *));
	db->fn_names[db->nfns++] = xstrdup(name);
	t->slot[j] = db->nfns;
	return (int64_t)db->nfns;
}

/* The site of every stack: its first frame (innermost first, inlined ones
 * included, as ld_stack lists them) that is no allocation wrapper, or its
 * innermost if all are; grouped by the site's function (an unsymbolized
 * site by its address: "0x1a9b in module"). */
static int
load_sites(struct ld_db *db, char *err, size_t errcap)
{
	sqlite3_stmt *s;
	const struct wrappers *w = &((struct ld_db_priv *)db)->wrappers;
	struct names names = { 0 };
	int rc;

	size_t cap = 0;

	db->sites_loaded = true;
	if (load_wrappers(db) != 0)
		return fail_sql(db, err, errcap);
	if (sqlite3_prepare_v2(db->h, "SELECT f.stack_id, y.function, y.file, i.path, f.offset "
				      "FROM " STACK_FRAMES " f "
				      "LEFT JOIN symbol y ON y.image_id = f.image_id "
				      "AND y.offset = f.offset "
				      "LEFT JOIN image i ON i.image_id = f.image_id "
				      "ORDER BY f.stack_id, f.depth, y.level",
			       -1, &s, NULL) != SQLITE_OK)
		return fail_sql(db, err, errcap);
	int64_t cur = 0;
	int32_t k = 0;
	bool found = true;
	char buf[512];
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(s, 0);
		if (id < 1)
			continue;
		if (id != cur) {
			cur = id;
			k = 0;
			found = false;
		} else {
			k++;
		}
		if (found)
			continue;
		const char *fn = (const char *)sqlite3_column_text(s, 1);
		const char *file = (const char *)sqlite3_column_text(s, 2);
		const char *mod = (const char *)sqlite3_column_text(s, 3);
		bool wrapper = is_wrapper(w, fn, file, mod);
		if (wrapper && k > 0)
			continue; /* the innermost stays the site until one is not */
		found = !wrapper;
		if (!fn) {
			snprintf(buf, sizeof(buf), "0x%llx in %s",
				 (unsigned long long)sqlite3_column_int64(s, 4),
				 mod ? path_base(mod) : "?");
			fn = buf;
		}
		/* rows come by stack id: this stack's entry is the last */
		if (k == 0) {
			if (db->nstack_fns == cap) {
				cap = cap ? cap * 2 : 256;
				db->stack_fns = xrealloc(db->stack_fns, cap * sizeof(*db->stack_fns));
			}
			db->nstack_fns++;
		}
		db->stack_fns[db->nstack_fns - 1] =
			(struct ld_stack_fn){ id, name_id(db, &names, fn), k };
	}
	sqlite3_finalize(s);
	free(names.slot);
	return rc == SQLITE_DONE ? 0 : fail_sql(db, err, errcap);
}

static int load_snapshots(struct ld_db *db, char *err, size_t errcap);

/* Events into time order; events at the same time keep their order. */
static void
sort_events(struct rp_event *ev, size_t n)
{
	struct rp_event *tmp = xmalloc(n * sizeof(*ev));

	for (size_t w = 1; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
			size_t i = lo, j = mid, o = lo;
			while (i < mid && j < hi)
				tmp[o++] = ev[j].ns < ev[i].ns ? ev[j++] : ev[i++];
			while (i < mid)
				tmp[o++] = ev[i++];
			while (j < hi)
				tmp[o++] = ev[j++];
		}
		memcpy(ev, tmp, n * sizeof(*ev));
	}
	free(tmp);
}

/* The marks of the wanted processes (none in a database from before the
 * table). */
static int
load_marks(struct ld_db *db, char *err, size_t errcap)
{
	sqlite3_stmt *s;
	int rc;

	if (!query_int(db->h, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
			      "name = 'mark'", 0, &rc))
		return rc == SQLITE_OK ? 0 : fail_sql(db, err, errcap);
	if (sqlite3_prepare_v2(db->h, "SELECT process_id, ns, name FROM mark ORDER BY process_id, ns",
			       -1, &s, NULL) != SQLITE_OK)
		return fail_sql(db, err, errcap);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ld_process *p = find_proc(db, sqlite3_column_int64(s, 0));
		const unsigned char *name = sqlite3_column_text(s, 2);
		if (!p || !p->wanted || !name)
			continue;
		p->marks = xrealloc(p->marks, (p->nmarks + 1) * sizeof(*p->marks));
		p->marks[p->nmarks++] = (struct ld_mark){ sqlite3_column_int64(s, 1),
							  xstrdup((const char *)name) };
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : fail_sql(db, err, errcap);
}

bool
ld_setting_shapes_heap(const char *line)
{
	return strncmp(line, "MALLOC_PERTURB_=", 16) != 0 &&
	       strncmp(line, "MALLOC_CHECK_=", 14) != 0;
}

/* The settings of the wanted processes (struct ld_setting). */
static int
load_settings(struct ld_db *db, char *err, size_t errcap)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(db->h, "SELECT process_id, ns, param, value, line "
				      "FROM malloc_setting ORDER BY rowid",
			       -1, &s, NULL) != SQLITE_OK)
		return fail_sql(db, err, errcap);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ld_process *p = find_proc(db, sqlite3_column_int64(s, 0));
		const char *line = (const char *)sqlite3_column_text(s, 4);
		if (!p || !p->wanted)
			continue;
		if (line && !ld_setting_shapes_heap(line))
			continue;
		p->settings = xrealloc(p->settings, (p->nsettings + 1) * sizeof(*p->settings));
		p->settings[p->nsettings++] = (struct ld_setting){
			sqlite3_column_int64(s, 1), sqlite3_column_int(s, 2), sqlite3_column_int(s, 3),
			line ? xstrdup(line) : NULL
		};
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : fail_sql(db, err, errcap);
}

const char *
ld_mallopt_name(int param)
{
	switch (param) {
	case M_MXFAST: return "M_MXFAST";
	case M_TRIM_THRESHOLD: return "M_TRIM_THRESHOLD";
	case M_TOP_PAD: return "M_TOP_PAD";
	case M_MMAP_THRESHOLD: return "M_MMAP_THRESHOLD";
	case M_MMAP_MAX: return "M_MMAP_MAX";
	case M_CHECK_ACTION: return "M_CHECK_ACTION";
	case M_PERTURB: return "M_PERTURB";
	case M_ARENA_TEST: return "M_ARENA_TEST";
	case M_ARENA_MAX: return "M_ARENA_MAX";
	default: return NULL;
	}
}

const char *
ld_settings_text(const struct ld_process *p, char *buf, size_t cap)
{
	size_t n = 0, calls = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < p->nsettings && n < cap; i++)
		if (p->settings[i].line)
			n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? " " : "",
					      p->settings[i].line);
	for (size_t i = 0; i < p->nsettings; i++)
		calls += p->settings[i].line == NULL;
	if (calls && n < cap)
		snprintf(buf + n, cap - n, "%s%zu mallopt call%s", n ? "; " : "", calls,
			 calls == 1 ? "" : "s");
	return buf;
}

/* Known small-object allocators: CPython's pymalloc, which keeps objects of
 * up to 512 bytes in arenas it maps itself, 256 KiB (before 3.10) or 1 MiB
 * each, from python3.x or libpython3.x (_PyObject_ArenaMmap, new_arena). */
static bool
is_cpython(const char *module)
{
	const char *b = module ? path_base(module) : "";

	return fnmatch("python3*", b, 0) == 0 || fnmatch("libpython3*", b, 0) == 0;
}

static bool
is_pymalloc_arena(uint64_t bytes, const char *module, const char *function)
{
	if (function && (fnmatch("_PyObject_Arena*", function, 0) == 0 ||
			 strcmp(function, "new_arena") == 0))
		return true;
	return is_cpython(module) && (bytes == 256 << 10 || bytes == 1 << 20);
}

/* The program's own mappings of the wanted processes, and which of them
 * run CPython (none of either in a database from before the table). */
static int
load_program_maps(struct ld_db *db, char *err, size_t errcap, size_t *cap)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(db->h, "SELECT DISTINCT m.process_id, i.path FROM module m "
				      "JOIN image i USING (image_id) WHERE i.path GLOB '*python3*'",
			       -1, &s, NULL) != SQLITE_OK)
		return fail_sql(db, err, errcap);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ld_process *p = find_proc(db, sqlite3_column_int64(s, 0));
		if (p && is_cpython((const char *)sqlite3_column_text(s, 1)))
			p->cpython = true;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return fail_sql(db, err, errcap);
	if (!query_int(db->h, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
			      "name = 'program_mmap'", 0, &rc))
		return rc == SQLITE_OK ? 0 : fail_sql(db, err, errcap);
	if (sqlite3_prepare_v2(db->h, "SELECT m.process_id, m.bytes, m.mapped_ns, m.unmapped_ns, "
				      "i.path, y.function FROM program_mmap m "
				      "LEFT JOIN " STACK_FRAMES " f ON f.stack_id = m.stack_id AND f.depth = 0 "
				      "LEFT JOIN image i ON i.image_id = f.image_id "
				      "LEFT JOIN symbol y ON y.image_id = f.image_id AND "
				      "y.offset = f.offset AND y.level = 0",
			       -1, &s, NULL) != SQLITE_OK)
		return fail_sql(db, err, errcap);
	memset(cap, 0, db->nprocs * sizeof(size_t));
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ld_process *p = find_proc(db, sqlite3_column_int64(s, 0));
		if (!p || !p->wanted)
			continue;
		struct rp_input *in = &p->in;
		size_t k = (size_t)(p - db->procs);
		if (in->npmaps == cap[k]) {
			cap[k] = cap[k] ? cap[k] * 2 : 64;
			in->pmaps = xrealloc(in->pmaps, cap[k] * sizeof(*in->pmaps));
		}
		uint64_t bytes = (uint64_t)sqlite3_column_int64(s, 1);
		in->pmaps[in->npmaps++] = (struct rp_pmap){
			.bytes = bytes,
			.mapped_ns = sqlite3_column_int64(s, 2),
			.unmapped_ns = sqlite3_column_int64(s, 3),
			.pymalloc = is_pymalloc_arena(bytes, (const char *)sqlite3_column_text(s, 4),
						      (const char *)sqlite3_column_text(s, 5)),
		};
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : fail_sql(db, err, errcap);
}

int
ld_load(struct ld_db *db, int64_t pid, char *err, size_t errcap)
{
	sqlite3_stmt *s, *slack_q = NULL, *released_q = NULL;
	int rc;

	if (sqlite3_prepare_v2(db->h,
			       "SELECT process_id, pid, ppid, parent_id, exec_from, fork_ns, exe, "
			       "end_reason, exit_status, exit_signal, heap_start, started_ns, "
			       "ended_ns, dropped_events, truncated_records FROM process "
			       "ORDER BY process_id",
			       -1, &s, NULL) != SQLITE_OK)
		return fail_sql(db, err, errcap);
	size_t pcap = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (db->nprocs == pcap) {
			pcap = pcap ? pcap * 2 : 16;
			db->procs = xrealloc(db->procs, pcap * sizeof(*db->procs));
		}
		struct ld_process *p = &db->procs[db->nprocs++];
		memset(p, 0, sizeof(*p));
		p->process_id = sqlite3_column_int64(s, 0);
		p->pid = sqlite3_column_int64(s, 1);
		p->ppid = sqlite3_column_int64(s, 2);
		p->parent_id = sqlite3_column_int64(s, 3);
		p->exec_from = sqlite3_column_int64(s, 4);
		p->in.fork_ns = sqlite3_column_int64(s, 5);
		p->exe = dup_col(s, 6);
		p->end_reason = dup_col(s, 7);
		p->exit_status = sqlite3_column_type(s, 8) == SQLITE_NULL ? -1
									  : sqlite3_column_int64(s, 8);
		p->exit_signal = sqlite3_column_type(s, 9) == SQLITE_NULL ? -1
									  : sqlite3_column_int64(s, 9);
		p->in.heap_start = (uint64_t)sqlite3_column_int64(s, 10);
		p->in.started_ns = sqlite3_column_int64(s, 11);
		p->in.ended_ns = sqlite3_column_int64(s, 12);
		p->dropped = sqlite3_column_int64(s, 13);
		p->truncated = sqlite3_column_int64(s, 14);
		p->wanted = pid == 0 || p->pid == pid;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return fail_sql(db, err, errcap);
	bool any = false;
	for (size_t i = 0; i < db->nprocs; i++)
		any |= db->procs[i].wanted;
	if (!any) {
		if (pid)
			snprintf(err, errcap, "no process with pid %lld", (long long)pid);
		else
			snprintf(err, errcap, "no process was recorded");
		return -1;
	}
	/* parents come before their children (lower ids, and the rows are
	 * in id order): each one's depth is known when its children's is
	 * asked for */
	size_t *parent = xmalloc(db->nprocs * sizeof(size_t));
	unsigned *depth = xcalloc(db->nprocs, sizeof(unsigned));
	for (size_t i = 0; i < db->nprocs; i++) {
		struct ld_process *p = &db->procs[i];
		parent[i] = SIZE_MAX;
		if (p->parent_id && p->in.fork_ns) {
			struct ld_process *par = find_proc(db, p->parent_id);
			size_t j = par ? (size_t)(par - db->procs) : SIZE_MAX;
			if (par && j < i && par->process_id < p->process_id &&
			    depth[j] < MAX_FORK_DEPTH) {
				p->in.parent = &par->in;
				parent[i] = j;
				depth[i] = depth[j] + 1;
			}
		}
	}
	free(depth);
	/* which to load: the wanted ones and their ancestors (a forked child's
	 * heap is its parent's at the fork); each is marked once */
	bool *need = xcalloc(db->nprocs, sizeof(bool));
	for (size_t i = 0; i < db->nprocs; i++)
		for (size_t a = db->procs[i].wanted ? i : SIZE_MAX; a != SIZE_MAX && !need[a];
		     a = parent[a])
			need[a] = true;
	free(parent);

	/* chunks, one pass over the table; with one process wanted, its array
	 * is sized once (chunk ids are 1..n) */
	size_t *cap = xcalloc(db->nprocs, sizeof(size_t));
	size_t nneed = 0, only = 0;
	for (size_t i = 0; i < db->nprocs; i++)
		if (need[i]) {
			nneed++;
			only = i;
		}
	int64_t max_id = bounded_max_id(db, "SELECT max(chunk_id) FROM chunk_packed", &rc);
	bool max_known = rc == SQLITE_OK && max_id > 0;
	if (nneed == 1 && max_known && max_id < (1LL << 34)) {
		cap[only] = (size_t)max_id;
		db->procs[only].in.chunks = xmalloc(cap[only] * sizeof(struct rp_chunk));
	}
	/* the base times of the blocks of chunk ids (as many blocks as the
	 * file has room for: a damaged one's ids are any numbers) */
	size_t nepochs = max_known ? ((size_t)max_id >> HP_EPOCH_SHIFT) + 1 : 0;
	struct epoch *epochs = xcalloc(nepochs ? nepochs : 1, sizeof(*epochs));
	rc = read_epochs(db->h, "SELECT block, base_ns FROM chunk_epoch", epochs, nepochs);
	s = NULL;
	/* what chunks share (chunk_origin), by id; as many as the file has
	 * room for */
	struct origin {
		struct ld_process *p; /* NULL: no such row, or not a process loaded */
		uint64_t base, size;
		int64_t stack_id;
		uint8_t backing, fate;
		bool slack_stored;
	} *origins = NULL;
	size_t norigins = 0;
	if (rc == SQLITE_DONE) {
		max_id = bounded_max_id(db, "SELECT max(origin_id) FROM chunk_origin", &rc);
		if (rc == SQLITE_OK && max_id >= 0)
			norigins = (size_t)max_id + 1;
		origins = xcalloc(norigins ? norigins : 1, sizeof(*origins));
		rc = rc == SQLITE_OK ? SQLITE_DONE : rc;
	}
	if (rc == SQLITE_DONE &&
	    sqlite3_prepare_v2(db->h,
			       "SELECT origin_id, process_id, backing, fate, stack_id, slack_stored, "
			       "base, size FROM chunk_origin",
			       -1, &s, NULL) == SQLITE_OK) {
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			int64_t id = sqlite3_column_int64(s, 0);
			struct ld_process *p = find_proc(db, sqlite3_column_int64(s, 1));
			if (id < 0 || (uint64_t)id >= norigins || !p || !need[p - db->procs])
				continue;
			origins[id] = (struct origin){
				.p = p,
				.backing = (uint8_t)sqlite3_column_int(s, 2),
				.fate = (uint8_t)sqlite3_column_int(s, 3),
				.stack_id = sqlite3_column_int64(s, 4),
				.slack_stored = sqlite3_column_int(s, 5) != 0,
				.base = (uint64_t)sqlite3_column_int64(s, 6),
				.size = (uint64_t)sqlite3_column_int64(s, 7),
			};
		}
		sqlite3_finalize(s);
		s = NULL;
	}
	if (rc != SQLITE_DONE ||
	    sqlite3_prepare_v2(db->h,
			       "SELECT origin, address, chunk_id, free_rel, free_after, "
			       "released_after FROM chunk_packed",
			       -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->h, "SELECT slack FROM chunk_slack WHERE chunk_id = ?1", -1,
			       &slack_q, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db->h,
			       "SELECT released_after FROM chunk_released WHERE chunk_id = ?1", -1,
			       &released_q, NULL) != SQLITE_OK) {
		sqlite3_finalize(s);
		sqlite3_finalize(slack_q);
		free(origins);
		free(epochs);
		free(need);
		free(cap);
		return fail_sql(db, err, errcap);
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		bool freed = sqlite3_column_type(s, 4) != SQLITE_NULL;
		int64_t oid = sqlite3_column_int64(s, 0);
		/* a chunk of a process not loaded, or of no origin (a damaged
		 * file): not this replay's */
		if (oid < 0 || (uint64_t)oid >= norigins || !origins[oid].p)
			continue;
		const struct origin *o = &origins[oid];
		struct ld_process *p = o->p;
		size_t k = (size_t)(p - db->procs);
		struct rp_input *in = &p->in;
		if (in->nchunks == cap[k]) {
			cap[k] = cap[k] ? cap[k] * 2 : 1024;
			in->chunks = xrealloc(in->chunks, cap[k] * sizeof(*in->chunks));
		}
		uint64_t size = o->size;
		int64_t chunk_id = sqlite3_column_int64(s, 2);
		uint64_t block = (uint64_t)chunk_id >> HP_EPOCH_SHIFT;
		if (chunk_id < 0 || block >= nepochs || !epochs[block].set) {
			snprintf(err, errcap, "damaged: chunk %lld has no base time (chunk_epoch)",
				 (long long)chunk_id);
			sqlite3_finalize(s);
			sqlite3_finalize(slack_q);
			sqlite3_finalize(released_q);
			free(origins);
			free(epochs);
			free(need);
			free(cap);
			return -1;
		}
		/* the free (the allocation if not freed) against the block's
		 * base; differences added without overflow, whatever the file
		 * holds */
		int64_t at = (int64_t)((uint64_t)epochs[block].ns + (uint64_t)sqlite3_column_int64(s, 3));
		int64_t free_ns = freed ? at : 0;
		int64_t alloc_ns = !freed ? at
					  : (int64_t)((uint64_t)at -
						      (uint64_t)sqlite3_column_int64(s, 4));
		int64_t released_ns = 0;
		if (sqlite3_column_type(s, 5) != SQLITE_NULL) {
			released_ns = (int64_t)((uint64_t)free_ns +
						(uint64_t)sqlite3_column_int64(s, 5));
		} else if (freed && hp_fate_occupies(o->fate)) {
			/* released after its row was written */
			sqlite3_bind_int64(released_q, 1, chunk_id);
			if (sqlite3_step(released_q) == SQLITE_ROW)
				released_ns = (int64_t)((uint64_t)free_ns +
							(uint64_t)sqlite3_column_int64(released_q, 0));
			sqlite3_reset(released_q);
		}
		/* a stored address beyond any process's is not shifted into one */
		int64_t rel = sqlite3_column_int64(s, 1);
		int64_t addr = rel > MAX_ADDR || rel < -MAX_ADDR
				       ? -1
				       : (int64_t)hp_chunk_address(rel, o->base);
		int64_t slack = (int64_t)(hp_chunk_bytes_derived(size) - size);
		if (o->slack_stored) {
			sqlite3_bind_int64(slack_q, 1, sqlite3_column_int64(s, 2));
			slack = sqlite3_step(slack_q) == SQLITE_ROW ? sqlite3_column_int64(slack_q, 0)
								    : -1;
			sqlite3_reset(slack_q);
		}
		if (addr < 0 || addr >= MAX_ADDR || (int64_t)size < 0 || size >= MAX_ADDR ||
		    slack < 0 || slack >= MAX_ADDR || addr + (int64_t)size + slack > MAX_ADDR) {
			snprintf(err, errcap, "damaged: chunk %lld has an address or size no "
					      "process can have",
				 (long long)sqlite3_column_int64(s, 2));
			sqlite3_finalize(s);
			sqlite3_finalize(slack_q);
			sqlite3_finalize(released_q);
			free(origins);
			free(epochs);
			free(need);
			free(cap);
			return -1;
		}
		in->chunks[in->nchunks++] = (struct rp_chunk){
			.addr = (uint64_t)addr,
			.bytes = size + (uint64_t)slack,
			.size = size,
			.alloc_ns = alloc_ns,
			.free_ns = free_ns,
			.released_ns = released_ns,
			.chunk_id = sqlite3_column_int64(s, 2),
			.stack_id = o->stack_id,
			.backing = o->backing,
			.fate = freed ? o->fate : 0,
		};
	}
	sqlite3_finalize(s);
	sqlite3_finalize(slack_q);
	sqlite3_finalize(released_q);
	free(origins);
	free(epochs);
	if (rc != SQLITE_DONE) {
		free(need);
		free(cap);
		return fail_sql(db, err, errcap);
	}

	/* heap events, one pass in the order they were written: the collector
	 * writes each process's events in time order, so no index or sort is
	 * needed (a file where they are not is sorted here) */
	size_t nev_blocks = 0; /* blocks of rowids, each with its base time */
	max_id = bounded_max_id(db, "SELECT max(rowid) FROM heap_event", &rc);
	if (rc == SQLITE_OK && max_id > 0)
		nev_blocks = ((size_t)max_id >> HP_EVENT_EPOCH_SHIFT) + 1;
	struct epoch *ev_base = xcalloc(nev_blocks ? nev_blocks : 1, sizeof(*ev_base));
	rc = read_epochs(db->h, "SELECT block, base_ns FROM heap_event_epoch", ev_base, nev_blocks);
	if (rc != SQLITE_DONE ||
	    sqlite3_prepare_v2(db->h,
			       "SELECT process_id, ns_rel, what, address, bytes, rowid FROM heap_event "
			       "ORDER BY rowid",
			       -1, &s, NULL) != SQLITE_OK) {
		free(ev_base);
		free(need);
		free(cap);
		return fail_sql(db, err, errcap);
	}
	memset(cap, 0, db->nprocs * sizeof(size_t));
	bool *unsorted = xcalloc(db->nprocs, sizeof(bool));
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ld_process *p = find_proc(db, sqlite3_column_int64(s, 0));
		if (!p || !need[p - db->procs])
			continue;
		size_t k = (size_t)(p - db->procs);
		struct rp_input *in = &p->in;
		if (in->nevents == cap[k]) {
			cap[k] = cap[k] ? cap[k] * 2 : 256;
			in->events = xrealloc(in->events, cap[k] * sizeof(*in->events));
		}
		/* stored relative to the process and the block (codes.h);
		 * added without overflow, whatever the file holds */
		int64_t what = sqlite3_column_int64(s, 2);
		int kind = hp_event_kind(what);
		uint64_t block = (uint64_t)sqlite3_column_int64(s, 5) >> HP_EVENT_EPOCH_SHIFT;
		int64_t addr = (int64_t)((uint64_t)sqlite3_column_int64(s, 3) + in->heap_start);
		int64_t bytes = sqlite3_column_int64(s, 4);
		if (kind == HP_HEV_BRK)
			bytes = (int64_t)((uint64_t)bytes + in->heap_start);
		/* brk: two breaks; the others: a range */
		if (addr < 0 || addr >= MAX_ADDR || bytes < 0 || bytes >= MAX_ADDR ||
		    (kind != HP_HEV_BRK && addr + bytes > MAX_ADDR) || block >= nev_blocks ||
		    !ev_base[block].set) {
			snprintf(err, errcap,
				 block >= nev_blocks || !ev_base[block].set
					 ? "damaged: a heap event of process %lld has no base time "
					   "(heap_event_epoch)"
					 : "damaged: a heap event of process %lld has an "
					   "address or size no process can have",
				 (long long)p->process_id);
			sqlite3_finalize(s);
			free(ev_base);
			free(unsorted);
			free(need);
			free(cap);
			return -1;
		}
		struct rp_event *ev = &in->events[in->nevents++];
		*ev = (struct rp_event){
			.ns = (int64_t)((uint64_t)ev_base[block].ns + (uint64_t)sqlite3_column_int64(s, 1)),
			.kind = (uint8_t)kind,
			.addr = (uint64_t)addr,
			.bytes = (uint64_t)bytes,
			.value = hp_event_has_value(kind) ? hp_event_value(what) : 0,
			.has_value = hp_event_has_value(kind),
		};
		if (in->nevents > 1 && ev->ns < ev[-1].ns)
			unsorted[k] = true;
	}
	sqlite3_finalize(s);
	free(ev_base);
	for (size_t k = 0; k < db->nprocs; k++)
		if (unsorted[k])
			sort_events(db->procs[k].in.events, db->procs[k].in.nevents);
	free(unsorted);
	free(need);
	if (rc != SQLITE_DONE || load_program_maps(db, err, errcap, cap) != 0) {
		free(cap);
		return rc != SQLITE_DONE ? fail_sql(db, err, errcap) : -1;
	}
	free(cap);
	if (load_marks(db, err, errcap) != 0 || load_settings(db, err, errcap) != 0)
		return -1;
	if (db->snapshots && load_snapshots(db, err, errcap) != 0)
		return -1;
	return load_sites(db, err, errcap);
}

/* ---- snapshot recordings ---- */

static int
load_summaries(struct ld_db *db, char *err, size_t errcap)
{
	sqlite3_stmt *s;
	int rc;

	if (sqlite3_prepare_v2(db->h,
			       "SELECT process_id, peak_live_bytes, peak_live_ns, peak_extent_bytes, "
			       "peak_extent_ns, worst_untrimmable_bytes, worst_untrimmable_ns "
			       "FROM heap_summary",
			       -1, &s, NULL) != SQLITE_OK)
		return fail_sql(db, err, errcap);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ld_process *p = find_proc(db, sqlite3_column_int64(s, 0));
		if (!p)
			continue;
		p->summary = (struct ld_summary){
			.present = true,
			.peak_live = (uint64_t)sqlite3_column_int64(s, 1),
			.peak_live_ns = sqlite3_column_int64(s, 2),
			.peak_extent = (uint64_t)sqlite3_column_int64(s, 3),
			.peak_extent_ns = sqlite3_column_int64(s, 4),
			.worst_untrimmable = (uint64_t)sqlite3_column_int64(s, 5),
			.worst_ns = sqlite3_column_int64(s, 6),
		};
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : fail_sql(db, err, errcap);
}

/* Each wanted process's snapshots (by time), its summary, and the chunks
 * live at its exit snapshot (its leaks). */
static int
load_snapshots(struct ld_db *db, char *err, size_t errcap)
{
	sqlite3_stmt *s;
	int rc;

	if (load_summaries(db, err, errcap) != 0)
		return -1;
	if (sqlite3_prepare_v2(db->h,
			       "SELECT snapshot_id, process_id, ns, reason, untrimmable_bytes, "
			       "extent_bytes, live_bytes FROM snapshot ORDER BY ns, snapshot_id",
			       -1, &s, NULL) != SQLITE_OK)
		return fail_sql(db, err, errcap);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct ld_process *p = find_proc(db, sqlite3_column_int64(s, 1));
		const unsigned char *reason = sqlite3_column_text(s, 3);
		if (!p || !p->wanted || !reason)
			continue;
		if ((p->nsnaps & (p->nsnaps - 1)) == 0)
			p->snaps = xrealloc(p->snaps, (p->nsnaps ? 2 * p->nsnaps : 1) * sizeof(*p->snaps));
		struct ld_snapshot *x = &p->snaps[p->nsnaps++];
		x->id = sqlite3_column_int64(s, 0);
		x->ns = sqlite3_column_int64(s, 2);
		snprintf(x->reason, sizeof(x->reason), "%s", (const char *)reason);
		x->untrimmable = (uint64_t)sqlite3_column_int64(s, 4);
		x->extent = (uint64_t)sqlite3_column_int64(s, 5);
		x->live = (uint64_t)sqlite3_column_int64(s, 6);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return fail_sql(db, err, errcap);
	for (size_t i = 0; i < db->nprocs; i++) {
		struct ld_process *p = &db->procs[i];
		struct rp_snapshot snap;
		for (size_t k = 0; k < p->nsnaps; k++) {
			if (strcmp(p->snaps[k].reason, "exit") != 0)
				continue;
			if (ld_snapshot(db, p->snaps[k].id, &snap, err, errcap) != 0)
				return -1;
			free(p->in.chunks);
			p->in.chunks = xmalloc((snap.nentries ? snap.nentries : 1) *
					       sizeof(*p->in.chunks));
			p->in.nchunks = 0;
			for (size_t j = 0; j < snap.nentries; j++)
				if (snap.entries[j].occupant == HP_OCC_LIVE)
					p->in.chunks[p->in.nchunks++] = snap.entries[j].c;
			ld_snapshot_free(&snap);
		}
	}
	return 0;
}

/* The first and last row ids of a snapshot's rows of one table, from its
 * snapshot row (first column `from`); false if it has none. */
static bool
snapshot_rows(struct ld_db *db, int64_t id, const char *from, const char *to, int64_t *lo,
	      int64_t *hi)
{
	char sql[160];
	sqlite3_stmt *s;
	bool got = false;

	snprintf(sql, sizeof(sql), "SELECT %s, %s FROM snapshot WHERE snapshot_id = ?1", from, to);
	if (sqlite3_prepare_v2(db->h, sql, -1, &s, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_int64(s, 1, id);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
		*lo = sqlite3_column_int64(s, 0);
		*hi = sqlite3_column_type(s, 1) == SQLITE_NULL ? *lo : sqlite3_column_int64(s, 1);
		got = true;
	}
	sqlite3_finalize(s);
	return got;
}

int
ld_snapshot(struct ld_db *db, int64_t id, struct rp_snapshot *out, char *err, size_t errcap)
{
	sqlite3_stmt *s;
	int rc;
	int64_t lo, hi;
	size_t cap;

	memset(out, 0, sizeof(*out));
	/* its rows, or those of the snapshot whose state it shares (which
	 * has rows of its own) */
	if (sqlite3_prepare_v2(db->h,
			       "SELECT s.ns, coalesce(s.rows_of, s.snapshot_id), s.rows_of IS NULL OR "
			       "EXISTS (SELECT 1 FROM snapshot o WHERE o.snapshot_id = s.rows_of "
			       "AND o.rows_of IS NULL AND o.process_id = s.process_id) "
			       "FROM snapshot s WHERE s.snapshot_id = ?1",
			       -1, &s, NULL) != SQLITE_OK)
		return fail_sql(db, err, errcap);
	sqlite3_bind_int64(s, 1, id);
	rc = sqlite3_step(s);
	int64_t asked = id;
	bool owner_ok = false;
	if (rc == SQLITE_ROW) {
		out->ns = sqlite3_column_int64(s, 0);
		id = sqlite3_column_int64(s, 1);
		owner_ok = sqlite3_column_int(s, 2) != 0;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_ROW) {
		snprintf(err, errcap, "damaged: no snapshot %lld", (long long)id);
		return -1;
	}
	if (!owner_ok) {
		snprintf(err, errcap,
			 "damaged: snapshot %lld shares the rows of snapshot %lld, which has none "
			 "of its own",
			 (long long)asked, (long long)id);
		return -1;
	}
	/* heaps */
	if (sqlite3_prepare_v2(db->h,
			       "SELECT start, end_address, backing FROM snapshot_heap "
			       "WHERE snapshot_id = ?1 ORDER BY rowid",
			       -1, &s, NULL) != SQLITE_OK)
		return fail_sql(db, err, errcap);
	sqlite3_bind_int64(s, 1, id);
	cap = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		uint64_t start = (uint64_t)sqlite3_column_int64(s, 0);
		uint64_t end = (uint64_t)sqlite3_column_int64(s, 1);
		if (end < start || (end - start) >> 40) {
			sqlite3_finalize(s);
			ld_snapshot_free(out);
			snprintf(err, errcap, "damaged: a heap of snapshot %lld out of range",
				 (long long)id);
			return -1;
		}
		if (out->nheaps == cap) {
			cap = cap ? 2 * cap : 4;
			out->heaps = xrealloc(out->heaps, cap * sizeof(*out->heaps));
		}
		out->heaps[out->nheaps++] = (struct rp_heap){
			.start = start,
			.end = end,
			.kind = sqlite3_column_int(s, 2) == HP_BACKING_BRK ? HP_BACKING_BRK : HP_BACKING_ARENA,
		};
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		ld_snapshot_free(out);
		return fail_sql(db, err, errcap);
	}
	/* their resident pages */
	if (sqlite3_prepare_v2(db->h,
			       "SELECT address, bytes FROM snapshot_resident WHERE snapshot_id = ?1",
			       -1, &s, NULL) != SQLITE_OK) {
		ld_snapshot_free(out);
		return fail_sql(db, err, errcap);
	}
	sqlite3_bind_int64(s, 1, id);
	cap = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		uint64_t addr = (uint64_t)sqlite3_column_int64(s, 0);
		uint64_t bytes = (uint64_t)sqlite3_column_int64(s, 1);
		if (bytes >> 40 || addr >> 56)
			continue;
		if (out->nresident == cap) {
			cap = cap ? 2 * cap : 64;
			out->resident = xrealloc(out->resident, cap * sizeof(*out->resident));
		}
		out->resident[out->nresident++] = (struct rp_run){ addr, bytes };
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		ld_snapshot_free(out);
		return fail_sql(db, err, errcap);
	}
	/* what occupied them */
	if (snapshot_rows(db, id, "first_chunk_id", "last_chunk_id", &lo, &hi)) {
		if (sqlite3_prepare_v2(db->h,
				       "SELECT c.address, o.size, o.chunk_bytes, o.occupant, "
				       "o.backing, o.fate, c.alloc_ns, c.free_ns, o.stack_id, "
				       "c.chunk_id FROM snapshot_chunk_packed c "
				       "LEFT JOIN snapshot_origin o ON o.origin_id = c.origin "
				       "WHERE c.chunk_id BETWEEN ?1 AND ?2 AND c.snapshot_id = ?3",
				       -1, &s, NULL) != SQLITE_OK) {
			ld_snapshot_free(out);
			return fail_sql(db, err, errcap);
		}
		sqlite3_bind_int64(s, 1, lo);
		sqlite3_bind_int64(s, 2, hi);
		sqlite3_bind_int64(s, 3, id);
		cap = 0;
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			if (out->nentries == cap) {
				cap = cap ? 2 * cap : 1024;
				out->entries = xrealloc(out->entries, cap * sizeof(*out->entries));
			}
			struct rp_snap_entry *x = &out->entries[out->nentries++];
			int occ = sqlite3_column_int(s, 3);
			*x = (struct rp_snap_entry){
				.c = {
					.addr = (uint64_t)sqlite3_column_int64(s, 0),
					.size = (uint64_t)sqlite3_column_int64(s, 1),
					.bytes = (uint64_t)sqlite3_column_int64(s, 2),
					.backing = (uint8_t)(sqlite3_column_int(s, 4) & 3),
					.fate = (uint8_t)(sqlite3_column_int(s, 5) & 7),
					.alloc_ns = sqlite3_column_int64(s, 6),
					.free_ns = sqlite3_column_int64(s, 7),
					.stack_id = sqlite3_column_int64(s, 8),
					.chunk_id = sqlite3_column_int64(s, 9),
				},
				.occupant = (uint8_t)(occ >= HP_OCC_LIVE && occ <= HP_OCC_ALLOCATOR ? occ : 0),
			};
			/* a chunk bigger than any heap is not one (nor one whose
			 * snapshot_origin row is missing: occupant NULL) */
			if (x->c.bytes >> 40)
				x->occupant = 0;
		}
		sqlite3_finalize(s);
		if (rc != SQLITE_DONE) {
			ld_snapshot_free(out);
			return fail_sql(db, err, errcap);
		}
	}
	/* who held the holes */
	if (snapshot_rows(db, id, "first_former_id", "last_former_id", &lo, &hi)) {
		if (sqlite3_prepare_v2(db->h,
				       "SELECT address, bytes, stack_id, vacated_ns, chunks FROM snapshot_former "
				       "WHERE former_id BETWEEN ?1 AND ?2 AND snapshot_id = ?3",
				       -1, &s, NULL) != SQLITE_OK) {
			ld_snapshot_free(out);
			return fail_sql(db, err, errcap);
		}
		sqlite3_bind_int64(s, 1, lo);
		sqlite3_bind_int64(s, 2, hi);
		sqlite3_bind_int64(s, 3, id);
		cap = 0;
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			uint64_t bytes = (uint64_t)sqlite3_column_int64(s, 1);
			int64_t chunks = sqlite3_column_int64(s, 4);
			/* a chunk holds 16 bytes or more */
			if (bytes >> 40 || chunks < 1 || (uint64_t)chunks > bytes / 16)
				continue;
			if (out->nformers == cap) {
				cap = cap ? 2 * cap : 1024;
				out->formers = xrealloc(out->formers, cap * sizeof(*out->formers));
			}
			out->formers[out->nformers++] = (struct rp_former){
				.addr = (uint64_t)sqlite3_column_int64(s, 0),
				.bytes = bytes,
				.stack_id = sqlite3_column_int64(s, 2),
				.vacated_ns = sqlite3_column_int64(s, 3),
				.chunks = (uint64_t)chunks,
			};
		}
		sqlite3_finalize(s);
		if (rc != SQLITE_DONE) {
			ld_snapshot_free(out);
			return fail_sql(db, err, errcap);
		}
	}
	return 0;
}

void
ld_snapshot_free(struct rp_snapshot *s)
{
	free(s->heaps);
	free(s->resident);
	free(s->entries);
	free(s->formers);
	memset(s, 0, sizeof(*s));
}

size_t
ld_stack(struct ld_db *db, int64_t stack_id, struct ld_frame *out, size_t cap)
{
	struct ld_db_priv *p = (struct ld_db_priv *)db;
	size_t n = 0;

	if (!p->frames &&
	    sqlite3_prepare_v2(db->h, "SELECT y.function, y.file, y.line, i.path, f.offset "
				      "FROM " STACK_FRAMES " f "
				      "LEFT JOIN symbol y ON y.image_id = f.image_id "
				      "AND y.offset = f.offset "
				      "LEFT JOIN image i ON i.image_id = f.image_id "
				      "WHERE f.stack_id = ?1 ORDER BY f.depth, y.level", -1, &p->frames,
			       NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_int64(p->frames, 1, stack_id);
	while (n < cap && sqlite3_step(p->frames) == SQLITE_ROW) {
		out[n].function = keep(p, sqlite3_column_text(p->frames, 0));
		out[n].file = keep(p, sqlite3_column_text(p->frames, 1));
		out[n].line = sqlite3_column_int64(p->frames, 2);
		out[n].module = keep(p, sqlite3_column_text(p->frames, 3));
		out[n].offset = (uint64_t)sqlite3_column_int64(p->frames, 4);
		n++;
	}
	sqlite3_reset(p->frames);
	return n;
}

const char *
ld_frame_text(char *buf, size_t cap, const struct ld_frame *f)
{
	char fn[256];

	if (!f->function)
		snprintf(buf, cap, "0x%llx in %s", (unsigned long long)f->offset,
			 f->module ? path_base(f->module) : "?");
	else if (f->file && f->line > 0)
		snprintf(buf, cap, "%s (%s:%lld)", short_function(fn, sizeof(fn), f->function, 60),
			 path_base(f->file), (long long)f->line);
	else
		snprintf(buf, cap, "%s (%s)", short_function(fn, sizeof(fn), f->function, 60),
			 f->module ? path_base(f->module) : "?");
	return text_safe(buf);
}

/* The entry of a stack in stack_fns, or NULL. */
static const struct ld_stack_fn *
stack_fn(const struct ld_db *db, int64_t stack_id)
{
	size_t lo = 0, hi = db->nstack_fns;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (db->stack_fns[mid].stack_id < stack_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < db->nstack_fns && db->stack_fns[lo].stack_id == stack_id ? &db->stack_fns[lo]
									      : NULL;
}

size_t
ld_stack_slot(struct ld_db *db, int64_t stack_id)
{
	const struct ld_stack_fn *x = stack_fn(db, stack_id);

	return x ? (size_t)(x - db->stack_fns) + 1 : 0;
}

size_t
ld_site_index(struct ld_db *db, int64_t stack_id)
{
	struct ld_frame f[64];
	size_t n;

	if (db->sites_loaded) {
		const struct ld_stack_fn *x = stack_fn(db, stack_id);
		return x ? (size_t)x->site : 0;
	}
	/* not loaded (ld_open without ld_load): this stack's alone */
	if (stack_id < 1 || load_wrappers(db) != 0 || (n = ld_stack(db, stack_id, f, 64)) == 0)
		return 0;
	for (size_t k = 0; k < n; k++)
		if (!is_wrapper(&((struct ld_db_priv *)db)->wrappers, f[k].function, f[k].file,
				f[k].module))
			return k;
	return 0;
}

const char *
ld_site_text(struct ld_db *db, int64_t stack_id, char *buf, size_t cap)
{
	struct ld_frame f[64];
	size_t k = ld_site_index(db, stack_id), n;

	if (k >= 64)
		k = 63;
	if (stack_id <= 0 || (n = ld_stack(db, stack_id, f, k + 1)) == 0) {
		snprintf(buf, cap, "(no stack recorded)");
		return buf;
	}
	return ld_frame_text(buf, cap, &f[n - 1 < k ? n - 1 : k]);
}

int64_t
ld_group_function(void *arg, int64_t stack_id)
{
	const struct ld_stack_fn *x = stack_fn(arg, stack_id);

	if (stack_id < 1)
		return 0;
	/* a stack whose function is not known is a group of its own */
	return x ? x->fn : -stack_id;
}

const char *
ld_function_name(struct ld_db *db, int64_t key)
{
	return key >= 1 && (size_t)key <= db->nfns ? db->fn_names[key - 1] : NULL;
}

/* One text from a query on a process, kept until ld_close; "" if none. */
static const char *
process_text(struct ld_db *db, const char *sql, int64_t process_id)
{
	struct ld_db_priv *p = (struct ld_db_priv *)db;
	sqlite3_stmt *s;
	const char *out = "";

	if (sqlite3_prepare_v2(db->h, sql, -1, &s, NULL) != SQLITE_OK)
		return out;
	sqlite3_bind_int64(s, 1, process_id);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
		out = keep(p, sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return out;
}

const char *
ld_args_json(struct ld_db *db, int64_t process_id)
{
	return process_text(db, "SELECT json_remove(argv, '$[0]') FROM process "
				"WHERE process_id = ?1 AND json_valid(argv)",
			    process_id);
}

const char *
ld_command_line(struct ld_db *db, int64_t process_id)
{
	return process_text(db, "SELECT group_concat(j.value, ' ') FROM process, "
				"json_each(process.argv) j WHERE process_id = ?1 "
				"AND json_valid(argv)",
			    process_id);
}

long
ld_timeline(struct ld_db *db, int64_t process_id, struct rp_point **out, char *err,
	    size_t errcap)
{
	sqlite3_stmt *s;
	size_t n = 0, cap = 0;
	int rc;

	*out = NULL;
	if (sqlite3_prepare_v2(db->h,
			       "SELECT ns, extent_bytes, live_bytes, cached_bytes, untrimmable_bytes "
			       "FROM heap_timeline WHERE process_id = ?1 ORDER BY ns",
			       -1, &s, NULL) != SQLITE_OK)
		return fail_sql(db, err, errcap);
	sqlite3_bind_int64(s, 1, process_id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			*out = xrealloc(*out, cap * sizeof(**out));
		}
		(*out)[n++] = (struct rp_point){
			.ns = sqlite3_column_int64(s, 0),
			.extent = (uint64_t)sqlite3_column_int64(s, 1),
			.live = (uint64_t)sqlite3_column_int64(s, 2),
			.cached = (uint64_t)sqlite3_column_int64(s, 3),
			.untrimmable = (uint64_t)sqlite3_column_int64(s, 4),
		};
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		free(*out);
		*out = NULL;
		return fail_sql(db, err, errcap);
	}
	return (long)n;
}

void
ld_close(struct ld_db *db)
{
	struct ld_db_priv *p = (struct ld_db_priv *)db;

	if (!db)
		return;
	sqlite3_finalize(p->frames);
	wrappers_free(&p->wrappers);
	sqlite3_close(db->h);
	for (size_t i = 0; i < db->nprocs; i++) {
		free(db->procs[i].exe);
		free(db->procs[i].end_reason);
		free(db->procs[i].in.chunks);
		free(db->procs[i].in.events);
		free(db->procs[i].snaps);
		free(db->procs[i].in.pmaps);
		for (size_t k = 0; k < db->procs[i].nmarks; k++)
			free(db->procs[i].marks[k].name);
		free(db->procs[i].marks);
		for (size_t k = 0; k < db->procs[i].nsettings; k++)
			free(db->procs[i].settings[k].line);
		free(db->procs[i].settings);
	}
	free(db->procs);
	for (size_t i = 0; i < db->nfns; i++)
		free(db->fn_names[i]);
	free(db->fn_names);
	free(db->stack_fns);
	free(p->by_id);
	for (size_t i = 0; i < db->nskip; i++)
		free(db->skip[i]);
	free(db->skip);
	for (size_t i = 0; i < p->strs.n; i++)
		free(p->strs.v[i]);
	free(p->strs.v);
	free(p);
}
