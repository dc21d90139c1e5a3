/* SPDX-License-Identifier: MIT */
/*
 * spool.c - process and ring files in the spool directory (see spool.h).
 *
 * Runs inside malloc (a thread's first event creates its ring) with the
 * guard up: system calls are made with libc's thin wrappers, which never
 * allocate; heapprof's own memory comes from selfmem. errno is preserved
 * for the program.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "selfmem.h"
#include "log.h"
#include "os.h"
#include "spool.h"

/* The smallest ring a thread gets when space is short. */
#define RING_MIN (64 * 1024)
/* The blocks a ring takes before it goes round early (wrap_early). */
#define RING_SOFT (1024 * 1024)

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

/* The start time of a process (/proc/PID/stat field 22), 0 if there is
 * no such process; pid 0: this one. */
static uint64_t
start_ticks(pid_t pid)
{
	char buf[1024], path[48];
	long n;
	uint64_t v = 0;

	if (pid)
		hp_format(path, sizeof(path), "/proc/%d/stat", (int)pid);
	n = hp_os_read_file(pid ? path : "/proc/self/stat", buf, sizeof(buf) - 1);
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

/*
 * DIR/NAME. The spool is named by its path, never by a descriptor kept
 * open: the program may close every descriptor it did not open itself
 * (close_range, daemons) or dup2 another file over it.
 */
static void
spool_path(const struct hp_spool *s, char *buf, size_t cap, const char *name)
{
	hp_format(buf, cap, "%s/%s", s->dir, name);
}

/* The largest file this process may write (RLIMIT_FSIZE): past it, a
 * system call that would grow a file sends the program SIGXFSZ. */
static uint64_t
file_size_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return UINT64_MAX;
	return (uint64_t)rl.rlim_cur;
}

/*
 * Give [off, off + len) of the file its blocks now. A sparse file in a
 * tmpfs that is full, or fills later, is a SIGBUS at the first touch of a
 * page that has none - in the program, or in the collector reading it;
 * fallocate says ENOSPC instead (man 2 fallocate). Where a filesystem has
 * no fallocate, the zeros are written.
 */
static int
reserve_file(int fd, uint64_t off, uint64_t len)
{
	static const char zero[4096];

	if (fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return -errno;
	for (uint64_t end = off + len; off < end;) {
		size_t n = end - off < sizeof(zero) ? (size_t)(end - off) : sizeof(zero);
		ssize_t w = pwrite(fd, zero, n, (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -ENOSPC;
		off += (uint64_t)w;
	}
	return 0;
}

/* Create DIR/NAME exclusively (0600), `size` bytes long, the first
 * `reserve` of them with their blocks; a descriptor or -errno (-EFBIG past
 * the file size limit, where nothing is tried: growing a file past it
 * sends the program SIGXFSZ). */
static int
create_file(struct hp_spool *s, const char *name, uint64_t size, uint64_t reserve)
{
	char path[512];
	int fd, r;

	if (size > file_size_limit())
		return -EFBIG;
	spool_path(s, path, sizeof(path), name);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	r = ftruncate(fd, (off_t)size) == 0 ? reserve_file(fd, 0, reserve) : -errno;
	if (r < 0) {
		close(fd);
		unlink(path);
		return r;
	}
	return fd;
}

static int
create_proc_file(struct hp_spool *s)
{
	char name[96];
	int fd = -EEXIST;

	s->pid = (pid_t)syscall(SYS_getpid);
	for (s->serial = 0; s->serial < 1000; s->serial++) {
		proc_name(name, sizeof(name), s->pid, s->serial);
		fd = create_file(s, name, HP_PAGE, HP_PAGE);
		if (fd != -EEXIST)
			break;
	}
	if (fd < 0)
		return fd;
	s->proc = hp_os_mmap(NULL, HP_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (s->proc == MAP_FAILED) {
		s->proc = NULL;
		return -ENOMEM;
	}
	s->proc->version = HP_EV_VERSION;
	s->proc->pid = s->pid;
	s->proc->ppid = (int32_t)syscall(SYS_getppid);
	s->proc->start_ticks = start_ticks(0);
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
	s->collector = collector;
	s->ring_bytes = ring_bytes;
	r = create_proc_file(s);
	errno = saved;
	return r;
}

int
hp_spool_reopen_child(struct hp_spool *s)
{
	struct hp_proc_file *parent = s->borrowed ? NULL : s->proc;
	int saved = errno, r;

	for (struct hp_ring *ring = s->rings, *next; ring; ring = next) {
		next = ring->next;
		hp_os_munmap(ring->hdr, HP_PAGE + ring->size);
		hp_selfmem_free(ring);
	}
	s->rings = NULL;
	s->proc = NULL;
	hp_mutex_reset(&s->lock);
	r = create_proc_file(s);
	if (r < 0 && parent) {
		/* No file of its own (no space, no descriptor left): what it
		 * would have recorded is counted in its parent's, as dropped. */
		s->proc = parent;
		s->borrowed = true;
		s->stopped = true;
	} else if (parent) {
		hp_os_munmap(parent, HP_PAGE);
	}
	errno = saved;
	return r;
}

/* The data bytes of a new ring: as configured, within the file size
 * limit. A power of two, at least RING_MIN. */
static uint64_t
ring_size(const struct hp_spool *s)
{
	uint64_t size = s->ring_bytes, limit = file_size_limit();

	while (size > RING_MIN && HP_PAGE + size > limit)
		size /= 2;
	return size;
}

/*
 * A ring's data gets its blocks a segment at a time, as the writer first
 * goes through it: memory as the thread uses it (an idle thread's ring
 * takes a segment), and where the space is short, the ring goes round
 * within the segments it has (see hp_spool_begin) instead of a SIGBUS.
 */
#define SEGMENT (256 * 1024)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Blocks for [from, from + len) of r's data: MADV_POPULATE_WRITE fails
 * (EFAULT) where a write would be a SIGBUS (man 2 madvise); before Linux
 * 5.14, fallocate through the file's name. */
static bool
populate(struct hp_spool *s, struct hp_ring *r, uint64_t from, uint64_t len)
{
	char name[96], path[512];
	int saved = errno, fd;
	bool ok;

	if (madvise(r->data + from, len, MADV_POPULATE_WRITE) == 0) {
		errno = saved;
		return true;
	}
	ok = false;
	if (errno == EINVAL) {
		ring_name(name, sizeof(name), s->pid, s->serial, r->index);
		spool_path(s, path, sizeof(path), name);
		fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0) {
			ok = reserve_file(fd, HP_PAGE + from, len) == 0;
			close(fd);
		}
	}
	errno = saved;
	return ok;
}

static struct hp_ring *
create_ring(struct hp_spool *s, unsigned index)
{
	char name[96];
	struct hp_ring *r;
	uint64_t size = ring_size(s), first = size < SEGMENT ? size : SEGMENT;
	void *map;
	int fd;

	ring_name(name, sizeof(name), s->pid, s->serial, index);
	fd = create_file(s, name, HP_PAGE + size, HP_PAGE + first);
	if (fd < 0)
		return NULL;
	map = hp_os_mmap(NULL, HP_PAGE + size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return NULL;
	r = hp_selfmem_alloc(sizeof(*r), 16, true);
	if (!r) {
		hp_os_munmap(map, HP_PAGE + size);
		return NULL;
	}
	r->hdr = map;
	r->data = (char *)map + HP_PAGE;
	r->size = size;
	r->reserved = first;
	r->index = index;
	r->hdr->version = HP_EV_VERSION;
	r->hdr->data_bytes = r->size;
	return r;
}

/* Whether a ring may grow by a segment: an eighth of the spool's
 * filesystem stays free (a tmpfs is shared with the program's own files)
 * and room for the first segments of threads yet to come. */
static bool
may_grow(const struct hp_spool *s)
{
	struct statfs fs;

	if (statfs(s->dir, &fs) != 0)
		return true;
	uint64_t avail = (uint64_t)fs.f_bavail * (uint64_t)fs.f_bsize;
	uint64_t keep = (uint64_t)fs.f_blocks * (uint64_t)fs.f_bsize / 8 + 4 * SEGMENT;
	return avail > keep + SEGMENT;
}

/* Whether [off, off + bytes) has its blocks, and a record header after it
 * (where padding may have to go next): more segments if need be. Out of
 * the writer's way: called only at the end of the blocks a ring has. */
__attribute__((noinline, cold)) static bool
ring_room(struct hp_spool *s, struct hp_ring *r, uint64_t off, size_t bytes)
{
	uint64_t want = off + bytes + sizeof(struct hp_ev);

	if (r->reserved >= r->size)
		return true;
	if (want > r->size)
		want = r->size;
	while (r->reserved < want) {
		uint64_t n = r->size - r->reserved < SEGMENT ? r->size - r->reserved : SEGMENT;
		int saved = errno;
		bool ok = may_grow(s) && populate(s, r, r->reserved, n);
		errno = saved;
		if (!ok)
			return false;
		r->reserved += n;
	}
	return true;
}

static bool collector_alive(struct hp_spool *s);

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
	if (r == NULL && s->rings && !collector_alive(s)) {
		/* no ring came back free: the collector that drains them may be
		 * gone, and then every new thread would make (and populate) a
		 * ring nobody reads */
		hp_mutex_unlock(&s->lock);
		hp_spool_abandon(s);
		errno = saved;
		return NULL;
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
	if (s->proc && !s->borrowed)
		__atomic_store_n(&s->proc->state, HP_PROC_STOPPED, __ATOMIC_RELEASE);
}

/* In a spool: "PID START-TICKS PID-NAMESPACE" of the process that keeps
 * it, as cmd-run.c writes and reads it. */
#define SPOOL_MARK "collector"

static uint64_t
pid_namespace(void)
{
	struct stat st;

	return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static const char *
parse_number(const char *p, uint64_t *v)
{
	*v = 0;
	if (*p < '0' || *p > '9')
		return NULL;
	while (*p >= '0' && *p <= '9' && *v < UINT64_MAX / 10)
		*v = *v * 10 + (uint64_t)(*p++ - '0');
	return *p == ' ' || *p == '\n' ? p + 1 : NULL;
}

/* The process a spool's mark names, in this pid namespace: its pid and
 * start time; 0 if there is no such mark. */
static pid_t
read_mark(const struct hp_spool *s, uint64_t *ticks)
{
	char path[512], buf[96];
	uint64_t pid, ns;
	const char *p;
	long n;

	spool_path(s, path, sizeof(path), SPOOL_MARK);
	n = hp_os_read_file(path, buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (!(p = parse_number(buf, &pid)) || !(p = parse_number(p, ticks)) ||
	    !parse_number(p, &ns) || pid == 0 || pid > INT32_MAX || ns != pid_namespace())
		return 0;
	return (pid_t)pid;
}

static pid_t
mark_pid(const struct hp_spool *s)
{
	uint64_t ticks;

	return read_mark(s, &ticks);
}

/* Whether the process a spool's mark names still runs; true when that
 * cannot be told (another pid namespace). No mark at all (the program
 * makes one with the spool): the spool was swept, its collector gone, if
 * our process file went with it. */
static bool
mark_alive(const struct hp_spool *s)
{
	char name[96], path[512];
	uint64_t ticks;
	pid_t pid = read_mark(s, &ticks);

	if (pid == 0) {
		proc_name(name, sizeof(name), s->pid, s->serial);
		spool_path(s, path, sizeof(path), name);
		return access(path, F_OK) == 0;
	}
	return start_ticks(pid) == ticks;
}

void
hp_spool_abandon(struct hp_spool *s)
{
	char name[96], path[512];
	int saved = errno;

	hp_spool_stop(s);
	s->abandoned = true;
	if (s->proc == NULL || s->borrowed)
		return;
	unsigned n = __atomic_load_n(&s->proc->nrings, __ATOMIC_ACQUIRE);
	for (unsigned i = 0; i < n; i++) {
		ring_name(name, sizeof(name), s->pid, s->serial, i);
		spool_path(s, path, sizeof(path), name);
		unlink(path);
	}
	proc_name(name, sizeof(name), s->pid, s->serial);
	spool_path(s, path, sizeof(path), name);
	unlink(path);
	if (s->marked && mark_pid(s) == s->pid) {
		/* our own mark: no collector ever replaced it */
		spool_path(s, path, sizeof(path), SPOOL_MARK);
		unlink(path);
	}
	if (s->dir)
		rmdir(s->dir);
	errno = saved;
}

int
hp_spool_mark(struct hp_spool *s)
{
	char path[512], line[96];
	int fd, saved = errno;
	size_t n;

	spool_path(s, path, sizeof(path), SPOOL_MARK);
	n = hp_format(line, sizeof(line), "%d %zu %zu\n", (int)syscall(SYS_getpid),
		      (size_t)start_ticks(0), (size_t)pid_namespace());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write(fd, line, n) != (ssize_t)n) {
		int e = fd < 0 ? -errno : -EIO;
		if (fd >= 0) {
			close(fd);
			unlink(path);
		}
		errno = saved;
		return e;
	}
	close(fd);
	s->marked = true;
	errno = saved;
	return 0;
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

	if (s->collector <= 0) {
		/* standalone: the collector the spool's mark names */
		alive = mark_alive(s);
		errno = saved;
		return alive;
	}
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

/*
 * Whether the ring, about to grow past RING_SOFT bytes of blocks, should
 * go round now instead: when the collector has caught up, so that padding
 * the rest of the data area and the record after it fit without a wait.
 * Its blocks are resident (populate), so a ring that always went through
 * its whole data area held all of it: 8 MiB for every busy thread. Now it
 * grows past RING_SOFT only while the collector lags.
 */
static bool
wrap_early(struct hp_ring *r, uint64_t off, size_t bytes)
{
	if (r->reserved < RING_SOFT)
		return false;
	r->tail_seen = __atomic_load_n(&r->hdr->tail, __ATOMIC_ACQUIRE);
	return r->head + (r->size - off) + bytes - r->tail_seen <= r->size;
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
	/* Pad to the end of the data area: records never wrap. And where the
	 * ring has no blocks to go further (its filesystem is full), or need
	 * not take more (wrap_early), it goes round within those it has, the
	 * rest padded over, never touched (its first segment holds any record
	 * and a header after it). */
	if (off + bytes > r->size ||
	    (__builtin_expect(off + bytes + sizeof(struct hp_ev) > r->reserved, 0) &&
	     (wrap_early(r, off, bytes) || !ring_room(s, r, off, bytes)))) {
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
