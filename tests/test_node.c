/* test_node.c — nodes and schedulers: nu_start's contract, bad input,
 * shutdown, spreading work, affinity, reductions, cross-thread wake-ups.
 * Runs twice in the suite: with io_uring and with NUPROC_IO_URING=0. */
#include <errno.h>
#include <fenv.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"
#include "runtime/proc.h"
#include "runtime/sched.h"


static void cfg_small(nu_config *c, unsigned scheds)
{
	nt_config(c, scheds, 100000, 1 << 20);
}

/* ---------------------------------------------------------- status */

static void exit_normal(void *a) { (void)a; }
static void exit_int(void *a) { nu_exit(nu_int((long)a)); }
static void exit_atom(void *a) { (void)a; nu_exit(NU_ATOM_KILLED); }

static void test_status(void)
{
	nu_config c;
	cfg_small(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, exit_normal, NULL), 0);
	CU_ASSERT_EQUAL(nu_start(&c, exit_int, (void *)7L), 7);
	CU_ASSERT_EQUAL(nu_start(&c, exit_int, (void *)0L), 0);
	CU_ASSERT_EQUAL(nu_start(&c, exit_int, (void *)1000L), 1);
	CU_ASSERT_EQUAL(nu_start(&c, exit_atom, NULL), 1);
	CU_ASSERT_EQUAL(nu_start(NULL, exit_int, (void *)3L), 3);
}

static void test_bad_config(void)
{
	nu_config c;
	cfg_small(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, NULL, NULL), -EINVAL);
	c.stack_size = 1024;
	CU_ASSERT_EQUAL(nu_start(&c, exit_normal, NULL), -EINVAL);
	cfg_small(&c, 1);
	c.heap_size = (size_t)1 << 40;
	CU_ASSERT_EQUAL(nu_start(&c, exit_normal, NULL), -EINVAL);
	cfg_small(&c, (unsigned)nt_ncpus() + 1);
	CU_ASSERT_EQUAL(nu_start(&c, exit_normal, NULL), -EINVAL);
	cfg_small(&c, 1);
	c.max_procs = (size_t)1 << 30;
	CU_ASSERT_EQUAL(nu_start(&c, exit_normal, NULL), -EINVAL);
	int bad_node = 999;
	cfg_small(&c, 1);
	c.nodes = &bad_node;
	c.nnodes = 1;
	CU_ASSERT_EQUAL(nu_start(&c, exit_normal, NULL), -EINVAL);
	cfg_small(&c, 1);
	c.nnodes = 1; /* nodes NULL */
	CU_ASSERT_EQUAL(nu_start(&c, exit_normal, NULL), -EINVAL);
	/* the node still starts after all that */
	cfg_small(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, exit_normal, NULL), 0);
}

static void test_outside_process(void)
{
	nu_node_stats st;
	CU_ASSERT_EQUAL(nu_self(), -EPERM);
	CU_ASSERT_EQUAL(nu_yield(), -EPERM);
	CU_ASSERT_EQUAL(nu_spawn(exit_normal, NULL), -EPERM);
	CU_ASSERT_EQUAL(nu_scheduler_id(), -EPERM);
	CU_ASSERT_PTR_NULL(nu_alloc(16));
	CU_ASSERT_EQUAL(nu_process_count(), -ESRCH);
	CU_ASSERT_EQUAL(nu_node_info(&st), -ESRCH);
	CU_ASSERT_EQUAL(nu_is_alive(1), -ESRCH);
	nu_exit(NU_ATOM_NORMAL); /* returns: not a process */
	CU_ASSERT_STRING_EQUAL(nu_strerror(-EAGAIN),
			       "no room: the process table or a bounded queue is full");
	CU_ASSERT_PTR_NOT_NULL(nu_strerror(-12345));
	CU_ASSERT_STRING_EQUAL(nu_atom_name(NU_ATOM_SHUTDOWN), "shutdown");
	CU_ASSERT_PTR_NULL(nu_atom_name(nu_int(3)));
}

static void nested_start(void *a)
{
	int *rc = a;
	*rc = nu_start(NULL, exit_normal, NULL);
	nu_node_stats st;
	CU_ASSERT_EQUAL(nu_node_info(NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_node_info(&st), 0);
	CU_ASSERT_EQUAL(st.processes, 1);
}

static void test_busy(void)
{
	nu_config c;
	cfg_small(&c, 1);
	int rc = 0;
	CU_ASSERT_EQUAL(nu_start(&c, nested_start, &rc), 0);
	CU_ASSERT_EQUAL(rc, -EBUSY);
}

/* ---------------------------------------------------------- shutdown */

static _Atomic long parked_count;

static void parker(void *a)
{
	(void)a;
	atomic_fetch_add(&parked_count, 1);
	nu__proc_park(nu__sched_self());
	CU_FAIL("a parked process resumed without a wake");
}

static void spinner(void *a)
{
	(void)a;
	for (;;)
		nu_yield();
}

static void shutdown_main(void *a)
{
	(void)a;
	for (int i = 0; i < 1000; i++) {
		CU_ASSERT(nu_spawn(parker, NULL) > 0);
		CU_ASSERT(nu_spawn(spinner, NULL) > 0);
	}
	while (atomic_load(&parked_count) < 1000)
		nu_yield();
	CU_ASSERT_EQUAL(nu_process_count(), 2001);
	nu_exit(nu_int(5));
}

static void test_shutdown_stops_all(void)
{
	for (unsigned k = 1; k <= 2 && k <= (unsigned)nt_ncpus(); k++) {
		nu_config c;
		cfg_small(&c, k);
		atomic_store(&parked_count, 0);
		CU_ASSERT_EQUAL(nu_start(&c, shutdown_main, NULL), 5);
	}
}

/* ----------------------------------------------------------- spread */

static _Atomic int seen_sched[64];

static void busy(void *a)
{
	volatile double x = 1;
	for (int i = 0; i < 200; i++) {
		for (int j = 0; j < 20000; j++)
			x = x * 1.0000001 + 1e-9;
		int id = nu_scheduler_id();
		if (id >= 0 && id < 64)
			atomic_store(&seen_sched[id], 1);
		nu_yield();
	}
	(void)a;
}

static void spread_main(void *a)
{
	(void)a;
	for (int i = 0; i < 16; i++)
		CU_ASSERT(nu_spawn(busy, NULL) > 0);
	while (nu_process_count() > 1)
		nu_yield();
	nu_node_stats st;
	CU_ASSERT_EQUAL(nu_node_info(&st), 0);
	CU_ASSERT(st.steals > 0);
}

static void test_spread(void)
{
	if (nt_ncpus() < 2) {
		CU_PASS("one CPU: nothing to spread over");
		return;
	}
	nu_config c;
	cfg_small(&c, 2);
	memset(seen_sched, 0, sizeof(seen_sched));
	CU_ASSERT_EQUAL(nu_start(&c, spread_main, NULL), 0);
	CU_ASSERT(atomic_load(&seen_sched[0]));
	CU_ASSERT(atomic_load(&seen_sched[1]));
}

/* --------------------------------------------------------- affinity */

static _Atomic int affinity_bad;

static void pinned_worker(void *a)
{
	int want = (int)(long)a;
	for (int i = 0; i < 2000; i++) {
		if (nu_scheduler_id() != want)
			atomic_store(&affinity_bad, 1);
		nu_yield();
	}
}

static void affinity_main(void *a)
{
	(void)a;
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	CU_ASSERT_EQUAL(nu_spawn_opt(pinned_worker, NULL, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_spawn_opt(NULL, NULL, &o), -EINVAL);
	o.scheduler = 99;
	CU_ASSERT_EQUAL(nu_spawn_opt(pinned_worker, NULL, &o), -EINVAL);
	o.scheduler = -1;
	o.node = 999;
	CU_ASSERT_EQUAL(nu_spawn_opt(pinned_worker, NULL, &o), -EINVAL);
	o.node = -1;
	for (int i = 0; i < 8; i++) {
		o.scheduler = i % 2;
		CU_ASSERT(nu_spawn_opt(pinned_worker, (void *)(long)(i % 2),
				       &o) > 0);
	}
	o.scheduler = -1;
	o.node = 0; /* node 0 exists on every machine here */
	CU_ASSERT(nu_spawn_opt(exit_normal, NULL, &o) > 0);
	while (nu_process_count() > 1)
		nu_yield();
}

static void test_affinity(void)
{
	if (nt_ncpus() < 2) {
		CU_PASS("one CPU");
		return;
	}
	nu_config c;
	cfg_small(&c, 2);
	atomic_store(&affinity_bad, 0);
	CU_ASSERT_EQUAL(nu_start(&c, affinity_main, NULL), 0);
	CU_ASSERT_EQUAL(atomic_load(&affinity_bad), 0);
}

/* -------------------------------------------------------- registers */

static _Atomic int fp_bad;

static void fp_worker(void *a)
{
	long seed = (long)a;
	double acc = 0, expect = 0;
	for (int i = 1; i <= 300; i++) {
		double t = sqrt((double)(i + seed)) / (double)i;
		expect += t;
		acc += t;
		nu_yield(); /* other processes clobber every register */
	}
	if (fegetround() != FE_TONEAREST || acc != expect)
		atomic_store(&fp_bad, 1);
	double exact = 0;
	for (int i = 1; i <= 300; i++)
		exact += sqrt((double)(i + seed)) / (double)i;
	if (exact != acc)
		atomic_store(&fp_bad, 1);
}

static void fp_main(void *a)
{
	(void)a;
	for (long i = 0; i < 50; i++)
		CU_ASSERT(nu_spawn(fp_worker, (void *)i) > 0);
	while (nu_process_count() > 1)
		nu_yield();
}

static void test_fp_state(void)
{
	nu_config c;
	cfg_small(&c, nt_ncpus() >= 2 ? 2 : 1);
	atomic_store(&fp_bad, 0);
	CU_ASSERT_EQUAL(nu_start(&c, fp_main, NULL), 0);
	CU_ASSERT_EQUAL(atomic_load(&fp_bad), 0);
}

/* ------------------------------------------------------- reductions */

static _Atomic long children_ran;

static void count_child(void *a)
{
	(void)a;
	atomic_fetch_add(&children_ran, 1);
}

static void reductions_main(void *a)
{
	(void)a;
	long ran_during = 0;
	for (int i = 0; i < 20000; i++) {
		CU_ASSERT_FATAL(nu_spawn(count_child, NULL) > 0);
		if (i == 19999)
			ran_during = atomic_load(&children_ran);
	}
	/* The spawner never yielded by itself: spawning charged reductions
	 * and it was made to yield, so children ran meanwhile. */
	CU_ASSERT(ran_during > 0);
	while (nu_process_count() > 1)
		nu_yield();
	CU_ASSERT_EQUAL(atomic_load(&children_ran), 20000);
}

static void test_reductions(void)
{
	nu_config c;
	cfg_small(&c, 1);
	atomic_store(&children_ran, 0);
	CU_ASSERT_EQUAL(nu_start(&c, reductions_main, NULL), 0);
}

/* ---------------------------------------------- cross-thread wakes */

#define PP_ROUNDS 20000
static nu__proc *_Atomic pp_proc[2];
static _Atomic long pp_turn;

/* Two processes on different schedulers hand a turn back and forth with
 * park/wake: a lost wake-up hangs the test (meson's timeout fails it). */
static void pp_worker(void *a)
{
	int me = (int)(long)a;
	atomic_store(&pp_proc[me], nu__sched_self()->current);
	while (!atomic_load(&pp_proc[!me]))
		nu_yield();
	for (long i = 0; i < PP_ROUNDS; i++) {
		while (atomic_load(&pp_turn) % 2 != me)
			nu__proc_park(nu__sched_self());
		atomic_fetch_add(&pp_turn, 1);
		nu__proc_wake(atomic_load(&pp_proc[!me]));
	}
}

static void pp_main(void *a)
{
	(void)a;
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	for (int i = 0; i < 2; i++) {
		o.scheduler = nt_ncpus() >= 2 ? i : 0;
		CU_ASSERT(nu_spawn_opt(pp_worker, (void *)(long)i, &o) > 0);
	}
	while (nu_process_count() > 1)
		nu_yield();
	CU_ASSERT_EQUAL(atomic_load(&pp_turn), 2 * PP_ROUNDS);
}

static void test_cross_wake(void)
{
	nu_config c;
	cfg_small(&c, nt_ncpus() >= 2 ? 2 : 1);
	atomic_store(&pp_turn, 0);
	atomic_store(&pp_proc[0], NULL);
	atomic_store(&pp_proc[1], NULL);
	CU_ASSERT_EQUAL(nu_start(&c, pp_main, NULL), 0);
}

/* -------------------------------------------------- start/stop churn */

static void churn_child(void *a) { (void)a; }

/* The main process spawns, waits a little, exits: on two schedulers the
 * other one is often spinning or parking just then, holding spare count
 * credits. A lost doorbell or an undrained credit hangs nu_start (meson's
 * timeout fails the test). */
static void churn_main(void *a)
{
	long k = (long)a;
	for (long i = 0; i < 50 + k % 50; i++) {
		nu_pid p = nu_spawn(churn_child, NULL);
		CU_ASSERT_FATAL(p > 0);
		while (nu_is_alive(p) == 1)
			nu_yield();
	}
}

static void test_start_stop_churn(void)
{
	nu_config c;
	cfg_small(&c, nt_two());
	for (long k = 0; k < 300; k++)
		CU_ASSERT_EQUAL_FATAL(nu_start(&c, churn_main, (void *)k), 0);
}

static CU_TestInfo tests[] = {
	{ "main status is nu_start's result", test_status },
	{ "bad configs give -EINVAL", test_bad_config },
	{ "calls outside a process", test_outside_process },
	{ "second node gives -EBUSY", test_busy },
	{ "main exit stops every process", test_shutdown_stops_all },
	{ "work spreads over two schedulers", test_spread },
	{ "scheduler affinity holds", test_affinity },
	{ "floating point survives switches", test_fp_state },
	{ "spawn charges reductions", test_reductions },
	{ "park/wake across threads loses nothing", test_cross_wake },
	{ "300 node starts and stops never hang", test_start_stop_churn },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("node", tests)
