/* SPDX-License-Identifier: MIT */
/*
 * unwind.c - stack capture for allocation calls (see unwind.h).
 *
 * Runs inside malloc with the thread's guard up, in someone else's
 * process: no allocation on the hot path (the slow path takes arena
 * memory), no lock that can be held across anything but a few memory
 * operations (and those are try-locks: a busy lock means "ask
 * libunwind"), no call into the loader while holding one, and no read of
 * the stack outside the thread's own stack mapping.
 *
 * What libunwind 1.6 does, and so what this file must reproduce exactly:
 * unw_backtrace() walks with tdep_trace() (src/x86_64/Gtrace.c), which
 * classifies each frame once, from the .eh_frame row at (return address -
 * 1), as STANDARD (CFA = rsp|rbp + off, |off| < 2^28, return address at
 * CFA-8, rbp unchanged or saved at CFA + o with |o| < 2^14), as the last
 * frame (the row leaves the return address or rbp undefined), or as
 * something else (signal frames, expressions, no unwind info), where it
 * gives up and re-walks the stack with unw_step(). The walk stops at the
 * last frame, at a return address below 0x4000, or when the array is full.
 * This file handles STANDARD and last frames and sends every other capture
 * to unw_backtrace() whole, so that its result is libunwind's by
 * construction there.
 */
#include "config.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>

#include <alloca.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "selfmem.h"
#include "lock.h"
#include "log.h"
#include "os.h"
#include "unwind.h"

#define EXPORT __attribute__((visibility("default")))

static uintptr_t self_lo, self_hi;
static unsigned keep_depth = 64;
static bool check_on;
static char check_dir[256]; /* with the check: where the reports go, or "" (stderr) */

/* Why a capture went to libunwind (counted with the check on). */
enum fallback {
	FB_ARCH,       /* not x86-64 */
	FB_STACK,      /* the stack pointer is not on the thread's own stack */
	FB_READ,       /* a frame pointed outside the thread's stack */
	FB_NOINFO,     /* no module or no FDE for a return address */
	FB_SIGNAL,     /* a signal frame */
	FB_RULE,       /* a row libunwind's fast path does not take as STANDARD */
	FB_BUSY,       /* the module list was being replaced */
	FB_COUNT
};
static struct {
	unsigned long captures, compared, differ, repeated, fallbacks[FB_COUNT];
} stats;

static void
count(unsigned long *c)
{
	if (check_on)
		__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

#if defined(__x86_64__)

/* ---- rules ----
 *
 * A rule is one 64-bit word:
 *   bits 0-1   kind: RULE_STANDARD (0, the one the walk tests for),
 *              RULE_LAST or RULE_OTHER; RULE_NONE is "no rule (yet)"
 *   bit  2     the CFA is rsp + off (else rbp + off)
 *   bit  3     rbp is saved at CFA + rbp_off
 *   bits 4-19  generation (the table's contents die when a module goes)
 *   bits 20-34 rbp_off, signed (|rbp_off| < 2^14)
 *   bits 35-63 cfa_off, signed (|cfa_off| < 2^28)
 * RULE_OTHER carries the reason (enum fallback) in the offset field.
 */
#define RULE_STANDARD 0u
#define RULE_LAST 1u
#define RULE_OTHER 2u
#define RULE_NONE 3u
#define RULE_RSP (1u << 2)
#define RULE_RBP_SAVED (1u << 3)
#define GEN_MASK 0xffffu

static inline unsigned
rule_kind(uint64_t r)
{
	return (unsigned)(r & 3);
}

static inline unsigned
rule_gen(uint64_t r)
{
	return (unsigned)(r >> 4) & GEN_MASK;
}

static inline int64_t
rule_cfa_off(uint64_t r)
{
	return (int64_t)r >> 35;
}

static inline int64_t
rule_rbp_off(uint64_t r)
{
	return (int64_t)(r << 29) >> 49;
}

static uint64_t
make_rule(unsigned kind, bool rsp, bool rbp_saved, int64_t cfa_off, int64_t rbp_off)
{
	return (uint64_t)kind | (rsp ? RULE_RSP : 0) | (rbp_saved ? RULE_RBP_SAVED : 0) |
	       ((uint64_t)rbp_off & 0x7fff) << 20 | (uint64_t)cfa_off << 35;
}

static uint64_t
other_rule(enum fallback why)
{
	return make_rule(RULE_OTHER, false, false, why, 0);
}

/* ---- the rule table ----
 *
 * Open addressing, keyed by the lookup address (return address - 1);
 * readers take no lock. A slot's key word holds the address in bits 0-47
 * and a version in bits 48-63 that changes each time the slot is reused;
 * a writer claims a slot by swapping its key word to SLOT_BUSY, writes the
 * rule, then publishes the new key word. A reader accepts a rule only if
 * the key word was the same before and after it read the rule (a
 * sequence lock per slot) and its generation is current. Slots holding an
 * old generation are reused. A table more than half used is replaced by
 * one four times as big; replaced tables are never unmapped (a reader may
 * still be in one), which bounds the waste by a third of the largest.
 */
#define SLOT_BUSY UINT64_MAX
#define KEY_BITS 48
#define KEY_MASK ((1ULL << KEY_BITS) - 1)
#define PROBES 32

struct slot {
	uint64_t key;
	uint64_t rule;
};

struct rtable {
	uint64_t mask;
	unsigned shift;
	unsigned long used;
	struct slot slot[];
};

static struct rtable *rules;
static unsigned generation; /* low 16 bits are the rules' generation */
static int growing;

static inline size_t
slot_of(const struct rtable *t, uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> t->shift);
}

static struct rtable *
new_table(unsigned bits)
{
	size_t bytes = sizeof(struct rtable) + (sizeof(struct slot) << bits);
	struct rtable *t = hp_os_map(bytes, 0);

	if (t == HP_MAP_FAILED)
		return NULL;
	t->mask = (1ULL << bits) - 1;
	t->shift = 64 - bits;
	return t;
}

/* The rule for key in t, or RULE_NONE. */
static inline uint64_t
rule_get(const struct rtable *t, uint64_t key, unsigned gen)
{
	size_t i = slot_of(t, key);

	for (unsigned probe = 0; probe < PROBES; probe++, i = (i + 1) & t->mask) {
		const struct slot *s = &t->slot[i];
		uint64_t k = __atomic_load_n(&s->key, __ATOMIC_ACQUIRE);

		if (k == 0)
			return RULE_NONE;
		if ((k & KEY_MASK) == key && k != SLOT_BUSY) {
			uint64_t r = __atomic_load_n(&s->rule, __ATOMIC_RELAXED);

			__atomic_thread_fence(__ATOMIC_ACQUIRE);
			if (__atomic_load_n(&s->key, __ATOMIC_RELAXED) == k && rule_gen(r) == gen)
				return r;
		}
	}
	return RULE_NONE;
}

static void rule_put(struct rtable *t, uint64_t key, uint64_t r, unsigned gen);

/* Replace t by a table four times as big with t's current rules. */
static void
grow(struct rtable *t, unsigned gen)
{
	struct rtable *bigger;
	int expected = 0;

	if (!__atomic_compare_exchange_n(&growing, &expected, 1, false, __ATOMIC_ACQUIRE,
					 __ATOMIC_RELAXED))
		return;
	if (__atomic_load_n(&rules, __ATOMIC_ACQUIRE) == t &&
	    (bigger = new_table(64 - t->shift + 2)) != NULL) {
		for (size_t i = 0; i <= t->mask; i++) {
			uint64_t k = __atomic_load_n(&t->slot[i].key, __ATOMIC_ACQUIRE);
			uint64_t r;

			if (k == 0 || k == SLOT_BUSY)
				continue;
			r = rule_get(t, k & KEY_MASK, gen);
			if (r != RULE_NONE)
				rule_put(bigger, k & KEY_MASK, r, gen);
		}
		__atomic_store_n(&rules, bigger, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&growing, 0, __ATOMIC_RELEASE);
}

static void
rule_put(struct rtable *t, uint64_t key, uint64_t r, unsigned gen)
{
	size_t i = slot_of(t, key);

	if (key > KEY_MASK)
		return;
	for (unsigned probe = 0; probe < PROBES; probe++, i = (i + 1) & t->mask) {
		struct slot *s = &t->slot[i];
		uint64_t k = __atomic_load_n(&s->key, __ATOMIC_ACQUIRE);

		if (k == SLOT_BUSY)
			continue;
		if (k != 0 && rule_gen(__atomic_load_n(&s->rule, __ATOMIC_RELAXED)) == gen) {
			if ((k & KEY_MASK) == key)
				return; /* another thread was first */
			continue;
		}
		if (!__atomic_compare_exchange_n(&s->key, &k, SLOT_BUSY, false, __ATOMIC_ACQ_REL,
						 __ATOMIC_RELAXED))
			continue;
		__atomic_thread_fence(__ATOMIC_RELEASE);
		__atomic_store_n(&s->rule, r, __ATOMIC_RELAXED);
		__atomic_store_n(&s->key, (((k >> KEY_BITS) + 1) << KEY_BITS) | key,
				 __ATOMIC_RELEASE);
		if (k == 0 && (__atomic_add_fetch(&t->used, 1, __ATOMIC_RELAXED) * 2 > t->mask + 1))
			grow(t, gen);
		return;
	}
}

void
hp_unwind_flush(void)
{
	unsigned g = __atomic_add_fetch(&generation, 1, __ATOMIC_ACQ_REL);

	/* After 2^16 flushes the generation number comes round again: start
	 * an empty table so that no rule from back then can pass. */
	if ((g & GEN_MASK) == 0) {
		struct rtable *t = __atomic_load_n(&rules, __ATOMIC_ACQUIRE);
		struct rtable *fresh = t ? new_table(64 - t->shift) : NULL;

		if (fresh)
			__atomic_store_n(&rules, fresh, __ATOMIC_RELEASE);
	}
}

/* ---- modules ----
 *
 * The loaded objects' PT_LOAD ranges and .eh_frame_hdr, as of the
 * loader's counters (dlpi_adds, dlpi_subs). Only the slow path uses it:
 * it reads the counters (dl_iterate_phdr, no lock of ours held), rebuilds
 * the list when they moved, and copies out the one module it needs under
 * a try-lock.
 */
#define MOD_SEGS 8

struct module {
	unsigned nseg;
	uintptr_t seg[MOD_SEGS][2];
	uintptr_t hdr; /* .eh_frame_hdr, 0 if none */
};

struct modules {
	unsigned long long adds, subs;
	size_t n, cap;
	struct module m[];
};

static struct modules *mods;
static struct hp_mutex mods_lock = HP_MUTEX_INIT;

static int
read_counters(struct dl_phdr_info *info, size_t size, void *arg)
{
	unsigned long long *c = arg;

	if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
		c[0] = info->dlpi_adds;
		c[1] = info->dlpi_subs;
	}
	return 1;
}

static int
count_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)info;
	(void)size;
	++*(size_t *)arg;
	return 0;
}

static int
add_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct modules *ms = arg;
	struct module *m;

	if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
		ms->adds = info->dlpi_adds;
		ms->subs = info->dlpi_subs;
	}
	if (ms->n == ms->cap)
		return 1;
	m = &ms->m[ms->n];
	m->nseg = 0;
	m->hdr = 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t a = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && m->nseg < MOD_SEGS) {
			m->seg[m->nseg][0] = a;
			m->seg[m->nseg][1] = a + ph->p_memsz;
			m->nseg++;
		} else if (ph->p_type == PT_GNU_EH_FRAME) {
			m->hdr = a;
		}
	}
	if (m->nseg)
		ms->n++;
	return 0;
}

/* The segment of m holding [addr, addr+1), or NULL. */
static const uintptr_t *
segment_of(const struct module *m, uintptr_t addr)
{
	for (unsigned i = 0; i < m->nseg; i++)
		if (addr >= m->seg[i][0] && addr < m->seg[i][1])
			return m->seg[i];
	return NULL;
}

/* Copy into *out the module holding addr. Returns 0, or the reason it
 * could not (FB_NOINFO: no module; FB_BUSY: the list is in use). */
static int
module_for(uintptr_t addr, struct module *out)
{
	unsigned long long c[2] = { 0, 0 };
	struct modules *fresh = NULL;
	int ret = FB_NOINFO;

	dl_iterate_phdr(read_counters, c);
	if (!hp_mutex_trylock(&mods_lock))
		return FB_BUSY;
	if (mods == NULL || mods->adds != c[0] || mods->subs != c[1]) {
		size_t n = 0;

		hp_mutex_unlock(&mods_lock);
		dl_iterate_phdr(count_module, &n);
		n += 8;
		fresh = hp_selfmem_alloc(sizeof(*fresh) + n * sizeof(fresh->m[0]), 16, false);
		if (fresh == NULL)
			return FB_BUSY;
		fresh->n = 0;
		fresh->cap = n;
		fresh->adds = fresh->subs = 0;
		dl_iterate_phdr(add_module, fresh);
		if (!hp_mutex_trylock(&mods_lock)) {
			hp_selfmem_free(fresh);
			return FB_BUSY;
		}
		/* A module went away: its rules may describe whatever is
		 * mapped there next. */
		if (mods && mods->subs != fresh->subs)
			hp_unwind_flush();
		if (mods)
			hp_selfmem_free(mods);
		mods = fresh;
	}
	for (size_t i = 0; i < mods->n; i++)
		if (segment_of(&mods->m[i], addr)) {
			*out = mods->m[i];
			ret = 0;
			break;
		}
	hp_mutex_unlock(&mods_lock);
	return ret;
}

/* ---- reading .eh_frame ----
 *
 * Every read is bounded by the segment that holds the data, so a
 * malformed table gives "no rule", never a fault.
 */
struct cur {
	const uint8_t *p, *end;
	bool bad;
};

static uint64_t
get_bytes(struct cur *c, unsigned n, bool sign)
{
	uint64_t v = 0;

	if (c->bad || (size_t)(c->end - c->p) < n) {
		c->bad = true;
		return 0;
	}
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)c->p[i] << (8 * i);
	c->p += n;
	if (sign && n < 8 && (v >> (8 * n - 1)) & 1)
		v |= ~0ULL << (8 * n);
	return v;
}

static uint64_t
get_uleb(struct cur *c)
{
	uint64_t v = 0;
	unsigned shift = 0;

	while (!c->bad) {
		uint8_t b;

		if (c->p >= c->end) {
			c->bad = true;
			break;
		}
		b = *c->p++;
		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			break;
	}
	return v;
}

static int64_t
get_sleb(struct cur *c)
{
	uint64_t v = 0;
	unsigned shift = 0;
	uint8_t b = 0;

	while (!c->bad) {
		if (c->p >= c->end) {
			c->bad = true;
			break;
		}
		b = *c->p++;
		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			break;
	}
	if (shift < 64 && (b & 0x40))
		v |= ~0ULL << shift;
	return (int64_t)v;
}

#define PE_OMIT 0xff

/* An encoded pointer (DW_EH_PE_*), as libunwind's
 * dwarf_read_encoded_pointer reads it; `datarel` is the base for datarel
 * (0: not allowed). Indirect pointers, and formats or applications
 * libunwind would read differently or not at all, make the cursor bad
 * (the personality pointer, only skipped over, is read without its
 * indirect bit). */
static uint64_t
get_encoded(struct cur *c, uint8_t enc, uintptr_t datarel)
{
	uintptr_t field = (uintptr_t)c->p;
	uint64_t v;

	if (enc == PE_OMIT)
		return 0;
	if (enc & 0x80) {
		c->bad = true;
		return 0;
	}
	switch (enc & 0x0f) {
	case 0x00: v = get_bytes(c, 8, false); break;
	case 0x01: v = get_uleb(c); break;
	case 0x02: v = get_bytes(c, 2, false); break;
	case 0x03: v = get_bytes(c, 4, false); break;
	case 0x04: v = get_bytes(c, 8, false); break;
	case 0x0a: v = get_bytes(c, 2, true); break;
	case 0x0b: v = get_bytes(c, 4, true); break;
	case 0x0c: v = get_bytes(c, 8, true); break;
	default: /* sleb128 (read as uleb128 by libunwind 1.6), aligned */
		c->bad = true;
		return 0;
	}
	if (v == 0)
		return 0; /* "0 is a special value and always absolute" */
	switch (enc & 0x70) {
	case 0x00: break;
	case 0x10: v += field; break;
	case 0x30:
		if (datarel == 0)
			c->bad = true;
		v += datarel;
		break;
	default:
		c->bad = true;
	}
	return v;
}

/* The register columns that matter: rbp, rsp and the return address. */
#define R_RBP 6
#define R_RSP 7
#define R_RA 16
#define NREGS 17 /* libunwind's DWARF_NUM_PRESERVED_REGS on x86-64 */
#define STATES 8 /* DW_CFA_remember_state depth kept */

enum where { W_SAME = 0, W_UNDEF, W_CFAREL, W_OTHER /* register, expression */ };

struct row {
	uint8_t where[NREGS];
	int64_t off[NREGS];
	uint8_t cfa_reg; /* 0xff: an expression */
	int64_t cfa_off;
};

struct cie {
	int64_t data_align;
	uint64_t code_align;
	uint8_t fde_enc, lsda_enc;
	bool sized, signal;
	uint64_t ra_col;
	const uint8_t *instr, *instr_end;
};

static bool
parse_cie(const uint8_t *p, const uint8_t *lo, const uint8_t *hi, struct cie *ci)
{
	struct cur c = { p, hi, p < lo };
	uint64_t len = get_bytes(&c, 4, false);
	uint8_t version, aug[5] = { 0 };
	unsigned n = 0;

	if (len == 0xffffffff || len == 0 || c.bad || len > (uint64_t)(hi - c.p))
		return false;
	c.end = c.p + len;
	if (get_bytes(&c, 4, false) != 0) /* CIE id */
		return false;
	version = (uint8_t)get_bytes(&c, 1, false);
	if (version != 1 && version != 3)
		return false;
	for (;;) {
		uint8_t ch = (uint8_t)get_bytes(&c, 1, false);

		if (c.bad)
			return false;
		if (ch == 0)
			break;
		if (n == 4)
			return false; /* libunwind keeps only four characters */
		aug[n++] = ch;
	}
	ci->code_align = get_uleb(&c);
	ci->data_align = get_sleb(&c);
	ci->ra_col = version == 1 ? get_bytes(&c, 1, false) : get_uleb(&c);
	ci->fde_enc = 0x04; /* udata8, libunwind's default */
	ci->lsda_enc = PE_OMIT;
	ci->sized = false;
	ci->signal = false;
	n = 0;
	if (aug[0] == 'z') {
		ci->sized = true;
		get_uleb(&c);
		n = 1;
	}
	for (; n < 4 && aug[n] && !c.bad; n++) {
		uint8_t e;

		switch (aug[n]) {
		case 'L': ci->lsda_enc = (uint8_t)get_bytes(&c, 1, false); break;
		case 'R': ci->fde_enc = (uint8_t)get_bytes(&c, 1, false); break;
		case 'P':
			e = (uint8_t)get_bytes(&c, 1, false);
			get_encoded(&c, e & 0x7f, 0);
			break;
		case 'S': ci->signal = true; break;
		default:
			if (!ci->sized)
				return false;
			n = 4; /* libunwind skips the rest when sized */
			break;
		}
	}
	ci->instr = c.p;
	ci->instr_end = c.end;
	return !c.bad;
}

/* Run CFA instructions (as libunwind's run_cfi_program) while the
 * location is <= target. Returns false for anything libunwind would fail
 * on, read differently, or that this file does not model. */
static bool
run_cfa(struct cur *c, const struct cie *ci, struct row *row, const struct row *initial,
	uint64_t loc, uint64_t target)
{
	struct row stack[STATES];
	unsigned depth = 0;

	while (loc <= target && c->p < c->end && !c->bad) {
		uint8_t op = (uint8_t)get_bytes(c, 1, false);
		uint64_t reg, operand = op & 0x3f;
		int64_t v;

		if (op & 0xc0)
			op &= 0xc0;
		switch (op) {
		case 0x40: /* advance_loc */
			loc += operand * ci->code_align;
			break;
		case 0x80: /* offset */
			if (operand >= NREGS)
				return false;
			row->where[operand] = W_CFAREL;
			row->off[operand] = (int64_t)(get_uleb(c) * (uint64_t)ci->data_align);
			break;
		case 0xc0: /* restore */
			if (operand >= NREGS || initial == NULL)
				return false;
			row->where[operand] = initial->where[operand];
			row->off[operand] = initial->off[operand];
			break;
		case 0x00: /* nop */
			break;
		case 0x01: /* set_loc */
			loc = get_encoded(c, ci->fde_enc, 0);
			break;
		case 0x02: loc += get_bytes(c, 1, false) * ci->code_align; break;
		case 0x03: loc += get_bytes(c, 2, false) * ci->code_align; break;
		case 0x04: loc += get_bytes(c, 4, false) * ci->code_align; break;
		case 0x05: /* offset_extended */
		case 0x11: /* offset_extended_sf */
		case 0x2f: /* GNU_negative_offset_extended */
			reg = get_uleb(c);
			if (reg >= NREGS)
				return false;
			if (op == 0x11)
				v = get_sleb(c) * ci->data_align;
			else if (op == 0x05)
				v = (int64_t)(get_uleb(c) * (uint64_t)ci->data_align);
			else
				v = -(int64_t)(get_uleb(c) * (uint64_t)ci->data_align);
			row->where[reg] = W_CFAREL;
			row->off[reg] = v;
			break;
		case 0x06: /* restore_extended */
			reg = get_uleb(c);
			if (reg >= NREGS || initial == NULL)
				return false;
			row->where[reg] = initial->where[reg];
			row->off[reg] = initial->off[reg];
			break;
		case 0x07: /* undefined */
		case 0x08: /* same_value */
			reg = get_uleb(c);
			if (reg >= NREGS)
				return false;
			row->where[reg] = op == 0x07 ? W_UNDEF : W_SAME;
			row->off[reg] = 0;
			break;
		case 0x09: /* register */
			reg = get_uleb(c);
			if (reg >= NREGS)
				return false;
			get_uleb(c);
			row->where[reg] = W_OTHER;
			break;
		case 0x0a: /* remember_state */
			if (depth == STATES)
				return false;
			stack[depth++] = *row;
			break;
		case 0x0b: /* restore_state */
			if (depth == 0)
				return false;
			*row = stack[--depth];
			break;
		case 0x0c: /* def_cfa */
		case 0x12: /* def_cfa_sf */
			reg = get_uleb(c);
			if (reg >= NREGS)
				return false;
			row->cfa_reg = (uint8_t)reg;
			row->cfa_off = op == 0x0c ? (int64_t)get_uleb(c) : get_sleb(c) * ci->data_align;
			break;
		case 0x0d: /* def_cfa_register */
			reg = get_uleb(c);
			if (reg >= NREGS)
				return false;
			row->cfa_reg = (uint8_t)reg;
			break;
		case 0x0e: /* def_cfa_offset */
			row->cfa_off = (int64_t)get_uleb(c);
			break;
		case 0x13: /* def_cfa_offset_sf */
			row->cfa_off = get_sleb(c) * ci->data_align;
			break;
		case 0x0f: /* def_cfa_expression */
			row->cfa_reg = 0xff;
			v = (int64_t)get_uleb(c);
			if ((uint64_t)v > (uint64_t)(c->end - c->p))
				return false;
			c->p += v;
			break;
		case 0x10: /* expression */
		case 0x16: /* val_expression */
			reg = get_uleb(c);
			if (reg >= NREGS)
				return false;
			row->where[reg] = W_OTHER;
			v = (int64_t)get_uleb(c);
			if ((uint64_t)v > (uint64_t)(c->end - c->p))
				return false;
			c->p += v;
			break;
		case 0x2e: /* GNU_args_size */
			get_uleb(c);
			break;
		default:
			/* val_offset and the rest: libunwind 1.6 does not
			 * know them (it would misread what follows). */
			return false;
		}
	}
	return !c->bad;
}

/* The rule for the lookup address `key` (return address - 1). */
static uint64_t
compute_rule(uintptr_t key)
{
	struct module m;
	const uintptr_t *hseg, *eseg;
	const uint8_t *hdr, *table, *fde, *eh_frame;
	struct cur c;
	struct cie ci;
	struct row row, initial;
	uint64_t count, start, range, len;
	int32_t rel;
	size_t lo, hi;
	int r = module_for(key, &m);

	if (r != 0)
		return r == FB_BUSY ? RULE_NONE : other_rule(FB_NOINFO);
	if (m.hdr == 0 || (hseg = segment_of(&m, m.hdr)) == NULL)
		return other_rule(FB_NOINFO);
	/* .eh_frame_hdr: version 1, eh_frame_ptr, fde_count, then a table of
	 * (initial location, FDE) pairs, datarel sdata4, sorted. */
	hdr = (const uint8_t *)m.hdr;
	c = (struct cur){ hdr, (const uint8_t *)hseg[1], false };
	if (get_bytes(&c, 1, false) != 1)
		return other_rule(FB_NOINFO);
	uint8_t eh_enc = (uint8_t)get_bytes(&c, 1, false);
	uint8_t count_enc = (uint8_t)get_bytes(&c, 1, false);
	uint8_t table_enc = (uint8_t)get_bytes(&c, 1, false);
	eh_frame = (const uint8_t *)(uintptr_t)get_encoded(&c, eh_enc, m.hdr);
	count = get_encoded(&c, count_enc, m.hdr);
	if (c.bad || table_enc != 0x3b || count_enc == PE_OMIT || count == 0 ||
	    count > (uint64_t)(c.end - c.p) / 8)
		return other_rule(FB_NOINFO);
	table = c.p;
	(void)eh_frame;
	rel = (int32_t)(key - m.hdr);
	for (lo = 0, hi = (size_t)count; lo < hi;) {
		size_t mid = (lo + hi) / 2;
		int32_t at;

		memcpy(&at, table + mid * 8, 4);
		if (rel < at)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (hi == 0)
		return other_rule(FB_NOINFO);
	int32_t fde_off;
	memcpy(&fde_off, table + (hi - 1) * 8 + 4, 4);
	fde = hdr + fde_off;
	/* The FDE and its CIE lie in .eh_frame, within one segment. */
	if ((eseg = segment_of(&m, (uintptr_t)fde)) == NULL)
		return other_rule(FB_NOINFO);
	c = (struct cur){ fde, (const uint8_t *)eseg[1], false };
	len = get_bytes(&c, 4, false);
	if (len == 0 || len == 0xffffffff || c.bad || len > (uint64_t)(c.end - c.p))
		return other_rule(FB_NOINFO);
	c.end = c.p + len;
	const uint8_t *cie_field = c.p;
	int64_t cie_off = (int64_t)get_bytes(&c, 4, true);
	if (c.bad || cie_off == 0)
		return other_rule(FB_NOINFO);
	if (!parse_cie(cie_field - cie_off, (const uint8_t *)eseg[0], (const uint8_t *)eseg[1],
		       &ci))
		return other_rule(FB_RULE);
	start = get_encoded(&c, ci.fde_enc, 0);
	range = get_encoded(&c, ci.fde_enc & 0x0f, 0);
	if (c.bad)
		return other_rule(FB_RULE);
	if (key < start || key >= start + range)
		return other_rule(FB_NOINFO);
	if (ci.signal)
		return other_rule(FB_SIGNAL);
	/* libunwind decodes the LSDA pointer even when the augmentation is
	 * sized (and fails the frame if it cannot). */
	if (ci.sized) {
		uint64_t aug = get_uleb(&c);
		struct cur lsda = c;

		get_encoded(&lsda, ci.lsda_enc, 0);
		if (c.bad || lsda.bad || aug > (uint64_t)(c.end - c.p))
			return other_rule(FB_RULE);
		c.p += aug;
	} else {
		get_encoded(&c, ci.lsda_enc, 0);
	}
	/* Every register starts "same value", the CFA undefined (as an
	 * expression: not usable). */
	memset(&row, 0, sizeof(row));
	row.cfa_reg = 0xff;
	struct cur cc = { ci.instr, ci.instr_end, false };
	if (!run_cfa(&cc, &ci, &row, NULL, 0, UINT64_MAX))
		return other_rule(FB_RULE);
	initial = row;
	if (!run_cfa(&c, &ci, &row, &initial, start, key))
		return other_rule(FB_RULE);

	/* Classify the row as libunwind's fast path would. */
	for (unsigned i = 0; i < NREGS; i++)
		if (row.where[i] == W_OTHER)
			return other_rule(FB_RULE);
	if (ci.ra_col != R_RA || (row.cfa_reg != R_RSP && row.cfa_reg != R_RBP))
		return other_rule(FB_RULE);
	if (row.where[R_RA] == W_UNDEF || row.where[R_RBP] == W_UNDEF)
		return make_rule(RULE_LAST, false, false, 0, 0);
	if (row.cfa_off <= -(1 << 28) || row.cfa_off >= (1 << 28) ||
	    row.where[R_RA] != W_CFAREL || row.off[R_RA] != -8)
		return other_rule(FB_RULE);
	/* (libunwind would take rsp + off < 8 too, and stop or go astray:
	 * leave that to it; every other rsp-based CFA is above sp, which the
	 * walk then need not check.) */
	if (row.cfa_reg == R_RSP && row.cfa_off < 8)
		return other_rule(FB_RULE);
	if (row.where[R_RBP] == W_CFAREL &&
	    (row.off[R_RBP] <= -(1 << 14) || row.off[R_RBP] >= (1 << 14) || row.off[R_RBP] == -1))
		return other_rule(FB_RULE);
	if (row.where[R_RSP] == W_CFAREL &&
	    (row.off[R_RSP] <= -(1 << 14) || row.off[R_RSP] >= (1 << 14) || row.off[R_RSP] == -1))
		return other_rule(FB_RULE);
	return make_rule(RULE_STANDARD, row.cfa_reg == R_RSP, row.where[R_RBP] == W_CFAREL,
			 row.cfa_off, row.where[R_RBP] == W_CFAREL ? row.off[R_RBP] : 0);
}

/* The rule for key: from the table, or computed and added. RULE_NONE
 * when it could not be had just now. */
static __attribute__((noinline)) uint64_t
rule_slow(uint64_t key)
{
	struct rtable *t = __atomic_load_n(&rules, __ATOMIC_ACQUIRE);
	uint64_t r;
	unsigned gen;

	if (t == NULL) {
		struct rtable *fresh = new_table(12), *expected = NULL;

		if (fresh == NULL)
			return RULE_NONE;
		if (!__atomic_compare_exchange_n(&rules, &expected, fresh, false, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE))
			hp_os_unmap(fresh, sizeof(struct rtable) + (sizeof(struct slot) << 12));
		t = __atomic_load_n(&rules, __ATOMIC_ACQUIRE);
	}
	r = compute_rule(key);
	if (r == RULE_NONE)
		return r;
	t = __atomic_load_n(&rules, __ATOMIC_ACQUIRE);
	/* The generation after compute_rule (which may have flushed). */
	gen = __atomic_load_n(&generation, __ATOMIC_ACQUIRE) & GEN_MASK;
	r |= (uint64_t)gen << 4;
	rule_put(t, key, r, gen);
	return r;
}

/* ---- the thread's stack ---- */

/* A frame of a capture: its address, where its return address was found
 * (sp: the CFA of the frame below) and its rule. A capture's frames end
 * with one whose ip is 0, which no frame has. */
struct frame {
	uintptr_t ip, sp;
	uint64_t rule;
};

/* A thread's own rules: the previous capture's frames (up to as many as
 * a capture can have), and a small direct-mapped cache of rules in front
 * of the shared table (which is larger than the caches close to the core,
 * and shared). In heapprof's own memory, not in static TLS, which every
 * thread's stack pays for. 2048 rules, 32 KiB a thread: cc1's captures
 * return through 5.5 K distinct addresses, and with 512 the misses that
 * went to the shared table made its recording cost in the program 30%
 * more (bench/run-capture.py, cc1: 846 and 628 ns a chunk added with 512,
 * 592 and 420 with 2048, two runs of 5 and 7 repetitions). */
#define CACHE_BITS 11

struct unwind_data {
	unsigned last;    /* sh[last] holds the previous capture's frames */
	unsigned n[2];    /* how many */
	unsigned gen;     /* the rules' generation when it was made */
	unsigned slots;   /* frames each of sh[] has room for, and its end mark */
	void **prev;      /* with the check: the previous capture */
	int prev_n;
	struct frame *sh[2];
	struct {
		uint64_t key, rule;
	} cache[1u << CACHE_BITS];
	struct frame frames[];
};

static const struct frame no_frames[1];
static unsigned capture_slots = 80; /* the largest max of a capture */

struct unwind_thread {
	uintptr_t stack_lo, stack_hi; /* the thread's own stack mapping */
	struct unwind_data *data;
	unsigned maps_reads;
	bool exited;   /* data is gone: the thread is ending */
	bool walked;   /* the last capture was walked here (not libunwind's) */
	bool repeated; /* ... and gave the same frames as the one before */
};

static __thread struct unwind_thread ut __attribute__((tls_model("initial-exec")));

extern void *__libc_stack_end;

/* The mapping [*lo, *hi) holding sp, from /proc/self/maps, and whether it
 * is the thread's own stack, which cannot go away while the thread runs:
 * the main thread's (the "[stack]" mapping, or the one holding
 * __libc_stack_end: under valgrind the program's stack is not the kernel's
 * "[stack]"), or a mapping that also holds the thread's control block
 * (glibc puts it at the top of every stack it allocates or is given). */
static bool
find_stack(uintptr_t sp, uintptr_t tp, uintptr_t *lo, uintptr_t *hi)
{
	uintptr_t end = (uintptr_t)__libc_stack_end;
	char buf[1024];
	int saved = errno;
	long fd = syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
	uintptr_t a = 0, b = 0;
	unsigned field = 0; /* 0: start, 1: end, 2: the rest */
	char tail[8] = { 0 };
	bool found = false, own = false;

	if (fd < 0) {
		errno = saved;
		return false;
	}
	for (;;) {
		long n = syscall(SYS_read, fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		for (long i = 0; i < n && !found; i++) {
			char ch = buf[i];

			if (ch == '\n') {
				if (sp >= a && sp < b) {
					found = true;
					own = memcmp(tail + 1, "[stack]", 7) == 0 ||
					      (tp >= a && tp < b) || (end >= a && end < b);
					*lo = a;
					*hi = b;
				}
				a = b = 0;
				field = 0;
				memset(tail, 0, sizeof(tail));
				continue;
			}
			memmove(tail, tail + 1, sizeof(tail) - 1);
			tail[sizeof(tail) - 1] = ch;
			if (field < 2) {
				unsigned d = ch >= '0' && ch <= '9'   ? (unsigned)(ch - '0')
					     : ch >= 'a' && ch <= 'f' ? (unsigned)(ch - 'a' + 10)
								      : 16;
				if (d < 16) {
					if (field == 0)
						a = a << 4 | d;
					else
						b = b << 4 | d;
				} else {
					field++;
				}
			}
		}
		if (found)
			break;
	}
	syscall(SYS_close, fd);
	errno = saved;
	return found && own;
}

/* The bounds to check reads against, or false (then: libunwind). */
static inline bool
stack_bounds(uintptr_t sp, uintptr_t *hi)
{
	uintptr_t lo, top, tp;

	if (__builtin_expect(sp >= ut.stack_lo && sp < ut.stack_hi, 1)) {
		*hi = ut.stack_hi;
		return true;
	}
	/* Once the thread's own stack is known, any other is foreign
	 * (sigaltstack, coroutines); before that, look a few times. */
	if (ut.stack_hi != 0 || ut.maps_reads >= 4)
		return false;
	ut.maps_reads++;
	__asm__("mov %%fs:0, %0" : "=r"(tp));
	if (!find_stack(sp, tp, &lo, &top))
		return false;
	ut.stack_lo = lo;
	ut.stack_hi = top;
	*hi = top;
	return true;
}

/* ---- the walk ---- */

struct regs {
	uintptr_t ip, sp, bp;
};

/* hp_unwind_regs(&r): its caller's state just after the call: the return
 * address, the stack pointer after return, and rbp (which it does not
 * touch); the same as libunwind's getcontext_trace. */
void hp_unwind_regs(struct regs *r);
__asm__(".text\n"
	".globl hp_unwind_regs\n"
	".hidden hp_unwind_regs\n"
	".type hp_unwind_regs, @function\n"
	"hp_unwind_regs:\n"
	".cfi_startproc\n"
	"\tmovq (%rsp), %rax\n"
	"\tmovq %rax, 0(%rdi)\n"
	"\tleaq 8(%rsp), %rax\n"
	"\tmovq %rax, 8(%rdi)\n"
	"\tmovq %rbp, 16(%rdi)\n"
	"\tret\n"
	".cfi_endproc\n"
	".size hp_unwind_regs, .-hp_unwind_regs\n");

/* The rule for the frame at (ip, sp) when it is not the previous
 * capture's next frame (old[*k]): the previous capture's frame at the same
 * stack address, else from the thread's cache, the shared table, or
 * computed. *k moves on to where the previous capture is at sp. A rule
 * depends only on the address, so a match on ip is all that correctness
 * needs; the stack itself is read again every time. 0 when no rule could
 * be had just now. */
struct miss {
	uint64_t rule;
	uint64_t k;
};

static __attribute__((noinline)) struct miss
rule_miss(struct unwind_data *d, const struct frame *old, unsigned m, unsigned k,
	  uintptr_t ip, uintptr_t sp, unsigned gen)
{
	const struct rtable *t;
	uint64_t rule, key = ip - 1;
	size_t c;

	while (k < m && old[k].sp < sp)
		k++;
	if (k < m && old[k].sp == sp && old[k].ip == ip)
		return (struct miss){ old[k].rule, k + 1 };
	c = (size_t)((key * 0x9e3779b97f4a7c15ULL) >> (64 - CACHE_BITS));
	if (d && d->cache[c].key == key && rule_gen(d->cache[c].rule) == gen)
		return (struct miss){ d->cache[c].rule, k };
	t = __atomic_load_n(&rules, __ATOMIC_ACQUIRE);
	rule = t ? rule_get(t, key, gen) : RULE_NONE;
	if (rule == RULE_NONE && (rule = rule_slow(key)) == RULE_NONE)
		return (struct miss){ RULE_NONE, k };
	if (d) {
		d->cache[c].key = key;
		d->cache[c].rule = rule;
	}
	return (struct miss){ rule, k };
}

/* The calling thread's unwind_data, made on its first capture; NULL once
 * it is ending, or when there is no memory. */
static struct unwind_data *
thread_data(void)
{
	struct unwind_data *d = ut.data;
	unsigned slots = capture_slots + 1;

	if (__builtin_expect(d != NULL, 1) || ut.exited)
		return d;
	d = hp_selfmem_alloc(sizeof(*d) + 2 * slots * sizeof(struct frame), 64, true);
	if (d) {
		d->slots = slots;
		d->sh[0] = d->frames;
		d->sh[1] = d->frames + slots;
	}
	ut.data = d;
	return d;
}

/* Walk from r into buf. Returns the number of return addresses, or -1 -
 * reason when libunwind must do it; *same tells whether every frame was
 * the previous capture's, in order (so buf holds what it held).
 *
 * Frame f is (ip, sp, bp); its rule gives the next, whose ip is buf[f].
 * The rule of frame f is, most of the time, that of the previous
 * capture's frame k (the same ip): known before frame f's ip is even
 * loaded, so the loads of successive frames overlap. */
static int
walk(const struct regs *r, void **buf, int max, bool *same)
{
	uintptr_t ip = r->ip, sp = r->sp, bp = r->bp, lo = r->sp, span;
	unsigned gen = __atomic_load_n(&generation, __ATOMIC_ACQUIRE) & GEN_MASK;
	struct unwind_data *d;
	const struct frame *old, *o;
	struct frame *now, *w;
	void **out = buf, **end = buf + max;
	unsigned m;
	bool in_step = true;

	if (!stack_bounds(sp, &span))
		return -1 - FB_STACK;
	if (max < 0 || (unsigned)max > capture_slots)
		return -1 - FB_BUSY;
	if ((d = thread_data()) == NULL) {
		/* The thread is ending (or out of memory): walk with the
		 * shared rules alone. (Not libunwind: it would make its own
		 * per-thread cache, 512 KiB, too late to be given back.) */
		now = alloca(((size_t)max + 1) * sizeof(*now));
		old = no_frames;
		m = 0;
	} else if (d->gen == gen) {
		now = d->sh[d->last ^ 1];
		old = d->sh[d->last];
		m = d->n[d->last];
	} else {
		now = d->sh[d->last ^ 1];
		old = no_frames;
		m = 0;
	}
	o = old;
	w = now;
	/* A read of 8 bytes at a is allowed when a - lo <= span. */
	span -= lo + 8;
	while (out < end) {
		uint64_t rule;
		uintptr_t cfa, nip;

		if (__builtin_expect(o->ip == ip, 1)) {
			rule = o->rule;
			o++;
		} else {
			struct miss x = rule_miss(d, old, m, (unsigned)(o - old), ip, sp, gen);

			in_step = false;
			rule = x.rule;
			o = old + x.k;
		}
		w->ip = ip;
		w->sp = sp;
		w->rule = rule;
		w++;
		if (__builtin_expect(rule_kind(rule) != RULE_STANDARD, 0)) {
			if (rule_kind(rule) == RULE_LAST)
				goto ended;
			return rule_kind(rule) == RULE_OTHER ? -1 - (int)rule_cfa_off(rule)
							     : -1 - FB_BUSY;
		}
		if (rule & RULE_RSP) {
			/* above sp (compute_rule) */
			cfa = sp + (uintptr_t)rule_cfa_off(rule);
			if (cfa - 8 - lo > span)
				return -1 - FB_READ;
			nip = *(const uintptr_t *)(cfa - 8);
		} else {
			cfa = bp + (uintptr_t)rule_cfa_off(rule);
			if (cfa - 8 - lo > span)
				return -1 - FB_READ;
			nip = *(const uintptr_t *)(cfa - 8);
			/* libunwind: "ip and cfa unchanged; stopping here" */
			if (cfa == sp && nip == ip)
				return -1 - FB_RULE;
		}
		if (rule & RULE_RBP_SAVED) {
			uintptr_t at = cfa + (uintptr_t)rule_rbp_off(rule);

			if (at - lo > span)
				return -1 - FB_READ;
			bp = *(const uintptr_t *)at;
		}
		ip = nip;
		sp = cfa;
		if (ip < 0x4000)
			goto ended;
		*out++ = (void *)ip;
	}
	/* Cut short by max: the last address is in buf only. */
	in_step = false;
ended:
	w->ip = 0;
	*same = d && in_step && (unsigned)(w - now) == m;
	if (d) {
		d->n[d->last ^ 1] = (unsigned)(w - now);
		d->last ^= 1;
		d->gen = gen;
	}
	return (int)(out - buf);
}

/* With the check: a capture said to repeat the one before must. */
static void
check_repeated(void *const *buf, int n, int max)
{
	struct unwind_data *d = ut.data;

	if (d == NULL)
		return;
	if (d->prev == NULL && (d->prev = hp_selfmem_alloc((size_t)max * sizeof(void *), 16,
							 false)) == NULL)
		return;
	if (ut.repeated) {
		count(&stats.repeated);
		if (n != d->prev_n || memcmp(buf, d->prev, (size_t)n * sizeof(void *)) != 0) {
			unsigned long c = __atomic_fetch_add(&stats.differ, 1, __ATOMIC_RELAXED);

			if (c < 8)
				hp_log("unwind check: a capture said to repeat the one before "
				       "differs from it (depths %d and %d)", n, d->prev_n);
		}
	}
	memcpy(d->prev, buf, (size_t)n * sizeof(void *));
	d->prev_n = n;
}

void
hp_unwind_thread_exit(void)
{
	struct unwind_data *d = ut.data;

	ut.exited = true;
	ut.data = NULL;
	if (d) {
		if (d->prev)
			hp_selfmem_free(d->prev);
		hp_selfmem_free(d);
	}
}

#else

void
hp_unwind_flush(void)
{
}

void
hp_unwind_thread_exit(void)
{
}

#endif /* __x86_64__ */

/* Compare a capture with libunwind's from here (heapprof's own frames
 * left out of both: they differ by this function's). */
static __attribute__((noinline)) void
check_capture(void *const *mine, int n, int max)
{
	void *theirs[max];
	int m = unw_backtrace(theirs, max), i = 0, j = 0, k;
	unsigned long c;

	while (i < n && (uintptr_t)mine[i] >= self_lo && (uintptr_t)mine[i] < self_hi)
		i++;
	while (j < m && (uintptr_t)theirs[j] >= self_lo && (uintptr_t)theirs[j] < self_hi)
		j++;
	count(&stats.compared);
	for (k = 0; k < (int)keep_depth; k++) {
		bool a = i + k < n, b = j + k < m;

		if (!a && !b)
			return;
		if (a && b && mine[i + k] == theirs[j + k])
			continue;
		c = __atomic_fetch_add(&stats.differ, 1, __ATOMIC_RELAXED);
		if (c < 8)
			hp_log("unwind check: frame %d differs: heapprof %p, libunwind %p "
			       "(depths %d and %d)",
			       k, a ? mine[i + k] : NULL, b ? theirs[j + k] : NULL, n - i, m - j);
		return;
	}
}

int
hp_unwind_capture(void **buf, int max)
{
	int n;

	count(&stats.captures);
#if defined(__x86_64__)
	struct regs r;
	bool same = false;

	hp_unwind_regs(&r);
	n = walk(&r, buf, max, &same);
	ut.repeated = n >= 0 && same && ut.walked;
	ut.walked = n >= 0;
	if (n < 0) {
		count(&stats.fallbacks[-1 - n]);
		n = unw_backtrace(buf, max);
	}
	if (check_on)
		check_repeated(buf, n, max);
#else
	count(&stats.fallbacks[FB_ARCH]);
	n = unw_backtrace(buf, max);
#endif
	if (check_on)
		check_capture(buf, n, max);
	return n;
}

bool
hp_unwind_repeated(void)
{
#if defined(__x86_64__)
	return ut.repeated;
#else
	return false;
#endif
}

void
hp_unwind_init(uintptr_t lo, uintptr_t hi, unsigned max_depth, unsigned slots, const char *check)
{
	size_t n = check ? strlen(check) : 0;

	self_lo = lo;
	self_hi = hi;
	keep_depth = max_depth;
#if defined(__x86_64__)
	capture_slots = slots;
#else
	(void)slots;
#endif
	check_on = n > 0 && strcmp(check, "0") != 0;
	if (check_on && check[0] == '/' && n < sizeof(check_dir))
		memcpy(check_dir, check, n + 1);
}

void
hp_unwind_fork_child(void)
{
#if defined(__x86_64__)
	hp_mutex_reset(&mods_lock);
	__atomic_store_n(&growing, 0, __ATOMIC_RELAXED);
#endif
	memset(&stats, 0, sizeof(stats));
}

void
hp_unwind_report(void)
{
	char line[512], exe[256], path[300];
	unsigned long fb = 0;
	int saved = errno;
	long len, fd;

	if (!check_on)
		return;
	for (int i = 0; i < FB_COUNT; i++)
		fb += stats.fallbacks[i];
	len = syscall(SYS_readlink, "/proc/self/exe", exe, sizeof(exe) - 1);
	exe[len > 0 ? len : 0] = '\0';
	hp_format(line, sizeof(line),
		  "unwind check: exe=%s captures=%zu compared=%zu differ=%zu repeated=%zu "
		  "libunwind=%zu (stack=%zu read=%zu noinfo=%zu signal=%zu rule=%zu busy=%zu "
		  "arch=%zu)",
		  exe, (size_t)stats.captures, (size_t)stats.compared, (size_t)stats.differ,
		  (size_t)stats.repeated, (size_t)fb, (size_t)stats.fallbacks[FB_STACK],
		  (size_t)stats.fallbacks[FB_READ], (size_t)stats.fallbacks[FB_NOINFO],
		  (size_t)stats.fallbacks[FB_SIGNAL], (size_t)stats.fallbacks[FB_RULE],
		  (size_t)stats.fallbacks[FB_BUSY], (size_t)stats.fallbacks[FB_ARCH]);
	if (check_dir[0] == '\0') {
		hp_log("%s", line);
		errno = saved;
		return;
	}
	/* A file per process: programs may have closed stderr by now
	 * (coreutils' close_stdout runs before this). */
	hp_format(path, sizeof(path), "%s/unwind.%d", check_dir, (int)syscall(SYS_getpid));
	fd = syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd >= 0) {
		len = (long)strlen(line);
		line[len++] = '\n';
		syscall(SYS_write, fd, line, len);
		syscall(SYS_close, fd);
	}
	errno = saved;
}

/* dlclose: the module's code goes away, and with it the meaning of every
 * rule cached for its addresses, ours and libunwind's. (dlopen needs nothing: new code is new
 * addresses, unknown to the table; and it must not be wrapped, since it
 * looks at its caller to choose the search path.) */
EXPORT int
dlclose(void *handle)
{
	static int (*real)(void *);
	int (*fn)(void *) = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
	int ret;

	if (fn == NULL) {
		fn = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
		if (fn == NULL)
			return -1;
		__atomic_store_n(&real, fn, __ATOMIC_RELEASE);
	}
	ret = fn(handle);
	hp_unwind_flush();
	/* libunwind (the fallback) keeps its own rules by address, too. */
	unw_flush_cache(unw_local_addr_space, 0, 0);
	return ret;
}
