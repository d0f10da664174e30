/* bench_mem.c — nuproc-bench's memory scenarios (issue 4): what the fault
 * path costs per page, what a short-lived process with a real heap costs,
 * and what bulk release does to the latency of the processes around it.
 *
 *   heap_churn N KIB        N processes each touch KIB of heap and exit
 *   fault PAGES BATCH       the fault path per page at batch 1, 16, 64
 *   churn_latency RATE MS ELEMS
 *                           ping-pong latency while RATE processes/s each
 *                           build ELEMS list cells (16 B each) and exit
 *   noise MS                the machine's own stalls over MS ms, the floor
 *                           under churn_latency's p99.9
 *
 * Each scenario also reports a plain first touch of fresh anonymous memory
 * measured in the same run, so the per-page figures can be read as a ratio
 * on this machine, whose page faults are slow and vary run to run.
 * churn_latency mirrors churn_latency in ../shared/anchors (erlang and go):
 * the same pacing, the same histogram, the same output names.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nuproc.h"

#include "bench.h"

#define PAGE 4096L

/* ------------------------------------------------------- heap_churn */

static long churn_kib;

static void heap_toucher(void *arg)
{
	(void)arg;
	size_t len = (size_t)churn_kib << 10;
	char *p = nu_alloc(len);
	if (!p)
		_exit(6);
	for (size_t i = 0; i < len; i += PAGE)
		p[i] = 1;
}

/* heap_churn N KIB: spawn N processes that each allocate KIB from their
 * heap, write one byte per page and exit; at most ~1000 alive at once.
 * Reports ns per process and per page (spawn, faults, exit and the
 * release of the pages included) and the ratio to a plain first touch. */
void run_heap_churn(const long *a)
{
	long n = a[0];
	churn_kib = a[1];
	double plain = first_touch_ns(20000);
	int64_t base = nu_process_count();
	long pages = (churn_kib * 1024 + PAGE - 1) / PAGE;
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++) {
		if (nu_spawn(heap_toucher, NULL) < 0)
			_exit(4);
		if (i % 256 == 255)
			wait_count(base + 1024);
	}
	wait_count(base);
	double ns = (double)(now_ns() - t0);
	emit("heap_churn", ns / n, "ns/proc");
	emit("heap_churn_page", ns / ((double)n * pages), "ns/page");
	emit("first_touch", plain, "ns/page");
	emit("heap_churn_page_ratio", ns / ((double)n * pages) / plain, "x");
}

/* ------------------------------------------------------------ fault */

typedef struct {
	long pages;
	double ns;
} fault_arg;

static void fault_toucher(void *arg)
{
	fault_arg *fa = arg;
	size_t len = (size_t)fa->pages * PAGE;
	char *p = nu_alloc(len);
	if (!p)
		_exit(6);
	uint64_t t0 = now_ns();
	for (size_t i = 0; i < len; i += PAGE)
		p[i] = 1;
	fa->ns += (double)(now_ns() - t0);
}

/* fault PAGES BATCH: 32 processes in turn each touch PAGES fresh heap
 * pages; ns per page of the touch loop alone, with the node's fault batch
 * set to BATCH (the driver runs 1, 16 and 64 when BATCH is 0). Without
 * userfaultfd (NUPROC_UFFD=0) the same loop measures plain faults. */
void run_fault(const long *a)
{
	fault_arg fa = { a[0], 0 };
	double plain = first_touch_ns(20000);
	int64_t base = nu_process_count();
	for (int r = 0; r < 32; r++) {
		if (nu_spawn(fault_toucher, &fa) < 0)
			_exit(4);
		wait_count(base);
	}
	char name[32];
	double per = fa.ns / (32.0 * (double)fa.pages);
	snprintf(name, sizeof(name), "fault_b%ld", a[1]);
	emit(name, per, "ns/page");
	snprintf(name, sizeof(name), "fault_b%ld_ratio", a[1]);
	emit(name, per / plain, "x");
	emit("first_touch", plain, "ns/page");
}

/* ---------------------------------------------------- churn_latency */

/* The anchors' log-linear histogram: exact below 128 ns, then 64 buckets
 * per power of two (<= 1.6% wide); percentiles are bucket midpoints. */
#define NB 2560

static int bucket(int64_t v)
{
	if (v < 128)
		return v < 0 ? 0 : (int)v;
	int s = 64 - __builtin_clzll((uint64_t)v) - 7;
	long i = (long)s * 64 + (long)(v >> s);
	return i >= NB ? NB - 1 : (int)i;
}

static int64_t bucket_value(int i)
{
	if (i < 128)
		return i;
	int s = (i - 64) / 64;
	return ((int64_t)(i - s * 64) << s) + (1LL << (s - 1));
}

static int64_t percentile(const uint64_t *h, uint64_t n, uint64_t per_mille)
{
	uint64_t rank = (n * per_mille + 999) / 1000, cum = 0;
	if (rank < 1)
		rank = 1;
	for (int i = 0; i < NB; i++)
		if ((cum += h[i]) >= rank)
			return bucket_value(i);
	return -1;
}

static long churn_elems;
static _Atomic long churn_done, churn_spawned;
static _Atomic int churn_stop, churn_driver_done;

/* A worker: ELEMS cons cells of small integers, live until it exits. */
static void churn_work(void *arg)
{
	(void)arg;
	nu_term l = NU_NIL;
	for (long i = churn_elems; i > 0; i--)
		l = nu_cons(nu_int(i), l);
	long len = 0;
	for (; l != NU_NIL; l = nu_list_tail(l))
		len++;
	if (len != churn_elems)
		_exit(7);
	atomic_fetch_add_explicit(&churn_done, 1, memory_order_relaxed);
}

typedef struct {
	long rate;
	uint64_t t0, dur;
} churn_arg;

/* The driver: every 1 ms, spawn the deficit to reach RATE/s. */
static void churn_driver(void *arg)
{
	const churn_arg *ca = arg;
	long spawned = 0;
	while (!atomic_load(&churn_stop)) {
		uint64_t el = now_ns() - ca->t0;
		if (el > ca->dur)
			el = ca->dur;
		long target = (long)(el * (uint64_t)ca->rate / 1000000000u);
		for (; spawned < target; spawned++)
			if (nu_spawn(churn_work, NULL) < 0)
				_exit(4);
		nu_sleep(1);
	}
	atomic_store(&churn_spawned, spawned);
	atomic_store(&churn_driver_done, 1);
}

static void churn_pong(void *arg)
{
	nu_pid ping = *(nu_pid *)arg;
	nu_term pong = nu_atom("pong"), want = nu_atom("ping"), t;
	while (!nu_receive(&t, -1) && t == want)
		nu_send(ping, pong);
}

static void ping_once(nu_pid pong, nu_term ping)
{
	nu_term t;
	nu_send(pong, ping);
	if (nu_receive(&t, -1))
		_exit(5);
}

static void churn_report(const char *tag, const uint64_t *h, uint64_t n,
			 int64_t max, double secs, long rate)
{
	static const char *pct[] = { "p50", "p99", "p999" };
	static const uint64_t pm[] = { 500, 990, 999 };
	char name[64];
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "%s_%s", tag, pct[i]);
		emit(name, (double)percentile(h, n, pm[i]), "ns");
	}
	snprintf(name, sizeof(name), "%s_max", tag);
	emit(name, (double)max, "ns");
	snprintf(name, sizeof(name), "%s_rtts", tag);
	emit(name, (double)n / secs, "rtt/s");
	if (!rate)
		return;
	snprintf(name, sizeof(name), "%s_spawned", tag);
	emit(name, (double)atomic_load(&churn_spawned) / secs, "proc/s");
	snprintf(name, sizeof(name), "%s_completed", tag);
	emit(name, (double)atomic_load(&churn_done) / secs, "proc/s");
}

/* noise MS: the machine's own stalls, for reading churn_latency's tail.
 * A loop that calls nothing in the runtime times ~100 ns of arithmetic
 * per sample, as churn_latency times a round trip, for MS ms: whatever
 * lengthens a sample here (interrupts, the hypervisor taking the CPU) is
 * not nuproc's. noise_stalls: samples of 1 us or more per second; where
 * they exceed a thousandth of churn_latency's round trips per second,
 * its p99.9 is the machine's, not the runtime's. */
void run_noise(const long *a)
{
	static uint64_t h[NB];
	memset(h, 0, sizeof(h));
	volatile uint64_t x = 0;
	uint64_t n = 0, stalls = 0, t0 = now_ns(), t1 = t0;
	uint64_t end = t0 + (uint64_t)a[0] * 1000000u;
	while (t1 < end) {
		uint64_t s0 = now_ns();
		for (int i = 0; i < 40; i++)
			x += (uint64_t)i;
		t1 = now_ns();
		int64_t d = (int64_t)(t1 - s0);
		h[bucket(d)]++;
		stalls += d >= 1000;
		n++;
	}
	double secs = (double)(t1 - t0) / 1e9;
	emit("noise_p50", (double)percentile(h, n, 500), "ns");
	emit("noise_p999", (double)percentile(h, n, 999), "ns");
	emit("noise_samples", (double)n / secs, "1/s");
	emit("noise_stalls", (double)stalls / secs, "1/s");
}

/* churn_latency RATE MS ELEMS: this process and a pong process exchange
 * an atom for MS ms, recording every round trip; meanwhile a driver
 * starts RATE workers per second (RATE 0: no churn). */
void run_churn_latency(const long *a)
{
	static uint64_t h[NB];
	nu_pid self = nu_self(), pong = nu_spawn(churn_pong, &self);
	nu_term ping = nu_atom("ping");
	churn_elems = a[2];
	if (pong < 0)
		_exit(4);
	for (int i = 0; i < 10000; i++)
		ping_once(pong, ping);
	churn_arg ca = { a[0], now_ns(), (uint64_t)a[1] * 1000000u };
	if (ca.rate && nu_spawn(churn_driver, &ca) < 0)
		_exit(4);
	uint64_t n = 0, t1 = ca.t0, end = ca.t0 + ca.dur;
	int64_t max = 0;
	while (t1 < end) {
		uint64_t t0 = now_ns();
		ping_once(pong, ping);
		t1 = now_ns();
		int64_t d = (int64_t)(t1 - t0);
		h[bucket(d)]++;
		max = d > max ? d : max;
		n++;
	}
	double secs = (double)(t1 - ca.t0) / 1e9;
	atomic_store(&churn_stop, 1);
	while (ca.rate && !atomic_load(&churn_driver_done))
		nu_sleep(1);
	char tag[48];
	if (ca.rate)
		snprintf(tag, sizeof(tag), "churn_latency_r%ldk", ca.rate / 1000);
	else
		snprintf(tag, sizeof(tag), "churn_latency_base");
	churn_report(tag, h, n, max, secs, ca.rate);
	nu_send(pong, nu_atom("stop"));
}
