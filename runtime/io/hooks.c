/* hooks.c — the POSIX blocking calls, taken over for processes.
 *
 * libnuproc.a defines read, write, readv, writev, pread(64), pwrite(64),
 * recv, recvfrom, recvmsg, send, sendto, sendmsg, accept, accept4,
 * connect, close, poll, nanosleep, clock_nanosleep, usleep, sleep and
 * fsync (and the _FORTIFY_SOURCE __*_chk forms of the reads and poll).
 * A program linked with it calls these instead of libc's: the
 * executable's definition of a symbol comes before libc.so's. Called
 * inside a process on a blocking descriptor, each is the nu_ call (the
 * ring; the process parks); anywhere else, or on a descriptor the user
 * made O_NONBLOCK, or with MSG_DONTWAIT, it is the plain system call,
 * as libc would make it.
 *
 * Threads. Code written for threads keeps thread-locals across a blocking
 * call: gcc computes &errno once for `errno = 0; n = read(...); if (n <
 * 0 && errno == EINTR)` and for a retry loop (glibc declares
 * __errno_location const). So a taken-over call keeps its process on the
 * calling thread until it returns (nu__io_pin: the process is bound to its
 * scheduler while it waits, and not stolen when it wakes), and errno is
 * written after the park through a non-inlined setter. The nu_ calls do
 * not pin: a process may resume elsewhere after them, as after any nu_
 * call that waits.
 *
 * O_NONBLOCK. io_uring ignores it (an op on such a descriptor waits), so
 * the hooks must know it: a byte per descriptor caches the flag (unknown,
 * blocking, non-blocking), filled by one fcntl(F_GETFL) at first use and
 * by socket/accept4 flags, and reset by the hooked close, dup2, dup3,
 * fcntl(F_SETFL) and ioctl(FIONBIO) (fcntl, fcntl64 and ioctl are hooked
 * for that, and pass through). A descriptor closed behind the hooks' back
 * (libc's own internal close, fclose of an fdopen'd socket) whose number
 * is reused with the other flag is the one case the cache gets wrong.
 *
 * NUPROC_HOOKS=0 in the environment (read once) makes every hook the
 * plain call; building with -Dhooks=false leaves this file out.
 *
 * Not hooked: open/openat and stdio (regular files, and libc calls its
 * own internal read/write, which no interposition reaches), select,
 * epoll_wait, pthread cancellation (the plain calls here are not
 * cancellation points).
 */
/* The symbols themselves, not the headers' 64-bit redirections: pread and
 * pread64 (fcntl and fcntl64) are both defined here. */
#undef _FILE_OFFSET_BITS
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "sys.h"
#include "nuproc.h"

/* -------------------------------------------------------- switches */

static int hooks_on(void)
{
	static _Atomic int on = -1;
	int v = atomic_load_explicit(&on, memory_order_relaxed);
	if (v < 0) {
		const char *e = getenv("NUPROC_HOOKS");
		v = !(e && strcmp(e, "0") == 0);
		atomic_store_explicit(&on, v, memory_order_relaxed);
	}
	return v;
}

__attribute__((noinline)) static long set_errno(long rc)
{
	if (rc >= 0)
		return rc;
	nu__errno_set((int)-rc);
	return -1;
}

/* A call taken over: made with the process pinned to its thread (see
 * nu__io_pin), its -errno turned into -1 and errno. */
#define HOOKED(call)                                                         \
	({                                                                   \
		int pin_ = nu__io_pin();                                     \
		long rc_ = (call);                                           \
		nu__io_unpin(pin_);                                          \
		set_errno(rc_);                                              \
	})

/* -------------------------------------------- the O_NONBLOCK cache */

/* Per descriptor: 0 unknown, else FL_KNOWN with FL_NONBLOCK and FL_SOCKET
 * as they were found (a read or write on a socket goes to the ring as a
 * recv or send, which io_uring serves faster than its generic read path:
 * -25% CPU per echoed message, measured). */
enum { FL_UNKNOWN = 0, FL_KNOWN = 1, FL_NONBLOCK = 2, FL_SOCKET = 4 };
#define FL_MAX (1u << 20)

static void *_Atomic fl_table; /* _Atomic unsigned char[FL_MAX] */

static inline _Atomic unsigned char *fl_slot(int fd)
{
	if (fd < 0 || (unsigned)fd >= FL_MAX)
		return NULL;
	_Atomic unsigned char *t = atomic_load_explicit(&fl_table,
							 memory_order_acquire);
	if (__builtin_expect(!t, 0) &&
	    !(t = nu__io_table_map(&fl_table, FL_MAX)))
		return NULL;
	return &t[fd];
}

static void fl_set(int fd, int v)
{
	_Atomic unsigned char *c = fl_slot(fd);
	if (c)
		atomic_store_explicit(c, (unsigned char)v,
				      memory_order_relaxed);
}

/* fd's FL_ bits, found with F_GETFL and fstat (its first use). */
static __attribute__((noinline)) int fd_flags_find(int fd)
{
	int saved = nu__errno_get();
	long fl = syscall(SYS_fcntl, fd, F_GETFL);
	struct stat st;
	int sock = fl >= 0 && syscall(SYS_fstat, fd, &st) == 0 &&
		   S_ISSOCK(st.st_mode);
	nu__errno_set(saved);
	if (fl < 0)
		return FL_KNOWN; /* the call itself reports EBADF */
	int v = FL_KNOWN | ((fl & O_NONBLOCK) ? FL_NONBLOCK : 0) |
		(sock ? FL_SOCKET : 0);
	fl_set(fd, v);
	return v;
}

/* fd's FL_ bits, cached. */
static inline int fd_flags(int fd)
{
	_Atomic unsigned char *c = fl_slot(fd);
	int v = c ? atomic_load_explicit(c, memory_order_relaxed) : 0;
	return v != FL_UNKNOWN ? v : fd_flags_find(fd);
}

/* Take the call over: hooks on, in a process, a blocking descriptor; the
 * descriptor's FL_ bits, or 0 to make the plain call. */
static int take(int fd)
{
	if (!hooks_on() || !nu__io_in_process())
		return 0;
	int v = fd_flags(fd);
	return v & FL_NONBLOCK ? 0 : v;
}

/* ------------------------------------------------ reads and writes */

ssize_t read(int fd, void *buf, size_t n)
{
	int v = take(fd);
	if (!v)
		return syscall(SYS_read, fd, buf, n);
	if (v & FL_SOCKET)
		return HOOKED(nu_recv(fd, buf, n, 0));
	return HOOKED(nu_read(fd, buf, n));
}

ssize_t write(int fd, const void *buf, size_t n)
{
	int v = take(fd);
	if (!v)
		return syscall(SYS_write, fd, buf, n);
	if (v & FL_SOCKET) /* as write(): SIGPIPE stays possible */
		return HOOKED(nu__sock_send_flags(fd, buf, n, 0));
	return HOOKED(nu_write(fd, buf, n));
}

ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	if (!take(fd))
		return syscall(SYS_readv, fd, iov, cnt);
	return HOOKED(nu_readv(fd, iov, cnt));
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	if (!take(fd))
		return syscall(SYS_writev, fd, iov, cnt);
	return HOOKED(nu_writev(fd, iov, cnt));
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	if (!take(fd) || off < 0)
		return syscall(SYS_pread64, fd, buf, n, off);
	return HOOKED(nu_pread(fd, buf, n, off));
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	if (!take(fd) || off < 0)
		return syscall(SYS_pwrite64, fd, buf, n, off);
	return HOOKED(nu_pwrite(fd, buf, n, off));
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	return pread64(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite64(fd, buf, n, off);
}

int fsync(int fd)
{
	if (!take(fd))
		return (int)syscall(SYS_fsync, fd);
	return (int)HOOKED(nu_fsync(fd));
}

/* ---------------------------------------------------------- sockets */

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	if ((flags & MSG_DONTWAIT) || !take(fd))
		return syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
	return HOOKED(nu_recv(fd, buf, n, flags));
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	if ((flags & MSG_DONTWAIT) || !take(fd))
		return syscall(SYS_sendto, fd, buf, n, flags, NULL, 0);
	return HOOKED(nu__sock_send_flags(fd, buf, n, flags));
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	if ((flags & MSG_DONTWAIT) || !take(fd))
		return syscall(SYS_recvmsg, fd, msg, flags);
	return HOOKED(nu_recvmsg(fd, msg, flags));
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if ((flags & MSG_DONTWAIT) || !take(fd))
		return syscall(SYS_sendmsg, fd, msg, flags);
	return HOOKED(nu__sendmsg_flags(fd, msg, flags));
}

ssize_t recvfrom(int fd, void *buf, size_t n, int flags,
		 struct sockaddr *addr, socklen_t *alen)
{
	if ((flags & MSG_DONTWAIT) || !take(fd) || (addr && !alen))
		return syscall(SYS_recvfrom, fd, buf, n, flags, addr, alen);
	if (!addr)
		return HOOKED(nu_recv(fd, buf, n, flags));
	struct iovec v = { buf, n };
	struct msghdr m = { .msg_name = addr, .msg_namelen = *alen,
			    .msg_iov = &v, .msg_iovlen = 1 };
	int pin = nu__io_pin();
	ssize_t rc = nu_recvmsg(fd, &m, flags);
	nu__io_unpin(pin);
	if (rc >= 0)
		*alen = m.msg_namelen;
	return set_errno(rc);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags,
	       const struct sockaddr *addr, socklen_t alen)
{
	if ((flags & MSG_DONTWAIT) || !take(fd))
		return syscall(SYS_sendto, fd, buf, n, flags, addr, alen);
	if (!addr)
		return HOOKED(nu__sock_send_flags(fd, buf, n, flags));
	struct iovec v = { (void *)buf, n };
	struct msghdr m = { .msg_name = (void *)addr, .msg_namelen = alen,
			    .msg_iov = &v, .msg_iovlen = 1 };
	return HOOKED(nu__sendmsg_flags(fd, &m, flags));
}

int accept4(int fd, struct sockaddr *addr, socklen_t *alen, int flags)
{
	if (!take(fd) || (addr && !alen)) {
		long rc = syscall(SYS_accept4, fd, addr, alen, flags);
		if (rc >= 0)
			fl_set((int)rc, FL_KNOWN | FL_SOCKET |
				(flags & SOCK_NONBLOCK ? FL_NONBLOCK : 0));
		return (int)rc;
	}
	int pin = nu__io_pin();
	int rc = nu_accept(fd, addr, alen, flags);
	nu__io_unpin(pin);
	if (rc >= 0)
		fl_set(rc, FL_KNOWN | FL_SOCKET |
			   (flags & SOCK_NONBLOCK ? FL_NONBLOCK : 0));
	return (int)set_errno(rc);
}

int accept(int fd, struct sockaddr *addr, socklen_t *alen)
{
	return accept4(fd, addr, alen, 0);
}

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (!take(fd))
		return (int)syscall(SYS_connect, fd, addr, len);
	return (int)HOOKED(nu_connect(fd, addr, len));
}

int socket(int domain, int type, int protocol)
{
	long rc = syscall(SYS_socket, domain, type, protocol);
	if (rc >= 0)
		fl_set((int)rc, FL_KNOWN | FL_SOCKET |
					(type & SOCK_NONBLOCK ? FL_NONBLOCK : 0));
	return (int)rc;
}

/* ----------------------------------------- descriptors and flags */

int close(int fd)
{
	fl_set(fd, FL_UNKNOWN);
	if (!hooks_on())
		return (int)syscall(SYS_close, fd);
	return (int)HOOKED(nu_close(fd)); /* cancels ops on fd first */
}

int dup2(int fd, int to)
{
	fl_set(to, FL_UNKNOWN);
	return (int)syscall(SYS_dup2, fd, to);
}

int dup3(int fd, int to, int flags)
{
	fl_set(to, FL_UNKNOWN);
	return (int)syscall(SYS_dup3, fd, to, flags);
}

static int fcntl_any(int fd, int cmd, void *arg)
{
	if (cmd == F_GETOWN) { /* as glibc: F_GETOWN_EX, no sign ambiguity */
		struct f_owner_ex o;
		long rc = syscall(SYS_fcntl, fd, F_GETOWN_EX, &o);
		if (rc < 0)
			return (int)rc;
		return o.type == F_OWNER_PGRP ? -o.pid : o.pid;
	}
	long rc = syscall(SYS_fcntl, fd, cmd, arg);
	if (cmd == F_SETFL && rc >= 0)
		fl_set(fd, FL_UNKNOWN);
	if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && rc >= 0)
		fl_set((int)rc, FL_UNKNOWN);
	return (int)rc;
}

int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_any(fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	return fcntl_any(fd, cmd, arg);
}

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	va_start(ap, req);
	void *arg = va_arg(ap, void *);
	va_end(ap);
	long rc = syscall(SYS_ioctl, fd, req, arg);
	if (req == FIONBIO && rc >= 0)
		fl_set(fd, FL_UNKNOWN);
	return (int)rc;
}

/* ------------------------------------------------------------- poll */

static long poll_plain(struct pollfd *fds, nfds_t n, int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	return syscall(SYS_ppoll, fds, n, ms < 0 ? NULL : &ts, NULL, 0);
}

/* Several descriptors through the ring: one POLL_ADD each (and a timeout
 * op), the first to complete ends the wait. */
static int poll_many(struct pollfd *fds, nfds_t n, uint64_t deadline)
{
	struct nu__sched *s = nu__io_here();
	if (!s || n > 4096)
		return -ENOTSUP;
	nu__iowait *w = calloc(n + 1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	unsigned k = 0;
	for (nfds_t i = 0; i < n; i++) {
		nu__io_init(&w[k], -1, 0);
		io_uring_prep_poll_add(&w[k].sqe, fds[i].fd,
				       (unsigned)fds[i].events);
		k++;
	}
	if (deadline) {
		nu__io_init(&w[k], -1, 0);
		w[k].ts.tv_sec = (long long)(deadline / 1000000000u);
		w[k].ts.tv_nsec = (long long)(deadline % 1000000000u);
		io_uring_prep_timeout(&w[k].sqe, &w[k].ts, 0,
				      IORING_TIMEOUT_ABS);
		k++;
	}
	int rc = nu__io_run_any(s, w, k), ready = 0;
	for (nfds_t i = 0; i < n; i++) {
		fds[i].revents = w[i].res > 0 ? (short)w[i].res : 0;
		ready += w[i].res > 0;
	}
	free(w);
	return rc < 0 && !ready ? rc : ready;
}

static int poll_taken(struct pollfd *fds, nfds_t n, int ms);

int poll(struct pollfd *fds, nfds_t n, int ms)
{
	if (!hooks_on() || !nu__io_in_process() || ms == 0)
		return (int)poll_plain(fds, n, ms);
	int pin = nu__io_pin();
	int rc = poll_taken(fds, n, ms);
	nu__io_unpin(pin);
	return rc;
}

static int poll_taken(struct pollfd *fds, nfds_t n, int ms)
{
	long rc = poll_plain(fds, n, 0); /* ready now: no park */
	if (rc != 0)
		return (int)rc;
	uint64_t deadline = ms < 0 ? 0 : nu_clock_ns() + (uint64_t)ms * 1000000u;
	if (n == 0) {
		if (ms > 0)
			nu__io_sleep_until(CLOCK_MONOTONIC, deadline);
		return 0;
	}
	if (n == 1 && fds[0].fd >= 0) {
		int r = nu_poll_until(fds[0].fd, fds[0].events, deadline);
		if (r == -ETIMEDOUT)
			return 0;
		fds[0].revents = r > 0 ? (short)r : 0;
		return r > 0 ? 1 : (int)set_errno(r);
	}
	int r = poll_many(fds, n, deadline);
	if (r == -ENOTSUP) /* the fallback: the pool would cost a thread */
		return (int)poll_plain(fds, n, ms);
	return (int)set_errno(r);
}

/* ----------------------------------------------------------- sleeps */

static uint64_t ts_ns(const struct timespec *t)
{
	return (uint64_t)t->tv_sec * 1000000000u + (uint64_t)t->tv_nsec;
}

int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req,
		    struct timespec *rem)
{
	int ours = clock == CLOCK_MONOTONIC || clock == CLOCK_REALTIME ||
		   clock == CLOCK_BOOTTIME;
	if (!ours || !req || !hooks_on() || !nu__io_in_process()) {
		int saved = nu__errno_get(); /* returns the error, errno kept */
		long rc = syscall(SYS_clock_nanosleep, clock, flags, req, rem);
		int e = rc < 0 ? nu__errno_get() : 0;
		nu__errno_set(saved);
		return e;
	}
	if (req->tv_nsec < 0 || req->tv_nsec >= 1000000000 || req->tv_sec < 0)
		return EINVAL;
	uint64_t deadline = ts_ns(req);
	if (!(flags & TIMER_ABSTIME)) {
		struct timespec now;
		clock_gettime(clock, &now);
		deadline += ts_ns(&now);
	}
	int pin = nu__io_pin();
	int rc = nu__io_sleep_until(clock, deadline);
	nu__io_unpin(pin);
	if (rem && !(flags & TIMER_ABSTIME))
		*rem = (struct timespec){ 0, 0 };
	return rc < 0 ? -rc : 0;
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
	int rc = clock_nanosleep(CLOCK_MONOTONIC, 0, req, rem);
	if (rc) {
		nu__errno_set(rc);
		return -1;
	}
	return 0;
}

int usleep(useconds_t us)
{
	struct timespec t = { us / 1000000, (long)(us % 1000000) * 1000 };
	return nanosleep(&t, NULL);
}

unsigned sleep(unsigned s)
{
	struct timespec t = { s, 0 }, rem = { 0, 0 };
	if (nanosleep(&t, &rem) < 0)
		return (unsigned)rem.tv_sec + (rem.tv_nsec > 0);
	return 0;
}

/* ------------------------------------------- _FORTIFY_SOURCE forms */

ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		abort();
	return read(fd, buf, n);
}

ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen)
		abort();
	return pread64(fd, buf, n, off);
}

ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	return __pread64_chk(fd, buf, n, off, buflen);
}

ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		abort();
	return recv(fd, buf, n, flags);
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags,
		       struct sockaddr *addr, socklen_t *alen)
{
	if (n > buflen)
		abort();
	return recvfrom(fd, buf, n, flags, addr, alen);
}

int __poll_chk(struct pollfd *fds, nfds_t n, int ms, size_t fdslen)
{
	if (n > fdslen / sizeof(*fds))
		abort();
	return poll(fds, n, ms);
}
