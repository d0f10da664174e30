/* sched.c — per-CPU schedulers: run queues, hand-off, stealing, idle/wake.
 *
 * Entities
 *   scheduler  one OS thread pinned to one CPU, owning: a run queue (a
 *              bounded ring of 256 processes that thieves can take from,
 *              and behind it a private overflow list, so the queue as a
 *              whole stays FIFO), a `runnext` slot, a FIFO of
 *              processes bound to it, an inbox for wake-ups from other
 *              threads, an io_uring (io/ring.c) and slot caches (mem.c).
 *   group      the schedulers of one NUMA node, with a mutex-protected
 *              global queue (processes bound to the node, made runnable
 *              from outside it)
 *              and the idle bookkeeping (who is parked, who is spinning).
 *
 * Dispatch order (sched_pick): inbox (drained into the run queue), every
 * 61st tick (16th while I/O is in flight, when the ring is polled too;
 * a streak of hand-offs at the clock pace instead, "Hand-off checks") the
 * group's global queue first (so it cannot starve), runnext
 * (its streak has a 2 ms slice while the run queue waits; then it goes to
 * the tail, behind what waited: Go's runnext inherits the time slice the
 * same way, and a ping-pong pair keeps the CPU and its cache), the run
 * queue, bound processes, the global queue, then stealing. A due
 * global-queue check with nothing to do (no global queue, no I/O, no
 * clock reading due) stays in the fast pick. Due timers fire at the
 * clock pace ("Clock pace": about every 100 us of work; a timer is late
 * by about that plus one slice).
 *
 * Hand-off. A context never makes itself runnable before its registers are
 * saved: otherwise a thief on another CPU could resume a half-saved stack.
 * So the context that switches out records what must happen to it
 * (s->after: requeue, commit a park, reap) and whoever resumes next on the
 * same thread performs it first thing (nu__sched_after). Yields and parks
 * switch directly process-to-process when the scheduler has local work;
 * exits, and parks with nothing else to run, return to the scheduler's
 * own loop context, which also flushes slot releases and sleeps.
 *
 * Deferred park. A receive's park (its CAS on the park word, proc.c) is
 * not committed in the context that resumes next, but when that context's
 * slice ends: s->park_lazy holds the parked process meanwhile. A push
 * made on this thread during the slice, the usual reply in a ping-pong or
 * a call, finds it there and makes it runnable with no locked
 * instruction; the park never happened (its exchange already published
 * the message). Any switch on this thread, a yield (even one that finds
 * nothing else to run) and every entry into the loop context commit it
 * first: a push from another thread, or any other waker, meanwhile sees
 * a running process and wakes nobody, and the commit's CAS or its look
 * at wstate then finds that wake. The cost: such a wake waits for the end
 * of the slice (a process that never calls into the runtime holds it, as
 * it holds every process queued behind it), and the parked process cannot
 * be stolen meanwhile. Measured: pingpong 99.7 -> 89.2 ns, call 143.1 ->
 * 133.2 ns (one scheduler); a cross-scheduler ping-pong never defers (its
 * park returns to the idle loop context, which commits).
 *
 * Run queue (after Go's runq). The owner writes entries at tail and
 * publishes them with a release store of tail; consumers (the owner's pop
 * and thieves) read entries, then claim them with a CAS on head. A thief
 * that read entries the owner has since recycled fails its CAS, so stale
 * reads are discarded. Entries are relaxed atomics only to keep the data
 * race defined; ordering comes from head/tail. Popping an entry
 * prefetches the next one's first control-block lines and the top of its
 * saved stack (rq_sp, recorded when the owner queued it: reading the sp
 * from the process itself could touch a slot a thief has since emptied
 * and released). With 1,000 connections the echo server's switches were
 * 11% of its time, nearly all misses on the resumed process's stack;
 * with the prefetch, ~5% (nuproc-bench echo 1000: +5% req/s, A/B).
 * What was left of it is the page walk: each process's page is its own
 * (slots are 320 KiB apart), and a prefetch whose page is not in the TLB
 * holds retirement until its walk is done (on the echo server, 75% of the
 * park's samples sat on the prefetch after the first one to the next
 * process's page). Walks started together overlap, so a busy I/O
 * scheduler, at each poll, touches the control block and the saved
 * stack pointer of each of the next IO_POLL_TICKS queued processes
 * (walk_ahead; the stack of an echo connection parked in its read reaches
 * into the page below the control block's). The park's share of the echo
 * server's samples went from 3.1% to 2.3% with the control blocks alone,
 * then from 2.4% to 1.6% with the stacks too (means of 4 alternating perf
 * runs each; req/s within the noise). Not in the fast pick, where a
 * ping-pong pair or a ring would pay for its branch at every switch.
 *
 * Idle and wake (no lost wake-ups, no busy waiting). An idle scheduler
 * tries to steal (own group, then other groups only from queues at least
 * STEAL_REMOTE_MIN long), spins for at most SPIN_NS (50 us) counted as
 * spinning, so that producers skip the doorbell while it looks (a
 * sleep/wake round trip is a system call on each side: without the spin,
 * spawning 100k processes on two schedulers paid one per batch and ran 3x
 * slower), then parks: it sets `parked` and its group idle
 * bit, increments nparked (seq_cst), and re-checks inbox, global queue,
 * its group's run queues and the stop condition before sleeping in one
 * io_uring_enter. A producer publishes work, then (seq_cst fence) reads
 * nparked/nspinning. Either the producer sees the parker, or the parker's
 * re-check sees the work (Dekker); for work left in a running scheduler's
 * own queue the producer skips the fence (wake_idle). Doorbells go only to
 * a scheduler whose
 * `parked` flag the waker exchanged from 1 to 0, so one sleep costs at most
 * one MSG_RING. A scheduler woken to look for work counts as spinning until
 * it finds some or parks again; producers do not wake a second one while
 * one spins.
 *
 * Rejected: a single shared run queue (contention, no locality); a
 * mutex-protected deque per scheduler (a lock on every push and pop); going
 * through the loop context on every yield (a second switch; the `switch`
 * benchmark would pay twice); futex sleeps (the ring wait is where I/O and
 * timers complete, so one blocking point serves all).
 */
#include "sched.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "block.h"
#include "ctx.h"
#include "fault.h"
#include "fiber.h"
#include "io/io.h"
#include "node.h"
#include "topo.h"

#define RUNNEXT_SLICE_NS 2000000 /* a runnext streak's time slice */
#define STEAL_REMOTE_MIN 8
#define GQ_CHECK_TICKS 61
/* While I/O is in flight the slow pick, and with it the ring's poll, comes
 * every IO_POLL_TICKS picks instead. Since Linux 6.13 one io_uring_enter
 * runs at most 2 x 20 of a DEFER_TASKRUN ring's deferred completions
 * (IO_LOCAL_TW_DEFAULT_MAX); the rest wait for the next enter, while a recv
 * whose data came before its submit completes inline at that submit. Polled
 * every 61 picks, such late completions queued up and their connections
 * waited rounds longer than the others: echo 1000's p99 was 8.7-9.7 ms at
 * 61 against 5.7-6.8 ms at 16 (req/s +4%), 6.8 at 24 and 6.0-8.1 at 8
 * (req/s -4%), in 3 alternating runs of each. */
#define IO_POLL_TICKS NU__IO_POLL_TICKS
/* The clock pace (see "Clock pace"): a busy scheduler reads the cheap
 * clock about once per CLOCK_PACE_NS of work, at most every
 * CLOCK_MASK_MAX + 1 picks. */
#define CLOCK_PACE_NS 100000
#define CLOCK_MASK_MAX 1023u
/* Lines prefetched for the next queued process (prefetch_next). */
#define PREFETCH_CB_LINES 5
#define PREFETCH_STACK_LINES 10
#define SPIN_NS 50000 /* idle spin before sleeping in the ring */
#define TRIM_IDLE_NS 10000000 /* idle this long: trim the warm slots */
/* The busy decay (see "Decay"): its period, ms; the wait before the next
 * step while some is left; slots and record pages (1 MiB) given to the OS
 * per step; and how often a scheduler that reads no clock looks at it
 * for the decay: every DECAY_CHECKS global-queue checks (a power of two;
 * ~8 ms of ping-pong here). */
#define DECAY_MS 1000u
#define DECAY_STEP_MS 5u
#define DECAY_SLOTS 64u
#define DECAY_PAGES 16u
#define DECAY_BLOCKS 1024u /* message blocks freed per period, at most */
#define DECAY_CHECKS 2048u

#if defined(__x86_64__)
#define cpu_relax() __builtin_ia32_pause()
#else
#define cpu_relax() __asm__ volatile("yield")
#endif

__thread nu__sched *nu__tls_sched
	__attribute__((tls_model("initial-exec")));
#define tls_sched nu__tls_sched

__attribute__((noinline)) nu__sched *nu__sched_self(void)
{
	nu__sched *s = tls_sched;
	__asm__ volatile("" : "+r"(s));
	return s;
}


/* ------------------------------------------------------------ run queue */

static uint32_t runq_len(nu__sched *s)
{
	uint32_t h = atomic_load_explicit(&s->rq_head, memory_order_acquire);
	uint32_t t = atomic_load_explicit(&s->rq_tail, memory_order_acquire);
	return t - h;
}

/* Append p to an intrusive FIFO (owner-only lists: overflow, bound). */
static inline void fifo_put(nu__proc **head, nu__proc **tail, nu__proc *p)
{
	p->next = NULL;
	if (*tail)
		(*tail)->next = p;
	else
		*head = p;
	*tail = p;
}

/* Append p to group g's global queue (node-bound work from elsewhere). */
static void gq_put(nu__group *g, nu__proc *p)
{
	pthread_mutex_lock(&g->gq_lock);
	fifo_put(&g->gq_head, &g->gq_tail, p);
	atomic_fetch_add_explicit(&g->gq_len, 1, memory_order_release);
	pthread_mutex_unlock(&g->gq_lock);
}

/* Owner: double the overflow array, unwrapping it; 0 or -ENOMEM. */
static int ovf_grow(nu__sched *s)
{
	uint32_t cap = s->ovf_cap ? s->ovf_cap * 2 : NU__RUNQ_SIZE;
	struct nu__ovf_ent *a = malloc((size_t)cap * sizeof(*a));
	if (!a)
		return -ENOMEM;
	for (uint32_t i = 0; i < s->ovf_len; i++)
		a[i] = s->ovf[(s->ovf_first + i) % s->ovf_cap];
	free(s->ovf);
	s->ovf = a;
	s->ovf_cap = cap;
	s->ovf_first = 0;
	return 0;
}

/* Owner: append p to the overflow (the ring is full or the overflow
 * already holds older processes: either way FIFO order is kept). Out of
 * memory, p goes to the group's global queue instead. */
static void ovf_put(nu__sched *s, nu__proc *p)
{
	if (s->ovf_len == s->ovf_cap && ovf_grow(s)) {
		gq_put(s->grp, p);
		return;
	}
	s->ovf[(s->ovf_first + s->ovf_len) % s->ovf_cap] =
		(struct nu__ovf_ent){ p, p->sp };
	s->ovf_len++;
}

void nu__sched_free_ovf(nu__sched *s)
{
	free(s->ovf);
	s->ovf = NULL;
	s->ovf_cap = s->ovf_len = s->ovf_first = 0;
}

/* Owner: append p to the run queue. */
static void runq_put(nu__sched *s, nu__proc *p)
{
	if (s->ovf_len) {
		ovf_put(s, p);
		return;
	}
	uint32_t h = atomic_load_explicit(&s->rq_head, memory_order_acquire);
	uint32_t t = atomic_load_explicit(&s->rq_tail, memory_order_relaxed);
	if (t - h >= NU__RUNQ_SIZE) {
		ovf_put(s, p);
		return;
	}
	atomic_store_explicit(&s->rq[t % NU__RUNQ_SIZE], p,
			      memory_order_relaxed);
	s->rq_sp[t % NU__RUNQ_SIZE] = p->sp;
	atomic_store_explicit(&s->rq_tail, t + 1, memory_order_release);
}

/* Owner, ring empty: move the oldest overflow entries into the ring. */
static void ovf_refill(nu__sched *s)
{
	uint32_t t = atomic_load_explicit(&s->rq_tail, memory_order_relaxed);
	uint32_t n = 0;
	while (n < s->ovf_len && n < NU__RUNQ_SIZE) {
		struct nu__ovf_ent e = s->ovf[(s->ovf_first + n) % s->ovf_cap];
		atomic_store_explicit(&s->rq[(t + n) % NU__RUNQ_SIZE], e.p,
				      memory_order_relaxed);
		s->rq_sp[(t + n) % NU__RUNQ_SIZE] = e.sp;
		n++;
	}
	s->ovf_first = (s->ovf_first + n) % s->ovf_cap;
	s->ovf_len -= n;
	atomic_store_explicit(&s->rq_tail, t + n, memory_order_release);
}

/* Owner: take the oldest process of the run queue, or NULL. */
static nu__proc *runq_get(nu__sched *s)
{
	for (;;) {
		uint32_t h = atomic_load_explicit(&s->rq_head,
						  memory_order_acquire);
		uint32_t t = atomic_load_explicit(&s->rq_tail,
						  memory_order_relaxed);
		if (t == h) {
			if (!s->ovf_len)
				return NULL;
			ovf_refill(s);
			continue;
		}
		nu__proc *p = atomic_load_explicit(&s->rq[h % NU__RUNQ_SIZE],
						   memory_order_relaxed);
		if (atomic_compare_exchange_weak_explicit(
			    &s->rq_head, &h, h + 1, memory_order_release,
			    memory_order_relaxed))
			return p;
	}
}

/* Thief s: move half of v's run queue into s's (empty) run queue.
 * Returns how many were taken. */
static uint32_t runq_grab(nu__sched *s, nu__sched *v, uint32_t min)
{
	uint32_t st = atomic_load_explicit(&s->rq_tail, memory_order_relaxed);
	for (;;) {
		uint32_t h = atomic_load_explicit(&v->rq_head,
						  memory_order_acquire);
		uint32_t t = atomic_load_explicit(&v->rq_tail,
						  memory_order_acquire);
		uint32_t n = t - h;
		if (n < min || n == 0)
			return 0;
		n -= n / 2;
		if (n > NU__RUNQ_SIZE / 2)
			continue; /* read h and t at different times: retry */
		for (uint32_t i = 0; i < n; i++) {
			nu__proc *p = atomic_load_explicit(
				&v->rq[(h + i) % NU__RUNQ_SIZE],
				memory_order_relaxed);
			atomic_store_explicit(&s->rq[(st + i) % NU__RUNQ_SIZE],
					      p, memory_order_relaxed);
			s->rq_sp[(st + i) % NU__RUNQ_SIZE] = NULL; /* not ours yet */
		}
		if (atomic_compare_exchange_strong_explicit(
			    &v->rq_head, &h, h + n, memory_order_release,
			    memory_order_relaxed))
			return n;
	}
}

/* ------------------------------------------------------- global queue */

/* Take up to a fair share of g's global queue: one to run now, the rest
 * into s's run queue. */
static nu__proc *gq_get(nu__sched *s, nu__group *g)
{
	if (!atomic_load_explicit(&g->gq_len, memory_order_acquire))
		return NULL;
	pthread_mutex_lock(&g->gq_lock);
	uint32_t len = atomic_load_explicit(&g->gq_len, memory_order_relaxed);
	uint32_t n = len / (uint32_t)g->count + 1;
	if (n > len)
		n = len;
	if (n > NU__RUNQ_SIZE / 2)
		n = NU__RUNQ_SIZE / 2;
	nu__proc *first = g->gq_head, *p = first;
	for (uint32_t i = 0; i < n; i++)
		p = p->next;
	g->gq_head = p;
	if (!p)
		g->gq_tail = NULL;
	atomic_fetch_sub_explicit(&g->gq_len, n, memory_order_relaxed);
	pthread_mutex_unlock(&g->gq_lock);
	if (!first)
		return NULL;
	p = first->next;
	for (uint32_t i = 1; i < n; i++) {
		nu__proc *next = p->next;
		runq_put(s, p);
		p = next;
	}
	return first;
}

/* ------------------------------------------------------------ decay */

/* Decay. What a scheduler keeps for the next burst, warm slots (mem.c)
 * and record pages (pool.c), goes back when it trims, after TRIM_IDLE_NS
 * idle. A scheduler that never stays idle that long (a timer every few
 * ms is enough) would keep a burst's memory for good: a million DOWNs'
 * 112 MB of record pages, or thousands of warm slots. So every DECAY_MS
 * it gives back what it did not use over the last period: the warm and
 * kept slots its LIFOs (and its region's depot, for the group's first
 * scheduler, so that one mark spans a whole period) held below their
 * low-water marks the whole time, beyond the idle keep, and its record
 * pages whose records are all back (not those it allocates from now).
 * Memory comes back one to two periods after a burst, and a steady load
 * is not touched: what it uses stays above the marks. The work runs in
 * steps, so that a pick that meets it is not held for long: 64 slots and
 * 1 MiB of pages a step, DECAY_STEP_MS apart (steps of 256 slots or
 * 4 MiB held a ping-pong round trip up to ~0.5-0.7 ms in an ad hoc run;
 * these, ~0.35-0.45 ms, about what the machine's own stalls reach without
 * any decay). Rejected:
 * trimming to the idle keep every period (a scheduler that spawns 10,000
 * processes every 100 ms would fault their slots in again every
 * second). The message block cache (at most 512 KiB a scheduler) has no
 * mark: a low-water mark there would cost every message a compare. It
 * gives back half of what it holds beyond the idle keep at each period's
 * first step instead (at most DECAY_BLOCKS, ~10 us of free()): a burst's
 * blocks go back over a few seconds, and a steady load that needs them
 * mallocs at most that many again a second. The clock is the cheap one
 * (ticks): looked at whenever the pace reads it, at one global-queue
 * check in DECAY_CHECKS (a scheduler may read no clock at all: a
 * ping-pong pair), and before every idle wait. */
static __attribute__((noinline)) void sched_decay(nu__sched *s, uint64_t now)
{
	if (now < s->decay_at)
		return;
	int more = nu__slot_decay(&nu__node_get()->mem, &s->slots,
				  NU__WARM_IDLE_KEEP, s->id == s->grp->first,
				  DECAY_SLOTS);
	more |= nu__pool_decay(&s->recs, NU__RECS_IDLE_KEEP, DECAY_PAGES);
	if (!s->decay_more) /* a period's first step */
		nu__block_decay(s, NU__BLOCK_IDLE_KEEP, DECAY_BLOCKS);
	s->decay_more = more;
	/* the first call only starts the marks */
	s->decay_at = now + (more ? DECAY_STEP_MS : DECAY_MS) *
				    nu__clock_g.per_ms;
}

/* ------------------------------------------------------------- idle */

static void idle_bit(nu__group *g, int id, int set)
{
	int b = id - g->first;
	uint64_t m = 1ull << (b % 64);
	if (set)
		atomic_fetch_or(&g->idle_mask[b / 64], m);
	else
		atomic_fetch_and(&g->idle_mask[b / 64], ~m);
}

/* Clear s's idle bit if still set: 1 if s cleared it, 0 if a waker had
 * claimed s (and counted it spinning). */
static int idle_unclaim(nu__group *g, int id)
{
	int b = id - g->first;
	uint64_t m = 1ull << (b % 64);
	return (atomic_fetch_and(&g->idle_mask[b / 64], ~m) & m) != 0;
}

void nu__sched_kick(nu__sched *from, nu__sched *t)
{
	if (atomic_exchange(&t->parked, 0))
		nu__ring_doorbell(from ? &from->ring : NULL, &t->ring);
}

/* Claim one parked scheduler of g (clear its bit, count it spinning) and
 * wake it. 1 if one was woken. */
static int wake_one(nu__sched *from, nu__group *g)
{
	nu__node *n = nu__node_get();
	for (int w = 0; w < 4; w++) {
		uint64_t m = atomic_load(&g->idle_mask[w]);
		while (m) {
			uint64_t bit = m & -m;
			uint64_t old = atomic_fetch_and(&g->idle_mask[w], ~bit);
			if (old & bit) {
				int id = g->first + w * 64 + __builtin_ctzll(bit);
				atomic_fetch_sub(&g->nparked, 1);
				atomic_fetch_add(&g->nspinning, 1);
				nu__sched_kick(from, n->sched[id]);
				return 1;
			}
			m = old & ~bit;
		}
	}
	return 0;
}

/* Work was published in s's run queue: wake an idle scheduler to steal
 * it unless one is already looking. This is a parallelism hint, not a
 * correctness one: the work sits in the queue of a running scheduler that
 * will run it anyway, so there is no fence here (a full fence on every
 * requeue costs more than the yield it serves); a parker that races with
 * it is woken by the next push. Wake-ups that carry correctness (inbox
 * pushes, to a possibly sleeping scheduler) use the seq_cst handshake. */
static void wake_idle(nu__sched *s)
{
	nu__group *g = s->grp;
	if (atomic_load_explicit(&g->nspinning, memory_order_relaxed))
		return;
	if (atomic_load_explicit(&g->nparked, memory_order_relaxed)) {
		wake_one(s, g);
		return;
	}
	nu__node *n = nu__node_get();
	if (n->ngroups == 1 || runq_len(s) < STEAL_REMOTE_MIN)
		return;
	for (unsigned i = 0; i < n->ngroups; i++) {
		nu__group *o = &n->groups[i];
		if (o != g && !atomic_load(&o->nspinning) &&
		    atomic_load(&o->nparked) && wake_one(s, o))
			return;
	}
}

void nu__sched_kick_all(nu__sched *from)
{
	nu__node *n = nu__node_get();
	for (unsigned i = 0; i < n->nsched; i++)
		if (n->sched[i] != from)
			nu__sched_kick(from, n->sched[i]);
}

/* ----------------------------------------------------------- ready */

static void inbox_push(nu__sched *from, nu__sched *t, nu__proc *p)
{
	nu__proc *old = atomic_load_explicit(&t->inbox, memory_order_relaxed);
	do
		p->next = old;
	while (!atomic_compare_exchange_weak_explicit(
		&t->inbox, &old, p, memory_order_seq_cst,
		memory_order_relaxed));
	nu__sched_kick(from, t);
}

/* Move everything in s's inbox to its run queue, oldest first. */
static void inbox_drain(nu__sched *s)
{
	nu__proc *p = atomic_exchange_explicit(&s->inbox, NULL,
					       memory_order_acquire);
	nu__proc *rev = NULL;
	while (p) {
		nu__proc *next = p->next;
		p->next = rev;
		rev = p;
		p = next;
	}
	while (rev) {
		nu__proc *next = rev->next;
		nu__sched_ready(s, rev, 0);
		rev = next;
	}
}

static void pinned_put(nu__sched *s, nu__proc *p)
{
	fifo_put(&s->pinned_head, &s->pinned_tail, p);
}

static nu__proc *pinned_get(nu__sched *s)
{
	nu__proc *p = s->pinned_head;
	if (p) {
		s->pinned_head = p->next;
		if (!s->pinned_head)
			s->pinned_tail = NULL;
	}
	return p;
}

void nu__sched_ready(nu__sched *s, nu__proc *p, int as_next)
{
	nu__node *n = nu__node_get();
	if (p->bind_sched >= 0 && (!s || p->bind_sched != s->id)) {
		inbox_push(s, n->sched[p->bind_sched], p);
		return;
	}
	if (!s) {
		inbox_push(NULL, p->sched, p);
		return;
	}
	if (p->bind_sched >= 0) {
		pinned_put(s, p);
		return;
	}
	if (p->bind_group >= 0 && &n->groups[p->bind_group] != s->grp) {
		nu__group *g = &n->groups[p->bind_group];
		gq_put(g, p);
		atomic_thread_fence(memory_order_seq_cst);
		if (!wake_one(s, g))
			nu__sched_kick(s, n->sched[g->first]);
		return;
	}
	if (as_next) {
		nu__proc *old = s->runnext;
		s->runnext = p;
		if (!old)
			return;
		p = old;
	}
	runq_put(s, p);
	wake_idle(s);
}

/* -------------------------------------------------------- stealing */

static nu__proc *take_stolen(nu__sched *s, nu__sched *v, uint32_t got)
{
	uint32_t t = atomic_load_explicit(&s->rq_tail, memory_order_relaxed);
	nu__proc *p = atomic_load_explicit(&s->rq[(t + got - 1) % NU__RUNQ_SIZE],
					   memory_order_relaxed);
	atomic_store_explicit(&s->rq_tail, t + got - 1, memory_order_release);
	/* relaxed: nu_node_info reads it from any thread */
	__atomic_store_n(&s->steals, s->steals + 1, __ATOMIC_RELAXED);
	/* A node-bound process taken across nodes goes home. */
	if (v->grp != s->grp) {
		nu__node *n = nu__node_get();
		uint32_t k = got - 1;
		for (uint32_t i = 0; i < k; i++) {
			nu__proc *q = runq_get(s);
			nu__sched_ready(s, q, 0);
		}
		if (p->bind_group >= 0 && &n->groups[p->bind_group] != s->grp) {
			nu__sched_ready(s, p, 0);
			return NULL;
		}
	}
	return p;
}

static nu__proc *steal_from_group(nu__sched *s, nu__group *g, uint32_t min)
{
	nu__node *n = nu__node_get();
	unsigned start = s->tick % (unsigned)g->count;
	for (int i = 0; i < g->count; i++) {
		nu__sched *v = n->sched[g->first + (start + i) % g->count];
		if (v == s)
			continue;
		uint32_t got = runq_grab(s, v, min);
		if (got)
			return take_stolen(s, v, got);
	}
	return gq_get(s, g);
}

static nu__proc *steal(nu__sched *s)
{
	nu__node *n = nu__node_get();
	for (int round = 0; round < 2; round++) {
		nu__proc *p = steal_from_group(s, s->grp, 1);
		if (p)
			return p;
	}
	for (unsigned i = 0; i < n->ngroups; i++) {
		nu__group *g = &n->groups[i];
		if (g == s->grp)
			continue;
		nu__proc *p = steal_from_group(s, g, STEAL_REMOTE_MIN);
		if (p)
			return p;
	}
	return NULL;
}

/* --------------------------------------------------------- dispatch */

/* Clock pace. A busy scheduler reads the cheap clock (clock.c) for its
 * timers and for the runnext slice. A reading costs ~11 ns on a VM, and
 * a branch taken at a fixed period the predictor cannot learn is
 * mispredicted each time: read every 8 picks for the timers, it cost one
 * ping-pong round trip in four ~20 ns. So readings follow the work, about
 * one per CLOCK_PACE_NS: from the time since the previous reading and
 * the picks it spanned (about clock_mask + 1), the next comes after as
 * many picks (a power of two) as fit in CLOCK_PACE_NS; fewer at once when
 * slices got longer, at most twice as many when they got shorter. Below
 * 64 picks the fast pick reads it (for the timers) when its countdown &
 * clock_mask is 0. From 64 on the global-queue checks (gq_check_fast, or
 * the slow pick) read it, for both: every one of them, except while a
 * runnext hand-off is next, then every ((clock_mask >> 6) + 1)-th. A
 * streak of message hand-offs reads it at its own checks ("Hand-off
 * checks"), every clock_mask + 1 hand-offs. Hand-offs (~40 ns a pick)
 * read it about every 1,000 picks, slices of 100 us or more at every
 * pick. So a timer fires late by about CLOCK_PACE_NS plus one slice.
 * The pace cannot see slices get longer before its next reading, so
 * only hand-offs stretch it: a pick that is not one (a yield, a wake-up,
 * a spawn) polls the timers at least every 8 picks and reads the clock
 * at every global-queue check, as before the pace; a streak whose
 * hand-offs turn slow reads it within 1,024 of them, once (4,096 took
 * churn_latency's p99.9 2 ns lower; test_timer checks the 8 after a
 * streak). Rejected: a fixed period (the cost above, or timers late by
 * that many long slices); a thread or a signal that flags due timers (a
 * wake-up per deadline, and signals that interrupt the processes' system
 * calls). */
static inline uint64_t sched_clock(nu__sched *s)
{
	uint64_t now = nu__tick(), gap = now - s->clock_at;
	uint64_t picks = s->clock_mask + 1u;
	uint64_t fit = gap ? s->clock_span * picks / gap : 2 * picks;
	s->clock_at = now;
	if (fit > 2 * picks)
		fit = 2 * picks;
	if (fit > CLOCK_MASK_MAX + 1u)
		fit = CLOCK_MASK_MAX + 1u;
	s->clock_mask = fit ? (1u << (63 - __builtin_clzll(fit))) - 1u : 0u;
	return now;
}

/* Does the global-queue check numbered `tick` read the clock? When a
 * timer is armed or others wait behind a runnext streak, and the pace
 * says so (see "Clock pace"). */
static inline int sched_clock_due(nu__sched *s, uint32_t tick)
{
	uint32_t skip = s->runnext ? s->clock_mask >> 6 : 0;
	return (nu__timers_pending(&s->timers) || runq_len(s) ||
		s->pinned_head) &&
	       !(tick & skip);
}

/* Which picks of the fast pick's countdown poll the timers: the pace's,
 * but at least every 8th unless a runnext hand-off is next (see "Clock
 * pace"). */
static inline uint32_t clock_poll_mask(const nu__sched *s)
{
	return s->runnext ? s->clock_mask : s->clock_mask & 7u;
}

/* At a global-queue check that read the clock (`now`, else 0): has the
 * runnext streak's slice run out while others wait? The first reading
 * starts the slice, and a check that finds nobody waiting ends it, so a
 * ping-pong pair alone reads no clock at all. The fast pick does not
 * look: a check of its own every 32 picks, even one that read nothing,
 * cost a round trip in sixteen ~15 ns (a branch the predictor cannot
 * learn at that period). */
static inline int runnext_expired(nu__sched *s, uint64_t now)
{
	if (!runq_len(s) && !s->pinned_head) { /* nobody waits */
		s->runnext_since = 0;
		return 0;
	}
	if (!now)
		return 0;
	if (!s->runnext_since) {
		s->runnext_since = now;
		return 0;
	}
	return now - s->runnext_since >= s->runnext_slice;
}

/* If the runnext streak has used up its slice while others wait,
 * runnext goes to the tail of the run queue, behind them. */
static void runnext_give_way(nu__sched *s, uint64_t now)
{
	nu__proc *p = s->runnext;
	if (!p || !runnext_expired(s, now))
		return;
	s->runnext = NULL;
	s->runnext_since = 0;
	runq_put(s, p);
}

/* runnext, unless it had to give way (runnext_give_way). */
static nu__proc *pick_runnext(nu__sched *s, uint64_t now)
{
	runnext_give_way(s, now);
	nu__proc *p = s->runnext;
	s->runnext = NULL;
	return p;
}

/* Read the clock at the pace's request (see "Clock pace") and fire the
 * timers it says are due: the reading. Off the fast pick's way. */
static __attribute__((noinline)) uint64_t sched_clock_poll(nu__sched *s)
{
	uint64_t now = sched_clock(s);
	if (nu__timers_pending(&s->timers))
		nu__timers_poll_at(s, &s->timers, now);
	if (now >= s->decay_at)
		sched_decay(s, now);
	return now;
}

/* Start the page walks of the next IO_POLL_TICKS queued processes
 * together (see "Run queue"): one line of each one's control block and
 * one at its saved stack pointer, owner only. An entry a thief takes
 * meanwhile costs a wasted prefetch. */
static void walk_ahead(nu__sched *s)
{
	uint32_t h = atomic_load_explicit(&s->rq_head, memory_order_relaxed);
	uint32_t t = atomic_load_explicit(&s->rq_tail, memory_order_relaxed);
	for (uint32_t k = 1; k <= IO_POLL_TICKS && t - h > k; k++) {
		uint32_t i = (h + k) % NU__RUNQ_SIZE;
		__builtin_prefetch(
			atomic_load_explicit(&s->rq[i], memory_order_relaxed),
			1);
		if (s->rq_sp[i]) /* its saved stack: often the page below */
			__builtin_prefetch(s->rq_sp[i], 1);
	}
}

/* The full pick: inbox, due global-queue check, bound processes, runnext,
 * run queue, global queue, then stealing when allowed. */
static __attribute__((noinline)) nu__proc *
sched_pick_slow(nu__sched *s, int may_steal, int gq_due)
{
	nu__proc *p;
	uint64_t now = 0; /* the cheap clock, if the pace reads it here */
	if (sched_clock_due(s, ++s->tick))
		now = sched_clock_poll(s);
	if (gq_due && !now && !(s->tick & (DECAY_CHECKS - 1)))
		sched_decay(s, nu__tick());
	if (gq_due) {
		int io = nu__io_busy(s);
		s->gq_countdown = io ? IO_POLL_TICKS : GQ_CHECK_TICKS;
		s->handoff_left = io ? IO_POLL_TICKS : s->clock_mask + 1u;
		if (io) {
			nu__io_poll(s); /* a busy scheduler's I/O batch */
			walk_ahead(s);
		}
	}
	if (atomic_load_explicit(&s->inbox, memory_order_relaxed))
		inbox_drain(s);
	if (s->credits && atomic_load_explicit(&nu__node_get()->tight,
					       memory_order_relaxed))
		nu__count_drain(s); /* a spawner elsewhere needs them */
	if (gq_due && (p = gq_get(s, s->grp)))
		return p;
	if (s->pinned_head && (s->tick & 1))
		return pinned_get(s);
	if ((p = pick_runnext(s, now)))
		return p;
	s->runnext_since = 0;
	if ((p = runq_get(s)) || (p = pinned_get(s)))
		return p;
	if ((p = gq_get(s, s->grp)))
		return p;
	return may_steal ? steal(s) : NULL;
}

/* Warm the caches for the process queued at position i (see "Run
 * queue"): its control block's first lines and the top of its saved
 * stack, which its resume pops first. Only the sp hint is read: the
 * entry may be stolen meanwhile (then the prefetches are wasted). */
static inline void prefetch_next(nu__sched *s, uint32_t i)
{
	const char *c = (const char *)atomic_load_explicit(
		&s->rq[i % NU__RUNQ_SIZE], memory_order_relaxed);
	const char *sp = s->rq_sp[i % NU__RUNQ_SIZE];
	nu__prefetch_lines(c, PREFETCH_CB_LINES);
	if (sp)
		nu__prefetch_lines(sp, PREFETCH_STACK_LINES);
}

/* Does the check numbered s->tick + 1 need the slow pick? The global
 * queue has processes, it is the decay's turn, I/O is in flight, bound
 * processes wait, or a spawner elsewhere waits for spare credits. */
static inline int check_needs_slow(nu__sched *s)
{
	return atomic_load_explicit(&s->grp->gq_len, memory_order_relaxed) ||
	       !((s->tick + 1) & (DECAY_CHECKS - 1)) || nu__io_busy(s) ||
	       s->pinned_head ||
	       (s->credits && atomic_load_explicit(&nu__node_get()->tight,
						   memory_order_relaxed));
}

/* A due global-queue check in the fast pick's way: 1 when there was
 * nothing to do but perhaps read the clock (no global queue, no I/O, no
 * bound processes, nobody wanting this scheduler's spare credits), 0 when
 * the slow pick must run. Then the fast pick goes on: the slow pick
 * cost the round trip it fell in ~37 ns, this ~11 (one round trip in 30
 * of a ping-pong pair; a `churn_latency` round trip sequence, 3.3% of
 * them). A clock reading the pace asks for (see "Clock pace") is taken
 * here too: timers polled, and a runnext whose slice ran out gives way
 * (the fast pick then takes the run queue's head). In the slow pick a
 * reading cost a round trip ~40 ns, and at a reading every ~1,000 round
 * trips that set churn_latency's p99.9. */
static __attribute__((noinline)) int gq_check_fast(nu__sched *s)
{
	if (check_needs_slow(s))
		return 0;
	if (sched_clock_due(s, s->tick + 1))
		runnext_give_way(s, sched_clock_poll(s));
	s->tick++;
	s->gq_countdown = GQ_CHECK_TICKS;
	return 1;
}

/* Hand-off checks. A streak of message hand-offs (runnext, a ping-pong
 * pair, a call and its reply) does not count down to the global-queue
 * check: each check that finds nothing, one in 61 picks, cost its round
 * trip ~11 ns, mostly a branch the predictor cannot learn at that period,
 * and set the ping-pong's tail (in an ad hoc run, 12,204 of the 17,826
 * round trips at or above the p99.9 fell on one residue mod 61). A
 * streak checks instead at the clock pace ("Clock pace"): every
 * clock_mask + 1 hand-offs (1,024 at most, ~40 us of ping-pong), or
 * every IO_POLL_TICKS while I/O is in flight (the I/O layer clamps the
 * countdown when it queues an op: nu__sched_io_queued). A countdown
 * (handoff_left) rather than a counter and a mask: the inline park's look
 * is a compare and a decrement, 6 instructions a ping-pong round trip
 * fewer. The check does what the global-queue check does, reading the
 * clock when timers wait, when processes wait behind the streak (its
 * slice), or while the pace is below its longest (so a streak of slow
 * hand-offs keeps a short period).
 * Go's runnext likewise leaves schedtick alone. Bounds: the global queue
 * waits at most one period behind a streak (Go: up to sysmon's 10 ms
 * preemption); a timer armed in a streak whose hand-offs were fast and
 * turn slow waits up to 1,024 of them once, as before. 1 when the
 * hand-off goes on (runnext may have given way), 0 when the slow pick
 * must run (global queue, I/O, bound processes, spare credits, decay). */
static __attribute__((noinline)) int handoff_check(nu__sched *s)
{
	if (check_needs_slow(s))
		return 0;
	s->tick++;
	uint64_t now = 0;
	if (nu__timers_pending(&s->timers) || runq_len(s) ||
	    s->clock_mask < CLOCK_MASK_MAX)
		now = sched_clock_poll(s);
	s->handoff_left = s->clock_mask + 1u;
	runnext_give_way(s, now);
	return 1;
}

/* The next process to run on s, or NULL. The common cases are inline: a
 * hand-off (runnext, no bound processes, no inbox; its checks at the
 * pace), then no inbox, no bound processes and no global-queue check due
 * (or one with nothing to do); everything else goes through
 * sched_pick_slow. */
static inline __attribute__((always_inline)) nu__proc *
sched_pick(nu__sched *s, int may_steal)
{
	nu__proc *p;
	if (nu__sched_handoff_open(s)) {
		/* a hand-off: the checks come at the pace ("Hand-off
		 * checks") */
		if (__builtin_expect(
			    --s->handoff_left != 0, 1) ||
		    handoff_check(s)) {
			if ((p = s->runnext)) {
				s->runnext = NULL;
				return p;
			}
		} else {
			return sched_pick_slow(s, may_steal, 1);
		}
	}
	int gq_due = --s->gq_countdown == 0; /* (the slow pick reloads it) */
	if (__builtin_expect(gq_due, 0) && gq_check_fast(s))
		gq_due = 0;
	if (!__builtin_expect(gq_due, 0) &&
	    __builtin_expect(nu__timers_pending(&s->timers), 0) &&
	    !(s->gq_countdown & clock_poll_mask(s)))
		sched_clock_poll(s);
	if (__builtin_expect(gq_due || atomic_load_explicit(
					       &s->inbox, memory_order_relaxed),
			     0))
		return sched_pick_slow(s, may_steal, gq_due);
	if (s->pinned_head && (s->gq_countdown & 1))
		return pinned_get(s);
	p = s->runnext;
	if (p) {
		s->runnext = NULL;
		return p;
	}
	uint32_t h = atomic_load_explicit(&s->rq_head, memory_order_acquire);
	uint32_t t = atomic_load_explicit(&s->rq_tail, memory_order_relaxed);
	if (t != h) {
		p = atomic_load_explicit(&s->rq[h % NU__RUNQ_SIZE],
					 memory_order_relaxed);
		if (atomic_compare_exchange_strong_explicit(
			    &s->rq_head, &h, h + 1, memory_order_release,
			    memory_order_relaxed)) {
			s->runnext_since = 0;
			if (t - h >= 2)
				prefetch_next(s, h + 1);
			return p;
		}
	}
	if (s->pinned_head)
		return pinned_get(s);
	return sched_pick_slow(s, may_steal, 0);
}

/* ---------------------------------------------------------- hand-off */

static void requeue(nu__sched *s, nu__proc *p)
{
	nu__sched_ready(s, p, 0);
}

/* Commit p's park: RUNNING -> PARKED, unless it was woken meanwhile
 * (NOTIFIED: it goes back to the run queue). */
static inline __attribute__((always_inline)) void park_commit(nu__sched *s,
							    nu__proc *p)
{
	int exp = NU__WS_RUNNING;
	if (__builtin_expect(!atomic_compare_exchange_strong(
				     &p->wstate, &exp, NU__WS_PARKED),
			     0)) {
		/* woken while parking */
		atomic_store(&p->wstate, NU__WS_RUNNING);
		requeue(s, p);
	} else if (__builtin_expect(
			   atomic_load(&nu__node_get()->stopping), 0)) {
		/* Shutdown's walk may have passed p before the CAS (seq_cst
		 * on both sides: one of us sees the other). */
		nu__proc_wake(p);
	}
}

/* Commit p's park in a receive: its normal lane's `top` goes from empty
 * (NULL, or the message it took last) to NU__MAIL_ASLEEP, unless a push
 * came in between (p goes back to the run queue to take it). The next
 * push wakes p without touching wstate (mailbox.c). Any other waker sets
 * NOTIFIED, then claims the park word (nu__mailbox_claim); p's side is
 * the mirror image, CAS on `top` then a look at wstate, all seq_cst, so
 * one of the two sees the other; the claim CAS picks one. Shutdown's walk
 * is such a waker. */
static inline __attribute__((always_inline)) void
park_commit_mail(nu__sched *s, nu__proc *p)
{
	if (__builtin_expect(
		    !nu__lane_sleep(&p->mailbox.lane[NU__LANE_NORMAL]), 0)) {
		requeue(s, p); /* a push came in */
		return;
	}
	if (__builtin_expect(
		    atomic_load(&p->wstate) == NU__WS_NOTIFIED ||
			    atomic_load(&nu__node_get()->stopping),
		    0) &&
	    nu__mailbox_claim(p))
		requeue(s, p);
}

static inline void credits_check(nu__sched *s)
{
	if (s->credits && atomic_load_explicit(&nu__node_get()->tight,
					       memory_order_relaxed))
		nu__count_drain(s); /* a spawner elsewhere waits for them */
}

/* The deferred park, if any, is committed now (see "Deferred park"). */
static inline void lazy_commit(nu__sched *s)
{
	nu__proc *p = s->park_lazy;
	if (p) {
		__atomic_store_n(&s->park_lazy, NULL, __ATOMIC_RELAXED);
		park_commit_mail(s, p);
	}
}

/* Perform what the context that just switched out asked for. */
void nu__sched_after_slow(nu__sched *s)
{
	lazy_commit(s);
	int a = s->after;
	nu__proc *p = s->after_proc;
	s->after = NU__AFTER_NONE;
	if (a == NU__AFTER_YIELD)
		requeue(s, p);
	else if (a == NU__AFTER_PARK)
		park_commit(s, p);
	else if (a == NU__AFTER_PARK_MAIL)
		park_commit_mail(s, p);
	else
		nu__proc_reap(s, p);
	credits_check(s);
}

/* nu__sched_after with a park's commit and the yield of an unbound
 * process inline: a yield appends to the ring when it has room and
 * nothing overflowed, and wakes a thief only when the group has parked
 * schedulers and no spinning one. */
static inline __attribute__((always_inline)) void after_fast(nu__sched *s,
							   int defer)
{
	nu__proc *lazy = s->park_lazy;
	if (!s->after) {
		if (lazy)
			lazy_commit(s);
		return;
	}
	nu__proc *p = s->after_proc;
	if (s->after == NU__AFTER_PARK_MAIL) {
		if (defer) { /* p's park waits for this slice to end */
			nu__sched_defer_park(s);
			/* No credits_check: this is a hand-off streak's
			 * switch, whose checks at the pace ("Hand-off
			 * checks") give spare credits back to a spawner that
			 * waits for them, within 1,024 hand-offs (it waits
			 * up to 50 ms: proc.c, count_take). Its load of the
			 * node's `tight` cost a round trip ~10 instructions. */
			return;
		}
		s->after = NU__AFTER_NONE;
		lazy_commit(s);
		park_commit_mail(s, p);
		credits_check(s);
		return;
	}
	lazy_commit(s);
	if (s->after == NU__AFTER_PARK) {
		s->after = NU__AFTER_NONE;
		park_commit(s, p);
		credits_check(s);
		return;
	}
	if (s->after == NU__AFTER_YIELD && p->bind_sched == s->id) {
		s->after = NU__AFTER_NONE;
		pinned_put(s, p);
		return;
	}
	if (s->after != NU__AFTER_YIELD || p->bind_sched >= 0 ||
	    p->bind_group >= 0 || s->ovf_len) {
		nu__sched_after_slow(s);
		return;
	}
	uint32_t h = atomic_load_explicit(&s->rq_head, memory_order_acquire);
	uint32_t t = atomic_load_explicit(&s->rq_tail, memory_order_relaxed);
	if (t - h >= NU__RUNQ_SIZE) {
		nu__sched_after_slow(s);
		return;
	}
	s->after = NU__AFTER_NONE;
	atomic_store_explicit(&s->rq[t % NU__RUNQ_SIZE], p,
			      memory_order_relaxed);
	s->rq_sp[t % NU__RUNQ_SIZE] = p->sp;
	atomic_store_explicit(&s->rq_tail, t + 1, memory_order_release);
	if (__builtin_expect(atomic_load_explicit(&s->grp->nparked,
						  memory_order_relaxed),
			     0))
		wake_idle(s);
}

/* Switch from the loop context into p. */
static void sched_run(nu__sched *s, nu__proc *p)
{
	s->current = p;
	__atomic_store_n(&p->sched, s, __ATOMIC_RELAXED); /* (mailbox.c) */
	s->reds = s->budget;
	nu__fiber_leave(&s->asan_fake, p->stack_lo,
			(size_t)(p->stack_hi - p->stack_lo));
	nu__fiber_tsan_switch(p->tsan_fiber);
	nu__ctx_swap(&s->sp, p->sp, s);
	nu__fiber_arrive(s->asan_fake);
	s->current = NULL;
	after_fast(s, 0);
}

/* A process resumed from a yield takes what was pushed to it meanwhile
 * (BEAM moves signals in at schedule-in too): the messages are still in
 * cache, a spawner monitoring its children does not face a million cold
 * DOWNs at the end, and exit signals act at this safe point. */
static inline void yield_take(nu__proc *p)
{
	nu__lane *ln = &p->mailbox.lane[NU__LANE_NORMAL];
	nu__msg *top = atomic_load_explicit(&ln->top, memory_order_relaxed);
	if (__builtin_expect(!p->io_busy && top && top != ln->seen, 0))
		nu__mailbox_take_signals(p);
}

static inline __attribute__((always_inline)) nu__sched *
switch_out(nu__sched *s, nu__proc *p, int after)
{
	nu__proc *q = NULL;
	nu__sched_account(s, p);
	if (after == NU__AFTER_PARK || after == NU__AFTER_PARK_MAIL) {
		q = sched_pick(s, 0); /* hand the CPU straight to the next */
	} else if (after == NU__AFTER_YIELD) {
		lazy_commit(s); /* a slice ends here, even if p goes on */
		q = sched_pick(s, 0);
		/* Nothing else here: keep running, but let the loop context
		 * look around (steal, flush) now and then. */
		if (!q && (++s->lone_yields & 63)) {
			s->reds = s->budget;
			nu__proc_check_kill(s, p);
			yield_take(p);
			return s;
		}
	}
	nu__sched_save(s, p);
	if (after == NU__AFTER_YIELD && q && p->bind_sched == s->id) {
		/* Bound here: no thief can take it, so it may be queued
		 * before its registers are saved. */
		pinned_put(s, p);
	} else {
		s->after = after;
		s->after_proc = p;
		s->after_out = NULL; /* (a plain receive's inline park's) */
	}
	void **fake = after == NU__AFTER_EXIT ? NULL : &p->asan_fake;
	nu__sched *r;
	if (q) {
		r = nu__sched_switch_to(s, p, q, fake);
	} else {
		nu__fiber_leave(fake, s->loop_stack_lo, s->loop_stack_size);
		nu__fiber_tsan_switch(s->tsan_fiber);
		r = nu__ctx_swap(&p->sp, s->sp, s);
	}
	/* Resumed, perhaps on another thread: r is the scheduler now. */
	nu__fiber_arrive(p->asan_fake);
	after_fast(r, 1);
	*r->errno_at = p->saved_errno;
	nu__proc_check_kill(r, p);
	if (after == NU__AFTER_YIELD)
		yield_take(p);
	return r;
}

nu__sched *nu__sched_switch_out(nu__sched *s, nu__proc *p, int after)
{
	return switch_out(s, p, after);
}

/* Park the current process p of s (proc.h), unless it was woken already:
 * then a wake (perhaps a kill) is acted on as after a resume (else a
 * sleeper would park again and die only when its timer fires). A load
 * before the CAS: a CAS that fails is still a locked instruction, and
 * most parks find no early wake (only wakers move RUNNING on). */
static inline __attribute__((always_inline)) nu__sched *
park_as(nu__sched *s, int after)
{
	nu__proc *p = s->current;
	int exp = NU__WS_NOTIFIED;
	if (atomic_load_explicit(&p->wstate, memory_order_relaxed) == exp &&
	    atomic_compare_exchange_strong(&p->wstate, &exp, NU__WS_RUNNING)) {
		nu__proc_check_kill(s, p);
		return nu__sched_charge(s, 1);
	}
	return switch_out(s, p, after);
}

nu__sched *nu__proc_park(nu__sched *s)
{
	return park_as(s, NU__AFTER_PARK);
}

nu__sched *nu__proc_park_mail(nu__sched *s)
{
	return park_as(s, NU__AFTER_PARK_MAIL);
}

void nu__sched_after_resume(nu__sched *s)
{
	after_fast(s, 1);
}

void nu__sched_park_commit_mail(nu__sched *s, nu__proc *p)
{
	park_commit_mail(s, p);
}

/* nu_yield lives here so that the whole yield path is one function. */
int nu_yield(void)
{
	nu__sched *s = nu__sched_here(); /* read once, before the switch */
	if (__builtin_expect(!s || !s->current, 0))
		return -EPERM;
	switch_out(s, s->current, NU__AFTER_YIELD);
	return 0;
}

/* -------------------------------------------------------------- park */

/* Anything for s to do? Checked after s has announced it is parking. */
static int sched_has_work(nu__sched *s)
{
	nu__node *n = nu__node_get();
	nu__group *g = s->grp;
	if (nu__timers_pending(&s->timers) &&
	    nu__timers_wait_ns(&s->timers, nu__now_ns()) == 0)
		return 1;
	if (atomic_load(&s->inbox) || atomic_load(&g->gq_len) || s->runnext ||
	    s->pinned_head || s->ovf_len || runq_len(s))
		return 1;
	for (int i = 0; i < g->count; i++)
		if (runq_len(n->sched[g->first + i]))
			return 1;
	/* Spare credits must go back before sleeping when the node stops or
	 * the table is tight (someone waits for them); a doorbell sent while
	 * we were spinning was not rung. */
	if (s->credits && (atomic_load(&n->stopping) || atomic_load(&n->tight)))
		return 1;
	return atomic_load(&n->stopping) && atomic_load(&n->reserved) == 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Before sleeping, look for work for up to SPIN_NS while counted as
 * spinning, so producers do not pay a doorbell (a system call) for every
 * burst of work: a sleep/wake round trip costs far more than the spin.
 * Returns 1 when work showed up. */
static int sched_spin(nu__sched *s)
{
	if (!s->spinning) {
		s->spinning = 1;
		atomic_fetch_add(&s->grp->nspinning, 1);
	}
	uint64_t end = mono_ns() + SPIN_NS;
	do {
		/* a few pauses between looks: one pause is ~140 cycles on
		 * recent Intel cores; 64 made every cross-scheduler wake
		 * wait ~3 us */
		for (int i = 0; i < 4; i++)
			cpu_relax();
		if (sched_has_work(s))
			return 1;
	} while (mono_ns() < end);
	return 0;
}

/* Nonzero when s keeps more warm slots than a sleeping scheduler should. */
static int sched_warm_excess(nu__sched *s, nu__node *n)
{
	const nu__region *r = &n->mem.regions[s->slots.group];
	return s->slots.nwarm > NU__WARM_IDLE_KEEP ||
	       __atomic_load_n(&r->ndepot, __ATOMIC_RELAXED) >
		       NU__WARM_IDLE_KEEP;
}

/* Sleep until work arrives, or a timer is due, or, when max_ns >= 0, at
 * most max_ns. */
static void sched_park(nu__sched *s, int64_t max_ns)
{
	nu__group *g = s->grp;
	if (s->spinning) {
		s->spinning = 0;
		atomic_fetch_sub(&g->nspinning, 1);
	}
	atomic_store(&s->parked, 1);
	idle_bit(g, s->id, 1);
	atomic_fetch_add(&g->nparked, 1);
	if (!sched_has_work(s)) {
		int64_t t = nu__timers_wait_ns(&s->timers, nu__now_ns());
		if (max_ns >= 0 && (t < 0 || t > max_ns))
			t = max_ns;
		nu__ring_wait(&s->ring, t);
	}
	atomic_store(&s->parked, 0);
	if (idle_unclaim(g, s->id))
		atomic_fetch_sub(&g->nparked, 1);
	else
		s->spinning = 1; /* a waker claimed us and counted us */
}

static void sched_found_work(nu__sched *s)
{
	if (s->spinning) {
		s->spinning = 0;
		atomic_fetch_sub(&s->grp->nspinning, 1);
	}
}

/* Nothing to do: sleep. A scheduler that stays idle TRIM_IDLE_NS with
 * more warm slots or cached message blocks than it keeps while sleeping,
 * or record pages that may have emptied, gives the excess back
 * (nu__slot_trim, nu__block_trim, nu__pool_trim) before sleeping
 * on: a burst's warm set is not kept forever, and a scheduler idle
 * between the bursts of a busy node does not trim a set the next burst
 * needs (trimming at every sleep made spawn_exit on two schedulers 50%
 * slower). */
static void sched_idle(nu__sched *s, nu__node *n)
{
	sched_decay(s, nu__tick()); /* woken often, it may never trim */
	if (!s->slots.npend && !sched_warm_excess(s, n) &&
	    s->nblocks <= NU__BLOCK_IDLE_KEEP &&
	    !nu__pool_trimmable(&s->recs)) {
		sched_park(s, -1);
		return;
	}
	uint64_t t0 = nu__now_ns();
	sched_park(s, TRIM_IDLE_NS);
	if (nu__now_ns() - t0 < TRIM_IDLE_NS || sched_has_work(s))
		return;
	nu__slot_flush(&n->mem, &s->slots);
	nu__slot_trim(&n->mem, &s->slots, NU__WARM_IDLE_KEEP);
	nu__block_trim(s, NU__BLOCK_IDLE_KEEP);
	nu__pool_trim(&s->recs, NU__RECS_IDLE_KEEP);
}

static void sched_loop(nu__sched *s)
{
	nu__node *n = nu__node_get();
	for (;;) {
		nu__timers_poll(s, &s->timers);
		nu__proc *p = sched_pick(s, 1);
		if (p) {
			sched_found_work(s);
			sched_run(s, p);
			if (nu__slot_flush_due(&s->slots))
				nu__slot_flush(&n->mem, &s->slots);
			continue;
		}
		if (nu__io_busy(s) && nu__io_poll(s))
			continue; /* completions made someone runnable */
		if (atomic_load(&n->stopping) || atomic_load(&n->tight))
			nu__count_drain(s);
		if (atomic_load(&n->stopping) &&
		    atomic_load(&n->reserved) == 0) {
			nu__sched_kick_all(s);
			break;
		}
		if (!sched_spin(s))
			sched_idle(s, n);
	}
	sched_found_work(s);
}

/* ------------------------------------------------------------ thread */

static void loop_stack_bounds(nu__sched *s)
{
	pthread_attr_t a;
	s->loop_stack_lo = NULL;
	s->loop_stack_size = 0;
	if (pthread_getattr_np(pthread_self(), &a))
		return;
	pthread_attr_getstack(&a, &s->loop_stack_lo, &s->loop_stack_size);
	pthread_attr_destroy(&a);
}

/* Set the thread up; 0 or -errno. */
static int sched_setup(nu__sched *s, nu__node *n)
{
	tls_sched = s;
	s->errno_at = &errno;
	s->budget = (int32_t)n->cfg.reductions;
	s->gq_countdown = GQ_CHECK_TICKS;
	s->handoff_left = CLOCK_MASK_MAX + 1u;
	s->runnext_slice = nu__ticks_in(RUNNEXT_SLICE_NS);
	s->clock_span = nu__ticks_in(CLOCK_PACE_NS);
	loop_stack_bounds(s);
	s->tsan_fiber = nu__fiber_tsan_current();
	int rc = nu__thread_pin(s->cpu);
	if (!rc)
		rc = nu__timers_init(&s->timers, s->id);
	if (rc)
		return rc;
	int ti = nu__topo_node_index(&n->topo, s->grp->node_id);
	return nu__ring_init(&s->ring, n->ring_mode,
			     ti >= 0 ? n->topo.cpus[ti] : NULL,
			     ti >= 0 ? n->topo.ncpus[ti] : 0);
}

void *nu__sched_main(void *arg)
{
	nu__sched *s = arg;
	nu__node *n = nu__node_get();
	int rc = sched_setup(s, n);
	if (!rc)
		rc = nu__fault_thread_init(s);
	/* The ring is closed by node_free, after every scheduler thread has
	 * ended: until then another scheduler may still ring its doorbell
	 * (the last exit's kick), and a closed eventfd's number could already
	 * be someone else's file. */
	if (!nu__node_sched_ready(n, rc) || rc) {
		nu__fault_thread_fini(s);
		nu__timers_fini(&s->timers);
		tls_sched = NULL;
		return NULL;
	}
	if (s->id == 0)
		nu__node_spawn_main(s);
	sched_loop(s);
	nu__slot_flush(&n->mem, &s->slots);
	nu__timers_fini(&s->timers);
	nu__fault_thread_fini(s);
	tls_sched = NULL;
	return NULL;
}
