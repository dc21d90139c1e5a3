/* SPDX-License-Identifier: MIT */
/*
 * dtv.h - keep heapprof's own TLS modules from changing the heap.
 *
 * For every new thread, ld.so callocs a dynamic thread vector (DTV) of
 * (max TLS module id + 16) 16-byte slots (elf/dl-tls.c allocate_dtv). Every
 * TLS module that exists only because heapprof is loaded (libheapprof.so
 * itself, libunwind) makes that chunk 16 bytes larger than in the program's
 * native run, which would shift every later chunk of the creating thread's
 * arena. So the real DTV is served from heapprof's own memory, and a stand-in
 * chunk of exactly the native size is allocated from the heap in its place
 * (and freed or resized with it): the heap sees what glibc alone would.
 */
#ifndef HP_DTV_H
#define HP_DTV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* TLS modules heapprof added (0 until hp_dtv_init ran), and ld.so's text. */
extern size_t hp_dtv_extra;
extern uintptr_t hp_dtv_ldso_lo, hp_dtv_ldso_hi;

/*
 * Count the TLS modules loaded only because of heapprof (objects not
 * reachable through DT_NEEDED from anything but libheapprof.so) and find
 * ld.so. Called from the constructor. Lock: none. Allocates: no.
 */
void hp_dtv_init(void);

/* Is calloc(n, elem) from return address `ret` ld.so allocating a DTV? */
bool hp_dtv_is_vector(size_t n, size_t elem, const void *ret);

/*
 * The DTV, from heapprof's own memory, zeroed, with a stand-in heap chunk made
 * by `standin_calloc(n - extra, 16)` (the program's normal calloc path).
 * NULL with errno ENOMEM if either fails.
 */
void *hp_dtv_alloc(size_t n, void *(*standin_calloc)(size_t, size_t));

/* free() of an arena block: if it is a DTV, free its stand-in through
 * `standin_free` too. Returns true if it was a DTV (and is now freed). */
bool hp_dtv_free(void *mem, void (*standin_free)(void *));

/* realloc() of an arena block: a DTV grows by (bytes - old) and its
 * stand-in with it. Returns the new block, NULL on failure (both intact),
 * or `mem` itself (cast away) as HP_DTV_NOT_MINE when it is not a DTV. */
#define HP_DTV_NOT_MINE ((void *)1)
void *hp_dtv_realloc(void *mem, size_t bytes, void *(*standin_realloc)(void *, size_t));

#endif
