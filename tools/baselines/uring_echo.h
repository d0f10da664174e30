/* uring_echo.h — private to tools/: the raw liburing echo server
 * (uring_echo.c), run alone as uring-echo and in a child of nuproc-bench's
 * `echo` scenario as the baseline nuproc's echo server is measured against. */
#ifndef NU_URING_ECHO_H
#define NU_URING_ECHO_H

#include <signal.h>

/* A TCP socket listening on 127.0.0.1:port (0: any free port), with
 * SO_REUSEADDR and a backlog of 4096; the fd or -errno. */
int uring_echo_listen(int port);

/* Echo every byte received on every connection accepted from lfd back to
 * its sender, on one ring in the calling thread, until *stop is nonzero
 * (looked at after each wait and at least every 100 ms; stop NULL: until
 * killed) or the ring fails. Closes the connections, not lfd. Returns 0
 * when stopped, -errno on a ring error. */
int uring_echo_serve(int lfd, volatile sig_atomic_t *stop);

#endif
