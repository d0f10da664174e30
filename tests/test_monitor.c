/* test_monitor.c — monitors: DOWN with the exit reason, noproc for a dead
 * pid, demonitor (with and without flush) leaves no DOWN behind, races
 * between demonitor and exit, 10,000 monitored processes, no garbage left
 * by monitors turned off or fired, DOWN outside bounded-mailbox counts,
 * the memory of 80,000 DOWNs given back once the node idles. */
#include <errno.h>
#include <stdatomic.h>

#include <stdio.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

static void cfg(nu_config *c) { nt_config(c, nt_two(), 100000, 1 << 20); }

static void normal_exit(void *a) { (void)a; }

static void tuple_exit(void *a)
{
	(void)a;
	nu_exit(nu_tuple(2, nu_atom("bad"), nu_binary("why", 3)));
}

static void waits_for_go(void *a)
{
	(void)a;
	nu_term t;
	nu_receive(&t, 5000);
}

static void basics_main(void *a)
{
	(void)a;
	nu_term ref, why;
	nu_pid p = nu_spawn(normal_exit, NULL);
	CU_ASSERT_EQUAL(nu_monitor(p, &ref), 0);
	why = nt_down_reason(ref, p, 2000);
	CU_ASSERT(why == NU_ATOM_NORMAL || why == NU_ATOM_NOPROC);

	p = nu_spawn(tuple_exit, NULL);
	CU_ASSERT_EQUAL(nu_monitor(p, &ref), 0);
	why = nt_down_reason(ref, p, 2000);
	nu_term want = nu_tuple(2, nu_atom("bad"), nu_binary("why", 3));
	CU_ASSERT(nu_term_equal(why, want) || why == NU_ATOM_NOPROC);

	nt_wait_alone(); /* p is dead for sure now */
	CU_ASSERT_EQUAL(nu_monitor(p, &ref), 0);
	CU_ASSERT(nt_down_reason(ref, p, 0) == NU_ATOM_NOPROC);

	/* demonitor before the exit: no DOWN, ever */
	p = nu_spawn(waits_for_go, NULL);
	CU_ASSERT_EQUAL(nu_monitor(p, &ref), 0);
	CU_ASSERT_EQUAL(nu_demonitor(ref, 0), 0);
	CU_ASSERT_EQUAL(nu_demonitor(ref, 0), 1); /* off already */
	nu_send(p, nu_atom("go"));
	nt_wait_alone();
	CU_ASSERT(nt_down_reason(ref, p, 50) == NU_NONE);

	/* demonitor with flush after the DOWN came: it is removed */
	p = nu_spawn(waits_for_go, NULL);
	CU_ASSERT_EQUAL(nu_monitor(p, &ref), 0);
	nu_send(p, nu_atom("go"));
	nt_wait_alone();
	nu_sleep(5);
	CU_ASSERT_EQUAL(nu_demonitor(ref, 1), 1); /* it fired */
	CU_ASSERT(nt_down_reason(ref, p, 0) == NU_NONE);

	/* bad input */
	CU_ASSERT_EQUAL(nu_monitor(p, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_monitor(0, &ref), -EINVAL);
	CU_ASSERT_EQUAL(nu_demonitor(nu_int(1), 0), -EINVAL);
	CU_ASSERT_EQUAL(nu_demonitor(nu_make_ref(), 0), 1);
}

static void test_basics(void)
{
	nu_term r;
	CU_ASSERT_EQUAL(nu_monitor(1, &r), -EPERM);
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, basics_main, NULL), 0);
}

/* demonitor racing with the target's exit, 2000 times: after demonitor
 * returns, no DOWN for its reference is ever found. */
static void race_main(void *a)
{
	(void)a;
	for (int i = 0; i < 2000; i++) {
		nu_term ref;
		nu_pid p = nu_spawn(normal_exit, NULL);
		CU_ASSERT_EQUAL_FATAL(nu_monitor(p, &ref), 0);
		if (i % 3)
			nu_yield(); /* sometimes let it exit first */
		int rc = nu_demonitor(ref, 1); /* 1: it fired first */
		CU_ASSERT_FATAL(rc == 0 || rc == 1);
		CU_ASSERT_FATAL(nt_down_reason(ref, p, 0) == NU_NONE);
	}
	nt_wait_alone();
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive(&t, 20), -ETIMEDOUT); /* nothing late */
}

static void test_race(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, race_main, NULL), 0);
}

#define MANY 10000

static void many_main(void *a)
{
	(void)a;
	for (int i = 0; i < MANY; i++) {
		nu_term ref;
		nu_pid p = nu_spawn(normal_exit, NULL);
		CU_ASSERT_FATAL(p > 0);
		CU_ASSERT_EQUAL_FATAL(nu_monitor(p, &ref), 0);
	}
	nu_pattern *pat;
	CU_ASSERT_EQUAL_FATAL(
		nu_pattern_compile("{'DOWN', _, process, _, _}", &pat, NULL), 0);
	nu_clause c = { pat, NULL, NULL };
	for (int i = 0; i < MANY; i++) {
		nu_term t;
		CU_ASSERT_EQUAL_FATAL(nu_receive_select(&c, 1, 5000, &t), 0);
		nu_term_free(t);
	}
	nu_pattern_free(pat);
}

static void test_many(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, many_main, NULL), 0);
}

#define CYCLES 200000

/* Heap growth since `before`, once the other side has had up to a second
 * to catch up: a target on the other scheduler prunes in parallel, and on
 * a loaded machine its thread may not have run yet (records that are
 * never pruned stay, ~12.8 MB). */
static long settled_growth(long before)
{
	long grown = nt_heap_bytes() - before;
	for (int i = 0; i < 100 && grown >= 1 << 20; i++) {
		nu_sleep(10);
		grown = nt_heap_bytes() - before;
	}
	return grown;
}

/* A long-lived target monitored and demonitored CYCLES times (a server
 * called that often): the records turned off do not pile up on it. */
static void garbage_main(void *a)
{
	(void)a;
	nu_pid t = nu_spawn(waits_for_go, NULL);
	nu_term ref;
	for (int i = 0; i < 1000; i++) { /* warm up the lists */
		CU_ASSERT_EQUAL_FATAL(nu_monitor(t, &ref), 0);
		CU_ASSERT_EQUAL_FATAL(nu_demonitor(ref, 0), 0);
	}
	long before = nt_heap_bytes();
	for (int i = 0; i < CYCLES; i++) {
		CU_ASSERT_EQUAL_FATAL(nu_monitor(t, &ref), 0);
		CU_ASSERT_EQUAL_FATAL(nu_demonitor(ref, i & 1), 0);
		nu_term_free(ref);
		if (i % 1000 == 0)
			nu_yield(); /* let the target prune */
	}
	long grown = settled_growth(before);
	/* without pruning: CYCLES records of ~64 bytes, ~12.8 MB */
	CU_ASSERT(grown < 1 << 20);
	if (grown >= 1 << 20)
		fprintf(stderr, "grew %ld bytes\n", grown);
	nu_send(t, nu_atom("go"));
	nt_wait_alone();
}

/* Spawn options that monitor the child, its reference into *ref. */
static void monitor_opts(nu_spawn_opts *o, nu_term *ref)
{
	nu_spawn_opts_init(o);
	o->monitor_ref = ref;
}

/* Monitoring CYCLES children that exit, taking each DOWN: the watcher's
 * own list does not keep the fired monitors. */
static void fired_main(void *a)
{
	(void)a;
	nu_spawn_opts o;
	nu_term ref, t;
	monitor_opts(&o, &ref);
	long before = nt_heap_bytes();
	for (int i = 0; i < CYCLES; i++) {
		nu_pid p = nu_spawn_opt(normal_exit, NULL, &o);
		CU_ASSERT_FATAL(p > 0);
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 5000), 0);
		CU_ASSERT_EQUAL(nu_tuple_elem(t, 3), nu_pid_term(p));
		nu_term_free(t);
		nu_term_free(ref);
	}
	long grown = settled_growth(before);
	CU_ASSERT(grown < 1 << 20);
	if (grown >= 1 << 20)
		fprintf(stderr, "grew %ld bytes\n", grown);
}

static void test_garbage(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, garbage_main, NULL), 0);
	CU_ASSERT_EQUAL(nu_start(&c, fired_main, NULL), 0);
}

/* A DOWN is not a counted message: it neither takes a bounded mailbox's
 * room nor gives back room it never took. */
static void bounded_child(void *a)
{
	nu_pid parent = *(nu_pid *)a;
	nu_term ref, t;
	nu_pid dead = nu_spawn(normal_exit, NULL);
	while (nu_is_alive(dead) == 1)
		nu_yield();
	CU_ASSERT_EQUAL(nu_monitor(dead, &ref), 0);
	CU_ASSERT_EQUAL(nu_receive(&t, 1000), 0); /* the DOWN noproc */
	nu_send(parent, nu_atom("ready"));
	nu_receive(&t, 5000); /* "go": the parent filled the mailbox */
}

static void bounded_main(void *a)
{
	(void)a;
	nu_pid me = nu_self();
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.max_mailbox = 2;
	o.mailbox_policy = NU_MAILBOX_FAIL;
	nu_pid c = nu_spawn_opt(bounded_child, &me, &o);
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive(&t, 5000), 0);
	CU_ASSERT_EQUAL(nu_send(c, nu_atom("go")), 0);
	CU_ASSERT_EQUAL(nu_send(c, nu_int(1)), 0);
	CU_ASSERT_EQUAL(nu_send(c, nu_int(2)), -EAGAIN);
	nt_wait_alone();
}

static void test_bounded(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, bounded_main, NULL), 0);
}

/* The DOWNs of RECS monitored children, held until the watcher takes
 * them, are memory the node gives back once it idles, and also while a
 * process keeps its scheduler from idling (the busy decay, sched.c): one
 * that yields without end (BUSY_SPIN), or one that sleeps 1 ms at a time
 * (BUSY_TICK: its scheduler never idles the 10 ms a trim waits for). */
#define RECS 80000
enum { BUSY_NONE, BUSY_SPIN, BUSY_TICK };
static _Atomic int busy_stop;

static void busy(void *a)
{
	while (!atomic_load(&busy_stop)) {
		if ((intptr_t)a == BUSY_TICK)
			nu_sleep(1);
		else
			nu_yield();
	}
}

static void records_main(void *a)
{
	nu_spawn_opts o;
	nu_term ref, t;
	atomic_store(&busy_stop, 0);
	nu_pid b = (intptr_t)a == BUSY_NONE ? 0 : nu_spawn(busy, a);
	CU_ASSERT(b >= 0);
	monitor_opts(&o, &ref);
	long before = nt_records_bytes();
	for (int i = 0; i < RECS; i++) {
		CU_ASSERT_FATAL(nu_spawn_opt(normal_exit, NULL, &o) > 0);
		nu_term_free(ref);
	}
	while (nu_process_count() > 1 + (b > 0))
		nu_sleep(1);
	/* each DOWN is 112 bytes: 8.96 MB, of which each scheduler's
	 * message-block cache holds 2 MiB at most, the pool the rest */
	long held = nt_records_bytes() - before;
	CU_ASSERT(held >= 2 << 20);
	for (int i = 0; i < RECS; i++) {
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 5000), 0);
		nu_term_free(t);
	}
	long left = nt_records_bytes();
	for (int i = 0; i < 200 && left > 2 << 20; i++) {
		nu_sleep(30); /* a trim after 10 ms idle, a decay within 2 s */
		left = nt_records_bytes();
	}
	CU_ASSERT(left <= 2 << 20);
	if (left > 2 << 20 || held < 2 << 20)
		fprintf(stderr, "held %ld, left %ld bytes\n", held, left);
	atomic_store(&busy_stop, 1);
}

static void test_records(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, records_main, (void *)BUSY_NONE), 0);
}

static void test_records_busy(void)
{
	nu_config c;
	cfg(&c);
	c.schedulers = 1; /* busy, so no other scheduler trims */
	CU_ASSERT_EQUAL(nu_start(&c, records_main, (void *)BUSY_SPIN), 0);
	CU_ASSERT_EQUAL(nu_start(&c, records_main, (void *)BUSY_TICK), 0);
}

static CU_TestInfo tests[] = {
	{ "DOWN with the reason; noproc; demonitor", test_basics },
	{ "demonitor racing with exit leaves no DOWN", test_race },
	{ "10,000 monitored processes, 10,000 DOWNs", test_many },
	{ "turned-off and fired monitors do not pile up", test_garbage },
	{ "a DOWN does not count in a bounded mailbox", test_bounded },
	{ "fired monitors' memory goes back when the node idles",
	  test_records },
	{ "... and while a process keeps the scheduler busy",
	  test_records_busy },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("monitor", tests)
