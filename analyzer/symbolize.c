/* SPDX-License-Identifier: MIT */
/*
 * symbolize.c - instruction addresses to functions, source files and lines
 * with elfutils' libdwfl and libdw (see symbolize.h).
 *
 * Each object file gets a Dwfl session of its own holding exactly one
 * module, reported at its link-time addresses (bias 0): the caller's ELF
 * virtual addresses are module addresses as they are, and objects whose
 * address ranges overlap (every shared library starts at 0) never meet.
 * libdwfl reads symbol tables, DWARF and separate debuginfo lazily and
 * keeps them with the session; sessions are cached by path for the life of
 * the context.
 *
 * libdwfl's own address-to-symbol search scans the whole symbol table and
 * dwarf_getscopes() walks a whole CU on every call, which is too slow for
 * the tens of thousands of addresses of a profile. So this file indexes, once
 * per object, the code symbols by address, and once per CU, the address
 * ranges of its functions; a lookup is then two binary searches and a walk
 * down one function's inlining tree.
 *
 * Never prints, never exits: errors go to the caller's buffer.
 */
#include "config.h"

#include <dwarf.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>

#include "symbolize.h"

/*
 * libstdc++'s demangler, declared here because <cxxabi.h> is C++ only.
 * Whatever links this module must link libstdc++ (-lstdc++).
 */
extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

#define SYM_INITIAL_BUCKETS 64
#define SYM_INITIAL_UNIT_BUCKETS 16
/* DIE nesting followed at most; real code stays far below, loops in bad DWARF do not. */
#define SYM_MAX_DEPTH 64
/* Entries looked at below the nearest start for one that contains an address. */
#define SYM_SCAN_BACK 16

/* A code symbol from the object's symbol table. */
struct sym_symbol {
	Dwarf_Addr addr;  /* module address */
	Dwarf_Addr end;   /* addr + size, or the end of its section if it has no size */
	const char *name; /* in libdwfl's copy of the string table */
	unsigned rank;    /* of the symbols at one address, the lowest rank names it */
	bool sized;
};

/* One address range of an out-of-line function, from the DWARF of one CU. */
struct sym_range {
	Dwarf_Addr low;   /* DWARF addresses: module address - DWARF bias */
	Dwarf_Addr high;
	Dwarf_Die die;    /* the DW_TAG_subprogram */
};

/* The address range of a CU, for DWARF without .debug_aranges. */
struct sym_cu_range {
	Dwarf_Addr low;   /* DWARF addresses */
	Dwarf_Addr high;
	Dwarf_Die *cudie; /* libdwfl's, valid for the session */
};

/* The function ranges of one CU, sorted by low; built on the CU's first lookup. */
struct sym_unit {
	struct sym_unit *next; /* hash chain */
	const void *key;       /* the CU DIE's address in the debug data: unique per CU */
	struct sym_range *ranges;
	size_t count;
};

/* One path, opened once; dwfl == NULL caches "nothing to learn here". */
struct sym_object {
	struct sym_object *next;  /* hash chain */
	uint64_t hash;            /* of path */
	char *path;
	Dwfl *dwfl;               /* owns the module, its files and mappings */
	Dwfl_Module *mod;
	Dwarf_Addr bias;          /* module address = ELF address + bias */
	Dwarf_Addr low_addr;      /* module address range [low_addr, high_addr) */
	Dwarf_Addr high_addr;
	char *build_id_hex;       /* lower case; NULL if the file has none */
	bool symbols_read;
	struct sym_symbol *symbols; /* sorted by addr, then rank */
	size_t symbol_count;
	struct sym_unit **units;
	size_t unit_buckets;      /* a power of two, or 0 before the first CU */
	size_t unit_count;
	bool cu_ranges_read;
	struct sym_cu_range *cu_ranges; /* sorted by low */
	size_t cu_range_count;
	Dwarf_Addr dw_bias;       /* module address = DWARF address + dw_bias */
};

struct sym_ctx {
	Dwfl_Callbacks callbacks; /* every session keeps a pointer to it */
	char *debuginfo_path;     /* callbacks.debuginfo_path points here */
	struct sym_object **buckets;
	size_t bucket_count;      /* a power of two */
	size_t object_count;
};

/* A growing array of function ranges. */
struct range_list {
	struct sym_range *v;
	size_t count;
	size_t cap;
};

static int
fail(char *err, size_t errcap, int code, const char *what, const char *why)
{
	if (err != NULL && errcap > 0)
		snprintf(err, errcap, "%s: %s", what, why);
	return code;
}

/* FNV-1a, 64 bits. */
static uint64_t
hash_path(const char *path)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static size_t
hash_pointer(const void *p)
{
	uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 32);
}

struct sym_ctx *
sym_open(void)
{
	struct sym_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL)
		return NULL;
	ctx->bucket_count = SYM_INITIAL_BUCKETS;
	ctx->buckets = calloc(ctx->bucket_count, sizeof(ctx->buckets[0]));
	if (ctx->buckets == NULL) {
		free(ctx);
		return NULL;
	}
	/*
	 * Objects come with their main ELF file, so find_elf only matters if
	 * libdwfl ever asks again; find_debuginfo looks by build-id, then by
	 * .gnu_debuglink, then (with DEBUGINFOD_URLS set) asks debuginfod.
	 */
	ctx->callbacks.find_elf = dwfl_build_id_find_elf;
	ctx->callbacks.find_debuginfo = dwfl_standard_find_debuginfo;
	ctx->callbacks.section_address = dwfl_offline_section_address;
	ctx->callbacks.debuginfo_path = &ctx->debuginfo_path;
	return ctx;
}

int
sym_set_debuginfo_path(struct sym_ctx *ctx, const char *path, char *err, size_t errcap)
{
	char *copy = NULL;

	if (path != NULL) {
		copy = strdup(path);
		if (copy == NULL)
			return fail(err, errcap, -ENOMEM, "debuginfo path", strerror(ENOMEM));
	}
	free(ctx->debuginfo_path);
	ctx->debuginfo_path = copy;
	return 0;
}

static void
free_object(struct sym_object *obj)
{
	for (size_t i = 0; i < obj->unit_buckets; i++) {
		struct sym_unit *unit = obj->units[i];

		while (unit != NULL) {
			struct sym_unit *next = unit->next;

			free(unit->ranges);
			free(unit);
			unit = next;
		}
	}
	free(obj->units);
	free(obj->cu_ranges);
	free(obj->symbols);
	if (obj->dwfl != NULL)
		dwfl_end(obj->dwfl);
	free(obj->build_id_hex);
	free(obj->path);
	free(obj);
}

void
sym_close(struct sym_ctx *ctx)
{
	if (ctx == NULL)
		return;
	for (size_t i = 0; i < ctx->bucket_count; i++) {
		struct sym_object *obj = ctx->buckets[i];

		while (obj != NULL) {
			struct sym_object *next = obj->next;

			free_object(obj);
			obj = next;
		}
	}
	free(ctx->buckets);
	free(ctx->debuginfo_path);
	free(ctx);
}

void
sym_frame_clear(struct sym_frame *f)
{
	free(f->function);
	free(f->file);
	f->function = NULL;
	f->file = NULL;
	f->line = 0;
	f->inlined = false;
}

/*
 * Open obj->path as a libdwfl session. Returns 0 with obj->dwfl set, 0 with
 * obj->dwfl NULL when the path is useless (to be cached as such), or a
 * negative errno for a failure that may pass (not to be cached).
 */
static int
load_object(struct sym_ctx *ctx, struct sym_object *obj, char *err, size_t errcap)
{
	struct stat st;
	Dwfl *dwfl;
	Dwfl_Module *mod;
	Elf *elf;
	GElf_Ehdr ehdr;
	GElf_Addr bias = 0;
	Dwarf_Addr low_addr = 0, high_addr = 0;
	const unsigned char *id;
	GElf_Addr id_vaddr;
	int id_len;

	/*
	 * Only regular files: a FIFO would block the open, and a device or a
	 * directory is no object file. A missing file is the common case for
	 * mappings of deleted files and for programs run in other namespaces.
	 */
	if (stat(obj->path, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;

	dwfl = dwfl_begin(&ctx->callbacks);
	if (dwfl == NULL)
		return fail(err, errcap, -ENOMEM, obj->path, strerror(ENOMEM));
	dwfl_report_begin(dwfl);
	/*
	 * base 0 with add_p_vaddr: the module sits at its own p_vaddr, bias 0,
	 * for ET_DYN as for ET_EXEC (libdwfl forces that for ET_EXEC anyway).
	 * fd -1: libdwfl opens the file and owns the descriptor (it may close
	 * it early after decompressing, so it cannot be ours).
	 */
	errno = 0;
	mod = dwfl_report_elf(dwfl, obj->path, obj->path, -1, 0, true);
	if (mod == NULL) {
		/*
		 * libdwfl's error codes are private; its allocation and open
		 * failures leave errno set, everything else (not ELF, truncated,
		 * unreadable) just means there is nothing to learn.
		 */
		int saved = errno;

		dwfl_end(dwfl);
		if (saved == ENOMEM || saved == EMFILE || saved == ENFILE)
			return fail(err, errcap, -saved, obj->path, strerror(saved));
		return 0;
	}
	if (dwfl_report_end(dwfl, NULL, NULL) != 0) {
		dwfl_end(dwfl);
		return fail(err, errcap, -ENOMEM, obj->path, dwfl_errmsg(-1));
	}

	/* Executables and shared libraries only: a .o or a core has no code addresses. */
	elf = dwfl_module_getelf(mod, &bias);
	if (elf == NULL || gelf_getehdr(elf, &ehdr) == NULL
	    || (ehdr.e_type != ET_EXEC && ehdr.e_type != ET_DYN)) {
		dwfl_end(dwfl);
		return 0;
	}
	dwfl_module_info(mod, NULL, &low_addr, &high_addr, NULL, NULL, NULL, NULL);

	id_len = dwfl_module_build_id(mod, &id, &id_vaddr);
	if (id_len > 0) {
		static const char digits[] = "0123456789abcdef";
		char *hex = malloc((size_t)id_len * 2 + 1);

		if (hex == NULL) {
			dwfl_end(dwfl);
			return fail(err, errcap, -ENOMEM, obj->path, strerror(ENOMEM));
		}
		for (int i = 0; i < id_len; i++) {
			hex[2 * i] = digits[id[i] >> 4];
			hex[2 * i + 1] = digits[id[i] & 0xf];
		}
		hex[2 * id_len] = '\0';
		obj->build_id_hex = hex;
	}
	obj->dwfl = dwfl;
	obj->mod = mod;
	obj->bias = bias;
	obj->low_addr = low_addr;
	obj->high_addr = high_addr;
	return 0;
}

static int
grow_buckets(struct sym_ctx *ctx)
{
	size_t count = ctx->bucket_count * 2;
	struct sym_object **buckets = calloc(count, sizeof(buckets[0]));

	if (buckets == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < ctx->bucket_count; i++) {
		struct sym_object *obj = ctx->buckets[i];

		while (obj != NULL) {
			struct sym_object *next = obj->next;
			size_t b = obj->hash & (count - 1);

			obj->next = buckets[b];
			buckets[b] = obj;
			obj = next;
		}
	}
	free(ctx->buckets);
	ctx->buckets = buckets;
	ctx->bucket_count = count;
	return 0;
}

/* Find path's cached object, opening it on first use. */
static int
get_object(struct sym_ctx *ctx, const char *path, struct sym_object **objp, char *err,
	   size_t errcap)
{
	uint64_t h = hash_path(path);
	struct sym_object *obj;
	int rc;

	for (obj = ctx->buckets[h & (ctx->bucket_count - 1)]; obj != NULL; obj = obj->next) {
		if (obj->hash == h && strcmp(obj->path, path) == 0) {
			*objp = obj;
			return 0;
		}
	}

	if (ctx->object_count >= ctx->bucket_count && grow_buckets(ctx) < 0)
		return fail(err, errcap, -ENOMEM, path, strerror(ENOMEM));
	obj = calloc(1, sizeof(*obj));
	if (obj == NULL || (obj->path = strdup(path)) == NULL) {
		free(obj);
		return fail(err, errcap, -ENOMEM, path, strerror(ENOMEM));
	}
	obj->hash = h;
	rc = load_object(ctx, obj, err, errcap);
	if (rc < 0) {
		free_object(obj);
		return rc;
	}
	obj->next = ctx->buckets[h & (ctx->bucket_count - 1)];
	ctx->buckets[h & (ctx->bucket_count - 1)] = obj;
	ctx->object_count++;
	*objp = obj;
	return 0;
}

/*
 * Of several symbols at one address, name it after a sized one, then a
 * global, a weak, a local one, then one without a leading underscore
 * (malloc rather than __libc_malloc).
 */
static unsigned
symbol_rank(const GElf_Sym *sym, const char *name)
{
	unsigned rank = sym->st_size > 0 ? 0 : 8;

	switch (GELF_ST_BIND(sym->st_info)) {
	case STB_GLOBAL:
		break;
	case STB_WEAK:
		rank += 2;
		break;
	default:
		rank += 4;
		break;
	}
	return rank + (name[0] == '_');
}

static int
compare_symbols(const void *a, const void *b)
{
	const struct sym_symbol *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return strcmp(x->name, y->name);
}

/*
 * Index the code symbols of the best symbol table libdwfl finds: .symtab
 * of the object or of its debuginfo, else .gnu_debugdata, else .dynsym.
 */
static int
read_symbols(struct sym_object *obj)
{
	int total = dwfl_module_getsymtab(obj->mod);
	size_t count = 0;

	if (total <= 0) {
		obj->symbols_read = true;
		return 0;
	}
	obj->symbols = malloc((size_t)total * sizeof(obj->symbols[0]));
	if (obj->symbols == NULL)
		return -ENOMEM;
	for (int i = 1; i < total; i++) {
		struct sym_symbol *s = &obj->symbols[count];
		GElf_Sym sym;
		GElf_Addr addr;
		GElf_Word shndx;
		const char *name = dwfl_module_getsym_info(obj->mod, i, &sym, &addr, &shndx, NULL,
							   NULL);
		int type;

		/* Imports, absolute symbols and symbols of unallocated sections name no code. */
		if (name == NULL || name[0] == '\0' || shndx == SHN_UNDEF || shndx == SHN_ABS
		    || shndx == (GElf_Word)-1)
			continue;
		type = GELF_ST_TYPE(sym.st_info);
		if (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_NOTYPE)
			continue;
		s->addr = addr;
		s->name = name;
		s->rank = symbol_rank(&sym, name);
		s->sized = sym.st_size > 0;
		s->end = addr + sym.st_size;
		if (!s->sized || type == STT_NOTYPE) {
			/* Labels (assembly, _init) reach to the end of their section, which must be code. */
			Dwarf_Addr offset = addr, section_bias;
			Elf_Scn *scn = dwfl_module_address_section(obj->mod, &offset, &section_bias);
			GElf_Shdr shdr;

			if (scn == NULL || gelf_getshdr(scn, &shdr) == NULL
			    || !(shdr.sh_flags & SHF_EXECINSTR))
				continue;
			if (!s->sized)
				s->end = shdr.sh_addr + shdr.sh_size + section_bias;
		}
		count++;
	}
	qsort(obj->symbols, count, sizeof(obj->symbols[0]), compare_symbols);
	obj->symbol_count = count;
	obj->symbols_read = true;
	return 0;
}

/*
 * The name of the symbol containing pc: of the symbols starting at or
 * below pc, the nearest sized one that reaches pc (the best ranked of those
 * at its address), else a label at the nearest address.
 */
static int
find_symbol(struct sym_object *obj, Dwarf_Addr pc, const char **namep)
{
	const struct sym_symbol *best = NULL, *label = NULL;
	size_t lo = 0, hi;
	int rc;

	*namep = NULL;
	if (!obj->symbols_read && (rc = read_symbols(obj)) < 0)
		return rc;
	hi = obj->symbol_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (obj->symbols[mid].addr <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Backwards, so that within one address the better ranked come later. */
	for (size_t i = lo, seen = 0; i-- > 0 && seen < SYM_SCAN_BACK; seen++) {
		const struct sym_symbol *s = &obj->symbols[i];

		if (best != NULL && s->addr < best->addr)
			break;
		if (pc >= s->end)
			continue;
		if (s->sized)
			best = s;
		else if (s->addr == obj->symbols[lo - 1].addr)
			label = s;
	}
	if (best == NULL)
		best = label;
	if (best != NULL)
		*namep = best->name;
	return 0;
}

static int
compare_cu_ranges(const void *a, const void *b)
{
	const struct sym_cu_range *x = a, *y = b;

	if (x->low != y->low)
		return x->low < y->low ? -1 : 1;
	return x->high < y->high ? -1 : x->high > y->high;
}

/* Index the address ranges of every CU, from the CU DIEs' own ranges. */
static int
read_cu_ranges(struct sym_object *obj)
{
	Dwarf_Die *cudie = NULL;
	Dwarf_Addr bias = 0;
	size_t count = 0, cap = 0;

	while ((cudie = dwfl_module_nextcu(obj->mod, cudie, &bias)) != NULL) {
		Dwarf_Addr base, low, high;
		ptrdiff_t offset = 0;

		obj->dw_bias = bias;
		while ((offset = dwarf_ranges(cudie, offset, &base, &low, &high)) > 0) {
			if (low >= high)
				continue;
			if (count == cap) {
				size_t bigger = cap ? cap * 2 : 64;
				struct sym_cu_range *v = realloc(obj->cu_ranges,
								 bigger * sizeof(v[0]));

				if (v == NULL)
					return -ENOMEM;
				obj->cu_ranges = v;
				cap = bigger;
			}
			obj->cu_ranges[count++] = (struct sym_cu_range){ low, high, cudie };
		}
	}
	if (count > 0)
		qsort(obj->cu_ranges, count, sizeof(obj->cu_ranges[0]), compare_cu_ranges);
	obj->cu_range_count = count;
	obj->cu_ranges_read = true;
	return 0;
}

/*
 * The CU whose code contains module address pc. libdwfl finds it through
 * .debug_aranges; clang emits none by default, and elfutils 0.188 does not
 * fall back to the CUs' own ranges (0.191 does), so this does.
 */
static int
find_cu(struct sym_object *obj, Dwarf_Addr pc, Dwarf_Die **cudiep, Dwarf_Addr *dw_biasp)
{
	size_t lo = 0, hi;
	int rc;

	*cudiep = dwfl_module_addrdie(obj->mod, pc, dw_biasp);
	if (*cudiep != NULL)
		return 0;
	if (!obj->cu_ranges_read && (rc = read_cu_ranges(obj)) < 0)
		return rc;
	hi = obj->cu_range_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (obj->cu_ranges[mid].low + obj->dw_bias <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo, seen = 0; i-- > 0 && seen < SYM_SCAN_BACK; seen++) {
		if (pc < obj->cu_ranges[i].high + obj->dw_bias) {
			*cudiep = obj->cu_ranges[i].cudie;
			*dw_biasp = obj->dw_bias;
			return 0;
		}
	}
	return 0;
}

static int
range_push(struct range_list *list, Dwarf_Addr low, Dwarf_Addr high, Dwarf_Die *die)
{
	if (list->count == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 64;
		struct sym_range *v = realloc(list->v, cap * sizeof(v[0]));

		if (v == NULL)
			return -ENOMEM;
		list->v = v;
		list->cap = cap;
	}
	list->v[list->count++] = (struct sym_range){ .low = low, .high = high, .die = *die };
	return 0;
}

/*
 * Add the address ranges of every function with code under parent: those
 * at the top of the CU, in namespaces and classes, in partial units it
 * imports (dwz), and GNU C nested functions inside other functions.
 * Abstract instances and declarations have no ranges and add nothing.
 */
static int
collect_functions(Dwarf_Die *parent, struct range_list *list, unsigned depth)
{
	Dwarf_Die child, unit;
	Dwarf_Attribute attr;
	int rc = 0;

	if (depth >= SYM_MAX_DEPTH || dwarf_child(parent, &child) != 0)
		return 0;
	do {
		switch (dwarf_tag(&child)) {
		case DW_TAG_subprogram: {
			Dwarf_Addr base, low, high;
			ptrdiff_t offset = 0;

			while ((offset = dwarf_ranges(&child, offset, &base, &low, &high)) > 0) {
				if (low < high && (rc = range_push(list, low, high, &child)) < 0)
					return rc;
			}
			rc = collect_functions(&child, list, depth + 1);
			break;
		}
		case DW_TAG_namespace:
		case DW_TAG_class_type:
		case DW_TAG_structure_type:
		case DW_TAG_union_type:
		case DW_TAG_module:
		case DW_TAG_lexical_block:
		case DW_TAG_try_block:
		case DW_TAG_catch_block:
			rc = collect_functions(&child, list, depth + 1);
			break;
		case DW_TAG_imported_unit:
			if (dwarf_formref_die(dwarf_attr(&child, DW_AT_import, &attr), &unit) != NULL
			    && dwarf_tag(&unit) == DW_TAG_partial_unit)
				rc = collect_functions(&unit, list, depth + 1);
			break;
		default:
			break;
		}
		if (rc < 0)
			return rc;
	} while (dwarf_siblingof(&child, &child) == 0);
	return 0;
}

static int
compare_ranges(const void *a, const void *b)
{
	const struct sym_range *x = a, *y = b;

	if (x->low != y->low)
		return x->low < y->low ? -1 : 1;
	if (x->high != y->high)
		return x->high < y->high ? -1 : 1;
	return 0;
}

static int
grow_units(struct sym_object *obj)
{
	size_t count = obj->unit_buckets ? obj->unit_buckets * 2 : SYM_INITIAL_UNIT_BUCKETS;
	struct sym_unit **units = calloc(count, sizeof(units[0]));

	if (units == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < obj->unit_buckets; i++) {
		struct sym_unit *unit = obj->units[i];

		while (unit != NULL) {
			struct sym_unit *next = unit->next;
			size_t b = hash_pointer(unit->key) & (count - 1);

			unit->next = units[b];
			units[b] = unit;
			unit = next;
		}
	}
	free(obj->units);
	obj->units = units;
	obj->unit_buckets = count;
	return 0;
}

/* The function index of the CU, built on first use. */
static int
get_unit(struct sym_object *obj, Dwarf_Die *cudie, struct sym_unit **unitp)
{
	struct range_list list = { 0 };
	struct sym_unit *unit;
	size_t b;
	int rc;

	if (obj->unit_buckets > 0) {
		b = hash_pointer(cudie->addr) & (obj->unit_buckets - 1);
		for (unit = obj->units[b]; unit != NULL; unit = unit->next) {
			if (unit->key == cudie->addr) {
				*unitp = unit;
				return 0;
			}
		}
	}
	if (obj->unit_count >= obj->unit_buckets && (rc = grow_units(obj)) < 0)
		return rc;
	unit = calloc(1, sizeof(*unit));
	if (unit == NULL)
		return -ENOMEM;
	rc = collect_functions(cudie, &list, 0);
	if (rc < 0) {
		free(list.v);
		free(unit);
		return rc;
	}
	if (list.count > 0)
		qsort(list.v, list.count, sizeof(list.v[0]), compare_ranges);
	unit->key = cudie->addr;
	unit->ranges = list.v;
	unit->count = list.count;
	b = hash_pointer(unit->key) & (obj->unit_buckets - 1);
	unit->next = obj->units[b];
	obj->units[b] = unit;
	obj->unit_count++;
	*unitp = unit;
	return 0;
}

/* The subprogram whose code contains dpc (a DWARF address); the innermost if nested. */
static Dwarf_Die *
unit_function(struct sym_unit *unit, Dwarf_Addr dpc)
{
	size_t lo = 0, hi = unit->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (unit->ranges[mid].low <= dpc)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo, seen = 0; i-- > 0 && seen < SYM_SCAN_BACK; seen++) {
		if (dpc < unit->ranges[i].high)
			return &unit->ranges[i].die;
	}
	return NULL;
}

/*
 * The scopes containing dpc from the subprogram fn down: in DWARF each
 * concrete inlined subroutine is a child of the code it was inlined into.
 * Sets *chainp to a malloc'ed array, innermost first, ending with fn.
 */
static int
scope_chain(Dwarf_Die *fn, Dwarf_Addr dpc, Dwarf_Die **chainp)
{
	size_t count = 0, cap = 8;
	Dwarf_Die *chain = malloc(cap * sizeof(chain[0]));
	Dwarf_Die child;

	if (chain == NULL)
		return -ENOMEM;
	chain[count++] = *fn;
	while (count < SYM_MAX_DEPTH && dwarf_child(&chain[count - 1], &child) == 0) {
		bool found = false;

		do {
			switch (dwarf_tag(&child)) {
			case DW_TAG_inlined_subroutine:
			case DW_TAG_lexical_block:
			case DW_TAG_try_block:
			case DW_TAG_catch_block:
				found = dwarf_haspc(&child, dpc) > 0;
				break;
			default:
				break;
			}
		} while (!found && dwarf_siblingof(&child, &child) == 0);
		if (!found)
			break;
		if (count == cap) {
			Dwarf_Die *bigger = realloc(chain, cap * 2 * sizeof(chain[0]));

			if (bigger == NULL) {
				free(chain);
				return -ENOMEM;
			}
			chain = bigger;
			cap *= 2;
		}
		chain[count++] = child;
	}
	for (size_t i = 0; i < count / 2; i++) {
		Dwarf_Die t = chain[i];

		chain[i] = chain[count - 1 - i];
		chain[count - 1 - i] = t;
	}
	*chainp = chain;
	return (int)count;
}

/* A malloc'ed copy of name, demangled if it is an Itanium C++ ABI name; NULL if out of memory. */
static char *
demangle(const char *name)
{
	if (strncmp(name, "_Z", 2) == 0) {
		int status = 0;
		char *plain = __cxa_demangle(name, NULL, NULL, &status);

		if (status == 0 && plain != NULL)
			return plain;
		free(plain);
	}
	return strdup(name);
}

static int
set_function(struct sym_frame *f, const char *name)
{
	if (name == NULL || name[0] == '\0')
		return 0;
	f->function = demangle(name);
	return f->function != NULL ? 0 : -ENOMEM;
}

/*
 * Set the frame's file and line. A relative file name is relative to the
 * CU's compilation directory (DWARF 5, 6.2.4: include directories other
 * than 0 may be relative to it, and libdw 0.188 leaves them so); joined as
 * addr2line does, without resolving "..".
 */
static int
set_file_line(struct sym_frame *f, const char *file, const char *comp_dir, Dwarf_Word line)
{
	if (file != NULL && file[0] != '\0') {
		if (file[0] != '/' && comp_dir != NULL && comp_dir[0] != '\0') {
			if (asprintf(&f->file, "%s/%s", comp_dir, file) < 0)
				f->file = NULL;
		} else {
			f->file = strdup(file);
		}
		if (f->file == NULL)
			return -ENOMEM;
	}
	f->line = line <= INT_MAX ? (int)line : 0;
	return 0;
}

/*
 * The name of a subprogram or inlined subroutine DIE. The linkage name
 * carries a C++ function's scope and parameter types, DW_AT_name only its
 * bare name. Both may live on the abstract origin or on the declaration
 * the DIE is the specification of; dwarf_attr_integrate follows those.
 */
static const char *
die_function_name(Dwarf_Die *die)
{
	Dwarf_Attribute attr;
	const char *name;

	name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
	if (name == NULL)
		name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
	if (name == NULL)
		name = dwarf_diename(die);
	return name;
}

/* The source position of the code at dpc (a DWARF address), from the CU's line table. */
static int
set_line_of_pc(struct sym_frame *f, Dwarf_Die *cudie, Dwarf_Addr dpc)
{
	Dwarf_Attribute attr;
	Dwarf_Line *row;
	int line = 0;

	if (cudie == NULL || (row = dwarf_getsrc_die(cudie, dpc)) == NULL)
		return 0;
	if (dwarf_lineno(row, &line) != 0 || line < 0)
		line = 0;
	return set_file_line(f, dwarf_linesrc(row, NULL, NULL),
			     dwarf_formstring(dwarf_attr(cudie, DW_AT_comp_dir, &attr)),
			     (Dwarf_Word)line);
}

/* The source position of the call that inlined the DW_TAG_inlined_subroutine DIE. */
static int
set_line_of_call(struct sym_frame *f, Dwarf_Die *inlined)
{
	Dwarf_Attribute attr;
	Dwarf_Word line = 0, file_index;
	Dwarf_Half version;
	Dwarf_Die cudie;
	Dwarf_Files *files;
	size_t file_count;
	const char *file = NULL, *comp_dir = NULL;

	if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_line, &attr), &line) != 0)
		line = 0;
	/* File 0 is the primary source file since DWARF 5, "no file" before. */
	if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_file, &attr), &file_index) == 0
	    && dwarf_cu_info(inlined->cu, &version, NULL, &cudie, NULL, NULL, NULL, NULL) == 0
	    && (file_index > 0 || version >= 5)
	    && dwarf_getsrcfiles(&cudie, &files, &file_count) == 0 && file_index < file_count) {
		file = dwarf_filesrc(files, file_index, NULL, NULL);
		/* _integrate: a split unit's comp_dir is in its skeleton. */
		comp_dir = dwarf_formstring(dwarf_attr_integrate(&cudie, DW_AT_comp_dir, &attr));
	}
	return set_file_line(f, file, comp_dir, line);
}

/*
 * Fill out[] for module address pc: the chain of inlined subroutines and
 * the function holding pc from the DWARF, or failing that the ELF symbol.
 */
static int
describe(struct sym_object *obj, Dwarf_Addr pc, struct sym_frame *out, int cap)
{
	Dwarf_Addr dw_bias = 0;
	Dwarf_Die *cudie, *fn = NULL, *chain = NULL, *inner = NULL, split;
	struct sym_unit *unit;
	uint8_t unit_type;
	const char *name;
	int chain_count = 0, n = 0, rc = 0;

	rc = find_cu(obj, pc, &cudie, &dw_bias);
	if (rc < 0)
		return rc;
	if (cudie != NULL) {
		/*
		 * Split DWARF (-gsplit-dwarf): the line table is in the skeleton
		 * unit, the functions in the split unit of its .dwo, if found.
		 */
		Dwarf_Die *fn_cudie = cudie;

		if (dwarf_cu_info(cudie->cu, NULL, &unit_type, NULL, &split, NULL, NULL, NULL) == 0
		    && unit_type == DW_UT_skeleton && split.addr != NULL)
			fn_cudie = &split;
		rc = get_unit(obj, fn_cudie, &unit);
		if (rc < 0)
			return rc;
		fn = unit_function(unit, pc - dw_bias);
	}
	if (fn != NULL) {
		chain_count = scope_chain(fn, pc - dw_bias, &chain);
		if (chain_count < 0)
			return chain_count;
	}

	for (int i = 0; i < chain_count && n < cap; i++) {
		Dwarf_Die *die = &chain[i];
		int tag = dwarf_tag(die);
		struct sym_frame *f = &out[n];

		if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine)
			continue;
		*f = (struct sym_frame){ 0 };
		n++;
		f->inlined = tag == DW_TAG_inlined_subroutine;
		rc = set_function(f, die_function_name(die));
		if (rc == 0 && inner == NULL)
			rc = set_line_of_pc(f, cudie, pc - dw_bias);
		else if (rc == 0)
			rc = set_line_of_call(f, inner);
		if (rc < 0)
			goto out;
		inner = die;
	}

	if (n == 0) {
		/* No function DIE for pc: the symbol table, and the line table if any. */
		out[0] = (struct sym_frame){ 0 };
		n = 1;
		rc = find_symbol(obj, pc, &name);
		if (rc == 0)
			rc = set_function(&out[0], name);
		if (rc == 0)
			rc = set_line_of_pc(&out[0], cudie, pc - dw_bias);
		if (rc == 0 && out[0].function == NULL && out[0].file == NULL)
			n = 0;
	} else if (out[n - 1].function == NULL && !out[n - 1].inlined) {
		/* A nameless out-of-line function is still the ELF symbol at pc. */
		rc = find_symbol(obj, pc, &name);
		if (rc == 0)
			rc = set_function(&out[n - 1], name);
	}

out:
	free(chain);
	if (rc < 0) {
		while (n > 0)
			sym_frame_clear(&out[--n]);
		return rc;
	}
	return n;
}

int
sym_lookup(struct sym_ctx *ctx, const char *path, const char *build_id_hex, uint64_t addr,
	   struct sym_frame *out, int cap, char *err, size_t errcap)
{
	struct sym_object *obj;
	Dwarf_Addr pc;
	int rc;

	/* "[vdso]", "[heap]", "" and other names the kernel makes up are no files. */
	if (cap <= 0 || path == NULL || path[0] == '\0' || path[0] == '[')
		return 0;
	rc = get_object(ctx, path, &obj, err, errcap);
	if (rc < 0)
		return rc;
	if (obj->dwfl == NULL)
		return 0;
	if (build_id_hex != NULL && build_id_hex[0] != '\0'
	    && (obj->build_id_hex == NULL || strcasecmp(obj->build_id_hex, build_id_hex) != 0))
		return 0;
	pc = addr + obj->bias;
	if (pc < obj->low_addr || pc >= obj->high_addr)
		return 0;
	rc = describe(obj, pc, out, cap);
	if (rc < 0)
		return fail(err, errcap, rc, path, strerror(-rc));
	return rc;
}
