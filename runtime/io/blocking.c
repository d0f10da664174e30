/* blocking.c — the blocking pool: work that may block a thread (a
 * library without a hookable call, getaddrinfo, the fallback mode's
 * system calls) runs on a few threads of its own, so that scheduler
 * threads never block in anything but io_uring_enter.
 *
 * Entities
 *   job    on the stack of the process that waits for it: the function,
 *          its argument, the process, `done` and `released`.
 *   queue  one FIFO for the OS process, under a mutex, with a condition
 *          variable the idle pool threads sleep on.
 *   pool   threads started lazily, one more whenever a job is queued and
 *          none is idle, up to NUPROC_BLOCKING_THREADS (default 8). They
 *          live until the OS process exits (idle, they cost a sleeping
 *          thread each): nodes start and stop, the pool stays.
 *
 * Lifetime, as in io.c: the job lives on the waiting process's stack, so
 * the process may not go on (nor exit: p->io_busy defers kills) before
 * the pool thread is done with it. The thread sets done (release), wakes
 * the process, then sets released; the process parks until done and
 * spins (a few instructions at most) until released.
 *
 * Rejected: a thread per call (creation costs ~20 us and is unbounded),
 * per-node pools (a node that stops would have to join threads blocked in
 * someone's library call).
 */
#include "blocking.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "nuproc.h"
#include "../proc.h"
#include "../sched.h"

typedef struct job {
	void (*fn)(void *);
	void *arg;
	nu__proc *p;
	struct job *next;
	_Atomic int done;
	_Atomic int released;
} job;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	job *head, *tail;
	unsigned threads, idle, max;
} pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
	   NULL, NULL, 0, 0, 0 };

static job *pool_take(void)
{
	pthread_mutex_lock(&pool.lock);
	while (!pool.head) {
		pool.idle++;
		pthread_cond_wait(&pool.cond, &pool.lock);
		pool.idle--;
	}
	job *j = pool.head;
	pool.head = j->next;
	if (!pool.head)
		pool.tail = NULL;
	pthread_mutex_unlock(&pool.lock);
	return j;
}

static void *pool_main(void *arg)
{
	(void)arg;
	for (;;) {
		job *j = pool_take();
		nu__proc *p = j->p;
		j->fn(j->arg);
		atomic_store_explicit(&j->done, 1, memory_order_release);
		nu__proc_wake(p);
		atomic_store_explicit(&j->released, 1, memory_order_release);
	}
	return NULL;
}

static unsigned pool_max(void)
{
	const char *e = getenv("NUPROC_BLOCKING_THREADS");
	long v = e ? strtol(e, NULL, 10) : 0;
	return v > 0 && v <= 1024 ? (unsigned)v : 8u;
}

/* A child of fork() has none of the pool's threads: it starts its own
 * (the jobs queued in the parent belong to processes it does not have). */
static void after_fork_child(void)
{
	pthread_mutex_init(&pool.lock, NULL);
	pthread_cond_init(&pool.cond, NULL);
	pool.head = pool.tail = NULL;
	pool.threads = pool.idle = 0;
}

/* Queue j, starting a thread when none is idle: 0 or -errno. */
static int pool_put(job *j)
{
	int rc = 0;
	pthread_mutex_lock(&pool.lock);
	if (!pool.max) {
		pool.max = pool_max();
		pthread_atfork(NULL, NULL, after_fork_child);
	}
	if (!pool.idle && pool.threads < pool.max) {
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		rc = -pthread_create(&t, &a, pool_main, NULL);
		pthread_attr_destroy(&a);
		if (!rc)
			pool.threads++;
		else if (pool.threads)
			rc = 0; /* the ones there will get to it */
	}
	if (!rc) {
		j->next = NULL;
		if (pool.tail)
			pool.tail->next = j;
		else
			pool.head = j;
		pool.tail = j;
		pthread_cond_signal(&pool.cond);
	}
	pthread_mutex_unlock(&pool.lock);
	return rc;
}

int nu__blocking_run(void (*fn)(void *), void *arg, const int *fd_result)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current) {
		fn(arg);
		return 0;
	}
	nu__proc *p = s->current;
	job j = { .fn = fn, .arg = arg, .p = p };
	p->io_busy++;
	int rc = pool_put(&j);
	if (!rc) {
		while (!atomic_load_explicit(&j.done, memory_order_acquire))
			s = nu__proc_park(s);
		while (!atomic_load_explicit(&j.released,
					     memory_order_acquire))
			;
	}
	p->io_busy--;
	if (!rc && fd_result && *fd_result >= 0)
		p->io_fd = *fd_result; /* closed if we exit right here */
	nu__proc_check_kill(s, p);
	p->io_fd = -1;
	return rc;
}

typedef struct user_call {
	void *(*fn)(void *);
	void *arg, *result;
} user_call;

static void user_fn(void *a)
{
	user_call *c = a;
	c->result = c->fn(c->arg);
}

int nu_blocking(void *(*fn)(void *arg), void *arg, void **result)
{
	if (!fn)
		return -EINVAL;
	user_call c = { fn, arg, NULL };
	int rc = nu__blocking_run(user_fn, &c, NULL);
	if (!rc && result)
		*result = c.result;
	return rc;
}
