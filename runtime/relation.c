/* relation.c — the records behind links and monitors, and what an
 * exiting process does with them.
 *
 * Entities
 *   relation  one record per monitor or link (relation.h), from the
 *             record pool (pool.c), shared by two processes and freed by
 *             the last reference:
 *             - the owner (the watcher; the process that linked) keeps it
 *               in `held`, an array only it touches; each record knows its
 *               index there (held_at), so removal is O(1) (it leaves
 *               a hole, which the next growth compacts away);
 *             - the target keeps it on `rels`, a lock-free stack that any
 *               process pushes onto with a CAS and only the target pops
 *               (prune, exit); the target may walk it at any time, since
 *               pushes never change a node already on it;
 *             - a signal in flight (DOWN, link exit) holds the reference
 *               of the side that sent it.
 *   state     ACTIVE until one CAS decides: OFF (demonitor/unlink), or
 *             CLAIMED by the side that exits, which then sends exactly one
 *             signal. A CLAIMED record belongs to the receiving side: it
 *             may turn it CANCELLED (unlink/demonitor before the signal
 *             was taken: the signal is dropped on arrival, so once
 *             unlink/demonitor returns the relation has no effect) and
 *             turns it OFF when it takes the signal (signal.c).
 *
 * Exit. The exiting process, still in process context with its heap
 * intact, claims what it holds, sets `exiting` (seq_cst), takes its stack
 * and claims what is there, and sends one signal per claim. A process that
 * pushes onto a stack re-checks the target's liveness and `exiting`
 * afterwards (seq_cst): either the target's take sees the record, or the
 * pusher sees the target gone, takes the record back with a CAS and acts
 * as if the target had been dead (noproc). Signals go after everything the
 * process sent before, on the same lane: a watcher sees those messages
 * before the DOWN.
 *
 * Dead and reused slots. A record pushed onto a slot whose process has
 * just died sits on the stack of the slot's next process, which drops it
 * (its target pid is not the holder's) at its next prune or exit, or
 * teardown does.
 *
 * Garbage. A monitor turned off stays on the target's stack until the
 * target prunes: pushers count pushes, and when the count reaches the
 * threshold the target set at its last prune (twice what survived, plus
 * 64) they ask it to prune at its next resume. So a server monitored and
 * demonitored by a million calls keeps a stack as long as its live
 * monitors, at O(1) amortised per push.
 *
 * Rejected: monitor and link requests queued as signals and applied by
 * the target when it runs (BEAM's way: a target in a long computation
 * delays even the registration, and every call needs a round of
 * signals); one node-wide table under a lock (a lock on every monitor and
 * on every exit).
 */
#include "relation.h"

#include <errno.h>
#include <stdlib.h>

#include "block.h"
#include "node.h"
#include "proc.h"
#include "signal.h"
#include "term.h"

#define PRUNE_SLACK 64

void nu__rel_unref_n(nu__rel *r, int n)
{
	/* Holding every reference left, the caller is the record's only
	 * user: no locked instruction (the acquire pairs with the release
	 * of the other holders' decrements). References are only ever
	 * dropped or handed over, never added, so the count cannot rise
	 * again. */
	if (atomic_load_explicit(&r->refs, memory_order_acquire) == n ||
	    atomic_fetch_sub_explicit(&r->refs, n, memory_order_acq_rel) == n)
		nu__rec_free(r);
}

void nu__rel_unref(nu__rel *r)
{
	nu__rel_unref_n(r, 1);
}

/* Room for one more held record: 0 or -ENOMEM. Before the list grows it
 * is compacted: holes left by removals go, and so do links the other end
 * turned off (amortised O(1): the list at most doubles its live part). */
static int held_room(nu__proc *me)
{
	if (me->nheld < me->heldcap)
		return 0;
	uint32_t j = 0;
	for (uint32_t i = 0; i < me->nheld; i++) {
		nu__rel *r = me->held[i];
		if (!r)
			continue;
		if (atomic_load(&r->state) == NU__REL_OFF) {
			r->held_at = NU__REL_NOT_HELD;
			nu__rel_unref(r);
			continue;
		}
		r->held_at = j;
		me->held[j++] = r;
	}
	me->nheld = j;
	if (me->heldcap && me->nheld <= me->heldcap / 2)
		return 0;
	uint32_t cap = me->heldcap ? 2 * me->heldcap : 4;
	nu__rel **h = realloc(me->held, cap * sizeof(*h));
	if (!h)
		return -ENOMEM;
	me->held = h;
	me->heldcap = cap;
	return 0;
}

nu__rel *nu__rel_new(nu__proc *me, int kind, nu_pid target, uint64_t ref)
{
	nu__rel *r = held_room(me) ? NULL : nu__rec_alloc(sizeof(*r));
	if (!r)
		return NULL;
	*r = (nu__rel){ .ref = ref, .owner = me->pid, .target = target,
			.held_at = me->nheld, .kind = kind };
	atomic_init(&r->state, NU__REL_ACTIVE);
	atomic_init(&r->refs, 2);
	me->held[me->nheld++] = r;
	return r;
}

int nu__rel_unlist(nu__proc *me, nu__rel *r)
{
	uint32_t i = r->held_at;
	if (i == NU__REL_NOT_HELD)
		return 0;
	/* a hole, not a swap with the last: that would touch another
	 * record (a cache miss per DOWN when a million are held) */
	me->held[i] = NULL;
	if (i == me->nheld - 1)
		me->nheld--;
	r->held_at = NU__REL_NOT_HELD;
	return 1;
}

void nu__rel_unhold(nu__proc *me, nu__rel *r)
{
	if (nu__rel_unlist(me, r))
		nu__rel_unref(r);
}

void nu__rel_cancel(nu__rel *r)
{
	int exp = NU__REL_ACTIVE;
	if (!atomic_compare_exchange_strong(&r->state, &exp, NU__REL_OFF) &&
	    exp == NU__REL_CLAIMED)
		atomic_compare_exchange_strong(&r->state, &exp,
					       NU__REL_CANCELLED);
}

/* The push itself: a Treiber push (ABA-free: a push never reads a node's
 * fields). */
static void stack_link(nu__proc *t, nu__rel *r)
{
	nu__rel *top = atomic_load_explicit(&t->rels, memory_order_relaxed);
	do
		r->next = top;
	while (!atomic_compare_exchange_weak_explicit(
		&t->rels, &top, r, memory_order_seq_cst,
		memory_order_relaxed));
}

/* A push, counted: every PRUNE_SLACK-th push past the threshold asks the
 * target to prune (a stale slot's next process may get the request:
 * harmless). */
static void stack_push(nu__proc *t, nu__rel *r)
{
	stack_link(t, r);
	uint32_t n = atomic_fetch_add_explicit(&t->rel_pushes, 1,
					       memory_order_relaxed) + 1;
	uint32_t at = atomic_load_explicit(&t->prune_at, memory_order_relaxed);
	if (n >= at && (n - at) % PRUNE_SLACK == 0)
		nu__proc_signal(t, NU__PS_PRUNE);
}

int nu__rel_attach(nu__proc *me, int kind, nu_pid target, uint64_t ref)
{
	nu__node *n = nu__node_get(); /* running: me is one of its processes */
	if (nu__pid_alive(n, target) != 1)
		return 1;
	nu__rel *r = nu__rel_new(me, kind, target, ref);
	if (!r)
		return -ENOMEM;
	nu__proc *t = nu__slot_proc(&n->mem, nu__pid_index(target));
	stack_push(t, r);
	/* re-check (seq_cst, against the exit's `exiting` then take) */
	if (nu__pid_alive(n, target) == 1 && !atomic_load(&t->exiting))
		return 0;
	/* Gone meanwhile: take the record back (its stack reference is
	 * dropped by the slot's next holder), unless the exit claimed it:
	 * then its signal is on the way. */
	int exp = NU__REL_ACTIVE;
	if (!atomic_compare_exchange_strong(&r->state, &exp, NU__REL_OFF))
		return 0;
	nu__rel_unhold(me, r);
	return 1;
}

nu__rel *nu__rel_find_held(nu__proc *me, int kind, nu_pid target,
			   uint64_t ref)
{
	for (uint32_t i = 0; i < me->nheld; i++) {
		nu__rel *r = me->held[i];
		if (r && r->kind == kind && (ref ? r->ref == ref : r->target == target))
			return r;
	}
	return NULL;
}

/* A record still meaningful for its target me. */
static int stacked_live(const nu__proc *me, nu__rel *r)
{
	int st = atomic_load_explicit(&r->state, memory_order_acquire);
	return r->target == me->pid &&
	       (st == NU__REL_ACTIVE || st == NU__REL_CLAIMED);
}

nu__rel *nu__rel_find_stacked(nu__proc *me, int kind, nu_pid owner)
{
	nu__rel *r = atomic_load_explicit(&me->rels, memory_order_acquire);
	for (; r; r = r->next)
		if (r->kind == kind && r->owner == owner && stacked_live(me, r))
			return r;
	return NULL;
}

void nu__rel_prune(nu__proc *p)
{
	nu__rel *r = atomic_exchange(&p->rels, NULL), *keep = NULL,
		*last = NULL;
	uint32_t kept = 0;
	while (r) {
		nu__rel *next = r->next;
		if (stacked_live(p, r)) {
			r->next = keep;
			keep = r;
			if (!last)
				last = r;
			kept++;
		} else {
			nu__rel_unref(r);
		}
		r = next;
	}
	atomic_store_explicit(&p->rel_pushes, kept, memory_order_relaxed);
	atomic_store_explicit(&p->prune_at, 2 * kept + PRUNE_SLACK,
			      memory_order_relaxed);
	if (!keep)
		return;
	nu__rel *top = atomic_load(&p->rels);
	do
		last->next = top;
	while (!atomic_compare_exchange_weak(&p->rels, &top, keep));
}

/* Claim r for the exiting process p and send the signal it stands for to
 * `to`, handing the reference over; or just drop the reference. */
static void exit_claim(nu__proc *p, nu__rel *r, nu_pid to)
{
	int exp = NU__REL_ACTIVE;
	if (!atomic_compare_exchange_strong(&r->state, &exp, NU__REL_CLAIMED)) {
		nu__rel_unref(r);
		return;
	}
	if (r->kind == NU__REL_LINK)
		nu__signal_exit(NU__SIG_LINK, to, p->pid, p->reason, r);
	else
		nu__signal_down(to, p->pid, r->ref, p->reason, r);
}

void nu__rel_exit(nu__proc *p)
{
	/* owner side: monitors stop, links fire */
	for (uint32_t i = 0; i < p->nheld; i++) {
		nu__rel *r = p->held[i];
		if (!r)
			continue;
		if (r->kind == NU__REL_LINK) {
			exit_claim(p, r, r->target);
		} else {
			nu__rel_cancel(r);
			nu__rel_unref(r);
		}
	}
	free(p->held);
	p->held = NULL;
	p->nheld = p->heldcap = 0;
	/* target side: `exiting` first (seq_cst), then the stack (see the
	 * design note: Dekker against the pusher's re-check) */
	atomic_store(&p->exiting, 1);
	nu__rel *r = atomic_load(&p->rels);
	if (r)
		r = atomic_exchange(&p->rels, NULL);
	while (r) {
		nu__rel *next = r->next;
		if (r->target == p->pid)
			exit_claim(p, r, r->owner);
		else
			nu__rel_unref(r);
		r = next;
	}
}

void nu__rel_drop_stale(nu__proc *p)
{
	nu__rel *r = atomic_exchange(&p->rels, NULL);
	while (r) {
		nu__rel *next = r->next;
		nu__rel_unref(r);
		r = next;
	}
}

int nu__rel_spawn(nu__proc *me, nu__proc *child, int link,
		  nu_term *monitor_ref)
{
	nu__rel *l = NULL, *m = NULL;
	if (link && !(l = nu__rel_new(me, NU__REL_LINK, child->pid, 0)))
		return -ENOMEM;
	if (monitor_ref) {
		nu_term t = nu_make_ref();
		m = t == NU_NONE ? NULL
				 : nu__rel_new(me, NU__REL_MONITOR, child->pid,
					       nu__ref_id(t));
		if (!m) {
			if (l) {
				nu__rel_unhold(me, l);
				nu__rel_unref(l);
			}
			return -ENOMEM;
		}
		*monitor_ref = t;
	}
	/* the child has not run and its pid is not published: only stale
	 * pushers of the slot's last process race with these pushes, and
	 * they go uncounted (two records more before a prune, at most; a
	 * locked instruction less per spawn) */
	if (l)
		stack_link(child, l);
	if (m)
		stack_link(child, m);
	return 0;
}
