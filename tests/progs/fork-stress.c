/* SPDX-License-Identifier: MIT */
/*
 * fork-stress - fork() against an allocator that is in use. Proves that
 * the allocator's fork handling neither deadlocks nor leaves the child with
 * a heap it cannot use:
 *
 *  (a) while 4 threads malloc and free and short-lived threads come and
 *      go, 2 threads fork repeatedly; every child mallocs and frees,
 *      including a block the forking thread allocated before the fork and
 *      one another thread allocated, then _exit(0)s;
 *  (b) a single-threaded process forks from SIGALRM (setitimer) and SIGUSR1
 *      (sent by a helper process) handlers while its main loop mallocs and
 *      frees without pause;
 *  (c) vfork()+execve() and posix_spawn() of /bin/true from a
 *      multi-threaded process;
 *  (d) a multi-threaded process forks and the child starts a new thread
 *      that mallocs and frees.
 *
 * Every part runs in a child of its own, under a watchdog (alarm(60)) that
 * kills the part's process group and fails the test if it hangs. Semantics
 * mirror glibc's tst-malloc-fork-deadlock and tst-mallocfork2 and
 * jemalloc's fork tests; the code is our own.
 *
 * Runs natively and under LD_PRELOAD=libheapprof.so; both must pass.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../harness.h"
#include "rng.h"

#define WATCHDOG_SECONDS 60
#define KIB 1024u

extern char **environ;

/* ---- random numbers and cookies ---- */

/* Word 0: size ^ hash(address); then a pattern of (address, size). Sizes
 * are multiples of 8, at least 16. */
static void
cookie_fill(void *mem, size_t size)
{
	uint64_t *w = mem, base = mix((uintptr_t)mem + size);

	w[0] = size ^ mix((uintptr_t)mem);
	for (size_t i = 1; i < size / 8; i++)
		w[i] = base + i * 0x9e3779b97f4a7c15ULL;
}

/* The size the object claims, or 0 if it is corrupt. */
static size_t
cookie_check(const void *mem)
{
	const uint64_t *w = mem;
	uint64_t size = w[0] ^ mix((uintptr_t)mem), base;

	if (size < 16 || size > (4u << 20) || size % 8)
		return 0;
	base = mix((uintptr_t)mem + size);
	for (size_t i = 1; i < size / 8; i++)
		if (w[i] != base + i * 0x9e3779b97f4a7c15ULL)
			return 0;
	return malloc_usable_size((void *)mem) >= size ? (size_t)size : 0;
}

static size_t
pick_size(uint64_t *rng)
{
	uint64_t r = rng_next(rng);

	if (r % 64 == 0)
		return (64 * KIB + (size_t)((r >> 8) % (256 * KIB))) & ~(size_t)7;
	return (16 + (size_t)((r >> 8) % 4096)) & ~(size_t)7;
}

static void *
alloc_cookie(size_t size)
{
	void *p = malloc(size);

	if (p)
		cookie_fill(p, size);
	return p;
}

/* ---- what a forked child does with its heap ----
 * Returns an exit code: 0 fine, 10+ which step failed. Only the malloc
 * family and nothing else of libc (no stdio) is used. */
static int
child_heap_work(uint64_t seed, void *own, void *other)
{
	enum { N = 200 };
	void *p[N];
	uint64_t rng = seed | 1;
	unsigned char *z;
	void *big, *r = NULL;

	if (own && cookie_check(own) == 0)
		return 10;
	if (other && cookie_check(other) == 0)
		return 11;
	free(own);
	free(other);
	for (unsigned i = 0; i < N; i++) {
		/* Several of one size, so tcache bins overflow into the arena. */
		size_t size = i % 4 == 0 ? 64 : pick_size(&rng);

		p[i] = alloc_cookie(size);
		if (p[i] == NULL)
			return 12;
	}
	for (unsigned i = 0; i < N; i++)
		if (cookie_check(p[i]) == 0)
			return 13;
	for (unsigned i = N; i-- > 0;)
		free(p[i]);
	z = calloc(1000, 8);
	if (z == NULL)
		return 14;
	for (unsigned i = 0; i < 8000; i++)
		if (z[i] != 0)
			return 15;
	for (size_t size = 16; size < 64 * KIB; size *= 3) {
		void *q = realloc(r, size + 8);

		if (q == NULL)
			return 16;
		r = q;
		cookie_fill(r, size);
	}
	if (cookie_check(r) == 0)
		return 17;
	free(r);
	free(z);
	big = alloc_cookie(512 * KIB);
	if (big == NULL || cookie_check(big) == 0)
		return 18;
	free(big);
	return 0;
}

static const char *
describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "status %#x", st);
	return buf;
}

static pid_t
wait_for(pid_t pid, int *st)
{
	pid_t r;

	do
		r = waitpid(pid, st, 0);
	while (r < 0 && errno == EINTR);
	return r;
}

/* Failures seen by threads, turned into CHECKs by the thread that joins. */
static atomic_uint thread_failures;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

static void
thread_fail(const char *what, long a, long b)
{
	if (atomic_fetch_add(&thread_failures, 1) < 10) {
		pthread_mutex_lock(&report_lock);
		printf("FAIL (thread) - %s (%ld, %ld)\n", what, a, b);
		pthread_mutex_unlock(&report_lock);
	}
}

/* ---- background allocating threads, shared by (a), (c) and (d) ---- */

#define GIFT_SLOTS 16

static atomic_bool churn_stop;
static atomic_ulong churn_ops;
static _Atomic(uintptr_t) gifts[GIFT_SLOTS];

static void *
churn_main(void *arg)
{
	enum { SLOTS = 128 };
	void *slot[SLOTS] = { 0 };
	uint64_t rng = (uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1;
	unsigned long ops = 0;

	while (!atomic_load_explicit(&churn_stop, memory_order_relaxed)) {
		uint64_t r = rng_next(&rng);
		void **s = &slot[r % SLOTS];

		if (*s) {
			if (cookie_check(*s) == 0)
				thread_fail("churn: object corrupt", (long)(uintptr_t)*s, 0);
			free(*s);
		}
		*s = alloc_cookie(pick_size(&rng));
		if (*s == NULL)
			thread_fail("churn: malloc failed", 0, 0);
		if (++ops % 8 == 0 && *s) {
			/* Publish it for a forking thread to take. */
			uintptr_t old = atomic_exchange(&gifts[(r >> 32) % GIFT_SLOTS],
							(uintptr_t)*s);
			*s = NULL;
			if (old) {
				if (cookie_check((void *)old) == 0)
					thread_fail("churn: gift corrupt", (long)old, 0);
				free((void *)old);
			}
		}
	}
	for (unsigned i = 0; i < SLOTS; i++) {
		if (slot[i] && cookie_check(slot[i]) == 0)
			thread_fail("churn: object corrupt at end", (long)(uintptr_t)slot[i], 0);
		free(slot[i]);
	}
	atomic_fetch_add(&churn_ops, ops);
	return NULL;
}

static unsigned
start_churn(pthread_t *tid, unsigned n)
{
	unsigned started = 0;

	atomic_store(&churn_stop, false);
	for (unsigned i = 0; i < n; i++)
		if (pthread_create(&tid[i], NULL, churn_main, (void *)(uintptr_t)(i + 1)) == 0)
			started++;
	return started;
}

static void
stop_churn(pthread_t *tid, unsigned n)
{
	atomic_store(&churn_stop, true);
	for (unsigned i = 0; i < n; i++)
		pthread_join(tid[i], NULL);
	for (unsigned i = 0; i < GIFT_SLOTS; i++) {
		void *g = (void *)atomic_exchange(&gifts[i], 0);

		if (g && cookie_check(g) == 0)
			thread_fail("gift corrupt at the end", (long)(uintptr_t)g, 0);
		free(g);
	}
}

/* ---- (a) forking threads among allocating threads ---- */

/* Short-lived threads exit (flushing their tcache, releasing their arena)
 * while the forks happen. */
static void *
short_lived_main(void *arg)
{
	uint64_t rng = (uintptr_t)arg | 1;
	void *p[32];

	for (unsigned i = 0; i < 32; i++)
		p[i] = alloc_cookie(pick_size(&rng));
	for (unsigned i = 0; i < 32; i++) {
		if (p[i] && cookie_check(p[i]) == 0)
			thread_fail("short-lived thread: object corrupt", i, 0);
		free(p[i]);
	}
	return NULL;
}

static atomic_ulong spawned;

static void *
spawner_main(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&churn_stop, memory_order_relaxed)) {
		pthread_t t[2];
		unsigned n = 0;

		for (unsigned i = 0; i < 2; i++)
			if (pthread_create(&t[n], NULL, short_lived_main,
					   (void *)(uintptr_t)atomic_fetch_add(&spawned, 1)) == 0)
				n++;
		for (unsigned i = 0; i < n; i++)
			pthread_join(t[i], NULL);
	}
	return NULL;
}

#define A_ALLOCATORS 4
#define A_FORKERS 2
#define A_FORKS 150 /* per forking thread */

struct forker {
	pthread_t tid;
	unsigned id;
	unsigned forks, children_ok, with_gift;
};

static void *
forker_main(void *arg)
{
	struct forker *f = arg;
	uint64_t rng = 0x666f726bULL + f->id;

	for (unsigned i = 0; i < A_FORKS; i++) {
		void *own = alloc_cookie(pick_size(&rng)), *other = NULL;
		char buf[64];
		pid_t pid;
		int st;

		/* Take a block another thread allocated (spin a little: the
		 * allocators publish one every 8 operations). */
		for (unsigned tries = 0; other == NULL && tries < 1000; tries++) {
			other = (void *)atomic_exchange(&gifts[rng_next(&rng) % GIFT_SLOTS], 0);
			if (other == NULL)
				sched_yield();
		}
		if (other)
			f->with_gift++;
		pid = fork();
		if (pid == 0)
			_exit(child_heap_work(rng_next(&rng), own, other));
		if (pid < 0) {
			thread_fail("fork failed", errno, i);
		} else {
			f->forks++;
			if (wait_for(pid, &st) != pid)
				thread_fail("waitpid failed", errno, pid);
			else if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				f->children_ok++;
			else
				printf("FAIL (thread) - forker %u child %u: %s\n", f->id, i,
				       describe_status(st, buf, sizeof(buf)));
		}
		if (own && cookie_check(own) == 0)
			thread_fail("forker: own block corrupt in the parent", f->id, i);
		if (other && cookie_check(other) == 0)
			thread_fail("forker: taken block corrupt in the parent", f->id, i);
		free(own);
		free(other);
	}
	return NULL;
}

static void
part_threads_fork(void)
{
	pthread_t alloc_tid[A_ALLOCATORS], spawner;
	struct forker f[A_FORKERS];
	unsigned started, forks = 0, ok = 0, gifts_taken = 0, forkers = 0;

	started = start_churn(alloc_tid, A_ALLOCATORS);
	CHECK(started == A_ALLOCATORS, "(a) %u allocating threads started", started);
	CHECK(pthread_create(&spawner, NULL, spawner_main, NULL) == 0,
	      "(a) thread spawner started");
	/* Let them get going before the first fork. */
	while (atomic_load(&gifts[0]) == 0 && atomic_load(&gifts[1]) == 0)
		sched_yield();
	for (unsigned i = 0; i < A_FORKERS; i++) {
		f[i] = (struct forker){ .id = i };
		if (pthread_create(&f[i].tid, NULL, forker_main, &f[i]) == 0)
			forkers++;
	}
	CHECK(forkers == A_FORKERS, "(a) %u forking threads started", forkers);
	for (unsigned i = 0; i < forkers; i++) {
		pthread_join(f[i].tid, NULL);
		forks += f[i].forks;
		ok += f[i].children_ok;
		gifts_taken += f[i].with_gift;
	}
	stop_churn(alloc_tid, started);
	pthread_join(spawner, NULL);
	printf("(a) %u forks (%u with another thread's block), %u children ok; %lu allocator "
	       "ops, %lu short-lived threads\n",
	       forks, gifts_taken, ok, atomic_load(&churn_ops), atomic_load(&spawned));
	CHECK(forks == A_FORKERS * A_FORKS, "(a) all %u forks succeeded (%u)",
	      A_FORKERS * A_FORKS, forks);
	CHECK(ok == forks, "(a) every child could malloc and free and exited 0 (%u of %u)", ok,
	      forks);
	CHECK(gifts_taken > forks / 2, "(a) most children freed another thread's block (%u)",
	      gifts_taken);
	CHECK(atomic_load(&thread_failures) == 0, "(a) no failure in any thread (%u)",
	      atomic_load(&thread_failures));
}

/* ---- (b) fork from signal handlers, single-threaded ---- */

#define B_FORKS 400

static volatile sig_atomic_t b_forks, b_fork_errors, b_stopping;

static void
forking_handler(int sig)
{
	int saved = errno;
	pid_t pid;

	(void)sig;
	if (b_stopping || b_forks >= B_FORKS) {
		errno = saved;
		return;
	}
	pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid < 0)
		b_fork_errors++;
	else
		b_forks++;
	errno = saved;
}

/* Reap finished children except the signal sender; count bad exits. */
static void
reap(pid_t sender, int flags, unsigned *reaped, unsigned *bad, int *sender_died)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, flags);

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		if (pid == sender) {
			*sender_died = 1;
			continue;
		}
		(*reaped)++;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			(*bad)++;
	}
}

static void
part_signal_fork(void)
{
	enum { SLOTS = 64 };
	void *slot[SLOTS] = { 0 };
	uint64_t rng = 0x7369676eULL;
	struct sigaction sa;
	struct itimerval it = { { 0, 700 }, { 0, 700 } };
	unsigned long ops = 0, corrupt = 0, nulls = 0;
	unsigned reaped = 0, bad = 0;
	int sender_died = 0, st;
	pid_t parent = getpid(), sender;
	sigset_t block;

	CHECK(__libc_single_threaded, "(b) runs in a single-threaded process");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forking_handler;
	sa.sa_flags = SA_RESTART;
	/* One handler at a time: a fork interrupting a fork is not the point,
	 * and the counters below are plain sig_atomic_t. */
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGALRM);
	sigaddset(&sa.sa_mask, SIGUSR1);
	CHECK(sigaction(SIGALRM, &sa, NULL) == 0, "(b) SIGALRM handler");
	CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "(b) SIGUSR1 handler");

	/* A helper process that keeps sending SIGUSR1 (tst-mallocfork2). */
	fflush(stdout);
	sender = fork();
	if (sender == 0) {
		struct timespec ts = { 0, 300 * 1000 };

		signal(SIGUSR1, SIG_DFL);
		signal(SIGALRM, SIG_DFL);
		for (;;) {
			if (kill(parent, SIGUSR1) != 0)
				_exit(0);
			nanosleep(&ts, NULL);
		}
	}
	CHECK(sender > 0, "(b) signal sender started");
	CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "(b) setitimer");

	/* Allocate and free without pause until enough forks happened: the
	 * signals land anywhere, inside malloc and free included. */
	while (b_forks < B_FORKS && b_fork_errors == 0) {
		uint64_t r = rng_next(&rng);
		void **s = &slot[r % SLOTS];

		if (*s) {
			if (cookie_check(*s) == 0)
				corrupt++;
			free(*s);
			*s = NULL;
		}
		switch ((r >> 32) % 4) {
		case 0:
			*s = calloc(1, 64 + (r >> 40) % 512 * 8);
			if (*s)
				cookie_fill(*s, 64 + (r >> 40) % 512 * 8);
			break;
		case 1:
			*s = realloc(NULL, 24);
			if (*s) {
				void *q = realloc(*s, 2000);

				if (q) {
					*s = q;
					cookie_fill(*s, 2000);
				} else {
					free(*s);
					*s = NULL;
				}
			}
			break;
		default:
			*s = alloc_cookie(pick_size(&rng));
			break;
		}
		if (*s == NULL)
			nulls++;
		if (++ops % 256 == 0)
			reap(sender, WNOHANG, &reaped, &bad, &sender_died);
	}

	/* Stop the signals, then collect every child. */
	sigemptyset(&block);
	sigaddset(&block, SIGALRM);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, NULL);
	b_stopping = 1;
	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, NULL);
	if (sender > 0) {
		kill(sender, SIGKILL);
		if (!sender_died)
			wait_for(sender, &st);
	}
	reap(sender, 0, &reaped, &bad, &sender_died);
	for (unsigned i = 0; i < SLOTS; i++) {
		if (slot[i] && cookie_check(slot[i]) == 0)
			corrupt++;
		free(slot[i]);
	}
	printf("(b) %d forks from signal handlers during %lu allocations\n", (int)b_forks, ops);
	CHECK(b_fork_errors == 0, "(b) fork in the handler never failed (%d)", (int)b_fork_errors);
	CHECK(b_forks >= B_FORKS, "(b) %d forks, at least %d", (int)b_forks, B_FORKS);
	CHECK(reaped == (unsigned)b_forks, "(b) every child reaped (%u of %d)", reaped,
	      (int)b_forks);
	CHECK(bad == 0, "(b) every child exited 0 (%u did not)", bad);
	CHECK(corrupt == 0, "(b) the interrupted main loop's blocks stayed intact (%lu corrupt)",
	      corrupt);
	CHECK(nulls == 0, "(b) no allocation failed (%lu)", nulls);
	sigprocmask(SIG_UNBLOCK, &block, NULL);
}

/* ---- (c) vfork+execve and posix_spawn from a threaded process ---- */

#define C_SPAWNS 50

/* vfork in a function of its own: the child only execs or _exits. */
static __attribute__((noinline)) pid_t
vfork_exec(const char *path, char *const argv[])
{
	pid_t pid = vfork();

	if (pid == 0) {
		execve(path, argv, environ);
		_exit(127);
	}
	return pid;
}

static void
part_spawn(void)
{
	static char *const argv[] = { "true", NULL };
	pthread_t tid[2];
	unsigned started, vfork_ok = 0, spawn_ok = 0, spawn_errors = 0;
	char buf[64];

	started = start_churn(tid, 2);
	CHECK(started == 2, "(c) allocating threads started");
	for (unsigned i = 0; i < C_SPAWNS; i++) {
		int st;
		pid_t pid = vfork_exec("/bin/true", argv);

		if (pid > 0 && wait_for(pid, &st) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			vfork_ok++;
		else if (pid > 0)
			printf("FAIL - (c) vfork child %u: %s\n", i,
			       describe_status(st, buf, sizeof(buf)));
	}
	for (unsigned i = 0; i < C_SPAWNS; i++) {
		int st, err;
		pid_t pid;
		void *p = alloc_cookie(pick_size(&(uint64_t){ i + 1 }));

		err = posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ);
		if (err != 0) {
			spawn_errors++;
		} else if (wait_for(pid, &st) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
			spawn_ok++;
		} else {
			printf("FAIL - (c) posix_spawn child %u: %s\n", i,
			       describe_status(st, buf, sizeof(buf)));
		}
		if (p && cookie_check(p) == 0)
			thread_fail("(c) block corrupt across posix_spawn", i, 0);
		free(p);
	}
	stop_churn(tid, started);
	CHECK(vfork_ok == C_SPAWNS, "(c) vfork+execve /bin/true: %u of %d exited 0", vfork_ok,
	      C_SPAWNS);
	CHECK(spawn_errors == 0, "(c) posix_spawn never failed (%u)", spawn_errors);
	CHECK(spawn_ok == C_SPAWNS, "(c) posix_spawn /bin/true: %u of %d exited 0", spawn_ok,
	      C_SPAWNS);
	CHECK(atomic_load(&thread_failures) == 0, "(c) no failure in any thread (%u)",
	      atomic_load(&thread_failures));
}

/* ---- (d) fork, then a new thread in the child ---- */

#define D_FORKS 40

static void *
child_thread_main(void *arg)
{
	return (void *)(intptr_t)child_heap_work((uintptr_t)arg, NULL, NULL);
}

/* The child: two new threads allocate while the child's only original
 * thread does too, with a block from the parent's other thread freed. */
static int
child_with_threads(unsigned i, void *other)
{
	pthread_t t[2];
	void *ret;
	int rc;

	for (unsigned k = 0; k < 2; k++)
		if (pthread_create(&t[k], NULL, child_thread_main,
				   (void *)(uintptr_t)(i * 2 + k + 1)) != 0)
			return 30;
	rc = child_heap_work(i + 100, NULL, other);
	for (unsigned k = 0; k < 2; k++) {
		if (pthread_join(t[k], &ret) != 0)
			return 31;
		if (ret != NULL && rc == 0)
			rc = 40 + (int)(intptr_t)ret;
	}
	return rc;
}

static void
part_fork_then_thread(void)
{
	pthread_t tid[2];
	unsigned started, ok = 0, forks = 0;
	char buf[64];

	started = start_churn(tid, 2);
	CHECK(started == 2, "(d) allocating threads started");
	for (unsigned i = 0; i < D_FORKS; i++) {
		void *other = NULL;
		pid_t pid;
		int st;

		for (unsigned tries = 0; other == NULL && tries < 1000; tries++) {
			other = (void *)atomic_exchange(&gifts[i % GIFT_SLOTS], 0);
			if (other == NULL)
				sched_yield();
		}
		fflush(stdout);
		pid = fork();
		if (pid == 0)
			_exit(child_with_threads(i, other));
		free(other);
		if (pid < 0)
			continue;
		forks++;
		if (wait_for(pid, &st) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0)
			ok++;
		else
			printf("FAIL - (d) child %u: %s\n", i, describe_status(st, buf, sizeof(buf)));
	}
	stop_churn(tid, started);
	CHECK(forks == D_FORKS, "(d) all %d forks succeeded (%u)", D_FORKS, forks);
	CHECK(ok == forks, "(d) every child ran new threads that malloc and exited 0 (%u of %u)",
	      ok, forks);
	CHECK(atomic_load(&thread_failures) == 0, "(d) no failure in any thread (%u)",
	      atomic_load(&thread_failures));
}

/* ---- driver: every part in its own process, under a watchdog ---- */

static volatile pid_t watched;
static volatile sig_atomic_t watchdog_fired;

static void
watchdog(int sig)
{
	(void)sig;
	watchdog_fired = 1;
	if (watched > 0)
		kill(-watched, SIGKILL);
}

static void
run_part(const char *name, void (*fn)(void))
{
	struct timespec t0, t1;
	char buf[64];
	pid_t pid;
	int st = 0;

	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		signal(SIGALRM, SIG_DFL);
		harness_checks = harness_failures = 0;
		fn();
		printf("%s: %d checks, %d failed\n", name, harness_checks, harness_failures);
		fflush(stdout);
		_exit(harness_failures ? 1 : 0);
	}
	CHECK(pid > 0, "fork for part %s", name);
	if (pid < 0)
		return;
	setpgid(pid, pid);
	watched = pid;
	watchdog_fired = 0;
	alarm(WATCHDOG_SECONDS);
	wait_for(pid, &st);
	alarm(0);
	watched = 0;
	/* Whatever the part left behind in its process group. */
	kill(-pid, SIGKILL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(!watchdog_fired, "part %s finished within %d s (no deadlock)", name,
	      WATCHDOG_SECONDS);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "part %s passed (%s, %.2f s)", name,
	      describe_status(st, buf, sizeof(buf)),
	      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

int
main(void)
{
	struct sigaction sa;

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watchdog;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);

	run_part("(a) threads fork while threads allocate", part_threads_fork);
	run_part("(b) fork in signal handlers", part_signal_fork);
	run_part("(c) vfork and posix_spawn", part_spawn);
	run_part("(d) fork then new threads in the child", part_fork_then_thread);
	return harness_exit();
}
