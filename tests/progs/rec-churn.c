/* SPDX-License-Identifier: MIT */
/*
 * rec-churn THREADS PAIRS [PAUSE-MS] - each of THREADS threads, all at
 * once, makes PAIRS malloc/free pairs of 40..103 bytes and keeps one chunk
 * of 3000 + its number live until the end: enough events to go round a
 * ring of a few MiB many times. With PAUSE-MS, the threads start after
 * that pause. Prints "churned THREADS x PAIRS"; exit status 0.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long pairs;
static pthread_barrier_t start;
static void *kept[1024];

static void *
worker(void *arg)
{
	long t = (long)arg;

	pthread_barrier_wait(&start);
	kept[t] = malloc(3000 + (size_t)t);
	for (long i = 0; i < pairs; i++) {
		char *p = malloc(40 + (size_t)(i % 64));
		p[0] = (char)i;
		free(p);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	long threads = argc > 1 ? atol(argv[1]) : 4;
	pthread_t th[1024];

	pairs = argc > 2 ? atol(argv[2]) : 10000;
	if (threads < 1 || threads > 1024 || pairs < 0)
		return 2;
	if (argc > 3) {
		long ms = atol(argv[3]);
		struct timespec ts = { ms / 1000, ms % 1000 * 1000000 };
		nanosleep(&ts, NULL);
	}
	pthread_barrier_init(&start, NULL, (unsigned)threads);
	for (long t = 0; t < threads; t++)
		pthread_create(&th[t], NULL, worker, (void *)t);
	for (long t = 0; t < threads; t++)
		pthread_join(th[t], NULL);
	printf("churned %ld x %ld\n", threads, pairs);
	return 0;
}
