/* SPDX-License-Identifier: MIT */
/*
 * events.h - the binary event stream from libheapprof.so to the collector
 * (wire format HP_EV_VERSION). Both sides include this file; nothing else
 * crosses the process boundary. The collector reads only files of its own
 * version: any change to a file's or a record's layout or meaning bumps it.
 *
 * Transport: a spool directory (private, 0700) holds, for every process
 * being recorded, one *process file* and one *ring file* per thread.
 * All are MAP_SHARED by the program and the collector, so whatever the
 * program has written is in the collector's view the moment it is written,
 * even if the program then crashes, _exits, execs or is killed.
 *
 *   P<pid>.<serial>.proc          struct hp_proc_file (one page)
 *   P<pid>.<serial>.r<n>          struct hp_ring_header (one page), then
 *                                 data_bytes of ring data
 *
 * <serial> distinguishes successive processes of one pid (exec) and pid reuse.
 *
 * Rings are single-producer (one thread at a time) single-consumer. The
 * producer writes a record at `head`, then publishes it by storing the
 * record's first word (type and length) with release order; the consumer
 * reads records up to the first zero word, zeroes what it consumed, and
 * advances `tail`. Records never straddle the end of the data area: the
 * producer pads with HP_EV_PAD, or, when fewer bytes than a record header
 * are left before the end, skips them without writing (and the consumer
 * skips them too).
 *
 * Order: every record carries a sequence number taken from the process
 * file's counter, dense and unique within the process, so the collector can
 * merge the thread rings exactly and knows when a record is still missing.
 * A free is numbered before the chunk is released and an allocation after
 * it is obtained, so a chunk's free always precedes its reuse. A number
 * that never arrives (the program died between taking it and publishing
 * the record) is counted as one truncated record.
 */
#ifndef HP_EVENTS_H
#define HP_EVENTS_H

#include <stdint.h>

#include "codes.h" /* the codes in the events: backing, call, fate, state, map kind */

/* 4: mark records, the program's own mappings (hp_ev_map's stack_id),
 * fastbin states, rings up to 16 MiB, all since 3 was set */
/* 5: hp_ev_alloc.align_log2 */
/* 6: setting records (hp_ev_setting) */
#define HP_EV_VERSION 6
#define HP_PROC_MAGIC 0x31434f5250504548ULL /* "HEPPROC1" */
#define HP_RING_MAGIC 0x31474e4952504548ULL /* "HEPRING1" */
#define HP_PAGE 4096

/* Values of the environment variables a recorded program gets. */
#define HP_ENV_SPOOL "HEAPPROF_SPOOL"         /* spool directory */
#define HP_ENV_COLLECTOR "HEAPPROF_COLLECTOR" /* collector pid */
#define HP_ENV_MAX_DEPTH "HEAPPROF_MAX_DEPTH" /* frames per stack, 1..256 */
#define HP_ENV_OUTPUT "HEAPPROF_OUTPUT"       /* standalone: database to write */
#define HP_ENV_RING_KB "HEAPPROF_RING_KB"     /* ring data per thread */
#define HP_ENV_SNAPSHOTS "HEAPPROF_SNAPSHOTS" /* standalone: snapshots every N s */

#define HP_MAX_DEPTH_LIMIT 256
/* HEAPPROF_RING_KB above it: the default. A record's length has 24 bits,
 * and padding may span all of a ring but its first segment. */
#define HP_RING_KB_MAX (16 * 1024)

/* A spool goes in the first of /dev/shm, $TMPDIR, /tmp with this much free
 * space (else in the one with the most): a small /dev/shm (a container's
 * 64 MiB) is left to the program. */
#define HP_SPOOL_ROOM (128ULL << 20)

/* Process file. */
struct hp_proc_file {
	uint64_t magic;
	uint32_t version;
	uint32_t state;            /* HP_PROC_* */
	uint64_t seq;              /* next sequence number (atomic) */
	uint64_t dropped_events;   /* events not recorded (atomic) */
	int32_t pid;
	int32_t ppid;
	uint64_t start_ticks;      /* /proc/self/stat starttime: same across exec */
	uint64_t serial;
	int32_t exit_status;       /* valid with HP_PROC_EXITED */
	uint32_t nrings;           /* ring files created so far */
	uint8_t reserved[HP_PAGE - 64];
};

enum {
	HP_PROC_RUNNING = 1,
	HP_PROC_EXITED = 2,   /* exit(), _exit() or _Exit() ran */
	HP_PROC_STOPPED = 3,  /* recording stopped (collector gone, no memory) */
};

/* Ring file header. */
struct hp_ring_header {
	uint64_t magic;
	uint32_t version;
	uint32_t state;        /* HP_RING_* */
	uint64_t data_bytes;   /* power of two */
	int32_t tid;           /* current producer thread */
	uint32_t generation;   /* bumped when another thread takes the ring */
	uint8_t pad0[64 - 32];
	uint64_t head;         /* producer: bytes written (monotonic) */
	uint8_t pad1[64 - 8];
	uint64_t tail;         /* consumer: bytes consumed (monotonic) */
	uint8_t pad2[HP_PAGE - 192];
};

enum {
	HP_RING_OWNED = 1,    /* a thread writes to it */
	HP_RING_RETIRED = 2,  /* its thread exited; the collector may drain it */
	HP_RING_FREE = 3,     /* drained by the collector: may be reused */
};

/* ---- records ---- */

enum hp_ev_type {
	HP_EV_PAD = 1,      /* filler up to the end of the data area */
	HP_EV_PROCESS = 2,  /* first record of a process */
	HP_EV_MODULE = 3,   /* a loaded object (at start and after dlopen) */
	HP_EV_UNMODULE = 4, /* an object went away (dlclose) */
	HP_EV_STACK = 5,    /* a new call stack */
	HP_EV_ALLOC = 6,    /* the program got a chunk */
	HP_EV_FREE = 7,     /* the program freed a chunk */
	HP_EV_RESIZE = 8,   /* realloc kept a chunk in place, new size */
	HP_EV_STATE = 9,    /* the allocator changed a range's state itself */
	HP_EV_BRK = 10,     /* the break moved */
	HP_EV_MAP = 11,     /* a mapping appeared */
	HP_EV_UNMAP = 12,   /* a mapping went away */
	HP_EV_MADVISE = 13, /* malloc_trim released free pages */
	HP_EV_THREAD = 14,  /* a thread started or exited */
	HP_EV_FORK = 15,    /* this process is about to fork */
	HP_EV_EXIT = 16,    /* exit(), _exit() or _Exit() with a status */
	HP_EV_DROPS = 17,   /* events were lost (count) */
	HP_EV_REAP = 18,    /* a wait call returned a child's end */
	HP_EV_MARK = 19,    /* the program marked an instant (heapprof_mark) */
	HP_EV_SETTING = 20, /* an allocator setting: from the environment, or mallopt */
	HP_EV_LAST = HP_EV_SETTING, /* the highest type (the collector checks types) */
};

/* Common header: 24 bytes. */
struct hp_ev {
	uint32_t word; /* type | bytes << 8 (bytes a multiple of 8); 0 = not yet */
	int32_t tid;
	uint64_t seq;
	uint64_t ns;   /* CLOCK_MONOTONIC */
};

#define HP_EV_WORD(type, bytes) ((uint32_t)(type) | ((uint32_t)(bytes) << 8))
#define HP_EV_TYPE(word) ((word)&0xff)
#define HP_EV_BYTES(word) ((word) >> 8)

enum { HP_PROC_FORKED = 1, HP_PROC_EXECED = 2 };

struct hp_ev_process {
	struct hp_ev h;
	int32_t pid;
	int32_t ppid;
	uint64_t start_ticks;
	uint64_t realtime_ns;  /* CLOCK_REALTIME at start */
	uint64_t parent_serial; /* forked: the parent process's serial */
	uint64_t fork_ns;       /* forked: the time of the parent's HP_EV_FORK record */
	uint32_t flags;         /* HP_PROC_FORKED, HP_PROC_EXECED */
	uint32_t exe_bytes;     /* then exe path, NUL */
	uint32_t argv_bytes;    /* then argv strings, each NUL-terminated */
	uint32_t argc;
	uint64_t heap_start;    /* the break when recording began */
	/* char exe[exe_bytes]; char argv[argv_bytes]; padding to 8 */
};

struct hp_ev_module {
	struct hp_ev h;
	uint64_t base;      /* load bias (dlpi_addr) */
	uint64_t lo, hi;    /* span of its PT_LOAD segments */
	uint32_t build_id_bytes;
	uint32_t path_bytes;
	uint8_t build_id[32];
	/* char path[path_bytes] (NUL included), padding to 8 */
};

struct hp_ev_unmodule {
	struct hp_ev h;
	uint64_t base;
	uint64_t lo;
};

struct hp_ev_stack {
	struct hp_ev h;
	uint32_t stack_id; /* per process, from 1 */
	uint32_t depth;
	uint64_t ip[];     /* return addresses, innermost first */
};

struct hp_ev_alloc {
	struct hp_ev h;
	uint64_t chunk;
	uint64_t size;        /* requested bytes */
	uint64_t chunk_bytes;
	uint32_t stack_id;    /* 0: no stack (recording degraded) */
	uint8_t backing;      /* hp_backing (observe.h): 1 brk, 2 mmap, 3 arena */
	uint8_t call;         /* hp_call: 1 malloc, 2 calloc, 3 realloc, 4 memalign */
	uint8_t align_log2;   /* memalign: log2 of the alignment asked for, as glibc
			       * rounds it (a power of two, 4 up to 63); else 0 */
	uint8_t pad;
};

struct hp_ev_free {
	struct hp_ev h;
	uint64_t chunk;
	uint64_t chunk_bytes;
	uint8_t fate;     /* hp_fate: 1 tcache, 2 fastbin, 3 bin, 4 top, 5 unmapped */
	uint8_t realloc;  /* 1: the old chunk of a moving realloc */
	uint8_t pad[6];
};

struct hp_ev_resize {
	struct hp_ev h;
	uint64_t chunk;
	uint64_t size;
	uint64_t old_bytes;
	uint64_t new_bytes;
};

struct hp_ev_state {
	struct hp_ev h;
	uint64_t chunk;
	uint64_t bytes;
	uint8_t state; /* hp_state: 0 free, 1 cached in a tcache, 2 live,
			* 3 cached in a fastbin */
	uint8_t pad[7];
};

struct hp_ev_brk {
	struct hp_ev h;
	uint64_t old_brk;
	uint64_t new_brk;
};

struct hp_ev_map {
	struct hp_ev h;
	uint64_t addr;
	uint64_t len;
	uint32_t kind;     /* HP_MAP_CHUNK: an mmap chunk; HP_MAP_HEAP: heap
			    * memory; HP_MAP_PROGRAM: the program's own mmap
			    * (anonymous) or munmap (any range) */
	uint32_t stack_id; /* HP_MAP_PROGRAM's mmap: its call stack; else 0 */
};

struct hp_ev_madvise {
	struct hp_ev h;
	uint64_t addr;
	uint64_t len;
};

struct hp_ev_thread {
	struct hp_ev h;
	uint32_t exiting; /* 0: started (its first record), 1: exiting */
	uint32_t pad;
};

struct hp_ev_fork {
	struct hp_ev h;
};

/* exit(), _exit() or _Exit() with `status` (the int the program passed;
 * a waiter sees its low 8 bits). The last one of a process counts. */
struct hp_ev_exit {
	struct hp_ev h;
	int32_t status;
	uint32_t pad;
};

/* wait, waitpid, wait3, wait4 or waitid returned the end of child `pid`
 * (exited or killed, never stopped or continued): `status` as wait(2)
 * encodes it (waitid's siginfo is converted). */
struct hp_ev_reap {
	struct hp_ev h;
	int32_t pid;
	int32_t status;
};

struct hp_ev_drops {
	struct hp_ev h;
	uint64_t count;
};

#define HP_MARK_MAX 256 /* bytes of a mark's name, NUL included */

struct hp_ev_mark {
	struct hp_ev h;
	uint32_t name_bytes; /* then the name, NUL included, padding to 8 */
	uint32_t pad;
};

#define HP_SETTING_MAX 4096 /* bytes of an environment line, NUL included */

/* An allocator setting, in the process's order of events. Right after its
 * process record, one for each environment line the allocator read at
 * start (GLIBC_TUNABLES, the MALLOC_*_ variables; none in a secure
 * program), in the environment's order; then one for each mallopt() call,
 * made with the main arena locked (before any other thread's next
 * request). A forked child has its start-up lines again. */
struct hp_ev_setting {
	struct hp_ev h;
	int32_t param;       /* mallopt: its param (M_*) */
	int32_t value;       /* mallopt: its value */
	uint32_t line_bytes; /* 0: a mallopt call; else the line NAME=VALUE follows,
			      * NUL included, padding to 8 */
	uint32_t pad;
};

#endif
