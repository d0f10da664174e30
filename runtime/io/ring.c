/* ring.c — a scheduler's io_uring: set-up, the idle wait, the doorbell.
 *
 * Each scheduler owns one ring, created on its own thread with
 * SINGLE_ISSUER | DEFER_TASKRUN (completions are processed only when the
 * owner waits: no interrupts while it runs processes), falling back to
 * COOP_TASKRUN, then to no flags, as the kernel allows. The CQ is 4x the
 * SQ. Never IORING_SETUP_NO_SQARRAY: liburing 2.3 (Debian 12) does not know
 * it and would corrupt the ring.
 *
 * An idle scheduler sleeps in one io_uring_enter that submits and waits;
 * the I/O layer and timers will complete in the same wait. Doorbells:
 *   - between schedulers, IORING_OP_MSG_RING from the waker's own ring to
 *     the sleeper's (user_data NU__UD_DOORBELL, no CQE on the waker's side);
 *   - from any other thread, a write to the sleeper's eventfd, on which the
 *     ring keeps one read armed.
 * Where io_uring is refused (the io_uring_disabled sysctl, seccomp in a
 * container, ENOSYS) or NUPROC_IO_URING=0 is set, the node says so once and
 * schedulers sleep in poll() on their eventfd; every doorbell is then an
 * eventfd write.
 */
#include "ring.h"
#include "sys.h"

#include <sched.h>

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define SQ_ENTRIES 256
#define NU__UD_DOORBELL 1ull
#define NU__UD_EVENTFD 2ull

/* Say a fallback once per OS process, however many nodes start. */
static void say_once(const char *why)
{
	static atomic_flag said = ATOMIC_FLAG_INIT;
	if (!atomic_flag_test_and_set(&said))
		fprintf(stderr, "nuproc: io_uring %s; schedulers idle on eventfd"
				" (no io_uring I/O)\n", why);
}

int nu__ring_probe(void)
{
	const char *env = getenv("NUPROC_IO_URING");
	if (env && strcmp(env, "0") == 0) {
		say_once("disabled by NUPROC_IO_URING=0");
		return NU__RING_EVENTFD;
	}
	struct io_uring r;
	int rc = io_uring_queue_init(4, &r, 0);
	if (rc < 0) {
		char why[96];
		snprintf(why, sizeof(why), "unavailable (%s)", strerror(-rc));
		say_once(why);
		return NU__RING_EVENTFD;
	}
	io_uring_queue_exit(&r);
	return NU__RING_URING;
}

/* Cap the ring's io-wq workers and keep them on the node's CPUs. */
static void iowq_setup(nu__ring *r, const int *cpus, int ncpus)
{
	unsigned max[2] = { 4, 8 }; /* bounded (files), unbounded (sockets) */
	io_uring_register_iowq_max_workers(&r->uring, max);
	if (!cpus || ncpus <= 0)
		return;
	cpu_set_t set;
	CPU_ZERO(&set);
	for (int i = 0; i < ncpus; i++)
		if (cpus[i] >= 0 && cpus[i] < CPU_SETSIZE)
			CPU_SET(cpus[i], &set);
	io_uring_register_iowq_aff(&r->uring, sizeof(set), &set);
}

static int ring_setup(nu__ring *r)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int rc = -EINVAL;
	for (unsigned i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p;
		memset(&p, 0, sizeof(p));
		p.flags = tries[i] | IORING_SETUP_CQSIZE;
		p.cq_entries = SQ_ENTRIES * 4;
		rc = io_uring_queue_init_params(SQ_ENTRIES, &r->uring, &p);
		if (rc == 0) {
			r->setup_flags = p.flags;
			io_uring_register_ring_fd(&r->uring);
			return 0;
		}
	}
	return rc;
}

static int reap(nu__ring *r);

struct io_uring_sqe *nu__ring_sqe(nu__ring *r)
{
	struct io_uring_sqe *sqe;
	while (!(sqe = io_uring_get_sqe(&r->uring))) {
		int rc = io_uring_submit(&r->uring);
		if (rc == -EBUSY || rc == -EAGAIN || rc == -EINTR)
			reap(r); /* make room in the CQ, then retry */
	}
	return sqe;
}

static void arm_eventfd(nu__ring *r)
{
	if (r->ev_armed)
		return;
	struct io_uring_sqe *sqe = nu__ring_sqe(r);
	io_uring_prep_read(sqe, r->evfd, &r->evbuf, sizeof(r->evbuf), 0);
	io_uring_sqe_set_data64(sqe, NU__UD_EVENTFD);
	r->ev_armed = 1;
}

int nu__ring_init(nu__ring *r, int mode, const int *cpus, int ncpus)
{
	memset(r, 0, sizeof(*r));
	r->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->evfd < 0)
		return -errno;
	if (mode == NU__RING_URING) {
		int rc = ring_setup(r);
		if (rc) {
			nu__sys_close(r->evfd);
			r->evfd = -1;
			return rc;
		}
		iowq_setup(r, cpus, ncpus);
		arm_eventfd(r);
	}
	r->mode = mode;
	return 0;
}

void nu__ring_fini(nu__ring *r)
{
	if (r->mode == NU__RING_URING)
		io_uring_queue_exit(&r->uring);
	if (r->mode != NU__RING_NONE && r->evfd >= 0)
		nu__sys_close(r->evfd);
	r->mode = NU__RING_NONE;
	r->evfd = -1;
}

/* Dispatch every CQE, including those the kernel kept back when the CQ
 * overflowed (IORING_FEAT_NODROP: it flags the overflow and flushes them
 * at the next GETEVENTS enter). The number dispatched. */
static int reap(nu__ring *r)
{
	int total = 0;
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&r->uring, head, cqe) {
			if (cqe->user_data == NU__UD_EVENTFD)
				r->ev_armed = 0;
			else if (cqe->user_data > NU__UD_EVENTFD)
				nu__io_complete(cqe);
			n++;
		}
		io_uring_cq_advance(&r->uring, n);
		total += (int)n;
		if (!(IO_URING_READ_ONCE(*r->uring.sq.kflags) &
		      IORING_SQ_CQ_OVERFLOW))
			return total;
		io_uring_get_events(&r->uring); /* flush the overflow */
	}
}

int nu__ring_poll(nu__ring *r)
{
	if (r->mode != NU__RING_URING)
		return 0;
	io_uring_submit_and_get_events(&r->uring);
	return reap(r);
}

static int wait_eventfd(nu__ring *r, int64_t timeout_ns)
{
	struct pollfd pfd = { .fd = r->evfd, .events = POLLIN };
	int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
	int rc = nu__sys_poll(&pfd, 1, ms);
	if (rc < 0)
		return -errno;
	if (rc == 0)
		return -ETIME;
	uint64_t v;
	if (nu__sys_read(r->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

int nu__ring_wait(nu__ring *r, int64_t timeout_ns)
{
	if (r->mode != NU__RING_URING)
		return wait_eventfd(r, timeout_ns);
	arm_eventfd(r);
	int rc;
	if (timeout_ns < 0) {
		rc = io_uring_submit_and_wait(&r->uring, 1);
	} else {
		struct __kernel_timespec ts = {
			.tv_sec = timeout_ns / 1000000000,
			.tv_nsec = timeout_ns % 1000000000,
		};
		struct io_uring_cqe *cqe;
		rc = io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, &ts,
						      NULL);
	}
	reap(r);
	/* EINTR, EAGAIN, EBUSY: the caller re-checks and waits again. */
	return rc < 0 ? rc : 0;
}

void nu__ring_doorbell(nu__ring *from, nu__ring *to)
{
	if (from && from->mode == NU__RING_URING &&
	    to->mode == NU__RING_URING) {
		struct io_uring_sqe *sqe = nu__ring_sqe(from);
		io_uring_prep_msg_ring(sqe, to->uring.ring_fd, 0,
				       NU__UD_DOORBELL, 0);
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		io_uring_sqe_set_data64(sqe, 0);
		io_uring_submit(&from->uring);
		return;
	}
	uint64_t one = 1;
	while (nu__sys_write(to->evfd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}
