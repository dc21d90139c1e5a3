/* SPDX-License-Identifier: MIT */
/*
 * log.h - heapprof's diagnostics from inside the target process.
 *
 * Everything here formats into a stack buffer and leaves with one write(2) on
 * fd 2: no stdio, no locale, no allocation, callable with the heap lock held
 * and from signal handlers.
 */
#ifndef HP_LOG_H
#define HP_LOG_H

#include <stdarg.h>
#include <stddef.h>

/*
 * Write one line "heapprof[pid]: <fmt>\n" to stderr. Supports %s %d %u %zu
 * %x %p and %%. Lines beyond a per-process cap are dropped.
 * Lock: none. Allocates: no. AS-safe: yes.
 */
void hp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Report heap corruption the way glibc 2.36 does (the message and a newline
 * on stderr, nothing else) and abort. Used for every check glibc makes, with
 * glibc's exact message text, so programs and their tests see the same
 * failure with and without heapprof.
 * Lock: any. Allocates: no. AS-safe: yes. Does not return.
 */
void hp_corrupt(const char *msg) __attribute__((noreturn, cold));

/*
 * An internal invariant of heapprof broke: write "heapprof[pid]: fatal: msg
 * (chunk 0xADDR, invariant N)" and abort; N is the number of the invariant
 * in heap.h's list. Without a chunk (NULL) the line ends "(invariant N)",
 * without an invariant (0) "(chunk 0xADDR)".
 * Lock: any. Allocates: no. AS-safe: yes. Does not return.
 */
void hp_fatal(const char *msg, const void *chunk, int invariant)
	__attribute__((noreturn, cold));

/* Format into buf (always NUL-terminated); returns the length. Same
 * conversions as hp_log. AS-safe. */
size_t hp_vformat(char *buf, size_t cap, const char *fmt, va_list ap);
size_t hp_format(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * HP_CHECK: always on, for cheap checks (bounds, magic). HP_ASSERT: only at
 * -Ddebug_checks=1 and above; at 0 its condition is not evaluated. Both
 * call hp_fatal with the chunk concerned (or NULL) and the number of the
 * invariant that broke (heap.h's list).
 */
#define HP_CHECK(cond, msg, chunk, inv)                                        \
	do {                                                                   \
		if (__builtin_expect(!(cond), 0))                              \
			hp_fatal(msg, chunk, inv);                             \
	} while (0)

#if HP_DEBUG_CHECKS >= 1
#define HP_ASSERT(cond, chunk, inv) HP_CHECK(cond, "assertion failed: " #cond, chunk, inv)
#else
#define HP_ASSERT(cond, chunk, inv) ((void)sizeof(!(cond)))
#endif

#endif
