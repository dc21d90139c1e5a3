/* SPDX-License-Identifier: MIT */
/*
 * symworker.c - return addresses symbolized by a thread of their own (see
 * symworker.h).
 */
#include "config.h"

#include "symworker.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct job {
	int64_t image_id;
	uint64_t offset;
	const char *path, *build_id;
};

struct symworker {
	pthread_mutex_t mu;
	pthread_cond_t wake;
	struct job *jobs; /* under mu */
	size_t njobs, jobs_cap;
	bool stop;        /* written under mu; the thread reads it between lookups */
	bool running;
	pthread_t thread;
	/* the thread's own until it is joined; NULL: let go of
	 * (symworker_defer), opened again by the next lookup */
	struct sym_ctx *ctx;
	struct sym_result *res;
	size_t nres, res_cap;
};

static void
look_up(struct symworker *w, const struct job *j)
{
	struct sym_frame f[SYM_MAX_LOGICAL];
	char err[256];
	int n;

	memset(f, 0, sizeof(f));
	if (!w->ctx)
		w->ctx = sym_open();
	/* a return address: look up the call instruction before it */
	n = w->ctx ? sym_lookup(w->ctx, j->path, j->build_id, j->offset ? j->offset - 1 : 0, f,
				SYM_MAX_LOGICAL, err, sizeof(err))
		   : 0;
	if (n < 0)
		n = 0;
	if (w->nres == w->res_cap) {
		w->res_cap = w->res_cap ? 2 * w->res_cap : 1024;
		w->res = xrealloc(w->res, w->res_cap * sizeof(*w->res));
	}
	struct sym_result *r = &w->res[w->nres++];
	r->image_id = j->image_id;
	r->offset = j->offset;
	r->n = n;
	r->f = NULL;
	if (n > 0) {
		r->f = xmalloc((size_t)n * sizeof(*r->f));
		memcpy(r->f, f, (size_t)n * sizeof(*r->f));
	}
}

static void
put_job(struct symworker *w, const struct job *j)
{
	if (w->njobs == w->jobs_cap) {
		w->jobs_cap = w->jobs_cap ? 2 * w->jobs_cap : 1024;
		w->jobs = xrealloc(w->jobs, w->jobs_cap * sizeof(*w->jobs));
	}
	w->jobs[w->njobs++] = *j;
}

/* Take every job queued and look them up. The thread (`wait`) waits for
 * more, and once stopped leaves what it has not begun in the queue: whoever
 * stopped it (the collector, deferring; symworker_finish) waits for one
 * lookup, not for the queue at idle priority. Without `wait`, until none
 * is left. */
static void
drain(struct symworker *w, bool wait)
{
	struct job *batch = NULL;
	size_t cap = 0;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (wait && w->njobs == 0 && !w->stop)
			pthread_cond_wait(&w->wake, &w->mu);
		if (w->njobs == 0 || (wait && w->stop))
			break;
		/* swap the queue for an empty one, and work without the lock */
		struct job *got = w->jobs;
		size_t n = w->njobs, got_cap = w->jobs_cap, i;
		w->jobs = batch;
		w->jobs_cap = cap;
		w->njobs = 0;
		pthread_mutex_unlock(&w->mu);
		for (i = 0; i < n && !(wait && __atomic_load_n(&w->stop, __ATOMIC_RELAXED)); i++)
			look_up(w, &got[i]);
		pthread_mutex_lock(&w->mu);
		for (; i < n; i++)
			put_job(w, &got[i]);
		batch = got;
		cap = got_cap;
	}
	pthread_mutex_unlock(&w->mu);
	free(batch);
}

static void *
worker_main(void *arg)
{
	struct symworker *w = arg;
	struct sched_param sp = { 0 };

	/* only what the recording leaves of the CPUs */
	pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp);
	drain(w, true);
	return NULL;
}

struct symworker *
symworker_start(void)
{
	struct symworker *w = xcalloc(1, sizeof(*w));

	w->ctx = sym_open();
	if (w->ctx == NULL) {
		free(w);
		return NULL;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->wake, NULL);
	w->running = pthread_create(&w->thread, NULL, worker_main, w) == 0;
	return w;
}

void
symworker_defer(struct symworker *w)
{
	if (!w->running)
		return;
	pthread_mutex_lock(&w->mu);
	__atomic_store_n(&w->stop, true, __ATOMIC_RELAXED);
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	w->running = false;
	sym_close(w->ctx);
	w->ctx = NULL;
}

void
symworker_resume(struct symworker *w)
{
	if (w->running)
		return;
	pthread_mutex_lock(&w->mu);
	__atomic_store_n(&w->stop, false, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&w->mu);
	w->running = pthread_create(&w->thread, NULL, worker_main, w) == 0;
}

void
symworker_add(struct symworker *w, int64_t image_id, uint64_t offset, const char *path,
	      const char *build_id)
{
	pthread_mutex_lock(&w->mu);
	put_job(w, &(struct job){ image_id, offset, path, build_id });
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->mu);
}

static int
by_address(const void *x, const void *y)
{
	const struct sym_result *a = x, *b = y;

	if (a->image_id != b->image_id)
		return a->image_id < b->image_id ? -1 : 1;
	return a->offset < b->offset ? -1 : a->offset > b->offset;
}

size_t
symworker_finish(struct symworker *w, const struct sym_result **out)
{
	pthread_mutex_lock(&w->mu);
	__atomic_store_n(&w->stop, true, __ATOMIC_RELAXED);
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->mu);
	if (w->running) {
		pthread_join(w->thread, NULL);
		w->running = false;
	}
	drain(w, false); /* no thread, left by it, or added after it stopped */
	qsort(w->res, w->nres, sizeof(*w->res), by_address);
	*out = w->res;
	return w->nres;
}

void
symworker_free(struct symworker *w)
{
	if (!w)
		return;
	if (w->running) {
		/* abandoned: what is queued is not wanted */
		pthread_mutex_lock(&w->mu);
		w->njobs = 0;
		__atomic_store_n(&w->stop, true, __ATOMIC_RELAXED);
		pthread_cond_signal(&w->wake);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
	}
	for (size_t i = 0; i < w->nres; i++) {
		for (int k = 0; k < w->res[i].n; k++)
			sym_frame_clear(&w->res[i].f[k]);
		free(w->res[i].f);
	}
	free(w->res);
	free(w->jobs);
	sym_close(w->ctx);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->wake);
	free(w);
}
