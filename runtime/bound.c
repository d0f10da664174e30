/* bound.c — bounded mailboxes (issue 3, item 5): a per-process limit on
 * queued messages and what a send does when it is reached.
 *
 * Entities
 *   count    p->mbox_count, the messages queued for p that were counted
 *            in (NU__MSG_COUNTED); only while p->mbox_limit is nonzero.
 *            A sender counts a message in before its push
 *            (nu__bound_reserve) and the receive that takes it counts it
 *            out (nu__bound_release): the count is exact, whichever
 *            threads the sends come from, and never above the limit.
 *   policy   p->mbox_policy, set at spawn: NU_MAILBOX_WAIT (the sending
 *            process parks until there is room), NU_MAILBOX_FAIL (-EAGAIN)
 *            or NU_MAILBOX_KILL (the receiver is killed with reason
 *            mailbox_overflow, the message dropped).
 *   waiter   a sender parked for room: a malloc'd node on p's
 *            mbox_waiters stack (a lock-free push), woken by pid and
 *            freed by whoever empties the stack: a receive that counted a
 *            message out, or p's exit (nu__mailbox_release_waiters).
 *
 * Invariants. A waiter never misses its wake: it pushes its node, then
 * looks at the count again; the receiver lowers the count, then looks for
 * waiters; both sides' operations are seq_cst, so at least one sees the
 * other (Dekker's pattern). A woken sender retries from the top: it may
 * find the mailbox full again (another sender won the room) and wait
 * again, or the receiver dead (the message is dropped, as any send to a
 * dead pid). A sender cannot wait for its own mailbox, nor outside a
 * process: those get -EAGAIN.
 *
 * Rejected: a count kept by the receiver alone (a sender could not tell
 * the mailbox is full without racing the pushes), and waiters on a
 * futex or condition variable (a parked process must leave its scheduler
 * free, so the wake is the runtime's own nu__proc_wake).
 *
 * mailbox.c keeps the unbounded case inline: a send looks at
 * p->mbox_limit, a receive at the message's NU__MSG_COUNTED flag, and
 * only then calls here.
 */
#include "mailbox.h"

#include <errno.h>
#include <stdlib.h>

#include "node.h"
#include "proc.h"
#include "sched.h"
#include "signal.h"

/* A sender waiting for room in a bounded mailbox (malloc'd; the receiver
 * wakes it by pid and frees the node). */
typedef struct nu__bwait {
	struct nu__bwait *next;
	nu_pid pid;
} nu__bwait;

/* Wake every sender waiting for room in p's mailbox; they retry. */
static void wake_waiters(nu__node *n, nu__proc *p)
{
	nu__bwait *w = atomic_exchange(&p->mbox_waiters, NULL);
	while (w) {
		nu__bwait *next = w->next;
		if (nu_is_alive(w->pid) == 1)
			nu__proc_wake(nu__slot_proc(&n->mem,
						    nu__pid_index(w->pid)));
		free(w);
		w = next;
	}
}

void nu__mailbox_release_waiters(nu__proc *p)
{
	if (atomic_load(&p->mbox_waiters))
		wake_waiters(nu__node_get(), p);
}

/* The calling process waits until p's mailbox may have room or p died.
 * Registration, then a re-check: the receiver decrements the count, then
 * looks for waiters (seq_cst both sides), so one of us sees the other. */
static int wait_room(nu__sched **sp, nu__proc *p, nu_pid to)
{
	nu__bwait *w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->pid = (*sp)->current->pid;
	w->next = atomic_load(&p->mbox_waiters);
	while (!atomic_compare_exchange_weak(&p->mbox_waiters, &w->next, w))
		;
	if (atomic_load(&p->mbox_count) < p->mbox_limit ||
	    nu_is_alive(to) != 1)
		return 0; /* our node is freed by the next wake_waiters */
	*sp = nu__proc_park(*sp);
	return 0;
}

int nu__bound_reserve(nu__sched **sp, nu__proc *p, nu_pid to)
{
	uint32_t lim = p->mbox_limit;
	if (!lim)
		return 0;
	for (;;) {
		if (atomic_fetch_add(&p->mbox_count, 1) < lim)
			return 0;
		atomic_fetch_sub(&p->mbox_count, 1);
		if (p->mbox_policy == NU_MAILBOX_FAIL)
			return -EAGAIN;
		if (p->mbox_policy == NU_MAILBOX_KILL) {
			nu__sched *s = *sp;
			nu__signal_exit(NU__SIG_KILL, to,
					s && s->current ? s->current->pid : 0,
					nu_atom("mailbox_overflow"), NULL);
			return 1;
		}
		if (!*sp || !(*sp)->current || (*sp)->current == p)
			return -EAGAIN; /* cannot wait here */
		int rc = wait_room(sp, p, to);
		if (rc)
			return rc;
		if (nu_is_alive(to) != 1)
			return 1;
	}
}

void nu__bound_release(nu__proc *p)
{
	atomic_fetch_sub(&p->mbox_count, 1);
	if (atomic_load(&p->mbox_waiters))
		wake_waiters(nu__node_get(), p);
}
