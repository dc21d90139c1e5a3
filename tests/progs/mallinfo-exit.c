/* SPDX-License-Identifier: MIT */
/*
 * mallinfo-exit - a reporter to LD_PRELOAD into a program running on
 * glibc's own malloc (heapprof is not loaded): at the very end of the
 * process (its destructor runs last, as the first object ld.so
 * initialised) it writes glibc's mallinfo2() figures to the file named by
 * HP_MALLINFO_OUT (without it, to standard error: a program whose heap
 * depends on its environment's size, as CPython's, can run with exactly
 * the environment it was recorded with), with open(2) and write(2) only,
 * so that nothing it does touches the heap it reports:
 *     arena N keepcost N fordblks N fsmblks N hblkhd N uordblks N
 * and then malloc_info()'s XML to HP_MALLINFO_OUT.xml.
 * tests/advise/reality.py compares them with what heapprof advise
 * predicted for the program's recording.
 */
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

__attribute__((destructor)) static void
report(void)
{
	const char *path = getenv("HP_MALLINFO_OUT");
	struct mallinfo2 mi;
	char buf[256];
	size_t n = 0;
	int fd;

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
