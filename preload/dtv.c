/* SPDX-License-Identifier: MIT */
/*
 * dtv.c - thread vectors served outside the heap, with native-size
 * stand-ins in it (see dtv.h).
 *
 * Runs inside calloc/free called from ld.so (which may hold its TLS lock):
 * only heapprof's own memory and its own small lock here, no loader calls.
 * hp_dtv_init runs from the constructor and may walk the loaded objects.
 */
#include "config.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <string.h>
#include <sys/auxv.h>

#include "selfmem.h"
#include "dtv.h"
#include "lock.h"

size_t hp_dtv_extra;
uintptr_t hp_dtv_ldso_lo, hp_dtv_ldso_hi;

/* Live DTVs and their stand-ins: one per thread. */
struct pair {
	void *dtv;
	void *standin;
	struct pair *next;
};

static struct pair *pairs;
static struct hp_mutex pairs_lock = HP_MUTEX_INIT;

/* ---- which TLS modules are heapprof's ---- */

#define MAX_OBJS 512

struct obj {
	const char *soname; /* DT_SONAME, or the file's base name */
	const char *strtab;
	const ElfW(Dyn) *dyn;
	bool tls;
	bool ours;      /* libheapprof.so */
	bool reachable; /* loaded even without heapprof */
};

struct objs {
	struct obj v[MAX_OBJS];
	int n;
	uintptr_t self_addr;
};

static const char *
base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static int
collect(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct objs *o = arg;
	struct obj *ob;
	uintptr_t lo = UINTPTR_MAX, hi = 0;

	(void)size;
	if (o->n == MAX_OBJS)
		return 1;
	ob = &o->v[o->n++];
	memset(ob, 0, sizeof(*ob));
	ob->tls = info->dlpi_tls_modid != 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_DYNAMIC)
			ob->dyn = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
		if (ph->p_type == PT_LOAD) {
			uintptr_t a = info->dlpi_addr + ph->p_vaddr;
			if (a < lo)
				lo = a;
			if (a + ph->p_memsz > hi)
				hi = a + ph->p_memsz;
			if ((ph->p_flags & PF_X) && info->dlpi_addr == getauxval(AT_BASE)) {
				hp_dtv_ldso_lo = a;
				hp_dtv_ldso_hi = a + ph->p_memsz;
			}
		}
	}
	ob->ours = o->self_addr >= lo && o->self_addr < hi;
	ob->soname = base_name(info->dlpi_name ? info->dlpi_name : "");
	if (ob->dyn) {
		/* ld.so relocates d_ptr entries in place for most objects but
		 * not all (the vDSO, read-only .dynamic): take what lies inside
		 * the object. */
		for (const ElfW(Dyn) *d = ob->dyn; d->d_tag != DT_NULL; d++)
			if (d->d_tag == DT_STRTAB) {
				uintptr_t a = d->d_un.d_ptr;
				if (a < lo || a >= hi)
					a += info->dlpi_addr;
				ob->strtab = a >= lo && a < hi ? (const char *)a : NULL;
			}
		for (const ElfW(Dyn) *d = ob->dyn; ob->strtab && d->d_tag != DT_NULL; d++)
			if (d->d_tag == DT_SONAME)
				ob->soname = ob->strtab + d->d_un.d_val;
	}
	return 0;
}

static void
mark(struct objs *o, int i)
{
	if (o->v[i].reachable || o->v[i].ours)
		return;
	o->v[i].reachable = true;
	if (!o->v[i].dyn || !o->v[i].strtab)
		return;
	for (const ElfW(Dyn) *d = o->v[i].dyn; d->d_tag != DT_NULL; d++) {
		if (d->d_tag != DT_NEEDED)
			continue;
		const char *need = o->v[i].strtab + d->d_un.d_val;
		for (int j = 0; j < o->n; j++)
			if (strcmp(o->v[j].soname, need) == 0 ||
			    strcmp(base_name(o->v[j].soname), base_name(need)) == 0)
				mark(o, j);
	}
}

void
hp_dtv_init(void)
{
	static struct objs o; /* too big for the stack; runs once */
	size_t extra = 0;

	o.n = 0;
	o.self_addr = (uintptr_t)&hp_dtv_init;
	dl_iterate_phdr(collect, &o);
	if (o.n == 0 || o.v[0].ours)
		return; /* linked into the executable: nothing added */
	/* Everything the program would load without us: the executable, the
	 * vDSO, ld.so, other preloads, and all they need. */
	for (int i = 0; i < o.n; i++) {
		bool root = i == 0 || strncmp(o.v[i].soname, "linux-vdso", 10) == 0 ||
			    strncmp(o.v[i].soname, "ld-linux", 8) == 0;
		if (root)
			mark(&o, i);
	}
	/* Other LD_PRELOAD objects are loaded right after the executable and
	 * are native too; they are not in anyone's DT_NEEDED, and neither is
	 * libheapprof.so. */
	for (int i = 1; i < o.n; i++) {
		if (o.v[i].ours)
			break;
		mark(&o, i);
	}
	for (int i = 0; i < o.n; i++)
		if (o.v[i].tls && !o.v[i].reachable)
			extra++;
	__atomic_store_n(&hp_dtv_extra, extra, __ATOMIC_RELEASE);
}

/* The calling thread's DTV length (x86_64: the TCB's second word points
 * one slot into the vector; slot -1 holds its length). */
static size_t
current_dtv_length(void)
{
#if defined(__x86_64__)
	const size_t *dtv;

	__asm__("mov %%fs:8, %0" : "=r"(dtv));
	return dtv ? dtv[-2] : 0;
#else
	return 0;
#endif
}

bool
hp_dtv_is_vector(size_t n, size_t elem, const void *ret)
{
	uintptr_t r = (uintptr_t)ret;

	if (elem != 16 || hp_dtv_extra == 0 || r < hp_dtv_ldso_lo || r >= hp_dtv_ldso_hi)
		return false;
	/* allocate_dtv asks for max module id + 14 + 2 slots, as long as the
	 * creating thread's own vector (same formula when it was made). */
	return n > hp_dtv_extra + 2 && n == current_dtv_length() + 2;
}

void *
hp_dtv_alloc(size_t n, void *(*standin_calloc)(size_t, size_t))
{
	struct pair *p = hp_selfmem_alloc(sizeof(*p), 16, false);
	void *dtv = hp_selfmem_alloc(n * 16, 16, true);
	void *standin;

	if (!p || !dtv) {
		if (p)
			hp_selfmem_free(p);
		if (dtv)
			hp_selfmem_free(dtv);
		errno = ENOMEM;
		return NULL;
	}
	standin = standin_calloc(n - hp_dtv_extra, 16);
	if (standin == NULL) {
		hp_selfmem_free(p);
		hp_selfmem_free(dtv);
		return NULL;
	}
	p->dtv = dtv;
	p->standin = standin;
	hp_mutex_lock(&pairs_lock);
	p->next = pairs;
	pairs = p;
	hp_mutex_unlock(&pairs_lock);
	return dtv;
}

/* Unlink and return the pair of a DTV, or NULL. */
static struct pair *
take(void *dtv)
{
	struct pair **pp, *p = NULL;

	hp_mutex_lock(&pairs_lock);
	for (pp = &pairs; *pp; pp = &(*pp)->next)
		if ((*pp)->dtv == dtv) {
			p = *pp;
			*pp = p->next;
			break;
		}
	hp_mutex_unlock(&pairs_lock);
	return p;
}

static void
put(struct pair *p)
{
	hp_mutex_lock(&pairs_lock);
	p->next = pairs;
	pairs = p;
	hp_mutex_unlock(&pairs_lock);
}

bool
hp_dtv_free(void *mem, void (*standin_free)(void *))
{
	struct pair *p;

	if (pairs == NULL)
		return false;
	p = take(mem);
	if (p == NULL)
		return false;
	standin_free(p->standin);
	hp_selfmem_free(p->dtv);
	hp_selfmem_free(p);
	return true;
}

void *
hp_dtv_realloc(void *mem, size_t bytes, void *(*standin_realloc)(void *, size_t))
{
	struct pair *p;
	void *dtv, *standin;

	if (pairs == NULL || (p = take(mem)) == NULL)
		return HP_DTV_NOT_MINE;
	dtv = hp_selfmem_realloc(mem, bytes);
	if (dtv == NULL) {
		put(p);
		errno = ENOMEM;
		return NULL;
	}
	standin = standin_realloc(p->standin, bytes - 16 * hp_dtv_extra);
	if (standin)
		p->standin = standin;
	p->dtv = dtv;
	put(p);
	return dtv;
}
