/* clock.h — private to nuproc: the exact clock and the schedulers' cheap
 * one (see clock.c).
 */
#ifndef NU_CLOCK_H
#define NU_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds: exact, a vDSO call (~20 ns here). */
uint64_t nu__now_ns(void);

/* The cheap clock's state, set once per OS process (nu__clock_init). */
extern struct nu__clock {
	uint64_t per_ms; /* ticks per millisecond */
	int counter;     /* ticks are the CPU's counter (else nanoseconds) */
} nu__clock_g;

/* Longest span nu__ticks_in converts: a cheap-clock deadline further out
 * is looked at through the exact clock once it has passed. */
#define NU__TICK_HORIZON_NS 100000000u

/* Measure the cheap clock's rate, once per OS process (later calls return
 * at once): ~1 ms of spinning. Any thread; before the schedulers run. */
void nu__clock_init(void);

/* The cheap clock: a constant-rate CPU counter (the TSC where it is
 * invariant, the generic timer on arm64; a few ns, no fence), else the
 * exact clock. Its readings compare only with readings on the same CPU
 * (each scheduler compares its own: its thread is pinned). */
static inline uint64_t nu__tick(void)
{
#if defined(__x86_64__)
	if (__builtin_expect(nu__clock_g.counter, 1))
		return __builtin_ia32_rdtsc();
#elif defined(__aarch64__)
	if (__builtin_expect(nu__clock_g.counter, 1)) {
		uint64_t v;
		__asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
		return v;
	}
#endif
	return nu__now_ns();
}

/* Ticks in ns nanoseconds (at most NU__TICK_HORIZON_NS), rounded down. */
static inline uint64_t nu__ticks_in(uint64_t ns)
{
	return ns * nu__clock_g.per_ms / 1000000u;
}

#endif
