/* link.c — links: nu_link, nu_unlink.
 *
 * A link is a relation record (relation.c) owned by the process that
 * called nu_link (or spawned with the link option) and pushed onto the
 * other's stack; the two ends are equal in effect: whichever exits first
 * claims the record and sends the other an exit signal (signal.c) with its
 * reason. Linking is idempotent (one link per pair, whoever made it); a
 * process cannot link to itself (a no-op, as in Erlang).
 *
 * Linking a pid that is dead, or that dies between the liveness check and
 * the push, gives the caller an exit signal with reason noproc from that
 * pid, acted on at once: a trapping caller gets {'EXIT', Pid, noproc}, any
 * other caller exits with reason noproc.
 *
 * Unlink cancels the record from either end; a signal already in flight
 * for it is dropped when it arrives, so once nu_unlink returns the link
 * has no effect (a trapping caller may hold an {'EXIT', ...} message taken
 * before).
 */
#include <errno.h>

#include "node.h"
#include "proc.h"
#include "relation.h"
#include "sched.h"
#include "signal.h"

/* me and pid are linked (an active record at either end). */
static int linked(nu__proc *me, nu_pid pid)
{
	nu__rel *r = nu__rel_find_held(me, NU__REL_LINK, pid, 0);
	if (r && atomic_load(&r->state) == NU__REL_ACTIVE)
		return 1;
	r = nu__rel_find_stacked(me, NU__REL_LINK, pid);
	return r && atomic_load(&r->state) == NU__REL_ACTIVE;
}

/* The exit signal noproc from pid to the caller, acted on now. */
static int link_noproc(nu__sched *s, nu__proc *me, nu_pid pid)
{
	int rc = nu__signal_exit(NU__SIG_LINK, me->pid, pid, NU_ATOM_NOPROC,
				 NULL);
	if (rc == 0)
		nu__proc_check_kill(s, me);
	return rc;
}

/* The checks nu_link and nu_unlink share: 0 with *sp the caller's
 * scheduler, -EPERM outside a process, -EINVAL for a bad pid. */
static int link_args(nu_pid pid, nu__sched **sp)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current)
		return -EPERM;
	int alive = nu_is_alive(pid);
	*sp = s;
	return alive < 0 ? alive : 0;
}

int nu_link(nu_pid pid)
{
	nu__sched *s;
	int rc = link_args(pid, &s);
	if (rc)
		return rc;
	nu__proc *me = s->current;
	if (pid == me->pid || linked(me, pid))
		return 0;
	rc = nu__rel_attach(me, NU__REL_LINK, pid, 0);
	return rc == 1 ? link_noproc(s, me, pid) : rc;
}

int nu_unlink(nu_pid pid)
{
	nu__sched *s;
	int rc = link_args(pid, &s);
	if (rc)
		return rc;
	nu__proc *me = s->current;
	nu__rel *r = nu__rel_find_held(me, NU__REL_LINK, pid, 0);
	if (r) {
		nu__rel_cancel(r);
		nu__rel_unhold(me, r);
	}
	r = nu__rel_find_stacked(me, NU__REL_LINK, pid);
	if (r)
		nu__rel_cancel(r);
	return 0;
}
