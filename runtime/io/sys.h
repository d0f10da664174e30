/* sys.h — private to nuproc: the plain system calls the runtime makes
 * for itself. The libc hooks (hooks.c) take over read, write, close,
 * poll, ioctl, ... for the whole program, so the runtime's own doorbells,
 * eventfds, userfaultfd ioctls and crash reports (some in signal
 * handlers, some in process context) go straight to the kernel here and
 * never through a hook. Each returns what the system call does: -1 and
 * errno set on failure, like libc. */
#ifndef NU_IO_SYS_H
#define NU_IO_SYS_H

#include <poll.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* errno of the thread running now. A process can move to another thread
 * at any park, and glibc declares __errno_location const, so a compiler
 * may compute &errno once in a function (or in the caller it is inlined
 * into) and use it after a park: the old thread's errno. Code that reads
 * or writes errno in a function that can park uses these (io.c): not
 * inlined, each call finds the current thread's errno. */
int nu__errno_get(void) __attribute__((noinline));
void nu__errno_set(int e) __attribute__((noinline));

static inline ssize_t nu__sys_read(int fd, void *buf, size_t n)
{
	return syscall(SYS_read, fd, buf, n);
}
static inline ssize_t nu__sys_write(int fd, const void *buf, size_t n)
{
	return syscall(SYS_write, fd, buf, n);
}
static inline int nu__sys_close(int fd)
{
	return (int)syscall(SYS_close, fd);
}
static inline int nu__sys_ioctl(int fd, unsigned long req, void *arg)
{
	return (int)syscall(SYS_ioctl, fd, req, arg);
}
/* poll() with a timeout in ms (-1: none). */
static inline int nu__sys_poll(struct pollfd *fds, nfds_t n, int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	return (int)syscall(SYS_ppoll, fds, n, ms < 0 ? NULL : &ts, NULL, 0);
}
static inline int nu__sys_nanosleep(const struct timespec *ts)
{
	return (int)syscall(SYS_nanosleep, ts, NULL);
}

#endif
