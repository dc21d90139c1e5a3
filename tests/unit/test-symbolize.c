/* SPDX-License-Identifier: MIT */
/*
 * test-symbolize - the symbolizer against programs whose functions, files
 * and lines are known (tests/progs/sym-target.c and sym-target-cxx.cc,
 * built with -g -O2): a plain C function, an always_inline function
 * inlined into another (two frames, the inlined one first, the outer one
 * at the line of the inlining call), a C++ function in a namespace
 * (demangled) and a C++ template member inlined into it. The targets
 * report their own call-site addresses and __LINE__s, so every line is
 * checked exactly.
 *
 * The same checks run on a PIE executable, a non-PIE executable and a
 * shared library (dlopen'ed here), with and without the right build-id;
 * then on copies made with objcopy in the scratch directory: without
 * .debug_aranges (as clang builds), without DWARF (names from .symtab),
 * stripped of everything (an executable: no answer; a library: names from
 * .dynsym), and stripped with separate debuginfo found by build-id under a
 * debuginfo path or by .gnu_debuglink next to it. Finally the cases that
 * must answer 0 frames: a missing file, "[vdso]", a directory, a device, an
 * empty file, a text file, a wrong build-id and an address outside the
 * object; and running out of file descriptors, an error that is not cached.
 *
 * Usage: test-symbolize SCRATCH_DIR OBJCOPY SYM_TARGET SYM_TARGET_NOPIE LIBSYMTARGET
 * Writes only under SCRATCH_DIR. Never asks a debuginfod server.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <elfutils/libdwelf.h>
#include <gelf.h>
#include <libelf.h>

#include "symbolize.h"

#include "../harness.h"
#include "../progs/sym-target.h"

extern char **environ;

static const char *const site_names[SITE_COUNT] = { "plain", "inline", "cxx", "cxx-inline" };

/* A call site as the target reported it: return address (ELF address) and lines. */
struct site {
	uint64_t ret_addr;
	int line;
	int outer_line;
};

#define MAX_FRAMES 8

static const char *scratch;
static const char *objcopy;

static char *
scratch_path(const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", scratch, name) < 0) {
		printf("out of memory\n");
		exit(99);
	}
	return p;
}

/* Run argv, stdout to out_path if not NULL; 0 if it exited with status 0. */
static int
run(char *const argv[], const char *out_path)
{
	posix_spawn_file_actions_t actions;
	pid_t pid;
	int status = 0, rc;

	posix_spawn_file_actions_init(&actions);
	if (out_path != NULL)
		posix_spawn_file_actions_addopen(&actions, 1, out_path,
						 O_WRONLY | O_CREAT | O_TRUNC, 0644);
	rc = posix_spawnp(&pid, argv[0], &actions, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&actions);
	if (rc != 0) {
		printf("cannot run %s: %s\n", argv[0], strerror(rc));
		return -1;
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("%s failed (status %#x)\n", argv[0], status);
		return -1;
	}
	return 0;
}

static void
run_objcopy(const char *a, const char *b, const char *in, const char *out)
{
	char *argv[] = { (char *)objcopy, (char *)a, (char *)b, (char *)in, (char *)out, NULL };

	/* Drop the empty second option (argv is compacted, not padded). */
	if (b == NULL || b[0] == '\0') {
		argv[2] = argv[3];
		argv[3] = argv[4];
		argv[4] = NULL;
	}
	if (run(argv, NULL) != 0)
		exit(99);
}

/* Read "site NAME ADDR LINE OUTER_LINE" lines; exit 99 unless every site is there. */
static void
parse_sites(FILE *in, const char *label, struct site sites[SITE_COUNT])
{
	char name[32];
	uint64_t addr;
	int line, outer, seen = 0;

	memset(sites, 0, sizeof(struct site) * SITE_COUNT);
	while (fscanf(in, " site %31s %" SCNx64 " %d %d", name, &addr, &line, &outer) == 4) {
		for (int i = 0; i < SITE_COUNT; i++) {
			if (strcmp(name, site_names[i]) == 0) {
				sites[i].ret_addr = addr;
				sites[i].line = line;
				sites[i].outer_line = outer;
				seen |= 1 << i;
			}
		}
	}
	if (seen != (1 << SITE_COUNT) - 1) {
		printf("%s: the target did not report every site\n", label);
		exit(99);
	}
}

static void
sites_of_program(const char *exe, struct site sites[SITE_COUNT])
{
	char *out_path = scratch_path("sites.txt");
	char *argv[] = { (char *)exe, NULL };
	FILE *in;

	if (run(argv, out_path) != 0 || (in = fopen(out_path, "r")) == NULL)
		exit(99);
	parse_sites(in, exe, sites);
	fclose(in);
	free(out_path);
}

static void
sites_of_library(const char *lib, struct site sites[SITE_COUNT])
{
	char *out_path = scratch_path("lib-sites.txt");
	void *handle = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	int (*report)(FILE *);
	FILE *io;

	if (handle == NULL) {
		printf("dlopen: %s\n", dlerror());
		exit(99);
	}
	*(void **)&report = dlsym(handle, "sym_target_report");
	io = fopen(out_path, "w+");
	if (report == NULL || io == NULL || report(io) < 0) {
		printf("%s: no sym_target_report or it failed\n", lib);
		exit(99);
	}
	rewind(io);
	parse_sites(io, lib, sites);
	fclose(io);
	free(out_path);
	/* Stays loaded: its code addresses were recorded and may be printed. */
}

/* The ELF type and GNU build-id (malloc'ed hex, NULL if none) of a file. */
static int
elf_facts(const char *path, char **build_id_hex)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	Elf *elf;
	GElf_Ehdr ehdr;
	const void *id;
	ssize_t len;
	int type = -1;

	*build_id_hex = NULL;
	if (fd < 0)
		return -1;
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (elf != NULL && gelf_getehdr(elf, &ehdr) != NULL)
		type = ehdr.e_type;
	len = elf != NULL ? dwelf_elf_gnu_build_id(elf, &id) : -1;
	if (len > 0) {
		char *hex = malloc((size_t)len * 2 + 1);

		for (ssize_t i = 0; hex != NULL && i < len; i++)
			sprintf(hex + 2 * i, "%02x", ((const unsigned char *)id)[i]);
		*build_id_hex = hex;
	}
	elf_end(elf);
	close(fd);
	return type;
}

static const char *
base_name(const char *path)
{
	const char *slash;

	if (path == NULL)
		return NULL;
	slash = strrchr(path, '/');
	return slash != NULL ? slash + 1 : path;
}

static bool
same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
print_frames(const struct sym_frame *frames, int n)
{
	for (int i = 0; i < n; i++)
		printf("#   frame %d: %s at %s:%d%s\n", i,
		       frames[i].function ? frames[i].function : "??",
		       frames[i].file ? frames[i].file : "??", frames[i].line,
		       frames[i].inlined ? " (inlined)" : "");
}

/* Look addr up with every frame's memory scribbled first, so each field must be written. */
static int
lookup(struct sym_ctx *ctx, const char *path, const char *build_id, uint64_t addr,
       struct sym_frame *frames, int cap)
{
	char err[256] = "";
	int n;

	memset(frames, 0xa5, sizeof(*frames) * MAX_FRAMES);
	n = sym_lookup(ctx, path, build_id, addr, frames, cap, err, sizeof(err));
	if (n < 0)
		printf("# sym_lookup(%s, %#" PRIx64 "): %d %s\n", path, addr, n, err);
	return n;
}

static void
clear_frames(struct sym_frame *frames, int n)
{
	for (int i = 0; i < n; i++)
		sym_frame_clear(&frames[i]);
}

/* One expected frame; file NULL means no file and line 0. */
struct want {
	const char *function;
	const char *file;
	int line;
	bool inlined;
};

static void
check_frames(const char *label, const char *site, const struct sym_frame *frames, int n,
	     const struct want *want, int want_count)
{
	bool good = n == want_count;

	CHECK(n == want_count, "%s %s: %d frames (want %d)", label, site, n, want_count);
	for (int i = 0; i < n && i < want_count; i++) {
		bool fn = same(frames[i].function, want[i].function);
		bool file = same(base_name(frames[i].file), want[i].file);
		bool line = frames[i].line == (want[i].file ? want[i].line : 0);
		bool inl = frames[i].inlined == want[i].inlined;

		CHECK(fn, "%s %s frame %d: function %s (want %s)", label, site, i,
		      frames[i].function ? frames[i].function : "NULL", want[i].function);
		CHECK(file && line, "%s %s frame %d: %s:%d (want %s:%d)", label, site, i,
		      frames[i].file ? frames[i].file : "NULL", frames[i].line,
		      want[i].file ? want[i].file : "NULL", want[i].file ? want[i].line : 0);
		CHECK(inl, "%s %s frame %d: inlined %d", label, site, i, frames[i].inlined);
		good = good && fn && file && line && inl;
		if (want[i].file != NULL && frames[i].file != NULL) {
			/* comp_dir joined in: the path names the source file itself. */
			bool found = frames[i].file[0] == '/' && access(frames[i].file, R_OK) == 0;

			CHECK(found, "%s %s frame %d: %s is an absolute path to the source",
			      label, site, i, frames[i].file);
			good = good && found;
		}
	}
	if (!good || harness_verbose())
		print_frames(frames, n);
}

/* What a lookup at each site must say with full DWARF. */
static int
want_full(int site, const struct site *s, struct want *w)
{
	switch (site) {
	case SITE_PLAIN:
		w[0] = (struct want){ "sym_plain", "sym-target.c", s->line, false };
		return 1;
	case SITE_INLINE:
		w[0] = (struct want){ "sym_inner", "sym-target.c", s->line, true };
		w[1] = (struct want){ "sym_outer", "sym-target.c", s->outer_line, false };
		return 2;
	case SITE_CXX:
		w[0] = (struct want){ "hp_sym::func(int)", "sym-target-cxx.cc", s->line, false };
		return 1;
	default:
		w[0] = (struct want){ "hp_sym::box<int>::get(int) const", "sym-target-cxx.cc",
				      s->line, true };
		w[1] = (struct want){ "hp_sym::func(int)", "sym-target-cxx.cc", s->outer_line,
				      false };
		return 2;
	}
}

/* ... and with symbol names only: the out-of-line function, no file or line. */
static int
want_symbols(int site, struct want *w)
{
	static const char *const names[SITE_COUNT] = {
		"sym_plain", "sym_outer", "hp_sym::func(int)", "hp_sym::func(int)",
	};

	w[0] = (struct want){ names[site], NULL, 0, false };
	return 1;
}

static void
check_sites(struct sym_ctx *ctx, const char *label, const char *path, const char *build_id,
	    const struct site sites[SITE_COUNT], bool full)
{
	struct sym_frame frames[MAX_FRAMES];
	struct want want[MAX_FRAMES];

	for (int i = 0; i < SITE_COUNT; i++) {
		int want_count = full ? want_full(i, &sites[i], want) : want_symbols(i, want);
		int n = lookup(ctx, path, build_id, sites[i].ret_addr - 1, frames, MAX_FRAMES);

		check_frames(label, site_names[i], frames, n, want, want_count);
		clear_frames(frames, n);
	}
}

/* Full checks on one built object, given no build-id, the right one (either case), a wrong one. */
static void
check_object(struct sym_ctx *ctx, const char *label, const char *path, int want_type,
	     const struct site sites[SITE_COUNT])
{
	struct sym_frame frames[MAX_FRAMES];
	char *build_id, *upper, *wrong;
	int n;

	CHECK(elf_facts(path, &build_id) == want_type, "%s: ELF type %d", label, want_type);
	CHECK(build_id != NULL && strlen(build_id) >= 16, "%s: has a build-id", label);
	if (build_id == NULL)
		return;
	upper = strdup(build_id);
	wrong = strdup(build_id);
	for (char *p = upper; *p != '\0'; p++)
		*p = (char)toupper((unsigned char)*p);
	wrong[0] = wrong[0] == '0' ? '1' : '0';

	check_sites(ctx, label, path, NULL, sites, true);
	check_sites(ctx, label, path, build_id, sites, true);
	check_sites(ctx, label, path, upper, sites, true);
	check_sites(ctx, label, path, "", sites, true);

	n = lookup(ctx, path, wrong, sites[SITE_PLAIN].ret_addr - 1, frames, MAX_FRAMES);
	CHECK(n == 0, "%s: a wrong build-id gives 0 frames (got %d)", label, n);
	clear_frames(frames, n > 0 ? n : 0);
	n = lookup(ctx, path, "abcd", sites[SITE_PLAIN].ret_addr - 1, frames, MAX_FRAMES);
	CHECK(n == 0, "%s: a short build-id gives 0 frames (got %d)", label, n);
	clear_frames(frames, n > 0 ? n : 0);

	/* cap 1 inside inlined code: just the innermost frame. */
	n = lookup(ctx, path, build_id, sites[SITE_INLINE].ret_addr - 1, frames, 1);
	CHECK(n == 1 && same(frames[0].function, "sym_inner") && frames[0].inlined
	      && frames[0].line == sites[SITE_INLINE].line,
	      "%s: cap 1 keeps only the inlined frame", label);
	CHECK(frames[1].line == (int)0xa5a5a5a5, "%s: cap 1 leaves frame 1 alone", label);
	clear_frames(frames, n > 0 ? n : 0);

	n = lookup(ctx, path, NULL, sites[SITE_PLAIN].ret_addr - 1, frames, 0);
	CHECK(n == 0, "%s: cap 0 gives 0 frames", label);

	/* Far outside the object's segments. */
	n = lookup(ctx, path, NULL, UINT64_C(0x7fffffff0000), frames, MAX_FRAMES);
	CHECK(n == 0, "%s: an address outside the object gives 0 frames (got %d)", label, n);
	clear_frames(frames, n > 0 ? n : 0);

	free(build_id);
	free(upper);
	free(wrong);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
		printf("cannot write %s\n", path);
		exit(99);
	}
}

static void
check_nothing(struct sym_ctx *ctx, const char *label, const char *path, uint64_t addr)
{
	struct sym_frame frames[MAX_FRAMES];
	int n;

	/* Twice: the second answer comes from the cache. */
	for (int i = 0; i < 2; i++) {
		n = lookup(ctx, path, NULL, addr, frames, MAX_FRAMES);
		CHECK(n == 0, "%s: 0 frames (got %d, try %d)", label, n, i + 1);
		clear_frames(frames, n > 0 ? n : 0);
	}
}

/* Copies of the PIE executable and of the library, stripped in various ways. */
static void
check_copies(const char *exe, const char *lib, const struct site exe_sites[SITE_COUNT],
	       const struct site lib_sites[SITE_COUNT])
{
	struct sym_ctx *ctx = sym_open();
	struct sym_ctx *dctx = sym_open();
	char *nodebug = scratch_path("sym-target.nodebug");
	char *noaranges = scratch_path("sym-target.noaranges");
	char *stripped = scratch_path("sym-target.stripped");
	char *linked = scratch_path("sym-target.linked");
	char *debug = scratch_path("sym-target.debug");
	char *lib_stripped = scratch_path("libsymtarget.stripped.so");
	char *debug_dir = scratch_path("debug");
	char *build_id, *id_dir, *id_file, *link_opt, *build_id_dir;
	char err[256];

	if (ctx == NULL || dctx == NULL)
		exit(99);
	elf_facts(exe, &build_id);
	if (build_id == NULL)
		exit(99);

	/* clang emits no .debug_aranges by default; the CUs' own ranges must do. */
	run_objcopy("--remove-section=.debug_aranges", NULL, exe, noaranges);
	check_sites(ctx, "exe without .debug_aranges", noaranges, build_id, exe_sites, true);

	run_objcopy("--strip-debug", NULL, exe, nodebug);
	check_sites(ctx, "exe without DWARF", nodebug, build_id, exe_sites, false);

	run_objcopy("--strip-all", NULL, exe, stripped);
	check_nothing(ctx, "exe without any symbols", stripped, exe_sites[SITE_PLAIN].ret_addr - 1);

	run_objcopy("--strip-all", NULL, lib, lib_stripped);
	check_sites(ctx, "library with .dynsym only", lib_stripped, NULL, lib_sites, false);

	/* Separate debuginfo by build-id: DEBUG_DIR/.build-id/xx/yyyy.debug. */
	if (asprintf(&id_dir, "%s/.build-id/%.2s", debug_dir, build_id) < 0
	    || asprintf(&id_file, "%s/%s.debug", id_dir, build_id + 2) < 0
	    || asprintf(&link_opt, "--add-gnu-debuglink=%s", debug) < 0
	    || asprintf(&build_id_dir, "%s/.build-id", debug_dir) < 0)
		exit(99);
	mkdir(debug_dir, 0755);
	mkdir(build_id_dir, 0755);
	mkdir(id_dir, 0755);
	run_objcopy("--only-keep-debug", NULL, exe, id_file);
	CHECK(sym_set_debuginfo_path(dctx, debug_dir, err, sizeof(err)) == 0,
	      "sym_set_debuginfo_path");
	check_sites(dctx, "exe with debuginfo by build-id", stripped, build_id, exe_sites, true);

	/* Separate debuginfo by .gnu_debuglink, found next to the object. */
	run_objcopy("--only-keep-debug", NULL, exe, debug);
	run_objcopy("--strip-all", link_opt, exe, linked);
	check_sites(ctx, "exe with debuginfo by debuglink", linked, build_id, exe_sites, true);

	sym_close(ctx);
	sym_close(dctx);
	free(build_id);
	free(id_dir);
	free(id_file);
	free(link_opt);
	free(build_id_dir);
	free(nodebug);
	free(noaranges);
	free(stripped);
	free(linked);
	free(debug);
	free(lib_stripped);
	free(debug_dir);
}

static void
check_non_objects(struct sym_ctx *ctx, const char *exe, const struct site sites[SITE_COUNT])
{
	char *text = scratch_path("not-elf.txt");
	char *empty = scratch_path("empty");
	uint64_t addr = sites[SITE_PLAIN].ret_addr - 1;
	struct sym_frame zero = { 0 };

	write_file(text, "this is not an ELF file, although it is long enough to be one\n");
	write_file(empty, "");
	check_nothing(ctx, "missing file", "/nonexistent/heapprof/sym-target", addr);
	check_nothing(ctx, "[vdso]", "[vdso]", addr);
	check_nothing(ctx, "empty path", "", addr);
	check_nothing(ctx, "directory", scratch, addr);
	check_nothing(ctx, "empty file", empty, addr);
	check_nothing(ctx, "text file", text, addr);
	check_nothing(ctx, "device", "/dev/null", addr);

	/* The object is still fine after all that. */
	check_sites(ctx, "exe again", exe, NULL, sites, true);

	sym_frame_clear(&zero);
	CHECK(zero.function == NULL && zero.file == NULL && zero.line == 0,
	      "clearing a zeroed frame");
	free(text);
	free(empty);
}

/* Out of file descriptors: a hard error, not cached, so that a later lookup succeeds. */
static void
check_no_fds(const char *exe, const struct site sites[SITE_COUNT])
{
	struct sym_ctx *ctx = sym_open();
	struct sym_frame frames[MAX_FRAMES];
	struct rlimit old, low;
	char err[256] = "";
	int n, fd;

	fd = dup(0);
	if (ctx == NULL || fd < 0 || getrlimit(RLIMIT_NOFILE, &old) != 0)
		exit(99);
	close(fd);
	/* Every descriptor below fd is taken: no open can succeed. */
	low = old;
	low.rlim_cur = (rlim_t)fd;
	if (setrlimit(RLIMIT_NOFILE, &low) != 0)
		exit(99);
	memset(frames, 0xa5, sizeof(frames));
	n = sym_lookup(ctx, exe, NULL, sites[SITE_PLAIN].ret_addr - 1, frames, MAX_FRAMES, err,
		       sizeof(err));
	setrlimit(RLIMIT_NOFILE, &old);
	CHECK(n == -EMFILE && strstr(err, exe) != NULL,
	      "no descriptors: %d (want %d), message \"%s\"", n, -EMFILE, err);
	CHECK(frames[0].line == (int)0xa5a5a5a5, "no descriptors: frames untouched");
	n = lookup(ctx, exe, NULL, sites[SITE_PLAIN].ret_addr - 1, frames, MAX_FRAMES);
	CHECK(n == 1 && same(frames[0].function, "sym_plain"),
	      "descriptors back: the object opens (%d frames)", n);
	clear_frames(frames, n > 0 ? n : 0);
	sym_close(ctx);
}

int
main(int argc, char **argv)
{
	struct site exe_sites[SITE_COUNT], nopie_sites[SITE_COUNT], lib_sites[SITE_COUNT];
	struct sym_ctx *ctx;

	if (argc != 6) {
		printf("usage: %s SCRATCH_DIR OBJCOPY SYM_TARGET SYM_TARGET_NOPIE LIBSYMTARGET\n",
		       argv[0]);
		return 99;
	}
	scratch = argv[1];
	objcopy = argv[2];
	/* Hermetic: elfutils would ask these servers about every stripped copy. */
	unsetenv("DEBUGINFOD_URLS");
	if (mkdir(scratch, 0755) != 0 && errno != EEXIST) {
		printf("mkdir %s: %s\n", scratch, strerror(errno));
		return 99;
	}
	elf_version(EV_CURRENT);

	sites_of_program(argv[3], exe_sites);
	sites_of_program(argv[4], nopie_sites);
	sites_of_library(argv[5], lib_sites);

	ctx = sym_open();
	if (ctx == NULL)
		return 99;
	check_object(ctx, "PIE exe", argv[3], ET_DYN, exe_sites);
	check_object(ctx, "non-PIE exe", argv[4], ET_EXEC, nopie_sites);
	check_object(ctx, "library", argv[5], ET_DYN, lib_sites);
	check_non_objects(ctx, argv[3], exe_sites);
	sym_close(ctx);
	check_no_fds(argv[3], exe_sites);
	sym_close(NULL);

	check_copies(argv[3], argv[5], exe_sites, lib_sites);
	return harness_exit();
}
