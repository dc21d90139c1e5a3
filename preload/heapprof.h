/* SPDX-License-Identifier: MIT */
/*
 * heapprof.h - what a program can tell heapprof: instants that mean
 * something, for `heapprof report --at mark:NAME` (and check's --at).
 *
 * heapprof_mark() is defined by libheapprof.so. Declared weak here, a
 * program built with this header runs without heapprof too: HEAPPROF_MARK
 * does nothing then, and nothing when the process is not being recorded.
 *
 *	#include <heapprof.h>
 *	...
 *	HEAPPROF_MARK("steady");   // after start-up, before the work
 *
 * Any language that can call a C function by name does the same, e.g.
 * Python: ctypes.CDLL(None).heapprof_mark(b"steady") (an AttributeError
 * without heapprof).
 */
#ifndef HEAPPROF_H
#define HEAPPROF_H

#ifdef __cplusplus
extern "C" {
#endif

/* Record this instant under `name` (at most 255 bytes are kept). errno is
 * left alone; it never fails the program. (Weak but where libheapprof.so
 * defines it.) */
#ifdef HEAPPROF_DEFINE
void heapprof_mark(const char *name);
#else
void heapprof_mark(const char *name) __attribute__((weak));
#endif

#define HEAPPROF_MARK(name)                                                    \
	do {                                                                   \
		if (heapprof_mark)                                             \
			heapprof_mark(name);                                   \
	} while (0)

#ifdef __cplusplus
}
#endif

#endif
