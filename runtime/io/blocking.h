/* blocking.h — private to nuproc: the blocking pool. See blocking.c. */
#ifndef NU_IO_BLOCKING_H
#define NU_IO_BLOCKING_H

/* Run fn(arg) on a pool thread while the calling process parks; outside
 * a process, call it here. Returns 0 once fn has returned, or -ENOMEM /
 * -EAGAIN when no pool thread could be started. A kill that arrives
 * meanwhile waits for fn (which cannot be interrupted), then acts; if
 * fd_result is not NULL and the process exits there, the descriptor
 * *fd_result (when >= 0) is closed. */
int nu__blocking_run(void (*fn)(void *), void *arg, const int *fd_result);

#endif
