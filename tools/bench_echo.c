/* bench_echo.c — nuproc-bench's TCP echo scenarios (issue 5): a load
 * client for any echo server, the nuproc echo server, and nuproc's server
 * measured against a raw liburing one.
 *
 *   echo_load HOST:PORT CONNS SECONDS   load an echo server: req/s, p50, p99
 *   echo_server PORT [SECONDS]          the nuproc echo server
 *                                       (examples/echo_server.c), until
 *                                       killed or for SECONDS
 *   echo CONNS [SECONDS]                nuproc's server (one scheduler) and
 *                                       the liburing baseline
 *                                       (baselines/uring_echo.c) in turn, each
 *                                       in a child on CPU 0, the load client
 *                                       on CPU 1; CONNS 0: 1, 100 and 1000
 *
 * The load client measures what ../shared/anchors/echo/echo_load.c does, so
 * its figures compare with RESULTS.md "TCP echo": one thread, epoll, CONNS
 * connections with TCP_NODELAY, exactly one 64-byte message in flight on
 * each (send; read until the whole echo is back; send again), a 0.5 s
 * warm-up, then SECONDS measured. Round trips that complete in the window
 * count (req/s = count / SECONDS); latency is send to last echoed byte
 * read, over every round trip, percentiles by nearest rank; client_cpu is
 * the client's CPU time over the window (near 100%: the client may be the
 * limit). It differs where no figure can: the connections are made in
 * parallel (non-blocking, 10 s deadline) before the clock starts, and a
 * failure (refused, reset, a bad echo) ends the run with a message.
 *
 * echo_load and echo run outside any node (scenario .raw), so with
 * nuproc's libc hooks linked in their calls still go straight to the
 * kernel. echo's servers are forked children on a listening socket made
 * before the fork (the client's connects wait in its backlog, no polling
 * for readiness); a child is killed (SIGKILL) and reaped after its load
 * whatever happened, and dies with this process (PR_SET_PDEATHSIG).
 * server_cpu is the child's CPU time over its life (nuproc's scheduler
 * spins 50 us before sleeping, which counts here).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nuproc.h"

#include "baselines/uring_echo.h"
#include "bench.h"
#include "examples/echo_server.h"

#define EC_MSG 64
#define EC_WARMUP_NS 500000000ull
#define EC_CONNECT_NS 10000000000ull
#define EC_EVENTS 1024

typedef struct ec_target {
	struct sockaddr_storage addr;
	socklen_t len;
	char name[300]; /* HOST:PORT, for messages */
} ec_target;

typedef struct ec_conn {
	int fd;
	int sent, got; /* bytes of the message sent, of its echo read */
	int want_out;  /* EPOLLOUT armed: a send was short */
	uint64_t t0;   /* when the message was sent, ns */
} ec_conn;

typedef struct ec_load {
	const ec_target *to;
	int ep, n;
	ec_conn *c;
	uint32_t *lat; /* ns, one per round trip completed in the window */
	size_t nlat, cap;
	uint64_t t_meas, t_end, t_stop; /* window; when the loop ended */
	double cpu;                     /* client CPU time in it, s */
} ec_load;

/* The message: 64 bytes, no NUL. */
static const char ec_msg[EC_MSG] =
	"nuproc echo load: one 64-byte message in flight per connection..";

/* Print why the run failed; -1. */
static int ec_fail(const ec_load *l, const char *what, int err)
{
	fprintf(stderr, "echo: %s: %s: %s\n", l->to->name, what,
		err ? strerror(err) : "failed");
	return -1;
}

/* User plus system CPU time in ru, s. */
static double ec_cpu_s(const struct rusage *ru)
{
	return (double)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) +
	       (double)(ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1e6;
}

static double ec_self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ec_cpu_s(&ru);
}

/* Room for `need` open files, raising the hard limit too if allowed. */
static int ec_nofile(long need)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -1;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)need)
		return 0;
	rl.rlim_cur = (rlim_t)need;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
		rl.rlim_max = rl.rlim_cur;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		return 0;
	fprintf(stderr, "echo: %ld open files needed: %s (run as root or "
		"lower CONNS)\n", need, strerror(errno));
	return -1;
}

/* Pin the calling thread (and what it forks) to one CPU. */
static void ec_pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		fprintf(stderr, "echo: cannot pin to CPU %d: %s\n", cpu,
			strerror(errno));
}

/* "HOST:PORT" (HOST may be [IPv6]) to *to; 0, or -1 with a message. */
static int ec_resolve(const char *hp, ec_target *to)
{
	const char *colon = strrchr(hp, ':');
	char host[256];
	size_t hl = colon ? (size_t)(colon - hp) : 0;
	snprintf(to->name, sizeof(to->name), "%s", hp);
	if (!colon || hl == 0 || hl >= sizeof(host) || !colon[1]) {
		fprintf(stderr, "echo_load: %s: want HOST:PORT\n", hp);
		return -1;
	}
	memcpy(host, hp, hl);
	host[hl] = 0;
	char *h = host;
	if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') {
		h[hl - 1] = 0;
		h++;
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM }, *ai;
	int rc = getaddrinfo(h, colon + 1, &hints, &ai);
	if (rc) {
		fprintf(stderr, "echo_load: %s: %s\n", hp, gai_strerror(rc));
		return -1;
	}
	memcpy(&to->addr, ai->ai_addr, ai->ai_addrlen);
	to->len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* ------------------------------------------------------ load client */

/* Wait until every connect has finished; switch each to EPOLLIN. */
static int ec_connect_wait(ec_load *l)
{
	struct epoll_event evs[EC_EVENTS];
	uint64_t deadline = now_ns() + EC_CONNECT_NS;
	for (int left = l->n; left > 0;) {
		if (now_ns() >= deadline)
			return ec_fail(l, "connect", ETIMEDOUT);
		int ne = epoll_wait(l->ep, evs, EC_EVENTS, 100);
		if (ne < 0 && errno != EINTR)
			return ec_fail(l, "epoll_wait", errno);
		for (int e = 0; e < ne; e++) {
			ec_conn *c = &l->c[evs[e].data.u32];
			int err = 0;
			socklen_t len = sizeof(err);
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
			if (err)
				return ec_fail(l, "connect", err);
			struct epoll_event ev = { .events = EPOLLIN,
						  .data = evs[e].data };
			if (epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev))
				return ec_fail(l, "epoll_ctl", errno);
			left--;
		}
	}
	return 0;
}

/* Open the connections: TCP_NODELAY, non-blocking, all at once. */
static int ec_connect(ec_load *l)
{
	int one = 1;
	for (int i = 0; i < l->n; i++) {
		int fd = socket(l->to->addr.ss_family,
				SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return ec_fail(l, "socket", errno);
		l->c[i].fd = fd;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, (const struct sockaddr *)&l->to->addr,
			    l->to->len) && errno != EINPROGRESS)
			return ec_fail(l, "connect", errno);
		struct epoll_event ev = { .events = EPOLLOUT,
					  .data.u32 = (uint32_t)i };
		if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev))
			return ec_fail(l, "epoll_ctl", errno);
	}
	return ec_connect_wait(l);
}

static int ec_arm(ec_load *l, int i, int out)
{
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0),
				  .data.u32 = (uint32_t)i };
	l->c[i].want_out = out;
	return epoll_ctl(l->ep, EPOLL_CTL_MOD, l->c[i].fd, &ev)
		       ? ec_fail(l, "epoll_ctl", errno) : 0;
}

/* Send the rest of connection i's message; EPOLLOUT while it is short. */
static int ec_push(ec_load *l, int i)
{
	ec_conn *c = &l->c[i];
	while (c->sent < EC_MSG) {
		ssize_t n = send(c->fd, ec_msg + c->sent,
				 (size_t)(EC_MSG - c->sent), MSG_NOSIGNAL);
		if (n > 0)
			c->sent += (int)n;
		else if (n < 0 && errno == EAGAIN)
			return c->want_out ? 0 : ec_arm(l, i, 1);
		else if (n < 0 && errno != EINTR)
			return ec_fail(l, "send", errno);
	}
	return c->want_out ? ec_arm(l, i, 0) : 0;
}

static int ec_start(ec_load *l, int i, uint64_t t)
{
	l->c[i].sent = l->c[i].got = 0;
	l->c[i].t0 = t;
	return ec_push(l, i);
}

/* A whole echo is back at t: keep its latency if t is in the window. */
static int ec_record(ec_load *l, const ec_conn *c, uint64_t t)
{
	if (t < l->t_meas || t >= l->t_end)
		return 0;
	if (l->nlat == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : (size_t)1 << 20;
		uint32_t *p = realloc(l->lat, cap * sizeof(*p));
		if (!p)
			return ec_fail(l, "latency samples", ENOMEM);
		l->lat = p;
		l->cap = cap;
	}
	uint64_t d = t - c->t0;
	l->lat[l->nlat++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
	return 0;
}

/* Readiness on connection i: the rest of its send, or (some of) its echo,
 * and when the echo is whole, the next message. */
static int ec_event(ec_load *l, const struct epoll_event *ev)
{
	static char buf[4096];
	int i = (int)ev->data.u32;
	ec_conn *c = &l->c[i];
	if ((ev->events & EPOLLOUT) && ec_push(l, i))
		return -1;
	if (!(ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return 0;
	ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (r <= 0)
		return ec_fail(l, r ? "recv" : "closed by the server",
			       r ? errno : 0);
	if ((c->got += (int)r) > c->sent || memcmp(buf, ec_msg + c->got - r,
						   (size_t)r))
		return ec_fail(l, "an echo that is not the message", 0);
	if (c->got < EC_MSG)
		return 0;
	uint64_t t = now_ns();
	if (ec_record(l, c, t))
		return -1;
	return t < l->t_end ? ec_start(l, i, t) : 0;
}

/* Warm-up, then the window. */
static int ec_run(ec_load *l, double secs)
{
	struct epoll_event evs[EC_EVENTS];
	uint64_t t = now_ns();
	double cpu0 = -1;
	l->t_meas = t + EC_WARMUP_NS;
	l->t_end = l->t_meas + (uint64_t)(secs * 1e9);
	for (int i = 0; i < l->n; i++)
		if (ec_start(l, i, t))
			return -1;
	for (;;) {
		int ne = epoll_wait(l->ep, evs, EC_EVENTS, 100);
		if (ne < 0 && errno != EINTR)
			return ec_fail(l, "epoll_wait", errno);
		t = now_ns();
		if (cpu0 < 0 && t >= l->t_meas)
			cpu0 = ec_self_cpu_s();
		if (t >= l->t_end)
			break;
		for (int e = 0; e < ne; e++)
			if (ec_event(l, &evs[e]))
				return -1;
	}
	l->cpu = ec_self_cpu_s() - cpu0;
	l->t_stop = now_ns();
	return 0;
}

static int ec_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* echo_<label>_c<N>: req/s, _p50 and _p99 in us, _client_cpu in %. */
static double ec_report(ec_load *l, const char *label, double secs)
{
	char name[64];
	size_t n = l->nlat, r50 = (n * 50 + 99) / 100, r99 = (n * 99 + 99) / 100;
	double rps = (double)n / secs;
	qsort(l->lat, n, sizeof(*l->lat), ec_cmp_u32);
	snprintf(name, sizeof(name), "echo_%s_c%d", label, l->n);
	emit(name, rps, "req/s");
	snprintf(name, sizeof(name), "echo_%s_c%d_p50", label, l->n);
	emit(name, l->lat[r50 - 1] / 1e3, "us");
	snprintf(name, sizeof(name), "echo_%s_c%d_p99", label, l->n);
	emit(name, l->lat[r99 - 1] / 1e3, "us");
	snprintf(name, sizeof(name), "echo_%s_c%d_client_cpu", label, l->n);
	emit(name, 100.0 * l->cpu / ((double)(l->t_stop - l->t_meas) / 1e9),
	     "%");
	return rps;
}

/* Load `to` with n connections for secs after the warm-up and report
 * under label; req/s, or -1 (with a message) when the run failed. */
static double ec_client(const ec_target *to, int n, double secs,
			const char *label)
{
	ec_load l = { .to = to, .n = n };
	double rps = -1;
	l.c = calloc((size_t)n, sizeof(*l.c));
	l.ep = epoll_create1(EPOLL_CLOEXEC);
	if (!l.c || l.ep < 0) {
		ec_fail(&l, "setup", errno);
		goto out;
	}
	for (int i = 0; i < n; i++)
		l.c[i].fd = -1;
	if (ec_connect(&l) || ec_run(&l, secs))
		goto out;
	if (l.nlat == 0)
		ec_fail(&l, "no round trip completed in the window", 0);
	else
		rps = ec_report(&l, label, secs);
out:
	for (int i = 0; l.c && i < n && l.c[i].fd >= 0; i++)
		close(l.c[i].fd);
	if (l.ep >= 0)
		close(l.ep);
	free(l.c);
	free(l.lat);
	return rps;
}

/* CONNS and SECONDS in range; else a message and exit 2. */
static void ec_check(const char *sc, const long *a)
{
	if (a[0] > 1000000 || a[1] < 1) {
		fprintf(stderr, "%s: want 1 to 1000000 connections and a "
			"positive number of seconds\n", sc);
		_exit(2);
	}
}

/* echo_load HOST:PORT CONNS SECONDS (outside any node). */
void run_echo_load(const long *a)
{
	ec_target to;
	ec_check("echo_load", a);
	if (ec_resolve(bench_text, &to) || ec_nofile(a[0] + 64) ||
	    ec_client(&to, (int)a[0], (double)a[1], "load") < 0)
		_exit(1);
}

/* ------------------------------------------------------ the servers */

/* echo_server PORT [SECONDS]: the example's acceptor in a process of
 * this node; this process waits, then returns (the node stops the server
 * and its connections). SECONDS 0: until killed. */
void run_echo_server(const long *a)
{
	int lfd = a[0] > 65535 ? (errno = EINVAL, -1) : echo_listen((int)a[0]);
	if (lfd < 0) {
		fprintf(stderr, "echo_server: port %ld: %s\n", a[0],
			strerror(errno));
		_exit(1);
	}
	fprintf(stderr, "echo_server: listening on 127.0.0.1:%ld\n", a[0]);
	if (nu_spawn(echo_acceptor, (void *)(intptr_t)lfd) < 0)
		_exit(4);
	nu_term t;
	if (a[1] > 0)
		nu_sleep((uint64_t)a[1] * 1000);
	else
		for (;;)
			if (nu_receive(&t, -1) == 0)
				nu_term_free(t);
}

enum { EC_NUPROC, EC_URING };
static const char *const ec_label[] = { "nuproc", "uring" };

/* A forked child: server `which` on lfd, on CPU 0, until killed. */
static void ec_server_child(int which, int lfd, pid_t parent)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1); /* the parent is gone already */
	ec_pin(0);
	if (which == EC_NUPROC) {
		nu_config cfg;
		nu_config_init(&cfg);
		cfg.schedulers = 1;
		int rc = nu_start(&cfg, echo_acceptor, (void *)(intptr_t)lfd);
		fprintf(stderr, "echo: nuproc server: %s\n",
			rc < 0 ? nu_strerror(rc) : "stopped");
	} else {
		int rc = uring_echo_serve(lfd, NULL);
		fprintf(stderr, "echo: uring server: %s\n",
			rc < 0 ? strerror(-rc) : "stopped");
	}
	_exit(1);
}

/* Kill and reap the server child; emit its CPU share of wall time since
 * t0. 0, or -1 when it had died before the kill. */
static int ec_server_stop(pid_t pid, const char *tag, uint64_t t0)
{
	struct rusage ru;
	int st;
	kill(pid, SIGKILL);
	while (wait4(pid, &st, 0, &ru) < 0)
		if (errno != EINTR)
			return -1;
	char name[64];
	snprintf(name, sizeof(name), "%s_server_cpu", tag);
	emit(name, 100.0 * ec_cpu_s(&ru) / ((double)(now_ns() - t0) / 1e9),
	     "%");
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
		return 0;
	fprintf(stderr, "echo: the %s server died before the end\n", tag);
	return -1;
}

/* Server `which` in a child on CPU 0 under n connections from here;
 * req/s, or -1. The child is killed and reaped whatever happens. */
static double ec_measure(int which, int n, double secs)
{
	ec_target to = { .len = sizeof(struct sockaddr_in) };
	int lfd = uring_echo_listen(0);
	if (lfd < 0 || getsockname(lfd, (struct sockaddr *)&to.addr, &to.len)) {
		fprintf(stderr, "echo: listen: %s\n",
			strerror(lfd < 0 ? -lfd : errno));
		return -1;
	}
	struct sockaddr_in *sin = (struct sockaddr_in *)&to.addr;
	snprintf(to.name, sizeof(to.name), "%s server, 127.0.0.1:%d",
		 ec_label[which], ntohs(sin->sin_port));
	uint64_t t0 = now_ns();
	pid_t parent = getpid(), pid = fork();
	if (pid == 0)
		ec_server_child(which, lfd, parent);
	close(lfd);
	if (pid < 0)
		return -1;
	double rps = ec_client(&to, n, secs, ec_label[which]);
	char tag[32];
	snprintf(tag, sizeof(tag), "echo_%s_c%d", ec_label[which], n);
	return ec_server_stop(pid, tag, t0) ? -1 : rps;
}

/* echo CONNS [SECONDS] (outside any node): nuproc's echo server with one
 * scheduler, then the liburing baseline, each alone on CPU 0 under the
 * load client on CPU 1; echo_ratio_c<N>: nuproc's req/s in % of the
 * baseline's (a percentage: the table prints one decimal). */
void run_echo(const long *a)
{
	int n = (int)a[0];
	double secs = (double)a[1];
	ec_check("echo", a);
	if (ec_nofile(n + 64))
		_exit(1);
	ec_pin(1);
	double nu = ec_measure(EC_NUPROC, n, secs);
	double base = ec_measure(EC_URING, n, secs);
	if (nu > 0 && base > 0) {
		char name[64];
		snprintf(name, sizeof(name), "echo_ratio_c%d", n);
		emit(name, 100.0 * nu / base, "%");
	}
	if (nu < 0 || base < 0)
		_exit(1);
}
