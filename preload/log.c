/* SPDX-License-Identifier: MIT */
/*
 * log.c - diagnostics from inside the target: stack buffers and write(2).
 *
 * Runs inside malloc, possibly with the heap lock held or in a signal
 * handler: no stdio, no allocation, no locks.
 */
#include "config.h"

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

#define HP_LOG_MAX_LINES 64

static int log_lines;

static size_t
put_str(char *buf, size_t cap, size_t n, const char *s)
{
	while (*s && n + 1 < cap)
		buf[n++] = *s++;
	return n;
}

static size_t
put_num(char *buf, size_t cap, size_t n, uintmax_t v, unsigned base, bool neg)
{
	char tmp[24];
	int i = 0;

	do {
		tmp[i++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg && n + 1 < cap)
		buf[n++] = '-';
	while (i > 0 && n + 1 < cap)
		buf[n++] = tmp[--i];
	return n;
}

size_t
hp_vformat(char *buf, size_t cap, const char *fmt, va_list ap)
{
	size_t n = 0;

	if (cap == 0)
		return 0;
	for (; *fmt && n + 1 < cap; fmt++) {
		if (*fmt != '%') {
			buf[n++] = *fmt;
			continue;
		}
		fmt++;
		if (*fmt == 's') {
			const char *s = va_arg(ap, const char *);
			n = put_str(buf, cap, n, s ? s : "(null)");
		} else if (*fmt == 'd') {
			int v = va_arg(ap, int);
			n = put_num(buf, cap, n, v < 0 ? -(uintmax_t)v : (uintmax_t)v, 10,
				    v < 0);
		} else if (*fmt == 'u') {
			n = put_num(buf, cap, n, va_arg(ap, unsigned), 10, false);
		} else if (*fmt == 'z' && fmt[1] == 'u') {
			fmt++;
			n = put_num(buf, cap, n, va_arg(ap, size_t), 10, false);
		} else if (*fmt == 'x') {
			n = put_num(buf, cap, n, va_arg(ap, unsigned), 16, false);
		} else if (*fmt == 'p') {
			n = put_str(buf, cap, n, "0x");
			n = put_num(buf, cap, n, (uintptr_t)va_arg(ap, void *), 16, false);
		} else if (*fmt == '%') {
			buf[n++] = '%';
		} else {
			break;
		}
	}
	buf[n] = '\0';
	return n;
}

size_t
hp_format(char *buf, size_t cap, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	n = hp_vformat(buf, cap, fmt, ap);
	va_end(ap);
	return n;
}

static void
write_all(const char *s, size_t len)
{
	while (len > 0) {
		ssize_t w = syscall(SYS_write, 2, s, len);
		if (w <= 0)
			return;
		s += w;
		len -= (size_t)w;
	}
}

static size_t
prefix(char *buf, size_t cap)
{
	size_t n = put_str(buf, cap, 0, "heapprof[");
	n = put_num(buf, cap, n, (uintmax_t)syscall(SYS_getpid), 10, false);
	return put_str(buf, cap, n, "]: ");
}

void
hp_log(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	size_t n;

	if (__atomic_fetch_add(&log_lines, 1, __ATOMIC_RELAXED) >= HP_LOG_MAX_LINES)
		return;
	n = prefix(buf, sizeof(buf) - 1);
	va_start(ap, fmt);
	n += hp_vformat(buf + n, sizeof(buf) - 1 - n, fmt, ap);
	va_end(ap);
	buf[n++] = '\n';
	write_all(buf, n);
}

void
hp_corrupt(const char *msg)
{
	char buf[256];
	size_t n = put_str(buf, sizeof(buf) - 1, 0, msg);

	buf[n++] = '\n';
	write_all(buf, n);
	abort();
}

void
hp_fatal(const char *msg, const void *chunk, int invariant)
{
	char buf[512];
	size_t n = prefix(buf, sizeof(buf) - 1);

	n = put_str(buf, sizeof(buf) - 1, n, "fatal: ");
	n = put_str(buf, sizeof(buf) - 1, n, msg);
	if (chunk) {
		n = put_str(buf, sizeof(buf) - 1, n, " (chunk 0x");
		n = put_num(buf, sizeof(buf) - 1, n, (uintptr_t)chunk, 16, false);
		n = put_str(buf, sizeof(buf) - 1, n, invariant ? ", " : ")");
	}
	if (invariant) {
		n = put_str(buf, sizeof(buf) - 1, n, chunk ? "invariant " : " (invariant ");
		n = put_num(buf, sizeof(buf) - 1, n, (unsigned)invariant, 10, false);
		n = put_str(buf, sizeof(buf) - 1, n, ")");
	}
	buf[n++] = '\n';
	write_all(buf, n);
	abort();
}
