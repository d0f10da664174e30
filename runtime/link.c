/* link.c — monitors (and, next, links): who is told when a process exits.
 *
 * Entities
 *   monitor record  one per nu_monitor() call, malloc'd, shared by the two
 *                   sides and freed by the last of them (refs = 2):
 *                   - the target keeps it on a lock-free stack
 *                     (p->monitors) that watchers push onto with a CAS;
 *                   - the watcher keeps it in its own list (p->watching),
 *                     to find it again for nu_demonitor().
 *   state           ACTIVE -> CLAIMED by the exiting target (it will send
 *                   DOWN), or ACTIVE -> OFF by nu_demonitor(). One CAS
 *                   decides, so a DOWN is sent at most once and never after
 *                   a successful demonitor; a demonitor that loses the race
 *                   waits until the DOWN is in its mailbox, so that once it
 *                   returns no DOWN for that reference can still arrive.
 *
 * Exit. In its last moments, still in process context (its heap intact),
 * an exiting process takes its stack (one exchange, only when it is not
 * empty: most processes have no watcher) and sends
 * {'DOWN', Ref, process, Pid, Reason} to every watcher it claims. A
 * watcher that pushes after that re-checks the target's liveness and its
 * `exiting` flag (set before the take) and, the target being gone, takes
 * its record back (CAS) and reports noproc to itself; the record it left behind is dropped by the slot's next process
 * at its exit (a different target pid) or at node teardown. Those
 * sends come after everything the process sent before, so a watcher sees
 * the messages a process sent before its DOWN. The DOWN tuple is built in
 * a scratch heap (the exiting heap may be full) and copied by the send.
 *
 * Rejected: monitor signals queued in the target's mailbox and handled
 * when it receives (BEAM's way: needs the target to run; a target blocked
 * in a long computation would delay even the registration); a global
 * monitor table under a lock (a lock on every monitor and exit).
 */
#include <errno.h>
#include <stdlib.h>

#include "mailbox.h"
#include "node.h"
#include "proc.h"
#include "sched.h"
#include "term.h"

enum { MON_ACTIVE = 1, MON_OFF = 0, MON_CLAIMED = 2 };

typedef struct nu__mon {
	struct nu__mon *next;   /* in the target's stack */
	uint64_t ref;           /* the monitor reference's id */
	nu_pid watcher, target;
	_Atomic int state;
	_Atomic int refs;
} nu__mon;

static void mon_unref(nu__mon *m)
{
	if (atomic_fetch_sub(&m->refs, 1) == 1)
		free(m);
}

/* An atom looked up once (atoms are never freed or moved). */
static nu_term cached_atom(_Atomic nu_term *slot, const char *name)
{
	nu_term a = atomic_load_explicit(slot, memory_order_relaxed);
	if (!a) {
		a = nu_atom(name);
		atomic_store_explicit(slot, a, memory_order_relaxed);
	}
	return a;
}

/* A message built in a scratch heap (on the stack when small), then sent
 * (copied) to `to`: the DOWN and EXIT tuples an exiting process sends. */
static void send_built(nu_pid to, nu_pid from, size_t n, const nu_term *el,
		       uint64_t ref, int ref_at)
{
	_Alignas(16) unsigned char small[1024];
	size_t sz = 256;
	for (size_t i = 0; i < n; i++)
		sz += 2 * nu__term_flat_size(el[i]);
	void *buf = sz <= sizeof(small) ? small : malloc(sz);
	nu__heap h;
	nu_term e[8];
	if (!buf)
		return; /* out of memory: the notification is lost */
	nu__heap_init(&h, buf, sz);
	for (size_t i = 0; i < n; i++)
		e[i] = el[i];
	if (ref_at >= 0)
		e[ref_at] = nu__ref_in(&h, ref);
	nu_term t = nu__tuplev_in(&h, n, e);
	nu__msg *m = t == NU_NONE ? NULL : nu__msg_new(to, from, t);
	if (buf != small)
		free(buf);
	if (m)
		nu__msg_deliver(nu__node_get(), m, NU__LANE_NORMAL);
}

static void send_down(nu_pid watcher, uint64_t ref, nu_pid target,
		      nu_term reason)
{
	static _Atomic nu_term down, process;
	nu_term el[5] = { cached_atom(&down, "DOWN"), NU_NONE,
			  cached_atom(&process, "process"), nu_pid_term(target),
			  reason };
	send_built(watcher, target, 5, el, ref, 1);
}

/* Room for one more entry in me's watching list: 0 or -ENOMEM. */
static int watching_room(nu__proc *me)
{
	if (me->nwatching < me->wcap)
		return 0;
	uint32_t cap = me->wcap ? 2 * me->wcap : 4;
	nu__mon **w = realloc(me->watching, cap * sizeof(*w));
	if (!w)
		return -ENOMEM;
	me->watching = w;
	me->wcap = cap;
	return 0;
}

int nu__monitor_new_child(nu__proc *me, nu__proc *child, nu_term *ref)
{
	if (watching_room(me))
		return -ENOMEM;
	nu_term r = nu_make_ref();
	nu__mon *m = r == NU_NONE ? NULL : malloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	*m = (nu__mon){ NULL, nu__ref_id(r), me->pid, child->pid, MON_ACTIVE,
			2 };
	/* the child has not run and its pid is not published: only stale
	 * watchers of the slot's last process can push here, with a CAS */
	nu__mon *top = atomic_load(&child->monitors);
	do
		m->next = top;
	while (!atomic_compare_exchange_weak(&child->monitors, &top, m));
	me->watching[me->nwatching++] = m;
	*ref = r;
	return 0;
}

int nu_monitor(nu_pid pid, nu_term *ref)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current)
		return -EPERM;
	if (!ref || nu_is_alive(pid) < 0)
		return -EINVAL;
	nu__proc *me = s->current;
	nu_term r = watching_room(me) ? NU_NONE : nu_make_ref();
	nu__mon *m = r == NU_NONE ? NULL : malloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	*m = (nu__mon){ NULL, nu__ref_id(r), me->pid, pid, MON_ACTIVE, 2 };
	if (nu_is_alive(pid) != 1) { /* dead: DOWN noproc at once */
		free(m);
		send_down(me->pid, nu__ref_id(r), pid, NU_ATOM_NOPROC);
		*ref = r;
		return 0;
	}
	nu__proc *t = nu__slot_proc(&nu__node_get()->mem, nu__pid_index(pid));
	nu__mon *top = atomic_load(&t->monitors);
	do
		m->next = top;
	while (!atomic_compare_exchange_weak(&t->monitors, &top, m));
	me->watching[me->nwatching++] = m;
	*ref = r;
	/* The target may have died, and its slot been reused, between the
	 * liveness check and the push: the record then sits on another
	 * process's stack (which drops it at exit: different target pid).
	 * Take it back and report noproc ourselves. */
	int exp = MON_ACTIVE;
	if ((nu_is_alive(pid) != 1 || atomic_load(&t->exiting)) &&
	    atomic_compare_exchange_strong(&m->state, &exp, MON_OFF))
		send_down(me->pid, m->ref, pid, NU_ATOM_NOPROC);
	return 0;
}

/* Wait until the DOWN for m is queued (the target claimed it and is
 * sending it); take it out when flush. */
static void await_down(nu__proc *me, nu__mon *m, int flush)
{
	nu_pattern *pat;
	if (nu_pattern_compile("{'DOWN', R, _, _, _}", &pat, NULL))
		return;
	nu_term fixed[1] = { nu__ref_in(&me->heap, m->ref) }, vars[1], t;
	nu_clause c = { pat, fixed, vars };
	if (fixed[0] != NU_NONE) {
		if (flush)
			nu_receive_select(&c, 1, -1, &t);
		else
			nu__mailbox_await(&c);
	}
	nu_pattern_free(pat);
}

/* Remove every queued DOWN for m (flush after a successful demonitor:
 * none can come any more, one may have come before). */
static void flush_down(nu__proc *me, nu__mon *m)
{
	nu_pattern *pat;
	if (nu_pattern_compile("{'DOWN', R, _, _, _}", &pat, NULL))
		return;
	nu_term fixed[1] = { nu__ref_in(&me->heap, m->ref) }, vars[1], t;
	nu_clause c = { pat, fixed, vars };
	while (fixed[0] != NU_NONE && nu_receive_select(&c, 1, 0, &t) == 0)
		;
	nu_pattern_free(pat);
}

int nu_demonitor(nu_term ref, int flush)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current)
		return -EPERM;
	if (nu_term_type(ref) != NU_T_REF)
		return -EINVAL;
	nu__proc *me = s->current;
	uint64_t id = nu__ref_id(ref);
	for (uint32_t i = 0; i < me->nwatching; i++) {
		nu__mon *m = me->watching[i];
		if (m->ref != id)
			continue;
		me->watching[i] = me->watching[--me->nwatching];
		int exp = MON_ACTIVE;
		if (!atomic_compare_exchange_strong(&m->state, &exp, MON_OFF))
			await_down(me, m, flush); /* the target claimed it */
		else if (flush)
			flush_down(me, m);
		mon_unref(m);
		return 0;
	}
	return -ENOENT;
}

void nu__link_exit(nu__proc *p)
{
	/* watcher side: stop watching */
	for (uint32_t i = 0; i < p->nwatching; i++) {
		nu__mon *m = p->watching[i];
		int exp = MON_ACTIVE;
		atomic_compare_exchange_strong(&m->state, &exp, MON_OFF);
		mon_unref(m);
	}
	free(p->watching);
	p->watching = NULL;
	p->nwatching = p->wcap = 0;
	/* target side: tell the watchers. `exiting` first (seq_cst), then
	 * the stack: a watcher pushes, then reads `exiting` (seq_cst), so
	 * either we see its record or it sees us exiting (Dekker). */
	atomic_store(&p->exiting, 1);
	nu__mon *m = atomic_load(&p->monitors);
	if (m)
		m = atomic_exchange(&p->monitors, NULL);
	while (m) {
		nu__mon *next = m->next;
		int exp = MON_ACTIVE;
		if (m->target == p->pid &&
		    atomic_compare_exchange_strong(&m->state, &exp,
						   MON_CLAIMED))
			send_down(m->watcher, m->ref, p->pid, p->reason);
		mon_unref(m);
		m = next;
	}
}

void nu__link_drop_stale(nu__proc *p)
{
	nu__mon *m = atomic_exchange(&p->monitors, NULL);
	while (m) {
		nu__mon *next = m->next;
		mon_unref(m);
		m = next;
	}
}
