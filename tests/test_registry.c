/* test_registry.c — registered names: register/whereis/unregister, bad
 * names, one name per process, a name is free again after its process
 * exits, send to a name, and a race for one name has one winner. */
#include <errno.h>
#include <stdatomic.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

static void cfg(nu_config *c) { nt_config(c, nt_two(), 10000, 1 << 20); }

static void quick(void *a) { (void)a; }

static void basics_main(void *a)
{
	(void)a;
	nu_term server = nu_atom("server"), other = nu_atom("other");
	nu_pid me = nu_self();
	CU_ASSERT_EQUAL(nu_whereis(server), -ENOENT);
	CU_ASSERT_EQUAL(nu_register(server, me), 0);
	CU_ASSERT_EQUAL(nu_whereis(server), me);
	CU_ASSERT_EQUAL(nu_register(other, me), -EEXIST); /* one per process */
	nu_pid dead = nu_spawn(quick, NULL);
	nt_wait_alone();
	CU_ASSERT_EQUAL(nu_register(other, dead), -ESRCH);
	CU_ASSERT_EQUAL(nu_register(NU_ATOM_UNDEFINED, me), -EINVAL);
	CU_ASSERT_EQUAL(nu_register(nu_int(3), me), -EINVAL);
	CU_ASSERT_EQUAL(nu_register(NU_NONE, me), -EINVAL);
	CU_ASSERT_EQUAL(nu_register(other, 0), -EINVAL);
	CU_ASSERT_EQUAL(nu_whereis(nu_int(1)), -EINVAL);
	CU_ASSERT_EQUAL(nu_unregister(nu_int(1)), -EINVAL);
	CU_ASSERT_EQUAL(nu_unregister(server), 0);
	CU_ASSERT_EQUAL(nu_unregister(server), -ENOENT);
	CU_ASSERT_EQUAL(nu_whereis(server), -ENOENT);
	CU_ASSERT_EQUAL(nu_register(other, me), 0); /* free to take one again */
	nu_term t;
	CU_ASSERT_EQUAL(nu_send_name(other, nu_int(42)), 0);
	CU_ASSERT_EQUAL(nu_receive(&t, 1000), 0);
	CU_ASSERT_EQUAL(t, nu_int(42));
	CU_ASSERT_EQUAL(nu_send_name(server, nu_int(1)), -ENOENT);
}

static void test_basics(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_register(nu_atom("x"), 1), -ESRCH); /* no node */
	CU_ASSERT_EQUAL(nu_whereis(nu_atom("x")), -ESRCH);
	CU_ASSERT_EQUAL(nu_start(&c, basics_main, NULL), 0);
}

static void named_worker(void *a)
{
	(void)a;
	CU_ASSERT_EQUAL(nu_register(nu_atom("worker"), nu_self()), 0);
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive(&t, 5000), 0); /* wait for "go" */
}

static void exit_main(void *a)
{
	(void)a;
	nu_term worker = nu_atom("worker");
	nu_pid w = nu_spawn(named_worker, NULL);
	while (nu_whereis(worker) != w)
		nu_yield();
	CU_ASSERT_EQUAL(nu_register(worker, nu_self()), -EEXIST);
	CU_ASSERT_EQUAL(nu_send_name(worker, nu_atom("go")), 0);
	nt_wait_alone();
	CU_ASSERT_EQUAL(nu_whereis(worker), -ENOENT); /* released at exit */
	CU_ASSERT_EQUAL(nu_register(worker, nu_self()), 0);
}

static void test_released_at_exit(void)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, exit_main, NULL), 0);
}

static _Atomic int winners, losers;

static void racer(void *a)
{
	(void)a;
	int rc = nu_register(nu_atom("the_one"), nu_self());
	if (rc == 0)
		atomic_fetch_add(&winners, 1);
	else if (rc == -EEXIST)
		atomic_fetch_add(&losers, 1);
	nu_sleep(5); /* keep the name while the others try */
}

static void race_main(void *a)
{
	(void)a;
	for (int i = 0; i < 1000; i++)
		CU_ASSERT(nu_spawn(racer, NULL) > 0);
	nt_wait_alone();
	CU_ASSERT_EQUAL(nu_whereis(nu_atom("the_one")), -ENOENT);
}

static void test_race(void)
{
	nu_config c;
	cfg(&c);
	atomic_store(&winners, 0);
	atomic_store(&losers, 0);
	CU_ASSERT_EQUAL(nu_start(&c, race_main, NULL), 0);
	CU_ASSERT(atomic_load(&winners) >= 1);
	CU_ASSERT_EQUAL(atomic_load(&winners) + atomic_load(&losers), 1000);
}

static CU_TestInfo tests[] = {
	{ "register, whereis, unregister, bad input", test_basics },
	{ "a name is free again after its process exits", test_released_at_exit },
	{ "racing registrations: one holder at a time", test_race },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("registry", tests)
