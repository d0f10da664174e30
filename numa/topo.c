/* topo.c — NUMA topology, thread pinning and memory binding (libnuma).
 *
 * Entities.  A *node* is a libnuma node number; a *CPU* is a kernel CPU
 * number.  nu__topo lists, per node, the CPUs we are allowed to run on:
 * the calling thread's sched_getaffinity mask (so taskset and cpusets are
 * honoured), grouped with numa_node_to_cpus.  Nodes none of whose CPUs we
 * may use are left out; nodes are numbered as libnuma numbers them, which
 * need not be dense (0, 2, 5 happens), hence nu__topo_node_index.
 *
 * Fallback.  When numa_available() fails (no NUMA support in the kernel,
 * a seccomp filter refusing get_mempolicy) or libnuma places none of our
 * CPUs, the whole mask becomes one node with id 0 and fallback = 1; binding
 * is then a no-op.  A CPU in our mask that no node claims (a sysfs race
 * with CPU hotplug) joins the lowest node found, so every usable CPU
 * appears exactly once.
 *
 * Memory placement policy: MPOL_PREFERRED, not MPOL_BIND.  A node's
 * reservation holds the stacks and heaps of that node's processes; keeping
 * it local is a performance matter, not a correctness one.  With BIND, a
 * node that runs out of free pages makes the faulting scheduler thread hit
 * the OOM killer (or the uffd copy fail) while other nodes still have
 * memory; with PREFERRED the kernel falls back to a remote node and the
 * runtime keeps running, a little slower.  The policy is set on the range
 * (a VMA policy), not on threads: with userfaultfd the thread that
 * populates a page is not necessarily the one that will use it, and a
 * VMA policy holds whichever thread faults or copies the page in.
 * MPOL_MF_MOVE migrates pages already present, so binding a reservation
 * after touching it still works; on an untouched reservation it only
 * walks empty page tables.
 *
 * Rejected alternatives.
 * - Parsing /sys/devices/system/node ourselves: libnuma reads the same
 *   files, but also knows the cpuset's allowed nodes (Mems_allowed), the
 *   kernel's mask sizes, and mbind's historical maxnode off-by-one; one
 *   source of truth that agrees with numactl beats a second parser.
 * - hwloc: a much larger dependency for caches and PCI locality we do not
 *   use.
 * - numa_node_of_cpu() per CPU: rescans every node for each CPU and cannot
 *   tell "no such CPU" from "no node"; one numa_node_to_cpus per node is
 *   enough.
 * - numa_run_on_node / numa_bind / numa_set_preferred: per-node or
 *   per-thread policies, and they report errors by printing.  We pin to one
 *   CPU with pthread_setaffinity_np and bind ranges with mbind directly.
 * - numa_alloc_onnode: allocates as well as binds; the memory module makes
 *   its own MAP_NORESERVE reservation and registers it with userfaultfd.
 *
 * Concurrency.  No state of our own outside the caller's structures.
 * nu__topo_load goes through libnuma's per-node CPU-mask cache, which
 * libnuma fills lazily with a race it documents as harmless; call it from
 * one thread at start-up.  nu__thread_pin and nu__mem_bind only read
 * libnuma's start-up globals and may run on any thread.
 *
 * Printing.  Nothing here prints.  libnuma itself may: numa_warn() when
 * sysfs is unreadable, and it exit()s when its own small allocations fail.
 * Overriding its weak numa_warn/numa_error would silently take the hook
 * away from the application linking us, so we leave them alone.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "topo.h"

#include <errno.h>
#include <limits.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Largest CPU count we size masks for (the kernel's NR_CPUS tops out at
 * 8192 on x86_64 and 4096 on arm64). */
#define NU__MAX_CPUS (1 << 16)
/* Largest node count we build nodemasks for (kernel NODES_SHIFT <= 10). */
#define NU__MAX_NODES 4096
#define NU__LONG_BITS (CHAR_BIT * sizeof(unsigned long))

/* The CPUs of the calling thread's affinity mask, ascending, in a new
 * array *out of *n entries.  Grows the mask until the kernel accepts its
 * size.  Returns 0 or -errno. */
static int affinity_cpus(int **out, int *n)
{
	for (int bits = CPU_SETSIZE; bits <= NU__MAX_CPUS; bits *= 2) {
		size_t size = CPU_ALLOC_SIZE(bits);
		cpu_set_t *set = CPU_ALLOC(bits);
		if (!set)
			return -ENOMEM;
		if (sched_getaffinity(0, size, set) != 0) {
			int err = errno;
			CPU_FREE(set);
			if (err != EINVAL)
				return -err;
			continue;	/* the kernel's mask is larger */
		}
		int count = CPU_COUNT_S(size, set), k = 0;
		int *cpus = malloc(sizeof(*cpus) * (size_t)(count ? count : 1));
		if (!cpus) {
			CPU_FREE(set);
			return -ENOMEM;
		}
		for (int c = 0; c < (int)(size * CHAR_BIT) && k < count; c++)
			if (CPU_ISSET_S(c, size, set))
				cpus[k++] = c;
		CPU_FREE(set);
		*out = cpus;
		*n = k;
		return 0;
	}
	return -EINVAL;
}

/* Set owner[i] to the libnuma node holding cpus[i], or -1 where no node
 * claims it.  libnuma must be available.  Returns how many CPUs were
 * placed, or -ENOMEM. */
static int numa_place(const int *cpus, int n, int *owner)
{
	struct bitmask bm;
	int placed = 0, maxnode = numa_max_node();

	/* Our own buffer: numa_allocate_cpumask() exits on ENOMEM.  It must be
	 * exactly as large as libnuma's cached masks. */
	bm.size = (unsigned long)numa_num_possible_cpus();
	bm.maskp = calloc((bm.size + NU__LONG_BITS - 1) / NU__LONG_BITS,
			  sizeof(unsigned long));
	if (!bm.maskp)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		owner[i] = -1;
	for (int node = 0; node <= maxnode; node++) {
		/* Holes in the numbering are not in numa_nodes_ptr; skipping
		 * them also keeps libnuma from warning about them. */
		if (!numa_bitmask_isbitset(numa_nodes_ptr, (unsigned)node) ||
		    numa_node_to_cpus(node, &bm) < 0)
			continue;
		for (int i = 0; i < n; i++) {
			if (owner[i] < 0 &&
			    numa_bitmask_isbitset(&bm, (unsigned)cpus[i])) {
				owner[i] = node;
				placed++;
			}
		}
	}
	free(bm.maskp);
	return placed;
}

/* Give every unplaced CPU (owner -1) to the lowest node that got one, or,
 * if none did, put all CPUs on node 0.  Returns 1 in the latter case (the
 * fallback), else 0. */
static int place_leftovers(int *owner, int n, int placed)
{
	int lowest = INT_MAX;

	if (placed == 0) {
		for (int i = 0; i < n; i++)
			owner[i] = 0;
		return 1;
	}
	for (int i = 0; i < n; i++)
		if (owner[i] >= 0 && owner[i] < lowest)
			lowest = owner[i];
	for (int i = 0; i < n; i++)
		if (owner[i] < 0)
			owner[i] = lowest;
	return 0;
}

/* Allocate t's arrays for nnodes nodes and n CPUs in all.  cpus[0] is the
 * one block holding every CPU number (nu__topo_free relies on it).
 * Returns 0 or -ENOMEM with nothing allocated. */
static int topo_alloc(nu__topo *t, int nnodes, int n)
{
	t->node_id = calloc((size_t)nnodes, sizeof(*t->node_id));
	t->ncpus = calloc((size_t)nnodes, sizeof(*t->ncpus));
	t->cpus = calloc((size_t)nnodes, sizeof(*t->cpus));
	int *block = calloc((size_t)n, sizeof(*block));
	if (!t->node_id || !t->ncpus || !t->cpus || !block) {
		free(block);
		nu__topo_free(t);
		return -ENOMEM;
	}
	t->cpus[0] = block;
	t->nnodes = nnodes;
	t->total_cpus = n;
	return 0;
}

/* Build *t from n ascending CPUs and their nodes (every owner[i] >= 0).
 * Returns 0 or -ENOMEM with *t zeroed. */
static int topo_build(nu__topo *t, const int *cpus, const int *owner, int n)
{
	int maxnode = 0, nnodes = 0, k = 0;

	for (int i = 0; i < n; i++)
		if (owner[i] > maxnode)
			maxnode = owner[i];
	int *count = calloc((size_t)maxnode + 1, sizeof(*count));
	if (!count)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		nnodes += count[owner[i]]++ == 0;
	if (topo_alloc(t, nnodes, n) != 0) {
		free(count);
		return -ENOMEM;
	}
	/* Nodes ascending; each node's CPUs in CPU order, which is ascending. */
	int *next = t->cpus[0];
	for (int node = 0; node <= maxnode; node++) {
		if (!count[node])
			continue;
		t->node_id[k] = node;
		t->ncpus[k] = count[node];
		t->cpus[k] = next;
		for (int i = 0; i < n; i++)
			if (owner[i] == node)
				*next++ = cpus[i];
		k++;
	}
	free(count);
	return 0;
}

/* Affinity CPUs -> nodes -> arrays; see topo.h for the contract. */
int nu__topo_load(nu__topo *t)
{
	int *cpus = NULL, *owner = NULL, n = 0, placed = 0, rc, fallback;

	memset(t, 0, sizeof(*t));
	rc = affinity_cpus(&cpus, &n);
	if (rc != 0)
		return rc;
	owner = malloc(sizeof(*owner) * (size_t)n);
	if (!owner) {
		rc = -ENOMEM;
		goto out;
	}
	if (numa_available() >= 0) {
		placed = numa_place(cpus, n, owner);
		if (placed < 0) {
			rc = placed;
			goto out;
		}
	}
	fallback = place_leftovers(owner, n, placed);
	rc = topo_build(t, cpus, owner, n);
	if (rc == 0)
		t->fallback = fallback;
out:
	free(owner);
	free(cpus);
	return rc;
}

/* Frees what topo_alloc made and zeroes *t; a zeroed *t frees nothing. */
void nu__topo_free(nu__topo *t)
{
	if (t->cpus && t->nnodes > 0)
		free(t->cpus[0]);
	free(t->cpus);
	free(t->ncpus);
	free(t->node_id);
	memset(t, 0, sizeof(*t));
}

/* Linear search: nnodes is small (one per socket or sub-NUMA cluster). */
int nu__topo_node_index(const nu__topo *t, int node_id)
{
	for (int i = 0; t && i < t->nnodes; i++)
		if (t->node_id[i] == node_id)
			return i;
	return -EINVAL;
}

/* Sets the calling thread's mask to {cpu}; 0 or -errno (topo.h). */
int nu__thread_pin(int cpu)
{
	if (cpu < 0 || cpu >= NU__MAX_CPUS)
		return -EINVAL;
	size_t size = CPU_ALLOC_SIZE(cpu + 1);
	cpu_set_t *set = CPU_ALLOC(cpu + 1);
	if (!set)
		return -ENOMEM;
	CPU_ZERO_S(size, set);
	CPU_SET_S(cpu, size, set);
	/* Returns an error number, not -1/errno. */
	int err = pthread_setaffinity_np(pthread_self(), size, set);
	CPU_FREE(set);
	return -err;
}

/* MPOL_PREFERRED on the range, or a no-op on one node (topo.h). */
int nu__mem_bind(void *addr, size_t len, int node_id, int fallback)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned long mask[NU__MAX_NODES / NU__LONG_BITS] = { 0 };

	if (page <= 0 || (uintptr_t)addr % (uintptr_t)page != 0 || len == 0 ||
	    node_id < 0)
		return -EINVAL;
	/* One node we may allocate from (the cpuset's Mems_allowed): nothing
	 * to choose between. */
	if (fallback || numa_available() < 0 ||
	    numa_bitmask_weight(numa_all_nodes_ptr) <= 1)
		return 0;
	if (node_id >= NU__MAX_NODES || node_id > numa_max_possible_node())
		return -EINVAL;
	mask[node_id / NU__LONG_BITS] |= 1UL << (node_id % NU__LONG_BITS);
	/* The kernel reads maxnode - 1 bits (mbind's historical off-by-one). */
	unsigned long words = (unsigned long)node_id / NU__LONG_BITS + 1;
	if (mbind(addr, len, MPOL_PREFERRED, mask, words * NU__LONG_BITS + 1,
		  MPOL_MF_MOVE) != 0)
		return -errno;
	return 0;
}
