/* SPDX-License-Identifier: MIT */
/*
 * advise-seq.c - a process's requests in their recorded order, from a
 * database (advise.h says what is derived and how exactly): the `chunk`
 * view for the chunks (every column of a chunk row decoded, with the codes
 * of the backing, call and fate tables; the `chunks` view adds their names
 * and a union with snapshot rows, and ordered it costs 9 times as much to
 * read: 27 s of CPU for 10 million rows against 3), the heap_event table for in-place
 * reallocs and malloc_trim, the thread table for threads' ends.
 */
#include "config.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "advise.h"
#include "codes.h"
#include "tune.h"
#include "util.h"

struct row {
	int64_t chunk_id, alloc_ns, free_ns, realloc_from;
	uint64_t addr, size, bytes;
	int32_t alloc_tid, free_tid;
	uint8_t backing, call, fate;
	uint8_t align_log2;   /* memalign: as recorded; 0: not recorded */
	uint32_t next;        /* the row a realloc made of this one (index + 1) */
	uint32_t first_resize; /* its first in-place resize (index + 1) */
	uint32_t last_resize;  /* and its last */
};

struct resize {
	int64_t ns;
	uint64_t addr, new_bytes, old_bytes;
	uint64_t size, old_size; /* the requests after and before (NO_SIZE: not recorded) */
	uint32_t row;         /* index + 1; 0: none found */
};

#define NO_SIZE UINT64_MAX

static struct adv_req *
push(struct adv_seq *s, size_t *cap)
{
	if (s->nreqs == *cap) {
		*cap = *cap ? *cap * 2 : 4096;
		s->reqs = xrealloc(s->reqs, *cap * sizeof(*s->reqs));
	}
	struct adv_req *r = &s->reqs[s->nreqs++];
	memset(r, 0, sizeof(*r));
	return r;
}

/* Sort the requests by time, stably (an LSD radix sort of (time, index)
 * pairs, 11 bits a pass, skipping the passes where every key has the same
 * digit): qsort of 20 million requests took a third of a replay's time. */
static void
sort_by_ns(struct adv_seq *s)
{
	struct key {
		uint64_t ns;
		uint32_t ix;
	} *a, *b, *t;
	size_t n = s->nreqs;
	int64_t lo = INT64_MAX;
	uint64_t hi = 0;

	if (n < 2)
		return;
	for (size_t i = 0; i < n; i++)
		if (s->reqs[i].ns < lo)
			lo = s->reqs[i].ns;
	a = xmalloc(n * sizeof(*a));
	b = xmalloc(n * sizeof(*b));
	for (size_t i = 0; i < n; i++) {
		a[i].ns = (uint64_t)s->reqs[i].ns - (uint64_t)lo;
		a[i].ix = (uint32_t)i;
		hi |= a[i].ns;
	}
	for (unsigned shift = 0; shift < 64 && (hi >> shift); shift += 11) {
		size_t count[2049] = { 0 };
		for (size_t i = 0; i < n; i++)
			count[((a[i].ns >> shift) & 2047) + 1]++;
		for (unsigned d = 0; d < 2048; d++)
			count[d + 1] += count[d];
		for (size_t i = 0; i < n; i++)
			b[count[(a[i].ns >> shift) & 2047]++] = a[i];
		t = a;
		a = b;
		b = t;
	}
	struct adv_req *out = xmalloc(n * sizeof(*out));
	for (size_t i = 0; i < n; i++)
		out[i] = s->reqs[a[i].ix];
	free(s->reqs);
	s->reqs = out;
	free(a);
	free(b);
}

static struct row *sort_rows;

static int
by_addr(const void *a, const void *b)
{
	const struct row *x = &sort_rows[*(const uint32_t *)a], *y = &sort_rows[*(const uint32_t *)b];

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	return (x->alloc_ns > y->alloc_ns) - (x->alloc_ns < y->alloc_ns);
}

/* The request size that makes a chunk of `bytes` (advise.h). */
static uint64_t
size_for(uint64_t bytes, uint8_t backing)
{
	uint64_t less = backing == HP_BACKING_MMAP ? 24 : 8;

	return bytes > less ? bytes - less : 0;
}

/* The size a row's chunk was first asked for: its row keeps the size of
 * the last in-place resize, the first resize's row the one before it (or,
 * when not recorded, the chunk's bytes tell it, advise.h). */
static uint64_t
first_request(struct adv_seq *s, const struct row *r, const struct resize *rs)
{
	if (!r->first_resize)
		return r->size;
	const struct resize *f = &rs[r->first_resize - 1];
	if (f->old_size != NO_SIZE)
		return f->old_size;
	s->derived_resize++;
	return size_for(f->old_bytes, r->backing);
}

/* What the recording got, for the self-check. */
static void
recorded(struct adv_req *q, const struct row *r, uint64_t bytes)
{
	q->rec_backing = r->backing;
	q->rec = r->backing == HP_BACKING_MMAP ? bytes : r->addr;
}

static int
fail(sqlite3 *h, char *err, size_t errcap)
{
	if (sqlite3_errcode(h) == SQLITE_INTERRUPT)
		snprintf(err, errcap, "damaged: reading its chunks takes more work than a file "
				      "of its size can need (a view that never ends?)");
	else
		snprintf(err, errcap, "%s", sqlite3_errmsg(h));
	return -1;
}

int
adv_seq_load(sqlite3 *h, int64_t process_id, int64_t pid, struct adv_seq *s, char *err,
	     size_t errcap)
{
	struct row *rows = NULL;
	struct resize *rs = NULL;
	size_t nrows = 0, rcap = 0, nrs = 0, rscap = 0, cap = 0;
	sqlite3_stmt *st;
	int rc, ret = -1;

	memset(s, 0, sizeof(*s));
	s->process_id = process_id;
	s->pid = pid;
	if (sqlite3_prepare_v2(h, "SELECT heap_start FROM process WHERE process_id = ?1", -1, &st,
			       NULL) != SQLITE_OK)
		return fail(h, err, errcap);
	sqlite3_bind_int64(st, 1, process_id);
	if (sqlite3_step(st) == SQLITE_ROW)
		s->heap_start = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);

	if (sqlite3_prepare_v2(h,
			       "SELECT chunk_id, address, size, chunk_bytes, backing, call, alloc_ns, "
			       "alloc_tid, free_ns, free_tid, realloc_from, fate, alignment FROM chunk "
			       "WHERE process_id = ?1 ORDER BY chunk_id",
			       -1, &st, NULL) != SQLITE_OK)
		return fail(h, err, errcap);
	sqlite3_bind_int64(st, 1, process_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (nrows == rcap) {
			rcap = rcap ? rcap * 2 : 4096;
			rows = xrealloc(rows, rcap * sizeof(*rows));
		}
		int b = sqlite3_column_int(st, 4), c = sqlite3_column_int(st, 5);
		struct row *r = &rows[nrows];
		*r = (struct row){
			.chunk_id = sqlite3_column_int64(st, 0),
			.addr = (uint64_t)sqlite3_column_int64(st, 1),
			.size = (uint64_t)sqlite3_column_int64(st, 2),
			.bytes = (uint64_t)sqlite3_column_int64(st, 3),
			.alloc_ns = sqlite3_column_int64(st, 6),
			.alloc_tid = sqlite3_column_int(st, 7),
			.free_ns = sqlite3_column_type(st, 8) == SQLITE_NULL
					   ? 0 : sqlite3_column_int64(st, 8),
			.free_tid = sqlite3_column_int(st, 9),
			.realloc_from = sqlite3_column_int64(st, 10),
			.fate = (uint8_t)(sqlite3_column_int(st, 11) & 7),
			/* the codes of the backing, call and fate tables */
			.backing = (uint8_t)(b >= 1 && b <= 3 ? b : 1),
			.call = (uint8_t)(c >= 1 && c <= 4 ? c : 1),
		};
		uint64_t align = (uint64_t)sqlite3_column_int64(st, 12);
		if (align) {
			if (align & (align - 1) || align < 16) {
				snprintf(err, errcap, "damaged: chunk %lld has an alignment of %llu, "
						      "no power of two of at least 16",
					 (long long)r->chunk_id, (unsigned long long)align);
				sqlite3_finalize(st);
				goto out;
			}
			r->align_log2 = (uint8_t)__builtin_ctzll(align);
		}
		if (r->size > (1ULL << 47) || r->bytes > (1ULL << 47) || r->addr > (1ULL << 57)) {
			snprintf(err, errcap, "damaged: chunk %lld has an address or size no "
					      "process can have", (long long)r->chunk_id);
			sqlite3_finalize(st);
			goto out;
		}
		if (r->size > s->max_request)
			s->max_request = r->size;
		nrows++;
		if (nrows >= UINT32_MAX / 2) {
			snprintf(err, errcap, "more chunks than advise replays (%zu)", nrows);
			sqlite3_finalize(st);
			goto out;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return fail(h, err, errcap);

	/* realloc links: rows are by chunk_id */
	for (size_t i = 0; i < nrows; i++) {
		if (!rows[i].realloc_from)
			continue;
		size_t lo = 0, hi = nrows;
		while (lo < hi) {
			size_t mid = (lo + hi) / 2;
			if (rows[mid].chunk_id < rows[i].realloc_from)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo < nrows && rows[lo].chunk_id == rows[i].realloc_from && !rows[lo].next &&
		    rows[lo].free_ns)
			rows[lo].next = (uint32_t)i + 1;
		else
			rows[i].realloc_from = 0;
	}

	/* in-place reallocs (resize heap events), matched to their rows */
	if (sqlite3_prepare_v2(h, "SELECT ns, address, bytes, value, size, old_size "
				  "FROM heap_events WHERE process_id = ?1 AND kind = ?2 "
				  "ORDER BY ns",
			       -1, &st, NULL) != SQLITE_OK)
		goto sql;
	sqlite3_bind_int64(st, 1, process_id);
	sqlite3_bind_int(st, 2, HP_HEV_RESIZE);
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (nrs == rscap) {
			rscap = rscap ? rscap * 2 : 256;
			rs = xrealloc(rs, rscap * sizeof(*rs));
		}
		struct resize *z = &rs[nrs++];
		*z = (struct resize){
			.ns = sqlite3_column_int64(st, 0),
			.addr = (uint64_t)sqlite3_column_int64(st, 1),
			.new_bytes = (uint64_t)sqlite3_column_int64(st, 2),
			.old_bytes = (uint64_t)sqlite3_column_int64(st, 3),
			.size = sqlite3_column_type(st, 4) == SQLITE_NULL
					? NO_SIZE : (uint64_t)sqlite3_column_int64(st, 4),
			.old_size = sqlite3_column_type(st, 5) == SQLITE_NULL
					    ? NO_SIZE : (uint64_t)sqlite3_column_int64(st, 5),
		};
		if ((z->size != NO_SIZE && z->size > z->new_bytes) ||
		    (z->old_size != NO_SIZE && z->old_size > z->old_bytes)) {
			snprintf(err, errcap, "damaged: a resize at %lld ns asks for more than its "
					      "chunk holds", (long long)z->ns);
			sqlite3_finalize(st);
			goto out;
		}
	}
	sqlite3_finalize(st);
	if (nrs) {
		uint32_t *ix = xmalloc(nrows * sizeof(*ix));
		for (size_t i = 0; i < nrows; i++)
			ix[i] = (uint32_t)i;
		sort_rows = rows;
		qsort(ix, nrows, sizeof(*ix), by_addr);
		for (size_t k = 0; k < nrs; k++) {
			/* the last row at that address allocated before it */
			size_t lo = 0, hi = nrows;
			while (lo < hi) {
				size_t mid = (lo + hi) / 2;
				const struct row *r = &rows[ix[mid]];
				if (r->addr < rs[k].addr ||
				    (r->addr == rs[k].addr && r->alloc_ns < rs[k].ns))
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo == 0)
				continue;
			struct row *r = &rows[ix[lo - 1]];
			if (r->addr != rs[k].addr || (r->free_ns && r->free_ns < rs[k].ns))
				continue;
			rs[k].row = ix[lo - 1] + 1;
			if (!r->first_resize)
				r->first_resize = (uint32_t)k + 1;
			r->last_resize = (uint32_t)k + 1;
		}
		free(ix);
	}

	/* the requests */
	s->nobjects = (uint32_t)nrows;
	s->chunk_ids = xmalloc((nrows + 1) * sizeof(*s->chunk_ids));
	for (size_t i = 0; i < nrows; i++)
		s->chunk_ids[i] = rows[i].chunk_id;
	for (size_t i = 0; i < nrows; i++) {
		struct row *r = &rows[i];
		uint64_t first_bytes = r->first_resize ? rs[r->first_resize - 1].old_bytes : r->bytes;
		struct adv_req *q;

		if (!r->realloc_from) {
			q = push(s, &cap);
			q->ns = r->alloc_ns;
			q->size = first_request(s, r, rs);
			q->id = (uint32_t)i + 1;
			q->tid = r->alloc_tid;
			q->op = r->call == HP_CALL_CALLOC ? ADV_CALLOC : r->call == HP_CALL_REALLOC ? ADV_REALLOC
				: r->call == HP_CALL_MEMALIGN ? ADV_MEMALIGN : ADV_MALLOC;
			recorded(q, r, first_bytes);
			if (q->op == ADV_MEMALIGN && r->align_log2) {
				q->align_log2 = r->align_log2;
			} else if (q->op == ADV_MEMALIGN) {
				/* not recorded (a chunk_slack row without it):
				 * the largest power of two, up to a page, the
				 * address the program got is a multiple of */
				uint64_t mem = r->addr + 16;
				unsigned lg = 4;
				while (lg < 12 && !(mem & (1ULL << lg)))
					lg++;
				q->align_log2 = (uint8_t)lg;
				s->derived_memalign++;
			}
		}
		if (r->free_ns) {
			q = push(s, &cap);
			q->ns = r->free_ns;
			q->tid = r->free_tid ? r->free_tid : r->alloc_tid;
			if (r->next) {
				struct row *n = &rows[r->next - 1];
				uint64_t nb = n->first_resize ? rs[n->first_resize - 1].old_bytes
							      : n->bytes;
				q->op = ADV_REALLOC;
				q->from = (uint32_t)i + 1;
				q->id = r->next;
				q->size = first_request(s, n, rs);
				recorded(q, n, nb);
			} else {
				q->op = ADV_FREE;
				q->id = (uint32_t)i + 1;
				q->rec = r->fate; /* where it went (self-check) */
			}
		}
	}
	for (size_t k = 0; k < nrs; k++) {
		if (!rs[k].row)
			continue;
		struct row *r = &rows[rs[k].row - 1];
		bool last = r->last_resize == k + 1;
		struct adv_req *q = push(s, &cap);
		q->ns = rs[k].ns;
		q->op = ADV_REALLOC;
		q->from = q->id = rs[k].row;
		q->tid = r->alloc_tid;
		if (rs[k].size != NO_SIZE) {
			q->size = rs[k].size;
		} else {
			q->size = last ? r->size : size_for(rs[k].new_bytes, r->backing);
			s->derived_resize += !last;
		}
		recorded(q, r, rs[k].new_bytes);
	}

	/* the settings: start-up lines, mallopt calls */
	if (sqlite3_prepare_v2(h, "SELECT ns, param, value, line FROM malloc_setting "
				  "WHERE process_id = ?1 ORDER BY rowid",
			       -1, &st, NULL) != SQLITE_OK)
		goto sql;
	sqlite3_bind_int64(st, 1, process_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *line = (const char *)sqlite3_column_text(st, 3);
		if (line) {
			if (s->nenv == HP_TUNE_LINES_MAX || !strchr(line, '=')) {
				sqlite3_finalize(st);
				snprintf(err, errcap, "a malloc_setting line that is no setting, "
					 "or more than %d", HP_TUNE_LINES_MAX);
				goto out;
			}
			s->env = xrealloc(s->env, (s->nenv + 1) * sizeof(*s->env));
			s->env[s->nenv++] = xstrdup(line);
			continue;
		}
		struct adv_req *q = push(s, &cap);
		q->ns = sqlite3_column_int64(st, 0);
		q->op = ADV_MALLOPT;
		s->nmallopt++;
		q->id = (uint32_t)sqlite3_column_int(st, 1);
		q->size = (uint32_t)sqlite3_column_int(st, 2);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		goto sql;

	/* malloc_trim: a run of madvise events; threads' ends */
	if (sqlite3_prepare_v2(h, "SELECT ns FROM heap_events WHERE process_id = ?1 AND kind = ?2",
			       -1, &st, NULL) != SQLITE_OK)
		goto sql;
	sqlite3_bind_int64(st, 1, process_id);
	sqlite3_bind_int(st, 2, HP_HEV_MADVISE);
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct adv_req *q = push(s, &cap);
		q->ns = sqlite3_column_int64(st, 0);
		q->op = ADV_TRIM;
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(h, "SELECT tid, ended_ns FROM thread WHERE process_id = ?1 "
				  "AND ended_ns IS NOT NULL AND tid != ?2",
			       -1, &st, NULL) != SQLITE_OK)
		goto sql;
	sqlite3_bind_int64(st, 1, process_id);
	sqlite3_bind_int64(st, 2, pid);
	while (sqlite3_step(st) == SQLITE_ROW) {
		struct adv_req *q = push(s, &cap);
		q->tid = sqlite3_column_int(st, 0);
		q->ns = sqlite3_column_int64(st, 1);
		q->op = ADV_THREAD_EXIT;
	}
	sqlite3_finalize(st);

	sort_by_ns(s);
	/* one malloc_trim per run of madvise events with nothing between */
	size_t n = 0;
	for (size_t i = 0; i < s->nreqs; i++)
		if (!(s->reqs[i].op == ADV_TRIM && n && s->reqs[n - 1].op == ADV_TRIM))
			s->reqs[n++] = s->reqs[i];
	s->nreqs = n;
	/* threads (65: more than 64) */
	int32_t tids[65];
	size_t nt = 0;
	for (size_t i = 0; i < s->nreqs; i++) {
		size_t j;
		if (s->reqs[i].op == ADV_TRIM || s->reqs[i].op == ADV_THREAD_EXIT ||
		    s->reqs[i].op == ADV_MALLOPT)
			continue;
		for (j = 0; j < nt && tids[j] != s->reqs[i].tid; j++)
			;
		if (j == nt && nt < 65)
			tids[nt++] = s->reqs[i].tid;
	}
	s->nthreads = nt;
	ret = 0;
	goto out;
sql:
	fail(h, err, errcap);
out:
	free(rows);
	free(rs);
	if (ret != 0)
		adv_seq_free(s);
	return ret;
}

void
adv_seq_free(struct adv_seq *s)
{
	free(s->reqs);
	free(s->chunk_ids);
	for (size_t i = 0; i < s->nenv; i++)
		free(s->env[i]);
	free(s->env);
	s->env = NULL;
	s->nenv = 0;
	s->chunk_ids = NULL;
	s->reqs = NULL;
	s->nreqs = 0;
}
