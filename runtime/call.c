/* call.c — how a caller learns that the server of its call died.
 *
 * nu_call (otp/gen.c) must return the server's exit reason when the
 * server exits before answering, and noproc when it was not alive. OTP
 * monitors the server for that; this is a monitor cut to the one thing a
 * call needs, with no record to allocate and no locked instruction.
 *
 * Entities
 *   watch     per process, one word (call_watch): 0, or W(id) = id << 1
 *             while the process waits in the call tagged with reference
 *             id (a process waits in at most one call at a time); bit 0
 *             (CLAIMED) set by the server's exit when it answers with a
 *             call DOWN.
 *   call      the message {Tag, {Caller, Ref}, Req}, flagged NU__MSG_CALL
 *             and carrying Ref's id in its header (mailbox.c).
 *   open set  per process, the calls it took from its mailbox and has not
 *             answered itself: (caller, id) pairs in an array only that
 *             process touches. Its nu_reply() removes the pair; pairs
 *             whose caller no longer waits (answered by another process,
 *             timed out, dead) are dropped when the array would grow, so
 *             it holds at most twice the calls really open on it.
 *   call DOWN a reply (NU__MSG_REPLY | NU__MSG_DOWNED) tagged with the
 *             call's id whose term is the server's exit reason.
 *
 * Protocol
 *   caller  sets W(id) and the mailbox alias (a reply or call DOWN with
 *           any other id is dropped when taken: mailbox.c), pushes the
 *           call (a seq_cst exchange), then re-checks that the server is
 *           alive and not `exiting` (seq_cst loads). If it is gone, a CAS
 *           W(id) -> 0 that succeeds means nobody will answer: noproc;
 *           one that fails means the exit claimed the call: its DOWN
 *           comes.
 *   exit    the server sets `exiting` (seq_cst, relation.c), then reads
 *           (seq_cst) its mailbox in place, FIFO and pushed stack, and
 *           for each call for it, and each open pair, claims the
 *           caller's watch with a CAS W(id) -> W(id)|CLAIMED; on success
 *           it sends the call DOWN. A claim checks the caller's pid first
 *           (a dead caller needs nothing; a reused slot's watch holds
 *           another id, and ids are never reused).
 *   Dekker on (top, exiting): the exit's read sees the pushed call, or
 *   the caller's re-check sees the exit, or both; then the CAS decides,
 *   so the caller gets exactly one answer: the reason or noproc.
 *   end     (reply, DOWN, timeout) the alias goes to 0 first; then the
 *           watch is read and set to 0 with a plain store. A claim that
 *           slips in between sends a DOWN that the alias check drops when
 *           it is taken: it was pushed after the claim, and a take that
 *           saw it would have made the claim visible to our read. If the
 *           read sees a claim, that DOWN may be queued already: flushed.
 *
 * So a call costs its two messages and a few plain loads and stores.
 *
 * Rejected: a full monitor per call (relation.c: a malloc'd record
 * pushed with a CAS onto the server, turned off after the reply, pruned
 * by the server later, two reference drops and a free: ~700 instructions
 * and ~7 locked operations, a third of a call); checking the server's
 * liveness on a timer (no answer for an infinite wait).
 *
 * Limits: when the open set cannot grow (malloc fails) the pair is not
 * kept, and the caller is not told if that server exits before answering
 * (its timeout still ends the call) — as with any DOWN that cannot be
 * allocated.
 */
#include "call.h"

#include <errno.h>
#include <stdlib.h>

#include "mailbox.h"
#include "node.h"
#include "proc.h"
#include "term.h"

#define W(id) ((id) << 1)
#define CLAIMED 1u

int nu__call_begin(nu__proc *me, nu_pid server, uint64_t *id)
{
	int alive = nu__pid_alive(nu__node_get(), server);
	if (alive < 0)
		return -EINVAL;
	if (!alive)
		return 1;
	*id = nu__ref_next();
	nu__mailbox_mark_ref(*id);
	me->mailbox.alias = *id;
	/* published to the server by the call's push (release) */
	atomic_store_explicit(&me->call_watch, W(*id), memory_order_relaxed);
	return 0;
}

int nu__call_send(nu__proc *me, nu_pid server, const nu__call_hdr *hdr,
		  nu_term req)
{
	int rc = nu__send_call(server, hdr, req);
	if (rc)
		return rc;
	nu__node *n = nu__node_get();
	nu__proc *t = nu__slot_proc(&n->mem, nu__pid_index(server));
	/* seq_cst, after the push's seq_cst exchange (see above) */
	if (nu__pid_alive(n, server) == 1 && !atomic_load(&t->exiting))
		return 0;
	uint64_t w = W(hdr->id);
	return atomic_compare_exchange_strong(&me->call_watch, &w, 0) ? 1 : 0;
}

void nu__call_end(nu__proc *me, uint64_t id)
{
	me->mailbox.alias = 0;
	uint64_t w = atomic_load_explicit(&me->call_watch,
					  memory_order_acquire);
	atomic_store_explicit(&me->call_watch, 0, memory_order_relaxed);
	if (w != W(id))
		nu__mailbox_flush_ref(id); /* claimed: a DOWN may be queued */
}

/* Does caller still wait in the call tagged id? */
static int still_waits(nu__node *n, nu_pid caller, uint64_t id)
{
	if (nu__pid_alive(n, caller) != 1)
		return 0;
	nu__proc *c = nu__slot_proc(&n->mem, nu__pid_index(caller));
	return atomic_load_explicit(&c->call_watch, memory_order_relaxed) ==
	       W(id);
}

/* Room for one more open pair: drop the pairs nobody waits on, then
 * grow when more than half are left. 0 or -ENOMEM. */
static int open_room(nu__proc *p)
{
	nu__node *n = nu__node_get();
	uint32_t j = 0;
	for (uint32_t i = 0; i < p->ncalls; i++)
		if (still_waits(n, p->calls[i].caller, p->calls[i].id))
			p->calls[j++] = p->calls[i];
	p->ncalls = j;
	if (p->callscap && j <= p->callscap / 2)
		return 0;
	uint32_t cap = p->callscap ? 2 * p->callscap : 4;
	nu__open_call *c = realloc(p->calls, cap * sizeof(*c));
	if (!c)
		return -ENOMEM;
	p->calls = c;
	p->callscap = cap;
	return 0;
}

void nu__call_taken(nu__proc *p, nu_pid caller, uint64_t id)
{
	if (p->ncalls == p->callscap && open_room(p))
		return; /* not kept (see Limits) */
	p->calls[p->ncalls++] = (nu__open_call){ caller, id };
}

void nu__call_replied(nu__proc *p, nu_pid caller, uint64_t id)
{
	if (!p)
		return;
	for (uint32_t i = p->ncalls; i-- > 0;) /* the newest is likeliest */
		if (p->calls[i].id == id && p->calls[i].caller == caller) {
			p->calls[i] = p->calls[--p->ncalls];
			return;
		}
}

/* Claim the watch of caller's call id and send it the call DOWN. */
static void call_down(nu__proc *p, nu_pid caller, uint64_t id)
{
	nu__node *n = nu__node_get();
	if (nu__pid_alive(n, caller) != 1)
		return;
	nu__proc *c = nu__slot_proc(&n->mem, nu__pid_index(caller));
	uint64_t w = W(id);
	if (!atomic_compare_exchange_strong(&c->call_watch, &w,
					    W(id) | CLAIMED))
		return;
	nu__msg *m = nu__msg_new(caller, p->pid, p->reason);
	if (!m)
		return; /* see Limits */
	m->kind = NU__MSG_REPLY | NU__MSG_DOWNED;
	m->alias = id;
	nu__msg_deliver(n, m, NU__LANE_NORMAL);
}

void nu__call_exit(nu__proc *p)
{
	nu__mailbox_each_call(p, call_down);
	for (uint32_t i = 0; i < p->ncalls; i++)
		call_down(p, p->calls[i].caller, p->calls[i].id);
	free(p->calls);
	p->calls = NULL;
	p->ncalls = p->callscap = 0;
}
