/* calls.c — the blocking-style I/O calls (nu_read ... nu_poll).
 *
 * Each call is described once, as an `op` (what it is and its arguments),
 * and then takes one of three paths:
 *   ring     inside a process with io_uring: one SQE (io.c), the process
 *            parks, the scheduler runs others;
 *   pool     inside a process without io_uring (the fallback): the plain
 *            system call on the blocking pool (blocking.c), the process
 *            parks meanwhile;
 *   plain    outside any process: the plain system call on the caller's
 *            thread, as libc would make it.
 * Results are the system call's: a count, a descriptor or 0, or -errno.
 * The _until variants take an absolute CLOCK_MONOTONIC deadline (ns) and
 * give -ETIMEDOUT once it passes: a linked timeout on the ring; on the
 * other paths a poll() for readiness first (calls that have none, such as
 * fsync, ignore it there).
 *
 * Buffers in process memory are made resident before the kernel sees
 * them (nu__io_resident): with userfaultfd in SIGBUS mode the kernel gets
 * EFAULT for a page never touched instead of waiting for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../proc.h"
#include "../sched.h"
#include "blocking.h"
#include "io.h"
#include "poller.h"
#include "sys.h"
#include "nuproc.h"
#include "../timer.h"

#define LEN_MAX 0x7ffff000u /* what Linux transfers in one call at most */

enum {
	OP_READ, OP_WRITE, OP_PREAD, OP_PWRITE, OP_READV, OP_WRITEV,
	OP_RECV, OP_SEND, OP_RECVMSG, OP_SENDMSG, OP_ACCEPT, OP_CONNECT,
	OP_SOCKET, OP_SHUTDOWN, OP_CLOSE, OP_OPENAT, OP_STATX, OP_FSYNC,
	OP_POLL,
};

typedef struct op {
	int kind;
	int fd;
	void *buf;          /* buffer, iovec array, msghdr, sockaddr, path */
	size_t len;         /* bytes, iovcnt, socklen */
	int64_t off;        /* file offset; -1: the file position */
	int flags;          /* MSG_*, SOCK_*, O_*, AT_*, poll events, how */
	void *out;          /* accept's socklen_t *, statx's buffer */
	unsigned mode;      /* openat's mode, statx's mask, socket's protocol */
	uint64_t deadline;
	int result;
} op;

/* ------------------------------------------------------------ rings */

static void op_prep(struct io_uring_sqe *q, const op *o)
{
	unsigned n = o->len > LEN_MAX ? LEN_MAX : (unsigned)o->len;
	switch (o->kind) {
	case OP_READ: case OP_PREAD:
		io_uring_prep_read(q, o->fd, o->buf, n, (uint64_t)o->off); break;
	case OP_WRITE: case OP_PWRITE:
		io_uring_prep_write(q, o->fd, o->buf, n, (uint64_t)o->off); break;
	case OP_READV:
		io_uring_prep_readv(q, o->fd, o->buf, n, (uint64_t)o->off); break;
	case OP_WRITEV:
		io_uring_prep_writev(q, o->fd, o->buf, n, (uint64_t)o->off); break;
	case OP_RECV: io_uring_prep_recv(q, o->fd, o->buf, n, o->flags); break;
	case OP_SEND: io_uring_prep_send(q, o->fd, o->buf, n, o->flags); break;
	case OP_RECVMSG: io_uring_prep_recvmsg(q, o->fd, o->buf, (unsigned)o->flags); break;
	case OP_SENDMSG: io_uring_prep_sendmsg(q, o->fd, o->buf, (unsigned)o->flags); break;
	case OP_ACCEPT:
		io_uring_prep_accept(q, o->fd, o->buf, o->out, o->flags); break;
	case OP_CONNECT: io_uring_prep_connect(q, o->fd, o->buf, (socklen_t)n); break;
	case OP_SOCKET:
		io_uring_prep_socket(q, o->fd, o->flags, (int)o->mode, 0); break;
	case OP_SHUTDOWN: io_uring_prep_shutdown(q, o->fd, o->flags); break;
	case OP_CLOSE: io_uring_prep_close(q, o->fd); break;
	case OP_OPENAT:
		io_uring_prep_openat(q, o->fd, o->buf, o->flags, o->mode); break;
	case OP_STATX:
		io_uring_prep_statx(q, o->fd, o->buf, o->flags, o->mode, o->out);
		break;
	case OP_FSYNC: io_uring_prep_fsync(q, o->fd, 0); break;
	case OP_POLL: io_uring_prep_poll_add(q, o->fd, (unsigned)o->flags); break;
	}
}

/* Make buf resident (io.c): inline when it lies in the part of the
 * caller's stack known to be resident (a loop reading into a local
 * array). */
static inline void resident(nu__proc *p, const void *buf, size_t len)
{
	uintptr_t a = (uintptr_t)buf, e = a + len;
	if (p && a >= p->io_res_lo && e >= a && e <= (uintptr_t)p->stack_hi)
		return;
	nu__io_resident(p, buf, len);
}

/* The buffers the kernel will touch, made resident. */
static void op_resident(nu__proc *p, const op *o)
{
	switch (o->kind) {
	case OP_READV: case OP_WRITEV: {
		const struct iovec *v = o->buf;
		resident(p, v, o->len * sizeof(*v));
		for (size_t i = 0; v && i < o->len; i++)
			resident(p, v[i].iov_base, v[i].iov_len);
		break;
	}
	case OP_RECVMSG: case OP_SENDMSG: {
		const struct msghdr *m = o->buf;
		resident(p, m, sizeof(*m));
		if (!m)
			break;
		resident(p, m->msg_name, m->msg_namelen);
		resident(p, m->msg_control, m->msg_controllen);
		for (size_t i = 0; m->msg_iov && i < m->msg_iovlen; i++)
			resident(p, m->msg_iov[i].iov_base,
					m->msg_iov[i].iov_len);
		break;
	}
	case OP_ACCEPT:
		resident(p, o->out, sizeof(socklen_t));
		if (o->out && o->buf)
			resident(p, o->buf, *(socklen_t *)o->out);
		break;
	case OP_STATX:
		resident(p, o->out, sizeof(struct statx));
		break;
	case OP_SOCKET: case OP_SHUTDOWN: case OP_CLOSE: case OP_FSYNC:
	case OP_POLL:
		break;
	default:
		resident(p, o->buf, o->len > LEN_MAX ? LEN_MAX : o->len);
	}
}

static int op_ring(struct nu__sched *s, const op *o)
{
	nu__iowait w;
	int fd = o->kind == OP_SOCKET || o->kind == OP_OPENAT ||
			 o->kind == OP_STATX ? -1 : o->fd;
	nu__io_init(&w, fd, o->deadline);
	op_prep(&w.sqe, o);
	w.makes_fd = o->kind == OP_ACCEPT || o->kind == OP_SOCKET ||
		     o->kind == OP_OPENAT;
	return nu__io_run(s, &w);
}

/* ------------------------------------------------------------ plain */

/* The plain system call of o; msg: MSG_ flags added to a send's or a
 * receive's own. */
static long op_sys(const op *o, int msg)
{
	size_t n = o->len > LEN_MAX ? LEN_MAX : o->len;
	switch (o->kind) {
	case OP_READ: return syscall(SYS_read, o->fd, o->buf, n);
	case OP_WRITE: return syscall(SYS_write, o->fd, o->buf, n);
	case OP_PREAD: return syscall(SYS_pread64, o->fd, o->buf, n, o->off);
	case OP_PWRITE: return syscall(SYS_pwrite64, o->fd, o->buf, n, o->off);
	case OP_READV:
		return o->off < 0 ? syscall(SYS_readv, o->fd, o->buf, n)
				  : syscall(SYS_preadv, o->fd, o->buf, n,
					    o->off, 0);
	case OP_WRITEV:
		return o->off < 0 ? syscall(SYS_writev, o->fd, o->buf, n)
				  : syscall(SYS_pwritev, o->fd, o->buf, n,
					    o->off, 0);
	case OP_RECV:
		return syscall(SYS_recvfrom, o->fd, o->buf, n, o->flags | msg, 0,
			       0);
	case OP_SEND:
		return syscall(SYS_sendto, o->fd, o->buf, n, o->flags | msg, 0,
			       0);
	case OP_RECVMSG:
		return syscall(SYS_recvmsg, o->fd, o->buf, o->flags | msg);
	case OP_SENDMSG:
		return syscall(SYS_sendmsg, o->fd, o->buf, o->flags | msg);
	case OP_ACCEPT:
		return syscall(SYS_accept4, o->fd, o->buf, o->out, o->flags);
	case OP_CONNECT: return syscall(SYS_connect, o->fd, o->buf, n);
	case OP_SOCKET: return syscall(SYS_socket, o->fd, o->flags, o->mode);
	case OP_SHUTDOWN: return syscall(SYS_shutdown, o->fd, o->flags);
	case OP_CLOSE: return syscall(SYS_close, o->fd);
	case OP_OPENAT:
		return syscall(SYS_openat, o->fd, o->buf, o->flags, o->mode);
	case OP_STATX:
		return syscall(SYS_statx, o->fd, o->buf, o->flags, o->mode,
			       o->out);
	case OP_FSYNC: return syscall(SYS_fsync, o->fd);
	}
	return -1; /* OP_POLL goes through op_poll_plain */
}

static short op_events(const op *o)
{
	switch (o->kind) {
	case OP_READ: case OP_PREAD: case OP_READV: case OP_RECV:
	case OP_RECVMSG: case OP_ACCEPT:
		return POLLIN;
	case OP_WRITE: case OP_PWRITE: case OP_WRITEV: case OP_SEND:
	case OP_SENDMSG: case OP_CONNECT:
		return POLLOUT;
	case OP_POLL:
		return (short)o->flags;
	}
	return 0;
}

/* poll() fd until the deadline (0: none): revents, 0 on timeout, -errno. */
static int poll_until(int fd, short events, uint64_t deadline)
{
	for (;;) {
		int ms = -1;
		if (deadline) {
			uint64_t now = nu__now_ns();
			if (now >= deadline)
				ms = 0;
			else if (deadline - now < (uint64_t)INT_MAX * 1000000u)
				ms = (int)((deadline - now + 999999) / 1000000);
		}
		struct pollfd p = { .fd = fd, .events = events };
		struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
		long rc = syscall(SYS_ppoll, &p, 1, ms < 0 ? NULL : &ts, NULL, 0);
		if (rc < 0 && nu__errno_get() == EINTR)
			continue;
		if (rc < 0)
			return -nu__errno_get();
		if (rc == 0)
			return 0;
		return p.revents;
	}
}

static int op_plain_call(op *o)
{
	short ev = op_events(o);
	if (o->kind == OP_POLL || (o->deadline && ev)) {
		int rc = poll_until(o->fd, ev, o->deadline);
		if (o->kind == OP_POLL)
			return rc == 0 ? -ETIMEDOUT : rc;
		if (rc == 0)
			return -ETIMEDOUT;
		if (rc < 0)
			return rc;
	}
	long rc = op_sys(o, 0);
	return rc < 0 ? -nu__errno_get() : (int)rc;
}

/* The runtime never changes the caller's errno. */
static int op_plain(op *o)
{
	int saved = nu__errno_get();
	int rc = op_plain_call(o);
	nu__errno_set(saved);
	return rc;
}

/* ------------------------------------------------------- fallback */

static int op_pool(op *o);

enum { RD_NONE, RD_SOCKET, RD_OTHER };

/* Does the descriptor have readiness, and is it a socket? Regular files
 * and block devices are always "ready" and block in the call. */
static int readiness(int fd)
{
	struct stat st;
	if (fstat(fd, &st))
		return RD_OTHER; /* let the call report EBADF */
	if (S_ISSOCK(st.st_mode))
		return RD_SOCKET;
	return S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode) ? RD_OTHER
							   : RD_NONE;
}

/* The call without waiting: -EAGAIN when it would wait. A read or write
 * on a socket becomes a recv or send with MSG_DONTWAIT (a readv or writev
 * a recvmsg or sendmsg); elsewhere a zero-timeout poll says whether the
 * call would wait, and a write is cut to PIPE_BUF, which POLLOUT promises
 * to take without waiting (a writev to a write of its first non-empty
 * entry, so cut: the caller goes on with the rest, op_vec_all). */
static int op_try(op *o, int rd)
{
	op t = *o;
	t.deadline = 0;
	if (rd == RD_SOCKET && (o->kind == OP_READ || o->kind == OP_WRITE))
		t.kind = o->kind == OP_READ ? OP_RECV : OP_SEND;
	struct msghdr m; /* a readv or writev on a socket: recvmsg, sendmsg */
	if (rd == RD_SOCKET && (o->kind == OP_READV || o->kind == OP_WRITEV)) {
		m = (struct msghdr){ .msg_iov = o->buf, .msg_iovlen = o->len };
		t.kind = o->kind == OP_READV ? OP_RECVMSG : OP_SENDMSG;
		t.buf = &m;
	}
	switch (t.kind) {
	case OP_RECV: case OP_SEND: case OP_RECVMSG: case OP_SENDMSG:
		t.flags |= MSG_DONTWAIT;
		return op_plain(&t);
	}
	struct pollfd p = { .fd = o->fd, .events = op_events(o) };
	struct timespec zero = { 0, 0 };
	long rc = syscall(SYS_ppoll, &p, 1, &zero, NULL, 0);
	if (rc == 0)
		return -EAGAIN;
	if (o->kind == OP_POLL)
		return p.revents & POLLNVAL ? -EBADF : p.revents;
	if (t.kind == OP_WRITE && t.len > PIPE_BUF)
		t.len = PIPE_BUF;
	const struct iovec *v = o->buf;
	for (size_t i = 0; t.kind == OP_WRITEV && v && i < o->len; i++)
		if (v[i].iov_len) { /* the same cut, as a write of one entry */
			t.kind = OP_WRITE;
			t.buf = v[i].iov_base;
			t.len = v[i].iov_len < PIPE_BUF ? v[i].iov_len : PIPE_BUF;
		}
	return op_plain(&t);
}

/* Wait for readiness, then the call, until it would not wait. */
static int op_ready_call(op *o, int rd)
{
	if (o->fd < 0)
		return -EBADF; /* poll() would ignore it and wait forever */
	for (;;) {
		int rc = op_try(o, rd);
		if (rc != -EAGAIN && rc != -EWOULDBLOCK)
			return rc;
		rc = nu__poller_wait(o->fd, op_events(o), o->deadline);
		if (rc == -EINTR) {
			struct nu__sched *s = nu__sched_self();
			nu__proc_check_kill(s, s->current); /* may exit */
		} else if (rc < 0) {
			return rc;
		}
	}
}

/* In a process without io_uring: sockets, pipes and terminals wait for
 * readiness on the poller, then make the plain call (a write or send
 * until all is written, as a blocking one does); the rest goes to the
 * blocking pool. */
static int op_fallback_call(op *o)
{
	int rd = o->kind == OP_RECV || o->kind == OP_SEND ||
			 o->kind == OP_RECVMSG || o->kind == OP_SENDMSG ||
			 o->kind == OP_ACCEPT || o->kind == OP_POLL
		 ? RD_SOCKET : RD_NONE;
	if (!rd && op_events(o) && o->kind != OP_CONNECT &&
	    o->kind != OP_PREAD && o->kind != OP_PWRITE) {
		rd = readiness(o->fd);
		/* the wrong end of a pipe is never ready: EBADF at once */
		int fl = fcntl(o->fd, F_GETFL);
		int acc = fl & O_ACCMODE;
		if (rd && fl >= 0 &&
		    (op_events(o) == POLLIN ? acc == O_WRONLY
					    : acc == O_RDONLY))
			return op_plain(o);
	}
	if (!rd)
		return op_pool(o);
	if (o->kind != OP_WRITE && o->kind != OP_SEND)
		return op_ready_call(o, rd);
	size_t done = 0, len = o->len > LEN_MAX ? LEN_MAX : o->len;
	while (done < len) {
		op t = *o;
		t.buf = (char *)o->buf + done;
		t.len = len - done;
		int rc = op_ready_call(&t, rd);
		if (rc <= 0)
			return done ? (int)done : rc;
		done += (size_t)rc;
	}
	return (int)done;
}

static int op_fallback(op *o)
{
	int saved = nu__errno_get();
	int rc = op_fallback_call(o);
	nu__errno_set(saved);
	return rc;
}

static void op_pool_fn(void *arg)
{
	op *o = arg;
	o->result = op_plain(o);
}

static int op_pool(op *o)
{
	int makes_fd = o->kind == OP_ACCEPT || o->kind == OP_SOCKET ||
		       o->kind == OP_OPENAT;
	o->result = -EINTR;
	int rc = nu__blocking_run(op_pool_fn, o, makes_fd ? &o->result : NULL);
	return rc < 0 ? rc : o->result;
}

/* A blocking write or send moves everything, as the system call does on
 * a blocking descriptor: a short count (a pipe or socket buffer that
 * filled up) goes on with the rest; an error after some progress gives
 * the progress. */
static long op_all(struct nu__sched *s, op *o)
{
	size_t done = 0;
	for (;;) {
		op t = *o;
		t.buf = (char *)o->buf + done;
		t.len = o->len - done;
		if (o->off >= 0)
			t.off = o->off + (int64_t)done;
		long rc = op_ring(s, &t);
		if (rc <= 0)
			return done ? (long)done : rc;
		done += (size_t)rc;
		if (done >= o->len || (size_t)rc >= LEN_MAX)
			return (long)done;
		s = nu__io_here(); /* we may have moved */
	}
}

/* A send's plain non-blocking try: a count or -errno (errno as it was;
 * the system call sets it only when it fails). */
static long send_try(const op *o)
{
	int saved = nu__errno_get();
	long rc = op_sys(o, MSG_DONTWAIT);
	if (rc < 0) {
		rc = -nu__errno_get();
		nu__errno_set(saved);
	}
	return rc;
}

/* A send first tries the plain non-blocking call: when the socket has
 * room (the common case) that is all, without an SQE, a park and a wake;
 * what is left goes through the ring, all of it (op_all: a ring send on
 * a full socket waits for room, then sends what fits and returns that
 * short count). */
static long op_send_ring(struct nu__sched *s, op *o)
{
	long rc = send_try(o);
	if (rc == -EAGAIN || rc == -EWOULDBLOCK)
		return o->kind == OP_SEND ? op_all(s, o) : op_ring(s, o);
	if (rc < 0 || o->kind != OP_SEND || (size_t)rc >= o->len || !rc)
		return rc;
	op t = *o; /* part went: the rest waits for room */
	t.buf = (char *)o->buf + rc;
	t.len = o->len - (size_t)rc;
	long more = op_all(s, &t);
	return more < 0 ? rc : rc + more;
}

static long op_run_once(op *o)
{
	struct nu__sched *s = nu__io_here();
	if (s) {
		op_resident(s->current, o);
		if (o->kind == OP_SEND || o->kind == OP_SENDMSG)
			return op_send_ring(s, o);
		if (o->kind == OP_WRITE || o->kind == OP_PWRITE)
			return op_all(s, o);
		return op_ring(s, o);
	}
	if (!nu__io_in_process())
		return op_plain(o);
	op_resident(nu__sched_self()->current, o);
	return op_fallback(o);
}

/* Copy into iov the part of v[0..cnt) past its first `done` bytes; the
 * number of entries (0: nothing is left). iov holds cnt entries. */
#define VEC_ALL_MAX 32 /* entries copied on our stack (op_vec_all) */

static size_t vec_rest(struct iovec *iov, const struct iovec *v, size_t cnt,
		       size_t done)
{
	size_t n = 0;
	for (size_t i = 0; i < cnt; i++) {
		if (done >= v[i].iov_len) {
			done -= v[i].iov_len;
			continue;
		}
		iov[n].iov_base = (char *)v[i].iov_base + done;
		iov[n++].iov_len = v[i].iov_len - done;
		done = 0;
	}
	return n;
}

/* op_vec_all's loop, `done` bytes gone: the total, or `done` after an
 * error. */
static long vec_more(op *o, struct msghdr *m, struct iovec *iov,
		     const struct iovec *v, size_t cnt, size_t done)
{
	for (;;) {
		size_t n = vec_rest(iov, v, cnt, done);
		if (!n)
			return (long)done; /* all of it went */
		op t = *o;
		if (m) {
			m->msg_iovlen = n;
			t.buf = m;
		} else {
			t.buf = iov;
			t.len = n;
		}
		long r = op_run_once(&t);
		if (r <= 0)
			return (long)done; /* an error after progress: the progress */
		done += (size_t)r;
	}
}

/* A blocking writev or sendmsg moves everything too (op_all's rule):
 * after a short count the rest goes again, the vector advanced past what
 * went, in a copy: on our stack up to VEC_ALL_MAX entries, else in the
 * process's heap, which goes with the process if it is killed while it
 * waits (a malloc'd copy would leak then); a heap that cannot hold it
 * gives the short count. A sendmsg's ancillary data went with its first
 * bytes. A datagram send is never short: only streams loop. */
static long op_vec_all(op *o)
{
	const struct msghdr *mh = o->kind == OP_SENDMSG ? o->buf : NULL;
	const struct iovec *v = mh ? mh->msg_iov : o->buf;
	size_t cnt = mh ? mh->msg_iovlen : o->len;
	long rc = op_run_once(o);
	if (rc <= 0 || (o->kind == OP_SENDMSG && !mh) || !v)
		return rc;
	size_t total = 0;
	for (size_t i = 0; i < cnt; i++)
		total += v[i].iov_len;
	if ((size_t)rc >= total)
		return rc; /* all of it went: the common case */
	struct iovec small[VEC_ALL_MAX], *iov = small;
	if (cnt > VEC_ALL_MAX && !(iov = nu_alloc(cnt * sizeof(*iov))))
		return rc;
	struct msghdr m = { 0 };
	if (mh) {
		m = *mh;
		m.msg_control = NULL;
		m.msg_controllen = 0;
		m.msg_iov = iov;
	}
	rc = vec_more(o, mh ? &m : NULL, iov, v, cnt, (size_t)rc);
	if (iov != small)
		nu_free(iov);
	return rc;
}

static long op_run(op *o)
{
	return o->kind == OP_SENDMSG || o->kind == OP_WRITEV ? op_vec_all(o)
							     : op_run_once(o);
}

/* ------------------------------------------------------ the calls */

#define OP(...) (&(op){ __VA_ARGS__ })

ssize_t nu_read_until(int fd, void *buf, size_t n, uint64_t deadline)
{
	return op_run(OP(.kind = OP_READ, .fd = fd, .buf = buf, .len = n,
			 .off = -1, .deadline = deadline));
}
ssize_t nu_read(int fd, void *buf, size_t n)
{
	return nu_read_until(fd, buf, n, 0);
}

ssize_t nu_write_until(int fd, const void *buf, size_t n, uint64_t deadline)
{
	return op_run(OP(.kind = OP_WRITE, .fd = fd, .buf = (void *)buf,
			 .len = n, .off = -1, .deadline = deadline));
}
ssize_t nu_write(int fd, const void *buf, size_t n)
{
	return nu_write_until(fd, buf, n, 0);
}

ssize_t nu_pread_until(int fd, void *buf, size_t n, off_t off,
		       uint64_t deadline)
{
	if (off < 0)
		return -EINVAL;
	return op_run(OP(.kind = OP_PREAD, .fd = fd, .buf = buf, .len = n,
			 .off = off, .deadline = deadline));
}
ssize_t nu_pread(int fd, void *buf, size_t n, off_t off)
{
	return nu_pread_until(fd, buf, n, off, 0);
}

ssize_t nu_pwrite_until(int fd, const void *buf, size_t n, off_t off,
			uint64_t deadline)
{
	if (off < 0)
		return -EINVAL;
	return op_run(OP(.kind = OP_PWRITE, .fd = fd, .buf = (void *)buf,
			 .len = n, .off = off, .deadline = deadline));
}
ssize_t nu_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return nu_pwrite_until(fd, buf, n, off, 0);
}

/* readv or writev: iov counted in len, at the file position. */
static ssize_t iov_run(int kind, int fd, const struct iovec *iov, int cnt,
		       uint64_t deadline)
{
	if (cnt < 0 || cnt > IOV_MAX)
		return -EINVAL;
	return op_run(OP(.kind = kind, .fd = fd, .buf = (void *)iov,
			 .len = (size_t)cnt, .off = -1, .deadline = deadline));
}

ssize_t nu_readv_until(int fd, const struct iovec *iov, int cnt,
		       uint64_t deadline)
{
	return iov_run(OP_READV, fd, iov, cnt, deadline);
}
ssize_t nu_readv(int fd, const struct iovec *iov, int cnt)
{
	return nu_readv_until(fd, iov, cnt, 0);
}

ssize_t nu_writev_until(int fd, const struct iovec *iov, int cnt,
			uint64_t deadline)
{
	return iov_run(OP_WRITEV, fd, iov, cnt, deadline);
}
ssize_t nu_writev(int fd, const struct iovec *iov, int cnt)
{
	return nu_writev_until(fd, iov, cnt, 0);
}

ssize_t nu_recv_until(int fd, void *buf, size_t n, int flags,
		      uint64_t deadline)
{
	return op_run(OP(.kind = OP_RECV, .fd = fd, .buf = buf, .len = n,
			 .flags = flags, .deadline = deadline));
}
ssize_t nu_recv(int fd, void *buf, size_t n, int flags)
{
	return nu_recv_until(fd, buf, n, flags, 0);
}

ssize_t nu__sock_send_flags(int fd, const void *buf, size_t n, int flags)
{
	return op_run(OP(.kind = OP_SEND, .fd = fd, .buf = (void *)buf,
			 .len = n, .flags = flags));
}

ssize_t nu_sock_send_until(int fd, const void *buf, size_t n, int flags,
			   uint64_t deadline)
{
	return op_run(OP(.kind = OP_SEND, .fd = fd, .buf = (void *)buf,
			 .len = n, .flags = flags | MSG_NOSIGNAL,
			 .deadline = deadline));
}
ssize_t nu_sock_send(int fd, const void *buf, size_t n, int flags)
{
	return nu_sock_send_until(fd, buf, n, flags, 0);
}

ssize_t nu_recvmsg_until(int fd, struct msghdr *msg, int flags,
			 uint64_t deadline)
{
	return op_run(OP(.kind = OP_RECVMSG, .fd = fd, .buf = msg,
			 .flags = flags, .deadline = deadline));
}
ssize_t nu_recvmsg(int fd, struct msghdr *msg, int flags)
{
	return nu_recvmsg_until(fd, msg, flags, 0);
}

ssize_t nu__sendmsg_flags(int fd, const struct msghdr *msg, int flags)
{
	return op_run(OP(.kind = OP_SENDMSG, .fd = fd, .buf = (void *)msg,
			 .flags = flags));
}

ssize_t nu_sendmsg_until(int fd, const struct msghdr *msg, int flags,
			 uint64_t deadline)
{
	return op_run(OP(.kind = OP_SENDMSG, .fd = fd, .buf = (void *)msg,
			 .flags = flags | MSG_NOSIGNAL, .deadline = deadline));
}
ssize_t nu_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	return nu_sendmsg_until(fd, msg, flags, 0);
}

int nu_accept_until(int fd, struct sockaddr *addr, socklen_t *len, int flags,
		    uint64_t deadline)
{
	if (addr && !len)
		return -EINVAL;
	return (int)op_run(OP(.kind = OP_ACCEPT, .fd = fd, .buf = addr,
			      .out = len, .flags = flags,
			      .deadline = deadline));
}
int nu_accept(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	return nu_accept_until(fd, addr, len, flags, 0);
}

int nu_connect_until(int fd, const struct sockaddr *addr, socklen_t len,
		     uint64_t deadline)
{
	return (int)op_run(OP(.kind = OP_CONNECT, .fd = fd,
			      .buf = (void *)addr, .len = len,
			      .deadline = deadline));
}
int nu_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
	return nu_connect_until(fd, addr, len, 0);
}

/* socket() never waits: the plain call everywhere (IORING_OP_SOCKET
 * would cost a park and need Linux 5.19). */
int nu_socket(int domain, int type, int protocol)
{
	return op_plain(OP(.kind = OP_SOCKET, .fd = domain, .flags = type,
			   .mode = (unsigned)protocol));
}

int nu_shutdown_until(int fd, int how, uint64_t deadline)
{
	return (int)op_run(OP(.kind = OP_SHUTDOWN, .fd = fd, .flags = how,
			      .deadline = deadline));
}
int nu_shutdown(int fd, int how)
{
	return nu_shutdown_until(fd, how, 0);
}

int nu_close(int fd)
{
	if (fd < 0)
		return -EBADF;

	nu__poller_cancel_fd(fd);
	nu__io_fd_quiesce(nu__io_here(), fd);
	return (int)op_run(OP(.kind = OP_CLOSE, .fd = fd));
}

int nu_openat_until(int dirfd, const char *path, int flags, mode_t mode,
		    uint64_t deadline)
{
	if (!path)
		return -EFAULT;
	return (int)op_run(OP(.kind = OP_OPENAT, .fd = dirfd,
			      .buf = (void *)path, .flags = flags,
			      .mode = mode, .deadline = deadline));
}
int nu_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return nu_openat_until(dirfd, path, flags, mode, 0);
}

int nu_statx_until(int dirfd, const char *path, int flags, unsigned mask,
		   struct statx *out, uint64_t deadline)
{
	if (!path || !out)
		return -EFAULT;
	return (int)op_run(OP(.kind = OP_STATX, .fd = dirfd,
			      .buf = (void *)path, .flags = flags, .mode = mask,
			      .out = out, .deadline = deadline));
}
int nu_statx(int dirfd, const char *path, int flags, unsigned mask,
	     struct statx *out)
{
	return nu_statx_until(dirfd, path, flags, mask, out, 0);
}

int nu_fsync_until(int fd, uint64_t deadline)
{
	return (int)op_run(OP(.kind = OP_FSYNC, .fd = fd,
			      .deadline = deadline));
}
int nu_fsync(int fd)
{
	return nu_fsync_until(fd, 0);
}

int nu_poll_until(int fd, short events, uint64_t deadline)
{
	if (fd < 0)
		return -EBADF;
	int rc = (int)op_run(OP(.kind = OP_POLL, .fd = fd, .flags = events,
				.deadline = deadline));
	return rc;
}
int nu_poll(int fd, short events)
{
	return nu_poll_until(fd, events, 0);
}

int nu__io_sleep_until(int clock, uint64_t deadline)
{
	struct nu__sched *s = nu__io_here();
	if (!s) {
		struct timespec now;
		clock_gettime(clock, &now);
		uint64_t t = (uint64_t)now.tv_sec * 1000000000u +
			     (uint64_t)now.tv_nsec;
		if (t < deadline)
			nu_sleep((deadline - t + 999999) / 1000000);
		return 0;
	}
	nu__iowait w;
	nu__io_init(&w, -1, 0);
	w.ts.tv_sec = (long long)(deadline / 1000000000u);
	w.ts.tv_nsec = (long long)(deadline % 1000000000u);
	unsigned fl = IORING_TIMEOUT_ABS;
	if (clock == CLOCK_REALTIME)
		fl |= IORING_TIMEOUT_REALTIME;
	else if (clock == CLOCK_BOOTTIME)
		fl |= IORING_TIMEOUT_BOOTTIME;
	io_uring_prep_timeout(&w.sqe, &w.ts, 0, fl);
	int rc = nu__io_run(s, &w);
	return rc == -ETIME ? 0 : rc;
}

uint64_t nu_clock_ns(void)
{
	return nu__now_ns();
}
