/* mem.c — per-node reservations and process slots.
 *
 * Entities
 *   region   one MAP_NORESERVE reservation per NUMA node in use, made once
 *            at start: MADV_NOHUGEPAGE (a first touch must cost a 4 KiB page,
 *            not 2 MiB), bound to its node. One VMA however many processes
 *            run, so vm.max_map_count never limits the process count.
 *   slot     a fixed-size piece of a region holding one process:
 *
 *     base  guard page                    (MADV_GUARD_INSTALL, when carved)
 *           stack pages ...               (grow down)
 *     P     [ stack top | control block | heap start ]   shared page
 *           near heap pages (14)          (grow up)
 *     next slot's guard page
 *
 *            The top of the stack, the control block and the first bytes of
 *            the heap share page P, so an idle process costs one resident
 *            page. The slot is small (320 KiB with the default stack) so
 *            that ~6 slots share one page-table page: with a 16 MiB heap
 *            inside each slot, every idle process also cost a 4 KiB page of
 *            PTEs, doubling the memory of a million idle processes.
 *   far      per slot, a heap window (default 16 MiB) in a second
 *            reservation of the region, where a heap that outgrows the near
 *            window continues (heap.c). Only processes with large heaps
 *            touch it, and pay its page tables.
 *   table    one 32-bit generation per slot (proc.c explains pids), in its
 *            own NORESERVE mapping: it stays readable after the slot's pages
 *            go back, so a stale pid is always recognised.
 *   caches   per scheduler: a LIFO of warm free slots (P resident) so spawn
 *            and exit make no system call and take no fault; a list of
 *            pending slots whose pages must go back first.
 *   depot    per region: warm free slots shared by the node's schedulers.
 *            A process often exits on another scheduler than the one that
 *            spawned it, so slots flow from spawners' caches to exiters'.
 *            A full LIFO hands half of itself to the depot and an empty one
 *            takes a batch back, one lock per batch (Go's mcache/mcentral
 *            pattern), so slots circulate warm instead of being released by
 *            one scheduler and faulted in again by another.
 *
 * Release. A dead process's slot goes back to the warm LIFO when it stayed
 * within P (judged from the deepest stack pointer seen at its switches and
 * its heap high-water mark; exactly, from the fault path's count, with
 * userfaultfd). Otherwise it waits in the pending list and goes back whole,
 * P included, then cold: the scheduler loop flushes NU__PEND_BATCH slots at
 * a time, or fewer once it has been idle TRIM_IDLE_NS, never from spawn or
 * exit. A flush sorts the list and releases each run of consecutive slots
 * with one MADV_DONTNEED call, and the run's far windows with one more:
 * every call is a TLB shootdown, an IPI to every CPU running the node.
 * Releasing all but P (two or three calls per slot) and flushing whenever
 * the loop found no work was measured: with 5,000 exits per second on two
 * schedulers, ~9,000 IPIs per second hit the other CPU and a ping-pong
 * pair's p99.9 round trip was 13.6 us; with whole runs, 0.6-2 us, and
 * heap_churn's cost per process halved (33 -> 16.4 us). A free slot beyond
 * the warm LIFO's and the depot's capacity is released whole the same way.
 * Guard markers survive MADV_DONTNEED, so a slot's guard is installed once.
 * A scheduler about to sleep trims its LIFO and its depot to
 * NU__WARM_IDLE_KEEP slots (nu__slot_trim): the warm set is a cache for
 * bursts of spawns, and once a burst is over its pages go back (after
 * 100,000 processes of 1 MiB a node is within ~1 MiB of where it started,
 * not 16 MiB per scheduler). One that stays busy gives back, every
 * second, the slots its LIFOs and its depot held below their low-water
 * marks over the last second (nu__slot_decay; sched.c, "Decay").
 *
 * Kept slots (userfaultfd only, where the count of a slot's resident pages
 * is exact). A dead process that grew past P but populated at most
 * NU__KEPT_PAGES (320 KiB) is not released: its slot goes whole, pages
 * and all, to its scheduler's kept LIFO (NU__KEPT_CAP slots, 5 MiB at
 * most), and the next spawn there takes it before a warm one. A process
 * that builds a 4096-cell list and exits (churn_latency's worker, 47
 * pages) spent ~45% of its ~107 us in UFFDIO_COPY and ~9% in the
 * release's madvise; this is Go's and BEAM's reuse of freed memory,
 * bounded. The next process starts with the slot's resident count (what
 * nu_process_info reports: those pages are resident in its slot) and its
 * heap budget at the kept heap pages, since it may use them without a
 * fault: so a slot is taken only by a spawn whose max_heap they fit, and
 * the limit holds exactly as the heap grows from its base into them and
 * past them. A kept slot goes back whole when its scheduler trims on
 * going idle, and never through the depot.
 *
 * Limits: a leaf call deeper than the last switch is not seen, so such a
 * stack page may stay resident in a warm slot (at most warm_cap slots per
 * scheduler); the userfaultfd fault path makes this exact.
 *
 * Rejected: one mapping per process (a VMA each: ~32k processes before
 * max_map_count), malloc'd stacks (no bulk release, no node placement),
 * releasing at exit (a system call and a TLB shootdown per exit).
 */
#include "mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fault.h"
#include "fiber.h"
#include "proc.h"
#include "topo.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif

#define PEND_CAP 256u

static size_t round_up(size_t x, size_t a) { return (x + a - 1) & ~(a - 1); }

static void *reserve(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

int nu__mem_guard(nu__mem *m, void *addr, int install)
{
	if (!m->guards)
		return -EOPNOTSUPP;
	int advice = install ? MADV_GUARD_INSTALL : MADV_GUARD_REMOVE;
	return madvise(addr, m->page, advice) ? -errno : 0;
}

static int region_init(nu__mem *m, nu__region *r, int node_id,
		       uint32_t first, uint32_t depot_cap, int numa_fallback)
{
	r->depot_cap = depot_cap;
	r->depot = calloc(depot_cap ? depot_cap : 1, sizeof(uint32_t));
	r->node_id = node_id;
	r->first = first;
	r->nslots = m->per_region;
	r->len = (size_t)r->nslots * m->slot_size;
	r->far_len = (size_t)r->nslots * m->far_size;
	atomic_init(&r->carved, 0);
	r->ncold = 0;
	r->base = reserve(r->len);
	r->far = reserve(r->far_len);
	r->cold = reserve((size_t)r->nslots * sizeof(uint32_t));
	if (!r->base || !r->far || !r->cold || !r->depot)
		return -ENOMEM;
	madvise(r->base, r->len, MADV_NOHUGEPAGE);
	madvise(r->far, r->far_len, MADV_NOHUGEPAGE);
	int rc = nu__mem_bind(r->base, r->len, node_id, numa_fallback);
	if (!rc)
		rc = nu__mem_bind(r->far, r->far_len, node_id, numa_fallback);
	if (rc)
		return rc;
	pthread_mutex_init(&r->lock, NULL);
	return 0;
}

/* Slot geometry from the config; -EINVAL when out of range. */
static int mem_geometry(nu__mem *m, const nu_config *cfg, unsigned nnodes,
			unsigned nsched)
{
	/* Free slots can sit in caches, depots and pending lists while the
	 * table is not full: the regions hold that many more than max_procs,
	 * so a spawn under max_procs always finds a slot. */
	m->page = (size_t)sysconf(_SC_PAGESIZE);
	m->stack_size = round_up(cfg->stack_size, m->page);
	m->near_size = (size_t)NU__NEAR_PAGES * m->page;
	m->far_size = round_up(cfg->heap_size, m->page);
	m->slot_size = m->page + m->stack_size + m->page + m->near_size;
	m->heap_max_pages = nu__mem_pages(m, cfg->max_heap);
	uint64_t margin = (uint64_t)nsched * (2 * cfg->warm_slots + PEND_CAP);
	uint64_t total = cfg->max_procs + margin;
	uint64_t per = (total + nnodes - 1) / nnodes;
	if (per * nnodes > (uint64_t)NU__PID_MAX_INDEX + 1)
		return -EINVAL;
	m->per_region = (uint32_t)per;
	m->nslots = (uint32_t)(per * nnodes);
	return 0;
}

int nu__mem_init(nu__mem *m, const nu_config *cfg, const int *node_ids,
		 const unsigned *nsched_of, unsigned nnodes, int numa_fallback)
{
	memset(m, 0, sizeof(*m));
	unsigned nsched = 0;
	for (unsigned i = 0; i < nnodes; i++)
		nsched += nsched_of[i];
	int rc = mem_geometry(m, cfg, nnodes, nsched);
	if (rc)
		return rc;
	m->uffd = -1;
	m->gen_len = (size_t)m->nslots * sizeof(uint32_t);
	m->gen = reserve(m->gen_len);
	m->resident_len = m->gen_len;
	m->resident = reserve(m->resident_len);
	m->regions = calloc(nnodes, sizeof(*m->regions));
	if (!m->gen || !m->resident || !m->regions) {
		nu__mem_fini(m);
		return -ENOMEM;
	}
	m->nregions = nnodes;
	for (unsigned i = 0; i < nnodes; i++) {
		rc = region_init(m, &m->regions[i], node_ids[i],
				 i * m->per_region,
				 cfg->warm_slots * nsched_of[i], numa_fallback);
		if (rc) {
			nu__mem_fini(m);
			return rc;
		}
	}
	/* Probe guard support on the first slot (Linux 6.13+). */
	m->guards = 1;
	m->guards = nu__mem_guard(m, m->regions[0].base, 1) == 0;
	if (m->guards)
		nu__mem_guard(m, m->regions[0].base, 0);
	return 0;
}

void nu__mem_fini(nu__mem *m)
{
	for (unsigned i = 0; m->regions && i < m->nregions; i++) {
		nu__region *r = &m->regions[i];
		if (r->base)
			munmap(r->base, r->len);
		if (r->far)
			munmap(r->far, r->far_len);
		if (r->cold)
			munmap(r->cold, (size_t)r->nslots * sizeof(uint32_t));
		if (r->base && r->far && r->cold && r->depot)
			pthread_mutex_destroy(&r->lock);
		free(r->depot);
	}
	free(m->regions);
	if (m->gen)
		munmap((void *)m->gen, m->gen_len);
	if (m->resident)
		munmap((void *)m->resident, m->resident_len);
	memset(m, 0, sizeof(*m));
	m->uffd = -1;
}

int nu__slot_cache_init(nu__slot_cache *c, unsigned warm_cap, int group)
{
	memset(c, 0, sizeof(*c));
	c->warm = calloc(warm_cap ? warm_cap : 1, sizeof(uint32_t));
	c->pend = calloc(PEND_CAP, sizeof(nu__pending));
	if (!c->warm || !c->pend) {
		nu__slot_cache_fini(c);
		return -ENOMEM;
	}
	c->warm_cap = warm_cap;
	c->pend_cap = PEND_CAP;
	c->group = group;
	return 0;
}

void nu__slot_cache_fini(nu__slot_cache *c)
{
	free(c->warm);
	free(c->pend);
	memset(c, 0, sizeof(*c));
}

/* ---------------------------------------------------------- getting */

static int64_t carve(nu__mem *m, nu__region *r)
{
	uint32_t i = atomic_load_explicit(&r->carved, memory_order_relaxed);
	do {
		if (i >= r->nslots)
			return -1;
	} while (!atomic_compare_exchange_weak(&r->carved, &i, i + 1));
	uint32_t idx = r->first + i;
	char *base = nu__slot_base(m, idx);
	if (m->guards)
		nu__mem_guard(m, base, 1);
	nu__fiber_register_stack(base + m->page,
				 nu__slot_page(m, idx) + NU__P_STACK_TOP);
	return idx;
}

static int64_t cold_pop(nu__region *r)
{
	int64_t idx = -1;
	if (!__atomic_load_n(&r->ncold, __ATOMIC_RELAXED))
		return -1;
	pthread_mutex_lock(&r->lock);
	if (r->ncold) {
		idx = r->cold[r->ncold - 1];
		__atomic_store_n(&r->ncold, r->ncold - 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&r->lock);
	return idx;
}

static void cache_set_warm(nu__slot_cache *c, unsigned n)
{
	__atomic_store_n(&c->nwarm, n, __ATOMIC_RELAXED);
	if (n < c->warm_low)
		c->warm_low = n;
}

/* Move up to half a LIFO's worth between a cache and its depot. */
static void depot_take(nu__region *r, nu__slot_cache *c)
{
	if (!__atomic_load_n(&r->ndepot, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&r->lock);
	unsigned n = c->warm_cap / 2 ? c->warm_cap / 2 : 1;
	if (n > r->ndepot)
		n = r->ndepot;
	__atomic_store_n(&r->ndepot, r->ndepot - n, __ATOMIC_RELAXED);
	if (r->ndepot < r->depot_low)
		r->depot_low = r->ndepot;
	memcpy(c->warm + c->nwarm, r->depot + r->ndepot, n * sizeof(uint32_t));
	cache_set_warm(c, c->nwarm + n);
	pthread_mutex_unlock(&r->lock);
}

/* A full LIFO gives half of itself to the depot; 0 if the depot is full. */
static int depot_give(nu__region *r, nu__slot_cache *c)
{
	pthread_mutex_lock(&r->lock);
	unsigned n = c->warm_cap / 2 ? c->warm_cap / 2 : 1;
	if (n > r->depot_cap - r->ndepot)
		n = r->depot_cap - r->ndepot;
	memcpy(r->depot + r->ndepot, c->warm + c->nwarm - n,
	       n * sizeof(uint32_t));
	__atomic_store_n(&r->ndepot, r->ndepot + n, __ATOMIC_RELAXED);
	cache_set_warm(c, c->nwarm - n);
	pthread_mutex_unlock(&r->lock);
	return n > 0;
}

int64_t nu__slot_get(nu__mem *m, nu__slot_cache *c, int group,
		     uint32_t heap_max, uint32_t *heap_pages)
{
	*heap_pages = 0;
	if (group == c->group && c->nkept &&
	    (!heap_max || c->kept[c->nkept - 1].heap_pages <= heap_max)) {
		const nu__kept *k = &c->kept[--c->nkept];
		if (c->nkept < c->kept_low)
			c->kept_low = c->nkept;
		*heap_pages = k->heap_pages;
		return k->index;
	}
	if (group == c->group) {
		if (!c->nwarm)
			depot_take(&m->regions[group], c);
		if (c->nwarm) {
			cache_set_warm(c, c->nwarm - 1);
			return c->warm[c->nwarm];
		}
	}
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned k = 0; k < m->nregions; k++) {
			nu__region *r = &m->regions[(group + k) % m->nregions];
			int64_t idx = cold_pop(r);
			if (idx < 0)
				idx = carve(m, r);
			if (idx >= 0) { /* cold: P is likely missing */
				nu__fault_prefault_p(m, (uint32_t)idx);
				return idx;
			}
		}
		if (!c->npend)
			break;
		nu__slot_flush(m, c); /* our own pending slots, then retry */
		if (group == c->group && c->nwarm) {
			cache_set_warm(c, c->nwarm - 1);
			return c->warm[c->nwarm];
		}
	}
	return -EAGAIN;
}

/* ---------------------------------------------------------- putting */

/* Queue slot index for a whole release (it goes cold), its far window
 * up to far_to. There is room (npend < pend_cap). */
static void pend_push(nu__slot_cache *c, uint32_t index, uintptr_t far_to)
{
	c->pend[c->npend] = (nu__pending){ index, far_to };
	__atomic_store_n(&c->npend, c->npend + 1, __ATOMIC_RELAXED);
}

/* The end of the far window's range to release for a slot whose process
 * reached far_top there (0: it never touched the far window). */
static uintptr_t far_release_to(const nu__mem *m, uint32_t index,
				uintptr_t far_top)
{
	uintptr_t far = (uintptr_t)nu__slot_far(m, index);
	uintptr_t to = far_top > far ? round_up(far_top, m->page) : 0;
	if (to && m->uffd >= 0) /* and the last fault's batch */
		to += (uintptr_t)m->batch * m->page;
	return to > far + m->far_size ? far + m->far_size : to;
}

/* Keep a dirty slot whole in c's kept LIFO, if it fits: 1 if kept. */
static int kept_put(nu__mem *m, nu__slot_cache *c, uint32_t index,
		    uintptr_t far_top, uint32_t heap_pages)
{
	if (m->uffd < 0 || c->nkept == NU__KEPT_CAP ||
	    nu__fault_resident(m, index) > NU__KEPT_PAGES)
		return 0;
	c->kept[c->nkept++] = (nu__kept){
		index, heap_pages, far_release_to(m, index, far_top)
	};
	return 1;
}

void nu__slot_put(nu__mem *m, nu__slot_cache *c, uint32_t index,
		  uintptr_t sp_low, uintptr_t heap_top, uintptr_t far_top,
		  uint32_t heap_pages)
{
	uintptr_t page = (uintptr_t)nu__slot_page(m, index);
	uintptr_t far = (uintptr_t)nu__slot_far(m, index);
	int home = index / m->per_region == (uint32_t)c->group;
	/* Within 1 KiB of P's start at a switch: assume deeper leaf calls
	 * touched the stack pages below P. */
	int stack_dirty = sp_low < page + 1024;
	int heap_dirty = heap_top > page + m->page || far_top > far;
	/* With userfaultfd the count is exact: more than P and one fault's
	 * batch resident means the process went beyond a warm slot's set
	 * (the batch a leaf call below P may have populated stays, counted
	 * to the slot, as it did before the fault path existed). */
	if (m->uffd >= 0 && nu__fault_resident(m, index) > 1 + m->batch)
		stack_dirty = heap_dirty = 1;
	if (!stack_dirty && !heap_dirty && home && c->nwarm == c->warm_cap)
		depot_give(&m->regions[c->group], c);
	if (!stack_dirty && !heap_dirty && home && c->nwarm < c->warm_cap) {
		c->warm[c->nwarm] = index;
		cache_set_warm(c, c->nwarm + 1);
		return;
	}
	if (home && kept_put(m, c, index, far_top, heap_pages))
		return;
	if (c->npend == c->pend_cap)
		nu__slot_flush(m, c); /* only when the loop could not keep up */
	pend_push(c, index, far_release_to(m, index, far_top));
}

void nu__slot_trim(nu__mem *m, nu__slot_cache *c, unsigned keep)
{
	nu__region *r = &m->regions[c->group];
	while (c->nkept) {
		if (c->npend == c->pend_cap)
			nu__slot_flush(m, c);
		const nu__kept *k = &c->kept[--c->nkept];
		pend_push(c, k->index, k->far_to);
	}
	while (c->nwarm > keep) {
		while (c->nwarm > keep && c->npend < c->pend_cap) {
			cache_set_warm(c, c->nwarm - 1);
			pend_push(c, c->warm[c->nwarm], 0);
		}
		nu__slot_flush(m, c);
	}
	while (__atomic_load_n(&r->ndepot, __ATOMIC_RELAXED) > keep) {
		pthread_mutex_lock(&r->lock);
		while (r->ndepot > keep && c->npend < c->pend_cap) {
			__atomic_store_n(&r->ndepot, r->ndepot - 1,
					 __ATOMIC_RELAXED);
			pend_push(c, r->depot[r->ndepot], 0);
		}
		pthread_mutex_unlock(&r->lock);
		nu__slot_flush(m, c);
	}
}

/* Up to *budget of a LIFO's `low` bottom entries beyond keep (a[0..len)
 * of which lie below its low-water mark: untaken since the mark was
 * set) go to c's pending list; the rest moves down. Returns how many. */
static unsigned decay_bottom(nu__slot_cache *c, uint32_t *a, unsigned len,
			     unsigned low, unsigned keep, unsigned *budget)
{
	unsigned n = low > keep ? low - keep : 0;
	if (n > *budget)
		n = *budget;
	for (unsigned i = 0; i < n; i++)
		pend_push(c, a[i], 0);
	memmove(a, a + n, (len - n) * sizeof(*a));
	*budget -= n;
	return n;
}

int nu__slot_decay(nu__mem *m, nu__slot_cache *c, unsigned keep, int depot,
		   unsigned max)
{
	nu__slot_flush(m, c); /* then at most max slots, one flush */
	unsigned budget = max < c->pend_cap ? max : c->pend_cap, n;
	if (c->kept_low > c->nkept) /* (a trim took some) */
		c->kept_low = c->nkept;
	unsigned low = c->warm_low;
	n = decay_bottom(c, c->warm, c->nwarm, low, keep, &budget);
	cache_set_warm(c, c->nwarm - n);
	c->warm_low = low - n;
	n = c->kept_low < budget ? c->kept_low : budget;
	for (unsigned i = 0; i < n; i++) /* the oldest first */
		pend_push(c, c->kept[i].index, c->kept[i].far_to);
	memmove(c->kept, c->kept + n, (c->nkept - n) * sizeof(*c->kept));
	c->nkept -= n;
	c->kept_low -= n;
	budget -= n;
	nu__region *r = &m->regions[c->group];
	int more = c->warm_low > keep || c->kept_low;
	if (depot) {
		pthread_mutex_lock(&r->lock);
		if (r->depot_low > r->ndepot)
			r->depot_low = r->ndepot;
		n = decay_bottom(c, r->depot, r->ndepot, r->depot_low, keep,
				 &budget);
		__atomic_store_n(&r->ndepot, r->ndepot - n, __ATOMIC_RELAXED);
		r->depot_low -= n;
		more |= r->depot_low > keep;
		if (!more) /* the next period's mark */
			r->depot_low = r->ndepot;
		pthread_mutex_unlock(&r->lock);
	}
	if (!more) {
		c->warm_low = c->nwarm;
		c->kept_low = c->nkept;
	}
	nu__slot_flush(m, c);
	return more;
}

static int pend_cmp(const void *a, const void *b)
{
	const nu__pending *x = a, *y = b;
	return (x->index > y->index) - (x->index < y->index);
}

/* Release pend[0..n) (consecutive indices of one region): one call for
 * the slots, one for the span of far windows that were used. */
static void release_run(nu__mem *m, const nu__pending *e, unsigned n)
{
	/* P goes too: first free what stale senders pushed into its
	 * mailbox or relation stack since the process drained them (kept in
	 * P, the slot's next process or the teardown would have freed it) */
	for (unsigned i = 0; i < n; i++)
		nu__proc_drain_slot(m, e[i].index);
	madvise(nu__slot_base(m, e->index), (size_t)n * m->slot_size,
		MADV_DONTNEED);
	uintptr_t from = 0, to = 0;
	for (unsigned i = 0; i < n; i++) {
		if (e[i].far_to) {
			if (!from)
				from = (uintptr_t)nu__slot_far(m, e[i].index);
			to = e[i].far_to;
		}
		nu__fault_released(m, e[i].index, 1);
	}
	if (from)
		madvise((void *)from, to - from, MADV_DONTNEED);
}

static void cold_push(nu__mem *m, const nu__pending *e, unsigned n)
{
	nu__region *r = &m->regions[nu__slot_region(m, e->index)];
	pthread_mutex_lock(&r->lock);
	for (unsigned i = 0; i < n; i++)
		r->cold[r->ncold + i] = e[i].index;
	__atomic_store_n(&r->ncold, r->ncold + n, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&r->lock);
}

void nu__slot_flush(nu__mem *m, nu__slot_cache *c)
{
	qsort(c->pend, c->npend, sizeof(*c->pend), pend_cmp);
	for (unsigned i = 0; i < c->npend;) {
		const nu__pending *e = &c->pend[i];
		unsigned j = i + 1;
		while (j < c->npend && c->pend[j].index == e->index + (j - i) &&
		       c->pend[j].index / m->per_region ==
			       e->index / m->per_region)
			j++;
		release_run(m, e, j - i);
		cold_push(m, e, j - i);
		i = j;
	}
	__atomic_store_n(&c->npend, 0, __ATOMIC_RELAXED);
}
