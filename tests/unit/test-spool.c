/* SPDX-License-Identifier: MIT */
/*
 * test-spool - a thread's ring (preload/spool.c) read the way the collector
 * reads it, by a reader that keeps up and by one that lags: every record
 * comes out once, in order, intact, whatever padding the writer put in.
 * And a ring whose reader keeps up goes round within its first MiB of
 * blocks instead of taking its whole data area (8 MiB, all of it resident
 * once populated), which it takes only as far as the reader lags.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "events.h"
#include "spool.h"

#include "../harness.h"

#define RING (8u << 20)
#define SOFT (1u << 20) /* spool.c's RING_SOFT */

struct reader {
	struct hp_ring *r;
	uint64_t tail, next, bad;
};

static size_t
record_bytes(uint64_t seq)
{
	return sizeof(struct hp_ev) + 8 * (size_t)(seq % 29); /* 24-248 */
}

static void
write_record(struct hp_spool *s, struct hp_ring *r, uint64_t seq)
{
	size_t bytes = record_bytes(seq);
	struct hp_ev *e = hp_spool_begin(s, r, bytes);

	if (e == NULL) {
		printf("FAIL - no room for record %llu\n", (unsigned long long)seq);
		exit(1);
	}
	e->tid = 1;
	e->seq = seq;
	e->ns = seq * 3;
	for (size_t i = sizeof(*e); i < bytes; i++)
		((unsigned char *)e)[i] = (unsigned char)(seq + i);
	hp_spool_commit(r, e, HP_EV_ALLOC, bytes);
}

/* Read everything published, as collect.c's ring_peek does, and give the
 * room back. */
static void
consume(struct reader *rd)
{
	struct hp_ring *r = rd->r;
	uint64_t head = __atomic_load_n(&r->hdr->head, __ATOMIC_ACQUIRE);

	while (rd->tail < head) {
		uint64_t off = rd->tail & (r->size - 1);
		if (r->size - off < sizeof(struct hp_ev)) {
			rd->tail += r->size - off;
			continue;
		}
		const struct hp_ev *e = (const struct hp_ev *)(r->data + off);
		uint32_t bytes = HP_EV_BYTES(e->word);
		if (bytes < sizeof(*e) || bytes > r->size - off || (bytes & 7)) {
			rd->bad++;
			rd->tail = head;
			break;
		}
		if (HP_EV_TYPE(e->word) != HP_EV_PAD) {
			bool ok = HP_EV_TYPE(e->word) == HP_EV_ALLOC && e->seq == rd->next &&
				  bytes == record_bytes(e->seq) && e->ns == e->seq * 3;
			for (size_t i = sizeof(*e); ok && i < bytes; i++)
				ok = ((const unsigned char *)e)[i] == (unsigned char)(e->seq + i);
			rd->bad += !ok;
			rd->next++;
		}
		rd->tail += bytes;
	}
	__atomic_store_n(&r->hdr->tail, rd->tail, __ATOMIC_RELEASE);
}

/* The blocks of the ring's file, in bytes (its header page included). */
static uint64_t
file_bytes(const struct hp_spool *s, const struct hp_ring *r)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/P%d.%llu.r%u", s->dir, (int)s->pid,
		 (unsigned long long)s->serial, r->index);
	return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : 0;
}

/* Write `total` bytes of records from seq on, the reader reading after
 * every `every` records (0: never). Returns the next seq. */
static uint64_t
run(struct hp_spool *s, struct reader *rd, uint64_t seq, uint64_t total, unsigned every)
{
	for (uint64_t written = 0; written < total; seq++) {
		write_record(s, rd->r, seq);
		written += record_bytes(seq);
		if (every && seq % every == 0)
			consume(rd);
	}
	return seq;
}

int
main(void)
{
	char dir[] = "/tmp/test-spool-XXXXXX";
	struct hp_spool s;

	if (!mkdtemp(dir))
		return 99;
	if (hp_spool_open(&s, dir, getpid(), RING) != 0) {
		printf("cannot open a spool in %s\n", dir);
		return 99;
	}

	/* a reader that keeps up: 48 MiB through an 8 MiB ring */
	struct reader a = { .r = hp_spool_ring(&s, 1001) };
	CHECK(a.r && a.r->size == RING, "a ring of 8 MiB (%llu)",
	      a.r ? (unsigned long long)a.r->size : 0ULL);
	if (!a.r)
		return harness_exit();
	uint64_t seq = run(&s, &a, 0, 48u << 20, 64);
	consume(&a);
	CHECK(a.next == seq && a.bad == 0, "keeping up: %llu records read of %llu, %llu bad",
	      (unsigned long long)a.next, (unsigned long long)seq, (unsigned long long)a.bad);
	CHECK(a.r->reserved <= SOFT, "keeping up: it went round within %u bytes of blocks (%llu)",
	      SOFT, (unsigned long long)a.r->reserved);
	CHECK(file_bytes(&s, a.r) <= SOFT + 2 * 4096,
	      "keeping up: its file has no more blocks (%llu bytes)",
	      (unsigned long long)file_bytes(&s, a.r));

	/* a reader that lags by 6 MiB, then keeps up */
	struct reader b = { .r = hp_spool_ring(&s, 1002) };
	CHECK(b.r && b.r != a.r, "a second ring");
	if (!b.r)
		return harness_exit();
	uint64_t first = seq;
	b.next = first;
	seq = run(&s, &b, seq, 6u << 20, 0);
	uint64_t grown = b.r->reserved;
	CHECK(grown >= (6u << 20) && grown < RING,
	      "lagging 6 MiB: it took the blocks for them, not its whole data area (%llu)",
	      (unsigned long long)grown);
	consume(&b);
	seq = run(&s, &b, seq, 32u << 20, 64);
	consume(&b);
	CHECK(b.next == seq && b.bad == 0, "lagging: %llu records read of %llu, %llu bad",
	      (unsigned long long)(b.next - first), (unsigned long long)(seq - first),
	      (unsigned long long)b.bad);
	CHECK(b.r->reserved == grown, "then keeping up: no more blocks (%llu, %llu)",
	      (unsigned long long)b.r->reserved, (unsigned long long)grown);

	hp_spool_abandon(&s);
	rmdir(dir);
	return harness_exit();
}
