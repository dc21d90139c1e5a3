/* SPDX-License-Identifier: MIT */
/*
 * rec-signals READY-FILE - counts the SIGUSR1, SIGALRM, SIGHUP and SIGINT
 * it gets. Creates READY-FILE once its handlers are in place, then
 * allocates and frees until it has had one of the first three (or 20 s
 * have passed), and prints "usr1 N alrm N hup N int N"; exit status 0.
 * Anything else sent to it keeps its default action.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t usr1, alrm, hup, intr;

static void
on_signal(int sig)
{
	if (sig == SIGUSR1)
		usr1++;
	else if (sig == SIGALRM)
		alrm++;
	else if (sig == SIGINT)
		intr++;
	else
		hup++;
}

int
main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	time_t start = time(NULL);
	int fd;

	if (argc < 2)
		return 2;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if ((fd = open(argv[1], O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0)
		return 3;
	close(fd);
	while (!(usr1 && alrm && hup) && time(NULL) - start < 20) {
		free(malloc(100));
		usleep(1000);
	}
	/* a moment more: a signal sent twice would arrive now */
	usleep(200000);
	printf("usr1 %d alrm %d hup %d int %d\n", (int)usr1, (int)alrm, (int)hup, (int)intr);
	return 0;
}
