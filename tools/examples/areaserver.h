/* areaserver.h — private to tools/examples: the area server of
 * areaserver.c (a gen_server, after cl-muproc's areaserver example) and
 * the helpers the supervision examples (sup_one_for_one.c,
 * sup_all_for_one.c, sup_nested.c) share. areaserver.c built with
 * -DAREASERVER_NO_MAIN leaves out its own main. */
#ifndef NU_AREASERVER_H
#define NU_AREASERVER_H

#include <nuproc.h>

/* ------------------------------------------------------------ the server */

/*
 * The area server's callbacks. A call {rectangle, W, H}, {circle, R} or
 * {square, S} (integers or floats, not negative) is answered with the
 * area, a float. Any other request crashes the server with the reason
 * {bad_shape, Request} ("let it crash": its supervisor restarts it).
 *
 * Its start argument is its name (an atom) or {Name, slow}: a slow server
 * traps exits, so a shutdown from its supervisor runs its terminate, which
 * takes a second to clean up (a shutdown timeout shorter than that ends
 * it with kill).
 */
extern const nu_gen_server_cbs area_cbs;

/* Ask server for the area of shape: 0 with *area set; -ESRCH when the
 * server died instead of answering, with *why its exit reason; or the
 * other codes of nu_call. */
int area_of(nu_term server, nu_term shape, double *area, nu_term *why);

/* A child spec for an area server named id (a string literal: the spec
 * keeps the pointer), slow or not: permanent, a worker, a shutdown of
 * 1000 ms. Its start runs in the supervisor: it starts the server linked
 * to the supervisor and prints "[sup <pid>] started id: <pid>". */
nu_child_spec area_child(const char *id, int slow);

/* ------------------------------------- helpers of the supervision examples */

/* Printable text of a term; demo_txt(t).s lives until the end of the
 * full expression (use it as a printf argument). "-" for NU_NONE. */
typedef struct demo_text {
	char s[128];
} demo_text;
demo_text demo_txt(nu_term t);
/* The same for a pid (0, not running: "-"). */
demo_text demo_pid(nu_pid pid);

/* Run main_fn as the main process of a small node (stdout line-buffered);
 * returns the status for main(): 0 when main_fn returned, 1 when a check
 * failed or the node could not start. main_fn traps exits first, since
 * the supervisors it starts are linked to it. */
int demo_run(nu_fn main_fn);

/* When ok is 0: print "FAILED: what" and end the main process with
 * status 1. Otherwise print "ok: what". */
void demo_check(int ok, const char *what);

/* The pid of child id of sup: 0 when it is not running, -1 when sup has
 * no such child (or sup is gone). */
nu_pid demo_child(nu_pid sup, const char *id);

/* Take a snapshot of sup's children (up to cap, in start order) into
 * out, printing each; the number taken (the check fails when sup has
 * more than cap or none). */
size_t demo_snapshot(nu_pid sup, const char *label, nu_child_info *out,
		     size_t cap);

/* Crash child id of sup by asking it for the area of a hexagon; prints
 * the exit reason the caller sees and checks it. Returns the old pid. */
nu_pid demo_crash(nu_pid sup, const char *id);

/* Wait (up to 2 s) until child id of sup runs as a process other than
 * old; returns the new pid (the check fails when it never does). */
nu_pid demo_await(nu_pid sup, const char *id, nu_pid old);

/* Compare sup's children with the snapshot before[0..n), printing
 * "children of <sup> now:", then for each "id old -> new (restarted)" or
 * "id pid (same)". Returns a bit mask of the restarted ones (bit i for
 * before[i]). */
unsigned demo_compare(nu_pid sup, const nu_child_info *before, size_t n);

/* Ask child id of sup for the area of a 2 x 3 rectangle and check the
 * answer (a restarted server serves again). */
void demo_serves(nu_pid sup, const char *id);

/* The reason in pid's {'DOWN', Ref, process, Pid, Reason} for the
 * monitor ref; NU_NONE when none comes within a second. */
nu_term demo_down(nu_term ref, nu_pid pid);

/* Stop sup (nu_gen_stop with shutdown: its children stop in reverse
 * start order) and check that it did. */
void demo_stop(nu_pid sup);

#endif
