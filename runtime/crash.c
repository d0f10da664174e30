/* crash.c — crash isolation (issue 4, item 7; opt-in: nu_config's
 * crash_isolation or NUPROC_CRASH_ISOLATION=1): a process that crashes in
 * its own code ends alone, as a process that overflows its stack does.
 *
 * Entities
 *   crash    SIGSEGV, SIGFPE, SIGILL or SIGABRT raised for the thread's own
 *            doing: si_code > 0 (the kernel's, for the faulting
 *            instruction), or for SIGABRT, SI_TKILL from this OS process
 *            (abort() raising it on its own thread). A kill(2) from
 *            outside is never a crash: it goes on to the previous handler
 *            or the default action as it always did.
 *   process code  where the crash happened, judged from the interrupted
 *            context: the thread is a scheduler with a process running
 *            (s->current), the stack pointer lies in that process's stack
 *            window, and the faulting PC is not runtime code. Runtime code
 *            is one address range: meson.build renames the code sections
 *            of the library's objects to `nuproc_text`, which the linker
 *            brackets with __start_nuproc_text/__stop_nuproc_text. One
 *            comparison, nothing to maintain by hand, and no cost on any
 *            fast path (a counter of "inside the runtime" sections would
 *            cost every runtime call).
 *   reason   {signal, Name, Address}: Name the signal's atom ('SIGSEGV',
 *            'SIGFPE', 'SIGILL', 'SIGABRT'), Address si_addr as an integer
 *            (the faulting data address for SIGSEGV, the instruction for
 *            SIGFPE and SIGILL), 0 for SIGABRT.
 *
 * The path. The handler (on the scheduler's signal stack: SIGSEGV through
 * fault.c after the userfaultfd path declined it, the three others here)
 * only records the signal and the address in the scheduler and rewrites the
 * interrupted context with fault.c's nu__fault_redirect, so the thread
 * continues in crash_exit() on the fault stack, in normal context, which
 * builds the reason and ends the process through nu__proc_exit: links and
 * monitors see the reason, the scheduler picks the next process. The
 * reason is built in a buffer of the scheduler, not in the process's heap
 * (which may be full or the very thing that was corrupted): it must last
 * until the exit has copied it into its signals and the reap has read it,
 * both done on this thread before it runs any other process, so before a
 * second crash could overwrite it. The atoms are made at node start (an
 * atom lookup may take a lock).
 *
 * A crash that is not process code (in the runtime, in the scheduler's
 * loop, in a signal handler) is reported on stderr — the signal, address,
 * PC, scheduler and the pid of the process running, then a backtrace —
 * and passed on to the previous handler (ASan's, say) or the default
 * action: the OS process dies of it as it would without isolation. The
 * report uses write(2) and backtrace_symbols_fd only (the unwinder is
 * loaded at node start, not in the handler), once per OS process.
 *
 * Limits (what isolation cannot know).
 *   - The rule judges the faulting instruction, not who called it: a
 *     crash in library code (libc's memcpy, say) is taken for the
 *     process's own, also when the runtime made the call: nu_binary(bad,
 *     n) ends just the process (its memcpy reads the bad buffer before
 *     anything is shared). A fault inside a libc call the runtime makes
 *     while it holds one of its locks (pthread_mutex_lock on a corrupted
 *     mutex) would be misjudged the same way: that needs runtime state
 *     already corrupted, which isolation does not claim to survive. So is
 *     an abort() the runtime calls (raise is libc's): the one reachable
 *     while a process runs is heap.c's check of the process's own heap,
 *     which goes with the process. A callback the runtime calls
 *     (nu_receive_if's predicate) is process code too.
 *   - A lock the process held in a library (malloc's arena lock, a FILE
 *     lock, its own mutex) stays held: a later use by anyone deadlocks.
 *     Memory the process allocated with malloc leaks, and a corrupted
 *     malloc heap stays corrupted. Isolation keeps the node going after a
 *     bug in a process; it does not make the process's side effects safe.
 *   - SIGBUS (a truncated file mapping, misalignment on some CPUs) is not
 *     isolated: fault.c passes on the ones it does not own, as before.
 *   - Built with LTO or without objcopy the library has no text range:
 *     nu_start refuses crash_isolation with -ENOTSUP rather than guess.
 *     Code GCC puts in other sections (.text.startup, ASan's module
 *     constructors) is outside the range: start-up code, no process runs.
 *   - Under ASan (whose handlers were installed first) an isolated crash
 *     is never seen by ASan; any other is reported by us, then by ASan.
 *
 * Rejected: siglongjmp out of the handler to a per-process jump buffer (a
 * setjmp on every process entry, and it unwinds nothing more than the
 * redirect does); a guard counter raised by every runtime entry (a cost on
 * every call, and a crash in code that forgets it is misjudged); walking
 * frame pointers to find a runtime caller (libc is built without them:
 * garbage chains).
 */
#include "crash.h"
#include "io/sys.h"

#include <errno.h>
#include <execinfo.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "fault.h"
#include "proc.h"
#include "sched.h"
#include "term.h"

/* The runtime's code (see meson.build). Weak: a library built without the
 * renamed sections still links, and refuses isolation. */
extern const char __start_nuproc_text[] __attribute__((weak));
extern const char __stop_nuproc_text[] __attribute__((weak));

#define NSIG_CRASH 4
#define BACKTRACE_MAX 64

/* The crash signals; [0] is SIGSEGV, whose handler is fault.c's. */
static const int crash_sigs[NSIG_CRASH] = { SIGSEGV, SIGFPE, SIGILL,
					     SIGABRT };
static const char *const crash_names[NSIG_CRASH] = { "SIGSEGV", "SIGFPE",
						     "SIGILL", "SIGABRT" };
static nu_term name_atoms[NSIG_CRASH], signal_atom;
static struct sigaction old_act[NSIG_CRASH]; /* [0] unused */
static int installed;
static _Atomic int crash_on;
static _Atomic int reported;

static int sig_index(int sig)
{
	for (int i = 0; i < NSIG_CRASH; i++)
		if (crash_sigs[i] == sig)
			return i;
	return -1;
}

/* ------------------------------------------------------- the exit */

/* {signal, Name, Address} in s's reason buffer. */
static nu_term crash_reason(nu__sched *s)
{
	nu__heap h;
	nu__heap_init(&h, s->crash_buf, sizeof(s->crash_buf));
	int i = sig_index(s->crash_sig);
	nu_term el[3] = { signal_atom, i < 0 ? NU_ATOM_UNDEFINED : name_atoms[i],
			  nu__uint64_in(&h, s->crash_addr) };
	nu_term t = nu__tuplev_in(&h, 3, el);
	return t == NU_NONE ? el[1] : t; /* cannot fail: the buffer fits */
}

/* Where the crashed thread continues (fault stack, normal context). */
static void crash_exit(uintptr_t unused)
{
	(void)unused;
	nu__sched *s = nu__sched_self();
	nu__proc_exit(s, s->current, crash_reason(s));
}

/* ----------------------------------------------------- the decision */

static uintptr_t ctx_pc(const ucontext_t *uc)
{
#if defined(__x86_64__)
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
	return (uintptr_t)uc->uc_mcontext.pc;
#else
#error "crash.c: unsupported architecture"
#endif
}

static uintptr_t ctx_sp(const ucontext_t *uc)
{
#if defined(__x86_64__)
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#else
	return (uintptr_t)uc->uc_mcontext.sp;
#endif
}

static int in_runtime(uintptr_t pc)
{
	uintptr_t lo = (uintptr_t)__start_nuproc_text;
	return pc - lo < (uintptr_t)__stop_nuproc_text - lo;
}

/* Raised by the thread's own doing (see "crash" above). */
static int synchronous(int sig, const siginfo_t *si)
{
	if (sig == SIGABRT)
		return si->si_code == SI_TKILL && si->si_pid == getpid();
	return si->si_code > 0;
}

/* ------------------------------------------------------- the report */

/* A line built without stdio (the handler may not call it). */
typedef struct {
	char b[256];
	size_t n;
} line;

static void put_s(line *l, const char *s)
{
	while (*s && l->n < sizeof(l->b))
		l->b[l->n++] = *s++;
}

static void put_u(line *l, uint64_t v, unsigned base)
{
	char t[24];
	int k = 0;
	do
		t[k++] = "0123456789abcdef"[v % base];
	while ((v /= base));
	if (base == 16)
		put_s(l, "0x");
	while (k && l->n < sizeof(l->b))
		l->b[l->n++] = t[--k];
}

/* "nuproc: SIGSEGV at 0x10 in the runtime (pc 0x...), scheduler 0,
 * process <0.5.1>: not isolated; backtrace:", then the frames. */
static void report(const nu__sched *s, int sig, const siginfo_t *si,
		   uintptr_t pc, int runtime)
{
	if (atomic_exchange(&reported, 1))
		return;
	line l = { .n = 0 };
	put_s(&l, "nuproc: ");
	put_s(&l, crash_names[sig_index(sig)]);
	put_s(&l, " at ");
	put_u(&l, sig == SIGABRT ? 0 : (uintptr_t)si->si_addr, 16);
	put_s(&l, runtime ? " in the runtime (pc " : " off a process stack (pc ");
	put_u(&l, pc, 16);
	put_s(&l, "), scheduler ");
	put_u(&l, (uint64_t)s->id, 10);
	if (s->current) {
		put_s(&l, ", process <0.");
		put_u(&l, nu__pid_index(s->current->pid), 10);
		put_s(&l, ".");
		put_u(&l, nu__pid_gen(s->current->pid), 10);
		put_s(&l, ">");
	} else {
		put_s(&l, ", no process running");
	}
	put_s(&l, ": not isolated; backtrace:\n");
	if (nu__sys_write(STDERR_FILENO, l.b, l.n) < 0)
		return;
	void *frames[BACKTRACE_MAX];
	backtrace_symbols_fd(frames, backtrace(frames, BACKTRACE_MAX),
			     STDERR_FILENO);
}

/* ------------------------------------------------------ the handler */

int nu__crash_isolate(int sig, siginfo_t *si, void *ucv)
{
	if (!atomic_load_explicit(&crash_on, memory_order_acquire) ||
	    sig_index(sig) < 0 || !synchronous(sig, si))
		return 0;
	nu__sched *s = nu__sched_self();
	if (!s)
		return 0; /* not a scheduler thread: not ours to judge */
	const ucontext_t *uc = ucv;
	nu__proc *p = s->current;
	uintptr_t pc = ctx_pc(uc), sp = ctx_sp(uc);
	int runtime = in_runtime(pc);
	if (p && s->fault_area && !runtime &&
	    sp - (uintptr_t)p->stack_lo <
		    (uintptr_t)(p->stack_hi - p->stack_lo)) {
		s->crash_sig = sig;
		s->crash_addr = sig == SIGABRT ? 0 : (uintptr_t)si->si_addr;
		nu__fault_redirect(ucv, s, crash_exit, 0);
		return 1;
	}
	report(s, sig, si, pc, runtime);
	return 0;
}

static void on_crash(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	if (!nu__crash_isolate(sig, si, uc))
		nu__fault_chain(&old_act[sig_index(sig)], sig, si, uc);
	errno = saved;
}

/* ------------------------------------------------------------ setup */

static int install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_crash;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (int i = 1; i < NSIG_CRASH; i++) {
		if (sigaction(crash_sigs[i], &sa, &old_act[i])) {
			int err = errno;
			while (--i > 0)
				sigaction(crash_sigs[i], &old_act[i], NULL);
			return -err;
		}
	}
	installed = 1;
	return 0;
}

int nu__crash_init(const nu_config *cfg)
{
	const char *env = getenv("NUPROC_CRASH_ISOLATION");
	if (!cfg->crash_isolation && !(env && strcmp(env, "1") == 0))
		return 0;
	if ((uintptr_t)__stop_nuproc_text <= (uintptr_t)__start_nuproc_text)
		return -ENOTSUP; /* (both NULL when the section is missing) */
	signal_atom = nu_atom("signal");
	for (int i = 0; i < NSIG_CRASH; i++)
		name_atoms[i] = nu_atom(crash_names[i]);
	void *warm[1];
	backtrace(warm, 1); /* loads the unwinder now, not in a handler */
	int rc = installed ? 0 : install();
	if (!rc)
		atomic_store_explicit(&crash_on, 1, memory_order_release);
	return rc;
}

void nu__crash_fini(void)
{
	atomic_store_explicit(&crash_on, 0, memory_order_release);
	if (!installed)
		return;
	for (int i = 1; i < NSIG_CRASH; i++)
		sigaction(crash_sigs[i], &old_act[i], NULL);
	installed = 0;
}
