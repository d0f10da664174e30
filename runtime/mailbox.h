/* mailbox.h — private to nuproc: a process's signal queue. See mailbox.c. */
#ifndef NU_MAILBOX_H
#define NU_MAILBOX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "nuproc.h"

/* A message in flight: a flat deep copy of the sent term (term.h) made by
 * the sender, owned by the queue until the receiver copies it into its
 * own heap and frees the block. */
typedef struct nu__msg {
	struct nu__msg *_Atomic next;
	nu_pid to;                /* the receiver it was meant for */
	nu_pid from;              /* 0 when sent from outside a process */
	nu_term term;             /* points into data[] (or an immediate) */
	uint32_t size;            /* bytes of data[] in use */
	uint16_t kind;            /* NU__MSG_* | NU__SIG_* */
	uint8_t block;            /* from nu__block_get() (block.h) */
	uint8_t seen;             /* NU__SEEN_*: its lane's take boundary */
	union {
		struct nu__rel *rel; /* a signal's relation reference */
		struct nu__msg *prev; /* a fragment: in the process's list */
		uint64_t alias;   /* a reply: the reference id it answers;
				   * a call: its reference id */
	};
	_Alignas(16) unsigned char data[];
} nu__msg;

/* Bytes of term a process's own message holds (nu__proc.imsg, mailbox.c
 * "Sends to a deferred park"): a flat tuple of up to three immediates.
 * (With 40, ASan's larger control block would no longer fit.) */
#define NU__IMSG_DATA 32u

/* nu__msg.kind: a signal kind (signal.h) in the low bits, 0 for a plain
 * message; flags above. */
enum {
	NU__MSG_SIGMASK = 7,
	NU__MSG_COUNTED = 8,  /* counted in a bounded mailbox */
	NU__MSG_FRAG = 16,    /* received: a fragment of the receiver's heap */
	NU__MSG_REPLY = 32,   /* a call's reply: kept only while the receiver
			       * waits for its alias (mailbox.alias) */
	NU__MSG_CALL = 64,    /* a call (call.c); alias holds its id */
	NU__MSG_DOWNED = 128, /* with REPLY: the server exited (call.c) */
	NU__MSG_INLINE = 256, /* the receiver's own (nu__proc.imsg) */
};

/* nu__msg.seen: a message that is its lane's `seen` is not given back
 * when freed, only flagged, until the boundary moves past it (mailbox.c:
 * a block given back could come back as a new push, and the receiver
 * would take it for the boundary). */
enum { NU__SEEN_NO = 0, NU__SEEN_YES = 1, NU__SEEN_FREED = 2 };

/* One lane of a mailbox. */
typedef struct nu__lane {
	/* Pushed by senders: a LIFO whose top is swapped atomically; lives
	 * across slot reuse (see mailbox.c). On the normal lane, also the
	 * receiver's park word (NU__MAIL_ASLEEP). */
	_Atomic(nu__msg *) top;
	/* Normal lane: the newest message taken, which `top` (or the link of
	 * a later push) may still hold; the next take walks down to it (or
	 * NULL: nothing taken since the last park). NULL on the priority
	 * lane, which is taken by exchange. */
	nu__msg *seen;
	/* The receiver's own FIFO, in arrival order. */
	nu__msg *head, *tail;
	uint32_t len;             /* messages in head..tail */
} nu__lane;

/* The normal lane's `top` while its receiver is parked in a receive: the
 * push that replaces it wakes the receiver (mailbox.c). */
#define NU__MAIL_ASLEEP ((nu__msg *)2)

enum { NU__LANE_PRIO = 0, NU__LANE_NORMAL = 1, NU__LANES = 2 };

typedef struct nu__mailbox {
	nu__lane lane[NU__LANES]; /* priority messages pass normal ones */
	/* BEAM's receive marker: the last normal message queued when the
	 * reference mark_ref was made (NULL: none was queued). */
	nu__msg *mark;
	uint64_t mark_ref;
	/* The newest pushed message when the reference was made, if it
	 * was still in `top`: the mark, once taken into the FIFO. */
	nu__msg *mark_pending;
	/* The reference id of the reply a call waits for (gen.c), 0 when
	 * none: a reply for any other is dropped when taken (OTP's alias:
	 * a late reply never reaches the mailbox). */
	uint64_t alias;
} nu__mailbox;

struct nu__proc;
struct nu__sched;

struct nu__node;

/* A message block holding a flat copy of t, addressed to `to`; NULL when
 * out of memory. */
nu__msg *nu__msg_new(nu_pid to, nu_pid from, nu_term t);
void nu__msg_free(nu__msg *m);
/* A message whose term is the tuple {el[0], ..., el[n-1]} (1 <= n <= 8),
 * laid out in place: only elements with a body are walked and copied.
 * NULL when out of memory or n is out of range. */
nu__msg *nu__msg_new_tuple(nu_pid to, nu_pid from, size_t n,
			   const nu_term *el);
/* Push m to its receiver's lane (NU__LANE_*) and wake it, or free m when
 * the receiver is dead. An exit signal also flags the receiver, so that it
 * acts on it at its next resume whatever it waits for. */
void nu__msg_deliver(struct nu__node *n, nu__msg *m, int lane);

/* Nonzero when senders pushed messages the receiver has not taken yet. */
static inline int nu__mailbox_pushed(nu__mailbox *mb)
{
	const nu__lane *nl = &mb->lane[NU__LANE_NORMAL];
	nu__msg *t = atomic_load(&nl->top);
	return atomic_load(&mb->lane[NU__LANE_PRIO].top) ||
	       (t && t != nl->seen && t != NU__MAIL_ASLEEP);
}

/* Give m's memory back (no relation unref: see nu__msg_free). */
void nu__msg_release(nu__msg *m);

/* The commit of a park in a receive, on its normal lane ln (sched.c, in
 * the context that resumed after the receiver switched out): `top` goes
 * from empty (`seen`, or NULL) to NU__MAIL_ASLEEP, and `seen` is then
 * referenced by nothing, so it stops being the boundary (given back if
 * it was freed meanwhile). 0 when a push came in first: nothing changed.
 * Everything the receiver reads is written before the CAS that lets a
 * pusher wake it. */
static inline int nu__lane_sleep(nu__lane *ln)
{
	nu__msg *seen = ln->seen;
	nu__msg *exp = atomic_load_explicit(&ln->top, memory_order_relaxed);
	if (exp && exp != seen)
		return 0;
	int st = seen ? seen->seen : NU__SEEN_NO;
	if (seen) {
		seen->seen = NU__SEEN_NO;
		ln->seen = NULL;
	}
	if (!atomic_compare_exchange_strong(&ln->top, &exp, NU__MAIL_ASLEEP)) {
		if (seen) {
			seen->seen = (uint8_t)st;
			ln->seen = seen;
		}
		return 0;
	}
	if (st == NU__SEEN_FREED)
		nu__msg_release(seen);
	return 1;
}

/* Nonzero when the mailbox's process is parked in a receive. */
static inline int nu__mailbox_asleep(const nu__mailbox *mb)
{
	return atomic_load_explicit(&mb->lane[NU__LANE_NORMAL].top,
				    memory_order_relaxed) ==
	       NU__MAIL_ASLEEP;
}

/* Wake a process parked in a receive, if it is: claim its park word.
 * 1 when this call made p runnable (mailbox.c). */
int nu__mailbox_claim(struct nu__proc *p);

/* A fresh process's mailbox (top is left alone: see mailbox.c). */
void nu__mailbox_init(nu__mailbox *mb);

/* The calling process just made reference ref_id: remember where its
 * mailbox ends, so a receive for a reply carrying it can skip what came
 * before (mailbox.c). No-op outside a process. */
void nu__mailbox_mark_ref(uint64_t ref_id);

/* Send t to `to` as the reply to the call tagged with reference id
 * alias (NU__MSG_REPLY). nu_send's codes. */
int nu__send_reply(nu_pid to, uint64_t alias, nu_term t);

/* What makes a request a call (gen.c): the message sent is
 * {tag, {from, Ref}, Request}, Ref the reference with id `id`. */
typedef struct nu__call_hdr {
	nu_term tag;
	nu_pid from;
	uint64_t id;
} nu__call_hdr;

/* Send the call message for req to `to`, laid out directly (only req is
 * copied term by term). nu_send's codes. */
int nu__send_call(nu_pid to, const nu__call_hdr *call, nu_term req);

/* The calling process waits, up to timeout_ms (0 polls, -1 forever), for
 * the reply tagged id (kept only while id is its alias) or the DOWN of
 * monitor reference id `id`, scanning from the receive marker when id is
 * the marked reference. 0 with *out the reply (a term of its heap), 1
 * with *out the DOWN message, -ETIMEDOUT, -ENOMEM. */
int nu__mailbox_await_reply(uint64_t id, int64_t timeout_ms, nu_term *out);
/* Set the calling process's alias (0: none). */
void nu__mailbox_alias(uint64_t id);

/* Remove the queued replies tagged alias and DOWNs for monitor reference
 * id alias from the calling process's mailbox (after the marker when it
 * is alias's). */
void nu__mailbox_flush_ref(uint64_t alias);

/* Bounded mailboxes (bound.c). */
/* Wake the senders waiting for room in an exiting process's bounded
 * mailbox (they find it dead and drop their message). */
void nu__mailbox_release_waiters(struct nu__proc *p);
/* Make room for one message to `to`, whose slot holds p (bounded or not;
 * *sp: the caller's scheduler, updated when it waited): 0 when it may be
 * pushed (counted in: the caller flags it NU__MSG_COUNTED), 1 when it
 * must be dropped (the receiver died, or was killed for overflowing), or
 * -EAGAIN (the policy, or no process to wait in) / -ENOMEM. */
int nu__bound_reserve(struct nu__sched **sp, struct nu__proc *p, nu_pid to);
/* A message counted in (NU__MSG_COUNTED) left p's mailbox: count it out
 * and wake the senders waiting for room. */
void nu__bound_release(struct nu__proc *p);

/* nu_receive for the behaviours' loops (otp/): the oldest message
 * itself, out of the mailbox and not yet part of the heap, so that the
 * loop frees it whole or keeps it (nu__msg_done); until then it is the
 * process's `handling` message, freed if the process exits first. A call
 * (NU__MSG_CALL) is open from here on (call.c). Must be called from a
 * process, one message at a time. 0, -ETIMEDOUT, -ENOMEM. */
int nu__receive_msg(int64_t timeout_ms, nu__msg **out);
/* Done with m, taken by nu__receive_msg: free it, or (keep) make it a
 * fragment of the heap, freed by nu_term_free() or at exit. */
void nu__msg_done(nu__msg *m, int keep);

/* Wait (forever) until a message matching clause c is queued for the
 * calling process, without taking it. */
void nu__mailbox_await(const nu_clause *c);

/* Free every message of an exiting process (and stale ones). */
void nu__mailbox_drain(nu__mailbox *mb);

/* Received terms stay in their message block, which becomes a fragment
 * of the receiver's heap (mailbox.c). nu__frag_of: the fragment whose
 * term starts at ptr (ptr outside the heap's windows), or NULL.
 * nu__frag_free: give it back. nu__frags_free: all of an exited
 * process's. */
nu__msg *nu__frag_of(void *ptr);
void nu__frag_free(struct nu__proc *p, nu__msg *m);
/* nu__frag_free(p, nu__frag_of(ptr)) in one call: 1 when ptr was p's
 * fragment (now given back), else 0 (nu_free's path). */
int nu__frag_put(struct nu__proc *p, void *ptr);
void nu__frags_free(struct nu__proc *p);

/* Call fn(p, caller, id) for every call message for p in its normal
 * lane, queued or pushed, without taking anything (the exiting p:
 * call.c). The pushed stack is read with a seq_cst load. */
void nu__mailbox_each_call(struct nu__proc *p,
			   void (*fn)(struct nu__proc *p, nu_pid caller,
				      uint64_t id));

/* The bodies of nu_receive and nu_receive_select, which are stubs in
 * arch/<cpu>/resumable.S: the public result in the low 32 bits, and
 * NU__SWITCHED (arch/ctx.h) when the call switched out. */
uint64_t nu__receive(nu_term *out, int64_t timeout_ms)
	__attribute__((visibility("hidden")));
uint64_t nu__receive_select(const nu_clause *clauses, size_t n,
			    int64_t timeout_ms, nu_term *msg)
	__attribute__((visibility("hidden")));

/* Take what was pushed to the calling process p, acting on the exit
 * signals among it (signal.c); may end p. */
void nu__mailbox_take_signals(struct nu__proc *p);

#endif
