/* SPDX-License-Identifier: MIT */
/*
 * rec-tree - a process tree: the root allocates, forks a child that
 * allocates and exits 3, forks a child that execs this program again as
 * "leaf" (which allocates and exits 4), uses vfork+exec and posix_spawn
 * for one leaf each, and exits 0. Every process allocates 1000+k bytes k
 * times, k being its role, so the test can tell them apart.
 */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void
allocate(int k)
{
	for (int i = 0; i < k; i++) {
		char *p = malloc(1000 + (size_t)k);
		p[0] = 1;
		if (i % 2)
			free(p);
	}
}

static int
wait_for(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int
main(int argc, char **argv)
{
	pid_t pid;
	int rc[4];
	char *leaf[] = { argv[0], "leaf", NULL };

	if (argc > 1 && strcmp(argv[1], "leaf") == 0) {
		allocate(4);
		return 4;
	}
	allocate(1);
	pid = fork();
	if (pid == 0) {
		allocate(2);
		exit(3);
	}
	rc[0] = wait_for(pid);
	pid = fork();
	if (pid == 0) {
		allocate(3);
		execv(argv[0], leaf);
		_exit(127);
	}
	rc[1] = wait_for(pid);
	pid = vfork();
	if (pid == 0) {
		execv(argv[0], leaf);
		_exit(127);
	}
	rc[2] = wait_for(pid);
	if (posix_spawn(&pid, argv[0], NULL, NULL, leaf, environ) != 0)
		return 1;
	rc[3] = wait_for(pid);
	printf("children: %d %d %d %d\n", rc[0], rc[1], rc[2], rc[3]);
	return rc[0] == 3 && rc[1] == 4 && rc[2] == 4 && rc[3] == 4 ? 0 : 1;
}
