/* test_proc.c — processes: pids, stale pids, exit, the table limit, the
 * slot pool over a million spawn/exit cycles, stack options, bulk release.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"
#include "runtime/node.h"
#include "runtime/proc.h"
#include "runtime/sched.h"


static void cfg_small(nu_config *c, unsigned scheds)
{
	nt_config(c, scheds, 200000, 2 << 20);
}

static void noop(void *a) { (void)a; }

/* -------------------------------------------------------------- pids */

static nu_pid seen_self[2];

static void record_self(void *a)
{
	seen_self[(long)a] = nu_self();
	CU_ASSERT_EQUAL(nu_is_alive(nu_self()), 1);
}

static void pids_main(void *a)
{
	(void)a;
	nu_pid me = nu_self();
	CU_ASSERT(me > 0);
	nu_pid p0 = nu_spawn(record_self, (void *)0L);
	nu_pid p1 = nu_spawn(record_self, (void *)1L);
	CU_ASSERT(p0 > 0 && p1 > 0 && p0 != p1 && p0 != me);
	nt_wait_alone();
	CU_ASSERT_EQUAL(seen_self[0], p0);
	CU_ASSERT_EQUAL(seen_self[1], p1);
	CU_ASSERT_EQUAL(nu_is_alive(p0), 0);
	CU_ASSERT_EQUAL(nu_is_alive(p1), 0);
	CU_ASSERT_EQUAL(nu_is_alive(0), -EINVAL);
	CU_ASSERT_EQUAL(nu_is_alive(-5), -EINVAL);
	CU_ASSERT_EQUAL(nu_is_alive(me + (1LL << NU__PID_INDEX_BITS)), -EINVAL);
	CU_ASSERT_EQUAL(nu_is_alive((nu_pid)NU__PID_MAX_INDEX | (1LL << 24)),
			-EINVAL);
	CU_ASSERT_EQUAL(nu_is_alive((nu_pid)1 << 60), -EINVAL);
}

static void test_pids(void)
{
	nu_config c;
	cfg_small(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, pids_main, NULL), 0);
}

/* A dead pid never names the process that reuses its slot. */
static void stale_main(void *a)
{
	(void)a;
	nu_pid old = nu_spawn(noop, NULL);
	nt_wait_alone();
	CU_ASSERT_EQUAL(nu_is_alive(old), 0);
	for (int i = 0; i < 1000; i++) {
		nu_pid p = nu_spawn(noop, NULL);
		CU_ASSERT_FATAL(p > 0);
		/* LIFO reuse: the same slot, a new generation */
		CU_ASSERT_EQUAL(nu__pid_index(p), nu__pid_index(old));
		CU_ASSERT_NOT_EQUAL(p, old);
		CU_ASSERT_EQUAL(nu_is_alive(p), 1);
		CU_ASSERT_EQUAL(nu_is_alive(old), 0);
		nt_wait_alone();
		CU_ASSERT_EQUAL(nu_is_alive(p), 0);
	}
}

static void test_stale_pid(void)
{
	nu_config c;
	cfg_small(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, stale_main, NULL), 0);
}

/* ------------------------------------------------------------- exit */

static _Atomic int after_exit_ran;

static void deep_exit(int depth)
{
	if (depth == 0) {
		nu_exit(NU_ATOM_NORMAL);
		return;
	}
	deep_exit(depth - 1);
	atomic_store(&after_exit_ran, 1);
}

static void exiter(void *a)
{
	(void)a;
	deep_exit(50);
	atomic_store(&after_exit_ran, 1);
}

static void exit_main(void *a)
{
	(void)a;
	for (int i = 0; i < 100; i++)
		CU_ASSERT(nu_spawn(exiter, NULL) > 0);
	nt_wait_alone();
	CU_ASSERT_EQUAL(atomic_load(&after_exit_ran), 0);
	deep_exit(10); /* the main process too */
	CU_FAIL("nu_exit returned");
}

static void test_exit_unwinds(void)
{
	nu_config c;
	cfg_small(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, exit_main, NULL), 0);
}

/* -------------------------------------------------------- table full */

static void sleeper(void *a)
{
	(void)a;
	nu__proc_park(nu__sched_self());
}

static void full_main(void *a)
{
	(void)a;
	long ok = 0;
	nu_pid rc;
	while ((rc = nu_spawn(sleeper, NULL)) > 0)
		ok++;
	CU_ASSERT_EQUAL(rc, -EAGAIN);
	CU_ASSERT_EQUAL(ok, 999); /* the main process holds one entry */
	CU_ASSERT_EQUAL(nu_process_count(), 1000);
	CU_ASSERT_EQUAL(nu_spawn(sleeper, NULL), -EAGAIN);
	/* the node keeps running: yields and allocation still work */
	CU_ASSERT_EQUAL(nu_yield(), 0);
	CU_ASSERT_PTR_NOT_NULL(nu_alloc(100));
	nu_exit(nu_int(9));
}

static void test_table_full(void)
{
	nu_config c;
	cfg_small(&c, 1);
	c.max_procs = 1000;
	CU_ASSERT_EQUAL(nu_start(&c, full_main, NULL), 9);
	/* and again with two schedulers */
	cfg_small(&c, nt_two());
	c.max_procs = 1000;
	CU_ASSERT_EQUAL(nu_start(&c, full_main, NULL), 9);
}

/* -------------------------------------------- a million cycles, flat */

/* The counters are read without stopping the node, so another scheduler
 * may be moving slots between its caches mid-read: read until two reads in
 * a row agree. */
static void settled_info(nu_node_stats *st)
{
	nu_node_stats prev;
	CU_ASSERT_EQUAL_FATAL(nu_node_info(&prev), 0);
	for (int i = 0; i < 10000; i++) {
		nu_yield();
		CU_ASSERT_EQUAL_FATAL(nu_node_info(st), 0);
		if (!memcmp(st, &prev, sizeof(prev)))
			return;
		prev = *st;
	}
	CU_FAIL("node counters never settled");
}

static void touch_some(void *a)
{
	char *p = nu_alloc(256);
	if (p)
		memset(p, (int)(long)a, 256);
}

/* After a warm-up, a million spawn/exit cycles must not grow the slot pool
 * or RSS. With one scheduler the pool is exactly flat. With two, slots
 * migrate between the schedulers' caches and the depot, so the pool may
 * still settle by at most what those caches hold (2 x warm_slots per
 * scheduler); RSS may grow by no more than those slots' pages, where a leak
 * of one page per cycle would be 4 GB. */
static void cycles_main(void *a)
{
	long n = (long)a;
	nu_node_stats s0, s1;
	for (long i = 0; i < 200000; i++)
		CU_ASSERT_FATAL(nu_spawn(touch_some, (void *)i) > 0);
	nt_wait_alone();
	settled_info(&s0);
	long rss0 = nt_rss();
	for (long i = 0; i < n; i++)
		if (nu_spawn(touch_some, (void *)i) <= 0)
			CU_FAIL_FATAL("spawn failed");
	nt_wait_alone();
	long rss1 = nt_rss();
	settled_info(&s1);
	CU_ASSERT_EQUAL(s1.processes, 1);
	CU_ASSERT_EQUAL(s1.spawns - s0.spawns, (uint64_t)n);
	uint64_t free0 = s0.slots_warm + s0.slots_pending + s0.slots_cold;
	uint64_t free1 = s1.slots_warm + s1.slots_pending + s1.slots_cold;
	CU_ASSERT_EQUAL(free1 - free0, s1.slots_carved - s0.slots_carved);
	uint64_t slack = s1.schedulers > 1 ? 2ull * 512 * s1.schedulers : 0;
	long page = sysconf(_SC_PAGESIZE);
	CU_ASSERT(s1.slots_carved - s0.slots_carved <= slack);
	long grew = rss1 - rss0;
	if (grew > (1 << 20) + (long)slack * 2 * page)
		fprintf(stderr, "rss grew %ld bytes\n", grew);
	CU_ASSERT(grew <= (1 << 20) + (long)slack * 2 * page);
}

static void test_million_cycles(void)
{
	nu_config c;
	cfg_small(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, cycles_main, (void *)1000000L), 0);
	cfg_small(&c, nt_two());
	c.warm_slots = 512;
	CU_ASSERT_EQUAL(nu_start(&c, cycles_main, (void *)1000000L), 0);
}

/* ------------------------------------------------ bulk heap release */

static void heavy(void *a)
{
	size_t n = (size_t)(long)a;
	char *p = nu_alloc(n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	memset(p, 0x5a, n); /* make every page resident */
}

static void release_main(void *a)
{
	(void)a;
	long rss0 = nt_rss();
	for (int i = 0; i < 2000; i++)
		CU_ASSERT_FATAL(nu_spawn(heavy, (void *)(1L << 20)) > 0);
	nt_wait_alone();
	/* Touched 2000 MiB in total; after release the node is back near
	 * where it started. Slots wait pending for a flush of 64 (or a busy
	 * decay's), and the rest for the scheduler to idle: sleep till then. */
	nu_node_stats st;
	for (int i = 0; i < 100; i++) {
		CU_ASSERT_EQUAL_FATAL(nu_node_info(&st), 0);
		if (!st.slots_pending)
			break;
		nu_sleep(20);
	}
	CU_ASSERT_EQUAL(st.slots_pending, 0);
	long rss1 = nt_rss();
	long allowed = 32 << 20;
#if defined(__SANITIZE_ADDRESS__)
	/* ASan's shadow of the touched heaps (1/8 of it) stays resident. */
	allowed += (2000L << 20) / 8;
#endif
	if (rss1 - rss0 > allowed)
		fprintf(stderr, "rss grew %ld bytes\n", rss1 - rss0);
	CU_ASSERT(rss1 - rss0 <= allowed);
}

static void test_bulk_release(void)
{
	nu_config c;
	cfg_small(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, release_main, NULL), 0);
}

/* A burst's warm slots go back while a process keeps the only scheduler
 * busy (it never idles the 10 ms a trim waits for): the busy decay
 * releases, within two of its 1 s periods, what the warm LIFO held
 * unused, down to the 128 it keeps (and as many in the depot). */
#define BURST 3000
static _Atomic int spin_stop;

static void spin(void *a)
{
	(void)a;
	while (!atomic_load(&spin_stop))
		nu_yield();
}

static void parked(void *a)
{
	(void)a;
	nu_term t;
	nu_receive(&t, -1);
}

static long warm_now(void)
{
	nu_node_stats st;
	return nu_node_info(&st) ? -1 : (long)st.slots_warm;
}

static void decay_main(void *a)
{
	(void)a;
	static nu_pid burst[BURST];
	atomic_store(&spin_stop, 0);
	CU_ASSERT_FATAL(nu_spawn(spin, NULL) > 0);
	for (int i = 0; i < BURST; i++)
		CU_ASSERT_FATAL((burst[i] = nu_spawn(parked, NULL)) > 0);
	for (int i = 0; i < BURST; i++)
		nu_send(burst[i], nu_atom("go"));
	while (nu_process_count() > 2)
		nu_yield();
	long held = warm_now(), left = held;
	CU_ASSERT(held >= BURST - 64);
	for (int i = 0; i < 100 && left > 2 * 128; i++) {
		nu_sleep(50);
		left = warm_now();
	}
	CU_ASSERT(left <= 2 * 128);
	if (held < BURST - 64 || left > 2 * 128)
		fprintf(stderr, "warm slots: held %ld, left %ld\n", held, left);
	atomic_store(&spin_stop, 1);
}

static void test_busy_decay(void)
{
	nu_config c;
	cfg_small(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, decay_main, NULL), 0);
}

/* ---------------------------------------------------- stack options */

static int recurse(int n)
{
	volatile char pad[512];
	pad[0] = (char)n;
	return n ? recurse(n - 1) + pad[0] : 0;
}

static void deep(void *a)
{
	(void)a;
	recurse(80); /* ~45 KiB of stack */
}

static void stack_main(void *a)
{
	(void)a;
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.stack_size = 1024;
	CU_ASSERT_EQUAL(nu_spawn_opt(deep, NULL, &o), -EINVAL);
	o.stack_size = (size_t)1 << 40;
	CU_ASSERT_EQUAL(nu_spawn_opt(deep, NULL, &o), -EINVAL);
	o.stack_size = 128 << 10; /* above this node's 64 KiB window */
	CU_ASSERT_EQUAL(nu_spawn_opt(deep, NULL, &o), -EINVAL);
	o.stack_size = 56 << 10;
	for (int i = 0; i < 100; i++)
		CU_ASSERT(nu_spawn_opt(deep, NULL, &o) > 0);
	o.stack_size = 0;
	for (int i = 0; i < 100; i++)
		CU_ASSERT(nu_spawn_opt(deep, NULL, &o) > 0);
	nt_wait_alone();
}

static void test_stack_options(void)
{
	nu_config c;
	cfg_small(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, stack_main, NULL), 0);
}

/* ------------------------------------------------ the runnext slice */

/* A ping-pong pair hands the CPU to each other directly (runnext); a
 * process queued behind them must still get it once their 2 ms slice is
 * up, not when they are done. */
static _Atomic int pair_stop;

static void slice_main(void *a)
{
	(void)a;
	static nt_pair pair;
	for (int round = 0; round < 3; round++) {
		atomic_store(&pair_stop, 0);
		CU_ASSERT_FATAL(nt_pair_start(&pair, &pair_stop) == 0);
		uint64_t t0 = nu_clock_ns();
		nu_yield(); /* queued behind the pair */
		uint64_t waited = nu_clock_ns() - t0;
		atomic_store(&pair_stop, 1);
		CU_ASSERT(waited >= 1000000u);  /* the pair had its slice */
		CU_ASSERT(waited < 100000000u); /* and then gave way */
		nt_wait_alone();
	}
}

static void test_runnext_slice(void)
{
	nu_config c;
	cfg_small(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, slice_main, NULL), 0);
}

static CU_TestInfo tests[] = {
	{ "pids are distinct and die", test_pids },
	{ "a stale pid is detected", test_stale_pid },
	{ "nu_exit ends the process from any depth", test_exit_unwinds },
	{ "a full table gives -EAGAIN, node lives", test_table_full },
	{ "1M spawn/exit cycles leave pool and RSS flat", test_million_cycles },
	{ "heap pages go back after exit", test_bulk_release },
	{ "a busy scheduler gives a burst's warm slots back",
	  test_busy_decay },
	{ "stack size options", test_stack_options },
	{ "a ping-pong pair gives way after its slice", test_runnext_slice },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("proc", tests)
