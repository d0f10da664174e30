/* poller.c — readiness waits for the fallback mode (no io_uring).
 *
 * Where io_uring is refused, a process's socket or pipe call waits for
 * readiness here, then makes the plain call (calls.c); the blocking pool
 * (a thread per blocked call) would run out of threads with more blocked
 * connections than threads. One poller thread per OS process sleeps in
 * poll() over every waiting descriptor plus an eventfd that says the set
 * changed; it wakes each waiter whose descriptor is ready or whose
 * deadline passed.
 *
 * Entities
 *   waiter  on the stack of the waiting process: fd, events, deadline,
 *           the result, `done` and `released` (io.c's handshake), and its
 *           place in the poller's last pollfd array (slot, gen).
 *   list    the waiters, under `lock`; the poller builds its pollfd array
 *           from it each round (gen counts rounds), and after poll() wakes
 *           the waiters still listed whose slot belongs to that round.
 *           Several waiters may share a descriptor (a reader and a writer).
 *
 * A waiter interrupted by a kill or an exit signal takes itself off the
 * list under the lock unless the poller has already finished it. The
 * poller finishes a waiter (done, wake, released) under the lock, so the
 * waiter's stack frame outlives every use. poll() is O(waiters) per
 * round: this is the fallback, not the fast path (DESIGN §7 asks for an
 * epoll backend; poll() over a list keeps several waiters per descriptor
 * simple, and a node without io_uring is rare).
 */
#include "poller.h"

#include "io.h"
#include "sys.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../proc.h"
#include "../sched.h"
#include "../timer.h"

typedef struct waiter {
	int fd;
	short events, revents;
	uint64_t deadline;
	nu__proc *p;
	struct waiter *next;
	unsigned slot;
	uint64_t gen;
	_Atomic int done;
	_Atomic int released;
} waiter;

static struct {
	pthread_mutex_t lock;
	waiter *head;
	unsigned n;
	uint64_t gen;
	int evfd;
	int started;
} P = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, -1, 0 };

static void finish(waiter *w, short revents)
{
	w->revents = revents;
	atomic_store_explicit(&w->done, 1, memory_order_release);
	nu__proc_wake(w->p);
	atomic_store_explicit(&w->released, 1, memory_order_release);
}

/* Build the round's array (under the lock): entries, and the timeout. */
static unsigned build(struct pollfd **pfd, unsigned *cap, int *timeout)
{
	if (P.n + 1 > *cap) {
		unsigned c = (P.n + 1) * 2;
		struct pollfd *a = realloc(*pfd, c * sizeof(**pfd));
		if (a) {
			*pfd = a;
			*cap = c;
		}
	}
	uint64_t now = nu__now_ns(), next = UINT64_MAX;
	unsigned i = 0;
	(*pfd)[i++] = (struct pollfd){ .fd = P.evfd, .events = POLLIN };
	P.gen++;
	for (waiter *w = P.head; w && i < *cap; w = w->next) {
		(*pfd)[i] = (struct pollfd){ .fd = w->fd, .events = w->events };
		w->slot = i++;
		w->gen = P.gen;
		if (w->deadline && w->deadline < next)
			next = w->deadline;
	}
	*timeout = next == UINT64_MAX ? -1
		   : next <= now      ? 0
				      : (int)((next - now + 999999) / 1000000);
	return i;
}

/* After poll(): finish the ready and the expired (under the lock). */
static void harvest(const struct pollfd *pfd)
{
	uint64_t now = nu__now_ns();
	for (waiter **pp = &P.head; *pp;) {
		waiter *w = *pp;
		short r = w->gen == P.gen ? pfd[w->slot].revents : 0;
		if (r || (w->deadline && w->deadline <= now)) {
			*pp = w->next;
			P.n--;
			finish(w, r);
		} else {
			pp = &w->next;
		}
	}
}

static void *poller_main(void *arg)
{
	(void)arg;
	struct pollfd *pfd = NULL;
	unsigned cap = 0;
	for (;;) {
		int timeout;
		pthread_mutex_lock(&P.lock);
		unsigned n = build(&pfd, &cap, &timeout);
		pthread_mutex_unlock(&P.lock);
		if (nu__sys_poll(pfd, n, timeout) < 0 && errno != EINTR)
			continue;
		if (pfd[0].revents) {
			uint64_t v;
			(void)!nu__sys_read(P.evfd, &v, sizeof(v));
		}
		pthread_mutex_lock(&P.lock);
		harvest(pfd);
		pthread_mutex_unlock(&P.lock);
	}
	return NULL;
}

/* A child of fork() has no poller thread: it starts its own. */
static void after_fork_child(void)
{
	pthread_mutex_init(&P.lock, NULL);
	if (P.evfd >= 0)
		nu__sys_close(P.evfd);
	P.evfd = -1;
	P.head = NULL;
	P.n = 0;
	__atomic_store_n(&P.started, 0, __ATOMIC_RELEASE);
}

/* Under the lock: the poller thread, started once. */
static int start(void)
{
	static int atfork;
	if (P.started)
		return 0;
	if (!atfork && pthread_atfork(NULL, NULL, after_fork_child) == 0)
		atfork = 1;
	P.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (P.evfd < 0)
		return -errno;
	pthread_t t;
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	int rc = pthread_create(&t, &a, poller_main, NULL);
	pthread_attr_destroy(&a);
	if (rc) {
		nu__sys_close(P.evfd);
		P.evfd = -1;
		return -rc;
	}
	__atomic_store_n(&P.started, 1, __ATOMIC_RELEASE);
	return 0;
}

/* Take w off the list unless the poller finished it: 1 if taken off. */
static int withdraw(waiter *w)
{
	int off = 0;
	pthread_mutex_lock(&P.lock);
	if (!atomic_load_explicit(&w->done, memory_order_acquire)) {
		for (waiter **pp = &P.head; *pp; pp = &(*pp)->next)
			if (*pp == w) {
				*pp = w->next;
				P.n--;
				off = 1;
				break;
			}
	}
	pthread_mutex_unlock(&P.lock);
	return off;
}

int nu__poller_wait(int fd, short events, uint64_t deadline)
{
	nu__sched *s = nu__sched_self();
	nu__proc *p = s->current;
	waiter w = { .fd = fd, .events = events, .deadline = deadline, .p = p };
	pthread_mutex_lock(&P.lock);
	int rc = start();
	if (!rc) {
		w.next = P.head;
		P.head = &w;
		P.n++;
		uint64_t one = 1;
		(void)!nu__sys_write(P.evfd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&P.lock);
	if (rc)
		return rc;
	p->io_busy++;
	while (!atomic_load_explicit(&w.done, memory_order_acquire)) {
		if (nu__io_interrupted(s, p) && withdraw(&w)) {
			p->io_busy--;
			return -EINTR;
		}
		s = nu__proc_park(s);
	}
	while (!atomic_load_explicit(&w.released, memory_order_acquire))
		;
	p->io_busy--;
	return w.revents < 0 ? -ECANCELED : w.revents ? w.revents : -ETIMEDOUT;
}

void nu__poller_cancel_fd(int fd)
{
	if (!__atomic_load_n(&P.started, __ATOMIC_ACQUIRE))
		return; /* nobody ever waited: no lock (close in a handler) */
	pthread_mutex_lock(&P.lock);
	for (waiter **pp = &P.head; *pp;) {
		waiter *w = *pp;
		if (w->fd == fd) {
			*pp = w->next;
			P.n--;
			finish(w, -1);
		} else {
			pp = &w->next;
		}
	}
	pthread_mutex_unlock(&P.lock);
}
