/* test_lazy.c — sends to a deferred park (sched.c "Deferred park",
 * mailbox.c "Sends to a deferred park"): a push from another scheduler
 * while the park is deferred is neither lost nor reordered, a kill still
 * lands; the short way carries any term, keeps order, refuses bad terms
 * and counts in bounded mailboxes; the receiver's own message holds one
 * small term at a time; a ping-pong the short way keeps order and still
 * ends its slices; a receive waiting forever handed its message keeps
 * it ahead of later sends and signals. Partners wait with a timeout and
 * forever: a plain receive waiting forever is handed a small message
 * without a queue (mailbox.c, own_give). */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

static void cfg(nu_config *c, unsigned scheds)
{
	nt_config(c, scheds, 200000, 4 << 20);
}

/* Deferred parks (sched.c): a receive's park is committed only when the
 * next process's slice ends. A hog that never calls into the runtime
 * holds that slice; meanwhile a push from the other scheduler must be
 * taken once it ends (nothing lost), the parked process reads as
 * waiting, a kill sent meanwhile still ends it, and a send from the hog
 * comes after a push that took effect before it. */
static _Atomic int hog_on, hog_go;
static nu_pid defer_driver;

/* The hog; arg: the receiver it runs behind, to send `second` to once
 * hog_go is set, while that receiver's park is still deferred (NULL: it
 * sends nothing). */
static void hog(void *a)
{
	nu_term t;
	nu_receive(&t, -1); /* resumed, not fresh: a first run commits */
	atomic_store(&hog_on, 1);
	uint64_t t0 = nt_now_us();
	while (!atomic_load(&hog_go) && nt_now_us() - t0 < 300000)
		; /* one scheduler: nobody sets hog_go, give up after 300 ms */
	if (a) /* the short way's look at `top` (mailbox.c, lazy_room) */
		nu_send((nu_pid)(uintptr_t)a, nu_atom("second"));
	t0 = nt_now_us();
	while (nt_now_us() - t0 < 5000)
		; /* the push lands well before the slice ends */
}

/* Spawn the hog, let it park, and make it runnext: it runs once the
 * caller parks. send_back: the hog sends `second` to the caller. */
static void hog_behind(int send_back)
{
	nu_pid h = nu_spawn(hog, send_back ? (void *)(uintptr_t)nu_self()
					   : NULL);
	nu_yield(); /* the hog parks in its receive */
	nu_send(h, nu_atom("go")); /* runnext: it runs once we park */
}

static void deferred_receiver(void *a)
{
	(void)a;
	hog_behind(0);
	nu_term t;
	if (nu_receive(&t, -1) == 0)
		nu_send(defer_driver, nu_tuple(2, nu_atom("got"), t));
}

/* As deferred_receiver, but the hog sends too: report both messages, in
 * the order received. */
static void order_receiver(void *a)
{
	(void)a;
	hog_behind(1);
	nu_term t[2];
	if (nu_receive(&t[0], -1) == 0 && nu_receive(&t[1], 5000) == 0)
		nu_send(defer_driver, nu_tuple(2, t[0], t[1]));
}

/* Start a receiver fn on scheduler 0 that parks with the hog behind it;
 * returns it once the hog runs. */
static nu_pid park_behind_hog(void (*fn)(void *), nu_term *ref)
{
	atomic_store(&hog_on, 0);
	atomic_store(&hog_go, 0);
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.scheduler = 0;
	o.monitor_ref = ref;
	nu_pid r = nu_spawn_opt(fn, NULL, &o);
	while (!atomic_load(&hog_on))
		nu_sleep(1);
	return r;
}

/* A push from another scheduler that took effect while r's park was
 * deferred, then a send from the hog behind it on r's scheduler (the
 * short way, were `top` not looked at): r takes them in that order,
 * the order in which the pushes took effect (mailbox.c). */
static void deferred_order(void)
{
	nu_term ref, t;
	nu_pid r = park_behind_hog(order_receiver, &ref);
	CU_ASSERT_EQUAL(nu_send(r, nu_atom("first")), 0);
	atomic_store(&hog_go, 1);
	CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 5000), 0);
	if (nt_two() > 1) /* one scheduler: the hog sent first */
		CU_ASSERT(nu_term_equal(t, nu_tuple(2, nu_atom("first"),
						    nu_atom("second"))));
	CU_ASSERT_EQUAL(nt_down_reason(ref, r, 5000), nu_atom("normal"));
}

static void deferred_driver(void *a)
{
	nu_pid main_pid = (nu_pid)(uintptr_t)a;
	defer_driver = nu_self();
	int two = nt_two() > 1;
	nu_term ref;
	nu_pid r = park_behind_hog(deferred_receiver, &ref);
	nu_proc_info info = { 0 };
	CU_ASSERT_EQUAL(nu_process_info(r, &info), 0);
	if (two) /* one scheduler: the hog has finished */
		CU_ASSERT_EQUAL(info.state, NU_PROC_WAITING);
	CU_ASSERT_EQUAL(nu_send(r, nu_atom("ping")), 0);
	atomic_store(&hog_go, 1);
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive(&t, 5000), 0); /* lost: times out */
	CU_ASSERT(nu_term_equal(
		t, nu_tuple(2, nu_atom("got"), nu_atom("ping"))));
	CU_ASSERT_EQUAL(nt_down_reason(ref, r, 5000), nu_atom("normal"));

	r = park_behind_hog(deferred_receiver, &ref);
	CU_ASSERT_EQUAL(nu_kill(r, nu_atom("stop_now")), 0);
	atomic_store(&hog_go, 1);
	CU_ASSERT_EQUAL(nt_down_reason(ref, r, 5000), nu_atom("stop_now"));
	deferred_order();
	nu_send(main_pid, nu_atom("done"));
}

static void deferred_main(void *a)
{
	(void)a;
	nt_on_sched(deferred_driver, (void *)(uintptr_t)nu_self(), 1);
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive(&t, 30000), 0);
	nt_wait_alone();
}

static void test_deferred_park(void)
{
	nu_config cf;
	cfg(&cf, nt_two());
	CU_ASSERT_EQUAL(nu_start(&cf, deferred_main, NULL), 0);
}

/* A partner's receive timeout: arg NULL, 5 s (its message is queued and
 * taken); else forever (a small one is handed straight to the waiting
 * receive: mailbox.c, own_give). */
static int64_t wait_of(void *arg)
{
	return arg ? -1 : 5000;
}

/* Sends to a deferred park (mailbox.c send_lazy, nu_send's short way):
 * on one scheduler a partner that answers and waits again is parked,
 * its park deferred, whenever we run, so each of our sends finds it so.
 * Every kind of term comes back intact and freeable; two sends in a row
 * (the second takes the long way) keep their order; a bad term is
 * -EINVAL and leaves the partner waiting; a bounded mailbox still counts
 * what the short way hands over. a: the partners' wait (wait_of). */
static void lazy_echo(void *a)
{
	nu_term t;
	while (nu_receive(&t, wait_of(a)) == 0 &&
	       nu_term_type(t) == NU_T_TUPLE) {
		nu_send(nu_pid_value(nu_tuple_elem(t, 0)), nu_tuple_elem(t, 1));
		nu_term_free(t);
	}
}

/* Send {self(), x} to e, expect x back. */
static void lazy_round(nu_pid e, nu_term x)
{
	nu_term back;
	size_t base = nu_heap_used();
	CU_ASSERT_EQUAL(nu_send(e, nu_tuple(2, nu_pid_term(nu_self()), x)), 0);
	CU_ASSERT_EQUAL_FATAL(nu_receive(&back, 5000), 0);
	CU_ASSERT(nu_term_equal(back, x));
	nu_term_free(back);
	/* the received copy went back; the {self(), x} we built stays */
	CU_ASSERT(nu_heap_used() <= base + 64);
}

static void lazy_main(void *a)
{
	nu_pid e = nu_spawn(lazy_echo, a);
	nu_term big = NU_NIL, kinds[8];
	for (int i = 0; i < 300; i++) /* beyond a small block */
		big = nu_cons(nu_tuple(2, nu_int(i), nu_float(i)), big);
	static const char blob[2000];
	kinds[0] = nu_atom("hello");
	kinds[1] = nu_int(-42);
	kinds[2] = nu_tuple(3, nu_atom("a"), nu_int(1), nu_pid_term(e));
	kinds[3] = big;
	kinds[4] = nu_binary(blob, sizeof(blob));
	kinds[5] = nu_make_ref();
	kinds[6] = nu_float(2.5);
	CU_ASSERT_EQUAL(nu_term_parse("#{k => [1, {2}], \"s\" => <<1,2>>}",
				      &kinds[7], NULL), 0);
	for (int r = 0; r < 3; r++)
		for (int k = 0; k < 8; k++)
			lazy_round(e, kinds[k]);
	/* two in a row: the first wakes e, the second finds it runnable */
	nu_term me = nu_pid_term(nu_self()), back;
	CU_ASSERT_EQUAL(nu_send(e, nu_tuple(2, me, nu_int(1))), 0);
	CU_ASSERT_EQUAL(nu_send(e, nu_tuple(2, me, nu_int(2))), 0);
	for (int i = 1; i <= 2; i++) {
		CU_ASSERT_EQUAL_FATAL(nu_receive(&back, 5000), 0);
		CU_ASSERT_EQUAL(back, nu_int(i));
	}
	static uint64_t bad[2]; /* a boxed term with no valid header */
	CU_ASSERT_EQUAL(nu_send(e, (nu_term)(uintptr_t)bad), -EINVAL);
	CU_ASSERT_EQUAL(nu_send(e, NU_NONE), -EINVAL);
	lazy_round(e, nu_atom("still_there"));
	nu_send(e, nu_atom("stop"));

	/* a bounded mailbox (1, fail): the send that wakes it counts */
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.max_mailbox = 1;
	o.mailbox_policy = NU_MAILBOX_FAIL;
	nu_pid b = nu_spawn_opt(lazy_echo, a, &o);
	lazy_round(b, nu_atom("warm"));
	CU_ASSERT_EQUAL(nu_send(b, nu_tuple(2, me, nu_int(3))), 0);
	CU_ASSERT_EQUAL(nu_send(b, nu_tuple(2, me, nu_int(4))), -EAGAIN);
	CU_ASSERT_EQUAL_FATAL(nu_receive(&back, 5000), 0);
	CU_ASSERT_EQUAL(back, nu_int(3));
	lazy_round(b, nu_atom("room_again"));
	nu_send(b, nu_atom("stop"));
	nt_wait_alone();
}

/* The receiver's own message (mailbox.c, "Sends to a deferred park")
 * holds one small flat tuple at a time: while a received one is kept,
 * the next goes in a block. Kept terms stay intact whatever follows,
 * count in nu_heap_used until freed, free in any order, move with
 * nu_realloc, and the own message serves again once its term is gone. */
#define HOLD_N 6

static void hold_check(nu_term *held, int n, int skip)
{
	for (int i = 0; i < n; i++)
		if (i != skip)
			CU_ASSERT(nu_term_type(held[i]) == NU_T_TUPLE &&
				  nu_tuple_elem(held[i], 1) == nu_int(i));
}

static void lazy_holder(void *a)
{
	nu_term held[HOLD_N], t;
	nu_pid from = 0;
	size_t base = nu_heap_used();
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < HOLD_N; i++) {
			CU_ASSERT_EQUAL_FATAL(
				nu_receive(&held[i], wait_of(a)), 0);
			from = nu_pid_value(nu_tuple_elem(held[i], 0));
			hold_check(held, i + 1, -1);
			nu_send(from, nu_atom("ok"));
		}
		CU_ASSERT(nu_heap_used() >= base + HOLD_N * 24);
		/* the first went in the own message: move it to the heap */
		uint64_t *moved = nu_realloc((void *)(uintptr_t)held[0], 64);
		CU_ASSERT_FATAL(moved != NULL);
		CU_ASSERT(moved[0] == ((uint64_t *)(uintptr_t)held[1])[0]);
		CU_ASSERT(moved[2] == (uint64_t)nu_int(0));
		nu_free(moved);
		for (int i = HOLD_N - 1; i >= 1; i -= 2) /* odd, then even */
			nu_term_free(held[i]);
		hold_check(held, HOLD_N - 1, 0);
		for (int i = HOLD_N - 2; i >= 2; i -= 2)
			nu_term_free(held[i]);
		CU_ASSERT(nu_heap_used() <= base);
	}
	CU_ASSERT_EQUAL(nu_receive(&t, wait_of(a)), 0); /* kept as we exit */
	CU_ASSERT(nu_term_type(t) == NU_T_TUPLE);
	nu_send(from, nu_atom("bye"));
}

static void lazy_hold_main(void *a)
{
	nu_term me = nu_pid_term(nu_self()), back;
	for (int k = 0; k < 2; k++) { /* the second in the first's slot */
		nu_pid h = nu_spawn(lazy_holder, a);
		CU_ASSERT_FATAL(h > 0);
		for (int i = 0; i < 2 * HOLD_N; i++) {
			nu_term m = nu_tuple(2, me, nu_int(i % HOLD_N));
			CU_ASSERT_EQUAL(nu_send(h, m), 0);
			nu_term_free(m);
			CU_ASSERT_EQUAL_FATAL(nu_receive(&back, 5000), 0);
			CU_ASSERT_EQUAL(back, nu_atom("ok"));
		}
		CU_ASSERT_EQUAL(nu_send(h, nu_tuple(2, me, nu_atom("x"))), 0);
		CU_ASSERT_EQUAL_FATAL(nu_receive(&back, 5000), 0);
		CU_ASSERT_EQUAL(back, nu_atom("bye"));
		nt_wait_alone();
	}
}

/* A ping-pong by the short way (mailbox.c, send_own) keeps the order of
 * its messages and still lets others run: with the default budget its
 * streak gives way at the end of its slice (sched.c, "Hand-off checks",
 * ~2 ms), and with a budget of 2 reductions a slice ends every other
 * send or receive, so a process that only yields runs about once a round
 * trip. */
static _Atomic int pp_done;
static _Atomic long pp_bystander_runs;

static void pp_bystander(void *a)
{
	(void)a;
	while (!atomic_load(&pp_done)) {
		atomic_fetch_add(&pp_bystander_runs, 1);
		nu_yield();
	}
}

static void pp_partner(void *a)
{
	nu_term t;
	long n = 0;
	while (nu_receive(&t, wait_of(a)) == 0 && nu_term_type(t) == NU_T_PID)
		nu_send(nu_pid_value(t), nu_int(n++));
}

/* Round trips with pp_partner until ms have passed and at least min_n
 * were made; returns how many. */
static long pp_exchange(nu_pid e, long ms, long min_n)
{
	nu_term me = nu_pid_term(nu_self()), back;
	uint64_t end = nt_now_us() + (uint64_t)ms * 1000u;
	long bad = 0, i = 0;
	for (; i < min_n || (i % 1000 || nt_now_us() < end); i++) {
		CU_ASSERT_EQUAL_FATAL(nu_send(e, me), 0);
		CU_ASSERT_EQUAL_FATAL(nu_receive(&back, 5000), 0);
		bad += back != nu_int(i);
	}
	CU_ASSERT_EQUAL(bad, 0);
	return i;
}

/* a: bit 0, a budget of 2 reductions; bit 1, the partner waits forever */
static void lazy_slices_main(void *a)
{
	long small_budget = (long)(intptr_t)a & 1;
	atomic_store(&pp_done, 0);
	atomic_store(&pp_bystander_runs, 0);
	nu_pid e = nu_spawn(pp_partner,
			    (void *)((intptr_t)a & 2)); /* (wait_of) */
	CU_ASSERT_FATAL(e > 0 && nu_spawn(pp_bystander, NULL) > 0);
	long n = pp_exchange(e, small_budget ? 0 : 30, 20000);
	long runs = atomic_load(&pp_bystander_runs);
	if (small_budget) {
		CU_ASSERT(runs >= n / 4);
	} else { /* ~15 slices of 2 ms */
		CU_ASSERT(runs >= 4);
	}
	atomic_store(&pp_done, 1);
	nu_send(e, nu_atom("stop"));
	nt_wait_alone();
}

static void test_lazy_slices(void)
{
	for (intptr_t forever = 0; forever <= 2; forever += 2) {
		nu_config cf;
		cfg(&cf, 1);
		CU_ASSERT_EQUAL(nu_start(&cf, lazy_slices_main,
					 (void *)forever), 0);
		cfg(&cf, 1);
		cf.reductions = 2;
		CU_ASSERT_EQUAL(nu_start(&cf, lazy_slices_main,
					 (void *)(forever | 1)), 0);
	}
}

/* Run fn on one scheduler with partners that wait 5 s, then forever. */
static void start_both_waits(nu_fn fn)
{
	for (intptr_t forever = 0; forever <= 1; forever++) {
		nu_config cf;
		cfg(&cf, 1);
		CU_ASSERT_EQUAL(nu_start(&cf, fn, (void *)forever), 0);
	}
}

static void test_lazy_hold(void)
{
	start_both_waits(lazy_hold_main);
}

static void test_lazy_send(void)
{
	start_both_waits(lazy_main);
}

/* A receive waiting forever is handed a send the short way (mailbox.c,
 * own_give): the message is the receive's at once (not queued: mailbox
 * length 0), ahead of everything sent after it, an exit signal included;
 * a kill that comes after it still ends the receiver, and what it was
 * handed goes with it. */
static void give_partner(void *a)
{
	nu_pid main_pid = (nu_pid)(uintptr_t)a;
	nu_trap_exit(1);
	nu_term t;
	for (;;) {
		nu_send(main_pid, nu_atom("ready")); /* then park: main runs */
		if (nu_receive(&t, -1) || nu_term_type(t) != NU_T_TUPLE)
			return;
		nu_send(main_pid, nu_tuple(2, nu_atom("got"), t));
		nu_term_free(t);
	}
}

/* Wait for give_partner's next "ready": it is then parked in its
 * receive, its park deferred behind us. */
static void give_ready(void)
{
	nu_term t;
	CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 5000), 0);
	CU_ASSERT_EQUAL(t, nu_atom("ready"));
}

static void give_main(void *a)
{
	(void)a;
	nu_term ref, t;
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.monitor_ref = &ref;
	nu_pid r = nu_spawn_opt(give_partner, (void *)(uintptr_t)nu_self(), &o);
	CU_ASSERT_FATAL(r > 0);
	nu_term m1 = nu_tuple(2, nu_atom("one"), nu_int(1));
	for (int round = 0; round < 3; round++) {
		give_ready();
		CU_ASSERT_EQUAL(nu_send(r, m1), 0);
		nu_proc_info info;
		CU_ASSERT_EQUAL(nu_process_info(r, &info), 0);
		CU_ASSERT_EQUAL(info.mailbox_len, 0); /* handed, not queued */
		/* these come after it: a queued message, an exit signal */
		CU_ASSERT_EQUAL(nu_send(r, nu_tuple(1, nu_int(2))), 0);
		CU_ASSERT_EQUAL(nu_kill(r, nu_atom("ouch")), 0);
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 5000), 0);
		CU_ASSERT(nu_term_equal(t, nu_tuple(2, nu_atom("got"), m1)));
		give_ready();
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 5000), 0);
		CU_ASSERT(nu_term_equal(
			t, nu_tuple(2, nu_atom("got"), nu_tuple(1, nu_int(2)))));
		give_ready();
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 5000), 0);
		CU_ASSERT(nu_term_equal(
			t, nu_tuple(2, nu_atom("got"),
				    nu_tuple(3, nu_atom("EXIT"),
					     nu_pid_term(nu_self()),
					     nu_atom("ouch")))));
	}
	give_ready();
	CU_ASSERT_EQUAL(nu_send(r, m1), 0); /* handed, then killed */
	CU_ASSERT_EQUAL(nu_kill(r, nu_atom("kill")), 0);
	CU_ASSERT_EQUAL(nt_down_reason(ref, r, 5000), nu_atom("killed"));
	nt_wait_alone();
}

static void test_lazy_give(void)
{
	nu_config cf;
	cfg(&cf, 1);
	CU_ASSERT_EQUAL(nu_start(&cf, give_main, NULL), 0);
}

static CU_TestInfo tests[] = {
	{ "a deferred park loses no push and no kill, keeps push order",
	  test_deferred_park },
	{ "sends to a deferred park: any term, order, bad terms, bounds",
	  test_lazy_send },
	{ "a receiver's own message: kept terms intact, freed in any order",
	  test_lazy_hold },
	{ "a ping-pong the short way keeps order and ends its slices",
	  test_lazy_slices },
	{ "a receive waiting forever handed a message: order, signals, kill",
	  test_lazy_give },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("lazy", tests)
