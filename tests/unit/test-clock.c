/* SPDX-License-Identifier: MIT */
/*
 * test-clock - the recorder's timestamps (preload/clock.c) against
 * clock_gettime(CLOCK_MONOTONIC): every read taken between two of the
 * kernel's is within them (give or take SLACK), in several threads at once,
 * across anchor renewals and sleeps, with the TSC and without it.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "clock.h"

#include "../harness.h"

#define SLACK 20000  /* ns: the extrapolation's error is ~1-2 us */
#define THREADS 4

static uint64_t
kernel_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct run {
	uint64_t reads, outside, worst_early, worst_late;
};

/* Reads for `ms` milliseconds, now and then sleeping past an anchor's span. */
static void *
reader(void *arg)
{
	struct run *r = arg;
	uint64_t end = kernel_ns() + 150000000ULL;

	for (uint64_t i = 0;; i++) {
		uint64_t a = kernel_ns(), x = hp_clock_ns(), b = kernel_ns();
		r->reads++;
		if (x + SLACK < a || x > b + SLACK)
			r->outside++;
		if (x < a && a - x > r->worst_early)
			r->worst_early = a - x;
		if (x > b && x - b > r->worst_late)
			r->worst_late = x - b;
		if (b > end)
			break;
		if (i % 100000 == 99999) {
			struct timespec ts = { 0, 15000000 }; /* > HP_CLOCK_SPAN's ~10 ms */
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static void
threads(const char *what)
{
	pthread_t t[THREADS];
	struct run r[THREADS] = { 0 };

	for (int i = 0; i < THREADS; i++)
		CHECK(pthread_create(&t[i], NULL, reader, &r[i]) == 0, "%s: thread %d starts", what, i);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		CHECK(r[i].reads > 1000 && r[i].outside == 0,
		      "%s: thread %d: %llu of %llu reads outside the kernel's by > %d ns "
		      "(worst %llu ns early, %llu ns late)",
		      what, i, (unsigned long long)r[i].outside, (unsigned long long)r[i].reads,
		      SLACK, (unsigned long long)r[i].worst_early,
		      (unsigned long long)r[i].worst_late);
	}
}

int
main(void)
{
	/* without the TSC: every read is the kernel's */
	hp_clock_init(false);
	threads("clock_gettime");
	CHECK(hp_clock_rate() == 0, "clock_gettime: no rate");

	if (!hp_clock_tsc_ok()) {
		printf("# the clocksource is not tsc: its reads are clock_gettime's, tested above\n");
		return harness_exit();
	}
	hp_clock_init(true);
	CHECK(hp_clock_rate() == 0, "tsc: no rate before it is measured");
	threads("tsc");
	uint64_t rate = hp_clock_rate();
	/* 0.05-5 GHz: ns per cycle << 32 */
	CHECK(rate > (1ULL << 32) / 5 && rate < (1ULL << 32) * 20,
	      "tsc: a rate was measured (%.4f ns a cycle)", rate / 4294967296.0);
	/* and it is the counter's: over 50 ms, as clock_gettime counts them */
	uint64_t c0 = hp_clock_ns(), k0 = kernel_ns();
	struct timespec ts = { 0, 50000000 };
	nanosleep(&ts, NULL);
	uint64_t c1 = hp_clock_ns(), k1 = kernel_ns();
	int64_t diff = (int64_t)(c1 - c0) - (int64_t)(k1 - k0);
	CHECK(diff > -SLACK && diff < SLACK, "tsc: 50 ms are 50 ms (%lld ns off)", (long long)diff);
	return harness_exit();
}
