/* monitor.c — monitors: nu_monitor, nu_demonitor.
 *
 * A monitor is a relation record (relation.c) owned by the watcher and
 * pushed onto the target's stack; the target's exit claims it and sends
 * {'DOWN', Ref, process, Pid, Reason} as a signal (signal.c) that, when
 * the watcher takes it, turns the record off and out of the watcher's
 * list. A dead target, or one that died between the liveness check and
 * the push, gets the watcher a DOWN with reason noproc at once.
 *
 * Demonitor turns the record off, or cancels a DOWN already in flight (it
 * is dropped when it arrives), so once it returns no DOWN for the
 * reference can still come; one may have come before, which flush
 * removes. No waiting for the target, ever.
 */
#include <errno.h>

#include "node.h"
#include "proc.h"
#include "relation.h"
#include "sched.h"
#include "signal.h"
#include "term.h"

/* Monitor pid from the calling process me with reference id. */
static int monitor(nu__proc *me, nu_pid pid, uint64_t id)
{
	int rc = nu__rel_attach(me, NU__REL_MONITOR, pid, id);
	if (rc <= 0)
		return rc;
	/* not alive: DOWN noproc at once */
	return nu__signal_down(me->pid, pid, id, NU_ATOM_NOPROC, NULL);
}

int nu_monitor(nu_pid pid, nu_term *ref)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current)
		return -EPERM;
	if (!ref || nu_is_alive(pid) < 0)
		return -EINVAL;
	nu_term r = nu_make_ref();
	if (r == NU_NONE)
		return -ENOMEM;
	int rc = monitor(s->current, pid, nu__ref_id(r));
	if (rc >= 0)
		*ref = r;
	return rc;
}

int nu__is_down_for(nu_term t, uint64_t id)
{
	static _Atomic nu_term down;
	if (nu_tuple_size(t) != 5 ||
	    nu_tuple_elem(t, 0) != nu__atom_cached(&down, "DOWN"))
		return 0;
	nu_term r = nu_tuple_elem(t, 1);
	return nu_term_type(r) == NU_T_REF && nu__ref_id(r) == id;
}

int nu__demonitor_id(uint64_t id, int flush)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current)
		return -EPERM;
	nu__proc *me = s->current;
	nu__rel *m = nu__rel_find_held(me, NU__REL_MONITOR, 0, id);
	if (m) {
		nu__rel_cancel(m);
		nu__rel_unhold(me, m);
	}
	if (flush && !m)
		nu__mailbox_flush_ref(id); /* a DOWN can only be queued now */
	return m ? 0 : 1;
}

int nu_demonitor(nu_term ref, int flush)
{
	if (nu_term_type(ref) != NU_T_REF)
		return nu_self() < 0 ? -EPERM : -EINVAL;
	return nu__demonitor_id(nu__ref_id(ref), flush);
}
