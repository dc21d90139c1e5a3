/* SPDX-License-Identifier: MIT */
/*
 * rec-crash MODE [PIDFILE] - allocate 250 chunks of 4321 bytes, say so
 * (unbuffered), then end abruptly: segv, abort, thread-exit (_exit(9) from a
 * second thread while the first allocates), or wait to be killed (kill:
 * writes its pid to PIDFILE first). Nothing recorded before the end may be
 * lost.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *
quitter(void *arg)
{
	(void)arg;
	usleep(20000);
	_exit(9);
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	for (int i = 0; i < 250; i++) {
		char *p = malloc(4321);
		p[0] = (char)i;
	}
	write(1, "allocated\n", 10);
	if (strcmp(argv[1], "segv") == 0) {
		*(volatile int *)0 = 1;
	} else if (strcmp(argv[1], "abort") == 0) {
		abort();
	} else if (strcmp(argv[1], "thread-exit") == 0) {
		pthread_t t;
		pthread_create(&t, NULL, quitter, NULL);
		for (;;)
			free(malloc(100));
	} else if (strcmp(argv[1], "kill") == 0 && argc == 3) {
		FILE *f = fopen(argv[2], "w");
		fprintf(f, "%d\n", (int)getpid());
		fclose(f);
		for (;;)
			pause();
	}
	return 2;
}
