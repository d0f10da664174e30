/* nuproc-bench — nuproc's benchmark binary.
 *
 *   nuproc-bench [options]                 the default suite
 *   nuproc-bench [options] SCENARIO [ARGS]
 *
 * Options: --schedulers K, --nodes 0,1,..., --reps R (default 5),
 * --json (one JSON object per result per line instead of a table).
 *
 * Each run of a scenario happens in a fresh child OS process with its own
 * node, so resident-memory figures start from a clean slate and one run
 * cannot warm the next (a .raw scenario's child has no node: the echo
 * load client, and `echo`, which starts its servers in children of its
 * own). Runs report "name value unit" records through a pipe; the parent
 * prints the median, min and max over the runs. The workloads mirror
 * ../shared/anchors (BEAM and Go) exactly where a scenario of the same
 * name exists there; see each scenario's comment. The echo scenarios
 * (bench_echo.c) are not in the default suite.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nuproc.h"

#include "bench.h"

/* Private headers: `switch` measures the bare context switch for its
 * ratio and parks its main process with the runtime's own park. */
#include "ctx.h"
#include "runtime/proc.h"
#include "runtime/sched.h"

#define MAX_ARGS 4
#define MAX_RECS 64

typedef struct scenario {
	const char *name;
	void (*run)(const long *args);
	int nargs;
	long dflt[MAX_ARGS];
	const char *usage;
	/* Argument sweep_arg (default the first) at 0 runs the scenario once
	 * per value here. */
	long sweep[4];
	int sweep_arg;
	/* The first argument may be 0 (otherwise it must be positive). */
	int zero_ok;
	/* Adjusts the node's config from the arguments (may be NULL). */
	void (*config)(nu_config *cfg, const long *args);
	/* The run happens in the child without a node (a load client, or a
	 * scenario that starts its nodes in children of its own). */
	int raw;
	/* One run whatever --reps says (a server that runs until killed). */
	int once;
	/* Left out of the default suite. */
	int manual;
	/* The first argument is a string (HOST:PORT), left in bench_text;
	 * the numbers follow it. */
	int text_arg;
} scenario;

static int out_fd = -1;
static long g_args[MAX_ARGS];
static const scenario *g_sc;
const char *bench_text;

uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Report one figure from inside a run. */
void emit(const char *name, double value, const char *unit)
{
	char line[160];
	int n = snprintf(line, sizeof(line), "%s %.6f %s\n", name, value, unit);
	if (write(out_fd, line, (size_t)n) != n)
		_exit(3);
}

void wait_count(int64_t target)
{
	while (nu_process_count() > target)
		nu_yield();
}

static void noop(void *arg) { (void)arg; }

/* spawn_exit N: spawn N processes that exit at once; time until all are
 * gone (anchors: spawn_exit, spawn_exit_loop_only). */
static void run_spawn_exit(const long *a)
{
	long n = a[0];
	int64_t base = nu_process_count();
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		if (nu_spawn(noop, NULL) < 0)
			_exit(4);
	uint64_t t1 = now_ns();
	wait_count(base);
	uint64_t t2 = now_ns();
	emit("spawn_exit_loop_only", (double)(t1 - t0) / n, "ns/proc");
	emit("spawn_exit", (double)(t2 - t0) / n, "ns/proc");
}

/* A compiled pattern and spawn options that monitor the child, writing
 * its reference to *ref (the setup of the spawn_monitor scenarios). */
static nu_pattern *monitor_setup(const char *pattern, nu_spawn_opts *o,
				 nu_term *ref)
{
	nu_pattern *pat;
	if (nu_pattern_compile(pattern, &pat, NULL))
		_exit(4);
	nu_spawn_opts_init(o);
	o->monitor_ref = ref;
	return pat;
}

/* spawn_wait_seq N: spawn_monitor one, wait for its DOWN, repeat
 * (anchors: spawn_wait_seq; BEAM: spawn_monitor + receive {'DOWN', R, ..},
 * Go: a channel). */
static void run_spawn_wait_seq(const long *a)
{
	long n = a[0];
	nu_term ref, pre[1], vars[1], t;
	nu_spawn_opts o;
	nu_pattern *pat = monitor_setup("{'DOWN', R, _, _, _}", &o, &ref);
	nu_clause c = { pat, pre, vars };
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		if (nu_spawn_opt(noop, NULL, &o) < 0)
			_exit(4);
		pre[0] = ref;
		if (nu_receive_select(&c, 1, -1, &t) != 0)
			_exit(5);
		nu_term_free(t);
		nu_term_free(ref);
	}
	emit("spawn_wait_seq", (double)(now_ns() - t0) / n, "ns/proc");
	nu_pattern_free(pat);
}

/* spawn_wait_poll N: spawn one, yield until its pid is dead, repeat: the
 * same life cycle without the monitor and the DOWN message (how
 * spawn_wait_seq was measured before monitors existed). */
static void run_spawn_wait_poll(const long *a)
{
	long n = a[0];
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		nu_pid pid = nu_spawn(noop, NULL);
		if (pid < 0)
			_exit(4);
		while (nu_is_alive(pid) == 1)
			nu_yield();
	}
	emit("spawn_wait_poll", (double)(now_ns() - t0) / n, "ns/proc");
}

/* spawn_monitor_all N: spawn_monitor N processes that exit at once, then
 * collect the N DOWNs (anchors: spawn_monitor_all). */
static void run_spawn_monitor_all(const long *a)
{
	long n = a[0];
	nu_term ref, t;
	nu_spawn_opts o;
	nu_pattern *pat = monitor_setup("{'DOWN', _, _, _, _}", &o, &ref);
	nu_clause c = { pat, NULL, NULL };
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		if (nu_spawn_opt(noop, NULL, &o) < 0)
			_exit(4);
		nu_term_free(ref);
	}
	for (long i = 0; i < n; i++) {
		if (nu_receive_select(&c, 1, -1, &t) != 0)
			_exit(5);
		nu_term_free(t);
	}
	emit("spawn_monitor_all", (double)(now_ns() - t0) / n, "ns/proc");
	nu_pattern_free(pat);
}

/* Resident bytes and page-table bytes of this OS process. */
static void mem_now(long *rss, long *pte)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	*rss = *pte = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "VmRSS:", 6))
			*rss = atol(line + 6) * 1024;
		else if (!strncmp(line, "VmPTE:", 6))
			*pte = atol(line + 6) * 1024;
	}
	fclose(f);
}

static _Atomic long idle_started;

static void idler(void *arg)
{
	(void)arg;
	nu_term t;
	atomic_fetch_add_explicit(&idle_started, 1, memory_order_relaxed);
	nu_receive(&t, -1); /* blocked in receive until the node stops */
}

/* First touch of fresh anonymous pages, ns per page: what every page a
 * benchmark makes resident costs on this machine, in this run (the VM's
 * page faults are slow and vary run to run; anchors: pagefault). */
double first_touch_ns(long pages)
{
	size_t len = (size_t)pages * 4096;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	madvise(p, len, MADV_NOHUGEPAGE);
	uint64_t t0 = now_ns();
	for (long i = 0; i < pages; i++)
		p[(size_t)i * 4096] = 1;
	double ns = (double)(now_ns() - t0) / pages;
	munmap(p, len);
	return ns;
}

/* idle N: N processes parked; time until all have run and parked, and
 * resident bytes per process from the OS (anchors: idleNk_*). */
static void run_idle(const long *a)
{
	long n = a[0], rss0, pte0, rss1, pte1;
	char tag[32];
	emit("first_touch", first_touch_ns(20000), "ns/page");
	mem_now(&rss0, &pte0);
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		if (nu_spawn(idler, NULL) < 0)
			_exit(4);
	while (atomic_load(&idle_started) < n)
		nu_yield();
	uint64_t t1 = now_ns();
	mem_now(&rss1, &pte1);
	snprintf(tag, sizeof(tag), "idle%ldk", n / 1000);
	char name[64];
	snprintf(name, sizeof(name), "%s_spawn_time", tag);
	emit(name, (double)(t1 - t0) / 1e6, "ms");
	snprintf(name, sizeof(name), "%s_spawn", tag);
	emit(name, (double)(t1 - t0) / n, "ns/proc");
	snprintf(name, sizeof(name), "%s_rss_delta", tag);
	emit(name, (double)(rss1 - rss0) / n, "B/proc");
	snprintf(name, sizeof(name), "%s_pagetable_delta", tag);
	emit(name, (double)(pte1 - pte0) / n, "B/proc");
	snprintf(name, sizeof(name), "%s_rss_total", tag);
	emit(name, (double)rss1 / 1048576.0, "MiB");
}

static _Atomic long yielders_left;
static nu__proc *yield_waiter;

static void yielder(void *arg)
{
	long n = *(long *)arg;
	for (long i = 0; i < n; i++)
		nu_yield();
	if (atomic_fetch_sub(&yielders_left, 1) == 1)
		nu__proc_wake(yield_waiter);
}

/* The bare switch: two raw contexts bouncing, no scheduler. */
static void *bare_main_sp, *bare_peer_sp;
static void bare_entry(void *arg, void *p)
{
	(void)arg;
	(void)p;
	for (;;)
		nu__ctx_switch(&bare_peer_sp, bare_main_sp, NULL);
}

static double bare_switch_ns(long n)
{
	static char stack[64 << 10] __attribute__((aligned(16)));
	bare_peer_sp = nu__ctx_make(stack + sizeof(stack), bare_entry, NULL);
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		nu__ctx_switch(&bare_main_sp, bare_peer_sp, NULL);
	return (double)(now_ns() - t0) / (2.0 * n);
}

/* Time n yields by each of two processes spawned with options o; ns per
 * yield. The main process parks until both are done, so only the two
 * yielders take turns. */
static double yield_pair(long n, const nu_spawn_opts *o)
{
	yield_waiter = nu__sched_self()->current;
	atomic_store(&yielders_left, 2);
	uint64_t t0 = now_ns();
	if (nu_spawn_opt(yielder, &n, o) < 0 || nu_spawn_opt(yielder, &n, o) < 0)
		_exit(4);
	while (atomic_load(&yielders_left))
		nu__proc_park(nu__sched_self());
	return (double)(now_ns() - t0) / (2.0 * n);
}

/* switch N: two processes bound to one scheduler yield to each other N
 * times each; ns per yield (one switch each), against the bare switch
 * measured in the same run. switch_unbound: the same pair without
 * affinity (they go through the stealable run queue, and with several
 * schedulers may be stolen apart). */
static void run_switch(const long *a)
{
	long n = a[0];
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	double bare = bare_switch_ns(n);
	double unbound = yield_pair(n, &o);
	o.scheduler = nu_scheduler_id();
	double per = yield_pair(n, &o);
	emit("switch", per, "ns/yield");
	emit("switch_bare", bare, "ns/switch");
	emit("switch_ratio", per / bare, "x");
	emit("switch_unbound", unbound, "ns/yield");
}

/* pingpong N: a round trip {ping, Self} -> pong between two processes,
 * after 1000 warm-up trips (anchors: pingpong). */
static void ponger(void *arg)
{
	(void)arg;
	nu_term pong = nu_atom("pong");
	for (;;) {
		nu_term t;
		if (nu_receive(&t, -1))
			_exit(5);
		if (nu_term_type(t) != NU_T_TUPLE)
			return;
		nu_send(nu_pid_value(nu_tuple_elem(t, 1)), pong);
		nu_term_free(t);
	}
}

static void ping_n(nu_pid pong, long n)
{
	nu_term ping = nu_tuple(2, nu_atom("ping"), nu_pid_term(nu_self()));
	for (long i = 0; i < n; i++) {
		nu_term t;
		nu_send(pong, ping);
		if (nu_receive(&t, -1))
			_exit(5);
	}
}

/* --cross: the two processes are bound to two different schedulers. */
static int cross;

typedef struct {
	nu_pid pong, parent;
	long n;
	double ns;
} pinger_arg;

static void pinger(void *arg)
{
	pinger_arg *pa = arg;
	ping_n(pa->pong, 1000);
	uint64_t t0 = now_ns();
	ping_n(pa->pong, pa->n);
	pa->ns = (double)(now_ns() - t0) / pa->n;
	nu_send(pa->parent, nu_atom("done"));
}

static void run_pingpong(const long *a)
{
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	pinger_arg pa = { 0, nu_self(), a[0], 0 };
	if (cross) /* ping on one scheduler, pong on another (-EINVAL when
		    * there is only one) */
		o.scheduler = 1;
	if ((pa.pong = nu_spawn_opt(ponger, NULL, &o)) < 0)
		_exit(4);
	if (cross) {
		o.scheduler = 0;
		nu_term t;
		if (nu_spawn_opt(pinger, &pa, &o) < 0 || nu_receive(&t, -1))
			_exit(4);
	} else {
		pinger(&pa); /* here: the same scheduler as pong */
		nu_term t;
		nu_receive(&t, -1);
	}
	emit(cross ? "pingpong_cross" : "pingpong", pa.ns, "ns/rtt");
	nu_send(pa.pong, nu_atom("stop"));
}

/* fanin S K: S processes send K messages {msg, K} each to this one, which
 * takes them with a selective receive on {msg, _} (anchors: fanin). */
static nu_pid fan_sink;
static long fan_k;

static void fan_sender(void *arg)
{
	(void)arg;
	nu_term tag = nu_atom("msg");
	for (long k = fan_k; k > 0; k--) {
		nu_term m = nu_tuple(2, tag, nu_int(k));
		if (nu_send(fan_sink, m))
			_exit(5);
		nu_term_free(m);
	}
}

static void run_fanin(const long *a)
{
	long s = a[0], k = a[1];
	nu_pattern *pat;
	if (nu_pattern_compile("{msg, _}", &pat, NULL))
		_exit(4);
	nu_clause c = { pat, NULL, NULL };
	fan_sink = nu_self();
	fan_k = k;
	uint64_t t0 = now_ns();
	for (long i = 0; i < s; i++)
		if (nu_spawn(fan_sender, NULL) < 0)
			_exit(4);
	for (long i = s * k; i > 0; i--) {
		nu_term t;
		if (nu_receive_select(&c, 1, -1, &t) != 0)
			_exit(5);
		nu_term_free(t);
	}
	double ns = (double)(now_ns() - t0);
	emit("fanin", (double)(s * k) / (ns / 1e9), "msg/s");
	nu_pattern_free(pat);
}

/* ring P LAPS: P processes (this one included) pass a token around LAPS
 * times after one warm-up lap (anchors: ring). */
static nu_pid *ring_next;

static void ring_node(void *arg)
{
	nu_pid next = ring_next[(long)arg];
	for (;;) {
		nu_term t;
		if (nu_receive(&t, -1))
			_exit(5);
		nu_send(next, t);
		if (t == nu_int(-1))
			return;
	}
}

static void ring_rounds(nu_pid head, long laps)
{
	for (long i = 0; i < laps; i++) {
		nu_term t;
		nu_send(head, nu_int(i));
		if (nu_receive(&t, -1))
			_exit(5);
	}
}

static void run_ring(const long *a)
{
	long n = a[0], laps = a[1];
	ring_next = calloc((size_t)n, sizeof(nu_pid));
	if (!ring_next)
		_exit(4);
	ring_next[n - 1] = nu_self();
	for (long i = n - 2; i >= 0; i--)
		if ((ring_next[i] = nu_spawn(ring_node, (void *)(i + 1))) < 0)
			_exit(4);
	nu_pid head = ring_next[0];
	ring_rounds(head, 1);
	uint64_t t0 = now_ns();
	ring_rounds(head, laps);
	double ns = (double)(now_ns() - t0);
	char name[64];
	snprintf(name, sizeof(name), "ring%ldk", n / 1000);
	emit(name, (double)n * laps / (ns / 1e9), "msg/s");
	snprintf(name, sizeof(name), "ring%ldk_hop", n / 1000);
	emit(name, ns / ((double)n * laps), "ns/msg");
	nu_term t;
	nu_send(head, nu_int(-1));
	nu_receive(&t, -1);
}

/* selrecv J K: selective receive with J non-matching messages queued:
 * without a reference the receive scans the queue; with a fresh reference
 * it starts at the receive marker (anchors: selrecv). */
static nu_pattern *sel_pat;

static void sel_loop(long k)
{
	nu_pid me = nu_self();
	nu_term pre[1], vars[1], t;
	nu_clause c = { sel_pat, pre, vars };
	for (; k > 0; k--) {
		nu_term m = nu_tuple(2, nu_atom("match"), nu_int(k));
		if (nu_send(me, m))
			_exit(5);
		nu_term_free(m); /* the receiver has its own copy */
		pre[0] = nu_int(k);
		if (nu_receive_select(&c, 1, -1, &t) != 0)
			_exit(5);
		nu_term_free(t);
	}
}

static void ref_loop(nu_pattern *pat, long k)
{
	nu_pid me = nu_self();
	nu_term pre[2], vars[2], t;
	nu_clause c = { pat, pre, vars };
	pre[1] = NU_NONE;
	for (; k > 0; k--) {
		nu_term r = nu_make_ref(), m = nu_tuple(2, r, nu_int(k));
		if (nu_send(me, m))
			_exit(5);
		nu_term_free(m);
		pre[0] = r;
		if (nu_receive_select(&c, 1, -1, &t) != 0)
			_exit(5);
		nu_term_free(t);
		nu_term_free(r);
	}
}

static void run_selrecv(const long *a)
{
	long j = a[0], k = a[1], ks = k / 100 > 0 ? k / 100 : 1;
	nu_pattern *ref_pat;
	if (nu_pattern_compile("{match, K}", &sel_pat, NULL) ||
	    nu_pattern_compile("{R, _}", &ref_pat, NULL))
		_exit(4);
	sel_loop(1000);
	ref_loop(ref_pat, 1000);
	uint64_t t0 = now_ns();
	sel_loop(k);
	uint64_t t1 = now_ns();
	ref_loop(ref_pat, k);
	uint64_t t2 = now_ns();
	emit("selrecv_empty_noref", (double)(t1 - t0) / k, "ns/recv");
	emit("selrecv_empty_ref", (double)(t2 - t1) / k, "ns/recv");
	nu_pid me = nu_self();
	for (long i = j; i > 0; i--)
		nu_send(me, nu_tuple(2, nu_atom("junk"), nu_int(i)));
	t0 = now_ns();
	sel_loop(ks);
	t1 = now_ns();
	ref_loop(ref_pat, k);
	t2 = now_ns();
	char name[64];
	snprintf(name, sizeof(name), "selrecv_%ldkqueued_noref", j / 1000);
	emit(name, (double)(t1 - t0) / ks, "ns/recv");
	snprintf(name, sizeof(name), "selrecv_%ldkqueued_ref", j / 1000);
	emit(name, (double)(t2 - t1) / k, "ns/recv");
}

static void config_fault(nu_config *cfg, const long *args)
{
	cfg->fault_batch = (unsigned)args[1];
}

#define SCEN(n, f, k, u, ...) \
	{ .name = n, .run = f, .nargs = k, .usage = u, .dflt = { __VA_ARGS__ } }

static const scenario scenarios[] = {
	SCEN("spawn_exit", run_spawn_exit, 1, "N", 1000000),
	SCEN("spawn_wait_seq", run_spawn_wait_seq, 1, "N", 1000000),
	SCEN("spawn_wait_poll", run_spawn_wait_poll, 1, "N", 1000000),
	SCEN("spawn_monitor_all", run_spawn_monitor_all, 1, "N", 1000000),
	SCEN("idle", run_idle, 1, "N", 100000),
	SCEN("switch", run_switch, 1, "N", 10000000),
	SCEN("pingpong", run_pingpong, 1, "N", 1000000),
	SCEN("fanin", run_fanin, 2, "SENDERS MSGS", 1000, 1000),
	SCEN("ring", run_ring, 2, "P LAPS", 10000, 100),
	SCEN("selrecv", run_selrecv, 2, "QUEUED N", 10000, 100000),
	SCEN("heap_churn", run_heap_churn, 2, "N KIB", 100000, 64),
	SCEN("call", run_call, 1, "N", 1000000),
	SCEN("cast", run_cast, 1, "N", 1000000),
	SCEN("sup_restart", run_sup_restart, 1, "N", 10000),
	{ .name = "fault", .run = run_fault, .nargs = 2, .dflt = { 2048, 0 },
	  .usage = "PAGES BATCH", .sweep = { 1, 16, 64 }, .sweep_arg = 1,
	  .config = config_fault },
	{ .name = "churn_latency", .run = run_churn_latency, .nargs = 3,
	  .dflt = { 5000, 2000, 4096 }, .usage = "RATE MS ELEMS", .zero_ok = 1 },
	SCEN("noise", run_noise, 1, "MS", 2000),
	{ .name = "echo_load", .run = run_echo_load, .nargs = 2,
	  .dflt = { 100, 5 }, .usage = "HOST:PORT CONNS SECONDS",
	  .sweep = { 1, 100, 1000 }, .text_arg = 1, .raw = 1, .manual = 1 },
	{ .name = "echo_server", .run = run_echo_server, .nargs = 2,
	  .usage = "PORT [SECONDS]", .once = 1, .manual = 1 },
	{ .name = "echo", .run = run_echo, .nargs = 2, .dflt = { 0, 5 },
	  .usage = "CONNS [SECONDS]", .sweep = { 1, 100, 1000 }, .raw = 1,
	  .manual = 1 },
};
#define NSCEN (sizeof(scenarios) / sizeof(scenarios[0]))

/* ------------------------------------------------------------ driver */

typedef struct opts {
	nu_config cfg;
	int nodes[64];
	int reps;
	int json;
} opts;

typedef struct rec {
	char name[64];
	char unit[16];
	double v[64];
	int n;
} rec;

static void bench_main(void *arg)
{
	(void)arg;
	g_sc->run(g_args);
}

/* One run in a child process; appends its records to recs. */
static int run_once(const opts *o, const scenario *sc, const long *args,
		    rec *recs, int *nrecs)
{
	int fds[2];
	if (pipe(fds))
		return -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		close(fds[0]);
		out_fd = fds[1];
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the driver */
		if (sc->raw) {
			sc->run(args);
			_exit(0);
		}
		g_sc = sc;
		memcpy(g_args, args, sizeof(g_args));
		nu_config cfg = o->cfg;
		if (sc->config)
			sc->config(&cfg, args);
		int rc = nu_start(&cfg, bench_main, NULL);
		if (rc != 0)
			fprintf(stderr, "nuproc-bench: %s: %s\n", sc->name,
				rc < 0 ? nu_strerror(rc) : "main process failed");
		_exit(rc != 0);
	}
	close(fds[1]);
	FILE *f = fdopen(fds[0], "r");
	char name[64], unit[16];
	double v;
	while (f && fscanf(f, "%63s %lf %15s", name, &v, unit) == 3) {
		int i = 0;
		while (i < *nrecs && strcmp(recs[i].name, name))
			i++;
		if (i == *nrecs && *nrecs < MAX_RECS) {
			memset(&recs[i], 0, sizeof(recs[i]));
			snprintf(recs[i].name, sizeof(recs[i].name), "%s", name);
			snprintf(recs[i].unit, sizeof(recs[i].unit), "%s", unit);
			(*nrecs)++;
		}
		if (i < *nrecs && recs[i].n < 64)
			recs[i].v[recs[i].n++] = v;
	}
	if (f)
		fclose(f);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void print_rec(const opts *o, const scenario *sc, rec *r)
{
	qsort(r->v, (size_t)r->n, sizeof(double), cmp_double);
	double med = r->n % 2 ? r->v[r->n / 2]
			      : (r->v[r->n / 2 - 1] + r->v[r->n / 2]) / 2;
	unsigned k = o->cfg.schedulers;
	if (o->json)
		printf("{\"name\":\"%s\",\"value\":%.1f,\"unit\":\"%s\","
		       "\"min\":%.1f,\"max\":%.1f,\"runs\":%d,"
		       "\"scenario\":\"%s\",\"schedulers\":%u}\n",
		       r->name, med, r->unit, r->v[0], r->v[r->n - 1], r->n,
		       sc->name, k);
	else
		printf("%-28s %12.1f %12.1f %12.1f  %-9s %d\n", r->name, med,
		       r->v[0], r->v[r->n - 1], r->unit, r->n);
	fflush(stdout);
}

static int run_scenario(const opts *o, const scenario *sc, const long *args)
{
	long swept[MAX_ARGS];
	if (sc->sweep[0] && args[sc->sweep_arg] == 0) {
		int failed = 0;
		memcpy(swept, args, sizeof(swept));
		for (int i = 0; i < 4 && sc->sweep[i]; i++) {
			swept[sc->sweep_arg] = sc->sweep[i];
			failed |= run_scenario(o, sc, swept);
		}
		return failed;
	}
	rec recs[MAX_RECS];
	int nrecs = 0, failed = 0;
	for (int i = 0; i < (sc->once ? 1 : o->reps); i++)
		if (run_once(o, sc, args, recs, &nrecs))
			failed = 1;
	for (int i = 0; i < nrecs; i++)
		print_rec(o, sc, &recs[i]);
	if (failed)
		fprintf(stderr, "nuproc-bench: %s: a run failed\n", sc->name);
	return failed;
}

static void usage(void)
{
	fprintf(stderr, "usage: nuproc-bench [--schedulers K] [--nodes LIST]"
			" [--reps R] [--json] [--cross] [SCENARIO [ARGS]]\n"
			"--cross: pingpong across two schedulers\nscenarios:");
	for (size_t i = 0; i < NSCEN; i++)
		fprintf(stderr, " %s %s;", scenarios[i].name, scenarios[i].usage);
	fprintf(stderr, "\n");
	exit(2);
}

static int parse_nodes(opts *o, const char *list)
{
	unsigned n = 0;
	for (const char *p = list; *p && n < 64;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p || v < 0)
			return -1;
		o->nodes[n++] = (int)v;
		p = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return -1;
	}
	o->cfg.nodes = o->nodes;
	o->cfg.nnodes = n;
	return n ? 0 : -1;
}

static int parse_opts(opts *o, int argc, char **argv)
{
	int i = 1;
	nu_config_init(&o->cfg);
	o->reps = 5;
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--json"))
			o->json = 1;
		else if (!strcmp(argv[i], "--cross"))
			cross = 1;
		else if (!strcmp(argv[i], "--schedulers") && i + 1 < argc)
			o->cfg.schedulers = (unsigned)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
			o->reps = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--nodes") && i + 1 < argc) {
			if (parse_nodes(o, argv[++i]))
				usage();
		} else
			usage();
	}
	if (o->reps < 1 || o->reps > 64)
		usage();
	return i;
}

int main(int argc, char **argv)
{
	static opts o;
	int i = parse_opts(&o, argc, argv);
	if (!o.json)
		printf("%-28s %12s %12s %12s  %-9s %s\n", "name", "median", "min",
		       "max", "unit", "runs");
	if (i == argc) { /* the default suite */
		int failed = 0;
		for (size_t k = 0; k < NSCEN; k++)
			if (!scenarios[k].manual)
				failed |= run_scenario(&o, &scenarios[k],
						       scenarios[k].dflt);
		return failed;
	}
	for (size_t k = 0; k < NSCEN; k++) {
		const scenario *sc = &scenarios[k];
		if (strcmp(argv[i], sc->name))
			continue;
		long args[MAX_ARGS];
		memcpy(args, sc->dflt, sizeof(args));
		if (sc->text_arg && (bench_text = argv[++i]) == NULL)
			usage();
		for (int j = 0; j < sc->nargs && i + 1 + j < argc; j++)
			args[j] = atol(argv[i + 1 + j]);
		int sweep0 = sc->sweep[0] && sc->sweep_arg == 0;
		if (args[0] < 0 || (args[0] == 0 && !sc->zero_ok && !sweep0))
			usage();
		return run_scenario(&o, sc, args);
	}
	usage();
}
