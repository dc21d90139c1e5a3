/* SPDX-License-Identifier: MIT */
/*
 * mallinfo-exit - a reporter to LD_PRELOAD into a program running on
 * glibc's own malloc (heapprof is not loaded): at the very end of the
 * process (its destructor runs last, as the first object ld.so
 * initialised) it writes glibc's mallinfo2() figures to the file named by
 * HP_MALLINFO_OUT at start (without it, to standard error: a program whose heap
 * depends on its environment's size, as CPython's, can run with exactly
 * the environment it was recorded with), with open(2) and write(2) only,
 * so that nothing it does touches the heap it reports:
 *     arena N keepcost N fordblks N fsmblks N hblkhd N uordblks N
 * and then malloc_info()'s XML to HP_MALLINFO_OUT.xml.
 * A setting to run with can come on descriptor SETTING_FD instead of the
 * environment (see apply_setting), for the same reason.
 * tests/advise/reality.py compares them with what heapprof advise
 * predicted for the program's recording.
 */
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static size_t
put_num(char *buf, size_t n, unsigned long long v)
{
	char tmp[24];
	size_t k = 0;

	do
		tmp[k++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (k)
		buf[n++] = tmp[--k];
	return n;
}

static size_t
put_field(char *buf, size_t n, const char *name, unsigned long long v)
{
	size_t len = strlen(name);

	memcpy(buf + n, name, len);
	n += len;
	buf[n++] = ' ';
	n = put_num(buf, n, v);
	buf[n++] = ' ';
	return n;
}

enum { SETTING_FD = 9 };

static char out_path[4096]; /* HP_MALLINFO_OUT ("": none) */

static void __attribute__((noreturn))
fail(const char *msg)
{
	(void)!write(2, msg, strlen(msg));
	_exit(125);
}

/* Where to write, read before main: a program may write over its
 * environment's strings (tests/progs/mallopt-mix.c does). */
__attribute__((constructor)) static void
keep_out_path(void)
{
	const char *out = getenv("HP_MALLINFO_OUT");

	if (out && strlen(out) < sizeof(out_path))
		memcpy(out_path, out, strlen(out) + 1);
}

/*
 * When the caller left descriptor SETTING_FD open on "NAME=VALUE", one of
 * the settings mallopt() can make (MALLOC_MMAP_THRESHOLD_,
 * MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_, MALLOC_ARENA_MAX): make it
 * before the program's first malloc, as glibc does with the variable at
 * its first malloc (the same do_set_* functions), and close the
 * descriptor. The program then runs with exactly the environment it was
 * recorded with, not one variable more. Anything else there: exit 125.
 */
__attribute__((constructor)) static void
apply_setting(void)
{
	static const struct {
		const char *name;
		int param;
	} known[] = {
		{ "MALLOC_MMAP_THRESHOLD_=", M_MMAP_THRESHOLD },
		{ "MALLOC_TRIM_THRESHOLD_=", M_TRIM_THRESHOLD },
		{ "MALLOC_TOP_PAD_=", M_TOP_PAD },
		{ "MALLOC_ARENA_MAX=", M_ARENA_MAX },
	};
	char buf[128];
	ssize_t n = read(SETTING_FD, buf, sizeof(buf) - 1);

	if (n < 0)
		return; /* not open: the setting, if any, is in the environment */
	close(SETTING_FD);
	buf[n] = '\0';
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		size_t len = strlen(known[i].name);
		char *end;

		if (strncmp(buf, known[i].name, len) != 0)
			continue;
		long v = strtol(buf + len, &end, 10);
		if (end == buf + len || *end != '\0' || v < 0 || v > INT_MAX)
			fail("mallinfo-exit: a bad value on descriptor 9\n");
		if (mallopt(known[i].param, (int)v) != 1)
			fail("mallinfo-exit: mallopt refused the setting on descriptor 9\n");
		return;
	}
	fail("mallinfo-exit: descriptor 9 holds no setting mallopt() makes\n");
}

static bool reported;

/* glibc's figures, once: at the end of the process, or in _exit */
__attribute__((destructor)) static void
report(void)
{
	const char *path = out_path[0] ? out_path : NULL;
	struct mallinfo2 mi;
	char buf[256];
	size_t n = 0;
	int fd;

	if (reported)
		return;
	reported = true;
	mi = mallinfo2();
	n = put_field(buf, n, "arena", mi.arena);
	n = put_field(buf, n, "keepcost", mi.keepcost);
	n = put_field(buf, n, "fordblks", mi.fordblks);
	n = put_field(buf, n, "fsmblks", mi.fsmblks);
	n = put_field(buf, n, "hblkhd", mi.hblkhd);
	n = put_field(buf, n, "uordblks", mi.uordblks);
	buf[n - 1] = '\n';
	fd = path ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : 2;
	if (fd < 0)
		return;
	if (write(fd, buf, n) != (ssize_t)n && path)
		unlink(path);
	if (path == NULL)
		return;
	close(fd);
	/* then malloc_info()'s XML to PATH.xml: what mallinfo2 does not tell,
	 * the top chunk of each thread arena (its keepcost is the main
	 * arena's). Its FILE is allocated in the main arena, after the
	 * figures above were read. */
	char xml[4096];
	size_t len = strlen(path);
	if (len + 5 > sizeof(xml))
		return;
	memcpy(xml, path, len);
	memcpy(xml + len, ".xml", 5);
	FILE *f = fopen(xml, "w");
	if (f == NULL)
		return;
	malloc_info(0, f);
	fclose(f);
}

/* A program that ends with _exit (CPython's os._exit) runs no destructor:
 * the figures are those of that instant. */
void
_exit(int status)
{
	report();
	syscall(SYS_exit_group, status);
	__builtin_unreachable();
}
