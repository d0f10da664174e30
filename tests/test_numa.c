/* test_numa.c — suite for numa/: topology, pinning, memory binding.
 *
 * The machine decides what can be checked: on one node the binding is a
 * documented no-op, so the policy checks (get_mempolicy, move_pages) run
 * in full only where libnuma sees two or more nodes we may allocate from.
 * Pinning runs on a thread of its own so the suite's main thread keeps its
 * affinity whatever happens.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "topo.h"
#include "nutest.h"

#include <errno.h>
#include <limits.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The calling thread's affinity mask, in a mask of `bits` CPUs. */
static cpu_set_t *affinity(int *bits, size_t *size)
{
	for (int b = CPU_SETSIZE; b <= (1 << 16); b *= 2) {
		cpu_set_t *set = CPU_ALLOC(b);
		*size = CPU_ALLOC_SIZE(b);
		*bits = b;
		if (set && sched_getaffinity(0, *size, set) == 0)
			return set;
		CPU_FREE(set);
	}
	return NULL;
}

/* Whether two masks of the same size hold the same CPUs. */
static int same_mask(const cpu_set_t *a, const cpu_set_t *b, size_t size)
{
	return CPU_EQUAL_S(size, a, b);
}

/* Whether libnuma sees two or more nodes we may allocate from. */
static int multi_node(void)
{
	return numa_available() >= 0 &&
	       numa_bitmask_weight(numa_all_nodes_ptr) > 1;
}

static void test_load(void)
{
	nu__topo t;
	int bits, bad_order = 0, dup = 0, foreign = 0, sum = 0;
	size_t size;
	cpu_set_t *set = affinity(&bits, &size);

	CU_ASSERT_FATAL(set != NULL);
	CU_ASSERT_FATAL(nu__topo_load(&t) == 0);
	CU_ASSERT(t.nnodes >= 1);
	CU_ASSERT_EQUAL(t.total_cpus, CPU_COUNT_S(size, set));
	unsigned char *seen = calloc((size_t)bits, 1);
	CU_ASSERT_FATAL(seen != NULL);
	for (int i = 0; i < t.nnodes; i++) {
		CU_ASSERT(t.ncpus[i] >= 1);
		bad_order += i > 0 && t.node_id[i] <= t.node_id[i - 1];
		for (int k = 0; k < t.ncpus[i]; k++) {
			int c = t.cpus[i][k];
			bad_order += k > 0 && c <= t.cpus[i][k - 1];
			if (c < 0 || c >= bits || !CPU_ISSET_S(c, size, set)) {
				foreign++;
				continue;
			}
			dup += seen[c]++ != 0;
			/* Agrees with libnuma's own answer. */
			if (!t.fallback)
				CU_ASSERT_EQUAL(numa_node_of_cpu(c), t.node_id[i]);
		}
		sum += t.ncpus[i];
	}
	CU_ASSERT_EQUAL(sum, t.total_cpus);
	CU_ASSERT_EQUAL(bad_order, 0);
	CU_ASSERT_EQUAL(dup, 0);
	CU_ASSERT_EQUAL(foreign, 0);
	if (t.fallback) {
		CU_ASSERT_EQUAL(t.nnodes, 1);
		CU_ASSERT_EQUAL(t.node_id[0], 0);
	}
	free(seen);
	CPU_FREE(set);
	nu__topo_free(&t);
	CU_ASSERT_EQUAL(t.nnodes, 0);
	CU_ASSERT_PTR_NULL(t.cpus);
	CU_ASSERT_PTR_NULL(t.node_id);
}

static void test_free_zeroed(void)
{
	nu__topo t;

	memset(&t, 0, sizeof(t));
	nu__topo_free(&t);
	nu__topo_free(&t);
	CU_ASSERT_EQUAL(t.nnodes, 0);
	CU_ASSERT_FATAL(nu__topo_load(&t) == 0);
	nu__topo_free(&t);
	nu__topo_free(&t);	/* freeing twice is freeing a zeroed struct */
	CU_ASSERT_PTR_NULL(t.ncpus);
	CU_ASSERT_EQUAL(t.total_cpus, 0);
}

static void test_node_index(void)
{
	nu__topo t;

	CU_ASSERT_FATAL(nu__topo_load(&t) == 0);
	for (int i = 0; i < t.nnodes; i++)
		CU_ASSERT_EQUAL(nu__topo_node_index(&t, t.node_id[i]), i);
	CU_ASSERT_EQUAL(nu__topo_node_index(&t, -1), -EINVAL);
	CU_ASSERT_EQUAL(nu__topo_node_index(&t, t.node_id[t.nnodes - 1] + 1),
			-EINVAL);
	CU_ASSERT_EQUAL(nu__topo_node_index(&t, INT_MAX), -EINVAL);
	CU_ASSERT_EQUAL(nu__topo_node_index(NULL, 0), -EINVAL);
	nu__topo_free(&t);
	CU_ASSERT_EQUAL(nu__topo_node_index(&t, 0), -EINVAL);
}

/* Pinning runs on its own thread; results come back in this record. */
struct pin_result {
	int pinned_ok, pinned_n;	/* CPUs where pin + sched_getcpu agreed */
	int mask_ok;			/* the mask became exactly {cpu} */
	int bad_rc[6];			/* return codes of invalid pins */
	int unchanged;			/* affinity intact after each failure */
	int runnable;			/* still schedulable after each failure */
};

/* Try each invalid CPU and check the thread keeps its mask and runs on. */
static void pin_invalid(struct pin_result *r, cpu_set_t *before, int bits,
			size_t size)
{
	const int bad[6] = { -1, INT_MIN, 100000, INT_MAX, 1 << 16, bits };

	r->unchanged = r->runnable = 1;
	for (int i = 0; i < 6; i++) {
		r->bad_rc[i] = nu__thread_pin(bad[i]);
		cpu_set_t *now = CPU_ALLOC(bits);
		if (!now || pthread_getaffinity_np(pthread_self(), size, now) ||
		    !same_mask(before, now, size))
			r->unchanged = 0;
		CPU_FREE(now);
		sched_yield();
		int cpu = sched_getcpu();
		if (cpu < 0 || !CPU_ISSET_S(cpu, size, before))
			r->runnable = 0;
	}
}

static void *pin_thread(void *arg)
{
	struct pin_result *r = arg;
	nu__topo t;
	int bits;
	size_t size;
	cpu_set_t *before = affinity(&bits, &size), *now = CPU_ALLOC(bits);

	if (!before || !now || nu__topo_load(&t) != 0)
		return NULL;
	pin_invalid(r, before, bits, size);
	r->mask_ok = 1;
	for (int i = 0; i < t.nnodes; i++) {
		for (int k = 0; k < t.ncpus[i]; k++) {
			int c = t.cpus[i][k];
			r->pinned_n++;
			if (nu__thread_pin(c) == 0 && sched_getcpu() == c)
				r->pinned_ok++;
			if (pthread_getaffinity_np(pthread_self(), size, now) ||
			    CPU_COUNT_S(size, now) != 1 || !CPU_ISSET_S(c, size, now))
				r->mask_ok = 0;
		}
	}
	nu__topo_free(&t);
	CPU_FREE(now);
	CPU_FREE(before);
	return NULL;
}

static void test_pin(void)
{
	struct pin_result r;
	pthread_t th;

	memset(&r, 0, sizeof(r));
	CU_ASSERT_FATAL(pthread_create(&th, NULL, pin_thread, &r) == 0);
	CU_ASSERT_FATAL(pthread_join(th, NULL) == 0);
	CU_ASSERT(r.pinned_n >= 1);
	CU_ASSERT_EQUAL(r.pinned_ok, r.pinned_n);
	CU_ASSERT(r.mask_ok);
	for (int i = 0; i < 6; i++)
		CU_ASSERT_EQUAL(r.bad_rc[i], -EINVAL);
	CU_ASSERT(r.unchanged);
	CU_ASSERT(r.runnable);
}

/* Map, bind and touch npages; checks the placement where it can. */
static void test_mem_bind(void)
{
	const size_t page = (size_t)sysconf(_SC_PAGESIZE), npages = 16;
	nu__topo t;

	CU_ASSERT_FATAL(nu__topo_load(&t) == 0);
	int node = t.node_id[0];
	char *mem = mmap(NULL, npages * page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CU_ASSERT_FATAL(mem != MAP_FAILED);
	CU_ASSERT_EQUAL(nu__mem_bind(mem, npages * page, node, t.fallback), 0);
	/* Fallback mode is always a no-op. */
	CU_ASSERT_EQUAL(nu__mem_bind(mem, npages * page, node, 1), 0);
	memset(mem, 1, npages * page);

	int mode = -1;
	unsigned long mask[64] = { 0 };
	CU_ASSERT(get_mempolicy(&mode, mask, 64 * 64 + 1, mem, MPOL_F_ADDR) == 0);
	if (multi_node() && !t.fallback) {
		CU_ASSERT_EQUAL(mode, MPOL_PREFERRED);
		CU_ASSERT(mask[node / 64] & (1UL << (node % 64)));
	} else {
		CU_ASSERT_EQUAL(mode, MPOL_DEFAULT);	/* one node: no-op */
	}
	if (numa_available() >= 0) {
		void *pages[16];
		int status[16], on_node = 0;
		for (size_t i = 0; i < npages; i++)
			pages[i] = mem + i * page;
		CU_ASSERT(move_pages(0, npages, pages, NULL, status, 0) == 0);
		for (size_t i = 0; i < npages; i++)
			on_node += status[i] == node;
		/* Preferred, not bound: all of them unless the node is full. */
		CU_ASSERT_EQUAL(on_node, (int)npages);
	}
	munmap(mem, npages * page);
	nu__topo_free(&t);
}

static void test_mem_bind_bad_args(void)
{
	const size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *mem = mmap(NULL, 4 * page, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CU_ASSERT_FATAL(mem != MAP_FAILED);
	for (int fb = 0; fb <= 1; fb++) {
		CU_ASSERT_EQUAL(nu__mem_bind(mem + 1, page, 0, fb), -EINVAL);
		CU_ASSERT_EQUAL(nu__mem_bind(mem + 8, page, 0, fb), -EINVAL);
		CU_ASSERT_EQUAL(nu__mem_bind(mem, 0, 0, fb), -EINVAL);
		CU_ASSERT_EQUAL(nu__mem_bind(mem, page, -1, fb), -EINVAL);
	}
	/* An unaligned length is fine: the kernel rounds it up. */
	CU_ASSERT_EQUAL(nu__mem_bind(mem, page + 1, 0, 0), 0);
	if (multi_node()) {
		CU_ASSERT_EQUAL(nu__mem_bind(mem, page, 1 << 20, 0), -EINVAL);
		CU_ASSERT_EQUAL(nu__mem_bind(mem, page,
					     numa_max_possible_node() + 1, 0),
				-EINVAL);
		munmap(mem + 2 * page, 2 * page);	/* a hole: not mapped */
		CU_ASSERT(nu__mem_bind(mem, 4 * page, 0, 0) < 0);
	}
	munmap(mem, 4 * page);
}

static CU_TestInfo tests[] = {
	{ "load matches the affinity mask", test_load },
	{ "free is safe on a zeroed struct", test_free_zeroed },
	{ "node index", test_node_index },
	{ "pin to each CPU, reject invalid", test_pin },
	{ "mem_bind places pages", test_mem_bind },
	{ "mem_bind rejects bad arguments", test_mem_bind_bad_args },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("numa", tests)
