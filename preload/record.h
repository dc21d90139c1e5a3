/* SPDX-License-Identifier: MIT */
/*
 * record.h - heapprof's recorder: the observer (observe.h) that turns what
 * the allocator does into events (schema/events.h) in the spool.
 *
 * Recording starts at the first allocation when the environment names a
 * spool directory (heapprof run sets HEAPPROF_SPOOL and HEAPPROF_COLLECTOR)
 * or an output database (HEAPPROF_OUTPUT: the recorder then starts a
 * collector itself). It is never on for secure-mode (setuid) processes.
 * Every process writes its own files: a forked child starts new ones
 * in the atfork child handler (or on its first event, for forks that run
 * no handlers), and an exec'd process starts afresh.
 */
#ifndef HP_RECORD_H
#define HP_RECORD_H

#include <stdbool.h>
#include <sys/types.h>

/* From the first allocation (hp_init_slow), possibly inside ld.so: read
 * the environment, open the spool, write the process and module records
 * and install the observer. Lock: none. Allocates: selfmem. */
void hp_record_init(char *const *envp);

/* From heapprof's constructor, once libc is up: the exit hook, and in
 * standalone mode the collector. */
void hp_record_constructor(void);

/* Fork handlers (called by init.c's). */
void hp_record_fork_prepare(void);
void hp_record_fork_child(void);

/* The process is about to end by _exit(status) or _Exit(status): the
 * EXIT record exit() would have made. Nothing in a vfork child. Errno may
 * change. Lock: none. Allocates: selfmem. AS-safe: yes (in a signal handler
 * that interrupted heapprof itself the record is dropped, and counted). */
void hp_record_exit(int status);

/* A wait call of the program's returned child `pid`'s end, `status` as
 * wait(2) encodes it: the REAP record. Same conditions as hp_record_exit.
 * Lock: none. Allocates: selfmem. AS-safe: yes. */
void hp_record_reap(pid_t pid, int status);

/* The calling thread is exiting (its last key destructor round). */
void hp_record_thread_exit(void);

/* Whether this process records. */
bool hp_record_active(void);

/* heapprof_mark: record an instant named `name` (cut to HP_MARK_MAX - 1
 * bytes); nothing if this process does not record. Lock: none.
 * Allocates: no. */
void hp_record_mark(const char *name);

/* The program called mallopt(param, value) (the main arena locked): a
 * setting record. */
void hp_record_mallopt(int param, int value);

#endif
