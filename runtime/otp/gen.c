/* gen.c — what every behaviour shares (OTP's gen and proc_lib): the start
 * handshake, call, cast, reply, stop and status.
 *
 * Entities
 *   server   a process running a behaviour's loop (gen_server.c,
 *            statem.c, supervisor.c), named by a pid term or an atom.
 *   call     {'$gen_call', {Caller, Ref}, Request}, Ref a fresh reference
 *            that also tags the caller's watch on the server (call.c: the
 *            server's exit answers the call with its reason);
 *            {Caller, Ref} is the `from` a reply goes to.
 *   reply    a message whose term is the reply itself, flagged
 *            NU__MSG_REPLY and tagged with Ref's id (mailbox.h). The
 *            caller's mailbox keeps a reply only while its alias (the
 *            call's Ref id) is set: once the call is over, by reply,
 *            the server's exit or timeout, a late reply is dropped when
 *            taken. This is OTP 24's alias, with the mailbox as the
 *            alias table (a call waits for one reply at a time, so one
 *            alias per process).
 *   cast     {'$gen_cast', Msg}.
 *   sys      {'$gen_sys', From, status} and {'$gen_sys', From, {stop, R}}:
 *            the stopper waits for the DOWN, not for a reply.
 *   boot     {'$gen_boot', Parent, Ref, Arg, Name}: the first message of
 *            a new server. Its init's answer (the ack) is a reply tagged
 *            Ref, the starter's monitor on it: ok | ignore |
 *            {error, Reason} | {already_started, Pid}.
 *
 * Invariants
 *   - A call waits for exactly two things, both replies tagged Ref: the
 *     server's answer or its exit reason (call.c's call DOWN); Ref is the
 *     newest reference, so the wait scans only what came after it (the
 *     receive marker, mailbox.c): O(1) in the length of the caller's
 *     queue.
 *   - When a call returns, nothing of it can reach the caller any more:
 *     the alias is cleared before the watch, a call DOWN already queued
 *     is removed, one still in flight is dropped.
 *   - Starting is not a call: the starter monitors the new process from
 *     its spawn (nothing can be pushed to it before) and waits for the
 *     ack or that monitor's DOWN.
 *   - The boot message outlives init: the start argument points into it,
 *     and init may keep it in its state.
 *
 * Rejected: a reply as {Ref, Reply} (OTP's wire form) received by
 * pattern: the reply would sit inside a bigger message, and the caller
 * could not nu_term_free it; the flag also lets the mailbox drop late
 * replies without looking at terms. A full monitor per call (OTP's way,
 * and ours until 2026-11): a third of a call's time went into its record
 * (call.c says what replaced it and why it keeps OTP's semantics).
 */
#include "gen.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../call.h"
#include "../mailbox.h"
#include "../proc.h"
#include "../sched.h"
#include "../signal.h"
#include "../term.h"

NU__GEN_ATOM(a_call, "$gen_call")
NU__GEN_ATOM(a_cast, "$gen_cast")
NU__GEN_ATOM(a_sys, "$gen_sys")
NU__GEN_ATOM(a_boot, "$gen_boot")
NU__GEN_ATOM(a_exit, "EXIT")
NU__GEN_ATOM(a_ok, "ok")
NU__GEN_ATOM(a_error, "error")
NU__GEN_ATOM(a_ignore, "ignore")
NU__GEN_ATOM(a_started, "already_started")
NU__GEN_ATOM(a_status, "status")
NU__GEN_ATOM(a_stop, "stop")
NU__GEN_ATOM(a_badret, "bad_return_value")
NU__GEN_ATOM(a_timeout, "timeout")

nu_term nu__gen_atom_timeout(void)
{
	return a_timeout();
}

/* A small tuple built on the caller's stack: only ever sent (copied),
 * never kept. t[0] the header, then the elements. */
#define STACK_TUPLE(buf, ...)                                                 \
	stack_tuple(buf, sizeof((nu_term[]){ __VA_ARGS__ }) / sizeof(nu_term), \
		    (nu_term[]){ __VA_ARGS__ })
static nu_term stack_tuple(uint64_t *buf, size_t n, const nu_term *e)
{
	buf[0] = NU__HDR(NU__K_TUPLE, n);
	memcpy(buf + 1, e, n * sizeof(*e));
	return (nu_term)(uintptr_t)buf;
}

/* The pid a server term names: > 0; 0 for a name no process holds;
 * -EINVAL for a term that names no server; -ESRCH without a node. */
static nu_pid resolve(nu_term server)
{
	if (nu_term_type(server) == NU_T_PID)
		return nu_pid_value(server);
	if (nu_term_type(server) != NU_T_ATOM)
		return -EINVAL;
	nu_pid p = nu_whereis(server);
	return p == -ENOENT ? 0 : p;
}

/* The arity of a tuple (0 for any other term) and its elements, inline:
 * the loop classifies every message with them. */
static inline size_t tsize(nu_term t)
{
	return nu__box_kind(t) == NU__K_TUPLE ? NU__HDR_SIZE(*nu__box_ptr(t))
					      : 0;
}
static inline nu_term telem(nu_term t, size_t i) /* i < tsize(t) */
{
	return nu__box_ptr(t)[1 + i];
}

/* A caller's `from`: {Pid, Ref}. */
static int is_from(nu_term t)
{
	return tsize(t) == 2 &&
	       (telem(t, 0) & NU__TAG_MASK) == NU__TAG_PID &&
	       nu__box_kind(telem(t, 1)) == NU__K_REF;
}

/* *out gets the reason of a DOWN message (a copy in the caller's heap, so
 * that the caller may nu_term_free it; the DOWN itself goes). */
static void down_reason(nu_term down, nu_term *out)
{
	nu_term why = nu_tuple_elem(down, 4);
	nu_term copy = nu__term_copy(why, nu__term_heap());
	if (copy == NU_NONE) {
		*out = why; /* no room: keep the DOWN, it goes at exit */
		return;
	}
	*out = copy;
	nu_term_free(down);
}

/* The starter waits for the ack (a reply tagged id) or the DOWN of its
 * spawn-time monitor on the new process (reference id); then neither
 * can reach it any more: the alias goes first, the monitor after, and a
 * DOWN or ack already queued is removed. */
static int ack_wait(uint64_t id, int64_t timeout_ms, nu_term *ack)
{
	nu_term t;
	int rc = nu__mailbox_await_reply(id, timeout_ms, &t);
	nu__mailbox_alias(0);
	if (rc == 1) { /* DOWN: the monitor is off already */
		down_reason(t, ack);
		return -ESRCH;
	}
	if (nu__demonitor_id(id, 0) == 1 || rc < 0)
		nu__mailbox_flush_ref(id);
	if (rc == 0)
		*ack = t;
	return rc;
}

/* Wait for the answer to the call tagged id (the caller's newest
 * reference) and end the call: see nu_call. A call DOWN's term is the
 * server's exit reason. */
static int call_wait(nu__proc *me, uint64_t id, int64_t timeout_ms,
		     nu_term *reply)
{
	nu_term t;
	int rc = nu__mailbox_await_reply(id, timeout_ms, &t);
	nu__call_end(me, id); /* from here on nothing of it arrives */
	if (rc >= 0)
		*reply = t;
	return rc == 1 ? -ESRCH : rc;
}

/* Send {tag, {Self, Ref}, req} to server and wait for the reply. */
static int gen_call(nu_term server, nu_term tag, nu_term req,
		    int64_t timeout_ms, nu_term *reply)
{
	nu__sched *s = nu__sched_here(); /* read once: no switch up to me */
	if (!s || !s->current)
		return -EPERM;
	nu__proc *me = s->current;
	nu_pid self = me->pid;
	if (req == NU_NONE || !reply || timeout_ms < -1)
		return -EINVAL;
	nu_pid pid = resolve(server);
	if (pid < 0)
		return pid;
	if (pid == 0) {
		*reply = NU_ATOM_NOPROC;
		return -ESRCH;
	}
	if (pid == self)
		return -EDEADLK;
	uint64_t id; /* the call's reference, a term on our stack only */
	int rc = nu__call_begin(me, pid, &id);
	if (rc == 0) {
		rc = nu__call_send(me, pid, &(nu__call_hdr){ tag, self, id },
				   req);
		if (rc == 0)
			return call_wait(me, id, timeout_ms, reply);
		nu__call_end(me, id);
	}
	if (rc == 1) {
		*reply = NU_ATOM_NOPROC;
		return -ESRCH;
	}
	return rc;
}

int nu_call(nu_term server, nu_term request, int64_t timeout_ms,
	    nu_term *reply)
{
	return gen_call(server, a_call(), request, timeout_ms, reply);
}

int nu_cast(nu_term server, nu_term msg)
{
	if (msg == NU_NONE || nu_term_type(msg) == NU_T_NONE)
		return -EINVAL;
	nu_pid pid = resolve(server);
	if (pid <= 0)
		return pid;
	uint64_t buf[3];
	return nu_send(pid, STACK_TUPLE(buf, a_cast(), msg));
}

static int reply_to(nu_pid to, uint64_t id, nu_term reply)
{
	if (!nu__term_valid(reply))
		return -EINVAL;
	nu__sched *s = nu__sched_here(); /* read once, no switch here */
	nu__call_replied(s ? s->current : NULL, to, id);
	return nu__send_reply(to, id, reply);
}

int nu_reply(nu_term from, nu_term reply)
{
	if (!is_from(from))
		return -EINVAL;
	return reply_to(nu_pid_value(telem(from, 0)),
			nu__ref_id(telem(from, 1)), reply);
}

int nu__gen_reply_msg(const nu__msg *m, nu_term reply)
{
	return reply_to(m->from, m->alias, reply);
}

int nu_gen_stop(nu_term server, nu_term reason, int64_t timeout_ms)
{
	if (reason == NU_NONE || nu_term_type(reason) == NU_T_NONE)
		return -EINVAL;
	uint64_t req[3];
	nu_term why;
	int rc = gen_call(server, a_sys(),
			  STACK_TUPLE(req, a_stop(), reason), timeout_ms, &why);
	if (rc == 0) { /* a reply to a stop: not a behaviour's loop */
		nu_term_free(why);
		return -EPIPE;
	}
	if (rc != -ESRCH)
		return rc;
	rc = nu_term_equal(why, reason) ? 0
	     : why == NU_ATOM_NOPROC   ? -ESRCH
				       : -EPIPE;
	nu_term_free(why);
	return rc;
}

int nu_gen_status(nu_term server, char *buf, size_t len, int64_t timeout_ms)
{
	if (!buf && len)
		return -EINVAL;
	nu_term text;
	int rc = gen_call(server, a_sys(), a_status(), timeout_ms, &text);
	if (rc == -ESRCH)
		nu_term_free(text); /* the reason (an immediate: no-op) */
	if (rc)
		return rc;
	if (nu_term_type(text) != NU_T_BINARY) {
		nu_term_free(text);
		return -EPIPE;
	}
	size_t n = nu_binary_size(text);
	if (len) {
		size_t k = n < len - 1 ? n : len - 1;
		memcpy(buf, nu_binary_data(text), k);
		buf[k] = 0;
	}
	nu_term_free(text);
	return n > INT32_MAX ? INT32_MAX : (int)n;
}

/* ------------------------------------------------------------ starting */

void nu_gen_opts_init(nu_gen_opts *o)
{
	if (!o)
		return;
	o->name = NU_NONE;
	o->timeout_ms = -1;
	o->spawn = NULL;
	o->reason = NULL;
}

static int check_opts(const nu_gen_opts *o, nu_term arg)
{
	if (arg == NU_NONE || nu_term_type(arg) == NU_T_NONE ||
	    o->timeout_ms < -1)
		return -EINVAL;
	if (o->name != NU_NONE && (nu_term_type(o->name) != NU_T_ATOM ||
				   o->name == NU_ATOM_UNDEFINED))
		return -EINVAL;
	return nu_self() < 0 ? -EPERM : 0;
}

/* The starter's answer from the new process's ack. */
static nu_pid ack_result(nu_pid pid, nu_term ack, nu_term *reason)
{
	if (ack == a_ok())
		return pid;
	if (ack == a_ignore())
		return -ECANCELED;
	nu_term what = nu_tuple_elem(ack, 0);
	*reason = nu_tuple_elem(ack, 1);
	return what == a_started() ? -EEXIST : -ESRCH;
}

/* init took too long: unlink, kill, and wait for the end (OTP's
 * kill_flush), so that the caller survives its link. */
static void start_timed_out(nu_pid pid, int link)
{
	if (link)
		nu_unlink(pid);
	nu_term ref, down;
	if (nu_monitor(pid, &ref))
		return; /* no memory: it dies all the same */
	nu_kill(pid, NU_ATOM_KILL);
	if (nu__mailbox_await_reply(nu__ref_id(ref), -1, &down) == 1)
		nu_term_free(down);
	nu_term_free(ref);
}

nu_pid nu__gen_start(nu_fn body, const void *cbs, nu_term arg,
		     const nu_gen_opts *opts, int link)
{
	nu_gen_opts dflt;
	nu_gen_opts_init(&dflt);
	opts = opts ? opts : &dflt;
	nu_term scratch, *reason = opts->reason ? opts->reason : &scratch;
	*reason = NU_NONE;
	int rc = check_opts(opts, arg);
	if (rc)
		return rc;
	nu_spawn_opts so;
	nu_spawn_opts_init(&so);
	if (opts->spawn)
		so = *opts->spawn;
	nu_term ref;
	so.monitor_ref = &ref;
	so.link = link;
	nu_pid pid = nu_spawn_opt(body, (void *)cbs, &so);
	if (pid < 0)
		return pid;
	nu__mailbox_alias(nu__ref_id(ref));
	uint64_t boot[6];
	rc = nu_send(pid, STACK_TUPLE(boot, a_boot(), nu_pid_term(nu_self()),
				      ref, arg, opts->name));
	nu_term ack = NU_NONE;
	if (rc == 0)
		rc = ack_wait(nu__ref_id(ref), opts->timeout_ms, &ack);
	if (rc == 0)
		pid = ack_result(pid, ack, reason);
	else if (rc == -ESRCH)
		*reason = ack, pid = -ESRCH; /* died in init */
	else if (rc == -ETIMEDOUT)
		start_timed_out(pid, link), pid = -ETIMEDOUT;
	else
		pid = rc;
	nu_term_free(ref);
	return pid;
}

/* Take the boot message (anything before it cannot be for us: nobody
 * knew our pid). */
static nu_term boot_msg(void)
{
	for (;;) {
		nu_term m;
		if (nu_receive(&m, -1) < 0)
			continue;
		if (nu_tuple_size(m) == 5 && nu_tuple_elem(m, 0) == a_boot())
			return m;
		nu_term_free(m);
	}
}

static void ack(const nu__gen_boot *b, nu_term what)
{
	nu_reply(STACK_TUPLE((uint64_t[3]){ 0 }, nu_pid_term(b->parent),
			     b->ack),
		 what);
}

int nu__gen_boot_take(nu__gen_boot *b)
{
	nu_term m = boot_msg();
	b->msg = m;
	b->parent = nu_pid_value(nu_tuple_elem(m, 1));
	b->ack = nu_tuple_elem(m, 2);
	b->arg = nu_tuple_elem(m, 3);
	b->name = nu_tuple_elem(m, 4);
	if (b->name == NU_NONE)
		return 0;
	int rc;
	while ((rc = nu_register(b->name, nu_self())) == -EEXIST) {
		nu_pid holder = nu_whereis(b->name);
		if (holder > 0) {
			uint64_t t[3];
			ack(b, STACK_TUPLE(t, a_started(),
					   nu_pid_term(holder)));
			return -EEXIST;
		}
	}
	return rc;
}

void nu__gen_ack(nu__gen_boot *b, int action, nu_term reason)
{
	if (action == NU_GEN_OK) {
		ack(b, a_ok());
		return;
	}
	if (action == NU_GEN_IGNORE) {
		ack(b, a_ignore());
		nu_exit(NU_ATOM_NORMAL);
	}
	uint64_t t[3], e[3];
	if (action != NU_GEN_STOP || reason == NU_NONE)
		reason = action == NU_GEN_STOP
				 ? a_badret()
				 : STACK_TUPLE(t, a_badret(), nu_int(action));
	reason = nu__term_copy(reason, nu__term_heap()); /* off the stack */
	/* OTP 26's init_fail: the starter gets the answer, not our exit */
	nu_unlink(b->parent);
	ack(b, STACK_TUPLE(e, a_error(), reason));
	nu_exit(reason == NU_NONE ? a_badret() : reason);
}

/* ------------------------------------------------------------ the loop */

nu__gen_kind nu__gen_classify_msg(const nu__gen_boot *b, const nu__msg *m,
				  nu_term *from, nu_term *payload)
{
	/* {Tag, {From, Ref}, Req}, laid out by call.c: only Tag to test */
	if ((m->kind & NU__MSG_CALL) && telem(m->term, 0) == a_call()) {
		*from = telem(m->term, 1);
		*payload = telem(m->term, 2);
		return NU__GEN_CALL;
	}
	return nu__gen_classify(b, m->term, from, payload);
}

nu__gen_kind nu__gen_classify(const nu__gen_boot *b, nu_term msg,
			      nu_term *from, nu_term *payload)
{
	*from = NU_NONE;
	*payload = msg;
	size_t n = tsize(msg);
	if (n < 2 || n > 3)
		return NU__GEN_INFO;
	nu_term tag = telem(msg, 0), e1 = telem(msg, 1);
	if (n == 2)
		return tag == a_cast() ? (*payload = e1, NU__GEN_CAST)
				       : NU__GEN_INFO;
	nu_term e2 = telem(msg, 2);
	if ((tag == a_call() || tag == a_sys()) && is_from(e1)) {
		*from = e1;
		*payload = e2;
		if (tag == a_call())
			return NU__GEN_CALL;
		if (e2 == a_status())
			return NU__GEN_STATUS;
		if (tsize(e2) == 2 && telem(e2, 0) == a_stop()) {
			*payload = telem(e2, 1);
			return NU__GEN_STOP;
		}
		*from = NU_NONE, *payload = msg;
		return NU__GEN_INFO;
	}
	if (tag == a_exit() && e1 == nu_pid_term(b->parent)) {
		*payload = e2;
		return NU__GEN_PARENT_EXIT;
	}
	return NU__GEN_INFO;
}

void nu__gen_status_reply(nu_term from, const char *behaviour,
			  int (*fmt)(void *ctx, char *buf, size_t len),
			  void *ctx)
{
	char small[512], *buf = small;
	int h = snprintf(buf, sizeof(small), "%s ", behaviour);
	h += nu_term_print(nu_pid_term(nu_self()), buf + h, sizeof(small) - h);
	h += snprintf(buf + h, sizeof(small) - h, " ");
	size_t room = sizeof(small) - (size_t)h;
	int n = fmt ? fmt(ctx, buf + h, room) : snprintf(buf + h, room,
							 "<state>");
	if (n < 0)
		n = 0;
	if ((size_t)n >= room && (buf = nu_alloc((size_t)h + n + 1))) {
		memcpy(buf, small, (size_t)h);
		fmt(ctx, buf + h, (size_t)n + 1);
	} else if ((size_t)n >= room) {
		buf = small;
		n = (int)room - 1; /* no room for more: cut */
	}
	nu_term text = nu_binary(buf, (size_t)h + (size_t)n);
	if (text != NU_NONE)
		nu_reply(from, text);
	nu_term_free(text);
	if (buf != small)
		nu_free(buf);
}
