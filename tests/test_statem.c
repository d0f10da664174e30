/* test_statem.c — gen_statem: a door lock with state functions (calls,
 * casts, info, status, registered name, a state timeout that locks it
 * again); handle_event mode with tuple states (copied out of the message
 * that named them), replies sent later; postpone (order, calls, no retry
 * without a state change, retry with the change that postponed); state
 * timeouts (not early, kept by events, cancelled by a state change or
 * cancel, restarted, set with the change, zero after the events put
 * back, never stale); event timeouts (cancelled by any event but not by
 * a status request, zero); generic timeouts (independent names, restart,
 * cancel, survive a state change, never stale, bad arguments); state
 * enter calls (initial, on changes only, bad returns); stop (nu_gen_stop,
 * callback, bad return, bad state, the parent's exit with and without
 * trapping); init failures and -EINVAL/-EPERM; calls to a dead machine;
 * no growth of the machine's heap over thousands of events. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nutest.h"
#include "nuproc.h"
#include "nutest_node.h"

static void cfg(nu_config *c) { nt_config(c, nt_two(), 10000, 8 << 20); }

static void run_node(nu_fn fn)
{
	nu_config c;
	cfg(&c);
	CU_ASSERT_EQUAL(nu_start(&c, fn, NULL), 0);
}

static nu_term A(const char *name) { return nu_atom(name); }

static int64_t now_ns(void) { return (int64_t)nu_clock_ns(); }

/* The reply to request (asserted to come), or NU_NONE. */
static nu_term call(nu_pid pid, nu_term request)
{
	nu_term reply = NU_NONE;
	CU_ASSERT_EQUAL(nu_call(nu_pid_term(pid), request, 2000, &reply), 0);
	return reply;
}

/* The next message matching pattern within ms: 1 with vars set (they
 * point into the message, left in the heap), else 0. */
static int get_note(const char *pattern, int64_t ms, nu_term *vars)
{
	nu_pattern *p;
	if (nu_pattern_compile(pattern, &p, NULL))
		return 0;
	nu_clause c = { p, NULL, vars };
	nu_term msg;
	int rc = nu_receive_select(&c, 1, ms, &msg);
	nu_pattern_free(p);
	return rc == 0;
}

/* {fired, Type, Name, Content, State, Ns}: vars[0..4] */
#define FIRED "{fired, T, N, C, S, W}"

/* ------------------------------------------------------------- probe
 *
 * A handle_event machine driven by its owner (the process in its start
 * argument {Owner, Mode, State}): calls and casts carry commands, it
 * reports timeouts, enter calls and terminate to the owner. */

typedef struct probe {
	nu_pid owner;
	int enter_checks;
} probe;

/* (No fatal assertion in a machine: it would leave the process's
 * stack.) */
static void note(const probe *p, nu_term t)
{
	CU_ASSERT(t != NU_NONE);
	nu_send(p->owner, t);
	nu_term_free(t);
}

static int64_t ms_of(nu_term t)
{
	if (t == A("cancel"))
		return NU_STATEM_CANCEL;
	if (t == A("keep"))
		return NU_STATEM_KEEP;
	return nu_int_value(t);
}

static nu_term msg_of(nu_term t) { return t == A("none") ? NU_NONE : t; }

static int is_term(nu_term t, void *arg)
{
	return nu_term_equal(t, *(const nu_term *)arg);
}

/* Commands: {st|et, Ms, Msg}, {gt, Name, Ms, Msg}, {goto, S},
 * {sleep, Ms}, {wait_for, Msg} (until Msg comes; the rest stays
 * queued), {then, C1, C2}; anything else does nothing. */
static void command(nu_term c, nu_statem_ret *r)
{
	nu_term op = nu_tuple_elem(c, 0);
	nu_term e1 = nu_tuple_elem(c, 1), e2 = nu_tuple_elem(c, 2);
	if (op == A("st")) {
		r->state_timeout_ms = ms_of(e1);
		r->state_timeout_msg = msg_of(e2);
	} else if (op == A("et")) {
		r->event_timeout_ms = ms_of(e1);
		r->event_timeout_msg = msg_of(e2);
	} else if (op == A("gt")) {
		nu_term e3 = nu_tuple_elem(c, 3);
		CU_ASSERT_EQUAL(nu_statem_generic_timeout(r, e1, ms_of(e2),
							  msg_of(e3)), 0);
	} else if (op == A("goto")) {
		r->next_state = e1;
	} else if (op == A("sleep")) {
		nu_sleep((uint64_t)nu_int_value(e1));
	} else if (op == A("wait_for")) {
		nu_term t;
		CU_ASSERT_EQUAL(nu_receive_if(is_term, &e1, &t, 5000), 0);
	} else if (op == A("then")) {
		command(e1, r);
		command(e2, r);
	}
}

/* nu_statem_generic_timeout refuses what is not a callback's own. */
static void bad_generic(nu_statem_ret *r)
{
	nu_statem_ret copy = *r;
	nu_term g = A("g");
	CU_ASSERT_EQUAL(nu_statem_generic_timeout(NULL, g, 1, g), -EINVAL);
	CU_ASSERT_EQUAL(nu_statem_generic_timeout(&copy, g, 1, g), -EINVAL);
	CU_ASSERT_EQUAL(nu_statem_generic_timeout(r, NU_NONE, 1, g), -EINVAL);
	CU_ASSERT_EQUAL(nu_statem_generic_timeout(r, g, -5, g), -EINVAL);
	CU_ASSERT_EQUAL(nu_statem_generic_timeout(r, g, NU_STATEM_KEEP, g),
			-EINVAL);
	/* a word that is no term (a special other than [] and NU_NONE) */
	CU_ASSERT_EQUAL(nu_statem_generic_timeout(r, g, 1, (nu_term)47),
			-EINVAL);
	/* cancelling a timeout that does not run is fine */
	CU_ASSERT_EQUAL(nu_statem_generic_timeout(r, g, NU_STATEM_CANCEL,
						  NU_NONE), 0);
}

static int probe_call(const nu_statem_event *ev, nu_term state,
		      nu_statem_ret *r)
{
	nu_term c = ev->content, reply = nu_int64(now_ns());
	if (c == A("state"))
		reply = state;
	else if (c == A("heap"))
		reply = nu_int64((int64_t)nu_heap_used());
	else if (c == A("gt_bad"))
		bad_generic(r);
	else if (c == A("die"))
		return r->reason = nu_tuple(2, A("died"), nu_int(1)),
		       NU_GEN_STOP;
	else if (nu_tuple_elem(c, 0) == A("ret"))
		return (int)nu_int_value(nu_tuple_elem(c, 1));
	else
		command(c, r);
	CU_ASSERT_EQUAL(nu_reply(ev->from, reply), 0);
	return NU_GEN_OK;
}

static int probe_enter(const nu_statem_event *ev, nu_term state,
		       probe *p, nu_statem_ret *r)
{
	note(p, nu_tuple(3, A("enter"), ev->content, state));
	if (state == A("timed")) {
		r->state_timeout_ms = 20;
		r->state_timeout_msg = A("entered");
	} else if (state == A("bad")) {
		r->next_state = A("other");
	} else if (state == A("badp")) {
		r->postpone = 1;
	}
	return NU_GEN_OK;
}

static int probe_event(const nu_statem_event *ev, nu_term state,
		       void **data, nu_statem_ret *r)
{
	probe *p = *data;
	switch (ev->type) {
	case NU_EV_CALL:
		return probe_call(ev, state, r);
	case NU_EV_CAST:
		command(ev->content, r);
		return NU_GEN_OK;
	case NU_EV_INFO:
		return NU_GEN_OK;
	case NU_EV_ENTER:
		return probe_enter(ev, state, p, r);
	default: /* a timeout */
		CU_ASSERT((ev->type == NU_EV_GENERIC_TIMEOUT) ==
			  (ev->name != NU_NONE));
		note(p, nu_tuplev(6, (nu_term[]){
				A("fired"), nu_int(ev->type),
				ev->name == NU_NONE ? NU_NIL : ev->name,
				ev->content, state, nu_int64(now_ns()) }));
		return NU_GEN_OK;
	}
}

static int probe_init(nu_term arg, nu_term *state, void **data,
		      nu_statem_ret *r)
{
	probe *p = nu_calloc(1, sizeof(*p));
	nu_term mode = nu_tuple_elem(arg, 1);
	p->owner = nu_pid_value(nu_tuple_elem(arg, 0));
	*data = p;
	if (mode == A("stop"))
		return r->reason = nu_tuple(2, A("nope"), nu_int(1)),
		       NU_GEN_STOP;
	if (mode == A("ignore"))
		return NU_GEN_IGNORE;
	if (mode == A("nostate"))
		return NU_GEN_OK;
	if (mode == A("trap"))
		nu_trap_exit(1);
	if (mode == A("timeouts")) {
		r->state_timeout_ms = 20;
		CU_ASSERT_EQUAL(nu_statem_generic_timeout(r, A("g"), 10,
							  A("gm")), 0);
	}
	if (mode == A("badtmo"))
		r->state_timeout_ms = -7;
	*state = nu_tuple_elem(arg, 2);
	return NU_GEN_OK;
}

static void probe_terminate(nu_term reason, nu_term state, void *data)
{
	note(data, nu_tuple(3, A("terminated"), reason, state));
}

static const nu_statem_cbs probe_cbs = {
	.init = probe_init,
	.handle_event = probe_event,
	.terminate = probe_terminate,
};

static const nu_statem_cbs enter_cbs = {
	.init = probe_init,
	.handle_event = probe_event,
	.state_enter = 1,
	.terminate = probe_terminate,
};

static nu_term probe_arg(const char *mode, nu_term state)
{
	return nu_tuple(3, nu_pid_term(nu_self()), A(mode), state);
}

static nu_pid probe_start(const nu_statem_cbs *cbs, const char *mode)
{
	nu_pid pid = nu_statem_start(cbs, probe_arg(mode, A("s0")), NULL);
	CU_ASSERT_FATAL(pid > 0);
	return pid;
}

/* A fired note within ms; its type and content checked; *ns its time. */
static int fired(int64_t ms, nu_statem_event_type type, nu_term content,
		 int64_t *ns)
{
	nu_term v[5];
	if (!get_note(FIRED, ms, v))
		return 0;
	CU_ASSERT_EQUAL(nu_int_value(v[0]), type);
	CU_ASSERT(nu_term_equal(v[2], content));
	if (ns)
		*ns = nu_int_value(v[4]);
	return 1;
}

static void stop_probe(nu_pid pid)
{
	nu_term v[2];
	CU_ASSERT_EQUAL(nu_gen_stop(nu_pid_term(pid), NU_ATOM_NORMAL, 2000),
			0);
	CU_ASSERT(get_note("{terminated, R, S}", 1000, v));
}

/* ------------------------------------------------------------ door lock */

typedef struct door {
	int pos;
	int infos;
} door;

static const int door_code[3] = { 1, 2, 3 };

/* Calls every state answers: which (the state), infos (the count). */
static int door_call(const nu_statem_event *ev, nu_term state, door *d,
		     nu_statem_ret *r)
{
	nu_term c = ev->content;
	if (c == A("which"))
		nu_reply(ev->from, state);
	else if (c == A("infos"))
		nu_reply(ev->from, nu_int(d->infos));
	else if (c == A("nowhere"))
		r->next_state = A("nowhere"), nu_reply(ev->from, A("ok"));
	return NU_GEN_OK;
}

static int door_locked(const nu_statem_event *ev, nu_term state,
		       void **data, nu_statem_ret *r)
{
	door *d = *data;
	if (ev->type == NU_EV_CALL)
		return door_call(ev, state, d, r);
	if (ev->type == NU_EV_INFO) {
		d->infos++;
		return NU_GEN_OK;
	}
	CU_ASSERT_EQUAL(ev->type, NU_EV_CAST);
	int b = (int)nu_int_value(nu_tuple_elem(ev->content, 1));
	if (b != door_code[d->pos]) {
		d->pos = b == door_code[0];
		return NU_GEN_OK;
	}
	if (++d->pos == 3) {
		d->pos = 0;
		r->next_state = A("open");
		r->state_timeout_ms = 100;
		r->state_timeout_msg = A("lock");
	}
	return NU_GEN_OK;
}

static int door_open(const nu_statem_event *ev, nu_term state, void **data,
		     nu_statem_ret *r)
{
	door *d = *data;
	switch (ev->type) {
	case NU_EV_CALL:
		return door_call(ev, state, d, r);
	case NU_EV_CAST: /* buttons do nothing; lock locks */
	case NU_EV_STATE_TIMEOUT:
		if (ev->content == A("lock"))
			r->next_state = A("locked");
		return NU_GEN_OK;
	default:
		CU_FAIL("unexpected event in open");
		return NU_GEN_OK;
	}
}

static int door_init(nu_term arg, nu_term *state, void **data,
		     nu_statem_ret *r)
{
	(void)arg, (void)r;
	*data = nu_calloc(1, sizeof(door));
	*state = A("locked");
	return NU_GEN_OK;
}

static int door_format(nu_term state, void *data, char *buf, size_t len)
{
	const door *d = data;
	return snprintf(buf, len, "door %s pos %d", nu_atom_name(state),
			d->pos);
}

static const nu_statem_state door_states[] = {
	{ "locked", door_locked },
	{ "open", door_open },
};

static const nu_statem_cbs door_cbs = {
	.init = door_init,
	.states = door_states,
	.nstates = 2,
	.format_state = door_format,
};

static void press(nu_term door, const int *buttons, int n)
{
	for (int i = 0; i < n; i++)
		CU_ASSERT_EQUAL(nu_cast(door, nu_tuple(2, A("button"),
						       nu_int(buttons[i]))),
				0);
}

static nu_term which(nu_term door)
{
	nu_term r = NU_NONE;
	CU_ASSERT_EQUAL(nu_call(door, A("which"), 2000, &r), 0);
	return r;
}

static void door_main(void *a)
{
	(void)a;
	nu_gen_opts o;
	nu_gen_opts_init(&o);
	o.name = A("door");
	nu_pid pid = nu_statem_start(&door_cbs, nu_int(0), &o);
	CU_ASSERT_FATAL(pid > 0);
	nu_term d = A("door");
	CU_ASSERT_EQUAL(which(d), A("locked"));
	press(d, (const int[]){ 1, 2, 9, 3 }, 4);
	CU_ASSERT_EQUAL(which(d), A("locked"));
	press(d, (const int[]){ 1, 2, 3 }, 3);
	CU_ASSERT_EQUAL(which(d), A("open"));
	CU_ASSERT_EQUAL(nu_cast(d, A("lock")), 0);
	CU_ASSERT_EQUAL(which(d), A("locked"));

	/* opened, it locks itself after 100 ms */
	press(d, (const int[]){ 1, 1, 2, 3 }, 4);
	CU_ASSERT_EQUAL(which(d), A("open"));
	nu_sleep(250);
	CU_ASSERT_EQUAL(which(d), A("locked"));

	for (int i = 0; i < 3; i++)
		nu_send(pid, A("ping"));
	nu_term n = call(pid, A("infos"));
	CU_ASSERT_EQUAL(n, nu_int(3));

	press(d, (const int[]){ 1 }, 1);
	char buf[128];
	int len = nu_gen_status(d, buf, sizeof(buf), 2000);
	CU_ASSERT(len > 0 && strncmp(buf, "gen_statem <0.", 14) == 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "> door locked pos 1"));
	CU_ASSERT_EQUAL(len, (int)strlen(buf));
	CU_ASSERT_EQUAL(nu_gen_stop(d, NU_ATOM_NORMAL, 2000), 0);
	CU_ASSERT_EQUAL(nu_whereis(d), -ENOENT);
}

static void test_door(void) { run_node(door_main); }

/* A state with no function in the table: {bad_state, State}. */
static void bad_state_main(void *a)
{
	(void)a;
	nu_pid pid = nu_statem_start(&door_cbs, nu_int(0), NULL);
	CU_ASSERT_FATAL(pid > 0);
	nu_term ref, why;
	CU_ASSERT_EQUAL(nu_monitor(pid, &ref), 0);
	CU_ASSERT_EQUAL(call(pid, A("nowhere")), A("ok"));
	CU_ASSERT_EQUAL(nu_call(nu_pid_term(pid), A("which"), 2000, &why),
			-ESRCH);
	nu_term want = nu_tuple(2, A("bad_state"), A("nowhere"));
	CU_ASSERT(nu_term_equal(why, want));
	CU_ASSERT(nu_term_equal(nt_down_reason(ref, pid, 2000), want));
}

static void test_bad_state(void) { run_node(bad_state_main); }

/* ------------------------------------------------- handle_event mode */

typedef struct counter {
	nu_term later; /* a call's from, kept */
} counter;

static int counter_call(const nu_statem_event *ev, nu_term state,
			counter *c, nu_statem_ret *r)
{
	if (ev->content == A("later")) {
		c->later = ev->from; /* replied to by a cast later */
		r->keep = 1;
		return NU_GEN_OK;
	}
	if (ev->content == A("die")) {
		r->reason = nu_tuple(2, A("died"), nu_int(1));
		return NU_GEN_STOP;
	}
	nu_reply(ev->from, state);
	return NU_GEN_OK;
}

static int counter_event(const nu_statem_event *ev, nu_term state,
			 void **data, nu_statem_ret *r)
{
	counter *c = *data;
	nu_term x = ev->content;
	if (ev->type == NU_EV_CALL)
		return counter_call(ev, state, c, r);
	CU_ASSERT_EQUAL(ev->type, NU_EV_CAST);
	if (x == A("inc")) {
		int64_t n = nu_int_value(nu_tuple_elem(state, 1));
		r->next_state = nu_tuple(2, A("count"), nu_int(n + 1));
	} else if (nu_tuple_elem(x, 0) == A("set")) {
		r->next_state = nu_tuple_elem(x, 1); /* inside the message */
	} else if (x == A("release")) {
		CU_ASSERT_EQUAL(nu_reply(c->later, A("released")), 0);
	}
	return NU_GEN_OK;
}

static int counter_init(nu_term arg, nu_term *state, void **data,
			nu_statem_ret *r)
{
	(void)arg, (void)r;
	*data = nu_calloc(1, sizeof(counter));
	*state = nu_tuple(2, A("count"), nu_int(0));
	return NU_GEN_OK;
}

static const nu_statem_cbs counter_cbs = {
	.init = counter_init,
	.handle_event = counter_event,
};

/* Gets {Owner, Request}, says asking, calls the machine in arg with
 * Request, sends Owner {answer, Reply}. */
static void asker(void *arg)
{
	nu_pid m = (nu_pid)(intptr_t)arg, owner;
	nu_term t, r = NU_NONE;
	CU_ASSERT_EQUAL(nu_receive(&t, 2000), 0);
	owner = nu_pid_value(nu_tuple_elem(t, 0));
	nu_send(owner, A("asking"));
	CU_ASSERT_EQUAL(nu_call(nu_pid_term(m), nu_tuple_elem(t, 1), 2000, &r),
			0);
	nu_send(owner, nu_tuple(2, A("answer"), r));
}

/* Spawn an asker of request to m; return once its call is queued. */
static void spawn_asker(nu_pid m, nu_term request)
{
	nu_pid p = nu_spawn(asker, (void *)(intptr_t)m);
	CU_ASSERT_FATAL(p > 0);
	nu_send(p, nu_tuple(2, nu_pid_term(nu_self()), request));
	nu_term v[1];
	nu_proc_info info;
	CU_ASSERT(get_note("asking", 2000, v));
	do /* parked in nu_call: its request is queued */
		nu_sleep(1);
	while (nu_process_info(p, &info) == 0 &&
	       info.state != NU_PROC_WAITING);
}

static void counter_main(void *a)
{
	(void)a;
	nu_pid pid = nu_statem_start(&counter_cbs, nu_int(0), NULL);
	CU_ASSERT_FATAL(pid > 0);
	nu_term m = nu_pid_term(pid);
	CU_ASSERT(nu_term_equal(call(pid, A("get")),
				nu_tuple(2, A("count"), nu_int(0))));
	for (int i = 0; i < 3; i++)
		nu_cast(m, A("inc"));
	CU_ASSERT(nu_term_equal(call(pid, A("get")),
				nu_tuple(2, A("count"), nu_int(3))));
	nu_term s42 = nu_tuple(2, A("count"), nu_int(42));
	nu_cast(m, nu_tuple(2, A("set"), s42));
	/* messages of the same size, likely in the freed one's memory */
	for (int i = 0; i < 8; i++)
		nu_cast(m, nu_tuple(2, A("noise"),
				    nu_tuple(2, A("junk"), nu_int(i))));
	CU_ASSERT(nu_term_equal(call(pid, A("get")), s42));
	char buf[128];
	CU_ASSERT(nu_gen_status(m, buf, sizeof(buf), 2000) > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, "> {count,42}"));

	spawn_asker(pid, A("later"));
	nu_cast(m, A("release"));
	nu_term v[1];
	CU_ASSERT(get_note("{answer, X}", 2000, v) && v[0] == A("released"));

	nu_term why;
	CU_ASSERT_EQUAL(nu_call(m, A("die"), 2000, &why), -ESRCH);
	CU_ASSERT(nu_term_equal(why, nu_tuple(2, A("died"), nu_int(1))));
	CU_ASSERT_EQUAL(nu_call(m, A("get"), 2000, &why), -ESRCH);
	CU_ASSERT_EQUAL(why, NU_ATOM_NOPROC);
	CU_ASSERT_EQUAL(nu_cast(m, A("inc")), 0);
}

static void test_handle_event(void) { run_node(counter_main); }

/* ------------------------------------------------------------ postpone */

typedef struct jobs {
	int log[64];
	int n;
	int seen_waiting; /* deliveries in state waiting */
} jobs;

static int jobs_waiting(const nu_statem_event *ev, nu_term state,
			void **data, nu_statem_ret *r)
{
	jobs *j = *data;
	nu_term x = ev->content;
	(void)state;
	j->seen_waiting++;
	if (x == A("go")) {
		r->next_state = A("running");
	} else if (x == A("go_now")) {
		r->next_state = A("running");
		r->postpone = 1;
	} else if (x == A("stay")) {
		r->next_state = A("waiting"); /* no change: nothing retried */
	} else {
		r->postpone = 1; /* jobs and calls */
	}
	return NU_GEN_OK;
}

static int jobs_running(const nu_statem_event *ev, nu_term state,
			void **data, nu_statem_ret *r)
{
	jobs *j = *data;
	nu_term x = ev->content;
	if (ev->type == NU_EV_CALL && x == A("log")) {
		nu_term l = NU_NIL;
		for (int i = j->n; i-- > 0;)
			l = nu_cons(nu_int(j->log[i]), l);
		nu_reply(ev->from, l);
	} else if (ev->type == NU_EV_CALL && x == A("seen")) {
		nu_reply(ev->from, nu_int(j->seen_waiting));
	} else if (ev->type == NU_EV_CALL && x == A("heap")) {
		nu_reply(ev->from, nu_int64((int64_t)nu_heap_used()));
	} else if (ev->type == NU_EV_CALL) {
		nu_reply(ev->from, state);
	} else if (x == A("wait")) {
		r->next_state = A("waiting");
	} else if (j->n < 64) {
		j->log[j->n++] = x == A("go_now")
					 ? 100
					 : (int)nu_int_value(
						   nu_tuple_elem(x, 1));
	}
	return NU_GEN_OK;
}

static int jobs_init(nu_term arg, nu_term *state, void **data,
		     nu_statem_ret *r)
{
	(void)arg, (void)r;
	*data = nu_calloc(1, sizeof(jobs));
	*state = A("waiting");
	return NU_GEN_OK;
}

static const nu_statem_state jobs_states[] = {
	{ "waiting", jobs_waiting },
	{ "running", jobs_running },
};

static const nu_statem_cbs jobs_cbs = {
	.init = jobs_init,
	.states = jobs_states,
	.nstates = 2,
};

static void job(nu_term m, int n)
{
	CU_ASSERT_EQUAL(nu_cast(m, nu_tuple(2, A("job"), nu_int(n))), 0);
}

/* The machine's log equals want[0..n). */
static void check_log(nu_pid pid, const int *want, int n)
{
	nu_term l = call(pid, A("log"));
	for (int i = 0; i < n; i++, l = nu_list_tail(l))
		CU_ASSERT_EQUAL(nu_list_head(l), nu_int(want[i]));
	CU_ASSERT_EQUAL(l, NU_NIL);
}

static void postpone_main(void *a)
{
	(void)a;
	nu_pid pid = nu_statem_start(&jobs_cbs, nu_int(0), NULL);
	CU_ASSERT_FATAL(pid > 0);
	nu_term m = nu_pid_term(pid), v[1];
	job(m, 1);
	job(m, 2);
	spawn_asker(pid, A("ask")); /* its call is postponed */
	job(m, 3);
	nu_cast(m, A("stay"));
	nu_sleep(10);
	CU_ASSERT(!get_note("{answer, X}", 0, v)); /* not answered yet */
	nu_cast(m, A("go"));
	job(m, 4);
	check_log(pid, (const int[]){ 1, 2, 3, 4 }, 4);
	CU_ASSERT(get_note("{answer, X}", 2000, v) && v[0] == A("running"));
	/* 1, 2, ask, 3 once each (stay did not retry them), stay, go */
	CU_ASSERT_EQUAL(call(pid, A("seen")), nu_int(6));

	/* the event that postpones and changes state is retried at once,
	 * after those postponed before it */
	nu_cast(m, A("wait"));
	job(m, 5);
	nu_cast(m, A("go_now"));
	job(m, 6);
	check_log(pid, (const int[]){ 1, 2, 3, 4, 5, 100, 6 }, 7);

	/* many rounds: the machine's heap does not grow */
	int64_t h0 = nu_int_value(call(pid, A("heap")));
	for (int i = 0; i < 300; i++) {
		nu_cast(m, A("wait"));
		job(m, 7);
		nu_cast(m, A("go"));
		if (i % 50 == 0)
			call(pid, A("heap"));
	}
	int64_t h1 = nu_int_value(call(pid, A("heap")));
	CU_ASSERT(h1 - h0 < 2048);
	CU_ASSERT_EQUAL(nu_gen_stop(m, NU_ATOM_NORMAL, 2000), 0);
}

static void test_postpone(void) { run_node(postpone_main); }

/* ---------------------------------------------------------- state timeout */

static nu_term cmd3(const char *op, nu_term a, nu_term b)
{
	return nu_tuple(3, A(op), a, b);
}

static void state_timeout_main(void *a)
{
	(void)a;
	nu_pid pid = probe_start(&probe_cbs, "ok");
	nu_term m = nu_pid_term(pid);
	int64_t t0, t1 = 0;

	/* fires after its time, not before, with its message */
	t0 = nu_int_value(call(pid, cmd3("st", nu_int(40), A("hello"))));
	CU_ASSERT(fired(1000, NU_EV_STATE_TIMEOUT, A("hello"), &t1));
	CU_ASSERT(t1 - t0 >= 40 * 1000000LL);
	CU_ASSERT(!fired(60, 0, NU_NONE, NULL)); /* once */
	call(pid, cmd3("st", nu_int(5), A("none")));
	CU_ASSERT(fired(1000, NU_EV_STATE_TIMEOUT, A("timeout"), NULL));

	/* other events and a "change" to the same state keep it */
	t0 = nu_int_value(call(pid, cmd3("st", nu_int(40), A("kept"))));
	nu_cast(m, A("noop"));
	nu_send(pid, A("info"));
	call(pid, nu_tuple(2, A("goto"), A("s0")));
	CU_ASSERT(fired(1000, NU_EV_STATE_TIMEOUT, A("kept"), &t1));
	CU_ASSERT(t1 - t0 >= 40 * 1000000LL);

	/* a state change cancels it; so does cancel (100 ms: a margin for
	 * a loaded machine between the calls) */
	call(pid, cmd3("st", nu_int(100), A("a")));
	call(pid, nu_tuple(2, A("goto"), A("s1")));
	CU_ASSERT(!fired(150, 0, NU_NONE, NULL));
	call(pid, cmd3("st", nu_int(100), A("b")));
	call(pid, cmd3("st", A("cancel"), A("none")));
	CU_ASSERT(!fired(150, 0, NU_NONE, NULL));

	/* restarted: one event, the second setting's, after its time */
	call(pid, cmd3("st", nu_int(150), A("first")));
	nu_sleep(20);
	t0 = nu_int_value(call(pid, cmd3("st", nu_int(40), A("second"))));
	CU_ASSERT(fired(1000, NU_EV_STATE_TIMEOUT, A("second"), &t1));
	CU_ASSERT(t1 - t0 >= 40 * 1000000LL);
	CU_ASSERT(!fired(60, 0, NU_NONE, NULL));

	/* set with a state change: it runs in the new state */
	call(pid, cmd3("then", nu_tuple(2, A("goto"), A("s2")),
		       cmd3("st", nu_int(10), A("in_s2"))));
	nu_term v[5];
	CU_ASSERT(get_note(FIRED, 1000, v) && v[3] == A("s2"));
	stop_probe(pid);
}

static void test_state_timeout(void) { run_node(state_timeout_main); }

/* A timer that fired into the mailbox while the machine was busy, then
 * was cancelled (state change) or restarted: its event never comes. */
static void stale_main(void *a)
{
	(void)a;
	nu_pid pid = probe_start(&probe_cbs, "ok");
	nu_term m = nu_pid_term(pid), sleep5 = nu_tuple(2, A("sleep"),
							nu_int(5));
	nu_term block = nu_tuple(2, A("wait_for"), A("go"));
	/* control: no change, the timer's message comes and is handled */
	nu_cast(m, block);
	nu_cast(m, cmd3("st", nu_int(1), A("control")));
	nu_cast(m, sleep5);
	nu_send(pid, A("go")); /* all three queued before it */
	CU_ASSERT(fired(1000, NU_EV_STATE_TIMEOUT, A("control"), NULL));

	nu_cast(m, block);
	nu_cast(m, cmd3("st", nu_int(1), A("stale")));
	nu_cast(m, cmd3("then", sleep5, nu_tuple(2, A("goto"), A("s1"))));
	nu_send(pid, A("go"));
	CU_ASSERT(!fired(60, 0, NU_NONE, NULL));

	nu_cast(m, block);
	nu_cast(m, nu_tuple(4, A("gt"), A("g"), nu_int(1), A("old")));
	nu_cast(m, cmd3("then", sleep5,
			nu_tuple(4, A("gt"), A("g"), nu_int(30), A("new"))));
	nu_send(pid, A("go"));
	CU_ASSERT(fired(1000, NU_EV_GENERIC_TIMEOUT, A("new"), NULL));
	CU_ASSERT(!fired(60, 0, NU_NONE, NULL));
	stop_probe(pid);
}

static void test_stale(void) { run_node(stale_main); }

/* Zero timeouts: after the postponed events put back, before the
 * messages not yet received; an event timeout of 0 is cancelled by the
 * events put back. */
static int zero_event(const nu_statem_event *ev, nu_term state,
		      void **data, nu_statem_ret *r)
{
	probe *p = *data;
	if (ev->type == NU_EV_CAST && ev->content == A("go")) {
		r->next_state = A("running");
		r->state_timeout_ms = 0;
		r->state_timeout_msg = A("zero");
		r->event_timeout_ms = 0;
		r->event_timeout_msg = A("ezero");
		CU_ASSERT_EQUAL(nu_statem_generic_timeout(r, A("g"), 0,
							  A("gzero")), 0);
		nu_send(nu_self(), A("later")); /* not received yet */
	} else if (state == A("s0") && ev->type != NU_EV_CALL) {
		r->postpone = 1;
	} else if (ev->type == NU_EV_CALL) {
		nu_reply(ev->from, state);
	} else {
		note(p, nu_tuple(3, A("order"), nu_int(ev->type),
				 ev->content));
	}
	return NU_GEN_OK;
}

static const nu_statem_cbs zero_cbs = {
	.init = probe_init,
	.handle_event = zero_event,
};

static void zero_main(void *a)
{
	(void)a;
	nu_pid pid = probe_start(&zero_cbs, "ok");
	nu_term m = nu_pid_term(pid), v[2];
	nu_cast(m, A("x"));
	nu_cast(m, A("y"));
	nu_cast(m, A("go"));
	const char *want[] = { "x", "y", "gzero", "zero", "later" };
	for (int i = 0; i < 5; i++) {
		CU_ASSERT_FATAL(get_note("{order, T, C}", 1000, v));
		CU_ASSERT_EQUAL(v[1], A(want[i]));
	}
	CU_ASSERT(!get_note("{order, T, C}", 30, v)); /* no ezero */
	CU_ASSERT_EQUAL(call(pid, A("state")), A("running"));
	CU_ASSERT_EQUAL(nu_gen_stop(m, NU_ATOM_NORMAL, 2000), 0);
}

static void test_zero(void) { run_node(zero_main); }

/* --------------------------------------------------------- event timeout */

static void event_timeout_main(void *a)
{
	(void)a;
	nu_pid pid = probe_start(&probe_cbs, "ok");
	nu_term m = nu_pid_term(pid);
	int64_t t0, t1 = 0;
	char buf[64];

	t0 = nu_int_value(call(pid, cmd3("et", nu_int(30), A("idle"))));
	CU_ASSERT(fired(1000, NU_EV_EVENT_TIMEOUT, A("idle"), &t1));
	CU_ASSERT(t1 - t0 >= 30 * 1000000LL);

	/* any event cancels it: a cast, an info, a call */
	call(pid, cmd3("et", nu_int(100), A("x")));
	nu_sleep(10);
	nu_cast(m, A("noop"));
	call(pid, cmd3("et", nu_int(100), A("x")));
	nu_send(pid, A("info"));
	call(pid, cmd3("et", nu_int(100), A("x")));
	call(pid, A("state"));
	CU_ASSERT(!fired(150, 0, NU_NONE, NULL));

	/* a status request is no event */
	call(pid, cmd3("et", nu_int(40), A("y")));
	CU_ASSERT(nu_gen_status(m, buf, sizeof(buf), 1000) > 0);
	CU_ASSERT(fired(1000, NU_EV_EVENT_TIMEOUT, A("y"), NULL));

	/* zero: at once when nothing else is queued */
	call(pid, cmd3("et", nu_int(0), A("z")));
	CU_ASSERT(fired(1000, NU_EV_EVENT_TIMEOUT, A("z"), NULL));
	stop_probe(pid);
}

static void test_event_timeout(void) { run_node(event_timeout_main); }

/* ------------------------------------------------------- generic timeouts */

static nu_term gt(const char *name, nu_term ms, const char *msg)
{
	return nu_tuple(4, A("gt"), A(name), ms, A(msg));
}

/* The next fired generic timeout: its name, content, state. */
static int fired_generic(int64_t ms, nu_term *v)
{
	if (!get_note(FIRED, ms, v))
		return 0;
	CU_ASSERT_EQUAL(nu_int_value(v[0]), NU_EV_GENERIC_TIMEOUT);
	return 1;
}

static void generic_main(void *a)
{
	(void)a;
	nu_pid pid = probe_start(&probe_cbs, "ok");
	nu_term v[5];
	int64_t ta = nu_int_value(call(pid, gt("a", nu_int(30), "ma")));
	int64_t tb = nu_int_value(call(pid, gt("b", nu_int(60), "mb")));
	CU_ASSERT(fired_generic(1000, v) && v[1] == A("a") && v[2] == A("ma"));
	CU_ASSERT(nu_int_value(v[4]) - ta >= 30 * 1000000LL);
	CU_ASSERT(fired_generic(1000, v) && v[1] == A("b") && v[2] == A("mb"));
	CU_ASSERT(nu_int_value(v[4]) - tb >= 60 * 1000000LL);

	/* restart, cancel one of two, survive a state change */
	call(pid, gt("a", nu_int(150), "m1"));
	call(pid, gt("b", nu_int(100), "mb"));
	nu_sleep(20);
	ta = nu_int_value(call(pid, gt("a", nu_int(40), "m2")));
	call(pid, gt("b", A("cancel"), "none"));
	call(pid, nu_tuple(2, A("goto"), A("s1")));
	CU_ASSERT(fired_generic(1000, v) && v[1] == A("a") && v[2] == A("m2"));
	CU_ASSERT(nu_int_value(v[4]) - ta >= 40 * 1000000LL);
	CU_ASSERT(v[3] == A("s1"));
	CU_ASSERT(!get_note(FIRED, 150, v));

	/* names are any terms; zero; no message means timeout */
	nu_term name = nu_tuple(2, A("n"), nu_int(1));
	call(pid, nu_tuple(4, A("gt"), name, nu_int(0), A("none")));
	CU_ASSERT(fired_generic(1000, v) && nu_term_equal(v[1], name) &&
		  v[2] == A("timeout"));

	call(pid, A("gt_bad"));
	nu_statem_ret r;
	memset(&r, 0, sizeof(r));
	CU_ASSERT_EQUAL(nu_statem_generic_timeout(&r, A("g"), 1, NU_NONE),
			-EINVAL);
	stop_probe(pid);
}

static void test_generic(void)
{
	nu_statem_ret r;
	memset(&r, 0, sizeof(r));
	CU_ASSERT_EQUAL(nu_statem_generic_timeout(&r, NU_NIL, 1, NU_NIL),
			-EINVAL);
	run_node(generic_main);
}

/* ------------------------------------------------------------ state enter */

static void expect_enter(nu_term old, nu_term now)
{
	nu_term v[2];
	CU_ASSERT_FATAL(get_note("{enter, O, S}", 1000, v));
	CU_ASSERT(nu_term_equal(v[0], old));
	CU_ASSERT(nu_term_equal(v[1], now));
}

static void enter_main(void *a)
{
	(void)a;
	nu_pid pid = probe_start(&enter_cbs, "ok");
	nu_term m = nu_pid_term(pid), v[5];
	expect_enter(A("s0"), A("s0")); /* the initial state */
	call(pid, nu_tuple(2, A("goto"), A("s1")));
	expect_enter(A("s0"), A("s1"));
	call(pid, nu_tuple(2, A("goto"), A("s1"))); /* keep state */
	nu_cast(m, A("noop"));
	call(pid, A("state"));
	CU_ASSERT(!get_note("{enter, O, S}", 30, v));
	nu_term tup = nu_tuple(2, A("tuple"), nu_int(1));
	call(pid, nu_tuple(2, A("goto"), tup));
	expect_enter(A("s1"), tup);
	call(pid, nu_tuple(2, A("goto"), A("timed"))); /* enter sets one */
	expect_enter(tup, A("timed"));
	CU_ASSERT(get_note(FIRED, 1000, v) && v[2] == A("entered"));

	/* an enter call may not change the state or postpone */
	nu_term ref;
	CU_ASSERT_EQUAL(nu_monitor(pid, &ref), 0);
	call(pid, nu_tuple(2, A("goto"), A("bad")));
	nu_term want = nu_tuple(2,
				A("bad_state_enter_return_from_state_function"),
				A("other"));
	CU_ASSERT(nu_term_equal(nt_down_reason(ref, pid, 2000), want));
	CU_ASSERT(get_note("{terminated, R, S}", 1000, v) &&
		  nu_term_equal(v[0], want) && v[1] == A("bad"));

	pid = probe_start(&enter_cbs, "ok");
	CU_ASSERT_EQUAL(nu_monitor(pid, &ref), 0);
	call(pid, nu_tuple(2, A("goto"), A("badp")));
	want = nu_tuple(2, A("bad_state_enter_action_from_state_function"),
			A("postpone"));
	CU_ASSERT(nu_term_equal(nt_down_reason(ref, pid, 2000), want));
}

static void test_enter(void) { run_node(enter_main); }

/* ------------------------------------------------------------------ stop */

static void stopped(nu_pid pid, nu_term ref, nu_term want)
{
	nu_term v[2];
	CU_ASSERT(nu_term_equal(nt_down_reason(ref, pid, 2000), want));
	CU_ASSERT(get_note("{terminated, R, S}", 1000, v) &&
		  nu_term_equal(v[0], want));
}

static void stop_main(void *a)
{
	(void)a;
	nu_term ref, why, want = nu_tuple(2, A("shutdown"), A("x"));
	nu_pid pid = probe_start(&probe_cbs, "ok");
	CU_ASSERT_EQUAL(nu_monitor(pid, &ref), 0);
	CU_ASSERT_EQUAL(nu_gen_stop(nu_pid_term(pid), want, 2000), 0);
	stopped(pid, ref, want);
	CU_ASSERT_EQUAL(nu_gen_stop(nu_pid_term(pid), want, 100), -ESRCH);

	pid = probe_start(&probe_cbs, "ok");
	CU_ASSERT_EQUAL(nu_monitor(pid, &ref), 0);
	CU_ASSERT_EQUAL(nu_call(nu_pid_term(pid), A("die"), 2000, &why),
			-ESRCH);
	want = nu_tuple(2, A("died"), nu_int(1));
	CU_ASSERT(nu_term_equal(why, want));
	stopped(pid, ref, want);

	pid = probe_start(&probe_cbs, "ok");
	CU_ASSERT_EQUAL(nu_monitor(pid, &ref), 0);
	nu_call(nu_pid_term(pid), nu_tuple(2, A("ret"), nu_int(7)), 2000,
		&why);
	stopped(pid, ref, nu_tuple(2, A("bad_return_from_state_function"),
				   nu_int(7)));
}

static void test_stop(void) { run_node(stop_main); }

/* The parent: start the machine linked, hand its pid over, wait for go,
 * exit with boom. */
static void parent(void *arg)
{
	nu_pid owner = (nu_pid)(intptr_t)arg;
	nu_term t;
	CU_ASSERT_EQUAL(nu_receive(&t, 2000), 0); /* the mode */
	nu_term sarg = nu_tuple(3, nu_pid_term(owner), t, A("s0"));
	nu_pid pid = nu_statem_start_link(&probe_cbs, sarg, NULL);
	CU_ASSERT_FATAL(pid > 0);
	nu_send(owner, nu_tuple(2, A("machine"), nu_pid_term(pid)));
	CU_ASSERT_EQUAL(nu_receive(&t, 2000), 0);
	nu_exit(A("boom"));
}

/* The machine started by a parent that exits with boom. */
static nu_pid orphan(const char *mode, nu_term *ref)
{
	nu_pid p = nu_spawn(parent, (void *)(intptr_t)nu_self());
	CU_ASSERT_FATAL(p > 0);
	nu_send(p, A(mode));
	nu_term v[1];
	CU_ASSERT_FATAL(get_note("{machine, P}", 2000, v));
	nu_pid pid = nu_pid_value(v[0]);
	CU_ASSERT_EQUAL(nu_monitor(pid, ref), 0);
	nu_send(p, A("go"));
	return pid;
}

static void parent_main(void *a)
{
	(void)a;
	nu_term ref, v[2];
	nu_pid pid = orphan("trap", &ref);
	stopped(pid, ref, A("boom"));

	pid = orphan("ok", &ref); /* not trapping: no terminate */
	CU_ASSERT_EQUAL(nt_down_reason(ref, pid, 2000), A("boom"));
	CU_ASSERT(!get_note("{terminated, R, S}", 50, v));
}

static void test_parent(void) { run_node(parent_main); }

/* ------------------------------------------------------------------ start */

static nu_pid start_mode(const char *mode, nu_term *reason)
{
	nu_gen_opts o;
	nu_gen_opts_init(&o);
	o.reason = reason;
	return nu_statem_start(&probe_cbs, probe_arg(mode, A("s0")), &o);
}

static void start_fail_main(void *a)
{
	(void)a;
	nu_term why, v[5];
	CU_ASSERT_EQUAL(start_mode("stop", &why), -ESRCH);
	CU_ASSERT(nu_term_equal(why, nu_tuple(2, A("nope"), nu_int(1))));
	CU_ASSERT_EQUAL(start_mode("ignore", &why), -ECANCELED);
	CU_ASSERT_EQUAL(start_mode("nostate", &why), -ESRCH);
	CU_ASSERT(nu_term_equal(why, nu_tuple(2, A("bad_return_from_init"),
					      A("no_state"))));
	CU_ASSERT_EQUAL(start_mode("badtmo", &why), -ESRCH);
	nu_term want = nu_tuple(2, A("bad_action_from_state_function"),
				nu_tuple(2, A("state_timeout"), nu_int(-7)));
	CU_ASSERT(nu_term_equal(why, want));
	CU_ASSERT(!get_note("{terminated, R, S}", 20, v)); /* no terminate */

	/* timeouts set by init run */
	nu_pid pid = start_mode("timeouts", &why);
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT_EQUAL(why, NU_NONE);
	CU_ASSERT(fired_generic(1000, v) && v[2] == A("gm"));
	CU_ASSERT(fired(1000, NU_EV_STATE_TIMEOUT, A("timeout"), NULL));
	stop_probe(pid);
}

static int nop_fn(const nu_statem_event *ev, nu_term state, void **data,
		  nu_statem_ret *r)
{
	(void)ev, (void)state, (void)data, (void)r;
	return NU_GEN_OK;
}

static void einval_main(void *a)
{
	(void)a;
	nu_term arg = nu_int(0);
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	const nu_statem_state good[] = { { "s", nop_fn } };
	const nu_statem_state no_name[] = { { NULL, nop_fn } };
	const nu_statem_state no_fn[] = { { "s", NULL } };
	const nu_statem_state bad_name[] = { { longname, nop_fn } };
	nu_statem_cbs c = { .init = probe_init, .handle_event = nop_fn };
	CU_ASSERT_EQUAL(nu_statem_start(NULL, arg, NULL), -EINVAL);
	c.states = good, c.nstates = 1; /* both */
	CU_ASSERT_EQUAL(nu_statem_start(&c, arg, NULL), -EINVAL);
	c.handle_event = NULL, c.states = NULL; /* neither */
	CU_ASSERT_EQUAL(nu_statem_start(&c, arg, NULL), -EINVAL);
	c.states = good, c.nstates = 0;
	CU_ASSERT_EQUAL(nu_statem_start(&c, arg, NULL), -EINVAL);
	c.nstates = 1, c.init = NULL;
	CU_ASSERT_EQUAL(nu_statem_start_link(&c, arg, NULL), -EINVAL);
	c.init = probe_init;
	c.states = no_name;
	CU_ASSERT_EQUAL(nu_statem_start(&c, arg, NULL), -EINVAL);
	c.states = no_fn;
	CU_ASSERT_EQUAL(nu_statem_start(&c, arg, NULL), -EINVAL);
	c.states = bad_name;
	CU_ASSERT_EQUAL(nu_statem_start(&c, arg, NULL), -EINVAL);
	CU_ASSERT_EQUAL(nu_statem_start(&probe_cbs, NU_NONE, NULL), -EINVAL);
}

static void test_start(void)
{
	CU_ASSERT_EQUAL(nu_statem_start(&probe_cbs, nu_int(0), NULL), -EPERM);
	CU_ASSERT_EQUAL(nu_statem_start(NULL, nu_int(0), NULL), -EPERM);
	run_node(start_fail_main);
	run_node(einval_main);
}

/* ------------------------------------------------------------------ heap */

/* Thousands of events of every kind: the machine's heap stays flat
 * (messages, timer references, zero timeouts, state copies freed). */
static void send_free(nu_pid pid, nu_term t, int is_call)
{
	nu_term r;
	if (is_call) {
		CU_ASSERT_EQUAL(nu_call(nu_pid_term(pid), t, 2000, &r), 0);
	} else {
		CU_ASSERT_EQUAL(nu_cast(nu_pid_term(pid), t), 0);
	}
	nu_term_free(t);
}

/* Take n notes (each within a second) and free them. */
static void drain(int n)
{
	for (int i = 0; i < n; i++) {
		nu_term t;
		CU_ASSERT_EQUAL_FATAL(nu_receive(&t, 1000), 0);
		nu_term_free(t);
	}
}

static void heap_round(nu_pid pid, int i)
{
	nu_term s = nu_tuple(2, A("s"), nu_int(i & 1)); /* boxed states */
	send_free(pid, nu_tuple(2, A("goto"), s), 0);
	nu_term_free(s);
	send_free(pid, A("noop"), 0);
	nu_send(pid, A("info"));
	send_free(pid, cmd3("st", nu_int(1000), A("x")), 1);
	send_free(pid, gt("g", nu_int(1000), "y"), 1);
	send_free(pid, cmd3("et", nu_int(0), A("z")), 1);
	send_free(pid, cmd3("st", nu_int(0), A("w")), 1);
	drain(3); /* enter, fired z, fired w */
}

static void heap_main(void *a)
{
	(void)a;
	nu_pid pid = probe_start(&enter_cbs, "ok");
	drain(1); /* the initial enter */
	for (int i = 0; i < 100; i++)
		heap_round(pid, i);
	int64_t h0 = nu_int_value(call(pid, A("heap")));
	size_t mine = nu_heap_used();
	for (int i = 0; i < 2000; i++)
		heap_round(pid, i);
	int64_t h1 = nu_int_value(call(pid, A("heap")));
	CU_ASSERT(h1 - h0 < 4096);
	if (h1 - h0 >= 4096)
		fprintf(stderr, "machine heap grew %lld bytes\n",
			(long long)(h1 - h0));
	CU_ASSERT(nu_heap_used() - mine < 4096); /* the test's own */
	stop_probe(pid);
}

static void test_heap(void) { run_node(heap_main); }

static CU_TestInfo tests[] = {
	{ "door lock: state functions", test_door },
	{ "bad state", test_bad_state },
	{ "handle_event, later replies, dead machine", test_handle_event },
	{ "postpone", test_postpone },
	{ "state timeout", test_state_timeout },
	{ "stale timers never fire", test_stale },
	{ "zero timeouts", test_zero },
	{ "event timeout", test_event_timeout },
	{ "generic timeouts", test_generic },
	{ "state enter calls", test_enter },
	{ "stop", test_stop },
	{ "parent exit", test_parent },
	{ "start failures, EINVAL", test_start },
	{ "heap stays flat", test_heap },
	CU_TEST_INFO_NULL,
};

NUTEST_MAIN("statem", tests)
