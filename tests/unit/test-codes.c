/* SPDX-License-Identifier: MIT */
/*
 * test-codes - schema/codes.h against schema/heapprof.sql: every lookup
 * table (backing, fate, call, event_kind, range_state, map_kind, occupant)
 * holds exactly the header's codes and names, the version and application
 * id are the SQL's, and the `chunk` view decodes a chunk_packed row and its
 * chunk_origin row as the collector writes them (the address as
 * hp_chunk_address_rel() stores it, against its origin's base, the times
 * against the block's base), over edge and random values. A change to
 * either side alone fails here. Likewise heap_events and hp_event_what().
 *
 * Usage: test-codes [seed] [rows]
 */
#include "config.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../harness.h"
#include "../progs/rng.h"
#include "codes.h"
#include "schema_version.h"

extern const char hp_schema_sql[];

struct code {
	int value;
	const char *name;
};

#define CODE_ROW_(name, value, text) {value, text},
static const struct code backing_codes[] = {HP_BACKING_CODES(CODE_ROW_)};
static const struct code fate_codes[] = {HP_FATE_CODES(CODE_ROW_)};
static const struct code call_codes[] = {HP_CALL_CODES(CODE_ROW_)};
static const struct code state_codes[] = {HP_STATE_CODES(CODE_ROW_)};
static const struct code map_codes[] = {HP_MAP_CODES(CODE_ROW_)};
static const struct code event_codes[] = {HP_EVENT_KIND_CODES(CODE_ROW_)};
static const struct code occupant_codes[] = {HP_OCCUPANT_CODES(CODE_ROW_)};
#undef CODE_ROW_

static sqlite3 *db;

static int64_t
query_int(const char *sql)
{
	sqlite3_stmt *s;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "test-codes: %s: %s\n", sql, sqlite3_errmsg(db));
		exit(99);
	}
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return v;
}

/* The table's rows equal the list: each row's code is in the list under
 * the same name, and the list has no code the table lacks. */
static void
same_codes(const char *table, const struct code *list, size_t n)
{
	char sql[128];
	sqlite3_stmt *s;
	size_t rows = 0;

	snprintf(sql, sizeof(sql), "SELECT code, name FROM %s ORDER BY code", table);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
		CHECK(false, "%s: the table exists (%s)", table, sqlite3_errmsg(db));
		return;
	}
	while (sqlite3_step(s) == SQLITE_ROW) {
		int code = sqlite3_column_int(s, 0);
		const char *name = (const char *)sqlite3_column_text(s, 1);
		size_t i = 0;
		while (i < n && list[i].value != code)
			i++;
		CHECK(i < n, "%s: SQL code %d (%s) is in codes.h", table, code, name);
		if (i < n)
			CHECK(strcmp(list[i].name, name) == 0, "%s: code %d is %s in both (SQL: %s)",
			      table, code, list[i].name, name);
		rows++;
	}
	sqlite3_finalize(s);
	CHECK(rows == n, "%s: SQL has %zu codes, codes.h %zu", table, rows, n);
}

static void
fate_occupies(void)
{
	for (size_t i = 0; i < sizeof(fate_codes) / sizeof(fate_codes[0]); i++) {
		char sql[96];
		snprintf(sql, sizeof(sql), "SELECT occupies FROM fate WHERE code = %d",
			 fate_codes[i].value);
		CHECK(query_int(sql) == hp_fate_occupies(fate_codes[i].value),
		      "fate %s: occupies the same in SQL and codes.h", fate_codes[i].name);
	}
}

/* A chunk row and its origin's fields. */
struct row {
	int64_t chunk_id, address, size, chunk_bytes, alloc_ns, free_ns, released_ns;
	int64_t process_id, alloc_tid, free_tid, stack_id;
	int backing, call, fate;
	bool freed, slack_stored;
	uint64_t base;   /* its origin's */
	int64_t origin;  /* its origin's id */
};

/* The process rows the chunk rows belong to: pid, heap_start. */
#define NPROC 5
static const int64_t proc_ids[NPROC] = {1, 2, 3, 77, 1 << 20};
static const int64_t proc_pid[NPROC] = {4242, 4243, HP_TID_LIMIT - 1, 1, 99999};
static const int64_t proc_heap[NPROC] = {0x555555559008LL, 0xa437000LL, 0, 0x5600000000LL,
					 0x1000};
/* the first arena chunk of each */
static const int64_t proc_arena[NPROC] = {0x7f0000000010LL, 0x7e12345678a0LL, 0x10,
					  0x7f0000000000LL, 0x123450};

static void
insert_processes(void)
{
	for (int i = 0; i < NPROC; i++) {
		char sql[256];
		snprintf(sql, sizeof(sql),
			 "INSERT INTO process (process_id, pid, heap_start) VALUES "
			 "(%" PRId64 ", %" PRId64 ", %" PRId64 ")",
			 proc_ids[i], proc_pid[i], proc_heap[i]);
		if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
			fprintf(stderr, "test-codes: %s: %s\n", sql, sqlite3_errmsg(db));
			exit(99);
		}
	}
}

/* chunk_epoch: each block's base time, somewhere in its rows' times */
static int64_t
epoch_base(int64_t chunk_id)
{
	return 400000000000LL + (chunk_id >> HP_EPOCH_SHIFT) * 1000003;
}

/* heap_event_epoch likewise */
static int64_t
event_base(int64_t rowid)
{
	return 500000000007LL + (rowid >> HP_EVENT_EPOCH_SHIFT) * 1000033;
}

static void
insert_epochs(int nrows)
{
	for (int64_t b = 0; b <= (int64_t)nrows >> HP_EPOCH_SHIFT; b++) {
		char sql[128];
		snprintf(sql, sizeof(sql), "INSERT INTO chunk_epoch VALUES (%" PRId64 ", %" PRId64 ")",
			 b, epoch_base(b << HP_EPOCH_SHIFT));
		if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
			exit(99);
	}
}

static void
bind_or_null(sqlite3_stmt *s, int i, int64_t v, bool present)
{
	if (present)
		sqlite3_bind_int64(s, i, v);
	else
		sqlite3_bind_null(s, i);
}

static void
step_reset(sqlite3_stmt *s)
{
	if (sqlite3_step(s) != SQLITE_DONE) {
		fprintf(stderr, "test-codes: insert: %s\n", sqlite3_errmsg(db));
		exit(99);
	}
	sqlite3_reset(s);
}

/* The row, its origin (as the collector writes them, db.c) and its slack. */
static void
insert_row(sqlite3_stmt *ins, sqlite3_stmt *ins_origin, sqlite3_stmt *ins_slack,
	   const struct row *r)
{
	sqlite3_bind_int64(ins, 1, r->chunk_id);
	sqlite3_bind_int64(ins, 2, hp_chunk_address_rel((uint64_t)r->address, r->base));
	sqlite3_bind_int64(ins, 3, (r->freed ? r->free_ns : r->alloc_ns) - epoch_base(r->chunk_id));
	bind_or_null(ins, 4, r->free_ns - r->alloc_ns, r->freed);
	bind_or_null(ins, 5, r->released_ns - r->free_ns, r->released_ns != 0);
	sqlite3_bind_int64(ins, 6, r->origin);
	step_reset(ins);
	sqlite3_bind_int64(ins_origin, 1, r->origin);
	sqlite3_bind_int64(ins_origin, 2, r->process_id);
	sqlite3_bind_int64(ins_origin, 3, r->backing);
	sqlite3_bind_int64(ins_origin, 4, r->call);
	sqlite3_bind_int64(ins_origin, 5, r->size);
	bind_or_null(ins_origin, 6, r->fate, r->freed && r->fate != 0);
	bind_or_null(ins_origin, 7, r->stack_id, r->stack_id != 0);
	sqlite3_bind_int64(ins_origin, 8, r->alloc_tid);
	bind_or_null(ins_origin, 9, r->free_tid, r->freed);
	sqlite3_bind_int64(ins_origin, 10, r->slack_stored);
	sqlite3_bind_int64(ins_origin, 11, (int64_t)r->base);
	step_reset(ins_origin);
	if (r->slack_stored) {
		sqlite3_bind_int64(ins_slack, 1, r->chunk_id);
		sqlite3_bind_int64(ins_slack, 2, r->chunk_bytes - r->size);
		step_reset(ins_slack);
	}
}

/* The view's columns of the row, as the row says they must be. */
static bool
view_matches(sqlite3_stmt *q, const struct row *r)
{
	int64_t want[] = {
		r->process_id, r->address, r->size,     r->chunk_bytes, r->backing,
		r->call,       r->alloc_ns, r->alloc_tid, r->free_ns,   r->free_tid,
		r->fate,       r->released_ns, r->stack_id,
	};
	/* NULL in the view where the field is "none" */
	bool null[] = {
		false, false, false, false, false, false, false, false, !r->freed, !r->freed,
		!r->freed || r->fate == 0, r->released_ns == 0, r->stack_id == 0,
	};
	bool ok = true;

	sqlite3_bind_int64(q, 1, r->chunk_id);
	if (sqlite3_step(q) != SQLITE_ROW) {
		sqlite3_reset(q);
		return false;
	}
	for (int i = 0; i < (int)(sizeof(want) / sizeof(want[0])); i++) {
		bool is_null = sqlite3_column_type(q, i) == SQLITE_NULL;
		if (is_null != null[i] || (!is_null && sqlite3_column_int64(q, i) != want[i])) {
			printf("# chunk %" PRId64 ": column %s is %s%" PRId64 ", want %s%" PRId64 "\n",
			       r->chunk_id, sqlite3_column_name(q, i), is_null ? "NULL " : "",
			       (int64_t)sqlite3_column_int64(q, i), null[i] ? "NULL " : "", want[i]);
			ok = false;
		}
	}
	sqlite3_reset(q);
	return ok;
}

/* hp_chunk_address inverts hp_chunk_address_rel, below the base too. */
static bool
address_roundtrip(const struct row *r)
{
	int64_t rel = hp_chunk_address_rel((uint64_t)r->address, r->base);
	return hp_chunk_address(rel, r->base) == (uint64_t)r->address &&
	       (r->address >= (int64_t)r->base) == (rel >= 0);
}

static void
random_row(struct row *r, int64_t id, uint64_t *g)
{
	static const int64_t edge_tid[] = {1, 2, HP_TID_LIMIT - 1};
	memset(r, 0, sizeof(*r));
	r->chunk_id = id;
	/* each row its own origin (ids from 0, as the collector numbers them) */
	r->origin = id - 1;
	int k = rng_next(g) % 4 ? (int)(rng_next(g) % 2) : (int)(rng_next(g) % NPROC);
	r->process_id = proc_ids[k];
	r->backing = HP_BACKING_BRK + (int)(rng_next(g) % 3);
	r->base = r->backing == HP_BACKING_BRK     ? hp_brk_base((uint64_t)proc_heap[k])
		  : r->backing == HP_BACKING_ARENA ? (uint64_t)proc_arena[k]
						   : 0;
	/* 16-byte aligned, above or (an arena's other heaps) below the base */
	int64_t off = (int64_t)(rng_next(g) % (1u << 30)) * 16;
	if (r->backing == HP_BACKING_MMAP)
		r->address = 0x7f0000000000LL + off;
	else if (r->backing == HP_BACKING_ARENA && rng_next(g) % 4 == 0 && off <= proc_arena[k])
		r->address = proc_arena[k] - off;
	else
		r->address = (int64_t)r->base + 16 + off;
	r->size = (int64_t)(rng_next(g) % 5000);
	/* near the block's base, or anywhere in the run */
	r->alloc_ns = rng_next(g) % 4 ? epoch_base(id) - (int64_t)(rng_next(g) % 100000000)
				      : 1 + (int64_t)(rng_next(g) % (1ULL << 50));
	/* the main thread (its id the pid), another, or an edge */
	r->alloc_tid = rng_next(g) % 3 == 0 ? proc_pid[k]
		       : rng_next(g) % 4    ? 1 + (int64_t)(rng_next(g) % 40000)
					    : edge_tid[rng_next(g) % 3];
	r->stack_id = rng_next(g) % 8 ? (int64_t)(rng_next(g) % 100000)
				      : (int64_t)(rng_next(g) % (1LL << 40));
	r->call = HP_CALL_MALLOC + (int)(rng_next(g) % 4);
	/* the bytes glibc gives the size, or any others (then stored) */
	r->chunk_bytes = (int64_t)hp_chunk_bytes_derived((uint64_t)r->size);
	if (r->backing == HP_BACKING_MMAP || rng_next(g) % 4 == 0) {
		r->chunk_bytes = r->size + (int64_t)(rng_next(g) % 100000);
		r->slack_stored = true;
	}
	r->freed = rng_next(g) % 5 != 0;
	if (r->freed) {
		r->free_ns = r->alloc_ns + (int64_t)(rng_next(g) % (1ULL << 36));
		r->fate = (int)(rng_next(g) % 6); /* 0: its end not seen */
		r->free_tid = rng_next(g) % 2	  ? r->alloc_tid
			      : rng_next(g) % 4 ? 1 + (int64_t)(rng_next(g) % 40000)
						: edge_tid[rng_next(g) % 3];
		if (hp_fate_occupies(r->fate) && rng_next(g) % 2)
			r->released_ns = r->free_ns + 1 + (int64_t)(rng_next(g) % 1000000);
	}
}

static void
chunk_view(uint64_t seed, int nrows)
{
	sqlite3_stmt *ins, *ins_origin, *ins_slack, *q;
	uint64_t g = mix(seed) | 1;
	struct row *rows = calloc((size_t)nrows, sizeof(*rows));
	int bad_view = 0, bad_address = 0;

	if (!rows ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO chunk_packed (chunk_id, address, free_rel, "
			       "free_after, released_after, origin) VALUES (?1, ?2, ?3, ?4, ?5, "
			       "?6)",
			       -1, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "INSERT INTO chunk_origin (origin_id, process_id, backing, call, "
			       "size, fate, stack_id, alloc_tid, free_tid, slack_stored, base) "
			       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
			       -1, &ins_origin, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO chunk_slack (chunk_id, slack) VALUES (?1, ?2)",
			       -1, &ins_slack, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "SELECT process_id, address, size, chunk_bytes, backing, call, "
			       "alloc_ns, alloc_tid, free_ns, free_tid, fate, released_ns, "
			       "stack_id FROM chunk WHERE chunk_id = ?1",
			       -1, &q, NULL) != SQLITE_OK) {
		fprintf(stderr, "test-codes: prepare: %s\n", sqlite3_errmsg(db));
		exit(99);
	}
	insert_processes();
	insert_epochs(nrows);
	for (int i = 0; i < nrows; i++) {
		random_row(&rows[i], i + 1, &g);
		insert_row(ins, ins_origin, ins_slack, &rows[i]);
	}
	for (int i = 0; i < nrows; i++) {
		if (!view_matches(q, &rows[i]) && ++bad_view <= 5)
			printf("# seed %" PRIu64 ": row %d differs in the chunk view\n", seed, i + 1);
		if (!address_roundtrip(&rows[i]))
			bad_address++;
	}
	CHECK(bad_view == 0, "chunk view decodes chunk_packed and chunk_origin: %d of %d rows "
	      "differ (seed %" PRIu64 ")", bad_view, nrows, seed);
	CHECK(bad_address == 0, "hp_chunk_address inverts hp_chunk_address_rel: %d of %d rows "
	      "differ", bad_address, nrows);
	sqlite3_finalize(ins);
	sqlite3_finalize(ins_origin);
	sqlite3_finalize(ins_slack);
	sqlite3_finalize(q);
	free(rows);
}

/* heap_events decodes heap_event rows as db_heap_event writes them
 * (hp_event_what, times against the block's base, addresses against the
 * process's heap_start). */
static void
event_view(uint64_t seed, int nrows)
{
	sqlite3_stmt *ins, *ins_epoch, *q;
	uint64_t g = mix(seed ^ 0x5eed) | 1;
	int bad = 0;

	if (sqlite3_prepare_v2(db,
			       "INSERT INTO heap_event (rowid, process_id, ns_rel, address, bytes, "
			       "what) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
			       -1, &ins, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT INTO heap_event_epoch VALUES (?1, ?2)", -1, &ins_epoch,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "SELECT process_id, ns, kind, address, bytes, value FROM heap_events "
			       "WHERE event_id = ?1",
			       -1, &q, NULL) != SQLITE_OK) {
		fprintf(stderr, "test-codes: prepare: %s\n", sqlite3_errmsg(db));
		exit(99);
	}
	for (int64_t b = 0; b <= (int64_t)nrows >> HP_EVENT_EPOCH_SHIFT; b++) {
		sqlite3_bind_int64(ins_epoch, 1, b);
		sqlite3_bind_int64(ins_epoch, 2, event_base(b << HP_EVENT_EPOCH_SHIFT));
		step_reset(ins_epoch);
	}
	for (int64_t id = 1; id <= nrows; id++) {
		int k = (int)(rng_next(&g) % NPROC);
		int kind = 1 + (int)(rng_next(&g) % 7);
		int64_t ns = event_base(id) + (int64_t)(rng_next(&g) % 100000000);
		uint64_t heap = (uint64_t)proc_heap[k];
		int64_t address = (int64_t)heap + (int64_t)(rng_next(&g) % (1ULL << 40)) - (1LL << 20);
		int64_t bytes = kind == HP_HEV_BRK ? address + (int64_t)(rng_next(&g) % (1u << 30))
						   : (int64_t)(rng_next(&g) % (1ULL << 36));
		/* any value a kind has: codes, or an old chunk's bytes up to the limit */
		int64_t value = rng_next(&g) % 8 ? (int64_t)(rng_next(&g) % 6)
				: (int64_t)(rng_next(&g) % (uint64_t)HP_EVENT_VALUE_LIMIT);
		sqlite3_bind_int64(ins, 1, id);
		sqlite3_bind_int64(ins, 2, proc_ids[k]);
		sqlite3_bind_int64(ins, 3, ns - event_base(id));
		sqlite3_bind_int64(ins, 4, address - (int64_t)heap);
		sqlite3_bind_int64(ins, 5, kind == HP_HEV_BRK ? bytes - (int64_t)heap : bytes);
		sqlite3_bind_int64(ins, 6, hp_event_what(kind, value));
		step_reset(ins);
		int64_t what = hp_event_what(kind, value);
		bool has = hp_event_has_value(kind);
		bool ok = hp_event_kind(what) == kind && (!has || hp_event_value(what) == value);
		sqlite3_bind_int64(q, 1, id);
		ok = ok && sqlite3_step(q) == SQLITE_ROW &&
		     sqlite3_column_int64(q, 0) == proc_ids[k] && sqlite3_column_int64(q, 1) == ns &&
		     sqlite3_column_int64(q, 2) == kind && sqlite3_column_int64(q, 3) == address &&
		     sqlite3_column_int64(q, 4) == bytes &&
		     (sqlite3_column_type(q, 5) == SQLITE_NULL) == !has &&
		     (!has || sqlite3_column_int64(q, 5) == value);
		sqlite3_reset(q);
		if (!ok && ++bad <= 5)
			printf("# seed %" PRIu64 ": heap event %" PRId64 " (kind %d, value %" PRId64
			       ") differs in heap_events\n", seed, id, kind, value);
	}
	CHECK(bad == 0, "heap_events decodes heap_event and hp_event_what: %d of %d rows differ",
	      bad, nrows);
	sqlite3_finalize(ins);
	sqlite3_finalize(ins_epoch);
	sqlite3_finalize(q);
}

int
main(int argc, char **argv)
{
	uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
	int nrows = argc > 2 ? atoi(argv[2]) : 20000;
	char *msg = NULL;

	if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
	    sqlite3_exec(db, hp_schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "test-codes: the schema does not run: %s\n",
			msg ? msg : sqlite3_errmsg(db));
		return 99;
	}
	CHECK(query_int("PRAGMA user_version") == HP_SCHEMA_VERSION,
	      "schema_version.h has heapprof.sql's user_version (%d)", HP_SCHEMA_VERSION);
	CHECK(query_int("PRAGMA application_id") == HP_APPLICATION_ID,
	      "schema_version.h has heapprof.sql's application_id");
#define SAME(table, list) same_codes(table, list, sizeof(list) / sizeof(list[0]))
	SAME("backing", backing_codes);
	SAME("fate", fate_codes);
	SAME("call", call_codes);
	SAME("event_kind", event_codes);
	SAME("range_state", state_codes);
	SAME("map_kind", map_codes);
	SAME("occupant", occupant_codes);
#undef SAME
	fate_occupies();
	chunk_view(seed, nrows);
	event_view(seed, nrows);
	sqlite3_close(db);
	return harness_exit();
}
