/* pool.h — private to nuproc: the record pool, pages of small fixed-size
 * records (relation records, signal messages) owned by one thread each and
 * freed from any thread (see pool.c).
 */
#ifndef NU_POOL_H
#define NU_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Records are multiples of 16 bytes up to NU__POOL_MAX, each from a page of
 * its own size. */
#define NU__POOL_MAX 128
#define NU__POOL_CLASSES (NU__POOL_MAX / 16)
#define NU__POOL_PAGE ((size_t)64 << 10)

struct nu__pool_cache;

typedef struct nu__pool_page {
	/* records freed by other threads (a LIFO; the owner takes it whole),
	 * or POOL_RETIRED (pool.c) */
	void *_Atomic remote;
	struct nu__pool_cache *owner; /* fixed while any record is out */
	/* --- owner only --- */
	void *free;                   /* records freed by the owner */
	uint32_t bump;                /* offset of the first never-used one */
	uint32_t used;                /* records out, as the owner knows */
	uint16_t size;                /* bytes per record */
	uint8_t cls;                  /* size / 16 - 1 */
	uint8_t retired;              /* the owner stopped looking at it */
	uint8_t release;              /* free, on its way to the OS */
	uint16_t group;               /* the NUMA group whose memory it holds */
	struct nu__pool_page *next;   /* owner's partial list; pool's lists */
	/* the owner's reclaim stack (pushed by the freer that un-retires) */
	struct nu__pool_page *_Atomic rnext;
} nu__pool_page;

/* The free pages of one NUMA group still resident: its node's memory. */
typedef struct nu__pool_warm {
	nu__pool_page *head;
	size_t n;
} nu__pool_warm;

/* One per node: a reservation carved into pages. */
typedef struct nu__pool {
	char *base;                   /* NULL: no reservation (malloc only) */
	size_t npages;
	nu__pool_page *pages;         /* one header per page, its own mapping */
	unsigned ngroups;
	pthread_mutex_t lock;         /* the fields below */
	nu__pool_warm *warm;          /* per group: pages given back, resident */
	nu__pool_page *cold;          /* pages given back to the OS too */
	size_t top;                   /* pages never used start here */
	_Atomic size_t out;           /* pages held by caches */
	pthread_mutex_t releasing;    /* one release to the OS at a time */
} nu__pool;

/* One per owning thread (each scheduler). */
typedef struct nu__pool_cache {
	nu__pool *pool;
	nu__pool_page *cur[NU__POOL_CLASSES];     /* allocating from */
	nu__pool_page *partial[NU__POOL_CLASSES]; /* with free records */
	int dirty;              /* a page may have emptied since last trim */
	uint32_t taken;         /* never-used pages it took */
	unsigned group;         /* its thread's NUMA group */
	nu__pool_page *_Atomic reclaim;           /* un-retired by others */
} nu__pool_cache;

/* Reserve `bytes` (rounded to pages) of address space for pl, whose
 * caches belong to ngroups NUMA groups (>= 1). 0, or -ENOMEM when the
 * reservation is refused (then every allocation returns NULL and callers
 * fall back to malloc). */
int nu__pool_init(nu__pool *pl, size_t bytes, unsigned ngroups);

/* Unmap pl: every record is gone with it. */
void nu__pool_fini(nu__pool *pl);

/* c: a cache for a thread of NUMA group `group` (< pl's ngroups). */
void nu__pool_cache_init(nu__pool_cache *c, nu__pool *pl, unsigned group);

/* A record of size bytes (1..NU__POOL_MAX, rounded up to 16, 16-byte
 * aligned) owned by c's thread, which must be the caller; NULL when the
 * pool is exhausted or was never reserved. */
void *nu__pool_alloc(nu__pool_cache *c, size_t size);

/* Give back record p of pl from any thread; self: the caller's cache, or
 * NULL for a thread that has none. */
void nu__pool_free(nu__pool *pl, nu__pool_cache *self, void *p);

/* p lies in pl's reservation. */
static inline int nu__pool_owns(const nu__pool *pl, const void *p)
{
	return (const char *)p >= pl->base &&
	       (const char *)p < pl->base + pl->npages * NU__POOL_PAGE;
}

/* The owner c, idle: pages whose records all came back go to the pool,
 * and the pool returns to the OS all its free pages beyond keep. */
void nu__pool_trim(nu__pool_cache *c, size_t keep);

/* The owner c, busy (sched.c, "Decay"): the same, but for the pages it
 * allocates from now, which it is likely to fill again, and with at
 * most max pages to the OS per call: 1 when more are left beyond keep. */
int nu__pool_decay(nu__pool_cache *c, size_t keep, size_t max);

/* c's owner has pages to look at in nu__pool_trim: it took a page, or a
 * page of its emptied or came back, since the last trim. (A page emptied
 * by other threads' frees while its owner still allocated from it is
 * found at the next trim.) */
static inline int nu__pool_trimmable(nu__pool_cache *c)
{
	return c->dirty ||
	       atomic_load_explicit(&c->reclaim, memory_order_relaxed);
}

/* Bytes of pages the pool has out to caches or keeps resident. */
size_t nu__pool_bytes(nu__pool *pl);

/* Records out in pl: exact only when no thread allocates or frees
 * meanwhile (tests). */
size_t nu__pool_live(nu__pool *pl);

#endif
