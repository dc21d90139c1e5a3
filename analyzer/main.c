/* SPDX-License-Identifier: MIT */
/*
 * main.c - the heapprof command: dispatch to a subcommand.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "cmd.h"
#include "util.h"

static void
usage(FILE *f)
{
	fputs("usage: heapprof run [-o FILE] [--force] [--max-depth N] [--snapshots]\n"
	      "                    [--snapshot-every SECONDS] [--] PROGRAM [ARGS...]\n"
	      "       heapprof report FILE [--pid PID] [--at INSTANT] [--format text|json|html]\n"
	      "                            [-o FILE] [--top N] [--by function|stack]\n"
	      "                            [--skip PATTERN]...\n"
	      "       heapprof report FILE --list-snapshots [--pid PID] [--format text|json]\n"
	      "       heapprof check FILE [--pid PID] [--at INSTANT] [--max-untrimmable SIZE]\n"
	      "                           [--max-retained SIZE] [--max-leaked SIZE]\n"
	      "                           [--max-peak SIZE] [--format text|json] [--skip PATTERN]...\n"
	      "                           [--baseline BASE --max-increase SIZE|PERCENT%]\n"
	      "                           [--junit FILE]\n"
	      "       heapprof diff BASE NEW [--pid BASE_PID:NEW_PID] [--at exit|worst|peak]\n"
	      "                              [--format text|json] [--top N]\n"
	      "       heapprof snapshot FILE\n"
	      "       heapprof advise FILE [--pid PID] [--format text|json] [--no-policies]\n"
	      "       heapprof --version\n"
	      "\n"
	      "run      run PROGRAM with heapprof's allocator, record every chunk and its\n"
	      "         call stack into a SQLite database (default heapprof.PROGRAM.PID.db)\n"
	      "report   how much free memory each process cannot give back, the chunks that\n"
	      "         pin it and the holes below them, with their call stacks\n"
	      "check    the same figures against limits (and a baseline): exit 0 if all\n"
	      "         hold, 1 if not\n"
	      "diff     the change of every figure and of the sites from BASE to NEW\n"
	      "snapshot ask a running heapprof run --snapshots for a snapshot now\n"
	      "advise   replay the recorded requests under other allocator settings and\n"
	      "         policies: which one would give the memory back\n"
	      "\n"
	      "INSTANT: exit (the end, the default), worst (the most untrimmable bytes), peak\n"
	      "(the largest heap extent), SECONDS after the process started, or mark:NAME\n"
	      "(where the program called heapprof_mark(\"NAME\")). heapprof COMMAND --help\n"
	      "says more. Options take their value as --opt VALUE or --opt=VALUE.\n",
	      f);
}

/* A command's output is its result: one that could not be written (a full
 * disk; a pipe whose reader is gone, where SIGPIPE is ignored) is an error,
 * said in one line, not an exit status of success over a truncated file.
 * (run's output is the program's.) */
static int
flushed(int rc)
{
	/* errno: the flush's, or (a write failed before it) that write's */
	if (rc != 2 && (fflush(stdout) != 0 || ferror(stdout))) {
		hp_error("stdout", "%s", strerror(errno ? errno : EIO));
		return rc == 0 ? 2 : rc;
	}
	return rc;
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "run") == 0 || strcmp(argv[1], "collect") == 0) {
		/* The collector's large blocks (the model's entries, 4 MiB at a
		 * time; libdw's decompressed sections) in mappings of their own
		 * whatever was freed before: glibc's threshold otherwise rises
		 * to the largest block freed, and blocks freed later stay in
		 * the heap, resident (perl: 126 MB still resident once its 1.4 M
		 * chunks' model was freed, when libdw opens libc's debug
		 * sections again for the addresses deferred, db_large_model). */
		mallopt(M_MMAP_THRESHOLD, 256 << 10);
		return argv[1][0] == 'r' ? cmd_run(argc - 1, argv + 1)
					 : cmd_collect(argc - 1, argv + 1);
	}
	if (strcmp(argv[1], "report") == 0)
		return flushed(cmd_report(argc - 1, argv + 1));
	if (strcmp(argv[1], "check") == 0)
		return flushed(cmd_check(argc - 1, argv + 1));
	if (strcmp(argv[1], "diff") == 0)
		return flushed(cmd_diff(argc - 1, argv + 1));
	if (strcmp(argv[1], "snapshot") == 0)
		return flushed(cmd_snapshot(argc - 1, argv + 1));
	if (strcmp(argv[1], "advise") == 0)
		return flushed(cmd_advise(argc - 1, argv + 1));
	if (strcmp(argv[1], "--version") == 0) {
		printf("heapprof %s\n", HP_VERSION);
		return flushed(0);
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return flushed(0);
	}
	hp_error(argv[1], "unknown command (try heapprof --help)");
	return 2;
}
