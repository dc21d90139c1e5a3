/* SPDX-License-Identifier: MIT */
/*
 * symbolize.h - turn an instruction address inside an object file (an
 * executable or shared library named by its path and GNU build-id) into
 * logical frames: function name, source file and line, innermost first,
 * with one frame per level of inlining, as `addr2line -f -i -C` prints them.
 *
 * Built on elfutils' libdwfl and libdw: DWARF 2-5 (with or without
 * .debug_aranges, split DWARF if the .dwo files are where the skeleton says)
 * from the object itself or from separate debuginfo found by build-id or
 * .gnu_debuglink (dwfl_standard_find_debuginfo, so
 * /usr/lib/debug/.build-id/xx/yyyy.debug works, and, as in every elfutils
 * tool, a debuginfod server is asked when DEBUGINFOD_URLS is set), falling
 * back to ELF symbol table names (.symtab, .gnu_debugdata, .dynsym) when
 * there is no DWARF. Unlike addr2line, an address past the end of every
 * function and symbol (padding, or code of local functions in an object
 * stripped to .dynsym) is not named after the nearest symbol below it.
 * C++ names are demangled with libstdc++'s __cxa_demangle: whatever links
 * this module must link libstdc++.
 *
 * The first lookup in an object indexes its symbols, the first in a CU the
 * CU's functions; later lookups cost a few binary searches (about 2 us with
 * DWARF, under 1 us without, for libc.so.6).
 *
 * Analyzer code: it allocates, opens files and may take its time, but never
 * prints and never exits; failures come back as a negative errno and a
 * message in the caller's buffer. A sym_ctx is not thread-safe.
 */
#ifndef HP_SYMBOLIZE_H
#define HP_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One logical frame. Every pointer is malloc'ed and owned by the frame. */
struct sym_frame {
	char *function; /* demangled name; NULL if unknown */
	char *file;     /* source path as DWARF gives it, joined to the CU's
			 * comp_dir if relative (as addr2line prints it, ".."
			 * kept); NULL if unknown */
	int line;       /* 1-based source line; 0 if unknown (also when file is
			 * known: compiler-generated code has line 0) */
	bool inlined;   /* this frame was inlined into the next one */
};

/* Opened objects and their symbol and debug information, cached by path. */
struct sym_ctx;

/*
 * Create an empty symbolizer. Objects are opened on first use and stay
 * open (up to two file descriptors and the mappings of their ELF and
 * debug files each) until sym_close().
 * Returns NULL if out of memory.
 * Allocates: yes.
 */
struct sym_ctx *sym_open(void);

/*
 * Replace where separate debuginfo is searched, in elfutils' syntax: a
 * colon-separated list; every absolute directory D is searched for
 * D/.build-id/xx/yyyy.debug and D/<object's directory>/<debuglink>, an
 * empty entry means the object's own directory, a relative one a
 * subdirectory of it. NULL restores elfutils' default, ":.debug:/usr/lib/debug".
 * Applies to every debuginfo search from now on, so call it before the
 * first sym_lookup() of an object.
 * Returns 0, or -ENOMEM (with a message in err) leaving the path unchanged.
 * Allocates: yes.
 */
int sym_set_debuginfo_path(struct sym_ctx *ctx, const char *path, char *err, size_t errcap);

/*
 * Symbolize the instruction at addr in the object file at path. addr is in
 * the object's own ELF address space: the run-time address minus the
 * object's load bias (for a return address, the caller has already
 * subtracted 1 so that it points into the call). build_id_hex, if not NULL
 * or empty, is the GNU build-id recorded at run time (hex digits, either
 * case); if the file now at path has another build-id or none, nothing is
 * said about it.
 *
 * Writes up to cap frames to out, innermost first: for an address in code
 * inlined into a function, first the inlined function(s) (the innermost
 * with the file:line of addr, each outer one with the file:line of the call
 * it inlined, and inlined = true), then the function it was all inlined
 * into. Without DWARF the one frame has the ELF symbol's name and no file
 * or line. Frames past the returned count are left untouched.
 *
 * Returns the number of frames written (at most cap; 0 if cap <= 0).
 * Returns 0 when nothing is known: path is not a regular file ("[vdso]", a
 * deleted or missing file, a directory, a device), not an ELF executable or
 * shared library, has the wrong build-id, addr lies outside its segments,
 * or it has neither DWARF nor a symbol for addr. What is learnt about a
 * path is cached, failures included. Returns a negative errno with a
 * message "path: reason" in err: -ENOMEM, or -EMFILE/-ENFILE when out of
 * file descriptors; nothing is cached then, and a later call may succeed.
 * out then holds nothing to free.
 * Allocates: yes.
 */
int sym_lookup(struct sym_ctx *ctx, const char *path, const char *build_id_hex, uint64_t addr,
	       struct sym_frame *out, int cap, char *err, size_t errcap);

/*
 * Free the strings of a frame filled by sym_lookup() and reset it to an
 * unknown frame. A zeroed frame may be cleared too.
 * Allocates: no.
 */
void sym_frame_clear(struct sym_frame *f);

/*
 * Close every object and free the context. NULL is allowed.
 * Allocates: no.
 */
void sym_close(struct sym_ctx *ctx);

#endif
