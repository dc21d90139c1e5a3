/* SPDX-License-Identifier: MIT */
/*
 * cxx-new - libstdc++'s operator new and delete on top of the allocator.
 * Proves that every form of C++17 allocation libstdc++ maps onto malloc,
 * free and aligned_alloc works through the preloaded allocator: container
 * churn keeps its contents, over-aligned new (alignas(64), alignas(4096),
 * operator new(size, std::align_val_t)) and std::aligned_alloc honour the
 * alignment, an impossible new throws std::bad_alloc after consulting the
 * new-handler (and the nothrow forms return nullptr), deleting nullptr is
 * harmless, and thread_local destructors may allocate and free while their
 * thread exits.
 *
 * Semantics mirror libstdc++'s new/delete tests (18_support/new_delete*,
 * aligned_alloc, new_handler) and mimalloc's test-api C++ checks; the code
 * is our own.
 *
 * Runs natively and under LD_PRELOAD=libheapprof.so; both must pass.
 */
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <malloc.h>

#include "../harness.h"

namespace {

/* The harness is not thread-safe: threads count their failures here. */
std::atomic<unsigned> thread_failures{0};
std::mutex report_lock;

void
thread_check(bool ok, const char *what, long a = 0)
{
	if (ok)
		return;
	if (thread_failures.fetch_add(1) < 10) {
		std::lock_guard<std::mutex> g(report_lock);
		printf("FAIL (thread) - %s (%ld)\n", what, a);
	}
}

bool
is_aligned(const void *p, std::size_t a)
{
	return (reinterpret_cast<std::uintptr_t>(p) & (a - 1)) == 0;
}

std::uint64_t
rng_next(std::uint64_t &s)
{
	s ^= s >> 12;
	s ^= s << 25;
	s ^= s >> 27;
	return s * 0x2545f4914f6cdd1dULL;
}

/* A string whose contents say which key it belongs to and how long it is,
 * so a corrupted or swapped buffer is noticed. */
std::string
make_value(std::uint64_t key, std::size_t len)
{
	std::string s(len, '\0');

	for (std::size_t i = 0; i < len; i++)
		s[i] = static_cast<char>('a' + (key * 31 + i * 7) % 26);
	return s;
}

bool
value_ok(const std::string &s, std::uint64_t key, std::size_t len)
{
	if (s.size() != len)
		return false;
	for (std::size_t i = 0; i < len; i++)
		if (s[i] != static_cast<char>('a' + (key * 31 + i * 7) % 26))
			return false;
	return true;
}

/* ---- containers ---- */

/* One round of container churn; returns the number of bad values seen. */
unsigned
container_churn(std::uint64_t seed, unsigned rounds)
{
	std::uint64_t rng = seed | 1;
	unsigned bad = 0;

	for (unsigned r = 0; r < rounds; r++) {
		std::vector<std::string> vec;
		std::map<std::uint64_t, std::string> tree;
		std::unordered_map<std::string, std::vector<std::uint64_t>> hash;
		unsigned n = 200 + static_cast<unsigned>(rng_next(rng) % 300);

		for (unsigned i = 0; i < n; i++) {
			std::uint64_t key = rng_next(rng) % 100000;
			std::size_t len = static_cast<std::size_t>(rng_next(rng) % 200);

			vec.push_back(make_value(i, len % 40));
			tree[key] = make_value(key, len);
			hash[make_value(key, 20)].assign(len % 64, key);
		}
		/* Grow, shrink and rebuild while checking every value. */
		for (unsigned i = 0; i < vec.size(); i++)
			if (!value_ok(vec[i], i, vec[i].size()))
				bad++;
		for (auto it = tree.begin(); it != tree.end();) {
			if (!value_ok(it->second, it->first, it->second.size()))
				bad++;
			if (it->first % 2)
				it = tree.erase(it);
			else
				++it;
		}
		for (auto &kv : hash) {
			for (std::uint64_t v : kv.second)
				if (v != kv.second.front())
					bad++;
			kv.second.resize(kv.second.size() * 2 + 1, kv.second.empty() ? 0 : kv.second.front());
			kv.second.shrink_to_fit();
		}
		vec.erase(vec.begin(), vec.begin() + vec.size() / 2);
		vec.shrink_to_fit();
		for (unsigned i = 0; i < vec.size(); i++)
			if (!value_ok(vec[i], i + (n - vec.size()), vec[i].size()))
				bad++;
		for (auto &kv : tree) {
			kv.second.append(1000, 'z');
			if (kv.second.size() < 1000)
				bad++;
		}
	}
	return bad;
}

void
test_containers(void)
{
	CHECK(container_churn(1, 150) == 0, "container churn keeps every value");
}

/* ---- over-aligned types ---- */

struct alignas(64) line {
	unsigned char bytes[100];
};

struct alignas(4096) page {
	unsigned char bytes[5000];
};

template <class T>
bool
fill_and_check(T *p, std::size_t n, unsigned char v)
{
	std::memset(p, v, sizeof(T) * n);
	for (std::size_t i = 0; i < sizeof(T) * n; i++)
		if (reinterpret_cast<unsigned char *>(p)[i] != v)
			return false;
	return true;
}

void
test_overaligned(void)
{
	std::vector<line *> lines;
	std::vector<page *> pages;
	bool all_aligned = true, intact = true;

	static_assert(alignof(line) > __STDCPP_DEFAULT_NEW_ALIGNMENT__, "line is over-aligned");
	for (unsigned i = 0; i < 64; i++) {
		lines.push_back(new line);
		lines.push_back(new line[1 + i % 7]);
		if (i % 8 == 0) {
			pages.push_back(new page);
			pages.push_back(new page[1 + i % 3]);
		}
	}
	for (line *l : lines) {
		all_aligned = all_aligned && is_aligned(l, 64);
		intact = intact && fill_and_check(l, 1, 0x11);
	}
	for (page *p : pages) {
		all_aligned = all_aligned && is_aligned(p, 4096);
		intact = intact && fill_and_check(p, 1, 0x22);
	}
	CHECK(all_aligned, "new of alignas(64) and alignas(4096) types is aligned");
	CHECK(intact, "over-aligned objects are writable");
	for (std::size_t i = 0; i < lines.size(); i++)
		if (i % 2)
			delete[] lines[i];
		else
			delete lines[i];
	for (std::size_t i = 0; i < pages.size(); i++)
		if (i % 2)
			delete[] pages[i];
		else
			delete pages[i];

	/* The standard allocator picks the aligned operator new for these. */
	std::vector<line> vl(1000);
	std::vector<page> vp(5);
	bool elems = true;

	for (const line &l : vl)
		elems = elems && is_aligned(&l, 64);
	for (const page &p : vp)
		elems = elems && is_aligned(&p, 4096);
	CHECK(elems, "std::vector of over-aligned elements is aligned");
	auto up = std::make_unique<page>();
	auto sp = std::make_shared<line>();
	CHECK(is_aligned(up.get(), 4096) && is_aligned(sp.get(), 64),
	      "make_unique/make_shared of over-aligned types are aligned");

	/* operator new(size, align_val_t) and its deletes, directly. */
	bool direct = true;
	for (std::size_t a = 16; a <= 65536; a *= 2) {
		for (std::size_t size : { std::size_t(1), a / 2 + 1, a, 3 * a + 5 }) {
			void *p = ::operator new(size, std::align_val_t(a));
			void *q = ::operator new[](size, std::align_val_t(a));
			void *r = ::operator new(size, std::align_val_t(a), std::nothrow);

			direct = direct && p && q && r && is_aligned(p, a) && is_aligned(q, a) &&
				 is_aligned(r, a);
			std::memset(p, 0x33, size);
			std::memset(q, 0x44, size);
			std::memset(r, 0x55, size);
			direct = direct && static_cast<unsigned char *>(p)[size - 1] == 0x33 &&
				 static_cast<unsigned char *>(q)[0] == 0x44;
			::operator delete(p, size, std::align_val_t(a));
			::operator delete[](q, std::align_val_t(a));
			::operator delete(r, std::align_val_t(a), std::nothrow);
		}
	}
	CHECK(direct, "operator new(size, align_val_t) for alignments 16..64 KiB");

	/* std::aligned_alloc (C++17 <cstdlib>). */
	bool aa = true;
	for (std::size_t a = 8; a <= 8192; a *= 2) {
		void *p = std::aligned_alloc(a, 3 * a);

		aa = aa && p != nullptr && is_aligned(p, a) && malloc_usable_size(p) >= 3 * a;
		if (p)
			std::memset(p, 0x66, 3 * a);
		std::free(p);
	}
	CHECK(aa, "std::aligned_alloc honours alignments 8..8192");
}

/* ---- allocation failure ---- */

std::atomic<unsigned> handler_calls{0};

void
counting_handler()
{
	handler_calls++;
	/* Give up: the next failure throws. */
	std::set_new_handler(nullptr);
}

/* Sizes no allocator can provide, hidden from the optimiser. */
volatile std::size_t huge_sizes[] = {
	std::size_t(1) << 62,
	std::size_t(PTRDIFF_MAX) + 1,
	SIZE_MAX - 4096,
};

void
test_bad_alloc(void)
{
	for (std::size_t size : huge_sizes) {
		bool threw = false;
		void *p = nullptr;

		try {
			p = ::operator new(size);
		} catch (const std::bad_alloc &) {
			threw = true;
		}
		CHECK(threw && p == nullptr, "operator new(%#zx) throws std::bad_alloc", size);

		threw = false;
		try {
			char *c = new char[size];
			c[0] = 1;
			delete[] c;
		} catch (const std::bad_alloc &) {
			threw = true;
		}
		CHECK(threw, "new char[%#zx] throws std::bad_alloc", size);

		threw = false;
		try {
			p = ::operator new(size, std::align_val_t(64));
		} catch (const std::bad_alloc &) {
			threw = true;
		}
		CHECK(threw, "aligned operator new(%#zx, 64) throws std::bad_alloc", size);

		CHECK(::operator new(size, std::nothrow) == nullptr,
		      "nothrow operator new(%#zx) returns nullptr", size);
		CHECK(::operator new[](size, std::align_val_t(256), std::nothrow) == nullptr,
		      "nothrow aligned operator new[](%#zx) returns nullptr", size);
		errno = 0;
		CHECK(std::malloc(size) == nullptr && errno == ENOMEM,
		      "malloc(%#zx) fails with ENOMEM", size);
	}

	/* The new-handler is consulted once per failure before the throw. */
	bool threw = false;
	handler_calls = 0;
	std::set_new_handler(counting_handler);
	try {
		void *p = ::operator new(huge_sizes[0]);
		::operator delete(p);
	} catch (const std::bad_alloc &) {
		threw = true;
	}
	CHECK(threw && handler_calls == 1, "new-handler called once, then bad_alloc (%u calls)",
	      handler_calls.load());
	CHECK(std::get_new_handler() == nullptr, "the handler uninstalled itself");

	/* A failed allocation leaves the allocator usable. */
	std::string s(100000, 'q');
	CHECK(s.size() == 100000 && s[99999] == 'q', "allocation works after failures");
}

/* ---- delete nullptr ---- */

void *volatile null_ptr = nullptr;

void
test_delete_null(void)
{
	/* Each pointer read afresh from a volatile: the calls cannot be
	 * optimised away. */
	delete static_cast<int *>(null_ptr);
	delete[] static_cast<int *>(null_ptr);
	delete static_cast<line *>(null_ptr);
	delete[] static_cast<page *>(null_ptr);
	delete static_cast<std::string *>(null_ptr);
	::operator delete(null_ptr);
	::operator delete[](null_ptr);
	::operator delete(null_ptr, std::size_t(16));
	::operator delete(null_ptr, std::align_val_t(64));
	::operator delete[](null_ptr, std::align_val_t(4096));
	::operator delete(null_ptr, std::nothrow);
	std::free(null_ptr);
	CHECK(true, "deleting nullptr in every form is a no-op");
}

/* ---- thread_local destructors that allocate ---- */

std::atomic<unsigned> tls_constructed{0}, tls_destroyed{0}, late_destroyed{0};
std::mutex legacy_lock;
std::vector<std::unique_ptr<std::string>> legacy; /* left by exiting threads */

struct late_tls {
	std::vector<std::string> v;
	~late_tls()
	{
		/* Constructed during another thread_local's destructor. */
		thread_check(v.size() == 1 && value_ok(v[0], 7, 3000), "late tls value", 0);
		late_destroyed++;
	}
};

thread_local late_tls late;

struct tls_state {
	unsigned id = 0;
	std::vector<std::string> strings;
	std::map<int, std::vector<int>> tree;

	tls_state() { tls_constructed++; }
	~tls_state()
	{
		/* At thread exit: check, allocate, hand something to the main
		 * thread, and free the rest. */
		for (std::size_t i = 0; i < strings.size(); i++)
			thread_check(value_ok(strings[i], id * 1000 + i, 50 + i % 300),
				     "tls string intact at thread exit", (long)i);
		std::string fresh = make_value(id, 5000);
		std::vector<int> tmp(10000, static_cast<int>(id));
		thread_check(tmp.back() == static_cast<int>(id) && value_ok(fresh, id, 5000),
			     "allocation in a tls destructor", id);
		{
			std::lock_guard<std::mutex> g(legacy_lock);
			legacy.push_back(std::make_unique<std::string>(make_value(id, 777)));
		}
		late.v.push_back(make_value(7, 3000));
		strings.clear();
		strings.shrink_to_fit();
		tree.clear();
		tls_destroyed++;
	}
};

thread_local tls_state tls;

void
tls_thread(unsigned id)
{
	tls.id = id;
	for (std::size_t i = 0; i < 200; i++)
		tls.strings.push_back(make_value(id * 1000 + i, 50 + i % 300));
	for (int i = 0; i < 100; i++)
		tls.tree[i].assign(static_cast<std::size_t>(i), i);
}

void
test_thread_local(void)
{
	const unsigned n = 16;

	tls_constructed = tls_destroyed = late_destroyed = 0;
	for (unsigned round = 0; round < 4; round++) {
		std::vector<std::thread> ts;

		for (unsigned i = 0; i < n / 4; i++)
			ts.emplace_back(tls_thread, round * 100 + i);
		for (auto &t : ts)
			t.join();
	}
	CHECK(tls_constructed == n && tls_destroyed == n,
	      "thread_local destructors ran at every thread exit (%u built, %u destroyed)",
	      tls_constructed.load(), tls_destroyed.load());
	CHECK(late_destroyed == n, "thread_locals first used in a destructor were destroyed too (%u)",
	      late_destroyed.load());
	bool intact = legacy.size() == n;
	for (const auto &s : legacy) {
		bool found = false;

		for (unsigned round = 0; round < 4 && !found; round++)
			for (unsigned i = 0; i < n / 4 && !found; i++)
				found = value_ok(*s, round * 100 + i, 777);
		intact = intact && found;
	}
	CHECK(intact, "strings allocated by exiting threads are intact (%zu)", legacy.size());
	legacy.clear(); /* freed by a thread that did not allocate them */
	legacy.shrink_to_fit();
}

/* ---- threads churning containers and passing objects around ---- */

std::mutex mailbox_lock;
std::vector<std::unique_ptr<std::vector<std::uint64_t>>> mailbox;

void
churn_thread(unsigned id, unsigned *bad)
{
	std::uint64_t rng = 0x637878ULL + id;

	*bad = container_churn(id + 100, 60);
	for (unsigned i = 0; i < 20000; i++) {
		std::size_t len = static_cast<std::size_t>(rng_next(rng) % 2000);
		auto v = std::make_unique<std::vector<std::uint64_t>>(len, len);
		std::unique_ptr<std::vector<std::uint64_t>> got;

		{
			std::lock_guard<std::mutex> g(mailbox_lock);
			if (!mailbox.empty() && (rng_next(rng) & 1)) {
				got = std::move(mailbox.back());
				mailbox.pop_back();
			}
			if (mailbox.size() < 64)
				mailbox.push_back(std::move(v));
		}
		/* got (and v if not posted) is freed here, maybe by a thread
		 * other than the one that allocated it. */
		if (got)
			for (std::uint64_t x : *got)
				if (x != got->size()) {
					(*bad)++;
					break;
				}
	}
}

void
test_thread_churn(void)
{
	const unsigned n = 4;
	std::vector<std::thread> ts;
	unsigned bad[n] = {};
	unsigned total = 0;

	for (unsigned i = 0; i < n; i++)
		ts.emplace_back(churn_thread, i, &bad[i]);
	for (auto &t : ts)
		t.join();
	for (unsigned b : bad)
		total += b;
	bool mail_ok = true;
	for (const auto &v : mailbox)
		for (std::uint64_t x : *v)
			mail_ok = mail_ok && x == v->size();
	mailbox.clear();
	CHECK(total == 0, "threads churning containers see intact values (%u bad)", total);
	CHECK(mail_ok, "vectors passed between threads are intact");
}

} // namespace

int
main()
{
	setvbuf(stdout, nullptr, _IOLBF, 0);
	test_containers();
	test_overaligned();
	test_bad_alloc();
	test_delete_null();
	test_thread_local();
	test_thread_churn();
	CHECK(thread_failures == 0, "no failure in any thread (%u)", thread_failures.load());
	return harness_exit();
}
