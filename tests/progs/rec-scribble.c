/* SPDX-License-Identifier: MIT */
/*
 * rec-scribble - a program that writes garbage into heapprof's rings, as a
 * stray write or an overrun into their mapping would. Under heapprof run it
 * makes a ring file of its own in the spool (as libheapprof.so makes one for
 * a thread) and writes into it, with the numbers of its process, records
 * that are wrong in every way the collector must catch, and one that is
 * right; waits for the collector to read them; then breaks the ring's
 * header. Then it makes 500 chunks of 1234 bytes, frees 250, and exits
 * with status 3. It prints how many bad records it wrote ("bad 14").
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "events.h"

#define DATA (64 * 1024)

static struct hp_proc_file *proc;
static struct hp_ring_header *hdr;
static char *data;
static uint64_t head;
static int bad;

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Room for `bytes` at the head, its header filled with a number taken
 * from the process file (or `seq` if not 0). */
static void *
begin(size_t bytes, uint64_t seq)
{
	struct hp_ev *e = (struct hp_ev *)(data + head);

	memset(e, 0, bytes);
	e->tid = (int32_t)syscall(SYS_gettid);
	e->seq = seq ? seq : __atomic_fetch_add(&proc->seq, 1, __ATOMIC_RELAXED);
	e->ns = now_ns();
	return e;
}

static void
commit(void *rec, uint32_t type, size_t bytes, int is_bad)
{
	__atomic_store_n(&((struct hp_ev *)rec)->word, HP_EV_WORD(type, bytes), __ATOMIC_RELEASE);
	head += bytes;
	__atomic_store_n(&hdr->head, head, __ATOMIC_RELEASE);
	bad += is_bad;
}

/* This process's process file and a new ring file of its own. */
static int
open_spool(void)
{
	const char *dir = getenv("HEAPPROF_SPOOL");
	char path[4096], prefix[32];
	long serial = -1;
	struct dirent *de;
	DIR *d;
	int fd;

	if (!dir || !(d = opendir(dir)))
		return -1;
	snprintf(prefix, sizeof(prefix), "P%d.", (int)getpid());
	while ((de = readdir(d)) != NULL) {
		long s;
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 &&
		    sscanf(de->d_name + strlen(prefix), "%ld.proc", &s) == 1 &&
		    strstr(de->d_name, ".proc") && s > serial)
			serial = s;
	}
	closedir(d);
	if (serial < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/P%d.%ld.proc", dir, (int)getpid(), serial);
	if ((fd = open(path, O_RDWR)) < 0)
		return -1;
	proc = mmap(NULL, HP_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (proc == MAP_FAILED)
		return -1;
	unsigned n = __atomic_load_n(&proc->nrings, __ATOMIC_ACQUIRE);
	snprintf(path, sizeof(path), "%s/P%d.%ld.r%u", dir, (int)getpid(), serial, n);
	if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600)) < 0 ||
	    fallocate(fd, 0, 0, HP_PAGE + DATA) != 0)
		return -1;
	hdr = mmap(NULL, HP_PAGE + DATA, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (hdr == MAP_FAILED)
		return -1;
	data = (char *)hdr + HP_PAGE;
	hdr->version = HP_EV_VERSION;
	hdr->data_bytes = DATA;
	hdr->tid = (int32_t)syscall(SYS_gettid);
	hdr->state = HP_RING_OWNED;
	__atomic_store_n(&hdr->magic, HP_RING_MAGIC, __ATOMIC_RELEASE);
	__atomic_add_fetch(&proc->nrings, 1, __ATOMIC_RELEASE);
	return 0;
}

int
main(void)
{
	void *keep[500];

	free(malloc(100)); /* recording has started */
	if (open_spool() != 0) {
		fprintf(stderr, "rec-scribble: not under heapprof run\n");
		return 2;
	}
	struct hp_ev_alloc *a = begin(sizeof(*a), 0);
	a->chunk = 0x10000, a->size = 100, a->chunk_bytes = 50, a->backing = 1, a->call = 1;
	commit(a, HP_EV_ALLOC, sizeof(*a), 1); /* a size larger than its chunk */
	a = begin(sizeof(*a), 0);
	a->chunk = 0x10000, a->size = 40, a->chunk_bytes = 48, a->backing = 1, a->call = 1;
	a->h.tid = 1 << 30;
	commit(a, HP_EV_ALLOC, sizeof(*a), 1); /* a thread id out of range */
	a = begin(sizeof(*a), 0);
	a->chunk = 1ULL << 60, a->size = 40, a->chunk_bytes = 48, a->backing = 1, a->call = 1;
	commit(a, HP_EV_ALLOC, sizeof(*a), 1); /* an address out of range */
	a = begin(sizeof(*a), 0);
	a->chunk = 0x10008, a->size = 40, a->chunk_bytes = 48, a->backing = 1, a->call = 1;
	commit(a, HP_EV_ALLOC, sizeof(*a), 1); /* an address not a multiple of 16 */
	struct hp_ev_stack *st = begin(sizeof(*st) + 8, 0);
	st->stack_id = 1U << 31, st->depth = 1, st->ip[0] = 0x401000;
	commit(st, HP_EV_STACK, sizeof(*st) + 8, 1); /* a stack id out of reach */
	st = begin(sizeof(*st) + 8, 0);
	st->stack_id = 7, st->depth = 1000;
	commit(st, HP_EV_STACK, sizeof(*st) + 8, 1); /* a depth its length does not hold */
	struct hp_ev *u = begin(32, 0);
	commit(u, 99, 32, 1); /* a type there is not */
	struct hp_ev_resize *rs = begin(sizeof(*rs), 0);
	rs->chunk = 0x10000, rs->size = 4096, rs->old_bytes = 48, rs->new_bytes = 64;
	commit(rs, HP_EV_RESIZE, sizeof(*rs), 1); /* a size larger than its chunk */
	struct hp_ev_process *pr = begin(sizeof(*pr) + 16, 0);
	pr->pid = getpid(), pr->exe_bytes = 10000, pr->argv_bytes = 0;
	commit(pr, HP_EV_PROCESS, sizeof(*pr) + 16, 1); /* strings past its end */
	struct hp_ev_module *m = begin(sizeof(*m) + 8, 0);
	m->lo = 0x400000, m->hi = 0x500000, m->path_bytes = 8;
	memset(m + 1, 'x', 8);
	commit(m, HP_EV_MODULE, sizeof(*m) + 8, 1); /* a path without its end */
	struct hp_ev_map *mp = begin(sizeof(*mp), 0);
	mp->addr = 0x7f0000000000, mp->len = 4096, mp->kind = 7;
	commit(mp, HP_EV_MAP, sizeof(*mp), 1); /* a kind there is not */
	struct hp_ev *x = begin(sizeof(*x), 1ULL << 50);
	commit(x, HP_EV_FORK, sizeof(*x), 1); /* a number never taken */
	/* a broken length word, then garbage, then a good record */
	memset(data + head, 0xab, 56);
	__atomic_store_n((uint32_t *)(data + head), HP_EV_WORD(HP_EV_ALLOC, 13), __ATOMIC_RELEASE);
	head += 56;
	__atomic_store_n(&hdr->head, head, __ATOMIC_RELEASE);
	bad++;
	x = begin(sizeof(*x), 0);
	commit(x, HP_EV_FORK, sizeof(*x), 0); /* right (a fork that did not happen) */

	/* the collector reads it all; then the header is broken */
	for (int i = 0; i < 2000 && __atomic_load_n(&hdr->tail, __ATOMIC_ACQUIRE) != head; i++)
		usleep(5000);
	if (__atomic_load_n(&hdr->tail, __ATOMIC_ACQUIRE) != head) {
		fprintf(stderr, "rec-scribble: the collector did not read the ring\n");
		return 4;
	}
	__atomic_store_n(&hdr->head, 1ULL << 62, __ATOMIC_RELEASE);
	bad++;

	for (int i = 0; i < 500; i++)
		((char *)(keep[i] = malloc(1234)))[0] = 1;
	for (int i = 0; i < 250; i++)
		free(keep[i]);
	printf("bad %d\n", bad);
	return 3;
}
