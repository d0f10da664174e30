/* supervisor.c — the supervisor behaviour: a gen_server (gen_server.c)
 * whose callbacks start children, watch them through links, and restart
 * them as their specs and the strategy say (OTP's supervisor).
 *
 * Entities
 *   child    a copied nu_child_spec, its id atom, its pid (0 when not
 *            running) and, for simple_one_for_one, its extra term. Kept in
 *            `kids` in start order; a simple_one_for_one supervisor also
 *            indexes its (many, unordered) children by pid in a hash.
 *   restart  a timestamp in a ring of intensity + 1: a restart that finds
 *            the oldest of them within period_s seconds is one too many,
 *            and the supervisor stops its children and exits shutdown.
 *
 * Invariants
 *   - The supervisor traps exits; every running child is linked to it.
 *     A child's {'EXIT', Pid, Reason} is its only news of the death.
 *   - Stopping a child: monitor, unlink, flush a queued EXIT, send the
 *     exit signal (shutdown, or kill), wait for the DOWN (then kill on the
 *     shutdown timeout). After it, no EXIT of that child can arrive.
 *   - Children start in order and stop in reverse; a strategy that stops
 *     several restarts them in start order.
 *   - A restart that fails to start counts as a restart and is retried by
 *     a message to itself, so a child that cannot start exhausts the
 *     intensity and the failure escalates.
 *
 * Rejected: a supervisor process of its own (not a gen_server): the
 * gen_server loop already gives calls, stop, status and the parent's
 * trapped exit with terminate, which is exactly the supervisor's shutdown.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "../mailbox.h"
#include "../term.h"
#include "gen.h"

NU__GEN_ATOM(a_exit, "EXIT")
NU__GEN_ATOM(a_retry, "$sup_retry")
NU__GEN_ATOM(a_start, "$sup_start")
NU__GEN_ATOM(a_terminate, "$sup_terminate")
NU__GEN_ATOM(a_restart, "$sup_restart")
NU__GEN_ATOM(a_delete, "$sup_delete")
NU__GEN_ATOM(a_which, "$sup_which")
NU__GEN_ATOM(a_count, "$sup_count")

typedef struct child {
	nu_term id;       /* atom; undefined for simple_one_for_one */
	nu_child_spec spec;
	nu_pid pid;       /* 0: not running */
	nu_term extra;    /* [] or the simple child's start_child term */
} child;

typedef struct sup {
	nu_sup_flags flags;
	child *kids;      /* start order (simple: any order) */
	size_t n, cap;
	child tmpl;       /* simple_one_for_one's template */
	uint64_t *stamps; /* restart times, a ring of intensity + 1 */
	size_t nstamps, next;
	nu_pid *hash;     /* simple: pid -> index + 1 in `idx` */
	uint32_t *idx;
	size_t hcap;
} sup;

#define SIMPLE(s) ((s)->flags.strategy == NU_SIMPLE_ONE_FOR_ONE)

/* ----------------------------------------------------- specs as terms */

/* A spec travels to the supervisor as {Id, Start, Arg, Restart,
 * Shutdown, Type}, the pointers as integers (user space fits 61 bits). */
static nu_term spec_term(const nu_child_spec *c)
{
	return nu_tuple(6, c->id ? nu_atom(c->id) : NU_ATOM_UNDEFINED,
			nu_int((intptr_t)c->start), nu_int((intptr_t)c->arg),
			nu_int(c->restart), nu_int64(c->shutdown_ms),
			nu_int(c->type));
}

static void spec_of(nu_term t, child *c)
{
	int64_t sh = 0;
	c->id = nu_tuple_elem(t, 0);
	c->spec.id = NULL;
	c->spec.start = (nu_pid(*)(void *, nu_term))(intptr_t)nu_int_value(
		nu_tuple_elem(t, 1));
	c->spec.arg = (void *)(intptr_t)nu_int_value(nu_tuple_elem(t, 2));
	c->spec.restart = (nu_restart)nu_int_value(nu_tuple_elem(t, 3));
	nu_int64_value(nu_tuple_elem(t, 4), &sh);
	c->spec.shutdown_ms = sh;
	c->spec.type = (nu_child_type)nu_int_value(nu_tuple_elem(t, 5));
	c->pid = 0;
	c->extra = NU_NIL;
}

static int spec_ok(const nu_child_spec *c, int need_id)
{
	return c && c->start && (c->id || !need_id) &&
	       (unsigned)c->restart <= NU_TEMPORARY &&
	       (unsigned)c->type <= NU_SUPERVISOR &&
	       c->shutdown_ms >= NU_SHUTDOWN_BRUTAL_KILL &&
	       (!c->id || nu_atom(c->id) != NU_NONE);
}

/* ---------------------------------------------------- the pid index */

static size_t hslot(const sup *s, nu_pid pid)
{
	return ((uint64_t)pid * 0x9E3779B97F4A7C15u >> 17) & (s->hcap - 1);
}

static int hash_grow(sup *s);

static void hash_put(sup *s, nu_pid pid, size_t i)
{
	if (!SIMPLE(s) || (s->n * 2 >= s->hcap && hash_grow(s)))
		return;
	size_t h = hslot(s, pid);
	while (s->hash[h] && s->hash[h] != pid)
		h = (h + 1) & (s->hcap - 1);
	s->hash[h] = pid;
	s->idx[h] = (uint32_t)i;
}

static int hash_grow(sup *s)
{
	size_t cap = s->hcap ? s->hcap * 2 : 64;
	nu_pid *h = nu_calloc(cap, sizeof(*h));
	uint32_t *x = nu_calloc(cap, sizeof(*x));
	if (!h || !x) {
		nu_free(h), nu_free(x);
		return -ENOMEM;
	}
	nu_free(s->hash), nu_free(s->idx);
	s->hash = h, s->idx = x, s->hcap = cap;
	for (size_t i = 0; i < s->n; i++)
		if (s->kids[i].pid)
			hash_put(s, s->kids[i].pid, i);
	return 0;
}

/* Remove pid (backward-shift deletion keeps probe chains whole). */
static void hash_del(sup *s, nu_pid pid)
{
	if (!SIMPLE(s) || !s->hcap)
		return;
	size_t h = hslot(s, pid), m = s->hcap - 1;
	while (s->hash[h] && s->hash[h] != pid)
		h = (h + 1) & m;
	if (!s->hash[h])
		return;
	for (size_t j = (h + 1) & m; s->hash[j]; j = (j + 1) & m) {
		size_t home = hslot(s, s->hash[j]);
		if (((j - home) & m) >= ((j - h) & m)) {
			s->hash[h] = s->hash[j], s->idx[h] = s->idx[j];
			h = j;
		}
	}
	s->hash[h] = 0;
}

/* The child running as pid, or NULL. */
static child *by_pid(sup *s, nu_pid pid)
{
	if (SIMPLE(s)) {
		if (!s->hcap)
			return NULL;
		size_t h = hslot(s, pid);
		while (s->hash[h] && s->hash[h] != pid)
			h = (h + 1) & (s->hcap - 1);
		return s->hash[h] ? &s->kids[s->idx[h]] : NULL;
	}
	for (size_t i = 0; i < s->n; i++)
		if (s->kids[i].pid == pid)
			return &s->kids[i];
	return NULL;
}

static child *by_id(sup *s, nu_term id)
{
	for (size_t i = 0; !SIMPLE(s) && i < s->n; i++)
		if (s->kids[i].id == id)
			return &s->kids[i];
	return NULL;
}

static void set_pid(sup *s, child *c, nu_pid pid)
{
	if (c->pid)
		hash_del(s, c->pid);
	c->pid = pid;
	if (pid)
		hash_put(s, pid, (size_t)(c - s->kids));
}

/* -------------------------------------------------- children come, go */

static child *add(sup *s, const child *c)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		child *k = nu_realloc(s->kids, cap * sizeof(*k));
		if (!k)
			return NULL;
		s->kids = k, s->cap = cap;
	}
	s->kids[s->n] = *c;
	return &s->kids[s->n++];
}

/* Forget child c (not running). Simple: the last one moves into its
 * place; else the order is kept. */
static void forget(sup *s, child *c)
{
	size_t i = (size_t)(c - s->kids);
	if (c->extra != NU_NIL)
		nu_term_free(c->extra);
	if (SIMPLE(s) && i != s->n - 1) {
		nu_pid moved = s->kids[s->n - 1].pid;
		*c = s->kids[s->n - 1];
		if (moved)
			set_pid(s, c, moved); /* re-point the index */
	} else if (!SIMPLE(s)) {
		memmove(c, c + 1, (s->n - i - 1) * sizeof(*c));
	}
	s->n--;
}

/* Start c: its pid (> 0), 0 (ignored), or -errno. */
static nu_pid start(sup *s, child *c)
{
	nu_pid pid = c->spec.start(c->spec.arg, c->extra);
	if (pid > 0)
		set_pid(s, c, pid);
	return pid;
}

/* Wait for the DOWN of ref, up to timeout_ms: 1 when it came. */
static int down(nu_term ref, int64_t timeout_ms)
{
	nu_term d;
	if (nu__mailbox_await_reply(nu__ref_id(ref), timeout_ms, &d) != 1)
		return 0;
	nu_term_free(d);
	return 1;
}

static int is_exit_of(nu_term t, void *pid)
{
	return nu_tuple_size(t) == 3 &&
	       nu_tuple_elem(t, 0) == a_exit() &&
	       nu_tuple_elem(t, 1) == nu_pid_term(*(nu_pid *)pid);
}

/* Begin stopping pid: monitor, unlink, flush its EXIT, send the signal.
 * *ref gets the monitor. */
static void stop_begin(nu_pid pid, int64_t shutdown_ms, nu_term *ref)
{
	nu_term t;
	if (nu_monitor(pid, ref))
		*ref = NU_NONE;
	nu_unlink(pid);
	while (nu_receive_if(is_exit_of, &pid, &t, 0) == 0)
		nu_term_free(t);
	nu_kill(pid, shutdown_ms == NU_SHUTDOWN_BRUTAL_KILL ? NU_ATOM_KILL
							     : NU_ATOM_SHUTDOWN);
}

/* End it: wait for the DOWN until deadline_ms (-1 forever), then kill. */
static void stop_end(nu_pid pid, nu_term ref, int64_t wait_ms)
{
	if (ref == NU_NONE)
		return;
	if (!down(ref, wait_ms)) {
		nu_kill(pid, NU_ATOM_KILL);
		down(ref, -1);
	}
	nu_term_free(ref);
}

static void stop_child(sup *s, child *c)
{
	if (!c->pid)
		return;
	nu_term ref;
	int64_t sh = c->spec.shutdown_ms;
	stop_begin(c->pid, sh, &ref);
	stop_end(c->pid, ref, sh == NU_SHUTDOWN_BRUTAL_KILL ? -1 : sh);
	set_pid(s, c, 0);
}

/* Simple children stop all at once (OTP does the same): signal all, then
 * collect the DOWNs within the one shutdown time. */
static void stop_simple(sup *s)
{
	nu_term *refs = nu_calloc(s->n ? s->n : 1, sizeof(*refs));
	int64_t sh = s->tmpl.spec.shutdown_ms;
	uint64_t t0 = nu_clock_ns();
	for (size_t i = 0; i < s->n; i++)
		if (s->kids[i].pid && refs)
			stop_begin(s->kids[i].pid, sh, &refs[i]);
		else if (s->kids[i].pid)
			stop_child(s, &s->kids[i]); /* no room: one by one */
	for (size_t i = 0; refs && i < s->n; i++) {
		if (!s->kids[i].pid)
			continue;
		int64_t left = sh;
		if (sh >= 0) {
			int64_t spent = (int64_t)((nu_clock_ns() - t0) / 1000000);
			left = spent < sh ? sh - spent : 0;
		} else {
			left = -1;
		}
		stop_end(s->kids[i].pid, refs[i], left);
		set_pid(s, &s->kids[i], 0);
	}
	nu_free(refs);
}

/* Stop children [from, n) in reverse start order. */
static void stop_from(sup *s, size_t from)
{
	if (SIMPLE(s)) {
		stop_simple(s);
		return;
	}
	for (size_t i = s->n; i-- > from;)
		stop_child(s, &s->kids[i]);
}

/* ---------------------------------------------------------- restarts */

/* Count a restart: 0, or -1 when it is one too many. */
static int intensity_ok(sup *s)
{
	uint64_t now = nu_clock_ns();
	uint64_t period = (uint64_t)s->flags.period_s * 1000000000u;
	s->stamps[s->next] = now;
	s->next = (s->next + 1) % s->nstamps;
	/* the ring's oldest entry is the next to be written */
	uint64_t oldest = s->stamps[s->next];
	return oldest && now - oldest < period ? -1 : 0;
}

static int restart_wanted(const child *c, nu_term why)
{
	if (c->spec.restart == NU_PERMANENT)
		return 1;
	if (c->spec.restart == NU_TEMPORARY)
		return 0;
	return why != NU_ATOM_NORMAL && why != NU_ATOM_SHUTDOWN &&
	       !(nu_tuple_size(why) == 2 &&
		 nu_tuple_elem(why, 0) == NU_ATOM_SHUTDOWN);
}

/* Start children [from, n) in order; a failure leaves the rest down and
 * asks for a retry (a message to ourselves). */
static void start_from(sup *s, size_t from)
{
	for (size_t i = from; i < s->n; i++) {
		if (s->kids[i].pid)
			continue;
		if (start(s, &s->kids[i]) < 0) {
			nu_send(nu_self(), nu_tuple(2, a_retry(),
						    s->kids[i].id));
			return;
		}
	}
}

/* Drop the temporary children that are not running (a strategy stopped
 * them: OTP does not restart those). */
static void drop_stopped_temporary(sup *s, size_t from)
{
	for (size_t i = s->n; i-- > from;)
		if (!s->kids[i].pid &&
		    s->kids[i].spec.restart == NU_TEMPORARY)
			forget(s, &s->kids[i]);
}

/* Child c needs a restart: as the strategy says. NU_GEN_STOP when the
 * intensity is exceeded. */
static int restart(sup *s, child *c)
{
	if (intensity_ok(s) < 0)
		return NU_GEN_STOP;
	size_t i = (size_t)(c - s->kids);
	switch (s->flags.strategy) {
	case NU_ONE_FOR_ALL:
		i = 0;
		/* fall through */
	case NU_REST_FOR_ONE:
		stop_from(s, i);
		drop_stopped_temporary(s, i);
		start_from(s, i);
		break;
	default:
		if (start(s, c) >= 0)
			break;
		if (SIMPLE(s))
			forget(s, c); /* no id to retry by: it goes */
		else
			nu_send(nu_self(), nu_tuple(2, a_retry(),
						    c->id));
	}
	return NU_GEN_OK;
}

/* A child exited with why. */
static int child_exit(sup *s, child *c, nu_term why)
{
	set_pid(s, c, 0);
	if (restart_wanted(c, why))
		return restart(s, c);
	if (c->spec.restart == NU_TEMPORARY || SIMPLE(s))
		forget(s, c);
	return NU_GEN_OK;
}

/* A retry of a restart that failed to start. */
static int retry(sup *s, nu_term id)
{
	child *c = by_id(s, id);
	if (!c || c->pid)
		return NU_GEN_OK; /* gone or running meanwhile */
	return restart(s, c);
}

/* ------------------------------------------------------ the callbacks */

/* init's argument: {{Strategy, Intensity, Period}, [Spec, ...]}. */
static int sup_init(nu_term arg, void **state, nu_gen_ret *r)
{
	nu_trap_exit(1);
	sup *s = nu_calloc(1, sizeof(*s));
	nu_term fl = nu_tuple_elem(arg, 0), l = nu_tuple_elem(arg, 1);
	if (!s)
		goto nomem;
	s->flags.strategy = (nu_sup_strategy)nu_int_value(nu_tuple_elem(fl, 0));
	s->flags.intensity = (int)nu_int_value(nu_tuple_elem(fl, 1));
	s->flags.period_s = (int)nu_int_value(nu_tuple_elem(fl, 2));
	s->nstamps = (size_t)s->flags.intensity + 1;
	if (!(s->stamps = nu_calloc(s->nstamps, sizeof(*s->stamps))))
		goto nomem;
	*state = s;
	for (; l != NU_NIL; l = nu_list_tail(l)) {
		child c;
		spec_of(nu_list_head(l), &c);
		if (SIMPLE(s)) {
			s->tmpl = c;
			continue;
		}
		child *k = add(s, &c);
		nu_pid pid = k ? start(s, k) : -ENOMEM;
		if (pid >= 0)
			continue;
		stop_from(s, 0);
		r->reason = nu_tuple(2, NU_ATOM_SHUTDOWN,
				     nu_tuple(3, nu_atom("failed_to_start_child"),
					      c.id, nu_int(pid)));
		return NU_GEN_STOP;
	}
	return NU_GEN_OK;
nomem:
	r->reason = nu_atom("enomem");
	return NU_GEN_STOP;
}

static int sup_info(nu_term msg, void **state, nu_gen_ret *r)
{
	sup *s = *state;
	nu_term tag = nu_tuple_elem(msg, 0);
	if (tag == a_retry() && retry(s, nu_tuple_elem(msg, 1)))
		goto shutdown;
	if (tag != a_exit() || nu_tuple_size(msg) != 3)
		return NU_GEN_OK;
	child *c = by_pid(s, nu_pid_value(nu_tuple_elem(msg, 1)));
	if (c && child_exit(s, c, nu_tuple_elem(msg, 2)) == NU_GEN_STOP)
		goto shutdown;
	return NU_GEN_OK;
shutdown: /* too many restarts: terminate stops the children */
	r->reason = NU_ATOM_SHUTDOWN;
	return NU_GEN_STOP;
}

static void sup_terminate(nu_term reason, void *state)
{
	(void)reason;
	if (state)
		stop_from(state, 0);
}

/* {'$sup_start', Spec | [], Extra} */
static nu_term call_start(sup *s, nu_term spec, nu_term extra)
{
	child c;
	if (SIMPLE(s) != (spec == NU_NIL))
		return nu_int(-EINVAL);
	if (SIMPLE(s)) {
		c = s->tmpl;
		c.extra = nu__term_copy(extra, nu__term_heap()); /* kept */
		if (c.extra == NU_NONE)
			return nu_int(-ENOMEM);
	} else {
		spec_of(spec, &c);
		if (by_id(s, c.id))
			return nu_int(-EEXIST);
	}
	child *k = add(s, &c);
	if (!k) {
		if (c.extra != NU_NIL)
			nu_term_free(c.extra);
		return nu_int(-ENOMEM);
	}
	nu_pid pid = start(s, k);
	if (pid < 0 || (pid == 0 && SIMPLE(s)))
		forget(s, k);
	return nu_int(pid < 0 && pid != -ENOMEM ? -ESRCH : pid);
}

static nu_term call_terminate(sup *s, nu_term which)
{
	child *c = nu_term_type(which) == NU_T_PID
			   ? by_pid(s, nu_pid_value(which))
			   : by_id(s, which);
	if (!c)
		return nu_int(-ENOENT);
	stop_child(s, c);
	if (SIMPLE(s) || c->spec.restart == NU_TEMPORARY)
		forget(s, c);
	return nu_int(0);
}

static nu_term call_restart(sup *s, nu_term id, int delete)
{
	child *c = by_id(s, id);
	if (SIMPLE(s))
		return nu_int(-EINVAL);
	if (!c)
		return nu_int(-ENOENT);
	if (c->pid)
		return nu_int(-EBUSY);
	if (delete) {
		forget(s, c);
		return nu_int(0);
	}
	nu_pid pid = start(s, c);
	return nu_int(pid < 0 ? -ESRCH : pid);
}

static nu_term call_which(sup *s)
{
	nu_term l = NU_NIL;
	for (size_t i = s->n; i-- > 0;) {
		child *c = &s->kids[i];
		l = nu_cons(nu_tuple(3, c->id, nu_int(c->pid),
				     nu_int(c->spec.type)),
			    l);
		if (l == NU_NONE)
			return nu_int(-ENOMEM);
	}
	return l;
}

static nu_term call_count(sup *s)
{
	int64_t active = 0, sups = 0;
	for (size_t i = 0; i < s->n; i++) {
		active += s->kids[i].pid != 0;
		sups += s->kids[i].spec.type == NU_SUPERVISOR;
	}
	return nu_tuple(4, nu_int((int64_t)s->n), nu_int(active), nu_int(sups),
			nu_int((int64_t)s->n - sups));
}

/* which_children's list goes out and each of its cells is freed. */
static int reply_which(sup *s, nu_term from)
{
	nu_term l = call_which(s);
	nu_reply(from, l);
	while (nu_term_type(l) == NU_T_LIST) {
		nu_term next = nu_list_tail(l);
		nu_term_free(nu_list_head(l));
		nu_term_free(l);
		l = next;
	}
	return NU_GEN_OK;
}

static int sup_call(nu_term req, nu_term from, void **state, nu_gen_ret *r)
{
	sup *s = *state;
	nu_term tag = nu_tuple_elem(req, 0), a1 = nu_tuple_elem(req, 1);
	if (tag == a_start())
		r->reply = call_start(s, a1, nu_tuple_elem(req, 2));
	else if (tag == a_terminate())
		r->reply = call_terminate(s, a1);
	else if (tag == a_restart())
		r->reply = call_restart(s, a1, 0);
	else if (tag == a_delete())
		r->reply = call_restart(s, a1, 1);
	else if (tag == a_which())
		return reply_which(s, from);
	else if (tag == a_count())
		r->reply = call_count(s);
	else
		r->reply = nu_int(-EINVAL);
	r->free_reply = 1;
	return NU_GEN_REPLY;
}

static const nu_gen_server_cbs sup_cbs = {
	.init = sup_init,
	.handle_call = sup_call,
	.handle_info = sup_info,
	.terminate = sup_terminate,
};

/* ---------------------------------------------------------- the API */

static int flags_ok(const nu_sup_flags *f, const nu_child_spec *c, size_t n)
{
	if (!f || (unsigned)f->strategy > NU_SIMPLE_ONE_FOR_ONE ||
	    f->intensity < 0 || f->intensity > 100000 || f->period_s < 1 ||
	    (n && !c))
		return 0;
	if (f->strategy == NU_SIMPLE_ONE_FOR_ONE)
		return n == 1 && spec_ok(c, 0);
	for (size_t i = 0; i < n; i++) {
		if (!spec_ok(&c[i], 1))
			return 0;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c[i].id, c[j].id))
				return 0;
	}
	return 1;
}

nu_pid nu_sup_start_link(const nu_sup_flags *flags,
			 const nu_child_spec *children, size_t n,
			 const nu_gen_opts *opts)
{
	if (nu_self() < 0)
		return -EPERM;
	if (!flags_ok(flags, children, n))
		return -EINVAL;
	nu_term l = NU_NIL;
	for (size_t i = n; i-- > 0 && l != NU_NONE;)
		l = nu_cons(spec_term(&children[i]), l);
	nu_term arg = nu_tuple(2, nu_tuple(3, nu_int(flags->strategy),
					   nu_int(flags->intensity),
					   nu_int(flags->period_s)),
			       l);
	if (arg == NU_NONE)
		return -ENOMEM;
	return nu_gen_server_start_link(&sup_cbs, arg, opts);
}

/* Call sup with {Tag}, {Tag, A1} or {Tag, A1, A2} (NU_NONE: absent). */
static int sup_ask(nu_term sup, nu_term tag, nu_term a1, nu_term a2,
		   nu_term *reply)
{
	nu_term e[3] = { tag, a1, a2 };
	size_t n = a1 == NU_NONE ? 1 : a2 == NU_NONE ? 2 : 3;
	nu_term req = nu_tuplev(n, e);
	if (req == NU_NONE)
		return nu_self() < 0 ? -EPERM : -ENOMEM;
	int rc = nu_call(sup, req, -1, reply);
	nu_term_free(req);
	return rc;
}

/* A supervisor call whose reply is an integer code (or a pid). */
static int64_t sup_request(nu_term sup, nu_term tag, nu_term a1, nu_term a2)
{
	nu_term r;
	int rc = sup_ask(sup, tag, a1, a2, &r);
	if (rc)
		return rc;
	int64_t v = nu_is_int(r) ? nu_int_value(r) : -EPROTO;
	nu_term_free(r);
	return v;
}

nu_pid nu_sup_start_child(nu_term sup, const nu_child_spec *spec,
			  nu_term extra)
{
	if (spec && !spec_ok(spec, 1))
		return -EINVAL;
	if (!spec && (extra == NU_NONE || nu_term_type(extra) == NU_T_NONE))
		return -EINVAL;
	nu_term st = spec ? spec_term(spec) : NU_NIL;
	if (st == NU_NONE)
		return nu_self() < 0 ? -EPERM : -ENOMEM;
	nu_pid pid = sup_request(sup, a_start(), st, spec ? NU_NIL : extra);
	nu_term_free(st);
	return pid;
}

int nu_sup_terminate_child(nu_term sup, nu_term child)
{
	int t = nu_term_type(child);
	if (t != NU_T_ATOM && t != NU_T_PID)
		return nu_self() < 0 ? -EPERM : -EINVAL;
	return (int)sup_request(sup, a_terminate(), child, NU_NONE);
}

/* restart_child and delete_child: {Tag, Id}. */
static int64_t by_id_request(nu_term sup, nu_term tag, nu_term id)
{
	if (nu_term_type(id) != NU_T_ATOM)
		return nu_self() < 0 ? -EPERM : -EINVAL;
	return sup_request(sup, tag, id, NU_NONE);
}

nu_pid nu_sup_restart_child(nu_term sup, nu_term id)
{
	return by_id_request(sup, a_restart(), id);
}

int nu_sup_delete_child(nu_term sup, nu_term id)
{
	return (int)by_id_request(sup, a_delete(), id);
}

int nu_sup_which_children(nu_term sup, nu_child_info *out, size_t cap)
{
	if (!out && cap)
		return -EINVAL;
	nu_term l;
	int rc = sup_ask(sup, a_which(), NU_NONE, NU_NONE, &l);
	if (rc)
		return rc;
	if (nu_is_int(l))
		return (int)nu_int_value(l);
	size_t n = 0;
	for (nu_term i = l; i != NU_NIL; i = nu_list_tail(i), n++) {
		nu_term c = nu_list_head(i);
		if (n >= cap)
			continue;
		out[n].id = nu_tuple_elem(c, 0);
		out[n].pid = nu_int_value(nu_tuple_elem(c, 1));
		out[n].type = (nu_child_type)nu_int_value(nu_tuple_elem(c, 2));
	}
	nu_term_free(l);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

int nu_sup_count_children(nu_term sup, nu_sup_counts *c)
{
	if (!c)
		return nu_self() < 0 ? -EPERM : -EINVAL;
	nu_term t;
	int rc = sup_ask(sup, a_count(), NU_NONE, NU_NONE, &t);
	if (rc)
		return rc;
	if (nu_tuple_size(t) != 4) {
		nu_term_free(t);
		return -EPROTO;
	}
	int *f[4] = { &c->specs, &c->active, &c->supervisors, &c->workers };
	for (int i = 0; i < 4; i++)
		*f[i] = (int)nu_int_value(nu_tuple_elem(t, (size_t)i));
	nu_term_free(t);
	return 0;
}
