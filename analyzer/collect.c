/* SPDX-License-Identifier: MIT */
/*
 * collect.c - the collector (see collect.h): its transport (rows.h).
 *
 * Each process's rings are merged by sequence number, in place: the record
 * with the next number is checked and handed to rows.c, which applies it
 * to the process's model and turns it into rows. A number that has not
 * arrived yet stops the merge until it does, or until the process is over
 * and the number is counted as a truncated record.
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

#include "collect.h"
#include "events.h"
#include "rows.h"
#include "selfcheck.h"
#include "snapshot.h"
#include "util.h"

/* ---- procs ---- */

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
struct collector *
collect_new(struct db *db, const char *dir, bool attach)
{
	struct collector *c = xcalloc(1, sizeof(*c));

	c->db = db;
	c->dir = xstrdup(dir);
	c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	c->attach = attach;
	c->gstacks = xcalloc(GSTACK_BUCKETS, sizeof(*c->gstacks));
	c->gtails = xcalloc(GSTACK_BUCKETS, sizeof(*c->gtails));
	c->next_stack_id = c->next_chunk_id = c->next_process_id = 1;
	c->every_ns = 60000000000LL;
	c->perturb = selfcheck_perturb();
	/* tests only: a collector slow between reading the spool directory
	 * and opening the new processes' pidfds (tests/record/exec-gone.sh) */
	const char *pause = getenv("HEAPPROF_TEST_SCAN_PAUSE_MS");
	c->scan_pause_ms = pause ? (unsigned)atoi(pause) : 0;
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

/* A pidfd of the process `pr` is: -1 and errno ESRCH if it is gone, or if
 * its pid is another process's now (the start time is not its own). */
static int
open_pidfd(const struct proc *pr)
{
	int fd = (int)syscall(SYS_pidfd_open, pr->pid, 0);
	char state;
	unsigned long long ticks;

	if (fd >= 0 && pr->start_ticks && proc_stat(pr->pid, &state, &ticks) &&
	    ticks != pr->start_ticks) {
		close(fd);
		errno = ESRCH;
		return -1;
	}
	return fd;
}

/* The process file NAME, mapped, if it is one of this format: else NULL. */
static struct hp_proc_file *
map_proc_file(struct collector *c, const char *name)
{
	struct hp_proc_file *proc = map_file(c->dirfd, name, HP_PAGE);

	if (proc && (__atomic_load_n(&proc->magic, __ATOMIC_ACQUIRE) != HP_PROC_MAGIC ||
		     proc->version != HP_EV_VERSION)) {
		munmap(proc, HP_PAGE);
		proc = NULL;
	}
	return proc;
}

static void new_proc(struct collector *c, const char *stem, struct hp_proc_file *proc);

/*
 * `pr` is gone, and no image that replaced it is known. If it exec'd
 * before it ended, the image that replaced it made its process file at
 * once: P<pid>.<serial + 1> (the first serial free; the collector removes
 * no file while it runs). It is looked up by name, not left to the next
 * directory read: found after `pr`'s end was written, it could no longer
 * make that end an exec, and `pr` would have taken its exit status.
 */
static void
find_next_image(struct collector *c, struct proc *pr)
{
	char stem[64], name[80];
	struct hp_proc_file *proc;

	if (pr->exec_ended || rows_find_proc(c, pr->pid, pr->serial + 1))
		return;
	snprintf(stem, sizeof(stem), "P%d.%llu", (int)pr->pid,
		 (unsigned long long)pr->serial + 1);
	snprintf(name, sizeof(name), "%s.proc", stem);
	if ((proc = map_proc_file(c, name)) == NULL)
		return;
	if (proc->pid != pr->pid || proc->serial != pr->serial + 1 ||
	    proc->start_ticks != pr->start_ticks) {
		munmap(proc, HP_PAGE); /* another process's, with the pid again */
		return;
	}
	new_proc(c, stem, proc);
}

static void
new_proc(struct collector *c, const char *stem, struct hp_proc_file *proc)
{
	struct proc *pr = xcalloc(1, sizeof(*pr));

	snprintf(pr->stem, sizeof(pr->stem), "%s", stem);
	pr->proc = proc;
	pr->pid = proc->pid;
	pr->serial = proc->serial;
	pr->start_ticks = proc->start_ticks;
	pr->next_seq = 1;
	rows_new_proc(c, pr);
	pr->process_id = c->next_process_id++;
	pr->pidfd = -1;
	pr->row.pid = pr->pid;
	pr->row.ppid = proc->ppid;
	pr->row.exit_status = pr->row.exit_signal = -1;
	/* Images of one process (same pid and start time) replace each other
	 * by exec, in serial order; they may be found in any order. */
	struct proc *before = NULL, *after = NULL;
	for (size_t i = 0; i < c->nprocs; i++) {
		struct proc *o = c->procs[i];
		if (o->pid != pr->pid || o->start_ticks != pr->start_ticks)
			continue;
		if (o->serial < pr->serial && (!before || o->serial > before->serial))
			before = o;
		if (o->serial > pr->serial && (!after || o->serial < after->serial))
			after = o;
	}
	if (before) {
		/* How the pid ended is the last image's end: a status taken for
		 * the one before (its pidfd fired, a reap) is this one's. */
		bool rewrite = before->finished && !before->exec_ended;
		if (before->waited && !before->exec_ended) {
			pr->waited = true;
			pr->wait_status = before->wait_status;
			before->waited = false;
		}
		before->dead = before->exec_ended = true;
		pr->row.exec_from = before->process_id;
		if (rewrite) {
			/* its end was written as its own: it is an exec */
			rows_set_end(c, before);
			rows_write_process(c, before);
		}
	}
	if (after) {
		pr->dead = pr->exec_ended = true;
		after->row.exec_from = pr->process_id;
		rows_write_process(c, after);
	}
	/* Its end is watched with a pidfd: exact for our children (we wait for
	 * them), the zombie's status for the others where we catch it. Without
	 * pidfds (ENOSYS before Linux 5.3, a seccomp filter, valgrind) it is
	 * watched in /proc (gone_by_proc). */
	pr->pidfd = open_pidfd(pr);
	bool gone = pr->pidfd < 0 && errno == ESRCH && !after;
	c->procs = xrealloc(c->procs, (c->nprocs + 1) * sizeof(*c->procs));
	c->procs[c->nprocs++] = pr;
	rows_write_process(c, pr);
	/* Gone since the directory was read: it may have exec'd first, and
	 * then the image that replaced it has its files by now. */
	if (gone)
		find_next_image(c, pr);
	if (gone && !pr->exec_ended)
		pr->dead = true;
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

static void scan_rings(struct collector *c, struct proc *pr);
static void count_bad(struct collector *c, struct proc *pr);

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
		if (rows_find_proc(c, pid, serial))
			continue;
		struct hp_proc_file *proc = map_proc_file(c, name);
		if (proc == NULL)
			continue;
		if (proc->pid != pid || proc->serial != serial) {
			munmap(proc, HP_PAGE); /* not the file its name says */
			continue;
		}
		found = xrealloc(found, (nfound + 1) * sizeof(*found));
		found[nfound].proc = proc;
		snprintf(found[nfound].stem, sizeof(found[nfound].stem), "P%d.%llu", pid, serial);
		nfound++;
	}
	closedir(d);
	if (nfound && c->scan_pause_ms)
		poll(NULL, 0, (int)c->scan_pause_ms);
	/* In the order the processes began (a parent before its children, a
	 * process before the one that replaced it by exec), whatever readdir says. */
	qsort(found, nfound, sizeof(*found), by_start);
	for (size_t i = 0; i < nfound; i++) {
		/* found already as the image that replaced one gone (new_proc) */
		if (rows_find_proc(c, found[i].proc->pid, found[i].proc->serial))
			munmap(found[i].proc, HP_PAGE);
		else
			new_proc(c, found[i].stem, found[i].proc);
	}
	free(found);
	for (size_t i = 0; i < c->nprocs; i++)
		if (!c->procs[i]->finished)
			scan_rings(c, c->procs[i]);
}

/* Map the rings the process created since last time. */
static void
scan_rings(struct collector *c, struct proc *pr)
{
	unsigned want = __atomic_load_n(&pr->proc->nrings, __ATOMIC_ACQUIRE);

	while (pr->nrings < want) {
		char name[96];
		struct hp_ring_header *h;

		snprintf(name, sizeof(name), "%s.r%u", pr->stem, pr->nrings);
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
			count_bad(c, pr);
			break;
		}
		h = map_file(c->dirfd, name, HP_PAGE + size);
		if (!h)
			break;
		pr->rings = xrealloc(pr->rings, (pr->nrings + 1) * sizeof(*pr->rings));
		pr->rings[pr->nrings] = (struct ring_in){
			.hdr = h, .data = (char *)h + HP_PAGE, .size = size, .tail = h->tail,
			.published = h->tail,
		};
		pr->nrings++;
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
#define MAX_TID HP_TID_LIMIT /* codes.h: what chunk_packed holds */

static void
count_bad(struct collector *c, struct proc *pr)
{
	pr->row.bad_records++;
	c->bad++;
}

/* Whether the number `seq` was taken: below the process file's counter
 * (read again only when needed: its line is the program's hottest). */
static bool
seq_taken(struct proc *pr, uint64_t seq)
{
	if (seq >= pr->taken)
		pr->taken = __atomic_load_n(&pr->proc->seq, __ATOMIC_ACQUIRE);
	return seq < pr->taken;
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

/* Its number is one of this process's not used yet (PAD: none). */
static bool
seq_ok(struct proc *pr, const struct hp_ev *e)
{
	if (HP_EV_TYPE(e->word) == HP_EV_PAD)
		return e->seq == 0;
	return e->seq >= pr->next_seq && seq_taken(pr, e->seq);
}

/* Where reading goes on after a broken length: a header that frames, of a
 * known type, with a thread id and a number as a record of ours has. */
static bool
plausible(struct proc *pr, const struct hp_ev *e, uint64_t room)
{
	uint32_t type = HP_EV_TYPE(e->word);

	return frames(e, room) && type <= HP_EV_LAST && seq_ok(pr, e) &&
	       (type == HP_EV_PAD ? e->tid == 0 : e->tid > 0 && e->tid < MAX_TID);
}

/* The record at the ring's tail, if one is published (skipping padding
 * and the too-short tail of the data area), or NULL. One whose number was
 * not taken, or is used, is dropped and counted (what it says is checked
 * when its turn comes: valid_record); so is what does not frame, after
 * which reading goes on at the next plausible header below the head. */
static const struct hp_ev *
ring_peek(struct collector *c, struct proc *pr, struct ring_in *r, uint64_t head)
{
	while (r->tail < head) {
		uint64_t off = r->tail & (r->size - 1);
		if (r->size - off < sizeof(struct hp_ev)) {
			r->tail += r->size - off;
			continue;
		}
		const struct hp_ev *e = (const struct hp_ev *)(r->data + off);
		if (frames(e, r->size - off)) {
			if (!seq_ok(pr, e))
				count_bad(c, pr);
			else if (HP_EV_TYPE(e->word) != HP_EV_PAD)
				return e;
			r->tail += HP_EV_BYTES(e->word);
			continue;
		}
		count_bad(c, pr);
		uint64_t pos = r->tail + 8;
		for (; pos < head; pos += 8) {
			uint64_t o = pos & (r->size - 1);
			if (r->size - o >= sizeof(struct hp_ev) &&
			    plausible(pr, (const struct hp_ev *)(r->data + o), r->size - o))
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

/* Look-ahead. A record's chunk entry is a cache miss (a million live
 * chunks are 64 MB of entries, and the program uses them in no order): on
 * python3 a quarter of the collector's time was waiting for them. So while
 * the record at the tail is applied, the chunkmap slots of the records
 * PF_SLOT further on and the entries of those PF_ENTRY further on are
 * fetched, once the model is larger than a cache holds. Each cursor reads
 * one record header a step; what it reads is only a hint (a record is
 * checked when its turn comes), so a cursor that meets anything odd waits
 * for the tail to pass it. */
#define PF_SLOT 16
#define PF_ENTRY 8
#define PF_MIN_CHUNKS 65536 /* fewer (4 MiB of entries) stay in cache: the
			     * look-ahead would cost the churn a sixth of the
			     * collector's time for nothing */

/* The record after the one at *pos that is a chunk's (its address in
 * *addr), moving *pos past it; false if none is published yet. */
static bool
pf_step(const struct ring_in *r, uint64_t *pos, uint64_t *addr)
{
	while (*pos < r->head) {
		uint64_t off = *pos & (r->size - 1);
		if (r->size - off < sizeof(struct hp_ev)) {
			*pos += r->size - off;
			continue;
		}
		const struct hp_ev *e = (const struct hp_ev *)(r->data + off);
		uint32_t bytes = HP_EV_BYTES(__atomic_load_n(&e->word, __ATOMIC_RELAXED));
		if (bytes < sizeof(struct hp_ev) || bytes > r->size - off || (bytes & 7) ||
		    *pos + bytes > r->head)
			return false;
		*pos += bytes;
		uint32_t type = HP_EV_TYPE(e->word);
		if ((type == HP_EV_ALLOC || type == HP_EV_FREE || type == HP_EV_STATE ||
		     type == HP_EV_RESIZE) &&
		    bytes >= sizeof(struct hp_ev) + sizeof(uint64_t)) {
			*addr = ((const struct hp_ev_alloc *)e)->chunk;
			return true;
		}
	}
	return false;
}

/* The tail moved past one record: keep the cursors ahead of it. */
static void
ring_prefetch(struct proc *pr, struct ring_in *r)
{
	uint64_t addr;

	if (chunkmap_count(pr->chunks) < PF_MIN_CHUNKS)
		return;
	if (r->pf_slot < r->tail || r->pf_entry < r->tail) {
		r->pf_slot = r->pf_entry = r->tail;
		r->pf_slot_n = r->pf_entry_n = 0;
	}
	r->pf_slot_n -= r->pf_slot_n > 0;
	r->pf_entry_n -= r->pf_entry_n > 0;
	while (r->pf_slot_n < PF_SLOT && pf_step(r, &r->pf_slot, &addr)) {
		chunkmap_prefetch_slot(pr->chunks, addr);
		r->pf_slot_n++;
	}
	while (r->pf_entry_n < PF_ENTRY && r->pf_entry < r->pf_slot &&
	       pf_step(r, &r->pf_entry, &addr)) {
		chunkmap_prefetch_entry(pr->chunks, addr);
		r->pf_entry_n++;
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


/* [addr, addr + len) within the user address space. */
static bool
addr_ok(uint64_t addr, uint64_t len)
{
	return addr < MAX_ADDR && len < MAX_ADDR && addr + len <= MAX_ADDR;
}

/* A chunk's (or a range's) address: chunks are 16-byte aligned (the
 * database stores addresses / 16, and the snapshots' undo record keeps a
 * bit per 16 bytes). */
static bool
chunk_ok(uint64_t addr, uint64_t len)
{
	return addr % 16 == 0 && addr_ok(addr, len);
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
valid_record(const struct proc *pr, const struct hp_ev *e, uint64_t now_ns)
{
	uint32_t bytes = HP_EV_BYTES(e->word);
	uint64_t max_stack = 2 * (uint64_t)pr->stack_cap + 65536;

	if (e->ns > now_ns + 1000000000ULL || e->tid <= 0 || e->tid >= MAX_TID)
		return false;
	switch (HP_EV_TYPE(e->word)) {
	case HP_EV_PROCESS: {
		const struct hp_ev_process *v = (const void *)e;
		const char *exe = (const char *)(v + 1);
		return bytes >= sizeof(*v) && v->exe_bytes <= bytes - sizeof(*v) &&
		       v->argv_bytes <= bytes - sizeof(*v) - v->exe_bytes &&
		       str_ok(exe, v->exe_bytes) && v->pid == pr->pid;
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
		return bytes == sizeof(*v) && v->chunk && chunk_ok(v->chunk, v->chunk_bytes) &&
		       v->size <= v->chunk_bytes && v->backing >= HP_BACKING_BRK &&
		       v->backing <= HP_BACKING_ARENA && v->call >= HP_CALL_MALLOC &&
		       v->call <= HP_CALL_MEMALIGN && v->stack_id <= max_stack &&
		       (v->call == HP_CALL_MEMALIGN ? v->align_log2 >= 4 && v->align_log2 < 64
						    : v->align_log2 == 0);
	}
	case HP_EV_FREE: {
		const struct hp_ev_free *v = (const void *)e;
		return bytes == sizeof(*v) && chunk_ok(v->chunk, v->chunk_bytes) &&
		       v->fate >= HP_FATE_TCACHE && v->fate <= HP_FATE_UNMAPPED && v->realloc <= 1;
	}
	case HP_EV_RESIZE: {
		const struct hp_ev_resize *v = (const void *)e;
		return bytes == sizeof(*v) && chunk_ok(v->chunk, v->new_bytes) &&
		       v->old_bytes < MAX_ADDR && v->size <= v->new_bytes;
	}
	case HP_EV_STATE: {
		const struct hp_ev_state *v = (const void *)e;
		return bytes == sizeof(*v) && chunk_ok(v->chunk, v->bytes) && v->state <= HP_STATE_FASTBIN;
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
	case HP_EV_SETTING: {
		const struct hp_ev_setting *v = (const void *)e;
		return bytes >= sizeof(*v) && v->line_bytes <= bytes - sizeof(*v) &&
		       v->line_bytes <= HP_SETTING_MAX &&
		       (v->line_bytes == 0 || str_ok((const char *)(v + 1), v->line_bytes));
	}
	default:
		return false;
	}
}

static void
apply(struct collector *c, struct proc *pr, const struct hp_ev *e)
{
	if (!valid_record(pr, e, c->merge_ns)) {
		count_bad(c, pr); /* its number is used up all the same */
		return;
	}
	/* Ordered time: the record's clock reading, moved to 1 ns after the
	 * previous record's if it is not later (two threads may read the
	 * clock in the other order than they took their numbers). */
	int64_t ns = (int64_t)e->ns > pr->now ? (int64_t)e->ns : pr->now + 1;

	pr->events++;
	c->events++;
	rows_apply(c, pr, e, ns);
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
merge(struct collector *c, struct proc *pr, bool final)
{
	unsigned n = pr->nrings;
	bool any = false;

	c->merge_ns = mono_ns();
	for (unsigned i = 0; i < n; i++) {
		struct ring_in *r = &pr->rings[i];
		uint64_t head = __atomic_load_n(&r->hdr->head, __ATOMIC_ACQUIRE);
		/* a producer is never more than the ring ahead of the tail it
		 * saw; a head that says otherwise was scribbled on: the ring
		 * is read no further (its numbers will count as truncated) */
		if (r->broken || head < r->published || head - r->published > r->size) {
			if (!r->broken)
				count_bad(c, pr);
			r->broken = true;
			head = r->tail;
		}
		r->head = head;
	}
	for (;;) {
		bool progress = false, hold = false;

		while (pr->pending.n > 0 && pr->pending.v[0].seq <= pr->next_seq) {
			if (pr->pending.v[0].seq == pr->next_seq &&
			    !rows_ready(c, pr, pr->pending.v[0].rec, final)) {
				hold = true;
				break;
			}
			struct pending p = queue_pop(&pr->pending);
			if (p.seq == pr->next_seq) { /* below: a duplicate, dropped */
				apply(c, pr, p.rec);
				pr->next_seq++;
				progress = true;
			}
			free(p.rec);
		}
		for (unsigned i = 0; i < n; i++) {
			struct ring_in *r = &pr->rings[i];
			const struct hp_ev *e;

			while ((e = ring_peek(c, pr, r, r->head)) != NULL && e->seq == pr->next_seq) {
				if (!rows_ready(c, pr, e, final)) {
					hold = true;
					break;
				}
				apply(c, pr, e);
				r->tail += HP_EV_BYTES(e->word);
				pr->next_seq++;
				progress = true;
				ring_prefetch(pr, r);
			}
			/* room for the program as it is made, not when the merge
			 * ends: a full ring keeps it waiting */
			if (r->tail - r->published >= r->size / 16)
				ring_publish(r);
		}
		if (hold) {
			/* a forked child waiting for its parent's model */
			pr->waiting = true;
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
			struct hp_ev *e = find_ahead(&pr->rings[i], pr->next_seq);
			if (e && !rows_ready(c, pr, e, final)) {
				hold = true;
			} else if (e) {
				apply(c, pr, e);
				/* padding as the producer writes it: number 0 */
				e->seq = 0;
				__atomic_store_n(&e->word, HP_EV_WORD(HP_EV_PAD, HP_EV_BYTES(e->word)),
						 __ATOMIC_RELAXED);
				pr->next_seq++;
				progress = true;
			}
		}
		if (hold) {
			pr->waiting = true;
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
			struct ring_in *r = &pr->rings[i];
			const struct hp_ev *e;

			if (!final && r->head - r->tail <= r->size / 2)
				continue;
			if ((e = ring_peek(c, pr, r, r->head)) == NULL)
				continue;
			uint32_t bytes = HP_EV_BYTES(e->word);
			struct hp_ev *copy = xmalloc(bytes);
			memcpy(copy, e, bytes);
			queue_push(&pr->pending, copy->seq, copy);
			r->tail += bytes;
			moved = true;
		}
		if (moved)
			continue;
		if (final && pr->pending.n > 0) {
			uint64_t seq = pr->pending.v[0].seq;
			pr->row.truncated_records += (int64_t)(seq - pr->next_seq);
			c->truncated += seq - pr->next_seq;
			pr->next_seq = seq;
			continue;
		}
		pr->waiting = false;
		for (unsigned i = 0; i < n && !pr->waiting; i++)
			pr->waiting = ring_peek(c, pr, &pr->rings[i], pr->rings[i].head) != NULL;
		break;
	}
	for (unsigned i = 0; i < n; i++)
		ring_publish(&pr->rings[i]);
	return any;
}

static void
finish_proc(struct collector *c, struct proc *pr)
{
	/* The process is gone: every ring it made exists by now. */
	scan_rings(c, pr);
	merge(c, pr, true);
	/* Numbers taken but never written by the end. */
	uint64_t taken = __atomic_load_n(&pr->proc->seq, __ATOMIC_ACQUIRE);
	if (taken > pr->next_seq) {
		pr->row.truncated_records += (int64_t)(taken - pr->next_seq);
		c->truncated += taken - pr->next_seq;
	}
	rows_finish(c, pr);
	for (unsigned i = 0; i < pr->nrings; i++)
		munmap(pr->rings[i].hdr, HP_PAGE + pr->rings[i].size);
	free(pr->pending.v);
	pr->pending = (struct seq_queue){ 0 };
	free(pr->rings);
	pr->rings = NULL;
	pr->nrings = 0;
	if (pr->pidfd >= 0)
		close(pr->pidfd);
	pr->pidfd = -1;
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
pidfd_exit_status(struct proc *pr)
{
	struct pidfd_info_v0 info = { .mask = HP_PIDFD_INFO_EXIT };

	if (pr->pidfd < 0 || ioctl(pr->pidfd, HP_PIDFD_GET_INFO, &info) != 0 ||
	    !(info.mask & HP_PIDFD_INFO_EXIT))
		return false;
	pr->wait_status = info.exit_code;
	pr->waited = true;
	return true;
}

/* A process that ended but was not reaped yet shows its wait status in
 * /proc/PID/stat (field 52, Linux 3.5+); one reaped already, in its pidfd
 * where the kernel keeps it. */
static void
zombie_status(struct proc *pr)
{
	char path[64], buf[2048];
	int fd;
	ssize_t n;

	if (pr->waited || pidfd_exit_status(pr))
		return;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pr->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		pidfd_exit_status(pr); /* reaped meanwhile */
		return;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || p[2] != 'Z') {
		pidfd_exit_status(pr); /* reaped meanwhile */
		return;
	}
	int field = 3; /* p + 2 is the state, field 3 */
	for (p += 2; *p && field < 52; p++)
		if (*p == ' ')
			field++;
	if (field == 52 && *p >= '0' && *p <= '9') {
		pr->wait_status = atoi(p);
		pr->waited = true;
	}
}

/* Without a pidfd: the process is gone if /proc has no such pid, or a
 * zombie, or another process with its pid (a start time not its own). */
static bool
gone_by_proc(const struct proc *pr)
{
	char state;
	unsigned long long ticks;

	return !proc_stat(pr->pid, &state, &ticks) || state == 'Z' || state == 'X' ||
	       ticks != pr->start_ticks;
}

/* heapprof snapshot FILE: a snapshot of each running process, after the
 * merge (the state as far as the program has written). Asked before any
 * process is there to snapshot (just after heapprof run started), the
 * request waits for one: it is answered only once served. */
static void
serve_demand(struct collector *c)
{
	size_t served = 0;

	for (size_t i = 0; i < c->nprocs; i++) {
		struct proc *pr = c->procs[i];
		if (!pr->finished && pr->modeled && pr->got_process) {
			snap_demand(pr->snap, &pr->model, pr->now);
			c->demands++;
			served++;
		}
	}
	if (served == 0)
		return;
	c->demand = false;
	for (size_t i = 0; i < c->nrequests; i++) {
		unlinkat(c->dirfd, c->requests[i], 0);
		free(c->requests[i]);
	}
	c->nrequests = 0;
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
		for (size_t i = 0; i < c->nprocs; i++)
			if (!c->procs[i]->finished)
				scan_rings(c, c->procs[i]);
	}
	for (size_t i = 0; i < c->nprocs; i++) {
		struct proc *pr = c->procs[i];

		if (pr->finished)
			continue;
		any |= merge(c, pr, false);
		if (!pr->dead) {
			struct pollfd p = { pr->pidfd, POLLIN, 0 };
			if (pr->pidfd >= 0 ? poll(&p, 1, 0) > 0 : scan && gone_by_proc(pr)) {
				pr->dead = true;
				pr->end_ns = (int64_t)mono_ns();
				zombie_status(pr);
				/* it may have exec'd and ended since the scan above:
				 * the files of the process that replaced it exist now */
				scan_spool(c);
				find_next_image(c, pr);
			}
		}
		if (pr->dead)
			finish_proc(c, pr);
	}
	if (c->demand)
		serve_demand(c);
	db_tick(c->db);
	return any;
}

bool
collect_waiting(const struct collector *c)
{
	for (size_t i = 0; i < c->nprocs; i++)
		if (!c->procs[i]->finished && c->procs[i]->waiting)
			return true;
	return false;
}

void
collect_reaped(struct collector *c, pid_t pid, int status)
{
	struct proc *last = NULL;

	/* Its files all exist by now: find any not seen yet. */
	scan_spool(c);
	for (size_t i = 0; i < c->nprocs; i++) {
		struct proc *pr = c->procs[i];
		if (pr->pid != pid || pr->exec_ended)
			continue;
		if (!last || pr->serial > last->serial)
			last = pr;
	}
	if (last && !last->waited) {
		last->dead = true;
		last->waited = true;
		last->wait_status = status;
		if (!last->end_ns)
			last->end_ns = (int64_t)mono_ns();
		if (last->finished) {
			/* finished when its pidfd fired; now we know how */
			rows_set_end(c, last);
			rows_write_process(c, last);
		}
	}
}

unsigned
collect_pending(const struct collector *c)
{
	unsigned n = 0;

	for (size_t i = 0; i < c->nprocs; i++)
		n += !c->procs[i]->finished;
	return n;
}

void
collect_finish(struct collector *c)
{
	collect_poll(c);
	for (size_t i = 0; i < c->nprocs; i++)
		if (!c->procs[i]->finished) {
			c->procs[i]->dead = true;
			finish_proc(c, c->procs[i]);
		}
	if (c->snapshots) {
		/* the self-check: snapshots rebuilt from an undo record whose
		 * figures differed from the model's at their instant */
		char v[24];
		snprintf(v, sizeof(v), "%u", c->snap_failures);
		db_meta(c->db, "snapshot_check_failures", v);
	}
}

/* The last process of the root's exec chain (the root: neither forked nor
 * exec'd from a recorded process), or NULL. */
static const struct proc *
root_end(const struct collector *c)
{
	for (size_t i = 0; i < c->nprocs; i++) {
		const struct proc *pr = c->procs[i];
		if (pr->row.parent_id || pr->row.exec_from)
			continue;
		const struct proc *end = pr;
		for (bool moved = true; moved;) {
			moved = false;
			for (size_t j = 0; j < c->nprocs; j++)
				if (c->procs[j]->row.exec_from == end->process_id) {
					end = c->procs[j];
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
	const struct proc *end = root_end(c);

	*status = end ? (int)end->row.exit_status : -1;
	*signal = end ? (int)end->row.exit_signal : -1;
}

void
collect_stats(const struct collector *c, struct collect_stats *s)
{
	s->procs = c->nprocs;
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
	const struct proc *end = root_end(c);
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
	for (size_t i = 0; i < c->nprocs; i++) {
		struct proc *pr = c->procs[i];
		if (pr->proc)
			munmap(pr->proc, HP_PAGE);
		free(pr->exe);
		free(pr->argv_json);
		free(pr->stack_map);
		free(pr->mods);
		free(pr->threads);
		snap_free(pr->snap);
		free(pr);
	}
	free(c->procs);
	for (size_t i = 0; i < c->nrequests; i++)
		free(c->requests[i]);
	free(c->requests);
	rows_free(c);
	free(c->reaps);
	if (c->dirfd >= 0)
		close(c->dirfd);
	free(c->dir);
	free(c);
}
