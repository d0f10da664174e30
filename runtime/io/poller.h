/* poller.h — private to nuproc: readiness waits in the fallback mode
 * (no io_uring). See poller.c. */
#ifndef NU_IO_POLLER_H
#define NU_IO_POLLER_H

#include <stdint.h>

/* Park the calling process until fd has one of events or the deadline
 * (CLOCK_MONOTONIC ns, 0 = none) passes: the revents, -ETIMEDOUT, -EINTR
 * when a kill or exit signal is pending (act on it, then wait again),
 * -ECANCELED when nu_close closed fd meanwhile, or -errno when the poller could not start. Process context only. */
int nu__poller_wait(int fd, short events, uint64_t deadline);

/* Wake every process waiting on fd: their waits give -ECANCELED (nu_close,
 * before it closes fd). Any thread. */
void nu__poller_cancel_fd(int fd);

#endif
