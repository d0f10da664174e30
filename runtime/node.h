/* node.h — private to nuproc: the running node. See node.c. */
#ifndef NU_NODE_H
#define NU_NODE_H

#include <pthread.h>
#include <stdatomic.h>

#include "mem.h"
#include "nuproc.h"
#include "sched.h"
#include "topo.h"

typedef struct nu__node {
	nu_config cfg;
	nu__topo topo;
	nu__mem mem;
	nu__pool recs;            /* relation records, signals (pool.c) */
	unsigned nsched;
	nu__sched **sched;        /* [nsched], each on its node's memory */
	unsigned ngroups;
	nu__group *groups;        /* one per NUMA node in use */
	int ring_mode;            /* NU__RING_* chosen at start */
	nu_fn main_fn;
	void *main_arg;
	_Alignas(64) _Atomic int64_t reserved; /* live + credits (proc.c) */
	_Atomic int tight;        /* near max_procs: no credits kept */
	_Atomic uint64_t xfer_begin, xfer_end; /* credit transfers (proc.c) */
	_Alignas(64) _Atomic int stopping; /* the main process has exited */
	_Atomic int status;       /* nu_start's result */
	_Atomic int failed;       /* a scheduler failed to start: -errno */
	_Atomic nu_pid *names;    /* registered names (registry.c) */
	pthread_mutex_t lock;     /* start-up rendezvous */
	pthread_cond_t cond;
	unsigned nready;          /* schedulers that reported */
	unsigned nstarted;        /* threads created */
	int go;                   /* 1 run, -1 abort */
} nu__node;

/* The running node, NULL when none runs (one per OS process). */
extern nu__node *_Atomic nu__node_g;

static inline nu__node *nu__node_get(void)
{
	return atomic_load_explicit(&nu__node_g, memory_order_acquire);
}

/* nu_is_alive() on a running node n, inline for the send path: 1 alive,
 * 0 dead, -EINVAL not a local pid. */
static inline int nu__pid_alive(const nu__node *n, nu_pid pid)
{
	if (!nu__pid_is_local(pid) || !(nu__pid_gen(pid) & 1) ||
	    nu__pid_index(pid) >= n->mem.nslots)
		return -EINVAL;
	return atomic_load_explicit(&n->mem.gen[nu__pid_index(pid)],
				    memory_order_acquire) == nu__pid_gen(pid);
}

/* Scheduler start-up rendezvous: report rc (0 or -errno) and wait until
 * every scheduler has reported. Returns 1 when the node may run. */
int nu__node_sched_ready(nu__node *n, int rc);

/* Spawn the main process (scheduler 0's loop context, at start). */
void nu__node_spawn_main(nu__sched *s);

/* The name table (registry.c). */
int nu__registry_init(nu__node *n);
void nu__registry_fini(nu__node *n);

/* Live processes: reserved minus the credits schedulers hold. */
int64_t nu__count_live(nu__node *n);

/* Record the main process's exit and start stopping the node. */
void nu__node_main_exited(nu__sched *s, nu_term reason);

#endif
