/* SPDX-License-Identifier: MIT */
/*
 * collect.c - the collector (see collect.h).
 *
 * Rings are drained into per-ring queues as fast as possible (so producers
 * never wait on the merge), then each image's queues are merged by sequence
 * number: the record with the next number is applied to the image's model
 * (its live chunks, stacks, modules) and turned into rows. A number that
 * has not arrived yet stops the merge until it does, or until the image is
 * over and the number is counted as a truncated record.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "collect.h"
#include "events.h"
#include "util.h"

/* ---- a map from chunk address to the live chunk ---- */

struct live {
	uint64_t addr; /* 0: empty slot */
	int64_t chunk_id;
	uint64_t size, chunk_bytes;
	int64_t alloc_seq, alloc_ns, alloc_tid, stack_id, realloc_from;
	uint8_t backing, call;
};

struct livemap {
	struct live *v;
	size_t mask, count;
};

static size_t
slot_of(const struct livemap *m, uint64_t a)
{
	return (size_t)((a >> 4) * 0x9e3779b97f4a7c15ULL >> 20) & m->mask;
}

static struct live *
live_find(struct livemap *m, uint64_t a)
{
	if (!m->v)
		return NULL;
	for (size_t i = slot_of(m, a);; i = (i + 1) & m->mask) {
		if (m->v[i].addr == a)
			return &m->v[i];
		if (m->v[i].addr == 0)
			return NULL;
	}
}

static struct live *live_put(struct livemap *m, uint64_t a);

static void
live_grow(struct livemap *m)
{
	struct livemap n = { xcalloc(m->v ? (m->mask + 1) * 2 : 1024, sizeof(struct live)),
			     m->v ? (m->mask + 1) * 2 - 1 : 1023, 0 };

	for (size_t i = 0; m->v && i <= m->mask; i++)
		if (m->v[i].addr)
			*live_put(&n, m->v[i].addr) = m->v[i];
	free(m->v);
	*m = n;
}

static struct live *
live_put(struct livemap *m, uint64_t a)
{
	size_t i;

	if (!m->v || (m->count + 1) * 4 > (m->mask + 1) * 3)
		live_grow(m);
	for (i = slot_of(m, a); m->v[i].addr && m->v[i].addr != a; i = (i + 1) & m->mask)
		;
	if (m->v[i].addr == 0)
		m->count++;
	m->v[i].addr = a;
	return &m->v[i];
}

/* Remove by backward shift (linear probing, no tombstones). */
static void
live_del(struct livemap *m, struct live *e)
{
	size_t i = (size_t)(e - m->v), j = i;

	for (;;) {
		j = (j + 1) & m->mask;
		if (m->v[j].addr == 0)
			break;
		size_t k = slot_of(m, m->v[j].addr);
		/* move j back to i if its home k is not in (i, j] */
		if ((j > i && (k <= i || k > j)) || (j < i && (k <= i && k > j))) {
			m->v[i] = m->v[j];
			i = j;
		}
	}
	m->v[i].addr = 0;
	m->count--;
}

/* ---- images ---- */

struct ring_in {
	struct hp_ring_header *hdr;
	char *data;
	uint64_t size;
};

/* Records copied out of the rings, waiting for their turn: a min-heap by
 * sequence number. A ring is not in sequence order (a free is numbered
 * before the allocator works, and what the allocator reports meanwhile is
 * numbered and written first), so the merge looks at all of them. */
struct pending {
	uint64_t seq;
	struct hp_ev *rec;
};

struct heap {
	struct pending *v;
	size_t n, cap;
};

static void
heap_push(struct heap *h, uint64_t seq, struct hp_ev *rec)
{
	size_t i;

	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 1024;
		h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	for (i = h->n++; i > 0 && h->v[(i - 1) / 2].seq > seq; i = (i - 1) / 2)
		h->v[i] = h->v[(i - 1) / 2];
	h->v[i] = (struct pending){ seq, rec };
}

static struct pending
heap_pop(struct heap *h)
{
	struct pending top = h->v[0], last = h->v[--h->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->v[c + 1].seq < h->v[c].seq)
			c++;
		if (h->v[c].seq >= last.seq)
			break;
		h->v[i] = h->v[c];
		i = c;
	}
	if (h->n)
		h->v[i] = last;
	return top;
}

struct module_in {
	uint64_t base, lo, hi;
	int64_t image_id, module_id;
	bool loaded;
};

struct thread_in {
	int32_t tid;
	int64_t started_ns, ended_ns;
	int64_t realloc_from; /* chunk id of this thread's last realloc'd-away chunk */
};

struct image {
	char stem[64];         /* P<pid>.<serial> */
	pid_t pid;
	uint64_t serial, start_ticks;
	struct hp_proc_file *proc;
	struct ring_in *rings;
	unsigned nrings;
	struct heap pending;
	uint64_t next_seq;
	int64_t process_id;
	struct db_process row;
	char *exe, *argv_json;
	bool dead, finished, got_process, exec_ended;
	int pidfd;
	int64_t last_ns, end_ns;
	int wait_status;
	bool waited;
	int exit_record_status;
	bool has_exit_record;
	struct livemap live;
	uint64_t live_bytes, peak_live_bytes;
	int64_t *stack_map; /* local stack id -> global */
	size_t stack_cap;
	struct module_in *mods;
	size_t nmods;
	struct thread_in *threads;
	size_t nthreads;
	uint64_t events;
};

/* A global stack: its frames as (image, offset). */
struct gstack {
	uint64_t hash;
	int64_t id;
	unsigned depth;
	int64_t *image_ids;
	uint64_t *offsets;
	struct gstack *next;
};

#define GSTACK_BUCKETS 65536

struct collector {
	struct db *db;
	char *dir;
	int dirfd;
	bool attach;
	struct image **images;
	size_t nimages;
	struct gstack **gstacks;
	int64_t next_stack_id, next_chunk_id, next_process_id;
	uint64_t events, chunks, dropped, truncated;
	uint64_t leaked_bytes, leaked_chunks, peak_live;
};

struct collector *
collect_new(struct db *db, const char *dir, bool attach)
{
	struct collector *c = xcalloc(1, sizeof(*c));

	c->db = db;
	c->dir = xstrdup(dir);
	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	c->attach = attach;
	c->gstacks = xcalloc(GSTACK_BUCKETS, sizeof(*c->gstacks));
	c->next_stack_id = c->next_chunk_id = c->next_process_id = 1;
	return c;
}

/* Map a spool file if it is already as long as we need: a file the
 * program is still setting up may be shorter, and touching a mapping past
 * the end of its file is SIGBUS. */
static void *
map_file(int dirfd, const char *name, size_t len)
{
	int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	void *p;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < len) {
		close(fd);
		return NULL;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? NULL : p;
}

static struct image *
find_image(struct collector *c, pid_t pid, uint64_t serial)
{
	for (size_t i = 0; i < c->nimages; i++)
		if (c->images[i]->pid == pid && c->images[i]->serial == serial)
			return c->images[i];
	return NULL;
}

static void
write_process(struct collector *c, struct image *im)
{
	im->row.id = im->process_id;
	im->row.exe = im->exe;
	im->row.argv_json = im->argv_json;
	im->row.dropped_events = im->proc ? (int64_t)im->proc->dropped_events : 0;
	db_process(c->db, &im->row);
}

static void
new_image(struct collector *c, const char *stem, struct hp_proc_file *proc)
{
	struct image *im = xcalloc(1, sizeof(*im));

	snprintf(im->stem, sizeof(im->stem), "%s", stem);
	im->proc = proc;
	im->pid = proc->pid;
	im->serial = proc->serial;
	im->start_ticks = proc->start_ticks;
	im->next_seq = 1;
	im->process_id = c->next_process_id++;
	im->pidfd = -1;
	im->row.pid = im->pid;
	im->row.ppid = proc->ppid;
	im->row.exit_status = im->row.exit_signal = -1;
	/* Images of one process (same pid and start time) replace each other
	 * by exec, in serial order; they may be found in any order. */
	struct image *before = NULL, *after = NULL;
	for (size_t i = 0; i < c->nimages; i++) {
		struct image *o = c->images[i];
		if (o->pid != im->pid || o->start_ticks != im->start_ticks)
			continue;
		if (o->serial < im->serial && (!before || o->serial > before->serial))
			before = o;
		if (o->serial > im->serial && (!after || o->serial < after->serial))
			after = o;
	}
	if (before) {
		before->dead = before->exec_ended = true;
		im->row.exec_from = before->process_id;
	}
	if (after) {
		im->dead = im->exec_ended = true;
		after->row.exec_from = im->process_id;
		write_process(c, after);
	}
	/* Its end is watched with a pidfd: exact for our children (we wait for
	 * them), the zombie's status for the others where we catch it. */
	im->pidfd = (int)syscall(SYS_pidfd_open, im->pid, 0);
	if (im->pidfd < 0 && !after)
		im->dead = true;
	c->images = xrealloc(c->images, (c->nimages + 1) * sizeof(*c->images));
	c->images[c->nimages++] = im;
	write_process(c, im);
}

static int
by_start(const void *a, const void *b)
{
	const struct hp_proc_file *x = *(struct hp_proc_file *const *)a;
	const struct hp_proc_file *y = *(struct hp_proc_file *const *)b;

	if (x->start_ticks != y->start_ticks)
		return x->start_ticks < y->start_ticks ? -1 : 1;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return x->serial < y->serial ? -1 : x->serial > y->serial;
}

static void scan_rings(struct collector *c, struct image *im);

/* Find new process files and new rings. */
static void
scan_spool(struct collector *c)
{
	DIR *d = fdopendir(dup(c->dirfd));
	struct dirent *de;

	if (d == NULL)
		return;
	rewinddir(d);
	struct found {
		struct hp_proc_file *proc;
		char stem[64];
	} *found = NULL;
	size_t nfound = 0;

	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name, *dot;
		int pid;
		unsigned long long serial;

		if (name[0] != 'P' || !(dot = strstr(name, ".proc")) || dot[5] != '\0')
			continue;
		if (sscanf(name, "P%d.%llu.proc", &pid, &serial) != 2)
			continue;
		if (find_image(c, pid, serial))
			continue;
		struct hp_proc_file *proc = map_file(c->dirfd, name, HP_PAGE);
		if (proc == NULL)
			continue;
		if (__atomic_load_n(&proc->magic, __ATOMIC_ACQUIRE) != HP_PROC_MAGIC ||
		    proc->version != HP_EV_VERSION) {
			munmap(proc, HP_PAGE);
			continue;
		}
		found = xrealloc(found, (nfound + 1) * sizeof(*found));
		found[nfound].proc = proc;
		snprintf(found[nfound].stem, sizeof(found[nfound].stem), "P%d.%llu", pid, serial);
		nfound++;
	}
	closedir(d);
	/* In the order the processes began (a parent before its children, an
	 * image before the one that replaced it), whatever readdir says. */
	qsort(found, nfound, sizeof(*found), by_start);
	for (size_t i = 0; i < nfound; i++)
		new_image(c, found[i].stem, found[i].proc);
	free(found);
	for (size_t i = 0; i < c->nimages; i++)
		if (!c->images[i]->finished)
			scan_rings(c, c->images[i]);
}

/* Map the rings the image created since last time. */
static void
scan_rings(struct collector *c, struct image *im)
{
	unsigned want = __atomic_load_n(&im->proc->nrings, __ATOMIC_ACQUIRE);

	while (im->nrings < want) {
		char name[96];
		struct hp_ring_header *h;

		snprintf(name, sizeof(name), "%s.r%u", im->stem, im->nrings);
		h = map_file(c->dirfd, name, HP_PAGE);
		if (!h || __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != HP_RING_MAGIC) {
			if (h)
				munmap(h, HP_PAGE);
			break;
		}
		uint64_t size = h->data_bytes;
		munmap(h, HP_PAGE);
		h = map_file(c->dirfd, name, HP_PAGE + size);
		if (!h)
			break;
		im->rings = xrealloc(im->rings, (im->nrings + 1) * sizeof(*im->rings));
		im->rings[im->nrings] = (struct ring_in){ h, (char *)h + HP_PAGE, size };
		im->nrings++;
	}
}

/* Copy everything published in the ring into the image's pending heap;
 * give the space back to the producer. */
static bool
drain_ring(struct image *im, struct ring_in *r)
{
	uint64_t head = __atomic_load_n(&r->hdr->head, __ATOMIC_ACQUIRE);
	uint64_t tail = r->hdr->tail;
	bool any = false;

	while (tail < head) {
		uint64_t off = tail & (r->size - 1);
		if (r->size - off < sizeof(struct hp_ev)) {
			tail += r->size - off; /* too short for a record: skipped */
			continue;
		}
		const struct hp_ev *e = (const struct hp_ev *)(r->data + off);
		uint32_t bytes = HP_EV_BYTES(e->word);

		if (bytes < sizeof(struct hp_ev) || bytes > r->size || (bytes & 7))
			break; /* corrupt: leave it (counted as truncated later) */
		if (HP_EV_TYPE(e->word) != HP_EV_PAD) {
			struct hp_ev *copy = xmalloc(bytes);
			memcpy(copy, e, bytes);
			heap_push(&im->pending, copy->seq, copy);
		}
		tail += bytes;
		any = true;
	}
	__atomic_store_n(&r->hdr->tail, tail, __ATOMIC_RELEASE);
	if (__atomic_load_n(&r->hdr->state, __ATOMIC_ACQUIRE) == HP_RING_RETIRED && tail == head)
		__atomic_store_n(&r->hdr->state, HP_RING_FREE, __ATOMIC_RELEASE);
	return any;
}

/* ---- applying records ---- */

static struct thread_in *
thread_of(struct image *im, int32_t tid)
{
	for (size_t i = 0; i < im->nthreads; i++)
		if (im->threads[i].tid == tid)
			return &im->threads[i];
	im->threads = xrealloc(im->threads, (im->nthreads + 1) * sizeof(*im->threads));
	im->threads[im->nthreads] = (struct thread_in){ tid, 0, 0, 0 };
	return &im->threads[im->nthreads++];
}

static void
json_string(struct buf *b, const char *s, size_t n)
{
	buf_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		char esc[8];

		if (ch == '"' || ch == '\\') {
			esc[0] = '\\';
			esc[1] = (char)ch;
			buf_add(b, esc, 2);
		} else if (ch < 0x20 || ch >= 0x7f) {
			/* control bytes, and everything non-ASCII byte by byte:
			 * argv need not be UTF-8 */
			snprintf(esc, sizeof(esc), "\\u%04x", ch);
			buf_add(b, esc, 6);
		} else {
			buf_add(b, s + i, 1);
		}
	}
	buf_add(b, "\"", 1);
}

static void
on_process(struct collector *c, struct image *im, const struct hp_ev_process *ev)
{
	const char *exe = (const char *)(ev + 1);
	const char *argv = exe + ev->exe_bytes;
	struct buf j = { 0 };

	im->got_process = true;
	free(im->exe);
	im->exe = xstrdup(exe);
	buf_add(&j, "[", 1);
	for (size_t off = 0, k = 0; off < ev->argv_bytes && k < ev->argc; k++) {
		size_t n = strnlen(argv + off, ev->argv_bytes - off);
		if (k)
			buf_add(&j, ",", 1);
		json_string(&j, argv + off, n);
		off += n + 1;
	}
	buf_add(&j, "]", 2);
	free(im->argv_json);
	im->argv_json = j.p;
	im->row.pid = ev->pid;
	im->row.ppid = ev->ppid;
	im->row.started_ns = (int64_t)ev->h.ns;
	im->row.heap_start = (int64_t)ev->heap_start;
	if (ev->flags & HP_PROC_FORKED) {
		struct image *parent = find_image(c, ev->ppid, ev->parent_serial);
		if (parent) {
			im->row.parent_id = parent->process_id;
			im->row.fork_seq = (int64_t)ev->fork_seq;
		}
	} else if (!im->row.exec_from) {
		/* Started by vfork or posix_spawn (no fork handler ran, its first
		 * recorded image is the exec'd one): its parent is the latest
		 * image of its parent process. */
		struct image *parent = NULL;
		for (size_t i = 0; i < c->nimages; i++)
			if (c->images[i]->pid == ev->ppid && c->images[i] != im &&
			    (!parent || c->images[i]->serial > parent->serial))
				parent = c->images[i];
		if (parent)
			im->row.parent_id = parent->process_id;
	}
	write_process(c, im);
}

static int64_t
find_gstack(struct collector *c, unsigned depth, const int64_t *ids, const uint64_t *offs)
{
	uint64_t h = depth;

	for (unsigned i = 0; i < depth; i++)
		h = (h ^ ((uint64_t)ids[i] << 40) ^ offs[i]) * 0x100000001b3ULL;
	size_t b = (size_t)(h % GSTACK_BUCKETS);
	for (struct gstack *g = c->gstacks[b]; g; g = g->next)
		if (g->hash == h && g->depth == depth &&
		    memcmp(g->image_ids, ids, depth * sizeof(*ids)) == 0 &&
		    memcmp(g->offsets, offs, depth * sizeof(*offs)) == 0)
			return g->id;
	struct gstack *g = xcalloc(1, sizeof(*g));
	g->hash = h;
	g->id = c->next_stack_id++;
	g->depth = depth;
	g->image_ids = xmalloc(depth * sizeof(*ids));
	g->offsets = xmalloc(depth * sizeof(*offs));
	memcpy(g->image_ids, ids, depth * sizeof(*ids));
	memcpy(g->offsets, offs, depth * sizeof(*offs));
	g->next = c->gstacks[b];
	c->gstacks[b] = g;
	db_stack(c->db, g->id, depth, ids, offs);
	return g->id;
}

static void
on_stack(struct collector *c, struct image *im, const struct hp_ev_stack *ev)
{
	unsigned depth = ev->depth > HP_MAX_DEPTH_LIMIT ? HP_MAX_DEPTH_LIMIT : ev->depth;
	int64_t ids[HP_MAX_DEPTH_LIMIT];
	uint64_t offs[HP_MAX_DEPTH_LIMIT];

	for (unsigned i = 0; i < depth; i++) {
		uint64_t ip = ev->ip[i];
		const struct module_in *hit = NULL;

		for (size_t m = 0; m < im->nmods; m++)
			if (im->mods[m].loaded && ip >= im->mods[m].lo && ip < im->mods[m].hi) {
				hit = &im->mods[m];
				break;
			}
		ids[i] = hit ? hit->image_id : 0;
		offs[i] = hit ? ip - hit->base : ip;
	}
	if (ev->stack_id >= im->stack_cap) {
		size_t cap = ev->stack_id * 2 + 64;
		im->stack_map = xrealloc(im->stack_map, cap * sizeof(*im->stack_map));
		memset(im->stack_map + im->stack_cap, 0, (cap - im->stack_cap) * sizeof(int64_t));
		im->stack_cap = cap;
	}
	im->stack_map[ev->stack_id] = find_gstack(c, depth, ids, offs);
}

static void
on_module(struct collector *c, struct image *im, const struct hp_ev_module *ev)
{
	char hex[2 * sizeof(ev->build_id) + 1];
	const char *path = (const char *)(ev + 1);
	unsigned n = ev->build_id_bytes > sizeof(ev->build_id) ? sizeof(ev->build_id)
								 : ev->build_id_bytes;

	for (unsigned i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", ev->build_id[i]);
	hex[2 * n] = '\0';
	im->mods = xrealloc(im->mods, (im->nmods + 1) * sizeof(*im->mods));
	struct module_in *m = &im->mods[im->nmods++];
	m->base = ev->base;
	m->lo = ev->lo;
	m->hi = ev->hi;
	m->loaded = true;
	m->image_id = db_image(c->db, path[0] ? path : "[unknown]", n ? hex : NULL);
	m->module_id = db_module(c->db, im->process_id, m->image_id, ev->base, ev->lo, ev->hi,
				 (int64_t)ev->h.ns);
}

static void
on_unmodule(struct collector *c, struct image *im, const struct hp_ev_unmodule *ev)
{
	for (size_t m = 0; m < im->nmods; m++)
		if (im->mods[m].loaded && im->mods[m].base == ev->base && im->mods[m].lo == ev->lo) {
			im->mods[m].loaded = false;
			db_module_unloaded(c->db, im->mods[m].module_id, (int64_t)ev->h.ns);
		}
}

static void
end_chunk(struct collector *c, struct image *im, struct live *l, const struct hp_ev *h, int fate)
{
	struct db_chunk row = {
		.chunk_id = l->chunk_id,
		.process_id = im->process_id,
		.address = l->addr,
		.size = l->size,
		.chunk_bytes = l->chunk_bytes,
		.backing = l->backing,
		.call = l->call,
		.alloc_seq = l->alloc_seq,
		.alloc_ns = l->alloc_ns,
		.alloc_tid = l->alloc_tid,
		.free_seq = h ? (int64_t)h->seq : 0,
		.free_ns = h ? (int64_t)h->ns : 0,
		.free_tid = h ? h->tid : 0,
		.fate = fate,
		.stack_id = l->stack_id,
		.realloc_from = l->realloc_from,
	};

	db_chunk(c->db, &row);
	im->live_bytes -= l->chunk_bytes;
	if (!h) {
		c->leaked_chunks++;
		c->leaked_bytes += l->size;
	}
	live_del(&im->live, l);
}

static void
on_alloc(struct collector *c, struct image *im, const struct hp_ev_alloc *ev)
{
	struct live *l = live_find(&im->live, ev->chunk);
	struct thread_in *t = thread_of(im, ev->h.tid);

	if (l) /* never freed as far as we know: close it here */
		end_chunk(c, im, l, &ev->h, 0);
	l = live_put(&im->live, ev->chunk);
	l->chunk_id = c->next_chunk_id++;
	l->size = ev->size;
	l->chunk_bytes = ev->chunk_bytes;
	l->alloc_seq = (int64_t)ev->h.seq;
	l->alloc_ns = (int64_t)ev->h.ns;
	l->alloc_tid = ev->h.tid;
	l->stack_id = ev->stack_id && ev->stack_id < im->stack_cap ? im->stack_map[ev->stack_id] : 0;
	l->backing = ev->backing;
	l->call = ev->call;
	l->realloc_from = 0;
	if (ev->call == 3 && t->realloc_from) {
		l->realloc_from = t->realloc_from;
		t->realloc_from = 0;
	}
	c->chunks++;
	im->live_bytes += ev->chunk_bytes;
	if (im->live_bytes > im->peak_live_bytes)
		im->peak_live_bytes = im->live_bytes;
}

static void
on_free(struct collector *c, struct image *im, const struct hp_ev_free *ev)
{
	struct live *l = live_find(&im->live, ev->chunk);

	if (l == NULL) {
		/* allocated before this image existed: inherited by fork */
		db_heap_event(c->db, im->process_id, (int64_t)ev->h.seq, (int64_t)ev->h.ns, 7,
			      ev->chunk, ev->chunk_bytes, ev->fate, true);
		return;
	}
	if (ev->realloc)
		thread_of(im, ev->h.tid)->realloc_from = l->chunk_id;
	end_chunk(c, im, l, &ev->h, ev->fate);
}

static void
on_resize(struct collector *c, struct image *im, const struct hp_ev_resize *ev)
{
	struct live *l = live_find(&im->live, ev->chunk);

	if (l) {
		im->live_bytes += ev->new_bytes - l->chunk_bytes;
		if (im->live_bytes > im->peak_live_bytes)
			im->peak_live_bytes = im->live_bytes;
		l->size = ev->size;
		l->chunk_bytes = ev->new_bytes;
	}
	db_heap_event(c->db, im->process_id, (int64_t)ev->h.seq, (int64_t)ev->h.ns, 6, ev->chunk,
		      ev->new_bytes, (int64_t)ev->old_bytes, true);
}

static void
apply(struct collector *c, struct image *im, const struct hp_ev *e)
{
	int64_t seq = (int64_t)e->seq, ns = (int64_t)e->ns;

	im->events++;
	c->events++;
	if (ns > im->last_ns)
		im->last_ns = ns;
	switch (HP_EV_TYPE(e->word)) {
	case HP_EV_PROCESS:
		on_process(c, im, (const struct hp_ev_process *)e);
		break;
	case HP_EV_MODULE:
		on_module(c, im, (const struct hp_ev_module *)e);
		break;
	case HP_EV_UNMODULE:
		on_unmodule(c, im, (const struct hp_ev_unmodule *)e);
		break;
	case HP_EV_STACK:
		on_stack(c, im, (const struct hp_ev_stack *)e);
		break;
	case HP_EV_ALLOC:
		on_alloc(c, im, (const struct hp_ev_alloc *)e);
		break;
	case HP_EV_FREE:
		on_free(c, im, (const struct hp_ev_free *)e);
		break;
	case HP_EV_RESIZE:
		on_resize(c, im, (const struct hp_ev_resize *)e);
		break;
	case HP_EV_STATE: {
		const struct hp_ev_state *s = (const void *)e;
		db_heap_event(c->db, im->process_id, seq, ns, 5, s->chunk, s->bytes, s->state, true);
		break;
	}
	case HP_EV_BRK: {
		const struct hp_ev_brk *b = (const void *)e;
		db_heap_event(c->db, im->process_id, seq, ns, 1, b->old_brk, b->new_brk, 0, false);
		break;
	}
	case HP_EV_MAP:
	case HP_EV_UNMAP: {
		const struct hp_ev_map *m = (const void *)e;
		db_heap_event(c->db, im->process_id, seq, ns, HP_EV_TYPE(e->word) == HP_EV_MAP ? 2 : 3,
			      m->addr, m->len, m->kind, true);
		break;
	}
	case HP_EV_MADVISE: {
		const struct hp_ev_madvise *m = (const void *)e;
		db_heap_event(c->db, im->process_id, seq, ns, 4, m->addr, m->len, 0, false);
		break;
	}
	case HP_EV_THREAD: {
		const struct hp_ev_thread *t = (const void *)e;
		struct thread_in *ti = thread_of(im, e->tid);
		if (t->exiting)
			ti->ended_ns = ns;
		else if (!ti->started_ns)
			ti->started_ns = ns;
		break;
	}
	case HP_EV_EXIT:
		im->exit_record_status = ((const struct hp_ev_exit *)e)->status;
		im->has_exit_record = true;
		im->end_ns = ns;
		break;
	default: /* FORK, DROPS: nothing to store */
		break;
	}
}

/* Apply records in sequence order while the next number is at hand. With
 * `final`, numbers that will never come are skipped (and counted). */
static bool
merge(struct collector *c, struct image *im, bool final)
{
	bool any = false;

	while (im->pending.n > 0) {
		uint64_t seq = im->pending.v[0].seq;

		if (seq > im->next_seq) {
			if (!final)
				break;
			im->row.truncated_records += (int64_t)(seq - im->next_seq);
			c->truncated += seq - im->next_seq;
			im->next_seq = seq;
		}
		struct pending p = heap_pop(&im->pending);
		if (p.seq == im->next_seq) { /* below: a duplicate, dropped */
			apply(c, im, p.rec);
			im->next_seq++;
			any = true;
		}
		free(p.rec);
	}
	return any;
}

/* How the image ended, from what is known. */
static void
set_end(struct collector *c, struct image *im)
{
	im->row.exit_status = im->row.exit_signal = -1;
	if (im->exec_ended) {
		im->row.end_reason = "exec";
	} else if (im->waited && WIFEXITED(im->wait_status)) {
		im->row.end_reason = "exit";
		im->row.exit_status = WEXITSTATUS(im->wait_status);
	} else if (im->waited && WIFSIGNALED(im->wait_status)) {
		im->row.end_reason = "signal";
		im->row.exit_signal = WTERMSIG(im->wait_status);
	} else if (im->has_exit_record) {
		im->row.end_reason = "exit";
		im->row.exit_status = im->exit_record_status;
	} else {
		im->row.end_reason = "unknown";
	}
	if (im->exec_ended) {
		/* ends where the next image starts */
		for (size_t i = 0; i < c->nimages; i++)
			if (c->images[i]->row.exec_from == im->process_id &&
			    c->images[i]->row.started_ns)
				im->end_ns = c->images[i]->row.started_ns;
	}
}

static void
finish_image(struct collector *c, struct image *im)
{
	/* The process is gone: every ring it made exists by now. */
	scan_rings(c, im);
	for (unsigned i = 0; i < im->nrings; i++)
		drain_ring(im, &im->rings[i]);
	merge(c, im, true);
	/* Numbers taken but never written by the end. */
	uint64_t taken = __atomic_load_n(&im->proc->seq, __ATOMIC_ACQUIRE);
	if (taken > im->next_seq) {
		im->row.truncated_records += (int64_t)(taken - im->next_seq);
		c->truncated += taken - im->next_seq;
	}
	for (size_t i = 0; im->live.v && i <= im->live.mask; i++)
		while (im->live.v[i].addr)
			end_chunk(c, im, &im->live.v[i], NULL, 0);
	for (size_t i = 0; i < im->nthreads; i++)
		db_thread(c->db, im->process_id, im->threads[i].tid, im->threads[i].started_ns,
			  im->threads[i].ended_ns);
	if (im->peak_live_bytes > c->peak_live)
		c->peak_live = im->peak_live_bytes;
	c->dropped += im->proc->dropped_events;
	set_end(c, im);
	im->row.ended_ns = im->end_ns ? im->end_ns : im->last_ns;
	write_process(c, im);
	im->finished = true;
	for (unsigned i = 0; i < im->nrings; i++)
		munmap(im->rings[i].hdr, HP_PAGE + im->rings[i].size);
	free(im->pending.v);
	im->pending = (struct heap){ 0 };
	free(im->rings);
	im->rings = NULL;
	im->nrings = 0;
	free(im->live.v);
	im->live.v = NULL;
	if (im->pidfd >= 0)
		close(im->pidfd);
	im->pidfd = -1;
}

/* A process that ended but was not reaped yet shows its wait status in
 * /proc/PID/stat (field 52, Linux 3.5+). */
static void
zombie_status(struct image *im)
{
	char path[64], buf[2048];
	int fd;
	ssize_t n;

	if (im->waited)
		return;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)im->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] != 'Z')
		return;
	int field = 3; /* p + 2 is the state, field 3 */
	for (p += 2; *p && field < 52; p++)
		if (*p == ' ')
			field++;
	if (field == 52 && *p >= '0' && *p <= '9') {
		im->wait_status = atoi(p);
		im->waited = true;
	}
}

bool
collect_poll(struct collector *c)
{
	bool any = false;

	scan_spool(c);
	for (size_t i = 0; i < c->nimages; i++) {
		struct image *im = c->images[i];

		if (im->finished)
			continue;
		for (unsigned r = 0; r < im->nrings; r++)
			any |= drain_ring(im, &im->rings[r]);
		any |= merge(c, im, false);
		if (im->pidfd >= 0 && !im->dead) {
			struct pollfd p = { im->pidfd, POLLIN, 0 };
			if (poll(&p, 1, 0) > 0) {
				im->dead = true;
				im->end_ns = (int64_t)mono_ns();
				zombie_status(im);
			}
		}
		if (im->dead)
			finish_image(c, im);
	}
	db_tick(c->db);
	return any;
}

void
collect_reaped(struct collector *c, pid_t pid, int status)
{
	struct image *last = NULL;

	/* Its files all exist by now: find any not seen yet. */
	scan_spool(c);
	for (size_t i = 0; i < c->nimages; i++) {
		struct image *im = c->images[i];
		if (im->pid != pid || im->exec_ended)
			continue;
		if (!last || im->serial > last->serial)
			last = im;
	}
	if (last && !last->waited) {
		last->dead = true;
		last->waited = true;
		last->wait_status = status;
		if (!last->end_ns)
			last->end_ns = (int64_t)mono_ns();
		if (last->finished) {
			/* finished when its pidfd fired; now we know how */
			set_end(c, last);
			write_process(c, last);
		}
	}
}

unsigned
collect_pending(const struct collector *c)
{
	unsigned n = 0;

	for (size_t i = 0; i < c->nimages; i++)
		n += !c->images[i]->finished;
	return n;
}

void
collect_finish(struct collector *c)
{
	collect_poll(c);
	for (size_t i = 0; i < c->nimages; i++)
		if (!c->images[i]->finished) {
			c->images[i]->dead = true;
			finish_image(c, c->images[i]);
		}
}

void
collect_root_exit(const struct collector *c, int *status, int *signal)
{
	*status = *signal = -1;
	for (size_t i = 0; i < c->nimages; i++) {
		const struct image *im = c->images[i];
		/* the root: neither forked nor exec'd from a recorded image;
		 * follow its exec chain to the last image */
		if (im->row.parent_id)
			continue;
		const struct image *end = im;
		for (bool moved = true; moved;) {
			moved = false;
			for (size_t j = 0; j < c->nimages; j++)
				if (c->images[j]->row.exec_from == end->process_id) {
					end = c->images[j];
					moved = true;
				}
		}
		*status = (int)end->row.exit_status;
		*signal = (int)end->row.exit_signal;
		return;
	}
}

void
collect_stats(const struct collector *c, struct collect_stats *s)
{
	s->images = c->nimages;
	s->events = c->events;
	s->chunks = c->chunks;
	s->dropped = c->dropped;
	s->truncated = c->truncated;
	s->peak_live_bytes = c->peak_live;
	s->leaked_bytes = c->leaked_bytes;
	s->leaked_chunks = c->leaked_chunks;
}

void
collect_free(struct collector *c)
{
	for (size_t i = 0; i < c->nimages; i++) {
		struct image *im = c->images[i];
		if (im->proc)
			munmap(im->proc, HP_PAGE);
		free(im->exe);
		free(im->argv_json);
		free(im->stack_map);
		free(im->mods);
		free(im->threads);
		free(im);
	}
	free(c->images);
	for (size_t b = 0; b < GSTACK_BUCKETS; b++)
		for (struct gstack *g = c->gstacks[b], *n; g; g = n) {
			n = g->next;
			free(g->image_ids);
			free(g->offsets);
			free(g);
		}
	free(c->gstacks);
	if (c->dirfd >= 0)
		close(c->dirfd);
	free(c->dir);
	free(c);
}
