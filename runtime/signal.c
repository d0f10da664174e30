/* signal.c — exit signals: nu_kill, trap_exit, and how a process acts on
 * the signals that reach it (links' exit signals, kills, DOWN).
 *
 * Entities
 *   signal   a message block (mailbox.h) whose kind says it is a signal,
 *            holding the term the receiver would get as a message:
 *            {'EXIT', From, Reason} or {'DOWN', Ref, process, From,
 *            Reason}. It travels on the normal lane, so it arrives after
 *            everything its sender sent before (Erlang's signal order),
 *            and a DOWN or link signal carries a reference on its relation
 *            record (relation.c).
 *   trap_exit  a flag of the receiver, read only by the receiver, when it
 *            takes the signal: the flag in force when the signal arrives
 *            decides, as in Erlang.
 *
 * Acting. The receiver acts on a signal while it takes its mailbox
 * (mailbox.c lane_take), in its own context. An exit signal (not DOWN)
 * also sets NU__PS_MAIL in the receiver's pending word and wakes it, so a
 * process that sleeps, waits for room in a full mailbox or yields acts on
 * it at its next resume, not only when it receives. Rules, Erlang's:
 *   - kill (nu_kill(pid, kill), mailbox overflow): the receiver exits,
 *     reason killed (or the overflow's reason), trapping or not;
 *   - otherwise a trapping receiver gets the tuple as a message;
 *   - otherwise reason normal is ignored (except nu_kill(self, normal),
 *     which ends the caller), and any other reason ends the receiver with
 *     that reason. A link signal whose reason is kill is not special: it
 *     is trappable, and ends a non-trapping receiver with reason kill.
 * A relation's signal whose record was cancelled meanwhile (unlink,
 * demonitor) is dropped; taking one removes the relation from the
 * receiver's side.
 *
 * Why not a flag and a reason word in the victim (what shutdown uses): a
 * kill would pass messages sent before it, a second kill would overwrite
 * the first's reason, and a killer racing with the victim's exit would
 * kill the slot's next process. A signal is addressed by pid, ordered,
 * and a stale one is dropped by the slot's next process like any
 * message.
 *
 * Reasons. The reason a process dies of lives in the signal block, which
 * the process keeps until it is reaped: the reason may come from another
 * heap and be any size, and the dying heap may be full.
 */
#include "signal.h"

#include <errno.h>

#include "node.h"
#include "proc.h"
#include "relation.h"
#include "sched.h"
#include "term.h"

/* A signal of kind to `to`: the tuple el[0..n) (element ref_at, if >= 0,
 * the reference with id ref) laid out in place in the message, so an
 * exiting process whose heap is full can still send it. */
static int send_built(int kind, nu_pid to, nu_pid from, size_t n,
		      nu_term *el, uint64_t ref, int ref_at, nu__rel *rel)
{
	uint64_t box[2] = { NU__HDR(NU__K_REF, 1), ref }; /* copied */
	if (ref_at >= 0)
		el[ref_at] = (nu_term)(uintptr_t)box; /* boxed: tag 0 */
	nu__msg *m = nu__msg_new_tuple(to, from, n, el);
	if (!m) {
		if (rel)
			nu__rel_unref(rel);
		return -ENOMEM;
	}
	m->kind = (uint32_t)kind;
	m->rel = rel;
	nu__msg_deliver(nu__node_get(), m, NU__LANE_NORMAL);
	return 0;
}

int nu__signal_exit(int kind, nu_pid to, nu_pid from, nu_term reason,
		    nu__rel *rel)
{
	static _Atomic nu_term exit_atom;
	nu_term el[3] = { nu__atom_cached(&exit_atom, "EXIT"), nu_pid_term(from),
			  reason };
	return send_built(kind, to, from, 3, el, 0, -1, rel);
}

int nu__signal_down(nu_pid to, nu_pid from, uint64_t ref, nu_term reason,
		    nu__rel *rel)
{
	static _Atomic nu_term down, process;
	nu_term el[5] = { nu__atom_cached(&down, "DOWN"), NU_NONE,
			  nu__atom_cached(&process, "process"),
			  nu_pid_term(from),
			  reason };
	return send_built(NU__SIG_DOWN, to, from, 5, el, ref, 1, rel);
}

/* The relation behind signal m is settled for receiver p: 1 when the
 * signal stands (record claimed, now off and out of p's held list), 0
 * when p cancelled the relation before taking it. */
static int rel_settle(nu__proc *p, nu__msg *m)
{
	nu__rel *r = m->rel;
	if (!r)
		return 1; /* no relation: noproc at link or monitor time */
	m->rel = NULL;
	int stands = atomic_load_explicit(&r->state, memory_order_acquire) ==
		     NU__REL_CLAIMED;
	/* a claimed record is the receiver's alone (relation.h) */
	atomic_store_explicit(&r->state, NU__REL_OFF, memory_order_release);
	/* the signal's reference, and the list's when p holds r: one drop */
	nu__rel_unref_n(r, 1 + (r->owner == p->pid && nu__rel_unlist(p, r)));
	return stands;
}

int nu__signal_take(nu__proc *p, nu__msg *m)
{
	int kind = (int)(m->kind & NU__MSG_SIGMASK);
	if (!rel_settle(p, m)) {
		nu__msg_free(m);
		return NU__SIG_DROPPED;
	}
	m->kind &= ~(uint32_t)NU__MSG_SIGMASK; /* a message from now on */
	if (kind == NU__SIG_DOWN)
		return NU__SIG_KEEP;
	if (kind == NU__SIG_KILL)
		return NU__SIG_DIE;
	if (p->trap_exit)
		return NU__SIG_KEEP;
	if (nu_tuple_elem(m->term, 2) != NU_ATOM_NORMAL ||
	    (kind == NU__SIG_EXIT && m->from == p->pid))
		return NU__SIG_DIE;
	nu__msg_free(m);
	return NU__SIG_DROPPED;
}

nu_term nu__signal_die(nu__proc *p, nu__msg *m)
{
	if (p->reason_msg)
		nu__msg_free(p->reason_msg);
	p->reason_msg = m;
	return nu_tuple_elem(m->term, 2);
}

int nu_kill(nu_pid pid, nu_term reason)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current)
		return -EPERM;
	if (reason == NU_NONE || nu_term_type(reason) == NU_T_NONE)
		return -EINVAL;
	int alive = nu_is_alive(pid);
	if (alive <= 0)
		return alive; /* a dead pid: nothing to do, as in Erlang */
	nu__proc *me = s->current;
	int kill = reason == NU_ATOM_KILL;
	int rc = nu__signal_exit(kill ? NU__SIG_KILL : NU__SIG_EXIT, pid,
				 me->pid, kill ? NU_ATOM_KILLED : reason, NULL);
	if (rc)
		return rc;
	s = nu__sched_charge(s, 1);
	if (pid == me->pid)
		nu__proc_check_kill(s, me); /* act on it now */
	return 0;
}

int nu_trap_exit(int on)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current)
		return -EPERM;
	int old = s->current->trap_exit;
	s->current->trap_exit = on != 0;
	return old;
}
