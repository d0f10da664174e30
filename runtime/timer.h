/* timer.h — private to nuproc: each scheduler's timers. See timer.c. */
#ifndef NU_TIMER_H
#define NU_TIMER_H

#include <stdint.h>

#include "clock.h"
#include "nuproc.h"

struct nu__proc;
struct nu__sched;

struct nu__tsend;

typedef struct nu__timer_entry {
	uint64_t deadline;      /* CLOCK_MONOTONIC ns */
	uint64_t token;         /* the wait it ends (nu__proc.wait_token) */
	struct nu__proc *proc;  /* NULL for a send_after entry */
	nu_pid pid;
	struct nu__tsend *send; /* the send_after record, or NULL */
} nu__timer_entry;

/* A binary min-heap on deadline, owned by one scheduler thread. */
typedef struct nu__timers {
	nu__timer_entry *v;
	uint32_t n, cap;
	uint64_t next_token;    /* tokens: (scheduler id << 48) | counter */
	uint64_t due_tick;      /* from this nu__tick() on, the nearest
				 * deadline may have passed (0: look) */
} nu__timers;

int nu__timers_init(nu__timers *t, int sched_id);
void nu__timers_fini(nu__timers *t);

/* Arm a timeout for the calling process p on scheduler s: when deadline
 * passes while p->wait_token still holds the returned token, the token is
 * cleared, p->timed_out set and p woken. Returns the token, or 0 when no
 * memory was left for the entry (the caller then waits without timeout
 * support and should fail the call with -ENOMEM). */
uint64_t nu__timer_arm(struct nu__sched *s, struct nu__proc *p,
		       uint64_t deadline);

/* End a wait before its timeout: 1 if the caller disarmed it, 0 if the
 * timer fired first (p->timed_out is then set). */
int nu__timer_disarm(struct nu__proc *p, uint64_t token);

/* Fire every timer due at `now`; returns how many processes were woken. */
unsigned nu__timers_run(struct nu__sched *s, uint64_t now);

/* Nanoseconds until the nearest deadline (0 if due), or -1 when none. */
int64_t nu__timers_wait_ns(const nu__timers *t, uint64_t now);

static inline int nu__timers_pending(const nu__timers *t)
{
	return t->n != 0;
}

/* Fire s's due timers if the cheap clock's reading `tick` says any may
 * be due (then the exact clock decides). */
static inline unsigned nu__timers_poll_at(struct nu__sched *s, nu__timers *t,
					  uint64_t tick)
{
	if (tick >= t->due_tick)
		return nu__timers_run(s, nu__now_ns());
	return 0;
}

/* The same, reading the cheap clock only when a timer is armed. What a
 * busy scheduler calls between slices. */
static inline unsigned nu__timers_poll(struct nu__sched *s, nu__timers *t)
{
	return t->n ? nu__timers_poll_at(s, t, nu__tick()) : 0;
}

#endif
