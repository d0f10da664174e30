/* timer.c — each scheduler's timers: sleeps and (later) receive timeouts.
 *
 * Entities
 *   timer heap  per scheduler, owner-only: a binary min-heap of entries
 *               {deadline, token, process, pid}. Its nearest deadline is the
 *               timeout of the scheduler's ring wait (sched.c), and the
 *               scheduler fires due entries in its loop, in its idle spin and
 *               between picks at its clock pace (sched.c, ~100 us of work),
 *               so a chain of direct yields cannot starve them. Between
 *               slices it reads the cheap clock only
 *               (clock.c): due_tick, the counter's reading from which the
 *               nearest deadline may have passed (1/64 early, at most 100
 *               ms ahead), says when the exact clock is worth reading.
 *               Accuracy: the deadline plus scheduling delay; the ring
 *               wait takes nanoseconds (the eventfd fallback rounds up to the
 *               next millisecond), so a timer never fires early.
 *   token       a wait with a timeout is named by a token unique in the node
 *               (scheduler id in the high bits, a counter below), stored in
 *               the process's wait_token. Whoever clears it by CAS owns the
 *               end of the wait: the timer (then it sets timed_out and wakes
 *               the process) or the waiter ending early (nu__timer_disarm).
 *               So a wait ends exactly once, and an entry left behind by a
 *               wait that ended, a process that exited or a slot that was
 *               reused finds a different token and does nothing.
 *
 * Entries are not removed when a wait ends early: they fire as no-ops at
 * their deadline. This keeps arm/disarm O(log n)/O(1) and lock-free across
 * threads (a process may disarm on another scheduler than its entry's).
 * So that waits with long timeouts that end early (a server receiving
 * with a timeout, a million times a second) do not fill the heap, a full
 * heap first drops its stale entries (wait token gone, process dead,
 * send_after cancelled) and grows only when that frees less than half:
 * the heap stays within twice its live entries, at O(1) amortised.
 *
 * send_after. A timer that sends a message instead of waking a process
 * carries a record {state, ref id, prepared message}. Records are also in
 * a node-wide table by reference id (a mutex: cancelling is rare), so any
 * process can cancel. The record's state (ARMED -> FIRED by the owning
 * scheduler, or ARMED -> CANCELLED by nu_cancel_timer) is decided by one
 * CAS; the winner takes the record out of the table; only the owning
 * scheduler frees it (when its entry comes due, or when the scheduler
 * stops), so a canceller never touches freed memory.
 *
 * Rejected: a timer wheel (better for millions of timers with coarse
 * deadlines; a heap is simpler and exact, and its nearest deadline is what
 * the ring wait needs); a timerfd or an io_uring timeout per timer (a system
 * call per arm).
 */
#include "timer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "mailbox.h"
#include "node.h"
#include "proc.h"
#include "sched.h"
#include "term.h"

int nu__timers_init(nu__timers *t, int sched_id)
{
	t->n = 0;
	t->cap = 64;
	t->v = malloc(t->cap * sizeof(*t->v));
	t->next_token = ((uint64_t)sched_id + 1) << 48;
	t->due_tick = 0;
	return t->v ? 0 : -ENOMEM;
}

static void tsend_drop(struct nu__tsend *r);

void nu__timers_fini(nu__timers *t)
{
	for (uint32_t i = 0; i < t->n; i++)
		if (t->v[i].send)
			tsend_drop(t->v[i].send);
	free(t->v);
	t->v = NULL;
	t->n = t->cap = 0;
}

static void sift_up(nu__timers *t, uint32_t i)
{
	nu__timer_entry e = t->v[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (t->v[parent].deadline <= e.deadline)
			break;
		t->v[i] = t->v[parent];
		i = parent;
	}
	t->v[i] = e;
}

static void sift_down(nu__timers *t, uint32_t i)
{
	nu__timer_entry e = t->v[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= t->n)
			break;
		if (c + 1 < t->n && t->v[c + 1].deadline < t->v[c].deadline)
			c++;
		if (e.deadline <= t->v[c].deadline)
			break;
		t->v[i] = t->v[c];
		i = c;
	}
	t->v[i] = e;
}

/* Forward: the send_after record's parts compaction needs. */
static int tsend_cancelled(const struct nu__tsend *r);
static void tsend_free(struct nu__tsend *r);

/* An entry that can only fire as a no-op. */
static int entry_stale(const nu__timer_entry *e)
{
	if (e->send)
		return tsend_cancelled(e->send);
	return nu_is_alive(e->pid) != 1 ||
	       atomic_load_explicit(&e->proc->wait_token,
				    memory_order_relaxed) != e->token;
}

/* Drop the stale entries and rebuild the heap (O(n)). */
static void compact(nu__timers *t)
{
	uint32_t j = 0;
	for (uint32_t i = 0; i < t->n; i++) {
		if (!entry_stale(&t->v[i]))
			t->v[j++] = t->v[i];
		else if (t->v[i].send)
			tsend_free(t->v[i].send);
	}
	t->n = j;
	for (uint32_t i = t->n / 2; i-- > 0;)
		sift_down(t, i);
}

/* Room for one more entry: 0 or -ENOMEM. */
static int heap_room(nu__timers *t)
{
	if (t->n < t->cap)
		return 0;
	compact(t);
	if (t->n <= t->cap / 2)
		return 0;
	nu__timer_entry *v = realloc(t->v, 2 * t->cap * sizeof(*v));
	if (!v)
		return t->n < t->cap ? 0 : -ENOMEM;
	t->v = v;
	t->cap *= 2;
	return 0;
}

/* Insert e (heap_room said there is room). A new nearest deadline sends
 * the next poll to the exact clock, which sets due_tick afresh. */
static void heap_push(nu__timers *t, nu__timer_entry e)
{
	if (!t->n || e.deadline < t->v[0].deadline)
		t->due_tick = 0;
	t->v[t->n] = e;
	sift_up(t, t->n++);
}

uint64_t nu__timer_arm(nu__sched *s, nu__proc *p, uint64_t deadline)
{
	nu__timers *t = &s->timers;
	if (heap_room(t))
		return 0;
	uint64_t token = ++t->next_token;
	atomic_store_explicit(&p->timed_out, 0, memory_order_relaxed);
	atomic_store_explicit(&p->wait_token, token, memory_order_release);
	heap_push(t, (nu__timer_entry){ deadline, token, p, p->pid, NULL });
	return token;
}

int nu__timer_disarm(nu__proc *p, uint64_t token)
{
	uint64_t exp = token;
	return atomic_compare_exchange_strong(&p->wait_token, &exp, 0);
}

/* Fire one due entry: end its wait if the token is still there. */
static int fire(const nu__timer_entry *e)
{
	nu__proc *p = e->proc;
	/* The slot may have been reused: the pid must still be alive before
	 * its control block is touched; the token decides the rest (an exit
	 * clears it, and tokens are never reused). */
	if (nu_is_alive(e->pid) != 1)
		return 0;
	uint64_t exp = e->token;
	if (!atomic_compare_exchange_strong(&p->wait_token, &exp, 0))
		return 0;
	atomic_store_explicit(&p->timed_out, 1, memory_order_release);
	nu__proc_wake(p);
	return 1;
}

/* ------------------------------------------------------- send_after */

enum { TS_ARMED = 0, TS_FIRED, TS_CANCELLED };

typedef struct nu__tsend {
	_Atomic int state;
	uint64_t ref;             /* the timer reference's id */
	uint64_t deadline;
	nu__msg *msg;
	struct nu__tsend *hnext;  /* the table's chain */
} nu__tsend;

#define TS_BUCKETS 1024
static pthread_mutex_t ts_lock = PTHREAD_MUTEX_INITIALIZER;
static nu__tsend *ts_table[TS_BUCKETS];

/* Unlink r from the table (caller holds ts_lock). */
static void ts_unhash(nu__tsend *r)
{
	nu__tsend **pp = &ts_table[r->ref % TS_BUCKETS];
	while (*pp && *pp != r)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = r->hnext;
}

static void tsend_drop(nu__tsend *r)
{
	pthread_mutex_lock(&ts_lock);
	if (atomic_load(&r->state) == TS_ARMED)
		ts_unhash(r);
	pthread_mutex_unlock(&ts_lock);
	nu__msg_free(r->msg);
	free(r);
}

static int tsend_cancelled(const nu__tsend *r)
{
	return atomic_load(&r->state) == TS_CANCELLED;
}

/* A cancelled record (the canceller unhashed it). */
static void tsend_free(nu__tsend *r)
{
	nu__msg_free(r->msg);
	free(r);
}

static void tsend_fire(nu__tsend *r)
{
	int exp = TS_ARMED;
	if (atomic_compare_exchange_strong(&r->state, &exp, TS_FIRED)) {
		pthread_mutex_lock(&ts_lock);
		ts_unhash(r);
		pthread_mutex_unlock(&ts_lock);
		nu__msg_deliver(nu__node_get(), r->msg, NU__LANE_NORMAL);
		free(r);
	} else {
		tsend_free(r);
	}
}

/* Arm r on s's heap; 0 or -ENOMEM. */
static int tsend_arm(nu__sched *s, nu__tsend *r)
{
	nu__timers *t = &s->timers;
	if (heap_room(t))
		return -ENOMEM;
	pthread_mutex_lock(&ts_lock);
	r->hnext = ts_table[r->ref % TS_BUCKETS];
	ts_table[r->ref % TS_BUCKETS] = r;
	pthread_mutex_unlock(&ts_lock);
	heap_push(t, (nu__timer_entry){ r->deadline, 0, NULL, 0, r });
	return 0;
}

int nu_send_after(uint64_t ms, nu_pid dest, nu_term msg, nu_term *ref)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current)
		return -EPERM;
	if (msg == NU_NONE || nu_term_type(msg) == NU_T_NONE ||
	    nu_is_alive(dest) < 0)
		return -EINVAL;
	nu_term rt = nu_make_ref();
	nu__tsend *r = rt == NU_NONE ? NULL : malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->msg = nu__msg_new(dest, s->current->pid, msg);
	if (ms > UINT64_MAX / 2000000u)
		ms = UINT64_MAX / 2000000u;
	r->deadline = nu__now_ns() + ms * 1000000u;
	r->ref = nu__ref_id(rt);
	atomic_init(&r->state, TS_ARMED);
	if (!r->msg || tsend_arm(s, r)) {
		nu__msg_free(r->msg);
		free(r);
		return -ENOMEM;
	}
	if (ref)
		*ref = rt;
	return 0;
}

int64_t nu_cancel_timer(nu_term ref)
{
	if (nu_term_type(ref) != NU_T_REF)
		return -EINVAL;
	uint64_t id = nu__ref_id(ref);
	int64_t left = -ENOENT;
	pthread_mutex_lock(&ts_lock);
	nu__tsend *r = ts_table[id % TS_BUCKETS];
	while (r && r->ref != id)
		r = r->hnext;
	int exp = TS_ARMED;
	if (r && atomic_compare_exchange_strong(&r->state, &exp,
						TS_CANCELLED)) {
		ts_unhash(r);
		uint64_t now = nu__now_ns();
		left = r->deadline > now
			       ? (int64_t)((r->deadline - now + 999999) / 1000000)
			       : 0;
	}
	pthread_mutex_unlock(&ts_lock);
	return left;
}

unsigned nu__timers_run(nu__sched *s, uint64_t now)
{
	nu__timers *t = &s->timers;
	uint64_t tick = nu__tick(); /* (later than now: the margin covers it) */
	unsigned woken = 0;
	while (t->n && t->v[0].deadline <= now) {
		nu__timer_entry e = t->v[0];
		t->v[0] = t->v[--t->n];
		if (t->n)
			sift_down(t, 0);
		if (e.send)
			tsend_fire(e.send);
		else
			woken += (unsigned)fire(&e);
	}
	if (t->n) {
		uint64_t d = t->v[0].deadline - now;
		if (d > NU__TICK_HORIZON_NS)
			d = NU__TICK_HORIZON_NS;
		t->due_tick = tick + nu__ticks_in(d - d / 64);
	}
	return woken;
}

int64_t nu__timers_wait_ns(const nu__timers *t, uint64_t now)
{
	if (!t->n)
		return -1;
	return t->v[0].deadline <= now ? 0
				       : (int64_t)(t->v[0].deadline - now);
}

int nu_sleep(uint64_t ms)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current)
		return -EPERM;
	if (ms == 0)
		return nu_yield();
	nu__proc *p = s->current;
	if (ms > UINT64_MAX / 2000000u)
		ms = UINT64_MAX / 2000000u; /* effectively forever */
	uint64_t token = nu__timer_arm(s, p, nu__now_ns() + ms * 1000000u);
	if (!token)
		return -ENOMEM;
	/* Wakes other than the timer's (a stale sender's, an exit signal
	 * that turned into a message) loop back to sleep. */
	while (!atomic_load_explicit(&p->timed_out, memory_order_acquire))
		s = nu__proc_park(s);
	return 0;
}
