/* SPDX-License-Identifier: MIT */
/*
 * exits.c - the libc names through which a process learns how another
 * ended, or ends itself without exit(): _exit, _Exit and the wait family.
 *
 * A child reaped by its own parent, or ending by _exit, never shows its end
 * to the collector otherwise (only heapprof run's own children and orphans
 * are reaped by heapprof). So each of these records what it sees (record.c:
 * EXIT, REAP) and does exactly what libc does: the wait functions call
 * libc's own (found with dlsym(RTLD_NEXT)), so cancellation, EINTR, errno,
 * the status and the rusage are libc's; _exit and _Exit make glibc 2.36's
 * exit_group call (sysdeps/unix/sysv/linux/_exit.c). Only this file
 * defines these names; errno is the libc call's, whatever recording does.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "record.h"
#include "tcache.h"
#include "thread.h"

#define EXPORT __attribute__((visibility("default")))

/* ---- ending ---- */

static _Noreturn void
exit_group(int status)
{
	hp_record_exit(status);
	for (;;) {
		syscall(SYS_exit_group, status);
		__builtin_trap();
	}
}

EXPORT _Noreturn void
_exit(int status)
{
	exit_group(status);
}

EXPORT _Noreturn void
_Exit(int status)
{
	exit_group(status);
}

/* ---- waiting ---- */

/* libc's definition of `name`, looked up once. dlsym may allocate: the
 * guard sends that to heapprof's own memory. */
static void *
next(void **slot, const char *name)
{
	void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);

	if (__builtin_expect(f == NULL, 0)) {
		int saved = errno;

		hp_self.guard++;
		f = dlsym(RTLD_NEXT, name);
		hp_self.guard--;
		if (f == NULL)
			hp_fatal("libc has no wait function of this name", NULL, 0);
		__atomic_store_n(slot, f, __ATOMIC_RELEASE);
		errno = saved;
	}
	return f;
}

#define NEXT(type_, name_)                                                     \
	({                                                                     \
		static void *slot_;                                            \
		(type_) next(&slot_, #name_);                                  \
	})

/* What a wait call returned: a child's end is recorded (a stopped or
 * continued child is not), errno left as the call set it. */
static void
reaped(pid_t pid, int status)
{
	if (pid > 0 && (WIFEXITED(status) || WIFSIGNALED(status))) {
		int saved = errno;

		hp_record_reap(pid, status);
		errno = saved;
	}
}

/* glibc's old aliases, still exported (GLIBC_2.2.5); no header declares them */
pid_t __wait(int *wstatus);
pid_t __waitpid(pid_t which, int *wstatus, int options);

typedef pid_t (*wait_fn)(int *);
typedef pid_t (*waitpid_fn)(pid_t, int *, int);
typedef pid_t (*wait3_fn)(int *, int, struct rusage *);
typedef pid_t (*wait4_fn)(pid_t, int *, int, struct rusage *);
typedef int (*waitid_fn)(idtype_t, id_t, siginfo_t *, int);

/* The status is read from the caller's own variable when it gave one (so
 * that the call faults, or returns EFAULT, exactly as without heapprof),
 * else from ours. */
EXPORT pid_t
wait(int *wstatus)
{
	int own = 0, *st = wstatus ? wstatus : &own;
	pid_t pid = NEXT(wait_fn, wait)(st);

	reaped(pid, pid > 0 ? *st : 0);
	return pid;
}

EXPORT pid_t
__wait(int *wstatus)
{
	int own = 0, *st = wstatus ? wstatus : &own;
	pid_t pid = NEXT(wait_fn, __wait)(st);

	reaped(pid, pid > 0 ? *st : 0);
	return pid;
}

EXPORT pid_t
waitpid(pid_t which, int *wstatus, int options)
{
	int own = 0, *st = wstatus ? wstatus : &own;
	pid_t pid = NEXT(waitpid_fn, waitpid)(which, st, options);

	reaped(pid, pid > 0 ? *st : 0);
	return pid;
}

EXPORT pid_t
__waitpid(pid_t which, int *wstatus, int options)
{
	int own = 0, *st = wstatus ? wstatus : &own;
	pid_t pid = NEXT(waitpid_fn, __waitpid)(which, st, options);

	reaped(pid, pid > 0 ? *st : 0);
	return pid;
}

EXPORT pid_t
wait3(int *wstatus, int options, struct rusage *usage)
{
	int own = 0, *st = wstatus ? wstatus : &own;
	pid_t pid = NEXT(wait3_fn, wait3)(st, options, usage);

	reaped(pid, pid > 0 ? *st : 0);
	return pid;
}

EXPORT pid_t
wait4(pid_t which, int *wstatus, int options, struct rusage *usage)
{
	int own = 0, *st = wstatus ? wstatus : &own;
	pid_t pid = NEXT(wait4_fn, wait4)(which, st, options, usage);

	reaped(pid, pid > 0 ? *st : 0);
	return pid;
}

/* waitid: the end is in a siginfo (Linux accepts a NULL one; ours stands
 * in then). With WNOHANG and no child ready it returns 0 and si_pid 0. */
EXPORT int
waitid(idtype_t idtype, id_t id, siginfo_t *info, int options)
{
	siginfo_t own, *si = info ? info : &own;
	int r, status = 0;

	if (!info)
		memset(&own, 0, sizeof(own));
	r = NEXT(waitid_fn, waitid)(idtype, id, si, options);
	if (r != 0 || si->si_pid <= 0)
		return r;
	switch (si->si_code) {
	case CLD_EXITED:
		status = (si->si_status & 0xff) << 8;
		break;
	case CLD_KILLED:
		status = si->si_status & 0x7f;
		break;
	case CLD_DUMPED:
		status = (si->si_status & 0x7f) | 0x80;
		break;
	default: /* stopped, continued, trapped: not an end */
		return r;
	}
	reaped(si->si_pid, status);
	return r;
}
