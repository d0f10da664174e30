/* node.c — a node: configuration, start, shutdown.
 *
 * nu_start() builds the node (topology, reservations, one scheduler per
 * chosen CPU, grouped by NUMA node), starts the scheduler threads, and
 * blocks its caller until the node is done. Scheduler 0 spawns the main
 * process. When the main process exits, the node is `stopping`: every
 * other process is killed with reason shutdown (proc.c) and, once the
 * live count reaches zero, every scheduler leaves its loop; nu_start joins
 * them, tears everything down and returns the main process's status.
 *
 * Start-up is a rendezvous: each thread reports its set-up result, and the
 * threads run only when all succeeded; otherwise they all leave and
 * nu_start returns the first error. One node runs per OS process (the
 * pointer nu__node_g, set by CAS, is how every thread finds it).
 *
 * CPUs are taken round-robin across the chosen NUMA nodes, so a config that
 * asks for fewer schedulers than CPUs still spreads over the nodes; each
 * group is the schedulers of one node, numbered consecutively.
 */
#include "node.h"

#include "block.h"
#include "clock.h"
#include "crash.h"
#include "fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nu__node *_Atomic nu__node_g;

#define DEFAULT_MAX_PROCS (1u << 20)
#define DEFAULT_STACK (256u << 10)
#define DEFAULT_HEAP (16u << 20)
#define DEFAULT_REDUCTIONS 4000u
#define DEFAULT_WARM 4096u
#define DEFAULT_BATCH 16u

void nu_config_init(nu_config *cfg)
{
	if (!cfg)
		return;
	memset(cfg, 0, sizeof(*cfg));
	cfg->max_procs = DEFAULT_MAX_PROCS;
	cfg->stack_size = DEFAULT_STACK;
	cfg->heap_size = DEFAULT_HEAP;
	cfg->reductions = DEFAULT_REDUCTIONS;
	cfg->warm_slots = DEFAULT_WARM;
	cfg->fault_batch = DEFAULT_BATCH;
}

/* Fill defaults into zero fields and check ranges. */
static int config_check(nu_config *c)
{
	nu_config d;
	nu_config_init(&d);
	if (!c->max_procs)
		c->max_procs = d.max_procs;
	if (!c->stack_size)
		c->stack_size = d.stack_size;
	if (!c->heap_size)
		c->heap_size = d.heap_size;
	if (!c->reductions)
		c->reductions = d.reductions;
	if (!c->warm_slots)
		c->warm_slots = d.warm_slots;
	if (!c->fault_batch)
		c->fault_batch = d.fault_batch;
	if (c->max_procs > NU__PID_MAX_INDEX || c->reductions > (1u << 30) ||
	    c->stack_size < NU__MIN_STACK || c->stack_size > (64u << 20) ||
	    c->heap_size < (64u << 10) || c->heap_size > (1u << 30) ||
	    c->warm_slots > (1u << 20) || (c->nnodes && !c->nodes) ||
	    c->fault_batch > 64 || c->max_heap > ((size_t)1 << 40) ||
	    (unsigned)c->crash_isolation > 1)
		return -EINVAL;
	return 0;
}

/* The topology indices of the chosen nodes, into idx[]; count or -EINVAL. */
static int choose_nodes(const nu__topo *t, const nu_config *c, int *idx)
{
	if (!c->nnodes) {
		for (int i = 0; i < t->nnodes; i++)
			idx[i] = i;
		return t->nnodes;
	}
	if (c->nnodes > (unsigned)t->nnodes)
		return -EINVAL;
	for (unsigned i = 0; i < c->nnodes; i++) {
		int k = nu__topo_node_index(t, c->nodes[i]);
		if (k < 0)
			return -EINVAL;
		for (unsigned j = 0; j < i; j++)
			if (idx[j] == k)
				return -EINVAL;
		idx[i] = k;
	}
	return (int)c->nnodes;
}

/* Spread nsched schedulers over the chosen nodes round-robin; fill the
 * groups (dropping nodes that got none) and each scheduler's CPU. */
static int plan_groups(nu__node *n, const int *idx, int k, unsigned nsched,
		       int *cpu_of)
{
	const nu__topo *t = &n->topo;
	unsigned *cnt = calloc((size_t)k, sizeof(unsigned));
	if (!cnt)
		return -ENOMEM;
	unsigned left = nsched;
	for (int round = 0; left; round++)
		for (int i = 0; i < k && left; i++)
			if (round < t->ncpus[idx[i]] &&
			    cnt[i] < NU__GROUP_MAX) {
				cnt[i]++;
				left--;
			}
	n->groups = calloc((size_t)k, sizeof(nu__group));
	if (!n->groups) {
		free(cnt);
		return -ENOMEM;
	}
	int id = 0;
	for (int i = 0; i < k; i++) {
		if (!cnt[i])
			continue;
		nu__group *g = &n->groups[n->ngroups++];
		g->node_id = t->node_id[idx[i]];
		g->first = id;
		g->count = (int)cnt[i];
		pthread_mutex_init(&g->gq_lock, NULL);
		for (unsigned j = 0; j < cnt[i]; j++)
			cpu_of[id++] = t->cpus[idx[i]][j];
	}
	free(cnt);
	return 0;
}

static int sched_create(nu__node *n, int id, int cpu, nu__group *g)
{
	nu__sched *s = aligned_alloc(NU__CACHELINE,
				     (sizeof(*s) + NU__CACHELINE - 1) &
					     ~(size_t)(NU__CACHELINE - 1));
	if (!s)
		return -ENOMEM;
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->block_tag = nu__block_tag(id);
	nu__pool_cache_init(&s->recs, &n->recs, (unsigned)(g - n->groups));
	s->cpu = cpu;
	s->grp = g;
	int rc = nu__slot_cache_init(&s->slots, n->cfg.warm_slots,
				     (int)(g - n->groups));
	if (rc) {
		free(s);
		return rc;
	}
	n->sched[id] = s;
	return 0;
}

/* Topology, groups, reservations and scheduler structures. */
static int node_build(nu__node *n)
{
	int rc = nu__topo_load(&n->topo);
	if (rc)
		return rc;
	int idx[n->topo.nnodes > 0 ? n->topo.nnodes : 1];
	int k = choose_nodes(&n->topo, &n->cfg, idx);
	if (k < 0)
		return k;
	unsigned total = 0;
	for (int i = 0; i < k; i++)
		total += (unsigned)(n->topo.ncpus[idx[i]] < NU__GROUP_MAX
					    ? n->topo.ncpus[idx[i]]
					    : NU__GROUP_MAX);
	unsigned nsched = n->cfg.schedulers ? n->cfg.schedulers : total;
	if (nsched > total)
		return -EINVAL;
	int cpu_of[nsched];
	if ((rc = plan_groups(n, idx, k, nsched, cpu_of)))
		return rc;
	int node_ids[n->ngroups];
	unsigned nsched_of[n->ngroups];
	for (unsigned i = 0; i < n->ngroups; i++) {
		node_ids[i] = n->groups[i].node_id;
		nsched_of[i] = (unsigned)n->groups[i].count;
	}
	rc = nu__mem_init(&n->mem, &n->cfg, node_ids, nsched_of, n->ngroups,
			  n->topo.fallback);
	if (!rc)
		rc = nu__fault_init(&n->mem, n->cfg.fault_batch);
	if (!rc)
		rc = nu__crash_init(&n->cfg);
	if (!rc)
		rc = nu__registry_init(n);
	if (rc)
		return rc;
	if (!nu__pool_init(&n->recs, NU__RECS_RESERVE, n->ngroups))
		nu__recs_g = &n->recs;
	else /* (a strict overcommit policy, an address-space limit) */
		fprintf(stderr, "nuproc: no address space for the record pool "
				"(%zu GiB); relation records and signals come "
				"from malloc\n",
			NU__RECS_RESERVE >> 30);
	n->sched = calloc(nsched, sizeof(*n->sched));
	if (!n->sched)
		return -ENOMEM;
	n->nsched = nsched;
	for (unsigned gi = 0; gi < n->ngroups; gi++) {
		nu__group *g = &n->groups[gi];
		for (int j = 0; j < g->count; j++)
			if ((rc = sched_create(n, g->first + j,
					       cpu_of[g->first + j], g)))
				return rc;
	}
	return 0;
}

/* Records still out when the node is gone leaked: LeakSanitizer cannot
 * see the pool's, so an ASan build reports them and aborts. */
static void recs_check(nu__pool *pl)
{
#if defined(__SANITIZE_ADDRESS__)
	size_t live = pl->base ? nu__pool_live(pl) : 0;
	if (live) {
		fprintf(stderr, "nuproc: %zu runtime records leaked\n", live);
		abort();
	}
#else
	(void)pl;
#endif
}

static void node_free(nu__node *n)
{
	for (unsigned i = 0; n->sched && i < n->nsched; i++) {
		if (!n->sched[i])
			continue;
		nu__ring_fini(&n->sched[i]->ring); /* (see nu__sched_main) */
		nu__slot_cache_fini(&n->sched[i]->slots);
		nu__sched_free_ovf(n->sched[i]);
		nu__block_cache_fini(n->sched[i]);
		free(n->sched[i]);
	}
	free(n->sched);
	if (nu__recs_g == &n->recs) /* (not a node refused at start) */
		nu__recs_g = NULL;
	recs_check(&n->recs);
	nu__pool_fini(&n->recs);
	for (unsigned i = 0; n->groups && i < n->ngroups; i++)
		pthread_mutex_destroy(&n->groups[i].gq_lock);
	free(n->groups);
	if (n->mem.regions) { /* (only a node that built them set these up) */
		nu__crash_fini();
		nu__fault_fini(&n->mem);
		nu__mem_fini(&n->mem);
	}
	nu__registry_fini(n);
	nu__topo_free(&n->topo);
	pthread_mutex_destroy(&n->lock);
	pthread_cond_destroy(&n->cond);
	free(n);
}

int nu__node_sched_ready(nu__node *n, int rc)
{
	pthread_mutex_lock(&n->lock);
	if (rc && !n->failed)
		n->failed = rc;
	n->nready++;
	pthread_cond_broadcast(&n->cond);
	while (!n->go)
		pthread_cond_wait(&n->cond, &n->lock);
	int go = n->go > 0;
	pthread_mutex_unlock(&n->lock);
	return go;
}

/* Start the threads and wait for them all to end; 0 or the first
 * start-up error. */
static int node_run(nu__node *n)
{
	int rc = 0;
	for (unsigned i = 0; i < n->nsched; i++) {
		rc = -pthread_create(&n->sched[i]->thread, NULL,
				     nu__sched_main, n->sched[i]);
		if (rc)
			break;
		n->sched[i]->started = 1;
		n->nstarted++;
	}
	pthread_mutex_lock(&n->lock);
	while (n->nready < n->nstarted)
		pthread_cond_wait(&n->cond, &n->lock);
	if (!rc)
		rc = n->failed;
	n->go = rc ? -1 : 1;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
	for (unsigned i = 0; i < n->nsched; i++)
		if (n->sched[i]->started)
			pthread_join(n->sched[i]->thread, NULL);
	return rc;
}

int nu_start(const nu_config *cfg, nu_fn main_fn, void *arg)
{
	if (!main_fn)
		return -EINVAL;
	nu__node *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	if (cfg)
		n->cfg = *cfg;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	int rc = config_check(&n->cfg);
	nu__node *none = NULL;
	if (rc || !atomic_compare_exchange_strong(&nu__node_g, &none, n)) {
		node_free(n);
		return rc ? rc : -EBUSY;
	}
	n->main_fn = main_fn;
	n->main_arg = arg;
	nu__clock_init();
	rc = node_build(n);
	if (!rc) {
		n->ring_mode = nu__ring_probe();
		rc = node_run(n);
	}
	if (!rc)
		rc = atomic_load(&n->status);
	if (n->nstarted)
		nu__proc_drain_all();
	atomic_store(&nu__node_g, NULL);
	node_free(n);
	return rc;
}

static int status_of(nu_term reason)
{
	if (reason == NU_ATOM_NORMAL)
		return 0;
	if (nu_is_int(reason) && nu_int_value(reason) >= 0 &&
	    nu_int_value(reason) <= 255)
		return (int)nu_int_value(reason);
	return 1;
}

void nu__node_main_exited(nu__sched *s, nu_term reason)
{
	nu__node *n = nu__node_get();
	atomic_store(&n->status, status_of(reason));
	atomic_store(&n->stopping, 1);
	for (unsigned i = 0; i < n->nsched; i++)
		atomic_store(&n->sched[i]->stop, 1);
	nu__proc_kill_all(NU_ATOM_SHUTDOWN);
	nu__sched_kick_all(s);
}

int nu_node_info(nu_node_stats *st)
{
	if (!st)
		return -EINVAL;
	nu__node *n = nu__node_get();
	if (!n)
		return -ESRCH;
	memset(st, 0, sizeof(*st));
	st->processes = (uint64_t)nu__count_live(n);
	st->schedulers = n->nsched;
	st->nodes = n->ngroups;
	st->records_bytes = nu__pool_bytes(&n->recs);
	for (unsigned i = 0; i < n->mem.nregions; i++) {
		nu__region *r = &n->mem.regions[i];
		st->slots_carved += atomic_load(&r->carved);
		st->slots_cold += __atomic_load_n(&r->ncold, __ATOMIC_RELAXED);
		st->slots_warm += __atomic_load_n(&r->ndepot, __ATOMIC_RELAXED);
	}
	for (unsigned i = 0; i < n->nsched; i++) {
		nu__sched *s = n->sched[i];
		st->slots_warm += __atomic_load_n(&s->slots.nwarm,
						  __ATOMIC_RELAXED);
		st->slots_pending += __atomic_load_n(&s->slots.npend,
						     __ATOMIC_RELAXED);
		st->spawns += __atomic_load_n(&s->spawns, __ATOMIC_RELAXED);
		st->steals += __atomic_load_n(&s->steals, __ATOMIC_RELAXED);
		st->msg_blocks_cached +=
			__atomic_load_n(&s->nblocks, __ATOMIC_RELAXED);
	}
	return 0;
}

int64_t nu_process_count(void)
{
	nu__node *n = nu__node_get();
	return n ? nu__count_live(n) : -ESRCH;
}
