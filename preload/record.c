/* SPDX-License-Identifier: MIT */
/*
 * record.c - the recorder (see record.h).
 *
 * Runs inside malloc and free: every callback raises the thread's guard
 * (so what libunwind or libc allocate meanwhile comes from heapprof's
 * arena), never blocks on anything but ring space (and then only while the
 * collector lives), and drops, counting, any event it cannot write - it
 * never fails an allocation. No stdio, no getenv after start-up.
 */
#include "config.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "selfmem.h"
#include "events.h"
#include "log.h"
#include "observe.h"
#include "os.h"
#include "record.h"
#include "spool.h"
#include "stacks.h"
#include "tcache.h"
#include "thread.h"
#include "tune.h"
#include "unwind.h"

#ifndef HP_BINDIR
#define HP_BINDIR "/usr/local/bin"
#endif

static struct hp_spool spool;
static bool active;
static bool standalone;             /* we start the collector ourselves */
static char spool_dir[256];
static char output_path[4096];
static char snapshots_every[32];    /* HEAPPROF_SNAPSHOTS: the collector's --snapshots */
static uint64_t *epoch;             /* a MADV_WIPEONFORK page: 0 in a new process */
static uint64_t fork_ns;            /* time of the FORK record about to be made */
static uint64_t parent_serial;
static uintptr_t self_lo, self_hi;  /* libheapprof.so's code */

/* Modules already sent (heapprof's own memory). */
struct module {
	uint64_t base, lo;
	bool present;
	struct module *next;
};
static struct module *modules;
static unsigned long long dl_adds, dl_subs;
static struct hp_mutex modules_lock = HP_MUTEX_INIT;

static struct hp_observer recorder;

bool
hp_record_active(void)
{
	return active;
}

static pid_t
gettid_raw(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static void after_fork(bool handler);

/* ---- writing records ---- */

/* Room for a record in the calling thread's ring, or NULL (dropped). */
static void *
begin(size_t bytes, struct hp_ring **rp)
{
	struct hp_thread *t = &hp_self;
	void *rec;

	if (__builtin_expect(*epoch == 0, 0))
		after_fork(false);
	if (t->rec_busy) {
		/* A signal handler allocating while this thread records. */
		hp_spool_drop(&spool);
		return NULL;
	}
	if (__builtin_expect(t->ring == NULL, 0)) {
		pid_t tid = gettid_raw();

		t->ring = hp_spool_ring(&spool, tid);
		if (t->ring == NULL) {
			hp_spool_drop(&spool);
			return NULL;
		}
		t->rec_busy = true;
		struct hp_ev_thread *ev = hp_spool_begin(&spool, t->ring, sizeof(*ev));
		if (ev) {
			ev->h.tid = tid;
			ev->h.seq = __atomic_fetch_add(&spool.proc->seq, 1, __ATOMIC_RELAXED);
			ev->h.ns = hp_clock_ns();
			ev->exiting = 0;
			hp_spool_commit(t->ring, ev, HP_EV_THREAD, sizeof(*ev));
		}
		t->rec_busy = false;
		t->tid = tid;
	}
	t->rec_busy = true;
	rec = hp_spool_begin(&spool, t->ring, bytes);
	if (rec == NULL) {
		t->rec_busy = false;
		hp_spool_drop(&spool);
		return NULL;
	}
	*rp = t->ring;
	return rec;
}

static void
commit(struct hp_ring *r, void *rec, uint32_t type, size_t bytes)
{
	hp_spool_commit(r, rec, type, bytes);
	hp_self.rec_busy = false;
}

static void
header(struct hp_ev *h, const struct hp_ticket *t)
{
	h->tid = hp_self.tid;
	h->seq = t->seq;
	h->ns = t->ns;
}

static void
rec_ticket(struct hp_ticket *t)
{
	t->seq = __atomic_fetch_add(&spool.proc->seq, 1, __ATOMIC_RELAXED);
	t->ns = hp_clock_ns();
}

/* Children reaped by a signal handler (bash's SIGCHLD handler waits) that
 * interrupted this thread inside heapprof's own code, where no record can
 * be written: kept here and written, with the time they were reaped, once
 * the thread is out (after its next record, or at its next reap or exit),
 * not dropped. Pushed by handlers only (a slot taken with one atomic add,
 * then filled: a handler runs to its end before the code it interrupted
 * goes on); taken off by the thread with its guard up, so that a handler
 * meanwhile only pushes. Beyond DEFERRED_MAX, dropped and counted. */
#define DEFERRED_MAX 16
static __thread struct deferred_reap {
	pid_t pid;
	int status;
	uint64_t ns;
} deferred[DEFERRED_MAX + 8]; /* + nested handlers past the check */
static __thread unsigned ndeferred;

static void flush_deferred(void);

/* A fixed-size event: room in the thread's ring, then its number (take_,
 * which points tk_ at a ticket), fill_, and publication; then any reaps
 * deferred meanwhile. */
#define EMIT_NUMBERED(type_, ev_, take_, fill_)                                \
	do {                                                                   \
		struct hp_ring *r_;                                            \
		const struct hp_ticket *tk_;                                   \
		hp_self.guard++;                                               \
		ev_ = begin(sizeof(*ev_), &r_);                                \
		if (ev_) {                                                     \
			take_;                                                 \
			header(&ev_->h, tk_);                                  \
			fill_;                                                 \
			commit(r_, ev_, type_, sizeof(*ev_));                  \
		}                                                              \
		hp_self.guard--;                                               \
		if (__builtin_expect(ndeferred != 0, 0) && hp_self.guard == 0) \
			flush_deferred();                                      \
	} while (0)

/* An event numbered now. */
#define EMIT(type_, ev_, fill_)                                                \
	do {                                                                   \
		struct hp_ticket t_;                                           \
		EMIT_NUMBERED(type_, ev_, (rec_ticket(&t_), tk_ = &t_), fill_); \
	} while (0)

/* An event numbered by the ticket the allocator took before its work. */
#define EMIT_TICKET(type_, ev_, ticket_, fill_) EMIT_NUMBERED(type_, ev_, tk_ = (ticket_), fill_)

static size_t
pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* ---- modules ---- */

static size_t
build_id(const struct dl_phdr_info *info, uint8_t *out, size_t cap)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const char *p, *end;

		if (ph->p_type != PT_NOTE)
			continue;
		p = (const char *)(info->dlpi_addr + ph->p_vaddr);
		end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
			const char *name = p + sizeof(*n);
			const uint8_t *desc = (const uint8_t *)name + ((n->n_namesz + 3) & ~3u);

			if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
			    memcmp(name, "GNU", 4) == 0) {
				size_t len = n->n_descsz < cap ? n->n_descsz : cap;
				memcpy(out, desc, len);
				return len;
			}
			p = (const char *)desc + ((n->n_descsz + 3) & ~3u);
		}
	}
	return 0;
}

static void
send_module(const struct dl_phdr_info *info, uint64_t lo, uint64_t hi)
{
	char exe[4096];
	const char *path = info->dlpi_name;
	struct hp_ev_module *ev;
	struct hp_ring *r;
	struct hp_ticket t;
	size_t plen, bytes;

	if (path == NULL || path[0] == '\0') {
		/* the executable */
		ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		exe[n > 0 ? n : 0] = '\0';
		path = exe;
	}
	plen = strlen(path) + 1;
	bytes = pad8(sizeof(*ev) + plen);
	ev = begin(bytes, &r);
	if (ev == NULL)
		return;
	rec_ticket(&t);
	header(&ev->h, &t);
	ev->base = info->dlpi_addr;
	ev->lo = lo;
	ev->hi = hi;
	memset(ev->build_id, 0, sizeof(ev->build_id));
	ev->build_id_bytes = (uint32_t)build_id(info, ev->build_id, sizeof(ev->build_id));
	ev->path_bytes = (uint32_t)plen;
	memcpy(ev + 1, path, plen);
	memset((char *)(ev + 1) + plen, 0, bytes - sizeof(*ev) - plen);
	commit(r, ev, HP_EV_MODULE, bytes);
}

static int
scan_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	struct module *m;

	(void)size;
	(void)arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type != PT_LOAD)
			continue;
		if (info->dlpi_addr + ph->p_vaddr < lo)
			lo = info->dlpi_addr + ph->p_vaddr;
		if (info->dlpi_addr + ph->p_vaddr + ph->p_memsz > hi)
			hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
	}
	if (hi == 0)
		return 0;
	for (m = modules; m; m = m->next)
		if (m->base == info->dlpi_addr && m->lo == lo) {
			m->present = true;
			return 0;
		}
	m = hp_selfmem_alloc(sizeof(*m), 16, true);
	if (m) {
		m->base = info->dlpi_addr;
		m->lo = lo;
		m->present = true;
		m->next = modules;
		modules = m;
	}
	send_module(info, lo, hi);
	return 0;
}

static int
read_counters(struct dl_phdr_info *info, size_t size, void *arg)
{
	unsigned long long *c = arg;

	if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
		c[0] = info->dlpi_adds;
		c[1] = info->dlpi_subs;
	}
	return 1; /* the first object is enough */
}

/* Send new modules and the ones gone, if the loader's counters moved
 * since last time (or always when `force`). */
static void
check_modules(bool force)
{
	unsigned long long c[2] = { 0, 0 };

	dl_iterate_phdr(read_counters, c);
	if (!force && c[0] == dl_adds && c[1] == dl_subs)
		return;
	hp_mutex_lock(&modules_lock);
	dl_adds = c[0];
	dl_subs = c[1];
	for (struct module *m = modules; m; m = m->next)
		m->present = false;
	dl_iterate_phdr(scan_module, NULL);
	for (struct module **mp = &modules; *mp;) {
		struct module *m = *mp;
		if (m->present) {
			mp = &m->next;
			continue;
		}
		struct hp_ev_unmodule *ev;
		EMIT(HP_EV_UNMODULE, ev, (ev->base = m->base, ev->lo = m->lo));
		*mp = m->next;
		hp_selfmem_free(m);
	}
	hp_mutex_unlock(&modules_lock);
}

static int
find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t me = (uintptr_t)arg;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t a = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && me >= a &&
		    me < a + ph->p_memsz) {
			self_lo = a;
			self_hi = a + ph->p_memsz;
			return 1;
		}
	}
	return 0;
}

/* ---- the process record ---- */

static size_t
read_small_file(const char *path, char *buf, size_t cap)
{
	long n = hp_os_read_file(path, buf, cap);

	return n > 0 ? (size_t)n : 0;
}

static void
send_setting(int32_t param, int32_t value, const char *line)
{
	size_t n = line ? strnlen(line, HP_SETTING_MAX - 1) : 0;
	size_t bytes = pad8(sizeof(struct hp_ev_setting) + (line ? n + 1 : 0));
	struct hp_ev_setting *ev;
	struct hp_ring *r;
	struct hp_ticket t;

	hp_self.guard++;
	ev = begin(bytes, &r);
	if (ev) {
		rec_ticket(&t);
		header(&ev->h, &t);
		ev->param = param;
		ev->value = value;
		ev->line_bytes = line ? (uint32_t)n + 1 : 0;
		ev->pad = 0;
		char *p = (char *)(ev + 1);
		if (line)
			memcpy(p, line, n);
		memset(p + n, 0, bytes - sizeof(*ev) - n);
		commit(r, ev, HP_EV_SETTING, bytes);
	}
	hp_self.guard--;
}

/* After the process record: the settings the allocator started with
 * (tune.c keeps copies: a forked child sends them again). */
static void
send_start_settings(void)
{
	const char *const *lines;
	size_t n = hp_tune_lines(&lines);

	for (size_t i = 0; i < n; i++)
		send_setting(0, 0, lines[i]);
}

/* (mallopt initialises the allocator first, and recording begins there:
 * no call comes before it) */
void
hp_record_mallopt(int param, int value)
{
	if (active && !spool.stopped)
		send_setting(param, value, NULL);
}

static void
send_process(uint32_t flags)
{
	char exe[4096], argv[16384];
	ssize_t elen = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	size_t alen = read_small_file("/proc/self/cmdline", argv, sizeof(argv) - 1);
	struct hp_ev_process *ev;
	struct hp_ring *r;
	struct hp_ticket t;
	struct timespec rt;
	size_t bytes;
	uint32_t argc = 0;

	exe[elen > 0 ? elen : 0] = '\0';
	if (alen == 0 || argv[alen - 1] != '\0')
		argv[alen++] = '\0';
	for (size_t i = 0; i < alen; i++)
		argc += argv[i] == '\0';
	bytes = pad8(sizeof(*ev) + strlen(exe) + 1 + alen);
	hp_self.guard++;
	ev = begin(bytes, &r);
	if (ev) {
		rec_ticket(&t);
		header(&ev->h, &t);
		clock_gettime(CLOCK_REALTIME, &rt);
		ev->pid = spool.pid;
		ev->ppid = spool.proc->ppid;
		ev->start_ticks = spool.proc->start_ticks;
		ev->realtime_ns = (uint64_t)rt.tv_sec * 1000000000ULL + (uint64_t)rt.tv_nsec;
		ev->parent_serial = parent_serial;
		ev->fork_ns = (flags & HP_PROC_FORKED) ? fork_ns : 0;
		ev->flags = flags;
		ev->exe_bytes = (uint32_t)strlen(exe) + 1;
		ev->argv_bytes = (uint32_t)alen;
		ev->argc = argc;
		ev->heap_start = (uint64_t)(uintptr_t)sbrk(0);
		char *p = (char *)(ev + 1);
		memcpy(p, exe, ev->exe_bytes);
		memcpy(p + ev->exe_bytes, argv, alen);
		memset(p + ev->exe_bytes + alen, 0, bytes - sizeof(*ev) - ev->exe_bytes - alen);
		commit(r, ev, HP_EV_PROCESS, bytes);
	}
	hp_self.guard--;
}

/* ---- observer callbacks ---- */

/* Recording stopped for good in this process because its collector is
 * gone: nobody observes any more, so the allocator takes its fast paths
 * again and no stack is walked. A thread already inside a callback finds
 * the spool stopped and writes nothing. (A process stopped for another
 * reason, a forked child that got no files of its own, stays observed:
 * what it loses is counted as dropped.) */
static void
detach(void)
{
	if (spool.abandoned)
		__atomic_store_n(&hp_observer, NULL, __ATOMIC_RELEASE);
}

static void
on_ticket(struct hp_ticket *t)
{
	if (__builtin_expect(*epoch == 0, 0)) {
		hp_self.guard++;
		after_fork(false);
		hp_self.guard--;
	}
	if (__builtin_expect(spool.stopped, 0)) {
		/* nothing will be written (the other records take their number
		 * once they have room, which they then do not get); and a forked
		 * child without files of its own has only its parent's process
		 * file, whose numbers are the parent's */
		t->seq = 0;
		t->ns = 0;
		detach();
		return;
	}
	rec_ticket(t);
}

static void
on_brk(uintptr_t old_brk, uintptr_t new_brk)
{
	struct hp_ev_brk *ev;

	EMIT(HP_EV_BRK, ev, (ev->old_brk = old_brk, ev->new_brk = new_brk));
}

static void
emit_map(uint32_t type, uintptr_t addr, size_t len, bool chunk)
{
	struct hp_ev_map *ev;

	EMIT(type, ev,
	     (ev->addr = addr, ev->len = len, ev->kind = chunk ? HP_MAP_CHUNK : HP_MAP_HEAP,
	      ev->stack_id = 0));
}

static void
on_map(uintptr_t addr, size_t len, bool chunk)
{
	emit_map(HP_EV_MAP, addr, len, chunk);
}

static void
on_unmap(uintptr_t addr, size_t len, bool chunk)
{
	emit_map(HP_EV_UNMAP, addr, len, chunk);
}

static void
on_madvise(uintptr_t addr, size_t len)
{
	struct hp_ev_madvise *ev;

	EMIT(HP_EV_MADVISE, ev, (ev->addr = addr, ev->len = len));
}

static void
on_chunk(uintptr_t chunk, size_t bytes, enum hp_state state)
{
	struct hp_ev_state *ev;

	EMIT(HP_EV_STATE, ev,
	     (ev->chunk = chunk, ev->bytes = bytes, ev->state = (uint8_t)state,
	      memset(ev->pad, 0, sizeof(ev->pad))));
}

static void
send_stack(uint32_t id, const uint64_t *ip, unsigned depth)
{
	size_t bytes = sizeof(struct hp_ev_stack) + depth * sizeof(uint64_t);
	struct hp_ev_stack *ev;
	struct hp_ring *r;
	struct hp_ticket t;

	ev = begin(bytes, &r);
	if (ev == NULL)
		return;
	rec_ticket(&t);
	header(&ev->h, &t);
	ev->stack_id = id;
	ev->depth = depth;
	memcpy(ev->ip, ip, depth * sizeof(uint64_t));
	commit(r, ev, HP_EV_STACK, bytes);
}

static void
on_alloc(void *mem, size_t size, uintptr_t chunk, size_t chunk_bytes, enum hp_backing backing,
	 enum hp_call call, unsigned align_log2, void *const *stack, int nstack)
{
	const uint64_t *ips;
	unsigned depth;
	bool is_new;
	uint32_t stack_id;
	struct hp_ev_alloc *ev;

	(void)mem;
	hp_self.guard++;
	if (__builtin_expect(*epoch == 0, 0))
		after_fork(false);
	if (__builtin_expect(spool.abandoned, 0)) {
		detach();
		hp_self.guard--;
		return;
	}
	stack_id = hp_stacks_intern(stack, nstack, hp_unwind_repeated(), &is_new, &ips, &depth);
	if (is_new) {
		/* A new stack may point into a newly loaded object. */
		check_modules(false);
		send_stack(stack_id, ips, depth);
	}
	EMIT(HP_EV_ALLOC, ev,
	     (ev->chunk = chunk, ev->size = size, ev->chunk_bytes = chunk_bytes,
	      ev->stack_id = stack_id, ev->backing = (uint8_t)backing, ev->call = (uint8_t)call,
	      ev->align_log2 = (uint8_t)align_log2, ev->pad = 0));
	hp_self.guard--;
}

static void
on_free(const struct hp_ticket *t, uintptr_t chunk, size_t chunk_bytes, enum hp_fate fate,
	bool realloc)
{
	struct hp_ev_free *ev;

	EMIT_TICKET(HP_EV_FREE, ev, t,
		    (ev->chunk = chunk, ev->chunk_bytes = chunk_bytes, ev->fate = (uint8_t)fate,
		     ev->realloc = realloc, memset(ev->pad, 0, sizeof(ev->pad))));
}

static void
on_resize(const struct hp_ticket *t, size_t size, uintptr_t chunk, size_t old_bytes,
	  size_t new_bytes)
{
	struct hp_ev_resize *ev;

	EMIT_TICKET(HP_EV_RESIZE, ev, t,
		    (ev->chunk = chunk, ev->size = size, ev->old_bytes = old_bytes,
		     ev->new_bytes = new_bytes));
}

static void
on_program_map(uintptr_t addr, size_t len, bool on, void *const *stack, int nstack)
{
	struct hp_ev_map *ev;
	uint32_t stack_id = 0;

	hp_self.guard++;
	if (__builtin_expect(*epoch == 0, 0))
		after_fork(false);
	if (on) {
		const uint64_t *ips;
		unsigned depth;
		bool is_new;
		stack_id = hp_stacks_intern_other(stack, nstack, &is_new, &ips, &depth);
		if (is_new) {
			check_modules(false);
			send_stack(stack_id, ips, depth);
		}
	}
	EMIT(on ? HP_EV_MAP : HP_EV_UNMAP, ev,
	     (ev->addr = addr, ev->len = len, ev->kind = HP_MAP_PROGRAM, ev->stack_id = stack_id));
	hp_self.guard--;
}

static struct hp_observer recorder = {
	.ticket = on_ticket,
	.brk = on_brk,
	.map = on_map,
	.unmap = on_unmap,
	.madvise = on_madvise,
	.chunk = on_chunk,
	.alloc = on_alloc,
	.free = on_free,
	.resize = on_resize,
	.program_map = on_program_map,
};

/* ---- start-up ---- */

static const char *
env_get(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

static unsigned long
env_number(char *const *envp, const char *name, unsigned long def)
{
	const char *v = env_get(envp, name);
	unsigned long n = 0;

	if (v == NULL || *v == '\0')
		return def;
	for (; *v >= '0' && *v <= '9'; v++) {
		if (n > (ULONG_MAX - 9) / 10)
			return def; /* too large: it would wrap */
		n = n * 10 + (unsigned long)(*v - '0');
	}
	return *v ? def : n;
}

static bool
copy_string(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		return false;
	memcpy(dst, src, n + 1);
	return true;
}

/* Free bytes of the filesystem of `dir` (0 if unknown). */
static uint64_t
free_bytes(const char *dir)
{
	struct statfs fs;

	return statfs(dir, &fs) == 0 ? (uint64_t)fs.f_bavail * (uint64_t)fs.f_bsize : 0;
}

/* A private spool directory for standalone recording: in the first of
 * /dev/shm, $TMPDIR, /tmp with room for HP_SPOOL_ROOM bytes of rings (a
 * small /dev/shm, like a container's 64 MiB, is left to the program), or
 * else in the one with the most room. */
static bool
make_spool_dir(char *const *envp)
{
	const char *bases[] = { "/dev/shm", env_get(envp, "TMPDIR"), "/tmp" };
	size_t n = sizeof(bases) / sizeof(bases[0]), order[3], k = 0;
	uint64_t rnd = 0, room[3];

	for (size_t i = 0; i < n; i++) {
		room[i] = bases[i] && bases[i][0] == '/' ? free_bytes(bases[i]) : 0;
		if (room[i] >= HP_SPOOL_ROOM)
			order[k++] = i;
	}
	for (size_t i = 0; i < n; i++) /* the others, most room first */
		if (room[i] < HP_SPOOL_ROOM && bases[i] && bases[i][0] == '/') {
			size_t j = k++;
			for (; j > 0 && room[order[j - 1]] < room[i] &&
			       room[order[j - 1]] < HP_SPOOL_ROOM; j--)
				order[j] = order[j - 1];
			order[j] = i;
		}
	hp_os_random(&rnd, sizeof(rnd));
	for (size_t j = 0; j < k; j++) {
		hp_format(spool_dir, sizeof(spool_dir), "%s/heapprof-%d-%x%x", bases[order[j]],
			  (int)syscall(SYS_getpid), (unsigned)rnd, (unsigned)(rnd >> 32));
		if (mkdir(spool_dir, 0700) == 0)
			return true;
	}
	return false;
}

/* HEAPPROF_SPOOL must name a spool heapprof made: an absolute path to a
 * directory called heapprof-*, ours, closed to others. Anything else
 * (a typo, /etc) would get files it has no business holding. */
static bool
spool_dir_ok(const char *dir)
{
	const char *base = strrchr(dir, '/');
	struct stat st;

	return dir[0] == '/' && base && strncmp(base + 1, "heapprof-", 9) == 0 &&
	       lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
	       (st.st_mode & 077) == 0;
}

void
hp_record_init(char *const *envp)
{
	const char *dir, *out, *snaps;
	unsigned long depth, ring_kb;
	int r;

	if (getauxval(AT_SECURE))
		return; /* never record a setuid/setgid program */
	dir = env_get(envp, HP_ENV_SPOOL);
	out = env_get(envp, HP_ENV_OUTPUT);
	if (dir == NULL || dir[0] == '\0') {
		if (out == NULL || out[0] == '\0')
			return;
		if (!copy_string(output_path, sizeof(output_path), out) || !make_spool_dir(envp)) {
			hp_log("cannot create a spool directory: not recording");
			return;
		}
		standalone = true;
		snaps = env_get(envp, HP_ENV_SNAPSHOTS);
		if (snaps && snaps[0] && !copy_string(snapshots_every, sizeof(snapshots_every), snaps))
			snapshots_every[0] = '\0';
	} else if (!copy_string(spool_dir, sizeof(spool_dir), dir)) {
		hp_log("%s too long: not recording", HP_ENV_SPOOL);
		return;
	} else if (!spool_dir_ok(spool_dir)) {
		hp_log("%s=%s is not a spool directory of heapprof's: not recording", HP_ENV_SPOOL,
		       spool_dir);
		return;
	}
	depth = env_number(envp, HP_ENV_MAX_DEPTH, 64);
	ring_kb = env_number(envp, HP_ENV_RING_KB, 8192);
	if (ring_kb < 64 || ring_kb > HP_RING_KB_MAX || (ring_kb & (ring_kb - 1)))
		ring_kb = 4096;
	hp_self.guard++;
	r = hp_spool_open(&spool, spool_dir, (pid_t)env_number(envp, HP_ENV_COLLECTOR, 0),
			  ring_kb * 1024);
	if (r < 0) {
		hp_self.guard--;
		hp_log("cannot open the spool %s (errno %d): not recording", spool_dir, -r);
		if (standalone)
			rmdir(spool_dir);
		return;
	}
	/* a spool of our own: marked as ours until the collector marks it
	 * as its own, so that it is swept if we are killed before that */
	if (standalone)
		hp_spool_mark(&spool);
	epoch = hp_os_map(HP_PAGE, 0);
	if (epoch == HP_MAP_FAILED || hp_os_madvise(epoch, HP_PAGE, MADV_WIPEONFORK) != 0) {
		hp_self.guard--;
		hp_log("no MADV_WIPEONFORK: not recording");
		return;
	}
	*epoch = 1;
	hp_clock_init(hp_clock_tsc_ok());
	dl_iterate_phdr(find_self, (void *)&hp_record_init);
	hp_stacks_init((unsigned)depth, self_lo, self_hi);
	hp_unwind_init(self_lo, self_hi, depth < 1 ? 1 : depth > HP_MAX_DEPTH_LIMIT ?
				 HP_MAX_DEPTH_LIMIT : (unsigned)depth,
		       hp_stacks_slots(), env_get(envp, HP_ENV_UNWIND_CHECK));
	recorder.stack_slots = hp_stacks_slots();
	send_process(0);
	send_start_settings();
	check_modules(true);
	hp_self.guard--;
	active = true;
	__atomic_store_n(&hp_observer, &recorder, __ATOMIC_RELEASE);
}

void
hp_record_mark(const char *name)
{
	struct hp_ev_mark *ev;
	struct hp_ring *r;
	struct hp_ticket t;

	if (!active || spool.stopped || !name)
		return;
	size_t n = strnlen(name, HP_MARK_MAX - 1);
	size_t bytes = pad8(sizeof(*ev) + n + 1);
	hp_self.guard++;
	ev = begin(bytes, &r);
	if (ev) {
		rec_ticket(&t);
		header(&ev->h, &t);
		ev->name_bytes = (uint32_t)n + 1;
		ev->pad = 0;
		char *p = (char *)(ev + 1);
		memcpy(p, name, n);
		memset(p + n, 0, bytes - sizeof(*ev) - n);
		commit(r, ev, HP_EV_MARK, bytes);
	}
	hp_self.guard--;
}

static void
record_exit(int status)
{
	struct hp_ev_exit *ev;

	EMIT(HP_EV_EXIT, ev, (ev->status = status, ev->pad = 0));
	spool.proc->exit_status = status;
	__atomic_store_n(&spool.proc->state, HP_PROC_EXITED, __ATOMIC_RELEASE);
	hp_spool_exit(&spool);
}

static void
on_exit_hook(int status, void *arg)
{
	(void)arg;
	hp_unwind_report();
	if (!active || spool.stopped)
		return;
	if (hp_self.guard == 0)
		flush_deferred(); /* its reaps before its end */
	record_exit(status);
}

/* Whether this process records calls that are not the allocator's (_exit,
 * the wait family): not a vfork child, which shares this process's memory
 * and would write into its files (a child forked without handlers has its
 * epoch page wiped and gets files of its own at its first record). */
static bool
recording_here(void)
{
	if (!active || spool.stopped)
		return false;
	return *epoch == 0 || (pid_t)syscall(SYS_getpid) == spool.pid;
}

/* And whether a record made now may be written: not in a signal handler
 * that interrupted heapprof's own code (that one is counted as dropped;
 * a reap is deferred instead, hp_record_reap). */
static bool
may_record(void)
{
	if (!recording_here())
		return false;
	if (hp_self.guard) {
		hp_spool_drop(&spool);
		return false;
	}
	return true;
}

void
hp_record_exit(int status)
{
	if (may_record()) {
		flush_deferred(); /* its reaps before its end */
		record_exit(status);
	}
}

static void
flush_deferred(void)
{
	struct hp_ev_reap *ev;

	hp_self.guard++;
	for (;;) {
		unsigned n = __atomic_load_n(&ndeferred, __ATOMIC_RELAXED);
		if (n == 0)
			break;
		/* a handler pushes above n: slot n - 1 stays as read unless
		 * the count moved, and then the newest is taken first */
		struct deferred_reap x = deferred[n - 1];
		if (!__atomic_compare_exchange_n(&ndeferred, &n, n - 1, false, __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED))
			continue;
		struct hp_ticket t;
		EMIT_NUMBERED(HP_EV_REAP, ev,
			      (t.seq = __atomic_fetch_add(&spool.proc->seq, 1, __ATOMIC_RELAXED),
			       t.ns = x.ns, tk_ = &t),
			      (ev->pid = x.pid, ev->status = x.status));
	}
	hp_self.guard--;
}

void
hp_record_reap(pid_t pid, int status)
{
	struct hp_ev_reap *ev;

	if (!recording_here())
		return;
	if (hp_self.guard) {
		/* inside heapprof's own code: a handler that interrupted it */
		if (__atomic_load_n(&ndeferred, __ATOMIC_RELAXED) >= DEFERRED_MAX) {
			hp_spool_drop(&spool);
			return;
		}
		unsigned k = __atomic_fetch_add(&ndeferred, 1, __ATOMIC_RELAXED);
		deferred[k] = (struct deferred_reap){ pid, status, hp_clock_ns() };
		return;
	}
	flush_deferred();
	EMIT(HP_EV_REAP, ev, (ev->pid = pid, ev->status = status));
}

/* Where the heapprof command is: $HEAPPROF_BIN, next to this library in a
 * build tree, or the installed one. */
static bool
find_collector(char *buf, size_t cap)
{
	const char *env = getenv("HEAPPROF_BIN");
	Dl_info info;

	if (env && copy_string(buf, cap, env))
		return access(buf, X_OK) == 0;
	if (dladdr((void *)&hp_record_init, &info) && info.dli_fname) {
		const char *slash = strrchr(info.dli_fname, '/');
		size_t n = slash ? (size_t)(slash - info.dli_fname) : 0;

		if (n + 32 < cap) {
			memcpy(buf, info.dli_fname, n);
			memcpy(buf + n, "/../analyzer/heapprof", 22);
			if (access(buf, X_OK) == 0)
				return true;
		}
	}
	hp_format(buf, cap, "%s/heapprof", HP_BINDIR);
	return access(buf, X_OK) == 0;
}

/* Standalone mode: start `heapprof collect` for this process tree and let
 * children find it through the environment. */
static void
start_collector(void)
{
	extern char **environ;
	char bin[4096], pid[24], *argv[12];
	pid_t child;
	int status;

	if (!find_collector(bin, sizeof(bin))) {
		hp_log("cannot find the heapprof command (set HEAPPROF_BIN): not recording");
		hp_spool_abandon(&spool);
		return;
	}
	hp_format(pid, sizeof(pid), "%d", (int)spool.pid);
	argv[0] = bin;
	argv[1] = "collect";
	argv[2] = "--spool";
	argv[3] = spool_dir;
	argv[4] = "--attach";
	argv[5] = pid;
	size_t k = 6;
	if (snapshots_every[0]) {
		argv[k++] = "--snapshots";
		argv[k++] = snapshots_every;
	}
	argv[k++] = "--";
	argv[k++] = output_path;
	argv[k] = NULL;
	/* The collector must not record itself: no LD_PRELOAD, no
	 * HEAPPROF_ variables but the tests' (HEAPPROF_TEST_). It daemonizes
	 * (it must not stay our child), so this spawn returns once it has. */
	size_t n = 0;
	k = 0;
	while (environ[n])
		n++;
	char **env = hp_selfmem_alloc((n + 1) * sizeof(char *), 16, false);
	if (env == NULL) {
		hp_spool_abandon(&spool);
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0 &&
		    (strncmp(environ[i], "HEAPPROF_", 9) != 0 ||
		     strncmp(environ[i], "HEAPPROF_TEST_", 14) == 0))
			env[k++] = environ[i];
	env[k] = NULL;
	int rc = posix_spawn(&child, bin, NULL, NULL, argv, env);
	hp_selfmem_free(env);
	if (rc != 0) {
		hp_log("cannot start %s: not recording", bin);
		hp_spool_abandon(&spool);
		return;
	}
	/* wait4 itself: waitpid is exits.c's, which would take this for one
	 * of the program's */
	while (syscall(SYS_wait4, child, &status, 0, NULL) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		hp_log("%s failed to start: not recording", bin);
		hp_spool_abandon(&spool);
		return;
	}
	/* Children (fork, exec) write to the same spool and collector. */
	setenv(HP_ENV_SPOOL, spool_dir, 1);
	unsetenv(HP_ENV_OUTPUT);
}

void
hp_record_constructor(void)
{
	if (!active)
		return;
	hp_self.guard++;
	if (standalone)
		start_collector();
	on_exit(on_exit_hook, NULL);
	hp_self.guard--;
}

/* ---- fork and threads ---- */

void
hp_record_fork_prepare(void)
{
	struct hp_ev_fork *ev;

	if (!active || spool.stopped)
		return;
	fork_ns = 0;
	EMIT(HP_EV_FORK, ev, (fork_ns = ev->h.ns));
	parent_serial = spool.serial;
}

/* A new process: its own files, stacks and modules from scratch. */
static void
after_fork(bool handler)
{
	uint64_t forked_at = handler ? fork_ns : 0;
	pid_t forker = spool.pid; /* with the handlers: the process that forked */

	parent_serial = handler ? parent_serial : spool.serial;
	hp_self.ring = NULL;
	hp_self.rec_busy = false;
	if (hp_spool_reopen_child(&spool) < 0) {
		spool.stopped = true;
		*epoch = 1;
		return;
	}
	/* getppid() is already the subreaper's pid if the parent is gone (a
	 * daemon's double fork) */
	if (handler)
		spool.proc->ppid = forker;
	*epoch = 1;
	fork_ns = forked_at;
	hp_stacks_reset();
	hp_mutex_reset(&modules_lock);
	for (struct module *m = modules, *next; m; m = next) {
		next = m->next;
		hp_selfmem_free(m);
	}
	modules = NULL;
	send_process(HP_PROC_FORKED);
	send_start_settings();
	check_modules(true);
}

void
hp_record_fork_child(void)
{
	if (!active)
		return;
	hp_unwind_fork_child();
	hp_self.guard++;
	ndeferred = 0; /* the parent's reaps, the parent writes them */
	after_fork(true);
	hp_self.guard--;
}

void
hp_record_thread_exit(void)
{
	struct hp_ev_thread *ev;

	hp_unwind_thread_exit();
	if (!active || spool.stopped || hp_self.ring == NULL)
		return;
	if (hp_self.guard == 0)
		flush_deferred(); /* its reaps before its end */
	EMIT(HP_EV_THREAD, ev, (ev->exiting = 1, ev->pad = 0));
}
