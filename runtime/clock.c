/* clock.c — the exact clock and the schedulers' cheap one.
 *
 * Entities
 *   exact clock  CLOCK_MONOTONIC (nu__now_ns): what deadlines are written
 *                in and what decides that a timer fires. A vDSO call, ~20
 *                ns on this machine, 35 ns or more where the call is cold.
 *   cheap clock  a constant-rate CPU counter (nu__tick): x86's TSC where
 *                CPUID says it is invariant, arm64's generic timer. ~8 ns,
 *                no system call, no fence. It only says when to look at
 *                the exact clock: a scheduler keeps, for its nearest timer,
 *                the tick from which that timer may be due (timer.c), and
 *                the start of a runnext streak's slice (sched.c).
 *
 * Why. A scheduler with a timer armed looked at the exact clock every 8
 * picks, and a ping-pong pair with others queued behind it every 32 to
 * bound its slice. In churn_latency (a ping-pong pair beside a sleeping
 * driver) one round trip in four paid a clock read, and one in sixteen
 * paid two: the p99 was 171 ns against a p50 of 88. With the cheap clock
 * those looks cost a counter read; with the scheduler's clock pace
 * (sched.c) they come about once per 100 us of work.
 *
 * Invariants. A timer never fires early: only the exact clock fires it.
 * It is not late either: the tick from which a deadline may be due is
 * computed 1/64 early (timer.c), far more than the rate's error (below),
 * and for at most NU__TICK_HORIZON_NS (100 ms) ahead, after which the
 * exact clock is read again. Where no usable counter exists (no invariant
 * TSC, another architecture) ticks are the exact clock's nanoseconds and
 * everything works as before, at its cost.
 *
 * Rate. arm64 states its counter's frequency (CNTFRQ_EL0). The TSC's is
 * measured once per OS process, at the first node start: two (tick, ns)
 * pairs ~1 ms apart, each the best of a few tries (a pair is two counter
 * reads around one exact read, and the one with the shortest gap is kept,
 * so a preemption inside a pair does not count). The error is the pairs'
 * jitter over the span: tens of ns in 1 ms, a few parts in 10^5.
 *
 * Rejected: CLOCK_MONOTONIC_COARSE (~5 ns, but it moves once per kernel
 * tick, 4 ms here: a 1 ms sleep would wait up to 4 ms); an io_uring
 * timeout for the nearest deadline (its completion is only seen inside
 * io_uring_enter on a DEFER_TASKRUN ring, a system call); looking at the
 * clock at a fixed, longer interval (a long slice between two looks
 * delays every timer by it: a fixed interval bounds the delay in slices,
 * not in time; the scheduler's pace adapts the interval instead).
 */
#include "clock.h"

#include <pthread.h>
#include <time.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#define CALIBRATE_NS 1000000u /* span of the TSC's measurement */
#define PAIR_TRIES 5

struct nu__clock nu__clock_g = { 1000000u, 0 };

static pthread_once_t clock_once = PTHREAD_ONCE_INIT;

uint64_t nu__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#if defined(__x86_64__)
/* CPUID.80000007H:EDX[8]: the TSC runs at a constant rate in every
 * P-, C- and T-state. */
static int tsc_invariant(void)
{
	unsigned a, b, c, d;
	if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000007u)
		return 0;
	__get_cpuid(0x80000007u, &a, &b, &c, &d);
	return (d >> 8) & 1;
}

/* A (tick, ns) pair taken as close together as PAIR_TRIES tries allow. */
static void tsc_pair(uint64_t *tick, uint64_t *ns)
{
	uint64_t best = UINT64_MAX;
	for (int i = 0; i < PAIR_TRIES; i++) {
		uint64_t a = __builtin_ia32_rdtsc();
		uint64_t n = nu__now_ns();
		uint64_t b = __builtin_ia32_rdtsc();
		if (b - a < best) {
			best = b - a;
			*tick = a + (b - a) / 2;
			*ns = n;
		}
	}
}

static void clock_measure(void)
{
	uint64_t t0 = 0, n0 = 0, t1 = 0, n1 = 0;
	if (!tsc_invariant())
		return;
	tsc_pair(&t0, &n0);
	while (nu__now_ns() - n0 < CALIBRATE_NS)
		__builtin_ia32_pause();
	tsc_pair(&t1, &n1);
	if (t1 <= t0 || n1 <= n0)
		return;
	uint64_t per_ms = (t1 - t0) * 1000000u / (n1 - n0);
	/* 0.1 to 100 GHz, or the counter is not what CPUID said */
	if (per_ms < 100000u || per_ms > 100000000u)
		return;
	nu__clock_g.per_ms = per_ms;
	nu__clock_g.counter = 1;
}
#elif defined(__aarch64__)
static void clock_measure(void)
{
	uint64_t f;
	__asm__ volatile("mrs %0, cntfrq_el0" : "=r"(f));
	if (f < 1000000u || f > 100000000000u)
		return;
	nu__clock_g.per_ms = f / 1000u;
	nu__clock_g.counter = 1;
}
#else
static void clock_measure(void)
{
}
#endif

void nu__clock_init(void)
{
	pthread_once(&clock_once, clock_measure);
}
