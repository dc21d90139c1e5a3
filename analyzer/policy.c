/* SPDX-License-Identifier: MIT */
/*
 * policy.c - the simulated brk heap the textbook policies share (see
 * policy.h): the free-block index (two treaps over one pool of nodes, and
 * a list per size class), the allocated blocks, growing and trimming the
 * break, and the replay of a recording's requests.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "util.h"

#define N(i) (p->nodes[i])

static const struct pol_ops *const all[POL_COUNT] = {
	[POL_FIRST_FIT] = &pol_first_fit, [POL_NEXT_FIT] = &pol_next_fit,
	[POL_BEST_FIT] = &pol_best_fit,   [POL_WORST_FIT] = &pol_worst_fit,
	[POL_SEGREGATED] = &pol_segregated, [POL_BUDDY] = &pol_buddy,
};

const struct pol_ops *
pol_ops_of(int policy)
{
	return policy >= 0 && policy < POL_COUNT ? all[policy] : NULL;
}

const char *
pol_name(int policy)
{
	return policy >= 0 && policy < POL_COUNT ? all[policy]->name : "?";
}

unsigned
pol_class(uint64_t size)
{
	unsigned c = 63 - (unsigned)__builtin_clzll(size | 1);

	return c < POL_NCLASSES ? c : POL_NCLASSES - 1;
}

/* ---- the treap by address, with the largest size below each node ---- */

static void
fix(struct pol *p, uint32_t t)
{
	uint64_t m = N(t).size;

	if (N(t).l && N(N(t).l).max > m)
		m = N(N(t).l).max;
	if (N(t).r && N(N(t).r).max > m)
		m = N(N(t).r).max;
	N(t).max = m;
}

/* t split into the nodes below addr (*a) and the rest (*b) */
static void
split(struct pol *p, uint32_t t, uint64_t addr, uint32_t *a, uint32_t *b)
{
	if (!t) {
		*a = *b = 0;
	} else if (N(t).addr < addr) {
		split(p, N(t).r, addr, &N(t).r, b);
		fix(p, t);
		*a = t;
	} else {
		split(p, N(t).l, addr, a, &N(t).l);
		fix(p, t);
		*b = t;
	}
}

static uint32_t
merge(struct pol *p, uint32_t a, uint32_t b)
{
	if (!a || !b)
		return a ? a : b;
	if (N(a).pri > N(b).pri) {
		N(a).r = merge(p, N(a).r, b);
		fix(p, a);
		return a;
	}
	N(b).l = merge(p, a, N(b).l);
	fix(p, b);
	return b;
}

/* ---- the treap by (size, address) ---- */

static bool
s_less(const struct pol_node *n, uint64_t size, uint64_t addr)
{
	return n->size < size || (n->size == size && n->addr < addr);
}

static void
s_split(struct pol *p, uint32_t t, uint64_t size, uint64_t addr, uint32_t *a, uint32_t *b)
{
	if (!t) {
		*a = *b = 0;
	} else if (s_less(&N(t), size, addr)) {
		s_split(p, N(t).sr, size, addr, &N(t).sr, b);
		*a = t;
	} else {
		s_split(p, N(t).sl, size, addr, a, &N(t).sl);
		*b = t;
	}
}

static uint32_t
s_merge(struct pol *p, uint32_t a, uint32_t b)
{
	if (!a || !b)
		return a ? a : b;
	if (N(a).pri > N(b).pri) {
		N(a).sr = s_merge(p, N(a).sr, b);
		return a;
	}
	N(b).sl = s_merge(p, a, N(b).sl);
	return b;
}

/* ---- the index ---- */

void
pol_insert(struct pol *p, uint64_t addr, uint64_t size)
{
	uint32_t n, a, b;

	if (p->free_nodes) {
		n = p->free_nodes;
		p->free_nodes = N(n).next;
	} else {
		if (p->nnodes == p->cap) {
			p->cap *= 2;
			p->nodes = xrealloc(p->nodes, p->cap * sizeof(*p->nodes));
		}
		n = p->nnodes++;
	}
	/* xorshift: the treaps' priorities */
	p->rng ^= p->rng << 13;
	p->rng ^= p->rng >> 7;
	p->rng ^= p->rng << 17;
	N(n) = (struct pol_node){ .addr = addr, .size = size, .max = size,
				  .pri = (uint32_t)(p->rng >> 32), .cls = (uint8_t)pol_class(size) };
	split(p, p->root, addr, &a, &b);
	p->root = merge(p, merge(p, a, n), b);
	s_split(p, p->sroot, size, addr, &a, &b);
	p->sroot = s_merge(p, s_merge(p, a, n), b);
	N(n).next = p->classes[N(n).cls];
	if (N(n).next)
		N(N(n).next).prev = n;
	p->classes[N(n).cls] = n;
}

void
pol_remove(struct pol *p, uint32_t n)
{
	uint32_t a, b, m, c;

	split(p, p->root, N(n).addr, &a, &b);
	split(p, b, N(n).addr + 1, &m, &c);
	p->root = merge(p, a, c);
	s_split(p, p->sroot, N(n).size, N(n).addr, &a, &b);
	s_split(p, b, N(n).size, N(n).addr + 1, &m, &c);
	p->sroot = s_merge(p, a, c);
	if (N(n).prev)
		N(N(n).prev).next = N(n).next;
	else
		p->classes[N(n).cls] = N(n).next;
	if (N(n).next)
		N(N(n).next).prev = N(n).prev;
	memset(&N(n), 0, sizeof(N(n)));
	N(n).next = p->free_nodes;
	p->free_nodes = n;
}

uint32_t
pol_at(const struct pol *p, uint64_t addr)
{
	uint32_t t = p->root;

	while (t && N(t).addr != addr)
		t = addr < N(t).addr ? N(t).l : N(t).r;
	return t;
}

uint32_t
pol_below(const struct pol *p, uint64_t addr)
{
	uint32_t t = p->root, best = 0;

	while (t) {
		if (N(t).addr < addr) {
			best = t;
			t = N(t).r;
		} else {
			t = N(t).l;
		}
	}
	return best;
}

uint32_t
pol_from(const struct pol *p, uint64_t addr)
{
	uint32_t t = p->root, best = 0;

	while (t) {
		if (N(t).addr >= addr) {
			best = t;
			t = N(t).l;
		} else {
			t = N(t).r;
		}
	}
	return best;
}

static uint32_t
first_from(const struct pol *p, uint32_t t, uint64_t addr, uint64_t bytes)
{
	uint32_t x;

	if (!t || N(t).max < bytes)
		return 0;
	if (N(t).addr < addr)
		return first_from(p, N(t).r, addr, bytes);
	if ((x = first_from(p, N(t).l, addr, bytes)))
		return x;
	if (N(t).size >= bytes)
		return t;
	return first_from(p, N(t).r, addr, bytes);
}

uint32_t
pol_first_from(const struct pol *p, uint64_t addr, uint64_t bytes)
{
	return first_from(p, p->root, addr, bytes);
}

uint32_t
pol_smallest(const struct pol *p, uint64_t bytes)
{
	uint32_t t = p->sroot, best = 0;

	while (t) {
		if (!s_less(&N(t), bytes, 0)) {
			best = t;
			t = N(t).sl;
		} else {
			t = N(t).sr;
		}
	}
	return best;
}

uint32_t
pol_largest(const struct pol *p)
{
	return p->root ? pol_smallest(p, N(p->root).max) : 0;
}

uint64_t
pol_split(struct pol *p, uint32_t n, uint64_t bytes)
{
	uint64_t addr = N(n).addr, size = N(n).size;

	pol_remove(p, n);
	if (size > bytes)
		pol_insert(p, addr + bytes, size - bytes);
	return addr;
}

void
pol_coalesce(struct pol *p, uint64_t addr, uint64_t bytes)
{
	uint32_t below = pol_below(p, addr), above = pol_at(p, addr + bytes);

	if (below && N(below).addr + N(below).size == addr) {
		addr = N(below).addr;
		bytes += N(below).size;
		pol_remove(p, below);
	}
	if (above) {
		bytes += N(above).size;
		pol_remove(p, above);
	}
	pol_insert(p, addr, bytes);
}

/* ---- allocated blocks: address -> size ---- */

static size_t
slot(const struct pol *p, uint64_t addr)
{
	return (size_t)((addr >> 4) * 0x9e3779b97f4a7c15ULL >> 17) & (p->hcap - 1);
}

static void
hash_put(struct pol *p, uint64_t addr, uint64_t size)
{
	if ((p->hcount + 1) * 2 > p->hcap) {
		uint64_t *k = p->keys, *v = p->vals;
		size_t n = p->hcap;
		p->hcap *= 2;
		p->keys = xcalloc(p->hcap, sizeof(*p->keys));
		p->vals = xcalloc(p->hcap, sizeof(*p->vals));
		p->hcount = 0;
		for (size_t i = 0; i < n; i++)
			if (k[i])
				hash_put(p, k[i], v[i]);
		free(k);
		free(v);
	}
	size_t i = slot(p, addr);
	while (p->keys[i])
		i = (i + 1) & (p->hcap - 1);
	p->keys[i] = addr;
	p->vals[i] = size;
	p->hcount++;
}

static size_t
hash_find(const struct pol *p, uint64_t addr)
{
	size_t i = slot(p, addr);

	while (p->keys[i] && p->keys[i] != addr)
		i = (i + 1) & (p->hcap - 1);
	return i;
}

uint64_t
pol_block_at(const struct pol *p, uint64_t addr)
{
	size_t i = hash_find(p, addr);

	return p->keys[i] ? p->vals[i] : 0;
}

/* remove with backward shift (no tombstones) */
static uint64_t
hash_del(struct pol *p, uint64_t addr)
{
	size_t i = hash_find(p, addr), j = i;
	uint64_t size = p->vals[i];

	if (!p->keys[i])
		return 0;
	p->keys[i] = 0;
	for (;;) {
		j = (j + 1) & (p->hcap - 1);
		if (!p->keys[j])
			break;
		size_t home = slot(p, p->keys[j]);
		/* can the entry at j move to the hole at i? */
		if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
			p->keys[i] = p->keys[j];
			p->vals[i] = p->vals[j];
			p->keys[j] = 0;
			i = j;
		}
	}
	p->hcount--;
	return size;
}

/* ---- the heap ---- */

void
pol_init(struct pol *p, const struct pol_ops *ops, uint64_t base)
{
	memset(p, 0, sizeof(*p));
	p->ops = ops;
	p->base = p->brk = p->rover = base;
	p->cap = 1024;
	p->nodes = xcalloc(p->cap, sizeof(*p->nodes));
	p->nnodes = 1;
	p->rng = 0x2545f4914f6cdd1dULL;
	p->hcap = 1024;
	p->keys = xcalloc(p->hcap, sizeof(*p->keys));
	p->vals = xcalloc(p->hcap, sizeof(*p->vals));
}

void
pol_destroy(struct pol *p)
{
	free(p->nodes);
	free(p->keys);
	free(p->vals);
	memset(p, 0, sizeof(*p));
}

static void
put(struct pol *p, uint64_t addr, uint64_t bytes)
{
	if (p->ops->put)
		p->ops->put(p, addr, bytes);
	else
		pol_coalesce(p, addr, bytes);
}

static void
set_brk(struct pol *p, uint64_t brk)
{
	uint64_t old = p->brk;

	p->brk = brk;
	if (p->on_brk)
		p->on_brk(p->arg, old, brk);
}

/* Free bytes in the run of free blocks that ends at the break. */
static uint64_t
top_free(const struct pol *p)
{
	uint64_t end = p->brk, n = 0;
	uint32_t t;

	while ((t = pol_below(p, end)) && N(t).addr + N(t).size == end) {
		n += N(t).size;
		end = N(t).addr;
	}
	return n;
}

static void
grow(struct pol *p, uint64_t bytes)
{
	uint64_t unit = p->ops->unit, top = top_free(p), old = p->brk;
	uint64_t need = (bytes > top ? bytes - top : 0) + POL_TOP_PAD;

	need = (need + unit - 1) / unit * unit;
	set_brk(p, old + need);
	for (uint64_t a = old; a < old + need; a += unit)
		put(p, a, unit);
}

static void
trim(struct pol *p)
{
	uint64_t unit = p->ops->unit, top = top_free(p), give;
	uint32_t t;

	if (top < POL_TRIM_THRESHOLD || top <= POL_TOP_PAD)
		return;
	give = (top - POL_TOP_PAD) / unit * unit;
	if (give == 0)
		return;
	uint64_t brk = p->brk;
	while (give) {
		t = pol_below(p, brk);
		uint64_t addr = N(t).addr, size = N(t).size;
		pol_remove(p, t);
		if (size <= give) {
			give -= size;
			brk = addr;
		} else {
			pol_insert(p, addr, size - give);
			brk -= give;
			give = 0;
		}
	}
	if (p->rover > brk)
		p->rover = p->base;
	set_brk(p, brk);
}

uint64_t
pol_alloc(struct pol *p, uint64_t bytes, uint64_t *block)
{
	uint64_t b = p->ops->block(bytes), addr;
	uint32_t n = p->ops->find(p, b);

	if (!n) {
		grow(p, b);
		n = p->ops->find(p, b);
	}
	addr = p->ops->take ? p->ops->take(p, n, b) : pol_split(p, n, b);
	hash_put(p, addr, b);
	*block = b;
	return addr;
}

uint64_t
pol_release(struct pol *p, uint64_t addr)
{
	uint64_t size = hash_del(p, addr);

	if (size) {
		put(p, addr, size);
		trim(p);
	}
	return size;
}

static void
each(const struct pol *p, uint32_t t, void (*fn)(void *arg, uint64_t addr, uint64_t bytes),
     void *arg)
{
	if (!t)
		return;
	each(p, N(t).l, fn, arg);
	fn(arg, N(t).addr, N(t).size);
	each(p, N(t).r, fn, arg);
}

void
pol_each_free(const struct pol *p, void (*fn)(void *arg, uint64_t addr, uint64_t bytes),
	      void *arg)
{
	each(p, p->root, fn, arg);
}

/* ---- the replay ---- */

struct object {
	uint64_t addr, bytes; /* its block, or its mmap chunk's bytes */
	bool mmap;
};

static void
model_brk(void *arg, uint64_t old_brk, uint64_t new_brk)
{
	hm_brk(&((struct adv_model *)arg)->m, old_brk, new_brk);
}

static uint64_t
chunk_bytes(uint64_t size)
{
	return size + 8 + 15 < 32 ? 32 : (size + 8 + 15) & ~(uint64_t)15;
}

static void
obtain(struct pol *p, struct adv_model *m, struct object *o, uint64_t size, uint32_t id)
{
	uint64_t nb = chunk_bytes(size);

	if (nb >= POL_MMAP_THRESHOLD) {
		o->mmap = true;
		o->bytes = (nb + 8 + POL_PAGE - 1) / POL_PAGE * POL_PAGE;
		adv_model_mmap(m, o->bytes, true);
		return;
	}
	o->mmap = false;
	o->addr = pol_alloc(p, nb, &o->bytes);
	adv_model_occupy(m, o->addr, o->bytes, id, 0);
}

static void
give_back(struct pol *p, struct adv_model *m, struct object *o)
{
	if (o->mmap) {
		adv_model_mmap(m, o->bytes, false);
	} else {
		adv_model_vacate(m, o->addr);
		pol_release(p, o->addr);
	}
	memset(o, 0, sizeof(*o));
}

int
adv_policy_run(const struct adv_seq *seq, int policy, struct adv_figs *f, char *err,
	       size_t errcap)
{
	const struct pol_ops *ops = pol_ops_of(policy);
	uint64_t base = seq->heap_start ? seq->heap_start : (uint64_t)1 << 32;
	struct adv_model m;
	struct object *obj;
	struct pol p;

	memset(f, 0, sizeof(*f));
	if (!ops) {
		snprintf(err, errcap, "no policy %d", policy);
		return -1;
	}
	pol_init(&p, ops, base);
	adv_model_init(&m, base, seq->nreqs ? seq->reqs[0].ns : 0);
	p.on_brk = model_brk;
	p.arg = &m;
	obj = xcalloc((size_t)seq->nobjects + 1, sizeof(*obj));
	for (size_t i = 0; i < seq->nreqs; i++) {
		const struct adv_req *r = &seq->reqs[i];
		struct object *o = &obj[r->id];

		switch (r->op) {
		case ADV_MALLOC:
		case ADV_CALLOC:
			obtain(&p, &m, o, r->size, r->id);
			break;
		case ADV_MEMALIGN:
			obtain(&p, &m, o, r->size + ((uint64_t)1 << r->align_log2), r->id);
			break;
		case ADV_REALLOC: {
			struct object *old = r->from ? &obj[r->from] : NULL;
			if (old && !old->mmap && old->bytes && chunk_bytes(r->size) <= old->bytes &&
			    chunk_bytes(r->size) < POL_MMAP_THRESHOLD) {
				*o = *old;  /* it fits where it is */
				if (old != o) {
					memset(old, 0, sizeof(*old));
					adv_model_vacate(&m, o->addr);
					adv_model_occupy(&m, o->addr, o->bytes, r->id, 0);
				}
				break;
			}
			struct object fresh = { 0 };
			obtain(&p, &m, &fresh, r->size, r->id);
			if (old && old->bytes)
				give_back(&p, &m, old);
			*o = fresh;
			break;
		}
		case ADV_FREE:
			if (o->bytes)
				give_back(&p, &m, o);
			break;
		default:
			/* malloc_trim and a thread's end: nothing a textbook
			 * heap does */
			break;
		}
		adv_model_track(&m, r->ns);
	}
	adv_model_figures(&m, 0, f);
	adv_model_free(&m);
	free(obj);
	pol_destroy(&p);
	return 0;
}
