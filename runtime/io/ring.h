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
 * -errno. */
int nu__ring_init(nu__ring *r, int mode);
void nu__ring_fini(nu__ring *r);

/* Sleep until a doorbell rings or timeout_ns passes (<0: no timeout).
 * Reaps what completed. Returns 0 or -errno (-ETIME on timeout). */
int nu__ring_wait(nu__ring *r, int64_t timeout_ns);

/* Ring `to`'s doorbell. from is the caller's own ring when the caller is a
 * scheduler thread (MSG_RING between rings), else NULL (eventfd). */
void nu__ring_doorbell(nu__ring *from, nu__ring *to);

#endif
