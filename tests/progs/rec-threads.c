/* SPDX-License-Identifier: MIT */
/*
 * rec-threads - 4 threads each allocate 500 chunks of 2000+t bytes; each
 * frees the chunks of the next thread (cross-thread frees, into other
 * arenas), so every chunk is freed by a thread other than the one that
 * made it. Prints the total.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define T 4
#define N 500

static void *chunks[T][N];
static pthread_barrier_t made;

static void *
worker(void *arg)
{
	int t = (int)(long)arg;

	for (int i = 0; i < N; i++) {
		chunks[t][i] = malloc(2000 + (size_t)t);
		((char *)chunks[t][i])[0] = (char)t;
	}
	pthread_barrier_wait(&made);
	for (int i = 0; i < N; i++)
		free(chunks[(t + 1) % T][i]);
	return NULL;
}

int
main(void)
{
	pthread_t th[T];

	pthread_barrier_init(&made, NULL, T);
	for (long t = 0; t < T; t++)
		pthread_create(&th[t], NULL, worker, (void *)t);
	for (int t = 0; t < T; t++)
		pthread_join(th[t], NULL);
	printf("%d chunks\n", T * N);
	return 0;
}
