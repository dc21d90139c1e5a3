/* SPDX-License-Identifier: MIT */
/*
 * regress - a service whose heap regressed, and (built with -DFIXED) its
 * fix: the pattern heapprof diff and heapprof check --baseline are tested
 * with.
 *
 * The service loads a table (TABLE blocks of 40 KiB: load_table), keeps a
 * small config string (remember_config), drops the table, then opens
 * SESSIONS sessions of SESSION bytes (open_session).
 *
 *   regressed  the config string is made after the table: it sits above
 *              it and pins it, so the table's ~39 MiB stay untrimmable to
 *              the end; the sessions are never closed: leaked.
 *   fixed      the config string is made first, below the table: the
 *              dropped table is at the top and free() trims it; the
 *              sessions are closed.
 *
 * The config string lives to the end in both: a leak of CONFIG bytes each
 * time. Nothing else allocates (no stdio: the output goes with write(2)),
 * so the difference between the two is exactly these chunks.
 *
 * Usage: regress   (prints "regressed" or "fixed")
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TABLE 1000
#define BLOCK (40 * 1024)
#define SESSIONS 10
#define SESSION 1000
#define CONFIG 100

static void *table[TABLE];
static void *sessions[SESSIONS];

__attribute__((noinline)) static void
load_table(void)
{
	for (int i = 0; i < TABLE; i++) {
		table[i] = malloc(BLOCK); /* TABLE_SITE */
		if (!table[i])
			exit(99);
		memset(table[i], i & 0xff, BLOCK);
	}
}

__attribute__((noinline)) static void
drop_table(void)
{
	for (int i = 0; i < TABLE; i++)
		free(table[i]);
}

__attribute__((noinline)) static char *
remember_config(void)
{
	char *s = malloc(CONFIG); /* CONFIG_SITE */
	if (!s)
		exit(99);
	strcpy(s, "threads=4");
	return s;
}

__attribute__((noinline)) static void
open_session(int i)
{
	sessions[i] = malloc(SESSION); /* SESSION_SITE */
	if (!sessions[i])
		exit(99);
	memset(sessions[i], 0, SESSION);
}

int
main(void)
{
	char *config;

#ifdef FIXED
	config = remember_config();
	load_table();
#else
	load_table();
	config = remember_config();
#endif
	drop_table();
	for (int i = 0; i < SESSIONS; i++)
		open_session(i);
#ifdef FIXED
	for (int i = 0; i < SESSIONS; i++)
		free(sessions[i]);
	static const char msg[] = "fixed\n";
#else
	static const char msg[] = "regressed\n";
#endif
	if (write(1, msg, sizeof(msg) - 1) != (ssize_t)sizeof(msg) - 1)
		return 99;
	return config[0] == 't' ? 0 : 1;
}
