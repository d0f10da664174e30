/* sched.h — private to nuproc: per-CPU schedulers. See sched.c. */
#ifndef NU_SCHED_H
#define NU_SCHED_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ctx.h"
#include "fiber.h"
#include "io/ring.h"
#include "mem.h"
#include "pool.h"
#include "proc.h"
#include "timer.h"

#define NU__RUNQ_SIZE 256u /* power of two */
#define NU__CACHELINE 64
#define NU__GROUP_MAX 256 /* schedulers per group (idle_mask bits) */

/* What the context that resumes next must do for the one that switched
 * out (see sched.c, "hand-off"). */
enum {
	NU__AFTER_NONE = 0,
	NU__AFTER_YIELD, /* requeue the process at the tail */
	NU__AFTER_PARK,  /* commit the park (or requeue if already woken) */
	NU__AFTER_PARK_MAIL, /* commit a park in a receive (mailbox word) */
	NU__AFTER_EXIT,  /* reap the process: its stack is no longer in use */
};

typedef struct nu__group nu__group;

/* Picks between the ring's polls while I/O is in flight (sched.c says why
 * 16; a power of two). */
#define NU__IO_POLL_TICKS 16u

typedef struct nu__sched {
	/* --- owner thread only --- */
	void *sp;               /* the scheduler context's saved sp */
	nu__proc *current;      /* process running now, NULL in the loop */
	nu__proc *runnext;      /* runs next; not stealable */
	uint64_t runnext_since; /* nu__tick() the streak's slice began
				 * (0: not yet) */
	uint64_t runnext_slice; /* its length in ticks */
	int after;              /* NU__AFTER_* for the resumed context */
	nu__proc *after_proc;
	nu_term *after_out;     /* with NU__AFTER_PARK_MAIL: the plain
				 * receive's out, or NULL (park_out) */
	nu__proc *park_lazy;    /* parked in a receive, commit deferred for
				 * one slice (sched.c); read by others only
				 * as a hint (nu_process_info) */
	nu_term *park_out;      /* while park_lazy is set: where a send the
				 * short way may put its message, NULL when
				 * it may not (mailbox.c, "Sends to a
				 * deferred park") */
	int32_t reds;           /* reductions left in this slice */
	int32_t budget;         /* reductions per slice (config) */
	_Atomic int stop;       /* the node is stopping (a copy of the node's
				 * flag on a line the owner reads anyway) */
	int64_t credits;        /* spare table entries (proc.c, the count) */
	int *errno_at;          /* this thread's errno: processes carry their
				 * own across switches (glibc declares
				 * __errno_location const, so a compiler may
				 * keep its result across a switch to another
				 * thread; the scheduler's copy is always
				 * the resuming thread's) */
	uint32_t tick;
	uint32_t lone_yields;   /* yields that found nothing else to run */
	uint32_t gq_countdown;  /* picks until the global queue goes first */
	uint32_t handoff_left;  /* hand-offs until the one that checks the
				 * rest (sched.c, "Hand-off checks"), >= 1
				 * between picks */
	struct nu__ovf_ent {    /* a process and its saved sp (rq_sp) */
		nu__proc *p;
		void *sp;
	} *ovf;                 /* run queue overflow, behind the ring: a */
	uint32_t ovf_cap;       /* growable circular array (a list would */
	uint32_t ovf_first;     /* cost a dependent cache miss per entry */
	uint32_t ovf_len;       /* to refill the ring) */
	uint64_t ref_next, ref_end; /* reference ids taken (term.c) */
	struct nu__block *blocks; /* free small blocks (block.c) */
	uint32_t nblocks;
	uint8_t block_tag;        /* its blocks' tag: id + 1, or 255 */
	int64_t blocks_made;      /* malloc'd here and not freed (block.c) */
	nu__proc *send_pf;        /* the last receiver prefetched (mailbox.c) */
	nu__proc *pinned_head;  /* processes bound to this scheduler */
	nu__proc *pinned_tail;
	int id;
	int cpu;
	nu__group *grp;
	nu__ring ring;
	nu__slot_cache slots;
	nu__timers timers;
	uint64_t decay_at;      /* the next busy decay step (sched.c), ticks */
	int decay_more;         /* the last step left some: the next is not
				 * a new period's first */
	uint64_t clock_at;      /* the pace (sched.c, "Clock pace"): the */
	uint64_t clock_span;    /* last reading, CLOCK_PACE_NS in ticks, */
	uint32_t clock_mask;    /* and which picks read the clock */
	void *asan_fake;        /* ASan fake stack of the loop context */
	void *fault_area;       /* signal stack + fault-exit stack (fault.c) */
	stack_t old_altstack;
	int crash_sig;          /* the isolated crash: signal and address, */
	uintptr_t crash_addr;   /* from the handler to the crash exit, and */
	_Alignas(16) unsigned char crash_buf[512]; /* its reason (crash.c) */
	void *tsan_fiber;       /* TSan fiber of the loop context */
	int spinning;           /* woken to look for work (group nspinning) */
	void *loop_stack_lo;    /* the thread's own stack (loop context) */
	size_t loop_stack_size;
	int io_inflight;        /* SQEs submitted or queued, CQE not seen */
	uint64_t spawns;        /* written by owner, read by nu_node_info */
	uint64_t steals;
	pthread_t thread;
	int started;

	/* --- run queue: owner pushes at tail; owner and thieves take from
	 * head with CAS (see sched.c) --- */
	_Alignas(NU__CACHELINE) _Atomic uint32_t rq_head;
	_Alignas(NU__CACHELINE) _Atomic uint32_t rq_tail;
	_Atomic(nu__proc *) rq[NU__RUNQ_SIZE];
	/* Owner only: the saved sp of each entry it queued (NULL: unknown),
	 * a prefetch hint read without touching the entry's process. */
	void *rq_sp[NU__RUNQ_SIZE];

	/* --- written by other threads --- */
	_Alignas(NU__CACHELINE) _Atomic(nu__proc *) inbox; /* LIFO of wake-ups */
	_Atomic int parked;     /* 1 while asleep (or about to be) in the ring */
	/* descriptors other threads want cancelled in our ring (nu_close) */
	atomic_flag io_req_lock;
	_Atomic unsigned io_nreq;
	int io_req_fd[16];
	/* its blocks given back elsewhere (block.c): chains of them, how
	 * many, and how many were freed there instead */
	_Alignas(NU__CACHELINE) _Atomic(struct nu__block *) blocks_back;
	_Atomic int64_t back_pending;
	_Atomic int64_t back_freed;

	/* --- owner only, off the hot lines: blocks of scheduler back_to
	 * given back here, not yet sent home (block.c) --- */
	_Alignas(NU__CACHELINE) struct nu__block *back_head, *back_tail;
	uint32_t back_n;
	int back_to;

	/* --- the record pool's cache (pool.c): owner only, but for reclaim
	 * --- */
	_Alignas(NU__CACHELINE) nu__pool_cache recs;
} nu__sched;

/* A NUMA node's schedulers. */
struct nu__group {
	int node_id;            /* libnuma node number */
	int first, count;       /* scheduler ids [first, first+count) */
	pthread_mutex_t gq_lock;/* global queue: overflow and node-bound work */
	nu__proc *gq_head, *gq_tail;
	_Atomic uint32_t gq_len;
	_Alignas(NU__CACHELINE) _Atomic int nparked;
	_Atomic int nspinning;
	_Atomic uint64_t idle_mask[4]; /* parked schedulers (bit = id - first) */
};

/* The calling thread's scheduler (NULL elsewhere). Not inlined on purpose:
 * a process may resume on another thread, and a compiler may keep the
 * thread pointer (hence a TLS address) across a call that switches. */
nu__sched *nu__sched_self(void);

/* The same, inline, for a function that reads it once, before any call
 * that can switch (nu_yield): nothing is left to cache. Initial-exec: the
 * library's objects are position-independent (meson's static default),
 * and the general-dynamic model made every read a call to
 * __tls_get_addr as far as the compiler knew (the linker relaxes it in
 * an executable, but the caller-saved registers were already spilled
 * around it): ~45 instructions a ping-pong round trip, ~38 a ring hop.
 * The cost: a shared object holding nuproc must be loaded at start-up,
 * or dlopen'ed while the static TLS surplus has 8 bytes left (glibc
 * keeps some for this). */
extern __thread nu__sched *nu__tls_sched
	__attribute__((visibility("hidden"), tls_model("initial-exec")));
static inline nu__sched *nu__sched_here(void)
{
	return nu__tls_sched;
}

/* nu_free(ptr) and nu_term_free()'s body: the calling process frees ptr,
 * not NULL (proc.h, nu__proc_free); outside a process, nothing. */
static inline void nu__free_here(void *ptr)
{
	nu__sched *s = nu__sched_here(); /* freeing never switches */
	if (s && s->current)
		nu__proc_free(s->current, ptr);
}

/* Prefetch, for writing, the n cache lines from p up (a process's control
 * block or stack top about to be touched: sched.c, mailbox.c). */
static inline void nu__prefetch_lines(const void *p, int n)
{
	for (int k = 0; k < n; k++)
		__builtin_prefetch((const char *)p + 64 * k, 1);
}

/* The scheduler thread body. */
void *nu__sched_main(void *arg);

/* Perform what the context that switched out asked for (s->after); the
 * first thing every resumed context does. */
void nu__sched_after_slow(nu__sched *s);
static inline void nu__sched_after(nu__sched *s)
{
	if (s->after || s->park_lazy)
		nu__sched_after_slow(s);
}

/* Make p runnable from scheduler s (s may be NULL on a foreign thread). */
void nu__sched_ready(nu__sched *s, nu__proc *p, int as_next);

/* 1 when p, bound nowhere, may be made s's runnext at once (what
 * nu__sched_ready(s, p, 1) then does): s's runnext is free. The flag is
 * spawn-time affinity; io.c's brief rebinding of a process that yields
 * does not set it, and a yielding process is never made runnable here
 * (only a receive's park is claimed, and the yield's own path reads
 * bind_sched). */
static inline int nu__runnext_free_for(const nu__sched *s,
				       const nu__proc *p)
{
	return !s->runnext && !(p->flags & NU__PF_PINNED);
}

/* Make p, whose receive park a push just claimed (mailbox.c), runnable
 * from s, the calling thread's scheduler (NULL: none). No wake state to
 * change: the claim was the exchange. The common case inline
 * (nu__runnext_free_for). */
static inline void nu__proc_ready_on(nu__sched *s, nu__proc *p)
{
	if (s && nu__runnext_free_for(s, p)) {
		s->runnext = p;
		return;
	}
	nu__sched_ready(s, p, 1);
}

/* If p is s's deferred park (sched.c), cancel it: 1 when p is then
 * runnable from s (the caller's push is what it waits for). */
static inline int nu__park_lazy_take(nu__sched *s, nu__proc *p)
{
	if (!s || s->park_lazy != p)
		return 0;
	__atomic_store_n(&s->park_lazy, NULL, __ATOMIC_RELAXED);
	nu__proc_ready_on(s, p);
	return 1;
}

/* Switch the calling process p out for reason `after` (NU__AFTER_*);
 * returns on the scheduler that resumed it. */
nu__sched *nu__sched_switch_out(nu__sched *s, nu__proc *p, int after);

/* Charge n reductions; yields when the budget is spent. Returns the
 * scheduler the process runs on afterwards. */
static inline nu__sched *nu__sched_charge(nu__sched *s, int n)
{
	s->reds -= n;
	if (s->reds > 0)
		return s;
	return nu__sched_switch_out(s, s->current, NU__AFTER_YIELD);
}

/* I/O was queued in s's ring (owner thread): a streak of hand-offs polls
 * the ring every NU__IO_POLL_TICKS from now on, as the other picks do
 * (sched.c, "Hand-off checks"). */
static inline void nu__sched_io_queued(nu__sched *s)
{
	if (s->handoff_left > NU__IO_POLL_TICKS)
		s->handoff_left = NU__IO_POLL_TICKS;
}

/* Wake every parked scheduler (shutdown, last exit). */
void nu__sched_kick_all(nu__sched *from);

/* Free s's run queue overflow array (node teardown). */
void nu__sched_free_ovf(nu__sched *s);

/* Wake scheduler t if it is parked; from is the caller's scheduler or NULL. */
void nu__sched_kick(nu__sched *from, nu__sched *t);

/* ------------------------------------------------- the hand-off park */

/* Switch from p, the current process of s, to q: s runs q from here.
 * Returns the scheduler p resumes on. fake: where ASan keeps p's fake
 * stack (NULL when p exits). */
static inline __attribute__((always_inline)) nu__sched *
nu__sched_switch_to(nu__sched *s, nu__proc *p, nu__proc *q, void **fake)
{
	s->current = q;
	__atomic_store_n(&q->sched, s, __ATOMIC_RELAXED); /* (mailbox.c) */
	s->reds = s->budget;
	nu__fiber_leave(fake, q->stack_lo, (size_t)(q->stack_hi - q->stack_lo));
	nu__fiber_tsan_switch(q->tsan_fiber);
	return nu__ctx_swap(&p->sp, q->sp, s);
}

/* p's slice ends: its reductions so far are counted in (nu_process_info
 * reads them, from any thread). */
static inline __attribute__((always_inline)) void
nu__sched_account(nu__sched *s, nu__proc *p)
{
	__atomic_store_n(&p->reductions,
			 p->reductions + (uint64_t)(s->budget - s->reds),
			 __ATOMIC_RELAXED);
}

/* What p keeps of its thread across a switch: the deepest stack seen
 * (its caller's frame: always inline; mem.c judges the slot by it) and
 * errno. */
static inline __attribute__((always_inline)) void
nu__sched_save(nu__sched *s, nu__proc *p)
{
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);
	if (here < p->sp_low)
		p->sp_low = here;
	p->saved_errno = *s->errno_at;
}

/* Perform what the context that switched out asked for, on a resume
 * (sched.c, after_fast), and commit the receive park of p (sched.c). */
void nu__sched_after_resume(nu__sched *s);
void nu__sched_park_commit_mail(nu__sched *s, nu__proc *p);

/* The context that switched out parked in a receive: its park waits for
 * this slice to end (sched.c, "Deferred park"); one deferred before it
 * is committed now. */
static inline __attribute__((always_inline)) void
nu__sched_defer_park(nu__sched *s)
{
	nu__proc *lazy = s->park_lazy;
	s->after = NU__AFTER_NONE;
	s->park_out = s->after_out;
	__atomic_store_n(&s->park_lazy, s->after_proc, __ATOMIC_RELAXED);
	if (lazy)
		nu__sched_park_commit_mail(s, lazy);
}

/* May s hand the CPU straight to its runnext (sched.c, sched_pick's
 * first case): one is set, no bound process waits, nothing in the inbox.
 * Whether a hand-off check is due is the caller's to look at. */
static inline __attribute__((always_inline)) int
nu__sched_handoff_open(nu__sched *s)
{
	return s->runnext && !s->pinned_head &&
	       !atomic_load_explicit(&s->inbox, memory_order_relaxed);
}

/* nu__proc_park_mail for nu_receive, with a hand-off's switch inline in
 * the caller's frame. When s's next is set and no check is due (the
 * cases of sched.c's inline pick that hand the CPU straight to runnext,
 * and no early wake), p's state is saved, its park deferred and runnext
 * run, as switch_out does for them; everything else goes through
 * nu__proc_park_mail. The switch clobbers every callee-saved register
 * but rbp (ctx.h), so the function it sits in saves them: in
 * nu__proc_park_mail's own frame it was a second frame of five saved
 * registers on every park, behind nu_receive's. Pingpong 632 -> 591
 * instructions a round trip, atom ping-pong 540 -> 504 (callgrind).
 * out: where a send the short way may put its message while this park is
 * deferred (nu_receive's, which set *out to NU_NONE; mailbox.c, "Sends to
 * a deferred park"). */
static inline __attribute__((always_inline)) nu__sched *
nu__proc_park_mail_inline(nu__sched *s, nu_term *out)
{
	nu__proc *p = s->current, *q = s->runnext;
	if (!nu__sched_handoff_open(s) ||
	    s->handoff_left == 1 ||
	    atomic_load_explicit(&p->wstate, memory_order_relaxed) ==
		    NU__WS_NOTIFIED)
		return nu__proc_park_mail(s);
	s->handoff_left--;
	s->runnext = NULL;
	nu__sched_account(s, p);
	nu__sched_save(s, p);
	s->after = NU__AFTER_PARK_MAIL;
	s->after_proc = p;
	s->after_out = out;
	nu__sched *r = nu__sched_switch_to(s, p, q, &p->asan_fake);
	nu__fiber_arrive(p->asan_fake);
	if (r->after == NU__AFTER_PARK_MAIL)
		nu__sched_defer_park(r);
	else
		nu__sched_after_resume(r);
	*r->errno_at = p->saved_errno;
	nu__proc_check_kill(r, p);
	return r;
}

#endif
