/* SPDX-License-Identifier: MIT */
/*
 * unwind.h - the call stack of an allocation, captured into a caller-supplied
 * fixed array, equal to what libunwind's unw_backtrace() gives from the same
 * place.
 *
 * On x86-64 heapprof walks the stack itself: a frame's unwind rule (CFA =
 * rsp or rbp + offset, return address at CFA-8, rbp saved at a CFA offset
 * or not) is read once from its module's .eh_frame_hdr/.eh_frame and kept
 * in a lock-free table keyed by return address, with a small cache of its
 * own in each thread, and the rules of the frames the thread's previous
 * capture walked are taken from that capture. Every frame is still read
 * from the stack: a rule is a function of the address alone, the stack is
 * not. Whatever the table cannot describe the way libunwind's fast path
 * would (signal frames, expressions, frames without unwind information, a
 * stack other than the thread's own) makes the whole capture fall back to
 * unw_backtrace(). Every stack read is checked against the thread's stack
 * mapping first, so a bad stack or a wrong rule cannot fault.
 *
 * The library also defines dlclose(): the real one, then hp_unwind_flush()
 * and libunwind's unw_flush_cache(), since the unloaded code's addresses
 * may hold other code later.
 */
#ifndef HP_UNWIND_H
#define HP_UNWIND_H

#include <stdbool.h>
#include <stdint.h>

/* The environment variable that turns on the capture check: every capture
 * is made twice, by heapprof and by unw_backtrace, and compared (the
 * frames a stack keeps, heapprof's own left out), and a capture said to
 * repeat the one before (hp_unwind_repeated) is compared with it; a
 * difference is logged on stderr at once, and at exit each process says
 * how many captures it compared, how many differed, how many repeated and
 * how many libunwind made, on stderr, or when the value is an absolute
 * directory, in DIR/unwind.PID. */
#define HP_ENV_UNWIND_CHECK "HEAPPROF_UNWIND_CHECK"

/* At start-up (hp_record_init): heapprof's own code range [self_lo,
 * self_hi) (the frames dropped from the top of every stack), the number
 * of frames a stack keeps, the most return addresses a capture is asked
 * for (hp_stacks_slots()), and the value of HEAPPROF_UNWIND_CHECK (NULL,
 * "" or "0": no check). Lock: none. Allocates: no. AS-safe: yes. */
void hp_unwind_init(uintptr_t self_lo, uintptr_t self_hi, unsigned max_depth, unsigned slots,
		    const char *check);

/*
 * Return addresses of the calling thread's stack, innermost first, at most
 * `max`: buf[0] is the return address into the function that called
 * hp_unwind_capture (as with unw_backtrace called from that function).
 * Returns how many it stored (0 when nothing could be captured).
 * Must be called with the thread's guard up (libunwind, on the fallback,
 * may allocate).
 * Lock: none. Allocates: no (the fallback: arena). AS-safe: no.
 */
int hp_unwind_capture(void **buf, int max) __attribute__((noinline));

/* Whether the calling thread's last capture gave exactly the return
 * addresses of its capture before (both walked by heapprof, so known
 * without comparing them). Lock: none. Allocates: no. AS-safe: yes. */
bool hp_unwind_repeated(void);

/* Forget every cached rule (a module was unloaded). Lock: none.
 * Allocates: no. AS-safe: yes. */
void hp_unwind_flush(void);

/* The calling thread is ending: give back its own rules (its later
 * captures, if any, go to libunwind). Lock: none (the arena's). Allocates:
 * no. AS-safe: no. */
void hp_unwind_thread_exit(void);

/* In a forked child: release what a thread of the parent may have held,
 * and zero the check's counts. Lock: none. Allocates: no. AS-safe: yes. */
void hp_unwind_fork_child(void);

/* With the check on: this process's counts (see HP_ENV_UNWIND_CHECK).
 * Lock: none. Allocates: no. AS-safe: yes. */
void hp_unwind_report(void);

#endif
