/* SPDX-License-Identifier: MIT */
/*
 * sym-target-cxx - the C++ half of sym-target (see sym-target.c): a
 * function in a namespace, hp_sym::func(int), which test-symbolize must
 * name demangled, and a template member function,
 * hp_sym::box<int>::get(int) const, inlined into it.
 */
#include "sym-target.h"

namespace hp_sym {

template <typename T> struct box {
	T v;

	__attribute__((always_inline)) inline T
	get(int outer_line) const
	{
		T r;

		r = sym_note(SITE_CXX_INLINE, __LINE__, outer_line);
		return r + v;
	}
};

SYM_NOIPA int func(int a);

SYM_NOIPA int
func(int a)
{
	box<int> b = { a };
	int r, s;

	r = sym_note(SITE_CXX, __LINE__, 0);
	s = b.get(__LINE__);
	return r * a + s;
}

} /* namespace hp_sym */

int
hp_sym_cxx_entry(int x)
{
	return hp_sym::func(x);
}
