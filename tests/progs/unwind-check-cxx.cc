/* SPDX-License-Identifier: MIT */
/*
 * unwind-check-cxx SEED ROUNDS - C++ allocations around exceptions, for
 * the capture-equality test (tests/record/unwind.sh runs it with
 * HEAPPROF_UNWIND_CHECK: every capture is compared with libunwind's).
 *
 * Each round recurses a random depth (0 to 80) through frames that own
 * strings and vectors, and at the bottom allocates (new, containers,
 * std::string growth) and often throws: the exception object comes from
 * __cxa_allocate_exception (malloc), destructors that allocate run while
 * the exception propagates, a catch at a random level allocates, sometimes
 * rethrows or nests a second exception, and std::exception_ptr carries one
 * across a thread. Two threads do the same. Prints "ok".
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

struct rng {
	uint64_t s;
	unsigned pick(unsigned n)
	{
		s ^= s >> 12;
		s ^= s << 25;
		s ^= s >> 27;
		return (unsigned)((s * 0x2545f4914f6cdd1dULL) >> 32) % n;
	}
};

struct failure : std::runtime_error {
	int level;
	failure(const std::string &what, int at) : std::runtime_error(what), level(at) {}
};

volatile long sink;

/* Allocates in its destructor, which runs while an exception unwinds. */
struct noisy {
	std::vector<int> v;
	explicit noisy(unsigned n) : v(n, 1) {}
	~noisy()
	{
		std::string s(40 + v.size(), 'x');
		sink += (long)s.size();
	}
};

__attribute__((noinline)) void
bottom(rng &r, std::map<int, std::string> &keep)
{
	switch (r.pick(6)) {
	case 0:
		keep[(int)r.pick(100)] = std::string(1 + r.pick(300), 'a');
		return;
	case 1: {
		std::unique_ptr<long[]> a(new long[1 + r.pick(500)]);
		sink += (long)a[0];
		return;
	}
	case 2:
		throw failure(std::string(20 + r.pick(100), 'e'), (int)r.pick(80));
	case 3:
		throw std::out_of_range("out of range " + std::to_string(r.pick(1000)));
	case 4: {
		std::vector<std::string> v;
		for (unsigned i = 0; i < 1 + r.pick(20); i++)
			v.emplace_back(30 + i, 'v');
		sink += (long)v.size();
		return;
	}
	default:
		throw 42;
	}
}

__attribute__((noinline)) long
down(rng &r, int depth, std::map<int, std::string> &keep)
{
	noisy guard(r.pick(64));

	if (depth == 0) {
		bottom(r, keep);
		return 1;
	}
	try {
		return down(r, depth - 1, keep) + 1;
	} catch (const failure &f) {
		if (f.level != depth)
			throw;
		std::string note = "caught at " + std::to_string(depth) + ": " + f.what();
		keep[depth] = note;
		if (r.pick(4) == 0) {
			try {
				throw std::logic_error(note);
			} catch (const std::logic_error &e) {
				keep[-depth] = e.what();
			}
		}
		return 0;
	}
}

void
rounds(uint64_t seed, long n)
{
	rng r{seed | 1};
	std::map<int, std::string> keep;

	for (long i = 0; i < n; i++) {
		try {
			sink += down(r, (int)r.pick(81), keep);
		} catch (const std::exception &e) {
			keep[1000 + (int)(i % 7)] = e.what();
		} catch (int) {
			keep[2000] = "int";
		}
	}
	/* An exception carried across a thread. */
	std::exception_ptr p;
	std::thread t([&] {
		try {
			down(r, 10, keep);
			throw std::runtime_error("from thread");
		} catch (...) {
			p = std::current_exception();
		}
	});
	t.join();
	try {
		if (p)
			std::rethrow_exception(p);
	} catch (const std::exception &e) {
		keep[3000] = e.what();
	} catch (...) {
		keep[3001] = "other";
	}
}

} // namespace

int
main(int argc, char **argv)
{
	if (argc != 3) {
		std::fprintf(stderr, "usage: unwind-check-cxx SEED ROUNDS\n");
		return 2;
	}
	uint64_t seed = std::strtoull(argv[1], nullptr, 0);
	long n = std::strtol(argv[2], nullptr, 0);
	std::thread a(rounds, seed * 3 + 1, n), b(rounds, seed * 5 + 2, n);
	rounds(seed, n);
	a.join();
	b.join();
	std::puts("ok");
	return 0;
}
