/* ring.h — private to nuproc: a scheduler's io_uring, its idle wait and
 * its doorbell. See ring.c. */
#ifndef NU_IO_RING_H
#define NU_IO_RING_H

#include <liburing.h>
#include <stdint.h>

typedef struct nu__ring {
	struct io_uring uring;
	int mode;          /* NU__RING_* */
	int evfd;          /* doorbell for foreign threads (and fallback) */
	int ev_armed;      /* a read on evfd is in the ring */
	uint64_t evbuf;
	unsigned setup_flags;
} nu__ring;

enum {
	NU__RING_NONE = 0,    /* not set up */
	NU__RING_URING = 1,   /* io_uring */
	NU__RING_EVENTFD = 2, /* fallback: eventfd + poll */
};

/* Decide once per node whether io_uring is usable (NUPROC_IO_URING=0
 * forces the fallback). Prints one line to stderr when falling back.
 * Returns NU__RING_URING or NU__RING_EVENTFD. */
int nu__ring_probe(void);

/* Set up r on the calling (scheduler) thread in the given mode: 0 or
 * -errno. cpus[0..ncpus) are the CPUs of the scheduler's NUMA node: the
 * kernel's io-wq workers for this ring are bound there and capped (a few
 * bounded, a few unbounded workers per ring). */
int nu__ring_init(nu__ring *r, int mode, const int *cpus, int ncpus);
void nu__ring_fini(nu__ring *r);

/* Sleep until a doorbell rings or timeout_ns passes (<0: no timeout).
 * Reaps what completed. Returns 0 or -errno (-ETIME on timeout). */
int nu__ring_wait(nu__ring *r, int64_t timeout_ns);

/* An SQE of r (uring mode), submitting to make room when the SQ is full;
 * when the kernel refuses a submission (EBUSY, EAGAIN: completions must be
 * reaped first; EINTR) it reaps and retries. Never fails. Owner thread. */
struct io_uring_sqe *nu__ring_sqe(nu__ring *r);

/* Submit what is queued and dispatch what completed, without waiting:
 * the number of completions dispatched. Owner thread. */
int nu__ring_poll(nu__ring *r);

/* Completions the I/O layer dispatches (io.c): every CQE whose user_data
 * is not one of the ring's own. */
void nu__io_complete(const struct io_uring_cqe *cqe);

/* Ring `to`'s doorbell. from is the caller's own ring when the caller is a
 * scheduler thread (MSG_RING between rings), else NULL (eventfd). */
void nu__ring_doorbell(nu__ring *from, nu__ring *to);

#endif
