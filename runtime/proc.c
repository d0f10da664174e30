/* proc.c — processes: pids, spawn, exit, park/wake, kill.
 *
 * Entities
 *   process  a control block (nu__proc) at a fixed place in its slot (mem.c)
 *            plus the slot's stack and heap windows. It is created by spawn,
 *            runs fn(arg) on its own stack, and ends by returning, by
 *            nu_exit(), or by being killed.
 *   pid      slot index + the slot's generation (proc.h). The process table
 *            is the array of generations (mem.c): odd while a process lives
 *            in the slot, even while it is free. A pid is alive exactly when
 *            the table holds its generation, so a dead pid never names a
 *            later process (a slot is reused 2^31 times before a generation
 *            repeats).
 *
 * Life cycle. spawn takes a slot (warm: no system call, no fault), writes
 * the control block and a start frame (arch/ctx.h), publishes the new
 * generation (release), and makes the process runnable in the spawner's
 * runnext. Exit records the reason and switches out for the last time;
 * the context that resumes next on that thread reaps it (sched.c
 * hand-off): generation bumped to even (release: the pid is dead before the
 * slot can be reused), count decremented, slot returned.
 *
 * Parking (wstate). A parking process cannot mark itself parked before its
 * registers are saved, or a waker on another CPU could resume it while it
 * is still running. So it switches out with NU__AFTER_PARK and the resumed
 * context commits RUNNING -> PARKED by CAS. A waker CASes PARKED -> RUNNING
 * (and makes it runnable) or RUNNING -> NOTIFIED; a failed commit means a
 * wake came in between, so the process is requeued at once. All wstate
 * operations are seq_cst CAS on one word: every wake is seen by exactly one
 * of the two sides. A park in a receive commits on the mailbox instead
 * (its park word, sched.c: park_commit_mail), so that the push that
 * finds it is the wake, with no CAS of its own; wstate stays RUNNING,
 * and every other waker sets NOTIFIED, then claims the park word. That
 * commit waits for the end of the next slice on the same thread, and a
 * push from that slice cancels it (sched.c: deferred park).
 *
 * Pending work. Others ask a process for something by setting bits in
 * its `pending` word (release) and waking it; every resume point checks
 * `pending` and its scheduler's `stop` flag (two loads) and, when either
 * is set, acts: exit signals queued in the mailbox (signal.c), a prune of
 * the relation stack (relation.c), or the shutdown kill, whose reason is
 * read after the acquire exchange of the bits. Shutdown sets `stopping` and
 * every scheduler's `stop`, then wakes every parked process it finds; a
 * process that parks after the walk passed it re-checks `stopping` right
 * after its park is committed (seq_cst CAS, then seq_cst load, against the
 * walker's seq_cst store then load), so one side or the other wakes it. A
 * process spawned during the walk exits at its first resume.
 */
#include "proc.h"

#include <errno.h>
#include <string.h>

#include "call.h"
#include "ctx.h"
#include "fiber.h"
#include "io/io.h"
#include "node.h"
#include "relation.h"
#include "sched.h"
#include "term.h"

/* Reductions a spawn costs. A spawn does ~40 times the work of a plain
 * runtime call, and the charge bounds how many fresh processes a spawning
 * loop creates per slice (budget / charge = 100 by default): their slots
 * stay hot in cache and TLB when they exit and are reused. At 1 the loop
 * kept 4000 processes alive per slice and ran 5x slower (DESIGN §4's warm
 * set is about pages; this is about the TLB). */
#define SPAWN_REDUCTIONS 40

_Static_assert(sizeof(nu__proc) <= NU__P_CB_MAX,
	       "control block must fit its place in the shared page");

/* ------------------------------------------------------ the count */

/*
 * The live-process count is global (max_procs bounds it), but a shared
 * counter touched by every spawn and exit bounces its cache line between
 * schedulers. So each scheduler holds a few table entries in advance
 * (credits, taken from and given back to n->reserved in batches):
 * reserved = live processes + credits held. A spawn uses a credit, an exit
 * returns one to the scheduler it exits on. Near the limit (`tight`, set
 * once a batch does not fit) and while stopping, credits go back at once,
 * so the count is exact there; before the first tight moment a spawn may
 * fail up to nsched x 2 x CREDIT_BATCH entries early, while other
 * schedulers hold spare credits (they return them as their processes
 * exit). The node never holds more than max_procs processes.
 */
#define CREDIT_BATCH 64

static void credits_set(nu__sched *s, int64_t c)
{
	__atomic_store_n(&s->credits, c, __ATOMIC_RELAXED);
}

/* Transfers between `reserved` and a scheduler's credits are bracketed by
 * xfer_begin/xfer_end, so nu__count_live can tell that none ran while it
 * summed (a seqlock for many writers: they are rare, one per batch). */
static void xfer_begin(nu__node *n)
{
	atomic_fetch_add(&n->xfer_begin, 1);
}

static void xfer_end(nu__node *n)
{
	atomic_fetch_add(&n->xfer_end, 1);
}

/* Move delta entries from the scheduler's credits back to the global
 * count (delta may be negative for a batch taken; see count_reserve). */
static void count_return(nu__node *n, nu__sched *s, int64_t delta)
{
	xfer_begin(n);
	credits_set(s, s->credits - delta);
	atomic_fetch_sub(&n->reserved, delta);
	xfer_end(n);
}

/* Take up to a batch of entries from the global count into s's credits;
 * how many. */
static int64_t count_reserve(nu__node *n, nu__sched *s)
{
	int64_t max = (int64_t)n->cfg.max_procs;
	int64_t want = atomic_load(&n->tight) ? 1 : CREDIT_BATCH;
	xfer_begin(n);
	int64_t old = atomic_fetch_add(&n->reserved, want);
	int64_t got = want;
	if (old + want > max) {
		got = old < max ? max - old : 0;
		atomic_fetch_sub(&n->reserved, want - got);
		atomic_store(&n->tight, 1);
	}
	credits_set(s, s->credits + got);
	xfer_end(n);
	return got;
}

/* The table looks full: ask the schedulers holding spare credits to give
 * them back (they do when tight at their next spawn, exit or scheduling
 * round). 1 if some are held elsewhere, so a retry may succeed. */
static int count_reclaim(nu__node *n, nu__sched *s)
{
	int held = 0;
	for (unsigned i = 0; i < n->nsched; i++) {
		nu__sched *o = n->sched[i];
		if (o != s && __atomic_load_n(&o->credits, __ATOMIC_RELAXED)) {
			held = 1;
			nu__sched_kick(s, o);
		}
	}
	return held;
}

/* Take one table entry for a spawn: 0, or -EAGAIN when the table is full.
 * Exact: entries held by other schedulers are reclaimed first (the spawner
 * yields while they give them back, a bounded number of times). */
static int count_take(nu__node *n, nu__sched **sp)
{
	nu__sched *s = *sp;
	if (s->credits > 0) {
		credits_set(s, s->credits - 1);
		return 0;
	}
	uint64_t give_up = 0;
	for (;;) {
		if (count_reserve(n, s)) {
			credits_set(s, s->credits - 1);
			return 0;
		}
		if (!s->current || !count_reclaim(n, s))
			return -EAGAIN;
		/* Others hold spare entries and give them back at their next
		 * scheduling point; a scheduler stuck in a process that never
		 * yields would keep them, so wait 50 ms at most. */
		uint64_t now = nu__now_ns();
		if (!give_up)
			give_up = now + 50000000u;
		else if (now > give_up)
			return -EAGAIN;
		*sp = s = nu__sched_switch_out(s, s->current, NU__AFTER_YIELD);
	}
}

/* Give back the entry of a process that exited on s. */
static void count_give(nu__node *n, nu__sched *s)
{
	credits_set(s, s->credits + 1);
	int drain = atomic_load_explicit(&n->tight, memory_order_relaxed) ||
		    atomic_load_explicit(&n->stopping, memory_order_relaxed);
	int64_t keep = drain ? 0 : CREDIT_BATCH;
	if (drain || s->credits > 2 * CREDIT_BATCH)
		count_return(n, s, s->credits - keep);
}

void nu__count_drain(nu__sched *s)
{
	if (s->credits)
		count_return(nu__node_get(), s, s->credits);
}

int64_t nu__count_live(nu__node *n)
{
	for (;;) {
		uint64_t e = atomic_load(&n->xfer_end);
		int64_t held = 0;
		for (unsigned i = 0; i < n->nsched; i++)
			held += __atomic_load_n(&n->sched[i]->credits,
						__ATOMIC_SEQ_CST);
		int64_t r = atomic_load(&n->reserved);
		if (atomic_load(&n->xfer_begin) == e)
			return r - held;
	}
}

/* ------------------------------------------------------------- spawn */

/* Group index for a spawn's slot and placement, or -EINVAL. */
static int spawn_group(nu__node *n, nu__sched *s, const nu_spawn_opts *o)
{
	int g = (int)(s->grp - n->groups);
	if (o->scheduler >= 0) {
		if ((unsigned)o->scheduler >= n->nsched)
			return -EINVAL;
		g = (int)(n->sched[o->scheduler]->grp - n->groups);
	}
	if (o->node >= 0) {
		int k = -1;
		for (unsigned i = 0; i < n->ngroups; i++)
			if (n->groups[i].node_id == o->node)
				k = (int)i;
		if (k < 0 || (o->scheduler >= 0 && k != g))
			return -EINVAL;
		g = k;
	}
	return g;
}

static int spawn_check(nu__node *n, nu_fn fn, const nu_spawn_opts *o)
{
	if (!fn || !o || (unsigned)o->mailbox_policy > NU_MAILBOX_KILL)
		return -EINVAL;
	if (o->max_heap > ((size_t)1 << 40))
		return -EINVAL;
	if (o->stack_size &&
	    (o->stack_size < NU__MIN_STACK ||
	     o->stack_size > nu__slot_stack_max(&n->mem)))
		return -EINVAL;
	return 0;
}

/* A spawn's heap budget in pages (0: none): its max_heap, else the
 * node's, precomputed (no division on the common spawn). */
static inline uint32_t spawn_heap_max(const nu__mem *m, const nu_spawn_opts *o)
{
	return o->max_heap ? nu__mem_pages(m, o->max_heap) : m->heap_max_pages;
}

/* Write the control block and start frame of a fresh process, whose
 * heap budget is heap_max pages with heap_pages of them resident already
 * (a kept slot's: see mem.c). */
static void proc_init(nu__node *n, nu__proc *p, uint32_t index, nu_fn fn,
		      void *arg, const nu_spawn_opts *o, uint32_t heap_max,
		      uint32_t heap_pages)
{
	nu__mem *m = &n->mem;
	char *page = nu__slot_page(m, index);
	p->sched = NULL;
	p->next = NULL;
	p->index = index;
	p->flags = 0;
	__atomic_store_n(&p->send_hint, 0, __ATOMIC_RELAXED); /* (mailbox.c) */
	__atomic_store_n(&p->send_hint2, 0, __ATOMIC_RELAXED);
	p->bind_sched = o->scheduler;
	p->bind_group = -1;
	p->mbox_limit = o->max_mailbox;
	if (o->scheduler >= 0)
		p->flags |= NU__PF_PINNED;
	if (o->max_mailbox)
		p->flags |= NU__PF_BOUNDED;
	p->mbox_policy = (int)o->mailbox_policy;
	atomic_store_explicit(&p->mbox_count, 0, memory_order_relaxed);
	atomic_store_explicit(&p->mbox_waiters, NULL, memory_order_relaxed);
	atomic_store_explicit(&p->wstate, NU__WS_RUNNING, memory_order_relaxed);
	atomic_store_explicit(&p->pending, 0, memory_order_relaxed);
	atomic_store_explicit(&p->timed_out, 0, memory_order_relaxed);
	atomic_store_explicit(&p->wait_token, 0, memory_order_relaxed);
	p->reason = NU_ATOM_NORMAL;
	p->fn = fn;
	p->arg = arg;
	p->stack_hi = page + NU__P_STACK_TOP;
	p->stack_lo = p->stack_hi - nu__slot_stack_max(m);
	p->sp_low = (uintptr_t)p->stack_hi;
	p->reductions = 0;
	p->saved_errno = 0;
	p->io_busy = 0;
	p->io_fd = -1;
	p->io_res_lo = (uintptr_t)page; /* P: always resident */
	p->asan_fake = NULL;
	nu__mailbox_init(&p->mailbox);
	p->dict = NULL;
	/* p->rels is left as it is: a record a stale watcher of the slot's
	 * last process pushed stays, and our prune or exit drops it */
	atomic_store_explicit(&p->rel_pushes, 0, memory_order_relaxed);
	atomic_store_explicit(&p->prune_at, 64, memory_order_relaxed);
	p->held = NULL;
	p->nheld = p->heldcap = 0;
	atomic_store_explicit(&p->call_watch, 0, memory_order_relaxed);
	p->calls = NULL;
	p->ncalls = p->callscap = 0;
	p->trap_exit = 0;
	p->reason_msg = NULL;
	p->frags = NULL;
	p->frag_bytes = 0;
	p->handling = NULL;
	nu__proc_imsg(p)->kind = 0; /* free */
	atomic_store_explicit(&p->exiting, 0, memory_order_relaxed);
	atomic_store_explicit(&p->reg_name, 0, memory_order_relaxed);
	nu__heap_init2(&p->heap, page + NU__P_HEAP, nu__slot_heap_size(m),
		       nu__slot_far(m, index), m->far_size);
	p->heap_pages = heap_pages;
	p->heap_max = heap_max;
	if (m->uffd < 0) /* the fallback: the allocator counts */
		p->heap.limit = (size_t)p->heap_max * m->page;
	p->sp = nu__ctx_make(p->stack_hi, nu__proc_entry, p);
}

/* A smaller stack than the window gets a guard page below it (a system
 * call: only for spawns that ask). */
static void proc_guard_stack(nu__node *n, nu__proc *p, size_t stack)
{
	if (!stack || stack >= nu__slot_stack_max(&n->mem))
		return;
	uintptr_t lo = ((uintptr_t)p->stack_hi - stack) & ~(n->mem.page - 1);
	if (nu__mem_guard(&n->mem, (void *)(lo - n->mem.page), 1) == 0) {
		p->flags |= NU__PF_GUARDED;
		p->stack_lo = (char *)lo;
	}
}

/* Take a table entry and a slot for a spawn in group g whose heap budget
 * is heap_max: the slot index, or -errno; *heap_pages gets the slot's
 * kept heap pages. The caller's scheduler may change (a table-full
 * wait). */
static int64_t spawn_slot(nu__node *n, nu__sched **sp, const nu_spawn_opts *o,
			  int *gp, uint32_t heap_max, uint32_t *heap_pages)
{
	if (count_take(n, sp))
		return -EAGAIN;
	nu__sched *s = *sp;
	int g = spawn_group(n, s, o);
	int64_t idx = g < 0 ? g
			    : nu__slot_get(&n->mem, &s->slots, g, heap_max,
					   heap_pages);
	if (idx < 0)
		count_give(n, s);
	*gp = g;
	return idx;
}

static nu_pid spawn_in(nu__sched **sp, nu_fn fn, void *arg,
		       const nu_spawn_opts *o, uint32_t flags)
{
	nu__node *n = nu__node_get();
	int rc = spawn_check(n, fn, o), g;
	if (rc)
		return rc;
	uint32_t heap_max = spawn_heap_max(&n->mem, o), kept_pages = 0;
	int64_t idx = spawn_slot(n, sp, o, &g, heap_max, &kept_pages);
	if (idx < 0)
		return (nu_pid)idx;
	nu__sched *s = *sp;
	nu__proc *p = nu__slot_proc(&n->mem, (uint32_t)idx);
	proc_init(n, p, (uint32_t)idx, fn, arg, o, heap_max, kept_pages);
	uint32_t gen = atomic_load_explicit(&n->mem.gen[idx],
					    memory_order_relaxed) + 1;
	nu_pid pid = p->pid = nu__pid_make((uint32_t)idx, gen);
	if ((o->monitor_ref || o->link) &&
	    (!s->current ||
	     nu__rel_spawn(s->current, p, o->link, o->monitor_ref))) {
		/* not published yet: give the slot and the entry back */
		nu__slot_put(&n->mem, &s->slots, (uint32_t)idx, p->sp_low,
			     nu__heap_top(&p->heap), nu__heap_far_top(&p->heap),
			     p->heap_pages);
		count_give(n, s);
		return s->current ? -ENOMEM : -EPERM;
	}
	if (o->node >= 0) {
		p->bind_group = g;
		p->flags |= NU__PF_PINNED;
	}
	p->flags |= flags;
	proc_guard_stack(n, p, o->stack_size);
	nu__fiber_unpoison(p->stack_lo, (size_t)(p->stack_hi - p->stack_lo));
	p->tsan_fiber = nu__fiber_tsan_new();
	p->sched = o->scheduler >= 0 ? n->sched[o->scheduler] : s;
	atomic_store_explicit(&n->mem.gen[idx], gen, memory_order_release);
	__atomic_store_n(&s->spawns, s->spawns + 1, __ATOMIC_RELAXED);
	nu__sched_ready(s, p, 1);
	return pid;
}

/* Spawn the main process from scheduler s's loop context. */
void nu__node_spawn_main(nu__sched *s)
{
	nu__node *n = nu__node_get();
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	nu_pid pid = spawn_in(&s, n->main_fn, n->main_arg, &o, NU__PF_MAIN);
	if (pid < 0) {
		atomic_store(&n->status, (int)pid);
		atomic_store(&n->stopping, 1);
	}
}

void nu_spawn_opts_init(nu_spawn_opts *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof(*o));
	o->scheduler = -1;
	o->node = -1;
}

nu_pid nu_spawn_opt(nu_fn fn, void *arg, const nu_spawn_opts *opts)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current)
		return -EPERM;
	nu_pid pid = spawn_in(&s, fn, arg, opts, 0);
	if (pid > 0)
		nu__sched_charge(s, SPAWN_REDUCTIONS);
	return pid;
}

nu_pid nu_spawn(nu_fn fn, void *arg)
{
	static const nu_spawn_opts dflt = { .scheduler = -1, .node = -1 };
	return nu_spawn_opt(fn, arg, &dflt);
}

/* -------------------------------------------------------------- exit */

void nu__proc_entry(void *sched, void *proc)
{
	nu__sched *s = sched;
	nu__proc *p = proc;
	nu__fiber_arrive(NULL);
	nu__sched_after(s);
	nu__proc_check_kill(s, p);
	p->fn(p->arg);
	nu__proc_exit(nu__sched_self(), p, NU_ATOM_NORMAL);
}

_Noreturn void nu__proc_exit(nu__sched *s, nu__proc *p, nu_term reason)
{
	p->reason = reason;
	atomic_store(&p->wait_token, 0); /* a pending timer finds nothing */
	nu__io_exit(p);
	nu__rel_exit(p);
	nu__call_exit(p);
	if (p->flags & NU__PF_GUARDED) {
		nu__node *n = nu__node_get();
		uintptr_t lo = (uintptr_t)p->stack_lo - n->mem.page;
		nu__mem_guard(&n->mem, (void *)lo, 0);
	}
	nu__sched_switch_out(s, p, NU__AFTER_EXIT);
	__builtin_trap(); /* a reaped process is never resumed */
}

void nu__proc_reap(nu__sched *s, nu__proc *p)
{
	nu__node *n = nu__node_get();
	uint32_t idx = p->index;
	uint32_t gen = atomic_load_explicit(&n->mem.gen[idx],
					    memory_order_relaxed);
	atomic_store_explicit(&n->mem.gen[idx], gen + 1, memory_order_release);
	nu__fiber_tsan_free(p->tsan_fiber);
	nu__mailbox_drain(&p->mailbox);
	nu__mailbox_release_waiters(p);
	nu__registry_exit(p);
	int main = p->flags & NU__PF_MAIN;
	nu_term reason = p->reason;
	nu__slot_put(&n->mem, &s->slots, idx, p->sp_low,
		     nu__heap_top(&p->heap), nu__heap_far_top(&p->heap),
		     p->heap_pages);
	if (main) /* first: stopping makes count_give return every credit */
		nu__node_main_exited(s, reason);
	if (p->reason_msg) /* held the reason: not needed any more */
		nu__msg_free(p->reason_msg);
	if (p->frags)
		nu__frags_free(p);
	if (p->handling) /* exited while handling it */
		nu__msg_free(p->handling);
	count_give(n, s);
	if (atomic_load(&n->stopping) && atomic_load(&n->reserved) == 0)
		nu__sched_kick_all(s);
}

void nu__heap_over_limit(void)
{
	static _Atomic nu_term heap_limit;
	nu__sched *s = nu__sched_self();
	nu__proc_exit(s, s->current, nu__atom_cached(&heap_limit, "heap_limit"));
}

void nu_exit(nu_term reason)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current)
		return;
	nu__proc_exit(s, s->current, reason);
}

/* -------------------------------------------------------- park/wake */

/* nu__proc_park and nu__proc_park_mail live in sched.c, so that the whole
 * park path is one function (like nu_yield's). */

/* nu__proc_wake; as_next: p runs next on this thread, else it queues. */
static void wake_as(nu__sched *s, nu__proc *p, int as_next)
{
	int st = atomic_load(&p->wstate);
	for (;;) {
		if (st == NU__WS_NOTIFIED)
			return; /* that waker does (or did) what follows */
		int to = st == NU__WS_PARKED ? NU__WS_RUNNING : NU__WS_NOTIFIED;
		if (atomic_compare_exchange_weak(&p->wstate, &st, to))
			break;
	}
	/* RUNNING -> NOTIFIED: p runs, or is parked in a receive, whose
	 * commit looks at wstate after its CAS on the park word (sched.c);
	 * this is the other half of that Dekker pair */
	if (st == NU__WS_PARKED || nu__mailbox_claim(p))
		nu__sched_ready(s, p, as_next);
}

void nu__proc_wake(nu__proc *p)
{
	wake_as(nu__sched_self(), p, 1);
}

void nu__proc_wake_tail(nu__sched *s, nu__proc *p)
{
	wake_as(s, p, 0);
}

void nu__proc_signal(nu__proc *p, int bits)
{
	/* release: what the bits ask about (a pushed signal, a pushed
	 * record) is visible to the acquire exchange in the slow path */
	atomic_fetch_or_explicit(&p->pending, bits, memory_order_release);
	nu__proc_wake(p);
}

void nu__proc_kill(nu__proc *p, nu_term reason)
{
	p->kill_reason = reason;
	nu__proc_signal(p, NU__PS_KILL);
}

void nu__proc_check_kill_slow(nu__sched *s, nu__proc *p)
{
	if (p->io_busy)
		return; /* an op in flight uses our stack: io.c acts later */
	if (atomic_load_explicit(&s->stop, memory_order_relaxed))
		nu__proc_exit(s, p, NU_ATOM_SHUTDOWN); /* the node stops */
	int bits = atomic_exchange_explicit(&p->pending, 0,
					    memory_order_acquire);
	if (bits & NU__PS_KILL)
		nu__proc_exit(s, p, p->kill_reason);
	if (bits & NU__PS_PRUNE)
		nu__rel_prune(p);
	if (bits & NU__PS_MAIL)
		nu__mailbox_take_signals(p); /* may end p */
}

/* Call fn(m, index, arg) for every slot ever carved. */
static void each_carved(void (*fn)(nu__mem *m, uint32_t idx, void *arg),
			void *arg)
{
	nu__mem *m = &nu__node_get()->mem;
	for (unsigned r = 0; r < m->nregions; r++) {
		nu__region *rg = &m->regions[r];
		uint32_t carved = atomic_load(&rg->carved);
		for (uint32_t i = 0; i < carved; i++)
			fn(m, rg->first + i, arg);
	}
}

void nu__proc_drain_slot(nu__mem *m, uint32_t idx)
{
	nu__proc *p = nu__slot_proc(m, idx);
	/* read-only first: a released slot reads as zeros */
	if (nu__mailbox_pushed(&p->mailbox))
		nu__mailbox_drain(&p->mailbox);
	if (atomic_load(&p->rels))
		nu__rel_drop_stale(p);
}

static void drain_slot(nu__mem *m, uint32_t idx, void *arg)
{
	(void)arg;
	nu__proc_drain_slot(m, idx);
}

void nu__proc_drain_all(void)
{
	each_carved(drain_slot, NULL);
}

static void kill_slot(nu__mem *m, uint32_t idx, void *arg)
{
	if (atomic_load(&m->gen[idx]) & 1)
		nu__proc_kill(nu__slot_proc(m, idx), *(nu_term *)arg);
}

void nu__proc_kill_all(nu_term reason)
{
	each_carved(kill_slot, &reason);
}

/* -------------------------------------------------------- public API */

nu_pid nu_self(void)
{
	nu__sched *s = nu__sched_self();
	return s && s->current ? s->current->pid : -EPERM;
}

int nu_is_alive(nu_pid pid)
{
	nu__node *n = nu__node_get();
	return n ? nu__pid_alive(n, pid) : -ESRCH;
}

int nu_scheduler_id(void)
{
	nu__sched *s = nu__sched_self();
	return s && s->current ? s->id : -EPERM;
}

/* ------------------------------------------------------- allocator */

static nu__heap *self_heap(void)
{
	nu__sched *s = nu__sched_here(); /* allocation never switches */
	return s && s->current ? &s->current->heap : NULL;
}

void *nu_alloc(size_t n)
{
	nu__heap *h = self_heap();
	return h ? nu__heap_alloc(h, n) : NULL;
}

void *nu_calloc(size_t n, size_t size)
{
	nu__heap *h = self_heap();
	return h ? nu__heap_calloc(h, n, size) : NULL;
}

/* A received message's block (mailbox.c) moved into the heap: as
 * realloc, p being such a block. */
static void *frag_realloc(nu__heap *h, nu__msg *m, size_t n)
{
	void *q = nu__heap_alloc(h, n);
	if (q) {
		memcpy(q, m->data, n < m->size ? n : m->size);
		nu__frag_free(nu__sched_self()->current, m);
	}
	return q;
}

void *nu_realloc(void *p, size_t n)
{
	nu__heap *h = self_heap();
	if (!h)
		return NULL;
	nu__msg *m = p && !nu__heap_owns(h, p) ? nu__frag_of(p) : NULL;
	return m ? frag_realloc(h, m, n) : nu__heap_realloc(h, p, n);
}

void nu_free(void *p)
{
	if (p)
		nu__free_here(p);
}

size_t nu_heap_used(void)
{
	nu__heap *h = self_heap();
	return h ? nu__heap_used(h) + nu__sched_self()->current->frag_bytes
		 : 0;
}
