/* gen_server.c — the generic server: a process that runs a user's
 * callbacks over its messages (OTP's gen_server).
 *
 * Entities
 *   callbacks  nu_gen_server_cbs: init, handle_call/cast/info,
 *              terminate, format_state; state is the user's pointer.
 *   loop       one process: boot (gen.c), init, then forever: take the
 *              oldest message whole (nu__receive_msg: no heap fragment
 *              made and unmade per message), classify it (gen.c; a call's
 *              From is read from its header), run its callback, act on the
 *              returned nu_gen_action, free the message unless the
 *              callback kept it.
 *
 * Invariants
 *   - The loop takes messages strictly in arrival order (a plain
 *     receive): a gen_server never reorders its requests.
 *   - terminate runs exactly once when the server stops by its own
 *     decision, by nu_gen_stop, or by its parent's trapped exit signal,
 *     and never when it is killed or crashes (as in OTP).
 *   - A stop reason or reply may point into the message being handled:
 *     the message is freed only after they were sent (replies are copies)
 *     and never on the way to exit.
 *
 * Rejected: dispatching calls through a pattern receive ({'$gen_call',
 * From, Req} as a compiled pattern): a gen_server takes every message
 * anyway, and gen.c's classification is a few word compares.
 */
#include <errno.h>

#include "gen.h"

#include "../mailbox.h"

static void ret_init(nu_gen_ret *r)
{
	r->reply = NU_NONE;
	r->reason = NU_NONE;
	r->timeout_ms = -1;
	r->keep = 0;
	r->free_reply = 0;
}

typedef struct server {
	const nu_gen_server_cbs *cbs;
	nu__gen_boot boot;
	void *state;
} server;

/* Stop: terminate, then exit with reason (never returns). */
static void stop(server *sv, nu_term reason)
{
	if (sv->cbs->terminate)
		sv->cbs->terminate(reason, sv->state);
	nu_exit(reason);
}

static int fmt_state(void *ctx, char *buf, size_t len)
{
	server *sv = ctx;
	return sv->cbs->format_state(sv->state, buf, len);
}

/* Act on a callback's result; m is the message it handled (NULL: a
 * timeout), from its From (NU_NONE: not a call, or a cast). */
static void act(server *sv, int action, const nu__msg *m, nu_term from,
		nu_gen_ret *r)
{
	switch (action) {
	case NU_GEN_OK:
		return;
	case NU_GEN_REPLY:
		if (from != NU_NONE && r->reply != NU_NONE) {
			if (m->kind & NU__MSG_CALL) /* From is in its header */
				nu__gen_reply_msg(m, r->reply);
			else
				nu_reply(from, r->reply);
			if (r->free_reply)
				nu_term_free(r->reply);
			return;
		}
		break; /* a reply with no call or no reply term */
	case NU_GEN_STOP:
		if (from != NU_NONE && r->reply != NU_NONE)
			nu_reply(from, r->reply);
		stop(sv, r->reason == NU_NONE ? NU_ATOM_NORMAL : r->reason);
	}
	nu_term why = nu_tuple(2, nu_atom("bad_return_value"),
			       nu_int(action));
	stop(sv, why == NU_NONE ? nu_atom("bad_return_value") : why);
}

/* Handle one message, taken whole (NULL: the callback's timeout passed,
 * handle_info gets `timeout`); returns the timeout the callback asked
 * for. */
static int64_t handle(server *sv, nu__msg *m)
{
	const nu_gen_server_cbs *cbs = sv->cbs;
	nu_term from = NU_NONE, x = nu__gen_atom_timeout();
	nu_gen_ret r;
	ret_init(&r);
	int action = NU_GEN_OK;
	switch (m ? nu__gen_classify_msg(&sv->boot, m, &from, &x)
		  : NU__GEN_INFO) {
	case NU__GEN_CALL:
		if (!cbs->handle_call)
			nu_exit(nu_atom("undef")); /* the caller sees it */
		action = cbs->handle_call(x, from, &sv->state, &r);
		break;
	case NU__GEN_CAST:
		if (cbs->handle_cast)
			action = cbs->handle_cast(x, &sv->state, &r);
		from = NU_NONE;
		break;
	case NU__GEN_INFO:
		if (cbs->handle_info)
			action = cbs->handle_info(x, &sv->state, &r);
		break;
	case NU__GEN_STOP:
	case NU__GEN_PARENT_EXIT:
		stop(sv, x);
		break;
	case NU__GEN_STATUS:
		nu__gen_status_reply(from, "gen_server",
				     cbs->format_state ? fmt_state : NULL, sv);
		from = NU_NONE;
		break;
	}
	act(sv, action, m, from, &r);
	if (!m)
		return r.timeout_ms;
	nu__msg_done(m, r.keep);
	return r.timeout_ms;
}

static void server_main(void *arg)
{
	server sv = { .cbs = arg, .state = NULL };
	if (nu__gen_boot_take(&sv.boot) < 0)
		return;
	nu_gen_ret r;
	ret_init(&r);
	int action = sv.cbs->init(sv.boot.arg, &sv.state, &r);
	nu__gen_ack(&sv.boot, action, r.reason); /* returns when started */
	int64_t timeout = r.timeout_ms;
	for (;;) {
		nu__msg *m;
		int rc = nu__receive_msg(timeout < -1 ? -1 : timeout, &m);
		if (rc == -ETIMEDOUT)
			m = NULL;
		else if (rc < 0)
			nu_exit(nu_atom("receive_failed")); /* no timer */
		timeout = handle(&sv, m);
	}
}

static nu_pid start(const nu_gen_server_cbs *cbs, nu_term arg,
		    const nu_gen_opts *opts, int link)
{
	if (!cbs || !cbs->init)
		return nu_self() < 0 ? -EPERM : -EINVAL;
	return nu__gen_start(server_main, cbs, arg, opts, link);
}

nu_pid nu_gen_server_start(const nu_gen_server_cbs *cbs, nu_term arg,
			   const nu_gen_opts *opts)
{
	return start(cbs, arg, opts, 0);
}

nu_pid nu_gen_server_start_link(const nu_gen_server_cbs *cbs, nu_term arg,
				const nu_gen_opts *opts)
{
	return start(cbs, arg, opts, 1);
}
