/* statem.c — the generic state machine (OTP's gen_statem).
 *
 * Entities
 *   machine  one process and its struct machine (on its stack): the
 *            callbacks, the state (the machine's own copy of the term),
 *            the user's data pointer, the timers and three queues.
 *   event    a call, cast or info message (gen.c classifies it), a
 *            timeout, or a state enter call; one callback handles it:
 *            handle_event, or the current state's function from the
 *            table (looked up at each state change; the state atoms are
 *            made once, at start).
 *   queues   of whole message blocks, each freed once handled (unless
 *            kept or postponed):
 *              q    events taken but not handled: the postponed ones,
 *                   put back by a state change (OTP's internal queue);
 *              pp   the postponed events, oldest first;
 *              t0q  timeouts of 0 ms (OTP's t0q).
 *            The next event is q's first, else t0q's, else the mailbox's
 *            oldest message: a postponed event comes back before anything
 *            new, and a timeout of 0 fires after the events already taken
 *            and before the messages not yet received, as in OTP.
 *   timer    a slot {gen, ref, name}: the state timeout, the event
 *            timeout, and the generic ones (an array searched by name).
 *            Arming takes a fresh generation and sends the machine
 *            {Tag, Gen, Name, Msg}: after ms by nu_send_after, or at once
 *            into t0q (a copy in one block). Tag is a reference made at
 *            start: no other message has it.
 *
 * Invariants
 *   - A timer message is an event only when its Gen is its slot's.
 *     Cancelling or re-arming changes the slot, so a message that was
 *     already on its way (nu_cancel_timer came too late), or a zero
 *     timeout still in t0q, is dropped when taken: no stale timeout.
 *   - Before an event's callback, the event timeout is cancelled (any
 *     event cancels it; status and stop requests are not events). After
 *     it: the event joins pp when postponed; a state change cancels the
 *     state timeout and puts pp in front of q; then the callback's
 *     timeouts apply, then the enter call's (a later setting wins).
 *   - A message is freed only after everything that may point into it
 *     was copied (the next state, timeout messages and names), and never
 *     on the way to exit.
 *   - ret->_loop is checked against the machine registered in the
 *     process dictionary before anything is read through it.
 *
 * Rejected
 *   - Deadlines kept by the loop, the nearest as the receive timeout (as
 *     gen_server's timeout): no timer messages, but no order between an
 *     expired timeout and the messages that came before it: a busy
 *     machine would starve its timers or fire them ahead of older events.
 *     nu_send_after queues the timeout at its time, as OTP's timers do.
 *   - Zero timeouts as messages to self: they would queue behind the
 *     messages not yet received (OTP fires them before), and a bounded
 *     mailbox could refuse them.
 *   - Finding a cancelled timer's message in the mailbox to remove it:
 *     O(queue) per cancel; the generation check costs nothing.
 *   - Keeping the callback's next_state as is: it may point into the
 *     message about to be freed. The machine keeps a copy (none for
 *     immediates such as the atoms of a state table).
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "gen.h"

#include "../term.h"

NU__GEN_ATOM(a_key, "$nu_statem")
NU__GEN_ATOM(a_limit, "system_limit")
NU__GEN_ATOM(a_postpone, "postpone")
NU__GEN_ATOM(a_bad_state, "bad_state")
NU__GEN_ATOM(a_bad_action, "bad_action_from_state_function")
NU__GEN_ATOM(a_bad_return, "bad_return_from_state_function")
NU__GEN_ATOM(a_bad_enter_action, "bad_state_enter_action_from_state_function")
NU__GEN_ATOM(a_bad_enter_return, "bad_state_enter_return_from_state_function")
NU__GEN_ATOM(a_bad_init, "bad_return_from_init")
NU__GEN_ATOM(a_no_state, "no_state")
NU__GEN_ATOM(a_state_timeout, "state_timeout")
NU__GEN_ATOM(a_timeout, "timeout")

/* Internal events taken in a row before the machine yields (a chain of
 * zero timeouts never receives, so it would never be made to yield). */
#define PACE 64

typedef struct tslot {
	uint64_t gen; /* 0: not running */
	nu_term ref;  /* nu_send_after's reference; NU_NONE for a zero one */
	nu_term name; /* generic: a copy of its name; else [] */
} tslot;

typedef struct tqueue {
	nu_term *v;
	size_t head, n, cap;
} tqueue;

typedef struct machine {
	const nu_statem_cbs *cbs;
	nu__gen_boot boot;
	nu_term state;     /* the machine's copy */
	void *data;
	nu_statem_fn fn;   /* the state's function (table); NULL: none */
	nu_term *atoms;    /* the table's state atoms */
	nu_term tag;       /* marks the timer messages */
	uint64_t gen;      /* the last generation given to a timer */
	tslot st, et;      /* state and event timeouts */
	tslot *gt;         /* generic timeouts */
	size_t ngt, capgt;
	tqueue q, pp, t0q;
	nu_statem_ret *cur; /* the ret of the callback running now */
	unsigned paced;
} machine;

/* An event being handled and the message block it points into. */
typedef struct item {
	nu_statem_event ev;
	nu_term root;
} item;

static nu_term pair(nu_term a, nu_term b)
{
	nu_term t = nu_tuple(2, a, b);
	return t == NU_NONE ? a : t;
}

/* ------------------------------------------------------------- queues */

/* Room for n more entries at q's tail. 0 or -ENOMEM. */
static int q_room(tqueue *q, size_t n)
{
	if (q->head + q->n + n <= q->cap)
		return 0;
	if (q->head) {
		memmove(q->v, q->v + q->head, q->n * sizeof(*q->v));
		q->head = 0;
		if (q->n + n <= q->cap)
			return 0;
	}
	size_t cap = q->cap ? q->cap : 8;
	while (cap < q->n + n)
		cap *= 2;
	nu_term *v = nu_realloc(q->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	q->v = v;
	q->cap = cap;
	return 0;
}

static int q_push(tqueue *q, nu_term t)
{
	int rc = q_room(q, 1);
	if (rc == 0)
		q->v[q->head + q->n++] = t;
	return rc;
}

static int q_pop(tqueue *q, nu_term *t)
{
	if (!q->n)
		return 0;
	*t = q->v[q->head++];
	if (--q->n == 0)
		q->head = 0;
	return 1;
}

/* A state change: the postponed events go in front of q, in order. */
static int requeue(machine *m)
{
	tqueue *q = &m->q, *pp = &m->pp;
	if (!pp->n)
		return 0;
	if (!q->n) { /* the usual case: swap the arrays */
		tqueue t = *q;
		*q = *pp;
		*pp = t;
		return 0;
	}
	int rc = q_room(q, pp->n);
	if (rc)
		return rc;
	nu_term *at = q->v + q->head;
	memmove(at + pp->n, at, q->n * sizeof(*at));
	memcpy(at, pp->v + pp->head, pp->n * sizeof(*at));
	q->n += pp->n;
	pp->head = pp->n = 0;
	return 0;
}

/* ------------------------------------------------------------- timers */

/* Forget a slot's timer; a message of it still to come is stale. */
static void disarm(tslot *s, int cancel)
{
	if (s->ref != NU_NONE) {
		if (cancel)
			nu_cancel_timer(s->ref);
		nu_term_free(s->ref);
		s->ref = NU_NONE;
	}
	s->gen = 0;
}

/* (Re)start slot s: its event comes after ms (>= 0) with msg. */
static int arm(machine *m, tslot *s, int64_t ms, nu_term msg)
{
	disarm(s, 1);
	if (msg == NU_NONE)
		msg = a_timeout();
	nu_term t = nu_tuple(4, m->tag, nu_int((int64_t)(m->gen + 1)),
			     s->name, msg);
	if (t == NU_NONE)
		return -ENOMEM;
	nu_term ref = NU_NONE;
	int rc;
	if (ms > 0) {
		rc = nu_send_after((uint64_t)ms, nu_self(), t, &ref);
	} else {
		nu_term c = nu__term_copy(t, nu__term_heap());
		rc = c == NU_NONE ? -ENOMEM : q_push(&m->t0q, c);
		if (rc && c != NU_NONE)
			nu_term_free(c);
	}
	nu_term_free(t);
	if (rc)
		return rc;
	s->gen = ++m->gen;
	s->ref = ref;
	return 0;
}

static tslot *gt_find(machine *m, nu_term name)
{
	for (size_t i = 0; i < m->ngt; i++)
		if (nu_term_equal(m->gt[i].name, name))
			return &m->gt[i];
	return NULL;
}

static tslot *gt_add(machine *m, nu_term name)
{
	if (m->ngt == m->capgt) {
		size_t cap = m->capgt ? 2 * m->capgt : 4;
		tslot *v = nu_realloc(m->gt, cap * sizeof(*v));
		if (!v)
			return NULL;
		m->gt = v;
		m->capgt = cap;
	}
	nu_term copy = nu__term_copy(name, nu__term_heap());
	if (copy == NU_NONE)
		return NULL;
	tslot *s = &m->gt[m->ngt++];
	*s = (tslot){ .gen = 0, .ref = NU_NONE, .name = copy };
	return s;
}

static void gt_remove(machine *m, tslot *s, int cancel)
{
	disarm(s, cancel);
	nu_term_free(s->name);
	*s = m->gt[--m->ngt];
}

static void disarm_all(machine *m)
{
	disarm(&m->st, 1);
	disarm(&m->et, 1);
	while (m->ngt)
		gt_remove(m, &m->gt[0], 1);
}

/* ms and msg are a valid timeout setting of a ret. */
static int tmo_ok(int64_t ms, nu_term msg)
{
	return ms >= NU_STATEM_CANCEL &&
	       (msg == NU_NONE || nu_term_type(msg) != NU_T_NONE);
}

static int set_timeout(machine *m, tslot *s, int64_t ms, nu_term msg)
{
	if (ms == NU_STATEM_KEEP)
		return 0;
	if (ms == NU_STATEM_CANCEL) {
		disarm(s, 1);
		return 0;
	}
	return arm(m, s, ms, msg);
}

/* Apply r's state and event timeouts: NU_NONE, or why the machine
 * must stop. */
static nu_term set_timeouts(machine *m, const nu_statem_ret *r)
{
	if (!tmo_ok(r->state_timeout_ms, r->state_timeout_msg))
		return pair(a_bad_action(),
			    pair(a_state_timeout(),
				 nu_int64(r->state_timeout_ms)));
	if (!tmo_ok(r->event_timeout_ms, r->event_timeout_msg))
		return pair(a_bad_action(),
			    pair(a_timeout(), nu_int64(r->event_timeout_ms)));
	if (set_timeout(m, &m->st, r->state_timeout_ms,
			r->state_timeout_msg) ||
	    set_timeout(m, &m->et, r->event_timeout_ms,
			r->event_timeout_msg))
		return a_limit();
	return NU_NONE;
}

/* The machine whose callback got r, or NULL. */
static machine *current(const nu_statem_ret *r)
{
	nu_term k = r ? nu_get(a_key()) : NU_NONE;
	if (!nu_is_int(k))
		return NULL;
	machine *m = (machine *)(intptr_t)nu_int_value(k);
	return r->_loop == m && m->cur == r ? m : NULL;
}

int nu_statem_generic_timeout(nu_statem_ret *ret, nu_term name, int64_t ms,
			      nu_term msg)
{
	machine *m = current(ret);
	if (!m || name == NU_NONE || nu_term_type(name) == NU_T_NONE ||
	    !tmo_ok(ms, msg) || ms == NU_STATEM_KEEP)
		return -EINVAL;
	tslot *s = gt_find(m, name);
	if (ms == NU_STATEM_CANCEL) {
		if (s)
			gt_remove(m, s, 1);
		return 0;
	}
	if (!s && !(s = gt_add(m, name)))
		return -ENOMEM;
	int rc = arm(m, s, ms, msg);
	if (rc)
		gt_remove(m, s, 1);
	return rc;
}

/* ------------------------------------------------------------- events */

static _Noreturn void stop(machine *m, nu_term reason)
{
	disarm_all(m);
	if (m->cbs->terminate)
		m->cbs->terminate(reason, m->state, m->data);
	nu_exit(reason);
	__builtin_unreachable();
}

static int fmt_state(void *ctx, char *buf, size_t len)
{
	machine *m = ctx;
	if (m->cbs->format_state)
		return m->cbs->format_state(m->state, m->data, buf, len);
	return nu_term_print(m->state, buf, len);
}

/* A message from the mailbox (or put back from q): 0 with *it set for
 * an event; -1 for a status request (answered here); stop requests and
 * the parent's exit signal end the machine. */
static int message_event(machine *m, nu_term t, item *it)
{
	nu_term from, x;
	nu_statem_event_type type = NU_EV_INFO;
	switch (nu__gen_classify(&m->boot, t, &from, &x)) {
	case NU__GEN_CALL:
		type = NU_EV_CALL;
		break;
	case NU__GEN_CAST:
		type = NU_EV_CAST;
		break;
	case NU__GEN_INFO:
		break;
	case NU__GEN_STATUS:
		nu__gen_status_reply(from, "gen_statem", fmt_state, m);
		nu_term_free(t);
		return -1;
	case NU__GEN_STOP:
	case NU__GEN_PARENT_EXIT:
		stop(m, x);
	}
	it->ev = (nu_statem_event){ .type = type, .content = x,
				    .from = type == NU_EV_CALL ? from : NU_NONE,
				    .name = NU_NONE };
	it->root = t;
	return 0;
}

static int is_timer(const machine *m, nu_term t)
{
	return nu_tuple_size(t) == 4 && nu_term_equal(nu_tuple_elem(t, 0),
						      m->tag);
}

/* A timer message: 0 with *it set, or -1 when it is stale (dropped). */
static int timer_event(machine *m, nu_term t, item *it)
{
	uint64_t gen = (uint64_t)nu_int_value(nu_tuple_elem(t, 1));
	nu_statem_event_type type = NU_EV_GENERIC_TIMEOUT;
	tslot *s = NULL;
	if (m->st.gen == gen)
		s = &m->st, type = NU_EV_STATE_TIMEOUT;
	else if (m->et.gen == gen)
		s = &m->et, type = NU_EV_EVENT_TIMEOUT;
	for (size_t i = 0; !s && i < m->ngt; i++)
		if (m->gt[i].gen == gen)
			s = &m->gt[i];
	if (!s) {
		nu_term_free(t);
		return -1;
	}
	it->ev = (nu_statem_event){ .type = type,
				    .content = nu_tuple_elem(t, 3),
				    .from = NU_NONE, .name = NU_NONE };
	it->root = t;
	if (type == NU_EV_GENERIC_TIMEOUT) {
		it->ev.name = nu_tuple_elem(t, 2);
		gt_remove(m, s, 0);
	} else {
		disarm(s, 0);
	}
	return 0;
}

/* Let the others run now and then while the events are internal. */
static void pace(machine *m)
{
	if (++m->paced % PACE == 0)
		nu_yield();
}

/* The next event: 0 with *it set; -1 when what was taken is none. */
static int next_event(machine *m, item *it)
{
	nu_term t;
	if (q_pop(&m->q, &t)) {
		pace(m);
		return message_event(m, t, it);
	}
	if (q_pop(&m->t0q, &t)) {
		pace(m);
		return timer_event(m, t, it);
	}
	m->paced = 0;
	if (nu_receive(&t, -1) < 0) /* the heap is full: as gen_server */
		nu_exit(nu_atom("receive_failed"));
	return is_timer(m, t) ? timer_event(m, t, it)
			      : message_event(m, t, it);
}

/* ---------------------------------------------------------- callbacks */

static void ret_init(machine *m, nu_statem_ret *r)
{
	*r = (nu_statem_ret){ .next_state = NU_NONE, .reason = NU_NONE,
			      .postpone = 0,
			      .state_timeout_ms = NU_STATEM_KEEP,
			      .state_timeout_msg = NU_NONE,
			      .event_timeout_ms = NU_STATEM_KEEP,
			      .event_timeout_msg = NU_NONE,
			      .keep = 0, ._loop = m };
}

/* Run the state callback for ev; returns only for NU_GEN_OK. */
static void run(machine *m, const nu_statem_event *ev, nu_statem_ret *r)
{
	nu_statem_fn fn = m->cbs->handle_event ? m->cbs->handle_event
					       : m->fn;
	if (!fn)
		stop(m, pair(a_bad_state(), m->state));
	ret_init(m, r);
	m->cur = r;
	int action = fn(ev, m->state, &m->data, r);
	m->cur = NULL;
	if (action == NU_GEN_STOP)
		stop(m, r->reason == NU_NONE ? NU_ATOM_NORMAL : r->reason);
	if (action != NU_GEN_OK)
		stop(m, pair(a_bad_return(), nu_int(action)));
}

/* The table's function for state, NULL when it has none. */
static nu_statem_fn state_fn(const machine *m, nu_term state)
{
	for (size_t i = 0; m->atoms && i < m->cbs->nstates; i++)
		if (m->atoms[i] == state)
			return m->cbs->states[i].fn;
	return NULL;
}

/* Enter state `next` if it is one (not NU_NONE, not the current state):
 * 1 when the state changed, else 0. */
static int change_state(machine *m, nu_term next)
{
	if (next == NU_NONE || nu_term_equal(next, m->state))
		return 0;
	nu_term copy = nu__term_copy(next, nu__term_heap());
	if (copy == NU_NONE)
		stop(m, a_limit());
	disarm(&m->st, 1);
	m->state = copy;
	m->fn = state_fn(m, copy);
	if (requeue(m))
		stop(m, a_limit());
	return 1;
}

/* After entering the state (from old, which is freed here unless the
 * callback keeps it; for the initial state, old is the state). */
static void entered(machine *m, nu_term old)
{
	if (!m->cbs->state_enter) {
		if (old != m->state)
			nu_term_free(old);
		return;
	}
	nu_statem_event ev = { .type = NU_EV_ENTER, .content = old,
			       .from = NU_NONE, .name = NU_NONE };
	nu_statem_ret r;
	run(m, &ev, &r);
	if (r.postpone)
		stop(m, pair(a_bad_enter_action(), a_postpone()));
	if (r.next_state != NU_NONE && !nu_term_equal(r.next_state, m->state))
		stop(m, pair(a_bad_enter_return(), r.next_state));
	nu_term why = set_timeouts(m, &r);
	if (why != NU_NONE)
		stop(m, why);
	if (!r.keep && old != m->state)
		nu_term_free(old);
}

static void handle(machine *m, item *it)
{
	nu_statem_ret r;
	disarm(&m->et, 1); /* any event cancels the event timeout */
	run(m, &it->ev, &r);
	if (r.postpone) {
		if (it->ev.type > NU_EV_INFO) /* a timeout */
			stop(m, pair(a_bad_action(), a_postpone()));
		if (q_push(&m->pp, it->root))
			stop(m, a_limit());
	}
	nu_term old = m->state;
	int changed = change_state(m, r.next_state);
	nu_term why = set_timeouts(m, &r);
	if (why != NU_NONE)
		stop(m, why);
	if (!r.postpone && !r.keep)
		nu_term_free(it->root);
	if (changed)
		entered(m, old);
}

/* ------------------------------------------------------------ start */

/* What the machine needs before init: 0 or -ENOMEM. */
static int prepare(machine *m)
{
	const nu_statem_cbs *cbs = m->cbs;
	m->st = m->et = (tslot){ .gen = 0, .ref = NU_NONE, .name = NU_NIL };
	m->tag = nu_make_ref();
	if (m->tag == NU_NONE)
		return -ENOMEM;
	if (cbs->states) {
		m->atoms = nu_alloc(cbs->nstates * sizeof(*m->atoms));
		if (!m->atoms)
			return -ENOMEM;
		for (size_t i = 0; i < cbs->nstates; i++)
			m->atoms[i] = nu_atom(cbs->states[i].name);
	}
	return nu_put(a_key(), nu_int((int64_t)(intptr_t)m), NULL);
}

/* init returned NU_GEN_OK: take its state and timeouts. NU_NONE, or
 * why the start fails. */
static nu_term started(machine *m, nu_term state, const nu_statem_ret *r)
{
	if (state == NU_NONE || nu_term_type(state) == NU_T_NONE)
		return pair(a_bad_init(), a_no_state());
	m->state = nu__term_copy(state, nu__term_heap());
	if (m->state == NU_NONE)
		return a_limit();
	m->fn = state_fn(m, m->state);
	return set_timeouts(m, r);
}

/* Boot, init, ack, initial enter call; returns only when running. */
static void boot(machine *m)
{
	if (prepare(m))
		nu__gen_ack(&m->boot, NU_GEN_STOP, a_limit());
	nu_statem_ret r;
	nu_term state = NU_NONE;
	ret_init(m, &r);
	m->cur = &r;
	int action = m->cbs->init(m->boot.arg, &state, &m->data, &r);
	m->cur = NULL;
	nu_term why = r.reason;
	if (action == NU_GEN_OK && (why = started(m, state, &r)) != NU_NONE)
		action = NU_GEN_STOP;
	if (action != NU_GEN_OK)
		disarm_all(m);
	nu__gen_ack(&m->boot, action, why); /* returns when started */
	entered(m, m->state);
}

static void machine_main(void *arg)
{
	machine m;
	memset(&m, 0, sizeof(m));
	m.cbs = arg;
	m.state = NU_NONE;
	if (nu__gen_boot_take(&m.boot) < 0)
		return;
	boot(&m);
	for (;;) {
		item it;
		if (next_event(&m, &it) == 0)
			handle(&m, &it);
	}
}

/* The callbacks are usable: -EINVAL when not. */
static int check_cbs(const nu_statem_cbs *cbs)
{
	if (!cbs || !cbs->init || !cbs->handle_event == !cbs->states)
		return -EINVAL;
	if (cbs->states && !cbs->nstates)
		return -EINVAL;
	for (size_t i = 0; cbs->states && i < cbs->nstates; i++)
		if (!cbs->states[i].fn || !cbs->states[i].name ||
		    nu_atom(cbs->states[i].name) == NU_NONE)
			return -EINVAL;
	return 0;
}

static nu_pid start(const nu_statem_cbs *cbs, nu_term arg,
		    const nu_gen_opts *opts, int link)
{
	if (check_cbs(cbs))
		return nu_self() < 0 ? -EPERM : -EINVAL;
	return nu__gen_start(machine_main, cbs, arg, opts, link);
}

nu_pid nu_statem_start(const nu_statem_cbs *cbs, nu_term arg,
		       const nu_gen_opts *opts)
{
	return start(cbs, arg, opts, 0);
}

nu_pid nu_statem_start_link(const nu_statem_cbs *cbs, nu_term arg,
			    const nu_gen_opts *opts)
{
	return start(cbs, arg, opts, 1);
}
