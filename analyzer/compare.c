/* SPDX-License-Identifier: MIT */
/* compare.c - the processes and sites of two recordings side by side (see compare.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "util.h"

#define KEY_FRAMES 64

static bool
same_program(struct ld_db *a, const struct ld_process *pa, struct ld_db *b,
	     const struct ld_process *pb)
{
	const char *na = path_base(pa->exe), *nb = path_base(pb->exe);

	if (!na || !nb || strcmp(na, nb) != 0)
		return false;
	return strcmp(ld_args_json(a, pa->process_id), ld_args_json(b, pb->process_id)) == 0;
}

size_t
cmp_match(struct ld_db *base, struct ld_db *new_, bool by_order, struct cmp_pair **out,
	  size_t *unmatched)
{
	bool *taken = xcalloc(base->nprocs + 1, sizeof(bool));
	size_t n = 0, next = 0;

	*out = xcalloc(new_->nprocs + 1, sizeof(**out));
	*unmatched = 0;
	for (size_t i = 0; i < new_->nprocs; i++) {
		struct ld_process *p = &new_->procs[i];
		size_t j;
		if (!p->wanted)
			continue;
		if (by_order) {
			while (next < base->nprocs && !base->procs[next].wanted)
				next++;
			j = next < base->nprocs ? next++ : base->nprocs;
		} else {
			/* the first of BASE's not yet taken: the k-th with the k-th */
			for (j = 0; j < base->nprocs; j++)
				if (base->procs[j].wanted && !taken[j] &&
				    same_program(base, &base->procs[j], new_, p))
					break;
		}
		if (j == base->nprocs) {
			(*unmatched)++;
			continue;
		}
		taken[j] = true;
		(*out)[n++] = (struct cmp_pair){ &base->procs[j], p };
	}
	free(taken);
	return n;
}

const char *
cmp_name(struct ld_db *db, const struct ld_process *p, char *buf, size_t cap)
{
	const char *cmd = ld_command_line(db, p->process_id);
	const char *args = strchr(cmd, ' ');

	snprintf(buf, cap, "%s%s", p->exe ? path_base(p->exe) : "?", args ? args : "");
	return buf;
}

/* ---- sites ---- */

/* The text a site is matched by. */
static char *
site_key(struct ld_db *db, const struct fr_site *s, bool by_function)
{
	struct ld_frame f[KEY_FRAMES];
	char text[512];
	struct buf b = { 0 };

	if (by_function) {
		const char *name = s->stack_id ? ld_function_name(db, s->key) : NULL;
		if (name)
			return xstrdup(name);
		return xstrdup(ld_site_text(db, s->stack_id, text, sizeof(text)));
	}
	size_t n = s->stack_id > 0 ? ld_stack(db, s->stack_id, f, KEY_FRAMES) : 0;
	if (!n)
		return xstrdup("(no stack recorded)");
	for (size_t i = 0; i < n; i++) {
		const char *name = f[i].function
					   ? f[i].function
					   : ld_frame_text(text, sizeof(text), &f[i]);
		if (i)
			buf_add(&b, ";", 1);
		buf_add(&b, name, strlen(name));
	}
	buf_add(&b, "", 1);
	return b.p;
}

static int
by_key(const void *a, const void *b)
{
	const struct cmp_site *x = a, *y = b;

	return strcmp(x->key, y->key);
}

static void
add_site(struct fr_site *to, const struct fr_site *s)
{
	if (!to->stack_id)
		to->stack_id = s->stack_id;
	to->untrimmable += s->untrimmable;
	to->pinned += s->pinned;
	to->cached += s->cached;
	to->leaked += s->leaked;
	to->leaked_chunks += s->leaked_chunks;
}

static uint64_t
delta(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

uint64_t
cmp_site_change(const struct cmp_site *s)
{
	uint64_t d[4] = {
		delta(s->base.untrimmable, s->new_.untrimmable),
		delta(fr_retained(&s->base), fr_retained(&s->new_)),
		delta(s->base.pinned, s->new_.pinned),
		delta(s->base.leaked, s->new_.leaked),
	};
	uint64_t m = 0;

	for (int k = 0; k < 4; k++)
		m = d[k] > m ? d[k] : m;
	return m;
}

static int
by_change(const void *a, const void *b)
{
	uint64_t x = cmp_site_change(a), y = cmp_site_change(b);

	if (x != y)
		return x > y ? -1 : 1;
	return by_key(a, b);
}

size_t
cmp_sites(struct ld_db *base, const struct fr_process *xb, const struct fr_frame *fb,
	  struct ld_db *new_, const struct fr_process *xn, const struct fr_frame *fn,
	  bool by_function, struct cmp_site **out)
{
	struct fr_site *sb, *sn;
	size_t nb = fr_group_sites(base, xb, fb, by_function, &sb);
	size_t nn = fr_group_sites(new_, xn, fn, by_function, &sn);
	struct cmp_site *v = xcalloc(nb + nn + 1, sizeof(*v));
	size_t n = 0, m = 0;

	/* both sides' groups by key (two groups of one side may share a
	 * key: a function name that two ids have, as a stack's names) */
	for (size_t i = 0; i < nb; i++) {
		v[n].key = site_key(base, &sb[i], by_function);
		add_site(&v[n].base, &sb[i]);
		v[n++].in_base = true;
	}
	for (size_t i = 0; i < nn; i++) {
		v[n].key = site_key(new_, &sn[i], by_function);
		add_site(&v[n].new_, &sn[i]);
		v[n++].in_new = true;
	}
	free(sb);
	free(sn);
	qsort(v, n, sizeof(*v), by_key);
	for (size_t i = 0; i < n; i++) {
		if (m && strcmp(v[m - 1].key, v[i].key) == 0) {
			add_site(&v[m - 1].base, &v[i].base);
			add_site(&v[m - 1].new_, &v[i].new_);
			v[m - 1].in_base |= v[i].in_base;
			v[m - 1].in_new |= v[i].in_new;
			free(v[i].key);
		} else {
			v[m++] = v[i];
		}
	}
	qsort(v, m, sizeof(*v), by_change);
	*out = v;
	return m;
}

void
cmp_sites_free(struct cmp_site *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].key);
	free(v);
}
