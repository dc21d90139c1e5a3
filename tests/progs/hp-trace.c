/* SPDX-License-Identifier: MIT */
/*
 * hp-trace - replay an allocation script and print the heap after every
 * step, so that a run under real glibc and a run under libheapprof.so can be
 * compared line for line.
 *
 * Usage: hp-trace SCRIPT      (or - for stdin)
 *
 * Each step prints the operation, the result (a brk chunk as its offset
 * from the break at start-up, an mmap chunk as "mmap" with its offset in
 * its page, a chunk of a brk-failure region as its offset from the first
 * such chunk), malloc_usable_size, the break's offset, and every mallinfo2
 * field. Nothing here allocates except the operations themselves: output
 * goes through a static buffer and write(2).
 *
 * Script lines (SLOT is 0..4095, sizes accept 0x and k/m suffixes):
 *   m SLOT SIZE          malloc           c SLOT N SIZE     calloc
 *   f SLOT               free             r SLOT SIZE       realloc
 *   R SLOT N SIZE        reallocarray     a SLOT ALIGN SIZE memalign
 *   A SLOT ALIGN SIZE    aligned_alloc    p SLOT ALIGN SIZE posix_memalign
 *   v SLOT SIZE          valloc           V SLOT SIZE       pvalloc
 *   t PAD                malloc_trim      o NAME VALUE      mallopt
 *   s INCR               sbrk (a foreign user of the break)
 *   b                    map a page at the break so brk fails
 *   x SLOT SIZE          write the chunk's usable bytes, check contents survive
 *   w SLOT OFFSET        write a byte at OFFSET into the slot's last chunk,
 *                        freed or not: a deliberate bug, for the self-checks
 *   n COUNT SIZE [STEP]  malloc COUNT chunks into the next free slots
 *   F FIRST LAST [STEP]  free a range of slots
 *   random SEED STEPS    a seeded random mix of all of the above
 *   stats                malloc_stats() to stdout's place (stderr merged)
 *   {  ...  }            run the lines between in a new thread, which then
 *                        stays alive (its arena attached) until "reap"
 *   reap                 let every such thread exit, one at a time in the
 *                        order they were made (so arenas reach the free
 *                        list in a known order), and join them
 *   # ...                comment
 *
 * A chunk of a thread arena prints as its offset from its heap's 64 MiB-
 * aligned start ("theap+0x8d0"): deterministic, unlike the heap's address.
 *
 * If the allocator aborts (a self-check that failed, glibc's corruption
 * messages), what was printed so far is written out, then the line
 * "hp-trace: aborted at line N" (and the random seed and step).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdarg.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NSLOTS 4096

static void *slot[NSLOTS];
static void *last[NSLOTS]; /* the slot's last chunk, even once freed */
static size_t slot_size[NSLOTS];
static uintptr_t brk0;
static uintptr_t fb_anchor; /* first chunk seen in a brk-failure region */
static char out[1 << 16];
static size_t outn;

static void
flush_out(void)
{
	size_t off = 0;

	while (off < outn) {
		ssize_t w = write(1, out + off, outn - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	outn = 0;
}

static void __attribute__((format(printf, 1, 2)))
say(const char *fmt, ...)
{
	va_list ap;
	int n;

	if (outn > sizeof(out) - 512)
		flush_out();
	va_start(ap, fmt);
	n = vsnprintf(out + outn, sizeof(out) - outn, fmt, ap);
	va_end(ap);
	if (n > 0)
		outn += (size_t)n;
}

static void
die(const char *what)
{
	flush_out();
	fprintf(stderr, "hp-trace: %s\n", what);
	exit(2);
}

static size_t
parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);

	if (end == s)
		die("bad number");
	if (*end == 'k' || *end == 'K')
		v <<= 10;
	else if (*end == 'm' || *end == 'M')
		v <<= 20;
	return (size_t)v;
}

static unsigned
parse_slot(const char *s)
{
	size_t v = parse_size(s);

	if (v >= NSLOTS)
		die("slot out of range");
	return (unsigned)v;
}

static int
is_mmapped(void *p)
{
	/* The M bit of the chunk header (glibc's layout, which heapprof keeps). */
	return (((size_t *)p)[-1] & 2) != 0;
}

static void
describe(void *p)
{
	uintptr_t a = (uintptr_t)p, cur = (uintptr_t)sbrk(0);

	if (p == NULL) {
		say(" = NULL errno=%d", errno);
		return;
	}
	if (is_mmapped(p)) {
		say(" = mmap+%#lx", (unsigned long)(a & 4095));
	} else if (((size_t *)p)[-1] & 4) {
		say(" = theap+%#lx", (unsigned long)(a & ((64UL << 20) - 1)));
	} else if (a >= brk0 && a < cur) {
		say(" = brk+%#lx", (unsigned long)(a - brk0));
	} else {
		if (fb_anchor == 0)
			fb_anchor = a;
		say(" = fb%+ld", (long)(a - fb_anchor));
	}
	say(" usable=%zu", malloc_usable_size(p));
}

static void
state(void)
{
	struct mallinfo2 mi = mallinfo2();

	say(" | brk+%#lx arena=%zu ordblks=%zu smblks=%zu hblks=%zu hblkhd=%zu "
	    "usmblks=%zu fsmblks=%zu uordblks=%zu fordblks=%zu keepcost=%zu\n",
	    (unsigned long)((uintptr_t)sbrk(0) - brk0), mi.arena, mi.ordblks, mi.smblks,
	    mi.hblks, mi.hblkhd, mi.usmblks, mi.fsmblks, mi.uordblks, mi.fordblks, mi.keepcost);
}

static void
fill(unsigned s)
{
	if (slot[s])
		memset(slot[s], (int)(s * 7 + 1), slot_size[s]);
}

static void
check(unsigned s, size_t n)
{
	unsigned char *p = slot[s];

	for (size_t i = 0; i < n && p; i++)
		if (p[i] != (unsigned char)(s * 7 + 1)) {
			say(" CONTENT-LOST@%zu", i);
			return;
		}
}

static int
mallopt_param(const char *name)
{
	static const struct {
		const char *name;
		int param;
	} params[] = {
		{ "mxfast", M_MXFAST },		    { "trim_threshold", M_TRIM_THRESHOLD },
		{ "top_pad", M_TOP_PAD },	    { "mmap_threshold", M_MMAP_THRESHOLD },
		{ "mmap_max", M_MMAP_MAX },	    { "check_action", M_CHECK_ACTION },
		{ "perturb", M_PERTURB },	    { "arena_test", M_ARENA_TEST },
		{ "arena_max", M_ARENA_MAX },	    { "unknown", 12345 },
	};
	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++)
		if (strcmp(params[i].name, name) == 0)
			return params[i].param;
	die("unknown mallopt name");
	return 0;
}

static void
do_free(unsigned s)
{
	free(slot[s]);
	slot[s] = NULL;
	slot_size[s] = 0;
}

static void
store(unsigned s, void *p, size_t usable_req)
{
	if (p)
		last[s] = p;
	slot[s] = p;
	slot_size[s] = p ? usable_req : 0;
	if (p)
		fill(s);
}

static unsigned
free_slot(void)
{
	for (unsigned s = 0; s < NSLOTS; s++)
		if (!slot[s])
			return s;
	die("out of slots");
	return 0;
}

/* One operation; argv-style fields. */
static void run_random(unsigned long seed, unsigned long steps);

static void
op(int argc, char **argv)
{
	const char *o = argv[0];
	unsigned s;
	void *p;

	errno = 0;
	say("%s", o);
	for (int i = 1; i < argc; i++)
		say(" %s", argv[i]);
	if (!strcmp(o, "m") && argc == 3) {
		s = parse_slot(argv[1]);
		p = malloc(parse_size(argv[2]));
		describe(p);
		store(s, p, parse_size(argv[2]));
	} else if (!strcmp(o, "c") && argc == 4) {
		size_t n = parse_size(argv[2]), sz = parse_size(argv[3]);
		s = parse_slot(argv[1]);
		p = calloc(n, sz);
		describe(p);
		if (p) {
			size_t bytes = n * sz;
			for (size_t i = 0; i < bytes; i++)
				if (((unsigned char *)p)[i]) {
					say(" NOT-ZERO@%zu", i);
					break;
				}
		}
		store(s, p, p ? n * sz : 0);
	} else if (!strcmp(o, "f") && argc == 2) {
		do_free(parse_slot(argv[1]));
	} else if ((!strcmp(o, "r") && argc == 3) || (!strcmp(o, "R") && argc == 4)) {
		size_t sz = parse_size(argv[argc - 1]), keep;
		s = parse_slot(argv[1]);
		keep = slot_size[s] < sz ? slot_size[s] : sz;
		if (o[0] == 'r') {
			p = realloc(slot[s], sz);
		} else {
			size_t n = parse_size(argv[2]);
			p = reallocarray(slot[s], n, sz);
			sz = n * sz;
		}
		describe(p);
		if (p || sz == 0) {
			slot[s] = p;
			check(s, keep);
			slot_size[s] = p ? sz : 0;
			fill(s);
		}
	} else if ((!strcmp(o, "a") || !strcmp(o, "A") || !strcmp(o, "p")) && argc == 4) {
		size_t al = parse_size(argv[2]), sz = parse_size(argv[3]);
		s = parse_slot(argv[1]);
		if (o[0] == 'p') {
			void *q = (void *)0x1234;
			int r = posix_memalign(&q, al, sz);
			say(" ret=%d", r);
			p = r == 0 ? q : NULL;
			if (r != 0 && q != (void *)0x1234)
				say(" MEMPTR-CHANGED");
		} else {
			p = o[0] == 'a' ? memalign(al, sz) : aligned_alloc(al, sz);
		}
		describe(p);
		if (p && al && ((uintptr_t)p & (al - 1)) && !(al & (al - 1)))
			say(" MISALIGNED");
		store(s, p, sz);
	} else if ((!strcmp(o, "v") || !strcmp(o, "V")) && argc == 3) {
		size_t sz = parse_size(argv[2]);
		s = parse_slot(argv[1]);
		p = o[0] == 'v' ? valloc(sz) : pvalloc(sz);
		describe(p);
		if (p && ((uintptr_t)p & 4095))
			say(" MISALIGNED");
		store(s, p, sz);
	} else if (!strcmp(o, "t") && argc == 2) {
		say(" = %d", malloc_trim(parse_size(argv[1])));
	} else if (!strcmp(o, "o") && argc == 3) {
		say(" = %d", mallopt(mallopt_param(argv[1]), (int)strtol(argv[2], NULL, 0)));
	} else if (!strcmp(o, "s") && argc == 2) {
		void *r = sbrk((intptr_t)strtol(argv[1], NULL, 0));
		say(" = %s", r == (void *)-1 ? "fail" : "ok");
	} else if (!strcmp(o, "b") && argc == 1) {
		uintptr_t at = ((uintptr_t)sbrk(0) + 4095) & ~(uintptr_t)4095;
		void *r = mmap((void *)at, 4096, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		say(" = %s", r == (void *)at ? "blocked" : "not-blocked");
	} else if (!strcmp(o, "x") && argc == 2) {
		s = parse_slot(argv[1]);
		if (slot[s]) {
			size_t u = malloc_usable_size(slot[s]);
			memset(slot[s], 0xa5, u);
			say(" usable=%zu", u);
			slot_size[s] = 0;
		}
	} else if (!strcmp(o, "w") && argc == 3) {
		s = parse_slot(argv[1]);
		if (last[s])
			((unsigned char *)last[s])[parse_size(argv[2])] ^= 0xff;
	} else if (!strcmp(o, "n") && (argc == 3 || argc == 4)) {
		size_t count = parse_size(argv[1]), sz = parse_size(argv[2]);
		size_t step = argc == 4 ? parse_size(argv[3]) : 0;
		say("\n");
		for (size_t i = 0; i < count; i++) {
			s = free_slot();
			say("  m %u %zu", s, sz + i * step);
			p = malloc(sz + i * step);
			describe(p);
			store(s, p, sz + i * step);
			state();
		}
		return;
	} else if (!strcmp(o, "F") && (argc == 3 || argc == 4)) {
		unsigned a = parse_slot(argv[1]), b = parse_slot(argv[2]);
		unsigned step = argc == 4 ? parse_slot(argv[3]) : 1;
		say("\n");
		for (unsigned i = a; i <= b; i += step ? step : 1) {
			say("  f %u", i);
			do_free(i);
			state();
		}
		return;
	} else if (!strcmp(o, "random") && argc == 3) {
		say("\n");
		run_random(strtoul(argv[1], NULL, 0), strtoul(argv[2], NULL, 0));
		return;
	} else if (!strcmp(o, "stats") && argc == 1) {
		say("\n");
		flush_out();
		fflush(stdout);
		malloc_stats();
		return;
	} else {
		die("bad script line");
	}
	state();
}

static unsigned long rng;

/* Where the script is, for the report of an abort. */
static volatile unsigned long at_line, at_seed, at_step;
static volatile int in_random;

static void
on_abort(int sig)
{
	char buf[128];
	int n;

	(void)sig;
	flush_out();
	if (in_random)
		n = snprintf(buf, sizeof(buf), "\nhp-trace: aborted at line %lu, random seed %lu step %lu\n",
			     at_line, at_seed, at_step);
	else
		n = snprintf(buf, sizeof(buf), "\nhp-trace: aborted at line %lu\n", at_line);
	if (n > 0 && write(1, buf, (size_t)n) < 0)
		return;
	/* returning lets abort() go on: SA_RESETHAND restored the default */
}

static unsigned long
next_rand(void)
{
	rng = rng * 6364136223846793005UL + 1442695040888963407UL;
	return rng >> 33;
}

static size_t
rand_size(void)
{
	unsigned long r = next_rand() % 100;

	if (r < 50)
		return next_rand() % 128;
	if (r < 80)
		return 128 + next_rand() % 1024;
	if (r < 93)
		return 1024 + next_rand() % 16384;
	if (r < 98)
		return 16384 + next_rand() % 131072;
	return 100000 + next_rand() % 400000;
}

static void
run_random(unsigned long seed, unsigned long steps)
{
	char a1[32], a2[32], a3[32];
	char *argv[4];

	say("# seed %lu\n", seed);
	rng = seed;
	at_seed = seed;
	in_random = 1;
	for (unsigned long i = 0; i < steps; i++) {
		unsigned long r = next_rand() % 100;

		at_step = i;
		unsigned s = (unsigned)(next_rand() % 512);

		argv[1] = a1;
		argv[2] = a2;
		argv[3] = a3;
		snprintf(a1, sizeof(a1), "%u", s);
		snprintf(a2, sizeof(a2), "%zu", rand_size());
		if (r < 40) {
			argv[0] = slot[s] ? "f" : "m";
			op(slot[s] ? 2 : 3, argv);
		} else if (r < 60) {
			argv[0] = "m";
			if (slot[s])
				do_free(s);
			op(3, argv);
		} else if (r < 75) {
			argv[0] = "r";
			op(3, argv);
		} else if (r < 82) {
			argv[0] = "c";
			if (slot[s])
				do_free(s);
			snprintf(a2, sizeof(a2), "%lu", 1 + next_rand() % 8);
			snprintf(a3, sizeof(a3), "%zu", rand_size() / 8);
			op(4, argv);
		} else if (r < 86) {
			argv[0] = "a";
			if (slot[s])
				do_free(s);
			snprintf(a2, sizeof(a2), "%lu", 16UL << (next_rand() % 9));
			snprintf(a3, sizeof(a3), "%zu", rand_size());
			op(4, argv);
		} else if (r < 87) {
			argv[0] = "t";
			snprintf(a1, sizeof(a1), "%lu", next_rand() % 2 ? 0UL : 65536UL);
			op(2, argv);
		} else {
			/* free a run of slots: builds holes */
			unsigned n = (unsigned)(next_rand() % 16);
			for (unsigned k = 0; k < n; k++) {
				unsigned t = (s + k) % 512;
				if (slot[t]) {
					snprintf(a1, sizeof(a1), "%u", t);
					argv[0] = "f";
					op(2, argv);
				}
			}
		}
	}
	in_random = 0;
}

/* ---- threads ---- */

#define MAX_THREADS 64

struct worker {
	pthread_t tid;
	char *lines[512];
	int nlines;
	int release;
};

static struct worker workers[MAX_THREADS];
static int nworkers;
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static int block_done;

static void run_line(char *l);

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < w->nlines; i++)
		run_line(w->lines[i]);
	pthread_mutex_lock(&park_lock);
	block_done = 1;
	pthread_cond_broadcast(&park_cond);
	while (!w->release)
		pthread_cond_wait(&park_cond, &park_lock);
	pthread_mutex_unlock(&park_lock);
	return NULL;
}

static void
spawn(struct worker *w)
{
	say("thread %d {\n", (int)(w - workers));
	block_done = 0;
	if (pthread_create(&w->tid, NULL, worker_main, w) != 0)
		die("pthread_create");
	pthread_mutex_lock(&park_lock);
	while (!block_done)
		pthread_cond_wait(&park_cond, &park_lock);
	pthread_mutex_unlock(&park_lock);
	say("}");
	state();
}

static void
reap(void)
{
	for (int i = 0; i < nworkers; i++) {
		pthread_mutex_lock(&park_lock);
		workers[i].release = 1;
		pthread_cond_broadcast(&park_cond);
		pthread_mutex_unlock(&park_lock);
		pthread_join(workers[i].tid, NULL);
	}
	nworkers = 0;
	say("reap");
	state();
}

static void
run_line(char *l)
{
	char *fields[8];
	int nf = 0;
	char *save = NULL;

	for (char *t = strtok_r(l, " \t", &save); t && nf < 8; t = strtok_r(NULL, " \t", &save))
		fields[nf++] = t;
	if (nf == 0 || fields[0][0] == '#')
		return;
	op(nf, fields);
}

int
main(int argc, char **argv)
{
	brk0 = (uintptr_t)sbrk(0);
	if (argc != 2)
		die("usage: hp-trace SCRIPT");
	/* Read the whole script before the first allocation is traced: stdio
	 * allocates its buffer, and that must not land inside the trace. The
	 * script is read with a stack buffer via read(2). */
	static char script[1 << 20];
	size_t n = 0;
	int fd = strcmp(argv[1], "-") ? open(argv[1], 0) : 0;
	if (fd < 0)
		die("cannot open script");
	for (;;) {
		ssize_t r = read(fd, script + n, sizeof(script) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	script[n] = '\0';

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_abort;
	sa.sa_flags = SA_RESETHAND;
	sigaction(SIGABRT, &sa, NULL);

	struct worker *cur = NULL;
	for (char *l = script, *nl; l && *l; l = nl) {
		nl = strchr(l, '\n');
		if (nl)
			*nl++ = '\0';
		at_line++;
		if (strcmp(l, "{") == 0) {
			if (cur || nworkers == MAX_THREADS)
				die("bad thread block");
			cur = &workers[nworkers++];
			cur->nlines = 0;
			cur->release = 0;
		} else if (strcmp(l, "}") == 0) {
			if (!cur)
				die("} without {");
			spawn(cur);
			cur = NULL;
		} else if (cur) {
			if (cur->nlines == 512)
				die("thread block too long");
			cur->lines[cur->nlines++] = l;
		} else if (strcmp(l, "reap") == 0) {
			reap();
		} else {
			run_line(l);
		}
	}
	if (nworkers)
		reap();
	flush_out();
	return 0;
}
