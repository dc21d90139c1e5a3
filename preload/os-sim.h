/* SPDX-License-Identifier: MIT */
/*
 * os-sim.h - a simulated break for the allocator built into the analyzer
 * (heapprof advise replays a recording through heap.c over it).
 *
 * os-sim.c implements os.h: sbrk moves a break inside a region the
 * analyzer reserved, placed so that the simulated break starts at the same
 * offset modulo 1 GiB as the recorded process's did; every alignment the
 * heap code computes (pages, 64 MiB thread heaps, memalign) then comes out
 * as it did in the recorded process, and a recorded address is the
 * simulated one minus a constant delta. Mappings (mmap chunks, thread
 * heaps) are the analyzer's own anonymous, never-touched-but-for-headers
 * mappings: where the kernel puts them was never the allocator's choice.
 * The allocator's memory is the analyzer's: only the chunk headers it
 * writes are ever touched.
 */
#ifndef HP_OS_SIM_H
#define HP_OS_SIM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Reserve `cap` bytes of address space for the break, which starts at
 * rec_break's offset modulo 1 GiB; *delta is then simulated - recorded.
 * Returns 0, or -1 if the address space is not there.
 */
int hp_os_sim_start(uintptr_t rec_break, size_t cap, intptr_t *delta);

/* The simulated break now. */
uintptr_t hp_os_sim_brk(void);

#endif
