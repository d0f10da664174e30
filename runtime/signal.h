/* signal.h — private to nuproc: exit signals and DOWN. See signal.c. */
#ifndef NU_SIGNAL_H
#define NU_SIGNAL_H

#include "mailbox.h"
#include "nuproc.h"

struct nu__proc;
struct nu__rel;

/* Signal kinds (nu__msg.kind & NU__MSG_SIGMASK). */
enum {
	NU__SIG_EXIT = 1, /* nu_kill() with a reason other than kill */
	NU__SIG_KILL = 2, /* untrappable: nu_kill(pid, kill), overflow */
	NU__SIG_LINK = 3, /* a linked process exited */
	NU__SIG_DOWN = 4, /* a monitored process exited */
};

/* What the receiver does with a signal (nu__signal_take). */
enum { NU__SIG_KEEP = 0, NU__SIG_DROPPED = 1, NU__SIG_DIE = 2 };

/* Send the exit signal {'EXIT', From, Reason} of kind to `to`; rel (may
 * be NULL) is a relation reference the signal takes over. 0 or -ENOMEM
 * (rel is released then). */
int nu__signal_exit(int kind, nu_pid to, nu_pid from, nu_term reason,
		    struct nu__rel *rel);

/* Send {'DOWN', Ref, process, From, Reason} to `to`, Ref being the
 * reference with id ref; rel as above. */
int nu__signal_down(nu_pid to, nu_pid from, uint64_t ref, nu_term reason,
		    struct nu__rel *rel);

/* Nonzero when t is {'DOWN', Ref, _, _, _} for the reference with id id
 * (monitor.c). */
int nu__is_down_for(nu_term t, uint64_t id);

/* nu_demonitor() by reference id (the start handshake's monitor). Same
 * results. */
int nu__demonitor_id(uint64_t id, int flush);

/* The receiver p met signal m while taking its mailbox: NU__SIG_KEEP (m
 * is now a plain message: queue it), NU__SIG_DROPPED (m was freed) or
 * NU__SIG_DIE (p must exit; see nu__signal_die). */
int nu__signal_take(struct nu__proc *p, nu__msg *m);

/* The reason p dies of signal m; p keeps m until it is reaped. */
nu_term nu__signal_die(struct nu__proc *p, nu__msg *m);

#endif
