/* mem.h — private to nuproc: per-node reservations and process slots.
 * See mem.c for the design and the slot layout. */
#ifndef NU_MEM_H
#define NU_MEM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "nuproc.h"

struct nu__proc;

/* Offsets inside the shared page P of a slot (see mem.c). */
#define NU__P_STACK_TOP 2048u /* stack grows down from P + this */
#define NU__P_CB_MAX 832u     /* control block at P + NU__P_STACK_TOP */
#define NU__P_HEAP (NU__P_STACK_TOP + NU__P_CB_MAX)
#define NU__MIN_STACK (16u << 10)
/* Heap pages after P inside the slot (the near window). With the default
 * 256 KiB stack a slot is 320 KiB, so ~6 slots share a page-table page. */
#define NU__NEAR_PAGES 14u

/* One NUMA node's reservations: the slots, and the far heap windows. */
typedef struct nu__region {
	char *base;
	size_t len;
	char *far;                /* far heap windows, one per slot */
	size_t far_len;
	int node_id;
	uint32_t first;           /* global index of its first slot */
	uint32_t nslots;
	_Atomic uint32_t carved;  /* slots handed out at least once */
	pthread_mutex_t lock;     /* guards cold[] and depot[] */
	uint32_t *cold;           /* free slots whose pages went back */
	uint32_t ncold;
	uint32_t *depot;          /* warm free slots shared by the node's */
	uint32_t ndepot;          /* schedulers, moved in batches */
	uint32_t depot_cap;
	uint32_t depot_low;       /* ndepot's low-water mark (nu__slot_decay) */
	_Atomic uint64_t pages;   /* resident through the fault path */
} nu__region;

/* A scheduler's private slot caches. */
/* A free slot whose pages go back whole (it goes cold). */
typedef struct nu__pending {
	uint32_t index;
	uintptr_t far_to;         /* release [far window, far_to) (0 = none) */
} nu__pending;

/* A free slot that keeps the pages its last process populated (mem.c,
 * "Kept slots"): at most NU__KEPT_PAGES of them, NU__KEPT_CAP slots per
 * scheduler (5 MiB) while it works; none once it has been idle. */
#define NU__KEPT_PAGES 80u
#define NU__KEPT_CAP 16u
typedef struct nu__kept {
	uint32_t index;
	uint32_t heap_pages;      /* of them, heap pages (the budget's) */
	uintptr_t far_to;         /* as nu__pending's */
} nu__kept;

typedef struct nu__slot_cache {
	uint32_t *warm;           /* LIFO of free resident slots */
	unsigned nwarm, warm_cap;
	nu__kept kept[NU__KEPT_CAP]; /* LIFO of kept slots (userfaultfd) */
	unsigned nkept;
	unsigned warm_low, kept_low; /* low-water marks (nu__slot_decay) */
	nu__pending *pend;        /* free slots waiting for release */
	unsigned npend, pend_cap;
	int group;                /* region this cache takes from first */
} nu__slot_cache;

typedef struct nu__mem {
	size_t page;
	size_t stack_size;        /* stack pages below P */
	size_t near_size;         /* heap pages above P, inside the slot */
	size_t far_size;          /* the far heap window of each slot */
	size_t slot_size;
	uint32_t nslots;          /* all regions */
	uint32_t per_region;
	_Atomic uint32_t *gen;    /* the process table: generation per slot */
	size_t gen_len;
	nu__region *regions;
	unsigned nregions;
	int guards;               /* MADV_GUARD_INSTALL works */
	int uffd;                 /* userfaultfd (fault.c), -1: fallback */
	unsigned batch;           /* pages a fault populates at most */
	uint32_t heap_max_pages;  /* the node's default heap limit, 0 = none */
	_Atomic uint32_t *resident; /* per slot: pages populated (fault.c) */
	size_t resident_len;
} nu__mem;

/* Reserve the regions (one per node id) and the process table. */
int nu__mem_init(nu__mem *m, const nu_config *cfg, const int *node_ids,
		 const unsigned *nsched_of, unsigned nnodes, int numa_fallback);
void nu__mem_fini(nu__mem *m);

int nu__slot_cache_init(nu__slot_cache *c, unsigned warm_cap, int group);
void nu__slot_cache_fini(nu__slot_cache *c);

/* A free slot for a process, preferring region `group`: its index, or
 * -EAGAIN when every region is exhausted. A kept slot comes first when
 * its heap pages fit heap_max (pages, 0 = no limit); *heap_pages gets
 * them (the process starts its budget there), else 0. */
int64_t nu__slot_get(nu__mem *m, nu__slot_cache *c, int group,
		     uint32_t heap_max, uint32_t *heap_pages);

/* Give back the slot of a dead process. sp_low, heap_top and far_top tell
 * how far it used its stack, near and far heap windows; heap_pages is its
 * heap budget's count. Never makes a system call. */
void nu__slot_put(nu__mem *m, nu__slot_cache *c, uint32_t index,
		  uintptr_t sp_low, uintptr_t heap_top, uintptr_t far_top,
		  uint32_t heap_pages);

/* Release the pending slots' pages (batched madvise). */
void nu__slot_flush(nu__mem *m, nu__slot_cache *c);

/* Warm slots a scheduler keeps (in its LIFO and in its depot) while it
 * sleeps. */
#define NU__WARM_IDLE_KEEP 128u

/* Release the kept slots and the warm slots beyond keep, the cache's and
 * then its depot's, whole (they go cold): called by a scheduler about to
 * sleep. */
void nu__slot_trim(nu__mem *m, nu__slot_cache *c, unsigned keep);

/* Release what c's LIFOs (and, when `depot`, its region's depot) did not
 * use since the last period: the slots below their low-water marks,
 * beyond keep warm ones in the LIFO and in the depot (all kept ones), the
 * coldest first, at most max (and one pending list's worth) per call;
 * then, once none is left, start the next period's marks. Nonzero when some
 * are left for the next call. Called by a scheduler that stays busy
 * (sched.c, "Decay"), so that a burst's warm set goes back even when the
 * scheduler never sleeps long enough to trim; the depot's mark is one
 * scheduler's (its group's first), so that its period is whole. */
int nu__slot_decay(nu__mem *m, nu__slot_cache *c, unsigned keep, int depot,
		   unsigned max);

/* Slots pending before the scheduler loop flushes them (an idle
 * scheduler flushes fewer after TRIM_IDLE_NS, sched.c). */
#define NU__PEND_BATCH 64u

/* Nonzero when enough slots are pending to make a flush worthwhile. */
static inline int nu__slot_flush_due(const nu__slot_cache *c)
{
	return c->npend >= NU__PEND_BATCH || c->npend == c->pend_cap;
}

/* The region holding slot index. Most machines have one NUMA node, and
 * a division is ~25 cycles on the send path (every send finds its
 * receiver's control block here), so one region skips it. */
static inline uint32_t nu__slot_region(const nu__mem *m, uint32_t index)
{
	return m->nregions == 1 ? 0 : index / m->per_region;
}

static inline char *nu__slot_base(const nu__mem *m, uint32_t index)
{
	const nu__region *r = &m->regions[nu__slot_region(m, index)];
	return r->base + (size_t)(index - r->first) * m->slot_size;
}
/* The shared page P of a slot. */
static inline char *nu__slot_page(const nu__mem *m, uint32_t index)
{
	return nu__slot_base(m, index) + m->page + m->stack_size;
}
static inline struct nu__proc *nu__slot_proc(const nu__mem *m, uint32_t index)
{
	return (struct nu__proc *)(nu__slot_page(m, index) + NU__P_STACK_TOP);
}
/* The near heap window: the rest of P and the pages after it. */
static inline size_t nu__slot_heap_size(const nu__mem *m)
{
	return m->page - NU__P_HEAP + m->near_size;
}
/* The far heap window of a slot. */
static inline char *nu__slot_far(const nu__mem *m, uint32_t index)
{
	const nu__region *r = &m->regions[nu__slot_region(m, index)];
	return r->far + (size_t)(index - r->first) * m->far_size;
}
/* Largest usable stack. */
static inline size_t nu__slot_stack_max(const nu__mem *m)
{
	return m->stack_size + NU__P_STACK_TOP;
}

/* bytes in pages, rounded up, saturated at UINT32_MAX. */
static inline uint32_t nu__mem_pages(const nu__mem *m, size_t bytes)
{
	uint64_t pages = ((uint64_t)bytes + m->page - 1) / m->page;
	return pages > UINT32_MAX ? UINT32_MAX : (uint32_t)pages;
}

/* Install / remove a guard page at addr (page aligned); 0 or -errno. */
int nu__mem_guard(nu__mem *m, void *addr, int install);

#endif
