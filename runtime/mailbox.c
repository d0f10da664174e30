/* mailbox.c — message send and receive (issue 3's mailbox, first part).
 *
 * Entities
 *   message  a block holding a flat deep copy of the sent term, made by the
 *            sender (term.h), so the sender's heap is never referenced by
 *            anyone else. Most messages fit a small cached block
 *            (block.c) and are copied into it in one pass; a bigger term
 *            is measured, then copied into an exact record (pool.c, up
 *            to 128 bytes with the header) or malloc. A call's
 *            {Tag, {From, Ref}, Req} is laid out in place (only Req is
 *            walked; flagged NU__MSG_CALL, see call.c), and so are the
 *            tuples of exit signals and DOWNs (nu__msg_new_tuple). On
 *            receive the block becomes a fragment of the receiver's heap
 *            (no second copy): each process references only its own
 *            copy, and all of it goes with its heap at exit or with
 *            nu_term_free().
 *   mailbox  per process, two lanes (priority and normal; a receive looks
 *            at priority messages first, OTP 28's priority messages), each
 *            in two parts: `top`, a LIFO that any thread pushes onto with
 *            one atomic exchange, and a FIFO private to the receiver, which
 *            appends what was pushed, reversed, so messages keep the order
 *            in which their pushes took effect, and messages from one
 *            sender to one receiver on one lane arrive in send order.
 *
 * Push (any thread): m->next = PENDING; prev = exchange(top, m) (seq_cst);
 * m->next = prev (release). A consumer that meets PENDING waits for the
 * link (a few instructions away on the sender's side).
 *
 * Take and park, normal lane (two locked instructions per message: the
 * push's exchange and the park's CAS; Pony's actor queue has the same
 * two). The receiver takes with no locked instruction: it reads `top`
 * (acquire) and walks down to `seen`, the newest message it took before,
 * and `top` becomes the new `seen`. A receive with nothing to take parks
 * on the lane itself: after it switched out, its commit CASes `top` from
 * `seen` (or NULL) to ASLEEP (sched.c, nu__lane_sleep), and `seen` goes
 * back to NULL. The push whose exchange returns ASLEEP is the wake: it
 * links its message to NULL and makes the receiver runnable, with no CAS
 * of its own; every other push finds a message (or NULL: the receiver is
 * running) and wakes nobody. Any other waker (a timer, a kill, a
 * priority push) sets wstate NOTIFIED, then claims the park word by CAS
 * ASLEEP -> NULL; the commit looks at wstate after its CAS (proc.c), so
 * no wake is lost and exactly one party makes the receiver runnable.
 *   ABA: `seen` is compared by address, so its block must not come back
 * as a new push while it is the boundary: a message flagged as `seen` is
 * only marked when freed (msg_release), and given back when the boundary
 * moves past it (unsee) or the park swaps it out. The priority lane is
 * rare, and keeps the simpler scheme: take by exchange, a push that finds
 * it empty wakes.
 *
 * Rejected: a Vyukov queue (a stub node, popped with no exchange): the
 * consumer must push the stub back whenever the queue drains, a locked
 * instruction per message in a ping-pong, and the producer cannot tell a
 * parked receiver from a running one without a second word (wstate), so
 * the wake stays a CAS. Before this scheme a message cost four locked
 * instructions (exchange, wake CAS, park CAS, take exchange).
 *
 * Dead and reused slots. A sender checks the pid's generation before
 * pushing, but the receiver may exit right after. Messages carry the pid
 * they were sent to; the exit path drains the mailbox, and a message pushed
 * after that is found by the slot's next process, which frees messages not
 * meant for it (`top` is never reset at spawn for that reason). A stale
 * sender may also wake the slot's next process once: every park site loops
 * on its own condition, so such a wake is harmless.
 *
 * The ref trick (BEAM's receive marker). nu_make_ref() in a process moves
 * everything pushed so far into the FIFO and remembers the FIFO's last
 * message (`mark`) with the reference's id. A selective receive whose
 * every clause needs that reference at a fixed position starts scanning
 * after the mark: a message queued before the reference existed cannot
 * carry it. Removing the mark message moves the mark to its predecessor,
 * so the pointer never dangles; one mark per process (the newest ref).
 *
 * Sends to a deferred park. A send to the process whose receive park is
 * deferred on this thread (sched.c: the partner of a ping-pong, a caller
 * waiting for its reply) goes the short way, send_lazy: that process
 * holds its pid until it runs again (only it can exit), so there is no
 * generation check, no prefetch (it ran last), no push and no take (its
 * FIFO is ours until it runs, see hand_over); bounded mailboxes and
 * everything unusual go the long way, send_on. Its send hints are left
 * as they were (only guesses for cold receivers). Measured: pingpong
 * 69.6 -> 63.2 ns, call 116.0 -> 110.5 ns (~150 instructions fewer a
 * round trip). An immediate (an atom, a small integer, a pid: nothing to
 * copy) or a flat tuple of up to NU__IMSG_DATA bytes goes in the
 * receiver's own message, nu__proc.imsg, when that is free: no block to
 * take here and give back there (an atom ping-pong 684 -> 627
 * instructions a round trip; pingpong, whose {ping, Self} fits, 816 ->
 * 788 -> 744). It is queued and taken like any message; it is never
 * pushed, so never a lane's `seen`. Taken, an immediate's is free again
 * (msg_release); a tuple's stays the received term's storage, marked a
 * fragment but on no list (the control block needs no freeing at exit),
 * until nu_term_free or nu_realloc gives it back (frag_free). While it
 * is in use a send takes a block as before.
 *
 * Handed over (own_give). When that process waits forever in a plain
 * nu_receive, a send that fits its own message is not queued at all: the
 * term (an immediate as it is, a tuple in the own message already
 * marked received) is written to the receive's `out`, which the park
 * left in s->park_out (sched.h) after setting it to NU_NONE; the
 * resumed receive sees a term there and returns it. Its FIFO was empty
 * when it parked and nothing is linked while the park is deferred but by
 * a send that ends it, so nothing queued can come before; later sends
 * and signals queue behind as usual. The receive's check is a load of
 * its own stack: a flag in its control block (line 2) cost ring 100k 8%
 * (8.9 -> 8.2 M msg/s, 15 alternating runs) for 10 instructions a hop.
 * Pingpong 596 -> 513 instructions a round trip, atom ping-pong 501 ->
 * 424 (callgrind).
 *
 * Receive. The common take (one plain message pushed since the last
 * take) is inline; a plain nu_receive waiting forever loops on take and
 * park without the selective-receive scan or a timer, and a selective
 * receive whose oldest message matches takes it without the scan
 * (head_select).
 *
 * Rejected (for now): copying straight into the receiver's heap (its
 * allocator is owner-only; BEAM takes the receiver's heap lock instead).
 */
#include "mailbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "block.h"
#include "call.h"
#include "node.h"
#include "pattern.h"
#include "proc.h"
#include "relation.h"
#include "sched.h"
#include "signal.h"
#include "term.h"
#include "timer.h"

#define PENDING ((nu__msg *)1)
#define ASLEEP NU__MAIL_ASLEEP

void nu__mailbox_init(nu__mailbox *mb)
{
	for (int i = 0; i < NU__LANES; i++) {
		mb->lane[i].head = mb->lane[i].tail = NULL;
		mb->lane[i].seen = NULL;
		mb->lane[i].len = 0;
	}
	mb->mark = NULL;
	mb->mark_ref = 0;
	mb->mark_pending = NULL;
	mb->alias = 0;
}

static inline void msg_release(nu__msg *m)
{
	if (__builtin_expect(m->seen != NU__SEEN_NO, 0)) {
		m->seen = NU__SEEN_FREED; /* its lane's boundary: see unsee */
		return;
	}
	if (m->block)
		nu__block_put(m, m->block);
	else if (m->kind & NU__MSG_INLINE)
		m->kind = 0; /* its process's imsg is free again */
	else
		nu__rec_free(m);
}

void nu__msg_release(nu__msg *m)
{
	msg_release(m);
}

static inline void msg_free(nu__msg *m)
{
	if (!(m->kind & (NU__MSG_REPLY | NU__MSG_CALL)) && m->rel)
		nu__rel_unref(m->rel);
	msg_release(m);
}

void nu__msg_free(nu__msg *m)
{
	msg_free(m);
}

/* m is no longer its lane's boundary: give it back if it was freed while
 * it was. */
static void unsee(nu__msg *m)
{
	if (!m)
		return;
	int freed = m->seen == NU__SEEN_FREED;
	m->seen = NU__SEEN_NO;
	if (freed)
		msg_release(m);
}

/* The next link of a message taken from `top`, once its sender set it. */
static nu__msg *link_of(nu__msg *m)
{
	nu__msg *n;
	while ((n = atomic_load_explicit(&m->next, memory_order_acquire)) ==
	       PENDING)
		;
	return n;
}

/* Append m to a lane's FIFO. */
static void fifo_append(nu__lane *ln, nu__msg *m)
{
	if (ln->tail)
		atomic_store_explicit(&ln->tail->next, m, memory_order_relaxed);
	else
		ln->head = m;
	ln->tail = m;
	ln->len++;
}

/* Append the list m, taken from a lane's `top` (newest first, down to
 * stop or NULL), to the lane's FIFO (oldest first), dropping messages
 * meant for an earlier process of this slot and acting on exit signals (p
 * NULL: drain, no signal is acted on). Returns the first signal that ends
 * p, kept out of the FIFO, or NULL. */
static nu__msg *lane_append(nu__proc *p, nu__lane *ln, nu_pid self,
			    nu__msg *m, nu__msg *stop)
{
	nu__msg *rev = NULL, *die = NULL;
	nu__mailbox *mb = p ? &p->mailbox : NULL;
	while (m && m != stop) {
		nu__msg *next = link_of(m);
		atomic_store_explicit(&m->next, rev, memory_order_relaxed);
		rev = m;
		m = next;
	}
	for (; rev; rev = m) {
		m = atomic_load_explicit(&rev->next, memory_order_relaxed);
		atomic_store_explicit(&rev->next, NULL, memory_order_relaxed);
		int r = rev->to == self ? NU__SIG_KEEP : NU__SIG_DROPPED;
		if ((rev->kind & NU__MSG_REPLY) && (!mb || rev->alias != mb->alias))
			r = NU__SIG_DROPPED; /* a late reply: its call is over */
		if (r == NU__SIG_KEEP && (rev->kind & NU__MSG_SIGMASK) && !die)
			r = nu__signal_take(p, rev); /* may free rev */
		else if (r == NU__SIG_DROPPED)
			msg_free(rev);
		int keep = r == NU__SIG_KEEP;
		if (keep)
			fifo_append(ln, rev);
		else if (r == NU__SIG_DIE)
			die = rev;
		if (mb && rev == mb->mark_pending) {
			/* the reference's mark: this message, or the last
			 * one kept before it */
			mb->mark = keep ? rev : ln->tail;
			mb->mark_pending = NULL;
		}
	}
	return die;
}

/* Take the normal lane's pushes down from top (not stop, its `seen`):
 * top becomes the boundary, flagged first (lane_append may free it). */
static nu__msg *lane_walk(nu__proc *p, nu__lane *ln, nu_pid self,
			  nu__msg *top, nu__msg *stop)
{
	top->seen = NU__SEEN_YES;
	ln->seen = top;
	nu__msg *die = lane_append(p, ln, self, top, stop);
	unsee(stop);
	return die;
}

/* Move everything pushed so far onto the priority lane into its FIFO
 * (lane_append). The priority lane is taken by exchange; the normal lane
 * (mailbox_take) by a walk down to `seen`, with no locked instruction: its
 * `top` is swapped out only by a park (sched.c: park_commit_mail). */
static nu__msg *prio_take(nu__proc *p, nu__lane *ln, nu_pid self)
{
	/* A plain load first: an exchange on an empty lane is a wasted
	 * locked instruction. A push racing with it found the lane empty and
	 * wakes us, so the next take sees it. */
	if (!atomic_load_explicit(&ln->top, memory_order_relaxed))
		return NULL;
	return lane_append(p, ln, self,
			   atomic_exchange_explicit(&ln->top, NULL,
						    memory_order_acq_rel),
			   NULL);
}

/* Take both lanes; exit when a signal ends p (signals only come on the
 * normal lane, after everything on it before them is queued). The common
 * take, one plain message or awaited reply for p on the normal lane, is
 * inline. Taking the normal lane is a walk from `top` down to `seen`,
 * whose flag keeps it from being given back, so that its address cannot
 * come back as a new push (after a park swapped `top` out, `seen` is
 * NULL: pushes onto ASLEEP end the list). */
static inline void mailbox_take(nu__proc *p)
{
	nu__mailbox *mb = &p->mailbox;
	nu__lane *ln = mb->lane;
	/* plain loads first, inline: most takes find one lane or both
	 * empty (see prio_take) */
	if (atomic_load_explicit(&ln[NU__LANE_PRIO].top, memory_order_relaxed))
		prio_take(p, &ln[NU__LANE_PRIO], p->pid);
	nu__lane *nl = &ln[NU__LANE_NORMAL];
	nu__msg *stop = nl->seen;
	/* acquire: pairs with the push's exchange, m's contents are seen */
	nu__msg *m = atomic_load_explicit(&nl->top, memory_order_acquire);
	if (m == stop)
		return;
	if (link_of(m) == stop && m->to == p->pid &&
	    !(m->kind & NU__MSG_SIGMASK) &&
	    (!(m->kind & NU__MSG_REPLY) || m->alias == mb->alias)) {
		m->seen = NU__SEEN_YES;
		nl->seen = m;
		atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
		fifo_append(nl, m);
		if (__builtin_expect(m == mb->mark_pending, 0)) {
			mb->mark = m;
			mb->mark_pending = NULL;
		}
		unsee(stop);
		return;
	}
	nu__msg *die = lane_walk(p, nl, p->pid, m, stop);
	if (__builtin_expect(die != NULL, 0))
		nu__proc_exit(nu__sched_self(), p, nu__signal_die(p, die));
}

void nu__mailbox_take_signals(nu__proc *p)
{
	mailbox_take(p);
}

void nu__mailbox_drain(nu__mailbox *mb)
{
	for (int i = 0; i < NU__LANES; i++) {
		nu__lane *ln = &mb->lane[i];
		nu__msg *stop = ln->seen; /* NULL on the priority lane */
		/* nothing is for pid -1: every message is dropped; most
		 * processes exit with nothing pushed (no exchange then) */
		nu__msg *top = atomic_load(&ln->top);
		if (top)
			lane_append(NULL, ln, -1,
				    atomic_exchange(&ln->top, NULL), stop);
		nu__msg *m = ln->head;
		while (m) {
			nu__msg *next = atomic_load_explicit(
				&m->next, memory_order_relaxed);
			msg_free(m);
			m = next;
		}
		unsee(stop);
	}
	nu__mailbox_init(mb);
}

int nu__mailbox_claim(nu__proc *p)
{
	nu__lane *ln = &p->mailbox.lane[NU__LANE_NORMAL];
	nu__msg *exp = ASLEEP;
	return atomic_load(&ln->top) == ASLEEP &&
	       atomic_compare_exchange_strong(&ln->top, &exp, NULL);
}

void nu__mailbox_each_call(nu__proc *p,
			   void (*fn)(nu__proc *p, nu_pid caller, uint64_t id))
{
	nu__lane *ln = &p->mailbox.lane[NU__LANE_NORMAL];
	nu__msg *m = ln->head;
	for (; m; m = atomic_load_explicit(&m->next, memory_order_relaxed))
		if (m->kind & NU__MSG_CALL)
			fn(p, m->from, m->alias);
	/* in place: pushes go on, and never change a message already on */
	for (m = atomic_load(&ln->top); m && m != ln->seen; m = link_of(m))
		if ((m->kind & NU__MSG_CALL) && m->to == p->pid)
			fn(p, m->from, m->alias);
}

/* Room for a term in a small block. */
#define BLOCK_DATA (NU__BLOCK_SIZE - offsetof(nu__msg, data))

/* dst[0..n) = src[0..n), n from 1 to 4, unrolled: a loop cost fanin's
 * send of a 3-word tuple ~10 instructions, and send_own a frame. */
static inline void copy_small(uint64_t *dst, const uint64_t *src, size_t n)
{
	switch (n) {
	case 4:
		dst[3] = src[3];
		/* fall through */
	case 3:
		dst[2] = src[2];
		/* fall through */
	case 2:
		dst[1] = src[1];
		/* fall through */
	default:
		dst[0] = src[0];
	}
}

/* m's term: a copy of the flat tuple t of flat bytes (at most 9 words:
 * no call). */
static inline void msg_copy_flat(nu__msg *m, nu_term t, size_t flat)
{
	const uint64_t *src = nu__box_ptr(t);
	uint64_t *dst = (uint64_t *)m->data;
	if (flat <= 32) {
		copy_small(dst, src, flat / 8);
	} else {
		for (size_t i = 0; i < flat / 8; i++)
			dst[i] = src[i];
	}
	m->term = (nu_term)(uintptr_t)m->data; /* boxed: tag 0 */
}

/* A small block holding a copy of t made in one pass (immediates and
 * small flat tuples inline), or NULL when t does not fit or no block is
 * to be had: then t is measured and gets an exact block. */
static nu__msg *msg_new_small(nu__sched *s, nu_term t, size_t flat)
{
	size_t size = 0;
	nu__msg *m;
	uint8_t tag;
	if (flat > BLOCK_DATA || !(m = nu__block_get_on(s, &tag)))
		return NULL;
	m->block = tag;
	m->seen = NU__SEEN_NO;
	if (flat) {
		msg_copy_flat(m, t, flat);
		size = flat;
	} else if (!nu__has_body(t)) {
		m->term = t;
	} else if ((m->term = nu__term_copy_bounded(t, m->data, BLOCK_DATA,
						    &size)) == NU_NONE) {
		nu__block_put(m, m->block);
		return NULL;
	}
	m->size = (uint32_t)size;
	return m;
}

/* m's storage: its block tag (0: not a block), size bytes of term, and
 * not a lane's boundary. */
static inline nu__msg *msg_room(nu__msg *m, uint8_t block, uint32_t size)
{
	m->block = block;
	m->seen = NU__SEEN_NO;
	m->size = size;
	return m;
}

/* The header fields of a new plain message m (its term is set). */
static nu__msg *msg_init(nu__msg *m, nu_pid to, nu_pid from)
{
	m->to = to;
	m->from = from;
	m->kind = 0;
	m->rel = NULL;
	atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
	return m;
}

/* flat: nu__term_flat_tuple(t). */
static inline nu__msg *msg_new(nu__sched *s, nu_pid to, nu_pid from,
			       nu_term t, size_t flat)
{
	nu__msg *m = msg_new_small(s, t, flat);
	if (!m) {
		size_t size = nu__term_flat_size(t);
		if (size > UINT32_MAX ||
		    !(m = nu__rec_alloc(sizeof(*m) + size)))
			return NULL;
		msg_room(m, 0, (uint32_t)size);
		m->term = size ? nu__term_copy_sized(t, m->data, size) : t;
	}
	return msg_init(m, to, from);
}

nu__msg *nu__msg_new(nu_pid to, nu_pid from, nu_term t)
{
	return msg_new(nu__sched_here(), to, from, t, nu__term_flat_tuple(t));
}

/* The frame of a call message, {Tag, {From, #Ref<id>}, Req}: 9 words,
 * then Req's copy. */
#define CALL_WORDS 9

static nu_term call_layout(uint64_t *w, const nu__call_hdr *c, nu_term req)
{
	w[0] = NU__HDR(NU__K_TUPLE, 3);
	w[1] = c->tag;
	w[2] = (nu_term)(uintptr_t)(w + 4);
	w[3] = req;
	w[4] = NU__HDR(NU__K_TUPLE, 2);
	w[5] = nu_pid_term(c->from);
	w[6] = (nu_term)(uintptr_t)(w + 7);
	w[7] = NU__HDR(NU__K_REF, 1);
	w[8] = c->id;
	return (nu_term)(uintptr_t)w; /* boxed: tag 0 */
}

/* A message with room for size bytes of term: a small block when they
 * fit, else an exact record or malloc (nu__rec_alloc); NULL when out of
 * memory. */
static nu__msg *msg_alloc(size_t size)
{
	uint8_t tag;
	nu__msg *m = size <= BLOCK_DATA ? nu__block_get(&tag) : NULL;
	if (!m) {
		tag = 0;
		if (size > UINT32_MAX ||
		    !(m = nu__rec_alloc(sizeof(*m) + size)))
			return NULL;
	}
	return msg_room(m, tag, (uint32_t)size);
}

#define TUPLE_MAX 8

nu__msg *nu__msg_new_tuple(nu_pid to, nu_pid from, size_t n,
			   const nu_term *el)
{
	size_t sz[TUPLE_MAX], size = (1 + n) * 8;
	if (n == 0 || n > TUPLE_MAX)
		return NULL;
	for (size_t i = 0; i < n; i++)
		size += sz[i] = nu__has_body(el[i]) ? nu__term_flat_size(el[i])
						    : 0;
	nu__msg *m = msg_alloc(size);
	if (!m)
		return NULL;
	uint64_t *w = (uint64_t *)m->data, *at = w + 1 + n;
	w[0] = NU__HDR(NU__K_TUPLE, n);
	for (size_t i = 0; i < n; i++) {
		w[1 + i] = sz[i] ? nu__term_copy_sized(el[i], at, sz[i]) : el[i];
		at += sz[i] / 8;
	}
	m->term = (nu_term)(uintptr_t)w; /* boxed: tag 0 */
	return msg_init(m, to, from);
}

/* A call message (gen.c) laid out in place: only Req is walked. */
static nu__msg *msg_new_call(nu_pid to, nu_term req, const nu__call_hdr *c)
{
	size_t rsize = nu__has_body(req) ? nu__term_flat_size(req) : 0;
	nu__msg *m = msg_alloc(CALL_WORDS * 8 + rsize);
	if (!m)
		return NULL;
	uint64_t *w = (uint64_t *)m->data;
	if (rsize)
		req = nu__term_copy_sized(req, w + CALL_WORDS, rsize);
	m->term = call_layout(w, c, req);
	return msg_init(m, to, c->from);
}

/* Push m onto a lane; returns what `top` held (ASLEEP: this push took
 * the receiver's park, and must wake it). */
static nu__msg *lane_push(nu__lane *ln, nu__msg *m)
{
	atomic_store_explicit(&m->next, PENDING, memory_order_relaxed);
	nu__msg *prev = atomic_exchange_explicit(&ln->top, m,
						 memory_order_seq_cst);
	atomic_store_explicit(&m->next, prev == ASLEEP ? NULL : prev,
			      memory_order_release);
	return prev;
}

/* May p, waiting in a receive on this thread with its park deferred
 * (sched.c), take a message straight into its FIFO? p's FIFO is then
 * ours to write until p runs again, and the push's exchange and p's take
 * are saved; but only when `top` holds nothing p has not taken (whatever
 * waits there came first, and may be from the same sender: order per
 * pair) and no reference mark waits for the next take. A push racing
 * with that look comes from another thread, so from another sender, and
 * is concurrent with the message. */
static inline int lazy_room(const nu__mailbox *mb)
{
	const nu__lane *ln = &mb->lane[NU__LANE_NORMAL];
	return !mb->mark_pending &&
	       atomic_load_explicit(&ln->top, memory_order_relaxed) == ln->seen;
}

/* Hand m to p, s's deferred park, whose FIFO has room (lazy_room): its
 * park never happened. The caller makes it runnable. */
static inline void lazy_link(nu__sched *s, nu__proc *p, nu__msg *m)
{
	atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
	fifo_append(&p->mailbox.lane[NU__LANE_NORMAL], m);
	__atomic_store_n(&s->park_lazy, NULL, __ATOMIC_RELAXED);
}

/* lazy_link, and p becomes runnable. */
static inline void lazy_append(nu__sched *s, nu__proc *p, nu__msg *m)
{
	lazy_link(s, p, m);
	nu__proc_ready_on(s, p);
}

/* deliver_to's hand-over to s's deferred park p: only a plain message or
 * an awaited reply for p, on the normal lane. 1 when m was handed over
 * and p made runnable. */
static int hand_over(nu__sched *s, nu__proc *p, nu__msg *m, int lane)
{
	nu__mailbox *mb = &p->mailbox;
	if (!s || s->park_lazy != p || lane != NU__LANE_NORMAL ||
	    (m->kind & NU__MSG_SIGMASK) || m->to != p->pid ||
	    ((m->kind & NU__MSG_REPLY) && m->alias != mb->alias) ||
	    !lazy_room(mb))
		return 0;
	lazy_append(s, p, m);
	return 1;
}

/* Push m onto a lane of p, the process in m->to's slot, and wake p; s is
 * the calling thread's scheduler or NULL. A normal push wakes p when it
 * found p parked on the lane (the exchange was the claim) or when p's park
 * on this thread is deferred (sched.c), where it may skip the lane
 * (hand_over); a priority push that found its lane empty wakes p like any
 * other waker (proc.c). */
static void deliver_to(nu__sched *s, nu__proc *p, nu__msg *m, int lane)
{
	if (hand_over(s, p, m, lane))
		return;
	unsigned sig = m->kind & NU__MSG_SIGMASK; /* m is not ours after */
	nu__msg *prev = lane_push(&p->mailbox.lane[lane], m);
	if (prev == ASLEEP)
		nu__proc_ready_on(s, p);
	else if (nu__park_lazy_take(s, p))
		;
	else if (!prev && lane == NU__LANE_PRIO)
		nu__proc_wake(p);
	if (sig && sig != NU__SIG_DOWN)
		nu__proc_signal(p, NU__PS_MAIL);
}

void nu__msg_deliver(nu__node *n, nu__msg *m, int lane)
{
	if (nu__pid_alive(n, m->to) != 1) {
		msg_free(m); /* dead by now: the silent no-op of a send */
		return;
	}
	deliver_to(nu__sched_here(), nu__slot_proc(&n->mem,
						   nu__pid_index(m->to)),
		   m, lane);
}

/* Bounded mailboxes (bound.c): the unbounded common case inline. */
static inline int bound_reserve(nu__sched **sp, nu__proc *p, nu_pid to)
{
	return p->mbox_limit ? nu__bound_reserve(sp, p, to) : 0;
}

static inline void bound_release(nu__proc *p, const nu__msg *m)
{
	if (m->kind & NU__MSG_COUNTED)
		nu__bound_release(p);
}

/* Lines prefetched for a cold receiver: the first three of its control
 * block (the wake state and the mailbox's push end, which this send
 * writes; its switch's fields and the rest of the mailbox, which its
 * resume and its receive read: proc.h) and eight of the stack below it
 * (the top of what its resume pops: a process parked in a receive has a
 * shallow stack); the first two of the hinted ones'. Three lines for the
 * receiver rather than two: ring 100k 8.85 -> 9.06 M msg/s, ring 10k
 * 24.6 -> 25.4 (alternating runs, medians of 7 and 5); five, with two
 * lines that a hop no longer touches: ring 100k 8.66 -> 7.41. */
#define PF_CB_LINES 3
#define PF_HINT_LINES 2
#define PF_STACK_LINES 8

/* Start the cache and TLB misses of a send to a receiver that has not
 * run lately, so that they overlap the message's copy instead of coming
 * one after another when the push and the switch reach them: on a ring of
 * 10,000 or 100,000 processes (slots 320 KiB apart) every receiver is
 * cold, and this took ring 100k from ~510 to ~385 ns a hop and ring 10k
 * from 150-220 to 112-127 ns. Not for the process whose park is deferred
 * on this thread (the partner of a ping-pong or a call, in cache: an
 * unconditional prefetch of 18 lines made pingpong 10% slower, the lines
 * filling the line-fill buffers although cached), nor for the receiver
 * this scheduler prefetched last (fanin's 1000 senders to one receiver).
 * Out of line: the sends that skip it pay a compare or two.
 *
 * Send hints. That prefetch starts when the receiver is known, one send
 * before its lines are needed: too late to hide a miss to memory behind
 * a ~60 ns hop. So each process keeps, in its line 0, where its last
 * send went (send_hint: the receiver's slot index + 1) and where that
 * receiver's last send went (send_hint2). A send to a cold receiver p
 * waits for p's line 0 anyway; reading p's two hints there and
 * prefetching those processes' first two lines starts the misses (and
 * the page walks) of the next two hops of a chain while this one runs.
 * A ring of 10,000 went from 137 to 89 ns a hop, one of 100,000 from 381
 * to 285 (5 alternating runs). The second hint's process gets all the
 * lines a receiver gets (its control block's and its stack's), three
 * hops ahead: ring 100k 8.91 -> 10.17 M msg/s (9 alternating runs; the
 * first hint's too, 9.69; 4 stack lines instead of 8, or 12 (the page
 * below), 5.7 and 5.2). An earlier session found the hinted stack lines
 * gave nothing, before the receives' returns were predicted (arch/ctx.h,
 * "Returns after a switch"); the ring's hop was then ~20 ns longer. A
 * hint is only a guess (relaxed, any thread, possibly a previous
 * process's of the slot): at worst a prefetch is wasted. */
static void prefetch_proc(const char *c)
{
	nu__prefetch_lines(c, PF_CB_LINES);
	nu__prefetch_lines(c - 64 * PF_STACK_LINES, PF_STACK_LINES);
}

static __attribute__((noinline)) void prefetch_lines(nu__sched *s,
						    nu__proc *p)
{
	s->send_pf = p;
	/* p's line 0 is needed by the send anyway: waiting for it here
	 * costs nothing more. The hinted addresses first, then the
	 * prefetches (in the other order, the ring's gain above was a
	 * third of it: 9.44 against 10.31 M msg/s, 9 alternating runs) */
	uint32_t h[2] = { __atomic_load_n(&p->send_hint, __ATOMIC_RELAXED),
			  __atomic_load_n(&p->send_hint2, __ATOMIC_RELAXED) };
	const nu__mem *mem = &nu__node_get()->mem;
	const char *q0 = h[0] - 1 < mem->nslots /* (0: none) */
				 ? (const char *)nu__slot_proc(mem, h[0] - 1)
				 : NULL;
	const char *q1 = h[1] - 1 < mem->nslots
				 ? (const char *)nu__slot_proc(mem, h[1] - 1)
				 : NULL;
	prefetch_proc((const char *)p);
	if (q0)
		nu__prefetch_lines(q0, PF_HINT_LINES);
	if (q1)
		prefetch_proc(q1);
}

/* c sends to `to`, whose slot holds p: c's hints (read by senders to c,
 * on any thread: relaxed, a hint is only a guess). */
static inline void send_hints(nu__proc *c, nu_pid to, const nu__proc *p)
{
	__atomic_store_n(&c->send_hint, nu__pid_index(to) + 1,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&c->send_hint2,
			 __atomic_load_n(&p->send_hint, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
}

static inline void prefetch_receiver(nu__sched *s, nu__proc *p)
{
	if (__builtin_expect(s && p != s->park_lazy && p != s->send_pf, 0))
		prefetch_lines(s, p);
}

/* Every other scheduler of the node parked: s runs alone. */
static int sched_alone(const nu__sched *s)
{
	const nu__node *n = nu__node_get();
	for (unsigned i = 0; i < n->ngroups; i++) {
		const nu__group *g = &n->groups[i];
		int others = g->count - (g == s->grp);
		if (atomic_load_explicit(&g->nparked, memory_order_relaxed) <
		    others)
			return 0;
	}
	return 1;
}

/* This scheduler's processes have NU__BLOCK_FLOOD messages out that
 * nobody has received (block.c), the send went to a process that runs
 * here, and no other scheduler runs: end the sender's slice, so that the
 * receiver, queued behind the other senders, gets through its queue
 * before they send more. 1000 senders to one receiver on one scheduler
 * (fanin) queued a million messages before it, all but the first few
 * thousand malloc'd; this keeps the queue under ~8k and took fanin from
 * 7.3 to 15 M msg/s. Not while other schedulers run: they may feed the
 * same queue, and a receiver that takes it while they push contends with
 * them for its lines (fanin on two schedulers went from 7.5 to 3.8 M
 * msg/s when the receiver's scheduler slowed its own senders, although
 * only 47k of the million sends did). */
static __attribute__((noinline)) void flood_yield(nu__sched *s,
						  nu__proc *p)
{
	if (s->current && s->reds > 1 &&
	    __atomic_load_n(&p->sched, __ATOMIC_RELAXED) == s &&
	    nu__block_flood_slow(s) && sched_alone(s))
		s->reds = 1; /* the charge of this send ends the slice */
}

/* Send msg to `to` on a lane; alias nonzero: a call's reply (never
 * counted in a bounded mailbox: a server does not wait for its caller's
 * room, and a reply is dropped unless the caller waits for it). */
static int send_on(nu_pid to, nu_term msg, int lane, uint64_t alias,
		   const nu__call_hdr *call)
{
	nu__node *n = nu__node_get();
	if (!n)
		return -ESRCH;
	/* a flat tuple is a valid term: one look at its header for both */
	size_t flat = nu__term_flat_tuple(msg);
	if (!flat && !nu__term_valid(msg))
		return -EINVAL;
	int alive = nu__pid_alive(n, to);
	if (alive < 0)
		return alive;
	if (!alive)
		return 0; /* Erlang: sending to a dead pid is a silent no-op */
	nu__sched *s = nu__sched_here(); /* read once: a wait returns it */
	nu__proc *p = nu__slot_proc(&n->mem, nu__pid_index(to));
	prefetch_receiver(s, p);
	int rc = alias ? 0 : bound_reserve(&s, p, to);
	if (rc)
		return rc > 0 ? 0 : rc; /* dropped: a send to a dead process */
	nu__proc *cur = s ? s->current : NULL; /* no switch from here on */
	if (cur) /* (mailbox.c, "Send hints") */
		send_hints(cur, to, p);
	nu__msg *m = call ? msg_new_call(to, msg, call)
			  : msg_new(s, to, cur ? cur->pid : 0, msg, flat);
	if (!m) {
		if (p->mbox_limit && !alias)
			atomic_fetch_sub(&p->mbox_count, 1);
		return -ENOMEM;
	}
	if (alias) {
		m->kind = NU__MSG_REPLY;
		m->alias = alias;
	} else if (p->mbox_limit) {
		m->kind = NU__MSG_COUNTED;
	}
	if (call) {
		m->kind |= NU__MSG_CALL;
		m->alias = call->id;
	}
	if (s && p != cur &&
	    __builtin_expect(s->blocks_made - (int64_t)s->nblocks >=
				     NU__BLOCK_FLOOD, 0))
		flood_yield(s, p); /* before the push, after which p may exit */
	/* No second look at the generation: the receiver may die after any
	 * look, and its exit drains what was pushed before (see above). */
	deliver_to(s, p, m, lane);
	if (cur)
		nu__sched_charge(s, 1);
	return 0;
}

/* 1 when msg fits p's own message (nu__proc.imsg; flat: its
 * nu__term_flat_tuple) and that is free. */
static inline int own_fits(const nu__msg *own, nu_term msg, size_t flat)
{
	return !own->kind && (flat ? flat <= NU__IMSG_DATA
				   : nu__term_immediate(msg));
}

/* m's term: a copy of the flat tuple t of flat bytes, at most
 * NU__IMSG_DATA (own_fits). */
static inline void own_copy(nu__msg *m, nu_term t, size_t flat)
{
	_Static_assert(NU__IMSG_DATA == 32, "own_copy copies up to 4 words");
	copy_small((uint64_t *)m->data, nu__box_ptr(t), flat / 8);
	m->term = (nu_term)(uintptr_t)m->data; /* boxed: tag 0 */
}

/* p's own message m, free, takes msg (own_fits) from the current process
 * of s, a reply when alias is nonzero. */
static inline nu__msg *own_fill(nu__sched *s, nu__proc *p, nu__msg *m,
				nu_term msg, size_t flat, uint64_t alias)
{
	if (flat)
		own_copy(msg_room(m, 0, (uint32_t)flat), msg, flat);
	else
		msg_room(m, 0, 0)->term = msg;
	msg_init(m, p->pid, s->current->pid);
	m->kind = alias ? NU__MSG_INLINE | NU__MSG_REPLY : NU__MSG_INLINE;
	m->alias = alias;
	return m;
}

static inline void msg_keep(nu__proc *p, nu__msg *m);

/* msg (own_fits), from the current process of s, straight to p's plain
 * receive waiting forever, whose FIFO is empty ("Sends to a deferred
 * park"): in its own message, kept as a take keeps it (msg_keep), when
 * it has a body, else as it is. */
static inline void own_give(nu__sched *s, nu__proc *p, nu__msg *m,
			    nu_term msg, size_t flat)
{
	if (flat) {
		own_copy(msg_room(m, 0, (uint32_t)flat), msg, flat);
		m->kind = NU__MSG_INLINE;
		msg_keep(p, m);
		msg = m->term;
	}
	*s->park_out = msg;
	__atomic_store_n(&s->park_lazy, NULL, __ATOMIC_RELAXED);
}

/* A send to p, the process whose park is deferred on this thread (the
 * partner of a ping-pong, a caller waiting for its reply: alias
 * nonzero), the short way ("Sends to a deferred park" above), or by
 * send_on when it cannot be (an invalid term, a bounded mailbox, no room
 * in the FIFO, a flood, no memory). Out of line, so that a send to anyone
 * else costs nu_send a look at s->park_lazy and no more (inline, its
 * registers cost every other send a frame: 5% more instructions a
 * ring hop). */
static __attribute__((noinline)) int send_lazy(nu__sched *s, nu__proc *p,
					       nu_term msg, uint64_t alias)
{
	size_t flat = nu__term_flat_tuple(msg);
	nu__msg *m = nu__proc_imsg(p);
	if ((p->flags & NU__PF_BOUNDED) || !lazy_room(&p->mailbox) ||
	    (!flat && !nu__term_valid(msg)))
		return send_on(p->pid, msg, NU__LANE_NORMAL, alias, NULL);
	if (own_fits(m, msg, flat)) {
		own_fill(s, p, m, msg, flat, alias);
	} else if (s->blocks_made - (int64_t)s->nblocks >= NU__BLOCK_FLOOD ||
		   !(m = msg_new(s, p->pid, s->current->pid, msg, flat))) {
		return send_on(p->pid, msg, NU__LANE_NORMAL, alias, NULL);
	} else if (alias) {
		m->kind |= NU__MSG_REPLY;
		m->alias = alias;
	}
	lazy_append(s, p, m);
	nu__sched_charge(s, 1);
	return 0;
}

/* The end of a send that spent the slice: a yield (out of line, so that
 * send_own's caller keeps no frame for it). */
static __attribute__((noinline)) int send_yield(nu__sched *s)
{
	nu__sched_switch_out(s, s->current, NU__AFTER_YIELD);
	return 0;
}

/* send_lazy's common case, inline: msg fits p's own message, and p can
 * be s's next (nu__proc_ready_on's short way). It calls nothing, but a
 * yield as its tail, so nu_send keeps no frame: send_lazy's, six saved
 * registers, cost ~21 instructions a send (its entry and exit; pingpong
 * 715 -> 681 instructions a round trip of two sends). -1 when it does
 * not apply (then send_lazy), else nu_send's result. */
static inline int send_own(nu__sched *s, nu__proc *p, nu_term msg,
			   uint64_t alias)
{
	nu__msg *m = nu__proc_imsg(p);
	size_t flat = nu__term_flat_tuple(msg);
	/* p unbounded and nu__runnext_free_for(s, p), in two looks */
	if (!own_fits(m, msg, flat) ||
	    (p->flags & (NU__PF_PINNED | NU__PF_BOUNDED)) || s->runnext ||
	    !lazy_room(&p->mailbox))
		return -1;
	if (s->park_out && !alias)
		own_give(s, p, m, msg, flat);
	else
		lazy_link(s, p, own_fill(s, p, m, msg, flat, alias));
	s->runnext = p; /* nu__proc_ready_on, whose conditions hold */
	if (--s->reds > 0)
		return 0;
	return send_yield(s);
}

/* A send to s's deferred park p: send_own, else send_lazy. Out of line
 * for the same reason as send_lazy. */
static __attribute__((noinline)) int send_short(nu__sched *s, nu__proc *p,
						nu_term msg, uint64_t alias)
{
	int rc = send_own(s, p, msg, alias);
	return rc >= 0 ? rc : send_lazy(s, p, msg, alias);
}

/* A send on the normal lane (alias nonzero: a reply). */
static inline int send_normal(nu_pid to, nu_term msg, uint64_t alias)
{
	nu__sched *s = nu__sched_here();
	/* park_lazy is set only while a process runs on s (every entry into
	 * the loop context commits it: sched.c, "Deferred park"), so the
	 * short way's sender is s->current */
	nu__proc *p = s ? s->park_lazy : NULL;
	if (p && p->pid == to && (!alias || p->mailbox.alias == alias))
		return send_short(s, p, msg, alias);
	return send_on(to, msg, NU__LANE_NORMAL, alias, NULL);
}

int nu_send(nu_pid to, nu_term msg)
{
	return send_normal(to, msg, 0);
}

int nu_send_priority(nu_pid to, nu_term msg)
{
	return send_on(to, msg, NU__LANE_PRIO, 0, NULL);
}

int nu__send_reply(nu_pid to, uint64_t alias, nu_term t)
{
	return alias ? send_normal(to, t, alias) : -EINVAL;
}

int nu__send_call(nu_pid to, const nu__call_hdr *call, nu_term req)
{
	return send_on(to, req, NU__LANE_NORMAL, 0, call);
}

/* ------------------------------------------------------- fragments */

/* A taken message's block stays as the received term's storage: a heap
 * fragment of the receiver, on its list until nu_term_free() or exit. */
static void frag_add(nu__proc *p, nu__msg *m)
{
	m->kind |= NU__MSG_FRAG;
	m->prev = NULL;
	p->frag_bytes += m->size;
	atomic_store_explicit(&m->next, p->frags, memory_order_relaxed);
	if (p->frags)
		p->frags->prev = m;
	p->frags = m;
}

static inline nu__msg *frag_of(void *ptr)
{
	if (!ptr || ((uintptr_t)ptr & 15))
		return NULL;
	nu__msg *m = (nu__msg *)((char *)ptr - offsetof(nu__msg, data));
	if (!(m->kind & NU__MSG_FRAG) ||
	    (void *)nu__box_ptr(m->term) != ptr)
		return NULL;
	return m;
}

nu__msg *nu__frag_of(void *ptr)
{
	return frag_of(ptr);
}

static inline void frag_free(nu__proc *p, nu__msg *m)
{
	if (m->kind & NU__MSG_INLINE) { /* p's own (msg_keep) */
		nu__proc_imsg_done(p);
		return;
	}
	nu__msg *next = atomic_load_explicit(&m->next, memory_order_relaxed);
	if (m->prev)
		atomic_store_explicit(&m->prev->next, next,
				      memory_order_relaxed);
	else
		p->frags = next;
	if (next)
		next->prev = m->prev;
	p->frag_bytes -= m->size;
	msg_release(m);
}

void nu__frag_free(nu__proc *p, nu__msg *m)
{
	frag_free(p, m);
}

int nu__frag_put(nu__proc *p, void *ptr)
{
	nu__msg *m = frag_of(ptr);
	if (m)
		frag_free(p, m);
	return m != NULL;
}

void nu__frags_free(nu__proc *p)
{
	nu__msg *m = p->frags;
	while (m) {
		nu__msg *next = atomic_load_explicit(&m->next,
						     memory_order_relaxed);
		msg_release(m);
		m = next;
	}
	p->frags = NULL;
	p->frag_bytes = 0;
}

/* ------------------------------------------------- selective receive */

/* Decides for one message: the clause index (>= 0) that takes it, or -1. */
typedef int (*nu__scan_fn)(const nu__msg *m, void *ctx);

/* Where a scan found its message. */
typedef struct {
	int lane;
	nu__msg *prev, *m;
} found;

/* Scan one lane from the message after prev (NULL: the head); on a match
 * fill *f and return the clause index, else -1 with *prevp at the last
 * message scanned. */
static int lane_scan(nu__lane *ln, int lane, nu__msg **prevp,
		     nu__scan_fn scan, void *ctx, found *f)
{
	nu__msg *prev = *prevp;
	nu__msg *m = prev ? atomic_load_explicit(&prev->next,
						 memory_order_relaxed)
			  : ln->head;
	for (; m; prev = m,
		  m = atomic_load_explicit(&m->next, memory_order_relaxed)) {
		int r = scan(m, ctx);
		if (r >= 0) {
			*f = (found){ lane, prev, m };
			return r;
		}
	}
	*prevp = prev;
	return -1;
}

/* Find the oldest queued message that scan accepts, priority messages
 * first, waiting for more until the deadline. Normal messages are scanned
 * from after `start` (the receive marker, or NULL for the head), and after
 * a wake only the ones not scanned yet; the priority lane is short and is
 * scanned whole each time. Returns the clause index with *f set, or
 * -ETIMEDOUT / -ENOMEM. */
static int select_wait(nu__sched **sp, nu__proc *p, uint64_t deadline,
		       nu__scan_fn scan, void *ctx, nu__msg *start, found *f)
{
	nu__mailbox *mb = &p->mailbox;
	nu__msg *prev = start;
	uint64_t token = 0;
	for (;;) {
		mailbox_take(p);
		nu__msg *pprev = NULL;
		int r = lane_scan(&mb->lane[NU__LANE_PRIO], NU__LANE_PRIO,
				  &pprev, scan, ctx, f);
		if (r < 0)
			r = lane_scan(&mb->lane[NU__LANE_NORMAL],
				      NU__LANE_NORMAL, &prev, scan, ctx, f);
		if (r >= 0) {
			if (token && !nu__timer_disarm(p, token))
				atomic_store(&p->timed_out, 0);
			return r;
		}
		if ((token && atomic_load(&p->timed_out)) || deadline == 0)
			return -ETIMEDOUT;
		if (!token && deadline != UINT64_MAX &&
		    !(token = nu__timer_arm(*sp, p, deadline)))
			return -ENOMEM;
		*sp = nu__proc_park_mail(*sp);
	}
}

/* Unlink the found message from its lane; its term, which stays in the
 * block (now a fragment of p's heap; an immediate's block goes). */
static inline void select_unlink(nu__proc *p, const found *f)
{
	nu__mailbox *mb = &p->mailbox;
	nu__lane *ln = &mb->lane[f->lane];
	nu__msg *next = atomic_load_explicit(&f->m->next,
					     memory_order_relaxed);
	if (f->prev)
		atomic_store_explicit(&f->prev->next, next,
				      memory_order_relaxed);
	else
		ln->head = next;
	if (ln->tail == f->m)
		ln->tail = f->prev;
	if (mb->mark == f->m)
		mb->mark = f->prev;
	ln->len--;
	bound_release(p, f->m);
}

/* Take the found message out of the mailbox; it is the caller's. */
static inline void select_out(nu__proc *p, const found *f)
{
	select_unlink(p, f);
	if (f->m->kind & NU__MSG_CALL) /* open until answered (call.c) */
		nu__call_taken(p, f->m->from, f->m->alias);
}

/* p keeps m's term: m becomes a fragment of its heap. */
static inline void msg_keep(nu__proc *p, nu__msg *m)
{
	if (!m->size) {
		/* p's own, an immediate: free again at once (own_fill left
		 * no relation, and a message linked the short way is never
		 * a lane's `seen`) */
		if (m->kind == NU__MSG_INLINE)
			m->kind = 0;
		else
			msg_free(m);
	} else if (m->kind & NU__MSG_INLINE) { /* p's own: on no list */
		m->kind |= NU__MSG_FRAG;
		p->frag_bytes += m->size;
	} else
		frag_add(p, m);
}

static inline nu_term select_take(nu__proc *p, const found *f)
{
	nu_term t = f->m->term;
	select_out(p, f);
	msg_keep(p, f->m);
	return t;
}

static uint64_t deadline_of(int64_t timeout_ms)
{
	return timeout_ms < 0	 ? UINT64_MAX
	       : timeout_ms == 0 ? 0
				 : nu__now_ns() + (uint64_t)timeout_ms * 1000000u;
}

#define QUICK_MAX 8 /* clauses whose quick test is kept */

typedef struct {
	const nu_clause *c;
	size_t n;
	nu__pattern_sig sig[QUICK_MAX];
} clause_ctx;

static void clause_ctx_init(clause_ctx *cc, const nu_clause *c, size_t n)
{
	cc->c = c;
	cc->n = n;
	for (size_t i = 0; i < n && i < QUICK_MAX; i++)
		cc->sig[i] = nu__pattern_head_of(c[i].pattern)->sig;
}

/* The pattern's quick test (pattern.h): 0 when t cannot match. */
static inline int sig_passes(const nu__pattern_sig *sg, nu_term t)
{
	if (!sg->hdr)
		return 1;
	if (!nu__is_boxed(t))
		return 0;
	const uint64_t *b = nu__box_ptr(t);
	return b[0] == sg->hdr && (!sg->first || b[1] == sg->first);
}

/* The scan of a selective receive: most queued messages a receive skips
 * fail the quick test (a tuple of another arity or tag), so the full
 * matcher runs only on likely ones, and not at all when the quick test
 * is the whole pattern (fanin's {msg, _}: -5% per message). */
static int scan_clauses(const nu__msg *m, void *ctx)
{
	const clause_ctx *cc = ctx;
	nu_term t = m->term;
	for (size_t i = 0; i < cc->n; i++) {
		if (i < QUICK_MAX && !sig_passes(&cc->sig[i], t))
			continue;
		if ((i < QUICK_MAX && cc->sig[i].exact) ||
		    nu_pattern_match(cc->c[i].pattern, t, cc->c[i].pre,
				     cc->c[i].vars) == 1)
			return (int)i;
	}
	return -1;
}

static int check_clauses(const nu_clause *c, size_t n)
{
	if (!c || !n || n > INT32_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!c[i].pattern ||
		    (nu__pattern_head_of(c[i].pattern)->nvars && !c[i].vars))
			return -EINVAL;
	return 0;
}

/* Where a selective receive may start: after the mark when every clause
 * needs the marked reference at a fixed position, else at the head. */
static nu__msg *marked_start(nu__mailbox *mb, const nu_clause *c, size_t n)
{
	if (!mb->mark || !mb->mark_ref)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int v = c[i].pre ? nu__pattern_fixed_ref(c[i].pattern, c[i].pre)
				 : -1;
		if (v < 0 || nu__ref_id(c[i].pre[v]) != mb->mark_ref)
			return NULL;
	}
	return mb->mark;
}

/* The common selective receive: the oldest message is a normal one and
 * a clause takes it (a server's loop, fanin's receiver). The clause index
 * with *f set, or -1 when the scan must decide (nothing queued, a
 * priority message, no clause takes the head, or a receive marker that
 * every clause needs: the head, queued before the reference, could not
 * match, and the scan starts after the marker at once). A marker that a
 * clause does not need (a receive of any DOWN after spawns with
 * monitors) changes nothing: the scan would start at the head too.
 * Everything pushed is taken first, the mark settled. No scan state, no
 * timer: a fanin message -9% instructions. */
static inline int head_select(nu__proc *p, const nu_clause *c, size_t n,
			      found *f)
{
	nu__mailbox *mb = &p->mailbox;
	mailbox_take(p);
	nu__msg *m = mb->lane[NU__LANE_NORMAL].head;
	if (!m || mb->lane[NU__LANE_PRIO].head ||
	    (mb->mark && marked_start(mb, c, n)))
		return -1;
	for (size_t i = 0; i < n; i++) {
		const nu__pattern_sig *sg =
			&nu__pattern_head_of(c[i].pattern)->sig;
		if (!sig_passes(sg, m->term))
			continue;
		if (sg->exact || nu_pattern_match(c[i].pattern, m->term,
						  c[i].pre, c[i].vars) == 1) {
			*f = (found){ NU__LANE_NORMAL, NULL, m };
			return (int)i;
		}
	}
	return -1;
}

void nu__mailbox_mark_ref(uint64_t ref_id)
{
	nu__sched *s = nu__sched_here(); /* read once, no switch here */
	if (!s || !s->current)
		return;
	nu__mailbox *mb = &s->current->mailbox;
	nu__lane *ln = &mb->lane[NU__LANE_NORMAL];
	/* No take here (it would act on exit signals inside nu_make_ref):
	 * the newest pushed message becomes the mark when it is taken. */
	nu__msg *top = atomic_load_explicit(&ln->top, memory_order_acquire);
	mb->mark = ln->tail;
	mb->mark_pending = top == ln->seen ? NULL : top;
	mb->mark_ref = ref_id;
}

/* 1 reduction for a receive; NU__SWITCHED when it ends the slice (a yield:
 * arch/ctx.h, "Returns after a switch"). */
static inline uint64_t receive_charge(nu__sched *s)
{
	if (--s->reds > 0)
		return 0;
	nu__sched_switch_out(s, s->current, NU__AFTER_YIELD);
	return NU__SWITCHED;
}

/* NU__SWITCHED when p was switched out since its reductions read r0 (the
 * count grows at every switch-out that charged anything: a switch that
 * did not is missed, which costs a predicted return and nothing else). */
static inline uint64_t switched_since(const nu__proc *p, uint64_t r0)
{
	return p->reductions != r0 ? NU__SWITCHED : 0;
}

/* nu_receive_select's body, called by its stub as nu__receive's. */
uint64_t nu__receive_select(const nu_clause *clauses, size_t n,
			    int64_t timeout_ms, nu_term *msg)
{
	nu__sched *s = nu__sched_here(); /* read once: parks return it anew */
	if (!s || !s->current)
		return (uint32_t)-EPERM;
	int rc = check_clauses(clauses, n);
	if (rc || timeout_ms < -1)
		return (uint32_t)-EINVAL;
	nu__proc *p = s->current;
	found f;
	uint64_t sw = 0;
	int k = head_select(p, clauses, n, &f); /* settles the mark too */
	if (k < 0) {
		clause_ctx cc;
		clause_ctx_init(&cc, clauses, n);
		uint64_t r0 = p->reductions;
		k = select_wait(&s, p, deadline_of(timeout_ms), scan_clauses,
				&cc, marked_start(&p->mailbox, clauses, n),
				&f);
		sw = switched_since(p, r0);
	}
	if (k < 0)
		return sw | (uint32_t)k;
	/* the bindings point into the message, which stays as it is */
	nu_term t = select_take(p, &f);
	if (msg)
		*msg = t;
	return sw | (uint32_t)k | receive_charge(s);
}

typedef struct {
	int (*pred)(nu_term, void *);
	void *arg;
} pred_ctx;

static int scan_pred(const nu__msg *m, void *ctx)
{
	const pred_ctx *pc = ctx;
	return pc->pred(m->term, pc->arg) ? 0 : -1;
}

int nu_receive_if(int (*pred)(nu_term msg, void *arg), void *arg,
		  nu_term *out, int64_t timeout_ms)
{
	nu__sched *s = nu__sched_self();
	if (!s || !s->current)
		return -EPERM;
	if (!pred || !out || timeout_ms < -1)
		return -EINVAL;
	nu__proc *p = s->current;
	pred_ctx pc = { pred, arg };
	found f;
	int k = select_wait(&s, p, deadline_of(timeout_ms), scan_pred, &pc,
			    NULL, &f);
	if (k < 0)
		return k;
	*out = select_take(p, &f);
	nu__sched_charge(s, 1);
	return 0;
}

static int scan_any(const nu__msg *m, void *ctx)
{
	(void)m, (void)ctx;
	return 0;
}

/* Wait for the oldest message of s's current process p (nu_receive);
 * 0 with *f where it is, or -ETIMEDOUT, -ENOMEM. */
static inline int receive_oldest(nu__sched **sp, nu__proc *p,
				 int64_t timeout_ms, found *f)
{
	nu__sched *s = *sp;
	nu__lane *ln = p->mailbox.lane;
	for (;;) {
		/* the oldest message, priority first: no scan, no timer while
		 * waiting forever */
		mailbox_take(p);
		f->lane = ln[NU__LANE_PRIO].head ? NU__LANE_PRIO
						 : NU__LANE_NORMAL;
		f->prev = NULL;
		if ((f->m = ln[f->lane].head))
			break;
		if (timeout_ms >= 0) {
			int k = select_wait(&s, p, deadline_of(timeout_ms),
					    scan_any, NULL, NULL, f);
			if (k < 0) {
				*sp = s;
				return k;
			}
			break;
		}
		s = nu__proc_park_mail(s);
	}
	*sp = s;
	return 0;
}

/* nu_receive's body, called by its stub (arch/<cpu>/resumable.S): the
 * result in the low 32 bits, and NU__SWITCHED when it switched out. */
uint64_t nu__receive(nu_term *out, int64_t timeout_ms)
{
	nu__sched *s = nu__sched_here(); /* read once: parks return it anew */
	if (!s || !s->current)
		return (uint32_t)-EPERM;
	if (!out || timeout_ms < -1)
		return (uint32_t)-EINVAL;
	nu__proc *p = s->current;
	nu__lane *ln = p->mailbox.lane;
	uint64_t sw = 0;
	/* The common case inline: no priority message, the oldest normal one
	 * taken from the head (a found that does not escape: its lane and
	 * predecessor are constants), or a park while waiting forever.
	 * receive_oldest's loop does the same for nu__receive_msg and the
	 * rest; one helper shared by both (tried) cost pingpong 3 ns, and
	 * receive_oldest without its own park loop cost a call 20 ns. */
	mailbox_take(p);
	for (;;) {
		nu__msg *m = ln[NU__LANE_NORMAL].head;
		if (__builtin_expect(ln[NU__LANE_PRIO].head != NULL, 0))
			break;
		if (m) {
			found h = { NU__LANE_NORMAL, NULL, m };
			*out = select_take(p, &h);
			return sw | receive_charge(s);
		}
		if (timeout_ms >= 0)
			break;
		/* *out first: a send that fills it needs its page resident
		 * (fault.c counts a page for the process that touches it) */
		*out = NU_NONE;
		s = nu__proc_park_mail_inline(s, out); /* (sched.h) */
		/* (a park that found its wake pending did not switch: the
		 * stub's jump then leaves one stale return-stack entry) */
		sw = NU__SWITCHED;
		if (__atomic_load_n(out, __ATOMIC_RELAXED) != NU_NONE) {
			nu__sched_charge(s, 1); /* given (own_give) */
			return NU__SWITCHED;
		}
		/* A park that comes back with the FIFO's head set was ended
		 * by a send the short way ("Sends to a deferred park"), which
		 * links its message there only when nothing was pushed and
		 * not taken: whatever was pushed since came after it (another
		 * thread: unordered with it; this sender's next sends, after
		 * it), so the take can wait for the next receive. Exit
		 * signals act at the resume (NU__PS_MAIL). Pingpong 677 -> 659
		 * instructions a round trip. */
		if (!ln[NU__LANE_NORMAL].head)
			mailbox_take(p);
	}
	found f;
	uint64_t r0 = p->reductions;
	int rc = receive_oldest(&s, p, timeout_ms, &f);
	sw |= switched_since(p, r0);
	if (rc)
		return sw | (uint32_t)rc;
	*out = select_take(p, &f);
	return sw | receive_charge(s);
}

int nu__receive_msg(int64_t timeout_ms, nu__msg **out)
{
	nu__sched *s = nu__sched_here(); /* read once: parks return it anew */
	nu__proc *p = s->current;
	found f;
	int rc = receive_oldest(&s, p, timeout_ms, &f);
	if (rc)
		return rc;
	select_out(p, &f);
	*out = p->handling = f.m;
	nu__sched_charge(s, 1);
	return 0;
}

void nu__msg_done(nu__msg *m, int keep)
{
	nu__proc *p = nu__sched_here()->current; /* no switch here */
	p->handling = NULL;
	if (keep)
		msg_keep(p, m);
	else
		msg_free(m);
}

void nu__mailbox_await(const nu_clause *c)
{
	nu__sched *s = nu__sched_self();
	clause_ctx cc;
	clause_ctx_init(&cc, c, 1);
	found f;
	select_wait(&s, s->current, UINT64_MAX, scan_clauses, &cc, NULL, &f);
}

/* ------------------------------------------------------- call replies */

/* A call waits for its reply (clause 0) or the DOWN of the monitor whose
 * reference tags it (clause 1). */
static int scan_reply(const nu__msg *m, void *ctx)
{
	uint64_t id = *(const uint64_t *)ctx;
	if (m->kind & NU__MSG_REPLY)
		return m->alias != id ? -1 : m->kind & NU__MSG_DOWNED ? 1 : 0;
	return nu__is_down_for(m->term, id) ? 1 : -1;
}

/* Where a scan for reference id may start (the ref trick), mark settled. */
static nu__msg *ref_start(nu__proc *p, uint64_t id)
{
	if (p->mailbox.mark_pending)
		mailbox_take(p);
	return p->mailbox.mark_ref == id ? p->mailbox.mark : NULL;
}

void nu__mailbox_alias(uint64_t id)
{
	nu__sched *s = nu__sched_here(); /* read once, no switch here */
	if (s && s->current)
		s->current->mailbox.alias = id;
}

/* A call's usual answer, just taken (the mark settled): the first
 * normal message after the marker, no priority message before it. 0 or
 * 1 as scan_reply, with *f set; -1 when nothing is queued there yet; -2
 * when something else is (a scan decides). */
static inline int reply_first(nu__proc *p, uint64_t id, found *f)
{
	nu__mailbox *mb = &p->mailbox;
	nu__lane *ln = &mb->lane[NU__LANE_NORMAL];
	nu__msg *prev = mb->mark_ref == id ? mb->mark : NULL;
	nu__msg *m = prev ? atomic_load_explicit(&prev->next,
						 memory_order_relaxed)
			  : ln->head;
	if (mb->lane[NU__LANE_PRIO].head)
		return -2;
	if (!m)
		return -1;
	int k = scan_reply(m, &id);
	if (k < 0)
		return -2;
	*f = (found){ NU__LANE_NORMAL, prev, m };
	return k;
}

int nu__mailbox_await_reply(uint64_t id, int64_t timeout_ms, nu_term *out)
{
	nu__sched *s = nu__sched_here(); /* read once: parks return it anew */
	nu__proc *p = s->current;
	found f;
	int k = -1;
	/* waiting forever, while nothing else comes: take and park, no scan,
	 * no timer (as nu_receive) */
	while (timeout_ms < 0) {
		mailbox_take(p);
		if ((k = reply_first(p, id, &f)) != -1)
			break;
		s = nu__proc_park_mail(s);
	}
	if (k < 0)
		k = select_wait(&s, p, deadline_of(timeout_ms), scan_reply,
				&id, ref_start(p, id), &f);
	if (k < 0)
		return k;
	*out = select_take(p, &f);
	nu__sched_charge(s, 1);
	return k;
}

void nu__mailbox_flush_ref(uint64_t alias)
{
	nu__sched *s = nu__sched_self();
	nu__proc *p = s->current;
	found f;
	while (select_wait(&s, p, 0, scan_reply, &alias, ref_start(p, alias),
			   &f) >= 0) {
		select_unlink(p, &f);
		msg_free(f.m);
	}
}
