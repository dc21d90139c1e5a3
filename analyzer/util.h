/* SPDX-License-Identifier: MIT */
/*
 * util.h - small helpers of the heapprof command: allocation that exits
 * on out-of-memory, the one-line error format, number and size parsing.
 */
#ifndef HP_UTIL_H
#define HP_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* malloc/calloc/realloc/strdup that print "heapprof: out of memory" and
 * exit 125 on failure. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
/* The last component of a path (NULL stays NULL). */
const char *path_base(const char *path);

/* A process's state letter and start time (/proc/PID/stat fields 3 and
 * 22). Returns false if there is no such process. */
bool proc_stat(long pid, char *state, unsigned long long *start_ticks);

/* n bytes aligned to `align` (a power of two, a multiple of a pointer) */
void *xaligned(size_t align, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Print "heapprof: <what>: <formatted why>" on stderr, one line. */
void hp_error(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse a whole decimal number in [min, max]; false if malformed. */
bool parse_long(const char *s, long min, long max, long *out);

/* Parse a size: bytes, or with K/M/G (powers of 1024) or KiB/MiB/GiB, or
 * kB/MB/GB (powers of 1000). false if malformed or above 2^62. */
bool parse_size(const char *s, uint64_t *out);

/* Parse seconds ("1.5", "2", ".25") as ns, rounded to the nearest; false if
 * malformed, negative or above 10^9 s. */
bool parse_seconds(const char *s, int64_t *ns);

/* Is the command-line word `arg` the option `name`, as "--name" or
 * "--name=VALUE"? *value is set to VALUE, or NULL for the first form. */
bool hp_option(const char *arg, const char *name, const char **value);

/* argv[*i] as one of the `n` options `names` that take a value ("--name
 * VALUE", *i moves past VALUE, or "--name=VALUE"): the name, *value its
 * value. NULL, after a one-line error, if it is none of them (naming
 * "heapprof `command` --help") or its value is missing. */
const char *hp_value_option(int argc, char **argv, int *i, const char *const *names, size_t n,
			    const char **value, const char *command);

/* A function name fit for a line of text: long C++ names with their
 * template arguments folded ("std::map<...>::find") and then their
 * parameters ("(...)"), until at most `max` bytes. Into buf; returns it. */
const char *short_function(char *buf, size_t cap, const char *name, size_t max);

/* Human size: "12.3 MiB", "512 B". Returns buf. */
const char *fmt_size(char *buf, size_t cap, uint64_t bytes);

/* Monotonic clock in ns (CLOCK_MONOTONIC, comparable with the events). */
uint64_t mono_ns(void);

/* The length of the UTF-8 character at s (of at most n bytes), its code
 * point in *cp; 0 if none starts there (a stray byte, an overlong form, a
 * surrogate, past U+10FFFF). */
size_t utf8_char(const char *s, size_t n, uint32_t *cp);

/* s made fit for a terminal, in place: control characters (C0, DEL, C1)
 * and bytes that are no UTF-8 become '?' (a database is anyone's: an
 * escape sequence in a function name must not reach the terminal).
 * Returns s. */
char *text_safe(char *s);

/* A growable byte buffer. */
struct buf {
	char *p;
	size_t len, cap;
};
void buf_add(struct buf *b, const void *data, size_t n);
void buf_free(struct buf *b);

/* A JSON string of n bytes of s: UTF-8 as it is, control characters
 * escaped, bytes that are no UTF-8 as U+FFFD. */
void json_quote(struct buf *b, const char *s, size_t n);

#endif
