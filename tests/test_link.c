/* test_link.c — links and exit signals: propagation by reason, normal
 * ignored, trap_exit turning signals into {'EXIT', From, Reason}, kill
 * untrappable and propagating as killed, noproc for a dead pid, unlink,
 * nu_kill's rules (self, normal, sleepers), signal order after messages,
 * spawn_link, races between unlink and exit, and bad arguments. */
#include <errno.h>
#include <stdatomic.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

#include <time.h>

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void cfg(nu_config *c) { nt_config(c, nt_two(), 100000, 1 << 20); }

/* ---------------------------------------------------------- helpers */

/* Spawn fn(arg) linked (and monitored, *ref) from the caller. */
static nu_pid spawn_lm(nu_fn fn, void *arg, nu_term *ref)
{
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.link = 1;
	o.monitor_ref = ref;
	return nu_spawn_opt(fn, arg, &o);
}

static nu_pid spawn_l(nu_fn fn, void *arg)
{
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.link = 1;
	return nu_spawn_opt(fn, arg, &o);
}

static nu_pid spawn_mon(nu_fn fn, void *arg, nu_term *ref)
{
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.monitor_ref = ref;
	return nu_spawn_opt(fn, arg, &o);
}

static void exits_boom(void *a)
{
	(void)a;
	nu_exit(nu_atom("boom"));
}

static void exits_normal(void *a) { (void)a; }

/* Waits for one message, then exits with it as the reason (`normal`
 * when it is the atom normal). */
static void exits_with_msg(void *a)
{
	(void)a;
	nu_term t;
	if (nu_receive(&t, 10000) == 0)
		nu_exit(t);
}

/* Waits up to 10 s for anything and exits normal: alive meanwhile. */
static void lingers(void *a)
{
	(void)a;
	nu_term t;
	nu_receive(&t, 10000);
}

/* Links to the pid in *a, tells it "linked", then lingers. */
static void links_then_lingers(void *a)
{
	nu_pid to = *(nu_pid *)a;
	nu_link(to);
	nu_send(to, nu_atom("linked"));
	lingers(NULL);
}

static void traps_and_lingers(void *a)
{
	nu_pid parent = *(nu_pid *)a;
	nu_trap_exit(1);
	nu_send(parent, nu_atom("trapping"));
	nu_term t;
	for (;;) { /* report every EXIT to the parent, until told to stop */
		if (nu_receive(&t, 10000) || t == nu_atom("stop"))
			return;
		nu_send(parent, t);
	}
}

static int wait_atom(const char *name, int64_t timeout)
{
	nu_pattern *pat;
	char src[64];
	snprintf(src, sizeof(src), "'%s'", name);
	if (nu_pattern_compile(src, &pat, NULL))
		return -EINVAL;
	nu_clause c = { pat, NULL, NULL };
	nu_term t;
	int rc = nu_receive_select(&c, 1, timeout, &t);
	nu_pattern_free(pat);
	return rc;
}

/* ------------------------------------------------------ propagation */

/* Spawns a linked child that exits with *a; reports its own fate by
 * exiting (the test monitors it). */
static void middle(void *a)
{
	nu_pid child = spawn_l(exits_with_msg, NULL);
	nu_send(child, *(nu_term *)a);
	lingers(NULL); /* killed by the link unless the reason was normal */
}

static void propagation_main(void *a)
{
	(void)a;
	nu_term ref, why;
	nu_term boom = nu_atom("boom");

	/* a linked process's reason ends us */
	nu_pid m = spawn_mon(middle, &boom, &ref);
	why = nt_down_reason(ref, m, 5000);
	CU_ASSERT_EQUAL(why, boom);

	/* normal does not: middle lingers until told */
	nu_term normal = NU_ATOM_NORMAL;
	m = spawn_mon(middle, &normal, &ref);
	CU_ASSERT(nt_down_reason(ref, m, 200) == NU_NONE);
	CU_ASSERT_EQUAL(nu_is_alive(m), 1);
	nu_send(m, nu_atom("done"));
	CU_ASSERT_EQUAL(nt_down_reason(ref, m, 5000), NU_ATOM_NORMAL);

	/* a tuple reason crosses heaps intact */
	nu_term big = nu_tuple(3, nu_atom("shutdown"), nu_binary("x", 1),
			       nu_cons(nu_int(1), NU_NIL));
	m = spawn_mon(middle, &big, &ref);
	why = nt_down_reason(ref, m, 5000);
	CU_ASSERT(why != NU_NONE && nu_term_equal(why, big));
}

static void test_propagation(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, propagation_main, NULL), 0);
}

/* A chain of CHAIN processes, each linked to the next: killing the last
 * with a reason ends all of them with it. */
#define CHAIN 200

static void chain_link(void *a)
{
	int n = (int)(intptr_t)a;
	if (n > 1) {
		nu_spawn_opts o;
		nu_spawn_opts_init(&o);
		o.link = 1;
		nu_pid next = nu_spawn_opt(chain_link, (void *)(intptr_t)(n - 1),
					   &o);
		if (next < 0)
			return;
	} else {
		nu_register(nu_atom("chain_tail"), nu_self());
	}
	lingers(NULL);
}

static void chain_main(void *a)
{
	(void)a;
	nu_term ref;
	nu_pid head = spawn_mon(chain_link, (void *)(intptr_t)CHAIN, &ref);
	nu_pid tail;
	while ((tail = nu_whereis(nu_atom("chain_tail"))) < 0)
		nu_sleep(1);
	CU_ASSERT_EQUAL(nu_process_count(), CHAIN + 1);
	CU_ASSERT_EQUAL(nu_kill(tail, nu_atom("cut")), 0);
	CU_ASSERT_EQUAL(nt_down_reason(ref, head, 5000), nu_atom("cut"));
	nt_wait_alone();
}

static void test_chain(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, chain_main, NULL), 0);
}

/* -------------------------------------------------------- trap_exit */

static void exits_kill(void *a)
{
	(void)a;
	nu_exit(NU_ATOM_KILL);
}

static void trap_main(void *a)
{
	(void)a;
	CU_ASSERT_EQUAL(nu_trap_exit(1), 0);
	CU_ASSERT_EQUAL(nu_trap_exit(1), 1);

	/* a linked child's exit becomes a message, normal included */
	nu_pid c = spawn_l(exits_boom, NULL);
	CU_ASSERT_EQUAL(nt_exit_reason(c, 5000), nu_atom("boom"));
	c = spawn_l(exits_normal, NULL);
	CU_ASSERT_EQUAL(nt_exit_reason(c, 5000), NU_ATOM_NORMAL);
	/* a link signal with reason kill is trappable (not nu_kill's) */
	c = spawn_l(exits_kill, NULL);
	CU_ASSERT_EQUAL(nt_exit_reason(c, 5000), NU_ATOM_KILL);

	/* nu_kill: a trapped reason becomes a message, normal included */
	CU_ASSERT_EQUAL(nu_kill(nu_self(), nu_atom("hey")), 0);
	CU_ASSERT_EQUAL(nt_exit_reason(nu_self(), 0), nu_atom("hey"));
	CU_ASSERT_EQUAL(nu_kill(nu_self(), NU_ATOM_NORMAL), 0);
	CU_ASSERT_EQUAL(nt_exit_reason(nu_self(), 0), NU_ATOM_NORMAL);

	/* link to a dead pid: {'EXIT', Pid, noproc} */
	nt_wait_alone();
	CU_ASSERT_EQUAL(nu_is_alive(c), 0);
	CU_ASSERT_EQUAL(nu_link(c), 0);
	CU_ASSERT_EQUAL(nt_exit_reason(c, 0), NU_ATOM_NOPROC);

	/* off again: a linked child's boom ends us, seen by our monitor */
	CU_ASSERT_EQUAL(nu_trap_exit(0), 1);
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive(&t, 0), -ETIMEDOUT); /* nothing else */
}

static void test_trap(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, trap_main, NULL), 0);
}

/* Messages a process sent before its exit come before its EXIT. */
static void sends_then_exits(void *a)
{
	nu_pid to = *(nu_pid *)a;
	for (int i = 0; i < 100; i++)
		nu_send(to, nu_int(i));
	nu_exit(nu_atom("done"));
}

static void order_main(void *a)
{
	(void)a;
	nu_trap_exit(1);
	nu_pid me = nu_self();
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.link = 1;
	nu_pid c = nu_spawn_opt(sends_then_exits, &me, &o);
	CU_ASSERT(c > 0);
	for (int i = 0; i < 100; i++) {
		nu_term t;
		CU_ASSERT_EQUAL(nu_receive(&t, 5000), 0);
		CU_ASSERT_EQUAL(t, nu_int(i));
	}
	CU_ASSERT_EQUAL(nt_exit_reason(c, 0), nu_atom("done"));
}

static void test_order(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, order_main, NULL), 0);
}

/* ------------------------------------------------------------ kill */

static void kill_main(void *a)
{
	(void)a;
	nu_pid me = nu_self();
	nu_term ref, why;

	/* kill cannot be trapped: the victim exits killed */
	nu_pid t = spawn_mon(traps_and_lingers, &me, &ref);
	CU_ASSERT_EQUAL(wait_atom("trapping", 5000), 0);
	CU_ASSERT_EQUAL(nu_kill(t, NU_ATOM_KILL), 0);
	CU_ASSERT_EQUAL(nt_down_reason(ref, t, 5000), NU_ATOM_KILLED);

	/* a trapping victim gets other reasons as a message */
	t = spawn_mon(traps_and_lingers, &me, &ref);
	CU_ASSERT_EQUAL(wait_atom("trapping", 5000), 0);
	CU_ASSERT_EQUAL(nu_kill(t, nu_atom("hey")), 0);
	why = nt_exit_reason(me, 5000); /* relayed: {'EXIT', Me, hey} */
	CU_ASSERT_EQUAL(why, nu_atom("hey"));
	nu_send(t, nu_atom("stop"));
	CU_ASSERT_EQUAL(nt_down_reason(ref, t, 5000), NU_ATOM_NORMAL);

	/* non-trapping: normal is ignored, anything else ends it */
	t = spawn_mon(lingers, NULL, &ref);
	CU_ASSERT_EQUAL(nu_kill(t, NU_ATOM_NORMAL), 0);
	CU_ASSERT(nt_down_reason(ref, t, 100) == NU_NONE);
	CU_ASSERT_EQUAL(nu_kill(t, nu_atom("bye")), 0);
	CU_ASSERT_EQUAL(nt_down_reason(ref, t, 5000), nu_atom("bye"));

	/* a process waiting in receive is ended at once, not at its
	 * timeout (nu_sleep: kill_sleeper_main) */
	t = spawn_mon(lingers, NULL, &ref);
	uint64_t t0 = now_ms();
	CU_ASSERT_EQUAL(nu_kill(t, nu_atom("wake")), 0);
	CU_ASSERT_EQUAL(nt_down_reason(ref, t, 5000), nu_atom("wake"));
	CU_ASSERT(now_ms() - t0 < 2000);

	/* a kill to a dead pid is a no-op */
	CU_ASSERT_EQUAL(nu_kill(t, NU_ATOM_KILL), 0);
}

static void sleeper(void *a)
{
	(void)a;
	nu_sleep(10000);
}

static void kill_sleeper_main(void *a)
{
	(void)a;
	nu_term ref;
	nu_pid t = spawn_mon(sleeper, NULL, &ref);
	nu_yield();
	uint64_t t0 = now_ms();
	CU_ASSERT_EQUAL(nu_kill(t, NU_ATOM_KILL), 0);
	CU_ASSERT_EQUAL(nt_down_reason(ref, t, 5000), NU_ATOM_KILLED);
	CU_ASSERT(now_ms() - t0 < 2000);
}

static void kill_self(void *a)
{
	nu_kill(nu_self(), *(nu_term *)a);
	nu_exit(nu_atom("survived"));
}

static void kill_self_main(void *a)
{
	(void)a;
	nu_term ref, r = NU_ATOM_NORMAL;
	nu_pid t = spawn_mon(kill_self, &r, &ref);
	CU_ASSERT_EQUAL(nt_down_reason(ref, t, 5000), NU_ATOM_NORMAL);
	r = NU_ATOM_KILL;
	t = spawn_mon(kill_self, &r, &ref);
	CU_ASSERT_EQUAL(nt_down_reason(ref, t, 5000), NU_ATOM_KILLED);
	r = nu_atom("mine");
	t = spawn_mon(kill_self, &r, &ref);
	CU_ASSERT_EQUAL(nt_down_reason(ref, t, 5000), nu_atom("mine"));
}

static void test_kill(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, kill_main, NULL), 0);
	CU_ASSERT_EQUAL(nu_start(&c, kill_sleeper_main, NULL), 0);
	CU_ASSERT_EQUAL(nu_start(&c, kill_self_main, NULL), 0);
}

/* A killed process's links see killed (trappable), not kill. */
static void killed_links_main(void *a)
{
	(void)a;
	nu_trap_exit(1);
	nu_term ref;
	nu_pid t = spawn_lm(lingers, NULL, &ref);
	CU_ASSERT_EQUAL(nu_kill(t, NU_ATOM_KILL), 0);
	CU_ASSERT_EQUAL(nt_exit_reason(t, 5000), NU_ATOM_KILLED);
	CU_ASSERT_EQUAL(nt_down_reason(ref, t, 5000), NU_ATOM_KILLED);
}

static void test_killed_links(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, killed_links_main, NULL), 0);
}

/* --------------------------------------------------- noproc, unlink */

static void link_dead(void *a)
{
	nu_link(*(nu_pid *)a);
	nu_exit(nu_atom("survived"));
}

static void noproc_main(void *a)
{
	(void)a;
	nu_pid dead = nu_spawn(exits_normal, NULL);
	nt_wait_alone();
	nu_term ref;
	nu_pid t = spawn_mon(link_dead, &dead, &ref);
	CU_ASSERT_EQUAL(nt_down_reason(ref, t, 5000), NU_ATOM_NOPROC);
}

static void test_noproc(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, noproc_main, NULL), 0);
}

static void unlink_main(void *a)
{
	(void)a;
	nu_pid me = nu_self();
	nu_term ref;

	/* we linked, we unlink: its boom does not reach us */
	nu_pid t = spawn_lm(exits_with_msg, NULL, &ref);
	CU_ASSERT_EQUAL(nu_unlink(t), 0);
	nu_send(t, nu_atom("boom"));
	CU_ASSERT_EQUAL(nt_down_reason(ref, t, 5000), nu_atom("boom"));

	/* it linked to us, we unlink from our end */
	nu_pid t2 = spawn_mon(links_then_lingers, &me, &ref);
	CU_ASSERT_EQUAL(wait_atom("linked", 5000), 0);
	CU_ASSERT_EQUAL(nu_unlink(t2), 0);
	CU_ASSERT_EQUAL(nu_kill(t2, nu_atom("bye")), 0);
	CU_ASSERT_EQUAL(nt_down_reason(ref, t2, 5000), nu_atom("bye"));

	/* linking twice is one link: one unlink removes it */
	nu_pid t3 = spawn_mon(exits_with_msg, NULL, &ref);
	CU_ASSERT_EQUAL(nu_link(t3), 0);
	CU_ASSERT_EQUAL(nu_link(t3), 0);
	CU_ASSERT_EQUAL(nu_unlink(t3), 0);
	nu_send(t3, nu_atom("boom"));
	CU_ASSERT_EQUAL(nt_down_reason(ref, t3, 5000), nu_atom("boom"));

	/* unlinking what is not linked, or oneself, is fine */
	CU_ASSERT_EQUAL(nu_unlink(t3), 0);
	CU_ASSERT_EQUAL(nu_unlink(me), 0);
	CU_ASSERT_EQUAL(nu_link(me), 0); /* a no-op */
}

static void test_unlink(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, unlink_main, NULL), 0);
}

/* Unlink racing with the other end's exit, 2000 times, trapping: after
 * unlink returns, no EXIT from that pid is ever taken. */
static void race_main(void *a)
{
	(void)a;
	nu_trap_exit(1);
	for (int i = 0; i < 2000; i++) {
		nu_term ref;
		nu_pid t = spawn_lm(exits_boom, NULL, &ref);
		if (i % 3)
			nu_yield();
		CU_ASSERT_EQUAL(nu_unlink(t), 0);
		/* an EXIT may have been taken before unlink (into the
		 * queue): drop it now; none may come later */
		nt_exit_reason(t, 0);
		CU_ASSERT_EQUAL(nt_down_reason(ref, t, 5000), nu_atom("boom"));
		CU_ASSERT(nt_exit_reason(t, 0) == NU_NONE);
	}
	nt_wait_alone();
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive(&t, 20), -ETIMEDOUT);
}

static void test_race(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, race_main, NULL), 0);
}

/* Both ends of a link exit at once, 2000 times: each exit may find the
 * record claimed by the other; nothing leaks (ASan) or crashes. */
static void mutual(void *a)
{
	nu_pid other = (nu_pid)(intptr_t)a;
	nu_link(other);
	nu_yield();
	nu_exit(nu_atom("both"));
}

static void mutual_main(void *a)
{
	(void)a;
	for (int i = 0; i < 2000; i++) {
		nu_pid x = nu_spawn(lingers, NULL);
		nu_spawn(mutual, (void *)(intptr_t)x);
		nu_kill(x, nu_atom("both"));
		if (i % 64 == 0)
			nt_wait_alone();
	}
	nt_wait_alone();
}

static void test_mutual(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, mutual_main, NULL), 0);
}

/* ----------------------------------------------------- bad arguments */

static void bad_main(void *a)
{
	(void)a;
	CU_ASSERT_EQUAL(nu_link(0), -EINVAL);
	CU_ASSERT_EQUAL(nu_link(-3), -EINVAL);
	CU_ASSERT_EQUAL(nu_unlink(-3), -EINVAL);
	CU_ASSERT_EQUAL(nu_kill(-3, NU_ATOM_KILL), -EINVAL);
	CU_ASSERT_EQUAL(nu_kill(nu_self(), NU_NONE), -EINVAL);
}

static void test_bad(void)
{
	CU_ASSERT_EQUAL(nu_link(1), -EPERM);
	CU_ASSERT_EQUAL(nu_unlink(1), -EPERM);
	CU_ASSERT_EQUAL(nu_trap_exit(1), -EPERM);
	CU_ASSERT_EQUAL(nu_kill(1, NU_ATOM_KILL), -EPERM);
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, bad_main, NULL), 0);
}

static CU_TestInfo tests[] = {
	{ "a linked exit propagates its reason; normal does not",
	  test_propagation },
	{ "a chain of 200 links dies of one kill", test_chain },
	{ "trap_exit turns exit signals into messages", test_trap },
	{ "messages sent before an exit come before its EXIT", test_order },
	{ "nu_kill: kill untrappable, normal ignored, self, sleepers",
	  test_kill },
	{ "a killed process's links see killed", test_killed_links },
	{ "link to a dead pid: noproc", test_noproc },
	{ "unlink from either end, twice-linked, self", test_unlink },
	{ "unlink racing with exit leaves no EXIT", test_race },
	{ "both ends of links dying at once", test_mutual },
	{ "bad arguments", test_bad },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("link", tests)
