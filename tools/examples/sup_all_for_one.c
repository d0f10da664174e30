/* sup_all_for_one.c — a one_for_all supervisor (cl-muproc's all-for-one)
 * of three area servers (areaserver.c): when one crashes, the supervisor
 * stops the others (in reverse start order) and starts all three again.
 *
 * One of them, "slow", traps exits, so a shutdown runs its terminate,
 * which wants a second to clean up; its spec gives it 10 ms
 * (shutdown_ms = 10): the supervisor sends it shutdown, waits 10 ms, then
 * kills it. The program watches it go down with reason killed.
 *
 *   sup_all_for_one     prints the tree, the crash, the kill of slow, the
 *                       restarts and the pids before and after; exits 0
 *                       when all went as expected, 1 when something did
 *                       not
 *
 * Build against the installed library:
 *   cc -O2 -DAREASERVER_NO_MAIN sup_all_for_one.c areaserver.c \
 *      $(pkg-config --static --cflags --libs nuproc) -o sup_all_for_one
 */
#include <nuproc.h>
#include <stdio.h>

#include "areaserver.h"

static void all_for_one(void *arg)
{
	(void)arg;
	nu_sup_flags flags = { .strategy = NU_ONE_FOR_ALL,
			       .intensity = 3,
			       .period_s = 5 };
	nu_child_spec kids[3] = { area_child("a", 0), area_child("b", 0),
				  area_child("slow", 1) };
	kids[2].shutdown_ms = 10; /* then kill */
	printf("start a one_for_all supervisor of area servers a, b, slow\n");
	nu_pid sup = nu_sup_start_link(&flags, kids, 3, NULL);
	demo_check(sup > 0, "the supervisor started its children in order");

	nu_child_info before[3];
	demo_snapshot(sup, "one_for_all", before, 3);
	nu_term ref;
	nu_monitor(before[2].pid, &ref); /* to see how slow goes */

	uint64_t t0 = nu_clock_ns();
	nu_pid old = demo_crash(sup, "a");
	nu_term why = demo_down(ref, before[2].pid);
	double ms = (double)(nu_clock_ns() - t0) / 1e6;
	printf("slow %s went down %.1f ms after the crash: %s\n",
	       demo_pid(before[2].pid).s, ms, demo_txt(why).s);
	demo_check(why == NU_ATOM_KILLED && ms >= 10 && ms < 500,
		   "slow was killed when its 10 ms were up");

	demo_await(sup, "a", old);
	demo_check(demo_compare(sup, before, 3) == 7u,
		   "all three were restarted");
	demo_serves(sup, "a");
	demo_serves(sup, "slow");

	demo_stop(sup); /* slow gets its 10 ms again */
}

int main(void)
{
	return demo_run(all_for_one);
}
