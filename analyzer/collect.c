/* SPDX-License-Identifier: MIT */
/*
 * collect.c - the collector (see collect.h).
 *
 * Each image's rings are merged by sequence number, in place: the record
 * with the next number is applied to the image's model (its chunks,
 * stacks, modules) and turned into rows. A number that has not arrived yet
 * stops the merge until it does, or until the image is over and the number
 * is counted as a truncated record.
 *
 * A chunk's row is written when the chunk ends: freed into free space, or,
 * when freed into a tcache or fastbin (where it still occupies the heap),
 * when that stops: reused at the same address or merged into free space.
 * So the allocator's reports about cached chunks become a column of the
 * chunk's row rather than rows of their own.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chunkmap.h"
#include "collect.h"
#include "heapmodel.h"
#include "events.h"
#include "occupancy.h"
#include "selfcheck.h"
#include "snapshot.h"
#include "util.h"

/* Wire values of hp_ev_alloc.backing and the highest hp_ev_state.state
 * (events.h). */
enum { HP_BACKING_MMAP_WIRE = 2, STATE_FASTBIN = 3 };

/* ---- images ---- */

struct ring_in {
	struct hp_ring_header *hdr;
	char *data;
	uint64_t size;
	bool broken;   /* its header was scribbled on: not read any more */
	uint64_t tail; /* consumed here; published to the producer in batches */
	uint64_t published; /* the tail the producer last saw */
	uint64_t head; /* what the producer had published when we looked */
	uint64_t scan_seq, scan_pos; /* see find_ahead */
};

/* Records copied out of the rings, waiting for their turn: a priority
 * queue by sequence number (a binary min-heap in an array). A ring is not
 * in sequence order (a free is numbered before the allocator works, and
 * what the allocator reports meanwhile is numbered and written first), so
 * the merge looks at all of them. */
struct pending {
	uint64_t seq;
	struct hp_ev *rec;
};

struct seq_queue {
	struct pending *v;
	size_t n, cap;
};

static void
queue_push(struct seq_queue *q, uint64_t seq, struct hp_ev *rec)
{
	size_t i;

	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 1024;
		q->v = xrealloc(q->v, q->cap * sizeof(*q->v));
	}
	for (i = q->n++; i > 0 && q->v[(i - 1) / 2].seq > seq; i = (i - 1) / 2)
		q->v[i] = q->v[(i - 1) / 2];
	q->v[i] = (struct pending){ seq, rec };
}

static struct pending
queue_pop(struct seq_queue *q)
{
	struct pending top = q->v[0], last = q->v[--q->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= q->n)
			break;
		if (c + 1 < q->n && q->v[c + 1].seq < q->v[c].seq)
			c++;
		if (q->v[c].seq >= last.seq)
			break;
		q->v[i] = q->v[c];
		i = c;
	}
	if (q->n)
		q->v[i] = last;
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
	int64_t realloc_from; /* chunk id of the chunk this thread's realloc is moving */
};

struct image {
	char stem[64];         /* P<pid>.<serial> */
	pid_t pid;
	uint64_t serial, start_ticks;
	struct hp_proc_file *proc;
	struct ring_in *rings;
	unsigned nrings;
	struct seq_queue pending;
	uint64_t next_seq;
	uint64_t taken;        /* the process file's counter, last read */
	int64_t process_id;
	struct db_process row;
	char *exe, *argv_json;
	bool dead, finished, got_process, exec_ended;
	bool waiting; /* the merge stopped at a number not written yet */
	int pidfd;
	int64_t now;           /* ordered time of the record being applied */
	int64_t last_ns, end_ns;
	int wait_status;
	bool waited;
	int exit_record_status;
	bool has_exit_record;
	struct chunkmap *chunks; /* chunks whose rows are not complete, and the
				  * ranges the allocator holds itself */
	struct hm model;         /* the heaps they occupy */
	struct occ_hooks hooks;  /* what the model's changes do to rows and snapshots */
	struct collector *col;
	bool modeled;            /* the model is whole (a forked child's is in
				  * snapshot mode, from its parent's at the fork) */
	struct snap *snap;       /* its sites, and its snapshots */
	bool has_summary;
	struct db_summary summary; /* written at the end */
	int64_t peak_live_ns;
	struct tl_point *tl;     /* the timeline: every tl_step ns at most */
	size_t ntl, tl_cap;
	int64_t tl_step, tl_next;
	uint64_t peak_live_bytes; /* live chunks, heaps and mmap, at most */
	int64_t *stack_map; /* local stack id -> global */
	size_t stack_cap;
	struct module_in *mods;
	size_t nmods;
	struct thread_in *threads;
	size_t nthreads, last_thread;
	uint64_t events;
	struct pmap *pmaps;   /* the program's own mappings, still mapped */
	size_t npmaps;
};

struct pmap {
	uint64_t addr, len;
	int64_t ns, stack_id;
};

struct tl_point {
	int64_t ns;
	uint64_t extent, live, cached, untrimmable;
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

/* Snapshot mode: a parent's model at a fork, until its child takes it. */
struct fork_model {
	int64_t parent_id;
	uint64_t fork_ns; /* the parent's FORK record's clock reading */
	struct chunkmap *chunks;
	struct hm model;
	struct snap *snap;
	struct fork_model *next;
};

/* Models not taken yet at most: a child that never shows up (its fork
 * failed) must not hold a heap's worth of memory for the rest of the run. */
#define MAX_FORK_MODELS 64

/* A recorded parent's wait call returned this child's end (REAP record),
 * waiting for the child's image to be finished. */
struct reap {
	pid_t pid;
	int status;
	int64_t ns;
};

struct collector {
	struct db *db;
	char *dir;
	int dirfd;
	bool attach;
	struct image **images;
	size_t nimages;
	struct gstack **gstacks;
	int64_t next_stack_id, next_chunk_id, next_process_id;
	uint64_t scanned_at; /* last look at the spool directory */
	uint64_t events, chunks, dropped, truncated, bad;
	uint64_t leaked_bytes, leaked_chunks, peak_live;
	bool snapshots;        /* a snapshot recording: no chunk or heap_event rows */
	int64_t every_ns;      /* the interval of sites and snapshots */
	struct fork_model *forks;
	unsigned nforks, snap_failures;
	uint64_t demands;      /* snapshots asked for */
	bool demand;           /* a request arrived: snapshot every image */
	char **requests;       /* the request files, removed once served */
	size_t nrequests;
	struct reap *reaps;
	size_t nreaps, reaps_cap;
	uint64_t merge_ns; /* the clock when the merge began */
	bool perturb;      /* a test of the self-check (selfcheck.h) */
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
	c->every_ns = 60000000000LL;
	c->perturb = selfcheck_perturb();
	return c;
}

void
collect_options(struct collector *c, bool snapshots, int64_t every_ns)
{
	c->snapshots = snapshots;
	if (every_ns > 0)
		c->every_ns = every_ns;
}

/* Map a spool file if it is already as long as we need: a file the
 * program is still setting up may be shorter, and touching a mapping past
 * the end of its file is SIGBUS. So is reading a page of a sparse file
 * that a full tmpfs cannot give a block: the program gives a file's first
 * page its block before anything else (spool.c), and the collector reads
 * no other page but those records were written to; a file without even
 * that is not read yet. */
static void *
map_file(int dirfd, const char *name, size_t len)
{
	int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	void *p;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size < len ||
	    (uint64_t)st.st_blocks * 512 < HP_PAGE) {
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

static void hook_touch(void *arg, uint64_t addr);
static void hook_released(void *arg, struct chunk_entry *e);
static void hook_vacated(void *arg, struct chunk_entry *e);

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
	im->chunks = chunkmap_new();
	hm_init(&im->model, im->chunks);
	im->col = c;
	im->hooks = (struct occ_hooks){ hook_touch, hook_released, hook_vacated, im };
	im->modeled = true;
	im->snap = snap_new(c->db, c->next_process_id, c->snapshots, c->every_ns);
	im->tl_step = 1000000; /* 1 ms, doubled whenever the timeline fills */
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
	 * them), the zombie's status for the others where we catch it. Without
	 * pidfds (ENOSYS before Linux 5.3, a seccomp filter, valgrind) it is
	 * watched in /proc (gone_by_proc). */
	im->pidfd = (int)syscall(SYS_pidfd_open, im->pid, 0);
	if (im->pidfd < 0 && errno == ESRCH && !after)
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
static void count_bad(struct collector *c, struct image *im);

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

		if (strncmp(name, SNAPSHOT_REQUEST, sizeof(SNAPSHOT_REQUEST) - 1) == 0) {
			/* heapprof snapshot FILE: served after this poll's merge */
			bool seen = false;
			for (size_t i = 0; i < c->nrequests; i++)
				seen |= strcmp(c->requests[i], name) == 0;
			if (!seen) {
				c->requests = xrealloc(c->requests,
						       (c->nrequests + 1) * sizeof(*c->requests));
				c->requests[c->nrequests++] = xstrdup(name);
				c->demand = true;
			}
			continue;
		}
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
		/* a power of two the program can have made (spool.c) */
		if (size < 4096 || size > (1ULL << 40) || (size & (size - 1))) {
			count_bad(c, im);
			break;
		}
		h = map_file(c->dirfd, name, HP_PAGE + size);
		if (!h)
			break;
		im->rings = xrealloc(im->rings, (im->nrings + 1) * sizeof(*im->rings));
		im->rings[im->nrings] = (struct ring_in){
			.hdr = h, .data = (char *)h + HP_PAGE, .size = size, .tail = h->tail,
			.published = h->tail,
		};
		im->nrings++;
	}
}

/* ---- records from a ring: the program's memory ----
 *
 * A program that scribbles on its rings (a stray write, an overrun into
 * the mapping) must cost the records it broke, not the run: every record
 * is checked before it is used, and one that fails is dropped and counted
 * (bad_records). Where a record's length word is broken, the records
 * after it are found again by their headers.
 */

/* User addresses are below 2^56 on every 64-bit Linux (5-level paging). */
#define MAX_ADDR (1ULL << 56)
#define MAX_TID (1 << 22)

static void
count_bad(struct collector *c, struct image *im)
{
	im->row.bad_records++;
	c->bad++;
}

/* Whether the number `seq` was taken: below the process file's counter
 * (read again only when needed: its line is the program's hottest). */
static bool
seq_taken(struct image *im, uint64_t seq)
{
	if (seq >= im->taken)
		im->taken = __atomic_load_n(&im->proc->seq, __ATOMIC_ACQUIRE);
	return seq < im->taken;
}

/* A record header that frames in the `room` bytes left before the end of
 * the data area: a type, and a length that is a multiple of 8 and fits. */
static bool
frames(const struct hp_ev *e, uint64_t room)
{
	uint32_t bytes = HP_EV_BYTES(e->word);

	return HP_EV_TYPE(e->word) != 0 && bytes >= sizeof(struct hp_ev) && bytes <= room &&
	       !(bytes & 7);
}

/* Its number is one of this image's not used yet (PAD: none). */
static bool
seq_ok(struct image *im, const struct hp_ev *e)
{
	if (HP_EV_TYPE(e->word) == HP_EV_PAD)
		return e->seq == 0;
	return e->seq >= im->next_seq && seq_taken(im, e->seq);
}

/* Where reading goes on after a broken length: a header that frames, of a
 * known type, with a thread id and a number as a record of ours has. */
static bool
plausible(struct image *im, const struct hp_ev *e, uint64_t room)
{
	uint32_t type = HP_EV_TYPE(e->word);

	return frames(e, room) && type <= HP_EV_LAST && seq_ok(im, e) &&
	       (type == HP_EV_PAD ? e->tid == 0 : e->tid > 0 && e->tid < MAX_TID);
}

/* The record at the ring's tail, if one is published (skipping padding
 * and the too-short tail of the data area), or NULL. One whose number was
 * not taken, or is used, is dropped and counted (what it says is checked
 * when its turn comes: valid_record); so is what does not frame, after
 * which reading goes on at the next plausible header below the head. */
static const struct hp_ev *
ring_peek(struct collector *c, struct image *im, struct ring_in *r, uint64_t head)
{
	while (r->tail < head) {
		uint64_t off = r->tail & (r->size - 1);
		if (r->size - off < sizeof(struct hp_ev)) {
			r->tail += r->size - off;
			continue;
		}
		const struct hp_ev *e = (const struct hp_ev *)(r->data + off);
		if (frames(e, r->size - off)) {
			if (!seq_ok(im, e))
				count_bad(c, im);
			else if (HP_EV_TYPE(e->word) != HP_EV_PAD)
				return e;
			r->tail += HP_EV_BYTES(e->word);
			continue;
		}
		count_bad(c, im);
		uint64_t pos = r->tail + 8;
		for (; pos < head; pos += 8) {
			uint64_t o = pos & (r->size - 1);
			if (r->size - o >= sizeof(struct hp_ev) &&
			    plausible(im, (const struct hp_ev *)(r->data + o), r->size - o))
				break;
		}
		r->tail = pos < head ? pos : head;
	}
	return NULL;
}

/* The record numbered `seq` among those published after the ring's tail,
 * or NULL. Where a search for the same number stopped is remembered, so
 * waiting for a record costs a look at each new one, not a rescan; and a
 * call looks at no more than FIND_AHEAD records: the number waited for is
 * usually not written yet, and a full ring is 200k records to read for
 * nothing (the next calls go on where this one stopped). */
#define FIND_AHEAD 256

static struct hp_ev *
find_ahead(struct ring_in *r, uint64_t seq)
{
	uint64_t pos = r->scan_seq == seq && r->scan_pos > r->tail ? r->scan_pos : r->tail;

	r->scan_seq = seq;
	for (unsigned looked = 0;; r->scan_pos = pos, looked++) {
		if (pos >= r->head || looked == FIND_AHEAD)
			return NULL;
		uint64_t off = pos & (r->size - 1);
		if (r->size - off < sizeof(struct hp_ev)) {
			pos += r->size - off;
			continue;
		}
		struct hp_ev *e = (struct hp_ev *)(r->data + off);
		uint32_t bytes = HP_EV_BYTES(e->word);
		if (bytes < sizeof(struct hp_ev) || bytes > r->size - off || (bytes & 7))
			return NULL;
		if (HP_EV_TYPE(e->word) != HP_EV_PAD && e->seq == seq)
			return e;
		pos += bytes;
	}
}

/* Give the consumed space back to the producer; a retired ring that is
 * empty may be reused. */
static void
ring_publish(struct ring_in *r)
{
	r->published = r->tail;
	__atomic_store_n(&r->hdr->tail, r->tail, __ATOMIC_RELEASE);
	if (__atomic_load_n(&r->hdr->state, __ATOMIC_ACQUIRE) == HP_RING_RETIRED &&
	    r->tail == __atomic_load_n(&r->hdr->head, __ATOMIC_ACQUIRE))
		__atomic_store_n(&r->hdr->state, HP_RING_FREE, __ATOMIC_RELEASE);
}

/* ---- applying records ---- */

static struct thread_in *
thread_of(struct image *im, int32_t tid)
{
	if (im->last_thread < im->nthreads && im->threads[im->last_thread].tid == tid)
		return &im->threads[im->last_thread];
	for (size_t i = 0; i < im->nthreads; i++)
		if (im->threads[i].tid == tid)
			return &im->threads[im->last_thread = i];
	im->last_thread = im->nthreads;
	im->threads = xrealloc(im->threads, (im->nthreads + 1) * sizeof(*im->threads));
	im->threads[im->nthreads] = (struct thread_in){ tid, 0, 0, 0 };
	return &im->threads[im->nthreads++];
}

static void
free_fork_model(struct fork_model *f)
{
	hm_free(&f->model);
	chunkmap_free(f->chunks);
	snap_free(f->snap);
	free(f);
}

/* Snapshot mode, a FORK record: keep a copy of the model for the child. */
static void
save_fork_model(struct collector *c, struct image *im, uint64_t fork_ns)
{
	if (!im->modeled)
		return;
	struct fork_model *f = xcalloc(1, sizeof(*f));
	f->parent_id = im->process_id;
	f->fork_ns = fork_ns;
	f->chunks = chunkmap_clone(im->chunks);
	f->snap = snap_fork(im->snap);
	if (!hm_clone(&f->model, &im->model, f->chunks)) {
		free_fork_model(f); /* its child is not modeled */
		return;
	}
	f->next = c->forks;
	c->forks = f;
	if (++c->nforks > MAX_FORK_MODELS) {
		/* the oldest: its child, if it comes, is not modeled */
		struct fork_model **p = &c->forks;
		while ((*p)->next)
			p = &(*p)->next;
		free_fork_model(*p);
		*p = NULL;
		c->nforks--;
	}
}

static struct fork_model **
find_fork_model(struct collector *c, int64_t parent_id, uint64_t fork_ns)
{
	for (struct fork_model **p = &c->forks; *p; p = &(*p)->next)
		if ((*p)->parent_id == parent_id && (*p)->fork_ns == fork_ns)
			return p;
	return NULL;
}

/* The child takes its parent's model at the fork; false if there is none. */
static bool
adopt_fork_model(struct collector *c, struct image *im, int64_t parent_id, uint64_t fork_ns)
{
	struct fork_model **p = find_fork_model(c, parent_id, fork_ns);

	if (!p)
		return false;
	struct fork_model *f = *p;
	*p = f->next;
	c->nforks--;
	hm_free(&im->model);
	chunkmap_free(im->chunks);
	snap_free(im->snap);
	im->chunks = f->chunks;
	im->model = f->model;
	im->model.map = im->chunks;
	/* the child's own peak and worst, from its start */
	im->model.worst_untrimmable = im->model.peak_extent = 0;
	im->snap = f->snap;
	snap_set_process(im->snap, im->process_id);
	free(f);
	return true;
}

/* Whether the record can be applied now: in snapshot mode a forked child's
 * first record waits for its parent's model at the fork, unless the parent
 * is done (or unknown), or this is the end. */
static bool
ready(struct collector *c, struct image *im, const struct hp_ev *e, bool final)
{
	if (!c->snapshots || im->got_process || final || HP_EV_TYPE(e->word) != HP_EV_PROCESS)
		return true;
	const struct hp_ev_process *p = (const void *)e;
	if (!(p->flags & HP_PROC_FORKED))
		return true;
	struct image *parent = find_image(c, p->ppid, p->parent_serial);
	return !parent || parent->finished || find_fork_model(c, parent->process_id, p->fork_ns);
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
		json_quote(&j, argv + off, n);
		off += n + 1;
	}
	buf_add(&j, "]", 2);
	free(im->argv_json);
	im->argv_json = j.p;
	im->row.pid = ev->pid;
	im->row.ppid = ev->ppid;
	im->row.started_ns = im->now;
	im->peak_live_ns = im->now;
	/* the image this one replaced ends here, if it was finished without
	 * knowing when */
	for (size_t i = 0; im->row.exec_from && i < c->nimages; i++) {
		struct image *prev = c->images[i];
		if (prev->process_id == im->row.exec_from && prev->finished &&
		    prev->row.ended_ns != im->now) {
			prev->row.ended_ns = im->now;
			write_process(c, prev);
		}
	}
	im->row.heap_start = (int64_t)ev->heap_start;
	if (ev->flags & HP_PROC_FORKED) {
		/* its heap is its parent's at the fork, which this image's
		 * events do not show: in a full recording no figures of its own
		 * (the reports replay the parent's heap first); in a snapshot
		 * recording its model starts as a copy of its parent's */
		im->modeled = false;
		struct image *parent = find_image(c, ev->ppid, ev->parent_serial);
		if (parent) {
			im->row.parent_id = parent->process_id;
			im->row.fork_ns = (int64_t)ev->fork_ns;
			if (c->snapshots)
				im->modeled = adopt_fork_model(c, im, parent->process_id, ev->fork_ns);
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
	/* the brk heap is there from the start, however empty (as the
	 * reports' replay has it) */
	if (!im->model.has_brk && ev->heap_start)
		hm_brk(&im->model, ev->heap_start, ev->heap_start);
	hm_start(&im->model, im->now);
	snap_start(im->snap, &im->model, im->now, im->modeled);
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
				 im->now);
}

static void
on_unmodule(struct collector *c, struct image *im, const struct hp_ev_unmodule *ev)
{
	for (size_t m = 0; m < im->nmods; m++)
		if (im->mods[m].loaded && im->mods[m].base == ev->base && im->mods[m].lo == ev->lo) {
			im->mods[m].loaded = false;
			db_module_unloaded(c->db, im->mods[m].module_id, im->now);
		}
}

/* The heap model follows the map (occupancy.h): an entry of kind HM_CHUNK
 * occupies its heap; an mmap chunk (kind 0) is only counted. */
static void
model_add(struct image *im, struct chunk_entry *e)
{
	if (e->backing == HP_BACKING_MMAP_WIRE) {
		e->kind = 0;
		hm_mmap(&im->model, e->chunk_bytes, true);
		return;
	}
	occ_place(&im->model, e);
}

/* e ends: out of the model and the map. */
static void
model_remove(struct image *im, struct chunk_entry *e)
{
	if (e->kind == 0 && e->backing == HP_BACKING_MMAP_WIRE && !e->free_ns)
		hm_mmap(&im->model, e->chunk_bytes, false);
	occ_end(&im->model, e, &im->hooks);
}

static bool
is_range(const struct chunk_entry *e)
{
	return e->kind == HM_RANGE_CACHED || e->kind == HM_RANGE_ALLOCATOR;
}

/* Before the entry at addr changes (snapshots keep its earlier value). */
static inline void
touch(struct image *im, uint64_t addr)
{
	snap_touch(im->snap, &im->model, addr);
}

/* A heap_event: its row, and what it does to the model. */
static void
heap_event(struct collector *c, struct image *im, int kind, uint64_t address, uint64_t bytes,
	   int64_t value, bool has_value)
{
	occ_heap_event(&im->model, kind, address, bytes, value, &im->hooks);
	if (!c->snapshots)
		db_heap_event(c->db, im->process_id, im->now, kind, address, bytes, value,
			      has_value);
}

/* Write the chunk's row (released_ns 0: not released); its id is given
 * now, rows are appended in the order they are written. */
static int64_t
write_chunk(struct collector *c, struct image *im, struct chunk_entry *e, int64_t released_ns)
{
	if (c->snapshots)
		return 0;
	int64_t id = c->next_chunk_id++;
	struct db_chunk row = {
		.chunk_id = id,
		.process_id = im->process_id,
		.address = e->addr,
		.size = e->size,
		.chunk_bytes = e->chunk_bytes,
		.backing = e->backing,
		.call = e->call,
		.alloc_ns = e->alloc_ns,
		.alloc_tid = e->alloc_tid,
		.free_ns = e->free_ns,
		.free_tid = e->free_tid,
		.fate = e->fate,
		.released_ns = released_ns,
		.stack_id = e->stack_id,
		.realloc_from = e->written ? 0 : e->realloc_from,
	};

	db_chunk(c->db, &row);
	e->row_id = id;
	e->written = true;
	return id;
}

/* The model's hooks (occupancy.h). */
static void
hook_touch(void *arg, uint64_t addr)
{
	touch(arg, addr);
}

/* A cached chunk stops occupying the heap: reused, or merged into free
 * space. Its row is complete. */
static void
hook_released(void *arg, struct chunk_entry *e)
{
	struct image *im = arg;

	if (e->written)
		db_chunk_released(im->col->db, e->row_id, im->now);
	else
		write_chunk(im->col, im, e, im->now);
}

static void
hook_vacated(void *arg, struct chunk_entry *e)
{
	struct image *im = arg;

	snap_vacated(im->snap, e, im->now);
}

/* A live chunk was freed (by this record) or is gone without a free we saw
 * (tid 0, fate 0). */
static void
free_chunk(struct image *im, struct chunk_entry *e, int32_t tid, int fate)
{
	snap_freed(im->snap, e, im->now);
	if (e->backing == HP_BACKING_MMAP_WIRE)
		hm_mmap(&im->model, e->chunk_bytes, false);
	e->free_ns = im->now;
	e->free_tid = tid;
	e->fate = (uint8_t)fate;
}

static void
on_alloc(struct collector *c, struct image *im, const struct hp_ev_alloc *ev)
{
	struct chunk_entry *e = occ_reuse(&im->model, ev->chunk, &im->hooks);
	struct thread_in *t = thread_of(im, ev->h.tid);

	if (e) {
		/* never freed as far as we know, or overlapped: it ends here */
		free_chunk(im, e, ev->h.tid, 0);
		write_chunk(c, im, e, 0);
		model_remove(im, e);
	}
	touch(im, ev->chunk);
	e = chunkmap_add(im->chunks, ev->chunk);
	e->size = ev->size;
	e->chunk_bytes = ev->chunk_bytes;
	e->alloc_ns = im->now;
	e->alloc_tid = ev->h.tid;
	e->stack_id = ev->stack_id && ev->stack_id < im->stack_cap ? im->stack_map[ev->stack_id] : 0;
	e->backing = ev->backing;
	e->call = ev->call;
	if (ev->call == 3 && t->realloc_from) {
		e->realloc_from = t->realloc_from;
		t->realloc_from = 0;
	}
	model_add(im, e);
	snap_alloc(im->snap, e);
	c->chunks++;
}

static void
on_free(struct collector *c, struct image *im, const struct hp_ev_free *ev)
{
	struct chunk_entry *e = chunkmap_slot(im->chunks, ev->chunk);

	if (e == NULL || e->addr != ev->chunk || e->cached || is_range(e)) {
		/* allocated before this image existed: inherited by fork */
		heap_event(c, im, OCC_INHERITED_FREE, ev->chunk, ev->chunk_bytes, ev->fate, true);
		return;
	}
	touch(im, e->addr);
	free_chunk(im, e, ev->h.tid, ev->fate);
	uint8_t cache = occ_fate_cache(ev->fate);
	if (cache) {
		/* still occupies the heap: the row waits for the release, unless
		 * the realloc moving it needs its id now */
		occ_cache(&im->model, e, cache);
		if (ev->realloc)
			thread_of(im, ev->h.tid)->realloc_from = write_chunk(c, im, e, 0);
		return;
	}
	int64_t id = write_chunk(c, im, e, 0);
	model_remove(im, e);
	if (ev->realloc)
		thread_of(im, ev->h.tid)->realloc_from = id;
}

static void
on_resize(struct collector *c, struct image *im, const struct hp_ev_resize *ev)
{
	struct chunk_entry *e = chunkmap_slot(im->chunks, ev->chunk);

	if (e && e->addr == ev->chunk && !e->cached && !is_range(e)) {
		touch(im, e->addr);
		snap_resize(im->snap, e, ev->size);
		e->size = ev->size;
	}
	heap_event(c, im, OCC_RESIZE, ev->chunk, ev->new_bytes, (int64_t)ev->old_bytes, true);
}

/* The program's own mmap or munmap: a row for each mapping once the last
 * of it is gone (or at the end); an munmap of part of one trims it. */
static void
on_program_map(struct collector *c, struct image *im, const struct hp_ev_map *m, bool on)
{
	if (on) {
		im->pmaps = xrealloc(im->pmaps, (im->npmaps + 1) * sizeof(*im->pmaps));
		im->pmaps[im->npmaps++] = (struct pmap){
			m->addr, m->len, im->now,
			m->stack_id && m->stack_id < im->stack_cap ? im->stack_map[m->stack_id] : 0
		};
		return;
	}
	uint64_t lo = m->addr, hi = m->addr + m->len;
	for (size_t i = 0; i < im->npmaps;) {
		struct pmap *p = &im->pmaps[i];
		uint64_t end = p->addr + p->len;
		if (hi <= p->addr || lo >= end) {
			i++;
			continue;
		}
		if (lo <= p->addr && hi >= end) {
			db_program_mmap(c->db, im->process_id, p->addr, p->len, p->ns, im->now,
					p->stack_id);
			*p = im->pmaps[--im->npmaps];
			continue;
		}
		/* part of it: what is left below or above (the larger part, if
		 * the hole is in the middle) */
		if (lo > p->addr && (hi >= end || lo - p->addr >= end - hi)) {
			p->len = lo - p->addr;
		} else {
			p->len = end - hi;
			p->addr = hi;
		}
		i++;
	}
}

/* After each record: the run's worst and peak, and the timeline. */
static void
model_track(struct image *im)
{
	struct hm *m = &im->model;

	if (m->live + m->mmap > im->peak_live_bytes) {
		im->peak_live_bytes = m->live + m->mmap;
		im->peak_live_ns = im->now;
	}
	snap_after(im->snap, m, im->now);
	hm_track(m, im->now);
	if (im->now < im->tl_next)
		return;
	if (im->ntl == 4096) {
		/* keep every other point, sample half as often */
		for (size_t i = 0; i < im->ntl / 2; i++)
			im->tl[i] = im->tl[2 * i];
		im->ntl /= 2;
		im->tl_step *= 2;
	}
	if (im->ntl == im->tl_cap) {
		im->tl_cap = im->tl_cap ? im->tl_cap * 2 : 256;
		im->tl = xrealloc(im->tl, im->tl_cap * sizeof(*im->tl));
	}
	im->tl[im->ntl++] = (struct tl_point){ im->now, m->extent, m->live + m->mmap, m->cached,
					       m->untrimmable };
	im->tl_next = im->now + im->tl_step;
}

static void set_end(struct collector *c, struct image *im);

/*
 * A recorded parent reaped child `pid`. The child is the process that held
 * the pid at that instant: the one with that pid whose last image started
 * before it (a pid is not reused before its holder is reaped). If that
 * image is finished already, its row gets the end now; else the reap waits
 * for the image's end (set_end).
 */
static void
on_reap(struct collector *c, const struct hp_ev_reap *ev)
{
	struct image *child = NULL;

	if (!WIFEXITED(ev->status) && !WIFSIGNALED(ev->status))
		return; /* not an end (the preload sends none such) */
	for (size_t i = 0; i < c->nimages; i++) {
		struct image *o = c->images[i];
		if (o->pid != ev->pid || o->exec_ended || o->row.started_ns > (int64_t)ev->h.ns)
			continue;
		if (!child || o->row.started_ns > child->row.started_ns)
			child = o;
	}
	if (child && child->finished) {
		if (!child->waited) {
			child->waited = true;
			child->wait_status = ev->status;
			set_end(c, child);
			write_process(c, child);
		}
		return;
	}
	if (c->nreaps == c->reaps_cap) {
		c->reaps_cap = c->reaps_cap ? 2 * c->reaps_cap : 64;
		c->reaps = xrealloc(c->reaps, c->reaps_cap * sizeof(*c->reaps));
	}
	c->reaps[c->nreaps++] = (struct reap){ ev->pid, ev->status, (int64_t)ev->h.ns };
}

/* [addr, addr + len) within the user address space. */
static bool
addr_ok(uint64_t addr, uint64_t len)
{
	return addr < MAX_ADDR && len < MAX_ADDR && addr + len <= MAX_ADDR;
}

/* A NUL-terminated string of n bytes (NUL included) at p. */
static bool
str_ok(const char *p, uint32_t n)
{
	return n >= 1 && p[n - 1] == '\0';
}

/*
 * Whether the record (framed by plausible()) says what a record of its
 * type can say: its exact length, codes in range, strings terminated,
 * addresses and sizes of the user address space, a size no larger than
 * its chunk, a stack id in reach (ids are dense from 1: one far beyond
 * those seen would make the map of stack ids as large as it says), a clock
 * reading not in the future. A new record type needs its case here.
 */
static bool
valid_record(const struct image *im, const struct hp_ev *e, uint64_t now_ns)
{
	uint32_t bytes = HP_EV_BYTES(e->word);
	uint64_t max_stack = 2 * (uint64_t)im->stack_cap + 65536;

	if (e->ns > now_ns + 1000000000ULL || e->tid <= 0 || e->tid >= MAX_TID)
		return false;
	switch (HP_EV_TYPE(e->word)) {
	case HP_EV_PROCESS: {
		const struct hp_ev_process *v = (const void *)e;
		const char *exe = (const char *)(v + 1);
		return bytes >= sizeof(*v) && v->exe_bytes <= bytes - sizeof(*v) &&
		       v->argv_bytes <= bytes - sizeof(*v) - v->exe_bytes &&
		       str_ok(exe, v->exe_bytes) && v->pid == im->pid;
	}
	case HP_EV_MODULE: {
		const struct hp_ev_module *v = (const void *)e;
		return bytes >= sizeof(*v) && v->path_bytes <= bytes - sizeof(*v) &&
		       str_ok((const char *)(v + 1), v->path_bytes) &&
		       v->build_id_bytes <= sizeof(v->build_id) && v->lo <= v->hi &&
		       addr_ok(v->lo, v->hi - v->lo);
	}
	case HP_EV_UNMODULE:
		return bytes == sizeof(struct hp_ev_unmodule);
	case HP_EV_STACK: {
		const struct hp_ev_stack *v = (const void *)e;
		return v->depth <= HP_MAX_DEPTH_LIMIT &&
		       bytes == sizeof(*v) + v->depth * sizeof(uint64_t) && v->stack_id >= 1 &&
		       v->stack_id <= max_stack;
	}
	case HP_EV_ALLOC: {
		const struct hp_ev_alloc *v = (const void *)e;
		return bytes == sizeof(*v) && v->chunk && addr_ok(v->chunk, v->chunk_bytes) &&
		       v->size <= v->chunk_bytes && v->backing >= 1 && v->backing <= 3 &&
		       v->call >= 1 && v->call <= 4 && v->stack_id <= max_stack;
	}
	case HP_EV_FREE: {
		const struct hp_ev_free *v = (const void *)e;
		return bytes == sizeof(*v) && addr_ok(v->chunk, v->chunk_bytes) && v->fate >= 1 &&
		       v->fate <= 5 && v->realloc <= 1;
	}
	case HP_EV_RESIZE: {
		const struct hp_ev_resize *v = (const void *)e;
		return bytes == sizeof(*v) && addr_ok(v->chunk, v->new_bytes) &&
		       v->old_bytes < MAX_ADDR && v->size <= v->new_bytes;
	}
	case HP_EV_STATE: {
		const struct hp_ev_state *v = (const void *)e;
		return bytes == sizeof(*v) && addr_ok(v->chunk, v->bytes) && v->state <= STATE_FASTBIN;
	}
	case HP_EV_BRK: {
		const struct hp_ev_brk *v = (const void *)e;
		return bytes == sizeof(*v) && v->old_brk < MAX_ADDR && v->new_brk < MAX_ADDR;
	}
	case HP_EV_MAP:
	case HP_EV_UNMAP: {
		const struct hp_ev_map *v = (const void *)e;
		return bytes == sizeof(*v) && addr_ok(v->addr, v->len) &&
		       (v->kind == HP_MAP_CHUNK || v->kind == HP_MAP_HEAP ||
			v->kind == HP_MAP_PROGRAM) &&
		       (v->kind == HP_MAP_PROGRAM || v->stack_id == 0) && v->stack_id <= max_stack;
	}
	case HP_EV_MADVISE: {
		const struct hp_ev_madvise *v = (const void *)e;
		return bytes == sizeof(*v) && addr_ok(v->addr, v->len);
	}
	case HP_EV_THREAD:
		return bytes == sizeof(struct hp_ev_thread) &&
		       ((const struct hp_ev_thread *)e)->exiting <= 1;
	case HP_EV_FORK:
		return bytes == sizeof(struct hp_ev_fork);
	case HP_EV_EXIT:
		return bytes == sizeof(struct hp_ev_exit);
	case HP_EV_DROPS:
		return bytes == sizeof(struct hp_ev_drops);
	case HP_EV_REAP:
		return bytes == sizeof(struct hp_ev_reap) && ((const struct hp_ev_reap *)e)->pid > 0;
	case HP_EV_MARK: {
		const struct hp_ev_mark *v = (const void *)e;
		return bytes >= sizeof(*v) && v->name_bytes <= bytes - sizeof(*v) &&
		       str_ok((const char *)(v + 1), v->name_bytes);
	}
	default:
		return false;
	}
}

static void
apply(struct collector *c, struct image *im, const struct hp_ev *e)
{
	if (!valid_record(im, e, c->merge_ns)) {
		count_bad(c, im); /* its number is used up all the same */
		return;
	}
	/* Ordered time: the record's clock reading, moved to 1 ns after the
	 * previous record's if it is not later (two threads may read the
	 * clock in the other order than they took their numbers). */
	int64_t ns = (int64_t)e->ns > im->now ? (int64_t)e->ns : im->now + 1;

	snap_before(im->snap, &im->model, ns);
	im->now = ns;
	im->last_ns = ns;
	im->events++;
	c->events++;
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
		/* about a cached chunk of the program's, it completes the chunk's
		 * row (hooks), or says it moved from a fastbin into a tcache or
		 * back (a row of its own: malloc_trim frees what fastbins hold,
		 * not what tcaches do); anything else (free space going into or
		 * out of a cache, the heap's own bookkeeping) is a row of its own */
		const struct hp_ev_state *v = (const void *)e;
		heap_event(c, im, OCC_STATE, v->chunk, v->bytes, v->state, true);
		break;
	}
	case HP_EV_BRK: {
		const struct hp_ev_brk *b = (const void *)e;
		if (b->new_brk < b->old_brk)
			snap_heap_gone(im->snap, b->new_brk, b->old_brk - b->new_brk);
		heap_event(c, im, OCC_BRK, b->old_brk, b->new_brk, 0, false);
		break;
	}
	case HP_EV_MAP:
	case HP_EV_UNMAP: {
		const struct hp_ev_map *m = (const void *)e;
		if (m->kind == HP_MAP_PROGRAM) {
			on_program_map(c, im, m, HP_EV_TYPE(e->word) == HP_EV_MAP);
			break;
		}
		bool map = HP_EV_TYPE(e->word) == HP_EV_MAP;
		if (m->kind == HP_MAP_HEAP && !map)
			snap_heap_gone(im->snap, m->addr, m->len);
		heap_event(c, im, map ? OCC_MAP : OCC_UNMAP, m->addr, m->len, m->kind, true);
		break;
	}
	case HP_EV_MADVISE: {
		const struct hp_ev_madvise *m = (const void *)e;
		heap_event(c, im, OCC_MADVISE, m->addr, m->len, 0, false);
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
	case HP_EV_MARK: {
		const struct hp_ev_mark *m = (const void *)e;
		char name[HP_MARK_MAX];
		size_t room = HP_EV_BYTES(e->word) > sizeof(*m) ? HP_EV_BYTES(e->word) - sizeof(*m) : 0;
		size_t n = m->name_bytes < room ? m->name_bytes : room;
		if (n > sizeof(name) - 1)
			n = sizeof(name) - 1;
		memcpy(name, m + 1, n);
		name[n] = '\0';
		db_mark(c->db, im->process_id, ns, name);
		break;
	}
	case HP_EV_EXIT:
		im->exit_record_status = ((const struct hp_ev_exit *)e)->status;
		im->has_exit_record = true;
		im->end_ns = ns;
		break;
	case HP_EV_FORK:
		if (c->snapshots)
			save_fork_model(c, im, e->ns);
		break;
	case HP_EV_REAP:
		on_reap(c, (const struct hp_ev_reap *)e);
		break;
	default: /* DROPS: nothing to store */
		break;
	}
	model_track(im);
}

/*
 * Apply records in sequence order while the next number is at hand: straight
 * from a ring when it is at the ring's tail (the common case), else from
 * the pending heap. When no ring's tail holds it, records are moved from the
 * rings into the heap (a ring is not in order: a free is numbered before
 * the events the allocator reports while it works, but written after them)
 * until it turns up. With `final`, numbers that will never come are skipped
 * and counted as truncated.
 */
static bool
merge(struct collector *c, struct image *im, bool final)
{
	unsigned n = im->nrings;
	bool any = false;

	c->merge_ns = mono_ns();
	for (unsigned i = 0; i < n; i++) {
		struct ring_in *r = &im->rings[i];
		uint64_t head = __atomic_load_n(&r->hdr->head, __ATOMIC_ACQUIRE);
		/* a producer is never more than the ring ahead of the tail it
		 * saw; a head that says otherwise was scribbled on: the ring
		 * is read no further (its numbers will count as truncated) */
		if (r->broken || head < r->published || head - r->published > r->size) {
			if (!r->broken)
				count_bad(c, im);
			r->broken = true;
			head = r->tail;
		}
		r->head = head;
	}
	for (;;) {
		bool progress = false, hold = false;

		while (im->pending.n > 0 && im->pending.v[0].seq <= im->next_seq) {
			if (im->pending.v[0].seq == im->next_seq &&
			    !ready(c, im, im->pending.v[0].rec, final)) {
				hold = true;
				break;
			}
			struct pending p = queue_pop(&im->pending);
			if (p.seq == im->next_seq) { /* below: a duplicate, dropped */
				apply(c, im, p.rec);
				im->next_seq++;
				progress = true;
			}
			free(p.rec);
		}
		for (unsigned i = 0; i < n; i++) {
			struct ring_in *r = &im->rings[i];
			const struct hp_ev *e;

			while ((e = ring_peek(c, im, r, r->head)) != NULL && e->seq == im->next_seq) {
				if (!ready(c, im, e, final)) {
					hold = true;
					break;
				}
				apply(c, im, e);
				r->tail += HP_EV_BYTES(e->word);
				im->next_seq++;
				progress = true;
			}
			/* room for the program as it is made, not when the merge
			 * ends: a full ring keeps it waiting */
			if (r->tail - r->published >= r->size / 16)
				ring_publish(r);
		}
		if (hold) {
			/* a forked child waiting for its parent's model */
			im->waiting = true;
			break;
		}
		if (progress) {
			any = true;
			continue;
		}
		/* Not at any tail: usually behind the reports a free or realloc
		 * numbered before doing its work (and writing its own record).
		 * Apply it where it is and leave padding in its place. */
		for (unsigned i = 0; i < n && !progress && !hold; i++) {
			struct hp_ev *e = find_ahead(&im->rings[i], im->next_seq);
			if (e && !ready(c, im, e, final)) {
				hold = true;
			} else if (e) {
				apply(c, im, e);
				/* padding as the producer writes it: number 0 */
				e->seq = 0;
				__atomic_store_n(&e->word, HP_EV_WORD(HP_EV_PAD, HP_EV_BYTES(e->word)),
						 __ATOMIC_RELAXED);
				im->next_seq++;
				progress = true;
			}
		}
		if (hold) {
			im->waiting = true;
			break;
		}
		if (progress) {
			any = true;
			continue;
		}
		/* Not written yet (a thread between taking a number and writing
		 * its record): wait for it. But a ring more than half full may
		 * hold up its writer, which may be the one we wait for: set
		 * aside a record of each such ring (at the end, of every ring,
		 * to find out which numbers never come). */
		bool moved = false;
		for (unsigned i = 0; i < n; i++) {
			struct ring_in *r = &im->rings[i];
			const struct hp_ev *e;

			if (!final && r->head - r->tail <= r->size / 2)
				continue;
			if ((e = ring_peek(c, im, r, r->head)) == NULL)
				continue;
			uint32_t bytes = HP_EV_BYTES(e->word);
			struct hp_ev *copy = xmalloc(bytes);
			memcpy(copy, e, bytes);
			queue_push(&im->pending, copy->seq, copy);
			r->tail += bytes;
			moved = true;
		}
		if (moved)
			continue;
		if (final && im->pending.n > 0) {
			uint64_t seq = im->pending.v[0].seq;
			im->row.truncated_records += (int64_t)(seq - im->next_seq);
			c->truncated += seq - im->next_seq;
			im->next_seq = seq;
			continue;
		}
		im->waiting = false;
		for (unsigned i = 0; i < n && !im->waiting; i++)
			im->waiting = ring_peek(c, im, &im->rings[i], im->rings[i].head) != NULL;
		break;
	}
	for (unsigned i = 0; i < n; i++)
		ring_publish(&im->rings[i]);
	return any;
}

/* How the image ended, from what is known: how the process ended for
 * whoever reaped it (heapprof, a recorded parent, or its zombie as seen in
 * /proc) is exact; an exit record is what it last asked for. */
static void
set_end(struct collector *c, struct image *im)
{
	if (!im->waited && !im->exec_ended) {
		/* the earliest reap of its pid since it started */
		struct reap *r = NULL;
		for (size_t i = 0; i < c->nreaps; i++) {
			struct reap *x = &c->reaps[i];
			if (x->pid == im->pid && x->ns >= im->row.started_ns && (!r || x->ns < r->ns))
				r = x;
		}
		if (r) {
			im->waited = true;
			im->wait_status = r->status;
			*r = c->reaps[--c->nreaps];
		}
	}
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
		im->row.exit_status = im->exit_record_status & 0xff;
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

/* The figures of the image's heaps at its end and over its run. */
static void
write_summary(struct collector *c, struct image *im)
{
	struct hm *m = &im->model;
	struct chunk_entry *pin = hm_top_pin(m);
	struct db_summary *x = &im->summary;

	*x = (struct db_summary){
		.process_id = im->process_id,
		.extent = m->extent,
		.live = m->live,
		.cached = m->cached,
		.allocator = m->allocator,
		.top_free = hm_top_free(m),
		.untrimmable = m->untrimmable,
		.trim_reclaimable = hm_trim_reclaimable(m),
		.resident = hm_resident(m),
		.mmap = m->mmap,
		.retained = hm_retained(m),
		.peak_live = im->peak_live_bytes,
		.peak_live_ns = im->peak_live_ns,
		.peak_extent = m->peak_extent,
		.peak_extent_ns = m->peak_extent_ns,
		.worst_untrimmable = m->worst_untrimmable,
		.worst_ns = m->worst_ns,
	};
	if (c->perturb)
		x->live += HM_GRAIN; /* the self-check must catch it */
	if (pin) {
		x->pin_address = pin->addr;
		x->pin_bytes = pin->chunk_bytes;
		x->pin_state = pin->kind == HM_RANGE_ALLOCATOR      ? "allocator"
			       : pin->kind == HM_RANGE_CACHED ? "stashed"
			       : pin->cached		      ? "cached"
							      : "live";
		x->pin_stack_id = pin->kind == HM_CHUNK ? pin->stack_id : 0;
	}
	db_summary(c->db, x);
	for (size_t i = 0; i < im->ntl; i++)
		db_timeline(c->db, im->process_id, im->tl[i].ns, im->tl[i].extent, im->tl[i].live,
			    im->tl[i].cached, im->tl[i].untrimmable);
	if (!im->ntl || im->tl[im->ntl - 1].ns != im->now)
		db_timeline(c->db, im->process_id, im->now, m->extent, m->live + m->mmap, m->cached,
			    m->untrimmable);
	im->has_summary = true;
}

static void
finish_image(struct collector *c, struct image *im)
{
	/* The process is gone: every ring it made exists by now. */
	scan_rings(c, im);
	merge(c, im, true);
	/* Numbers taken but never written by the end. */
	uint64_t taken = __atomic_load_n(&im->proc->seq, __ATOMIC_ACQUIRE);
	if (taken > im->next_seq) {
		im->row.truncated_records += (int64_t)(taken - im->next_seq);
		c->truncated += taken - im->next_seq;
	}
	/* its exit snapshot, its peak and worst if not written yet, its sites */
	snap_end(im->snap, &im->model, im->now);
	c->snap_failures += snap_check_failures(im->snap);
	snap_free(im->snap);
	im->snap = NULL;
	im->model.res_hook = NULL;
	/* Live chunks leaked; cached ones stayed cached; complete rows are
	 * written already. */
	uint32_t cursor = 0;
	for (struct chunk_entry *e; (e = chunkmap_next(im->chunks, &cursor));) {
		if (e->written || is_range(e))
			continue;
		if (!e->cached) {
			c->leaked_chunks++;
			c->leaked_bytes += e->size;
		}
		write_chunk(c, im, e, 0);
	}
	for (size_t i = 0; i < im->nthreads; i++)
		db_thread(c->db, im->process_id, im->threads[i].tid, im->threads[i].started_ns,
			  im->threads[i].ended_ns);
	for (size_t i = 0; i < im->npmaps; i++)
		db_program_mmap(c->db, im->process_id, im->pmaps[i].addr, im->pmaps[i].len,
				im->pmaps[i].ns, 0, im->pmaps[i].stack_id);
	free(im->pmaps);
	im->pmaps = NULL;
	im->npmaps = 0;
	if (im->modeled)
		write_summary(c, im);
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
	im->pending = (struct seq_queue){ 0 };
	free(im->rings);
	im->rings = NULL;
	im->nrings = 0;
	hm_free(&im->model);
	chunkmap_free(im->chunks);
	im->chunks = NULL;
	free(im->tl);
	im->tl = NULL;
	if (im->pidfd >= 0)
		close(im->pidfd);
	im->pidfd = -1;
}

/* PIDFD_GET_INFO (linux/pidfd.h, Linux 6.15+; Debian 12's headers predate
 * it): the first version of its struct, enough for the exit code. */
struct pidfd_info_v0 {
	uint64_t mask, cgroupid;
	uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
	int32_t exit_code;
};
#define HP_PIDFD_GET_INFO _IOWR(0xFF, 11, struct pidfd_info_v0)
#define HP_PIDFD_INFO_EXIT (1ULL << 3)

/* Once a process is reaped, its pidfd tells how it ended (Linux 6.15+):
 * the end of a child its parent reaped at once, such as one whose parent
 * ignores SIGCHLD. */
static bool
pidfd_exit_status(struct image *im)
{
	struct pidfd_info_v0 info = { .mask = HP_PIDFD_INFO_EXIT };

	if (im->pidfd < 0 || ioctl(im->pidfd, HP_PIDFD_GET_INFO, &info) != 0 ||
	    !(info.mask & HP_PIDFD_INFO_EXIT))
		return false;
	im->wait_status = info.exit_code;
	im->waited = true;
	return true;
}

/* A process that ended but was not reaped yet shows its wait status in
 * /proc/PID/stat (field 52, Linux 3.5+); one reaped already, in its pidfd
 * where the kernel keeps it. */
static void
zombie_status(struct image *im)
{
	char path[64], buf[2048];
	int fd;
	ssize_t n;

	if (im->waited || pidfd_exit_status(im))
		return;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)im->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		pidfd_exit_status(im); /* reaped meanwhile */
		return;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] != 'Z') {
		pidfd_exit_status(im); /* reaped meanwhile */
		return;
	}
	int field = 3; /* p + 2 is the state, field 3 */
	for (p += 2; *p && field < 52; p++)
		if (*p == ' ')
			field++;
	if (field == 52 && *p >= '0' && *p <= '9') {
		im->wait_status = atoi(p);
		im->waited = true;
	}
}

/* Without a pidfd: the process is gone if /proc has no such pid, or a
 * zombie, or another process with its pid (a start time not its own). */
static bool
gone_by_proc(const struct image *im)
{
	char state;
	unsigned long long ticks;

	return !proc_stat(im->pid, &state, &ticks) || state == 'Z' || state == 'X' ||
	       ticks != im->start_ticks;
}

bool
collect_poll(struct collector *c)
{
	bool any = false;
	uint64_t now = mono_ns();

	/* New processes are looked for every few ms (a directory read);
	 * new rings of known ones every time (a load from their file). */
	bool scan = now - c->scanned_at >= 5000000ULL;
	if (scan) {
		scan_spool(c);
		c->scanned_at = now;
	} else {
		for (size_t i = 0; i < c->nimages; i++)
			if (!c->images[i]->finished)
				scan_rings(c, c->images[i]);
	}
	for (size_t i = 0; i < c->nimages; i++) {
		struct image *im = c->images[i];

		if (im->finished)
			continue;
		any |= merge(c, im, false);
		if (!im->dead) {
			struct pollfd p = { im->pidfd, POLLIN, 0 };
			if (im->pidfd >= 0 ? poll(&p, 1, 0) > 0 : scan && gone_by_proc(im)) {
				im->dead = true;
				im->end_ns = (int64_t)mono_ns();
				zombie_status(im);
				/* it may have exec'd and ended since the scan above:
				 * the files of the image that replaced it exist now */
				scan_spool(c);
			}
		}
		if (im->dead)
			finish_image(c, im);
	}
	if (c->demand) {
		/* after the merge: the state as far as the program has written */
		c->demand = false;
		for (size_t i = 0; i < c->nimages; i++) {
			struct image *im = c->images[i];
			if (!im->finished && im->modeled && im->got_process) {
				snap_demand(im->snap, &im->model, im->now);
				c->demands++;
			}
		}
		for (size_t i = 0; i < c->nrequests; i++) {
			unlinkat(c->dirfd, c->requests[i], 0);
			free(c->requests[i]);
		}
		c->nrequests = 0;
	}
	db_tick(c->db);
	return any;
}

bool
collect_waiting(const struct collector *c)
{
	for (size_t i = 0; i < c->nimages; i++)
		if (!c->images[i]->finished && c->images[i]->waiting)
			return true;
	return false;
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
	if (c->snapshots) {
		/* the self-check: snapshots rebuilt from an undo record whose
		 * figures differed from the model's at their instant */
		char v[24];
		snprintf(v, sizeof(v), "%u", c->snap_failures);
		db_meta(c->db, "snapshot_check_failures", v);
	}
}

/* The last image of the root's exec chain (the root: neither forked nor
 * exec'd from a recorded image), or NULL. */
static const struct image *
root_end(const struct collector *c)
{
	for (size_t i = 0; i < c->nimages; i++) {
		const struct image *im = c->images[i];
		if (im->row.parent_id || im->row.exec_from)
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
		return end;
	}
	return NULL;
}

void
collect_root_exit(const struct collector *c, int *status, int *signal)
{
	const struct image *end = root_end(c);

	*status = end ? (int)end->row.exit_status : -1;
	*signal = end ? (int)end->row.exit_signal : -1;
}

void
collect_stats(const struct collector *c, struct collect_stats *s)
{
	s->images = c->nimages;
	s->events = c->events;
	s->chunks = c->chunks;
	s->dropped = c->dropped;
	s->truncated = c->truncated;
	s->bad = c->bad;
	s->peak_live_bytes = c->peak_live;
	s->leaked_bytes = c->leaked_bytes;
	s->leaked_chunks = c->leaked_chunks;
	s->demands = c->demands;
	s->snap_failures = c->snap_failures;
	s->has_root = false;
	const struct image *end = root_end(c);
	if (end && end->has_summary) {
		s->has_root = true;
		s->root = end->summary;
		s->root_pid = end->pid;
		s->root_started_ns = end->row.started_ns;
	}
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
		snap_free(im->snap);
		free(im);
	}
	free(c->images);
	while (c->forks) {
		struct fork_model *f = c->forks;
		c->forks = f->next;
		free_fork_model(f);
	}
	for (size_t i = 0; i < c->nrequests; i++)
		free(c->requests[i]);
	free(c->requests);
	for (size_t b = 0; b < GSTACK_BUCKETS; b++)
		for (struct gstack *g = c->gstacks[b], *n; g; g = n) {
			n = g->next;
			free(g->image_ids);
			free(g->offsets);
			free(g);
		}
	free(c->gstacks);
	free(c->reaps);
	if (c->dirfd >= 0)
		close(c->dirfd);
	free(c->dir);
	free(c);
}
