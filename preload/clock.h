/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the recorder's timestamps: CLOCK_MONOTONIC, in ns.
 *
 * A vdso clock_gettime costs ~28 ns here and is read once an event; on a
 * churn of malloc/free it was 39% of the program's own time under the
 * recorder. Where the kernel keeps its clock on the TSC itself (the
 * clocksource is "tsc": it found the counter invariant and in step on
 * every CPU), the time is read from the TSC instead (~11 ns) and scaled:
 * each thread takes an anchor (a clock_gettime between two TSC reads) and
 * extrapolates from it for at most HP_CLOCK_SPAN cycles (~10 ms), at a
 * rate measured over the first >= 20 ms of the process. The error is the
 * rate's over that span: well under a microsecond. Elsewhere, and until
 * the rate is known, every read is a clock_gettime.
 */
#ifndef HP_CLOCK_H
#define HP_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

/* Cycles a thread's anchor is extrapolated over before it is renewed. */
#define HP_CLOCK_SPAN (1ULL << 25)

/* Decide whether the TSC is used (tsc: the caller's view of the kernel's
 * clocksource; hp_clock_tsc_ok() reads it) and take the rate's first
 * reading. Called once at start-up, before any thread reads the clock.
 * Lock: none. Allocates: no. AS-safe: no. */
void hp_clock_init(bool tsc);

/* Whether the kernel's clocksource is the TSC. Reads sysfs. Lock: none.
 * Allocates: no. AS-safe: no. */
bool hp_clock_tsc_ok(void);

/* CLOCK_MONOTONIC now, in ns. Lock: none. Allocates: no. AS-safe: yes. */
uint64_t hp_clock_ns(void);

/* The TSC's rate in use, ns per cycle << 32; 0: not (yet) used. */
uint64_t hp_clock_rate(void);

#endif
