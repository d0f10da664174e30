/* bench_otp.c — nuproc-bench scenarios of the OTP behaviours (issue 6):
 * call, cast, sup_restart. */
#include <stdlib.h>
#include <unistd.h>

#include "bench.h"
#include "nuproc.h"

/* The anchors' server: replies to every call with the atom pong. */
static int pong_init(nu_term arg, void **state, nu_gen_ret *r)
{
	(void)arg, (void)state, (void)r;
	return NU_GEN_OK;
}

static nu_term a_pong; /* the anchors' atoms are literals: no lookup */

static int pong_call(nu_term req, nu_term from, void **state, nu_gen_ret *r)
{
	(void)req, (void)from, (void)state;
	r->reply = a_pong;
	return NU_GEN_REPLY;
}

static int count_cast(nu_term msg, void **state, nu_gen_ret *r)
{
	(void)msg, (void)r;
	*state = (void *)((intptr_t)*state + 1);
	return NU_GEN_OK;
}

static const nu_gen_server_cbs pong_cbs = {
	.init = pong_init,
	.handle_call = pong_call,
	.handle_cast = count_cast,
};

static void call_loop(nu_term s, long n)
{
	nu_term ping = nu_atom("ping"), r;
	for (long i = 0; i < n; i++)
		if (nu_call(s, ping, -1, &r) || r != a_pong)
			_exit(5);
}

/* call N: gen_server call round trips after 1000 warm-up calls (anchors:
 * gen_call; Go: call_newchan). */
void run_call(const long *a)
{
	a_pong = nu_atom("pong");
	nu_pid s = nu_gen_server_start(&pong_cbs, NU_NIL, NULL);
	if (s < 0)
		_exit(4);
	call_loop(nu_pid_term(s), 1000);
	uint64_t t0 = now_ns();
	call_loop(nu_pid_term(s), a[0]);
	emit("gen_server_call", (double)(now_ns() - t0) / a[0], "ns/call");
	nu_gen_stop(nu_pid_term(s), NU_ATOM_NORMAL, -1);
}

/* cast N: N casts, then one call (the server has handled them all when it
 * answers), per cast. */
void run_cast(const long *a)
{
	a_pong = nu_atom("pong");
	nu_pid s = nu_gen_server_start(&pong_cbs, NU_NIL, NULL);
	if (s < 0)
		_exit(4);
	nu_term st = nu_pid_term(s), one = nu_int(1);
	call_loop(st, 1);
	uint64_t t0 = now_ns();
	for (long i = 0; i < a[0]; i++)
		nu_cast(st, one);
	call_loop(st, 1);
	emit("gen_server_cast", (double)(now_ns() - t0) / a[0], "ns/cast");
	nu_gen_stop(st, NU_ATOM_NORMAL, -1);
}

/* sup_restart: a one_for_one supervisor with one child, a plain linked
 * process that crashes on any message. Its start runs in the supervisor
 * and sends the bench process the new child's pid (an immediate term:
 * nothing is built in the supervisor's heap per restart). */
static nu_pid a_bench;
static nu_term a_crash;

static void crash_child(void *arg)
{
	(void)arg;
	nu_term m;
	nu_receive(&m, -1);
	nu_exit(a_crash);
}

static nu_pid crash_start(void *arg, nu_term extra)
{
	(void)arg, (void)extra;
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.link = 1; /* to the supervisor */
	nu_pid pid = nu_spawn_opt(crash_child, NULL, &o);
	if (pid > 0)
		nu_send(a_bench, nu_pid_term(pid));
	return pid;
}

/* Crash the child n times, each time waiting for its successor. */
static nu_pid restart_loop(nu_pid kid, long n)
{
	nu_term m;
	for (long i = 0; i < n; i++) {
		nu_send(kid, a_crash);
		if (nu_receive(&m, 5000) || (kid = nu_pid_value(m)) <= 0)
			_exit(5);
	}
	return kid;
}

/* One supervisor: WARM restarts, then n timed ones; their time in ns.
 * The intensity allows them all within the 1 s period. */
static uint64_t restart_round(long n)
{
	enum { WARM = 100 };
	nu_sup_flags f = { NU_ONE_FOR_ONE, (int)n + WARM + 10, 1 };
	nu_child_spec c = { "child", crash_start, NULL, NU_PERMANENT,
			    NU_SHUTDOWN_BRUTAL_KILL, NU_WORKER };
	nu_pid s = nu_sup_start_link(&f, &c, 1, NULL);
	nu_term m;
	if (s < 0 || nu_receive(&m, 5000) || nu_pid_value(m) <= 0)
		_exit(4);
	nu_unlink(s); /* its exit at the end is none of ours */
	nu_pid kid = restart_loop(nu_pid_value(m), WARM);
	uint64_t t0 = now_ns();
	restart_loop(kid, n);
	uint64_t dt = now_ns() - t0;
	nu_gen_stop(nu_pid_term(s), NU_ATOM_SHUTDOWN, -1);
	return dt;
}

/* sup_restart N: crash the child, wait until the supervisor has a new one
 * running (its pid arrives), N times; per restart. A supervisor's
 * intensity is at most 100,000: a fresh one every 50,000 restarts (its
 * start and stop are not timed). */
void run_sup_restart(const long *a)
{
	enum { ROUND = 50000 };
	a_bench = nu_self();
	a_crash = nu_atom("crash");
	uint64_t ns = 0;
	for (long left = a[0]; left > 0; left -= ROUND)
		ns += restart_round(left < ROUND ? left : ROUND);
	emit("sup_restart", (double)ns / a[0], "ns/restart");
}
