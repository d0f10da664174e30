/* relation.h — private to nuproc: the records behind links and monitors.
 *
 * See relation.c for the design. A relation is one record shared by its
 * two processes: the owner (the monitoring process; the process that
 * called nu_link) keeps it in its `held` list, the target keeps it on its
 * lock-free `rels` stack.
 */
#ifndef NU_RELATION_H
#define NU_RELATION_H

#include <stdatomic.h>
#include <stdint.h>

#include "nuproc.h"

struct nu__proc;

enum { NU__REL_MONITOR = 1, NU__REL_LINK = 2 };

/* Record states. ACTIVE -> OFF (monitor or link removed) or ACTIVE ->
 * CLAIMED (a side exits and sends its signal); only the side the signal
 * goes to touches a CLAIMED record: -> CANCELLED (it removed the relation
 * before the signal was taken: the signal is dropped) or -> OFF (taken). */
enum {
	NU__REL_OFF = 0,
	NU__REL_ACTIVE = 1,
	NU__REL_CLAIMED = 2,
	NU__REL_CANCELLED = 3,
};

#define NU__REL_NOT_HELD UINT32_MAX

typedef struct nu__rel {
	struct nu__rel *next;     /* in the target's stack */
	uint64_t ref;             /* the monitor reference's id; 0 for links */
	nu_pid owner, target;
	uint32_t held_at;         /* index in owner's held list (owner-only) */
	uint32_t depth;           /* stack depth when pushed (prune trigger) */
	int kind;                 /* NU__REL_* */
	_Atomic int state;
	_Atomic int refs;         /* owner's list, target's stack, a signal */
} nu__rel;

/* Drop one reference (n of them) to r; the last frees it. */
void nu__rel_unref(nu__rel *r);
void nu__rel_unref_n(nu__rel *r, int n);

/* A new record of the calling process `me` (owner) on target, both
 * references taken, held by me but not yet pushed; NULL when out of
 * memory. */
nu__rel *nu__rel_new(struct nu__proc *me, int kind, nu_pid target,
		     uint64_t ref);

/* A new relation of kind from the calling process `me` (owner) to
 * target, pushed onto the target's stack: 0 when it stands (or the
 * target's exit already claimed it: its signal is on the way), 1 when
 * target is not alive (no relation: the caller reports noproc), or
 * -ENOMEM. */
int nu__rel_attach(struct nu__proc *me, int kind, nu_pid target,
		   uint64_t ref);

/* Drop r from its owner's held list (owner context): 1 when it was there
 * (the list's reference is now the caller's), 0 when it was not. */
int nu__rel_unlist(struct nu__proc *me, nu__rel *r);

/* Drop r from its owner's held list (owner context; no-op when not held)
 * and the list's reference. */
void nu__rel_unhold(struct nu__proc *me, nu__rel *r);

/* Turn r off from either side: ACTIVE -> OFF, or CLAIMED -> CANCELLED so
 * that the signal in flight is dropped when it arrives. */
void nu__rel_cancel(nu__rel *r);

/* The owner-side record of kind held by me for target (or, with ref != 0,
 * with that monitor reference), or NULL. */
nu__rel *nu__rel_find_held(struct nu__proc *me, int kind, nu_pid target,
			   uint64_t ref);

/* A live record of kind on me's own stack whose owner is `owner`, or
 * NULL (only me may walk its stack). */
nu__rel *nu__rel_find_stacked(struct nu__proc *me, int kind, nu_pid owner);

/* Owner context: remove records that are off from p's stack. */
void nu__rel_prune(struct nu__proc *p);

/* The exiting process p tells every relation (process context, heap
 * intact, p->reason set). */
void nu__rel_exit(struct nu__proc *p);

/* Teardown: free records stale owners left on a dead slot's stack. */
void nu__rel_drop_stale(struct nu__proc *p);

/* The spawn options: link `me` to a child that has not run yet and/or
 * monitor it (*monitor_ref gets the reference). All or nothing: 0 or
 * -ENOMEM. */
int nu__rel_spawn(struct nu__proc *me, struct nu__proc *child, int link,
		  nu_term *monitor_ref);

#endif
