/* uring_echo.c — a raw, single-threaded liburing TCP echo server: the
 * baseline nuproc's echo server (tools/examples/echo_server.c) is measured
 * against in nuproc-bench's `echo` scenario. No nuproc here.
 *
 *   uring-echo PORT        listen on 127.0.0.1:PORT, echo until SIGINT/SIGTERM
 *
 * nuproc-bench is built with this file (and -DNUPROC_BENCH: no main) and
 * calls uring_echo_listen/uring_echo_serve (uring_echo.h) in a child.
 *
 * Entities:
 *   ring        one io_uring, SINGLE_ISSUER | DEFER_TASKRUN (falling back to
 *               COOP_TASKRUN, then to no flags), CQ 4x the SQ, ring fd
 *               registered. Never NO_SQARRAY (liburing 2.3 corrupts it).
 *   accept      one multishot accept on the listening socket, re-armed when
 *               a CQE comes without IORING_CQE_F_MORE.
 *   connection  a socket (TCP_NODELAY) and a 4 KiB buffer of its own, on a
 *               list so that a stopped server frees them all.
 *   chain       what a connection has in flight, always exactly one: a
 *               send of the bytes last received (MSG_WAITALL,
 *               IOSQE_CQE_SKIP_SUCCESS, IOSQE_IO_LINK) linked to a recv
 *               into the same buffer; just the recv after the accept.
 *
 * A chain posts exactly one CQE. When the send succeeds it posts none and
 * the recv posts one: data (the next chain goes out), 0 (EOF) or an error
 * (close). When the send fails, the kernel posts the send's CQE and, as the
 * send skipped success, cancels the recv without a CQE
 * (REQ_F_SKIP_LINK_CQES). A short count (MSG_WAITALL retries inside the
 * kernel, so only an error after partial progress) sends the rest in a
 * new chain; an error closes. So when a connection's CQE arrives nothing
 * of it is in flight, and it can be closed and freed on the spot; a
 * stopped server tears the ring down first, then frees what is left.
 * user_data is the connection's address, bit 0 set for the send; 0 is the
 * accept.
 *
 * Rejected, by measurement (2 vCPU VM, server on CPU 0 and the anchors'
 * echo_load on CPU 1, 64-byte messages; the server's CPU time per request,
 * as both CPUs are saturated from 100 connections on): a multishot recv
 * per connection on a provided-buffer ring (one SQE but two CQEs per
 * message, a per-connection queue of received buffers to keep the sends
 * in order, buffer starvation and back-pressure to handle): 3.3 vs 3.2 us
 * at c100, 4.4 vs 4.0 us at c1000, and much more code.
 * IORING_RECVSEND_POLL_FIRST on the recv: slower at c1000 (5.0 vs 4.1 us;
 * the next request is often there already). Not tried: fixed files (a file
 * reference per op saved, against closes through the ring and no fd for
 * setsockopt).
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "uring_echo.h"

#define UE_SQ 2048
#define UE_CQ (4 * UE_SQ)
#define UE_BUF 4096
#define UE_ACCEPT 0	/* user_data of the multishot accept */
#define UE_SEND 1	/* bit 0 of a connection's user_data: its send */

typedef struct ue_conn {
	struct ue_conn *prev, *next;
	int fd;
	unsigned off, len;	/* buf[off, len) is still to be sent */
	char buf[UE_BUF];
} ue_conn;

typedef struct ue_server {
	struct io_uring ring;
	int lfd;
	ue_conn *conns;		/* every open connection */
} ue_server;

int uring_echo_listen(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd < 0)
		return -errno;
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096)) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* The ring, with the best flags this kernel takes. */
static int ue_ring_init(struct io_uring *ring)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int rc = -EINVAL;
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p = {
			.flags = tries[i] | IORING_SETUP_CQSIZE,
			.cq_entries = UE_CQ,
		};
		rc = io_uring_queue_init_params(UE_SQ, ring, &p);
		if (rc != -EINVAL)
			break;
	}
	if (rc == 0)
		io_uring_register_ring_fd(ring); /* an optimisation only */
	return rc;
}

/* An SQE; when the SQ is full, submit what is queued and try again. */
static struct io_uring_sqe *ue_sqe(ue_server *s)
{
	struct io_uring_sqe *sqe;
	while (!(sqe = io_uring_get_sqe(&s->ring)))
		io_uring_submit(&s->ring);
	return sqe;
}

static void ue_accept_arm(ue_server *s)
{
	struct io_uring_sqe *sqe = ue_sqe(s);
	io_uring_prep_multishot_accept(sqe, s->lfd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UE_ACCEPT);
}

/* The connection's chain: the send of buf[off, len) if any, then a recv. */
static void ue_chain(ue_server *s, ue_conn *c)
{
	struct io_uring_sqe *sqe;
	if (c->off < c->len) {
		sqe = ue_sqe(s);
		io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len - c->off,
				   MSG_WAITALL | MSG_NOSIGNAL);
		sqe->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
		io_uring_sqe_set_data64(sqe, (uintptr_t)c | UE_SEND);
	}
	sqe = ue_sqe(s);
	io_uring_prep_recv(sqe, c->fd, c->buf, UE_BUF, 0);
	io_uring_sqe_set_data64(sqe, (uintptr_t)c);
}

static void ue_conn_close(ue_server *s, ue_conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	close(c->fd);
	free(c);
}

static void ue_on_accept(ue_server *s, const struct io_uring_cqe *cqe)
{
	if (!(cqe->flags & IORING_CQE_F_MORE))
		ue_accept_arm(s);
	if (cqe->res < 0)
		return; /* a connection reset before accept, EMFILE, ... */
	int fd = cqe->res, one = 1;
	ue_conn *c = malloc(sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->off = c->len = 0;
	c->prev = NULL;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	ue_chain(s, c);
}

/* A CQE of a connection's chain: the recv's, or the send's on failure. */
static void ue_on_conn(ue_server *s, uint64_t ud, int res)
{
	ue_conn *c = (ue_conn *)(uintptr_t)(ud & ~(uint64_t)UE_SEND);
	if (res <= 0) { /* EOF or an error, of the send or the recv */
		ue_conn_close(s, c);
		return;
	}
	if (ud & UE_SEND) { /* short: the rest, and the recv again */
		c->off += (unsigned)res;
	} else {
		c->off = 0;
		c->len = (unsigned)res;
	}
	ue_chain(s, c);
}

/* Handle every CQE that is there. */
static void ue_reap(ue_server *s)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&s->ring, head, cqe) {
		if (cqe->user_data == UE_ACCEPT)
			ue_on_accept(s, cqe);
		else
			ue_on_conn(s, cqe->user_data, cqe->res);
		n++;
	}
	io_uring_cq_advance(&s->ring, n);
}

int uring_echo_serve(int lfd, volatile sig_atomic_t *stop)
{
	ue_server s = { .lfd = lfd };
	int rc = ue_ring_init(&s.ring);
	if (rc < 0)
		return rc;
	ue_accept_arm(&s);
	while (!(stop && *stop)) {
		/* With a stop flag, wake every 100 ms: a signal that comes
		 * between the test above and the wait does not interrupt it. */
		struct __kernel_timespec ts = { .tv_nsec = 100000000 };
		struct io_uring_cqe *cqe;
		rc = stop ? io_uring_submit_and_wait_timeout(&s.ring, &cqe, 1,
							     &ts, NULL)
			  : io_uring_submit_and_wait(&s.ring, 1);
		if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN &&
		    rc != -EBUSY)
			break;
		rc = 0;
		ue_reap(&s);
	}
	io_uring_queue_exit(&s.ring); /* the kernel cancels what is in flight */
	while (s.conns)
		ue_conn_close(&s, s.conns);
	return rc;
}

#ifndef NUPROC_BENCH /* nuproc-bench has its own main */
static volatile sig_atomic_t stopped;

static void on_signal(int sig)
{
	(void)sig;
	stopped = 1;
}

int main(int argc, char **argv)
{
	char *end;
	long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
	if (argc != 2 || *end || port < 1 || port > 65535) {
		fprintf(stderr, "usage: uring-echo PORT\n");
		return 2;
	}
	int lfd = uring_echo_listen((int)port);
	if (lfd < 0) {
		fprintf(stderr, "uring-echo: listen: %s\n", strerror(-lfd));
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	int rc = uring_echo_serve(lfd, &stopped);
	if (rc < 0)
		fprintf(stderr, "uring-echo: %s\n", strerror(-rc));
	close(lfd);
	return rc < 0;
}
#endif
