/* pool.c — the record pool: small runtime records in pages owned by one
 * thread each, freed from any thread.
 *
 * Why. Relation records, made and freed at spawn rate, and the DOWNs
 * that pile up by the million until their watcher takes them came from
 * malloc. A scheduler thread's malloc arena grows by mprotect in small
 * steps, and its frees cost ~100 instructions each: spawn_monitor_all (a
 * million monitored processes, then their DOWNs) spent ~50 ns of its
 * ~310 ns per process there (records bump-allocated from one reservation
 * instead took 259 ns, ad hoc).
 *
 * Entities
 *   pool     one per node: a MAP_NORESERVE reservation (one VMA, no system
 *            call to grow) carved into 64 KiB pages, a side table of page
 *            headers, and a list of pages given back, under a mutex taken
 *            once per page, never per record.
 *   page     records of one size (a multiple of 16 up to 128), owned by
 *            one cache while any of them is out. Its records are handed
 *            out from three sources: `free`, those the owner freed (owner
 *            only, no atomics); `bump`, never used (a cache's first page
 *            faults in as records are made, its next fresh ones are
 *            populated whole: page_get); `remote`, a LIFO of
 *            those other threads freed (Treiber push; the owner takes it
 *            whole by exchange, so no ABA).
 *   cache    per owning thread (each scheduler): the page it allocates
 *            from per size, a list of its pages with free records, and a
 *            reclaim stack of its retired pages that other threads freed
 *            into.
 *
 * Retiring (mimalloc's full-page protocol). A page with nothing left to
 * hand out is retired: the owner CASes `remote` from NULL to RETIRED and
 * forgets the page. A remote free that replaces RETIRED (the CAS returns
 * it) is the one that un-retires it: it pushes the page onto the owner's
 * reclaim stack, exactly once per retirement. A local free into a retired
 * page un-retires it with the reverse CAS (or finds that a remote free
 * already did). So the owner never scans full pages, and every page with
 * a free record is where the owner looks: current, partial, or reclaim.
 *
 * Memory orders. A remote free's CAS is a release (the record's last use
 * and its link happen before), the owner's exchange an acquire; the page
 * owner is written before the page's first record is handed out and read
 * by a freer that got the record through a synchronising path (a message
 * push), so it needs no atomics. The reclaim push is a release, its
 * exchange an acquire, for the page header's fields.
 *
 * Giving back. A page whose records are all back goes to the pool only
 * when its owner trims (idle: sched.c), or at its busy decay, once a
 * second (sched.c, "Decay": all but the pages it allocates from), so a
 * busy scheduler reuses its pages without a lock; the pool returns its
 * free pages beyond `keep` to the OS with MADV_DONTNEED, one call per run
 * of adjacent pages. A page is reused for any size.
 *
 * NUMA. A page's memory comes from the node of the thread that first
 * touches it (no mbind: it is populated by its first owner), so a page
 * given back keeps that node's memory: it goes on its group's free list
 * (pages remember their group), and a cache takes its own group's pages
 * first, then one given to the OS or never used (whose memory then comes
 * from its own node), and another group's only when none of those is
 * left. Each group keeps `keep` resident pages when the pool releases.
 *
 * Rejected: one free list per owner (as block.c's cache) — records of a
 * page would scatter across lists, so no page could ever be known empty
 * and given back; a size-class allocator for everything (messages keep
 * block.c's cache, whose get and put are a few instructions); DOWNs and
 * exit signals always from here, blocks or not (spawn_monitor_all 213.8
 * -> 210.9 ns, but spawn_wait_seq, one DOWN at a time, 194.7 -> 223.4).
 *
 * ASan: a free record is poisoned but for its link word, a never-used one
 * whole; an allocation unpoisons it.
 */
#include "pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define POOL_RETIRED ((void *)1)

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
/* 0 once the kernel refused MADV_POPULATE_WRITE: pages fault in. */
static _Atomic int populate_ok = 1;

static void *link_of(void *r) { return *(void **)r; }

static void link_set(void *r, void *next)
{
	*(void **)r = next;
}

int nu__pool_init(nu__pool *pl, size_t bytes, unsigned ngroups)
{
	memset(pl, 0, sizeof(*pl));
	pthread_mutex_init(&pl->lock, NULL);
	pthread_mutex_init(&pl->releasing, NULL);
	pl->ngroups = ngroups ? ngroups : 1;
	pl->warm = calloc(pl->ngroups, sizeof(*pl->warm));
	if (!pl->warm)
		return -ENOMEM;
	size_t np = (bytes + NU__POOL_PAGE - 1) / NU__POOL_PAGE;
	/* one page more, to align the base to a page */
	char *raw = mmap(NULL, (np + 1) * NU__POOL_PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	void *hdr = mmap(NULL, np * sizeof(nu__pool_page),
			 PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED || hdr == MAP_FAILED) {
		if (raw != MAP_FAILED)
			munmap(raw, (np + 1) * NU__POOL_PAGE);
		if (hdr != MAP_FAILED)
			munmap(hdr, np * sizeof(nu__pool_page));
		return -ENOMEM;
	}
	uintptr_t a = ((uintptr_t)raw + NU__POOL_PAGE - 1) &
		      ~(uintptr_t)(NU__POOL_PAGE - 1);
	size_t head = a - (uintptr_t)raw;
	if (head)
		munmap(raw, head);
	munmap((char *)a + np * NU__POOL_PAGE, NU__POOL_PAGE - head);
	madvise((void *)a, np * NU__POOL_PAGE, MADV_NOHUGEPAGE);
	pl->base = (char *)a;
	pl->npages = np;
	pl->pages = hdr;
	POISON(pl->base, np * NU__POOL_PAGE);
	return 0;
}

void nu__pool_fini(nu__pool *pl)
{
	if (pl->base) {
		UNPOISON(pl->base, pl->npages * NU__POOL_PAGE);
		munmap(pl->base, pl->npages * NU__POOL_PAGE);
		munmap(pl->pages, pl->npages * sizeof(nu__pool_page));
	}
	pthread_mutex_destroy(&pl->lock);
	pthread_mutex_destroy(&pl->releasing);
	free(pl->warm);
	pl->warm = NULL;
	pl->base = NULL;
	pl->npages = 0;
}

void nu__pool_cache_init(nu__pool_cache *c, nu__pool *pl, unsigned group)
{
	memset(c, 0, sizeof(*c));
	c->pool = pl;
	c->group = group < pl->ngroups ? group : 0;
}

static inline nu__pool_page *page_of(nu__pool *pl, const void *p)
{
	return &pl->pages[(size_t)((const char *)p - pl->base) /
			  NU__POOL_PAGE];
}

static inline char *page_base(nu__pool *pl, const nu__pool_page *pg)
{
	return pl->base + (size_t)(pg - pl->pages) * NU__POOL_PAGE;
}

/* Pop the head of a free list (the pool's lock held). */
static nu__pool_page *list_pop(nu__pool_page **head)
{
	nu__pool_page *pg = *head;
	if (pg)
		*head = pg->next;
	return pg;
}

/* list_pop for a group's list of resident pages, counted. */
static nu__pool_page *warm_pop(nu__pool_warm *w)
{
	nu__pool_page *pg = list_pop(&w->head);
	w->n -= pg != NULL;
	return pg;
}

/* A free page for group g, its own memory first (see "NUMA"); *fresh
 * set when its memory is to come (never used, or given to the OS). The
 * pool's lock held. */
static nu__pool_page *pick_page(nu__pool *pl, unsigned g, int *fresh)
{
	nu__pool_page *pg;
	if ((pg = warm_pop(&pl->warm[g])))
		return pg;
	*fresh = 1;
	if ((pg = list_pop(&pl->cold)))
		return pg;
	if (pl->top < pl->npages)
		return &pl->pages[pl->top++];
	*fresh = 0;
	for (unsigned k = 1; k < pl->ngroups && !pg; k++) /* the last resort */
		pg = warm_pop(&pl->warm[(g + k) % pl->ngroups]);
	return pg;
}

/* A page from the pool for c, records of cls; NULL when none is left.
 * A page whose memory is to come is populated in one call
 * (MADV_POPULATE_WRITE), but for a cache's first: 16 faults cost ~20%
 * more than one call for the same pages here, and spawn_monitor_all took
 * 239.6 -> 219.6 ns/proc; a scheduler that makes few records pays no
 * 64 KiB for them. */
static nu__pool_page *page_get(nu__pool_cache *c, unsigned cls)
{
	nu__pool *pl = c->pool;
	int fresh = 0;
	if (!pl->npages)
		return NULL; /* no reservation: malloc */
	pthread_mutex_lock(&pl->lock);
	nu__pool_page *pg = pick_page(pl, c->group, &fresh);
	if (pg)
		atomic_fetch_add_explicit(&pl->out, 1, memory_order_relaxed);
	pthread_mutex_unlock(&pl->lock);
	if (!pg)
		return NULL;
	if (fresh) /* its memory comes from this thread's node */
		pg->group = (uint16_t)c->group;
	if (fresh && c->taken++ && atomic_load_explicit(&populate_ok,
							memory_order_relaxed) &&
	    madvise(page_base(pl, pg), NU__POOL_PAGE, MADV_POPULATE_WRITE))
		atomic_store_explicit(&populate_ok, 0, memory_order_relaxed);
	c->dirty = 1;
	pg->owner = c;
	pg->free = NULL;
	pg->bump = 0;
	pg->used = 0;
	pg->size = (uint16_t)((cls + 1) * 16);
	pg->cls = (uint8_t)cls;
	pg->retired = 0;
	pg->next = NULL;
	atomic_store_explicit(&pg->rnext, NULL, memory_order_relaxed);
	atomic_store_explicit(&pg->remote, NULL, memory_order_relaxed);
	return pg;
}

/* Page pg, all of its records back, to the pool: to the free list of
 * the group whose memory it holds. */
static void page_put(nu__pool *pl, nu__pool_page *pg)
{
	pg->owner = NULL;
	nu__pool_warm *w = &pl->warm[pg->group];
	pthread_mutex_lock(&pl->lock);
	pg->next = w->head;
	w->head = pg;
	w->n++;
	atomic_fetch_sub_explicit(&pl->out, 1, memory_order_relaxed);
	pthread_mutex_unlock(&pl->lock);
}

/* Records freed by others into pg, moved to its own list (owner). */
static void take_remote(nu__pool_page *pg)
{
	void *r = atomic_load_explicit(&pg->remote, memory_order_relaxed);
	if (!r || r == POOL_RETIRED)
		return;
	r = atomic_exchange_explicit(&pg->remote, NULL, memory_order_acquire);
	uint32_t n = 1;
	void *last = r;
	for (void *x; (x = link_of(last)); last = x)
		n++;
	link_set(last, pg->free);
	pg->free = r;
	pg->used -= n;
}

/* Retire pg, which has nothing to hand out: 1, or 0 when a remote free
 * came first (then it has records again). */
static int retire(nu__pool_page *pg)
{
	void *exp = NULL;
	if (!atomic_compare_exchange_strong_explicit(
		    &pg->remote, &exp, POOL_RETIRED, memory_order_relaxed,
		    memory_order_relaxed))
		return 0;
	pg->retired = 1;
	return 1;
}

/* Pages others un-retired: onto their partial lists (owner). */
static void take_reclaim(nu__pool_cache *c)
{
	if (!atomic_load_explicit(&c->reclaim, memory_order_relaxed))
		return;
	nu__pool_page *pg = atomic_exchange_explicit(&c->reclaim, NULL,
						     memory_order_acquire);
	while (pg) {
		nu__pool_page *next = atomic_load_explicit(
			&pg->rnext, memory_order_relaxed);
		pg->retired = 0;
		take_remote(pg);
		pg->next = c->partial[pg->cls];
		c->partial[pg->cls] = pg;
		pg = next;
	}
}

/* A page of cls with a record to hand out for c (owner): a partial one,
 * a reclaimed one or a new one; NULL when the pool has none left. */
static nu__pool_page *page_next(nu__pool_cache *c, unsigned cls)
{
	nu__pool_page *pg;
	take_reclaim(c);
	if ((pg = c->partial[cls]))
		c->partial[cls] = pg->next;
	else
		pg = page_get(c, cls);
	c->cur[cls] = pg;
	return pg;
}

/* The current page had no record of its own: one never used, one freed
 * by another thread, or the next page's (the current one retires). */
static void *alloc_slow(nu__pool_cache *c, unsigned cls, nu__pool_page **pgp)
{
	nu__pool_page *pg = *pgp;
	for (;;) {
		if (!pg && !(pg = page_next(c, cls)))
			return NULL;
		*pgp = pg;
		void *r = pg->free;
		if (r) {
			pg->free = link_of(r);
			return r;
		}
		if (pg->bump + pg->size <= NU__POOL_PAGE) {
			r = page_base(c->pool, pg) + pg->bump;
			pg->bump += pg->size;
			return r;
		}
		take_remote(pg);
		if (!pg->free && retire(pg))
			pg = NULL;
	}
}

void *nu__pool_alloc(nu__pool_cache *c, size_t size)
{
	if (size == 0 || size > NU__POOL_MAX)
		return NULL;
	unsigned cls = (unsigned)((size + 15) / 16) - 1;
	nu__pool_page *pg = c->cur[cls];
	void *r;
	if (pg && (r = pg->free))
		pg->free = link_of(r);
	else if (!(r = alloc_slow(c, cls, &pg)))
		return NULL;
	pg->used++;
	UNPOISON(r, pg->size);
	return r;
}

void nu__pool_free(nu__pool *pl, nu__pool_cache *self, void *p)
{
	nu__pool_page *pg = page_of(pl, p);
	if (pg->owner == self) {
		link_set(p, pg->free);
		pg->free = p;
		if (!--pg->used)
			self->dirty = 1;
		POISON((char *)p + sizeof(void *), pg->size - sizeof(void *));
		void *exp = POOL_RETIRED;
		if (pg->retired &&
		    atomic_compare_exchange_strong_explicit(
			    &pg->remote, &exp, NULL, memory_order_relaxed,
			    memory_order_relaxed)) {
			pg->retired = 0;
			pg->next = self->partial[pg->cls];
			self->partial[pg->cls] = pg;
		}
		return;
	}
	uint16_t size = pg->size;
	nu__pool_cache *owner = pg->owner;
	POISON((char *)p + sizeof(void *), size - sizeof(void *));
	void *old = atomic_load_explicit(&pg->remote, memory_order_relaxed);
	do
		link_set(p, old == POOL_RETIRED ? NULL : old);
	while (!atomic_compare_exchange_weak_explicit(
		&pg->remote, &old, p, memory_order_release,
		memory_order_relaxed));
	if (old != POOL_RETIRED)
		return;
	/* this free un-retired pg: it goes back to its owner */
	nu__pool_page *top = atomic_load_explicit(&owner->reclaim,
						  memory_order_relaxed);
	do
		atomic_store_explicit(&pg->rnext, top, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(
		&owner->reclaim, &top, pg, memory_order_release,
		memory_order_relaxed));
}

/* Pages of c's list *at (cls) whose records are all back: to the pool. */
static void trim_list(nu__pool_cache *c, nu__pool_page **at)
{
	while (*at) {
		nu__pool_page *pg = *at;
		take_remote(pg);
		if (pg->used) {
			at = &pg->next;
			continue;
		}
		*at = pg->next;
		page_put(c->pool, pg);
	}
}

/* The pages of the detached list first (n of them, marked `release`)
 * back to the OS: one madvise per run of adjacent pages (a burst's pages
 * mostly are), with only `releasing` held. */
static void release_runs(nu__pool *pl, nu__pool_page *first, size_t n)
{
	size_t lo = SIZE_MAX, hi = 0;
	for (nu__pool_page *pg = first; pg; pg = pg->next) {
		size_t i = (size_t)(pg - pl->pages);
		lo = i < lo ? i : lo;
		hi = i > hi ? i : hi;
	}
	for (size_t i = lo; n && i <= hi; i++) {
		if (!pl->pages[i].release)
			continue;
		size_t j = i;
		while (j <= hi && pl->pages[j].release)
			pl->pages[j++].release = 0;
		char *b = pl->base + i * NU__POOL_PAGE;
		size_t len = (j - i) * NU__POOL_PAGE;
		UNPOISON(b, len);
		madvise(b, len, MADV_DONTNEED);
		POISON(b, len);
		n -= j - i;
		i = j;
	}
}

/* Take off warm list w its pages beyond keep, up to *max of them, onto
 * the chain *tail points at, marked `release`; returns how many. */
static size_t detach(nu__pool_warm *w, size_t keep, size_t *max,
		     nu__pool_page ***tail)
{
	nu__pool_page **at = &w->head;
	for (size_t i = 0; i < keep && *at; i++)
		at = &(*at)->next;
	size_t n = 0;
	while (*at && n < *max) {
		nu__pool_page *pg = *at;
		*at = pg->next;
		pg->release = 1;
		pg->next = NULL;
		**tail = pg;
		*tail = &pg->next;
		n++;
	}
	w->n -= n;
	*max -= n;
	return n;
}

/* Free pages beyond keep in each group back to the OS, max at most; 1
 * when more are left beyond keep. They are taken off their lists,
 * released with only `releasing` held, and put on the cold list. */
static int pool_release(nu__pool *pl, size_t keep, size_t max)
{
	pthread_mutex_lock(&pl->releasing); /* (the marks are its own) */
	pthread_mutex_lock(&pl->lock);
	nu__pool_page *first = NULL, **tail = &first;
	size_t n = 0;
	int more = 0;
	for (unsigned g = 0; g < pl->ngroups; g++) {
		n += detach(&pl->warm[g], keep, &max, &tail);
		more |= pl->warm[g].n > keep;
	}
	pthread_mutex_unlock(&pl->lock);
	if (n) {
		release_runs(pl, first, n);
		pthread_mutex_lock(&pl->lock);
		*tail = pl->cold;
		pl->cold = first;
		pthread_mutex_unlock(&pl->lock);
	}
	pthread_mutex_unlock(&pl->releasing);
	return more;
}

/* c's empty pages to the pool (its current ones too when `all`), then
 * the pool's free pages beyond keep to the OS, max at most: 1 when more
 * are left. */
static int trim_pages(nu__pool_cache *c, size_t keep, int all, size_t max)
{
	if (!c->pool->base)
		return 0;
	take_reclaim(c);
	for (unsigned k = 0; k < NU__POOL_CLASSES; k++) {
		trim_list(c, &c->partial[k]);
		nu__pool_page *pg = c->cur[k];
		if (pg && all) {
			take_remote(pg);
			if (!pg->used) {
				c->cur[k] = NULL;
				page_put(c->pool, pg);
			}
		}
	}
	return pool_release(c->pool, keep, max);
}

void nu__pool_trim(nu__pool_cache *c, size_t keep)
{
	c->dirty = 0;
	trim_pages(c, keep, 1, SIZE_MAX);
}

int nu__pool_decay(nu__pool_cache *c, size_t keep, size_t max)
{
	return trim_pages(c, keep, 0, max);
}

size_t nu__pool_bytes(nu__pool *pl)
{
	pthread_mutex_lock(&pl->lock);
	size_t n = atomic_load_explicit(&pl->out, memory_order_relaxed);
	for (unsigned g = 0; pl->warm && g < pl->ngroups; g++)
		n += pl->warm[g].n;
	pthread_mutex_unlock(&pl->lock);
	return n * NU__POOL_PAGE;
}

size_t nu__pool_live(nu__pool *pl)
{
	size_t live = 0;
	for (size_t i = 0; i < pl->top; i++) {
		nu__pool_page *pg = &pl->pages[i];
		if (!pg->owner)
			continue;
		live += pg->used;
		void *r = atomic_load(&pg->remote);
		for (; r && r != POOL_RETIRED; r = link_of(r))
			live--;
	}
	return live;
}
