/* test_heap.c — CUnit suite for the per-process heap allocator (heap.c).
 *
 * Every window comes from its own MAP_NORESERVE mapping with its end on a
 * page boundary. A single or near window starts 2560 (or 2816) bytes into
 * its first page, as in a real process slot (the first page is shared with
 * the control block); a far window starts on a page boundary.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "../runtime/heap.h" /* builds with -I. (meson) or -Iruntime */
#include "nutest.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef NU__HEAP_ASAN
#include <sanitizer/asan_interface.h>
#endif

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define BASE_OFF 2560
#define NEAR_OFF 2816			/* two-window tests: near base offset */
#define NEAR_LEN (15 * 4096)		/* near window: 58,624 bytes */

/* ------------------------------------------------------------- helpers */

typedef struct win {
	char *map;
	size_t len;
	char *base;
	size_t size;
} win;

/* Map len bytes (a page multiple) and give the window [map+off, map+len). */
static win win_open_at(size_t len, size_t off)
{
	win w = { 0 };
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CU_ASSERT_FATAL(m != MAP_FAILED);
	w.map = m;
	w.len = len;
	w.base = w.map + off;
	w.size = len - off;
	return w;
}

/* The window [map+2560, map+len) of a fresh mapping of len bytes. */
static win win_open(size_t len)
{
	return win_open_at(len, BASE_OFF);
}

/* The smallest request that is big for the test's near window: its block
 * (request + 16-byte header) is above a quarter of the window. */
static size_t n_quarter_plus(void)
{
	return ((NEAR_LEN - NEAR_OFF) / 4 + 16) & ~(size_t)15;
}

/* Take the near window n and the far window f as the heap h. */
static void init2(nu__heap *h, const win *n, const win *f)
{
	nu__heap_init2(h, n->base, n->size, f->base, f->size);
}

/* True when the block p (usable bytes u, header below it) lies in w. */
static bool in_win(const win *w, const void *p, size_t u)
{
	return w->len && (const char *)p - 16 >= w->base &&
	       (const char *)p + u <= w->base + w->size;
}

/* Unmap a window, first clearing any poison the allocator left on it. */
static void win_close(win *w)
{
#ifdef NU__HEAP_ASAN
	ASAN_UNPOISON_MEMORY_REGION(w->map, w->len);
#endif
	munmap(w->map, w->len);
}

/* xorshift64*: a small seeded generator, reproducible across runs. */
static uint64_t rnd_state;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 0x2545F4914F6CDD1DULL;
}

/* Word j of the fill pattern of block id. */
static inline uint64_t pat_word(uint64_t id, size_t j)
{
	return (id * 0x9E3779B97F4A7C15ULL) ^ ((j + 1) * 0xD6E8FEB86659FD93ULL);
}

/* Fill bytes [from, to) of p with block id's pattern. */
static void fill(uint8_t *p, size_t from, size_t to, uint64_t id)
{
	size_t i = from;

	for (; i < to && (i & 7); i++)
		p[i] = (uint8_t)(pat_word(id, i >> 3) >> (8 * (i & 7)));
	for (; i + 8 <= to; i += 8) {
		uint64_t w = pat_word(id, i >> 3);
		memcpy(p + i, &w, 8);
	}
	for (; i < to; i++)
		p[i] = (uint8_t)(pat_word(id, i >> 3) >> (8 * (i & 7)));
}

/* True when bytes [from, to) of p hold block id's pattern. */
static bool holds(const uint8_t *p, size_t from, size_t to, uint64_t id)
{
	size_t i = from;

	for (; i < to && (i & 7); i++)
		if (p[i] != (uint8_t)(pat_word(id, i >> 3) >> (8 * (i & 7))))
			return false;
	for (; i + 8 <= to; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		if (w != pat_word(id, i >> 3))
			return false;
	}
	for (; i < to; i++)
		if (p[i] != (uint8_t)(pat_word(id, i >> 3) >> (8 * (i & 7))))
			return false;
	return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ---------------------------------------------------------- basic tests */

/* Init writes only the struct: it must not fault on a PROT_NONE window. */
static void test_init_touches_nothing(void)
{
	win w = win_open(1 * MiB);
	nu__heap h;

	memset(&h, 0xA5, sizeof h);
	CU_ASSERT_EQUAL_FATAL(mprotect(w.map, w.len, PROT_NONE), 0);
	nu__heap_init(&h, w.base, w.size);
	CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
	CU_ASSERT_EQUAL(nu__heap_top(&h), (uintptr_t)w.base);
	CU_ASSERT_TRUE(nu__heap_owns(&h, w.base));
	CU_ASSERT_TRUE(nu__heap_owns(&h, w.base + w.size - 1));
	CU_ASSERT_FALSE(nu__heap_owns(&h, w.base + w.size));
	CU_ASSERT_FALSE(nu__heap_owns(&h, w.base - 1));
	CU_ASSERT_FALSE(nu__heap_owns(&h, NULL));
	CU_ASSERT_EQUAL_FATAL(mprotect(w.map, w.len, PROT_READ | PROT_WRITE), 0);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	void *p = nu__heap_alloc(&h, 10);
	CU_ASSERT_PTR_EQUAL(p, w.base + 16);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	win_close(&w);
}

/* Each small request gets the smallest class that holds it; every block
 * is 16-aligned; large requests waste less than 16 bytes. */
static void test_size_classes(void)
{
	static const size_t cls[] = {
		16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
		384, 448, 512, 640, 768, 896, 1024, 1280, 1536, 1792, 2048,
	};
	win w = win_open(4 * MiB);
	nu__heap h;
	size_t c = 0;

	nu__heap_init(&h, w.base, w.size);
	for (size_t n = 1; n <= 8192; n++) {
		uint8_t *p = nu__heap_alloc(&h, n);
		size_t u = nu__heap_usable_size(&h, p);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		CU_ASSERT_EQUAL((uintptr_t)p & 15, 0);
		if (n <= 2048) {
			if (n > cls[c])
				c++;
			CU_ASSERT_EQUAL(u, cls[c]);
		} else {
			CU_ASSERT(u >= n && u - n < 16);
		}
		CU_ASSERT_EQUAL(nu__heap_used(&h), u);
		nu__heap_free(&h, p);
		CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
	}
	CU_ASSERT_EQUAL(nu__heap_usable_size(&h, NULL), 0);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	win_close(&w);
}

/* n == 0, absurd sizes and calloc overflow give NULL and change nothing. */
static void test_zero_and_huge(void)
{
	win w = win_open(1 * MiB);
	nu__heap h;

	nu__heap_init(&h, w.base, w.size);
	CU_ASSERT_PTR_NULL(nu__heap_alloc(&h, 0));
	CU_ASSERT_PTR_NULL(nu__heap_alloc(&h, SIZE_MAX));
	CU_ASSERT_PTR_NULL(nu__heap_alloc(&h, SIZE_MAX / 2));
	CU_ASSERT_PTR_NULL(nu__heap_alloc(&h, SIZE_MAX - 15));
	CU_ASSERT_PTR_NULL(nu__heap_alloc(&h, NU__HEAP_MAX + 1));
	CU_ASSERT_PTR_NULL(nu__heap_alloc(&h, 2 * MiB)); /* > window */
	CU_ASSERT_PTR_NULL(nu__heap_calloc(&h, SIZE_MAX / 2, 3));
	CU_ASSERT_PTR_NULL(nu__heap_calloc(&h, (size_t)1 << 33, (size_t)1 << 33));
	CU_ASSERT_PTR_NULL(nu__heap_calloc(&h, 0, 100));
	CU_ASSERT_PTR_NULL(nu__heap_realloc(&h, NULL, 0));
	CU_ASSERT_PTR_NULL(nu__heap_realloc(&h, NULL, SIZE_MAX));
	nu__heap_free(&h, NULL);
	CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
	CU_ASSERT_EQUAL(nu__heap_top(&h), (uintptr_t)w.base);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	win_close(&w);
}

/* Repeated alloc/free of one size reuses the same block: top stays. */
static void test_lifo_reuse(void)
{
	static const size_t sizes[] = { 1, 64, 100, 2048, 2049, 5000, 300000 };
	win w = win_open(8 * MiB);
	nu__heap h;

	nu__heap_init(&h, w.base, w.size);
	void *keep = nu__heap_alloc(&h, 24); /* something below */
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		void *first = nu__heap_alloc(&h, sizes[k]);
		void *guard = nu__heap_alloc(&h, 16); /* not at the top */
		uintptr_t top = nu__heap_top(&h);
		nu__heap_free(&h, first);
		for (int i = 0; i < 10000; i++) {
			void *p = nu__heap_alloc(&h, sizes[k]);
			CU_ASSERT_PTR_EQUAL(p, first);
			nu__heap_free(&h, p);
		}
		CU_ASSERT_EQUAL(nu__heap_top(&h), top);
		nu__heap_free(&h, guard);
	}
	nu__heap_free(&h, keep);
	CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	win_close(&w);
}

/* Freeing the top large block gives its space back to the bump pointer,
 * with a free large block just below it. */
static void test_top_giveback(void)
{
	win w = win_open(16 * MiB);
	nu__heap h;

	nu__heap_init(&h, w.base, w.size);
	void *small = nu__heap_alloc(&h, 40);
	void *big = nu__heap_alloc(&h, 4 * MiB);
	uintptr_t top = nu__heap_top(&h);
	nu__heap_free(&h, big);
	for (int i = 0; i < 100; i++) {
		void *p = nu__heap_alloc(&h, 4 * MiB + (size_t)i * 4096 % 65536);
		CU_ASSERT_PTR_EQUAL(p, big);
		nu__heap_free(&h, p);
	}
	CU_ASSERT(nu__heap_top(&h) <= top + 65536);
	/* a free large block below the top one merges into the give-back */
	void *a = nu__heap_alloc(&h, 100000);
	void *b = nu__heap_alloc(&h, 200000);
	nu__heap_free(&h, a);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	nu__heap_free(&h, b);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	void *c = nu__heap_alloc(&h, 3000);
	CU_ASSERT_PTR_EQUAL(c, a);
	nu__heap_free(&h, c);
	nu__heap_free(&h, small);
	CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	win_close(&w);
}

/* Adjacent free large blocks merge whatever the order of the frees. */
static void test_coalesce(void)
{
	static const int orders[6][3] = {
		{ 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
		{ 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 },
	};
	win w = win_open(4 * MiB);
	nu__heap h;

	for (int o = 0; o < 6; o++) {
		void *blk[3];
		nu__heap_init(&h, w.base, w.size);
		for (int i = 0; i < 3; i++)
			blk[i] = nu__heap_alloc(&h, 10000);
		void *guard = nu__heap_alloc(&h, 16);
		uintptr_t top = nu__heap_top(&h);
		for (int i = 0; i < 3; i++) {
			nu__heap_free(&h, blk[orders[o][i]]);
			CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
		}
		void *p = nu__heap_alloc(&h, 30000);
		CU_ASSERT_PTR_EQUAL(p, blk[0]);
		CU_ASSERT_EQUAL(nu__heap_top(&h), top);
		nu__heap_free(&h, p);
		nu__heap_free(&h, guard);
		CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
		CU_ASSERT_EQUAL(nu__heap_top(&h), top);
		CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
	}
	win_close(&w);
}

/* realloc resizes in place: at the top, into a free block above, by
 * splitting a large block, and within a small class. */
static void test_realloc_in_place(void)
{
	win w = win_open(8 * MiB);
	nu__heap h;

	nu__heap_init(&h, w.base, w.size);
	void *low = nu__heap_alloc(&h, 50);
	/* growth pattern to 1 MiB at the top: never moves */
	uint8_t *p = nu__heap_alloc(&h, 16);
	uint8_t *p0 = p;
	size_t n = 16;
	fill(p, 0, n, 7);
	while (n < MiB) {
		size_t m = n + n / 2 + 1;
		p = nu__heap_realloc(&h, p, m);
		CU_ASSERT_PTR_EQUAL(p, p0);
		CU_ASSERT_TRUE(holds(p, 0, n, 7));
		fill(p, n, m, 7);
		n = m;
		CU_ASSERT_EQUAL(nu__heap_top(&h),
				(uintptr_t)p + nu__heap_usable_size(&h, p));
	}
	/* shrink at the top gives back to bump */
	p = nu__heap_realloc(&h, p, 5000);
	CU_ASSERT_PTR_EQUAL(p, p0);
	CU_ASSERT_TRUE(holds(p, 0, 5000, 7));
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	/* a small block keeps its place within its class */
	uint8_t *s = nu__heap_alloc(&h, 100);
	CU_ASSERT_PTR_EQUAL(nu__heap_realloc(&h, s, 112), s);
	CU_ASSERT_PTR_EQUAL(nu__heap_realloc(&h, s, 1), s);
	/* p is no longer at the top: shrink splits, grow takes the rest back */
	uintptr_t top = nu__heap_top(&h);
	p = nu__heap_realloc(&h, p, 2500);
	CU_ASSERT_PTR_EQUAL(p, p0);
	CU_ASSERT_TRUE(holds(p, 0, 2500, 7));
	CU_ASSERT(nu__heap_usable_size(&h, p) < 2600);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	fill(p, 2500, 2500, 7);
	p = nu__heap_realloc(&h, p, 4800);
	CU_ASSERT_PTR_EQUAL(p, p0);
	CU_ASSERT_TRUE(holds(p, 0, 2500, 7));
	CU_ASSERT_EQUAL(nu__heap_top(&h), top);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	/* realloc(p, 0) frees */
	CU_ASSERT_PTR_NULL(nu__heap_realloc(&h, p, 0));
	nu__heap_free(&h, s);
	nu__heap_free(&h, low);
	CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	win_close(&w);
}

/* A realloc that cannot be served returns NULL and leaves the block. */
static void test_realloc_failure(void)
{
	win w = win_open(64 * KiB);
	nu__heap h;

	nu__heap_init(&h, w.base, w.size);
	uint8_t *a = nu__heap_alloc(&h, 1000);
	uint8_t *b = nu__heap_alloc(&h, 20000);
	fill(a, 0, 1000, 1);
	fill(b, 0, 20000, 2);
	size_t ua = nu__heap_usable_size(&h, a), used = nu__heap_used(&h);
	CU_ASSERT_PTR_NULL(nu__heap_realloc(&h, a, 200000));
	CU_ASSERT_PTR_NULL(nu__heap_realloc(&h, a, SIZE_MAX));
	CU_ASSERT_PTR_NULL(nu__heap_realloc(&h, a, SIZE_MAX / 2));
	CU_ASSERT_PTR_NULL(nu__heap_realloc(&h, b, 64 * KiB));
	CU_ASSERT_EQUAL(nu__heap_usable_size(&h, a), ua);
	CU_ASSERT_EQUAL(nu__heap_used(&h), used);
	CU_ASSERT_TRUE(holds(a, 0, 1000, 1));
	CU_ASSERT_TRUE(holds(b, 0, 20000, 2));
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	win_close(&w);
}

/* Allocate until NULL in a small window; frees make room again, and once
 * everything is freed one block can take (almost) the whole window. */
static void test_exhaustion(void)
{
	static const size_t sizes[] = { 16, 100, 700, 3000, 20000 };
	win w = win_open(64 * KiB);
	nu__heap h;
	void *ptr[8192];

	nu__heap_init(&h, w.base, w.size);
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		size_t n = 0;
		while ((ptr[n] = nu__heap_alloc(&h, sizes[k])) != NULL)
			CU_ASSERT_FATAL(++n < 8192);
		CU_ASSERT(n > 0);
		CU_ASSERT(nu__heap_used(&h) <= w.size);
		CU_ASSERT(nu__heap_top(&h) <= (uintptr_t)w.base + w.size);
		CU_ASSERT_PTR_NULL(nu__heap_alloc(&h, sizes[k]));
		CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
		for (size_t i = 0; i < n; i += 2)
			nu__heap_free(&h, ptr[i]);
		for (size_t i = 0; i < n; i += 2)
			CU_ASSERT_PTR_NOT_NULL(ptr[i] = nu__heap_alloc(&h, sizes[k]));
		CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
		for (size_t i = 0; i < n; i++)
			nu__heap_free(&h, ptr[i]);
		CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
		/* the freed small blocks are merged back on demand */
		void *big = nu__heap_alloc(&h, w.size - 64);
		CU_ASSERT_PTR_EQUAL(big, w.base + 16);
		nu__heap_free(&h, big);
		CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	}
	win_close(&w);
}

/* With the bump pointer at the end, a small request takes a whole free
 * large block, or a free block of a bigger class, before failing. */
static void test_small_fallbacks(void)
{
	win w = win_open(64 * KiB);
	nu__heap h;
	void *ptr[4096];
	size_t n = 0;

	nu__heap_init(&h, w.base, w.size);
	void *big = nu__heap_alloc(&h, 2060);	/* smallest large block */
	void *mid = nu__heap_alloc(&h, 128);
	nu__heap_alloc(&h, 16);			/* keeps mid and big apart */
	while ((ptr[n] = nu__heap_alloc(&h, 16)) != NULL)
		CU_ASSERT_FATAL(++n < 4096);
	nu__heap_free(&h, big);
	nu__heap_free(&h, mid);
	void *p = nu__heap_alloc(&h, 64);	/* no 64s, bump full */
	CU_ASSERT_PTR_EQUAL(p, big);
	CU_ASSERT_EQUAL(nu__heap_usable_size(&h, p), 2064);
	void *q = nu__heap_alloc(&h, 40);	/* no 48s, no large block */
	CU_ASSERT_PTR_EQUAL(q, mid);
	CU_ASSERT_EQUAL(nu__heap_usable_size(&h, q), 128);
	CU_ASSERT_PTR_NULL(nu__heap_alloc(&h, 40));
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	nu__heap_free(&h, p);
	nu__heap_free(&h, q);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	win_close(&w);
}

/* A window above NU__HEAP_MAX is used up to its first NU__HEAP_MAX bytes. */
static void test_window_clamp(void)
{
	size_t len = NU__HEAP_MAX + 1 * MiB;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	nu__heap h;

	CU_ASSERT_FATAL(m != MAP_FAILED);
	nu__heap_init(&h, m + BASE_OFF, len - BASE_OFF);
	CU_ASSERT_TRUE(nu__heap_owns(&h, m + BASE_OFF + NU__HEAP_MAX - 1));
	CU_ASSERT_FALSE(nu__heap_owns(&h, m + BASE_OFF + NU__HEAP_MAX));
	void *p = nu__heap_alloc(&h, 100);
	CU_ASSERT_PTR_EQUAL(p, m + BASE_OFF + 16);
	nu__heap_free(&h, p);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
#ifdef NU__HEAP_ASAN
	ASAN_UNPOISON_MEMORY_REGION(m, 1 * MiB); /* all init and alloc poisoned */
#endif
	munmap(m, len);
}

/* calloc zeroes memory that earlier blocks dirtied, small and large. */
static void test_calloc_dirty(void)
{
	win w = win_open(8 * MiB);
	nu__heap h;
	void *ptr[200];

	nu__heap_init(&h, w.base, w.size);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 200; i++) {
			size_t n = 1 + (size_t)i * 97 % 3000;
			ptr[i] = nu__heap_alloc(&h, n);
			memset(ptr[i], 0xFF, nu__heap_usable_size(&h, ptr[i]));
		}
		void *big = nu__heap_alloc(&h, 3 * MiB);
		memset(big, 0xEE, 3 * MiB);
		for (int i = 0; i < 200; i++)
			nu__heap_free(&h, ptr[i]);
		nu__heap_free(&h, big);
		for (int i = 0; i < 200; i++) {
			size_t n = 1 + (size_t)i * 97 % 3000;
			ptr[i] = nu__heap_calloc(&h, n, 1);
			CU_ASSERT_TRUE(all_zero(ptr[i], n));
		}
		uint8_t *z = nu__heap_calloc(&h, 3, MiB);
		CU_ASSERT_PTR_NOT_NULL_FATAL(z);
		CU_ASSERT_TRUE(all_zero(z, 3 * MiB));
		nu__heap_free(&h, z);
		for (int i = 0; i < 200; i++)
			nu__heap_free(&h, ptr[i]);
	}
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	win_close(&w);
}

/* A second init on a used window is an empty heap starting at the base. */
static void test_reinit(void)
{
	win w = win_open(16 * MiB);
	nu__heap h;

	rnd_state = 0x1234567;
	for (int gen = 0; gen < 5; gen++) {
		nu__heap_init(&h, w.base, w.size);
		CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
		CU_ASSERT_EQUAL(nu__heap_top(&h), (uintptr_t)w.base);
		CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
		uint8_t *first = nu__heap_alloc(&h, 200);
		CU_ASSERT_PTR_EQUAL(first, w.base + 16);
		fill(first, 0, 200, 99);
		for (int i = 0; i < 20000; i++) {
			size_t n = rnd() % 8 ? 1 + rnd() % 500 : 1 + rnd() % 20000;
			uint8_t *p = nu__heap_alloc(&h, n);
			CU_ASSERT_PTR_NOT_NULL_FATAL(p);
			fill(p, 0, n, (uint64_t)i);
			if (rnd() % 3)
				nu__heap_free(&h, p);
		}
		CU_ASSERT_TRUE(holds(first, 0, 200, 99));
		CU_ASSERT(nu__heap_used(&h) > 0);
		CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
		/* the process exits without freeing; the next one gets the slot */
	}
	win_close(&w);
}

/* ---------------------------------------------------- two windows */

/* Open the test's near window (NEAR_LEN bytes, base NEAR_OFF into its
 * first page) and a far window of far_len bytes in a mapping of its own. */
static void open_two(win *n, win *f, size_t far_len)
{
	*n = win_open_at(NEAR_LEN, NEAR_OFF);
	*f = win_open_at(far_len, 0);
}

/* init2 writes only the struct: no fault with both windows PROT_NONE; the
 * tops start at the bases; owns() covers both windows and nothing else;
 * without a far window, far_top is 0 and the near window is all there is. */
static void test_two_init(void)
{
	win n, f;
	nu__heap h;

	open_two(&n, &f, 16 * MiB);
	memset(&h, 0xA5, sizeof h);
	CU_ASSERT_EQUAL_FATAL(mprotect(n.map, n.len, PROT_NONE), 0);
	CU_ASSERT_EQUAL_FATAL(mprotect(f.map, f.len, PROT_NONE), 0);
	init2(&h, &n, &f);
	CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
	CU_ASSERT_EQUAL(nu__heap_top(&h), (uintptr_t)n.base);
	CU_ASSERT_EQUAL(nu__heap_far_top(&h), (uintptr_t)f.base);
	CU_ASSERT_TRUE(nu__heap_owns(&h, n.base));
	CU_ASSERT_TRUE(nu__heap_owns(&h, n.base + n.size - 1));
	CU_ASSERT_FALSE(nu__heap_owns(&h, n.base + n.size));
	CU_ASSERT_FALSE(nu__heap_owns(&h, n.base - 1));
	CU_ASSERT_TRUE(nu__heap_owns(&h, f.base));
	CU_ASSERT_TRUE(nu__heap_owns(&h, f.base + f.size - 1));
	CU_ASSERT_FALSE(nu__heap_owns(&h, f.base + f.size));
	CU_ASSERT_FALSE(nu__heap_owns(&h, f.base - 1));
	CU_ASSERT_FALSE(nu__heap_owns(&h, NULL));
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	CU_ASSERT_EQUAL_FATAL(mprotect(n.map, n.len, PROT_READ | PROT_WRITE), 0);
	CU_ASSERT_PTR_EQUAL(nu__heap_alloc(&h, 10), n.base + 16);
	CU_ASSERT_EQUAL(nu__heap_far_top(&h), (uintptr_t)f.base);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	CU_ASSERT_EQUAL_FATAL(mprotect(f.map, f.len, PROT_READ | PROT_WRITE), 0);
	/* no far window: NULL, or a size with a NULL base */
	nu__heap_init2(&h, n.base, n.size, NULL, 16 * MiB);
	CU_ASSERT_EQUAL(nu__heap_far_top(&h), 0);
	CU_ASSERT_FALSE(nu__heap_owns(&h, f.base));
	CU_ASSERT_PTR_NULL(nu__heap_alloc(&h, n.size));
	CU_ASSERT_PTR_EQUAL(nu__heap_alloc(&h, n.size - 16), n.base + 16);
	CU_ASSERT_PTR_NULL(nu__heap_alloc(&h, 1));
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	win_close(&n);
	win_close(&f);
}

/* Small and mid-sized requests go to the near window; a request above a
 * quarter of it goes to the far window, and to the near one when the far
 * one is full. Freeing the far blocks gives the far bump back. */
static void test_two_placement(void)
{
	size_t big = n_quarter_plus();
	win n, f;
	nu__heap h;

	open_two(&n, &f, 32 * KiB);
	init2(&h, &n, &f);
	uint8_t *a = nu__heap_alloc(&h, 100);
	uint8_t *b = nu__heap_alloc(&h, 5000);
	uint8_t *c = nu__heap_alloc(&h, big - 32);	/* not big yet */
	CU_ASSERT_TRUE(in_win(&n, a, 100) && in_win(&n, b, 5000));
	CU_ASSERT_TRUE(in_win(&n, c, big - 32));
	nu__heap_free(&h, c);
	uint8_t *d = nu__heap_alloc(&h, big);		/* big */
	CU_ASSERT_PTR_EQUAL(d, f.base + 16);
	uint8_t *e = nu__heap_alloc(&h, 40000);		/* big, far full */
	CU_ASSERT_TRUE(in_win(&n, e, 40000));
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	uintptr_t ftop = nu__heap_far_top(&h);
	nu__heap_free(&h, d);
	CU_ASSERT_PTR_EQUAL(nu__heap_alloc(&h, big), d);	/* at the bump */
	CU_ASSERT_EQUAL(nu__heap_far_top(&h), ftop);
	nu__heap_free(&h, d);
	nu__heap_free(&h, e);
	nu__heap_free(&h, b);
	nu__heap_free(&h, a);
	CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	win_close(&n);
	win_close(&f);
}

/* Allocate until NULL with both windows: blocks land in both, NULL comes
 * only when both are full, frees make room again, and once everything is
 * freed each window takes one block of (almost) its whole size. */
static void test_two_exhaustion(void)
{
	static const size_t sizes[] = { 16, 100, 700, 3000, 20000 };
	static void *ptr[16384];
	win n, f;
	nu__heap h;

	open_two(&n, &f, 256 * KiB);
	init2(&h, &n, &f);
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		size_t cnt = 0, in[2] = { 0, 0 };
		while ((ptr[cnt] = nu__heap_alloc(&h, sizes[k])) != NULL) {
			in[in_win(&f, ptr[cnt], sizes[k])]++;
			CU_ASSERT_FATAL(++cnt < 16384);
		}
		CU_ASSERT(in[0] > 0 && in[1] > 0);
		CU_ASSERT(nu__heap_used(&h) <= n.size + f.size);
		CU_ASSERT(nu__heap_top(&h) <= (uintptr_t)n.base + n.size);
		CU_ASSERT(nu__heap_far_top(&h) <= (uintptr_t)f.base + f.size);
		CU_ASSERT_PTR_NULL(nu__heap_alloc(&h, sizes[k]));
		CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
		for (size_t i = 0; i < cnt; i += 2)
			nu__heap_free(&h, ptr[i]);
		for (size_t i = 0; i < cnt; i += 2)
			CU_ASSERT_PTR_NOT_NULL(ptr[i] = nu__heap_alloc(&h, sizes[k]));
		CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
		for (size_t i = 0; i < cnt; i++)
			nu__heap_free(&h, ptr[i]);
		CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
		void *fb = nu__heap_alloc(&h, f.size - 16);
		void *nb = nu__heap_alloc(&h, n.size - 16);
		CU_ASSERT_PTR_EQUAL(fb, f.base + 16);
		CU_ASSERT_PTR_EQUAL(nb, n.base + 16);
		CU_ASSERT_PTR_NULL(nu__heap_alloc(&h, 1));
		nu__heap_free(&h, fb);
		nu__heap_free(&h, nb);
		CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	}
	win_close(&n);
	win_close(&f);
}

/* realloc moves blocks between windows and keeps their contents: a block
 * growing at the near top moves to the far window once, when it gets big,
 * then grows there in place; a near block not at the top grown past the
 * near window moves to the far one; a far block that cannot grow in place
 * while the far window is full moves to the near one. */
static void test_two_realloc_moves(void)
{
	win n, f;
	nu__heap h;
	int moves = 0;

	open_two(&n, &f, 8 * MiB);
	init2(&h, &n, &f);
	void *low = nu__heap_alloc(&h, 24);
	uint8_t *p = nu__heap_alloc(&h, 16);
	size_t sz = 16;
	fill(p, 0, sz, 5);
	while (sz < 4 * MiB) {
		size_t m = sz + sz / 2 + 1;
		uint8_t *q = nu__heap_realloc(&h, p, m);
		CU_ASSERT_PTR_NOT_NULL_FATAL(q);
		CU_ASSERT_TRUE(holds(q, 0, sz, 5));
		moves += q != p;
		if (q != p)
			CU_ASSERT_TRUE(in_win(&n, p, 16) && in_win(&f, q, m));
		fill(q, sz, m, 5);
		p = q;
		sz = m;
	}
	CU_ASSERT_EQUAL(moves, 1);
	CU_ASSERT_PTR_EQUAL(p, f.base + 16);
	CU_ASSERT(nu__heap_top(&h) <= (uintptr_t)n.base + n.size / 4 + 4096);
	/* a near block boxed in by another, grown past the near window */
	uint8_t *a = nu__heap_alloc(&h, 1000);
	void *box = nu__heap_alloc(&h, 16);
	fill(a, 0, 1000, 6);
	CU_ASSERT_TRUE(in_win(&n, a, 1000));
	uint8_t *a2 = nu__heap_realloc(&h, a, 100 * KiB);
	CU_ASSERT_TRUE(in_win(&f, a2, 100 * KiB));
	CU_ASSERT_TRUE(holds(a2, 0, 1000, 6));
	CU_ASSERT_TRUE(holds(p, 0, sz, 5));
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	nu__heap_free(&h, a2);
	nu__heap_free(&h, p);
	nu__heap_free(&h, box);
	nu__heap_free(&h, low);
	CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
	/* far to near: fill the far window, then grow a boxed far block */
	uint8_t *b = nu__heap_alloc(&h, 20 * KiB);	/* big: far */
	uint8_t *rest = nu__heap_alloc(&h, f.size - 20 * KiB - 96);
	CU_ASSERT_TRUE(in_win(&f, b, 20 * KiB) && in_win(&f, rest, 16));
	fill(b, 0, 20 * KiB, 7);
	uint8_t *b2 = nu__heap_realloc(&h, b, 40 * KiB);
	CU_ASSERT_TRUE(in_win(&n, b2, 40 * KiB));
	CU_ASSERT_TRUE(holds(b2, 0, 20 * KiB, 7));
	nu__heap_free(&h, rest);
	nu__heap_free(&h, b2);
	CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
	CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	win_close(&n);
	win_close(&f);
}

/* A second init2 after heavy use of both windows is an empty heap: top at
 * the near base, far_top at the far base, the first block at the near
 * base. */
static void test_two_reinit(void)
{
	win n, f;
	nu__heap h;

	open_two(&n, &f, 64 * MiB);
	rnd_state = 0x7654321;
	for (int gen = 0; gen < 4; gen++) {
		init2(&h, &n, &f);
		CU_ASSERT_EQUAL(nu__heap_used(&h), 0);
		CU_ASSERT_EQUAL(nu__heap_top(&h), (uintptr_t)n.base);
		CU_ASSERT_EQUAL(nu__heap_far_top(&h), (uintptr_t)f.base);
		CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
		uint8_t *first = nu__heap_alloc(&h, 200);
		CU_ASSERT_PTR_EQUAL(first, n.base + 16);
		fill(first, 0, 200, 99);
		for (int i = 0; i < 20000; i++) {
			size_t sz = rnd() % 8 ? 1 + rnd() % 500 : 1 + rnd() % 100000;
			uint8_t *p = nu__heap_alloc(&h, sz);
			CU_ASSERT_PTR_NOT_NULL_FATAL(p);
			fill(p, 0, sz, (uint64_t)i);
			if (rnd() % 3)
				nu__heap_free(&h, p);
		}
		CU_ASSERT_TRUE(holds(first, 0, 200, 99));
		CU_ASSERT(nu__heap_top(&h) > (uintptr_t)n.base + n.size / 2);
		CU_ASSERT(nu__heap_far_top(&h) > (uintptr_t)f.base + MiB);
		CU_ASSERT_EQUAL(nu__heap_check(&h), 0);
	}
	win_close(&n);
	win_close(&f);
}

/* In debug builds a double free aborts instead of corrupting the heap. */
static void test_double_free_aborts(void)
{
#ifdef NDEBUG
	return;
#else
	win w = win_open(1 * MiB);
	nu__heap h;
	pid_t pid;
	int st = 0;

	nu__heap_init(&h, w.base, w.size);
	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		close(2); /* keep the expected report out of the test log */
		void *p = nu__heap_alloc(&h, 64);
		nu__heap_free(&h, p);
		nu__heap_free(&h, p);
		_exit(0);
	}
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	CU_ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	win_close(&w);
#endif
}

/* ------------------------------------------------- AddressSanitizer */

#ifdef NU__HEAP_ASAN
/* Run fn(h) in a child on a fresh heap — one 4 MiB window, or with two
 * set the test's near window and a 16 MiB far one; true when the child
 * died (ASan reports and exits non-zero) rather than returning. */
static bool dies_in(void (*fn)(nu__heap *), bool two)
{
	win w = two ? win_open_at(NEAR_LEN, NEAR_OFF) : win_open(4 * MiB);
	win f = two ? win_open_at(16 * MiB, 0) : (win){ 0 };
	nu__heap h;
	pid_t pid;
	int st = 0;

	init2(&h, &w, &f);
	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		close(2); /* keep the expected reports out of the test log */
		fn(&h);
		_exit(0);
	}
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	win_close(&w);
	if (two)
		win_close(&f);
	return !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}
static bool dies(void (*fn)(nu__heap *)) { return dies_in(fn, false); }
static bool dies2(void (*fn)(nu__heap *)) { return dies_in(fn, true); }

static void in_bounds(nu__heap *h)
{
	uint8_t *p = nu__heap_alloc(h, 100);
	memset(p, 1, nu__heap_usable_size(h, p));
	nu__heap_free(h, p);
	nu__heap_init(h, (void *)h->win[0].base, h->win[0].end - h->win[0].base);
	/* ^ the next process */
	p = nu__heap_alloc(h, 100000);
	memset(p, 1, 100000);
}
static void into_next_header(nu__heap *h)
{
	uint8_t *p = nu__heap_alloc(h, 64);
	nu__heap_alloc(h, 64);
	((volatile uint8_t *)p)[64] = 1;
}
static void above_top(nu__heap *h)
{
	uint8_t *p = nu__heap_alloc(h, 100);
	((volatile uint8_t *)p)[nu__heap_usable_size(h, p) + 40] = 1;
}
static void above_big_top(nu__heap *h)
{
	uint8_t *p = nu__heap_alloc(h, 1 * MiB);
	((volatile uint8_t *)p)[nu__heap_usable_size(h, p) + 100] = 1;
}
static void after_free_small(nu__heap *h)
{
	uint8_t *p = nu__heap_alloc(h, 64);
	nu__heap_alloc(h, 16);
	nu__heap_free(h, p);
	((volatile uint8_t *)p)[8] = 1;
}
static void after_free_large(nu__heap *h)
{
	uint8_t *p = nu__heap_alloc(h, 100000);
	nu__heap_alloc(h, 16);
	nu__heap_free(h, p);
	((volatile uint8_t *)p)[50000] = 1;
}
static void after_give_back(nu__heap *h)
{
	uint8_t *p = nu__heap_alloc(h, 100000);
	nu__heap_free(h, p);
	((volatile uint8_t *)p)[10] = 1;
}
static void after_shrink(nu__heap *h)
{
	uint8_t *p = nu__heap_alloc(h, 100000);
	nu__heap_alloc(h, 16);
	p = nu__heap_realloc(h, p, 5000);
	((volatile uint8_t *)p)[6000] = 1;
}
/* Two windows (dies2): the far window is poisoned from its first use. */
static void in_bounds_two(nu__heap *h)
{
	nu__heap_win n = h->win[0], f = h->win[1];
	uint8_t *p = nu__heap_alloc(h, 100), *q = nu__heap_alloc(h, 1 * MiB);
	memset(p, 1, nu__heap_usable_size(h, p));
	memset(q, 1, nu__heap_usable_size(h, q));
	nu__heap_init2(h, (void *)n.base, n.end - n.base, (void *)f.base,
		       f.end - f.base); /* the next process */
	q = nu__heap_alloc(h, 2 * MiB);
	memset(q, 1, 2 * MiB);
	p = nu__heap_realloc(h, nu__heap_alloc(h, 1000), 50000);
	memset(p, 1, 50000);
}
static void above_far_top(nu__heap *h)
{
	uint8_t *p = nu__heap_alloc(h, 1 * MiB);
	((volatile uint8_t *)p)[nu__heap_usable_size(h, p) + 100] = 1;
}
static void into_far_header(nu__heap *h)
{
	uint8_t *p = nu__heap_alloc(h, 20000);
	nu__heap_alloc(h, 20000);
	((volatile uint8_t *)p)[nu__heap_usable_size(h, p) + 4] = 1;
}
static void after_free_far(nu__heap *h)
{
	uint8_t *p = nu__heap_alloc(h, 100000);
	nu__heap_alloc(h, 100000);
	nu__heap_free(h, p);
	((volatile uint8_t *)p)[50000] = 1;
}
static void after_move_to_far(nu__heap *h)
{
	uint8_t *p = nu__heap_alloc(h, 1000);
	nu__heap_alloc(h, 16);
	nu__heap_realloc(h, p, 100000);
	((volatile uint8_t *)p)[10] = 1;
}
#endif

/* ASan builds: stray accesses around blocks are caught, in-bounds ones
 * (also on a re-initialised window) are not; in the far window too. */
static void test_asan_poisoning(void)
{
#ifdef NU__HEAP_ASAN
	CU_ASSERT_FALSE(dies(in_bounds));
	CU_ASSERT_TRUE(dies(into_next_header));
	CU_ASSERT_TRUE(dies(above_top));
	CU_ASSERT_TRUE(dies(above_big_top));
	CU_ASSERT_TRUE(dies(after_free_small));
	CU_ASSERT_TRUE(dies(after_free_large));
	CU_ASSERT_TRUE(dies(after_give_back));
	CU_ASSERT_TRUE(dies(after_shrink));
	CU_ASSERT_FALSE(dies2(in_bounds_two));
	CU_ASSERT_TRUE(dies2(above_far_top));
	CU_ASSERT_TRUE(dies2(into_far_header));
	CU_ASSERT_TRUE(dies2(after_free_far));
	CU_ASSERT_TRUE(dies2(after_move_to_far));
#endif
}

/* ------------------------------------------------------ the random test */

/*
 * A model checks the heap against a shadow table of live blocks, each
 * filled with a pattern derived from its id. After every operation: the
 * block touched is checked whole, every other live block at both ends
 * (where a header write or a misplaced copy from a neighbour would land),
 * the new block against every live block for overlap, alignment and the
 * window, and used() against the sum of usable sizes. Every 4096
 * operations and at the end: every live block whole, and nu__heap_check().
 */

#define NSLOT 1024

typedef struct live {
	uint8_t *p;
	size_t n;	/* requested bytes, all holding id's pattern */
	uint64_t id;
} live;

typedef struct model {
	nu__heap h;
	win w;		/* the window, or the near one */
	win f;		/* the far window (len 0: none) */
	live slot[NSLOT];
	size_t usable;	/* sum of usable sizes of live blocks */
	size_t cap;	/* when non-zero: no allocation while usable >= cap */
	size_t nfail;	/* allocations that returned NULL */
	size_t moves[2]; /* reallocs that moved a block out of near, far */
	long bad;	/* failed checks */
	long op;
	size_t max;	/* largest request */
	size_t peak;	/* highest sum of usable sizes */
} model;

#define EXPECT(m, c)							\
	do {								\
		if (!(c) && (m)->bad++ < 5)				\
			fprintf(stderr, "\n  op %ld: %s:%d: %s\n", (m)->op, \
				__FILE__, __LINE__, #c);		\
	} while (0)

/* A request size: mostly small, sometimes large, rarely up to m->max; only
 * small ones (mostly up to 128 bytes) when m->max is a small size. */
static size_t rand_size(const model *m)
{
	uint64_t r = rnd() % 1000;

	if (m->max <= NU__HEAP_SMALL_MAX)
		return r < 700 ? 1 + rnd() % 128 : 129 + rnd() % (m->max - 128);
	if (r < 700)
		return 1 + rnd() % 128;
	if (r < 900)
		return 129 + rnd() % 1920;
	if (r < 985)
		return 2049 + rnd() % (m->max / 16);
	return 2049 + rnd() % m->max;
}

/* 0 when block p (usable bytes u) lies in the near (or only) window, 1
 * when in the far window, -1 when in neither. */
static int where(const model *m, const void *p, size_t u)
{
	return in_win(&m->w, p, u) ? 0 : in_win(&m->f, p, u) ? 1 : -1;
}

/* Check a block just handed out for slot k: alignment, window, size, and
 * no overlap with any other live block. */
static void check_new(model *m, size_t k, uint8_t *p, size_t n)
{
	size_t u = nu__heap_usable_size(&m->h, p);
	int wi = where(m, p, u);

	EXPECT(m, ((uintptr_t)p & 15) == 0);
	EXPECT(m, nu__heap_owns(&m->h, p));
	EXPECT(m, wi >= 0);
	EXPECT(m, (uintptr_t)(p + u) <= (wi == 1 ? nu__heap_far_top(&m->h)
						  : nu__heap_top(&m->h)));
	EXPECT(m, u >= n);
	for (size_t i = 0; i < NSLOT; i++) {
		live *o = &m->slot[i];
		if (i == k || !o->p)
			continue;
		size_t ou = nu__heap_usable_size(&m->h, o->p);
		EXPECT(m, p + u <= o->p - 16 || o->p + ou <= p - 16);
	}
}

/* Allocate into the empty slot k, by alloc or calloc. */
static void op_alloc(model *m, size_t k)
{
	size_t n = rand_size(m), used = nu__heap_used(&m->h);
	bool zero = rnd() % 4 == 0;
	uint8_t *p;

	if (zero) {
		size_t a = 1 + rnd() % 8;
		n = (n + a - 1) / a;
		p = nu__heap_calloc(&m->h, n, a);
		n *= a;
	} else {
		p = nu__heap_alloc(&m->h, n);
	}
	if (!p) {
		m->nfail++;
		EXPECT(m, nu__heap_used(&m->h) == used);
		return;
	}
	check_new(m, k, p, n);
	if (zero)
		EXPECT(m, all_zero(p, n));
	m->slot[k] = (live){ p, n, (uint64_t)m->op };
	m->usable += nu__heap_usable_size(&m->h, p);
	if (m->usable > m->peak)
		m->peak = m->usable;
	fill(p, 0, n, m->slot[k].id);
}

/* Free the live slot k (by free, or by realloc to 0 when by_realloc),
 * checking its contents first. */
static void op_free(model *m, size_t k, bool by_realloc)
{
	live *s = &m->slot[k];

	EXPECT(m, holds(s->p, 0, s->n, s->id));
	m->usable -= nu__heap_usable_size(&m->h, s->p);
	if (by_realloc)
		EXPECT(m, nu__heap_realloc(&m->h, s->p, 0) == NULL);
	else
		nu__heap_free(&m->h, s->p);
	s->p = NULL;
}

/* Free or realloc the live slot k, checking its contents first. */
static void op_change(model *m, size_t k)
{
	live *s = &m->slot[k];
	size_t u = nu__heap_usable_size(&m->h, s->p), n;
	uint64_t r = rnd() % 10;
	int w0 = where(m, s->p, u);
	uint8_t *q;

	if (r < 5) {
		op_free(m, k, r == 4);
		return;
	}
	EXPECT(m, holds(s->p, 0, s->n, s->id));
	n = r < 7 ? rand_size(m) : r < 9 ? s->n + s->n / 2 + 1 : s->n / 2 + 1;
	if (n > m->max)
		n = m->max;
	q = nu__heap_realloc(&m->h, s->p, n);
	if (!q) {
		m->nfail++;
		EXPECT(m, nu__heap_usable_size(&m->h, s->p) == u);
		return;
	}
	check_new(m, k, q, n);
	EXPECT(m, holds(q, 0, n < s->n ? n : s->n, s->id));
	if (n > s->n)
		fill(q, s->n, n, s->id);
	m->usable += nu__heap_usable_size(&m->h, q) - u;
	if (m->usable > m->peak)
		m->peak = m->usable;
	if (w0 >= 0 && where(m, q, nu__heap_usable_size(&m->h, q)) != w0)
		m->moves[w0]++;
	s->p = q;
	s->n = n;
}

/* Every live block intact: its first and last 16 bytes, or all of it when
 * full is set; used() right; with full, the heap's own invariants. */
static void check_all(model *m, bool full)
{
	for (size_t i = 0; i < NSLOT; i++) {
		live *s = &m->slot[i];
		if (!s->p)
			continue;
		if (full || s->n <= 32) {
			EXPECT(m, holds(s->p, 0, s->n, s->id));
		} else {
			EXPECT(m, holds(s->p, 0, 16, s->id));
			EXPECT(m, holds(s->p, s->n - 16, s->n, s->id));
		}
	}
	EXPECT(m, nu__heap_used(&m->h) == m->usable);
	if (full)
		EXPECT(m, nu__heap_check(&m->h) == 0);
}

/* A model over a window of len bytes (base off bytes into its first page)
 * and, when far_len is not 0, a far window of far_len bytes in a mapping
 * of its own; requests up to max. */
static model *model_new(size_t len, size_t off, size_t far_len, size_t max,
			uint64_t seed)
{
	model *m = calloc(1, sizeof *m);

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	rnd_state = seed;
	m->w = win_open_at(len, off);
	if (far_len)
		m->f = win_open_at(far_len, 0);
	m->max = max;
	init2(&m->h, &m->w, &m->f);
	return m;
}

/* Run ops random operations (continuing the count of earlier runs). */
static void model_run(model *m, long ops)
{
	for (ops += m->op; m->op < ops && !m->bad; m->op++) {
		size_t k = rnd() % NSLOT;
		if (m->cap && m->usable >= m->cap) {
			if (m->slot[k].p)
				op_free(m, k, false);
		} else if (m->slot[k].p) {
			op_change(m, k);
		} else {
			op_alloc(m, k);
		}
		check_all(m, m->op % 4096 == 0);
	}
	check_all(m, true);
	CU_ASSERT_EQUAL(m->bad, 0);
}

/* Print the figures of a model run, check everything once more, free every
 * block and check the heap is empty, with its windows usable whole again;
 * then drop the model. */
static void model_end(model *m)
{
	check_all(m, true);
	fprintf(stderr, " [%zu NULLs; peak live %zu KiB, top %zu KiB", m->nfail,
		m->peak >> 10,
		(size_t)(nu__heap_top(&m->h) - (uintptr_t)m->w.base) >> 10);
	if (m->f.len)
		fprintf(stderr, ", far top %zu KiB, moves %zu out of near, "
			"%zu out of far", (size_t)(nu__heap_far_top(&m->h) -
			(uintptr_t)m->f.base) >> 10, m->moves[0], m->moves[1]);
	fprintf(stderr, "] ");
	for (size_t i = 0; i < NSLOT; i++)
		nu__heap_free(&m->h, m->slot[i].p);
	CU_ASSERT_EQUAL(nu__heap_used(&m->h), 0);
	CU_ASSERT_EQUAL(nu__heap_check(&m->h), 0);
	if (m->f.len)
		CU_ASSERT_PTR_EQUAL(nu__heap_alloc(&m->h, m->f.size - 64),
				    m->f.base + 16);
	CU_ASSERT_PTR_EQUAL(nu__heap_alloc(&m->h, m->w.size - 64),
			    m->w.base + 16);
	CU_ASSERT_EQUAL(nu__heap_check(&m->h), 0);
	win_close(&m->w);
	if (m->f.len)
		win_close(&m->f);
	free(m);
}

/* Run ops random operations in a window of len bytes, requests up to max;
 * returns the number of failed allocations. */
static size_t run_model(size_t len, size_t max, long ops, uint64_t seed)
{
	model *m = model_new(len, BASE_OFF, 0, max, seed);
	size_t nfail;

	model_run(m, ops);
	nfail = m->nfail;
	model_end(m);
	return nfail;
}

/* 250,000 operations in a 64 MiB window: nothing may fail. */
static void test_random_roomy(void)
{
	CU_ASSERT_EQUAL(run_model(64 * MiB, 1 * MiB, 250000, 0x9E3779B97F4A7C15ULL),
			0);
}

/* 200,000 operations in a 1 MiB window: many fail, all cleanly. */
static void test_random_cramped(void)
{
	CU_ASSERT(run_model(1 * MiB, 64 * KiB, 200000, 42) > 0);
}

/*
 * Two windows: near ~57 KiB, 2816 bytes into a page, and far 64 MiB in a
 * mapping of its own. First 200,000 operations of small requests (up to
 * 2 KiB) whose live data stays under NEAR_CAP (plus one request), while
 * the far window is PROT_NONE: a touch would fault, and far_top must stay
 * at the far base. Then 200,000 operations of the roomy mix (up to 1 MiB)
 * on the same heap: nothing may fail, and blocks spill into the far window
 * and move both ways.
 */
#define NEAR_CAP (24 * KiB)	/* 28 KiB passed 40 seeds of 40 (ad hoc) */
static void test_random_two_windows(void)
{
	model *m = model_new(NEAR_LEN, NEAR_OFF, 64 * MiB, NU__HEAP_SMALL_MAX,
			     0xC0FFEE);

	m->cap = NEAR_CAP;
	CU_ASSERT_EQUAL_FATAL(mprotect(m->f.map, m->f.len, PROT_NONE), 0);
	model_run(m, 200000);
	CU_ASSERT_EQUAL(m->nfail, 0);
	CU_ASSERT_EQUAL(nu__heap_far_top(&m->h), (uintptr_t)m->f.base);
	fprintf(stderr, " [small phase: peak live %zu KiB, near top %zu KiB]",
		m->peak >> 10,
		(size_t)(nu__heap_top(&m->h) - (uintptr_t)m->w.base) >> 10);
	CU_ASSERT_EQUAL_FATAL(mprotect(m->f.map, m->f.len,
				       PROT_READ | PROT_WRITE), 0);
	m->cap = 0;
	m->max = 1 * MiB;
	model_run(m, 200000);
	CU_ASSERT_EQUAL(m->nfail, 0);
	CU_ASSERT(nu__heap_far_top(&m->h) > (uintptr_t)m->f.base);
	CU_ASSERT(m->moves[0] > 0 && m->moves[1] > 0);
	model_end(m);
}

static CU_TestInfo tests[] = {
	{ "init touches nothing", test_init_touches_nothing },
	{ "size classes", test_size_classes },
	{ "zero and huge requests", test_zero_and_huge },
	{ "LIFO reuse keeps top", test_lifo_reuse },
	{ "top block gives back", test_top_giveback },
	{ "large blocks coalesce", test_coalesce },
	{ "realloc in place", test_realloc_in_place },
	{ "realloc failure keeps block", test_realloc_failure },
	{ "exhaustion and recovery", test_exhaustion },
	{ "small fallbacks at exhaustion", test_small_fallbacks },
	{ "window clamped to NU__HEAP_MAX", test_window_clamp },
	{ "calloc over dirty memory", test_calloc_dirty },
	{ "re-init is an empty heap", test_reinit },
	{ "two windows: init touches nothing", test_two_init },
	{ "two windows: placement", test_two_placement },
	{ "two windows: exhaustion and recovery", test_two_exhaustion },
	{ "two windows: realloc moves", test_two_realloc_moves },
	{ "two windows: re-init is an empty heap", test_two_reinit },
	{ "double free aborts (debug)", test_double_free_aborts },
	{ "ASan poisoning (ASan builds)", test_asan_poisoning },
	{ "random ops, roomy window", test_random_roomy },
	{ "random ops, cramped window", test_random_cramped },
	{ "random ops, near and far windows", test_random_two_windows },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("heap", tests)
