/* gen.h — private to nuproc: what every behaviour shares (OTP's gen and
 * proc_lib): the start handshake, the message kinds of the loop, the
 * protocol of call, cast, reply, stop and status. See gen.c. */
#ifndef NU_OTP_GEN_H
#define NU_OTP_GEN_H

#include "nuproc.h"

/*
 * The start handshake. nu__gen_start (the starter's side) spawns `body`
 * with the behaviour's callbacks as its argument and sends it the boot
 * message; body's first act is nu__gen_boot_take, its act after init is
 * nu__gen_ack. The starter waits for the ack or the new process's death.
 */
typedef struct nu__gen_boot {
	nu_pid parent;  /* the starter (its exit signal, trapped, stops us) */
	nu_term arg;    /* the start argument, in the new process's heap */
	nu_term name;   /* the registered name, or NU_NONE */
	nu_term ack;    /* the reference the starter waits on */
	nu_term msg;    /* the boot message itself (freed by the ack) */
} nu__gen_boot;

/* Starter: spawn body(cbs) (linked to the caller when link), hand it arg
 * and opts' name, and wait for its ack. The pid, or the -errno codes of
 * nu_gen_server_start (with *opts->reason). cbs is not checked here. */
nu_pid nu__gen_start(nu_fn body, const void *cbs, nu_term arg,
		     const nu_gen_opts *opts, int link);

/* New process, first thing: take the boot message into *b and register
 * the name. 0; or -EEXIST (the name is taken: the starter has its answer
 * already, and body must return at once). */
int nu__gen_boot_take(nu__gen_boot *b);

/* New process, after init: action is init's result (NU_GEN_OK,
 * NU_GEN_STOP with reason, NU_GEN_IGNORE; anything else counts as
 * NU_GEN_STOP with reason bad_return_value). For NU_GEN_OK it returns;
 * for the others it ends the process (exit with reason, or normal for
 * ignore) after the starter has its answer. The boot message stays (the
 * start argument points into it) until the process exits. */
void nu__gen_ack(nu__gen_boot *b, int action, nu_term reason);

/* What a message a behaviour's loop took is (nu__gen_classify). */
typedef enum nu__gen_kind {
	NU__GEN_INFO = 0,   /* anything else: payload is the message */
	NU__GEN_CALL,       /* {'$gen_call', From, Req}: *from, payload Req */
	NU__GEN_CAST,       /* {'$gen_cast', Msg}: payload Msg */
	NU__GEN_STOP,       /* nu_gen_stop: payload the reason */
	NU__GEN_STATUS,     /* nu_gen_status: *from to nu__gen_status_reply */
	NU__GEN_PARENT_EXIT, /* {'EXIT', Parent, Reason}: payload Reason */
} nu__gen_kind;

/* Classify msg taken by the loop of the process booted as b. *from and
 * *payload are set as nu__gen_kind says (pointers into msg). */
nu__gen_kind nu__gen_classify(const nu__gen_boot *b, nu_term msg,
			      nu_term *from, nu_term *payload);

struct nu__msg;
/* nu__gen_classify for a message taken whole (nu__receive_msg): a call
 * laid out by nu_call (NU__MSG_CALL) needs no shape checks. */
nu__gen_kind nu__gen_classify_msg(const nu__gen_boot *b,
				  const struct nu__msg *m, nu_term *from,
				  nu_term *payload);

/* Answer the call m (NU__MSG_CALL, taken whole) with reply: nu_reply
 * with From read from m's header. nu_reply's codes. */
int nu__gen_reply_msg(const struct nu__msg *m, nu_term reply);

/* Answer an NU__GEN_STATUS request: the text "<behaviour> <pid> " and
 * what fmt(ctx, buf, len) prints (fmt NULL: "<state>"). */
void nu__gen_status_reply(nu_term from, const char *behaviour,
			  int (*fmt)(void *ctx, char *buf, size_t len),
			  void *ctx);

/* Interned atoms the behaviours use (cached; see term.h). */
nu_term nu__gen_atom_timeout(void);

/* Define `static nu_term name(void)`: the atom `text`, looked up once. */
#define NU__GEN_ATOM(name, text)                                              \
	static nu_term name(void)                                             \
	{                                                                     \
		static _Atomic nu_term a;                                     \
		return nu__atom_cached(&a, text);                             \
	}

#endif
