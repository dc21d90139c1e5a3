/* SPDX-License-Identifier: MIT */
/*
 * rec-fds close|dup2|dir [DIR]|exhaust - a program that does to the
 * descriptors it did not open what daemons and careful programs do: closes
 * 3..1023 (close), or dup2s /dev/null over each (dup2) or a directory, DIR
 * (dir); or that uses up every descriptor it may have (exhaust). Then it
 * forks a child that makes 500 chunks of 1001 bytes, and starts a
 * thread that makes 500 of 1002, all live at the end. Prints "fds done";
 * exit status 0.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 500

static void *
worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < N; i++)
		((char *)malloc(1002))[0] = 1;
	return NULL;
}

int
main(int argc, char **argv)
{
	const char *how = argc > 1 ? argv[1] : "close";
	int fd = -1, status;
	pthread_t th;
	pid_t pid;

	free(malloc(100)); /* recording started */
	if (strcmp(how, "dup2") == 0)
		fd = open("/dev/null", O_RDWR);
	else if (strcmp(how, "dir") == 0 && argc > 2)
		fd = open(argv[2], O_RDONLY | O_DIRECTORY);
	else if (strcmp(how, "exhaust") == 0)
		while (open("/dev/null", O_RDONLY) >= 0)
			;
	else if (strcmp(how, "close") != 0)
		return 2;
	if (strcmp(how, "close") != 0 && strcmp(how, "exhaust") != 0 && fd < 0)
		return 3;
	for (int i = 3; i < 1024 && strcmp(how, "exhaust") != 0; i++)
		if (i != fd) {
			if (fd >= 0)
				dup2(fd, i);
			else
				close(i);
		}
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 4;
	if (pid == 0) {
		for (int i = 0; i < N; i++)
			((char *)malloc(1001))[0] = 1;
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return 5;
	if (pthread_create(&th, NULL, worker, NULL) != 0 || pthread_join(th, NULL) != 0)
		return 6;
	printf("fds done\n");
	return 0;
}
