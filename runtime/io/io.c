/* io.c — how a process blocks on I/O without blocking its scheduler.
 *
 * Entities
 *   wait record  nu__iowait, on the stack of the process that makes the
 *            call: the prepared SQE (kept, so the op can be submitted
 *            again), the deadline, the result, and `left`, the CQEs still
 *            to come (the op, its linked timeout, a cancel). Its address
 *            is the CQEs' user_data; the low three bits say which SQE.
 *   ring     each scheduler's (ring.c). An op goes to the ring of the
 *            scheduler the process runs on when it calls; the process may
 *            be woken and run elsewhere, but a cancel must go to the ring
 *            that holds the op (SINGLE_ISSUER: only the owner thread
 *            submits), so a process that must cancel moves there first.
 *   fd table one counter per descriptor of ops in flight on it, so that
 *            nu_close can cancel them (in every ring: a cancel request
 *            goes to each other scheduler, which submits it in its own
 *            ring) and wait until none is left before it closes.
 *
 * The path. nu__io_run copies the record's SQE into the ring (and a
 * linked IORING_OP_LINK_TIMEOUT with an absolute CLOCK_MONOTONIC deadline
 * when there is one) and parks. The scheduler submits one batch per loop
 * turn: when it runs out of runnable processes (nu__io_poll, then the
 * idle wait, which submits and waits in one io_uring_enter), and every
 * NU__IO_POLL_TICKS (16) picks while busy (sched.c says why 16). Completions
 * are dispatched on the owner thread (ring.c reap -> nu__io_complete):
 * the last CQE of a record wakes its process, at the tail of the run
 * queue (a batch of completions is served in arrival order; as runnext,
 * each batch's last one jumped ahead of the hundreds queued before it:
 * echo 1000's p99 went from a median of 9.3 to 8.4 ms in 6 alternating
 * runs, req/s unchanged).
 *
 * Lifetime. The record lives on the process's stack, so the process may
 * not return (or exit) while a CQE can still name it: p->io_busy makes
 * the resume points leave kill and exit signals pending
 * (nu__proc_check_kill_slow, yield_take); the wait loop sees them, cancels
 * the op (IORING_OP_ASYNC_CANCEL by user_data), waits for every CQE, and
 * only then acts on them. An op that completed anyway keeps its result;
 * one that made a descriptor (accept, socket, openat) is closed if the
 * process exits there (p->io_fd, nu__io_exit). A process woken for any
 * other reason (a message) parks again. The completer reads what it needs
 * before the decrement that ends the wait and sets `released` after its
 * wake; a process that was already running elsewhere spins on `released`
 * (a few instructions) before its stack frame goes.
 *
 * Memory orders. left: the completer's fetch_sub is acq_rel, after its
 * plain stores of res/tres, and the process reads left with acquire, so it
 * sees the results. released: store-release after the wake, load-acquire
 * by the process. The fd table counters are relaxed RMWs plus the acquire
 * of nu_close's final read, which pairs with the completer's release.
 *
 * Rejected: a completion thread (a cross-CPU wake per op), submitting one
 * SQE per syscall at once (no batching), epoll for readiness then a plain
 * syscall (two system calls per op, no file I/O).
 */
#include "io.h"
#include "sys.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../fault.h"
#include "../node.h"
#include "../proc.h"
#include "../sched.h"

/* ------------------------------------------------------- errno */

int nu__errno_get(void)
{
	return errno;
}

void nu__errno_set(int e)
{
	errno = e;
}

/* ------------------------------------------------------ fd table */

#define FD_TRACK_MAX (1u << 20)

static void *_Atomic fd_ops; /* _Atomic uint32_t[fd_cap] */
static uint32_t fd_cap;

void *nu__io_table_map(void *_Atomic *table, size_t bytes)
{
	void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	void *none = NULL;
	if (atomic_compare_exchange_strong(table, &none, m))
		return m;
	munmap(m, bytes); /* another thread's came first */
	return none;
}

static __attribute__((noinline)) _Atomic uint32_t *fd_table_make(void)
{
	struct rlimit rl;
	uint64_t cap = FD_TRACK_MAX;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max < cap)
		cap = rl.rlim_max < 1024 ? 1024 : rl.rlim_max;
	fd_cap = (uint32_t)cap; /* same value from every racer */
	return nu__io_table_map(&fd_ops, cap * sizeof(uint32_t));
}

/* fd's counter (NULL: fd out of range, or no table). Inline: two per op
 * (submit, complete). */
static inline _Atomic uint32_t *fd_slot(int fd)
{
	_Atomic uint32_t *t = atomic_load_explicit(&fd_ops,
						    memory_order_acquire);
	if (__builtin_expect(!t, 0) && !(t = fd_table_make()))
		return NULL;
	return (uint32_t)fd < fd_cap ? &t[fd] : NULL; /* (fd < 0: huge) */
}

/* ------------------------------------------------------ records */

/* Every field but the SQE, which the caller's io_uring_prep_* writes
 * whole (liburing's io_uring_prep_rw sets each of its fields; user_data
 * is set at submission), and ts, written when there is a deadline. */
void nu__io_init(nu__iowait *w, int fd, uint64_t deadline)
{
	w->p = NULL;
	w->ring_of = NULL;
	atomic_store_explicit(&w->left, 0, memory_order_relaxed);
	atomic_store_explicit(&w->released, 0, memory_order_relaxed);
	w->res = w->tres = 0;
	w->fd = fd;
	w->cancelled = 0;
	w->makes_fd = 0;
	w->deadline = deadline;
}

/* A buffer on the calling process's stack at or above io_res_lo is
 * resident already (stack pages stay while the process lives): most
 * buffers of a loop that reads into a local array skip the page walk. */
void nu__io_resident(nu__proc *p, const void *buf, size_t len)
{
	if (!buf || !len)
		return;
	uintptr_t a = (uintptr_t)buf, e = a + len;
	int on_stack = p && a >= (uintptr_t)p->stack_lo && e >= a &&
		       e <= (uintptr_t)p->stack_hi;
	if (on_stack && a >= p->io_res_lo)
		return;
	nu__mem_populate((void *)buf, len);
	if (on_stack && e >= p->io_res_lo) /* contiguous with the floor */
		p->io_res_lo = a & ~(uintptr_t)(nu__node_get()->mem.page - 1);
}

/* --------------------------------------------------- submission */

/* Room for n SQEs in a row (an op and its linked timeout must go in the
 * same submission). */
static void ring_room(nu__ring *r, unsigned n)
{
	while (io_uring_sq_space_left(&r->uring) < n)
		nu__ring_poll(r);
}

/* n more SQEs in s's ring (owner thread): counted in flight, and a
 * hand-off streak on s now polls the ring at the I/O pace (sched.h). */
static void io_queued(nu__sched *s, int n)
{
	s->io_inflight += n;
	nu__sched_io_queued(s);
}

static void io_submit(nu__sched *s, nu__iowait *w)
{
	nu__ring *r = &s->ring;
	ring_room(r, 2);
	struct io_uring_sqe *sqe = nu__ring_sqe(r);
	*sqe = w->sqe;
	io_uring_sqe_set_data64(sqe, (uintptr_t)w | NU__IO_TAG_OP);
	int n = 1;
	if (w->deadline) {
		sqe->flags |= IOSQE_IO_LINK;
		w->ts.tv_sec = (long long)(w->deadline / 1000000000u);
		w->ts.tv_nsec = (long long)(w->deadline % 1000000000u);
		struct io_uring_sqe *t = nu__ring_sqe(r);
		io_uring_prep_link_timeout(t, &w->ts, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(t, (uintptr_t)w | NU__IO_TAG_TIMEOUT);
		n = 2;
	}
	_Atomic uint32_t *c = fd_slot(w->fd);
	if (c)
		atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
	w->ring_of = s;
	w->cancelled = 0;
	w->res = w->tres = 0;
	atomic_store_explicit(&w->released, 0, memory_order_relaxed);
	atomic_store_explicit(&w->left, n, memory_order_relaxed);
	io_queued(s, n);
}

void nu__io_complete(const struct io_uring_cqe *cqe)
{
	nu__sched *s = nu__sched_self();
	s->io_inflight--;
	if (cqe->user_data == NU__IO_UD_DETACHED)
		return;
	nu__iowait *w = (nu__iowait *)(uintptr_t)(cqe->user_data & ~7ull);
	unsigned tag = (unsigned)(cqe->user_data & 7);
	if (tag == NU__IO_TAG_OP) {
		w->res = cqe->res;
		_Atomic uint32_t *c = fd_slot(w->fd);
		if (c)
			atomic_fetch_sub_explicit(c, 1, memory_order_release);
	} else if (tag == NU__IO_TAG_TIMEOUT) {
		w->tres = cqe->res;
	}
	nu__proc *p = w->p;
	if (atomic_fetch_sub_explicit(&w->left, 1, memory_order_acq_rel) == 1) {
		nu__proc_wake_tail(s, p);
		atomic_store_explicit(&w->released, 1, memory_order_release);
	}
}

/* ------------------------------------------------------- waiting */

int nu__io_interrupted(nu__sched *s, nu__proc *p)
{
	return (atomic_load_explicit(&p->pending, memory_order_relaxed) &
		(NU__PS_KILL | NU__PS_MAIL)) ||
	       atomic_load_explicit(&s->stop, memory_order_relaxed);
}

/* Ask the kernel to cancel w's op, from the ring that holds it. */
static nu__sched *io_cancel(nu__sched *s, nu__iowait *w)
{
	nu__proc *p = w->p;
	if (w->ring_of != s) {
		int32_t bound = p->bind_sched;
		p->bind_sched = w->ring_of->id; /* yield moves us there */
		s = nu__sched_switch_out(s, p, NU__AFTER_YIELD);
		p->bind_sched = bound;
		if (s != w->ring_of)
			return s; /* not yet: the wait loop tries again */
	}
	if (!atomic_load_explicit(&w->left, memory_order_acquire))
		return s;
	atomic_fetch_add_explicit(&w->left, 1, memory_order_relaxed);
	io_queued(s, 1);
	struct io_uring_sqe *sqe = nu__ring_sqe(&s->ring);
	io_uring_prep_cancel64(sqe, (uintptr_t)w | NU__IO_TAG_OP, 0);
	io_uring_sqe_set_data64(sqe, (uintptr_t)w | NU__IO_TAG_CANCEL);
	w->cancelled = 1;
	return s;
}

static nu__sched *io_wait(nu__sched *s, nu__iowait *w)
{
	nu__proc *p = w->p;
	while (atomic_load_explicit(&w->left, memory_order_acquire)) {
		if (!w->cancelled && nu__io_interrupted(s, p))
			s = io_cancel(s, w);
		else
			s = nu__proc_park(s);
	}
	while (!atomic_load_explicit(&w->released, memory_order_acquire))
		; /* the completer is finishing its wake (see Lifetime) */
	return s;
}

int nu__io_run(nu__sched *s, nu__iowait *w)
{
	nu__proc *p = s->current;
	w->p = p;
	for (;;) {
		p->io_busy++;
		io_submit(s, w);
		s = io_wait(s, w);
		p->io_busy--;
		if (w->makes_fd && w->res >= 0)
			p->io_fd = w->res; /* closed if we exit right here */
		nu__proc_check_kill(s, p);
		p->io_fd = -1;
		if (!(w->cancelled && w->res == -ECANCELED))
			break;
		/* our own cancel, for a signal that did not end us: again */
	}
	if (w->deadline && w->res == -ECANCELED && w->tres == -ETIME)
		return -ETIMEDOUT;
	return w->res;
}

/* Any record of w[0..n) done? */
static int any_done(const nu__iowait *w, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!atomic_load_explicit(&w[i].left, memory_order_acquire))
			return 1;
	return 0;
}

int nu__io_run_any(nu__sched *s, nu__iowait *w, unsigned n)
{
	nu__proc *p = s->current;
	p->io_busy++;
	for (unsigned i = 0; i < n; i++) {
		w[i].p = p;
		io_submit(s, &w[i]);
	}
	while (!any_done(w, n) && !nu__io_interrupted(s, p))
		s = nu__proc_park(s);
	int interrupted = !any_done(w, n);
	for (unsigned i = 0; i < n; i++)
		if (atomic_load_explicit(&w[i].left, memory_order_acquire))
			s = io_cancel(s, &w[i]);
	for (unsigned i = 0; i < n; i++)
		s = io_wait(s, &w[i]);
	p->io_busy--;
	nu__proc_check_kill(s, p);
	return interrupted ? -EINTR : 0;
}

void nu__io_exit(nu__proc *p)
{
	if (p->io_fd >= 0) {
		nu__sys_close(p->io_fd);
		p->io_fd = -1;
	}
}

/* -------------------------------------------------------- close */

/* Cancel every op on fd in s's ring (owner thread). */
static void cancel_fd_here(nu__sched *s, int fd)
{
	struct io_uring_sqe *sqe = nu__ring_sqe(&s->ring);
	io_uring_prep_cancel_fd(sqe, fd, IORING_ASYNC_CANCEL_ALL);
	io_uring_sqe_set_data64(sqe, NU__IO_UD_DETACHED);
	io_queued(s, 1);
}

/* Ask scheduler t to cancel fd's ops in its ring; 0 when its request
 * array is full (the caller retries). */
static int cancel_fd_ask(nu__sched *from, nu__sched *t, int fd)
{
	while (atomic_flag_test_and_set_explicit(&t->io_req_lock,
						 memory_order_acquire))
		;
	unsigned n = atomic_load_explicit(&t->io_nreq, memory_order_relaxed);
	int ok = n < sizeof(t->io_req_fd) / sizeof(t->io_req_fd[0]);
	if (ok) {
		t->io_req_fd[n] = fd;
		atomic_store_explicit(&t->io_nreq, n + 1, memory_order_relaxed);
	}
	atomic_flag_clear_explicit(&t->io_req_lock, memory_order_release);
	if (ok)
		nu__sched_kick(from, t);
	return ok;
}

static void serve_requests(nu__sched *s)
{
	while (atomic_flag_test_and_set_explicit(&s->io_req_lock,
						 memory_order_acquire))
		;
	unsigned n = atomic_load_explicit(&s->io_nreq, memory_order_relaxed);
	for (unsigned i = 0; i < n; i++)
		cancel_fd_here(s, s->io_req_fd[i]);
	atomic_store_explicit(&s->io_nreq, 0, memory_order_relaxed);
	atomic_flag_clear_explicit(&s->io_req_lock, memory_order_release);
}

/* Let others run a moment: a process yields (then sleeps), another
 * thread sleeps. */
static void pause_a_little(nu__sched *s, unsigned round)
{
	if (s && round < 64) {
		nu_yield();
	} else if (s) {
		nu_sleep(1);
	} else {
		struct timespec ts = { 0, 200000 };
		nu__sys_nanosleep(&ts);
	}
}

void nu__io_fd_quiesce(nu__sched *s, int fd)
{
	_Atomic uint32_t *c = fd_slot(fd);
	nu__node *n = nu__node_get();
	if (!c || !n || !atomic_load_explicit(c, memory_order_acquire))
		return;
	if (s)
		cancel_fd_here(s, fd);
	for (unsigned i = 0; i < n->nsched; i++)
		for (unsigned r = 0;
		     n->sched[i] != s && !cancel_fd_ask(s, n->sched[i], fd);
		     r++)
			pause_a_little(s, r);
	for (unsigned r = 0; atomic_load_explicit(c, memory_order_acquire); r++)
		pause_a_little(s, r);
}

/* ------------------------------------------------------ polling */

int nu__io_busy(const nu__sched *s)
{
	return s->io_inflight ||
	       atomic_load_explicit(&s->io_nreq, memory_order_relaxed);
}

int nu__io_poll(nu__sched *s)
{
	if (atomic_load_explicit(&s->io_nreq, memory_order_relaxed))
		serve_requests(s);
	if (!s->io_inflight)
		return 0;
	return nu__ring_poll(&s->ring);
}
