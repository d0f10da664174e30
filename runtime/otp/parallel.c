/* parallel.c — parallel patterns: nu_pmap (Erlangen's parallel map) and
 * nu_race (the farmer's first-wins), on the public API only.
 *
 * Entities
 *   crew     the workers of one call, each spawned monitored (spawn with
 *            monitor_ref: none can exit unobserved), held in an array in
 *            the caller's heap (pid, monitor reference, its result once
 *            it came) and in a second array sorted by pid, where a DOWN
 *            finds its worker by binary search.
 *   tag      a fresh reference per call, in every result of the call.
 *   brief    a worker's first message: {Tag, I, Caller, Fn, Arg} for a
 *            race contender, {Tag, I, Caller, Fn, Arg, Chunk} for a map
 *            worker (Fn and Arg as integers). It is all a worker needs:
 *            no worker holds a pointer into the caller's memory (only the
 *            user's arg, which must stay valid while the call runs).
 *   result   {Tag, I, Value}: I the worker's index (the place of its
 *            chunk in the input), Value fn's term (for a map worker, the
 *            list of its chunk's results, in order).
 *
 * Invariants
 *   - A worker sends at most one result, then exits; its DOWN travels on
 *     the same lane after it, so a DOWN whose worker has not answered is
 *     a crash: fn exited, fn returned NU_NONE (reason badresult), the
 *     worker could not send ({error, Code}), or someone killed it.
 *   - A call takes only messages with its tag, or the DOWN of one of its
 *     monitors (pid and reference both): the rest of the caller's mailbox
 *     is not touched and keeps its order.
 *   - A call returns only after it took the DOWN of every worker it
 *     spawned and saw its pid dead (a DOWN goes out just before the slot
 *     is reaped). Results come before DOWNs, so nothing of the call can
 *     reach the caller afterwards, and no worker outlives it.
 *   - The outcome is decided once, and the crew is then "over": a map by
 *     its first crash, a race by its first result or its deadline. Every
 *     worker that has not answered is killed (kill: untrappable); the
 *     events that follow are counted and freed.
 *
 * Memory. Each message taken is freed, except those holding what the call
 * returns: the result messages (one per chunk; *out's elements live in
 * them, and the last chunk's list is *out's tail as it came), the DOWN
 * holding a reason given back. These go with the caller's heap: a process
 * that maps without end should do it in a short-lived process. Besides,
 * the caller's heap holds, during the call, the two arrays (56 bytes a
 * worker), one chunk's terms and the cells of the chunk being sent (given
 * back once sent). A worker's heap holds its chunk and results: chunk
 * bounds it.
 *
 * Rejected
 *   - A selective-receive clause per worker ({'DOWN', Ref_i, ...} with
 *     Ref_i pre-bound): each queued message is tried against every clause,
 *     O(k^2) for k workers (chunk 1 on a long list). The predicate
 *     receive costs O(log k) per message; like any receive without the
 *     marker it scans the caller's unrelated messages again on each take.
 *   - Gathering in input order, worker after worker: a later worker's
 *     crash would go unseen while an earlier one runs, maybe for ever.
 *   - Demonitor with flush instead of waiting for the DOWNs: each flush
 *     scans the mailbox, and a worker might still be exiting on return.
 *   - Linking the workers to the caller, so that they die with it: their
 *     crash would end the caller, unless it trapped exits, which changes
 *     how it takes every other exit signal meanwhile. A coordinator
 *     process (its mailbox private, linked to the workers, watching the
 *     caller) copies every item and result twice. So a caller killed
 *     during a call leaves its workers running: a map worker sees it
 *     before its next item (nu_is_alive) and stops; a race contender ends
 *     its fn, its result goes nowhere.
 *   - fn and arg through the spawn argument (a struct on the caller's
 *     stack): it dangles for a worker that starts after its caller died.
 *
 * Nothing preempts a worker that never calls the runtime: one being
 * killed exits at its next runtime call, and the call waits for it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "nuproc.h"

/* One worker of a crew. */
typedef struct member {
	nu_pid pid;
	nu_term ref;      /* the caller's monitor on it */
	nu_term val;      /* its result, NU_NONE until kept */
	nu_term msg;      /* the message val lives in, NU_NONE */
	uint8_t answered; /* its result came (kept or not) */
	uint8_t down;     /* its DOWN came */
} member;

typedef struct by_pid {
	nu_pid pid;
	size_t i;
} by_pid;

typedef struct crew {
	nu_pid self;
	nu_term tag;
	nu_term a_down;
	int race;         /* over at the first result (else first crash) */
	int over;
	int timed_out;
	size_t n;         /* workers spawned */
	size_t live;      /* workers whose DOWN has not come */
	size_t first;     /* a race's winner, SIZE_MAX */
	member *m;
	by_pid *pids;     /* sorted when the gathering starts */
	nu_term why;      /* the crash reason kept (the last one of a race) */
	nu_term why_msg;  /* the DOWN it lives in */
} crew;

/* What the gathering took: a result or a DOWN of worker i. */
typedef struct event {
	int down;
	size_t i;
	nu_term val; /* the result, or the exit reason */
	nu_term msg;
} event;

/* ------------------------------------------------------------ workers */

/* A worker's brief, taken apart (pointers into it). */
typedef struct brief {
	nu_term tag, index, chunk; /* chunk: NU_NONE for a race */
	nu_pid caller;
	uintptr_t fn;
	void *arg;
} brief;

/* End the worker for a failure of its own (not fn's): {error, Code}. */
static void worker_fail(int code)
{
	nu_term why = nu_tuple(2, nu_atom("error"), nu_int(code));
	nu_exit(why != NU_NONE ? why : nu_atom("error"));
}

/* Take the brief into *b; 0, or -errno after the worker was ended. */
static int brief_take(brief *b)
{
	nu_term t;
	int64_t fn, arg;
	int rc = nu_receive(&t, -1); /* nobody else knows our pid */
	if (!rc && (nu_int64_value(nu_tuple_elem(t, 3), &fn) ||
		    nu_int64_value(nu_tuple_elem(t, 4), &arg)))
		rc = -EINVAL;
	if (rc) {
		worker_fail(rc);
		return rc;
	}
	b->tag = nu_tuple_elem(t, 0);
	b->index = nu_tuple_elem(t, 1);
	b->caller = nu_pid_value(nu_tuple_elem(t, 2));
	b->fn = (uintptr_t)fn;
	b->arg = (void *)(uintptr_t)arg;
	b->chunk = nu_tuple_elem(t, 5);
	return 0;
}

/* Send v, fn's result, to the caller; NU_NONE is a crash. */
static void reply(const brief *b, nu_term v)
{
	if (v == NU_NONE) {
		nu_exit(nu_atom("badresult"));
		return;
	}
	nu_term t = nu_tuple(3, b->tag, b->index, v);
	int rc = t == NU_NONE ? -ENOMEM : nu_send(b->caller, t);
	if (rc)
		worker_fail(rc);
}

static void race_worker(void *unused)
{
	(void)unused;
	brief b;
	if (brief_take(&b) == 0)
		reply(&b, ((nu_race_fn)b.fn)(b.arg));
}

static void pmap_worker(void *unused)
{
	(void)unused;
	brief b;
	if (brief_take(&b))
		return;
	nu_map_fn fn = (nu_map_fn)b.fn;
	size_t n = 0;
	for (nu_term t = b.chunk; nu_term_type(t) == NU_T_LIST;
	     t = nu_list_tail(t))
		n++;
	nu_term *res = nu_calloc(n, sizeof(*res));
	nu_term t = b.chunk;
	if (!res) {
		worker_fail(-ENOMEM);
		return;
	}
	for (size_t i = 0; i < n; i++, t = nu_list_tail(t)) {
		if (nu_is_alive(b.caller) != 1)
			return; /* killed meanwhile: nobody waits any more */
		res[i] = fn(nu_list_head(t), b.arg);
		if (res[i] == NU_NONE) {
			reply(&b, NU_NONE);
			return;
		}
	}
	nu_term l = nu_list(n, res);
	if (l == NU_NONE) {
		worker_fail(-ENOMEM);
		return;
	}
	reply(&b, l);
}

/* --------------------------------------------------------------- crew */

static int crew_init(crew *c, size_t cap, int race)
{
	*c = (crew){ .self = nu_self(), .race = race, .first = SIZE_MAX,
		     .why = NU_NONE, .why_msg = NU_NONE };
	c->a_down = nu_atom("DOWN");
	c->m = nu_calloc(cap, sizeof(*c->m));
	c->pids = nu_calloc(cap, sizeof(*c->pids));
	c->tag = nu_make_ref();
	if (c->m && c->pids && c->tag != NU_NONE)
		return 0;
	nu_free(c->m);
	nu_free(c->pids);
	nu_term_free(c->tag);
	return -ENOMEM;
}

/* Give back what the crew holds, results too (the caller took the ones it
 * returns by setting their msg to NU_NONE). */
static void crew_fini(crew *c)
{
	for (size_t i = 0; i < c->n; i++) {
		nu_term_free(c->m[i].msg);
		nu_term_free(c->m[i].ref);
	}
	nu_term_free(c->tag);
	nu_free(c->m);
	nu_free(c->pids);
}

/* Spawn a worker running body, monitored, and send it its brief. A
 * worker whose brief could not go is in the crew all the same (the
 * caller stops the crew). */
static int crew_spawn(crew *c, nu_fn body, uintptr_t fn, void *arg,
		      nu_term chunk)
{
	member *m = &c->m[c->n];
	nu_spawn_opts o;
	nu_spawn_opts_init(&o);
	o.monitor_ref = &m->ref;
	nu_pid pid = nu_spawn_opt(body, NULL, &o);
	if (pid < 0)
		return (int)pid;
	m->pid = pid;
	m->val = m->msg = NU_NONE;
	c->pids[c->n] = (by_pid){ pid, c->n };
	nu_term el[6] = { c->tag, nu_int((int64_t)c->n), nu_pid_term(c->self),
			  nu_uint64(fn), nu_uint64((uintptr_t)arg), chunk };
	c->n++;
	c->live++;
	nu_term t = nu_tuplev(chunk == NU_NONE ? 5 : 6, el);
	int rc = t == NU_NONE ? -ENOMEM : nu_send(pid, t);
	nu_term_free(t);
	return rc;
}

static int by_pid_cmp(const void *a, const void *b)
{
	nu_pid x = ((const by_pid *)a)->pid, y = ((const by_pid *)b)->pid;
	return (x > y) - (x < y);
}

static const by_pid *crew_find(const crew *c, nu_term pid)
{
	by_pid key = { nu_pid_value(pid), 0 };
	return bsearch(&key, c->pids, c->n, sizeof(key), by_pid_cmp);
}

/* The receive predicate: a result of this call, or the DOWN of one of
 * its monitors (each comes once). */
static int crew_owns(nu_term t, void *arg)
{
	const crew *c = arg;
	nu_term e1 = nu_tuple_elem(t, 1);
	if (nu_tuple_size(t) == 3) {
		return nu_term_equal(nu_tuple_elem(t, 0), c->tag) &&
		       nu_is_int(e1) && nu_int_value(e1) >= 0 &&
		       (uint64_t)nu_int_value(e1) < c->n &&
		       !c->m[nu_int_value(e1)].answered;
	}
	if (nu_tuple_size(t) != 5 || nu_tuple_elem(t, 0) != c->a_down)
		return 0;
	const by_pid *w = crew_find(c, nu_tuple_elem(t, 3));
	return w && !c->m[w->i].down && nu_term_equal(e1, c->m[w->i].ref);
}

/* Take the crew's next event, waiting up to ms (as nu_receive). */
static int crew_next(crew *c, int64_t ms, event *ev)
{
	nu_term t;
	int rc = nu_receive_if(crew_owns, c, &t, ms);
	if (rc)
		return rc;
	ev->msg = t;
	ev->down = nu_tuple_size(t) == 5;
	if (ev->down) {
		ev->i = crew_find(c, nu_tuple_elem(t, 3))->i;
		ev->val = nu_tuple_elem(t, 4);
		c->m[ev->i].down = 1;
		c->live--;
	} else {
		ev->i = (size_t)nu_int_value(nu_tuple_elem(t, 1));
		ev->val = nu_tuple_elem(t, 2);
		c->m[ev->i].answered = 1;
	}
	return 0;
}

/* The outcome is decided: kill every worker that has not answered (one
 * that has exits by itself). */
static void crew_stop(crew *c)
{
	c->over = 1;
	for (size_t i = 0; i < c->n; i++) {
		const member *m = &c->m[i];
		if (!m->down && !m->answered)
			while (nu_kill(m->pid, NU_ATOM_KILL) == -ENOMEM)
				nu_yield();
	}
}

/* Act on an event: 1 when its message holds what the call may return
 * (kept), 0 when it can go. */
static int crew_take(crew *c, const event *ev)
{
	if (c->over)
		return 0;
	member *m = &c->m[ev->i];
	if (!ev->down) {
		m->val = ev->val;
		m->msg = ev->msg;
		if (c->race) {
			c->first = ev->i;
			crew_stop(c);
		}
		return 1;
	}
	if (m->answered)
		return 0; /* its exit after its result */
	nu_term_free(c->why_msg);
	c->why = ev->val;
	c->why_msg = ev->msg;
	if (!c->race)
		crew_stop(c);
	return 1;
}

/* Milliseconds to wait for a deadline (UINT64_MAX: none, -1). */
static int64_t ms_left(uint64_t deadline)
{
	if (deadline == UINT64_MAX)
		return -1;
	uint64_t now = nu_clock_ns();
	return now >= deadline ? 0
			       : (int64_t)((deadline - now + 999999) / 1000000);
}

static uint64_t deadline_of(int64_t ms)
{
	uint64_t now = nu_clock_ns();
	if (ms < 0 || (uint64_t)ms > (UINT64_MAX - 1 - now) / 1000000)
		return UINT64_MAX;
	return now + (uint64_t)ms * 1000000;
}

/* Gather until every worker's DOWN came and its pid is dead; past the
 * deadline (before the outcome) the crew times out and stops. */
static void crew_run(crew *c, uint64_t deadline)
{
	qsort(c->pids, c->n, sizeof(*c->pids), by_pid_cmp);
	while (c->live) {
		event ev;
		int rc = crew_next(c, c->over ? -1 : ms_left(deadline), &ev);
		if (rc == -ETIMEDOUT) {
			c->timed_out = 1;
			crew_stop(c);
		} else if (rc) {
			nu_yield(); /* no timer could be armed: again */
		} else if (!crew_take(c, &ev)) {
			nu_term_free(ev.msg);
		}
	}
	for (size_t i = 0; i < c->n; i++)
		while (nu_is_alive(c->m[i].pid) == 1)
			nu_yield(); /* its DOWN left just before its reaping */
}

/* The crash reason to the caller (kept) or freed; reason may be NULL. */
static void crew_give_why(crew *c, int rc, nu_term *reason)
{
	if (rc == -ESRCH && reason)
		*reason = c->why;
	else
		nu_term_free(c->why_msg);
}

/* ---------------------------------------------------------------- map */

/* Give back n cells of l, each made by one nu_cons. */
static void free_cells(nu_term l, size_t n)
{
	while (n--) {
		nu_term next = nu_list_tail(l);
		nu_term_free(l);
		l = next;
	}
}

/* buf[0..n) consed onto tail, a cell per nu_cons (each may go back with
 * nu_term_free); NU_NONE when the heap is full (nothing made is kept). */
static nu_term cons_all(const nu_term *buf, size_t n, nu_term tail)
{
	nu_term l = tail;
	for (size_t i = n; i-- > 0;) {
		nu_term cell = nu_cons(buf[i], l);
		if (cell == NU_NONE) {
			free_cells(l, n - 1 - i);
			return NU_NONE;
		}
		l = cell;
	}
	return l;
}

static int list_length(nu_term l, size_t *len)
{
	size_t n = 0;
	for (; nu_term_type(l) == NU_T_LIST; l = nu_list_tail(l))
		n++;
	*len = n;
	return l == NU_NIL ? 0 : -EINVAL;
}

/* Items per chunk for a list of len > 0 items. */
static size_t chunk_size(size_t len, size_t chunk)
{
	if (chunk)
		return chunk < len ? chunk : len;
	nu_node_stats st;
	size_t s = nu_node_info(&st) == 0 && st.schedulers ? st.schedulers : 1;
	return len / s + (len % s != 0);
}

/* A worker per chunk of per items; buf has room for per terms. */
static int spawn_chunks(crew *c, nu_map_fn fn, void *arg, nu_term items,
			size_t per, nu_term *buf)
{
	while (items != NU_NIL) {
		size_t n = 0;
		for (; n < per && items != NU_NIL; items = nu_list_tail(items))
			buf[n++] = nu_list_head(items);
		nu_term chunk = cons_all(buf, n, NU_NIL);
		if (chunk == NU_NONE)
			return -ENOMEM;
		int rc = crew_spawn(c, pmap_worker, (uintptr_t)fn, arg, chunk);
		free_cells(chunk, n); /* the worker has its copy */
		if (rc)
			return rc;
	}
	return 0;
}

/* *out: every chunk's results in input order. The last chunk's list is
 * used as it came, the others' elements are consed onto it. */
static int concat(crew *c, nu_term *buf, size_t per, nu_term *out)
{
	nu_term l = c->m[c->n - 1].val;
	size_t made = 0;
	for (size_t i = c->n - 1; i-- > 0;) {
		size_t n = 0;
		for (nu_term t = c->m[i].val;
		     n < per && nu_term_type(t) == NU_T_LIST;
		     t = nu_list_tail(t))
			buf[n++] = nu_list_head(t);
		nu_term with = cons_all(buf, n, l);
		if (with == NU_NONE) {
			free_cells(l, made);
			return -ENOMEM;
		}
		l = with;
		made += n;
	}
	for (size_t i = 0; i < c->n; i++)
		c->m[i].msg = NU_NONE; /* *out lives in them: kept */
	*out = l;
	return 0;
}

int nu_pmap(nu_map_fn fn, void *arg, nu_term items, size_t chunk,
	    nu_term *out, nu_term *reason)
{
	size_t len;
	if (nu_self() < 0)
		return -EPERM;
	if (!fn || !out || list_length(items, &len))
		return -EINVAL;
	if (len == 0) {
		*out = NU_NIL;
		return 0;
	}
	size_t per = chunk_size(len, chunk);
	nu_term *buf = nu_calloc(per, sizeof(*buf));
	crew c;
	int rc = buf ? crew_init(&c, len / per + (len % per != 0), 0) : -ENOMEM;
	if (rc) {
		nu_free(buf);
		return rc;
	}
	rc = spawn_chunks(&c, fn, arg, items, per, buf);
	if (rc)
		crew_stop(&c);
	crew_run(&c, UINT64_MAX);
	if (!rc)
		rc = c.why_msg != NU_NONE ? -ESRCH : concat(&c, buf, per, out);
	crew_give_why(&c, rc, reason);
	crew_fini(&c);
	nu_free(buf);
	return rc;
}

/* --------------------------------------------------------------- race */

int nu_race(const nu_race_fn *fns, void *const *args, size_t n,
	    int64_t timeout_ms, nu_term *result, size_t *winner)
{
	if (nu_self() < 0)
		return -EPERM;
	if (!fns || !n || !result || timeout_ms < -1)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!fns[i])
			return -EINVAL;
	uint64_t deadline = deadline_of(timeout_ms);
	crew c;
	int rc = crew_init(&c, n, 1);
	if (rc)
		return rc;
	for (size_t i = 0; !rc && i < n; i++)
		rc = crew_spawn(&c, race_worker, (uintptr_t)fns[i],
				args ? args[i] : NULL, NU_NONE);
	if (rc)
		crew_stop(&c);
	crew_run(&c, deadline);
	if (!rc && c.first == SIZE_MAX)
		rc = c.timed_out ? -ETIMEDOUT : -ESRCH;
	if (rc == 0) {
		*result = c.m[c.first].val;
		c.m[c.first].msg = NU_NONE; /* kept */
		if (winner)
			*winner = c.first;
	}
	crew_give_why(&c, rc, result);
	crew_fini(&c);
	return rc;
}
