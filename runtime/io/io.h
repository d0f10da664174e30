/* io.h — private to nuproc: the I/O layer's wait records and the one path
 * every blocking-style call takes (io.c), shared by the nu_ calls
 * (calls.c), the libc hooks (hooks.c) and the blocking pool (blocking.c).
 */
#ifndef NU_IO_IO_H
#define NU_IO_IO_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "../node.h"
#include "../sched.h"

/* One blocking call of a process, on its stack while it waits. The low
 * three bits of a CQE's user_data say which of the call's SQEs it is. */
typedef struct nu__iowait {
	struct io_uring_sqe sqe;  /* the prepared op, kept for a retry */
	struct __kernel_timespec ts; /* the deadline, for the linked timeout */
	struct nu__proc *p;
	struct nu__sched *ring_of; /* the scheduler whose ring holds it */
	_Atomic int left;         /* CQEs still to come */
	_Atomic int released;     /* the completer is done with us */
	int32_t res;              /* the op's result */
	int32_t tres;             /* the linked timeout's */
	int fd;                   /* the descriptor the op uses, or -1 */
	int cancelled;            /* we asked the kernel to cancel it */
	int makes_fd;             /* a result >= 0 is a new descriptor */
	uint64_t deadline;        /* CLOCK_MONOTONIC ns, 0 = none */
} __attribute__((aligned(8))) nu__iowait;

/* user_data tags (low bits of the record's address) */
enum {
	NU__IO_TAG_OP = 0,
	NU__IO_TAG_TIMEOUT = 1,
	NU__IO_TAG_CANCEL = 2,
	NU__IO_UD_DETACHED = 3, /* a cancel with no record (nu_close) */
};

/* The calling thread's scheduler when it runs a process and the ring is
 * usable (io_uring mode), else NULL: the caller then makes the plain
 * system call (outside a process) or goes to the blocking pool. Inline,
 * as the next two: two or three of them per hooked call. */
static inline struct nu__sched *nu__io_here(void)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current || s->ring.mode != NU__RING_URING)
		return NULL;
	return s;
}

/* Nonzero when the calling thread runs a process (any mode). */
static inline int nu__io_in_process(void)
{
	nu__sched *s = nu__sched_self();
	return s && s->current;
}

/* Start a record for an op on fd (-1: none) with an absolute deadline
 * (0: none); the caller then fills w->sqe with an io_uring_prep_*. */
void nu__io_init(nu__iowait *w, int fd, uint64_t deadline);

/* Submit w's op on s's ring and park until it completes: its result
 * (-ETIMEDOUT when the deadline passed first). A kill or exit signal that
 * arrives meanwhile cancels the op and is acted on once the op has
 * completed; if the process lives on (a trapped or ignored signal), the
 * op is submitted again. Never returns to a process that must exit. */
int nu__io_run(struct nu__sched *s, nu__iowait *w);

/* Submit the n ops of w[] (each prepared as for nu__io_run, no deadline:
 * make one of them an IORING_OP_TIMEOUT instead) and park until one
 * completes; cancel the others and wait for them all. 0, or -EINTR when a
 * kill or exit signal came first (acted on before returning, if it ends
 * the process). Each record's res is its op's result (-ECANCELED for the
 * ones cancelled). Used by the hooked poll() over several descriptors. */
int nu__io_run_any(struct nu__sched *s, nu__iowait *w, unsigned n);

/* nu_sock_send and nu_sendmsg with the caller's flags as they are (no
 * MSG_NOSIGNAL added): the hooked send, sendto, sendmsg and write. */
ssize_t nu__sock_send_flags(int fd, const void *buf, size_t n, int flags);
ssize_t nu__sendmsg_flags(int fd, const struct msghdr *msg, int flags);

/* Park the calling process until clock (CLOCK_MONOTONIC, _REALTIME or
 * _BOOTTIME) reads deadline (ns): 0, or -errno from the ring. Process
 * context; without io_uring, nu_sleep to the next millisecond. */
int nu__io_sleep_until(int clock, uint64_t deadline);

/* A hooked libc call keeps its process on the calling thread until it
 * returns (the scheduler's affinity, as the spawn option gives): code
 * written for threads may hold &errno or another thread-local across the
 * call (a compiler hoists glibc's const __errno_location out of a retry
 * loop), and must find it its own when the call returns. nu__io_pin
 * binds the calling process to its scheduler and returns the previous
 * binding for nu__io_unpin; outside a process it does nothing. */
#define NU__IO_NOT_PINNED (-2)
static inline int nu__io_pin(void)
{
	nu__sched *s = nu__sched_self();
	/* one scheduler: nowhere to move to, and a bound process is woken
	 * into the pinned list, not the (cheaper) run queue */
	if (!s || !s->current || nu__node_get()->nsched == 1)
		return NU__IO_NOT_PINNED;
	int prev = s->current->bind_sched;
	s->current->bind_sched = s->id;
	return prev;
}

static inline void nu__io_unpin(int prev)
{
	if (prev == NU__IO_NOT_PINNED)
		return;
	nu__sched *s = nu__sched_self();
	s->current->bind_sched = prev;
}

/* Nonzero when a kill, an exit signal or the node's stop waits for the
 * process p running on s: a wait in progress must end (io.c, poller.c). */
int nu__io_interrupted(struct nu__sched *s, struct nu__proc *p);

/* A table of `bytes` zeroed bytes made once, on first use, for the whole
 * program: mmap'd and published in *table by compare-and-swap (a racer
 * that loses unmaps its own and takes the winner's); NULL when the mmap
 * fails. The descriptor tables of io.c and hooks.c. */
void *nu__io_table_map(void *_Atomic *table, size_t bytes);

/* Make [buf, buf + len) resident before the kernel touches it; p: the
 * calling process. */
void nu__io_resident(struct nu__proc *p, const void *buf, size_t len);

/* Wait until no op on fd is in flight in any ring, cancelling those
 * there are (nu_close). s: the caller's scheduler when it is a process in
 * io_uring mode, else NULL (another thread: it sleeps while it waits). */
void nu__io_fd_quiesce(struct nu__sched *s, int fd);

/* Submit and reap s's ring when ops are queued or in flight, and serve
 * other threads' cancel requests: completions dispatched. Owner thread. */
int nu__io_poll(struct nu__sched *s);

/* Nonzero when s has ops queued, in flight or cancel requests. */
int nu__io_busy(const struct nu__sched *s);

/* The exit path: close a descriptor an interrupted op produced. */
void nu__io_exit(struct nu__proc *p);

#endif
