/* test_pool.c — CUnit suite for the record pool (runtime/pool.c): records
 * are distinct, aligned and keep their contents; bad sizes are refused; a
 * small pool runs out and recovers; records freed by other threads come
 * back to their owner (retired pages included) with none lost; trimming
 * gives empty pages back and the OS gets them; a given-back page serves
 * another size; fresh pages after a cache's first come resident whole;
 * a given-back page stays with the NUMA group whose memory it holds. */
#include "../runtime/pool.h" /* builds with -I. (meson) or -Iruntime */
#include "nutest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE NU__POOL_PAGE

static nu__pool pl;
static nu__pool_cache me;

static void setup(size_t pages)
{
	CU_ASSERT_EQUAL_FATAL(nu__pool_init(&pl, pages * PAGE, 2), 0);
	nu__pool_cache_init(&me, &pl, 0);
}

/* Fill record r of size n with a pattern of its own. */
static void stamp(unsigned char *r, size_t n, unsigned k)
{
	for (size_t i = 0; i < n; i++)
		r[i] = (unsigned char)(k * 31 + i);
}

static int stamped(const unsigned char *r, size_t n, unsigned k)
{
	for (size_t i = 0; i < n; i++)
		if (r[i] != (unsigned char)(k * 31 + i))
			return 0;
	return 1;
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

/* Records of every size: aligned, inside the pool, not overlapping, and
 * their contents survive other records' allocations and frees. */
static void test_distinct(void)
{
	enum { N = 20000 };
	setup(256);
	static unsigned char *r[N];
	static size_t sz[N];
	for (unsigned i = 0; i < N; i++) {
		sz[i] = 1 + (i * 7919u) % NU__POOL_MAX;
		r[i] = nu__pool_alloc(&me, sz[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(r[i]);
		CU_ASSERT_EQUAL((uintptr_t)r[i] % 16, 0);
		CU_ASSERT_TRUE(nu__pool_owns(&pl, r[i]));
		stamp(r[i], sz[i], i);
		if (i % 3 == 2) { /* free one in three: reused below */
			nu__pool_free(&pl, &me, r[i - 1]);
			r[i - 1] = nu__pool_alloc(&me, sz[i - 1]);
			stamp(r[i - 1], sz[i - 1], i - 1);
		}
	}
	int ok = 1;
	for (unsigned i = 0; i < N; i++)
		ok &= stamped(r[i], sz[i], i);
	CU_ASSERT_TRUE(ok);
	/* sorted, each record ends before the next begins */
	static uintptr_t s[N];
	for (unsigned i = 0; i < N; i++)
		s[i] = (uintptr_t)r[i];
	qsort(s, N, sizeof(*s), cmp_ptr);
	int disjoint = 1;
	for (unsigned i = 0; i + 1 < N; i++)
		disjoint &= s[i] + 16 <= s[i + 1];
	CU_ASSERT_TRUE(disjoint);
	CU_ASSERT_EQUAL(nu__pool_live(&pl), N);
	for (unsigned i = 0; i < N; i++)
		nu__pool_free(&pl, &me, r[i]);
	CU_ASSERT_EQUAL(nu__pool_live(&pl), 0);
	nu__pool_fini(&pl);
}

static void test_bad_size(void)
{
	setup(4);
	CU_ASSERT_PTR_NULL(nu__pool_alloc(&me, 0));
	CU_ASSERT_PTR_NULL(nu__pool_alloc(&me, NU__POOL_MAX + 1));
	CU_ASSERT_PTR_NULL(nu__pool_alloc(&me, SIZE_MAX));
	CU_ASSERT_EQUAL(nu__pool_live(&pl), 0);
	CU_ASSERT_FALSE(nu__pool_owns(&pl, &pl));
	nu__pool_fini(&pl);
}

/* Two pages of 128-byte records: exactly 1024 fit; then NULL, and after
 * one free one more. */
static void test_exhaust(void)
{
	setup(2);
	size_t per = PAGE / 128, n = 0;
	void *r[2 * PAGE / 128 + 1];
	while (n < 2 * per + 1 && (r[n] = nu__pool_alloc(&me, 128)))
		n++;
	CU_ASSERT_EQUAL(n, 2 * per);
	CU_ASSERT_PTR_NULL(nu__pool_alloc(&me, 64)); /* no page for a size */
	nu__pool_free(&pl, &me, r[5]);
	void *again = nu__pool_alloc(&me, 128);
	CU_ASSERT_PTR_EQUAL(again, r[5]);
	for (size_t i = 0; i < n; i++)
		nu__pool_free(&pl, &me, r[i]);
	CU_ASSERT_EQUAL(nu__pool_live(&pl), 0);
	nu__pool_fini(&pl);
}

/* An owner allocates; another thread frees everything it is handed. The
 * owner's pages fill and retire, and come back through the reclaim stack:
 * with far more records made than fit, the pool never runs out. */
enum { XN = 400000, XPAGES = 8, QCAP = 1 << 12 };
static void *_Atomic q[QCAP];
static _Atomic unsigned long q_head, q_tail;
static _Atomic int x_done;
static _Atomic long freed_remote, torn;

static void *freer(void *a)
{
	(void)a;
	for (;;) {
		unsigned long t = atomic_load(&q_tail);
		if (t == atomic_load(&q_head)) {
			if (atomic_load(&x_done) && t == atomic_load(&q_head))
				return NULL;
			continue;
		}
		void *r = atomic_load(&q[t % QCAP]);
		if (!stamped(r, 48, (unsigned)(uintptr_t)r))
			atomic_fetch_add(&torn, 1);
		atomic_store(&q_tail, t + 1);
		nu__pool_free(&pl, NULL, r);
		atomic_fetch_add(&freed_remote, 1);
	}
}

static void test_remote(void)
{
	setup(XPAGES);
	pthread_t th;
	atomic_store(&x_done, 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, freer, NULL), 0);
	long made = 0, waits = 0;
	while (made < XN && waits < 100000000) {
		while (atomic_load(&q_head) - atomic_load(&q_tail) >= QCAP)
			;
		void *r = nu__pool_alloc(&me, 48);
		if (!r) { /* none back yet: a bounded wait, not a hang */
			waits++;
			continue;
		}
		stamp(r, 48, (unsigned)(uintptr_t)r);
		unsigned long h = atomic_load(&q_head);
		atomic_store(&q[h % QCAP], r);
		atomic_store(&q_head, h + 1);
		made++;
	}
	atomic_store(&x_done, 1);
	pthread_join(th, NULL);
	CU_ASSERT_EQUAL(atomic_load(&freed_remote), made);
	CU_ASSERT_EQUAL(atomic_load(&torn), 0);
	CU_ASSERT_EQUAL(nu__pool_live(&pl), 0);
	/* 8 pages hold 10,920 records of 48 bytes: all XN were made only if
	 * the records freed remotely came back (through `remote` and the
	 * reclaim stack), or the wait above gave up */
	CU_ASSERT_EQUAL(made, XN);
	nu__pool_trim(&me, 0);
	CU_ASSERT_EQUAL(nu__pool_bytes(&pl), 0);
	nu__pool_fini(&pl);
}

/* Freed pages go back at a trim, beyond `keep` to the OS (their memory
 * reads zero again), and serve another size next. */
static void test_trim(void)
{
	setup(64);
	enum { N = 64 * 1024 / 64 * 10 }; /* ten pages of 64-byte records */
	static void *r[N];
	for (int i = 0; i < N; i++) {
		r[i] = nu__pool_alloc(&me, 64);
		CU_ASSERT_PTR_NOT_NULL_FATAL(r[i]);
		memset(r[i], 0xab, 64);
	}
	CU_ASSERT_EQUAL(nu__pool_bytes(&pl), 10 * PAGE);
	nu__pool_trim(&me, 0); /* nothing is free: nothing goes */
	CU_ASSERT_EQUAL(nu__pool_bytes(&pl), 10 * PAGE);
	for (int i = 0; i < N; i++)
		nu__pool_free(&pl, &me, r[i]);
	nu__pool_trim(&me, 2);
	CU_ASSERT_EQUAL(nu__pool_bytes(&pl), 2 * PAGE);
	nu__pool_trim(&me, 0);
	CU_ASSERT_EQUAL(nu__pool_bytes(&pl), 0);
	/* the same pages, now for 112-byte records, zeroed by the OS */
	unsigned char *x = nu__pool_alloc(&me, 112);
	CU_ASSERT_PTR_NOT_NULL_FATAL(x);
	CU_ASSERT_TRUE(nu__pool_owns(&pl, x));
	CU_ASSERT_TRUE((size_t)(x - (unsigned char *)r[0]) < 10 * PAGE ||
		       (size_t)((unsigned char *)r[0] - x) < 10 * PAGE);
	int zero = 1;
	for (int i = 8; i < 112; i++)
		zero &= x[i] == 0;
	CU_ASSERT_TRUE(zero);
	CU_ASSERT_EQUAL(nu__pool_bytes(&pl), PAGE);
	nu__pool_free(&pl, &me, x);
	nu__pool_fini(&pl);
}

/* A local free into a retired page brings it back: the owner keeps
 * allocating from its two pages forever while freeing what it made. */
static void test_local_retired(void)
{
	setup(2);
	size_t per = PAGE / 128;
	void *r[2 * PAGE / 128];
	for (size_t i = 0; i < 2 * per; i++)
		CU_ASSERT_PTR_NOT_NULL_FATAL(r[i] = nu__pool_alloc(&me, 128));
	for (int round = 0; round < 1000; round++) {
		size_t k = (size_t)(round * 37) % (2 * per);
		nu__pool_free(&pl, &me, r[k]);
		r[k] = nu__pool_alloc(&me, 128);
		CU_ASSERT_PTR_NOT_NULL_FATAL(r[k]);
	}
	CU_ASSERT_EQUAL(nu__pool_live(&pl), 2 * per);
	for (size_t i = 0; i < 2 * per; i++)
		nu__pool_free(&pl, &me, r[i]);
	CU_ASSERT_EQUAL(nu__pool_live(&pl), 0);
	nu__pool_fini(&pl);
}

/* Resident 4 KiB pages of the pool page holding p. */
static int resident(const void *p)
{
	uintptr_t b = (uintptr_t)p & ~(uintptr_t)(PAGE - 1);
	long ps = sysconf(_SC_PAGESIZE);
	unsigned char v[PAGE / 4096];
	if (ps != 4096 || mincore((void *)b, PAGE, v))
		return -1;
	int n = 0;
	for (size_t i = 0; i < PAGE / 4096; i++)
		n += v[i] & 1;
	return n;
}

/* A cache's first page faults in as records are made; its next fresh
 * pages come resident whole, in one call. */
static void test_populate(void)
{
	setup(8);
	size_t per = PAGE / 128;
	static void *r[2 * PAGE / 128 + 1];
	r[0] = nu__pool_alloc(&me, 128);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r[0]);
	*(char *)r[0] = 1;
	int first = resident(r[0]);
	if (first < 0) { /* not 4 KiB pages: nothing to check */
		nu__pool_free(&pl, &me, r[0]);
		nu__pool_fini(&pl);
		return;
	}
	CU_ASSERT_EQUAL(first, 1);
	for (size_t i = 1; i <= per; i++)
		CU_ASSERT_PTR_NOT_NULL_FATAL(r[i] = nu__pool_alloc(&me, 128));
	/* r[per] opened the second page */
	CU_ASSERT_NOT_EQUAL((uintptr_t)r[per] / PAGE, (uintptr_t)r[0] / PAGE);
	CU_ASSERT_EQUAL(resident(r[per]), (int)(PAGE / 4096));
	for (size_t i = 0; i <= per; i++)
		nu__pool_free(&pl, &me, r[i]);
	nu__pool_fini(&pl);
}

/* The pool page holding record r. */
static size_t page_no(const void *r)
{
	return (size_t)((const char *)r - pl.base) / PAGE;
}

/* A page given back goes to the NUMA group whose memory it holds: another
 * group takes it only when no page is left whose memory is still to come
 * (never used, or given to the OS); a page given to the OS goes to
 * whoever takes it next. */
static void test_groups(void)
{
	setup(3);
	nu__pool_cache other;
	nu__pool_cache_init(&other, &pl, 1);
	void *a = nu__pool_alloc(&me, 64);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	nu__pool_free(&pl, &me, a);
	nu__pool_trim(&me, 8); /* back, resident: group 0's */
	void *b = nu__pool_alloc(&other, 64);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_NOT_EQUAL(page_no(b), page_no(a)); /* a never-used one */
	void *c = nu__pool_alloc(&me, 64);
	CU_ASSERT_EQUAL(page_no(c), page_no(a)); /* its own again */
	nu__pool_free(&pl, &me, c);
	nu__pool_trim(&me, 8);
	void *d = nu__pool_alloc(&other, 128); /* the last never-used page */
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT_NOT_EQUAL(page_no(d), page_no(a));
	void *e = nu__pool_alloc(&other, 32); /* nothing else: group 0's */
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL(page_no(e), page_no(a));
	CU_ASSERT_PTR_NULL(nu__pool_alloc(&me, 16)); /* none left at all */
	nu__pool_free(&pl, &other, b);
	nu__pool_free(&pl, &other, d);
	nu__pool_free(&pl, &other, e);
	nu__pool_trim(&other, 0); /* all three to the OS */
	CU_ASSERT_EQUAL(nu__pool_bytes(&pl), 0);
	void *f = nu__pool_alloc(&me, 48); /* a page given to the OS */
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	nu__pool_free(&pl, &me, f);
	nu__pool_trim(&me, 8); /* now group 0's: another group's page... */
	void *g = nu__pool_alloc(&other, 48); /* ...is not what 1 takes */
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_NOT_EQUAL(page_no(g), page_no(f));
	nu__pool_free(&pl, &other, g);
	CU_ASSERT_EQUAL(nu__pool_live(&pl), 0);
	nu__pool_fini(&pl);
}

static CU_TestInfo tests[] = {
	{ "records are distinct, aligned, and keep their contents",
	  test_distinct },
	{ "sizes 0 and above the largest are refused", test_bad_size },
	{ "a full pool says so and recovers after a free", test_exhaust },
	{ "records freed by another thread come back to the owner",
	  test_remote },
	{ "trim gives empty pages back, then to the OS", test_trim },
	{ "a local free brings a retired page back", test_local_retired },
	{ "a cache's first page faults in, its next come whole",
	  test_populate },
	{ "a page goes back to the NUMA group whose memory it holds",
	  test_groups },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("pool", tests)
