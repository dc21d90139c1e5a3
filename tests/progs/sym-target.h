/* SPDX-License-Identifier: MIT */
/*
 * sym-target.h - what sym-target's C and C++ halves and test-symbolize
 * share: the numbers of the call sites and the function they report to.
 */
#ifndef HP_SYM_TARGET_H
#define HP_SYM_TARGET_H

/* noipa: no inlining, cloning (sym_plain.constprop.0) or IPA-based call elision. */
#if defined(__clang__)
#define SYM_NOIPA __attribute__((noinline))
#else
#define SYM_NOIPA __attribute__((noipa))
#endif

enum {
	SITE_PLAIN,
	SITE_INLINE,
	SITE_CXX,
	SITE_CXX_INLINE,
	SITE_COUNT,
};

#ifdef __cplusplus
extern "C" {
#endif
int sym_note(int site, int line, int outer_line);
int hp_sym_cxx_entry(int x); /* sym-target-cxx.cc */
#ifdef __cplusplus
}
#endif

#endif
