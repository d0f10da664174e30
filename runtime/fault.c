/* fault.c — the userfaultfd fault path (issue 4): lazy population,
 * per-process accounting and limits, overflow detection.
 *
 * Entities
 *   uffd      one userfaultfd per node, opened with UFFD_FEATURE_SIGBUS;
 *             every region's slot and far reservations are registered once
 *             in missing mode (two VMAs per NUMA node, whatever the process
 *             count: vm.max_map_count never limits it).
 *   fault     a touch of a missing page in a registered range raises
 *             SIGBUS on the touching thread (no handler thread: DESIGN §4
 *             measured 80-200 us for a fault served across CPUs, 3-6 us
 *             served in place). The handler, on the scheduler's sigaltstack,
 *             maps the address to its slot and window in O(1) (region
 *             bounds, then a division), checks the budget of the process
 *             that owns the slot when that process is the one running, and
 *             resolves with one UFFDIO_COPY of a batch of zero pages (the
 *             node's `batch`, clipped to the window and the budget; the
 *             stack's batch extends downwards, the heap's upwards).
 *   resident  per slot, pages the fault path populated minus what release
 *             gave back (an array beside the process table, never in the
 *             registered ranges), and per region the sum.
 *   prefault  a slot taken cold (mem.c: carved, or from the cold list)
 *             gets its page P with one UFFDIO_COPY before the spawn
 *             writes it, charged as a fault's. The spawn would fault there
 *             at once, and a fault here costs several times a copy: the
 *             kernel allocates and clears a page before it sees the range
 *             is ours, drops it, raises SIGBUS, and the handler copies
 *             (idle 1M: 6.1-9.4 -> 2.7-5.6 us per process). Warm slots
 *             never come here: the spawn's hot path is untouched.
 *
 * Limits. A fault on the running process's own heap window past its page
 * budget (spawn option max_heap, node default), or on its stack guard,
 * is not resolved: the handler rewrites the interrupted context so that,
 * when the handler returns, the thread continues on the scheduler's fault
 * stack in fault_exit(), which ends the process with heap_limit or
 * stack_overflow through the normal exit path (links, monitors and names
 * see it) and switches to the next process. The kernel's sigreturn restores
 * the signal mask, so nothing is left blocked. Stack guards installed with
 * MADV_GUARD_INSTALL raise SIGSEGV, handled the same way; without them the
 * guard page is a missing page like any other and SIGBUS recognises it.
 *
 * Faults that are not ours (outside the regions, or no node running) go to
 * crash isolation (crash.c, SIGSEGV only: it may end just the running
 * process the same way), then to the handler that was installed before
 * ours, or to the default action, which re-raises when the instruction
 * runs again.
 *
 * Rejected: a fault-handling thread (a cross-CPU round trip per fault), a
 * per-slot registration or mprotect guard (a VMA each), UFFDIO_ZEROPAGE
 * (maps the zero page read-only: the first write faults again).
 */
#include "fault.h"
#include "io/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "crash.h"
#include "fiber.h"
#include "node.h"
#include "proc.h"
#include "sched.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

#define BATCH_MAX 64u
#define FAULT_STACK (64u << 10)
#define ALT_STACK (32u << 10)

/* The node whose regions the handlers serve (one node per OS process). */
static nu__mem *_Atomic fault_mem;
static struct sigaction old_bus, old_segv;
static int handlers_installed;
static const char *zeros; /* BATCH_MAX zero pages: UFFDIO_COPY's source */
static nu_term reason_heap, reason_stack;

/* ------------------------------------------------------------ setup */

static int uffd_open(void)
{
	int flags = O_CLOEXEC | O_NONBLOCK;
	int fd = (int)syscall(SYS_userfaultfd, flags);
	if (fd < 0 && errno == EPERM) /* unprivileged: user faults only */
		fd = (int)syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
	if (fd < 0) {
		int err = errno;
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev >= 0) {
			fd = nu__sys_ioctl(dev, USERFAULTFD_IOC_NEW,
					   (void *)(uintptr_t)flags);
			err = errno;
			nu__sys_close(dev);
		}
		if (fd < 0)
			return -err;
	}
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_SIGBUS };
	if (nu__sys_ioctl(fd, UFFDIO_API, &api)) {
		int err = errno;
		nu__sys_close(fd);
		return -err;
	}
	return fd;
}

static int uffd_register(int fd, void *base, size_t len)
{
	struct uffdio_register reg = {
		.range = { (uintptr_t)base, len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	return nu__sys_ioctl(fd, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

static void on_fault(int sig, siginfo_t *si, void *uc);

static int install_handlers(void)
{
	if (handlers_installed)
		return 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &old_bus) || sigaction(SIGSEGV, &sa, &old_segv))
		return -errno;
	handlers_installed = 1;
	return 0;
}

static void say_fallback(const char *why)
{
	static _Atomic int said; /* once per OS process, not per node */
	if (atomic_exchange(&said, 1))
		return;
	fprintf(stderr, "nuproc: userfaultfd %s; process memory is plain "
			"anonymous memory (limits by allocator accounting)\n",
		why);
}

/* No userfaultfd: the handlers still turn a guard hit into
 * stack_overflow. */
static int fallback(nu__mem *m)
{
	int rc = install_handlers();
	if (!rc)
		atomic_store(&fault_mem, m);
	return rc;
}

int nu__fault_init(nu__mem *m, unsigned batch)
{
	m->uffd = -1;
	m->batch = batch < 1 ? 1 : batch > BATCH_MAX ? BATCH_MAX : batch;
	reason_heap = nu_atom("heap_limit");
	reason_stack = nu_atom("stack_overflow");
	const char *env = getenv("NUPROC_UFFD");
	int forced = env && strcmp(env, "1") == 0;
	if (env && strcmp(env, "0") == 0) {
		say_fallback("disabled by NUPROC_UFFD=0");
		return fallback(m);
	}
	if (!zeros) {
		void *z = mmap(NULL, BATCH_MAX * m->page, PROT_READ,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (z == MAP_FAILED)
			return -ENOMEM;
		zeros = z;
	}
	int fd = uffd_open();
	int rc = fd < 0 ? fd : 0;
	for (unsigned i = 0; !rc && i < m->nregions; i++) {
		nu__region *r = &m->regions[i];
		rc = uffd_register(fd, r->base, r->len);
		if (!rc)
			rc = uffd_register(fd, r->far, r->far_len);
	}
	if (rc) {
		if (fd >= 0)
			nu__sys_close(fd);
		if (forced)
			return rc;
		char why[96];
		snprintf(why, sizeof(why), "refused (%s)", strerror(-rc));
		say_fallback(why);
		return fallback(m);
	}
	m->uffd = fd;
	rc = install_handlers();
	atomic_store(&fault_mem, m);
	return rc;
}

void nu__fault_fini(nu__mem *m)
{
	nu__mem *exp = m;
	atomic_compare_exchange_strong(&fault_mem, &exp, NULL);
	if (m->uffd >= 0)
		nu__sys_close(m->uffd); /* unregisters the ranges */
	m->uffd = -1;
}

int nu__fault_thread_init(nu__sched *s)
{
	char *alt = mmap(NULL, ALT_STACK + FAULT_STACK, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (alt == MAP_FAILED)
		return -ENOMEM;
	stack_t ss = { .ss_sp = alt, .ss_size = ALT_STACK, .ss_flags = 0 };
	if (sigaltstack(&ss, &s->old_altstack)) {
		munmap(alt, ALT_STACK + FAULT_STACK);
		return -errno;
	}
	s->fault_area = alt;
	return 0;
}

void nu__fault_thread_fini(nu__sched *s)
{
	if (!s->fault_area)
		return;
	sigaltstack(&s->old_altstack, NULL);
	munmap(s->fault_area, ALT_STACK + FAULT_STACK);
	s->fault_area = NULL;
}

/* ------------------------------------------------------- accounting */

uint32_t nu__fault_resident(const nu__mem *m, uint32_t idx)
{
	return m->resident ? atomic_load_explicit(&m->resident[idx],
						  memory_order_relaxed)
			   : 0;
}

void nu__fault_released(nu__mem *m, uint32_t idx, int full)
{
	if (m->uffd < 0)
		return;
	uint32_t keep = full ? 0 : 1; /* P stays */
	uint32_t was = atomic_exchange_explicit(&m->resident[idx], keep,
						memory_order_relaxed);
	nu__region *r = &m->regions[nu__slot_region(m, idx)];
	if (was > keep)
		atomic_fetch_sub_explicit(&r->pages, was - keep,
					  memory_order_relaxed);
}

static void charge(nu__mem *m, uint32_t idx, uint32_t pages)
{
	atomic_fetch_add_explicit(&m->resident[idx], pages,
				  memory_order_relaxed);
	atomic_fetch_add_explicit(&m->regions[nu__slot_region(m, idx)].pages,
				  pages, memory_order_relaxed);
}

/* ------------------------------------------------------- the fault */

/* Where a fault address lies. */
typedef struct {
	uint32_t idx;
	int kind;             /* W_* */
	uintptr_t lo, hi;     /* the window's bounds */
} where;

enum { W_NONE, W_GUARD, W_STACK, W_P, W_NEAR, W_FAR };

static where locate(const nu__mem *m, uintptr_t a)
{
	for (unsigned i = 0; i < m->nregions; i++) {
		const nu__region *r = &m->regions[i];
		uintptr_t b = (uintptr_t)r->base, f = (uintptr_t)r->far;
		if (a - b < r->len) {
			size_t k = (a - b) / m->slot_size;
			uintptr_t s = b + k * m->slot_size;
			uintptr_t p = s + m->page + m->stack_size;
			where w = { r->first + (uint32_t)k, W_NEAR, p + m->page,
				    s + m->slot_size };
			if (a < s + m->page)
				w = (where){ w.idx, W_GUARD, s, s + m->page };
			else if (a < p)
				w = (where){ w.idx, W_STACK, s + m->page, p };
			else if (a < p + m->page)
				w = (where){ w.idx, W_P, p, p + m->page };
			return w;
		}
		if (a - f < r->far_len) {
			size_t k = (a - f) / m->far_size;
			uintptr_t lo = f + k * m->far_size;
			return (where){ r->first + (uint32_t)k, W_FAR, lo,
					lo + m->far_size };
		}
	}
	return (where){ 0, W_NONE, 0, 0 };
}

/* Copy zero pages into [lo, hi); the pages copied (>= 1 when the first
 * page was missing), 0 when it was present already, or -errno. */
static long copy_zero(int fd, size_t page, uintptr_t lo, uintptr_t hi)
{
	for (;;) {
		struct uffdio_copy c = { .dst = lo, .src = (uintptr_t)zeros,
					 .len = hi - lo, .mode = 0 };
		if (!nu__sys_ioctl(fd, UFFDIO_COPY, &c))
			return (long)((size_t)c.copy / page);
		if (errno == EAGAIN && c.copy <= 0)
			continue;
		if (c.copy > 0)
			return (long)((size_t)c.copy / page);
		return errno == EEXIST ? 0 : -errno;
	}
}

/* Populate the page at a (in window w) and a batch around it; 0 or
 * -errno. budget: pages the batch may take (>= 1). */
static int populate(nu__mem *m, const where *w, uintptr_t a, uint32_t budget)
{
	uintptr_t pg = a & ~(uintptr_t)(m->page - 1);
	uintptr_t n = m->batch < budget ? m->batch : budget;
	uintptr_t lo = pg, hi = pg + n * m->page;
	if (w->kind == W_STACK) { /* grows down */
		hi = pg + m->page;
		lo = pg - w->lo >= (n - 1) * m->page ? pg - (n - 1) * m->page
						      : w->lo;
	} else if (hi > w->hi || hi < pg) {
		hi = w->hi;
	}
	long got = copy_zero(m->uffd, m->page, lo, hi);
	if (got >= 0 && lo != pg && (uintptr_t)got * m->page < hi - lo) {
		/* an existing page below stopped the copy short of ours */
		long one = copy_zero(m->uffd, m->page, pg, pg + m->page);
		got = one < 0 ? one : got + one;
	}
	if (got < 0)
		return (int)got;
	if (got)
		charge(m, w->idx, (uint32_t)got);
	return 0;
}

/* The running process dies of reason (called on the fault stack). */
static void fault_exit(uintptr_t reason)
{
	nu__sched *s = nu__sched_self();
	nu__proc_exit(s, s->current, (nu_term)reason);
}

/* Where a redirected thread resumes, on the fault stack: ASan learns that
 * it left the process's stack for good (no false report from the frames
 * it abandoned), then fn(arg) ends the process. */
static void fault_entry(void (*fn)(uintptr_t), uintptr_t arg)
{
	nu__sched *s = nu__sched_self();
	nu__fiber_leave(NULL, (char *)s->fault_area + ALT_STACK, FAULT_STACK);
	nu__fiber_arrive(NULL);
	fn(arg);
	__builtin_trap(); /* fn does not return */
}

void nu__fault_redirect(void *ucv, nu__sched *s, void (*fn)(uintptr_t),
			uintptr_t arg)
{
	ucontext_t *uc = ucv;
	char *lo = (char *)s->fault_area + ALT_STACK;
	uintptr_t top = ((uintptr_t)lo + FAULT_STACK) & ~(uintptr_t)15;
	/* the last exit's frames left their poison behind (they never
	 * returned): clear it, ASan would take it for this exit's overflow */
	nu__fiber_unpoison(lo, FAULT_STACK);
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RSP] = (greg_t)(top - 8); /* as if called */
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)fault_entry;
	uc->uc_mcontext.gregs[REG_RDI] = (greg_t)(uintptr_t)fn;
	uc->uc_mcontext.gregs[REG_RSI] = (greg_t)arg;
#elif defined(__aarch64__)
	uc->uc_mcontext.sp = top;
	uc->uc_mcontext.pc = (uintptr_t)fault_entry;
	uc->uc_mcontext.regs[0] = (uintptr_t)fn;
	uc->uc_mcontext.regs[1] = arg;
	uc->uc_mcontext.regs[30] = 0;
#else
#error "nu__fault_redirect: unsupported architecture"
#endif
}

/* Make the interrupted thread continue in fault_exit(reason) on the
 * scheduler's fault stack when the handler returns. */
static void redirect(ucontext_t *uc, nu__sched *s, nu_term reason)
{
	nu__fault_redirect(uc, s, fault_exit, (uintptr_t)reason);
}

/* Our part of a fault: 1 handled (resolved or redirected), 0 not ours. */
static int handle(int sig, uintptr_t a, ucontext_t *uc)
{
	nu__mem *m = atomic_load_explicit(&fault_mem, memory_order_acquire);
	if (!m)
		return 0;
	where w = locate(m, a);
	if (w.kind == W_NONE)
		return 0;
	nu__sched *s = nu__sched_self();
	nu__proc *cur = s ? s->current : NULL;
	int own = cur && cur->index == w.idx && s->fault_area;
	int below = own && w.kind == W_STACK && a < (uintptr_t)cur->stack_lo;
	if (own && (w.kind == W_GUARD || below)) {
		redirect(uc, s, reason_stack);
		return 1;
	}
	if (sig != SIGBUS || m->uffd < 0 || w.kind == W_GUARD)
		return 0;
	uint32_t budget = UINT32_MAX;
	if (own && (w.kind == W_NEAR || w.kind == W_FAR) && cur->heap_max) {
		uint32_t used = cur->heap_pages +
				(uint32_t)(cur->frag_bytes / m->page);
		if (used >= cur->heap_max) {
			redirect(uc, s, reason_heap);
			return 1;
		}
		budget = cur->heap_max - used;
	}
	uint32_t before = nu__fault_resident(m, w.idx);
	if (populate(m, &w, a, budget) < 0)
		return 0; /* cannot resolve: let the default action report */
	if (own && (w.kind == W_NEAR || w.kind == W_FAR))
		cur->heap_pages += nu__fault_resident(m, w.idx) - before;
	return 1;
}

void nu__fault_chain(const struct sigaction *old, int sig, siginfo_t *si,
		     void *uc)
{
	if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
		old->sa_sigaction(sig, si, uc);
		return;
	}
	if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
		old->sa_handler(sig);
		return;
	}
	if (old->sa_handler == SIG_IGN && si->si_code <= 0)
		return; /* sent (kill, raise), and ignored before we came */
	signal(sig, SIG_DFL); /* a fault recurs: the instruction runs again */
	if (si->si_code <= 0)
		raise(sig); /* a sent signal would not */
}

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	if (!handle(sig, (uintptr_t)si->si_addr, uc) &&
	    !(sig == SIGSEGV && nu__crash_isolate(sig, si, uc)))
		nu__fault_chain(sig == SIGBUS ? &old_bus : &old_segv, sig, si,
				uc);
	errno = saved;
}

/* ------------------------------------------------------ fresh slots */

int nu__fault_prefault_p(nu__mem *m, uint32_t idx)
{
	if (m->uffd < 0)
		return 0;
	uintptr_t p = (uintptr_t)nu__slot_page(m, idx);
	long got = copy_zero(m->uffd, m->page, p, p + m->page);
	if (got > 0)
		charge(m, idx, (uint32_t)got);
	return got < 0 ? (int)got : 0;
}

/* ---------------------------------------------------- kernel writes */

int nu__mem_populate(void *addr, size_t len)
{
	nu__node *n = nu__node_get();
	if ((!addr && len) || len > UINTPTR_MAX - (uintptr_t)addr)
		return -EINVAL;
	if (!n || n->mem.uffd < 0 || !len)
		return 0;
	nu__mem *m = &n->mem;
	uintptr_t a = (uintptr_t)addr & ~(uintptr_t)(m->page - 1);
	uintptr_t end = (uintptr_t)addr + len;
	for (; a < end; a += m->page) {
		/* a touch takes the fault path (budget, accounting) only
		 * where the page is missing; the byte touched is in the
		 * range (the bytes before it may be poisoned for ASan) */
		volatile char *c = (volatile char *)(a < (uintptr_t)addr
							  ? (uintptr_t)addr : a);
		if (locate(m, a).kind != W_NONE)
			*c = *c;
	}
	return 0;
}

int nu_mem_populate(void *addr, size_t len)
{
	return nu__mem_populate(addr, len);
}

/* ------------------------------------------------------- reporting */

/* Resident bytes of live process p, estimated (the fallback mode): P,
 * the stack down to its deepest switch, the heap windows' high-water
 * marks. */
static size_t estimate(const nu__mem *m, const nu__proc *p)
{
	uintptr_t pg = (uintptr_t)p->stack_hi - NU__P_STACK_TOP;
	size_t stack = p->sp_low < pg ? pg - (p->sp_low & ~(m->page - 1)) : 0;
	uintptr_t near = nu__heap_top(&p->heap);
	size_t heap = near > pg + m->page ? near - pg - m->page : 0;
	heap += nu__heap_far_top(&p->heap) - (uintptr_t)p->heap.win[1].base;
	return m->page + stack + ((heap + m->page - 1) & ~(m->page - 1));
}

/* A snapshot of p's state; racy by nature (it may change as we look). */
static nu_proc_state proc_state(const nu__proc *p)
{
	if (atomic_load_explicit(&p->exiting, memory_order_relaxed))
		return NU_PROC_EXITING;
	if (atomic_load_explicit(&p->wstate, memory_order_relaxed) ==
		    NU__WS_PARKED ||
	    nu__mailbox_asleep(&p->mailbox))
		return NU_PROC_WAITING;
	const nu__sched *s = p->sched;
	if (s && __atomic_load_n(&s->park_lazy, __ATOMIC_RELAXED) == p)
		return NU_PROC_WAITING; /* its park's commit is deferred */
	if (s && __atomic_load_n(&s->current, __ATOMIC_RELAXED) == p)
		return NU_PROC_RUNNING;
	return NU_PROC_RUNNABLE;
}

int nu_process_info(nu_pid pid, nu_proc_info *info)
{
	int alive = nu_is_alive(pid);
	if (alive < 0)
		return alive == -ESRCH ? -ESRCH : -EINVAL;
	if (!info)
		return -EINVAL;
	if (!alive)
		return -ESRCH;
	nu__mem *m = &nu__node_get()->mem;
	nu__proc *p = nu__slot_proc(m, nu__pid_index(pid));
	nu_proc_info o;
	memset(&o, 0, sizeof(o));
	if (m->uffd >= 0) {
		o.resident_bytes = (size_t)nu__fault_resident(m, p->index) *
				   m->page;
		o.heap_pages_bytes = (size_t)p->heap_pages * m->page;
	} else {
		o.resident_bytes = estimate(m, p);
	}
	o.heap_limit = (size_t)p->heap_max * m->page;
	o.mailbox_len = p->mailbox.lane[0].len + p->mailbox.lane[1].len;
	nu__sched *s = p->sched;
	o.scheduler = s ? s->id : -1;
	o.state = proc_state(p);
	o.reductions = __atomic_load_n(&p->reductions, __ATOMIC_RELAXED);
	nu__sched *self = nu__sched_self();
	if (self && self->current == p) /* ourselves: and this slice's */
		o.reductions += (uint64_t)(self->budget - self->reds);
	if (nu_is_alive(pid) != 1) /* ended meanwhile: the figures may be
				      the slot's next process's */
		return -ESRCH;
	*info = o;
	return 0;
}

int64_t nu_node_resident(int node)
{
	nu__node *n = nu__node_get();
	if (!n)
		return -ESRCH;
	for (unsigned i = 0; i < n->mem.nregions; i++)
		if (n->mem.regions[i].node_id == node)
			return n->mem.uffd < 0
				       ? -EOPNOTSUPP
				       : (int64_t)(atomic_load(
							   &n->mem.regions[i].pages) *
						   n->mem.page);
	return -EINVAL;
}
