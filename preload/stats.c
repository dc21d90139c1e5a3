/* SPDX-License-Identifier: MIT */
/*
 * stats.c - malloc_stats() and malloc_info() (see stats.h).
 *
 * The one preload file that uses stdio, because both APIs are defined to
 * write to a FILE. It never calls stdio with the heap lock held.
 */
#include "config.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>

#include "heap.h"
#include "tarena.h"
#include "stats.h"
#include "tune.h"

#define MAX_ARENAS_SHOWN 1024

void
hp_stats_print(FILE *fp)
{
	/* Gather first (under each arena's lock), print after. */
	static struct mallinfo2 mi[MAX_ARENAS_SHOWN];
	static struct hp_mutex stats_lock = HP_MUTEX_INIT;
	struct hp_mstate *av = &hp_main_arena;
	unsigned n = 0;
	int oldstate;

	hp_mutex_lock(&stats_lock);
	do {
		bool locked = hp_mstate_lock(av);
		mi[n] = (struct mallinfo2){ 0 };
		hp_heap_mallinfo_locked(av, &mi[n]);
		hp_mstate_unlock(av, locked);
		n++;
		av = av->next;
	} while (av != &hp_main_arena && n < MAX_ARENAS_SHOWN);

	unsigned int in_use_b = (unsigned int)hp_mp.mmapped_mem, system_b = in_use_b;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &oldstate);
	flockfile(fp);
	for (unsigned i = 0; i < n; i++) {
		fprintf(fp, "Arena %d:\n", (int)i);
		fprintf(fp, "system bytes     = %10u\n", (unsigned int)mi[i].arena);
		fprintf(fp, "in use bytes     = %10u\n", (unsigned int)mi[i].uordblks);
		system_b += (unsigned int)mi[i].arena;
		in_use_b += (unsigned int)mi[i].uordblks;
	}
	fprintf(fp, "Total (incl. mmap):\n");
	fprintf(fp, "system bytes     = %10u\n", system_b);
	fprintf(fp, "in use bytes     = %10u\n", in_use_b);
	fprintf(fp, "max mmap regions = %10u\n", (unsigned int)hp_mp.max_n_mmaps);
	fprintf(fp, "max mmap bytes   = %10lu\n", (unsigned long)hp_mp.max_mmapped_mem);
	funlockfile(fp);
	pthread_setcancelstate(oldstate, NULL);
	hp_mutex_unlock(&stats_lock);
}

struct heap_summary {
	struct hp_bin_stats fast[HP_NFASTBINS], bins[HP_NBINS];
	size_t avail, system_mem, max_system_mem;
	size_t heap_size, heap_mprotect_size, heap_count;
	bool main;
};

static void
summarize(struct hp_mstate *av, struct heap_summary *h)
{
	bool locked = hp_mstate_lock(av);

	h->main = av == &hp_main_arena;
	h->avail = hp_chunksize(av->top);
	hp_heap_bin_stats_locked(av, h->fast, h->bins);
	h->system_mem = av->system_mem;
	h->max_system_mem = av->max_system_mem;
	h->heap_size = h->heap_mprotect_size = h->heap_count = 0;
	if (!h->main)
		for (struct hp_mapped_heap *hi = hp_mapped_heap_of(av->top); hi; hi = hi->prev) {
			h->heap_size += hi->size;
			h->heap_mprotect_size += hi->mprotect_size;
			h->heap_count++;
		}
	hp_mstate_unlock(av, locked);
}

int
hp_stats_info(FILE *fp)
{
	static struct heap_summary h;
	static struct hp_mutex info_lock = HP_MUTEX_INIT;
	size_t total_nblocks = 0, total_nfastblocks = 0, total_avail = 0, total_fastavail = 0;
	size_t total_system = 0, total_max_system = 0, total_aspace = 0, total_aspace_mprotect = 0;
	struct hp_mstate *av = &hp_main_arena;
	int n = 0;

	hp_mutex_lock(&info_lock);
	fputs("<malloc version=\"1\">\n", fp);
	do {
		size_t nblocks = 1, nfastblocks = 0, avail, fastavail = 0;

		summarize(av, &h);
		fprintf(fp, "<heap nr=\"%d\">\n<sizes>\n", n++);
		avail = h.avail;
		for (unsigned i = 0; i < HP_NFASTBINS; i++) {
			fastavail += h.fast[i].total;
			nfastblocks += h.fast[i].count;
		}
		avail += fastavail;
		for (unsigned i = 1; i < HP_NBINS; i++) {
			nblocks += h.bins[i].count;
			avail += h.bins[i].total;
		}
		total_nfastblocks += nfastblocks;
		total_fastavail += fastavail;
		total_nblocks += nblocks;
		total_avail += avail;
		/* glibc's sizes[]: the fastbins, then bins 2..127; the unsorted
		 * bin is printed on its own line. */
		for (unsigned i = 0; i < HP_NFASTBINS; i++)
			if (h.fast[i].count != 0)
				fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
					h.fast[i].from, h.fast[i].to, h.fast[i].total, h.fast[i].count);
		for (unsigned i = 2; i < HP_NBINS; i++)
			if (h.bins[i].count != 0)
				fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
					h.bins[i].from, h.bins[i].to, h.bins[i].total, h.bins[i].count);
		if (h.bins[1].count != 0)
			fprintf(fp, "  <unsorted from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
				h.bins[1].from, h.bins[1].to, h.bins[1].total, h.bins[1].count);
		total_system += h.system_mem;
		total_max_system += h.max_system_mem;
		fprintf(fp,
			"</sizes>\n<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
			"<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
			"<system type=\"current\" size=\"%zu\"/>\n"
			"<system type=\"max\" size=\"%zu\"/>\n",
			nfastblocks, fastavail, nblocks, avail, h.system_mem, h.max_system_mem);
		if (!h.main) {
			fprintf(fp,
				"<aspace type=\"total\" size=\"%zu\"/>\n"
				"<aspace type=\"mprotect\" size=\"%zu\"/>\n"
				"<aspace type=\"subheaps\" size=\"%zu\"/>\n",
				h.heap_size, h.heap_mprotect_size, h.heap_count);
			total_aspace += h.heap_size;
			total_aspace_mprotect += h.heap_mprotect_size;
		} else {
			fprintf(fp,
				"<aspace type=\"total\" size=\"%zu\"/>\n"
				"<aspace type=\"mprotect\" size=\"%zu\"/>\n",
				h.system_mem, h.system_mem);
			total_aspace += h.system_mem;
			total_aspace_mprotect += h.system_mem;
		}
		fputs("</heap>\n", fp);
		av = av->next;
	} while (av != &hp_main_arena);
	fprintf(fp,
		"<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
		"<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
		"<total type=\"mmap\" count=\"%d\" size=\"%zu\"/>\n"
		"<system type=\"current\" size=\"%zu\"/>\n"
		"<system type=\"max\" size=\"%zu\"/>\n"
		"<aspace type=\"total\" size=\"%zu\"/>\n"
		"<aspace type=\"mprotect\" size=\"%zu\"/>\n"
		"</malloc>\n",
		total_nfastblocks, total_fastavail, total_nblocks, total_avail,
		__atomic_load_n(&hp_mp.n_mmaps, __ATOMIC_RELAXED),
		__atomic_load_n(&hp_mp.mmapped_mem, __ATOMIC_RELAXED), total_system,
		total_max_system, total_aspace, total_aspace_mprotect);
	hp_mutex_unlock(&info_lock);
	return 0;
}
