/* topo.h — private to nuproc: NUMA topology, thread pinning, memory binding.
 *
 * The node start-up code loads the topology once, makes one scheduler
 * group per node (one pinned thread per CPU of it), and binds each node's
 * memory reservation to that node.  See numa/topo.c for the design notes.
 */
#ifndef NU_NUMA_TOPO_H
#define NU_NUMA_TOPO_H

#include <stddef.h>

/* The CPUs we may run on, grouped by NUMA node.  Built by nu__topo_load,
 * released by nu__topo_free; read-only in between (safe to share between
 * threads). */
typedef struct nu__topo {
	int nnodes;		/* nodes with at least one usable CPU */
	int *node_id;		/* [nnodes] libnuma node numbers, ascending */
	int *ncpus;		/* [nnodes] CPUs per node */
	int **cpus;		/* [nnodes][ncpus[i]] CPU numbers, ascending */
	int total_cpus;
	int fallback;		/* 1 when libnuma was unavailable: one node (id 0)
				   with every CPU in our affinity mask */
} nu__topo;

/* Fill *t (its previous contents are ignored, not freed) with the CPUs of
 * the calling thread's affinity mask — at start-up, the process's, as set
 * by taskset or a cpuset — grouped by node.  Nodes without such a CPU are
 * left out, so every usable CPU appears exactly once and nnodes >= 1.
 * Without libnuma (or when it places none of our CPUs) fallback is set and
 * everything is one node, id 0.  Returns 0, or -ENOMEM / another -errno
 * with *t zeroed.  Call it from one thread at a time (start-up). */
int nu__topo_load(nu__topo *t);

/* Free the arrays of *t and zero it; safe on a zeroed struct. */
void nu__topo_free(nu__topo *t);

/* Index of libnuma node node_id in t's arrays, or -EINVAL if t has no such
 * node. */
int nu__topo_node_index(const nu__topo *t, int node_id);

/* Pin the calling thread to one CPU.  Returns 0 or -errno (-EINVAL for a
 * CPU that does not exist or is outside our cpuset); on failure the
 * thread's affinity is unchanged. */
int nu__thread_pin(int cpu);

/* Prefer node node_id for the pages of [addr, addr+len): mbind with
 * MPOL_PREFERRED and MPOL_MF_MOVE (pages already present move when they
 * can).  addr must be page-aligned and len non-zero, else -EINVAL; len is
 * rounded up to whole pages by the kernel.  When fallback is set, or we may
 * allocate from one node only, does nothing and returns 0.  Returns 0 or
 * -errno from mbind (-EINVAL for a node we may not use, -EFAULT/-ENOMEM for
 * a range that is not mapped). */
int nu__mem_bind(void *addr, size_t len, int node_id, int fallback);

#endif
