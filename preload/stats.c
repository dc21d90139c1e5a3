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
#include "stats.h"
#include "tune.h"

void
hp_stats_print(FILE *fp)
{
	struct mallinfo2 mi;
	bool locked;
	int oldstate;

	locked = hp_heap_lock();
	hp_heap_mallinfo_locked(&mi);
	hp_heap_unlock(locked);

	unsigned int in_use_b = (unsigned int)hp_mp.mmapped_mem, system_b = in_use_b;
	system_b += (unsigned int)mi.arena;
	in_use_b += (unsigned int)mi.uordblks;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &oldstate);
	flockfile(fp);
	fprintf(fp, "Arena %d:\n", 0);
	fprintf(fp, "system bytes     = %10u\n", (unsigned int)mi.arena);
	fprintf(fp, "in use bytes     = %10u\n", (unsigned int)mi.uordblks);
	fprintf(fp, "Total (incl. mmap):\n");
	fprintf(fp, "system bytes     = %10u\n", system_b);
	fprintf(fp, "in use bytes     = %10u\n", in_use_b);
	fprintf(fp, "max mmap regions = %10u\n", (unsigned int)hp_mp.max_n_mmaps);
	fprintf(fp, "max mmap bytes   = %10lu\n", (unsigned long)hp_mp.max_mmapped_mem);
	funlockfile(fp);
	pthread_setcancelstate(oldstate, NULL);
}

int
hp_stats_info(FILE *fp)
{
	struct hp_bin_stats fast[HP_NFASTBINS], bins[HP_NBINS];
	size_t nblocks = 1, nfastblocks = 0, avail, fastavail = 0, system_mem, max_system_mem;
	size_t mmapped;
	int n_mmaps;
	bool locked;

	locked = hp_heap_lock();
	avail = hp_chunksize(hp_heap.top);
	hp_heap_bin_stats_locked(fast, bins);
	system_mem = hp_heap.system_mem;
	max_system_mem = hp_heap.max_system_mem;
	hp_heap_unlock(locked);
	n_mmaps = __atomic_load_n(&hp_mp.n_mmaps, __ATOMIC_RELAXED);
	mmapped = __atomic_load_n(&hp_mp.mmapped_mem, __ATOMIC_RELAXED);

	for (unsigned i = 0; i < HP_NFASTBINS; i++) {
		fastavail += fast[i].total;
		nfastblocks += fast[i].count;
	}
	avail += fastavail;
	for (unsigned i = 1; i < HP_NBINS; i++) {
		nblocks += bins[i].count;
		avail += bins[i].total;
	}

	fputs("<malloc version=\"1\">\n", fp);
	fprintf(fp, "<heap nr=\"%d\">\n<sizes>\n", 0);
	/* glibc's sizes[] is the fastbins then bins 1..127; index NFASTBINS
	 * (the unsorted bin) is printed separately. */
	for (unsigned i = 0; i < HP_NFASTBINS; i++)
		if (fast[i].count != 0)
			fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
				fast[i].from, fast[i].to, fast[i].total, fast[i].count);
	for (unsigned i = 2; i < HP_NBINS; i++)
		if (bins[i].count != 0)
			fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
				bins[i].from, bins[i].to, bins[i].total, bins[i].count);
	if (bins[1].count != 0)
		fprintf(fp, "  <unsorted from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
			bins[1].from, bins[1].to, bins[1].total, bins[1].count);
	fprintf(fp,
		"</sizes>\n<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
		"<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
		"<system type=\"current\" size=\"%zu\"/>\n"
		"<system type=\"max\" size=\"%zu\"/>\n",
		nfastblocks, fastavail, nblocks, avail, system_mem, max_system_mem);
	fprintf(fp,
		"<aspace type=\"total\" size=\"%zu\"/>\n"
		"<aspace type=\"mprotect\" size=\"%zu\"/>\n",
		system_mem, system_mem);
	fputs("</heap>\n", fp);
	fprintf(fp,
		"<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
		"<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
		"<total type=\"mmap\" count=\"%d\" size=\"%zu\"/>\n"
		"<system type=\"current\" size=\"%zu\"/>\n"
		"<system type=\"max\" size=\"%zu\"/>\n"
		"<aspace type=\"total\" size=\"%zu\"/>\n"
		"<aspace type=\"mprotect\" size=\"%zu\"/>\n"
		"</malloc>\n",
		nfastblocks, fastavail, nblocks, avail, n_mmaps, mmapped, system_mem,
		max_system_mem, system_mem, system_mem);
	return 0;
}
