/* SPDX-License-Identifier: MIT */
/*
 * util.c - helpers of the heapprof command (see util.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static void
oom(void)
{
	fputs("heapprof: out of memory\n", stderr);
	exit(125);
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		oom();
	return p;
}

const char *
path_base(const char *path)
{
	const char *s = path ? strrchr(path, '/') : NULL;

	return s ? s + 1 : path;
}

bool
proc_stat(long pid, char *state, unsigned long long *start_ticks)
{
	char path[64], buf[2048];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* the fields after the ")" that ends the command name */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return false;
	*state = p[2];
	int field = 3;
	for (p += 2; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	*start_ticks = strtoull(p, NULL, 10);
	return true;
}

void *
xaligned(size_t align, size_t n)
{
	void *p;

	if (posix_memalign(&p, align, n ? n : 1) != 0)
		oom();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom();
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		oom();
	return p;
}

void
hp_error(const char *what, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "heapprof: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

bool
parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0' || *s == ' ' || *s == '+')
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

bool
parse_seconds(const char *s, int64_t *ns)
{
	char *end;
	double v;

	if (!s || !*s || !((*s >= '0' && *s <= '9') || *s == '.'))
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (*end || errno || v < 0 || v > 1e9)
		return false;
	*ns = (int64_t)(v * 1e9 + 0.5); /* nearest: 0.053123457 is 53123456.99... */
	return true;
}

bool
parse_size(const char *s, uint64_t *out)
{
	static const struct {
		const char *suffix;
		uint64_t mult;
	} units[] = {
		{ "", 1 },
		{ "B", 1 },
		{ "K", 1ULL << 10 },
		{ "KiB", 1ULL << 10 },
		{ "k", 1ULL << 10 },
		{ "kB", 1000 },
		{ "KB", 1000 },
		{ "M", 1ULL << 20 },
		{ "MiB", 1ULL << 20 },
		{ "MB", 1000000 },
		{ "G", 1ULL << 30 },
		{ "GiB", 1ULL << 30 },
		{ "GB", 1000000000 },
	};
	const char *p = s;
	uint64_t whole = 0, frac = 0, fracdiv = 1;

	if (s == NULL || !(*p >= '0' && *p <= '9'))
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (whole > (1ULL << 62) / 10)
			return false;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		p++;
		if (!(*p >= '0' && *p <= '9'))
			return false;
		for (; *p >= '0' && *p <= '9'; p++)
			if (fracdiv < 1000000000) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				fracdiv *= 10;
			}
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].suffix) != 0)
			continue;
		if (units[i].mult == 1 && frac)
			return false; /* no fractional bytes */
		if (whole > (1ULL << 62) / units[i].mult)
			return false;
		*out = whole * units[i].mult + frac * units[i].mult / fracdiv;
		return true;
	}
	return false;
}

const char *
fmt_size(char *buf, size_t cap, uint64_t bytes)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, cap, "%.1f %s", v, unit[u]);
	return buf;
}

uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void
buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 256;
		b->p = xrealloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

size_t
utf8_char(const char *s, size_t n, uint32_t *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len;
	uint32_t c, min;

	if (n == 0)
		return 0;
	if (u[0] < 0x80) {
		*cp = u[0];
		return 1;
	}
	if ((u[0] & 0xe0) == 0xc0)
		len = 2, c = u[0] & 0x1f, min = 0x80;
	else if ((u[0] & 0xf0) == 0xe0)
		len = 3, c = u[0] & 0x0f, min = 0x800;
	else if ((u[0] & 0xf8) == 0xf0)
		len = 4, c = u[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((u[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (u[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

char *
text_safe(char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = utf8_char(s + i, n - i, &cp);
		bool bad = len == 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0);
		if (len == 0)
			len = 1;
		if (bad)
			memset(s + i, '?', len);
		i += len;
	}
	return s;
}

void
json_quote(struct buf *b, const char *s, size_t n)
{
	buf_add(b, "\"", 1);
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t len = utf8_char(s + i, n - i, &cp);
		char esc[8];

		if (len == 0) {
			buf_add(b, "\\ufffd", 6);
			i++;
			continue;
		}
		if (cp == '"' || cp == '\\') {
			esc[0] = '\\';
			esc[1] = (char)cp;
			buf_add(b, esc, 2);
		} else if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
			snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
			buf_add(b, esc, 6);
		} else {
			buf_add(b, s + i, len);
		}
		i += len;
	}
	buf_add(b, "\"", 1);
}

bool
hp_option(const char *arg, const char *name, const char **value)
{
	size_t n = strlen(name);

	if (strncmp(arg, name, n) != 0 || (arg[n] != '\0' && arg[n] != '='))
		return false;
	*value = arg[n] == '=' ? arg + n + 1 : NULL;
	return true;
}

const char *
hp_value_option(int argc, char **argv, int *i, const char *const *names, size_t n,
		const char **value, const char *command)
{
	const char *a = argv[*i], *name = NULL;

	*value = NULL;
	for (size_t j = 0; j < n && !name; j++)
		if (hp_option(a, names[j], value))
			name = names[j];
	if (!name) {
		hp_error(a, "unknown option (heapprof %s --help)", command);
		return NULL;
	}
	if (!*value && (*i + 1 >= argc || !(*value = argv[++*i]))) {
		hp_error(a, "needs a value");
		return NULL;
	}
	return name;
}

/* `name` with what is inside <> at nesting `depth` or deeper folded to
 * "..." (the angle brackets of operator<, operator<<, operator-> and the
 * like are not template brackets). */
static void
fold(struct buf *out, const char *name, int depth, bool params)
{
	int level = 0, paren = 0;

	out->len = 0;
	for (const char *p = name; *p; p++) {
		bool op = p >= name + 8 && strncmp(p - 8, "operator", 8) == 0;
		bool op2 = p >= name + 9 && strncmp(p - 9, "operator", 8) == 0 &&
			   (p[-1] == '<' || p[-1] == '>' || p[-1] == '-');
		if (*p == '<' && !op && !op2 && paren == 0) {
			level++;
			if (level == depth)
				buf_add(out, "<...", 4);
			if (level >= depth)
				continue;
		} else if (*p == '>' && level > 0 && !op && !op2 && p[-1] != '-' && paren == 0) {
			level--;
			if (level >= depth)
				continue;
			if (level == depth - 1) {
				buf_add(out, ">", 1);
				continue;
			}
		} else if (level >= depth) {
			continue;
		}
		if (params && level == 0 && *p == '(' && paren++ == 0 && p[1] != ')') {
			buf_add(out, "(...", 4);
			continue;
		}
		if (params && level == 0 && *p == ')' && paren > 0 && --paren == 0) {
			buf_add(out, ")", 1);
			continue;
		}
		if (params && paren > 0)
			continue;
		buf_add(out, p, 1);
	}
	buf_add(out, "", 1);
}

const char *
short_function(char *buf, size_t cap, const char *name, size_t max)
{
	struct buf b = { 0 };

	snprintf(buf, cap, "%s", name);
	for (int depth = 2; strlen(buf) > max && depth >= 0; depth--) {
		if (depth > 0)
			fold(&b, name, depth, false);
		else
			fold(&b, name, 1, true);
		snprintf(buf, cap, "%s", b.p);
	}
	free(b.p);
	return buf;
}
