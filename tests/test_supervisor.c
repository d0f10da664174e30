/* test_supervisor.c — supervisors as OTP documents them: each restart
 * strategy restarts exactly the right children in the right order
 * (stopped in reverse, started in order); transient children are not
 * restarted after a normal exit, temporary ones never; too many restarts
 * stop the supervisor and its children, and its parent sees shutdown; a
 * shutdown timeout falls back to kill; nested trees escalate; 10,000
 * simple_one_for_one children start and stop; the child API; bad input. */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

static void cfg(nu_config *c) { nt_config(c, nt_two(), 100000, 4 << 20); }

static _Atomic nu_pid watcher; /* gets {started | stopped, Name} */

/* A worker: says it started, traps exits so it can say it stopped (or,
 * stubborn, ignores the shutdown), exits on request. */
typedef struct wspec {
	const char *name;
	int stubborn;
} wspec;

static void note(const char *what, const char *name)
{
	nu_pid w = atomic_load(&watcher);
	if (w > 0)
		nu_send(w, nu_tuple(2, nu_atom(what), nu_atom(name)));
}

static void worker(void *arg)
{
	const wspec *ws = arg;
	nu_trap_exit(1);
	nu_term m;
	while (nu_receive(&m, -1) == 0) {
		if (nu_tuple_size(m) == 2 && /* {sync, Starter}: running */
		    nu_tuple_elem(m, 0) == nu_atom("sync"))
			nu_send(nu_pid_value(nu_tuple_elem(m, 1)),
				nu_tuple(2, nu_atom("ready"),
					 nu_pid_term(nu_self())));
		if (m == nu_atom("crash"))
			nu_exit(nu_atom("crashed"));
		if (m == nu_atom("normal"))
			return;
		if (nu_tuple_size(m) == 3 && !ws->stubborn &&
		    nu_tuple_elem(m, 2) == NU_ATOM_SHUTDOWN) {
			note("stopped", ws->name);
			nu_exit(NU_ATOM_SHUTDOWN);
		}
		nu_term_free(m);
	}
}

/* Runs in the supervisor: start a linked worker and wait until it traps
 * exits, so that the order of the notes is the order of the starts. */
static nu_pid w_start(void *arg, nu_term extra)
{
	(void)extra;
	const wspec *ws = arg;
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.link = 1; /* to the caller: the supervisor */
	nu_pid pid = nu_spawn_opt(worker, arg, &o);
	if (pid < 0)
		return pid;
	nu_send(pid, nu_tuple(2, nu_atom("sync"), nu_pid_term(nu_self())));
	nu_pattern *pat;
	nu_pattern_compile("{ready, P}", &pat, NULL);
	nu_term pre[1] = { nu_pid_term(pid) }, v[1];
	nu_clause c = { pat, pre, v };
	nu_receive_select(&c, 1, -1, NULL);
	nu_pattern_free(pat);
	note("started", ws->name);
	return pid;
}

static nu_pid w_ignore(void *arg, nu_term extra)
{
	(void)arg, (void)extra;
	return 0;
}

static nu_pid w_fail(void *arg, nu_term extra)
{
	(void)arg, (void)extra;
	return -EIO;
}

static wspec wa = { "a", 0 }, wb = { "b", 0 }, wc = { "c", 0 };

static nu_child_spec spec(const char *id, wspec *w, nu_restart r)
{
	return (nu_child_spec){ id, w_start, w, r, 1000, NU_WORKER };
}

/* The events that came until 50 ms of quiet: "+a+b-c..." */
static void events(char *buf, size_t len)
{
	size_t n = 0;
	buf[0] = 0;
	nu_term m;
	while (nu_receive(&m, 50) == 0) {
		const char *w = nu_atom_name(nu_tuple_elem(m, 0));
		const char *who = nu_atom_name(nu_tuple_elem(m, 1));
		if (w && who && n + 3 < len)
			n += (size_t)snprintf(buf + n, len - n, "%c%s",
					      w[1] == 't' && w[2] == 'a' ? '+'
									  : '-',
					      who);
	}
}

/* The pid of child id (0 if not running, -1 if absent). */
static nu_pid pid_of(nu_pid sup, const char *id)
{
	nu_child_info ci[16];
	int n = nu_sup_which_children(nu_pid_term(sup), ci, 16);
	for (int i = 0; i < n && i < 16; i++)
		if (ci[i].id == nu_atom(id))
			return ci[i].pid;
	return -1;
}

static nu_pid start3(nu_sup_strategy st, nu_restart r, int intensity)
{
	nu_sup_flags f = { st, intensity, 5 };
	nu_child_spec c[3] = { spec("a", &wa, r), spec("b", &wb, r),
			       spec("c", &wc, r) };
	return nu_sup_start_link(&f, c, 3, NULL);
}

/* Crash child b of a fresh supervisor with strategy st; the events. */
static void strategy_case(nu_sup_strategy st, const char *want)
{
	char ev[128];
	nu_pid s = start3(st, NU_PERMANENT, 3);
	CU_ASSERT_FATAL(s > 0);
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "+a+b+c");
	nu_pid a = pid_of(s, "a"), b = pid_of(s, "b"), c = pid_of(s, "c");
	nu_send(b, nu_atom("crash"));
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, want);
	CU_ASSERT(pid_of(s, "b") > 0 && pid_of(s, "b") != b);
	int all = st == NU_ONE_FOR_ALL, rest = st != NU_ONE_FOR_ONE;
	CU_ASSERT_EQUAL(pid_of(s, "a") == a, !all);
	CU_ASSERT_EQUAL(pid_of(s, "c") == c, !rest);
	CU_ASSERT_EQUAL(nu_gen_stop(nu_pid_term(s), NU_ATOM_SHUTDOWN, 5000), 0);
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "-c-b-a"); /* reverse start order */
	nt_wait_alone();
}

static void strategies_main(void *a)
{
	(void)a;
	atomic_store(&watcher, nu_self());
	nu_trap_exit(1);
	strategy_case(NU_ONE_FOR_ONE, "+b");
	strategy_case(NU_ONE_FOR_ALL, "-c-a+a+b+c");
	strategy_case(NU_REST_FOR_ONE, "-c+b+c");
}

static void test_strategies(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, strategies_main, NULL), 0);
}

static void restart_types_main(void *a)
{
	(void)a;
	char ev[128];
	atomic_store(&watcher, nu_self());
	nu_trap_exit(1);
	nu_sup_flags f = { NU_ONE_FOR_ONE, 10, 5 };
	nu_child_spec c[3] = { spec("a", &wa, NU_PERMANENT),
			       spec("b", &wb, NU_TRANSIENT),
			       spec("c", &wc, NU_TEMPORARY) };
	nu_pid s = nu_sup_start_link(&f, c, 3, NULL);
	CU_ASSERT_FATAL(s > 0);
	events(ev, sizeof(ev));
	/* permanent: restarted even after a normal exit */
	nu_send(pid_of(s, "a"), nu_atom("normal"));
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "+a");
	/* transient: restarted after a crash, not after a normal exit */
	nu_send(pid_of(s, "b"), nu_atom("crash"));
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "+b");
	nu_send(pid_of(s, "b"), nu_atom("normal"));
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "");
	CU_ASSERT_EQUAL(pid_of(s, "b"), 0); /* kept, not running */
	/* temporary: never restarted, and forgotten */
	nu_send(pid_of(s, "c"), nu_atom("crash"));
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "");
	CU_ASSERT_EQUAL(pid_of(s, "c"), -1);
	nu_sup_counts k;
	CU_ASSERT_EQUAL(nu_sup_count_children(nu_pid_term(s), &k), 0);
	CU_ASSERT(k.specs == 2 && k.active == 1 && k.workers == 2 &&
		  k.supervisors == 0);
	nu_gen_stop(nu_pid_term(s), NU_ATOM_SHUTDOWN, 5000);
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "-a");
}

static void test_restart_types(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, restart_types_main, NULL), 0);
}

static void intensity_main(void *a)
{
	(void)a;
	char ev[128];
	atomic_store(&watcher, nu_self());
	nu_trap_exit(1);
	nu_pid s = start3(NU_ONE_FOR_ONE, NU_PERMANENT, 2);
	CU_ASSERT_FATAL(s > 0);
	events(ev, sizeof(ev));
	for (int i = 0; i < 2; i++) { /* two restarts are allowed */
		nu_send(pid_of(s, "a"), nu_atom("crash"));
		events(ev, sizeof(ev));
		CU_ASSERT_STRING_EQUAL(ev, "+a");
	}
	nu_send(pid_of(s, "a"), nu_atom("crash")); /* the third is not */
	CU_ASSERT(nt_exit_reason(s, 5000) == NU_ATOM_SHUTDOWN);
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "-c-b"); /* a is dead already */
	nt_wait_alone();
}

static void test_intensity(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, intensity_main, NULL), 0);
}

static wspec stubborn = { "s", 1 };

static void shutdown_main(void *a)
{
	(void)a;
	char ev[128];
	atomic_store(&watcher, nu_self());
	nu_trap_exit(1);
	nu_sup_flags f = { NU_ONE_FOR_ONE, 3, 5 };
	nu_child_spec c[2] = { spec("s", &stubborn, NU_PERMANENT),
			       spec("b", &wb, NU_PERMANENT) };
	c[0].shutdown_ms = 50;
	c[1].shutdown_ms = NU_SHUTDOWN_BRUTAL_KILL;
	nu_pid s = nu_sup_start_link(&f, c, 2, NULL);
	events(ev, sizeof(ev));
	nu_pid sp = pid_of(s, "s"), bp = pid_of(s, "b");
	nu_term r1, r2;
	nu_monitor(sp, &r1);
	nu_monitor(bp, &r2);
	uint64_t t0 = nu_clock_ns();
	CU_ASSERT_EQUAL(nu_sup_terminate_child(nu_pid_term(s), nu_atom("s")),
			0);
	uint64_t dt = nu_clock_ns() - t0;
	CU_ASSERT(dt >= 50000000u && dt < 2000000000u);
	CU_ASSERT(nt_down_reason(r1, sp, 1000) == NU_ATOM_KILLED);
	CU_ASSERT_EQUAL(pid_of(s, "s"), 0); /* its spec is kept */
	/* brutal_kill: killed, no chance to say it stopped */
	CU_ASSERT_EQUAL(nu_sup_terminate_child(nu_pid_term(s), nu_atom("b")),
			0);
	CU_ASSERT(nt_down_reason(r2, bp, 1000) == NU_ATOM_KILLED);
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "");
	/* restart and delete */
	CU_ASSERT(nu_sup_restart_child(nu_pid_term(s), nu_atom("b")) > 0);
	CU_ASSERT_EQUAL(nu_sup_restart_child(nu_pid_term(s), nu_atom("b")),
			-EBUSY);
	CU_ASSERT_EQUAL(nu_sup_delete_child(nu_pid_term(s), nu_atom("b")),
			-EBUSY);
	CU_ASSERT_EQUAL(nu_sup_delete_child(nu_pid_term(s), nu_atom("s")), 0);
	CU_ASSERT_EQUAL(nu_sup_delete_child(nu_pid_term(s), nu_atom("s")),
			-ENOENT);
	CU_ASSERT_EQUAL(nu_sup_terminate_child(nu_pid_term(s), nu_atom("zz")),
			-ENOENT);
	CU_ASSERT_EQUAL(nu_sup_which_children(nu_pid_term(s), NULL, 0), 1);
	nu_gen_stop(nu_pid_term(s), NU_ATOM_SHUTDOWN, 5000);
	nt_wait_alone();
}

static void test_shutdown(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, shutdown_main, NULL), 0);
}

/* ------------------------------------------------------- nested trees */

static nu_pid inner_start(void *arg, nu_term extra)
{
	(void)arg, (void)extra;
	nu_sup_flags f = { NU_ONE_FOR_ONE, 1, 5 };
	nu_child_spec c[2] = { spec("b", &wb, NU_PERMANENT),
			       spec("c", &wc, NU_PERMANENT) };
	return nu_sup_start_link(&f, c, 2, NULL);
}

static void nested_main(void *a)
{
	(void)a;
	char ev[128];
	atomic_store(&watcher, nu_self());
	nu_trap_exit(1);
	nu_sup_flags f = { NU_ONE_FOR_ONE, 3, 5 };
	nu_child_spec c[2] = {
		spec("a", &wa, NU_PERMANENT),
		{ "inner", inner_start, NULL, NU_PERMANENT,
		  NU_SHUTDOWN_INFINITY, NU_SUPERVISOR },
	};
	nu_pid s = nu_sup_start_link(&f, c, 2, NULL);
	CU_ASSERT_FATAL(s > 0);
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "+a+b+c");
	nu_pid in = pid_of(s, "inner");
	/* a crash inside is handled inside */
	nu_send(pid_of(in, "b"), nu_atom("crash"));
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "+b");
	CU_ASSERT_EQUAL(pid_of(s, "inner"), in);
	/* a second within the period is too many for the inner tree: it
	 * stops its children and the outer one restarts it */
	nu_send(pid_of(in, "b"), nu_atom("crash"));
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "-c+b+c");
	CU_ASSERT(pid_of(s, "inner") > 0 && pid_of(s, "inner") != in);
	nu_sup_counts k;
	nu_sup_count_children(nu_pid_term(s), &k);
	CU_ASSERT(k.supervisors == 1 && k.workers == 1 && k.active == 2);
	nu_gen_stop(nu_pid_term(s), NU_ATOM_SHUTDOWN, 5000);
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "-c-b-a");
	nt_wait_alone();
}

static void test_nested(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, nested_main, NULL), 0);
}

/* ------------------------------------------------ simple_one_for_one */

static void simple_worker(void *arg)
{
	(void)arg;
	nu_term m;
	while (nu_receive(&m, -1) == 0 && m != nu_atom("crash"))
		nu_term_free(m);
	nu_exit(nu_atom("crashed"));
}

static nu_pid simple_start(void *arg, nu_term extra)
{
	(void)arg;
	if (extra == nu_atom("ignore"))
		return 0;
	if (extra == nu_atom("fail"))
		return -EIO;
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.link = 1;
	return nu_spawn_opt(simple_worker, NULL, &o);
}

static void simple_main(void *a)
{
	(void)a;
	atomic_store(&watcher, 0);
	nu_sup_flags f = { NU_SIMPLE_ONE_FOR_ONE, 5, 5 };
	nu_child_spec t = { NULL, simple_start, NULL, NU_PERMANENT, 1000,
			    NU_WORKER };
	nu_pid s = nu_sup_start_link(&f, &t, 1, NULL);
	CU_ASSERT_FATAL(s > 0);
	nu_term st = nu_pid_term(s);
	enum { N = 10000 };
	int ok = 0;
	for (int i = 0; i < N; i++)
		ok += nu_sup_start_child(st, NULL, nu_int(i)) > 0;
	CU_ASSERT_EQUAL(ok, N);
	nu_sup_counts k;
	CU_ASSERT_EQUAL(nu_sup_count_children(st, &k), 0);
	CU_ASSERT(k.specs == N && k.active == N);
	CU_ASSERT_EQUAL(nu_process_count(), N + 2);
	CU_ASSERT_EQUAL(nu_sup_start_child(st, NULL, nu_atom("ignore")), 0);
	CU_ASSERT_EQUAL(nu_sup_start_child(st, NULL, nu_atom("fail")), -ESRCH);
	CU_ASSERT_EQUAL(nu_sup_start_child(st, &t, NU_NIL), -EINVAL);
	/* a crashed one comes back; a terminated one is gone */
	nu_child_info ci[2];
	CU_ASSERT_EQUAL(nu_sup_which_children(st, ci, 2), N);
	nu_send(ci[0].pid, nu_atom("crash"));
	nu_sleep(20);
	CU_ASSERT_EQUAL(nu_sup_count_children(st, &k), 0);
	CU_ASSERT(k.active == N);
	CU_ASSERT_EQUAL(nu_sup_terminate_child(st, nu_pid_term(ci[1].pid)), 0);
	CU_ASSERT_EQUAL(nu_sup_count_children(st, &k), 0);
	CU_ASSERT(k.active == N - 1 && k.specs == N - 1);
	CU_ASSERT_EQUAL(nu_sup_delete_child(st, nu_atom("x")), -EINVAL);
	/* stopping the supervisor stops all of them */
	nu_trap_exit(1);
	CU_ASSERT_EQUAL(nu_gen_stop(st, NU_ATOM_SHUTDOWN, 10000), 0);
	CU_ASSERT_EQUAL(nu_process_count(), 1);
}

static void test_simple(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, simple_main, NULL), 0);
}

/* --------------------------------------------------------- the API */

static void api_main(void *a)
{
	(void)a;
	char ev[128];
	atomic_store(&watcher, nu_self());
	nu_trap_exit(1);
	nu_sup_flags f = { NU_ONE_FOR_ONE, 1, 5 };
	nu_child_spec c[3] = { spec("a", &wa, NU_PERMANENT),
			       spec("b", &wb, NU_PERMANENT),
			       spec("c", &wc, NU_PERMANENT) };
	/* a child that fails to start: the started ones stop, in reverse */
	c[2].start = w_fail;
	nu_gen_opts o;
	nu_term why;
	nu_gen_opts_init(&o);
	o.reason = &why;
	CU_ASSERT_EQUAL(nu_sup_start_link(&f, c, 3, &o), -ESRCH);
	CU_ASSERT(nu_tuple_elem(why, 0) == NU_ATOM_SHUTDOWN);
	nu_term d = nu_tuple_elem(why, 1);
	CU_ASSERT(nu_tuple_elem(d, 0) == nu_atom("failed_to_start_child") &&
		  nu_tuple_elem(d, 1) == nu_atom("c"));
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "+a+b-b-a");
	/* ignore keeps the spec, not running */
	c[2].start = w_ignore;
	nu_pid s = nu_sup_start_link(&f, c, 3, NULL);
	CU_ASSERT_FATAL(s > 0);
	events(ev, sizeof(ev));
	CU_ASSERT_EQUAL(pid_of(s, "c"), 0);
	nu_term st = nu_pid_term(s);
	/* dynamic children */
	nu_child_spec d1 = spec("d", &wa, NU_PERMANENT);
	CU_ASSERT(nu_sup_start_child(st, &d1, NU_NIL) > 0);
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "+a"); /* d runs wa too */
	CU_ASSERT_EQUAL(nu_sup_start_child(st, &d1, NU_NIL), -EEXIST);
	CU_ASSERT_EQUAL(nu_sup_start_child(st, NULL, nu_int(1)), -EINVAL);
	nu_child_spec bad = d1;
	bad.id = "e";
	bad.start = w_fail;
	CU_ASSERT_EQUAL(nu_sup_start_child(st, &bad, NU_NIL), -ESRCH);
	CU_ASSERT_EQUAL(pid_of(s, "e"), -1); /* not kept */
	nu_child_info ci[8];
	CU_ASSERT_EQUAL(nu_sup_which_children(st, ci, 8), 4);
	const char *order[4] = { "a", "b", "c", "d" };
	for (int i = 0; i < 4; i++)
		CU_ASSERT(ci[i].id == nu_atom(order[i]));
	CU_ASSERT_EQUAL(nu_sup_which_children(st, ci, 2), 4);
	/* bad input */
	bad.start = NULL;
	CU_ASSERT_EQUAL(nu_sup_start_child(st, &bad, NU_NIL), -EINVAL);
	bad = d1;
	bad.restart = 7;
	CU_ASSERT_EQUAL(nu_sup_start_child(st, &bad, NU_NIL), -EINVAL);
	bad = d1;
	bad.shutdown_ms = -3;
	CU_ASSERT_EQUAL(nu_sup_start_child(st, &bad, NU_NIL), -EINVAL);
	CU_ASSERT_EQUAL(nu_sup_terminate_child(st, nu_int(1)), -EINVAL);
	CU_ASSERT_EQUAL(nu_sup_which_children(st, NULL, 3), -EINVAL);
	CU_ASSERT_EQUAL(nu_sup_count_children(st, NULL), -EINVAL);
	nu_sup_flags bf = { NU_ONE_FOR_ONE, -1, 5 };
	CU_ASSERT_EQUAL(nu_sup_start_link(&bf, c, 3, NULL), -EINVAL);
	bf = (nu_sup_flags){ NU_ONE_FOR_ONE, 1, 0 };
	CU_ASSERT_EQUAL(nu_sup_start_link(&bf, c, 3, NULL), -EINVAL);
	bf = (nu_sup_flags){ 9, 1, 5 };
	CU_ASSERT_EQUAL(nu_sup_start_link(&bf, c, 3, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_sup_start_link(NULL, c, 3, NULL), -EINVAL);
	nu_child_spec dup[2] = { c[0], c[0] };
	CU_ASSERT_EQUAL(nu_sup_start_link(&f, dup, 2, NULL), -EINVAL);
	bf = (nu_sup_flags){ NU_SIMPLE_ONE_FOR_ONE, 1, 5 };
	CU_ASSERT_EQUAL(nu_sup_start_link(&bf, c, 2, NULL), -EINVAL);
	/* a dead supervisor */
	nu_gen_stop(st, NU_ATOM_SHUTDOWN, 5000);
	events(ev, sizeof(ev));
	CU_ASSERT_STRING_EQUAL(ev, "-a-b-a"); /* d, (c ignored), b, a */
	CU_ASSERT_EQUAL(nu_sup_count_children(st, &(nu_sup_counts){ 0 }),
			-ESRCH);
	CU_ASSERT_EQUAL(nu_sup_start_child(st, &d1, NU_NIL), -ESRCH);
	nt_wait_alone();
}

static void test_api(void)
{
	nu_config c;
	cfg(&c);
	nu_sup_flags f = { NU_ONE_FOR_ONE, 1, 5 };
	CU_ASSERT_EQUAL(nu_sup_start_link(&f, NULL, 0, NULL), -EPERM);
	CU_ASSERT_EQUAL(nu_start(&c, api_main, NULL), 0);
}

static CU_TestInfo tests[] = {
	{ "one_for_one, one_for_all, rest_for_one", test_strategies },
	{ "permanent, transient, temporary", test_restart_types },
	{ "too many restarts: shutdown, the parent sees it", test_intensity },
	{ "shutdown timeout falls back to kill; brutal_kill", test_shutdown },
	{ "nested trees escalate", test_nested },
	{ "10,000 simple_one_for_one children", test_simple },
	{ "child API and bad input", test_api },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("supervisor", tests)
