/* nutest_node.h — private to the test suites that run nodes: a small node
 * config and the common waits. Include after nuproc.h. */
#ifndef NUTEST_NODE_H
#define NUTEST_NODE_H

#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "nuproc.h"

/* The CPUs this process may run on: its affinity mask, as the runtime
 * counts them (a container or taskset may allow fewer than are online).
 * Read before main: a scheduler thread is pinned to one CPU, so a read
 * from inside a process would see one. */
static int nt_cpus_at_start;

__attribute__((constructor)) static void nt_cpus_init(void)
{
	cpu_set_t set;
	nt_cpus_at_start = sched_getaffinity(0, sizeof(set), &set)
				   ? (int)sysconf(_SC_NPROCESSORS_ONLN)
				   : CPU_COUNT(&set);
}

static inline int nt_ncpus(void)
{
	return nt_cpus_at_start;
}

/* Two schedulers where the machine has two CPUs, else one. */
static inline unsigned nt_two(void)
{
	return nt_ncpus() >= 2 ? 2 : 1;
}

/* A node small enough for tests (and for ASan): 64 KiB stacks. */
static inline void nt_config(nu_config *c, unsigned scheds, size_t max_procs,
			     size_t heap)
{
	nu_config_init(c);
	c->schedulers = scheds;
	c->max_procs = max_procs;
	c->stack_size = 64 << 10;
	c->heap_size = heap;
}

/* CLOCK_MONOTONIC in microseconds. */
static inline uint64_t nt_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Spawn fn(arg) bound to scheduler sched, or unbound on a one-CPU
 * machine (where the suites run one scheduler). */
static inline nu_pid nt_on_sched(nu_fn fn, void *arg, int sched)
{
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.scheduler = nt_two() > 1 ? sched : -1;
	return nu_spawn_opt(fn, arg, &o);
}

/* Yield until the caller is the only process left. */
static inline void nt_wait_alone(void)
{
	while (nu_process_count() > 1)
		nu_yield();
}

/* The reason in pid's {'DOWN', Ref, process, Pid, Reason} for ref, or
 * NU_NONE when none comes within timeout ms. */
static inline nu_term nt_down_reason(nu_term ref, nu_pid pid, int64_t timeout)
{
	nu_pattern *pat;
	if (nu_pattern_compile("{'DOWN', R, process, P, Why}", &pat, NULL))
		return NU_NONE;
	nu_term pre[3] = { ref, nu_pid_term(pid), NU_NONE }, vars[3], t;
	nu_clause c = { pat, pre, vars };
	int rc = nu_receive_select(&c, 1, timeout, &t);
	nu_pattern_free(pat);
	return rc == 0 ? vars[2] : NU_NONE;
}

/* The reason in an {'EXIT', From, Why} from `from`, or NU_NONE when none
 * comes within timeout ms. */
static inline nu_term nt_exit_reason(nu_pid from, int64_t timeout)
{
	nu_pattern *pat;
	if (nu_pattern_compile("{'EXIT', F, Why}", &pat, NULL))
		return NU_NONE;
	nu_term pre[2] = { nu_pid_term(from), NU_NONE }, vars[2], t;
	nu_clause c = { pat, pre, vars };
	int rc = nu_receive_select(&c, 1, timeout, &t);
	nu_pattern_free(pat);
	return rc == 0 ? vars[1] : NU_NONE;
}

/* A process body that recurses without bound (512 B a frame) until its
 * stack overflows. */
static inline int nt_recurse(int d)
{
	static volatile int nt_depth_max = 1 << 30; /* unbounded, opaquely */
	volatile char pad[512];
	pad[0] = (char)d;
	pad[511] = (char)d;
	if (d >= nt_depth_max)
		return 0;
	return nt_recurse(d + 1) + pad[0] + pad[511];
}

static inline void nt_overflows(void *a)
{
	(void)a;
	(void)nt_recurse(0); /* volatile frames: not optimised away */
}

/* This OS process's resident bytes. */
static inline long nt_rss(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

/* Bytes the C allocator has handed out and not got back (under ASan, its
 * own count: freed blocks sit in quarantine, outside it), plus the pages
 * of the runtime's record pool (relation records and signals live
 * there). */
static inline long nt_records_bytes(void)
{
	nu_node_stats st;
	return nu_node_info(&st) ? 0 : (long)st.records_bytes;
}
#if defined(__SANITIZE_ADDRESS__)
size_t __sanitizer_get_current_allocated_bytes(void);
static inline long nt_heap_bytes(void)
{
	return (long)__sanitizer_get_current_allocated_bytes() +
	       nt_records_bytes();
}
#else
#include <malloc.h>
static inline long nt_heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();
	return (long)(mi.uordblks + mi.hblkhd) + /* small blocks + mmapped */
	       nt_records_bytes();
}
#endif

/* A process that yields until the _Atomic int at arg is set: it keeps
 * its scheduler's run queue from ever being empty. */
static inline void nt_yielder(void *arg)
{
	_Atomic int *stop = arg;
	while (!atomic_load(stop))
		nu_yield();
}

/* A ping-pong pair that keeps a scheduler busy handing it back and forth
 * (a runnext streak) until *stop is set: nt_ping's arg. */
typedef struct {
	nu_pid pong;
	_Atomic int *stop;
} nt_pair;

/* Answers every pid term with pong; any other term ends it. */
static inline void nt_pong(void *arg)
{
	(void)arg;
	nu_term t;
	while (nu_receive(&t, -1) == 0 && nu_term_type(t) == NU_T_PID)
		nu_send(nu_pid_value(t), nu_atom("pong"));
}

static inline void nt_ping(void *arg)
{
	const nt_pair *pr = arg;
	nu_term t, me = nu_pid_term(nu_self());
	while (!atomic_load(pr->stop)) {
		nu_send(pr->pong, me);
		nu_receive(&t, -1);
	}
	nu_send(pr->pong, nu_atom("stop"));
}

/* Start the pair *pr (which must outlive it) on the caller's scheduler:
 * 0, or a negative errno from a spawn. */
static inline int nt_pair_start(nt_pair *pr, _Atomic int *stop)
{
	pr->stop = stop;
	pr->pong = nu_spawn(nt_pong, NULL);
	if (pr->pong < 0)
		return (int)pr->pong;
	nu_pid ping = nu_spawn(nt_ping, pr);
	return ping < 0 ? (int)ping : 0;
}

#endif
