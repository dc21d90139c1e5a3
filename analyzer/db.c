/* SPDX-License-Identifier: MIT */
/*
 * db.c - writing a heapprof database (see db.h).
 *
 * One connection, prepared statements, transactions committed every
 * 100 ms. The schema's text is split at its "-- @indexes" and "-- @views"
 * markers: tables first, indexes and views after the load.
 */
#include "config.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "symbolize.h"
#include "util.h"

enum {
	S_PROCESS,
	S_THREAD,
	S_IMAGE_FIND,
	S_IMAGE_ADD,
	S_MODULE,
	S_MODULE_GONE,
	S_STACK,
	S_STACK_FRAME,
	S_CHUNK,
	S_HEAP_EVENT,
	S_META,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_PROCESS] = "INSERT OR REPLACE INTO process (process_id, pid, ppid, parent_id, "
		      "exec_from, fork_seq, exe, argv, started_ns, ended_ns, end_reason, "
		      "exit_status, exit_signal, heap_start, dropped_events, truncated_records) "
		      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
	[S_THREAD] = "INSERT OR REPLACE INTO thread (process_id, tid, started_ns, ended_ns) "
		     "VALUES (?1, ?2, ?3, ?4)",
	[S_IMAGE_FIND] = "SELECT image_id FROM image WHERE path = ?1 AND build_id IS ?2",
	[S_IMAGE_ADD] = "INSERT INTO image (path, build_id) VALUES (?1, ?2)",
	[S_MODULE] = "INSERT INTO module (process_id, image_id, base, lo, hi, loaded_ns) "
		     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_MODULE_GONE] = "UPDATE module SET unloaded_ns = ?2 WHERE module_id = ?1",
	[S_STACK] = "INSERT INTO stack (stack_id, depth) VALUES (?1, ?2)",
	[S_STACK_FRAME] = "INSERT INTO stack_frame (stack_id, depth, image_id, offset) "
			  "VALUES (?1, ?2, ?3, ?4)",
	[S_CHUNK] = "INSERT INTO chunk (chunk_id, process_id, address, size, chunk_bytes, "
		    "backing, call, alloc_seq, alloc_ns, alloc_tid, free_seq, free_ns, free_tid, "
		    "fate, stack_id, realloc_from) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
		    "?10, ?11, ?12, ?13, ?14, ?15, ?16)",
	[S_HEAP_EVENT] = "INSERT INTO heap_event (process_id, seq, ns, kind, address, bytes, "
			 "value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_META] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
};

struct db {
	sqlite3 *h;
	sqlite3_stmt *s[S_COUNT];
	uint64_t batch_started;
	char error[512];
};

static void
fail(struct db *db, const char *what)
{
	if (db->error[0] == '\0')
		snprintf(db->error, sizeof(db->error), "%s: %s", what, sqlite3_errmsg(db->h));
}

const char *
db_failed(struct db *db)
{
	return db->error[0] ? db->error : NULL;
}

static bool
exec(struct db *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		if (db->error[0] == '\0')
			snprintf(db->error, sizeof(db->error), "%s", msg ? msg : "error");
		sqlite3_free(msg);
		return false;
	}
	return true;
}

/* The part of the schema between two marker lines (NULL: start or end). */
static char *
schema_part(const char *from, const char *to)
{
	const char *a = from ? strstr(hp_schema_sql, from) : hp_schema_sql;
	const char *b = to ? strstr(hp_schema_sql, to) : NULL;

	if (a && from)
		a++; /* the marker's own newline */
	size_t n;
	char *s;

	if (!a)
		return xstrdup("");
	if (!b)
		b = a + strlen(a);
	n = (size_t)(b - a);
	s = xmalloc(n + 1);
	memcpy(s, a, n);
	s[n] = '\0';
	return s;
}

struct db *
db_create(const char *path, char *err, size_t errcap)
{
	struct db *db = xcalloc(1, sizeof(*db));
	char *tables;

	if (sqlite3_open_v2(path, &db->h,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE,
			    NULL) != SQLITE_OK) {
		snprintf(err, errcap, "cannot open: %s", db->h ? sqlite3_errmsg(db->h) : "?");
		sqlite3_close(db->h);
		free(db);
		return NULL;
	}
	/* WAL: what is committed survives a collector crash; NORMAL is
	 * consistent in WAL mode and does not fsync every batch. */
	tables = schema_part(NULL, "\n-- @indexes\n");
	if (!exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;") ||
	    !exec(db, "BEGIN") || !exec(db, tables)) {
		snprintf(err, errcap, "cannot create the schema: %s", db->error);
		free(tables);
		sqlite3_close(db->h);
		free(db);
		return NULL;
	}
	free(tables);
	for (int i = 0; i < S_COUNT; i++)
		if (sqlite3_prepare_v3(db->h, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &db->s[i],
				       NULL) != SQLITE_OK) {
			snprintf(err, errcap, "cannot prepare: %s", sqlite3_errmsg(db->h));
			for (int j = 0; j < i; j++)
				sqlite3_finalize(db->s[j]);
			sqlite3_close(db->h);
			free(db);
			return NULL;
		}
	db_meta(db, "heapprof_version", HP_VERSION);
	db_meta(db, "complete", "0");
	exec(db, "COMMIT; BEGIN");
	db->batch_started = mono_ns();
	return db;
}

void
db_tick(struct db *db)
{
	if (mono_ns() - db->batch_started < 100000000ULL || db->error[0])
		return;
	exec(db, "COMMIT; BEGIN");
	db->batch_started = mono_ns();
}

static void
step(struct db *db, int which, const char *what)
{
	sqlite3_stmt *s = db->s[which];

	if (sqlite3_step(s) != SQLITE_DONE)
		fail(db, what);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

static void
bind_opt(sqlite3_stmt *s, int i, int64_t v, bool present)
{
	if (present)
		sqlite3_bind_int64(s, i, v);
	else
		sqlite3_bind_null(s, i);
}

static void
bind_text(sqlite3_stmt *s, int i, const char *t)
{
	if (t)
		sqlite3_bind_text(s, i, t, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

void
db_meta(struct db *db, const char *key, const char *value)
{
	sqlite3_stmt *s = db->s[S_META];

	bind_text(s, 1, key);
	bind_text(s, 2, value);
	step(db, S_META, "meta");
}

void
db_process(struct db *db, const struct db_process *p)
{
	sqlite3_stmt *s = db->s[S_PROCESS];

	sqlite3_bind_int64(s, 1, p->id);
	sqlite3_bind_int64(s, 2, p->pid);
	bind_opt(s, 3, p->ppid, p->ppid > 0);
	bind_opt(s, 4, p->parent_id, p->parent_id > 0);
	bind_opt(s, 5, p->exec_from, p->exec_from > 0);
	bind_opt(s, 6, p->fork_seq, p->fork_seq > 0);
	bind_text(s, 7, p->exe);
	bind_text(s, 8, p->argv_json);
	bind_opt(s, 9, p->started_ns, p->started_ns > 0);
	bind_opt(s, 10, p->ended_ns, p->ended_ns > 0);
	bind_text(s, 11, p->end_reason);
	bind_opt(s, 12, p->exit_status, p->exit_status >= 0);
	bind_opt(s, 13, p->exit_signal, p->exit_signal >= 0);
	bind_opt(s, 14, p->heap_start, p->heap_start > 0);
	sqlite3_bind_int64(s, 15, p->dropped_events);
	sqlite3_bind_int64(s, 16, p->truncated_records);
	step(db, S_PROCESS, "process");
}

void
db_thread(struct db *db, int64_t process_id, int64_t tid, int64_t started_ns, int64_t ended_ns)
{
	sqlite3_stmt *s = db->s[S_THREAD];

	sqlite3_bind_int64(s, 1, process_id);
	sqlite3_bind_int64(s, 2, tid);
	bind_opt(s, 3, started_ns, started_ns > 0);
	bind_opt(s, 4, ended_ns, ended_ns > 0);
	step(db, S_THREAD, "thread");
}

int64_t
db_image(struct db *db, const char *path, const char *build_id)
{
	sqlite3_stmt *s = db->s[S_IMAGE_FIND];
	int64_t id = 0;

	bind_text(s, 1, path);
	bind_text(s, 2, build_id);
	if (sqlite3_step(s) == SQLITE_ROW)
		id = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (id)
		return id;
	s = db->s[S_IMAGE_ADD];
	bind_text(s, 1, path);
	bind_text(s, 2, build_id);
	step(db, S_IMAGE_ADD, "image");
	return sqlite3_last_insert_rowid(db->h);
}

int64_t
db_module(struct db *db, int64_t process_id, int64_t image_id, uint64_t base, uint64_t lo,
	  uint64_t hi, int64_t loaded_ns)
{
	sqlite3_stmt *s = db->s[S_MODULE];

	sqlite3_bind_int64(s, 1, process_id);
	sqlite3_bind_int64(s, 2, image_id);
	sqlite3_bind_int64(s, 3, (int64_t)base);
	sqlite3_bind_int64(s, 4, (int64_t)lo);
	sqlite3_bind_int64(s, 5, (int64_t)hi);
	sqlite3_bind_int64(s, 6, loaded_ns);
	step(db, S_MODULE, "module");
	return sqlite3_last_insert_rowid(db->h);
}

void
db_module_unloaded(struct db *db, int64_t module_id, int64_t ns)
{
	sqlite3_stmt *s = db->s[S_MODULE_GONE];

	sqlite3_bind_int64(s, 1, module_id);
	sqlite3_bind_int64(s, 2, ns);
	step(db, S_MODULE_GONE, "module");
}

void
db_stack(struct db *db, int64_t stack_id, unsigned depth, const int64_t *image_ids,
	 const uint64_t *offsets)
{
	sqlite3_stmt *s = db->s[S_STACK];

	sqlite3_bind_int64(s, 1, stack_id);
	sqlite3_bind_int64(s, 2, depth);
	step(db, S_STACK, "stack");
	s = db->s[S_STACK_FRAME];
	for (unsigned i = 0; i < depth; i++) {
		sqlite3_bind_int64(s, 1, stack_id);
		sqlite3_bind_int64(s, 2, i);
		bind_opt(s, 3, image_ids[i], image_ids[i] > 0);
		sqlite3_bind_int64(s, 4, (int64_t)offsets[i]);
		step(db, S_STACK_FRAME, "stack_frame");
	}
}

void
db_chunk(struct db *db, const struct db_chunk *c)
{
	sqlite3_stmt *s = db->s[S_CHUNK];

	sqlite3_bind_int64(s, 1, c->chunk_id);
	sqlite3_bind_int64(s, 2, c->process_id);
	sqlite3_bind_int64(s, 3, (int64_t)c->address);
	sqlite3_bind_int64(s, 4, (int64_t)c->size);
	sqlite3_bind_int64(s, 5, (int64_t)c->chunk_bytes);
	sqlite3_bind_int64(s, 6, c->backing);
	sqlite3_bind_int64(s, 7, c->call);
	sqlite3_bind_int64(s, 8, c->alloc_seq);
	sqlite3_bind_int64(s, 9, c->alloc_ns);
	sqlite3_bind_int64(s, 10, c->alloc_tid);
	bind_opt(s, 11, c->free_seq, c->free_seq > 0);
	bind_opt(s, 12, c->free_ns, c->free_seq > 0);
	bind_opt(s, 13, c->free_tid, c->free_seq > 0);
	bind_opt(s, 14, c->fate, c->free_seq > 0 && c->fate > 0);
	bind_opt(s, 15, c->stack_id, c->stack_id > 0);
	bind_opt(s, 16, c->realloc_from, c->realloc_from > 0);
	step(db, S_CHUNK, "chunk");
}

void
db_heap_event(struct db *db, int64_t process_id, int64_t seq, int64_t ns, int kind,
	      uint64_t address, uint64_t bytes, int64_t value, bool has_value)
{
	sqlite3_stmt *s = db->s[S_HEAP_EVENT];

	sqlite3_bind_int64(s, 1, process_id);
	sqlite3_bind_int64(s, 2, seq);
	sqlite3_bind_int64(s, 3, ns);
	sqlite3_bind_int64(s, 4, kind);
	sqlite3_bind_int64(s, 5, (int64_t)address);
	sqlite3_bind_int64(s, 6, (int64_t)bytes);
	bind_opt(s, 7, value, has_value);
	step(db, S_HEAP_EVENT, "heap_event");
}

/* ---- symbolization ---- */

#define MAX_LOGICAL 16 /* inlined frames per physical frame */

struct sym_entry {
	int64_t image_id;
	uint64_t offset;
	int n;
	struct sym_frame f[MAX_LOGICAL];
	struct sym_entry *next;
};

#define SYM_BUCKETS 65536

static struct sym_entry *
sym_cached(struct sym_entry **tab, struct sym_ctx *ctx, sqlite3 *h, int64_t image_id,
	   uint64_t offset, const char **module)
{
	size_t b = ((uint64_t)image_id * 0x9e3779b97f4a7c15ULL ^ offset) % SYM_BUCKETS;
	struct sym_entry *e;
	sqlite3_stmt *q;
	char err[256];

	for (e = tab[b]; e; e = e->next)
		if (e->image_id == image_id && e->offset == offset)
			return e;
	e = xcalloc(1, sizeof(*e));
	e->image_id = image_id;
	e->offset = offset;
	e->next = tab[b];
	tab[b] = e;
	*module = NULL;
	if (image_id <= 0)
		return e;
	if (sqlite3_prepare_v2(h, "SELECT path, build_id FROM image WHERE image_id = ?1", -1, &q,
			       NULL) != SQLITE_OK)
		return e;
	sqlite3_bind_int64(q, 1, image_id);
	if (sqlite3_step(q) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(q, 0);
		const char *bid = (const char *)sqlite3_column_text(q, 1);

		/* a return address: look up the call instruction before it */
		e->n = sym_lookup(ctx, path, bid, offset ? offset - 1 : 0, e->f, MAX_LOGICAL, err,
				  sizeof(err));
		if (e->n < 0)
			e->n = 0;
	}
	sqlite3_finalize(q);
	return e;
}

static bool
symbolize_frames(struct db *db)
{
	struct sym_entry **tab = xcalloc(SYM_BUCKETS, sizeof(*tab));
	struct sym_ctx *ctx = sym_open();
	sqlite3_stmt *q = NULL, *ins = NULL;
	int64_t cur_stack = -1, logical = 0;
	bool ok = true;

	if (ctx == NULL)
		ok = false;
	if (ok && (sqlite3_prepare_v2(db->h,
				      "SELECT f.stack_id, f.depth, f.image_id, f.offset, i.path "
				      "FROM stack_frame f LEFT JOIN image i USING (image_id) "
				      "ORDER BY f.stack_id, f.depth",
				      -1, &q, NULL) != SQLITE_OK ||
		   sqlite3_prepare_v2(db->h,
				      "INSERT INTO frame (stack_id, depth, function, file, line, "
				      "module, offset, inlined) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
				      -1, &ins, NULL) != SQLITE_OK)) {
		fail(db, "symbolize");
		ok = false;
	}
	while (ok && sqlite3_step(q) == SQLITE_ROW) {
		int64_t stack_id = sqlite3_column_int64(q, 0);
		int64_t image_id = sqlite3_column_type(q, 2) == SQLITE_NULL ? 0
									 : sqlite3_column_int64(q, 2);
		uint64_t offset = (uint64_t)sqlite3_column_int64(q, 3);
		const char *path = (const char *)sqlite3_column_text(q, 4);
		const char *ignored;
		struct sym_entry *e = sym_cached(tab, ctx, db->h, image_id, offset, &ignored);

		if (stack_id != cur_stack) {
			cur_stack = stack_id;
			logical = 0;
		}
		int n = e->n > 0 ? e->n : 1;
		for (int i = 0; i < n; i++) {
			sqlite3_bind_int64(ins, 1, stack_id);
			sqlite3_bind_int64(ins, 2, logical++);
			bind_text(ins, 3, e->n > 0 ? e->f[i].function : NULL);
			bind_text(ins, 4, e->n > 0 ? e->f[i].file : NULL);
			bind_opt(ins, 5, e->n > 0 ? e->f[i].line : 0, e->n > 0 && e->f[i].line > 0);
			bind_text(ins, 6, path);
			sqlite3_bind_int64(ins, 7, (int64_t)offset);
			sqlite3_bind_int64(ins, 8, e->n > 0 && e->f[i].inlined);
			if (sqlite3_step(ins) != SQLITE_DONE) {
				fail(db, "frame");
				ok = false;
			}
			sqlite3_reset(ins);
		}
	}
	sqlite3_finalize(q);
	sqlite3_finalize(ins);
	for (size_t b = 0; b < SYM_BUCKETS; b++)
		for (struct sym_entry *e = tab[b], *next; e; e = next) {
			next = e->next;
			for (int i = 0; i < e->n; i++)
				sym_frame_clear(&e->f[i]);
			free(e);
		}
	free(tab);
	if (ctx)
		sym_close(ctx);
	return ok;
}

void
db_totals(struct db *db, struct db_totals *t)
{
	static const char *const sql[] = {
		"SELECT count(*) FROM process",
		"SELECT count(*) FROM chunk",
		"SELECT count(*) FROM stack",
		"SELECT count(*) FROM chunk WHERE free_seq IS NULL",
		"SELECT coalesce(sum(size), 0) FROM chunk WHERE free_seq IS NULL",
	};
	int64_t *out[] = { &t->processes, &t->chunks, &t->stacks, &t->live_chunks,
			   &t->live_bytes };

	for (size_t i = 0; i < sizeof(sql) / sizeof(sql[0]); i++) {
		sqlite3_stmt *q;

		*out[i] = 0;
		if (sqlite3_prepare_v2(db->h, sql[i], -1, &q, NULL) != SQLITE_OK)
			continue;
		if (sqlite3_step(q) == SQLITE_ROW)
			*out[i] = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
	}
}

static void
close_db(struct db *db)
{
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(db->s[i]);
	sqlite3_close(db->h);
	free(db);
}

int
db_finish(struct db *db, char *err, size_t errcap)
{
	char *indexes = schema_part("\n-- @indexes\n", "\n-- @views\n");
	char *views = schema_part("\n-- @views\n", NULL);
	bool ok = !db->error[0] && exec(db, "COMMIT; BEGIN") && exec(db, indexes) &&
		  symbolize_frames(db) && exec(db, views);

	if (ok) {
		db_meta(db, "complete", "1");
		ok = !db->error[0] && exec(db, "COMMIT") &&
		     exec(db, "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;");
	}
	free(indexes);
	free(views);
	if (!ok)
		snprintf(err, errcap, "%s", db->error[0] ? db->error : "cannot finish");
	close_db(db);
	return ok ? 0 : -1;
}

void
db_abandon(struct db *db)
{
	exec(db, "COMMIT");
	close_db(db);
}
