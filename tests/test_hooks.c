/* test_hooks.c — the libc hooks: plain read, write, accept, connect,
 * poll, sleeps and close inside processes park the process (the
 * scheduler runs others meanwhile), errno is right after the call,
 * O_NONBLOCK descriptors keep their semantics, recvfrom/sendto carry
 * addresses, and outside processes the calls are the plain ones. Run
 * again with NUPROC_HOOKS=0: then a blocking call holds its scheduler. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

static int hooks_off(void)
{
	const char *e = getenv("NUPROC_HOOKS");
	return e && strcmp(e, "0") == 0;
}

/* 1000 processes that count while another one blocks in a plain call:
 * with the hooks each of them keeps running, without them none does (one
 * scheduler). */
#define TICKERS 1000
static _Atomic long ticks;
static long tick_of[TICKERS];
static _Atomic int stop_ticker;

static void ticker(void *a)
{
	long i = (long)(intptr_t)a;
	while (!atomic_load(&stop_ticker)) {
		tick_of[i]++;
		atomic_fetch_add_explicit(&ticks, 1, memory_order_relaxed);
		nu_yield();
	}
}

static void start_tickers(void)
{
	atomic_store(&ticks, 0);
	atomic_store(&stop_ticker, 0);
	for (long i = 0; i < TICKERS; i++) {
		tick_of[i] = 0;
		nu_spawn(ticker, (void *)(intptr_t)i);
	}
	nu_yield();
}

/* Ticks the tickers made while fn blocked, and how many of them ticked:
 * all of them with hooks, none without (one scheduler). */
static long ticks_during_n(void (*fn)(void *), void *arg, long *ran)
{
	start_tickers();
	long before = atomic_load(&ticks), base[TICKERS];
	for (long i = 0; i < TICKERS; i++)
		base[i] = tick_of[i];
	fn(arg);
	long n = atomic_load(&ticks) - before;
	*ran = 0;
	for (long i = 0; i < TICKERS; i++)
		*ran += tick_of[i] > base[i];
	atomic_store(&stop_ticker, 1);
	nt_wait_alone();
	return n;
}

static long ticks_during(void (*fn)(void *), void *arg)
{
	long ran;
	return ticks_during_n(fn, arg, &ran);
}

static void run1(void (*fn)(void *))
{
	nu_config c;
	nt_config(&c, 1, 4000, 1 << 20);
	CU_ASSERT_EQUAL(nu_start(&c, fn, NULL), 0);
}

/* ------------------------------------------------------------ sleeps */

static void do_sleeps(void *a)
{
	(void)a;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CU_ASSERT_EQUAL(usleep(20000), 0);
	struct timespec ts = { 0, 10000000 };
	CU_ASSERT_EQUAL(nanosleep(&ts, NULL), 0);
	struct timespec abs;
	clock_gettime(CLOCK_MONOTONIC, &abs);
	abs.tv_nsec += 10000000;
	if (abs.tv_nsec >= 1000000000) {
		abs.tv_sec++;
		abs.tv_nsec -= 1000000000;
	}
	CU_ASSERT_EQUAL(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs,
					NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 +
		  (t1.tv_nsec - t0.tv_nsec) / 1000000;
	CU_ASSERT(ms >= 40);
	ts.tv_nsec = 2000000000; /* invalid */
	CU_ASSERT_EQUAL(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL), EINVAL);
}

static void sleep_main(void *a)
{
	(void)a;
	long n = ticks_during(do_sleeps, NULL);
	if (hooks_off()) {
		CU_ASSERT_EQUAL(n, 0);
	} else {
		CU_ASSERT(n > 100);
	}
}

static void test_sleeps(void)
{
	run1(sleep_main);
	do_sleeps(NULL); /* outside a process: the plain calls */
}

/* ----------------------------------------------------- pipes, errno */

static int pfd[2];

/* Writes once every ticker has run (or after 5 s): a shared machine may
 * hold the scheduler thread for longer than a fixed delay. */
static void writer(void *a)
{
	(void)a;
	usleep(20000);
	for (int i = 0; i < 500 && atomic_load(&ticks) < 3 * TICKERS; i++)
		usleep(10000);
	CU_ASSERT_EQUAL(write(pfd[1], "ping", 4), 4);
}

static void do_read(void *a)
{
	(void)a;
	char buf[8];
	CU_ASSERT_EQUAL(read(pfd[0], buf, sizeof(buf)), 4);
	CU_ASSERT(memcmp(buf, "ping", 4) == 0);
}

static void pipe_main(void *a)
{
	(void)a;
	CU_ASSERT_FATAL(pipe(pfd) == 0);
	if (hooks_off()) { /* a read would hold the only scheduler */
		CU_ASSERT_EQUAL(write(pfd[1], "ping", 4), 4);
		do_read(NULL);
	} else {
		/* a plain read() on a pipe, as a library that knows nothing
		 * of nuproc makes it: only its process waits */
		nu_spawn(writer, NULL);
		long ran;
		CU_ASSERT(ticks_during_n(do_read, NULL, &ran) > TICKERS);
		CU_ASSERT_EQUAL(ran, TICKERS);
	}
	/* errno after a failing call */
	char c;
	errno = 0;
	CU_ASSERT_EQUAL(read(pfd[1], &c, 1), -1);
	CU_ASSERT_EQUAL(errno, EBADF);
	errno = 0;
	CU_ASSERT_EQUAL(read(-1, &c, 1), -1);
	CU_ASSERT_EQUAL(errno, EBADF);
	/* O_NONBLOCK keeps its meaning: EAGAIN at once */
	CU_ASSERT_EQUAL(fcntl(pfd[0], F_SETFL, O_NONBLOCK), 0);
	errno = 0;
	CU_ASSERT_EQUAL(read(pfd[0], &c, 1), -1);
	CU_ASSERT_EQUAL(errno, EAGAIN);
	CU_ASSERT_EQUAL(fcntl(pfd[0], F_SETFL, 0), 0); /* blocking again */
	CU_ASSERT_EQUAL(fcntl(pfd[0], F_GETFL) & O_NONBLOCK, 0);
	int on = 1;
	CU_ASSERT_EQUAL(ioctl(pfd[0], FIONBIO, &on), 0);
	errno = 0;
	CU_ASSERT_EQUAL(read(pfd[0], &c, 1), -1);
	CU_ASSERT_EQUAL(errno, EAGAIN);
	CU_ASSERT_EQUAL(close(pfd[0]), 0);
	CU_ASSERT_EQUAL(close(pfd[1]), 0);
	errno = 0;
	CU_ASSERT_EQUAL(close(pfd[1]), -1);
	CU_ASSERT_EQUAL(errno, EBADF);
}

static void test_pipe(void)
{
	run1(pipe_main);
}

/* ------------------------------------------------------------ TCP */

static int lst;
static struct sockaddr_in laddr;

static void server(void *a)
{
	(void)a;
	struct sockaddr_in peer;
	socklen_t len = sizeof(peer);
	int fd = accept(lst, (void *)&peer, &len);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(peer.sin_family, AF_INET);
	char buf[64];
	ssize_t n;
	while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
		CU_ASSERT_EQUAL(send(fd, buf, (size_t)n, 0), n);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(close(fd), 0);
}

static void tcp_main(void *a)
{
	(void)a;
	lst = socket(AF_INET, SOCK_STREAM, 0);
	laddr = (struct sockaddr_in){ .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(laddr);
	CU_ASSERT_FATAL(bind(lst, (void *)&laddr, sizeof(laddr)) == 0);
	CU_ASSERT_FATAL(listen(lst, 8) == 0);
	CU_ASSERT_FATAL(getsockname(lst, (void *)&laddr, &len) == 0);
	nu_spawn(server, NULL);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL_FATAL(connect(fd, (void *)&laddr, sizeof(laddr)), 0);
	for (int i = 0; i < 100; i++) {
		char out[32], in[32];
		int l = snprintf(out, sizeof(out), "line %d", i);
		CU_ASSERT_EQUAL(write(fd, out, (size_t)l), l);
		struct pollfd p = { .fd = fd, .events = POLLIN };
		CU_ASSERT_EQUAL(poll(&p, 1, 5000), 1);
		CU_ASSERT(p.revents & POLLIN);
		ssize_t got = 0;
		while (got < l) {
			ssize_t n = read(fd, in + got, (size_t)(l - got));
			if (n <= 0)
				break;
			got += n;
		}
		CU_ASSERT(got == l && memcmp(in, out, (size_t)l) == 0);
	}
	CU_ASSERT_EQUAL(shutdown(fd, SHUT_WR), 0);
	nt_wait_alone();
	CU_ASSERT_EQUAL(close(fd), 0);
	CU_ASSERT_EQUAL(close(lst), 0);
}

static void test_tcp(void)
{
	if (hooks_off()) { /* two processes blocking their threads could
			    * share one scheduler: nothing to test here */
		fprintf(stderr, "(not run with NUPROC_HOOKS=0) ");
		return;
	}
	nu_config c;
	nt_config(&c, nt_two(), 1000, 1 << 20);
	CU_ASSERT_EQUAL(nu_start(&c, tcp_main, NULL), 0);
}

/* ------------------------------------------ poll over several fds */

static int two[2][2];

static void late_writer(void *a)
{
	(void)a;
	usleep(20000);
	CU_ASSERT_EQUAL(write(two[1][1], "x", 1), 1);
}

static void do_poll(void *a)
{
	(void)a;
	struct pollfd p[2] = { { .fd = two[0][0], .events = POLLIN },
			       { .fd = two[1][0], .events = POLLIN } };
	CU_ASSERT_EQUAL(poll(p, 2, 5000), 1);
	CU_ASSERT_EQUAL(p[0].revents, 0);
	CU_ASSERT(p[1].revents & POLLIN);
}

static void poll_main(void *a)
{
	(void)a;
	CU_ASSERT_FATAL(pipe(two[0]) == 0 && pipe(two[1]) == 0);
	struct pollfd p[2] = { { .fd = two[0][0], .events = POLLIN },
			       { .fd = two[1][0], .events = POLLIN } };
	CU_ASSERT_EQUAL(poll(p, 2, 15), 0); /* times out */
	if (!hooks_off()) {
		nu_spawn(late_writer, NULL);
		CU_ASSERT(ticks_during(do_poll, NULL) > 100);
	}
	for (int i = 0; i < 2; i++) {
		close(two[i][0]);
		close(two[i][1]);
	}
}

static void test_poll(void)
{
	run1(poll_main);
}

/* ------------------------------------------------ UDP with addresses */

static void udp_main(void *a)
{
	(void)a;
	int s1 = socket(AF_INET, SOCK_DGRAM, 0), s2 = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a1 = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a1);
	CU_ASSERT_FATAL(bind(s1, (void *)&a1, sizeof(a1)) == 0);
	CU_ASSERT_FATAL(getsockname(s1, (void *)&a1, &len) == 0);
	CU_ASSERT_EQUAL(sendto(s2, "dgram", 5, 0, (void *)&a1, sizeof(a1)), 5);
	char buf[16];
	struct sockaddr_in from;
	socklen_t flen = sizeof(from);
	CU_ASSERT_EQUAL(recvfrom(s1, buf, sizeof(buf), 0, (void *)&from, &flen),
			5);
	CU_ASSERT_EQUAL(flen, sizeof(from));
	CU_ASSERT_EQUAL(from.sin_family, AF_INET);
	CU_ASSERT_EQUAL(from.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	close(s1);
	close(s2);
}

static void test_udp(void)
{
	run1(udp_main);
}

/* Outside a process the hooks are the plain calls: libc's results and
 * errno, blocking where libc blocks. */
static void test_outside(void)
{
	int p[2];
	CU_ASSERT_FATAL(pipe(p) == 0);
	char c;
	errno = 0;
	CU_ASSERT_EQUAL(read(-1, &c, 1), -1);
	CU_ASSERT_EQUAL(errno, EBADF);
	CU_ASSERT_EQUAL(write(p[1], "ab", 2), 2);
	CU_ASSERT_EQUAL(read(p[0], &c, 1), 1);
	struct pollfd pf = { .fd = p[0], .events = POLLIN };
	CU_ASSERT_EQUAL(poll(&pf, 1, 0), 1);
	CU_ASSERT_EQUAL(read(p[0], &c, 1), 1);
	CU_ASSERT_EQUAL(poll(&pf, 1, 10), 0); /* times out, as libc's */
	CU_ASSERT_EQUAL(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
	errno = 0;
	CU_ASSERT_EQUAL(read(p[0], &c, 1), -1);
	CU_ASSERT_EQUAL(errno, EAGAIN);
	struct timespec bad = { 0, -1 };
	errno = 0;
	CU_ASSERT_EQUAL(nanosleep(&bad, NULL), -1);
	CU_ASSERT_EQUAL(errno, EINVAL);
	CU_ASSERT_EQUAL(clock_nanosleep(CLOCK_MONOTONIC, 0, &bad, NULL), EINVAL);
	CU_ASSERT_EQUAL(sleep(0), 0);
	CU_ASSERT_EQUAL(usleep(1000), 0);
	CU_ASSERT_EQUAL(close(p[0]), 0);
	CU_ASSERT_EQUAL(close(p[1]), 0);
	errno = 0;
	CU_ASSERT_EQUAL(close(p[1]), -1);
	CU_ASSERT_EQUAL(errno, EBADF);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(1),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	errno = 0;
	CU_ASSERT_EQUAL(connect(s, (void *)&to, sizeof(to)), -1);
	CU_ASSERT_EQUAL(errno, ECONNREFUSED);
	close(s);
}

static CU_TestInfo tests[] = {
	{ "usleep, nanosleep, clock_nanosleep park", test_sleeps },
	{ "read parks; errno; O_NONBLOCK and FIONBIO kept", test_pipe },
	{ "accept, connect, recv, send, poll, close", test_tcp },
	{ "poll over two descriptors", test_poll },
	{ "recvfrom and sendto carry addresses", test_udp },
	{ "outside a process: libc's results and errno", test_outside },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("hooks", tests)
