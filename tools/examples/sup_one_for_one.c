/* sup_one_for_one.c — a one_for_one supervisor with two area servers
 * (areaserver.c): one of them crashes, and only that one is restarted,
 * as a new process; the other keeps its pid and never noticed.
 *
 *   sup_one_for_one     prints the tree, the crash, the restart and the
 *                       pids before and after; exits 0 when all went as
 *                       expected, 1 when something did not
 *
 * Build against the installed library:
 *   cc -O2 -DAREASERVER_NO_MAIN sup_one_for_one.c areaserver.c \
 *      $(pkg-config --static --cflags --libs nuproc) -o sup_one_for_one
 */
#include <nuproc.h>
#include <stdio.h>

#include "areaserver.h"

static void one_for_one(void *arg)
{
	(void)arg;
	/* At most 3 restarts in 5 s, else the supervisor gives up. */
	nu_sup_flags flags = { .strategy = NU_ONE_FOR_ONE,
			       .intensity = 3,
			       .period_s = 5 };
	nu_child_spec kids[2] = { area_child("a", 0), area_child("b", 0) };
	printf("start a one_for_one supervisor of area servers a and b\n");
	nu_pid sup = nu_sup_start_link(&flags, kids, 2, NULL);
	demo_check(sup > 0, "the supervisor started its children in order");

	nu_child_info before[2];
	demo_snapshot(sup, "one_for_one", before, 2);
	demo_serves(sup, "b");

	nu_pid old = demo_crash(sup, "b");
	nu_pid now = demo_await(sup, "b", old);
	printf("b restarted: %s -> %s\n", demo_pid(old).s, demo_pid(now).s);
	demo_check(demo_compare(sup, before, 2) == 2u,
		   "only b was restarted; a kept its pid");
	demo_serves(sup, "b");

	demo_stop(sup);
}

int main(void)
{
	return demo_run(one_for_one);
}
