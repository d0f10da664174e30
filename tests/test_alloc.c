/* test_alloc.c — the public per-process allocator: random sequences
 * against a shadow copy across yields and migrations, exhaustion, bad
 * input, and an empty heap for the next process in a slot. (runtime/heap.c
 * has its own exhaustive suite, test_heap.c.) */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"


static void cfg_small(nu_config *c, unsigned scheds, size_t heap)
{
	nt_config(c, scheds, 10000, heap);
}

#define SLOTS 256

struct block {
	unsigned char *p;
	size_t n;
	unsigned char fill;
};

static _Atomic long alloc_errors;

static int check_block(const struct block *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->p[i] != (unsigned char)(b->fill + i))
			return 0;
	return 1;
}

static void fill_block(struct block *b, unsigned char fill)
{
	b->fill = fill;
	for (size_t i = 0; i < b->n; i++)
		b->p[i] = (unsigned char)(fill + i);
}

static size_t rand_size(unsigned *seed)
{
	unsigned r = (unsigned)rand_r(seed);
	return r % 16 ? 1 + r % 300 : 1 + r % 40000;
}

/* One random step on slot i. */
static void step(struct block *b, unsigned *seed)
{
	size_t n = rand_size(seed);
	int op = rand_r(seed) % 3;
	if (b->p && !check_block(b))
		atomic_fetch_add(&alloc_errors, 1);
	if (op == 0 && b->p) {
		nu_free(b->p);
		b->p = NULL;
	} else if (op == 1 && b->p) {
		unsigned char *q = nu_realloc(b->p, n);
		if (!q)
			return;
		size_t keep = n < b->n ? n : b->n;
		struct block nb = { q, keep, b->fill };
		if (!check_block(&nb))
			atomic_fetch_add(&alloc_errors, 1);
		b->p = q;
		b->n = n;
		fill_block(b, (unsigned char)rand_r(seed));
	} else if (!b->p) {
		b->p = op == 2 ? nu_calloc(1, n) : nu_alloc(n);
		b->n = n;
		if (!b->p || ((uintptr_t)b->p & 15)) {
			atomic_fetch_add(&alloc_errors, 1);
			b->p = NULL;
			return;
		}
		if (op == 2)
			for (size_t i = 0; i < n; i++)
				if (b->p[i])
					atomic_fetch_add(&alloc_errors, 1);
		fill_block(b, (unsigned char)rand_r(seed));
	}
}

static void random_worker(void *a)
{
	unsigned seed = (unsigned)(uintptr_t)a;
	struct block *blocks = nu_calloc(SLOTS, sizeof(*blocks));
	if (!blocks) {
		atomic_fetch_add(&alloc_errors, 1);
		return;
	}
	for (int i = 0; i < 30000; i++) {
		step(&blocks[rand_r(&seed) % SLOTS], &seed);
		if (i % 97 == 0)
			nu_yield(); /* may resume on another scheduler */
	}
	for (int i = 0; i < SLOTS; i++)
		if (blocks[i].p && !check_block(&blocks[i]))
			atomic_fetch_add(&alloc_errors, 1);
}

static void random_main(void *a)
{
	(void)a;
	for (long i = 0; i < 16; i++)
		CU_ASSERT(nu_spawn(random_worker, (void *)(i + 1)) > 0);
	nt_wait_alone();
}

static void test_random_shadow(void)
{
	nu_config c;
	cfg_small(&c, nt_two(), 16 << 20);
	atomic_store(&alloc_errors, 0);
	CU_ASSERT_EQUAL(nu_start(&c, random_main, NULL), 0);
	CU_ASSERT_EQUAL(atomic_load(&alloc_errors), 0);
}

static void exhaust(void *a)
{
	(void)a;
	size_t total = 0;
	void *p, *last = NULL;
	CU_ASSERT_PTR_NULL(nu_alloc(0));
	CU_ASSERT_PTR_NULL(nu_alloc(SIZE_MAX));
	CU_ASSERT_PTR_NULL(nu_calloc(SIZE_MAX / 2, 4));
	while ((p = nu_alloc(1000))) {
		total += 1000;
		last = p;
	}
	/* the 64 KiB far window plus the ~57 KiB inside the slot */
	CU_ASSERT(total > 64 << 10 && total <= 128 << 10);
	nu_free(last);
	CU_ASSERT_PTR_NOT_NULL(nu_alloc(1000)); /* room again */
	nu_free(NULL);
	CU_ASSERT_PTR_NULL(nu_realloc(nu_alloc(16), 0));
}

static void exhaust_main(void *a)
{
	(void)a;
	CU_ASSERT(nu_spawn(exhaust, NULL) > 0);
	nt_wait_alone();
	CU_ASSERT_PTR_NOT_NULL(nu_alloc(100)); /* the node lives on */
}

static void test_exhaustion(void)
{
	nu_config c;
	cfg_small(&c, 1, 64 << 10);
	CU_ASSERT_EQUAL(nu_start(&c, exhaust_main, NULL), 0);
}

/* The next process in a slot starts with an empty heap. The users stay
 * within the slot's shared page, so the slot goes straight back to the warm
 * LIFO and the next spawn gets it again. */
static void *first_block;
static _Atomic int heap_not_empty;

static void heap_user(void *a)
{
	if (nu_heap_used() != 0)
		atomic_store(&heap_not_empty, 1);
	char *p = nu_alloc(64);
	if (a)
		first_block = p;
	else if (p != (char *)first_block) /* allocation from the start */
		atomic_store(&heap_not_empty, 1);
	memset(p, 0xee, 64);
	for (int i = 0; i < 8; i++)
		CU_ASSERT_PTR_NOT_NULL(nu_alloc(64));
	CU_ASSERT(nu_heap_used() >= 9 * 64);
}

static void reuse_main(void *a)
{
	(void)a;
	CU_ASSERT(nu_spawn(heap_user, (void *)1) > 0);
	nt_wait_alone();
	for (int i = 0; i < 100; i++) {
		CU_ASSERT(nu_spawn(heap_user, NULL) > 0);
		nt_wait_alone();
	}
}

static void test_heap_reuse(void)
{
	nu_config c;
	cfg_small(&c, 1, 1 << 20);
	atomic_store(&heap_not_empty, 0);
	CU_ASSERT_EQUAL(nu_start(&c, reuse_main, NULL), 0);
	CU_ASSERT_EQUAL(atomic_load(&heap_not_empty), 0);
}

static CU_TestInfo tests[] = {
	{ "random ops against a shadow copy", test_random_shadow },
	{ "exhaustion and bad sizes", test_exhaustion },
	{ "a reused slot's heap starts empty", test_heap_reuse },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("alloc", tests)
