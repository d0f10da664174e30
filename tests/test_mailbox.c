/* test_mailbox.c — send and receive: copies, per-sender order under
 * concurrency, timeouts, dead and bad pids, a 100,000-process ring,
 * processes that exit with unread messages (ASan's leak check runs this
 * suite in CI), and the receive park's races (pushes, timeouts, priority
 * sends, kills) and take boundary. Sends to a deferred park: test_lazy.c. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

static void cfg(nu_config *c, unsigned scheds)
{
	nt_config(c, scheds, 200000, 4 << 20);
}

/* ------------------------------------------------------------ copies */

static nu_pid copy_parent;

static void copy_child(void *a)
{
	(void)a;
	nu_term t;
	CU_ASSERT_EQUAL_FATAL(nu_receive(&t, -1), 0);
	nu_term expect;
	CU_ASSERT_EQUAL_FATAL(
		nu_term_parse("{hello, [1,2,3], <<\"bin\">>, #{a => 1.5}}",
			      &expect, NULL), 0);
	CU_ASSERT(nu_term_equal(t, expect));
	CU_ASSERT_EQUAL(nu_send(copy_parent, t), 0); /* echo it back */
}

static void copy_main(void *a)
{
	(void)a;
	copy_parent = nu_self();
	nu_term t;
	CU_ASSERT_EQUAL_FATAL(
		nu_term_parse("{hello, [1,2,3], <<\"bin\">>, #{a => 1.5}}", &t,
			      NULL), 0);
	nu_pid child = nu_spawn(copy_child, NULL);
	CU_ASSERT_EQUAL(nu_send(child, t), 0);
	nu_term back;
	CU_ASSERT_EQUAL_FATAL(nu_receive(&back, 5000), 0);
	CU_ASSERT(nu_term_equal(back, t));
	CU_ASSERT_NOT_EQUAL(back, t); /* a copy, not the same cells */
	CU_ASSERT_EQUAL(nu_send(nu_self(), nu_int(7)), 0); /* to self */
	CU_ASSERT_EQUAL(nu_receive(&back, 0), 0);
	CU_ASSERT_EQUAL(back, nu_int(7));
	/* every size across the small block's edge: flat tuples, nested
	 * ones and lists that fit, fill or overflow it (the one-pass copy
	 * gives up part way and the measured copy takes over) */
	for (int n = 0; n < 24; n++) {
		nu_term e[24], lst = NU_NIL;
		for (int i = 0; i < n; i++) {
			e[i] = nu_int(i);
			lst = nu_cons(nu_tuple(2, nu_int(i), nu_float(i)), lst);
		}
		nu_term ts[3] = { nu_tuplev(n, e), lst,
				  nu_tuple(3, nu_atom("x"), nu_tuplev(n, e),
					   nu_make_ref()) };
		for (int k = 0; k < 3; k++) {
			CU_ASSERT_EQUAL(nu_send(nu_self(), ts[k]), 0);
			CU_ASSERT_EQUAL(nu_receive(&back, 0), 0);
			CU_ASSERT(nu_term_equal(back, ts[k]));
			nu_term_free(back);
		}
	}
}

static void test_copies(void)
{
	nu_config c;
	cfg(&c, nt_two());
	CU_ASSERT_EQUAL(nu_start(&c, copy_main, NULL), 0);
}

/* ------------------------------------------------------------- order */

#define SENDERS 4
#define PER 20000
static nu_pid order_sink;

static void order_sender(void *a)
{
	long id = (long)a;
	for (long i = 0; i < PER; i++)
		CU_ASSERT_EQUAL_FATAL(
			nu_send(order_sink, nu_tuple(2, nu_int(id), nu_int(i))),
			0);
}

static void order_main(void *a)
{
	(void)a;
	order_sink = nu_self();
	for (long id = 0; id < SENDERS; id++)
		CU_ASSERT(nu_spawn(order_sender, (void *)id) > 0);
	long next[SENDERS] = { 0 };
	for (long k = 0; k < SENDERS * PER; k++) {
		nu_term t;
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 10000), 0);
		long id = (long)nu_int_value(nu_tuple_elem(t, 0));
		long seq = (long)nu_int_value(nu_tuple_elem(t, 1));
		CU_ASSERT_FATAL(id >= 0 && id < SENDERS);
		CU_ASSERT_EQUAL_FATAL(seq, next[id]);
		next[id]++;
	}
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive(&t, 0), -ETIMEDOUT); /* nothing extra */
}

static void test_order(void)
{
	nu_config c;
	cfg(&c, nt_two());
	CU_ASSERT_EQUAL(nu_start(&c, order_main, NULL), 0);
}

/* ---------------------------------------------------------- timeouts */

static nu_pid late_to;

static void late_sender(void *a)
{
	nu_sleep((uint64_t)(uintptr_t)a);
	nu_send(late_to, nu_atom("late"));
}

static void timeout_main(void *a)
{
	(void)a;
	nu_term t;
	uint64_t t0 = nt_now_us();
	CU_ASSERT_EQUAL(nu_receive(&t, 0), -ETIMEDOUT);
	CU_ASSERT_EQUAL(nu_receive(&t, 20), -ETIMEDOUT);
	uint64_t took = nt_now_us() - t0;
	CU_ASSERT(took >= 20000 && took < 20000 + 50000);
	late_to = nu_self();
	CU_ASSERT(nu_spawn(late_sender, (void *)(uintptr_t)10) > 0);
	t0 = nt_now_us();
	CU_ASSERT_EQUAL(nu_receive(&t, 2000), 0); /* arrives before */
	CU_ASSERT(nt_now_us() - t0 < 1000000);
	CU_ASSERT(nu_term_equal(t, nu_atom("late")));
	/* The disarmed timeout must not fire into a later wait. */
	CU_ASSERT(nu_spawn(late_sender, (void *)(uintptr_t)30) > 0);
	CU_ASSERT_EQUAL(nu_receive(&t, -1), 0);
	CU_ASSERT_EQUAL(nu_receive(&t, 0), -ETIMEDOUT);
}

static void test_timeouts(void)
{
	nu_config c;
	cfg(&c, nt_two());
	CU_ASSERT_EQUAL(nu_start(&c, timeout_main, NULL), 0);
}

/* ------------------------------------------------- bad and dead pids */

static void quick(void *a) { (void)a; }

static void dead_main(void *a)
{
	(void)a;
	nu_term t;
	nu_pid p = nu_spawn(quick, NULL);
	nt_wait_alone();
	CU_ASSERT_EQUAL(nu_send(p, nu_int(1)), 0); /* silent no-op */
	CU_ASSERT_EQUAL(nu_send(0, nu_int(1)), -EINVAL);
	CU_ASSERT_EQUAL(nu_send(-3, nu_int(1)), -EINVAL);
	CU_ASSERT_EQUAL(nu_send(nu_self(), NU_NONE), -EINVAL);
	CU_ASSERT_EQUAL(nu_receive(NULL, 0), -EINVAL);
	CU_ASSERT_EQUAL(nu_receive(&t, -2), -EINVAL);
	CU_ASSERT_EQUAL(nu_receive(&t, 0), -ETIMEDOUT);
}

static void test_bad_input(void)
{
	nu_term t;
	CU_ASSERT_EQUAL(nu_send(1, nu_int(1)), -ESRCH);
	CU_ASSERT_EQUAL(nu_receive(&t, 0), -EPERM);
	nu_config c;
	cfg(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, dead_main, NULL), 0);
}

/* --------------------------------------------- unread messages at exit */

static void hoarder(void *a)
{
	(void)a;
	nu_sleep(20); /* exits with everything unread */
}

static void unread_main(void *a)
{
	(void)a;
	for (int i = 0; i < 100; i++) {
		nu_pid p = nu_spawn(hoarder, NULL);
		for (int k = 0; k < 20; k++)
			nu_send(p, nu_tuple(2, nu_int(k), nu_binary("xyz", 3)));
	}
	nt_wait_alone();
}

static void test_unread(void)
{
	nu_config c;
	cfg(&c, nt_two());
	CU_ASSERT_EQUAL(nu_start(&c, unread_main, NULL), 0);
}

/* -------------------------------------------------------------- ring */

#define RING 100000
#define LAPS 10
static nu_pid ring_next[RING];
static _Atomic long ring_bad;

static void ring_member(void *a)
{
	long i = (long)a;
	for (;;) {
		nu_term t;
		if (nu_receive(&t, -1))
			atomic_fetch_add(&ring_bad, 1);
		nu_send(ring_next[i], t);
		if (nu_int_value(t) == 0)
			return;
	}
}

/* 100,000 processes pass a token 10 laps: the main process is member 0
 * and counts the laps down; nothing may be lost. */
static void ring_main(void *a)
{
	(void)a;
	ring_next[RING - 1] = nu_self();
	for (long i = RING - 2; i >= 0; i--) {
		ring_next[i] = nu_spawn(ring_member, (void *)(i + 1));
		CU_ASSERT_FATAL(ring_next[i] > 0);
	}
	/* member i forwards to ring_next[i]; the head is ring_next[0]'s
	 * predecessor, i.e. us: send to the first spawned member. */
	nu_pid head = ring_next[0];
	for (long lap = LAPS; lap >= 1; lap--) {
		nu_term t;
		CU_ASSERT_EQUAL_FATAL(nu_send(head, nu_int(lap)), 0);
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 30000), 0);
		CU_ASSERT_EQUAL_FATAL(t, nu_int(lap));
	}
	nu_term t;
	nu_send(head, nu_int(0)); /* stop lap: everyone returns */
	CU_ASSERT_EQUAL(nu_receive(&t, 30000), 0);
	nt_wait_alone();
}

static void test_ring(void)
{
	nu_config c;
	cfg(&c, nt_two());
	atomic_store(&ring_bad, 0);
	CU_ASSERT_EQUAL(nu_start(&c, ring_main, NULL), 0);
	CU_ASSERT_EQUAL(atomic_load(&ring_bad), 0);
}

/* ------------------------------------------- freeing received terms */

static nu_pid free_sink;

static void free_sender(void *a)
{
	(void)a;
	nu_term t = nu_tuple(3, nu_atom("m"), nu_binary("0123456789", 10),
			     nu_list(2, (nu_term[]){ nu_int(1), nu_float(2.5) }));
	for (int i = 0; i < 200000; i++)
		CU_ASSERT_EQUAL_FATAL(nu_send(free_sink, t), 0);
}

/* 200,000 messages: the receiver frees each one, so neither its heap nor
 * the blocks the messages came in grow (without nu_term_free: ~30 MiB). */
static void free_main(void *a)
{
	(void)a;
	free_sink = nu_self();
	CU_ASSERT(nu_spawn(free_sender, NULL) > 0);
	size_t base = nu_heap_used();
	long bytes = nt_heap_bytes();
	nu_term t;
	for (int i = 0; i < 200000; i++) {
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 10000), 0);
		CU_ASSERT_EQUAL_FATAL(nu_tuple_size(t), 3);
		if (i == 0) /* a received term counts in the heap's use */
			CU_ASSERT(nu_heap_used() > base);
		nu_term_free(t);
	}
	CU_ASSERT_EQUAL(nu_heap_used(), base);
	CU_ASSERT(nt_heap_bytes() - bytes < 1 << 20);
	nu_term_free(nu_int(3)); /* immediates: nothing to do */
	nu_term_free(NU_NONE);
	/* a received block can be reallocated like any heap block */
	nu_send(nu_self(), nu_binary("abcdef", 6));
	CU_ASSERT_EQUAL(nu_receive(&t, 0), 0);
	void *old = (void *)(t & ~(nu_term)7);
	char *big = nu_realloc(old, 4096);
	CU_ASSERT_PTR_NOT_NULL(big);
	nu_free(big);
	/* kept ones go at exit (the leak check sees them otherwise) */
	for (int i = 0; i < 100; i++)
		nu_send(nu_self(), nu_tuple(2, nu_int(i), nu_binary("x", 1)));
	for (int i = 0; i < 100; i++)
		CU_ASSERT_EQUAL(nu_receive(&t, 0), 0);
}

static void test_free_received(void)
{
	nu_config c;
	nt_config(&c, nt_two(), 1000, 1 << 20);
	CU_ASSERT_EQUAL(nu_start(&c, free_main, NULL), 0);
}

/* ------------------------------------------------- selective receive */

static nu_pattern *compile(const char *src)
{
	nu_pattern *p = NULL;
	CU_ASSERT_EQUAL_FATAL(nu_pattern_compile(src, &p, NULL), 0);
	return p;
}

static nu_pid sel_to;

static void late_junk_then_match(void *a)
{
	(void)a;
	for (int i = 0; i < 5; i++)
		nu_send(sel_to, nu_tuple(2, nu_atom("junk"), nu_int(i)));
	nu_sleep(10);
	nu_send(sel_to, nu_tuple(2, nu_atom("data"), nu_int(99)));
}

static int is_even_int(nu_term t, void *arg)
{
	(void)arg;
	return nu_is_int(t) && nu_int_value(t) % 2 == 0;
}

static void select_main(void *a)
{
	(void)a;
	nu_pid me = nu_self();
	nu_term r1 = nu_make_ref(), r2 = nu_make_ref(), t;
	nu_send(me, nu_tuple(2, nu_atom("other"), nu_int(1)));
	nu_send(me, nu_tuple(3, nu_atom("reply"), r1, nu_atom("a")));
	nu_send(me, nu_tuple(3, nu_atom("reply"), r2, nu_atom("b")));
	nu_send(me, nu_atom("junk"));

	nu_pattern *reply = compile("{reply, Ref, Value}");
	nu_term pre[2] = { r2, NU_NONE }, vars[2];
	nu_clause c = { reply, pre, vars };
	CU_ASSERT_EQUAL(nu_receive_select(&c, 1, 0, &t), 0);
	CU_ASSERT(nu_term_equal(vars[1], nu_atom("b")));
	CU_ASSERT(nu_term_equal(vars[0], r2));
	/* the others stay, in order */
	const char *rest[] = { "{other, 1}", NULL, "junk" };
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 0), 0);
		nu_term e;
		if (rest[i]) {
			CU_ASSERT_EQUAL_FATAL(nu_term_parse(rest[i], &e, NULL), 0);
		} else {
			e = nu_tuple(3, nu_atom("reply"), r1, nu_atom("a"));
		}
		CU_ASSERT(nu_term_equal(t, e));
	}

	/* two clauses, a match that comes after non-matching messages */
	nu_pattern *exit_p = compile("{'EXIT', Pid, Reason}");
	nu_pattern *data_p = compile("{data, X}");
	nu_term v1[2], v2[1];
	nu_clause two[2] = { { exit_p, NULL, v1 }, { data_p, NULL, v2 } };
	CU_ASSERT_EQUAL(nu_receive_select(two, 2, 20, &t), -ETIMEDOUT);
	sel_to = me;
	CU_ASSERT(nu_spawn(late_junk_then_match, NULL) > 0);
	CU_ASSERT_EQUAL(nu_receive_select(two, 2, 2000, &t), 1);
	CU_ASSERT_EQUAL(v2[0], nu_int(99));
	for (int i = 0; i < 5; i++) { /* the junk waited, in order */
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 0), 0);
		CU_ASSERT_EQUAL(nu_tuple_elem(t, 1), nu_int(i));
	}

	/* a pattern its quick test decides ({msg, _}: the tag, the arity,
	 * the rest `_`) takes only what matches it, in order */
	const char *near[] = { "{msg}", "{msg, 1, 2}", "{other, 1}",
			       "[msg, 1]", "{<<\"msg\">>, 1}", "{1, msg}" };
	const char *hits[] = { "{msg, {a, [b]}}", "{msg, 2}" };
	for (int i = 0; i < 8; i++) {
		nu_term e;
		CU_ASSERT_EQUAL_FATAL(nu_term_parse(i < 6 ? near[i] : hits[i - 6],
						    &e, NULL), 0);
		nu_send(me, e);
	}
	nu_pattern *msg_p = compile("{msg, _}"), *stop_p = compile("{stop, _}");
	nu_clause one = { msg_p, NULL, NULL };
	for (int i = 0; i < 2; i++) {
		nu_term e;
		CU_ASSERT_EQUAL_FATAL(nu_receive_select(&one, 1, 0, &t), 0);
		CU_ASSERT_EQUAL_FATAL(nu_term_parse(hits[i], &e, NULL), 0);
		CU_ASSERT(nu_term_equal(t, e));
	}
	CU_ASSERT_EQUAL(nu_receive_select(&one, 1, 0, &t), -ETIMEDOUT);
	nu_send(me, nu_tuple(2, nu_atom("data"), nu_int(5)));
	nu_clause pair[2] = { { stop_p, NULL, NULL }, { data_p, NULL, v2 } };
	CU_ASSERT_EQUAL(nu_receive_select(pair, 2, 0, &t), 1);
	CU_ASSERT_EQUAL(v2[0], nu_int(5));
	for (int i = 0; i < 6; i++) { /* the near misses waited, in order */
		nu_term e;
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 0), 0);
		CU_ASSERT_EQUAL_FATAL(nu_term_parse(near[i], &e, NULL), 0);
		CU_ASSERT(nu_term_equal(t, e));
	}
	nu_pattern_free(msg_p);
	nu_pattern_free(stop_p);

	/* the oldest message taken at once (mailbox.c, head_select): the
	 * first clause that takes it wins, past the eight whose quick tests
	 * a scan keeps too, and a priority message still comes first */
	nu_pattern *miss_p[8], *any_p = compile("{_, _}");
	nu_clause many[9];
	for (int i = 0; i < 8; i++) {
		char text[32];
		snprintf(text, sizeof(text), "{miss%d, _}", i);
		miss_p[i] = compile(text);
		many[i] = (nu_clause){ miss_p[i], NULL, NULL };
	}
	many[8] = (nu_clause){ data_p, NULL, v2 };
	nu_send(me, nu_tuple(2, nu_atom("data"), nu_int(7)));
	CU_ASSERT_EQUAL(nu_receive_select(many, 9, 0, &t), 8);
	CU_ASSERT_EQUAL(v2[0], nu_int(7));
	nu_clause both[2] = { { any_p, NULL, NULL }, { data_p, NULL, v2 } };
	nu_send(me, nu_tuple(2, nu_atom("data"), nu_int(8)));
	CU_ASSERT_EQUAL(nu_receive_select(both, 2, 0, &t), 0);
	CU_ASSERT_EQUAL(nu_tuple_elem(t, 1), nu_int(8));
	nu_send(me, nu_tuple(2, nu_atom("data"), nu_int(9)));
	nu_send_priority(me, nu_tuple(2, nu_atom("data"), nu_int(10)));
	for (int i = 10; i >= 9; i--) {
		CU_ASSERT_EQUAL(nu_receive_select(&many[8], 1, 0, &t), 0);
		CU_ASSERT_EQUAL(v2[0], nu_int(i));
	}
	CU_ASSERT_EQUAL(nu_receive_select(many, 9, 0, &t), -ETIMEDOUT);
	for (int i = 0; i < 8; i++)
		nu_pattern_free(miss_p[i]);
	nu_pattern_free(any_p);

	/* the predicate form */
	for (int i = 1; i <= 5; i++)
		nu_send(me, nu_int(i));
	CU_ASSERT_EQUAL(nu_receive_if(is_even_int, NULL, &t, 0), 0);
	CU_ASSERT_EQUAL(t, nu_int(2));
	CU_ASSERT_EQUAL(nu_receive_if(is_even_int, NULL, &t, 0), 0);
	CU_ASSERT_EQUAL(t, nu_int(4));
	CU_ASSERT_EQUAL(nu_receive_if(is_even_int, NULL, &t, 0), -ETIMEDOUT);
	CU_ASSERT_EQUAL(nu_receive(&t, 0), 0);
	CU_ASSERT_EQUAL(t, nu_int(1));

	/* bad input */
	nu_clause novars = { reply, NULL, NULL };
	CU_ASSERT_EQUAL(nu_receive_select(NULL, 1, 0, &t), -EINVAL);
	CU_ASSERT_EQUAL(nu_receive_select(&c, 0, 0, &t), -EINVAL);
	CU_ASSERT_EQUAL(nu_receive_select(&novars, 1, 0, &t), -EINVAL);
	CU_ASSERT_EQUAL(nu_receive_select(&c, 1, -5, &t), -EINVAL);
	CU_ASSERT_EQUAL(nu_receive_if(NULL, NULL, &t, 0), -EINVAL);
	nu_pattern_free(reply);
	nu_pattern_free(exit_p);
	nu_pattern_free(data_p);
}

/* The ref trick: with 10,000 unrelated messages queued, replies carrying
 * a fresh reference are found (past the receive marker) and the queue is
 * left as it was; a reply to an older reference (the marker moved on) is
 * still found by a full scan. */
static void ref_trick_main(void *a)
{
	(void)a;
	nu_pid me = nu_self();
	for (int i = 0; i < 10000; i++)
		nu_send(me, nu_tuple(2, nu_atom("junk"), nu_int(i)));
	nu_pattern *pat = compile("{R, V}");
	nu_term pre[2], vars[2], t;
	nu_clause c = { pat, pre, vars };
	pre[1] = NU_NONE;
	for (int k = 0; k < 2000; k++) {
		nu_term r = nu_make_ref();
		nu_send(me, nu_tuple(2, r, nu_int(k)));
		pre[0] = r;
		CU_ASSERT_EQUAL_FATAL(nu_receive_select(&c, 1, 0, &t), 0);
		CU_ASSERT_EQUAL_FATAL(vars[1], nu_int(k));
		nu_term_free(t);
	}
	nu_term old = nu_make_ref();
	nu_send(me, nu_tuple(2, old, nu_atom("late")));
	(void)nu_make_ref(); /* the marker moves past the old reply */
	pre[0] = old;
	CU_ASSERT_EQUAL(nu_receive_select(&c, 1, 0, &t), 0);
	CU_ASSERT(nu_term_equal(vars[1], nu_atom("late")));
	for (int i = 0; i < 10000; i++) { /* the junk, untouched, in order */
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 0), 0);
		CU_ASSERT_EQUAL_FATAL(nu_tuple_elem(t, 1), nu_int(i));
		nu_term_free(t);
	}
	CU_ASSERT_EQUAL(nu_receive(&t, 0), -ETIMEDOUT);
	nu_pattern_free(pat);
}

static void test_ref_trick(void)
{
	nu_config cf;
	cfg(&cf, 1);
	CU_ASSERT_EQUAL(nu_start(&cf, ref_trick_main, NULL), 0);
}

static void prio_main(void *a)
{
	(void)a;
	nu_pid me = nu_self();
	nu_term t;
	for (int i = 0; i < 5; i++)
		nu_send(me, nu_int(i));
	nu_send_priority(me, nu_atom("urgent"));
	nu_send_priority(me, nu_atom("urgent2"));
	CU_ASSERT_EQUAL(nu_receive(&t, 0), 0);
	CU_ASSERT(nu_term_equal(t, nu_atom("urgent")));
	CU_ASSERT_EQUAL(nu_receive(&t, 0), 0);
	CU_ASSERT(nu_term_equal(t, nu_atom("urgent2")));
	/* selective receive also looks at the priority lane first */
	nu_send_priority(me, nu_int(3));
	CU_ASSERT_EQUAL(nu_receive_if(is_even_int, NULL, &t, 0), 0);
	CU_ASSERT_EQUAL(t, nu_int(0)); /* not even: 3 stays */
	CU_ASSERT_EQUAL(nu_receive(&t, 0), 0);
	CU_ASSERT_EQUAL(t, nu_int(3));
	for (int i = 1; i < 5; i++) { /* the rest, in order */
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 0), 0);
		CU_ASSERT_EQUAL(t, nu_int(i));
	}
	CU_ASSERT_EQUAL(nu_send_priority(me, NU_NONE), -EINVAL);
}

static void test_priority(void)
{
	nu_config cf;
	cfg(&cf, 1);
	CU_ASSERT_EQUAL(nu_start(&cf, prio_main, NULL), 0);
}

/* ------------------------------------------------- bounded mailboxes */

static nu_pid bounded_spawn(nu_fn fn, uint32_t max, nu_mailbox_policy pol)
{
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.max_mailbox = max;
	o.mailbox_policy = pol;
	return nu_spawn_opt(fn, NULL, &o);
}

static _Atomic long drained;

static void slow_drainer(void *a)
{
	(void)a;
	nu_sleep(30);
	nu_term t;
	while (nu_receive(&t, 200) == 0)
		atomic_fetch_add(&drained, 1);
}

static void sleep_then_exit(void *a)
{
	(void)a;
	nu_sleep(20); /* never receives */
}

static void in_order_receiver(void *a)
{
	(void)a;
	for (long i = 0; i < 200; i++) {
		nu_term t;
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 5000), 0);
		CU_ASSERT_EQUAL_FATAL(t, nu_int(i));
		if (i % 20 == 0)
			nu_sleep(1);
	}
}

static void bounded_main(void *a)
{
	(void)a;
	/* fail: the 11th send gets -EAGAIN, room comes back after receives */
	atomic_store(&drained, 0);
	nu_pid r = bounded_spawn(slow_drainer, 10, NU_MAILBOX_FAIL);
	for (int i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(nu_send(r, nu_int(i)), 0);
	CU_ASSERT_EQUAL(nu_send(r, nu_int(10)), -EAGAIN);
	CU_ASSERT_EQUAL(nu_send_priority(r, nu_int(10)), -EAGAIN);
	while (atomic_load(&drained) < 10)
		nu_sleep(1);
	CU_ASSERT_EQUAL(nu_send(r, nu_int(11)), 0);
	nt_wait_alone();
	CU_ASSERT_EQUAL(atomic_load(&drained), 11);

	/* kill: overflowing kills the receiver; the send itself succeeds */
	r = bounded_spawn(slow_drainer, 5, NU_MAILBOX_KILL);
	for (int i = 0; i < 6; i++)
		CU_ASSERT_EQUAL(nu_send(r, nu_int(i)), 0);
	for (int i = 0; i < 1000 && nu_is_alive(r) == 1; i++)
		nu_sleep(1);
	CU_ASSERT_EQUAL(nu_is_alive(r), 0);

	/* wait: 200 messages through a 5-message mailbox, nothing lost */
	r = bounded_spawn(in_order_receiver, 5, NU_MAILBOX_WAIT);
	for (long i = 0; i < 200; i++)
		CU_ASSERT_EQUAL_FATAL(nu_send(r, nu_int(i)), 0);
	nt_wait_alone();

	/* a sender waiting on a receiver that exits is released */
	r = bounded_spawn(sleep_then_exit, 1, NU_MAILBOX_WAIT);
	CU_ASSERT_EQUAL(nu_send(r, nu_int(0)), 0);
	CU_ASSERT_EQUAL(nu_send(r, nu_int(1)), 0); /* waits, then dropped */
	CU_ASSERT_EQUAL(nu_is_alive(r), 0);

	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.mailbox_policy = (nu_mailbox_policy)7;
	CU_ASSERT_EQUAL(nu_spawn_opt(slow_drainer, NULL, &o), -EINVAL);
}

static void test_bounded(void)
{
	nu_config cf;
	cfg(&cf, nt_two());
	CU_ASSERT_EQUAL(nu_start(&cf, bounded_main, NULL), 0);
}

static void test_select(void)
{
	nu_term t;
	nu_clause c = { NULL, NULL, NULL };
	CU_ASSERT_EQUAL(nu_receive_select(&c, 1, 0, &t), -EPERM);
	CU_ASSERT_EQUAL(nu_receive_if(is_even_int, NULL, &t, 0), -EPERM);
	nu_config cf;
	cfg(&cf, nt_two());
	CU_ASSERT_EQUAL(nu_start(&cf, select_main, NULL), 0);
}


/* -------------------------------------------- park word and boundary */

/* The receiver takes by walking down to the last message it took, which
 * it compares by address: that message's block must not come back as a
 * new push while it is the boundary. Here every message is an immediate,
 * whose block is freed as it is taken, and the next one is sent while
 * the receiver is runnable but not parked (it yields), by a process on
 * the same scheduler, whose block cache would hand the same block out. */
static nu_pid aba_parent;
enum { ABA_ROUNDS = 20000 };

static void aba_receiver(void *a)
{
	(void)a;
	long i;
	for (i = 0; i < ABA_ROUNDS; i++) {
		nu_term t;
		if (nu_receive(&t, 2000) != 0 || t != nu_int(i))
			break; /* lost (a stall) or out of order */
		nu_send(aba_parent, nu_int(i));
		nu_yield(); /* the next send comes before we park */
	}
	nu_send(aba_parent, nu_tuple(2, nu_atom("done"), nu_int(i)));
}

static void aba_main(void *a)
{
	(void)a;
	aba_parent = nu_self();
	nu_pid r = nu_spawn(aba_receiver, NULL);
	nu_term t = NU_NONE;
	long acked = 0;
	for (long i = 0; i < ABA_ROUNDS; i++) {
		nu_send(r, nu_int(i));
		if (nu_receive(&t, 3000) != 0 || t != nu_int(i))
			break;
		acked++;
	}
	CU_ASSERT_EQUAL(acked, ABA_ROUNDS);
	if (acked < ABA_ROUNDS)
		nu_kill(r, nu_atom("kill"));
	else
		CU_ASSERT(nu_receive(&t, 3000) == 0 &&
			  nu_term_equal(t, nu_tuple(2, nu_atom("done"),
						    nu_int(ABA_ROUNDS))));
	nt_wait_alone();
}

static void test_boundary(void)
{
	nu_config cf;
	cfg(&cf, 1);
	CU_ASSERT_EQUAL(nu_start(&cf, aba_main, NULL), 0);
}

/* Receivers on one scheduler, parked in receives whose short timeouts
 * race the pushes of senders on the other; every 8th message goes on the
 * priority lane (a priority push wakes through wstate, not the park
 * word). Nothing may be lost or reordered within a lane; then victims
 * parked forever are killed while a pusher hits them, and each ends with
 * the killer's reason. */
enum { RACE_RX = 3, RACE_TX = 2, RACE_MSGS = 10000, RACE_VICTIMS = 200 };
static nu_pid race_parent, race_rx[RACE_RX];

static void race_receiver(void *a)
{
	(void)a;
	long last[RACE_TX][2], got = 0, bad = 0, idle = 0;
	memset(last, 0xff, sizeof(last)); /* -1 */
	while (got < (long)RACE_TX * RACE_MSGS && idle < 5000) {
		nu_term t;
		if (nu_receive(&t, 1) != 0) {
			idle++; /* a timeout: about 1 ms */
			continue;
		}
		idle = 0;
		long tx = nu_int_value(nu_tuple_elem(t, 0));
		long seq = nu_int_value(nu_tuple_elem(t, 1));
		int lane = seq % 8 == 0;
		if (seq <= last[tx][lane])
			bad++;
		last[tx][lane] = seq;
		got++;
		nu_term_free(t);
	}
	nu_send(race_parent, nu_tuple(2, nu_int(got), nu_int(bad)));
}

static void race_sender(void *a)
{
	long tx = (long)(uintptr_t)a;
	for (long seq = 0; seq < RACE_MSGS; seq++) {
		nu_term m = nu_tuple(2, nu_int(tx), nu_int(seq));
		for (int rx = 0; rx < RACE_RX; rx++)
			if (seq % 8 == 0)
				nu_send_priority(race_rx[rx], m);
			else
				nu_send(race_rx[rx], m);
		nu_term_free(m);
		if (seq % 512 == 0)
			nu_sleep(1); /* let the receivers' timeouts fire */
	}
}

static void race_victim(void *a)
{
	(void)a;
	for (;;) {
		nu_term t;
		nu_receive(&t, -1);
		nu_term_free(t);
	}
}

static void prio_echo(void *a)
{
	(void)a;
	nu_term t;
	if (nu_receive(&t, -1) == 0) /* no timer: only the push wakes it */
		nu_send(race_parent, t);
}

/* Sleep until pid is parked (waiting), up to a second. */
static int until_waiting(nu_pid pid)
{
	nu_proc_info info = { 0 };
	for (int i = 0; i < 1000 && info.state != NU_PROC_WAITING; i++) {
		nu_sleep(1);
		if (nu_process_info(pid, &info))
			return 0;
	}
	return info.state == NU_PROC_WAITING;
}

static void race_killer(void *a)
{
	nu_pid *v = a;
	for (int i = 0; i < RACE_VICTIMS; i++) {
		nu_send(v[i], nu_int(i));
		nu_kill(v[i], nu_atom("stop_now"));
		nu_send(v[i], nu_int(i)); /* to a dying or dead pid */
	}
}

static void race_main(void *a)
{
	(void)a;
	race_parent = nu_self();
	for (int i = 0; i < RACE_RX; i++)
		race_rx[i] = nt_on_sched(race_receiver, NULL, 0);
	for (long i = 0; i < RACE_TX; i++)
		nt_on_sched(race_sender, (void *)(uintptr_t)i, 1);
	long got = 0, bad = 0;
	for (int i = 0; i < RACE_RX; i++) {
		nu_term t;
		if (nu_receive(&t, 30000) != 0)
			break;
		got += nu_int_value(nu_tuple_elem(t, 0));
		bad += nu_int_value(nu_tuple_elem(t, 1));
	}
	CU_ASSERT_EQUAL(got, (long)RACE_RX * RACE_TX * RACE_MSGS);
	CU_ASSERT_EQUAL(bad, 0);

	/* a priority message alone wakes a receive waiting forever */
	nu_pid e = nt_on_sched(prio_echo, NULL, 0);
	CU_ASSERT(until_waiting(e));
	CU_ASSERT_EQUAL(nu_send_priority(e, nu_atom("up")), 0);
	nu_term t;
	CU_ASSERT(nu_receive(&t, 5000) == 0 && t == nu_atom("up"));
	nu_kill(e, nu_atom("kill")); /* when it never woke */

	static nu_pid v[RACE_VICTIMS];
	static nu_term refs[RACE_VICTIMS];
	for (int i = 0; i < RACE_VICTIMS; i++) {
		nu_spawn_opts o;
		nu_spawn_opts_init(&o);
		o.scheduler = 0;
		o.monitor_ref = &refs[i];
		v[i] = nu_spawn_opt(race_victim, NULL, &o);
	}
	/* a victim parked in its receive reads as waiting */
	CU_ASSERT(until_waiting(v[0]));
	nt_on_sched(race_killer, v, 1);
	int killed = 0;
	for (int i = 0; i < RACE_VICTIMS; i++)
		killed += nu_term_equal(nt_down_reason(refs[i], v[i], 10000),
					nu_atom("stop_now"));
	CU_ASSERT_EQUAL(killed, RACE_VICTIMS);
	nt_wait_alone();
}

static void test_park_races(void)
{
	nu_config cf;
	cfg(&cf, nt_two());
	CU_ASSERT_EQUAL(nu_start(&cf, race_main, NULL), 0);
}

/* A receive's timeout that is due before its process finished parking
 * (a slow scan: the deadline passed before the timer was armed) fires in
 * the pick that hands the CPU on, before the park is committed; the
 * commit must see that wake. A yielding neighbour keeps the scheduler
 * picking; the only message queued never matches. */
static _Atomic int tmo_done, tmo_stop;

static int slow_no(nu_term msg, void *arg)
{
	(void)arg;
	if (msg == nu_atom("wake"))
		return 1; /* the way out when stuck (see tmo_main) */
	uint64_t t0 = nt_now_us();
	while (nt_now_us() - t0 < 1500)
		; /* longer than the 1 ms timeout */
	return 0;
}

static void tmo_receiver(void *a)
{
	(void)a;
	nu_term t;
	nu_send(nu_self(), nu_atom("never"));
	int i = 0;
	while (i < 200 && nu_receive_if(slow_no, NULL, &t, 1) == -ETIMEDOUT)
		i++;
	atomic_store(&tmo_done, i);
}

static void tmo_main(void *a)
{
	(void)a;
	nu_spawn(nt_yielder, &tmo_stop);
	nu_pid r = nu_spawn(tmo_receiver, NULL);
	for (int i = 0; i < 1000 && !atomic_load(&tmo_done); i++)
		nu_sleep(5); /* 200 receives of ~2 ms: well under 5 s */
	CU_ASSERT_EQUAL(atomic_load(&tmo_done), 200);
	atomic_store(&tmo_stop, 1);
	if (!atomic_load(&tmo_done))
		nu_send(r, nu_atom("wake")); /* stuck: a push still wakes it */
	nt_wait_alone();
}

static void test_timeout_while_parking(void)
{
	nu_config cf;
	cfg(&cf, 1);
	CU_ASSERT_EQUAL(nu_start(&cf, tmo_main, NULL), 0);
}

/* --------------------------------------------------- flooding senders */

/* 500 senders of 1000 messages each to one receiver on one scheduler.
 * The receiver is preempted while it spawns them, so it queues behind
 * all of them: without the flood throttle (mailbox.c flood_yield) every
 * sender sends all its messages in one slice, and the receiver finds
 * ~499,000 queued when it first runs. With it, once 2048 messages of the
 * scheduler are out unreceived each send to the receiver ends its
 * sender's slice, and the queue stays short. Nothing is lost and each
 * sender's messages keep their order. */
#define FL_SENDERS 500
#define FL_EACH 1000

static nu_pid fl_sink;

static void fl_sender(void *a)
{
	long id = (long)(intptr_t)a;
	for (long k = FL_EACH; k > 0; k--) {
		nu_term m = nu_tuple(3, nu_atom("m"), nu_int(id), nu_int(k));
		CU_ASSERT_EQUAL_FATAL(nu_send(fl_sink, m), 0);
		nu_term_free(m);
	}
}

static void fl_main(void *a)
{
	(void)a;
	static long next[FL_SENDERS];
	fl_sink = nu_self();
	for (long i = 0; i < FL_SENDERS; i++) {
		next[i] = FL_EACH;
		CU_ASSERT_FATAL(nu_spawn(fl_sender, (void *)(intptr_t)i) > 0);
	}
	uint32_t deepest = 0;
	long bad = 0;
	for (long n = 0; n < (long)FL_SENDERS * FL_EACH; n++) {
		nu_term t;
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 10000), 0);
		long id = (long)nu_int_value(nu_tuple_elem(t, 1));
		long k = (long)nu_int_value(nu_tuple_elem(t, 2));
		bad += id < 0 || id >= FL_SENDERS || k != next[id]--;
		nu_term_free(t);
		nu_proc_info info;
		if (n % 512 == 0 && nu_process_info(nu_self(), &info) == 0 &&
		    info.mailbox_len > deepest)
			deepest = info.mailbox_len;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT(deepest > 0);
	CU_ASSERT(deepest < 50000);
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive(&t, 0), -ETIMEDOUT);
}

static void test_flood(void)
{
	nu_config c;
	nt_config(&c, 1, 2000, 4 << 20);
	CU_ASSERT_EQUAL(nu_start(&c, fl_main, NULL), 0);
}

/* The count of messages out is per scheduler, and blocks received on
 * another scheduler go home (block.c): after 20,000 messages from a
 * process on scheduler 1 to one on scheduler 0, scheduler 1 must not
 * look flooded. Then, alone (scheduler 0 idle), a burst of 1500 sends to
 * a receiver on scheduler 1 runs in one slice (the receiver sees none of
 * it before the sender is done), and a burst of 3000 is throttled after
 * ~2048 (the receiver runs before the sender is done). */
static nu_pid fh_main_pid;
static _Atomic long fh_got;

static void fh_consumer(void *a)
{
	(void)a;
	nu_term t;
	for (int i = 0; i < 20000; i++)
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 10000), 0);
	nu_send(fh_main_pid, nu_atom("consumed"));
}

static void fh_producer(void *a)
{
	nu_pid to = (nu_pid)(intptr_t)a;
	for (int i = 0; i < 20000; i++)
		CU_ASSERT_EQUAL_FATAL(nu_send(to, nu_int(i)), 0);
}

static void fh_counter(void *a)
{
	(void)a;
	nu_term t;
	while (nu_receive(&t, -1) == 0 && t != nu_atom("stop"))
		atomic_fetch_add(&fh_got, 1);
}

typedef struct {
	nu_pid to;
	int n;
	long seen; /* messages the receiver had taken when the burst ended */
} fh_burst;

static void fh_burster(void *a)
{
	fh_burst *b = a;
	for (int i = 0; i < b->n; i++)
		CU_ASSERT_EQUAL_FATAL(nu_send(b->to, nu_int(i)), 0);
	b->seen = atomic_load(&fh_got);
	nu_send(fh_main_pid, nu_atom("burst"));
}

static void fh_wait(const char *what)
{
	nu_term t;
	CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 30000), 0);
	CU_ASSERT_EQUAL(t, nu_atom(what));
}

static void fh_main(void *a)
{
	(void)a;
	fh_main_pid = nu_self();
	nu_pid c = nt_on_sched(fh_consumer, NULL, 0);
	CU_ASSERT_FATAL(c > 0);
	CU_ASSERT_FATAL(nt_on_sched(fh_producer, (void *)(intptr_t)c, 1) > 0);
	fh_wait("consumed");
	nu_sleep(50); /* scheduler 0 parks */
	atomic_store(&fh_got, 0);
	nu_pid r = nt_on_sched(fh_counter, NULL, 1);
	fh_burst b1 = { r, 1500, -1 }, b2 = { r, 3000, -1 };
	CU_ASSERT_FATAL(nt_on_sched(fh_burster, &b1, 1) > 0);
	fh_wait("burst");
	CU_ASSERT_EQUAL(b1.seen, 0);
	/* the throttle needs scheduler 0 parked: a few tries, in case
	 * something wakes it just then */
	long want = 1500;
	int throttled = 0;
	for (int try = 0; try < 5 && !throttled; try++) {
		while (atomic_load(&fh_got) < want)
			nu_sleep(1);
		nu_sleep(20);
		b2.seen = -1;
		CU_ASSERT_FATAL(nt_on_sched(fh_burster, &b2, 1) > 0);
		fh_wait("burst");
		throttled = b2.seen > want;
		want += b2.n;
	}
	CU_ASSERT(throttled);
	nu_send(r, nu_atom("stop"));
	nt_wait_alone();
}

static void test_flood_home(void)
{
	if (nt_two() < 2) {
		fprintf(stderr, "flood_home: needs two CPUs, not run\n");
		return;
	}
	nu_config c;
	nt_config(&c, 2, 1000, 4 << 20);
	CU_ASSERT_EQUAL(nu_start(&c, fh_main, NULL), 0);
}

/* Blocks come back to the cache of the scheduler that made them, up to
 * 4096 of them while it works (block.c), and an idle scheduler keeps 512:
 * after 4000 messages to itself a process sees them cached (but the
 * last, its lane's boundary until the next take), and after
 * sleeping 60 ms (its scheduler idle past the 10 ms trim delay) at most
 * 512. */
#define TRIM_MSGS 4000

static uint64_t blocks_cached(void)
{
	nu_node_stats st;
	CU_ASSERT_EQUAL_FATAL(nu_node_info(&st), 0);
	return st.msg_blocks_cached;
}

/* TRIM_MSGS messages to ourselves, then taken back: their blocks end up
 * in this scheduler's cache. */
static void trim_fill(void)
{
	for (long i = 0; i < TRIM_MSGS; i++) {
		nu_term m = nu_tuple(2, nu_atom("t"), nu_int(i));
		CU_ASSERT_EQUAL_FATAL(nu_send(nu_self(), m), 0);
		nu_term_free(m);
	}
	for (long i = 0; i < TRIM_MSGS; i++) {
		nu_term t;
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 0), 0);
		CU_ASSERT_EQUAL(nu_int_value(nu_tuple_elem(t, 1)), i);
		nu_term_free(t);
	}
}

static void trim_main(void *a)
{
	(void)a;
	trim_fill();
	uint64_t busy = blocks_cached();
	/* (the newest message taken stays its lane's boundary: mailbox.c) */
	CU_ASSERT(busy >= TRIM_MSGS - 1);
	CU_ASSERT(busy <= 4096);
	CU_ASSERT_EQUAL(nu_sleep(60), 0);
	CU_ASSERT(blocks_cached() <= 512);
}

static void test_block_trim(void)
{
	nu_config c;
	nt_config(&c, 1, 1000, 4 << 20);
	CU_ASSERT_EQUAL(nu_start(&c, trim_main, NULL), 0);
	nu_node_stats st;
	CU_ASSERT_EQUAL(nu_node_info(&st), -ESRCH);
}

/* A scheduler that never goes idle (a process yields on it without end)
 * gives its cached blocks back too: half of those beyond 512 each second,
 * at most 1024 at a time (sched.c, "Decay"), so 4000 cached come under
 * 2048 within a few seconds. */
static _Atomic int decay_stop;

static void block_decay_main(void *a)
{
	(void)a;
	atomic_store(&decay_stop, 0);
	CU_ASSERT_FATAL(nu_spawn(nt_yielder, &decay_stop) > 0);
	trim_fill();
	uint64_t held = blocks_cached(), left = held;
	CU_ASSERT(held >= TRIM_MSGS - 1);
	for (int i = 0; i < 120 && left > 2048; i++) {
		CU_ASSERT_EQUAL(nu_sleep(50), 0);
		left = blocks_cached();
	}
	CU_ASSERT(left <= 2048);
	CU_ASSERT(left >= 512);
	if (left > 2048 || left < 512)
		fprintf(stderr, "blocks cached: held %lu, left %lu\n",
			(unsigned long)held, (unsigned long)left);
	atomic_store(&decay_stop, 1);
}

static void test_block_decay(void)
{
	nu_config c;
	nt_config(&c, 1, 1000, 4 << 20);
	CU_ASSERT_EQUAL(nu_start(&c, block_decay_main, NULL), 0);
}

static CU_TestInfo tests[] = {
	{ "messages are copies, equal terms", test_copies },
	{ "order per sender under concurrency", test_order },
	{ "receive timeouts fire, not early", test_timeouts },
	{ "bad input and dead pids", test_bad_input },
	{ "unread messages freed at exit", test_unread },
	{ "100,000-process ring, 10 laps", test_ring },
	{ "received terms can be freed", test_free_received },
	{ "selective receive: clauses, order kept, predicate", test_select },
	{ "replies to a fresh reference skip the queue", test_ref_trick },
	{ "priority messages pass the queue", test_priority },
	{ "bounded mailboxes: fail, kill, wait", test_bounded },
	{ "a freed block never passes for the last one taken", test_boundary },
	{ "parks race pushes, timeouts, priority sends, kills", test_park_races },
	{ "a timeout due while parking ends the wait", test_timeout_while_parking },
	{ "many senders to one receiver: its queue stays short", test_flood },
	{ "messages received elsewhere are counted back home", test_flood_home },
	{ "an idle scheduler trims its cached message blocks", test_block_trim },
	{ "a busy scheduler gives cached message blocks back", test_block_decay },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("mailbox", tests)
