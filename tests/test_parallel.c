/* test_parallel.c — parallel patterns. nu_pmap: results in input order
 * for every chunk size (also nested, also deep terms), a worker's crash
 * ends the map with exactly its reason (the other workers killed, none
 * alive after, nothing left in the mailbox), NU_NONE is badresult, a
 * worker past its heap ends the map, workers stop when their caller is
 * killed. nu_race: the first result wins and every loser is dead on
 * return, crashes are out, all crashing is -ESRCH with the last reason,
 * the deadline gives -ETIMEDOUT with all killed. Both: bad arguments,
 * -EPERM outside a process, the caller's own messages untouched, no heap
 * kept by failed calls. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

static void cfg(nu_config *c) { nt_config(c, nt_two(), 100000, 4 << 20); }

static void run(nu_fn main_fn)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, main_fn, NULL), 0);
}

/* [lo, ..., hi] */
static nu_term seq(int64_t lo, int64_t hi)
{
	nu_term l = NU_NIL;
	for (int64_t i = hi; i >= lo; i--)
		l = nu_cons(nu_int(i), l);
	return l;
}

/* 1 when l is [f(lo), ..., f(hi)] with f(i) = i * i + k. */
static int is_squares(nu_term l, int64_t lo, int64_t hi, int64_t k)
{
	for (int64_t i = lo; i <= hi; i++, l = nu_list_tail(l))
		if (nu_list_head(l) != nu_int(i * i + k))
			return 0;
	return l == NU_NIL;
}

/* Nothing left for the caller, now or a little later. */
static int mailbox_empty(void)
{
	nu_term t;
	return nu_receive(&t, 20) == -ETIMEDOUT;
}

static double ms_since(uint64_t t0)
{
	return (double)(nu_clock_ns() - t0) / 1e6;
}

/* ------------------------------------------------------------- pmap */

static nu_term square(nu_term item, void *arg)
{
	int64_t k = arg ? *(const int64_t *)arg : 0;
	return nu_int(nu_int_value(item) * nu_int_value(item) + k);
}

static void order_main(void *a)
{
	(void)a;
	static const size_t chunks[] = { 0, 1, 3, 64, 999, 1000, 5000 };
	int64_t k = 7;
	nu_term items = seq(1, 1000), out;
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		out = NU_NONE;
		CU_ASSERT_EQUAL(nu_pmap(square, &k, items, chunks[i], &out,
					NULL), 0);
		CU_ASSERT(is_squares(out, 1, 1000, 7));
		CU_ASSERT(mailbox_empty());
		nt_wait_alone();
	}
	/* many workers: 10,000 of one item each */
	items = seq(1, 10000);
	CU_ASSERT_EQUAL(nu_pmap(square, NULL, items, 1, &out, NULL), 0);
	CU_ASSERT(is_squares(out, 1, 10000, 0));
	/* the empty list: [] and no worker */
	nt_wait_alone();
	CU_ASSERT_EQUAL(nu_pmap(square, NULL, NU_NIL, 0, &out, NULL), 0);
	CU_ASSERT_EQUAL(out, NU_NIL);
	CU_ASSERT_EQUAL(nu_process_count(), 1);
	CU_ASSERT(mailbox_empty());
}

static void test_order(void) { run(order_main); }

/* Deep terms both ways: {I, <<"item">>} -> {<<"I">>, [I]}. */
static nu_term deep(nu_term item, void *arg)
{
	(void)arg;
	char txt[24];
	int64_t i = nu_int_value(nu_tuple_elem(item, 0));
	int n = snprintf(txt, sizeof(txt), "%lld", (long long)i);
	return nu_tuple(2, nu_binary(txt, (size_t)n),
			nu_cons(nu_int(i), NU_NIL));
}

static nu_term sum_squares(nu_term item, void *arg)
{
	(void)arg;
	nu_term out;
	int64_t n = nu_int_value(item), s = 0;
	if (nu_pmap(square, NULL, seq(1, n), 2, &out, NULL))
		return NU_NONE;
	for (; out != NU_NIL; out = nu_list_tail(out))
		s += nu_int_value(nu_list_head(out));
	return nu_int(s);
}

static void terms_main(void *a)
{
	(void)a;
	nu_term el[50], out;
	for (int i = 0; i < 50; i++)
		el[i] = nu_tuple(2, nu_int(i), nu_binary("item", 4));
	CU_ASSERT_EQUAL_FATAL(nu_pmap(deep, NULL, nu_list(50, el), 7, &out,
				      NULL), 0);
	for (int i = 0; i < 50; i++, out = nu_list_tail(out)) {
		char txt[8];
		int n = snprintf(txt, sizeof(txt), "%d", i);
		nu_term want = nu_tuple(2, nu_binary(txt, (size_t)n),
					nu_cons(nu_int(i), NU_NIL));
		CU_ASSERT(nu_term_equal(nu_list_head(out), want));
	}
	CU_ASSERT_EQUAL(out, NU_NIL);
	/* nested: each worker maps again */
	CU_ASSERT_EQUAL(nu_pmap(sum_squares, NULL, seq(1, 6), 1, &out, NULL),
			0);
	for (int64_t n = 1; n <= 6; n++, out = nu_list_tail(out))
		CU_ASSERT_EQUAL(nu_list_head(out),
				nu_int(n * (n + 1) * (2 * n + 1) / 6));
	nt_wait_alone();
	CU_ASSERT(mailbox_empty());
}

static void test_terms(void) { run(terms_main); }

/* Item 7 crashes at once with {bad, 7}; the others sleep 10 s. */
static nu_term crash_or_sleep(nu_term item, void *arg)
{
	(void)arg;
	if (item == nu_int(7))
		nu_exit(nu_tuple(2, nu_atom("bad"), item));
	nu_sleep(10000);
	return item;
}

/* Item 500 crashes with {bad, 500}; the others are squared. */
static nu_term crash_at_500(nu_term item, void *arg)
{
	if (item == nu_int(500))
		nu_exit(nu_tuple(2, nu_atom("bad"), item));
	return square(item, arg);
}

static nu_term none_at_3(nu_term item, void *arg)
{
	(void)arg;
	return item == nu_int(3) ? NU_NONE : item;
}

static void crash_main(void *a)
{
	(void)a;
	nu_term why = NU_NONE, out = NU_NONE;
	uint64_t t0 = nu_clock_ns();
	CU_ASSERT_EQUAL(nu_pmap(crash_or_sleep, NULL, seq(1, 20), 1, &out,
				&why), -ESRCH);
	CU_ASSERT(ms_since(t0) < 5000); /* the sleepers were killed */
	CU_ASSERT(nu_term_equal(why, nu_tuple(2, nu_atom("bad"), nu_int(7))));
	CU_ASSERT_EQUAL(out, NU_NONE); /* untouched */
	CU_ASSERT(mailbox_empty());
	nt_wait_alone();

	static const size_t chunks[] = { 0, 1, 10, 1000 };
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		why = NU_NONE;
		CU_ASSERT_EQUAL(nu_pmap(crash_at_500, NULL, seq(1, 1000),
					chunks[i], &out, &why), -ESRCH);
		CU_ASSERT(nu_term_equal(
			why, nu_tuple(2, nu_atom("bad"), nu_int(500))));
		CU_ASSERT(mailbox_empty());
		nt_wait_alone();
		CU_ASSERT_EQUAL(nu_process_count(), 1);
	}
	/* NU_NONE is a crash: badresult; reason may be NULL */
	CU_ASSERT_EQUAL(nu_pmap(none_at_3, NULL, seq(1, 5), 2, &out, &why),
			-ESRCH);
	CU_ASSERT_EQUAL(why, nu_atom("badresult"));
	CU_ASSERT_EQUAL(nu_pmap(none_at_3, NULL, seq(1, 5), 0, &out, NULL),
			-ESRCH);
	CU_ASSERT(mailbox_empty());
}

static void test_crash(void) { run(crash_main); }

/* A worker past its heap (64 KiB windows): the map ends with its crash. */
static nu_term hog(nu_term item, void *arg)
{
	(void)arg;
	for (int i = 0; i < 64; i++)
		if (!nu_alloc(16 << 10))
			return NU_NONE;
	return item;
}

static void small_heap_main(void *a)
{
	(void)a;
	nu_term out, why = NU_NONE;
	CU_ASSERT_EQUAL(nu_pmap(square, NULL, seq(1, 1000), 0, &out, NULL), 0);
	CU_ASSERT(is_squares(out, 1, 1000, 0));
	CU_ASSERT_EQUAL(nu_pmap(hog, NULL, seq(1, 4), 1, &out, &why), -ESRCH);
	CU_ASSERT(why == nu_atom("heap_limit") || why == nu_atom("badresult"));
	CU_ASSERT(mailbox_empty());
	nt_wait_alone();
}

static void test_small_heap(void)
{
	nu_config c;
	nt_config(&c, nt_two(), 10000, 64 << 10);
	CU_ASSERT_EQUAL(nu_start(&c, small_heap_main, NULL), 0);
}

/* A caller killed during a map: its worker stops before its next item. */
static atomic_int slow_items;

static nu_term slow_square(nu_term item, void *arg)
{
	atomic_fetch_add(&slow_items, 1);
	nu_sleep(20);
	return square(item, arg);
}

static void mapper(void *a)
{
	(void)a;
	nu_term out;
	nu_pmap(slow_square, NULL, seq(1, 50), 50, &out, NULL);
}

static void killed_caller_main(void *a)
{
	(void)a;
	nu_pid p = nu_spawn(mapper, NULL);
	nu_sleep(70);
	CU_ASSERT_EQUAL(nu_kill(p, NU_ATOM_KILL), 0);
	nt_wait_alone();
	int n = atomic_load(&slow_items);
	CU_ASSERT(n >= 1 && n < 50);
	if (n >= 50)
		fprintf(stderr, "the worker ran all %d items\n", n);
}

static void test_killed_caller(void) { run(killed_caller_main); }

/* ------------------------------------------------------------- race */

static atomic_llong racer_pid[3];
static atomic_int racer_done[3];
static const uint64_t *racer_ms;

static void racers_reset(const uint64_t *ms)
{
	racer_ms = ms;
	for (int i = 0; i < 3; i++) {
		atomic_store(&racer_pid[i], 0);
		atomic_store(&racer_done[i], 0);
	}
}

/* Sleep racer_ms[i], then return i. */
static nu_term racer(void *arg)
{
	intptr_t i = (intptr_t)arg;
	atomic_store(&racer_pid[i], nu_self());
	nu_sleep(racer_ms[i]);
	atomic_store(&racer_done[i], 1);
	return nu_int(i);
}

/* Sleep racer_ms[i], then crash with {crash, i}. */
static nu_term crasher(void *arg)
{
	intptr_t i = (intptr_t)arg;
	atomic_store(&racer_pid[i], nu_self());
	nu_sleep(racer_ms[i]);
	nu_exit(nu_tuple(2, nu_atom("crash"), nu_int(i)));
	return NU_NONE;
}

static nu_term returns_none(void *arg)
{
	(void)arg;
	return NU_NONE;
}

static nu_term null_arg(void *arg)
{
	return arg ? nu_atom("no") : nu_atom("yes");
}

static void *const ids[3] = { (void *)0, (void *)1, (void *)2 };

/* Every contender that started is dead now. */
static void assert_all_dead(void)
{
	for (int i = 0; i < 3; i++) {
		nu_pid p = (nu_pid)atomic_load(&racer_pid[i]);
		if (p)
			CU_ASSERT_EQUAL(nu_is_alive(p), 0);
	}
}

static void race_main(void *a)
{
	(void)a;
	static const uint64_t ms[3] = { 200, 5, 100 };
	const nu_race_fn fns[3] = { racer, racer, racer };
	nu_term r = NU_NONE;
	size_t w = 99;
	racers_reset(ms);
	CU_ASSERT_EQUAL(nu_race(fns, ids, 3, -1, &r, &w), 0);
	CU_ASSERT_EQUAL(w, 1);
	CU_ASSERT_EQUAL(r, nu_int(1));
	assert_all_dead();
	CU_ASSERT(mailbox_empty());
	nu_sleep(250); /* the losers would have finished by now */
	CU_ASSERT_EQUAL(atomic_load(&racer_done[0]), 0);
	CU_ASSERT_EQUAL(atomic_load(&racer_done[2]), 0);
	nt_wait_alone();

	/* a crash is out: the other one wins */
	static const uint64_t ms2[3] = { 0, 30, 0 };
	const nu_race_fn fns2[2] = { crasher, racer };
	racers_reset(ms2);
	CU_ASSERT_EQUAL(nu_race(fns2, ids, 2, 5000, &r, NULL), 0);
	CU_ASSERT_EQUAL(r, nu_int(1));
	CU_ASSERT(mailbox_empty());

	/* one contender, args NULL */
	const nu_race_fn one[1] = { null_arg };
	CU_ASSERT_EQUAL(nu_race(one, NULL, 1, -1, &r, &w), 0);
	CU_ASSERT_EQUAL(r, nu_atom("yes"));
	CU_ASSERT_EQUAL(w, 0);
	nt_wait_alone();
	CU_ASSERT(mailbox_empty());
}

static void test_race(void) { run(race_main); }

static void race_fail_main(void *a)
{
	(void)a;
	/* all crash: -ESRCH, the last crash's reason */
	static const uint64_t ms[3] = { 0, 60, 120 };
	const nu_race_fn fns[3] = { crasher, crasher, crasher };
	nu_term r = NU_NONE;
	racers_reset(ms);
	CU_ASSERT_EQUAL(nu_race(fns, ids, 3, -1, &r, NULL), -ESRCH);
	CU_ASSERT(nu_term_equal(r, nu_tuple(2, nu_atom("crash"), nu_int(2))));
	assert_all_dead();
	CU_ASSERT(mailbox_empty());

	const nu_race_fn none[1] = { returns_none };
	CU_ASSERT_EQUAL(nu_race(none, NULL, 1, -1, &r, NULL), -ESRCH);
	CU_ASSERT_EQUAL(r, nu_atom("badresult"));

	/* the deadline: all killed, at once */
	static const uint64_t slow[3] = { 10000, 10000, 10000 };
	const nu_race_fn fns3[3] = { racer, racer, racer };
	racers_reset(slow);
	uint64_t t0 = nu_clock_ns();
	CU_ASSERT_EQUAL(nu_race(fns3, ids, 3, 50, &r, NULL), -ETIMEDOUT);
	double took = ms_since(t0);
	CU_ASSERT(took >= 50 && took < 5000);
	assert_all_dead();
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(atomic_load(&racer_done[i]), 0);
	CU_ASSERT_EQUAL(nu_race(fns3, ids, 3, 0, &r, NULL), -ETIMEDOUT);
	nt_wait_alone();
	CU_ASSERT(mailbox_empty());
}

static void test_race_fail(void) { run(race_fail_main); }

/* ------------------------------------------------- arguments, mailbox */

static void args_main(void *a)
{
	(void)a;
	nu_term out, r;
	nu_term items = seq(1, 3);
	CU_ASSERT_EQUAL(nu_pmap(NULL, NULL, items, 0, &out, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_pmap(square, NULL, items, 0, NULL, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_pmap(square, NULL, NU_NONE, 0, &out, NULL),
			-EINVAL);
	CU_ASSERT_EQUAL(nu_pmap(square, NULL, nu_atom("x"), 0, &out, NULL),
			-EINVAL);
	nu_term improper = nu_cons(nu_int(1), nu_cons(nu_int(2), nu_int(3)));
	CU_ASSERT_EQUAL(nu_pmap(square, NULL, improper, 0, &out, NULL),
			-EINVAL); /* [1, 2 | 3] */

	const nu_race_fn fns[2] = { null_arg, NULL };
	CU_ASSERT_EQUAL(nu_race(NULL, NULL, 1, -1, &r, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_race(fns, NULL, 0, -1, &r, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_race(fns, NULL, 2, -1, &r, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_race(fns, NULL, 1, -1, NULL, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_race(fns, NULL, 1, -2, &r, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_process_count(), 1);
	CU_ASSERT(mailbox_empty());
}

static void test_args(void)
{
	nu_term out, r;
	const nu_race_fn fns[1] = { null_arg };
	CU_ASSERT_EQUAL(nu_pmap(square, NULL, NU_NIL, 0, &out, NULL), -EPERM);
	CU_ASSERT_EQUAL(nu_race(fns, NULL, 1, -1, &r, NULL), -EPERM);
	run(args_main);
}

static void exits_on_go(void *a)
{
	(void)a;
	nu_term t;
	nu_receive(&t, 5000);
}

/* The caller's own messages, among them look-alikes (a 3-tuple led by
 * another reference, a DOWN of its own monitor), stay as they were,
 * through maps and races that succeed, crash and time out. */
static void mailbox_main(void *a)
{
	(void)a;
	nu_pid self = nu_self();
	nu_term ref;
	nu_pid p = nu_spawn(exits_on_go, NULL);
	CU_ASSERT_EQUAL(nu_monitor(p, &ref), 0);
	nu_term mine[3] = {
		nu_atom("hello"),
		nu_tuple(3, nu_make_ref(), nu_int(0), nu_atom("x")),
		nu_tuple(5, nu_atom("DOWN"), nu_make_ref(), nu_atom("process"),
			 nu_pid_term(self), nu_atom("normal")),
	};
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(nu_send(self, mine[i]), 0);
	nu_send(p, nu_atom("go"));
	nu_sleep(20); /* p's DOWN is queued too, after them */

	nu_term out, r;
	static const uint64_t ms[3] = { 5, 10, 10000 };
	const nu_race_fn fns[3] = { racer, racer, racer };
	racers_reset(ms);
	CU_ASSERT_EQUAL(nu_pmap(square, NULL, seq(1, 100), 3, &out, NULL), 0);
	CU_ASSERT_EQUAL(nu_pmap(crash_at_500, NULL, seq(1, 600), 7, &out,
				NULL), -ESRCH);
	CU_ASSERT_EQUAL(nu_race(fns, ids, 3, -1, &r, NULL), 0);
	CU_ASSERT_EQUAL(nu_race(fns + 2, ids + 2, 1, 20, &r, NULL),
			-ETIMEDOUT);

	nu_term t;
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 0), 0);
		CU_ASSERT(nu_term_equal(t, mine[i]));
	}
	CU_ASSERT(nt_down_reason(ref, p, 0) == NU_ATOM_NORMAL);
	CU_ASSERT(mailbox_empty());
}

static void test_mailbox(void) { run(mailbox_main); }

/* Calls that fail give back all they took (reason NULL): the heap does
 * not grow; one that succeeds keeps only its results. */
static void heap_main(void *a)
{
	(void)a;
	nu_term items = seq(1, 100), few = seq(495, 505), out, r;
	static const uint64_t slow[3] = { 10000, 10000, 10000 };
	const nu_race_fn fns[3] = { racer, racer, racer };
	racers_reset(slow);
	nu_pmap(crash_at_500, NULL, seq(1, 600), 7, &out, NULL); /* warm */
	size_t before = nu_heap_used();
	for (int i = 0; i < 100; i++) {
		CU_ASSERT_EQUAL_FATAL(nu_pmap(crash_at_500, NULL, few, 2, &out,
					      NULL), -ESRCH);
		CU_ASSERT_EQUAL_FATAL(nu_race(fns, ids, 3, 1, &r, NULL),
				      -ETIMEDOUT);
	}
	long grown = (long)nu_heap_used() - (long)before;
	CU_ASSERT(grown < 1024); /* less than 6 bytes a call */
	if (grown >= 1024)
		fprintf(stderr, "failed calls kept %ld bytes\n", grown);

	before = nu_heap_used();
	for (int i = 0; i < 100; i++)
		CU_ASSERT_EQUAL_FATAL(nu_pmap(square, NULL, items, 10, &out,
					      NULL), 0);
	long per = ((long)nu_heap_used() - (long)before) / 100;
	/* 100 results (10 messages) and 90 fresh cells: ~4 KiB */
	CU_ASSERT(per < 8 << 10);
	if (per >= 8 << 10)
		fprintf(stderr, "a map kept %ld bytes\n", per);
	nt_wait_alone();
}

static void test_heap(void) { run(heap_main); }

static CU_TestInfo tests[] = {
	{ "pmap results in input order, any chunk", test_order },
	{ "pmap deep terms, nested maps", test_terms },
	{ "pmap crash: its reason, others killed", test_crash },
	{ "pmap with small heaps", test_small_heap },
	{ "pmap workers stop with their caller", test_killed_caller },
	{ "race: first wins, losers dead", test_race },
	{ "race: all crash, deadline", test_race_fail },
	{ "bad arguments, outside a process", test_args },
	{ "caller's own messages untouched", test_mailbox },
	{ "no heap kept by failed calls", test_heap },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("parallel", tests)
