/* sup_nested.c — a supervision tree two levels deep, and how a failure
 * escalates in it:
 *
 *   top (one_for_one, 3 restarts in 5 s)
 *    +-- w       an area server (areaserver.c)
 *    +-- inner   (one_for_one, 1 restart in 5 s)
 *         +-- a  an area server
 *         +-- b  an area server
 *
 * 1. a crashes: inner restarts it; top sees nothing.
 * 2. a crashes again within 5 s: one restart too many for inner, which
 *    stops b and exits with reason shutdown; top, its supervisor,
 *    restarts the whole inner tree (a new inner, a new a and b); w is
 *    left alone.
 *
 *   sup_nested          prints the tree, the crashes, the restarts and the
 *                       pids before and after; exits 0 when all went as
 *                       expected, 1 when something did not
 *
 * Build against the installed library:
 *   cc -O2 -DAREASERVER_NO_MAIN sup_nested.c areaserver.c \
 *      $(pkg-config --static --cflags --libs nuproc) -o sup_nested
 */
#include <nuproc.h>
#include <stdio.h>

#include "areaserver.h"

/* The inner tree's start: runs in top, starts inner linked to top. */
static nu_pid inner_start(void *arg, nu_term extra)
{
	(void)arg, (void)extra;
	nu_sup_flags flags = { .strategy = NU_ONE_FOR_ONE,
			       .intensity = 1,
			       .period_s = 5 };
	nu_child_spec kids[2] = { area_child("a", 0), area_child("b", 0) };
	nu_pid pid = nu_sup_start_link(&flags, kids, 2, NULL);
	printf("  [sup %s] started inner: %s\n", demo_pid(nu_self()).s,
	       demo_pid(pid).s);
	return pid;
}

static void nested(void *arg)
{
	(void)arg;
	nu_sup_flags flags = { .strategy = NU_ONE_FOR_ONE,
			       .intensity = 3,
			       .period_s = 5 };
	nu_child_spec kids[2] = {
		area_child("w", 0),
		{ .id = "inner", .start = inner_start, .restart = NU_PERMANENT,
		  .shutdown_ms = NU_SHUTDOWN_INFINITY, .type = NU_SUPERVISOR },
	};
	printf("start top: worker w, then supervisor inner of a and b\n");
	nu_pid top = nu_sup_start_link(&flags, kids, 2, NULL);
	demo_check(top > 0, "the tree started, depth first, in order");
	nu_child_info tops[2], inners[2];
	demo_snapshot(top, "top", tops, 2);
	nu_pid inner = tops[1].pid;
	demo_snapshot(inner, "inner", inners, 2);

	printf("1. a crash inside the inner tree\n");
	demo_await(inner, "a", demo_crash(inner, "a"));
	demo_check(demo_compare(inner, inners, 2) == 1u,
		   "inner restarted a alone");
	demo_check(demo_child(top, "inner") == inner, "top saw nothing");

	printf("2. a second crash within 5 s: too many restarts for inner\n");
	demo_snapshot(inner, "inner", inners, 2);
	nu_term ref;
	nu_monitor(inner, &ref);
	demo_crash(inner, "a");
	nu_term why = demo_down(ref, inner);
	printf("inner %s exited: %s\n", demo_pid(inner).s, demo_txt(why).s);
	demo_check(why == NU_ATOM_SHUTDOWN, "inner gave up with shutdown");
	nu_pid again = demo_await(top, "inner", inner);
	demo_check(demo_compare(top, tops, 2) == 2u,
		   "top restarted inner; w kept its pid");
	demo_check(demo_compare(again, inners, 2) == 3u,
		   "the new inner has a new a and a new b");
	demo_serves(again, "a");

	demo_stop(top); /* inner first (it stops b, a), then w */
}

int main(void)
{
	return demo_run(nested);
}
