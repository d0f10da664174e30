/* test_timer.c — timers: nu_sleep never returns early, wakes within a
 * bound, keeps order among many sleepers, works on an idle node (the
 * scheduler sleeps in its ring with the timer as timeout) and in the
 * eventfd fallback, and a killed sleeper exits at once. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"
#include "runtime/clock.h"

static uint64_t now_ms_x1000(void) /* microseconds */
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Generous upper bound: the machines are shared and noisy. */
#define LATE_US 50000

static _Atomic long early, late, done;

static void sleeper(void *a)
{
	uint64_t ms = (uint64_t)(uintptr_t)a;
	uint64_t t0 = now_ms_x1000();
	CU_ASSERT_EQUAL(nu_sleep(ms), 0);
	uint64_t took = now_ms_x1000() - t0;
	if (took < ms * 1000)
		atomic_fetch_add(&early, 1);
	if (took > ms * 1000 + LATE_US)
		atomic_fetch_add(&late, 1);
	atomic_fetch_add(&done, 1);
}

static void many_main(void *a)
{
	(void)a;
	unsigned seed = 7;
	for (int i = 0; i < 1000; i++)
		CU_ASSERT_FATAL(nu_spawn(sleeper, (void *)(uintptr_t)(
						       1 + rand_r(&seed) % 50)) > 0);
	nt_wait_alone();
}

static void test_many_sleepers(void)
{
	nu_config c;
	nt_config(&c, nt_two(), 10000, 1 << 20);
	atomic_store(&early, 0);
	atomic_store(&late, 0);
	atomic_store(&done, 0);
	CU_ASSERT_EQUAL(nu_start(&c, many_main, NULL), 0);
	CU_ASSERT_EQUAL(atomic_load(&done), 1000);
	CU_ASSERT_EQUAL(atomic_load(&early), 0);
	CU_ASSERT_EQUAL(atomic_load(&late), 0);
}

/* The only process sleeps: every scheduler is idle in its ring (or in
 * poll, in the fallback) and the timer must still wake it. */
static void lone_main(void *a)
{
	(void)a;
	for (uint64_t ms = 1; ms <= 20; ms += 19) {
		uint64_t t0 = now_ms_x1000();
		CU_ASSERT_EQUAL(nu_sleep(ms), 0);
		uint64_t took = now_ms_x1000() - t0;
		CU_ASSERT(took >= ms * 1000);
		CU_ASSERT(took <= ms * 1000 + LATE_US);
	}
	CU_ASSERT_EQUAL(nu_sleep(0), 0); /* a yield */
}

static void test_lone_sleeper(void)
{
	nu_config c;
	nt_config(&c, nt_two(), 1000, 1 << 20);
	CU_ASSERT_EQUAL(nu_start(&c, lone_main, NULL), 0);
	nt_config(&c, 1, 1000, 1 << 20);
	CU_ASSERT_EQUAL(nu_start(&c, lone_main, NULL), 0);
}

static _Atomic int order[3], order_n;

static void ordered(void *a)
{
	int id = (int)(intptr_t)a;
	nu_sleep((uint64_t)(10 + 15 * id));
	order[atomic_fetch_add(&order_n, 1)] = id;
}

static void order_main(void *a)
{
	(void)a;
	for (intptr_t id = 2; id >= 0; id--)
		CU_ASSERT(nu_spawn(ordered, (void *)id) > 0);
	nt_wait_alone();
}

static void test_order(void)
{
	nu_config c;
	nt_config(&c, 1, 1000, 1 << 20);
	atomic_store(&order_n, 0);
	CU_ASSERT_EQUAL(nu_start(&c, order_main, NULL), 0);
	CU_ASSERT_EQUAL(order[0], 0);
	CU_ASSERT_EQUAL(order[1], 1);
	CU_ASSERT_EQUAL(order[2], 2);
}

static void long_sleeper(void *a)
{
	(void)a;
	nu_sleep(60000);
	CU_FAIL("a killed sleeper went on");
}

static void kill_main(void *a)
{
	(void)a;
	for (int i = 0; i < 100; i++)
		CU_ASSERT(nu_spawn(long_sleeper, NULL) > 0);
	nu_sleep(5); /* let them all arm their timers */
}

/* Shutdown kills 100 processes sleeping for a minute: nu_start returns
 * long before any timer would fire. */
static void test_killed_sleepers(void)
{
	nu_config c;
	nt_config(&c, nt_two(), 1000, 1 << 20);
	uint64_t t0 = now_ms_x1000();
	CU_ASSERT_EQUAL(nu_start(&c, kill_main, NULL), 0);
	CU_ASSERT(now_ms_x1000() - t0 < 10 * 1000 * 1000);
}

static void test_outside(void)
{
	CU_ASSERT_EQUAL(nu_sleep(1), -EPERM);
	CU_ASSERT_EQUAL(nu_sleep(0), -EPERM);
}

/* ------------------------------------------------------- send_after */

static void send_after_main(void *a)
{
	(void)a;
	nu_term ref, t;
	nu_pid me = nu_self();
	uint64_t t0 = now_ms_x1000();
	CU_ASSERT_EQUAL_FATAL(nu_send_after(20, me, nu_atom("tick"), &ref), 0);
	CU_ASSERT_EQUAL(nu_receive(&t, 0), -ETIMEDOUT); /* not yet */
	CU_ASSERT_EQUAL(nu_receive(&t, 1000), 0);
	uint64_t took = now_ms_x1000() - t0;
	CU_ASSERT(took >= 20000 && took <= 20000 + LATE_US);
	CU_ASSERT(nu_term_equal(t, nu_atom("tick")));
	CU_ASSERT_EQUAL(nu_cancel_timer(ref), -ENOENT); /* already fired */

	CU_ASSERT_EQUAL_FATAL(nu_send_after(30, me, nu_int(1), &ref), 0);
	int64_t left = nu_cancel_timer(ref);
	CU_ASSERT(left > 0 && left <= 30);
	CU_ASSERT_EQUAL(nu_cancel_timer(ref), -ENOENT); /* twice */
	CU_ASSERT_EQUAL(nu_receive(&t, 60), -ETIMEDOUT); /* nothing came */
	CU_ASSERT_EQUAL(nu_cancel_timer(nu_int(3)), -EINVAL);
	CU_ASSERT_EQUAL(nu_cancel_timer(nu_make_ref()), -ENOENT);
	CU_ASSERT_EQUAL(nu_send_after(1, me, NU_NONE, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_send_after(1, 0, nu_int(1), NULL), -EINVAL);

	/* 1000 timers, every other one cancelled: exactly the rest arrive */
	nu_term refs[1000];
	for (int i = 0; i < 1000; i++)
		CU_ASSERT_EQUAL_FATAL(
			nu_send_after((uint64_t)(1 + i % 20), me, nu_int(i),
				      &refs[i]), 0);
	static char cancelled[1000], arrived[1000];
	int ncancelled = 0, got = 0;
	memset(arrived, 0, sizeof(arrived));
	for (int i = 0; i < 1000; i++) {
		/* even ones cancelled; some may have fired already */
		cancelled[i] = i % 2 == 0 && nu_cancel_timer(refs[i]) >= 0;
		ncancelled += cancelled[i];
	}
	while (nu_receive(&t, 100) == 0) {
		long i = (long)nu_int_value(t);
		CU_ASSERT_FATAL(i >= 0 && i < 1000);
		CU_ASSERT(!cancelled[i]); /* a cancelled timer never sends */
		CU_ASSERT(!arrived[i]);   /* and none sends twice */
		arrived[i] = 1;
		got++;
	}
	CU_ASSERT_EQUAL(got, 1000 - ncancelled);
	CU_ASSERT(ncancelled > 0);
	/* pending long timers at shutdown are freed (ASan's leak check) */
	for (int i = 0; i < 10; i++)
		nu_send_after(60000, me, nu_tuple(1, nu_int(i)), NULL);
}

static void quick(void *a) { (void)a; }

static void dead_dest_main(void *a)
{
	(void)a;
	nu_pid p = nu_spawn(quick, NULL);
	CU_ASSERT_EQUAL(nu_send_after(5, p, nu_int(1), NULL), 0);
	nu_sleep(20); /* fires at a dead pid: dropped */
}

static void test_send_after(void)
{
	nu_config c;
	nt_config(&c, nt_two(), 10000, 1 << 20);
	CU_ASSERT_EQUAL(nu_start(&c, send_after_main, NULL), 0);
	CU_ASSERT_EQUAL(nu_start(&c, dead_dest_main, NULL), 0);
	nu_term r;
	CU_ASSERT_EQUAL(nu_send_after(1, 1, nu_int(1), &r), -EPERM);
}

/* Waits with a long timeout that end early, 200,000 times: the timer
 * heap drops their stale entries instead of growing by one each. */
static void echo(void *a)
{
	(void)a;
	nu_term t;
	while (nu_receive(&t, 5000) == 0 && nu_pid_value(t) > 0)
		nu_send(nu_pid_value(t), nu_atom("pong"));
}

static void early_main(void *a)
{
	(void)a;
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.scheduler = 0; /* both on one scheduler: every receive parks */
	nu_pid e = nu_spawn_opt(echo, NULL, &o);
	nu_term t, me = nu_pid_term(nu_self());
	long before = 0;
	for (int i = 0; i < 200000; i++) {
		if (i == 1000)
			before = nt_heap_bytes();
		CU_ASSERT_EQUAL_FATAL(nu_send(e, me), 0);
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 60000), 0);
	}
	long grown = nt_heap_bytes() - before;
	CU_ASSERT(grown < 1 << 20); /* not compacted: ~8 MB */
	if (grown >= 1 << 20)
		fprintf(stderr, "grew %ld bytes\n", grown);
	nu_send(e, nu_atom("stop"));
}

static void test_early(void)
{
	nu_config c;
	nt_config(&c, nt_two(), 1000, 1 << 20);
	CU_ASSERT_EQUAL(nu_start(&c, early_main, NULL), 0);
}

/* A kill that lands while a sleeper arms its timer (its wake comes before
 * it parks) still ends it at once, not when the timer fires. */
static void race_sleeper(void *a)
{
	(void)a;
	nu_sleep(10000);
}

static void kill_race_main(void *a)
{
	(void)a;
	enum { ROUNDS = 40, N = 20 };
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	for (int r = 0; r < ROUNDS; r++) {
		nu_pid pid[N];
		nu_term ref[N];
		for (int i = 0; i < N; i++) {
			o.monitor_ref = &ref[i];
			pid[i] = nu_spawn_opt(race_sleeper, NULL, &o);
		}
		for (int i = 0; i < N; i++)
			nu_kill(pid[i], NU_ATOM_KILL);
		int late = 0;
		for (int i = 0; i < N; i++)
			late += nt_down_reason(ref[i], pid[i], 3000) !=
				NU_ATOM_KILLED;
		CU_ASSERT_EQUAL_FATAL(late, 0);
	}
}

static void test_kill_race(void)
{
	nu_config c;
	nt_config(&c, nt_two(), 1000, 1 << 20);
	CU_ASSERT_EQUAL(nu_start(&c, kill_race_main, NULL), 0);
}

/* ------------------------------------------------ a busy scheduler */

/* Timers on a scheduler that never goes idle: a ping-pong pair keeps it
 * (a runnext streak) with a spinner queued behind, so only the between-
 * slice polls (the cheap clock, clock.c) can fire the sleepers' timers. */
static _Atomic int busy_stop;

static void busy_main(void *a)
{
	(void)a;
	static nt_pair pair;
	CU_ASSERT_FATAL(nt_pair_start(&pair, &busy_stop) == 0);
	CU_ASSERT_FATAL(nu_spawn(nt_yielder, &busy_stop) > 0);
	nu_yield();
	for (uint64_t ms = 3; ms <= 60; ms += 19) {
		uint64_t t0 = now_ms_x1000();
		CU_ASSERT_EQUAL(nu_sleep(ms), 0);
		uint64_t took = now_ms_x1000() - t0;
		CU_ASSERT(took >= ms * 1000);
		CU_ASSERT(took <= ms * 1000 + LATE_US / 2);
		if (took > ms * 1000 + LATE_US / 2)
			fprintf(stderr, "%lu ms: %lu us\n", (unsigned long)ms,
				(unsigned long)took);
	}
	atomic_store(&busy_stop, 1);
	nt_wait_alone();
}

/* Run fn as the first process of a one-scheduler node, *stop cleared. */
static void one_scheduler(void (*fn)(void *), _Atomic int *stop)
{
	nu_config c;
	nt_config(&c, 1, 1000, 1 << 20);
	atomic_store(stop, 0);
	CU_ASSERT_EQUAL(nu_start(&c, fn, NULL), 0);
}

static void test_busy(void)
{
	one_scheduler(busy_main, &busy_stop);
}

/* Timers on a scheduler busy with long slices: two processes that each
 * compute 2 ms between yields. The clock pace (sched.c) reads the clock
 * at every pick once slices are that long, so a sleeper waits about a
 * slice past its deadline, and one more behind the other yielder; a poll
 * every 8 picks made it wait up to 8 slices (16 ms). */
#define SLICE_US 2000
static _Atomic int slow_stop;

/* arg non-NULL: wait for a message first. */
static void slow_yielder(void *a)
{
	nu_term t;
	if (a && nu_receive(&t, -1))
		return;
	while (!atomic_load(&slow_stop)) {
		uint64_t t0 = now_ms_x1000();
		while (now_ms_x1000() - t0 < SLICE_US)
			;
		nu_yield();
	}
}

/* A 1 ms sleep took `took` us: at most `slices` slices late. Then the
 * yielders stop and the caller waits until it is alone. */
static void sleep_within(uint64_t took, unsigned slices, const char *what)
{
	CU_ASSERT(took >= 1000 && took <= 1000 + slices * SLICE_US);
	if (took > 1000 + slices * SLICE_US)
		fprintf(stderr, "1 ms sleep %s: %lu us\n", what,
			(unsigned long)took);
	atomic_store(&slow_stop, 1);
	nt_wait_alone();
}

static void slow_main(void *a)
{
	(void)a;
	CU_ASSERT_FATAL(nu_spawn(slow_yielder, NULL) > 0);
	CU_ASSERT_FATAL(nu_spawn(slow_yielder, NULL) > 0);
	nu_yield();
	uint64_t worst = 0;
	for (int i = 0; i < 10; i++) {
		uint64_t t0 = now_ms_x1000();
		CU_ASSERT_EQUAL(nu_sleep(1), 0);
		uint64_t took = now_ms_x1000() - t0;
		CU_ASSERT(took >= 1000);
		worst = took > worst ? took : worst;
	}
	sleep_within(worst, 3, "among 2 ms slices");
}

static void test_slow_slices(void)
{
	one_scheduler(slow_main, &slow_stop);
}

/* The pace's blind spot, bounded (sched.c, "Clock pace"): during a streak
 * of message hand-offs, with a timer armed, the clock is read about every
 * 1,000 picks. When the hand-offs stop and 2 ms slices of yields begin, a
 * timer waits at most 8 of them, not 61 (the next global-queue check:
 * 112 ms measured) nor 1,000 (the pace's own period: 1.8 s). */
static _Atomic int pair_stop;

static void handoff_main(void *a)
{
	(void)a;
	static nt_pair pair;
	nu_pid y1 = nu_spawn(slow_yielder, "wait");
	nu_pid y2 = nu_spawn(slow_yielder, "wait");
	CU_ASSERT_FATAL(y1 > 0 && y2 > 0);
	CU_ASSERT_FATAL(nt_pair_start(&pair, &pair_stop) == 0);
	CU_ASSERT_EQUAL(nu_sleep(30), 0); /* the pair's streak, paced */
	atomic_store(&pair_stop, 1);
	CU_ASSERT_EQUAL(nu_sleep(2), 0); /* the pair ends */
	nu_send(y1, nu_atom("go"));
	nu_send(y2, nu_atom("go"));
	uint64_t t0 = now_ms_x1000();
	CU_ASSERT_EQUAL(nu_sleep(1), 0);
	uint64_t took = now_ms_x1000() - t0;
	sleep_within(took, 10, "after hand-offs");
}

static void test_handoffs_then_slices(void)
{
	atomic_store(&pair_stop, 0);
	one_scheduler(handoff_main, &slow_stop);
}

/* Ticks over ~20 ms against the exact clock's nanoseconds converted:
 * 1 when they agree within 1%. */
static int clock_agrees(void)
{
	uint64_t t0 = nu__tick(), n0 = nu__now_ns(), t1, n1;
	do {
		t1 = nu__tick();
		n1 = nu__now_ns();
	} while (n1 - n0 < 20000000u);
	uint64_t want = nu__ticks_in((n1 - n0) / 10) * 10, got = t1 - t0;
	return got > want - want / 100 && got < want + want / 100;
}

/* The cheap clock's measured rate matches the exact clock. Three tries: a
 * preemption between a tick and its exact reading (a shared machine,
 * a sanitizer) can spoil one, not a wrong rate's every one. */
static void test_cheap_clock(void)
{
	nu__clock_init();
	int ok = 0;
	for (int i = 0; i < 3 && !ok; i++)
		ok = clock_agrees();
	CU_ASSERT(ok);
	if (!nu__clock_g.counter)
		fprintf(stderr, "(no constant-rate counter: exact clock)\n");
}

static CU_TestInfo tests[] = {
	{ "1000 sleepers: none early, none late", test_many_sleepers },
	{ "a lone sleeper on an idle node", test_lone_sleeper },
	{ "sleepers wake in deadline order", test_order },
	{ "killed sleepers exit at once", test_killed_sleepers },
	{ "a kill while the sleeper arms: exit at once", test_kill_race },
	{ "nu_sleep outside a process", test_outside },
	{ "send_after fires once, cancel stops it", test_send_after },
	{ "waits ended early do not pile up in the heap", test_early },
	{ "a busy scheduler fires timers on time", test_busy },
	{ "timers among long slices wait about one slice", test_slow_slices },
	{ "after hand-offs, long slices: a timer waits <= 8 slices",
	  test_handoffs_then_slices },
	{ "the cheap clock's rate matches the exact clock", test_cheap_clock },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("timer", tests)
