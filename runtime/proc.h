/* proc.h — private to nuproc: the process control block and pid encoding.
 *
 * See proc.c for the design. The control block lives inside the process's
 * slot (mem.h), in the page it shares with the top of the stack and the
 * start of the heap, so its size is bounded (NU__PROC_CB_MAX).
 */
#ifndef NU_PROC_H
#define NU_PROC_H

#include <stdatomic.h>
#include <stdint.h>

#include "heap.h"
#include "mailbox.h"
#include "nuproc.h"

struct nu__sched;

/* Wake-up states of a process (nu__proc.wstate). */
enum {
	NU__WS_RUNNING = 0,  /* running or runnable, no wake pending */
	NU__WS_PARKED = 1,   /* switched out, waiting for nu__proc_wake() */
	NU__WS_NOTIFIED = 2, /* woken before it finished parking */
};

/* Process flags (owner-written unless said otherwise). */
enum {
	NU__PF_MAIN = 1u << 0,     /* the node's main process */
	NU__PF_GUARDED = 1u << 1,  /* a spawn-time stack guard is installed */
	/* Set at spawn, read by the short ways of a wake and a send (one
	 * look at line 0 for what bind_sched, bind_group and mbox_limit
	 * would take three): */
	NU__PF_PINNED = 1u << 2,   /* bind_sched or bind_group >= 0 */
	NU__PF_BOUNDED = 1u << 3,  /* mbox_limit nonzero */
};

typedef struct nu__proc nu__proc;
struct nu__proc {
	/* Lines 0 to 2: what a message hop touches. A sender: the wake
	 * state, affinity for the ready queue, the bound, the mailbox's push
	 * ends; a switch: sp, sp_low, reductions, saved_errno; a receive:
	 * the mailbox. On a ring of 100,000 processes every line of the
	 * receiver is a miss, so the fewer lines the better: with sp_low,
	 * reductions and saved_errno in lines 3 and 4, a hop touched five
	 * (ring 100k 8.58 -> 8.99 M msg/s, ring 10k 24.1 -> 25.4, pingpong
	 * and call within 1%; alternating runs, medians of 5-11). */
	void *sp;                 /* saved stack pointer while switched out */
	struct nu__sched *sched;  /* scheduler that runs or last ran it */
	nu__proc *next;           /* intrusive link: inbox, global queue */
	nu_pid pid;
	int32_t bind_sched;       /* scheduler affinity, -1 = none */
	_Atomic int wstate;       /* NU__WS_* (see proc.c: parking) */
	_Atomic int pending;      /* NU__PS_*: act at the next resume */
	uint32_t mbox_limit;      /* bounded mailbox: 0 = unbounded */
	/* Where its sends go (mailbox.c, "Send hints"): the slot index + 1
	 * of its last send's receiver, and that receiver's own hint then;
	 * 0 = none. */
	uint32_t send_hint, send_hint2;
	int16_t bind_group;       /* node-group affinity, -1 = none */
	uint16_t flags;
	int saved_errno;
	_Alignas(64) nu__mailbox mailbox;
	uintptr_t sp_low;         /* deepest sp seen at a switch */
	uint64_t reductions;      /* charged so far, counted at switch-out */
	_Atomic int timed_out;    /* the armed timeout fired (timer.c) */
	_Atomic uint64_t wait_token; /* the wait a timer may end, 0 = none */
	nu_term kill_reason;      /* written before NU__PS_KILL is set */
	uint32_t index;           /* global slot index */
	nu_term reason;           /* exit reason */
	nu_fn fn;
	void *arg;
	char *stack_lo;           /* lowest usable stack byte */
	char *stack_hi;           /* one past the highest stack byte */
	int io_busy;              /* in an I/O wait: exits wait (io.c) */
	int io_fd;                /* a descriptor to close if we exit now */
	uintptr_t io_res_lo;      /* stack resident from here up (io.c) */
	void *asan_fake;          /* ASan fake-stack handle across switches */
	void *tsan_fiber;
	int mbox_policy;          /* nu_mailbox_policy */
	_Atomic uint32_t mbox_count; /* queued messages (bounded only) */
	_Atomic(struct nu__bwait *) mbox_waiters; /* senders waiting for room */
	void *dict;               /* process dictionary (dict.c), in the heap */
	_Atomic(struct nu__rel *) rels; /* relations pushed on us (relation.c) */
	_Atomic uint32_t rel_pushes; /* pushes since the last prune */
	_Atomic uint32_t prune_at; /* ask for a prune at this count */
	_Atomic int exiting;      /* past the point of taking `rels` */
	struct nu__rel **held;    /* relations we own (relation.c), malloc'd */
	uint32_t nheld, heldcap;
	_Atomic uint64_t call_watch; /* the call we wait in (call.c) */
	struct nu__open_call *calls; /* calls taken, not answered (call.c) */
	uint32_t ncalls, callscap;
	int trap_exit;            /* exit signals become messages (signal.c) */
	struct nu__msg *reason_msg; /* holds the reason a signal killed us */
	struct nu__msg *frags;    /* received messages' blocks (mailbox.c) */
	size_t frag_bytes;        /* their terms' bytes */
	struct nu__msg *handling; /* taken whole, being handled (otp/) */
	uint32_t heap_pages;      /* heap pages the fault path gave us */
	uint32_t heap_max;        /* heap page budget, 0 = the window */
	_Atomic nu_term reg_name; /* registered name (registry.c), 0 = none */
	nu__heap heap;
	/* A message of its own for an immediate or a small flat tuple sent
	 * to it while its park is deferred (mailbox.c, "Sends to a deferred
	 * park"): in use while its kind is not 0. Raw bytes: nu__msg ends in
	 * a flexible array. */
	_Alignas(16) unsigned char imsg[sizeof(struct nu__msg) +
					NU__IMSG_DATA];
};

/* Pid layout: bit 63 zero, bits 56..62 node (0 = local), bits 24..55 the
 * slot's generation (odd while the slot holds a live process), bits 0..23
 * the slot index. */
#define NU__PID_INDEX_BITS 24
#define NU__PID_MAX_INDEX ((1u << NU__PID_INDEX_BITS) - 1)

static inline nu_pid nu__pid_make(uint32_t index, uint32_t gen)
{
	return (nu_pid)(((uint64_t)gen << NU__PID_INDEX_BITS) | index);
}
static inline uint32_t nu__pid_index(nu_pid pid)
{
	return (uint32_t)((uint64_t)pid & NU__PID_MAX_INDEX);
}
static inline uint32_t nu__pid_gen(nu_pid pid)
{
	return (uint32_t)((uint64_t)pid >> NU__PID_INDEX_BITS);
}
static inline int nu__pid_is_local(nu_pid pid)
{
	return pid > 0 && ((uint64_t)pid >> 56) == 0;
}

/* Entry of every fresh process context (arch/ctx.h entry signature). */
void nu__proc_entry(void *sched, void *proc);

/* Make a parked process runnable again. Safe from any thread, idempotent:
 * a wake that arrives before the process finished parking is kept, so the
 * park returns at once. The caller must know p is still live (its slot not
 * reused), e.g. by holding it in a structure the exit path clears. */
void nu__proc_wake(nu__proc *p);
/* nu__proc_wake, but p queues behind what is runnable on this thread
 * instead of running next (I/O completions: first come, first served);
 * s: the calling thread's scheduler. */
void nu__proc_wake_tail(struct nu__sched *s, nu__proc *p);

/* Park the calling process until nu__proc_wake(). Returns the scheduler it
 * resumed on. Exits (does not return) when the process was killed. */
struct nu__sched *nu__proc_park(struct nu__sched *s);
/* nu__proc_park for a receive: parks on the mailbox's park word, so that
 * a push also wakes it (mailbox.c). The caller took every message pushed
 * so far; any wake returns, and the caller loops on its condition. */
struct nu__sched *nu__proc_park_mail(struct nu__sched *s);

/* nu__proc.pending bits: set by others, acted on by the process at its
 * next resume point (nu__proc_check_kill). */
enum {
	NU__PS_KILL = 1,  /* exit with kill_reason (shutdown) */
	NU__PS_MAIL = 2,  /* exit signals are queued in the mailbox */
	NU__PS_PRUNE = 4, /* prune the relation stack */
};

/* Set pending bits of p and wake it. p may have died and its slot been
 * reused: the bits then reach the slot's next process, for which they
 * are harmless (a spurious take or prune). */
void nu__proc_signal(nu__proc *p, int bits);

/* Shutdown: ask live process p to exit with reason at its next resume,
 * and wake it if parked. Caller guarantees p is live. */
void nu__proc_kill(nu__proc *p, nu_term reason);

/* Called by the scheduler context after p's final switch-out: return its
 * slot and account for its death. */
void nu__proc_reap(struct nu__sched *s, nu__proc *p);

/* Exit the calling process (does not return). */
_Noreturn void nu__proc_exit(struct nu__sched *s, nu__proc *p,
			     nu_term reason);

/* Act on what others asked of p (pending bits; exits when p was killed or
 * the node is stopping): every resume point calls this. The fast check is
 * two loads. */
void nu__proc_check_kill_slow(struct nu__sched *s, nu__proc *p);
#define nu__proc_check_kill(s, p)                                            \
	do {                                                                 \
		if (__builtin_expect(                                        \
			    atomic_load_explicit(&(p)->pending,              \
						 memory_order_relaxed) |     \
				    atomic_load_explicit(&(s)->stop,         \
							 memory_order_relaxed), \
			    0))                                              \
			nu__proc_check_kill_slow((s), (p));                  \
	} while (0)

/* The live-process count (proc.c): give back a scheduler's spare credits;
 * the exact count (sum over schedulers, not one snapshot). */
void nu__count_drain(struct nu__sched *s);

/* Release the exiting process's registered name, if any (registry.c). */
void nu__registry_exit(nu__proc *p);

/* At teardown, with no process left: free messages that stale senders
 * pushed into dead processes' mailboxes after those were drained. */
void nu__proc_drain_all(void);

/* Free what stale senders and watchers pushed into the control block of
 * free slot idx after its process drained it (messages, relation
 * records): the slot's pages are about to go back (mem.c). */
struct nu__mem;
void nu__proc_drain_slot(struct nu__mem *m, uint32_t idx);

/* Kill every live process of the node (shutdown). */
void nu__proc_kill_all(nu_term reason);

/* p's own message (nu__proc.imsg). */
static inline nu__msg *nu__proc_imsg(nu__proc *p)
{
	return (nu__msg *)(void *)p->imsg;
}

/* p's own message held a received term (a fragment on no list,
 * mailbox.c): the term is gone, the message free again. */
static inline void nu__proc_imsg_done(nu__proc *p)
{
	p->frag_bytes -= nu__proc_imsg(p)->size;
	nu__proc_imsg(p)->kind = 0;
}

/* nu_free(ptr) for p, the calling process (ptr not NULL): a block of its
 * heap, or a received message's (a fragment, mailbox.c; its own message
 * first, the common case of a ping-pong). Inline, so that nu_term_free()
 * of a received term is one call less. */
static inline void nu__proc_free(nu__proc *p, void *ptr)
{
	nu__msg *own = nu__proc_imsg(p);
	if (ptr == (void *)own->data && (own->kind & NU__MSG_FRAG))
		nu__proc_imsg_done(p);
	else if (nu__heap_owns(&p->heap, ptr))
		nu__heap_free(&p->heap, ptr);
	else
		nu__frag_put(p, ptr);
}

#endif
