/* test_crash.c — crash isolation (issue 4, item 7): with crash_isolation
 * on, a process that crashes in its own code (NULL write, integer divide
 * by zero, trap instruction, abort()) ends alone with reason
 * {signal, Name, Address}, seen by its monitors and links, while its
 * siblings finish and its scheduler runs on; with it off the OS process
 * dies; a crash inside the runtime still kills the OS process, after a
 * report naming the process; a SIGABRT sent from outside is no crash; bad
 * config values. The deaths run in fork()ed children. Runs twice in the
 * suite: userfaultfd mode and the fallback (NUPROC_UFFD=0). */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1 /* its SEGV handler runs after ours: it reports, and with
		  abort_on_error=1 the child dies of SIGABRT */
#else
#define ASAN 0
#endif

/* The crashing code must reach the hardware: no UBSan check in front. */
#define RAW __attribute__((noinline, no_sanitize("undefined")))

static void cfg(nu_config *c, int isolate)
{
	nt_config(c, nt_two(), 20000, 4 << 20);
	c->crash_isolation = isolate;
}

static nu_pid spawn_watched(nu_fn fn, void *arg, int sched, nu_term *ref)
{
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.monitor_ref = ref;
	o.scheduler = sched;
	return nu_spawn_opt(fn, arg, &o);
}

static nu_term crash_reason(const char *name, uint64_t addr)
{
	return nu_tuple(3, nu_atom("signal"), nu_atom(name), nu_uint64(addr));
}

static void nothing(void *a) { (void)a; }

/* A library built without its code range (LTO) refuses isolation: then
 * the tests that need it only check that refusal, and say so. */
static int isolation_built(void)
{
	static int built = -1;
	if (built < 0) {
		nu_config c;
		cfg(&c, 1);
		int rc = nu_start(&c, nothing, NULL);
		CU_ASSERT(rc == 0 || rc == -ENOTSUP);
		built = rc == 0;
		if (!built)
			fprintf(stderr, "crash isolation not built in (LTO?): "
					"nu_start gave -ENOTSUP; skipped\n");
	}
	return built;
}

/* ------------------------------------------------------ crashers */

static int *volatile null_ptr;
static volatile int zero, sink;

RAW static void writes_null(void *a)
{
	(void)a;
	*null_ptr = 1;
}

RAW static void divides_by_zero(void *a)
{
	(void)a;
	sink = 1000 / zero;
}

RAW static void traps(void *a)
{
	(void)a;
#if defined(__aarch64__)
	__asm__ volatile("udf #0"); /* __builtin_trap is brk: SIGTRAP */
#else
	__builtin_trap();
#endif
}

static void aborts(void *a)
{
	(void)a;
	abort();
}

static void finishes(void *a)
{
	(void)a;
	nu_yield();
}

static atomic_int siblings_done;

static void sibling(void *a)
{
	(void)a;
	nu_sleep(20);
	atomic_fetch_add(&siblings_done, 1);
}

/* ------------------------------------------------ the four signals */

/* Spawn fn on scheduler 0, watched: the reason it ended with. */
static nu_term watched_reason(nu_fn fn)
{
	nu_term ref;
	nu_pid p = spawn_watched(fn, NULL, 0, &ref);
	if (p <= 0)
		return NU_NONE;
	return nt_down_reason(ref, p, 10000);
}

/* The Address of reason {signal, Name, Address}, or UINT64_MAX. */
static uint64_t reason_addr(nu_term why, const char *name)
{
	int64_t v;
	if (nu_tuple_size(why) != 3 ||
	    nu_tuple_elem(why, 0) != nu_atom("signal") ||
	    nu_tuple_elem(why, 1) != nu_atom(name) ||
	    nu_int64_value(nu_tuple_elem(why, 2), &v))
		return UINT64_MAX;
	return (uint64_t)v;
}

static void main_segv(void *a)
{
	(void)a;
	atomic_store(&siblings_done, 0);
	for (int i = 0; i < 20; i++)
		CU_ASSERT(nu_spawn(sibling, NULL) > 0);
	for (int round = 0; round < 5; round++) { /* same slot, scheduler */
		nu_term why = watched_reason(writes_null);
		CU_ASSERT(nu_term_equal(why, crash_reason("SIGSEGV", 0)));
		CU_ASSERT_EQUAL(watched_reason(finishes), NU_ATOM_NORMAL);
	}
	nt_wait_alone();
	CU_ASSERT_EQUAL(atomic_load(&siblings_done), 20);
}

static void test_segv(void)
{
	if (!isolation_built())
		return;
	nu_config c;
	cfg(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, main_segv, NULL), 0);
}

static void main_signals(void *a)
{
	(void)a;
	for (int round = 0; round < 3; round++) {
		uint64_t at;
#if defined(__x86_64__) /* (an aarch64 divide by zero gives 0) */
		at = reason_addr(watched_reason(divides_by_zero), "SIGFPE");
		/* the address is the dividing instruction's */
		CU_ASSERT(at - (uintptr_t)divides_by_zero < 4096);
#endif
		at = reason_addr(watched_reason(traps), "SIGILL");
		CU_ASSERT(at - (uintptr_t)traps < 4096);
		CU_ASSERT(nu_term_equal(watched_reason(aborts),
					crash_reason("SIGABRT", 0)));
		CU_ASSERT_EQUAL(watched_reason(finishes), NU_ATOM_NORMAL);
		/* the guard still means stack_overflow */
		CU_ASSERT_EQUAL(watched_reason(nt_overflows),
				nu_atom("stack_overflow"));
	}
	CU_ASSERT_EQUAL(nu_process_count(), 1);
}

static void test_signals(void)
{
	if (!isolation_built())
		return;
	nu_config c;
	cfg(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, main_signals, NULL), 0);
}

/* ------------------------------------------------------------ links */

/* Linked to a crasher without trapping: dies of the same reason. */
static void linked_victim(void *a)
{
	(void)a;
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.link = 1;
	if (nu_spawn_opt(writes_null, NULL, &o) > 0)
		nu_sleep(10000);
}

static void main_links(void *a)
{
	(void)a;
	nu_trap_exit(1);
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.link = 1;
	nu_pid p = nu_spawn_opt(traps, NULL, &o);
	CU_ASSERT_FATAL(p > 0);
	CU_ASSERT_EQUAL(reason_addr(nt_exit_reason(p, 10000), "SIGILL") -
				(uintptr_t)traps < 4096, 1);
	p = nu_spawn_opt(aborts, NULL, &o);
	CU_ASSERT_FATAL(p > 0);
	CU_ASSERT(nu_term_equal(nt_exit_reason(p, 10000),
				crash_reason("SIGABRT", 0)));
	nu_term ref;
	p = spawn_watched(linked_victim, NULL, -1, &ref);
	CU_ASSERT_FATAL(p > 0);
	CU_ASSERT(nu_term_equal(nt_down_reason(ref, p, 10000),
				crash_reason("SIGSEGV", 0)));
}

static void test_links(void)
{
	if (!isolation_built())
		return;
	nu_config c;
	cfg(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, main_links, NULL), 0);
}

/* The main process crashing ends the node as any other reason would. */
static void test_main_crash(void)
{
	if (!isolation_built())
		return;
	nu_config c;
	cfg(&c, 1);
	CU_ASSERT_EQUAL(nu_start(&c, writes_null, NULL), 1);
	/* and the next node starts and isolates again */
	CU_ASSERT_EQUAL(nu_start(&c, main_segv, NULL), 0);
}

/* NUPROC_CRASH_ISOLATION=1 turns it on whatever the config says. */
static void test_env(void)
{
	if (!isolation_built())
		return;
	nu_config c;
	cfg(&c, 0);
	setenv("NUPROC_CRASH_ISOLATION", "1", 1);
	CU_ASSERT_EQUAL(nu_start(&c, main_segv, NULL), 0);
	unsetenv("NUPROC_CRASH_ISOLATION");
}

static void test_config(void)
{
	nu_config c;
	nu_config_init(&c);
	CU_ASSERT_EQUAL(c.crash_isolation, 0);
	cfg(&c, 2);
	CU_ASSERT_EQUAL(nu_start(&c, finishes, NULL), -EINVAL);
	cfg(&c, -1);
	CU_ASSERT_EQUAL(nu_start(&c, finishes, NULL), -EINVAL);
}

/* ------------------------------------------- deaths, in a child */

/* Run body in a fork()ed child, its stderr into err (NUL-terminated,
 * truncated); the child's wait status, or -1. */
static int in_child(void (*body)(void), char *err, size_t len)
{
	int fd[2];
	if (pipe(fd))
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(fd[0]);
		dup2(fd[1], STDERR_FILENO);
		alarm(60); /* a child that fails to die fails, not hangs */
		body();
		_exit(99); /* body should have died */
	}
	close(fd[1]);
	size_t n = 0;
	char sink_buf[4096];
	for (;;) {
		char *to = n + 1 < len ? err + n : sink_buf;
		size_t room = n + 1 < len ? len - 1 - n : sizeof(sink_buf);
		ssize_t got = read(fd[0], to, room);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		if (to != sink_buf)
			n += (size_t)got;
	}
	err[n] = 0;
	close(fd[0]);
	int st;
	return waitpid(pid, &st, 0) == pid ? st : -1;
}

/* Died of sig, or (under ASan, whose report comes after ours) of its
 * abort. */
static int died_of(int st, int sig)
{
	if (!WIFSIGNALED(st))
		return 0;
	return WTERMSIG(st) == sig || (ASAN && WTERMSIG(st) == SIGABRT);
}

static void child_off(void)
{
	nu_config c;
	cfg(&c, 0);
	nu_start(&c, main_segv, NULL);
}

static void test_off_kills(void)
{
	char err[8192];
	int st = in_child(child_off, err, sizeof(err));
	CU_ASSERT(died_of(st, SIGSEGV));
	CU_ASSERT_PTR_NULL(strstr(err, "nuproc: SIGSEGV")); /* no report */
	if (ASAN)
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "AddressSanitizer: SEGV"));
}

/* Prints its pid, then hands the runtime a term that points nowhere. */
static void bad_term(void *a)
{
	(void)a;
	char buf[64] = "pid ";
	int n = nu_term_print(nu_pid_term(nu_self()), buf + 4, 56);
	if (n > 0) {
		buf[4 + n] = '\n';
		if (write(STDERR_FILENO, buf, (size_t)n + 5) < 0)
			return;
	}
	char tmp[16]; /* a boxed term at 0x10, printed by the runtime */
	sink = nu_term_print((nu_term)0x10, tmp, sizeof(tmp));
}

static void main_bad_term(void *a)
{
	(void)a;
	nu_term ref;
	nu_pid p = spawn_watched(bad_term, NULL, -1, &ref);
	if (p > 0)
		nt_down_reason(ref, p, 10000);
}

static void child_runtime(void)
{
	nu_config c;
	cfg(&c, 1);
	nu_start(&c, main_bad_term, NULL);
}

static void test_runtime_fault(void)
{
	if (!isolation_built())
		return;
	char err[16384];
	int st = in_child(child_runtime, err, sizeof(err));
	CU_ASSERT(died_of(st, SIGSEGV));
	char *pid = strstr(err, "pid <");
	CU_ASSERT_PTR_NOT_NULL_FATAL(pid);
	char want[96];
	size_t k = strcspn(pid + 4, "\n");
	snprintf(want, sizeof(want), ", process %.*s: not isolated", (int)k,
		 pid + 4);
	char *rep = strstr(err, "nuproc: SIGSEGV at 0x10 in the runtime (pc ");
	CU_ASSERT_PTR_NOT_NULL_FATAL(rep);
	CU_ASSERT_PTR_NOT_NULL(strstr(rep, want));
	if (getenv("NT_VERBOSE"))
		fputs(err, stdout);
}

/* kill(2) of SIGABRT is no crash, even on a process's thread. */
static void sends_abrt(void *a)
{
	(void)a;
	kill(getpid(), SIGABRT);
	for (;;)
		nu_yield();
}

static void child_sent(void)
{
	nu_config c;
	cfg(&c, 1);
	nu_start(&c, sends_abrt, NULL);
}

static void test_sent_signal(void)
{
	if (!isolation_built())
		return;
	char err[4096];
	int st = in_child(child_sent, err, sizeof(err));
	CU_ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
	CU_ASSERT_PTR_NULL(strstr(err, "nuproc: SIGABRT"));
}

static CU_TestInfo tests[] = {
	{ "NULL write ends only that process, again and again", test_segv },
	{ "divide by zero, trap, abort: their reasons; overflow", test_signals },
	{ "links and monitors see {signal, Name, Address}", test_links },
	{ "the main process crashing ends the node", test_main_crash },
	{ "NUPROC_CRASH_ISOLATION=1 turns it on", test_env },
	{ "bad config values", test_config },
	{ "isolation off: a crash kills the OS process", test_off_kills },
	{ "a fault in the runtime: report, then death", test_runtime_fault },
	{ "a SIGABRT sent with kill is no crash", test_sent_signal },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("crash", tests)
