/* SPDX-License-Identifier: MIT */
/*
 * tune.c - glibc 2.36's malloc parameters and their tunables (see tune.h).
 *
 * Runs from the first allocation, possibly before libc's own start-up: it
 * reads ld.so's envp (see hp_tune_init), procfs and sysfs with raw system
 * calls, never allocates, never uses stdio or getenv.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "heap.h"
#include "log.h"
#include "os.h"
#include "tune.h"

struct hp_params hp_mp;

/* The malloc tunables of glibc 2.36 (elf/dl-tunables.list), in the order
 * ptmalloc_init() applies them. */
enum {
	T_TOP_PAD,
	T_PERTURB,
	T_MMAP_THRESHOLD,
	T_TRIM_THRESHOLD,
	T_MMAP_MAX,
	T_ARENA_MAX,
	T_ARENA_TEST,
	T_TCACHE_MAX,
	T_TCACHE_COUNT,
	T_TCACHE_UNSORTED_LIMIT,
	T_MXFAST,
	T_HUGETLB,
	T_CHECK, /* accepted and ignored: it needs libc_malloc_debug.so */
	T_COUNT
};

struct tunable {
	const char *name;  /* after "glibc.malloc." */
	const char *alias; /* environment alias or NULL */
	bool is_signed;    /* INT_32 (signed compare) or SIZE_T */
	int64_t min, max;
	bool initialized;
	int64_t value;
};

#define SZ_MAX ((int64_t)-1) /* SIZE_MAX as a tunable_num_t */

static struct tunable tunables[T_COUNT];

static void
tunables_reset(void)
{
	static const struct tunable defaults[T_COUNT] = {
		[T_TOP_PAD] = { "top_pad", "MALLOC_TOP_PAD_", false, 0, SZ_MAX, false, 0 },
		[T_PERTURB] = { "perturb", "MALLOC_PERTURB_", true, 0, 0xff, false, 0 },
		[T_MMAP_THRESHOLD] = { "mmap_threshold", "MALLOC_MMAP_THRESHOLD_", false, 0,
				       SZ_MAX, false, 0 },
		[T_TRIM_THRESHOLD] = { "trim_threshold", "MALLOC_TRIM_THRESHOLD_", false, 0,
				       SZ_MAX, false, 0 },
		[T_MMAP_MAX] = { "mmap_max", "MALLOC_MMAP_MAX_", true, 0, INT32_MAX, false, 0 },
		[T_ARENA_MAX] = { "arena_max", "MALLOC_ARENA_MAX", false, 1, SZ_MAX, false, 0 },
		[T_ARENA_TEST] = { "arena_test", "MALLOC_ARENA_TEST", false, 1, SZ_MAX, false,
				   0 },
		[T_TCACHE_MAX] = { "tcache_max", NULL, false, 0, SZ_MAX, false, 0 },
		[T_TCACHE_COUNT] = { "tcache_count", NULL, false, 0, SZ_MAX, false, 0 },
		[T_TCACHE_UNSORTED_LIMIT] = { "tcache_unsorted_limit", NULL, false, 0, SZ_MAX,
					      false, 0 },
		[T_MXFAST] = { "mxfast", NULL, false, 0, SZ_MAX, false, 0 },
		[T_HUGETLB] = { "hugetlb", NULL, false, 0, SZ_MAX, false, 0 },
		[T_CHECK] = { "check", "MALLOC_CHECK_", true, 0, 3, false, 0 },
	};

	memcpy(tunables, defaults, sizeof(tunables));
}

/* the environment lines read (hp_tune_lines): copies, as the program may
 * write over its environment's strings later (setproctitle does) */
static const char *lines[HP_TUNE_LINES_MAX];
static size_t nlines, text_len;
static char text[HP_TUNE_LINES_BYTES];

void
hp_tune_reset(void)
{
	nlines = text_len = 0;
	hp_mp = (struct hp_params){
		.top_pad = HP_DEFAULT_TOP_PAD,
		.n_mmaps_max = HP_DEFAULT_MMAP_MAX,
		.mmap_threshold = HP_DEFAULT_MMAP_THRESHOLD,
		.trim_threshold = HP_DEFAULT_TRIM_THRESHOLD,
		.arena_test = 8 * 1, /* NARENAS_FROM_NCORES (1) */
		.tcache_count = HP_TCACHE_FILL_COUNT,
		.tcache_bins = HP_TCACHE_MAX_BINS,
		.tcache_max_bytes = (HP_TCACHE_MAX_BINS - 1) * 16 + 32 - 8,
		.tcache_unsorted_limit = 0,
		.max_fast = (HP_DEFAULT_MXFAST + sizeof(size_t)) & ~(size_t)15,
	};
	hp_mp.pagesize = getauxval(AT_PAGESZ);
	if (hp_mp.pagesize == 0)
		hp_mp.pagesize = 4096;
	tunables_reset();
}

uint64_t
hp_tune_strtoul(const char *s, const char **end)
{
	uint64_t result = 0;
	bool positive = true;
	unsigned base = 10, max_digit = 9;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '-') {
		positive = false;
		s++;
	} else if (*s == '+') {
		s++;
	}
	if (*s < '0' || *s > '9') {
		if (end)
			*end = s;
		return 0;
	}
	if (*s == '0') {
		if (s[1] == 'x' || s[1] == 'X') {
			base = 16;
			s += 2;
		} else {
			base = 8;
			max_digit = 7;
		}
	}
	for (;;) {
		unsigned digit;

		if (*s >= '0' && *s <= (char)('0' + max_digit))
			digit = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			digit = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			digit = (unsigned)(*s - 'A' + 10);
		else
			break;
		if (result >= (UINT64_MAX - digit) / base) {
			if (end)
				*end = s;
			return UINT64_MAX;
		}
		result = result * base + digit;
		s++;
	}
	if (end)
		*end = s;
	return positive ? result : -result;
}

/* glibc's tunable_initialize + do_tunable_update_val: out-of-range values
 * leave the tunable as it was. */
static void
tunable_set(struct tunable *t, const char *value)
{
	int64_t v = (int64_t)hp_tune_strtoul(value, NULL);
	bool in_range;

	if (t->is_signed)
		in_range = v >= t->min && v <= t->max;
	else
		in_range = (uint64_t)v >= (uint64_t)t->min && (uint64_t)v <= (uint64_t)t->max;
	if (!in_range)
		return;
	t->value = v;
	t->initialized = true;
}

/* glibc's tunable_is_name: name must be followed by '='. */
static bool
is_name(const char *orig, const char *s)
{
	for (; *orig != '\0' && *s != '\0'; s++, orig++)
		if (*orig != *s)
			return false;
	return *orig == '\0' && *s == '=';
}

/* parse_tunables() of elf/dl-tunables.c for GLIBC_TUNABLES's value. Only
 * the glibc.malloc.* names concern the allocator. */
static void
parse_tunables(const char *p)
{
	static const char prefix[] = "glibc.malloc.";

	while (*p) {
		size_t len = 0, vlen = 0;
		const char *name = p, *value;

		while (p[len] != '=' && p[len] != ':' && p[len] != '\0')
			len++;
		if (p[len] == '\0')
			return;
		if (p[len] == ':') {
			p += len + 1;
			continue;
		}
		value = p + len + 1;
		while (value[vlen] != ':' && value[vlen] != '\0')
			vlen++;
		if (strncmp(name, prefix, sizeof(prefix) - 1) == 0) {
			for (int i = 0; i < T_COUNT; i++) {
				if (!is_name(tunables[i].name, name + sizeof(prefix) - 1))
					continue;
				/* _dl_strtoul stops at the ':' ending the value. */
				tunable_set(&tunables[i], value);
				break;
			}
		}
		p = value + vlen;
		if (*p)
			p++;
	}
}

static void
do_set_mxfast(size_t v, int *res)
{
	if (v <= HP_MAX_FAST_SIZE) {
		hp_mp.max_fast = v <= 15 - sizeof(size_t) ? 32 / 2
							  : (v + sizeof(size_t)) & ~(size_t)15;
		*res = 1;
	} else {
		*res = 0;
	}
}

static size_t
request2size(size_t req)
{
	return req + 8 + 15 < 32 ? 32 : (req + 8 + 15) & ~(size_t)15;
}

static int
do_set_tcache_max(size_t v)
{
	if (v > (HP_TCACHE_MAX_BINS - 1) * 16 + 32 - 8)
		return 0;
	hp_mp.tcache_max_bytes = v;
	hp_mp.tcache_bins = (request2size(v) - 32 + 15) / 16 + 1;
	return 1;
}

static int
thp_mode_is_madvise(void)
{
	char buf[32];
	long n = hp_os_read_file("/sys/kernel/mm/transparent_hugepage/enabled", buf,
				 sizeof(buf) - 1);

	return n == 23 && memcmp(buf, "always [madvise] never\n", 23) == 0;
}

static size_t
read_decimal(const char *s)
{
	size_t r = 0;

	for (; *s >= '0' && *s <= '9'; s++)
		r = r * 10 + (size_t)(*s - '0');
	return r;
}

static int
hugepage_flags(size_t size)
{
	return MAP_HUGETLB | (__builtin_ctzll(size) << MAP_HUGE_SHIFT);
}

/* __malloc_hugepage_config(): the default huge page size from
 * /proc/meminfo, or the requested size if the kernel offers it. */
static void
hugepage_config(size_t requested)
{
	hp_mp.hp_pagesize = 0;
	hp_mp.hp_flags = 0;
	if (requested == 0) {
		char buf[4096];
		long n = hp_os_read_file("/proc/meminfo", buf, sizeof(buf) - 1);
		const char *s;
		size_t kb = 0;

		if (n <= 0)
			return;
		buf[n] = '\0';
		s = strstr(buf, "Hugepagesize:");
		if (!s)
			return;
		s += sizeof("Hugepagesize:") - 1;
		for (; (*s >= '0' && *s <= '9') || *s == ' '; s++)
			if (*s != ' ')
				kb = kb * 10 + (size_t)(*s - '0');
		hp_mp.hp_pagesize = kb * 1024;
		if (hp_mp.hp_pagesize)
			hp_mp.hp_flags = hugepage_flags(hp_mp.hp_pagesize);
		return;
	}
	long fd = syscall(SYS_openat, AT_FDCWD, "/sys/kernel/mm/hugepages",
			  O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	for (;;) {
		char dents[1024];
		long n = syscall(SYS_getdents64, fd, dents, sizeof(dents));

		if (n <= 0)
			break;
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(dents + off);
			off += d->d_reclen;
			if (strncmp(d->d_name, "hugepages-", 10) != 0)
				continue;
			size_t size = read_decimal(d->d_name + 10) * 1024;
			if (size == requested) {
				hp_mp.hp_pagesize = size;
				hp_mp.hp_flags = hugepage_flags(size);
				syscall(SYS_close, fd);
				return;
			}
		}
	}
	syscall(SYS_close, fd);
}

/* ptmalloc_init's TUNABLE_GET sequence: callbacks run for set tunables
 * only, in this order, without mallopt's consolidation. */
static void
apply_tunables(void)
{
	struct tunable *t = tunables;
	int ignored;

	if (t[T_TOP_PAD].initialized) {
		hp_mp.top_pad = (size_t)t[T_TOP_PAD].value;
		hp_mp.no_dyn_threshold = 1;
	}
	if (t[T_PERTURB].initialized)
		hp_mp.perturb_byte = (int32_t)t[T_PERTURB].value;
	if (t[T_MMAP_THRESHOLD].initialized) {
		hp_mp.mmap_threshold = (size_t)t[T_MMAP_THRESHOLD].value;
		hp_mp.no_dyn_threshold = 1;
	}
	if (t[T_TRIM_THRESHOLD].initialized) {
		hp_mp.trim_threshold = (size_t)t[T_TRIM_THRESHOLD].value;
		hp_mp.no_dyn_threshold = 1;
	}
	if (t[T_MMAP_MAX].initialized) {
		hp_mp.n_mmaps_max = (int32_t)t[T_MMAP_MAX].value;
		hp_mp.no_dyn_threshold = 1;
	}
	if (t[T_ARENA_MAX].initialized)
		hp_mp.arena_max = (size_t)t[T_ARENA_MAX].value;
	if (t[T_ARENA_TEST].initialized)
		hp_mp.arena_test = (size_t)t[T_ARENA_TEST].value;
	if (t[T_TCACHE_MAX].initialized)
		do_set_tcache_max((size_t)t[T_TCACHE_MAX].value);
	if (t[T_TCACHE_COUNT].initialized && (size_t)t[T_TCACHE_COUNT].value <= HP_MAX_TCACHE_COUNT)
		hp_mp.tcache_count = (size_t)t[T_TCACHE_COUNT].value;
	if (t[T_TCACHE_UNSORTED_LIMIT].initialized)
		hp_mp.tcache_unsorted_limit = (size_t)t[T_TCACHE_UNSORTED_LIMIT].value;
	if (t[T_MXFAST].initialized)
		do_set_mxfast((size_t)t[T_MXFAST].value, &ignored);
	if (t[T_HUGETLB].initialized) {
		size_t v = (size_t)t[T_HUGETLB].value;

		if (v == 1) {
			if (thp_mode_is_madvise()) {
				char buf[32];
				long n = hp_os_read_file(
					"/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", buf,
					sizeof(buf) - 1);
				if (n > 0) {
					buf[n] = '\0';
					hp_mp.thp_pagesize = read_decimal(buf);
				}
			}
		} else if (v >= 2) {
			hugepage_config(v == 2 ? 0 : v);
		}
	}
	if (hp_mp.hp_pagesize > 0)
		hp_mp.always_fail_morecore = true;
}

static void
line_read(const char *e)
{
	size_t len = strlen(e) + 1;

	if (nlines < HP_TUNE_LINES_MAX && text_len + len <= sizeof(text)) {
		memcpy(text + text_len, e, len);
		lines[nlines++] = text + text_len;
		text_len += len;
	}
}

void
hp_tune_apply_env(char *const *envp, size_t count)
{
	nlines = text_len = 0;
	for (size_t i = 0; i < count; i++) {
		const char *e = envp[i];
		const char *eq = strchr(e, '=');

		if (!eq)
			continue;
		if (is_name("GLIBC_TUNABLES", e)) {
			parse_tunables(eq + 1);
			line_read(e);
			continue;
		}
		for (int k = 0; k < T_COUNT; k++) {
			if (tunables[k].initialized || !tunables[k].alias)
				continue;
			if (is_name(tunables[k].alias, e)) {
				tunable_set(&tunables[k], eq + 1);
				line_read(e);
				break;
			}
		}
	}
	apply_tunables();
}

size_t
hp_tune_lines(const char *const **out)
{
	*out = lines;
	return nlines;
}

/* ld.so's view of the environment: the initial envp array on the stack,
 * found through __libc_stack_end (which ld.so points at argc before any
 * allocation can happen). Not /proc/self/environ: ld.so cuts GLIBC_TUNABLES
 * into pieces in place and keeps a copy in envp; not environ, which libc
 * sets up only later and the program may change. */
extern void *__libc_stack_end;

void
hp_tune_configure(char *const *envp, bool secure)
{
	size_t count = 0;

	hp_tune_reset();
	hp_mp.secure = secure;
	/* Secure mode: glibc's malloc tunables are all SXID_IGNORE or
	 * SXID_ERASE, so none is read (elf/dl-tunables.list). */
	if (secure || envp == NULL)
		return;
	while (envp[count])
		count++;
	hp_tune_apply_env(envp, count);
}

char *const *
hp_initial_envp(void)
{
	extern char **environ;

	if (__libc_stack_end) {
		long *sp = __libc_stack_end;
		return (char *const *)(sp + 1 + sp[0] + 1);
	}
	return environ;
}

void
hp_tune_init(void)
{
	hp_tune_configure(hp_initial_envp(), getauxval(AT_SECURE) != 0);
}

int
hp_tune_mallopt_locked(int param, int value)
{
	int res = 1;

	HP_ASSERT(hp_mstate_held(&hp_main_arena), NULL, 10);
	switch (param) {
	case M_MXFAST:
		do_set_mxfast((size_t)value, &res);
		break;
	case M_TRIM_THRESHOLD:
		hp_mp.trim_threshold = (size_t)value;
		hp_mp.no_dyn_threshold = 1;
		break;
	case M_TOP_PAD:
		hp_mp.top_pad = (size_t)value;
		hp_mp.no_dyn_threshold = 1;
		break;
	case M_MMAP_THRESHOLD:
		hp_mp.mmap_threshold = (size_t)value;
		hp_mp.no_dyn_threshold = 1;
		break;
	case M_MMAP_MAX:
		hp_mp.n_mmaps_max = value;
		hp_mp.no_dyn_threshold = 1;
		break;
	case M_CHECK_ACTION:
		break;
	case M_PERTURB:
		hp_mp.perturb_byte = value;
		break;
	case M_ARENA_TEST:
		if (value > 0)
			hp_mp.arena_test = (size_t)value;
		break;
	case M_ARENA_MAX:
		if (value > 0)
			hp_mp.arena_max = (size_t)value;
		break;
	default:
		break;
	}
	return res;
}

void
hp_tune_madvise_thp(void *p, size_t size)
{
	if (hp_mp.thp_pagesize == 0 || size < hp_mp.thp_pagesize)
		return;
	uintptr_t a = (uintptr_t)p, q = a & ~(uintptr_t)(hp_mp.pagesize - 1);
	size += a - q;
	hp_os_madvise((void *)q, size, MADV_HUGEPAGE);
}
