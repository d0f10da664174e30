/* areaserver.c — the area server of cl-muproc's examples as a nuproc
 * gen_server: a call names a shape, the answer is its area; a shape it
 * does not know crashes it (a supervisor would restart it: see
 * sup_one_for_one.c, sup_all_for_one.c and sup_nested.c, which share this
 * file's server and helpers through areaserver.h).
 *
 *   areaserver          ask a server three areas, then one it cannot
 *                       answer; exits 0 when all went as expected
 *
 * Build against the installed library:
 *   cc -O2 areaserver.c \
 *      $(pkg-config --static --cflags --libs nuproc) -o areaserver
 */
#include <errno.h>
#include <math.h>
#include <nuproc.h>
#include <stdio.h>

#include "areaserver.h"

/* ------------------------------------------------------------ the server */

typedef struct area_state {
	nu_term name; /* an atom, for the printouts */
	int slow;     /* traps exits; terminate takes a second */
} area_state;

static int area_init(nu_term arg, void **state, nu_gen_ret *r)
{
	area_state *s = nu_alloc(sizeof(*s));
	if (!s) {
		r->reason = nu_atom("no_memory");
		return NU_GEN_STOP;
	}
	s->slow = nu_tuple_elem(arg, 1) == nu_atom("slow");
	s->name = s->slow ? nu_tuple_elem(arg, 0) : arg;
	if (s->slow)
		nu_trap_exit(1); /* a shutdown then runs terminate */
	*state = s;
	return NU_GEN_OK;
}

/* A number term's value in *d: 1, or 0 when t is not a number >= 0. */
static int dimension(nu_term t, double *d)
{
	if (nu_is_int(t))
		*d = (double)nu_int_value(t);
	else if (nu_term_type(t) == NU_T_FLOAT)
		*d = nu_float_value(t);
	else
		return 0;
	return *d >= 0;
}

/* The area of shape in *a: 1, or 0 for a shape this server does not know. */
static int shape_area(nu_term shape, double *a)
{
	nu_term kind = nu_tuple_elem(shape, 0);
	size_t n = nu_tuple_size(shape);
	double x, y;
	if (n < 2 || !dimension(nu_tuple_elem(shape, 1), &x))
		return 0;
	if (kind == nu_atom("rectangle") && n == 3 &&
	    dimension(nu_tuple_elem(shape, 2), &y))
		*a = x * y;
	else if (kind == nu_atom("circle") && n == 2)
		*a = M_PI * x * x;
	else if (kind == nu_atom("square") && n == 2)
		*a = x * x;
	else
		return 0;
	return isfinite(*a); /* Erlang floats have no infinity */
}

static int area_call(nu_term req, nu_term from, void **state, nu_gen_ret *r)
{
	(void)from, (void)state;
	double a;
	if (!shape_area(req, &a)) { /* let it crash: no reply, the caller
				     * gets the exit reason */
		r->reason = nu_tuple(2, nu_atom("bad_shape"), req);
		return NU_GEN_STOP;
	}
	r->reply = nu_float(a);
	r->free_reply = 1; /* copied to the caller, then freed here */
	return NU_GEN_REPLY;
}

static void area_terminate(nu_term reason, void *state)
{
	const area_state *s = state;
	if (!s->slow)
		return;
	printf("  %s %s: terminate(%s): cleaning up, takes 1000 ms\n",
	       nu_atom_name(s->name), demo_pid(nu_self()).s,
	       demo_txt(reason).s);
	nu_sleep(1000); /* a kill ends the sleep, and the process */
	printf("  %s: cleaned up\n", nu_atom_name(s->name));
}

const nu_gen_server_cbs area_cbs = {
	.init = area_init,
	.handle_call = area_call,
	.terminate = area_terminate,
};

int area_of(nu_term server, nu_term shape, double *area, nu_term *why)
{
	nu_term reply;
	int rc = nu_call(server, shape, 2000, &reply);
	if (rc == 0) {
		*area = nu_float_value(reply);
		nu_term_free(reply);
	} else if (rc == -ESRCH) {
		*why = reply;
	}
	return rc;
}

/* Runs in the supervisor (nu_self() is the supervisor). */
static nu_pid start_area(const char *id, int slow)
{
	nu_term arg = nu_atom(id);
	if (slow)
		arg = nu_tuple(2, arg, nu_atom("slow"));
	nu_pid pid = nu_gen_server_start_link(&area_cbs, arg, NULL);
	if (slow)
		nu_term_free(arg); /* the server got a copy */
	if (pid > 0)
		printf("  [sup %s] started %s: %s\n", demo_pid(nu_self()).s,
		       id, demo_pid(pid).s);
	else
		printf("  [sup %s] could not start %s: %s\n",
		       demo_pid(nu_self()).s, id, nu_strerror((int)pid));
	return pid;
}

static nu_pid area_start(void *arg, nu_term extra)
{
	(void)extra;
	return start_area(arg, 0);
}

static nu_pid area_start_slow(void *arg, nu_term extra)
{
	(void)extra;
	return start_area(arg, 1);
}

nu_child_spec area_child(const char *id, int slow)
{
	return (nu_child_spec){ .id = id,
				.start = slow ? area_start_slow : area_start,
				.arg = (void *)id,
				.restart = NU_PERMANENT,
				.shutdown_ms = 1000,
				.type = NU_WORKER };
}

/* ------------------------------------- helpers of the supervision examples */

demo_text demo_txt(nu_term t)
{
	demo_text x;
	if (nu_term_print(t, x.s, sizeof(x.s)) < 0)
		snprintf(x.s, sizeof(x.s), "-");
	return x;
}

demo_text demo_pid(nu_pid pid)
{
	return demo_txt(pid > 0 ? nu_pid_term(pid) : NU_NONE);
}

static nu_fn demo_main;

static void demo_boot(void *arg)
{
	nu_trap_exit(1); /* a linked supervisor's exit is a message */
	demo_main(arg);
	printf("done\n");
}

int demo_run(nu_fn main_fn)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	nu_config cfg;
	nu_config_init(&cfg);
	cfg.max_procs = 1024; /* a small node: these trees are tiny */
	cfg.heap_size = 1 << 20;
	demo_main = main_fn;
	int rc = nu_start(&cfg, demo_boot, NULL);
	if (rc < 0)
		fprintf(stderr, "nu_start: %s\n", nu_strerror(rc));
	return rc != 0;
}

/* A check that says nothing when it holds. */
static void need(int ok, const char *what)
{
	if (!ok) {
		printf("FAILED: %s\n", what);
		nu_exit(nu_int(1));
	}
}

void demo_check(int ok, const char *what)
{
	need(ok, what);
	printf("  ok: %s\n", what);
}

nu_pid demo_child(nu_pid sup, const char *id)
{
	nu_child_info ci[8];
	int n = nu_sup_which_children(nu_pid_term(sup), ci, 8);
	for (int i = 0; i < n && i < 8; i++)
		if (ci[i].id == nu_atom(id))
			return ci[i].pid;
	return -1;
}

size_t demo_snapshot(nu_pid sup, const char *label, nu_child_info *out,
		     size_t cap)
{
	int n = nu_sup_which_children(nu_pid_term(sup), out, cap);
	need(n > 0 && (size_t)n <= cap, "the supervisor lists its children");
	printf("%s supervisor %s:", label, demo_pid(sup).s);
	for (int i = 0; i < n; i++)
		printf(" %s %s%s", nu_atom_name(out[i].id),
		       demo_pid(out[i].pid).s, i + 1 < n ? "," : "\n");
	return (size_t)n;
}

nu_pid demo_crash(nu_pid sup, const char *id)
{
	nu_pid pid = demo_child(sup, id);
	need(pid > 0, "the child to crash runs");
	nu_term hex = nu_tuple(2, nu_atom("hexagon"), nu_int(2)), why = NU_NONE;
	double a;
	printf("crash %s %s: ask it for the area of %s\n", id,
	       demo_pid(pid).s, demo_txt(hex).s);
	int rc = area_of(nu_pid_term(pid), hex, &a, &why);
	printf("  %s exited: %s\n", id, demo_txt(why).s);
	need(rc == -ESRCH && nu_tuple_elem(why, 0) == nu_atom("bad_shape"),
	     "the server crashed with {bad_shape, _}");
	return pid;
}

nu_pid demo_await(nu_pid sup, const char *id, nu_pid old)
{
	for (int i = 0; i < 2000; i++) {
		nu_pid p = demo_child(sup, id);
		if (p > 0 && p != old)
			return p;
		nu_sleep(1);
	}
	need(0, "the child was restarted within 2 s");
	return -1;
}

unsigned demo_compare(nu_pid sup, const nu_child_info *before, size_t n)
{
	unsigned mask = 0;
	printf("children of %s now:\n", demo_pid(sup).s);
	for (size_t i = 0; i < n; i++) {
		const char *id = nu_atom_name(before[i].id);
		nu_pid now = demo_child(sup, id);
		if (now == before[i].pid) {
			printf("  %s %s (same)\n", id, demo_pid(now).s);
			continue;
		}
		mask |= 1u << i;
		printf("  %s %s -> %s (restarted)\n", id,
		       demo_pid(before[i].pid).s, demo_pid(now).s);
	}
	return mask;
}

void demo_serves(nu_pid sup, const char *id)
{
	nu_term r = nu_tuple(3, nu_atom("rectangle"), nu_int(2), nu_int(3));
	nu_term why = NU_NONE;
	double a = 0;
	int rc = area_of(nu_pid_term(demo_child(sup, id)), r, &a, &why);
	printf("%s: the area of %s is %g\n", id, demo_txt(r).s, a);
	need(rc == 0 && a == 6.0, "the server answers");
}

nu_term demo_down(nu_term ref, nu_pid pid)
{
	nu_pattern *pat;
	if (nu_pattern_compile("{'DOWN', Ref, process, Pid, Why}", &pat, NULL))
		return NU_NONE;
	nu_term pre[3] = { ref, nu_pid_term(pid), NU_NONE }, v[3];
	nu_clause c = { pat, pre, v };
	int rc = nu_receive_select(&c, 1, 1000, NULL);
	nu_pattern_free(pat);
	return rc == 0 ? v[2] : NU_NONE;
}

void demo_stop(nu_pid sup)
{
	printf("stop supervisor %s: children stop in reverse start order\n",
	       demo_pid(sup).s);
	int rc = nu_gen_stop(nu_pid_term(sup), NU_ATOM_SHUTDOWN, 5000);
	for (int i = 0; i < 1000 && nu_process_count() > 1; i++)
		nu_sleep(1); /* its exit may still be on its way out */
	demo_check(rc == 0 && nu_process_count() == 1,
		   "the supervisor and all its children are gone");
}

/* ------------------------------------------------------ the plain demo */

#ifndef AREASERVER_NO_MAIN /* the supervision examples have their own */
static void ask(nu_term server, nu_term shape, double want)
{
	double a = -1;
	nu_term why = NU_NONE;
	int rc = area_of(server, shape, &a, &why);
	printf("the area of %s is %g\n", demo_txt(shape).s, a);
	need(rc == 0 && a == want, "the right area");
}

static void area_demo(void *arg)
{
	(void)arg;
	nu_pid s = nu_gen_server_start(&area_cbs, nu_atom("area"), NULL);
	need(s > 0, "the server started");
	printf("area server %s\n", demo_pid(s).s);
	nu_term st = nu_pid_term(s), sq = nu_atom("square");
	ask(st, nu_tuple(3, nu_atom("rectangle"), nu_int(3), nu_int(4)), 12);
	ask(st, nu_tuple(2, nu_atom("circle"), nu_float(1.0)), M_PI);
	ask(st, nu_tuple(2, sq, nu_int(2)), 4);
	nu_term bad = nu_tuple(2, nu_atom("hexagon"), nu_int(2)), why = NU_NONE;
	double a;
	int rc = area_of(st, bad, &a, &why);
	printf("the area of %s: the server crashed with %s\n",
	       demo_txt(bad).s, demo_txt(why).s);
	demo_check(rc == -ESRCH && !nu_is_alive(s),
		   "an unknown shape crashes the server");
}

int main(void)
{
	return demo_run(area_demo);
}
#endif
