/* test_gen_server.c — gen_server as OTP documents it: calls, casts, info,
 * deferred replies, a call timeout leaves no late reply behind, a call to
 * a dead server gives its exit reason (noproc if it never existed), a cast
 * to a dead server is a no-op, named servers, every way init can end,
 * terminate on stop and on the parent's trapped exit, the idle timeout,
 * status, bad arguments, calls with a long queue, bounded heaps. */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

static void cfg(nu_config *c) { nt_config(c, nt_two(), 100000, 1 << 20); }

/* ------------------------------------------------ the counter server */

static _Atomic nu_pid watcher;      /* gets {terminated, Reason} */
static _Atomic int terminated;

typedef struct { int64_t n; nu_term kept; } counter;

static int c_init(nu_term arg, void **state, nu_gen_ret *r)
{
	if (arg == nu_atom("stop")) {
		r->reason = nu_tuple(2, nu_atom("init_said"), nu_int(7));
		return NU_GEN_STOP;
	}
	if (arg == nu_atom("ignore"))
		return NU_GEN_IGNORE;
	if (arg == nu_atom("crash"))
		nu_exit(nu_atom("init_crashed"));
	if (arg == nu_atom("slow"))
		nu_sleep(2000);
	if (arg == nu_atom("trap"))
		nu_trap_exit(1);
	if (arg == nu_atom("idle"))
		r->timeout_ms = 20;
	if (arg == nu_atom("badret"))
		return 42;
	counter *c = nu_alloc(sizeof(*c));
	c->n = nu_is_int(arg) ? nu_int_value(arg) : 0;
	c->kept = NU_NONE;
	*state = c;
	return NU_GEN_OK;
}

/* A process given `from` answers for the server. */
static void replier(void *a)
{
	(void)a;
	nu_term from;
	if (nu_receive(&from, 5000) == 0)
		nu_reply(from, nu_atom("from_elsewhere"));
}

static int c_call(nu_term req, nu_term from, void **state, nu_gen_ret *r)
{
	counter *c = *state;
	if (req == nu_atom("get")) {
		r->reply = nu_int(c->n);
		return NU_GEN_REPLY;
	}
	if (req == nu_atom("slow")) {
		nu_sleep(100);
		r->reply = nu_atom("late");
		return NU_GEN_REPLY;
	}
	if (req == nu_atom("defer")) {
		nu_send(nu_spawn(replier, NULL), from);
		return NU_GEN_OK;
	}
	if (req == nu_atom("die")) {
		r->reason = nu_tuple(2, nu_atom("bad"), nu_int(1));
		return NU_GEN_STOP;
	}
	if (req == nu_atom("kept")) {
		r->reply = c->kept == NU_NONE ? nu_atom("none") : c->kept;
		return NU_GEN_REPLY;
	}
	if (req == nu_atom("heap")) {
		r->reply = nu_int((int64_t)nu_heap_used());
		return NU_GEN_REPLY;
	}
	r->reply = nu_tuple(2, nu_atom("echo"), req); /* built on the spot */
	r->free_reply = 1;
	return NU_GEN_REPLY;
}

static int c_cast(nu_term msg, void **state, nu_gen_ret *r)
{
	counter *c = *state;
	if (nu_is_int(msg)) {
		c->n += nu_int_value(msg);
	} else if (nu_tuple_size(msg) == 2 &&
		   nu_tuple_elem(msg, 0) == nu_atom("keep")) {
		c->kept = msg; /* kept: the loop must not free it */
		r->keep = 1;
	}
	return NU_GEN_OK;
}

static int c_info(nu_term msg, void **state, nu_gen_ret *r)
{
	(void)r;
	counter *c = *state;
	if (msg == nu_atom("timeout") || msg == nu_atom("bump"))
		c->n += 100;
	return NU_GEN_OK;
}

static void c_terminate(nu_term reason, void *state)
{
	(void)state;
	atomic_fetch_add(&terminated, 1);
	nu_pid w = atomic_load(&watcher);
	if (w > 0)
		nu_send(w, nu_tuple(2, nu_atom("terminated"), reason));
}

static int c_format(void *state, char *buf, size_t len)
{
	return snprintf(buf, len, "n=%lld", (long long)((counter *)state)->n);
}

static const nu_gen_server_cbs counter_cbs = {
	.init = c_init,
	.handle_call = c_call,
	.handle_cast = c_cast,
	.handle_info = c_info,
	.terminate = c_terminate,
	.format_state = c_format,
};

static int64_t get(nu_term s)
{
	nu_term r;
	int rc = nu_call(s, nu_atom("get"), 2000, &r);
	return rc == 0 && nu_is_int(r) ? nu_int_value(r) : -1000 + rc;
}

/* The reason in a {terminated, Reason} message, NU_NONE if none. */
static nu_term terminated_with(int64_t timeout)
{
	nu_pattern *pat;
	nu_pattern_compile("{terminated, Why}", &pat, NULL);
	nu_term v[1], t;
	nu_clause c = { pat, NULL, v };
	int rc = nu_receive_select(&c, 1, timeout, &t);
	nu_pattern_free(pat);
	return rc == 0 ? v[0] : NU_NONE;
}

static int mailbox_empty(void)
{
	nu_term t;
	return nu_receive(&t, 0) == -ETIMEDOUT;
}

/* --------------------------------------------------------- the tests */

static void basics_main(void *a)
{
	(void)a;
	atomic_store(&watcher, nu_self());
	nu_pid s = nu_gen_server_start(&counter_cbs, nu_int(5), NULL);
	CU_ASSERT_FATAL(s > 0);
	nu_term st = nu_pid_term(s);
	CU_ASSERT_EQUAL(get(st), 5);
	CU_ASSERT_EQUAL(nu_cast(st, nu_int(3)), 0);
	CU_ASSERT_EQUAL(nu_send(s, nu_atom("bump")), 0);
	CU_ASSERT_EQUAL(get(st), 108); /* casts and info came before */
	nu_term r;
	CU_ASSERT_EQUAL(nu_call(st, nu_int(9), 1000, &r), 0);
	CU_ASSERT(nu_term_equal(r, nu_tuple(2, nu_atom("echo"), nu_int(9))));
	nu_term_free(r);
	/* compound requests reach the server whole: one that fits a small
	 * message block with the call's frame, and bigger ones */
	nu_term reqs[3];
	CU_ASSERT_EQUAL(nu_term_parse("{k, 1}", &reqs[0], NULL), 0);
	CU_ASSERT_EQUAL(nu_term_parse("{get_many, [1,2,3], <<\"bin\">>, "
				      "#{a => 1}, 1.5}",
				      &reqs[1], NULL),
			0);
	nu_term big = NU_NIL;
	for (int i = 0; i < 300; i++)
		big = nu_cons(nu_int(i), big);
	reqs[2] = big;
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(nu_call(st, reqs[i], 1000, &r), 0);
		CU_ASSERT(nu_term_equal(r, nu_tuple(2, nu_atom("echo"),
						    reqs[i])));
		nu_term_free(r);
	}
	/* a reply from another process, given `from` */
	CU_ASSERT_EQUAL(nu_call(st, nu_atom("defer"), 2000, &r), 0);
	CU_ASSERT(r == nu_atom("from_elsewhere"));
	/* status */
	char buf[128];
	int n = nu_gen_status(st, buf, sizeof(buf), 1000);
	CU_ASSERT(n > 0 && strstr(buf, "gen_server") && strstr(buf, "n=108"));
	CU_ASSERT(nu_gen_status(st, buf, 4, 1000) == n && strlen(buf) == 3);
	/* a kept cast term outlives its callback */
	CU_ASSERT_EQUAL(nu_cast(st, nu_tuple(2, nu_atom("keep"),
					     nu_binary("abc", 3))), 0);
	CU_ASSERT_EQUAL(nu_call(st, nu_atom("kept"), 1000, &r), 0);
	CU_ASSERT(nu_term_equal(r, nu_tuple(2, nu_atom("keep"),
					    nu_binary("abc", 3))));
	/* stop: terminate runs, the exit reason is the one asked for */
	nu_term ref;
	nu_monitor(s, &ref);
	CU_ASSERT_EQUAL(nu_gen_stop(st, nu_atom("done"), 2000), 0);
	CU_ASSERT(terminated_with(1000) == nu_atom("done"));
	CU_ASSERT(nt_down_reason(ref, s, 1000) == nu_atom("done"));
	CU_ASSERT_EQUAL(nu_gen_stop(st, nu_atom("done"), 100), -ESRCH);
	CU_ASSERT(mailbox_empty());
}

static void test_basics(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, basics_main, NULL), 0);
}

static void timeout_main(void *a)
{
	(void)a;
	atomic_store(&watcher, 0);
	nu_pid s = nu_gen_server_start(&counter_cbs, nu_int(0), NULL);
	nu_term st = nu_pid_term(s), r = NU_NONE;
	uint64_t t0 = nu_clock_ns();
	CU_ASSERT_EQUAL(nu_call(st, nu_atom("slow"), 20, &r), -ETIMEDOUT);
	CU_ASSERT(nu_clock_ns() - t0 >= 20000000u);
	nu_sleep(200); /* the late reply was sent meanwhile */
	CU_ASSERT(mailbox_empty());
	/* the next call gets its own reply, not the late one */
	CU_ASSERT_EQUAL(get(st), 0);
	CU_ASSERT(mailbox_empty());
	/* a timeout while the reply is already on its way */
	for (int i = 0; i < 50; i++) {
		int rc = nu_call(st, nu_atom("get"), 0, &r);
		CU_ASSERT(rc == 0 || rc == -ETIMEDOUT);
	}
	nu_sleep(20);
	CU_ASSERT(mailbox_empty());
	nu_gen_stop(st, NU_ATOM_NORMAL, 1000);
}

static void test_timeout(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, timeout_main, NULL), 0);
}

static void short_lived(void *a) { (void)a; }

static void dead_main(void *a)
{
	(void)a;
	atomic_store(&watcher, 0);
	nu_pid s = nu_gen_server_start(&counter_cbs, nu_int(0), NULL);
	nu_term st = nu_pid_term(s), r;
	CU_ASSERT_EQUAL(nu_call(st, nu_atom("die"), 1000, &r), -ESRCH);
	CU_ASSERT(nu_term_equal(r, nu_tuple(2, nu_atom("bad"), nu_int(1))));
	nu_term_free(r);
	/* dead now: noproc; a cast is a no-op */
	nt_wait_alone();
	CU_ASSERT_EQUAL(nu_call(st, nu_atom("get"), 1000, &r), -ESRCH);
	CU_ASSERT(r == NU_ATOM_NOPROC);
	CU_ASSERT_EQUAL(nu_cast(st, nu_int(1)), 0);
	/* a pid that never ran a server (it exited at once) */
	nu_pid p = nu_spawn(short_lived, NULL);
	nt_wait_alone();
	CU_ASSERT_EQUAL(nu_call(nu_pid_term(p), nu_atom("x"), 100, &r), -ESRCH);
	CU_ASSERT(r == NU_ATOM_NOPROC);
	/* a name nobody holds */
	CU_ASSERT_EQUAL(nu_call(nu_atom("nobody_here"), nu_atom("x"), 100, &r),
			-ESRCH);
	CU_ASSERT(r == NU_ATOM_NOPROC);
	CU_ASSERT_EQUAL(nu_cast(nu_atom("nobody_here"), nu_int(1)), 0);
	/* a server with no handle_call ends with undef */
	static const nu_gen_server_cbs bare = { .init = c_init };
	s = nu_gen_server_start(&bare, nu_int(0), NULL);
	CU_ASSERT_EQUAL(nu_call(nu_pid_term(s), nu_atom("x"), 1000, &r),
			-ESRCH);
	CU_ASSERT(r == nu_atom("undef"));
	nu_sleep(10);
	CU_ASSERT(mailbox_empty());
}

static void test_dead(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, dead_main, NULL), 0);
}

static void names_main(void *a)
{
	(void)a;
	atomic_store(&watcher, 0);
	nu_gen_opts o;
	nu_term why;
	nu_gen_opts_init(&o);
	o.name = nu_atom("counter");
	o.reason = &why;
	nu_pid s = nu_gen_server_start(&counter_cbs, nu_int(1), &o);
	CU_ASSERT_FATAL(s > 0);
	CU_ASSERT(why == NU_NONE);
	CU_ASSERT_EQUAL(nu_whereis(nu_atom("counter")), s);
	CU_ASSERT_EQUAL(get(nu_atom("counter")), 1);
	CU_ASSERT_EQUAL(nu_cast(nu_atom("counter"), nu_int(1)), 0);
	CU_ASSERT_EQUAL(get(nu_atom("counter")), 2);
	/* taken: -EEXIST and the holder */
	CU_ASSERT_EQUAL(nu_gen_server_start(&counter_cbs, nu_int(1), &o),
			-EEXIST);
	CU_ASSERT(nu_pid_value(why) == s);
	CU_ASSERT_EQUAL(nu_gen_stop(nu_atom("counter"), NU_ATOM_NORMAL, 1000),
			0);
	nt_wait_alone();
	CU_ASSERT_EQUAL(nu_whereis(nu_atom("counter")), -ENOENT);
	/* free again */
	s = nu_gen_server_start(&counter_cbs, nu_int(1), &o);
	CU_ASSERT(s > 0);
	nu_gen_stop(nu_atom("counter"), NU_ATOM_NORMAL, 1000);
	/* bad names */
	o.name = nu_int(3);
	CU_ASSERT_EQUAL(nu_gen_server_start(&counter_cbs, nu_int(1), &o),
			-EINVAL);
	o.name = NU_ATOM_UNDEFINED;
	CU_ASSERT_EQUAL(nu_gen_server_start(&counter_cbs, nu_int(1), &o),
			-EINVAL);
	CU_ASSERT(mailbox_empty());
}

static void test_names(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, names_main, NULL), 0);
}

static void init_main(void *a)
{
	(void)a;
	atomic_store(&watcher, 0);
	nu_gen_opts o;
	nu_term why;
	nu_gen_opts_init(&o);
	o.reason = &why;
	CU_ASSERT_EQUAL(nu_gen_server_start(&counter_cbs, nu_atom("stop"), &o),
			-ESRCH);
	CU_ASSERT(nu_term_equal(why, nu_tuple(2, nu_atom("init_said"),
					      nu_int(7))));
	CU_ASSERT_EQUAL(
		nu_gen_server_start(&counter_cbs, nu_atom("ignore"), &o),
		-ECANCELED);
	CU_ASSERT_EQUAL(nu_gen_server_start(&counter_cbs, nu_atom("crash"), &o),
			-ESRCH);
	CU_ASSERT(why == nu_atom("init_crashed"));
	CU_ASSERT_EQUAL(
		nu_gen_server_start(&counter_cbs, nu_atom("badret"), &o),
		-ESRCH);
	CU_ASSERT(nu_tuple_elem(why, 0) == nu_atom("bad_return_value"));
	/* linked, init says stop: the caller gets -ESRCH and lives on */
	CU_ASSERT_EQUAL(
		nu_gen_server_start_link(&counter_cbs, nu_atom("stop"), &o),
		-ESRCH);
	/* init past its timeout: killed, and gone when start returns */
	o.timeout_ms = 30;
	uint64_t t0 = nu_clock_ns();
	CU_ASSERT_EQUAL(
		nu_gen_server_start_link(&counter_cbs, nu_atom("slow"), &o),
		-ETIMEDOUT);
	CU_ASSERT(nu_clock_ns() - t0 < 1000000000u);
	CU_ASSERT_EQUAL(nu_process_count(), 1);
	nu_sleep(20);
	CU_ASSERT(mailbox_empty());
	/* bad input */
	o.timeout_ms = -2;
	CU_ASSERT_EQUAL(nu_gen_server_start(&counter_cbs, nu_int(0), &o),
			-EINVAL);
	CU_ASSERT_EQUAL(nu_gen_server_start(NULL, nu_int(0), NULL), -EINVAL);
	static const nu_gen_server_cbs no_init = { .handle_call = c_call };
	CU_ASSERT_EQUAL(nu_gen_server_start(&no_init, nu_int(0), NULL),
			-EINVAL);
	CU_ASSERT_EQUAL(nu_gen_server_start(&counter_cbs, NU_NONE, NULL),
			-EINVAL);
}

static void test_init(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_gen_server_start(&counter_cbs, nu_int(0), NULL),
			-EPERM);
	CU_ASSERT_EQUAL(nu_start(&c, init_main, NULL), 0);
}

/* The parent starts a trapping server linked to it, then exits. */
static void parent(void *a)
{
	(void)a;
	nu_pid s = nu_gen_server_start_link(&counter_cbs, nu_atom("trap"),
					    NULL);
	nu_send(atomic_load(&watcher), nu_pid_term(s));
	nu_exit(NU_ATOM_SHUTDOWN);
}

static void parent_main(void *a)
{
	(void)a;
	atomic_store(&watcher, nu_self());
	nu_spawn(parent, NULL);
	nu_term st;
	CU_ASSERT_EQUAL_FATAL(nu_receive(&st, 2000), 0);
	CU_ASSERT(terminated_with(2000) == NU_ATOM_SHUTDOWN);
	nt_wait_alone();
	/* the idle timeout reaches handle_info as the atom timeout */
	nu_pid s = nu_gen_server_start(&counter_cbs, nu_atom("idle"), NULL);
	nu_sleep(60);
	CU_ASSERT(get(nu_pid_term(s)) >= 100);
	nu_gen_stop(nu_pid_term(s), NU_ATOM_NORMAL, 1000);
	terminated_with(1000);
}

static void test_parent(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, parent_main, NULL), 0);
}

static void slow_caller(void *a)
{
	nu_term r;
	nu_call(nu_pid_term((nu_pid)(intptr_t)a), nu_atom("slow"), 1000, &r);
}

static void args_main(void *a)
{
	(void)a;
	atomic_store(&watcher, 0);
	nu_pid s = nu_gen_server_start(&counter_cbs, nu_int(0), NULL);
	nu_term st = nu_pid_term(s), r;
	CU_ASSERT_EQUAL(nu_call(st, NU_NONE, 100, &r), -EINVAL);
	CU_ASSERT_EQUAL(nu_call(st, nu_int(1), 100, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_call(st, nu_int(1), -2, &r), -EINVAL);
	CU_ASSERT_EQUAL(nu_call(nu_int(5), nu_int(1), 100, &r), -EINVAL);
	CU_ASSERT_EQUAL(nu_call(NU_ATOM_UNDEFINED, nu_int(1), 100, &r),
			-EINVAL);
	CU_ASSERT_EQUAL(nu_call(nu_pid_term(nu_self()), nu_int(1), 100, &r),
			-EDEADLK);
	CU_ASSERT_EQUAL(nu_cast(st, NU_NONE), -EINVAL);
	CU_ASSERT_EQUAL(nu_cast(nu_binary("x", 1), nu_int(1)), -EINVAL);
	CU_ASSERT_EQUAL(nu_reply(nu_int(1), nu_int(1)), -EINVAL);
	CU_ASSERT_EQUAL(nu_reply(nu_tuple(2, nu_pid_term(s), nu_int(1)),
				 nu_int(1)),
			-EINVAL);
	CU_ASSERT_EQUAL(nu_gen_stop(st, NU_NONE, 100), -EINVAL);
	CU_ASSERT_EQUAL(nu_gen_status(st, NULL, 5, 100), -EINVAL);
	/* a reply to a process that is not calling goes nowhere */
	CU_ASSERT_EQUAL(nu_reply(nu_tuple(2, nu_pid_term(nu_self()),
					  nu_make_ref()),
				 nu_atom("stray")),
			0);
	nu_sleep(5);
	CU_ASSERT(mailbox_empty());
	/* stop timeout: the server is busy for 100 ms; it stops later */
	nu_spawn(slow_caller, (void *)(intptr_t)s);
	nu_sleep(10);
	nu_term ref;
	nu_monitor(s, &ref);
	CU_ASSERT_EQUAL(nu_gen_stop(st, NU_ATOM_NORMAL, 20), -ETIMEDOUT);
	CU_ASSERT(nt_down_reason(ref, s, 2000) == NU_ATOM_NORMAL);
	CU_ASSERT(mailbox_empty());
}

static void test_args(void)
{
	nu_config c;
	cfg(&c);
	nu_term r;
	CU_ASSERT_EQUAL(nu_call(nu_atom("x"), nu_int(1), 0, &r), -EPERM);
	CU_ASSERT_EQUAL(nu_cast(nu_atom("x"), nu_int(1)), -ESRCH);
	CU_ASSERT_EQUAL(nu_start(&c, args_main, NULL), 0);
}

/* Calls with 10,000 unrelated messages queued in front: all answered,
 * the queue kept in order; heaps do not grow with the number of calls. */
static void queue_main(void *a)
{
	(void)a;
	atomic_store(&watcher, 0);
	nu_pid s = nu_gen_server_start(&counter_cbs, nu_int(0), NULL);
	nu_term st = nu_pid_term(s), r;
	for (int i = 0; i < 10000; i++)
		nu_send(nu_self(), nu_int(i));
	for (int i = 0; i < 1000; i++)
		CU_ASSERT_EQUAL(get(st), 0);
	size_t mine = nu_heap_used();
	CU_ASSERT_EQUAL(nu_call(st, nu_atom("heap"), 1000, &r), 0);
	int64_t theirs = nu_int_value(r);
	for (int i = 0; i < 20000; i++) {
		nu_call(st, nu_tuple(1, nu_int(i)), 1000, &r);
		nu_term_free(r);
	}
	CU_ASSERT(nu_heap_used() <= mine + 20000 * 32); /* the tuples only */
	CU_ASSERT_EQUAL(nu_call(st, nu_atom("heap"), 1000, &r), 0);
	CU_ASSERT(nu_int_value(r) <= theirs + 4096);
	for (int i = 0; i < 10000; i++) {
		nu_term t;
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 0), 0);
		CU_ASSERT_EQUAL(t, nu_int(i));
	}
	CU_ASSERT(mailbox_empty());
	nu_gen_stop(st, NU_ATOM_NORMAL, 1000);
}

static void test_queue(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, queue_main, NULL), 0);
}

static CU_TestInfo tests[] = {
	{ "call, cast, info, deferred reply, status, stop", test_basics },
	{ "a call timeout leaves no late reply behind", test_timeout },
	{ "a dead server: its reason, noproc, cast no-op", test_dead },
	{ "named servers; a taken name", test_names },
	{ "init: stop, ignore, crash, bad return, timeout", test_init },
	{ "terminate on the parent's exit; idle timeout", test_parent },
	{ "bad arguments; stray replies go nowhere", test_args },
	{ "calls with a long queue; heaps stay flat", test_queue },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("gen_server", tests)
