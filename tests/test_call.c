/* test_call.c — the watch a call keeps on its server (runtime/call.c):
 * a server that exits answers every call still open on it with its exit
 * reason (calls it took and kept, calls queued, calls pushed but not yet
 * taken); a call answered elsewhere or given up leaves nothing behind
 * when the server exits later; calls nobody answers do not pile up on the
 * server; servers exiting under calls from two schedulers give each call
 * exactly one answer. The servers here are plain processes receiving the
 * raw {'$gen_call', From, Req} message, so no behaviour loop helps. */
#include <errno.h>
#include <stdatomic.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

static void cfg(nu_config *c) { nt_config(c, nt_two(), 100000, 1 << 20); }

/* {'$gen_call', From, Req} of a received call, or 0. */
static int is_call(nu_term t, nu_term *from, nu_term *req)
{
	if (nu_tuple_size(t) != 3 ||
	    nu_tuple_elem(t, 0) != nu_atom("$gen_call"))
		return 0;
	*from = nu_tuple_elem(t, 1);
	*req = nu_tuple_elem(t, 2);
	return 1;
}

/* The next call's From (its message stays: From points into it). */
static nu_term take_call(void)
{
	nu_term t, from, req;
	for (;;) {
		if (nu_receive(&t, 5000) != 0)
			return NU_NONE;
		if (is_call(t, &from, &req))
			return from;
	}
}

/* A caller: calls the server in arg, reports {Rc, Reply or Reason} to
 * the test's main process (`parent`). */
static _Atomic nu_pid parent;

static void caller(void *a)
{
	nu_pid server = (nu_pid)(intptr_t)a;
	nu_term r = NU_NONE;
	int rc = nu_call(nu_pid_term(server), nu_atom("hold"), -1, &r);
	nu_send(atomic_load(&parent), nu_tuple(2, nu_int(rc), r));
}

/* Keeps two calls, waits for `go` with two more queued, then sleeps
 * while two more are pushed, and exits with {gone, 42}. */
static void keeper(void *a)
{
	(void)a;
	nu_pid p = atomic_load(&parent);
	CU_ASSERT(take_call() != NU_NONE);
	CU_ASSERT(take_call() != NU_NONE);
	nu_send(p, nu_atom("holding"));
	nu_pattern *go;
	CU_ASSERT_EQUAL_FATAL(nu_pattern_compile("go", &go, NULL), 0);
	nu_clause c = { go, NULL, NULL };
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive_select(&c, 1, 5000, &t), 0);
	nu_pattern_free(go);
	nu_send(p, nu_atom("sleeping"));
	nu_sleep(300);
	nu_exit(nu_tuple(2, nu_atom("gone"), nu_int(42)));
}

static void expect(nu_term msg)
{
	nu_term t;
	CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 5000), 0);
	CU_ASSERT(nu_term_equal(t, msg));
}

static void exit_main(void *a)
{
	(void)a;
	atomic_store(&parent, nu_self());
	nu_pid k = nu_spawn(keeper, NULL);
	void *karg = (void *)(intptr_t)k;
	nu_spawn(caller, karg);
	nu_spawn(caller, karg);
	expect(nu_atom("holding"));
	nu_spawn(caller, karg);
	nu_spawn(caller, karg);
	nu_proc_info info = { 0 };
	for (int i = 0; i < 5000 && info.mailbox_len < 2; i++) {
		nu_sleep(1);
		CU_ASSERT_EQUAL_FATAL(nu_process_info(k, &info), 0);
	}
	CU_ASSERT_EQUAL(info.mailbox_len, 2); /* queued, not received */
	nu_send(k, nu_atom("go"));
	expect(nu_atom("sleeping"));
	nu_spawn(caller, karg); /* pushed while it sleeps: never taken */
	nu_spawn(caller, karg);
	nu_term gone = nu_tuple(2, nu_atom("gone"), nu_int(42));
	for (int i = 0; i < 6; i++)
		expect(nu_tuple(2, nu_int(-ESRCH), gone));
	nt_wait_alone();
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive(&t, 20), -ETIMEDOUT);
}

static void test_exit(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, exit_main, NULL), 0);
}

/* Hands the first call's From to a helper that answers it, keeps the
 * second call unanswered, then exits when told. */
static void answerer(void *a)
{
	(void)a;
	nu_term from;
	if (nu_receive(&from, 5000) == 0)
		nu_reply(from, nu_atom("fine"));
}

static void delegator(void *a)
{
	(void)a;
	nu_term from = take_call();
	nu_send(nu_spawn(answerer, NULL), from);
	CU_ASSERT(take_call() != NU_NONE); /* the second is never answered */
	nu_term t;
	nu_receive(&t, 5000); /* `go` */
	nu_exit(nu_atom("later"));
}

static void settled_main(void *a)
{
	(void)a;
	nu_pid d = nu_spawn(delegator, NULL);
	nu_term r, ref;
	CU_ASSERT_EQUAL(nu_call(nu_pid_term(d), nu_atom("x"), 5000, &r), 0);
	CU_ASSERT(r == nu_atom("fine"));
	CU_ASSERT_EQUAL(nu_call(nu_pid_term(d), nu_atom("y"), 30, &r),
			-ETIMEDOUT);
	CU_ASSERT_EQUAL(nu_monitor(d, &ref), 0);
	nu_send(d, nu_atom("go"));
	CU_ASSERT(nt_down_reason(ref, d, 5000) == nu_atom("later"));
	/* neither call hears of the exit: nothing else arrives */
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive(&t, 50), -ETIMEDOUT);
}

static void test_settled(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, settled_main, NULL), 0);
}

/* Takes every call and answers none but `sync`, until `stop`. */
static void black_hole(void *a)
{
	(void)a;
	nu_term t, from, req;
	while (nu_receive(&t, 5000) == 0 && t != nu_atom("stop")) {
		if (is_call(t, &from, &req) && req == nu_atom("sync"))
			nu_reply(from, req);
		nu_term_free(t);
	}
}

/* Every call sent to h before this one has been taken. */
static void synced(nu_pid h)
{
	nu_term r;
	CU_ASSERT_EQUAL_FATAL(nu_call(nu_pid_term(h), nu_atom("sync"), 5000,
				      &r), 0);
}

#define UNANSWERED 100000

static void pile_main(void *a)
{
	(void)a;
	nu_pid h = nu_spawn(black_hole, NULL);
	nu_term r;
	for (int i = 0; i < 1000; i++) /* warm up */
		nu_call(nu_pid_term(h), nu_int(i), 0, &r);
	synced(h);
	long before = nt_heap_bytes();
	for (int i = 1; i <= UNANSWERED; i++) {
		CU_ASSERT_EQUAL_FATAL(nu_call(nu_pid_term(h), nu_int(i), 0, &r),
				      -ETIMEDOUT);
		if (i % 1000 == 0) /* no backlog of messages */
			synced(h);
	}
	long grown = nt_heap_bytes() - before;
	/* kept open, 100,000 calls would be 1.6 MB on the server */
	CU_ASSERT(grown < 256 << 10);
	if (grown >= 256 << 10)
		fprintf(stderr, "grew %ld bytes\n", grown);
	CU_ASSERT_EQUAL(nu_is_alive(h), 1);
	nu_send(h, nu_atom("stop"));
	nt_wait_alone();
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive(&t, 20), -ETIMEDOUT);
}

static void test_pile(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, pile_main, NULL), 0);
}

/* Answers arg calls with `ok`, then exits with {done, arg}. */
static void short_server(void *a)
{
	intptr_t n = (intptr_t)a;
	for (intptr_t i = 0; i < n; i++) {
		nu_term from = take_call();
		if (from == NU_NONE)
			return;
		nu_reply(from, nu_atom("ok"));
	}
	nu_exit(nu_tuple(2, nu_atom("done"), nu_int(n)));
}

/* Calls the server in arg until a call fails: the reason must be the
 * server's, or noproc once it is gone; reports `good` or `bad`. */
static void racer(void *a)
{
	nu_pid s = (nu_pid)(intptr_t)a;
	nu_term r, bad = nu_atom("bad");
	int rc;
	while ((rc = nu_call(nu_pid_term(s), nu_atom("ping"), -1, &r)) == 0)
		if (r != nu_atom("ok"))
			goto out;
	if (rc != -ESRCH)
		goto out;
	if (r != NU_ATOM_NOPROC &&
	    !(nu_tuple_size(r) == 2 && nu_tuple_elem(r, 0) == nu_atom("done")))
		goto out;
	nu_term t;
	if (nu_receive(&t, 0) == -ETIMEDOUT) /* nothing else came */
		bad = nu_atom("good");
out:
	nu_send(atomic_load(&parent), bad);
}

#define ROUNDS 300
#define RACERS 3

static void race_main(void *a)
{
	(void)a;
	atomic_store(&parent, nu_self());
	for (int round = 0; round < ROUNDS; round++) {
		nu_pid s = nu_spawn(short_server,
				    (void *)(intptr_t)(round % 23));
		for (int i = 0; i < RACERS; i++)
			nu_spawn(racer, (void *)(intptr_t)s);
		for (int i = 0; i < RACERS; i++) {
			nu_term t;
			CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 5000), 0);
			CU_ASSERT(t == nu_atom("good"));
		}
	}
	nt_wait_alone();
}

static void test_race(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, race_main, NULL), 0);
}

static CU_TestInfo tests[] = {
	{ "an exiting server answers kept, queued and pushed calls",
	  test_exit },
	{ "a call answered elsewhere or given up hears nothing later",
	  test_settled },
	{ "calls nobody answers do not pile up on the server", test_pile },
	{ "servers exiting under calls: one answer per call", test_race },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("call", tests)
