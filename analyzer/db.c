/* SPDX-License-Identifier: MIT */
/*
 * db.c - writing a heapprof database (see db.h).
 *
 * The collector's thread does not wait on SQLite: what it writes is
 * gathered into a batch (bulk rows in arrays, everything else as encoded
 * operations, in order) and handed to a writer thread, which owns the
 * connection until db_finish and commits every 100 ms. At most a few
 * batches wait; past that the collector waits, so memory stays bounded.
 * Ids the collector needs back (images, modules) are assigned here, on the
 * collector's side. The schema's text is split at its "-- @indexes" and
 * "-- @views" markers: tables and views first (committed before the first
 * row, so that a run cut off still has its views), indexes after the load.
 */
#include "config.h"

#include <malloc.h>
#include <pthread.h>
#include <stddef.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "symbolize.h"
#include "symworker.h"
#include "util.h"

enum {
	S_PROCESS,
	S_THREAD,
	S_IMAGE,
	S_MODULE,
	S_MODULE_GONE,
	S_STACK,
	S_STACK_FRAME,
	S_CHUNK_ROWS,
	S_REALLOC_ROWS,
	S_SLACK_ROWS,
	S_EVENT_ROWS,
	S_RESIZE_ROWS,
	S_CHUNK_RELEASED,
	S_META,
	S_SUMMARY,
	S_TIMELINE,
	S_SNAPSHOT,
	S_SNAPSHOT_HEAP,
	S_SNAPCHUNK_ROWS,
	S_SNAP_ORIGIN,
	S_FORMER_ROWS,
	S_SITE_ROWS,
	S_DELETE_SNAPSHOT,
	S_DELETE_SNAPCHUNKS,
	S_DELETE_FORMERS,
	S_DELETE_SNAPHEAPS,
	S_RESIDENT_ROWS,
	S_DELETE_RESIDENT,
	S_INTERVAL,
	S_MERGE_SITES,
	S_DELETE_SITES,
	S_DELETE_INTERVAL,
	S_MARK,
	S_SETTING,
	S_PROGRAM_MMAP,
	S_CHUNK_EPOCH,
	S_CHUNK_ORIGIN,
	S_EVENT_EPOCH,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_PROCESS] = "INSERT OR REPLACE INTO process (process_id, pid, ppid, parent_id, "
		      "exec_from, fork_ns, exe, argv, started_ns, ended_ns, end_reason, "
		      "exit_status, exit_signal, heap_start, dropped_events, truncated_records, "
		      "bad_records) "
		      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
		      "?17)",
	[S_THREAD] = "INSERT OR REPLACE INTO thread (process_id, tid, started_ns, ended_ns) "
		     "VALUES (?1, ?2, ?3, ?4)",
	[S_IMAGE] = "INSERT INTO image (image_id, path, build_id) VALUES (?1, ?2, ?3)",
	[S_MODULE] = "INSERT INTO module (module_id, process_id, image_id, base, lo, hi, "
		     "loaded_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_MODULE_GONE] = "UPDATE module SET unloaded_ns = ?2 WHERE module_id = ?1",
	[S_STACK] = "INSERT INTO stack (stack_id, depth, tail_stack, tail_from, tail_at) "
		    "VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_STACK_FRAME] = "INSERT OR FAIL INTO stack_own_frame (stack_id, depth, image_id, offset) "
			  "SELECT * FROM hp_frame_rows",
	/* The bulk inserts are OR FAIL: a failing row keeps the rows before it
	 * (any failure ends the run's writing anyway), so SQLite needs no
	 * statement journal, which it otherwise kept in a temporary file: a
	 * copy of the last page for every statement of 1024 rows. */
	/* chunk_id is left to SQLite (the last one plus one): an insert that
	 * appends skips the search a given rowid costs (~20% faster); the ids
	 * are the collector's all the same, which write_batch checks */
	[S_CHUNK_ROWS] = "INSERT OR FAIL INTO chunk_packed (address, free_rel, free_after, "
			 "released_after, origin) SELECT * FROM hp_chunk_rows",
	[S_REALLOC_ROWS] = "INSERT OR FAIL INTO chunk_realloc (chunk_id, realloc_from) "
			   "SELECT * FROM hp_realloc_rows",
	[S_SLACK_ROWS] = "INSERT OR FAIL INTO chunk_slack (chunk_id, slack, align_log2) "
			 "SELECT * FROM hp_slack_rows",
	[S_EVENT_ROWS] = "INSERT OR FAIL INTO heap_event (process_id, ns_rel, address, bytes, what) "
			 "SELECT * FROM hp_event_rows",
	[S_RESIZE_ROWS] = "INSERT OR FAIL INTO heap_event_resize (event_id, size, old_size) "
			  "SELECT * FROM hp_resize_rows",
	[S_CHUNK_RELEASED] = "INSERT OR FAIL INTO chunk_released (chunk_id, released_after) "
			     "VALUES (?1, ?2)",
	[S_META] = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
	[S_SUMMARY] = "INSERT OR REPLACE INTO heap_summary VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
		      "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
	[S_TIMELINE] = "INSERT OR REPLACE INTO heap_timeline VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_SNAPSHOT] = "INSERT INTO snapshot VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
		       "?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
	[S_SNAPSHOT_HEAP] = "INSERT INTO snapshot_heap VALUES (?1, ?2, ?3, ?4)",
	/* snapshot rows come with their ids: a deleted snapshot's may have
	 * been the last ones */
	[S_SNAPCHUNK_ROWS] = "INSERT OR FAIL INTO snapshot_chunk_packed SELECT * FROM "
			     "hp_snapchunk_rows",
	[S_SNAP_ORIGIN] = "INSERT INTO snapshot_origin VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
			  "?10)",
	[S_FORMER_ROWS] = "INSERT OR FAIL INTO snapshot_former SELECT * FROM hp_former_rows",
	[S_SITE_ROWS] = "INSERT OR FAIL INTO site SELECT * FROM hp_site_rows",
	[S_DELETE_SNAPSHOT] = "DELETE FROM snapshot WHERE snapshot_id = ?1",
	[S_DELETE_SNAPCHUNKS] = "DELETE FROM snapshot_chunk_packed WHERE chunk_id BETWEEN ?1 AND ?2",
	[S_DELETE_FORMERS] = "DELETE FROM snapshot_former WHERE former_id BETWEEN ?1 AND ?2",
	[S_DELETE_SNAPHEAPS] = "DELETE FROM snapshot_heap WHERE snapshot_id = ?1",
	[S_RESIDENT_ROWS] = "INSERT OR FAIL INTO snapshot_resident SELECT * FROM hp_resident_rows",
	[S_DELETE_RESIDENT] = "DELETE FROM snapshot_resident WHERE snapshot_id = ?1",
	[S_INTERVAL] = "INSERT OR REPLACE INTO interval VALUES (?1, ?2, ?3, ?4)",
	/* interval ?2's sites added into interval ?1's ("WHERE true": an
	 * INSERT ... SELECT with an upsert needs a WHERE to parse) */
	[S_MERGE_SITES] = "INSERT INTO site SELECT ?1, stack_id, backing, allocs, alloc_bytes, frees, "
			  "free_bytes, peak_live_bytes, freed_in_1us, freed_in_10us, "
			  "freed_in_100us, freed_in_1ms, freed_in_10ms, freed_in_100ms, "
			  "freed_in_1s, freed_in_10s, freed_in_100s, freed_later "
			  "FROM site WHERE interval_id = ?2 AND true "
			  "ON CONFLICT DO UPDATE SET allocs = allocs + excluded.allocs, "
			  "alloc_bytes = alloc_bytes + excluded.alloc_bytes, "
			  "frees = frees + excluded.frees, free_bytes = free_bytes + excluded.free_bytes, "
			  "peak_live_bytes = max(peak_live_bytes, excluded.peak_live_bytes), "
			  "freed_in_1us = freed_in_1us + excluded.freed_in_1us, "
			  "freed_in_10us = freed_in_10us + excluded.freed_in_10us, "
			  "freed_in_100us = freed_in_100us + excluded.freed_in_100us, "
			  "freed_in_1ms = freed_in_1ms + excluded.freed_in_1ms, "
			  "freed_in_10ms = freed_in_10ms + excluded.freed_in_10ms, "
			  "freed_in_100ms = freed_in_100ms + excluded.freed_in_100ms, "
			  "freed_in_1s = freed_in_1s + excluded.freed_in_1s, "
			  "freed_in_10s = freed_in_10s + excluded.freed_in_10s, "
			  "freed_in_100s = freed_in_100s + excluded.freed_in_100s, "
			  "freed_later = freed_later + excluded.freed_later",
	[S_DELETE_SITES] = "DELETE FROM site WHERE interval_id = ?1",
	[S_DELETE_INTERVAL] = "DELETE FROM interval WHERE interval_id = ?1",
	[S_MARK] = "INSERT INTO mark (process_id, ns, name) VALUES (?1, ?2, ?3)",
	[S_SETTING] = "INSERT INTO malloc_setting (process_id, ns, param, value, line) "
		      "VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_PROGRAM_MMAP] = "INSERT INTO program_mmap VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[S_CHUNK_EPOCH] = "INSERT INTO chunk_epoch (block, base_ns) VALUES (?1, ?2)",
	[S_CHUNK_ORIGIN] = "INSERT INTO chunk_origin (origin_id, process_id, backing, call, size, "
			   "fate, stack_id, alloc_tid, free_tid, slack_stored, base) "
			   "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[S_EVENT_EPOCH] = "INSERT INTO heap_event_epoch (block, base_ns) VALUES (?1, ?2)",
};

/* ---- bulk rows: arrays read by a virtual table ---- */

/*
 * Chunks and heap events are inserted a batch at a time by an INSERT ...
 * SELECT from a virtual table over an array: one statement step per batch,
 * no binding of each value (measured ~35% more rows a second than
 * multi-row VALUES with bound parameters).
 */
#define BATCH 1024
#define CHUNK_COLS 5 /* of chunk_packed, as db_chunk sets them */
#define CHUNK_RELEASED_COL 3
#define PAIR_COLS 2  /* chunk_realloc: chunk_id and a value */
#define SLACK_COLS 3 /* chunk_slack: chunk_id, slack, align_log2 */
#define FRAME_COLS 4
#define EVENT_COLS 5
#define RESIZE_COLS 3 /* heap_event_resize: event_id, size, old_size */
#define SNAPCHUNK_COLS 14 /* as the view snapshot_chunk has them */
#define SNAPPACKED_COLS 6 /* of snapshot_chunk_packed */
/* snapshot_chunk's columns that are snapshot_origin's (its key) */
static const unsigned snap_origin_col[] = { 3, 4, 5, 6, 7, 8, 10, 12, 13 };
#define SNAP_ORIGIN_KEYS (sizeof(snap_origin_col) / sizeof(snap_origin_col[0]))
#define FORMER_COLS 7
#define SITE_COLS 18
#define RESIDENT_COLS 3
/* Batches handed over but not written yet: room for bursts. A program
 * that frees much at once (perl's global destruction, python dropping a
 * big structure) makes rows faster than the writer writes them; with room
 * for 64K rows the program runs on meanwhile instead of waiting on full
 * rings. perl text.pl, 7 alternating runs: 6 batches 2.05 s, 64 2.09 s,
 * 128 2.05 s, 256 1.98 s, 512 1.91 s; 256 against 512 (5 alternating
 * pairs): perl 2.55 s against 2.58 s and 175 MB peak RSS against 196,
 * python3 alloc.py x0.4 4.00 s against 4.23 and 180 MB against 194, the
 * churn 0.80 s either way and 66 MB against 83. Then 64 against 256 (the
 * held batches are most of what the collector has besides its model at
 * its peak, the end of a run, when every live chunk's row is made): perl
 * 3.39 s against 3.84 s (10 alternating pairs, medians, busy host), 154
 * MiB against 166; cc1 2.27 s against 2.48, 67 against 68 MiB; python3
 * alloc.py x1 16.5 s either way (6 pairs), 281 MiB against 300; the churn
 * 0.93 s against 1.05, 44 against 57 MiB. */
#define MAX_QUEUED 64

struct rowbuf {
	unsigned ncols, n;
	int64_t *v;      /* BATCH rows of ncols values */
	uint32_t *nulls; /* per row: bit k set, column k is NULL */
};

/* What a virtual table reads: the writer points `cur` at a batch's rows. */
struct rowsource {
	const char *decl;
	struct rowbuf *cur;
};

struct rows_vtab {
	sqlite3_vtab base;
	struct rowsource *src;
};

struct rows_cursor {
	sqlite3_vtab_cursor base;
	unsigned row;
};

static int
rows_connect(sqlite3 *h, void *aux, int argc, const char *const *argv, sqlite3_vtab **out,
	     char **err)
{
	struct rowsource *src = aux;
	struct rows_vtab *t;
	int rc = sqlite3_declare_vtab(h, src->decl);

	(void)argc;
	(void)argv;
	(void)err;
	if (rc != SQLITE_OK)
		return rc;
	t = sqlite3_malloc(sizeof(*t));
	if (!t)
		return SQLITE_NOMEM;
	memset(t, 0, sizeof(*t));
	t->src = src;
	*out = &t->base;
	return SQLITE_OK;
}

static int
rows_disconnect(sqlite3_vtab *t)
{
	sqlite3_free(t);
	return SQLITE_OK;
}

static int
rows_best_index(sqlite3_vtab *t, sqlite3_index_info *info)
{
	(void)t;
	info->estimatedCost = BATCH;
	info->estimatedRows = BATCH;
	return SQLITE_OK;
}

static int
rows_open(sqlite3_vtab *t, sqlite3_vtab_cursor **out)
{
	struct rows_cursor *c = sqlite3_malloc(sizeof(*c));

	(void)t;
	if (!c)
		return SQLITE_NOMEM;
	memset(c, 0, sizeof(*c));
	*out = &c->base;
	return SQLITE_OK;
}

static int
rows_close(sqlite3_vtab_cursor *c)
{
	sqlite3_free(c);
	return SQLITE_OK;
}

static int
rows_filter(sqlite3_vtab_cursor *c, int idx, const char *idxstr, int argc, sqlite3_value **argv)
{
	(void)idx;
	(void)idxstr;
	(void)argc;
	(void)argv;
	((struct rows_cursor *)c)->row = 0;
	return SQLITE_OK;
}

static int
rows_next(sqlite3_vtab_cursor *c)
{
	((struct rows_cursor *)c)->row++;
	return SQLITE_OK;
}

static int
rows_eof(sqlite3_vtab_cursor *c)
{
	return ((struct rows_cursor *)c)->row >= ((struct rows_vtab *)c->pVtab)->src->cur->n;
}

static int
rows_column(sqlite3_vtab_cursor *c, sqlite3_context *ctx, int k)
{
	const struct rowbuf *b = ((struct rows_vtab *)c->pVtab)->src->cur;
	unsigned r = ((struct rows_cursor *)c)->row;

	if (b->nulls[r] >> k & 1)
		sqlite3_result_null(ctx);
	else
		sqlite3_result_int64(ctx, b->v[r * b->ncols + (unsigned)k]);
	return SQLITE_OK;
}

static int
rows_rowid(sqlite3_vtab_cursor *c, sqlite3_int64 *rowid)
{
	*rowid = ((struct rows_cursor *)c)->row;
	return SQLITE_OK;
}

/* Eponymous-only (no xCreate): nothing of it is stored in the file. */
static const sqlite3_module rows_module = {
	.iVersion = 1,
	.xConnect = rows_connect,
	.xBestIndex = rows_best_index,
	.xDisconnect = rows_disconnect,
	.xOpen = rows_open,
	.xClose = rows_close,
	.xFilter = rows_filter,
	.xNext = rows_next,
	.xEof = rows_eof,
	.xColumn = rows_column,
	.xRowid = rows_rowid,
};

/* The next row of the buffer, all NULL; the caller sets values. A
 * buffer gets its memory when it gets its first row: most batches have
 * only chunks. */
static int64_t *
rowbuf_add(struct rowbuf *b)
{
	if (b->v == NULL) {
		b->v = xmalloc((size_t)BATCH * b->ncols * sizeof(int64_t));
		b->nulls = xmalloc(BATCH * sizeof(uint32_t));
	}
	b->nulls[b->n] = (1u << b->ncols) - 1;
	return &b->v[(size_t)b->n++ * b->ncols];
}

static inline void
rowbuf_set(struct rowbuf *b, int64_t *row, unsigned k, int64_t v)
{
	row[k] = v;
	b->nulls[b->n - 1] &= ~(1u << k);
}

/* ---- batches ---- */

enum op {
	OP_PROCESS = 1,
	OP_THREAD,
	OP_IMAGE,
	OP_MODULE,
	OP_MODULE_GONE,
	OP_STACK,
	OP_RELEASED,
	OP_META,
	OP_SUMMARY,
	OP_TIMELINE,
	OP_SNAPSHOT,
	OP_SNAPSHOT_HEAP,
	OP_DELETE_SNAPSHOT,
	OP_INTERVAL,
	OP_MERGE_INTERVAL,
	OP_EXEC,
	OP_MARK,
	OP_SETTING,
	OP_PROGRAM_MMAP,
	OP_CHUNK_EPOCH,
	OP_CHUNK_ORIGIN,
	OP_EVENT_EPOCH,
};

/* A batch's row buffers and their tables' columns: every loop over them
 * (new, free, empty, drop) is made from this one list. */
#define BATCH_ROWS(X)                                                          \
	X(chunks, CHUNK_COLS)                                                  \
	X(reallocs, PAIR_COLS)                                                 \
	X(slacks, SLACK_COLS)                                                  \
	X(frames, FRAME_COLS)                                                  \
	X(events, EVENT_COLS)                                                  \
	X(resizes, RESIZE_COLS)                                                \
	X(snapchunks, SNAPCHUNK_COLS)                                          \
	X(formers, FORMER_COLS)                                                \
	X(sites, SITE_COLS)                                                    \
	X(resident, RESIDENT_COLS)

struct batch {
#define BATCH_FIELD(name, cols) struct rowbuf name;
	BATCH_ROWS(BATCH_FIELD)
#undef BATCH_FIELD
	int64_t first_chunk; /* chunk id of chunks' row 0 */
	int64_t first_event; /* heap_event rowid of events' row 0 */
	struct buf ops;      /* encoded operations, in order */
	struct gen {         /* snapshot_chunk rows the writer makes (the batch
			      * has nothing else): db_snapshot_chunks */
		size_t n;
		int64_t first_id, snapshot_id;
		void (*row)(void *arg, size_t i, struct db_snapshot_chunk *r);
		void (*done)(void *arg);
		void *arg;
	} gen;
	struct batch *next;
};

/* A set of return addresses (image id > 0, offset): what symbolization
 * looks up, once each however many stacks share it. */
struct addr {
	int64_t image_id;
	uint64_t offset;
};

struct addrs {
	struct addr *slot; /* image_id 0: empty */
	size_t n, cap;     /* cap a power of two, or 0 */
};

static size_t
addr_hash(int64_t image_id, uint64_t offset)
{
	return (size_t)(((uint64_t)image_id * 0x9e3779b97f4a7c15ULL ^ offset) * 0xff51afd7ed558ccdULL >> 17);
}

/* Add an address; true if it was not there. */
static bool
addrs_add(struct addrs *a, int64_t image_id, uint64_t offset)
{
	if (2 * (a->n + 1) > a->cap) {
		struct addrs g = { .cap = a->cap ? 2 * a->cap : 4096 };
		g.slot = xcalloc(g.cap, sizeof(*g.slot));
		for (size_t i = 0; i < a->cap; i++)
			if (a->slot[i].image_id)
				addrs_add(&g, a->slot[i].image_id, a->slot[i].offset);
		free(a->slot);
		*a = g;
	}
	for (size_t i = addr_hash(image_id, offset) & (a->cap - 1);; i = (i + 1) & (a->cap - 1)) {
		struct addr *e = &a->slot[i];
		if (e->image_id == image_id && e->offset == offset)
			return false;
		if (e->image_id == 0) {
			*e = (struct addr){ image_id, offset };
			a->n++;
			return true;
		}
	}
}

/* What chunks share (a chunk_origin row) but their size: a key of the map
 * from it to a kind id (the first level; few, so its slots stay cached).
 * free_tid is -1 for a chunk not freed. */
struct origin {
	int64_t process_id, stack_id, alloc_tid, free_tid;
	uint64_t size, base; /* neither part of the key */
	uint8_t backing, call, fate, slack_stored;
	int64_t id; /* -1: an empty slot */
};

struct origins {
	struct origin *slot;
	size_t n, cap; /* cap a power of two, or 0 */
};

static bool
origin_same(const struct origin *a, const struct origin *b)
{
	return a->process_id == b->process_id && a->stack_id == b->stack_id &&
	       a->alloc_tid == b->alloc_tid && a->free_tid == b->free_tid &&
	       a->backing == b->backing && a->call == b->call && a->fate == b->fate &&
	       a->slack_stored == b->slack_stored;
}

static size_t
origin_hash(const struct origin *o)
{
	uint64_t h = (uint64_t)o->process_id;

	h = h * 0x9e3779b97f4a7c15ULL ^ (uint64_t)o->stack_id;
	h = h * 0x9e3779b97f4a7c15ULL ^ (uint64_t)o->alloc_tid;
	h = h * 0x9e3779b97f4a7c15ULL ^ (uint64_t)o->free_tid;
	h = h * 0x9e3779b97f4a7c15ULL ^
	    ((uint64_t)o->backing | (uint64_t)o->call << 8 | (uint64_t)o->fate << 16 |
	     (uint64_t)o->slack_stored << 24);
	return (size_t)((h * 0xff51afd7ed558ccdULL) >> 17);
}

/* The slot of key `o`: its entry, or the empty slot where it goes. */
static struct origin *
origin_slot(struct origins *m, const struct origin *o)
{
	for (size_t i = origin_hash(o) & (m->cap - 1);; i = (i + 1) & (m->cap - 1))
		if (m->slot[i].id < 0 || origin_same(&m->slot[i], o))
			return &m->slot[i];
}

static void
origins_grow(struct origins *m)
{
	struct origins g = { .cap = m->cap ? 2 * m->cap : 1024, .n = m->n };

	g.slot = xmalloc(g.cap * sizeof(*g.slot));
	for (size_t i = 0; i < g.cap; i++)
		g.slot[i].id = -1;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slot[i].id >= 0)
			*origin_slot(&g, &m->slot[i]) = m->slot[i];
	free(m->slot);
	*m = g;
}

/* The second level: (kind id, size) -> chunk_origin id, in 16-byte slots
 * (tens of thousands of sizes: a lookup costs a cache miss, fewer the
 * smaller the table). */
struct sized {
	uint64_t size;
	uint32_t kind;
	uint32_t id1; /* the origin id + 1; 0: an empty slot */
};

struct sizes {
	struct sized *slot;
	size_t n, cap; /* cap a power of two, or 0 */
};

static struct sized *
sized_slot(struct sizes *m, uint32_t kind, uint64_t size)
{
	size_t h = (size_t)(((size * 0x9e3779b97f4a7c15ULL) ^ kind) * 0xff51afd7ed558ccdULL >> 20);

	for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1))
		if (m->slot[i].id1 == 0 || (m->slot[i].size == size && m->slot[i].kind == kind))
			return &m->slot[i];
}

static void
sizes_grow(struct sizes *m)
{
	struct sizes g = { .cap = m->cap ? 2 * m->cap : 4096, .n = m->n };

	g.slot = xcalloc(g.cap, sizeof(*g.slot));
	for (size_t i = 0; i < m->cap; i++)
		if (m->slot[i].id1)
			*sized_slot(&g, m->slot[i].kind, m->slot[i].size) = m->slot[i];
	free(m->slot);
	*m = g;
}

/* An image known to this database: (path, build id) -> id. */
struct image_id {
	char *path, *build_id;
	int64_t id;
};

struct db {
	sqlite3 *h;
	sqlite3_stmt *s[S_COUNT];
	struct rowsource chunk_src, realloc_src, slack_src, frame_src, event_src, resize_src;
	struct rowsource snapchunk_src, former_src, site_src, resident_src;

	/* the collector's side */
	struct batch *cur;
	uint64_t cur_since;  /* when cur got its first content */
	int64_t epoch_block, epoch_ns; /* chunk_epoch: the last block's, its base */
	struct origins origins;        /* chunk_origin's rows, but their sizes */
	struct sizes sizes;            /* and with them */
	int64_t next_event;            /* heap_event's next rowid */
	int64_t event_block, event_base_ns; /* heap_event_epoch: the last block's, its base */
	uint64_t *arena_base;          /* by process id: its first arena chunk's address */
	bool *arena_base_set;
	size_t narena_bases;
	struct image_id *images;
	size_t nimages;
	struct addrs addrs; /* every frame's (image, offset), once */
	struct symworker *sym; /* looks them up as they come */
	int64_t next_module_id;
	bool compact;        /* VACUUM at the end (a snapshot recording) */
	bool stmt_failed;    /* the writer's: a statement failed, none more runs */
	unsigned max_queued; /* batches queued for the writer at most */
	/* snapshots: ids, and the row ids of each one kept (to delete it) */
	int64_t next_snapshot_id, next_snapchunk_id, next_former_id, next_interval_id;
	struct snap_rows {
		int64_t id, chunk_from, chunk_to, former_from, former_to;
		int64_t rows_of; /* 0: its own rows */
	} *snaps, open_snap;
	size_t nsnaps;

	/* shared, under mu */
	pthread_mutex_t mu;
	pthread_cond_t wake;   /* the writer: work, or stop */
	pthread_cond_t room;   /* the collector: a batch came back */
	struct batch *queue, **queue_tail;
	unsigned queued;
	struct batch *spare;
	bool stop, writer_running;
	pthread_t writer;
	char error[512];

	/* the writer's side */
	uint64_t committed_at;
	struct rowbuf snappacked;   /* a batch's snapshot chunks, packed */
	struct snap_origins {       /* snapshot_origin's rows, by their values */
		struct snap_origin {
			int64_t v[SNAP_ORIGIN_KEYS];
			uint32_t nulls; /* bit k: v[k] is NULL */
			int64_t id;     /* -1: an empty slot */
		} *slot;
		size_t n, cap;
	} snap_origins;
};

static void
set_error(struct db *db, const char *msg)
{
	pthread_mutex_lock(&db->mu);
	if (db->error[0] == '\0')
		snprintf(db->error, sizeof(db->error), "%s", msg);
	pthread_mutex_unlock(&db->mu);
}

/* The system's word for an I/O error, or NULL: EFBIG (the file size
 * limit) is only a "disk I/O error" to SQLite. */
static const char *
io_errno(struct db *db)
{
	int c = sqlite3_errcode(db->h) & 0xff, e = sqlite3_system_errno(db->h);

	if (c != SQLITE_IOERR && c != SQLITE_FULL)
		return NULL;
	if (!e) /* the database file's own, when a rollback since reset errno */
		sqlite3_file_control(db->h, "main", SQLITE_FCNTL_LAST_ERRNO, &e);
	return e ? strerror(e) : NULL;
}

static void
fail(struct db *db, const char *what)
{
	char msg[512];
	const char *why = io_errno(db);

	if (why)
		snprintf(msg, sizeof(msg), "%s: %s (%s)", what, sqlite3_errmsg(db->h), why);
	else
		snprintf(msg, sizeof(msg), "%s: %s", what, sqlite3_errmsg(db->h));
	set_error(db, msg);
}

const char *
db_failed(struct db *db)
{
	const char *e;

	pthread_mutex_lock(&db->mu);
	e = db->error[0] ? db->error : NULL;
	pthread_mutex_unlock(&db->mu);
	return e;
}

static bool
exec(struct db *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
		const char *why = io_errno(db);
		char full[512];

		if (why)
			snprintf(full, sizeof(full), "%s (%s)", msg ? msg : "error", why);
		else
			snprintf(full, sizeof(full), "%s", msg ? msg : "error");
		set_error(db, full);
		sqlite3_free(msg);
		return false;
	}
	return true;
}

static struct batch *
batch_new(void)
{
	struct batch *b = xcalloc(1, sizeof(*b));

#define BATCH_NCOLS(name, cols) b->name.ncols = cols;
	BATCH_ROWS(BATCH_NCOLS)
#undef BATCH_NCOLS
	return b;
}

static void
batch_free(struct batch *b)
{
#define BATCH_FREE(name, cols)                                                 \
	free(b->name.v);                                                       \
	free(b->name.nulls);
	BATCH_ROWS(BATCH_FREE)
#undef BATCH_FREE
	free(b->ops.p);
	free(b);
}

static bool
batch_empty(const struct batch *b)
{
#define BATCH_EMPTY(name, cols) b->name.n == 0 &&
	return BATCH_ROWS(BATCH_EMPTY) b->ops.len == 0 && b->gen.done == NULL;
#undef BATCH_EMPTY
}

/* Encoding of operations: a tag byte, then int64s and strings (a length,
 * -1 for NULL, and the bytes). */
static void
put_i64(struct buf *o, int64_t v)
{
	buf_add(o, &v, sizeof(v));
}

static void
put_str(struct buf *o, const char *s)
{
	put_i64(o, s ? (int64_t)strlen(s) : -1);
	if (s)
		buf_add(o, s, strlen(s));
}

static void
put_op(struct db *db, enum op op)
{
	unsigned char tag = (unsigned char)op;

	if (batch_empty(db->cur))
		db->cur_since = mono_ns();
	buf_add(&db->cur->ops, &tag, 1);
}

struct reader {
	const char *p, *end;
};

static int64_t
get_i64(struct reader *r)
{
	int64_t v = 0;

	if (r->end - r->p >= (ptrdiff_t)sizeof(v)) {
		memcpy(&v, r->p, sizeof(v));
		r->p += sizeof(v);
	}
	return v;
}

/* Bound as text straight from the batch (SQLITE_TRANSIENT copies it). */
static void
bind_str(sqlite3_stmt *s, int i, struct reader *r)
{
	int64_t n = get_i64(r);

	if (n < 0 || n > r->end - r->p) {
		sqlite3_bind_null(s, i);
		return;
	}
	sqlite3_bind_text(s, i, r->p, (int)n, SQLITE_TRANSIENT);
	r->p += n;
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

/* One statement, unless one has failed: then none runs any more. On
 * SQLITE_FULL or an I/O error SQLite may roll the whole transaction back
 * itself, and a statement after that would run on its own and commit at
 * once: a chunk's rows without the base time an earlier statement of its
 * batch failed to write (a disk-full run, 3 in 75 under load). */
static void
step(struct db *db, int which, const char *what)
{
	sqlite3_stmt *s = db->s[which];

	if (!db->stmt_failed && sqlite3_step(s) != SQLITE_DONE) {
		db->stmt_failed = true;
		fail(db, what);
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Optional int64s are encoded with a presence flag in front. */
static void
put_opt(struct buf *o, int64_t v, bool present)
{
	put_i64(o, present);
	put_i64(o, v);
}

static void
bind_get_opt(sqlite3_stmt *s, int i, struct reader *r)
{
	bool present = get_i64(r) != 0;
	int64_t v = get_i64(r);

	bind_opt(s, i, v, present);
}

static void
run_ops(struct db *db, const struct buf *ops)
{
	struct reader r = { ops->p, ops->p + ops->len };

	while (r.p < r.end) {
		enum op op = (enum op)(unsigned char)*r.p++;
		sqlite3_stmt *s;

		switch (op) {
		case OP_PROCESS:
			s = db->s[S_PROCESS];
			sqlite3_bind_int64(s, 1, get_i64(&r));
			sqlite3_bind_int64(s, 2, get_i64(&r));
			for (int i = 3; i <= 6; i++)
				bind_get_opt(s, i, &r);
			bind_str(s, 7, &r);
			bind_str(s, 8, &r);
			bind_get_opt(s, 9, &r);
			bind_get_opt(s, 10, &r);
			bind_str(s, 11, &r);
			for (int i = 12; i <= 14; i++)
				bind_get_opt(s, i, &r);
			sqlite3_bind_int64(s, 15, get_i64(&r));
			sqlite3_bind_int64(s, 16, get_i64(&r));
			sqlite3_bind_int64(s, 17, get_i64(&r));
			step(db, S_PROCESS, "process");
			break;
		case OP_THREAD:
			s = db->s[S_THREAD];
			sqlite3_bind_int64(s, 1, get_i64(&r));
			sqlite3_bind_int64(s, 2, get_i64(&r));
			bind_get_opt(s, 3, &r);
			bind_get_opt(s, 4, &r);
			step(db, S_THREAD, "thread");
			break;
		case OP_IMAGE:
			s = db->s[S_IMAGE];
			sqlite3_bind_int64(s, 1, get_i64(&r));
			bind_str(s, 2, &r);
			bind_str(s, 3, &r);
			step(db, S_IMAGE, "image");
			break;
		case OP_MODULE:
			s = db->s[S_MODULE];
			for (int i = 1; i <= 7; i++)
				sqlite3_bind_int64(s, i, get_i64(&r));
			step(db, S_MODULE, "module");
			break;
		case OP_MODULE_GONE:
			s = db->s[S_MODULE_GONE];
			sqlite3_bind_int64(s, 1, get_i64(&r));
			sqlite3_bind_int64(s, 2, get_i64(&r));
			step(db, S_MODULE_GONE, "module");
			break;
		case OP_STACK: {
			int64_t id = get_i64(&r), depth = get_i64(&r), tail = get_i64(&r),
				from = get_i64(&r), at = get_i64(&r);
			s = db->s[S_STACK];
			sqlite3_bind_int64(s, 1, id);
			sqlite3_bind_int64(s, 2, depth);
			if (tail) {
				sqlite3_bind_int64(s, 3, tail);
				sqlite3_bind_int64(s, 4, from);
				sqlite3_bind_int64(s, 5, at);
			} else {
				for (int i = 3; i <= 5; i++)
					sqlite3_bind_null(s, i);
			}
			step(db, S_STACK, "stack");
			break;
		}
		case OP_RELEASED:
			s = db->s[S_CHUNK_RELEASED];
			sqlite3_bind_int64(s, 1, get_i64(&r));
			sqlite3_bind_int64(s, 2, get_i64(&r));
			step(db, S_CHUNK_RELEASED, "chunk_released");
			break;
		case OP_META:
			s = db->s[S_META];
			bind_str(s, 1, &r);
			bind_str(s, 2, &r);
			step(db, S_META, "meta");
			break;
		case OP_SUMMARY:
			s = db->s[S_SUMMARY];
			for (int i = 1; i <= 16; i++)
				bind_get_opt(s, i, &r);
			bind_get_opt(s, 17, &r);
			bind_get_opt(s, 18, &r);
			bind_str(s, 19, &r);
			bind_get_opt(s, 20, &r);
			bind_get_opt(s, 21, &r);
			step(db, S_SUMMARY, "heap_summary");
			break;
		case OP_TIMELINE:
			s = db->s[S_TIMELINE];
			for (int i = 1; i <= 6; i++)
				sqlite3_bind_int64(s, i, get_i64(&r));
			step(db, S_TIMELINE, "heap_timeline");
			break;
		case OP_SNAPSHOT:
			s = db->s[S_SNAPSHOT];
			sqlite3_bind_int64(s, 1, get_i64(&r));
			sqlite3_bind_int64(s, 2, get_i64(&r));
			sqlite3_bind_int64(s, 3, get_i64(&r));
			bind_str(s, 4, &r);
			for (int i = 5; i <= 16; i++)
				sqlite3_bind_int64(s, i, get_i64(&r));
			for (int i = 17; i <= 21; i++)
				bind_get_opt(s, i, &r);
			step(db, S_SNAPSHOT, "snapshot");
			break;
		case OP_SNAPSHOT_HEAP:
			s = db->s[S_SNAPSHOT_HEAP];
			for (int i = 1; i <= 4; i++)
				sqlite3_bind_int64(s, i, get_i64(&r));
			step(db, S_SNAPSHOT_HEAP, "snapshot_heap");
			break;
		case OP_DELETE_SNAPSHOT: {
			int64_t id = get_i64(&r), c0 = get_i64(&r), c1 = get_i64(&r);
			int64_t f0 = get_i64(&r), f1 = get_i64(&r);
			sqlite3_bind_int64(db->s[S_DELETE_SNAPSHOT], 1, id);
			step(db, S_DELETE_SNAPSHOT, "snapshot");
			sqlite3_bind_int64(db->s[S_DELETE_SNAPHEAPS], 1, id);
			step(db, S_DELETE_SNAPHEAPS, "snapshot_heap");
			sqlite3_bind_int64(db->s[S_DELETE_RESIDENT], 1, id);
			step(db, S_DELETE_RESIDENT, "snapshot_resident");
			sqlite3_bind_int64(db->s[S_DELETE_SNAPCHUNKS], 1, c0);
			sqlite3_bind_int64(db->s[S_DELETE_SNAPCHUNKS], 2, c1);
			step(db, S_DELETE_SNAPCHUNKS, "snapshot_chunk");
			sqlite3_bind_int64(db->s[S_DELETE_FORMERS], 1, f0);
			sqlite3_bind_int64(db->s[S_DELETE_FORMERS], 2, f1);
			step(db, S_DELETE_FORMERS, "snapshot_former");
			break;
		}
		case OP_INTERVAL:
			s = db->s[S_INTERVAL];
			for (int i = 1; i <= 4; i++)
				sqlite3_bind_int64(s, i, get_i64(&r));
			step(db, S_INTERVAL, "interval");
			break;
		case OP_EXEC: {
			const char *sql = r.p;
			size_t n = strnlen(sql, (size_t)(r.end - r.p));
			r.p += n + 1;
			exec(db, sql);
			break;
		}
		case OP_MERGE_INTERVAL: {
			int64_t into = get_i64(&r), from = get_i64(&r);
			sqlite3_bind_int64(db->s[S_MERGE_SITES], 1, into);
			sqlite3_bind_int64(db->s[S_MERGE_SITES], 2, from);
			step(db, S_MERGE_SITES, "site");
			sqlite3_bind_int64(db->s[S_DELETE_SITES], 1, from);
			step(db, S_DELETE_SITES, "site");
			sqlite3_bind_int64(db->s[S_DELETE_INTERVAL], 1, from);
			step(db, S_DELETE_INTERVAL, "interval");
			break;
		}
		case OP_MARK:
			s = db->s[S_MARK];
			sqlite3_bind_int64(s, 1, get_i64(&r));
			sqlite3_bind_int64(s, 2, get_i64(&r));
			bind_str(s, 3, &r);
			step(db, S_MARK, "mark");
			break;
		case OP_SETTING:
			s = db->s[S_SETTING];
			sqlite3_bind_int64(s, 1, get_i64(&r));
			sqlite3_bind_int64(s, 2, get_i64(&r));
			bind_get_opt(s, 3, &r);
			bind_get_opt(s, 4, &r);
			bind_str(s, 5, &r);
			step(db, S_SETTING, "malloc_setting");
			break;
		case OP_PROGRAM_MMAP:
			s = db->s[S_PROGRAM_MMAP];
			for (int i = 1; i <= 6; i++)
				bind_get_opt(s, i, &r);
			step(db, S_PROGRAM_MMAP, "program_mmap");
			break;
		case OP_CHUNK_EPOCH:
			s = db->s[S_CHUNK_EPOCH];
			sqlite3_bind_int64(s, 1, get_i64(&r));
			sqlite3_bind_int64(s, 2, get_i64(&r));
			step(db, S_CHUNK_EPOCH, "chunk_epoch");
			break;
		case OP_CHUNK_ORIGIN:
			s = db->s[S_CHUNK_ORIGIN];
			for (int i = 1; i <= 11; i++)
				bind_get_opt(s, i, &r);
			step(db, S_CHUNK_ORIGIN, "chunk_origin");
			break;
		case OP_EVENT_EPOCH:
			s = db->s[S_EVENT_EPOCH];
			sqlite3_bind_int64(s, 1, get_i64(&r));
			sqlite3_bind_int64(s, 2, get_i64(&r));
			step(db, S_EVENT_EPOCH, "heap_event_epoch");
			break;
		default:
			set_error(db, "internal: bad batch operation");
			return;
		}
	}
}

/* Write one batch: operations first (they refer only to rows of earlier
 * batches or to each other, in order), then the bulk rows. */
/* Insert a buffer's rows (if any) with its INSERT ... SELECT statement,
 * which reads them through `src`; the buffer is empty afterwards. */
static void
insert_rows(struct db *db, struct rowsource *src, struct rowbuf *rows, int which,
	    const char *what)
{
	if (rows->n == 0)
		return;
	src->cur = rows;
	step(db, which, what);
	rows->n = 0;
}

/* After a failure (the disk full, the file size limit) nothing more is
 * written: the transaction that failed is rolled back, and the file stays
 * as it was at the last commit, a database marked incomplete. Later
 * batches are dropped (the collector goes on reading the rings, so the
 * program is not held up). Writer's side. */
static bool
stop_on_failure(struct db *db)
{
	if (!db_failed(db))
		return false;
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
	return true;
}

static void
drop_batch(struct batch *b)
{
#define BATCH_DROP(name, cols) b->name.n = 0;
	BATCH_ROWS(BATCH_DROP)
#undef BATCH_DROP
	b->ops.len = 0;
	if (b->gen.done)
		b->gen.done(b->gen.arg);
	b->gen = (struct gen){ 0 };
}

static void put_snapchunk(struct rowbuf *b, int64_t *r, int64_t id, int64_t snapshot_id,
			  const struct db_snapshot_chunk *c);

static size_t
snap_origin_hash(const struct snap_origin *o)
{
	uint64_t h = o->nulls;

	for (size_t k = 0; k < SNAP_ORIGIN_KEYS; k++)
		h = (h ^ (uint64_t)o->v[k]) * 0x9e3779b97f4a7c15ULL;
	return (size_t)(h >> 17);
}

static struct snap_origin *
snap_origin_slot(struct snap_origins *m, const struct snap_origin *o)
{
	for (size_t i = snap_origin_hash(o) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct snap_origin *e = &m->slot[i];
		if (e->id < 0 || (e->nulls == o->nulls && memcmp(e->v, o->v, sizeof(o->v)) == 0))
			return e;
	}
}

/* The snapshot_origin id of a row's shared values, written if new. */
static int64_t
snap_origin_id(struct db *db, const struct snap_origin *o)
{
	struct snap_origins *m = &db->snap_origins;

	if (2 * (m->n + 1) > m->cap) {
		struct snap_origins g = { .cap = m->cap ? 2 * m->cap : 1024, .n = m->n };
		g.slot = xmalloc(g.cap * sizeof(*g.slot));
		for (size_t i = 0; i < g.cap; i++)
			g.slot[i].id = -1;
		for (size_t i = 0; i < m->cap; i++)
			if (m->slot[i].id >= 0)
				*snap_origin_slot(&g, &m->slot[i]) = m->slot[i];
		free(m->slot);
		*m = g;
	}
	struct snap_origin *e = snap_origin_slot(m, o);
	if (e->id >= 0)
		return e->id;
	*e = *o;
	e->id = (int64_t)m->n++;
	sqlite3_stmt *st = db->s[S_SNAP_ORIGIN];
	sqlite3_bind_int64(st, 1, e->id);
	for (size_t k = 0; k < SNAP_ORIGIN_KEYS; k++)
		bind_opt(st, (int)k + 2, o->v[k], !(o->nulls >> k & 1));
	step(db, S_SNAP_ORIGIN, "snapshot_origin");
	return e->id;
}

/* Rows of snapshot_chunk's 14 columns into snapshot_chunk_packed, and
 * written. */
static void
insert_snapchunks(struct db *db, struct rowbuf *rows)
{
	struct rowbuf *p = &db->snappacked;

	p->n = 0;
	for (unsigned i = 0; i < rows->n; i++) {
		const int64_t *r = &rows->v[(size_t)i * rows->ncols];
		uint32_t nulls = rows->nulls[i];
		struct snap_origin o = { .nulls = 0 };
		for (size_t k = 0; k < SNAP_ORIGIN_KEYS; k++) {
			unsigned c = snap_origin_col[k];
			if (nulls >> c & 1)
				o.nulls |= 1u << k;
			else
				o.v[k] = r[c];
		}
		int64_t *q = rowbuf_add(p);
		rowbuf_set(p, q, 0, r[0]); /* chunk_id */
		rowbuf_set(p, q, 1, r[1]); /* snapshot_id */
		rowbuf_set(p, q, 2, r[2]); /* address */
		if (!(nulls >> 9 & 1))
			rowbuf_set(p, q, 3, r[9]); /* alloc_ns */
		if (!(nulls >> 11 & 1))
			rowbuf_set(p, q, 4, r[11]); /* free_ns */
		rowbuf_set(p, q, 5, snap_origin_id(db, &o));
	}
	rows->n = 0;
	insert_rows(db, &db->snapchunk_src, p, S_SNAPCHUNK_ROWS, "snapshot_chunk_packed");
}

/* A batch's generated snapshot_chunk rows, BATCH at a time. */
static void
write_gen(struct db *db, struct batch *b)
{
	const struct gen *g = &b->gen;

	for (size_t i = 0; i < g->n && !stop_on_failure(db);) {
		b->snapchunks.n = 0;
		for (; i < g->n && b->snapchunks.n < BATCH; i++) {
			struct db_snapshot_chunk r;
			g->row(g->arg, i, &r);
			put_snapchunk(&b->snapchunks, rowbuf_add(&b->snapchunks),
				      g->first_id + (int64_t)i, g->snapshot_id, &r);
		}
		insert_snapchunks(db, &b->snapchunks);
	}
	b->snapchunks.n = 0;
}

static void
write_batch(struct db *db, struct batch *b)
{
	if (stop_on_failure(db)) {
		drop_batch(b);
		return;
	}
	run_ops(db, &b->ops);
	if (b->gen.done) {
		write_gen(db, b);
		drop_batch(b); /* done() */
		return;
	}
	int64_t last_chunk = b->first_chunk + b->chunks.n - 1;
	if (b->chunks.n) {
		insert_rows(db, &db->chunk_src, &b->chunks, S_CHUNK_ROWS, "chunk");
		if (sqlite3_last_insert_rowid(db->h) != last_chunk)
			set_error(db, "internal: chunk ids out of step");
	}
	insert_rows(db, &db->frame_src, &b->frames, S_STACK_FRAME, "stack_own_frame");
	insert_rows(db, &db->realloc_src, &b->reallocs, S_REALLOC_ROWS, "chunk_realloc");
	insert_rows(db, &db->slack_src, &b->slacks, S_SLACK_ROWS, "chunk_slack");
	if (b->events.n) {
		int64_t last_event = b->first_event + b->events.n - 1;
		insert_rows(db, &db->event_src, &b->events, S_EVENT_ROWS, "heap_event");
		if (sqlite3_last_insert_rowid(db->h) != last_event)
			set_error(db, "internal: heap event ids out of step");
	}
	insert_rows(db, &db->resize_src, &b->resizes, S_RESIZE_ROWS, "heap_event_resize");
	if (b->snapchunks.n)
		insert_snapchunks(db, &b->snapchunks);
	insert_rows(db, &db->former_src, &b->formers, S_FORMER_ROWS, "snapshot_former");
	insert_rows(db, &db->site_src, &b->sites, S_SITE_ROWS, "site");
	insert_rows(db, &db->resident_src, &b->resident, S_RESIDENT_ROWS, "snapshot_resident");
	b->ops.len = 0;
}

static void
commit_if_due(struct db *db, bool now)
{
	uint64_t t = mono_ns();

	if (stop_on_failure(db))
		return;
	if (now || t - db->committed_at >= 100000000ULL) {
		if (!exec(db, "COMMIT; BEGIN"))
			stop_on_failure(db);
		db->committed_at = t;
	}
}

static void *
writer_main(void *arg)
{
	struct db *db = arg;

	pthread_mutex_lock(&db->mu);
	for (;;) {
		while (db->queue == NULL && !db->stop) {
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 100000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			if (pthread_cond_timedwait(&db->wake, &db->mu, &until) != 0)
				break;
		}
		struct batch *b = db->queue;
		if (b) {
			db->queue = b->next;
			if (db->queue == NULL)
				db->queue_tail = &db->queue;
			pthread_mutex_unlock(&db->mu);
			write_batch(db, b);
			commit_if_due(db, false);
			pthread_mutex_lock(&db->mu);
			b->next = db->spare;
			db->spare = b;
			db->queued--;
			pthread_cond_signal(&db->room);
			continue;
		}
		if (db->stop)
			break;
		pthread_mutex_unlock(&db->mu);
		commit_if_due(db, false);
		pthread_mutex_lock(&db->mu);
	}
	pthread_mutex_unlock(&db->mu);
	return NULL;
}

/* Hand the current batch to the writer (or write it here if there is no
 * writer) and start a new one. */
static void
submit(struct db *db)
{
	struct batch *b = db->cur;

	if (batch_empty(b))
		return;
	if (!db->writer_running) {
		write_batch(db, b);
		return;
	}
	pthread_mutex_lock(&db->mu);
	while (db->queued >= db->max_queued && db->spare == NULL)
		pthread_cond_wait(&db->room, &db->mu);
	b->next = NULL;
	*db->queue_tail = b;
	db->queue_tail = &b->next;
	db->queued++;
	pthread_cond_signal(&db->wake);
	if (db->spare) {
		db->cur = db->spare;
		db->spare = db->cur->next;
		pthread_mutex_unlock(&db->mu);
	} else {
		pthread_mutex_unlock(&db->mu);
		db->cur = batch_new();
	}
}

/* Stop the writer after it has written everything handed to it. */
static void
stop_writer(struct db *db)
{
	submit(db);
	if (!db->writer_running)
		return;
	pthread_mutex_lock(&db->mu);
	db->stop = true;
	pthread_cond_signal(&db->wake);
	pthread_mutex_unlock(&db->mu);
	pthread_join(db->writer, NULL);
	db->writer_running = false;
}

void
db_remove_journal(const char *path)
{
	size_t n = strlen(path);
	char *j = xmalloc(n + sizeof("-journal"));

	memcpy(j, path, n);
	memcpy(j + n, "-journal", sizeof("-journal"));
	unlink(j);
	free(j);
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

/* The batches the writer gave back, kept for reuse. */
static void
free_spares(struct db *db)
{
	for (struct batch *b = db->spare, *next; b; b = next) {
		next = b->next;
		batch_free(b);
	}
	db->spare = NULL;
}

static void
close_db(struct db *db)
{
	/* first: its queued lookups point at the image paths freed below */
	symworker_free(db->sym);
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(db->s[i]);
	sqlite3_close(db->h);
	free_spares(db);
	if (db->cur)
		batch_free(db->cur);
	for (size_t i = 0; i < db->nimages; i++) {
		free(db->images[i].path);
		free(db->images[i].build_id);
	}
	free(db->images);
	free(db->addrs.slot);
	free(db->origins.slot);
	free(db->sizes.slot);
	free(db->snap_origins.slot);
	free(db->snappacked.v);
	free(db->snappacked.nulls);
	free(db->arena_base);
	free(db->arena_base_set);
	free(db->snaps);
	pthread_mutex_destroy(&db->mu);
	pthread_cond_destroy(&db->wake);
	pthread_cond_destroy(&db->room);
	free(db);
}

struct db *
db_create(const char *path, char *err, size_t errcap)
{
	struct db *db = xcalloc(1, sizeof(*db));
	char *tables, *views;

	pthread_mutex_init(&db->mu, NULL);
	pthread_cond_init(&db->wake, NULL);
	pthread_cond_init(&db->room, NULL);
	db->queue_tail = &db->queue;
	db->cur = batch_new();
	db->next_module_id = 1;
	db->epoch_block = -1;
	db->event_block = -1;
	db->next_event = 1;
	db->max_queued = MAX_QUEUED;
	db->chunk_src.decl = "CREATE TABLE x (address, free_rel, free_after, released_after, "
			     "origin)";
	db->realloc_src.decl = "CREATE TABLE x (chunk_id, realloc_from)";
	db->slack_src.decl = "CREATE TABLE x (chunk_id, slack, align_log2)";
	db->frame_src.decl = "CREATE TABLE x (stack_id, depth, image_id, offset)";
	db->event_src.decl = "CREATE TABLE x (process_id, ns_rel, address, bytes, what)";
	db->resize_src.decl = "CREATE TABLE x (event_id, size, old_size)";
	db->snapchunk_src.decl = "CREATE TABLE x (chunk_id, snapshot_id, address, alloc_ns, "
				 "free_ns, origin)";
	db->snappacked.ncols = SNAPPACKED_COLS;
	db->former_src.decl = "CREATE TABLE x (former_id, snapshot_id, address, bytes, stack_id, "
			      "vacated_ns, chunks)";
	db->site_src.decl = "CREATE TABLE x (interval_id, stack_id, backing, allocs, alloc_bytes, "
			    "frees, free_bytes, peak_live_bytes, f0, f1, f2, f3, f4, f5, f6, f7, "
			    "f8, f9)";
	db->resident_src.decl = "CREATE TABLE x (snapshot_id, address, bytes)";
	db->next_snapshot_id = db->next_snapchunk_id = db->next_former_id = 1;
	db->next_interval_id = 1;
	/* One connection, used by one thread at a time: no memory statistics
	 * (a global mutex per allocation) and no connection mutex. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	if (sqlite3_open_v2(path, &db->h,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE |
				    SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		snprintf(err, errcap, "cannot open: %s", db->h ? sqlite3_errmsg(db->h) : "?");
		close_db(db);
		return NULL;
	}
	/*
	 * A rollback journal, kept (PERSIST) and the file locked for the run
	 * (EXCLUSIVE). A run appends: pages past the end of the file at a
	 * transaction's start are not journaled, so each page is written
	 * once, where a write-ahead log wrote it twice (log, then checkpoint):
	 * python3 alloc.py x0.4 4.53 -> 4.28 s, a 2-thread churn 0.99 -> 0.82 s
	 * (the writer thread is the pipeline's slowest stage). What is
	 * committed survives a collector crash: the journal left behind rolls
	 * back the transaction that was open, which the next read-write open
	 * does (heapprof report does it). The lock keeps readers out until the
	 * run ends: they get "database is locked" at once, instead of holding
	 * the writer (and with it the program) for as long as they read.
	 * synchronous OFF: no fsync, which stalled the writer on the disk
	 * (python3 4.85 s with NORMAL, 4.40 s with OFF, under WAL). What OFF
	 * gives up is a consistent file after an OS crash or power loss during
	 * the run, which loses that run anyway; the finished file is left to
	 * the kernel like any other program's output. 8 KiB pages: inserts
	 * were measured ~25% faster than with 4 KiB (fewer pages to balance
	 * and log per row); against 16 and 64 KiB the writer's CPU is the same
	 * and the file smaller: each of the ~40 tables and indexes takes at
	 * least a page, and each table's last page is partly empty (64 -> 16
	 * KiB: sqlite3 shell 37.0 -> 31.5 bytes a chunk, gcc 41.5 -> 38.8,
	 * churn 28.9 -> 27.7; 16 -> 8 KiB: cc1 31.97 -> 31.66, with the
	 * churn's CPU 1.13 against 1.12 s and its wall 0.64 against 0.65 s,
	 * medians of 6 alternating pairs, and perl's wall 1.95 against 1.96 s
	 * in 4).
	 * secure_delete OFF: Debian's SQLite zeroes what a DELETE frees,
	 * which a snapshot recording's settles (a peak or worst snapshot
	 * replaced) paid for in memset (python3 x0.4: 1.7% of the collector's
	 * samples); the freed pages are reused or dropped by the VACUUM at the
	 * end. An 8 MiB page cache: rows are appended in rowid order and the
	 * indexes built at the end, so a larger cache only held pages nobody
	 * reads again; 64 MiB made `heapprof run` on perl's text.pl peak at 379
	 * MB, 16 MiB at 329 MB, with the same CPU (6.60-6.99 s user either way,
	 * alternating pairs); 4 MiB saved 12 MB more for ~2% more CPU (see
	 * MAX_QUEUED for 8 MiB).
	 */
	tables = schema_part(NULL, "\n-- @indexes\n");
	views = schema_part("\n-- @views\n", NULL);
	if (!exec(db, "PRAGMA page_size = 8192; PRAGMA locking_mode = EXCLUSIVE;"
		      "PRAGMA journal_mode = PERSIST; PRAGMA synchronous = OFF;"
		      "PRAGMA cache_size = -8192; PRAGMA secure_delete = OFF;") ||
	    !exec(db, "BEGIN") || !exec(db, tables) || !exec(db, views)) {
		snprintf(err, errcap, "cannot create the schema: %s", db->error);
		free(tables);
		free(views);
		close_db(db);
		return NULL;
	}
	free(tables);
	free(views);
	sqlite3_create_module(db->h, "hp_chunk_rows", &rows_module, &db->chunk_src);
	sqlite3_create_module(db->h, "hp_realloc_rows", &rows_module, &db->realloc_src);
	sqlite3_create_module(db->h, "hp_slack_rows", &rows_module, &db->slack_src);
	sqlite3_create_module(db->h, "hp_frame_rows", &rows_module, &db->frame_src);
	sqlite3_create_module(db->h, "hp_event_rows", &rows_module, &db->event_src);
	sqlite3_create_module(db->h, "hp_resize_rows", &rows_module, &db->resize_src);
	sqlite3_create_module(db->h, "hp_snapchunk_rows", &rows_module, &db->snapchunk_src);
	sqlite3_create_module(db->h, "hp_former_rows", &rows_module, &db->former_src);
	sqlite3_create_module(db->h, "hp_site_rows", &rows_module, &db->site_src);
	sqlite3_create_module(db->h, "hp_resident_rows", &rows_module, &db->resident_src);
	for (int i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(db->h, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &db->s[i],
				       NULL) != SQLITE_OK) {
			snprintf(err, errcap, "cannot prepare: %s", sqlite3_errmsg(db->h));
			close_db(db);
			return NULL;
		}
	}
	db_meta(db, "heapprof_version", HP_VERSION);
	db_meta(db, "complete", "0");
	submit(db);
	if (db->error[0] || !exec(db, "COMMIT; BEGIN")) {
		/* the disk full already, or the file size limit too low */
		snprintf(err, errcap, "cannot create the schema: %s", db->error);
		close_db(db);
		return NULL;
	}
	db->committed_at = mono_ns();
	if (pthread_create(&db->writer, NULL, writer_main, db) == 0)
		db->writer_running = true;
	db->sym = symworker_start();
	return db;
}

void
db_tick(struct db *db)
{
	/* a batch that is not filling up goes anyway after 50 ms, so the
	 * file is never far behind */
	if (!batch_empty(db->cur) && mono_ns() - db->cur_since >= 50000000ULL)
		submit(db);
}

void
db_mark(struct db *db, int64_t process_id, int64_t ns, const char *name)
{
	put_op(db, OP_MARK);
	put_i64(&db->cur->ops, process_id);
	put_i64(&db->cur->ops, ns);
	put_str(&db->cur->ops, name);
}

void
db_setting(struct db *db, int64_t process_id, int64_t ns, int param, int value, const char *line)
{
	put_op(db, OP_SETTING);
	put_i64(&db->cur->ops, process_id);
	put_i64(&db->cur->ops, ns);
	put_opt(&db->cur->ops, param, line == NULL);
	put_opt(&db->cur->ops, value, line == NULL);
	put_str(&db->cur->ops, line);
}

void
db_program_mmap(struct db *db, int64_t process_id, uint64_t address, uint64_t bytes,
		int64_t mapped_ns, int64_t unmapped_ns, int64_t stack_id)
{
	struct buf *o = &db->cur->ops;

	put_op(db, OP_PROGRAM_MMAP);
	put_opt(o, process_id, true);
	put_opt(o, (int64_t)address, true);
	put_opt(o, (int64_t)bytes, true);
	put_opt(o, mapped_ns, true);
	put_opt(o, unmapped_ns, unmapped_ns > 0);
	put_opt(o, stack_id, stack_id > 0);
}

void
db_meta(struct db *db, const char *key, const char *value)
{
	put_op(db, OP_META);
	put_str(&db->cur->ops, key);
	put_str(&db->cur->ops, value);
}

void
db_process(struct db *db, const struct db_process *p)
{
	struct buf *o = &db->cur->ops;

	put_op(db, OP_PROCESS);
	put_i64(o, p->id);
	put_i64(o, p->pid);
	put_opt(o, p->ppid, p->ppid > 0);
	put_opt(o, p->parent_id, p->parent_id > 0);
	put_opt(o, p->exec_from, p->exec_from > 0);
	put_opt(o, p->fork_ns, p->fork_ns > 0);
	put_str(o, p->exe);
	put_str(o, p->argv_json);
	put_opt(o, p->started_ns, p->started_ns > 0);
	put_opt(o, p->ended_ns, p->ended_ns > 0);
	put_str(o, p->end_reason);
	put_opt(o, p->exit_status, p->exit_status >= 0);
	put_opt(o, p->exit_signal, p->exit_signal >= 0);
	put_opt(o, p->heap_start, p->heap_start > 0);
	put_i64(o, p->dropped_events);
	put_i64(o, p->truncated_records);
	put_i64(o, p->bad_records);
}

void
db_thread(struct db *db, int64_t process_id, int64_t tid, int64_t started_ns, int64_t ended_ns)
{
	struct buf *o = &db->cur->ops;

	put_op(db, OP_THREAD);
	put_i64(o, process_id);
	put_i64(o, tid);
	put_opt(o, started_ns, started_ns > 0);
	put_opt(o, ended_ns, ended_ns > 0);
}

static bool
same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

int64_t
db_image(struct db *db, const char *path, const char *build_id)
{
	for (size_t i = 0; i < db->nimages; i++)
		if (strcmp(db->images[i].path, path) == 0 &&
		    same_str(db->images[i].build_id, build_id))
			return db->images[i].id;
	db->images = xrealloc(db->images, (db->nimages + 1) * sizeof(*db->images));
	struct image_id *im = &db->images[db->nimages++];
	im->path = xstrdup(path);
	im->build_id = build_id ? xstrdup(build_id) : NULL;
	im->id = (int64_t)db->nimages;
	put_op(db, OP_IMAGE);
	put_i64(&db->cur->ops, im->id);
	put_str(&db->cur->ops, path);
	put_str(&db->cur->ops, build_id);
	return im->id;
}

int64_t
db_module(struct db *db, int64_t process_id, int64_t image_id, uint64_t base, uint64_t lo,
	  uint64_t hi, int64_t loaded_ns)
{
	struct buf *o = &db->cur->ops;
	int64_t id = db->next_module_id++;

	put_op(db, OP_MODULE);
	put_i64(o, id);
	put_i64(o, process_id);
	put_i64(o, image_id);
	put_i64(o, (int64_t)base);
	put_i64(o, (int64_t)lo);
	put_i64(o, (int64_t)hi);
	put_i64(o, loaded_ns);
	return id;
}

void
db_module_unloaded(struct db *db, int64_t module_id, int64_t ns)
{
	put_op(db, OP_MODULE_GONE);
	put_i64(&db->cur->ops, module_id);
	put_i64(&db->cur->ops, ns);
}

void
db_stack(struct db *db, int64_t stack_id, unsigned depth, unsigned own, int64_t tail_stack,
	 unsigned tail_from, const int64_t *image_ids, const uint64_t *offsets)
{
	struct rowbuf *b = &db->cur->frames;

	if (own > BATCH) {
		set_error(db, "internal: stack too deep");
		return;
	}
	if (b->n + own > BATCH) {
		submit(db);
		b = &db->cur->frames;
	}
	put_op(db, OP_STACK);
	put_i64(&db->cur->ops, stack_id);
	put_i64(&db->cur->ops, depth);
	put_i64(&db->cur->ops, tail_stack);
	put_i64(&db->cur->ops, tail_from);
	put_i64(&db->cur->ops, own);
	for (unsigned i = 0; i < own; i++) {
		int64_t *r = rowbuf_add(b);
		rowbuf_set(b, r, 0, stack_id);
		rowbuf_set(b, r, 1, i);
		if (image_ids[i] > 0) {
			rowbuf_set(b, r, 2, image_ids[i]);
			if (addrs_add(&db->addrs, image_ids[i], offsets[i]) && db->sym &&
			    (size_t)image_ids[i] <= db->nimages) {
				const struct image_id *im = &db->images[image_ids[i] - 1];
				symworker_add(db->sym, image_ids[i], offsets[i], im->path,
					      im->build_id);
			}
		}
		rowbuf_set(b, r, 3, (int64_t)offsets[i]);
	}
}

void
db_summary(struct db *db, const struct db_summary *x)
{
	struct buf *o = &db->cur->ops;
	const uint64_t v[] = { x->extent,	    x->live,	     x->cached, x->allocator,
			       x->top_free,	    x->untrimmable,  x->trim_reclaimable,
			       x->mmap,		    x->retained,     x->peak_live };

	put_op(db, OP_SUMMARY);
	put_opt(o, x->process_id, true);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		put_opt(o, (int64_t)v[i], true);
	put_opt(o, x->peak_live_ns, x->peak_live_ns > 0);
	put_opt(o, (int64_t)x->peak_extent, true);
	put_opt(o, x->peak_extent_ns, x->peak_extent_ns > 0);
	put_opt(o, (int64_t)x->worst_untrimmable, true);
	put_opt(o, x->worst_ns, x->worst_ns > 0);
	put_opt(o, (int64_t)x->pin_address, x->pin_bytes > 0);
	put_opt(o, (int64_t)x->pin_bytes, x->pin_bytes > 0);
	put_str(o, x->pin_bytes > 0 ? x->pin_state : NULL);
	put_opt(o, x->pin_stack_id, x->pin_bytes > 0 && x->pin_stack_id > 0);
	put_opt(o, (int64_t)x->resident, true);
}

void
db_timeline(struct db *db, int64_t process_id, int64_t ns, uint64_t extent, uint64_t live,
	    uint64_t cached, uint64_t untrimmable)
{
	struct buf *o = &db->cur->ops;

	put_op(db, OP_TIMELINE);
	put_i64(o, process_id);
	put_i64(o, ns);
	put_i64(o, (int64_t)extent);
	put_i64(o, (int64_t)live);
	put_i64(o, (int64_t)cached);
	put_i64(o, (int64_t)untrimmable);
}

/* The base a chunk's address is stored against (codes.h). */
static uint64_t
chunk_base(struct db *db, const struct db_chunk *c)
{
	if (c->backing == HP_BACKING_BRK)
		return hp_brk_base((uint64_t)c->heap_start);
	if (c->backing != HP_BACKING_ARENA || c->process_id < 1)
		return 0;
	size_t k = (size_t)c->process_id;
	if (k >= db->narena_bases) {
		size_t n = k * 2 + 8;
		db->arena_base = xrealloc(db->arena_base, n * sizeof(*db->arena_base));
		db->arena_base_set = xrealloc(db->arena_base_set, n * sizeof(*db->arena_base_set));
		memset(db->arena_base_set + db->narena_bases, 0,
		       (n - db->narena_bases) * sizeof(*db->arena_base_set));
		db->narena_bases = n;
	}
	if (!db->arena_base_set[k]) {
		db->arena_base[k] = c->address;
		db->arena_base_set[k] = true;
	}
	return db->arena_base[k];
}

/* The id of chunk_origin's row `o` (with its size and base set), written
 * with the batch's operations if it is new. */
static int64_t
origin_id(struct db *db, const struct origin *o)
{
	struct origins *m = &db->origins;
	struct sizes *z = &db->sizes;

	if (2 * (m->n + 1) > m->cap)
		origins_grow(m);
	struct origin *e = origin_slot(m, o);
	if (e->id < 0) {
		*e = *o;
		e->id = (int64_t)m->n++;
	}
	if (4 * (z->n + 1) > 3 * z->cap)
		sizes_grow(z);
	struct sized *k = sized_slot(z, (uint32_t)e->id, o->size);
	if (k->id1)
		return k->id1 - 1;
	if (e->id >= UINT32_MAX || z->n >= UINT32_MAX - 1) {
		set_error(db, "internal: too many distinct chunk origins");
		return 0;
	}
	*k = (struct sized){ o->size, (uint32_t)e->id, (uint32_t)++z->n };
	int64_t id = k->id1 - 1;
	struct buf *ops = &db->cur->ops;
	put_op(db, OP_CHUNK_ORIGIN);
	put_opt(ops, id, true);
	put_opt(ops, o->process_id, true);
	put_opt(ops, o->backing, true);
	put_opt(ops, o->call, true);
	put_opt(ops, (int64_t)o->size, true);
	put_opt(ops, o->fate, o->fate != 0);
	put_opt(ops, o->stack_id, o->stack_id != 0);
	put_opt(ops, o->alloc_tid, true);
	put_opt(ops, o->free_tid, o->free_tid >= 0);
	put_opt(ops, o->slack_stored, true);
	put_opt(ops, (int64_t)o->base, true);
	return id;
}

void
db_chunk(struct db *db, const struct db_chunk *c)
{
	struct rowbuf *b = &db->cur->chunks;
	int64_t *r;

	if (b->n == BATCH) {
		submit(db);
		b = &db->cur->chunks;
	}
	if (batch_empty(db->cur))
		db->cur_since = mono_ns();
	if (b->n == 0)
		db->cur->first_chunk = c->chunk_id;
	else if (c->chunk_id != db->cur->first_chunk + b->n)
		set_error(db, "internal: chunk ids out of order");
	/* the packing codes.h describes */
	struct origin o = {
		.process_id = c->process_id,
		.stack_id = c->stack_id,
		.alloc_tid = c->alloc_tid,
		.free_tid = c->free_ns ? c->free_tid : -1,
		.size = c->size,
		.backing = (uint8_t)c->backing,
		.call = (uint8_t)c->call,
		.fate = (uint8_t)(c->free_ns ? c->fate : 0),
		.slack_stored = c->backing == HP_BACKING_MMAP || c->call == HP_CALL_MEMALIGN ||
				c->chunk_bytes != hp_chunk_bytes_derived(c->size),
		.base = chunk_base(db, c),
	};
	if (c->chunk_bytes < c->size || (c->address & ((1u << HP_ADDRESS_SHIFT) - 1)) ||
	    c->backing < HP_BACKING_BRK || c->backing > HP_BACKING_ARENA || c->call < 1 ||
	    c->call > 4 || c->fate < 0 || c->fate > 7 || c->process_id < 1)
		set_error(db, "internal: a chunk's address, bytes or codes out of range");
	r = rowbuf_add(b);
	rowbuf_set(b, r, 0, hp_chunk_address_rel(c->address, o.base));
	/* the first row of a block of chunk ids sets its base time: its free
	 * (rows come in the order of ends, so the block's are near it) */
	int64_t at = c->free_ns ? c->free_ns : c->alloc_ns;
	if (c->chunk_id >> HP_EPOCH_SHIFT != db->epoch_block) {
		db->epoch_block = c->chunk_id >> HP_EPOCH_SHIFT;
		db->epoch_ns = at;
		put_op(db, OP_CHUNK_EPOCH);
		put_i64(&db->cur->ops, db->epoch_block);
		put_i64(&db->cur->ops, db->epoch_ns);
	}
	rowbuf_set(b, r, 1, at - db->epoch_ns);
	if (c->free_ns)
		rowbuf_set(b, r, 2, c->free_ns - c->alloc_ns);
	if (c->released_ns)
		rowbuf_set(b, r, CHUNK_RELEASED_COL, c->released_ns - c->free_ns);
	rowbuf_set(b, r, 4, origin_id(db, &o));
	if (c->realloc_from) {
		struct rowbuf *rb = &db->cur->reallocs;
		int64_t *rr = rowbuf_add(rb);
		rowbuf_set(rb, rr, 0, c->chunk_id);
		rowbuf_set(rb, rr, 1, c->realloc_from);
	}
	if (o.slack_stored) {
		struct rowbuf *sb = &db->cur->slacks;
		int64_t *sr = rowbuf_add(sb);
		rowbuf_set(sb, sr, 0, c->chunk_id);
		rowbuf_set(sb, sr, 1, (int64_t)(c->chunk_bytes - c->size));
		if (c->call == HP_CALL_MEMALIGN && c->align_log2)
			rowbuf_set(sb, sr, 2, c->align_log2);
	}
}

void
db_chunk_released(struct db *db, int64_t chunk_id, int64_t free_ns, int64_t released_ns)
{
	struct batch *cur = db->cur;
	struct rowbuf *b = &cur->chunks;

	if (b->n && chunk_id >= cur->first_chunk && chunk_id < cur->first_chunk + b->n) {
		unsigned row = (unsigned)(chunk_id - cur->first_chunk);
		b->v[row * b->ncols + CHUNK_RELEASED_COL] = released_ns - free_ns;
		b->nulls[row] &= ~(1u << CHUNK_RELEASED_COL);
		return;
	}
	/* a row of an earlier batch: written before this batch's operations */
	put_op(db, OP_RELEASED);
	put_i64(&cur->ops, chunk_id);
	put_i64(&cur->ops, released_ns - free_ns);
}

void
db_heap_event(struct db *db, int64_t process_id, int64_t ns, int kind, uint64_t address,
	      uint64_t bytes, int64_t value, bool has_value, int64_t size, int64_t old_size,
	      uint64_t heap_start)
{
	struct rowbuf *b = &db->cur->events;
	int64_t *r;

	if (b->n == BATCH) {
		submit(db);
		b = &db->cur->events;
	}
	if (batch_empty(db->cur))
		db->cur_since = mono_ns();
	if (b->n == 0)
		db->cur->first_event = db->next_event;
	int64_t id = db->next_event++;
	if (has_value != hp_event_has_value(kind) || kind < 1 ||
	    kind >= 1 << HP_EVENT_VALUE_SHIFT ||
	    (has_value && (value < 0 || value >= HP_EVENT_VALUE_LIMIT)))
		set_error(db, "internal: a heap event's kind or value out of range");
	/* the first row of a block of rowids sets its base time (codes.h) */
	if (id >> HP_EVENT_EPOCH_SHIFT != db->event_block) {
		db->event_block = id >> HP_EVENT_EPOCH_SHIFT;
		db->event_base_ns = ns;
		put_op(db, OP_EVENT_EPOCH);
		put_i64(&db->cur->ops, db->event_block);
		put_i64(&db->cur->ops, ns);
	}
	r = rowbuf_add(b);
	rowbuf_set(b, r, 0, process_id);
	/* relative, as codes.h says: fewer bytes */
	rowbuf_set(b, r, 1, ns - db->event_base_ns);
	rowbuf_set(b, r, 2, (int64_t)(address - heap_start));
	rowbuf_set(b, r, 3, (int64_t)(kind == HP_HEV_BRK ? bytes - heap_start : bytes));
	rowbuf_set(b, r, 4, hp_event_what(kind, value));
	if (size >= 0 || old_size >= 0) {
		/* rare (a resize): a row of its own, not two columns of every row */
		struct rowbuf *zb = &db->cur->resizes;
		int64_t *z = rowbuf_add(zb);
		rowbuf_set(zb, z, 0, id);
		if (size >= 0)
			rowbuf_set(zb, z, 1, size);
		if (old_size >= 0)
			rowbuf_set(zb, z, 2, old_size);
	}
}

/* ---- snapshots and sites ---- */

/* The next row of a bulk buffer of the current batch, which goes to the
 * writer first if it is full. */
static int64_t *
bulk_row(struct db *db, size_t off)
{
	struct rowbuf *b = (struct rowbuf *)((char *)db->cur + off);

	if (b->n == BATCH) {
		submit(db);
		b = (struct rowbuf *)((char *)db->cur + off);
	}
	if (batch_empty(db->cur))
		db->cur_since = mono_ns();
	return rowbuf_add(b);
}

int64_t
db_snapshot_begin(struct db *db)
{
	db->open_snap = (struct snap_rows){ db->next_snapshot_id++, db->next_snapchunk_id, 0,
					    db->next_former_id, 0, 0 };
	return db->open_snap.id;
}

void
db_snapshot_heap(struct db *db, uint64_t start, uint64_t end, int backing)
{
	struct buf *o = &db->cur->ops;

	put_op(db, OP_SNAPSHOT_HEAP);
	put_i64(o, db->open_snap.id);
	put_i64(o, (int64_t)start);
	put_i64(o, (int64_t)end);
	put_i64(o, backing);
}

/* Row r, just added to b, as snapshot chunk c. */
static void
put_snapchunk(struct rowbuf *b, int64_t *r, int64_t id, int64_t snapshot_id,
	      const struct db_snapshot_chunk *c)
{
	rowbuf_set(b, r, 0, id);
	rowbuf_set(b, r, 1, snapshot_id);
	rowbuf_set(b, r, 2, (int64_t)c->address);
	rowbuf_set(b, r, 3, (int64_t)c->size);
	rowbuf_set(b, r, 4, (int64_t)c->chunk_bytes);
	rowbuf_set(b, r, 5, c->occupant);
	rowbuf_set(b, r, 6, c->backing);
	if (c->call)
		rowbuf_set(b, r, 7, c->call);
	if (c->fate)
		rowbuf_set(b, r, 8, c->fate);
	if (c->alloc_ns) {
		rowbuf_set(b, r, 9, c->alloc_ns);
		rowbuf_set(b, r, 10, c->alloc_tid);
	}
	if (c->free_ns) {
		rowbuf_set(b, r, 11, c->free_ns);
		rowbuf_set(b, r, 12, c->free_tid);
	}
	if (c->stack_id)
		rowbuf_set(b, r, 13, c->stack_id);
}

void
db_snapshot_chunk(struct db *db, const struct db_snapshot_chunk *c)
{
	int64_t *r = bulk_row(db, offsetof(struct batch, snapchunks));

	put_snapchunk(&db->cur->snapchunks, r, db->next_snapchunk_id++, db->open_snap.id, c);
}

void
db_snapshot_chunks(struct db *db, size_t n,
		   void (*row)(void *arg, size_t i, struct db_snapshot_chunk *r),
		   void (*done)(void *arg), void *arg)
{
	if (n == 0) {
		done(arg);
		return;
	}
	submit(db); /* what came before goes first */
	db->cur->gen = (struct gen){ n, db->next_snapchunk_id, db->open_snap.id, row, done, arg };
	db->next_snapchunk_id += (int64_t)n;
	submit(db);
}

void
db_snapshot_resident(struct db *db, uint64_t address, uint64_t bytes)
{
	int64_t *r = bulk_row(db, offsetof(struct batch, resident));
	struct rowbuf *b = &db->cur->resident;

	rowbuf_set(b, r, 0, db->open_snap.id);
	rowbuf_set(b, r, 1, (int64_t)address);
	rowbuf_set(b, r, 2, (int64_t)bytes);
}

void
db_snapshot_former(struct db *db, uint64_t address, uint64_t bytes, int64_t stack_id,
		   int64_t vacated_ns, uint64_t chunks)
{
	int64_t *r = bulk_row(db, offsetof(struct batch, formers));
	struct rowbuf *b = &db->cur->formers;

	rowbuf_set(b, r, 0, db->next_former_id++);
	rowbuf_set(b, r, 1, db->open_snap.id);
	rowbuf_set(b, r, 2, (int64_t)address);
	rowbuf_set(b, r, 3, (int64_t)bytes);
	if (stack_id)
		rowbuf_set(b, r, 4, stack_id);
	rowbuf_set(b, r, 5, vacated_ns);
	rowbuf_set(b, r, 6, (int64_t)chunks);
}

static void
put_snapshot(struct db *db, const struct snap_rows *k, const struct db_snapshot *x)
{
	struct buf *o = &db->cur->ops;
	const uint64_t v[] = { x->extent,   x->live,	 x->cached,	    x->allocator,
			       x->top_free, x->untrimmable, x->trim_reclaimable, x->mmap,
			       x->retained, x->live_chunks, x->cached_chunks,  x->mmap_chunks };

	put_op(db, OP_SNAPSHOT);
	put_i64(o, k->id);
	put_i64(o, x->process_id);
	put_i64(o, x->ns);
	put_str(o, x->reason);
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		put_i64(o, (int64_t)v[i]);
	put_opt(o, k->chunk_from, k->chunk_to >= k->chunk_from);
	put_opt(o, k->chunk_to, k->chunk_to >= k->chunk_from);
	put_opt(o, k->former_from, k->former_to >= k->former_from);
	put_opt(o, k->former_to, k->former_to >= k->former_from);
	put_opt(o, k->rows_of, k->rows_of != 0);
	db->snaps = xrealloc(db->snaps, (db->nsnaps + 1) * sizeof(*db->snaps));
	db->snaps[db->nsnaps++] = *k;
}

void
db_snapshot_end(struct db *db, const struct db_snapshot *x)
{
	struct snap_rows *k = &db->open_snap;

	k->chunk_to = db->next_snapchunk_id - 1;
	k->former_to = db->next_former_id - 1;
	put_snapshot(db, k, x);
}

int64_t
db_snapshot_same(struct db *db, int64_t owner, const struct db_snapshot *x)
{
	size_t i;

	for (i = 0; i < db->nsnaps && db->snaps[i].id != owner; i++)
		;
	if (i == db->nsnaps || db->snaps[i].rows_of)
		return 0;
	struct snap_rows k = db->snaps[i];
	k.id = db->next_snapshot_id++;
	k.rows_of = owner;
	put_snapshot(db, &k, x);
	return k.id;
}

void
db_snapshot_delete(struct db *db, int64_t snapshot_id)
{
	size_t i;

	for (i = 0; i < db->nsnaps && db->snaps[i].id != snapshot_id; i++)
		;
	if (i == db->nsnaps)
		return;
	struct snap_rows k = db->snaps[i];
	db->snaps[i] = db->snaps[--db->nsnaps];
	if (k.rows_of) {
		/* the rows are its owner's: empty ranges, nothing to delete */
		k.chunk_from = k.former_from = 1;
		k.chunk_to = k.former_to = 0;
	}
	/* its rows may be in this batch, which writes operations first */
	submit(db);
	struct buf *o = &db->cur->ops;
	put_op(db, OP_DELETE_SNAPSHOT);
	put_i64(o, k.id);
	put_i64(o, k.chunk_from);
	put_i64(o, k.chunk_to);
	put_i64(o, k.former_from);
	put_i64(o, k.former_to);
}

int64_t
db_interval(struct db *db, int64_t interval_id, int64_t process_id, int64_t start_ns,
	    int64_t end_ns)
{
	struct buf *o = &db->cur->ops;

	if (interval_id == 0)
		interval_id = db->next_interval_id++;
	put_op(db, OP_INTERVAL);
	put_i64(o, interval_id);
	put_i64(o, process_id);
	put_i64(o, start_ns);
	put_i64(o, end_ns);
	return interval_id;
}

void
db_site(struct db *db, int64_t interval_id, const struct db_site *x)
{
	int64_t *r = bulk_row(db, offsetof(struct batch, sites));
	struct rowbuf *b = &db->cur->sites;

	rowbuf_set(b, r, 0, interval_id);
	rowbuf_set(b, r, 1, x->stack_id);
	rowbuf_set(b, r, 2, x->backing);
	rowbuf_set(b, r, 3, (int64_t)x->allocs);
	rowbuf_set(b, r, 4, (int64_t)x->alloc_bytes);
	rowbuf_set(b, r, 5, (int64_t)x->frees);
	rowbuf_set(b, r, 6, (int64_t)x->free_bytes);
	rowbuf_set(b, r, 7, (int64_t)x->peak_live_bytes);
	for (unsigned k = 0; k < DB_LIFETIMES; k++)
		rowbuf_set(b, r, 8 + k, (int64_t)x->freed_in[k]);
}

void
db_interval_merge(struct db *db, int64_t into, int64_t from, int64_t process_id,
		  int64_t start_ns, int64_t end_ns)
{
	/* the sites of both may be in this batch, written after its operations */
	submit(db);
	struct buf *o = &db->cur->ops;
	put_op(db, OP_MERGE_INTERVAL);
	put_i64(o, into);
	put_i64(o, from);
	db_interval(db, into, process_id, start_ns, end_ns);
}

/* ---- symbolization ---- */

/* The symbolizer thread's results into table symbol. An address that
 * could not be symbolized gets a row of NULLs: it was tried. */
static bool
symbolize_frames(struct db *db)
{
	const struct sym_result *r;
	sqlite3_stmt *ins = NULL;
	size_t n;
	bool ok = true;

	if (db->sym == NULL)
		return false;
	n = symworker_finish(db->sym, &r);
	if (sqlite3_prepare_v2(db->h,
			       "INSERT INTO symbol (image_id, offset, level, function, file, "
			       "line, inlined) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
			       -1, &ins, NULL) != SQLITE_OK) {
		fail(db, "symbolize");
		return false;
	}
	for (size_t i = 0; ok && i < n; i++) {
		const struct sym_frame *f = r[i].f;
		for (int k = 0; ok && k < (r[i].n > 0 ? r[i].n : 1); k++) {
			sqlite3_bind_int64(ins, 1, r[i].image_id);
			sqlite3_bind_int64(ins, 2, (int64_t)r[i].offset);
			sqlite3_bind_int64(ins, 3, k);
			bind_text(ins, 4, r[i].n > 0 ? f[k].function : NULL);
			bind_text(ins, 5, r[i].n > 0 ? f[k].file : NULL);
			bind_opt(ins, 6, r[i].n > 0 ? f[k].line : 0, r[i].n > 0 && f[k].line > 0);
			sqlite3_bind_int64(ins, 7, r[i].n > 0 && f[k].inlined);
			if (sqlite3_step(ins) != SQLITE_DONE) {
				fail(db, "symbol");
				ok = false;
			}
			sqlite3_reset(ins);
		}
	}
	sqlite3_finalize(ins);
	return ok;
}

void
db_large_model(struct db *db)
{
	if (db->sym)
		symworker_defer(db->sym);
}

void
db_bounded(struct db *db)
{
	db->compact = true;
	/* a snapshot comes as a burst of rows the writer takes a while for:
	 * the collector waits for it rather than hold the burst (the rings
	 * hold the program's events meanwhile) */
	db->max_queued = 16;
	/* symbolized at the end, when the collector's model is gone: libdw
	 * takes memory of its own for debug sections */
	if (db->sym)
		symworker_defer(db->sym);
	/* and SQLite's page cache small (8 MiB otherwise): the writer sees
	 * a snapshot once, it reads nothing back */
	put_op(db, OP_EXEC);
	buf_add(&db->cur->ops, "PRAGMA cache_size = -4096", sizeof("PRAGMA cache_size = -4096"));
}

static int64_t
pragma_count(struct db *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t n = 0;

	if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

int
db_finish(struct db *db, char *err, size_t errcap)
{
	char *indexes = schema_part("\n-- @indexes\n", "\n-- @views\n");
	bool ok;

	/* A snapshot recording looks its addresses up only now, and libdw
	 * then reads libc's debug sections (13.5 MiB): the collector's peak.
	 * What the collector holds of its own goes back first: the writer's
	 * batches, and SQLite's cache, as whole free pages of the heap. */
	if (db->compact) {
		stop_writer(db);
		free_spares(db);
		sqlite3_db_release_memory(db->h);
		malloc_trim(0);
	}
	/* what was deferred is looked up while the indexes are built */
	if (db->sym)
		symworker_resume(db->sym);
	stop_writer(db);
	ok = !db->error[0] && exec(db, "COMMIT; BEGIN") && exec(db, indexes) &&
	     symbolize_frames(db);
	if (ok) {
		db_meta(db, "complete", "1");
		submit(db);
		ok = !db->error[0] && exec(db, "COMMIT") &&
		     exec(db, "PRAGMA journal_mode = DELETE;");
		/* replaced snapshots left free pages: the file is rewritten
		 * without them once they are an eighth of it (VACUUM copies
		 * the whole file twice: seconds for a large heap's, for a few
		 * pages a settled snapshot left) */
		if (ok && db->compact &&
		    pragma_count(db, "PRAGMA freelist_count") * 8 >
			    pragma_count(db, "PRAGMA page_count"))
			ok = exec(db, "VACUUM");
	}
	free(indexes);
	if (!ok) {
		snprintf(err, errcap, "%s", db->error[0] ? db->error : "cannot finish");
		/* what was committed stays, marked incomplete, in one file */
		if (!sqlite3_get_autocommit(db->h))
			sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_exec(db->h, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
	}
	close_db(db);
	return ok ? 0 : -1;
}

void
db_abandon(struct db *db)
{
	stop_writer(db);
	if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, db->error[0] ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
	exec(db, "PRAGMA journal_mode = DELETE;");
	close_db(db);
}
