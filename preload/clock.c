/* SPDX-License-Identifier: MIT */
/* clock.c - the recorder's timestamps (see clock.h). */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define CAL_NS 20000000ULL  /* the rate is measured over at least this */
#define TIGHT 4096          /* cycles: a read between two TSC reads no
			     * farther apart was not interrupted */

struct anchor {
	uint64_t tsc, ns;
};

static bool use_tsc;
static struct anchor cal;   /* the rate's first reading */
static uint64_t rate;       /* ns per cycle << 32; 0: not known yet */
static __thread struct anchor here;

static uint64_t
gettime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#if defined(__x86_64__)
static inline uint64_t
tsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}
#else
static inline uint64_t
tsc(void)
{
	return 0;
}
#endif

/* A clock_gettime and the TSC at the same instant: the middle of two TSC
 * reads around it, tried again (twice at most) if something came between
 * them. Returns whether the pair is tight (then it is within ~1 us). */
static bool
reading(struct anchor *a)
{
	for (int i = 0;; i++) {
		uint64_t c0 = tsc(), n = gettime(), c1 = tsc();
		a->tsc = c0 + (c1 - c0) / 2;
		a->ns = n;
		if (c1 - c0 < TIGHT)
			return true;
		if (i == 2)
			return false;
	}
}

bool
hp_clock_tsc_ok(void)
{
#if defined(__x86_64__)
	char buf[16];
	int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource",
		      O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n == 4 && memcmp(buf, "tsc\n", 4) == 0;
#else
	return false;
#endif
}

void
hp_clock_init(bool tsc_ok)
{
	use_tsc = tsc_ok;
	__atomic_store_n(&rate, 0, __ATOMIC_RELAXED);
	here.tsc = 0;
	/* the rate's first reading must be tight: its error is the rate's */
	for (int i = 0; use_tsc && !reading(&cal); i++)
		if (i == 30)
			use_tsc = false;
}

uint64_t
hp_clock_rate(void)
{
	return use_tsc ? __atomic_load_n(&rate, __ATOMIC_RELAXED) : 0;
}

/* The thread's anchor is renewed: a clock_gettime, which also measures the
 * rate once the process is CAL_NS old. */
static __attribute__((noinline)) uint64_t
renew(void)
{
	struct anchor a;
	bool tight = reading(&a);

	if (tight && !__atomic_load_n(&rate, __ATOMIC_RELAXED) && a.ns - cal.ns >= CAL_NS &&
	    a.tsc > cal.tsc) {
		unsigned __int128 r = ((unsigned __int128)(a.ns - cal.ns) << 32) / (a.tsc - cal.tsc);
		__atomic_store_n(&rate, (uint64_t)r, __ATOMIC_RELAXED);
	}
	/* a signal handler that reads the clock meanwhile sees no anchor
	 * and takes its own */
	here.tsc = 0;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	here.ns = a.ns;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	here.tsc = tight ? a.tsc : 0;
	return a.ns;
}

uint64_t
hp_clock_ns(void)
{
	if (!use_tsc)
		return gettime();
	uint64_t r = __atomic_load_n(&rate, __ATOMIC_RELAXED);
	uint64_t d = tsc() - here.tsc;
	if (__builtin_expect(r == 0 || d >= HP_CLOCK_SPAN, 0))
		return renew();
	return here.ns + ((d * r) >> 32); /* d < 2^25: no overflow below 2^39 */
}
