/* SPDX-License-Identifier: MIT */
/*
 * spool.c - process and ring files in the spool directory (see spool.h).
 *
 * Runs inside malloc (a thread's first event creates its ring) with the
 * guard up: system calls are made with libc's thin wrappers, which never
 * allocate; heapprof's own memory comes from its arena. errno is preserved
 * for the program.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "log.h"
#include "os.h"
#include "spool.h"

/* File names: P<pid>.<serial>.proc and P<pid>.<serial>.r<n>. */
static void
proc_name(char *buf, size_t cap, pid_t pid, uint64_t serial)
{
	hp_format(buf, cap, "P%d.%zu.proc", (int)pid, (size_t)serial);
}

static void
ring_name(char *buf, size_t cap, pid_t pid, uint64_t serial, unsigned n)
{
	hp_format(buf, cap, "P%d.%zu.r%u", (int)pid, (size_t)serial, n);
}

static uint64_t
start_ticks(void)
{
	char buf[1024];
	long fd = syscall(SYS_open, "/proc/self/stat", O_RDONLY | O_CLOEXEC);
	long n;
	uint64_t v = 0;

	if (fd < 0)
		return 0;
	n = syscall(SYS_read, fd, buf, sizeof(buf) - 1);
	syscall(SYS_close, fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* Field 22, counted after the ")" that ends the command name. */
	char *p = strrchr(buf, ')');
	if (!p)
		return 0;
	for (int field = 2; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	return v;
}

static int
create_proc_file(struct hp_spool *s)
{
	char name[96];
	int fd = -1;

	s->pid = (pid_t)syscall(SYS_getpid);
	for (s->serial = 0; s->serial < 1000; s->serial++) {
		proc_name(name, sizeof(name), s->pid, s->serial);
		fd = openat(s->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			    0600);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, HP_PAGE) != 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	s->proc = hp_os_mmap(NULL, HP_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (s->proc == MAP_FAILED) {
		s->proc = NULL;
		return -ENOMEM;
	}
	s->proc->version = HP_EV_VERSION;
	s->proc->pid = s->pid;
	s->proc->ppid = (int32_t)syscall(SYS_getppid);
	s->proc->start_ticks = start_ticks();
	s->proc->serial = s->serial;
	s->proc->seq = 1;
	s->proc->state = HP_PROC_RUNNING;
	/* The magic last: the collector ignores a file until it is set. */
	__atomic_store_n(&s->proc->magic, HP_PROC_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

int
hp_spool_open(struct hp_spool *s, const char *dir, pid_t collector, size_t ring_bytes)
{
	int saved = errno, r;

	memset(s, 0, sizeof(*s));
	s->dir = dir;
	s->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		r = -errno;
		errno = saved;
		return r;
	}
	s->collector = collector;
	s->ring_bytes = ring_bytes;
	r = create_proc_file(s);
	errno = saved;
	return r;
}

int
hp_spool_reopen_child(struct hp_spool *s)
{
	int saved = errno, r;

	for (struct hp_ring *ring = s->rings, *next; ring; ring = next) {
		next = ring->next;
		hp_os_munmap(ring->hdr, HP_PAGE + ring->size);
		hp_arena_free(ring);
	}
	s->rings = NULL;
	if (s->proc)
		hp_os_munmap(s->proc, HP_PAGE);
	s->proc = NULL;
	hp_mutex_reset(&s->lock);
	r = create_proc_file(s);
	errno = saved;
	return r;
}

static struct hp_ring *
create_ring(struct hp_spool *s, unsigned index)
{
	char name[96];
	struct hp_ring *r;
	void *map;
	int fd;

	ring_name(name, sizeof(name), s->pid, s->serial, index);
	fd = openat(s->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return NULL;
	if (ftruncate(fd, (off_t)(HP_PAGE + s->ring_bytes)) != 0) {
		close(fd);
		return NULL;
	}
	map = hp_os_mmap(NULL, HP_PAGE + s->ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return NULL;
	r = hp_arena_alloc(sizeof(*r), 16, true);
	if (!r) {
		hp_os_munmap(map, HP_PAGE + s->ring_bytes);
		return NULL;
	}
	r->hdr = map;
	r->data = (char *)map + HP_PAGE;
	r->size = s->ring_bytes;
	r->index = index;
	r->hdr->version = HP_EV_VERSION;
	r->hdr->data_bytes = r->size;
	return r;
}

/* A ring whose thread is gone can be drained and reused. */
static void
retire_dead_locked(struct hp_spool *s)
{
	for (struct hp_ring *r = s->rings; r; r = r->next) {
		if (__atomic_load_n(&r->hdr->state, __ATOMIC_ACQUIRE) != HP_RING_OWNED)
			continue;
		if (syscall(SYS_tgkill, s->pid, r->hdr->tid, 0) != 0 && errno == ESRCH)
			__atomic_store_n(&r->hdr->state, HP_RING_RETIRED, __ATOMIC_RELEASE);
	}
}

struct hp_ring *
hp_spool_ring(struct hp_spool *s, pid_t tid)
{
	struct hp_ring *r = NULL;
	int saved = errno;

	if (s->stopped || s->proc == NULL)
		return NULL;
	hp_mutex_lock(&s->lock);
	retire_dead_locked(s);
	for (struct hp_ring *c = s->rings; c; c = c->next)
		if (__atomic_load_n(&c->hdr->state, __ATOMIC_ACQUIRE) == HP_RING_FREE) {
			r = c;
			break;
		}
	if (r == NULL) {
		r = create_ring(s, s->proc->nrings);
		if (r) {
			r->next = s->rings;
			s->rings = r;
			r->hdr->tid = tid;
			r->hdr->state = HP_RING_OWNED;
			/* The magic last: the collector skips unready rings. */
			__atomic_store_n(&r->hdr->magic, HP_RING_MAGIC, __ATOMIC_RELEASE);
			__atomic_add_fetch(&s->proc->nrings, 1, __ATOMIC_RELEASE);
		}
	} else {
		r->head = __atomic_load_n(&r->hdr->head, __ATOMIC_ACQUIRE);
		r->tail_seen = r->head;
		r->hdr->tid = tid;
		r->hdr->generation++;
		__atomic_store_n(&r->hdr->state, HP_RING_OWNED, __ATOMIC_RELEASE);
	}
	hp_mutex_unlock(&s->lock);
	errno = saved;
	return r;
}

void
hp_spool_drop(struct hp_spool *s)
{
	if (s->proc)
		__atomic_add_fetch(&s->proc->dropped_events, 1, __ATOMIC_RELAXED);
}

void
hp_spool_stop(struct hp_spool *s)
{
	s->stopped = true;
	if (s->proc)
		__atomic_store_n(&s->proc->state, HP_PROC_STOPPED, __ATOMIC_RELEASE);
}

void
hp_spool_abandon(struct hp_spool *s)
{
	char name[96];
	int saved = errno;

	hp_spool_stop(s);
	if (s->proc == NULL)
		return;
	unsigned n = __atomic_load_n(&s->proc->nrings, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < n; i++) {
		ring_name(name, sizeof(name), s->pid, s->serial, i);
		unlinkat(s->dirfd, name, 0);
	}
	proc_name(name, sizeof(name), s->pid, s->serial);
	unlinkat(s->dirfd, name, 0);
	if (s->dir)
		rmdir(s->dir);
	errno = saved;
}

/* Whether the collector still runs: it exists and is not a zombie (a dead
 * collector not yet reaped by its parent still answers kill(pid, 0)). */
static bool
collector_alive(struct hp_spool *s)
{
	int saved = errno;
	bool alive = true;
	char path[48], buf[512];
	long n;

	if (s->collector <= 0)
		return true;
	if (kill(s->collector, 0) != 0 && errno == ESRCH) {
		alive = false;
	} else {
		hp_format(path, sizeof(path), "/proc/%d/stat", (int)s->collector);
		n = hp_os_read_file(path, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			char *p = strrchr(buf, ')');
			alive = !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
		}
	}
	errno = saved;
	return alive;
}

/* Wait until `bytes` fit: back-pressure, never unbounded while the
 * collector is gone. */
static bool
wait_for_room(struct hp_spool *s, struct hp_ring *r, size_t bytes)
{
	for (unsigned spins = 0;; spins++) {
		r->tail_seen = __atomic_load_n(&r->hdr->tail, __ATOMIC_ACQUIRE);
		if (r->head + bytes - r->tail_seen <= r->size)
			return true;
		if (s->stopped)
			return false;
		if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
			__builtin_ia32_pause();
#endif
			continue;
		}
		if ((spins & 255) == 0 && !collector_alive(s)) {
			hp_spool_abandon(s);
			return false;
		}
		struct timespec ts = { 0, spins < 1000 ? 20000 : 200000 };
		int saved = errno;
		nanosleep(&ts, NULL);
		errno = saved;
	}
}

void *
hp_spool_begin(struct hp_spool *s, struct hp_ring *r, size_t bytes)
{
	uint64_t off;

	if (s->stopped)
		return NULL;
	off = r->head & (r->size - 1);
	if (r->size - off < sizeof(struct hp_ev)) {
		/* Too little left for even a header: both sides skip it. */
		size_t gap = r->size - off;
		if (r->head + gap - r->tail_seen > r->size && !wait_for_room(s, r, gap))
			return NULL;
		r->head += gap;
		__atomic_store_n(&r->hdr->head, r->head, __ATOMIC_RELEASE);
		off = 0;
	}
	if (off + bytes > r->size) {
		/* Pad to the end of the data area: records never wrap. */
		size_t pad = r->size - off;
		if (r->head + pad - r->tail_seen > r->size && !wait_for_room(s, r, pad))
			return NULL;
		struct hp_ev *e = (struct hp_ev *)(r->data + off);
		e->tid = 0;
		e->seq = 0;
		hp_spool_commit(r, e, HP_EV_PAD, pad);
		off = 0;
	}
	if (r->head + bytes - r->tail_seen > r->size && !wait_for_room(s, r, bytes))
		return NULL;
	return r->data + off;
}

void
hp_spool_commit(struct hp_ring *r, void *rec, uint32_t type, size_t bytes)
{
	__atomic_store_n(&((struct hp_ev *)rec)->word, HP_EV_WORD(type, bytes), __ATOMIC_RELAXED);
	r->head += bytes;
	__atomic_store_n(&r->hdr->head, r->head, __ATOMIC_RELEASE);
}

void
hp_spool_exit(struct hp_spool *s)
{
	if (!s->stopped && !collector_alive(s))
		hp_spool_abandon(s);
}
