/* test_dict.c — the process dictionary: put/get/erase over every kind of
 * term, exact-equality keys, overwrite and erase results, a long random
 * run against a linear-search reference, keys whose hashes collide, one
 * dictionary per process (and none inherited by a reused slot), the calls
 * outside a process, NU_NONE arguments, and heap exhaustion. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

/* Run body as the main process of a small node; expect a normal exit. */
static void run_node(unsigned scheds, size_t heap, nu_fn body)
{
	nu_config c;
	nt_config(&c, scheds, 1000, heap);
	CU_ASSERT_EQUAL(nu_start(&c, body, NULL), 0);
}

/* The value under key is exactly want (NU_NONE: absent). */
#define CHECK_GET(key, want) CU_ASSERT(nu_term_equal_or_none(nu_get(key), (want)))

static int nu_term_equal_or_none(nu_term a, nu_term b)
{
	if (a == NU_NONE || b == NU_NONE)
		return a == b;
	return nu_term_equal(a, b);
}

/* ------------------------------------------------------------ term kinds */

#define NKINDS 17

/* Key number i, built afresh on each call (so two calls give equal terms
 * at different addresses, except for immediates). */
static nu_term make_key(int i)
{
	switch (i) {
	case 0: return nu_int(1);
	case 1: return nu_float(1.0);
	case 2: return nu_float(0.0);
	case 3: return nu_float(-0.0);
	case 4: return nu_atom("alpha");
	case 5: return nu_tuple(3, nu_atom("a"), nu_int(1), nu_binary("xy", 2));
	case 6: return nu_tuple(3, nu_atom("a"), nu_int(1), nu_binary("xz", 2));
	case 7: return nu_binary("hello, dictionary", 17);
	case 8: return nu_binary(NULL, 0);
	case 9: return nu_int64(INT64_MAX);
	case 10: return nu_int64(INT64_MIN);
	case 11: return nu_uint64(UINT64_MAX);
	case 12: return NU_NIL;
	case 13: {
		nu_term e[3] = { nu_int(1), nu_int(2), nu_int(3) };
		return nu_list(3, e);
	}
	case 14: {
		nu_term k[2] = { nu_atom("k"), nu_int(2) };
		nu_term v[2] = { nu_float(2.5), nu_atom("v") };
		return nu_map(2, k, v);
	}
	case 15: return nu_pid_term(nu_self());
	default: return nu_tuple(0);
	}
}

/* A value of yet another shape for key i. */
static nu_term make_val(int i)
{
	switch (i % 4) {
	case 0: return nu_int(i * 10);
	case 1: return nu_tuple(2, nu_int(i), nu_binary("v", 1));
	case 2: return nu_float(i + 0.5);
	default: return nu_int64(INT64_MAX - i);
	}
}

static void kinds_main(void *a)
{
	(void)a;
	nu_term ref = nu_make_ref(), old = 0;
	for (int i = 0; i < NKINDS; i++) {
		CU_ASSERT_EQUAL(nu_put(make_key(i), make_val(i), &old), 0);
		CU_ASSERT_EQUAL(old, NU_NONE);
	}
	CU_ASSERT_EQUAL(nu_put(ref, nu_atom("ref"), NULL), 0);
	CU_ASSERT_EQUAL(nu_dict_size(), NKINDS + 1);
	/* Every key found again through an equal term built separately;
	 * 1 and 1.0, 0.0 and -0.0 are all different keys. */
	for (int i = 0; i < NKINDS; i++)
		CHECK_GET(make_key(i), make_val(i));
	CU_ASSERT_EQUAL(nu_get(ref), nu_atom("ref"));
	CU_ASSERT_EQUAL(nu_get(nu_make_ref()), NU_NONE);
	CU_ASSERT_EQUAL(nu_get(nu_int(2)), NU_NONE);
	CU_ASSERT_EQUAL(nu_get(nu_float(2.0)), NU_NONE);
	CU_ASSERT_EQUAL(nu_get(nu_atom("beta")), NU_NONE);
	CU_ASSERT_EQUAL(nu_get(nu_tuple(1, nu_atom("a"))), NU_NONE);
	CU_ASSERT_EQUAL(nu_get(nu_binary("hello, dictionarY", 17)), NU_NONE);
	/* Erase them all, through fresh keys, in another order. */
	for (int i = NKINDS - 1; i >= 0; i--) {
		CU_ASSERT_EQUAL(nu_erase(make_key(i), &old), 0);
		CU_ASSERT(nu_term_equal(old, make_val(i)));
		CU_ASSERT_EQUAL(nu_get(make_key(i)), NU_NONE);
	}
	CU_ASSERT_EQUAL(nu_erase(ref, NULL), 0);
	CU_ASSERT_EQUAL(nu_dict_size(), 0);
}

static void test_kinds(void)
{
	run_node(1, 1 << 20, kinds_main);
}

/* ---------------------------------------------------- overwrite, erase */

static void overwrite_main(void *a)
{
	(void)a;
	nu_term k = nu_tuple(2, nu_atom("key"), nu_int(7)), old = 0;
	CU_ASSERT_EQUAL(nu_dict_size(), 0);
	CU_ASSERT_EQUAL(nu_put(k, nu_int(1), &old), 0);
	CU_ASSERT_EQUAL(old, NU_NONE);
	CU_ASSERT_EQUAL(nu_put(nu_tuple(2, nu_atom("key"), nu_int(7)),
			       nu_binary("two", 3), &old), 0);
	CU_ASSERT_EQUAL(old, nu_int(1));
	CU_ASSERT_EQUAL(nu_dict_size(), 1);
	CHECK_GET(k, nu_binary("two", 3));
	CU_ASSERT_EQUAL(nu_put(k, nu_int(3), NULL), 0);
	CU_ASSERT_EQUAL(nu_get(k), nu_int(3));

	old = 0;
	CU_ASSERT_EQUAL(nu_erase(nu_int(99), &old), 0); /* missing */
	CU_ASSERT_EQUAL(old, NU_NONE);
	CU_ASSERT_EQUAL(nu_erase(nu_int(99), NULL), 0);
	CU_ASSERT_EQUAL(nu_dict_size(), 1);
	CU_ASSERT_EQUAL(nu_erase(k, &old), 0);
	CU_ASSERT_EQUAL(old, nu_int(3));
	CU_ASSERT_EQUAL(nu_dict_size(), 0);
	CU_ASSERT_EQUAL(nu_get(k), NU_NONE);
	CU_ASSERT_EQUAL(nu_erase(k, &old), 0); /* again: gone */
	CU_ASSERT_EQUAL(old, NU_NONE);
	/* Usable again after becoming empty. */
	CU_ASSERT_EQUAL(nu_put(k, nu_int(4), &old), 0);
	CU_ASSERT_EQUAL(old, NU_NONE);
	CU_ASSERT_EQUAL(nu_get(k), nu_int(4));
	CU_ASSERT_EQUAL(nu_dict_size(), 1);
}

static void test_overwrite(void)
{
	run_node(1, 1 << 20, overwrite_main);
}

/* ------------------------------------------------------- invalid calls */

static void none_main(void *a)
{
	(void)a;
	nu_term old = 0;
	CU_ASSERT_EQUAL(nu_put(NU_NONE, nu_int(1), &old), -EINVAL);
	CU_ASSERT_EQUAL(old, NU_NONE);
	old = 0;
	CU_ASSERT_EQUAL(nu_put(nu_int(1), NU_NONE, &old), -EINVAL);
	CU_ASSERT_EQUAL(old, NU_NONE);
	CU_ASSERT_EQUAL(nu_put(NU_NONE, NU_NONE, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_dict_size(), 0);
	CU_ASSERT_EQUAL(nu_get(NU_NONE), NU_NONE);
	old = 0;
	CU_ASSERT_EQUAL(nu_erase(NU_NONE, &old), -EINVAL);
	CU_ASSERT_EQUAL(old, NU_NONE);
	/* A stored key's value is not disturbed by a rejected put. */
	CU_ASSERT_EQUAL(nu_put(nu_int(1), nu_int(2), NULL), 0);
	CU_ASSERT_EQUAL(nu_put(nu_int(1), NU_NONE, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_get(nu_int(1)), nu_int(2));
	CU_ASSERT_EQUAL(nu_dict_size(), 1);
}

static void test_none_args(void)
{
	run_node(1, 1 << 20, none_main);
}

static void test_outside(void)
{
	nu_term old = 0;
	CU_ASSERT_EQUAL(nu_put(nu_int(1), nu_int(2), &old), -EPERM);
	CU_ASSERT_EQUAL(old, NU_NONE);
	CU_ASSERT_EQUAL(nu_put(nu_int(1), nu_int(2), NULL), -EPERM);
	CU_ASSERT_EQUAL(nu_get(nu_int(1)), NU_NONE);
	old = 0;
	CU_ASSERT_EQUAL(nu_erase(nu_int(1), &old), -EPERM);
	CU_ASSERT_EQUAL(old, NU_NONE);
	CU_ASSERT_EQUAL(nu_dict_size(), 0);
}

/* -------------------------------------------------------- random run */

#define RKEYS 1000
#define ROPS 100000

/* Random key number k as a fresh term: small ints, floats of the same
 * values (1 =/= 1.0), tuples, binaries, bignums. */
static nu_term rand_key(int k)
{
	char buf[24];
	switch (k % 5) {
	case 0: return nu_int(k);
	case 1: return nu_float((double)(k - 1)); /* equal in value to key k-1 */
	case 2: return nu_tuple(2, nu_atom("t"), nu_int(k));
	case 3:
		snprintf(buf, sizeof buf, "b%d", k);
		return nu_binary(buf, strlen(buf));
	default: return nu_int64(INT64_MIN + k);
	}
}

typedef struct ref_pair {
	nu_term key, val;
} ref_pair;

static ref_pair *ref_find(ref_pair *r, size_t n, nu_term key)
{
	for (size_t i = 0; i < n; i++)
		if (nu_term_equal(r[i].key, key))
			return &r[i];
	return NULL;
}

/* Returns the number of failed checks (one CU assertion per op would be
 * 100,000 records). */
static long random_ops(ref_pair *r, size_t *nr, unsigned *seed)
{
	long bad = 0;
	for (int op = 0; op < ROPS; op++) {
		int k = rand_r(seed) % RKEYS, roll = rand_r(seed) % 100;
		int erase_pct = (op / 10000) % 2 ? 60 : 20; /* phases */
		nu_term key = rand_key(k), old = 0;
		ref_pair *e = ref_find(r, *nr, key);
		nu_term want = e ? e->val : NU_NONE;
		if (roll < erase_pct) {
			bad += nu_erase(key, &old) != 0 || old != want;
			if (e)
				*e = r[--*nr];
		} else if (roll < erase_pct + 25) {
			bad += nu_get(key) != want;
		} else {
			nu_term v = nu_int(rand_r(seed));
			bad += nu_put(key, v, &old) != 0 || old != want;
			if (e)
				e->val = v;
			else
				r[(*nr)++] = (ref_pair){ key, v };
		}
		bad += nu_dict_size() != *nr;
	}
	return bad;
}

static void random_main(void *a)
{
	(void)a;
	ref_pair *r = nu_calloc(RKEYS, sizeof *r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	size_t nr = 0;
	unsigned seed = 12345;
	CU_ASSERT_EQUAL(random_ops(r, &nr, &seed), 0);
	long bad = 0;
	for (size_t i = 0; i < nr; i++)
		bad += nu_get(r[i].key) != r[i].val;
	for (int k = 0; k < RKEYS; k++)
		bad += !ref_find(r, nr, rand_key(k)) &&
		       nu_get(rand_key(k)) != NU_NONE;
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(nu_dict_size(), nr);
}

static void test_random(void)
{
	run_node(1, 64 << 20, random_main);
}

/* ------------------------------------------------------- collisions */

#define NCOLL 60

/* Terms equal up to past the hash's bounds: a 300-element list, a tuple
 * nested 30 deep, a 1000-byte binary, each differing only at the end. */
static nu_term coll_key(int kind, int i)
{
	if (kind == 0) {
		nu_term l = nu_cons(nu_int(i), NU_NIL);
		for (int j = 0; j < 300; j++)
			l = nu_cons(nu_atom("x"), l);
		return l;
	}
	if (kind == 1) {
		nu_term t = nu_tuple(1, nu_int(i));
		for (int j = 0; j < 30; j++)
			t = nu_tuple(2, nu_atom("n"), t);
		return t;
	}
	unsigned char b[1000];
	memset(b, 'z', sizeof b);
	b[999] = (unsigned char)i;
	return nu_binary(b, sizeof b);
}

static void coll_main(void *a)
{
	(void)a;
	for (int kind = 0; kind < 3; kind++) {
		for (int i = 0; i < NCOLL; i++)
			CU_ASSERT_EQUAL(nu_put(coll_key(kind, i), nu_int(i),
					       NULL), 0);
		CU_ASSERT_EQUAL(nu_dict_size(), NCOLL);
		for (int i = 0; i < NCOLL; i += 2) {
			nu_term old;
			CU_ASSERT_EQUAL(nu_erase(coll_key(kind, i), &old), 0);
			CU_ASSERT_EQUAL(old, nu_int(i));
		}
		for (int i = 0; i < NCOLL; i++)
			CU_ASSERT_EQUAL(nu_get(coll_key(kind, i)),
					i % 2 ? nu_int(i) : NU_NONE);
		for (int i = 1; i < NCOLL; i += 2)
			CU_ASSERT_EQUAL(nu_erase(coll_key(kind, i), NULL), 0);
		CU_ASSERT_EQUAL(nu_dict_size(), 0);
	}
}

static void test_collisions(void)
{
	run_node(1, 16 << 20, coll_main);
}

/* ------------------------------------------------- one per process */

static _Atomic int child_ok;

static void child(void *a)
{
	(void)a;
	int ok = nu_dict_size() == 0 && nu_get(nu_atom("shared")) == NU_NONE;
	for (int i = 0; i < 1000; i++)
		ok &= nu_put(nu_int(i), nu_int(-i), NULL) == 0;
	ok &= nu_put(nu_atom("shared"), nu_int(2), NULL) == 0;
	nu_yield();
	ok &= nu_get(nu_atom("shared")) == nu_int(2);
	ok &= nu_dict_size() == 1001;
	atomic_fetch_add(&child_ok, ok);
}

static void separate_main(void *a)
{
	(void)a;
	atomic_store(&child_ok, 0);
	CU_ASSERT_EQUAL(nu_put(nu_atom("shared"), nu_int(1), NULL), 0);
	for (int i = 0; i < 4; i++)
		CU_ASSERT(nu_spawn(child, NULL) > 0);
	nt_wait_alone();
	CU_ASSERT_EQUAL(atomic_load(&child_ok), 4);
	CU_ASSERT_EQUAL(nu_get(nu_atom("shared")), nu_int(1));
	CU_ASSERT_EQUAL(nu_get(nu_int(5)), NU_NONE);
	CU_ASSERT_EQUAL(nu_dict_size(), 1);
}

static void test_separate(void)
{
	run_node(nt_two(), 1 << 20, separate_main);
}

/* ------------------------------------------------------ reused slot */

static _Atomic nu_pid filler_pid, checker_pid;
static _Atomic long checker_size;

/* Puts arg keys (a few keep the heap within the slot's first page, so
 * the slot goes straight back to the warm cache; many dirty more pages,
 * and the slot comes back after its pages were released). */
static void filler(void *a)
{
	atomic_store(&filler_pid, nu_self());
	for (int i = 0; i < (int)(intptr_t)a; i++)
		nu_put(nu_tuple(1, nu_int(i)), nu_int(i), NULL);
}

static void checker(void *a)
{
	(void)a;
	atomic_store(&checker_pid, nu_self());
	atomic_store(&checker_size, (long)nu_dict_size());
	atomic_store(&checker_size, atomic_load(&checker_size) +
			    (nu_get(nu_tuple(1, nu_int(3))) != NU_NONE));
}

static void reuse_main(void *a)
{
	(void)a;
	int reused[2] = { 0, 0 };
	for (int round = 0; round < 20; round++) {
		int many = round % 2;
		CU_ASSERT_FATAL(nu_spawn(filler, (void *)(intptr_t)(
						 many ? 500 : 5)) > 0);
		nt_wait_alone();
		nu_sleep(2); /* let the loop release a dirty slot's pages */
		atomic_store(&checker_size, -1);
		CU_ASSERT_FATAL(nu_spawn(checker, NULL) > 0);
		nt_wait_alone();
		CU_ASSERT_EQUAL(atomic_load(&checker_size), 0);
		reused[many] += (atomic_load(&filler_pid) & 0xffffff) ==
				(atomic_load(&checker_pid) & 0xffffff);
	}
	printf(" (slot reused: %d/10 after 5 keys, %d/10 after 500) ",
	       reused[0], reused[1]);
	CU_ASSERT(reused[0] + reused[1] > 0); /* a reused slot was tested */
}

static void test_reuse(void)
{
	run_node(1, 1 << 20, reuse_main);
}

/* ---------------------------------------------------- heap exhaustion */

static void enomem_main(void *a)
{
	(void)a;
	/* Grow until the table cannot double. */
	int n = 0, rc = 0;
	nu_term old = 0;
	while (n < 10000000 && (rc = nu_put(nu_int(n), nu_int(n + 1), NULL)) == 0)
		n++;
	CU_ASSERT_EQUAL_FATAL(rc, -ENOMEM);
	CU_ASSERT(n > 100);
	CU_ASSERT_EQUAL(nu_put(nu_int(n), nu_int(0), &old), -ENOMEM);
	CU_ASSERT_EQUAL(old, NU_NONE);
	CU_ASSERT_EQUAL(nu_dict_size(), (size_t)n);
	CU_ASSERT_EQUAL(nu_get(nu_int(n)), NU_NONE);
	long bad = 0;
	for (int i = 0; i < n; i++)
		bad += nu_get(nu_int(i)) != nu_int(i + 1);
	CU_ASSERT_EQUAL(bad, 0);
	/* Replacing needs no room; an erase makes room for one new key. */
	CU_ASSERT_EQUAL(nu_put(nu_int(0), nu_int(-1), &old), 0);
	CU_ASSERT_EQUAL(old, nu_int(1));
	CU_ASSERT_EQUAL(nu_erase(nu_int(1), &old), 0);
	CU_ASSERT_EQUAL(old, nu_int(2));
	CU_ASSERT_EQUAL(nu_put(nu_int(n), nu_int(7), NULL), 0);
	CU_ASSERT_EQUAL(nu_get(nu_int(n)), nu_int(7));
	CU_ASSERT_EQUAL(nu_dict_size(), (size_t)n);
	/* Empty it (the table is freed), fill the heap, and the first put
	 * fails cleanly too. */
	for (int i = 0; i <= n; i++)
		nu_erase(nu_int(i), NULL);
	CU_ASSERT_EQUAL(nu_dict_size(), 0);
	/* 208 bytes: the size of the first table (a header and 8 entries),
	 * kept back to hand over below. */
	void *reserve = nu_alloc(208);
	CU_ASSERT_PTR_NOT_NULL_FATAL(reserve);
	while (nu_alloc(64))
		;
	CU_ASSERT_EQUAL(nu_put(nu_atom("k"), nu_int(1), &old), -ENOMEM);
	CU_ASSERT_EQUAL(old, NU_NONE);
	CU_ASSERT_EQUAL(nu_dict_size(), 0);
	CU_ASSERT_EQUAL(nu_get(nu_atom("k")), NU_NONE);
	nu_free(reserve); /* room for a first table again */
	CU_ASSERT_EQUAL(nu_put(nu_atom("k"), nu_int(1), &old), 0);
	CU_ASSERT_EQUAL(nu_get(nu_atom("k")), nu_int(1));
	CU_ASSERT_EQUAL(nu_dict_size(), 1);
}

static void test_enomem(void)
{
	run_node(1, 64 << 10, enomem_main);
}

static CU_TestInfo tests[] = {
	{ "keys and values of every kind", test_kinds },
	{ "overwrite and erase return the old value", test_overwrite },
	{ "NU_NONE arguments give -EINVAL", test_none_args },
	{ "outside a process", test_outside },
	{ "100,000 random operations vs a reference", test_random },
	{ "keys whose hashes collide", test_collisions },
	{ "each process has its own dictionary", test_separate },
	{ "a reused slot starts with an empty dictionary", test_reuse },
	{ "heap exhaustion: -ENOMEM, dictionary intact", test_enomem },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("dict", tests)
