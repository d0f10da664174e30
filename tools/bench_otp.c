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
